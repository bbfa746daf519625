//! The pool's decisions as pure predicates over a [`PoolSnapshot`].
//!
//! These live in the `kwq-policy` crate so that the `kwq-model` checker
//! evaluates exactly the functions the runtime does; see that crate for the
//! kernel counterparts of each predicate.
pub use kwq_policy::{
    keep_working, may_start_working, need_more_worker, need_to_create_worker, too_many_workers,
    Concurrency, PoolSnapshot, DFL_MAX_ACTIVE, MAX_ACTIVE,
};
