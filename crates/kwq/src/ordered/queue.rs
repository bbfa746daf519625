//! [`OrderedWorkqueue`]: the per-item front end (Btrfs `btrfs_workqueue`).

use super::cost::{Cost, TARGET_BATCH_NS, WAKE_NS};
use super::crew::{self, Crew, Stages, MAX_RUNNERS};
use super::error::{FlushError, Stage, StagePanicError, TryQueueError};
use super::ring::{Full, Ring};
use super::thresh::Thresh;
use crate::report::{Warning, WarningKind};
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::thread_local;
use crate::sync::{Arc, Mutex};
use crate::BuildError;
use crate::{Runtime, Workqueue};
use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Default `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Most items one runner claims at once.
const MAX_BATCH: u64 = 32;

/// Most unclaimed items per active runner before another is woken (cheap
/// items; slower ones wake sooner, see `ordered/cost.rs`).
const MAX_WAKE_BACKLOG: u64 = 64;

/// A runner times one batch in this many.
const SAMPLE_EVERY: u32 = 8;

thread_local! {
    /// Batches this thread ran, for sampling.
    static BATCHES: Cell<u32> = const { Cell::new(0) };
}

type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// One sub-queue (normal or high): a crew running the ordered stages.
type SubQueue<T, F, O> = Arc<Crew<OrderedStages<T, F, O>>>;

/// The stages of an ordered queue: `func` in parallel, then `ordered`
/// drained in order by whichever runner finds the head DONE.
pub(crate) struct OrderedStages<T, F, O> {
    high: bool,
    /// [`OrderedWorkqueueBuilder::caller_runs`].
    caller_runs: bool,
    panics: Mutex<Vec<StagePanicError>>,
    nr_panics: AtomicUsize,
    /// How long `func` takes per item (sizes claims and wakes).
    cost: Cost,
    _types: PhantomData<fn(F, O) -> T>,
}

impl<T, F, O> OrderedStages<T, F, O> {
    fn record(&self, seq: u64, stage: Stage, p: Box<dyn Any + Send>) {
        self.panics
            .lock()
            .push(StagePanicError::new(seq, self.high, stage, p));
        self.nr_panics.fetch_add(1, Release);
    }

    fn take_panics(&self) -> Vec<StagePanicError> {
        if self.nr_panics.load(Acquire) == 0 {
            return Vec::new();
        }
        let v = std::mem::take(&mut *self.panics.lock());
        self.nr_panics.fetch_sub(v.len(), Release);
        v
    }
}

impl<T, F, O> Stages for OrderedStages<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    type Job = (F, O);
    type Done = (Outcome<T>, O);

    fn wake_backlog(&self) -> u64 {
        self.cost.backlog_for(WAKE_NS, MAX_WAKE_BACKLOG)
    }

    fn max_claim(&self) -> u64 {
        self.cost.items_for(TARGET_BATCH_NS, MAX_BATCH)
    }

    fn time_batch(&self) -> bool {
        // Every batch while the cost is unknown or slow; else one in
        // SAMPLE_EVERY per thread: two clock reads per batch would cost
        // cheap items a few percent.
        self.cost.time_every_batch()
            || BATCHES.with(|b| {
                let n = b.get().wrapping_add(1);
                b.set(n);
                n % SAMPLE_EVERY == 0
            })
    }

    fn record_batch(&self, items: u64, ns: u64) {
        self.cost.record(items, ns);
    }

    fn func(&self, _seq: u64, (f, o): (F, O)) -> (Outcome<T>, O) {
        (catch_unwind(AssertUnwindSafe(f)), o)
    }

    fn after_batch(&self, crew: &Crew<Self>) {
        drain(crew);
    }
}

/// run_ordered_work: drains DONE items in order if nobody else does.
fn drain<T, F, O>(crew: &Crew<OrderedStages<T, F, O>>)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    let stages = &crew.stages;
    // An ordered stage may block: the owner counts as stalled while it
    // drains, so parallel stages keep going (`Crew::drain_session`).
    crew.ring.try_drain_owned(
        || crew.drain_session(),
        |seq, (outcome, ordered)| match outcome {
            Ok(value) => {
                // ordered_func, then ordered_free: `ordered` and everything
                // it captured are consumed (dropped) inside this call.
                if let Err(p) = catch_unwind(AssertUnwindSafe(move || ordered(value))) {
                    stages.record(seq, Stage::Ordered, p);
                }
            }
            Err(p) => {
                // No value to order: drop the ordered closure (ordered_free)
                // and report the func panic. A panic of that drop is a
                // second, separate problem: `flush` returns the func panic
                // (the first), the drop's panic is reported as a warning.
                crew.wq
                    .inner
                    .pool
                    .cfg
                    .hooks
                    .drop_contained(ordered, "an ordered closure left uncalled");
                stages.record(seq, Stage::Func, p);
            }
        },
        |seq| crew.waiters.notify_released(seq),
    );
}

/// Builds an [`OrderedWorkqueue`] (Btrfs `btrfs_alloc_workqueue`).
///
/// ```
/// use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};
///
/// let q: BoxedOrderedWorkqueue<Vec<u8>> = OrderedWorkqueue::builder("compress")
///     .max_active(2)        // at most two parallel stages at once
///     .max_in_flight(256)   // bounded memory: items between queue and release
///     .highpri()            // a second, high-priority sub-queue
///     .build()?;
/// q.queue(Box::new(|| vec![1, 2, 3]), Box::new(|v| assert_eq!(v.len(), 3)));
/// q.flush().expect("no stage panicked");
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OrderedWorkqueueBuilder {
    name: String,
    max_active: Option<usize>,
    highpri: bool,
    thresh: Option<u64>,
    max_in_flight: usize,
    caller_runs: bool,
    runtime: Option<Runtime>,
}

impl OrderedWorkqueueBuilder {
    /// How many parallel stages may run at once (Btrfs `limit_active`;
    /// 1..=64; default: the runtime's concurrency). The bound includes
    /// threads that help a full queue (see [`OrderedWorkqueue::queue`]).
    /// Runners blocked inside [`crate::blocking`], or blocked owning the
    /// ordered drain, overflow the limit (`docs/ordered.md`, "Blocking").
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = Some(n);
        self
    }

    /// Add a high-priority sub-queue (Btrfs `WQ_HIGHPRI` "-high" queue),
    /// fed by [`OrderedWorkqueue::queue_high`], run on the runtime's
    /// high-priority pool, with its own order and its own `max_in_flight`.
    pub fn highpri(mut self) -> Self {
        self.highpri = true;
        self
    }

    /// Make the number of concurrently running parallel stages dynamic,
    /// between 1 and `max_active`, following the backlog (Btrfs `thresh`,
    /// see the `thresh` module notes): it grows while more than
    /// `thresh` items wait to start and shrinks below `thresh / 2` (below
    /// 1 for `thresh(1)`). `thresh(0)` uses Btrfs's default, 32, lowered to
    /// `max_in_flight / 2` for smaller queues; any other `thresh` must be
    /// below `max_in_flight` (the backlog never exceeds it), else `build`
    /// returns an error.
    ///
    /// A runner that is visibly blocked — it owns the ordered drain, or is
    /// inside [`crate::blocking`] — is *stalled*; when every runner among
    /// the first `current_active` is stalled and work is waiting, one more
    /// runner is woken and `current_active` is raised to include it. So a
    /// stage that blocks until a *later* item's `func` has run is not a
    /// deadlock here, as it would be for a Btrfs work item holding its
    /// workqueue's only active slot. A `func` that blocks outside
    /// `kwq::blocking` holds its slot, as in Btrfs (and as with a fixed
    /// `max_active(1)`, which has no runner to wake).
    pub fn thresh(mut self, thresh: u64) -> Self {
        self.thresh = Some(thresh);
        self
    }

    /// Bound on items between `queue` and the release of their ordered
    /// stage, per sub-queue (default 1024). `queue` blocks and `try_queue`
    /// refuses beyond it. Memory is allocated up front for this many items.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Let a producer that finds the queue full run stages on its own
    /// thread even while all `max_active` runner slots are busy (default
    /// false), as the calling thread of oneTBB's `parallel_pipeline` does.
    /// `max_active` then bounds the runners only: each producer blocked in
    /// [`OrderedWorkqueue::queue`] may run one more stage. In exchange a
    /// full producer works instead of sleeping, and the items it runs are
    /// still in its cache (measured in `BENCHMARKS.md`: 1.4–2× at pure
    /// overhead, +1–4% with 2 µs of work per item, on 2 cores). Leave it
    /// off where `max_active` limits a resource (memory, I/O, a licence).
    pub fn caller_runs(mut self, on: bool) -> Self {
        self.caller_runs = on;
        self
    }

    /// Run on the pools of `rt` instead of the global runtime's.
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// Creates the queue. Its types are inferred from the first `queue`
    /// call; see [`OrderedWorkqueue`] for queueing different closures.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `max_active` is outside 1 ..= 64,
    /// `max_in_flight` outside 1 ..= 2^32, `thresh` not below
    /// `max_in_flight`, or the ring cannot be allocated.
    pub fn build<T, F, O>(self) -> Result<OrderedWorkqueue<T, F, O>, BuildError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
        O: FnOnce(T) + Send + 'static,
    {
        let rt = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let limit = self
            .max_active
            .unwrap_or_else(|| rt.concurrency().min(MAX_RUNNERS));
        if !(1..=MAX_RUNNERS).contains(&limit) {
            return Err(BuildError::runners_max_active(limit, MAX_RUNNERS));
        }
        if !(1..=1 << 32).contains(&self.max_in_flight) {
            return Err(BuildError::max_in_flight(self.max_in_flight));
        }
        let thresh = match self.thresh {
            None => None,
            Some(t) => Some(
                Thresh::effective(t, self.max_in_flight)
                    .ok_or_else(|| BuildError::thresh(t, self.max_in_flight))?,
            ),
        };
        let sub = |high: bool| -> Result<SubQueue<T, F, O>, BuildError> {
            let name = if high {
                format!("{}-high", self.name)
            } else {
                self.name.clone()
            };
            let mut b = Workqueue::builder(name).runtime(&rt).max_active(limit);
            if high {
                b = b.highpri();
            }
            let wq = b.build()?;
            let thresh = thresh.map(|t| Thresh::new(t, limit));
            let ring = Ring::try_new(self.max_in_flight).map_err(|_| {
                BuildError::out_of_memory(
                    self.max_in_flight,
                    Ring::<(F, O), (Outcome<T>, O)>::SLOT_BYTES,
                )
            })?;
            Ok(Crew::new(
                wq,
                ring,
                limit,
                thresh,
                OrderedStages {
                    high,
                    caller_runs: self.caller_runs,
                    panics: Mutex::new(Vec::new()),
                    nr_panics: AtomicUsize::new(0),
                    cost: Cost::default(),
                    _types: PhantomData,
                },
            ))
        };
        let normal = sub(false)?;
        let high = if self.highpri { Some(sub(true)?) } else { None };
        Ok(OrderedWorkqueue {
            name: self.name.into_boxed_str(),
            normal,
            high,
        })
    }
}

/// A Btrfs-style ordered workqueue: `func` stages run in parallel on kwq's
/// shared pools, `ordered` stages run one at a time in queueing order.
/// See the [module docs](super) for the protocol and guarantees.
///
/// The queue is generic over the closure types, so closures are stored
/// unboxed. A loop queueing the same closure expressions has one type;
/// to queue different closures, use boxed ones
/// ([`BoxedOrderedWorkqueue`]).
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// let q = kwq::ordered::OrderedWorkqueue::builder("squares")
///     .max_active(4)
///     .max_in_flight(64)
///     .build()
///     .unwrap();
/// let out = Arc::new(Mutex::new(Vec::new()));
/// for i in 0..100u64 {
///     let out = out.clone();
///     q.queue(move || i * i, move |sq| out.lock().unwrap().push(sq));
/// }
/// q.flush().unwrap();
/// let v = out.lock().unwrap().clone();
/// assert_eq!(v, (0..100u64).map(|i| i * i).collect::<Vec<_>>());
/// ```
///
/// # Shutdown
///
/// Dropping the queue waits until every queued item has been released and
/// every runner has returned (like `destroy_workqueue`), then reports any
/// panics nobody collected with `flush`. Where it cannot or should not
/// wait — dropped from inside one of its own stages (it would wait for
/// itself), or while the dropping thread unwinds from a panic (it may hold
/// what the stages need) — the drop returns at once and a finisher thread
/// named `kwq-finish:<name>` waits instead: every queued item still runs
/// all its stages, and uncollected panics are reported once they have.
pub struct OrderedWorkqueue<T, F = BoxedFunc<T>, O = BoxedOrdered<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    name: Box<str>,
    normal: SubQueue<T, F, O>,
    high: Option<SubQueue<T, F, O>>,
}

// Usable after a caught panic: stages run on workers under `catch_unwind`,
// never while the queue's state is inconsistent.
impl<T, F, O> std::panic::UnwindSafe for OrderedWorkqueue<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
}
impl<T, F, O> std::panic::RefUnwindSafe for OrderedWorkqueue<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
}

/// A boxed parallel stage.
pub type BoxedFunc<T> = Box<dyn FnOnce() -> T + Send + 'static>;
/// A boxed ordered stage.
pub type BoxedOrdered<T> = Box<dyn FnOnce(T) + Send + 'static>;
/// An ordered queue taking any closures (boxed; one allocation per stage).
pub type BoxedOrderedWorkqueue<T> = OrderedWorkqueue<T, BoxedFunc<T>, BoxedOrdered<T>>;

impl<T, F, O> std::fmt::Debug for OrderedWorkqueue<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedWorkqueue")
            .field("name", &self.name)
            .field("normal", &self.normal.describe())
            .field("high", &self.high.as_ref().map(|h| h.describe()))
            .finish()
    }
}

impl OrderedWorkqueue<()> {
    /// Starts building an ordered queue named `name`.
    pub fn builder(name: impl Into<String>) -> OrderedWorkqueueBuilder {
        OrderedWorkqueueBuilder {
            name: name.into(),
            max_active: None,
            highpri: false,
            thresh: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            caller_runs: false,
            runtime: None,
        }
    }
}

impl<T, F, O> OrderedWorkqueue<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues an item (Btrfs `btrfs_queue_work`): `func` runs on some
    /// worker, in parallel with other items' `func`s; then `ordered` runs
    /// with its result, after the `ordered` of every item queued before it
    /// on this sub-queue, never concurrently with another `ordered` of this
    /// sub-queue; then both closures and everything they captured are
    /// dropped and the item's slot is released.
    ///
    /// When `max_in_flight` items are in flight, the caller first *helps*
    /// if one of the `max_active` runner slots is free: it takes that slot,
    /// claims a batch of queued items and runs their `func` (and any
    /// `ordered` stages that become ready) on its own thread, as the calling
    /// thread of oneTBB's `parallel_pipeline` does. It never runs stages
    /// beside `max_active` busy runners: `max_active` bounds the parallel
    /// stages of this queue, helpers included. Otherwise (or when every
    /// queued item is already claimed) it sleeps, inside [`crate::blocking`],
    /// until half the ring is free — one wake-up per batch of releases, not
    /// one per release — or, after a millisecond, until any slot is (so an
    /// `ordered` stage that waits for the producer's next step cannot hang
    /// it). Sleeping inside `blocking` means a kwq worker (of any queue on
    /// the same pool) that queues here does not starve the pool: another
    /// worker runs the stages that free the room. Use
    /// [`try_queue`](Self::try_queue) to never run stages on the calling
    /// thread.
    ///
    /// Because a full queue makes the caller run stages — other items'
    /// `func`s *and* `ordered` stages — do not call `queue` while holding a
    /// lock that a stage of this queue takes: the caller could end up
    /// running that stage and wait for itself. Use `try_queue` there.
    ///
    /// # Panics
    ///
    /// If the queue is full and the caller is executing one of this
    /// sub-queue's own stages: room can only appear when the caller's own
    /// stage (or one it waits behind) finishes, so it would wait for
    /// itself. Use [`try_queue`](Self::try_queue) there.
    pub fn queue(&self, func: F, ordered: O) {
        push_blocking(&self.normal, func, ordered);
    }

    /// Like [`queue`](Self::queue), on the high-priority sub-queue (its
    /// own order). Without [`highpri`](OrderedWorkqueueBuilder::highpri) it
    /// queues on the normal sub-queue, as Btrfs does.
    pub fn queue_high(&self, func: F, ordered: O) {
        push_blocking(self.high.as_ref().unwrap_or(&self.normal), func, ordered);
    }

    /// Queues an item if there is room, else hands both closures back.
    ///
    /// # Errors
    ///
    /// A [`TryQueueError`] holding both closures if `max_in_flight` items
    /// are already in flight.
    pub fn try_queue(&self, func: F, ordered: O) -> Result<(), TryQueueError<F, O>> {
        try_push(&self.normal, func, ordered)
    }

    /// [`try_queue`](Self::try_queue) on the high-priority sub-queue.
    ///
    /// # Errors
    ///
    /// As [`try_queue`](Self::try_queue).
    pub fn try_queue_high(&self, func: F, ordered: O) -> Result<(), TryQueueError<F, O>> {
        try_push(self.high.as_ref().unwrap_or(&self.normal), func, ordered)
    }

    /// Waits until every item queued before the call (on both sub-queues)
    /// has been released, then reports the panics caught since the last
    /// flush. A panicking stage never stalls the sequence: the items after
    /// it still run all their stages.
    ///
    /// Caught panics are kept, payload and all, until a `flush` takes them
    /// (or the queue is dropped and reports them as warnings): a queue whose stages keep
    /// panicking and that is never flushed holds them all, beyond
    /// `max_in_flight`.
    ///
    /// # Errors
    ///
    /// A [`FlushError`] holding every stage panic caught since the last
    /// flush (the sequence itself went on).
    ///
    /// # Panics
    ///
    /// If called from one of this queue's own stages (it would wait for
    /// itself).
    pub fn flush(&self) -> Result<(), FlushError> {
        for c in self.crews() {
            if crew::inside(c.id) {
                panic!(
                    "kwq: OrderedWorkqueue::flush() on '{}' called from one of its own stages: \
                     the caller is itself in flight and would wait for itself forever",
                    self.name
                );
            }
        }
        let targets: Vec<u64> = self.crews().map(|c| c.ring.tail()).collect();
        for (c, target) in self.crews().zip(targets) {
            wait_released(c, target);
        }
        let mut panics = Vec::new();
        for c in self.crews() {
            panics.extend(c.stages.take_panics());
        }
        if panics.is_empty() {
            Ok(())
        } else {
            Err(FlushError::new(panics))
        }
    }

    /// Items between `queue` and release, both sub-queues.
    pub fn in_flight(&self) -> usize {
        self.crews()
            .map(|c| (c.ring.tail() - c.ring.released()) as usize)
            .sum()
    }

    /// The `max_in_flight` bound (per sub-queue).
    pub fn max_in_flight(&self) -> usize {
        self.normal.ring.capacity() as usize
    }

    /// Parallel stages allowed to run at once on the normal sub-queue
    /// right now (`current_active`; equals `max_active` without a
    /// threshold).
    pub fn current_active(&self) -> usize {
        self.normal.current_active()
    }

    /// [`current_active`](Self::current_active) of the high sub-queue.
    pub fn current_active_high(&self) -> Option<usize> {
        self.high.as_ref().map(|h| h.current_active())
    }

    /// The `max_active` limit (Btrfs `limit_active`).
    pub fn max_active(&self) -> usize {
        self.normal.limit()
    }

    /// `max_active` of the kwq workqueue the normal sub-queue's runners run
    /// on (equals [`current_active`](Self::current_active) after every
    /// threshold adjustment).
    pub fn workqueue_max_active(&self) -> usize {
        self.normal.wq.max_active()
    }

    /// Is the normal sub-queue's backlog above twice its threshold (Btrfs
    /// `btrfs_workqueue_normal_congested`)? Always false without `thresh`.
    pub fn congested(&self) -> bool {
        self.normal.congested()
    }

    /// A one-line-per-sub-queue state dump (sequence counters, the head
    /// slot's phase, runners), for watchdogs and bug reports.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for c in self.crews() {
            s.push_str(&c.describe());
            s.push('\n');
        }
        s
    }

    fn crews(&self) -> impl Iterator<Item = &SubQueue<T, F, O>> {
        std::iter::once(&self.normal).chain(self.high.as_ref())
    }
}

/// Waits until every item before `target` has been released.
fn wait_released<S: Stages>(c: &Crew<S>, target: u64) {
    if target > 0 {
        c.waiters
            .wait_released(target - 1, || c.ring.is_released(target - 1));
    }
}

fn try_push<T, F, O>(
    crew: &Crew<OrderedStages<T, F, O>>,
    func: F,
    ordered: O,
) -> Result<(), TryQueueError<F, O>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    match crew.ring.try_push((func, ordered)) {
        Ok(seq) => {
            crew.kick(seq);
            Ok(())
        }
        Err(Full((f, o))) => Err(TryQueueError::full(f, o)),
    }
}

fn push_blocking<T, F, O>(crew: &Crew<OrderedStages<T, F, O>>, func: F, ordered: O)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    let mut job = (func, ordered);
    loop {
        match crew.ring.try_push(job) {
            Ok(seq) => {
                crew.kick(seq);
                return;
            }
            Err(Full(j)) => job = j,
        }
        if crew::inside(crew.id) {
            panic!(
                "kwq: OrderedWorkqueue::queue() on full '{}' from one of its own stages: room \
                 only appears when stages of this queue finish, so it would wait for itself; \
                 use try_queue() or a larger max_in_flight",
                crew.wq.name()
            );
        }
        // Full: run a batch of this queue's stages ourselves, in a free
        // runner slot, rather than sleep while the pool catches up; sleep
        // if every slot is taken or nothing is left to claim.
        let helped = if crew.stages.caller_runs {
            crew.help_as_caller()
        } else {
            crew.help_once()
        };
        if !helped {
            let keep = crew
                .stages
                .cost
                .backlog_for(ROOM_KEEP_NS, u64::MAX)
                .saturating_mul(crew.current_active() as u64);
            wait_for_room(crew, keep);
        }
    }
}

/// How long a producer waiting for a batch of room ([`room_batch`]) waits,
/// at least, before it checks whether releases are still coming (if not, it
/// takes any room; see `Waiters::sleep_until_released`).
const ROOM_PATIENCE: Duration = Duration::from_millis(1);

/// Work a full producer leaves in flight when it is woken (so the
/// runners stay busy through its wake-up and first pushes).
const ROOM_KEEP_NS: u64 = 200_000;

/// Slots a full producer waits for before it wakes: one wake-up (and one
/// burst of queueing) per batch of releases, not one per release. It wakes
/// with `keep` items still in flight (worth [`ROOM_KEEP_NS`] of work for the
/// active runners, by the cost estimate), kept between an eighth and a
/// half of the capacity: slow items get big batches (a million items of
/// 2 µs: about 280 wake-ups instead of 490; each preempts a runner), cheap
/// ones (whose backlog the wake-up latency would eat) keep half the ring.
fn room_batch(capacity: u64, keep: u64) -> u64 {
    (capacity - keep.clamp(capacity / 8, capacity / 2)).max(1)
}

/// Sleeps until [`room_batch`] slots are free, or, once releases have
/// stopped short of that, until any slot is (an ordered stage may wait for
/// something the producer does next: the producer must not wait for the
/// items after it forever).
fn wait_for_room<S: Stages>(crew: &Crew<S>, keep: u64) {
    let ring = &crew.ring;
    let cap = ring.capacity();
    // Item `t - cap` holds slot `t`; the batch is free once item
    // `t - cap + batch - 1` is released.
    let Some(last) = (ring.tail() + room_batch(cap, keep) - 1).checked_sub(cap) else {
        crew.waiters.wait_until(|| ring.has_room());
        return;
    };
    crew.waiters.sleep_until_released(
        last,
        || ring.is_released(last),
        ROOM_PATIENCE,
        || ring.released(),
        || ring.has_room(),
    );
}

impl<T, F, O> Drop for OrderedWorkqueue<T, F, O>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    fn drop(&mut self) {
        // Waiting is impossible from one of a sub-queue's own stages (the
        // caller is in flight) and unwelcome while unwinding (the thread may
        // hold what the stages need): a finisher thread waits instead, so
        // the items still run and nothing is lost either way.
        let unwinding = crate::sync::thread::panicking();
        for c in self.crews() {
            if unwinding || crew::inside(c.id) {
                finish_in_background(&self.name, c.clone());
            } else {
                wait_released(c, c.ring.tail());
                c.quiesce();
                report_uncollected(&self.name, c);
            }
        }
    }
}

/// Keeps `c` alive until every item queued on it has been released, on a
/// thread of its own (a rare path: a queue dropped from its own stage or
/// while unwinding). If no thread can be started, `c` is leaked instead:
/// its runners still run every item, which matters more than the memory.
fn finish_in_background<T, F, O>(name: &str, c: SubQueue<T, F, O>)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    let target = c.ring.tail();
    let name = name.to_string();
    let keep = c.clone();
    let spawned = crate::sync::thread::Builder::new()
        // A thread name may not hold NUL; a queue name may.
        .name(format!("kwq-finish:{}", name.replace('\0', "")))
        .spawn(move || {
            wait_released(&c, target);
            c.quiesce();
            report_uncollected(&name, &c);
            // Possibly the last reference: what the ring still holds is
            // user data.
            let hooks = c.wq.inner.pool.cfg.hooks.clone();
            hooks.drop_contained(c, "an ordered workqueue (on its finisher thread)");
        });
    match spawned {
        Ok(_) => drop(keep),
        Err(e) => {
            keep.wq.inner.warn(Warning::new(
                WarningKind::ThreadSpawnFailed,
                format!(
                    "ordered workqueue dropped where it cannot wait, and no finisher thread \
                     could start ({e}); its items still run, its memory is leaked"
                ),
            ));
            std::mem::forget(keep);
        }
    }
}

/// Reports the panics of `c` that no `flush` collected.
fn report_uncollected<T, F, O>(name: &str, c: &Crew<OrderedStages<T, F, O>>)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
    O: FnOnce(T) + Send + 'static,
{
    for p in c.stages.take_panics() {
        c.wq.inner.warn(Warning::new(
            WarningKind::UncollectedPanic,
            format!("ordered workqueue '{name}' dropped with an uncollected panic: {p}"),
        ));
        // The payload's destructor is user code.
        c.wq.inner
            .pool
            .cfg
            .hooks
            .drop_contained(p, "an uncollected stage panic");
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::room_batch;

    #[test]
    fn a_full_producer_wakes_with_between_an_eighth_and_half_the_ring_in_flight() {
        // Slow items (little work kept covers the wake-up): 7/8 of the ring.
        assert_eq!(room_batch(4096, 200), 4096 - 512);
        assert_eq!(room_batch(4096, 0), 4096 - 512);
        // In between: exactly the work worth keeping.
        assert_eq!(room_batch(4096, 1000), 3096);
        // Cheap items (or an unbounded estimate): half.
        assert_eq!(room_batch(4096, u64::MAX), 2048);
        // Tiny rings still wait for at least one slot.
        for cap in 1..=8 {
            for keep in [0, 1, 3, u64::MAX] {
                let b = room_batch(cap, keep);
                assert!((1..=cap).contains(&b), "cap {cap} keep {keep}: {b}");
            }
        }
    }
}
