#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Where the worker's time goes, per request:
#   tools/testing/profiling/worker-phases.sh [WORKLOAD] [POLL_US]
# (default randread-4k-qd32-q1, 0). Builds the module with
# worker-phases.diff applied in build/phases/ (sharing the kernel cache),
# boots the test VM, runs vhost-blk-bench on WORKLOAD (null_blk memory
# backed) with the worker on the last CPU and the harness on CPU 0, and
# prints the worker's wall time per request in each phase, over 2 s in
# the middle of the run. Needs `make module tools` to have run.

set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
wl=${1:-randread-4k-qd32-q1}
poll=${2:-0}

if [ "${1:-}" = --in-vm ]; then
	wl=$2 poll=$3 ko=$4
	rmmod vhost_blk
	insmod "$ko"
	stats=/sys/kernel/debug/vhost-blk/stats
	cpus=$(nproc)
	echo $((cpus - 1)) >/sys/module/vhost_blk/parameters/worker_cpus
	taskset -c 0 "$top/target/release/vhost-blk-bench" --out /tmp/phases \
		--only "$wl" --scenarios matrix --reps 1 --secs 10 --poll "$poll" \
		--peers none >/tmp/phases.out 2>&1 &
	bench=$!
	snap() {
		echo "$(grep '^phases' $stats | cut -d' ' -f2- | tr '\n' ' ')" \
			"$(grep '^vq' $stats | grep -o ' requests=[0-9]*' | head -1)"
	}
	until grep -q '^vq' $stats; do
		kill -0 $bench 2>/dev/null || { cat /tmp/phases.out; exit 1; }
		sleep 0.2
	done
	sleep 1
	a=$(snap)
	sleep 2
	b=$(snap)
	wait $bench || { cat /tmp/phases.out; exit 1; }
	grep 'bench: matrix' /tmp/phases.out | head -1
	python3 - "$a" "$b" <<'PY'
import sys
a = dict(x.split('=') for x in sys.argv[1].split())
b = dict(x.split('=') for x in sys.argv[2].split())
n = int(b.pop('requests')) - int(a.pop('requests'))
print(f"{n} requests in the window; per request:")
for k in a:
    d = int(b[k]) - int(a[k])
    if k in ('runs', 'signals'):
        print(f"  {k:12s} {d / max(n, 1):8.3f}")
    else:
        print(f"  {k:12s} {d / max(n, 1) / 1000:8.2f} us")
PY
	exit 0
fi

copy=$top/build/phases
rm -rf "$copy"
mkdir -p "$copy"
tar -C "$top" --exclude=./build --exclude=./target --exclude=./.git -cf - . | tar -C "$copy" -xf -
(cd "$copy" && make --no-print-directory module-clean >/dev/null &&
	patch -p1 --quiet <"$here/worker-phases.diff" &&
	make --no-print-directory module >/dev/null)
"$top/tools/testing/vm-run.sh" --timeout 600 -- \
	"$here/worker-phases.sh" --in-vm "$wl" "$poll" "$copy/build/release/vhost_blk.ko"
