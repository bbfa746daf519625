//! `kwq-bench`: kwq's benchmark binary, and its peers in the same binary.
//!
//! ```text
//! kwq-bench <workload> --impl <name> [--items N] [--threads T] [workload flags] [--rep K]
//! ```
//!
//! Workloads: `spawn` (W1, one-shot submission throughput), `ordered` (W2,
//! a parallel stage then an in-order stage), `latency` (W3, wake-up latency
//! of an idle pool), `fs` (W5, a corpus through kwq-store or kernel Btrfs,
//! single or stacked: write + sync, then a cold read-back). Every workload
//! runs kwq and its peers (rayon, threadpool, a crossbeam-channel pool,
//! tokio `spawn_blocking`, oneTBB, pariter, ...) from this one binary, so
//! that BENCHMARKS.md can quote same-session ratios.
//!
//! The contract: flags are `--flag VALUE` or `--flag=VALUE`; the last line
//! of stdout is one JSON object with at least `workload`, `impl`, `items`,
//! `seconds`, `items_per_s` and `threads`. Exit codes: 0 a result, 1 a
//! failed check (wrong checksum, lost item), 2 a bad command line (clap's
//! message on stderr, before anything runs), or an external peer's own code.
#![forbid(unsafe_code)]

mod blocked;
mod cli;
mod compress;
mod fs;
mod latency;
mod ordered;
mod peers;
mod report;
mod spawn;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use std::process::ExitCode;

pub(crate) use report::Report;

/// Declares the workloads: one `Variant(module::Args)` line each. Every
/// args type has `fn run(&self) -> Result<Report, Failure>`.
macro_rules! workloads {
    ($($(#[$doc:meta])* $variant:ident($args:ty),)*) => {
        /// The workload to run.
        #[derive(Debug, clap::Subcommand)]
        enum Workload {
            $($(#[$doc])* $variant($args),)*
        }

        impl Workload {
            fn run(&self) -> Result<Report, Failure> {
                match self {
                    $(Workload::$variant(a) => a.run(),)*
                }
            }
        }
    };
}

workloads! {
    /// W1: one-shot submission throughput (default N = 1000000).
    Spawn(spawn::SpawnArgs),
    /// W3: wake-up latency of an idle pool (default N = 10000 samples).
    Latency(latency::LatencyArgs),
    /// W2: parallel stage, then in-order stage (default N = 200000).
    Ordered(ordered::OrderedArgs),
    /// How fast a worker blocked outside kwq::blocking is replaced (default N = 200).
    Blocked(blocked::BlockedArgs),
    /// W4: parallel zstd compression with in-order output.
    Compress(compress::CompressArgs),
    /// W4: the reverse direction (decompression to a file or /dev/null).
    Decompress(compress::DecompressArgs),
    /// W5: write a corpus into a compressing filesystem, sync, read it back cold.
    Fs(fs::FsArgs),
}

/// Benchmarks kwq against its peers; the last stdout line is one JSON object.
#[derive(Debug, Parser)]
#[command(name = "kwq-bench", version)]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.workload.run() {
        Ok(report) => {
            for field in report.non_finite() {
                eprintln!("kwq-bench: warning: {field} is not a finite number; written as null");
            }
            println!("{}", report.to_line());
            ExitCode::SUCCESS
        }
        // Found only once the workload looked (e.g. a missing peer program):
        // still a usage error, reported like clap's own.
        Err(Failure::Usage(msg)) => Cli::command().error(ErrorKind::InvalidValue, msg).exit(),
        Err(Failure::Check(msg)) => {
            eprintln!("kwq-bench: check failed: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Passthrough(code)) => ExitCode::from(code),
    }
}

/// Why a workload did not produce a result.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A bad setting only the workload could detect (exit 2).
    Usage(String),
    /// A result check failed (exit 1).
    Check(String),
    /// An external program's exit code, already reported.
    Passthrough(u8),
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
