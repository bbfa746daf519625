//! The iterator front end: an ordered parallel map with bounded memory.
//!
//! ```text
//!   calling thread                          runners (kwq workers)
//!   --------------                          ---------------------
//!   pull up to `batch` inputs ─▶ ring slot ─▶ claim slot, map every input ─▶ DONE
//!   pop DONE head slot ◀──────────────────────────────────────────────────────┘
//!   yield its outputs in order
//! ```
//!
//! The same [`Ring`] as the ordered queue, in *consumer*
//! mode: each slot holds a batch of inputs, then the batch of outputs; the
//! calling thread is the only producer and the only consumer, so the
//! ordered stage is simply "the caller's loop". While the head batch is not
//! DONE and some batch is unclaimed, the caller maps it itself instead of
//! sleeping.
//!
//! *Bounded memory*: at most `max_in_flight` inputs/outputs exist between
//! pulling and yielding (`slots × batch ≤ max_in_flight`), however long the
//! input is. The input is pulled lazily, so it may be infinite. It is
//! pulled *ahead* (a batch per free slot, at most about [`TARGET_BATCH_NS`]
//! of input time per batch, and a mapped head batch is yielded before a
//! slow input is read further), so an input whose `next()` waits for
//! outputs of the same map is not supported.
//!
//! *Batch size* adapts: runners time each batch, and the caller sizes the
//! next one to take about [`TARGET_BATCH_NS`], between 1 and
//! `max_in_flight / slots`. Cheap functions get big batches (amortising the
//! per-batch atomics), expensive ones get batches of one or two items (so
//! they spread over every runner).
//!
//! *Panics* in `f` are caught on the worker and re-raised on the calling
//! thread when the iterator reaches the item that panicked: every item
//! before it — in earlier batches and in its own — is yielded first. The
//! inputs of that batch after the panicking one are dropped unmapped (a
//! panic of their destructors is contained and reported as a
//! `DropPanicked` warning).

use super::cost::{Cost, TARGET_BATCH_NS};
use super::crew::{Crew, Stages, MAX_RUNNERS};
use super::ring::Ring;
use crate::report::Hooks;
use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::Arc;
use crate::BuildError;
use crate::{Runtime, Workqueue};
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

/// Default bound on items in flight.
pub const DEFAULT_MAP_IN_FLIGHT: usize = 1 << 14;

/// Ring slots of a map (each one batch).
const MAP_SLOTS: usize = 16;

/// A mapped batch: the outputs of its inputs up to the first panic of `f`,
/// and that panic.
type Outcome<U> = (Vec<U>, Option<Box<dyn Any + Send + 'static>>);

pub(crate) struct MapStages<X, U, Fun> {
    f: Fun,
    /// How long `f` takes per item (sizes the batches).
    cost: Cost,
    /// The iterator was dropped: skip remaining batches.
    cancelled: AtomicBool,
    /// The runtime's hooks: where a panicking destructor of an input
    /// dropped unmapped is reported.
    hooks: Hooks,
    _types: std::marker::PhantomData<fn(X) -> U>,
}

impl<X, U, Fun> Stages for MapStages<X, U, Fun>
where
    X: Send + 'static,
    U: Send + 'static,
    Fun: Fn(X) -> U + Send + Sync + 'static,
{
    type Job = Vec<X>;
    type Done = Outcome<U>;
    fn wake_backlog(&self) -> u64 {
        // A ring item is a whole batch, sized to about TARGET_BATCH_NS (and
        // one item while the cost is unknown): wake a runner once one batch
        // waits per active runner.
        1
    }

    fn max_claim(&self) -> u64 {
        1
    }

    fn func(&self, _seq: u64, job: Vec<X>) -> Outcome<U> {
        if self.cancelled.load(Relaxed) {
            // The iterator is gone: skip `f`, but drop the inputs contained
            // too — a stage must not unwind (a panicking input destructor
            // would otherwise escape between the ring's `take_job` and
            // `complete`) — and report a panicking one.
            self.hooks
                .drop_contained(job, "an ordered_map input (map dropped)");
            return (Vec::new(), None);
        }
        let n = job.len() as u64;
        let start = Instant::now();
        // Outputs are kept as they come, outside `catch_unwind`: a panic at
        // item k leaves the outputs of 0..k for the consumer.
        // (`extend` from a trusted-length iterator writes in place and, if
        // `f` unwinds, leaves the length at the outputs written so far.)
        let mut out = Vec::with_capacity(job.len());
        let mut inputs = job.into_iter();
        let r = catch_unwind(AssertUnwindSafe(|| {
            out.extend(inputs.by_ref().map(&self.f));
        }));
        // Unmapped inputs after a panic: user values, dropped contained.
        self.hooks
            .drop_contained(inputs, "an ordered_map input (after a panic of f)");
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.cost.record(n, ns);
        (out, r.err())
    }

    fn after_batch(&self, crew: &Crew<Self>) {
        crew.waiters.notify();
    }
}

/// Options for the iterator front end.
///
/// ```
/// let squares: Vec<u64> = kwq::ordered::OrderedMapBuilder::new()
///     .max_active(2)
///     .max_in_flight(256)
///     .map(0..1000u64, |x| x * x)
///     .unwrap()
///     .collect();
/// assert_eq!(squares, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OrderedMapBuilder {
    name: String,
    max_active: Option<usize>,
    max_in_flight: usize,
    runtime: Option<Runtime>,
}

impl Default for OrderedMapBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderedMapBuilder {
    /// Defaults: global runtime, `max_active` = its concurrency,
    /// `max_in_flight` = 16384 items.
    pub fn new() -> Self {
        OrderedMapBuilder {
            name: "ordered-map".to_string(),
            max_active: None,
            max_in_flight: DEFAULT_MAP_IN_FLIGHT,
            runtime: None,
        }
    }

    /// Name of the private workqueue (dumps).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Batches mapped at once by workers (1..=64; default: the runtime's
    /// concurrency). The calling thread also maps while it waits, so up to
    /// `max_active + 1` batches are mapped at once (`f` is `Fn + Sync`).
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = Some(n);
        self
    }

    /// Bound on items between being pulled from the input and being
    /// yielded (at least 16).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Use the pools of `rt`.
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// An iterator yielding `f(x)` for every `x` of `iter`, in input order,
    /// with `f` running in parallel.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `max_active` is outside 1 ..= 64 or
    /// `max_in_flight` is too small for the ring, or if the ring cannot be
    /// allocated.
    pub fn map<I, Fun, U>(
        self,
        iter: I,
        f: Fun,
    ) -> Result<OrderedMap<I::IntoIter, Fun, U>, BuildError>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        U: Send + 'static,
        Fun: Fn(I::Item) -> U + Send + Sync + 'static,
    {
        let rt = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let limit = self
            .max_active
            .unwrap_or_else(|| rt.concurrency().min(MAX_RUNNERS));
        if !(1..=MAX_RUNNERS).contains(&limit) {
            return Err(BuildError::runners_max_active(limit, MAX_RUNNERS));
        }
        if self.max_in_flight < MAP_SLOTS {
            return Err(BuildError::map_in_flight(self.max_in_flight, MAP_SLOTS));
        }
        let wq = Workqueue::builder(self.name)
            .runtime(&rt)
            .max_active(limit)
            .build()?;
        let stages = MapStages {
            f,
            cost: Cost::default(),
            cancelled: AtomicBool::new(false),
            hooks: rt.inner.cfg.hooks.clone(),
            _types: std::marker::PhantomData,
        };
        let crew = Crew::new(
            wq,
            Ring::try_new(MAP_SLOTS).map_err(|_| {
                BuildError::out_of_memory(MAP_SLOTS, Ring::<Vec<I::Item>, Outcome<U>>::SLOT_BYTES)
            })?,
            limit,
            None,
            stages,
        );
        Ok(OrderedMap {
            input: iter.into_iter(),
            exhausted: false,
            slow_input: false,
            max_batch: self.max_in_flight / MAP_SLOTS,
            batch: 1,
            pushed: 0,
            popped: 0,
            current: Vec::new().into_iter(),
            panicked: None,
            crew,
        })
    }

    /// Runs `f` over `iter` in parallel and calls `sink` with the results
    /// on the calling thread, in input order.
    ///
    /// # Errors
    ///
    /// A [`BuildError`], as [`map`](Self::map); then nothing ran.
    ///
    /// # Panics
    ///
    /// Re-raises a panic of `f` (after sinking every earlier result) or of
    /// `sink`.
    pub fn for_each<I, Fun, U, S>(self, iter: I, f: Fun, sink: S) -> Result<(), BuildError>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        U: Send + 'static,
        Fun: Fn(I::Item) -> U + Send + Sync + 'static,
        S: FnMut(U),
    {
        self.map(iter, f)?.for_each(sink);
        Ok(())
    }
}

/// [`OrderedMapBuilder::map`] with the defaults: `f(x)` for every `x`, in
/// order, computed in parallel on the global runtime.
///
/// ```
/// let lens: Vec<usize> = kwq::ordered::ordered_map(["a", "bb", "ccc"], |s| s.len()).collect();
/// assert_eq!(lens, [1, 2, 3]);
/// ```
pub fn ordered_map<I, Fun, U>(iter: I, f: Fun) -> OrderedMap<I::IntoIter, Fun, U>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    match OrderedMapBuilder::new().map(iter, f) {
        Ok(m) => m,
        // The default settings are valid; the ring is a fixed, small size.
        Err(e) => unreachable!("default ordered-map settings rejected: {e}"),
    }
}

/// [`OrderedMapBuilder::for_each`] with the defaults.
///
/// ```
/// let mut h = 0u64;
/// kwq::ordered::for_each_ordered(0..10_000u64, |x| x * 3, |y| h = h.rotate_left(5) ^ y);
/// let seq = (0..10_000u64).fold(0u64, |h, x| h.rotate_left(5) ^ (x * 3));
/// assert_eq!(h, seq);
/// ```
pub fn for_each_ordered<I, Fun, U, S>(iter: I, f: Fun, sink: S)
where
    I: IntoIterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
    S: FnMut(U),
{
    ordered_map(iter, f).for_each(sink)
}

/// Adds [`ordered_map`](OrderedIterExt::ordered_map) to every iterator.
pub trait OrderedIterExt: Iterator + Sized {
    /// `kwq::ordered::ordered_map(self, f)`.
    fn ordered_map<Fun, U>(self, f: Fun) -> OrderedMap<Self, Fun, U>
    where
        Self::Item: Send + 'static,
        U: Send + 'static,
        Fun: Fn(Self::Item) -> U + Send + Sync + 'static,
    {
        ordered_map(self, f)
    }
}

impl<I: Iterator> OrderedIterExt for I {}

/// Iterator returned by [`ordered_map`] / [`OrderedMapBuilder::map`].
///
/// Dropping it early stops mapping the batches not yet started and waits
/// for the running ones.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct OrderedMap<I, Fun, U>
where
    I: Iterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    input: I,
    exhausted: bool,
    /// The last batch took longer to pull than [`TARGET_BATCH_NS`].
    slow_input: bool,
    max_batch: usize,
    batch: usize,
    pushed: u64,
    popped: u64,
    current: std::vec::IntoIter<U>,
    /// A panic of `f` to re-raise once `current` (the outputs of the items
    /// before it) has been yielded.
    panicked: Option<Box<dyn Any + Send + 'static>>,
    crew: Arc<Crew<MapStages<I::Item, U, Fun>>>,
}

impl<I, Fun, U> std::fmt::Debug for OrderedMap<I, Fun, U>
where
    I: Iterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedMap")
            .field("batch", &self.batch)
            .field("pushed", &self.pushed)
            .field("popped", &self.popped)
            .field("crew", &self.crew.describe())
            .finish()
    }
}

impl<I, Fun, U> OrderedMap<I, Fun, U>
where
    I: Iterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    fn next_batch_size(&mut self) -> usize {
        // No measurement yet: one item per batch. (Growing the batches
        // before the first sample would put many items of a slow `f` in one
        // batch, on one runner; with a cheap `f` the first sample arrives
        // within microseconds.)
        self.batch = match self.crew.stages.cost.get() {
            None => 1,
            Some(ns) => ((TARGET_BATCH_NS / ns) as usize).clamp(1, self.max_batch),
        };
        self.batch
    }

    /// Pulls input batches into free slots. With a slow input (the last
    /// batch took longer to pull than a batch should take to map), stops
    /// early once the head batch is mapped: a ready result goes out before
    /// more input is read. A fast input fills every free slot first.
    fn fill(&mut self) {
        while !self.exhausted && self.crew.ring.has_room() {
            if self.slow_input && self.popped < self.pushed && self.crew.ring.head_done() {
                return;
            }
            let n = self.next_batch_size();
            let chunk = self.pull(n);
            if chunk.is_empty() {
                return;
            }
            match self.crew.ring.try_push(chunk) {
                Ok(seq) => {
                    self.pushed += 1;
                    self.crew.kick(seq);
                }
                Err(_) => unreachable!("single producer saw room"),
            }
        }
    }

    /// Pulls up to `n` inputs (setting `exhausted` at the end of the
    /// input), but no longer than about [`TARGET_BATCH_NS`]: batches are
    /// sized by the cost of `f`, and a slow input would otherwise take a
    /// whole batch's worth of its own time before anything is mapped. The
    /// input is taken in runs of 1, 1, 2, 4, ... items with a clock read
    /// after each: a few reads per batch, and tight copies in between.
    fn pull(&mut self, n: usize) -> Vec<I::Item> {
        let mut chunk = Vec::with_capacity(n);
        let budget = std::time::Duration::from_nanos(TARGET_BATCH_NS);
        let start = Instant::now();
        let mut run = 1;
        while chunk.len() < n {
            let want = run.min(n - chunk.len());
            let before = chunk.len();
            chunk.extend(self.input.by_ref().take(want));
            if chunk.len() - before < want {
                self.exhausted = true;
                break;
            }
            if start.elapsed() > budget {
                break;
            }
            run = chunk.len();
        }
        self.slow_input = start.elapsed() > budget;
        chunk
    }

    /// With `current` used up: makes the next batch of outputs current,
    /// pulling input, mapping and waiting as needed. False at the end.
    /// Re-raises a panic of `f` from that batch.
    fn refill(&mut self) -> bool {
        if let Some(p) = self.panicked.take() {
            resume_unwind(p);
        }
        loop {
            self.fill();
            if self.popped == self.pushed {
                debug_assert!(self.exhausted);
                return false;
            }
            if let Some(out) = self.crew.ring.pop_done() {
                self.popped += 1;
                let (v, panicked) = out;
                self.current = v.into_iter();
                self.panicked = panicked;
                return true;
            }
            // Map one unclaimed batch on this thread, exactly as a runner
            // would (`Crew::help_as_caller`); sleep only if none is left.
            if !self.crew.help_as_caller() {
                let ring = &self.crew.ring;
                self.crew.waiters.wait_until(|| ring.head_done());
            }
        }
    }
}

impl<I, Fun, U> Iterator for OrderedMap<I, Fun, U>
where
    I: Iterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    type Item = U;

    fn next(&mut self) -> Option<U> {
        loop {
            if let Some(u) = self.current.next() {
                return Some(u);
            }
            if !self.refill() {
                return None;
            }
        }
    }

    /// Internal iteration (`for_each`, `sum`, `count`, extending a
    /// `HashMap` or `String`, ...; not `Vec`'s `collect`, which calls
    /// `next`) folds each batch with a tight loop instead of one `next`
    /// call per item: the calling thread is the serial part of the
    /// pipeline, so its per-item cost bounds the throughput of cheap maps.
    fn fold<B, G>(mut self, init: B, mut g: G) -> B
    where
        G: FnMut(B, U) -> B,
    {
        let mut acc = init;
        loop {
            acc = (&mut self.current).fold(acc, &mut g);
            if !self.refill() {
                return acc;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Items in the ring are not counted: a safe lower bound only.
        (self.current.len(), None)
    }
}

impl<I, Fun, U> Drop for OrderedMap<I, Fun, U>
where
    I: Iterator,
    I::Item: Send + 'static,
    U: Send + 'static,
    Fun: Fn(I::Item) -> U + Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.crew.stages.cancelled.store(true, Relaxed);
        self.crew.quiesce();
    }
}
