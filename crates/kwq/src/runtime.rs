//! The runtime: a set of worker pools, created on demand, one per distinct
//! set of pool attributes (normal, high priority, unbound, unbound high
//! priority).
//!
//! Most programs use the global runtime implicitly (every
//! [`Workqueue::builder`](crate::Workqueue::builder) defaults to it, and so
//! do [`system`](fn@crate::system) and friends). A separate [`Runtime`] is
//! useful to isolate tests or benchmarks, or to bound a subsystem's threads.
//!
//! An idle runtime never keeps a process from exiting: its workers are
//! ordinary detached threads parked on a futex, and idle workers beyond a
//! small reserve exit after the idle timeout. Dropping the last handle of a
//! non-global runtime (and every workqueue built on it) lets its workers
//! exit once their worklists are empty.

use crate::builder::RuntimeBuilder;
use crate::error::BuildError;
use crate::exec::Pool;
use crate::pool::PoolAttrs;
use crate::sync::atomic::Ordering::*;
use crate::sync::{downgrade, Arc, Mutex, Unparker, Weak};
use crate::workqueue::WqInner;
use std::any::Any;
use std::fmt::Write as _;
use std::time::Duration;

use crate::report::{Hooks, PanicReport, Warning};
use crate::watchdog::LockupReport;

/// Settings shared by a runtime's pools.
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) hooks: Hooks,
    /// Starts worker threads (default: `std::thread::Builder`).
    pub(crate) spawn_handler: Option<crate::spawn::SpawnHandler>,
    /// Wakes the pool monitor (unused when it is off).
    pub(crate) monitor: Arc<crate::monitor::MonitorSignal>,
}

impl Config {
    pub(crate) fn report_panic(&self, work: &str, wq: &str, payload: Box<dyn Any + Send>) {
        let warning = self.hooks.warning.clone();
        self.hooks
            .panic(PanicReport::new(work, wq, payload, warning));
    }

    pub(crate) fn warn(&self, w: Warning) {
        self.hooks.warn(w);
    }
}

pub(crate) struct RuntimeInner {
    pub(crate) cfg: Arc<Config>,
    pools: Mutex<Vec<Arc<Pool>>>,
    wqs: Mutex<Vec<Weak<WqInner>>>,
    /// Wakes the lockup watchdog, if any, so that it exits with the runtime
    /// instead of sleeping out its period first.
    pub(crate) watchdog: Mutex<Option<Unparker>>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.lock().take() {
            w.unpark();
        }
        for p in self.pools.lock().iter() {
            p.shutdown();
        }
        self.cfg.monitor.shutdown();
    }
}

impl RuntimeInner {
    pub(crate) fn new(cfg: Config) -> Self {
        RuntimeInner {
            cfg: Arc::new(cfg),
            pools: Mutex::new(Vec::new()),
            wqs: Mutex::new(Vec::new()),
            watchdog: Mutex::new(None),
        }
    }

    /// Every pool created so far.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.lock().clone()
    }

    pub(crate) fn report_lockup(&self, report: &LockupReport) {
        self.cfg.hooks.lockup(report);
    }

    /// The pool with `attrs`, created on first use.
    pub(crate) fn pool(&self, attrs: PoolAttrs) -> Result<Arc<Pool>, BuildError> {
        let mut pools = self.pools.lock();
        if let Some(p) = pools.iter().find(|p| p.attrs == attrs) {
            return Ok(p.clone());
        }
        let p = Pool::new(pools.len(), attrs, self.cfg.clone());
        pools.push(p.clone());
        Ok(p)
    }

    /// Adds `wq` to the runtime's list (dumps, `running_on`). Dropped and
    /// dead queues are pruned only when the list is full — then, if it is
    /// still more than half full, its room doubles — so each build costs
    /// O(1) amortized instead of a scan of every queue ever built (building
    /// n queues was O(n²)), and the list holds at most about twice the live
    /// queues.
    pub(crate) fn register(&self, wq: &Arc<WqInner>) {
        let mut wqs = self.wqs.lock();
        if wqs.len() == wqs.capacity() {
            wqs.retain(|w| w.upgrade().is_some_and(|w| !w.is_dead()));
            if wqs.len() * 2 > wqs.capacity() {
                let more = wqs.capacity().max(8);
                wqs.reserve(more);
            }
        }
        wqs.push(downgrade(wq));
    }

    /// Entries in the list, dead ones included (tests).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.wqs.lock().len()
    }

    fn live_wqs(&self) -> Vec<Arc<WqInner>> {
        self.wqs.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Names of what workers are executing for workqueue `id`.
    pub(crate) fn running_on(&self, id: u64) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.pools.lock().iter() {
            for w in p.workers.lock().iter() {
                if w.cur_wq.load(Relaxed) == id {
                    let name = w
                        .cur_item
                        .lock()
                        .as_ref()
                        .map(|i| i.item_name().to_string())
                        .unwrap_or_else(|| "<job>".to_string());
                    out.push(name);
                }
            }
        }
        out
    }

    fn wq_name(&self, id: u64) -> String {
        self.live_wqs()
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name().to_string())
            .unwrap_or_else(|| format!("#{id}"))
    }
}

/// A set of worker pools, created on demand, one per distinct set of pool
/// attributes (normal, high priority, unbound, unbound high priority).
///
/// Most programs use the global runtime ([`Runtime::global`]) implicitly:
/// every builder defaults to it, and so do [`system`](fn@crate::system) and
/// friends. A separate runtime isolates a subsystem's threads, settings and
/// hooks (tests, benchmarks, a library that must not share).
///
/// An idle runtime never keeps a process from exiting: its workers are
/// detached threads, and idle workers beyond a small reserve exit after the
/// idle timeout. When the last handle of a non-global runtime (and every
/// workqueue built on it) is dropped, its workers exit once their worklists
/// are empty.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let rt = kwq::RuntimeBuilder::new()
///     .concurrency(2)
///     .thread_name("storage")
///     .on_warning(|w| eprintln!("kwq: {w}"))
///     .build()?;
/// let wq = kwq::Workqueue::builder("io").runtime(&rt).build()?;
/// let n = Arc::new(AtomicUsize::new(0));
/// let n2 = n.clone();
/// wq.queue_fn(move || {
///     n2.fetch_add(1, Ordering::Relaxed);
/// });
/// wq.flush();
/// assert_eq!(n.load(Ordering::Relaxed), 1);
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

// Usable after a caught panic: hooks and user code never run while a
// runtime lock is held.
impl std::panic::UnwindSafe for Runtime {}
impl std::panic::RefUnwindSafe for Runtime {}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("concurrency", &self.inner.cfg.concurrency)
            .field("max_workers", &self.inner.cfg.max_workers)
            .finish()
    }
}

impl Runtime {
    /// Starts building a runtime; the same as [`RuntimeBuilder::new`].
    #[deprecated(
        since = "0.1.1",
        note = "use `RuntimeBuilder::new()`: one way to get a builder"
    )]
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// The process-wide runtime, created on first use (unless
    /// [`RuntimeBuilder::build_global`] created it first). Its concurrency,
    /// worker cap and watchdog threshold come from `KWQ_CONCURRENCY`,
    /// `KWQ_MAX_WORKERS` and `KWQ_WATCHDOG_SECS` when set; a value that does
    /// not parse is ignored and reported through `tracing`.
    pub fn global() -> &'static Runtime {
        crate::builder::global()
    }

    /// The concurrency target of the runtime's managed pools.
    pub fn concurrency(&self) -> usize {
        self.inner.cfg.concurrency
    }

    /// A human-readable dump of every pool and busy workqueue (kernel
    /// `show_workqueue_state`): workers and what they execute (blocked or
    /// not), worklist lengths, and per workqueue how many of its items run,
    /// its `max_active`, and its inactive and in-flight counts.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Showing kwq pools and busy workqueues:");
        let pools: Vec<_> = self.inner.pools.lock().clone();
        for p in &pools {
            let s = p.snapshot();
            let _ = writeln!(
                out,
                "pool {}: concurrency={:?} workers={} idle={} running={} worklist={}",
                p.name(),
                p.concurrency(),
                s.nr_workers,
                s.nr_idle,
                s.nr_running,
                p.worklist.len()
            );
            for w in p.workers.lock().iter() {
                if w.exited.load(Relaxed) {
                    continue;
                }
                let wq = w.cur_wq.load(Relaxed);
                if wq == 0 {
                    continue;
                }
                let item = w
                    .cur_item
                    .lock()
                    .as_ref()
                    .map(|i| format!("work '{}'", i.item_name()))
                    .unwrap_or_else(|| "<job>".to_string());
                let blocked = if w.blocked.load(Relaxed) {
                    " [blocked]"
                } else if w.presence.is_presumed() {
                    " [blocked outside kwq::blocking]"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  worker {}: {item} on '{}' ({} executed){blocked}",
                    w.id,
                    self.inner.wq_name(wq),
                    w.executed.load(Relaxed)
                );
            }
        }
        for wq in self.inner.live_wqs() {
            if wq.colors.in_flight() == 0 || wq.is_dead() {
                continue;
            }
            let (_, inactive) = wq.admission.counts();
            let running = self.inner.running_on(wq.id).len();
            let _ = writeln!(
                out,
                "workqueue '{}' (pool {}): running={} max_active={} inactive={} in_flight={}{}",
                wq.name(),
                wq.pool.name(),
                running,
                wq.admission.max_active(),
                inactive,
                wq.colors.in_flight(),
                if wq.is_draining() { " [draining]" } else { "" }
            );
            let waiting = wq
                .admission
                .describe_inactive(8, crate::task::Task::describe);
            if !waiting.is_empty() {
                let _ = writeln!(out, "  inactive: {}", waiting.join(", "));
            }
        }
        out
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    /// Building and dropping many queues keeps the runtime's list within
    /// about twice the live queues (it is pruned when full).
    #[test]
    fn the_queue_list_stays_near_the_live_queues() {
        let rt = crate::RuntimeBuilder::new().concurrency(1).build().unwrap();
        let keep: Vec<crate::Workqueue> = (0..10)
            .map(|i| {
                crate::Workqueue::builder(format!("keep{i}"))
                    .runtime(&rt)
                    .build()
                    .unwrap()
            })
            .collect();
        for i in 0..5_000 {
            let q = crate::Workqueue::builder(format!("tmp{i}"))
                .runtime(&rt)
                .build()
                .unwrap();
            drop(q);
            let n = rt.inner.registered();
            assert!(n <= 64, "{n} entries for 11 live queues after {i} builds");
        }
        assert_eq!(keep.len(), 10);
    }
}
