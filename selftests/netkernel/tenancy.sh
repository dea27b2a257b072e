#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tenancy on a shared NSM (issue 9, items 4 and 6), adversarial guests in
# the VM lab, printing KTAP.  One boot: the NSM, vm1 (10.0.0.11,
# fd00::11) and vm2 (10.0.0.12, no IPv6 address at all: TOPO_NO_ADDR6),
# no baseline guest.  nsm_kernel.ko runs with small limits (see modargs
# below) so that an attack reaches them in seconds.  Test points:
#
#   1. vm2 has no IPv6 address: its IPV6_V6ONLY wildcard bind answers
#      EADDRNOTAVAIL (the NSM's own [::] before).
#   2. SO_REUSEPORT, which groups sockets of one uid only: vm1's and vm2's
#      kernel sockets have owners of their own, not root (all root before).
#   3. Broadcast: vm1's datagrams to 10.0.0.255 and 255.255.255.255, with
#      SO_BROADCAST, answer EACCES (the NSM's own UDP services heard them).
#      A datagram the NSM refuses fails asynchronously in the guest, as
#      the socket's pending error (nk_tenancy sendto waits for it).
#   4. Link-local destinations: 169.254.1.1 (routed on the NSM for this
#      test), fe80::1%2 (the NSM's eth0) and ff02::1%2 answer ENETUNREACH,
#      for datagrams and connects.
#   5. guest_max_socks: vm1 gets ENFILE at its limit (from the bind that
#      makes a socket's NSM half), counted in vm1's sock_limit (debugfs
#      guests); vm2 still opens.
#   6. The engine's per-guest limits (issue 14 item 4), set for vm2 by a
#      reload of the engine's file: vm2 opens sockets until refused (EMFILE
#      at max_sockets, below the NSM's guest_max_socks, from the bind that
#      makes a socket's NSM half, the engine's socket_limit counting) and
#      keeps trying while vm1 downloads the file (sha256 checked) and
#      connects $vm1_conns times without one error or count against it;
#      then vm2's connect loop meets max_conn_rate (EAGAIN, conn_rate_limit
#      counting).  The file as it was is reloaded.
#   7. Weights in the NSM's credit (issue 14 item 5): with vm2's weight 3
#      (a reload), vm2's new connection gets buf_alloc * 3 of credit from
#      the NSM (6 MiB, above the 4 MiB that capped it before), vm1's
#      buf_alloc (2 MiB), as each guest's /proc/net/netkernel shows.
#   8. The NSM's request turns (issue 14 item 5): with the NSM's VM
#      stopped, vm2 sends $turns_n datagrams, each a SEND the engine puts
#      in the NSM's eventq, then vm1 one.  Once the NSM runs again, the
#      world gets vm1's among the first three (one turn of vm2's, weight
#      1, ahead of it), not after vm2's $turns_n as first come, first
#      served gave.
#   9. The same with nsm_kernel's rq_slice_us at 100: vm1's datagram is
#      still among the first three, and rq_work's run of vm2's backlog is
#      not sliced (debugfs stats rq_slices stays), as no guest was light
#      before; beside vm2's flood (11.), where vm1 is light, rq_work's runs
#      are sliced (rq_slices grows).
#  10. A lighter guest's receive buffers (issue 14 item 5): vm1 and
#      vm2 (weight 3) download from the world at once; while vm2's stream
#      competes, the NSM makes vm1's stream's receive buffer smaller
#      (rcvbuf_cuts grows), and gives it back once vm2's download ends.
#  11. Sparse guests (issue 14 item 5): while vm2 floods the NSM with
#      small requests, vm1's requests (one at a time) are served in the
#      NSM's high-priority lane ($sparse_min or more in debugfs guests,
#      and $sparse_pct% of them or more) and vm2's are not (fewer than
#      $sparse_min); the eventq stays on the normal pool (debugfs stats
#      eventq_hi_periods stays).  Then with nsm_kernel's eventq_hipri set:
#      not moved by a burst with no light guest (9.'s), moved to the
#      high-priority pool beside vm2's flood (eventq_hi_periods grows).
#  12. connect/fill/close against a world server that never reads: the
#      NSM keeps at most guest_max_draining closed sockets of vm1, resets
#      the ones beyond (drain_aborts), and its memory stays bounded.
#  13. ... and resets the draining ones after drain_timeout
#      (drain_timeouts), leaving vm1 with no socket on the NSM.
#  14. vm2 whose IPv4 address is not configured on the NSM: its wildcard
#      bind answers EADDRNOTAVAIL and its connect EADDRNOTAVAIL (the NSM's
#      own address before).
#  15. nkctl ss (issue 15): a connection of vm1 to the world, as the
#      world sees it (10.0.0.11:port -> 10.0.0.1:port, ESTAB) with the
#      NSM kernel socket's nonzero rtt and cwnd; nkctl kill resets it and
#      vm1's blocked recv() fails with ECONNRESET.
#  16. Tenant namespaces (issue 14 item 3): the NSM's operator gives vm1
#      and vm2 a network namespace each (/proc/net/nsm_tenants), each
#      with the same address 192.168.77.2 on a link to a world of its own
#      (192.168.77.1, an httpd saying which world it is); the engine gives
#      both guests that address.  Each guest's wget reaches its own world,
#      both bind the same address and port, and neither reaches the NSM's
#      own address (no route in its namespace).
#  17. console clean: every VM; hostengine stopped cleanly.
#
# usage: selftests/netkernel/tenancy.sh
# Environment: TOPO_KVER, TOPO_MEM, TOPO_SMP, LAB_ACCEL (see tools/testing/lab).
# Logs: build/lab/tenancy/.
# Scripts for the guests in single quotes are expanded by the guest.
# TEST_NAMES and TEST_DESCS are read by ktap_run_table, which runs the
# test_* functions.
# shellcheck disable=SC2016,SC2034,SC2119,SC2317
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

logdir=$top/build/lab/tenancy
bin=$here/nk_tenancy
gbin=/usr/bin/nk_tenancy

# The limits under test, small enough for a TCG lab.
max_socks=32
max_draining=4
drain_timeout=8
txq_max=$((8 << 20))
fill_conns=24
# The engine's limits for vm2 (test_guest_limits), and vm1's connections.
vm2_max_socks=16
vm2_conn_rate=2
vm1_conns=20
# Of the NSM's MemAvailable, what the fill loop may take: the guest's
# credit (txq_max, plus one message for each socket) and what the kernel
# sockets of max_draining draining ones hold, with room to spare.  Without
# the limits, each of the fill_conns sockets holds 2 MiB of txq alone.
mem_bound_kb=$((24 << 10))

rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS

# ------------------------------------------------------------- the tests
# One point per entry, in this order (test_NAME, below), then topo_down_ktap's
# points: "console clean" for nsm, vm1 and vm2, and the engine's stop.
TEST_NAMES=(no_ipv6_wildcard reuseport_owners broadcast link_local max_socks
	guest_limits weight_credit request_turns rq_slice rcvbuf_share sparse_lane
	eventq_hipri fill_close drain_timeout addr_not_on_nsm ss_kill tenant_netns)
TEST_DESCS=(
	"vm2 without IPv6: V6ONLY wildcard bind refused"
	"SO_REUSEPORT: each guest's sockets have their own owner, not root"
	"broadcast datagrams refused"
	"link-local destinations refused"
	"guest_max_socks: ENFILE for vm1 at $max_socks, not for vm2"
	"engine limits: vm2 EMFILE at $vm2_max_socks, EAGAIN over $vm2_conn_rate/s; vm1 unaffected"
	"weight 3: vm2's socket gets 3 times vm1's credit from the NSM"
	"request turns: vm1's request served ahead of vm2's backlog"
	"rq_slice_us 100: vm1 still ahead; runs sliced beside a light guest only"
	"beside vm2's (weight 3) download, vm1's receive buffer made smaller, then given back"
	"beside vm2's flood, vm1's requests served in the sparse lane, the flood's not"
	"eventq_hipri: the eventq on high-priority works beside a light guest only"
	"connect/fill/close: at most $max_draining draining, the rest reset, memory bounded"
	"draining sockets reset after drain_timeout"
	"vm2's address not on the NSM: bind and connect refused"
	"nkctl ss shows vm1's connection from the NSM; nkctl kill resets it (ECONNRESET)"
	"vm1 and vm2 in namespaces of their own, same address: each reaches its own world"
)
down_points=4	# topo_down_ktap's

ktap_begin $(($(ktap_table_count) + down_points))

finish() {
	ktap_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	ktap_end
}

# expect WANT GOT: the test passes when GOT is WANT.
expect() {
	[[ $2 == "$1" ]] || { ktap_diag "$TEST_DESC: got '$2', want '$1'"; return 1; }
}

wait_nsm_idle() {	# until the NSM has no guest socket (10 s at most)
	local i n
	for ((i = 0; i < 20; i++)); do
		n=$(topo_nsm_stat sockets)
		((n != 0)) || return 0
		sleep 0.5
	done
	ktap_diag "the NSM still has $n sockets"
}

nsm_mem_avail() {	# kB
	lab_vm_exec "$TOPO_NSM" 30 'grep MemAvailable /proc/meminfo' | awk '{ print $2 }'
}

# ------------------------------------------------------------------ build

if ! lab_make_static "$logdir/build-nk_tenancy.log" -C "$here" -j2 nk_tenancy -- "$bin"; then
	ktap_fail_rest "prerequisite failed: no static nk_tenancy"
	finish
fi
# nkperf (test_sparse_lane): the guests get it with the lab (topo_build).
perf=$top/tools/testing/bench/nkperf
if ! lab_make_static "$logdir/build-nkperf.log" -C "$top/tools/testing/bench" -j2 nkperf -- "$perf"; then
	ktap_fail_rest "prerequisite failed: no static nkperf"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$bin:$gbin" --module veth)	# veth: tenant_netns
TOPO_NO_ADDR6=vm2
TOPO_NSM_MODARGS=guest_max_socks=$max_socks,guest_max_draining=$max_draining,drain_timeout=$drain_timeout,guest_txq_max=$txq_max
topo_up_ktap --guests 2 --no-base || finish

# ------------------------------------------------------------ the cases

# 1. No IPv6 address: no IPv6 wildcard.
test_no_ipv6_wildcard() {
	local got
	got=$(lab_vm_exec vm2 30 "$gbin bind :: 7101 v6only" 2>&1) || true
	expect EADDRNOTAVAIL "$got"
}

# 2. SO_REUSEPORT groups only sockets of one uid (the kernel's check).
# af_netkernel cannot set SO_REUSEPORT (sk_setsockopt() allows it on inet
# sockets only), but a guest's kernel can send the SETSOCKOPT: what keeps
# guests apart is that their kernel sockets have different owners, none
# of them root (the NSM's own services).  Seen in the NSM's /proc/net/tcp.
test_reuseport_owners() {
	local vm tcp uid1 uid2 rc=0
	for vm in vm1 vm2; do
		lab_vm_exec "$vm" 30 "$gbin bind $(topo_guest_ip "$vm") 7103 hold 30 >/tmp/hold.log 2>&1 &
. /lib/nk-lab.sh; nk_wait_for /tmp/hold.log .
cat /tmp/hold.log" >"$logdir/hold-$vm.log" 2>&1 || true
	done
	# /proc/net/tcp: 10.0.0.1N:7103 is 0N00000A:1BBF; field 8 is the uid.
	tcp=$(lab_vm_exec "$TOPO_NSM" 30 'cat /proc/net/tcp' 2>&1) || true
	uid1=$(awk '$2 == "0B00000A:1BBF" { print $8 }' <<<"$tcp")
	uid2=$(awk '$2 == "0C00000A:1BBF" { print $8 }' <<<"$tcp")
	ktap_diag "owners of the listeners on the NSM: vm1 '${uid1}', vm2 '${uid2}'"
	[[ -n $uid1 && -n $uid2 && $uid1 != 0 && $uid2 != 0 && $uid1 != "$uid2" ]] || rc=1
	lab_vm_exec vm1 30 'kill $(pidof nk_tenancy) 2>/dev/null; true' >/dev/null 2>&1 || true
	lab_vm_exec vm2 30 'kill $(pidof nk_tenancy) 2>/dev/null; true' >/dev/null 2>&1 || true
	return "$rc"
}

# 3. Broadcast.
test_broadcast() {
	local got
	got=$(lab_vm_exec vm1 30 "$gbin sendto 10.0.0.255 7104 broadcast; $gbin sendto 255.255.255.255 7104 broadcast" 2>&1 |
		paste -sd' ') || true
	expect "EACCES EACCES" "$got"
}

# 4. Link-local: give the NSM a route to 169.254/16 so that only the NSM's
# rule can refuse; fe80::/64 is on its eth0 (ifindex 2) already.
test_link_local() {
	local got
	lab_vm_exec "$TOPO_NSM" 30 'ip addr add 169.254.1.2/16 dev eth0' >/dev/null 2>&1 || true
	topo_world ip addr add 169.254.1.1/16 dev br0 2>/dev/null || true
	got=$(lab_vm_exec vm1 60 "for a in 169.254.1.1 fe80::1%2 ff02::1%2; do $gbin sendto \$a 7105; done
$gbin connect 169.254.1.1 $TOPO_HTTP_PORT; $gbin connect fe80::1%2 $TOPO_HTTP_PORT" 2>&1 |
		paste -sd' ') || true
	expect "ENETUNREACH ENETUNREACH ENETUNREACH ENETUNREACH ENETUNREACH" "$got"
}

# 5. The socket limit, per guest, once the sockets above are gone.
test_max_socks() {
	local got other lim rc=0
	wait_nsm_idle
	got=$(lab_vm_exec vm1 60 "$gbin socks $((max_socks + 8))" 2>&1) || true
	other=$(lab_vm_exec vm2 60 "$gbin socks 4" 2>&1) || true
	ktap_diag "vm1: $got; vm2 meanwhile: $other"
	[[ $got == "opened $max_socks ENFILE" ]] || rc=1
	[[ $other == "opened 4 none" ]] || rc=1
	# Counted per guest too (endpoint ids: nsm0 1, vm1 2, vm2 3).
	lim=$(lab_vm_exec "$TOPO_NSM" 30 'cat /sys/kernel/debug/nsm_kernel/*/guests' 2>&1 |
		awk '$1 == 2 { v1 = $6 } $1 == 3 { v2 = $6 } END { print v1 + 0, v2 + 0 }') || true
	ktap_diag "the NSM's sock_limit: vm1 and vm2 ${lim:-none}"
	[[ $lim =~ ^[1-9][0-9]*\ 0$ ]] || rc=1
	return "$rc"
}

# 6. The engine's limits for vm2 (the last section of the engine's file).
test_guest_limits() {
	local got sum conns c rc=0 i
	local -A v1 v2
	wait_nsm_idle
	topo_guest_set vm2 max_sockets="$vm2_max_socks" max_conn_rate="$vm2_conn_rate" \
		conn_burst="$vm2_conn_rate" || rc=1
	for c in socket_limit conn_rate_limit pending_limit; do
		v1[$c]=$(topo_ep_counter vm1 "$c")
		v2[$c]=$(topo_ep_counter vm2 "$c")
	done
	lab_vm_exec vm2 30 "$gbin socks $((2 * vm2_max_socks)) hold 300 >/tmp/socks.log 2>&1 &
. /lib/nk-lab.sh; nk_wait_for /tmp/socks.log .
cat /tmp/socks.log" >"$logdir/socks-vm2.log" 2>&1 || true
	got=$(head -n 1 "$logdir/socks-vm2.log")
	sum=$(lab_vm_exec vm1 120 "wget -q -O- $TOPO_FILE_URL | sha256sum" 2>&1) || true
	conns=$(lab_vm_exec vm1 120 "$gbin conns $TOPO_WORLD_IP $TOPO_HTTP_PORT $vm1_conns" 2>&1) || true
	ktap_diag "vm2: $got, socket_limit ${v2[socket_limit]} -> $(topo_ep_counter vm2 socket_limit)" \
		"vm1 meanwhile: sha256 ${sum:0:16}..., $conns"
	[[ $got == "opened $vm2_max_socks EMFILE" ]] || rc=1
	(($(topo_ep_counter vm2 socket_limit) >= v2[socket_limit] + 2)) || rc=1
	[[ ${sum%% *} == "$TOPO_FILE_SHA" ]] || rc=1
	[[ $conns == "ok $vm1_conns" ]] || rc=1
	lab_vm_exec vm2 30 'kill $(pidof nk_tenancy) 2>/dev/null; true' >/dev/null 2>&1 || true
	for ((i = 0; i < 20; i++)); do
		(($(topo_ep_sockets vm2) == 0)) && break
		sleep 0.5
	done

	# The connection rate: the burst, then EAGAIN until a token is back.
	got=$(lab_vm_exec vm2 60 "$gbin conns $TOPO_WORLD_IP $TOPO_HTTP_PORT $((4 * vm2_conn_rate))" 2>&1) || true
	ktap_diag "vm2's connects: $got, conn_rate_limit ${v2[conn_rate_limit]} -> $(topo_ep_counter vm2 conn_rate_limit)"
	[[ $got =~ ^ok\ [0-9]+\ EAGAIN\ [0-9]+$ ]] || rc=1
	(($(topo_ep_counter vm2 conn_rate_limit) > v2[conn_rate_limit])) || rc=1
	for c in socket_limit conn_rate_limit pending_limit; do
		got=$(topo_ep_counter vm1 "$c")
		[[ $got == "${v1[$c]}" ]] || { rc=1; ktap_diag "vm1's $c: ${v1[$c]} -> $got"; }
	done
	topo_guest_set vm2 max_sockets=4096 max_conn_rate=0 conn_burst=0 || rc=1
	return "$rc"
}

# 7. The NSM's credit follows the guest's weight: a connection of each
# guest to a world server that sends nothing, its credit read from the
# guest's /proc/net/netkernel (peer_buf, field 9; field 5 the remote).
weight_port=7250
test_weight_credit() {
	local vm got sink rc=0
	local -A want=([vm1]=$((2 << 20)) [vm2]=$((6 << 20)))
	wait_nsm_idle
	topo_guest_set vm2 weight=3 || rc=1
	topo_world_spawn "$logdir/weight-sink.log" "$bin" sink "$weight_port"
	sink=$LAB_LAST_PID
	topo_world_wait_port "$weight_port" || ktap_diag "the sink does not listen"
	for vm in vm1 vm2; do
		lab_vm_exec "$vm" 30 "$gbin connect $TOPO_WORLD_IP $weight_port recv 30 >/tmp/wc.log 2>&1 &
. /lib/nk-lab.sh; nk_wait_for /tmp/wc.log ok
awk '\$5 == \"$TOPO_WORLD_IP:$weight_port\" { print \$9 }' /proc/net/netkernel
kill \$(pidof nk_tenancy) 2>/dev/null; true" >"$logdir/weight-$vm.log" 2>&1 || true
		got=$(head -n 1 "$logdir/weight-$vm.log")
		ktap_diag "$vm: the NSM's credit '$got', want ${want[$vm]}"
		[[ $got == "${want[$vm]}" ]] || rc=1
	done
	lab_stop_pid "$sink" 5 >/dev/null 2>&1 || true
	topo_guest_set vm2 weight=1 || rc=1
	return "$rc"
}

# 8. The NSM serves guests' requests in turns.  vm2 queues turns_n
# datagrams toward the stopped NSM, then vm1 one; the world records the
# order they arrive in.  The NSM serves them one at a time, each sendto()
# sending its packet, so the world's order is the NSM's.
turns_port=7260
turns_n=30
# turns_order PORT: the run above on PORT; the world's order in turns_got,
# vm1's place in it in turns_pos.
turns_got=
turns_pos=
turns_order() {
	local world vm n got rc=0 turns_port=$1
	local wlog=$logdir/turns-world.$1.log
	wait_nsm_idle
	topo_world_spawn "$wlog" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$TOPO_WORLD_IP', $turns_port))
s.settimeout(60)
print('bound', flush=True)
order = []
while len(order) < $((turns_n + 1)):
    tag, what = s.recv(64).decode().split()
    if what == 'warm':
        print('warm', tag, flush=True)
    else:
        order.append(tag)
print('order', ' '.join(order), flush=True)"
	world=$LAB_LAST_PID
	lab_wait_for "$wlog" '^bound' 10 "$world" ||
		ktap_diag "the world's receiver is not bound"
	# Each guest's socket exists on the NSM (its warm datagram arrived)
	# before the NSM stops.
	for vm in vm2 vm1; do
		n=$([[ $vm == vm2 ]] && echo "$turns_n" || echo 1)
		lab_vm_exec "$vm" 30 "rm -f /tmp/turns-go
$gbin burst $TOPO_WORLD_IP $turns_port $n $vm /tmp/turns-go >/tmp/turns.log 2>&1 &
. /lib/nk-lab.sh; nk_wait_for /tmp/turns.log ready || { cat /tmp/turns.log; exit 1; }" \
			>"$logdir/turns-$vm.start" 2>&1 ||
			{ ktap_diag "$vm: $(cat "$logdir/turns-$vm.start")"; rc=1; }
	done
	for vm in vm2 vm1; do
		lab_wait_for "$wlog" "^warm $vm\$" 10 "$world" ||
			ktap_diag "the world did not get $vm's first datagram"
	done
	topo_nsm_freeze
	for vm in vm2 vm1; do
		got=$(lab_vm_exec "$vm" 30 "touch /tmp/turns-go
. /lib/nk-lab.sh; nk_wait_for /tmp/turns.log '^sent'; tail -n 1 /tmp/turns.log" 2>&1) || true
		n=$([[ $vm == vm2 ]] && echo "$turns_n" || echo 1)
		[[ $got == "sent $n" ]] || { ktap_diag "$vm: '$got', want 'sent $n'"; rc=1; }
	done
	# The engine has put them in the NSM's eventq (it polls): 1 s is ample.
	sleep 1
	topo_nsm_thaw
	lab_wait_for "$wlog" '^order' 20 "$world" || true
	turns_got=$(sed -n 's/^order //p' "$wlog")
	turns_pos=$(tr ' ' '\n' <<<"$turns_got" | grep -nx vm1 | cut -d: -f1)
	ktap_diag "the world got, in order: ${turns_got:-nothing}"
	lab_stop_pid "$world" 5 >/dev/null 2>&1 || true
	return "$rc"
}

# vm2's turn (weight 1) first, as its queue was first; one more place for
# any turn of the NSM's other queue.
turns_vm1_early() {
	[[ -n $turns_pos ]] && ((turns_pos <= 3)) ||
		{ ktap_diag "vm1's datagram came at place '${turns_pos:-none}', want at most 3"; return 1; }
}

test_request_turns() {
	local rc=0
	turns_order "$turns_port" || rc=1
	turns_vm1_early || rc=1
	return "$rc"
}

# 9. The same with rq_slice_us at 100: after vm2's turn and vm1's, rq_work
# serves only vm2's requests, over 100 us of them, on a shard that served
# two guests, but no guest used under a quarter of its share before (the
# NSM was stopped), so the run goes on; the order stays.  Then beside
# vm2's flood vm1 is light, and runs of the flood's requests end after
# 100 us (rq_slices counts them).
test_rq_slice() {
	local rc=0
	burst_flood rq_slice_us 100 rq_slices 1 || rc=1
	turns_vm1_early || rc=1
	((burst_s0 >= 0 && burst_s1 == burst_s0)) ||
		{ ktap_diag "rq_work's run was sliced with no light guest"; rc=1; }
	((burst_s2 > burst_s1)) || { ktap_diag "no run of the flood's requests was sliced"; rc=1; }
	return "$rc"
}

# 10. vm1 and vm2 download from the world's source at once, vm2 with
# weight 3 and for rcvbuf_vm2_s seconds only.  The NSM's debugfs sockets
# list gives each stream's receive buffer: vm1's is sampled while vm2's
# stream competes, and again once it is gone.
rcvbuf_port=7270
rcvbuf_vm2_s=6
# nsm_rcvbufs SAMPLES GUEST-ID: the receive buffer of that guest's stream
# on the NSM (the one socket that sent it data), SAMPLES times, 0.3 s apart.
nsm_rcvbufs() {
	lab_vm_exec "$TOPO_NSM" 30 "for i in \$(seq $1); do
cat /sys/kernel/debug/nsm_kernel/*/sockets; sleep 0.3; done" |
		awk -v g="$2" '$1 ~ /^[0-9]+$/ && $2 == g && $7 > 0 { print $14 }'
}
test_rcvbuf_share() {
	local id1 id2 src c0 c1 during after vm got rc=0
	wait_nsm_idle
	read -r id1 id2 < <(tenant_ids)
	topo_guest_set vm2 weight=3 || rc=1
	topo_world_spawn "$logdir/rcvbuf-source.log" "$bin" source "$rcvbuf_port"
	src=$LAB_LAST_PID
	topo_world_wait_port "$rcvbuf_port" || ktap_diag "the source does not listen"
	c0=$(topo_nsm_stat rcvbuf_cuts)
	lab_vm_exec vm1 10 "$gbin drain $TOPO_WORLD_IP $rcvbuf_port $((rcvbuf_vm2_s + 8)) \
>/tmp/rcvbuf.log 2>&1 &" || rc=1
	lab_vm_exec vm2 10 "$gbin drain $TOPO_WORLD_IP $rcvbuf_port $rcvbuf_vm2_s \
>/tmp/rcvbuf.log 2>&1 &" || rc=1
	sleep 1
	during=$(nsm_rcvbufs 8 "$id1" | sort -n | head -n 1)
	c1=$(topo_nsm_stat rcvbuf_cuts)
	sleep "$rcvbuf_vm2_s"
	after=$(nsm_rcvbufs 3 "$id1" | sort -n | tail -n 1)
	ktap_diag "rcvbuf_cuts $c0 -> $c1; vm1's receive buffer ${during:-none} beside vm2, ${after:-none} after"
	((c0 >= 0 && c1 > c0)) || { ktap_diag "vm1's buffer was never made smaller"; rc=1; }
	if [[ -z $during || -z $after ]] || ((during >= after)); then
		ktap_diag "vm1's buffer was not given back"
		rc=1
	fi
	# vm1's drain ends 8 s after vm2's: wait for each to print its total
	# (it was read about when vm1's ended, and sometimes before).
	for vm in vm1 vm2; do
		got=$(lab_vm_exec "$vm" 30 ". /lib/nk-lab.sh
nk_wait_for /tmp/rcvbuf.log drain 15
cat /tmp/rcvbuf.log")
		ktap_diag "$vm: $got"
		[[ $got =~ ^drain\ [1-9][0-9]*$ ]] || rc=1
	done
	lab_stop_pid "$src" 5 >/dev/null 2>&1 || true
	topo_guest_set vm2 weight=1 || rc=1
	return "$rc"
}

# 11. vm2 floods the NSM with 64-byte requests (nkperf's request-response
# with 8 connections of 32 requests in flight, against nkperf's server in
# the world) while vm1 makes 64-byte requests one at a time.  debugfs
# guests counts, per guest, the requests served in the sparse lane.
sparse_port=7280
sparse_min=100
sparse_pct=80		# of vm1's requests, at least, in the lane
guest_sparse_reqs() {	# GUEST-ID
	lab_vm_exec "$TOPO_NSM" 30 "cat /sys/kernel/debug/nsm_kernel/*/guests" |
		awk -v g="$1" '$1 == g { print $9; f = 1 } END { if (!f) print -1 }'
}
# flood_rr PORT: vm2's flood for 8 s and, from its third second, vm1's
# requests for 3 s; their last lines in flood_vm1 and flood_vm2.
flood_vm1=
flood_vm2=
flood_rr() {
	local srv rc=0
	local client="nkperf client -c $TOPO_WORLD_IP -p $1 -m rr -s 64"
	wait_nsm_idle
	topo_world_spawn "$logdir/flood-server.$1.log" "$perf" server -B "$TOPO_WORLD_IP" -p "$1"
	srv=$LAB_LAST_PID
	topo_world_wait_port "$1" || ktap_diag "nkperf's server does not listen"
	lab_vm_exec vm2 10 "$client -t 8 -P 8 -D 32 >/tmp/flood.log 2>&1 &" || rc=1
	sleep 2
	flood_vm1=$(lab_vm_exec vm1 30 "$client -t 3 | tail -n 1" 2>&1) || rc=1
	flood_vm2=$(lab_vm_exec vm2 30 ". /lib/nk-lab.sh; nk_wait_for /tmp/flood.log transactions 20
tail -n 1 /tmp/flood.log" 2>&1) || true
	lab_stop_pid "$srv" 5 >/dev/null 2>&1 || true
	return "$rc"
}
# burst_flood PARAM VALUE STAT N: with nsm_kernel's PARAM at VALUE (0
# after), the burst of 8. on turns_port + N, then vm2's flood on
# sparse_port + N; debugfs stats STAT before, after the burst and after
# the flood in burst_s0, burst_s1, burst_s2.
burst_s0=
burst_s1=
burst_s2=
burst_flood() {
	local rc=0
	topo_nsm_param "$1" "$2" || { ktap_diag "$1 not set"; return 1; }
	burst_s0=$(topo_nsm_stat "$3")
	turns_order $((turns_port + $4)) || rc=1
	burst_s1=$(topo_nsm_stat "$3")
	flood_rr $((sparse_port + $4)) || rc=1
	burst_s2=$(topo_nsm_stat "$3")
	topo_nsm_param "$1" 0 || { ktap_diag "$1 not set back to 0"; rc=1; }
	ktap_diag "$3 $burst_s0 -> $burst_s1 (burst) -> $burst_s2 (flood)" "vm1: $flood_vm1"
	return "$rc"
}
test_sparse_lane() {
	local id1 id2 a1 a2 b1 b2 n1 e0 e1 h0 h1 rc=0
	read -r id1 id2 < <(tenant_ids)
	e0=$(topo_nsm_stat light_ends)
	h0=$(topo_nsm_stat eventq_hi_periods)
	a1=$(guest_sparse_reqs "$id1")
	a2=$(guest_sparse_reqs "$id2")
	flood_rr "$sparse_port" || rc=1
	b1=$(guest_sparse_reqs "$id1")
	b2=$(guest_sparse_reqs "$id2")
	n1=$(sed -n 's/.* \([0-9][0-9]*\) transactions,.*/\1/p' <<<"$flood_vm1")
	e1=$(topo_nsm_stat light_ends)
	h1=$(topo_nsm_stat eventq_hi_periods)
	ktap_diag "vm1: $flood_vm1" "vm2: $flood_vm2" \
		"in the sparse lane: vm1 $((b1 - a1)) of ${n1:-?} requests, vm2 $((b2 - a2))" \
		"light_ends $e0 -> $e1, eventq_hi_periods $h0 -> $h1"
	((a1 >= 0 && b1 - a1 >= sparse_min)) ||
		{ ktap_diag "vm1's requests were not served in the sparse lane"; rc=1; }
	# Once in the lane, vm1 stays: its work's time includes the flood's
	# softirqs, which must not put it out (nsm_main.c, "Sparse guests").
	((a1 >= 0 && ${n1:-0} > 0 && (b1 - a1) * 100 >= ${n1:-0} * sparse_pct)) ||
		{ ktap_diag "vm1's requests left the sparse lane (under $sparse_pct%)"; rc=1; }
	((a2 >= 0 && b2 - a2 < sparse_min)) ||
		{ ktap_diag "vm2's flood took the sparse lane"; rc=1; }
	((h0 >= 0 && h1 == h0)) ||
		{ ktap_diag "the eventq left the normal pool with eventq_hipri off"; rc=1; }
	return "$rc"
}

# eventq_hipri set: the burst of 9. (no guest light before it) leaves the
# transport's eventq work on the normal pool; beside vm2's flood, where
# vm1 is light, it goes to the high-priority pool for each period.
test_eventq_hipri() {
	local rc=0
	burst_flood eventq_hipri 1 eventq_hi_periods 2 || rc=1
	((burst_s0 >= 0 && burst_s1 == burst_s0)) ||
		{ ktap_diag "the eventq went to the high-priority pool with no light guest"; rc=1; }
	((burst_s2 > burst_s1)) ||
		{ ktap_diag "beside the flood, the eventq stayed on the normal pool"; rc=1; }
	return "$rc"
}

# 12. and 13. connect/fill/close against a server that never reads (the
# sink, left to test_drain_timeout to stop).
sink_port=7200
sink_pid=
test_fill_close() {
	local mem0 mem1 aborts0 aborts socks got t rc=0
	wait_nsm_idle
	topo_world_spawn "$logdir/sink.log" "$bin" sink "$sink_port"
	sink_pid=$LAB_LAST_PID
	topo_world_wait_port "$sink_port" || ktap_diag "the sink does not listen"
	mem0=$(nsm_mem_avail)
	aborts0=$(topo_nsm_stat drain_aborts)
	t=$SECONDS
	got=$(lab_vm_exec vm1 300 "$gbin fill $TOPO_WORLD_IP $sink_port $fill_conns" 2>&1) || true
	mem1=$(nsm_mem_avail)
	socks=$(topo_nsm_stat sockets)
	aborts=$(topo_nsm_stat drain_aborts)
	ktap_diag "vm1: $got ($((SECONDS - t)) s)" \
		"NSM: sockets $socks, drain_aborts $aborts, MemAvailable $mem0 -> $mem1 kB"
	lab_vm_exec "$TOPO_NSM" 30 'cat /sys/kernel/debug/nsm_kernel/*/guests' 2>&1 | sed 's/^/#   /' || true
	[[ $got == "fill $fill_conns connected $fill_conns "* ]] || rc=1
	((socks >= 0 && socks <= max_draining)) || rc=1
	((aborts > aborts0)) || rc=1
	((mem0 - mem1 <= mem_bound_kb)) || { rc=1; ktap_diag "MemAvailable fell by $((mem0 - mem1)) kB > $mem_bound_kb kB"; }
	return "$rc"
}

test_drain_timeout() {
	local socks timeouts rc=0
	sleep $((drain_timeout + 2))
	socks=$(topo_nsm_stat sockets)
	timeouts=$(topo_nsm_stat drain_timeouts)
	ktap_diag "after drain_timeout: sockets $socks, drain_timeouts $timeouts"
	((socks == 0)) || rc=1
	((timeouts >= 1)) || rc=1
	[[ -z $sink_pid ]] || lab_stop_pid "$sink_pid" 5 >/dev/null 2>&1 || true
	return "$rc"
}

# 14. A guest address the NSM does not have: no wildcard instead.
test_addr_not_on_nsm() {
	local got
	lab_vm_exec "$TOPO_NSM" 30 "ip addr del $(topo_guest_ip vm2)/32 dev eth0" >/dev/null 2>&1 || true
	got=$(lab_vm_exec vm2 60 "$gbin bind 0.0.0.0 7106; $gbin connect $TOPO_WORLD_IP $TOPO_HTTP_PORT" 2>&1 |
		paste -sd' ') || true
	expect "EADDRNOTAVAIL EADDRNOTAVAIL" "$got"
}

# 15. nkctl ss and nkctl kill on a connection of vm1 to a world server that
# never reads (its TCP state and addresses from the NSM's kernel socket).
ss_port=7300
test_ss_kill() {
	local sink got entry gsock rc=0 i
	topo_world_spawn "$logdir/ss-sink.log" "$bin" sink "$ss_port"
	sink=$LAB_LAST_PID
	topo_world_wait_port "$ss_port" || ktap_diag "the sink does not listen"
	lab_vm_exec vm1 30 "$gbin connect $TOPO_WORLD_IP $ss_port recv 60 >/tmp/ss.log 2>&1 &
. /lib/nk-lab.sh; nk_wait_for /tmp/ss.log ok
cat /tmp/ss.log" >"$logdir/ss-connect.log" 2>&1 || true
	topo_nkctl ss guest vm1 port "$ss_port" 2>&1 | sed 's/^/#   /'
	got=$(topo_nkctl --json ss guest vm1 port "$ss_port" 2>&1) || rc=1
	entry=$(python3 -c '
import json, sys
e = json.load(sys.stdin)["sockets"]
if len(e) != 1:
    print("entries", len(e)); sys.exit()
e = e[0]
ok = (e.get("proto") == "tcp" and e.get("state") == "ESTAB" and
      e.get("local", "").startswith(sys.argv[1] + ":") and
      e.get("remote") == sys.argv[2] and e.get("rtt_us", 0) > 0 and
      e.get("cwnd", 0) > 0 and e.get("engine_state") == "open")
print(("ok" if ok else "bad"), e["guest_sock"], e.get("state"), e.get("local"),
      e.get("remote"), e.get("rtt_us"), e.get("cwnd"), e.get("info_error", ""))
' "$(topo_guest_ip vm1)" "$TOPO_WORLD_IP:$ss_port" <<<"$got" 2>&1) || true
	ktap_diag "ss: $entry"
	[[ $entry == "ok "* ]] || rc=1
	gsock=$(awk '{ print $2 }' <<<"$entry")
	topo_nkctl kill vm1 "$gsock" >"$logdir/ss-kill.log" 2>&1 || { rc=1; ktap_diag "nkctl kill: $(cat "$logdir/ss-kill.log")"; }
	for ((i = 0; i < 20; i++)); do
		got=$(lab_vm_exec vm1 30 'cat /tmp/ss.log' 2>&1 | paste -sd' ') || true
		[[ $got == *recv* ]] && break
		sleep 0.5
	done
	ktap_diag "vm1: $got"
	[[ $got == "ok recv ECONNRESET" ]] || rc=1
	topo_nkctl stats vm1 2>&1 | grep -E 'resets' | sed 's/^/#   /'
	lab_stop_pid "$sink" 5 >/dev/null 2>&1 || true
	return "$rc"
}

# 16. Tenant namespaces.  In the NSM, for each tenant T (a: vm1, b: vm2) a
# namespace tT (held by a sleeping process) with tT 192.168.77.2/24, the
# veth peer wT 192.168.77.1/24 in a world namespace running an httpd that
# serves "world-T"; then the guest's endpoint id is written into tT's
# /proc/net/nsm_tenants.
tenant_ip=192.168.77.2
tenant_world=192.168.77.1
tenant_setup='set -e
for t in a b; do
	unshare -n sleep 100000 & echo $! >/tmp/t$t.pid
	unshare -n sleep 100000 & echo $! >/tmp/w$t.pid
done
sleep 0.5
for t in a b; do
	tp=$(cat /tmp/t$t.pid) wp=$(cat /tmp/w$t.pid)
	ip link add t$t type veth
	ip link set veth0 name w$t
	ip link set t$t netns $tp
	ip link set w$t netns $wp
	nsenter -t $tp -n sh -c "ip link set lo up && ip link set t$t up && ip addr add TIP/24 dev t$t"
	nsenter -t $wp -n sh -c "ip link set lo up && ip link set w$t up && ip addr add TWORLD/24 dev w$t"
	mkdir -p /tmp/www$t && echo world-$t >/tmp/www$t/index.html
	nsenter -t $wp -n httpd -p TWORLD:8000 -h /tmp/www$t
done
nsenter -t $(cat /tmp/ta.pid) -n sh -c "echo VM1 >/proc/net/nsm_tenants"
nsenter -t $(cat /tmp/tb.pid) -n sh -c "echo VM2 >/proc/net/nsm_tenants"
nsenter -t $(cat /tmp/ta.pid) -n cat /proc/net/nsm_tenants
echo setup ok'
tenant_ids() {	# the engine's ids of vm1 and vm2
	topo_nkctl --json list | python3 -c '
import json, sys
ids = {e["name"]: e["id"] for e in json.load(sys.stdin)["endpoints"]}
print(ids["vm1"], ids["vm2"])'
}
test_tenant_netns() {
	local ids got script rc=0
	read -r -a ids < <(tenant_ids)
	script=${tenant_setup//TIP/$tenant_ip}
	script=${script//TWORLD/$tenant_world}
	script=${script//VM1/${ids[0]}}
	script=${script//VM2/${ids[1]}}
	got=$(lab_vm_exec "$TOPO_NSM" 60 "$script" 2>&1 | paste -sd' ') || true
	ktap_diag "NSM: $got"
	[[ $got == "${ids[0]} setup ok" ]] || return 1
	topo_guest_set vm1 address="$tenant_ip" && topo_guest_set vm2 address="$tenant_ip" || return 1
	got=$(lab_vm_exec vm1 60 "wget -qO- http://$tenant_world:8000/" 2>&1 | paste -sd' ') || true
	expect world-a "$got" || rc=1
	got=$(lab_vm_exec vm2 60 "wget -qO- http://$tenant_world:8000/" 2>&1 | paste -sd' ') || true
	expect world-b "$got" || rc=1
	lab_vm_exec vm1 30 "$gbin bind 0.0.0.0 7401 hold 10 >/tmp/hold.log 2>&1 & sleep 2" >/dev/null 2>&1 || true
	got=$(lab_vm_exec vm2 30 "$gbin bind 0.0.0.0 7401" 2>&1) || true
	expect ok "$got" || rc=1
	got=$(lab_vm_exec vm1 30 "$gbin connect $(topo_vm_ip "$TOPO_NSM") 22" 2>&1) || true
	expect ENETUNREACH "$got" || rc=1
	lab_vm_exec "$TOPO_NSM" 30 "nsenter -t \$(cat /tmp/ta.pid) -n sh -c 'echo -${ids[0]} >/proc/net/nsm_tenants' &&
nsenter -t \$(cat /tmp/tb.pid) -n sh -c 'echo -${ids[1]} >/proc/net/nsm_tenants' && echo unassigned" 2>&1 | sed 's/^/#   NSM: /'
	return "$rc"
}

ktap_run_table
ktap_diag "nsm_kernel counters:"
lab_vm_exec "$TOPO_NSM" 30 'cat /sys/kernel/debug/nsm_kernel/*/stats' 2>&1 |
	paste -d' ' - - - - | sed 's/^/#   /' || true

# ------------------------------------------------------- consoles, engine

topo_down_ktap
finish
