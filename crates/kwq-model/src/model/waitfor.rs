//! The wait-for graph and deadlock cycles (**BT-6 liveness**: every queued
//! item eventually completes all its phases).
//!
//! Nodes are workers and items. Every node has at most one outgoing edge,
//! "cannot progress until that node progresses":
//!
//! | from | to | when |
//! |------|----|------|
//! | worker w | item b | w's ordered phase waits for lower-FS I/O that bottom item b carries (2019) |
//! | worker w | item e | w's ordered phase waits for a read whose end-io item is e (2014) |
//! | item i | worker v | i is parked on v's scheduled list (collision) |
//! | item i | worker u | u is running i's ordered phase |
//! | item i | item h | i's first phase is done but head h of its ordered list is not (head-of-line) |
//! | item i | worker u | u is running i's first phase |
//!
//! A worker that is not blocked has no outgoing edge (it can take a step),
//! nor does an item that waits only for a worker to pick it. So a cycle
//! consists of blocked workers and items that only their members can move:
//! it is *stable*, and every execution from that state ends in a terminal
//! state where the cycle's items never complete. The explorers therefore
//! report a deadlock as soon as a cycle exists.

use super::state::{ItemId, Origin, Pc, State, Wait, WorkerId, DONE, ORDERED_COMPLETE, PARKED};
use std::fmt::Write as _;

/// A wait-for graph node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A worker.
    Worker(WorkerId),
    /// An item.
    Item(ItemId),
}

/// Why one node waits for the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Why {
    /// The worker's ordered phase (of this item) waits for lower-FS I/O.
    LowerIo(ItemId),
    /// The worker's ordered phase (of this item) waits for a read.
    Read(ItemId),
    /// The item is parked on the worker's scheduled list.
    ParkedBehind,
    /// The worker is running the item's ordered phase.
    OrderedPhaseOn,
    /// The item waits for the head of its ordered list.
    HeadOfLine,
    /// The worker is running the item's first phase.
    FirstPhaseOn,
}

/// How the recycled slot in a deadlock cycle was freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// The blocked worker freed its own item early (the 2014/2019 bugs).
    SelfFree,
    /// Another worker freed the blocked worker's item (residual window R1).
    OtherWorkerFree,
    /// No collision in the cycle.
    NoCollision,
    /// §4.5: no cycle; work waits on the worklist of a pool that cannot
    /// create the worker it needs, while every worker is busy or blocked.
    Starvation,
}

impl Via {
    /// Short name for tables and JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Via::SelfFree => "self-free",
            Via::OtherWorkerFree => "other-worker-free",
            Via::NoCollision => "no-collision",
            Via::Starvation => "pool-starvation",
        }
    }
}

/// A cycle of the wait-for graph: `edges[k] = (from, why, to)` and the last
/// edge's `to` is the first edge's `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The edges, starting at the lowest-numbered worker of the cycle.
    pub edges: Vec<(Node, Why, Node)>,
}

/// The outgoing edge of `n`, if it cannot progress by itself.
#[must_use]
pub fn waits_for(s: &State, n: Node) -> Option<(Why, Node)> {
    match n {
        Node::Worker(w) => match s.worker(w).pc {
            Pc::Blocked(h, Wait::Lower(Some(b))) => Some((Why::LowerIo(h), Node::Item(b))),
            Pc::Blocked(h, Wait::Read(e)) => Some((Why::Read(h), Node::Item(e))),
            _ => None,
        },
        Node::Item(i) => {
            let it = s.item(i);
            let finished = it.is_freed()
                || it.btrfs & ORDERED_COMPLETE != 0
                || (it.origin == Origin::EndIo && it.btrfs & DONE != 0);
            if finished {
                return None;
            }
            if it.work & PARKED != 0 {
                return s.parker_of(i).map(|v| (Why::ParkedBehind, Node::Worker(v)));
            }
            if let Some(u) = s.ordered_runner_of(i) {
                return Some((Why::OrderedPhaseOn, Node::Worker(u)));
            }
            if it.btrfs & DONE != 0 && it.origin.has_ordered_phase() {
                let head = s.ordered[it.wq as usize].first().copied();
                return head
                    .filter(|&h| h != i)
                    .map(|h| (Why::HeadOfLine, Node::Item(h)));
            }
            let runner = s.runner_of(i).filter(|&u| s.worker(u).pc == Pc::Func);
            runner.map(|u| (Why::FirstPhaseOn, Node::Worker(u)))
        }
    }
}

/// The first wait-for cycle through a blocked worker, if any.
#[must_use]
pub fn find_cycle(s: &State) -> Option<Cycle> {
    for (i, w) in s.workers.iter().enumerate() {
        if !matches!(w.pc, Pc::Blocked(..)) {
            continue;
        }
        let start = Node::Worker(WorkerId(i as u8));
        let mut path: Vec<(Node, Why, Node)> = Vec::new();
        let mut at = start;
        while let Some((why, next)) = waits_for(s, at) {
            if let Some(k) = path.iter().position(|e| e.0 == next) {
                let mut edges = path.split_off(k);
                edges.push((at, why, next));
                let first_worker = edges
                    .iter()
                    .enumerate()
                    .filter_map(|(k, e)| match e.0 {
                        Node::Worker(w) => Some((w, k)),
                        Node::Item(_) => None,
                    })
                    .min()
                    .map_or(0, |(_, k)| k);
                edges.rotate_left(first_worker);
                return Some(Cycle { edges });
            }
            if next == at || path.len() > s.items.len() + s.workers.len() {
                break;
            }
            path.push((at, why, next));
            at = next;
        }
    }
    None
}

impl Cycle {
    /// How the collided slot of this cycle was freed.
    #[must_use]
    pub fn via(&self, s: &State) -> Via {
        for &(from, why, to) in &self.edges {
            if let (Node::Item(_), Why::ParkedBehind, Node::Worker(v)) = (from, why, to) {
                if let Some(c) = s.worker(v).current {
                    let w = s.worker(v);
                    return match (w.freed_own, s.item(c.item).freed) {
                        (true, _) => Via::SelfFree,
                        (false, true) => Via::OtherWorkerFree,
                        (false, false) => Via::NoCollision,
                    };
                }
            }
        }
        Via::NoCollision
    }

    /// One line: `worker A —waits for lower-FS I/O (W's ordered phase)→ X′ —parked on A's scheduled list→ worker A`.
    #[must_use]
    pub fn render(&self, s: &State) -> String {
        let name = |n: Node| match n {
            Node::Worker(w) => format!("worker {w}"),
            Node::Item(i) => s.item_name(i),
        };
        let mut out = name(self.edges[0].0);
        for &(from, why, to) in &self.edges {
            let label = match (why, from, to) {
                (Why::LowerIo(h), _, _) => format!(
                    "waits for lower-FS I/O ({}'s ordered phase writes through the loop device)",
                    s.item_name(h)
                ),
                (Why::Read(h), _, _) => format!(
                    "waits for a metadata read ({}'s ordered phase)",
                    s.item_name(h)
                ),
                (Why::ParkedBehind, _, Node::Worker(v)) => {
                    format!("is parked on {v}'s scheduled list")
                }
                (Why::OrderedPhaseOn, _, _) => "ordered phase runs on".to_string(),
                (Why::HeadOfLine, _, _) => "waits in the ordered list behind".to_string(),
                (Why::FirstPhaseOn, _, _) => "first phase runs on".to_string(),
                (Why::ParkedBehind, _, Node::Item(_)) => "waits for".to_string(),
            };
            let _ = write!(out, " —{label}→ {}", name(to));
        }
        out
    }
}
