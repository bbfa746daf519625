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

echo "== unsafe code under valgrind memcheck (the inline job store, the ring's slots; no Miri here)"
if command -v valgrind >/dev/null; then
    lib=$(cargo test -p kwq --lib --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
    valgrind -q --error-exitcode=9 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        "$lib" job:: ordered::ring:: --test-threads=1 >/dev/null
    echo "valgrind: ok"
else
    echo "valgrind not installed; skipped" >&2
fi

echo "== model checker, every matrix cell (the heaviest are ignored in debug builds)"
cargo test -p kwq-model --release -- --include-ignored

echo "== benchmark smoke (release): every ordered run verifies its checksum"
cargo build --release -p kwq-bench
B=target/release/kwq-bench
for impl in kwq kwq-caller kwq-iter; do
    for rounds in 0 50; do
        for inflight in 16 4096; do
            "$B" ordered --impl "$impl" --items 50000 --rounds "$rounds" --inflight "$inflight" --threads 2 >/dev/null
        done
    done
done
"$B" ordered --impl ceiling --items 50001 --rounds 50 --threads 3 >/dev/null
"$B" spawn --impl kwq --items 200000 --threads 2 >/dev/null
"$B" spawn --impl kwq-work --items 200000 --threads 2 >/dev/null
"$B" latency --impl kwq --items 300 --interval-us 200 --warmup 20 --threads 2 >/dev/null
echo "benchmark smoke: ok"

echo "== kwq-store in release: 4000 power cuts, 1000 stacked runs (each fsck'd), the rest at CI size"
KWQ_STORE_CRASH_ITERS=4000 KWQ_STORE_STACK_RUNS=1000 timeout 900 cargo test --release -p kwq-store

echo "== loom"
bash ci/loom.sh
