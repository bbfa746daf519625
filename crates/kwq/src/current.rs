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

use crate::exec::{Pool, WorkerShared};
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
    shared: Arc<WorkerShared>,
    running: Cell<Option<Running>>,
    /// Nesting depth of `blocking` (only the outermost level counts).
    blocking: Cell<u32>,
    /// The worker is dropping user values outside any item (`drop_user`):
    /// a wait inside a destructor (a workqueue torn down by the drop of the
    /// closure owning it) must step out of concurrency management as it
    /// would inside an item, or it holds the pool's running slot while it
    /// waits for items of that very pool.
    dropping: Cell<bool>,
    /// Workqueue references of retired tasks, dropped in batches: every
    /// queued job clones its workqueue's `Arc` on the submitting thread, and
    /// dropping it here one by one would bounce that cache line between the
    /// submitter and the workers on every job. A late drop only delays
    /// freeing a workqueue that is already drained.
    graveyard: RefCell<Vec<Arc<WqInner>>>,
}

/// Retired workqueue references a worker keeps before dropping them.
const GRAVEYARD: usize = 64;

impl WorkerCtx {
    /// Records what the worker is about to execute.
    pub(crate) fn set_running(&self, r: Running) {
        self.running.set(Some(r));
    }

    /// Clears what the worker executes; returns it.
    pub(crate) fn take_running(&self) -> Option<Running> {
        self.running.take()
    }

    /// Steps out of the pool's concurrency management (`blocking`, a
    /// CPU-intensive item). Nested calls only count depth, so a
    /// `kwq::blocking` inside a CPU-intensive item does not uncount the
    /// worker twice.
    pub(crate) fn leave_running(&self) {
        let depth = self.blocking.get();
        self.blocking.set(depth + 1);
        if depth == 0 {
            self.pool.leave_running(&self.shared);
        }
    }

    /// Undoes one [`leave_running`](Self::leave_running).
    pub(crate) fn rejoin_running(&self) {
        let depth = self.blocking.get() - 1;
        self.blocking.set(depth);
        if depth == 0 {
            self.pool.rejoin_running(&self.shared);
        }
    }

    /// Drops `value` — user data, or something that may own the last
    /// reference to some — on this worker: a panicking destructor is
    /// contained and reported, and a wait inside the destructor goes
    /// through [`blocking`] as if inside an item.
    pub(crate) fn drop_user<T>(&self, value: T, what: &str) {
        let was = self.dropping.replace(true);
        self.pool.cfg.hooks.drop_contained(value, what);
        self.dropping.set(was);
    }

    /// The workqueue of the item being executed (a new reference).
    pub(crate) fn running_wq(&self) -> Option<Arc<WqInner>> {
        self.peek(|r| r.map(|r| r.wq.clone()))
    }

    /// Drops `wq` later, in a batch (see `graveyard`).
    #[inline(always)]
    pub(crate) fn drop_later(&self, wq: Arc<WqInner>) {
        let mut g = self.graveyard.borrow_mut();
        if g.len() >= GRAVEYARD {
            bury(&mut g);
        }
        g.push(wq);
    }

    /// Drops every deferred reference now (before the worker sleeps).
    pub(crate) fn drop_deferred(&self) {
        self.graveyard.borrow_mut().clear();
    }

    /// Looks at what the worker executes.
    fn peek<R>(&self, f: impl FnOnce(Option<&Running>) -> R) -> R {
        let r = self.running.take();
        let out = f(r.as_ref());
        self.running.set(r);
        out
    }
}

/// Empties a full graveyard (out of line: once per `GRAVEYARD` items).
#[cold]
#[inline(never)]
fn bury(g: &mut Vec<Arc<WqInner>>) {
    g.clear();
}

thread_local! {
    static CTX: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
}

/// Installs the worker context of the calling (worker) thread.
pub(crate) fn install(pool: Arc<Pool>, shared: Arc<WorkerShared>) -> Rc<WorkerCtx> {
    let ctx = Rc::new(WorkerCtx {
        pool,
        shared,
        running: Cell::new(None),
        blocking: Cell::new(0),
        dropping: Cell::new(false),
        graveyard: RefCell::new(Vec::with_capacity(GRAVEYARD)),
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
    struct Rejoin(bool);
    impl Drop for Rejoin {
        fn drop(&mut self) {
            if self.0 {
                with(|ctx| {
                    if let Some(ctx) = ctx {
                        ctx.rejoin_running();
                    }
                });
            }
        }
    }
    // Only a worker executing an item (or dropping user values between
    // items) counts for concurrency management.
    let left = with(|ctx| match ctx {
        Some(ctx) if ctx.dropping.get() || ctx.peek(|r| r.is_some()) => {
            ctx.leave_running();
            true
        }
        _ => false,
    });
    let _rejoin = Rejoin(left);
    // A layer above may want to know (an ordered queue's runner blocking
    // in a stage: its crew wakes another runner for queued items).
    struct Unstall(Option<BlockingHook>);
    impl Drop for Unstall {
        fn drop(&mut self) {
            if let Some(h) = self.0 {
                h(false);
            }
        }
    }
    let hook = BLOCKING_HOOK.get().copied();
    if let Some(h) = hook {
        h(true);
    }
    let _unstall = Unstall(hook);
    f()
}

/// Told `true` when the calling thread enters [`blocking`] and `false`
/// when it leaves. Set once by a layer above this one (the ordered crews,
/// `ordered/crew.rs`), so that this module names nothing above it.
type BlockingHook = fn(bool);

static BLOCKING_HOOK: crate::sync::OnceLock<BlockingHook> = crate::sync::OnceLock::new();

/// Registers the blocking hook (the first registration wins; the ordered
/// layer registers the same function every time).
pub(crate) fn set_blocking_hook(h: BlockingHook) {
    let _ = BLOCKING_HOOK.set(h);
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
