#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs every mutant of tools/testing/mutants/cases against the case meant
# to catch it (tools/testing/mutant.sh) and reports each; fails if any
# survives or is caught by something else.
#   tools/testing/mutants.sh [NAME-FILTER]

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
filter=${1:-}
caught=0 missed=()
while read -r mutant target case; do
	case $mutant in ''|'#'*) continue ;; esac
	[ -n "$filter" ] && [[ $mutant != *"$filter"* ]] && continue
	if "$here/mutant.sh" "$here/mutants/$mutant" "$target" "$case"; then
		caught=$((caught + 1))
	else
		missed+=("$mutant")
	fi
done <"$here/mutants/cases"
echo "mutants: $caught caught${missed:+, not caught: ${missed[*]}}"
[ ${#missed[@]} = 0 ]
