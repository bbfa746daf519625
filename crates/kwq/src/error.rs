//! Error types. Build errors are opaque structs with a private kind
//! (rayon's `ThreadPoolBuildError`); refusals give the payload back
//! (crossbeam's `TrySendError<T>`).

use std::fmt;

/// A workqueue or runtime could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    kind: BuildErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BuildErrorKind {
    EmptyName,
    MaxActive(usize),
    OrderedMaxActive(usize),
    Concurrency(usize),
    MaxWorkers(usize),
}

impl BuildError {
    pub(crate) fn empty_name() -> Self {
        BuildError {
            kind: BuildErrorKind::EmptyName,
        }
    }
    pub(crate) fn max_active(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::MaxActive(n),
        }
    }
    pub(crate) fn ordered_max_active(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::OrderedMaxActive(n),
        }
    }
    pub(crate) fn concurrency(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::Concurrency(n),
        }
    }
    pub(crate) fn max_workers(n: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::MaxWorkers(n),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::EmptyName => write!(f, "a workqueue needs a non-empty name"),
            BuildErrorKind::MaxActive(n) => write!(
                f,
                "max_active must be between 1 and {}, got {n}",
                crate::pool::policy::MAX_ACTIVE
            ),
            BuildErrorKind::OrderedMaxActive(n) => {
                write!(
                    f,
                    "an ordered workqueue runs one item at a time; max_active({n}) contradicts it"
                )
            }
            BuildErrorKind::Concurrency(n) => {
                write!(f, "concurrency must be at least 1, got {n}")
            }
            BuildErrorKind::MaxWorkers(n) => {
                write!(
                    f,
                    "max_workers must be at least 2 (one running, one in reserve), got {n}"
                )
            }
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
pub struct Rejected<F> {
    job: F,
    error: QueueError,
}

impl<F> Rejected<F> {
    pub(crate) fn new(job: F, error: QueueError) -> Self {
        Rejected { job, error }
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

impl<F> fmt::Debug for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish()
    }
}

impl<F> fmt::Display for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job rejected: {}", self.error)
    }
}

impl<F> std::error::Error for Rejected<F> {}

/// `max_active` could not be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMaxActiveError {
    msg: String,
}

impl SetMaxActiveError {
    pub(crate) fn ordered(wq: &str) -> Self {
        SetMaxActiveError {
            msg: format!("workqueue '{wq}' is ordered; its max_active is fixed at 1"),
        }
    }
    pub(crate) fn range(n: usize) -> Self {
        SetMaxActiveError {
            msg: format!(
                "max_active must be between 1 and {}, got {n}",
                crate::pool::policy::MAX_ACTIVE
            ),
        }
    }
}

impl fmt::Display for SetMaxActiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for SetMaxActiveError {}

/// What was still in flight when [`Workqueue::shutdown_timeout`] gave up.
///
/// [`Workqueue::shutdown_timeout`]: crate::Workqueue::shutdown_timeout
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stragglers {
    wq: String,
    in_flight: usize,
    running: Vec<String>,
}

impl Stragglers {
    pub(crate) fn new(wq: &str, in_flight: usize, running: Vec<String>) -> Self {
        Stragglers {
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

impl fmt::Display for Stragglers {
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

impl std::error::Error for Stragglers {}
