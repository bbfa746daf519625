#!/usr/bin/env bash
# Re-runs the kwq-zstd fuzz targets (decoder, seekable) for SECONDS each
# (default 60), both at once, from the committed corpus. Needs cargo-fuzz
# (`cargo install --locked cargo-fuzz`) and a C++ compiler; the stable
# toolchain is enough: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags,
# and --sanitizer none avoids needing a nightly sanitizer runtime.
# New corpus entries found here are kept in a scratch copy, not committed.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
root=$(cd ../.. && pwd)
export RUSTC_BOOTSTRAP=1
# Its own target dir (different RUSTFLAGS), outside the checkout's tree.
export CARGO_TARGET_DIR=${KWQ_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}
if ! command -v cargo-fuzz >/dev/null; then
    if [ "${CI:-}" = true ]; then
        echo "cargo-fuzz is not installed (cargo install --locked cargo-fuzz)" >&2
        exit 1
    fi
    echo "skipping kwq-zstd fuzzing: cargo-fuzz is not installed" >&2
    exit 0
fi
cargo fuzz build -s none -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
pids=()
for t in decoder seekable; do
    mkdir -p "$scratch/$t"
    cp fuzz/corpus/$t/* "$scratch/$t/"
    cargo fuzz run -s none -O "$t" "$scratch/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1 >"$scratch/$t.log" 2>&1 &
    pids+=($!)
done
fail=0
for i in 0 1; do
    t=$([ $i = 0 ] && echo decoder || echo seekable)
    if ! wait "${pids[$i]}"; then
        echo "fuzz target $t failed:" >&2
        tail -40 "$scratch/$t.log" >&2
        fail=1
    else
        grep -E "stat::number_of_executed_units" "$scratch/$t.log" | sed "s/^/$t: /"
    fi
done
exit $fail
