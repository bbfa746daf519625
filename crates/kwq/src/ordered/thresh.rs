//! Dynamic `max_active` driven by the backlog — Btrfs's `thresh`
//! (`docs/kernel.md` §2.2; property BT-5 of its §5).
//!
//! Btrfs keeps, per sub-queue, `pending` (queued, `func` not started),
//! `current_active` and a `limit_active`. Each worker, before `func`
//! (`thresh_exec_hook`), moves `current_active` one step up when `pending >
//! thresh`, one step down when `pending < thresh / 2`, clamps it to
//! `[1, limit_active]`, and when it changed calls
//! `workqueue_set_max_active`. A counter limits how often that runs.
//!
//! kwq differences, all deliberate:
//!
//! * `pending` is not a separate counter: it is `tail - claimed` of the
//!   ring, exact and free. Growth also counts the batch just claimed (see
//!   [`next_active`]), so that a full ring's backlog reaches `max_in_flight`.
//! * The hook runs once per claimed *batch*, not per item, and at most one
//!   thread evaluates at a time (`try_lock`; a busy lock means somebody is
//!   evaluating right now, so skipping loses nothing).
//! * The frequency limit is the intent of Btrfs's counter (evaluate once
//!   every `thresh / 4` calls) rather than its letter (Btrfs skips only one
//!   call in every `thresh / 4`).
//! * Btrfs treats `thresh < 32` as "no threshold"; kwq honours any
//!   threshold `>= 1` (`thresh(0)` means Btrfs's default, 32). Not calling
//!   `thresh` at all means no threshold: `current_active = max_active`.
//!   The shrink bound is `max(thresh / 2, 1)`, so that `thresh(1)` can
//!   shrink too (at an empty backlog); for `thresh >= 2` it is Btrfs's.
//! * The backlog is bounded by `max_in_flight`, so a threshold at or above
//!   it could never let `current_active` grow: the builder refuses such a
//!   threshold, and `thresh(0)` means `min(32, max_in_flight / 2)`: half
//!   the ring, so that a producer that helps (and so keeps the ring a
//!   little short of full) still crosses it.
//! * Btrfs evaluates only in a worker about to run `func`, so a backlog
//!   behind the only active worker, blocked, never grows `current_active`
//!   (a Btrfs item that waits for a later item of its own queue while it
//!   holds the only active slot hangs). In kwq a runner that is visibly
//!   blocked (draining, or inside `kwq::blocking`) is *stalled*, and when
//!   every runner among the first `current_active` is stalled the crew
//!   wakes one more and raises `current_active` to include it
//!   ([`Thresh::raise_then`]; `ordered/idle.rs`, "Overflow"). A block the crew
//!   cannot see (a `func` that sleeps outside `kwq::blocking`) holds its
//!   slot as in Btrfs.
//! * The workqueue's `max_active` is set while the lock is held, so after
//!   every adjustment it equals `current_active` (BT-5) with no window in
//!   which a later adjustment could be overtaken by an earlier one.

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::Mutex;

/// Btrfs `DFT_THRESHOLD`.
pub(crate) const DEFAULT_THRESH: u64 = 32;

/// One evaluation of the Btrfs rule, for a runner that just claimed
/// `batch` items and left `pending` waiting behind them.
///
/// ```text
///   new = current + (pending + batch > thresh) - (pending < max(thresh / 2, 1)), clamped to [1, limit]
/// ```
///
/// Btrfs evaluates after taking its item (`pending` is decremented first)
/// for both bounds. kwq grows on the backlog *including* the claimed batch,
/// so that a full ring (`max_in_flight` waiting) exceeds any threshold
/// below `max_in_flight`, and shrinks on what is left behind, as Btrfs.
/// The shrink bound is at least 1 so that `thresh(1)` can shrink too.
pub(crate) fn next_active(
    current: usize,
    pending: u64,
    batch: u64,
    thresh: u64,
    limit: usize,
) -> usize {
    let mut n = current;
    if pending.saturating_add(batch) > thresh {
        n += 1;
    }
    if pending < (thresh / 2).max(1) {
        n = n.saturating_sub(1);
    }
    n.clamp(1, limit.max(1))
}

#[derive(Debug)]
pub(crate) struct Thresh {
    thresh: u64,
    limit: usize,
    /// Calls since the last evaluation (L).
    count: Mutex<u64>,
}

impl Thresh {
    /// The threshold the builder uses for `thresh(t)` with `max_in_flight`
    /// slots: `t == 0` selects Btrfs's default, lowered to half of
    /// `max_in_flight`; any other `t` must be below `max_in_flight`.
    pub(crate) fn effective(t: u64, max_in_flight: usize) -> Option<u64> {
        let cap = max_in_flight as u64;
        match t {
            0 => Some(DEFAULT_THRESH.min(cap / 2).max(1)),
            t if t < cap => Some(t),
            _ => None,
        }
    }

    /// `thresh == 0` selects the Btrfs default.
    pub(crate) fn new(thresh: u64, limit: usize) -> Thresh {
        Thresh {
            thresh: if thresh == 0 { DEFAULT_THRESH } else { thresh },
            limit,
            count: Mutex::new(0),
        }
    }

    #[cfg(test)]
    pub(crate) fn thresh(&self) -> u64 {
        self.thresh
    }

    /// `thresh_exec_hook`: maybe adjust `current` after a claim of `batch`
    /// items that left `pending` waiting; calls `apply(new)` (with the lock
    /// held) when it changed.
    pub(crate) fn exec_hook(
        &self,
        pending: u64,
        batch: u64,
        current: &AtomicUsize,
        apply: impl FnOnce(usize),
    ) {
        let Some(mut count) = self.count.try_lock() else {
            return;
        };
        *count += 1;
        if *count < (self.thresh / 4).max(1) {
            return;
        }
        *count = 0;
        let cur = current.load(Relaxed);
        let new = next_active(cur, pending, batch, self.thresh, self.limit);
        if new != cur {
            current.store(new, Relaxed);
            apply(new);
        }
    }

    /// Raises `current` to `n` (at most the limit) if it is below, calling
    /// `apply(new)`, then runs `then` — all with the lock held; true if
    /// `current` changed. `Crew::wake` queues a runner in `then`, so that
    /// no evaluation can lower `current` (and the workqueue's `max_active`)
    /// between the raise and the runner's admission. Waits for the lock
    /// rather than skip, for the same reason.
    pub(crate) fn raise_then(
        &self,
        n: usize,
        current: &AtomicUsize,
        apply: impl FnOnce(usize),
        then: impl FnOnce(),
    ) -> bool {
        let n = n.min(self.limit);
        let _count = self.count.lock();
        let raised = current.load(Relaxed) < n;
        if raised {
            current.store(n, Relaxed);
            apply(n);
        }
        then();
        raised
    }

    /// Btrfs `btrfs_workqueue_normal_congested`.
    pub(crate) fn congested(&self, pending: u64) -> bool {
        pending > self.thresh.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matches_btrfs() {
        // Grow above thresh, shrink below thresh/2, hold in between.
        assert_eq!(next_active(1, 33, 1, 32, 8), 2);
        assert_eq!(next_active(3, 20, 1, 32, 8), 3);
        assert_eq!(next_active(3, 15, 1, 32, 8), 2);
        // Growth counts the claimed batch; shrinking does not.
        assert_eq!(next_active(1, 32, 1, 32, 8), 2);
        assert_eq!(next_active(1, 31, 1, 32, 8), 1);
        assert_eq!(next_active(3, 15, 20, 32, 8), 3);
        // Clamped to [1, limit].
        assert_eq!(next_active(8, 1000, 1, 32, 8), 8);
        assert_eq!(next_active(1, 0, 1, 32, 8), 1);
        assert_eq!(next_active(1, 1000, 1, 32, 1), 1);
        // thresh 1 still shrinks, at an empty backlog.
        assert_eq!(next_active(2, 0, 1, 1, 4), 1);
        assert_eq!(next_active(2, 1, 1, 1, 4), 3);
    }

    #[test]
    fn effective_threshold_stays_below_max_in_flight() {
        assert_eq!(Thresh::effective(0, 1024), Some(DEFAULT_THRESH));
        assert_eq!(Thresh::effective(0, 64), Some(DEFAULT_THRESH));
        assert_eq!(Thresh::effective(0, 32), Some(16));
        assert_eq!(Thresh::effective(0, 1), Some(1));
        assert_eq!(Thresh::effective(7, 8), Some(7));
        assert_eq!(Thresh::effective(8, 8), None);
        assert_eq!(Thresh::effective(u64::MAX, 8), None);
    }

    #[test]
    fn congested_does_not_overflow() {
        assert!(!Thresh::new(u64::MAX, 2).congested(u64::MAX));
        assert!(Thresh::new(4, 2).congested(9));
    }

    #[test]
    fn hook_is_rate_limited_and_bounded() {
        let th = Thresh::new(0, 4);
        assert_eq!(th.thresh(), DEFAULT_THRESH);
        let cur = AtomicUsize::new(1);
        let mut applied = Vec::new();
        for _ in 0..100 {
            th.exec_hook(10_000, 1, &cur, |n| applied.push(n));
        }
        // 100 calls, one evaluation per 8: 12 evaluations, capped at 4.
        assert_eq!(applied, vec![2, 3, 4]);
        for _ in 0..100 {
            th.exec_hook(0, 1, &cur, |n| applied.push(n));
        }
        assert_eq!(applied, vec![2, 3, 4, 3, 2, 1]);
        assert_eq!(cur.load(Relaxed), 1);
    }

    #[test]
    fn raise_only_raises_and_stops_at_the_limit() {
        let th = Thresh::new(4, 3);
        let cur = AtomicUsize::new(1);
        let (mut applied, mut then) = (Vec::new(), 0);
        assert!(th.raise_then(2, &cur, |n| applied.push(n), || then += 1));
        assert!(!th.raise_then(2, &cur, |n| applied.push(n), || then += 1));
        assert!(!th.raise_then(1, &cur, |n| applied.push(n), || then += 1));
        assert!(th.raise_then(9, &cur, |n| applied.push(n), || then += 1));
        assert_eq!(applied, vec![2, 3]);
        assert_eq!(cur.load(Relaxed), 3);
        // `then` runs every time, raised or not.
        assert_eq!(then, 4);
    }
}
