#!/usr/bin/env bash
# Builds the compress benchmark corpus (bench-spec W4) outside the repo:
# a tar of the Rust toolchain's HTML documentation (the rust-docs
# component), members sorted by path, owner/time normalised, first 256 MiB.
#   usage: crates/kwq-bench/make-corpus.sh [OUT]   (default /tmp/kwq-corpus.tar)
# Prints the sha256; the same toolchain version gives the same bytes.
set -euo pipefail
out=${1:-/tmp/kwq-corpus.tar}
doc="$(rustc --print sysroot)/share/doc/rust/html"
if [ ! -d "$doc" ]; then
    echo "no $doc: run 'rustup component add rust-docs'" >&2
    exit 1
fi
# tar dies of SIGPIPE once head has its 256 MiB: that is expected.
set +o pipefail
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' \
    -C "$(dirname "$doc")" -cf - html | head -c $((256 << 20)) > "$out"
set -o pipefail
echo "rustc: $(rustc --version)"
echo "bytes: $(stat -c %s "$out")"
sha256sum "$out"
