//! The larger exhaustive proof runs of the candidate fix (`v6-fix`), beyond
//! the matrix's bounds.
//!
//! # Protocol
//!
//! Each [`ProofRun`] names a setup and the number of distinct states an
//! exhaustive depth-first search of it visits. The number was measured once
//! and written down here; [`ProofRun::run`] searches again and
//! [`ProofRun::confirms`] holds only if the search is exhaustive (no bound
//! hit), finds neither a deadlock nor a broken invariant, reaches complete
//! end states, and visits exactly the recorded number of states. The
//! search is deterministic, so a different count means the model changed
//! and the claim in `docs/report-r1.md` must be re-measured.
//!
//! These runs take minutes and gigabytes, so they are not part of the
//! matrix; the test `larger_proof_v6_fix` (ignored unless asked for) runs
//! them, and `kwq model report` quotes the recorded numbers.

use crate::config::Config;
use crate::explore::{check, Dfs, Outcome};
use crate::setup::{AllocPolicy, Granularity, Scenario, Setup, Version};

/// One recorded exhaustive run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofRun {
    /// What is searched.
    pub setup: Setup,
    /// Distinct states the exhaustive search visits.
    pub states: u64,
}

/// State budget of a proof run: far above the recorded counts, so that a
/// run that grows is reported as bounded rather than silently cut.
pub const PROOF_MAX_STATES: usize = 40_000_000;

const fn proof_setup(g: Granularity, items: u8, waits: u8, workers: u8) -> Setup {
    Setup {
        version: Version::V6Fix,
        scenario: Scenario::Y2019,
        granularity: g,
        alloc: AllocPolicy::Lifo,
        items,
        max_workers: workers,
        max_active: 4,
        waits,
    }
}

/// The recorded runs: `v6-fix` × 2019 at `fine` and `fine-all`, 4 upper
/// items, at most 5 workers, with at most 1 I/O wait (what R1 needs) and
/// with at most 2.
pub const PROOF: [ProofRun; 4] = [
    ProofRun {
        setup: proof_setup(Granularity::Fine, 4, 1, 5),
        states: 989_716,
    },
    ProofRun {
        setup: proof_setup(Granularity::FineAll, 4, 1, 5),
        states: 1_302_985,
    },
    ProofRun {
        setup: proof_setup(Granularity::Fine, 4, 2, 5),
        states: 22_770_031,
    },
    ProofRun {
        setup: proof_setup(Granularity::FineAll, 4, 2, 5),
        states: 35_609_812,
    },
];

impl ProofRun {
    /// Searches the setup exhaustively (depth-first).
    #[must_use]
    pub fn run(&self) -> Outcome {
        let cfg = Config {
            max_states: PROOF_MAX_STATES,
            ..Config::default()
        };
        check(self.setup, &cfg, &mut Dfs)
    }

    /// Does `o` confirm the recorded claim (exhaustive, nothing found, some
    /// runs complete, exactly [`ProofRun::states`] states)?
    #[must_use]
    pub fn confirms(&self, o: &Outcome) -> bool {
        o.setup == self.setup
            && o.exhaustive
            && o.finding.is_none()
            && o.stats.complete > 0
            && o.stats.states == self.states
    }

    /// The command that repeats this run.
    #[must_use]
    pub fn command(&self) -> String {
        let s = self.setup;
        format!(
            "kwq model check --code {} --scenario {} --granularity {} --items {} --waits {} --workers {} --strategy dfs --max-states {}",
            s.version, s.scenario, s.granularity, s.items, s.waits, s.max_workers, PROOF_MAX_STATES
        )
    }
}
