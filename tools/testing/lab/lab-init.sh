#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of every VM of the lab topology (tools/testing/lab/topology.sh): one
# initramfs serves all roles, chosen on the kernel command line:
#
#   nk.role=nsm     load nsm_kernel.ko (nk.modargs=a=1,b=2 are its
#                   parameters), configure eth0 with nk.addrs
#   nk.role=guest   a NetKernel guest: no NIC, load af_netkernel.ko (with
#                   nk.modargs as its parameters), which puts the
#                   addresses the engine gives it on its interface nk0
#                   (af_netkernel/nk_netdev.c): wait until nk.addrs (the
#                   same, /32 and /128) are there; with netdev=0 in
#                   nk.modargs put them on lo, so that connecting to its
#                   own address still reaches its own listeners
#                   (Documentation/netkernel/deployment.rst)
#   nk.role=base    a baseline guest: eth0 with nk.addrs, no NetKernel
#   nk.addrs=A/N,B/N,...   addresses for eth0 (the first is the primary)
#   nk.gw=ADDR      a default route (optional)
#
# Then it serves the host's commands on ttyS1 (nk_agent) until the host
# powers it off.  Markers on the console: "NK-LAB: role ROLE ready".
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. /lib/nk-lab.sh
nk_setup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
ip link set lo up

role=$(nk_cmdline nk.role)
addrs=$(nk_cmdline nk.addrs)
gw=$(nk_cmdline nk.gw)
modargs=$(nk_cmdline nk.modargs)
kver=$(cat /etc/nk-lab/kernel)

# Debian's modules (virtio, virtio_net and their dependencies), then the
# project module of this role only.
while read -r m; do
	case $m in
	*/extra/*) continue ;;
	esac
	insmod "$m" || nk_fail "insmod $m failed"
done </etc/nk-lab/modules

# addrs_on DEV: the addresses of nk.addrs on DEV.
addrs_on() {
	old_ifs=$IFS
	IFS=,
	for a in $addrs; do
		ip addr add "$a" dev "$1" || nk_fail "ip addr add $a dev $1 failed"
	done
	IFS=$old_ifs
}

# addrs_wait: 0 once every address of nk.addrs is on an interface other
# than lo (up to 30 s); 1 otherwise.
addrs_wait() {
	old_ifs=$IFS
	IFS=,
	set -f
	# shellcheck disable=SC2086 # one word per address
	set -- $addrs
	set +f
	IFS=$old_ifs
	i=0
	for a in "$@"; do
		until ip -o addr show | grep -v "^[0-9]*: lo " | grep -q " ${a%/*}/"; do
			[ $i -lt 300 ] || return 1
			sleep 0.1
			i=$((i + 1))
		done
	done
}

net_setup() {
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e /sys/class/net/eth0 ] || nk_fail "no eth0"
	# IPv6 addresses usable at once: the lab's are unique by construction.
	echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad
	ip link set eth0 up || nk_fail "ip link set eth0 up failed"
	addrs_on eth0
	if [ -n "$gw" ]; then
		ip route add default via "$gw" || nk_fail "default route via $gw failed"
	fi
}

case $role in
nsm)
	net_setup
	# shellcheck disable=SC2046 # one word per parameter
	insmod "/lib/modules/$kver/extra/nsm_kernel.ko" $(echo "$modargs" | tr , ' ') ||
		nk_fail "insmod nsm_kernel.ko failed"
	;;
guest)
	[ ! -e /sys/class/net/eth0 ] || nk_fail "a NetKernel guest must have no NIC"
	# shellcheck disable=SC2046 # one word per parameter
	insmod "/lib/modules/$kver/extra/af_netkernel.ko" $(echo "$modargs" | tr , ' ') ||
		nk_fail "insmod af_netkernel.ko failed"
	case ,$modargs, in
	*,netdev=0,* | *,netdev=n,* | *,netdev=N,*) addrs_on lo ;;
	*) addrs_wait || nk_log "nk.addrs $addrs not on the guest's interface after 30 s" ;;
	esac
	;;
base)
	net_setup
	;;
*)
	nk_fail "unknown nk.role '$role'"
	;;
esac
nk_log "role $role ready: $(ip -o -4 addr show 2>/dev/null | awk '{printf "%s %s; ", $2, $4}')"
nk_agent /dev/ttyS1
