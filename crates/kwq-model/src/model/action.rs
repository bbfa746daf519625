//! Actions (the labels of transitions) and the events a step reports.
//!
//! An [`Action`] names *who* moves: a worker by its letter, or an
//! environment actor (the writeback of the upper filesystem, the lower
//! filesystem's writeback, the read completion). Allocation choices are part
//! of the action, so that under [`AllocPolicy::Any`](crate::AllocPolicy::Any)
//! different slot choices are different transitions and a trace pins them
//! down. Each action has a short token (`PA`, `Q1`, `LA1`, …); a replay string
//! is the setup header followed by the tokens joined with `.`.

use super::state::{ItemId, Origin, Slot, Wait, WorkerId};
use std::fmt;

/// One atomic step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The upper filesystem's writeback (`cow_file_range_async`) allocates
    /// its next delalloc item at `slot` and queues it (`btrfs_queue_work`:
    /// append to the ordered list, then `queue_work`). Token `Q<slot>`.
    Writeback {
        /// Slot handed out by the allocator.
        slot: Slot,
    },
    /// The manager creates a worker (`maybe_create_worker`). Token `N`.
    CreateWorker,
    /// The idle-list head wakes, takes the worklist head and runs the
    /// collision check of `process_one_work`: it either starts the item or
    /// parks it on the colliding worker's scheduled list. Token `P<worker>`.
    Pick(WorkerId),
    /// The worker runs its item's first phase and sets DONE (coarse: and
    /// takes `list_lock` for the first time). Token `F<worker>`.
    Func(WorkerId),
    /// `run_ordered_work`: take `list_lock`, look at the head, claim it or
    /// leave the loop. Token `K<worker>`.
    Lock(WorkerId),
    /// The claimed ordered phase completes without waiting; the head is
    /// unlinked and freed (or its free deferred). Token `O<worker>`.
    OrderedDone(WorkerId),
    /// The claimed ordered phase starts I/O and waits: 2019 a write through
    /// the loop device, 2014 a metadata read whose end-io item is allocated
    /// at `slot` now. Token `B<worker>[slot]`.
    OrderedWait {
        /// The worker.
        worker: WorkerId,
        /// 2014: where the end-io item is allocated.
        slot: Option<Slot>,
    },
    /// What the worker waited for happened; its ordered phase completes as
    /// in [`Action::OrderedDone`]. Token `W<worker>`.
    Wake(WorkerId),
    /// v5.5: after the ordered loop, free the worker's own item. Token `S<worker>`.
    FreeSelf(WorkerId),
    /// The helper has returned: leave `process_one_work` (hash_del,
    /// nr_active--), then run the scheduled list or go idle. Token `R<worker>`.
    Return(WorkerId),
    /// 2019: the bottom filesystem's writeback allocates a delalloc item at
    /// `slot` for the write `waiter` is blocked on, and queues it. Token
    /// `L<waiter><slot>`.
    LowerWriteback {
        /// The top worker whose write this is.
        waiter: WorkerId,
        /// Slot handed out by the allocator.
        slot: Slot,
    },
    /// 2014: the read bio completes; its end-io item is queued on
    /// `btrfs-endio-meta`. Token `C<item>`.
    ReadComplete(ItemId),
    /// §4.5: the mayday timer fired while the pool needed a worker it could
    /// not create, and this rescuer takes the first worklist item of its
    /// workqueue, runs the collision check and starts it (or parks it).
    /// Token `M<rescuer>`.
    Mayday(WorkerId),
}

impl Action {
    /// The worker that moves, if the actor is a worker.
    #[must_use]
    pub fn worker(&self) -> Option<WorkerId> {
        match *self {
            Action::Pick(w)
            | Action::Func(w)
            | Action::Lock(w)
            | Action::OrderedDone(w)
            | Action::OrderedWait { worker: w, .. }
            | Action::Wake(w)
            | Action::FreeSelf(w)
            | Action::Return(w)
            | Action::Mayday(w) => Some(w),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |s: Slot| s.0 as u32 + 1;
        match *self {
            Action::Writeback { slot } => write!(f, "Q{}", n(slot)),
            Action::CreateWorker => write!(f, "N"),
            Action::Pick(w) => write!(f, "P{w}"),
            Action::Func(w) => write!(f, "F{w}"),
            Action::Lock(w) => write!(f, "K{w}"),
            Action::OrderedDone(w) => write!(f, "O{w}"),
            Action::OrderedWait { worker, slot: None } => write!(f, "B{worker}"),
            Action::OrderedWait {
                worker,
                slot: Some(s),
            } => write!(f, "B{worker}{}", n(s)),
            Action::Wake(w) => write!(f, "W{w}"),
            Action::FreeSelf(w) => write!(f, "S{w}"),
            Action::Return(w) => write!(f, "R{w}"),
            Action::LowerWriteback { waiter, slot } => write!(f, "L{waiter}{}", n(slot)),
            Action::ReadComplete(i) => write!(f, "C{}", i.0 as u32 + 1),
            Action::Mayday(w) => write!(f, "M{w}"),
        }
    }
}

/// A token that is not an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadToken(pub String);

impl fmt::Display for BadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an action token", self.0)
    }
}

impl std::str::FromStr for Action {
    type Err = BadToken;

    fn from_str(tok: &str) -> Result<Action, BadToken> {
        let bad = || BadToken(tok.to_string());
        let mut chars = tok.chars();
        let kind = chars.next().ok_or_else(bad)?;
        let rest: String = chars.collect();
        let worker = |s: &str| -> Result<(WorkerId, String), BadToken> {
            let mut c = s.chars();
            let l = c.next().ok_or_else(bad)?;
            if !l.is_ascii_uppercase() {
                return Err(bad());
            }
            Ok((WorkerId(l as u8 - b'A'), c.collect()))
        };
        let number = |s: &str| -> Result<u8, BadToken> {
            let v: u8 = s.parse().map_err(|_| bad())?;
            v.checked_sub(1).ok_or_else(bad)
        };
        let only = |s: String, a: Action| if s.is_empty() { Ok(a) } else { Err(bad()) };
        match kind {
            'Q' => Ok(Action::Writeback {
                slot: Slot(number(&rest)?),
            }),
            'N' => only(rest, Action::CreateWorker),
            'C' => Ok(Action::ReadComplete(ItemId(number(&rest)?))),
            'P' | 'F' | 'K' | 'O' | 'W' | 'S' | 'R' | 'B' | 'L' | 'M' => {
                let (w, tail) = worker(&rest)?;
                match kind {
                    'P' => only(tail, Action::Pick(w)),
                    'F' => only(tail, Action::Func(w)),
                    'K' => only(tail, Action::Lock(w)),
                    'O' => only(tail, Action::OrderedDone(w)),
                    'W' => only(tail, Action::Wake(w)),
                    'S' => only(tail, Action::FreeSelf(w)),
                    'R' => only(tail, Action::Return(w)),
                    'M' => only(tail, Action::Mayday(w)),
                    'B' if tail.is_empty() => Ok(Action::OrderedWait {
                        worker: w,
                        slot: None,
                    }),
                    'B' => Ok(Action::OrderedWait {
                        worker: w,
                        slot: Some(Slot(number(&tail)?)),
                    }),
                    _ => Ok(Action::LowerWriteback {
                        waiter: w,
                        slot: Slot(number(&tail)?),
                    }),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// Why a worker left `run_ordered_work`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopExit {
    /// The ordered list is empty.
    Empty,
    /// The head's first phase has not finished (DONE clear).
    HeadNotDone(ItemId),
    /// Somebody else already claimed the head (ORDER_DONE set).
    HeadClaimed(ItemId),
}

/// What a step did, in the thread's vocabulary. A step reports one or more
/// events; the trace renders them and the tests assert on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// An item was allocated at `slot` by the actor `origin` stands for.
    Allocated {
        /// The new item.
        item: ItemId,
        /// Its address.
        slot: Slot,
        /// Who allocated it.
        origin: Origin,
    },
    /// An item was queued (and, for Btrfs items with an ordered phase,
    /// appended to its ordered list).
    Queued {
        /// The item.
        item: ItemId,
        /// Its workqueue.
        wq: u8,
        /// Held back by `max_active`.
        inactive: bool,
    },
    /// An inactive item was moved to the worklist.
    Activated {
        /// The item.
        item: ItemId,
    },
    /// The manager created a worker.
    WorkerCreated {
        /// The new worker.
        worker: WorkerId,
    },
    /// A worker started executing an item (busy entry added).
    Started {
        /// The worker.
        worker: WorkerId,
        /// The item.
        item: ItemId,
    },
    /// The collision check matched: `item` was parked on `behind`'s
    /// scheduled list.
    Parked {
        /// The item.
        item: ItemId,
        /// The worker that found the collision.
        picker: WorkerId,
        /// The worker whose busy entry matched.
        behind: WorkerId,
    },
    /// A first phase finished and DONE was set.
    FirstPhaseDone {
        /// The worker.
        worker: WorkerId,
        /// The item.
        item: ItemId,
    },
    /// An end-io item's function ran: the read it stands for completed.
    ReadDelivered {
        /// The worker.
        worker: WorkerId,
        /// The end-io item.
        item: ItemId,
    },
    /// A worker claimed an ordered phase ("runs ordered work").
    Claimed {
        /// The worker.
        worker: WorkerId,
        /// The item whose ordered phase it runs.
        item: ItemId,
    },
    /// A worker left the ordered loop.
    LeftLoop {
        /// The worker.
        worker: WorkerId,
        /// Why.
        why: LoopExit,
    },
    /// An ordered phase completed; the item was unlinked.
    OrderedComplete {
        /// The worker.
        worker: WorkerId,
        /// The item.
        item: ItemId,
    },
    /// An item was freed.
    Freed {
        /// The item.
        item: ItemId,
        /// Its (now free) slot.
        slot: Slot,
        /// The worker that freed it.
        by: WorkerId,
    },
    /// v5.5: the worker unlinked its own item and deferred the free.
    FreeDeferred {
        /// The worker.
        worker: WorkerId,
        /// Its own item.
        item: ItemId,
    },
    /// A worker blocked inside an ordered phase.
    Blocked {
        /// The worker.
        worker: WorkerId,
        /// The item whose ordered phase waits.
        item: ItemId,
        /// What for.
        wait: Wait,
    },
    /// What a blocked worker waited for happened.
    Woken {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker left `process_one_work` for an item (busy entry removed).
    Returned {
        /// The worker.
        worker: WorkerId,
        /// The item it had been executing.
        item: ItemId,
    },
    /// A worker went back to the idle list.
    WentIdle {
        /// The worker.
        worker: WorkerId,
    },
}
