//! The synchronisation facade: every lock, atomic, thread and parker the
//! runtime uses comes from here, never from `std::sync` or `std::thread`
//! directly, so that the same code can be run under [loom] (`--cfg kwq_loom`)
//! for exhaustive interleaving checks.
//!
//! * `std.rs` (default): std atomics and a poison-free `Mutex` / `Condvar`
//!   over `std::sync`, crossbeam's `Parker`, `std::thread`.
//! * `mocked.rs` (`cfg(kwq_loom)`): the same names over loom's types.
//!
//! Both expose identical signatures: a poison-free [`Mutex::lock`] returning
//! the guard directly (a panicking work function never runs while a kwq lock
//! is held, so poisoning carries no information for us), and [`Parker`] /
//! [`Unparker`] for worker sleep.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(kwq_loom))]
mod std;
#[cfg(not(kwq_loom))]
pub(crate) use self::std::*;

#[cfg(kwq_loom)]
mod mocked;
#[cfg(kwq_loom)]
pub(crate) use self::mocked::*;
