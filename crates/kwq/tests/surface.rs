//! The public surface added for users: join handles, scoped jobs, item
//! identity, unwind safety, thread hooks and stack size, the warning hook,
//! error kinds.

use std::collections::HashSet;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn rt(concurrency: usize) -> kwq::Runtime {
    kwq::RuntimeBuilder::new()
        .concurrency(concurrency)
        .thread_name("kwq-surface")
        .build()
        .unwrap()
}

/// A queue on `rt` whose only item holds the worker while another thread
/// drains it: from the moment `draining` returns, the queue refuses work
/// from outside. `release` lets the held item (and the drain) finish.
struct Draining {
    wq: Arc<kwq::Workqueue>,
    hold: mpsc::Sender<()>,
    drainer: std::thread::JoinHandle<()>,
}

fn draining(rt: &kwq::Runtime, name: &str) -> Draining {
    let wq = Arc::new(kwq::Workqueue::builder(name).runtime(rt).build().unwrap());
    let (hold, hold_rx) = mpsc::channel::<()>();
    wq.queue_fn(move || {
        let _ = hold_rx.recv_timeout(Duration::from_secs(10));
    });
    let w2 = wq.clone();
    let drainer = std::thread::spawn(move || w2.drain());
    Draining { wq, hold, drainer }
}

impl Draining {
    /// Waits until the drain refuses outside work.
    fn refusing(self) -> Self {
        while self.wq.try_queue_fn(|| {}).is_ok() {
            std::thread::yield_now();
        }
        self
    }

    fn release(self) {
        let _ = self.hold.send(());
        self.drainer.join().unwrap();
    }
}

#[test]
fn spawn_returns_the_value() {
    let rt = rt(2);
    let wq = kwq::Workqueue::builder("spawn")
        .runtime(&rt)
        .build()
        .unwrap();
    let handles: Vec<_> = (0..100u64).map(|i| wq.spawn(move || i * i)).collect();
    let got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, (0..100u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn a_joined_panic_goes_to_the_joiner_not_the_hook() {
    let hooked = Arc::new(AtomicUsize::new(0));
    let h2 = hooked.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .on_panic(move |_| {
            h2.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("spawn-panic")
        .runtime(&rt)
        .build()
        .unwrap();
    let err = wq.spawn(|| -> u32 { panic!("mine") }).join().unwrap_err();
    assert!(err.is_panic() && !err.is_refused() && !err.is_cancelled());
    assert_eq!(err.to_string(), "job panicked: mine");
    let payload = err.try_into_panic().unwrap();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"mine"));
    wq.flush();
    assert_eq!(hooked.load(SeqCst), 0);
}

#[test]
fn a_detached_panic_goes_to_the_hook() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .on_panic(move |r| {
            tx.lock().unwrap().send(r.message().to_string()).unwrap();
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("detached")
        .runtime(&rt)
        .build()
        .unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = wq.spawn(move || {
        go_rx.recv().unwrap();
        panic!("orphan")
    });
    drop(h);
    go_tx.send(()).unwrap();
    let msg = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("hook saw it");
    assert_eq!(msg, "orphan");
}

#[test]
fn spawn_on_a_draining_queue_is_refused_through_the_handle() {
    let rt = rt(1);
    let d = draining(&rt, "spawn-drain");
    // Until the drain has started, spawns are accepted (and wait behind the
    // held worker); a refused one is finished at once.
    let err = loop {
        let h = d.wq.spawn(|| 1);
        if h.is_finished() {
            break h.join().unwrap_err();
        }
        std::thread::yield_now();
    };
    assert!(err.is_refused(), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    d.release();
}

#[test]
fn join_from_a_worker_does_not_starve_a_concurrency_one_pool() {
    let rt = rt(1);
    let wq = kwq::Workqueue::builder("nested")
        .runtime(&rt)
        .build()
        .unwrap();
    let inner = Arc::new(
        kwq::Workqueue::builder("nested-inner")
            .runtime(&rt)
            .build()
            .unwrap(),
    );
    let i2 = inner.clone();
    let h = wq.spawn(move || i2.spawn(|| 5).join().unwrap() + 1);
    assert_eq!(h.join().unwrap(), 6);
}

#[test]
fn scoped_jobs_borrow_the_callers_data() {
    let rt = rt(2);
    let wq = kwq::Workqueue::builder("scoped")
        .runtime(&rt)
        .build()
        .unwrap();
    let data: Vec<u64> = (1..=1000).collect();
    let mut sums = [0u64; 10];
    kwq::scope(|s| {
        for (chunk, out) in data.chunks(100).zip(sums.iter_mut()) {
            s.queue_fn(&wq, move || *out = chunk.iter().sum());
        }
    });
    assert_eq!(sums.iter().sum::<u64>(), 500_500);
}

#[test]
fn scope_reraises_a_jobs_panic_after_all_jobs_finished() {
    let rt = rt(2);
    let wq = kwq::Workqueue::builder("scoped-panic")
        .runtime(&rt)
        .build()
        .unwrap();
    let done = AtomicUsize::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kwq::scope(|s| {
            s.queue_fn(&wq, || panic!("scoped boom"));
            for _ in 0..20 {
                s.queue_fn(&wq, || {
                    std::thread::sleep(Duration::from_millis(1));
                    done.fetch_add(1, SeqCst);
                });
            }
        })
    }));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"scoped boom"));
    assert_eq!(done.load(SeqCst), 20, "scope returned before its jobs");
}

#[test]
fn a_refused_scoped_job_is_dropped_and_counted() {
    let rt = rt(1);
    let d = draining(&rt, "scoped-refuse").refusing();
    let ran = AtomicUsize::new(0);
    kwq::scope(|s| {
        assert!(!s.queue_fn(&d.wq, || {
            ran.fetch_add(1, SeqCst);
        }));
    });
    assert_eq!(ran.load(SeqCst), 0);
    d.release();
}

#[test]
// Hash and Eq are by identity, which interior mutability cannot change
// (clippy cannot know that).
#[allow(clippy::mutable_key_type)]
fn work_identity_is_the_item() {
    let a = kwq::Work::new("same-name", || {});
    let b = kwq::Work::new("same-name", || {});
    let a2 = a.clone();
    assert_eq!(a, a2);
    assert_ne!(a, b);
    let set: HashSet<kwq::Work> = [a.clone(), a2, b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    let d = kwq::DelayedWork::new("d", || {});
    assert_eq!(d, d.clone());
}

#[test]
fn handles_are_unwind_safe() {
    fn check<T: UnwindSafe + RefUnwindSafe>() {}
    check::<kwq::Work>();
    check::<kwq::DelayedWork>();
    check::<kwq::Workqueue>();
    check::<kwq::Runtime>();
    check::<kwq::ordered::BoxedOrderedWorkqueue<u32>>();
}

#[test]
fn thread_hooks_and_stack_size_apply_to_workers() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (started.clone(), stopped.clone());
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .thread_name("kwq-hooked")
        .idle_timeout(Duration::from_millis(50))
        .stack_size(8 << 20)
        .on_thread_start(move || {
            s1.fetch_add(1, SeqCst);
        })
        .on_thread_stop(move || {
            s2.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("hooked")
        .runtime(&rt)
        .build()
        .unwrap();
    // 4 MiB on the stack needs the 8 MiB stack asked for.
    let h = wq.spawn(|| {
        let big = [7u8; 4 << 20];
        std::hint::black_box(&big)[4 << 19]
    });
    assert_eq!(h.join().unwrap(), 7);
    assert!(started.load(SeqCst) >= 1);
    drop(wq);
    drop(rt);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stopped.load(SeqCst) < started.load(SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stopped.load(SeqCst), started.load(SeqCst));
}

#[test]
fn a_panicking_thread_hook_is_contained() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .on_thread_start(|| panic!("start hook"))
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("bad-hook")
        .runtime(&rt)
        .build()
        .unwrap();
    assert_eq!(wq.spawn(|| 3).join().unwrap(), 3);
}

#[test]
fn refused_queueing_reaches_the_warning_hook() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .on_warning(move |w| {
            s.lock()
                .unwrap()
                .push((w.kind(), w.workqueue().map(str::to_string), w.to_string()))
        })
        .build()
        .unwrap();
    let d = draining(&rt, "warned").refusing();
    assert!(!d.wq.queue_fn(|| {}));
    d.release();
    let seen = seen.lock().unwrap();
    // (The pool monitor may report the held worker too.)
    let (_, q, msg) = seen
        .iter()
        .find(|(k, _, _)| *k == kwq::WarningKind::QueueRefused)
        .expect("a QueueRefused warning")
        .clone();
    assert_eq!(q.as_deref(), Some("warned"));
    assert!(msg.contains("draining"), "{msg}");
}

#[test]
fn build_errors_expose_their_kind() {
    use kwq::BuildErrorKind as K;
    let e = kwq::RuntimeBuilder::new()
        .concurrency(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), K::Concurrency);
    let e = kwq::RuntimeBuilder::new()
        .max_workers(1)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), K::MaxWorkers);
    let e = kwq::Workqueue::builder("").build().unwrap_err();
    assert_eq!(e.kind(), K::EmptyName);
    let e = kwq::Workqueue::builder("x")
        .max_active(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), K::MaxActive);
    let e = kwq::ordered::OrderedWorkqueue::builder("o")
        .max_in_flight(0)
        .build::<(), kwq::ordered::BoxedFunc<()>, kwq::ordered::BoxedOrdered<()>>()
        .unwrap_err();
    assert_eq!(e.kind(), K::MaxInFlight);
    let wq = kwq::Workqueue::builder("fixed").ordered().build().unwrap();
    let e = wq.set_max_active(2).unwrap_err();
    assert!(e.is_ordered() && e.out_of_range().is_none());
    let wq = kwq::Workqueue::builder("ranged").build().unwrap();
    let e = wq.set_max_active(0).unwrap_err();
    assert_eq!(e.out_of_range(), Some(0));
}
