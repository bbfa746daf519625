//! Helpers shared by the ordered-layer integration tests: runtimes,
//! time limits that turn a hang into a failure, polling, latches.
#![allow(dead_code)] // each test file uses a subset

use kwq::Runtime;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A runtime of `concurrency` workers per pool, without the lockup
/// watchdog (tests that block on purpose would trip it).
pub fn rt(concurrency: usize) -> Runtime {
    kwq::RuntimeBuilder::new()
        .concurrency(concurrency)
        .watchdog(None)
        .build()
        .unwrap()
}

pub fn spin_for(us: u64) {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// Runs `f` on another thread and fails if it takes longer than `secs`
/// (the hung thread is leaked).
pub fn within<R: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what}: no result after {secs} s (hang)"),
    }
}

/// Polls `cond` for up to `secs`; true if it became true.
pub fn eventually(secs: u64, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A one-shot latch.
#[derive(Clone, Default)]
pub struct Latch(Arc<AtomicBool>);
impl Latch {
    pub fn set(&self) {
        self.0.store(true, SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(SeqCst)
    }
    /// Waits (inside kwq::blocking) until set or `secs` passed; true if set.
    pub fn wait(&self, secs: u64) -> bool {
        kwq::blocking(|| eventually(secs, || self.is_set()))
    }
}

/// A one-shot gate whose `wait` blocks in a plain `Condvar`, *without*
/// telling kwq: a worker waiting on it stays counted as running (what the
/// pool monitor and the rescuers must cope with).
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    /// Whether the gate opened within `limit`.
    pub fn wait(&self, limit: Duration) -> bool {
        let (m, c) = &*self.0;
        let g = m.lock().unwrap();
        let (g, _) = c.wait_timeout_while(g, limit, |open| !*open).unwrap();
        *g
    }
}
