#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The nk_sockets suite on the native stack: two network namespaces joined
# by a veth pair made for this run (10.99.0.1/24 and 10.99.0.2/24, and
# fd99::1/64 and fd99::2/64 for the IPv6 cases), the
# server in one and the client in the other, then the other way round.
# Prints KTAP; exits non-zero on any failure.  Needs root, ip(8).
#
# usage: selftests/netkernel/run-native.sh [nk_sockets client options...]
# Environment: NK_SOCKETS (a prebuilt nk_sockets: no make).
# TEST_NAMES and TEST_DESCS are read by ktap_run_table.
# shellcheck disable=SC2034,SC2119,SC2317
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../kselftest/ktap_helpers.sh
. "$here/../kselftest/ktap_helpers.sh"
bin=${NK_SOCKETS:-$here/nk_sockets}
ns_a=nkst-w-$$
ns_b=nkst-g-$$
ip_a=10.99.0.1
ip_b=10.99.0.2
ip6_a=fd99::1
ip6_b=fd99::2
logdir=$(mktemp -d /tmp/nk_sockets-native.XXXXXX)
server_pid=

cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	ip netns del "$ns_a" 2>/dev/null || true
	ip netns del "$ns_b" 2>/dev/null || true
	rm -rf "$logdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${NK_SOCKETS:-} ]]; then
	make -C "$here" -j2 >"$logdir/build.log" 2>&1 || {
		cat "$logdir/build.log"
		echo "Bail out! make -C selftests/netkernel failed"
		exit 1
	}
fi

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "nkw$$" netns "$ns_a" type veth peer name "nkg$$" netns "$ns_b"
ip -n "$ns_a" addr add "$ip_a/24" dev "nkw$$"
ip -n "$ns_b" addr add "$ip_b/24" dev "nkg$$"
ip -n "$ns_a" addr add "$ip6_a/64" dev "nkw$$" nodad
ip -n "$ns_b" addr add "$ip6_b/64" dev "nkg$$" nodad
for ns in "$ns_a" "$ns_b"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "nk${ns:5:1}$$" up
done

# run NAME SERVER-NS BIND-ADDR SERVER-IP SERVER-IP6 CLIENT-NS: one run of
# the suite, its KTAP as NAME's subtest; fails when a case failed.
run() {
	local name=$1 sns=$2 bind=$3 sip=$4 sip6=$5 cns=$6 out status=0
	ip netns exec "$sns" "$bin" server --bind "$bind" >"$logdir/server.log" 2>&1 &
	server_pid=$!
	out=$(timeout -k 5 240 ip netns exec "$cns" "$bin" client --server "$sip" \
		--server6 "$sip6" "${client_args[@]}") ||
		status=$?
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
	ktap_subtest "$name" "$out" || status=1
	if ((status)); then
		ktap_diag "$name: client exit $status; server log:"
		sed 's/^/#   /' "$logdir/server.log"
	fi
	return "$status"
}

test_server_a() {
	run "${TEST_DESC}" "$ns_a" "$ip_a" "$ip_a" "$ip6_a" "$ns_b"
}

test_server_b() {
	run "${TEST_DESC}" "$ns_b" 0.0.0.0 "$ip_b" "$ip6_b" "$ns_a"
}

TEST_NAMES=(server_a server_b)
TEST_DESCS=("native: server $ip_a, client $ip_b"
	"native: server $ip_b (0.0.0.0), client $ip_a")
client_args=("$@")

ktap_begin "$(ktap_table_count)"
ktap_run_table
ktap_end
