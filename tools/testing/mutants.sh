#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs every mutant of tools/testing/mutants/cases against the case meant
# to catch it, and fails if any survives or is caught by anything else.
#   tools/testing/mutants.sh [NAME-FILTER]
#
# Mutants whose case is a release-kernel VM selftest (check-vm) run in one
# batch: each is built into build/mutants/NAME/ (the module alone, with
# the work tree's tools; one build per CPU at a time), then one VM boot
# loads each module in turn and runs only its case
# (tools/testing/mutants-guest.sh). Such a mutant is
# caught if its case fails, or if the kernel reports a problem (KASAN, a
# BUG, a WARNING, a hung task...) while its case runs; a case that hangs
# is failed by the selftest runner's own watchdog. The others (host tests,
# the debug kernel) go one by one through tools/testing/mutant.sh, with
# the same rule.

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/kernel-report.sh"
filter=${1:-}
work=$top/build/mutants
caught=0 missed=()

batch=() applied=()
while read -r mutant target case; do
	case $mutant in ''|'#'*) continue ;; esac
	[ -n "$filter" ] && [[ $mutant != *"$filter"* ]] && continue
	if [ "$target" = check-vm ]; then
		batch+=("$mutant $case")
	elif "$here/mutant.sh" "$here/mutants/$mutant" "$target" "$case"; then
		caught=$((caught + 1))
	else
		missed+=("$mutant")
	fi
done <"$here/mutants/cases"

if [ ${#batch[@]} -gt 0 ]; then
	export KFLAVOUR=release
	kdir=$("$here/kernel.sh" --print-dir)
	rm -rf "$work"
	mkdir -p "$work"
	list=$work/list
	: >"$list"
	for entry in "${batch[@]}"; do
		read -r mutant case <<<"$entry"
		name=${mutant%.diff}
		dir=$work/$name
		mkdir -p "$dir"
		tar -C "$top" -cf - Kbuild drivers include | tar -C "$dir" -xf -
		find "$dir" \( -name '*.o' -o -name '*.ko' -o -name '*.cmd' -o -name '*.mod*' \
			-o -name modules.order -o -name Module.symvers \) -delete
		if ! (cd "$dir" && patch -s -p1 <"$here/mutants/$mutant"); then
			echo "mutants: $mutant does not apply" >&2
			missed+=("$mutant")
			continue
		fi
		applied+=("$mutant $case")
	done
	# One build per CPU at a time: each is mostly one rustc process.
	echo "mutants: building ${#applied[@]} modules" >&2
	for entry in "${applied[@]}"; do
		read -r mutant _ <<<"$entry"
		echo "$work/${mutant%.diff}"
	done | xargs -P "$(nproc)" -I{} sh -c \
		'"$1" -C "$2" M="$3" modules >"$3/build.log" 2>&1; echo $? >"$3/build.status"' \
		_ "$here/kmake" "$kdir" {}
	for entry in "${applied[@]}"; do
		read -r mutant case <<<"$entry"
		name=${mutant%.diff}
		dir=$work/$name
		if [ "$(cat "$dir/build.status" 2>/dev/null)" != 0 ] ||
			grep -q 'warning:' "$dir/build.log"; then
			tail -20 "$dir/build.log" >&2
			echo "mutants: $name does not build warning-free (not a catch)" >&2
			missed+=("$mutant")
			continue
		fi
		echo "$name $dir/drivers/vhost/blk/vhost_blk.ko $case" >>"$list"
	done
	# Each case with its mutant: a catch takes the case's own failure,
	# or its hang up to the runner's watchdog (300 s) and the unload.
	n=$(wc -l <"$list")
	"$here/vm-run.sh" --no-module --out "$work/vm" --timeout $((600 + 420 * n)) -- \
		"$here/mutants-guest.sh" "$list" "$top/target/release/vhost-blk-selftest" "$kdir" \
		>"$work/vm.log" 2>&1
	vm_status=$?
	# Kernel reports, each under the mutant whose case was running.
	# (The console has every kernel line, even of a VM that timed out.)
	reports=$(grep -a -E "$KERNEL_LINE" "$work/vm/console.log" 2>/dev/null |
		awk -v report="$KERNEL_REPORT" '/vhost-blk-mutant: start /{m=$NF} /vhost-blk-mutant: end/{m=""}
		$0 ~ report { print (m == "" ? "(none)" : m) ": " $0 }')
	while read -r name _ case; do
		result=$(grep -a -o -E "^mutant-result $name [a-z-]+" "$work/vm.log" | tail -1 |
			awk '{print $3}')
		report=$(printf '%s\n' "$reports" | grep -m1 "^$name: " || true)
		if [ "$result" = caught ]; then
			how=$(grep -a -m1 -E "^  \[$name\] FAIL - $case" "$work/vm.log" | sed "s/^  \[$name\] //")
			echo "mutants: ok: $case caught $name.diff: $how" >&2
			caught=$((caught + 1))
		elif [ -n "$report" ]; then
			echo "mutants: ok: the kernel reported a problem during $case under $name.diff: ${report#*: }" >&2
			caught=$((caught + 1))
		else
			echo "mutants: FAIL: $name.diff: ${result:-not run} in $case (log: $work/vm.log)" >&2
			missed+=("$name.diff")
		fi
	done <"$list"
	if printf '%s\n' "$reports" | grep -q '^(none): '; then
		echo "mutants: FAIL: a kernel report outside every mutant's case:" >&2
		printf '%s\n' "$reports" | grep '^(none): ' >&2
		missed+=("(kernel log)")
	fi
	[ $vm_status = 0 ] || [ $vm_status = 1 ] ||
		echo "mutants: the VM run ended with status $vm_status (log: $work/vm.log)" >&2
fi

echo "mutants: $caught caught${missed:+, not caught: ${missed[*]}}"
[ ${#missed[@]} = 0 ]
