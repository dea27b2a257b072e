#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The packages installed into a scratch root, for run.sh (which runs this
# in a mount namespace of its own: unshare -m).  The root is an overlay of
# the host's / whose upper layer is a tmpfs: dpkg, DKMS and the engine
# write only there, and all of it goes when the namespace ends.
#
# usage: scratch-root.sh DEBDIR OUTDIR KVER...
#   Installs DEBDIR's three packages, has DKMS build the modules for each
#   KVER (the hook a kernel upgrade runs: /etc/kernel/postinst.d/dkms),
#   runs the engine from the packaged unit's ExecStart with the packaged
#   configuration, breaks that configuration, then purges the packages.
#   Writes OUTDIR/results ("NAME 0|1 MESSAGE" per check), copies the
#   modules built for the first KVER and the packaged hostengine and
#   nkctl to OUTDIR/pkg/, and logs to OUTDIR/*.log.
set -uo pipefail

debs=$(realpath "$1") out=$(realpath "$2")
shift 2
kvers=("$@")
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ver=$(sed -n 's/^#define NK_VERSION[[:space:]]*"\(.*\)"/\1/p' "$top/include/netkernel/nk_version.h")
# A kernel with no headers: the guest package must say what to install.
nohdr=6.1.0-99-amd64

: >"$out/results"
result() {	# NAME STATUS MESSAGE
	printf '%s %s %s\n' "$1" "$2" "${3:-}" >>"$out/results"
}

mount --make-rprivate / || exit 1
t=$out/scratch
mkdir -p "$t"
mount -t tmpfs -o mode=0755 scratch "$t" || exit 1
mkdir -p "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root" || exit 1
r=$t/root
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mkdir -p "$r/lib/modules/$nohdr"

in_root() {
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# --- install
if in_root dpkg -i "$debs/netkernel-hostengine_${ver}_amd64.deb" \
	"$debs/netkernel-guest-dkms_${ver}_all.deb" "$debs/netkernel-nsm-dkms_${ver}_all.deb" \
	>"$out/install.log" 2>&1; then
	result install 0 "dpkg -i of the three packages"
else
	result install 1 "dpkg -i failed: $(tail -n 5 "$out/install.log" | tr '\n' ' ')"
fi
if grep -q "netkernel-guest-dkms: no kernel headers for $nohdr, so af_netkernel is not built for it: apt install linux-headers-$nohdr" "$out/install.log"; then
	result no_headers_hint 0 "names linux-headers-$nohdr"
else
	result no_headers_hint 1 "no hint for $nohdr in install.log"
fi

# --- DKMS, as a kernel upgrade runs it, then what it built
fail=
for k in "${kvers[@]}"; do
	in_root /etc/kernel/postinst.d/dkms "$k" >>"$out/dkms.log" 2>&1
done
in_root dkms status >"$out/dkms-status.txt" 2>&1
for k in "${kvers[@]}"; do
	for m in guest nsm; do
		grep -q "^netkernel-$m/$ver, $k, x86_64: installed" "$out/dkms-status.txt" ||
			fail+=" netkernel-$m/$k"
	done
done
if [[ -z $fail ]]; then
	result dkms_built 0 "$(grep '^netkernel' "$out/dkms-status.txt" | tr '\n' ';')"
else
	result dkms_built 1 "not installed:$fail; $(grep '^netkernel' "$out/dkms-status.txt" | tr '\n' ';')"
fi

# Versions: the packages, the programs and the modules say one thing.
mkdir -p "$out/pkg"
fail=
for m in af_netkernel nsm_kernel; do
	f=$(ls "$r/lib/modules/${kvers[0]}/updates/dkms/$m.ko"* 2>/dev/null | head -n 1)
	if [[ -z $f ]]; then
		fail+=" no $m.ko for ${kvers[0]};"
		continue
	fi
	case $f in
	*.xz) xz -dc "$f" >"$out/pkg/$m.ko" ;;
	*) cp "$f" "$out/pkg/$m.ko" ;;
	esac
	v=$(modinfo -F version "$out/pkg/$m.ko")
	[[ $v == "$ver" ]] || fail+=" $m version '$v';"
done
cp "$r/usr/sbin/hostengine" "$r/usr/sbin/nkctl" "$out/pkg/"
for p in hostengine nkctl; do
	v=$(in_root "$p" -V 2>&1)
	[[ $v == "$p $ver" ]] || fail+=" $p -V '$v';"
done
for d in "$debs"/netkernel-*"_${ver}_"*.deb; do
	v=$(dpkg-deb -f "$d" Version)
	[[ $v == "$ver" ]] || fail+=" $(basename "$d") $v;"
done
if [[ -z $fail ]]; then
	result versions 0 "$ver everywhere"
else
	result versions 1 "$fail"
fi

# --- the packaged unit's command line, the packaged configuration
unit=$r/lib/systemd/system/hostengine.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a cmd <<<"$exec_start"
conf=$r/etc/netkernel/hostengine.conf
# systemd's own check of the unit (offline: no systemd runs here).
verify=$(in_root systemd-analyze verify --man=no /lib/systemd/system/hostengine.service 2>&1)
exposure=$(in_root systemd-analyze security --offline=yes /lib/systemd/system/hostengine.service 2>&1 |
	sed -n 's/.*Overall exposure level for hostengine.service: //p')
# stderr as the journal: JOURNAL_STREAM names it.
: >"$out/unit.log"
js=$(stat -c '%d:%i' "$out/unit.log")
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin JOURNAL_STREAM="$js" "${cmd[@]}" \
	2>"$out/unit.log" &
pid=$!
fail="not listed by nkctl within 30 s"
for ((i = 0; i < 150; i++)); do
	if in_root nkctl list >"$out/nkctl-list.txt" 2>&1 &&
		grep -q '^nsm0 .* waiting' "$out/nkctl-list.txt" &&
		grep -q '^vm1 .* waiting' "$out/nkctl-list.txt"; then
		fail=
		break
	fi
	kill -0 "$pid" 2>/dev/null || { fail="exited: $(tail -n 3 "$out/unit.log")"; break; }
	sleep 0.2
done
if [[ -z $fail ]]; then
	perms="$(stat -c '%n %G %a' "$r/run/netkernel/vm1.sock" "$r/run/netkernel/control.sock")"
	[[ $perms == "$r/run/netkernel/vm1.sock kvm 660"$'\n'"$r/run/netkernel/control.sock root 600" ]] ||
		fail="socket owners and modes: $perms"
fi
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
[[ $rc == 0 ]] || fail+=" exit status $rc after SIGTERM"
left=$(ls "$r/run/netkernel" "$r/run/dpdk" 2>/dev/null | grep -v ':$' | grep -v '^$' || true)
[[ -z $left ]] || fail+=" left behind: $left"
grep -qv '^<[0-7]>' "$out/unit.log" && fail+=" a journal line without priority"
[[ -z $verify ]] || fail+=" systemd-analyze verify: $verify"
if [[ -z $fail ]]; then
	result packaged_unit 0 "$exec_start: ready, sockets kvm 660 and root 600, SIGTERM exit 0, nothing left; systemd-analyze verify clean, exposure $exposure"
else
	result packaged_unit 1 "$exec_start:$fail"
fi

# --- a broken or missing configuration: the engine's file:line: message
# as an error (priority 3) in the journal, exit status 1
cp "$conf" "$t/conf.good"
line=$(grep -n '^hugepages = ' "$conf" | cut -d: -f1)
sed -i 's/^hugepages = .*/hugepages = maybe/' "$conf"
fail=
for want in "<3>/etc/netkernel/hostengine.conf:$line: bad value 'maybe' for hugepages" \
	"<3>/etc/netkernel/hostengine.conf: No such file or directory"; do
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin JOURNAL_STREAM="$js" "${cmd[@]}" \
		2>"$out/unit.log"
	rc=$?
	got=$(head -n 1 "$out/unit.log")
	[[ $rc == 1 && $got == "$want" ]] || fail+=" want '$want' and 1, got '$got' and $rc;"
	rm -f "$conf"
done
cp "$t/conf.good" "$conf"
if [[ -z $fail ]]; then
	result bad_config 0 "file:line: message at priority 3, exit 1"
else
	result bad_config 1 "$fail"
fi

# --- purge: nothing of the packages stays, and removal stops the service
# first (no systemd runs here: the maintainer script is what is checked)
stops=$(grep -c "deb-systemd-invoke stop 'hostengine.service'" \
	"$r/var/lib/dpkg/info/netkernel-hostengine.prerm" 2>/dev/null)
[[ $stops == 1 ]] || result purge 1 "netkernel-hostengine's prerm does not stop hostengine.service"
in_root dpkg --purge netkernel-hostengine netkernel-guest-dkms netkernel-nsm-dkms \
	>"$out/purge.log" 2>&1 || result purge 1 "dpkg --purge failed"
left=$(cd "$r" && ls -d usr/src/netkernel-* var/lib/dkms/netkernel-* etc/netkernel \
	etc/modprobe.d/netkernel-* usr/lib/modules-load.d/netkernel-* usr/sbin/hostengine \
	lib/modules/*/updates/dkms/af_netkernel.ko* lib/modules/*/updates/dkms/nsm_kernel.ko* \
	2>/dev/null | tr '\n' ' ')
if grep -q '^purge 1' "$out/results"; then
	:
elif grep -q '^install 1' "$out/results"; then
	result purge 1 "nothing was installed"
elif [[ -z $left ]] && ! in_root dkms status 2>&1 | grep -q netkernel; then
	result purge 0 "no file, module or DKMS tree left; prerm stops hostengine.service"
else
	result purge 1 "left: $left"
fi
exit 0
