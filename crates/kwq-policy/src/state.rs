//! Names of the work-item state bits, shared by the runtime and the model.
//!
//! kwq's work state word (`kwq::work::state`) and the model checker's
//! abstraction of the kernel's `work_struct::data` use these names so that a
//! trace printed by the checker reads like the runtime's documentation.
//!
//! | kwq bit      | kernel counterpart                         | meaning |
//! |--------------|--------------------------------------------|---------|
//! | `PENDING`    | `WORK_STRUCT_PENDING`                      | an instance is queued and owned by the queueing machinery |
//! | `RUNNING`    | `worker->current_work == work` (busy_hash) | a worker is executing the function |
//! | `PARKED`     | item on a worker's `scheduled` list        | the pending instance waits for the current run to end |
//! | `CANCELING`  | `WORK_OFFQ_CANCELING`                      | `cancel_sync` in progress; queueing is refused |
//! | `INACTIVE`   | `WORK_STRUCT_INACTIVE` (`DELAYED`)         | pending, but held back by `max_active` |
//!
//! The Btrfs ordered layer adds two per-item flags:
//!
//! | name         | kernel counterpart       | meaning |
//! |--------------|--------------------------|---------|
//! | `DONE`       | `WORK_DONE_BIT`          | the parallel stage (`func`) finished |
//! | `ORDER_DONE` | `WORK_ORDER_DONE_BIT`    | someone claimed the ordered stage |

/// An instance is queued (kernel `WORK_STRUCT_PENDING`).
pub const PENDING: usize = 1 << 0;
/// A worker executes the item's function right now.
pub const RUNNING: usize = 1 << 1;
/// The pending instance is parked until the current run ends (the kernel's
/// collision path, `move_linked_works` onto the running worker's list).
pub const PARKED: usize = 1 << 2;
/// A `cancel_sync` is in progress; queueing attempts fail until it ends.
pub const CANCELING: usize = 1 << 3;
/// Pending but held back on the inactive list by `max_active`.
pub const INACTIVE: usize = 1 << 4;

/// Btrfs ordered work: the parallel stage finished (`WORK_DONE_BIT`).
pub const DONE: usize = 1 << 0;
/// Btrfs ordered work: the ordered stage was claimed (`WORK_ORDER_DONE_BIT`).
pub const ORDER_DONE: usize = 1 << 1;
