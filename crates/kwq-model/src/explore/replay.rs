//! Replay: follow a fixed schedule (a parsed replay string) and report what
//! the final state is.

use super::{Engine, FindingKind, Search, Strategy, Verdict};
use crate::model::{enabled_actions, step, Action};

/// Follows `actions` from the initial state. Each action must be enabled
/// where it is applied; the first one that is not ends the replay, and
/// [`Replay::error`] says which.
#[derive(Clone, Debug)]
pub struct Replay {
    actions: Vec<Action>,
    error: Option<(usize, Action)>,
}

impl Replay {
    /// A replay of this schedule.
    #[must_use]
    pub fn new(actions: Vec<Action>) -> Replay {
        Replay {
            actions,
            error: None,
        }
    }

    /// The step (0-based) and action that was not enabled, if any.
    #[must_use]
    pub fn error(&self) -> Option<(usize, Action)> {
        self.error
    }
}

impl Strategy for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn explore(&mut self, engine: &mut Engine) -> Search {
        let mut s = engine.root();
        engine.admit(0);
        for (i, &a) in self.actions.iter().enumerate() {
            // Findings on the way are only reported at the end: a replay
            // reproduces the whole schedule it was given.
            if !enabled_actions(&s).contains(&a) {
                self.error = Some((i, a));
                return Search {
                    finding: None,
                    exhaustive: false,
                };
            }
            s = step(&s, a);
            engine.admit(i + 1);
        }
        let terminal = enabled_actions(&s).is_empty();
        let finding = match engine.verdict(&s, terminal) {
            Verdict::Found(k @ (FindingKind::Deadlock { .. } | FindingKind::Violation(_))) => {
                Some((k, self.actions.clone(), s))
            }
            _ => None,
        };
        Search {
            finding,
            exhaustive: false,
        }
    }
}
