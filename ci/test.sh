#!/usr/bin/env bash
# The project's test command (see README): formatting, lints, every test
# suite of the workspace, and the loom models of the lock-free cores.
# Runnable locally exactly as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== fmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== no std::sync / std::thread outside the sync facade"
# Library code only: comments and the #[cfg(test)] modules at the bottom of
# files may use std directly.
bad=$(find crates/kwq/src -name '*.rs' -not -path 'crates/kwq/src/sync/*' \
        -not -path 'crates/kwq/src/tests/*' -print0 |
    xargs -0 awk '/^#\[cfg\((all\()?test/ { nextfile }
                  /^[[:space:]]*\/\// { next }
                  /std::sync::(Mutex|Condvar|RwLock|atomic)|std::thread::spawn/ { print FILENAME ":" FNR ": " $0 }')
if [ -n "$bad" ]; then
    echo "$bad"
    echo "error: use crate::sync instead (loom cannot see std primitives)" >&2
    exit 1
fi

echo "== tests"
cargo test --workspace

echo "== model checker, every matrix cell (the heaviest are ignored in debug builds)"
cargo test -p kwq-model --release -- --include-ignored

echo "== loom"
bash ci/loom.sh
