//! Hostile but legal user code on kwq's own threads (issue 17): panicking
//! destructors of closures and panic payloads, queues torn down by the
//! drop of an item's closure, extreme delays, panics in the middle of an
//! ordered map's batch. Each test checks that the thread concerned goes on
//! (a fresh item still runs), that accounting holds (flushes return), and
//! that the problem is reported through the runtime's hooks.
//!
//! Every wait is bounded (`common::within`, `recv_timeout`): a hang is a
//! failure with a message, never a stuck test binary.

mod common;

use common::within;
use kwq::ordered::{for_each_ordered, ordered_map, BoxedOrderedWorkqueue, OrderedWorkqueue};
use kwq::{DelayedWork, Runtime, RuntimeBuilder, WarningKind, Work, Workqueue};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Panics when dropped (unless the thread is already unwinding).
struct PanicOnDrop(&'static str);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("hostile destructor: {}", self.0);
        }
    }
}

/// Warnings seen by a runtime's `on_warning` hook, by kind.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<WarningKind>>>);
impl Seen {
    fn count(&self, k: WarningKind) -> usize {
        self.0.lock().unwrap().iter().filter(|&&x| x == k).count()
    }
}

/// A concurrency-1 runtime without watchdog, recording its warnings.
fn rt1(name: &str) -> (Runtime, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name(name)
        .on_panic(|_| {})
        .on_warning(move |w| s.0.lock().unwrap().push(w.kind()))
        .build()
        .unwrap();
    (rt, seen)
}

fn wq(rt: &Runtime, name: &str) -> Workqueue {
    Workqueue::builder(name).runtime(rt).build().unwrap()
}

/// Occupies the pool's only running worker until the returned sender is
/// used (a plain channel wait: the pool does not know the worker waits).
fn hold_worker(q: &Workqueue) -> mpsc::Sender<()> {
    let (go, wait) = mpsc::channel::<()>();
    let (started, is_started) = mpsc::channel::<()>();
    q.queue_fn(move || {
        started.send(()).unwrap();
        let _ = wait.recv_timeout(Duration::from_secs(10));
    });
    is_started
        .recv_timeout(Duration::from_secs(10))
        .expect("blocker never started");
    go
}

/// A fresh job queued on `q` runs within 5 s.
fn fresh_job_runs(q: &Workqueue) -> bool {
    let (tx, rx) = mpsc::channel();
    q.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(Duration::from_secs(5)).is_ok()
}

#[test]
fn a_work_closure_whose_destructor_panics_leaves_its_worker_serving() {
    let (rt, seen) = rt1("h-wdrop");
    let q = wq(&rt, "q");
    let go = hold_worker(&q);
    let bomb = PanicOnDrop("work closure");
    let w = Work::new("bomb", move || {
        let _ = &bomb;
    });
    assert!(q.queue(&w));
    drop(w); // the worker now holds the last reference
    go.send(()).unwrap();
    let q = within(10, "flush after a panicking closure drop", move || {
        q.flush();
        q
    });
    assert!(fresh_job_runs(&q), "the pool stopped serving");
    assert_eq!(seen.count(WarningKind::DropPanicked), 1);
}

#[test]
fn a_cancelled_work_whose_destructor_panics_is_still_retired() {
    let (rt, seen) = rt1("h-wcancel");
    let q = wq(&rt, "q");
    let go = hold_worker(&q);
    let bomb = PanicOnDrop("cancelled work closure");
    let w = Work::new("bomb", move || {
        let _ = &bomb;
    });
    assert!(q.queue(&w));
    assert!(w.cancel());
    drop(w); // only the stale token on the worklist holds the item now
    go.send(()).unwrap();
    let q = within(
        10,
        "flush after a stale token's panicking drop",
        move || {
            q.flush();
            q
        },
    );
    assert_eq!(q.in_flight(), 0);
    assert!(fresh_job_runs(&q), "the pool stopped serving");
    assert_eq!(seen.count(WarningKind::DropPanicked), 1);
}

#[test]
fn panic_payloads_whose_destructors_panic_are_contained() {
    let (rt, seen) = rt1("h-payload");
    let q = wq(&rt, "q");
    // A job's payload, a work item's payload, and a detached spawn's.
    q.queue_fn(|| std::panic::panic_any(PanicOnDrop("job payload")));
    let w = Work::new("w", || std::panic::panic_any(PanicOnDrop("work payload")));
    q.queue(&w);
    drop(q.spawn(|| -> u32 { std::panic::panic_any(PanicOnDrop("spawn payload")) }));
    let q = within(10, "flush after panicking payloads", move || {
        q.flush();
        q
    });
    assert!(fresh_job_runs(&q), "the pool stopped serving");
    assert!(seen.count(WarningKind::DropPanicked) >= 2);
}

#[test]
fn a_panicking_panic_hook_holding_a_panicking_payload_is_contained() {
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name("h-hook")
        .on_panic(|r| {
            let p = r.into_payload();
            drop(p); // panics: the payload's destructor
        })
        .build()
        .unwrap();
    let q = wq(&rt, "q");
    q.queue_fn(|| std::panic::panic_any(PanicOnDrop("payload in hook")));
    let q = within(10, "flush after a panicking hook", move || {
        q.flush();
        q
    });
    assert!(fresh_job_runs(&q), "the pool stopped serving");
}

/// Every delayed item in the process depends on the one timer thread.
fn timer_still_fires(q: &Workqueue) -> bool {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = DelayedWork::new("probe", move || {
        let _ = tx.lock().unwrap().send(());
    });
    assert!(q.queue_delayed(&d, Duration::from_millis(5)));
    rx.recv_timeout(Duration::from_secs(5)).is_ok()
}

#[test]
fn the_timer_survives_dropping_a_cancelled_delayed_work_that_panics() {
    let (rt, seen) = rt1("h-timer");
    let q = wq(&rt, "q");
    let bomb = PanicOnDrop("delayed closure");
    let d = DelayedWork::new("bomb", move || {
        let _ = &bomb;
    });
    assert!(q.queue_delayed(&d, Duration::from_millis(20)));
    assert!(d.cancel());
    drop(d); // the timer's heap entry holds the last reference
    std::thread::sleep(Duration::from_millis(100));
    assert!(timer_still_fires(&q), "the timer thread died");
    assert!(common::eventually(5, || seen
        .count(WarningKind::DropPanicked)
        == 1));
}

#[test]
fn the_timer_survives_dropping_a_rearmed_delayed_work_that_panics() {
    let (rt, seen) = rt1("h-rearm");
    let q = wq(&rt, "q");
    let bomb = PanicOnDrop("re-armed delayed closure");
    let d = DelayedWork::new("bomb", move || {
        let _ = &bomb;
    });
    assert!(q.queue_delayed(&d, Duration::from_millis(20)));
    // Re-armed further out, then cancelled: both heap entries are stale,
    // and the later one drops the last reference.
    assert!(q.mod_delayed(&d, Duration::from_millis(40)));
    assert!(d.cancel());
    drop(d);
    std::thread::sleep(Duration::from_millis(120));
    assert!(timer_still_fires(&q), "the timer thread died");
    assert!(common::eventually(5, || seen
        .count(WarningKind::DropPanicked)
        == 1));
}

#[test]
fn any_delay_is_accepted_even_duration_max() {
    let (rt, _seen) = rt1("h-dmax");
    let q = wq(&rt, "q");
    let d = DelayedWork::new("far", || panic!("must never fire"));
    assert!(q.queue_delayed(&d, Duration::MAX));
    assert!(d.is_pending());
    assert!(q.mod_delayed(&d, Duration::MAX));
    assert!(q.try_queue_delayed(&d, Duration::MAX).is_ok());
    assert!(q.mod_delayed(&d, Duration::from_secs(u64::MAX / 2)));
    assert!(d.cancel());
    assert!(!d.is_pending());
    assert!(timer_still_fires(&q));
}

/// A work item's closure owns the last handle of `owned`; the item has
/// run and every user handle is gone, so the worker's drop of the closure
/// tears the queue down while an item of `owned` waits on the same pool.
#[test]
fn a_workqueue_torn_down_by_an_items_destructor_drains_without_hanging_the_pool() {
    let (rt, seen) = rt1("h-wqdrop");
    let host = wq(&rt, "host");
    let other = wq(&rt, "other");
    let owned = wq(&rt, "owned");
    let owned = Arc::new(owned);
    let go = hold_worker(&host);
    let keep = owned.clone();
    let w = Work::new("owner", move || {
        let _ = &keep;
    });
    assert!(host.queue(&w));
    drop(w);
    // Queued behind the owner on the same pool, so still in flight when
    // the owner's closure is dropped: it must still run.
    let (tx, rx) = mpsc::channel();
    owned.queue_fn(move || tx.send(()).unwrap());
    drop(owned);
    go.send(()).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "an item queued before the teardown never ran"
    );
    assert!(fresh_job_runs(&other), "the pool stopped serving");
    assert!(fresh_job_runs(&host), "the pool stopped serving");
    assert_eq!(seen.count(WarningKind::DropPanicked), 0);
}

#[test]
fn an_ordered_workqueue_torn_down_by_an_items_destructor_does_not_hang_the_pool() {
    let (rt, _seen) = rt1("h-oqdrop");
    let host = wq(&rt, "host");
    let other = wq(&rt, "other");
    let oq: BoxedOrderedWorkqueue<u32> = OrderedWorkqueue::builder("owned-ordered")
        .runtime(&rt)
        .build()
        .unwrap();
    let oq = Arc::new(oq);
    let go = hold_worker(&host);
    let keep = oq.clone();
    let w = Work::new("owner", move || {
        let _ = &keep;
    });
    assert!(host.queue(&w));
    drop(w);
    let (tx, rx) = mpsc::channel();
    oq.queue(Box::new(|| 7), Box::new(move |v| tx.send(v).unwrap()));
    drop(oq);
    go.send(()).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).ok(),
        Some(7),
        "an ordered item queued before the teardown never finished"
    );
    assert!(fresh_job_runs(&other), "the pool stopped serving");
    assert!(fresh_job_runs(&host), "the pool stopped serving");
}

#[test]
fn for_each_ordered_sinks_every_earlier_result_before_re_raising() {
    const K: u64 = 5_000;
    let sunk = Arc::new(AtomicUsize::new(0));
    let s = sunk.clone();
    let r = within(30, "for_each_ordered", move || {
        catch_unwind(AssertUnwindSafe(|| {
            let mut next = 0u64;
            for_each_ordered(
                0..10_000u64,
                |x| {
                    assert!(x != K, "hostile map at {K}");
                    x
                },
                |y| {
                    assert_eq!(y, next);
                    next += 1;
                    s.fetch_add(1, SeqCst);
                },
            )
        }))
    });
    assert!(r.is_err(), "the panic of f was not re-raised");
    assert_eq!(sunk.load(SeqCst) as u64, K);
}

#[test]
fn ordered_map_yields_every_earlier_result_before_re_raising() {
    const K: u64 = 3_333;
    let got = within(30, "ordered_map", || {
        let mut got = Vec::new();
        let r = catch_unwind(AssertUnwindSafe(|| {
            for y in ordered_map(0..10_000u64, |x| {
                assert!(x != K, "hostile map at {K}");
                x
            }) {
                got.push(y);
            }
        }));
        assert!(r.is_err(), "the panic of f was not re-raised");
        got
    });
    assert_eq!(got, (0..K).collect::<Vec<_>>());
}

/// Threads of this process whose name starts with `prefix` (Linux
/// `/proc/self/task/*/comm`; names are cut to 15 bytes there).
fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with(prefix))
        .count()
}

#[test]
fn a_far_future_delayed_work_does_not_keep_a_dropped_runtime_alive() {
    if !std::path::Path::new("/proc/self/task").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide /proc"
        );
        eprintln!("skipped: no /proc/self/task to count threads");
        return;
    }
    let (rt, _seen) = rt1("h-far");
    let q = wq(&rt, "q");
    assert!(fresh_job_runs(&q));
    assert!(threads_named("h-far") >= 1);
    let d = DelayedWork::new("next-year", || {});
    assert!(q.queue_delayed(&d, Duration::from_secs(365 * 24 * 3600)));
    drop(q);
    drop(rt);
    assert!(
        common::eventually(10, || threads_named("h-far") == 0),
        "{} worker threads outlive their runtime",
        threads_named("h-far")
    );
    // The instance is still pending (dropped, with a warning, when its
    // deadline comes); cancelling it is fine.
    assert!(d.is_pending());
    assert!(d.cancel());
}

#[test]
fn a_timer_firing_during_drain_drops_the_instance_with_a_warning() {
    let (rt, seen) = rt1("h-drain");
    let q = Arc::new(wq(&rt, "q"));
    let (go, wait) = mpsc::channel::<()>();
    // Keeps the queue draining until the delayed item has fired.
    q.queue_fn(move || {
        let _ = kwq::blocking(|| wait.recv_timeout(Duration::from_secs(10)));
    });
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let d = DelayedWork::new("late", move || {
        r.fetch_add(1, SeqCst);
    });
    assert!(q.queue_delayed(&d, Duration::from_millis(30)));
    let q2 = q.clone();
    let drainer = std::thread::spawn(move || q2.drain());
    assert!(common::eventually(5, || seen
        .count(WarningKind::DelayedDropped)
        == 1));
    go.send(()).unwrap();
    drainer.join().unwrap();
    assert!(!d.is_pending());
    assert!(!d.flush(), "the dropped instance is not waited for");
    assert_eq!(ran.load(SeqCst), 0);
    // The item itself is fine: queued again, it runs.
    assert!(q.queue(d.work()));
    assert!(d.flush());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn a_panicking_destructor_of_an_uncalled_ordered_closure_is_reported() {
    let (rt, seen) = rt1("h-oqfree");
    let oq: BoxedOrderedWorkqueue<u32> = OrderedWorkqueue::builder("free")
        .runtime(&rt)
        .build()
        .unwrap();
    let bomb = PanicOnDrop("ordered closure");
    oq.queue(
        Box::new(|| panic!("func panics")),
        Box::new(move |_| {
            let _ = &bomb;
        }),
    );
    let r = within(10, "ordered flush", move || {
        oq.flush().map_err(|e| e.to_string())
    });
    let e = r.expect_err("the func panic reaches flush");
    assert!(e.contains("func panics"), "{e}");
    assert_eq!(seen.count(WarningKind::DropPanicked), 1);
}

/// Counts drops.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn cancelled_far_future_delayed_items_are_freed_before_their_deadline() {
    let (rt, _seen) = rt1("h-prune");
    let q = wq(&rt, "q");
    let freed = Arc::new(AtomicUsize::new(0));
    const N: usize = 20_000;
    for i in 0..N {
        let c = Counted(freed.clone());
        let d = DelayedWork::new("far", move || {
            let _ = &c;
        });
        assert!(q.queue_delayed(&d, Duration::from_secs(3600 + i as u64)));
        assert!(d.cancel());
    }
    // The timer's heap must not keep every cancelled item (and whatever
    // its closure owns) for an hour: its memory would grow with every
    // cancelled arm, however few items are live.
    assert!(
        common::eventually(5, || freed.load(SeqCst) >= N / 2),
        "only {} of {N} cancelled items freed",
        freed.load(SeqCst)
    );
    assert!(timer_still_fires(&q));
}

#[test]
fn a_detached_spawn_whose_result_panics_on_drop_is_reported_as_its_panic() {
    let (rt, _seen) = rt1("h-spawn");
    let panics = Arc::new(AtomicUsize::new(0));
    let p = panics.clone();
    let rt2 = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name("h-spawn2")
        .on_panic(move |_| {
            p.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    drop(rt);
    let q = wq(&rt2, "q");
    drop(q.spawn(|| PanicOnDrop("detached result")));
    let q = within(
        10,
        "flush after a detached result's panicking drop",
        move || {
            q.flush();
            q
        },
    );
    assert_eq!(panics.load(SeqCst), 1);
    assert!(fresh_job_runs(&q), "the pool stopped serving");
}

#[test]
fn panicking_thread_and_warning_hooks_stop_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (c1, c2, c3) = (calls.clone(), calls.clone(), calls.clone());
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name("h-hooks")
        .idle_timeout(Duration::from_millis(20))
        .on_thread_start(move || {
            c1.fetch_add(1, SeqCst);
            panic!("hostile start hook");
        })
        .on_thread_stop(move || {
            c2.fetch_add(1, SeqCst);
            panic!("hostile stop hook");
        })
        .on_warning(move |_| {
            c3.fetch_add(1, SeqCst);
            panic!("hostile warning hook");
        })
        .build()
        .unwrap();
    let q = wq(&rt, "q");
    // Workers come and go (blocking items force new ones; the short idle
    // timeout reaps them), and a warning is raised from a worker.
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let tx = tx.clone();
            q.queue_fn(move || {
                kwq::blocking(|| std::thread::sleep(Duration::from_millis(5)));
                tx.send(()).unwrap();
            });
        }
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("pool stalled");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let w = Work::new("bomb", {
        let b = PanicOnDrop("reported to a panicking hook");
        move || {
            let _ = &b;
        }
    });
    q.queue(&w);
    drop(w);
    let q = within(10, "flush", move || {
        q.flush();
        q
    });
    assert!(fresh_job_runs(&q), "the pool stopped serving");
    assert!(calls.load(SeqCst) >= 3, "hooks were not called");
}

#[test]
fn a_panicking_lockup_hook_does_not_stop_the_watchdog() {
    let lockups = Arc::new(AtomicUsize::new(0));
    let l = lockups.clone();
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .thread_name("h-lockup")
        .watchdog(Some(Duration::from_millis(40)))
        // The pool monitor would unstick the stall this test needs.
        .detect_blocking(false)
        .on_lockup(move |_| {
            l.fetch_add(1, SeqCst);
            panic!("hostile lockup hook");
        })
        .build()
        .unwrap();
    let q = wq(&rt, "q");
    for round in 1..=2 {
        // Unannotated blocking with another item waiting: a lockup.
        q.queue_fn(|| std::thread::sleep(Duration::from_millis(400)));
        q.queue_fn(|| {});
        assert!(
            common::eventually(10, || lockups.load(SeqCst) >= round),
            "lockup {round} not reported"
        );
        let q2 = &q;
        q2.flush();
    }
}

#[test]
fn a_panicking_input_iterator_propagates_from_next_and_drops_cleanly() {
    // Decided: the input is pulled (ahead) on the consuming thread, so its
    // panic comes out of `next()` at once; dropping the map afterwards
    // waits for the batches in flight and returns.
    let r = within(30, "ordered_map over a panicking input", || {
        catch_unwind(AssertUnwindSafe(|| {
            let input = (0..10_000u64).inspect(|&x| assert!(x != 777, "hostile input"));
            ordered_map(input, |x| x * 2).count()
        }))
    });
    assert!(r.is_err());
}

#[test]
fn a_slow_input_does_not_hold_back_ready_results() {
    // A slow input (10 ms per item) and a cheap `f`: each output must come
    // out soon after its input was produced, not once the read-ahead
    // window (or a batch sized for the cheap `f`) has been filled.
    const N: usize = 40;
    let lags = within(60, "ordered_map over a slow input", || {
        let produced = Arc::new(Mutex::new(Vec::new()));
        let p = produced.clone();
        let input = (0..N).inspect(move |_| {
            std::thread::sleep(Duration::from_millis(10));
            p.lock().unwrap().push(std::time::Instant::now());
        });
        let mut lags = Vec::new();
        for (k, y) in ordered_map(input, |x| x).enumerate() {
            assert_eq!(y, k);
            lags.push(produced.lock().unwrap()[k].elapsed());
        }
        lags
    });
    let worst = lags.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(150),
        "an output waited {worst:?} after its input (lags {lags:?})"
    );
}

#[test]
fn a_runtime_whose_hooks_panic_on_drop_is_torn_down_cleanly() {
    // The runtime's configuration (and the user values its hooks own) is
    // dropped by whoever lets go of it last: the program, an exiting
    // worker, the watchdog or the timer. Which one is a race; wherever it
    // happens, the value is dropped exactly once and no thread is left.
    let drops = Arc::new(AtomicUsize::new(0));
    struct Owned(Arc<AtomicUsize>);
    impl Drop for Owned {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
            if !std::thread::panicking() {
                panic!("hostile: hook capture destructor");
            }
        }
    }
    for round in 0..20 {
        let owned = Owned(drops.clone());
        let rt = RuntimeBuilder::new()
            .concurrency(1)
            .thread_name("h-rtdrop")
            .watchdog(Some(Duration::from_millis(4)))
            .idle_timeout(Duration::from_millis(5))
            .on_panic(move |_| {
                let _ = &owned;
            })
            .build()
            .unwrap();
        let q = wq(&rt, "q");
        let d = DelayedWork::new("soon", || {});
        q.queue_delayed(&d, Duration::from_millis(round % 3));
        q.queue_fn(|| panic!("hostile: reported to the hook"));
        // Dropping the queue from one of its own jobs leaves the last
        // references to the runtime on kwq threads.
        let slot = Arc::new(Mutex::new(Some(q)));
        let s = slot.clone();
        slot.lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .queue_fn(move || drop(s.lock().unwrap().take()));
        drop(slot);
        drop(rt);
        drop(d);
    }
    assert!(
        common::eventually(10, || drops.load(SeqCst) == 20),
        "{} of 20 hook captures dropped",
        drops.load(SeqCst)
    );
    if std::path::Path::new("/proc/self/task").exists() {
        assert!(
            common::eventually(10, || threads_named("h-rtdrop") == 0),
            "{} threads left",
            threads_named("h-rtdrop")
        );
    }
}

#[test]
fn a_hook_on_the_timer_thread_cannot_make_the_timer_wait_for_itself() {
    // A warning raised by the timer (a delayed item firing into a destroyed
    // queue) calls `on_warning` on the timer thread. A hook that flushes an
    // item armed on that same timer would wait forever, and every delayed
    // item in the process with it: kwq refuses the wait (a panic the hook
    // call contains) instead.
    let armed = DelayedWork::new("armed", || {});
    let a = armed.clone();
    let flushed = Arc::new(AtomicUsize::new(0));
    let f = flushed.clone();
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name("h-selfwait")
        .on_warning(move |w| {
            if w.kind() == WarningKind::DelayedDropped {
                f.fetch_add(1, SeqCst);
                a.work().flush();
            }
        })
        .build()
        .unwrap();
    let q = wq(&rt, "q");
    let other = wq(&rt, "other");
    assert!(other.queue_delayed(&armed, Duration::from_secs(3600)));
    let d = DelayedWork::new("into-a-dead-queue", || {});
    assert!(q.queue_delayed(&d, Duration::from_millis(10)));
    q.shutdown_timeout(Duration::from_secs(1)).unwrap();
    assert!(common::eventually(5, || flushed.load(SeqCst) == 1));
    assert!(
        timer_still_fires(&other),
        "the timer thread waits for itself"
    );
    assert!(armed.cancel());
}
