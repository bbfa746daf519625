//! The lockup watchdog (kernel `wq_watchdog`, WQ-19).
//!
//! One thread per runtime that enables it wakes every quarter of the
//! threshold and, for every pool whose worklist is non-empty, checks whether
//! its workers took anything from it since the last look. Progress is the
//! sum of the workers' `executed` counters (each written only by its own
//! worker, so the hot path pays no shared write for it). A pool with waiting
//! items and no progress for at least the threshold is reported once per
//! stall, with [`Runtime::dump`](crate::Runtime::dump) attached: typically
//! every running worker is blocked without [`blocking`](crate::blocking)
//! telling the pool, or the pool is at its worker cap.
//!
//! The watchdog holds only a weak reference to its runtime and exits when
//! the runtime goes away.

use crate::report::{Warning, WarningKind};
use crate::runtime::{Runtime, RuntimeInner};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{downgrade, thread, Arc, Weak};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the watchdog reports about a stalled pool, through
/// [`RuntimeBuilder::on_lockup`](crate::RuntimeBuilder::on_lockup) and
/// `tracing`.
///
/// ```
/// use std::time::Duration;
///
/// let rt = kwq::RuntimeBuilder::new()
///     .watchdog(Some(Duration::from_secs(10)))
///     .on_lockup(|r| {
///         // A pool whose workers all block without kwq::blocking, or that
///         // hit its worker cap: the dump shows who holds it up.
///         let _ = (r.pool(), r.stuck_for(), r.waiting(), r.dump());
///     })
///     .build()?;
/// # drop(rt);
/// # Ok::<(), kwq::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LockupReport {
    pub(crate) pool: String,
    pub(crate) stuck_for: Duration,
    pub(crate) waiting: usize,
    pub(crate) dump: String,
}

impl LockupReport {
    /// The pool's name, e.g. `normal0`.
    pub fn pool(&self) -> &str {
        &self.pool
    }
    /// How long the pool has made no progress.
    pub fn stuck_for(&self) -> Duration {
        self.stuck_for
    }
    /// Items waiting on its worklist.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
    /// The runtime's state at the time of the report.
    pub fn dump(&self) -> &str {
        &self.dump
    }
}

impl std::fmt::Display for LockupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BUG: kwq lockup - pool {} stuck for {}s with {} item(s) waiting!\n{}",
            self.pool,
            self.stuck_for.as_secs(),
            self.waiting,
            self.dump
        )
    }
}

struct PoolWatch {
    progress: u64,
    since: Instant,
    reported: bool,
}

/// Starts the watchdog thread of `rt`.
pub(crate) fn start(rt: &Arc<RuntimeInner>, thresh: Duration) {
    let weak: Weak<RuntimeInner> = downgrade(rt);
    let name = format!("{}/watchdog", rt.cfg.thread_name);
    let spawned = thread::Builder::new()
        .name(name)
        .spawn(move || run(weak, thresh));
    if let Err(e) = spawned {
        rt.cfg.warn(Warning::new(
            WarningKind::ThreadSpawnFailed,
            format!("could not start the lockup watchdog: {e}"),
        ));
    }
}

fn run(rt: Weak<RuntimeInner>, thresh: Duration) {
    let period = (thresh / 4).max(Duration::from_millis(1));
    let mut seen: HashMap<usize, PoolWatch> = HashMap::new();
    loop {
        thread::sleep(period);
        let Some(inner) = rt.upgrade() else { return };
        let now = Instant::now();
        for pool in inner.pools() {
            let progress: u64 = pool
                .workers
                .lock()
                .iter()
                .map(|w| w.executed.load(Relaxed))
                .sum();
            let waiting = pool.worklist.len();
            let w = seen.entry(pool.id).or_insert(PoolWatch {
                progress,
                since: now,
                reported: false,
            });
            if waiting == 0 || progress != w.progress {
                *w = PoolWatch {
                    progress,
                    since: now,
                    reported: false,
                };
                continue;
            }
            let stuck_for = now - w.since;
            if stuck_for >= thresh && !w.reported {
                w.reported = true;
                let report = LockupReport {
                    pool: pool.name(),
                    stuck_for,
                    waiting,
                    dump: Runtime {
                        inner: inner.clone(),
                    }
                    .dump(),
                };
                inner.report_lockup(&report);
            }
        }
        // If the program dropped its last handle meanwhile, this is the
        // runtime's last reference: its configuration owns the hooks, user
        // values whose destructors may panic.
        crate::report::drop_contained(inner, "a runtime (on its watchdog thread)");
    }
}
