//! The `kwq` command: a demonstration of the runtime (`kwq demo`), parallel
//! zstd (`kwq compress | decompress | test | list`) and the
//! front end of the kwq-model checker (`kwq model ...`).
//!
//! `main` parses arguments, `run` maps the outcome to an exit code; a closed
//! stdout (`kwq ... | head`) is a normal way to stop and exits 0.
#![forbid(unsafe_code)]

mod compress;
mod compress_io;
mod compress_list;
mod demo;
mod model;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Kernel-grade workqueues for userspace.
#[derive(Debug, Parser)]
#[command(name = "kwq", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show coalescing, non-reentrancy, flush and cancel on a real pool.
    Demo(demo::DemoArgs),
    /// Model-check the kernel's workqueue + Btrfs ordered-work algorithm.
    Model(model::ModelArgs),
    /// Compress files with parallel zstd (independent frames + seek table).
    Compress(compress::CompressArgs),
    /// Decompress zstd files (frames in parallel when there are several).
    Decompress(compress::DecompressArgs),
    /// Check that zstd files decompress.
    Test(compress::DecompressArgs),
    /// List zstd files' frames, sizes, ratio and seek table.
    List(compress::Common),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(compress::rewrite_level_flags(std::env::args_os()));
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kwq: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Model(a) => model::run(a),
        Cmd::Compress(a) => compress::compress(a),
        Cmd::Decompress(a) => compress::decompress(a),
        Cmd::Test(a) => compress::test(a),
        Cmd::List(a) => compress_list::list(&a),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
