#!/usr/bin/env python3
"""Summarises run-all.sh results (JSON lines) as Markdown tables.

    summarize.py results.jsonl [machine.txt]

Throughput workloads (spawn, ordered): median/min/max of items_per_s over the
runs. latency: medians (and min-max) of the per-run p50/p99/p999. Ratios are
kwq (and kwq-*) over the best *peer*: floors (handoff, bare-park), the
sequential reference and the machine's ceiling (ceiling) are shown but never
count as peers. Ordered tables also give each impl's share of the ceiling.
"""
import json
import statistics
import sys
from collections import OrderedDict, defaultdict

FLOORS = {"handoff", "bare-park", "seq", "ceiling"}
STREAMING = {"crossbeam-reorder", "pariter", "tbb"}  # per-item, bounded in-flight


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r.get("failed"):
                print(f"<!-- failed run: {r.get('args')} -->")
                continue
            rows.append(r)
    return rows


def mmm(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt_rate(x):
    return f"{x / 1e6:.2f}"


def is_kwq(i):
    return i == "kwq" or i.startswith("kwq-")


def main():
    rows = load(sys.argv[1])
    if len(sys.argv) > 2:
        print("```")
        print(open(sys.argv[2]).read().rstrip())
        print("```\n")
    groups = OrderedDict()
    for r in rows:
        key = (r["workload"], r["items"], r.get("rounds"))
        groups.setdefault(key, defaultdict(list))[r["impl"]].append(r)

    for (wl, items, rounds), by_impl in groups.items():
        title = f"### {wl}, N = {items:,}"
        if rounds is not None:
            title += f", rounds = {rounds}"
        print(title + "\n")
        if wl == "latency":
            print("| impl | runs | p50 µs median (min–max) | p99 µs median (min–max) | p99.9 µs median | threads |")
            print("|---|---|---|---|---|---|")
            best = {}
            for imp, rs in by_impl.items():
                p50 = mmm([r["p50_us"] for r in rs])
                p99 = mmm([r["p99_us"] for r in rs])
                p999 = statistics.median([r["p999_us"] for r in rs])
                best[imp] = (p50[0], p99[0])
                print(f"| {imp} | {len(rs)} | {p50[0]:.1f} ({p50[1]:.1f}–{p50[2]:.1f}) | "
                      f"{p99[0]:.1f} ({p99[1]:.1f}–{p99[2]:.1f}) | {p999:.1f} | {rs[0]['threads']} |")
            peers = {i: v for i, v in best.items() if not is_kwq(i) and i not in FLOORS}
            if peers and "kwq" in best:
                b50 = min(peers.items(), key=lambda kv: kv[1][0])
                b99 = min(peers.items(), key=lambda kv: kv[1][1])
                k50, k99 = best["kwq"]
                print(f"\nkwq/best-peer: p50 {k50:.1f} vs {b50[1][0]:.1f} µs ({b50[0]}) = "
                      f"**{k50 / b50[1][0]:.2f}×**; p99 {k99:.1f} vs {b99[1][1]:.1f} µs ({b99[0]}) = "
                      f"**{k99 / b99[1][1]:.2f}×** (lower is better)\n")
            continue

        extra_hdr = ""
        if wl == "ordered":
            extra_hdr = " inflight | peak RSS KiB (max) | vs seq | vs ceiling |"
        elif wl == "spawn":
            extra_hdr = " notes |"
        print(f"| impl | runs | M items/s median | min | max | threads |{extra_hdr}")
        print("|---|---|---|---|---|---|" + ("---|" * extra_hdr.count("|")))
        med = {}
        seq_med = None
        if "seq" in by_impl:
            seq_med = statistics.median([r["items_per_s"] for r in by_impl["seq"]])
        ceiling_med = None
        if "ceiling" in by_impl:
            ceiling_med = statistics.median([r["items_per_s"] for r in by_impl["ceiling"]])
        for imp, rs in by_impl.items():
            m = mmm([r["items_per_s"] for r in rs])
            med[imp] = m[0]
            line = f"| {imp} | {len(rs)} | {fmt_rate(m[0])} | {fmt_rate(m[1])} | {fmt_rate(m[2])} | {rs[0]['threads']} |"
            if wl == "ordered":
                rss = max(r.get("peak_rss_kib", 0) for r in rs)
                vs = f"{m[0] / seq_med:.2f}×" if seq_med else ""
                vc = f"{m[0] / ceiling_med:.3f}" if ceiling_med else ""
                line += f" {rs[0].get('inflight', '')} | {rss:,} | {vs} | {vc} |"
            elif wl == "spawn":
                note = ""
                if "executions" in rs[0]:
                    ex = statistics.median([r["executions"] for r in rs])
                    note = f"executions {ex:,.0f}, coalesced {items - ex:,.0f} (median)"
                if imp in FLOORS:
                    note = "floor (1 consumer thread)"
                line += f" {note} |"
            print(line)
        peers = {i: v for i, v in med.items() if not is_kwq(i) and i not in FLOORS}
        if peers:
            bp = max(peers.items(), key=lambda kv: kv[1])
            out = []
            for k in ("kwq", "kwq-caller", "kwq-iter"):
                if k in med:
                    out.append(f"{k}/best-peer = {fmt_rate(med[k])} / {fmt_rate(bp[1])} ({bp[0]}) = **{med[k] / bp[1]:.2f}×**")
            if wl == "ordered" and "kwq" in med:
                sp = {i: v for i, v in med.items() if i in STREAMING}
                if sp:
                    bs = max(sp.items(), key=lambda kv: kv[1])
                    for k in ("kwq", "kwq-caller"):
                        if k in med:
                            out.append(f"{k}/best-streaming-peer = **{med[k] / bs[1]:.2f}×** ({bs[0]})")
            if out:
                print("\n" + "; ".join(out) + " (higher is better)")
            else:
                print(f"\nbest peer: {bp[0]} {fmt_rate(bp[1])} M/s")
        print()


if __name__ == "__main__":
    main()
