#!/usr/bin/env bash
# W5 `fs`, interleaved: ROUNDS rounds; each round runs every impl once on
# one file, then every impl once with --files, in a rotated order (so no
# impl always runs first after the previous one's writeback), then prints
# medians (and min/max) per impl and mode, and the issue's target ratios.
#   usage: crates/kwq-bench/fs-bench.sh INPUT.tar [ROUNDS (default 5)] [THREADS (default 2)]
# Environment: KWQ_BENCH (the binary; default: built with cargo --release),
# FS_IMPLS (space-separated; default all four; the kernel ones need root),
# FS_OUT (the JSON lines; default a temporary file, printed at the end),
# FS_EXTRA (extra flags for every run, e.g. "--level 1").
set -euo pipefail
input=${1:?usage: fs-bench.sh INPUT.tar [ROUNDS] [THREADS]}
rounds=${2:-5}
threads=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${KWQ_BENCH:-}" ]; then
    cargo build --release -q -p kwq-bench --manifest-path "$here/Cargo.toml"
    KWQ_BENCH="${CARGO_TARGET_DIR:-$here/../../target}/release/kwq-bench"
fi
read -r -a impls <<<"${FS_IMPLS:-kwq-store kwq-store-stacked kernel-btrfs kernel-btrfs-stacked}"
read -r -a extra <<<"${FS_EXTRA:-}"
out=${FS_OUT:-$(mktemp -t fs-bench.XXXXXX.jsonl)}
: >"$out"
n=${#impls[@]}
for ((r = 0; r < rounds; r++)); do
    for mode in one-file files; do
        flag=()
        [ "$mode" = files ] && flag=(--files)
        for ((k = 0; k < n; k++)); do
            imp=${impls[$(((k + r) % n))]}
            line=$(timeout 900 "$KWQ_BENCH" fs --impl "$imp" --input "$input" \
                --threads "$threads" "${flag[@]}" "${extra[@]}" | tail -n 1)
            echo "$line" >>"$out"
            echo "round $((r + 1))/$rounds $mode $imp: $line" >&2
        done
    done
done
echo "results: $out" >&2
python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fields = ["write_mb_per_s", "read_mb_per_s", "ratio", "ratio_total", "stored_bytes",
          "stored_total_bytes", "peak_rss_kib",
          "baseline_rss_kib", "seconds_write", "seconds_read"]
med = {}
def num(x):
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"
print("| mode | impl | runs | " + " | ".join(fields) + " |")
print("|---" * (len(fields) + 3) + "|")
for mode in ["one-file", "files"]:
    for imp in dict.fromkeys(r["impl"] for r in rows):
        rs = [r for r in rows if r["mode"] == mode and r["impl"] == imp]
        if not rs:
            continue
        cells = []
        for f in fields:
            v = [r[f] for r in rs]
            m = statistics.median(v)
            med[(mode, imp, f)] = m
            cells.append(f"{num(m)} ({num(min(v))}..{num(max(v))})")
        print(f"| {mode} | {imp} | {len(rs)} | " + " | ".join(cells) + " |")
print()
def ratio(mode, a, b, f):
    x, y = med.get((mode, a, f)), med.get((mode, b, f))
    return "n/a" if x is None or y is None else f"{x / y:.2f}x"
for mode in ["one-file", "files"]:
    print(f"{mode}: stacked write+sync kwq/kernel {ratio(mode, 'kwq-store-stacked', 'kernel-btrfs-stacked', 'write_mb_per_s')} (target >= 1.5x); "
          f"ratio kwq/kernel {ratio(mode, 'kwq-store', 'kernel-btrfs', 'ratio')} (target >= 1.3x; "
          f"counting Btrfs metadata {ratio(mode, 'kwq-store', 'kernel-btrfs', 'ratio_total')}); "
          f"cold read kwq/kernel {ratio(mode, 'kwq-store', 'kernel-btrfs', 'read_mb_per_s')} (target >= 1.0x)")
EOF
