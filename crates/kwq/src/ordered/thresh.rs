//! Dynamic `max_active` driven by the backlog — Btrfs's `thresh`
//! (kernel-semantics §2.2, BT-5).
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
//!   ring, exact and free.
//! * The hook runs once per claimed *batch*, not per item, and at most one
//!   thread evaluates at a time (`try_lock`; a busy lock means somebody is
//!   evaluating right now, so skipping loses nothing).
//! * The frequency limit is the intent of Btrfs's counter (evaluate once
//!   every `thresh / 4` calls) rather than its letter (Btrfs skips only one
//!   call in every `thresh / 4`).
//! * Btrfs treats `thresh < 32` as "no threshold"; kwq honours any
//!   threshold `>= 1` (`thresh(0)` means Btrfs's default, 32). Not calling
//!   `thresh` at all means no threshold: `current_active = max_active`.
//! * The workqueue's `max_active` is set while the lock is held, so after
//!   every adjustment it equals `current_active` (BT-5) with no window in
//!   which a later adjustment could be overtaken by an earlier one.

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::Mutex;

/// Btrfs `DFT_THRESHOLD`.
pub(crate) const DEFAULT_THRESH: u64 = 32;

/// One evaluation of the Btrfs rule: the next `current_active`.
///
/// ```text
///   new = current + (pending > thresh) - (pending < thresh / 2), clamped to [1, limit]
/// ```
pub(crate) fn next_active(current: usize, pending: u64, thresh: u64, limit: usize) -> usize {
    let mut n = current;
    if pending > thresh {
        n += 1;
    }
    if pending < thresh / 2 {
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

    /// `thresh_exec_hook`: maybe adjust `current` given `pending`; calls
    /// `apply(new)` (with the lock held) when it changed.
    pub(crate) fn exec_hook(&self, pending: u64, current: &AtomicUsize, apply: impl FnOnce(usize)) {
        let Some(mut count) = self.count.try_lock() else {
            return;
        };
        *count += 1;
        if *count < (self.thresh / 4).max(1) {
            return;
        }
        *count = 0;
        let cur = current.load(Relaxed);
        let new = next_active(cur, pending, self.thresh, self.limit);
        if new != cur {
            current.store(new, Relaxed);
            apply(new);
        }
    }

    /// Btrfs `btrfs_workqueue_normal_congested`.
    pub(crate) fn congested(&self, pending: u64) -> bool {
        pending > 2 * self.thresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matches_btrfs() {
        // Grow above thresh, shrink below thresh/2, hold in between.
        assert_eq!(next_active(1, 33, 32, 8), 2);
        assert_eq!(next_active(3, 20, 32, 8), 3);
        assert_eq!(next_active(3, 15, 32, 8), 2);
        // Clamped to [1, limit].
        assert_eq!(next_active(8, 1000, 32, 8), 8);
        assert_eq!(next_active(1, 0, 32, 8), 1);
        assert_eq!(next_active(1, 1000, 32, 1), 1);
    }

    #[test]
    fn hook_is_rate_limited_and_bounded() {
        let th = Thresh::new(0, 4);
        assert_eq!(th.thresh(), DEFAULT_THRESH);
        let cur = AtomicUsize::new(1);
        let mut applied = Vec::new();
        for _ in 0..100 {
            th.exec_hook(10_000, &cur, |n| applied.push(n));
        }
        // 100 calls, one evaluation per 8: 12 evaluations, capped at 4.
        assert_eq!(applied, vec![2, 3, 4]);
        for _ in 0..100 {
            th.exec_hook(0, &cur, |n| applied.push(n));
        }
        assert_eq!(applied, vec![2, 3, 4, 3, 2, 1]);
        assert_eq!(cur.load(Relaxed), 1);
    }
}
