#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make kselftest: the socket-semantics suite (nk_sockets, see its header
# comment and README) in real VMs, printing KTAP.
#
# One boot of the lab (tools/testing/lab/topology.sh: world namespace, hostengine,
# NSM VM, NetKernel guest vm1 without a NIC, baseline guest with an
# ordinary NIC) serves every run:
#
#   nsm on every CPU: ...          SMP_PROCS processes in vm1 at once, each
#                                  holding SMP_CONNS connections to the world
#                                  and then running SMP_CYCLES connect/close
#                                  cycles (nk_scale), against an NSM of
#                                  TOPO_NSM_SMP vCPUs (2 here unless set):
#                                  every connection made, then every NSM
#                                  socket freed and vm1's guest holding no
#                                  socket, draining socket or credit there,
#                                  and one shard per NSM CPU, each of which
#                                  served requests and events (debugfs
#                                  "shards"; nsm_main.c).  First, on a fresh
#                                  lab, so that nothing else holds sockets
#   queue pairs: ...               the NSM and vm1 each use TOPO_CARRIERS
#                                  queue pairs (2 unless set: two carriers
#                                  per VM), every pair carried messages
#                                  each way during that load, and the
#                                  engine refused none of theirs (no
#                                  protocol error: each on its pair)
#   carriers: ...                  (before the unload) vm1's carrier 1
#                                  unbound under a held connection: the
#                                  device comes back with 1 pair and serves
#                                  a download; bound again: still 1 pair
#                                  (used from the next session); every
#                                  carrier unbound and bound, carrier 0
#                                  last: 2 pairs again, a download works;
#                                  the consoles stay clean (below)
#   netkernel guest: client side   nk_sockets client in vm1, server in the world
#   netkernel guest: server side   nk_sockets server in vm1, client in the world
#   baseline guest: client side    the same, unchanged, in the baseline guest
#   baseline guest: server side
#   netkernel guest: loopback      server (on 0.0.0.0) and client both in vm1,
#                                  over 127.0.0.1 and ::1
#   netkernel guest: own address   the same over vm1's own address (the
#                                  engine's, which af_netkernel puts on nk0)
#   baseline guest: loopback, own address   the same natively
#   loopback: ...                  busybox httpd and wget http://localhost/,
#                                  redis-server and redis-cli
#                                  in each guest; vm1's loopback connections
#                                  open no socket on the NSM (programs.sh)
#   interfaces: ...                getifaddrs() and ip addr show each
#                                  guest's address on an interface that is
#                                  not loopback (programs.sh)
#   sshd, dnsmasq: ...             OpenSSH's server and dnsmasq in each
#                                  guest serve the world (programs.sh)
#   connect: ...                   vm1's connect() sleeps through one round
#                                  trip to the NSM (programs.sh)
#   adversarial: ...               floods from the world (adversarial.sh),
#                                  against the NetKernel and the baseline guest
#   guest's view: ...              Debian's ss, netstat and lsof list the
#                                  same sockets in vm1 as in the baseline
#                                  guest; ss -tin shows TCP info (vm1:
#                                  the NSM's); sock_diag requests answered
#                                  alike; /proc/net/netkernel's uid and
#                                  inode; the fallback counters
#                                  (programs.sh); rmmod af_netkernel
#   old guest: ...                 af_netkernel again with feature_mask
#                                  without NK_FEAT_URG: nk_sockets'
#                                  tcp_oob_in_stream cases, vm1 a client
#                                  (vm1's last test)
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
# usage: selftests/netkernel/run-vm.sh [TEST...]   (TEST: names of the table
# below, e.g. nk_local_lo; default all)
# Environment: NK_SUITE_TIMEOUT (seconds per suite run, default 300),
# NK_SOCKETS (a prebuilt static nk_sockets: no make; nk_flood beside it),
# NK_SUITE_ARGS (more client options, e.g. "--run tcp_msg_peek"),
# NK_FLOOD_COUNT, NK_FLOOD_SEGS, NK_FLOOD_SECS (the adversarial floods'
# bounds: datagrams, TCP segments, seconds),
# TOPO_GUEST_APPEND (default slub_debug=FZP,skbuff_head_cache),
# SMP_PROCS, SMP_CONNS, SMP_CYCLES (the nsm_smp load, default 4, 128, 200),
# TOPO_KVER, TOPO_MEM, TOPO_SMP, TOPO_NSM_SMP (default 2: the NSM serves
# on both, multi-threaded TCG), TOPO_CARRIERS (default 2),
# TOPO_GUEST_MODARGS (default queue_pairs=2), LAB_ACCEL (see
# tools/testing/lab).
# Logs: build/lab/kselftest/ (consoles, dmesg, agent logs, engine, servers).
# Scripts for the guests in single quotes are expanded by the guest.
# TEST_NAMES and TEST_DESCS are read by ktap_run_table, which runs the
# test_* functions.
# shellcheck disable=SC2016,SC2034,SC2119,SC2317
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# SLUB debugging of skbs in the NetKernel guest: a freed skb is poisoned
# (set before topology.sh, which keeps it; empty: none).
TOPO_GUEST_APPEND=${TOPO_GUEST_APPEND-slub_debug=FZP,skbuff_head_cache}
# The semantics run against an NSM serving requests on two vCPUs at once
# (qemu-smoke keeps the one-vCPU NSM), through nk devices of two queue
# pairs on two carriers each: the NSM uses one pair per vCPU, vm1 (one
# vCPU) two all the same (queue_pairs=2).
TOPO_NSM_SMP=${TOPO_NSM_SMP:-2}
TOPO_CARRIERS=${TOPO_CARRIERS:-2}
TOPO_GUEST_MODARGS=${TOPO_GUEST_MODARGS-queue_pairs=2}
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"
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
diagreq_bin=$(dirname "$suite_bin")/nk_diagreq	# programs.sh's view points
dgram_bin=$(dirname "$suite_bin")/nk_dgram
ifaddrs_bin=$(dirname "$suite_bin")/nk_ifaddrs
hold_bin=$(dirname "$suite_bin")/nk_hold	# programs.sh's connect_waits
scale_bin=$(dirname "$suite_bin")/nk_scale	# nsm_smp's load
smp_procs=${SMP_PROCS:-4}
smp_conns=${SMP_CONNS:-128}
smp_cycles=${SMP_CYCLES:-200}

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

# ------------------------------------------------------------- the tests
# One point per entry, in this order (test_NAME, below), then topo_down_ktap's
# points: "console clean" for nsm, vm1 and base, and the engine's stop.

# The suite's runs come before nginx, whose connections closed by the
# server leave port 80 in TIME_WAIT for a minute (bind_privileged_port
# binds it).
TEST_NAMES=(
	nsm_smp queue_pairs nk_client nk_server base_client base_server
	nk_local_lo nk_local_own base_local_lo base_local_own
	adv_udp_flood_nk adv_udp_flood_base adv_tcp_flood_nk adv_tcp_flood_base
	nginx_nk nginx_base
	httpd_local_nk httpd_local_base redis_local_nk redis_local_base lo_nsm_free
	ifaddrs_nk ifaddrs_base ifaddrs_reload sshd_nk sshd_base dnsmasq_nk dnsmasq_base
	connect_waits view_ss view_ssinfo view_netstat view_lsof view_diag view_proc
	view_fallback carrier_unbind view_unload nk_no_urg

)
TEST_DESCS=(
	"nsm on every CPU: $smp_procs processes' connections at once, every NSM socket and charge freed, every CPU serving"
	"queue pairs: the NSM and vm1 use $TOPO_CARRIERS each, every one carried messages both ways"
	"netkernel guest: client side"
	"netkernel guest: server side"
	"baseline guest: client side"
	"baseline guest: server side"
	"netkernel guest: loopback (127.0.0.1, ::1)"
	"netkernel guest: own address"
	"baseline guest: loopback (127.0.0.1, ::1)"
	"baseline guest: own address"
	"adversarial: udp flood, vm1"
	"adversarial: udp flood, base"
	"adversarial: tcp 1-byte segments, vm1"
	"adversarial: tcp 1-byte segments, base"
	"nginx, Debian's default configuration: vm1 serves a file to the world"
	"nginx, Debian's default configuration: base serves a file to the world"
	"busybox httpd and wget http://localhost/ in vm1"
	"busybox httpd and wget http://localhost/ in base"
	"redis-server and redis-cli, Debian's redis.conf, in vm1"
	"redis-server and redis-cli, Debian's redis.conf, in base"
	"netkernel guest: loopback connections cost the NSM nothing"
	"interfaces: getifaddrs() and ip addr show vm1's address on a non-loopback interface"
	"interfaces: getifaddrs() and ip addr show base's address on a non-loopback interface"
	"interfaces: a reload that changes vm1's address6 reaches its nk0"
	"sshd: vm1 accepts the world's ssh by key and runs a command"
	"sshd: base accepts the world's ssh by key and runs a command"
	"dnsmasq: vm1 answers the world's queries over IPv4 and IPv6"
	"dnsmasq: base answers the world's queries over IPv4 and IPv6"
	"connect: vm1's connect() waits for one NSM round trip, SOCKET with CONNECT"
	"guest's view: ss lists in vm1 what it lists in base"
	"guest's view: ss -tin shows the NSM's TCP info in vm1 as base shows its own"
	"guest's view: netstat lists in vm1 what it lists in base"
	"guest's view: lsof -i lists in vm1 what it lists in base"
	"guest's view: sock_diag requests answered in vm1 as in base"
	"guest's view: /proc/net/netkernel's uid and inode are ss's"
	"guest's view: fallback counters of vm1 count per reason"
	"carriers: vm1's carrier 1 unbound and bound again under a connection, then every carrier probed again"
	"guest's view: rmmod af_netkernel gives ss and /proc/net back to the kernel"
	"old guest: vm1 without NK_FEAT_URG reads through an urgent mark"
)
down_points=4	# topo_down_ktap's

ktap_begin $(($(ktap_table_count "$@") + down_points))

finish() {
	ktap_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	ktap_end
}

# ------------------------------------------------------------------ build

make_args=()
[[ -n ${NK_SOCKETS:-} ]] || make_args=(-C "$here" -j2)
if ! lab_make_static "$logdir/build-nk_sockets.log" "${make_args[@]}" -- \
	"$suite_bin" "$flood_bin" "$diagreq_bin" "$dgram_bin" "$ifaddrs_bin" "$hold_bin" \
	"$scale_bin"; then
	ktap_fail_rest "prerequisite failed: the suite's static programs"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$suite_bin:$guest_bin" --add "$flood_bin:$guest_flood"
	--add "$ifaddrs_bin:/usr/bin/nk_ifaddrs" --add "$hold_bin:/usr/bin/nk_hold"
	--add "$scale_bin:/usr/bin/nk_scale")
prog_initrd_args
prog_view_initrd_args "$diagreq_bin" "$dgram_bin"
topo_up_ktap --guests 1 || finish

# ------------------------------------------------------------ suite runs

# suite_report NAME STATUS T0 OUT WHERE SLOG: a suite run's end: its exit
# status and time, the end of the server's log (SLOG, in WHERE) when it
# failed, the suite's KTAP (OUT) as the subtest of NAME.  Returns non-zero
# if the run or its KTAP failed.
suite_report() {
	local name=$1 status=$2 t=$3 out=$4 where=$5 slog=$6
	ktap_diag "$name: exit $status, $((SECONDS - t)) s"
	if ((status)); then
		ktap_diag "server log ($where), its end:"
		tail -n 10 "$slog" | sed 's/^/#   /'
	fi
	ktap_subtest "$name" "$out" || status=1
	return "$status"
}

# client_side VM: the server in the world, the client in VM; the suite's
# KTAP as the subtest of the point TEST_DESC.
client_side() {
	local vm=$1 name=$TEST_DESC spid out status=0 t=$SECONDS
	local slog=$logdir/server-world-$vm.log
	# shellcheck disable=SC2046 # the command line is words
	topo_world_spawn "$slog" $(suite_server "$suite_bin" "$TOPO_WORLD_IP")
	spid=$LAB_LAST_PID
	if ! topo_world_wait_port "$suite_port"; then
		ktap_diag "$name: the server in the world did not listen on $suite_port:"
		tail -n 10 "$slog" | sed 's/^/#   /'
		lab_stop_pid "$spid" 5 || true
		return 1
	fi
	out=$(lab_vm_exec "$vm" "$suite_timeout" \
		"$(suite_client "$guest_bin" "$TOPO_WORLD_IP" "$TOPO_WORLD_IP6")") || status=$?
	lab_stop_pid "$spid" 5 >/dev/null 2>&1 || true
	suite_report "$name" "$status" "$t" "$out" world "$slog"
}

# vm_server_start VM LOG: the suite's server in the background in VM, on
# the wildcard; returns once it listens (its NetKernel socket, or a native
# one on the baseline), or fails with LOG, what starting it said, shown.
vm_server_start() {
	local vm=$1 log=$2
	if ! vm_server_spawn "$vm" >"$log" 2>&1; then
		ktap_diag "$TEST_DESC: the server in $vm did not start:"
		sed 's/^/#   /' "$log"
		return 1
	fi
}

vm_server_spawn() {
	local vm=$1
	lab_vm_exec "$vm" 60 "$(suite_server "$guest_bin" 0.0.0.0) >/tmp/nk_sockets-server.log 2>&1 &
echo \$! >/tmp/nk_sockets-server.pid
. /lib/nk-lab.sh
nk_wait_listen tcp $suite_port 'the server' /tmp/nk_sockets-server.log"
}

# vm_server_stop VM: stop it; its log to stdout.
vm_server_stop() {
	lab_vm_exec "$1" 30 'kill $(cat /tmp/nk_sockets-server.pid) 2>/dev/null; sleep 0.5; cat /tmp/nk_sockets-server.log'
}

# local_side VM ADDR ADDR6: server and client both in VM, the client
# reaching the server at ADDR (and ADDR6); the suite's KTAP as the subtest
# of the point TEST_DESC.
local_side() {
	local vm=$1 name=$TEST_DESC out status=0 t=$SECONDS
	vm_server_start "$vm" "$logdir/server-$vm-local.start.log" || return 1
	out=$(lab_vm_exec "$vm" "$suite_timeout" \
		"$(suite_client "$guest_bin" "$2" "$3")") || status=$?
	vm_server_stop "$vm" >"$logdir/server-$vm-local-$2.log" 2>&1 || true
	suite_report "$name" "$status" "$t" "$out" "$vm" "$logdir/server-$vm-local-$2.log"
}

# server_side VM: the server in VM, the client in the world; the suite's
# KTAP as the subtest of the point TEST_DESC.
server_side() {
	local vm=$1 name=$TEST_DESC out status=0 t=$SECONDS ip
	ip=$(topo_vm_ip "$vm")
	vm_server_start "$vm" "$logdir/server-$vm.start.log" || return 1
	# shellcheck disable=SC2046 # the command line is words
	out=$(timeout -k 5 "$suite_timeout" ip netns exec "$TOPO_NS" \
		$(suite_client "$suite_bin" "$ip" "$(topo_vm_ip6 "$vm")") 2>&1) || status=$?
	vm_server_stop "$vm" >"$logdir/server-$vm.log" 2>&1 || true
	suite_report "$name" "$status" "$t" "$out" "$vm" "$logdir/server-$vm.log"
}

# nsm_smp: see the header.  The shards' counters and the NSM's per-CPU
# time (/proc/stat, for the log) before and after the load.
nsm_debugfs() {	# FILE: the NSM's debugfs FILE of its nk device
	topo_exec "$TOPO_NSM" 30 "cat /sys/kernel/debug/nsm_kernel/*/$1"
}
nsm_cpu_ticks() {	# "cpuN user+system ticks" per CPU of the NSM
	topo_exec "$TOPO_NSM" 30 'cat /proc/stat' |
		awk '$1 ~ /^cpu[0-9]+$/ { print $1, $2 + $3 + $4 + $7 + $8 }'
}
test_nsm_smp() {
	local out rc=0 t=$SECONDS sh0 sh1 cpus nsocks guests i tk0 tk1
	local hold=$((smp_procs * smp_conns)) cyc=$((smp_procs * smp_cycles))
	topo_world_spawn "$logdir/smp-serve-hold.log" "$scale_bin" serve "$TOPO_WORLD_IP" 9300
	topo_world_spawn "$logdir/smp-serve-cycles.log" "$scale_bin" serve "$TOPO_WORLD_IP" 9301 --close-first
	if ! { topo_world_wait_port 9300 && topo_world_wait_port 9301; }; then
		ktap_diag "$TEST_DESC: the servers in the world do not listen"
		return 1
	fi
	cpus=$(topo_exec "$TOPO_NSM" 10 'grep -c ^processor /proc/cpuinfo')
	sh0=$(nsm_debugfs shards)
	tk0=$(nsm_cpu_ticks)
	out=$(topo_exec vm1 900 "rm -f /tmp/smp-*; i=0
while [ \$i -lt $smp_procs ]; do
	(nk_scale hold $TOPO_WORLD_IP 9300 $smp_conns 2 >/tmp/smp-hold-\$i 2>&1
	 nk_scale cycles $TOPO_WORLD_IP 9301 $smp_cycles >/tmp/smp-cycles-\$i 2>&1) &
	i=\$((i + 1))
done
wait
cat /tmp/smp-*") || rc=1
	tk1=$(nsm_cpu_ticks)
	ktap_diag "$TEST_DESC: $smp_procs x (hold $smp_conns, cycles $smp_cycles), $((SECONDS - t)) s:" \
		"$(sort <<<"$out" | uniq -c | tr -s ' \n' ' ')"
	[[ $(grep -c "^established $smp_conns failed 0 " <<<"$out") == "$smp_procs" ]] || rc=1
	[[ $(grep -c "^established $smp_cycles failed 0 " <<<"$out") == "$smp_procs" ]] || rc=1
	# Closed sockets drain and go within a minute.
	for ((i = 0; i < 60; i++)); do
		nsocks=$(topo_nsm_stat sockets)
		[[ $nsocks != 0 ]] || break
		sleep 1
	done
	sh1=$(nsm_debugfs shards)
	guests=$(nsm_debugfs guests)
	ktap_diag "NSM: $cpus CPUs, sockets left $nsocks; guests (guest uid sockets draining credit ...): $(sed 1d <<<"$guests" | tr '\n' ';')"
	ktap_diag "NSM CPU ticks (user+system+irq+softirq) during the load: $(join <(echo "$tk0") <(echo "$tk1") | awk '{ printf "%s %d; ", $1, $3 - $2 }')"
	ktap_diag "NSM shards (shard cpu requests processed), before: $(sed 1d <<<"$sh0" | tr '\n' ';') after: $(sed 1d <<<"$sh1" | tr '\n' ';')"
	[[ $nsocks == 0 ]] || rc=1
	# Every guest's row: no socket, draining socket or credit left.
	awk 'NR > 1 && ($3 != 0 || $4 != 0 || $5 != 0) { bad = 1 }
	     NR == 1 { hdr = 1 } END { exit !(hdr && !bad) }' <<<"$guests" || rc=1
	[[ $cpus == "$TOPO_NSM_SMP" ]] || {
		ktap_diag "the NSM has $cpus CPUs, TOPO_NSM_SMP is $TOPO_NSM_SMP"
		rc=1
	}
	# One shard per CPU, each of which served requests and looked at
	# sockets during the load (joined: shard cpu req proc cpu req proc).
	[[ $(sed 1d <<<"$sh1" | wc -l) == "$cpus" ]] || rc=1
	join <(sed 1d <<<"$sh0" | sort) <(sed 1d <<<"$sh1" | sort) |
		awk -v n="$cpus" '{ k++ } $6 <= $3 || $7 <= $4 { bad = 1 }
			END { exit !(k == n && !bad) }' || rc=1
	return $rc
}
# queue_pairs: see the header.  Each line of nk_pairs: the pairs in use,
# the messages received on each pair, those sent on each.
nk_pairs() {	# VM
	topo_exec "$1" 30 'for d in /sys/bus/virtio/devices/virtio*/nk; do
	p=$(cat $d/pairs 2>/dev/null) || continue
	echo "$p $(cat $d/pair_rx_msgs) $(cat $d/pair_tx_msgs)"
done'
}
test_queue_pairs() {
	local vm ep out perr rc=0
	for vm in "$TOPO_NSM" vm1; do
		out=$(nk_pairs "$vm") || { rc=1; continue; }
		ktap_diag "$vm: pairs, messages in on each, out on each: $out"
		awk -v n="$TOPO_CARRIERS" 'NR == 1 && $1 == n && NF == 1 + 2 * n {
			ok = 1; for (i = 2; i <= NF; i++) if ($i == 0) ok = 0 }
			END { exit !(ok && NR == 1) }' <<<"$out" || rc=1
	done
	# Every message of the drivers came on its socket's pair: the
	# engine refused none (NK_PERR_PAIR, as every protocol error).
	for ep in nsm0 vm1; do
		perr=$(topo_ep_counter "$ep" proto_errors)
		[[ $perr == 0 ]] || { ktap_diag "$ep: the engine counted $perr protocol errors"; rc=1; }
	done
	return $rc
}
# carrier_unbind: see the header.  vm1's carriers by their nk/ directory:
# carrier 0's has the attributes, another carrier's is empty.
test_carrier_unbind() {
	local out
	out=$(topo_exec vm1 120 '. /lib/nk-lab.sh
D=/sys/bus/virtio/drivers/af_netkernel
c0=; c1=
for d in /sys/bus/virtio/devices/virtio*; do
	[ -d $d/nk ] || continue
	if [ -e $d/nk/features ]; then c0=${d##*/}; else c1=${d##*/}; fi
done
[ -n "$c0" ] && [ -n "$c1" ] || { echo "carriers: 0 $c0, 1 $c1"; exit 1; }
pairs() { cat /sys/bus/virtio/devices/$c0/nk/pairs 2>/dev/null; }
wait_pairs() {	# N: the device ready again with N pairs, within 20 s
	i=0
	until [ "$(pairs)" = "$1" ]; do
		[ $i -lt 100 ] || { echo "pairs $(pairs), not $1"; return 1; }
		sleep 0.2; i=$((i + 1))
	done
}
get() { wget -q -O /dev/null '"$TOPO_FILE_URL"' && echo "$1: download ok"; }
nk_hold '"$TOPO_WORLD_IP $TOPO_HTTP_PORT"' >/dev/null 2>&1 &
echo "pairs $(pairs)"
echo $c1 >$D/unbind
wait_pairs 1 && get "carrier 1 unbound, pairs 1" || exit 1
echo $c1 >$D/bind
sleep 1
[ "$(pairs)" = 1 ] && get "carrier 1 bound again, pairs still 1" || exit 1
echo $c0 >$D/unbind; echo $c1 >$D/unbind; echo $c1 >$D/bind; echo $c0 >$D/bind
wait_pairs 2 && get "every carrier probed again, pairs 2" || exit 1
dmesg | grep -c "uses it from its next session"') || { ktap_diag "carrier_unbind:" "$out"; return 1; }
	ktap_diag "carrier_unbind: $(tr '\n' ';' <<<"$out")"
	grep -q "^pairs 2$" <<<"$out" && grep -q "pairs 2: download ok" <<<"$out"
}
test_nk_client() { client_side vm1; }
test_nk_server() { server_side vm1; }
test_base_client() { client_side "$TOPO_BASE"; }
test_base_server() { server_side "$TOPO_BASE"; }
test_adv_udp_flood_nk() { adv_udp_flood vm1; }
test_adv_udp_flood_base() { adv_udp_flood "$TOPO_BASE"; }
test_adv_tcp_flood_nk() { adv_tcp_flood vm1; }
test_adv_tcp_flood_base() { adv_tcp_flood "$TOPO_BASE"; }
test_nginx_nk() { prog_nginx vm1; }
test_nginx_base() { prog_nginx "$TOPO_BASE"; }
test_nk_local_lo() { local_side vm1 127.0.0.1 ::1; }
test_nk_local_own() { local_side vm1 "$(topo_vm_ip vm1)" "$(topo_vm_ip6 vm1)"; }
test_base_local_lo() { local_side "$TOPO_BASE" 127.0.0.1 ::1; }
test_base_local_own() { local_side "$TOPO_BASE" "$(topo_vm_ip "$TOPO_BASE")" "$(topo_vm_ip6 "$TOPO_BASE")"; }
test_httpd_local_nk() { prog_httpd_local vm1; }
test_httpd_local_base() { prog_httpd_local "$TOPO_BASE"; }
test_redis_local_nk() { prog_redis_local vm1; }
test_redis_local_base() { prog_redis_local "$TOPO_BASE"; }
test_lo_nsm_free() { prog_lo_nsm_free; }
test_ifaddrs_nk() { prog_ifaddrs vm1; }
test_ifaddrs_base() { prog_ifaddrs "$TOPO_BASE"; }
test_ifaddrs_reload() { prog_ifaddrs_reload; }
test_sshd_nk() { prog_sshd vm1; }
test_sshd_base() { prog_sshd "$TOPO_BASE"; }
test_dnsmasq_nk() { prog_dnsmasq vm1; }
test_dnsmasq_base() { prog_dnsmasq "$TOPO_BASE"; }
test_connect_waits() { prog_connect_waits; }
test_view_ss() { prog_view_ss; }
test_view_ssinfo() { prog_view_ssinfo; }
test_view_netstat() { prog_view_netstat; }
test_view_lsof() { prog_view_lsof; }
test_view_diag() { prog_view_diag; }
test_view_proc() { prog_view_proc; }
test_view_fallback() { prog_view_fallback; }
test_view_unload() { prog_view_unload; }	# vm1 has no NetKernel after it

# vm1 as a guest from before urgent data: af_netkernel loaded again with
# feature_mask without NK_FEAT_URG (bit 6), the engine then marks no
# socket NK_SOCK_URG; the urgent byte must not stop the stream at the NSM
# (nk_sockets' tcp_oob_in_stream cases, vm1 receiving and sending).
test_nk_no_urg() {
	local out
	out=$(lab_vm_exec vm1 60 'i=0
while [ -d /sys/module/af_netkernel ] && ! rmmod af_netkernel 2>/tmp/no-urg-rmmod; do
	[ $i -lt 50 ] || { cat /tmp/no-urg-rmmod; exit 1; }
	sleep 0.2; i=$((i + 1))
done
insmod /lib/modules/$(uname -r)/extra/af_netkernel.ko feature_mask=63 || exit 1
i=0
until f=$(cat /sys/bus/virtio/devices/*/nk/features 2>/dev/null) && [ -n "$f" ]; do
	[ $i -lt 100 ] || { echo "no nk device ready"; exit 1; }
	sleep 0.2; i=$((i + 1))
done
echo "features agreed: $f"
[ $(( f & 64 )) -eq 0 ] || { echo "NK_FEAT_URG agreed"; exit 1; }
i=0
until ip -o -4 addr show dev nk0 2>/dev/null | grep -q inet; do
	[ $i -lt 100 ] || { echo "no address on nk0"; exit 1; }
	sleep 0.2; i=$((i + 1))
done') || {
		ktap_diag "$TEST_DESC: reloading af_netkernel:" "$out"
		return 1
	}
	ktap_diag "$TEST_DESC: $out"
	NK_SUITE_ARGS="--run tcp_oob_in_stream" client_side vm1
}

ktap_run_table "$@"

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
