#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The engine's instructions per message and per pass of its data plane
# (Documentation/netkernel/performance.rst, "Where the time goes").
#
# usage: engine-callgrind.sh [-s SECONDS] [HOSTENGINE]
#
# Three runs of nkbench --only small_b32 against HOSTENGINE (default: the
# tree's) under callgrind, counting dp_main only: plain, with CPU 0 (the
# frontend's) shared with a busy loop, plain again.  Each gives
# instructions I, messages M switched to the NSM and passes P of the data
# plane (nkctl engine: dataplane_loops); I = a * M + b * P + c, fitted over
# the three, separates the cost of a message (a) from that of a pass (b),
# which depends on how quickly the frontend answers.  The callgrind output
# of each run is kept (build/engine-callgrind/callgrind.out.engine.N) for
# callgrind_annotate.  Runs nkbench and the engine at nice -10.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
secs=10
if [[ ${1:-} == -s ]]; then
	secs=${2:?-s SECONDS}
	shift 2
fi
bin=${1:-$top/hostengine/hostengine}
nkbench=$here/nkbench
nkctl=$top/tools/nkctl/nkctl
for f in "$bin" "$nkbench" "$nkctl"; do
	[[ -x $f ]] || { echo "engine-callgrind.sh: $f: not built" >&2; exit 2; }
done
command -v valgrind >/dev/null || { echo "engine-callgrind.sh: no valgrind" >&2; exit 2; }
outdir=$top/build/engine-callgrind
mkdir -p "$outdir"

rows=()
run() {	# run N CONTEND: one run; appends "M P I" to rows
	local n=$1 contend=$2 dir ep cp='' out=$outdir/callgrind.out.engine.$1 msgs loops ir

	dir=$(mktemp -d /tmp/nkcg.XXXXXX)
	# nkbench's own configuration (nkbench.c, write_config).
	cat >"$dir/engine.conf" <<-EOF
	[engine]
	name = nkcg$$
	run_dir = $dir
	hugepages = no
	main_lcore = 0
	dataplane_lcore = 1
	poll = adaptive
	max_payload = 65635

	[nsm:nsm0]
	socket = nsm0.sock

	[guest:vm1]
	socket = vm1.sock
	nsm = nsm0
	address = 10.0.0.11

	[guest:vm2]
	socket = vm2.sock
	nsm = nsm0
	address = 10.0.0.12
	EOF
	nice -n -10 valgrind --tool=callgrind --toggle-collect=dp_main \
		--callgrind-out-file="$out" "$bin" -c "$dir/engine.conf" -f \
		>"$dir/engine.log" 2>&1 &
	ep=$!
	for _ in $(seq 120); do
		[[ -S $dir/vm2.sock && -S $dir/control.sock ]] && break
		sleep 0.5
	done
	if ((contend)); then
		nice -n -10 taskset -c 0 sh -c 'while :; do :; done' &
		cp=$!
	fi
	nice -n -10 "$nkbench" --run-dir "$dir" --only small_b32 --reps 1 --seconds "$secs" \
		>"$dir/bench.out" 2>&1 || true
	[[ -n $cp ]] && kill "$cp"
	loops=$("$nkctl" -s "$dir/control.sock" -j engine |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["dataplane_loops"])' ||
		echo 0)
	kill -TERM "$ep"
	wait "$ep" || true
	msgs=$(sed -n 's/^data verified: \([0-9]*\) messages at the NSM.*/\1/p' "$dir/bench.out")
	ir=$(sed -n 's/^summary: //p' "$out")
	if [[ -z $msgs || $msgs == 0 || $loops == 0 ]]; then
		echo "run $n: no figures; nkbench said:" >&2
		cat "$dir/bench.out" >&2
		rm -rf "$dir"
		return 1
	fi
	rm -rf "$dir"
	awk -v n="$n" -v c="$contend" -v i="$ir" -v m="$msgs" -v l="$loops" 'BEGIN {
		printf "run %d%s: %.0f instructions, %.0f messages, %.0f passes: " \
		       "%.0f per message all in, %.2f passes per message\n",
		       n, c ? " (CPU 0 shared)" : "", i, m, l, i / m, l / m }'
	rows+=("$msgs $loops $ir")
}

run 1 0
run 2 1
run 3 0
printf '%s\n' "${rows[@]}" | python3 -c '
import sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
# least squares for I = a * M + b * P + c (normal equations, 3 x 3)
x = [[r[0], r[1], 1.0] for r in rows]
A = [[sum(xi[i] * xi[j] for xi in x) for j in range(3)] for i in range(3)]
v = [sum(xi[i] * r[2] for xi, r in zip(x, rows)) for i in range(3)]
for i in range(3):
    p = max(range(i, 3), key=lambda k: abs(A[k][i]))
    A[i], A[p], v[i], v[p] = A[p], A[i], v[p], v[i]
    for k in range(i + 1, 3):
        f = A[k][i] / A[i][i]
        A[k] = [a - f * b for a, b in zip(A[k], A[i])]
        v[k] -= f * v[i]
s = [0.0] * 3
for i in reversed(range(3)):
    s[i] = (v[i] - sum(A[i][j] * s[j] for j in range(i + 1, 3))) / A[i][i]
print("per message %.0f instructions, per pass %.0f, fixed %.3g" % tuple(s))
'
