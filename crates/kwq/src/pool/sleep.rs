//! The pool's idle list and worker counters, and both halves of the
//! sleep/wake handshake on them ("Protocol: sleeping and waking" in
//! `pool/mod.rs`), kept apart from threads, tasks and the runtime so that
//! loom checks this very code (`tests/loom_worker.rs`, which runs the whole
//! pool).
//!
//! [`Sleep`] is a *view*: it borrows fields its owner stores. The pool keeps
//! them as fields of its own rather than in a struct of their own: nesting
//! exactly these fields in one struct, with no other change, measured
//! 0.88–0.91× of `kwq-bench spawn` (BENCHMARKS.md, session 10; the bench's
//! noise is about ±7%, but every such set came out below). A view keeps the
//! pool's layout and, once
//! inlined, compiles to the same loads as code that names the fields. The
//! worker loop's methods (`go_idle`, `wait_woken`, `wake_one`) are marked
//! `#[inline]` so that `worker::main` is compiled as it was when they were
//! written inline: left out of line they changed how the per-task path
//! around them was inlined, and `spawn` measured 0.74–0.96× (same session).
//!
//! The worklist stays with the pool: every method that needs it takes
//! `has_work`, which must read it with (or after) a SeqCst operation, as
//! `Fifo::is_empty` does. Publishing work must end with a SeqCst
//! read-modify-write (`Fifo::push` does) before [`Sleep::kick`].
//!
//! Counters are written under the idle lock (`nr_idle`, `nr_workers`,
//! and `nr_running` when a worker goes idle or is woken) or by the worker
//! itself (`nr_running` around blocking); all are read without the lock.

use crate::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering::*};
use crate::sync::{Mutex, Parker};
use kwq_policy::{self as policy, Concurrency, PoolSnapshot};
use std::time::Duration;

/// A worker as the idle list and its wakers see it.
pub(crate) trait Sleeper: Clone {
    /// Set, under the idle lock, by whoever takes the worker off the list;
    /// cleared by the worker when it registers as idle.
    fn woken(&self) -> &AtomicBool;
    /// Is `other` this worker?
    fn same(&self, other: &Self) -> bool;
    /// Wakes the worker's thread (a wake-up before it parks is kept).
    fn unpark(&self);
    /// Who counts the worker out of `nr_running` while it blocks.
    fn presence(&self) -> &Presence;
}

/// What a submitter must do after [`Sleep::kick`].
#[must_use = "a pool with no idle worker may need the submitter to create one"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Nothing (enough workers run, or one was woken).
    Done,
    /// More workers are needed and none is idle: act as the manager.
    CreateWorker,
}

/// Where the handshake's fields live: the pool stores them as fields of its
/// own (see the module docs), the loom model in a struct of its own.
pub(crate) trait SleepState {
    /// The workers on the idle list.
    type W: Sleeper;
    /// The pool's concurrency target (immutable).
    fn concurrency(&self) -> Concurrency;
    /// Most workers the pool may have (immutable).
    fn max_workers(&self) -> usize;
    /// Workers executing items and counted for concurrency management.
    fn nr_running(&self) -> &AtomicUsize;
    /// Mirror of the idle list's length.
    fn nr_idle(&self) -> &AtomicUsize;
    /// Workers that exist (listed idle or not).
    fn nr_workers(&self) -> &AtomicUsize;
    /// LIFO: the most recently idle worker is the warmest and the least
    /// likely to be reaped.
    fn idle(&self) -> &Mutex<Vec<Self::W>>;
    /// The mistake a loom model reintroduces into this code, if any.
    #[cfg(kwq_loom)]
    fn seeded_bug(&self) -> SeededBug {
        SeededBug::None
    }
}

/// Mistakes the loom models put back into the real code, one at a time, to
/// show that they would catch them (`tests/loom_worker.rs`). Chosen per
/// model instance through `SleepState::seeded_bug` (loom builds only), so
/// one loom build checks the correct code and every mistake; in the real
/// build every check is constant false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(kwq_loom), allow(dead_code))]
pub(crate) enum SeededBug {
    /// The correct code.
    None,
    /// `wait_woken` parks without re-checking the worklist after going
    /// idle (a lost wake-up).
    SkipIdleRecheck,
    /// `enter_blocking` kicks the pool before it uncounts the worker (the
    /// kick sees the blocking worker still running and wakes nobody).
    KickBeforeUncount,
    /// The monitor presumes a worker blocked without checking, under the
    /// idle lock, that it is executing an item and not listed idle (it
    /// uncounts an idle worker a second time).
    PresumeListed,
}

/// Is `bug` seeded into `s`? (Always false outside loom; the compiler
/// removes the check.)
#[inline(always)]
pub(crate) fn seeded_bug<S: SleepState>(_s: &S, _bug: SeededBug) -> bool {
    #[cfg(kwq_loom)]
    {
        _s.seeded_bug() == _bug
    }
    #[cfg(not(kwq_loom))]
    {
        false
    }
}

/// The handshake's code, over the fields of `S` (one pointer: it compiles
/// to the loads and stores of code that names the owner's fields).
#[derive(Debug)]
pub(crate) struct Sleep<'a, S>(pub(crate) &'a S);

impl<S: SleepState> Sleep<'_, S> {
    /// The counters, with the caller's view of the worklist.
    #[inline]
    pub(crate) fn snapshot(&self, worklist_nonempty: bool) -> PoolSnapshot {
        PoolSnapshot {
            worklist_nonempty,
            nr_running: self.0.nr_running().load(SeqCst),
            nr_idle: self.0.nr_idle().load(SeqCst),
            nr_workers: self.0.nr_workers().load(SeqCst),
            concurrency: self.0.concurrency(),
            max_workers: self.0.max_workers(),
        }
    }

    /// Is no worker idle? (Advisory: a woken worker checks whether it must
    /// act as the manager.)
    #[inline]
    pub(crate) fn none_idle(&self) -> bool {
        self.0.nr_idle().load(Relaxed) == 0
    }

    /// `keep_working`'s other half: do more workers run than the target
    /// (a blocked one came back)? Advisory.
    #[inline]
    pub(crate) fn over_target(&self) -> bool {
        self.0.nr_running().load(Relaxed) > self.0.concurrency().target()
    }

    /// The submitter half of the handshake, after work was published.
    #[inline]
    pub(crate) fn kick(&self, has_work: impl Fn() -> bool) -> Kick {
        // No fence in the real build: publishing ended with a SeqCst RMW
        // and this load is SeqCst, so the single total order of SeqCst
        // operations orders the pair against the worker's SeqCst decrement
        // and re-check. (A fence here cost a quarter of the submit path's
        // throughput.) Loom needs it spelled out.
        crate::sync::fence_after_seqcst_write();
        let running = self.0.nr_running().load(SeqCst);
        if running >= self.0.concurrency().target() {
            return Kick::Done; // fast path: need_more_worker is false
        }
        let snap = self.snapshot(has_work());
        if !policy::need_more_worker(&snap) {
            Kick::Done
        } else if snap.nr_idle > 0 {
            self.wake_one(&has_work);
            Kick::Done
        } else if policy::need_to_create_worker(&snap) {
            Kick::CreateWorker
        } else {
            Kick::Done
        }
    }

    /// Takes one worker off the idle list, if the pool still needs one.
    /// The woken worker counts as running from here on.
    #[inline]
    pub(crate) fn wake_one(&self, has_work: &dyn Fn() -> bool) -> bool {
        let mut idle = self.0.idle().lock();
        if !policy::need_more_worker(&self.snapshot(has_work())) {
            return false;
        }
        let Some(w) = idle.pop() else { return false };
        self.0.nr_idle().fetch_sub(1, SeqCst);
        self.0.nr_running().fetch_add(1, SeqCst);
        w.woken().store(true, Release);
        drop(idle);
        w.unpark();
        true
    }

    /// Registers a new worker, idle, before its thread starts.
    pub(crate) fn add_idle(&self, w: S::W) {
        let mut idle = self.0.idle().lock();
        idle.push(w);
        self.0.nr_idle().fetch_add(1, SeqCst);
        self.0.nr_workers().fetch_add(1, SeqCst);
    }

    /// Undoes [`Sleep::add_idle`] for a worker whose thread never started.
    pub(crate) fn remove_unstarted(&self, w: &S::W) {
        let mut idle = self.0.idle().lock();
        let before = idle.len();
        idle.retain(|x| !x.same(w));
        if idle.len() < before {
            self.0.nr_idle().fetch_sub(1, SeqCst);
            self.0.nr_workers().fetch_sub(1, SeqCst);
        }
    }

    /// The worker half, step 1: a worker that ran out of work registers
    /// as idle and stops counting. Step 2 is [`Sleep::wait_woken`].
    #[inline]
    pub(crate) fn go_idle(&self, me: S::W) {
        let mut idle = self.0.idle().lock();
        me.woken().store(false, Relaxed);
        // A worker the monitor presumed blocked was uncounted already.
        let must_uncount = me.presence().settle_for_idle();
        idle.push(me);
        self.0.nr_idle().fetch_add(1, SeqCst);
        if must_uncount {
            uncount(self.0.nr_running());
        }
    }

    /// The worker half, step 2: re-checks for work (leaving the idle list
    /// itself if the pool needs it), else parks until taken off the list.
    /// Returns false when the worker must exit: `dying()` holds with no
    /// work left, or the idle timeout expired and the pool has too many
    /// idle workers.
    #[inline]
    pub(crate) fn wait_woken(
        &self,
        me: &S::W,
        parker: &Parker,
        idle_timeout: Duration,
        has_work: impl Fn() -> bool,
        dying: impl Fn() -> bool,
    ) -> bool {
        // The other side of `kick`: our decrement, then this re-check.
        fence(SeqCst);
        if !seeded_bug(self.0, SeededBug::SkipIdleRecheck) && has_work() {
            let mut idle = self.0.idle().lock();
            if me.woken().load(Acquire) {
                return true;
            }
            if policy::need_more_worker(&self.snapshot(has_work())) && self.unlist(&mut idle, me) {
                self.0.nr_running().fetch_add(1, SeqCst);
                return true;
            }
        }
        let mut timed_out = false;
        loop {
            if me.woken().load(Acquire) {
                return true;
            }
            // Torn down (`dying` is set before `unpark_idle`, so a worker
            // listed before it is unparked and one listed after it sees
            // the flag here), or the idle timeout expired: maybe leave.
            let dying = dying() && !has_work();
            if dying || timed_out {
                let mut idle = self.0.idle().lock();
                if me.woken().load(Acquire) {
                    return true;
                }
                // `park_timeout` may return early; that only makes this
                // check run sooner, and `too_many_workers` bounds what it
                // removes.
                if (dying || policy::too_many_workers(&self.snapshot(has_work())))
                    && self.unlist(&mut idle, me)
                {
                    self.0.nr_workers().fetch_sub(1, SeqCst);
                    return false;
                }
            }
            parker.park_timeout(idle_timeout);
            timed_out = true;
        }
    }

    /// Removes `me` from the locked idle list, if listed.
    fn unlist(&self, idle: &mut Vec<S::W>, me: &S::W) -> bool {
        let Some(pos) = idle.iter().position(|w| w.same(me)) else {
            return false;
        };
        idle.remove(pos);
        self.0.nr_idle().fetch_sub(1, SeqCst);
        true
    }

    /// A running worker is about to block: it stops counting, and the pool
    /// needs a replacement if work is waiting (kernel `wq_worker_sleeping`).
    #[inline]
    pub(crate) fn enter_blocking(&self, has_work: impl Fn() -> bool) -> Kick {
        if seeded_bug(self.0, SeededBug::KickBeforeUncount) {
            let kick = self.kick(has_work);
            uncount(self.0.nr_running());
            return kick;
        }
        uncount(self.0.nr_running());
        self.kick(has_work)
    }

    /// The blocked worker runs again (kernel `wq_worker_running`).
    #[inline]
    pub(crate) fn exit_blocking(&self) {
        self.0.nr_running().fetch_add(1, SeqCst);
    }

    /// Unparks every listed worker (after the caller set its dying flag).
    pub(crate) fn unpark_idle(&self) {
        let idle = self.0.idle().lock();
        for w in idle.iter() {
            w.unpark();
        }
    }
}

/// Takes one worker out of `nr_running`. The counter never counts fewer
/// than the workers counted as running (the `Presence` rules), so it
/// cannot wrap: debug builds, and so the loom models, check that.
#[inline]
fn uncount(nr_running: &AtomicUsize) {
    let before = nr_running.fetch_sub(1, SeqCst);
    debug_assert!(before > 0, "nr_running went below zero");
}

// ---------------------------------------------------------------------------
// Presence
//
// Who counts a busy worker out of the pool's `nr_running`: the worker
// itself (inside `kwq::blocking` or a CPU-intensive item), or the pool's
// monitor, which *presumes* a worker blocked when it sleeps inside an item
// without saying so (a plain `read()`, a std `Mutex`, `thread::sleep`).
//
// One state word per worker. Every change of `nr_running` made on account
// of blocking is tied to exactly one transition of that word, made by one
// atomic operation, so each uncount is undone exactly once, by whoever
// makes the matching transition — never twice, never by both:
//
// ```text
//             monitor presume: -1             monitor release: +1
//   COUNTED ─────────────────────▶ PRESUMED ─────────────────────▶ COUNTED
//     │  ▲                            │  │
//     │  │ worker rejoin: +1          │  │ worker go_idle: skips its own -1
//     │  │ (count, then store)        │  ▼ (the monitor's -1 stands for it)
//     │  └──────────── SELF ◀─────────┘ COUNTED, idle
//     │                 ▲   worker leave: inherits the monitor's -1
//     └─────────────────┘
//       worker leave: -1
// ```
//
// Rules the callers keep:
// * the monitor presumes only a worker executing an item and not on the
//   idle list, checked under the idle lock, which `go_idle` holds for its
//   transition: a presumed worker is always one that was counted;
// * the worker counts itself back in *before* storing `COUNTED` on
//   `rejoin`, so a presume right after it has a count to take;
// * the uncount that goes with a transition happens after it, the recount
//   that goes with one before it (`release` counts first and undoes the
//   count if its transition fails): `nr_running` never drops below the
//   number of workers counted as running, so it cannot wrap.
//
// Checked by loom in `tests/loom_presence.rs`.

const COUNTED: u8 = 0;
const PRESUMED: u8 = 1;
const SELF: u8 = 2;

/// A worker's blocking state as concurrency management sees it.
#[derive(Debug)]
pub(crate) struct Presence(AtomicU8);

impl Presence {
    pub(crate) fn new() -> Self {
        Presence(AtomicU8::new(COUNTED))
    }

    /// The worker steps out of concurrency management (outermost
    /// `blocking`, a CPU-intensive item). Returns whether it must uncount
    /// itself now (false: the monitor already did, for it).
    #[must_use]
    pub(crate) fn leave(&self) -> bool {
        self.0.swap(SELF, AcqRel) == COUNTED
    }

    /// The worker steps back in. The caller has counted itself back in
    /// already (see the module rules).
    pub(crate) fn rejoin(&self) {
        self.0.store(COUNTED, Release);
    }

    /// The worker goes idle (under the idle lock). Returns whether it must
    /// uncount itself (false: the monitor's presume already did).
    #[must_use]
    pub(crate) fn settle_for_idle(&self) -> bool {
        self.0.swap(COUNTED, AcqRel) != PRESUMED
    }

    /// The monitor presumes the worker blocked: if the worker is counted,
    /// marks it presumed and uncounts it. Returns whether it did.
    #[must_use]
    pub(crate) fn presume(&self, nr_running: &AtomicUsize) -> bool {
        if self
            .0
            .compare_exchange(COUNTED, PRESUMED, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        uncount(nr_running);
        true
    }

    /// The monitor saw a presumed worker make progress: if the presumption
    /// still stands, counts the worker back in and clears it. Returns
    /// whether it did (false: the worker settled it by going idle or
    /// entering `blocking`). Counts first and undoes on failure, so the
    /// counter never runs below the counted workers.
    #[must_use]
    pub(crate) fn release(&self, nr_running: &AtomicUsize) -> bool {
        nr_running.fetch_add(1, SeqCst);
        if self
            .0
            .compare_exchange(PRESUMED, COUNTED, AcqRel, Relaxed)
            .is_ok()
        {
            return true;
        }
        nr_running.fetch_sub(1, SeqCst);
        false
    }

    /// Is the worker presumed blocked right now? (For dumps and the
    /// monitor's bookkeeping; advisory.)
    pub(crate) fn is_presumed(&self) -> bool {
        self.0.load(Relaxed) == PRESUMED
    }

    /// Is the worker inside `blocking` or a CPU-intensive item? (Advisory.)
    pub(crate) fn is_self_blocked(&self) -> bool {
        self.0.load(Relaxed) == SELF
    }
}
