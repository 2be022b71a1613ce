#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (tools/testing/mutants.sh boots it):
#   mutants-guest.sh LIST SELFTEST KDIR
# LIST has one mutant per line, "NAME MODULE CASE". For each, loads
# MODULE, runs only CASE of SELFTEST with it, unloads it, and prints
#   mutant-result NAME caught|survived|timeout|no-load
# Kernel log lines "vhost-blk-mutant: start NAME" delimit each mutant's
# part of the log, so that the host can tell whose a kernel report is. A
# module that will not unload (its case may have left a worker waiting
# for good) stops the batch: the mutants after it are not run.

list=$1
selftest=$2
kdir=$3
# A case that neither passes nor fails in this long has hung: the mutant
# made it wait forever, which is a catch of a kind the host tells apart.
case_timeout=${MUTANT_CASE_TIMEOUT:-240}

while read -r name module case; do
	echo "vhost-blk-mutant: start $name" >/dev/kmsg
	echo "mutants-guest: $name: running $case"
	if ! insmod "$module"; then
		echo "mutant-result $name no-load"
		continue
	fi
	out=$(timeout -k 10 "$case_timeout" "$selftest" --module "$module" --kdir "$kdir" \
		--filter "$case" 2>&1)
	status=$?
	printf '%s\n' "$out" | sed "s/^/  [$name] /"
	if printf '%s\n' "$out" | grep -q -x -e "FAIL - $case" -e "FAIL - $case: .*"; then
		result=caught
	elif [ $status = 124 ] || [ $status = 137 ]; then
		result=timeout
	else
		result=survived
	fi
	unloaded=0
	for _ in $(seq 20); do
		if ! grep -q '^vhost_blk ' /proc/modules || rmmod vhost_blk 2>/dev/null; then
			unloaded=1
			break
		fi
		sleep 0.5
	done
	echo "mutant-result $name $result"
	if [ $unloaded = 0 ]; then
		echo "mutants-guest: $name: vhost_blk does not unload; the mutants after it are not run"
		exit 1
	fi
done <"$list"
echo "vhost-blk-mutant: end" >/dev/kmsg
