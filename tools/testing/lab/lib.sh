# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# NetKernel VM lab: a library sourced by the lab's scripts (bash, with
# `set -euo pipefail`).  It picks a Debian kernel, decides between KVM and
# TCG, starts QEMU guests and helper processes, tracks every PID and network
# namespace it creates and removes exactly those on exit, and scans guest
# console logs for kernel trouble.
#
#   . tools/testing/lab/lib.sh
#   lab_init /path/to/log/dir            # installs the EXIT/INT/TERM trap
#   ver=$(lab_kernel_version 6.1)        # 6.1.0-56-amd64, newest installed
#   tools/testing/lab/mkinitramfs.sh -k "$ver" --init my-init -o initrd.cpio.gz
#   lab_vm_start vm1 --kernel "$ver" --initrd initrd.cpio.gz --nk /run/x.sock
#   lab_vm_wait vm1 120                  # 0: QEMU exited; 124: timed out
#   lab_console_result vm1               # the guest's NK-RESULT line
#   lab_console_trouble "$(lab_vm_console vm1)"  # 1 and the lines if any
#
# Environment:
#   LAB_ACCEL   auto (default) | kvm | tcg
#   LAB_QEMU    the QEMU binary (default qemu-system-x86_64)
#
# Guest side: mkinitramfs.sh installs tools/testing/lab/guest-lib.sh as
# /lib/nk-lab.sh; an /init sources it (nk_setup, nk_load_modules,
# nk_result ok|fail WHY) and prints NK-RESULT markers, then the whole
# kernel log, and powers off.

if [[ -n ${_NK_LAB_LIB_LOADED:-} ]]; then
	return 0
fi
_NK_LAB_LIB_LOADED=1

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_TOP=$(cd "$LAB_DIR/../../.." && pwd)
LAB_QEMU=${LAB_QEMU:-qemu-system-x86_64}
LAB_ACCEL=${LAB_ACCEL:-auto}
LAB_LOG_DIR=${LAB_LOG_DIR:-}

LAB_PIDS=()		# every process the lab started, in start order
LAB_NETNS=()		# every network namespace the lab created
LAB_CLEANUP_CMDS=()	# extra commands run (eval'd) at cleanup, last first
declare -gA LAB_VM_PID=()	# VM name -> QEMU pid
declare -gA LAB_VM_LOG=()	# VM name -> serial console log
declare -gA LAB_VM_AGENT=()	# VM name -> its agent FIFOs (PATH.in, PATH.out)
LAB_TMP=		# lab_tmpdir: scratch directory, removed at cleanup
LAB_CMD_SEQ=0		# lab_vm_exec: last command id
LAB_LAST_PID=
_LAB_KVM=		# cached: yes | no

# ---------------------------------------------------------------- messages

lab_msg() {
	printf '# lab: %s\n' "$*" >&2
}

lab_die() {
	printf 'lab: error: %s\n' "$*" >&2
	exit 1
}

# ----------------------------------------------------------------- kernels

# lab_kernel_version [SERIES]: the newest installed Debian kernel of SERIES
# (default 6.1) that has both /boot/vmlinuz-<ver> and /lib/modules/<ver>,
# e.g. 6.1 -> 6.1.0-56-amd64, 6.12 -> 6.12.107+deb12-amd64.  Fails (1) with
# a message when none is installed.
lab_kernel_version() {
	local series=${1:-6.1} f ver best
	local -a vers=()
	# The glob needs a '.' after the series, so 6.1 never matches 6.12.
	for f in /boot/vmlinuz-"$series".*-amd64; do
		[[ -e $f ]] || continue
		ver=${f#/boot/vmlinuz-}
		if [[ -d /lib/modules/$ver ]]; then
			vers+=("$ver")
		fi
	done
	if ((${#vers[@]} == 0)); then
		printf 'lab: no Debian kernel %s installed (/boot/vmlinuz-%s.*-amd64 with /lib/modules; run tools/install-deps.sh)\n' \
			"$series" "$series" >&2
		return 1
	fi
	best=$(printf '%s\n' "${vers[@]}" | sort -V | tail -n 1)
	printf '%s\n' "$best"
}

# lab_kernel_image VER: the kernel image of version VER.
lab_kernel_image() {
	local img=/boot/vmlinuz-$1
	[[ -r $img ]] || { printf 'lab: %s not readable\n' "$img" >&2; return 1; }
	printf '%s\n' "$img"
}

# --------------------------------------------------------------- KVM / TCG

# lab_kvm_usable: 0 when QEMU can really run a Debian kernel under KVM here.
# A /dev/kvm node is not enough: it may lack permissions, or (as on the
# nested hosts this lab runs on) accept KVM_CREATE_VM and even run real-mode
# code while a Linux guest then spins forever.  Two probes, both must pass:
#  1. a 64 KiB "BIOS" whose reset vector writes to an isa-debug-exit port
#     (QEMU exits 3 only if that guest instruction ran), tried with
#     -cpu host, host,-arch-capabilities and QEMU's default model (some
#     hosts refuse an MSR that -cpu host sets): the first that works is
#     the CPU model used (LAB_KVM_CPU);
#  2. the lab's 6.1 kernel without an initramfs must reach its "Kernel
#     panic" (no root fs) within 10 s, which a working KVM does in ~1 s.
# The answer is cached per host boot, user and QEMU binary in
# build/lab/kvm-probe (delete it to probe again).
LAB_KVM_CPU=

lab_kvm_usable() {
	local cache=$LAB_TOP/build/lab/kvm-probe key line
	if [[ -z $_LAB_KVM ]]; then
		key="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)/$(id -u) $(stat -c %Y "$(command -v "$LAB_QEMU")" 2>/dev/null)"
		line=$(cat "$cache" 2>/dev/null) || line=
		if [[ -n $line && ${line% *} == "$key "* ]]; then
			read -r _ _ _LAB_KVM LAB_KVM_CPU <<<"$line"
		else
			_LAB_KVM=no
			LAB_KVM_CPU=
			if [[ ! -c /dev/kvm ]]; then
				lab_msg "no /dev/kvm: guests run under TCG"
			elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
				lab_msg "/dev/kvm not accessible: guests run under TCG"
			elif ! _lab_kvm_probe_bios; then
				lab_msg "/dev/kvm does not run guest code: guests run under TCG"
			elif ! _lab_kvm_probe_kernel; then
				lab_msg "/dev/kvm runs real-mode code but a Linux guest does not boot under it: guests run under TCG"
			else
				_LAB_KVM=yes
			fi
			if mkdir -p "${cache%/*}" 2>/dev/null; then
				echo "$key $_LAB_KVM ${LAB_KVM_CPU:-default}" >"$cache" 2>/dev/null || true
			fi
		fi
		[[ $LAB_KVM_CPU != default ]] || LAB_KVM_CPU=
	fi
	[[ $_LAB_KVM == yes ]]
}

# LAB_KVM_CPU as QEMU arguments (none for QEMU's default model).
_lab_kvm_cpu_args() {
	if [[ -n $LAB_KVM_CPU ]]; then
		printf '%s\n' -cpu "$LAB_KVM_CPU"
	fi
}

_lab_kvm_probe_bios() {
	local bios cpu rc
	local -a cpuarg
	bios=$(mktemp /tmp/nk-lab-kvmprobe.XXXXXX)
	# 64 KiB of hlt; at the reset vector (offset 0xfff0):
	# mov al,1; out 0xf4,al; hlt; jmp $-1
	head -c 65536 /dev/zero | tr '\0' '\364' >"$bios"
	printf '\260\001\346\364\364\353\375' |
		dd of="$bios" bs=1 seek=65520 conv=notrunc status=none
	for cpu in host host,-arch-capabilities default; do
		cpuarg=(-cpu "$cpu")
		[[ $cpu != default ]] || cpuarg=()
		rc=0
		# In a subshell: QEMU may abort, and the shell reaping it reports that.
		(timeout 20 "$LAB_QEMU" -accel kvm -machine q35 "${cpuarg[@]}" -nodefaults \
			-no-user-config -display none -monitor none -serial none \
			-bios "$bios" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			</dev/null >/dev/null 2>&1 || exit $?) 2>/dev/null || rc=$?
		if [[ $rc -eq 3 ]]; then
			LAB_KVM_CPU=$cpu
			[[ $cpu != default ]] || LAB_KVM_CPU=
			rm -f "$bios"
			return 0
		fi
	done
	rm -f "$bios"
	return 1
}

_lab_kvm_probe_kernel() {
	local ver con rc=0
	local -a cpuarg
	ver=$(lab_kernel_version 6.1 2>/dev/null) || return 1
	con=$(mktemp /tmp/nk-lab-kvmprobe.XXXXXX)
	mapfile -t cpuarg < <(_lab_kvm_cpu_args)
	(timeout 10 "$LAB_QEMU" -accel kvm -machine q35 "${cpuarg[@]}" -m 256 \
		-nodefaults -no-user-config -display none -monitor none -no-reboot \
		-serial "file:$con" -kernel "/boot/vmlinuz-$ver" \
		-append "console=ttyS0 panic=-1 loglevel=3" \
		</dev/null >/dev/null 2>&1 || exit $?) 2>/dev/null || rc=$?
	grep -aq 'Kernel panic' "$con" || rc=1
	rm -f "$con"
	return "$rc"
}

# lab_accel_select: set LAB_ACCEL_USED to kvm or tcg, following LAB_ACCEL
# (auto|kvm|tcg).  Call it in the script's shell (not in $(...)) so that
# the probe's result and LAB_KVM_CPU stay set.
LAB_ACCEL_USED=

lab_accel_select() {
	case $LAB_ACCEL in
	kvm)
		lab_kvm_usable || lab_die "LAB_ACCEL=kvm but KVM does not work here"
		LAB_ACCEL_USED=kvm ;;
	tcg)
		LAB_ACCEL_USED=tcg ;;
	auto)
		if lab_kvm_usable; then LAB_ACCEL_USED=kvm; else LAB_ACCEL_USED=tcg; fi ;;
	*)
		lab_die "LAB_ACCEL must be auto, kvm or tcg (not '$LAB_ACCEL')" ;;
	esac
}

# lab_accel: print kvm or tcg (see lab_accel_select).
lab_accel() {
	lab_accel_select
	echo "$LAB_ACCEL_USED"
}

# ------------------------------------------------------ processes, cleanup

# lab_init [LOG_DIR]: set the log directory (created) and install the trap
# that runs lab_cleanup on exit, SIGINT and SIGTERM.
lab_init() {
	if [[ -n ${1:-} ]]; then
		LAB_LOG_DIR=$1
	fi
	if [[ -z $LAB_LOG_DIR ]]; then
		LAB_LOG_DIR=$LAB_TOP/build/lab/logs
	fi
	mkdir -p "$LAB_LOG_DIR"
	trap lab_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# lab_spawn LOG CMD...: start CMD in the background with stdin from
# /dev/null and stdout+stderr appended to LOG; its PID is recorded (killed
# by lab_cleanup) and left in LAB_LAST_PID.  Call it in the script's own
# shell, not in $(...), so that the PID stays a child of the script.
lab_spawn() {
	local log=$1
	shift
	"$@" </dev/null >>"$log" 2>&1 &
	LAB_LAST_PID=$!
	LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_alive PID: 0 while PID runs (a zombie counts as gone).
lab_alive() {
	local state
	[[ -r /proc/$1/stat ]] || return 1
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# lab_wait_pid PID TIMEOUT: wait up to TIMEOUT seconds for PID (a child of
# this shell) to exit; returns its exit status, or 124 if still running.
lab_wait_pid() {
	local pid=$1 deadline=$((SECONDS + $2)) rc=0
	while lab_alive "$pid"; do
		((SECONDS < deadline)) || return 124
		sleep 0.2
	done
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# lab_stop_pid PID [GRACE]: SIGTERM, up to GRACE seconds (default 10), then
# SIGKILL.  Returns the process's exit status (124 if it had to be killed).
lab_stop_pid() {
	local pid=$1 grace=${2:-10} rc=0
	if lab_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
	lab_wait_pid "$pid" "$grace" || rc=$?
	if [[ $rc -eq 124 ]]; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	return "$rc"
}

# lab_cpu_ticks PID...: the user and system CPU time the processes (all
# their threads) used so far, in clock ticks (getconf CLK_TCK); a process
# that is gone counts 0.
lab_cpu_ticks() {
	local pid total=0 f
	local -a st
	for pid in "$@"; do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		read -ra st <<<"${f##*) }"
		total=$((total + st[11] + st[12]))
	done
	echo "$total"
}

# lab_tmpdir: create LAB_TMP (a private directory under /tmp, removed at
# cleanup) unless it exists.  Call it in the script's shell.
lab_tmpdir() {
	if [[ -z $LAB_TMP ]]; then
		LAB_TMP=$(mktemp -d /tmp/nk-lab.XXXXXX)
		lab_on_cleanup "rm -rf '$LAB_TMP'"
	fi
}

# lab_on_cleanup CMD: run CMD (a string, eval'd) at cleanup, before the
# namespaces are deleted; later registrations run first.
lab_on_cleanup() {
	LAB_CLEANUP_CMDS+=("$1")
}

# lab_cleanup: stop every process the lab started (newest first), run the
# registered cleanup commands, delete the namespaces it created.  Safe to
# call more than once.
lab_cleanup() {
	local rc=$? i pid
	set +e
	for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
		pid=${LAB_PIDS[i]}
		if lab_alive "$pid"; then
			lab_msg "stopping leftover process $pid"
			lab_stop_pid "$pid" 5 >/dev/null 2>&1
		fi
		wait "$pid" 2>/dev/null
	done
	LAB_PIDS=()
	for ((i = ${#LAB_CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
		eval "${LAB_CLEANUP_CMDS[i]}"
	done
	LAB_CLEANUP_CMDS=()
	for ((i = ${#LAB_NETNS[@]} - 1; i >= 0; i--)); do
		ip netns delete "${LAB_NETNS[i]}" 2>/dev/null
	done
	LAB_NETNS=()
	return "$rc"
}

# ------------------------------------------------------------------ waits

# lab_wait_for FILE REGEX TIMEOUT [PID]: wait until FILE has a line matching
# the extended REGEX.  Fails early (1) when PID is given and exits first,
# 124 on timeout.
lab_wait_for() {
	local file=$1 re=$2 deadline=$((SECONDS + $3)) pid=${4:-}
	while :; do
		if [[ -f $file ]] && grep -Eq -- "$re" "$file"; then
			return 0
		fi
		if [[ -n $pid ]] && ! lab_alive "$pid"; then
			# One last look: it may have written the line and exited.
			grep -Eq -- "$re" "$file" 2>/dev/null && return 0
			return 1
		fi
		((SECONDS < deadline)) || return 124
		sleep 0.2
	done
}

# lab_wait_socket PATH TIMEOUT [PID]: wait until PATH is a Unix socket.
lab_wait_socket() {
	local path=$1 deadline=$((SECONDS + $2)) pid=${3:-}
	until [[ -S $path ]]; do
		if [[ -n $pid ]] && ! lab_alive "$pid"; then
			return 1
		fi
		((SECONDS < deadline)) || return 124
		sleep 0.2
	done
}

# ------------------------------------------------------ network namespaces

# lab_netns_add NAME: create namespace NAME (deleted at cleanup), with lo up.
lab_netns_add() {
	ip netns add "$1"
	LAB_NETNS+=("$1")
	ip -n "$1" link set lo up
}

# lab_tap_add NETNS TAP: a tap device inside NETNS, up (it goes with NETNS).
lab_tap_add() {
	ip -n "$1" tuntap add dev "$2" mode tap
	ip -n "$1" link set "$2" up
}

# ------------------------------------------------------------------- VMs

# lab_vm_start NAME [OPTIONS]: boot a QEMU guest in the background.
#   --kernel VER      Debian kernel version (default: lab_kernel_version 6.1)
#   --initrd FILE     initramfs (required)
#   --mem MB          guest RAM, shared memfd (default 512)
#   --smp N           vCPUs (default 1)
#   --append STR      extra kernel command line, after the lab's
#                     "console=ttyS0 panic=-1 quiet loglevel=5
#                     no_timer_check" (quiet keeps the boot short;
#                     loglevel=5 still puts warnings, and so WARN splats, on
#                     the console as they happen; the guest prints the whole
#                     kernel log at the end, nk_result; no_timer_check: under
#                     TCG on a loaded host the IO-APIC timer check can fail
#                     and panic the boot, as it did here at load 6)
#   --nk SOCK         an nk device: vhost-user-gpio-pci on socket SOCK
#                     (repeatable; devices nk0, nk1, ...)
#   --nk-reconnect    reconnect=1 on the nk chardevs (backend restarts)
#   --netns NS        run QEMU inside network namespace NS
#   --tap IFNAME      a virtio-net NIC on tap IFNAME (in --netns, if given)
#   --mac MAC         its MAC (default 52:54:00:12:34:56)
#   --qemu ARG        one extra QEMU argument (repeatable)
#   --agent           a second serial port (the guest's ttyS1) on a pair of
#                     FIFOs, for guest-lib.sh's nk_agent: lab_vm_exec runs
#                     commands in the guest through it, and everything the
#                     agent writes is kept in $LAB_LOG_DIR/NAME.agent.log
# The serial console goes to $LAB_LOG_DIR/NAME.console, QEMU's own
# messages to $LAB_LOG_DIR/NAME.qemu.log, its monitor is a socket for
# lab_vm_monitor.  QEMU's PID: LAB_VM_PID[NAME].
lab_vm_start() {
	local name=$1 ver='' initrd='' mem=512 smp=1 append='' netns='' tap='' mac=52:54:00:12:34:56
	local reconnect='' accel i agent='' pipe=''
	local -a nks=() extra=() args=() cmd=()
	shift
	while (($#)); do
		case $1 in
		--kernel) ver=$2; shift ;;
		--initrd) initrd=$2; shift ;;
		--mem) mem=$2; shift ;;
		--smp) smp=$2; shift ;;
		--append) append=$2; shift ;;
		--nk) nks+=("$2"); shift ;;
		--nk-reconnect) reconnect=,reconnect=1 ;;
		--netns) netns=$2; shift ;;
		--tap) tap=$2; shift ;;
		--mac) mac=$2; shift ;;
		--qemu) extra+=("$2"); shift ;;
		--agent) agent=1 ;;
		*) lab_die "lab_vm_start: unknown option $1" ;;
		esac
		shift
	done
	[[ -n $initrd ]] || lab_die "lab_vm_start $name: --initrd is required"
	[[ -r $initrd ]] || lab_die "lab_vm_start $name: $initrd not readable"
	[[ -n $ver ]] || ver=$(lab_kernel_version 6.1)
	[[ -n $LAB_LOG_DIR ]] || lab_init ""
	lab_accel_select
	accel=$LAB_ACCEL_USED

	lab_tmpdir
	# Several vCPUs under TCG run on as many host threads (MTTCG).
	if [[ $accel == tcg ]] && ((smp > 1)); then
		accel=tcg,thread=multi
	fi
	args=(-name "$name" -machine q35 -accel "$accel")
	if [[ $accel == kvm ]]; then
		mapfile -t -O "${#args[@]}" args < <(_lab_kvm_cpu_args)
	fi
	# shellcheck disable=SC2054 # the commas are QEMU's
	args+=(-m "$mem" -smp "$smp"
		-object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
		-numa node,memdev=mem
		-nographic -nodefaults -no-user-config -no-reboot
		-monitor "unix:$LAB_TMP/$name.monitor,server=on,wait=off"
		-serial "file:$LAB_LOG_DIR/$name.console"
		-kernel "$(lab_kernel_image "$ver")" -initrd "$initrd"
		-append "console=ttyS0 panic=-1 quiet loglevel=5 no_timer_check${append:+ $append}")
	for i in "${!nks[@]}"; do
		args+=(-chardev "socket,id=nk$i,path=${nks[i]}$reconnect"
			-device "vhost-user-gpio-pci,chardev=nk$i")
	done
	if [[ -n $tap ]]; then
		# event_idx=off: with it on, QEMU 7.2's virtio-net can stop
		# taking packets from the tap for good while the guest has
		# posted receive buffers (the RX queue's last_avail_idx stays
		# behind shadow_avail_idx; upstream QEMU fixed a stall of this
		# kind in 06b12970174, "virtio-net: fix network stall under
		# load").  Every connection through the NIC then times out.
		args+=(-netdev "tap,id=net0,ifname=$tap,script=no,downscript=no,vhost=off"
			-device "virtio-net-pci,netdev=net0,mac=$mac,event_idx=off")
	fi
	if [[ -n $agent ]]; then
		# QEMU opens PATH.in and PATH.out read-write, so neither side's
		# open() ever waits for the other.
		lab_tmpdir
		pipe=$LAB_TMP/$name.agent
		rm -f "$pipe.in" "$pipe.out"
		mkfifo -m 600 "$pipe.in" "$pipe.out"
		args+=(-serial "pipe:$pipe")
	fi
	args+=("${extra[@]}")

	cmd=("$LAB_QEMU" "${args[@]}")
	if [[ -n $netns ]]; then
		cmd=(ip netns exec "$netns" "${cmd[@]}")
	fi
	: >"$LAB_LOG_DIR/$name.console"
	printf '%q ' "${cmd[@]}" >"$LAB_LOG_DIR/$name.qemu.log"
	printf '\n' >>"$LAB_LOG_DIR/$name.qemu.log"
	lab_spawn "$LAB_LOG_DIR/$name.qemu.log" "${cmd[@]}"
	LAB_VM_PID[$name]=$LAB_LAST_PID
	LAB_VM_LOG[$name]=$LAB_LOG_DIR/$name.console
	lab_msg "vm $name: pid $LAB_LAST_PID, kernel $ver, $accel, console $LAB_LOG_DIR/$name.console"
	if [[ -n $agent ]]; then
		: >"$LAB_LOG_DIR/$name.agent.log"
		LAB_VM_AGENT[$name]=$pipe
		# The reader sees EOF when QEMU, the FIFO's last writer, exits.
		lab_spawn "$LAB_LOG_DIR/$name.agent.log" cat "$pipe.out"
	fi
}

# lab_vm_console NAME: path of NAME's console log.
lab_vm_console() {
	printf '%s\n' "${LAB_VM_LOG[$1]:-$LAB_LOG_DIR/$1.console}"
}

# lab_vm_wait NAME TIMEOUT: wait for the guest to power off.  Returns QEMU's
# exit status, or 124 after killing a guest that did not stop in time.
lab_vm_wait() {
	local pid=${LAB_VM_PID[$1]:-} rc=0
	[[ -n $pid ]] || lab_die "lab_vm_wait: no VM named $1"
	lab_wait_pid "$pid" "$2" || rc=$?
	if [[ $rc -eq 124 ]]; then
		lab_msg "vm $1: still running after $2 s, killing it"
		lab_stop_pid "$pid" 5 || true
	fi
	return "$rc"
}

# lab_vm_stop NAME: stop a guest that is still running.
lab_vm_stop() {
	local pid=${LAB_VM_PID[$1]:-}
	[[ -n $pid ]] || return 0
	lab_stop_pid "$pid" 10 || true
}

# ------------------------------------------------------- console analysis

# Kernel trouble in a console log: splats, oopses, panics, hung tasks and
# lockdep reports.
LAB_TROUBLE_RE='WARNING:|------------\[ cut here|BUG:|Oops|general protection fault|Kernel panic|INFO: task .* blocked|hung_task|possible circular locking|inconsistent lock state|Call Trace:'

# lab_console_text LOG: the console log as plain lines: no carriage
# returns, no terminal escape sequences (SeaBIOS clears the screen right
# before the kernel starts, so the first guest line would carry them).
lab_console_text() {
	tr -d '\r' <"$1" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[c78]//g'
}

# lab_console_trouble LOG: print (to stdout, as "# " diagnostics) every line
# of LOG that shows kernel trouble and return 1; return 0 when clean.
lab_console_trouble() {
	local log=$1 hits
	[[ -r $log ]] || { echo "# $log: no console log"; return 1; }
	hits=$(lab_console_text "$log" | grep -anE -- "$LAB_TROUBLE_RE") || return 0
	printf '%s\n' "$hits" | head -n 40 | sed 's/^/# trouble: /'
	return 1
}

# lab_console_marker LOG MARKER: the text of each console line from MARKER
# on (e.g. "NK-LAB: init started ...").  Markers are found anywhere in a
# line: the kernel's own console output can land in front of the guest's.
# Kernel output appended behind a marker ("[    2.5] ...") is cut off.
lab_console_marker() {
	lab_console_text "$1" | grep -aoF -- "$2" >/dev/null || return 1
	lab_console_text "$1" | grep -aF -- "$2" |
		sed "s/.*\($(printf '%s' "$2" | sed 's/[][\/.*^$]/\\&/g')\)/\1/; s/ *\[ *[0-9]\{1,\}\.[0-9]\{6\}\].*//"
}

# lab_console_result LOG: print the guest's last "NK-RESULT: ..." verdict
# (without the prefix; "none" if there is none); return 0 only for "ok".
lab_console_result() {
	local line
	line=$(lab_console_marker "$1" 'NK-RESULT: ' | tail -n 1) || true
	line=${line#NK-RESULT: }
	printf '%s\n' "${line:-none}"
	[[ $line == ok ]]
}

# lab_console_tail LOG [N]: last N (20) lines of LOG as "# " diagnostics.
lab_console_tail() {
	lab_console_text "$1" | tail -n "${2:-20}" | sed 's/^/#   /'
}

# ------------------------------------------------------------ guest agent
#
# A VM started with --agent runs guest-lib.sh's nk_agent on its ttyS1; the
# host writes "ID TIMEOUT BASE64" lines into NAME.agent.in and a reader
# copies everything the guest writes into $LAB_LOG_DIR/NAME.agent.log.

# lab_vm_agent_wait NAME TIMEOUT: wait for the guest's NK-AGENT-READY.
# Returns 1 if QEMU exited first, 124 on timeout.
lab_vm_agent_wait() {
	[[ -n ${LAB_VM_AGENT[$1]:-} ]] || lab_die "lab_vm_agent_wait: $1 has no agent"
	lab_wait_for "$LAB_LOG_DIR/$1.agent.log" '^NK-AGENT-READY' "$2" "${LAB_VM_PID[$1]}"
}

# lab_vm_monitor NAME COMMAND: one command on the VM's QEMU monitor (HMP,
# e.g. "stop", "cont"); prints what QEMU answered.
lab_vm_monitor() {
	local sock=$LAB_TMP/$1.monitor
	[[ -S $sock ]] || lab_die "lab_vm_monitor: $1 has no monitor socket"
	printf '%s\n' "$2" | socat -t 2 - "UNIX-CONNECT:$sock" | tr -d '\r' |
		grep -v '^QEMU .* monitor' | grep -vF "(qemu)" || true
}

# _lab_agent_wait LOG OFF ID LINE TIMEOUT PID: wait for the agent's end of
# command ID in LOG after byte OFF: 0 once it ended, 2 when the agent got
# LINE with bytes lost (its "malformed command" or "bad base64" answer
# quotes a part of LINE: the command did not run), 1 when PID exits
# first, 124 on timeout.
_lab_agent_wait() {
	local log=$1 off=$2 id=$3 line=$4 deadline=$(($5 + SECONDS)) pid=$6 new bad
	while :; do
		new=$(tail -c +$((off + 1)) "$log" 2>/dev/null)
		# Ours: the malformed line is what was left of LINE's end, or our
		# ID came whole with its base64 damaged (then its END follows).
		while IFS= read -r bad; do
			[[ ${#bad} -ge 16 && $line == *"$bad" ]] && return 2
		done < <(sed -n 's/^nk_agent: malformed command: //p' <<<"$new")
		grep -qxF "nk_agent: command $id: bad base64" <<<"$new" && return 2
		if grep -Eq -- "^NK-CMD-END ${id//./\\.} -?[0-9]+\$" <<<"$new"; then
			return 0
		fi
		if [[ -n $pid ]] && ! lab_alive "$pid"; then
			grep -Eq -- "^NK-CMD-END ${id//./\\.} -?[0-9]+\$" "$log" 2>/dev/null && return 0
			return 1
		fi
		((SECONDS < deadline)) || return 124
		sleep 0.2
	done
}

# lab_vm_exec NAME TIMEOUT SCRIPT: run SCRIPT (sh, may be several lines)
# in guest NAME, killed after TIMEOUT seconds; print its output (stdout
# and stderr together) and return its exit status: 137 when the guest's
# timeout killed it, 124 when no answer came (the guest hangs), 125 when
# QEMU is gone.  Commands to one guest run one after the other.
lab_vm_exec() {
	local name=$1 tmo=$2 script=$3 pipe log id off fd content rc line
	pipe=${LAB_VM_AGENT[$name]:-}
	[[ -n $pipe ]] || lab_die "lab_vm_exec: $name has no agent"
	log=$LAB_LOG_DIR/$name.agent.log
	lab_alive "${LAB_VM_PID[$name]}" || { echo "lab: vm $name is not running" >&2; return 125; }
	LAB_CMD_SEQ=$((LAB_CMD_SEQ + 1))
	id=$BASHPID.$LAB_CMD_SEQ
	line="$id $tmo $(printf '%s\n' "$script" | base64 -w 0)"
	for _ in 1 2 3; do
		off=$(stat -c %s "$log")
		# Read-write: the open never blocks, even if QEMU is gone.
		exec {fd}<>"$pipe.in"
		printf '%s\n' "$line" >&"$fd"
		exec {fd}>&-
		rc=0
		_lab_agent_wait "$log" "$off" "$id" "$line" $((tmo + 30)) "${LAB_VM_PID[$name]}" ||
			rc=$?
		((rc == 2)) || break
		echo "lab: vm $name: command $id reached the agent garbled; sent again" >&2
	done
	content=$(tail -c +$((off + 1)) "$log")
	if ((rc)); then
		printf '%s\n' "$content"
		if ((rc == 2)); then
			echo "lab: vm $name: command $id reached the agent garbled three times" >&2
			return 124
		fi
		if ((rc == 124)); then
			echo "lab: vm $name: no answer to command $id within $((tmo + 30)) s" >&2
			return 124
		fi
		echo "lab: vm $name exited while running command $id" >&2
		return 125
	fi
	rc=${content##*$'\n'NK-CMD-END "$id" }
	rc=${rc%%$'\n'*}
	content=${content%$'\n'NK-CMD-END "$id" *}
	if [[ -z $content || $content == *$'\n' ]]; then
		printf '%s' "$content"
	else
		printf '%s\n' "$content"
	fi
	return "$rc"
}

# lab_vm_dmesg NAME: save guest NAME's whole kernel log (through its agent)
# as $LAB_LOG_DIR/NAME.dmesg.
lab_vm_dmesg() {
	lab_vm_exec "$1" 30 dmesg >"$LAB_LOG_DIR/$1.dmesg" 2>&1
}

# lab_vm_poweroff NAME [TIMEOUT]: ask guest NAME's agent to power off and
# wait (default 30 s) for QEMU to exit; kill it after that.
lab_vm_poweroff() {
	local name=$1 pipe fd
	pipe=${LAB_VM_AGENT[$name]:-}
	if [[ -n $pipe ]] && lab_alive "${LAB_VM_PID[$name]}"; then
		exec {fd}<>"$pipe.in"
		printf '%s %s %s\n' "off.$BASHPID" 10 "$(printf 'sync; poweroff -f\n' | base64 -w 0)" >&"$fd"
		exec {fd}>&-
	fi
	lab_vm_wait "$name" "${2:-30}" >/dev/null 2>&1 || true
}

# lab_scan_console NAME: lab_console_trouble on guest NAME's console log
# and, when saved (lab_vm_dmesg), its kernel log: print "# trouble: ..."
# lines and return 1 on any WARN, BUG, oops, panic, hung task or lockdep
# report.
lab_scan_console() {
	local rc=0 f
	lab_console_trouble "$(lab_vm_console "$1")" || rc=1
	f=$LAB_LOG_DIR/$1.dmesg
	if [[ -s $f ]]; then
		lab_console_trouble "$f" || rc=1
	fi
	return "$rc"
}

# ------------------------------------------------------------ KTAP points
# The lab's test scripts print KTAP with selftests/kselftest/ktap_helpers.sh
# (ktap_begin, ktap_ok, ktap_diag, ktap_run_table, ktap_end).
# shellcheck source=../../../selftests/kselftest/ktap_helpers.sh
. "$LAB_TOP/selftests/kselftest/ktap_helpers.sh"

# lab_make_static LOG [MAKE-ARGS...] -- PROGRAM...: run make with
# MAKE-ARGS (none: no make) into LOG, then check that every PROGRAM is an
# executable static program (the lab's initramfs has no libc).  Return 1
# with the reason as KTAP diagnostics (LOG's tail) when not.
lab_make_static() {
	local log=$1 bin
	local -a args=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		args+=("$1")
		shift
	done
	shift
	if ((${#args[@]})) && ! make "${args[@]}" >"$log" 2>&1; then
		ktap_diag "make ${args[*]} failed:"
		tail -n 20 "$log" | sed 's/^/#   /'
		return 1
	fi
	for bin; do
		if [[ ! -x $bin ]] || ldd "$bin" >/dev/null 2>&1; then
			ktap_diag "$bin: missing or not a static program"
			return 1
		fi
	done
}
