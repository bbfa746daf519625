//! The pool monitor: blocking nobody announced.
//!
//! cmwq learns from the scheduler the instant a worker sleeps
//! (`wq_worker_sleeping`) and wakes another. In userspace a work function
//! that blocks in a plain `read()`, a std `Mutex`, a `Condvar` or
//! `thread::sleep` is invisible to the pool unless it goes through
//! [`blocking`](crate::blocking): the pool still counts it as running, and
//! enough of them stall it. One monitor thread per runtime (the way Go's
//! sysmon retakes a processor from a thread stuck in a syscall, and .NET's
//! thread pool injects threads on starvation) watches for that and
//! *presumes* such a worker blocked: it uncounts it, exactly as `blocking`
//! would (protocol in `presence.rs`), so the pool wakes or creates another
//! worker; when the worker makes progress again, the monitor counts it back
//! in, and the surplus workers retire as they would after `blocking`.
//!
//! # Detection
//!
//! Every tick, for every concurrency-managed pool with work waiting (an idle
//! worker does not help: nobody wakes it while the pool counts enough
//! workers as running), each worker that executes an item, is not already out of
//! the count, and has not finished an item since the previous tick is a
//! candidate. On Linux the candidate is blocked when its thread is asleep
//! (state `S` or `D` in `/proc/self/task/TID/stat`) and used under a
//! quarter of a CPU since the previous tick (from the first field of
//! `/proc/self/task/TID/schedstat`, nanoseconds on a CPU): a wait that
//! polls with short sleeps stays far below that, while a thread running on
//! a CPU, or mostly running, is never counted as blocked, so a 200 ms
//! CPU-bound item adds no worker. Elsewhere there is no such view of
//! another thread, and a candidate is blocked after `FALLBACK_STUCK`
//! (20 ms) without finishing an item.
//!
//! # Bounds
//!
//! While the pool has at most 4 × concurrency workers a blocked candidate
//! is presumed at once (one to two ticks after it blocked). Beyond that the
//! candidate must have been stuck for longer — 10 ms up to 8 × concurrency,
//! 50 ms up to 16 ×, 250 ms beyond — and a pool at its worker cap with no
//! idle worker is left alone (a new worker could not be created anyway;
//! the watchdog reports such a stall).
//!
//! # Cost
//!
//! The tick is 1 ms while, with work waiting, some worker is still on the
//! item it was on at the previous look (a candidate); 10 ms while workers
//! are busy or work waits but every worker finishes items between looks
//! (so a new stall is seen within about 10 ms + two 1 ms looks); and,
//! once every pool was idle at ten looks in a row, the monitor sleeps —
//! woken by the first worker to leave an idle list — until work comes
//! back. (Going to that sleep at the first idle look made every job of a
//! pool that is idle between jobs pay a wake-up of the monitor.) `/proc` is read
//! only for candidates (a worker stuck on one item for a whole tick while
//! work waits): in a pool whose items finish, the monitor reads a few
//! counters per tick and nothing else.

use crate::exec::{Pool, WorkerShared};
use crate::report::{Warning, WarningKind};
use crate::runtime::RuntimeInner;
use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::{downgrade, thread, Arc, Condvar, Mutex, Weak};
use kwq_policy::Concurrency;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Tick while, with work waiting, some worker is still on the item it was
/// on at the previous look (a candidate).
const TICK_STARVED: Duration = Duration::from_millis(1);
/// Tick while workers are busy and nothing waits.
const TICK_BUSY: Duration = Duration::from_millis(10);
/// Longest sleep while every pool is idle (a safety net: a worker leaving
/// an idle list wakes the monitor).
const TICK_IDLE: Duration = Duration::from_secs(1);
/// Idle looks, `TICK_BUSY` apart, before the monitor sleeps until a worker
/// wakes it: a pool that gets a job every millisecond (and is idle at
/// almost every look) then costs one wake-up of the monitor per 100 ms,
/// not one per job on the path of the worker that runs it.
const IDLE_GRACE_LOOKS: u32 = 10;
/// Off Linux: how long a candidate must go without finishing an item.
#[cfg(not(target_os = "linux"))]
const FALLBACK_STUCK: Duration = Duration::from_millis(20);
/// At most one detection report per pool per this period (with a count).
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How the monitor is woken from its idle sleep.
#[derive(Debug, Default)]
pub(crate) struct MonitorSignal {
    asleep: AtomicBool,
    lock: Mutex<bool>,
    cv: Condvar,
}

impl MonitorSignal {
    /// A worker left an idle list: wake the monitor if it sleeps.
    /// (Dekker with `sleep`: the waker's SeqCst increment of `nr_running`
    /// came before this SeqCst load; the monitor's SeqCst store of `asleep`
    /// comes before its SeqCst loads of the pools' counters.)
    #[inline]
    pub(crate) fn hint(&self) {
        if self.asleep.load(SeqCst) {
            self.wake();
        }
    }

    /// The runtime is going away: wake the monitor so it exits now.
    pub(crate) fn shutdown(&self) {
        self.wake();
    }

    fn wake(&self) {
        let mut pending = self.lock.lock();
        *pending = true;
        self.asleep.store(false, SeqCst);
        drop(pending);
        self.cv.notify_one();
    }

    /// Sleeps up to `d`, or until [`hint`](Self::hint) if `idle`.
    fn sleep(&self, d: Duration, idle: impl Fn() -> bool) {
        if !idle() {
            thread::sleep(d);
            return;
        }
        self.asleep.store(true, SeqCst);
        if !idle() {
            self.asleep.store(false, SeqCst);
            return;
        }
        let mut pending = self.lock.lock();
        if !*pending {
            pending = self.cv.wait_timeout(pending, d);
        }
        *pending = false;
        drop(pending);
        self.asleep.store(false, SeqCst);
    }
}

/// What the monitor remembers of a worker between ticks.
struct Watch {
    executed: u64,
    since: Instant,
    /// On-CPU nanoseconds and the time of the previous look (Linux), if
    /// looked at.
    run_ns: Option<(u64, Instant)>,
}

/// A thread using less than this share of a CPU since the previous look,
/// and asleep when looked at, is blocked: a wait that polls (a loop of
/// short sleeps) wakes now and then but stays far below it, a CPU-bound
/// item stays far above.
const BLOCKED_CPU_SHARE: f64 = 0.25;

struct PoolReports {
    last: Option<Instant>,
    suppressed: u64,
}

/// Starts the monitor thread of `rt`.
pub(crate) fn start(rt: &Arc<RuntimeInner>) {
    let weak: Weak<RuntimeInner> = downgrade(rt);
    let name = format!("{}/monitor", rt.cfg.thread_name);
    if let Err(e) = thread::Builder::new().name(name).spawn(move || run(&weak)) {
        rt.cfg.warn(Warning::new(
            WarningKind::ThreadSpawnFailed,
            format!("could not start the pool monitor (blocking outside kwq::blocking will not be detected): {e}"),
        ));
    }
}

fn run(rt: &Weak<RuntimeInner>) {
    let mut watches: HashMap<(usize, usize), Watch> = HashMap::new();
    let mut reports: HashMap<usize, PoolReports> = HashMap::new();
    let mut idle_looks = 0u32;
    loop {
        let Some(inner) = rt.upgrade() else { return };
        let pools = inner.pools();
        let signal = inner.cfg.monitor.clone();
        drop(inner);
        let now = Instant::now();
        let mut starved = false;
        let mut busy = false;
        for pool in &pools {
            if matches!(pool.concurrency(), Concurrency::Unmanaged) {
                continue;
            }
            let (b, s) = tick(pool, now, &mut watches, &mut reports);
            busy |= b;
            starved |= s;
        }
        if watches.len() > 4096 {
            // Forget workers that exited.
            watches.retain(|_, w| now.duration_since(w.since) < Duration::from_secs(60));
        }
        let all_idle = || {
            pools
                .iter()
                .all(|p| p.snapshot().nr_running == 0 && p.worklist.is_empty())
        };
        idle_looks = if !starved && !busy && all_idle() {
            idle_looks.saturating_add(1)
        } else {
            0
        };
        let period = if starved {
            TICK_STARVED
        } else if busy || idle_looks < IDLE_GRACE_LOOKS {
            TICK_BUSY
        } else {
            TICK_IDLE
        };
        signal.sleep(period, || {
            !starved && !busy && idle_looks >= IDLE_GRACE_LOOKS && all_idle()
        });
        drop(pools);
    }
}

/// One look at `pool`. Returns (busy, a candidate worker is stuck on one
/// item while work waits).
fn tick(
    pool: &Arc<Pool>,
    now: Instant,
    watches: &mut HashMap<(usize, usize), Watch>,
    reports: &mut HashMap<usize, PoolReports>,
) -> (bool, bool) {
    let snap = pool.snapshot();
    let workers: Vec<Arc<WorkerShared>> = pool.workers.lock().clone();
    let presumed_any = workers.iter().any(|w| w.presence.is_presumed());
    let busy = snap.nr_running > 0 || presumed_any;
    // Presumed workers that made progress are counted back in.
    for w in workers.iter().filter(|w| w.presence.is_presumed()) {
        let key = (pool.id, w.id);
        let executed = w.executed.load(Relaxed);
        let moved_on = w.cur_wq.load(Relaxed) == 0
            || watches.get(&key).is_none_or(|wt| wt.executed != executed)
            || on_cpu_since(w, watches.get_mut(&key));
        if moved_on {
            let _ = pool.release_presumed(w);
        }
    }
    // Work waits: with every counted worker busy, an idle worker is not
    // woken either (the pool believes enough run), so idle ones do not
    // make the pool unstarved.
    let starved = snap.worklist_nonempty;
    if !starved {
        return (busy, false);
    }
    // No worker at all (creation failed): try again, backed off by the pool.
    pool.retry_if_workerless();
    let target = snap.concurrency.target().max(1);
    let required = match snap.nr_workers {
        n if n <= 4 * target => Duration::ZERO,
        n if n <= 8 * target => Duration::from_millis(10),
        n if n <= 16 * target => Duration::from_millis(50),
        _ => Duration::from_millis(250),
    };
    let at_cap = snap.nr_workers >= snap.max_workers && snap.nr_idle == 0;
    let mut stuck = false;
    for w in &workers {
        if w.exited.load(Relaxed)
            || w.cur_wq.load(Relaxed) == 0
            || w.presence.is_presumed()
            || w.presence.is_self_blocked()
        {
            continue;
        }
        let key = (pool.id, w.id);
        let executed = w.executed.load(Relaxed);
        let fresh = !watches.contains_key(&key);
        let watch = watches.entry(key).or_insert(Watch {
            executed,
            since: now,
            run_ns: None,
        });
        if watch.executed != executed {
            *watch = Watch {
                executed,
                since: now,
                run_ns: None,
            };
            continue;
        }
        // On one item since the previous look: look again soon.
        stuck |= !fresh;
        if !looks_blocked(w, watch) || now.duration_since(watch.since) < required || at_cap {
            continue;
        }
        if pool.presume_blocked(w) {
            report(pool, w, now.duration_since(watch.since), now, reports);
            pool.kick();
        }
    }
    (true, stuck)
}

/// Samples the worker's thread: its state now, and the share of a CPU it
/// used since the previous sample (`None` at the first). Updates the watch.
#[cfg(target_os = "linux")]
fn sample(w: &WorkerShared, watch: &mut Watch) -> Option<(u8, Option<f64>)> {
    let (state, run_ns) = thread_sample(w)?;
    let now = Instant::now();
    let share = watch.run_ns.map(|(before, at)| {
        let wall = now.duration_since(at).as_nanos().max(1) as f64;
        run_ns.saturating_sub(before) as f64 / wall
    });
    watch.run_ns = Some((run_ns, now));
    Some((state, share))
}

/// Is the candidate asleep now, having used (almost) no CPU since the
/// previous look?
#[cfg(target_os = "linux")]
fn looks_blocked(w: &WorkerShared, watch: &mut Watch) -> bool {
    match sample(w, watch) {
        Some((state, Some(share))) => matches!(state, b'S' | b'D') && share < BLOCKED_CPU_SHARE,
        _ => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn looks_blocked(_w: &WorkerShared, watch: &mut Watch) -> bool {
    watch.since.elapsed() >= FALLBACK_STUCK
}

/// Is a presumed worker running again (on a CPU now, or busy since the
/// previous look)?
#[cfg(target_os = "linux")]
fn on_cpu_since(w: &WorkerShared, watch: Option<&mut Watch>) -> bool {
    let Some(watch) = watch else { return false };
    match sample(w, watch) {
        Some((state, share)) => state == b'R' || share.is_some_and(|s| s >= BLOCKED_CPU_SHARE),
        None => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn on_cpu_since(_w: &WorkerShared, _watch: Option<&mut Watch>) -> bool {
    false
}

/// The worker thread's scheduler state and its nanoseconds on a CPU.
#[cfg(target_os = "linux")]
fn thread_sample(w: &WorkerShared) -> Option<(u8, u64)> {
    let tid = w.tid.load(Relaxed);
    if tid <= 0 {
        return None;
    }
    let stat = std::fs::read(format!("/proc/self/task/{tid}/stat")).ok()?;
    // "TID (COMM) S ...": COMM may hold spaces and parentheses; the state
    // follows the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let state = *stat.get(close + 2)?;
    let sched = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let run_ns = sched.split_ascii_whitespace().next()?.parse().ok()?;
    Some((state, run_ns))
}

fn report(
    pool: &Pool,
    w: &WorkerShared,
    stuck: Duration,
    now: Instant,
    reports: &mut HashMap<usize, PoolReports>,
) {
    let r = reports.entry(pool.id).or_insert(PoolReports {
        last: None,
        suppressed: 0,
    });
    if r.last.is_some_and(|t| now.duration_since(t) < REPORT_EVERY) {
        r.suppressed += 1;
        return;
    }
    let item = w
        .cur_item
        .lock()
        .as_ref()
        .map(|i| format!("work '{}'", i.item_name()))
        .unwrap_or_else(|| "a job".to_string());
    let mut msg = format!(
        "pool {}: worker {} blocked in {item} for {} ms outside kwq::blocking; another worker \
         takes its place",
        pool.name(),
        w.id,
        stuck.as_millis()
    );
    if r.suppressed > 0 {
        msg.push_str(&format!(" ({} more since the last report)", r.suppressed));
    }
    r.last = Some(now);
    r.suppressed = 0;
    pool.cfg.warn(Warning::new(WarningKind::BlockedWorker, msg));
}
