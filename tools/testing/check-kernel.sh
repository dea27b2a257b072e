#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel modules against every Debian kernel the project
# supports (6.1 first, 6.12 too) and run checkpatch on the kernel sources.
# Prints KTAP; a compiler warning fails a build.
#
# Each build runs in its own copy under build/kbuild/<version>, so the
# source tree stays clean and the two kernels never share objects.
# TEST_NAMES, TEST_DESCS and TEST_DESC are read by ktap_run_table.
# shellcheck disable=SC2034,SC2119,SC2317
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../selftests/kselftest/ktap_helpers.sh
. "$top/selftests/kselftest/ktap_helpers.sh"
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

# build_against SERIES: the modules build against SERIES's headers with
# no compiler or modpost diagnostic.
build_against() {
	local series=$1 ver dir log rc warnings mods
	ver=$(headers_for "$series")
	if [ -z "$ver" ]; then
		TEST_DESC="build against $series: no linux-headers-$series.*-amd64 installed"
		return 1
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
		TEST_DESC="build against $ver: $mods"
		return 0
	fi
	TEST_DESC="build against $ver (make exit $rc)"
	[ -n "$warnings" ] || warnings=$(tail -n 20 "$log")
	ktap_diag "$warnings"
	return 1
}

test_build_6_1() {
	build_against 6.1
}

test_build_6_12() {
	build_against 6.12
}

test_checkpatch() {
	local cp f res bad=0
	cp=$(checkpatch)
	if [ -z "$cp" ]; then
		TEST_DESC="checkpatch: linux-source-6.1 not installed"
		return 1
	fi
	for f in "${ksrc[@]}"; do
		res=$(cd "$top" && perl "$cp" --no-tree --quiet --terse -f "$f" 2>&1 |
			grep -E ': (ERROR|WARNING):' |
			grep -v 'LINUX_VERSION_CODE should be avoided' |
			grep -v 'Comparisons should place the constant on the right side')
		if [ -n "$res" ]; then
			bad=1
			ktap_diag "$res"
		fi
	done
	[ $bad -eq 0 ] && TEST_DESC="checkpatch clean on ${#ksrc[@]} kernel source files"
	return $bad
}

TEST_NAMES=(build_6_1 build_6_12 checkpatch)
TEST_DESCS=("build against 6.1" "build against 6.12" "checkpatch")

ktap_begin "$(ktap_table_count)"
ktap_run_table
ktap_end
