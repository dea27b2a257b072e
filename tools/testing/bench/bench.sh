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
#  3b. Guest to guest (issue 13): stream, rr_64 and crr_64 from vm1 to an
#     nkperf server on vm2's address, which the engine switches locally
#     (path "netkernel", hostengine.rst "Local switching"), from the
#     baseline guest to a server on the second baseline guest over the
#     bridge (path "baseline"), and from vm1 to the same server in vm2
#     with vm1's local_switch off (nkctl set, meanwhile), through the NSM
#     (path "nsm", hostengine.rst "Guests through their NSM"): the tests
#     g2g_stream_1, g2g_rr_64, g2g_crr_64.  Host CPU counts the server's
#     VM too.
#  4. Multiplexing: 1, 2, 4 NetKernel guests streaming at once through
#     one NSM against as many baseline guests: aggregate throughput and
#     total host CPU of each path (mux_N).  Last of the run, the same
#     through an NSM of 2 vCPUs (mux_smp2_N): the NSM is rebooted with
#     them (topo_nsm_reboot: the guests stay up, attached to it), which
#     then uses two queue pairs (two carriers, one per vCPU), and the
#     NetKernel path measured again against the same baseline guests.
#  5. Isolation (issue 14 item 4): vm1's bulk TCP (stream_tx_1) and its
#     connect/exchange/close rate (crr_64), alone (path "alone") and while
#     vm2 sits at its engine max_sockets (16, set by a reload
#     of the engine's file), trying one more socket every 20 ms
#     (nk_tenancy socks, path "vm2_at_limit").  report.py gives the ratio
#     vm2_at_limit / alone; the aim is within 10%.
#  6. Sharing one NSM: vm1 and vm2 streaming at once (each way) with
#     weights 1:1 and 1:3, set live by a reload of the engine's file, and
#     the share each got; vm1's rr_64 alone and beside vm2 flooding small
#     pipelined requests (p50, p99).  Then guest to world at 1:3 and the
#     flood again with nsm_kernel's rq_slice_us at 100 (off by default:
#     hostengine.rst "Sharing an NSM"), share_tx_rqslice_w3 and
#     flood_rr_64_rqslice, so that the trade it makes is in every run;
#     and the flood with nsm_kernel's eventq_hipri set (off by default,
#     the same section), flood_rr_64_evqhi.  Then vm1's rr_64 alone and
#     while vm2 and the NSM each run a CPU-bound loop (yes) and send
#     nothing, flood_rr_64_busy (path "busy"): the flood's load on the
#     VMs' vCPUs without its traffic, so what the host's cores alone do
#     to vm1's latency is in every run (performance.rst, "A flood's
#     load without its traffic").  Last, vm1's rr_64 and vm2 streaming to
#     the world on 4 connections at once, with eventq_hipri off, then on
#     (beside_stream_rr_64, paths default and evqhi): the trade that
#     parameter makes, the light guest's latency against the bulk one's
#     throughput.
#
# Every lab measurement runs A (netkernel) then B (baseline), repeated
# --reps times, so that ratios come from neighbouring runs.  Each
# measurement is one KTAP test point (it passes when it ran, its data were
# verified and its numbers are sane); tools/testing/bench/report.py then prints the
# table (median and min..max of every figure, the ratio netkernel /
# baseline) and writes results.json, results.csv and results.png.
#
# usage: tools/testing/bench/bench.sh [--smoke] [--sharing] [--reps N] [--seconds S] [--out DIR]
#   --smoke      short: one repetition, 1 s per measurement, 1 and 2 guests
#                (make bench-smoke, part of make check; sanity only)
#   --sharing    only 6. (sharing one NSM): two guests, no baseline guest,
#                no nkbench, no NSM of 2 vCPUs (BENCH_ARGS="--sharing" make bench)
#   --reps N     repetitions (default 3)
#   --seconds S  length of each lab measurement (default 5)
#   --out DIR    results directory (default results/bench-DATE, smoke:
#                build/bench-smoke)
# Environment: TOPO_KVER, TOPO_MEM, TOPO_SMP, TOPO_CARRIERS (default 2),
# LAB_ACCEL (tools/testing/lab).
# shellcheck disable=SC2016 # scripts for the guests in single quotes
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# Two carriers per nk device: the VMs of one vCPU use one queue pair, the
# NSM of mux_smp2_N one per vCPU.
TOPO_CARRIERS=${TOPO_CARRIERS:-2}
# shellcheck source-path=SCRIPTDIR source=../lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

smoke=
sharing=
reps=3
secs=5
out=
while (($#)); do
	case $1 in
	--smoke) smoke=1 ;;
	--sharing) sharing=1 ;;
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
[[ -z $sharing ]] || mux=(2)
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
mux_nsm_smp=2		# the NSM's vCPUs for mux_smp2_N (the test's name says 2)
# Isolation: name, then nkperf's arguments (vm1 alone / vm2 at its limit).
limit_tests=(
	"limit_stream_tx_1:-m stream -P 1"
	"limit_crr_64:-m crr -s 64"
)
vm2_max_socks=16
tenancy=$top/selftests/netkernel/nk_tenancy
guest_tenancy=/usr/bin/nk_tenancy
# Sharing one NSM: name, then nkperf's arguments for vm1 and vm2 at once;
# each runs with vm2's weight 1, then 3 (vm1's stays 1).
shares=(
	"share_tx:-m stream -P 1"
	"share_rx:-m maerts -P 1"
)
share_weights=(1 3)
flood_args="-m rr -s 64 -P 8 -D 32"	# within vm2_max_socks
beside_args="-m stream -P 4"		# vm2's bulk beside vm1's rr_64
rq_slice_us=100		# nsm_kernel's rq_slice_us for the *_rqslice rows
# Client and server in one guest, over 127.0.0.1.
lo_tests=(
	"stream_lo_1:-m stream -P 1"
	"rr_lo_64:-m rr -s 64"
	"crr_lo_64:-m crr -s 64"
)
lo_port=5202
# Guest to guest: vm1 -> vm2 (switched), base -> base2, vm1 -> world (NSM).
g2g_tests=(
	"g2g_stream_1:-m stream -P 1"
	"g2g_rr_64:-m rr -s 64"
	"g2g_crr_64:-m crr -s 64"
)
g2g_port=5203

# ------------------------------------------------------------ KTAP output

# nkbench; every measurement; the NSM's reboot with 2 vCPUs and its
# console so far; the mux_smp2_N measurements; the report; the console of
# every VM but the NSM; the NSM's console and the engine's exit together.
# --sharing: the sharing rows; the report; vm1's and vm2's consoles; the
# NSM's and the engine's.
# Sharing, per repetition: the share rows, then flood(), rq_slice(),
# eventq_hipri(), busy() and beside_stream() with 3, 4, 3, 3 and 2 points.
sharing_points=$((${#shares[@]} * ${#share_weights[@]} + 3 + 4 + 3 + 3 + 2))
if [[ -n $sharing ]]; then
	ktap_begin $((reps * sharing_points + 1 + nvms + 1))
else
	ktap_begin $((1 + reps * ((${#tests[@]} + ${#lo_tests[@]} + ${#mux[@]} +
		${#limit_tests[@]}) * 2 + ${#g2g_tests[@]} * 3 + sharing_points) +
		1 + reps * ${#mux[@]} * 2 + 1 + 2 * nvms + 1))
fi

finish() {
	ktap_diag "results: $out" "total $((SECONDS - t_start)) s"
	ktap_end
}

# ------------------------------------------------------------- the engine

opts=(--engine "$top/hostengine/hostengine" --reps "$reps" --json "$out/engine.json")
[[ -z $smoke ]] || opts+=(--smoke)
# The engine too: nkbench starts it before topo_up_ktap builds the lab.
if ! make -C "$here" -j2 >"$out/logs/build-bench.log" 2>&1 ||
	! make -C "$top/hostengine" -j2 >>"$out/logs/build-bench.log" 2>&1 ||
	! make -C "$top/selftests/netkernel" nk_tenancy >>"$out/logs/build-bench.log" 2>&1; then
	ktap_diag "make -C tools/testing/bench (or hostengine) failed:"
	tail -n 20 "$out/logs/build-bench.log" | sed 's/^/#   /'
	ktap_fail_rest "prerequisite failed: the benchmarks do not build"
	finish
fi
if [[ -z $sharing ]]; then
	status=0
	"$here/nkbench" "${opts[@]}" >"$out/logs/nkbench.log" 2>&1 || status=$?
	sed 's/^/# /' "$out/logs/nkbench.log"
	((status)) || python3 "$here/report.py" --validate-engine "$out/engine.json" | sed 's/^/# /' ||
		status=1
	ktap_ok "$status" "engine alone: nkbench"
fi

# ---------------------------------------------------------------- the lab

TOPO_INITRD_ARGS+=(--add "$tenancy:$guest_tenancy")
topo_up_ktap --guests "$nvms" --bases "$((sharing ? 0 : nvms))" || finish
topo_guest_set vm2 max_sockets="$vm2_max_socks" ||
	ktap_diag "vm2's max_sockets not set: the vm2_at_limit runs are not at a limit"

topo_world_spawn "$out/logs/nkperf-server.log" "$nkperf" server -B "$TOPO_WORLD_IP" -p "$port"
if ! topo_world_wait_port "$port"; then
	ktap_diag "nkperf server did not listen in the world:"
	sed 's/^/#   /' "$out/logs/nkperf-server.log"
	ktap_fail_rest "prerequisite failed: no nkperf server"
	topo_down || true
	finish
fi

# path_pids PATH VM...: the host processes that carry PATH's traffic
# (with srv_vm set, that VM's too: the server's).
path_pids() {
	local path=$1 vm
	shift
	for vm in "$@" ${srv_vm:-}; do
		echo "${LAB_VM_PID[$vm]}"
	done
	if [[ $path != baseline ]]; then
		echo "${LAB_VM_PID[$TOPO_NSM]}" "$TOPO_ENGINE_PID"
	fi
}

# measure TEST PATH REP "NKPERF-ARGS" VM...: nkperf client in every VM at
# once against the world's server (or, with srv=ADDRESS and srv_port=N
# set, against a server in the VM itself or in VM srv_vm; a VM named in
# vm_nkargs runs with its arguments there instead); one JSON record
# in records.jsonl (with the NSM's vCPUs at the time) and one test point
# (with nsm_check=1 set, failed when the NSM was sent no payload meanwhile).
declare -A vm_nkargs=()
measure() {
	local test=$1 path=$2 rep=$3 nkargs=$4 vm c0 c1 t0 t1 status=0 name
	local target=${srv:-$TOPO_WORLD_IP} tport=${srv_port:-$port} pid nsm0=0
	local -a pids clients=()
	shift 4
	name="$test $path rep $rep"
	[[ -z ${nsm_check:-} ]] || nsm0=$(topo_ep_counter nsm0 bytes_out)
	mapfile -t pids < <(path_pids "$path" "$@")
	c0=$(lab_cpu_ticks "${pids[@]}")
	t0=$(date +%s.%N)
	for vm in "$@"; do
		lab_vm_exec "$vm" $((secs + 60)) \
			"$guest_nkperf client -c $target -p $tport -t $secs ${vm_nkargs[$vm]:-$nkargs} --json" \
			>"$out/logs/$test.$path.$rep.$vm.json" 2>&1 &
		clients+=($!)
	done
	# Its own clients: another job (vm2's flood) may end first.
	for pid in "${clients[@]}"; do
		wait "$pid" || status=$?
	done
	t1=$(date +%s.%N)
	c1=$(lab_cpu_ticks "${pids[@]}")
	{
		printf '{"test":"%s","path":"%s","rep":%d,"vms":%d,"nsm_vcpus":%d,"wall_s":%s,"cpu_s":%s,"results":[' \
			"$test" "$path" "$rep" $# "$TOPO_NSM_SMP" "$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")" \
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
	elif [[ -n ${nsm_check:-} ]] && (($(topo_ep_counter nsm0 bytes_out) == nsm0)); then
		ktap_diag "$name: the NSM was sent none of it (switched locally?)"
		status=1
	fi
	cat "$out/logs/record.tmp" >>"$records"
	ktap_ok "$status" "$name"
}

# vm2_closed: wait (10 s at most) until vm2 has no socket at the engine.
vm2_closed() {
	local i
	for ((i = 0; i < 20; i++)); do
		(($(topo_ep_sockets vm2) == 0)) && return
		sleep 0.5
	done
	ktap_diag "vm2 still has $(topo_ep_sockets vm2) sockets"
}

# vm2_at_limit start|stop: vm2, once its sockets are closed, opens sockets
# until its max_sockets refuses one and keeps trying (1 when it was not
# EMFILE at vm2_max_socks); or it stops, its sockets closed.
vm2_at_limit() {
	local got
	if [[ $1 == stop ]]; then
		lab_vm_exec vm2 30 'kill $(pidof nk_tenancy) 2>/dev/null; true' >/dev/null 2>&1 || true
		vm2_closed
		return
	fi
	vm2_closed
	got=$(lab_vm_exec vm2 30 "rm -f /tmp/socks.log
$guest_tenancy socks $((2 * vm2_max_socks)) hold 3600 >/tmp/socks.log 2>&1 &
i=0; until [ -s /tmp/socks.log ]; do [ \$i -lt 50 ] || break; sleep 0.2; i=\$((i + 1)); done
cat /tmp/socks.log" 2>&1) || true
	[[ $got == "opened $vm2_max_socks EMFILE" ]] || { ktap_diag "vm2 not at its limit: $got"; return 1; }
}

# vm_server VM ADDRESS PORT start|stop: an nkperf server in VM on
# ADDRESS:PORT.
vm_server() {
	local vm=$1 addr=$2 p=$3
	if [[ $4 == stop ]]; then
		lab_vm_exec "$vm" 30 "kill \$(cat /tmp/nkperf-$p.pid) 2>/dev/null; true"
		return
	fi
	lab_vm_exec "$vm" 60 "$guest_nkperf server -B $addr -p $p >/tmp/nkperf-$p.log 2>&1 &
echo \$! >/tmp/nkperf-$p.pid
i=0
until grep -Eqs ':$(printf '%04X' "$p") [0-9A-F]+:0000 0A|:$p ' /proc/net/netkernel /proc/net/tcp; do
	[ \$i -lt 100 ] || { echo 'nkperf does not listen'; cat /tmp/nkperf-$p.log; exit 1; }
	sleep 0.2; i=\$((i + 1))
done"
}

# servers start|stop "VM ADDRESS PORT"...: vm_server for each.
servers() {
	local how=$1 s vm addr p
	shift
	for s in "$@"; do
		read -r vm addr p <<<"$s"
		if [[ $how == stop ]]; then
			vm_server "$vm" "$addr" "$p" stop >/dev/null 2>&1 || true
		elif ! vm_server "$vm" "$addr" "$p" start >"$out/logs/nkperf-$p-$vm.log" 2>&1; then
			ktap_diag "nkperf server on $addr:$p did not listen in $vm:"
			sed 's/^/#   /' "$out/logs/nkperf-$p-$vm.log"
		fi
	done
}

# g2g_nsm TEST REP "NKPERF-ARGS": vm1 -> vm2's server as measure's path
# "nsm", through the NSM: vm1's local_switch off meanwhile.  The point
# fails when the switch cannot be turned off (the figures would be the
# switched path's) or the NSM carried none of the run's bytes (nsm_check).
g2g_nsm() {
	local test=$1 rep=$2 nkargs=$3 vm1=${TOPO_GUESTS[0]}
	if ! topo_nkctl set "$vm1" local_switch=off >/dev/null 2>&1; then
		ktap_diag "nkctl set $vm1 local_switch=off failed"
		ktap_ok 1 "$test nsm rep $rep"
		return
	fi
	srv=$(topo_vm_ip "${TOPO_GUESTS[1]}") srv_port=$g2g_port srv_vm=${TOPO_GUESTS[1]} \
		nsm_check=1 measure "$test" nsm "$rep" "$nkargs" "$vm1"
	topo_nkctl set "$vm1" local_switch=auto >/dev/null 2>&1 ||
		ktap_diag "nkctl set $vm1 local_switch=auto failed"
}

# 127.0.0.1 in vm1 and the baseline guest, for the whole run; vm2's and
# base2's own addresses for guest to guest, only meanwhile (vm2 must have
# no socket when it is taken to its limit).
lo_servers=()
g2g_servers=()
if [[ -z $sharing ]]; then
	lo_servers=("${TOPO_GUESTS[0]} 127.0.0.1 $lo_port" "$TOPO_BASE 127.0.0.1 $lo_port")
	g2g_servers=("${TOPO_GUESTS[1]} $(topo_vm_ip "${TOPO_GUESTS[1]}") $g2g_port"
		"${TOPO_BASES[1]} $(topo_vm_ip "${TOPO_BASES[1]}") $g2g_port")
fi
servers start "${lo_servers[@]}"

for ((rep = 1; rep <= reps; rep++)); do
	[[ -z $sharing ]] || break
	for t in "${tests[@]}"; do
		measure "${t%%:*}" netkernel "$rep" "${t#*:}" "${TOPO_GUESTS[0]}"
		measure "${t%%:*}" baseline "$rep" "${t#*:}" "$TOPO_BASE"
	done
	for t in "${lo_tests[@]}"; do
		srv=127.0.0.1 srv_port=$lo_port measure "${t%%:*}" netkernel "$rep" "${t#*:}" "${TOPO_GUESTS[0]}"
		srv=127.0.0.1 srv_port=$lo_port measure "${t%%:*}" baseline "$rep" "${t#*:}" "$TOPO_BASE"
	done
	servers start "${g2g_servers[@]}"
	for t in "${g2g_tests[@]}"; do
		srv=$(topo_vm_ip "${TOPO_GUESTS[1]}") srv_port=$g2g_port srv_vm=${TOPO_GUESTS[1]} \
			measure "${t%%:*}" netkernel "$rep" "${t#*:}" "${TOPO_GUESTS[0]}"
		g2g_nsm "${t%%:*}" "$rep" "${t#*:}"
		srv=$(topo_vm_ip "${TOPO_BASES[1]}") srv_port=$g2g_port srv_vm=${TOPO_BASES[1]} \
			measure "${t%%:*}" baseline "$rep" "${t#*:}" "$TOPO_BASE"
	done
	servers stop "${g2g_servers[@]}"
	for n in "${mux[@]}"; do
		measure "mux_$n" netkernel "$rep" "$mux_args" "${TOPO_GUESTS[@]:0:n}"
		measure "mux_$n" baseline "$rep" "$mux_args" "${TOPO_BASES[@]:0:n}"
	done
	for t in "${limit_tests[@]}"; do
		measure "${t%%:*}" alone "$rep" "${t#*:}" vm1
		# Not at its limit, the run would measure something else: none.
		if vm2_at_limit start; then
			measure "${t%%:*}" vm2_at_limit "$rep" "${t#*:}" vm1
		else
			ktap_ok 1 "${t%%:*} vm2_at_limit rep $rep"
		fi
		vm2_at_limit stop
	done
done

# share REP: vm1 and vm2 through one NSM, vm2 weighted 1 then 3.
share() {
	local rep=$1 t w
	for t in "${shares[@]}"; do
		for w in "${share_weights[@]}"; do
			if ! topo_guest_set vm2 weight="$w"; then
				ktap_ok 1 "${t%%:*}_w$w netkernel rep $rep (vm2's weight not set)"
				continue
			fi
			measure "${t%%:*}_w$w" netkernel "$rep" "${t#*:}" vm1 vm2
		done
	done
	topo_guest_set vm2 weight=1 || true
}

# flood REP [TEST]: vm1's rr_64 alone, then while vm2 floods the same NSM
# with small pipelined requests (vm2's run must end well too).
flood() {
	local rep=$1 test=${2:-flood_rr_64} fpid status=0
	measure "$test" alone "$rep" "-m rr -s 64" vm1
	lab_vm_exec vm2 $((secs + 64)) \
		"$guest_nkperf client -c $TOPO_WORLD_IP -p $port -t $((secs + 4)) $flood_args --json" \
		>"$out/logs/flood.$rep.vm2.json" 2>&1 &
	fpid=$!
	sleep 2
	measure "$test" flooded "$rep" "-m rr -s 64" vm1
	wait "$fpid" || status=$?
	if ((status)); then
		ktap_diag "vm2's flood exited $status:"
		sed 's/^/#   vm2: /' "$out/logs/flood.$rep.vm2.json"
	elif ! tail -n 1 "$out/logs/flood.$rep.vm2.json" >"$out/logs/record.tmp" ||
		! python3 "$here/report.py" --validate-client "$out/logs/record.tmp" | sed 's/^/# /'; then
		status=1
	fi
	ktap_ok "$status" "$test vm2's flood rep $rep"
}

# rq_slice REP: guest to world at 1:3 and the flood with the NSM's
# rq_slice_us at $rq_slice_us, then back to 0.
rq_slice() {
	local rep=$1
	if ! topo_nsm_param rq_slice_us "$rq_slice_us" || ! topo_guest_set vm2 weight=3; then
		ktap_ok 1 "share_tx_rqslice_w3 netkernel rep $rep (not set up)"
		ktap_ok 1 "flood_rr_64_rqslice alone rep $rep (not set up)"
		ktap_ok 1 "flood_rr_64_rqslice flooded rep $rep (not set up)"
		ktap_ok 1 "flood_rr_64_rqslice vm2's flood rep $rep (not set up)"
	else
		measure share_tx_rqslice_w3 netkernel "$rep" "-m stream -P 1" vm1 vm2
		topo_guest_set vm2 weight=1 || true
		flood "$rep" flood_rr_64_rqslice
	fi
	topo_nsm_param rq_slice_us 0 || ktap_diag "the NSM's rq_slice_us was not set back to 0"
}

# eventq_hipri REP: the flood with the NSM's eventq_hipri set, then off.
eventq_hipri() {
	local rep=$1
	if ! topo_nsm_param eventq_hipri 1; then
		ktap_ok 1 "flood_rr_64_evqhi alone rep $rep (not set up)"
		ktap_ok 1 "flood_rr_64_evqhi flooded rep $rep (not set up)"
		ktap_ok 1 "flood_rr_64_evqhi vm2's flood rep $rep (not set up)"
	else
		flood "$rep" flood_rr_64_evqhi
	fi
	topo_nsm_param eventq_hipri 0 || ktap_diag "the NSM's eventq_hipri was not set back to 0"
}

# busy REP: vm1's rr_64 alone, then while vm2 and the NSM each keep their
# vCPU busy with a loop of their own, no socket at all (each loop must
# run until its timeout ends it: busybox timeout's 143).
busy() {
	local rep=$1 vm pid status=0
	local -a loops=()
	measure flood_rr_64_busy alone "$rep" "-m rr -s 64" vm1
	for vm in vm2 "$TOPO_NSM"; do
		lab_vm_exec "$vm" $((secs + 64)) \
			"timeout $((secs + 4)) yes >/dev/null; echo \"loop \$?\"" \
			>"$out/logs/busy.$rep.$vm.log" 2>&1 &
		loops+=($!)
	done
	sleep 2
	measure flood_rr_64_busy busy "$rep" "-m rr -s 64" vm1
	for pid in "${loops[@]}"; do
		wait "$pid" || status=$?
	done
	for vm in vm2 "$TOPO_NSM"; do
		if [[ $(tail -n 1 "$out/logs/busy.$rep.$vm.log") != "loop 143" ]]; then
			ktap_diag "$vm's loop did not run its $((secs + 4)) s:"
			sed "s/^/#   $vm: /" "$out/logs/busy.$rep.$vm.log"
			status=1
		fi
	done
	ktap_ok "$status" "flood_rr_64_busy loops in vm2 and $TOPO_NSM rep $rep"
}

# beside_stream REP: vm1's rr_64 and vm2's streams at once, with the NSM's
# eventq_hipri off (path default), then on (evqhi), then off again.
beside_stream() {
	local rep=$1
	vm_nkargs[vm2]=$beside_args
	measure beside_stream_rr_64 default "$rep" "-m rr -s 64" vm1 vm2
	if ! topo_nsm_param eventq_hipri 1; then
		ktap_ok 1 "beside_stream_rr_64 evqhi rep $rep (not set up)"
	else
		measure beside_stream_rr_64 evqhi "$rep" "-m rr -s 64" vm1 vm2
	fi
	unset 'vm_nkargs[vm2]'
	topo_nsm_param eventq_hipri 0 || ktap_diag "the NSM's eventq_hipri was not set back to 0"
}

for ((rep = 1; rep <= reps; rep++)); do
	share "$rep"
	flood "$rep"
	rq_slice "$rep"
	eventq_hipri "$rep"
	busy "$rep"
	beside_stream "$rep"
done

servers stop "${lo_servers[@]}"

# mux_smp2_N, last: the NSM rebooted with 2 vCPUs, then as mux_N.  On a
# 2-core host its vCPUs compete with the guests' and the engine's threads.
if [[ -z $sharing ]]; then
	t0=$SECONDS
	status=0
	if ((TOPO_NSM_SMP != mux_nsm_smp)); then
		topo_nsm_reboot "$mux_nsm_smp" "$TOPO_BOOT_TIMEOUT" >"$out/logs/nsm-reboot.log" 2>&1 ||
			status=1
		grep '^# ' "$out/logs/nsm-reboot.log" || true
	fi
	ktap_diag "the NSM with $TOPO_NSM_SMP vCPUs after $((SECONDS - t0)) s, queue pairs" \
		"$(topo_exec "$TOPO_NSM" 30 'cat /sys/bus/virtio/devices/*/nk/pairs' 2>&1 || true)"
	ktap_ok "$status" "NSM rebooted with $mux_nsm_smp vCPUs, its console so far clean"
	for ((rep = 1; rep <= reps; rep++)); do
		for n in "${mux[@]}"; do
			if ((status)); then
				ktap_ok 1 "mux_smp${mux_nsm_smp}_$n netkernel rep $rep (no NSM of $mux_nsm_smp vCPUs)"
			else
				measure "mux_smp${mux_nsm_smp}_$n" netkernel "$rep" "$mux_args" "${TOPO_GUESTS[@]:0:n}"
			fi
			measure "mux_smp${mux_nsm_smp}_$n" baseline "$rep" "$mux_args" "${TOPO_BASES[@]:0:n}"
		done
	done
fi

# ------------------------------------------------------------- the report

status=0
python3 "$here/report.py" ${sharing:+--sharing} "$out" >"$out/report.txt" 2>&1 || status=$?
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
