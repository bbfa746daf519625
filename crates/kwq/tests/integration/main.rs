//! Integration tests of the `kwq` runtime: one binary, one module per area
//! (house style: shuttle / ripgrep single test binary).
//!
//! Every test that depends on timing builds its own [`kwq::Runtime`], since
//! the test harness runs tests on parallel threads of one process. Ordering
//! is controlled with gates, channels and barriers; sleeps only give the
//! runtime a chance to misbehave, or bound delayed work from below. Every
//! wait that a bug could turn into a hang has a timeout, so a broken
//! guarantee fails the test instead of hanging the suite.

#![allow(clippy::disallowed_types)]

mod api;
mod cancel;
mod delayed;
mod flush;
mod misuse;
mod ordering;
mod panics;
mod pools;
mod shutdown;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long any "this must happen" wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A small "give it a chance to misbehave" pause (never a correctness
/// mechanism).
pub fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

/// A dedicated runtime with `concurrency` running workers per managed pool.
pub fn runtime(concurrency: usize) -> kwq::Runtime {
    kwq::RuntimeBuilder::new()
        .concurrency(concurrency)
        .thread_name("kwq-test")
        .build()
        .expect("valid runtime")
}

/// A workqueue builder on `rt`.
pub fn wq_on(rt: &kwq::Runtime, name: &str) -> kwq::WorkqueueBuilder {
    kwq::Workqueue::builder(name).runtime(rt)
}

/// A one-shot, reusable-after-`close` gate: `wait` blocks until `open`.
#[derive(Clone, Default, Debug)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    /// Blocks until opened; panics after [`TIMEOUT`] (so a worker stuck on
    /// a gate that a failing test never opens frees itself).
    pub fn wait(&self) {
        let g = self.0 .0.lock().unwrap();
        let (g, r) = self
            .0
             .1
            .wait_timeout_while(g, TIMEOUT, |open| !*open)
            .unwrap();
        drop(g);
        assert!(!r.timed_out(), "gate never opened");
    }
}

/// Counts concurrent executions; `enter` returns how many were already in.
#[derive(Clone, Default, Debug)]
pub struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight::default()
    }
    pub fn enter(&self) -> usize {
        let before = self.now.fetch_add(1, SeqCst);
        self.max.fetch_max(before + 1, SeqCst);
        before
    }
    pub fn exit(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
    pub fn max(&self) -> usize {
        self.max.load(SeqCst)
    }
}

/// A shared counter.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }
    pub fn inc(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// Runs `f` on a helper thread and fails the test if it does not return
/// within `limit` (the thread is leaked in that case).
pub fn within<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("{what} did not return within {limit:?} (hang)"),
    }
}

/// Panic reports collected by a runtime's panic handler.
#[derive(Clone, Default, Debug)]
pub struct Reports(Arc<Mutex<Vec<Report>>>);

#[derive(Clone, Debug)]
pub struct Report {
    pub work: String,
    pub workqueue: String,
    pub message: String,
}

impl Reports {
    /// A runtime whose panic handler records into the returned `Reports`.
    pub fn runtime(concurrency: usize) -> (kwq::Runtime, Reports) {
        let reports = Reports::default();
        let r = reports.clone();
        let rt = kwq::RuntimeBuilder::new()
            .concurrency(concurrency)
            .thread_name("kwq-test")
            .on_panic(move |p: kwq::PanicReport| {
                r.0.lock().unwrap().push(Report {
                    work: p.work().to_string(),
                    workqueue: p.workqueue().to_string(),
                    message: p.message().to_string(),
                });
            })
            .build()
            .expect("valid runtime");
        (rt, reports)
    }
    pub fn all(&self) -> Vec<Report> {
        self.0.lock().unwrap().clone()
    }
    /// Waits until at least `n` reports arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Report> {
        let start = std::time::Instant::now();
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "expected {n} panic report(s), got {all:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A value whose drop is recorded (for WQ-6 lifetime checks).
#[derive(Debug)]
pub struct DropFlag(pub mpsc::Sender<()>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A barrier whose `wait` fails the test after [`TIMEOUT`] instead of
/// hanging.
#[derive(Clone, Debug)]
pub struct TimedBarrier(Arc<(Mutex<usize>, Condvar, usize)>);

impl TimedBarrier {
    pub fn new(n: usize) -> TimedBarrier {
        TimedBarrier(Arc::new((Mutex::new(0), Condvar::new(), n)))
    }
    /// Returns false if the other parties did not arrive in time.
    pub fn wait(&self) -> bool {
        let (m, cv, n) = &*self.0;
        let mut g = m.lock().unwrap();
        *g += 1;
        cv.notify_all();
        let (g, r) = cv.wait_timeout_while(g, TIMEOUT, |c| *c < *n).unwrap();
        drop(g);
        !r.timed_out()
    }
}

/// Live threads of this process whose name starts with `prefix` (Linux
/// truncates thread names to 15 bytes, so keep prefixes short).
pub fn threads_named(prefix: &str) -> usize {
    thread_names(prefix).len()
}

/// Names of the live threads counted by [`threads_named`].
pub fn thread_names(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.starts_with(prefix))
        .map(|c| c.trim_end().to_string())
        .collect()
}

/// Waits until `cond` holds, failing after `limit`.
pub fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Fails unless every thread named `prefix…` exits within 3 s.
pub fn assert_threads_exit(prefix: &str) {
    let t0 = std::time::Instant::now();
    while threads_named(prefix) != 0 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        thread_names(prefix),
        Vec::<String>::new(),
        "threads still alive 3 s after teardown"
    );
}
