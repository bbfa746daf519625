//! Btrfs-style ordered work: a parallel stage, then an in-order stage,
//! then a release that can never be premature.
//!
//! Btrfs runs each `btrfs_work` in three steps: `func` on any worker in
//! parallel, `ordered_func` strictly in queueing order, then `ordered_free`.
//! kwq offers the same shape two ways:
//!
//! * [`OrderedWorkqueue::queue`]`(func, ordered)` — per item, for
//!   pipelines that queue from anywhere (Btrfs `btrfs_queue_work`);
//! * [`ordered_map`] / [`for_each_ordered`] / [`OrderedIterExt`] — an
//!   ordered parallel map over an iterator, with bounded memory, for
//!   streams of unknown length.
//!
//! Both run on kwq's shared pools through ordinary [`Workqueue`](crate::Workqueue)s: no
//! threads of their own. The design write-up, including why the 2014, 2019
//! and residual (R1) Btrfs deadlocks cannot happen here, is
//! `docs/ordered.md`.
//!
//! # Glossary (Btrfs → kwq)
//!
//! | Btrfs (`fs/btrfs/async-thread.c`) | kwq |
//! |---|---|
//! | `btrfs_work` (heap object per item) | a ring slot + its sequence number |
//! | `func` / `ordered_func` / `ordered_free` | `func` / `ordered` / dropping both closures, then releasing the slot |
//! | `WORK_DONE_BIT`, `WORK_ORDER_DONE_BIT` | `DONE`, `ORDER_DONE` flags of the slot's stamp |
//! | `ordered_list` + `list_lock` | the ring between `head` and `tail` (lock-free) |
//! | `run_ordered_work` | the drain: whichever runner finishes the head item runs the ordered stages in order |
//! | `normal_work_helper` on a per-item `work_struct` | a persistent runner [`Work`](crate::Work) claiming items in batches |
//! | `limit_active`, `thresh`, `current_active` | [`max_active`](OrderedWorkqueueBuilder::max_active), [`thresh`](OrderedWorkqueueBuilder::thresh), [`OrderedWorkqueue::current_active`] |
//! | "-high" sub-queue (`WQ_HIGHPRI`) | [`highpri`](OrderedWorkqueueBuilder::highpri), [`OrderedWorkqueue::queue_high`] |
//! | `btrfs_workqueue_normal_congested` | [`OrderedWorkqueue::congested`] |
//!
//! # States
//!
//! An item is a sequence number `s` (per sub-queue) and the ring slot
//! `s mod max_in_flight`. The slot's stamp word walks, for that `s`:
//!
//! ```text
//!   FREE(s) ─queue─▶ QUEUED(s) ─func─▶ DONE(s) ─drain claims─▶ ORDER_DONE(s) ─ordered, drop─▶ FREE(s + max_in_flight)
//! ```
//!
//! # Guarantees
//!
//! * Every `func` runs exactly once; every `ordered` runs exactly once, one
//!   at a time, in queueing order (per sub-queue), with the result of its
//!   own `func`.
//! * Nothing touches an item after its ordered stage returned and its
//!   closures and result were dropped; only then may its slot (its
//!   identity) be reused. A blocked stage therefore can never be mistaken
//!   for a later item, the collision behind the Btrfs deadlocks.
//! * At most `max_in_flight` items sit between queueing and release; a full
//!   queue blocks `queue` (inside [`blocking`](crate::blocking)) or
//!   refuses `try_queue`.
//! * Panics never stall the sequence: a panicking `func` still lets later
//!   items through (its `ordered` is dropped, not called), a panicking
//!   `ordered` still releases its item. The panic is kept and returned by
//!   [`OrderedWorkqueue::flush`] as a [`FlushError`] (or, for the
//!   iterator, re-raised on the calling thread at that position).
//!
//! # What this is not
//!
//! An item's `ordered` stage must not wait for a *later* item of the same
//! sub-queue's ordered stage (it is queued behind it: head-of-line
//! blocking, exactly as in Btrfs). Waiting for another queue — the stacked
//! filesystem case — is fine, and so is blocking in general: other runners
//! keep running `func`s while the drain owner blocks, and completed items
//! wait, in order. A `func` that blocks should do so inside
//! [`crate::blocking`] (as any blocking kwq work should): then the items
//! behind it get another runner even when the backlog is short. The
//! exception is `current_active` = 1 — `max_active(1)`, or a `thresh` queue
//! whose backlog is below its threshold — where there is no other runner
//! to take them: a stage blocked until a later item's `func` ran waits
//! for that runner (as a Btrfs work item holding its workqueue's only
//! active slot would).

// Implementation notes (not part of the public documentation).
//
// # Fields and who may touch them
//
// Legend: `A:` atomic; `S:` owned by the holder of the slot's current
// phase (see `ring.rs`); `I:` immutable after build.
//
// * ring `tail` / `claim` / `head` / `released` — A (CAS by producers,
//   CAS by runners, written by the drain owner, written by the drain owner).
// * slot content: the job `(func, ordered)`, then `(result, ordered)` — S.
// * runners' `idle` bitmask, `current_active` — A (see `crew.rs`).
// * panics caught in either stage — behind a mutex, taken by `flush`.
// * the private workqueue(s), runner work items, `max_active` limit — I.
//
// # Protocol
//
// 1. `queue` reserves sequence number `t` (CAS on `tail`, only if slot `t`
//    is `FREE(t)`; else it blocks inside [`crate::blocking`] or
//    `try_queue` hands the closures back), stores the closures, stamps
//    `QUEUED(t)`, and wakes an idle runner if no runner is active or the
//    backlog holds more than ~50 µs of work per active runner (the cost
//    estimate of `cost.rs`; unknown counts as slow).
// 2. A runner claims a batch of consecutive `QUEUED` items (CAS on
//    `claim`), runs each `func` under `catch_unwind`, stores the outcome,
//    stamps `DONE`, and never reads that slot again.
// 3. It then tries to drain (`run_ordered_work`): CAS the head slot from
//    `DONE` to `ORDER_DONE`. The winner runs `ordered` for the head and
//    every following `DONE` item, in order; after each one it drops the
//    closures and the result and only then stamps the slot `FREE` for
//    `s + max_in_flight`. Losers return at once — the owner will reach
//    their items.
// 4. When the owner stops (head not `DONE`), it publishes `head` and
//    re-tries the CAS once, so a `DONE` stored meanwhile is not stranded.
// 5. A runner that finds nothing to claim spins briefly, then marks itself
//    idle and re-checks for claimable items before returning.
// 6. A runner that may block — the drain owner, or one inside
//    [`crate::blocking`] — is marked *stalled* for that time: producers do
//    not count it as active, so an item queued behind it wakes an idle
//    runner (cmwq's concurrency management, per crew; `idle.rs`).
//
// # Why this is correct
//
// * **BT-1 / BT-2** (order, exactly once): `claim` is a CAS over a range,
//   so each `func` runs once; the drain is owned by whoever wins the CAS
//   on the published head's stamp, and only the owner moves `head`, so
//   `ordered` stages run one at a time, in sequence order, each once.
// * **BT-3** (no touch after DONE): the completer's last access to the
//   slot is the `DONE` store; it reaches the ring through its own `Arc`,
//   never through the item.
// * **BT-4 and beyond — the release rule**: a slot (the only thing that
//   identifies an item) becomes reusable only by the `FREE(s + cap)`
//   store, done by the drain owner *after* the ordered stage returned and
//   everything the item owned was dropped. No worker runs a stage of `s`
//   after that point, because no stage of `s` exists any more. The
//   workers themselves execute persistent runner work items whose kwq
//   identity is their own `Arc`, never a slot — so even a blocked drain
//   owner cannot make a reused slot "look running" to kwq (the 2014/2019
//   collision), and the R1 window (another worker freed the item the
//   blocked worker started with) has nothing to collide with.
// * **No lost drain / no stranded item**: Dekker handshakes with SeqCst
//   fences — completer vs. drain owner (`ring.rs`), producer vs. idle
//   runner and producer vs. stalled runner (`idle.rs`). Checked with loom
//   in `src/tests/loom_ordered.rs` and `src/tests/loom_idle.rs`.
// * **Panics** never stall the sequence: `func` and `ordered` run under
//   `catch_unwind`; a panicking `func` still reaches `DONE` (its
//   `ordered` is dropped, not called), a panicking `ordered` still
//   releases. The panic is kept and returned by
//   [`OrderedWorkqueue::flush`] as a [`FlushError`] (or, for the
//   iterator, re-raised on the calling thread at that position).
//

mod cost;
pub(crate) mod crew;
mod error;
mod idle;
mod iter;
mod queue;
pub(crate) mod ring;
mod thresh;
pub(crate) mod waiters;

#[allow(deprecated)]
pub use error::{BuildError, StagePanic};
pub use error::{FlushError, Stage, StagePanicError, TryQueueError};
pub use iter::{
    for_each_ordered, ordered_map, OrderedIterExt, OrderedMap, OrderedMapBuilder,
    DEFAULT_MAP_IN_FLIGHT,
};
pub use queue::{
    BoxedFunc, BoxedOrdered, BoxedOrderedWorkqueue, OrderedWorkqueue, OrderedWorkqueueBuilder,
    DEFAULT_MAX_IN_FLIGHT,
};
