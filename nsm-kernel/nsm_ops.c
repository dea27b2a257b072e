// SPDX-License-Identifier: GPL-2.0
/*
 * nsm_kernel.ko: the requests.  The transport has checked the framing, the
 * flags and that the op is one an NSM may be sent (nk_hdr_check()); this
 * file checks everything else a request carries (ids, arguments, payload
 * lengths, addresses, options) before a kernel socket sees it, and answers
 * a bad request with an error reply and a rate-limited log line.  The
 * implementation notes, including the source address and destination
 * rules, are at the top of nsm_main.c.  It calls into nsm_sock.c and
 * nsm_out.c only.
 *
 * Locking (order in nsm_main.c): nsm_request() runs in a shard's work,
 * on every CPU at once, with no lock of the device held: the requests of
 * one socket id come from one shard, in order, and everything else is the
 * socket table's own spinlock (lib/nk_sockid.c), the socket's lock and
 * atomics.  It takes a reference to the socket (nk_sockid_get()), so a
 * handler may drop the table's, and the socket's nsm_sock.lock for the
 * handler and the reply.  New ids are reserved before anything is created
 * for them (a reservation is one xarray step: of two shards reserving one
 * id, one gets -EEXIST) and published once nothing can fail any more,
 * with the new socket's lock already held: a request another shard takes
 * for it (ACCEPT's new id is not its listener's shard) waits until the
 * reply is queued and the callbacks are set (nested inside a listener's
 * lock).  The guests' accounting (struct nsm_guest) is created here, by
 * nsm_rx() and the shards, the first racing xa_insert() winning, and
 * freed by detach; a
 * guest's counters grow only through steps that check the limit and add
 * at once (nsm_guest_sock_take(), nsm_guest_charge()).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/inet_diag.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/version.h>
#include <net/addrconf.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nsm.h"

static unsigned int buf_alloc = 2 << 20;
module_param(buf_alloc, uint, 0644);
MODULE_PARM_DESC(buf_alloc,
		 "Credit each socket announces for guest data, in bytes, 4096..16777216, times its guest's weight up to 16777216 (default 2097152)");

static unsigned int guest_max_socks = 1024;
module_param(guest_max_socks, uint, 0644);
MODULE_PARM_DESC(guest_max_socks,
		 "Kernel sockets per guest, draining ones included; SOCKET and ACCEPT beyond answer -ENFILE (default 1024)");

static unsigned long guest_txq_max = 64 << 20;
module_param(guest_txq_max, ulong, 0644);
MODULE_PARM_DESC(guest_txq_max,
		 "Credit for guest data all sockets of one guest may announce, in bytes; beyond, new sockets get one message's worth (default 64 MiB)");

#define NSM_MIN_BUF_ALLOC	4096

/* Kernel sockets of guest N belong to uid NSM_GUEST_UID_BASE + N. */
#define NSM_GUEST_UID_BASE	1000000000u

/* ------------------------------------------------------------------ */
/* Guests                                                              */
/* ------------------------------------------------------------------ */

/**
 * nsm_guest_get() - the accounting of guest @id, created on first use
 * @nsm: the device
 * @id: the guest's endpoint id
 *
 * Called by nsm_rx() for each SOCKET it queues and by the shards; may sleep.
 *
 * Return: the guest (freed at detach), or an ERR_PTR(): -EINVAL for an id
 * that has no uid of its own, -ENOMEM.
 */
struct nsm_guest *nsm_guest_get(struct nsm_dev *nsm, u32 id)
{
	struct nsm_guest *g = xa_load(&nsm->guests, id);
	unsigned int i;
	kuid_t uid;
	int err;

	if (g)
		return g;
	uid = make_kuid(nsm->net->user_ns, NSM_GUEST_UID_BASE + id);
	if (id >= NSM_GUEST_ID_MAX || !uid_valid(uid))
		return ERR_PTR(-EINVAL);
	g = kzalloc(struct_size(g, q, 2 * nsm->nshards), GFP_KERNEL);
	if (!g)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < 2 * nsm->nshards; i++) {
		INIT_LIST_HEAD(&g->q[i].reqs);
		INIT_LIST_HEAD(&g->q[i].node);
		g->q[i].g = g;
		g->q[i].hi = i >= nsm->nshards;
	}
	g->id = id;
	g->uid = uid;
	atomic_set(&g->socks, 0);
	atomic_set(&g->draining, 0);
	atomic_long_set(&g->credit, 0);
	atomic64_set(&g->sock_limit, 0);
	atomic64_set(&g->use_ns, 0);
	atomic64_set(&g->sparse_reqs, 0);
	g->weight = 1;
	err = xa_insert(&nsm->guests, id, g, GFP_KERNEL);
	if (err) {
		kfree(g);
		/* nsm_rx() or a shard made it first: guests live until detach. */
		if (err == -EBUSY)
			return xa_load(&nsm->guests, id);
		return ERR_PTR(err);
	}
	return g;
}

/* One request being served. */
struct nsm_req {
	struct nsm_dev *nsm;
	const struct nk_hdr *hdr;
	const void *payload;
	u32 len;
	u16 op;
	u16 flags;
	u32 id;
};

/* What a reply carries besides its status. */
struct nsm_reply {
	u64 a0;
	u32 len;
	struct nsm_sock *attach;	/* new socket: callbacks after the reply */
	const struct nsm_sk_cbs *attach_cbs;
	union {
		struct nk_addr addr;
		struct tcp_info info;
		struct linger linger;
		char name[TCP_CA_NAME_MAX];
		u8 ipopt[MAX_IPOPTLEN];
		union tcp_cc_info cc_info;
		u8 tfo_key[TCP_FASTOPEN_KEY_BUF_LENGTH];
		struct ip6_mtuinfo mtuinfo;
		int val;
	} u;
};

static int nsm_invalid(struct nsm_req *rq, const char *what)
{
	nsm_count(rq->nsm, NSM_S_INVALID, 1);
	pr_warn_ratelimited("socket %u: %s refused: %s\n", rq->id,
			    nk_op_name(rq->op), what);
	return -EINVAL;
}

static u64 nsm_arg(const struct nsm_req *rq, int i)
{
	return le64_to_cpu(rq->hdr->arg[i]);
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* Whether @na is IPv4 or v4-mapped IPv6; its IPv4 address in *@a4 if so. */
static bool nsm_addr_v4(const struct nk_addr *na, __be32 *a4)
{
	struct in6_addr a6;

	if (le16_to_cpu(na->family) == AF_INET) {
		memcpy(a4, na->addr, sizeof(*a4));
		return true;
	}
	memcpy(&a6, na->addr, sizeof(a6));
	if (!ipv6_addr_v4mapped(&a6))
		return false;
	*a4 = a6.s6_addr32[3];
	return true;
}

static bool nsm_addr_is_any(const struct nk_addr *na)
{
	__be32 a4;

	if (nsm_addr_v4(na, &a4))
		return a4 == htonl(INADDR_ANY);
	return !memchr_inv(na->addr, 0, sizeof(na->addr));
}

/* Whether @na is one of the NSM's own addresses. */
static bool nsm_addr_is_local(struct net *net, const struct nk_addr *na)
{
	struct in6_addr a6;
	__be32 a4;

	if (nsm_addr_v4(na, &a4))
		return inet_addr_type(net, a4) == RTN_LOCAL;
	memcpy(&a6, na->addr, sizeof(a6));
	return ipv6_chk_addr(net, &a6, NULL, 0);
}

/* Whether @a names the same host address as @b (ports aside). */
static bool nsm_addr_same(const struct nk_addr *a, const struct nk_addr *b)
{
	__be32 a4, b4;
	bool v4 = nsm_addr_v4(a, &a4);

	if (v4 != nsm_addr_v4(b, &b4))
		return false;
	if (v4)
		return a4 == b4;
	return !memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* The guest's source address towards IPv4 (@v4) or IPv6 peers, or NULL. */
static const struct nk_addr *nsm_src(struct nsm_sock *ns, bool v4)
{
	if (v4) {
		if (!ns->src4.family ||
		    (ns->family == AF_INET6 && ns->sock->sk->sk_ipv6only))
			return NULL;
		return &ns->src4;
	}
	if (ns->family != AF_INET6 || !ns->src6.family)
		return NULL;
	return &ns->src6;
}

/*
 * The source for a wildcard bind: IPv4 when the socket can use it, since
 * an AF_INET6 socket bound to one address serves one family only.
 */
static const struct nk_addr *nsm_src_default(struct nsm_sock *ns)
{
	return nsm_src(ns, true) ?: nsm_src(ns, false);
}

/*
 * A bind the guest has no address for: of that family (@ss NULL), or one
 * not configured on this NSM.  Never the wildcard instead: that would be
 * the NSM's own addresses, and other guests'.
 */
static int nsm_src_unavail(struct nsm_sock *ns,
			   const struct sockaddr_storage *ss, int err)
{
	nsm_count(ns->nsm, NSM_S_SRC_UNAVAIL, 1);
	if (ss)
		pr_info_ratelimited("guest %u: source address %pISc is not configured on this NSM: socket %u refused\n",
				    ns->guest, ss, ns->id);
	else
		pr_info_ratelimited("guest %u: no source address of that family for socket %u\n",
				    ns->guest, ns->id);
	return err;
}

/* Bind to the guest's source address @src with @port (0: any). */
static int nsm_bind_src(struct nsm_sock *ns, const struct nk_addr *src,
			__be16 port)
{
	struct sockaddr_storage ss;
	struct nk_addr a = *src;
	int len;

	a.port = port;
	len = nk_addr_to_sockaddr(&a, &ss, ns->family);
	if (len < 0)
		return -EADDRNOTAVAIL;
	if (!nsm_addr_is_local(ns->net, src))
		return nsm_src_unavail(ns, &ss, -EADDRNOTAVAIL);
	return kernel_bind(ns->sock, (struct sockaddr *)&ss, len);
}

/* Give @sock to @ns's guest: SO_REUSEPORT only joins sockets of one uid. */
static void nsm_sock_own(struct nsm_sock *ns, struct socket *sock)
{
	SOCK_INODE(sock)->i_uid = ns->g->uid;
	sock->sk->sk_uid = ns->g->uid;
}

/* A kernel socket for @ns, of @family, owned by its guest. */
static int nsm_sock_create(struct nsm_sock *ns, int family, int proto,
			   struct socket **res)
{
	int err;

	err = sock_create_kern(ns->net, family, ns->type, proto, res);
	if (!err)
		nsm_sock_own(ns, *res);
	return err;
}

static int nsm_setsockopt(struct socket *sock, int level, int name,
			  void *val, unsigned int len)
{
	if (level == SOL_SOCKET)
		return sock_setsockopt(sock, level, name, KERNEL_SOCKPTR(val),
				       len);
	return sock->ops->setsockopt(sock, level, name, KERNEL_SOCKPTR(val),
				     len);
}

static void nsm_opts_copy(struct nsm_sock *ns, struct socket *to);

/*
 * A socket whose guest takes urgent data (nsm_sock.urg) keeps the urgent
 * byte in the stream: the guest skips it or not, as its own SO_OOBINLINE
 * says when it reads, and tcp_inq() counts the bytes after the mark.
 */
static int nsm_urg_inline(struct nsm_sock *ns, struct socket *sock)
{
	int one = 1;

	if (!ns->urg)
		return 0;
	return nsm_setsockopt(sock, SOL_SOCKET, SO_OOBINLINE, &one,
			      sizeof(one));
}

/*
 * A dual-stack AF_INET6 socket bound to the wildcard hears both families
 * in Linux.  The NSM's socket is bound to the guest's IPv4 address
 * (nsm_src_default()), so it only hears IPv4: when the guest has an IPv6
 * address here too, a second socket (ns->sock6), IPV6_V6ONLY on that
 * address and the same port, serves IPv6.  Called once the primary socket
 * is bound; a stream socket gets it at LISTEN, a datagram socket at once.
 * It takes the options the guest set so far (nsm_opts_copy()), and those
 * set later reach both sockets (nsm_op_setsockopt()).
 */
static int nsm_bind6(struct nsm_sock *ns)
{
	const struct nk_addr *src6 = nsm_src(ns, false);
	struct sock *sk = ns->sock->sk;
	struct sockaddr_storage ss;
	struct socket *sock;
	struct nk_addr a;
	int len, err;

	if (ns->family != AF_INET6 || !ns->bound_any || sk->sk_ipv6only ||
	    ns->sock6 || !src6 || !nsm_addr_is_local(ns->net, src6))
		return 0;
	/* Bound to the IPv6 address itself (no IPv4 one): nothing to add. */
	if (!ipv6_addr_v4mapped(&sk->sk_v6_rcv_saddr))
		return 0;

	a = *src6;
	a.port = inet_sk(sk)->inet_sport;
	len = nk_addr_to_sockaddr(&a, &ss, AF_INET6);
	if (len < 0)
		return -EADDRNOTAVAIL;
	err = nsm_sock_create(ns, AF_INET6,
			      ns->type == SOCK_STREAM ? IPPROTO_TCP :
							IPPROTO_UDP, &sock);
	if (err)
		return err;
	err = ip6_sock_set_v6only(sock->sk);
	if (!err)
		nsm_opts_copy(ns, sock);
	if (!err && ns->type == SOCK_DGRAM)
		err = nsm_setsockopt(sock, SOL_IPV6, IPV6_MULTICAST_LOOP,
				     &(int){ 0 }, sizeof(int));
	if (!err)
		err = kernel_bind(sock, (struct sockaddr *)&ss, len);
	if (err) {
		sock_release(sock);
		return err;
	}
	ns->sock6 = sock;
	if (ns->type == SOCK_DGRAM)
		nsm_sock_set_callbacks6(ns);
	return 0;
}

/* IP_BIND_ADDRESS_NO_PORT of @sk. */
static int nsm_bind_no_port(struct sock *sk)
{
	return nsm_inet_flag(sk, bind_address_no_port, BIND_ADDRESS_NO_PORT);
}

/*
 * Bind a stream socket about to connect to the guest's source address
 * @src only: connect() then picks the port as it does for an unbound
 * socket, unique for the four-tuple.  A port bound first would be held
 * against every destination until its TIME_WAIT ends, so a client that
 * closes first would run out of ports where native Linux does not.
 */
static int nsm_bind_src_no_port(struct nsm_sock *ns, const struct nk_addr *src)
{
	int on = 1, was = nsm_bind_no_port(ns->sock->sk);
	int err;

	err = nsm_setsockopt(ns->sock, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &on,
			     sizeof(on));
	if (!err)
		err = nsm_bind_src(ns, src, 0);
	/* Restore what the guest set; it cannot fail for an int. */
	if (!was)
		nsm_setsockopt(ns->sock, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &was,
			       sizeof(was));
	return err;
}

/*
 * Bind an unbound socket before it talks to @peer; NULL: to the wildcard
 * (before LISTEN, or a datagram's first SEND).  A stream socket's CONNECT
 * binds the address only (nsm_bind_src_no_port()).
 */
static int nsm_autobind(struct nsm_sock *ns, const struct nk_addr *peer)
{
	const struct nk_addr *src;
	__be32 a4;
	int err;

	if (ns->bound)
		return 0;
	src = peer ? nsm_src(ns, nsm_addr_v4(peer, &a4)) : nsm_src_default(ns);
	if (!src)
		return nsm_src_unavail(ns, NULL,
				       peer ? -ENETUNREACH : -EADDRNOTAVAIL);
	if (peer && ns->type == SOCK_STREAM)
		err = nsm_bind_src_no_port(ns, src);
	else
		err = nsm_bind_src(ns, src, 0);
	if (err)
		return err;
	ns->bound = true;
	ns->bound_any = !peer;
	return ns->type == SOCK_DGRAM ? nsm_bind6(ns) : 0;
}

/*
 * Whether @na is link-local: 169.254.0.0/16, or an IPv6 address that
 * needs a scope id (fe80::/10, link- and interface-local multicast),
 * whatever scope id the guest chose.  Those links are the NSM's.
 */
static bool nsm_addr_is_link(const struct nk_addr *na)
{
	struct in6_addr a6;
	__be32 a4;

	if (nsm_addr_v4(na, &a4))
		return ipv4_is_linklocal_169(a4);
	memcpy(&a6, na->addr, sizeof(a6));
	return __ipv6_addr_needs_scope_id(ipv6_addr_type(&a6));
}

/* Whether @na is an IPv4 broadcast address of the NSM's (or the limited one). */
static bool nsm_addr_is_bcast(struct net *net, const struct nk_addr *na)
{
	__be32 a4;

	return nsm_addr_v4(na, &a4) &&
	       inet_addr_type(net, a4) == RTN_BROADCAST;
}

/*
 * Whether @rq's destination is the engine's NK_F_PEER: the address of
 * guest a3, one the sender may reach, whose sockets live in @ns's
 * namespace too (else it is refused as any address of the NSM's).
 */
static bool nsm_dest_peer(const struct nsm_req *rq, const struct nsm_sock *ns)
{
	u32 peer = lower_32_bits(nsm_arg(rq, 3));

	return (rq->flags & NK_F_PEER) && peer && peer != ns->guest &&
	       nsm_tenant_is(peer, ns->net, rq->nsm->net);
}

/* Destinations a guest may not reach through the NSM (see nsm_main.c). */
static int nsm_dest_check(const struct nsm_req *rq, struct nsm_sock *ns,
			  const struct nk_addr *na)
{
	struct net *net = ns->net;
	int err = 0;

	if (nk_addr_is_loopback(na) || nsm_addr_is_any(na) ||
	    nsm_addr_is_link(na))
		err = -ENETUNREACH;
	else if (nsm_addr_is_bcast(net, na))
		err = -EACCES;
	else if (nsm_addr_is_local(net, na) && !nsm_dest_peer(rq, ns))
		err = -EADDRNOTAVAIL;
	if (err)
		nsm_count(ns->nsm, NSM_S_DEST_REFUSED, 1);
	return err;
}

/* The nk_addr payload of BIND and CONNECT, of the socket's own family. */
static int nsm_req_addr(struct nsm_req *rq, struct nsm_sock *ns,
			struct nk_addr *na)
{
	if (rq->len != sizeof(*na))
		return nsm_invalid(rq, "payload is not one address");
	memcpy(na, rq->payload, sizeof(*na));
	if (nk_addr_check(na))
		return nsm_invalid(rq, "malformed address");
	if (le16_to_cpu(na->family) != ns->family)
		return -EAFNOSUPPORT;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Socket creation                                                     */
/* ------------------------------------------------------------------ */

/* A socket of @g in namespace @net, whose reference it takes over. */
static struct nsm_sock *nsm_sock_alloc(struct nsm_dev *nsm, u32 id,
				       struct nsm_guest *g, struct net *net,
				       int family, int type)
{
	struct nsm_sock *ns;

	ns = kzalloc(sizeof(*ns), GFP_KERNEL);
	if (!ns) {
		put_net(net);
		return NULL;
	}
	ns->nsm = nsm;
	ns->shard = nsm_shard_of(nsm, id);
	ns->net = net;
	ns->id = id;
	ns->guest = g->id;
	ns->g = g;
	ns->family = family;
	ns->type = type;
	refcount_set(&ns->ref, 1);
	mutex_init(&ns->lock);
	INIT_LIST_HEAD(&ns->txq);
	INIT_LIST_HEAD(&ns->ready_node);
	INIT_LIST_HEAD(&ns->drain_node);
	/* The guest's weight scales its credit (before guest_txq_max). */
	ns->rx.buf_alloc = clamp_t(u64, (u64)READ_ONCE(buf_alloc) *
				   READ_ONCE(g->weight),
				   NSM_MIN_BUF_ALLOC, NK_CREDIT_MAX);
	return ns;
}

/*
 * Take one of @g's guest_max_socks kernel sockets, or count the refusal.
 * Given back by nsm_sock_release(), or by the caller when the socket is
 * not made after all (nsm_guest_sock_untake()).
 */
static int nsm_guest_sock_take(struct nsm_dev *nsm, struct nsm_guest *g)
{
	if (nsm_atomic_inc_below(&g->socks, min_t(unsigned int,
						  READ_ONCE(guest_max_socks),
						  INT_MAX)))
		return 0;
	nsm_count(nsm, NSM_S_SOCK_LIMIT, 1);
	atomic64_inc(&g->sock_limit);
	pr_info_ratelimited("guest %u: %d sockets, guest_max_socks reached\n",
			    g->id, atomic_read(&g->socks));
	return -ENFILE;
}

static void nsm_guest_sock_untake(struct nsm_guest *g)
{
	atomic_dec(&g->socks);
}

/*
 * Count a new socket, about to be published, to its guest (its slot was
 * taken by nsm_guest_sock_take()), and choose its credit within the
 * guest's guest_txq_max: at least one message (max_payload: a datagram
 * must fit, and a stream keeps a usable window), so the guest's txqs hold
 * at most guest_txq_max plus max_payload per socket.  Undone in
 * nsm_sock_release().  Shards charge one guest at once: the credit is
 * chosen from the total it is added to, in one compare-and-exchange.
 */
static void nsm_guest_charge(struct nsm_sock *ns)
{
	long old = atomic_long_read(&ns->g->credit);
	u32 want = ns->rx.buf_alloc;
	long room;

	do {
		room = (long)READ_ONCE(guest_txq_max) - old;
		ns->rx.buf_alloc = room < (long)want ?
				   clamp_t(long, room,
					   min(ns->nsm->max_payload, want),
					   want) : want;
	} while (!atomic_long_try_cmpxchg(&ns->g->credit, &old,
					  old + ns->rx.buf_alloc));
	if (ns->rx.buf_alloc < want)
		nsm_count(ns->nsm, NSM_S_CREDIT_CUT, 1);
	atomic_inc(&ns->nsm->nsocks);
	nsm_count(ns->nsm, NSM_S_SOCKETS_OPENED, 1);
}

/* Record the credit the guest announced in @hdr for @ns. */
static void nsm_take_credit(struct nsm_sock *ns, const struct nk_hdr *hdr)
{
	u32 before = nk_credit_tx_space(&ns->tx);

	if (!(le16_to_cpu(hdr->flags) & NK_F_CREDIT))
		return;
	if (nk_credit_tx_update(&ns->tx, le32_to_cpu(hdr->buf_alloc),
				le32_to_cpu(hdr->fwd_cnt))) {
		pr_warn_ratelimited("socket %u: fwd_cnt %u beyond the %u bytes sent, ignored\n",
				    ns->id, le32_to_cpu(hdr->fwd_cnt),
				    ns->tx.tx_cnt);
		return;
	}
	/* A socket without callbacks yet is looked at once they are set. */
	if (ns->sk && nk_credit_tx_space(&ns->tx) > before)
		nsm_sock_kick(ns);
}

static int nsm_op_socket(struct nsm_req *rq, struct nsm_reply *rp)
{
	u64 family = nsm_arg(rq, 0), type = nsm_arg(rq, 1);
	u64 proto = nsm_arg(rq, 2), a3 = nsm_arg(rq, 3);
	const struct nk_addr *na = rq->payload;
	struct nsm_dev *nsm = rq->nsm;
	struct nsm_guest *g;
	struct nk_addr *src;
	struct nsm_sock *ns;
	struct net *net;
	u32 flags = lower_32_bits(a3);
	int weight = nk_sock_weight(a3);
	int off = 0, i, err;

	if (!nk_sockid_valid(&nsm->socks, rq->id))
		return nsm_invalid(rq, "socket id 0");
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	if (type != SOCK_STREAM && type != SOCK_DGRAM)
		return -ESOCKTNOSUPPORT;
	if (proto && proto != (type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP))
		return -EPROTONOSUPPORT;
	if ((flags & ~(NK_SOCK_V6ONLY | NK_SOCK_ANC | NK_SOCK_URG | NK_SOCK_WEIGHT_MASK)) ||
	    ((flags & NK_SOCK_V6ONLY) && family != AF_INET6) ||
	    ((flags & NK_SOCK_ANC) && type != SOCK_DGRAM) ||
	    ((flags & NK_SOCK_URG) && type != SOCK_STREAM))
		return nsm_invalid(rq, "bad NK_SOCK_* flags");
	if (weight < 0)
		return nsm_invalid(rq, "bad weight");
	if (rq->len % sizeof(*na) || rq->len > 2 * sizeof(*na))
		return nsm_invalid(rq, "bad source address list");
	g = nsm_guest_get(nsm, upper_32_bits(a3));
	if (IS_ERR(g))
		return PTR_ERR(g) == -EINVAL ? nsm_invalid(rq, "bad guest id") :
					       PTR_ERR(g);
	/* The latest SOCKET's weight is the guest's, refused or not. */
	if (weight)
		WRITE_ONCE(g->weight, weight);
	err = nsm_guest_sock_take(nsm, g);
	if (err)
		return err;
	/* Taken now, so that nothing can fail once the socket exists. */
	err = nk_sockid_reserve(&nsm->socks, rq->id, GFP_KERNEL);
	if (err)
		goto err_untake;

	net = nsm_tenant_net(g->id, nsm->net);
	if (IS_ERR(net)) {
		err = PTR_ERR(net);
		goto err_unreserve;
	}
	ns = nsm_sock_alloc(nsm, rq->id, g, net, family, type);
	if (!ns) {
		err = -ENOMEM;
		goto err_unreserve;
	}
	ns->anc = flags & NK_SOCK_ANC;
	ns->urg = flags & NK_SOCK_URG;
	for (i = 0; i < rq->len / sizeof(*na); i++) {
		src = le16_to_cpu(na[i].family) == AF_INET ? &ns->src4 :
							     &ns->src6;
		if (nk_addr_check(&na[i]) || src->family) {
			err = nsm_invalid(rq, "bad source address");
			goto err_free;
		}
		*src = na[i];
		src->port = 0;
	}

	err = nsm_sock_create(ns, family, proto, &ns->sock);
	if (err)
		goto err_free;
	if (flags & NK_SOCK_V6ONLY)
		err = ip6_sock_set_v6only(ns->sock->sk);
	if (!err)
		err = nsm_urg_inline(ns, ns->sock);
	/* A guest's multicast must not loop back to the NSM's listeners. */
	if (!err && type == SOCK_DGRAM)
		err = nsm_setsockopt(ns->sock,
				     family == AF_INET ? SOL_IP : SOL_IPV6,
				     family == AF_INET ? IP_MULTICAST_LOOP :
							 IPV6_MULTICAST_LOOP,
				     &off, sizeof(off));
	if (err)
		goto err_release;

	nsm_guest_charge(ns);
	/* Locked before it is visible; nsm_answer() unlocks it. */
	mutex_lock(&ns->lock);
	nk_sockid_publish(&nsm->socks, rq->id, ns);
	nsm_take_credit(ns, rq->hdr);
	rp->attach = ns;
	return 0;

err_release:
	sock_release(ns->sock);
	ns->sock = NULL;
err_free:
	nsm_sock_put(ns);
err_unreserve:
	nk_sockid_release(&nsm->socks, rq->id);
err_untake:
	nsm_guest_sock_untake(g);
	return err;
}

/* ------------------------------------------------------------------ */
/* Operations on a socket (ns->lock held)                              */
/* ------------------------------------------------------------------ */

static int nsm_op_bind(struct nsm_req *rq, struct nsm_sock *ns,
		       struct nsm_reply *rp)
{
	const struct nk_addr *src;
	struct nk_addr na;
	bool any, v4;
	__be32 a4;
	int err;

	err = nsm_req_addr(rq, ns, &na);
	if (err)
		return err;
	if (ns->bound)
		return -EINVAL;
	any = nsm_addr_is_any(&na);
	v4 = nsm_addr_v4(&na, &a4);
	if (any && ns->family == AF_INET6 && ns->sock->sk->sk_ipv6only)
		src = nsm_src(ns, false);
	else if (any && !(v4 && ns->family == AF_INET6))
		src = nsm_src_default(ns);
	else
		src = nsm_src(ns, v4);
	if (src && (any || nsm_addr_same(&na, src)))
		err = nsm_bind_src(ns, src, na.port);
	else if (any)
		/* E.g. an IPV6_V6ONLY wildcard of a guest with no IPv6 address. */
		err = nsm_src_unavail(ns, NULL, -EADDRNOTAVAIL);
	else
		return -EADDRNOTAVAIL;
	if (err)
		return err;
	ns->bound = true;
	ns->bound_any = any;
	return ns->type == SOCK_DGRAM ? nsm_bind6(ns) : 0;
}

static int nsm_op_listen(struct nsm_req *rq, struct nsm_sock *ns,
			 struct nsm_reply *rp)
{
	int somaxconn = READ_ONCE(ns->net->core.sysctl_somaxconn);
	u64 backlog = nsm_arg(rq, 0);
	bool fresh6;
	int err;

	if (rq->len)
		return nsm_invalid(rq, "unexpected payload");
	/* As listen(2): a negative or huge backlog means somaxconn. */
	if (backlog > somaxconn)
		backlog = somaxconn;
	err = nsm_autobind(ns, NULL);
	if (!err)
		err = kernel_listen(ns->sock, backlog);
	if (!err)
		err = nsm_bind6(ns);
	/*
	 * LISTEN again (a new backlog) finds ns->sock6 listening with our
	 * callbacks on it already (ns->sk6): installing them a second time
	 * would save ours as the ones to chain to, and nsm_data_ready()
	 * would call itself without end.
	 */
	if (!err && ns->sock6) {
		fresh6 = !ns->sk6;
		err = kernel_listen(ns->sock6, backlog);
		if (fresh6 && !err)
			nsm_sock_set_callbacks6(ns);
		else if (fresh6)
			nsm_sock_release6(ns);
	}
	if (err)
		return err;
	ns->listening = true;
	ns->accept_sent = 0;
	nsm_sock_kick(ns);
	return 0;
}

static int nsm_op_accept(struct nsm_req *rq, struct nsm_sock *ns,
			 struct nsm_reply *rp)
{
	struct nsm_dev *nsm = rq->nsm;
	u64 nid = nsm_arg(rq, 0);
	struct sockaddr_storage ss;
	struct socket *newsock;
	struct nsm_sock *nns;
	int err;

	if (!nk_sockid_valid(&nsm->socks, nid))
		return nsm_invalid(rq, "bad new socket id");
	if ((nsm_arg(rq, 1) & ~NK_SOCK_V6ONLY) || rq->len)
		return nsm_invalid(rq, "bad flags or payload");
	if (!ns->listening)
		return -EINVAL;
	err = nsm_guest_sock_take(nsm, ns->g);
	if (err)
		return err;
	/*
	 * Reserve and allocate first: a connection taken from the queue is
	 * never lost.
	 */
	err = nk_sockid_reserve(&nsm->socks, nid, GFP_KERNEL);
	if (err)
		goto err_untake;
	nns = nsm_sock_alloc(nsm, nid, ns->g, get_net(ns->net), ns->family,
			     ns->type);
	if (!nns) {
		err = -ENOMEM;
		goto err_unreserve;
	}
	err = kernel_accept(ns->sock, &newsock, O_NONBLOCK);
	if (err == -EAGAIN && ns->sock6)
		err = kernel_accept(ns->sock6, &newsock, O_NONBLOCK);
	/* Whatever is left in the queue gets a new EV_ACCEPT. */
	ns->accept_sent = 0;
	nsm_sock_kick(ns);
	if (err)
		goto err_free;

	nns->sock = newsock;
	nsm_sock_own(nns, newsock);
	nsm_guest_charge(nns);
	/*
	 * Locked before it is visible to its own shard; nsm_answer() unlocks
	 * it once its callbacks are set.
	 */
	mutex_lock_nested(&nns->lock, SINGLE_DEPTH_NESTING);
	nk_sockid_publish(&nsm->socks, nid, nns);
	nns->src4 = ns->src4;
	nns->src6 = ns->src6;
	bitmap_copy(nns->kept_opts, ns->kept_opts, NSM_OPTS_MAX);
	/* The kernel socket has its listener's SO_OOBINLINE. */
	nns->urg = ns->urg;
	nns->bound = true;
	nns->connected = true;
	nsm_take_credit(nns, rq->hdr);

	/* The peer may already be gone: the socket is still accepted. */
	memset(&rp->u.addr, 0, sizeof(rp->u.addr));
	rp->u.addr.family = cpu_to_le16(ns->family);
	err = kernel_getpeername(newsock, (struct sockaddr *)&ss);
	if (err >= 0)
		nk_addr_from_sockaddr(&rp->u.addr, (struct sockaddr *)&ss, err);
	rp->len = sizeof(rp->u.addr);
	rp->a0 = nid;
	rp->attach = nns;
	rp->attach_cbs = &ns->orig;
	return 0;

err_free:
	nsm_sock_put(nns);
err_unreserve:
	nk_sockid_release(&nsm->socks, nid);
err_untake:
	nsm_guest_sock_untake(ns->g);
	return err;
}

/*
 * CONNECT to the all-zero address (AF_UNSPEC): the guest's
 * connect(AF_UNSPEC), done on the kernel socket.  A datagram socket's
 * association is dissolved (on the kernel socket it went through); a
 * stream socket is disconnected as tcp_disconnect() does: a listener
 * stops listening, a connection is reset.
 */
static int nsm_disconnect(struct nsm_sock *ns)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	int err = 0;

	if (ns->type == SOCK_DGRAM) {
		if (ns->dgram_peer)
			err = kernel_connect(ns->dgram_peer, &sa, sizeof(sa), 0);
		if (!err)
			ns->dgram_peer = NULL;
		return err;
	}
	err = kernel_connect(ns->sock, &sa, sizeof(sa), 0);
	if (!err && ns->sock6)
		err = kernel_connect(ns->sock6, &sa, sizeof(sa), 0);
	if (!err) {
		ns->listening = false;
		ns->connecting = false;
		ns->connected = false;
		ns->accept_sent = 0;
	}
	return err;
}

static int nsm_op_connect(struct nsm_req *rq, struct nsm_sock *ns,
			  struct nsm_reply *rp)
{
	struct sockaddr_storage ss;
	struct socket *sock;
	struct nk_addr na;
	__be32 a4;
	int len, err;

	if (rq->len == sizeof(na) && !memchr_inv(rq->payload, 0, sizeof(na)))
		return nsm_disconnect(ns);
	err = nsm_req_addr(rq, ns, &na);
	if (!err)
		err = nsm_dest_check(rq, ns, &na);
	if (err)
		return err;
	len = nk_addr_to_sockaddr(&na, &ss, ns->family);
	err = nsm_autobind(ns, &na);
	if (err)
		return err;
	/* A dual-stack datagram socket's IPv6 peers: see nsm_bind6(). */
	sock = ns->sock;
	if (ns->type == SOCK_DGRAM && ns->sock6 && !nsm_addr_v4(&na, &a4))
		sock = ns->sock6;
	err = kernel_connect(sock, (struct sockaddr *)&ss, len, O_NONBLOCK);
	if (ns->type == SOCK_DGRAM && !err)
		ns->dgram_peer = sock;
	if (ns->type == SOCK_STREAM) {
		if (err == -EINPROGRESS)
			ns->connecting = true;
		else if (!err)
			ns->connected = true;
	}
	/* Whatever completed already is reported after this reply. */
	if (!err || err == -EINPROGRESS)
		nsm_sock_kick(ns);
	return err;
}

static int nsm_op_send(struct nsm_req *rq, struct nsm_sock *ns,
		       struct nsm_reply *rp)
{
	u64 nk_flags = nsm_arg(rq, 0);
	const u8 *data = rq->payload;
	struct sockaddr_storage ss;
	unsigned int msg_flags = 0;
	u32 n = rq->len;
	struct nk_addr na;
	__be32 a4;
	int tolen = 0;
	int err;

	if (nk_flags & ~(u64)NK_MSG_KNOWN)
		return nsm_invalid(rq, "unknown NK_MSG_* flags");
	if (rq->flags & NK_F_ADDR) {
		if (n < sizeof(na))
			return nsm_invalid(rq, "no room for the address");
		memcpy(&na, data, sizeof(na));
		if (nk_addr_check(&na))
			return nsm_invalid(rq, "malformed address");
		data += sizeof(na);
		n -= sizeof(na);
	}
	if (nk_credit_rx_accept(&ns->rx, n)) {
		pr_warn_ratelimited("socket %u: SEND of %u bytes beyond the credit announced\n",
				    ns->id, n);
		/* Keep counting as the engine does, and drop the data. */
		ns->rx.rx_cnt += n;
		nsm_sock_consumed(ns, n);
		return -ENOBUFS;
	}
	ns->bytes_in += n;
	nsm_count(rq->nsm, NSM_S_BYTES_FROM_GUESTS, n);

	if (ns->shut_wr_pending) {
		err = -EPIPE;
		goto drop;
	}
	if ((rq->flags & NK_F_ADDR) && ns->type == SOCK_DGRAM) {
		err = nsm_dest_check(rq, ns, &na);
		if (err)
			goto drop;
		tolen = nk_addr_to_sockaddr(&na, &ss, ns->family);
		if (tolen < 0) {
			err = -EAFNOSUPPORT;
			goto drop;
		}
		/* Unbound: the wildcard, as udp's implicit bind does. */
		err = nsm_autobind(ns, nsm_src(ns, nsm_addr_v4(&na, &a4)) ?
				   NULL : &na);
		if (err)
			goto drop;
	}
	if (nk_flags & NK_MSG_OOB)
		msg_flags |= MSG_OOB;
	if (nk_flags & NK_MSG_DONTROUTE)
		msg_flags |= MSG_DONTROUTE;
	if (nk_flags & NK_MSG_EOR)
		msg_flags |= MSG_EOR;
	if (rq->flags & NK_F_MORE)
		msg_flags |= MSG_MORE;

	err = nsm_sock_write(ns, data, n, msg_flags, &ss, tolen);
	nsm_sock_credit(ns);
	return err;

drop:
	nsm_sock_consumed(ns, n);
	nsm_sock_credit(ns);
	return err;
}

static int nsm_op_shutdown(struct nsm_req *rq, struct nsm_sock *ns,
			   struct nsm_reply *rp)
{
	u64 how = nsm_arg(rq, 0);

	if (how > SHUT_RDWR || rq->len)
		return nsm_invalid(rq, "bad how or payload");
	/* Guest data still queued goes out before the FIN. */
	if (how != SHUT_RD && ns->type == SOCK_STREAM &&
	    !list_empty(&ns->txq)) {
		ns->shut_wr_pending = true;
		return how == SHUT_RDWR ? kernel_sock_shutdown(ns->sock, SHUT_RD)
					: 0;
	}
	/* A listener shut down for reading stops listening, both sockets. */
	if (ns->sock6 && how != SHUT_WR)
		kernel_sock_shutdown(ns->sock6, how);
	return kernel_sock_shutdown(ns->sock, how);
}

static int nsm_op_close(struct nsm_req *rq, struct nsm_sock *ns,
			struct nsm_reply *rp)
{
	struct nsm_dev *nsm = rq->nsm;
	struct sock *sk = ns->sock->sk;
	bool abort;

	/* The engine frees the id whatever the answer: always close. */
	if (rq->len)
		nsm_invalid(rq, "unexpected payload, closing anyway");
	nk_sockid_remove(&nsm->socks, ns->id);
	ns->closed = true;
	abort = sock_flag(sk, SOCK_LINGER) && !READ_ONCE(sk->sk_lingertime);
	if (ns->type == SOCK_STREAM && !list_empty(&ns->txq) && !abort) {
		/* The table's reference moves to the draining list. */
		if (nsm_drain_start(ns)) {
			nsm_sock_kick(ns);
			return 0;
		}
		/* Too many draining already: reset, as TCP does an orphan. */
		sock_no_linger(sk);
	}
	nsm_sock_release(ns);
	/* The table's reference; nsm_request() holds one of its own. */
	nsm_sock_put(ns);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

/*
 * The options a guest may set or read on its socket, at the levels the
 * guest forwards (SOL_SOCKET is the guest's own, see af_netkernel).  Each
 * is one of:
 * - carried: applied to the kernel socket with the credentials of an
 *   unprivileged process (nsm_guest_cred), whatever the NSM's: the kernel
 *   checks the value and answers as Linux answers such a process (no
 *   congestion control but the allowed ones, no module loaded, no CIPSO
 *   option; IP_OPTIONS with a source route is refused, see
 *   nsm_ip_options_srr()); read back from it (nsm_getsockopt());
 * - kept (NSM_OPT_KEEP): a flag the guest may set and read back, kept in
 *   nsm_sock.kept_opts.  One that asks for control messages or an error
 *   queue (NSM_OPT_ANC) is applied too on a datagram socket whose guest
 *   takes them (nsm_sock.anc, see nsm_sock.c): the NSM then reads them
 *   and forwards them in struct nk_anc.  Otherwise it is not applied:
 *   nobody would read the error queue it fills, until the socket receives
 *   nothing (UDP_GRO: it would merge datagrams whose boundaries only its
 *   control message tells; IP_MULTICAST_LOOP: a guest's multicast never
 *   loops back to the NSM, see nsm_op_socket());
 * - an interface (NSM_OPT_IF): it names one of the guest's interfaces,
 *   which the NSM does not have: only "none" is carried (nsm_opt_if());
 * - a group's (NSM_OPT_GROUP): checked, then answered as Linux answers
 *   when no interface reaches the group (nsm_opt_group());
 * - refused (@err): it would act outside the guest's tenancy on the NSM
 *   (-EPERM as for an unprivileged process, whatever the guest's
 *   privileges), or the NSM cannot serve it; reads 0 (it can never be on),
 *   or what Linux reads when it is off (nsm_getsockopt()).
 * Anything else answers -ENOPROTOOPT.  Documentation/netkernel/
 * sockopts.rst lists them with their reasons.
 */
#define NSM_OPT_GET_ONLY	0x1
#define NSM_OPT_STREAM		0x2	/* TCP sockets only */
#define NSM_OPT_INET6		0x4	/* AF_INET6 sockets only */
#define NSM_OPT_KEEP		0x8	/* kept, not applied */
#define NSM_OPT_SET_ONLY	0x10	/* getsockopt: as for an unknown option */
#define NSM_OPT_DGRAM		0x20	/* UDP sockets only */
#define NSM_OPT_ANC		0x40	/* kept; applied with nsm_sock.anc */
#define NSM_OPT_ERRQ		0x80	/* NSM_OPT_ANC: an error queue, no cmsg on data */
#define NSM_OPT_ON		0x100	/* NSM_OPT_KEEP: reads 1 until cleared */
#define NSM_OPT_IF		0x200	/* names an interface: nsm_opt_if() */
#define NSM_OPT_GROUP		0x400	/* a group's: nsm_opt_group() */
#define NSM_OPT_LEAVE		0x800	/* NSM_OPT_GROUP: leaves one */
#define NSM_OPT_BOOL		0x1000	/* NSM_OPT_KEEP: 0 or 1, else -EINVAL */

struct nsm_opt {
	int level;
	int name;
	unsigned int flags;
	int err;		/* refused: the answer */
	unsigned int len;	/* NSM_OPT_GROUP: the shortest value */
};

#define NSM_GROUP_OPT(level, name, flags, len)				\
	{ level, name, (flags) | NSM_OPT_GROUP | NSM_OPT_SET_ONLY, 0, len }

static const struct nsm_opt nsm_opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR, 0 },
	{ SOL_SOCKET, SO_REUSEPORT, 0 },
	{ SOL_SOCKET, SO_KEEPALIVE, 0 },
	{ SOL_SOCKET, SO_LINGER, 0 },
	{ SOL_SOCKET, SO_RCVBUF, 0 },
	{ SOL_SOCKET, SO_SNDBUF, 0 },
	{ SOL_SOCKET, SO_ERROR, NSM_OPT_GET_ONLY },
	{ SOL_SOCKET, SO_BROADCAST, 0 },
	{ SOL_SOCKET, SO_OOBINLINE, 0 },
	{ SOL_SOCKET, SO_DONTROUTE, 0 },
	{ SOL_TCP, TCP_NODELAY, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_INFO, NSM_OPT_STREAM | NSM_OPT_GET_ONLY },
	{ SOL_TCP, TCP_KEEPIDLE, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_KEEPINTVL, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_KEEPCNT, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_MAXSEG, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_CORK, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_DEFER_ACCEPT, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_FASTOPEN, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_USER_TIMEOUT, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_NOTSENT_LOWAT, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_QUICKACK, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_SYNCNT, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_LINGER2, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_WINDOW_CLAMP, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_TX_DELAY, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_SAVE_SYN, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_CONGESTION, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_MD5SIG, NSM_OPT_STREAM | NSM_OPT_SET_ONLY },
	/* Never in repair mode (TCP_REPAIR is refused): they answer so. */
	{ SOL_TCP, TCP_REPAIR_QUEUE, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_QUEUE_SEQ, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_REPAIR_OPTIONS, NSM_OPT_STREAM | NSM_OPT_SET_ONLY },
	{ SOL_TCP, TCP_REPAIR_WINDOW, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_REPAIR, NSM_OPT_STREAM, -EPERM },
	{ SOL_TCP, TCP_FASTOPEN_CONNECT, NSM_OPT_STREAM, -EOPNOTSUPP },
	{ SOL_TCP, TCP_ULP, NSM_OPT_STREAM, -ENOENT },
	{ SOL_TCP, TCP_THIN_DUPACK, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_TIMESTAMP, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_CC_INFO, NSM_OPT_STREAM | NSM_OPT_GET_ONLY },
	{ SOL_TCP, TCP_MD5SIG_EXT, NSM_OPT_STREAM | NSM_OPT_SET_ONLY },
	{ SOL_TCP, TCP_FASTOPEN_KEY, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_FASTOPEN_NO_COOKIE, NSM_OPT_STREAM },
	{ SOL_TCP, TCP_SAVED_SYN, NSM_OPT_STREAM | NSM_OPT_GET_ONLY },
	{ SOL_TCP, TCP_INQ, NSM_OPT_STREAM | NSM_OPT_KEEP | NSM_OPT_BOOL },
	{ SOL_TCP, TCP_ZEROCOPY_RECEIVE, NSM_OPT_STREAM | NSM_OPT_GET_ONLY },
	{ SOL_UDP, UDP_CORK, NSM_OPT_DGRAM },
	{ SOL_UDP, UDP_SEGMENT, NSM_OPT_DGRAM },
	{ SOL_UDP, UDP_GRO, NSM_OPT_DGRAM | NSM_OPT_KEEP },
	{ SOL_UDP, UDP_NO_CHECK6_TX, NSM_OPT_DGRAM },
	{ SOL_UDP, UDP_NO_CHECK6_RX, NSM_OPT_DGRAM },
	{ SOL_UDP, UDP_ENCAP, NSM_OPT_DGRAM, -EPERM },
	{ SOL_IP, IP_TOS, 0 },
	{ SOL_IP, IP_TTL, 0 },
	{ SOL_IP, IP_MTU_DISCOVER, 0 },
	{ SOL_IP, IP_MTU, NSM_OPT_GET_ONLY },
	{ SOL_IP, IP_OPTIONS, 0 },
	{ SOL_IP, IP_RECVFRAGSIZE, 0 },
	{ SOL_IP, IP_BIND_ADDRESS_NO_PORT, 0 },
	{ SOL_IP, IP_FREEBIND, 0 },
	{ SOL_IP, IP_HDRINCL, NSM_OPT_GET_ONLY },	/* raw sockets only */
	{ SOL_IP, IP_NODEFRAG, NSM_OPT_GET_ONLY },	/* raw sockets only */
	{ SOL_IP, IP_MINTTL, 0 },
	{ SOL_IP, IP_RECVERR_RFC4884, 0 },
	{ SOL_IP, IP_LOCAL_PORT_RANGE, 0 },
	{ SOL_IP, IP_PROTOCOL, NSM_OPT_GET_ONLY },
	{ SOL_IP, IP_PKTOPTIONS, NSM_OPT_STREAM | NSM_OPT_GET_ONLY },
	{ SOL_IP, IP_CHECKSUM, NSM_OPT_KEEP },
	{ SOL_IP, IP_PASSSEC, NSM_OPT_KEEP },
	{ SOL_IP, IP_ROUTER_ALERT, NSM_OPT_SET_ONLY, -EINVAL },	/* raw only */
	{ SOL_IP, IP_PKTINFO, NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IP, IP_RECVERR, NSM_OPT_KEEP | NSM_OPT_ANC | NSM_OPT_ERRQ },
	{ SOL_IP, IP_RECVTOS, NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IP, IP_RECVTTL, NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IP, IP_RECVOPTS, NSM_OPT_KEEP },
	{ SOL_IP, IP_RETOPTS, NSM_OPT_KEEP },
	{ SOL_IP, IP_RECVORIGDSTADDR, NSM_OPT_KEEP },
	{ SOL_IP, IP_MULTICAST_TTL, 0 },
	{ SOL_IP, IP_MULTICAST_LOOP, NSM_OPT_KEEP | NSM_OPT_ON },
	{ SOL_IP, IP_MULTICAST_ALL, 0 },
	{ SOL_IP, IP_MULTICAST_IF, NSM_OPT_IF },
	{ SOL_IP, IP_UNICAST_IF, NSM_OPT_IF },
	NSM_GROUP_OPT(SOL_IP, IP_ADD_MEMBERSHIP, 0, sizeof(struct ip_mreq)),
	NSM_GROUP_OPT(SOL_IP, IP_DROP_MEMBERSHIP, NSM_OPT_LEAVE,
		      sizeof(struct ip_mreq)),
	NSM_GROUP_OPT(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, 0,
		      sizeof(struct ip_mreq_source)),
	NSM_GROUP_OPT(SOL_IP, IP_DROP_SOURCE_MEMBERSHIP, 0,
		      sizeof(struct ip_mreq_source)),
	NSM_GROUP_OPT(SOL_IP, IP_BLOCK_SOURCE, 0,
		      sizeof(struct ip_mreq_source)),
	NSM_GROUP_OPT(SOL_IP, IP_UNBLOCK_SOURCE, 0,
		      sizeof(struct ip_mreq_source)),
	NSM_GROUP_OPT(SOL_IP, IP_MSFILTER, 0, IP_MSFILTER_SIZE(0)),
	NSM_GROUP_OPT(SOL_IP, MCAST_JOIN_GROUP, 0, sizeof(struct group_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_LEAVE_GROUP, NSM_OPT_LEAVE,
		      sizeof(struct group_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_JOIN_SOURCE_GROUP, 0,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_LEAVE_SOURCE_GROUP, 0,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_BLOCK_SOURCE, 0,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_UNBLOCK_SOURCE, 0,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IP, MCAST_MSFILTER, 0, GROUP_FILTER_SIZE(0)),
	{ SOL_IP, IP_TRANSPARENT, 0, -EPERM },
	{ SOL_IP, IP_IPSEC_POLICY, NSM_OPT_SET_ONLY, -EPERM },
	{ SOL_IP, IP_XFRM_POLICY, NSM_OPT_SET_ONLY, -EPERM },
	{ SOL_IPV6, IPV6_V6ONLY, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_TCLASS, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_UNICAST_HOPS, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_MTU_DISCOVER, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_MTU, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_DONTFRAG, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_ADDR_PREFERENCES, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_MINHOPCOUNT, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_RECVFRAGSIZE, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_FREEBIND, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_AUTOFLOWLABEL, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_FLOWINFO_SEND, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_RECVERR_RFC4884, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_ROUTER_ALERT_ISOLATE, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_PATHMTU, NSM_OPT_INET6 | NSM_OPT_GET_ONLY },
	{ SOL_IPV6, IPV6_PKTINFO, NSM_OPT_INET6 | NSM_OPT_SET_ONLY },
	{ SOL_IPV6, IPV6_ADDRFORM, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_2292PKTOPTIONS, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_RECVHOPOPTS, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_FLOWINFO, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_2292PKTINFO, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_2292HOPLIMIT, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_2292HOPOPTS, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_2292DSTOPTS, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_2292RTHDR, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_RECVPKTINFO,
	  NSM_OPT_INET6 | NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IPV6, IPV6_RECVERR,
	  NSM_OPT_INET6 | NSM_OPT_KEEP | NSM_OPT_ANC | NSM_OPT_ERRQ },
	{ SOL_IPV6, IPV6_RECVTCLASS,
	  NSM_OPT_INET6 | NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IPV6, IPV6_RECVHOPLIMIT,
	  NSM_OPT_INET6 | NSM_OPT_KEEP | NSM_OPT_ANC },
	{ SOL_IPV6, IPV6_RECVRTHDR, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_RECVDSTOPTS, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_RECVPATHMTU, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_RECVORIGDSTADDR, NSM_OPT_INET6 | NSM_OPT_KEEP },
	{ SOL_IPV6, IPV6_MULTICAST_HOPS, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_MULTICAST_LOOP,
	  NSM_OPT_INET6 | NSM_OPT_KEEP | NSM_OPT_ON | NSM_OPT_BOOL },
	{ SOL_IPV6, IPV6_MULTICAST_ALL, NSM_OPT_INET6 },
	{ SOL_IPV6, IPV6_MULTICAST_IF, NSM_OPT_INET6 | NSM_OPT_IF },
	{ SOL_IPV6, IPV6_UNICAST_IF, NSM_OPT_INET6 | NSM_OPT_IF },
	NSM_GROUP_OPT(SOL_IPV6, IPV6_ADD_MEMBERSHIP, NSM_OPT_INET6,
		      sizeof(struct ipv6_mreq)),
	NSM_GROUP_OPT(SOL_IPV6, IPV6_DROP_MEMBERSHIP, NSM_OPT_INET6 | NSM_OPT_LEAVE,
		      sizeof(struct ipv6_mreq)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_JOIN_GROUP, NSM_OPT_INET6,
		      sizeof(struct group_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_LEAVE_GROUP, NSM_OPT_INET6 | NSM_OPT_LEAVE,
		      sizeof(struct group_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_JOIN_SOURCE_GROUP, NSM_OPT_INET6,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_LEAVE_SOURCE_GROUP, NSM_OPT_INET6,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_BLOCK_SOURCE, NSM_OPT_INET6,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_UNBLOCK_SOURCE, NSM_OPT_INET6,
		      sizeof(struct group_source_req)),
	NSM_GROUP_OPT(SOL_IPV6, MCAST_MSFILTER, NSM_OPT_INET6,
		      GROUP_FILTER_SIZE(0)),
	{ SOL_IPV6, IPV6_TRANSPARENT, NSM_OPT_INET6, -EPERM },
	{ SOL_IPV6, IPV6_IPSEC_POLICY, NSM_OPT_INET6 | NSM_OPT_SET_ONLY, -EPERM },
	{ SOL_IPV6, IPV6_XFRM_POLICY, NSM_OPT_INET6 | NSM_OPT_SET_ONLY, -EPERM },
	/* Sticky headers: read back empty (nsm_getsockopt()). */
	{ SOL_IPV6, IPV6_HOPOPTS, NSM_OPT_INET6, -EPERM },
	{ SOL_IPV6, IPV6_DSTOPTS, NSM_OPT_INET6, -EPERM },
	{ SOL_IPV6, IPV6_RTHDRDSTOPTS, NSM_OPT_INET6, -EPERM },
	{ SOL_IPV6, IPV6_RTHDR, NSM_OPT_INET6, -EPERM },
	{ SOL_IPV6, IPV6_JOIN_ANYCAST, NSM_OPT_INET6 | NSM_OPT_SET_ONLY, -EPERM },
	{ SOL_IPV6, IPV6_LEAVE_ANYCAST, NSM_OPT_INET6 | NSM_OPT_SET_ONLY, -ENOENT },
	{ SOL_IPV6, IPV6_FLOWLABEL_MGR, NSM_OPT_INET6, -EPERM },
};

/*
 * The credentials a guest's options are applied with: those of a process
 * with no capability, so that the kernel answers as it answers an
 * unprivileged native process (nsm_opts_init()).
 */
static const struct cred *nsm_guest_cred;

int nsm_opts_init(void)
{
	struct cred *cred = prepare_kernel_cred(&init_task);

	if (!cred)
		return -ENOMEM;
	cap_clear(cred->cap_inheritable);
	cap_clear(cred->cap_permitted);
	cap_clear(cred->cap_effective);
	cap_clear(cred->cap_bset);
	cap_clear(cred->cap_ambient);
	nsm_guest_cred = cred;
	return 0;
}

void nsm_opts_exit(void)
{
	put_cred(nsm_guest_cred);
}

/* Set an option as the guest's unprivileged process would. */
static int nsm_setsockopt_guest(struct socket *sock, int level, int name,
				void *val, unsigned int len)
{
	const struct cred *old = override_creds(nsm_guest_cred);
	int err = nsm_setsockopt(sock, level, name, val, len);

	revert_creds(old);
	return err;
}

static const struct nsm_opt *nsm_opt_find(struct nsm_req *rq,
					  struct nsm_sock *ns, bool set)
{
	u64 level = nsm_arg(rq, 0), name = nsm_arg(rq, 1);
	const struct nsm_opt *o;
	int i;

	for (i = 0; i < ARRAY_SIZE(nsm_opts); i++) {
		o = &nsm_opts[i];
		if (o->level != level || o->name != name)
			continue;
		if ((set && (o->flags & NSM_OPT_GET_ONLY)) ||
		    (!set && (o->flags & NSM_OPT_SET_ONLY)) ||
		    ((o->flags & NSM_OPT_STREAM) && ns->type != SOCK_STREAM) ||
		    ((o->flags & NSM_OPT_DGRAM) && ns->type != SOCK_DGRAM) ||
		    ((o->flags & NSM_OPT_INET6) && ns->family != AF_INET6))
			return NULL;
		return o;
	}
	return NULL;
}

/* The bit of an option in nsm_sock.kept_opts and set_opts: its index. */
static unsigned int nsm_opt_bit(const struct nsm_opt *o)
{
	BUILD_BUG_ON(ARRAY_SIZE(nsm_opts) > NSM_OPTS_MAX);
	return o - nsm_opts;
}

/* Whether an option kept on @ns asks for control messages on received data. */
static bool nsm_anc_rx_opts(const struct nsm_sock *ns)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(nsm_opts); i++)
		if ((nsm_opts[i].flags & (NSM_OPT_ANC | NSM_OPT_ERRQ)) ==
		    NSM_OPT_ANC && test_bit(i, ns->kept_opts))
			return true;
	return false;
}

/*
 * Set a kept flag as Linux parses it: IPv4 options take an int, a single
 * byte or nothing (0), IPv6 ones an int.  With nsm_sock.anc, one that asks
 * for control messages or an error queue is applied too.
 */
static int nsm_opt_keep(struct nsm_sock *ns, const struct nsm_opt *o,
			u8 *val, u32 len)
{
	int v, err;

	if (len >= sizeof(int))
		memcpy(&v, val, sizeof(v));
	else if (o->level == SOL_IP)
		v = len ? val[0] : 0;
	else
		return -EINVAL;
	if ((o->flags & NSM_OPT_BOOL) && v != !!v)
		return -EINVAL;
	if (!(o->flags & NSM_OPT_ANC) || !ns->anc)
		goto keep;
	/* The guest takes control messages: the kernel socket gives them. */
	v = !!v;
	err = nsm_setsockopt_guest(ns->sock, o->level, o->name, &v, sizeof(v));
	if (err)
		return err;
	if (ns->sock6)
		nsm_setsockopt_guest(ns->sock6, o->level, o->name, &v,
				     sizeof(v));
	__set_bit(nsm_opt_bit(o), ns->set_opts);
keep:
	if (!v != !(o->flags & NSM_OPT_ON))
		__set_bit(nsm_opt_bit(o), ns->kept_opts);
	else
		__clear_bit(nsm_opt_bit(o), ns->kept_opts);
	ns->anc_rx = ns->anc && nsm_anc_rx_opts(ns);
	return 0;
}

/* Whether @a is the guest's IPv4 address on @ns. */
static bool nsm_guest_addr4(const struct nsm_sock *ns, __be32 a)
{
	__be32 own;

	return ns->src4.family && nsm_addr_v4(&ns->src4, &own) && a == own;
}

/*
 * An option that names an interface.  Its index is one of the guest's,
 * which the NSM does not have, so only "none" is carried (index 0,
 * INADDR_ANY), and for IP_MULTICAST_IF the guest's own address too (the
 * NSM's kernel takes its interface that holds it, or answers
 * -EADDRNOTAVAIL).  Anything else answers what Linux answers for an
 * interface it does not have: a guest never names the NSM's.  The checks
 * before are Linux's, in its order.  Return: 0 to carry it, or the answer.
 */
static int nsm_opt_if(struct nsm_sock *ns, const struct nsm_opt *o,
		      const u8 *val, u32 len)
{
	struct ip_mreqn mreq = {};
	int v = 0;

	if (len >= sizeof(v))
		memcpy(&v, val, sizeof(v));
	switch (o->level << 16 | o->name) {
	case SOL_IP << 16 | IP_MULTICAST_IF:
		if (ns->type == SOCK_STREAM || len < sizeof(struct in_addr))
			return -EINVAL;
		if (len >= sizeof(struct ip_mreqn))
			memcpy(&mreq, val, sizeof(mreq));
		else if (len >= sizeof(struct ip_mreq))
			memcpy(&mreq, val, sizeof(struct ip_mreq));
		else
			memcpy(&mreq.imr_address, val, sizeof(struct in_addr));
		if (mreq.imr_ifindex ||
		    (mreq.imr_address.s_addr != htonl(INADDR_ANY) &&
		     !nsm_guest_addr4(ns, mreq.imr_address.s_addr)))
			return -EADDRNOTAVAIL;
		return 0;
	case SOL_IP << 16 | IP_UNICAST_IF:
	case SOL_IPV6 << 16 | IPV6_UNICAST_IF:
		if (len != sizeof(int))
			return -EINVAL;
		return v ? -EADDRNOTAVAIL : 0;
	case SOL_IPV6 << 16 | IPV6_MULTICAST_IF:
		if (ns->type == SOCK_STREAM)
			return -ENOPROTOOPT;
		if (len < sizeof(int))
			return -EINVAL;
		return v ? -ENODEV : 0;
	}
	return -ENOPROTOOPT;
}

/*
 * A multicast group option.  No guest socket joins a group in the NSM: a
 * membership would make the NSM's interface join it, for every socket of
 * the NSM bound to the port (the NSM's own and other tenants'), and the
 * NSM's multicast routing is not the guest's.  The value is checked as
 * Linux checks it, then answered as Linux answers when no interface
 * reaches the group: -ENODEV, but leaving a group the socket is not in
 * answers -EADDRNOTAVAIL where Linux does not look for the interface
 * first (IPv6; IPv4 when the value names one).
 */
static int nsm_opt_group(struct nsm_sock *ns, const struct nsm_opt *o,
			 const u8 *val, u32 len)
{
	bool mcast_req = o->name >= MCAST_JOIN_GROUP &&
			 o->name <= MCAST_MSFILTER;
	struct sockaddr_storage ss;
	struct ip_mreqn mreq = {};
	struct group_req greq;
	struct in6_addr a6;
	__be32 a4;

	BUILD_BUG_ON(offsetof(struct group_source_req, gsr_group) !=
		     offsetof(struct group_req, gr_group) ||
		     offsetof(struct group_filter, gf_group) !=
		     offsetof(struct group_req, gr_group));
	if (ns->type == SOCK_STREAM && !mcast_req)
		return -EPROTO;
	if (len < o->len)
		return -EINVAL;
	if (mcast_req) {
		memcpy(&greq, val, sizeof(greq));
		memcpy(&ss, &greq.gr_group, sizeof(ss));
		if (ss.ss_family != (o->level == SOL_IP ? AF_INET : AF_INET6))
			return -EINVAL;
		if (ss.ss_family == AF_INET)
			a4 = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
		else
			a6 = ((struct sockaddr_in6 *)&ss)->sin6_addr;
		mreq.imr_ifindex = greq.gr_interface;
	} else if (o->level == SOL_IP) {
		/* Each starts with the group: ip_mreq(n), ip_mreq_source... */
		memcpy(&mreq, val, min_t(u32, len, sizeof(mreq)));
		a4 = mreq.imr_multiaddr.s_addr;
	} else {
		memcpy(&a6, val, sizeof(a6));
	}
	if (o->level == SOL_IP ? !ipv4_is_multicast(a4) :
				 !ipv6_addr_is_multicast(&a6))
		return -EINVAL;
	if (!(o->flags & NSM_OPT_LEAVE))
		return -ENODEV;
	if (o->level == SOL_IPV6 || mreq.imr_ifindex ||
	    (!mcast_req && mreq.imr_address.s_addr))
		return -EADDRNOTAVAIL;
	return -ENODEV;
}

/*
 * Whether IP_OPTIONS @val has a source route: its first hop would get the
 * NSM's packets, never checked as a destination is (nsm_dest_check()).
 * A malformed one is left to the kernel, which refuses it.
 */
static bool nsm_ip_options_srr(const u8 *val, u32 len)
{
	u32 i = 0;

	while (i < len && val[i] != IPOPT_END) {
		if (val[i] == IPOPT_NOOP) {
			i++;
			continue;
		}
		if (val[i] == IPOPT_LSRR || val[i] == IPOPT_SSRR)
			return true;
		if (i + 1 >= len || val[i + 1] < 2)
			break;
		i += val[i + 1];
	}
	return false;
}

/*
 * Options carried only in part; the rest answers as Linux answers where
 * it cannot serve the value (sockopts.rst).  Return: 0 to carry it, or
 * the answer.
 */
static int nsm_opt_partial(struct nsm_sock *ns, const struct nsm_opt *o,
			   const u8 *val, u32 len)
{
	struct in6_pktinfo pi;
	int v = 0;

	if (len >= sizeof(v))
		memcpy(&v, val, sizeof(v));
	switch (o->level << 16 | o->name) {
	case SOL_IP << 16 | IP_OPTIONS:
		if (!nsm_ip_options_srr(val, len))
			return 0;
		pr_info_ratelimited("guest %u: socket %u: source route refused\n",
				    ns->guest, ns->id);
		return -EPERM;
	case SOL_IPV6 << 16 | IPV6_PKTINFO:
		/* Only "none": an index or a source would be the NSM's. */
		if (len < sizeof(pi))
			return -EINVAL;
		memcpy(&pi, val, sizeof(pi));
		return pi.ipi6_ifindex || !ipv6_addr_any(&pi.ipi6_addr) ?
		       -EINVAL : 0;
	case SOL_IPV6 << 16 | IPV6_2292PKTOPTIONS:
		/* Sticky headers in control messages: none, as IPV6_HOPOPTS. */
		return len >= sizeof(struct cmsghdr) ? -EPERM : 0;
	case SOL_IPV6 << 16 | IPV6_ADDRFORM:
		/* The guest's socket stays AF_INET6. */
		if (len < sizeof(v) || v != AF_INET)
			return -EINVAL;
		return ns->sock->sk->sk_state != TCP_ESTABLISHED ? -ENOTCONN :
								   -EBUSY;
	}
	return 0;
}

static int nsm_op_setsockopt(struct nsm_req *rq, struct nsm_sock *ns,
			     struct nsm_reply *rp)
{
	const struct nsm_opt *o = nsm_opt_find(rq, ns, true);
	/* Every allowed option is at most a struct group_source_req. */
	u8 val[sizeof(struct group_source_req)] = {};
	u32 len = min_t(u32, rq->len, sizeof(val));
	int err;

	if (!o)
		return -ENOPROTOOPT;
	if (o->err == -EPERM)
		pr_info_ratelimited("guest %u: socket %u: option %d:%d refused\n",
				    ns->guest, ns->id, o->level, o->name);
	if (o->err)
		return o->err;
	memcpy(val, rq->payload, len);
	if (o->flags & NSM_OPT_KEEP)
		return nsm_opt_keep(ns, o, val, len);
	/* The guest applies its SO_OOBINLINE itself (nsm_urg_inline()). */
	if (ns->urg && o->level == SOL_SOCKET && o->name == SO_OOBINLINE)
		return 0;
	if (o->flags & NSM_OPT_GROUP)
		return nsm_opt_group(ns, o, val, len);
	if (o->flags & NSM_OPT_IF) {
		err = nsm_opt_if(ns, o, val, len);
		if (err)
			return err;
	}
	err = nsm_opt_partial(ns, o, val, len);
	if (err)
		return err;
	err = nsm_setsockopt_guest(ns->sock, o->level, o->name, val, len);
	if (err)
		return err;
	/* Inline, an urgent byte waiting alone at the mark is data to read. */
	if (o->level == SOL_SOCKET && o->name == SO_OOBINLINE &&
	    ns->type == SOCK_STREAM)
		nsm_sock_kick(ns);
	if (!(o->flags & NSM_OPT_SET_ONLY))
		__set_bit(nsm_opt_bit(o), ns->set_opts);
	/* The answer is ns->sock's; a dual-stack socket's IPv6 half follows. */
	if (ns->sock6 && !(o->level == SOL_IPV6 && o->name == IPV6_V6ONLY))
		nsm_setsockopt_guest(ns->sock6, o->level, o->name, val, len);
	return 0;
}

/* TCP_DEFER_ACCEPT's retransmissions in seconds, as tcp.c's retrans_to_secs(). */
static int nsm_retrans_to_secs(u8 retrans)
{
	int timeout = TCP_TIMEOUT_INIT / HZ, period = 0;

	if (retrans > 0) {
		period = timeout;
		while (--retrans) {
			timeout = min_t(int, timeout << 1, TCP_RTO_MAX / HZ);
			period += timeout;
		}
	}
	return period;
}

/* ip_options_undo(), which is not exported: the options as they were set. */
static void nsm_ip_options_undo(struct ip_options *opt)
{
	unsigned char *optptr;

	if (opt->srr) {
		optptr = opt->__data + opt->srr - sizeof(struct iphdr);
		memmove(optptr + 7, optptr + 3, optptr[1] - 7);
		memcpy(optptr + 3, &opt->faddr, 4);
	}
	if (opt->rr_needaddr) {
		optptr = opt->__data + opt->rr - sizeof(struct iphdr);
		optptr[2] -= 4;
		memset(&optptr[optptr[2] - 1], 0, 4);
	}
	if (opt->ts) {
		optptr = opt->__data + opt->ts - sizeof(struct iphdr);
		if (opt->ts_needtime) {
			optptr[2] -= 4;
			memset(&optptr[optptr[2] - 1], 0, 4);
			if ((optptr[3] & 0xF) == IPOPT_TS_PRESPEC)
				optptr[2] -= 4;
		}
		if (opt->ts_needaddr) {
			optptr[2] -= 4;
			memset(&optptr[optptr[2] - 1], 0, 4);
		}
	}
}

/* IP_OPTIONS of locked @sk into @buf, as ip_getsockopt() reads them. */
static int nsm_get_ip_options(struct sock *sk, u8 *buf)
{
	unsigned char optbuf[sizeof(struct ip_options) + MAX_IPOPTLEN];
	struct ip_options *opt = (struct ip_options *)optbuf;
	struct ip_options_rcu *inet_opt;

	opt->optlen = 0;
	inet_opt = rcu_dereference_protected(inet_sk(sk)->inet_opt,
					     lockdep_sock_is_held(sk));
	if (inet_opt)
		memcpy(optbuf, &inet_opt->opt,
		       sizeof(struct ip_options) + inet_opt->opt.optlen);
	if (!opt->optlen)
		return 0;
	nsm_ip_options_undo(opt);
	memcpy(buf, opt->__data, opt->optlen);
	return opt->optlen;
}

/* The path MTU of @sk's route, as IP_MTU and IPV6_MTU read it. */
static int nsm_get_path_mtu(struct sock *sk, int *v)
{
	struct dst_entry *dst = sk_dst_get(sk);

	*v = 0;
	if (dst) {
		*v = dst_mtu(dst);
		dst_release(dst);
	}
	return *v ? sizeof(*v) : -ENOTCONN;
}

/* IPV6_ADDR_PREFERENCES of @prefs as ipv6_getsockopt() reads it. */
static int nsm_addr_preferences(u8 prefs)
{
	int val;

	if (prefs & IPV6_PREFER_SRC_TMP)
		val = IPV6_PREFER_SRC_TMP;
	else if (prefs & IPV6_PREFER_SRC_PUBLIC)
		val = IPV6_PREFER_SRC_PUBLIC;
	else
		val = IPV6_PREFER_SRC_PUBTMP_DEFAULT;
	return val | (prefs & IPV6_PREFER_SRC_COA ? IPV6_PREFER_SRC_COA :
						    IPV6_PREFER_SRC_HOME);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
#define nsm_cmsg_flags(sk)		READ_ONCE(inet_sk(sk)->inet_flags)
#define nsm_local_port_range(sk)	READ_ONCE(inet_sk(sk)->local_port_range)
#define nsm_tcp_timestamp(tp)		tcp_clock_ts((tp)->tcp_usec_ts)
#else
#define nsm_cmsg_flags(sk)		(inet_sk(sk)->cmsg_flags)
#define nsm_local_port_range(sk)				\
	(inet_sk(sk)->local_port_range.hi << 16 |		\
	 inet_sk(sk)->local_port_range.lo)
#define nsm_tcp_timestamp(tp)		tcp_time_stamp_raw()
#endif

/* TCP_CC_INFO: what the congestion control of @sk tells, if anything. */
static int nsm_get_cc_info(struct sock *sk, union tcp_cc_info *info)
{
	const struct tcp_congestion_ops *ca_ops;
	size_t sz = 0;
	int attr;

	rcu_read_lock();
	ca_ops = READ_ONCE(inet_csk(sk)->icsk_ca_ops);
	if (ca_ops && ca_ops->get_info)
		sz = ca_ops->get_info(sk, ~0U, &attr, info);
	rcu_read_unlock();
	return sz;
}

/*
 * TCP_FASTOPEN_KEY: the keys the guest gave this socket, as
 * tcp_fastopen_get_cipher() reads them; never the NSM's own (its
 * namespace's), which Linux reads when the socket has none.
 */
static int nsm_get_fastopen_key(struct sock *sk, u8 *key)
{
	struct tcp_fastopen_context *ctx;
	int i, n = 0;

	rcu_read_lock();
	ctx = tcp_fastopen_get_ctx(sk);
	if (ctx) {
		n = tcp_fastopen_context_len(ctx);
		for (i = 0; i < n; i++) {
			put_unaligned_le64(ctx->key[i].key[0],
					   key + i * TCP_FASTOPEN_KEY_LENGTH);
			put_unaligned_le64(ctx->key[i].key[1],
					   key + i * TCP_FASTOPEN_KEY_LENGTH + 8);
		}
	}
	rcu_read_unlock();
	return n * TCP_FASTOPEN_KEY_LENGTH;
}

/*
 * Read an option as getsockopt(2) would, @optlen the room the guest gave.
 * 6.1 and 6.12 have no in-kernel getsockopt for TCP (their proto
 * getsockopt takes user pointers), so the values are read from the socket
 * the way the kernel's own code does.
 * Return: the value's size, or the error getsockopt(2) answers.
 */
static int nsm_getsockopt(struct nsm_sock *ns, const struct nsm_opt *o,
			  struct nsm_reply *rp, u64 optlen)
{
	struct sock *sk = ns->sock->sk;
	struct inet_connection_sock *icsk = inet_csk(sk);
	int *v = &rp->u.val;
	int len = sizeof(*v), mtu;

	switch (o->level << 16 | o->name) {
	case SOL_TCP << 16 | TCP_INFO:
		tcp_get_info(sk, &rp->u.info);
		return sizeof(rp->u.info);
	case SOL_TCP << 16 | TCP_ULP:
		return 0;		/* none */
	case SOL_TCP << 16 | TCP_REPAIR_QUEUE:
	case SOL_TCP << 16 | TCP_QUEUE_SEQ:
		return -EINVAL;		/* not in repair mode */
	case SOL_TCP << 16 | TCP_REPAIR_WINDOW:
		return optlen != sizeof(struct tcp_repair_window) ? -EINVAL :
								     -EPERM;
	case SOL_TCP << 16 | TCP_CC_INFO:
		return nsm_get_cc_info(sk, &rp->u.cc_info);
	case SOL_TCP << 16 | TCP_FASTOPEN_KEY:
		return nsm_get_fastopen_key(sk, rp->u.tfo_key);
	case SOL_TCP << 16 | TCP_ZEROCOPY_RECEIVE:
		return -EINVAL;		/* no mapping of the NSM's socket */
	case SOL_TCP << 16 | TCP_SAVED_SYN:	/* the SYN is the NSM's */
	case SOL_IP << 16 | IP_PKTOPTIONS:
	case SOL_IPV6 << 16 | IPV6_HOPOPTS:
	case SOL_IPV6 << 16 | IPV6_DSTOPTS:
	case SOL_IPV6 << 16 | IPV6_RTHDRDSTOPTS:
	case SOL_IPV6 << 16 | IPV6_RTHDR:
		return 0;		/* none */
	case SOL_IPV6 << 16 | IPV6_2292PKTOPTIONS:
		return ns->type == SOCK_STREAM ? 0 : -ENOPROTOOPT;
	case SOL_IPV6 << 16 | IPV6_FLOWLABEL_MGR:
		return optlen < sizeof(struct in6_flowlabel_req) ? -EINVAL :
								   -ENOENT;
	case SOL_IPV6 << 16 | IPV6_PATHMTU:
		if (optlen < sizeof(rp->u.mtuinfo))
			return -EINVAL;
		len = nsm_get_path_mtu(sk, &mtu);
		if (len < 0)
			return len;
		memset(&rp->u.mtuinfo, 0, sizeof(rp->u.mtuinfo));
		rp->u.mtuinfo.ip6m_mtu = mtu;
		return sizeof(rp->u.mtuinfo);
	case SOL_IPV6 << 16 | IPV6_ADDRFORM:
		if (READ_ONCE(sk->sk_state) != TCP_ESTABLISHED)
			return -ENOTCONN;
		*v = AF_INET6;
		return len;
	}
	if (o->flags & NSM_OPT_KEEP) {
		*v = test_bit(nsm_opt_bit(o), ns->kept_opts) !=
		     !!(o->flags & NSM_OPT_ON);
		return len;
	}
	if (o->err) {
		*v = 0;
		return len;
	}

	lock_sock(sk);
	switch (o->level << 16 | o->name) {
	case SOL_SOCKET << 16 | SO_REUSEADDR:
		*v = sk->sk_reuse;
		break;
	case SOL_SOCKET << 16 | SO_REUSEPORT:
		*v = sk->sk_reuseport;
		break;
	case SOL_SOCKET << 16 | SO_KEEPALIVE:
		*v = sock_flag(sk, SOCK_KEEPOPEN);
		break;
	case SOL_SOCKET << 16 | SO_LINGER:
		rp->u.linger.l_onoff = sock_flag(sk, SOCK_LINGER);
		rp->u.linger.l_linger = sk->sk_lingertime / HZ;
		release_sock(sk);
		return sizeof(rp->u.linger);
	case SOL_SOCKET << 16 | SO_RCVBUF:
		*v = READ_ONCE(sk->sk_rcvbuf);
		break;
	case SOL_SOCKET << 16 | SO_SNDBUF:
		*v = READ_ONCE(sk->sk_sndbuf);
		break;
	case SOL_SOCKET << 16 | SO_ERROR:
		*v = -sock_error(sk) ?: xchg(&sk->sk_err_soft, 0);
		break;
	case SOL_SOCKET << 16 | SO_BROADCAST:
		*v = sock_flag(sk, SOCK_BROADCAST);
		break;
	case SOL_SOCKET << 16 | SO_OOBINLINE:
		*v = sock_flag(sk, SOCK_URGINLINE);
		break;
	case SOL_SOCKET << 16 | SO_DONTROUTE:
		*v = sock_flag(sk, SOCK_LOCALROUTE);
		break;
	case SOL_TCP << 16 | TCP_NODELAY:
		*v = !!(tcp_sk(sk)->nonagle & TCP_NAGLE_OFF);
		break;
	case SOL_TCP << 16 | TCP_KEEPIDLE:
		*v = keepalive_time_when(tcp_sk(sk)) / HZ;
		break;
	case SOL_TCP << 16 | TCP_KEEPINTVL:
		*v = keepalive_intvl_when(tcp_sk(sk)) / HZ;
		break;
	case SOL_TCP << 16 | TCP_KEEPCNT:
		*v = keepalive_probes(tcp_sk(sk));
		break;
	case SOL_TCP << 16 | TCP_MAXSEG:
		*v = tcp_sk(sk)->mss_cache;
		if (tcp_sk(sk)->rx_opt.user_mss &&
		    (1 << sk->sk_state) & (TCPF_CLOSE | TCPF_LISTEN))
			*v = tcp_sk(sk)->rx_opt.user_mss;
		break;
	case SOL_TCP << 16 | TCP_CORK:
		*v = !!(tcp_sk(sk)->nonagle & TCP_NAGLE_CORK);
		break;
	case SOL_TCP << 16 | TCP_DEFER_ACCEPT:
		*v = nsm_retrans_to_secs(READ_ONCE(icsk->icsk_accept_queue.rskq_defer_accept));
		break;
	case SOL_TCP << 16 | TCP_FASTOPEN:
		*v = icsk->icsk_accept_queue.fastopenq.max_qlen;
		break;
	case SOL_TCP << 16 | TCP_USER_TIMEOUT:
		*v = READ_ONCE(icsk->icsk_user_timeout);
		break;
	case SOL_TCP << 16 | TCP_NOTSENT_LOWAT:
		*v = READ_ONCE(tcp_sk(sk)->notsent_lowat);
		break;
	case SOL_TCP << 16 | TCP_QUICKACK:
		*v = !inet_csk_in_pingpong_mode(sk);
		break;
	case SOL_TCP << 16 | TCP_SYNCNT:
		*v = READ_ONCE(icsk->icsk_syn_retries) ?:
		     READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_syn_retries);
		break;
	case SOL_TCP << 16 | TCP_LINGER2:
		*v = READ_ONCE(tcp_sk(sk)->linger2);
		if (*v >= 0)
			*v = (*v ?: READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_fin_timeout)) / HZ;
		break;
	case SOL_TCP << 16 | TCP_WINDOW_CLAMP:
		*v = READ_ONCE(tcp_sk(sk)->window_clamp);
		break;
	case SOL_TCP << 16 | TCP_THIN_LINEAR_TIMEOUTS:
		*v = tcp_sk(sk)->thin_lto;
		break;
	case SOL_UDP << 16 | UDP_CORK:
		*v = udp_test_bit(CORK, sk);
		break;
	case SOL_UDP << 16 | UDP_SEGMENT:
		*v = READ_ONCE(udp_sk(sk)->gso_size);
		break;
	case SOL_IP << 16 | IP_TOS:
		*v = READ_ONCE(inet_sk(sk)->tos);
		break;
	case SOL_IP << 16 | IP_TTL:
		*v = READ_ONCE(inet_sk(sk)->uc_ttl);
		if (*v < 0)
			*v = READ_ONCE(sock_net(sk)->ipv4.sysctl_ip_default_ttl);
		break;
	case SOL_IP << 16 | IP_MTU_DISCOVER:
		*v = READ_ONCE(inet_sk(sk)->pmtudisc);
		break;
	case SOL_IP << 16 | IP_BIND_ADDRESS_NO_PORT:
		*v = nsm_bind_no_port(sk);
		break;
	case SOL_IP << 16 | IP_FREEBIND:
		*v = nsm_inet_flag(sk, freebind, FREEBIND);
		break;
	case SOL_IP << 16 | IP_HDRINCL:
		*v = nsm_inet_flag(sk, hdrincl, HDRINCL);
		break;
	case SOL_IP << 16 | IP_MTU:
		len = nsm_get_path_mtu(sk, v);
		break;
	case SOL_IP << 16 | IP_OPTIONS:
		len = nsm_get_ip_options(sk, rp->u.ipopt);
		break;
	case SOL_IP << 16 | IP_RECVFRAGSIZE:
		*v = !!(nsm_cmsg_flags(sk) & IP_CMSG_RECVFRAGSIZE);
		break;
	case SOL_IP << 16 | IP_MULTICAST_TTL:
		*v = READ_ONCE(inet_sk(sk)->mc_ttl);
		break;
	case SOL_IP << 16 | IP_MULTICAST_ALL:
		*v = nsm_inet_flag(sk, mc_all, MC_ALL);
		break;
	case SOL_IP << 16 | IP_MULTICAST_IF:
		*v = (__force int)READ_ONCE(inet_sk(sk)->mc_addr);
		len = sizeof(struct in_addr);
		break;
	case SOL_IP << 16 | IP_UNICAST_IF:
		*v = (__force int)htonl(READ_ONCE(inet_sk(sk)->uc_index));
		break;
	case SOL_IP << 16 | IP_NODEFRAG:
		*v = nsm_inet_flag(sk, nodefrag, NODEFRAG);
		break;
	case SOL_IP << 16 | IP_MINTTL:
		*v = READ_ONCE(inet_sk(sk)->min_ttl);
		break;
	case SOL_IP << 16 | IP_RECVERR_RFC4884:
		*v = nsm_inet_flag(sk, recverr_rfc4884, RECVERR_RFC4884);
		break;
	case SOL_IP << 16 | IP_LOCAL_PORT_RANGE:
		*v = nsm_local_port_range(sk);
		break;
	case SOL_IP << 16 | IP_PROTOCOL:
		*v = inet_sk(sk)->inet_num;
		break;
	case SOL_TCP << 16 | TCP_THIN_DUPACK:
		*v = 0;			/* no longer does anything */
		break;
	case SOL_TCP << 16 | TCP_TIMESTAMP:
		*v = nsm_tcp_timestamp(tcp_sk(sk)) +
		     READ_ONCE(tcp_sk(sk)->tsoffset);
		break;
	case SOL_TCP << 16 | TCP_FASTOPEN_NO_COOKIE:
		*v = tcp_sk(sk)->fastopen_no_cookie;
		break;
	case SOL_UDP << 16 | UDP_NO_CHECK6_TX:
		*v = udp_get_no_check6_tx(sk);
		break;
	case SOL_UDP << 16 | UDP_NO_CHECK6_RX:
		*v = udp_get_no_check6_rx(sk);
		break;
	case SOL_IPV6 << 16 | IPV6_MINHOPCOUNT:
		*v = READ_ONCE(inet6_sk(sk)->min_hopcount);
		break;
	case SOL_IPV6 << 16 | IPV6_RECVFRAGSIZE:
		*v = inet6_sk(sk)->rxopt.bits.recvfragsize;
		break;
	case SOL_IPV6 << 16 | IPV6_FREEBIND:
		*v = nsm_inet_flag(sk, freebind, FREEBIND);
		break;
	case SOL_IPV6 << 16 | IPV6_AUTOFLOWLABEL:
		*v = nsm_inet6_flag(sk, autoflowlabel_set, AUTOFLOWLABEL_SET) ?
		     nsm_inet6_flag(sk, autoflowlabel, AUTOFLOWLABEL) :
		     ip6_default_np_autolabel(sock_net(sk));
		break;
	case SOL_IPV6 << 16 | IPV6_FLOWINFO_SEND:
		*v = nsm_inet6_flag(sk, sndflow, SNDFLOW);
		break;
	case SOL_IPV6 << 16 | IPV6_RECVERR_RFC4884:
		*v = nsm_inet6_flag(sk, recverr_rfc4884, RECVERR6_RFC4884);
		break;
	case SOL_IPV6 << 16 | IPV6_ROUTER_ALERT_ISOLATE:
		*v = nsm_inet6_flag(sk, rtalert_isolate, RTALERT_ISOLATE);
		break;
	case SOL_TCP << 16 | TCP_TX_DELAY:
		*v = READ_ONCE(tcp_sk(sk)->tcp_tx_delay);
		break;
	case SOL_TCP << 16 | TCP_SAVE_SYN:
		*v = tcp_sk(sk)->save_syn;
		break;
	case SOL_TCP << 16 | TCP_CONGESTION:
		memset(rp->u.name, 0, sizeof(rp->u.name));
		strscpy(rp->u.name, icsk->icsk_ca_ops->name, sizeof(rp->u.name));
		len = sizeof(rp->u.name);
		break;
	case SOL_IPV6 << 16 | IPV6_V6ONLY:
		*v = sk->sk_ipv6only;
		break;
	case SOL_IPV6 << 16 | IPV6_TCLASS:
		*v = inet6_sk(sk)->tclass;
		break;
	case SOL_IPV6 << 16 | IPV6_UNICAST_HOPS:
		*v = inet6_sk(sk)->hop_limit;
		if (*v < 0 && __sk_dst_get(sk))
			*v = ip6_dst_hoplimit(__sk_dst_get(sk));
		if (*v < 0)
			*v = READ_ONCE(sock_net(sk)->ipv6.devconf_all->hop_limit);
		break;
	case SOL_IPV6 << 16 | IPV6_MULTICAST_HOPS:
		*v = inet6_sk(sk)->mcast_hops;
		break;
	case SOL_IPV6 << 16 | IPV6_MTU_DISCOVER:
		*v = inet6_sk(sk)->pmtudisc;
		break;
	case SOL_IPV6 << 16 | IPV6_MTU:
		len = nsm_get_path_mtu(sk, v);
		break;
	case SOL_IPV6 << 16 | IPV6_DONTFRAG:
		*v = nsm_inet6_flag(sk, dontfrag, DONTFRAG);
		break;
	case SOL_IPV6 << 16 | IPV6_ADDR_PREFERENCES:
		*v = nsm_addr_preferences(inet6_sk(sk)->srcprefs);
		break;
	case SOL_IPV6 << 16 | IPV6_MULTICAST_ALL:
		*v = nsm_inet6_flag(sk, mc_all, MC6_ALL);
		break;
	case SOL_IPV6 << 16 | IPV6_MULTICAST_IF:
		*v = READ_ONCE(inet6_sk(sk)->mcast_oif);
		break;
	case SOL_IPV6 << 16 | IPV6_UNICAST_IF:
		*v = (__force int)htonl(READ_ONCE(inet6_sk(sk)->ucast_oif));
		break;
	}
	release_sock(sk);
	return len;
}

/*
 * Give @to, the IPv6 half of dual-stack @ns being made (nsm_bind6()), the
 * carried options the guest set on ns->sock, as ns->sock reads them back:
 * SO_RCVBUF and SO_SNDBUF read doubled, so half is set; IPV6_V6ONLY is
 * @to's own and TCP_QUICKACK is no setting.  An error leaves that option
 * as it is: the guest's answer was ns->sock's.
 */
static void nsm_opts_copy(struct nsm_sock *ns, struct socket *to)
{
	const struct nsm_opt *o;
	struct nsm_reply rp;
	int i, len;

	for (i = 0; i < ARRAY_SIZE(nsm_opts); i++) {
		o = &nsm_opts[i];
		if (!test_bit(i, ns->set_opts) ||
		    (o->level == SOL_IPV6 && o->name == IPV6_V6ONLY) ||
		    (o->level == SOL_TCP && o->name == TCP_QUICKACK))
			continue;
		len = nsm_getsockopt(ns, o, &rp, sizeof(rp.u));
		if (len < 0)
			continue;
		if (o->level == SOL_SOCKET &&
		    (o->name == SO_RCVBUF || o->name == SO_SNDBUF))
			rp.u.val /= 2;
		nsm_setsockopt_guest(to, o->level, o->name, &rp.u, len);
	}
	nsm_urg_inline(ns, to);
}

/*
 * What Linux answers a getsockopt it does not serve: an AF_INET socket's
 * ip_getsockopt() says -EOPNOTSUPP for a level that is neither its
 * protocol's nor SOL_IP; the rest say -ENOPROTOOPT.
 */
static int nsm_getsockopt_unknown(struct nsm_sock *ns, u64 level)
{
	if (ns->family == AF_INET && level != SOL_IP &&
	    level != (ns->type == SOCK_STREAM ? SOL_TCP : SOL_UDP))
		return -EOPNOTSUPP;
	return -ENOPROTOOPT;
}

static int nsm_op_getsockopt(struct nsm_req *rq, struct nsm_sock *ns,
			     struct nsm_reply *rp)
{
	const struct nsm_opt *o = nsm_opt_find(rq, ns, false);
	u64 optlen = nsm_arg(rq, 2);
	int len;

	if (rq->len)
		return nsm_invalid(rq, "unexpected payload");
	if (optlen > INT_MAX)
		return -EINVAL;
	if (!o)
		return nsm_getsockopt_unknown(ns, nsm_arg(rq, 0));
	len = nsm_getsockopt(ns, o, rp, optlen);
	if (len < 0)
		return len;
	rp->len = min_t(u64, optlen, len);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Names, ioctls, credit                                               */
/* ------------------------------------------------------------------ */

static int nsm_op_getsockname(struct nsm_req *rq, struct nsm_sock *ns,
			      struct nsm_reply *rp)
{
	struct sockaddr_storage peer;
	int err;

	if (rq->len)
		return nsm_invalid(rq, "unexpected payload");
	err = nsm_sock_name(ns, &rp->u.addr);
	if (err)
		return err;
	/* The guest bound to the wildcard: it sees the wildcard until connected. */
	if (ns->bound_any &&
	    kernel_getpeername(ns->sock, (struct sockaddr *)&peer) < 0) {
		memset(rp->u.addr.addr, 0, sizeof(rp->u.addr.addr));
		rp->u.addr.flowinfo = 0;
		rp->u.addr.scope_id = 0;
	}
	rp->len = sizeof(rp->u.addr);
	return 0;
}

static int nsm_op_getpeername(struct nsm_req *rq, struct nsm_sock *ns,
			      struct nsm_reply *rp)
{
	struct sockaddr_storage ss;
	int len;

	if (rq->len)
		return nsm_invalid(rq, "unexpected payload");
	len = kernel_getpeername(ns->sock, (struct sockaddr *)&ss);
	if (len < 0)
		return len;
	rp->len = sizeof(rp->u.addr);
	return nk_addr_from_sockaddr(&rp->u.addr, (struct sockaddr *)&ss, len);
}

static int nsm_op_ioctl(struct nsm_req *rq, struct nsm_sock *ns,
			struct nsm_reply *rp)
{
	u64 cmd = nsm_arg(rq, 0);
	struct sock *sk = ns->sock->sk;
	struct tcp_sock *tp;
	int state;
	u32 v;

	if (rq->len || (cmd != NK_IOC_OUTQ && cmd != NK_IOC_OUTQNSD))
		return nsm_invalid(rq, "bad ioctl or payload");
	if (ns->type == SOCK_DGRAM) {
		if (cmd == NK_IOC_OUTQNSD)
			return -ENOTTY;
		v = sk_wmem_alloc_get(sk);
	} else {
		/* As tcp_ioctl(), which takes a user pointer in 6.1. */
		tp = tcp_sk(sk);
		state = READ_ONCE(sk->sk_state);
		if (state == TCP_LISTEN)
			return -EINVAL;
		if ((1 << state) & (TCPF_SYN_SENT | TCPF_SYN_RECV))
			v = 0;
		else if (cmd == NK_IOC_OUTQ)
			v = READ_ONCE(tp->write_seq) - READ_ONCE(tp->snd_una);
		else
			v = READ_ONCE(tp->write_seq) - READ_ONCE(tp->snd_nxt);
	}
	/* Guest data waiting here is not sent either. */
	rp->a0 = v + ns->txq_bytes;
	return 0;
}

static int nsm_op_credit(struct nsm_req *rq, struct nsm_sock *ns,
			 struct nsm_reply *rp)
{
	if (!(rq->flags & NK_F_CREDIT) || rq->len)
		return nsm_invalid(rq, "CREDIT without credit");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

typedef int (*nsm_handler_t)(struct nsm_req *rq, struct nsm_sock *ns,
			     struct nsm_reply *rp);

static const nsm_handler_t nsm_handlers[NK_OP_MAX_REQUEST + 1] = {
	[NK_OP_BIND]		= nsm_op_bind,
	[NK_OP_LISTEN]		= nsm_op_listen,
	[NK_OP_ACCEPT]		= nsm_op_accept,
	[NK_OP_CONNECT]		= nsm_op_connect,
	[NK_OP_SEND]		= nsm_op_send,
	[NK_OP_SHUTDOWN]	= nsm_op_shutdown,
	[NK_OP_CLOSE]		= nsm_op_close,
	[NK_OP_SETSOCKOPT]	= nsm_op_setsockopt,
	[NK_OP_GETSOCKOPT]	= nsm_op_getsockopt,
	[NK_OP_GETSOCKNAME]	= nsm_op_getsockname,
	[NK_OP_GETPEERNAME]	= nsm_op_getpeername,
	[NK_OP_IOCTL]		= nsm_op_ioctl,
	[NK_OP_CREDIT]		= nsm_op_credit,
};

/*
 * Answer @rq (SEND and CREDIT only when they failed); @ns is the socket
 * whose credit goes with it.  A new socket then gets its callbacks.
 */
static void nsm_answer(struct nsm_req *rq, struct nsm_sock *ns, int err,
		       struct nsm_reply *rp)
{
	struct nsm_sock *nns = err ? NULL : rp->attach;

	if (!err && (rq->op == NK_OP_SEND || rq->op == NK_OP_CREDIT))
		return;
	/* A new socket's lock is held since before it was published. */
	if (nns)
		ns = nns;
	nsm_msg(rq->nsm, ns && !ns->closed ? ns : NULL, rq->id, rq->op,
		NK_F_REPLY, le64_to_cpu(rq->hdr->req_id), err, rp->a0,
		&rp->u, err ? 0 : rp->len);
	if (nns) {
		nsm_sock_set_callbacks(nns, rp->attach_cbs);
		nsm_sock_kick(nns);
		mutex_unlock(&nns->lock);
	}
}

/* One NK_OP_INFO record for @ns, whose lock is held. */
static void nsm_info_fill(struct nsm_sock *ns, struct nk_sock_info *si)
{
	struct sockaddr_storage ss;
	struct sock *sk = ns->sock->sk;
	struct tcp_info ti;
	int len;

	si->family = cpu_to_le16(ns->family);
	si->local.family = si->family;
	si->remote.family = si->family;
	si->proto = ns->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
	si->state = READ_ONCE(sk->sk_state);
	if (si->state < NK_SS_ESTABLISHED || si->state > NK_SS_MAX ||
	    (si->proto == IPPROTO_UDP && si->state != NK_SS_ESTABLISHED))
		si->state = NK_SS_CLOSE;
	len = kernel_getsockname(ns->sock, (struct sockaddr *)&ss);
	if (len < 0 ||
	    nk_addr_from_sockaddr(&si->local, (struct sockaddr *)&ss, len))
		memset(&si->local, 0, sizeof(si->local));
	len = kernel_getpeername(ns->sock, (struct sockaddr *)&ss);
	if (len < 0 ||
	    nk_addr_from_sockaddr(&si->remote, (struct sockaddr *)&ss, len))
		memset(&si->remote, 0, sizeof(si->remote));
	si->local.family = si->family;
	si->remote.family = si->family;
	if (si->proto == IPPROTO_UDP) {
		si->send_q = cpu_to_le32(sk_wmem_alloc_get(sk));
		si->recv_q = cpu_to_le32(sk_rmem_alloc_get(sk));
		return;
	}
	if (si->state == NK_SS_LISTEN) {
		si->recv_q = cpu_to_le32(READ_ONCE(sk->sk_ack_backlog));
		si->send_q = cpu_to_le32(READ_ONCE(sk->sk_max_ack_backlog));
	} else {
		const struct tcp_sock *tp = tcp_sk(sk);

		si->recv_q = cpu_to_le32(max_t(int, READ_ONCE(tp->rcv_nxt) -
					       READ_ONCE(tp->copied_seq), 0));
		si->send_q = cpu_to_le32(READ_ONCE(tp->write_seq) -
					 READ_ONCE(tp->snd_una));
	}
	tcp_get_info(sk, &ti);
	si->rtt_us = cpu_to_le32(ti.tcpi_rtt);
	si->rttvar_us = cpu_to_le32(ti.tcpi_rttvar);
	si->snd_cwnd = cpu_to_le32(ti.tcpi_snd_cwnd);
	si->retrans = cpu_to_le32(ti.tcpi_total_retrans);
	si->delivery_rate = cpu_to_le64(ti.tcpi_delivery_rate);
}

/*
 * NK_OP_INFO: the engine asks what its sockets' kernel sockets look like
 * (nkctl ss).  The reply carries one record per id, -EBADF in the record
 * for an id this NSM has no open socket for.
 */
static void nsm_op_info(struct nsm_req *rq)
{
	u64 req_id = le64_to_cpu(rq->hdr->req_id);
	const __le32 *ids = rq->payload;
	struct nk_sock_info *si;
	struct nsm_sock *ns;
	struct nsm_out *out;
	int n, i;

	n = nk_info_req_check(rq->hdr, rq->nsm->max_payload);
	if (n < 0) {
		nsm_invalid(rq, "bad INFO request");
		nsm_msg(rq->nsm, NULL, 0, rq->op, NK_F_REPLY, req_id, n, 0,
			NULL, 0);
		return;
	}
	out = nsm_msg_new(0, rq->op, NK_F_REPLY, req_id, n * sizeof(*si));
	if (!out) {
		pr_warn_ratelimited("no memory for an INFO reply\n");
		return;
	}
	si = (struct nk_sock_info *)out->tb->payload;
	memset(si, 0, n * sizeof(*si));
	for (i = 0; i < n; i++) {
		u32 id = le32_to_cpu(ids[i]);

		si[i].sock = ids[i];
		si[i].status = cpu_to_le32(-EBADF);
		ns = id ? nk_sockid_get(&rq->nsm->socks, id) : NULL;
		if (!ns)
			continue;
		mutex_lock(&ns->lock);
		if (!ns->closed && ns->sock) {
			si[i].status = 0;
			nsm_info_fill(ns, &si[i]);
		}
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
	}
	nsm_xmit(rq->nsm, NULL, out);
}

/* An event the engine sent us: nothing to do but note it. */
static void nsm_engine_event(struct nsm_req *rq)
{
	nsm_count(rq->nsm, NSM_S_ENGINE_ERRORS, 1);
	if (rq->op == NK_EV_RESET)
		pr_info_ratelimited("socket %u: the engine reset it (%d); its CLOSE follows\n",
				    rq->id, nk_hdr_status(rq->hdr));
}

/**
 * nsm_request() - serve one message from the engine
 * @nsm: the device
 * @hdr: the header, checked by the transport
 * @payload: hdr.len bytes
 *
 * Called from the work of the shard of the socket id in @hdr (shard 0 for
 * INFO), with no lock held.
 */
void nsm_request(struct nsm_dev *nsm, const struct nk_hdr *hdr,
		 const void *payload)
{
	struct nsm_req rq = {
		.nsm = nsm,
		.hdr = hdr,
		.payload = payload,
		.len = le32_to_cpu(hdr->len),
		.op = le16_to_cpu(hdr->op),
		.flags = le16_to_cpu(hdr->flags),
		.id = le32_to_cpu(hdr->sock),
	};
	struct nsm_reply rp = {};
	struct nsm_sock *ns;
	int err;

	nsm_count(nsm, NSM_S_REQUESTS, 1);
	if (rq.flags & NK_F_REPLY) {
		/* Only the HELLO reply comes here, after nk_call() gave up. */
		pr_warn_ratelimited("late %s reply ignored\n", nk_op_name(rq.op));
		return;
	}
	if (rq.op == NK_EV_RESET || rq.op == NK_EV_PROTO_ERROR) {
		nsm_engine_event(&rq);
		return;
	}
	if (rq.op == NK_OP_INFO) {
		nsm_op_info(&rq);
		return;
	}
	if (rq.op == NK_OP_SOCKET) {
		err = nsm_op_socket(&rq, &rp);
		nsm_answer(&rq, NULL, err, &rp);
		return;
	}
	if (rq.op > NK_OP_MAX_REQUEST || !nsm_handlers[rq.op]) {
		nsm_invalid(&rq, "unexpected op");
		nsm_answer(&rq, NULL, -EOPNOTSUPP, &rp);
		return;
	}

	ns = nk_sockid_get(&nsm->socks, rq.id);
	if (!ns) {
		pr_debug("socket %u: %s for an unknown id\n", rq.id,
			 nk_op_name(rq.op));
		nsm_answer(&rq, NULL, -EBADF, &rp);
		return;
	}
	mutex_lock(&ns->lock);
	if (rq.op != NK_OP_ACCEPT)
		nsm_take_credit(ns, hdr);
	err = nsm_handlers[rq.op](&rq, ns, &rp);
	nsm_answer(&rq, ns, err, &rp);
	mutex_unlock(&ns->lock);
	nsm_sock_put(ns);
}
