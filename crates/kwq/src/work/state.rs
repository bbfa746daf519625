//! The work item state word.
//!
//! One `AtomicU64` per item holds four flag bits and an *instance number*:
//!
//! ```text
//!  63                                        8 7      4   3     2     1     0
//! +-------------------------------------------+--------+-----+-----+-----+-----+
//! |               SEQ (instance)              | unused | CAN | PRK | RUN | PND |
//! +-------------------------------------------+--------+-----+-----+-----+-----+
//! ```
//!
//! * `PENDING` — an instance is queued: on a worklist, on an inactive list, on
//!   the timer, or parked. Set by the queueing side with a test-and-set
//!   ([`State::transition_to_pending`]); cleared when the instance starts
//!   running or is cancelled. While set, queueing returns `false` (WQ-1).
//! * `RUNNING` — a worker is executing the function. Set by the worker that
//!   won [`State::transition_to_running`], cleared by that worker alone.
//!   Because every start goes through this word, an item can never run on two
//!   workers at once, whichever workqueues or pools it was queued on (WQ-3).
//! * `PARKED` — the pending instance was picked while the previous one was
//!   still running, and waits in the item's park slot for that run to end
//!   (the kernel's collision path, which parks on the running worker's
//!   `scheduled` list). Only set or cleared with the item's slot lock held.
//! * `CANCELING` — a `cancel_sync` is in progress; queueing fails meanwhile.
//! * `SEQ` — incremented every time a new instance is queued (and by
//!   `mod_delayed`, which replaces the pending instance). Every token that
//!   stands for a pending instance (a worklist task, a timer entry, a parked
//!   task) carries the `SEQ` it was made for, and is *stale* — dropped
//!   without running — once the word no longer says `PENDING` with that `SEQ`.
//!   This is how cancel and `mod_delayed` work without removing anything from
//!   a lock-free list.
//!
//! All transitions are read-modify-write operations on the whole word
//! (compare-exchange loops), so each one is atomic with respect to every
//! other. Each returns a `#[must_use]` value telling the caller what it now
//! owns and must do.
//!
//! # Identity
//!
//! The kernel decides "is this the same work item?" by address and function
//! pointer, which a freed and reallocated item can satisfy. kwq never asks
//! that question: the state word lives inside the item's own allocation,
//! which is reference counted and outlives every token and every run. A new
//! item is a new word; it cannot be confused with a running one.

use crate::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};

pub(crate) use kwq_policy::state::{CANCELING, PARKED, PENDING, RUNNING};

const PENDING_W: u64 = PENDING as u64;
const RUNNING_W: u64 = RUNNING as u64;
const PARKED_W: u64 = PARKED as u64;
const CANCELING_W: u64 = CANCELING as u64;

/// Shift of the instance number.
const SEQ_SHIFT: u32 = 8;
/// One instance.
const SEQ_ONE: u64 = 1 << SEQ_SHIFT;

/// The atomic state word of one work item.
#[derive(Debug)]
pub(crate) struct State(AtomicU64);

/// A copy of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    pub(crate) fn is_pending(self) -> bool {
        self.0 & PENDING_W != 0
    }
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING_W != 0
    }
    pub(crate) fn is_parked(self) -> bool {
        self.0 & PARKED_W != 0
    }
    pub(crate) fn is_canceling(self) -> bool {
        self.0 & CANCELING_W != 0
    }
    /// The number of the newest instance ever queued.
    pub(crate) fn seq(self) -> u64 {
        self.0 >> SEQ_SHIFT
    }
    /// Is a token made for instance `seq` still the live pending instance?
    pub(crate) fn is_live(self, seq: u64) -> bool {
        self.is_pending() && self.seq() == seq
    }
    fn with(self, set: u64, clear: u64) -> Snapshot {
        Snapshot((self.0 | set) & !clear)
    }
    fn bump(self) -> Snapshot {
        Snapshot(self.0.wrapping_add(SEQ_ONE))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut flags = Vec::new();
        for (bit, name) in [
            (PENDING_W, "PENDING"),
            (RUNNING_W, "RUNNING"),
            (PARKED_W, "PARKED"),
            (CANCELING_W, "CANCELING"),
        ] {
            if self.0 & bit != 0 {
                flags.push(name);
            }
        }
        write!(f, "State {{ seq: {}, {} }}", self.seq(), flags.join("|"))
    }
}

/// Outcome of [`State::transition_to_pending`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToPending {
    /// The caller owns the new pending instance `seq` and must hand a token
    /// for it to a worklist or the timer.
    Queued { seq: u64 },
    /// An instance was already pending: nothing changed (WQ-1).
    AlreadyPending,
    /// A `cancel_sync` is running: nothing changed.
    Canceling,
}

/// Outcome of [`State::transition_to_running`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToRunning {
    /// PENDING cleared, RUNNING set: the caller runs the function now.
    Run,
    /// The previous instance is still running: the caller must park its token
    /// (see [`State::transition_to_parked`]).
    Busy,
    /// The token is stale (cancelled or superseded): drop it.
    Stale,
}

/// Outcome of [`State::transition_to_parked`] (slot lock held).
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToParked {
    /// PARKED set: the caller stores its token in the slot before unlocking.
    Parked,
    /// The running instance ended meanwhile: PENDING cleared, RUNNING set,
    /// the caller runs the function now.
    Run,
    /// The token became stale.
    Stale,
}

/// Outcome of [`State::transition_to_idle`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToIdle {
    /// RUNNING cleared. Every instance up to `done` has finished.
    Idle { done: u64 },
    /// A parked instance waits: the caller must take the slot lock and call
    /// [`State::transition_parked_to_running`].
    Parked,
}

/// Outcome of [`State::transition_to_canceled`] (slot lock held).
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToCanceled {
    /// A pending instance was removed; `was_parked` says whether its token is
    /// in the slot (the caller must take it out). `done` is set when no run
    /// is in progress, so waiters on the cancelled instance can be released.
    Canceled { was_parked: bool, done: Option<u64> },
    /// Nothing was pending.
    NotPending,
}

impl State {
    pub(crate) fn new() -> State {
        State(AtomicU64::new(0))
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Acquire))
    }

    /// Runs `f` in a compare-exchange loop until it returns `None` (no
    /// change) or its new value is installed. Returns the snapshot the
    /// decision was made on and `f`'s result.
    fn fetch_update<R>(&self, mut f: impl FnMut(Snapshot) -> (Option<Snapshot>, R)) -> R {
        let mut cur = self.load();
        loop {
            let (next, r) = f(cur);
            let Some(next) = next else { return r };
            match self.0.compare_exchange_weak(cur.0, next.0, AcqRel, Acquire) {
                Ok(_) => return r,
                Err(actual) => cur = Snapshot(actual),
            }
        }
    }

    /// Queueing side: test-and-set PENDING, starting a new instance.
    pub(crate) fn transition_to_pending(&self) -> TransitionToPending {
        self.fetch_update(|s| {
            if s.is_pending() {
                (None, TransitionToPending::AlreadyPending)
            } else if s.is_canceling() {
                (None, TransitionToPending::Canceling)
            } else {
                let n = s.bump().with(PENDING_W, 0);
                (Some(n), TransitionToPending::Queued { seq: n.seq() })
            }
        })
    }

    /// `mod_delayed`: replace the pending instance (if any) by a new one, or
    /// start one. Returns the new `seq` and whether one was pending (and
    /// whether its token was parked). `None` while canceling. Slot lock held.
    pub(crate) fn transition_to_repending(&self) -> Option<(u64, bool, bool)> {
        self.fetch_update(|s| {
            if s.is_canceling() {
                return (None, None);
            }
            let n = s.bump().with(PENDING_W, PARKED_W);
            (Some(n), Some((n.seq(), s.is_pending(), s.is_parked())))
        })
    }

    /// Worker side: start running the instance a token stands for.
    pub(crate) fn transition_to_running(&self, seq: u64) -> TransitionToRunning {
        self.fetch_update(|s| {
            if !s.is_live(seq) || s.is_parked() {
                // A parked token exists only for the live instance; a second
                // token for it (duplicate timer fire) is stale.
                (None, TransitionToRunning::Stale)
            } else if s.is_running() {
                (None, TransitionToRunning::Busy)
            } else {
                (Some(s.with(RUNNING_W, PENDING_W)), TransitionToRunning::Run)
            }
        })
    }

    /// Worker side, slot lock held: park the token for `seq` behind the
    /// running instance, or run it if that run has just ended.
    pub(crate) fn transition_to_parked(&self, seq: u64) -> TransitionToParked {
        self.fetch_update(|s| {
            if !s.is_live(seq) || s.is_parked() {
                (None, TransitionToParked::Stale)
            } else if s.is_running() {
                (Some(s.with(PARKED_W, 0)), TransitionToParked::Parked)
            } else {
                (Some(s.with(RUNNING_W, PENDING_W)), TransitionToParked::Run)
            }
        })
    }

    /// Worker side: the running instance's run ended.
    pub(crate) fn transition_to_idle(&self) -> TransitionToIdle {
        self.fetch_update(|s| {
            debug_assert!(s.is_running(), "{s:?}");
            if s.is_parked() {
                (None, TransitionToIdle::Parked)
            } else {
                // A pending instance is the newest (`seq`); every older one —
                // the one that just ran and any cancelled or superseded in
                // between — has finished.
                let done = if s.is_pending() { s.seq() - 1 } else { s.seq() };
                (Some(s.with(0, RUNNING_W)), TransitionToIdle::Idle { done })
            }
        })
    }

    /// Worker side, slot lock held, after [`TransitionToIdle::Parked`]: the
    /// parked instance becomes the running one (`run_here`) or goes back to
    /// being merely pending so it can be queued on another pool. Returns its
    /// `seq`.
    pub(crate) fn transition_parked_to_running(&self, run_here: bool) -> u64 {
        self.fetch_update(|s| {
            debug_assert!(s.is_running() && s.is_parked() && s.is_pending(), "{s:?}");
            let n = if run_here {
                s.with(0, PENDING_W | PARKED_W)
            } else {
                s.with(0, RUNNING_W | PARKED_W)
            };
            (Some(n), s.seq())
        })
    }

    /// Cancel side, slot lock held: remove the pending instance, if any.
    pub(crate) fn transition_to_canceled(&self) -> TransitionToCanceled {
        self.fetch_update(|s| {
            if !s.is_pending() {
                return (None, TransitionToCanceled::NotPending);
            }
            let done = if s.is_running() { None } else { Some(s.seq()) };
            (
                Some(s.with(0, PENDING_W | PARKED_W)),
                TransitionToCanceled::Canceled {
                    was_parked: s.is_parked(),
                    done,
                },
            )
        })
    }

    /// `cancel_sync`: claim the CANCELING bit. False if another canceller
    /// holds it.
    pub(crate) fn try_set_canceling(&self) -> bool {
        self.fetch_update(|s| {
            if s.is_canceling() {
                (None, false)
            } else {
                (Some(s.with(CANCELING_W, 0)), true)
            }
        })
    }

    pub(crate) fn clear_canceling(&self) {
        self.fetch_update(|s| (Some(s.with(0, CANCELING_W)), ()));
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::*;

    #[test]
    fn queue_twice_is_coalesced() {
        let s = State::new();
        assert_eq!(
            s.transition_to_pending(),
            TransitionToPending::Queued { seq: 1 }
        );
        assert_eq!(
            s.transition_to_pending(),
            TransitionToPending::AlreadyPending
        );
        assert_eq!(s.transition_to_running(1), TransitionToRunning::Run);
        // requeue while running: a new instance
        assert_eq!(
            s.transition_to_pending(),
            TransitionToPending::Queued { seq: 2 }
        );
        assert_eq!(s.transition_to_running(2), TransitionToRunning::Busy);
        assert_eq!(s.transition_to_parked(2), TransitionToParked::Parked);
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Parked);
        assert_eq!(s.transition_parked_to_running(true), 2);
        assert!(s.load().is_running() && !s.load().is_pending());
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Idle { done: 2 });
        assert_eq!(s.load().seq(), 2);
    }

    #[test]
    fn cancel_makes_tokens_stale() {
        let s = State::new();
        let TransitionToPending::Queued { seq } = s.transition_to_pending() else {
            panic!()
        };
        assert_eq!(
            s.transition_to_canceled(),
            TransitionToCanceled::Canceled {
                was_parked: false,
                done: Some(seq)
            }
        );
        assert_eq!(s.transition_to_running(seq), TransitionToRunning::Stale);
        assert_eq!(s.transition_to_canceled(), TransitionToCanceled::NotPending);
        // requeue after cancel gets a new seq; the old token stays stale
        assert_eq!(
            s.transition_to_pending(),
            TransitionToPending::Queued { seq: seq + 1 }
        );
        assert_eq!(s.transition_to_running(seq), TransitionToRunning::Stale);
        assert_eq!(s.transition_to_running(seq + 1), TransitionToRunning::Run);
    }

    #[test]
    fn canceling_refuses_queue() {
        let s = State::new();
        assert!(s.try_set_canceling());
        assert!(!s.try_set_canceling());
        assert_eq!(s.transition_to_pending(), TransitionToPending::Canceling);
        s.clear_canceling();
        assert!(matches!(
            s.transition_to_pending(),
            TransitionToPending::Queued { .. }
        ));
    }

    #[test]
    fn done_reflects_cancelled_successor() {
        let s = State::new();
        let _ = s.transition_to_pending();
        assert_eq!(s.transition_to_running(1), TransitionToRunning::Run);
        let _ = s.transition_to_pending(); // seq 2 pending while 1 runs
        assert_eq!(
            s.transition_to_canceled(),
            TransitionToCanceled::Canceled {
                was_parked: false,
                done: None
            }
        );
        // the run of 1 ends; instance 2 was cancelled, so everything up to 2 is done
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Idle { done: 2 });
    }

    #[test]
    fn done_skips_cancelled_instances_below_the_pending_one() {
        let s = State::new();
        let _ = s.transition_to_pending(); // 1
        assert_eq!(s.transition_to_running(1), TransitionToRunning::Run);
        let _ = s.transition_to_pending(); // 2, then cancelled
        let _ = s.transition_to_canceled();
        let _ = s.transition_to_pending(); // 3 pending
                                           // 1 ran, 2 was cancelled: a flusher of 2 must be released now
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Idle { done: 2 });
    }

    #[test]
    fn repending_supersedes() {
        let s = State::new();
        assert_eq!(s.transition_to_repending(), Some((1, false, false)));
        assert_eq!(s.transition_to_repending(), Some((2, true, false)));
        assert_eq!(s.transition_to_running(1), TransitionToRunning::Stale);
        assert_eq!(s.transition_to_running(2), TransitionToRunning::Run);
    }
}
