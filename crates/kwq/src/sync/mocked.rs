//! Facade over loom (`--cfg kwq_loom`): same names as `std.rs`.

pub(crate) use loom::sync::Arc;

pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

pub(crate) mod thread {
    pub(crate) use loom::thread::{yield_now, Builder};
    pub(crate) use std::thread::panicking;
    pub(crate) fn sleep(_d: std::time::Duration) {
        loom::thread::yield_now()
    }
}

pub(crate) use loom::thread_local;

pub(crate) mod hint {
    pub(crate) use loom::hint::spin_loop;
}

use std::collections::VecDeque;
use std::time::Duration;

/// Weak is not modelled by loom; kwq only uses it for diagnostics
/// registries, which loom tests do not exercise.
#[derive(Debug)]
pub(crate) struct Weak<T>(Option<Arc<T>>);

impl<T> Weak<T> {
    pub(crate) fn upgrade(&self) -> Option<Arc<T>> {
        self.0.clone()
    }
}

pub(crate) fn downgrade<T>(a: &Arc<T>) -> Weak<T> {
    Weak(Some(a.clone()))
}

#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(t: T) -> Self {
        Mutex(loom::sync::Mutex::new(t))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }

    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().ok()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Condvar(loom::sync::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(loom::sync::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(g).unwrap()
    }

    pub(crate) fn wait_timeout<'a, T>(
        &self,
        g: MutexGuard<'a, T>,
        _d: Duration,
    ) -> MutexGuard<'a, T> {
        // loom has no time: a timed wait is an untimed one.
        self.0.wait(g).unwrap()
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one()
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all()
    }
}

#[derive(Debug)]
pub(crate) struct Parker(Arc<(loom::sync::Mutex<bool>, loom::sync::Condvar)>);

#[derive(Debug, Clone)]
pub(crate) struct Unparker(Arc<(loom::sync::Mutex<bool>, loom::sync::Condvar)>);

impl Parker {
    pub(crate) fn new() -> Self {
        Parker(Arc::new((
            loom::sync::Mutex::new(false),
            loom::sync::Condvar::new(),
        )))
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker(self.0.clone())
    }

    pub(crate) fn park(&self) {
        let mut g = self.0 .0.lock().unwrap();
        while !*g {
            g = self.0 .1.wait(g).unwrap();
        }
        *g = false;
    }

    pub(crate) fn park_timeout(&self, _d: Duration) {
        self.park()
    }
}

impl Unparker {
    pub(crate) fn unpark(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_one();
    }
}

/// The worklist, with just the guarantees the pool's sleep/wake handshake
/// asks of the real one (`std.rs`): publishing ends with a SeqCst
/// read-modify-write, and emptiness is one SeqCst load — no more. A plain
/// mutex-guarded queue would also order `is_empty` after every `push` by
/// the lock, and hide a lost wake-up the real lock-free queue allows.
///
/// Tasks are stored under a lock and counted after they are stored; a pop
/// takes a count first, so a taken count always finds a stored task.
#[derive(Debug)]
pub(crate) struct Fifo<T> {
    tasks: loom::sync::Mutex<VecDeque<T>>,
    published: atomic::AtomicUsize,
}

impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo {
            tasks: loom::sync::Mutex::new(VecDeque::new()),
            published: atomic::AtomicUsize::new(0),
        }
    }

    pub(crate) fn push(&self, t: T) {
        self.tasks.lock().unwrap().push_back(t);
        self.published.fetch_add(1, atomic::Ordering::SeqCst);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        use atomic::Ordering::SeqCst;
        let mut n = self.published.load(SeqCst);
        loop {
            if n == 0 {
                return None;
            }
            match self.published.compare_exchange(n, n - 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        let t = self.tasks.lock().unwrap().pop_front();
        Some(t.expect("a counted task is stored"))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.published.load(atomic::Ordering::SeqCst) == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.published.load(atomic::Ordering::SeqCst)
    }
}

pub(crate) use std::sync::OnceLock;

pub(crate) fn raise_thread_priority() {}

/// Loom models SeqCst accesses as acquire/release only (loom issue 180);
/// the fence gives it the ordering the real build gets from the SeqCst
/// write before this point (see the module docs).
pub(crate) fn fence_after_seqcst_write() {
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}
