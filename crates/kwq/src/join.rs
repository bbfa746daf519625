//! [`JoinHandle`]: the result of a one-shot job.
//!
//! Protocol: the job and its handle share a `Packet` (a mutex-protected
//! outcome and a condition variable). The job stores exactly one outcome —
//! its return value, its panic, or, if it is dropped without running (the
//! queue refused it, or its pool shut down), `Cancelled` — then notifies.
//! The handle takes the outcome in `join`.
//!
//! A panic belongs to whoever joins. If the handle was dropped first
//! (detached), nobody will: the job re-raises the panic on the worker, so it
//! is reported through the runtime's panic hook like any other job's. The
//! handle's drop and the job's completion decide under the packet's lock,
//! so exactly one of them handles the payload.

use crate::sync::{Arc, Condvar, Mutex};
use std::any::Any;
use std::fmt;

enum Outcome<T> {
    Pending,
    Done(T),
    Panicked(Box<dyn Any + Send + 'static>),
    Cancelled,
    Refused(crate::QueueError),
    Taken,
}

struct State<T> {
    outcome: Outcome<T>,
    detached: bool,
}

pub(crate) struct Packet<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

impl<T> Packet<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Packet {
            state: Mutex::new(State {
                outcome: Outcome::Pending,
                detached: false,
            }),
            done: Condvar::new(),
        })
    }

    /// Stores the outcome; returns the panic payload back if nobody will
    /// join (the caller re-raises it where the runtime reports panics).
    fn complete(&self, outcome: Outcome<T>) -> Option<Box<dyn Any + Send + 'static>> {
        let mut st = self.state.lock();
        if st.detached {
            return match outcome {
                Outcome::Panicked(p) => Some(p),
                other => {
                    drop(st);
                    // A detached result is dropped here, outside the lock.
                    drop(other);
                    None
                }
            };
        }
        st.outcome = outcome;
        drop(st);
        self.done.notify_all();
        None
    }
}

/// The job's end of the packet: completes it on drop if the job never ran.
pub(crate) struct ResultSender<T> {
    packet: Option<Arc<Packet<T>>>,
}

impl<T> ResultSender<T> {
    pub(crate) fn new(packet: Arc<Packet<T>>) -> Self {
        ResultSender {
            packet: Some(packet),
        }
    }

    /// Runs `f` and stores its outcome (called on the worker).
    pub(crate) fn run(mut self, f: impl FnOnce() -> T) {
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(v) => Outcome::Done(v),
            Err(p) => Outcome::Panicked(p),
        };
        let Some(packet) = self.packet.take() else {
            return;
        };
        if let Some(p) = packet.complete(outcome) {
            // Nobody will join: report it as the job's own panic.
            std::panic::resume_unwind(p);
        }
    }
}

impl<T> Drop for ResultSender<T> {
    fn drop(&mut self) {
        if let Some(packet) = self.packet.take() {
            let _ = packet.complete(Outcome::Cancelled);
        }
    }
}

/// The result of a job queued with [`Workqueue::spawn`](crate::Workqueue::spawn).
///
/// Dropping the handle detaches the job: it still runs, its result is
/// dropped, and a panic is reported through the runtime's panic hook as for
/// any job. While a handle exists, a panic is the joiner's: `join` returns
/// it and the hook does not see it.
///
/// ```
/// let wq = kwq::Workqueue::builder("compute").build()?;
/// let h = wq.spawn(|| (1..=10u64).product::<u64>());
/// assert_eq!(h.join().unwrap(), 3_628_800);
/// # Ok::<(), kwq::BuildError>(())
/// ```
pub struct JoinHandle<T> {
    packet: Arc<Packet<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(packet: Arc<Packet<T>>) -> Self {
        JoinHandle { packet }
    }

    pub(crate) fn refused(e: crate::QueueError) -> Self {
        let packet = Packet::new();
        packet.state.lock().outcome = Outcome::Refused(e);
        JoinHandle { packet }
    }

    /// Whether the job has finished (or will never run).
    pub fn is_finished(&self) -> bool {
        !matches!(self.packet.state.lock().outcome, Outcome::Pending)
    }

    /// Waits for the job and returns its result. From a kwq worker the wait
    /// counts as [`blocking`](crate::blocking), so the pool runs other work
    /// meanwhile.
    ///
    /// # Errors
    ///
    /// A [`JoinError`] if the job panicked (the payload is inside), if the
    /// workqueue refused it, or if it was dropped without running.
    pub fn join(self) -> Result<T, JoinError> {
        let outcome = crate::current::blocking(|| {
            let mut st = self.packet.state.lock();
            while matches!(st.outcome, Outcome::Pending) {
                st = self.packet.done.wait(st);
            }
            std::mem::replace(&mut st.outcome, Outcome::Taken)
        });
        match outcome {
            Outcome::Done(v) => Ok(v),
            Outcome::Panicked(p) => Err(JoinError {
                kind: JoinErrorKind::Panicked(p),
            }),
            Outcome::Refused(e) => Err(JoinError {
                kind: JoinErrorKind::Refused(e),
            }),
            Outcome::Cancelled => Err(JoinError {
                kind: JoinErrorKind::Cancelled,
            }),
            Outcome::Pending | Outcome::Taken => {
                unreachable!("a joined outcome is taken once, after it was stored")
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let mut st = self.packet.state.lock();
        st.detached = true;
        let outcome = std::mem::replace(&mut st.outcome, Outcome::Taken);
        drop(st);
        // An unjoined result or panic is dropped by its owner: here, on the
        // caller's thread.
        drop(outcome);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why [`JoinHandle::join`] returned no value.
pub struct JoinError {
    kind: JoinErrorKind,
}

enum JoinErrorKind {
    Panicked(Box<dyn Any + Send + 'static>),
    Refused(crate::QueueError),
    Cancelled,
}

impl JoinError {
    /// The job panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Panicked(_))
    }

    /// The workqueue refused the job (it was draining or destroyed).
    pub fn is_refused(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Refused(_))
    }

    /// The job was dropped without running (its pool shut down).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Cancelled)
    }

    /// The panic payload, to re-raise with [`std::panic::resume_unwind`].
    ///
    /// # Errors
    ///
    /// The error itself, unchanged, if the job did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.kind {
            JoinErrorKind::Panicked(p) => Ok(p),
            kind => Err(JoinError { kind }),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JoinErrorKind::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&crate::report::panic_message(&**p))
                .finish(),
            JoinErrorKind::Refused(e) => f.debug_tuple("Refused").field(e).finish(),
            JoinErrorKind::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JoinErrorKind::Panicked(p) => {
                write!(f, "job panicked: {}", crate::report::panic_message(&**p))
            }
            JoinErrorKind::Refused(e) => write!(f, "job refused: {e}"),
            JoinErrorKind::Cancelled => f.write_str("job dropped without running"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            JoinErrorKind::Refused(e) => Some(e),
            _ => None,
        }
    }
}
