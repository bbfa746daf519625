//! W3 `latency`: every `--interval-us` the driver stamps the monotonic clock
//! and submits one job to an idle pool; the job records (start − submit).

use crate::cli::{at_least, between, Common};
use crate::peers::{with_spawner, Spawner, SpawnerFn};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Plan {
    samples: usize,
    warmup: usize,
    interval: Duration,
    rep: usize,
}

/// Sample slots shared with the jobs.
struct Slots {
    ns: Vec<AtomicU64>,
    done: AtomicUsize,
}

impl Slots {
    fn leak(n: usize) -> &'static Slots {
        Box::leak(Box::new(Slots {
            ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
        }))
    }
    fn record(&self, i: usize, t0: Instant) {
        let dt = t0.elapsed().as_nanos() as u64;
        self.ns[i].store(dt, Relaxed);
        self.done.fetch_add(1, Release);
    }
    fn wait_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done.load(Acquire) < self.ns.len() {
            assert!(Instant::now() < deadline, "latency jobs did not all run");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Runs the driver loop; `submit(i, t0)` must arrange for `slots.record(i, t0)`.
fn drive(p: &Plan, slots: &'static Slots, mut submit: impl FnMut(usize, Instant)) -> f64 {
    let total = p.warmup + p.samples;
    let start = Instant::now();
    for i in 0..total {
        let due = start + p.interval * (i as u32 + 1);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // The pool must be idle: the previous job has run (normally long
        // ago; on a loaded machine it may be late, and the bare-park floor
        // has a single pending slot).
        while slots.done.load(Acquire) < i {
            thread::sleep(Duration::from_micros(50));
        }
        submit(i, Instant::now());
    }
    slots.wait_all();
    start.elapsed().as_secs_f64()
}

impl SpawnerFn<(Vec<u64>, f64)> for &Plan {
    fn call<S: Spawner>(self, s: &S) -> (Vec<u64>, f64) {
        // Start the workers (a few jobs back to back), then let them idle.
        let warm = Slots::leak(64);
        for i in 0..64 {
            s.spawn(move || warm.record(i, Instant::now()));
        }
        warm.wait_all();
        let mut all = Vec::new();
        let mut secs = 0.0;
        for _ in 0..self.rep {
            thread::sleep(self.interval);
            let slots = Slots::leak(self.warmup + self.samples);
            secs += drive(self, slots, |i, t0| s.spawn(move || slots.record(i, t0)));
            all.extend(slots.ns[self.warmup..].iter().map(|a| a.load(Relaxed)));
        }
        (all, secs)
    }
}

/// The floor: one dedicated thread, `thread::park` / `Thread::unpark`.
fn bare_park(p: &Plan) -> (Vec<u64>, f64) {
    struct Shared {
        // index + 1 of the sample to record; 0 = nothing
        pending: AtomicUsize,
        stamp_ns: AtomicU64,
        base: Instant,
        stop: AtomicBool,
        slots: std::sync::Mutex<Option<&'static Slots>>,
    }
    let sh = Arc::new(Shared {
        pending: AtomicUsize::new(0),
        stamp_ns: AtomicU64::new(0),
        base: Instant::now(),
        stop: AtomicBool::new(false),
        slots: std::sync::Mutex::new(None),
    });
    let s2 = sh.clone();
    let th = thread::Builder::new()
        .name("bare-park".into())
        .spawn(move || loop {
            thread::park();
            let i = s2.pending.swap(0, Acquire);
            if i != 0 {
                let now = s2.base.elapsed().as_nanos() as u64;
                let dt = now - s2.stamp_ns.load(Relaxed);
                let slots = s2.slots.lock().unwrap().expect("slots");
                slots.ns[i - 1].store(dt, Relaxed);
                slots.done.fetch_add(1, Release);
            }
            if s2.stop.load(Acquire) {
                return;
            }
        })
        .expect("spawn");
    let waker = th.thread().clone();
    let mut all = Vec::new();
    let mut secs = 0.0;
    for _ in 0..p.rep {
        let slots = Slots::leak(p.warmup + p.samples);
        *sh.slots.lock().unwrap() = Some(slots);
        secs += drive(p, slots, |i, t0| {
            sh.stamp_ns
                .store(t0.duration_since(sh.base).as_nanos() as u64, Relaxed);
            sh.pending.store(i + 1, Release);
            waker.unpark();
        });
        all.extend(slots.ns[p.warmup..].iter().map(|a| a.load(Relaxed)));
    }
    sh.stop.store(true, Release);
    waker.unpark();
    let _ = th.join();
    (all, secs)
}

/// Nearest-rank percentile, in µs.
fn pct(sorted: &[u64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1] as f64 / 1000.0
}

/// The `--impl` values of `latency`.
pub(crate) const IMPLS: [&str; 7] = [
    "kwq",
    "rayon",
    "threadpool",
    "crossbeam-pool",
    "tokio-spawn-blocking",
    "handoff",
    "bare-park",
];

/// Flags of `kwq-bench latency`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LatencyArgs {
    /// Implementation (bare-park: a parked thread woken by unpark, the floor).
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// Microseconds between submissions (at most one second).
    #[arg(long, default_value_t = 1000, value_parser = between::<u64>(1, 1_000_000))]
    interval_us: u64,
    /// Unrecorded samples before the measured ones.
    #[arg(long, default_value_t = 100, value_parser = at_least::<usize>(0))]
    warmup: usize,
}

impl LatencyArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run(self)
    }
}

fn run(a: &LatencyArgs) -> Result<Report, Failure> {
    let samples = usize::try_from(a.common.items.unwrap_or(10_000))
        .map_err(|_| Failure::Usage("--items: too many samples for this platform".into()))?;
    // `drive` computes interval × (index + 1) as a Duration × u32.
    if u32::try_from(a.warmup.saturating_add(samples)).is_err() {
        return Err(Failure::Usage(format!(
            "--warmup + --items must be at most {}",
            u32::MAX
        )));
    }
    let plan = Plan {
        samples,
        warmup: a.warmup,
        interval: Duration::from_micros(a.interval_us),
        rep: a.common.rep,
    };
    let ((mut samples, secs), threads) = if a.imp == "bare-park" {
        (bare_park(&plan), 1)
    } else {
        with_spawner(&a.imp, a.common.threads, &plan)?
    };
    samples.sort_unstable();
    let n = samples.len() as u64;
    let mut j = Report::new("latency", &a.imp);
    j.int("items", n)
        .float("seconds", secs)
        .float("items_per_s", n as f64 / secs)
        .int("threads", threads as u64)
        .int("interval_us", a.interval_us)
        .int("warmup", a.warmup as u64)
        .float("p50_us", pct(&samples, 0.50))
        .float("p99_us", pct(&samples, 0.99))
        .float("p999_us", pct(&samples, 0.999))
        .float("max_us", *samples.last().unwrap_or(&0) as f64 / 1000.0)
        .float(
            "mean_us",
            samples.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0,
        );
    if a.common.rep > 1 {
        j.int("reps", a.common.rep as u64);
    }
    j.int("peak_rss_kib", crate::peak_rss_kib());
    Ok(j)
}
