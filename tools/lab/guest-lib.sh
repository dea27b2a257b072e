# shellcheck shell=sh
# SPDX-License-Identifier: GPL-2.0
#
# NetKernel VM lab, guest side: installed by mkinitramfs.sh as
# /lib/nk-lab.sh and sourced by the guest's /init (busybox sh).
#
#   #!/bin/sh
#   . /lib/nk-lab.sh
#   nk_setup                       # mounts, "NK-LAB: init" marker
#   nk_load_modules                # the initramfs's modules, in order
#   [ -e /sys/... ] || nk_result fail "no such thing"
#   nk_result ok
#
# nk_result prints the whole kernel log between NK-DMESG-BEGIN and
# NK-DMESG-END (the kernel runs with `quiet`, so warnings reach the console
# only this way), then "NK-RESULT: ok" or "NK-RESULT: fail WHY", and powers
# the VM off.  The host side reads these markers (lab_console_result).

NK_LAB_MODULES=/etc/nk-lab/modules

nk_log() {
	echo "NK-LAB: $*"
}

nk_setup() {
	mkdir -p /proc /sys /dev /tmp /run
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
	mkdir -p /dev/pts /dev/shm
	mount -t devpts devpts /dev/pts 2>/dev/null || true
	mount -t tmpfs tmpfs /tmp
	mount -t tmpfs tmpfs /run
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	nk_log "init started, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"
}

# nk_load_modules: insmod every module listed in /etc/nk-lab/modules (the
# virtio modules and the --module ones, dependencies first); a failure ends
# the test with "fail".
nk_load_modules() {
	[ -r "$NK_LAB_MODULES" ] || return 0
	while read -r m; do
		[ -n "$m" ] || continue
		if ! insmod "$m"; then
			nk_result fail "insmod $m failed"
		fi
	done <"$NK_LAB_MODULES"
	nk_log "modules loaded"
}

# nk_result ok | fail WHY: print the kernel log and the verdict, power off.
nk_result() {
	verdict=$1
	shift
	echo "NK-DMESG-BEGIN"
	dmesg
	echo "NK-DMESG-END"
	if [ "$verdict" = ok ]; then
		echo "NK-RESULT: ok"
	else
		echo "NK-RESULT: fail $*"
	fi
	sync
	poweroff -f
	# Not reached unless poweroff failed; exiting init panics, which with
	# panic=-1 and -no-reboot stops the VM too.
	sleep 5
	exit 1
}

# nk_fail WHY: nk_result fail WHY.
nk_fail() {
	nk_result fail "$@"
}
