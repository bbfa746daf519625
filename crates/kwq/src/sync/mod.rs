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
//! One helper differs on purpose: [`fence_after_seqcst_write`]. In the C++20
//! model Rust uses, a SeqCst write (store or read-modify-write) followed by
//! a SeqCst load of another location is ordered by the single total order
//! of SeqCst operations, so a Dekker handshake whose other side is SeqCst
//! too (or fenced) needs no fence between them
//! (x86 compiles a SeqCst store to `xchg` and an RMW to a locked
//! instruction, both full barriers). Loom models SeqCst *accesses* only as
//! acquire/release (loom issue 180) and would report a lost wake-up that
//! cannot happen; it does model SeqCst fences. So code that relies on that
//! ordering calls `fence_after_seqcst_write()`: a no-op in the real build, a
//! SeqCst fence under loom.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(kwq_loom))]
mod std;
#[cfg(not(kwq_loom))]
pub(crate) use self::std::*;

// Under loom only the lock-free cores are compiled (see `lib.rs`), so most
// of the facade has no user there; it keeps std.rs's names all the same.
#[cfg(kwq_loom)]
#[allow(unused_imports, dead_code)]
mod mocked;
#[cfg(kwq_loom)]
pub(crate) use self::mocked::*;

/// The handle a pool is shared through: std's `Arc` in every build. The
/// pool's methods that may start a worker take `self: &PoolArc<Self>` (the
/// worker thread keeps a handle), and only std's smart pointers can be a
/// method receiver, loom's `Arc` cannot. Loom loses nothing it checks: the
/// pool's reference count orders no access the models look at.
pub(crate) use ::std::sync::Arc as PoolArc;
