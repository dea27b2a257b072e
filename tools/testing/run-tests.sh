#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every NetKernel test suite, each printing TAP or KTAP, keep each
# suite's output under build/test-logs/, and close with one line that counts
# the top-level test points: "N passed, N failed".  A suite that exits
# non-zero without reporting a failed test point counts as one failure.
#
# Usage: tools/testing/run-tests.sh [SUITE...]   (default: all suites, in order)
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
logs=$top/build/test-logs
mkdir -p "$logs"

declare -A suite_cmd=(
	[build]="$top/selftests/build/run.sh"
	[kernel-build]="$top/tools/testing/check-kernel.sh"
	[hostengine]="make -s -C $top/hostengine/tests check"
	[kunit]="$top/selftests/kunit/run.sh"
	[qemu-smoke]="$top/tools/testing/lab/qemu-smoke.sh"
	[kselftest]="$top/selftests/netkernel/run-vm.sh"
	[resilience]="$top/selftests/netkernel/resilience.sh"
	[local-switch]="$top/selftests/netkernel/local-switch.sh"
	[tenancy]="$top/selftests/netkernel/tenancy.sh"
	[scale]="$top/selftests/netkernel/scale.sh --conns 2000 --cycles 3000"
	[bench-smoke]="$top/tools/testing/bench/bench.sh --smoke"
	[fuzz]="$top/selftests/fuzz/run.sh -t 15"
	[deploy]="$top/selftests/deploy/run.sh"
)
order=(build kernel-build kunit fuzz hostengine qemu-smoke kselftest local-switch tenancy resilience scale deploy bench-smoke)
[ $# -gt 0 ] && order=("$@")

passed=0
failed=0
for s in "${order[@]}"; do
	cmd=${suite_cmd[$s]:-}
	if [ -z "$cmd" ]; then
		echo "run-tests: unknown suite '$s'" >&2
		exit 2
	fi
	echo "# suite $s: $cmd"
	start=$SECONDS
	$cmd 2>&1 | tee "$logs/$s.log"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^ok ' "$logs/$s.log")
	f=$(grep -c '^not ok ' "$logs/$s.log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - suite $s exited $rc without a failed test point"
		f=1
	fi
	echo "# suite $s: $p passed, $f failed, $((SECONDS - start)) s"
	passed=$((passed + p))
	failed=$((failed + f))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
