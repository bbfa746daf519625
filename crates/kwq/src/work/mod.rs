//! Persistent work items.
//!
//! A [`Work`] is a named, re-queueable closure. Cloning the handle gives the
//! *same* item. The item is queued with [`Workqueue::queue`](crate::Workqueue::queue); it runs once
//! per successful queueing, never concurrently with itself, and may be
//! queued again while it runs (it then runs once more, afterwards).
//!
//! # States
//!
//! ```text
//!             queue()                 worker picks it         function returns
//!   Idle ───────────────▶ Pending ──────────────────────▶ Running ───────────▶ Idle
//!    ▲                      │  ▲                            │  │
//!    │       cancel()       │  │ queue() while running      │  │ picked while the
//!    └──────────────────────┘  └────────────────────────────┘  │ previous run goes on
//!                                                              ▼
//!                                              Running + Pending (token parked in
//!                                              the item; runs right after, on the
//!                                              same worker if it is the same pool)
//! ```
//!
//! The word itself is described in [`state`].
//!
//! # Fields and who may touch them
//!
//! * `state` — A: atomic, every transition is an RMW.
//! * `func` — R: only the worker that set `RUNNING` locks it (a `try_lock`
//!   that cannot fail unless non-reentrancy is broken, which it reports).
//! * `slot` — L: the item's slot lock; holds a parked token and the timer
//!   target of a delayed instance. `PARKED` changes only under it.
//! * `done` — A: every instance numbered `<= done` has finished (run or been
//!   cancelled). Monotonic; flushers wait on it.
//!
//! # Protocol
//!
//! 1. *Queue*: `transition_to_pending` test-and-sets PENDING and numbers the
//!    instance `seq`; the winner builds a token `(item, seq, workqueue)` and
//!    pushes it on the workqueue's pool worklist.
//! 2. *Start*: the worker that pops the token calls `transition_to_running(seq)`:
//!    `Run` (clear PENDING, set RUNNING), `Busy` (previous instance still
//!    running: take the slot lock, `transition_to_parked`, store the token),
//!    or `Stale` (cancelled/superseded: drop it).
//! 3. *End*: the running worker calls `transition_to_idle`. If a token is
//!    parked it takes it under the slot lock and either runs it at once (same
//!    pool, like the kernel running a collided item next on the same worker)
//!    or pushes it to its own pool. Then it publishes `done` and wakes
//!    flushers.
//!
//! # Why this is correct
//!
//! RUNNING is set only by a successful `Run`, which requires RUNNING clear,
//! and cleared only by its owner: at most one run at a time, system-wide
//! (WQ-3). PENDING is set only by a test-and-set that fails while it is set:
//! at most one pending instance (WQ-1). A token made for `seq` runs only if
//! the word still says PENDING with that `seq` (stale tokens are dropped), so
//! every instance runs at most once, and exactly once unless cancelled. An
//! instance queued during a run cannot start before that run ends (its start
//! sees RUNNING and parks), and the ending worker always looks for a parked
//! token after clearing nothing — the park and the end are ordered by the
//! slot lock and the CAS on PARKED (WQ-2).
//!
//! The item's memory is an `Arc`: every token holds a reference, so dropping
//! all user handles while an instance is pending or running is safe and the
//! closure lives until the worker is done with it (WQ-6).

pub(crate) mod state;

use crate::current;
use crate::exec::Pool;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{Arc, Condvar, Mutex, Weak};
use crate::task::Task;
use crate::workqueue::WqInner;
use state::{
    State, TransitionToCanceled, TransitionToIdle, TransitionToParked, TransitionToRunning,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A persistent, re-queueable work item (kernel `struct work_struct`).
///
/// Cloning a `Work` gives another handle to the *same* item: queueing either
/// handle while the item is pending does nothing and returns `false`.
///
/// The function is `FnMut`: kwq guarantees an item never runs concurrently
/// with itself, so it may keep state between runs.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let wq = kwq::Workqueue::builder("example").build().unwrap();
/// let runs = Arc::new(AtomicUsize::new(0));
/// let r = runs.clone();
/// let w = kwq::Work::new("count", move || {
///     r.fetch_add(1, Ordering::SeqCst);
/// });
/// wq.queue(&w);
/// w.flush();
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// ```
#[derive(Clone)]
pub struct Work {
    pub(crate) inner: Arc<WorkInner>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("name", &self.inner.name())
            .field("state", &self.inner.state.load())
            .finish()
    }
}

/// Two handles are equal when they are handles of the same item (its
/// identity, never its name or function). The item's allocation lives as
/// long as any handle or pending instance does, so an address compared or
/// hashed here is never recycled while the handle exists.
impl PartialEq for Work {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Work {}

impl std::hash::Hash for Work {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.inner) as *const () as usize).hash(state);
    }
}

// A handle is safe to use after a caught panic: the item's state word and
// slot stay consistent (user code runs only on workers, under
// `catch_unwind`, never while a kwq lock is held).
impl std::panic::UnwindSafe for Work {}
impl std::panic::RefUnwindSafe for Work {}

pub(crate) type WorkFn = Box<dyn FnMut() + Send + 'static>;

pub(crate) struct WorkInner {
    pub(crate) state: State,
    name: Box<str>,
    func: Mutex<WorkFn>,
    pub(crate) slot: Mutex<Slot>,
    done: AtomicU64,
    waiters: AtomicUsize,
    wait: (Mutex<()>, Condvar),
    /// Id of the workqueue the newest instance was queued on (0: none).
    pub(crate) last_wq: AtomicU64,
}

/// What the slot lock protects.
#[derive(Default)]
pub(crate) struct Slot {
    /// The token of a pending instance waiting for the current run to end.
    pub(crate) parked: Option<Task>,
    /// A delayed instance armed on the timer: its `seq` and workqueue.
    /// Weak: an armed instance does not keep a dropped workqueue (and with
    /// it its runtime and worker threads) alive until its deadline; a
    /// destroyed queue refuses the instance when it fires anyway.
    pub(crate) timer: Option<(u64, Weak<WqInner>)>,
}

/// What a worker must do after a run ends.
pub(crate) enum AfterRun {
    /// Nothing: the item is idle or its next instance is queued elsewhere.
    Idle,
    /// Run this parked instance now, on this worker.
    RunNext(Task),
    /// This parked instance must be queued again (another pool, or no
    /// `max_active` slot free right now): `WqInner::admit_and_push` it.
    Requeue(Task),
}

impl std::fmt::Debug for WorkInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkInner")
            .field("name", &self.name)
            .field("state", &self.state.load())
            .finish_non_exhaustive()
    }
}

impl WorkInner {
    pub(crate) fn new(name: Box<str>, f: WorkFn) -> WorkInner {
        WorkInner {
            state: State::new(),
            name,
            func: Mutex::new(f),
            slot: Mutex::new(Slot::default()),
            done: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            wait: (Mutex::new(()), Condvar::new()),
            last_wq: AtomicU64::new(0),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Identity of the item, for comparisons only (never dereferenced).
    pub(crate) fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Step 2 of the protocol for a popped token. Returns the task back if
    /// the caller must run it now; `None` if it was parked or was stale (a
    /// stale task is returned through `stale`).
    pub(crate) fn start(self: &Arc<Self>, task: Task, seq: u64) -> Start {
        match self.state.transition_to_running(seq) {
            TransitionToRunning::Run => Start::Run(task),
            TransitionToRunning::Stale => Start::Stale(task),
            TransitionToRunning::Busy => {
                let mut slot = self.slot.lock();
                match self.state.transition_to_parked(seq) {
                    TransitionToParked::Parked => {
                        debug_assert!(slot.parked.is_none());
                        // A parked instance cannot execute before the running
                        // one ends, and that one holds a slot already: give
                        // this slot back rather than let one item hold two
                        // (the kernel counts both, which lets a blocked item's
                        // own requeue starve the items it waits for). It is
                        // admitted again when it is taken out in `end`.
                        let mut task = task;
                        let release = std::mem::take(&mut task.admitted).then(|| task.wq.clone());
                        slot.parked = Some(task);
                        drop(slot);
                        if let Some(wq) = release {
                            wq.release_slot();
                        }
                        Start::Parked
                    }
                    TransitionToParked::Run => Start::Run(task),
                    TransitionToParked::Stale => Start::Stale(task),
                }
            }
        }
    }

    /// Runs the function once. The caller owns RUNNING. Returns the panic
    /// payload if the function panicked.
    pub(crate) fn execute(&self) -> Result<(), Box<dyn std::any::Any + Send>> {
        let mut f = self.func.try_lock().unwrap_or_else(|| {
            panic!(
                "kwq bug: work item '{}' started while already running (non-reentrancy broken)",
                self.name
            )
        });
        catch_unwind(AssertUnwindSafe(|| (*f)()))
    }

    /// Step 3 of the protocol: the run of instance `ran` ended on a worker of
    /// `pool`.
    pub(crate) fn end(&self, ran: u64, pool: &Arc<Pool>) -> AfterRun {
        loop {
            match self.state.transition_to_idle() {
                TransitionToIdle::Idle { done } => {
                    self.set_done(done);
                    return AfterRun::Idle;
                }
                TransitionToIdle::Parked => {
                    let mut slot = self.slot.lock();
                    let Some(parked) = slot.parked.as_ref() else {
                        // A canceller took the token between our CAS and the lock.
                        continue;
                    };
                    if !self.state.load().is_parked() {
                        continue;
                    }
                    // Run it next on this worker (as the kernel runs a
                    // collided item) if it belongs to this pool and can get
                    // a `max_active` slot now; otherwise queue it again.
                    let wq = &parked.wq;
                    let needs_slot = wq.enforces_max_active();
                    let here =
                        Arc::ptr_eq(&wq.pool, pool) && (!needs_slot || wq.admission.try_admit());
                    let seq = self.state.transition_parked_to_running(here);
                    let mut task = slot.parked.take().expect("checked above");
                    task.admitted = here && needs_slot;
                    drop(slot);
                    // Everything older than the parked instance has finished
                    // (`ran`, and any instance cancelled in between).
                    debug_assert!(seq > ran);
                    self.set_done(seq - 1);
                    return if here {
                        AfterRun::RunNext(task)
                    } else {
                        AfterRun::Requeue(task)
                    };
                }
            }
        }
    }

    pub(crate) fn set_done(&self, done: u64) {
        self.done.fetch_max(done, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            let _g = self.wait.0.lock();
            self.wait.1.notify_all();
        }
    }

    /// Sleeps until `cond()` holds; `cond` is re-evaluated whenever the item
    /// publishes `done` or a canceller finishes.
    fn wait_until(&self, cond: impl Fn() -> bool) {
        self.waiters.fetch_add(1, SeqCst);
        current::blocking(|| {
            let mut g = self.wait.0.lock();
            while !cond() {
                g = self.wait.1.wait(g);
            }
        });
        self.waiters.fetch_sub(1, SeqCst);
    }

    fn wake_waiters(&self) {
        let _g = self.wait.0.lock();
        self.wait.1.notify_all();
    }

    /// Remove the pending instance, if any. Returns whether one was pending.
    pub(crate) fn cancel(&self) -> bool {
        let mut slot = self.slot.lock();
        match self.state.transition_to_canceled() {
            TransitionToCanceled::NotPending => false,
            TransitionToCanceled::Canceled { was_parked, done } => {
                let parked = if was_parked { slot.parked.take() } else { None };
                slot.timer = None;
                drop(slot);
                if let Some(t) = parked {
                    t.wq.clone().retire(t);
                }
                if let Some(d) = done {
                    self.set_done(d);
                }
                true
            }
        }
    }

    /// Wait for the newest instance (pending or running at call time) to
    /// finish. False if the item was idle.
    pub(crate) fn flush(self: &Arc<Self>, what: &str) -> bool {
        self.flush_from(self.state.load(), what)
    }

    /// [`flush`](Self::flush) against a snapshot taken by the caller at the
    /// moment that defines "pending or running at call time".
    pub(crate) fn flush_from(self: &Arc<Self>, s: state::Snapshot, what: &str) -> bool {
        if !s.is_pending() && !s.is_running() {
            return false;
        }
        current::check_flush_work(self, what);
        if crate::delayed::on_timer_thread() && self.slot.lock().timer.is_some() {
            panic!(
                "kwq: {what}() on work item '{}' from the timer thread (a hook or a \
                 destructor) while its instance is armed on that timer: it would wait for \
                 itself forever",
                self.name
            );
        }
        // An instance was pending or running at call time: the answer is
        // `true` even if it has finished by now (WQ-9: false only if idle).
        let target = s.seq();
        if self.done.load(SeqCst) < target {
            self.wait_until(|| self.done.load(SeqCst) >= target);
        }
        true
    }

    pub(crate) fn cancel_sync(self: &Arc<Self>, what: &str) -> bool {
        current::check_cancel_sync(self, what);
        // Concurrent cancellers wait for each other (WQ-12).
        if !self.state.try_set_canceling() {
            self.wait_until(|| self.state.try_set_canceling());
        }
        let was_pending = self.cancel();
        // No new instance can be queued while CANCELING is set; wait for the
        // running one, if any.
        let target = self.state.load().seq();
        if self.state.load().is_running() {
            self.wait_until(|| self.done.load(SeqCst) >= target);
        }
        self.state.clear_canceling();
        self.wake_waiters();
        was_pending
    }
}

/// Outcome of [`WorkInner::start`].
pub(crate) enum Start {
    Run(Task),
    Parked,
    Stale(Task),
}

impl Work {
    /// Creates a work item named `name` (used in dumps, panic reports and
    /// misuse messages) running `f` each time it is queued.
    pub fn new<F>(name: impl Into<String>, f: F) -> Work
    where
        F: FnMut() + Send + 'static,
    {
        Work {
            inner: Arc::new(WorkInner::new(name.into().into_boxed_str(), Box::new(f))),
        }
    }

    /// The item's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Is an instance queued and not yet started (kernel `work_pending`)?
    pub fn is_pending(&self) -> bool {
        self.inner.state.load().is_pending()
    }

    /// Is the function executing right now (kernel `work_busy` RUNNING)?
    /// Advisory: the answer may be stale by the time it is read.
    pub fn is_running(&self) -> bool {
        self.inner.state.load().is_running()
    }

    /// Are both handles the same item?
    pub fn ptr_eq(&self, other: &Work) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Waits until the instance that was pending or running when `flush`
    /// was called has finished (kernel `flush_work`, WQ-9). Returns `false`
    /// at once if the item was idle. Instances queued after the call are not
    /// waited for.
    ///
    /// # Panics
    ///
    /// If called from inside this item's own function, or from a work item
    /// of an ordered / `max_active(1)` workqueue while this item is pending
    /// on that same workqueue: both would wait forever, so kwq reports the
    /// misuse instead of hanging. Likewise from the delayed-work timer's
    /// thread (a hook or a destructor run there) while this item's instance
    /// is armed on that timer.
    pub fn flush(&self) -> bool {
        self.inner.flush("Work::flush")
    }

    /// Removes the pending instance, if any, without waiting for a running
    /// one (kernel `cancel_work`). Returns whether an instance was pending.
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// Removes the pending instance and waits for a running one to finish
    /// (kernel `cancel_work_sync`, WQ-12). On return the item is neither
    /// pending nor running; queueing it during the call returns `false`.
    /// Returns whether an instance was pending. Concurrent callers wait for
    /// each other.
    ///
    /// # Panics
    ///
    /// If called from inside this item's own function (it would wait for
    /// itself).
    pub fn cancel_sync(&self) -> bool {
        self.inner.cancel_sync("Work::cancel_sync")
    }
}
