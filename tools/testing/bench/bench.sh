#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench / make bench-smoke: NetKernel's cost and speed, measured side
# by side with the native virtio-net path in one run
# (Documentation/netkernel/performance.rst).
#
#  1. The host engine alone: tools/testing/bench/nkbench against a hostengine it
#     starts, beside the machine's own limits measured in the same run
#     (an ideal two-thread ring switch, single-core memcpy).
#  2. End to end in the VM lab (tools/testing/lab/topology.sh), the same world
#     namespace and nkperf server for both paths, the same vCPUs and
#     memory for every VM: bulk TCP guest->world (stream) and world->guest
#     (maerts) on 1, 4, 8 and 16 connections with 128 KiB writes, 64-byte
#     request-response latency, one request at a time (rr_64) and
#     pipelined on 50 connections with 16 requests in flight each
#     (prr_64, as a key-value client), connect/exchange/close rate, each
#     on NetKernel guest vm1 (path
#     "netkernel": vm1 -> hostengine -> NSM VM -> its virtio-net NIC) and
#     on the baseline guest with its own virtio-net NIC (path "baseline").
#     Host CPU of each path is the user+system time of its processes over
#     the measurement: vm1's and the NSM's QEMU and hostengine, or the
#     baseline guest's QEMU.
#  3. Guest loopback: stream, rr_64 and crr_64 with nkperf's client and
#     server in the same guest over 127.0.0.1, on vm1 (path "netkernel":
#     its sockets' native half, see architecture.rst "Guest loopback") and
#     on the baseline guest (path "baseline"): the tests stream_lo_1,
#     rr_lo_64, crr_lo_64.
#  4. Multiplexing: 1, 2, 4 NetKernel guests streaming at once through
#     one NSM against as many baseline guests: aggregate throughput and
#     total host CPU of each path.
#
# Every lab measurement runs A (netkernel) then B (baseline), repeated
# --reps times, so that ratios come from neighbouring runs.  Each
# measurement is one KTAP test point (it passes when it ran, its data were
# verified and its numbers are sane); tools/testing/bench/report.py then prints the
# table (median and min..max of every figure, the ratio netkernel /
# baseline) and writes results.json, results.csv and results.png.
#
# usage: tools/testing/bench/bench.sh [--smoke] [--reps N] [--seconds S] [--out DIR]
#   --smoke      short: one repetition, 1 s per measurement, 1 and 2 guests
#                (make bench-smoke, part of make check; sanity only)
#   --reps N     repetitions (default 3)
#   --seconds S  length of each lab measurement (default 5)
#   --out DIR    results directory (default results/bench-DATE, smoke:
#                build/bench-smoke)
# Environment: TOPO_KVER, TOPO_MEM, TOPO_SMP, LAB_ACCEL (tools/testing/lab).
# shellcheck disable=SC2016 # scripts for the guests in single quotes
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

smoke=
reps=3
secs=5
out=
while (($#)); do
	case $1 in
	--smoke) smoke=1 ;;
	--reps) reps=${2:?}; shift ;;
	--seconds) secs=${2:?}; shift ;;
	--out) out=${2:?}; shift ;;
	*) sed -n '/^# usage:/,/^# Environment/{s/^# \{0,1\}//; p}' "$0" >&2; exit 2 ;;
	esac
	shift
done
mux=(1 2 4)
if [[ -n $smoke ]]; then
	reps=1 secs=1 mux=(1 2)
	out=${out:-$top/build/bench-smoke}
fi
out=${out:-$top/results/bench-$(date +%Y%m%d-%H%M%S)}
((reps >= 1 && secs >= 1)) || { echo "bench: --reps and --seconds must be >= 1" >&2; exit 2; }
nvms=${mux[-1]}
port=5201
nkperf=$here/nkperf
guest_nkperf=/usr/bin/nkperf		# in the lab's initramfs (topology.sh)
records=$out/records.jsonl
hz=$(getconf CLK_TCK)

rm -rf "$out"
mkdir -p "$out"
: >"$records"
lab_init "$out/logs"
t_start=$SECONDS

# The lab's measurements: name, then nkperf's arguments.
tests=(
	"stream_tx_1:-m stream -P 1"
	"stream_tx_8:-m stream -P 8"
	"stream_rx_1:-m maerts -P 1"
	"stream_rx_8:-m maerts -P 8"
	"rr_64:-m rr -s 64"
	"crr_64:-m crr -s 64"
	"stream_tx_4:-m stream -P 4 -s 128k"
	"stream_tx_16:-m stream -P 16 -s 128k"
	"stream_rx_4:-m maerts -P 4 -s 128k"
	"stream_rx_16:-m maerts -P 16 -s 128k"
	"prr_64:-m rr -s 64 -P 50 -D 16"
)
mux_args="-m stream -P 1"
# Client and server in one guest, over 127.0.0.1.
lo_tests=(
	"stream_lo_1:-m stream -P 1"
	"rr_lo_64:-m rr -s 64"
	"crr_lo_64:-m crr -s 64"
)
lo_port=5202

# ------------------------------------------------------------ KTAP output

# nkbench; every measurement; the report; the console of every VM but the
# NSM; the NSM's console and the engine's exit together.
ktap_begin $((1 + reps * (${#tests[@]} + ${#lo_tests[@]} + ${#mux[@]}) * 2 + 1 + 2 * nvms + 1))

finish() {
	ktap_diag "results: $out" "total $((SECONDS - t_start)) s"
	ktap_end
}

# ------------------------------------------------------------- the engine

opts=(--engine "$top/hostengine/hostengine" --reps "$reps" --json "$out/engine.json")
[[ -z $smoke ]] || opts+=(--smoke)
if ! make -C "$here" -j2 >"$out/logs/build-bench.log" 2>&1; then
	ktap_diag "make -C tools/testing/bench failed:"
	tail -n 20 "$out/logs/build-bench.log" | sed 's/^/#   /'
	ktap_fail_rest "prerequisite failed: the benchmarks do not build"
	finish
fi
status=0
"$here/nkbench" "${opts[@]}" >"$out/logs/nkbench.log" 2>&1 || status=$?
sed 's/^/# /' "$out/logs/nkbench.log"
((status)) || python3 "$here/report.py" --validate-engine "$out/engine.json" | sed 's/^/# /' ||
	status=1
ktap_ok "$status" "engine alone: nkbench"

# ---------------------------------------------------------------- the lab

topo_up_ktap --guests "$nvms" --bases "$nvms" || finish
topo_world_spawn "$out/logs/nkperf-server.log" "$nkperf" server -B "$TOPO_WORLD_IP" -p "$port"
if ! topo_world_wait_port "$port"; then
	ktap_diag "nkperf server did not listen in the world:"
	sed 's/^/#   /' "$out/logs/nkperf-server.log"
	ktap_fail_rest "prerequisite failed: no nkperf server"
	topo_down || true
	finish
fi

# path_pids PATH VM...: the host processes that carry PATH's traffic.
path_pids() {
	local path=$1 vm
	shift
	for vm in "$@"; do
		echo "${LAB_VM_PID[$vm]}"
	done
	if [[ $path == netkernel ]]; then
		echo "${LAB_VM_PID[$TOPO_NSM]}" "$TOPO_ENGINE_PID"
	fi
}

# measure TEST PATH REP "NKPERF-ARGS" VM...: nkperf client in every VM at
# once against the world's server (or, with srv=127.0.0.1 and
# srv_port=N set, against a server in the VM itself); one JSON record in
# records.jsonl and one test point.
measure() {
	local test=$1 path=$2 rep=$3 nkargs=$4 vm c0 c1 t0 t1 status=0 name
	local target=${srv:-$TOPO_WORLD_IP} tport=${srv_port:-$port}
	local -a pids
	shift 4
	name="$test $path rep $rep"
	mapfile -t pids < <(path_pids "$path" "$@")
	c0=$(lab_cpu_ticks "${pids[@]}")
	t0=$(date +%s.%N)
	for vm in "$@"; do
		lab_vm_exec "$vm" $((secs + 60)) \
			"$guest_nkperf client -c $target -p $tport -t $secs $nkargs --json" \
			>"$out/logs/$test.$path.$rep.$vm.json" 2>&1 &
	done
	for vm in "$@"; do
		wait -n || status=$?
	done
	t1=$(date +%s.%N)
	c1=$(lab_cpu_ticks "${pids[@]}")
	{
		printf '{"test":"%s","path":"%s","rep":%d,"vms":%d,"wall_s":%s,"cpu_s":%s,"results":[' \
			"$test" "$path" "$rep" $# "$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")" \
			"$(awk "BEGIN { printf \"%.3f\", ($c1 - $c0) / $hz }")"
		for vm in "$@"; do
			[[ $vm == "$1" ]] || printf ','
			tail -n 1 "$out/logs/$test.$path.$rep.$vm.json" | tr -d '\n'
		done
		printf ']}\n'
	} >"$out/logs/record.tmp"
	if ((status)); then
		ktap_diag "$name: nkperf exited $status:"
		for vm in "$@"; do
			sed "s/^/#   $vm: /" "$out/logs/$test.$path.$rep.$vm.json"
		done
	elif ! python3 "$here/report.py" --validate "$out/logs/record.tmp" | sed 's/^/# /'; then
		status=1
	fi
	cat "$out/logs/record.tmp" >>"$records"
	ktap_ok "$status" "$name"
}

# lo_server VM start|stop: an nkperf server on VM's 127.0.0.1.
lo_server() {
	if [[ $2 == stop ]]; then
		lab_vm_exec "$1" 30 'kill $(cat /tmp/nkperf-lo.pid) 2>/dev/null; true'
		return
	fi
	lab_vm_exec "$1" 60 "$guest_nkperf server -B 127.0.0.1 -p $lo_port >/tmp/nkperf-lo.log 2>&1 &
echo \$! >/tmp/nkperf-lo.pid
i=0
until grep -Eqs ':$(printf '%04X' "$lo_port") [0-9A-F]+:0000 0A|:$lo_port ' /proc/net/netkernel /proc/net/tcp; do
	[ \$i -lt 100 ] || { echo 'nkperf does not listen'; cat /tmp/nkperf-lo.log; exit 1; }
	sleep 0.2; i=\$((i + 1))
done"
}

for vm in "${TOPO_GUESTS[0]}" "$TOPO_BASE"; do
	if ! lo_server "$vm" start >"$out/logs/nkperf-lo-$vm.log" 2>&1; then
		ktap_diag "nkperf server on 127.0.0.1 did not listen in $vm:"
		sed 's/^/#   /' "$out/logs/nkperf-lo-$vm.log"
	fi
done

for ((rep = 1; rep <= reps; rep++)); do
	for t in "${tests[@]}"; do
		measure "${t%%:*}" netkernel "$rep" "${t#*:}" "${TOPO_GUESTS[0]}"
		measure "${t%%:*}" baseline "$rep" "${t#*:}" "$TOPO_BASE"
	done
	for t in "${lo_tests[@]}"; do
		srv=127.0.0.1 srv_port=$lo_port measure "${t%%:*}" netkernel "$rep" "${t#*:}" "${TOPO_GUESTS[0]}"
		srv=127.0.0.1 srv_port=$lo_port measure "${t%%:*}" baseline "$rep" "${t#*:}" "$TOPO_BASE"
	done
	for n in "${mux[@]}"; do
		measure "mux_$n" netkernel "$rep" "$mux_args" "${TOPO_GUESTS[@]:0:n}"
		measure "mux_$n" baseline "$rep" "$mux_args" "${TOPO_BASES[@]:0:n}"
	done
done

for vm in "${TOPO_GUESTS[0]}" "$TOPO_BASE"; do
	lo_server "$vm" stop >/dev/null 2>&1 || true
done

# ------------------------------------------------------------- the report

status=0
python3 "$here/report.py" "$out" >"$out/report.txt" 2>&1 || status=$?
ktap_ok "$status" "report: results.json, results.csv, results.png"
sed 's/^/# /' "$out/report.txt"

# Every VM's kernel log, then the engine's exit.
down=0
topo_down --no-scan >"$out/logs/down.log" 2>&1 || down=1
for vm in "${TOPO_VMS[@]}"; do
	status=0
	lab_scan_console "$vm" || status=1
	if [[ $vm == "$TOPO_NSM" ]]; then
		((status == 0)) || down=1
	else
		ktap_ok "$status" "console clean: $vm"
	fi
done
ktap_ok "$down" "console clean: $TOPO_NSM; hostengine stopped cleanly"
finish
