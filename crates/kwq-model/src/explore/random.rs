//! Seeded random walks: cheap, not exhaustive, good at long schedules.

use super::{Engine, Search, Strategy, Verdict};
use crate::model::{enabled_actions, step};

/// `walks` random walks from the initial state, each choosing uniformly
/// among the enabled actions until a terminal state, a finding or the depth
/// bound. Never exhaustive. Deterministic for a given seed.
#[derive(Clone, Copy, Debug)]
pub struct RandomWalk {
    seed: u64,
}

impl RandomWalk {
    /// A walker with this seed.
    #[must_use]
    pub fn new(seed: u64) -> RandomWalk {
        RandomWalk { seed }
    }
}

/// SplitMix64: tiny, good enough, and the same on every platform.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Strategy for RandomWalk {
    fn name(&self) -> &'static str {
        "random"
    }

    fn explore(&mut self, engine: &mut Engine) -> Search {
        let mut rng = self.seed;
        for _ in 0..engine.walks {
            let mut s = engine.root();
            let mut path = Vec::new();
            loop {
                let enabled = enabled_actions(&s);
                if !engine.admit(path.len()) {
                    return Search {
                        finding: None,
                        exhaustive: false,
                    };
                }
                if let Verdict::Found(k) = engine.verdict(&s, enabled.is_empty()) {
                    return Search {
                        finding: Some((k, path, s)),
                        exhaustive: false,
                    };
                }
                if enabled.is_empty() || !engine.may_extend(path.len()) {
                    break;
                }
                let a = enabled[(next(&mut rng) % enabled.len() as u64) as usize];
                s = step(&s, a);
                path.push(a);
            }
        }
        Search {
            finding: None,
            exhaustive: false,
        }
    }
}
