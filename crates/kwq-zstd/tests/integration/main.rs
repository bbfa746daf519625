//! kwq-zstd integration tests: one binary (round trips, interop with the
//! zstd CLI, bad input). The 1 GiB memory test is its own binary
//! (`tests/memory.rs`) so its peak RSS is its own.

mod bad_input;
mod interop;
mod roundtrip;
mod util;
