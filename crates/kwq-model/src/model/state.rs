//! The model state: one unbound worker pool, two workqueues with their pwqs
//! and Btrfs ordered lists, the items, the workers and the allocator.
//!
//! Field legend (docs/kernel.md §1.3, §2.1, §4.1):
//!
//! | model field            | kernel counterpart |
//! |------------------------|--------------------|
//! | `State::worklist`      | `worker_pool::worklist` |
//! | `State::idle`          | `worker_pool::idle_list` (LIFO: the last element is the head) |
//! | `Worker::current`      | `worker->current_work/current_func/current_pwq`, i.e. the worker's busy_hash entry |
//! | `Worker::scheduled`    | `worker->scheduled` |
//! | `State::pwqs[wq]`      | `pool_workqueue::nr_active` and `delayed_works` (the inactive list) |
//! | `State::ordered[wq]`   | `__btrfs_workqueue::ordered_list` |
//! | `Item::work`           | `work_struct::data` bits, with `kwq_policy::state` names |
//! | `Item::btrfs`          | `btrfs_work::flags` (`WORK_DONE_BIT`, `WORK_ORDER_DONE_BIT`) |
//! | `Item::slot`           | the item's address (the embedded `work_struct`) |
//! | `State::free`          | the slab freelist (LIFO) |

use super::bounded::Bounded;
use crate::setup::{FuncPtr, Setup, MAX_ITEMS, MAX_WORKERS};
use kwq_policy::{Concurrency, PoolSnapshot};
use std::fmt;

/// Index of an item in [`State::items`] (allocation order; never reused, so
/// it is the item's identity, unlike its [`Slot`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u8);

/// Index of a worker in [`State::workers`] (creation order), printed as a
/// letter: worker A, B, C, …
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u8);

/// An allocator slot: the address of an item's `work_struct`. Printed 1-based
/// (`s1`, `s2`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u8);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (b'A' + self.0) as char)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0 + 1)
    }
}

/// Where an item comes from (and so whether it has an ordered phase and
/// whether that phase may wait).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Origin {
    #[default]
    /// A delalloc `async_cow` item of the (top) filesystem's writeback. Its
    /// ordered phase may wait: for lower-FS I/O (2019) or for a metadata read
    /// (2014).
    Upper,
    /// A delalloc item of the bottom filesystem (2019), allocated by its
    /// writeback when a top ordered phase writes through the loop device.
    /// Its ordered phase never waits.
    Lower,
    /// A read end-io item (2014), allocated when the read bio is prepared and
    /// queued when the read completes. No ordered phase; its function frees
    /// it (`end_workqueue_fn`).
    EndIo,
}

impl Origin {
    /// Does the item have a Btrfs ordered phase (is it on an ordered list)?
    #[must_use]
    pub fn has_ordered_phase(self) -> bool {
        !matches!(self, Origin::EndIo)
    }
}

/// Model-local Btrfs flag: the item's ordered phase finished and it was
/// unlinked from the ordered list (no kernel bit; the kernel frees it).
pub const ORDERED_COMPLETE: u8 = 1 << 2;

/// Model-local Btrfs flag of the candidate fix ([`Version::V6Fix`](crate::Version::V6Fix)):
/// the worker executing this item has not yet dropped its reference (it is
/// still inside the helper). Set when the item starts, cleared by the
/// worker's release step; the item is freed by whichever of the release and
/// the ordered phase's completion comes last.
pub const HELD: u8 = 1 << 3;

/// `kwq_policy::state` bit as the model's `u8`.
pub(crate) const fn bit(b: usize) -> u8 {
    b as u8
}

/// Work bits (`Item::work`).
pub const PENDING: u8 = bit(kwq_policy::state::PENDING);
/// A worker's busy entry points at this item (`current_work`).
pub const RUNNING: u8 = bit(kwq_policy::state::RUNNING);
/// The item is on some worker's `scheduled` list after a collision.
pub const PARKED: u8 = bit(kwq_policy::state::PARKED);
/// The item is on its pwq's inactive list (`WORK_STRUCT_DELAYED`).
pub const INACTIVE: u8 = bit(kwq_policy::state::INACTIVE);
/// Btrfs `WORK_DONE_BIT` (`Item::btrfs`): the first phase finished. For an
/// end-io item: its function ran.
pub const DONE: u8 = bit(kwq_policy::state::DONE);
/// Btrfs `WORK_ORDER_DONE_BIT`: somebody claimed the ordered phase.
pub const ORDER_DONE: u8 = bit(kwq_policy::state::ORDER_DONE);

/// One work item (a `btrfs_work` with its embedded `work_struct`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Item {
    /// Which actor allocated it.
    pub origin: Origin,
    /// Its address.
    pub slot: Slot,
    /// The kernel function pointer stored in the `work_struct`.
    pub func: FuncPtr,
    /// The workqueue (and Btrfs sub-queue) it is queued on: 0 or 1.
    pub wq: u8,
    /// Work bits: [`PENDING`], [`RUNNING`], [`PARKED`], [`INACTIVE`].
    pub work: u8,
    /// Btrfs bits: [`DONE`], [`ORDER_DONE`], [`ORDERED_COMPLETE`].
    pub btrfs: u8,
    /// The item has been freed (its slot is free or reused).
    pub freed: bool,
}

impl Item {
    /// Has the item been freed?
    #[must_use]
    pub fn is_freed(&self) -> bool {
        self.freed
    }
}

/// The busy-table entry of a worker (`current_work`, `current_func`,
/// `current_pwq`). The item id is only compared under kwq identity; the
/// kernel compares `slot` and `func`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Current {
    /// The item the worker started (kwq's identity).
    pub item: ItemId,
    /// Its address when it started.
    pub slot: Slot,
    /// Its function when it started.
    pub func: FuncPtr,
    /// Its workqueue, snapshotted before the function ran (Josef's fix to
    /// the v1 patch: never read `self->wq` after DONE).
    pub wq: u8,
}

/// What an ordered phase is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    /// 2019: the write through the loop device needs the bottom FS to write
    /// the data back; `Some(b)` once the bottom writeback queued item `b`.
    /// Satisfied when `b`'s ordered phase (its submission) completed.
    Lower(Option<ItemId>),
    /// 2014: a free-space-cache page read whose end-io item is `e`;
    /// satisfied once `e`'s function ran.
    Read(ItemId),
}

/// A worker's program counter inside `worker_thread` / the Btrfs helper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pc {
    /// On the idle list.
    #[default]
    Idle,
    /// About to run the current item's first phase (`func`).
    Func,
    /// About to take `list_lock` in `run_ordered_work` and look at the head.
    Lock,
    /// Claimed this item's ordered phase (ORDER_DONE set), about to run it.
    Ordered(ItemId),
    /// Inside this item's ordered phase, waiting.
    Blocked(ItemId, Wait),
    /// Left the ordered loop; `free_self` is set (deferred self-free).
    FreeSelf,
    /// The helper returned; about to leave `process_one_work` (hash_del).
    Return,
}

/// One worker thread of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Worker {
    /// Busy-table entry, `None` when not executing.
    pub current: Option<Current>,
    /// Where the worker is.
    pub pc: Pc,
    /// The v5.5 `free_self` local of `run_ordered_work`.
    pub free_self: bool,
    /// Ghost flag: this worker itself freed the item it is executing
    /// (early self-free, deferred self-free, or an end-io item freeing
    /// itself). Used by BT-4 and to classify deadlocks.
    pub freed_own: bool,
    /// Items parked behind this worker (collision path), FIFO.
    pub scheduled: Bounded<ItemId, SCHEDULED_CAP>,
    /// `Some(wq)`: this is the rescuer of workqueue `wq` (§4.5 scenarios):
    /// never on the idle list, not counted in the pool's workers, never
    /// concurrency-managed (the kernel's rescuer keeps `WORKER_PREP`).
    pub rescuer_of: Option<u8>,
    /// [`Version::V6DeferAll`](crate::Version::V6DeferAll): items whose
    /// ordered phase this worker ran and whose free it defers to its exit
    /// from `run_ordered_work`. A worker runs the ordered phases of one
    /// workqueue only, which has at most [`MAX_ITEMS`] such items.
    pub to_free: Bounded<ItemId, { MAX_ITEMS as usize }>,
}

impl Worker {
    /// Is this a pool worker (not a rescuer)?
    #[must_use]
    pub fn in_pool(&self) -> bool {
        self.rescuer_of.is_none()
    }
}

/// A pool_workqueue: the link of one workqueue to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Pwq {
    /// Items counted against `max_active` (on the worklist, parked or running).
    pub nr_active: u8,
    /// Items held back by `max_active`, FIFO.
    pub inactive: ItemList,
}

/// The whole model state. Cloned on every step; compared and hashed exactly
/// by the explorers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// What is being checked (immutable).
    pub setup: Setup,
    /// Every item ever allocated, in allocation order.
    pub items: Bounded<Item, ITEM_CAP>,
    /// Every worker ever created, in creation order.
    pub workers: Bounded<Worker, WORKER_CAP>,
    /// Idle list; the last element is the head (LIFO, like `idle_list`).
    pub idle: Bounded<WorkerId, WORKER_CAP>,
    /// The pool's worklist; the first element is the head.
    pub worklist: ItemList,
    /// pwq of workqueue 0 and 1.
    pub pwqs: [Pwq; 2],
    /// Btrfs ordered list of workqueue 0 and 1; the first element is the head.
    pub ordered: [ItemList; 2],
    /// Free slots. LIFO: the last element is handed out next. `Any`: kept
    /// sorted (its order is irrelevant).
    pub free: Bounded<Slot, ITEM_CAP>,
    /// The next never-used slot.
    pub next_slot: u8,
    /// How many upper-layer items the writeback has queued so far.
    pub queued: u8,
    /// How many ordered phases have waited for I/O so far.
    pub waits: u8,
}

/// Capacity of the item table: upper items plus one item per I/O wait.
pub const ITEM_CAP: usize = 2 * MAX_ITEMS as usize;
/// Capacity of the worker table: the pool's cap plus two rescuers.
pub const WORKER_CAP: usize = MAX_WORKERS as usize + 2;
/// Capacity of a scheduled list. Parked items are live and all sit at the
/// worker's busy address, so at most one is parked at a time; 4 is slack.
pub const SCHEDULED_CAP: usize = 4;
/// An inline list of item ids.
pub type ItemList = Bounded<ItemId, ITEM_CAP>;

/// Names of the upper-layer items in queueing order (X, then W as in Omar's
/// report, then more letters).
const UPPER_NAMES: [&str; 8] = ["X", "W", "Y", "Z", "V", "U", "T", "S"];

impl State {
    /// The initial state: nothing allocated, one idle worker (the kernel
    /// creates the first worker with the pool).
    #[must_use]
    pub fn initial(setup: Setup) -> State {
        let rescuers = setup.scenario.rescuers().then_some([0u8, 1]);
        let workers = [Worker::default()]
            .into_iter()
            .chain(rescuers.into_iter().flatten().map(|wq| Worker {
                rescuer_of: Some(wq),
                ..Worker::default()
            }))
            .collect();
        State {
            setup,
            items: Bounded::new(),
            workers,
            idle: [WorkerId(0)].into_iter().collect(),
            worklist: Bounded::new(),
            pwqs: [Pwq::default(), Pwq::default()],
            ordered: [Bounded::new(), Bounded::new()],
            free: Bounded::new(),
            next_slot: 0,
            queued: 0,
            waits: 0,
        }
    }

    /// The item with this id.
    #[must_use]
    pub fn item(&self, id: ItemId) -> &Item {
        &self.items[id.0 as usize]
    }

    /// The worker with this id.
    #[must_use]
    pub fn worker(&self, w: WorkerId) -> &Worker {
        &self.workers[w.0 as usize]
    }

    /// The pool counters the `kwq_policy` predicates read. The Btrfs pool is
    /// unbound: [`Concurrency::Unmanaged`], so `nr_running` is informative
    /// only. The §4.5 scenarios use a bound pool, `Concurrency::Managed(1)`:
    /// a worker counts as running unless it is idle or blocked. Rescuers are
    /// not pool workers and never count.
    #[must_use]
    pub fn snapshot(&self) -> PoolSnapshot {
        let pool = || self.workers.iter().filter(|w| w.in_pool());
        let nr_running = pool()
            .filter(|w| !matches!(w.pc, Pc::Idle | Pc::Blocked(..)))
            .count();
        PoolSnapshot {
            worklist_nonempty: !self.worklist.is_empty(),
            nr_running,
            nr_idle: self.idle.len(),
            nr_workers: pool().count(),
            concurrency: if self.setup.scenario.managed_pool() {
                Concurrency::Managed(1)
            } else {
                Concurrency::Unmanaged
            },
            max_workers: self.setup.max_workers as usize,
        }
    }

    /// The rescuer of workqueue `wq`, if the scenario has rescuers.
    #[must_use]
    pub fn rescuer(&self, wq: u8) -> Option<WorkerId> {
        self.workers
            .iter()
            .position(|w| w.rescuer_of == Some(wq))
            .map(|i| WorkerId(i as u8))
    }

    /// `find_worker_executing_work`: the worker whose busy entry matches
    /// `id`. The kernel compares (address, function) — never the workqueue;
    /// kwq compares the item itself.
    #[must_use]
    pub fn find_executing(&self, id: ItemId) -> Option<WorkerId> {
        let it = self.item(id);
        let by_item = self.setup.version.identity_by_item();
        self.workers.iter().enumerate().find_map(|(i, w)| {
            let c = w.current?;
            let hit = if by_item {
                c.item == id
            } else {
                c.slot == it.slot && c.func == it.func
            };
            hit.then_some(WorkerId(i as u8))
        })
    }

    /// The worker executing `id` itself (its busy entry is for this item).
    #[must_use]
    pub fn runner_of(&self, id: ItemId) -> Option<WorkerId> {
        self.workers
            .iter()
            .position(|w| w.current.is_some_and(|c| c.item == id))
            .map(|i| WorkerId(i as u8))
    }

    /// The worker whose scheduled list holds `id`.
    #[must_use]
    pub fn parker_of(&self, id: ItemId) -> Option<WorkerId> {
        self.workers
            .iter()
            .position(|w| w.scheduled.contains(&id))
            .map(|i| WorkerId(i as u8))
    }

    /// The worker currently inside `id`'s ordered phase (claimed, running or
    /// blocked in it).
    #[must_use]
    pub fn ordered_runner_of(&self, id: ItemId) -> Option<WorkerId> {
        self.workers
            .iter()
            .position(|w| matches!(w.pc, Pc::Ordered(h) | Pc::Blocked(h, _) if h == id))
            .map(|i| WorkerId(i as u8))
    }

    /// Everything finished: every upper item queued, every item freed, every
    /// worker idle.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.queued == self.setup.items
            && self.items.iter().all(Item::is_freed)
            && self.workers.iter().all(|w| w.pc == Pc::Idle)
    }

    /// Display name of an item: upper items X, W, Y, Z, …; a bottom item
    /// allocated at a slot that held item N before is N′ (the thread's X′),
    /// otherwise L1, L2, …; end-io items E1, E2, ….
    #[must_use]
    pub fn item_name(&self, id: ItemId) -> String {
        let it = self.item(id);
        let rank = |o: Origin| {
            self.items[..id.0 as usize]
                .iter()
                .filter(|x| x.origin == o)
                .count()
        };
        match it.origin {
            Origin::Upper => UPPER_NAMES[rank(Origin::Upper) % UPPER_NAMES.len()].to_string(),
            Origin::EndIo => format!("E{}", rank(Origin::EndIo) + 1),
            Origin::Lower => match self.previous_occupant(id) {
                Some(p) => format!("{}′", self.item_name(p)),
                None => format!("L{}", rank(Origin::Lower) + 1),
            },
        }
    }

    /// The item that occupied `id`'s slot before it, if any.
    #[must_use]
    pub fn previous_occupant(&self, id: ItemId) -> Option<ItemId> {
        let slot = self.item(id).slot;
        self.items[..id.0 as usize]
            .iter()
            .rposition(|x| x.slot == slot)
            .map(|i| ItemId(i as u8))
    }

    /// Name of workqueue `wq` in this scenario.
    #[must_use]
    pub fn wq_name(&self, wq: u8) -> &'static str {
        self.setup.scenario.wq_name(wq)
    }

    /// Is this the 2019 scenario?
    #[must_use]
    pub fn stacked(&self) -> bool {
        self.setup.scenario.stacked()
    }
}
