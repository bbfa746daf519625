//! Work items, coalescing, non-reentrancy, item lifetime, builders, system
//! queues, dumps and thread names (WQ-1, WQ-2, WQ-3, WQ-6).

use crate::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

/// WQ-1: while an instance is pending, `queue` returns false and enqueues
/// nothing. An ordered queue whose only slot is held by a blocked item keeps
/// `w` pending for as long as the test wants.
#[test]
fn wq1_queue_while_pending_coalesces() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq1").ordered().build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let (started_tx, started) = mpsc::channel();
    assert!(wq.queue_fn(move || {
        started_tx.send(()).unwrap();
        g.wait();
    }));
    started.recv_timeout(TIMEOUT).unwrap();

    let runs = Counter::new();
    let r = runs.clone();
    let w = kwq::Work::new("coalesced", move || {
        r.inc();
    });
    assert!(!w.is_pending());
    assert!(wq.queue(&w), "first queue of an idle item must succeed");
    assert!(w.is_pending());
    for _ in 0..100 {
        assert!(!wq.queue(&w), "queue while pending must return false");
    }
    // Also through another handle and via try_queue.
    let w2 = w.clone();
    assert!(w2.ptr_eq(&w));
    assert!(!wq.queue(&w2));
    assert_eq!(wq.try_queue(&w2), Ok(false));
    settle();
    assert_eq!(runs.get(), 0, "must not run while the ordered slot is held");
    gate.open();
    wq.flush();
    assert_eq!(
        runs.get(),
        1,
        "101 queue calls while pending = one execution"
    );
    assert!(!w.is_pending());
    // Idle again: queueing works again.
    assert!(wq.queue(&w));
    wq.flush();
    assert_eq!(runs.get(), 2);
}

/// WQ-2: queueing an item while it runs makes it run exactly once more,
/// after the current run, never concurrently.
#[test]
fn wq2_requeue_while_running_runs_once_more_after() {
    let rt = runtime(4);
    let wq = wq_on(&rt, "wq2").build().unwrap();
    let gate = Gate::new();
    let infl = InFlight::new();
    let runs = Counter::new();
    let (started_tx, started) = mpsc::channel();
    let (g, i, r) = (gate.clone(), infl.clone(), runs.clone());
    let w = kwq::Work::new("requeued", move || {
        assert_eq!(i.enter(), 0, "ran concurrently with itself");
        let n = r.inc();
        started_tx.send(n).unwrap();
        if n == 1 {
            g.wait();
        }
        i.exit();
    });
    assert!(wq.queue(&w));
    assert_eq!(started.recv_timeout(TIMEOUT).unwrap(), 1);
    assert!(w.is_running());
    assert!(wq.queue(&w), "queue while running (not pending) succeeds");
    assert!(!wq.queue(&w), "second queue while running coalesces");
    assert!(!wq.queue(&w));
    // Give other workers a chance to (wrongly) start the second instance.
    settle();
    assert!(
        started.try_recv().is_err(),
        "second instance started while the first still runs"
    );
    assert_eq!(runs.get(), 1);
    gate.open();
    assert_eq!(started.recv_timeout(TIMEOUT).unwrap(), 2);
    wq.flush();
    assert_eq!(runs.get(), 2, "exactly one more run");
    assert_eq!(infl.max(), 1);
    assert!(started.try_recv().is_err());
}

/// WQ-2 from inside: an item that queues itself from its own function runs
/// again after the current run returns (never nested or concurrent).
#[test]
fn wq2_requeue_from_inside_runs_after_current_run() {
    let rt = runtime(4);
    let wq = Arc::new(wq_on(&rt, "wq2-inside").build().unwrap());
    let infl = InFlight::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let me: Arc<Mutex<Option<kwq::Work>>> = Arc::new(Mutex::new(None));
    let (i, o, m, q) = (infl.clone(), order.clone(), me.clone(), wq.clone());
    let mut n = 0;
    let w = kwq::Work::new("self-requeue", move || {
        assert_eq!(i.enter(), 0, "ran concurrently with itself");
        n += 1;
        o.lock().unwrap().push(format!("start{n}"));
        if n < 50 {
            let this = m.lock().unwrap().clone().unwrap();
            assert!(q.queue(&this), "requeue from inside must succeed");
            assert!(!q.queue(&this), "second requeue from inside coalesces");
            // Give another worker time to (wrongly) start the new instance.
            std::thread::sleep(Duration::from_micros(200));
        }
        o.lock().unwrap().push(format!("end{n}"));
        i.exit();
    });
    *me.lock().unwrap() = Some(w.clone());
    assert!(wq.queue(&w));
    within(TIMEOUT, "self-requeue chain", {
        let o = order.clone();
        move || loop {
            if o.lock().unwrap().len() >= 100 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    wq.flush();
    let got = order.lock().unwrap().clone();
    let want: Vec<String> = (1..=50)
        .flat_map(|n| [format!("start{n}"), format!("end{n}")])
        .collect();
    assert_eq!(got, want);
    assert_eq!(infl.max(), 1);
    me.lock().unwrap().take(); // break the handle cycle
}

/// WQ-3: one item queued on three workqueues over three different pools
/// (normal, unbound, highpri) from three threads never runs on two workers
/// at once, and every execution is accounted for by a successful queue.
#[test]
fn wq3_no_reentrancy_across_workqueues_and_pools() {
    let rt = runtime(4);
    let wqs = Arc::new([
        wq_on(&rt, "wq3-normal").build().unwrap(),
        wq_on(&rt, "wq3-unbound").unbound().build().unwrap(),
        wq_on(&rt, "wq3-highpri").highpri().build().unwrap(),
    ]);
    let infl = InFlight::new();
    let overlaps = Counter::new();
    let runs = Counter::new();
    let (i, ov, r) = (infl.clone(), overlaps.clone(), runs.clone());
    let w = kwq::Work::new("shared", move || {
        if i.enter() != 0 {
            ov.inc();
        }
        r.inc();
        for _ in 0..50 {
            std::hint::spin_loop();
        }
        i.exit();
    });
    let queued = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|k| {
            let (wqs, w, queued, start) = (wqs.clone(), w.clone(), queued.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for n in 0..4000 {
                    if wqs[k].queue(&w) {
                        queued.fetch_add(1, SeqCst);
                    }
                    if n % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    w.flush();
    for wq in wqs.iter() {
        wq.flush();
    }
    assert!(!w.is_pending() && !w.is_running());
    assert_eq!(overlaps.get(), 0, "the item ran concurrently with itself");
    let (q, r) = (queued.load(SeqCst), runs.get());
    assert!(q >= 1);
    assert_eq!(r, q, "every successful queue is one execution");
}

/// Pool identity: an item queued on workqueues of two *different runtimes*
/// must run each instance on a worker of the runtime of the queue it was
/// queued on. Both runtimes' first pool has the same index; the hand-over of
/// a parked instance must not mistake one runtime's pool for the other's.
#[test]
fn parked_instance_runs_on_its_own_runtime() {
    let (rt_a, _) = Reports::runtime(2);
    let rt_b = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("kwq-other")
        .build()
        .unwrap();
    let wq_a = wq_on(&rt_a, "rt-a").build().unwrap();
    let wq_b = wq_on(&rt_b, "rt-b").build().unwrap();
    let gate = Gate::new();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, started) = mpsc::channel();
    let (g, t) = (gate.clone(), threads.clone());
    let mut n = 0;
    let w = kwq::Work::new("two-runtimes", move || {
        n += 1;
        t.lock()
            .unwrap()
            .push(std::thread::current().name().unwrap_or("").to_string());
        started_tx.send(()).unwrap();
        if n == 1 {
            g.wait();
        }
    });
    assert!(wq_a.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    assert!(wq_b.queue(&w));
    // Let rt_b's worker pick the instance up and park it behind the run.
    let t0 = std::time::Instant::now();
    while !rt_b.dump().contains("worklist=0") && t0.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(1));
    }
    settle();
    gate.open();
    started.recv_timeout(TIMEOUT).unwrap();
    wq_b.flush();
    let names = threads.lock().unwrap().clone();
    assert!(names[0].starts_with("kwq-test/"), "{names:?}");
    assert!(
        names[1].starts_with("kwq-other/"),
        "instance queued on rt_b's queue ran on {:?}",
        names[1]
    );
}

/// WQ-6: dropping every handle while the item is running is safe; the
/// closure (and what it captured) lives until the worker is done with it.
#[test]
fn wq6_drop_handles_while_running() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq6-running").build().unwrap();
    let (dropped_tx, dropped) = mpsc::channel();
    let guard = DropFlag(dropped_tx);
    let finished = Arc::new(AtomicBool::new(false));
    let gate = Gate::new();
    let (started_tx, started) = mpsc::channel();
    let (g, f) = (gate.clone(), finished.clone());
    let w = kwq::Work::new("dropped-running", move || {
        let _keep = &guard;
        started_tx.send(()).unwrap();
        g.wait();
        std::thread::sleep(Duration::from_millis(5));
        f.store(true, SeqCst);
    });
    assert!(wq.queue(&w));
    started.recv_timeout(TIMEOUT).unwrap();
    drop(w);
    settle();
    assert!(
        dropped.try_recv().is_err(),
        "closure state dropped while the item runs"
    );
    gate.open();
    dropped
        .recv_timeout(TIMEOUT)
        .expect("closure state must be dropped once the worker is done");
    assert!(
        finished.load(SeqCst),
        "closure state dropped before the run finished"
    );
    wq.flush();
}

/// WQ-6: dropping every handle (item and workqueue) while the item is
/// pending is safe; it still runs, then its state is dropped.
#[test]
fn wq6_drop_handles_while_pending_still_runs() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq6-pending").ordered().build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let (started_tx, started) = mpsc::channel();
    wq.queue_fn(move || {
        started_tx.send(()).unwrap();
        g.wait();
    });
    started.recv_timeout(TIMEOUT).unwrap();
    let (dropped_tx, dropped) = mpsc::channel();
    let guard = DropFlag(dropped_tx);
    let runs = Counter::new();
    let r = runs.clone();
    let w = kwq::Work::new("dropped-pending", move || {
        let _keep = &guard;
        r.inc();
    });
    assert!(wq.queue(&w));
    drop(w);
    assert!(dropped.try_recv().is_err());
    gate.open();
    dropped.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(
        runs.get(),
        1,
        "an item whose handles were dropped still runs"
    );
    drop(wq);
}

/// WQ-6 with cancel: a cancelled pending item whose handles are gone drops
/// its state without running.
#[test]
fn wq6_cancelled_then_dropped_is_freed_without_running() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "wq6-cancel").ordered().build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    wq.queue_fn(move || g.wait());
    let (dropped_tx, dropped) = mpsc::channel();
    let guard = DropFlag(dropped_tx);
    let runs = Counter::new();
    let r = runs.clone();
    let w = kwq::Work::new("cancel-drop", move || {
        let _keep = &guard;
        r.inc();
    });
    assert!(wq.queue(&w));
    assert!(w.cancel());
    drop(w);
    gate.open();
    wq.flush();
    dropped.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(runs.get(), 0);
}

/// One-shot jobs run exactly once each; `try_queue_fn` succeeds on a live
/// queue.
#[test]
fn queue_fn_runs_each_job_once() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "jobs").build().unwrap();
    let hits: Arc<Vec<AtomicUsize>> = Arc::new((0..1000).map(|_| AtomicUsize::new(0)).collect());
    for k in 0..1000 {
        let h = hits.clone();
        if k % 2 == 0 {
            assert!(wq.queue_fn(move || {
                h[k].fetch_add(1, SeqCst);
            }));
        } else {
            wq.try_queue_fn(move || {
                h[k].fetch_add(1, SeqCst);
            })
            .unwrap();
        }
    }
    wq.flush();
    assert_eq!(wq.in_flight(), 0);
    for (k, h) in hits.iter().enumerate() {
        assert_eq!(h.load(SeqCst), 1, "job {k}");
    }
}

/// Jobs are stored inline when they capture at most three words and boxed
/// otherwise: every size and alignment runs once, sees its captures intact,
/// and drops them exactly once — including jobs that panic.
#[test]
fn queue_fn_closures_of_every_size_run_and_drop_once() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    #[repr(align(64))]
    struct Aligned([u8; 64]);
    let (rt, reports) = Reports::runtime(2);
    let wq = wq_on(&rt, "job-sizes").build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let sum = Arc::new(AtomicUsize::new(0));
    let mut expect_sum = 0;
    let jobs = 200;
    for k in 0..jobs {
        let c = Counted(drops.clone());
        let s = sum.clone();
        match k % 5 {
            // Two words: inline.
            0 => wq.queue_fn(move || {
                let _c = &c;
                s.fetch_add(1, SeqCst);
            }),
            // Three words: inline, exactly full.
            1 => wq.queue_fn(move || {
                let _c = &c;
                s.fetch_add(k, SeqCst);
            }),
            // Eight words: boxed.
            2 => {
                let pad = [k; 6];
                wq.queue_fn(move || {
                    let _c = &c;
                    s.fetch_add(pad.iter().sum::<usize>() / 6, SeqCst);
                })
            }
            // Over-aligned: boxed, and still aligned where it runs.
            3 => {
                let a = Aligned([k as u8; 64]);
                wq.queue_fn(move || {
                    let _c = &c;
                    assert_eq!(&a as *const Aligned as usize % 64, 0);
                    assert!(a.0.iter().all(|&b| b == k as u8));
                    s.fetch_add(1, SeqCst);
                })
            }
            // Panics after counting; its captures are still dropped once.
            _ => wq.queue_fn(move || {
                let _c = &c;
                s.fetch_add(1, SeqCst);
                panic!("job {k} panics on purpose");
            }),
        };
        expect_sum += match k % 5 {
            1 | 2 => k,
            _ => 1,
        };
    }
    wq.flush();
    assert_eq!(sum.load(SeqCst), expect_sum);
    assert_eq!(drops.load(SeqCst), jobs);
    let panics = reports.all();
    assert_eq!(panics.len(), jobs / 5);
    assert!(panics
        .iter()
        .all(|p| p.work == "<job>" && p.workqueue == "job-sizes"));
}

/// Builder validation: each invalid setting is a `BuildError` with a clear
/// message.
#[test]
fn builder_errors() {
    let rt = runtime(1);
    let e = wq_on(&rt, "").build().unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
    let e = wq_on(&rt, "x").max_active(0).build().unwrap_err();
    assert!(
        e.to_string().contains("max_active") && e.to_string().contains('0'),
        "{e}"
    );
    let e = wq_on(&rt, "x").max_active(513).build().unwrap_err();
    assert!(
        e.to_string().contains("512") && e.to_string().contains("513"),
        "{e}"
    );
    assert!(wq_on(&rt, "x").max_active(512).build().is_ok());
    assert!(wq_on(&rt, "x").max_active(1).build().is_ok());
    let e = wq_on(&rt, "x").ordered().max_active(4).build().unwrap_err();
    assert!(
        e.to_string().contains("ordered") && e.to_string().contains('4'),
        "{e}"
    );
    assert!(wq_on(&rt, "x").ordered().max_active(1).build().is_ok());
    let e = kwq::RuntimeBuilder::new()
        .concurrency(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("concurrency"), "{e}");
    let e = kwq::RuntimeBuilder::new()
        .max_workers(1)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_workers"), "{e}");
    // Errors are std errors.
    let _: &dyn std::error::Error = &e;
}

/// `set_max_active`: refused on ordered queues and out of range; raising it
/// starts waiting items at once.
#[test]
fn set_max_active_errors_and_raising_starts_waiting_items() {
    let rt = runtime(4);
    let ord = wq_on(&rt, "ord").ordered().build().unwrap();
    let e = ord.set_max_active(2).unwrap_err();
    assert!(e.to_string().contains("ordered"), "{e}");
    assert_eq!(ord.max_active(), 1);

    let wq = wq_on(&rt, "raise").max_active(1).build().unwrap();
    assert!(wq.set_max_active(0).is_err());
    assert!(wq.set_max_active(513).is_err());
    let gate = Gate::new();
    let g = gate.clone();
    let (tx, rx) = mpsc::channel();
    let t0 = tx.clone();
    wq.queue_fn(move || {
        t0.send(0).unwrap();
        g.wait();
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), 0);
    for k in 1..=3 {
        let t = tx.clone();
        wq.queue_fn(move || t.send(k).unwrap());
    }
    settle();
    assert!(rx.try_recv().is_err(), "max_active(1) was exceeded");
    wq.set_max_active(4).unwrap();
    assert_eq!(wq.max_active(), 4);
    let mut got: Vec<i32> = (0..3).map(|_| rx.recv_timeout(TIMEOUT).unwrap()).collect();
    got.sort();
    assert_eq!(
        got,
        [1, 2, 3],
        "raising max_active must start waiting items"
    );
    gate.open();
    wq.flush();
}

/// The system workqueues exist and run items.
#[test]
fn system_queues_run_items() {
    let queues = [
        kwq::system(),
        kwq::system_highpri(),
        kwq::system_unbound(),
        kwq::system_long(),
    ];
    let names: Vec<_> = queues.iter().map(|q| q.name().to_string()).collect();
    assert_eq!(
        names,
        ["events", "events_highpri", "events_unbound", "events_long"]
    );
    assert!(std::ptr::eq(kwq::system(), kwq::system()));
    for q in queues {
        let runs = Counter::new();
        let r = runs.clone();
        let w = kwq::Work::new("sys", move || {
            r.inc();
        });
        assert!(q.queue(&w));
        w.flush();
        let r = runs.clone();
        q.queue_fn(move || {
            r.inc();
        });
        within(TIMEOUT, "system queue", move || loop {
            if runs.get() == 2 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        });
    }
}

/// `Runtime::dump` names a running item and its workqueue while it runs.
#[test]
fn dump_shows_running_item_and_queue() {
    let rt = runtime(2);
    let wq = wq_on(&rt, "dump-queue").build().unwrap();
    let gate = Gate::new();
    let (tx, rx) = mpsc::channel();
    let g = gate.clone();
    let w = kwq::Work::new("dump-item", move || {
        tx.send(()).unwrap();
        g.wait();
    });
    wq.queue(&w);
    rx.recv_timeout(TIMEOUT).unwrap();
    let d = rt.dump();
    gate.open();
    assert!(d.contains("dump-item"), "{d}");
    assert!(d.contains("dump-queue"), "{d}");
    let line = d
        .lines()
        .find(|l| l.contains("dump-item"))
        .expect("a worker line");
    assert!(line.contains("'dump-queue'"), "{line}");
    w.flush();
    assert!(
        !rt.dump().contains("dump-item"),
        "finished item still shown"
    );
}

/// Worker threads carry the runtime's name prefix.
#[test]
fn worker_threads_are_named() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("named-rt")
        .build()
        .unwrap();
    for b in [
        wq_on(&rt, "n"),
        wq_on(&rt, "h").highpri(),
        wq_on(&rt, "u").unbound(),
    ] {
        let wq = b.build().unwrap();
        let (tx, rx) = mpsc::channel();
        wq.queue_fn(move || {
            tx.send(std::thread::current().name().map(str::to_string))
                .unwrap();
        });
        let name = rx.recv_timeout(TIMEOUT).unwrap().expect("a named thread");
        assert!(name.starts_with("named-rt/"), "{name}");
    }
}

/// `Debug` output of the public types says what they are.
#[test]
fn debug_output() {
    let rt = runtime(1);
    let wq = wq_on(&rt, "dbg").max_active(3).build().unwrap();
    let s = format!("{wq:?}");
    assert!(s.contains("dbg") && s.contains('3'), "{s}");
    let w = kwq::Work::new("dbg-item", || {});
    assert!(format!("{w:?}").contains("dbg-item"));
    assert_eq!(w.name(), "dbg-item");
    assert_eq!(rt.concurrency(), 1);
}
