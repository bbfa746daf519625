//! `kwq model ...`: the front end of the kwq-model checker.
//!
//! - `kwq model check --version V --scenario S [...]`: check one setup.
//! - `kwq model matrix [--json]`: every version × scenario against the
//!   expected table; exits 1 if a cell differs.
//! - `kwq model replay STRING`: re-run a replay string to the same state.
//! - `kwq model reproduce`: the 2019 deadlock under v4, then the same
//!   scenario under kwq's identity.
//! - `kwq model report`: the R1 report committed as `docs/report-r1.md`.
//!
//! Arguments are parsed here (low level) and turned into a validated
//! `kwq_model::Setup` + `kwq_model::Config` (high level) before anything runs.
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use kwq_model::explore::{check, Bfs, Dfs, RandomWalk, Strategy};
use kwq_model::{matrix, report, AllocPolicy, Config, Granularity, Scenario, Trace, Version};
use std::io::Write as _;
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
    /// Model-check one version × scenario and print a trace or the state count.
    #[command(disable_version_flag = true)]
    Check(CheckArgs),
    /// Check every version × scenario against the expected matrix (exit 1 on a mismatch).
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GranularityArg {
    /// §4.1 steps.
    Coarse,
    /// DONE and the first list_lock acquisition as separate steps (R1).
    Fine,
    /// Every list_lock acquisition of the ordered loop separate.
    FineAll,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Code version: v3.16, v4, v5.5, v5.5-generic, kwq.
    #[arg(long, value_parser = parse_version)]
    version: Version,
    /// Scenario: 2014 or 2019.
    #[arg(long, value_parser = parse_scenario)]
    scenario: Scenario,
    /// Search strategy.
    #[arg(long, value_enum, default_value_t = StrategyArg::Bfs)]
    strategy: StrategyArg,
    /// State budget (default: KWQ_MODEL_MAX_STATES or 4000000).
    #[arg(long)]
    max_states: Option<usize>,
    /// Fine-grained steps (same as --granularity fine).
    #[arg(long, conflicts_with = "granularity")]
    fine: bool,
    /// Step granularity (default: KWQ_MODEL_GRANULARITY or coarse).
    #[arg(long, value_enum)]
    granularity: Option<GranularityArg>,
    /// Allocator policy (default: KWQ_MODEL_ALLOC or lifo).
    #[arg(long, value_enum)]
    alloc: Option<AllocArg>,
    /// Seed of the random strategy (default: KWQ_MODEL_SEED or 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Upper-layer items (default: KWQ_MODEL_ITEMS or 3).
    #[arg(long)]
    items: Option<u8>,
    /// Ordered phases that may wait for I/O (default: KWQ_MODEL_WAITS or 2).
    #[arg(long)]
    waits: Option<u8>,
    /// Worker cap (default: KWQ_MODEL_MAX_WORKERS or 4).
    #[arg(long)]
    workers: Option<u8>,
    /// Also write the trace to this new file (refuses to overwrite).
    #[arg(long)]
    trace_file: Option<std::path::PathBuf>,
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
    string: String,
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse().map_err(|e| format!("{e}"))
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

fn run_check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::from_env()?;
    if let Some(n) = a.max_states {
        cfg.max_states = n;
    }
    if let Some(n) = a.seed {
        cfg.seed = n;
    }
    if let Some(n) = a.items {
        cfg.items = n;
    }
    if let Some(n) = a.waits {
        cfg.waits = n;
    }
    if let Some(n) = a.workers {
        cfg.max_workers = n;
    }
    if a.fine {
        cfg.granularity = Granularity::Fine;
    }
    if let Some(g) = a.granularity {
        cfg.granularity = match g {
            GranularityArg::Coarse => Granularity::Coarse,
            GranularityArg::Fine => Granularity::Fine,
            GranularityArg::FineAll => Granularity::FineAll,
        };
    }
    if let Some(al) = a.alloc {
        cfg.alloc = match al {
            AllocArg::Lifo => AllocPolicy::Lifo,
            AllocArg::Any => AllocPolicy::Any,
        };
    }
    let setup = cfg.setup(a.version, a.scenario);
    setup.validate().context("invalid model size")?;
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
    let trace = Trace::parse(&a.string).context("cannot parse the replay string")?;
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
