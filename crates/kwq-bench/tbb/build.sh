#!/usr/bin/env bash
# Builds kwq-bench-tbb (oneTBB parallel_pipeline peer for `kwq-bench ordered`).
#   crates/kwq-bench/tbb/build.sh [OUT_DIR]
# OUT_DIR defaults to ${CARGO_TARGET_DIR:-<repo>/target}/release, next to
# kwq-bench, where `kwq-bench ordered --impl tbb` looks for it.
# Installs Debian's libtbb-dev (and g++) when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-${CARGO_TARGET_DIR:-$repo/target}/release}"
if ! [ -e /usr/include/oneapi/tbb/parallel_pipeline.h ] || ! command -v g++ >/dev/null; then
    echo "build.sh: installing libtbb-dev g++ ..." >&2
    if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libtbb-dev g++ >/dev/null
fi
mkdir -p "$out"
g++ -O2 -std=c++17 -o "$out/kwq-bench-tbb" "$here/ordered.cpp" -ltbb -lpthread
echo "$out/kwq-bench-tbb"
