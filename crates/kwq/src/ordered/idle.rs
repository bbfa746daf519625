//! Which runners of a crew are idle, and the producer/runner handshake that
//! keeps an item from being stranded while every runner goes idle.
//!
//! Bit `i` set ⇔ runner `i` is idle: not queued on the workqueue and not in
//! its loop. The bit is cleared by whoever wakes the runner (who must then
//! queue its `Work`), and set by the runner itself when it leaves its loop.
//!
//! # Protocol: no stranded item
//!
//! ```text
//!   producer                               runner i leaving its loop
//!   --------                               -------------------------
//!   store QUEUED(t)         (SeqCst)       bits.fetch_or(bit i)        (SeqCst)
//!   m = bits.load()         (SeqCst)       if has_claimable()          (SeqCst loads)
//!   if an idle runner is wanted:               if bits.fetch_and(!bit i) had bit i:
//!       clear its bit, queue its Work               continue the loop
//!                                              (else somebody queued us: we run again)
//! ```
//!
//! All four marked operations are SeqCst, so they fall into one total order:
//! either the producer's load sees runner `i` idle (and wakes a runner if
//! none is active), or runner `i`'s re-check sees the item. A producer that
//! sees an active runner and a short backlog wakes nobody: the active
//! runner re-checks before it leaves. A runner woken while it was leaving
//! finds its bit already cleared and returns — its `Work` is queued again —
//! so it never runs twice at once.
//!
//! The re-check (`Ring::has_claimable`) reads the claim cursor, then that
//! slot's stamp. A *helper* — a producer running stages while the ring is
//! full (`Crew::help_once`), or the iterator's consumer — may claim and
//! complete item `c` between those two loads, so the leaving runner sees
//! `DONE(c)` and misses a `QUEUED(c + 1)` whose producer saw it active and
//! woke nobody. That item is not stranded because every helper goes round
//! its own loop again (push or help, then kick or claim): a protocol
//! invariant, kept by `push_blocking` and `OrderedMap::refill`.
//!
//! `src/tests/loom_idle.rs` checks this with the real ring.

use crate::sync::atomic::{AtomicU64, Ordering::*};

/// Runners per crew at most (one bit each).
pub(crate) const MAX_RUNNERS: usize = 64;

/// The `n` lowest bits.
pub(crate) fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Idle {
    bits: AtomicU64,
}

impl Idle {
    /// `limit` runners, all idle.
    pub(crate) fn all(limit: usize) -> Idle {
        debug_assert!((1..=MAX_RUNNERS).contains(&limit));
        Idle {
            bits: AtomicU64::new(low_bits(limit)),
        }
    }

    /// The idle set, for dumps.
    pub(crate) fn snapshot(&self) -> u64 {
        self.bits.load(Relaxed)
    }

    /// Producer half, after the caller stored `QUEUED` (SeqCst): picks an
    /// idle runner among the first `current_active` to wake and clears its
    /// bit — the caller must then queue that runner's `Work`. Wakes nobody
    /// while another runner is active and `backlog()` is at most
    /// `wake_backlog` items per active runner.
    #[inline]
    pub(crate) fn pick_for_item(
        &self,
        current_active: usize,
        wake_backlog: impl FnOnce() -> u64,
        backlog: impl FnOnce() -> u64,
    ) -> Option<usize> {
        crate::sync::fence_after_seqcst_write();
        let idle = self.bits.load(SeqCst);
        if idle == 0 {
            return None;
        }
        let wanted = idle & low_bits(current_active);
        if wanted == 0 {
            return None;
        }
        let active = current_active as u64 - u64::from(wanted.count_ones());
        if active > 0 && backlog() <= wake_backlog() * active {
            return None;
        }
        self.take_one(wanted)
    }

    /// Picks an idle runner among the first `current_active` if `wanted()`
    /// (checked only when one is idle), clearing its bit like
    /// [`Idle::pick_for_item`].
    pub(crate) fn pick_if(
        &self,
        current_active: usize,
        wanted: impl FnOnce() -> bool,
    ) -> Option<usize> {
        // No ordering point here: this is advisory help (a drain owner
        // about to block), not half of the no-stranded-item handshake.
        let idle = self.bits.load(SeqCst) & low_bits(current_active);
        if idle != 0 && wanted() {
            self.take_one(idle)
        } else {
            None
        }
    }

    /// Clears the bit of the lowest candidate; `Some(i)` if this call is
    /// the one that cleared it (the runner is now ours to queue).
    fn take_one(&self, candidates: u64) -> Option<usize> {
        let i = candidates.trailing_zeros() as usize;
        let bit = 1u64 << i;
        (self.bits.fetch_and(!bit, SeqCst) & bit != 0).then_some(i)
    }

    /// Runner half: runner `me` found nothing to claim and wants to leave.
    /// True if it must go on instead (an item slipped in and nobody woke
    /// it); false if it may return (nothing claimable, or somebody already
    /// woke it and queued its `Work` again).
    pub(crate) fn leave(&self, me: usize, has_claimable: impl FnOnce() -> bool) -> bool {
        let bit = 1u64 << me;
        self.bits.fetch_or(bit, SeqCst);
        crate::sync::fence_after_seqcst_write();
        if !has_claimable() {
            return false;
        }
        self.bits.fetch_and(!bit, SeqCst) & bit != 0
    }
}
