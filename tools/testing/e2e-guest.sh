#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the L2 guest, whose /dev/vda is a vhost-blk-pci disk served by
# vhost_blk.ko in L1: fio with crc32c verification (random read/write,
# several block sizes and depths, both queues), a flush and fsync storm,
# an unbind and rebind of the virtio-blk driver, and a second verification.
# Prints VHOST_BLK_E2E_RC=<status>.

set -u
dev=/dev/vda
rc=0
step() {
	echo "e2e: $*"
}
fail() {
	echo "e2e: FAIL: $*"
	rc=1
}

# The size each fio job covers (the L1 script passes a smaller one for an
# L2 on TCG, which is far slower): vhost_blk_e2e.size= on the command line.
size=$(sed -n 's/.*vhost_blk_e2e\.size=\([0-9a-z]*\).*/\1/p' /proc/cmdline)
size=${size:-64m}
# fio needs SysV shared memory (shmget), even with --thread, and the
# test kernel has no CONFIG_SYSVIPC yet: see Documentation/qemu.rst.
step "kernel $(uname -r), $(nproc) CPUs, fio jobs of $size"
[ -b $dev ] || { fail "$dev missing"; echo "VHOST_BLK_E2E_RC=1"; exit 1; }
step "$dev: $(cat /sys/block/vda/size) sectors, $(cat /sys/block/vda/mq/*/nr_tags 2>/dev/null | wc -l) hardware queues, serial '$(cat /sys/block/vda/serial 2>/dev/null)', cache '$(cat /sys/block/vda/queue/write_cache)'"

# Smoke first: single direct reads on each queue's CPU, bounded, so that a
# device that stops taking requests fails in a minute with the block
# layer's view of it, not at the end of the whole budget.
smoke() {
	local cpu
	for cpu in 0 1; do
		if ! timeout 120 taskset -c $cpu dd if=$dev of=/dev/null bs=4k count=64 \
			iflag=direct status=none; then
			fail "smoke: 64 direct 4k reads on CPU $cpu did not complete in 120 s"
			echo "e2e: inflight (read write): $(cat /sys/block/vda/inflight)"
			mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
			grep -r . /sys/kernel/debug/block/vda/hctx*/busy \
				/sys/kernel/debug/block/vda/hctx*/dispatch 2>/dev/null | head -20
			echo "VHOST_BLK_E2E_RC=$rc"
			exit 1
		fi
	done
	step "smoke: 64 direct reads on each CPU"
}
smoke

fio_verify() {
	# $1: name, then fio options
	local name=$1
	shift
	fio --name="$name" --filename=$dev --direct=1 --ioengine=libaio --thread \
		--size=$size --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=terse --terse-version=3 "$@" >/tmp/fio-$name.txt 2>&1 ||
		{ fail "fio $name"; cat /tmp/fio-$name.txt; return; }
	# terse v3: field 3 is the error code.
	local err
	err=$(cut -d';' -f5 /tmp/fio-$name.txt | head -1)
	step "fio $name: ok (error field $err)"
}

# Random writes then verify, at several block sizes and depths; two jobs
# so that both queues carry I/O.
fio_verify rand4k --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 --offset_increment=$size
fio_verify rand64k --rw=randwrite --bs=64k --iodepth=4 --numjobs=2 --offset_increment=$size
fio_verify mixed --rw=randrw --rwmixread=30 --bsrange=512-128k --iodepth=8 --numjobs=2 --offset_increment=$size
fio_verify seq1m --rw=write --bs=1m --iodepth=2

# Flush storm: small writes, each followed by fsync (a FLUSH request).
fio --name=fsync --filename=$dev --direct=0 --ioengine=sync --thread --rw=randwrite \
	--bs=4k --size=2m --fsync=1 --output-format=terse >/tmp/fio-fsync.txt 2>&1 ||
	{ fail "fsync storm"; cat /tmp/fio-fsync.txt; }
step "fsync storm done"

# Rebind the driver: the device is reset and set up again.
pci=$(basename "$(readlink -f /sys/block/vda/device/..)" 2>/dev/null)
virtio=$(basename "$(readlink -f /sys/block/vda/device)")
if [ -n "$virtio" ] && [ -e /sys/bus/virtio/drivers/virtio_blk/unbind ]; then
	echo "$virtio" >/sys/bus/virtio/drivers/virtio_blk/unbind || fail "unbind"
	[ -b $dev ] && fail "$dev still present after unbind"
	echo "$virtio" >/sys/bus/virtio/drivers/virtio_blk/bind || fail "bind"
	sleep 1
	[ -b $dev ] || fail "$dev missing after rebind"
	step "driver unbound and rebound ($virtio on $pci)"
else
	fail "cannot find the virtio device of $dev"
fi

# Verify what the first round wrote, after the rebind.
# (the seq1m job was the last to write the first 64 MiB; verify_only
# replays it and checks every block's header and crc32c).
fio --name=seq1m --filename=$dev --direct=1 --ioengine=libaio --thread --rw=write \
	--bs=1m --iodepth=2 --size=$size --verify=crc32c --verify_fatal=1 \
	--verify_only >/tmp/fio-reverify.txt 2>&1 ||
	{ fail "verify after rebind"; cat /tmp/fio-reverify.txt; }
fio_verify after-rebind --rw=randwrite --bs=16k --iodepth=16 --numjobs=2 --offset_increment=$size
step "done"
echo "VHOST_BLK_E2E_RC=$rc"
