//! Exploring the model: the engine shared by every strategy, and the
//! [`Strategy`] trait.
//!
//! # States
//!
//! A search node is a complete [`State`]; it carries its [`Setup`], so the
//! transition relation needs nothing else. Visited states are kept in a hash
//! set keyed by the **whole state** (exact equality, no hash compaction), so
//! two different states are never merged by accident.
//!
//! # Actions
//!
//! [`enabled_actions`] lists every enabled [`Action`] in a fixed order, and
//! [`Engine::successors`] applies each of them with the pure [`step()`].
//! Strategies decide only *which* successor to look at next, as shuttle's
//! `Scheduler` decides only which task runs next while the runtime owns the
//! tasks: depth-first with a visited set ([`Dfs`]), breadth-first with a
//! visited set and parent links ([`Bfs`], shortest counterexample), seeded
//! random walks ([`RandomWalk`]) and a fixed schedule ([`Replay`]).
//!
//! # Protocol
//!
//! 1. The engine builds the initial state and checks it.
//! 2. For every new state the strategy reaches, the engine evaluates the
//!    invariants (WQ-3/4/5/6/7, BT-1/3/4) and looks for a wait-for cycle
//!    (BT-6). Either is a finding.
//! 3. A state without successors is *complete* (everything queued, run and
//!    freed), a *cap stall* (work waits on the worklist but the pool is at
//!    its worker cap — a bound of the model, not a bug) or a *deadlock
//!    without a cycle* (a finding).
//! 4. The strategy stops at the first finding, when it has seen everything,
//!    or when a bound (`max_states`, `max_depth`) is hit, which the outcome
//!    records.
//! 5. Every finding's trace is replayed twice from scratch and the states
//!    and enabled-action lists compared step by step (determinism
//!    self-check, after shuttle's `uncontrolled_nondeterminism`).
//!
//! # Soundness
//!
//! An exhaustive (DFS or BFS) search that reports "not reachable" and is not
//! marked bounded has visited every state reachable in the model with the
//! setup's sizes. Three reductions make the state space smaller:
//!
//! - **State hashing**: a state reached twice is expanded once. Sound
//!   because the future of a state depends only on the state (the step is a
//!   pure function of it), and the properties checked are state properties.
//! - **Symmetry of idle workers**: only the idle-list head may pick work.
//!   Idle workers have identical local state (no busy entry, empty
//!   scheduled list), so a run where another idle worker picks is the same
//!   run with two worker names swapped; deadlock and every invariant are
//!   invariant under renaming workers.
//! - **Invisible steps merged**: a first phase (compression) touches no
//!   shared state, so it is merged with setting DONE; allocation is merged
//!   with the queueing that follows it. Merging a step that commutes with
//!   every other step removes only interleavings equivalent to kept ones.
//!
//! The granularity choice ([`Granularity`](crate::Granularity)) is *not* a
//! sound reduction but part of the model: coarser steps remove real
//! interleavings, which is why the R1 question is asked at `fine`.
//!
//! What is bounded: the number of upper items, the worker cap, `max_active`;
//! and a run can be cut by `max_states` and `max_depth`. The model has no
//! cycles (every step consumes progress), so every path is finite and the
//! default depth bound is never reached in the shipped scenarios.

mod bfs;
mod dfs;
mod random;
mod replay;

pub use bfs::Bfs;
pub use dfs::Dfs;
pub use random::RandomWalk;
pub use replay::Replay;

use crate::config::Config;
use crate::model::invariants::{self, Violation};
use crate::model::waitfor::{find_cycle, Cycle, Via};
use crate::model::{enabled_actions, step, Action, State};
use crate::setup::Setup;
use crate::trace::{self, Trace};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// A small, fast, deterministic hasher (FxHash-style multiply-rotate) for the
/// visited sets. Collisions cost time only: sets compare whole states.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hash set of states with [`FxHasher`].
pub type StateSet = HashSet<State, BuildHasherDefault<FxHasher>>;
/// Hash map keyed by states with [`FxHasher`].
pub type StateMap<V> = HashMap<State, V, BuildHasherDefault<FxHasher>>;

/// What a strategy found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// No step can ever complete some item. `cycle` is the wait-for cycle
    /// (absent for a terminal deadlock without one).
    Deadlock {
        /// The wait-for cycle.
        cycle: Option<Cycle>,
        /// How the recycled slot was freed.
        via: Via,
    },
    /// An invariant does not hold.
    Violation(Violation),
}

/// A finding and the schedule that leads to it.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What.
    pub kind: FindingKind,
    /// How to get there from the initial state.
    pub trace: Trace,
    /// The state the trace ends in.
    pub state: State,
}

/// Counters of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Distinct states visited (random walks: steps taken).
    pub states: u64,
    /// Transitions computed.
    pub transitions: u64,
    /// Longest path looked at.
    pub max_depth: usize,
    /// Terminal states where everything completed.
    pub complete: u64,
    /// Terminal states stuck only because of the worker cap.
    pub cap_stalls: u64,
    /// `max_states` was hit: the search is incomplete.
    pub truncated: bool,
    /// `max_depth` cut some path: the search is incomplete.
    pub depth_cut: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Stats {
    /// Distinct states per second.
    #[must_use]
    pub fn states_per_sec(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Was the search cut by a bound?
    #[must_use]
    pub fn bounded(&self) -> bool {
        self.truncated || self.depth_cut
    }
}

/// The result of one model-checking run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What was checked.
    pub setup: Setup,
    /// Which strategy.
    pub strategy: &'static str,
    /// The first finding, if any.
    pub finding: Option<Finding>,
    /// Did the strategy cover every reachable state (within the setup's sizes)?
    pub exhaustive: bool,
    /// Counters.
    pub stats: Stats,
    /// The determinism self-check of the finding's trace (`Ok` if no finding).
    pub self_check: Result<(), String>,
}

impl Outcome {
    /// `Some(true)`: a deadlock was found; `Some(false)`: an exhaustive
    /// search found none; `None`: inconclusive (bounded, or a non-exhaustive
    /// strategy found nothing, or an invariant failed first).
    #[must_use]
    pub fn deadlock_reachable(&self) -> Option<bool> {
        match &self.finding {
            Some(Finding {
                kind: FindingKind::Deadlock { .. },
                ..
            }) => Some(true),
            Some(_) => None,
            None if self.exhaustive => Some(false),
            None => None,
        }
    }

    /// The deadlock cycle's mechanism, if a deadlock was found.
    #[must_use]
    pub fn via(&self) -> Option<Via> {
        match &self.finding {
            Some(Finding {
                kind: FindingKind::Deadlock { via, .. },
                ..
            }) => Some(*via),
            _ => None,
        }
    }
}

/// What the engine concludes about one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to report; keep going.
    Continue,
    /// Terminal, everything completed.
    Complete,
    /// Terminal, stuck only on the worker cap.
    CapStall,
    /// A finding.
    Found(FindingKind),
}

/// The part of a search every strategy shares: the model, the bounds, the
/// checks and the counters.
#[derive(Debug)]
pub struct Engine {
    setup: Setup,
    max_states: usize,
    max_depth: usize,
    /// Seed for randomised strategies.
    pub seed: u64,
    /// Number of walks for randomised strategies.
    pub walks: usize,
    stats: Stats,
}

impl Engine {
    /// An engine for `setup` with `cfg`'s bounds.
    #[must_use]
    pub fn new(setup: Setup, cfg: &Config) -> Engine {
        Engine {
            setup,
            max_states: cfg.max_states,
            max_depth: cfg.max_depth,
            seed: cfg.seed,
            walks: cfg.walks,
            stats: Stats::default(),
        }
    }

    /// What is being checked.
    #[must_use]
    pub fn setup(&self) -> Setup {
        self.setup
    }

    /// The depth bound.
    #[must_use]
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The initial state.
    #[must_use]
    pub fn root(&self) -> State {
        State::initial(self.setup)
    }

    /// Every successor of `s`, in enabled-action order.
    pub fn successors(&mut self, s: &State) -> Vec<(Action, State)> {
        let v: Vec<(Action, State)> = enabled_actions(s)
            .into_iter()
            .map(|a| (a, step(s, a)))
            .collect();
        self.stats.transitions += v.len() as u64;
        v
    }

    /// Counts a newly visited state at `depth`; `false` once `max_states`
    /// is exhausted (the search must stop and is marked truncated).
    pub fn admit(&mut self, depth: usize) -> bool {
        if self.stats.states as usize >= self.max_states {
            self.stats.truncated = true;
            return false;
        }
        self.stats.states += 1;
        self.stats.max_depth = self.stats.max_depth.max(depth);
        true
    }

    /// `false` (and the run is marked bounded) if `depth` may not be extended.
    pub fn may_extend(&mut self, depth: usize) -> bool {
        if depth >= self.max_depth {
            self.stats.depth_cut = true;
            return false;
        }
        true
    }

    /// Checks `s`; `terminal` says it has no successors.
    pub fn verdict(&mut self, s: &State, terminal: bool) -> Verdict {
        if let Err(v) = invariants::check_all(s) {
            return Verdict::Found(FindingKind::Violation(v));
        }
        if let Some(cycle) = find_cycle(s) {
            let via = cycle.via(s);
            return Verdict::Found(FindingKind::Deadlock {
                cycle: Some(cycle),
                via,
            });
        }
        if !terminal {
            return Verdict::Continue;
        }
        if s.is_complete() {
            self.stats.complete += 1;
            Verdict::Complete
        } else if !s.worklist.is_empty() && s.setup.scenario.managed_pool() {
            // §4.5: the cap stands for worker creation that cannot succeed,
            // so work left on the worklist of a pool whose every worker is
            // busy or blocked is the starvation being looked for.
            Verdict::Found(FindingKind::Deadlock {
                cycle: None,
                via: Via::Starvation,
            })
        } else if !s.worklist.is_empty() {
            self.stats.cap_stalls += 1;
            Verdict::CapStall
        } else {
            Verdict::Found(FindingKind::Deadlock {
                cycle: None,
                via: Via::NoCollision,
            })
        }
    }
}

/// What a strategy hands back to the engine.
#[derive(Debug)]
pub struct Search {
    /// A finding: what, the schedule, and the state it ends in.
    pub finding: Option<(FindingKind, Vec<Action>, State)>,
    /// Every reachable state was visited (subject to the engine's bounds,
    /// which the engine records separately).
    pub exhaustive: bool,
}

/// A search order over the model (shaped after shuttle's `Scheduler`: the
/// engine owns the model and the checks, the strategy only picks what to
/// look at next).
pub trait Strategy {
    /// Short name (`dfs`, `bfs`, `random`, `replay`).
    fn name(&self) -> &'static str;

    /// Runs the search. Implementations call [`Engine::admit`] for every new
    /// state and [`Engine::verdict`] on it, and stop at the first finding.
    fn explore(&mut self, engine: &mut Engine) -> Search;
}

/// Model-checks `setup` with `strategy` under `cfg`'s bounds.
pub fn check(setup: Setup, cfg: &Config, strategy: &mut dyn Strategy) -> Outcome {
    let start = Instant::now();
    let mut engine = Engine::new(setup, cfg);
    let search = strategy.explore(&mut engine);
    let mut stats = engine.stats;
    stats.elapsed = start.elapsed();
    let exhaustive = search.exhaustive && !stats.bounded();
    let finding = search.finding.map(|(kind, actions, state)| Finding {
        kind,
        trace: Trace { setup, actions },
        state,
    });
    let self_check = match &finding {
        Some(f) => trace::self_check(&f.trace, &f.state).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    Outcome {
        setup,
        strategy: strategy.name(),
        finding,
        exhaustive,
        stats,
        self_check,
    }
}
