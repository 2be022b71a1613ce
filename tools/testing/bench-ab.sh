#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test VM (make bench-ab): the backend benchmark on vhost-blk
# alone, with one module and then with another, in the same boot, and
# compares them.
#
# Usage: bench-ab.sh BENCH OUT MODULE_A MODULE_B [BENCH ARGS...]
#   MODULE_A is loaded when this starts (the VM runner loaded it). Each
#   group of rows the benchmark lists (a workload on one disk in one
#   layout, or the fairness scenario) runs four times in a row, A, B, B,
#   A, so that a change in the host's load over minutes falls on both
#   modules alike. The runs are gathered by position into OUT/a1, OUT/b1,
#   OUT/b2 and OUT/a2; the comparison goes to OUT/compare.txt.

set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BENCH OUT MODULE_A MODULE_B [ARGS...]" >&2; exit 2; }
bench=$1 out=$2 mod_a=$3 mod_b=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)

swap() {
	# A device closed with bios in flight keeps the module for a moment.
	for _ in $(seq 50); do rmmod vhost_blk 2>/dev/null && break; sleep 0.2; done
	insmod "$1"
}

# Appends the rows of summary.csv in run directory $1 to $out/$2.
gather() {
	local csv=$out/$2/summary.csv
	mkdir -p "$out/$2"
	if [ -s "$csv" ]; then
		tail -n +2 "$1/summary.csv" >>"$csv"
	else
		cp "$1/summary.csv" "$csv"
	fi
}

mapfile -t groups < <("$bench" --list --peers none "$@")
[ ${#groups[@]} -gt 0 ] || { echo "bench-ab: no rows to compare" >&2; exit 2; }
echo "bench-ab: ${#groups[@]} groups of rows, each A, B, B, A; A = $mod_a, B = $mod_b"
start=$SECONDS
n=0
for g in "${groups[@]}"; do
	read -r scenario backing workload <<<"$g"
	n=$((n + 1))
	sel=(--scenarios "$scenario")
	[ "$backing" = - ] || sel+=(--backing "$backing" --only "$workload")
	for run in a1 b1 b2 a2; do
		case $run in
		b1) swap "$mod_b" ;;
		a2) swap "$mod_a" ;;
		esac
		dir=$out/groups/$n/$run
		mkdir -p "$out/groups/$n"
		if ! "$bench" --out "$dir" --peers none "$@" "${sel[@]}" >"$dir.log" 2>&1; then
			tail -n 20 "$dir.log"
			echo "bench-ab: $g with $run failed" >&2
			exit 1
		fi
		gather "$dir" "$run"
	done
	echo "bench-ab: $n/${#groups[@]} $g done ($((SECONDS - start)) s)"
done
python3 "$here/bench-compare.py" "$out"/a1/summary.csv "$out"/a2/summary.csv -- \
	"$out"/b1/summary.csv "$out"/b2/summary.csv | tee "$out/compare.txt"
