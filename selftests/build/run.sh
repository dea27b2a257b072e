#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The first run on a fresh machine: what `make demo` and `make check` do
# before any package is installed, and what the lab's image builder may
# write.  Each case stands stubs in for the system around the project
# (the kernel headers directory, dpkg-query and apt-get, the host's
# busybox), never for the project's own files.  TAP.
#
#   headers_after_deps   the Makefile finds kernel headers that its own
#                        deps step installed in the same run
#   no_headers_message   without headers, make modules says what to do
#   nonroot_no_install   make as another user names the missing packages
#                        and installs nothing
#   apt_unreachable      install-deps stops with a clear message when apt
#                        cannot reach its repository
#   initramfs_own_files  mkinitramfs.sh --bin/--add onto busybox applet
#                        paths write into the image, not onto the host
#
# usage: selftests/build/run.sh [CASE...]
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../kselftest/ktap_helpers.sh
. "$top/selftests/kselftest/ktap_helpers.sh"

tmp=$(mktemp -d /tmp/nk-buildtest.XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# A make of its own: not a sub-make of make check's jobserver.
submake() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "$@"
}

# stub_bin DIR: dpkg-query reporting every package as not installed, and
# apt-get recording each call in DIR/apt.calls; APT_UPDATE_OUT is what its
# `update` prints.
stub_bin() {
	local d=$1
	mkdir -p "$d/bin"
	cat >"$d/bin/dpkg-query" <<-'EOF'
	#!/bin/sh
	exit 1
	EOF
	cat >"$d/bin/apt-get" <<-EOF
	#!/bin/sh
	echo "\$*" >>"$d/apt.calls"
	[ "\$1" = update ] && printf '%s\n' "\${APT_UPDATE_OUT:-}"
	exit 0
	EOF
	cat >"$d/bin/apt-cache" <<-'EOF'
	#!/bin/sh
	exit 0
	EOF
	chmod 755 "$d/bin"/*
}

# The Makefile and the scripts it runs before building, copied where an
# unprivileged user can read them.
stub_tree() {
	local d=$1
	mkdir -p "$d/tree/tools/testing/lab" "$d/tree/selftests/kselftest"
	cp "$top/Makefile" "$d/tree/"
	cp "$top/tools/install-deps.sh" "$d/tree/tools/"
	cp "$top/tools/testing/lab/lib.sh" "$d/tree/tools/testing/lab/"
	cp "$top/selftests/kselftest/ktap_helpers.sh" "$d/tree/selftests/kselftest/"
	chmod -R a+rX "$d"
}

test_headers_after_deps() {
	local d=$tmp/hdr out hdir
	mkdir -p "$d/src"
	hdir=$d/src/linux-headers-6.1.0-99-amd64
	# The deps step installs the headers; the headers' Makefile says how
	# it was called.
	cat >"$d/install" <<-EOF
	#!/bin/sh
	mkdir -p "$hdir"
	printf 'modules:\n\t@echo "kbuild \$(CURDIR) M=\$(M)"\n' >"$hdir/Makefile"
	EOF
	chmod 755 "$d/install"
	out=$(submake -C "$top" modules KSRC="$d/src" DEPS="$d/install" 2>&1) || {
		ktap_diag "$out"
		return 1
	}
	grep -qxF "kbuild $hdir M=$top" <<<"$out" || {
		ktap_diag "make modules did not build against $hdir:"
		ktap_diag "$out"
		return 1
	}
}

test_no_headers_message() {
	local d=$tmp/nohdr out
	mkdir -p "$d/src"
	if out=$(submake -C "$top" modules KSRC="$d/src" DEPS=true 2>&1); then
		ktap_diag "make modules succeeded without headers: $out"
		return 1
	fi
	grep -q "no $d/src/linux-headers-6.1.\*-amd64: run 'make deps' as root" <<<"$out" || {
		ktap_diag "unclear message: $out"
		return 1
	}
}

test_nonroot_no_install() {
	local d=$tmp/nonroot out rc=0
	stub_bin "$d"
	stub_tree "$d"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
		env PATH="$d/bin:$PATH" make -C "$d/tree" deps 2>&1) && rc=1
	grep -q "missing packages: .*dpdk-dev" <<<"$out" || rc=1
	grep -qF "'make deps'" <<<"$out" || rc=1
	grep -q "^install-deps: host engine (.*): .*libcmocka-dev" <<<"$out" || rc=1
	if [[ -e $d/apt.calls ]]; then
		ktap_diag "apt-get ran: $(<"$d/apt.calls")"
		rc=1
	fi
	((rc == 0)) || ktap_diag "$out"
	return $rc
}

test_apt_unreachable() {
	local d=$tmp/apt out rc=0
	stub_bin "$d"
	stub_tree "$d"
	out=$(APT_UPDATE_OUT="Err:1 http://mirror.invalid/debian bookworm InRelease" \
		PATH="$d/bin:$PATH" "$d/tree/tools/install-deps.sh" 2>&1) && rc=1
	grep -q "could not reach the Debian repositories" <<<"$out" || rc=1
	if grep -q '^install' "$d/apt.calls"; then
		ktap_diag "apt-get install ran after a failed update"
		rc=1
	fi
	((rc == 0)) || ktap_diag "$out"
	return $rc
}

# In a mount namespace whose /bin/busybox is a copy, so that a builder
# that writes through a staged applet link changes the copy, not the host.
test_initramfs_own_files() {
	local d=$tmp/initramfs
	mkdir -p "$d/x"
	cp /bin/busybox "$d/busybox"
	printf '#!/bin/sh\n' >"$d/init"
	printf 'added\n' >"$d/added"
	unshare -m --propagation private bash -euo pipefail -c '
		d=$1 top=$2
		mount --bind "$d/busybox" /bin/busybox
		before=$(sha256sum </bin/busybox)
		"$top/tools/testing/lab/mkinitramfs.sh" -o "$d/img.cpio.gz" --init "$d/init" \
			--bin /usr/bin/sha256sum --add "$d/added:/bin/ls" --force
		after=$(sha256sum </bin/busybox)
		if [[ $before != "$after" ]]; then
			echo "# /bin/busybox changed"
			exit 1
		fi' _ "$d" "$top" >"$d/log" 2>&1 || {
		ktap_diag "$(<"$d/log")"
		return 1
	}
	(cd "$d/x" && gzip -dc ../img.cpio.gz | cpio -id --quiet) || return 1
	cmp -s "$d/x/usr/bin/sha256sum" /usr/bin/sha256sum || {
		ktap_diag "the image's /usr/bin/sha256sum is not the host's sha256sum"
		return 1
	}
	cmp -s "$d/x/bin/ls" "$d/added" || {
		ktap_diag "the image's /bin/ls is not the added file"
		return 1
	}
	cmp -s "$d/x/bin/busybox" /bin/busybox || {
		ktap_diag "the image's /bin/busybox is not busybox"
		return 1
	}
}

# shellcheck disable=SC2034 # the table, read by ktap_run_table
TEST_NAMES=(headers_after_deps no_headers_message nonroot_no_install apt_unreachable
	initramfs_own_files)
TEST_DESCS=("${TEST_NAMES[@]}")	# the points are named after the cases

ktap_begin "$(ktap_table_count "$@")"
ktap_run_table "$@"
ktap_end
