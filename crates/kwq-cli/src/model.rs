//! `kwq model ...`: the front end of the kwq-model checker.
//!
//! - `kwq model check --code V --scenario S [...]`: check one setup.
//! - `kwq model matrix [--json]`: every code version × scenario against the
//!   expected table; exits 1 if a cell differs.
//! - `kwq model replay STRING`: re-run a replay string to the same state.
//! - `kwq model reproduce`: the 2019 deadlock under v4, then the same
//!   scenario under kwq's identity.
//! - `kwq model report`: the R1 report committed as `docs/report-r1.md`.
//!
//! Every argument, and every `KWQ_MODEL_*` variable `check` reads, goes
//! through a clap value parser: a bad one is a usage error (clap's message,
//! exit 2) reported before any work starts. The lists of code versions and
//! scenarios come from kwq-model's own `ALL` tables, so a version added
//! there is accepted here without a change. Arguments become a validated
//! `kwq_model::Setup` + `kwq_model::Config` before anything runs.
use crate::args::{count, new_file};
use crate::UsageError;
use anyhow::{bail, Context as _};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand, ValueEnum};
use kwq_model::explore::{check, Bfs, Dfs, RandomWalk, Strategy};
use kwq_model::setup::{MAX_ITEMS, MAX_WORKERS};
use kwq_model::{matrix, report, AllocPolicy, Config, Granularity, Scenario, Trace, Version};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `kwq model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    cmd: ModelCmd,
}

#[derive(Debug, Subcommand)]
enum ModelCmd {
    /// Model-check one code version × scenario and print a trace or the state count.
    Check(CheckArgs),
    /// Check every code version × scenario against the expected matrix (exit 1 on a mismatch).
    Matrix(MatrixArgs),
    /// Re-run a replay string and print its step table and final state.
    Replay(ReplayArgs),
    /// Show the 2019 deadlock under v4 (the 2019 kernel), then the same scenario under kwq.
    Reproduce,
    /// Print the R1 report (Markdown, no timings): today's code, the candidate fix, starvation.
    Report,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StrategyArg {
    /// Breadth-first: shortest counterexample.
    Bfs,
    /// Depth-first with a visited set.
    Dfs,
    /// Seeded random walks (not exhaustive).
    Random,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AllocArg {
    /// Most recently freed slot first (SLUB per-CPU freelist).
    Lifo,
    /// Any free slot, chosen nondeterministically.
    Any,
}

impl From<AllocArg> for AllocPolicy {
    fn from(a: AllocArg) -> AllocPolicy {
        match a {
            AllocArg::Lifo => AllocPolicy::Lifo,
            AllocArg::Any => AllocPolicy::Any,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GranularityArg {
    /// §4.1 steps.
    Coarse,
    /// DONE and the first list_lock acquisition as separate steps (R1).
    Fine,
    /// Every list_lock acquisition of the ordered loop separate.
    FineAll,
}

impl From<GranularityArg> for Granularity {
    fn from(g: GranularityArg) -> Granularity {
        match g {
            GranularityArg::Coarse => Granularity::Coarse,
            GranularityArg::Fine => Granularity::Fine,
            GranularityArg::FineAll => Granularity::FineAll,
        }
    }
}

/// [`CheckOpts`] plus what the derive cannot see: where `--granularity`'s
/// value came from, so that `--fine` can conflict with the option on the
/// command line yet override the environment variable.
#[derive(Debug)]
struct CheckArgs {
    opts: CheckOpts,
    granularity_on_command_line: bool,
}

impl clap::FromArgMatches for CheckArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(CheckArgs {
            opts: CheckOpts::from_arg_matches(m)?,
            granularity_on_command_line: m.value_source("granularity")
                == Some(clap::parser::ValueSource::CommandLine),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = CheckArgs::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for CheckArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        CheckOpts::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        CheckOpts::augment_args_for_update(cmd)
    }
}

#[derive(Debug, Args)]
struct CheckOpts {
    /// Code being modelled: a kernel code version or kwq.
    #[arg(long, value_name = "VERSION", value_parser = code_parser())]
    code: Version,
    /// Scenario: `2014` or `2019` (the Btrfs deadlock it sets up), or a pool
    /// starvation scenario (`starve...`, with or without rescuers).
    #[arg(long, value_parser = scenario_parser())]
    scenario: Scenario,
    /// Search strategy.
    #[arg(long, value_enum, default_value_t = StrategyArg::Bfs)]
    strategy: StrategyArg,
    /// State budget.
    #[arg(long, env = "KWQ_MODEL_MAX_STATES", default_value = "4000000",
          value_parser = count::<usize>(1, u32::MAX.into()))]
    max_states: usize,
    /// Longest path explored, in steps.
    #[arg(long, env = "KWQ_MODEL_MAX_DEPTH", default_value = "400",
          value_parser = count::<usize>(1, 100_000))]
    max_depth: usize,
    /// Fine-grained steps: --granularity fine (overrides KWQ_MODEL_GRANULARITY).
    #[arg(long)]
    fine: bool,
    /// Step granularity [default: coarse].
    #[arg(long, value_enum, env = "KWQ_MODEL_GRANULARITY")]
    granularity: Option<GranularityArg>,
    /// Allocator policy.
    #[arg(long, value_enum, env = "KWQ_MODEL_ALLOC", default_value_t = AllocArg::Lifo)]
    alloc: AllocArg,
    /// Seed of the random strategy.
    #[arg(long, env = "KWQ_MODEL_SEED", default_value = "1", value_parser = count::<u64>(0, u64::MAX))]
    seed: u64,
    /// Number of walks of the random strategy.
    #[arg(long, env = "KWQ_MODEL_WALKS", default_value = "10000",
          value_parser = count::<usize>(1, u32::MAX.into()))]
    walks: usize,
    /// Upper-layer items.
    #[arg(long, env = "KWQ_MODEL_ITEMS", default_value = "3",
          value_parser = count::<u8>(1, MAX_ITEMS.into()))]
    items: u8,
    /// Ordered phases that may wait for I/O (cut to --items if larger).
    #[arg(long, env = "KWQ_MODEL_WAITS", default_value = "2",
          value_parser = count::<u8>(0, MAX_ITEMS.into()))]
    waits: u8,
    /// Worker cap.
    #[arg(long, env = "KWQ_MODEL_MAX_WORKERS", default_value = "4",
          value_parser = count::<u8>(1, MAX_WORKERS.into()))]
    workers: u8,
    /// max_active of each workqueue.
    #[arg(long, env = "KWQ_MODEL_MAX_ACTIVE", default_value = "4", value_parser = count::<u8>(1, 255))]
    max_active: u8,
    /// Also write the trace to this file, which must not exist yet.
    #[arg(long, value_parser = new_file)]
    trace_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct MatrixArgs {
    /// One JSON object per line and cell instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// A replay string as printed by `check`, `matrix` or `reproduce`.
    #[arg(value_parser = parse_trace)]
    trace: Trace,
}

/// The `--code` values: kwq-model's own list, so new versions need no change here.
fn code_parser() -> impl TypedValueParser<Value = Version> {
    PossibleValuesParser::new(Version::ALL.map(Version::as_str)).try_map(|s| s.parse::<Version>())
}

/// The `--scenario` values, from kwq-model's list.
fn scenario_parser() -> impl TypedValueParser<Value = Scenario> {
    PossibleValuesParser::new(Scenario::ALL.map(Scenario::as_str))
        .try_map(|s| s.parse::<Scenario>())
}

fn parse_trace(s: &str) -> Result<Trace, String> {
    if s.trim().is_empty() {
        return Err("an empty replay string".into());
    }
    let t = Trace::parse(s.trim()).map_err(|e| e.to_string())?;
    // A string that parses but names a step the model does not enable is
    // just as bad an argument: refuse it here, before any output.
    t.replay().map_err(|e| e.to_string())?;
    Ok(t)
}

/// Runs `kwq model`.
pub fn run(args: ModelArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        ModelCmd::Check(a) => run_check(a),
        ModelCmd::Matrix(a) => run_matrix(a),
        ModelCmd::Replay(a) => run_replay(a),
        ModelCmd::Reproduce => run_reproduce(),
        ModelCmd::Report => run_report(),
    }
}

fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let a = args.opts;
    if a.fine && args.granularity_on_command_line {
        return Err(UsageError("--fine cannot be used with --granularity".into()).into());
    }
    let mut cfg = Config::default();
    cfg.max_states = a.max_states;
    cfg.max_depth = a.max_depth;
    cfg.seed = a.seed;
    cfg.walks = a.walks;
    cfg.items = a.items;
    cfg.waits = a.waits;
    cfg.max_workers = a.workers;
    cfg.max_active = a.max_active;
    cfg.alloc = a.alloc.into();
    cfg.granularity = match (a.fine, a.granularity) {
        (true, _) => Granularity::Fine,
        (false, Some(g)) => g.into(),
        (false, None) => Granularity::Coarse,
    };
    let setup = cfg.setup(a.code, a.scenario);
    if let Err(e) = setup.validate() {
        return Err(UsageError(format!("invalid model size: {e}")).into());
    }
    let mut strategy: Box<dyn Strategy> = match a.strategy {
        StrategyArg::Bfs => Box::new(Bfs),
        StrategyArg::Dfs => Box::new(Dfs),
        StrategyArg::Random => Box::new(RandomWalk::new(cfg.seed)),
    };
    let o = check(setup, &cfg, strategy.as_mut());
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report::render_outcome(&o))?;
    if let (Some(path), Some(f)) = (&a.trace_file, &o.finding) {
        f.trace
            .write_new(path)
            .with_context(|| format!("writing trace to {}", path.display()))?;
        writeln!(out, "trace written to {}", path.display())?;
    }
    let broken = o.self_check.is_err()
        || matches!(
            o.finding.as_ref().map(|f| &f.kind),
            Some(kwq_model::FindingKind::Violation(_))
        );
    Ok(if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_matrix(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let b = matrix::BOUNDS;
    if !a.json {
        writeln!(
            out,
            "kwq model matrix: BFS per cell; {} upper items, ≤{} I/O waits, ≤{} workers, max_active {}, lifo allocator\n\
             (§4.5 starve rows: {} upper items, ≤{} I/O waits, ≤{} worker)\n",
            b.items,
            b.waits,
            b.workers,
            b.max_active,
            matrix::STARVE_BOUNDS.items,
            matrix::STARVE_BOUNDS.waits,
            matrix::STARVE_BOUNDS.workers
        )?;
        writeln!(out, "{}", matrix::table_header())?;
    }
    let mut io_err = None;
    let results = matrix::run_matrix(|r| {
        let line = if a.json {
            r.json()
        } else {
            matrix::table_row(r)
        };
        if io_err.is_none() {
            if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                io_err = Some(e);
            }
        }
    });
    if let Some(e) = io_err {
        return Err(e.into());
    }
    let bad: Vec<_> = results.iter().filter(|r| !r.matches()).collect();
    if !a.json {
        writeln!(
            out,
            "\n{} cells, {} as expected, {:.2} s in all",
            results.len(),
            results.len() - bad.len(),
            start.elapsed().as_secs_f64()
        )?;
        for r in &bad {
            writeln!(
                out,
                "MISMATCH: {} × {} ({}): expected {}",
                r.cell.version,
                r.cell.scenario,
                r.cell.granularity,
                r.cell.expect.describe()
            )?;
        }
    }
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let trace = a.trace;
    let mut cfg = Config::default();
    cfg.max_states = usize::MAX;
    let mut strategy = kwq_model::Replay::new(trace.actions.clone());
    let o = check(trace.setup, &cfg, &mut strategy);
    if let Some((k, act)) = strategy.error() {
        bail!(
            "step {}: action {act} is not enabled; the replay string does not fit this model",
            k + 1
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", trace.setup)?;
    match &o.finding {
        Some(f) => {
            let verdict = match &f.kind {
                kwq_model::FindingKind::Deadlock { via, .. } => {
                    format!("DEADLOCK ({})", via.as_str())
                }
                kwq_model::FindingKind::Violation(v) => format!("INVARIANT VIOLATED: {v}"),
            };
            writeln!(out, "replayed {} steps: {verdict}\n", trace.actions.len())?;
            write!(out, "{}", report::render_trace_and_cycle(&f.trace, &f.kind))?;
        }
        None => {
            writeln!(
                out,
                "replayed {} steps: no deadlock in the final state\n",
                trace.actions.len()
            )?;
            write!(out, "{}", trace.render()?)?;
            writeln!(out, "replay: {}", trace.replay_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_reproduce() -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let cfg = Config::default();
    let mut out = std::io::stdout().lock();
    let bug = check(cfg.setup(Version::V4, Scenario::Y2019), &cfg, &mut Bfs);
    writeln!(
        out,
        "The 2019 Btrfs deadlock (\"workqueue deadlock on dependent filesystems\"),\n\
         model-checked: top Btrfs on a loop device backed by a file on a bottom Btrfs,\n\
         both queueing async_cow items with btrfs_delalloc_helper into one unbound pool.\n"
    )?;
    writeln!(
        out,
        "== kernel 2014–v5.4 (v4: unique helpers, early self-free) =="
    )?;
    write!(out, "{}", report::render_outcome(&bug))?;
    let fixed = check(cfg.setup(Version::Kwq, Scenario::Y2019), &cfg, &mut Bfs);
    writeln!(
        out,
        "\n== the same scenario under kwq (busy table keyed by item identity, not address) =="
    )?;
    let verdict = match fixed.deadlock_reachable() {
        Some(false) => format!(
            "not reachable, {} states explored (all of them)",
            fixed.stats.states
        ),
        Some(true) => "REACHABLE (unexpected!)".to_string(),
        None => "inconclusive (bounded)".to_string(),
    };
    writeln!(out, "{}\ndeadlock {verdict}", fixed.setup)?;
    writeln!(
        out,
        "\n({:.2} s; `kwq model matrix` checks every version × scenario)",
        start.elapsed().as_secs_f64()
    )?;
    let ok = bug.deadlock_reachable() == Some(true)
        && bug.self_check.is_ok()
        && fixed.deadlock_reachable() == Some(false);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `kwq model report`: the document `docs/report-r1.md` is this output.
fn run_report() -> anyhow::Result<ExitCode> {
    let text = kwq_model::r1::render();
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
