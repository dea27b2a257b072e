#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Failures of shared parts, end to end in one VM lab (an NSM and vm1, the
# VMs reconnecting to a restarted engine).  Each case holds a TCP
# connection from vm1 to the world open (nk_hold), breaks something, and
# asserts what the issue asks of NetKernel:
#
#   socket_abandoned  vm1's first call on a new socket that makes its
#                   socket on the NSM (a wildcard bind: nk_hold socket)
#                   given up (the reply timeout) while
#                   the NSM's QEMU is stopped with SIGSTOP (no vhost-user
#                   stop: the session stays): once the NSM runs again and
#                   creates the socket late, vm1 closes it, and neither the
#                   NSM nor the engine holds more sockets than before
#   accept_abandoned  the same for accept() with a connection waiting:
#                   the world's end of the connection the NSM accepted
#                   late sees it closed, and no socket is left
#   ss_info_frozen  three TCP connections held from vm1 while the NSM's
#                   QEMU is stopped: ss -tin lists them within SS_INFO_MS
#                   (one tcp_info wait, NK_DIAG_INFO_TIMEOUT_MS, and no
#                   more), without TCP info; once the NSM runs again,
#                   ss -tin shows each one's rtt and cwnd
#   stop_cont       vm1's QEMU stop and cont (vhost-user stop and start):
#                   the engine ends vm1's session; vm1 notices, its held
#                   connection ends with ECONNRESET, the world's end is
#                   closed, and a download works again without any action
#                   in the guest
#   stop_cont_dgram across that lost session, a bound UDP socket (nk_dgram):
#                   sendto fails with ENETDOWN (never EPIPE, no SIGPIPE),
#                   recv reports ENETDOWN once, then waits (never 0)
#   engine_restart  the engine killed with SIGKILL and started again: both
#                   VMs reconnect and say HELLO again within the bound, the
#                   held connection ends with ECONNRESET, the world's end
#                   is closed, and a download works again
#   ring_full       the engine stopped (SIGSTOP), so vm1's requestqs fill
#                   (a connection per queue pair, the listener's included):
#                   non-blocking send()s, a recv(MSG_DONTWAIT) that owes
#                   the NSM a CREDIT while another thread's setsockopt()
#                   waits for the ring, that setsockopt() once signalled
#                   (EINTR), accept() on a non-blocking listener with a
#                   connection waiting (EAGAIN: the ACCEPT cannot go out),
#                   and close() each return within STALL_MS instead of
#                   waiting for ring space (nk_stall)
#   live_endpoints  while vm1 streams to the world through the NSM ("yes"
#                   into nc; the world checks every byte and the longest
#                   pause between two reads), vm2 is added to the running
#                   engine (nkctl add), booted, used (a verified download),
#                   detached (its downloads fail), removed, and then added
#                   by the configuration file and a SIGHUP and removed by
#                   the file and a SIGHUP: vm1's stream sees no error and no
#                   pause over LIVE_GAP_S, the engine is never restarted
#   nsm_dies        the NSM VM killed: the held connection ends with
#                   ECONNRESET within 1 s, a new connection fails at once
#                   with a clear errno; the NSM booted again, a download
#                   works without any action in the guest
#   nsm_dies_dgram  across that same death, a UDP socket and a TCP
#                   listener bound before it (nk_dgram): without an NSM,
#                   sendto fails as native UDP would (never EPIPE, no
#                   SIGPIPE) and recv waits (never 0); with the NSM back,
#                   the same UDP socket exchanges a datagram with the
#                   world and the listener accepts a world connection
#   guest_dies      vm1 killed: within 1 s the world's end of its held
#                   connection is closed, and the engine and the NSM hold
#                   no socket for it any more
#   console clean   no WARN, BUG, oops, hung task or lockdep report in
#                   either VM (in every boot); the last engine stops
#                   cleanly
#
# KTAP.  Logs in build/lab/resilience/.  Environment as for run-vm.sh;
# NK_RESILIENCE_CASES="socket_abandoned ..." runs only the cases named.
# TEST_NAMES and TEST_DESCS are read by ktap_run_table, which runs the
# test_* functions.
# shellcheck disable=SC2034,SC2317
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# Each failure is met with two queue pairs on two carriers on each side
# (set before topology.sh, which keeps them): the NSM and vm1 have one vCPU,
# which takes the pairs in turn (queue_pairs=2).
TOPO_CARRIERS=${TOPO_CARRIERS:-2}
TOPO_GUEST_MODARGS=${TOPO_GUEST_MODARGS-queue_pairs=$TOPO_CARRIERS}
TOPO_NSM_MODARGS=${TOPO_NSM_MODARGS-queue_pairs=$TOPO_CARRIERS}
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

logdir=$top/build/lab/resilience
hold_bin=$here/nk_hold		# built by make -C selftests/netkernel
stall_bin=$here/nk_stall
dgram_bin=$here/nk_dgram
# Seconds from the failure's end to a guest served again, and to the
# held connection's error: the issue's bounds.
READY_S=5
RESET_S=5
# The NSM's or a guest's death: its peers reset within this (seconds).
DEATH_S=1
# A non-blocking call, or close(), on a full requestq returns within this (ms).
STALL_MS=100
# vm1's stream may pause at most this long while endpoints come and go (s).
LIVE_GAP_S=1
# ss -tin with the NSM stopped lists vm1's connections within this (ms):
# af_netkernel waits one second for one tcp_info, then asks no more.
SS_INFO_MS=2500

rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS

# One point per case, in this order (test_NAME, below), each named after
# its case, then topo_down_ktap's points: "console clean" for nsm and vm1,
# and the engine's stop.
TEST_NAMES=(socket_abandoned accept_abandoned ss_info_frozen stop_cont stop_cont_dgram engine_restart ring_full
	live_endpoints nsm_dies nsm_dies_dgram guest_dies)
TEST_DESCS=("${TEST_NAMES[@]}")
down_points=3
# NK_RESILIENCE_CASES="a b": only these cases (in the order above).
read -ra cases <<<"${NK_RESILIENCE_CASES:-}"
ktap_begin $(($(ktap_table_count "${cases[@]}") + down_points))

finish() {
	ktap_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	ktap_end
}

if ! make -C "$here" -j2 >"$logdir/build-tests.log" 2>&1; then
	ktap_diag "make -C selftests/netkernel failed:" "$(tail -n 20 "$logdir/build-tests.log")"
	ktap_fail_rest "prerequisite failed: nk_hold does not build"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$hold_bin:/usr/bin/nk_hold" --add "$stall_bin:/usr/bin/nk_stall"
	--add "$dgram_bin:/usr/bin/nk_dgram" --bin /usr/bin/ss)
TOPO_NK_RECONNECT=1
topo_up_ktap --guests 1 --no-base || finish

# hold_start N: a world listener on port 9100+N that never sends or
# closes, and nk_hold in vm1 connected to it; 1 if either fails.
WORLD_PID=
hold_start() {
	local port=$((9100 + $1))
	# It ends when the connection does, by FIN or RST.
	topo_world_spawn "$logdir/world-$1.log" python3 -c "
import socket
s = socket.create_server(('$TOPO_WORLD_IP', $port))
c, _ = s.accept()
c.settimeout(600)
while c.recv(4096):
    pass"
	WORLD_PID=$LAB_LAST_PID
	topo_world_wait_port "$port" || { ktap_diag "the world does not listen on $port"; return 1; }
	topo_exec vm1 30 "nk_hold $TOPO_WORLD_IP $port >/tmp/hold-$1 2>&1 &
. /lib/nk-lab.sh
nk_wait_for /tmp/hold-$1 connected || { cat /tmp/hold-$1; exit 1; }" >"$logdir/hold-$1.start" 2>&1 || {
		ktap_diag "nk_hold did not connect:" "$(cat "$logdir/hold-$1.start")"
		return 1
	}
}

# hold_ended N SECONDS: the held connection ended with ECONNRESET within
# SECONDS of the guest looking (its agent's own delay comes on top).
hold_ended() {
	local out
	out=$(topo_exec vm1 $(($2 + 10)) "i=0
until grep -q ended /tmp/hold-$1; do
	[ \$i -lt $(($2 * 10)) ] || break
	sleep 0.1; i=\$((i + 1))
done
cat /tmp/hold-$1; echo \"looked \$i\"") || true
	ktap_diag "nk_hold: $(grep ended <<<"$out"), seen after $(($(sed -n 's/^looked //p' <<<"$out") * 100)) ms"
	grep -q '^ended ECONNRESET' <<<"$out"
}

# world_closed SECONDS: the world's listener saw its connection end.
world_closed() {
	lab_wait_pid "$WORLD_PID" "$1" >/dev/null 2>&1
	if lab_alive "$WORLD_PID"; then
		ktap_diag "the world's end of the connection is still open"
		lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
		return 1
	fi
}

# hold_check N: the held connection ended with ECONNRESET within RESET_S,
# and the world's listener saw its end (the NSM closed its socket).
hold_check() {
	hold_ended "$1" "$RESET_S" && world_closed "$RESET_S"
}

# served_again: the download works and its sha256 is the world's, and the
# NSM and vm1 use all their queue pairs again (TOPO_CARRIERS each).
served_again() {
	local sum pairs
	sum=$(topo_exec vm1 60 "wget -q -O- $TOPO_FILE_URL | sha256sum") || return 1
	[[ ${sum%% *} == "$TOPO_FILE_SHA" ]] || { ktap_diag "download: $sum"; return 1; }
	# Every carrier came back: the sessions use all the queue pairs.
	pairs=$(topo_nkctl --json list | python3 -c 'import json, sys
print(" ".join(sorted("%s=%d" % (e["name"], e["pairs"])
                      for e in json.load(sys.stdin)["endpoints"]
                      if e["name"] in ("nsm0", "vm1"))))')
	[[ $pairs == "nsm0=$TOPO_CARRIERS vm1=$TOPO_CARRIERS" ]] ||
		{ ktap_diag "queue pairs in use: $pairs, not $TOPO_CARRIERS each"; return 1; }
}

# wait_ready T0 NAME...: the endpoints ready within READY_S of T0 (SECONDS).
wait_ready() {
	local t0=$1 left
	shift
	left=$((t0 + READY_S - SECONDS))
	if ((left < 1)) || ! topo_ep_wait_ready "$left" "$@"; then
		ktap_diag "not ready within $READY_S s: $(topo_nkctl list 2>&1 | tr '\n' ';')"
		return 1
	fi
	ktap_diag "$* ready again after $((SECONDS - t0)) s"
}

# The guest's reply timeout (ms) while a case waits for a call to give up.
REPLY_MS=2000

# guest_reply_timeout MS: af_netkernel's reply_timeout_ms in vm1.
guest_reply_timeout() {
	topo_exec vm1 10 "echo $1 >/sys/module/af_netkernel/parameters/reply_timeout_ms" >/dev/null
}

# counts_back N0 G0: within a few seconds the NSM holds N0 sockets and the
# engine G0 sockets of vm1 again.
counts_back() {
	local n1 g1 i
	for ((i = 0; i < 10; i++)); do
		n1=$(topo_nsm_stat sockets)
		g1=$(topo_ep_sockets vm1) || true
		[[ $n1 == "$1" && $g1 == "$2" ]] && break
		sleep 0.5
	done
	ktap_diag "NSM sockets: $1 before, $n1 after; engine sockets of vm1: $2 before, $g1 after"
	[[ $n1 == "$1" && $g1 == "$2" ]]
}

test_socket_abandoned() {
	local n0 g0 out
	n0=$(topo_nsm_stat sockets)
	g0=$(topo_ep_sockets vm1) || return 1
	guest_reply_timeout "$REPLY_MS" || return 1
	topo_nsm_freeze
	out=$(topo_exec vm1 20 "nk_hold socket") || true
	topo_nsm_thaw
	guest_reply_timeout 10000 || return 1
	ktap_diag "socket() and bind() while the NSM is stopped: $out"
	[[ $out == "socket ETIMEDOUT" ]] || return 1
	counts_back "$n0" "$g0"
}

test_accept_abandoned() {
	local n0 g0 out port=9200 ip
	ip=$(topo_guest_ip vm1)
	n0=$(topo_nsm_stat sockets)
	g0=$(topo_ep_sockets vm1) || return 1
	topo_exec vm1 20 "nk_hold accept $port >/tmp/acc 2>&1 &
echo \$! >/tmp/acc.pid
. /lib/nk-lab.sh
nk_wait_for /tmp/acc listening || { cat /tmp/acc; exit 1; }" >"$logdir/accept.start" 2>&1 || {
		ktap_diag "nk_hold accept did not listen:" "$(cat "$logdir/accept.start")"
		return 1
	}
	# The world's end: how its connection ends (EOF or a reset).
	topo_world_spawn "$logdir/world-accept.log" python3 -c "
import socket
c = socket.create_connection(('$ip', $port), timeout=10)
print('connected', flush=True)
c.settimeout(30)
try:
    print('ended', 'EOF' if not c.recv(1) else 'data', flush=True)
except OSError as e:
    print('ended', type(e).__name__, flush=True)"
	WORLD_PID=$LAB_LAST_PID
	topo_exec vm1 20 ". /lib/nk-lab.sh
nk_wait_for /tmp/acc pending 15 || { cat /tmp/acc; exit 1; }" >"$logdir/accept.pending" 2>&1 || {
		ktap_diag "no connection pending in vm1:" "$(cat "$logdir/accept.pending" "$logdir/world-accept.log")"
		return 1
	}
	guest_reply_timeout "$REPLY_MS" || return 1
	topo_nsm_freeze
	out=$(topo_exec vm1 20 "kill -USR1 \$(cat /tmp/acc.pid)
. /lib/nk-lab.sh
nk_wait_for /tmp/acc '^accept'
cat /tmp/acc") || true
	topo_nsm_thaw
	guest_reply_timeout 10000 || return 1
	ktap_diag "accept() while the NSM is stopped: $(tail -n 1 <<<"$out")"
	grep -q '^accept ETIMEDOUT' <<<"$out" || return 1
	world_closed 10 || return 1
	ktap_diag "the world's end: $(tail -n 1 "$logdir/world-accept.log")"
	grep -Eq '^ended (EOF|ConnectionResetError)' "$logdir/world-accept.log" || return 1
	counts_back "$n0" "$g0"
}

# ss_info_lines: vm1's ss -tin lines of the connections to port 9160, one
# line each, then "ms N", how long ss took (from /proc/uptime).
ss_info_lines() {
	topo_exec vm1 30 'read -r a _ </proc/uptime
ss -HOtin >/tmp/ss-info
read -r b _ </proc/uptime
grep -E ":9160( |$)" /tmp/ss-info
awk -v a="$a" -v b="$b" "BEGIN { print \"ms\", int((b - a) * 1000) }"'
}

test_ss_info_frozen() {
	local port=9160 out ms i rc=0
	topo_world_spawn "$logdir/world-ss-info.log" python3 -c "
import socket, time
s = socket.create_server(('$TOPO_WORLD_IP', $port))
held = [s.accept() for _ in range(3)]
time.sleep(600)"
	WORLD_PID=$LAB_LAST_PID
	topo_world_wait_port "$port" || { ktap_diag "the world does not listen on $port"; return 1; }
	topo_exec vm1 30 "for n in 1 2 3; do (sleep 600 | nc $TOPO_WORLD_IP $port >/dev/null 2>&1 &); done
i=0
until [ \$(ss -Htn | grep -cE ':$port( |\$)') -eq 3 ]; do
	[ \$i -lt 100 ] || { ss -tn; exit 1; }
	sleep 0.1; i=\$((i + 1))
done" >"$logdir/ss-info.start" 2>&1 || {
		ktap_diag "the connections did not open:" "$(cat "$logdir/ss-info.start")"
		lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
		return 1
	}
	topo_nsm_freeze
	out=$(ss_info_lines) || rc=1
	topo_nsm_thaw
	ktap_diag "ss -tin while the NSM is stopped:" "$out"
	ms=$(sed -n 's/^ms //p' <<<"$out")
	[[ $(grep -c ESTAB <<<"$out") -eq 3 ]] || rc=1
	! grep -q ' rtt:' <<<"$out" || rc=1
	[[ -n $ms ]] && ((ms <= SS_INFO_MS)) || rc=1
	# The NSM catches up on what it missed first: up to 5 s.
	for ((i = 0; i < 10; i++)); do
		out=$(ss_info_lines) || true
		[[ $(grep -E -c ' rtt:.* cwnd:' <<<"$out") -eq 3 ]] && break
		sleep 0.5
	done
	ktap_diag "ss -tin once the NSM runs again:" "$out"
	[[ $(grep -E -c ' rtt:.* cwnd:' <<<"$out") -eq 3 ]] || rc=1
	topo_exec vm1 10 'kill $(pidof nc) 2>/dev/null' >/dev/null || true
	lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
	return "$rc"
}

test_stop_cont() {
	local t0
	hold_start 1 || return 1
	dgram_start 9211 || return 1
	lab_vm_monitor vm1 stop >/dev/null
	sleep 1
	lab_vm_monitor vm1 cont >/dev/null
	t0=$SECONDS
	hold_check 1 || return 1
	wait_ready "$t0" vm1 || return 1
	served_again || return 1
	topo_exec vm1 10 'dmesg | grep -c "lost endpoint"' >/dev/null || {
		ktap_diag "vm1's kernel log does not say its session was lost"
		return 1
	}
	dgram_cmd probe 5 >"$logdir/dgram-lost.out" 2>&1 || true
	dgram_quit
}

# Across stop_cont's lost session: nk_dgram's UDP socket.
test_stop_cont_dgram() {
	local out rc=0
	[[ -s $logdir/dgram-lost.out ]] || { ktap_diag "stop_cont did not get to the probe"; return 1; }
	out=$(cat "$logdir/dgram-lost.out")
	ktap_diag "after the lost session: $(tr '\n' ';' <<<"$out")"
	grep -q '^sendto ENETDOWN ' <<<"$out" || rc=1
	grep -q '^sigpipe 0$' <<<"$out" || rc=1
	[[ $(grep '^recv ' <<<"$out" | tr '\n' ' ') == "recv ENETDOWN recv EAGAIN " ]] || rc=1
	return "$rc"
}

test_engine_restart() {
	local t0
	hold_start 2 || return 1
	topo_engine_restart KILL || return 1
	t0=$SECONDS
	wait_ready "$t0" nsm0 vm1 || return 1
	hold_check 2 || return 1
	served_again || return 1
}

test_ring_full() {
	local port=9150 lport=9151 bytes=150000 out ms pairs
	# One connection per queue pair of vm1 (nk_stall), the first sent to.
	topo_world_spawn "$logdir/world-stall.log" python3 -c "
import socket
s = socket.create_server(('$TOPO_WORLD_IP', $port))
c, _ = s.accept()
c.sendall(b'x' * $bytes)
more = []
while True:
    more.append(s.accept())"
	WORLD_PID=$LAB_LAST_PID
	topo_world_wait_port "$port" || { ktap_diag "the world does not listen on $port"; return 1; }
	topo_exec vm1 30 "rm -f /tmp/stall-go
pairs=\$(cat /sys/bus/virtio/devices/*/nk/pairs)
echo pairs=\$pairs >/tmp/stall
nk_stall $TOPO_WORLD_IP $port $bytes /tmp/stall-go $lport \$pairs >>/tmp/stall 2>&1 &
. /lib/nk-lab.sh
nk_wait_for /tmp/stall listening || { cat /tmp/stall; exit 1; }" >"$logdir/stall.start" 2>&1 || {
		ktap_diag "nk_stall does not listen:" "$(cat "$logdir/stall.start")"
		lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
		return 1
	}
	# A connection that waits on nk_stall's listener, held.
	topo_world_spawn "$logdir/world-stall-conn.log" python3 -c "
import socket, time
c = socket.create_connection(('$(topo_guest_ip vm1)', $lport), timeout=20)
time.sleep(600)"
	STALL_CONN_PID=$LAB_LAST_PID
	topo_exec vm1 30 ". /lib/nk-lab.sh
nk_wait_for /tmp/stall ready 20 || { cat /tmp/stall; exit 1; }" >"$logdir/stall.ready" 2>&1 || {
		ktap_diag "nk_stall not ready:" "$(cat "$logdir/stall.ready")"
		lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
		lab_stop_pid "$STALL_CONN_PID" 1 >/dev/null 2>&1 || true
		return 1
	}
	# Nothing takes vm1's requestq now; 5 s for the calls to end.
	kill -STOP "$TOPO_ENGINE_PID"
	out=$(topo_exec vm1 30 "touch /tmp/stall-go
. /lib/nk-lab.sh
nk_wait_for /tmp/stall done 5
cat /tmp/stall") || true
	kill -CONT "$TOPO_ENGINE_PID"
	lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
	lab_stop_pid "$STALL_CONN_PID" 1 >/dev/null 2>&1 || true
	ktap_diag "engine stopped, nk_stall: $(tr '\n' ';' <<<"$out")"
	grep -q '^done' <<<"$out" || { ktap_diag "nk_stall did not finish while the engine was stopped"; return 1; }
	# Every pair's requestq, the listener's too (accept, below).
	pairs=$(sed -n 's/^pairs=//p' <<<"$out")
	[[ $pairs == "$TOPO_CARRIERS" ]] || { ktap_diag "vm1 uses $pairs queue pairs, not $TOPO_CARRIERS"; return 1; }
	grep -Eq "^send ok=[0-9]+ eagain=[1-9][0-9]* full=$pairs " <<<"$out" ||
		{ ktap_diag "not every requestq filled"; return 1; }
	ms=$(sed -n 's/^send .*max_ms=\([0-9]*\).*/\1/p' <<<"$out")
	((ms <= STALL_MS)) || return 1
	grep -q "^recv bytes=$bytes " <<<"$out" || return 1
	ms=$(sed -n 's/^recv .*ms=\([0-9]*\).*/\1/p' <<<"$out")
	((ms <= STALL_MS)) || return 1
	grep -q '^accept EAGAIN ' <<<"$out" || return 1
	ms=$(sed -n 's/^accept .*ms=\([0-9]*\).*/\1/p' <<<"$out")
	((ms <= STALL_MS)) || return 1
	# The forwarded option waited for the ring, a signal ended it.
	grep -q '^sockopt EINTR ' <<<"$out" || return 1
	ms=$(sed -n 's/^sockopt .*ms=\([0-9]*\).*/\1/p' <<<"$out")
	((ms <= STALL_MS)) || return 1
	ms=$(sed -n 's/^close ms=\([0-9]*\).*/\1/p' <<<"$out")
	((ms <= STALL_MS)) || return 1
	# The queued CREDIT and CLOSE went out once the engine ran again.
	served_again
}

# dgram_cmd CMD SECONDS: one command to vm1's nk_dgram; prints its output.
dgram_cmd() {
	topo_exec vm1 $(($2 + 10)) "n=\$(grep -c '^end ' /tmp/dgram.out)
echo '$1' >/tmp/dgram.in
i=0
while [ \$(grep -c '^end ' /tmp/dgram.out) -le \$n ]; do
	[ \$i -lt $(($2 * 10 + 20)) ] || break
	sleep 0.1; i=\$((i + 1))
done
awk -v n=\$n '/^end /{ c++; next } c == n' /tmp/dgram.out"
}

# dgram_start PORT: a UDP echo server in the world on PORT, and nk_dgram in
# vm1 with its UDP socket and TCP listener on PORT + 1 (DGRAM_LPORT); one
# datagram exchanged.
DGRAM_LPORT=
DGRAM_WORLD_PID=
dgram_start() {
	local out
	DGRAM_LPORT=$(($1 + 1))
	topo_world_spawn "$logdir/world-udp-$1.log" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$TOPO_WORLD_IP', $1))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)"
	DGRAM_WORLD_PID=$LAB_LAST_PID
	topo_exec vm1 30 "rm -f /tmp/dgram.in; mkfifo /tmp/dgram.in
nk_dgram $TOPO_WORLD_IP $1 $DGRAM_LPORT /tmp/dgram.in >/tmp/dgram.out 2>&1 &
. /lib/nk-lab.sh
nk_wait_for /tmp/dgram.out ready || { cat /tmp/dgram.out; exit 1; }" >"$logdir/dgram.start" 2>&1 || { ktap_diag "nk_dgram: $(cat "$logdir/dgram.start")"; return 1; }
	out=$(dgram_cmd "echo 10" 10) || true
	echo "$out" >"$logdir/dgram-before.out"
	grep -q '^echo ok' <<<"$out" || { ktap_diag "nk_dgram before the failure: $out"; return 1; }
}

# dgram_quit: nk_dgram in vm1 ends (its sockets closed), and the world's
# echo server.
dgram_quit() {
	topo_exec vm1 10 "echo quit >/tmp/dgram.in
i=0
while pidof nk_dgram >/dev/null && [ \$i -lt 50 ]; do
	sleep 0.1; i=\$((i + 1))
done" >/dev/null 2>&1 || true
	lab_stop_pid "$DGRAM_WORLD_PID" 1 >/dev/null 2>&1 || true
}

# live_vm2_boot: boot vm2 on its nk socket and wait until it is served.
live_vm2_boot() {
	lab_vm_start vm2 --kernel "$TOPO_KVER" --initrd "$TOPO_INITRD" \
		--mem "$TOPO_MEM" --smp "$TOPO_SMP" --agent --nk "$TOPO_RUN/run/vm2.sock" \
		--append "nk.role=guest" &&
		lab_vm_agent_wait vm2 "$TOPO_BOOT_TIMEOUT" && topo_ep_wait_ready 60 vm2
}

# live_vm2_down: vm2 powered off, its console scanned: 1 on kernel trouble.
live_vm2_down() {
	local n=$1
	lab_vm_poweroff vm2
	cp "$(lab_vm_console vm2)" "$logdir/vm2.$n.console"
	lab_console_trouble "$logdir/vm2.$n.console"
}

LIVE_STOP=$logdir/live.stop	# the world's end of vm1's stream stops when it exists
live_endpoints() {
	local port=9200 ini=$TOPO_RUN/engine.ini stop=$LIVE_STOP res=$logdir/live.result
	local ip2 sum id1 r i bytes gap bad end
	ip2=$(topo_guest_ip vm2)
	rm -f "$stop" "$res"
	# The world's end of vm1's stream: every byte checked ("y\n" repeated),
	# the longest pause between two reads measured, until $stop exists.
	topo_world_spawn "$logdir/live-world.log" python3 -c "
import os, socket, time
s = socket.create_server(('$TOPO_WORLD_IP', $port))
c, _ = s.accept()
c.settimeout(0.2)
n = bad = 0
gap = 0.0
end = 'stopped'
last = time.monotonic()
pat = b'y\\n' * 32768
while not os.path.exists('$stop'):
    try:
        d = c.recv(65536)
    except socket.timeout:
        continue
    except OSError as e:
        end = 'error %s' % e
        break
    now = time.monotonic()
    if not d:
        end = 'eof'
        break
    gap = max(gap, now - last)
    last = now
    if d != pat[n % 2:n % 2 + len(d)]:
        bad += 1
    n += len(d)
gap = max(gap, time.monotonic() - last) if end != 'stopped' else gap
open('$res', 'w').write('bytes %d max_gap %.3f bad %d end %s\\n' % (n, gap, bad, end))"
	topo_world_wait_port "$port" || { ktap_diag "the world does not listen on $port"; return 1; }
	topo_exec vm1 30 "yes | nc $TOPO_WORLD_IP $port >/tmp/live-nc 2>&1 &" >/dev/null || return 1
	id1=$(topo_nkctl --json list | python3 -c 'import json, sys
print(max(e["id"] for e in json.load(sys.stdin)["endpoints"]))')

	# vm2 added live, used, detached, removed.  The NSM takes vm2's
	# source address (it was booted for vm1 only).
	topo_exec "$TOPO_NSM" 30 "ip addr add $ip2/32 dev eth0" >/dev/null || return 1
	r=$(topo_nkctl --json add guest vm2 nsm=nsm0 "address=$ip2") || {
		ktap_diag "nkctl add: $r"
		return 1
	}
	r=$(python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["id"], r["persistent"])' <<<"$r")
	ktap_diag "vm2 added: id and persistent: $r (ids up to $id1 before)"
	[[ ${r% *} -gt $id1 && ${r#* } == False ]] || return 1
	live_vm2_boot || { ktap_diag "vm2 not served"; return 1; }
	sum=$(topo_exec vm2 60 "wget -q -O- $TOPO_FILE_URL | sha256sum") || return 1
	[[ ${sum%% *} == "$TOPO_FILE_SHA" ]] || { ktap_diag "vm2's download: $sum"; return 1; }
	topo_nkctl detach vm2 >/dev/null 2>&1 || return 1
	if topo_exec vm2 30 "wget -q -O- $TOPO_FILE_URL >/dev/null" >/dev/null 2>&1; then
		ktap_diag "vm2 downloads while detached"
		return 1
	fi
	topo_nkctl remove vm2 >/dev/null 2>&1 || return 1
	topo_nkctl remove vm2 >/dev/null 2>&1 && { ktap_diag "vm2 removed twice"; return 1; }
	live_vm2_down 1 || return 1

	# vm2 in the file: SIGHUP adds it, served again; out of it: removed.
	cp "$ini" "$ini.orig"
	printf '\n[guest:vm2]\nsocket = vm2.sock\nnsm = nsm0\naddress = %s\n' "$ip2" >>"$ini"
	topo_engine_hup "reload: $ini: 1 change(s)" || return 1
	live_vm2_boot || { ktap_diag "vm2 not served after the reload"; return 1; }
	sum=$(topo_exec vm2 60 "wget -q -O- $TOPO_FILE_URL | sha256sum") || return 1
	[[ ${sum%% *} == "$TOPO_FILE_SHA" ]] || { ktap_diag "vm2's download: $sum"; return 1; }
	cp "$ini.orig" "$ini"
	topo_engine_hup "reload: $ini: 1 change(s)" || return 1
	live_vm2_down 2 || return 1
	topo_nkctl list | awk '$1 == "vm2" { f = 1 } END { exit f }' || return 1

	# vm1's stream went on throughout.
	touch "$stop"
	for ((i = 0; i < 50; i++)); do
		[[ -s $res ]] && break
		sleep 0.1
	done
	read -r _ bytes _ gap _ bad _ end <"$res" || { ktap_diag "no result from the world"; return 1; }
	ktap_diag "vm1's stream: $bytes bytes, longest pause $gap s, $bad bad reads, end: $end"
	[[ $bytes -gt 0 && $bad == 0 && $end == stopped ]] &&
		python3 -c "import sys; sys.exit(not $gap <= $LIVE_GAP_S)"
}

# The stream ends with the case, whatever its outcome.
test_live_endpoints() {
	local rc=0
	live_endpoints || rc=1
	touch "$LIVE_STOP"
	topo_exec vm1 10 "pkill yes; pkill nc; true" >/dev/null 2>&1 || true
	return "$rc"
}

test_nsm_dies() {
	local t0 out
	hold_start 3 || return 1
	dgram_start 9201 || return 1
	topo_nsm_kill || { ktap_diag "the NSM's console before its death shows trouble"; return 1; }
	hold_ended 3 "$DEATH_S" || return 1
	# Nothing closes the world's end: the NSM is gone without a word.
	lab_stop_pid "$WORLD_PID" 1 >/dev/null 2>&1 || true
	t0=$SECONDS
	out=$(topo_exec vm1 10 "nk_hold $TOPO_WORLD_IP 9100") || true
	ktap_diag "a new connection without an NSM: $out, after $((SECONDS - t0)) s"
	grep -Eq '^connect E(NETUNREACH|NETDOWN|CONNREFUSED)' <<<"$out" || return 1
	((SECONDS - t0 <= DEATH_S + 2)) || return 1
	dgram_cmd probe 5 >"$logdir/dgram-probe.out" 2>&1 || true
	topo_nsm_start_again 240 || { ktap_diag "the NSM did not boot again"; return 1; }
	t0=$SECONDS
	topo_ep_wait_ready 60 nsm0 || { ktap_diag "nsm0 not ready after its boot"; return 1; }
	ktap_diag "nsm0 ready $((SECONDS - t0)) s after its agent"
	served_again
}

# Across nsm_dies' death: nk_dgram's UDP socket and listener.
test_nsm_dies_dgram() {
	local out rc=0
	[[ -s $logdir/dgram-probe.out ]] || { ktap_diag "nsm_dies did not get to the probe"; return 1; }
	out=$(cat "$logdir/dgram-probe.out")
	ktap_diag "without an NSM: $(tr '\n' ';' <<<"$out")"
	grep -Eq '^sendto (OK|ENETUNREACH|EHOSTUNREACH|ENETDOWN|ECONNREFUSED) ' <<<"$out" || rc=1
	grep -q '^sigpipe 0$' <<<"$out" || rc=1
	[[ $(grep -c '^recv EAGAIN$' <<<"$out") == 2 ]] || rc=1
	out=$(dgram_cmd "echo 30" 30) || true
	ktap_diag "the NSM back, UDP: $(tr '\n' ';' <<<"$out")"
	grep -q '^echo ok' <<<"$out" || rc=1
	topo_world_spawn "$logdir/world-conn.log" python3 -c "
import socket, time
t = time.time()
while time.time() - t < 40:
    try:
        socket.create_connection(('$(topo_guest_ip vm1)', $DGRAM_LPORT), timeout=1).close()
        print('connected', flush=True)
        break
    except OSError:
        time.sleep(0.3)"
	out=$(dgram_cmd "accept 30" 30) || true
	ktap_diag "the NSM back, listener: $(tr '\n' ';' <<<"$out")"
	grep -q '^accept ok' <<<"$out" || rc=1
	# Its sockets closed, so that guest_dies counts the NSM's from zero.
	dgram_quit
	return "$rc"
}

test_guest_dies() {
	local n0 n1 g1
	n0=$(topo_nsm_stat sockets)
	hold_start 4 || return 1
	kill -KILL "${LAB_VM_PID[vm1]}"
	world_closed "$DEATH_S" || return 1
	ktap_diag "the world's end closed within $DEATH_S s"
	sleep 1
	n1=$(topo_nsm_stat sockets)
	g1=$(topo_ep_sockets vm1) || true
	ktap_diag "NSM sockets: $n0 before, $n1 after; engine sockets of vm1 after: $g1"
	[[ $n0 -ge 0 && $n1 == "$n0" && $g1 == 0 ]]
}

ktap_run_table "${cases[@]}"

# vm1 was killed: its console is all there is.
topo_down_ktap vm1
finish
