#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test VM, with vhost_blk.ko loaded:
#   qtest.sh QEMU_BUILD_DIR KERNEL_DIR [--no-mutants]
# QEMU's qtest of vhost-blk-pci (tests/qtest/vhost-blk-test.c of the
# series, in qos-test) against the real module: I/O checked on the disk,
# config, flush, GET_ID, bad requests, discard and write-zeroes, indirect
# descriptors, EVENT_IDX, multiqueue and hot-plug, a legacy driver that
# kicks before DRIVER_OK, a start that fails, a resize under I/O, the
# advertised limits on a scsi_debug disk with 4 KiB blocks and small
# limits, a zoned null_blk refused, and memory hot-plug capped at the
# module's memory regions (vhost.ko's limit must be above the module's:
# boot with vhost.max_mem_regions=509). Every case must pass, none
# skipped. Then each QEMU mutant of tools/testing/mutants/qemu/cases
# (built by qemu.sh into QEMU_BUILD_DIR/mutants/) must fail the case
# named for it (not with --no-mutants).
# Exits with 0 if all of that holds.

set -u
build=$1
kdir=$2
mutants=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
qos=$build/tests/qtest/qos-test
suite=/x86_64/pc/i440FX-pcihost/pci-bus-pc/pci-bus/vhost-blk-pci/vhost-blk-pci-tests
tmp=$(mktemp -d)
rc=0

say() { echo "qtest: $*"; }
fail() {
	echo "qtest: FAIL: $*"
	rc=1
}
zoned=/sys/kernel/config/nullb/qtzoned
cleanup() {
	rmmod scsi_debug 2>/dev/null
	if [ -d "$zoned" ]; then
		echo 0 >"$zoned/power"
		rmdir "$zoned"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# qos-test names the target by the binary's name, so QEMU's options (the
# firmware of Debian's seabios; no default devices, whose ROMs the +ds
# source lacks) go into a wrapper of that name.
# wrap BINARY: prints the wrapper's path.
wrap() {
	local dir
	dir=$(mktemp -d "$tmp/bin.XXXXXX")
	printf '#!/bin/sh\nexec %s -L /usr/share/seabios -L /usr/share/qemu -nodefaults "$@"\n' \
		"$1" >"$dir/qemu-system-x86_64"
	chmod +x "$dir/qemu-system-x86_64"
	echo "$dir/qemu-system-x86_64"
}

# The disk with small limits of its own: 4 KiB blocks, 8 KiB physical,
# discard up to 256 KiB, write-zeroes up to 128 KiB.
insmod "$kdir/drivers/scsi/scsi_debug.ko" dev_size_mb=32 sector_size=4096 \
	physblk_exp=1 opt_blks=16 lbpu=1 lbpws=1 unmap_max_blocks=64 \
	unmap_granularity=2 write_same_length=32 ||
	{ say "scsi_debug did not load"; exit 1; }
udevadm settle 2>/dev/null
limited=
for d in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*/block/*; do
	[ -e "$d" ] && limited=/dev/${d##*/}
done
[ -b "$limited" ] || { say "no scsi_debug disk"; exit 1; }
export QTEST_VHOST_BLK_LIMITED_DISK=$limited

# A zoned disk (null_blk, 4 MiB zones), which the device must refuse.
mkdir "$zoned" && echo 64 >"$zoned/size" && echo 1 >"$zoned/memory_backed" &&
	echo 1 >"$zoned/zoned" && echo 4 >"$zoned/zone_size" &&
	echo 1 >"$zoned/power" || { say "zoned null_blk setup failed"; exit 1; }
udevadm settle 2>/dev/null
[ -b /dev/qtzoned ] || { say "/dev/qtzoned did not appear"; exit 1; }
export QTEST_VHOST_BLK_ZONED_DISK=/dev/qtzoned

# The memslots case tells vhost.ko's limit from the module's only where
# they differ: make check-qtest raises vhost.ko's, as hosts set up for
# memory hot-plug do.
vhost_regions=$(cat /sys/module/vhost/parameters/max_mem_regions 2>/dev/null)
[ "${vhost_regions:-0}" -gt 64 ] ||
	fail "vhost.max_mem_regions is ${vhost_regions:-unset}: boot with vhost.max_mem_regions=509"

QTEST_QEMU_BINARY=$(wrap "$build/qemu-system-x86_64")
export QTEST_QEMU_BINARY
cases=$("$qos" -l | grep -c "^$suite/")
say "$cases cases on $build/qemu-system-x86_64 (limited disk $limited)"
[ "$cases" -gt 0 ] || fail "qos-test lists no vhost-blk-pci case (no /dev/vhost-blk?)"
start=$(date +%s)
"$qos" --tap -p "$suite" >"$tmp/tap" 2>&1
status=$?
cat "$tmp/tap"
passed=$(grep -c "^ok .*$suite/" "$tmp/tap")
skipped=$(grep -c "^ok .*# SKIP" "$tmp/tap")
if [ "$status" != 0 ] || [ "$passed" != "$cases" ] || [ "$skipped" != 0 ]; then
	fail "qos-test: exit $status, $passed of $cases passed, $skipped skipped"
else
	say "$passed cases passed in $(($(date +%s) - start)) s"
fi

while [ "$mutants" != --no-mutants ] && read -r mutant case; do
	case $mutant in '' | '#'*) continue ;; esac
	name=${mutant%.diff}
	bin=$build/mutants/$name/qemu-system-x86_64
	[ -x "$bin" ] || { fail "mutant $name was not built ($bin)"; continue; }
	QTEST_QEMU_BINARY=$(wrap "$bin") "$qos" --tap -p "$suite/$case" \
		>"$tmp/mutant.tap" 2>&1
	if [ $? = 0 ]; then
		cat "$tmp/mutant.tap"
		fail "mutant $name survived $case"
	else
		say "mutant $name caught by $case: $(grep -m1 -E "ERROR|Bail out" "$tmp/mutant.tap")"
	fi
done <"$here/mutants/qemu/cases"
exit $rc
