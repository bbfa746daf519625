//! The pool's only view of the layer above it: [`Schedule`].
//!
//! A pool runs *tasks* it knows nothing about. What a task is, what running
//! one means (admission, the work item's state word, flush colours, panic
//! reports), what a worker thread must set up before its first task and
//! tear down after its last, how threads are started and where warnings go
//! — all of that belongs to whoever implements `Schedule` (the runtime's
//! `Config`, in `exec.rs`; a few lines of test code in the loom models).
//! The pool module imports nothing from the crate but the `sync` facade and
//! this trait, so the same worker loop, idle handshake and blocking
//! accounting that run in production are the ones loom checks
//! (`tests/loom_worker.rs`).
//!
//! The trait is a type parameter of [`Pool`], not an object: the worker's
//! per-task call to [`Schedule::run`] is a direct call, inlined where the
//! compiler sees fit, exactly like the hand-written dispatch it replaced
//! (the same choice as tokio's `Schedule`, and unlike rayon's `JobRef`,
//! which pays an indirect call per job to mix job types in one deque; here
//! the task type is already one enum).

use super::{Pool, WorkerShared};
use crate::sync::{Arc, PoolArc};
use std::time::Duration;

/// What a pool needs from the layer that gives it work.
///
/// The associated functions that take the pool run on a worker thread of
/// that pool, in this order: [`worker_started`](Schedule::worker_started)
/// once, then any number of [`run`](Schedule::run) calls, each group of
/// them (a *batch*, between two sleeps) followed by
/// [`batch_done`](Schedule::batch_done), and last
/// [`worker_exiting`](Schedule::worker_exiting).
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// What the worklist holds.
    type Task: Send + 'static;
    /// The upper layer's state for one worker thread (its worker context).
    /// Made and dropped on that thread, so it need not be `Send`.
    type Worker;

    /// Workers a concurrency-managed pool keeps running at once.
    fn concurrency(&self) -> usize;
    /// Most workers one pool may have.
    fn max_workers(&self) -> usize;
    /// How long an idle worker waits before it may exit.
    fn idle_timeout(&self) -> Duration;
    /// The prefix of worker thread names.
    fn thread_name(&self) -> &str;

    /// Starts a thread named `name` that calls `main`.
    ///
    /// # Errors
    ///
    /// The thread could not be started (`main` was not and will not be
    /// called); the pool backs off and carries on without it.
    fn spawn<F: FnOnce() + Send + 'static>(&self, name: String, main: F) -> std::io::Result<()>;

    /// Reports that a pool could not create a worker (rate-limited by the
    /// pool).
    fn spawn_failed(&self, message: String);

    /// A worker left an idle list (the pool monitor may have work again).
    fn left_idle(&self);

    /// On a new worker's thread, before its first task.
    fn worker_started(pool: &PoolArc<Pool<Self>>, me: &Arc<WorkerShared>) -> Self::Worker;

    /// Runs (or retires unrun) one task taken from the worklist. Nothing may
    /// unwind out of it: the worker loop has no recovery from a panic.
    fn run(pool: &PoolArc<Pool<Self>>, me: &WorkerShared, w: &Self::Worker, task: Self::Task);

    /// The worker found no more work and is about to go idle.
    fn batch_done(w: &Self::Worker);

    /// On the worker's thread after it left the pool for good; `pool` may
    /// be the last reference to the pool.
    fn worker_exiting(pool: PoolArc<Pool<Self>>, w: Self::Worker);

    /// The mistake a loom model puts back into the pool's code, if any.
    #[cfg(kwq_loom)]
    fn seeded_bug(&self) -> super::sleep::SeededBug {
        super::sleep::SeededBug::None
    }
}

/// What a worker executes, as dumps and the pool monitor's reports name it.
pub(crate) trait ItemName: Send + Sync {
    /// The item's name.
    fn item_name(&self) -> &str;
}

impl std::fmt::Debug for dyn ItemName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.item_name())
    }
}
