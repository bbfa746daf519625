//! How long a parallel stage takes per item: an estimate runners keep from
//! timed batches, so the crew can size claims and decide whom to wake by
//! *time* rather than by item count.
//!
//! Why time: a fixed item count is wrong at one end or the other. Cheap
//! items (nanoseconds) want big claims and a long backlog before a second
//! runner is woken, or the claim and wake costs dominate; slow items
//! (milliseconds) want claims of one and every idle runner woken at once,
//! or `max_active` parallel stages run one after another. With an estimate
//! `c` ns per item, a claim targets [`TARGET_BATCH_NS`] of work and a
//! producer wakes another runner once the unclaimed backlog holds more than
//! [`WAKE_NS`] of work per active runner.
//!
//! Until the first sample the cost is unknown and treated as slow (claims
//! of one, eager wakes): a wrong guess then costs cheap items a few extra
//! wakes, while the opposite guess would serialise slow ones.
//!
//! The estimate jumps up at once on a slower sample and halves the distance
//! to each faster one. The asymmetry follows the cost of being wrong:
//! believing slow items cheap serialises them (seconds, for items of a
//! hundred milliseconds), believing cheap items slow costs a few small
//! claims and extra wakes. A sample inflated by preemption (a runner
//! descheduled mid-batch) is forgotten within a dozen samples, and while the
//! estimate is high enough for the clock to be cheap in comparison
//! ([`ALWAYS_TIME_NS`]), every batch is timed. A batch claimed while items
//! were cheap (at most [`TARGET_BATCH_NS`] of *estimated* work) still runs
//! on one runner if they turn slow: the bounded cost of claiming in
//! batches.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A claim aims for about this much work (and the iterator's batches too).
pub(crate) const TARGET_BATCH_NS: u64 = 50_000;

/// Wake another runner when the unclaimed backlog holds more than this much
/// work per active runner.
pub(crate) const WAKE_NS: u64 = 50_000;

/// Above this estimate every batch is timed (two clock reads are then a
/// small fraction of even a one-item batch).
pub(crate) const ALWAYS_TIME_NS: u64 = 20_000;

/// See the module docs. Relaxed throughout: it is a hint, never part of a
/// correctness argument.
#[derive(Debug, Default)]
pub(crate) struct Cost {
    /// ns per item; 0 = no sample yet.
    ns_per_item: AtomicU64,
}

impl Cost {
    /// The estimate, `None` before the first sample.
    #[inline]
    pub(crate) fn get(&self) -> Option<u64> {
        match self.ns_per_item.load(Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    /// Records a batch of `items` that took `ns` in all.
    #[inline]
    pub(crate) fn record(&self, items: u64, ns: u64) {
        let sample = (ns / items.max(1)).max(1);
        let (old, avg) = match self.get() {
            None => (0, sample),
            Some(old) if sample >= old => (old, sample),
            Some(old) => (old, (old + sample) / 2),
        };
        // Steady state leaves the line alone: every claim and idle-runner
        // wake reads it, so a store per sample would cost the readers a
        // cache miss each for a change that decides nothing.
        if avg.abs_diff(old) > old / 16 {
            self.ns_per_item.store(avg.max(1), Relaxed);
        }
    }

    /// Should every batch be timed (estimate unknown or slow)?
    #[inline]
    pub(crate) fn time_every_batch(&self) -> bool {
        self.get().is_none_or(|ns| ns >= ALWAYS_TIME_NS)
    }

    /// Items worth about `target_ns` of work, between 1 and `max` (1 while
    /// the cost is unknown).
    #[inline]
    pub(crate) fn items_for(&self, target_ns: u64, max: u64) -> u64 {
        match self.get() {
            None => 1,
            Some(ns) => (target_ns / ns).clamp(1, max.max(1)),
        }
    }

    /// Items worth about `target_ns` of work, between 0 and `max` (0 while
    /// the cost is unknown): a backlog above this many items per active
    /// runner wakes another.
    #[inline]
    pub(crate) fn backlog_for(&self, target_ns: u64, max: u64) -> u64 {
        match self.get() {
            None => 0,
            Some(ns) => (target_ns / ns).min(max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_cost_means_claim_one_and_wake_eagerly() {
        let c = Cost::default();
        assert_eq!(c.get(), None);
        assert_eq!(c.items_for(TARGET_BATCH_NS, 32), 1);
        assert_eq!(c.backlog_for(WAKE_NS, 64), 0);
    }

    #[test]
    fn cheap_items_get_big_claims_and_a_long_wake_backlog() {
        let c = Cost::default();
        c.record(1000, 5_000); // 5 ns per item
        assert_eq!(c.get(), Some(5));
        assert_eq!(c.items_for(TARGET_BATCH_NS, 32), 32);
        assert_eq!(c.backlog_for(WAKE_NS, 64), 64);
        c.record(10, 20_000); // 2 µs per item: jumps up at once
        assert_eq!(c.get(), Some(2_000));
        assert_eq!(c.items_for(TARGET_BATCH_NS, 32), 25);
        assert_eq!(c.backlog_for(WAKE_NS, 64), 25);
    }

    #[test]
    fn slow_items_get_claims_of_one_and_wake_at_once() {
        let c = Cost::default();
        c.record(1, 200_000_000);
        assert_eq!(c.items_for(TARGET_BATCH_NS, 32), 1);
        assert_eq!(c.backlog_for(WAKE_NS, 64), 0);
        assert!(c.time_every_batch());
    }

    #[test]
    fn a_preempted_sample_is_forgotten_within_a_dozen_samples() {
        let c = Cost::default();
        c.record(32, 32 * 2_000); // 2 µs per item
        c.record(32, 3_000_000); // descheduled for 3 ms mid-batch
        assert!(c.get().unwrap() > 90_000);
        assert_eq!(c.items_for(TARGET_BATCH_NS, 32), 1);
        let mut samples = 0;
        while c.items_for(TARGET_BATCH_NS, 32) < 20 {
            c.record(1, 2_000);
            samples += 1;
        }
        assert!(samples <= 12, "{samples} samples to recover");
        assert!(!c.time_every_batch() || c.get().unwrap() >= ALWAYS_TIME_NS);
    }

    #[test]
    fn a_zero_time_batch_still_counts_as_a_sample() {
        let c = Cost::default();
        c.record(0, 0);
        assert_eq!(c.get(), Some(1));
    }
}
