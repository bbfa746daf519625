//! The calling thread's worker context: which pool it belongs to, what it is
//! executing, and whether it is inside [`blocking`].
//!
//! This is how kwq implements the parts of cmwq that hang off `current`:
//! concurrency management of blocking workers (`wq_worker_sleeping` /
//! `wq_worker_running`), "chained" queueing into a draining workqueue, and
//! the misuse checks that the kernel leaves to lockdep — flushing or
//! cancelling an item from inside itself, flushing a workqueue from one of
//! its own items. Those would wait forever; kwq panics with a message naming
//! the item and workqueue instead, as `RefCell` does for a double borrow.

use crate::pool::Pool;
use crate::sync::{thread_local, Arc};
use crate::work::WorkInner;
use crate::workqueue::WqInner;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What a worker is executing.
pub(crate) struct Running {
    pub(crate) wq: Arc<WqInner>,
    pub(crate) work: Option<Arc<WorkInner>>,
}

/// A worker thread's context. The worker holds an `Rc` to it and updates
/// `running` directly (no thread-local lookup on the hot path); everyone
/// else reaches it through the thread-local.
pub(crate) struct WorkerCtx {
    pub(crate) pool: Arc<Pool>,
    running: Cell<Option<Running>>,
    /// Nesting depth of `blocking` (only the outermost level counts).
    blocking: Cell<u32>,
}

impl WorkerCtx {
    /// Records what the worker is about to execute.
    pub(crate) fn set_running(&self, r: Running) {
        self.running.set(Some(r));
    }

    /// Clears what the worker executes; returns it.
    pub(crate) fn take_running(&self) -> Option<Running> {
        self.running.take()
    }

    /// Looks at what the worker executes.
    fn peek<R>(&self, f: impl FnOnce(Option<&Running>) -> R) -> R {
        let r = self.running.take();
        let out = f(r.as_ref());
        self.running.set(r);
        out
    }
}

thread_local! {
    static CTX: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
}

/// Installs the worker context of the calling (worker) thread.
pub(crate) fn install(pool: Arc<Pool>) -> Rc<WorkerCtx> {
    let ctx = Rc::new(WorkerCtx {
        pool,
        running: Cell::new(None),
        blocking: Cell::new(0),
    });
    CTX.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    ctx
}

/// Removes the worker context (worker exit).
pub(crate) fn uninstall() {
    let _ = CTX.try_with(|c| c.borrow_mut().take());
}

/// Runs `f` with the worker context, if the calling thread is a worker.
fn with<R>(f: impl FnOnce(Option<&WorkerCtx>) -> R) -> R {
    CTX.with(|c| f(c.borrow().as_deref()))
}

/// Runs `f`, which may block, without holding back the worker pool.
///
/// Called on a kwq worker thread, the worker stops counting as *running*
/// for the pool's concurrency management while `f` executes, so the pool
/// wakes (or creates) another worker if items are waiting — the userspace
/// counterpart of the kernel noticing that a worker went to sleep. Called on
/// any other thread, it just runs `f`.
///
/// Every wait inside kwq (flushing, cancelling, draining, a full ordered
/// queue) goes through this function, so a work item that waits on another
/// never starves the pool it runs on.
///
/// ```
/// let wq = kwq::Workqueue::builder("io").build().unwrap();
/// wq.queue_fn(|| {
///     let data = kwq::blocking(|| std::fs::read("/proc/self/status"));
///     drop(data);
/// });
/// wq.flush();
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    struct Exit(Option<Arc<Pool>>);
    impl Drop for Exit {
        fn drop(&mut self) {
            if let Some(pool) = self.0.take() {
                CTX.with(|c| {
                    if let Some(ctx) = c.borrow().as_ref() {
                        ctx.blocking.set(ctx.blocking.get() - 1);
                    }
                });
                pool.exit_blocking();
            }
        }
    }
    let pool = CTX.with(|c| {
        let c = c.borrow();
        let ctx = c.as_ref()?;
        let depth = ctx.blocking.get();
        ctx.blocking.set(depth + 1);
        if depth == 0 && ctx.peek(|r| r.is_some()) {
            Some(ctx.pool.clone())
        } else {
            // Nested, or not executing an item: only count the depth.
            ctx.blocking.set(depth);
            None
        }
    });
    if let Some(p) = &pool {
        p.enter_blocking();
    }
    let _exit = Exit(pool);
    f()
}

/// Id and name of the workqueue whose item the calling thread executes.
fn running_wq() -> Option<(u64, String, bool, Option<String>, usize)> {
    with(|ctx| {
        ctx?.peek(|r| {
            let r = r?;
            Some((
                r.wq.id,
                r.wq.name().to_string(),
                r.wq.is_single(),
                r.work.as_ref().map(|w| w.name().to_string()),
                r.work.as_ref().map(WorkInner::id).unwrap_or(0),
            ))
        })
    })
}

/// Is the calling thread executing an item of workqueue `id`?
pub(crate) fn is_running_on(id: u64) -> bool {
    running_wq().is_some_and(|(wq, ..)| wq == id)
}

/// Misuse check for `Work::flush` / `DelayedWork::flush`.
pub(crate) fn check_flush_work(target: &Arc<WorkInner>, what: &str) {
    let Some((wq_id, wq_name, single, work_name, work_id)) = running_wq() else {
        return;
    };
    if work_id == target.id() {
        panic!(
            "kwq: {what}() called on work item '{}' from inside its own function \
             (workqueue '{wq_name}'): it would wait for itself forever",
            target.name()
        );
    }
    let target_wq = target.last_wq.load(crate::sync::atomic::Ordering::Acquire);
    if single && target_wq == wq_id && target.state.load().is_pending() {
        panic!(
            "kwq: {what}() on work item '{}' from work item '{}' of ordered/max_active(1) \
             workqueue '{wq_name}', where '{}' is pending: it can only start after the \
             caller returns, so the caller would wait forever",
            target.name(),
            work_name.as_deref().unwrap_or("<job>"),
            target.name()
        );
    }
}

/// Misuse check for `cancel_sync`.
pub(crate) fn check_cancel_sync(target: &Arc<WorkInner>, what: &str) {
    let Some((_, wq_name, ..)) = running_wq() else {
        return;
    };
    let running_id = running_wq().map(|r| r.4).unwrap_or(0);
    if running_id == target.id() {
        panic!(
            "kwq: {what}() called on work item '{}' from inside its own function \
             (workqueue '{wq_name}'): it would wait for itself forever",
            target.name()
        );
    }
}

/// Misuse check for `Workqueue::flush` / `drain`.
pub(crate) fn check_flush_wq(wq: &WqInner, what: &str) {
    let Some((wq_id, _, _, work_name, _)) = running_wq() else {
        return;
    };
    if wq_id == wq.id {
        panic!(
            "kwq: {what}() on workqueue '{}' called from its own work item '{}': \
             the caller is itself in flight on that workqueue and would wait for itself forever",
            wq.name(),
            work_name.as_deref().unwrap_or("<job>")
        );
    }
}
