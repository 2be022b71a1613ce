#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the vhost-blk test kernel under QEMU TCG with virtme-ng (2 vCPUs,
# the host root filesystem read-only over 9p), load the freshly built
# vhost_blk.ko, run one command, and exit with that command's status.
#
# Usage: tools/testing/vm-run.sh [options] -- COMMAND [ARGS...]
#   --timeout SECONDS   kill the VM after this long (default 900)
#   --no-module         do not load vhost_blk.ko before COMMAND
#   --out DIR           keep the console log and guest dmesg here
#                       (default: a fresh directory under build/vm/)
#   --memory SIZE       the VM's memory (default 2G)
#   --append ARGS       more kernel command line arguments
#   KFLAVOUR=release|debug selects the kernel (tools/testing/kernel.sh).
#
# The run fails (exit 1) if the guest's kernel log shows a BUG, WARNING,
# Oops, KASAN, lockdep, kmemleak, hung-task or soft-lockup report, even
# when COMMAND succeeded. A VM that dies of the known multi-threaded TCG
# text-patching race ("Oops: int3" before COMMAND finished) is booted
# again, at most twice, and the retry is reported; any other crash fails.
# A VM that has not started COMMAND VM_BOOT_TIMEOUT seconds (default 180)
# after it was started, a TCG boot hang (a vCPU's lost timer interrupt,
# reported as RCU stalls), is stopped and booted again the same way.
# Exit codes: COMMAND's status; 1 for a kernel report; 124 for a timeout;
# 125 for a VM that never ran COMMAND.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/vng-venv.sh"
. "$here/kernel-report.sh"
timeout=900
boot_timeout=${VM_BOOT_TIMEOUT:-180}
load_module=1
out=
memory=2G
extra_append=

while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout=$2; shift 2 ;;
	--no-module) load_module=0; shift ;;
	--out) out=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--append) extra_append=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "vm-run: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || { echo "vm-run: no command given" >&2; exit 2; }

flavour=${KFLAVOUR:-release}
kdir=$("$here/kernel.sh" --print-dir)
bzimage=$kdir/arch/x86/boot/bzImage
[ -f "$kdir/.vhost-blk-built" ] && [ -f "$bzimage" ] ||
	{ echo "vm-run: no built $flavour kernel at $kdir; run 'make kernel'" >&2; exit 2; }
module=$top/build/$flavour/vhost_blk.ko
if [ $load_module = 1 ] && [ ! -f "$module" ]; then
	echo "vm-run: $module missing; run 'make module'" >&2
	exit 2
fi
[ $load_module = 1 ] || module=

if [ -z "$out" ]; then
	mkdir -p "$top/build/vm"
	out=$(mktemp -d "$top/build/vm/run.XXXXXX")
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

# no5lvl: TCG's "-cpu max" offers LA57, and the clang-built KASAN kernel
# reports a wild access in early interrupt handling with 5-level paging.
# tsc=reliable: TCG's TSC follows the host's clock, but a vCPU starved of
# host CPU makes the clocksource watchdog mark it unstable minutes into a
# run, and the guest then reads the time from the emulated HPET, a slow
# device access for every clock read: runs (and both halves of an A/B
# comparison) would time themselves differently before and after.
append="printk.time=1 panic=-1 null_blk.nr_devices=0 loglevel=7 no5lvl tsc=reliable"
[ "$flavour" = debug ] && append="$append panic_on_warn=1 kmemleak=on"
[ -n "$extra_append" ] && append="$append $extra_append"

# The command runs through guest-run.sh, which prints a status marker.
cmd=("$here/guest-run.sh" "$out" "${module:-none}" "$@")
printf -v cmdline '%q ' "${cmd[@]}"

kernel_report() {
	# Kernel log lines that report a bug.
	grep -a -E "$KERNEL_LINE" "$@" 2>/dev/null | grep -a -E "$KERNEL_REPORT" || true
}

# Stops a VM that has not started the command $boot_timeout seconds
# after QEMU started (the command marks the log with
# VHOST_BLK_VM_STARTED): under TCG a vCPU's timer interrupt is
# occasionally lost in early boot, and the guest then waits forever with
# RCU stall reports. Leaves $out/boot-hung behind if it stopped one.
# Killed by the caller once the VM has ended.
watch_boot() {
	local waited=0
	until [ -s "$out/qemu.pid" ]; do
		sleep 0.2
	done
	while [ $waited -lt "$boot_timeout" ]; do
		sleep 1
		waited=$((waited + 1))
		grep -a -q 'VHOST_BLK_VM_STARTED' "$log" 2>/dev/null && return 0
	done
	: >"$out/boot-hung"
	kill "$(cat "$out/qemu.pid")" 2>/dev/null || true
}

# For runner-selftest.sh only: QEMU killed with SIGSEGV $VM_RUN_CRASH_QEMU
# seconds after it started, as if it had crashed.
crash_qemu() {
	until [ -s "$out/qemu.pid" ]; do
		sleep 0.2
	done
	sleep "$VM_RUN_CRASH_QEMU"
	kill -SEGV "$(cat "$out/qemu.pid")" 2>/dev/null || true
}

attempt=0
while :; do
	attempt=$((attempt + 1))
	log=$out/console.log
	rm -f "$log" "$out/dmesg.txt" "$out/kmemleak.txt" "$out/qemu.pid" "$out/boot-hung"
	echo "vm-run: booting $flavour kernel (attempt $attempt, timeout ${timeout}s, logs in $out)" >&2
	set +e
	watch_boot &
	watcher=$!
	crasher=
	if [ -n "${VM_RUN_CRASH_QEMU:-}" ]; then
		crash_qemu &
		crasher=$!
	fi
	timeout -k 20 "$timeout" "$VNG" --disable-kvm --cpus 2 --memory "$memory" --verbose \
		-r "$bzimage" --rwdir "$out" --append "$append" \
		--qemu-opts="-pidfile $out/qemu.pid" \
		--exec "$cmdline" </dev/null 2>&1 | tee "$log"
	vm_status=${PIPESTATUS[0]}
	kill "$watcher" $crasher 2>/dev/null
	wait "$watcher" $crasher 2>/dev/null
	set -e

	rc=$(grep -a -o -E '^VHOST_BLK_VM_RC=[0-9]+' "$log" | tail -1 | cut -d= -f2 || true)
	report=$(kernel_report "$log" "$out/dmesg.txt" "$out/kmemleak.txt")
	if [ -z "$rc" ] && [ $attempt -lt 3 ] && grep -a -q -E 'Oops: int3' "$log" &&
		! grep -a -q 'VHOST_BLK_VM_STARTED' "$log"; then
		echo "vm-run: the VM died of 'Oops: int3' before the command started" \
			"(the known MTTCG text-patching race); booting again" >&2
		continue
	fi
	# QEMU 7.2's TCG has segfaulted in early boot (once, in a debug
	# kernel's PCI scan): a host fault, before the guest ran anything of
	# ours. A guest kernel report, or a death after the command started,
	# is never retried.
	if [ -z "$rc" ] && [ -z "$report" ] && [ ! -e "$out/boot-hung" ] &&
		[ "$vm_status" != 0 ] && [ "$vm_status" != 124 ] && [ "$vm_status" != 137 ] &&
		! grep -a -q 'VHOST_BLK_VM_STARTED' "$log"; then
		if [ $attempt -lt 3 ]; then
			echo "vm-run: QEMU ended (status $vm_status) before the command started" \
				"(a host-side crash); booting again" >&2
			continue
		fi
		echo "vm-run: FAIL: QEMU ended (status $vm_status) before the command started, 3 times" >&2
		exit 125
	fi
	if [ -e "$out/boot-hung" ]; then
		if [ $attempt -lt 3 ]; then
			echo "vm-run: the VM had not started the command ${boot_timeout}s after booting" \
				"(a TCG boot hang); booting again" >&2
			continue
		fi
		echo "vm-run: FAIL: the VM had not started the command ${boot_timeout}s after booting, 3 times" >&2
		[ -n "$report" ] && printf 'vm-run: kernel log reports:\n%s\n' "$report" >&2
		exit 125
	fi
	break
done

if [ "$vm_status" = 124 ] || [ "$vm_status" = 137 ]; then
	echo "vm-run: FAIL: timed out after ${timeout}s" >&2
	[ -n "$report" ] && printf 'vm-run: kernel log reports:\n%s\n' "$report" >&2
	exit 124
fi
if [ -n "$report" ]; then
	printf 'vm-run: FAIL: the guest kernel log reports problems:\n%s\n' "$report" >&2
	exit 1
fi
if [ -z "$rc" ]; then
	echo "vm-run: FAIL: the VM ended (status $vm_status) without running the command to completion" >&2
	exit 125
fi
echo "vm-run: command exited $rc; guest kernel log clean" >&2
exit "$rc"
