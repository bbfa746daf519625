#!/usr/bin/env bash
# Reproduces the numbers in BENCHMARKS.md: builds kwq-bench (and the oneTBB
# peer), then runs every workload for kwq and each peer, interleaved, RUNS
# times, and prints Markdown tables (median/min/max, kwq/best-peer ratio).
#
#   crates/kwq-bench/run-all.sh                 # everything, RUNS=5
#   RUNS=3 QUICK=1 crates/kwq-bench/run-all.sh  # smaller N, for a quick look
#   ONLY="spawn latency" crates/kwq-bench/run-all.sh
#
# Environment: RUNS (default 5), QUICK (1 = smaller N), ONLY (subset of
# "spawn latency ordered ordered-10m"), ROUNDS_LIST (W2 --rounds values,
# default "0 500 5000"), THREADS (default: CPUs),
# CARGO_TARGET_DIR, OUT (results directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
RUNS="${RUNS:-5}"
QUICK="${QUICK:-0}"
ONLY="${ONLY:-spawn latency ordered ordered-10m}"
THREADS="${THREADS:-$(nproc)}"
ROUNDS_LIST="${ROUNDS_LIST:-0 500 5000}"
OUT="${OUT:-$CARGO_TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: >"$results"

echo "== build" >&2
(cd "$repo" && cargo build --release -p kwq-bench >&2)
B="$CARGO_TARGET_DIR/release/kwq-bench"
have_tbb=1
if ! "$here/tbb/build.sh" "$CARGO_TARGET_DIR/release" >&2; then
    echo "run-all: oneTBB peer did not build; tbb rows are skipped" >&2
    have_tbb=0
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
        echo "commit: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- crates/kwq crates/kwq-policy 2>/dev/null || echo ' (+ uncommitted changes to crates/kwq)')"
    else
        echo "commit: ${KWQ_COMMIT:-unknown} (source snapshot, not a git checkout)"
    fi
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
    echo "rustc: $(rustc --version)"
    echo "threads: $THREADS, runs: $RUNS, quick: $QUICK"
} | tee "$OUT/machine.txt" >&2

# run ROUND ARGS... : one invocation, its JSON line appended to results.
run() {
    local round=$1
    shift
    local line
    if line=$("$B" "$@" --threads "$THREADS" | tail -n 1) && [ -n "$line" ]; then
        echo "{\"round\":$round,${line#\{}" >>"$results"
        echo "  $* -> ${line:0:160}" >&2
    else
        echo "  FAILED: $B $*" >&2
        echo "{\"round\":$round,\"failed\":true,\"args\":\"$*\"}" >>"$results"
    fi
}

# rotate LIST... by ROUND: a different impl goes first each round.
rotate() {
    local r=$1
    shift
    local a=("$@") n=$#
    for ((i = 0; i < n; i++)); do echo "${a[(i + r) % n]}"; done
}

want() { [[ " $ONLY " == *" $1 "* ]]; }

if [ "$QUICK" = 1 ]; then
    SPAWN_N=200000 LAT_N=2000 ORD_N=100000 BIG_N=2000000
else
    SPAWN_N=1000000 LAT_N=10000 ORD_N=200000 BIG_N=10000000
fi

if want spawn; then
    echo "== W1 spawn (N=$SPAWN_N)" >&2
    impls=(kwq kwq-work rayon threadpool crossbeam-pool tokio-spawn-blocking handoff)
    for ((r = 1; r <= RUNS; r++)); do
        for i in $(rotate "$r" "${impls[@]}"); do
            run "$r" spawn --impl "$i" --items "$SPAWN_N"
        done
    done
fi

if want latency; then
    echo "== W3 latency (N=$LAT_N, interval 1000 us, warmup 100)" >&2
    impls=(kwq rayon threadpool crossbeam-pool tokio-spawn-blocking handoff bare-park)
    for ((r = 1; r <= RUNS; r++)); do
        for i in $(rotate "$r" "${impls[@]}"); do
            run "$r" latency --impl "$i" --items "$LAT_N"
        done
    done
fi

ordered_impls() {
    local l=(seq ceiling rayon crossbeam-reorder pariter)
    [ "$have_tbb" = 1 ] && l+=(tbb)
    # kwq's ordered impls join as soon as kwq::ordered has a public API.
    for k in kwq kwq-caller kwq-iter; do
        if "$B" ordered --impl "$k" --items 1000 --rounds 0 --threads 1 >/dev/null 2>&1; then
            l+=("$k")
        fi
    done
    echo "${l[@]}"
}

# checksum N ROUNDS: the sequential result, computed once.
checksum() {
    "$B" ordered --impl seq --items "$1" --rounds "$2" --threads 1 |
        tail -n 1 | sed -E 's/.*"checksum":"(0x[0-9a-f]+)".*/\1/'
}

if want ordered; then
    read -r -a impls <<<"$(ordered_impls)"
    for rounds in $ROUNDS_LIST; do
        n=$ORD_N
        expect=$(checksum "$n" "$rounds")
        echo "== W2 ordered (N=$n, rounds=$rounds, checksum $expect)" >&2
        for ((r = 1; r <= RUNS; r++)); do
            for i in $(rotate "$r" "${impls[@]}"); do
                run "$r" ordered --impl "$i" --items "$n" --rounds "$rounds" --expect "$expect"
            done
        done
    done
fi

if want ordered-10m; then
    read -r -a impls <<<"$(ordered_impls)"
    expect=$(checksum "$BIG_N" 0)
    echo "== W2 ordered, streaming N=$BIG_N, rounds=0 (peak RSS)" >&2
    big_runs=$((RUNS < 3 ? RUNS : 3))
    for ((r = 1; r <= big_runs; r++)); do
        for i in $(rotate "$r" "${impls[@]}"); do
            run "$r" ordered --impl "$i" --items "$BIG_N" --rounds 0 --expect "$expect"
        done
    done
fi

python3 "$here/summarize.py" "$results" "$OUT/machine.txt" | tee "$OUT/summary.md"
echo "results: $OUT" >&2
