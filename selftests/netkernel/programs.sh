# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Real programs in the VM lab, sourced by run-vm.sh after tools/testing/lab/lib.sh
# and tools/testing/lab/topology.sh: each runs unchanged, as a user would run it,
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
#   prog_redis_local VM   Debian's redis-server with Debian's own
#                   /etc/redis/redis.conf (bind 127.0.0.1 -::1, port 6379,
#                   daemonized) and redis-cli with its default host in the
#                   same VM: SET, GET, 200 INCR, PING over ::1, a short
#                   redis-benchmark of SET and GET (50 clients), then the
#                   counter and the keys checked, and redis's log free of
#                   errors
#   prog_ifaddrs VM getifaddrs() (nk_ifaddrs) and ip addr show VM's own
#                   addresses (IPv4 and IPv6, the engine's in vm1) on an
#                   interface that is up and not loopback (vm1: nk0, from
#                   af_netkernel/nk_netdev.c; base: its NIC), as programs
#                   that advertise their own address look for it
#
#   prog_ifaddrs_reload   (vm1) a reload of the engine's configuration
#                   that changes vm1's address6 reaches nk0 with vm1's
#                   next socket (its SOCKET reply lists the addresses),
#                   and so does the reload that puts it back
#
#   prog_sshd VM    Debian's OpenSSH server (sshd -D -e, a configuration,
#                   host key, client key and known_hosts made in
#                   build/lab/ssh) accepts the world's ssh client by key
#                   and runs a command in VM: its output names VM's
#                   kernel, and sshd (which sets IP_TOS on its
#                   connections) logs no error
#
#   prog_dnsmasq VM dnsmasq (dnsmasq-base: a wildcard UDP socket that
#                   reads IP_PKTINFO/IPV6_PKTINFO and answers through it)
#                   serves a name from a hosts file: busybox nslookup in
#                   the world gets its A record over IPv4 and its AAAA
#                   record over IPv6
#
#   prog_lo_nsm_free   (vm1) 20 busybox wget of http://127.0.0.1/ from
#                   busybox httpd on 127.0.0.1 and 20 from one on the
#                   wildcard: the NSM opens no socket for them and gets no
#                   request (its sockets_opened and requests counters),
#                   since a socket that only talks over loopback never
#                   needs one, and a wildcard listener woken by a local
#                   client asks the NSM nothing
#
# prog_initrd_args adds the programs to TOPO_INITRD_ARGS before topo_build;
# a program that is not installed (tools/install-deps.sh installs it) is a
# failed test point, not a skipped one.
# Scripts for the guests in single quotes are expanded by the guest.
# shellcheck disable=SC2016

prog_nginx_bin=/usr/sbin/nginx
prog_redis_bins=(/usr/bin/redis-server /usr/bin/redis-cli /usr/bin/redis-benchmark)
prog_sshd_bin=/usr/sbin/sshd	# openssh-server
prog_ssh_bin=/usr/bin/ssh	# openssh-client, in the world
prog_dnsmasq_bin=/usr/sbin/dnsmasq	# dnsmasq-base
prog_ssh_dir=$LAB_TOP/build/lab/ssh	# keys and configuration (prog_ssh_files)
prog_dns_name=www.nk.test	# what dnsmasq serves, and its addresses
prog_dns_a=10.9.8.7
prog_dns_aaaa=fd00::9:8:7

# prog_ssh_files: sshd's host key, the world's client key, sshd's
# configuration in prog_ssh_dir (made once; kept, so that the initramfs
# stays the same from run to run).
prog_ssh_files() {
	local d=$prog_ssh_dir
	mkdir -p "$d" || return 1
	[[ -s $d/host_ed25519_key ]] ||
		ssh-keygen -q -t ed25519 -N '' -C nk-lab-host -f "$d/host_ed25519_key" || return 1
	[[ -s $d/client_ed25519_key ]] ||
		ssh-keygen -q -t ed25519 -N '' -C nk-lab-client -f "$d/client_ed25519_key" || return 1
	cat >"$d/sshd_config" <<-EOF
	# The lab's sshd (selftests/netkernel/programs.sh, prog_sshd)
	Port 22
	HostKey /etc/ssh/nk_host_ed25519_key
	AuthorizedKeysFile /etc/ssh/nk_authorized_keys
	PermitRootLogin prohibit-password
	PubkeyAuthentication yes
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	StrictModes no
	PidFile none
	LogLevel VERBOSE
	EOF
}

prog_initrd_args() {
	local f
	if [[ -x $prog_nginx_bin ]]; then
		TOPO_INITRD_ARGS+=(--bin "$prog_nginx_bin")
		for f in nginx.conf mime.types sites-available/default; do
			TOPO_INITRD_ARGS+=(--add "/etc/nginx/$f:/etc/nginx/$f")
		done
	fi
	for f in "${prog_redis_bins[@]}"; do
		[[ -x $f ]] && TOPO_INITRD_ARGS+=(--bin "$f")
	done
	[[ ! -r /etc/redis/redis.conf ]] ||
		TOPO_INITRD_ARGS+=(--add "/etc/redis/redis.conf:/etc/redis/redis.conf")
	if [[ -x $prog_sshd_bin ]] && prog_ssh_files; then
		TOPO_INITRD_ARGS+=(--bin "$prog_sshd_bin"
			--add "$prog_ssh_dir/host_ed25519_key:/etc/ssh/nk_host_ed25519_key"
			--add "$prog_ssh_dir/client_ed25519_key.pub:/etc/ssh/nk_authorized_keys"
			--add "$prog_ssh_dir/sshd_config:/etc/ssh/nk_sshd_config")
	fi
	[[ ! -x $prog_dnsmasq_bin ]] || TOPO_INITRD_ARGS+=(--bin "$prog_dnsmasq_bin")
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
. /lib/nk-lab.sh
nk_wait_listen tcp 80 nginx /var/log/nginx/error.log || exit 1
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

# ------------------------------------------------------ the guest's view
# What the guest's own tools show, Debian's ss (iproute2), netstat
# (net-tools) and lsof, run unchanged in vm1 and in the baseline guest
# with the same sockets open in each (prog_view_open):
#
#   a TCP listener on 8081, dual-stack (busybox nc -l)
#   a TCP listener and a bound UDP socket on 0.0.0.0:9001 (nk_dgram)
#   a TCP connection to the world's port 9000, held open (busybox nc)
#   a TCP connection over loopback, held open: busybox nc -l on 9002
#   (dual-stack) and busybox nc to 127.0.0.1 9002
#   a TCP listener on 127.0.0.1:9003 (busybox httpd)
#
# (In vm1 the wildcard listeners and the loopback sockets have native
# halves, af_netkernel/nk_af.c: each socket must still be listed once, with
# its native half's state and addresses.)
#
# Each tool's output is normalised (prog_view_norm: the guest's own
# address is SELF, an ephemeral port EPH, pids and queue sizes dropped,
# lines sorted), only the lines of these sockets are kept (other tests
# leave sockets behind: a native guest keeps TIME-WAIT connections, a
# NetKernel guest's are in the NSM), and the two guests' must be equal
# and not empty:
#
#   prog_view_ss       ss -tan, ss -tln, ss -uan, ss -tnp, ss -uanp
#   prog_view_ssinfo   ss -tin: a connection's rtt, cwnd and byte counts,
#                      the NSM's socket's in vm1 (see there); those of the
#                      loopback connection on 9002 too, its native half's
#   prog_view_netstat  netstat -tn, netstat -tln, netstat -uan
#   prog_view_lsof     lsof -i -n -P
#   prog_view_diag     nk_diagreq: good and bad sock_diag requests (unknown
#                      family or protocol, a short request, bad or huge
#                      filters) answered alike
#   prog_view_proc     (vm1) /proc/net/netkernel's uid and inode columns
#                      name the inodes ss -tanep gives
#   prog_view_fallback (vm1) /sys/module/af_netkernel/fallback counts
#                      ping's ICMP socket (unsupported) and a TCP socket
#                      in another network namespace (netns), and not the
#                      native half of a NetKernel socket (kernel)

prog_view_bins=(/usr/bin/ss /usr/bin/lsof /usr/bin/netstat)
prog_view_port=9000	# the world's holder
prog_view_greet_port=9002	# the world's greeter (prog_view_ssinfo)
declare -gA prog_view_pids=()	# the world's servers by port, while they run
# The lines of these sockets, and the lines naming each listing.
prog_view_keep="^(ss|netstat) -|:(8081|9001|9002|9003|$prog_view_port)( |$|-)"

prog_view_initrd_args() {	# DIAGREQ DGRAM: static helpers to add
	local b
	for b in "${prog_view_bins[@]}"; do
		[[ -x $b ]] && TOPO_INITRD_ARGS+=(--bin "$b")
	done
	TOPO_INITRD_ARGS+=(--add "$1:/usr/bin/nk_diagreq" --add "$2:/usr/bin/nk_dgram")
}

# prog_view_world PORT [GREETING]: a server in the world that accepts and
# holds connections on PORT, sending each GREETING first (started once
# per port, stopped at cleanup).
prog_view_world() {
	local port=$1 greet=${2:-}
	[[ -z ${prog_view_pids[$port]:-} ]] || return 0
	topo_world_spawn "$LAB_LOG_DIR/view-holder-$port.log" python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
held = []
while True:
	c = s.accept()
	c[0].sendall(sys.argv[3].encode())
	held.append(c)' "$TOPO_WORLD_IP" "$port" "$greet"
	prog_view_pids[$port]=$LAB_LAST_PID
	topo_world_wait_port "$port"
}

# prog_view_open VM: the sockets above, open in VM (once).
prog_view_open() {
	local vm=$1
	prog_view_world "$prog_view_port" || return 1
	topo_exec "$vm" 60 '[ -e /tmp/view-open ] && exit 0
grep -qs "^root:" /etc/passwd || echo "root:x:0:0:root:/root:/bin/sh" >>/etc/passwd
nc -l -p 8081 </dev/null >/dev/null 2>&1 &
mkfifo /tmp/view-fifo
nk_dgram '"$TOPO_WORLD_IP"' 9 9001 /tmp/view-fifo >/tmp/view-dgram.log 2>&1 &
(sleep 3600 | nc '"$TOPO_WORLD_IP $prog_view_port"' >/dev/null 2>&1) &
(sleep 3600 | nc -l -p 9002 >/dev/null 2>&1) &
busybox httpd -f -p 127.0.0.1:9003 -h /tmp &
echo $! >/tmp/view-httpd.pid
i=0
until ss -Htln | grep -Eq ":9002( |$)"; do
	[ $i -lt 100 ] || { echo "nc -l -p 9002 does not listen"; exit 1; }
	sleep 0.2; i=$((i + 1))
done
(sleep 3600 | nc 127.0.0.1 9002 >/dev/null 2>&1) &
i=0
until ss -Htn | grep -Eq "127\.0\.0\.1:9002( |$)" &&
	ss -Htln | grep -Eq "127\.0\.0\.1:9003( |$)" &&
	grep -qs ready /tmp/view-dgram.log &&
	grep -Eqs " [0-9A-F]+:'"$(printf %04X "$prog_view_port")"' 01 |:'"$prog_view_port"' " /proc/net/netkernel /proc/net/tcp; do
	[ $i -lt 100 ] || { echo "the sockets did not open"; cat /tmp/view-dgram.log; exit 1; }
	sleep 0.2; i=$((i + 1))
done
: >/tmp/view-open'
}

# prog_view_norm VM: stdin normalised for VM (see above).
prog_view_norm() {
	local self
	self=$(topo_vm_ip "$1")
	sed -E -e "s/(::ffff:)?${self//./\\.}([: ])/SELF\2/g" \
		-e 's/:(3[2-9][0-9]{3}|[4-6][0-9]{4})( |$|-)/:EPH\2/g' \
		-e 's/pid=[0-9]+,//g' -e 's/ +/ /g' -e 's/ $//' | sort
}

# prog_view_compare NAME SCRIPT [KEEP]: run SCRIPT in vm1 and in the
# baseline guest, normalised, keeping only the lines matching the regex
# KEEP if given; 0 when equal and not empty.
prog_view_compare() {
	local name=$1 script=$2 keep=${3:-} vm out rc=0
	local -A got
	for vm in vm1 "$TOPO_BASE"; do
		prog_view_open "$vm" || { ktap_diag "$name: the sockets did not open in $vm"; return 1; }
		out=$(topo_exec "$vm" 60 "$script" 2>&1) || rc=1
		got[$vm]=$(prog_view_norm "$vm" <<<"$out")
		[[ -z $keep ]] || got[$vm]=$(grep -E -- "$keep" <<<"${got[$vm]}")
	done
	if ((rc)) || [[ ${got[vm1]} != "${got[$TOPO_BASE]}" || -z ${got[vm1]} ]]; then
		ktap_diag "$name: vm1 and $TOPO_BASE differ (normalised; < vm1, > $TOPO_BASE):" \
			"$(diff <(echo "${got[vm1]}") <(echo "${got[$TOPO_BASE]}"))"
		return 1
	fi
	ktap_diag "$name: $(wc -l <<<"${got[vm1]}") lines alike"
	return 0
}

# The State, Local and Peer columns (and Process with -p) of ss.
prog_view_ss() {
	prog_view_compare "ss" '
for o in -tan -tln -uan; do echo "ss $o"; ss -H $o | awk "{ print \$1, \$4, \$5 }"; done
for o in -tnp -tlnp -uanp; do echo "ss $o"; ss -H $o | awk "{ print \$1, \$4, \$5, \$6 }"; done' "$prog_view_keep"
}

# ss -tin: a TCP connection shows the info of the socket that carries
# it, the NSM's in vm1.  Each guest holds a connection to the world's
# greeter, which sends "hi\n" (3 bytes) while the guest sends "hello" (5),
# and ss -tin must show rtt, cwnd and the same byte counts in vm1 as in
# the baseline guest: bytes_sent:5, bytes_acked:6 (the SYN counts) and
# bytes_received:3.  In vm1, ss -tan sends the NSM no request (the nk
# device's tx_msgs does not move) and ss -tin does.
prog_view_ssinfo() {
	local vm out rc=0
	local -A got world
	prog_view_world "$prog_view_greet_port" 'hi
' || { ktap_diag "ss -tin: the world's greeter did not start"; return 1; }
	for vm in vm1 "$TOPO_BASE"; do
		out=$(topo_exec "$vm" 60 '[ -e /tmp/view-info ] ||
	{ (printf hello; sleep 3600) | nc '"$TOPO_WORLD_IP $prog_view_greet_port"' >/dev/null 2>&1 & : >/tmp/view-info; }
i=0
until ss -HOtin | grep -E ":'"$prog_view_greet_port"'( |$)" >/tmp/view-info.ss &&
	grep -q "bytes_received:3" /tmp/view-info.ss; do
	[ $i -lt 50 ] || break
	sleep 0.2; i=$((i + 1))
done
cat /tmp/view-info.ss') || rc=1
		ktap_diag "ss -tin in $vm:" "$out"
		got[$vm]=$(grep -oE ' (rtt|cwnd):| bytes_(sent|acked|received):[0-9]+' <<<"$out" | sort)
		# The world's connection has all five (the loopback one fewer).
		world[$vm]=$(grep -F " $TOPO_WORLD_IP:$prog_view_greet_port" <<<"$out" |
			grep -oE ' (rtt|cwnd):| bytes_(sent|acked|received):[0-9]+' | wc -l)
	done
	if [[ ${got[vm1]} != "${got[$TOPO_BASE]}" || ${world[vm1]} -ne 5 ]]; then
		ktap_diag "ss -tin: vm1 and $TOPO_BASE differ (< vm1, > $TOPO_BASE):" \
			"$(diff <(echo "${got[vm1]}") <(echo "${got[$TOPO_BASE]}"))"
		rc=1
	fi
	out=$(topo_exec vm1 30 '
n=$(ls /sys/bus/virtio/devices/*/nk/tx_msgs | head -n 1)
a=$(cat $n); ss -Htan >/dev/null; ss -Htan >/dev/null; b=$(cat $n)
ss -Htin >/dev/null; c=$(cat $n)
echo "tx_msgs: $a, after ss -tan twice $b, after ss -tin $c"
[ "$b" -eq "$a" ] && [ "$c" -gt "$b" ]') || rc=1
	ktap_diag "requests to the NSM in vm1: $out"
	return "$rc"
}

prog_view_netstat() {
	prog_view_compare "netstat" '
for o in -tn -tln -uan; do echo "netstat $o"; /usr/bin/netstat $o | awk "NR > 2 { print \$1, \$4, \$5, \$6 }"; done' "$prog_view_keep"
}

prog_view_lsof() {
	prog_view_compare "lsof" 'lsof -i -n -P 2>/dev/null | awk "NR > 1 { print \$1, \$5, \$8, \$9, \$10 }"' \
		"$prog_view_keep"
}

prog_view_diag() {
	prog_view_compare "sock_diag requests" 'nk_diagreq'
}

# /proc/net/netkernel's uid and inode columns (found by their header) are
# the owner and the inode ss -e shows for the same local address.
prog_view_proc() {
	local out
	prog_view_open vm1 || return 1
	out=$(topo_exec vm1 30 '
awk "NR == 1 { for (i = 1; i <= NF; i++) c[\$i] = i; next }
	{ print \$c[\"local\"], \$c[\"uid\"], \$c[\"inode\"] }" /proc/net/netkernel | sort >/tmp/view-proc
ss -Htuane | awk "{ u = 0; n = \"\"
	for (i = 6; i <= NF; i++) { if (\$i ~ /^uid:/) u = substr(\$i, 5); if (\$i ~ /^ino:/) n = substr(\$i, 5) }
	sub(/^\\*:/, \"[::]:\", \$5); if (n != \"\" && n != 0) print \$5, u, n }" | sort >/tmp/view-ss
echo "proc:"; cat /tmp/view-proc; echo "ss:"; cat /tmp/view-ss
[ "$(wc -l </tmp/view-ss)" -ge 4 ] || exit 1
while read -r l; do grep -qxF "$l" /tmp/view-proc || { echo "not in /proc/net/netkernel: $l"; exit 1; }; done </tmp/view-ss') || {
		ktap_diag "/proc/net/netkernel against ss -e in vm1:" "$out"
		return 1
	}
	return 0
}

prog_view_fallback() {
	local out
	out=$(topo_exec vm1 30 '
d=/sys/module/af_netkernel/fallback
for f in kernel netns nodev cgroup_bpf unsupported; do [ -r $d/$f ] || { echo "no $d/$f"; exit 1; }; done
k0=$(cat $d/kernel)
busybox wget -q -O /dev/null http://127.0.0.1:1/ 2>/dev/null
k1=$(cat $d/kernel)
echo "kernel $k0 -> $k1 (a NetKernel socket and its native half)"
[ "$k1" -eq "$k0" ] || exit 1
u0=$(cat $d/unsupported) n0=$(cat $d/netns)
ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1
unshare -n nc 127.0.0.1 1 </dev/null >/dev/null 2>&1
u1=$(cat $d/unsupported) n1=$(cat $d/netns)
grep . $d/*
echo "unsupported $u0 -> $u1, netns $n0 -> $n1"
[ "$u1" -ge $((u0 + 1)) ] && [ "$n1" -eq $((n0 + 1)) ]') || {
		ktap_diag "fallback counters in vm1:" "$out"
		return 1
	}
	ktap_diag "fallback counters in vm1:" "$out"
	return 0
}

# prog_view_unload (vm1, the last point of the lab: vm1 has no NetKernel
# afterwards): the sockets above closed, rmmod af_netkernel removes nk0
# and gives the kernel's diag handlers and /proc/net files back: a native listener
# then shows in ss and /proc/net/tcp6, and tcp_diag and udp_diag, no
# longer pinned, unload.  No native half outlives its socket: ss, now the
# kernel's alone, lists no listener, bound UDP socket or connection on the
# ports above (TIME-WAIT and the other closing states are TCP's own).
prog_view_unload() {
	local out
	out=$(topo_exec vm1 60 '
kill $(pidof nc nk_dgram sleep) $(cat /tmp/view-httpd.pid) 2>/dev/null
i=0
until [ "$(wc -l </proc/net/netkernel)" -le 1 ]; do
	[ $i -lt 50 ] || { echo "NetKernel sockets left:"; cat /proc/net/netkernel; exit 1; }
	sleep 0.2; i=$((i + 1))
done
i=0
until rmmod af_netkernel 2>/tmp/view-rmmod; do
	[ $i -lt 50 ] || { cat /tmp/view-rmmod; exit 1; }
	sleep 0.2; i=$((i + 1))
done
nc -l -p 8082 </dev/null >/dev/null 2>&1 &
sleep 1
echo "ss -tln:"; ss -Htln
echo "tcp6:"; cat /proc/net/tcp6
ss -Htln | grep -q ":8082 " && grep -q ":1F92 " /proc/net/tcp6 || exit 1
kill $!
[ ! -e /sys/class/net/nk0 ] || { echo "nk0 outlives af_netkernel"; exit 1; }
left=$(ss -Htuan | awk "\$2 ~ /^(LISTEN|UNCONN|ESTAB)\$/" | grep -E ":(8081|9001|9002|9003)( |\$)")
[ -z "$left" ] || { echo "native halves left:"; echo "$left"; exit 1; }
rmmod udp_diag tcp_diag || exit 1
echo "tcp_diag and udp_diag unloaded"') || {
		ktap_diag "unloading af_netkernel in vm1:" "$out"
		return 1
	}
	ktap_diag "unloading af_netkernel in vm1:" "$out"
	return 0
}

# prog_ifaddrs VM: one test point.
prog_ifaddrs() {
	local vm=$1 out rc=0 a
	out=$(topo_exec "$vm" 30 'echo "getifaddrs:"; nk_ifaddrs; echo "ip addr:"; ip -o addr show') || rc=1
	ktap_diag "$vm's interfaces:" "$out"
	for a in "$(topo_vm_ip "$vm")" "$(topo_vm_ip6 "$vm")"; do
		# getifaddrs: "IFNAME ADDRESS up -"; ip -o: "N: IFNAME inet ADDRESS/LEN ...".
		if ! awk -v a="$a" '$2 == a && $3 == "up" && $4 == "-" { f = 1 } END { exit !f }' 			<<<"${out%%ip addr:*}"; then
			ktap_diag "$vm: getifaddrs() shows $a on no interface that is up and not loopback"
			rc=1
		fi
		if ! grep -E "^[0-9]+: [^ ]+ +inet6? ${a//./\\.}/" <<<"${out#*ip addr:}" | grep -vq "^[0-9]*: lo "; then
			ktap_diag "$vm: ip addr shows $a on no interface but lo"
			rc=1
		fi
	done
	return "$rc"
}

# prog_ifaddrs_wait HAS GONE: a script for vm1: a socket (a TCP connect
# to the world's port 1, refused) every half second until nk0 has HAS and
# not GONE (10 s at most), then nk0's addresses.
prog_ifaddrs_wait() {
	printf '%s' 'i=0
until ip -o addr show dev nk0 | grep -q " '"$1"'/" && ! ip -o addr show dev nk0 | grep -q " '"$2"'/"; do
	[ $i -lt 20 ] || { ip -o addr show; exit 1; }
	nc -w 1 '"$TOPO_WORLD_IP"' 1 </dev/null >/dev/null 2>&1
	sleep 0.5; i=$((i + 1))
done
ip -o addr show dev nk0'
}

# prog_ifaddrs_reload: one test point (vm1).
prog_ifaddrs_reload() {
	local old new=$TOPO_NET6:99 out rc=0
	old=$(topo_vm_ip6 vm1)
	topo_guest_set vm1 address6="$new" || { ktap_diag "the engine did not take address6 = $new"; rc=1; }
	out=$(topo_exec vm1 60 "$(prog_ifaddrs_wait "$new" "$old")") || rc=1
	ktap_diag "vm1's nk0 after a reload with address6 = $new:" "$out"
	topo_guest_set vm1 address6="$old" || { ktap_diag "the engine did not take address6 = $old"; rc=1; }
	out=$(topo_exec vm1 60 "$(prog_ifaddrs_wait "$old" "$new")") || rc=1
	ktap_diag "vm1's nk0 after a reload with address6 = $old:" "$out"
	return "$rc"
}

# prog_sshd VM: one test point.
prog_sshd() {
	local vm=$1 ip out rc=0 want got b
	local d=$prog_ssh_dir
	for b in "$prog_sshd_bin" "$prog_ssh_bin"; do
		if [[ ! -x $b ]]; then
			ktap_diag "sshd in $vm: $b is not installed (tools/install-deps.sh)"
			return 1
		fi
	done
	ip=$(topo_vm_ip "$vm")
	# Debian's privilege separation: the sshd user and /run/sshd.
	out=$(topo_exec "$vm" 60 'set -e
mkdir -p /run/sshd /root
chmod 755 /run/sshd
grep -qs "^root:" /etc/passwd || echo "root:x:0:0:root:/root:/bin/sh" >>/etc/passwd
grep -qs "^sshd:" /etc/passwd || echo "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin" >>/etc/passwd
grep -qs "^root:" /etc/group || echo "root:x:0:" >>/etc/group
grep -qs "^nogroup:" /etc/group || echo "nogroup:x:65534:" >>/etc/group
chmod 600 /etc/ssh/nk_host_ed25519_key
/usr/sbin/sshd -D -e -f /etc/ssh/nk_sshd_config >/tmp/sshd.log 2>&1 &
echo $! >/tmp/sshd.pid
. /lib/nk-lab.sh
nk_wait_listen tcp 22 sshd /tmp/sshd.log' 2>&1) || {
		ktap_diag "sshd did not start in $vm:" "$out"
		topo_exec "$vm" 30 'kill $(cat /tmp/sshd.pid) 2>/dev/null' >/dev/null 2>&1 || true
		return 1
	}
	echo "$ip $(cut -d' ' -f1,2 "$d/host_ed25519_key.pub")" >"$LAB_LOG_DIR/ssh-known_hosts-$vm"
	got=$(timeout -k 5 120 ip netns exec "$TOPO_NS" "$prog_ssh_bin" -F /dev/null -T \
		-i "$d/client_ed25519_key" -o IdentitiesOnly=yes -o BatchMode=yes \
		-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB_LOG_DIR/ssh-known_hosts-$vm" \
		-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=60 -o LogLevel=ERROR \
		"root@$ip" 'echo "ran on $(uname -r) as $(id -u)"' 2>&1) || rc=1
	want="ran on $TOPO_KVER as 0"
	out=$(topo_exec "$vm" 30 'kill $(cat /tmp/sshd.pid) 2>/dev/null; sleep 0.5; cat /tmp/sshd.log') || true
	ktap_diag "sshd in $vm: the world's ssh printed: $got" "sshd's log:" "$out"
	[[ $got == "$want" ]] || rc=1
	grep -q "Accepted publickey for root from $TOPO_WORLD_IP" <<<"$out" || rc=1
	if grep -Eiq "error|fatal|setsockopt" <<<"$out"; then
		ktap_diag "sshd in $vm logged an error"
		rc=1
	fi
	return "$rc"
}

# prog_dnsmasq VM: one test point.
prog_dnsmasq() {
	local vm=$1 ip ip6 out rc=0 got got6
	if [[ ! -x $prog_dnsmasq_bin ]]; then
		ktap_diag "dnsmasq in $vm: $prog_dnsmasq_bin is not installed (tools/install-deps.sh)"
		return 1
	fi
	ip=$(topo_vm_ip "$vm") ip6=$(topo_vm_ip6 "$vm")
	out=$(topo_exec "$vm" 60 'set -e
grep -qs "^root:" /etc/passwd || echo "root:x:0:0:root:/root:/bin/sh" >>/etc/passwd
grep -qs "^root:" /etc/group || echo "root:x:0:" >>/etc/group
printf "%s %s
" '"$prog_dns_a $prog_dns_name $prog_dns_aaaa $prog_dns_name"' >/tmp/dns-hosts
dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts=/tmp/dns-hosts 	--user=root --group=root --pid-file= --log-queries --log-facility=- >/tmp/dnsmasq.log 2>&1 &
echo $! >/tmp/dnsmasq.pid
. /lib/nk-lab.sh
nk_wait_listen udp 53 dnsmasq /tmp/dnsmasq.log' 2>&1) || {
		ktap_diag "dnsmasq did not start in $vm:" "$out"
		topo_exec "$vm" 30 'kill $(cat /tmp/dnsmasq.pid) 2>/dev/null' >/dev/null 2>&1 || true
		return 1
	}
	got=$(timeout -k 5 60 ip netns exec "$TOPO_NS" busybox nslookup -type=A "$prog_dns_name" "$ip" 2>&1) || rc=1
	got6=$(timeout -k 5 60 ip netns exec "$TOPO_NS" busybox nslookup -type=AAAA "$prog_dns_name" "$ip6" 2>&1) || rc=1
	out=$(topo_exec "$vm" 30 'kill $(cat /tmp/dnsmasq.pid) 2>/dev/null; sleep 0.5; cat /tmp/dnsmasq.log') || true
	ktap_diag "dnsmasq in $vm: nslookup over IPv4:" "$got" "over IPv6:" "$got6" "dnsmasq's log:" "$out"
	grep -qx "Address: $prog_dns_a" <<<"$got" || rc=1
	grep -qx "Address: $prog_dns_aaaa" <<<"$got6" || rc=1
	grep -q "query\[A\] $prog_dns_name from $TOPO_WORLD_IP\$" <<<"$out" || rc=1
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
. /lib/nk-lab.sh
nk_wait_listen tcp 8080 httpd || exit 1
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

# prog_redis_local VM: one test point.
prog_redis_local() {
	local vm=$1 name="redis-server and redis-cli in $1" out rc=0 f
	for f in "${prog_redis_bins[@]}" /etc/redis/redis.conf; do
		if [[ ! -e $f ]]; then
			ktap_diag "$name: $f is not installed (tools/install-deps.sh)"
			return 1
		fi
	done
	out=$(topo_exec "$vm" 180 'set -e
[ -s /etc/hosts ] || printf "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n" >/etc/hosts
mkdir -p /run/redis /var/log/redis /var/lib/redis
: >/var/log/redis/redis-server.log
redis-server /etc/redis/redis.conf
i=0
until [ "$(redis-cli ping 2>/dev/null)" = PONG ]; do
	[ $i -lt 100 ] || { echo "redis-server does not answer"; cat /var/log/redis/redis-server.log; exit 1; }
	sleep 0.2; i=$((i + 1))
done
rc=0
[ "$(redis-cli set greeting hello)" = OK ] || { echo "SET failed"; rc=1; }
[ "$(redis-cli get greeting)" = hello ] || { echo "GET failed"; rc=1; }
[ "$(redis-cli -h ::1 ping)" = PONG ] || { echo "PING over ::1 failed"; rc=1; }
for i in $(seq 200); do redis-cli incr counter; done >/dev/null
[ "$(redis-cli get counter)" = 200 ] || { echo "counter is $(redis-cli get counter), not 200"; rc=1; }
redis-benchmark -q -c 50 -n 2000 -t set,get -r 100 --csv >/tmp/redis-bench.csv ||
	{ echo "redis-benchmark failed"; rc=1; }
grep -E "^\"(SET|GET)\"" /tmp/redis-bench.csv | cut -d, -f1,2 | tr -d \" | sed "s/^/benchmark: /"
[ "$(grep -cE "^\"(SET|GET)\"" /tmp/redis-bench.csv)" = 2 ] || { echo "benchmark gave no SET and GET rates"; rc=1; }
keys=$(redis-cli dbsize)
[ "$keys" -ge 2 ] || { echo "dbsize $keys"; rc=1; }
echo "dbsize $keys"
redis-cli shutdown nosave >/dev/null 2>&1 || true
i=0
while redis-cli ping >/dev/null 2>&1; do
	[ $i -lt 50 ] || { echo "redis-server did not stop"; rc=1; break; }
	sleep 0.2; i=$((i + 1))
done
if grep -E "# (Could not|Failed|Error|Warning: Could not)|Error accepting" /var/log/redis/redis-server.log; then
	echo "errors in redis-server.log"; rc=1
fi
exit $rc' 2>&1) || rc=1
	ktap_diag "$name:" "$out"
	return "$rc"
}

# prog_connect_waits: one test point (vm1).  connect() on a new socket
# sleeps through one round trip to the NSM, not two: its SOCKET goes in
# one kick with the CONNECT (NK_FEAT_PIPE, nk_sock_nsm_with()).  Five
# connections with nk_hold (socket, connect, read to the end, close) to a
# world server that greets and closes: the nk device's call_waits grow by
# at most 7, where SOCKET and CONNECT waited for apart make 10.
prog_connect_waits() {
	local port=9004 out rc=0
	topo_world_spawn "$LAB_LOG_DIR/connect-waits-$port.log" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
	c = s.accept()[0]
	c.sendall(b"hi\n")
	c.close()' "$TOPO_WORLD_IP" "$port"
	topo_world_wait_port "$port" || { ktap_diag "connect_waits: no server in the world"; return 1; }
	out=$(topo_exec vm1 60 'd=$(dirname "$(ls /sys/bus/virtio/devices/*/nk/features | head -n 1)")
a=$(cat $d/call_waits) || exit 1
m=$(cat $d/tx_msgs)
for i in 1 2 3 4 5; do
	nk_hold '"$TOPO_WORLD_IP $port"' | grep -q "ended EOF" || { echo "nk_hold failed"; exit 1; }
done
b=$(cat $d/call_waits); n=$(cat $d/tx_msgs)
echo "5 connections: call_waits +$((b - a)), tx_msgs +$((n - m)), features $(cat $d/features)"
[ $((b - a)) -le 7 ]' 2>&1) || rc=1
	ktap_diag "connect_waits: $out"
	return "$rc"
}

# prog_lo_nsm_free: one test point (vm1).
prog_lo_nsm_free() {
	local opened0 opened1 req0 req1 out rc=0
	out=$(topo_exec vm1 60 'mkdir -p /tmp/www-lo
echo hello >/tmp/www-lo/file
busybox httpd -f -p 127.0.0.1:8083 -h /tmp/www-lo &
echo $! >/tmp/lo-httpd.pid
busybox httpd -f -p 8084 -h /tmp/www-lo &
echo $! >>/tmp/lo-httpd.pid
i=0
until ss -Htln | grep -Eq "127\.0\.0\.1:8083( |$)" && ss -Htln | grep -Eq ":8084( |$)"; do
	[ $i -lt 100 ] || { echo "httpd does not listen"; exit 1; }
	sleep 0.2; i=$((i + 1))
done' 2>&1) || {
		ktap_diag "vm1: $out"
		topo_exec vm1 30 'kill $(cat /tmp/lo-httpd.pid)' >/dev/null 2>&1 || true
		return 1
	}
	opened0=$(topo_nsm_stat sockets_opened) req0=$(topo_nsm_stat requests)
	out=$(topo_exec vm1 120 'n=0
for p in 8083 8084; do
	for i in $(seq 20); do
		busybox wget -q -O - http://127.0.0.1:$p/file | grep -q hello && n=$((n + 1))
	done
done
echo "$n of 40 fetched"
[ $n -eq 40 ]' 2>&1) || rc=1
	opened1=$(topo_nsm_stat sockets_opened) req1=$(topo_nsm_stat requests)
	topo_exec vm1 30 'kill $(cat /tmp/lo-httpd.pid)' >/dev/null 2>&1 || true
	ktap_diag "vm1: $out; the NSM's sockets_opened: $opened0 -> $opened1, requests: $req0 -> $req1"
	[[ $opened0 -ge 0 && $req0 -ge 0 && $opened1 -eq $opened0 && $req1 -eq $req0 ]] || rc=1
	return "$rc"
}
