//! Integration tests of kwq-model (one binary, shuttle/ripgrep style).
//!
//! Heavy matrix cells (≥ 70 000 states) are `#[ignore]`d in debug builds;
//! run them with `cargo test -p kwq-model --release` (they are not ignored
//! there) or `cargo test -p kwq-model -- --include-ignored`.

mod invariants;
mod matrix;
mod r1;
mod replay;
mod seed_trace;
mod strategies;

use kwq_model::{check, Bfs, Config, Outcome, Scenario, Setup, Version};

/// BFS of `v × s` at the default sizes (3 items, ≤ 2 waits, ≤ 4 workers).
pub fn bfs(v: Version, s: Scenario) -> Outcome {
    check(Setup::new(v, s), &Config::default(), &mut Bfs)
}
