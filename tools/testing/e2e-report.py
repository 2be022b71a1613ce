#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The table of the end-to-end comparison, made in L1 from the results the
L2 guest printed (e2e-demo.sh's "demo-csv: rep,job,disk,iops,p50_us,p99_us"
lines, read from standard input among the rest of L2's console).

For every job and disk: the median IOPS, p50 and p99 completion latency
over the repetitions, the spread of IOPS, and the ratios of IOPS and p50
against QEMU's virtio-blk-pci with aio=native. Exits non-zero if no result
was found.
"""

import statistics
import sys

BASELINE = "virtio-blk-pci-native"


def main():
    results = {}
    jobs = []
    for line in sys.stdin:
        if not line.startswith("demo-csv: "):
            continue
        try:
            rep, job, disk, iops, p50, p99 = line[len("demo-csv: "):].strip().split(",")
            row = (float(iops), float(p50), float(p99))
        except ValueError:
            print(f"demo: unreadable result line: {line.strip()}")
            continue
        if job not in jobs:
            jobs.append(job)
        results.setdefault((job, disk), []).append(row)
    if not results:
        print("demo: FAIL: no results")
        return 1
    disks = sorted({d for _, d in results})
    reps = max(len(r) for r in results.values())
    print(f"demo: medians of {reps} repetitions; ratios against {BASELINE}")
    print(f"demo: {'job':<22} {'disk':<26} {'IOPS':>8} {'min..max':>13} {'p50us':>9} "
          f"{'p99us':>9} {'IOPS x':>7} {'p50 x':>7}")
    for job in jobs:
        base = results.get((job, BASELINE))
        bmed = [statistics.median(x[i] for x in base) for i in range(3)] if base else None
        for disk in disks:
            runs = results.get((job, disk))
            if not runs:
                continue
            med = [statistics.median(x[i] for x in runs) for i in range(3)]
            ratio = "      -       -"
            if bmed and bmed[0] and bmed[1]:
                ratio = f"{med[0] / bmed[0]:6.2f}x {med[1] / bmed[1]:6.2f}x"
            iops = [x[0] for x in runs]
            spread = f"{min(iops):.0f}..{max(iops):.0f}"
            print(f"demo: {job:<22} {disk:<26} {med[0]:8.0f} {spread:>13} {med[1]:9.1f} "
                  f"{med[2]:9.1f} {ratio}")
    print("demo: IOPS x above 1 and p50 x below 1 favour the disk over the baseline.")
    print("demo: L1 and L2 both run under TCG here: absolute IOPS are a small")
    print("demo: fraction of a KVM host's and only the ratios between disks of")
    print("demo: one run carry over; a repetition can differ from the next by")
    print("demo: tens of percent, so read the spread before a small ratio.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
