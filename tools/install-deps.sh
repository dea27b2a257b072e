#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the Debian 12 packages NetKernel needs, only those missing.
#
# usage: tools/install-deps.sh [--check] [--quiet]
#   (none)    install what is missing (root; apt-get update runs only then)
#   --check   list what is missing and exit 1 if anything is; install nothing
#   --quiet   say nothing when everything is installed
#
# Besides the fixed list it wants one Debian 6.12 kernel (image and
# headers; bookworm has no meta-package for it): tools/testing/check-kernel.sh
# builds the modules against 6.12 too.  When none is installed, the newest
# linux-image-6.12.*+deb12-amd64 apt knows of is chosen.
#
# At the end it prints the Debian kernels the lab will boot
# (tools/testing/lab/lib.sh: lab_kernel_version 6.1, 6.12).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# One group a line: its name, why the project needs it, its packages.
GROUPS_=(
	"build|compilers and make|build-essential pkg-config"
	"host engine|DPDK 22.11 rte_vhost, config file, control socket, unit tests|dpdk-dev libdpdk-dev libinih-dev libjson-c-dev libcmocka-dev"
	"kernel modules|Debian's 6.1 kernel and headers, its source for checkpatch and KUnit under UML|linux-image-amd64 linux-headers-amd64 linux-source-6.1 bc flex bison libelf-dev libssl-dev"
	"VM lab|QEMU 7.2, the busybox initramfs, Debian's modules (6.12's are .ko.xz), namespaces and taps, control-socket pokes|qemu-system-x86 busybox-static cpio kmod xz-utils zstd iproute2 socat python3"
	"real programs|programs the lab runs in a guest as a user would: nginx with Debian's default nginx.conf; redis-server with Debian's redis.conf and redis-cli over localhost; Debian's ss (iproute2), netstat (net-tools) and lsof, which list a guest's sockets; OpenSSH's sshd (it sets IP_TOS on its connections), reached by ssh from the world; dnsmasq (a UDP server that answers through IP_PKTINFO)|nginx redis-server redis-tools iproute2 net-tools lsof openssh-server openssh-client dnsmasq-base"
	"benchmarks|the plot of make bench|gnuplot-nox"
	"fuzzing|clang's libFuzzer with AddressSanitizer and UBSan for make fuzz|clang libclang-rt-14-dev"
	"packaging|make deb (debhelper, DKMS, lintian) and the libvirt guest of the install test|debhelper dh-dkms dkms lintian fakeroot bash-completion libvirt-daemon-system libvirt-clients"
)
PACKAGES=()
declare -A group_of=()
for g in "${GROUPS_[@]}"; do
	IFS='|' read -r name _ pkgs <<<"$g"
	for p in $pkgs; do
		PACKAGES+=("$p")
		group_of[$p]=$name
	done
done
# Kernel series wanted besides linux-image-amd64's (which is 6.1).
EXTRA_SERIES=(6.12)

check=0 quiet=0
for arg in "$@"; do
	case $arg in
	--check) check=1 ;;
	--quiet) quiet=1 ;;
	-h | --help) sed -n 's/^# \{0,1\}//; 6,9p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "install-deps: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
	esac
done

installed() {	# PKG: 0 if dpkg has it installed
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# The newest installed version string of a kernel series, e.g.
# 6.12 -> 6.12.107+deb12-amd64, from linux-image-* and linux-headers-*
# both installed; empty if none.
series_installed() {
	local s=$1 img ver
	while read -r img; do
		ver=${img#linux-image-}
		if installed "linux-headers-$ver"; then
			echo "$ver"
		fi
	done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "linux-image-$s.*-amd64" 2>/dev/null |
		awk '$1 == "ii" { print $2 }' | grep -E "^linux-image-${s//./\\.}\.[0-9]+[^ ]*-amd64$" |
		grep -vE -- '-(cloud|rt)-amd64$' | sort -V) | tail -n 1
}

# The newest candidate of a series apt knows of (after apt-get update).
series_candidate() {
	local s=$1
	apt-cache search --names-only "^linux-image-${s//./\\.}\.[0-9]+.*-amd64\$" 2>/dev/null |
		awk '{ print $1 }' | grep -vE -- '-(cloud|rt)-amd64$|-unsigned$|-dbg$' |
		sed 's/^linux-image-//' | sort -V | tail -n 1
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
missing_series=()
for s in "${EXTRA_SERIES[@]}"; do
	[[ -n $(series_installed "$s") ]] || missing_series+=("$s")
done

report_kernels() {
	local s ver
	# shellcheck source-path=SCRIPTDIR source=testing/lab/lib.sh
	. "$top/tools/testing/lab/lib.sh"
	for s in 6.1 "${EXTRA_SERIES[@]}"; do
		if ver=$(lab_kernel_version "$s" 2>/dev/null); then
			echo "install-deps: Debian $s kernel for the lab: $ver"
		else
			echo "install-deps: no Debian $s kernel installed" >&2
		fi
	done
}

if ((${#missing[@]} == 0 && ${#missing_series[@]} == 0)); then
	if ((!quiet)); then
		echo "install-deps: all ${#PACKAGES[@]} packages and the ${EXTRA_SERIES[*]} kernel installed"
		report_kernels
	fi
	exit 0
fi

# What is missing, one group a line, with the reason for it.
for g in "${GROUPS_[@]}"; do
	IFS='|' read -r name why _ <<<"$g"
	m=()
	for p in "${missing[@]}"; do
		[[ ${group_of[$p]} != "$name" ]] || m+=("$p")
	done
	((${#m[@]} == 0)) || echo "install-deps: $name ($why): ${m[*]}"
done
for s in "${missing_series[@]}"; do
	echo "install-deps: Debian $s kernel (the modules must keep building for it): linux-image-$s.*-amd64 and its headers"
done

want=("${missing[@]}")
for s in "${missing_series[@]}"; do
	want+=("linux-image-$s.*-amd64 + headers")
done
if ((check)); then
	echo "install-deps: missing: ${want[*]}"
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: error: missing packages: ${want[*]}" >&2
	echo "install-deps: as root, 'make deps' or '$0' installs them" >&2
	exit 1
fi

# apt says "Err:" and "Failed to fetch" when a repository cannot be
# reached, and may still exit 0; either way nothing below can work.
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! apt-get update -q 2>&1 | tee "$log" || grep -qE '^(Err:|[WE]: Failed to fetch)' "$log"; then
	echo "install-deps: error: apt-get update could not reach the Debian repositories in /etc/apt/sources.list{,.d}; check the network or the mirror, then run $0 again" >&2
	exit 1
fi
for s in "${missing_series[@]}"; do
	ver=$(series_candidate "$s")
	if [[ -z $ver ]]; then
		echo "install-deps: error: apt knows no linux-image-$s.*-amd64" >&2
		exit 1
	fi
	missing+=("linux-image-$ver" "linux-headers-$ver")
done
echo "install-deps: installing: ${missing[*]}"
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
	echo "install-deps: error: apt-get install failed (see above): a repository unreachable, or a package it does not have" >&2
	exit 1
fi

still=()
for p in "${missing[@]}"; do
	installed "$p" || still+=("$p")
done
if ((${#still[@]})); then
	echo "install-deps: error: still missing after apt-get: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: done"
report_kernels
