//! `cancel` / `cancel_sync` (WQ-12) and the queue/run/cancel accounting.

use crate::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

/// An item whose first run blocks on `gate`, reporting starts and ends.
fn blocking_item(
    name: &str,
    gate: &Gate,
) -> (kwq::Work, mpsc::Receiver<()>, Counter, Arc<AtomicBool>) {
    let (tx, rx) = mpsc::channel();
    let runs = Counter::new();
    let in_run = Arc::new(AtomicBool::new(false));
    let (g, r, ir) = (gate.clone(), runs.clone(), in_run.clone());
    let w = kwq::Work::new(name, move || {
        ir.store(true, SeqCst);
        let n = r.inc();
        tx.send(()).unwrap();
        if n == 1 {
            g.wait();
        }
        std::thread::sleep(Duration::from_millis(2));
        ir.store(false, SeqCst);
    });
    (w, rx, runs, in_run)
}

/// `cancel` returns whether an instance was pending; a cancelled instance
/// never runs; an idle item's cancel returns false.
#[test]
fn wq12_cancel_pending_returns_true_and_it_never_runs() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "cancel").ordered().build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || {
        tx.send(()).unwrap();
        g.wait();
    });
    rx.recv_timeout(TIMEOUT).unwrap();
    let runs = Counter::new();
    let r = runs.clone();
    let w = kwq::Work::new("victim", move || {
        r.inc();
    });
    assert!(!w.cancel(), "idle item: nothing to cancel");
    assert!(wq.queue(&w));
    assert!(w.cancel(), "pending item: cancelled");
    assert!(!w.is_pending());
    assert!(!w.cancel(), "second cancel: nothing pending");
    assert!(!w.flush(), "a cancelled item is idle");
    // It can be queued again after a cancel.
    assert!(wq.queue(&w));
    assert!(w.cancel_sync());
    gate.open();
    wq.flush();
    assert_eq!(runs.get(), 0, "a cancelled instance ran");
    assert_eq!(wq.in_flight(), 0, "a cancelled instance is still counted");
}

/// `cancel` (non-sync) of a running item returns false at once, without
/// waiting for the run.
#[test]
fn wq12_cancel_does_not_wait_for_running_instance() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "cancel-running").build().unwrap();
    let gate = Gate::new();
    let (w, started, runs, in_run) = blocking_item("running", &gate);
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    let w2 = w.clone();
    assert!(!within(TIMEOUT, "cancel of a running item", move || w2.cancel()));
    assert!(in_run.load(SeqCst), "cancel returned, the run goes on");
    gate.open();
    w.flush();
    assert_eq!(runs.get(), 1);
}

/// WQ-12: `cancel_sync` removes the pending instance, waits for the running
/// one, refuses queueing meanwhile, and leaves the item neither pending nor
/// running. It returns whether an instance was pending.
#[test]
fn wq12_cancel_sync_waits_and_blocks_queueing() {
    let rt = runtime(4);
    let wq = wq_on(&rt, "cancel-sync").build().unwrap();
    let gate = Gate::new();
    let (w, started, runs, in_run) = blocking_item("victim", &gate);
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    assert!(wq.queue(&w), "second instance pending behind the run");

    let (tx, res) = mpsc::channel();
    let w2 = w.clone();
    std::thread::spawn(move || tx.send(w2.cancel_sync()).unwrap());
    // The canceller removes the pending instance first, then waits.
    let t0 = std::time::Instant::now();
    while w.is_pending() {
        assert!(
            t0.elapsed() < TIMEOUT,
            "cancel_sync never removed the instance"
        );
        std::thread::yield_now();
    }
    assert!(
        !wq.queue(&w),
        "queue during cancel_sync must return false and queue nothing"
    );
    assert!(!w.is_pending());
    settle();
    assert!(
        res.try_recv().is_err(),
        "cancel_sync returned while the item runs"
    );
    gate.open();
    assert!(
        res.recv_timeout(TIMEOUT).unwrap(),
        "an instance was pending: true"
    );
    assert!(
        !in_run.load(SeqCst),
        "cancel_sync returned while the function ran"
    );
    assert!(!w.is_pending() && !w.is_running());
    settle();
    assert_eq!(
        runs.get(),
        1,
        "the cancelled (and refused) instances never ran"
    );
    // Queueing works again afterwards.
    assert!(wq.queue(&w));
    w.flush();
    assert_eq!(runs.get(), 2);
    assert!(!w.cancel_sync(), "idle item: nothing pending");
}

/// WQ-12: `cancel_sync` of a running-only item returns false after the run.
#[test]
fn wq12_cancel_sync_of_running_item_returns_false_after_run() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "cancel-sync-running").build().unwrap();
    let gate = Gate::new();
    let (w, started, _runs, in_run) = blocking_item("running", &gate);
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    let (tx, res) = mpsc::channel();
    let w2 = w.clone();
    std::thread::spawn(move || tx.send(w2.cancel_sync()).unwrap());
    settle();
    assert!(res.try_recv().is_err());
    gate.open();
    assert!(!res.recv_timeout(TIMEOUT).unwrap());
    assert!(!in_run.load(SeqCst));
}

/// WQ-12: concurrent `cancel_sync` callers of one item wait for each other
/// and all return; exactly one of them saw the pending instance.
#[test]
fn wq12_concurrent_cancel_sync_callers_all_return() {
    let rt = runtime(4);
    let wq = wq_on(&rt, "cancel-many").build().unwrap();
    let gate = Gate::new();
    let (w, started, runs, in_run) = blocking_item("victim", &gate);
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    assert!(wq.queue(&w));
    let (tx, res) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(4));
    for _ in 0..4 {
        let (w, tx, b, ir) = (w.clone(), tx.clone(), barrier.clone(), in_run.clone());
        std::thread::spawn(move || {
            b.wait();
            let r = w.cancel_sync();
            tx.send((r, ir.load(SeqCst), w.is_running())).unwrap();
        });
    }
    settle();
    assert!(res.try_recv().is_err());
    gate.open();
    let mut trues = 0;
    for _ in 0..4 {
        let (r, running, is_running) = res.recv_timeout(TIMEOUT).unwrap();
        assert!(
            !running && !is_running,
            "a canceller returned during the run"
        );
        trues += usize::from(r);
    }
    assert_eq!(
        trues, 1,
        "exactly one canceller removed the pending instance"
    );
    assert_eq!(runs.get(), 1);
}

/// Cancelling an instance that is parked behind its own previous run (queued
/// on another queue of another pool) gives back that queue's `max_active`
/// slot and never runs it.
#[test]
fn cancel_of_parked_instance_releases_its_slot() {
    let rt = runtime(2);
    let wq_a = wq_on(&rt, "park-a").build().unwrap();
    let wq_b = wq_on(&rt, "park-b")
        .unbound()
        .max_active(1)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (w, started, runs, _) = blocking_item("parked", &gate);
    assert!(wq_a.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    assert!(wq_b.queue(&w));
    // Let wq_b's pool pick the instance up (it parks behind the run).
    settle();
    assert!(w.cancel());
    let (tx, rx) = mpsc::channel();
    wq_b.queue_fn(move || tx.send(()).unwrap());
    let r = rx.recv_timeout(TIMEOUT);
    gate.open();
    r.expect("wq_b's only slot leaked by the cancelled parked instance");
    wq_a.flush();
    wq_b.flush();
    assert_eq!(runs.get(), 1);
    assert_eq!(wq_b.in_flight(), 0);
}

/// Accounting under contention: every `queue` that returned true is matched
/// by exactly one execution or one `cancel` that returned true, and the item
/// never runs concurrently with itself.
#[test]
fn queue_cancel_accounting_under_contention() {
    let rt = runtime(4);
    let wqs = Arc::new([
        wq_on(&rt, "acct-a").build().unwrap(),
        wq_on(&rt, "acct-b").unbound().build().unwrap(),
    ]);
    let infl = InFlight::new();
    let overlaps = Counter::new();
    let runs = Counter::new();
    let (i, o, r) = (infl.clone(), overlaps.clone(), runs.clone());
    let w = kwq::Work::new("acct", move || {
        if i.enter() != 0 {
            o.inc();
        }
        r.inc();
        i.exit();
    });
    let queued = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let mut threads = Vec::new();
    for k in 0..2 {
        let (wqs, w, q, b) = (wqs.clone(), w.clone(), queued.clone(), barrier.clone());
        threads.push(std::thread::spawn(move || {
            b.wait();
            for _ in 0..3000 {
                if wqs[k].queue(&w) {
                    q.fetch_add(1, SeqCst);
                }
            }
        }));
    }
    for k in 0..2 {
        let (w, c, b) = (w.clone(), cancelled.clone(), barrier.clone());
        threads.push(std::thread::spawn(move || {
            b.wait();
            for n in 0..3000 {
                let hit = if k == 0 || n % 50 != 0 {
                    w.cancel()
                } else {
                    w.cancel_sync()
                };
                if hit {
                    c.fetch_add(1, SeqCst);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    w.flush();
    wqs[0].flush();
    wqs[1].flush();
    let (q, c, r) = (queued.load(SeqCst), cancelled.load(SeqCst), runs.get());
    assert_eq!(overlaps.get(), 0, "concurrent execution");
    assert_eq!(q, r + c, "queued {q} != ran {r} + cancelled {c}");
    assert_eq!(wqs[0].in_flight() + wqs[1].in_flight(), 0);
}
