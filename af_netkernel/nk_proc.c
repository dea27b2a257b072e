// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/net/netkernel: one line per NetKernel socket of the reader's
 * network namespace, in the spirit of /proc/net/tcp:
 *
 *   id type st local remote tx_bytes rx_bytes tx_cnt peer_buf peer_fwd \
 *   rx_cnt buf_alloc fwd_cnt rmem drops uid inode path
 *
 * st is the TCP state number as in /proc/net/tcp (01 established,
 * 02 syn-sent, 07 close, 0A listen); a reset socket shows "R" after it.
 * tx_cnt, peer_buf and peer_fwd are the guest-to-world credit (bytes sent,
 * and the NSM's last buf_alloc and fwd_cnt); rx_cnt, buf_alloc and fwd_cnt
 * the world-to-guest one (bytes received, and what this guest announced).
 * rmem is the memory the receive queue holds (sk_rmem_alloc: the skbs'
 * truesize, bounded by the receive buffer), drops the datagrams dropped
 * because it was full (sk_drops, as /proc/net/udp's drops).
 * uid and inode are the socket's owner (in the reader's user namespace)
 * and inode number, as in /proc/net/tcp: the inode is the one in
 * /proc/PID/fd's "socket:[inode]" links.
 * An address not known yet shows as "*".  path says which half carries
 * the socket (nk_af.c): "nsm", "local" (the guest's own stack: st and the
 * addresses are its native socket's, the counters zero) or "both" (not
 * decided yet: unconnected, or a listener or UDP socket on a wildcard or
 * own address, whose counters are the NSM half's).
 *
 * Locking: the nk_socks lock from start to stop (sockets in the table stay
 * alive under it), nks->lock for each line.
 */
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>

#include "nk_guest.h"

static void nk_proc_addr(struct seq_file *seq, const struct nk_addr *na)
{
	struct sockaddr_storage ss;
	int family = le16_to_cpu(na->family);

	if (!family || nk_addr_to_sockaddr(na, &ss, family) < 0)
		seq_puts(seq, " *");
	else
		seq_printf(seq, " %pISpc", &ss);
}

static void *nk_proc_find(struct seq_file *seq, unsigned long index)
{
	struct nk_sock *nks;

	for (;;) {
		nks = nk_sockid_find(&nk_socks, &index);
		if (!nks || net_eq(sock_net(&nks->sk), seq_file_net(seq)))
			break;
		index++;
	}
	if (nks)
		seq->index = index;
	return nks;
}

static void *nk_proc_start(struct seq_file *seq, loff_t *pos)
	__acquires(nk_socks.xa.xa_lock)
{
	nk_sockid_lock(&nk_socks);
	if (!*pos)
		return SEQ_START_TOKEN;
	return nk_proc_find(seq, *pos);
}

static void *nk_proc_next(struct seq_file *seq, void *v, loff_t *pos)
{
	void *next;

	next = nk_proc_find(seq, v == SEQ_START_TOKEN ? 0 : seq->index + 1);
	*pos = next ? seq->index : *pos + 1;
	return next;
}

static void nk_proc_stop(struct seq_file *seq, void *v)
	__releases(nk_socks.xa.xa_lock)
{
	nk_sockid_unlock(&nk_socks);
}

static int nk_proc_show(struct seq_file *seq, void *v)
{
	struct nk_sock *nks = v;
	struct nk_addr local, peer;
	unsigned long ino;
	struct sock *sk;
	int state;
	uid_t uid;

	if (v == SEQ_START_TOKEN) {
		seq_puts(seq, "id type st local remote tx_bytes rx_bytes tx_cnt peer_buf peer_fwd rx_cnt buf_alloc fwd_cnt rmem drops uid inode path\n");
		return 0;
	}
	sk = &nks->sk;
	uid = from_kuid_munged(seq_user_ns(seq), sock_i_uid(sk));
	ino = sock_i_ino(sk);
	spin_lock(&nks->lock);
	state = sk->sk_state;
	local = nks->local;
	peer = nks->peer;
	if (nks->path == NK_PATH_LOCAL)
		nk_sock_local_proc(nks, &state, &local, &peer);
	seq_printf(seq, "%u %s%c %02X%s", nks->id,
		   sk->sk_type == SOCK_STREAM ? "tcp" : "udp",
		   nks->family == AF_INET6 ? '6' : ' ', state,
		   nks->reset ? "R" : "");
	nk_proc_addr(seq, &local);
	nk_proc_addr(seq, &peer);
	seq_printf(seq, " %llu %llu %u %u %u %u %u %u %d %d %u %lu %s\n",
		   nks->bytes_sent, nks->bytes_rcvd, nks->tx.tx_cnt,
		   nks->tx.peer_buf_alloc, nks->tx.peer_fwd_cnt,
		   nks->rx.rx_cnt, nks->rx.buf_alloc, nks->rx.fwd_cnt,
		   sk_rmem_alloc_get(sk), atomic_read(&sk->sk_drops), uid, ino,
		   nk_sock_path_name(nks));
	spin_unlock(&nks->lock);
	return 0;
}

static const struct seq_operations nk_proc_ops = {
	.start = nk_proc_start,
	.next = nk_proc_next,
	.stop = nk_proc_stop,
	.show = nk_proc_show,
};

static int __net_init nk_proc_net_init(struct net *net)
{
	if (!proc_create_net("netkernel", 0444, net->proc_net, &nk_proc_ops,
			     sizeof(struct seq_net_private)))
		return -ENOMEM;
	return 0;
}

static void __net_exit nk_proc_net_exit(struct net *net)
{
	remove_proc_entry("netkernel", net->proc_net);
}

static struct pernet_operations nk_proc_net_ops = {
	.init = nk_proc_net_init,
	.exit = nk_proc_net_exit,
};

int nk_proc_init(void)
{
	return register_pernet_subsys(&nk_proc_net_ops);
}

void nk_proc_exit(void)
{
	unregister_pernet_subsys(&nk_proc_net_ops);
}
