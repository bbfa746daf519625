//! The `kwq` command: a demonstration of the runtime (`kwq demo`) and the
//! front end of the kwq-model checker (`kwq model ...`).
//!
//! `main` parses arguments, `run` maps the outcome to an exit code; a closed
//! stdout (`kwq ... | head`) is a normal way to stop and exits 0.
#![forbid(unsafe_code)]

mod demo;
mod model;
mod store;
mod store_stack;

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
    /// Create a kwq-store image (IMAGE may be `LOWER.img:/path/upper.img`).
    Mkfs(store::MkfsArgs),
    /// Check a kwq-store image (exit codes as e2fsck's).
    Fsck(store::FsckArgs),
    /// Read and change a kwq-store image without mounting it.
    Store(store::StoreArgs),
    /// Two stacked compressing stores on one runtime, both busy, checked.
    Stack(store_stack::StackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Mkfs(a) => store::mkfs(a),
        Cmd::Fsck(a) => store::fsck(a),
        Cmd::Store(a) => store::run(a),
        Cmd::Stack(a) => store_stack::run(a),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
