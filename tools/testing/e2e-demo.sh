#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The end-to-end comparison, run in the L2 guest booted by e2e-l1.sh (from
# its initramfs, so bash, busybox and a static fio only).
#
#   e2e-demo.sh SECS REPS quick|full
#
# The guest has one disk per peer, each on its own identical null_blk in
# L1, told apart by serial (qemu-storage-daemon names its own):
#
#   vhost-blk-pci         serial vhost-blk        vhost_blk.ko in L1
#   virtio-blk-pci        serial virtio-aio       QEMU, iothread, aio=native
#   virtio-blk-pci        serial virtio-uring     QEMU, iothread, aio=io_uring
#   vhost-user-blk-pci    serial vhost_user_blk   qemu-storage-daemon in L1
#
# Every job runs on every disk, REPS times, each repetition in a rotated
# order so that drift of the machine hits all peers alike; one fio process
# runs a job on all four disks in turn (fio starts slowly under double
# emulation). Says when each job starts and prints each disk's result as
# the job ends, plus a line "demo-csv: rep,job,disk,iops,p50_us,p99_us"
# per result, from which e2e-report.py makes the table in L1. Exits
# non-zero if a job failed on a disk.

set -u
[ $# = 3 ] || { echo "usage: $0 SECS REPS quick|full" >&2; exit 2; }
secs=$1 reps=$2 which=$3

quick=(
	"randread-4k-qd1 --rw=randread --bs=4k --iodepth=1"
	"randread-4k-qd16x2 --rw=randread --bs=4k --iodepth=16 --numjobs=2"
	"randwrite-4k-qd16x2 --rw=randwrite --bs=4k --iodepth=16 --numjobs=2"
)
full=(
	"${quick[@]}"
	"randwrite-4k-qd1 --rw=randwrite --bs=4k --iodepth=1"
	"randrw70-4k-qd16x2 --rw=randrw --rwmixread=70 --bs=4k --iodepth=16 --numjobs=2"
	"read-64k-qd16 --rw=read --bs=64k --iodepth=16"
	"write-64k-qd16 --rw=write --bs=64k --iodepth=16"
)
case $which in
quick) jobs=("${quick[@]}") ;;
full) jobs=("${full[@]}") ;;
*) echo "demo: FAIL: jobs '$which' is neither quick nor full"; exit 2 ;;
esac

say() {
	echo "demo: [$(cut -d' ' -f1 /proc/uptime) s] $*"
}

# Each peer's label, by its disk's serial.
declare -A label_of=(
	[vhost-blk]=vhost-blk-pci
	[virtio-aio]=virtio-blk-pci-native
	[virtio-uring]=virtio-blk-pci-io_uring
	[vhost_user_blk]=vhost-user-blk-pci
)
declare -A dev_of=()
for d in /sys/block/vd*; do
	serial=$(cat "$d/serial" 2>/dev/null)
	[ -n "${label_of[$serial]:-}" ] && dev_of[${label_of[$serial]}]=/dev/${d##*/}
done
order=()
for label in $(printf '%s\n' "${label_of[@]}" | sort); do
	[ -n "${dev_of[$label]:-}" ] || { echo "demo: FAIL: no disk for $label"; exit 1; }
	order+=("$label")
	say "$label: ${dev_of[$label]}"
done

# fio_results FILE: "job error iops p50_us p99_us" per job of fio's terse
# (version 3) output. A job's read section is fields 6 to 46 and its write
# section 47 to 87 (KiB moved 6/47, IOPS 8/49, completion latency
# percentiles 18-37/59-78 as "P%=usec"); the direction that moved most
# data speaks for the job.
fio_results() {
	awk -F';' '$1 == 3 {
		off = ($47 > $6) ? 41 : 0
		p50 = p99 = "-"
		for (i = 18 + off; i <= 37 + off; i++) {
			split($i, kv, "=")
			if (kv[1] == "50.000000%") p50 = kv[2]
			if (kv[1] == "99.000000%") p99 = kv[2]
		}
		moved = $6 + $47
		printf "%s %s %.0f %s %s %s\n", $3, $5, $8 + $49, p50, p99, moved
	}' "$1"
}

failed=0
for ((rep = 0; rep < reps; rep++)); do
	for spec in "${jobs[@]}"; do
		read -r name opts <<<"$spec"
		k=$((rep % ${#order[@]}))
		rotated=("${order[@]:k}" "${order[@]:0:k}")
		args=()
		for label in "${rotated[@]}"; do
			args+=("--name=$label" "--filename=${dev_of[$label]}" --stonewall)
		done
		say "$name (repetition $((rep + 1)) of $reps): ${#rotated[@]} disks, $secs s each"
		# shellcheck disable=SC2086 # opts is a list of options
		if ! fio --direct=1 --ioengine=libaio --thread --time_based --runtime="$secs" \
			--ramp_time=1 --size=64m --offset_increment=64m --group_reporting \
			--output-format=terse --terse-version=3 $opts "${args[@]}" >/tmp/fio.txt 2>&1; then
			echo "demo: FAIL: $name: fio exited non-zero:"
			cat /tmp/fio.txt
			failed=$((failed + ${#rotated[@]}))
			continue
		fi
		for label in "${rotated[@]}"; do
			err= iops= p50= p99= moved=
			read -r _ err iops p50 p99 moved <<<"$(fio_results /tmp/fio.txt | grep "^$label ")"
			if [ -z "${err:-}" ] || [ "$err" != 0 ] || [ "${moved:-0}" = 0 ] || [ "$p50" = - ]; then
				echo "demo: FAIL: $name on $label (${dev_of[$label]}): error '${err:-no result}', ${moved:-0} KiB moved"
				failed=$((failed + 1))
				continue
			fi
			say "$name $label: $iops IOPS, p50 $p50 us, p99 $p99 us"
			echo "demo-csv: $rep,$name,$label,$iops,$p50,$p99"
		done
	done
done
[ "$failed" = 0 ] || { echo "demo: FAIL: $failed results missing"; exit 1; }
