#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (started by vm-run.sh):
#   guest-run.sh OUTDIR MODULE|none COMMAND [ARGS...]
# Loads MODULE, runs COMMAND, scans kmemleak where the kernel has it, saves
# the kernel log to OUTDIR/dmesg.txt and prints VHOST_BLK_VM_RC=<status>.

out=$1
module=$2
shift 2

echo "VHOST_BLK_VM_STARTED $(uname -r)"
# Where the command may keep logs the host can read (vm-run's --out).
export VHOST_BLK_VM_OUT=$out
mount -t debugfs none /sys/kernel/debug 2>/dev/null
mount -t configfs none /sys/kernel/config 2>/dev/null
rc=0
if [ "$module" != none ]; then
	if ! insmod "$module"; then
		echo "guest-run: insmod $module failed"
		rc=126
	fi
fi
if [ $rc = 0 ]; then
	"$@"
	rc=$?
fi
if [ -w /sys/kernel/debug/kmemleak ]; then
	# Two scans: kmemleak reports an object only once it has been seen
	# unreferenced by consecutive scans.
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt"
	if [ -s "$out/kmemleak.txt" ]; then
		echo "guest-run: kmemleak reports leaks:"
		head -40 "$out/kmemleak.txt"
		[ $rc = 0 ] && rc=1
	fi
fi
dmesg >"$out/dmesg.txt"
sync
echo "VHOST_BLK_VM_RC=$rc"
