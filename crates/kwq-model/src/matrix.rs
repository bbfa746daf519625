//! The expected outcome matrix (docs/kernel.md §4.4, plus what the
//! checker found for the open question R1) and the code that checks it.
//!
//! Every cell is checked with [`Bfs`] under the fixed [`MatrixBounds`], so a
//! reachable deadlock comes with a shortest trace and an unreachable one with
//! the number of states of the exhaustive search.

use crate::config::Config;
use crate::explore::{check, Bfs, Outcome};
use crate::model::waitfor::Via;
use crate::setup::{AllocPolicy, Granularity, Scenario, Setup, Version};
use std::fmt::Write as _;

/// What a cell should show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A deadlock is reachable, and the collided slot was freed this way.
    Reachable(Via),
    /// An exhaustive search finds no deadlock.
    NotReachable,
}

impl Expect {
    /// `reachable (self-free)`, `not reachable`.
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Expect::Reachable(v) => format!("reachable ({})", v.as_str()),
            Expect::NotReachable => "not reachable".to_string(),
        }
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Code version.
    pub version: Version,
    /// Scenario.
    pub scenario: Scenario,
    /// Step granularity.
    pub granularity: Granularity,
    /// The expected outcome.
    pub expect: Expect,
    /// The sizes it is checked with ([`BOUNDS`], or [`STARVE_BOUNDS`] for
    /// the §4.5 rows).
    pub bounds: MatrixBounds,
}

/// The sizes every matrix cell is checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixBounds {
    /// Upper-layer delalloc items.
    pub items: u8,
    /// Ordered phases that may wait for I/O.
    pub waits: u8,
    /// Worker cap.
    pub workers: u8,
    /// `max_active`.
    pub max_active: u8,
    /// State budget per cell (never reached with these sizes).
    pub max_states: usize,
}

/// The bounds of `kwq model matrix`: 3 upper items, up to 2 I/O waits (so
/// up to 5 items in all), up to 4 workers, max_active 4, LIFO allocator.
pub const BOUNDS: MatrixBounds = MatrixBounds {
    items: 3,
    waits: 2,
    workers: 4,
    max_active: 4,
    max_states: 4_000_000,
};

/// The bounds of the §4.5 rows: 2 upper items, both of which may wait for
/// the lower filesystem, and a bound, concurrency-managed pool (one running
/// worker at a time) that cannot create a worker beyond its first one
/// (kthread creation stuck in memory reclaim). With a cap of 2 the pool
/// does not starve in this scenario: only the head of an ordered list runs
/// its ordered phase, so at most one top worker is ever blocked.
pub const STARVE_BOUNDS: MatrixBounds = MatrixBounds {
    items: 2,
    waits: 2,
    workers: 1,
    max_active: 4,
    max_states: 4_000_000,
};

use Expect::{NotReachable as No, Reachable as Yes};
use Granularity::{Coarse, Fine, FineAll};
use Scenario::{Starve, StarveRescuer, Y2014, Y2019};
use Version::{Kwq, V5_5Generic, V6DeferAll, V6Fix, V3_16, V4, V5_5, V6};

const fn cell(v: Version, s: Scenario, g: Granularity, e: Expect) -> Cell {
    let bounds = match s {
        Starve | StarveRescuer => STARVE_BOUNDS,
        Y2014 | Y2019 => BOUNDS,
    };
    Cell {
        version: v,
        scenario: s,
        granularity: g,
        expect: e,
        bounds,
    }
}

/// The expected matrix. Coarse rows are §4.4. Fine rows answer R1: with
/// DONE and the first `list_lock` acquisition as separate steps, another
/// worker can free a worker's item before that worker blocks, so the
/// post-fix kernel deadlocks in 2019 (both helper variants) and, with the
/// single generic helper, in 2014; unique helpers still protect 2014, and
/// kwq's identity protects everything. The `fine-all` rows split every lock
/// acquisition, which opens the same hazard with fewer items.
///
/// The `v6` rows were written down from the source before the checker ran:
/// today's `run_ordered_work` and `btrfs_work_helper` take the same steps
/// as v5.5 with the single helper, so `v6` is expected to answer exactly as
/// `v5.5-generic`. `v6-fix` (free by the last of two references) is
/// expected to close every path; `v6-defer-all` (every free deferred to the
/// freeing worker's exit) is expected to leave R1 open. The §4.5 rows: a
/// bound pool that cannot create workers starves without a rescuer and is
/// unstuck by the rescuers.
pub const EXPECTED: [Cell; 33] = [
    cell(V3_16, Y2014, Coarse, Yes(Via::SelfFree)),
    cell(V3_16, Y2019, Coarse, Yes(Via::SelfFree)),
    cell(V4, Y2014, Coarse, No),
    cell(V4, Y2019, Coarse, Yes(Via::SelfFree)),
    cell(V5_5, Y2014, Coarse, No),
    cell(V5_5, Y2019, Coarse, No),
    cell(V5_5Generic, Y2014, Coarse, No),
    cell(V5_5Generic, Y2019, Coarse, No),
    cell(Kwq, Y2014, Coarse, No),
    cell(Kwq, Y2019, Coarse, No),
    cell(V5_5, Y2014, Fine, No),
    cell(V5_5, Y2019, Fine, Yes(Via::OtherWorkerFree)),
    cell(V5_5Generic, Y2014, Fine, Yes(Via::OtherWorkerFree)),
    cell(V5_5Generic, Y2019, Fine, Yes(Via::OtherWorkerFree)),
    cell(Kwq, Y2014, Fine, No),
    cell(Kwq, Y2019, Fine, No),
    cell(V5_5, Y2019, FineAll, Yes(Via::OtherWorkerFree)),
    cell(V6, Y2014, Coarse, No),
    cell(V6, Y2019, Coarse, No),
    cell(V6, Y2014, Fine, Yes(Via::OtherWorkerFree)),
    cell(V6, Y2019, Fine, Yes(Via::OtherWorkerFree)),
    cell(V6, Y2014, FineAll, Yes(Via::OtherWorkerFree)),
    cell(V6, Y2019, FineAll, Yes(Via::OtherWorkerFree)),
    cell(V6Fix, Y2014, Coarse, No),
    cell(V6Fix, Y2019, Coarse, No),
    cell(V6Fix, Y2014, Fine, No),
    cell(V6Fix, Y2019, Fine, No),
    cell(V6Fix, Y2014, FineAll, No),
    cell(V6Fix, Y2019, FineAll, No),
    cell(V6DeferAll, Y2019, Fine, Yes(Via::OtherWorkerFree)),
    cell(V6DeferAll, Y2019, FineAll, Yes(Via::OtherWorkerFree)),
    cell(V6, Starve, Coarse, Yes(Via::Starvation)),
    cell(V6, StarveRescuer, Coarse, No),
];

impl Cell {
    /// The setup this cell is checked with.
    #[must_use]
    pub fn setup(&self) -> Setup {
        Setup {
            version: self.version,
            scenario: self.scenario,
            granularity: self.granularity,
            alloc: AllocPolicy::Lifo,
            items: self.bounds.items,
            waits: self.bounds.waits,
            max_workers: self.bounds.workers,
            max_active: self.bounds.max_active,
        }
    }

    /// Runs the cell.
    #[must_use]
    pub fn run(&self) -> CellResult {
        let cfg = Config {
            max_states: self.bounds.max_states,
            ..Config::default()
        };
        let outcome = check(self.setup(), &cfg, &mut Bfs);
        CellResult {
            cell: *self,
            outcome,
        }
    }
}

/// A checked cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// What the checker found.
    pub outcome: Outcome,
}

impl CellResult {
    /// What was found, in [`Expect`] terms (`None`: inconclusive).
    #[must_use]
    pub fn found(&self) -> Option<Expect> {
        match self.outcome.deadlock_reachable()? {
            true => Some(Expect::Reachable(self.outcome.via()?)),
            false => Some(Expect::NotReachable),
        }
    }

    /// Does the finding match the expectation (and did its trace pass the
    /// determinism self-check)?
    #[must_use]
    pub fn matches(&self) -> bool {
        self.found() == Some(self.cell.expect) && self.outcome.self_check.is_ok()
    }

    /// One JSON object (one line) describing the cell.
    #[must_use]
    pub fn json(&self) -> String {
        let o = &self.outcome;
        let s = o.setup;
        let mut j = String::from("{");
        let _ = write!(
            j,
            "\"version\":\"{}\",\"scenario\":\"{}\",\"granularity\":\"{}\",\"alloc\":\"{}\",\"items\":{},\"waits\":{},\"workers\":{},\"max_active\":{},",
            s.version, s.scenario, s.granularity, s.alloc, s.items, s.waits, s.max_workers, s.max_active
        );
        match o.deadlock_reachable() {
            Some(b) => {
                let _ = write!(j, "\"deadlock\":{b},");
            }
            None => j.push_str("\"deadlock\":null,"),
        }
        match o.via() {
            Some(v) => {
                let _ = write!(j, "\"via\":\"{}\",", v.as_str());
            }
            None => j.push_str("\"via\":null,"),
        }
        let _ = write!(
            j,
            "\"expected\":\"{}\",\"matches\":{},\"exhaustive\":{},\"states\":{},\"transitions\":{},",
            self.cell.expect.describe(),
            self.matches(),
            o.exhaustive,
            o.stats.states,
            o.stats.transitions
        );
        let trace_len = o.finding.as_ref().map_or(0, |f| f.trace.actions.len());
        let _ = write!(
            j,
            "\"trace_len\":{trace_len},\"seconds\":{:.4},\"states_per_sec\":{:.0},",
            o.stats.elapsed.as_secs_f64(),
            o.stats.states_per_sec()
        );
        match &o.finding {
            Some(f) => {
                let _ = write!(
                    j,
                    "\"replay\":\"{}\"",
                    json_escape(&f.trace.replay_string())
                );
            }
            None => j.push_str("\"replay\":null"),
        }
        j.push('}');
        j
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Runs every cell of [`EXPECTED`], calling `each` as cells finish.
pub fn run_matrix(mut each: impl FnMut(&CellResult)) -> Vec<CellResult> {
    EXPECTED
        .iter()
        .map(|c| {
            let r = c.run();
            each(&r);
            r
        })
        .collect()
}

/// Header of the human matrix table.
#[must_use]
pub fn table_header() -> String {
    format!(
        "{:<13} {:<14} {:<8} {:<30} {:<30} {:>9} {:>6} {:>9} {:>10}",
        "version", "scen.", "steps", "expected", "found", "states", "trace", "time", "states/s"
    )
}

/// One line of the human matrix table.
#[must_use]
pub fn table_row(r: &CellResult) -> String {
    let o = &r.outcome;
    let found = match r.found() {
        Some(e) => e.describe(),
        None => "INCONCLUSIVE".to_string(),
    };
    let mark = if r.matches() { "" } else { "  <-- MISMATCH" };
    format!(
        "{:<13} {:<14} {:<8} {:<30} {:<30} {:>9} {:>6} {:>9} {:>10}{mark}",
        r.cell.version.as_str(),
        r.cell.scenario.as_str(),
        r.cell.granularity.as_str(),
        r.cell.expect.describe(),
        found,
        o.stats.states,
        o.finding
            .as_ref()
            .map_or("–".to_string(), |f| f.trace.actions.len().to_string()),
        crate::report::elapsed(o.stats.elapsed).unwrap_or_else(|| "<0.1 ms".to_string()),
        crate::report::elapsed(o.stats.elapsed).map_or("–".to_string(), |_| format!(
            "{:.0}",
            o.stats.states_per_sec()
        ))
    )
}
