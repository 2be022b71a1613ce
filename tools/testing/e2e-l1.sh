#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the L1 VM (started by vm-run.sh with vhost_blk.ko loaded):
#   e2e-l1.sh QEMU KERNEL_DIR [auto|kvm|tcg] [check|demo] [VAR=VALUE...]
# (VAR=VALUE: settings below, given as arguments since the VM does not
# inherit the caller's environment.)
#
# check (make check-e2e): QEMU's error paths first (a backing file that is
#   not a block device, a bad num-queues, the migration blocker), then an
#   L2 guest with two vhost-blk-pci disks on null_blk: /dev/vda read-write
#   with 2 queues, where e2e-guest.sh verifies data with fio, and a
#   read-only disk passed as pre-opened fds (fd=, vhostfd=) whose content
#   L2 checks against what L1 wrote; and two disks with small limits of
#   their own, on scsi_debug (a whole disk, and a partition of another),
#   whose limits in L2 must be what the module honours (vhost-blk-config)
#   and whose whole-disk write-zeroes and discards L2 runs; and a disk L1
#   grows under L2 (a loop device, losetup -c, device-sync-config over
#   QMP). Last, with the module unloaded, QEMU must say so.
# demo (make run, make bench-e2e): an L2 guest runs e2e-demo.sh, the same
#   fio jobs on four disks, each on its own identical null_blk:
#   vhost-blk-pci, QEMU's virtio-blk-pci (an iothread per queue,
#   aio=native and aio=io_uring) and vhost-user-blk-pci over QEMU's
#   qemu-storage-daemon (qemu.sh's peers/unzeroed build); then
#   e2e-report.py prints the results side by side. E2E_REPS, E2E_JOBS
#   (quick|full), E2E_DEMO_SECS tune it; E2E_OUT=DIR keeps e2e.csv and
#   e2e-table.txt.
#
# Both modes need E2E_FIO=path, the static fio of tools/testing/fio.sh,
# for L2's initramfs. L2's boot stages and the guest scripts' steps are
# printed as they happen. L2 runs on TCG (tcg, make's default), nested KVM
# (kvm), or KVM when L1 has it (auto). Exits with the status.

set -u
qemu=$1
kdir=$2
want=${3:-auto}
mode=${4:-check}
shift $(($# < 4 ? $# : 4))
for a in "$@"; do
	case $a in
	E2E_*=*) export "${a?}" ;;
	*) echo "e2e-l1: unknown setting '$a'"; exit 2 ;;
	esac
done
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
# L2's console and QEMU's output go where the host can read them.
logs=${VHOST_BLK_VM_OUT:-$tmp}
rc=0
nullbs=()
daemons=()
scsi_debug=
loops=()

say() { echo "e2e-l1: $*"; }
fail() {
	echo "e2e-l1: FAIL: $*"
	rc=1
}

cleanup() {
	local p n
	for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for n in "${nullbs[@]}"; do
		echo 0 >"/sys/kernel/config/nullb/$n/power" 2>/dev/null
		rmdir "/sys/kernel/config/nullb/$n" 2>/dev/null
	done
	[ -n "$scsi_debug" ] && rmmod scsi_debug 2>/dev/null
	for n in "${loops[@]}"; do losetup -d "$n" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# make_nullb NAME: a 512 MiB memory-backed null_blk with 2 submission
# queues and a volatile write cache, /dev/NAME.
make_nullb() {
	local nb=/sys/kernel/config/nullb/$1
	mkdir "$nb" && echo 512 >"$nb/size" && echo 1 >"$nb/memory_backed" &&
		echo 512 >"$nb/blocksize" && echo 2 >"$nb/submit_queues" &&
		echo 64 >"$nb/cache_size" && echo 1 >"$nb/power" ||
		{ say "null_blk $1 setup failed"; exit 1; }
	nullbs+=("$1")
	udevadm settle 2>/dev/null
	[ -b "/dev/$1" ] || { say "/dev/$1 did not appear"; exit 1; }
}

# make_scsi_debug: two scsi_debug disks, each with a store of its own, of
# 4 KiB blocks (8 KiB physical, 64 KiB optimal I/O) whose discard (256
# KiB) and write-zeroes (128 KiB) limits are far below the module's own;
# sets sd_disks to their names.
make_scsi_debug() {
	local d
	insmod "$kdir/drivers/scsi/scsi_debug.ko" add_host=2 per_host_store=1 \
		dev_size_mb=32 sector_size=4096 physblk_exp=1 opt_blks=16 lbpu=1 \
		lbpws=1 unmap_max_blocks=64 unmap_granularity=2 write_same_length=32 ||
		{ say "scsi_debug did not load"; exit 1; }
	scsi_debug=1
	udevadm settle 2>/dev/null
	sd_disks=()
	for d in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*/block/*; do
		[ -e "$d" ] && sd_disks+=("${d##*/}")
	done
	[ ${#sd_disks[@]} = 2 ] || { say "scsi_debug disks: ${sd_disks[*]}"; exit 1; }
}

# le32 N: N as 4 little-endian bytes, for printf.
le32() {
	printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) \
		$(($1 >> 16 & 255)) $(($1 >> 24 & 255))
}

# mbr_partition DISK: an MBR with one Linux partition from 1 MiB to the
# end of /dev/DISK (its entries count logical blocks); prints the
# partition's name.
mbr_partition() {
	local dev=/dev/$1 lbs blocks start
	lbs=$(blockdev --getss "$dev")
	blocks=$(($(blockdev --getsize64 "$dev") / lbs))
	start=$((1048576 / lbs))
	{
		head -c 450 /dev/zero
		printf '\x83\x00\x00\x00'"$(le32 $start)$(le32 $((blocks - start)))"
		head -c 48 /dev/zero
		printf '\x55\xaa'
		head -c $((lbs - 512)) /dev/zero
	} | dd of="$dev" bs="$lbs" count=1 iflag=fullblock oflag=direct status=none ||
		{ say "cannot write an MBR on $dev"; exit 1; }
	blockdev --rereadpt "$dev" && udevadm settle 2>/dev/null
	[ -b "${dev}1" ] || { say "${dev}1 did not appear"; exit 1; }
	echo "${1}1"
}

# guest_view DEVICE: the queue limits a guest must see on a vhost-blk disk
# on /dev/DEVICE, from what the module honours (vhost-blk-config):
# "logical,physical,min-io,opt-io,discard-max,discard-granularity,
# write-zeroes-max,max-transfer" in bytes (e2e-guest.sh's limits()).
guest_view() {
	local cfg k v dmax=0 dgran=0
	local -A c
	cfg=$("$here/../../target/release/vhost-blk-config" "/dev/$1") ||
		{ say "vhost-blk-config /dev/$1 failed"; exit 1; }
	while IFS== read -r k v; do c[$k]=$v; done <<<"$cfg"
	if [ "${c[max_discard_seg]}" != 0 ]; then
		dmax=$((c[max_discard_sectors] * 512))
		dgran=$((c[discard_sector_alignment] * 512))
	fi
	echo "${c[logical_block_size]},${c[physical_block_size]},${c[min_io_size]},${c[opt_io_size]},$dmax,$dgran,$((c[max_write_zeroes_sectors] * 512)),${c[max_transfer]}"
}

# resize_on_request LOG FILE DEV SOCK: once L2 says (in LOG) that it waits
# for a resize, grows FILE from 64 to 96 MiB, has the loop device DEV
# follow (losetup -c), and tells QEMU over the QMP socket SOCK
# (device-sync-config of the device with id rs). L2 checks the outcome.
resize_on_request() {
	local log=$1 file=$2 dev=$3 sock=$4 out
	for _ in $(seq 3600); do
		if grep -a -q "waiting for a resize of vhost-blk-rs" "$log" 2>/dev/null; then
			truncate -s 96M "$file" && losetup -c "$dev" || { say "resizing $dev failed"; return; }
			out=$(python3 - "$sock" <<-'EOF'
				import json, socket, sys
				s = socket.socket(socket.AF_UNIX)
				s.connect(sys.argv[1])
				f = s.makefile("rw")
				json.loads(f.readline())
				for cmd in ({"execute": "qmp_capabilities"},
				            {"execute": "device-sync-config", "arguments": {"id": "rs"}}):
				    f.write(json.dumps(cmd) + "\n")
				    f.flush()
				    r = {}
				    while "return" not in r and "error" not in r:
				        r = json.loads(f.readline())
				print(json.dumps(r))
			EOF
			)
			say "grew $dev to 96 MiB; device-sync-config: $out"
			return
		fi
		sleep 0.5
	done
}

# Debian's firmware (L1's root is the host's), no default devices, no
# qemu.conf (QEMU run as nobody cannot read the build tree's).
qemu_base=(-display none -nodefaults -no-user-config -L /usr/share/seabios -L /usr/share/qemu)

# expect_qemu_error WHAT PATTERN QEMU-ARGS...: QEMU must exit non-zero
# and print PATTERN.
expect_qemu_error() {
	local what=$1 pattern=$2 out
	shift 2
	out=$(timeout 60 "$qemu" "${qemu_base[@]}" -accel tcg -S "$@" </dev/null 2>&1)
	local status=$?
	if [ $status = 0 ] || ! grep -q -- "$pattern" <<<"$out"; then
		fail "$what: wanted an error matching '$pattern', got status $status: $out"
	else
		say "$what: refused: $(grep -m1 -- "$pattern" <<<"$out")"
	fi
}

# expect_qemu_start WHAT [PREFIX... --] QEMU-ARGS...: QEMU (run through
# PREFIX, e.g. setpriv) must start, paused, and quit when told.
expect_qemu_start() {
	local what=$1 out status prefix=()
	shift
	if [[ " $* " == *" -- "* ]]; then
		while [ "$1" != -- ]; do prefix+=("$1"); shift; done
		shift
	fi
	out=$(printf 'quit\n' | timeout 60 "${prefix[@]}" "$qemu" "${qemu_base[@]}" -accel tcg -S \
		-monitor stdio "$@" 2>&1)
	status=$?
	if [ $status = 0 ] && ! grep -q -i -E 'error|vhost-blk:' <<<"$out"; then
		say "$what: started"
	else
		fail "$what: QEMU did not start (status $status): $out"
	fi
}

# L2 runs the same kernel, console on a file (QEMU on the console stalls
# inside L1, see facts).
# -svm: an L2 that finds SVM brings up its own KVM, which nested under
# TCG kills L1.
accel=(-accel kvm -cpu host,-svm)
size=64m
secs=${E2E_DEMO_SECS:-10}
if [ "$want" != tcg ] && [ -c /dev/kvm ]; then
	say "L2 on KVM (nested)"
else
	say "L2 on TCG ($want; /dev/kvm $([ -c /dev/kvm ] && echo present || echo absent))"
	accel=(-accel tcg -cpu max,-svm)
	# TCG inside TCG is far slower: smaller fio jobs.
	size=4m
	secs=${E2E_DEMO_SECS:-8}
fi

# L2's root: an initramfs in memory (e2e-initramfs.sh) with busybox, bash,
# the static fio of E2E_FIO and the guest scripts.
[ -n "${E2E_FIO:-}" ] || { say "E2E_FIO=path (tools/testing/fio.sh) is needed"; exit 2; }
"$here/e2e-initramfs.sh" "$tmp/l2.cpio" "$E2E_FIO" || { say "cannot build L2's initramfs"; exit 1; }

stats=/sys/kernel/debug/vhost-blk/stats
# follow_l2 LOG START PID: while PID (L2's QEMU) runs, prints L2's boot
# stages and the guest scripts' lines as they come, with the seconds since
# START: under TCG inside TCG a step takes minutes, and silence would look
# like a hang.
follow_l2() {
	local line
	tail -n +1 -F --pid="$3" "$1" 2>/dev/null |
		grep -a --line-buffered -E '^(e2e|demo): |Linux version|Run /init|Kernel panic' |
		while IFS= read -r line; do
			case $line in
			*"Linux version"*) line="kernel started" ;;
			*"Run /init"*) line="kernel booted, running /init" ;;
			esac
			echo "e2e-l1: [L2 $(($(date +%s) - $2)) s] ${line%$'\r'}"
		done
}
# boot_l2 LOG APPEND-EXTRA QEMU-ARGS...: boots L2 on its root and sets l2rc
# to the status e2e-guest.sh printed (125 if none).
boot_l2() {
	local log=$1 extra=$2 start qrc sampler
	shift 2
	# Keep the last statistics that show the device's queues.
	# (Without the descriptors passed to QEMU: they must close with it.)
	(while sleep 5; do
		cat $stats >"$log.s" 2>/dev/null && grep -q '^vq' "$log.s" && cp "$log.s" "$log.stats"
	done) 8<&- 9<&- &
	sampler=$!
	start=$(date +%s)
	: >"$log"
	say "starting L2 (its console: $log)"
	timeout -k 10 "${E2E_TIMEOUT:-1800}" "$qemu" "${accel[@]}" -smp 2 \
		"${qemu_base[@]}" -nic none -no-reboot \
		-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$tmp/l2.cpio" \
		-append "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 no5lvl rdinit=/init vhost_blk_e2e.mode=$mode vhost_blk_e2e.size=$size vhost_blk_e2e.secs=$secs $extra" \
		"$@" -serial "file:$log" </dev/null >"$log.qemu" 2>&1 &
	local qpid=$!
	follow_l2 "$log" "$start" "$qpid" &
	local follower=$!
	wait $qpid
	qrc=$?
	wait $follower 2>/dev/null
	kill $sampler 2>/dev/null
	wait $sampler 2>/dev/null
	cat "$log.qemu"
	grep -a -E "VHOST_BLK_E2E_RC|virtio_blk|WARNING|BUG|Oops|panic" "$log"
	l2rc=$(sed -n 's/.*VHOST_BLK_E2E_RC=\([0-9]*\).*/\1/p' "$log" | tail -1)
	say "L2 ran $(($(date +%s) - start)) s"
	if [ -z "$l2rc" ]; then
		say "L2 ended without a status (QEMU exit $qrc); last lines:"
		tail -30 "$log"
		l2rc=125
	fi
	# The guest's kernel log must be as clean as L1's: a virtio_blk
	# complaint or an I/O error there is a device bug, a hung task or a
	# stall a lost completion.
	local problems='BUG:|WARNING:|Oops|Kernel panic|Call Trace:|virtio_blk.*(error|bad|invalid)|I/O error|blocked for more than|hung_task|soft lockup|rcu: INFO|rcu_.* detected stall'
	if grep -a -q -E "$problems" "$log"; then
		say "FAIL: the L2 kernel log reports problems:"
		grep -a -E "$problems" "$log" | head -20
		[ "$l2rc" = 0 ] && l2rc=1
	fi
	# QEMU fails closed too: its exit status, and anything it said about
	# vhost or an error (a data plane that failed to start leaves a guest
	# that may still print success).
	if [ "$qrc" != 0 ]; then
		say "FAIL: QEMU exited with status $qrc"
		[ "$l2rc" = 0 ] && l2rc=1
	fi
	if grep -a -q -i -E 'vhost|error|fail|warning' "$log.qemu"; then
		say "FAIL: QEMU reported:"
		grep -a -i -E 'vhost|error|fail|warning' "$log.qemu" | head -20
		[ "$l2rc" = 0 ] && l2rc=1
	fi
	say "vhost-blk statistics during the run:"
	cat "$log.stats" 2>/dev/null
}

case $mode in
check)
	make_nullb vbe2e
	make_nullb vbro
	# Disks with limits of their own: a whole scsi_debug disk, and a
	# partition of the other (whose limits are its disk's).
	make_scsi_debug
	sd=${sd_disks[0]}
	part=$(mbr_partition "${sd_disks[1]}")
	sdview=$(guest_view "$sd")
	partview=$(guest_view "$part")
	say "limits a guest must see on /dev/$sd: $sdview; on /dev/$part: $partview"
	# A disk resized under the running guest: a loop device over a 64 MiB
	# file, grown when L2 asks.
	truncate -s 64M "$tmp/rs.img"
	rs=$(losetup --find --show "$tmp/rs.img") || { say "losetup failed"; exit 1; }
	loops+=("$rs")

	# QEMU's own refusals, each before any guest runs.
	truncate -s 64M "$tmp/file.img"
	expect_qemu_error "a regular file as backend" "is not a block device" \
		-device "vhost-blk-pci,path=$tmp/file.img"
	expect_qemu_error "num-queues=17" "num-queues must be 1 to 16" \
		-device vhost-blk-pci,path=/dev/vbe2e,num-queues=17
	expect_qemu_error "a serial of 21 bytes" "serial is longer than 20 bytes" \
		-device vhost-blk-pci,path=/dev/vbe2e,serial=123456789012345678901
	# A writable disk is one VM's: a second QEMU on it is refused while the
	# first holds it.
	mkfifo "$tmp/holder.in"
	timeout 120 "$qemu" "${qemu_base[@]}" -accel tcg -S -monitor stdio \
		-device vhost-blk-pci,path=/dev/vbe2e <"$tmp/holder.in" >"$tmp/holder.log" 2>&1 &
	holder=$!
	exec 7>"$tmp/holder.in"
	for _ in $(seq 100); do grep -q '(qemu)' "$tmp/holder.log" && break; sleep 0.2; done
	if grep -q '(qemu)' "$tmp/holder.log"; then
		expect_qemu_error "a disk another QEMU holds" "Device or resource busy" \
			-device vhost-blk-pci,path=/dev/vbe2e
	else
		fail "the first QEMU on /dev/vbe2e did not start: $(cat "$tmp/holder.log")"
	fi
	echo quit >&7
	exec 7>&-
	wait $holder 2>/dev/null
	# The backing device and /dev/vhost-blk as descriptors, to a QEMU
	# without the rights to open either (as management stacks run it): a
	# descriptor is used as it is, never reopened (read-write here, and
	# readonly=on is the module's to enforce).
	exec 8<>/dev/vbro 9<>/dev/vhost-blk
	expect_qemu_start "an unprivileged QEMU given fd= and vhostfd=" \
		setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		-device vhost-blk-pci,fd=8,vhostfd=9,readonly=on
	exec 8<&- 9<&-
	# Migration: the blocker names the reason.
	out=$(printf 'migrate exec:cat>/dev/null\nquit\n' |
		timeout 60 "$qemu" "${qemu_base[@]}" -accel tcg -S -monitor stdio \
			-device vhost-blk-pci,path=/dev/vbe2e 2>&1)
	if grep -q "vhost-blk does not support migration" <<<"$out"; then
		say "migration blocked: $(grep -m1 -o 'vhost-blk does not support migration[^"]*' <<<"$out")"
	else
		fail "migration was not blocked with the vhost-blk reason: $out"
	fi

	# The read-only disk's content, which L2 must read back.
	dd if=/dev/urandom of="$tmp/ro.bin" bs=1M count=4 status=none
	dd if="$tmp/ro.bin" of=/dev/vbro bs=1M oflag=direct status=none
	rosum=$(sha256sum "$tmp/ro.bin" | cut -c1-64)
	# The read-only disk comes as management stacks pass it: the backing
	# device and /dev/vhost-blk opened by the caller (fds 8 and 9), the
	# device writable, so that only readonly=on keeps L2 from writing.
	exec 8<>/dev/vbro 9<>/dev/vhost-blk
	resize_on_request "$logs/l2.log" "$tmp/rs.img" "$rs" "$tmp/qmp.sock" 8<&- 9<&- &
	resizer=$!
	boot_l2 "$logs/l2.log" "vhost_blk_e2e.rosum=$rosum vhost_blk_e2e.vhost-blk-sd=$sdview vhost_blk_e2e.vhost-blk-part=$partview" -m 1G \
		-device vhost-blk-pci,path=/dev/vbe2e,num-queues=2,serial=vhost-blk-e2e \
		-device vhost-blk-pci,fd=8,vhostfd=9,readonly=on,num-queues=1,serial=vhost-blk-ro \
		-device vhost-blk-pci,path=/dev/$sd,serial=vhost-blk-sd \
		-device vhost-blk-pci,path=/dev/$part,serial=vhost-blk-part \
		-device vhost-blk-pci,id=rs,path=$rs,serial=vhost-blk-rs \
		-qmp "unix:$tmp/qmp.sock,server=on,wait=off"
	kill $resizer 2>/dev/null
	wait $resizer 2>/dev/null
	exec 8<&- 9<&-
	[ "$l2rc" = 0 ] || fail "L2 guest status $l2rc"

	# Every vhost-blk device is gone with QEMU: the module unloads, and
	# QEMU then says what is missing.
	# A device closed with bios still on the disk keeps the module a
	# moment longer (its worker lets it go when they are back).
	for _ in $(seq 50); do rmmod vhost_blk 2>/dev/null && break; sleep 0.2; done
	if ! grep -q '^vhost_blk ' /proc/modules; then
		expect_qemu_error "no vhost_blk.ko" "is vhost_blk.ko loaded" \
			-device vhost-blk-pci,path=/dev/vbe2e
	else
		fail "rmmod vhost_blk after QEMU exited ($(grep '^vhost_blk ' /proc/modules))"
	fi
	;;
demo)
	for n in 0 1 2 3; do make_nullb vbdemo$n; done
	# The daemon runs as the benchmark's vhost-user peer does: QEMU's own,
	# from the same build (without libvhost-user's per-request stack
	# zeroing, see qemu.sh), with the arguments the harness gives it.
	qsd=${QEMU_STORAGE_DAEMON:-$(dirname "$qemu")/peers/unzeroed/qemu-storage-daemon}
	mapfile -t qsd_args < <("$here/../../target/release/vhost-blk-bench" \
		--qsd-args /dev/vbdemo3 "$tmp/vu.sock" 2)
	[ "${#qsd_args[@]}" -gt 0 ] || { say "vhost-blk-bench --qsd-args failed"; exit 1; }
	"$qsd" "${qsd_args[@]}" </dev/null >"$tmp/qsd.log" 2>&1 &
	daemons+=($!)
	for _ in $(seq 60); do [ -S "$tmp/vu.sock" ] && break; sleep 0.5; done
	[ -S "$tmp/vu.sock" ] || { cat "$tmp/qsd.log"; say "qemu-storage-daemon did not start"; exit 1; }
	# One disk per peer, each on its own null_blk, 2 queues each; the
	# vhost-user one needs the guest's memory shared with the daemon.
	# QEMU's own virtio-blk at its best: each queue served by an iothread
	# of its own (iothread-vq-mapping, QEMU 9.0 on).
	vq_map() { # DRIVE FILE AIO SERIAL: a virtio-blk-pci on 2 iothreads
		echo "-blockdev driver=host_device,node-name=$1,filename=$2,cache.direct=on,aio=$3"
		echo "-object iothread,id=$1a -object iothread,id=$1b"
		echo "-device {\"driver\":\"virtio-blk-pci\",\"drive\":\"$1\",\"num-queues\":2,\"serial\":\"$4\",\"iothread-vq-mapping\":[{\"iothread\":\"$1a\"},{\"iothread\":\"$1b\"}]}"
	}
	# shellcheck disable=SC2046 # each word of vq_map is one argument
	boot_l2 "$logs/l2.log" "vhost_blk_e2e.reps=${E2E_REPS:-1} vhost_blk_e2e.jobs=${E2E_JOBS:-quick}" \
		-m 1G -object memory-backend-memfd,id=mem,size=1G,share=on -machine memory-backend=mem \
		-device vhost-blk-pci,path=/dev/vbdemo0,num-queues=2,serial=vhost-blk \
		$(vq_map d1 /dev/vbdemo1 native virtio-aio) \
		$(vq_map d2 /dev/vbdemo2 io_uring virtio-uring) \
		-chardev "socket,id=vu,path=$tmp/vu.sock" \
		-device vhost-user-blk-pci,chardev=vu,num-queues=2
	rc=$l2rc
	"$here/e2e-report.py" <"$logs/l2.log" >"$tmp/table.txt" || rc=1
	cat "$tmp/table.txt"
	if [ -n "${E2E_OUT:-}" ]; then
		mkdir -p "$E2E_OUT"
		{
			echo "rep,job,disk,iops,p50_us,p99_us"
			sed -n 's/^demo-csv: //p' "$logs/l2.log"
		} >"$E2E_OUT/e2e.csv"
		cp "$tmp/table.txt" "$E2E_OUT/e2e-table.txt"
		say "results in $E2E_OUT/e2e.csv and e2e-table.txt"
	fi
	;;
*)
	say "unknown mode '$mode' (check or demo)"
	exit 2
	;;
esac
say "status $rc"
exit "$rc"
