# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# KTAP output for every test script of the tree, sourced by tools/testing/lab/lib.sh
# (so by every lab test) and by the scripts that need no lab
# (selftests/build/run.sh, selftests/netkernel/run-native.sh,
# tools/testing/check-kernel.sh).  Linux keeps the same thing in
# tools/testing/selftests/kselftest/ktap_helpers.sh.
#
# A script declares its test points as a table, as
# tools/testing/selftests/vsock/vmtest.sh does: TEST_NAMES, one function
# test_NAME per entry returning 0 when the point passes, and TEST_DESCS,
# the point's description (what the KTAP line says).  A test runs with
# errexit off (bash ignores set -e in a function called from a || list):
# it tests what it runs and returns its verdict.  The plan comes from the
# table:
#
#   TEST_NAMES=(a b)
#   TEST_DESCS=("a does this" "b does that")
#   test_a() { ...; }
#   ktap_begin "$(ktap_table_count "$@")"
#   ktap_run_table "$@"
#   ktap_end
#
# ktap_begin N           the header and the plan of N points
# ktap_ok STATUS DESC    the next point, ok when STATUS is 0
# ktap_diag TEXT...      each line of each TEXT as a "# " diagnostic
# ktap_subtest NAME OUT  OUT (a child's KTAP) indented as NAME's subtest;
#                        returns 1 when it has a failed point or no passing one
# ktap_fail_rest REASON  every point left fails
# ktap_end               the totals, then exit (1 when a point failed or
#                        the points run were not the plan's)

ktap_begin() {	# N
	KTAP_PLAN=$1
	KTAP_NUM=0
	KTAP_FAILED=0
	echo "KTAP version 1"
	echo "1..$KTAP_PLAN"
}

ktap_diag() {	# TEXT...
	printf '%s\n' "$@" | sed 's/^/# /'
}

ktap_ok() {	# STATUS DESCRIPTION
	KTAP_NUM=$((KTAP_NUM + 1))
	if [[ $1 -eq 0 ]]; then
		echo "ok $KTAP_NUM - $2"
	else
		echo "not ok $KTAP_NUM - $2"
		KTAP_FAILED=$((KTAP_FAILED + 1))
	fi
}

ktap_fail_rest() {	# REASON
	while ((KTAP_NUM < KTAP_PLAN)); do
		ktap_ok 1 "$1"
	done
}

ktap_end() {
	if ((KTAP_NUM != KTAP_PLAN)); then
		ktap_diag "$KTAP_NUM points ran, the plan said $KTAP_PLAN"
		exit 1
	fi
	if ((KTAP_FAILED)); then
		ktap_diag "$KTAP_FAILED of $KTAP_PLAN failed"
		exit 1
	fi
	ktap_diag "all $KTAP_PLAN passed"
	exit 0
}

ktap_subtest() {	# NAME OUTPUT
	local name=$1 out=$2 rc=0
	echo "    KTAP version 1"
	echo "    # Subtest: $name"
	printf '%s\n' "$out" | grep -v '^KTAP version' | sed 's/^/    /'
	if grep -q '^not ok ' <<<"$out"; then
		rc=1
	fi
	if ! grep -q '^ok ' <<<"$out"; then
		ktap_diag "$name: the suite reported no passing case"
		rc=1
	fi
	return "$rc"
}

# ktap_table_count [NAME...]: how many points ktap_run_table with the same
# arguments adds (the table's part of the plan).
ktap_table_count() {
	local name want=" $* " n=0
	for name in "${TEST_NAMES[@]}"; do
		[[ $# -eq 0 || $want == *" $name "* ]] && n=$((n + 1))
	done
	echo "$n"
}

# ktap_run_table [NAME...]: test_NAME for each entry of the table (or for
# the entries named, in the table's order), each one point described by
# its TEST_DESCS entry, after a diagnostic of the time it took; a test
# that found more to say (a version, a count) sets TEST_DESC, which starts
# as that entry.
ktap_run_table() {
	local i want=" $* " rc t
	for i in "${!TEST_NAMES[@]}"; do
		[[ $# -eq 0 || $want == *" ${TEST_NAMES[i]} "* ]] || continue
		rc=0
		t=$SECONDS
		TEST_DESC=${TEST_DESCS[i]}
		"test_${TEST_NAMES[i]}" || rc=$?
		ktap_diag "${TEST_NAMES[i]}: $((SECONDS - t)) s"
		ktap_ok "$rc" "$TEST_DESC"
	done
}
