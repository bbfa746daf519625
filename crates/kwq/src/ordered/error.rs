//! Errors of the ordered layer: a
//! refused item that hands its closures back (crossbeam `TrySendError`
//! style), and the panics collected by `flush` (tokio `JoinError` style).

use crate::sync::Mutex;
use std::any::Any;
use std::fmt;

/// The ordered layer's build error: the crate's one [`BuildError`](crate::BuildError).
#[deprecated(
    since = "0.1.1",
    note = "one build error for the whole crate: use `kwq::BuildError`"
)]
pub type BuildError = crate::BuildError;

/// An item [`try_queue`](super::OrderedWorkqueue::try_queue) refused,
/// handed back: its `func` and `ordered` closures.
pub struct TryQueueError<F, O> {
    func: F,
    ordered: O,
}

impl<F, O> TryQueueError<F, O> {
    pub(crate) fn full(func: F, ordered: O) -> Self {
        TryQueueError { func, ordered }
    }

    /// The queue had `max_in_flight` items between queueing and release.
    /// (Currently the only reason; kept as a query for forward
    /// compatibility, as crossbeam's `TrySendError::is_full`.)
    pub fn is_full(&self) -> bool {
        true
    }

    /// Takes the closures back.
    pub fn into_inner(self) -> (F, O) {
        (self.func, self.ordered)
    }
}

impl<F, O> fmt::Debug for TryQueueError<F, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryQueueError::Full(..)")
    }
}

impl<F, O> fmt::Display for TryQueueError<F, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ordered workqueue is full (max_in_flight items between queue and release)")
    }
}

impl<F, O> std::error::Error for TryQueueError<F, O> {}

/// Which stage of an item panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The parallel stage (`func`). The item's `ordered` closure was
    /// dropped without being called (there is no value to give it).
    Func,
    /// The ordered stage (`ordered_func`).
    Ordered,
}

/// One caught panic of an ordered work item.
pub struct StagePanicError {
    seq: u64,
    high: bool,
    stage: Stage,
    message: String,
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

impl StagePanicError {
    pub(crate) fn new(seq: u64, high: bool, stage: Stage, payload: Box<dyn Any + Send>) -> Self {
        StagePanicError {
            seq,
            high,
            stage,
            message: crate::report::panic_message(&*payload),
            payload: Mutex::new(Some(payload)),
        }
    }

    /// The item's position in its sub-queue's queueing order (0-based).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Was the item on the high-priority sub-queue?
    pub fn is_high(&self) -> bool {
        self.high
    }

    /// Which stage panicked.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The panic message, if it was a string.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The panic payload, e.g. for `std::panic::resume_unwind`.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.payload
            .lock()
            .take()
            .unwrap_or_else(|| Box::new(self.message.clone()))
    }
}

impl fmt::Debug for StagePanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagePanicError")
            .field("seq", &self.seq)
            .field("high", &self.high)
            .field("stage", &self.stage)
            .field("message", &self.message)
            .finish()
    }
}

/// The old name of [`StagePanicError`].
#[deprecated(since = "0.1.1", note = "renamed to `StagePanicError`")]
pub type StagePanic = StagePanicError;

impl std::error::Error for StagePanicError {}

impl fmt::Display for StagePanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Func => "func",
            Stage::Ordered => "ordered",
        };
        let q = if self.high { " (high)" } else { "" };
        write!(
            f,
            "item {}{q}: {stage} panicked: {}",
            self.seq, self.message
        )
    }
}

/// What [`flush`](super::OrderedWorkqueue::flush) reports: the panics
/// caught since the previous flush, in the order they were caught. Every
/// other item still ran all its stages.
///
/// ```
/// use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue, Stage};
///
/// let q: BoxedOrderedWorkqueue<u32> = OrderedWorkqueue::builder("flaky").build()?;
/// q.queue(Box::new(|| panic!("bad block")), Box::new(|_| {}));
/// q.queue(Box::new(|| 2), Box::new(|_| {}));
/// let err = q.flush().unwrap_err();
/// assert_eq!(err.panics().len(), 1);
/// assert_eq!(err.panics()[0].stage(), Stage::Func);
/// assert_eq!(err.panics()[0].message(), "bad block");
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct FlushError {
    panics: Vec<StagePanicError>,
}

impl FlushError {
    pub(crate) fn new(panics: Vec<StagePanicError>) -> Self {
        FlushError { panics }
    }

    /// The caught panics.
    pub fn panics(&self) -> &[StagePanicError] {
        &self.panics
    }

    /// Takes the caught panics.
    pub fn into_panics(self) -> Vec<StagePanicError> {
        self.panics
    }

    /// Re-raises the first panic on the calling thread.
    pub fn resume_unwind(self) -> ! {
        match self.panics.into_iter().next() {
            Some(first) => std::panic::resume_unwind(first.into_panic()),
            // `flush` builds a `FlushError` only from at least one panic.
            None => unreachable!("a FlushError holds at least one panic"),
        }
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ordered work stage(s) panicked", self.panics.len())?;
        if let Some(p) = self.panics.first() {
            write!(f, "; first: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FlushError {}
