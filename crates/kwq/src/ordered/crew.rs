//! Runners: the persistent kwq [`Work`] items that execute parallel stages.
//!
//! An ordered queue owns no threads. It owns `limit` *runner* work items on
//! a private kwq [`Workqueue`] (so they run on the runtime's shared pool);
//! a runner loops claiming batches from the [`Ring`] until nothing is left,
//! then goes idle. Queueing a ring item therefore costs a slot write and a
//! few atomics; a kwq queueing happens only when an idle runner must wake.
//!
//! # Fields and who may touch them
//!
//! * `idle` — A: which runners are idle, and the producer/runner handshake
//!   that keeps an item from being stranded ([`Idle`], `ordered/idle.rs`).
//! * `current_active` — A: how many runners may be woken (`1..=limit`);
//!   changed only by the threshold hook (under the thresh lock), mirrored
//!   into the workqueue's `max_active` (BT-5).
//! * `runners`, `limit`, `wq` — I.

use super::idle::Idle;
pub(crate) use super::idle::MAX_RUNNERS;
use super::ring::Ring;
use super::thresh::Thresh;
pub(crate) use super::waiters::Waiters;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{hint, thread, thread_local, Arc, Weak};
use crate::{Work, Workqueue};
use std::cell::Cell;
use std::time::Instant;

/// Empty polls a runner makes before it goes idle.
const SPIN_POLLS: u32 = 48;

/// Of those, the first polls that spin (2, 4, 8 pauses); the rest yield.
/// An empty poll usually means the item the ring waits for is held by a
/// thread that is not running: a producer or consumer that helps makes one
/// thread more than there are runners, so on a machine with as many cores
/// as runners one of them is always descheduled. A yield gives it the core;
/// a spin only burns the time slice it needs. (Measured in BENCHMARKS.md,
/// session 5: about +1.5% at `--rounds 500`, nothing lost at `--rounds 0`.)
const SPIN_FIRST: u32 = 3;

/// The stages a crew runs; implemented by the ordered queue and by the
/// iterator front end.
pub(crate) trait Stages: Send + Sync + Sized + 'static {
    /// What a producer stores in a slot.
    type Job: Send + 'static;
    /// What the parallel stage leaves in the slot for the ordered stage.
    type Done: Send + 'static;
    /// Wake another runner when the unclaimed backlog exceeds this many
    /// ring items per active runner (see `ordered/cost.rs`; an item of the
    /// iterator front end is a whole batch, so it wants 1).
    fn wake_backlog(&self) -> u64;
    /// How many items one claim may take. A claim also takes at most
    /// `backlog / (2 · current_active)` items ([`Ring::claim_share`]).
    fn max_claim(&self) -> u64;
    /// Should the runner time the batch it is about to run?
    fn time_batch(&self) -> bool {
        false
    }
    /// A timed batch of `items` parallel stages took `ns`.
    fn record_batch(&self, _items: u64, _ns: u64) {}
    /// The parallel stage (`func`). Must not unwind.
    fn func(&self, seq: u64, job: Self::Job) -> Self::Done;
    /// Called after a runner completed a batch (DONE stored and fenced).
    fn after_batch(&self, crew: &Crew<Self>);
}

thread_local! {
    /// Id of the crew whose stage the calling thread is executing (0: none).
    static IN_STAGE: Cell<u64> = const { Cell::new(0) };
}

static NEXT_CREW_ID: AtomicU64 = AtomicU64::new(1);

/// Is the calling thread executing a stage of crew `id`?
pub(crate) fn inside(id: u64) -> bool {
    IN_STAGE.with(|c| c.get() == id)
}

struct StageGuard(u64);
impl StageGuard {
    fn enter(id: u64) -> StageGuard {
        StageGuard(IN_STAGE.with(|c| c.replace(id)))
    }
}
impl Drop for StageGuard {
    fn drop(&mut self) {
        IN_STAGE.with(|c| c.set(self.0));
    }
}

/// A ring plus the runners that work it.
pub(crate) struct Crew<S: Stages> {
    pub(crate) ring: Ring<S::Job, S::Done>,
    pub(crate) stages: S,
    pub(crate) id: u64,
    pub(crate) waiters: Waiters,
    idle: Idle,
    current_active: AtomicUsize,
    limit: usize,
    thresh: Option<Thresh>,
    pub(crate) wq: Workqueue,
    runners: Box<[Work]>,
}

impl<S: Stages> std::fmt::Debug for Crew<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<S: Stages> Crew<S> {
    /// Builds a crew of `limit` runners on `wq`, with a ring of `cap`
    /// slots. With `thresh`, `current_active` starts at 1 and follows the
    /// backlog; without, it is `limit`.
    pub(crate) fn new(
        wq: Workqueue,
        cap: usize,
        limit: usize,
        thresh: Option<Thresh>,
        stages: S,
    ) -> Arc<Crew<S>> {
        debug_assert!((1..=MAX_RUNNERS).contains(&limit));
        let current = if thresh.is_some() { 1 } else { limit };
        if wq.max_active() != current {
            wq.set_max_active(current)
                .expect("max_active within the workqueue range");
        }
        Arc::new_cyclic(|weak: &Weak<Crew<S>>| {
            let runners = (0..limit)
                .map(|i| {
                    let w = weak.clone();
                    Work::new(format!("{}/runner{i}", wq.name()), move || {
                        if let Some(crew) = w.upgrade() {
                            crew.run(i);
                        }
                    })
                })
                .collect();
            Crew {
                ring: Ring::new(cap),
                stages,
                id: NEXT_CREW_ID.fetch_add(1, Relaxed),
                waiters: Waiters::default(),
                idle: Idle::all(limit),
                current_active: AtomicUsize::new(current),
                limit,
                thresh,
                wq,
                runners,
            }
        })
    }

    pub(crate) fn current_active(&self) -> usize {
        self.current_active.load(Relaxed)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Producer side of the idle handshake, after storing `QUEUED(seq)`.
    #[inline]
    pub(crate) fn kick(&self, seq: u64) {
        let cur = self.current_active.load(Relaxed);
        let backlog = || (seq + 1).saturating_sub(self.ring.claimed());
        // Both closures run only if a runner is idle: the common case (all
        // busy) reads nothing a runner writes.
        let wake_backlog = || self.stages.wake_backlog();
        if let Some(i) = self.idle.pick_for_item(cur, wake_backlog, backlog) {
            self.wq.queue(&self.runners[i]);
        }
    }

    /// Wakes an idle runner if parallel work is waiting (a drain owner
    /// calls this before running ordered stages that may block).
    pub(crate) fn help_wanted(&self) {
        let cur = self.current_active.load(Relaxed);
        if let Some(i) = self.idle.pick_if(cur, || self.ring.has_claimable()) {
            self.wq.queue(&self.runners[i]);
        }
    }

    /// Claims one batch of parallel stages and runs it on the calling
    /// thread — `func` of each item, then the ordered drain if the head is
    /// ready — exactly as a runner does. False if nothing was claimable.
    /// The caller must be inside a [`StageGuard`] of this crew.
    fn run_batch(&self) -> bool {
        let max = self.stages.max_claim();
        let spread = 2 * self.current_active() as u64;
        let Some(claim) = self.ring.claim_share(max, spread) else {
            return false;
        };
        self.exec_hook();
        let start = self.stages.time_batch().then(Instant::now);
        let mut items = 0;
        for ticket in claim {
            let job = self.ring.take_job(&ticket);
            let done = self.stages.func(ticket.seq(), job);
            self.ring.complete(ticket, done);
            items += 1;
        }
        self.ring.after_complete();
        if let Some(t0) = start {
            let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stages.record_batch(items, ns);
        }
        self.stages.after_batch(self);
        true
    }

    /// A producer waiting for room lends a hand: runs one batch of parallel
    /// stages (and the ordered drain it enables) on its own thread, the way
    /// the calling thread of oneTBB's `parallel_pipeline` participates.
    /// On a small machine this keeps every core on stage work instead of one
    /// of them parking the producer. False if nothing was claimable.
    pub(crate) fn help_once(&self) -> bool {
        let _stage = StageGuard::enter(self.id);
        self.run_batch()
    }

    /// The runner loop (body of runner `me`'s work function).
    fn run(&self, me: usize) {
        let _stage = StageGuard::enter(self.id);
        let mut polls = 0u32;
        loop {
            if self.run_batch() {
                polls = 0;
                continue;
            }
            polls += 1;
            if polls <= SPIN_POLLS {
                if polls <= SPIN_FIRST {
                    for _ in 0..(1u32 << polls) {
                        hint::spin_loop();
                    }
                } else {
                    thread::yield_now();
                }
                continue;
            }
            // Leave, unless an item slipped in (see `ordered/idle.rs`).
            if !self.idle.leave(me, || self.ring.has_claimable()) {
                return;
            }
            polls = 0;
        }
    }

    /// Btrfs `thresh_exec_hook`, evaluated once per claimed batch.
    fn exec_hook(&self) {
        let Some(th) = &self.thresh else { return };
        let pending = self.ring.tail().saturating_sub(self.ring.claimed());
        th.exec_hook(pending, &self.current_active, |n| {
            self.wq
                .set_max_active(n)
                .expect("thresholded max_active stays within 1..=limit");
        });
    }

    /// Is the backlog above twice the threshold (Btrfs
    /// `btrfs_workqueue_normal_congested`)?
    pub(crate) fn congested(&self) -> bool {
        match &self.thresh {
            Some(th) => th.congested(self.ring.tail().saturating_sub(self.ring.claimed())),
            None => false,
        }
    }

    /// Waits until every runner has left its loop (used on drop).
    pub(crate) fn quiesce(&self) {
        self.wq.flush();
    }

    /// One-paragraph state, for dumps and watchdogs.
    pub(crate) fn describe(&self) -> String {
        let r = &self.ring;
        let head = r.head();
        let s = r.stamp(head);
        format!(
            "ordered '{}': tail={} claimed={} head={} (slot {}: {} #{}) released={} \
             capacity={} runners idle={:#x} active={}/{} waiters={}",
            self.wq.name(),
            r.tail(),
            r.claimed(),
            head,
            head % r.capacity(),
            s.phase,
            s.seq,
            r.released(),
            r.capacity(),
            self.idle.snapshot(),
            self.current_active(),
            self.limit,
            self.waiters.count(),
        )
    }
}
