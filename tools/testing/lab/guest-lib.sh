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

# nk_wait_listen tcp|udp PORT WHAT [LOG]: wait, 20 s at most, until a
# socket listens on PORT: a NetKernel one (/proc/net/netkernel) or a
# native one (a TCP listener in /proc/net/tcp or tcp6, an unconnected UDP
# socket in /proc/net/udp).  Else say that WHAT does not listen, show LOG
# and fail.
nk_wait_listen() {
	_wl_hex=$(printf '%04X' "$2") _wl_i=0
	if [ "$1" = udp ]; then
		_wl_re=":$_wl_hex 0+:0000 07|:$2 " _wl_files=/proc/net/udp
	else
		_wl_re=":$_wl_hex [0-9A-F]+:0000 0A|:$2 " _wl_files="/proc/net/tcp /proc/net/tcp6"
	fi
	# shellcheck disable=SC2086 # the file names are words
	until grep -Eqs "$_wl_re" /proc/net/netkernel $_wl_files; do
		if [ $_wl_i -ge 100 ]; then
			echo "$3 does not listen"
			[ -z "${4:-}" ] || cat "$4"
			return 1
		fi
		sleep 0.2
		_wl_i=$((_wl_i + 1))
	done
}

# nk_wait_for FILE PATTERN [SECONDS]: wait, SECONDS (10) at most, until a
# line of FILE matches PATTERN (grep's; FILE may not exist yet: a program
# started in the background makes it).  1 if none did.
nk_wait_for() {
	_wf_i=0
	until grep -qs -- "$2" "$1"; do
		[ $_wf_i -lt $((${3:-10} * 5)) ] || return 1
		sleep 0.2
		_wf_i=$((_wf_i + 1))
	done
}

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

# nk_cmdline KEY: the value of KEY=VALUE on the kernel command line (empty
# when absent), e.g. nk_cmdline nk.role.
nk_cmdline() {
	read -r _nk_cmdline </proc/cmdline
	for w in $_nk_cmdline; do
		case $w in
		"$1"=*) echo "${w#*=}"; return 0 ;;
		esac
	done
	return 0
}

# nk_agent [TTY]: serve the host's commands on TTY (default /dev/ttyS1, the
# second serial port; the host side is lib.sh's lab_vm_exec) until the VM
# powers off.  The host writes one line per command:
#     ID TIMEOUT BASE64-OF-A-SH-SCRIPT
# and the agent runs the script with sh under `timeout -s KILL TIMEOUT`,
# stdin from /dev/null, stdout and stderr on TTY, then writes
#     NK-CMD-END ID STATUS
# on a line of its own.  Commands run one after the other; a command may
# start background work (redirected away from TTY) for later commands.
# A line that is not of that form (bytes of it were lost on the way: seen
# under heavy load) is not run: the agent answers
#     nk_agent: malformed command: LINE
# and lab_vm_exec sends the command again.
# PAGER=cat: a pager (perf report, say) would read the agent's own TTY.
nk_agent() {
	tty=${1:-/dev/ttyS1}
	export PAGER=cat
	[ -c "$tty" ] || nk_fail "nk_agent: no $tty"
	stty -F "$tty" raw -echo clocal 115200 || nk_fail "nk_agent: stty $tty failed"
	exec 3<>"$tty" 4>&3
	mkdir -p /tmp/nk-agent
	nk_log "agent ready on $tty"
	echo "NK-AGENT-READY" >&4
	while IFS= read -r line <&3; do
		id=${line%% *}
		rest=${line#* }
		tmo=${rest%% *}
		b64=${rest#* }
		[ -n "$id" ] || continue
		case $id in
		*[!0-9a-z.]*) tmo= ;;
		esac
		case $tmo in
		''|*[!0-9]*)
			printf 'nk_agent: malformed command: %s\nNK-CMD-END - 127\n' "$line" >&4
			continue ;;
		esac
		f=/tmp/nk-agent/cmd.$id
		if echo "$b64" | base64 -d >"$f" 2>/dev/null; then
			(cd /root && exec timeout -s KILL "$tmo" sh "$f") </dev/null >&4 2>&4
			rc=$?
		else
			echo "nk_agent: command $id: bad base64" >&4
			rc=127
		fi
		printf '\nNK-CMD-END %s %s\n' "$id" "$rc" >&4
	done
	nk_result fail "nk_agent: $tty closed"
}
