#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot one lab guest by hand and wait for it: the front end of lib.sh's
# lab_vm_start for people (scripts source lib.sh instead).
#
# usage: tools/testing/lab/vm.sh [-t SECONDS] [-l LOGDIR] [-n NAME] --initrd FILE [lab_vm_start options]
#   -t SECONDS   how long the guest may run (default 120)
#   -l LOGDIR    where the console and QEMU logs go (default build/lab/logs)
#   -n NAME      the VM's name, and its logs' (default vm)
# lab_vm_start options: --kernel VER, --initrd FILE, --mem MB, --smp N,
# --append STR, --nk SOCK, --nk-reconnect, --netns NS, --tap IFNAME,
# --mac MAC, --qemu ARG (see lib.sh).
#
# Prints the guest's verdict (NK-RESULT) and any kernel trouble; exits 0
# only if the guest said "ok" and its kernel logged no trouble.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

timeout=120 logdir='' name=vm
while (($#)); do
	case $1 in
	-t) timeout=${2:?}; shift 2 ;;
	-l) logdir=${2:?}; shift 2 ;;
	-n) name=${2:?}; shift 2 ;;
	-h | --help) sed -n '/^# usage:/,/^set -euo/{/^set/d; s/^# \{0,1\}//; p}' "$0"; exit 0 ;;
	*) break ;;
	esac
done

lab_init "$logdir"
start=$SECONDS
lab_vm_start "$name" "$@"
rc=0
lab_vm_wait "$name" "$timeout" || rc=$?
con=$(lab_vm_console "$name")
echo "vm $name: QEMU exited $rc after $((SECONDS - start)) s; console $con"
status=0
verdict=$(lab_console_result "$con") || status=1
echo "vm $name: guest verdict: $verdict"
if ! lab_console_trouble "$con"; then
	echo "vm $name: kernel trouble on the console (lines above)"
	status=1
fi
exit "$status"
