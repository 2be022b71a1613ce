#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compares runs of vhost-blk-bench with module A and with module B.

  bench-compare.py A.csv [A.csv...] -- B.csv [B.csv...]

Each file is a run's summary.csv. For every row of vhost-blk's engines
that both sides have, a side's median is the mean of its runs' medians
and its slowest repetition the lowest of its runs' minimums. Prints A's
median IOPS over B's and flags a row where A's median is below B's
slowest repetition; exits 1 if any row is flagged.
"""
import csv
import sys


def rows(path):
    with open(path, newline="") as f:
        return {
            (r["scenario"], r["backing"], r["workload"], r["engine"]): r
            for r in csv.DictReader(f)
            if r["engine"].startswith("vhost-blk")
        }


def side(paths):
    """{row: {"iops": mean of medians, "iops_min": min of minimums}}."""
    runs = [rows(p) for p in paths]
    keys = set.intersection(*(set(r) for r in runs))
    return {
        k: {
            "iops": sum(float(r[k]["iops"]) for r in runs) / len(runs),
            "iops_min": min(float(r[k]["iops_min"]) for r in runs),
        }
        for k in keys
    }


def main():
    args = sys.argv[1:]
    if args.count("--") != 1 or args.index("--") == 0 or args[-1] == "--":
        print("usage: bench-compare.py A.csv [A.csv...] -- B.csv [B.csv...]", file=sys.stderr)
        return 2
    cut = args.index("--")
    a, b = side(args[:cut]), side(args[cut + 1:])
    keys = sorted(set(a) & set(b))
    if not keys:
        print("bench-compare: no row in common", file=sys.stderr)
        return 2
    flagged = 0
    print(f"{'scenario/backing/workload/engine':<70} {'A iops':>9} {'B iops':>9} {'B min':>9} {'A/B':>6}")
    for k in keys:
        ra, rb = a[k], b[k]
        ia, ib, bmin = float(ra["iops"]), float(rb["iops"]), float(rb["iops_min"])
        ratio = ia / ib if ib else float("inf")
        bad = ia < bmin
        flagged += bad
        name = "/".join(k)
        print(f"{name:<70} {ia:>9.0f} {ib:>9.0f} {bmin:>9.0f} {ratio:>6.2f}{'  BELOW B MIN' if bad else ''}")
    ratios = sorted(float(a[k]["iops"]) / float(b[k]["iops"]) for k in keys if float(b[k]["iops"]))
    mid = ratios[len(ratios) // 2]
    print(f"{len(keys)} rows; A/B median {mid:.2f}, min {ratios[0]:.2f}, max {ratios[-1]:.2f}; "
          f"{flagged} with A's median below B's slowest repetition")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
