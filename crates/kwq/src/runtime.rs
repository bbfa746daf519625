//! The runtime: a set of worker pools, created on demand, one per distinct
//! set of pool attributes (normal, high priority, unbound, unbound high
//! priority).
//!
//! Most programs use the global runtime implicitly (every
//! [`Workqueue::builder`](crate::Workqueue::builder) defaults to it, and so
//! do [`system`](crate::system) and friends). A separate [`Runtime`] is
//! useful to isolate tests or benchmarks, or to bound a subsystem's threads.
//!
//! An idle runtime never keeps a process from exiting: its workers are
//! ordinary detached threads parked on a futex, and idle workers beyond a
//! small reserve exit after the idle timeout. Dropping the last handle of a
//! non-global runtime (and every workqueue built on it) lets its workers
//! exit once their worklists are empty.

use crate::error::BuildError;
use crate::pool::{Pool, PoolAttrs};
use crate::sync::atomic::Ordering::*;
use crate::sync::{downgrade, Arc, Mutex, Weak};
use crate::workqueue::WqInner;
use std::any::Any;
use std::fmt::Write as _;
use std::time::Duration;

/// What a panic handler is told about a panicking work function.
#[derive(Debug)]
pub struct PanicReport {
    work: String,
    workqueue: String,
    message: String,
}

impl PanicReport {
    /// Name of the work item (`<job>` for a one-shot closure).
    pub fn work(&self) -> &str {
        &self.work
    }
    /// Name of the workqueue it was queued on.
    pub fn workqueue(&self) -> &str {
        &self.workqueue
    }
    /// The panic message, if it was a string.
    pub fn message(&self) -> &str {
        &self.message
    }
}

type PanicHandler = Arc<dyn Fn(&PanicReport) + Send + Sync + 'static>;
use crate::watchdog::{LockupHandler, LockupReport};

/// Settings shared by a runtime's pools.
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) thread_name: String,
    panic_handler: Option<PanicHandler>,
    lockup_handler: Option<LockupHandler>,
}

impl Config {
    pub(crate) fn report_panic(&self, work: &str, wq: &str, payload: Box<dyn Any + Send>) {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_string()
        };
        let report = PanicReport {
            work: work.to_string(),
            workqueue: wq.to_string(),
            message,
        };
        match &self.panic_handler {
            Some(h) => {
                // A panicking handler must not take the worker down.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&report)));
            }
            None => eprintln!(
                "kwq: work item '{}' on workqueue '{}' panicked: {}",
                report.work, report.workqueue, report.message
            ),
        }
        drop(payload);
    }
}

pub(crate) struct RuntimeInner {
    pub(crate) cfg: Arc<Config>,
    pools: Mutex<Vec<Arc<Pool>>>,
    wqs: Mutex<Vec<Weak<WqInner>>>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        for p in self.pools.lock().iter() {
            p.shutdown();
        }
    }
}

impl RuntimeInner {
    /// Every pool created so far.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.lock().clone()
    }

    pub(crate) fn report_lockup(&self, report: &LockupReport) {
        match &self.cfg.lockup_handler {
            Some(h) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(report)));
            }
            None => eprintln!("kwq: {report}"),
        }
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

    pub(crate) fn register(&self, wq: &Arc<WqInner>) {
        let mut wqs = self.wqs.lock();
        wqs.retain(|w| w.upgrade().is_some_and(|w| !w.is_dead()));
        wqs.push(downgrade(wq));
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
                        .cur_work
                        .lock()
                        .as_ref()
                        .map(|i| i.name().to_string())
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

/// A set of worker pools. The global runtime, and what dropping a runtime
/// does, are described in the crate's `runtime` module docs (README and
/// `docs/design.md`).
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("concurrency", &self.inner.cfg.concurrency)
            .field("max_workers", &self.inner.cfg.max_workers)
            .finish()
    }
}

/// Builds a [`Runtime`].
#[must_use]
pub struct RuntimeBuilder {
    concurrency: Option<usize>,
    max_workers: Option<usize>,
    idle_timeout: Duration,
    thread_name: String,
    panic_handler: Option<PanicHandler>,
    watchdog: Option<Duration>,
    lockup_handler: Option<LockupHandler>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("concurrency", &self.concurrency)
            .field("max_workers", &self.max_workers)
            .field("idle_timeout", &self.idle_timeout)
            .field("thread_name", &self.thread_name)
            .field("watchdog", &self.watchdog)
            .finish()
    }
}

impl RuntimeBuilder {
    /// Lockup watchdog threshold (kernel `workqueue.watchdog_thresh`):
    /// report a pool whose worklist is non-empty and whose workers took
    /// nothing from it for this long. Default 30 s; `None` disables it.
    /// For the global runtime, `KWQ_WATCHDOG_SECS` (0 disables).
    pub fn watchdog(mut self, thresh: Option<Duration>) -> Self {
        self.watchdog = thresh;
        self
    }

    /// Called with each lockup report (default: the report and a state dump
    /// on stderr).
    pub fn lockup_handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&LockupReport) + Send + Sync + 'static,
    {
        self.lockup_handler = Some(Arc::new(f));
        self
    }

    /// Workers each concurrency-managed pool keeps *running* (default: the
    /// number of CPUs; for the global runtime, `KWQ_CONCURRENCY` if set).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Cap on worker threads per pool (default `max(64, 8 × concurrency)`;
    /// for the global runtime, `KWQ_MAX_WORKERS` if set). Blocked workers
    /// count: a pool at its cap whose workers all block stalls, which the
    /// dump makes visible.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// How long a surplus idle worker lingers before exiting (default 300 s,
    /// kernel `IDLE_WORKER_TIMEOUT`).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Prefix of worker thread names (default `kwq`); threads are named
    /// `PREFIX/POOL:ID`, e.g. `kwq/normal0:3`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Called when a work function panics (default: a line on stderr naming
    /// the item and workqueue). The worker survives either way.
    pub fn panic_handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&PanicReport) + Send + Sync + 'static,
    {
        self.panic_handler = Some(Arc::new(f));
        self
    }

    /// Creates the runtime. Pools start lazily, when the first workqueue
    /// that needs them is built.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let concurrency = self.concurrency.unwrap_or_else(default_concurrency);
        if concurrency == 0 {
            return Err(BuildError::concurrency(0));
        }
        let max_workers = self.max_workers.unwrap_or((8 * concurrency).max(64));
        if max_workers < 2 {
            return Err(BuildError::max_workers(max_workers));
        }
        let inner = Arc::new(RuntimeInner {
            cfg: Arc::new(Config {
                concurrency,
                max_workers,
                idle_timeout: self.idle_timeout,
                thread_name: self.thread_name,
                panic_handler: self.panic_handler,
                lockup_handler: self.lockup_handler,
            }),
            pools: Mutex::new(Vec::new()),
            wqs: Mutex::new(Vec::new()),
        });
        if let Some(thresh) = self.watchdog.filter(|d| !d.is_zero()) {
            crate::watchdog::start(&inner, thresh);
        }
        Ok(Runtime { inner })
    }
}

fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn env_usize(var: &str) -> Option<usize> {
    let v = std::env::var(var).ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("kwq: ignoring {var}={v:?}: not a whole number");
            None
        }
    }
}

static GLOBAL: crate::sync::OnceLock<Runtime> = crate::sync::OnceLock::new();

impl Runtime {
    /// Starts building a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            concurrency: None,
            max_workers: None,
            idle_timeout: Duration::from_secs(300),
            thread_name: "kwq".to_string(),
            panic_handler: None,
            watchdog: Some(Duration::from_secs(30)),
            lockup_handler: None,
        }
    }

    /// The process-wide runtime, created on first use. Its concurrency and
    /// worker cap come from `KWQ_CONCURRENCY` and `KWQ_MAX_WORKERS` when set.
    pub fn global() -> &'static Runtime {
        GLOBAL.get_or_init(|| {
            let mut b = Runtime::builder();
            if let Some(n) = env_usize("KWQ_CONCURRENCY").filter(|&n| n > 0) {
                b = b.concurrency(n);
            }
            if let Some(n) = env_usize("KWQ_MAX_WORKERS").filter(|&n| n >= 2) {
                b = b.max_workers(n);
            }
            if let Some(s) = env_usize("KWQ_WATCHDOG_SECS") {
                b = b.watchdog((s > 0).then(|| Duration::from_secs(s as u64)));
            }
            b.build().expect("default runtime settings are valid")
        })
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
                    .cur_work
                    .lock()
                    .as_ref()
                    .map(|i| format!("work '{}'", i.name()))
                    .unwrap_or_else(|| "<job>".to_string());
                let blocked = if w.blocked.load(Relaxed) {
                    " [blocked]"
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
