#!/usr/bin/env python3
"""Interleaved A/B comparison of kwq-bench runs (binaries, impls or settings).

    crates/kwq-bench/ab.py ROUNDS 'LABEL:ENV:BINARY:ARGS' ...

Each round runs every spec once, in a rotated order; the table gives the
median and all values of items_per_s (M/s) per label, plus each label's
ratio to the first. ENV is empty or NAME=VALUE. Example (two builds of the
iterator front end against rayon):

    crates/kwq-bench/ab.py 8 \\
      'old::/tmp/kwq-bench-old:ordered --impl kwq-iter --rounds 0' \\
      'new::target/release/kwq-bench:ordered --impl kwq-iter --rounds 0' \\
      'rayon::target/release/kwq-bench:ordered --impl rayon --rounds 0'

This script starts once and then only waits for its children, so it does
not compete with them for CPU (an interpreter started *in a pipe* with a
short benchmark does; see BENCHMARKS.md, "Measurement hygiene").
"""
import json
import os
import statistics
import subprocess
import sys


def main() -> int:
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    specs = []
    for sp in sys.argv[2:]:
        parts = sp.split(":", 3)
        if len(parts) != 4:
            print(f"ab.py: bad spec {sp!r} (want LABEL:ENV:BINARY:ARGS)", file=sys.stderr)
            return 2
        specs.append(parts)
    results = {label: [] for label, *_ in specs}
    for r in range(rounds):
        k = r % len(specs)
        for label, env, binary, args in specs[k:] + specs[:k]:
            e = dict(os.environ)
            if env:
                name, _, value = env.partition("=")
                e[name] = value
            p = subprocess.run([binary] + args.split(), capture_output=True, text=True, env=e)
            if p.returncode != 0:
                print(f"ab.py: {label} failed ({p.returncode}): {p.stderr.strip()}", file=sys.stderr)
                return 1
            j = json.loads(p.stdout.strip().splitlines()[-1])
            results[label].append(j["items_per_s"] / 1e6)
    base = statistics.median(results[specs[0][0]])
    for label, v in results.items():
        m = statistics.median(v)
        vals = ", ".join(f"{x:.2f}" for x in sorted(v))
        print(f"{label:14s} median {m:10.3f} M/s  {m / base:6.3f}x  [{vals}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
