#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel modules against every Debian kernel the project
# supports (6.1 first, 6.12 too) and run checkpatch on the kernel sources.
# Prints TAP; a compiler warning fails a build.
#
# Each build runs in its own copy under build/kbuild/<version>, so the
# source tree stays clean and the two kernels never share objects.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/kbuild
mkdir -p "$out"

# Newest installed headers of a series, e.g. 6.1 -> 6.1.0-56-amd64.
headers_for() {
	local d
	d=$(find /usr/src -maxdepth 1 -name "linux-headers-$1.*-amd64" | sort -V | tail -n 1)
	[ -n "$d" ] && basename "$d" | sed 's/^linux-headers-//'
}

# checkpatch.pl and its data files, taken once from Debian's linux-source.
checkpatch() {
	local src=$out/checkpatch tarball
	if [ ! -x "$src/scripts/checkpatch.pl" ]; then
		tarball=$(find /usr/src -maxdepth 1 -name 'linux-source-6.1.tar.*' | head -n 1)
		[ -n "$tarball" ] || return 1
		mkdir -p "$src"
		tar -xf "$tarball" -C "$src" --strip-components=1 \
			--wildcards 'linux-source-*/scripts/checkpatch.pl' \
			'linux-source-*/scripts/spelling.txt' \
			'linux-source-*/scripts/const_structs.checkpatch' || return 1
	fi
	echo "$src/scripts/checkpatch.pl"
}

mapfile -t ksrc < <(cd "$top" && git ls-files -co --exclude-standard \
	'af_netkernel/*.[ch]' 'nsm-kernel/*.[ch]' 'lib/*.[ch]' | sort)
mapfile -t kbuild < <(cd "$top" && git ls-files -co --exclude-standard '*/Kbuild')

versions=(6.1 6.12)
echo "TAP version 13"
echo "1..$((${#versions[@]} + 1))"
n=0
for series in "${versions[@]}"; do
	n=$((n + 1))
	ver=$(headers_for "$series")
	if [ -z "$ver" ]; then
		echo "not ok $n - build against $series: no linux-headers-$series.*-amd64 installed"
		continue
	fi
	dir=$out/$ver
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$top" && cp -r --parents Kbuild include "${ksrc[@]}" "${kbuild[@]}" "$dir")
	log=$dir/build.log
	# A build of its own, not a sub-make of make check's jobserver.
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		make -C "/usr/src/linux-headers-$ver" M="$dir" modules -j2 >"$log" 2>&1
	rc=$?
	# Compiler and modpost diagnostics, not make's own notes.
	warnings=$(grep -E '\.[ch]:[0-9]+(:[0-9]+)?: (warning|error):|^(WARNING|ERROR): modpost' "$log")
	mods=$(cd "$dir" && find . -name '*.ko' | sort | tr '\n' ' ')
	if [ $rc -eq 0 ] && [ -z "$warnings" ] && [ -n "$mods" ]; then
		echo "ok $n - build against $ver: $mods"
	else
		echo "not ok $n - build against $ver (make exit $rc)"
		[ -n "$warnings" ] || warnings=$(tail -n 20 "$log")
		echo "# ${warnings//$'\n'/$'\n'# }"
	fi
done

n=$((n + 1))
cp=$(checkpatch)
if [ -z "$cp" ]; then
	echo "not ok $n - checkpatch: linux-source-6.1 not installed"
	exit 1
fi
bad=0
for f in "${ksrc[@]}"; do
	res=$(cd "$top" && perl "$cp" --no-tree --quiet --terse -f "$f" 2>&1 |
		grep -E ': (ERROR|WARNING):' |
		grep -v 'LINUX_VERSION_CODE should be avoided' |
		grep -v 'Comparisons should place the constant on the right side')
	if [ -n "$res" ]; then
		bad=1
		echo "# ${res//$'\n'/$'\n'# }"
	fi
done
if [ $bad -eq 0 ]; then
	echo "ok $n - checkpatch clean on ${#ksrc[@]} kernel source files"
else
	echo "not ok $n - checkpatch"
fi
