//! Dropping a workqueue drains it; `shutdown_timeout`; runtime teardown.

use crate::*;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Dropping a `Workqueue` waits for everything queued on it, including
/// items chained from its own items while it drains.
#[test]
fn drop_drains_the_queue() {
    let rt = runtime(2);
    let wq = Arc::new(wq_on(&rt, "drop-drains").build().unwrap());
    let done = Counter::new();
    for k in 0..100u64 {
        let d = done.clone();
        wq.queue_fn(move || {
            if k % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            d.inc();
        });
    }
    // An item that chains more work onto its own queue while it drains.
    let weak = Arc::downgrade(&wq);
    let d = done.clone();
    let chain = kwq::Work::new("chain", move || {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(q) = weak.upgrade() {
            let d = d.clone();
            assert!(q.queue_fn(move || {
                d.inc();
            }));
        }
    });
    assert!(wq.queue(&chain));
    // Drop the last handle from another thread, with the item running.
    let wq = Arc::into_inner(wq);
    // (`weak` inside the item may hold a transient strong ref; retry.)
    let wq = match wq {
        Some(wq) => wq,
        None => panic!("extra strong reference"),
    };
    within(TIMEOUT, "drop of a workqueue", move || drop(wq));
    assert_eq!(done.get(), 100, "drop returned before queued items ran");
    assert!(!chain.is_pending() && !chain.is_running());
}

/// `shutdown_timeout` returns Ok when everything finishes in time.
#[test]
fn shutdown_timeout_ok_when_items_finish() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "shutdown-ok").build().unwrap();
    let done = Counter::new();
    for _ in 0..20 {
        let d = done.clone();
        wq.queue_fn(move || {
            std::thread::sleep(Duration::from_millis(1));
            d.inc();
        });
    }
    assert_eq!(wq.shutdown_timeout(TIMEOUT), Ok(()));
    assert_eq!(done.get(), 20);
}

/// `shutdown_timeout` reports stragglers by name when they cannot finish
/// in time; they still run to completion afterwards.
#[test]
fn shutdown_timeout_reports_stragglers() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "shutdown-late").build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let (stx, started) = mpsc::channel();
    let (etx, ended) = mpsc::channel();
    let w = kwq::Work::new("straggler", move || {
        stx.send(()).unwrap();
        g.wait();
        etx.send(()).unwrap();
    });
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    let t0 = Instant::now();
    let err = wq
        .shutdown_timeout(Duration::from_millis(50))
        .expect_err("a blocked item cannot finish in time");
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(t0.elapsed() < TIMEOUT);
    assert_eq!(err.running(), ["straggler".to_string()]);
    assert!(err.in_flight() >= 1);
    let msg = err.to_string();
    assert!(
        msg.contains("shutdown-late") && msg.contains("straggler"),
        "{msg}"
    );
    gate.open();
    ended.recv_timeout(TIMEOUT).unwrap();
    w.flush();
}

/// A delayed item whose timer fires after its queue was shut down is
/// dropped (not run) and left idle.
#[test]
fn delayed_work_firing_after_shutdown_is_dropped() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "shutdown-delayed").build().unwrap();
    let runs = Counter::new();
    let r = runs.clone();
    let d = kwq::DelayedWork::new("too-late", move || {
        r.inc();
    });
    assert!(wq.queue_delayed(&d, Duration::from_millis(30)));
    assert_eq!(wq.shutdown_timeout(TIMEOUT), Ok(()));
    eventually(TIMEOUT, "the abandoned timer entry is cleared", || {
        !d.is_pending()
    });
    settle();
    assert_eq!(runs.get(), 0, "ran on a destroyed queue");
    assert!(!d.flush());
}

/// Dropping a workqueue from one of its own items does not hang.
#[test]
fn drop_from_own_item_does_not_hang() {
    let rt = runtime(2);
    let slot: Arc<Mutex<Option<kwq::Workqueue>>> = Arc::new(Mutex::new(None));
    let wq = wq_on(&rt, "self-drop").build().unwrap();
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let w = kwq::Work::new("dropper", move || {
        let q = s.lock().unwrap().take();
        drop(q);
        tx.send(()).unwrap();
    });
    assert!(wq.queue(&w));
    *slot.lock().unwrap() = Some(wq);
    // The item may run before the slot is filled; requeue until it drops it.
    let t0 = Instant::now();
    loop {
        if slot.lock().unwrap().is_none() {
            break;
        }
        assert!(t0.elapsed() < TIMEOUT);
        std::thread::sleep(Duration::from_millis(1));
        let g = slot.lock().unwrap();
        if let Some(q) = g.as_ref() {
            q.queue(&w);
        }
    }
    rx.recv_timeout(TIMEOUT).expect("drop from own item hung");
}

/// Dropping every handle of a runtime lets all its workers exit promptly
/// (an idle runtime holds no threads after teardown).
#[test]
fn runtime_teardown_lets_workers_exit() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("kq-down")
        .watchdog(None)
        .build()
        .unwrap();
    let queues = [
        wq_on(&rt, "n").build().unwrap(),
        wq_on(&rt, "h").highpri().build().unwrap(),
        wq_on(&rt, "u").unbound().build().unwrap(),
    ];
    for q in &queues {
        for _ in 0..20 {
            q.queue_fn(|| std::thread::sleep(Duration::from_micros(100)));
        }
    }
    for q in &queues {
        q.flush();
    }
    assert!(threads_named("kq-down/") >= 3);
    drop(queues);
    drop(rt);
    assert_threads_exit("kq-down/");
}

/// The same when the last reference to the runtime goes away on a worker
/// (the queue was shut down while its item still ran): that worker must
/// exit too, not linger for the idle timeout (300 s by default).
#[test]
fn runtime_teardown_from_a_worker_lets_that_worker_exit() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("kq-last")
        .watchdog(None)
        .build()
        .unwrap();
    let wq = wq_on(&rt, "last").build().unwrap();
    // Warm up, then let every worker park, so that no stale wake-up token
    // hides a missing one below.
    for _ in 0..4 {
        wq.queue_fn(|| {});
    }
    wq.flush();
    std::thread::sleep(Duration::from_millis(50));
    let gate = Gate::new();
    let g = gate.clone();
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || {
        tx.send(()).unwrap();
        g.wait();
    });
    rx.recv_timeout(TIMEOUT).unwrap();
    assert!(wq.shutdown_timeout(Duration::from_millis(1)).is_err());
    drop(rt);
    gate.open();
    assert_threads_exit("kq-last/");
}
