//! Worker pools: where items run (internal; the public surface is
//! [`Runtime`](crate::Runtime) and [`Workqueue`](crate::Workqueue)).
//!
// Worker pools: the execution resource shared by workqueues.
//
// A workqueue is a *semantic domain* (max_active, ordering, flush, drain);
// a pool is *where items run*. Workqueues with equal attributes (priority,
// bound/unbound) share one pool of one [`Runtime`](crate::Runtime), and with
// it the workers, exactly as every bound workqueue of a CPU feeds the same
// two kernel pools.
//
// # A leaf
//
// The pool runs tasks it knows nothing about: `Pool<S: Schedule>` holds a
// worklist of `S::Task` and hands each to `S::run` (`pool/schedule.rs`;
// the runtime's schedule is `impl Schedule for Config` in `exec.rs`). This
// module names nothing of the crate but the `sync` facade (checked by
// `ci/test.sh`'s layering step), so it compiles as it is under loom, where
// `tests/loom_worker.rs` runs it with a test schedule. What it owns: the
// worklist, the counters and idle list below, the worker loop
// (`worker.rs`), the manager, and the accounting of blocked workers
// (`leave_running` / `rejoin_running`, `presume_blocked` /
// `release_presumed`, over `Presence` in `sleep.rs`).
//
// # Fields and who may touch them
//
// Legend: `A:` atomic, read without a lock; `L:` under the idle-list lock;
// `I:` immutable after creation.
//
// * `worklist` — A: lock-free FIFO of tasks (`Fifo`).
// * `nr_running` — A: workers executing items and counted for concurrency
//   management (not idle, not inside [`blocking`](crate::blocking), not
//   running a CPU-intensive item). Incremented on a worker's behalf by
//   whoever wakes it.
// * `nr_idle`, `nr_workers` — L (written), A (read): mirrors of the idle
//   list length and of the worker count.
// * `idle` — L: LIFO of parked workers (the most recently idle one is the
//   most likely to be cache-warm and the least likely to be reaped).
// * `concurrency`, `max_workers` — I.
//
// The counters and the idle list are fields of `Pool` itself, but the code
// that touches them — both halves of the handshake below — is in
// `pool/sleep.rs`, over a one-pointer view (`Sleep(&pool)`), so that loom
// checks that very code (`tests/loom_worker.rs`).
//
// # Protocol: sleeping and waking (no lost wake-ups)
//
// ```text
//  submitter                               worker going idle
//  ---------                               -----------------
//  worklist.push(task)   [SeqCst RMW]      lock idle; idle.push(me); nr_running -= 1 [SeqCst]; unlock
//  load nr_running       [SeqCst]          fence(SeqCst); worklist.is_empty() [SeqCst loads]
//  if need_more_worker(nr_running):        if !worklist.is_empty() and need_more_worker:
//      lock idle; pop w; nr_running += 1       lock idle; if still listed: leave, nr_running += 1
//      w.woken = true; unpark(w)           park until woken (or idle timeout)
// ```
//
// All four marked operations are SeqCst, so they fall into one total order,
// which makes the pair a Dekker handshake: either the submitter's load
// comes after the worker's decrement (and wakes someone), or the worker's
// emptiness check comes after the push (and it stays up). The submitter
// side needs no fence because `Fifo::push` guarantees a SeqCst
// read-modify-write (documented on `Fifo`; crossbeam's injector advances
// its tail with one) — the same reasoning crossbeam-channel's `send` uses
// to skip a fence before checking for sleeping receivers. A worker is
// removed from the idle list only under the lock, by exactly one party, so
// no worker is woken twice or lost.
//
// # Protocol: concurrency management
//
// The decisions are the pure predicates of `kwq_policy` (re-exported as
// [`policy`]): a task is pushed → wake an idle worker if
// `need_more_worker`; a worker that leaves the idle list and finds none
// left creates one (`may_start_working` false: it acts as the pool's
// manager, so an idle reserve exists for the next time somebody blocks); a
// worker that finished an item takes the next only while `keep_working`; a
// worker entering [`blocking`](crate::blocking) stops counting, and wakes or
// creates a replacement if `need_more_worker`; an idle worker whose idle
// timeout expires exits if `too_many_workers`.

pub mod policy;
mod schedule;
pub(crate) mod sleep;
mod worker;

pub(crate) use schedule::{ItemName, Schedule};
#[cfg(not(kwq_loom))]
pub(crate) use worker::set_tid;

use crate::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{Arc, Fifo, Mutex, Parker, PoolArc, Unparker};
use policy::{Concurrency, PoolSnapshot};
use sleep::{seeded_bug, Kick, Presence, SeededBug, Sleep, SleepState, Sleeper};
use std::time::{Duration, Instant};

/// What distinguishes pools of one runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PoolAttrs {
    pub(crate) highpri: bool,
    pub(crate) unbound: bool,
}

impl PoolAttrs {
    pub(crate) fn label(self) -> &'static str {
        match (self.unbound, self.highpri) {
            (false, false) => "normal",
            (false, true) => "highpri",
            (true, false) => "unbound",
            (true, true) => "unbound-highpri",
        }
    }
}

/// A worker as seen by the pool and by dumps.
///
/// Aligned to 128 bytes (two cache lines, the unit adjacent-line
/// prefetchers move): a worker writes `executed` and `cur_wq` for every
/// item, and the workers' records are allocated one after another, so
/// without the alignment two workers' records share a line and every item
/// costs both of them a cache miss.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct WorkerShared {
    pub(crate) id: usize,
    unparker: Unparker,
    /// Set (under the idle lock) by whoever takes this worker off the idle list.
    woken: AtomicBool,
    /// Items this worker has taken from the worklist (watchdog progress).
    pub(crate) executed: AtomicU64,
    /// Workqueue id of the item being executed (0: none).
    pub(crate) cur_wq: AtomicU64,
    /// The named item being executed, if any (for dumps and reports). A
    /// std `Arc`: loom's cannot hold a trait object, and no model reads it.
    pub(crate) cur_item: Mutex<Option<std::sync::Arc<dyn ItemName>>>,
    /// Inside `blocking` or a CPU-intensive item.
    pub(crate) blocked: AtomicBool,
    pub(crate) exited: AtomicBool,
    /// Who counts the worker out while it blocks (itself, or the monitor).
    pub(crate) presence: Presence,
    /// The thread's kernel id (0 until the thread starts; Linux only).
    pub(crate) tid: AtomicI32,
}

impl WorkerShared {
    pub(crate) fn new(id: usize, unparker: Unparker) -> WorkerShared {
        WorkerShared {
            id,
            unparker,
            woken: AtomicBool::new(false),
            executed: AtomicU64::new(0),
            cur_wq: AtomicU64::new(0),
            cur_item: Mutex::new(None),
            blocked: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            presence: Presence::new(),
            tid: AtomicI32::new(0),
        }
    }
}

impl Sleeper for Arc<WorkerShared> {
    fn woken(&self) -> &AtomicBool {
        &self.woken
    }
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other)
    }
    fn unpark(&self) {
        self.unparker.unpark();
    }
    fn presence(&self) -> &Presence {
        &self.presence
    }
}

impl<S: Schedule> SleepState for Pool<S> {
    type W = Arc<WorkerShared>;
    #[inline]
    fn concurrency(&self) -> Concurrency {
        self.concurrency
    }
    #[inline]
    fn max_workers(&self) -> usize {
        self.cfg.max_workers()
    }
    #[inline]
    fn nr_running(&self) -> &AtomicUsize {
        &self.nr_running
    }
    #[inline]
    fn nr_idle(&self) -> &AtomicUsize {
        &self.nr_idle
    }
    #[inline]
    fn nr_workers(&self) -> &AtomicUsize {
        &self.nr_workers
    }
    #[inline]
    fn idle(&self) -> &Mutex<Vec<Arc<WorkerShared>>> {
        &self.idle
    }
    #[cfg(kwq_loom)]
    fn seeded_bug(&self) -> SeededBug {
        self.cfg.seeded_bug()
    }
}

/// A worker pool running the tasks of `S`.
pub(crate) struct Pool<S: Schedule> {
    pub(crate) id: usize,
    pub(crate) attrs: PoolAttrs,
    /// The layer above: its settings, and how tasks run.
    pub(crate) cfg: Arc<S>,
    concurrency: Concurrency,
    pub(crate) worklist: Fifo<S::Task>,
    nr_running: AtomicUsize,
    nr_idle: AtomicUsize,
    nr_workers: AtomicUsize,
    idle: Mutex<Vec<Arc<WorkerShared>>>,
    manager: AtomicBool,
    dying: AtomicBool,
    next_worker: AtomicUsize,
    pub(crate) workers: Mutex<Vec<Arc<WorkerShared>>>,
    /// After a failed thread creation: when to try again, the current
    /// back-off, and the failures not reported yet (rate-limited).
    spawn_failures: Mutex<SpawnFailures>,
}

/// Back-off and reporting state after failed worker creation.
#[derive(Default)]
struct SpawnFailures {
    retry_at: Option<Instant>,
    backoff: Duration,
    last_report: Option<Instant>,
    unreported: u64,
}

impl<S: Schedule> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("id", &self.id)
            .field("attrs", &self.attrs)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl<S: Schedule> Pool<S> {
    pub(crate) fn new(id: usize, attrs: PoolAttrs, cfg: Arc<S>) -> PoolArc<Pool<S>> {
        let concurrency = if attrs.unbound {
            Concurrency::Unmanaged
        } else {
            Concurrency::Managed(cfg.concurrency())
        };
        let pool = PoolArc::new(Pool {
            id,
            attrs,
            cfg,
            concurrency,
            worklist: Fifo::new(),
            nr_running: AtomicUsize::new(0),
            nr_idle: AtomicUsize::new(0),
            nr_workers: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            manager: AtomicBool::new(false),
            dying: AtomicBool::new(false),
            next_worker: AtomicUsize::new(0),
            workers: Mutex::new(Vec::new()),
            spawn_failures: Mutex::new(SpawnFailures::default()),
        });
        // Like the kernel, a pool starts with one idle worker.
        pool.create_worker();
        pool
    }

    pub(crate) fn name(&self) -> String {
        format!("{}{}", self.attrs.label(), self.id)
    }

    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        self.sleep().snapshot(self.has_work())
    }

    /// The idle list and counters, as the sleep/wake handshake's code
    /// (`pool/sleep.rs`) sees them.
    #[inline]
    fn sleep(&self) -> Sleep<'_, Pool<S>> {
        Sleep(self)
    }

    /// Is the worklist non-empty? (SeqCst, as the handshake needs.)
    #[inline]
    fn has_work(&self) -> bool {
        !self.worklist.is_empty()
    }

    /// Puts a task on the worklist and wakes a worker if the pool needs one.
    pub(crate) fn push(self: &PoolArc<Self>, task: S::Task) {
        self.worklist.push(task);
        self.kick();
    }

    /// The submitter half of the sleep/wake handshake (`Sleep::kick`;
    /// `Fifo::push` ended with the SeqCst read-modify-write it needs).
    /// Out of line, as the compiler placed it before the handshake moved to
    /// `sleep.rs`: the build whose `spawn` throughput was measured against
    /// the old code (BENCHMARKS.md, session 10).
    #[inline(never)]
    pub(crate) fn kick(self: &PoolArc<Self>) {
        if self.sleep().kick(|| self.has_work()) == Kick::CreateWorker {
            self.manage();
        }
    }

    /// Acts as the pool's manager: creates workers while no idle worker is
    /// in reserve (kernel `maybe_create_worker`, run by the worker for which
    /// `may_start_working` was false). Only one manager at a time.
    pub(crate) fn manage(self: &PoolArc<Self>) {
        if self
            .manager
            .compare_exchange(false, true, AcqRel, Relaxed)
            .is_err()
        {
            return;
        }
        loop {
            let snap = self.snapshot();
            if policy::may_start_working(&snap) || snap.nr_workers >= snap.max_workers {
                break;
            }
            if !self.create_worker() {
                break;
            }
        }
        self.manager.store(false, Release);
        // Dekker with a submitter whose `manage` found the flag taken and
        // returned: either it sees the flag cleared next time, or we see its
        // task here. A worker created above starts idle; wake it if needed.
        fence(SeqCst);
        if policy::need_more_worker(&self.snapshot()) {
            self.sleep().wake_one(&|| self.has_work());
        }
    }

    /// Spawns a worker thread that starts on the idle list. After a failure
    /// it backs off (10 ms, doubling to 1 s) before it tries again.
    fn create_worker(self: &PoolArc<Self>) -> bool {
        if self
            .spawn_failures
            .lock()
            .retry_at
            .is_some_and(|t| Instant::now() < t)
        {
            return false;
        }
        let id = self.next_worker_id();
        let parker = Parker::new();
        let shared = Arc::new(WorkerShared::new(id, parker.unparker()));
        self.sleep().add_idle(shared.clone());
        let pool = self.clone();
        let me = shared.clone();
        let name = format!("{}/{}:{}", self.cfg.thread_name(), self.name(), id);
        // Listed before the thread starts, so dumps and the monitor see a
        // worker from its first item on.
        {
            let mut all = self.workers.lock();
            all.retain(|w| !w.exited.load(Relaxed));
            all.push(shared.clone());
        }
        let spawned = self.cfg.spawn(name, move || worker::main(pool, me, parker));
        match spawned {
            Ok(()) => {
                let mut f = self.spawn_failures.lock();
                if f.retry_at.is_some() {
                    *f = SpawnFailures::default();
                }
                true
            }
            Err(e) => {
                self.workers.lock().retain(|w| !Arc::ptr_eq(w, &shared));
                self.sleep().remove_unstarted(&shared);
                self.spawn_failed(&e);
                false
            }
        }
    }

    /// Backs off and reports (at most once a second) a failed creation.
    fn spawn_failed(&self, e: &std::io::Error) {
        let now = Instant::now();
        let report = {
            let mut f = self.spawn_failures.lock();
            f.backoff = (f.backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
            f.retry_at = Some(now + f.backoff);
            f.unreported += 1;
            if f.last_report
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                None
            } else {
                f.last_report = Some(now);
                Some(std::mem::take(&mut f.unreported))
            }
        };
        if let Some(n) = report {
            let more = if n > 1 {
                format!(" ({n} failures since the last report)")
            } else {
                String::new()
            };
            self.cfg.spawn_failed(format!(
                "pool {} could not create a worker: {e}{more}; it goes on with the workers it \
                 has and tries again",
                self.name()
            ));
        }
    }

    /// A fresh worker id (workers and rescuers).
    pub(crate) fn next_worker_id(&self) -> usize {
        self.next_worker.fetch_add(1, Relaxed)
    }

    /// Can the pool not provide a worker now: none idle, and it is at its
    /// cap or creating workers is failing? (A rescuer's mayday test.)
    pub(crate) fn cannot_provide_worker(&self) -> bool {
        let s = self.snapshot();
        s.nr_idle == 0
            && (s.nr_workers >= s.max_workers || self.spawn_failures.lock().retry_at.is_some())
    }

    /// Work waits and no worker of the pool runs or idles: maybe every
    /// creation failed. Try again (the monitor calls this every tick).
    pub(crate) fn retry_if_workerless(self: &PoolArc<Self>) {
        let s = self.snapshot();
        if s.worklist_nonempty && s.nr_running == 0 && s.nr_idle == 0 {
            self.manage();
        }
    }

    /// A running worker is about to block (`kwq::blocking`, CPU-intensive
    /// item): it stops counting, and the pool gets a replacement if needed
    /// (kernel `wq_worker_sleeping`).
    pub(crate) fn enter_blocking(self: &PoolArc<Self>) {
        if self.sleep().enter_blocking(|| self.has_work()) == Kick::CreateWorker {
            self.manage();
        }
    }

    /// The blocked worker runs again (kernel `wq_worker_running`).
    pub(crate) fn exit_blocking(&self) {
        self.sleep().exit_blocking();
    }

    /// The worker `me`, executing an item, steps out of concurrency
    /// management (the outermost `kwq::blocking`, a CPU-intensive item):
    /// it uncounts itself, unless the monitor presumed it blocked and
    /// uncounted it already (`Presence`), and the pool gets a replacement
    /// if work waits.
    pub(crate) fn leave_running(self: &PoolArc<Self>, me: &WorkerShared) {
        me.blocked.store(true, Relaxed);
        if me.presence.leave() {
            self.enter_blocking();
        }
    }

    /// Undoes [`leave_running`](Self::leave_running): counts first, then
    /// says so (the `Presence` rules).
    pub(crate) fn rejoin_running(&self, me: &WorkerShared) {
        self.exit_blocking();
        me.presence.rejoin();
        me.blocked.store(false, Relaxed);
    }

    /// The monitor presumes `w` blocked outside `kwq::blocking`: uncounts
    /// it if it is executing an item and counted (under the idle lock, which
    /// `go_idle` holds for its own transition). The caller kicks the pool.
    pub(crate) fn presume_blocked(&self, w: &WorkerShared) -> bool {
        let idle = self.idle.lock();
        let skip_check = seeded_bug(self, SeededBug::PresumeListed);
        if !skip_check
            && (idle.iter().any(|x| std::ptr::eq(&**x, w)) || w.cur_wq.load(Relaxed) == 0)
        {
            return false;
        }
        let done = w.presence.presume(&self.nr_running);
        drop(idle);
        done
    }

    /// The monitor saw a presumed worker make progress: counts it back in
    /// unless it settled the presumption itself.
    pub(crate) fn release_presumed(&self, w: &WorkerShared) -> bool {
        w.presence.release(&self.nr_running)
    }

    /// Marks the pool as dying: idle workers exit once the worklist is empty.
    pub(crate) fn shutdown(&self) {
        self.dying.store(true, SeqCst);
        self.sleep().unpark_idle();
    }

    pub(crate) fn is_dying(&self) -> bool {
        self.dying.load(Acquire)
    }

    pub(crate) fn concurrency(&self) -> Concurrency {
        self.concurrency
    }
}
