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
#      makes a socket's NSM half); vm2 still opens.
#   6. connect/fill/close against a world server that never reads: the
#      NSM keeps at most guest_max_draining closed sockets of vm1, resets
#      the ones beyond (drain_aborts), and its memory stays bounded.
#   7. ... and resets the draining ones after drain_timeout
#      (drain_timeouts), leaving vm1 with no socket on the NSM.
#   8. vm2 whose IPv4 address is not configured on the NSM: its wildcard
#      bind answers EADDRNOTAVAIL and its connect EADDRNOTAVAIL (the NSM's
#      own address before).
#   9. nkctl ss (issue 15): a connection of vm1 to the world, as the
#      world sees it (10.0.0.11:port -> 10.0.0.1:port, ESTAB) with the
#      NSM kernel socket's nonzero rtt and cwnd; nkctl kill resets it and
#      vm1's blocked recv() fails with ECONNRESET.
#  10. console clean: every VM; hostengine stopped cleanly.
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
	fill_close drain_timeout addr_not_on_nsm ss_kill)
TEST_DESCS=(
	"vm2 without IPv6: V6ONLY wildcard bind refused"
	"SO_REUSEPORT: each guest's sockets have their own owner, not root"
	"broadcast datagrams refused"
	"link-local destinations refused"
	"guest_max_socks: ENFILE for vm1 at $max_socks, not for vm2"
	"connect/fill/close: at most $max_draining draining, the rest reset, memory bounded"
	"draining sockets reset after drain_timeout"
	"vm2's address not on the NSM: bind and connect refused"
	"nkctl ss shows vm1's connection from the NSM; nkctl kill resets it (ECONNRESET)"
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

if ! make -C "$here" -j2 nk_tenancy >"$logdir/build-nk_tenancy.log" 2>&1 ||
	ldd "$bin" >/dev/null 2>&1; then
	tail -n 20 "$logdir/build-nk_tenancy.log" | sed 's/^/#   /'
	ktap_fail_rest "prerequisite failed: no static nk_tenancy"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$bin:$gbin")
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
i=0; until [ -s /tmp/hold.log ]; do [ \$i -lt 50 ] || break; sleep 0.2; i=\$((i + 1)); done
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
	local got other rc=0
	wait_nsm_idle
	got=$(lab_vm_exec vm1 60 "$gbin socks $((max_socks + 8))" 2>&1) || true
	other=$(lab_vm_exec vm2 60 "$gbin socks 4" 2>&1) || true
	ktap_diag "vm1: $got; vm2 meanwhile: $other"
	[[ $got == "opened $max_socks ENFILE" ]] || rc=1
	[[ $other == "opened 4 none" ]] || rc=1
	return "$rc"
}

# 6. and 7. connect/fill/close against a server that never reads (the
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

# 8. A guest address the NSM does not have: no wildcard instead.
test_addr_not_on_nsm() {
	local got
	lab_vm_exec "$TOPO_NSM" 30 "ip addr del $(topo_guest_ip vm2)/32 dev eth0" >/dev/null 2>&1 || true
	got=$(lab_vm_exec vm2 60 "$gbin bind 0.0.0.0 7106; $gbin connect $TOPO_WORLD_IP $TOPO_HTTP_PORT" 2>&1 |
		paste -sd' ') || true
	expect "EADDRNOTAVAIL EADDRNOTAVAIL" "$got"
}

# 9. nkctl ss and nkctl kill on a connection of vm1 to a world server that
# never reads (its TCP state and addresses from the NSM's kernel socket).
ss_port=7300
test_ss_kill() {
	local sink got entry gsock rc=0 i
	topo_world_spawn "$logdir/ss-sink.log" "$bin" sink "$ss_port"
	sink=$LAB_LAST_PID
	topo_world_wait_port "$ss_port" || ktap_diag "the sink does not listen"
	lab_vm_exec vm1 30 "$gbin connect $TOPO_WORLD_IP $ss_port recv 60 >/tmp/ss.log 2>&1 &
i=0; until grep -q ok /tmp/ss.log; do [ \$i -lt 50 ] || break; sleep 0.2; i=\$((i + 1)); done
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

ktap_run_table
ktap_diag "nsm_kernel counters:"
lab_vm_exec "$TOPO_NSM" 30 'cat /sys/kernel/debug/nsm_kernel/*/stats' 2>&1 |
	paste -d' ' - - - - | sed 's/^/#   /' || true

# ------------------------------------------------------- consoles, engine

topo_down_ktap
finish
