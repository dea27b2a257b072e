// SPDX-License-Identifier: GPL-2.0
/*
 * NetKernel sockets in the inet_diag dumps, so that ss(8) lists them as it
 * lists native TCP and UDP sockets.
 *
 * A NetKernel socket is in no inet hash table (its sk_family is
 * AF_NETKERNEL, see nk_af.c), so the kernel's TCP and UDP diag handlers
 * (tcp_diag.ko, udp_diag.ko) never see it.  At load, the handler
 * registered for IPPROTO_TCP and for IPPROTO_UDP in inet_diag's table is
 * replaced by a copy of it whose dump() first emits the NetKernel sockets
 * of that protocol (nk_diag_dump_socks()) and then calls the kernel's
 * dump(); every other callback (dump_one, get_info, destroy...) is the
 * kernel's own.  At unload the kernel's handlers are registered again.  As
 * with the families of nk_takeover.c, a handler living in module memory
 * never stays registered: inet_diag calls the registered handler under its
 * table mutex (6.1) or with a reference on the handler's owner taken
 * under RCU (6.9 and later: .owner is this module, and unregistering
 * waits for RCU readers), so once inet_diag_unregister() returns no dump
 * runs in this module.  While the kernel's handler is wrapped its module
 * (tcp_diag, udp_diag) is pinned: unloading it would unregister the
 * wrapper and free the dump() the wrapper calls.  The handlers in
 * inet_diag's table are found with kallsyms ("inet_diag_table", see
 * nk_takeover.c for the lookup); the TCP and UDP diag modules are loaded
 * first (request_module(), as inet_diag does, and a soft dependency).  A
 * protocol whose handler cannot be found or wrapped is left alone (logged):
 * ss then shows no NetKernel socket of it.
 *
 * Everything inet_diag checks before a handler's dump() runs is unchanged:
 * the family (AF_INET, AF_INET6), the protocol (no handler: ENOENT), the
 * attributes and the bytecode filter (audited by inet_diag_bc_audit()).
 *
 * What a NetKernel socket's record says: the family the application
 * asked for, its state (sk_state, TCP numbering as the native stack's),
 * the local address cached by nk_af.c and the peer's, the inode and the
 * owner's uid (so ss -p finds the process), the socket cookie and
 * INET_DIAG_SHUTDOWN.  Recv-Q and Send-Q: a listener's accept queue (the
 * connections the NSM announced) and backlog; a stream's unread bytes and
 * the bytes the NSM has not taken yet; a datagram socket's receive and
 * send memory, as udp_diag reports.  A socket appears as the native one
 * would: a TCP socket once it listens or connects, a UDP socket once it
 * has a local address.  A local socket (one its native half alone
 * carries, nk_af.c's "Guest loopback") is listed from that half: its
 * state, addresses and queues as tcp_diag and udp_diag give them
 * (nk_diag_local()), with the nk_sock's inode and owner.  The native
 * halves themselves are sockets of the kernel's, which its dump would
 * list beside their nk_sock: nk_diag_dump() drops their records from
 * what the kernel's dump() wrote, by inode (nk_diag_lower_get(): the
 * sorted inodes of every native half of the namespace, gathered before
 * each kernel dump() call; one made meanwhile may be listed).  Not
 * reported: timers, memory details, the congestion control's name and
 * info; the bytecode filter is not run on NetKernel sockets (ss runs its
 * filter again on every record it receives, so its output is right).
 *
 * TCP info (ss -i: the request asks for INET_DIAG_INFO) is the NSM's: the
 * struct tcp_info of its kernel socket, read with a forwarded getsockopt
 * (TCP_INFO, nk_sock_getsockopt()) for each TCP socket the dump emits,
 * as the application's own getsockopt() reads it.  A dump without
 * INET_DIAG_INFO (ss -t) sends the NSM nothing.  Each answer is awaited
 * at most NK_DIAG_INFO_TIMEOUT_MS; one that does not come (a stalled NSM
 * or ring, the device gone, a signal to the reader) ends the asking for
 * the rest of the dump (NK_DIAG_NO_INFO), so a dump waits at most that
 * long for an NSM that does not answer.  A socket without an answer, or
 * with one that is not a tcp_info (nk_diag_info_ok(): shorter than any
 * Linux's, no TCP state), has no INET_DIAG_INFO, as a socket that is not
 * a full one has none natively; a shorter tcp_info (an older NSM kernel)
 * goes out as it came, and ss reads the fields it has.  Not asked: a
 * socket closed, reset, or being made again on a new NSM meanwhile.  A
 * local socket has no socket in the NSM to ask (or one that carries none
 * of its traffic): its TCP info is its native half's, read with
 * tcp_get_info() as tcp_diag reads it, with a reference on that half.
 *
 * A dump may span several netlink reads.  Its position is kept in
 * cb->args[4] (the next socket id to look at) and cb->args[5] (flags:
 * NK_DIAG_DONE once the NetKernel sockets are all out, then the kernel's
 * dump runs with its own cb->args[0..2], which it alone uses;
 * NK_DIAG_NO_INFO).
 *
 * Locking: the nk_socks lock while a batch of NK_DIAG_BATCH listed
 * sockets is taken from the table, each referenced (sock_hold()), and
 * nks->lock for each socket's fields and its native halves (nk_release()
 * clears them under it before freeing them; a local socket's half is
 * referenced under it for its tcp_info); sock_i_ino() and sock_i_uid() take
 * sk_callback_lock inside them.  The batch is emitted with no lock held:
 * asking the NSM sleeps.  Install and remove run from module init and
 * exit only; the dump runs in inet_diag's context, which takes none of
 * these locks and may sleep (on 6.1 it holds inet_diag's table mutex, so
 * an NSM that does not answer holds other diag dumps back as long as it
 * holds this one, NK_DIAG_INFO_TIMEOUT_MS at most).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bsearch.h>
#include <linux/inet_diag.h>
#include <linux/kmod.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/sock_diag.h>
#include <linux/sort.h>
#include <linux/tcp.h>
#include <linux/version.h>
#include <net/netlink.h>
#include <net/tcp.h>

#include "nk_guest.h"

#define NK_DIAG_ARG_NEXT	4	/* cb->args[]: the next socket id */
#define NK_DIAG_ARG_FLAGS	5	/* cb->args[]: NK_DIAG_* below */
#define NK_DIAG_DONE		0x1	/* the NetKernel sockets are all out */
#define NK_DIAG_NO_INFO		0x2	/* the NSM did not answer: ask no more */

/* Sockets taken at a time under the nk_socks lock. */
#define NK_DIAG_BATCH		8
/* How long a dump waits for one tcp_info from the NSM. */
#define NK_DIAG_INFO_TIMEOUT_MS	1000

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
#define NK_DIAG_HANDLER_OWNER	1	/* struct inet_diag_handler has .owner */
#endif

struct nk_diag_wrap {
	int proto;
	int type;		/* the sockets of ours it lists */
	const struct inet_diag_handler *kernel;
	struct module *kernel_mod;	/* pinned while wrapped */
	struct inet_diag_handler ops;
	bool installed;
};

static void nk_diag_tcp_dump(struct sk_buff *skb, struct netlink_callback *cb,
			     const struct inet_diag_req_v2 *r);
static void nk_diag_udp_dump(struct sk_buff *skb, struct netlink_callback *cb,
			     const struct inet_diag_req_v2 *r);

static struct nk_diag_wrap nk_diag_wraps[] = {
	{ .proto = IPPROTO_TCP, .type = SOCK_STREAM },
	{ .proto = IPPROTO_UDP, .type = SOCK_DGRAM },
};

static void nk_diag_addr(const struct nk_addr *na, int family, __be16 *port,
			 __be32 *addr)
{
	if (le16_to_cpu(na->family) != family)
		return;
	*port = na->port;
	memcpy(addr, na->addr, family == AF_INET6 ? 16 : 4);
}

/*
 * A local socket's record (nks->lock held): its native half's state,
 * addresses and queues, as tcp_diag and udp_diag give them, under the
 * nk_sock's inode and owner; whether it is listed.
 */
static bool nk_diag_local(struct nk_sock *nks, u32 states,
			  struct nk_diag_rec *rec)
{
	struct inet_diag_msg *m = &rec->msg;
	struct nk_addr local, peer;
	const struct sock *lsk;
	int state;

	if (!nks->lower)
		return false;
	lsk = nks->lower->sk;
	nk_sock_local_proc(nks, &state, &local, &peer);
	if (lsk->sk_type == SOCK_STREAM ? state == TCP_CLOSE :
	    !inet_sk(lsk)->inet_num)
		return false;
	if (!(states & (1 << state)))
		return false;
	m->idiag_state = state;
	nk_diag_addr(&local, nks->family, &m->id.idiag_sport, m->id.idiag_src);
	nk_diag_addr(&peer, nks->family, &m->id.idiag_dport, m->id.idiag_dst);
	m->id.idiag_if = READ_ONCE(lsk->sk_bound_dev_if);
	if (lsk->sk_type == SOCK_DGRAM) {
		m->idiag_rqueue = sk_rmem_alloc_get(lsk);
		m->idiag_wqueue = sk_wmem_alloc_get(lsk);
	} else if (state == TCP_LISTEN) {
		m->idiag_rqueue = READ_ONCE(lsk->sk_ack_backlog);
		m->idiag_wqueue = READ_ONCE(lsk->sk_max_ack_backlog);
	} else {
		const struct tcp_sock *tp = tcp_sk(lsk);

		m->idiag_rqueue = max_t(int, READ_ONCE(tp->rcv_nxt) -
					     READ_ONCE(tp->copied_seq), 0);
		m->idiag_wqueue = READ_ONCE(tp->write_seq) - tp->snd_una;
	}
	rec->shutdown = READ_ONCE(lsk->sk_shutdown);
	rec->drops = atomic_read(&lsk->sk_drops);
	return true;
}

/*
 * Whether @nks is a socket of @type and @family (AF_UNSPEC: either) the
 * native stack would list in a state of @states, and its record if so;
 * its uid is seen from @user_ns.  Called with the nk_socks lock held.
 */
bool nk_diag_sock(struct nk_sock *nks, int type, int family, u32 states,
		  struct user_namespace *user_ns, struct nk_diag_rec *rec)
{
	struct inet_diag_msg *m = &rec->msg;
	struct sock *sk = &nks->sk;
	bool listed;

	if (sk->sk_type != type ||
	    (family != AF_UNSPEC && family != nks->family))
		return false;

	memset(rec, 0, sizeof(*rec));
	spin_lock(&nks->lock);
	m->idiag_family = nks->family;
	m->idiag_state = sk->sk_state;
	if (READ_ONCE(nks->path) == NK_PATH_LOCAL) {
		listed = nk_diag_local(nks, states, rec);
	} else {
		/* What the native stack has in its hash tables: see above. */
		if (sk->sk_type == SOCK_STREAM)
			listed = sk->sk_state != TCP_CLOSE;
		else
			listed = le16_to_cpu(nks->local.family) == nks->family;
		listed = listed && (states & (1 << sk->sk_state));
	}
	if (listed && READ_ONCE(nks->path) != NK_PATH_LOCAL) {
		nk_diag_addr(&nks->local, nks->family, &m->id.idiag_sport,
			     m->id.idiag_src);
		nk_diag_addr(&nks->peer, nks->family, &m->id.idiag_dport,
			     m->id.idiag_dst);
		m->id.idiag_if = sk->sk_bound_dev_if;
		if (sk->sk_type == SOCK_DGRAM) {
			m->idiag_rqueue = sk_rmem_alloc_get(sk);
			m->idiag_wqueue = sk_wmem_alloc_get(sk);
		} else if (sk->sk_state == TCP_LISTEN) {
			m->idiag_rqueue = nks->accept_pending;
			m->idiag_wqueue = nks->backlog;
		} else {
			m->idiag_rqueue = nks->rx.rx_cnt - READ_ONCE(nks->rx_seq);
			m->idiag_wqueue = nks->tx.tx_cnt - nks->tx.peer_fwd_cnt;
		}
		rec->shutdown = sk->sk_shutdown;
		rec->drops = atomic_read(&sk->sk_drops);
	}
	spin_unlock(&nks->lock);
	if (!listed)
		return false;

	sock_diag_save_cookie(sk, m->id.idiag_cookie);
	m->idiag_uid = from_kuid_munged(user_ns, sock_i_uid(sk));
	m->idiag_inode = sock_i_ino(sk);
	return true;
}

/*
 * How long of a tcp_info from the NSM is one: no Linux ever had a shorter
 * struct tcp_info than 2.6's, which ended with tcpi_total_retrans.  A
 * longer one than ours is cut by the NSM (we ask for ours), a shorter one
 * is what an older kernel has (ss reads the fields it carries).
 */
#define NK_DIAG_INFO_MIN	offsetofend(struct tcp_info, tcpi_total_retrans)

/*
 * Whether the @len bytes of @info (at most its size: the transport cuts a
 * longer reply) are a tcp_info: long enough, and a TCP state.
 */
static bool nk_diag_info_ok(const struct tcp_info *info, u32 len)
{
	return len >= NK_DIAG_INFO_MIN && info->tcpi_state &&
	       info->tcpi_state < TCP_MAX_STATES;
}

/*
 * The tcp_info of @nks into @info: the NSM's, or a local socket's native
 * half's; its length, 0 when there is none to show.  A call to the NSM
 * that got no answer (the NSM or the ring stalled, the device went, a
 * signal) sets NK_DIAG_NO_INFO: the dump asks no more.
 */
static u32 nk_diag_tcp_info(struct nk_sock *nks, struct tcp_info *info,
			    unsigned long *flags)
{
	struct sock *lsk = NULL;
	u32 len = sizeof(*info);
	bool ask;
	int err;

	spin_lock(&nks->lock);
	if (READ_ONCE(nks->path) == NK_PATH_LOCAL) {
		ask = false;
		if (nks->lower) {
			lsk = nks->lower->sk;
			sock_hold(lsk);
		}
	} else {
		ask = READ_ONCE(nks->created) && !nks->reset &&
		      !nks->revive && !sock_flag(&nks->sk, SOCK_DEAD);
	}
	spin_unlock(&nks->lock);
	if (lsk) {
		tcp_get_info(lsk, info);
		sock_put(lsk);
		return sizeof(*info);
	}
	if (!ask)
		return 0;

	err = nk_sock_getsockopt(nks, SOL_TCP, TCP_INFO, info, &len,
				 NK_DIAG_INFO_TIMEOUT_MS);
	if (err == -ETIMEDOUT || err == -EAGAIN || err == -ENETDOWN ||
	    signal_pending(current)) {
		*flags |= NK_DIAG_NO_INFO;
		return 0;
	}
	if (err)
		return 0;
	if (!nk_diag_info_ok(info, len)) {
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: bad TCP_INFO from the NSM (%u bytes), not shown\n",
				     nks->id, len);
		return 0;
	}
	return len;
}

static int nk_diag_ino_cmp(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a;
	unsigned long y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/*
 * The inodes of the native halves of @net's NetKernel sockets, sorted, in
 * @set (empty when memory is short: the halves are then listed too).  A
 * socket made after this is not in it: a dump that runs meanwhile may
 * list its native half.
 */
void nk_diag_lower_get(struct net *net, struct nk_diag_lower *set)
{
	unsigned long id = 0, max = 0;
	struct nk_sock *nks;

	set->n = 0;
	nk_sockid_lock(&nk_socks);
	for (; (nks = nk_sockid_find(&nk_socks, &id)); id++)
		max += NK_LOWER_MAX;
	nk_sockid_unlock(&nk_socks);
	set->ino = max ? kvmalloc_array(max, sizeof(*set->ino), GFP_KERNEL) :
		   NULL;
	if (!set->ino)
		return;
	id = 0;
	nk_sockid_lock(&nk_socks);
	for (; set->n + NK_LOWER_MAX <= max &&
	       (nks = nk_sockid_find(&nk_socks, &id)); id++)
		if (net_eq(sock_net(&nks->sk), net))
			set->n += nk_sock_lower_inodes(nks, set->ino + set->n);
	nk_sockid_unlock(&nk_socks);
	sort(set->ino, set->n, sizeof(*set->ino), nk_diag_ino_cmp, NULL);
}

bool nk_diag_lower_has(const struct nk_diag_lower *set, unsigned long ino)
{
	return ino && set->n &&
	       bsearch(&ino, set->ino, set->n, sizeof(*set->ino),
		       nk_diag_ino_cmp);
}

void nk_diag_lower_put(struct nk_diag_lower *set)
{
	kvfree(set->ino);
	set->ino = NULL;
	set->n = 0;
}

/*
 * Drop the records of native halves in @set from what the kernel's dump
 * added to @skb from offset @start on.
 */
static void nk_diag_drop_lower(struct sk_buff *skb, unsigned int start,
			       const struct nk_diag_lower *set)
{
	unsigned char *p = skb->data + start, *out = p;
	unsigned char *end = skb_tail_pointer(skb);
	const struct inet_diag_msg *m;
	struct nlmsghdr *nlh;
	unsigned int len;

	while (end - p >= NLMSG_HDRLEN) {
		nlh = (struct nlmsghdr *)p;
		len = min_t(unsigned int, NLMSG_ALIGN(nlh->nlmsg_len), end - p);
		m = nlmsg_data(nlh);
		if (nlh->nlmsg_len < nlmsg_msg_size(sizeof(*m)) ||
		    !nk_diag_lower_has(set, m->idiag_inode)) {
			if (out != p)
				memmove(out, p, len);
			out += len;
		}
		p += len;
	}
	skb_trim(skb, out - skb->data);
}

static int nk_diag_put(struct sk_buff *skb, struct netlink_callback *cb,
		       const struct nk_diag_rec *rec,
		       const struct tcp_info *info, u32 info_len)
{
	struct nlmsghdr *nlh;

	nlh = nlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			cb->nlh->nlmsg_type, sizeof(rec->msg), NLM_F_MULTI);
	if (!nlh)
		return -EMSGSIZE;
	memcpy(nlmsg_data(nlh), &rec->msg, sizeof(rec->msg));
	if (nla_put_u8(skb, INET_DIAG_SHUTDOWN, rec->shutdown) ||
	    (info_len && nla_put(skb, INET_DIAG_INFO, info_len, info))) {
		nlmsg_cancel(skb, nlh);
		return -EMSGSIZE;
	}
	nlmsg_end(skb, nlh);
	return 0;
}

/* One socket of a batch: referenced, and its record. */
struct nk_diag_ent {
	struct nk_sock *nks;
	unsigned long id;
	struct nk_diag_rec rec;
};

/*
 * Emit the NetKernel sockets of @w's protocol from cb->args[NEXT] on:
 * 0 when all are out, -EMSGSIZE when @skb is full (the next read goes on).
 * Batches of NK_DIAG_BATCH sockets are taken, referenced, under the
 * nk_socks lock and emitted without it: asking the NSM for a tcp_info
 * sleeps.
 */
static int nk_diag_dump_socks(const struct nk_diag_wrap *w,
			      struct sk_buff *skb, struct netlink_callback *cb,
			      const struct inet_diag_req_v2 *r)
{
	struct user_namespace *user_ns = sk_user_ns(NETLINK_CB(cb->skb).sk);
	struct net *net = sock_net(skb->sk);
	unsigned long id = cb->args[NK_DIAG_ARG_NEXT];
	struct nk_diag_ent batch[NK_DIAG_BATCH];
	struct tcp_info *info = NULL;
	struct nk_sock *nks;
	int i, n, err = 0;
	u32 info_len;

	if (w->proto == IPPROTO_TCP &&
	    (r->idiag_ext & (1 << (INET_DIAG_INFO - 1))))
		info = kmalloc(sizeof(*info), GFP_KERNEL);
	do {
		n = 0;
		nk_sockid_lock(&nk_socks);
		for (; n < NK_DIAG_BATCH &&
		       (nks = nk_sockid_find(&nk_socks, &id)); id++) {
			if (!net_eq(sock_net(&nks->sk), net) ||
			    (r->id.idiag_if &&
			     r->id.idiag_if != nks->sk.sk_bound_dev_if) ||
			    !nk_diag_sock(nks, w->type, r->sdiag_family,
					  r->idiag_states, user_ns,
					  &batch[n].rec))
				continue;
			sock_hold(&nks->sk);
			batch[n].nks = nks;
			batch[n].id = id;
			n++;
		}
		nk_sockid_unlock(&nk_socks);

		for (i = 0; i < n && !err; i++) {
			info_len = 0;
			if (info && !(cb->args[NK_DIAG_ARG_FLAGS] &
				      NK_DIAG_NO_INFO))
				info_len = nk_diag_tcp_info(batch[i].nks, info,
							    &cb->args[NK_DIAG_ARG_FLAGS]);
			err = nk_diag_put(skb, cb, &batch[i].rec, info,
					  info_len);
			if (err)
				id = batch[i].id;	/* the next read's first */
		}
		for (i = 0; i < n; i++)
			sock_put(&batch[i].nks->sk);
	} while (n == NK_DIAG_BATCH && !err);
	kfree(info);
	cb->args[NK_DIAG_ARG_NEXT] = id;
	return err;
}

static void nk_diag_dump(const struct nk_diag_wrap *w, struct sk_buff *skb,
			 struct netlink_callback *cb,
			 const struct inet_diag_req_v2 *r)
{
	struct nk_diag_lower lower;
	unsigned int start;

	if (!(cb->args[NK_DIAG_ARG_FLAGS] & NK_DIAG_DONE)) {
		if (nk_diag_dump_socks(w, skb, cb, r))
			return;
		cb->args[NK_DIAG_ARG_FLAGS] |= NK_DIAG_DONE;
	}
	/*
	 * An empty skb ends the dump: if the kernel's records were all
	 * native halves, its dump goes on at once.
	 */
	nk_diag_lower_get(sock_net(skb->sk), &lower);
	do {
		start = skb->len;
		w->kernel->dump(skb, cb, r);
		if (skb->len == start)
			break;
		nk_diag_drop_lower(skb, start, &lower);
	} while (!skb->len);
	nk_diag_lower_put(&lower);
}

static void nk_diag_tcp_dump(struct sk_buff *skb, struct netlink_callback *cb,
			     const struct inet_diag_req_v2 *r)
{
	nk_diag_dump(&nk_diag_wraps[0], skb, cb, r);
}

static void nk_diag_udp_dump(struct sk_buff *skb, struct netlink_callback *cb,
			     const struct inet_diag_req_v2 *r)
{
	nk_diag_dump(&nk_diag_wraps[1], skb, cb, r);
}

/* The module of a handler, referenced; NULL if it cannot be pinned. */
static struct module *nk_diag_pin(const struct inet_diag_handler *h,
				  nk_lookup_fn lookup)
{
#ifdef NK_DIAG_HANDLER_OWNER
	return h->owner && try_module_get(h->owner) ? h->owner : NULL;
#else
	struct module *(*module_address)(unsigned long addr);
	struct module *mod;

	module_address = (void *)nk_call_target(lookup("__module_address"));
	if (!module_address)
		return NULL;
	preempt_disable();
	mod = module_address((unsigned long)h);
	if (mod && !try_module_get(mod))
		mod = NULL;
	preempt_enable();
	return mod;
#endif
}

static void nk_diag_remove(struct nk_diag_wrap *w)
{
	int err;

	if (!w->installed)
		return;
	inet_diag_unregister(&w->ops);
	err = inet_diag_register(w->kernel);
	if (err)
		pr_crit("cannot give the diag handler of protocol %d back: %d\n",
			w->proto, err);
	module_put(w->kernel_mod);
	w->installed = false;
}

static void nk_diag_install(struct nk_diag_wrap *w,
			    const struct inet_diag_handler **table,
			    nk_lookup_fn lookup)
{
	const struct inet_diag_handler *h;
	int err;

	request_module("net-pf-%d-proto-%d-type-%d-%d", PF_NETLINK,
		       NETLINK_SOCK_DIAG, AF_INET, w->proto);
	h = READ_ONCE(table[w->proto]);
	if (!h || h->idiag_type != w->proto) {
		pr_warn("no diag handler for protocol %d: ss will not list its NetKernel sockets\n",
			w->proto);
		return;
	}
	w->kernel_mod = nk_diag_pin(h, lookup);
	if (!w->kernel_mod) {
		pr_warn("cannot pin the diag handler of protocol %d: ss will not list its NetKernel sockets\n",
			w->proto);
		return;
	}
	w->kernel = h;
	w->ops = *h;
#ifdef NK_DIAG_HANDLER_OWNER
	w->ops.owner = THIS_MODULE;
#endif
	w->ops.dump = w->proto == IPPROTO_TCP ? nk_diag_tcp_dump :
						nk_diag_udp_dump;
	inet_diag_unregister(h);
	err = inet_diag_register(&w->ops);
	if (err) {
		pr_warn("cannot wrap the diag handler of protocol %d (%d): ss will not list its NetKernel sockets\n",
			w->proto, err);
		if (inet_diag_register(h))
			pr_crit("cannot give the diag handler of protocol %d back\n",
				w->proto);
		module_put(w->kernel_mod);
		return;
	}
	w->installed = true;
}

void nk_diag_init(void)
{
	const struct inet_diag_handler ***table;
	nk_lookup_fn lookup;
	int i;

	lookup = nk_find_lookup();
	if (!lookup)
		return;
	table = (const struct inet_diag_handler ***)lookup("inet_diag_table");
	if (!table || !*table) {
		pr_warn("inet_diag_table not found: ss will not list NetKernel sockets\n");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(nk_diag_wraps); i++)
		nk_diag_install(&nk_diag_wraps[i], *table, lookup);
}

void nk_diag_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(nk_diag_wraps) - 1; i >= 0; i--)
		nk_diag_remove(&nk_diag_wraps[i]);
}

MODULE_SOFTDEP("pre: tcp_diag udp_diag");
