#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Proves that a test catches a deliberately broken module:
#   tools/testing/mutant.sh PATCH [MAKE-TARGET [CASE]]   (default: check-e2e)
# Copies the work tree to build/mutant/, applies PATCH there (a diff of
# drivers/, e.g. tools/testing/mutants/*.diff), runs `make MAKE-TARGET`
# in the copy, and succeeds only if that fails. The copy shares the kernel
# and QEMU caches and, unless the host tests build the mutant, cargo's
# target directory (the userspace tools do not change).
#
# With CASE, only that case runs (SELFTEST_FILTER=CASE for the VM
# selftests, a test-name filter for the host tests), and the mutant counts
# as caught only if that case is what failed: `FAIL - CASE` from the VM
# selftests, CASE among cargo's failed tests, or a kernel report (KASAN, a
# BUG, a WARNING, an Oops, a kmemleak leak) once the VM started CASE, the
# only case. A build that fails, a VM that hangs or dies otherwise is not a
# catch.

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PATCH [MAKE-TARGET [CASE]]" >&2; exit 2; }
patch=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
target=${2:-check-e2e}
case=${3:-}
copy=$top/build/mutant
rm -rf "$copy"
mkdir -p "$copy"
tar -C "$top" --exclude=./build --exclude=./target --exclude=./.git -cf - . | tar -C "$copy" -xf -
(cd "$copy" && make --no-print-directory module-clean >/dev/null && patch -p1 <"$patch") ||
	{ echo "mutant: $patch does not apply" >&2; exit 2; }
# The tools are the work tree's (built by cargo into its target/). A
# mutant of the core that the host tests build gets a target directory of
# its own: cargo names a build by the package, not by where its sources
# are, so a build of the copy's mutated sources in the work tree's target/
# would later pass for the work tree's own (its fingerprint lists the
# copy's files, which never change again).
cargo_target=$top/target
[ "$target" = test-host ] && cargo_target=$top/build/mutant-target
ln -s "$cargo_target" "$copy/target"
name=$(basename "$patch")
log=$top/build/mutant-${name%.diff}.log
echo "mutant: running make $target${case:+ for $case} with $name applied (log: $log)" >&2
args=("$target")
[ -n "$case" ] && args+=("SELFTEST_FILTER=$case" "TEST_FILTER=$case")
CARGO_TARGET_DIR=$cargo_target make -C "$copy" --no-print-directory "${args[@]}" >"$log" 2>&1
status=$?
if [ $status = 0 ]; then
	tail -20 "$log" >&2
	echo "mutant: FAIL: make $target passed with $name applied" >&2
	exit 1
fi
if [ -z "$case" ]; then
	echo "mutant: ok: make $target failed (status $status) with $name applied" >&2
	exit 0
fi
if grep -q -e "^FAIL - $case" -e "^    $case\$" -e "^test $case .*FAILED" "$log"; then
	how=$(grep -m1 -e "^FAIL - $case" -e "^test $case .*FAILED" -e "panicked at" "$log")
elif grep -q "vm-run: FAIL: the guest kernel log reports problems" "$log" &&
	grep -q "^VHOST_BLK_VM_STARTED" "$log" &&
	grep -q -E "BUG: KASAN:|BUG: kernel|WARNING: CPU|Oops:|kmemleak: [0-9]+ new" "$log"; then
	# CASE was the only case run: the report (which panic_on_warn may turn
	# into a panic) is its doing.
	how=$(grep -m1 -E "BUG: KASAN:|BUG: kernel|WARNING: CPU|Oops:|kmemleak: [0-9]+ new" "$log")
else
	tail -30 "$log" >&2
	echo "mutant: FAIL: make $target failed (status $status), but not in $case" >&2
	exit 1
fi
echo "mutant: ok: $case caught $name: $how" >&2
exit 0
