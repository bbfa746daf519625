//! W2 `ordered`: items i = 0..N; parallel stage `work(i, rounds)`, ordered
//! stage `h = fold(h, x)` in index order. The checksum must equal the
//! sequential one.

use crate::cli::{at_least, hex_u64, Common};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::thread::JoinHandle;
use std::time::Instant;

pub(crate) const H0: u64 = 0xcbf2_9ce4_8422_2325;
const DEFAULT_INFLIGHT: usize = 4096;

/// The parallel stage of workload W2 (see BENCHMARKS.md, "Method").
#[inline(never)]
pub(crate) fn work(i: u64, rounds: u64) -> u64 {
    let mut x = i
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    for _ in 0..rounds {
        x ^= x >> 30;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// The ordered stage.
#[inline]
pub(crate) fn fold(h: u64, x: u64) -> u64 {
    h.rotate_left(5) ^ x
}

pub(crate) fn sequential(n: u64, rounds: u64) -> u64 {
    let mut h = H0;
    for i in 0..n {
        h = fold(h, work(i, black_box(rounds)));
    }
    h
}

/// The machine's parallel ceiling, not a streaming pipeline: `threads`
/// scoped threads take chunks of [`CEILING_CHUNK`] indices from one atomic
/// counter and write `work(i)` into `out`, a buffer of all `n` results (no
/// bound on memory, one shared RMW per chunk, dynamic balance), then the
/// results are folded in order. About what any ordered pipeline could reach
/// here. The caller allocates and touches `out` outside the timed region,
/// so page faults are not counted against the ceiling.
fn ceiling(out: &[AtomicU64], n: u64, rounds: u64, threads: usize) -> u64 {
    let out = &out[..n as usize];
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let first = next.fetch_add(CEILING_CHUNK, Relaxed);
                if first >= n {
                    break;
                }
                for i in first..(first + CEILING_CHUNK).min(n) {
                    out[i as usize].store(work(i, black_box(rounds)), Relaxed);
                }
            });
        }
    });
    // The scope joined every thread: their stores happened before.
    out.iter().fold(H0, |h, x| fold(h, x.load(Relaxed)))
}

/// Indices per chunk of [`ceiling`]: at `--rounds 500` about 0.1 ms of
/// work, so the last chunk's imbalance is negligible.
const CEILING_CHUNK: u64 = 64;

fn hex(h: u64) -> String {
    format!("0x{h:016x}")
}

/// rayon, collect-then-fold: `par_iter` maps a window into a `Vec`, then the
/// window is folded sequentially.
fn rayon_windows(pool: &rayon::ThreadPool, n: u64, rounds: u64, window: usize) -> u64 {
    use rayon::prelude::*;
    pool.install(|| {
        let mut buf: Vec<u64> = Vec::with_capacity(window);
        let mut h = H0;
        let mut s = 0u64;
        while s < n {
            let e = (s + window as u64).min(n);
            (s as usize..e as usize)
                .into_par_iter()
                .map(|i| work(i as u64, black_box(rounds)))
                .collect_into_vec(&mut buf);
            for &x in &buf {
                h = fold(h, x);
            }
            s = e;
        }
        h
    })
}

/// The hand-rolled streaming pipeline: T workers fed indices through one
/// crossbeam channel, results back through another, and a ring-buffer
/// reorder stage in the consumer. The consumer hands out a new index only
/// when one leaves the ordered stage, so at most `inflight` items are
/// between submission and the end of their ordered stage.
struct CbReorder {
    job_tx: Option<Sender<u64>>,
    res_rx: Receiver<(u64, u64)>,
    handles: Vec<JoinHandle<()>>,
}

impl CbReorder {
    fn new(threads: usize, rounds: u64) -> Self {
        let (job_tx, job_rx) = unbounded::<u64>();
        let (res_tx, res_rx) = unbounded::<(u64, u64)>();
        let handles = (0..threads)
            .map(|t| {
                let job_rx = job_rx.clone();
                let res_tx = res_tx.clone();
                std::thread::Builder::new()
                    .name(format!("cb-reorder:{t}"))
                    .spawn(move || {
                        for i in job_rx {
                            let _ = res_tx.send((i, work(i, black_box(rounds))));
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        CbReorder {
            job_tx: Some(job_tx),
            res_rx,
            handles,
        }
    }

    fn run(&self, n: u64, inflight: usize) -> u64 {
        let tx = self.job_tx.as_ref().expect("live");
        let k = inflight as u64;
        let mut ring = vec![0u64; inflight];
        let mut full = vec![false; inflight];
        let mut sent = 0u64;
        while sent < n.min(k) {
            let _ = tx.send(sent);
            sent += 1;
        }
        let mut next = 0u64;
        let mut h = H0;
        while next < n {
            let (i, x) = self.res_rx.recv().expect("workers alive");
            let slot = (i % k) as usize;
            ring[slot] = x;
            full[slot] = true;
            loop {
                let slot = (next % k) as usize;
                if !full[slot] {
                    break;
                }
                full[slot] = false;
                h = fold(h, ring[slot]);
                next += 1;
                if sent < n {
                    let _ = tx.send(sent);
                    sent += 1;
                }
            }
        }
        h
    }
}

impl Drop for CbReorder {
    fn drop(&mut self) {
        self.job_tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// pariter's order-preserving `parallel_map` (its `buffer_size` bounds the
/// items in flight).
fn pariter_build(
    n: u64,
    rounds: u64,
    threads: usize,
    inflight: usize,
) -> impl Iterator<Item = u64> {
    use pariter::IteratorExt as _;
    (0..n).parallel_map_custom(
        |o| o.threads(threads).buffer_size(inflight),
        move |i| work(i, black_box(rounds)),
    )
}

/// Runs the oneTBB program (crates/kwq-bench/tbb/) and passes its JSON on.
fn run_tbb(a: &OrderedArgs, n: u64, inflight: usize) -> Result<Report, Failure> {
    let bin = a
        .tbb_bin
        .clone()
        .or_else(|| std::env::var("KWQ_BENCH_TBB").ok())
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(
                exe.with_file_name("kwq-bench-tbb")
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .unwrap_or_default();
    if !std::path::Path::new(&bin).exists() {
        return Err(Failure::Usage(format!(
            "impl tbb: oneTBB program not found at {bin:?}; build it with \
             crates/kwq-bench/tbb/build.sh (needs libtbb-dev), or pass --tbb-bin"
        )));
    }
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["--items", &n.to_string()])
        .args(["--threads", &a.common.threads.to_string()])
        .args(["--rounds", &a.rounds.to_string()])
        .args(["--inflight", &inflight.to_string()])
        .args(["--rep", &a.common.rep.to_string()]);
    if let Some(e) = a.expect {
        cmd.args(["--expect", &hex(e)]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Failure::Usage(format!("impl tbb: cannot run {bin:?}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    let last = lines.pop().unwrap_or("");
    for l in lines {
        println!("{l}");
    }
    if !out.status.success() {
        println!("{last}");
        return Err(Failure::Passthrough(
            out.status.code().unwrap_or(1).clamp(1, 255) as u8,
        ));
    }
    Report::from_line(last)
}

fn kwq_runtime(threads: usize) -> Result<kwq::Runtime, Failure> {
    kwq::RuntimeBuilder::new()
        .concurrency(threads)
        .build()
        .map_err(|e| Failure::Usage(format!("kwq runtime: {e}")))
}

/// The `--impl` values of `ordered`.
const IMPLS: [&str; 9] = [
    "seq",
    "ceiling",
    "kwq",
    "kwq-caller",
    "kwq-iter",
    "rayon",
    "crossbeam-reorder",
    "pariter",
    "tbb",
];

/// Flags of `kwq-bench ordered`.
///
/// `seq` runs on one thread; `ceiling` has T threads fill an N-item buffer
/// in chunks, then folds it: the machine's ceiling, not a peer.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct OrderedArgs {
    /// Implementation (seq: one thread; ceiling: the machine's limit, not a peer).
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// Work per item (rounds of the mixing function).
    #[arg(long, default_value_t = 500, value_parser = at_least::<u64>(0))]
    rounds: u64,
    /// Bound on items in flight (rayon: window size) [default: 4096].
    #[arg(long, value_parser = at_least::<usize>(1))]
    inflight: Option<usize>,
    /// Expected checksum, hex [default: computed sequentially, untimed].
    #[arg(long, value_parser = hex_u64)]
    expect: Option<u64>,
    /// The oneTBB program [default: $KWQ_BENCH_TBB, else kwq-bench-tbb next to this executable].
    #[arg(long)]
    tbb_bin: Option<String>,
}

impl OrderedArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run(self)
    }
}

fn run(a: &OrderedArgs) -> Result<Report, Failure> {
    let n = a.common.items.unwrap_or(200_000);
    let rounds = a.rounds;
    let inflight = a.inflight.unwrap_or(DEFAULT_INFLIGHT);
    let threads = a.common.threads;
    let rep = a.common.rep;
    let warm_n = n.min(10_000);

    let mut runs = Vec::with_capacity(rep);
    let mut sums = Vec::with_capacity(rep);
    let mut timed = |f: &mut dyn FnMut(u64) -> u64| {
        f(warm_n);
        for _ in 0..rep {
            let t0 = Instant::now();
            let h = f(n);
            runs.push(t0.elapsed().as_secs_f64());
            sums.push(h);
        }
    };
    let (threads_used, inflight_used) = match a.imp.as_str() {
        "seq" => {
            timed(&mut |n| sequential(n, rounds));
            (1, 1)
        }
        "ceiling" => {
            // Written element by element, so every page is faulted in here.
            let out: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            timed(&mut |n| ceiling(&out, n, rounds, threads));
            (threads, n as usize)
        }
        "rayon" => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("rayon pool");
            timed(&mut |n| rayon_windows(&pool, n, rounds, inflight));
            (threads, inflight)
        }
        "crossbeam-reorder" => {
            let p = CbReorder::new(threads, rounds);
            timed(&mut |n| p.run(n, inflight));
            (threads, inflight)
        }
        "pariter" => {
            // pariter spawns its threads when the adaptor is built; build
            // it outside the timed region.
            let mut built = Vec::new();
            built.push(pariter_build(warm_n, rounds, threads, inflight));
            for _ in 0..rep {
                built.push(pariter_build(n, rounds, threads, inflight));
            }
            let mut it = built.into_iter();
            timed(&mut |_n| it.next().expect("built").fold(H0, fold));
            (threads, inflight)
        }
        "tbb" => return run_tbb(a, n, inflight),
        "kwq" | "kwq-caller" => {
            // Per-item `queue(func, ordered)` on an OrderedWorkqueue of a
            // dedicated runtime: `func` = work(i), `ordered` = the fold into
            // an accumulator (ordered stages never overlap, and each one
            // happens-after the previous via the queue's hand-off).
            // `kwq-caller`: the full producer also runs stages beside the
            // `threads` runners (`caller_runs`), so up to threads + 1 run.
            let rt = kwq_runtime(threads)?;
            let q = kwq::ordered::OrderedWorkqueue::builder("bench-ordered")
                .runtime(&rt)
                .max_active(threads)
                .max_in_flight(inflight)
                .caller_runs(a.imp == "kwq-caller")
                .build()
                .map_err(|e| Failure::Usage(format!("impl kwq: {e}")))?;
            let acc: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(H0)));
            timed(&mut |n| {
                acc.store(H0, Release);
                for i in 0..n {
                    q.queue(
                        move || work(i, black_box(rounds)),
                        move |x| acc.store(fold(acc.load(Acquire), x), Release),
                    );
                }
                q.flush().expect("no stage panics");
                acc.load(Acquire)
            });
            (threads, inflight)
        }
        "kwq-iter" => {
            // The iterator front end (batches internally), built outside
            // the timed region like pariter's adaptor.
            let rt = kwq_runtime(threads)?;
            let build = |n: u64| {
                kwq::ordered::OrderedMapBuilder::new()
                    .name("bench-map")
                    .runtime(&rt)
                    .max_active(threads)
                    .max_in_flight(inflight)
                    .map(0..n, move |i| work(i, black_box(rounds)))
                    .map_err(|e| Failure::Usage(format!("impl kwq-iter: {e}")))
            };
            let mut built = vec![build(warm_n)?];
            for _ in 0..rep {
                built.push(build(n)?);
            }
            let mut it = built.into_iter();
            timed(&mut |_n| it.next().expect("built").fold(H0, fold));
            (threads, inflight)
        }
        other => return Err(Failure::Usage(format!("unknown impl {other:?}"))),
    };
    let peak = crate::peak_rss_kib();
    let expect = a.expect.unwrap_or_else(|| sequential(n, rounds));
    for &h in &sums {
        if h != expect {
            return Err(Failure::Check(format!(
                "checksum {} != expected {}",
                hex(h),
                hex(expect)
            )));
        }
    }
    let mut j = Report::new("ordered", &a.imp);
    j.timing(n, threads_used, &runs)
        .int("rounds", rounds)
        .int("inflight", inflight_used as u64)
        .str("checksum", &hex(sums[0]))
        .int("peak_rss_kib", peak);
    Ok(j)
}
