//! A deterministic model checker of the Linux workqueue (cmwq) and the Btrfs
//! ordered-work layer on top of it, built to reproduce the 2014 and 2019
//! Btrfs deadlocks ("fix task hang under heavy compressed write",
//! "workqueue deadlock on dependent filesystems") and to show that kwq's
//! identity-based busy table cannot have them.
//!
//! The kernel developers never had a small reproducer for the 2019 bug.
//! This crate is one: `kwq model reproduce` prints a ten-step interleaving
//! of two stacked filesystems that ends with a top worker blocked on
//! lower-filesystem I/O while the lower filesystem's work item sits parked
//! behind that very worker, because it was allocated at the address of the
//! worker's already-freed item and carries the same function pointer.
//!
//! Everything here is pure: no threads, no clocks, no hash-map iteration in
//! the transition relation. See `docs/model.md` for the full write-up.
//!
//! # States
//!
//! A [`State`] holds one unbound worker pool (worklist, idle list, workers
//! with their busy entries and scheduled lists), two workqueues with their
//! pwqs (`nr_active`, inactive list) and Btrfs ordered lists, every item
//! ever allocated (slot, function pointer, work and Btrfs bits), and a
//! slab-like allocator (free slots, LIFO by default). The [`Setup`] — code
//! [`Version`], [`Scenario`], [`Granularity`], [`AllocPolicy`] and sizes —
//! is part of the state. See [`model::state`].
//!
//! # Actions
//!
//! An [`Action`] is one atomic step of one actor: a worker (pick, first
//! phase, `list_lock` section, ordered phase with or without waiting, wake
//! up, deferred self-free, return), the upper filesystem's writeback, the
//! lower filesystem's writeback (2019) or a read completion (2014).
//! [`enabled_actions`] lists them in a fixed order; [`step()`] is the pure
//! transition function. See [`model::action`] and [`model::step`](mod@model::step).
//!
//! # Protocol
//!
//! 1. Pick a [`Setup`] (or let [`Config::from_env`] build one from
//!    `KWQ_MODEL_*` variables).
//! 2. Run [`check`] with a [`Strategy`]: [`Bfs`] (shortest counterexample),
//!    [`Dfs`], [`RandomWalk`] or [`Replay`].
//! 3. Read the [`Outcome`]: a [`Finding`] with a [`Trace`] (step table,
//!    replay string, wait-for cycle) or the number of states an exhaustive
//!    search covered. [`report::render_outcome`] prints it.
//! 4. [`matrix::EXPECTED`] is the expected versions × scenarios table;
//!    [`matrix::run_matrix`] checks it.
//!
//! # Soundness
//!
//! Exhaustive answers hold for the model at the setup's sizes (upper items,
//! I/O waits, worker cap, max_active) and granularity; the reductions used
//! (exact state hashing, idle-worker symmetry, merging steps without shared
//! effects) are argued in [`explore`]. The step granularity is a modelling
//! choice, not a reduction: R1 (§2.7 of the spec digest) appears only when
//! setting DONE and the first `list_lock` acquisition are separate steps.
//!
//! # Glossary
//!
//! | here | kernel |
//! |------|--------|
//! | [`Slot`](model::Slot) `s1` | address of the item's `work_struct` |
//! | busy entry ([`Current`](model::Current)) | `worker->current_work` + `current_func` in `busy_hash` |
//! | [`State::find_executing`] | `find_worker_executing_work` |
//! | parked | moved to `worker->scheduled` by `process_one_work`'s collision path |
//! | worklist | `worker_pool::worklist` |
//! | pwq, `nr_active`, inactive list | `pool_workqueue`, `nr_active`, `delayed_works` |
//! | first phase / DONE | `btrfs_work::func` / `WORK_DONE_BIT` |
//! | ordered phase / ORDER_DONE | `ordered_func` / `WORK_ORDER_DONE_BIT` |
//! | ordered list, `list_lock` | `__btrfs_workqueue::ordered_list`, `list_lock` |
//! | free self, deferred | `ordered_free(self)` after the loop (`free_self`, c495dcd6fbe1) |
//! | [`FuncPtr::DelallocHelper`] | `btrfs_delalloc_helper` (2014–v5.4 unique helper) |
//! | [`FuncPtr::NormalWorkHelper`] | v3.15/3.16 `normal_work_helper` |
//! | [`FuncPtr::BtrfsWorkHelper`] | v5.5+ `btrfs_work_helper` |
//! | upper / top FS, lower / bottom FS | the Btrfs on the loop device / the Btrfs holding its backing file |
//! | X, W, Y | top-FS `async_cow` items in queueing order (Omar's names) |
//! | X′ | a bottom-FS item allocated at X's old slot |
//! | E1 | a 2014 end-io item (Liu Bo's "work C") |
//! | worker A, B, … | pool workers in creation order |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod explore;
pub mod matrix;
pub mod model;
pub mod proof;
pub mod r1;
pub mod report;
pub mod setup;
pub mod trace;

pub use config::{Config, ConfigError};
pub use explore::{
    check, Bfs, Dfs, Engine, Finding, FindingKind, Outcome, RandomWalk, Replay, Stats, Strategy,
};
pub use model::{enabled_actions, step, Action, Event, State};
pub use setup::{AllocPolicy, FuncPtr, Granularity, Scenario, Setup, Version};
pub use trace::Trace;
