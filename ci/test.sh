#!/usr/bin/env bash
# The project's test command (see README), runnable locally exactly as CI
# runs it: formatting, lints (with the declared rust-version), rustdoc, every
# test suite of the workspace, unsafe code under valgrind, the model-checker
# matrix, a benchmark smoke run and the loom models.
#
# Rules every step keeps:
# - It honours CARGO_TARGET_DIR (default: cargo's own, target/ in the
#   checkout, which git ignores) and writes nothing else into the checkout;
#   after the last step the tree must be as clean as it was (checked).
# - Every cargo build/test/clippy/doc passes --locked.
# - Under CI=true a missing tool is a failure, never a skip (.ci/run
#   installs what the steps need). Outside CI a step may skip, saying so
#   on stderr.
# - Each step runs inside `section NAME`, which prints its time; the summary
#   at the end (also on failure) lists every section's seconds.
#
# Adding steps: write a function and call `section NAME your_function` in
# the list at the bottom, in the block of your crate (each crate has a
# marked block; add one if yours has none).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
CI="${CI:-false}"

# ---------------------------------------------------------------- helpers

timings=()
start_all=$SECONDS

# section NAME COMMAND...: runs COMMAND, records and prints its duration.
section() {
    local name=$1
    shift
    echo "== $name"
    local t0=$SECONDS
    "$@"
    local dt=$((SECONDS - t0))
    timings+=("$(printf '%6ds  %s' "$dt" "$name")")
    echo "-- $name: ${dt}s"
}

# missing TOOL WHAT: a tool a step needs is absent. Fails under CI=true,
# otherwise returns 1 after saying what is not checked.
missing() {
    if [ "$CI" = true ]; then
        echo "error: $1 is not installed; CI needs it for $2 (.ci/run installs it)" >&2
        exit 1
    fi
    echo "warning: $1 is not installed; $2 NOT checked (CI runs it)" >&2
    return 1
}

report() {
    local rc=$?
    echo
    echo "== section times (CI cost)"
    local t
    for t in "${timings[@]+"${timings[@]}"}"; do echo "$t"; done
    printf '%6ds  total%s\n' "$((SECONDS - start_all))" "$([ "$rc" = 0 ] || echo " (FAILED, exit $rc)")"
}
trap report EXIT

# ------------------------------------------------------------------ steps

step_fmt() {
    cargo fmt --all -- --check
}

# clippy's incompatible_msrv lint (on by default) flags std APIs newer than
# the workspace's rust-version, so the declared MSRV is checked without a
# second toolchain.
step_clippy() {
    cargo clippy --workspace --all-targets --locked -- -D warnings
}

# The libraries' public API documents every error and panic (clippy's
# pedantic missing_errors_doc / missing_panics_doc, with no allow
# attributes for them anywhere). LIB_CRATES: every library crate.
LIB_CRATES=(kwq kwq-policy kwq-model kwq-store kwq-zstd)
step_api_docs() {
    local args=() c
    for c in "${LIB_CRATES[@]}"; do args+=(-p "$c"); done
    if grep -rnE 'allow\((clippy::)?missing_(errors|panics)_doc' crates; then
        echo "error: the lints above may not be allowed" >&2
        return 1
    fi
    cargo clippy "${args[@]}" --lib --locked -- -D clippy::missing_errors_doc \
        -D clippy::missing_panics_doc
}

# clippy checks our own code against rust-version; this checks what we
# build on: every normal dependency (host target, default cfgs) of the
# workspace declares a rust-version no newer than ours. Dev-dependencies
# and cfg(kwq_loom)'s loom only need the CI toolchain.
step_msrv_deps() {
    jq --version >/dev/null 2>&1 || missing jq "the dependencies' rust-version check" || return 0
    local meta ours deps bad=0 name version need
    meta=$(cargo metadata --locked --format-version 1)
    ours=$(printf '%s' "$meta" | jq -r '[.packages[] | select(.name == "kwq") | .rust_version][0]')
    [[ $ours =~ ^[0-9]+\.[0-9]+$ ]] && ours=$ours.0
    deps=$(cargo tree --workspace -e normal --locked --prefix none --format '{p}' |
        sed 's/ (.*//; s/ v/ /' | sort -u)
    while read -r name version need; do
        grep -qx "$name $version" <<<"$deps" || continue
        [[ $need =~ ^[0-9]+\.[0-9]+$ ]] && need=$need.0
        if [ "$(printf '%s\n%s\n' "$need" "$ours" | sort -V | tail -n 1)" != "$ours" ]; then
            echo "error: $name $version needs Rust $need, newer than our rust-version $ours" >&2
            bad=1
        fi
    done < <(printf '%s' "$meta" |
        jq -r '.packages[] | select(.rust_version != null) | "\(.name) \(.version) \(.rust_version)"')
    [ "$bad" = 0 ] && echo "every normal dependency builds with Rust $ours"
}

# Library code only: comments and the #[cfg(test)] modules at the bottom of
# files may use std directly.
step_sync_facade() {
    local bad
    bad=$(find crates/kwq/src -name '*.rs' -not -path 'crates/kwq/src/sync/*' \
            -not -path 'crates/kwq/src/tests/*' -print0 |
        xargs -0 awk '/^#\[cfg\((all\()?test/ { nextfile }
                      /^[[:space:]]*\/\// { next }
                      /std::sync::(Mutex|Condvar|RwLock|atomic)|std::thread::spawn/ { print FILENAME ":" FNR ": " $0 }')
    if [ -n "$bad" ]; then
        echo "$bad"
        echo "error: use crate::sync instead (loom cannot see std primitives)" >&2
        return 1
    fi
}

# Dependencies inside kwq point one way. The pool (crates/kwq/src/pool/)
# is the leaf: it names nothing of the crate but the sync facade and its
# own files (what it runs comes through its Schedule trait), so loom runs
# it as it is. The runtime core (work items, workqueues, the worker
# context, ...) never names the ordered layer built on it (it reports
# blocking through a hook the ordered layer sets). Comment lines are not
# checked.
step_layering() {
    local bad
    bad=$(grep -rnE 'crate::[a-z_]+' crates/kwq/src/pool --include='*.rs' |
        grep -vE '^[^:]+:[0-9]+:\s*//' |
        grep -E 'crate::' | grep -vE 'crate::(sync|pool)\b' || true)
    if [ -n "$bad" ]; then
        echo "$bad"
        echo "error: the pool names a module above it (use its Schedule trait)" >&2
        return 1
    fi
    bad=$(grep -rnE '(crate|super)::ordered' crates/kwq/src --include='*.rs' |
        grep -v '^crates/kwq/src/ordered/' | grep -v '^crates/kwq/src/tests/' |
        grep -v '^crates/kwq/src/lib.rs' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
    if [ -n "$bad" ]; then
        echo "$bad"
        echo "error: the kwq core names the ordered layer above it" >&2
        return 1
    fi
}

# Every crate's docs, private items included, without a rustdoc warning.
# The `kwq` binary (kwq-cli) is documented on its own first: it shares its
# name with the kwq library, whose docs then take doc/kwq/.
step_doc() {
    cargo rustdoc -p kwq-cli --bin kwq --locked -- -D warnings --document-private-items
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked
}

# The published crates package with what a reader of their docs needs
# (README, licences), and each builds from its package alone (cargo
# verifies them together, in dependency order, against a local overlay).
PACKAGES=(kwq-policy kwq kwq-model)
step_package() {
    local p list f args=()
    for p in "${PACKAGES[@]}"; do
        args+=(-p "$p")
        list=$(cargo package --list -p "$p" --locked --allow-dirty)
        for f in README.md LICENSE-MIT LICENSE-APACHE Cargo.toml src/lib.rs; do
            grep -qx "$f" <<<"$list" || { echo "error: $p's package lacks $f" >&2; return 1; }
        done
    done
    cargo package "${args[@]}" --locked --allow-dirty
}

step_tests() {
    cargo test --workspace --locked
}

# The inline job store and the ordered ring's slots are the unsafe code;
# their unit tests run under memcheck (no Miri on this toolchain).
step_valgrind() {
    valgrind --version >/dev/null 2>&1 || missing valgrind "the unsafe code's memcheck run" || return 0
    local json lib
    json=$(cargo test -p kwq --lib --locked --no-run --message-format=json)
    lib=$(printf '%s\n' "$json" | grep '"kind":\["lib"\]' |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1 || true)
    if [ -z "$lib" ] || [ ! -x "$lib" ]; then
        echo "error: cannot find kwq's unit-test executable" >&2
        return 1
    fi
    valgrind -q --error-exitcode=9 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite "$lib" job:: ordered::ring:: --test-threads=1 >/dev/null ||
        return 1
    echo "valgrind: ok ($lib)"
}

# Every matrix cell; the heaviest are ignored in debug builds. The larger
# proof of the candidate fix (v6-fix at 4 items and 5 workers, tens of
# millions of states, about 6 GB of memory) is its own step.
step_model() {
    cargo test -p kwq-model --release --locked -- --include-ignored --skip larger_proof
}

step_model_proof() {
    cargo test -p kwq-model --release --locked --test integration larger_proof_v6_fix -- --ignored
}

# Every ordered run verifies its checksum; the others check their counts.
step_bench_smoke() {
    cargo build --release --locked -p kwq-bench
    local B="$TARGET/release/kwq-bench" impl rounds inflight
    for impl in kwq kwq-caller kwq-iter; do
        for rounds in 0 50; do
            for inflight in 16 4096; do
                "$B" ordered --impl "$impl" --items 50000 --rounds "$rounds" \
                    --inflight "$inflight" --threads 2 >/dev/null
            done
        done
    done
    "$B" ordered --impl ceiling --items 50001 --rounds 50 --threads 3 >/dev/null
    "$B" spawn --impl kwq --items 200000 --threads 2 >/dev/null
    "$B" spawn --impl kwq-work --items 200000 --threads 2 >/dev/null
    "$B" latency --impl kwq --items 300 --interval-us 200 --warmup 20 --threads 2 >/dev/null
    "$B" blocked --impl kwq --items 5 --block-ms 20 --threads 2 >/dev/null
    # W5 on kwq-store, one store and two stacked, one file and a tar's
    # members (the kernel-Btrfs peers need root and loop devices: not here).
    local d
    d=$(mktemp -d)
    seq 1 600000 >"$d/in.txt"
    tar -cf "$d/in.tar" -C crates .
    for impl in kwq-store kwq-store-stacked; do
        "$B" fs --impl "$impl" --input "$d/in.txt" --threads 2 --dir "$d" >/dev/null
        "$B" fs --impl "$impl" --input "$d/in.tar" --files --threads 2 --dir "$d" >/dev/null
    done
    rm -rf "$d"
    echo "benchmark smoke: ok"
}

# kwq-store's model, crash and stacking tests at CI size (the debug run in
# step_tests uses small defaults): 2000 model sequences, 4000 simulated
# power cuts, 1000 stacked upper-in-lower runs, each fsck'd, under the
# tests' own watchdog.
step_store_release() {
    KWQ_STORE_MODEL_CASES=2000 KWQ_STORE_CRASH_ITERS=4000 KWQ_STORE_STACK_RUNS=1000 \
        timeout 900 cargo test --release -p kwq-store --locked
}

step_loom() {
    bash ci/loom.sh
}

# The checkout is as clean as before: no step wrote into the repository.
step_clean_tree() {
    if ! git rev-parse --git-dir >/dev/null 2>&1; then
        missing git "the clean-tree check" || return 0
    fi
    local dirty
    dirty=$(git status --porcelain --untracked-files=all)
    if [ -n "$dirty" ] && [ "$dirty" != "$dirty_before" ]; then
        echo "$dirty"
        echo "error: the steps above wrote into the checkout" >&2
        return 1
    fi
}
dirty_before=$(git status --porcelain --untracked-files=all 2>/dev/null || true)

# ---------------------------------------------------------- the step list

# -- workspace-wide
section fmt step_fmt
section clippy step_clippy
section "api docs (errors, panics)" step_api_docs
section "msrv of dependencies" step_msrv_deps
section doc step_doc
section tests step_tests
section package step_package

# -- kwq
section "kwq: sync facade" step_sync_facade
section "kwq: layering" step_layering
section "kwq: valgrind" step_valgrind
section "kwq: loom" step_loom

# -- kwq-model
section "kwq-model: matrix (release)" step_model
section "kwq-model: larger proof of v6-fix (release)" step_model_proof

# -- kwq-bench
section "kwq-bench: smoke (release)" step_bench_smoke

# -- kwq-zstd
# Tests, CLI tests, each fuzz target for 60 s; needs Debian's zstd package
# (zstd, pzstd) and cargo-fuzz (see crates/kwq-zstd/ci.sh).
step_kwq_zstd() {
    bash crates/kwq-zstd/ci.sh
}
section "kwq-zstd: tests + fuzz" step_kwq_zstd

# -- kwq-store
section "kwq-store: power cuts + stacked runs (release)" step_store_release

# -- last
section "clean tree" step_clean_tree
