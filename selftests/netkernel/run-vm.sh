#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make kselftest: the socket-semantics suite (nk_sockets, see its header
# comment and README) in real VMs, printing KTAP.
#
# One boot of the lab (tools/lab/topology.sh: world namespace, hostengine,
# NSM VM, NetKernel guest vm1 without a NIC, baseline guest with an
# ordinary NIC) serves every run:
#
#   netkernel guest: client side   nk_sockets client in vm1, server in the world
#   netkernel guest: server side   nk_sockets server in vm1, client in the world
#   baseline guest: client side    the same, unchanged, in the baseline guest
#   baseline guest: server side
#   adversarial: ...               floods from the world (adversarial.sh),
#                                  against the NetKernel and the baseline guest
#   console clean: <vm>            no WARN, BUG, oops, hung task, lockdep
#                                  report on any VM's console or kernel log
#                                  (the NetKernel guest boots with SLUB
#                                  debugging of skbs: a use after free shows
#                                  as a poison or redzone BUG report)
#   hostengine stopped cleanly     exit 0 on SIGTERM
#
# Each suite run's own KTAP is printed indented, as a subtest of its test
# point.  Exits non-zero on any failure.
#
# usage: selftests/netkernel/run-vm.sh
# Environment: NK_SUITE_TIMEOUT (seconds per suite run, default 300),
# NK_SOCKETS (a prebuilt static nk_sockets: no make; nk_flood beside it),
# NK_SUITE_ARGS (more client options, e.g. "--run tcp_msg_peek"),
# NK_FLOOD_COUNT, NK_FLOOD_SEGS, NK_FLOOD_SECS (the adversarial floods'
# bounds: datagrams, TCP segments, seconds),
# TOPO_GUEST_APPEND (default slub_debug=FZP,skbuff_head_cache),
# TOPO_KVER, TOPO_MEM, TOPO_SMP, LAB_ACCEL (see tools/lab).
# Logs: build/lab/kselftest/ (consoles, dmesg, agent logs, engine, servers).
# Scripts for the guests in single quotes are expanded by the guest.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/lab/lib.sh
. "$top/tools/lab/lib.sh"
# SLUB debugging of skbs in the NetKernel guest: a freed skb is poisoned
# (set before topology.sh, which keeps it; empty: none).
TOPO_GUEST_APPEND=${TOPO_GUEST_APPEND-slub_debug=FZP,skbuff_head_cache}
# shellcheck source-path=SCRIPTDIR source=../../tools/lab/topology.sh
. "$top/tools/lab/topology.sh"
# shellcheck source-path=SCRIPTDIR source=adversarial.sh
. "$here/adversarial.sh"
# shellcheck source-path=SCRIPTDIR source=programs.sh
. "$here/programs.sh"

logdir=$top/build/lab/kselftest
suite_timeout=${NK_SUITE_TIMEOUT:-300}
suite_bin=${NK_SOCKETS:-$here/nk_sockets}	# built by make -C selftests/netkernel
guest_bin=/usr/bin/nk_sockets		# where the initramfs has it
flood_bin=$(dirname "$suite_bin")/nk_flood	# adversarial.sh's traffic
guest_flood=/usr/bin/nk_flood

# ----------------------------------------------- the suite's command line
# (selftests/netkernel/README): a server that serves client runs until it
# is killed, and a client that prints KTAP and exits 0 when every case
# passed.  ADDR is the address the server listens on / the client reaches,
# ADDR6 the server's IPv6 address for the ipv6_tcp and ipv6_udp cases.
suite_server() {	# BIN LISTEN-ADDR
	printf '%s server --bind %s' "$1" "$2"
}
suite_client() {	# BIN SERVER-ADDR SERVER-ADDR6
	printf '%s client --server %s --server6 %s%s' "$1" "$2" "$3" "${NK_SUITE_ARGS:+ $NK_SUITE_ARGS}"
}
suite_port=${NK_SUITE_PORT:-7000}	# its control port, to wait for

rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS

# ------------------------------------------------------------ KTAP output

ktap_begin $((8 + ADV_CASES + PROG_CASES))

finish() {
	ktap_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	ktap_end
}

# subtest NAME STATUS OUTPUT: OUTPUT (the suite's KTAP) indented as the
# subtest of one test point; the point passes when STATUS is 0 and the
# suite reported no failed case at its top level.
subtest() {
	local name=$1 status=$2 out=$3
	echo "    KTAP version 1"
	echo "    # Subtest: $name"
	printf '%s\n' "$out" | grep -v '^KTAP version' | sed 's/^/    /'
	if grep -q '^not ok ' <<<"$out"; then
		status=1
	fi
	if ! grep -q '^ok ' <<<"$out"; then
		ktap_diag "$name: the suite reported no passing case"
		status=1
	fi
	ktap_ok "$status" "$name"
}

# ------------------------------------------------------------------ build

t0=$SECONDS
if [[ -z ${NK_SOCKETS:-} ]] && ! make -C "$here" -j2 >"$logdir/build-nk_sockets.log" 2>&1; then
	ktap_diag "make -C selftests/netkernel failed:"
	tail -n 20 "$logdir/build-nk_sockets.log" | sed 's/^/#   /'
	ktap_fail_rest "prerequisite failed: nk_sockets does not build"
	finish
fi
for bin in "$suite_bin" "$flood_bin"; do
	if [[ ! -x $bin ]] || ldd "$bin" >/dev/null 2>&1; then
		ktap_diag "$bin: missing or not a static binary"
		ktap_fail_rest "prerequisite failed: no static $(basename "$bin")"
		finish
	fi
done
TOPO_INITRD_ARGS+=(--add "$suite_bin:$guest_bin" --add "$flood_bin:$guest_flood")
prog_initrd_args
if ! topo_build 2>"$logdir/build.err"; then
	sed 's/^/# /' "$logdir/build.err"
	ktap_fail_rest "prerequisite failed: the lab does not build"
	finish
fi
ktap_diag "build: $((SECONDS - t0)) s"

# ------------------------------------------------------------------- boot

t0=$SECONDS
if ! topo_up --guests 1 2>"$logdir/up.err"; then
	sed 's/^/# /' "$logdir/up.err"
	ktap_fail_rest "prerequisite failed: the lab did not come up"
	finish
fi
ktap_diag "lab up: $((SECONDS - t0)) s ($LAB_ACCEL_USED; kernel $TOPO_KVER; VMs ${TOPO_VMS[*]})"

# ------------------------------------------------------------ suite runs

# client_side KIND VM: the server in the world, the client in VM.
client_side() {
	local vm=$2 name="$1 guest: client side" spid out status=0 t=$SECONDS
	local slog=$logdir/server-world-$vm.log
	# shellcheck disable=SC2046 # the command line is words
	topo_world_spawn "$slog" $(suite_server "$suite_bin" "$TOPO_WORLD_IP")
	spid=$LAB_LAST_PID
	if ! topo_world_wait_port "$suite_port"; then
		ktap_diag "$name: the server in the world did not listen on $suite_port:"
		tail -n 10 "$slog" | sed 's/^/#   /'
		lab_stop_pid "$spid" 5 || true
		ktap_ok 1 "$name"
		return
	fi
	out=$(lab_vm_exec "$vm" "$suite_timeout" \
		"$(suite_client "$guest_bin" "$TOPO_WORLD_IP" "$TOPO_WORLD_IP6")") || status=$?
	lab_stop_pid "$spid" 5 >/dev/null 2>&1 || true
	ktap_diag "$name: exit $status, $((SECONDS - t)) s"
	if ((status)); then
		ktap_diag "server log (world), its end:"
		tail -n 10 "$slog" | sed 's/^/#   /'
	fi
	subtest "$name" "$status" "$out"
}

# server_side KIND VM: the server in VM, the client in the world.
server_side() {
	local vm=$2 name="$1 guest: server side" out status=0 t=$SECONDS ip port_hex
	ip=$(topo_vm_ip "$vm")
	port_hex=$(printf '%04X' "$suite_port")
	# The server runs in the background in the guest; wait until it
	# listens (its NetKernel socket, or a native one on the baseline).
	if ! lab_vm_exec "$vm" 60 "$(suite_server "$guest_bin" 0.0.0.0) >/tmp/nk_sockets-server.log 2>&1 &
echo \$! >/tmp/nk_sockets-server.pid
i=0
until grep -Eqs ':$suite_port |:$port_hex [0-9A-F]+:0000 0A' /proc/net/netkernel /proc/net/tcp /proc/net/tcp6; do
	[ \$i -lt 100 ] || { echo 'the server does not listen'; cat /tmp/nk_sockets-server.log; exit 1; }
	sleep 0.2; i=\$((i + 1))
done" >"$logdir/server-$vm.start.log" 2>&1; then
		ktap_diag "$name: the server in $vm did not start:"
		sed 's/^/#   /' "$logdir/server-$vm.start.log"
		ktap_ok 1 "$name"
		return
	fi
	# shellcheck disable=SC2046 # the command line is words
	out=$(timeout -k 5 "$suite_timeout" ip netns exec "$TOPO_NS" \
		$(suite_client "$suite_bin" "$ip" "$(topo_vm_ip6 "$vm")") 2>&1) || status=$?
	lab_vm_exec "$vm" 30 'kill $(cat /tmp/nk_sockets-server.pid) 2>/dev/null; sleep 0.5; cat /tmp/nk_sockets-server.log' \
		>"$logdir/server-$vm.log" 2>&1 || true
	ktap_diag "$name: exit $status, $((SECONDS - t)) s"
	if ((status)); then
		ktap_diag "server log ($vm), its end:"
		tail -n 10 "$logdir/server-$vm.log" | sed 's/^/#   /'
	fi
	subtest "$name" "$status" "$out"
}

client_side netkernel vm1
server_side netkernel vm1
client_side baseline base
server_side baseline base
adv_run
prog_run

ktap_diag "engine counters after the runs:"
topo_nkctl stats 2>&1 | sed 's/^/#   /' || true
ktap_diag "nsm_kernel counters:"
lab_vm_exec "$TOPO_NSM" 30 'cat /sys/kernel/debug/nsm_kernel/*/stats' 2>&1 |
	paste -d' ' - - - - | sed 's/^/#   /' || true

# ------------------------------------------------------- consoles, engine

t0=$SECONDS
topo_down_ktap
ktap_diag "teardown: $((SECONDS - t0)) s"
finish
