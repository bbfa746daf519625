//! The worker thread: its main loop and both of its halves of the idle
//! handshake. What a task *is* and what running one means is the
//! [`Schedule`]'s business (`exec.rs` for the runtime).
//!
//! ```text
//!   S::worker_started
//!   loop {
//!       sleep until woken                         (idle list, see pool/mod.rs)
//!       manage: keep one idle worker in reserve   (may_start_working)
//!       while a task can be popped:
//!           S::run(task)
//!           stop if over the concurrency target   (keep_working)
//!       spin briefly for more work; S::batch_done; go idle
//!   }
//!   S::worker_exiting
//! ```
//!
//! Invariant: `S::run` never unwinds (the schedule contains whatever user
//! code it runs), so the loop always reaches `go_idle` and its counters
//! stay exact. This very function is what loom runs in
//! `tests/loom_worker.rs`, with a test schedule.

use super::{Pool, Schedule, WorkerShared};
use crate::sync::atomic::Ordering::*;
use crate::sync::{hint, Arc, Parker, PoolArc};

/// How many empty polls a worker makes before it parks. Between polls it
/// spins `2^min(poll, MAX_BACKOFF_SHIFT)` pauses (yielding instead every
/// 16th poll): about 2,600 pauses in all. Few, spaced polls matter more
/// than the total: every poll of an empty worklist reads the line the
/// producer pushes to, so polling often slows the very producer the worker
/// waits for (BENCHMARKS.md, session 10: 64 polls of up to 64 pauses, 2,800
/// in all, measured 5–12% lower `spawn` throughput, with the same wake-up
/// latency).
#[cfg(not(kwq_loom))]
const SPIN_POLLS: u32 = 16;
/// Cap on the backoff between empty polls (256 pauses).
const MAX_BACKOFF_SHIFT: u32 = 8;
/// Under loom a worker goes idle at its first empty poll. Each further
/// poll (and its yields) costs the model preemptions to get past: with one
/// poll, `LOOM_MAX_PREEMPTIONS=2` (CI's bound) no longer finds the seeded
/// lost wake-up of `tests/loom_worker.rs`.
#[cfg(kwq_loom)]
const SPIN_POLLS: u32 = 0;

/// A worker thread's body, from its start (listed idle by its creator) to
/// its exit.
pub(super) fn main<S: Schedule>(pool: PoolArc<Pool<S>>, me: Arc<WorkerShared>, parker: Parker) {
    if pool.attrs.highpri {
        crate::sync::raise_thread_priority();
    }
    set_tid(&me);
    let ctx = S::worker_started(&pool, &me);
    // A new worker starts on the idle list (registered by its creator).
    while wait_woken(&pool, &me, &parker) {
        // Off the idle list: the monitor may have work again.
        pool.cfg.left_idle();
        // We left the idle list: make sure somebody is in reserve.
        if pool.sleep().none_idle() {
            pool.manage();
        }
        run_until_idle(&pool, &me, &ctx);
        S::batch_done(&ctx);
        go_idle(&pool, &me);
    }
    me.exited.store(true, Release);
    // Out of the pool already: whatever the schedule does here delays
    // nobody.
    S::worker_exiting(pool, ctx);
}

/// Records the calling thread's kernel id in `me` (the pool monitor reads
/// the thread's state through it).
pub(crate) fn set_tid(me: &WorkerShared) {
    #[cfg(all(target_os = "linux", not(kwq_loom)))]
    // SAFETY: gettid has no preconditions.
    me.tid.store(unsafe { libc::gettid() }, Relaxed);
    #[cfg(not(all(target_os = "linux", not(kwq_loom))))]
    let _ = me;
}

/// Processes tasks while the pool wants this worker running.
fn run_until_idle<S: Schedule>(pool: &PoolArc<Pool<S>>, me: &WorkerShared, ctx: &S::Worker) {
    let mut polls = 0;
    loop {
        match pool.worklist.pop() {
            Some(task) => {
                polls = 0;
                // Only this worker writes `executed`: no RMW needed.
                me.executed
                    .store(me.executed.load(Relaxed).wrapping_add(1), Relaxed);
                S::run(pool, me, ctx, task);
                // keep_working: leave if more workers run than the target
                // (a blocked worker came back).
                if pool.sleep().over_target() {
                    return;
                }
            }
            None => {
                polls += 1;
                if polls > SPIN_POLLS || pool.is_dying() {
                    return;
                }
                if polls % 16 == 0 {
                    crate::sync::thread::yield_now();
                } else {
                    for _ in 0..(1u32 << polls.min(MAX_BACKOFF_SHIFT)) {
                        hint::spin_loop();
                    }
                }
            }
        }
    }
}

/// The worker half of the sleep/wake handshake (`Sleep::go_idle`).
fn go_idle<S: Schedule>(pool: &Pool<S>, me: &Arc<WorkerShared>) {
    pool.sleep().go_idle(me.clone());
}

/// Parks until taken off the idle list (`Sleep::wait_woken`). Returns false
/// when the worker must exit (reaped by the idle timeout, or the pool is
/// dying).
fn wait_woken<S: Schedule>(pool: &Pool<S>, me: &Arc<WorkerShared>, parker: &Parker) -> bool {
    pool.sleep().wait_woken(
        me,
        parker,
        pool.cfg.idle_timeout(),
        || !pool.worklist.is_empty(),
        || pool.is_dying(),
    )
}
