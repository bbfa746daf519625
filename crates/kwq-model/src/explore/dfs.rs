//! Depth-first search with a visited set: the cheapest exhaustive search;
//! its first counterexample is not necessarily the shortest.
//!
//! The visited set holds the compact encoding of each state
//! ([`crate::model::encode`]), about a sixth of a `State`'s size, so the
//! larger proof runs fit in memory. Exact, like every visited set here: no
//! hash compaction.

use super::{Engine, FxHasher, Search, Strategy, Verdict};
use crate::model::encode::encoded;
use crate::model::{Action, State};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// Depth-first search with a visited set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dfs;

struct Frame {
    succ: std::vec::IntoIter<(Action, State)>,
}

impl Strategy for Dfs {
    fn name(&self) -> &'static str {
        "dfs"
    }

    fn explore(&mut self, engine: &mut Engine) -> Search {
        let root = engine.root();
        engine.admit(0);
        let mut seen: HashSet<Box<[u8]>, BuildHasherDefault<FxHasher>> = HashSet::default();
        let mut path: Vec<Action> = Vec::new();
        let first = engine.successors(&root);
        if let Verdict::Found(k) = engine.verdict(&root, first.is_empty()) {
            return Search {
                finding: Some((k, path, root)),
                exhaustive: false,
            };
        }
        seen.insert(encoded(&root));
        let mut stack = vec![Frame {
            succ: first.into_iter(),
        }];
        while let Some(top) = stack.last_mut() {
            let Some((a, t)) = top.succ.next() else {
                stack.pop();
                path.pop();
                continue;
            };
            let code = encoded(&t);
            if seen.contains(&code) {
                continue;
            }
            let depth = stack.len();
            if !engine.admit(depth) {
                return Search {
                    finding: None,
                    exhaustive: false,
                };
            }
            path.push(a);
            let succ = engine.successors(&t);
            if let Verdict::Found(k) = engine.verdict(&t, succ.is_empty()) {
                return Search {
                    finding: Some((k, path, t)),
                    exhaustive: false,
                };
            }
            seen.insert(code);
            if succ.is_empty() || !engine.may_extend(depth) {
                path.pop();
                continue;
            }
            stack.push(Frame {
                succ: succ.into_iter(),
            });
        }
        Search {
            finding: None,
            exhaustive: true,
        }
    }
}
