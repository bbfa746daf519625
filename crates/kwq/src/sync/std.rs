//! Facade over `std` (the production build).
#![allow(clippy::disallowed_types)]

pub(crate) use std::sync::Arc;
pub(crate) use std::sync::OnceLock;
pub(crate) use std::sync::Weak;

pub(crate) fn downgrade<T>(a: &Arc<T>) -> Weak<T> {
    Arc::downgrade(a)
}

pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

pub(crate) mod thread {
    pub(crate) use std::thread::{panicking, sleep, yield_now, Builder};
}

pub(crate) use std::thread_local;

pub(crate) mod hint {
    pub(crate) use std::hint::spin_loop;
}

use std::time::Duration;

/// A mutex whose `lock` never reports poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) const fn new(t: T) -> Self {
        Mutex(std::sync::Mutex::new(t))
    }
}

impl<T: ?Sized> Mutex<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// A condition variable paired with [`Mutex`], poison-free.
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wait_timeout<'a, T>(
        &self,
        g: MutexGuard<'a, T>,
        d: Duration,
    ) -> MutexGuard<'a, T> {
        match self.0.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one()
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all()
    }
}

/// A worker's sleep token (crossbeam's futex-backed parker).
#[derive(Debug)]
pub(crate) struct Parker(crossbeam_utils::sync::Parker);

/// Wakes the [`Parker`] it was made from.
#[derive(Debug, Clone)]
pub(crate) struct Unparker(crossbeam_utils::sync::Unparker);

impl Parker {
    pub(crate) fn new() -> Self {
        Parker(crossbeam_utils::sync::Parker::new())
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker(self.0.unparker().clone())
    }

    pub(crate) fn park_timeout(&self, d: Duration) {
        self.0.park_timeout(d)
    }
}

impl Unparker {
    pub(crate) fn unpark(&self) {
        self.0.unpark()
    }
}

/// The pool worklist: a lock-free FIFO.
///
/// Memory-ordering contract relied on by the pool's sleep/wake handshake
/// (`pool/mod.rs`): `push` publishes the task with a SeqCst
/// read-modify-write (crossbeam-deque's `Injector` advances its tail index
/// with a SeqCst compare-exchange), and `is_empty` reads with SeqCst loads.
/// The crossbeam-deque version is pinned to a minor release for this
/// reason; re-check both when upgrading it.
#[derive(Debug)]
pub(crate) struct Fifo<T>(crossbeam_deque::Injector<T>);

impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo(crossbeam_deque::Injector::new())
    }

    pub(crate) fn push(&self, t: T) {
        self.0.push(t)
    }

    pub(crate) fn pop(&self) -> Option<T> {
        loop {
            match self.0.steal() {
                crossbeam_deque::Steal::Success(t) => return Some(t),
                crossbeam_deque::Steal::Empty => return None,
                crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Raises the calling thread's scheduling priority (nice -10) where the OS
/// permits; silently keeps the default otherwise. Used by high-priority pools.
#[cfg(target_os = "linux")]
pub(crate) fn raise_thread_priority() {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: `setpriority` only reads its integer arguments; failure
    // (EPERM/EACCES without CAP_SYS_NICE) is reported through the return
    // value, which we ignore on purpose.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10) };
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn raise_thread_priority() {}

/// Marks a point that relies on a preceding SeqCst write (store or
/// read-modify-write) to order the SeqCst loads after it (see the module docs). Compiles to
/// nothing: the C++20 total order of SeqCst operations already does it.
#[inline(always)]
pub(crate) fn fence_after_seqcst_write() {}
