#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Proves that a test catches a deliberately broken module:
#   tools/testing/mutant.sh PATCH [MAKE-TARGET...]   (default: check-e2e)
# Copies the work tree to build/mutant/, applies PATCH there (a diff of
# drivers/, e.g. tools/testing/mutants/*.diff), runs `make MAKE-TARGET`
# in the copy, and succeeds only if that fails. The copy shares the kernel
# and QEMU caches and cargo's target directory (the userspace tools do not
# change).

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PATCH [MAKE-TARGET...]" >&2; exit 2; }
patch=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
[ $# -gt 0 ] || set -- check-e2e
copy=$top/build/mutant
rm -rf "$copy"
mkdir -p "$copy"
tar -C "$top" --exclude=./build --exclude=./target --exclude=./.git -cf - . | tar -C "$copy" -xf -
(cd "$copy" && make --no-print-directory module-clean >/dev/null && patch -p1 <"$patch") ||
	{ echo "mutant: $patch does not apply" >&2; exit 2; }
echo "mutant: running make $* with $(basename "$patch") applied" >&2
CARGO_TARGET_DIR=$top/target make -C "$copy" --no-print-directory "$@"
status=$?
if [ $status = 0 ]; then
	echo "mutant: FAIL: make $* passed with $(basename "$patch") applied" >&2
	exit 1
fi
echo "mutant: ok: make $* failed (status $status) with $(basename "$patch") applied" >&2
exit 0
