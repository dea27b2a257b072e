#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run each libFuzzer harness of selftests/fuzz for SECONDS, starting from
# its seed corpus in the tree, and print KTAP: one test point per harness,
# ok when it ran that long without a finding, with its executions and
# corpus size as diagnostics.  The working corpus and any crash input stay
# in build/fuzz/ (corpus/NAME, artifacts/NAME-*); the tree is not written.
#
# usage: selftests/fuzz/run.sh [-t SECONDS] [NAME...]   (default 60, all)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
out=$top/build/fuzz

secs=60
if [[ ${1:-} == -t ]]; then
	secs=${2:?-t SECONDS}
	shift 2
fi
names=("$@")
if ((${#names[@]} == 0)); then
	mapfile -t names < <(sed -n 's/^HARNESSES := //p' "$here/Makefile" | tr ' ' '\n')
fi

ktap_begin ${#names[@]}
if ! make -s -C "$here" O="$out" >"$out.build.log" 2>&1; then
	ktap_diag "$(cat "$out.build.log")"
	ktap_fail_rest "build failed"
	ktap_end
fi
for n in "${names[@]}"; do
	corpus=$out/corpus/$n
	mkdir -p "$corpus" "$out/artifacts"
	[[ ! -d $here/corpus/$n ]] || cp -n "$here/corpus/$n"/* "$corpus/" 2>/dev/null
	log=$out/$n.log
	"$out/$n" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$out/artifacts/$n-" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	ktap_diag "$n: ${runs:-0} executions in $secs s, corpus $(find "$corpus" -type f | wc -l) inputs (log $log)"
	if ((rc != 0)); then
		ktap_diag "$(grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" | head -n 20)"
	fi
	ktap_ok $rc "$n"
done
ktap_end
