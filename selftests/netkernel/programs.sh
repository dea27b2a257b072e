# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Real programs in the VM lab, sourced by run-vm.sh after tools/lab/lib.sh
# and tools/lab/topology.sh: each runs unchanged, as a user would run it,
# in the NetKernel guest and in the baseline guest, in run-vm.sh's one boot
# of the lab.  Each prog_* function is one KTAP test point, passing when
# it returns 0 (run-vm.sh's table names them).
#
#   prog_nginx VM   Debian's nginx with Debian's own /etc/nginx (nginx.conf
#                   with sendfile on and tcp_nopush on, so TCP_CORK; the
#                   default site listening on port 80 over IPv4 and IPv6)
#                   serves a 1 MiB file from VM to the world: the world's
#                   copy has the guest's sha256, and nginx's error log has
#                   no error or warning
#
#   prog_httpd_local VM   busybox httpd and busybox wget http://localhost/
#                   in the same VM (localhost from /etc/hosts, as Debian
#                   writes it: 127.0.0.1 and ::1): the copy has the file's
#                   sha256, fetched over each
#
# prog_initrd_args adds the programs to TOPO_INITRD_ARGS before topo_build;
# a program that is not installed (tools/install-deps.sh installs it) is a
# failed test point, not a skipped one.
# Scripts for the guests in single quotes are expanded by the guest.
# shellcheck disable=SC2016

prog_nginx_bin=/usr/sbin/nginx

prog_initrd_args() {
	local f
	[[ -x $prog_nginx_bin ]] || return 0
	TOPO_INITRD_ARGS+=(--bin "$prog_nginx_bin")
	for f in nginx.conf mime.types sites-available/default; do
		TOPO_INITRD_ARGS+=(--add "/etc/nginx/$f:/etc/nginx/$f")
	done
}

# prog_nginx VM: one test point.
prog_nginx() {
	local vm=$1 name="nginx, Debian's default configuration: $1 serves a file to the world"
	local ip out rc=0 sha got
	if [[ ! -x $prog_nginx_bin ]]; then
		ktap_diag "$name: $prog_nginx_bin is not installed (tools/install-deps.sh)"
		return 1
	fi
	ip=$(topo_vm_ip "$vm")
	# Debian's layout: the site enabled by a link, the www-data user, the
	# log and temporary directories the package creates.
	out=$(topo_exec "$vm" 120 'set -e
mkdir -p /etc/nginx/sites-enabled /etc/nginx/modules-enabled /etc/nginx/conf.d \
	/var/log/nginx /var/lib/nginx /var/www/html /run
ln -sf /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default
grep -q "^www-data:" /etc/passwd 2>/dev/null ||
	echo "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin" >>/etc/passwd
grep -q "^www-data:" /etc/group 2>/dev/null || echo "www-data:x:33:" >>/etc/group
head -c 1048576 /dev/urandom >/var/www/html/file
: >/var/log/nginx/error.log
nginx
i=0
until grep -Eqs ":0050 [0-9A-F]+:0000 0A|:80 " /proc/net/netkernel /proc/net/tcp /proc/net/tcp6; do
	[ $i -lt 100 ] || { echo "nginx does not listen"; cat /var/log/nginx/error.log; exit 1; }
	sleep 0.2; i=$((i + 1))
done
sha256sum /var/www/html/file') || rc=1
	sha=${out##*$'\n'}
	sha=${sha%% *}
	if ((rc)); then
		ktap_diag "$name: nginx did not start in $vm:" "$out"
		return 1
	fi
	got=$(timeout -k 5 60 ip netns exec "$TOPO_NS" python3 -c '
import hashlib, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
	print(hashlib.sha256(r.read()).hexdigest())' "http://$ip/file" 2>&1 | tail -n 1) || rc=1
	# Errors and warnings; the notice of the stop signal is not one.
	out=$(topo_exec "$vm" 30 'nginx -s stop >/dev/null 2>&1; sleep 1
grep -E "\[(emerg|alert|crit|error|warn)\]" /var/log/nginx/error.log') || true
	ktap_diag "$name: the guest's sha256 ${sha:0:16}..., the world's ${got:0:16}..."
	if [[ -n $out ]]; then
		ktap_diag "nginx's error log in $vm:" "$out"
		rc=1
	fi
	[[ $got == "$sha" && -n $sha ]] || rc=1
	return "$rc"
}

# prog_httpd_local VM: one test point.
prog_httpd_local() {
	local vm=$1 name="busybox httpd and wget http://localhost/ in $1" out rc=0
	out=$(topo_exec "$vm" 120 'set -e
[ -s /etc/hosts ] || printf "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n" >/etc/hosts
mkdir -p /tmp/www
head -c 262144 /dev/urandom >/tmp/www/file
busybox httpd -f -p 8080 -h /tmp/www &
pid=$!
i=0
until grep -Eqs ":1F90 [0-9A-F]+:0000 0A|:8080 " /proc/net/netkernel /proc/net/tcp /proc/net/tcp6; do
	[ $i -lt 100 ] || { echo "httpd does not listen"; exit 1; }
	sleep 0.2; i=$((i + 1))
done
want=$(sha256sum </tmp/www/file)
for url in http://localhost:8080/file http://127.0.0.1:8080/file "http://[::1]:8080/file"; do
	rm -f /tmp/got
	busybox wget -q -O /tmp/got "$url" || { echo "wget $url failed"; rc=1; continue; }
	got=$(sha256sum </tmp/got)
	[ "$got" = "$want" ] && echo "$url: same sha256" || { echo "$url: sha256 differs"; rc=1; }
done
kill $pid
exit ${rc:-0}' 2>&1) || rc=1
	ktap_diag "$name:" "$out"
	return "$rc"
}
