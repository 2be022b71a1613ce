#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The end-to-end comparison, run in the L2 guest booted by e2e-l1.sh.

The guest has one disk per peer, each on its own identical null_blk in
L1, told apart by serial (qemu-storage-daemon names its own):

  vhost-blk-pci         serial vhost-blk        vhost_blk.ko in L1
  virtio-blk-pci        serial virtio-aio       QEMU, iothread, aio=native
  virtio-blk-pci        serial virtio-uring     QEMU, iothread, aio=io_uring
  vhost-user-blk-pci    serial vhost_user_blk   qemu-storage-daemon in L1

Every job runs on every disk, REPS times, each repetition in a rotated
order so that drift of the machine hits all peers alike; one fio process
runs a job on all four disks in turn. Prints a line
"demo-csv: ..." per run (e2e-l1.sh collects them) and a table of medians
with ratios against virtio-blk-pci (aio=native).

Usage: e2e-demo.py SECS REPS quick|full
"""

import json
import os
import statistics
import subprocess
import sys

QUICK = [
    ("randread-4k-qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
    ("randread-4k-qd16x2", ["--rw=randread", "--bs=4k", "--iodepth=16", "--numjobs=2"]),
    ("randwrite-4k-qd16x2", ["--rw=randwrite", "--bs=4k", "--iodepth=16", "--numjobs=2"]),
]
FULL = QUICK + [
    ("randwrite-4k-qd1", ["--rw=randwrite", "--bs=4k", "--iodepth=1"]),
    ("randrw70-4k-qd16x2", ["--rw=randrw", "--rwmixread=70", "--bs=4k", "--iodepth=16", "--numjobs=2"]),
    ("read-64k-qd16", ["--rw=read", "--bs=64k", "--iodepth=16"]),
    ("write-64k-qd16", ["--rw=write", "--bs=64k", "--iodepth=16"]),
]
BASELINE = "virtio-blk-pci-native"


def disks():
    """Maps each peer's label to its /dev node, by serial."""
    by_serial = {}
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith("vd"):
            continue
        try:
            with open(f"/sys/block/{name}/serial") as f:
                serial = f.read().strip()
        except OSError:
            serial = ""
        by_serial[serial] = f"/dev/{name}"
    labels = {
        "vhost-blk": "vhost-blk-pci",
        "virtio-aio": "virtio-blk-pci-native",
        "virtio-uring": "virtio-blk-pci-io_uring",
        # qemu-storage-daemon's vhost-user-blk export answers GET_ID so.
        "vhost_user_blk": "vhost-user-blk-pci",
    }
    found = {labels[s]: d for s, d in by_serial.items() if s in labels}
    missing = sorted(set(labels.values()) - set(found))
    if missing:
        sys.exit(f"demo: FAIL: no disk for {', '.join(missing)} (serials seen: {by_serial})")
    return found


def result(job):
    """(IOPS, p50 us, p99 us) of one job of fio's JSON output."""
    iops = job["read"]["iops"] + job["write"]["iops"]
    lat = []
    for d in ("read", "write"):
        if job[d]["io_bytes"]:
            pct = job[d]["clat_ns"]["percentile"]
            lat.append((job[d]["io_bytes"], pct["50.000000"], pct["99.000000"]))
    if not lat or job["error"]:
        raise RuntimeError(f"error {job['error']}, no I/O")
    # The direction that moved most data speaks for the job.
    _, p50, p99 = max(lat)
    return iops, p50 / 1000, p99 / 1000


def fio(disks, secs, opts):
    """Runs one time-based fio job on each of `disks` ((label, dev) pairs),
    one after the other (stonewall) in one fio process, so that fio's slow
    start under double emulation is paid once. Returns {label: result or
    the RuntimeError that job met}."""
    cmd = ["fio", "--direct=1", "--ioengine=libaio", "--thread", "--time_based",
           f"--runtime={secs}", "--ramp_time=1", "--size=64m", "--offset_increment=64m",
           "--group_reporting", "--output-format=json"] + opts
    for label, dev in disks:
        cmd += [f"--name={label}", f"--filename={dev}", "--stonewall"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        e = RuntimeError(f"fio exited {p.returncode}: {p.stderr.strip()}")
        return {label: e for label, _ in disks}
    jobs = {j["jobname"]: j for j in json.loads(p.stdout)["jobs"]}
    out = {}
    for label, dev in disks:
        try:
            out[label] = result(jobs[label])
        except KeyError:
            out[label] = RuntimeError(f"fio reported no job for {dev}")
        except RuntimeError as e:
            out[label] = RuntimeError(f"{dev}: {e}")
    return out


def main():
    secs, reps, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jobs = FULL if which == "full" else QUICK
    peers = disks()
    order = sorted(peers)
    for label in order:
        print(f"demo: {label}: {peers[label]}", flush=True)
    results = {}
    failed = 0
    for rep in range(reps):
        for name, opts in jobs:
            k = rep % len(order)
            rotated = order[k:] + order[:k]
            try:
                got = fio([(label, peers[label]) for label in rotated], secs, opts)
            except (ValueError, KeyError) as e:
                got = {label: RuntimeError(f"unreadable fio output: {e}") for label in rotated}
            for label in rotated:
                r = got[label]
                if isinstance(r, RuntimeError):
                    print(f"demo: FAIL: {name} on {label}: {r}", flush=True)
                    failed += 1
                    continue
                results.setdefault((name, label), []).append(r)
                print(f"demo-csv: {rep},{name},{label},{r[0]:.0f},{r[1]:.1f},{r[2]:.1f}", flush=True)
    print(f"demo: medians of {reps} runs of {secs} s; ratios against {BASELINE}")
    print(f"demo: {'job':<22} {'disk':<26} {'IOPS':>8} {'min..max':>13} {'p50us':>9} "
          f"{'p99us':>9} {'IOPS x':>7} {'p50 x':>7}")
    for name, _ in jobs:
        base = results.get((name, BASELINE))
        for label in order:
            runs = results.get((name, label))
            if not runs:
                continue
            med = [statistics.median(x[i] for x in runs) for i in range(3)]
            if base:
                bmed = [statistics.median(x[i] for x in base) for i in range(3)]
                ratio = f"{med[0] / bmed[0]:6.2f}x {med[1] / bmed[1]:6.2f}x"
            else:
                ratio = "      -       -"
            iops = [x[0] for x in runs]
            spread = f"{min(iops):.0f}..{max(iops):.0f}"
            print(f"demo: {name:<22} {label:<26} {med[0]:8.0f} {spread:>13} {med[1]:9.1f} "
                  f"{med[2]:9.1f} {ratio}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
