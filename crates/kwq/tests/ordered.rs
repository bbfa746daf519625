//! Integration tests of `kwq::ordered` (issue 3): BT-1…BT-6, backpressure,
//! blocking ordered stages, thresholds, panics, the iterator front end, and
//! a model-based test against a sequential oracle.

use kwq::ordered::{
    ordered_map, BoxedOrderedWorkqueue, OrderedIterExt, OrderedMapBuilder, OrderedWorkqueue, Stage,
};
mod common;

use common::{rt, spin_for, within};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// Cheap deterministic pseudo-random delays.
fn delay_us(i: u64, max: u64) -> u64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    x % (max + 1)
}

/// BT-1 and BT-2: ordered stages in queueing order, each after its func,
/// never two at once; func, ordered and ordered_free (drop of everything
/// the closures captured) exactly once each, free after ordered.
#[test]
fn bt1_bt2_fifo_exactly_once() {
    let rt = rt(3);
    let q = OrderedWorkqueue::builder("bt1")
        .runtime(&rt)
        .max_active(3)
        .max_in_flight(16)
        .build()
        .unwrap();
    const N: u64 = 2000;
    let funcs: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let order = Arc::new(Mutex::new(Vec::new()));
    let in_ordered = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(AtomicUsize::new(0));

    struct Freed(Arc<AtomicUsize>, Arc<AtomicBool>);
    impl Drop for Freed {
        fn drop(&mut self) {
            assert!(self.1.load(SeqCst), "ordered_free before ordered_func");
            self.0.fetch_add(1, SeqCst);
        }
    }

    for i in 0..N {
        let f = funcs.clone();
        let (order, in_ordered) = (order.clone(), in_ordered.clone());
        let ran = Arc::new(AtomicBool::new(false));
        let guard = Freed(freed.clone(), ran.clone());
        q.queue(
            move || {
                f[i as usize].fetch_add(1, SeqCst);
                spin_for(delay_us(i, 20));
                i
            },
            move |v| {
                let _g = guard;
                assert_eq!(
                    in_ordered.fetch_add(1, SeqCst),
                    0,
                    "two ordered stages at once"
                );
                order.lock().unwrap().push(v);
                ran.store(true, SeqCst);
                in_ordered.fetch_sub(1, SeqCst);
            },
        );
    }
    q.flush().unwrap();
    assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
    assert!(funcs.iter().all(|c| c.load(SeqCst) == 1));
    assert_eq!(freed.load(SeqCst), N as usize);
    assert_eq!(q.in_flight(), 0);
}

/// BT-3/BT-4, the release rule: an item's slot (its only identity) is
/// reused only after everything the item owned was dropped. With
/// `max_in_flight = 2`, item `i + 2` reuses item `i`'s slot; when its func
/// runs, item `i`'s captured state must already be gone.
#[test]
fn bt4_release_before_reuse() {
    let rt = rt(2);
    const CAP: usize = 2;
    let q = OrderedWorkqueue::builder("bt4")
        .runtime(&rt)
        .max_active(2)
        .max_in_flight(CAP)
        .build()
        .unwrap();
    let weaks: Arc<Mutex<Vec<Weak<u64>>>> = Arc::new(Mutex::new(Vec::new()));
    let violations = Arc::new(AtomicUsize::new(0));
    for i in 0..500usize {
        let owned = Arc::new(i as u64);
        weaks.lock().unwrap().push(Arc::downgrade(&owned));
        let (w, v) = (weaks.clone(), violations.clone());
        q.queue(
            move || {
                if i >= CAP && w.lock().unwrap()[i - CAP].upgrade().is_some() {
                    v.fetch_add(1, SeqCst);
                }
                spin_for(delay_us(i as u64, 10));
            },
            move |()| {
                let _keep = owned;
            },
        );
    }
    q.flush().unwrap();
    assert_eq!(violations.load(SeqCst), 0);
    assert!(weaks.lock().unwrap().iter().all(|w| w.upgrade().is_none()));
}

/// The high-priority sub-queue keeps its own order, independent of the
/// normal one.
#[test]
fn highpri_subqueue_has_its_own_order() {
    let rt = rt(2);
    let q: BoxedOrderedWorkqueue<(bool, u64)> = OrderedWorkqueue::builder("prio")
        .runtime(&rt)
        .max_active(2)
        .highpri()
        .max_in_flight(8)
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    for i in 0..400u64 {
        let high = i % 3 == 0;
        let s = seen.clone();
        let func = Box::new(move || {
            spin_for(delay_us(i, 15));
            (high, i)
        });
        let ordered = Box::new(move |(h, v): (bool, u64)| {
            let mut s = s.lock().unwrap();
            if h {
                s.1.push(v)
            } else {
                s.0.push(v)
            }
        });
        if high {
            q.queue_high(func, ordered);
        } else {
            q.queue(func, ordered);
        }
    }
    q.flush().unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.0, (0..400).filter(|i| i % 3 != 0).collect::<Vec<_>>());
    assert_eq!(s.1, (0..400).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    assert!(q.current_active_high().is_some());
}

/// Backpressure: at most `max_in_flight` items between queue and release;
/// `try_queue` hands the closures back; `queue` blocks until room appears.
#[test]
fn backpressure_try_queue_and_blocking_queue() {
    let rt = rt(2);
    let q = Arc::new(
        OrderedWorkqueue::builder("bp")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(4)
            .build()
            .unwrap(),
    );
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let wait_gate = |g: &Arc<(Mutex<bool>, Condvar)>| {
        let mut open = g.0.lock().unwrap();
        while !*open {
            open = g.1.wait(open).unwrap();
        }
    };
    let done = Arc::new(AtomicUsize::new(0));
    let mk = |i: usize| {
        let g = gate.clone();
        let d = done.clone();
        (
            move || {
                wait_gate(&g);
                i
            },
            move |_v: usize| {
                d.fetch_add(1, SeqCst);
            },
        )
    };
    for i in 0..4 {
        let (f, o) = mk(i);
        q.try_queue(f, o).expect("room for 4");
    }
    assert_eq!(q.in_flight(), 4);
    let (f, o) = mk(4);
    let err = q.try_queue(f, o).unwrap_err();
    assert!(err.is_full());
    let (f, o) = err.into_inner();
    // A blocking queue waits until the gate opens and slots are released.
    let q2 = q.clone();
    let blocked = std::thread::spawn(move || {
        q2.queue(f, o);
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!blocked.is_finished(), "queue() must block while full");
    assert!(q.in_flight() <= 4);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    blocked.join().unwrap();
    q.flush().unwrap();
    assert_eq!(done.load(SeqCst), 5);
}

/// Queueing into a full ordered queue from a worker of the same pool does
/// not deadlock: the wait is inside `kwq::blocking`, so the pool runs the
/// ordered queue's runners on another worker. Concurrency 1 makes any
/// starvation a certain hang.
#[test]
fn full_queue_from_worker_of_same_pool_does_not_deadlock() {
    within(60, "queue from a worker into a full ordered queue", || {
        let rt = rt(1);
        let q = Arc::new(
            OrderedWorkqueue::builder("full-from-worker")
                .runtime(&rt)
                .max_active(1)
                .max_in_flight(2)
                .build()
                .unwrap(),
        );
        let wq = kwq::Workqueue::builder("producer")
            .runtime(&rt)
            .build()
            .unwrap();
        let sum = Arc::new(AtomicU64::new(0));
        let (q2, s2) = (q.clone(), sum.clone());
        wq.queue_fn(move || {
            for i in 0..200u64 {
                let s = s2.clone();
                q2.queue(
                    move || {
                        spin_for(5);
                        i
                    },
                    move |v| {
                        s.fetch_add(v, SeqCst);
                    },
                );
            }
        });
        wq.flush();
        q.flush().unwrap();
        assert_eq!(sum.load(SeqCst), (0..200).sum::<u64>());
    });
}

/// `queue` into a full queue from the queue's own ordered stage would wait
/// for itself: it panics (caught, reported by flush); `try_queue` works.
#[test]
fn queue_into_full_self_from_own_stage_is_reported() {
    let rt = rt(2);
    let q: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
        OrderedWorkqueue::builder("self")
            .runtime(&rt)
            .max_active(1)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    let weak = Arc::downgrade(&q);
    let refused = Arc::new(AtomicBool::new(false));
    let r = refused.clone();
    q.queue(
        Box::new(|| 1),
        Box::new(move |_| {
            let q = weak.upgrade().unwrap();
            // The only slot is ours: full.
            let e = q.try_queue(Box::new(|| 2), Box::new(|_| {})).unwrap_err();
            r.store(e.is_full(), SeqCst);
            q.queue(Box::new(|| 3), Box::new(|_| {}));
        }),
    );
    let err = q.flush().unwrap_err();
    assert!(refused.load(SeqCst));
    assert_eq!(err.panics().len(), 1);
    assert_eq!(err.panics()[0].stage(), Stage::Ordered);
    assert!(err.panics()[0].message().contains("would wait for itself"));
}

/// Slow parallel stages run `max_active` at once — as Btrfs work items do
/// on an unbound workqueue — both before the queue knows they are slow and
/// after: a short backlog of slow items is not left to one runner while
/// the others sleep. Each round's four funcs meet at a rendezvous that only
/// completes if all four run at the same time.
#[test]
fn slow_funcs_run_max_active_at_once() {
    let rt = rt(4);
    let q = OrderedWorkqueue::builder("slow")
        .runtime(&rt)
        .max_active(4)
        .build()
        .unwrap();
    for round in 0..3 {
        let arrived = Arc::new(AtomicUsize::new(0));
        let met = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (a, m) = (arrived.clone(), met.clone());
            q.queue(
                move || {
                    a.fetch_add(1, SeqCst);
                    let give_up = Instant::now() + Duration::from_secs(10);
                    while a.load(SeqCst) < 4 && Instant::now() < give_up {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if a.load(SeqCst) == 4 {
                        m.fetch_add(1, SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                },
                |_| {},
            );
        }
        q.flush().unwrap();
        assert_eq!(
            met.load(SeqCst),
            4,
            "round {round}: the four slow funcs did not all run at once"
        );
    }
}

/// Requirement 4: an ordered stage may block; other workers keep running
/// parallel stages meanwhile, and completed items wait, in order.
#[test]
fn blocking_ordered_stage_lets_parallel_stages_run() {
    within(60, "blocking ordered stage", || {
        let rt = rt(2);
        let q = OrderedWorkqueue::builder("blocky")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(64)
            .build()
            .unwrap();
        const N: usize = 40;
        let funcs_done = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..N {
            let (fd, fd2, ord) = (funcs_done.clone(), funcs_done.clone(), order.clone());
            q.queue(
                move || {
                    fd.fetch_add(1, SeqCst);
                    i
                },
                move |v| {
                    if v == 0 {
                        // Block (inside kwq::blocking) until every other
                        // item's parallel stage has run.
                        kwq::blocking(|| {
                            while fd2.load(SeqCst) < N {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        });
                    }
                    ord.lock().unwrap().push(v);
                },
            );
        }
        q.flush().unwrap();
        assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
    });
}

/// BT-5: with a threshold, `current_active` stays in [1, max_active], the
/// runners' workqueue `max_active` follows it, and it grows under load.
#[test]
fn bt5_threshold_bounds() {
    let rt = rt(2);
    let q = Arc::new(
        OrderedWorkqueue::builder("thresh")
            .runtime(&rt)
            .max_active(4)
            .thresh(8)
            .max_in_flight(256)
            .build()
            .unwrap(),
    );
    assert_eq!(q.current_active(), 1);
    assert_eq!(q.workqueue_max_active(), 1);
    let mut max_seen = 0;
    for i in 0..3000u64 {
        q.queue(
            move || {
                spin_for(delay_us(i, 30));
                i
            },
            |_| {},
        );
        // Sampled from the submitting thread while the backlog builds.
        let c = q.current_active();
        assert!((1..=4).contains(&c), "current_active {c} out of [1, 4]");
        max_seen = max_seen.max(c);
    }
    q.flush().unwrap();
    assert!(max_seen > 1, "never grew above 1 under a backlog");
    assert_eq!(q.workqueue_max_active(), q.current_active());
    assert!((1..=4).contains(&q.current_active()));
    assert!(!q.congested());
}

/// Requirement 6: panics in either stage never stall the sequence and are
/// reported by flush; every other item still gets its ordered stage.
#[test]
fn panics_are_reported_and_do_not_stall() {
    let rt = rt(2);
    let q = OrderedWorkqueue::builder("panics")
        .runtime(&rt)
        .max_active(2)
        .max_in_flight(4)
        .build()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..50u64 {
        let o = order.clone();
        q.queue(
            move || {
                if i == 3 {
                    panic!("func of 3");
                }
                i
            },
            move |v| {
                if v == 7 {
                    panic!("ordered of 7");
                }
                o.lock().unwrap().push(v);
            },
        );
    }
    let err = q.flush().unwrap_err();
    let expect: Vec<u64> = (0..50).filter(|&i| i != 3 && i != 7).collect();
    assert_eq!(*order.lock().unwrap(), expect);
    let p = err.panics();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].seq(), p[0].stage(), p[0].message()),
        (3, Stage::Func, "func of 3")
    );
    assert_eq!(
        (p[1].seq(), p[1].stage(), p[1].message()),
        (7, Stage::Ordered, "ordered of 7")
    );
    // Collected once: the next flush is clean.
    q.flush().unwrap();
}

/// Misuse: flushing from one of the queue's own stages panics (it would
/// wait for itself) instead of hanging.
#[test]
fn flush_from_own_stage_is_reported() {
    let rt = rt(2);
    let q: Arc<BoxedOrderedWorkqueue<()>> = Arc::new(
        OrderedWorkqueue::builder("flush-self")
            .runtime(&rt)
            .max_active(1)
            .build()
            .unwrap(),
    );
    let w = Arc::downgrade(&q);
    q.queue(
        Box::new(|| ()),
        Box::new(move |()| {
            let _ = w.upgrade().unwrap().flush();
        }),
    );
    let err = q.flush().unwrap_err();
    assert!(err.panics()[0].message().contains("would wait for itself"));
}

/// Dropping the queue waits for every queued item.
#[test]
fn drop_waits_for_everything() {
    let rt = rt(2);
    let count = Arc::new(AtomicUsize::new(0));
    {
        let q = OrderedWorkqueue::builder("drop")
            .runtime(&rt)
            .max_in_flight(8)
            .build()
            .unwrap();
        for i in 0..100u64 {
            let c = count.clone();
            q.queue(
                move || spin_for(delay_us(i, 20)),
                move |()| {
                    c.fetch_add(1, SeqCst);
                },
            );
        }
    }
    assert_eq!(count.load(SeqCst), 100);
}

#[test]
fn build_errors() {
    let e = OrderedWorkqueue::builder("x")
        .max_active(0)
        .build::<(), fn(), fn(())>()
        .unwrap_err();
    assert!(e.to_string().contains("max_active"));
    let e = OrderedWorkqueue::builder("x")
        .max_in_flight(0)
        .build::<(), fn(), fn(())>()
        .unwrap_err();
    assert!(e.to_string().contains("max_in_flight"));
    let e = OrderedWorkqueue::builder("")
        .build::<(), fn(), fn(())>()
        .unwrap_err();
    assert!(e.to_string().contains("name"));
}

// ---------------------------------------------------------------------------
// Iterator front end

#[test]
fn ordered_map_matches_sequential() {
    let v: Vec<u64> = ordered_map(0..100_000u64, |x| x.wrapping_mul(x) ^ 7).collect();
    assert_eq!(
        v,
        (0..100_000u64)
            .map(|x| x.wrapping_mul(x) ^ 7)
            .collect::<Vec<_>>()
    );
    let w: Vec<usize> = ["a", "bb", "ccc"]
        .into_iter()
        .ordered_map(str::len)
        .collect();
    assert_eq!(w, [1, 2, 3]);
    assert_eq!(ordered_map(std::iter::empty::<u8>(), |x| x).count(), 0);
}

/// The iterator front end with a slow `f` runs `max_active` items at once
/// from the first item: each group of four consecutive items meets at a
/// rendezvous that completes only if all four run at the same time (a batch
/// of several slow items on one runner would keep it from completing).
#[test]
fn ordered_map_runs_slow_items_max_active_at_once() {
    let rt = rt(4);
    let arrived = Arc::new(AtomicUsize::new(0));
    let met = Arc::new(AtomicUsize::new(0));
    let (a, m) = (arrived.clone(), met.clone());
    let out: Vec<u64> = OrderedMapBuilder::new()
        .runtime(&rt)
        .max_active(4)
        .max_in_flight(256)
        .map(0..16u64, move |i| {
            let group_end = 4 * (i / 4 + 1) as usize;
            a.fetch_add(1, SeqCst);
            let give_up = Instant::now() + Duration::from_secs(5);
            while a.load(SeqCst) < group_end && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            if a.load(SeqCst) >= group_end {
                m.fetch_add(1, SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
            i
        })
        .unwrap()
        .collect();
    assert_eq!(out, (0..16).collect::<Vec<_>>());
    assert_eq!(
        met.load(SeqCst),
        16,
        "some group of four slow items did not run at once"
    );
}

/// A destructor that runs while its thread unwinds may queue into a full
/// ordered queue: `queue` then helps, which can make it the drain owner.
/// The drain's unwinding guard must not mistake the unwinding already in
/// progress for its own (it used to abort the process here).
#[test]
fn queueing_into_a_full_queue_from_a_destructor_during_unwinding_works() {
    let rt = rt(1);
    let q: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
        OrderedWorkqueue::builder("unwinding")
            .runtime(&rt)
            .max_active(1)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    let ordered = Arc::new(AtomicUsize::new(0));
    struct QueueOnDrop(Arc<BoxedOrderedWorkqueue<u64>>, Arc<AtomicUsize>);
    impl Drop for QueueOnDrop {
        fn drop(&mut self) {
            for i in 0..200u64 {
                let n = self.1.clone();
                self.0.queue(
                    Box::new(move || i),
                    Box::new(move |_| {
                        n.fetch_add(1, SeqCst);
                    }),
                );
            }
        }
    }
    let (qc, oc) = (q.clone(), ordered.clone());
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _guard = QueueOnDrop(qc, oc);
        panic!("unwinding");
    }));
    assert!(r.is_err());
    q.flush().unwrap();
    assert_eq!(ordered.load(SeqCst), 200);
}

/// Dropping an iterator early skips the remaining batches; their inputs are
/// still dropped, under `catch_unwind`: an input whose destructor panics
/// does not escape into the pool as a work-item panic, and every input
/// pulled but not mapped is dropped exactly once.
#[test]
fn ordered_map_dropped_early_drops_inputs_even_if_one_panics() {
    let worker_panics = Arc::new(AtomicUsize::new(0));
    let wp = worker_panics.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .on_panic(move |_| {
            wp.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    let (made, dropped, mapped) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    struct Input(Arc<AtomicUsize>, bool);
    impl Drop for Input {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
            if self.1 {
                panic!("input destructor");
            }
        }
    }
    let (m, d) = (made.clone(), dropped.clone());
    // Inputs 6..16 panic when dropped. `f` takes 2 ms, so every batch is a
    // single item (no second panic while one unwinds).
    let input = (0..10_000u64).map(move |i| {
        m.fetch_add(1, SeqCst);
        Input(d.clone(), (6..16).contains(&i))
    });
    let mp = mapped.clone();
    let mut it = OrderedMapBuilder::new()
        .runtime(&rt)
        .max_active(2)
        .max_in_flight(256)
        .map(input, move |x| {
            spin_for(2_000);
            mp.fetch_add(1, SeqCst);
            std::mem::forget(x); // mapped inputs are not dropped
        })
        .unwrap();
    assert!(it.next().is_some());
    drop(it);
    drop(rt);
    assert_eq!(
        worker_panics.load(SeqCst),
        0,
        "an input destructor escaped into the pool"
    );
    assert_eq!(
        dropped.load(SeqCst),
        made.load(SeqCst) - mapped.load(SeqCst),
        "every pulled, unmapped input is dropped once"
    );
    assert!(dropped.load(SeqCst) > 0, "the test dropped no input early");
}

/// Streaming input of unknown length with bounded memory: never more than
/// `max_in_flight` items between being pulled and being yielded.
#[test]
fn ordered_map_streams_with_bounded_memory() {
    let rt = rt(2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    // An "infinite" input, cut by the consumer.
    let input = (0u64..).inspect(move |_| {
        p.fetch_add(1, SeqCst);
    });
    let mut yielded = 0usize;
    let mut worst = 0usize;
    for (i, y) in OrderedMapBuilder::new()
        .runtime(&rt)
        .max_active(2)
        .max_in_flight(256)
        .map(input, |x| {
            spin_for(delay_us(x, 3));
            x * 2
        })
        .unwrap()
        .take(20_000)
        .enumerate()
    {
        assert_eq!(y, 2 * i as u64);
        yielded += 1;
        worst = worst.max(pulled.load(SeqCst) - yielded);
    }
    assert!(worst <= 256, "{worst} items in flight > 256");
}

#[test]
fn ordered_map_reraises_panics_in_order() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let r = catch_unwind(AssertUnwindSafe(|| {
        for y in ordered_map(0..10_000u64, |x| {
            if x == 5000 {
                panic!("boom at 5000");
            }
            x
        }) {
            g.lock().unwrap().push(y);
        }
    }));
    let msg = *r.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(msg, "boom at 5000");
    let got = got.lock().unwrap();
    // Everything before the panicking batch was yielded, in order.
    assert!(got.len() <= 5000);
    assert_eq!(*got, (0..got.len() as u64).collect::<Vec<_>>());
}

/// Internal iteration (`fold`, which `for_each`, `sum`, ... use) batches the
/// yield loop: it must agree with `next`, continue correctly after some
/// `next` calls, and re-raise a panic of `f` only after sinking every
/// earlier item, in order.
#[test]
fn ordered_map_fold_matches_next_and_reraises_in_order() {
    let rt = rt(2);
    let build = |n: u64| {
        OrderedMapBuilder::new()
            .runtime(&rt)
            .max_in_flight(512)
            .map(0..n, |x| x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .unwrap()
    };
    let expect: Vec<u64> = (0..30_000u64)
        .map(|x| x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let folded = build(30_000).fold(Vec::new(), |mut v, y| {
        v.push(y);
        v
    });
    assert_eq!(folded, expect);
    // Mixed: a few `next` calls (leaving a batch half consumed), then fold.
    let mut it = build(30_000);
    let mut mixed: Vec<u64> = it.by_ref().take(1234).collect();
    it.for_each(|y| mixed.push(y));
    assert_eq!(mixed, expect);
    // A panic in `f`: everything before its batch was sunk, in order.
    let sunk = Arc::new(Mutex::new(Vec::new()));
    let s = sunk.clone();
    let r = catch_unwind(AssertUnwindSafe(|| {
        OrderedMapBuilder::new()
            .runtime(&rt)
            .max_in_flight(512)
            .map(0..20_000u64, |x| {
                assert!(x != 12_345, "boom at 12345");
                x
            })
            .unwrap()
            .for_each(|y| s.lock().unwrap().push(y));
    }));
    assert!(r.is_err());
    let sunk = sunk.lock().unwrap();
    assert!(sunk.len() <= 12_345);
    assert_eq!(*sunk, (0..sunk.len() as u64).collect::<Vec<_>>());
}

#[test]
fn ordered_map_early_drop_stops() {
    let rt = rt(2);
    let mapped = Arc::new(AtomicUsize::new(0));
    let m = mapped.clone();
    let first: Vec<u64> = OrderedMapBuilder::new()
        .runtime(&rt)
        .max_in_flight(64)
        .map(0u64.., move |x| {
            m.fetch_add(1, SeqCst);
            x
        })
        .unwrap()
        .take(10)
        .collect();
    assert_eq!(first, (0..10).collect::<Vec<_>>());
    assert!(mapped.load(SeqCst) <= 10 + 64);
}

#[test]
fn for_each_ordered_folds_like_sequential() {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    kwq::ordered::for_each_ordered(0..50_000u64, |x| x ^ (x >> 3), |y| h = h.rotate_left(5) ^ y);
    let seq = (0..50_000u64).fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        h.rotate_left(5) ^ (x ^ (x >> 3))
    });
    assert_eq!(h, seq);
}

// ---------------------------------------------------------------------------
// Model-based test: parallel == sequential map + fold, with random sizes,
// delays and panics.

#[derive(Debug, Clone)]
struct Case {
    items: Vec<(u64, u8, bool, bool)>, // value, delay µs, func panics, ordered panics
    max_active: usize,
    max_in_flight: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (
                any::<u64>(),
                0u8..20,
                prop::bool::weighted(0.03),
                prop::bool::weighted(0.03),
            ),
            0..200,
        ),
        1usize..4,
        1usize..20,
    )
        .prop_map(|(items, max_active, max_in_flight)| Case {
            items,
            max_active,
            max_in_flight,
        })
}

fn f(x: u64) -> u64 {
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 29)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_sequential_oracle(c in case()) {
        let rt = rt(2);
        let q = OrderedWorkqueue::builder("oracle")
            .runtime(&rt)
            .max_active(c.max_active)
            .max_in_flight(c.max_in_flight)
            .build()
            .unwrap();
        let acc = Arc::new(Mutex::new(0u64));
        for &(x, d, fp, op) in &c.items {
            let a = acc.clone();
            q.queue(
                move || {
                    spin_for(u64::from(d));
                    if fp {
                        panic!("f");
                    }
                    f(x)
                },
                move |y| {
                    if op {
                        panic!("o");
                    }
                    let mut a = a.lock().unwrap();
                    *a = a.rotate_left(5) ^ y;
                },
            );
        }
        let res = q.flush();
        // Oracle: sequential map + fold, skipping the panicking stages.
        let mut expect = 0u64;
        let mut expect_panics = Vec::new();
        for (i, &(x, _, fp, op)) in c.items.iter().enumerate() {
            if fp {
                expect_panics.push((i as u64, Stage::Func));
            } else if op {
                expect_panics.push((i as u64, Stage::Ordered));
            } else {
                expect = expect.rotate_left(5) ^ f(x);
            }
        }
        prop_assert_eq!(*acc.lock().unwrap(), expect);
        let got: Vec<(u64, Stage)> = match res {
            Ok(()) => Vec::new(),
            Err(e) => {
                let mut v: Vec<_> = e.panics().iter().map(|p| (p.seq(), p.stage())).collect();
                v.sort_by_key(|p| p.0);
                v
            }
        };
        prop_assert_eq!(got, expect_panics);
    }

    #[test]
    fn map_matches_sequential_oracle(
        xs in prop::collection::vec(any::<u64>(), 0..3000),
        max_active in 1usize..4,
        slots_x in 1usize..8,
    ) {
        let rt = rt(2);
        let got: Vec<u64> = OrderedMapBuilder::new()
            .runtime(&rt)
            .max_active(max_active)
            .max_in_flight(16 * slots_x)
            .map(xs.clone(), f)
            .unwrap()
            .collect();
        prop_assert_eq!(got, xs.iter().map(|&x| f(x)).collect::<Vec<_>>());
    }
}
