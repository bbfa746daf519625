//! Pure policy shared by the kwq runtime and the `kwq-model` checker.
//!
//! The Linux workqueue keeps every decision about *how many workers* a pool
//! should have in a handful of tiny predicates evaluated under the pool lock
//! (`need_more_worker`, `may_start_working`, `keep_working`,
//! `need_to_create_worker`, `too_many_workers`). kwq does the same, and keeps
//! them here, free of threads and locks, so that the runtime (`kwq::pool`) and
//! the model checker (`kwq-model`) cannot silently diverge: a change of policy
//! is a change of this crate, seen by both.
//!
//! The predicates take a [`PoolSnapshot`]: a plain copy of the counters a pool
//! keeps. How the snapshot is taken (under a lock, from atomics) is the
//! caller's business; the predicates only interpret it.
//!
//! # Concurrency targets
//!
//! The kernel has two kinds of pool. A per-CPU ("bound") pool aims to keep
//! exactly one worker *running* per CPU: a new worker is woken only when the
//! running one sleeps. An unbound pool does no concurrency management at all:
//! every pending item gets a worker. kwq generalises the first to a target of
//! `n` running workers for a pool that spans `n` CPUs ([`Concurrency::Managed`])
//! and keeps the second as [`Concurrency::Unmanaged`]. With `Managed(1)` the
//! predicates are exactly the kernel's bound-pool ones, which is what the model
//! checker uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod state;

/// How many workers of a pool should be *running* (not blocked) at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Concurrency {
    /// Keep this many workers running; wake another only when one blocks
    /// (kernel: per-CPU pools, with a target of 1 per CPU).
    Managed(usize),
    /// No concurrency management: every pending item may get a worker
    /// (kernel: unbound pools, `WORKER_UNBOUND` workers never count as running).
    Unmanaged,
}

impl Concurrency {
    /// The running-worker target as a number (`usize::MAX` when unmanaged).
    #[must_use]
    pub fn target(self) -> usize {
        match self {
            Concurrency::Managed(n) => n.max(1),
            Concurrency::Unmanaged => usize::MAX,
        }
    }
}

/// A copy of the pool counters the policy reads.
///
/// `nr_workers` counts every worker thread of the pool; `nr_idle` those parked
/// on the idle list (the kernel counts the manager as idle too); `nr_running`
/// those executing an item and not blocked (not inside `kwq::blocking`, not
/// running a CPU-intensive item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSnapshot {
    /// At least one active item is waiting on the pool's worklist.
    pub worklist_nonempty: bool,
    /// Workers executing an item and counted for concurrency management.
    pub nr_running: usize,
    /// Workers parked on the idle list.
    pub nr_idle: usize,
    /// All workers of the pool, idle or busy.
    pub nr_workers: usize,
    /// The pool's concurrency target.
    pub concurrency: Concurrency,
    /// Hard cap on `nr_workers` (kwq bounds thread creation; the kernel's cap
    /// is memory).
    pub max_workers: usize,
}

impl PoolSnapshot {
    /// Workers that are not idle (running or blocked).
    #[must_use]
    pub fn nr_busy(&self) -> usize {
        self.nr_workers.saturating_sub(self.nr_idle)
    }
}

/// Should an idle worker be woken? True when work is waiting and fewer workers
/// run than the target (kernel `need_more_worker`: `nr_running == 0` for a
/// target of 1).
#[must_use]
pub fn need_more_worker(p: &PoolSnapshot) -> bool {
    p.worklist_nonempty && p.nr_running < p.concurrency.target()
}

/// May a worker that is about to leave the idle state start executing items?
/// Only if another idle worker remains in reserve, so that if this one blocks
/// there is somebody to wake (kernel `may_start_working`). A worker for which
/// this is false first acts as the pool's manager and creates a worker.
#[must_use]
pub fn may_start_working(p: &PoolSnapshot) -> bool {
    p.nr_idle > 0
}

/// Should a worker that just finished an item take the next one? True while
/// work is waiting and the pool is not over its target by more than this
/// worker itself (kernel `keep_working`: `nr_running <= 1`).
#[must_use]
pub fn keep_working(p: &PoolSnapshot) -> bool {
    p.worklist_nonempty && p.nr_running <= p.concurrency.target()
}

/// Must the manager create a worker? When more are needed, none is idle, and
/// the pool is below its thread cap (kernel `need_to_create_worker`, plus the cap).
#[must_use]
pub fn need_to_create_worker(p: &PoolSnapshot) -> bool {
    need_more_worker(p) && !may_start_working(p) && p.nr_workers < p.max_workers
}

/// Should the idle timer retire a worker? Keep two idle workers, and beyond
/// that at most one idle worker per four busy ones (kernel `too_many_workers`,
/// `MAX_IDLE_WORKERS_RATIO = 4`).
#[must_use]
pub fn too_many_workers(p: &PoolSnapshot) -> bool {
    let idle = p.nr_idle;
    let busy = p.nr_busy();
    idle > 2 && (idle - 2) * 4 >= busy
}

/// Number of colours a workqueue cycles through for `flush()` bookkeeping
/// (kernel `WORK_NR_COLORS` is 15; kwq serialises flushers and needs two).
pub const NR_FLUSH_COLORS: usize = 2;

/// Default `max_active` of a workqueue (kernel `WQ_DFL_ACTIVE`).
pub const DFL_MAX_ACTIVE: usize = 256;

/// Upper bound of `max_active` (kernel `WQ_MAX_ACTIVE`).
pub const MAX_ACTIVE: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(nonempty: bool, running: usize, idle: usize, workers: usize) -> PoolSnapshot {
        PoolSnapshot {
            worklist_nonempty: nonempty,
            nr_running: running,
            nr_idle: idle,
            nr_workers: workers,
            concurrency: Concurrency::Managed(1),
            max_workers: 64,
        }
    }

    #[test]
    fn bound_pool_matches_kernel() {
        // need_more_worker == !list_empty && !nr_running
        assert!(need_more_worker(&snap(true, 0, 1, 2)));
        assert!(!need_more_worker(&snap(true, 1, 1, 2)));
        assert!(!need_more_worker(&snap(false, 0, 1, 2)));
        // keep_working == !list_empty && nr_running <= 1
        assert!(keep_working(&snap(true, 1, 0, 1)));
        assert!(!keep_working(&snap(true, 2, 0, 2)));
        assert!(!keep_working(&snap(false, 1, 0, 1)));
        // need_to_create_worker == need_more && !may_start
        assert!(need_to_create_worker(&snap(true, 0, 0, 1)));
        assert!(!need_to_create_worker(&snap(true, 0, 1, 2)));
    }

    #[test]
    fn creation_respects_cap() {
        let mut p = snap(true, 0, 0, 64);
        assert!(!need_to_create_worker(&p));
        p.nr_workers = 63;
        assert!(need_to_create_worker(&p));
    }

    #[test]
    fn unmanaged_wants_a_worker_per_item() {
        let p = PoolSnapshot {
            concurrency: Concurrency::Unmanaged,
            ..snap(true, 1000, 0, 1000)
        };
        assert!(need_more_worker(&p));
        assert!(keep_working(&p));
    }

    #[test]
    fn too_many_workers_ratio() {
        // 3 idle, 4 busy: (3-2)*4 = 4 >= 4 -> too many
        assert!(too_many_workers(&snap(false, 0, 3, 7)));
        // 3 idle, 5 busy: 4 < 5 -> keep
        assert!(!too_many_workers(&snap(false, 0, 3, 8)));
        // never below two idle
        assert!(!too_many_workers(&snap(false, 0, 2, 2)));
    }
}
