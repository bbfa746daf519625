//! In-crate loom tests (built with `--cfg kwq_loom`; run by `ci/loom.sh`).
#[cfg(not(debug_assertions))]
compile_error!("run the loom tests with debug assertions on: ci/loom.sh sets -C debug-assertions");

mod loom_active;
mod loom_idle;
mod loom_ordered;
mod loom_presence;
mod loom_state;
mod loom_waiters;
mod loom_worker;
