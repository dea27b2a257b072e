#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The NetKernel VM lab from the command line (the topology is described in
# tools/testing/lab/topology.sh): a world network namespace with a bridge, an HTTP
# server and room for test servers; hostengine; an NSM VM; NetKernel guest
# VMs without a NIC; a baseline guest VM with an ordinary NIC.
#
# usage: tools/testing/lab/lab.sh up [--guests N] [--bases M | --no-base]
#            build what is needed, start the lab in the background and
#            return once every VM answers (make lab-up)
#        tools/testing/lab/lab.sh down
#            power the VMs off, stop everything the lab started, delete its
#            namespace; exits 1 if any VM's kernel logged trouble
#            (make lab-down)
#        tools/testing/lab/lab.sh status
#        tools/testing/lab/lab.sh exec VM [-t SECONDS] SCRIPT...
#            run a sh script in VM (nsm, vm1..., base, base2...); its output and exit
#            status are the command's (default timeout 60 s)
#        tools/testing/lab/lab.sh world CMD...     run CMD in the world namespace
#        tools/testing/lab/lab.sh nkctl ARGS...    nkctl on the lab's engine
#        tools/testing/lab/lab.sh run [--guests N] [--bases M | --no-base] CMD...
#            bring the lab up in this process, run CMD (it finds the lab
#            through $LAB_STATE: `lab.sh exec` etc. work inside it), tear
#            it down; exits with CMD's status, or 1 on kernel trouble
#
# Logs: build/lab/topology/logs (up/down) or build/lab/run-<pid> (run):
# NAME.console (serial console), NAME.dmesg (kernel log saved at
# teardown), NAME.agent.log (every command's output), NAME.qemu.log,
# engine.log, httpd.log, lab.log.
# Environment: TOPO_KVER, TOPO_MEM (MB, 512), TOPO_SMP (1), TOPO_NSM_SMP
# (the NSM's vCPUs, default TOPO_SMP), TOPO_CARRIERS (nk devices per VM,
# one queue pair each; default 1), TOPO_NSM_MODARGS (nsm_kernel.ko parameters, a=1,b=2), TOPO_GUEST_MODARGS
# (af_netkernel.ko parameters), TOPO_GUEST_APPEND (more kernel parameters for
# the NetKernel guests, e.g. slub_debug=FZP), TOPO_ENGINE_OPTS (more [engine] settings,
# key=value ...), TOPO_BINS (more host programs in the
# initramfs, e.g. /usr/bin/perf), LAB_ACCEL.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
# shellcheck source-path=SCRIPTDIR source=topology.sh
. "$here/topology.sh"

base_dir=$LAB_TOP/build/lab/topology
default_state=$base_dir/state

usage() {
	sed -n '/^# usage:/,/^set -euo/{/^set/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# The variables another process needs to reach a running lab.
write_state() {	# FILE SERVE_PID
	local tmp=$1.tmp
	{
		echo "LAB_SERVE_PID=$2"
		declare -p TOPO_NS TOPO_RUN TOPO_CTL TOPO_KVER TOPO_FILE TOPO_FILE_URL \
			TOPO_FILE_SHA TOPO_BASE TOPO_BASES TOPO_GUESTS TOPO_VMS LAB_LOG_DIR \
			LAB_VM_PID LAB_VM_AGENT LAB_VM_LOG
	} >"$tmp"
	mv -f "$tmp" "$1"
}

state_file() {
	printf '%s\n' "${LAB_STATE:-$default_state}"
}

serve_running() {	# PID: the lab's own serving process is alive
	lab_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'lab\.sh _serve'
}

action=${1:-}
[[ -n $action ]] || usage
shift

case $action in
_serve)
	# The background half of `up`: owns every process of the lab.
	lab_init "$base_dir/logs"
	stopping=
	stop() {
		[[ -z $stopping ]] || return 0
		stopping=1
		local rc=0
		rm -f "$default_state"
		topo_down || rc=$?
		lab_msg "lab down (status $rc)"
		echo "$rc" >"$base_dir/down-status"
		exit "$rc"
	}
	trap stop TERM INT
	rm -f "$base_dir/down-status"
	topo_build
	topo_up "$@"
	write_state "$default_state" "$$"
	lab_msg "ready"
	while :; do
		sleep 1 &
		wait $! || true
	done
	;;
up)
	mkdir -p "$base_dir/logs"
	if [[ -r $default_state ]]; then
		pid=$(sed -n 's/^LAB_SERVE_PID=//p' "$default_state")
		if serve_running "$pid"; then
			lab_die "a lab is already up (pid $pid); tools/testing/lab/lab.sh down first"
		fi
		rm -f "$default_state"
	fi
	rm -rf "$base_dir/logs"
	mkdir -p "$base_dir/logs"
	t0=$SECONDS
	setsid "$here/lab.sh" _serve "$@" </dev/null >"$base_dir/logs/lab.log" 2>&1 &
	pid=$!
	while [[ ! -r $default_state ]]; do
		if ! lab_alive "$pid"; then
			tail -n 30 "$base_dir/logs/lab.log" >&2
			lab_die "the lab did not come up (log: $base_dir/logs/lab.log)"
		fi
		sleep 0.5
	done
	# shellcheck source=/dev/null
	. "$default_state"
	echo "lab up in $((SECONDS - t0)) s (pid $LAB_SERVE_PID): VMs ${TOPO_VMS[*]}, world namespace $TOPO_NS"
	echo "  tools/testing/lab/lab.sh exec vm1 'cat /proc/net/netkernel'"
	echo "  tools/testing/lab/lab.sh world busybox wget -O - http://10.0.0.1:$TOPO_HTTP_PORT/ | head"
	echo "  tools/testing/lab/lab.sh nkctl stats"
	echo "  tools/testing/lab/lab.sh down         (logs: $LAB_LOG_DIR)"
	;;
down)
	if [[ ! -r $default_state ]]; then
		echo "lab: no lab is up"
		exit 0
	fi
	pid=$(sed -n 's/^LAB_SERVE_PID=//p' "$default_state")
	if ! serve_running "$pid"; then
		rm -f "$default_state"
		lab_die "the lab's process $pid is gone (stale state removed)"
	fi
	kill -TERM "$pid"
	while lab_alive "$pid"; do
		sleep 0.5
	done
	rc=$(cat "$base_dir/down-status" 2>/dev/null) || rc=1
	grep -a '^# trouble:\|^lab: error\|kernel trouble' "$base_dir/logs/lab.log" | tail -n 40 || true
	echo "lab down (status $rc); logs in $base_dir/logs"
	exit "$rc"
	;;
status | exec | world | nkctl)
	state=$(state_file)
	[[ -r $state ]] || lab_die "no lab is up ($state missing; tools/testing/lab/lab.sh up)"
	# shellcheck source=/dev/null
	. "$state"
	case $action in
	status)
		echo "lab pid $LAB_SERVE_PID, world namespace $TOPO_NS, logs $LAB_LOG_DIR"
		for vm in "${TOPO_VMS[@]}"; do
			if lab_alive "${LAB_VM_PID[$vm]}"; then s=running; else s=stopped; fi
			echo "  vm $vm: $s (QEMU pid ${LAB_VM_PID[$vm]})"
		done
		topo_nkctl list
		;;
	exec)
		vm=${1:?usage: lab.sh exec VM [-t SECONDS] SCRIPT...}
		shift
		tmo=60
		if [[ ${1:-} == -t ]]; then
			tmo=${2:?}
			shift 2
		fi
		[[ -n ${LAB_VM_AGENT[$vm]:-} ]] || lab_die "no VM $vm (${TOPO_VMS[*]})"
		rc=0
		lab_vm_exec "$vm" "$tmo" "$*" || rc=$?
		exit "$rc"
		;;
	world)
		topo_world "$@"
		;;
	nkctl)
		topo_nkctl "$@"
		;;
	esac
	;;
run)
	opts=()
	while (($#)); do
		case $1 in
		--guests | --bases) opts+=("$1" "${2:?}"); shift 2 ;;
		--no-base) opts+=("$1"); shift ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	(($#)) || usage
	lab_init "$LAB_TOP/build/lab/run-$$"
	topo_build
	topo_up "${opts[@]}"
	export LAB_STATE=$LAB_LOG_DIR/state
	write_state "$LAB_STATE" "$$"
	rc=0
	"$@" || rc=$?
	topo_down || { ((rc)) || rc=1; }
	exit "$rc"
	;;
*)
	usage
	;;
esac
