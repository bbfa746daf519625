//! W1 `spawn`: one submitting thread submits N tiny one-shot jobs (one
//! `fetch_add` each) and waits until all have run.
//!
//! Completion detection is the same for every impl: the job whose increment
//! reaches the target sets a flag and unparks the submitter, which parks
//! (it does not spin, so it never steals a CPU from the workers).

use crate::cli::{at_least, Common};
use crate::peers::{with_spawner, Spawner, SpawnerFn};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a run may take before it is declared hung
/// (`KWQ_BENCH_WATCHDOG_S`, default 60 s).
fn watchdog() -> Duration {
    let s = std::env::var("KWQ_BENCH_WATCHDOG_S")
        .ok()
        .and_then(|v| v.parse().ok());
    Duration::from_secs(s.unwrap_or(60))
}

/// Completion counter shared by the jobs of one measured run.
pub(crate) struct Done {
    count: AtomicU64,
    target: AtomicU64,
    done: AtomicBool,
    waiter: Thread,
}

impl Done {
    /// A counter for `target` jobs (`u64::MAX`: set later with
    /// [`Done::set_target`]), leaked so jobs can borrow it for `'static`.
    pub(crate) fn leak(target: u64) -> &'static Done {
        Box::leak(Box::new(Done {
            count: AtomicU64::new(0),
            target: AtomicU64::new(target),
            done: AtomicBool::new(false),
            waiter: thread::current(),
        }))
    }

    /// The job body: one `fetch_add`; the job that reaches the target wakes
    /// the submitter.
    #[inline]
    pub(crate) fn hit(&self) {
        let n = self.count.fetch_add(1, SeqCst) + 1;
        if n == self.target.load(SeqCst) {
            self.done.store(true, SeqCst);
            self.waiter.unpark();
        }
    }

    pub(crate) fn set_target(&self, t: u64) {
        self.target.store(t, SeqCst);
    }

    /// Parks until the target is reached. (SeqCst on both sides: either the
    /// last job sees the target, or this sees the last job's increment.)
    ///
    /// A watchdog turns a hang (a lost job) into a panic that says how far
    /// the run got, with `dump` (e.g. kwq's `Runtime::dump`) appended.
    pub(crate) fn wait(&self, dump: &dyn Fn() -> String) {
        let limit = watchdog();
        let deadline = Instant::now() + limit;
        loop {
            if self.done.load(SeqCst) || self.count.load(SeqCst) >= self.target.load(SeqCst) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "spawn: watchdog: only {} of {} jobs ran within {:?}\n{}",
                    self.count.load(SeqCst),
                    self.target.load(SeqCst),
                    limit,
                    dump()
                );
            }
            thread::park_timeout(deadline - now);
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(SeqCst)
    }
}

/// Submits `n` jobs and waits; returns seconds.
fn one_run<S: Spawner>(s: &S, n: u64) -> f64 {
    let d = Done::leak(n);
    let t0 = Instant::now();
    for _ in 0..n {
        s.spawn(move || d.hit());
    }
    d.wait(&|| String::new());
    t0.elapsed().as_secs_f64()
}

struct Bench {
    n: u64,
    rep: usize,
}

impl SpawnerFn<Vec<f64>> for Bench {
    fn call<S: Spawner>(self, s: &S) -> Vec<f64> {
        // Warm-up: start every worker thread, fault in the queues.
        one_run(s, self.n.min(20_000));
        (0..self.rep).map(|_| one_run(s, self.n)).collect()
    }
}

/// The `--impl` values of `spawn`.
pub(crate) const IMPLS: [&str; 7] = [
    "kwq",
    "kwq-work",
    "rayon",
    "threadpool",
    "crossbeam-pool",
    "tokio-spawn-blocking",
    "handoff",
];

/// Flags of `kwq-bench spawn`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SpawnArgs {
    /// Implementation (kwq-work: queueings of persistent Work items).
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// Persistent items of kwq-work, queued round-robin.
    #[arg(long, default_value_t = 1024, value_parser = at_least::<usize>(1))]
    work_items: usize,
}

impl SpawnArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run(self)
    }
}

fn run(a: &SpawnArgs) -> Result<Report, Failure> {
    let n = a.common.items.unwrap_or(1_000_000);
    if a.imp == "kwq-work" {
        return run_work(a, n);
    }
    let rep = a.common.rep;
    let (runs, threads) = with_spawner(&a.imp, a.common.threads, Bench { n, rep })?;
    let mut j = Report::new("spawn", &a.imp);
    j.timing(n, threads, &runs);
    if a.imp == "kwq" {
        j.str(
            "setup",
            "kwq::RuntimeBuilder::new().concurrency(T), one Workqueue, default max_active (256), queue_fn",
        );
    }
    j.int("peak_rss_kib", crate::peak_rss_kib());
    Ok(j)
}

/// `kwq-work`: N queueings of K persistent items, round-robin. A `queue`
/// that returns false coalesced into a pending instance; every `true` is
/// exactly one execution (WQ-1, WQ-2), which is what the jobs count.
fn run_work(a: &SpawnArgs, n: u64) -> Result<Report, Failure> {
    let k = a.work_items;
    let kq = crate::peers::Kwq::new(a.common.threads);
    let one = |n: u64| -> (f64, u64) {
        let d = Done::leak(u64::MAX);
        let works: Vec<kwq::Work> = (0..k)
            .map(|i| kwq::Work::new(format!("bench{i}"), move || d.hit()))
            .collect();
        let mut queued = 0u64;
        let t0 = Instant::now();
        let mut w = 0;
        for _ in 0..n {
            queued += u64::from(kq.wq.queue(&works[w]));
            w += 1;
            if w == k {
                w = 0;
            }
        }
        d.set_target(queued);
        d.wait(&|| kq.rt.dump());
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(
            d.count(),
            queued,
            "executions must equal successful queueings"
        );
        (secs, queued)
    };
    one(n.min(20_000));
    let mut runs = Vec::new();
    let mut execs = Vec::new();
    for _ in 0..a.common.rep {
        let (s, e) = one(n);
        runs.push(s);
        execs.push(e);
    }
    // Report the executions of the median run.
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by(|&x, &y| runs[x].total_cmp(&runs[y]));
    let executions = execs[idx[idx.len() / 2]];
    let mut j = Report::new("spawn", &a.imp);
    j.timing(n, a.common.threads, &runs)
        .int("work_items", k as u64)
        .int("executions", executions)
        .int("coalesced", n - executions)
        .str("setup", "kwq::RuntimeBuilder::new().concurrency(T), one Workqueue, default max_active (256), queue(&Work)")
        .int("peak_rss_kib", crate::peak_rss_kib());
    Ok(j)
}
