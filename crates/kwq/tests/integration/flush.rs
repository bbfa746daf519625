//! `Work::flush` (WQ-9), `Workqueue::flush` (WQ-10) and `drain` (WQ-11).

use crate::*;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A gated item: run `n` blocks on `gates[n-1]` (if present) and reports its
/// start and end on channels.
struct Gated {
    work: kwq::Work,
    started: mpsc::Receiver<usize>,
    ended: mpsc::Receiver<usize>,
}

fn gated(name: &str, gates: Vec<Gate>) -> Gated {
    let (stx, started) = mpsc::channel();
    let (etx, ended) = mpsc::channel();
    let mut n = 0;
    let work = kwq::Work::new(name, move || {
        n += 1;
        stx.send(n).unwrap();
        if let Some(g) = gates.get(n - 1) {
            g.wait();
        }
        etx.send(n).unwrap();
    });
    Gated {
        work,
        started,
        ended,
    }
}

/// Starts `w.flush()` on a thread; returns a receiver of its result. The
/// `entered` signal is sent just before the call.
fn flush_in_thread(w: &kwq::Work) -> mpsc::Receiver<bool> {
    let (entered_tx, entered) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let w = w.clone();
    std::thread::spawn(move || {
        entered_tx.send(()).unwrap();
        let _ = tx.send(w.flush());
    });
    entered.recv_timeout(TIMEOUT).unwrap();
    // Give the flusher time to look at the item before the test moves on.
    std::thread::sleep(Duration::from_millis(50));
    rx
}

/// WQ-9: flushing an idle item returns false at once.
#[test]
fn wq9_flush_idle_returns_false() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq9-idle").build().unwrap();
    let runs = Counter::new();
    let r = runs.clone();
    let w = kwq::Work::new("idle", move || {
        r.inc();
    });
    assert!(!w.flush(), "never queued");
    assert!(wq.queue(&w));
    wq.flush();
    assert_eq!(runs.get(), 1);
    assert!(!w.flush(), "already finished");
}

/// WQ-9: flush waits for the running instance and returns true only after
/// that run ended.
#[test]
fn wq9_flush_waits_for_running_instance() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq9-running").build().unwrap();
    let gate = Gate::new();
    let g = gated("running", vec![gate.clone()]);
    assert!(wq.queue(&g.work));
    assert_eq!(g.started.recv_timeout(TIMEOUT).unwrap(), 1);
    let res = flush_in_thread(&g.work);
    assert!(
        res.try_recv().is_err(),
        "flush returned while the item runs"
    );
    gate.open();
    assert!(res.recv_timeout(TIMEOUT).unwrap(), "flush waited: true");
    assert_eq!(
        g.ended.try_recv(),
        Ok(1),
        "flush returned before the run ended"
    );
}

/// WQ-9: flush waits for a pending (not yet started) instance to run.
#[test]
fn wq9_flush_waits_for_pending_instance() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq9-pending").ordered().build().unwrap();
    let blocker = Gate::new();
    let b = blocker.clone();
    let (btx, brx) = mpsc::channel();
    wq.queue_fn(move || {
        btx.send(()).unwrap();
        b.wait();
    });
    brx.recv_timeout(TIMEOUT).unwrap();
    let g = gated("pending", vec![]);
    assert!(wq.queue(&g.work));
    let res = flush_in_thread(&g.work);
    assert!(
        res.try_recv().is_err(),
        "flush returned before the item ran"
    );
    blocker.open();
    assert!(res.recv_timeout(TIMEOUT).unwrap());
    assert_eq!(g.ended.try_recv(), Ok(1));
}

/// WQ-9: flush does not wait for an instance queued after it was called.
#[test]
fn wq9_flush_does_not_wait_for_later_instances() {
    let rt = runtime(4);
    let wq = wq_on(&rt, "wq9-later").build().unwrap();
    let (g1, g2) = (Gate::new(), Gate::new());
    let g = gated("later", vec![g1.clone(), g2.clone()]);
    assert!(wq.queue(&g.work));
    assert_eq!(g.started.recv_timeout(TIMEOUT).unwrap(), 1);
    let res = flush_in_thread(&g.work);
    // A new instance, queued after the flush started; it will block on g2.
    assert!(wq.queue(&g.work));
    g1.open();
    assert_eq!(g.started.recv_timeout(TIMEOUT).unwrap(), 2);
    let r = res.recv_timeout(TIMEOUT);
    g2.open();
    assert_eq!(
        r,
        Ok(true),
        "flush waited for an instance queued after it was called"
    );
    wq.flush();
}

/// WQ-9 with cancel: the instance pending at call time is cancelled and a
/// new one is queued; flush must return once the running instance ends
/// (the instance it was waiting for will never run), not wait for the new
/// instance.
#[test]
fn wq9_flush_of_cancelled_pending_instance_does_not_wait_for_next() {
    let rt = runtime(4);
    let wq = wq_on(&rt, "wq9-cancel").build().unwrap();
    let (g1, g2) = (Gate::new(), Gate::new());
    let g = gated("cancelled", vec![g1.clone(), g2.clone()]);
    assert!(wq.queue(&g.work));
    assert_eq!(g.started.recv_timeout(TIMEOUT).unwrap(), 1);
    assert!(wq.queue(&g.work), "instance 2 pending behind the run");
    let res = flush_in_thread(&g.work);
    assert!(g.work.cancel(), "instance 2 cancelled");
    assert!(wq.queue(&g.work), "instance 3, queued after the flush call");
    g1.open();
    assert_eq!(g.ended.recv_timeout(TIMEOUT).unwrap(), 1);
    assert_eq!(g.started.recv_timeout(TIMEOUT).unwrap(), 2);
    let r = res.recv_timeout(Duration::from_secs(2));
    g2.open();
    assert_eq!(
        r,
        Ok(true),
        "flush kept waiting for an instance queued after the call"
    );
    wq.flush();
}

/// WQ-10: `Workqueue::flush` waits for every item queued before it: jobs,
/// work items, items parked behind their own previous run, and items that
/// are still inactive because of `max_active`.
#[test]
fn wq10_flush_waits_for_everything_queued_before() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq10-all").max_active(3).build().unwrap();
    let done = Counter::new();
    let mut expected = 0;
    for k in 0..200u64 {
        let d = done.clone();
        wq.queue_fn(move || {
            if k % 17 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            d.inc();
        });
        expected += 1;
    }
    let items: Vec<_> = (0..8)
        .map(|k| {
            let d = done.clone();
            kwq::Work::new(format!("item{k}"), move || {
                std::thread::sleep(Duration::from_micros(300));
                d.inc();
            })
        })
        .collect();
    for _ in 0..5 {
        for w in &items {
            if wq.queue(w) {
                expected += 1;
            }
        }
    }
    wq.flush();
    assert_eq!(
        done.get(),
        expected,
        "flush returned with items outstanding"
    );
    assert_eq!(wq.in_flight(), 0);
    for w in &items {
        assert!(!w.is_pending() && !w.is_running());
    }
}

/// WQ-10: an item that requeues itself forever does not livelock
/// `Workqueue::flush`, and flush still waits for the instance in flight at
/// call time.
#[test]
fn wq10_flush_not_livelocked_by_self_requeueing_item() {
    let rt = runtime(2);
    let wq = Arc::new(wq_on(&rt, "wq10-livelock").build().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Counter::new();
    let me: Arc<Mutex<Option<kwq::Work>>> = Arc::new(Mutex::new(None));
    let (q, s, r, m) = (wq.clone(), stop.clone(), runs.clone(), me.clone());
    let w = kwq::Work::new("forever", move || {
        std::thread::sleep(Duration::from_micros(100));
        if !s.load(SeqCst) {
            let this = m.lock().unwrap().clone();
            if let Some(this) = this {
                q.queue(&this);
            }
        }
        // Count completions, after the requeue: an instance in flight when
        // flush is called has not counted itself yet.
        r.inc();
    });
    *me.lock().unwrap() = Some(w.clone());
    assert!(wq.queue(&w));
    while runs.get() < 5 {
        std::thread::yield_now();
    }
    for _ in 0..5 {
        let before = runs.get();
        let q = wq.clone();
        within(
            TIMEOUT,
            "Workqueue::flush under continuous requeueing",
            move || q.flush(),
        );
        assert!(
            runs.get() > before,
            "flush returned without waiting for the instance in flight"
        );
    }
    assert!(
        w.is_pending() || w.is_running(),
        "the item keeps requeueing"
    );
    stop.store(true, SeqCst);
    w.cancel_sync();
    wq.flush();
    me.lock().unwrap().take();
    let after = runs.get();
    settle();
    assert_eq!(
        runs.get(),
        after,
        "item still running after stop + cancel_sync"
    );
}

/// WQ-10: concurrent flushers of one queue all return.
#[test]
fn wq10_concurrent_flushers_all_return() {
    let rt = runtime(2);
    let wq = Arc::new(wq_on(&rt, "wq10-many").build().unwrap());
    let feeders: Vec<_> = (0..2)
        .map(|_| {
            let wq = wq.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    wq.queue_fn(|| {});
                }
            })
        })
        .collect();
    let flushers: Vec<_> = (0..4)
        .map(|_| {
            let wq = wq.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    wq.flush();
                }
            })
        })
        .collect();
    within(TIMEOUT, "concurrent flushers", move || {
        for t in feeders.into_iter().chain(flushers) {
            t.join().unwrap();
        }
    });
    wq.flush();
    assert_eq!(wq.in_flight(), 0);
}

/// WQ-11: while a queue drains, queueing from outside fails with
/// `is_draining` (the job is handed back), chained queueing from the
/// queue's own items works, and drain returns when everything, chained
/// items included, has run. Afterwards the queue accepts work again.
#[test]
fn wq11_drain_refuses_outsiders_and_allows_chaining() {
    let rt = runtime(2);
    let wq = Arc::new(wq_on(&rt, "wq11").build().unwrap());
    let other = wq_on(&rt, "wq11-other").build().unwrap();
    let gate = Gate::new();
    let chained_ran = Counter::new();
    let (chain_tx, chain_rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let (q, g, c) = (wq.clone(), gate.clone(), chained_ran.clone());
    let c2 = chained_ran.clone();
    let chained = kwq::Work::new("chained", move || {
        c2.inc();
    });
    let head = kwq::Work::new("head", move || {
        started_tx.send(()).unwrap();
        g.wait();
        // Chained queueing from the queue's own item, during the drain.
        let a = q.try_queue(&chained);
        let c3 = c.clone();
        let b = q.try_queue_fn(move || {
            c3.inc();
        });
        chain_tx.send((a, b.is_ok())).unwrap();
    });
    assert!(wq.queue(&head));
    started.recv_timeout(TIMEOUT).unwrap();

    let (drain_tx, drained) = mpsc::channel();
    let q = wq.clone();
    std::thread::spawn(move || {
        q.drain();
        drain_tx.send(()).unwrap();
    });
    // Wait until the drain is visible to outsiders.
    let t0 = std::time::Instant::now();
    let rejected = loop {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        match wq.try_queue_fn(move || f.store(true, SeqCst)) {
            Ok(()) => {}
            Err(rej) => break (rej, flag),
        }
        assert!(t0.elapsed() < TIMEOUT, "drain never became visible");
        std::thread::yield_now();
    };
    let (rej, flag) = rejected;
    assert!(rej.error().is_draining(), "{:?}", rej.error());
    assert!(!rej.error().is_destroyed());
    assert!(rej.to_string().contains("wq11"), "{rej}");
    (rej.into_inner())();
    assert!(flag.load(SeqCst), "the rejected job is handed back intact");

    let outsider = kwq::Work::new("outsider", || {});
    let e = wq.try_queue(&outsider).unwrap_err();
    assert!(e.is_draining());
    assert!(!wq.queue(&outsider));
    assert!(
        !outsider.is_pending(),
        "a refused queue left the item pending"
    );
    // An item of *another* queue is an outsider too.
    let (otx, orx) = mpsc::channel();
    let q = wq.clone();
    other.queue_fn(move || {
        otx.send(q.try_queue_fn(|| {}).map_err(|r| r.error().is_draining()))
            .unwrap();
    });
    assert_eq!(orx.recv_timeout(TIMEOUT).unwrap(), Err(true));

    assert!(
        drained.try_recv().is_err(),
        "drain returned while head runs"
    );
    gate.open();
    let (a, b) = chain_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(a, Ok(true), "chained work item refused during drain");
    assert!(b, "chained job refused during drain");
    drained.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(
        chained_ran.get(),
        2,
        "drain returned before chained items ran"
    );
    assert_eq!(wq.in_flight(), 0);
    // Drain is over: outsiders may queue again.
    assert!(wq.queue(&outsider));
    wq.flush();
}
