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
//! # Targets
//!
//! A waiter may name the sequence number whose release it waits for
//! ([`Waiters::sleep_until_released`] for a full producer,
//! [`Waiters::wait_released`] for a flusher): it lowers `wake_at` to it (SeqCst
//! RMW, under the lock, before each condition check), and a release of
//! item `seq` notifies only if `seq >= wake_at` (SeqCst load after the
//! count). So a producer waiting for a *batch* of room is woken once per
//! batch, not once per release, and a flusher once. The notifier resets `wake_at` under the
//! lock before `notify_all`, and every woken waiter lowers it again before
//! it sleeps again, so no target is forgotten. Waiters without a target
//! ([`Waiters::wait_until`]) use target 0: any notification wakes them.
//! The Dekker argument above covers `wake_at` the same way it covers the
//! count: either the waiter's check sees the release, or the notifier's
//! loads see both the count and the target.
//!
//! A waiter that finds its condition met *after* publishing its target
//! (the common case for a woken waiter: it re-publishes before its
//! re-check) withdraws the target on its way out, under the lock, but
//! only while it is the sole registered waiter — otherwise the value may
//! be another waiter's. Without this a passed target lingers and the next
//! release wakes the next waiter at once, for nothing: a full producer
//! used to be woken twice per batch of room (measured: 1950 context
//! switches per million items at `--rounds 500`, 1009 with the withdrawal).
//!
//! The loom model in `src/tests/loom_waiters.rs` checks this against the
//! ring's real release path.

use crate::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{hint, thread, Condvar, Mutex};
use std::time::{Duration, Instant};

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

/// Checks `cond` [`POLLS`] times, half spinning, half yielding; true
/// as soon as it holds.
// Under loom POLLS is 1, so the spinning half is empty.
#[cfg_attr(kwq_loom, allow(clippy::absurd_extreme_comparisons))]
fn poll(cond: &dyn Fn() -> bool) -> bool {
    for i in 0..POLLS {
        if cond() {
            return true;
        }
        if i < POLLS / 2 {
            hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
    false
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Waiters {
    count: AtomicUsize,
    /// Lowest sequence number whose release a registered waiter needs
    /// (`u64::MAX`: none since the last notification).
    wake_at: AtomicU64,
    lock: Mutex<()>,
    cv: Condvar,
    /// How long the last [`Waiters::sleep_until_released`] took to see its
    /// target (ns; 0 if it gave up waiting for it): the next one's
    /// patience. Advisory, so Relaxed.
    typical_ns: AtomicU64,
    /// Loom has no clock: a model that needs the patience to run out
    /// builds its waiters with [`Waiters::impatient`], whose patience runs
    /// out at every check, so both of its branches are explored.
    #[cfg(kwq_loom)]
    impatient: bool,
}

/// The longest patience of a waiter for a target release: how long a
/// producer waits, at most, before it notices that releases have stopped
/// short of its target (twice this, if some trickled in first).
const MAX_PATIENCE: Duration = Duration::from_millis(10);

/// What a waiter for a target release does when its patience runs out.
struct Patience<'a> {
    every: Duration,
    /// Releases so far: still moving means the target is coming.
    progress: &'a dyn Fn() -> u64,
    /// Good enough once releases have stopped short of the target.
    enough: &'a dyn Fn() -> bool,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            count: AtomicUsize::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            typical_ns: AtomicU64::new(0),
            #[cfg(kwq_loom)]
            impatient: false,
        }
    }
}

impl Waiters {
    /// Waiters whose patience runs out at every check (loom models only).
    #[cfg(kwq_loom)]
    pub(crate) fn impatient() -> Waiters {
        Waiters {
            impatient: true,
            ..Waiters::default()
        }
    }

    /// Has a patience that ends at `end` run out?
    fn patience_over(&self, now: Instant, end: Instant) -> bool {
        // Under loom `Instant` is the real clock, which would make a model
        // nondeterministic (a slow exploration step would run the patience
        // out): there, the patience runs out exactly when the waiters are
        // impatient.
        #[cfg(kwq_loom)]
        {
            let _ = (now, end);
            self.impatient
        }
        #[cfg(not(kwq_loom))]
        {
            now >= end
        }
    }

    /// Wakes every waiter after a state change. The change must be a
    /// SeqCst write (store or read-modify-write), or be followed by a
    /// SeqCst fence, before the call: that is the notifier's half of the
    /// handshake.
    pub(crate) fn notify(&self) {
        self.notify_released(u64::MAX);
    }

    /// [`Waiters::notify`] after the release of item `seq`: wakes the
    /// waiters only if one of them waits for `seq` or an earlier item.
    pub(crate) fn notify_released(&self, seq: u64) {
        // The caller's SeqCst RMW (or fence) orders these loads after its
        // state change; the helper only spells that out for loom.
        crate::sync::fence_after_seqcst_write();
        if self.count.load(SeqCst) != 0 && seq >= self.wake_at.load(SeqCst) {
            // Reset under the lock (see "Targets"); notify after it, so the
            // woken waiters do not run into the held lock.
            drop({
                let g = self.lock.lock();
                self.wake_at.store(u64::MAX, SeqCst);
                g
            });
            self.cv.notify_all();
        }
    }

    /// Returns once `cond()` holds; `cond` must read the state it waits
    /// for with SeqCst loads. Polls briefly, then sleeps inside
    /// [`crate::blocking`]; any notification wakes it.
    pub(crate) fn wait_until(&self, cond: impl Fn() -> bool) {
        if poll(&cond) {
            return;
        }
        self.sleep(0, &cond, None);
    }

    /// Returns once item `seq` is released (`released()`, which must read
    /// the release with SeqCst loads). Polls briefly, then sleeps inside
    /// [`crate::blocking`], woken only by releases of `seq` or later — a
    /// flusher behind a long stream wakes once, not once per release.
    pub(crate) fn wait_released(&self, seq: u64, released: impl Fn() -> bool) {
        if poll(&released) {
            return;
        }
        self.sleep(seq, &released, None);
    }

    /// Returns once item `seq` is released (`released()`, which must read
    /// the release with SeqCst loads), or once releases have stopped short
    /// of it and `enough()` holds. Sleeps at once (inside
    /// [`crate::blocking`]) and is woken only by releases of `seq` or later,
    /// or by its patience timer: each time the patience runs out it reads
    /// `progress()` (releases so far); if that moved it waits on, if not it
    /// settles for `enough()`. The patience is one and a half times what
    /// the previous wait took (so a steady stream sees its target before
    /// the timer fires, one wake-up per wait), at least `patience` and at
    /// most [`MAX_PATIENCE`].
    pub(crate) fn sleep_until_released(
        &self,
        seq: u64,
        released: impl Fn() -> bool,
        patience: Duration,
        progress: impl Fn() -> u64,
        enough: impl Fn() -> bool,
    ) {
        if released() {
            return;
        }
        let typical = Duration::from_nanos(self.typical_ns.load(Relaxed));
        let every = (typical + typical / 2).clamp(patience, MAX_PATIENCE.max(patience));
        let start = Instant::now();
        let p = Patience {
            every,
            progress: &progress,
            enough: &enough,
        };
        let hit = self.sleep(seq, &released, Some(p));
        let took = if hit {
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        };
        self.typical_ns.store(took, Relaxed);
    }

    /// True if it returned because `cond()` held (not `enough()`).
    fn sleep(&self, at: u64, cond: &dyn Fn() -> bool, patience: Option<Patience<'_>>) -> bool {
        self.count.fetch_add(1, SeqCst);
        fence(SeqCst);
        let hit = blocking(|| {
            let mut g = self.lock.lock();
            let mut at = at;
            // When the patience next runs out, and the releases seen then.
            // Past it (releases stopped short of the target), any release
            // wakes the waiter (target 0) and `enough()` suffices.
            let mut deadline = patience
                .as_ref()
                .map(|p| (Instant::now() + p.every, (p.progress)()));
            loop {
                // Under the lock, so a notifier's reset cannot fall between
                // this and the wait below.
                self.wake_at.fetch_min(at, SeqCst);
                // Orders the target before the check (a full barrier, as
                // after the count; loom needs it spelled out).
                fence(SeqCst);
                if cond() {
                    self.drop_target();
                    break true;
                }
                match (deadline, &patience) {
                    (Some((end, seen)), Some(p)) => {
                        let now = Instant::now();
                        if self.patience_over(now, end) {
                            let moved = (p.progress)();
                            if moved != seen {
                                deadline = Some((now + p.every, moved));
                            } else {
                                (deadline, at) = (None, 0);
                            }
                            continue;
                        }
                        g = self.cv.wait_timeout(g, end.saturating_duration_since(now));
                    }
                    (_, Some(p)) if (p.enough)() => {
                        self.drop_target();
                        break false;
                    }
                    _ => g = self.cv.wait(g),
                }
            }
        });
        self.count.fetch_sub(1, SeqCst);
        hit
    }

    /// Called under the lock by a waiter that is leaving (its condition
    /// held): withdraws the target it published, if nobody else can need
    /// `wake_at`. Left in place, a target already passed would make the
    /// next release wake whoever registers next, for nothing: a full
    /// producer would be woken twice per batch of room, once just after it
    /// fell asleep again.
    ///
    /// Safe only when this waiter is the one registered (`count == 1`, its
    /// own registration): every other waiter registers before it publishes
    /// a target, and publishes under the lock we hold, so it will publish
    /// after this store. With any other waiter registered the target stays
    /// (at worst one spurious wake-up, as before).
    fn drop_target(&self) {
        if self.count.load(SeqCst) == 1 {
            self.wake_at.store(u64::MAX, SeqCst);
        }
    }

    /// Threads currently registered as sleeping (for dumps).
    pub(crate) fn count(&self) -> usize {
        self.count.load(Relaxed)
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A condition that fails until the polls are over, so the waiter
    /// registers, publishes its target and finds it met under the lock.
    fn met_after_the_polls() -> impl Fn() -> bool {
        let checks = Cell::new(0);
        move || {
            checks.set(checks.get() + 1);
            checks.get() > POLLS
        }
    }

    #[test]
    fn a_waiter_that_finds_its_target_met_withdraws_it() {
        // Left behind, the target (already passed) would make the next
        // release wake the next waiter at once, for nothing.
        let w = Waiters::default();
        w.wait_released(5, met_after_the_polls());
        assert_eq!(w.count(), 0);
        assert_eq!(
            w.wake_at.load(SeqCst),
            u64::MAX,
            "a met target was left behind"
        );
    }

    #[test]
    fn a_target_stays_while_another_waiter_is_registered() {
        // With a second registration the leaving waiter cannot tell whose
        // target `wake_at` holds, so it leaves it (a spurious wake-up at
        // worst, never a lost one).
        let w = Waiters::default();
        w.count.fetch_add(1, SeqCst); // the other waiter, registered
        w.wait_released(9, met_after_the_polls());
        assert_eq!(w.wake_at.load(SeqCst), 9);
        w.count.fetch_sub(1, SeqCst);
    }
}
