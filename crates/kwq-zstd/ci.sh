#!/usr/bin/env bash
# kwq-zstd's CI step: its tests (round trips, zstd/pzstd interop, bad
# input, the 1 GiB bounded-memory stream), the `kwq compress` CLI tests,
# then each fuzz target for 60 s. Needs the Debian package zstd (zstd and
# pzstd) and cargo-fuzz; under CI=true a missing one fails the step.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p kwq-zstd --locked
cargo test -p kwq-cli --test compress --locked
bash crates/kwq-zstd/fuzz/ci.sh "${KWQ_FUZZ_SECONDS:-60}"
