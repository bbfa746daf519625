//! Errors of the ordered layer: build errors (opaque, rayon style), a
//! refused item that hands its closures back (crossbeam `TrySendError`
//! style), and the panics collected by `flush` (tokio `JoinError` style).

use crate::sync::Mutex;
use std::any::Any;
use std::fmt;

/// An [`OrderedWorkqueue`](super::OrderedWorkqueue) or
/// [`OrderedMapBuilder`](super::OrderedMapBuilder) could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    kind: BuildErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BuildErrorKind {
    MaxActive(usize),
    MaxInFlight(usize),
    MapInFlight { got: usize, min: usize },
    Thresh { thresh: u64, max_in_flight: usize },
    OutOfMemory { slots: usize, slot_bytes: usize },
    Workqueue(crate::BuildError),
}

impl BuildError {
    pub(crate) fn max_active(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::MaxActive(n),
        }
    }
    pub(crate) fn max_in_flight(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::MaxInFlight(n),
        }
    }
    pub(crate) fn map_in_flight(got: usize, min: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::MapInFlight { got, min },
        }
    }
    pub(crate) fn thresh(thresh: u64, max_in_flight: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::Thresh {
                thresh,
                max_in_flight,
            },
        }
    }
    pub(crate) fn out_of_memory(slots: usize, slot_bytes: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::OutOfMemory { slots, slot_bytes },
        }
    }
}

impl From<crate::BuildError> for BuildError {
    fn from(e: crate::BuildError) -> Self {
        BuildError {
            kind: BuildErrorKind::Workqueue(e),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::MaxActive(n) => write!(
                f,
                "ordered max_active must be between 1 and {}, got {n}",
                super::crew::MAX_RUNNERS
            ),
            BuildErrorKind::MaxInFlight(n) => {
                write!(f, "max_in_flight must be between 1 and 2^32, got {n}")
            }
            BuildErrorKind::MapInFlight { got, min } => write!(
                f,
                "an ordered map's max_in_flight must be at least {min} (one item per ring \
                 slot), got {got}"
            ),
            BuildErrorKind::Thresh {
                thresh,
                max_in_flight,
            } => write!(
                f,
                "thresh must be below max_in_flight ({max_in_flight}), got {thresh}: the \
                 backlog can never exceed max_in_flight, so current_active could never grow"
            ),
            BuildErrorKind::OutOfMemory { slots, slot_bytes } => write!(
                f,
                "cannot allocate the ring for max_in_flight {slots} ({slots} slots of \
                 {slot_bytes} bytes, allocated up front)"
            ),
            BuildErrorKind::Workqueue(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BuildErrorKind::Workqueue(e) => Some(e),
            _ => None,
        }
    }
}

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
pub struct StagePanic {
    seq: u64,
    high: bool,
    stage: Stage,
    message: String,
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

impl StagePanic {
    pub(crate) fn new(seq: u64, high: bool, stage: Stage, payload: Box<dyn Any + Send>) -> Self {
        StagePanic {
            seq,
            high,
            stage,
            message: panic_message(&*payload),
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

impl fmt::Debug for StagePanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagePanic")
            .field("seq", &self.seq)
            .field("high", &self.high)
            .field("stage", &self.stage)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for StagePanic {
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
#[derive(Debug)]
#[must_use]
pub struct FlushError {
    panics: Vec<StagePanic>,
}

impl FlushError {
    pub(crate) fn new(panics: Vec<StagePanic>) -> Self {
        FlushError { panics }
    }

    /// The caught panics.
    pub fn panics(&self) -> &[StagePanic] {
        &self.panics
    }

    /// Takes the caught panics.
    pub fn into_panics(self) -> Vec<StagePanic> {
        self.panics
    }

    /// Re-raises the first panic on the calling thread.
    pub fn resume_unwind(self) -> ! {
        let first = self
            .panics
            .into_iter()
            .next()
            .expect("FlushError is never empty");
        std::panic::resume_unwind(first.into_panic())
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
