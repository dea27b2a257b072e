// SPDX-License-Identifier: GPL-2.0
/*
 * NetKernel sockets in /proc/net/tcp, tcp6, udp and udp6, so that
 * netstat(8), lsof(8) (which find a socket's addresses there by its
 * inode) and other readers of those files list them as native sockets.
 *
 * At load, the four files of init_net (the namespace the nk device
 * serves, see nk_policy.c) are removed and made again with seq_operations
 * of this module that first run the kernel's own (tcp4_seq_ops,
 * tcp6_seq_ops, udp_seq_ops, udp6_seq_ops, found with kallsyms with the
 * tcp_seq_afinfo or udp_seq_afinfo they are given as data) and, once
 * the kernel's lines are all out, add one line per NetKernel socket of
 * the file's protocol and family, in the kernel's format (the addresses
 * and ports, state, queues, uid and inode of nk_diag_sock(); timers,
 * retransmits and congestion fields 0; the socket pointer as %pK).  The
 * kernel's lines of NetKernel sockets' native halves (nk_af.c) are
 * skipped: their inodes are gathered when the kernel's part of a read
 * starts (nk_diag_lower_get()), and its NetKernel socket has the line.  At
 * unload the kernel's files are made again.  A file whose symbols are not
 * found is left alone (logged).  remove_proc_entry() waits for the
 * readers of a file and closes its open instances, so no read runs in
 * this module after it.
 *
 * The iterator's state is the kernel's (struct tcp_iter_state or struct
 * udp_iter_state, which the kernel's functions use), followed by struct
 * nk_pi_iter: the position where the kernel's lines ended, and whether
 * the current line is a NetKernel socket's.  The kernel's stop() is
 * called, as seq_file would call it, when its start() or next() returns
 * NULL.  Positions beyond the kernel's lines count the NetKernel sockets
 * listed, in id order; a read that resumes where the last one stopped
 * starts from the socket after the last one shown.
 *
 * Locking: while the iterator is among the NetKernel sockets, the
 * nk_socks lock from start() to stop() (sockets in the table stay
 * alive); nk_diag_sock() takes nks->lock.  The hidden inodes are gathered
 * before the kernel's start() (which may take its bucket locks) and freed
 * in stop().  The kernel's functions take
 * their own locks, never held together with the nk_socks lock.  Install
 * and remove run from module init and exit only.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>
#include <net/tcp.h>
#include <net/udp.h>

#include "nk_guest.h"

struct nk_pi_iter {
	loff_t kernel_end;	/* first position after the kernel's lines, or -1 */
	bool ours;		/* among the NetKernel sockets, the lock held */
	struct nk_diag_lower lower;	/* among the kernel's: hidden inodes */
	loff_t next_pos;	/* the position that resumes at next_id */
	unsigned long next_id;
};

struct nk_pi_file {
	const char *name;
	const char *ops_sym;
	const char *afinfo_sym;
	size_t state_size;	/* the kernel's iterator state */
	int family;
	int type;
	const struct seq_operations *kops;
	void *afinfo;		/* the file's data: tells the files apart */
	bool installed;
};

static void *nk_pi_start(struct seq_file *seq, loff_t *pos);
static void *nk_pi_next(struct seq_file *seq, void *v, loff_t *pos);
static void nk_pi_stop(struct seq_file *seq, void *v);
static int nk_pi_show(struct seq_file *seq, void *v);

static const struct seq_operations nk_pi_ops = {
	.start = nk_pi_start,
	.next = nk_pi_next,
	.stop = nk_pi_stop,
	.show = nk_pi_show,
};

static struct nk_pi_file nk_pi_files[] = {
	{ "tcp", "tcp4_seq_ops", "tcp4_seq_afinfo",
	  sizeof(struct tcp_iter_state), AF_INET, SOCK_STREAM },
	{ "tcp6", "tcp6_seq_ops", "tcp6_seq_afinfo",
	  sizeof(struct tcp_iter_state), AF_INET6, SOCK_STREAM },
	{ "udp", "udp_seq_ops", "udp4_seq_afinfo",
	  sizeof(struct udp_iter_state), AF_INET, SOCK_DGRAM },
	{ "udp6", "udp6_seq_ops", "udp6_seq_afinfo",
	  sizeof(struct udp_iter_state), AF_INET6, SOCK_DGRAM },
};

/* The file @seq reads: one of ours, installed, so always found. */
static struct nk_pi_file *nk_pi_file(struct seq_file *seq)
{
	void *afinfo = pde_data(file_inode(seq->file));
	int i;

	for (i = 0; i < ARRAY_SIZE(nk_pi_files) - 1; i++)
		if (nk_pi_files[i].afinfo == afinfo)
			break;
	return &nk_pi_files[i];
}

static struct nk_pi_iter *nk_pi_iter(struct seq_file *seq)
{
	return seq->private + ALIGN(nk_pi_file(seq)->state_size, 8);
}

/* The NetKernel socket of @seq's file at or after id @id, or NULL. */
static struct nk_sock *nk_pi_find(struct seq_file *seq, unsigned long id)
{
	const struct nk_pi_file *f = nk_pi_file(seq);
	struct nk_diag_rec rec;
	struct nk_sock *nks;

	for (; (nks = nk_sockid_find(&nk_socks, &id)); id++) {
		if (net_eq(sock_net(&nks->sk), seq_file_net(seq)) &&
		    nk_diag_sock(nks, f->type, f->family, ~0U,
				 seq_user_ns(seq), &rec))
			return nks;
	}
	return NULL;
}

/* A read that stops after @nks at @pos resumes there. */
static void nk_pi_remember(struct nk_pi_iter *it, loff_t pos,
			   const struct nk_sock *nks)
{
	if (nks) {
		it->next_pos = pos;
		it->next_id = nks->id;
	}
}

/* Enter the NetKernel sockets at @pos (>= kernel_end): the lock taken. */
static void *nk_pi_start_ours(struct seq_file *seq, loff_t pos)
{
	struct nk_pi_iter *it = nk_pi_iter(seq);
	struct nk_sock *nks;
	loff_t n;

	nk_sockid_lock(&nk_socks);
	it->ours = true;
	if (pos == it->next_pos)
		return nk_pi_find(seq, it->next_id);
	nks = nk_pi_find(seq, 0);
	for (n = it->kernel_end; nks && n < pos; n++)
		nks = nk_pi_find(seq, nks->id + 1UL);
	nk_pi_remember(it, pos, nks);
	return nks;
}

static void *nk_pi_start(struct seq_file *seq, loff_t *pos)
{
	struct nk_pi_file *f = nk_pi_file(seq);
	struct nk_pi_iter *it = nk_pi_iter(seq);
	void *v;

	if (!*pos) {
		it->kernel_end = -1;
		it->next_pos = -1;
	}
	it->ours = false;
	if (it->kernel_end < 0 || *pos < it->kernel_end) {
		nk_diag_lower_get(seq_file_net(seq), &it->lower);
		v = f->kops->start(seq, pos);
		if (v)
			return v;
		f->kops->stop(seq, NULL);
		it->kernel_end = *pos;
	}
	return nk_pi_start_ours(seq, *pos);
}

static void *nk_pi_next(struct seq_file *seq, void *v, loff_t *pos)
{
	struct nk_pi_file *f = nk_pi_file(seq);
	struct nk_pi_iter *it = nk_pi_iter(seq);
	struct nk_sock *nks = v;

	if (!it->ours) {
		v = f->kops->next(seq, v, pos);
		if (v)
			return v;
		f->kops->stop(seq, NULL);
		it->kernel_end = *pos;
		return nk_pi_start_ours(seq, *pos);
	}
	++*pos;
	nks = nk_pi_find(seq, nks->id + 1UL);
	nk_pi_remember(it, *pos, nks);
	return nks;
}

static void nk_pi_stop(struct seq_file *seq, void *v)
{
	struct nk_pi_iter *it = nk_pi_iter(seq);

	nk_diag_lower_put(&it->lower);
	if (it->ours) {
		nk_sockid_unlock(&nk_socks);
		it->ours = false;
		return;
	}
	nk_pi_file(seq)->kops->stop(seq, v);
}

static int nk_pi_show(struct seq_file *seq, void *v)
{
	struct nk_pi_file *f = nk_pi_file(seq);
	struct nk_pi_iter *it = nk_pi_iter(seq);
	const struct inet_diag_msg *m;
	struct nk_diag_rec rec;
	int sl;

	if (!it->ours) {
		/* A native half: its nk_sock has the line. */
		if (v != SEQ_START_TOKEN && sk_fullsock(v) &&
		    nk_diag_lower_has(&it->lower, sock_i_ino(v)))
			return SEQ_SKIP;
		return f->kops->show(seq, v);
	}
	if (!nk_diag_sock(v, f->type, f->family, ~0U, seq_user_ns(seq), &rec))
		return SEQ_SKIP;
	m = &rec.msg;
	sl = seq->index - it->kernel_end;
	if (f->family == AF_INET) {
		seq_setwidth(seq, f->type == SOCK_STREAM ? 149 : 127);
		seq_printf(seq, f->type == SOCK_STREAM ? "%4d: " : "%5d: ", sl);
		seq_printf(seq, "%08X:%04X %08X:%04X", m->id.idiag_src[0],
			   ntohs(m->id.idiag_sport), m->id.idiag_dst[0],
			   ntohs(m->id.idiag_dport));
	} else {
		seq_printf(seq, f->type == SOCK_STREAM ? "%4d: " : "%5d: ", sl);
		seq_printf(seq, "%08X%08X%08X%08X:%04X %08X%08X%08X%08X:%04X",
			   m->id.idiag_src[0], m->id.idiag_src[1],
			   m->id.idiag_src[2], m->id.idiag_src[3],
			   ntohs(m->id.idiag_sport),
			   m->id.idiag_dst[0], m->id.idiag_dst[1],
			   m->id.idiag_dst[2], m->id.idiag_dst[3],
			   ntohs(m->id.idiag_dport));
	}
	/*
	 * st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref sk;
	 * a listener's tx_queue is 0 here, its backlog in inet_diag.
	 */
	seq_printf(seq, " %02X %08X:%08X %02X:%08lX %08X %5u %8d %u %d %pK",
		   m->idiag_state,
		   m->idiag_state == TCP_LISTEN ? 0 : m->idiag_wqueue,
		   m->idiag_rqueue, 0, 0UL, 0,
		   m->idiag_uid, 0, m->idiag_inode,
		   refcount_read(&((struct nk_sock *)v)->sk.sk_refcnt), v);
	if (f->type == SOCK_STREAM)	/* rto ato qack cwnd ssthresh */
		seq_printf(seq, " 0 0 0 0 %d",
			   m->idiag_state == TCP_LISTEN ? 0 : -1);
	else				/* drops */
		seq_printf(seq, " %d", rec.drops);
	if (f->family == AF_INET)
		seq_pad(seq, '\n');
	else
		seq_putc(seq, '\n');
	return 0;
}

static void nk_pi_remove(struct nk_pi_file *f)
{
	if (!f->installed)
		return;
	remove_proc_entry(f->name, init_net.proc_net);
	if (!proc_create_net_data(f->name, 0444, init_net.proc_net, f->kops,
				  f->state_size, f->afinfo))
		pr_crit("cannot make /proc/net/%s again\n", f->name);
	f->installed = false;
}

static void nk_pi_install(struct nk_pi_file *f, nk_lookup_fn lookup)
{
	f->kops = (const struct seq_operations *)lookup(f->ops_sym);
	f->afinfo = (void *)lookup(f->afinfo_sym);
	if (!f->kops || !f->afinfo) {
		pr_warn("%s or %s not found: /proc/net/%s will not list NetKernel sockets\n",
			f->ops_sym, f->afinfo_sym, f->name);
		return;
	}
	remove_proc_entry(f->name, init_net.proc_net);
	if (proc_create_net_data(f->name, 0444, init_net.proc_net, &nk_pi_ops,
				 ALIGN(f->state_size, 8) +
				 sizeof(struct nk_pi_iter), f->afinfo)) {
		f->installed = true;
		return;
	}
	pr_warn("cannot make /proc/net/%s with NetKernel sockets\n", f->name);
	if (!proc_create_net_data(f->name, 0444, init_net.proc_net, f->kops,
				  f->state_size, f->afinfo))
		pr_crit("cannot make /proc/net/%s again\n", f->name);
}

void nk_procinet_init(void)
{
	nk_lookup_fn lookup = nk_find_lookup();
	int i;

	if (!lookup)
		return;
	for (i = 0; i < ARRAY_SIZE(nk_pi_files); i++)
		nk_pi_install(&nk_pi_files[i], lookup);
}

void nk_procinet_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(nk_pi_files) - 1; i >= 0; i--)
		nk_pi_remove(&nk_pi_files[i]);
}
