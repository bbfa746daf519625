//! [`RuntimeBuilder`]: settings, hooks and the global runtime.

use crate::error::BuildError;
use crate::report::{Hooks, PanicReport, Warning, WarningKind};
use crate::runtime::{Config, Runtime, RuntimeInner};
use crate::sync::{Arc, Mutex};
use crate::watchdog::LockupReport;
use std::time::Duration;

/// Builds a [`Runtime`]: its pools' concurrency and worker cap, its threads
/// (names, stack size, start/stop hooks) and its reporting hooks.
///
/// ```
/// use std::time::Duration;
///
/// let rt = kwq::RuntimeBuilder::new()
///     .concurrency(4)
///     .max_workers(64)
///     .idle_timeout(Duration::from_secs(10))
///     .stack_size(256 * 1024)
///     .on_panic(|report| {
///         // The payload is handed over; keep it, log it, or drop it.
///         let _payload = report.into_payload();
///     })
///     .build()?;
/// assert_eq!(rt.concurrency(), 4);
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[must_use]
pub struct RuntimeBuilder {
    concurrency: Option<usize>,
    max_workers: Option<usize>,
    idle_timeout: Duration,
    thread_name: String,
    stack_size: Option<usize>,
    watchdog: Option<Duration>,
    detect_blocking: bool,
    spawn_handler: Option<crate::spawn::SpawnHandler>,
    hooks: Hooks,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder::new()
    }
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("concurrency", &self.concurrency)
            .field("max_workers", &self.max_workers)
            .field("idle_timeout", &self.idle_timeout)
            .field("thread_name", &self.thread_name)
            .field("stack_size", &self.stack_size)
            .field("watchdog", &self.watchdog)
            .field("detect_blocking", &self.detect_blocking)
            .field("spawn_handler", &self.spawn_handler.is_some())
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// A builder with the default settings: concurrency = the number of
    /// CPUs, worker cap `max(64, 8 × concurrency)`, idle timeout 300 s,
    /// thread names `kwq/...`, the platform's default stack size, a 30 s
    /// lockup watchdog, and no hooks (reports go to `tracing` only).
    pub fn new() -> Self {
        RuntimeBuilder {
            concurrency: None,
            max_workers: None,
            idle_timeout: Duration::from_secs(300),
            thread_name: "kwq".to_string(),
            stack_size: None,
            watchdog: Some(Duration::from_secs(30)),
            detect_blocking: true,
            spawn_handler: None,
            hooks: Hooks::default(),
        }
    }

    /// Workers each concurrency-managed pool keeps *running* (default: the
    /// number of CPUs).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Cap on worker threads per pool (default `max(64, 8 × concurrency)`).
    /// Blocked workers count: a pool at its cap whose workers all block
    /// stalls, which [`Runtime::dump`] and the watchdog make visible.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// How long a surplus idle worker lingers before exiting (default 300 s,
    /// the kernel's `IDLE_WORKER_TIMEOUT`).
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

    /// Stack size of worker threads, in bytes (default: the platform's, as
    /// [`std::thread::Builder::stack_size`]).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Creates worker threads with `f` instead of `std::thread::Builder`
    /// (rayon's `spawn_handler`): `f` starts a thread that calls
    /// [`ThreadSpawn::run`](crate::ThreadSpawn::run) and returns `Ok(())`,
    /// or returns an error *without* calling `run`. A failure (or a panic
    /// of `f`) is never fatal: the pool reports it as
    /// [`WarningKind::WorkerSpawnFailed`],
    /// goes on with the workers it has, and tries again when it needs one.
    ///
    /// ```
    /// let rt = kwq::RuntimeBuilder::new()
    ///     .spawn_handler(|t| {
    ///         let mut b = std::thread::Builder::new().name(t.name().to_string());
    ///         if let Some(bytes) = t.stack_size() {
    ///             b = b.stack_size(bytes);
    ///         }
    ///         b.spawn(move || t.run()).map(drop)
    ///     })
    ///     .build()?;
    /// let wq = kwq::Workqueue::builder("custom-threads").runtime(&rt).build()?;
    /// assert_eq!(wq.spawn(|| 2 + 2).join().unwrap(), 4);
    /// # Ok::<(), kwq::BuildError>(())
    /// ```
    pub fn spawn_handler<F>(mut self, f: F) -> Self
    where
        F: Fn(crate::ThreadSpawn) -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.spawn_handler = Some(Arc::new(f));
        self
    }

    /// Runs `f` on every new worker thread before it takes any work (to set
    /// up thread-locals, affinity, a tracing span...). A panic in `f` is
    /// caught and reported; the worker starts anyway.
    pub fn on_thread_start<F>(mut self, f: F) -> Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.hooks.thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on every worker thread just before it exits. A panic in `f`
    /// is caught and reported.
    pub fn on_thread_stop<F>(mut self, f: F) -> Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.hooks.thread_stop = Some(Arc::new(f));
        self
    }

    /// Called on the worker with each panic of a work function, a one-shot
    /// job or an ordered queue's runner; the report owns the payload. The
    /// worker survives either way. Without a hook, the panic is reported
    /// through `tracing` (target `kwq`, level `ERROR`) and the payload is
    /// dropped.
    pub fn on_panic<F>(mut self, f: F) -> Self
    where
        F: Fn(PanicReport) + Send + Sync + 'static,
    {
        self.hooks.panic = Some(Arc::new(f));
        self
    }

    /// Called when a work function panics, with the report by reference.
    #[deprecated(since = "0.1.1", note = "use `on_panic`, which hands over the payload")]
    pub fn panic_handler<F>(self, f: F) -> Self
    where
        F: Fn(&PanicReport) + Send + Sync + 'static,
    {
        self.on_panic(move |r| f(&r))
    }

    /// Whether a monitor thread watches for workers that block outside
    /// [`blocking`](crate::blocking) — in a plain `read()`, a std `Mutex`
    /// or `Condvar`, `thread::sleep` — while work waits, and lets another
    /// worker take their place (default on). On Linux it reads the
    /// threads' scheduler state; a worker running on a CPU is never taken
    /// for blocked. Growth is bounded: immediate up to 4 × concurrency
    /// workers, then only for ever longer stalls, never past
    /// [`max_workers`](Self::max_workers). Detections are reported as
    /// [`WarningKind::BlockedWorker`].
    pub fn detect_blocking(mut self, on: bool) -> Self {
        self.detect_blocking = on;
        self
    }

    /// Lockup watchdog threshold (the kernel's `workqueue.watchdog_thresh`):
    /// report a pool whose worklist is non-empty and whose workers took
    /// nothing from it for this long. Default 30 s; `None` or zero disables
    /// it.
    pub fn watchdog(mut self, thresh: Option<Duration>) -> Self {
        self.watchdog = thresh;
        self
    }

    /// Called on the watchdog thread with each lockup report (which holds a
    /// state dump). Every report also goes to `tracing` (level `ERROR`).
    /// The watchdog waits for the hook: a hook that blocks (on a slow sink,
    /// say) delays the runtime's next lockup checks, so hand slow work to
    /// another thread.
    pub fn on_lockup<F>(mut self, f: F) -> Self
    where
        F: Fn(&LockupReport) + Send + Sync + 'static,
    {
        self.hooks.lockup = Some(Arc::new(f));
        self
    }

    /// Called with each lockup report.
    #[deprecated(since = "0.1.1", note = "renamed to `on_lockup`")]
    pub fn lockup_handler<F>(self, f: F) -> Self
    where
        F: Fn(&LockupReport) + Send + Sync + 'static,
    {
        self.on_lockup(f)
    }

    /// Called with each [`Warning`]: a problem the runtime handled (a
    /// refused `queue`, a worker that could not start, a panicking
    /// destructor...). Every warning also goes to `tracing` (level `WARN`).
    pub fn on_warning<F>(mut self, f: F) -> Self
    where
        F: Fn(&Warning) + Send + Sync + 'static,
    {
        self.hooks.warning = Some(Arc::new(f));
        self
    }

    /// Creates the runtime. Pools start lazily, when the first workqueue
    /// that needs them is built.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `concurrency` is 0 or `max_workers` is below 2.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let concurrency = self.concurrency.unwrap_or_else(default_concurrency);
        if concurrency == 0 {
            return Err(BuildError::concurrency(0));
        }
        let max_workers = self.max_workers.unwrap_or((8 * concurrency).max(64));
        if max_workers < 2 {
            return Err(BuildError::max_workers(max_workers));
        }
        let inner = Arc::new(RuntimeInner::new(Config {
            concurrency,
            max_workers,
            idle_timeout: self.idle_timeout,
            thread_name: self.thread_name,
            stack_size: self.stack_size,
            hooks: self.hooks,
            spawn_handler: self.spawn_handler,
            monitor: Arc::default(),
        }));
        if self.detect_blocking {
            crate::monitor::start(&inner);
        }
        if let Some(thresh) = self.watchdog.filter(|d| !d.is_zero()) {
            crate::watchdog::start(&inner, thresh);
        }
        Ok(Runtime { inner })
    }

    /// Creates the runtime and installs it as the process-wide runtime that
    /// [`Runtime::global`], the system workqueues and every builder without
    /// an explicit runtime use. Environment variables are not consulted.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the settings are invalid (as [`build`]) or if
    /// the global runtime already exists
    /// ([`BuildErrorKind::GlobalAlreadyBuilt`](crate::BuildErrorKind::GlobalAlreadyBuilt)):
    /// call this first thing in `main`.
    ///
    /// [`build`]: RuntimeBuilder::build
    pub fn build_global(self) -> Result<&'static Runtime, BuildError> {
        // Serialise with `global()`'s lazy initialisation so exactly one
        // of them wins and the loser learns it.
        let _g = GLOBAL_INIT.lock();
        if GLOBAL.get().is_some() {
            return Err(BuildError::global_already_built());
        }
        let rt = self.build()?;
        Ok(GLOBAL.get_or_init(|| rt))
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
            crate::report::trace_warning(&Warning::new(
                WarningKind::InvalidEnvironment,
                format!("ignoring {var}={v:?}: not a whole number"),
            ));
            None
        }
    }
}

static GLOBAL: crate::sync::OnceLock<Runtime> = crate::sync::OnceLock::new();
static GLOBAL_INIT: Mutex<()> = Mutex::new(());

/// The global runtime, built from the environment on first use.
pub(crate) fn global() -> &'static Runtime {
    if let Some(rt) = GLOBAL.get() {
        return rt;
    }
    let _g = GLOBAL_INIT.lock();
    GLOBAL.get_or_init(|| {
        let mut b = RuntimeBuilder::new();
        if let Some(n) = env_usize("KWQ_CONCURRENCY").filter(|&n| n > 0) {
            b = b.concurrency(n);
        }
        if let Some(n) = env_usize("KWQ_MAX_WORKERS").filter(|&n| n >= 2) {
            b = b.max_workers(n);
        }
        if let Some(s) = env_usize("KWQ_WATCHDOG_SECS") {
            b = b.watchdog((s > 0).then(|| Duration::from_secs(s as u64)));
        }
        // The filters above keep every setting valid.
        b.build()
            .unwrap_or_else(|e| unreachable!("global runtime settings rejected: {e}"))
    })
}
