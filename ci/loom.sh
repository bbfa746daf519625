#!/usr/bin/env bash
# Exhaustive interleaving checks (loom) of the state word and the
# per-workqueue accounting. Release build with debug assertions, separate
# target dir so the cfg change does not invalidate the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg kwq_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${KWQ_LOOM_TARGET:-target/loom}"
cargo test -p kwq --lib --release "$@"
