#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build NetKernel's Debian packages (make deb): netkernel-hostengine,
# netkernel-guest-dkms, netkernel-nsm-dkms, then lintian them.
#
# usage: tools/mkdeb.sh [OUTDIR]     (default build/deb)
#
# The tree's files (git's list: tracked and untracked, not ignored; or the
# whole tree without build/ and results/ when it is not a git checkout)
# are copied to OUTDIR/netkernel-VERSION and built there with
# dpkg-buildpackage, so the .deb files land in OUTDIR and nothing is
# written anywhere else.  lintian's tags go to OUTDIR/lintian.txt; an
# error tag fails the build.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$top/build/deb}
ver=$(sed -n 's/^#define NK_VERSION[[:space:]]*"\(.*\)"/\1/p' "$top/include/netkernel/nk_version.h")
[[ -n $ver ]] || { echo "mkdeb: no NK_VERSION in include/netkernel/nk_version.h" >&2; exit 1; }
src=$out/netkernel-$ver

rm -rf "$out"
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		(cd "$top" && xargs -0 cp -P --parents -t "$src" 2>/dev/null || true)
	# deleted but tracked files are absent: cp skipped them
else
	tar -C "$top" --exclude=./build --exclude=./results -cf - . | tar -C "$src" -xf -
fi
[[ -x $src/debian/rules ]] || { echo "mkdeb: $src/debian/rules missing" >&2; exit 1; }

(cd "$src" && dpkg-buildpackage -b -us -uc -j2) >"$out/build.log" 2>&1 || {
	echo "mkdeb: dpkg-buildpackage failed; the end of $out/build.log:" >&2
	tail -n 30 "$out/build.log" >&2
	exit 1
}
changes=$(ls "$out"/netkernel_"$ver"_*.changes)
lintian --no-tag-display-limit "$changes" >"$out/lintian.txt" 2>&1 || true
if grep -q '^E: ' "$out/lintian.txt"; then
	echo "mkdeb: lintian errors ($out/lintian.txt):" >&2
	grep '^E: ' "$out/lintian.txt" >&2
	exit 1
fi
ls "$out"/*.deb
