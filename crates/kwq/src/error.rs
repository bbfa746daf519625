//! Error types. Build errors are opaque structs with a private kind
//! (rayon's `ThreadPoolBuildError`); refusals give the payload back
//! (crossbeam's `TrySendError<T>`).

use std::fmt;

/// A runtime, workqueue or ordered workqueue could not be built.
///
/// Opaque, with the reason available as a [`BuildErrorKind`] through
/// [`kind`](BuildError::kind) and as a sentence through `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    kind: Kind,
}

/// Why a [`BuildError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildErrorKind {
    /// A workqueue needs a non-empty name.
    EmptyName,
    /// `max_active` is out of range (1 ..= 512 for a workqueue, 1 ..= 64
    /// for an ordered workqueue's runners).
    MaxActive,
    /// `max_active` other than 1 was asked of an ordered workqueue.
    OrderedMaxActive,
    /// `concurrency` was 0.
    Concurrency,
    /// `max_workers` was below 2.
    MaxWorkers,
    /// `max_in_flight` is out of range for the ring.
    MaxInFlight,
    /// `thresh` is not below `max_in_flight`.
    Thresh,
    /// The ordered ring could not be allocated.
    OutOfMemory,
    /// [`RuntimeBuilder::build_global`](crate::RuntimeBuilder::build_global)
    /// was called after the global runtime had been created.
    GlobalAlreadyBuilt,
    /// The rescuer thread of a
    /// [`rescuer`](crate::WorkqueueBuilder::rescuer) queue could not be
    /// created.
    Rescuer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    EmptyName,
    MaxActive(usize),
    OrderedMaxActive(usize),
    Concurrency(usize),
    MaxWorkers(usize),
    RunnersMaxActive { got: usize, max: usize },
    MaxInFlight(usize),
    MapInFlight { got: usize, min: usize },
    Thresh { thresh: u64, max_in_flight: usize },
    OutOfMemory { slots: usize, slot_bytes: usize },
    GlobalAlreadyBuilt,
    Rescuer(String),
}

impl BuildError {
    const fn of(kind: Kind) -> Self {
        BuildError { kind }
    }
    pub(crate) fn empty_name() -> Self {
        Self::of(Kind::EmptyName)
    }
    pub(crate) fn max_active(n: usize) -> Self {
        Self::of(Kind::MaxActive(n))
    }
    pub(crate) fn ordered_max_active(n: usize) -> Self {
        Self::of(Kind::OrderedMaxActive(n))
    }
    pub(crate) fn concurrency(n: usize) -> Self {
        Self::of(Kind::Concurrency(n))
    }
    pub(crate) fn max_workers(n: usize) -> Self {
        Self::of(Kind::MaxWorkers(n))
    }
    pub(crate) fn runners_max_active(got: usize, max: usize) -> Self {
        Self::of(Kind::RunnersMaxActive { got, max })
    }
    pub(crate) fn max_in_flight(n: usize) -> Self {
        Self::of(Kind::MaxInFlight(n))
    }
    pub(crate) fn map_in_flight(got: usize, min: usize) -> Self {
        Self::of(Kind::MapInFlight { got, min })
    }
    pub(crate) fn thresh(thresh: u64, max_in_flight: usize) -> Self {
        Self::of(Kind::Thresh {
            thresh,
            max_in_flight,
        })
    }
    pub(crate) fn out_of_memory(slots: usize, slot_bytes: usize) -> Self {
        Self::of(Kind::OutOfMemory { slots, slot_bytes })
    }
    pub(crate) fn global_already_built() -> Self {
        Self::of(Kind::GlobalAlreadyBuilt)
    }
    pub(crate) fn rescuer(e: std::io::Error) -> Self {
        Self::of(Kind::Rescuer(e.to_string()))
    }

    /// Why the build failed.
    pub fn kind(&self) -> BuildErrorKind {
        match self.kind {
            Kind::EmptyName => BuildErrorKind::EmptyName,
            Kind::MaxActive(_) | Kind::RunnersMaxActive { .. } => BuildErrorKind::MaxActive,
            Kind::OrderedMaxActive(_) => BuildErrorKind::OrderedMaxActive,
            Kind::Concurrency(_) => BuildErrorKind::Concurrency,
            Kind::MaxWorkers(_) => BuildErrorKind::MaxWorkers,
            Kind::MaxInFlight(_) | Kind::MapInFlight { .. } => BuildErrorKind::MaxInFlight,
            Kind::Thresh { .. } => BuildErrorKind::Thresh,
            Kind::OutOfMemory { .. } => BuildErrorKind::OutOfMemory,
            Kind::GlobalAlreadyBuilt => BuildErrorKind::GlobalAlreadyBuilt,
            Kind::Rescuer(_) => BuildErrorKind::Rescuer,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::EmptyName => write!(f, "a workqueue needs a non-empty name"),
            Kind::MaxActive(n) => write!(
                f,
                "max_active must be between 1 and {}, got {n}",
                crate::pool::policy::MAX_ACTIVE
            ),
            Kind::OrderedMaxActive(n) => write!(
                f,
                "an ordered workqueue runs one item at a time; max_active({n}) contradicts it"
            ),
            Kind::Concurrency(n) => write!(f, "concurrency must be at least 1, got {n}"),
            Kind::MaxWorkers(n) => write!(
                f,
                "max_workers must be at least 2 (one running, one in reserve), got {n}"
            ),
            Kind::RunnersMaxActive { got, max } => write!(
                f,
                "ordered max_active must be between 1 and {max}, got {got}"
            ),
            Kind::MaxInFlight(n) => {
                write!(f, "max_in_flight must be between 1 and 2^32, got {n}")
            }
            Kind::MapInFlight { got, min } => write!(
                f,
                "an ordered map's max_in_flight must be at least {min} (one item per ring \
                 slot), got {got}"
            ),
            Kind::Thresh {
                thresh,
                max_in_flight,
            } => write!(
                f,
                "thresh must be below max_in_flight ({max_in_flight}), got {thresh}: the \
                 backlog can never exceed max_in_flight, so current_active could never grow"
            ),
            Kind::OutOfMemory { slots, slot_bytes } => write!(
                f,
                "cannot allocate the ring for max_in_flight {slots} ({slots} slots of \
                 {slot_bytes} bytes, allocated up front)"
            ),
            Kind::Rescuer(e) => write!(f, "cannot create the workqueue's rescuer thread: {e}"),
            Kind::GlobalAlreadyBuilt => write!(
                f,
                "the global runtime already exists; build_global must run before anything \
                 uses it"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// A workqueue refused an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueError {
    kind: QueueErrorKind,
    wq: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueErrorKind {
    Draining,
    Destroyed,
}

impl QueueError {
    pub(crate) fn draining(wq: &str) -> Self {
        QueueError {
            kind: QueueErrorKind::Draining,
            wq: wq.to_string(),
        }
    }
    pub(crate) fn destroyed(wq: &str) -> Self {
        QueueError {
            kind: QueueErrorKind::Destroyed,
            wq: wq.to_string(),
        }
    }
    /// The queue is draining and only its own items may queue on it.
    pub fn is_draining(&self) -> bool {
        self.kind == QueueErrorKind::Draining
    }
    /// The queue was dropped or shut down.
    pub fn is_destroyed(&self) -> bool {
        self.kind == QueueErrorKind::Destroyed
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            QueueErrorKind::Draining => write!(
                f,
                "workqueue '{}' is draining: only its own work items may queue on it",
                self.wq
            ),
            QueueErrorKind::Destroyed => write!(f, "workqueue '{}' was destroyed", self.wq),
        }
    }
}

impl std::error::Error for QueueError {}

/// A one-shot job the workqueue refused, handed back with the reason.
pub struct TryQueueFnError<F> {
    job: F,
    error: QueueError,
}

impl<F> TryQueueFnError<F> {
    pub(crate) fn new(job: F, error: QueueError) -> Self {
        TryQueueFnError { job, error }
    }
    /// Why it was refused.
    pub fn error(&self) -> &QueueError {
        &self.error
    }
    /// Takes the job back.
    pub fn into_inner(self) -> F {
        self.job
    }
}

impl<F> fmt::Debug for TryQueueFnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryQueueFnError")
            .field("error", &self.error)
            .finish()
    }
}

impl<F> fmt::Display for TryQueueFnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job rejected: {}", self.error)
    }
}

impl<F> std::error::Error for TryQueueFnError<F> {}

/// The old name of [`TryQueueFnError`].
#[deprecated(since = "0.1.1", note = "renamed to `TryQueueFnError`")]
pub type Rejected<F> = TryQueueFnError<F>;

/// `max_active` could not be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMaxActiveError {
    kind: SetMaxActiveKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SetMaxActiveKind {
    Ordered(String),
    Range(usize),
}

impl SetMaxActiveError {
    pub(crate) fn ordered(wq: &str) -> Self {
        SetMaxActiveError {
            kind: SetMaxActiveKind::Ordered(wq.to_string()),
        }
    }
    pub(crate) fn range(n: usize) -> Self {
        SetMaxActiveError {
            kind: SetMaxActiveKind::Range(n),
        }
    }
    /// The workqueue is ordered: its `max_active` is fixed at 1.
    pub fn is_ordered(&self) -> bool {
        matches!(self.kind, SetMaxActiveKind::Ordered(_))
    }
    /// The requested value is outside 1 ..= 512; it is returned.
    pub fn out_of_range(&self) -> Option<usize> {
        match self.kind {
            SetMaxActiveKind::Range(n) => Some(n),
            SetMaxActiveKind::Ordered(_) => None,
        }
    }
}

impl fmt::Display for SetMaxActiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SetMaxActiveKind::Ordered(wq) => {
                write!(
                    f,
                    "workqueue '{wq}' is ordered; its max_active is fixed at 1"
                )
            }
            SetMaxActiveKind::Range(n) => write!(
                f,
                "max_active must be between 1 and {}, got {n}",
                crate::pool::policy::MAX_ACTIVE
            ),
        }
    }
}

impl std::error::Error for SetMaxActiveError {}

/// What was still in flight when [`Workqueue::shutdown_timeout`] gave up.
///
/// [`Workqueue::shutdown_timeout`]: crate::Workqueue::shutdown_timeout
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownError {
    wq: String,
    in_flight: usize,
    running: Vec<String>,
}

impl ShutdownError {
    pub(crate) fn new(wq: &str, in_flight: usize, running: Vec<String>) -> Self {
        ShutdownError {
            wq: wq.to_string(),
            in_flight,
            running,
        }
    }
    /// Items queued and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
    /// Names of the items executing at the deadline (`<job>` for closures).
    pub fn running(&self) -> &[String] {
        &self.running
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workqueue '{}' still had {} item(s) in flight",
            self.wq, self.in_flight
        )?;
        if !self.running.is_empty() {
            write!(f, "; running: {}", self.running.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownError {}

/// The old name of [`ShutdownError`].
#[deprecated(since = "0.1.1", note = "renamed to `ShutdownError`")]
pub type Stragglers = ShutdownError;
