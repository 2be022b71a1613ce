#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compares two runs of vhost-blk-bench (summary.csv of A and of B).

For every row of vhost-blk's engines that both runs have, prints A's
median IOPS over B's, and flags a row where A's median is below B's
slowest repetition. Exits 1 if any row is flagged.
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


def main():
    if len(sys.argv) != 3:
        print("usage: bench-compare.py A/summary.csv B/summary.csv", file=sys.stderr)
        return 2
    a, b = rows(sys.argv[1]), rows(sys.argv[2])
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
