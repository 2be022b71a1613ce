#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test VM (make bench-ab): the backend benchmark on vhost-blk
# alone, with one module and then with another, in the same boot, and
# compares them.
#
# Usage: bench-ab.sh BENCH OUT MODULE_A MODULE_B [BENCH ARGS...]
#   MODULE_A is loaded when this starts (the VM runner loaded it). Two
#   passes each, alternating: OUT/a1, OUT/b1, OUT/a2, OUT/b2; the
#   comparison goes to OUT/compare.txt.

set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BENCH OUT MODULE_A MODULE_B [ARGS...]" >&2; exit 2; }
bench=$1 out=$2 mod_a=$3 mod_b=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)

swap() {
	# A device closed with bios in flight keeps the module for a moment.
	for _ in $(seq 50); do rmmod vhost_blk 2>/dev/null && break; sleep 0.2; done
	insmod "$1"
	echo "bench-ab: loaded $1"
}

# A, B, A, B: drift over the run (the host's load, the guest's caches)
# falls on both alike.
for pass in 1 2; do
	echo "bench-ab: pass $pass, A = $mod_a"
	"$bench" --out "$out/a$pass" --peers none "$@"
	swap "$mod_b"
	echo "bench-ab: pass $pass, B = $mod_b"
	"$bench" --out "$out/b$pass" --peers none "$@"
	swap "$mod_a"
done
python3 "$here/bench-compare.py" "$out"/a1/summary.csv "$out"/a2/summary.csv -- \
	"$out"/b1/summary.csv "$out"/b2/summary.csv | tee "$out/compare.txt"
