#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the L1 VM (started by vm-run.sh with vhost_blk.ko loaded):
#   e2e-l1.sh QEMU KERNEL_DIR [auto|kvm|tcg]
# Creates a null_blk backend and boots an L2 guest with the patched QEMU,
# its /dev/vda a vhost-blk-pci disk on that backend (KVM if L1 has it,
# else TCG), and runs e2e-guest.sh there. Exits with the guest's status.

set -u
qemu=$1
kdir=$2
want=${3:-auto}
here=$(cd "$(dirname "$0")" && pwd)
nb=/sys/kernel/config/nullb/vbe2e
mkdir "$nb" && echo 512 >"$nb/size" && echo 1 >"$nb/memory_backed" &&
	echo 512 >"$nb/blocksize" && echo 2 >"$nb/submit_queues" &&
	echo 1 >"$nb/power" || { echo "e2e-l1: null_blk setup failed"; exit 1; }
# L2 runs the same kernel, with L1's root over 9p and e2e-init.sh as init,
# console on a file (QEMU on the console stalls inside L1, see facts).
# -svm: an L2 that finds SVM brings up its own KVM, which nested under
# TCG kills L1.
accel="-accel kvm -cpu host,-svm"
size=64m
if [ "$want" != tcg ] && [ -c /dev/kvm ]; then
	echo "e2e-l1: L2 on KVM (nested)"
else
	echo "e2e-l1: L2 on TCG ($want; /dev/kvm $([ -c /dev/kvm ] && echo present || echo absent))"
	accel="-accel tcg -cpu max,-svm"
	# TCG inside TCG is far slower: smaller fio jobs.
	size=8m
fi
log=$(mktemp)
stats=/sys/kernel/debug/vhost-blk/stats
# Keep the last statistics that show the device's queues.
(while sleep 5; do
	cat $stats >"$log.s" 2>/dev/null && grep -q '^vq' "$log.s" && cp "$log.s" "$log.stats"
done) &
sampler=$!
start=$(date +%s)
timeout -k 10 "${E2E_TIMEOUT:-1200}" "$qemu" $accel -m 1G -smp 2 \
	-display none -nic none -no-reboot \
	-L /usr/share/seabios -L /usr/share/qemu \
	-kernel "$kdir/arch/x86/boot/bzImage" \
	-append "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 rootfstype=9p rootflags=version=9p2000.L,trans=virtio,access=any,msize=512000 ro init=$here/e2e-init.sh vhost_blk_e2e.size=$size" \
	-virtfs local,id=root9p,path=/,mount_tag=/dev/root,security_model=none,readonly=on,multidevs=remap \
	-device vhost-blk-pci,path=/dev/vbe2e,num-queues=2,serial=vhost-blk-e2e \
	-serial "file:$log" </dev/null >"$log.qemu" 2>&1
qrc=$?
cat "$log.qemu"
grep -E "^e2e|VHOST_BLK_E2E_RC|virtio_blk|WARNING|BUG|Oops|panic" "$log"
rc=$(sed -n 's/.*VHOST_BLK_E2E_RC=\([0-9]*\).*/\1/p' "$log" | tail -1)
echo "e2e-l1: L2 ran $(($(date +%s) - start)) s"
if [ -z "$rc" ]; then
	echo "e2e-l1: L2 ended without a status (QEMU exit $qrc); last lines:"
	tail -30 "$log"
	rc=125
fi
kill $sampler 2>/dev/null
echo "e2e-l1: vhost-blk statistics during the run:"
cat "$log.stats" 2>/dev/null
echo 0 >"$nb/power"
rmdir "$nb"
exit "$rc"
