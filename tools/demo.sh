#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: boot the VM lab (tools/testing/lab/topology.sh) and show unmodified
# programs in a guest that has no network interface at all reaching the
# world through NetKernel:
#
#   1. the guest: no NIC, af_netkernel.ko loaded, nkctl shows the endpoints
#   2. busybox wget fetches a 10 MiB file from the world's HTTP server; its
#      sha256 must equal the world's
#   3. busybox nc -l in the guest accepts a connection from the world
#   4. curl, a dynamically linked Debian program copied with its libraries,
#      fetches the same file
#   5. the counters: nkctl stats and sockets, /proc/net/netkernel, the NSM's
#   6. teardown: every VM's kernel log must be free of warnings and oopses
#
# Exits 0 when every step worked, 1 with a message otherwise; removes
# everything it started in any case.  Logs: build/lab/demo/.
# Scripts for the guests are single-quoted on purpose: the guest expands them.
# shellcheck disable=SC2016
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

logdir=$top/build/lab/demo
rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS

if [[ -t 1 ]]; then
	bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
else
	bold='' dim='' off=''
fi

section() {	# TITLE EXPLANATION...
	printf '\n%s======== %s%s\n' "$bold" "$1" "$off"
	shift
	printf '%s\n' "$@" | fmt -w 76 | sed "s/^/$dim/; s/\$/$off/"
}

show() {	# LABEL: print a "$ command" line the viewer can relate to
	printf '%s$ %s%s\n' "$bold" "$*" "$off"
}

fail() {
	printf '\n%sdemo FAILED: %s%s\n' "$bold" "$*" "$off"
	echo "logs: $logdir"
	exit 1
}

OUT=
in_guest() {	# VM TIMEOUT SCRIPT: show SCRIPT, run it in VM, print its output
	local rc=0
	show "[$1] $3"
	OUT=$(lab_vm_exec "$@") || rc=$?
	[[ -z $OUT ]] || printf '%s\n' "$OUT"
	return "$rc"
}

nkctl() {
	show "nkctl $*"
	topo_nkctl "$@"
}

section "Building and booting the lab" \
	"Debian's 6.1 kernel in two QEMU VMs (TCG when there is no KVM): the NSM (network stack module) VM with its own virtio-net NIC, and the NetKernel guest vm1 with NO network interface. hostengine (DPDK vhost-user) connects vm1's nk device to the NSM's. The 'world' is a network namespace created for this demo: 10.0.0.1, an HTTP server with a 10 MiB random file."
t0=$SECONDS
topo_build || fail "build failed (logs: $logdir)"
topo_up --guests 1 --no-base || fail "the lab did not come up"
echo "lab up in $((SECONDS - t0)) s: world namespace $TOPO_NS, VMs ${TOPO_VMS[*]}"

# ----------------------------------------------------------------- 1
section "1. A guest without a network interface" \
	"vm1 has only a loopback device and no route: its kernel has no way onto a network. af_netkernel.ko takes over the AF_INET and AF_INET6 sockets of user-space programs and sends every socket call as a message through its nk device to hostengine, which passes it to the NSM VM; nsm_kernel.ko there runs the call on a real kernel socket, with source address 10.0.0.11 (assigned to vm1 by the engine)."
in_guest vm1 30 'ls /sys/class/net; ip route; grep af_netkernel /proc/modules' ||
	fail "cannot look inside vm1"
if [[ $(lab_vm_exec vm1 30 'ls /sys/class/net') != lo ]]; then
	fail "vm1 has a network interface other than lo"
fi
nkctl list

# The guest's sha256sum output in $OUT against the world's; t0 set before.
check_sha() {	# FILE PROGRAM
	echo "world's sha256: $TOPO_FILE_SHA"
	[[ $OUT == *"$TOPO_FILE_SHA  $1"* ]] || fail "sha256 of the file fetched by $2 differs"
	echo "=> sha256 matches ($((SECONDS - t0)) s)"
}

# ----------------------------------------------------------------- 2
section "2. busybox wget in the guest fetches 10 MiB from the world" \
	"An unmodified, statically linked busybox wget connects to 10.0.0.1:$TOPO_HTTP_PORT. The HTTP server in the world namespace sees a client at 10.0.0.11 (its log below), which is the NSM's socket acting for vm1. The sha256 of the file received in the guest must equal the one computed in the world."
t0=$SECONDS
in_guest vm1 180 "time wget -q -O /tmp/file.wget $TOPO_FILE_URL && sha256sum /tmp/file.wget" ||
	fail "wget in vm1 failed"
check_sha /tmp/file.wget wget
echo "the HTTP server's log in the world (client address:port: what it saw):"
tail -n 2 "$logdir/httpd.log" | sed 's/^/  /'
grep -q "^$(topo_guest_ip vm1):" "$logdir/httpd.log" || fail "the HTTP server did not see vm1's address $(topo_guest_ip vm1)"

# ----------------------------------------------------------------- 3
section "3. A TCP server in the guest, reached from the world" \
	"busybox nc -l in vm1 listens on port 8080. busybox opens that listener as a dual-stack AF_INET6 socket, so /proc/net/netkernel shows it as tcp6 [::]:8080; the NSM listens on the guest's behalf, and 10.0.0.11 (an address of the NSM's NIC) is where the world reaches it. A client in the world connects, sends a line and receives the guest's greeting."
in_guest vm1 30 'echo "hello from vm1, a guest without a NIC" >/tmp/greeting
nc -l -p 8080 </tmp/greeting >/tmp/received 2>&1 &
i=0; until grep -q ":8080" /proc/net/netkernel || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
cat /proc/net/netkernel' || fail "nc -l in vm1 failed"
nkctl sockets vm1
show "[world] printf 'hello from the world\n' | busybox nc 10.0.0.11 8080"
reply=$(printf 'hello from the world\n' | topo_world timeout 30 busybox nc "$(topo_guest_ip vm1)" 8080) ||
	fail "the world could not connect to vm1's listener"
echo "$reply"
[[ $reply == "hello from vm1, a guest without a NIC" ]] || fail "unexpected reply from vm1: '$reply'"
in_guest vm1 30 'i=0; while pidof nc >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done; cat /tmp/received' ||
	fail "cannot read what vm1 received"
[[ $OUT == "hello from the world" ]] || fail "vm1 did not receive the world's line"
echo "=> the world reached a server in a guest that has no NIC"

# ----------------------------------------------------------------- 4
section "4. curl, a dynamically linked Debian program" \
	"/usr/bin/curl from the host's Debian, copied into the initramfs with the $(ldd /usr/bin/curl | grep -c '=> /') shared libraries ldd lists (libcurl, OpenSSL, glibc...), runs unchanged: glibc's socket() lands in af_netkernel like busybox's did."
t0=$SECONDS
in_guest vm1 180 "curl -sS -o /tmp/file.curl -w 'HTTP %{http_code}, %{size_download} bytes, %{speed_download} bytes/s, from %{local_ip} to %{remote_ip}\n' $TOPO_FILE_URL && sha256sum /tmp/file.curl" ||
	fail "curl in vm1 failed"
check_sha /tmp/file.curl curl

# ----------------------------------------------------------------- 5
section "5. The counters" \
	"nkctl stats: per endpoint, requests taken from its queue, replies and events delivered, payload bytes in and out (vm1's bytes_out holds the two 10 MiB downloads), errors. nkctl sockets: the socket-id mappings the engine holds (none left: every program closed its sockets). /proc/net/netkernel: the guest's NetKernel sockets. Then the NSM's own counters (debugfs)."
nkctl stats
nkctl sockets vm1
in_guest vm1 30 'cat /proc/net/netkernel' || fail "no /proc/net/netkernel in vm1"
in_guest nsm 30 'cat /sys/kernel/debug/nsm_kernel/*/stats' || true

# ----------------------------------------------------------------- 6
section "6. Teardown" \
	"The VMs save their kernel logs and power off, hostengine stops on SIGTERM; any WARN, BUG, oops, hung task or lockdep report in a VM fails the demo."
rc=0
topo_down || rc=$?
((rc == 0)) || fail "kernel trouble in a VM or an unclean engine stop (see above)"
echo "all VMs clean; engine exited 0"
printf '\n%sdemo passed in %d s%s (logs: %s)\n' "$bold" $((SECONDS - t_start)) "$off" "$logdir"
