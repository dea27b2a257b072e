#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Deploying NetKernel from its Debian packages, end to end.  KTAP.
#
#   make_deb         make deb builds the three packages, lintian has no
#                    error or warning tag
#   install          they install into a scratch root (an overlay of / in
#                    a mount namespace, scratch-root.sh; nothing is written
#                    to the host's own files)
#   no_headers_hint  the -dkms postinst names the headers package of a
#                    kernel that has none
#   dkms_built       DKMS built and installed both modules for the lab's
#                    6.1 and 6.12 kernels, through the hook a kernel
#                    upgrade runs
#   versions         packages, hostengine -V, nkctl -V and the modules'
#                    version: one string, include/netkernel/nk_version.h
#   packaged_unit    the engine started from the packaged unit's
#                    ExecStart with the packaged configuration: ready, its
#                    sockets with the configured group and modes, exit 0
#                    on SIGTERM, nothing left behind
#   bad_config       a malformed or missing configuration: exit 1 and the
#                    file:line: message as an error in the journal
#   purge            dpkg --purge leaves no file, module or DKMS tree
#   lab_wget         the VM lab on the packaged engine and the modules DKMS
#                    built: the module says the version, and vm1 downloads
#                    the world's file (sha256 checked)
#   libvirt_guest    a guest defined and started through virsh
#                    (qemu:///system, TCG) from the documented domain XML
#                    (Documentation/netkernel/examples/libvirt-guest.xml),
#                    its QEMU running as libvirt-qemu: the download again;
#                    the host's mount points the same before and after
#   console clean    no kernel trouble in any VM; the engine stops cleanly
#
# libvirtd runs in a mount namespace of its own whose /etc/libvirt,
# /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and /run are this
# run's directories: the host's libvirt state is not touched.
#
# Logs in build/lab/deploy/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/lib.sh
. "$top/tools/testing/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../../tools/testing/lab/topology.sh
. "$top/tools/testing/lab/topology.sh"

logdir=$top/build/lab/deploy
out=$top/build/deploy
ver=$(sed -n 's/^#define NK_VERSION[[:space:]]*"\(.*\)"/\1/p' "$top/include/netkernel/nk_version.h")
rm -rf "$logdir" "$out"
mkdir -p "$out"
lab_init "$logdir"
t_start=$SECONDS

scratch=(install no_headers_hint dkms_built versions packaged_unit bad_config purge)
ktap_begin $((1 + ${#scratch[@]} + 3 + 3))

finish() {
	ktap_diag "logs: $logdir and $out" "total $((SECONDS - t_start)) s"
	ktap_end
}

# --- the packages
if tools_out=$("$top/tools/mkdeb.sh" "$out/deb" 2>&1) &&
	! grep -q '^[EW]: ' "$out/deb/lintian.txt"; then
	ktap_diag "lintian: $(grep -c '^[IP]: ' "$out/deb/lintian.txt" || true) info tags" \
		$(grep '^[IP]: ' "$out/deb/lintian.txt" || true)
	ktap_ok 0 "make_deb: $(cd "$out/deb" && echo netkernel-*.deb)"
else
	ktap_diag "$tools_out" "$(cat "$out/deb/lintian.txt" 2>/dev/null)"
	ktap_ok 1 "make_deb"
	ktap_fail_rest "prerequisite failed: no packages"
	finish
fi

# --- the scratch root
k61=$(lab_kernel_version 6.1)
k612=$(lab_kernel_version 6.12)
unshare -m "$here/scratch-root.sh" "$out/deb" "$out" "$k61" "$k612" >"$logdir/scratch.log" 2>&1 || true
for c in "${scratch[@]}"; do
	line=$(grep "^$c " "$out/results" 2>/dev/null | head -n 1 || true)
	if [[ -z $line ]]; then
		ktap_diag "$c: no result ($(tail -n 5 "$logdir/scratch.log"))"
		ktap_ok 1 "$c"
		continue
	fi
	read -r _ rc msg <<<"$line"
	ktap_diag "$c: $msg"
	ktap_ok "$rc" "$c"
done

# --- the lab on what the packages installed
if [[ ! -r $out/pkg/af_netkernel.ko || ! -r $out/pkg/nsm_kernel.ko || ! -x $out/pkg/hostengine ]]; then
	ktap_fail_rest "prerequisite failed: no modules or engine from the packages"
	finish
fi
TOPO_KVER=$k61
TOPO_KO_AF=$out/pkg/af_netkernel.ko
TOPO_KO_NSM=$out/pkg/nsm_kernel.ko
TOPO_ENGINE=$out/pkg/hostengine
HOSTENGINE=$TOPO_ENGINE
TOPO_INITRD_OUT=$out/topology-$k61.cpio.gz
# QEMU under libvirt runs as libvirt-qemu (group kvm): the guest's socket
# must let it in, as the packaged configuration does.
TOPO_ENGINE_OPTS="socket_group=kvm socket_mode=0660"
topo_up_ktap --guests 1 --no-base || finish

# download VM: the world's file through NetKernel, sha256 checked
download() {
	local got
	got=$(topo_exec "$1" 120 "cat /sys/module/af_netkernel/version
wget -q -O /tmp/f $TOPO_FILE_URL && sha256sum /tmp/f && rm -f /tmp/f" 2>&1) || true
	ktap_diag "$1: $got"
	[[ $got == "$ver"$'\n'"$TOPO_FILE_SHA "* ]]
}
rc=0
download vm1 || rc=1
ktap_ok "$rc" "lab_wget: vm1 on the packaged modules and engine"

# --- libvirt: vm1's QEMU stops, a libvirt domain takes its socket
lv=nk-libvirt
lvstate=$out/libvirt
libvirt_up() {
	local nspid i
	mkdir -p "$lvstate"/{etc,lib,log,cache,run}
	cp -a /etc/libvirt/. "$lvstate/etc/"
	# No cgroups or private /dev for QEMU (no systemd here); its own
	# stdio log files, no virtlogd.
	printf '%s\n' 'stdio_handler = "file"' 'cgroup_controllers = [ ]' 'namespaces = [ ]' \
		>>"$lvstate/etc/qemu.conf"
	lab_spawn "$logdir/libvirt-ns.log" unshare -m --propagation private sleep 100000
	nspid=$LAB_LAST_PID
	LV_NS=$nspid
	# Only once unshare has made the namespace: before that, nsenter
	# would enter the host's own and the mounts below would land there.
	for ((i = 0; i < 100; i++)); do
		[[ $(readlink "/proc/$nspid/ns/mnt" 2>/dev/null) != "$(readlink /proc/self/ns/mnt)" &&
			$(readlink "/proc/$nspid/exe" 2>/dev/null) == */sleep ]] && break
		sleep 0.05
	done
	((i < 100)) || return 1
	nsenter -t "$nspid" -m -- sh -ec "
		mount -t tmpfs -o mode=0755 lvrun /run
		mkdir -p /run/libvirt
		mount --bind '$lvstate/etc' /etc/libvirt
		mount --bind '$lvstate/lib' /var/lib/libvirt
		mount --bind '$lvstate/log' /var/log/libvirt
		mount --bind '$lvstate/cache' /var/cache/libvirt" || return 1
	lab_spawn "$logdir/libvirtd.log" nsenter -t "$nspid" -m -- libvirtd
	LV_LIBVIRTD=$LAB_LAST_PID
	for ((i = 0; i < 100; i++)); do
		lv_virsh version >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
lv_virsh() {
	nsenter -t "$LV_NS" -m -- virsh -q -c qemu:///system "$@"
}
libvirt_guest() {
	local xml=$lvstate/$lv.xml pipe pid i devices
	lab_vm_poweroff vm1
	# QEMU as libvirt-qemu reaches the socket through the lab's directory.
	chmod 0711 "$LAB_TMP"
	pipe=$LAB_TMP/$lv.agent
	rm -f "$pipe.in" "$pipe.out"
	mkfifo -m 600 "$pipe.in" "$pipe.out"
	: >"$LAB_LOG_DIR/$lv.console"
	devices="<serial type='file'><source path='$LAB_LOG_DIR/$lv.console'/><target port='0'/></serial>
    <serial type='pipe'><source path='$pipe'/><target port='1'/></serial>"
	sed -e "s|@NAME@|$lv|; s|@TYPE@|qemu|; s|@KERNEL@|$(lab_kernel_image "$TOPO_KVER")|" \
		-e "s|@INITRD@|$TOPO_INITRD|; s|@NK_SOCKET@|$TOPO_RUN/run/vm1.sock|" \
		-e "s|@CMDLINE@|console=ttyS0 panic=-1 quiet loglevel=5 no_timer_check nk.role=guest|" \
		-e "s|@DEVICES@|${devices//$'\n'/\\n}|" \
		"$top/Documentation/netkernel/examples/libvirt-guest.xml" >"$xml"
	lv_virsh define "$xml" >"$logdir/virsh.log" 2>&1 || return 1
	lv_virsh start "$lv" >>"$logdir/virsh.log" 2>&1 || return 1
	pid=$(cat "$lvstate/run/libvirt/qemu/$lv.pid" 2>/dev/null ||
		nsenter -t "$LV_NS" -m -- cat "/run/libvirt/qemu/$lv.pid")
	ktap_diag "$lv: QEMU pid $pid, user $(ps -o user= -p "$pid")"
	lab_on_cleanup "kill -9 $pid 2>/dev/null || true"
	[[ $(ps -o user= -p "$pid") == libvirt-qemu ]] || return 1
	LAB_VM_PID[$lv]=$pid
	LAB_VM_LOG[$lv]=$LAB_LOG_DIR/$lv.console
	LAB_VM_AGENT[$lv]=$pipe
	: >"$LAB_LOG_DIR/$lv.agent.log"
	lab_spawn "$LAB_LOG_DIR/$lv.agent.log" cat "$pipe.out"
	lab_vm_agent_wait "$lv" "$TOPO_BOOT_TIMEOUT" || return 1
	topo_ep_wait_ready 60 vm1 || return 1
	download "$lv"
}
libvirt_down() {
	[[ -n ${LV_NS:-} ]] || return 0
	[[ -z ${LAB_VM_AGENT[$lv]:-} ]] || lab_vm_dmesg "$lv" || true
	lv_virsh destroy "$lv" >>"$logdir/virsh.log" 2>&1 || true
	lv_virsh undefine "$lv" >>"$logdir/virsh.log" 2>&1 || true
	cp "$lvstate/log/qemu/$lv.log" "$logdir/$lv.qemu.log" 2>/dev/null || true
	lab_stop_pid "$LV_LIBVIRTD" || true
	lab_stop_pid "$LV_NS" || true
}
# The host's own mount points, before and after: libvirtd's mounts must
# stay in its namespace.
host_mounts() {
	cut -d' ' -f5 /proc/self/mountinfo | sort
}
mounts_before=$(host_mounts)
rc=0
if libvirt_up; then
	libvirt_guest || rc=1
else
	ktap_diag "libvirtd did not answer: $(tail -n 5 "$logdir/libvirtd.log")"
	rc=1
fi
((rc == 0)) || ktap_diag "$(tail -n 5 "$logdir/virsh.log" "$lvstate/log/qemu/$lv.log" 2>/dev/null)"
libvirt_down
if [[ $(host_mounts) != "$mounts_before" ]]; then
	ktap_diag "the host's mounts changed:" "$(diff <(echo "$mounts_before") <(host_mounts))"
	rc=1
fi
ktap_ok "$rc" "libvirt_guest: $lv through virsh, QEMU as libvirt-qemu, vm1's socket; the host's mounts untouched"
rc=0
lab_scan_console "$lv" || rc=1
ktap_ok "$rc" "console clean: $lv"

# vm1 was powered off for the libvirt guest: no dmesg to save of it.
topo_down_ktap vm1
finish
