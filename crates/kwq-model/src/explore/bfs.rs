//! Breadth-first search: the first finding is at minimal depth, so its trace
//! is a shortest counterexample.

use super::{Engine, FindingKind, Search, StateSet, Strategy, Verdict};
use crate::model::{Action, State};
use std::collections::VecDeque;

/// Breadth-first search with a visited set and parent links.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bfs;

/// Parent link of a visited state: (index of the parent, action taken).
type Link = (u32, Action);

fn path(links: &[Link], mut at: u32) -> Vec<Action> {
    let mut p = Vec::new();
    while at != 0 {
        let (parent, a) = links[at as usize];
        p.push(a);
        at = parent;
    }
    p.reverse();
    p
}

fn found(kind: FindingKind, links: &[Link], at: u32, s: State) -> Search {
    Search {
        finding: Some((kind, path(links, at), s)),
        exhaustive: false,
    }
}

impl Strategy for Bfs {
    fn name(&self) -> &'static str {
        "bfs"
    }

    fn explore(&mut self, engine: &mut Engine) -> Search {
        let root = engine.root();
        // links[0] is a dummy for the root.
        let mut links: Vec<Link> = vec![(0, Action::CreateWorker)];
        let mut seen = StateSet::default();
        let mut queue: VecDeque<(State, u32, usize)> = VecDeque::new();
        engine.admit(0);
        if let Verdict::Found(k) = engine.verdict(&root, false) {
            return found(k, &links, 0, root);
        }
        seen.insert(root);
        queue.push_back((root, 0, 0));
        while let Some((s, idx, depth)) = queue.pop_front() {
            let succ = engine.successors(&s);
            if succ.is_empty() {
                if let Verdict::Found(k) = engine.verdict(&s, true) {
                    return found(k, &links, idx, s);
                }
                continue;
            }
            if !engine.may_extend(depth) {
                continue;
            }
            for (a, t) in succ {
                if seen.contains(&t) {
                    continue;
                }
                if !engine.admit(depth + 1) {
                    return Search {
                        finding: None,
                        exhaustive: false,
                    };
                }
                let at = links.len() as u32;
                links.push((idx, a));
                if let Verdict::Found(k) = engine.verdict(&t, false) {
                    return found(k, &links, at, t);
                }
                seen.insert(t);
                queue.push_back((t, at, depth + 1));
            }
        }
        Search {
            finding: None,
            exhaustive: true,
        }
    }
}
