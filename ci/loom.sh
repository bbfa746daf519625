#!/usr/bin/env bash
# Exhaustive interleaving checks (loom, up to LOOM_MAX_PREEMPTIONS) of the
# state word, the per-workqueue accounting, the ordered layer's lock-free
# cores and the real worker pool (src/tests/loom_worker.rs; its seeded-bug
# checks re-run this test binary in a child process). Release build with
# debug assertions (the pool's counters assert they never wrap), in a target
# dir of its own (under CARGO_TARGET_DIR, or KWQ_LOOM_TARGET) so the cfg
# change does not invalidate the normal build.
#
#   bash ci/loom.sh [test filter]
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg kwq_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${KWQ_LOOM_TARGET:-${CARGO_TARGET_DIR:-$PWD/target}/loom}"
cargo test -p kwq --lib --release --locked "$@"
