#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run NetKernel's KUnit suites (nk_msg_test.c, nk_sockid_test.c) in a
# User-Mode Linux kernel built from Debian's linux-source-6.1, and print
# their KTAP.
#
#   selftests/kunit/run.sh [kunit.py run options...]
#   e.g. selftests/kunit/run.sh 'netkernel_credit.*'
#        selftests/kunit/run.sh 'netkernel_sockid.*'
#
# The first run unpacks /usr/src/linux-source-6.1.tar.xz into
# build/kunit/linux-source-6.1 (about 20 s) and builds a UML kernel in
# build/kunit/out (about 7 minutes on 2 cores); later runs reuse both and
# rebuild only what changed.  The tree is unpacked again (and the build
# directory removed) only when it is missing or the tarball changed.  This directory is
# linked into the tree as net/netkernel_kunit/, so edits to the tests or to
# lib/ are picked up by the next run.  No network is needed.
#
# Prints kunit.py's parsed results, then the raw KTAP, then kunit.py's
# summary line again ("Testing complete. Ran N tests: passed: N").  Exits
# non-zero when the build fails, the kernel crashes or any test fails.
#
# Environment: NK_KUNIT_TARBALL (default /usr/src/linux-source-6.1.tar.xz),
# NK_KUNIT_JOBS (default 2), NK_KUNIT_DIR (default <top>/build/kunit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tarball=${NK_KUNIT_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
jobs=${NK_KUNIT_JOBS:-2}
work=${NK_KUNIT_DIR:-$top/build/kunit}
srcname=linux-source-6.1
src=$work/$srcname
out=$work/out
stamp=$work/.unpacked

die() {
	echo "kunit: $*" >&2
	exit 2
}

[ -r "$tarball" ] ||
	die "$tarball not found: install linux-source-6.1 (tools/install-deps.sh)"
for tool in python3 make gcc flex bison bc tar xz flock; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

mkdir -p "$work"
# One run at a time per build directory.
exec 9>"$work/.lock"
flock 9
touch "$work/.run-start"

# --- the kernel tree, unpacked once ---------------------------------------
# The stamp records which tarball was unpacked (dpkg keeps the package's own
# mtime, so an upgraded tarball need not be newer than the last unpack).
tarball_id=$(stat -L -c '%s %Y' "$tarball")
if [ ! -d "$src" ] || [ ! -e "$stamp" ] || [ "$tarball" -nt "$stamp" ] ||
	[ "$(cat "$stamp")" != "$tarball_id" ]; then
	echo "kunit: unpacking $tarball into $src"
	start=$SECONDS
	rm -rf "$src" "$out" "$stamp" "$work/unpack.tmp"
	mkdir "$work/unpack.tmp"
	tar -xJf "$tarball" -C "$work/unpack.tmp"
	[ -d "$work/unpack.tmp/$srcname" ] ||
		die "$tarball does not hold $srcname/"
	mv "$work/unpack.tmp/$srcname" "$src"
	rmdir "$work/unpack.tmp"
	echo "$tarball_id" >"$stamp"
	echo "kunit: unpacked in $((SECONDS - start)) s"
fi

# --- hook this directory into it as net/netkernel_kunit/ -------------------
link=$src/net/netkernel_kunit
if [ "$(readlink "$link" 2>/dev/null)" != "$here" ]; then
	rm -rf "$link"
	ln -s "$here" "$link"
	# Objects built from another checkout may look newer than this one's
	# sources: build ours again.
	rm -rf "$out/net/netkernel_kunit"
fi
kconfig_line='source "net/netkernel_kunit/Kconfig"'
grep -qxF "$kconfig_line" "$src/net/Kconfig" ||
	printf '\n%s\n' "$kconfig_line" >>"$src/net/Kconfig"
# Entered with KUnit; the Kbuild there picks the suites (.kunitconfig).
# shellcheck disable=SC2016 # a make variable, not a shell one
make_line='obj-$(CONFIG_KUNIT) += netkernel_kunit/'
grep -qxF "$make_line" "$src/net/Makefile" ||
	printf '%s\n' "$make_line" >>"$src/net/Makefile"

# --- build, boot, parse -----------------------------------------------------
cd "$src"
rc=0
python3 tools/testing/kunit/kunit.py run \
	--kunitconfig="$here/.kunitconfig" \
	--build_dir="$out" \
	--jobs="$jobs" \
	"$@" </dev/null 2>&1 |
	sed -u "/^stty: 'standard input'/d" | tee "$work/kunit.log" || rc=$?

# kunit.py restores the terminal with "stty sane", which only complains
# when there is none (CI); its complaint is filtered out above.
if [ -s "$out/test.log" ] && [ "$out/test.log" -nt "$work/.run-start" ]; then
	echo "# ---- KTAP (build/kunit/out/test.log) ----"
	python3 tools/testing/kunit/kunit.py parse --raw_output=kunit \
		"$out/test.log"
fi
summary=$(grep -a 'Testing complete\.' "$work/kunit.log" | tail -n 1 ||
	true)
if [ -n "$summary" ]; then
	echo "${summary#*] }"
else
	echo "kunit: no test results (see $work/kunit.log)"
	[ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
