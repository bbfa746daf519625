//! Kernel-grade workqueues for userspace.
//!
//! kwq brings the Linux *concurrency-managed workqueue* (cmwq) model to Rust
//! programs, with one rule the kernel lacks: **a work item's identity is the
//! item itself, never its address**, so a freed and reallocated item can
//! never be mistaken for a running one — the mistake behind the 2014 and 2019
//! Btrfs workqueue deadlocks (see `docs/design.md`).
//!
//! # Mental model
//!
//! * A [`Work`] is a persistent, named, re-queueable closure. Queueing it
//!   while it is already pending does nothing (returns `false`): requests
//!   *coalesce*. Queueing it while it runs makes it run once more,
//!   afterwards. It never runs concurrently with itself, anywhere.
//! * A [`Workqueue`] is a *semantic domain*: how many of its items may run at
//!   once (`max_active`), whether they run one at a time in order
//!   (`ordered`), and what `flush` / `drain` wait for.
//! * A *pool* is an *execution resource*: worker threads shared by every
//!   workqueue with the same attributes. Pools are concurrency managed: they
//!   keep about as many workers *running* as there are CPUs, and when a
//!   worker blocks inside [`blocking`], another one takes over at once. A
//!   worker that blocks without saying so (a plain `read()`, a std `Mutex`)
//!   is noticed by the pool monitor within a few milliseconds while work
//!   waits, and replaced too ([`RuntimeBuilder::detect_blocking`]).
//! * [`ordered`] is Btrfs's ordered work done safely: a parallel stage, an
//!   in-order stage, then release, with bounded in-flight work, on the same
//!   pools; also as an ordered parallel map over an iterator.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! let wq = kwq::Workqueue::builder("events").max_active(4).build().unwrap();
//! let hits = Arc::new(AtomicUsize::new(0));
//! let h = hits.clone();
//! let w = kwq::Work::new("refresh", move || {
//!     h.fetch_add(1, Ordering::SeqCst);
//! });
//! // Many requests before the worker gets to it coalesce into few runs.
//! for _ in 0..100 {
//!     wq.queue(&w);
//! }
//! wq.flush();
//! let runs = hits.load(Ordering::SeqCst);
//! assert!(runs >= 1 && runs <= 100);
//! ```
//!
//! # Guarantees
//!
//! | | guarantee |
//! |---|---|
//! | WQ-1 | `queue` returns `true` iff no instance was pending; while one is, further `queue`s return `false` and enqueue nothing |
//! | WQ-2 | an item queued while running runs exactly once more, after the current run, never concurrently |
//! | WQ-3 | an item never runs on two workers at once, even when queued on several workqueues |
//! | WQ-6 | dropping every handle while an item is pending or running is safe; it still runs (or is cancelled) |
//! | WQ-7 | at most `max_active` items of a workqueue execute at once; the rest start in FIFO order |
//! | WQ-8 | an ordered workqueue runs one item at a time, in queueing order |
//! | WQ-9 | [`Work::flush`] waits for the instance pending or running at call time |
//! | WQ-10 | [`Workqueue::flush`] waits for everything queued before it, and is not held up by later work |
//! | WQ-11 | [`Workqueue::drain`] waits until the queue is empty; meanwhile only its own items may queue |
//! | WQ-12 | after [`Work::cancel_sync`] the item is neither pending nor running |
//! | WQ-13/14 | delayed work is never queued before its delay; `cancel` disarms it |
//!
//! Misuse that would deadlock — flushing or cancelling an item from inside
//! itself, flushing a workqueue from one of its own items, flushing an item
//! pending behind the caller on an ordered queue — panics with a message
//! naming the item and queue, instead of hanging. A panicking work function
//! is caught and reported ([`RuntimeBuilder::on_panic`]); its worker
//! survives, and flush/cancel still return.
//!
//! # Glossary (kernel → kwq)
//!
//! | kernel | kwq |
//! |---|---|
//! | `struct work_struct`, `INIT_WORK` | [`Work`], [`Work::new`] |
//! | `struct delayed_work` | [`DelayedWork`] |
//! | `struct workqueue_struct`, `alloc_workqueue` | [`Workqueue`], [`Workqueue::builder`] |
//! | `pool_workqueue` | merged into the workqueue (one pool per workqueue) |
//! | `worker_pool` | a pool of a [`Runtime`] |
//! | `queue_work` / `queue_delayed_work` / `mod_delayed_work` | [`Workqueue::queue`] / [`Workqueue::queue_delayed`] / [`Workqueue::mod_delayed`] |
//! | `flush_work`, `flush_workqueue`, `drain_workqueue` | [`Work::flush`], [`Workqueue::flush`], [`Workqueue::drain`] |
//! | `cancel_work`, `cancel_work_sync` | [`Work::cancel`], [`Work::cancel_sync`] |
//! | `WORK_STRUCT_PENDING` | `PENDING` bit of the state word |
//! | busy_hash + `find_worker_executing_work` | `RUNNING` bit of the item's own state word |
//! | collided item on `worker->scheduled` | `PARKED` bit + the item's park slot |
//! | `WORK_STRUCT_INACTIVE`, `pwq->inactive_works` | the workqueue's inactive list |
//! | flush colours | two colours, serialised flushers |
//! | `WQ_HIGHPRI`, `WQ_UNBOUND`, `WQ_CPU_INTENSIVE` | [`WorkqueueBuilder::highpri`], [`unbound`](WorkqueueBuilder::unbound), [`cpu_intensive`](WorkqueueBuilder::cpu_intensive) |
//! | `alloc_ordered_workqueue` | [`WorkqueueBuilder::ordered`] |
//! | `WQ_MEM_RECLAIM`, `rescuer_thread`, mayday | [`WorkqueueBuilder::rescuer`] |
//! | `wq_worker_sleeping` / `wq_worker_running` | [`blocking`], and the pool monitor for blocking nobody announced |
//! | `system_wq`, `system_highpri_wq`, `system_unbound_wq`, `system_long_wq` | [`system`](fn@system), [`system_highpri`], [`system_unbound`], [`system_long`] |
//! | `show_workqueue_state` | [`Runtime::dump`] |
//! | `wq_watchdog` ("BUG: workqueue lockup") | [`RuntimeBuilder::watchdog`], [`LockupReport`] |
//!
//! # What this is not
//!
//! Not an async executor (work functions are plain closures that may
//! block), not a work-stealing fork/join pool (use rayon for data
//! parallelism), and not CPU-affine: a userspace pool spans the CPUs the OS
//! gives it. A pool at its worker cap whose workers all block stalls —
//! visibly: the watchdog reports it ([`LockupReport`]) and
//! [`Runtime::dump`] shows who blocks — except for queues built with a
//! [`rescuer`](WorkqueueBuilder::rescuer), which make progress anyway.
#![warn(missing_docs)]

pub(crate) mod sync;

#[cfg(not(kwq_loom))]
mod builder;
#[cfg(not(kwq_loom))]
mod current;
#[cfg(not(kwq_loom))]
mod delayed;
#[cfg(not(kwq_loom))]
mod error;
#[cfg(not(kwq_loom))]
mod exec;
#[cfg(not(kwq_loom))]
mod job;
#[cfg(not(kwq_loom))]
mod join;
#[cfg(not(kwq_loom))]
mod monitor;
#[cfg(not(kwq_loom))]
pub mod ordered;
/// The pools' internals, public in 0.1.0 by mistake: their policy
/// predicates belong to the `kwq-policy` crate. Hidden, kept for
/// compatibility. A leaf: it names nothing of this crate but the `sync`
/// facade, and is compiled as it is under loom (`tests/loom_worker.rs`).
#[cfg_attr(kwq_loom, allow(dead_code))]
#[doc(hidden)]
pub mod pool;
#[cfg(not(kwq_loom))]
mod report;
#[cfg(not(kwq_loom))]
mod runtime;
#[cfg(not(kwq_loom))]
mod scope;
#[cfg(not(kwq_loom))]
mod spawn;
#[cfg(not(kwq_loom))]
mod task;
#[cfg(not(kwq_loom))]
mod watchdog;
#[cfg(not(kwq_loom))]
mod work;
#[cfg(not(kwq_loom))]
mod workqueue;

#[cfg(not(kwq_loom))]
pub use builder::RuntimeBuilder;
#[cfg(not(kwq_loom))]
pub use current::blocking;
#[cfg(not(kwq_loom))]
pub use delayed::DelayedWork;
#[cfg(not(kwq_loom))]
pub use error::{
    BuildError, BuildErrorKind, QueueError, SetMaxActiveError, ShutdownError, TryQueueFnError,
};
#[cfg(not(kwq_loom))]
#[allow(deprecated)]
pub use error::{Rejected, Stragglers};
#[cfg(not(kwq_loom))]
pub use join::{JoinError, JoinHandle};
#[cfg(not(kwq_loom))]
pub use report::{PanicReport, Warning, WarningKind};
#[cfg(not(kwq_loom))]
pub use runtime::Runtime;
#[cfg(not(kwq_loom))]
pub use scope::{scope, Scope};
#[cfg(not(kwq_loom))]
pub use spawn::ThreadSpawn;
#[cfg(not(kwq_loom))]
pub use watchdog::LockupReport;
#[cfg(not(kwq_loom))]
pub use work::Work;
#[cfg(not(kwq_loom))]
pub use workqueue::{Workqueue, WorkqueueBuilder};

// Under loom only the pool (above, as it is) and the lock-free cores are
// compiled, and checked by `src/tests/loom_*.rs`.
#[cfg(kwq_loom)]
#[allow(dead_code)]
mod work {
    pub(crate) mod state;
}
#[cfg(kwq_loom)]
#[allow(dead_code)]
#[path = "workqueue/active.rs"]
mod active;
#[cfg(kwq_loom)]
#[allow(dead_code)]
#[path = "ordered/idle.rs"]
mod ordered_idle;
#[cfg(kwq_loom)]
#[allow(dead_code)]
#[path = "ordered/ring.rs"]
mod ordered_ring;
#[cfg(kwq_loom)]
#[allow(dead_code)]
#[path = "ordered/waiters.rs"]
mod ordered_waiters;
#[cfg(all(kwq_loom, test))]
mod tests;

#[cfg(not(kwq_loom))]
mod system {
    use crate::sync::OnceLock;
    use crate::Workqueue;

    fn make(cell: &'static OnceLock<Workqueue>, f: fn() -> Workqueue) -> &'static Workqueue {
        cell.get_or_init(f)
    }

    /// Builds a system workqueue; their settings are constants, all valid.
    fn known(b: crate::WorkqueueBuilder) -> Workqueue {
        b.build()
            .unwrap_or_else(|e| unreachable!("system workqueue settings rejected: {e}"))
    }

    /// The default workqueue (kernel `system_wq`) on the global runtime's
    /// normal pool.
    pub fn system() -> &'static Workqueue {
        static Q: OnceLock<Workqueue> = OnceLock::new();
        make(&Q, || known(Workqueue::builder("events")))
    }

    /// High-priority system workqueue (kernel `system_highpri_wq`).
    pub fn system_highpri() -> &'static Workqueue {
        static Q: OnceLock<Workqueue> = OnceLock::new();
        make(&Q, || known(Workqueue::builder("events_highpri").highpri()))
    }

    /// Unbound system workqueue (kernel `system_unbound_wq`): items get a
    /// worker each, no concurrency management.
    pub fn system_unbound() -> &'static Workqueue {
        static Q: OnceLock<Workqueue> = OnceLock::new();
        make(&Q, || {
            known(
                Workqueue::builder("events_unbound")
                    .unbound()
                    .max_active(crate::pool::policy::MAX_ACTIVE),
            )
        })
    }

    /// System workqueue for long-running items (kernel `system_long_wq`):
    /// same pool as [`system`], separate flush domain, so flushing it does
    /// not wait for short items and vice versa.
    pub fn system_long() -> &'static Workqueue {
        static Q: OnceLock<Workqueue> = OnceLock::new();
        make(&Q, || known(Workqueue::builder("events_long")))
    }
}

#[cfg(not(kwq_loom))]
pub use system::{system, system_highpri, system_long, system_unbound};

/// The README's Rust examples, compiled and run as doctests so they cannot
/// drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
