# shellcheck shell=bash disable=SC2154 # flood_bin, guest_flood from run-vm.sh
# SPDX-License-Identifier: GPL-2.0
#
# Adversarial cases for the VM lab, sourced by run-vm.sh after
# tools/testing/lab/lib.sh and tools/testing/lab/topology.sh: they run in run-vm.sh's one
# boot of the lab, against the NetKernel guest and, unchanged, against the
# baseline guest (the native stack), so that every assertion is one Linux
# itself meets.  Each adv_* function is one KTAP test point, passing when
# it returns 0.  To add a case: write adv_NAME VM, add a line per VM to
# run-vm.sh's table and a test_* function there that calls it.
#
#   adv_udp_flood VM   empty and 1-byte datagrams from the world to a UDP
#                      socket in VM that does not read: the guest's slab
#                      stays bounded, the queue by about the socket's
#                      rcvbuf (NetKernel: rmem in /proc/net/netkernel),
#                      the drops are counted (SO_RXQ_OVFL; /proc/net/netkernel
#                      or /proc/net/udp), and the socket still receives
#   adv_tcp_flood VM   1-byte TCP segments from the world to a connection
#                      in VM that does not read: the slab grows by a few
#                      times the bytes queued, not by an skb per segment,
#                      NetKernel charges the queue by truesize (rmem), and
#                      every byte arrives once the reader reads
#
# Needs: $flood_bin (nk_flood for the world), $guest_flood (its path in
# the guests' initramfs).  Under TCG the flood rate is what the emulated
# VMs take; every flood is bounded in count and in time.
# Scripts for the guests in single quotes are expanded by the guest.
# shellcheck disable=SC2016

adv_port=9099
adv_flood_count=${NK_FLOOD_COUNT:-200000}	# datagrams
adv_flood_secs=${NK_FLOOD_SECS:-10}
# Segments, fewer, each alone: this slowly the NSM forwards each one in a
# message of its own (faster, its socket merges them before it reads).
adv_seg_count=${NK_FLOOD_SEGS:-10000}
# What else a guest's slab may gain during a flood (KiB): under 200 KiB
# was seen.  Beyond it, the slab may grow by what the socket may hold: its
# rcvbuf for datagrams, a few times the bytes queued for a stream.
adv_noise_kb=1024

# adv_meminfo VM: "SLAB_KB AVAIL_KB" of VM.
adv_meminfo() {
	lab_vm_exec "$1" 30 "awk '/^Slab:/ { s = \$2 } /^MemAvailable:/ { a = \$2 } END { print s, a }' /proc/meminfo"
}

# adv_sock_line VM PORT PROTO: the socket's line (NetKernel: rmem and drops
# of /proc/net/netkernel, found by the header's names, so that columns can
# be added; native: /proc/net/udp or tcp) as "RMEM DROPS".
adv_sock_line() {
	local vm=$1 port=$2 proto=$3 hex
	hex=$(printf '%04X' "$port")
	lab_vm_exec "$vm" 30 "if [ -e /proc/net/netkernel ]; then
	awk 'NR == 1 { for (i = 1; i <= NF; i++) col[\$i] = i; next }
	\$2 ~ /^$proto/ && \$3 != \"0A\" && (\$4 ~ /:$port\$/ || \$5 ~ /:$port\$/) { print \$col[\"rmem\"], \$col[\"drops\"]; exit }' /proc/net/netkernel
else
	set -- \$(awk '\$2 ~ /:$hex\$/ && \$4 != \"0A\" { split(\$5, q, \":\"); print q[2], \$NF; exit }' /proc/net/$proto)
	[ -n \"\$1\" ] && echo \$(printf %d 0x\$1) \$2
fi"
}

adv_udp_flood() {
	local vm=$1 name="adversarial: udp flood, $1" ip rc=0 out before after sent sock
	local slab0 slab1 rmem drops ovfl rcvbuf max_kb
	ip=$(topo_vm_ip "$vm")
	if ! out=$(lab_vm_exec "$vm" 30 "$guest_flood udp-sink $adv_port >/tmp/udp-sink.log 2>&1 &
echo \$! >/tmp/udp-sink.pid
. /lib/nk-lab.sh
nk_wait_for /tmp/udp-sink.log ready || { cat /tmp/udp-sink.log; exit 1; }
cat /proc/sys/net/core/rmem_default"); then
		ktap_diag "$name: the sink did not start: $out"
		return 1
	fi
	rcvbuf=${out##*$'\n'}
	before=$(adv_meminfo "$vm")
	sent=$(timeout -k 5 $((adv_flood_secs + 30)) ip netns exec "$TOPO_NS" \
		"$flood_bin" udp "$ip" "$adv_port" "$adv_flood_count" "$adv_flood_secs" 2>&1) || rc=1
	# What the NSM and the engine still hold reaches the guest.
	sleep 2
	after=$(adv_meminfo "$vm")
	sock=$(adv_sock_line "$vm" "$adv_port" udp)
	out=$(lab_vm_exec "$vm" 60 'kill -USR1 $(cat /tmp/udp-sink.pid); sleep 1' 2>&1) || rc=1
	topo_world "$flood_bin" udp-after "$ip" "$adv_port" || rc=1
	out=$(lab_vm_exec "$vm" 60 'i=0
while kill -0 $(cat /tmp/udp-sink.pid) 2>/dev/null; do
	[ $i -lt 400 ] || break
	sleep 0.1; i=$((i + 1))
done
cat /tmp/udp-sink.log' 2>&1) || rc=1
	read -r slab0 _ <<<"$before"
	read -r slab1 _ <<<"$after"
	read -r rmem drops <<<"$sock"
	ovfl=$(sed -n 's/^after ok, ovfl \(-\{0,1\}[0-9]*\)$/\1/p' <<<"$out")
	ktap_diag "$name: world: $sent" "$name: Slab/MemAvailable KiB before $before, after $after;" \
		"$name: socket rmem ${rmem:-?} (rcvbuf $rcvbuf), drops ${drops:-?}; sink: ${out//$'\n'/; }"
	max_kb=$((rcvbuf / 1024 + adv_noise_kb))
	if [[ -z $slab0 || -z $slab1 ]] || ((slab1 - slab0 > max_kb)); then
		ktap_diag "$name: the guest's slab grew by $((slab1 - slab0)) KiB (at most $max_kb: rcvbuf and noise)"
		rc=1
	fi
	# A queue is bounded by rcvbuf plus the one datagram that crossed it.
	if [[ -z $rmem ]] || ((rmem > rcvbuf + 2048)); then
		ktap_diag "$name: the socket holds ${rmem:-?} bytes of memory (rcvbuf $rcvbuf)"
		rc=1
	fi
	if [[ -z $drops || -z $ovfl ]] || ((drops <= 0 || ovfl != drops)); then
		ktap_diag "$name: drops ${drops:-?} counted, SO_RXQ_OVFL ${ovfl:-none}: both must count every drop"
		rc=1
	fi
	grep -q '^after ok' <<<"$out" || { ktap_diag "$name: the socket did not receive after the flood"; rc=1; }
	return "$rc"
}

adv_tcp_flood() {
	local vm=$1 name="adversarial: tcp 1-byte segments, $1" ip rc=0 out before after sent sock
	local slab0 slab1 rmem n fpid max_kb
	ip=$(topo_vm_ip "$vm")
	if ! out=$(lab_vm_exec "$vm" 30 "$guest_flood tcp-sink $adv_port >/tmp/tcp-sink.log 2>&1 &
echo \$! >/tmp/tcp-sink.pid" 2>&1); then
		ktap_diag "$name: the sink did not start: $out"
		return 1
	fi
	before=$(adv_meminfo "$vm")
	# In the background: its last send waits until the sink reads.
	lab_spawn "$LAB_LOG_DIR/tcp-flood-$vm.log" timeout -k 5 $((adv_flood_secs + 60)) \
		ip netns exec "$TOPO_NS" "$flood_bin" tcp "$ip" "$adv_port" "$adv_seg_count" "$adv_flood_secs"
	fpid=$LAB_LAST_PID
	lab_wait_for "$LAB_LOG_DIR/tcp-flood-$vm.log" '^sent ' $((adv_flood_secs + 30)) "$fpid" || rc=1
	sleep 2
	after=$(adv_meminfo "$vm")
	sock=$(adv_sock_line "$vm" "$adv_port" tcp)
	out=$(lab_vm_exec "$vm" 90 'kill -USR1 $(cat /tmp/tcp-sink.pid)
i=0
while kill -0 $(cat /tmp/tcp-sink.pid) 2>/dev/null; do
	[ $i -lt 600 ] || break
	sleep 0.1; i=$((i + 1))
done
cat /tmp/tcp-sink.log' 2>&1) || rc=1
	lab_wait_pid "$fpid" 30 || rc=1
	sent=$(cat "$LAB_LOG_DIR/tcp-flood-$vm.log")
	read -r slab0 _ <<<"$before"
	read -r slab1 _ <<<"$after"
	read -r rmem _ <<<"$sock"
	ktap_diag "$name: world: ${sent//$'\n'/; }" "$name: Slab/MemAvailable KiB before $before, after $after;" \
		"$name: connection rmem ${rmem:-?}; sink: ${out//$'\n'/; }"
	n=$(sed -n 's/^sent \([0-9]*\) in .*/\1/p' <<<"$sent")
	# Every byte sent is queued unread: memory near the bytes, not an skb
	# (hundreds of bytes) per 1-byte segment.
	max_kb=$((4 * ${n:-0} / 1024 + adv_noise_kb))
	if [[ -z $slab0 || -z $slab1 ]] || ((slab1 - slab0 > max_kb)); then
		ktap_diag "$name: the guest's slab grew by $((slab1 - slab0)) KiB for ${n:-?} bytes queued (at most $max_kb)"
		rc=1
	fi
	if [[ -z $rmem ]] || ((rmem <= 0 || rmem > 4 * ${n:-0} + 4096)); then
		ktap_diag "$name: ${rmem:-?} bytes charged to the socket for ${n:-?} bytes queued (more than 0, at most 4 times)"
		rc=1
	fi
	if [[ -z $n ]] || ! grep -q "^read $((n + 5)) bytes, after ok" <<<"$out"; then
		ktap_diag "$name: the sink must read the ${n:-?} bytes sent and \"after\""
		rc=1
	fi
	return "$rc"
}
