#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the L2 guest booted by e2e-l1.sh; vhost_blk_e2e.mode= on the
# kernel command line says what to do:
#
# check: the disk with serial vhost-blk-e2e is a vhost-blk-pci disk served
#   by vhost_blk.ko in L1: fio with crc32c verification (random
#   read/write, several block sizes and depths, both queues), a flush and
#   fsync storm, an unbind and rebind of the virtio-blk driver, and a
#   second verification. The read-only disk (serial vhost-blk-ro) must be
#   read-only, refuse writes, and read back what L1 wrote (its sha256 is
#   vhost_blk_e2e.rosum=). Two disks on scsi_debug with small limits of
#   their own, a whole disk (vhost-blk-sd) and a partition
#   (vhost-blk-part), must have the queue limits the module honours
#   (vhost_blk_e2e.SERIAL=, from L1) and serve whole-disk write-zeroes
#   and discards. The disk vhost-blk-rs, which L1 grows when asked, must
#   show its new size and take writes in the grown area.
# demo: e2e-demo.sh, the same fio jobs on vhost-blk-pci, virtio-blk-pci
#   and vhost-user-blk-pci disks, side by side.
#
# Prints VHOST_BLK_E2E_RC=<status>.

set -u
rc=0
# Seconds since L2 booted, for the log: a slow step and a stuck one look
# alike otherwise.
uptime_s() {
	cut -d' ' -f1 /proc/uptime
}
step() {
	echo "e2e: [$(uptime_s) s] $*"
}
fail() {
	echo "e2e: FAIL: $*"
	rc=1
}
arg() {
	sed -n "s/.*vhost_blk_e2e\.$1=\([^ ]*\).*/\1/p" /proc/cmdline
}
# disk_by_serial SERIAL: the /dev node of the virtio disk with that serial.
disk_by_serial() {
	local d
	for d in /sys/block/vd*; do
		[ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
	done
	return 1
}
describe() {
	local b=/sys/block/${1#/dev/}
	step "$1: $(cat $b/size) sectors, $(ls -d $b/mq/* 2>/dev/null | wc -l) hardware queues, serial '$(cat $b/serial 2>/dev/null)', cache '$(cat $b/queue/write_cache)', ro $(cat $b/ro)"
}

mode=$(arg mode)
# The size each fio job covers (the L1 script passes a smaller one for an
# L2 on TCG, which is far slower).
size=$(arg size)
size=${size:-64m}
secs=$(arg secs)
secs=${secs:-10}
step "kernel $(uname -r), $(nproc) CPUs, mode ${mode:-check}, fio jobs of $size"

if [ "$mode" = demo ]; then
	reps=$(arg reps)
	jobs=$(arg jobs)
	"$(dirname "$0")/e2e-demo.sh" "$secs" "${reps:-1}" "${jobs:-quick}"
	echo "VHOST_BLK_E2E_RC=$?"
	exit 0
fi

dev=$(disk_by_serial vhost-blk-e2e) || { fail "no disk with serial vhost-blk-e2e"; echo "VHOST_BLK_E2E_RC=1"; exit 1; }
describe $dev
vda=${dev#/dev/}

# The read-only disk: flagged so, writes refused, content as L1 wrote it.
ro=$(disk_by_serial vhost-blk-ro) || fail "no disk with serial vhost-blk-ro"
if [ -n "$ro" ]; then
	describe $ro
	[ "$(cat /sys/block/${ro#/dev/}/ro)" = 1 ] || fail "$ro is not read-only"
	# Refused as read-only by L2's kernel, not failed some other way (an
	# I/O error would mean the write reached the device).
	refusal=
	if err=$(dd if=/dev/zero of=$ro bs=4k count=1 oflag=direct status=none 2>&1); then
		fail "a write to the read-only $ro succeeded"
	elif grep -q -E 'Read-only file system|Permission denied|Operation not permitted' <<<"$err"; then
		refusal=$err
	else
		fail "a write to the read-only $ro failed, but not as read-only: $err"
	fi
	sum=$(dd if=$ro bs=1M count=4 iflag=direct status=none | sha256sum | cut -c1-64)
	if [ -z "$refusal" ]; then
		:
	elif [ "$sum" = "$(arg rosum)" ]; then
		step "read-only disk: writes refused ($refusal), 4 MiB read back as L1 wrote them"
	else
		fail "read-only disk: read $sum, L1 wrote $(arg rosum)"
	fi
fi

# Every 120 s, what the block layer has in flight on the disk: a run that
# ends at its time limit then tells a stuck device (requests in flight)
# from a slow guest (none).
monitor() {
	local d
	while sleep 120; do
		d=$(disk_by_serial vhost-blk-e2e) || continue
		echo "e2e: [$(uptime_s) s] ${d#/dev/} inflight (read write): $(cat /sys/block/${d#/dev/}/inflight)"
	done
}
monitor &
monitor_pid=$!

smoke() {
	local cpu
	for cpu in 0 1; do
		if ! timeout 120 taskset -c $cpu dd if=$dev of=/dev/null bs=4k count=64 \
			iflag=direct status=none; then
			fail "smoke: 64 direct 4k reads on CPU $cpu did not complete in 120 s"
			echo "e2e: inflight (read write): $(cat /sys/block/$vda/inflight)"
			mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
			grep -r . /sys/kernel/debug/block/$vda/hctx*/busy \
				/sys/kernel/debug/block/$vda/hctx*/dispatch 2>/dev/null | head -20
			kill $monitor_pid 2>/dev/null
			echo "VHOST_BLK_E2E_RC=$rc"
			exit 1
		fi
	done
	step "smoke: 64 direct reads on each CPU"
}
smoke

# fio_verify LABEL OPTION...: one fio run of the jobs in OPTION (each
# starting with --name=), one after another (stonewall), writing with
# crc32c headers and verifying. Under TCG inside TCG a fio process takes
# minutes to start, so the jobs share one; each job's status is still
# checked, and failures name the job.
fio_verify() {
	local label=$1 a n err names=()
	shift
	for a in "$@"; do
		case $a in --name=*) names+=("${a#--name=}") ;; esac
	done
	fio --filename=$dev --direct=1 --ioengine=libaio --thread --size=$size \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --stonewall \
		--output-format=terse --terse-version=3 "$@" >/tmp/fio-$label.txt 2>&1 ||
		{ fail "fio $label (${names[*]})"; cat /tmp/fio-$label.txt; return; }
	# terse v3: field 3 is the job's name, field 5 its error code.
	for n in "${names[@]}"; do
		err=$(grep "^3;[^;]*;$n;" /tmp/fio-$label.txt | cut -d';' -f5 | sort -u | tr '\n' ' ')
		[ "$err" = "0 " ] ||
			{ fail "fio $n: error fields '$err'"; cat /tmp/fio-$label.txt; return; }
	done
	step "fio ${names[*]}: ok"
}

# Random writes then verify, at several block sizes and depths, as two
# jobs each so that both queues carry I/O; 1 MiB sequential writes; then
# a flush storm: small writes, each followed by fsync (a FLUSH request),
# at 256 MiB, clear of the data verified again after the rebind.
fio_verify first \
	--name=rand4k --rw=randwrite --bs=4k --iodepth=16 --numjobs=2 --offset_increment=$size \
	--name=rand64k --rw=randwrite --bs=64k --iodepth=4 --numjobs=2 --offset_increment=$size \
	--name=mixed --rw=randrw --rwmixread=30 --bsrange=512-128k --iodepth=8 --numjobs=2 \
	--offset_increment=$size \
	--name=seq1m --rw=write --bs=1m --iodepth=2 \
	--name=fsync --direct=0 --ioengine=sync --rw=randwrite --offset=256m --bs=4k --size=2m \
	--fsync=1 --verify=0 --do_verify=0

# Rebind the driver: the device is reset and set up again.
pci=$(basename "$(readlink -f /sys/block/$vda/device/..)" 2>/dev/null)
virtio=$(basename "$(readlink -f /sys/block/$vda/device)")
if [ -n "$virtio" ] && [ -e /sys/bus/virtio/drivers/virtio_blk/unbind ]; then
	echo "$virtio" >/sys/bus/virtio/drivers/virtio_blk/unbind || fail "unbind"
	[ -b $dev ] && fail "$dev still present after unbind"
	echo "$virtio" >/sys/bus/virtio/drivers/virtio_blk/bind || fail "bind"
	# The disk comes back under the first free name: find it again.
	for _ in $(seq 20); do
		dev=$(disk_by_serial vhost-blk-e2e) && [ -b "$dev" ] && break
		sleep 0.5
	done
	[ -b "$dev" ] || fail "no disk with serial vhost-blk-e2e after rebind"
	vda=${dev#/dev/}
	step "driver unbound and rebound ($virtio on $pci), now $dev"
else
	fail "cannot find the virtio device of $dev"
fi

# Verify what the first round wrote, after the rebind (the seq1m job was
# the last to write the first 64 MiB; verify_only replays it and checks
# every block's header and crc32c), then write and verify anew.
fio_verify second \
	--name=seq1m --rw=write --bs=1m --iodepth=2 --verify_only \
	--name=after-rebind --rw=randwrite --bs=16k --iodepth=16 --numjobs=2 --offset_increment=$size

# limits SERIAL: the disk's queue limits are what the module honours for
# its backing device, as L1 asked it (vhost_blk_e2e.SERIAL: logical and
# physical block, minimum and optimal I/O, discard maximum and
# granularity, write-zeroes maximum, the largest transfer), and a
# write-zeroes and a discard of the whole disk are served: larger ranges
# than the module takes are IOERR here, in the kernel log.
limits() {
	local d q want got lbs pbs min opt dmax dgran wz xfer segs served
	d=$(disk_by_serial $1) || { fail "no disk with serial $1"; return; }
	describe $d
	q=/sys/block/${d#/dev/}/queue
	want=$(arg $1)
	IFS=, read -r lbs pbs min opt dmax dgran wz xfer <<<"$want"
	# The guest's discard granularity means nothing without discard.
	[ "$dmax" = 0 ] && dgran=$(cat $q/discard_granularity)
	want="$lbs,$pbs,$min,$opt,$dmax,$dgran,$wz"
	got="$(cat $q/logical_block_size),$(cat $q/physical_block_size),$(cat $q/minimum_io_size)"
	got="$got,$(cat $q/optimal_io_size),$(cat $q/discard_max_bytes),$(cat $q/discard_granularity)"
	got="$got,$(cat $q/write_zeroes_max_bytes)"
	[ "$got" = "$want" ] || { fail "$1: queue limits $got, the module honours $want"; return; }
	segs=$(($(cat $q/max_segments) * $(cat $q/max_segment_size)))
	[ $segs -le $xfer ] ||
		{ fail "$1: requests of up to $segs bytes, the module takes $xfer"; return; }
	dd if=/dev/urandom of=$d bs=$lbs count=1 oflag=direct status=none
	blkdiscard -z $d || { fail "$1: blkdiscard -z $d"; return; }
	[ -z "$(dd if=$d bs=$lbs count=1 iflag=direct status=none | tr -d '\000' | head -c 1)" ] ||
		{ fail "$1: the first block is not zero after blkdiscard -z"; return; }
	served=write-zeroes
	if [ "$dmax" != 0 ]; then
		blkdiscard $d || { fail "$1: blkdiscard $d"; return; }
		served="$served and discard"
	fi
	step "$1: limits as the module honours them ($got; requests up to $segs bytes); whole-disk $served served"
}
limits vhost-blk-sd
limits vhost-blk-part

# resized SERIAL: L1 grows the disk from 64 to 96 MiB once this asks (it
# watches for the line below) and tells QEMU (device-sync-config): the
# guest must see the new size within 120 s, and the grown area must take a
# write and read it back.
resized() {
	local d b size0 size
	d=$(disk_by_serial $1) || { fail "no disk with serial $1"; return; }
	b=/sys/block/${d#/dev/}
	size0=$(cat $b/size)
	step "waiting for a resize of $1 ($d, $size0 sectors)"
	for _ in $(seq 120); do
		size=$(cat $b/size)
		[ "$size" != "$size0" ] && break
		sleep 1
	done
	[ "$size" = 196608 ] ||
		{ fail "$1: $size sectors 120 s after asking for the resize, expected 196608"; return; }
	dd if=/dev/urandom of=/tmp/rs.bin bs=4k count=1 status=none
	dd if=/tmp/rs.bin of=$d bs=4k seek=20480 count=1 oflag=direct status=none ||
		{ fail "$1: a write at 80 MiB"; return; }
	dd if=$d of=/tmp/rs.back bs=4k skip=20480 count=1 iflag=direct status=none
	cmp -s /tmp/rs.bin /tmp/rs.back || { fail "$1: the write at 80 MiB did not read back"; return; }
	step "$1: grew from $size0 to $size sectors under the guest; a write at 80 MiB read back"
}
resized vhost-blk-rs

kill $monitor_pid 2>/dev/null
step "done"
echo "VHOST_BLK_E2E_RC=$rc"
