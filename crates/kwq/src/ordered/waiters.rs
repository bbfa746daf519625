//! Threads blocked until some ring condition holds: a producer waiting for
//! room, a flusher waiting for a release, the iterator's consumer waiting
//! for its head batch.
//!
//! # Protocol: no lost wake-up
//!
//! ```text
//!   waiter                                  notifier
//!   ------                                  --------
//!   count += 1              (SeqCst RMW)    change the state   (SeqCst RMW, or
//!   fence(SeqCst)                                               store + fence(SeqCst))
//!   lock; while !cond():    (SeqCst loads)  if count != 0      (SeqCst load)
//!            wait on cv                         lock; notify_all
//!   count -= 1
//! ```
//!
//! Store-buffering with full barriers on both sides: either the waiter's
//! condition check sees the state change (and it does not sleep), or the
//! notifier's load sees the count (and it takes the lock and notifies).
//! The notifier takes the lock before notifying, and the waiter checks the
//! condition under that lock before every wait, so a notification cannot
//! slip between a waiter's check and its sleep. A notifier that finds
//! `count == 0` costs one load, which is why every release of the ordered
//! ring can afford to call [`Waiters::notify`].
//!
//! The loom model in `src/tests/loom_waiters.rs` checks this against the
//! ring's real release path.

use crate::sync::atomic::{fence, AtomicUsize, Ordering::*};
use crate::sync::{hint, thread, Condvar, Mutex};

/// Condition checks before a waiter registers and sleeps (half spin, half
/// yield). Under loom one is enough to cover both paths.
#[cfg(not(kwq_loom))]
const POLLS: usize = 64;
#[cfg(kwq_loom)]
const POLLS: usize = 1;

/// Sleeping inside kwq's `blocking`, so a worker that waits here does not
/// hold back its pool. (Loom checks the handshake alone.)
#[cfg(not(kwq_loom))]
use crate::blocking;
#[cfg(kwq_loom)]
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    count: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Waiters {
    /// Wakes every waiter after a state change. The change must be a
    /// SeqCst write (store or read-modify-write), or be followed by a
    /// SeqCst fence, before the call: that is the notifier's half of the
    /// handshake.
    pub(crate) fn notify(&self) {
        // The caller's SeqCst RMW (or fence) orders this load after its
        // state change; the helper only spells that out for loom.
        crate::sync::fence_after_seqcst_write();
        if self.count.load(SeqCst) != 0 {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Returns once `cond()` holds; `cond` must read the state it waits
    /// for with SeqCst loads. Polls briefly, then sleeps inside
    /// [`crate::blocking`].
    pub(crate) fn wait_until(&self, cond: impl Fn() -> bool) {
        for i in 0..POLLS {
            if cond() {
                return;
            }
            if i < POLLS / 2 {
                hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        self.count.fetch_add(1, SeqCst);
        fence(SeqCst);
        blocking(|| {
            let mut g = self.lock.lock();
            while !cond() {
                g = self.cv.wait(g);
            }
        });
        self.count.fetch_sub(1, SeqCst);
    }

    /// Threads currently registered as sleeping (for dumps).
    pub(crate) fn count(&self) -> usize {
        self.count.load(Relaxed)
    }
}
