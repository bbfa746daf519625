//! `blocked`: how fast a pool replaces a worker that blocks *without*
//! `kwq::blocking` (kwq's pool monitor).
//!
//! Each sample: on an idle concurrency-T pool, T items each block for
//! `--block-ms` in a plain `thread::sleep` (unannotated); right after them
//! the driver stamps the clock and queues one more item, which records
//! (start − submit). With every counted worker asleep, that item runs only
//! when the monitor has noticed a blocked worker and another worker took its
//! place. Reported: the distribution of that delay (`p50_us`, `p99_us`,
//! `p999_us`, `max_us`) and whether every item ran. `--impl kwq-off` runs
//! the same with detection off: the waiting item then starts only when a
//! blocked one returns, about `--block-ms` later (the reference).

use crate::cli::{at_least, between, Common};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The `--impl` values of `blocked`.
pub(crate) const IMPLS: [&str; 2] = ["kwq", "kwq-off"];

/// Flags of `kwq-bench blocked`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BlockedArgs {
    /// Implementation: kwq (monitor on, the default) or kwq-off (monitor off).
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// How long each blocking item sleeps, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = between::<u64>(1, 60_000))]
    block_ms: u64,
    /// Unrecorded samples before the measured ones.
    #[arg(long, default_value_t = 3, value_parser = at_least::<usize>(0))]
    warmup: usize,
}

impl BlockedArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run(self)
    }
}

fn run(a: &BlockedArgs) -> Result<Report, Failure> {
    let samples = usize::try_from(a.common.items.unwrap_or(200))
        .map_err(|_| Failure::Usage("--items: too many samples".into()))?;
    let threads = a.common.threads;
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(threads)
        .detect_blocking(a.imp == "kwq")
        .watchdog(None)
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let wq = kwq::Workqueue::builder("bench-blocked")
        .runtime(&rt)
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let block = Duration::from_millis(a.block_ms);
    let mut lat_ns = Vec::with_capacity(samples);
    let start = Instant::now();
    for i in 0..a.warmup + samples {
        // Let the previous round's surplus workers go idle and the pool
        // count settle.
        std::thread::sleep(block / 2 + Duration::from_millis(5));
        for _ in 0..threads {
            wq.queue_fn(move || std::thread::sleep(block));
        }
        let started = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let s = started.clone();
        let t0 = Instant::now();
        wq.queue_fn(move || {
            s.store(t0.elapsed().as_nanos() as u64, Relaxed);
            let _ = tx.send(());
        });
        if rx
            .recv_timeout(block * 4 + Duration::from_secs(10))
            .is_err()
        {
            return Err(Failure::Check(format!(
                "sample {i}: the waiting item never ran\n{}",
                rt.dump()
            )));
        }
        if i >= a.warmup {
            lat_ns.push(started.load(Relaxed));
        }
        wq.flush();
    }
    let secs = start.elapsed().as_secs_f64();
    lat_ns.sort_unstable();
    let n = lat_ns.len() as u64;
    let pct = |p: f64| {
        let rank = ((p * lat_ns.len() as f64).ceil() as usize).clamp(1, lat_ns.len());
        lat_ns[rank - 1] as f64 / 1000.0
    };
    let mut j = Report::new("blocked", &a.imp);
    j.int("items", n)
        .float("seconds", secs)
        .float("items_per_s", n as f64 / secs)
        .int("threads", threads as u64)
        .int("block_ms", a.block_ms)
        .float("p50_us", pct(0.50))
        .float("p99_us", pct(0.99))
        .float("p999_us", pct(0.999))
        .float("max_us", *lat_ns.last().unwrap_or(&0) as f64 / 1000.0)
        .int("peak_rss_kib", crate::peak_rss_kib());
    Ok(j)
}
