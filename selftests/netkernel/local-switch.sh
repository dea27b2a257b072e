#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check's local-switch suite: the socket-semantics suite (nk_sockets)
# between two NetKernel guests of one engine (issue 13 item 2), in one
# boot of a lab of three VMs (tools/testing/lab/topology.sh: the NSM, vm1
# 10.0.0.11 and vm2 10.0.0.12, both attached to nsm0; no baseline guest):
#
#   switched   nk_sockets server in vm2, client in vm1 reaching it at
#              10.0.0.12 and fd00::12: the engine switches the connections
#              itself (local_switch = auto, the default), the NSM carries
#              none of the suite's data, and every TCP case gives what it
#              gives natively (the suite asserts Linux's behaviour).  Not
#              run: the UDP cases (the next test's).
#   udp        the same pair, switching on: the UDP cases, which are never
#              switched, go through the NSM (the engine marks another
#              guest's destination NK_F_PEER, the NSM passes it through its
#              own stack: hostengine.rst "Guests through their NSM"), each
#              as native.
#   off        vm1's local_switch off (nkctl set): the whole suite, TCP
#              and UDP, through the NSM as between two hosts, each case as
#              native; the NSM carries the data (at least one bulk case's
#              16 MiB), and while the client runs, "nkctl sockets" shows
#              vm1's sockets as NSM sockets, none switched.
#   netns      a datagram vm1 -> vm2 goes through (nk_tenancy sendto:
#              "ok"); then the NSM's operator gives vm2 a network
#              namespace of its own (/proc/net/nsm_tenants, issue 14 item
#              3), and the same datagram is refused (EADDRNOTAVAIL, as
#              before NK_F_PEER): vm2's address in vm1's namespace is no
#              longer vm2's sockets'.
#   nsm_dies   a switched connection vm1 -> vm2 (busybox nc at both
#              ends) carries a line each way; the NSM VM is killed; the
#              same connection carries a line each way again, neither nc
#              saw an error or an end (a switched connection needs nothing
#              of its NSM); the NSM then boots again.
#
# then topo_down_ktap's points (consoles clean, engine stopped cleanly).
# Exits non-zero on any failure.
#
# usage: selftests/netkernel/local-switch.sh [TEST...]   (TEST: names of the
# table below; default all)
# Environment: NK_SUITE_TIMEOUT (seconds per suite run, default 300),
# NK_SOCKETS (a prebuilt static nk_sockets: no make), NK_SUITE_ARGS (more
# client options), TOPO_KVER, TOPO_MEM, TOPO_SMP, LAB_ACCEL.
# Logs: build/lab/local-switch/.
# shellcheck disable=SC2016,SC2034,SC2119,SC2153
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

logdir=$top/build/lab/local-switch
suite_timeout=${NK_SUITE_TIMEOUT:-300}
suite_bin=${NK_SOCKETS:-$here/nk_sockets}
guest_bin=/usr/bin/nk_sockets
suite_port=7000
tenancy_bin=$here/nk_tenancy
tenancy_gbin=/usr/bin/nk_tenancy
# The NSM's bytes from the guests (its eventq payload) a switched run may
# cost: the client's options and nothing of the data (one bulk case alone
# moves 16 MiB).
switched_nsm_max=$((1 << 20))

rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS

TEST_NAMES=(switched udp off netns nsm_dies)
TEST_DESCS=(
	"nk_sockets vm1 -> vm2, switched by the engine: every TCP case as native"
	"nk_sockets vm1 -> vm2, the UDP cases through the NSM: each as native"
	"local_switch off: nk_sockets vm1 -> vm2 through the NSM, every case as native"
	"vm2 in a namespace of its own on the NSM: vm1's datagram to it refused"
	"the NSM dies: a switched connection vm1 -> vm2 goes on"
)
# Cases not run switched (see above); nk_sockets --skip and --run match a
# part of a case's name: "udp" is every UDP case, and no TCP one.
switched_skips=(udp)
# The NSM's bytes from the guests the run through it must at least cost:
# one bulk case's 16 MiB (switched, none of it reaches the NSM).
off_nsm_min=$((16 << 20))
down_points=4	# topo_down_ktap's: nsm, vm1, vm2, the engine

ktap_begin $(($(ktap_table_count "$@") + down_points))

finish() {
	ktap_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	ktap_end
}

make_args=()
[[ -n ${NK_SOCKETS:-} ]] || make_args=(-C "$here" -j2)
if ! lab_make_static "$logdir/build-nk_sockets.log" "${make_args[@]}" -- "$suite_bin"; then
	ktap_fail_rest "prerequisite failed: no static nk_sockets ($suite_bin)"
	finish
fi
if ! lab_make_static "$logdir/build-nk_tenancy.log" -C "$here" -j2 nk_tenancy -- "$tenancy_bin"; then
	ktap_fail_rest "prerequisite failed: no static nk_tenancy"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$suite_bin:$guest_bin" --add "$tenancy_bin:$tenancy_gbin")
topo_up_ktap --guests 2 --no-base || finish

vm2_ip=$(topo_guest_ip vm2)
vm2_ip6=$(topo_vm_ip6 vm2)

# server_start: the suite's server in vm2 on the wildcard, listening.
server_start() {
	lab_vm_exec vm2 60 "$guest_bin server --bind 0.0.0.0 >/tmp/nk_sockets-server.log 2>&1 &
echo \$! >/tmp/nk_sockets-server.pid
. /lib/nk-lab.sh
nk_wait_listen tcp $suite_port 'the server' /tmp/nk_sockets-server.log"
}

server_stop() {	# LOG
	lab_vm_exec vm2 30 'kill $(cat /tmp/nk_sockets-server.pid) 2>/dev/null; sleep 0.5; cat /tmp/nk_sockets-server.log' \
		>"$1" 2>&1 || true
}

# client KEY ARGS...: the suite's client in vm1 against vm2's server, with
# nk_sockets options ARGS (its output in out, its exit status in status,
# the NSM's bytes meanwhile in nsm_bytes: its bytes_out, what the guests
# sent it).
client() {
	local key=$1 before after
	shift
	status=0
	before=$(topo_ep_counter nsm0 bytes_out)
	out=$(lab_vm_exec vm1 "$suite_timeout" \
		"$guest_bin client --server $vm2_ip --server6 $vm2_ip6 --timeout $((suite_timeout - 30)) $*${NK_SUITE_ARGS:+ $NK_SUITE_ARGS}") ||
		status=$?
	after=$(topo_ep_counter nsm0 bytes_out)
	nsm_bytes=$((after - before))
	printf '%s\n' "$out" >"$logdir/client-$key.ktap"
	ktap_diag "$key: exit $status; the NSM was sent $nsm_bytes payload bytes meanwhile"
}

# suite KEY ARGS...: server, client with ARGS, server stopped; the client's
# KTAP as a subtest.  rc 1 if anything failed.
suite() {
	local key=$1 rc=0
	shift
	server_start >"$logdir/server-$key.start.log" 2>&1 || {
		ktap_diag "$TEST_DESC: the server in vm2 did not start:"
		sed 's/^/#   /' "$logdir/server-$key.start.log"
		return 1
	}
	client "$key" "$@"
	server_stop "$logdir/server-$key.log"
	((status == 0)) || rc=1
	ktap_subtest "$TEST_DESC" "$out" || rc=1
	return "$rc"
}

test_switched() {
	local rc=0 skip args=()
	for skip in "${switched_skips[@]}"; do
		args+=(--skip "$skip")
	done
	suite switched "${args[@]}" || rc=1
	if ((nsm_bytes > switched_nsm_max)); then
		ktap_diag "switched: the NSM carried $nsm_bytes bytes (at most $switched_nsm_max expected)"
		rc=1
	fi
	return "$rc"
}

test_udp() {
	suite udp --run udp
}

# vm1's sockets as "nkctl --json sockets" lists them, every 2 s into $1
# until killed: an NSM socket has "nsm": "nsm0", a switched one
# "local": true.
sockets_watch() {
	while :; do
		topo_nkctl --json sockets vm1 2>&1 || true
		sleep 2
	done >"$1"
}

test_off() {
	local rc=0 watch nsm_socks local_socks
	topo_nkctl set vm1 local_switch=off >/dev/null 2>&1 || { ktap_diag "nkctl set failed"; return 1; }
	sockets_watch "$logdir/sockets-off.log" &
	watch=$!
	suite off || rc=1
	kill "$watch" 2>/dev/null
	wait "$watch" 2>/dev/null || true
	topo_nkctl set vm1 local_switch=auto >/dev/null 2>&1 || rc=1
	if ((nsm_bytes < off_nsm_min)); then
		ktap_diag "off: the NSM carried $nsm_bytes bytes (at least $off_nsm_min expected)"
		rc=1
	fi
	nsm_socks=$(grep -c '"nsm": *"nsm0"' "$logdir/sockets-off.log" || true)
	local_socks=$(grep -c '"local": *true' "$logdir/sockets-off.log" || true)
	ktap_diag "off: nkctl sockets listed $nsm_socks NSM sockets of vm1, $local_socks switched"
	if ((nsm_socks == 0 || local_socks != 0)); then
		ktap_diag "off: expected vm1's sockets through nsm0 only (sockets-off.log)"
		rc=1
	fi
	return "$rc"
}

# netns: vm1's datagram to vm2 with vm2's sockets in the NSM's namespace,
# then in one of their own.
test_netns() {
	local rc=0 id got
	id=$(topo_nkctl --json list | python3 -c '
import json, sys
print({e["name"]: e["id"] for e in json.load(sys.stdin)["endpoints"]}["vm2"])') || return 1
	got=$(lab_vm_exec vm1 30 "$tenancy_gbin sendto $vm2_ip 7999" 2>&1) || true
	if [[ $got != ok ]]; then
		ktap_diag "netns: vm1 -> vm2 with one namespace: got '$got', want 'ok'"
		rc=1
	fi
	got=$(lab_vm_exec "$TOPO_NSM" 30 "unshare -n sleep 100000 & echo \$! >/tmp/g2g-ns.pid
sleep 0.5
nsenter -t \$(cat /tmp/g2g-ns.pid) -n sh -c 'echo $id >/proc/net/nsm_tenants' && echo given" 2>&1) || true
	if [[ $got != given ]]; then
		ktap_diag "netns: vm2 (id $id) not given a namespace: $got"
		return 1
	fi
	got=$(lab_vm_exec vm1 30 "$tenancy_gbin sendto $vm2_ip 7999" 2>&1) || true
	if [[ $got != EADDRNOTAVAIL ]]; then
		ktap_diag "netns: vm1 -> vm2 in another namespace: got '$got', want 'EADDRNOTAVAIL'"
		rc=1
	fi
	lab_vm_exec "$TOPO_NSM" 30 "nsenter -t \$(cat /tmp/g2g-ns.pid) -n sh -c 'echo -$id >/proc/net/nsm_tenants'
kill \$(cat /tmp/g2g-ns.pid)" >/dev/null 2>&1 || rc=1
	return "$rc"
}

# nsm_dies' connection: busybox nc in vm1 and vm2, each reading the
# lines written into /tmp/ls.in (a FIFO a sleep keeps open) and writing
# what it receives into /tmp/ls.out.
ls_port=7100

# ls_line FROM TO TEXT: FROM's nc sends TEXT; 1 unless TO's nc gets it.
ls_line() {
	lab_vm_exec "$1" 10 "echo $3 >/tmp/ls.in" >/dev/null 2>&1 || {
		ktap_diag "nsm_dies: $1 could not send \"$3\" (its nc is gone)"
		return 1
	}
	lab_vm_exec "$2" 20 ". /lib/nk-lab.sh
nk_wait_for /tmp/ls.out '^$3\$' || { echo 'not received:'; cat /tmp/ls.out; exit 1; }" >"$logdir/ls-$3.log" 2>&1 || {
		ktap_diag "nsm_dies: $2 did not receive $1's \"$3\":" "$(cat "$logdir/ls-$3.log")"
		return 1
	}
}

# ls_nc VM ARGS...: VM's nc with ARGS, fed from its FIFO.
ls_nc() {
	local vm=$1
	shift
	lab_vm_exec "$vm" 30 "mkfifo /tmp/ls.in
sleep 900 >/tmp/ls.in 2>/dev/null &
echo \$! >/tmp/ls.hold
nc $* </tmp/ls.in >/tmp/ls.out 2>&1 &
echo \$! >/tmp/ls.pid"
}

test_nsm_dies() {
	local rc=0 vm i
	if ! { ls_nc vm2 -l -p "$ls_port" &&
		lab_vm_exec vm2 30 ". /lib/nk-lab.sh
nk_wait_listen tcp $ls_port 'nc' /tmp/ls.out" &&
		ls_nc vm1 "$vm2_ip" "$ls_port"; } >"$logdir/ls-start.log" 2>&1; then
		ktap_diag "nsm_dies: nc did not start:" "$(cat "$logdir/ls-start.log")"
		return 1
	fi
	ls_line vm1 vm2 before-1 && ls_line vm2 vm1 before-2 || return 1
	for ((i = 0; i < 50; i++)); do
		topo_nkctl --json sockets vm1 2>/dev/null | grep -q '"local": *true' && break
		sleep 0.1
	done
	((i < 50)) || { ktap_diag "nsm_dies: vm1's connection is not switched"; return 1; }
	topo_nsm_kill || { ktap_diag "nsm_dies: the NSM's console shows trouble"; rc=1; }
	ktap_diag "nsm_dies: the NSM killed"
	ls_line vm1 vm2 after-1 && ls_line vm2 vm1 after-2 || rc=1
	# Both still running (the end of one ends the other: look first).
	for vm in vm1 vm2; do
		lab_vm_exec "$vm" 10 'kill -0 $(cat /tmp/ls.pid)' >/dev/null 2>&1 || {
			ktap_diag "nsm_dies: $vm's nc ended: $(lab_vm_exec "$vm" 10 'cat /tmp/ls.out' 2>&1)"
			rc=1
		}
	done
	for vm in vm1 vm2; do
		lab_vm_exec "$vm" 10 'kill $(cat /tmp/ls.pid) $(cat /tmp/ls.hold); true' >/dev/null 2>&1 || true
	done
	topo_nsm_start_again 240 || { ktap_diag "nsm_dies: the NSM did not boot again"; return 1; }
	topo_ep_wait_ready 60 nsm0 || { ktap_diag "nsm_dies: nsm0 not ready after its boot"; return 1; }
	return "$rc"
}

ktap_run_table "$@"

ktap_diag "engine counters after the runs:"
topo_nkctl stats 2>&1 | sed 's/^/#   /' || true

topo_down_ktap
finish
