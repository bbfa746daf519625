//! Delayed work (WQ-13, WQ-14).

use crate::*;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn recorder(name: &str) -> (kwq::DelayedWork, mpsc::Receiver<Instant>, Counter) {
    let (tx, rx) = mpsc::channel();
    let runs = Counter::new();
    let r = runs.clone();
    let tx = Mutex::new(tx);
    let d = kwq::DelayedWork::new(name, move || {
        r.inc();
        let _ = tx.lock().unwrap().send(Instant::now());
    });
    (d, rx, runs)
}

/// WQ-14: delayed work never runs before its delay elapsed.
#[test]
fn wq14_never_runs_before_delay() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "delay").build().unwrap();
    for ms in [1u64, 15, 40] {
        let (d, rx, runs) = recorder("later");
        let t0 = Instant::now();
        assert!(wq.queue_delayed(&d, Duration::from_millis(ms)));
        assert!(d.is_pending());
        assert!(
            !wq.queue_delayed(&d, Duration::from_millis(1)),
            "queue_delayed of a pending item coalesces"
        );
        let ran = rx.recv_timeout(TIMEOUT).unwrap();
        assert!(
            ran - t0 >= Duration::from_millis(ms),
            "ran after {:?}, delay was {ms} ms",
            ran - t0
        );
        d.work().flush();
        assert_eq!(runs.get(), 1);
    }
}

/// WQ-14: a zero delay queues immediately: a following `Workqueue::flush`
/// (which does not wait for timers) sees it run.
#[test]
fn wq14_zero_delay_queues_immediately() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "delay0").build().unwrap();
    let (d, _rx, runs) = recorder("now");
    assert!(wq.queue_delayed(&d, Duration::ZERO));
    wq.flush();
    assert_eq!(runs.get(), 1, "zero-delay work was not queued at once");
    let (d, _rx, runs) = recorder("now-mod");
    assert!(!wq.mod_delayed(&d, Duration::ZERO), "idle item: false");
    wq.flush();
    assert_eq!(runs.get(), 1);
}

/// WQ-14: `mod_delayed` re-arms a pending instance (returns true) and the
/// replaced instance never runs; on an idle item it queues and returns false.
#[test]
fn wq14_mod_delayed_rearms() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "mod").build().unwrap();
    let (d, rx, runs) = recorder("rearmed");
    // Shorten: a 10 s timer re-armed to 30 ms.
    let t0 = Instant::now();
    assert!(wq.queue_delayed(&d, Duration::from_secs(10)));
    assert!(wq.mod_delayed(&d, Duration::from_millis(30)), "was pending");
    let ran = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(ran - t0 >= Duration::from_millis(30));
    assert!(ran - t0 < Duration::from_secs(5));
    // Lengthen: a 5 ms timer re-armed to 80 ms must not fire at 5 ms.
    let t1 = Instant::now();
    assert!(wq.queue_delayed(&d, Duration::from_millis(5)));
    assert!(wq.mod_delayed(&d, Duration::from_millis(80)));
    let ran = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        ran - t1 >= Duration::from_millis(80),
        "the replaced 5 ms instance ran (after {:?})",
        ran - t1
    );
    settle();
    assert_eq!(runs.get(), 2, "replaced instances must not run");
    // Idle item: mod_delayed queues it and returns false.
    assert!(!wq.mod_delayed(&d, Duration::from_millis(1)));
    rx.recv_timeout(TIMEOUT).unwrap();
    // A pending, not-yet-started worklist instance can be re-armed too.
    let gate = Gate::new();
    let ord = wq_on(&rt, "mod-ord").ordered().build().unwrap();
    let g = gate.clone();
    let (btx, brx) = mpsc::channel();
    ord.queue_fn(move || {
        btx.send(()).unwrap();
        g.wait();
    });
    brx.recv_timeout(TIMEOUT).unwrap();
    assert!(ord.queue_delayed(&d, Duration::ZERO));
    let t2 = Instant::now();
    assert!(ord.mod_delayed(&d, Duration::from_millis(40)));
    gate.open();
    let ran = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        ran - t2 >= Duration::from_millis(40),
        "the replaced instance ran"
    );
    ord.flush();
    settle();
    assert_eq!(runs.get(), 4);
}

/// WQ-13: `DelayedWork::cancel` returns true iff an instance was pending,
/// and a cancelled timer never fires.
#[test]
fn wq13_cancel_returns_true_iff_pending() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "dcancel").build().unwrap();
    let (d, rx, runs) = recorder("cancelled");
    assert!(!d.cancel(), "idle");
    assert!(wq.queue_delayed(&d, Duration::from_millis(20)));
    assert!(d.cancel(), "pending on the timer");
    assert!(!d.is_pending());
    assert!(!d.cancel(), "already cancelled");
    assert!(!d.flush(), "idle after cancel");
    std::thread::sleep(Duration::from_millis(60));
    assert!(rx.try_recv().is_err(), "a cancelled timer fired");
    assert_eq!(runs.get(), 0);
    // cancel_sync of a timer-pending instance.
    assert!(wq.queue_delayed(&d, Duration::from_millis(20)));
    assert!(d.cancel_sync());
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(runs.get(), 0);
    // Re-queue after cancel works, and the new instance runs once.
    assert!(wq.queue_delayed(&d, Duration::from_millis(1)));
    rx.recv_timeout(TIMEOUT).unwrap();
    settle();
    assert_eq!(runs.get(), 1);
}

/// WQ-13: non-sync cancel of a running delayed item returns false (nothing
/// pending) and may return while the function still runs.
#[test]
fn wq13_cancel_of_running_delayed_work_returns_false() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "dcancel-run").build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = kwq::DelayedWork::new("running", move || {
        tx.lock().unwrap().send(()).unwrap();
        g.wait();
    });
    assert!(wq.queue_delayed(&d, Duration::from_millis(1)));
    rx.recv_timeout(TIMEOUT).unwrap();
    let d2 = d.clone();
    assert!(!within(
        TIMEOUT,
        "cancel of running delayed work",
        move || d2.cancel()
    ));
    assert!(d.work().is_running());
    gate.open();
    d.work().flush();
}

/// `DelayedWork::flush` fires a timer-pending instance at once and waits for
/// it; on an idle item it returns false.
#[test]
fn delayed_flush_fires_early_and_waits() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "dflush").build().unwrap();
    let (d, rx, runs) = recorder("flushed");
    assert!(!d.flush());
    let t0 = Instant::now();
    assert!(wq.queue_delayed(&d, Duration::from_secs(30)));
    let d2 = d.clone();
    assert!(within(TIMEOUT, "DelayedWork::flush", move || d2.flush()));
    assert_eq!(runs.get(), 1, "flush returned before the item ran");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "flush did not fire early"
    );
    rx.recv_timeout(TIMEOUT).unwrap();
    assert!(!d.is_pending());
    // The abandoned 30 s timer entry must not run it again; re-arm and
    // cancel to show the item is in a normal state.
    assert!(wq.queue_delayed(&d, Duration::from_secs(30)));
    assert!(d.cancel_sync());
    assert_eq!(runs.get(), 1);
}

/// Many delayed items with random small delays all run once, none early.
#[test]
fn many_delayed_items_run_once_each_not_early() {
    let rt = runtime(2);
    let wq = Arc::new(wq_on(&rt, "dmany").build().unwrap());
    let (tx, rx) = mpsc::channel::<(usize, Duration, Duration)>();
    let items: Vec<_> = (0..40)
        .map(|k| {
            let tx = Mutex::new(tx.clone());
            let armed = Arc::new(Mutex::new((Instant::now(), Duration::ZERO)));
            let a = armed.clone();
            let d = kwq::DelayedWork::new(format!("d{k}"), move || {
                let (at, delay) = *a.lock().unwrap();
                tx.lock().unwrap().send((k, at.elapsed(), delay)).unwrap();
            });
            (d, armed)
        })
        .collect();
    for (k, (d, armed)) in items.iter().enumerate() {
        let delay = Duration::from_millis((k as u64 * 7) % 50);
        *armed.lock().unwrap() = (Instant::now(), delay);
        assert!(wq.queue_delayed(d, delay));
    }
    let mut seen = [0usize; 40];
    for _ in 0..40 {
        let (k, elapsed, delay) = rx.recv_timeout(TIMEOUT).unwrap();
        assert!(elapsed >= delay, "d{k} ran after {elapsed:?} < {delay:?}");
        seen[k] += 1;
    }
    settle();
    assert!(rx.try_recv().is_err());
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
}
