//! How the runtime's tasks run on a pool: the [`Schedule`] of the
//! runtime (`impl Schedule for Config`), `process_one_work`, and the
//! rescuer's [`Helper`].
//!
//! The pool (`pool/`) is a leaf: it runs `Config`'s [`Task`]s through this
//! trait and names nothing of this crate above the `sync` facade. This
//! module is where the layers meet: it knows the pool *and* work items,
//! workqueues and the worker context.
//!
//! # User code on the worker
//!
//! Invariant: nothing the program supplied can unwind out of
//! [`Schedule::run`] or leave a task unretired. Closures run under
//! `catch_unwind`; their panic is reported while the item is still current
//! (so a hook's waits go through `blocking` and its misuse is caught).
//! Every other drop of user data — the last reference to an item after its
//! run, a stale token, the runtime's configuration at exit — happens after
//! the task is retired, through `WorkerCtx::drop_user`, which contains a
//! panicking destructor and counts the worker as blocked meanwhile (a
//! destructor may tear down a workqueue and wait for its items).
//! `docs/hostile.md` lists every site.

use crate::current::{self, Running, WorkerCtx};
use crate::pool::{ItemName, Schedule};
use crate::runtime::Config;
use crate::sync::atomic::Ordering::*;
use crate::sync::Arc;
use crate::task::{Payload, Task};
use crate::work::WorkInner;
use crate::work::{AfterRun, Start};
use crate::workqueue::WqInner;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

/// The runtime's pools: they run [`Task`]s as `Config` says.
pub(crate) type Pool = crate::pool::Pool<Config>;
pub(crate) use crate::pool::WorkerShared;

impl Schedule for Config {
    type Task = Task;
    type Worker = Rc<WorkerCtx>;

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    fn thread_name(&self) -> &str {
        &self.thread_name
    }

    fn spawn<F: FnOnce() + Send + 'static>(&self, name: String, main: F) -> std::io::Result<()> {
        crate::spawn::spawn(self.spawn_handler.as_ref(), name, self.stack_size, main)
    }

    fn spawn_failed(&self, message: String) {
        self.warn(crate::report::Warning::new(
            crate::report::WarningKind::WorkerSpawnFailed,
            message,
        ));
    }

    #[inline]
    fn left_idle(&self) {
        self.monitor.hint();
    }

    fn worker_started(pool: &Arc<Pool>, me: &Arc<WorkerShared>) -> Rc<WorkerCtx> {
        let ctx = current::install(pool.clone(), me.clone());
        pool.cfg.hooks.thread_started();
        ctx
    }

    #[inline]
    fn run(pool: &Arc<Pool>, me: &WorkerShared, ctx: &Rc<WorkerCtx>, task: Task) {
        process(pool, me, ctx, task);
    }

    #[inline]
    fn batch_done(ctx: &Rc<WorkerCtx>) {
        ctx.drop_deferred();
    }

    fn worker_exiting(pool: Arc<Pool>, ctx: Rc<WorkerCtx>) {
        drop(ctx);
        current::uninstall();
        // Out of the pool already: a slow hook delays nobody.
        let hooks = pool.cfg.hooks.clone();
        hooks.thread_stopping();
        // The last worker may hold the last reference to the runtime's
        // configuration, whose hooks own user values.
        hooks.drop_contained(pool, "a runtime's configuration");
        crate::report::drop_contained(hooks, "a runtime's hooks");
    }
}

impl ItemName for WorkInner {
    fn item_name(&self) -> &str {
        self.name()
    }
}

/// Retires a consumed task whose instance will not run (cancelled or
/// superseded): its token may hold the last reference to the item, whose
/// closure is user data (`WorkerCtx::drop_user`).
fn retire_stale(ctx: &WorkerCtx, task: Task) {
    let (wq, color, admitted) = (task.wq.clone(), task.color, task.admitted);
    // Retired first: a hook told about a panicking destructor may flush.
    wq.retire_parts(color, admitted);
    ctx.drop_user(task, "a cancelled work item");
    ctx.drop_later(wq);
}

/// `process_one_work`. `max_active` admission already happened when the
/// task was queued (`WqInner::submit`); a token whose instance was
/// cancelled or superseded is retired unrun.
#[inline]
fn process(pool: &Arc<Pool>, me: &WorkerShared, ctx: &WorkerCtx, task: Task) {
    match &task.payload {
        Payload::Job(j) if !j.is_marker() => run_job(pool, me, ctx, task),
        Payload::Work { .. } => process_work(pool, me, ctx, task),
        Payload::Job(_) => pull(pool, me, ctx, task),
    }
}

/// A pull token: process its queue's oldest waiting task, if any is left.
/// The token itself was never counted, so nothing is retired for it.
#[inline(never)]
fn pull(pool: &Arc<Pool>, me: &WorkerShared, ctx: &WorkerCtx, token: Task) {
    // The marker job holds nothing; the token's queue has the FIFO.
    let Task { wq, .. } = token;
    let rescue = wq.rescue().cloned();
    ctx.drop_later(wq);
    if let Some(task) = rescue.and_then(|r| r.pull()) {
        process(pool, me, ctx, task);
    }
}

/// A thread that is not one of the pool's workers running tasks as one: a
/// workqueue's rescuer. It counts as running while it runs a task.
pub(crate) struct Helper {
    pool: Arc<Pool>,
    me: Arc<WorkerShared>,
    ctx: Rc<WorkerCtx>,
    _parker: crate::sync::Parker,
}

impl Helper {
    /// Makes the calling thread a helper of `pool`.
    pub(crate) fn new(pool: &Arc<Pool>) -> Helper {
        let parker = crate::sync::Parker::new();
        let me = Arc::new(WorkerShared::new(pool.next_worker_id(), parker.unparker()));
        crate::pool::set_tid(&me);
        let ctx = current::install(pool.clone(), me.clone());
        Helper {
            pool: pool.clone(),
            me,
            ctx,
            _parker: parker,
        }
    }

    /// Runs `task` as a worker of the pool would.
    pub(crate) fn run(&mut self, task: Task) {
        self.pool.exit_blocking();
        process(&self.pool, &self.me, &self.ctx, task);
        self.ctx.drop_deferred();
        // Stop counting; kick the pool in case the count was holding it.
        self.pool.enter_blocking();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        current::uninstall();
    }
}

/// [`process`] for a persistent work item's token (kept out of the job
/// path, which is the spawn benchmark's hot loop).
#[inline(never)]
fn process_work(pool: &Arc<Pool>, me: &WorkerShared, ctx: &WorkerCtx, task: Task) {
    let Payload::Work { item, seq } = &task.payload else {
        unreachable!("process_work takes work items")
    };
    let (item, seq) = (item.clone(), *seq);
    if !item.state.load().is_live(seq) {
        retire_stale(ctx, task);
    } else {
        match item.start(task, seq) {
            Start::Run(task) => run_work(pool, me, ctx, task),
            Start::Parked => {}
            Start::Stale(task) => retire_stale(ctx, task),
        }
    }
    // Possibly the last reference: the item's closure is user data.
    ctx.drop_user(item, "a work item");
}

/// Runs `body` as this worker's current item of `wq`: records it for the
/// worker context and dumps, steps out of concurrency management for a
/// CPU-intensive queue, and reports a panic naming the item. Returns the
/// workqueue back for retirement.
///
/// The report (the `on_panic` hook, the payload's destructor: user code)
/// runs while the item is still the worker's current one: a wait inside it
/// goes through `blocking` as the item's own would, and the misuse checks
/// apply — a hook that flushes the item's own queue or item is refused
/// (it would wait for the task it is told about, not yet retired) instead
/// of hanging, and `flush` returning still means the panic was reported.
fn execute(
    pool: &Arc<Pool>,
    me: &WorkerShared,
    ctx: &WorkerCtx,
    wq: Arc<WqInner>,
    work: Option<&Arc<WorkInner>>,
    body: impl FnOnce() -> std::thread::Result<()>,
) -> Arc<WqInner> {
    let cpu_intensive = wq.flags.cpu_intensive;
    me.cur_wq.store(wq.id, Relaxed);
    if let Some(item) = work {
        let named: std::sync::Arc<dyn ItemName> = item.clone();
        *me.cur_item.lock() = Some(named);
    }
    ctx.set_running(Running {
        wq,
        work: work.cloned(),
    });
    if cpu_intensive {
        ctx.leave_running();
    }
    let r = body();
    if cpu_intensive {
        ctx.rejoin_running();
    }
    if let Err(p) = r {
        let name = work.map_or("<job>", |w| w.name());
        // A reference of our own: the item stays current meanwhile.
        let wq = ctx.running_wq().expect("worker context lost");
        pool.cfg.report_panic(name, wq.name(), p);
    }
    let Running { wq, .. } = ctx.take_running().expect("worker context lost");
    me.cur_wq.store(0, Relaxed);
    if work.is_some() {
        *me.cur_item.lock() = None;
    }
    wq
}

fn run_job(pool: &Arc<Pool>, me: &WorkerShared, ctx: &WorkerCtx, task: Task) {
    let Task {
        payload: Payload::Job(f),
        wq,
        color,
        admitted,
    } = task
    else {
        unreachable!("run_job takes jobs")
    };
    let wq = execute(pool, me, ctx, wq, None, || {
        catch_unwind(AssertUnwindSafe(|| f.run()))
    });
    wq.retire_parts(color, admitted);
    ctx.drop_later(wq);
}

/// Runs a started work item, then any parked instance handed over by `end`.
fn run_work(pool: &Arc<Pool>, me: &WorkerShared, ctx: &WorkerCtx, mut task: Task) {
    loop {
        let Task {
            payload: Payload::Work { item, seq },
            wq,
            color,
            admitted,
        } = task
        else {
            unreachable!("run_work takes work items")
        };
        let wq = execute(pool, me, ctx, wq, Some(&item), || item.execute());
        let after = item.end(seq, pool);
        wq.retire_parts(color, admitted);
        drop(wq);
        // Possibly the last reference: the item's closure is user data.
        ctx.drop_user(item, "a work item");
        match after {
            AfterRun::Idle => return,
            AfterRun::RunNext(next) => task = next,
            AfterRun::Requeue(next) => {
                next.wq.clone().admit_and_push(next);
                return;
            }
        }
    }
}
