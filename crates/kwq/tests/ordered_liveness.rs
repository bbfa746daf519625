//! Liveness of `kwq::ordered` at its edges (review of session 5): stages
//! that block while later items wait, misuse detected through nested
//! helping, dropping a queue where it cannot wait, and stress with helping
//! producers, flushers and thresholds. Every test fails (or times out)
//! without the fix it guards; see CHANGELOG "Fixed".

mod common;

use common::{eventually, rt, spin_for, within, Latch};
use kwq::ordered::{BoxedOrderedWorkqueue, OrderedMapBuilder, OrderedWorkqueue, Stage};
use kwq::{Runtime, Workqueue};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// 1. Liveness: a drain owner blocked in an ordered stage used to count as
//    an "active" runner in `Idle::pick_for_item`, so a producer whose
//    backlog was short (cheap cost estimate => wake_backlog 64) woke nobody,
//    and the item sat unclaimed next to an idle runner until the ordered
//    stage returned. If the ordered stage waits for that item's func
//    (allowed: "other runners keep running funcs while the drain owner
//    blocks"), it never returned. Now a drain owner counts as stalled.

#[test]
fn blocked_drain_owner_does_not_strand_later_items() {
    within(60, "blocked drain owner", || {
        let rt = rt(2);
        let q: BoxedOrderedWorkqueue<u64> = OrderedWorkqueue::builder("s5-drain-owner")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(256)
            .build()
            .unwrap();
        for trial in 0..3 {
            // Warm the cost estimate up with cheap items (wake_backlog -> 64).
            for i in 0..20_000u64 {
                q.queue(Box::new(move || i), Box::new(|_| {}));
            }
            q.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50)); // both runners idle

            let in_ordered = Latch::default();
            let b_ran = Latch::default();
            let waited_ms = Arc::new(AtomicU64::new(0));
            let (io, br, w) = (in_ordered.clone(), b_ran.clone(), waited_ms.clone());
            // Item A: its ordered stage blocks (inside kwq::blocking) until
            // item B's func ran; gives up after 3 s.
            q.queue(
                Box::new(|| 0),
                Box::new(move |_| {
                    io.set();
                    let t0 = Instant::now();
                    if trial % 2 == 0 {
                        // Inside kwq::blocking.
                        br.wait(3);
                    } else {
                        // Plain blocking: the drain owner counts as
                        // stalled anyway.
                        eventually(3, || br.is_set());
                    }
                    w.store(t0.elapsed().as_millis() as u64, SeqCst);
                }),
            );
            assert!(in_ordered.wait(10));
            std::thread::sleep(Duration::from_millis(50)); // other runner idle
            let br = b_ran.clone();
            // Item B: a cheap func queued while A's drain owner blocks.
            q.queue(
                Box::new(move || {
                    br.set();
                    1
                }),
                Box::new(|_| {}),
            );
            q.flush().unwrap();
            let ms = waited_ms.load(SeqCst);
            assert!(
                ms < 1000,
                "trial {trial}: item B's func did not run while item A's ordered stage \
                 blocked waiting for it ({ms} ms; gave up at 3000): the idle runner was \
                 never woken because the blocked drain owner counts as active"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// 2. Misuse detection only looks at the innermost stage: a thread running a
//    stage of A that helps B (full) runs B's func with IN_STAGE = B; that
//    func's A.flush() is not recognised as "from one of A's own stages" and
//    waits for itself forever instead of panicking as documented.

/// Queue B for the nested-helping tests: `max_active(2)`, two slots, one
/// runner held by item b0 until the returned latch is set, the other idle.
/// A helper may only run stages in a free runner slot, so the tests need
/// one: B first runs cheap items, so that its cost estimate is low and the
/// next item queued (b1, by the caller) wakes nobody while b0's runner
/// looks busy and unblocked (b0 waits without `kwq::blocking`).
fn busy_queue_b(rt: &Runtime, name: &str) -> (Arc<BoxedOrderedWorkqueue<()>>, Latch) {
    let b: Arc<BoxedOrderedWorkqueue<()>> = Arc::new(
        OrderedWorkqueue::builder(name)
            .runtime(rt)
            .max_active(2)
            .max_in_flight(2)
            .build()
            .unwrap(),
    );
    for _ in 0..64 {
        b.queue(Box::new(|| ()), Box::new(|_| {}));
    }
    b.flush().unwrap();
    // Both runners back to idle (they poll a little before leaving).
    assert!(eventually(10, || b.dump().contains("idle=0x3 ")));
    let (b0_started, lb) = (Latch::default(), Latch::default());
    let (s, l) = (b0_started.clone(), lb.clone());
    b.queue(
        Box::new(move || {
            s.set();
            // Not `Latch::wait`, which blocks inside `kwq::blocking` (the
            // crew would then wake the idle runner for b1).
            let end = Instant::now() + Duration::from_secs(30);
            while !l.is_set() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        }),
        Box::new(|_| {}),
    );
    assert!(b0_started.wait(10));
    (b, lb)
}

#[test]
fn nested_helping_still_detects_flush_from_own_stage() {
    within(
        20,
        "flush of A from B's func run by a helper inside A's stage",
        || {
            let rt = rt(2);
            let a: Arc<BoxedOrderedWorkqueue<()>> = Arc::new(
                OrderedWorkqueue::builder("s5-nest-a")
                    .runtime(&rt)
                    .max_active(1)
                    .max_in_flight(4)
                    .build()
                    .unwrap(),
            );
            // b0 occupies B's only runner until `lb` is set.
            let (b, lb) = busy_queue_b(&rt, "s5-nest-b");
            // b1: unclaimed (B's busy runner looks enough for it); B is now
            // full.
            let aw = Arc::downgrade(&a);
            b.queue(
                Box::new(move || {
                    if let Some(a) = aw.upgrade() {
                        let _ = a.flush();
                    }
                }),
                Box::new(|_| {}),
            );
            // a0's ordered stage queues into full B: it helps, claiming b1 and
            // running b1's func on the thread that executes a0's ordered stage.
            let b2 = b.clone();
            a.queue(
                Box::new(|| ()),
                Box::new(move |()| {
                    b2.queue(Box::new(|| ()), Box::new(|_| {}));
                }),
            );
            std::thread::sleep(Duration::from_millis(300));
            lb.set();
            a.flush().unwrap();
            let err = b.flush().expect_err("b1's A.flush() should have panicked");
            assert_eq!(err.panics()[0].stage(), Stage::Func);
            assert!(err.panics()[0].message().contains("would wait for itself"));
        },
    );
}

/// Same shape with `queue`: a helper of B running B's func queues into
/// full A while the thread is inside A's ordered stage (A's only slot is
/// held by the caller's own item): it should panic, not hang.
#[test]
fn nested_helping_still_detects_queue_into_full_self() {
    within(
        20,
        "queue into full A from B's func run inside A's stage",
        || {
            let rt = rt(2);
            let a: Arc<BoxedOrderedWorkqueue<()>> = Arc::new(
                OrderedWorkqueue::builder("s5-nestq-a")
                    .runtime(&rt)
                    .max_active(1)
                    .max_in_flight(1)
                    .build()
                    .unwrap(),
            );
            let (b, lb) = busy_queue_b(&rt, "s5-nestq-b");
            let aw = Arc::downgrade(&a);
            b.queue(
                Box::new(move || {
                    if let Some(a) = aw.upgrade() {
                        a.queue(Box::new(|| ()), Box::new(|_| {}));
                    }
                }),
                Box::new(|_| {}),
            );
            let b2 = b.clone();
            a.queue(
                Box::new(|| ()),
                Box::new(move |()| {
                    b2.queue(Box::new(|| ()), Box::new(|_| {}));
                }),
            );
            std::thread::sleep(Duration::from_millis(300));
            lb.set();
            a.flush().unwrap();
            let err = b.flush().expect_err("b1's A.queue() should have panicked");
            assert!(err.panics()[0].message().contains("would wait for itself"));
        },
    );
}

/// A parallel stage that blocks (inside `kwq::blocking`) until a *later*
/// item's parallel stage has run: with `max_active(2)` the other runner
/// must take that item (cmwq: a blocked worker makes room for another),
/// even though the cost estimate says items are cheap and the backlog is
/// one item.
#[test]
fn blocked_func_does_not_strand_later_items() {
    within(60, "blocked func", || {
        let rt = rt(2);
        let q: BoxedOrderedWorkqueue<u64> = OrderedWorkqueue::builder("blocked-func")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(256)
            .build()
            .unwrap();
        for trial in 0..3 {
            for i in 0..20_000u64 {
                q.queue(Box::new(move || i), Box::new(|_| {}));
            }
            q.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50)); // both runners idle
            let (in_func, b_ran) = (Latch::default(), Latch::default());
            let waited_ms = Arc::new(AtomicU64::new(0));
            let (f, br, w) = (in_func.clone(), b_ran.clone(), waited_ms.clone());
            q.queue(
                Box::new(move || {
                    f.set();
                    let t0 = Instant::now();
                    br.wait(3);
                    w.store(t0.elapsed().as_millis() as u64, SeqCst);
                    0
                }),
                Box::new(|_| {}),
            );
            assert!(in_func.wait(10));
            std::thread::sleep(Duration::from_millis(50)); // other runner idle
            let br = b_ran.clone();
            q.queue(
                Box::new(move || {
                    br.set();
                    1
                }),
                Box::new(|_| {}),
            );
            q.flush().unwrap();
            let ms = waited_ms.load(SeqCst);
            assert!(
                ms < 1000,
                "trial {trial}: item B's func did not run while item A's func blocked \
                 waiting for it ({ms} ms; gave up at 3000)"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// 3. Dropping the queue from a stage of the *high* sub-queue skips waiting
//    for the *normal* sub-queue too; if no normal runner is executing at
//    that moment, the normal crew is dropped with its items unrun (their
//    closures are dropped, func/ordered never called), silently.

/// Occupies the normal pool of `rt` (concurrency 1) with a job that blocks
/// outside `kwq::blocking` until the returned latch is set.
fn occupy_normal_pool(rt: &Runtime) -> (Workqueue, Latch) {
    let wq = Workqueue::builder("s5-blocker")
        .runtime(rt)
        .build()
        .unwrap();
    let (started, release) = (Latch::default(), Latch::default());
    let (s, r) = (started.clone(), release.clone());
    wq.queue_fn(move || {
        s.set();
        let end = Instant::now() + Duration::from_secs(30);
        while !r.is_set() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert!(eventually(10, || started.is_set()));
    (wq, release)
}

#[test]
fn drop_from_high_stage_still_runs_normal_items() {
    within(30, "drop from a high stage", || {
        let rt = rt(1);
        let (_blocker, release) = occupy_normal_pool(&rt);
        let q: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
            OrderedWorkqueue::builder("s5-drop-high")
                .runtime(&rt)
                .highpri()
                .max_active(1)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..10u64 {
            let r = ran.clone();
            q.queue(
                Box::new(move || i),
                Box::new(move |_| {
                    r.fetch_add(1, SeqCst);
                }),
            );
        }
        // The last handle lives in the high item's ordered stage.
        let holder = Arc::new(Mutex::new(Some(q.clone())));
        let h = holder.clone();
        let dropped = Latch::default();
        let d = dropped.clone();
        // The high item must not reach its ordered stage before this thread
        // let go of its handles, or this thread's `drop(q)` would be the
        // last one and wait for normal items the blocker holds up.
        let let_go = Latch::default();
        let lg = let_go.clone();
        q.queue_high(
            Box::new(move || {
                assert!(lg.wait(10), "the test thread never let go");
                0
            }),
            Box::new(move |_| {
                drop(h.lock().unwrap().take());
                d.set();
            }),
        );
        drop(q);
        drop(holder);
        let_go.set();
        std::thread::sleep(Duration::from_millis(200));
        release.set();
        assert!(eventually(10, || dropped.is_set()), "high stage never ran");
        let ok = eventually(3, || ran.load(SeqCst) == 10);
        assert!(
            ok,
            "{} of 10 normal items ran after the queue was dropped from a high stage \
             (docs: 'the items still run')",
            ran.load(SeqCst)
        );
    });
}

/// Same sub-queue: dropping the last handle from an ordered stage — the
/// items queued after it still run (documented).
#[test]
fn drop_from_own_stage_runs_the_rest() {
    within(30, "drop from own stage", || {
        let rt = rt(2);
        let q: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
            OrderedWorkqueue::builder("s5-drop-self")
                .runtime(&rt)
                .max_active(2)
                .max_in_flight(256)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        let holder = Arc::new(Mutex::new(Some(q.clone())));
        let h = holder.clone();
        let r0 = ran.clone();
        // Item 0's ordered stage must take the last handle: it may not
        // start before this thread dropped its own.
        let let_go = Latch::default();
        let lg = let_go.clone();
        q.queue(
            Box::new(move || {
                assert!(lg.wait(10), "the test thread never let go");
                0
            }),
            Box::new(move |_| {
                drop(h.lock().unwrap().take());
                r0.fetch_add(1, SeqCst);
            }),
        );
        for i in 1..200u64 {
            let r = ran.clone();
            q.queue(
                Box::new(move || {
                    spin_for(20);
                    i
                }),
                Box::new(move |_| {
                    r.fetch_add(1, SeqCst);
                }),
            );
        }
        drop(q);
        drop(holder);
        let_go.set();
        assert!(
            eventually(10, || ran.load(SeqCst) == 200),
            "only {} of 200 ran",
            ran.load(SeqCst)
        );
    });
}

/// Dropping the queue while the thread unwinds skips the wait: items whose
/// runner has not started yet are dropped unrun, silently (doc gap: the
/// Shutdown section says drop waits for every queued item).
#[test]
fn drop_during_unwinding_runs_or_reports_queued_items() {
    within(30, "drop during unwinding", || {
        let rt = rt(1);
        let (_blocker, release) = occupy_normal_pool(&rt);
        let q: BoxedOrderedWorkqueue<u64> = OrderedWorkqueue::builder("s5-drop-unwind")
            .runtime(&rt)
            .max_active(1)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..10u64 {
            let r = ran.clone();
            q.queue(
                Box::new(move || i),
                Box::new(move |_| {
                    r.fetch_add(1, SeqCst);
                }),
            );
        }
        let r = catch_unwind(AssertUnwindSafe(move || {
            let _q = q;
            panic!("s5: unwinding with a live queue");
        }));
        assert!(r.is_err());
        release.set();
        let ok = eventually(3, || ran.load(SeqCst) == 10);
        assert!(
            ok,
            "{} of 10 queued items ran after the queue was dropped during unwinding",
            ran.load(SeqCst)
        );
    });
}

/// Stress: several producers (blocking `queue` that helps) and a flusher,
/// tiny ring, both sub-queues; per-producer FIFO and exactly once.
#[test]
fn stress_multi_producer_helpers_and_flushers() {
    within(60, "multi-producer stress", || {
        let rt = rt(2);
        let q: Arc<BoxedOrderedWorkqueue<(usize, u64)>> = Arc::new(
            OrderedWorkqueue::builder("s5-stress")
                .runtime(&rt)
                .max_active(2)
                .highpri()
                .thresh(2)
                .max_in_flight(3)
                .build()
                .unwrap(),
        );
        const P: usize = 4;
        const N: u64 = 5000;
        type LastSeen = Mutex<(Option<u64>, Option<u64>)>;
        let last: Arc<Vec<LastSeen>> = Arc::new((0..P).map(|_| Mutex::new((None, None))).collect());
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (q, stop) = (q.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    q.flush().unwrap();
                }
            })
        };
        let producers: Vec<_> = (0..P)
            .map(|p| {
                let (q, last, count) = (q.clone(), last.clone(), count.clone());
                std::thread::spawn(move || {
                    for i in 0..N {
                        let (last, count) = (last.clone(), count.clone());
                        let high = i % 3 == 0;
                        let o: Box<dyn FnOnce((usize, u64)) + Send> = Box::new(move |(p, i)| {
                            let mut g = last[p].lock().unwrap();
                            let slot = if high { &mut g.1 } else { &mut g.0 };
                            assert!(slot.is_none_or(|l| l < i), "order");
                            *slot = Some(i);
                            count.fetch_add(1, SeqCst);
                        });
                        let f: Box<dyn FnOnce() -> (usize, u64) + Send> = Box::new(move || {
                            if i % 64 == 0 {
                                spin_for(20);
                            }
                            (p, i)
                        });
                        if high {
                            q.queue_high(f, o);
                        } else {
                            q.queue(f, o);
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.flush().unwrap();
        stop.store(true, SeqCst);
        flusher.join().unwrap();
        assert_eq!(count.load(SeqCst), P * N as usize);
    });
}

/// Queue from kwq workers of a concurrency-1 runtime into a full queue,
/// several workers at once, with a thresholded queue (current_active 1).
#[test]
fn full_queue_from_several_workers_concurrency_1_thresh() {
    within(60, "workers into full thresholded queue", || {
        let rt = rt(1);
        let q: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
            OrderedWorkqueue::builder("s5-c1")
                .runtime(&rt)
                .max_active(2)
                .thresh(1)
                .max_in_flight(2)
                .build()
                .unwrap(),
        );
        let wq = Workqueue::builder("s5-c1-producers")
            .runtime(&rt)
            .max_active(4)
            .build()
            .unwrap();
        let sum = Arc::new(AtomicU64::new(0));
        for _ in 0..4 {
            let (q, s) = (q.clone(), sum.clone());
            wq.queue_fn(move || {
                for i in 0..300u64 {
                    let s = s.clone();
                    q.queue(
                        Box::new(move || {
                            spin_for(3);
                            i
                        }),
                        Box::new(move |v| {
                            s.fetch_add(v, SeqCst);
                        }),
                    );
                }
            });
        }
        wq.flush();
        q.flush().unwrap();
        assert_eq!(sum.load(SeqCst), 4 * (0..300u64).sum::<u64>());
    });
}

/// Dropping the iterator from inside its own `f` (on a runner): must not
/// hang or abort. (Reachable only through a global; contrived.)
#[test]
fn ordered_map_dropped_from_its_own_f_does_not_hang() {
    static SLOT: Mutex<Option<Box<dyn Send>>> = Mutex::new(None);
    within(30, "iterator dropped from its own f", || {
        let rt = rt(2);
        let dropped_in_f = Arc::new(AtomicBool::new(false));
        let d = dropped_in_f.clone();
        let mut it = OrderedMapBuilder::new()
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(64)
            .map(0..1000u64, move |x| {
                if x == 5 {
                    // Wait until the consumer parked the iterator, then drop it here.
                    let end = Instant::now() + Duration::from_secs(5);
                    loop {
                        let taken = SLOT.lock().unwrap().take();
                        if let Some(b) = taken {
                            d.store(true, SeqCst);
                            drop(b);
                            break;
                        }
                        if Instant::now() > end {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                x
            })
            .unwrap();
        assert_eq!(it.next(), Some(0));
        *SLOT.lock().unwrap() = Some(Box::new(it));
        assert!(eventually(10, || dropped_in_f.load(SeqCst)));
        std::thread::sleep(Duration::from_millis(100));
    });
}

// ---------------------------------------------------------------------------
// A full producer sleeps until half the ring is free. An ordered stage may
// wait for the producer's *next* `queue`, which needs only one slot: the
// releases then stop short of the producer's target, and it must notice
// and take the room there is (`Waiters::sleep_until_released`'s progress
// check; a fixed 1 ms patience before session 7). Without that check the
// producer and the stage wait for each other forever.

#[test]
fn ordered_stage_waiting_for_the_producers_next_queue() {
    within(60, "stage waits for the producer's next queue", || {
        let rt = rt(2);
        // One runner, so a full producer cannot borrow a slot and run the
        // waiting stage itself (it would then wait for its own thread).
        let q = OrderedWorkqueue::builder("next-queue")
            .runtime(&rt)
            .max_active(1)
            .max_in_flight(8)
            .build()
            .unwrap();
        let queued = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let timed_out = Arc::new(AtomicBool::new(false));
        const N: usize = 40;
        for i in 0..N {
            let (queued_o, order, timed_out) = (queued.clone(), order.clone(), timed_out.clone());
            let queued_f = queued.clone();
            q.queue(
                move || {
                    if i == 0 {
                        // Keep the runner busy until the ring is full, so
                        // that it never leaves (and lends no slot).
                        eventually(10, || queued_f.load(SeqCst) >= 8);
                    }
                    i
                },
                move |v| {
                    if v == 3 {
                        // Item 10 takes the slot item 2 released; the
                        // producer's half-ring target (item 3) is us.
                        let ok = kwq::blocking(|| eventually(10, || queued_o.load(SeqCst) >= 11));
                        timed_out.store(!ok, SeqCst);
                    }
                    order.lock().unwrap().push(v);
                },
            );
            queued.fetch_add(1, SeqCst);
        }
        q.flush().unwrap();
        assert!(
            !timed_out.load(SeqCst),
            "the full producer waited 10 s for a half-ring of room behind a stage waiting for it"
        );
        assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
    });
}
