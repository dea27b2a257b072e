#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU smoke test of the host engine, printing KTAP (TAP version 13):
# hostengine serves one guest endpoint and one NSM endpoint; a Debian 6.1
# guest boots with the nk device (vhost-user-gpio-pci on the guest's
# socket), loads the virtio modules and finds the device in sysfs (virtio
# device ID 41, PCI 1af4:1069); the engine must have answered QEMU's
# GET_CONFIG, the guest kernel must log no trouble, and the engine must
# exit 0 on SIGTERM leaving no process behind.  Exits 0 only if every test
# point passes.
#
# usage: tools/testing/lab/qemu-smoke.sh
# Environment:
#   HOSTENGINE          an engine binary to use instead of building hostengine/
#   NK_SMOKE_TIMEOUT    seconds the guest may take, boot to power-off (120)
#   LAB_ACCEL           auto | kvm | tcg (see lib.sh)
# Logs (kept after the run): build/lab/qemu-smoke/{engine.log,vm1.console,
# vm1.qemu.log,build.log,mkinitramfs.log}.
# TEST_NAMES and TEST_DESCS are read by ktap_run_table, which runs the
# test_NAME functions in order: each test after engine_start finds what
# the ones before it left (the engine's pid, the guest's console).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

top=$LAB_TOP
logdir=$top/build/lab/qemu-smoke
vm_timeout=${NK_SMOKE_TIMEOUT:-120}
engine=${HOSTENGINE:-$top/hostengine/hostengine}
name=smoke$$			# engine instance: unique EAL file prefix
guest=vm1

rm -rf "$logdir"
lab_init "$logdir"

# ------------------------------------------------------------ KTAP output

# shellcheck disable=SC2034 # the table, read by ktap_run_table
TEST_NAMES=(engine_start guest_boot virtio_device get_config console_clean engine_exit)
# shellcheck disable=SC2034
TEST_DESCS=(
	"engine started and created its sockets ($guest.sock, nsm0.sock, control.sock)"
	"guest booted to /init"
	"virtio device 41 (PCI 1af4:1069) present in guest sysfs"
	"engine served GET_CONFIG to $guest"
	"no kernel trouble in the guest console log"
	"engine exited 0 on SIGTERM and left no process behind"
)
ktap_begin "$(ktap_table_count)"

diag_file() {	# FILE [N]: its last N lines as diagnostics
	tr -d '\r' <"$1" 2>/dev/null | tail -n "${2:-15}" | sed 's/^/#   /' || true
}

finish() {
	ktap_diag "logs: $logdir"
	ktap_end
}

# ------------------------------------------------------------------ setup

run=$(mktemp -d /tmp/nk-smoke.XXXXXX)
# Cleanup order (lab_cleanup): processes first, then these, last first.
lab_on_cleanup "rm -rf '$run'"
lab_on_cleanup "rm -rf '/var/run/dpdk/netkernel-$name' '${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/netkernel-$name'"

if [[ -z ${HOSTENGINE:-} ]]; then
	if ! make -C "$top/hostengine" -j2 >"$logdir/build.log" 2>&1; then
		ktap_diag "make -C hostengine failed:"
		diag_file "$logdir/build.log"
		ktap_fail_rest "prerequisite failed: the engine does not build"
		finish
	fi
fi
if [[ ! -x $engine ]]; then
	ktap_diag "$engine: no engine binary"
	ktap_fail_rest "prerequisite failed: no engine binary"
	finish
fi

kver=$(lab_kernel_version 6.1) || { ktap_fail_rest "prerequisite failed: no Debian 6.1 kernel"; finish; }
lab_accel_select
if [[ $LAB_ACCEL_USED == kvm ]]; then
	ktap_diag "kernel $kver, accelerator kvm${LAB_KVM_CPU:+ (-cpu $LAB_KVM_CPU)}"
else
	ktap_diag "kernel $kver, accelerator tcg"
fi

# The guest: virtio modules, then look for device 41 and its PCI function.
cat >"$run/init" <<'EOF'
#!/bin/sh
. /lib/nk-lab.sh
nk_setup
nk_load_modules
dev=
for d in /sys/bus/virtio/devices/*; do
	[ -r "$d/device" ] || continue
	id=$(cat "$d/device")
	nk_log "virtio ${d##*/}: device $id vendor $(cat "$d/vendor")"
	if [ "$id" = 0x0029 ]; then
		dev=$d
	fi
done
[ -n "$dev" ] || nk_fail "no virtio device with ID 41 (0x0029)"
pci=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1069 ]; then
		pci=$d
	fi
done
[ -n "$pci" ] || nk_fail "no PCI function 1af4:1069"
case $(readlink -f "$dev") in
"$(readlink -f "$pci")"/*) ;;
*) nk_fail "virtio device ${dev##*/} is not on PCI function ${pci##*/}" ;;
esac
echo "NK-CHECK: virtio-41 ${dev##*/} on pci ${pci##*/}"
nk_result ok
EOF
initrd=$top/build/lab/qemu-smoke.cpio.gz
if ! "$here/mkinitramfs.sh" -k "$kver" --init "$run/init" -o "$initrd" \
	>"$logdir/mkinitramfs.log" 2>&1; then
	ktap_diag "mkinitramfs.sh failed:"
	diag_file "$logdir/mkinitramfs.log"
	ktap_fail_rest "prerequisite failed: no initramfs"
	finish
fi

cat >"$run/engine.ini" <<EOF
[engine]
name = $name
run_dir = $run/run
hugepages = no
main_lcore = 0
dataplane_lcore = 1
poll = adaptive

[nsm:nsm0]
socket = nsm0.sock

[guest:$guest]
socket = $guest.sock
nsm = nsm0
address = 10.0.0.11
EOF

# ------------------------------------------------------------------ tests

elog=$logdir/engine.log
epid=
con=

test_engine_start() {
	local s
	# -v: the engine logs each GET_CONFIG it answers at debug level.
	lab_spawn "$elog" "$engine" -c "$run/engine.ini" -f -v
	epid=$LAB_LAST_PID
	for s in "$guest.sock" nsm0.sock control.sock; do
		if ! lab_wait_socket "$run/run/$s" 30 "$epid"; then
			ktap_diag "no socket $run/run/$s"
			lab_alive "$epid" || ktap_diag "the engine exited"
			diag_file "$elog"
			return 1
		fi
	done
}

test_guest_boot() {
	local start=$SECONDS vrc=0 init_line

	lab_alive "$epid" || { ktap_diag "no engine to connect to"; return 1; }
	lab_vm_start "$guest" --kernel "$kver" --initrd "$initrd" --nk "$run/run/$guest.sock"
	lab_vm_wait "$guest" "$vm_timeout" || vrc=$?
	con=$(lab_vm_console "$guest")
	ktap_diag "guest ran $((SECONDS - start)) s (QEMU exit status $vrc; 124: killed after $vm_timeout s)"
	if ((vrc)); then
		ktap_diag "QEMU:"
		diag_file "$logdir/$guest.qemu.log" 10
	fi
	if ! init_line=$(lab_console_marker "$con" 'NK-LAB: init started' | head -n 1); then
		ktap_diag "no 'NK-LAB: init started' on the console; its end:"
		lab_console_tail "$con" 15
		return 1
	fi
	ktap_diag "${init_line#NK-LAB: }"
}

test_virtio_device() {
	local verdict check

	if ! verdict=$(lab_console_result "$con") ||
		! check=$(lab_console_marker "$con" 'NK-CHECK: virtio-41' | head -n 1); then
		ktap_diag "guest verdict: ${verdict:-none}"
		lab_console_marker "$con" 'NK-LAB: virtio' | sed 's/^/#   /' || true
		return 1
	fi
	ktap_diag "${check#NK-CHECK: }"
}

# rte_vhost's own "read message VHOST_USER_GET_CONFIG" does not count: the
# engine's line naming the endpoint does.
test_get_config() {
	local served

	if ! served=$(grep -a 'GET_CONFIG' "$elog" | grep -av 'VHOST_USER_GET_CONFIG' |
		grep -a -- "$guest" | head -n 3); then
		ktap_diag "no engine log line with GET_CONFIG for $guest in $elog"
		return 1
	fi
	printf '%s\n' "$served" | sed 's/^/#   /'
}

test_console_clean() {
	local rc=0

	if ! lab_console_marker "$con" 'NK-DMESG-END' >/dev/null; then
		ktap_diag "the guest did not print its whole kernel log (no NK-DMESG-END)"
		rc=1
	fi
	lab_console_trouble "$con" || rc=1
	return "$rc"
}

test_engine_exit() {
	local rc=0 erc=0 p pid pcmd s
	local -a left=()

	kill -TERM "$epid" 2>/dev/null || true
	lab_wait_pid "$epid" 30 || erc=$?
	if ((erc == 124)); then
		ktap_diag "engine still running 30 s after SIGTERM; killing it"
		lab_stop_pid "$epid" 1 || true
		rc=1
	elif ((erc)); then
		ktap_diag "engine exited $erc after SIGTERM"
		rc=1
	fi
	# Any process still holding this run's files: its directory is unique.
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
		pcmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		if [[ $pcmd == *"$run"* ]]; then
			left+=("$pid")
		fi
	done
	if ((${#left[@]})); then
		ktap_diag "processes left behind: ${left[*]}"
		rc=1
	fi
	for s in "$guest.sock" nsm0.sock control.sock; do
		if [[ -e $run/run/$s ]]; then
			ktap_diag "note: the engine left $run/run/$s behind"
		fi
	done
	if ((rc)); then
		diag_file "$elog" 10
	fi
	return "$rc"
}

ktap_run_table
finish
