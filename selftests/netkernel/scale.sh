#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Scale runs in one VM lab (an NSM and vm1): many connections from one
# guest, and memory before and after.
#
#   hold     CONNS connections from vm1 to a server in the world at once,
#            every one established, held, then closed
#   cycles   CYCLES connect/close cycles at full speed, the server closing
#            first: every one established, no EADDRINUSE or other error
#   wget     WGETS downloads of the lab's 10 MiB file at once in vm1
#            (busybox wget): every one completes with the world's sha256,
#            and the engine resets no socket
#   memory   afterwards, vm1's and the NSM's MemAvailable and the engine's
#            resident memory within 5% of what they were before, and the
#            engine and the NSM hold no socket of vm1's
#   console clean, hostengine stopped cleanly
#
# usage: selftests/netkernel/scale.sh [--conns N] [--cycles N] [--wgets N]
#        (default 10000, 100000 and 64, the figures asked for; make check
#        runs it smaller).  KTAP; logs in build/lab/scale/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/lab/lib.sh
. "$top/tools/lab/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../../tools/lab/topology.sh
. "$top/tools/lab/topology.sh"

conns=10000
ncycles=100000
wgets=64
while (($#)); do
	case $1 in
	--conns) conns=$2; shift ;;
	--cycles) ncycles=$2; shift ;;
	--wgets) wgets=$2; shift ;;
	*) echo "usage: $0 [--conns N] [--cycles N] [--wgets N]" >&2; exit 2 ;;
	esac
	shift
done

logdir=$top/build/lab/scale
bin=$here/nk_scale
GROWTH_PCT=5

rm -rf "$logdir"
lab_init "$logdir"
t_start=$SECONDS
lab_ktap_begin 7

finish() {
	lab_diag "logs: $logdir" "total $((SECONDS - t_start)) s"
	lab_ktap_end
}

if ! make -C "$here" -j2 >"$logdir/build-tests.log" 2>&1; then
	lab_diag "make -C selftests/netkernel failed:" "$(tail -n 20 "$logdir/build-tests.log")"
	lab_fail_rest "prerequisite failed: nk_scale does not build"
	finish
fi
TOPO_INITRD_ARGS+=(--add "$bin:/usr/bin/nk_scale")
# One guest may hold more sockets than the engine's default allows.
TOPO_ENGINE_OPTS="${TOPO_ENGINE_OPTS:-} max_sockets=$((conns + 1024))"
if ! topo_build 2>"$logdir/build.err" || ! topo_up --guests 1 --no-base 2>"$logdir/up.err"; then
	lab_diag "$(cat "$logdir/build.err" "$logdir/up.err" 2>/dev/null)"
	lab_fail_rest "prerequisite failed: the lab did not come up"
	finish
fi
lab_diag "lab up ($LAB_ACCEL_USED; kernel $TOPO_KVER; VMs ${TOPO_VMS[*]})"

mem_available() {	# VM: MemAvailable in kB
	topo_exec "$1" 10 'cat /proc/meminfo' | awk '$1 == "MemAvailable:" { print $2 }'
}
engine_rss() {	# kB
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$TOPO_ENGINE_PID/status"
}
# memory: "vm1 NSM engine" in kB
memory() {
	echo "$(mem_available vm1) $(mem_available "$TOPO_NSM") $(engine_rss)"
}

# Warm up: the first connections allocate caches that stay.
topo_world_spawn "$logdir/serve-hold.log" "$bin" serve "$TOPO_WORLD_IP" 9200
topo_world_spawn "$logdir/serve-cycles.log" "$bin" serve "$TOPO_WORLD_IP" 9201 --close-first
topo_world_wait_port 9200 && topo_world_wait_port 9201 || {
	lab_fail_rest "prerequisite failed: the servers in the world do not listen"
	finish
}
topo_exec vm1 60 "nk_scale cycles $TOPO_WORLD_IP 9201 100" >/dev/null || true
sleep 2
read -r m_vm1 m_nsm m_eng < <(memory)
lab_diag "before: vm1 MemAvailable $m_vm1 kB, NSM MemAvailable $m_nsm kB, engine RSS $m_eng kB"

t=$SECONDS
out=$(topo_exec vm1 900 "nk_scale hold $TOPO_WORLD_IP 9200 $conns 5") && rc=0 || rc=1
lab_diag "hold $conns: $(tr '\n' ';' <<<"$out") $((SECONDS - t)) s"
grep -q "^established $conns failed 0" <<<"$out" || rc=1
lab_ok "$rc" "hold: $conns connections at once"

t=$SECONDS
out=$(topo_exec vm1 3600 "nk_scale cycles $TOPO_WORLD_IP 9201 $ncycles") && rc=0 || rc=1
lab_diag "cycles $ncycles: $(tr '\n' ';' <<<"$out") $((SECONDS - t)) s"
grep -q "^established $ncycles failed 0" <<<"$out" || rc=1
lab_ok "$rc" "cycles: $ncycles connect/close cycles"

resets0=$(topo_nkctl --json stats vm1 |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["endpoints"][0]["counters"]["resets"])')
t=$SECONDS
out=$(topo_exec vm1 1800 "i=0
while [ \$i -lt $wgets ]; do
	(wget -q -O- $TOPO_FILE_URL | sha256sum >/tmp/wget-\$i) &
	i=\$((i + 1))
done
wait
cat /tmp/wget-*") && rc=0 || rc=1
resets=$(topo_nkctl --json stats vm1 |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["endpoints"][0]["counters"]["resets"])')
good=$(grep -c "^$TOPO_FILE_SHA " <<<"$out") || true
lab_diag "wget x$wgets: $good with the world's sha256, engine resets $((resets - resets0)), $((SECONDS - t)) s"
[[ $good == "$wgets" && $resets == "$resets0" ]] || rc=1
lab_ok "$rc" "wget: $wgets downloads at once"

# What the NSM and the engine still hold for vm1, then memory.
rc=0
for ((i = 0; i < 60; i++)); do
	nsocks=$(topo_exec "$TOPO_NSM" 10 'cat /sys/kernel/debug/nsm_kernel/*/stats' |
		awk '$1 == "sockets" { print $2 }')
	esocks=$(topo_nkctl --json sockets vm1 |
		python3 -c 'import json, sys; print(len(json.load(sys.stdin)["sockets"]))')
	[[ $nsocks != 0 || $esocks != 0 ]] || break
	sleep 1
done
read -r a_vm1 a_nsm a_eng < <(memory)
lab_diag "after: vm1 MemAvailable $a_vm1 kB, NSM MemAvailable $a_nsm kB, engine RSS $a_eng kB;" \
	"sockets left: NSM $nsocks, engine $esocks"
if [[ $nsocks != 0 || $esocks != 0 ]]; then
	rc=1
	topo_nkctl sockets vm1 >"$logdir/left-engine.txt" 2>&1 || true
	topo_exec "$TOPO_NSM" 10 'cat /sys/kernel/debug/nsm_kernel/*/sockets' >"$logdir/left-nsm.txt" 2>&1 || true
	topo_exec vm1 10 'cat /proc/net/netkernel' >"$logdir/left-vm1.txt" 2>&1 || true
	lab_diag "left behind (engine, NSM, vm1), first lines:" "$(head -n 5 "$logdir"/left-*.txt)"
fi
# MemAvailable may not fall, RSS may not grow, by more than GROWTH_PCT.
((a_vm1 * 100 >= m_vm1 * (100 - GROWTH_PCT))) || { lab_diag "vm1's memory fell"; rc=1; }
((a_nsm * 100 >= m_nsm * (100 - GROWTH_PCT))) || { lab_diag "the NSM's memory fell"; rc=1; }
((a_eng * 100 <= m_eng * (100 + GROWTH_PCT))) || { lab_diag "the engine grew"; rc=1; }
lab_ok "$rc" "memory of vm1, the NSM and the engine flat within $GROWTH_PCT%"

topo_down --no-scan || true
for vm in "${TOPO_VMS[@]}"; do
	rc=0
	lab_scan_console "$vm" || rc=1
	[[ -s $logdir/$vm.dmesg ]] || { lab_diag "$vm: its kernel log could not be saved"; rc=1; }
	lab_ok "$rc" "console clean: $vm"
done
rc=0
[[ ${TOPO_ENGINE_RC:-1} == 0 ]] || { rc=1; lab_diag "hostengine exit status ${TOPO_ENGINE_RC:-unknown} on SIGTERM"; }
lab_ok "$rc" "hostengine stopped cleanly"
finish
