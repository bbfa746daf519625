//! Workqueues: semantic domains over shared pools.
//!
//! A [`Workqueue`] decides *what may run and when*: `max_active` (how many of
//! its items may execute at once), ordering, flush and drain. *Where* items
//! run is its pool's business. Workqueues with equal attributes share one
//! pool of their runtime.
//!
//! The per-workqueue accounting (admission for `max_active`, flush colours)
//! is described in [`active`].
//!
//! # Shutdown
//!
//! Dropping a `Workqueue` *drains* it (kernel `destroy_workqueue`): it waits
//! until every queued item — including items its own items queue meanwhile —
//! has run, refuses queueing from anywhere else, and then marks the queue
//! destroyed: any later `queue` returns `false` (`try_queue` says why).
//! Delayed items whose timer fires after that are dropped with a warning;
//! cancel them first if that matters. Dropping a workqueue from inside one of
//! its own items cannot wait for itself: it marks the queue destroyed
//! without draining and reports a warning. Use
//! [`Workqueue::shutdown_timeout`] to bound the wait and learn what is still
//! in flight.

pub(crate) mod active;
mod rescue;

pub(crate) use rescue::Rescue;

use crate::current;
use crate::error::{BuildError, QueueError, SetMaxActiveError, ShutdownError, TryQueueFnError};
use crate::exec::Pool;
use crate::join::JoinHandle;
use crate::pool::policy::{DFL_MAX_ACTIVE, MAX_ACTIVE};
use crate::pool::PoolAttrs;
use crate::report::{Warning, WarningKind};
use crate::runtime::{Runtime, RuntimeInner};
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::Arc;
use crate::task::{Payload, Task};
use crate::work::{Work, WorkInner};
use active::{Admission, Colors, Defer};
use std::time::{Duration, Instant};

const DEAD: usize = 1;
const DRAINING_ONE: usize = 2;

static NEXT_WQ_ID: AtomicUsize = AtomicUsize::new(1);

/// Behaviour flags of a workqueue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WqFlags {
    pub(crate) ordered: bool,
    pub(crate) highpri: bool,
    pub(crate) unbound: bool,
    pub(crate) cpu_intensive: bool,
    pub(crate) rescuer: bool,
}

/// The shared part of a workqueue (kernel `workqueue_struct` + its single
/// `pool_workqueue`).
///
/// `repr(C)` with the flush-colour word first: it then sits right after the
/// `Arc`'s reference counts, usually in the same cache line, and the two
/// read-modify-writes every queued job makes on the submit side (count the
/// colour, clone the `Arc`) and on the worker side (uncount, drop) move one
/// line between cores instead of two.
#[repr(C)]
pub(crate) struct WqInner {
    pub(crate) colors: Colors,
    pub(crate) admission: Admission<Task>,
    pub(crate) id: u64,
    name: Box<str>,
    pub(crate) flags: WqFlags,
    pub(crate) pool: Arc<Pool>,
    state: AtomicUsize,
    pub(crate) rt: Arc<RuntimeInner>,
    drain_rounds: AtomicU64,
    /// The rescuer's FIFO, for a queue built with `rescuer()`.
    rescue: Option<Arc<Rescue>>,
}

impl WqInner {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Can `max_active` bind? Not when it is at least the pool's worker cap:
    /// then no more than `max_active` items can execute anyway, and queueing
    /// skips the admission word entirely (tasks run without a slot, and
    /// retire none), keeping the submit path free of it.
    pub(crate) fn enforces_max_active(&self) -> bool {
        self.admission.max_active() < self.pool.cfg.max_workers || self.admission.counts() != (0, 0)
    }

    /// Single-threaded: ordered or `max_active == 1`.
    pub(crate) fn is_single(&self) -> bool {
        self.flags.ordered || self.admission.max_active() == 1
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.state.load(Acquire) >= DRAINING_ONE
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.state.load(Acquire) & DEAD != 0
    }

    /// May a new instance be queued from the calling thread?
    /// Reports `w` (tagged with this queue) through the runtime's hooks.
    pub(crate) fn warn(&self, w: Warning) {
        self.pool.cfg.warn(w.on_queue(&self.name));
    }

    #[inline]
    pub(crate) fn check_accepting(&self) -> Result<(), QueueError> {
        let s = self.state.load(Acquire);
        if s == 0 {
            return Ok(());
        }
        self.check_accepting_slow(s)
    }

    #[cold]
    #[inline(never)]
    fn check_accepting_slow(&self, s: usize) -> Result<(), QueueError> {
        if s & DEAD != 0 {
            return Err(QueueError::destroyed(&self.name));
        }
        if current::is_running_on(self.id) {
            Ok(()) // chained queueing from our own item
        } else {
            Err(QueueError::draining(&self.name))
        }
    }

    /// Pushes a token for pending instance `seq` of `item`.
    pub(crate) fn enqueue_work(self: &Arc<Self>, item: Arc<WorkInner>, seq: u64) {
        item.last_wq.store(self.id, Release);
        self.submit(Payload::Work { item, seq });
    }

    /// Counts a new task in the current flush colour and hands it to the
    /// pool — or, when `max_active` can bind and no slot is free, to the
    /// inactive list (kernel `__queue_work`). Admission happens here, in
    /// queueing order, so that items start in that order (WQ-7, WQ-8).
    pub(crate) fn submit(self: &Arc<Self>, payload: Payload) {
        let color = self.colors.get();
        self.admit_and_push(Task {
            payload,
            wq: self.clone(),
            color,
            admitted: false,
        });
    }

    /// Admission (if `max_active` can bind) and hand-off of a counted task.
    pub(crate) fn admit_and_push(&self, mut task: Task) {
        if self.enforces_max_active() {
            if self.admission.try_admit() {
                task.admitted = true;
            } else {
                match self.admission.defer(task) {
                    Defer::Admitted(t) => {
                        task = t;
                        task.admitted = true;
                    }
                    Defer::Deferred => return,
                }
            }
        }
        self.push_ready(task);
    }

    /// Hands a task that may run now to the pool (through the rescuer's
    /// FIFO and a pull token, for a rescuer-equipped queue).
    /// (Inline, with the rescuer's branch out of line: this is the job
    /// path's hand-off, `spawn`'s hot loop.)
    #[inline]
    fn push_ready(&self, task: Task) {
        match &self.rescue {
            None => self.pool.push(task),
            Some(r) => Self::push_rescued(&self.pool, r, task),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_rescued(pool: &Arc<Pool>, r: &Arc<Rescue>, task: Task) {
        let wq = task.wq.clone();
        r.push(task);
        pool.push(Task {
            payload: Payload::Job(crate::job::Job::marker()),
            wq,
            color: 0,
            admitted: false,
        });
    }

    /// The rescuer's FIFO, if the queue was built with `rescuer()`.
    pub(crate) fn rescue(&self) -> Option<&Arc<Rescue>> {
        self.rescue.as_ref()
    }

    /// The rescuer (if any) exits once nothing waits for it.
    fn stop_rescuer(&self) {
        if let Some(r) = &self.rescue {
            r.stop();
        }
    }

    /// Retires a consumed task: gives back its `max_active` slot (activating
    /// inactive tasks) and uncounts its flush colour.
    /// The token may hold the last reference to a work item, whose closure
    /// is user data: a panicking destructor is contained and reported
    /// (after the task is retired: a hook told about it may flush).
    pub(crate) fn retire(self: Arc<Self>, task: Task) {
        let (color, admitted) = (task.color, task.admitted);
        self.retire_parts(color, admitted);
        self.pool
            .cfg
            .hooks
            .drop_contained(task, "a cancelled work item");
    }

    #[inline]
    pub(crate) fn retire_parts(&self, color: u8, admitted: bool) {
        if admitted {
            self.release_slot();
        }
        self.colors.put(color);
    }

    /// Gives back one `max_active` slot, starting the oldest inactive task.
    pub(crate) fn release_slot(&self) {
        for mut t in self.admission.retire() {
            t.admitted = true;
            self.push_ready(t);
        }
    }

    fn flush(&self, what: &str) {
        current::check_flush_wq(self, what);
        self.colors.flush(|wait| current::blocking(wait));
    }

    fn drain(&self, what: &str) {
        current::check_flush_wq(self, what);
        self.state.fetch_add(DRAINING_ONE, SeqCst);
        let mut rounds = 0u64;
        loop {
            self.colors.flush(|wait| current::blocking(wait));
            if self.colors.in_flight() == 0 {
                break;
            }
            rounds += 1;
            if rounds == 10 || rounds % 100 == 0 {
                self.warn(Warning::new(
                    WarningKind::SlowDrain,
                    format!(
                        "workqueue '{}': {what}() isn't complete after {rounds} flushes \
                         ({} in flight)",
                        self.name,
                        self.colors.in_flight()
                    ),
                ));
            }
        }
        self.drain_rounds.fetch_add(rounds + 1, Relaxed);
        self.state.fetch_sub(DRAINING_ONE, SeqCst);
    }
}

/// A workqueue (kernel `struct workqueue_struct`).
///
/// Built with [`Workqueue::builder`]. Items are queued with
/// [`queue`](Workqueue::queue) (persistent [`Work`] items),
/// [`queue_fn`](Workqueue::queue_fn) (one-shot closures) and
/// [`queue_delayed`](Workqueue::queue_delayed); results come back through
/// [`spawn`](Workqueue::spawn).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let wq = kwq::Workqueue::builder("checksums").max_active(8).build()?;
/// let total = Arc::new(AtomicU64::new(0));
/// for block in 0..64u64 {
///     let t = total.clone();
///     wq.queue_fn(move || {
///         t.fetch_add(block, Ordering::Relaxed);
///     });
/// }
/// wq.flush(); // everything queued above has run
/// assert_eq!(total.load(Ordering::Relaxed), (0..64).sum());
/// # Ok::<(), kwq::BuildError>(())
/// ```
///
/// # Shutdown
///
/// Dropping a `Workqueue` drains it (kernel `destroy_workqueue`): it waits
/// until every queued item, including items its own items queue meanwhile,
/// has run, refuses queueing from anywhere else, then marks the queue
/// destroyed. From inside one of its own items it cannot wait for itself:
/// it marks the queue destroyed without draining and reports a
/// [`Warning`].
/// [`shutdown_timeout`](Workqueue::shutdown_timeout) bounds the wait.
pub struct Workqueue {
    pub(crate) inner: Arc<WqInner>,
}

// Usable after a caught panic: no user code runs while its state is
// inconsistent (see `Work`).
impl std::panic::UnwindSafe for Workqueue {}
impl std::panic::RefUnwindSafe for Workqueue {}

impl std::fmt::Debug for Workqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (active, inactive) = self.inner.admission.counts();
        f.debug_struct("Workqueue")
            .field("name", &self.inner.name())
            .field("flags", &self.inner.flags)
            .field("max_active", &self.inner.admission.max_active())
            .field("active", &active)
            .field("inactive", &inactive)
            .field("in_flight", &self.inner.colors.in_flight())
            .finish()
    }
}

/// Builds a [`Workqueue`] (kernel `alloc_workqueue` flags and `max_active`).
///
/// ```
/// let rt = kwq::RuntimeBuilder::new().concurrency(2).build()?;
/// // One item at a time, in queueing order, on a high-priority pool.
/// let log = kwq::Workqueue::builder("log-writer")
///     .ordered()
///     .highpri()
///     .runtime(&rt)
///     .build()?;
/// // Items that burn CPU for long stretches do not hold up the pool.
/// let crunch = kwq::Workqueue::builder("crunch")
///     .cpu_intensive()
///     .max_active(4)
///     .runtime(&rt)
///     .build()?;
/// # drop((log, crunch));
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct WorkqueueBuilder {
    name: String,
    max_active: Option<usize>,
    flags: WqFlags,
    runtime: Option<Runtime>,
}

impl WorkqueueBuilder {
    /// How many items of this queue may execute at once (1..=512; default
    /// 256, kernel `WQ_DFL_ACTIVE`). Excess items wait in FIFO order on the
    /// queue's inactive list (WQ-7).
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = Some(n);
        self
    }

    /// One item at a time, in queueing order (kernel
    /// `alloc_ordered_workqueue`, WQ-8). Implies `max_active(1)` and forbids
    /// changing it.
    pub fn ordered(mut self) -> Self {
        self.flags.ordered = true;
        self
    }

    /// Run on the runtime's high-priority pools (kernel `WQ_HIGHPRI`): own
    /// workers, whose OS scheduling priority is raised where permitted.
    pub fn highpri(mut self) -> Self {
        self.flags.highpri = true;
        self
    }

    /// Run on an unbound pool (kernel `WQ_UNBOUND`): no concurrency
    /// management, every pending item (within `max_active`) gets a worker.
    pub fn unbound(mut self) -> Self {
        self.flags.unbound = true;
        self
    }

    /// Items are CPU hogs (kernel `WQ_CPU_INTENSIVE`): a worker running one
    /// does not count against the pool's concurrency target, so it does not
    /// hold back other queues' items.
    pub fn cpu_intensive(mut self) -> Self {
        self.flags.cpu_intensive = true;
        self
    }

    /// Gives the queue a rescuer (the kernel's `WQ_MEM_RECLAIM`): one
    /// thread of its own that runs the queue's waiting items when the pool
    /// cannot provide a worker — none idle, and the pool at its
    /// [`max_workers`](crate::RuntimeBuilder::max_workers) cap or unable to
    /// create threads — for 10 ms. For queues that must make progress for
    /// the rest of the system to (the kernel's memory-reclaim path; a
    /// stacked filesystem's lower level). Costs a sleeping thread and a
    /// little per item (items wait in the queue's own list, with a token on
    /// the pool's). Rescues are reported as
    /// [`WarningKind::Rescued`].
    ///
    /// ```
    /// let wq = kwq::Workqueue::builder("writeback").rescuer().build()?;
    /// assert_eq!(wq.spawn(|| 1).join().unwrap(), 1);
    /// # Ok::<(), kwq::BuildError>(())
    /// ```
    pub fn rescuer(mut self) -> Self {
        self.flags.rescuer = true;
        self
    }

    /// Use the pools of `rt` instead of the global runtime's.
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// Creates the workqueue.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the name is empty, `max_active` is outside
    /// 1 ..= 512, or an ordered queue was given a `max_active` other than 1.
    pub fn build(self) -> Result<Workqueue, BuildError> {
        if self.name.is_empty() {
            return Err(BuildError::empty_name());
        }
        let max_active = match (self.flags.ordered, self.max_active) {
            (true, None | Some(1)) => 1,
            (true, Some(n)) => return Err(BuildError::ordered_max_active(n)),
            (false, None) => DFL_MAX_ACTIVE,
            (false, Some(n)) if (1..=MAX_ACTIVE).contains(&n) => n,
            (false, Some(n)) => return Err(BuildError::max_active(n)),
        };
        let rt = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let pool = rt.inner.pool(PoolAttrs {
            highpri: self.flags.highpri,
            unbound: self.flags.unbound,
        })?;
        let rescue = if self.flags.rescuer {
            Some(Rescue::start(&pool, &self.name).map_err(BuildError::rescuer)?)
        } else {
            None
        };
        let inner = Arc::new(WqInner {
            colors: Colors::new(),
            admission: Admission::new(max_active),
            id: NEXT_WQ_ID.fetch_add(1, Relaxed) as u64,
            name: self.name.into_boxed_str(),
            flags: self.flags,
            pool,
            state: AtomicUsize::new(0),
            rt: rt.inner.clone(),
            drain_rounds: AtomicU64::new(0),
            rescue,
        });
        rt.inner.register(&inner);
        Ok(Workqueue { inner })
    }
}

impl Workqueue {
    /// Starts building a workqueue named `name`.
    pub fn builder(name: impl Into<String>) -> WorkqueueBuilder {
        WorkqueueBuilder {
            name: name.into(),
            max_active: None,
            flags: WqFlags::default(),
            runtime: None,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Current `max_active`.
    pub fn max_active(&self) -> usize {
        self.inner.admission.max_active()
    }

    /// Items queued and not yet finished (pending, parked or running).
    pub fn in_flight(&self) -> usize {
        self.inner.colors.in_flight() as usize
    }

    /// Queues an instance of `work` (kernel `queue_work`). Returns `false`,
    /// queueing nothing, if an instance is already pending (WQ-1) or a
    /// `cancel_sync` of the item is in progress. If the queue refuses work
    /// (draining, destroyed) it returns `false` and reports a
    /// [`Warning`] of kind `QueueRefused`; use
    /// [`try_queue`](Workqueue::try_queue) to handle that case.
    ///
    /// Queueing a running item is allowed: it runs once more, after the
    /// current run ends, never concurrently (WQ-2). One item may be queued on
    /// several workqueues; it still never runs concurrently with itself (WQ-3).
    pub fn queue(&self, work: &Work) -> bool {
        match self.try_queue(work) {
            Ok(queued) => queued,
            Err(e) => {
                self.inner.warn(
                    Warning::new(
                        WarningKind::QueueRefused,
                        format!("work item '{}' not queued: {e}", work.name()),
                    )
                    .of_work(work.name()),
                );
                false
            }
        }
    }

    /// Like [`queue`](Workqueue::queue), but reports a refusing queue as an
    /// error. `Ok(false)` means "already pending".
    ///
    /// # Errors
    ///
    /// A [`QueueError`] if the workqueue is draining (and the caller is not
    /// one of its own items) or destroyed.
    pub fn try_queue(&self, work: &Work) -> Result<bool, QueueError> {
        self.inner.check_accepting()?;
        match work.inner.state.transition_to_pending() {
            crate::work::state::TransitionToPending::Queued { seq } => {
                self.inner.enqueue_work(work.inner.clone(), seq);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Queues a one-shot closure. Returns `false` (dropping the closure, with
    /// a [`Warning`]) if the queue refuses work; see
    /// [`try_queue_fn`](Workqueue::try_queue_fn).
    ///
    /// A closure that captures at most three words (say an `Arc`, a
    /// reference and an index) is stored in the worklist slot itself, with no
    /// heap allocation; a larger one is boxed.
    pub fn queue_fn<F>(&self, f: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        match self.try_queue_fn(f) {
            Ok(()) => true,
            Err(e) => {
                self.job_refused(e);
                false
            }
        }
    }

    /// `queue_fn`'s refusal, out of the hot path.
    #[cold]
    #[inline(never)]
    fn job_refused<F>(&self, e: TryQueueFnError<F>) {
        let msg = format!("job not queued: {}", e.error());
        // The closure is user code: its destructor may panic.
        crate::report::drop_contained(e.into_inner(), "a refused job");
        self.inner
            .warn(Warning::new(WarningKind::QueueRefused, msg).of_work("<job>"));
    }

    /// Queues a one-shot closure, handing it back if the queue refuses work.
    ///
    /// # Errors
    ///
    /// A [`TryQueueFnError`] holding the closure if the workqueue is
    /// draining or destroyed.
    pub fn try_queue_fn<F>(&self, f: F) -> Result<(), TryQueueFnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if let Err(e) = self.inner.check_accepting() {
            return Err(TryQueueFnError::new(f, e));
        }
        self.inner.submit(Payload::Job(crate::job::Job::new(f)));
        Ok(())
    }

    /// Queues a one-shot closure and returns a handle to its result.
    ///
    /// Never fails by itself: if the queue refuses work, the handle's
    /// [`join`](JoinHandle::join) says so. A panic of `f` goes to the
    /// handle (or, once the handle was dropped, to the runtime's panic
    /// hook).
    ///
    /// ```
    /// let wq = kwq::Workqueue::builder("answers").build()?;
    /// let h = wq.spawn(|| 6 * 7);
    /// assert_eq!(h.join().unwrap(), 42);
    /// # Ok::<(), kwq::BuildError>(())
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let packet = crate::join::Packet::new();
        let sender = crate::join::ResultSender::new(packet.clone());
        match self.try_queue_fn(move || sender.run(f)) {
            Ok(()) => JoinHandle::new(packet),
            Err(e) => {
                let err = e.error().clone();
                // Dropping the job drops `f` (user code) and cancels the
                // packet nobody will read.
                crate::report::drop_contained(e.into_inner(), "a refused job");
                JoinHandle::refused(err)
            }
        }
    }

    /// Waits until every item queued on this workqueue before the call has
    /// finished (kernel `flush_workqueue`, WQ-10). Items queued after the
    /// call — including requeues from running items — do not hold it up.
    ///
    /// # Panics
    ///
    /// If called from one of this workqueue's own items, which is itself in
    /// flight and would wait for itself.
    pub fn flush(&self) {
        self.inner.flush("Workqueue::flush");
    }

    /// Waits until the queue is empty (kernel `drain_workqueue`, WQ-11).
    /// Meanwhile only this queue's own items may queue on it ("chained"
    /// work); anyone else gets [`QueueError`] (or `false` from `queue`).
    ///
    /// # Panics
    ///
    /// If called from one of this workqueue's own items.
    pub fn drain(&self) {
        self.inner.drain("Workqueue::drain");
    }

    /// Changes `max_active` (kernel `workqueue_set_max_active`). Raising it
    /// starts waiting items at once; lowering it never preempts running ones.
    ///
    /// # Errors
    ///
    /// A [`SetMaxActiveError`] if the queue is ordered or `n` is outside
    /// 1 ..= 512.
    pub fn set_max_active(&self, n: usize) -> Result<(), SetMaxActiveError> {
        if self.inner.flags.ordered {
            return Err(SetMaxActiveError::ordered(self.name()));
        }
        if !(1..=MAX_ACTIVE).contains(&n) {
            return Err(SetMaxActiveError::range(n));
        }
        for mut t in self.inner.admission.set_max_active(n) {
            t.admitted = true;
            self.inner.push_ready(t);
        }
        Ok(())
    }

    /// Drains the queue like `drop`, but waits at most `timeout`. On timeout
    /// the queue is destroyed anyway (nothing new may be queued) and the
    /// error lists what was still in flight; those items still run.
    ///
    /// # Errors
    ///
    /// A [`ShutdownError`] naming what was still in flight at the deadline.
    pub fn shutdown_timeout(self, timeout: Duration) -> Result<(), ShutdownError> {
        let inner = self.inner.clone();
        inner.state.fetch_add(DRAINING_ONE, SeqCst);
        let deadline = Instant::now() + timeout;
        let mut result = Ok(());
        while inner.colors.in_flight() != 0 {
            if Instant::now() >= deadline {
                result = Err(ShutdownError::new(
                    inner.name(),
                    inner.colors.in_flight() as usize,
                    inner.rt.running_on(inner.id),
                ));
                break;
            }
            current::blocking(|| crate::sync::thread::sleep(Duration::from_millis(1)));
        }
        inner.state.fetch_or(DEAD, SeqCst);
        inner.stop_rescuer();
        inner.state.fetch_sub(DRAINING_ONE, SeqCst);
        result
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        if self.inner.is_dead() {
            return;
        }
        if current::is_running_on(self.inner.id) {
            self.inner.warn(Warning::new(
                WarningKind::DroppedFromOwnItem,
                format!(
                    "workqueue '{}' dropped from one of its own items: destroyed without \
                     draining (it cannot wait for itself)",
                    self.inner.name()
                ),
            ));
        } else if !crate::sync::thread::panicking() {
            self.inner.drain("Workqueue::drop");
        }
        self.inner.state.fetch_or(DEAD, SeqCst);
        self.inner.stop_rescuer();
    }
}
