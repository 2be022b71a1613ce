#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Checks that vm-run.sh can fail: that it carries the command's status,
# fails on a kernel report even when the command succeeded, fails a VM that
# dies before the command finishes, boots again when QEMU crashes before
# it starts, and enforces its timeout and its boot
# watchdog. A test bed that cannot fail would make every VM test vacuous.

set -u
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0

expect() {
	local name=$1 want=$2
	shift 2
	local log
	log=$(mktemp)
	"$here/vm-run.sh" --no-module "$@" >"$log" 2>&1
	local got=$?
	if [ "$got" = "$want" ] && { [ -z "${EXPECT_LOG:-}" ] || grep -q -E "$EXPECT_LOG" "$log"; }; then
		echo "ok - runner: $name (exit $got)"
		passed=$((passed + 1))
	else
		echo "FAIL - runner: $name: exit $got, expected $want${EXPECT_LOG:+ and a log line matching $EXPECT_LOG}; log:"
		tail -20 "$log"
		failed=$((failed + 1))
	fi
	rm -f "$log"
}

expect "carries the command's exit status" 3 --timeout 300 -- sh -c 'exit 3'
expect "fails on a WARNING in the kernel log" 1 --timeout 300 -- \
	sh -c 'echo "WARNING: injected by runner-selftest" >/dev/kmsg'
expect "fails on a BUG in the kernel log" 1 --timeout 300 -- \
	sh -c 'echo "BUG: injected by runner-selftest" >/dev/kmsg'
expect "fails when the VM dies before the command ends" 125 --timeout 300 -- \
	sh -c 'echo b >/proc/sysrq-trigger 2>/dev/null; reboot -f; sleep 60'
expect "enforces the timeout" 124 --timeout 40 -- sleep 600
# A boot watchdog of 1 s fires before any boot gets to the command: the
# runner must stop each VM, boot it again twice, and then fail.
VM_BOOT_TIMEOUT=1 expect "stops VMs that have not started the command in time" 125 \
	--timeout 300 -- true
# QEMU crashing before the command starts (SIGSEGV 2 s after it started):
# booted again twice, then failed.
VM_RUN_CRASH_QEMU=2 EXPECT_LOG='before the command started, 3 times' \
	expect "boots again when QEMU crashes before the command" 125 --timeout 300 -- true

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
