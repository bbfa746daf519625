//! Which runners of a crew are idle, and the producer/runner handshake that
//! keeps an item from being stranded while every runner goes idle.
//!
//! Bit `i` set ⇔ runner `i` is idle: not queued on the workqueue and not in
//! its loop. The bit is cleared by whoever wakes the runner (who must then
//! queue its `Work`), and set by the runner itself when it leaves its loop.
//! A *helper* (a producer waiting for room in a full queue) may
//! instead clear an idle bit itself ([`Idle::stand_in`]) and run stages as
//! that runner, then leave exactly as the runner would: so a clear bit is a
//! runner slot in use, and at most `current_active` threads of the crew run
//! parallel stages (`max_active`, helpers included).
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
//! # Stalled runners
//!
//! A runner that may block — one that owns the ordered drain (ordered
//! stages may block, as Btrfs's do when they submit I/O), or one inside
//! [`crate::blocking`] in either stage — sets its bit in a second mask,
//! `stalled`, and then wakes an idle runner if anything is claimable. A
//! producer counts only active runners that are not stalled when it decides
//! whether a short backlog needs another runner. This is cmwq's
//! concurrency management at the crew's level: a blocked worker makes room
//! for another, so an item queued behind a blocked stage is not left next
//! to an idle runner (which would deadlock if the blocked stage waits for
//! it).
//!
//! ```text
//!   producer                               runner i about to block
//!   --------                               -----------------------
//!   store QUEUED(t)         (SeqCst)       stalled.fetch_or(bit i)     (SeqCst)
//!   m = bits.load()         (SeqCst)       m = bits.load()             (SeqCst)
//!   s = stalled.load()      (SeqCst)       if an idle runner in m and has_claimable():
//!   wake unless enough active                  clear its bit, queue its Work
//!   runners outside s
//! ```
//!
//! Again all SeqCst: either the producer sees runner `i` stalled (and wakes
//! an idle runner), or runner `i`'s check comes after the `QUEUED` store and
//! sees the item (or sees it already claimed).
//!
//! *Overflow.* A threshold may hold `current_active` below the crew's
//! limit. When every runner among the first `current_active` is active
//! *and* stalled, both halves above — and a runner standing down from above the
//! limit, the stalling runner's other Dekker partner — instead wake an idle
//! runner above the limit, and the crew raises `current_active` (and the
//! workqueue's `max_active`) past it and every other runner that is not
//! idle, and queues it under the threshold lock (`Crew::wake`: otherwise
//! the workqueue could park it behind the stalled ones). With nobody idle
//! above the limit, any runner there that is not idle is running on an overflow
//! slot or waiting for an admission a later lowering took away, so the
//! crew raises `current_active` past it instead ([`Idle::overflow_beyond`],
//! `Crew::cover_overflow`). So a thresholded queue
//! whose only active runner blocks — a drain that waits for a later item's
//! `func`, say — still reaches that item, whatever the backlog. At the
//! limit (always, for a fixed `max_active`) nobody is woken: as in cmwq,
//! `max_active` items that all block hold back the rest.
//!
//! `src/tests/loom_idle.rs` checks both handshakes with the real ring.

use crate::sync::atomic::{AtomicU64, Ordering::*};
use crossbeam_utils::CachePadded;

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
    /// Bit `i`: runner `i` is idle. Read by the producer on every item.
    bits: CachePadded<AtomicU64>,
    /// Bit `i`: runner `i` is active but may be blocked (draining, or
    /// inside `kwq::blocking`). Written once or twice per drain session, so
    /// on a line of its own: the producer reads it only when a runner is
    /// idle and the backlog is short.
    stalled: CachePadded<AtomicU64>,
    /// Runners in the crew (bits at or above it are never set).
    limit: usize,
}

impl Idle {
    /// `limit` runners, all idle.
    pub(crate) fn all(limit: usize) -> Idle {
        debug_assert!((1..=MAX_RUNNERS).contains(&limit));
        Idle {
            bits: CachePadded::new(AtomicU64::new(low_bits(limit))),
            stalled: CachePadded::new(AtomicU64::new(0)),
            limit,
        }
    }

    /// The idle set, for dumps.
    pub(crate) fn snapshot(&self) -> u64 {
        self.bits.load(Relaxed)
    }

    /// The stalled set, for dumps.
    pub(crate) fn stalled_snapshot(&self) -> u64 {
        self.stalled.load(Relaxed)
    }

    /// Runner half of the stall handshake: runner `me` (active) may block
    /// now. Marks it stalled, then picks an idle runner among the first
    /// `current_active` to wake if `has_claimable()` — or, with none idle
    /// there and all of them stalled, one above the limit (module docs,
    /// "Overflow") — the caller must then queue that runner's `Work`.
    pub(crate) fn stall(
        &self,
        me: usize,
        current_active: usize,
        has_claimable: impl FnOnce() -> bool,
    ) -> Option<usize> {
        self.mark_then_pick(&self.stalled, me, current_active, has_claimable)
    }

    /// The runner half shared by [`Idle::stall`] and [`Idle::stand_down`]: set
    /// runner `me`'s bit in `mask` (SeqCst), then [`Idle::pick_after_mark`].
    fn mark_then_pick(
        &self,
        mask: &AtomicU64,
        me: usize,
        current_active: usize,
        has_claimable: impl FnOnce() -> bool,
    ) -> Option<usize> {
        mask.fetch_or(1u64 << me, SeqCst);
        crate::sync::fence_after_seqcst_write();
        self.pick_after_mark(current_active, has_claimable)
    }

    /// The second half of [`Idle::stall`] and [`Idle::stand_down`], after
    /// their SeqCst mark: if `has_claimable()`, an idle runner among the
    /// first `current_active`, or else one that the stalled slots overflow to
    /// ([`Idle::pick_overflow`]). Both must overflow: with `current_active` 1, a
    /// runner standing down from above it while the only runner below stalls is
    /// the Dekker pair that finds the stranded item (loom:
    /// `stand_down_racing_the_only_slot_stalling_strands_nothing`).
    fn pick_after_mark(
        &self,
        current_active: usize,
        has_claimable: impl FnOnce() -> bool,
    ) -> Option<usize> {
        let idle = self.bits.load(SeqCst);
        if idle == 0 || !has_claimable() {
            return None;
        }
        let below = idle & low_bits(current_active);
        if below != 0 {
            self.take_one(below)
        } else {
            self.pick_overflow(idle, current_active)
        }
    }

    /// Overflow (module docs): with no runner among the first
    /// `current_active` idle (`idle` is a fresh load of the idle set) and
    /// every one of them stalled, an idle runner above the limit. The
    /// caller raises `current_active` past it before queueing it.
    fn pick_overflow(&self, idle: u64, current_active: usize) -> Option<usize> {
        if current_active >= self.limit {
            return None;
        }
        let below = low_bits(current_active);
        let candidates = idle & low_bits(self.limit) & !below;
        if candidates == 0 || self.stalled.load(SeqCst) & below != below {
            return None;
        }
        self.take_one(candidates)
    }

    /// Runners that are not idle (active, or woken and not yet running).
    pub(crate) fn not_idle(&self) -> usize {
        (!self.bits.load(SeqCst) & low_bits(self.limit)).count_ones() as usize
    }

    /// Is every runner among the first `current_active` active and stalled
    /// while some runner above the limit is not idle (`Crew::cover_overflow`)?
    pub(crate) fn overflow_beyond(&self, current_active: usize) -> bool {
        if current_active >= self.limit {
            return false;
        }
        let below = low_bits(current_active);
        let idle = self.bits.load(SeqCst);
        idle & below == 0
            && self.stalled.load(SeqCst) & below == below
            && !idle & low_bits(self.limit) & !below != 0
    }

    /// Does a stalled runner among the first `current_active` overflow the limit
    /// to a runner above the limit — i.e. is one stalled while
    /// `has_claimable()`? (Advisory: a runner that keeps going on a stale
    /// answer re-asks after its next batch.)
    pub(crate) fn overflows_for(
        &self,
        current_active: usize,
        has_claimable: impl FnOnce() -> bool,
    ) -> bool {
        self.stalled.load(SeqCst) & low_bits(current_active) != 0 && has_claimable()
    }

    /// Runner `me`, above `current_active` after the threshold lowered it,
    /// leaves for good: marks itself idle, then picks a runner to wake if
    /// `has_claimable()` — one among the first `current_active`, or one the
    /// stalled slots overflow to, possibly `me` itself (the caller queues its
    /// `Work`). The same Dekker pair as [`Idle::leave`]: a
    /// runner below the limit that is leaving at the same time re-checks
    /// after setting its bit, so one of the two sees the item.
    pub(crate) fn stand_down(
        &self,
        me: usize,
        current_active: usize,
        has_claimable: impl FnOnce() -> bool,
    ) -> Option<usize> {
        self.mark_then_pick(&self.bits, me, current_active, has_claimable)
    }

    /// Runner `me` is back from what might have blocked.
    pub(crate) fn unstall(&self, me: usize) {
        self.stalled.fetch_and(!(1u64 << me), SeqCst);
    }

    /// Producer half, after the caller stored `QUEUED` (SeqCst): picks an
    /// idle runner among the first `current_active` to wake and clears its
    /// bit — the caller must then queue that runner's `Work`. Wakes nobody
    /// while another runner is active and not stalled and `backlog()` is
    /// at most `wake_backlog` items per such runner.
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
            // Every slot is busy. Only a threshold can leave runners above
            // `current_active`; if every slot is stalled, one of them is
            // overflowed (module docs).
            return self.pick_overflow(idle, current_active);
        }
        let busy = low_bits(current_active) & !idle;
        if busy != 0 {
            let (backlog, per_runner) = (backlog(), wake_backlog());
            let active = u64::from(busy.count_ones());
            if backlog <= per_runner * active {
                // Enough active runners for this backlog, unless some of
                // them may be blocked.
                let running = busy & !self.stalled.load(SeqCst);
                if running != 0 && backlog <= per_runner * u64::from(running.count_ones()) {
                    return None;
                }
            }
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

    /// A helper (a producer waiting for room in a full queue) takes the
    /// slot of an idle runner among the first `current_active`,
    /// so that it runs stages *as* that runner and the crew never has more
    /// than `current_active` threads in parallel stages. `None` if every
    /// such runner is active. The helper gives the slot back with
    /// [`Idle::leave`], exactly as the runner would.
    pub(crate) fn stand_in(&self, current_active: usize) -> Option<usize> {
        let mut idle = self.bits.load(SeqCst) & low_bits(current_active);
        // Another thread may take a candidate first: try the next one.
        while idle != 0 {
            if let Some(i) = self.take_one(idle) {
                return Some(i);
            }
            idle &= idle - 1;
        }
        None
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
