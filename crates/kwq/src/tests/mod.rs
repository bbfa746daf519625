//! In-crate loom tests (built with `--cfg kwq_loom`).
