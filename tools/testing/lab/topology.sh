# shellcheck shell=bash disable=SC2034 # TOPO_* are for the scripts sourcing this
# SPDX-License-Identifier: GPL-2.0
#
# NetKernel VM lab: the whole topology, as a library sourced after lib.sh
# (tools/testing/lab/lab.sh is its command line; selftests/netkernel/run-vm.sh and
# tools/demo.sh use it directly).
#
#            world network namespace nklab-<pid> (created and deleted here)
#   +----------------------------------------------------------------+
#   |  br0 10.0.0.1/24   busybox httpd :8000 (TOPO_FILE, 10 MiB)     |
#   |   |         |      test servers: topo_world CMD...              |
#   | tap-nsm   tap-base                                              |
#   +---|---------|---------------------------------------------------+
#       |         |
#   NSM VM "nsm"  baseline VM "base"          NetKernel guest VM "vm1"...
#   eth0 10.0.0.2/24 + 10.0.0.11/32 (and      no NIC; nk device only;
#   one /32 per guest), nk device,            af_netkernel.ko; its sockets
#   nsm_kernel.ko                             leave from 10.0.0.11
#                 10.0.0.3/24 (more with
#                 --bases N: base2 10.0.0.22,
#                 base3 10.0.0.23, ...)
#       ^                                         ^
#       +------ hostengine [nsm:nsm0] [guest:vm1 address 10.0.0.11] ------+
#
# IPv6 as well, in fd00::/64 with the same last digits: the world fd00::1
# (nodad), the NSM fd00::2/64 and fd00::11/128 for vm1 (address6 in the
# engine's configuration), the baseline guests fd00::3, fd00::22, ...
# (topo_vm_ip6).  TOPO_NO_ADDR6="vm2 ...": guests with no IPv6 address at
# all (no address6 in the engine, none on the NSM).
#
# Every VM boots Debian's kernel (TOPO_KVER, default the newest 6.1) with
# the same vCPUs and memory (TOPO_SMP, TOPO_MEM; the NSM TOPO_NSM_SMP
# vCPUs, default TOPO_SMP) and one initramfs
# (tools/testing/lab/lab-init.sh as /init; its role comes from the kernel command
# line), and runs nk_agent on its second serial port: topo_exec VM TIMEOUT
# SCRIPT runs commands in it, so one boot serves any number of tests.
#
#   . tools/testing/lab/lib.sh; . tools/testing/lab/topology.sh
#   lab_init "$logdir"
#   TOPO_INITRD_ARGS+=(--bin /usr/bin/curl)     # optional extras
#   topo_build                  # modules, engine, nkctl, initramfs
#   topo_up --guests 1          # world, engine, VMs; waits until ready
#   topo_exec vm1 60 'wget -O /tmp/f http://10.0.0.1:8000/file'
#   topo_world busybox nc 10.0.0.11 8080 </dev/null
#   topo_nkctl stats
#   topo_down                   # dmesg of each VM, power off, engine stop;
#                               # 1 if any console shows kernel trouble
# lab_cleanup (lib.sh's trap) stops whatever is left and deletes the
# namespace, also on failure.

TOPO_KVER=${TOPO_KVER:-}
TOPO_MEM=${TOPO_MEM:-512}
TOPO_SMP=${TOPO_SMP:-1}
TOPO_NSM_SMP=${TOPO_NSM_SMP:-$TOPO_SMP}	# the NSM's vCPUs (multi-threaded TCG when > 1)
TOPO_CARRIERS=${TOPO_CARRIERS:-1}	# nk devices per VM: one queue pair each (carriers)
TOPO_BOOT_TIMEOUT=${TOPO_BOOT_TIMEOUT:-240}
TOPO_NK_RECONNECT=${TOPO_NK_RECONNECT:-}	# 1: VMs reconnect to a restarted engine
TOPO_NET=10.0.0
TOPO_NET6=fd00:		# IPv6: the same last digits, in fd00::/64
TOPO_WORLD_IP=$TOPO_NET.1
TOPO_WORLD_IP6=$TOPO_NET6:1
TOPO_NSM_IP=$TOPO_NET.2
TOPO_BASE_IP=$TOPO_NET.3
TOPO_HTTP_PORT=8000
TOPO_NSM=nsm		# the NSM VM (engine endpoint nsm0)
TOPO_BASE=		# the baseline VM ("base") when topo_up started one
TOPO_BASES=()		# every baseline VM: base, base2, ...
TOPO_GUESTS=()		# the NetKernel guest VMs: vm1, vm2, ...
TOPO_VMS=()		# every VM, in start order
TOPO_NS=		# the world namespace
TOPO_RUN=		# engine config, its run_dir, the web root
TOPO_CTL=		# the engine's control socket
TOPO_FILE=		# the 10 MiB file served by httpd, and its sha256:
TOPO_FILE_URL=
TOPO_FILE_SHA=
TOPO_ENGINE_PID=
TOPO_HTTPD_PID=
TOPO_NSM_MODARGS=${TOPO_NSM_MODARGS:-}	# nsm_kernel.ko parameters, a=1,b=2
TOPO_GUEST_MODARGS=${TOPO_GUEST_MODARGS:-}	# af_netkernel.ko parameters, a=1,b=2
TOPO_GUEST_APPEND=${TOPO_GUEST_APPEND:-}	# more kernel parameters for the NetKernel guests
TOPO_ENGINE_OPTS=${TOPO_ENGINE_OPTS:-}	# more [engine] settings, "idle_polls=4096 poll=busy"
TOPO_NO_ADDR6=${TOPO_NO_ADDR6:-}	# guests without an IPv6 address, "vm2 vm3"
TOPO_INITRD=
TOPO_INITRD_ARGS=()	# extra mkinitramfs.sh arguments (--add, --bin); curl,
			# a dynamically linked Debian program, is always in,
			# and nkperf when built (topo_build)
if [[ -x /usr/bin/curl ]]; then
	TOPO_INITRD_ARGS+=(--bin /usr/bin/curl)
fi
# TOPO_BINS: more host programs for the initramfs, with their libraries
# (TOPO_BINS="/usr/bin/perf /usr/bin/strace" for profiling in the VMs).
for _b in ${TOPO_BINS:-}; do
	TOPO_INITRD_ARGS+=(--bin "$_b")
done
unset _b
TOPO_KO_AF=
TOPO_KO_NSM=
TOPO_ENGINE=${HOSTENGINE:-$LAB_TOP/hostengine/hostengine}
TOPO_NKCTL=$LAB_TOP/tools/nkctl/nkctl

# topo_guest_ip VM: the source address of NetKernel guest vmN (10.0.0.1N).
topo_guest_ip() {
	local n=${1#vm}
	printf '%s.%d\n' "$TOPO_NET" $((10 + n))
}

# topo_vm_ip6 VM: the IPv6 address the world reaches VM's sockets at: the
# digits of its IPv4 address's last byte in fd00::/64 (vm1 fd00::11).
topo_vm_ip6() {
	local ip
	ip=$(topo_vm_ip "$1") || return 1
	echo "$TOPO_NET6:${ip##*.}"
}

# topo_vm_ip VM: the address the world reaches VM's sockets at.
topo_vm_ip() {
	case $1 in
	"$TOPO_NSM") echo "$TOPO_NSM_IP" ;;
	base) echo "$TOPO_BASE_IP" ;;
	base[2-9]) printf '%s.%d\n' "$TOPO_NET" $((20 + ${1#base})) ;;
	vm*) topo_guest_ip "$1" ;;
	*) lab_die "topo_vm_ip: no VM $1" ;;
	esac
}

_topo_has_addr6() {	# VM: 0 unless VM is in TOPO_NO_ADDR6
	[[ " $TOPO_NO_ADDR6 " != *" $1 "* ]]
}

# The addresses a NetKernel guest waits for on nk0 (lab-init.sh; on lo
# with netdev=0): the ones the engine gives it, so that its own address
# is local to it.
_topo_guest_addrs() {	# VM
	local a
	a="$(topo_vm_ip "$1")/32"
	if _topo_has_addr6 "$1"; then
		a+=",$(topo_vm_ip6 "$1")/128"
	fi
	echo "$a"
}

_topo_step() {	# LOG CMD...: run CMD, output to LOG; on failure show LOG's end
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		printf 'lab: error: %s failed; the end of %s:\n' "$*" "$log" >&2
		tail -n 25 "$log" | sed 's/^/lab:   /' >&2
		return 1
	fi
}

# topo_build_modules VER: build af_netkernel.ko and nsm_kernel.ko against
# Debian's linux-headers-VER in build/lab/kbuild/VER (a copy of the
# sources, timestamps kept so that a rebuild is incremental); sets
# TOPO_KO_AF and TOPO_KO_NSM.
topo_build_modules() {
	local ver=$1 dir hdr
	local -a files
	hdr=/usr/src/linux-headers-$ver
	[[ -d $hdr ]] || { echo "lab: error: $hdr missing (linux-headers-$ver)" >&2; return 1; }
	dir=$LAB_TOP/build/lab/kbuild/$ver
	mkdir -p "$dir"
	mapfile -t files < <(cd "$LAB_TOP" && git ls-files -co --exclude-standard \
		Kbuild 'include/*' 'af_netkernel/*.[ch]' 'nsm-kernel/*.[ch]' 'lib/*.[ch]' \
		af_netkernel/Kbuild nsm-kernel/Kbuild)
	(cd "$LAB_TOP" && cp -p --parents "${files[@]}" "$dir")
	_topo_step "$dir/build.log" make -C "$hdr" M="$dir" modules -j2 || return 1
	TOPO_KO_AF=$dir/af_netkernel/af_netkernel.ko
	TOPO_KO_NSM=$dir/nsm-kernel/nsm_kernel.ko
	[[ -r $TOPO_KO_AF && -r $TOPO_KO_NSM ]] ||
		{ echo "lab: error: the build left no af_netkernel.ko or nsm_kernel.ko in $dir" >&2; return 1; }
}

# topo_build: the modules, hostengine, nkctl and the lab's initramfs
# (build/lab/topology-VER.cpio.gz, rebuilt only when an input changed).
# Modules built elsewhere (by DKMS from the packages, say) are used as
# they are when TOPO_KO_AF and TOPO_KO_NSM name them; the initramfs then
# goes to TOPO_INITRD_OUT if set.  Logs in $LAB_LOG_DIR/build-*.log.
# tcp_diag and udp_diag are loaded before af_netkernel.ko, which wraps
# their handlers (af_netkernel/nk_diag.c), so ss lists NetKernel sockets.
topo_build() {
	local t0=$SECONDS
	local -a nkperf=()
	[[ -n $TOPO_KVER ]] || TOPO_KVER=$(lab_kernel_version 6.1) || return 1
	if [[ -z $TOPO_KO_AF || -z $TOPO_KO_NSM ]]; then
		topo_build_modules "$TOPO_KVER" || return 1
	fi
	if [[ -z ${HOSTENGINE:-} ]]; then
		_topo_step "$LAB_LOG_DIR/build-hostengine.log" make -C "$LAB_TOP/hostengine" -j2 || return 1
	fi
	_topo_step "$LAB_LOG_DIR/build-nkctl.log" make -C "$LAB_TOP/tools/nkctl" -j2 || return 1
	TOPO_INITRD=${TOPO_INITRD_OUT:-$LAB_TOP/build/lab/topology-$TOPO_KVER.cpio.gz}
	# nkperf (tools/testing/bench), the benchmarks' client, when it is built by
	# now: bench.sh builds it just before.
	if [[ -x $LAB_TOP/tools/testing/bench/nkperf ]]; then
		nkperf=(--add "$LAB_TOP/tools/testing/bench/nkperf:/usr/bin/nkperf")
	fi
	_topo_step "$LAB_LOG_DIR/build-initramfs.log" "$LAB_DIR/mkinitramfs.sh" -k "$TOPO_KVER" \
		--init "$LAB_DIR/lab-init.sh" -o "$TOPO_INITRD" --module virtio_net \
		--module tcp_diag --module udp_diag \
		--ko "$TOPO_KO_AF" --ko "$TOPO_KO_NSM" "${nkperf[@]}" "${TOPO_INITRD_ARGS[@]}" || return 1
	lab_msg "built modules, engine, nkctl and initramfs for $TOPO_KVER in $((SECONDS - t0)) s"
}

# topo_world CMD...: run CMD in the world namespace.
topo_world() {
	ip netns exec "$TOPO_NS" "$@"
}

# topo_world_spawn LOG CMD...: start CMD in the background in the world
# namespace (stopped at cleanup; PID in LAB_LAST_PID).
topo_world_spawn() {
	local log=$1
	shift
	lab_spawn "$log" ip netns exec "$TOPO_NS" "$@"
}

# topo_world_wait_port PORT: 0 once the world has a TCP listener on PORT
# (up to 20 s), 1 otherwise.
topo_world_wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		if topo_world ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# topo_exec VM TIMEOUT SCRIPT: lab_vm_exec.
topo_exec() {
	lab_vm_exec "$@"
}

# topo_nkctl ARGS...: nkctl on this lab's engine.
topo_nkctl() {
	"$TOPO_NKCTL" -s "$TOPO_CTL" "$@"
}

# topo_nsm_stat NAME: one counter of nsm_kernel's debugfs stats in the NSM
# VM (-1 if it has none of that name).
topo_nsm_stat() {
	lab_vm_exec "$TOPO_NSM" 30 "cat /sys/kernel/debug/nsm_kernel/*/stats" |
		awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print -1 }'
}

# topo_nsm_param NAME VALUE: set nsm_kernel.ko's parameter NAME (one of
# mode 0644) in the running NSM.
topo_nsm_param() {
	lab_vm_exec "$TOPO_NSM" 30 "echo $2 > /sys/module/nsm_kernel/parameters/$1" >/dev/null 2>&1
}

# topo_nsm_freeze, topo_nsm_thaw: the NSM's QEMU stopped with SIGSTOP and
# resumed.  Its vhost-user device stays started, so the engine keeps its
# session and forwards requests into its rings; nothing answers them
# meanwhile.
topo_nsm_freeze() {
	kill -STOP "${LAB_VM_PID[$TOPO_NSM]}"
}
topo_nsm_thaw() {
	kill -CONT "${LAB_VM_PID[$TOPO_NSM]}"
}

# topo_ep_sockets NAME: how many sockets the engine holds for endpoint NAME.
topo_ep_sockets() {
	topo_nkctl --json sockets "$1" |
		python3 -c 'import json, sys; print(len(json.load(sys.stdin)["sockets"]))'
}

# topo_ep_counter NAME COUNTER: one of the engine's counters of endpoint
# NAME (-1 if it has none of that name).
topo_ep_counter() {
	topo_nkctl --json stats "$1" | python3 -c 'import json, sys
print(json.load(sys.stdin)["endpoints"][0]["counters"].get(sys.argv[1], -1))' "$2"
}

# topo_guest_set VM KEY=VALUE...: set the keys in [guest:VM] of the
# engine's file (replacing those it has) and reload it (SIGHUP), as an
# operator changes a running guest's limits; 0 once the engine lists VM
# with every VALUE (10 s at most).
topo_guest_set() {
	local vm=$1 i
	shift
	python3 - "$TOPO_RUN/engine.ini" "$vm" "$@" <<-'EOF'
	import sys
	path, vm = sys.argv[1], sys.argv[2]
	kv = dict(a.split("=", 1) for a in sys.argv[3:])
	out, cur = [], None
	for line in open(path).read().splitlines():
	    if line.startswith("["):
	        cur = line
	    elif cur == "[guest:%s]" % vm and line.split("=")[0].strip() in kv:
	        continue
	    out.append(line)
	    if line == "[guest:%s]" % vm:
	        out += ["%s = %s" % (k, v) for k, v in kv.items()]
	open(path, "w").write("\n".join(out) + "\n")
	EOF
	kill -HUP "$TOPO_ENGINE_PID"
	for ((i = 0; i < 20; i++)); do
		topo_nkctl --json list | python3 -c 'import json, sys
e = [e for e in json.load(sys.stdin)["endpoints"] if e["name"] == sys.argv[1]]
sys.exit(not e or any(str(e[0].get(k)) != v for k, v in (a.split("=", 1) for a in sys.argv[2:])))' \
			"$vm" "$@" && return 0
		sleep 0.5
	done
	lab_msg "topo_guest_set: the engine does not list $vm with $*"
	return 1
}

# _topo_ep_ready NAME: 0 when the engine lists endpoint NAME as ready.
_topo_ep_ready() {
	topo_nkctl list 2>/dev/null | awk -v ep="$1" '$1 == ep && $4 == "ready" { f = 1 } END { exit !f }'
}

# _topo_nk_args EP: lab_vm_start's --nk options for endpoint EP's
# TOPO_CARRIERS devices.  Carriers 1, 2, ... come first on the PCI bus, so
# that the driver has them when it probes carrier 0 and says HELLO.
_topo_nk_args() {
	local k
	for ((k = 1; k < TOPO_CARRIERS; k++)); do
		printf -- '--nk %s ' "$TOPO_RUN/run/$1.sock.$k"
	done
	printf -- '--nk %s' "$TOPO_RUN/run/$1.sock"
}

# _topo_nsm_start: start the NSM VM: its NIC on the world's bridge, its
# address and one per guest, the nk device.
_topo_nsm_start() {
	local addrs vm
	addrs=$TOPO_NSM_IP/24,$(topo_vm_ip6 "$TOPO_NSM")/64
	for vm in "${TOPO_GUESTS[@]}"; do
		addrs+=,$(topo_guest_ip "$vm")/32
		! _topo_has_addr6 "$vm" || addrs+=,$(topo_vm_ip6 "$vm")/128
	done
	lab_vm_start "$TOPO_NSM" --kernel "$TOPO_KVER" --initrd "$TOPO_INITRD" \
		--mem "$TOPO_MEM" --smp "$TOPO_NSM_SMP" --agent ${TOPO_NK_RECONNECT:+--nk-reconnect} \
		--netns "$TOPO_NS" --tap tap-nsm --mac 52:54:00:0a:00:02 \
		$(_topo_nk_args nsm0) \
		--append "nk.role=nsm nk.addrs=$addrs${TOPO_NSM_MODARGS:+ nk.modargs=$TOPO_NSM_MODARGS}"
}

# topo_nsm_kill: the NSM VM dies (QEMU killed with SIGKILL).  Its console
# so far is kept as NAME.1.console (NAME.N for the Nth death) and scanned
# for kernel trouble: 1 if it shows any.
TOPO_NSM_DEATHS=0
topo_nsm_kill() {
	kill -KILL "${LAB_VM_PID[$TOPO_NSM]}" 2>/dev/null || true
	lab_wait_pid "${LAB_VM_PID[$TOPO_NSM]}" 30 >/dev/null 2>&1 || true
	_topo_nsm_console_keep
}

# _topo_nsm_console_keep: the NSM VM is gone: its console so far becomes
# NAME.N.console (N: TOPO_NSM_DEATHS, counted here), scanned for kernel
# trouble: 1 if it shows any.
_topo_nsm_console_keep() {
	local con
	TOPO_NSM_DEATHS=$((TOPO_NSM_DEATHS + 1))
	con=$LAB_LOG_DIR/$TOPO_NSM.$TOPO_NSM_DEATHS.console
	cp "$(lab_vm_console "$TOPO_NSM")" "$con"
	lab_console_trouble "$con"
}

# topo_nsm_start_again SECONDS: boot the NSM VM again after topo_nsm_kill
# and wait for its agent; 1 if it is not up within SECONDS.
topo_nsm_start_again() {
	_topo_nsm_start
	lab_vm_agent_wait "$TOPO_NSM" "$1"
}

# topo_nsm_reboot SMP SECONDS: power the NSM VM off (its kernel log saved
# first) and boot it again with SMP vCPUs (TOPO_NSM_SMP from then on); the
# guests stay up and attached to nsm0.  Its console and kernel log so far
# are kept as NAME.N.console and NAME.N.dmesg (N counts with
# topo_nsm_kill's) and scanned for kernel trouble ("# " lines on stdout).
# 1 on trouble, or when the NSM is not up within SECONDS with SMP vCPUs,
# ready at the engine and reached from the world.
topo_nsm_reboot() {
	local rc=0 old n
	lab_vm_dmesg "$TOPO_NSM" || echo "# $TOPO_NSM: its kernel log could not be saved"
	lab_vm_poweroff "$TOPO_NSM" 30
	_topo_nsm_console_keep || rc=1
	old=$LAB_LOG_DIR/$TOPO_NSM.$TOPO_NSM_DEATHS
	if [[ -e $LAB_LOG_DIR/$TOPO_NSM.dmesg ]]; then
		mv "$LAB_LOG_DIR/$TOPO_NSM.dmesg" "$old.dmesg"
		lab_console_trouble "$old.dmesg" || rc=1
	fi
	TOPO_NSM_SMP=$1
	topo_nsm_start_again "$2" || { echo "# $TOPO_NSM did not boot again"; return 1; }
	n=$(lab_vm_exec "$TOPO_NSM" 30 "grep -c ^processor /proc/cpuinfo") || n=unknown
	[[ $n == "$1" ]] || { echo "# $TOPO_NSM has $n vCPUs, not $1"; return 1; }
	topo_ep_wait_ready 60 nsm0 || { echo "# nsm0 not ready after its boot"; return 1; }
	if ! topo_world busybox ping -c 1 -W 5 "$TOPO_NSM_IP" >/dev/null 2>&1; then
		echo "# the world does not reach $TOPO_NSM at $TOPO_NSM_IP"
		return 1
	fi
	return "$rc"
}

# _topo_engine_start LOG: start hostengine on the lab's configuration and
# wait for its sockets.
_topo_engine_start() {
	local ep
	lab_spawn "$1" "$TOPO_ENGINE" -c "$TOPO_RUN/engine.ini" -f
	TOPO_ENGINE_PID=$LAB_LAST_PID
	for ep in nsm0 "${TOPO_GUESTS[@]}" control; do
		lab_wait_socket "$TOPO_RUN/run/$ep.sock" 30 "$TOPO_ENGINE_PID" || {
			tail -n 20 "$1" | sed 's/^/lab:   /' >&2
			echo "lab: error: hostengine did not create $ep.sock" >&2
			return 1
		}
	done
	lab_msg "hostengine: pid $TOPO_ENGINE_PID, nsm0 + ${TOPO_GUESTS[*]:-no guests}, $TOPO_CTL"
}

# topo_engine_restart SIGNAL: stop the engine with SIGNAL (KILL: a crash),
# start a new one on the same configuration (its log: engine.N.log) and
# wait for its sockets.  The VMs reconnect only with TOPO_NK_RECONNECT=1.
TOPO_ENGINE_STARTS=1
topo_engine_restart() {
	kill -"$1" "$TOPO_ENGINE_PID" 2>/dev/null || true
	lab_wait_pid "$TOPO_ENGINE_PID" 30 || true
	TOPO_ENGINE_STARTS=$((TOPO_ENGINE_STARTS + 1))
	_topo_engine_start "$LAB_LOG_DIR/engine.$TOPO_ENGINE_STARTS.log"
}

# topo_engine_log: the running engine's log (engine.N.log after a restart).
topo_engine_log() {
	if ((TOPO_ENGINE_STARTS == 1)); then
		echo "$LAB_LOG_DIR/engine.log"
	else
		echo "$LAB_LOG_DIR/engine.$TOPO_ENGINE_STARTS.log"
	fi
}

# topo_engine_hup TEXT: SIGHUP to the engine (it reloads engine.ini); TEXT
# must follow in its log within 10 s and the engine must live on.
topo_engine_hup() {
	local from i log
	log=$(topo_engine_log)
	from=$(stat -c %s "$log")
	kill -HUP "$TOPO_ENGINE_PID" || return 1
	for ((i = 0; i < 100; i++)); do
		if tail -c +"$((from + 1))" "$log" | grep -qF -- "$1"; then
			lab_alive "$TOPO_ENGINE_PID"
			return
		fi
		sleep 0.1
	done
	echo "lab: error: no \"$1\" in the engine's log after SIGHUP" >&2
	return 1
}

# topo_ep_wait_ready SECONDS NAME...: wait until the engine lists every
# NAME as ready; 1 when one is not within SECONDS.
topo_ep_wait_ready() {
	local deadline=$((SECONDS + $1)) ep
	shift
	for ep in "$@"; do
		until _topo_ep_ready "$ep"; do
			((SECONDS < deadline)) || return 1
			sleep 0.2
		done
	done
}

# topo_up_ktap TOPO_UP_ARGS...: topo_build, then topo_up TOPO_UP_ARGS, for
# a KTAP script: the time each took as a diagnostic.  When either fails,
# its errors as diagnostics, every test point left failed
# (ktap_fail_rest) and 1, so the script ends: topo_up_ktap ... || finish
topo_up_ktap() {
	local t0=$SECONDS err=$LAB_LOG_DIR/topo_up.err

	if ! topo_build 2>"$err"; then
		sed 's/^/# /' "$err"
		ktap_fail_rest "prerequisite failed: the lab does not build"
		return 1
	fi
	ktap_diag "build: $((SECONDS - t0)) s"
	t0=$SECONDS
	if ! topo_up "$@" 2>"$err"; then
		sed 's/^/# /' "$err"
		ktap_fail_rest "prerequisite failed: the lab did not come up"
		return 1
	fi
	ktap_diag "lab up: $((SECONDS - t0)) s ($LAB_ACCEL_USED; kernel $TOPO_KVER;" \
		"$TOPO_SMP vCPU and $TOPO_MEM MB each, NSM $TOPO_NSM_SMP vCPU; VMs ${TOPO_VMS[*]})"
}

# topo_up [--guests N] [--bases M | --no-base]: bring the topology up and
# wait until every VM's agent answers, every nk endpoint is ready and the
# world reaches the NSM and every baseline guest.  N NetKernel guests
# (default 1), M baseline guests (default 1; --no-base is --bases 0).
topo_up() {
	local nguests=1 nbases=1 t0=$SECONDS t i vm addrs ep deadline
	while (($#)); do
		case $1 in
		--guests) nguests=$2; shift ;;
		--bases) nbases=$2; shift ;;
		--no-base) nbases=0 ;;
		*) lab_die "topo_up: unknown option $1" ;;
		esac
		shift
	done
	((nguests >= 0 && nguests <= 8)) || lab_die "topo_up: 0 to 8 guests"
	((nbases >= 0 && nbases <= 8)) || lab_die "topo_up: 0 to 8 baseline guests"
	TOPO_BASES=()
	for ((i = 1; i <= nbases; i++)); do
		if ((i == 1)); then
			TOPO_BASES+=(base)
		else
			TOPO_BASES+=("base$i")
		fi
	done
	[[ -n $TOPO_INITRD ]] || lab_die "topo_up: run topo_build first"
	[[ -x $TOPO_ENGINE ]] || lab_die "topo_up: no engine binary $TOPO_ENGINE"
	lab_tmpdir
	TOPO_RUN=$LAB_TMP
	TOPO_NS=nklab-$$
	TOPO_CTL=$TOPO_RUN/run/control.sock
	lab_accel_select

	# --- the world: a bridge with the world's address, one tap per NIC VM
	lab_netns_add "$TOPO_NS"
	ip -n "$TOPO_NS" link add br0 type bridge
	ip -n "$TOPO_NS" addr add "$TOPO_WORLD_IP/24" dev br0
	ip -n "$TOPO_NS" addr add "$TOPO_WORLD_IP6/64" dev br0 nodad
	ip -n "$TOPO_NS" link set br0 up
	for t in tap-nsm "${TOPO_BASES[@]/#/tap-}"; do
		lab_tap_add "$TOPO_NS" "$t"
		ip -n "$TOPO_NS" link set "$t" master br0
	done
	mkdir -p "$TOPO_RUN/www"
	TOPO_FILE=$TOPO_RUN/www/file
	head -c $((10 << 20)) /dev/urandom >"$TOPO_FILE"
	TOPO_FILE_SHA=$(sha256sum "$TOPO_FILE" | cut -d' ' -f1)
	TOPO_FILE_URL=http://$TOPO_WORLD_IP:$TOPO_HTTP_PORT/file
	topo_world_spawn "$LAB_LOG_DIR/httpd.log" busybox httpd -f -v \
		-p "$TOPO_WORLD_IP:$TOPO_HTTP_PORT" -h "$TOPO_RUN/www"
	TOPO_HTTPD_PID=$LAB_LAST_PID
	lab_msg "world: namespace $TOPO_NS, br0 $TOPO_WORLD_IP/24, httpd $TOPO_FILE_URL (sha256 ${TOPO_FILE_SHA:0:16}...)"

	# --- the engine
	TOPO_GUESTS=()
	for ((i = 1; i <= nguests; i++)); do
		TOPO_GUESTS+=("vm$i")
	done
	{
		cat <<-EOF
		[engine]
		name = lab$$
		run_dir = $TOPO_RUN/run
		hugepages = no
		main_lcore = 0
		dataplane_lcore = 1
		poll = adaptive
		EOF
		for kv in ${TOPO_ENGINE_OPTS:-}; do
			printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"
		done
		cat <<-EOF

		[nsm:nsm0]
		socket = nsm0.sock
		carriers = $TOPO_CARRIERS
		EOF
		for vm in "${TOPO_GUESTS[@]}"; do
			printf '\n[guest:%s]\nsocket = %s.sock\ncarriers = %s\nnsm = nsm0\naddress = %s\n' \
				"$vm" "$vm" "$TOPO_CARRIERS" "$(topo_guest_ip "$vm")"
			if _topo_has_addr6 "$vm"; then
				printf 'address6 = %s\n' "$(topo_vm_ip6 "$vm")"
			fi
		done
	} >"$TOPO_RUN/engine.ini"
	cp "$TOPO_RUN/engine.ini" "$LAB_LOG_DIR/engine.ini"
	lab_on_cleanup "rm -rf '/var/run/dpdk/netkernel-lab$$' '${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/netkernel-lab$$'"
	_topo_engine_start "$LAB_LOG_DIR/engine.log" || return 1

	# --- the VMs, all at once (TCG boots share the cores either way)
	TOPO_VMS=()
	_topo_nsm_start
	TOPO_VMS+=("$TOPO_NSM")
	for vm in "${TOPO_GUESTS[@]}"; do
		lab_vm_start "$vm" --kernel "$TOPO_KVER" --initrd "$TOPO_INITRD" \
			--mem "$TOPO_MEM" --smp "$TOPO_SMP" --agent ${TOPO_NK_RECONNECT:+--nk-reconnect} \
			$(_topo_nk_args "$vm") \
			--append "nk.role=guest nk.addrs=$(_topo_guest_addrs "$vm")${TOPO_GUEST_MODARGS:+ nk.modargs=$TOPO_GUEST_MODARGS}${TOPO_GUEST_APPEND:+ $TOPO_GUEST_APPEND}"
		TOPO_VMS+=("$vm")
	done
	TOPO_BASE=${TOPO_BASES[0]:-}
	for vm in "${TOPO_BASES[@]}"; do
		addrs=$(topo_vm_ip "$vm")
		lab_vm_start "$vm" --kernel "$TOPO_KVER" --initrd "$TOPO_INITRD" \
			--mem "$TOPO_MEM" --smp "$TOPO_SMP" --agent \
			--netns "$TOPO_NS" --tap "tap-$vm" \
			--mac "$(printf '52:54:00:0a:00:%02x' "${addrs##*.}")" \
			--append "nk.role=base nk.addrs=$addrs/24,$(topo_vm_ip6 "$vm")/64"
		TOPO_VMS+=("$vm")
	done

	for vm in "${TOPO_VMS[@]}"; do
		if ! lab_vm_agent_wait "$vm" "$TOPO_BOOT_TIMEOUT"; then
			echo "lab: error: vm $vm did not come up; its console ends:" >&2
			lab_console_tail "$(lab_vm_console "$vm")" 25 >&2
			return 1
		fi
		lab_msg "vm $vm: agent ready after $((SECONDS - t0)) s"
	done
	if ! topo_ep_wait_ready 60 nsm0 "${TOPO_GUESTS[@]}"; then
		echo "lab: error: engine endpoints not ready:" >&2
		topo_nkctl list >&2 || true
		return 1
	fi
	for vm in "$TOPO_NSM" "${TOPO_BASES[@]}"; do
		if ! topo_world busybox ping -c 1 -W 5 "$(topo_vm_ip "$vm")" >/dev/null 2>&1; then
			echo "lab: error: the world does not reach $vm at $(topo_vm_ip "$vm")" >&2
			return 1
		fi
	done
	lab_msg "lab up in $((SECONDS - t0)) s ($LAB_ACCEL_USED): ${TOPO_VMS[*]}; logs in $LAB_LOG_DIR"
}

# topo_down [--no-scan]: save every running VM's kernel log (NAME.dmesg),
# power the VMs off, stop the engine (SIGTERM; it must exit 0), then scan
# every console and kernel log (lab_scan_console; not with --no-scan).
# Returns 1 on kernel trouble in any VM or an engine that did not stop
# cleanly (TOPO_ENGINE_RC: its exit status).  lab_cleanup removes the rest.
TOPO_ENGINE_RC=
# shellcheck disable=SC2120 # callers may pass no argument
topo_down() {
	local vm rc=0 erc=0 scan=1
	[[ ${1:-} != --no-scan ]] || scan=
	for vm in "${TOPO_VMS[@]}"; do
		if lab_alive "${LAB_VM_PID[$vm]}"; then
			lab_vm_dmesg "$vm" || lab_msg "vm $vm: could not save its dmesg"
		fi
	done
	for vm in "${TOPO_VMS[@]}"; do
		lab_vm_poweroff "$vm" 30
	done
	if [[ -n $TOPO_HTTPD_PID ]]; then
		lab_stop_pid "$TOPO_HTTPD_PID" 5 || true
		TOPO_HTTPD_PID=
	fi
	if [[ -n $TOPO_ENGINE_PID ]]; then
		kill -TERM "$TOPO_ENGINE_PID" 2>/dev/null || true
		lab_wait_pid "$TOPO_ENGINE_PID" 30 || erc=$?
		TOPO_ENGINE_RC=$erc
		if ((erc)); then
			lab_msg "hostengine exited $erc on SIGTERM (124: killed)"
			((erc != 124)) || lab_stop_pid "$TOPO_ENGINE_PID" 1 || true
			rc=1
		fi
		TOPO_ENGINE_PID=
	fi
	for vm in "${TOPO_VMS[@]}"; do
		[[ -n $scan ]] || break
		lab_scan_console "$vm" || { rc=1; lab_msg "vm $vm: kernel trouble (lines above)"; }
	done
	return "$rc"
}

# topo_down_ktap [DEAD-VM...]: topo_down, then the test points every lab
# test ends with: "console clean: VM" for each VM (its console and saved
# kernel log free of kernel trouble; a VM named DEAD was killed on purpose
# and has only its console) and "hostengine stopped cleanly".  That is
# ${#TOPO_VMS[@]} + 1 points.
topo_down_ktap() {
	local vm rc dead=" $* "
	topo_down --no-scan || true
	for vm in "${TOPO_VMS[@]}"; do
		rc=0
		lab_scan_console "$vm" || rc=1
		if [[ $dead != *" $vm "* && ! -s $LAB_LOG_DIR/$vm.dmesg ]]; then
			ktap_diag "$vm: its kernel log could not be saved (the VM did not answer)"
			rc=1
		fi
		ktap_ok "$rc" "console clean: $vm"
	done
	rc=0
	[[ ${TOPO_ENGINE_RC:-1} == 0 ]] || { rc=1; ktap_diag "hostengine exit status ${TOPO_ENGINE_RC:-unknown} on SIGTERM"; }
	ktap_ok "$rc" "hostengine stopped cleanly"
}
