//! The `kwq` command: a demonstration of the runtime (`kwq demo`), parallel
//! zstd (`kwq compress | decompress | test | list`) and the
//! front end of the kwq-model checker (`kwq model ...`).
//!
//! Exit codes: 0 success, 1 a failed check or a runtime error (`kwq: error:
//! ...` on stderr), 2 a bad argument or environment variable. Bad arguments
//! are reported in one style, clap's, before any work starts: value parsers
//! check what they can, and a later [`UsageError`] (a combination clap cannot
//! see) is turned into a clap error too. A closed stdout (`kwq ... | head`) is
//! a normal way to stop and exits 0.
#![forbid(unsafe_code)]

mod args;
mod compress;
mod compress_io;
mod compress_list;
mod demo;
mod model;
mod stack_corpus;
mod store;
mod store_stack;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser, Subcommand};
use std::process::ExitCode;

/// A bad argument found after parsing; reported like clap's own (exit 2).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Kernel-grade workqueues for userspace.
#[derive(Debug, Parser)]
#[command(name = "kwq", version, about)]
struct Cli {
    /// What the kwq library's reports show on stderr: off, error, warn,
    /// info, debug or trace (the library itself never prints).
    #[arg(
        long,
        global = true,
        env = "KWQ_LOG",
        default_value = "warn",
        value_name = "LEVEL"
    )]
    log: tracing_subscriber::filter::LevelFilter,
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
    // The kwq library never prints: its warnings and panic reports are
    // `tracing` events (target "kwq"); the command shows them on stderr at
    // the level `--log` / KWQ_LOG asks for (default: warnings and errors).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log)
        .with_target(true)
        .without_time()
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<UsageError>() => {
            Cli::command().error(ErrorKind::ValueValidation, e).exit()
        }
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
