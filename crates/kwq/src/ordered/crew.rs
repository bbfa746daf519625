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
use std::cell::RefCell;
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

/// What a stage frame knows about a runner, so that [`blocking_hook`] and
/// a draining runner can mark it stalled (`ordered/idle.rs`).
trait Stall {
    /// Runner `me` may block from now on (`on`), or is back (`!on`).
    fn set_stalled(&self, me: usize, on: bool);
}

/// One stage context on this thread: a runner's loop or a helper's batch.
struct Frame {
    crew: u64,
    /// The runner's crew and index, if this frame is a runner's loop. The
    /// pointer is valid while the frame exists: the frame is popped before
    /// the loop that borrowed the crew returns.
    runner: Option<(*const (dyn Stall + 'static), usize)>,
    /// Nested reasons the runner may block (`kwq::blocking`, a drain).
    stalls: u32,
}

impl Frame {
    /// One more reason to block (`on`) or one fewer (`!on`). Returns the
    /// runner to mark (or unmark) stalled if this call crossed zero.
    fn stall_edge(&mut self, on: bool) -> Option<(*const (dyn Stall + 'static), usize)> {
        let runner = self.runner?;
        let edge = if on {
            self.stalls += 1;
            self.stalls == 1
        } else {
            self.stalls = self.stalls.saturating_sub(1);
            self.stalls == 0
        };
        edge.then_some(runner)
    }
}

thread_local! {
    /// The stage frames of the calling thread, innermost last. A thread
    /// nests frames when a stage queues into another full queue and helps
    /// it, or consumes an ordered map.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

static NEXT_CREW_ID: AtomicU64 = AtomicU64::new(1);

/// Is the calling thread executing a stage of crew `id`, at any depth?
pub(crate) fn inside(id: u64) -> bool {
    // `try_with`: an ordered queue may be used from a thread-local's
    // destructor, after FRAMES is gone; such a thread runs no stage.
    FRAMES
        .try_with(|f| f.borrow().iter().any(|fr| fr.crew == id))
        .unwrap_or(false)
}

/// Called by [`crate::blocking`] on entry (`on`) and exit (`!on`): every
/// runner whose stage the thread is executing counts as stalled meanwhile,
/// so its crew wakes another runner for queued items.
pub(crate) fn blocking_hook(on: bool) {
    let _ = FRAMES.try_with(|f| {
        let mut frames = f.borrow_mut();
        for fr in frames.iter_mut() {
            if let Some((crew, me)) = fr.stall_edge(on) {
                // SAFETY: see `Frame::runner`; `set_stalled` never touches
                // FRAMES, so the borrow held here is not re-entered.
                unsafe { (*crew).set_stalled(me, on) };
            }
        }
    });
}

/// Pops its frame when dropped. (No frame is pushed on a thread whose
/// FRAMES was already destroyed: a stage run from a thread-local's
/// destructor is then simply not tracked.)
struct StageGuard {
    pushed: bool,
}
impl StageGuard {
    fn enter(crew: u64, runner: Option<(*const (dyn Stall + 'static), usize)>) -> StageGuard {
        let pushed = FRAMES
            .try_with(|f| {
                f.borrow_mut().push(Frame {
                    crew,
                    runner,
                    stalls: 0,
                })
            })
            .is_ok();
        StageGuard { pushed }
    }
}
impl Drop for StageGuard {
    fn drop(&mut self) {
        if self.pushed {
            let _ = FRAMES.try_with(|f| f.borrow_mut().pop());
        }
    }
}

/// Marks the innermost frame's runner (if it is one) stalled until dropped.
pub(crate) struct DrainSession {
    runner: Option<(*const (dyn Stall + 'static), usize)>,
}
impl Drop for DrainSession {
    fn drop(&mut self) {
        if self.runner.is_none() {
            return;
        }
        let edge = FRAMES
            .try_with(|f| {
                let mut frames = f.borrow_mut();
                frames.last_mut().and_then(|fr| fr.stall_edge(false))
            })
            .ok()
            .flatten();
        if let Some((crew, me)) = edge {
            // SAFETY: the frame that holds `crew` is still on the stack (the
            // session ends inside the batch that started it).
            unsafe { (*crew).set_stalled(me, false) };
        }
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

impl<S: Stages> Stall for Crew<S> {
    fn set_stalled(&self, me: usize, on: bool) {
        if on {
            let cur = self.current_active();
            if let Some(i) = self.idle.stall(me, cur, || self.ring.has_claimable()) {
                self.wake(i);
            } else {
                self.cover_overflow(cur);
            }
        } else {
            self.idle.unstall(me);
        }
    }
}

impl<S: Stages> Crew<S> {
    /// Builds a crew of `limit` runners on `wq`, working `ring`. With `thresh`, `current_active` starts at 1 and follows the
    /// backlog; without, it is `limit`.
    pub(crate) fn new(
        wq: Workqueue,
        ring: Ring<S::Job, S::Done>,
        limit: usize,
        thresh: Option<Thresh>,
        stages: S,
    ) -> Arc<Crew<S>> {
        // Stalled-runner tracking hears of `kwq::blocking` through this.
        crate::current::set_blocking_hook(blocking_hook);
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
                ring,
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
            self.wake(i);
        } else if cur < self.limit {
            self.cover_overflow(cur);
        }
    }

    /// Queues runner `i`, whose idle bit the caller cleared. Every wake-up
    /// of a runner goes through here.
    ///
    /// With a threshold the runners' workqueue has `max_active =
    /// current_active` (BT-5), but runners above `current_active` may still
    /// hold admissions (one woken by an overflow, or one finishing its batch
    /// after a lowering), and a runner queued while they do is deferred by
    /// the workqueue — behind a stalled one, possibly forever. So the woken
    /// runner must fit: `current_active` (and `max_active`) is raised to
    /// cover it and every runner that is not idle, under the threshold lock
    /// with the queueing, so no evaluation lowers it in between. A lowering
    /// *after* the queueing can still defer it (a `Work` queued while its
    /// previous run is ending gives that run's admission back and must win
    /// one again, as in cmwq); [`Crew::cover_overflow`] repairs that when it
    /// matters.
    fn wake(&self, i: usize) {
        let Some(th) = &self.thresh else {
            self.wq.queue(&self.runners[i]);
            return;
        };
        th.raise_then(
            (i + 1).max(self.idle.not_idle()),
            &self.current_active,
            |n| self.mirror_max_active(n),
            || {
                self.wq.queue(&self.runners[i]);
            },
        );
    }

    /// BT-5: the runners' workqueue follows `current_active` (called with
    /// the threshold lock held, by every change of it).
    fn mirror_max_active(&self, n: usize) {
        self.wq
            .set_max_active(n)
            .expect("thresholded max_active stays within 1..=limit");
    }

    /// The overflow's repair: every runner among the first `current_active`
    /// is stalled and work is claimable, but no runner above the limit is
    /// idle to overflow to. Each one that is not idle is running on an overflow
    /// slot (and will claim) or was woken and is waiting for a workqueue
    /// admission that a lowering of `max_active` took away (and would wait
    /// behind the stalled ones forever): raise `current_active` past all of
    /// them, which admits it. Called where the overflow found nobody to wake —
    /// a stall, an item queued — so at most once per lowering.
    #[cold]
    fn cover_overflow(&self, cur: usize) {
        let Some(th) = &self.thresh else { return };
        if !self.idle.overflow_beyond(cur) || !self.ring.has_claimable() {
            return;
        }
        th.raise_then(
            self.idle.not_idle(),
            &self.current_active,
            |n| self.mirror_max_active(n),
            || {},
        );
    }

    /// Called by a thread that just became the drain owner, before the
    /// first ordered stage (which may block). A runner counts as stalled
    /// until the returned session ends (see `ordered/idle.rs`); any owner
    /// wakes an idle runner if parallel work is waiting.
    pub(crate) fn drain_session(&self) -> DrainSession {
        // Is the innermost frame a runner of this crew, and did this
        // session make it stalled?
        let runner = FRAMES
            .try_with(|f| {
                let mut frames = f.borrow_mut();
                let fr = frames.last_mut().filter(|fr| fr.crew == self.id)?;
                let runner = fr.runner?;
                Some((runner, fr.stall_edge(true).is_some()))
            })
            .ok()
            .flatten();
        match runner {
            Some(((crew, me), edge)) => {
                if edge {
                    self.set_stalled(me, true);
                }
                DrainSession {
                    runner: Some((crew, me)),
                }
            }
            None => {
                self.help_wanted();
                DrainSession { runner: None }
            }
        }
    }

    /// Wakes an idle runner if parallel work is waiting.
    fn help_wanted(&self) {
        let cur = self.current_active.load(Relaxed);
        if let Some(i) = self.idle.pick_if(cur, || self.ring.has_claimable()) {
            self.wake(i);
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
        self.exec_hook(claim.end() - claim.first(), claim.end());
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

    /// A producer waiting for room helps: in the slot of an idle
    /// runner ([`Idle::stand_in`]), it runs one batch of parallel stages (and
    /// the ordered drain it enables) on its own thread, the way the calling
    /// thread of oneTBB's `parallel_pipeline` participates, then gives the
    /// slot back as that runner leaving its loop would. False if no slot was
    /// free or nothing was claimable: the caller sleeps instead, so the
    /// crew never runs more than `current_active` parallel stages.
    pub(crate) fn help_once(&self) -> bool {
        let Some(me) = self.idle.stand_in(self.current_active()) else {
            return false;
        };
        let this: *const (dyn Stall + 'static) = self as *const Crew<S>;
        let ran = {
            let _stage = StageGuard::enter(self.id, Some((this, me)));
            self.run_batch()
        };
        // Give the slot back as runner `me` leaving its loop would; if an
        // item slipped in meanwhile, the runner itself takes over.
        if self.idle.leave(me, || self.ring.has_claimable()) {
            self.wake(me);
        }
        ran
    }

    /// A waiting thread helps as the *calling* thread, beside the
    /// runners (oneTBB's master thread does the same): one batch, no runner
    /// slot. Used by the iterator front end's consumer (an ordered map's
    /// `f` is `Fn + Sync`, so a thread more than `max_active` changes no
    /// guarantee) and by producers of a queue built with `caller_runs`.
    /// False if nothing was claimable.
    pub(crate) fn help_as_caller(&self) -> bool {
        let _stage = StageGuard::enter(self.id, None);
        self.run_batch()
    }

    /// The runner loop (body of runner `me`'s work function).
    fn run(&self, me: usize) {
        let this: *const (dyn Stall + 'static) = self as *const Crew<S>;
        let _stage = StageGuard::enter(self.id, Some((this, me)));
        let mut polls = 0u32;
        loop {
            let cur = self.current_active();
            if me >= cur && !self.idle.overflows_for(cur, || self.ring.has_claimable()) {
                // The threshold lowered `current_active` below us: start no
                // new batch (as a workqueue starts no item beyond its
                // `max_active`); hand anything claimable to a runner below
                // the limit. (Unless one below the limit is stalled and work
                // is waiting: a stalled runner overflows the limit, as it does for
                // the runners woken for it.)
                match self.idle.stand_down(me, cur, || self.ring.has_claimable()) {
                    // Lent to ourselves (every slot below is stalled): go
                    // on. Re-queueing our own `Work` would need a second
                    // workqueue admission while this run still holds one.
                    Some(i) if i == me => {
                        polls = 0;
                        continue;
                    }
                    Some(i) => self.wake(i),
                    None => {}
                }
                return;
            }
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

    /// Btrfs `thresh_exec_hook`, evaluated once per claimed batch of
    /// `batch` items ending before `end`.
    fn exec_hook(&self, batch: u64, end: u64) {
        let Some(th) = &self.thresh else { return };
        let pending = self.ring.tail().saturating_sub(end);
        let mut grew = false;
        let before = self.current_active();
        th.exec_hook(pending, batch, &self.current_active, |n| {
            grew = n > before;
            self.mirror_max_active(n);
        });
        if grew {
            // The backlog that made it grow is waiting: start a runner on
            // it now rather than at the next item's queueing.
            self.help_wanted();
        }
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
             capacity={} runners idle={:#x} stalled={:#x} active={}/{} waiters={}",
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
            self.idle.stalled_snapshot(),
            self.current_active(),
            self.limit,
            self.waiters.count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicBool;
    use crate::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Stages whose `func(seq)` records which runner ran it, then spins
    /// until `gates[seq]` opens.
    #[derive(Default)]
    struct Probe {
        ran_on: Mutex<Vec<(u64, Option<usize>)>>,
        gates: [AtomicBool; 4],
        /// Item 0 waits for its gate inside `kwq::blocking` (its runner
        /// counts as stalled meanwhile).
        block_item_0: bool,
    }

    fn runner_index() -> Option<usize> {
        FRAMES.with(|f| f.borrow().last().and_then(|fr| fr.runner.map(|(_, me)| me)))
    }

    impl Stages for Probe {
        type Job = ();
        type Done = ();
        fn wake_backlog(&self) -> u64 {
            0
        }
        fn max_claim(&self) -> u64 {
            1
        }
        fn func(&self, seq: u64, _job: ()) {
            self.ran_on.lock().push((seq, runner_index()));
            let wait = || {
                while !self.gates[seq as usize].load(SeqCst) {
                    thread::yield_now();
                }
            };
            if seq == 0 && self.block_item_0 {
                crate::blocking(wait);
            } else {
                wait();
            }
        }
        fn after_batch(&self, crew: &Crew<Self>) {
            crew.ring.try_drain(|_, _| {}, |_| crew.waiters.notify());
        }
    }

    /// A crew of two runners over an 8-slot ring on a fresh workqueue.
    fn probe_crew(
        rt: &crate::Runtime,
        name: &str,
        thresh: Option<Thresh>,
        probe: Probe,
    ) -> Arc<Crew<Probe>> {
        let wq = Workqueue::builder(name)
            .runtime(rt)
            .max_active(2)
            .build()
            .unwrap();
        Crew::new(wq, Ring::new(8), 2, thresh, probe)
    }

    /// Queues one item the way a producer does.
    fn push(crew: &Crew<Probe>) -> u64 {
        let seq = crew.ring.try_push(()).ok().unwrap();
        crew.kick(seq);
        seq
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// A runner above a lowered `current_active` starts no new batch: it
    /// finishes what it runs, then leaves, and the queued item waits for
    /// the runner below the limit (the threshold's analogue of a
    /// workqueue's `max_active`).
    #[test]
    fn runner_above_a_lowered_limit_starts_nothing_new() {
        let rt = crate::RuntimeBuilder::new().concurrency(2).build().unwrap();
        let crew = probe_crew(&rt, "crew-retire", None, Probe::default());
        // Items 0 and 1 occupy both runners.
        push(&crew);
        push(&crew);
        wait_for("two items running", || crew.stages.ran_on.lock().len() == 2);
        let on = crew.stages.ran_on.lock().clone();
        let runners: Vec<usize> = on
            .iter()
            .map(|&(_, r)| r.expect("ran on a runner"))
            .collect();
        assert_ne!(runners[0], runners[1]);
        // The threshold lowers the limit to 1 (as `exec_hook` would).
        crew.current_active.store(1, SeqCst);
        crew.wq.set_max_active(1).unwrap();
        // Item 2 is queued; then the item on runner 1 finishes.
        push(&crew);
        let seq_on_1 = on.iter().find(|&&(_, r)| r == Some(1)).unwrap().0;
        let seq_on_0 = on.iter().find(|&&(_, r)| r == Some(0)).unwrap().0;
        crew.stages.gates[seq_on_1 as usize].store(true, SeqCst);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(
            crew.stages.ran_on.lock().len(),
            2,
            "runner 1 started item 2 although current_active is 1"
        );
        // Runner 0 finishes its item and takes item 2.
        crew.stages.gates[seq_on_0 as usize].store(true, SeqCst);
        crew.stages.gates[2].store(true, SeqCst);
        wait_for("item 2", || crew.stages.ran_on.lock().len() == 3);
        assert_eq!(crew.stages.ran_on.lock()[2], (2, Some(0)));
        crew.quiesce();
    }

    /// The overflow's repair (`Crew::cover_overflow`; found by the session-7 review):
    /// with a threshold, a runner woken while the workqueue's `max_active`
    /// is too low to admit it waits on the workqueue's inactive list — here
    /// behind runner 0, the only runner below the limit, blocked inside
    /// `kwq::blocking`. (In a run that happens when a lowering lands while
    /// the woken runner's previous run is ending.) The next item must reach
    /// it: nobody is idle to overflow to, so the crew raises
    /// `current_active`, which admits it.
    #[test]
    fn woken_runner_deferred_behind_a_stalled_one_is_admitted() {
        let rt = crate::RuntimeBuilder::new().concurrency(2).build().unwrap();
        let probe = Probe {
            block_item_0: true,
            ..Probe::default()
        };
        let crew = probe_crew(&rt, "crew-cover", Some(Thresh::new(1, 2)), probe);
        assert_eq!((crew.current_active(), crew.wq.max_active()), (1, 1));
        // Runner 0 takes item 0 and blocks in it, stalled.
        push(&crew);
        wait_for("runner 0 stalled in item 0", || {
            crew.stages.ran_on.lock().len() == 1 && crew.idle.stalled_snapshot() & 1 != 0
        });
        // Runner 1 is woken, and deferred: runner 0 holds the one admission.
        assert_eq!(crew.idle.stand_in(2), Some(1));
        crew.wq.queue(&crew.runners[1]);
        // Item 1 can only run on runner 1.
        crew.stages.gates[1].store(true, SeqCst);
        push(&crew);
        wait_for("item 1 on runner 1", || {
            crew.stages.ran_on.lock().contains(&(1, Some(1)))
        });
        assert_eq!(crew.current_active(), crew.wq.max_active(), "BT-5");
        crew.stages.gates[0].store(true, SeqCst);
        crew.quiesce();
    }
}
