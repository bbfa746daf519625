//! How the runtime tells the program what went wrong: the reporting channel.
//!
//! kwq never writes to stdout or stderr. Everything it has to say goes two
//! ways at once:
//!
//! * a [`tracing`] event under the target `kwq` — `ERROR` for panics in
//!   user code and lockups, `WARN` for everything else — which costs nothing
//!   unless the program installs a subscriber; and
//! * a hook of the [`Runtime`](crate::Runtime) the event belongs to, set on
//!   its builder: [`on_panic`](crate::RuntimeBuilder::on_panic) (the panic
//!   payload is handed over), [`on_lockup`](crate::RuntimeBuilder::on_lockup)
//!   and [`on_warning`](crate::RuntimeBuilder::on_warning).
//!
//! Events that belong to no runtime (an unparsable `KWQ_*` environment
//! variable while the global runtime starts) go to `tracing` only.
//!
//! Hooks run on kwq's own threads (a worker, the watchdog, a finisher) and
//! are treated as hostile: each call is wrapped in `catch_unwind`, a hook
//! that panics is reported as a [`WarningKind::HookPanicked`] event through
//! `tracing` (never through the hooks again, so a hook cannot recurse into
//! itself), and the thread goes on.
//!
//! Dropping a value whose destructor may panic (a panic payload, a closure
//! the user handed over) on a kwq thread goes through `drop_contained`: the
//! drop runs under `catch_unwind`, and if it panics the new payload is
//! dropped the same way. Each round is reported; after `MAX_DROP_ROUNDS`
//! nested panicking destructors the last payload is leaked rather than
//! looping forever (the only leak, and it is reported).

use crate::sync::Arc;
use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a panic hook is told about a panicking work function.
///
/// The report owns the panic payload; a hook set with
/// [`RuntimeBuilder::on_panic`](crate::RuntimeBuilder::on_panic) receives the
/// report by value and may keep the payload
/// ([`into_payload`](PanicReport::into_payload)), e.g. to re-raise it
/// elsewhere with [`std::panic::resume_unwind`].
pub struct PanicReport {
    work: String,
    workqueue: String,
    message: String,
    payload: Option<Box<dyn Any + Send + 'static>>,
    /// Where a panicking destructor of the payload is reported besides
    /// `tracing` (the runtime's `on_warning` hook, if any).
    warning: Option<WarningHook>,
}

impl PanicReport {
    pub(crate) fn new(
        work: &str,
        workqueue: &str,
        payload: Box<dyn Any + Send>,
        warning: Option<WarningHook>,
    ) -> Self {
        PanicReport {
            work: work.to_string(),
            workqueue: workqueue.to_string(),
            message: panic_message(&*payload),
            payload: Some(payload),
            warning,
        }
    }

    /// Name of the work item (`<job>` for a one-shot closure).
    pub fn work(&self) -> &str {
        &self.work
    }

    /// Name of the workqueue it was queued on.
    pub fn workqueue(&self) -> &str {
        &self.workqueue
    }

    /// The panic message if the payload was a string, else
    /// `<non-string panic payload>`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The panic payload (`None` once taken with
    /// [`take_payload`](PanicReport::take_payload)).
    pub fn payload(&self) -> Option<&(dyn Any + Send + 'static)> {
        self.payload.as_deref()
    }

    /// Takes the panic payload out of the report.
    pub fn take_payload(&mut self) -> Option<Box<dyn Any + Send + 'static>> {
        self.payload.take()
    }

    /// The panic payload, consuming the report.
    pub fn into_payload(mut self) -> Option<Box<dyn Any + Send + 'static>> {
        self.payload.take()
    }
}

impl fmt::Debug for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicReport")
            .field("work", &self.work)
            .field("workqueue", &self.workqueue)
            .field("message", &self.message)
            .field("has_payload", &self.payload.is_some())
            .finish()
    }
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "work item '{}' on workqueue '{}' panicked: {}",
            self.work, self.workqueue, self.message
        )
    }
}

impl Drop for PanicReport {
    fn drop(&mut self) {
        // The payload's destructor is user code; it may panic.
        if let Some(p) = self.payload.take() {
            drop_contained_with(p, "a panic payload", self.warning.as_ref());
        }
    }
}

/// The text of a panic payload: the `&str` or `String` it carries, if any.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// What kind of trouble a [`Warning`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// `queue`, `queue_fn`, `queue_delayed` or `mod_delayed` was refused by
    /// a draining or destroyed workqueue; the item was not queued (the
    /// `try_` variants return the refusal instead of reporting it).
    QueueRefused,
    /// A delayed item's timer fired while its workqueue refused work; the
    /// instance was dropped.
    DelayedDropped,
    /// `drain()` (or a workqueue's drop) needed unusually many flush rounds:
    /// the queue's own items keep requeueing themselves.
    SlowDrain,
    /// A workqueue was dropped from one of its own items: it was destroyed
    /// without draining, since it cannot wait for itself.
    DroppedFromOwnItem,
    /// The pool could not start a worker thread.
    WorkerSpawnFailed,
    /// A helper thread (the lockup watchdog, an ordered queue's finisher)
    /// could not start.
    ThreadSpawnFailed,
    /// An ordered workqueue was dropped holding stage panics no `flush`
    /// collected.
    UncollectedPanic,
    /// A value's destructor panicked on a kwq thread; the panic was caught.
    DropPanicked,
    /// A hook set on the runtime builder panicked; the panic was caught.
    HookPanicked,
    /// A `KWQ_*` environment variable could not be parsed and was ignored.
    InvalidEnvironment,
    /// The pool monitor found a worker blocked outside
    /// [`blocking`](crate::blocking) while work waited, and let another
    /// worker take its place (reported at most once a second per pool).
    BlockedWorker,
}

/// A problem the runtime noticed and handled, reported through `tracing`
/// and [`RuntimeBuilder::on_warning`](crate::RuntimeBuilder::on_warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    kind: WarningKind,
    workqueue: Option<String>,
    work: Option<String>,
    message: String,
}

impl Warning {
    pub(crate) fn new(kind: WarningKind, message: impl Into<String>) -> Self {
        Warning {
            kind,
            workqueue: None,
            work: None,
            message: message.into(),
        }
    }

    pub(crate) fn on_queue(mut self, wq: &str) -> Self {
        self.workqueue = Some(wq.to_string());
        self
    }

    pub(crate) fn of_work(mut self, work: &str) -> Self {
        self.work = Some(work.to_string());
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> WarningKind {
        self.kind
    }

    /// The workqueue concerned, if any.
    pub fn workqueue(&self) -> Option<&str> {
        self.workqueue.as_deref()
    }

    /// The work item concerned, if any.
    pub fn work(&self) -> Option<&str> {
        self.work.as_deref()
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) type PanicHook = Arc<dyn Fn(PanicReport) + Send + Sync + 'static>;
pub(crate) type LockupHook = Arc<dyn Fn(&crate::LockupReport) + Send + Sync + 'static>;
pub(crate) type WarningHook = Arc<dyn Fn(&Warning) + Send + Sync + 'static>;
pub(crate) type ThreadHook = Arc<dyn Fn() + Send + Sync + 'static>;

/// A runtime's hooks. Every entry point contains the hook's panics.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) panic: Option<PanicHook>,
    pub(crate) lockup: Option<LockupHook>,
    pub(crate) warning: Option<WarningHook>,
    pub(crate) thread_start: Option<ThreadHook>,
    pub(crate) thread_stop: Option<ThreadHook>,
}

impl Hooks {
    /// Reports a panic of user code run on a kwq thread.
    pub(crate) fn panic(&self, report: PanicReport) {
        tracing::error!(
            target: "kwq",
            work = report.work(),
            workqueue = report.workqueue(),
            "work item panicked: {}",
            report.message()
        );
        match &self.panic {
            Some(h) => call_hook("on_panic", || h(report)),
            None => drop(report),
        }
    }

    /// Reports a stalled pool.
    pub(crate) fn lockup(&self, report: &crate::LockupReport) {
        tracing::error!(
            target: "kwq",
            pool = report.pool(),
            stuck_for_ms = report.stuck_for().as_millis() as u64,
            waiting = report.waiting(),
            "{report}"
        );
        if let Some(h) = &self.lockup {
            call_hook("on_lockup", || h(report));
        }
    }

    /// Reports a handled problem.
    pub(crate) fn warn(&self, w: Warning) {
        trace_warning(&w);
        if let Some(h) = &self.warning {
            call_hook("on_warning", || h(&w));
        }
    }

    /// Drops `value` (user data, or a value owning some) on a kwq thread,
    /// containing a panicking destructor; each panic is reported as a
    /// [`WarningKind::DropPanicked`] through `tracing` and `on_warning`.
    pub(crate) fn drop_contained<T>(&self, value: T, what: &str) {
        drop_contained_with(value, what, self.warning.as_ref());
    }

    /// Runs the thread-start hook on the calling (new) thread.
    pub(crate) fn thread_started(&self) {
        if let Some(h) = &self.thread_start {
            call_hook("on_thread_start", || h());
        }
    }

    /// Runs the thread-stop hook on the calling (exiting) thread.
    pub(crate) fn thread_stopping(&self) {
        if let Some(h) = &self.thread_stop {
            call_hook("on_thread_stop", || h());
        }
    }
}

/// Emits `w` as a `tracing` event only (no hook).
pub(crate) fn trace_warning(w: &Warning) {
    tracing::warn!(
        target: "kwq",
        kind = ?w.kind(),
        workqueue = w.workqueue(),
        work = w.work(),
        "{w}"
    );
}

/// Calls a user hook, containing its panic (reported through `tracing`
/// only: never through a hook again).
fn call_hook(which: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = panic_message(&*p);
        trace_warning(&Warning::new(
            WarningKind::HookPanicked,
            format!("the runtime's {which} hook panicked: {msg}"),
        ));
        drop_contained(p, "a hook's panic payload");
    }
}

/// How many nested panicking destructors `drop_contained` follows before it
/// leaks the last payload.
const MAX_DROP_ROUNDS: usize = 8;

/// Drops `value` on a kwq thread, containing a panicking destructor (and a
/// panicking destructor of that panic's payload, and so on). Reported
/// through `tracing` only (it also runs for hook payloads, and where no
/// runtime is known); [`Hooks::drop_contained`] also reports to the hook.
pub(crate) fn drop_contained<T>(value: T, what: &str) {
    drop_contained_with(value, what, None);
}

/// [`drop_contained`], reporting each round to `hook` too (contained).
fn drop_contained_with<T>(value: T, what: &str, hook: Option<&WarningHook>) {
    let Err(mut p) = catch_unwind(AssertUnwindSafe(move || drop(value))) else {
        return;
    };
    let report = |w: Warning| {
        trace_warning(&w);
        if let Some(h) = hook {
            call_hook("on_warning", || h(&w));
        }
    };
    for _ in 0..MAX_DROP_ROUNDS {
        report(Warning::new(
            WarningKind::DropPanicked,
            format!("the destructor of {what} panicked: {}", panic_message(&*p)),
        ));
        match catch_unwind(AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(next) => p = next,
        }
    }
    report(Warning::new(
        WarningKind::DropPanicked,
        format!("the destructors of {what} kept panicking; the last payload is leaked"),
    ));
    std::mem::forget(p);
}
