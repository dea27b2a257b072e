#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build a guest initramfs (newc cpio, gzip) for the NetKernel VM lab: static
# busybox with its applet links, Debian's virtio modules for one kernel
# version (plus any named modules, dependencies resolved from modules.dep),
# the lab's guest helpers (/lib/nk-lab.sh), optional project files, project
# modules and dynamically linked host programs, and the caller's /init.
#
# usage: mkinitramfs.sh -o OUT.cpio.gz --init FILE [options]
#   -o, --output FILE   the initramfs to write (required)
#   --init FILE         the guest's /init, a busybox sh script (required)
#   -k, --kernel VER    kernel version (default: newest 6.1, lab_kernel_version)
#   --module NAME       a module of that kernel, with its dependencies
#                       (repeatable; loaded after the virtio ones, in order)
#   --ko FILE           a project module (.ko), installed under
#                       /lib/modules/VER/extra and loaded last, in order;
#                       its Debian dependencies are resolved too (repeatable)
#   --add SRC:DST       copy file SRC to DST in the image (repeatable)
#   --bin PATH          a host program, copied to the same path with the
#                       shared libraries ldd reports (repeatable)
#   --force             rebuild even if the inputs did not change
#
# /etc/nk-lab/modules lists the modules to insmod, dependencies first;
# nk_load_modules (guest-lib.sh) loads them.  The image is rebuilt only when
# an input changed: OUT.inputs records the sha256 of every input file and
# every option, and a matching record means OUT is up to date.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

BASE_MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci)
BUSYBOX=${BUSYBOX:-/bin/busybox}

usage() {
	sed -n '/^# usage:/,/^set -euo/{/^set/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

out='' init='' ver='' force=0
modules=() kos=() adds=() bins=()
while (($#)); do
	case $1 in
	-o | --output) out=${2:?}; shift ;;
	--init) init=${2:?}; shift ;;
	-k | --kernel) ver=${2:?}; shift ;;
	--module) modules+=("${2:?}"); shift ;;
	--ko) kos+=("${2:?}"); shift ;;
	--add) adds+=("${2:?}"); shift ;;
	--bin) bins+=("${2:?}"); shift ;;
	--force) force=1 ;;
	-h | --help) usage ;;
	*) echo "mkinitramfs: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[[ -n $out && -n $init ]] || usage
[[ -r $init ]] || lab_die "--init $init: not readable"
[[ -n $ver ]] || ver=$(lab_kernel_version 6.1)
moddir=/lib/modules/$ver
[[ -r $moddir/modules.dep ]] || lab_die "$moddir/modules.dep missing (kernel $ver not installed?)"
[[ -x $BUSYBOX ]] || lab_die "$BUSYBOX missing (install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	lab_die "$BUSYBOX is dynamically linked; the initramfs needs busybox-static"
fi
for cmd in cpio gzip sha256sum; do
	command -v "$cmd" >/dev/null || lab_die "$cmd not installed"
done

# ------------------------------------------------------ module resolution

# modules.dep: "kernel/x/a.ko.xz: kernel/y/b.ko kernel/z/c.ko" with the
# full (transitive) dependency list.  Names use '_' for '-'.
declare -A mod_path=() mod_deps=() builtin=()
while IFS= read -r line; do
	path=${line%%:*}
	name=${path##*/}
	name=${name%%.ko*}
	name=${name//-/_}
	mod_path[$name]=$path
	deps=${line#*:}
	mod_deps[$name]=${deps# }
done <"$moddir/modules.dep"
if [[ -r $moddir/modules.builtin ]]; then
	while IFS= read -r path; do
		name=${path##*/}
		name=${name%%.ko*}
		builtin[${name//-/_}]=1
	done <"$moddir/modules.builtin"
fi

declare -A seen=()
load_order=()	# module paths relative to $moddir, dependencies first

add_module() {	# NAME
	local name=${1//-/_} dep dname
	[[ -z ${seen[$name]:-} ]] || return 0
	seen[$name]=1
	if [[ -z ${mod_path[$name]:-} ]]; then
		if [[ -n ${builtin[$name]:-} ]]; then
			return 0
		fi
		lab_die "module $1 not found in $moddir/modules.dep"
	fi
	for dep in ${mod_deps[$name]}; do
		dname=${dep##*/}
		dname=${dname%%.ko*}
		add_module "$dname"
	done
	load_order+=("${mod_path[$name]}")
}

for m in "${BASE_MODULES[@]}" "${modules[@]}"; do
	add_module "$m"
done
for ko in "${kos[@]}"; do
	[[ -r $ko ]] || lab_die "--ko $ko: not readable"
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		# A dependency on another --ko module is satisfied by the order.
		for k in "${kos[@]}"; do
			kn=$(basename "$k" .ko)
			[[ ${kn//-/_} != "${dep//-/_}" ]] || continue 2
		done
		add_module "$dep"
	done
done

# ---------------------------------------------------------- shared libraries

bin_files=()
for b in "${bins[@]}"; do
	[[ $b == /* && -x $b ]] || lab_die "--bin $b: not an executable absolute path"
	bin_files+=("$b")
	# A static program: ldd fails with "not a dynamic executable".
	ldd_out=$(ldd "$b" 2>&1) || continue
	while read -r l; do
		case $l in
		*'=> not found'*) lab_die "--bin $b: ${l%% *} not found" ;;
		*'=> /'*) l=${l#*=> }; bin_files+=("${l%% (*}") ;;
		/*) bin_files+=("${l%% (*}") ;;
		esac
	done <<<"$ldd_out"
done

# --------------------------------------------------------------- the inputs

inputs() {
	local f src
	echo "mkinitramfs-format 1 kernel $ver"
	sha256sum "${BASH_SOURCE[0]}" "$here/guest-lib.sh" "$BUSYBOX" "$init" | cut -d' ' -f1
	for f in "${load_order[@]}"; do
		echo "module $f $(stat -c '%s %Y' "$moddir/$f")"
	done
	for f in "${kos[@]}"; do
		echo "ko $(basename "$f") $(sha256sum <"$f" | cut -d' ' -f1)"
	done
	for f in "${adds[@]}"; do
		src=${f%%:*}
		[[ -r $src && $f == *:/* ]] || lab_die "--add $f: want SRC:/ABS/DST with SRC readable"
		echo "add ${f#*:} $(sha256sum <"$src" | cut -d' ' -f1) $(stat -c %a "$src")"
	done
	for f in "${bin_files[@]}"; do
		echo "bin $f $(sha256sum <"$f" | cut -d' ' -f1)"
	done
}

record=$(inputs)
if ((!force)) && [[ -s $out && -r $out.inputs ]] && [[ $(<"$out.inputs") == "$record" ]]; then
	echo "mkinitramfs: $out is up to date" >&2
	exit 0
fi

# ------------------------------------------------------------------- build

mkdir -p "$(dirname "$out")"
stage=$(realpath "$(mktemp -d /tmp/nk-initramfs.XXXXXX)")
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -rf "$stage" "$tmp"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc/nk-lab,lib,proc,sys,dev,tmp,run,root}
cp "$BUSYBOX" "$stage/bin/busybox"
while IFS= read -r applet; do
	[[ -n $applet && $applet != bin/busybox ]] || continue
	mkdir -p "$stage/$(dirname "$applet")"
	ln -sf /bin/busybox "$stage/$applet"
done < <("$BUSYBOX" --list-full)
if [[ $(id -u) -eq 0 ]]; then
	# The kernel's built-in initramfs has these too; being explicit keeps
	# init's console when it is not there.
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3
fi

kdir=$stage/lib/modules/$ver
: >"$stage/etc/nk-lab/modules"
for f in "${load_order[@]}"; do
	dst=$kdir/${f%.ko*}.ko
	mkdir -p "$(dirname "$dst")"
	case $f in
	*.ko) cp "$moddir/$f" "$dst" ;;
	*.ko.xz) xz -dc "$moddir/$f" >"$dst" ;;
	*.ko.zst) zstd -qdc "$moddir/$f" >"$dst" ;;
	*.ko.gz) gzip -dc "$moddir/$f" >"$dst" ;;
	*) lab_die "$f: unknown module compression" ;;
	esac
	echo "/lib/modules/$ver/${f%.ko*}.ko" >>"$stage/etc/nk-lab/modules"
done
for ko in "${kos[@]}"; do
	mkdir -p "$kdir/extra"
	cp "$ko" "$kdir/extra/"
	echo "/lib/modules/$ver/extra/$(basename "$ko")" >>"$stage/etc/nk-lab/modules"
done
echo "$ver" >"$stage/etc/nk-lab/kernel"

# stage_put SRC DST: copy the file SRC to DST inside the stage.  The stage
# is full of applet links to /bin/busybox, absolute ones: writing through
# one would overwrite the host's busybox, so DST's directory must resolve
# inside the stage and DST itself, a link or not, is replaced.
stage_put() {
	local src=$1 dst=$stage$2 dir
	mkdir -p "$(dirname "$dst")"
	dir=$(realpath -e "$(dirname "$dst")")
	[[ $dir/ == "$stage"/* ]] || lab_die "$2: its directory leaves the image ($dir)"
	rm -f "$dst"
	cp -L --preserve=mode "$src" "$dst"
}

for f in "${bin_files[@]}"; do
	stage_put "$f" "$f"
done
for f in "${adds[@]}"; do
	stage_put "${f%%:*}" "${f#*:}"
done

cp "$here/guest-lib.sh" "$stage/lib/nk-lab.sh"
cp "$init" "$stage/init"
chmod 755 "$stage/init"

(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
	gzip -n -6 >"$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$out"
printf '%s\n' "$record" >"$out.inputs"
echo "mkinitramfs: wrote $out ($(du -k "$out" | cut -f1) KiB, kernel $ver, ${#load_order[@]} + ${#kos[@]} modules)" >&2
