// SPDX-License-Identifier: GPL-2.0
/*
 * Local switching: a guest's TCP connection to another guest of this
 * engine is joined by the engine itself, guest memory to engine to guest
 * memory, without an NSM's TCP stack in between (hostengine.rst, "Local
 * switching", says what the operator sees).
 *
 * Design:
 *  - Listeners.  A stream socket's BIND address (the request's, kept once
 *    the NSM answered 0) and a LISTEN the NSM answered 0 put the socket on
 *    its guest's list of listeners (he_ep.listeners).  When the NSM chose
 *    the port (bind() to port 0, listen() without bind()), the NSM's
 *    answer to the guest's next GETSOCKNAME gives it (af_netkernel asks
 *    after every BIND and LISTEN, before they return).  IPV6_V6ONLY is the
 *    one SOCKET said.
 *  - Connect.  A CONNECT on a stream socket to an address that is another
 *    guest's (its address or address6, IPv4-mapped included) is switched
 *    when both guests' policies allow it (lsw_allowed()).  The engine
 *    answers it itself: -EINPROGRESS (no credit: lsw_connect() says why),
 *    then EV_CONNECTED with credit LSW_PRE_CREDIT and
 *    the socket's local address when a listener matches the destination
 *    (the exact address first, then a wildcard) and its accept queue has
 *    room (at most the LISTEN backlog), else EV_ERROR -ECONNREFUSED, as
 *    TCP over a network would (the socket may connect again; its next
 *    CONNECT is looked at afresh).  The client's NSM socket stays, never
 *    connected: setsockopt/getsockopt still go to it.  The client's local
 *    port is its BIND's, else one of the engine's, 61000 to 65535 in turn
 *    (above Linux's default ip_local_port_range, so apart from the ports
 *    the NSM picks; the switched 4-tuple never reaches a network anyway).
 *  - Accept.  The connection waits on the listener's local queue, and the
 *    listener's guest gets EV_ACCEPT with the local count plus the NSM's
 *    last one (an NSM EV_ACCEPT gets the local count added), so the one
 *    accept queue the guest sees holds both.  An ACCEPT takes a local
 *    connection first: the engine makes the new socket (no NSM socket)
 *    and answers with the client's address and the client's credit.
 *    A listener with TCP_DEFER_ACCEPT (its SETSOCKOPT, before or after
 *    LISTEN) keeps a connection out of that count and of its ACCEPTs
 *    (deferred; ready counts the others) until its first byte, its EOF,
 *    or the option's time as Linux keeps it (defer_secs(): the SYN-ACK
 *    retransmission whose ACK Linux would take), which lsw_tick() sees
 *    from the data plane's loop (defer_next: nothing to do without one).
 *  - Data and credit.  One side's SEND becomes EV_DATA to the other within
 *    the receiver's credit (its last announcement, carried on every
 *    request); each new announcement goes to the sender as a CREDIT event.
 *    A SEND is checked against the sender's credit (send_space(): the
 *    receiver's buf_alloc less what the sender sent beyond the receiver's
 *    fwd_cnt), kept in the receiver's inq and delivered (flush()) as far
 *    as the receiver's credit allows, again on each of its announcements.
 *    A client closed in order before the ACCEPT stays queued without its
 *    map (m NULL, a ghost): the ACCEPT gets its data and EOF.
 *    Before the ACCEPT the client's credit is LSW_PRE_CREDIT, as a native
 *    server's receive window, held in the client's own inq and handed to
 *    the accepted socket; after it, the receiver's buf_alloc plus
 *    LSW_PRE_CREDIT (send_buf()), as a native sender's kernel holds what
 *    the peer's window has no room for (SIOCOUTQ counts what is held).  So the engine holds at most a receiver's credit
 *    per connection; the receiver's pending queue's max_pending still
 *    applies: beyond it, the connection is reset both ways.  A SEND
 *    beyond the credit is refused (-ENOBUFS, credit_violations) as toward
 *    an NSM.
 *  - Shutdown and close.  SHUTDOWN WR/RDWR sends the peer EV_HUP
 *    NK_SHUT_RD (EOF after the data before it), later if the connection
 *    is not accepted yet.  CLOSE with data the guest had not consumed
 *    (EV_DATA sent beyond its last fwd_cnt) resets the peer (EV_RESET
 *    -ECONNRESET), else the peer gets EOF; a SEND after the peer closed
 *    resets the sender, as TCP's RST would.  The side whose FIN went first
 *    (a CLOSE, or its SHUTDOWN WR, before the peer's EOF) and that closes
 *    without a reset leaves its local address in TIME_WAIT for 60 s
 *    (tw_add(), he_ep.lsw_tw, at most HE_LSW_TW per guest, as Linux's
 *    tcp_max_tw_buckets: beyond it, none): that guest's BIND of a stream
 *    socket to it (the address or a wildcard covering it, the port) is
 *    answered -EADDRINUSE by the engine unless both sockets had
 *    SO_REUSEADDR (an accepted socket has its listener's), as Linux's
 *    bind conflict check says (tw_conflict()); a new session of the
 *    guest forgets them.  A guest going away, a socket
 *    reset for any reason (its NSM lost, detach, operator, overflow) and
 *    a listener closed with connections in its queue reset the peers.
 *  - The client's NSM socket: its replies (options) reach the guest
 *    without their credit, which would be the NSM socket's; its events
 *    are dropped (counted in the NSM's drops): it is never connected.
 *    The int options it accepted are kept here too (opt_try until the
 *    NSM's answer, then opt_keep()).  When the NSM goes away, a switched
 *    connection, which carries nothing through it, goes on
 *    (lsw_nsm_gone()): the client loses its NSM socket and is answered
 *    as the accepted side is, from the options kept.
 *  - Answers the engine gives itself on a switched socket: GETSOCKNAME,
 *    GETPEERNAME (the guests' real addresses and ports), IOCTL OUTQ and
 *    OUTQNSD (bytes the peer has not consumed), SHUTDOWN, GETSOCKOPT
 *    TCP_INFO (lsw_tcp_info(): the state only); CONNECT -EISCONN,
 *    LISTEN and ACCEPT -EINVAL; connect(AF_UNSPEC) resets both sides.
 *    Options: the client's go to its NSM socket; the accepted socket has
 *    none, so the engine keeps the int options it sets (opt_set(),
 *    LSW_OPTS of them) and answers GETSOCKOPT from them or Linux's
 *    defaults (opt_get()).  SO_LINGER 0 and IPV6_V6ONLY are watched on
 *    every stream socket (opt_seen()), and SO_REUSEADDR (TIME_WAIT) and
 *    TCP_DEFER_ACCEPT (below).  "ss" does not
 *    ask an NSM about a switched socket; "sockets" shows it as local with
 *    its peer.  Urgent data (a SEND with NK_MSG_OOB): its last byte is
 *    announced with EV_URG before the EV_DATA that carries it, as an NSM
 *    does for a guest that agreed NK_FEAT_URG; for one that did not, it
 *    is ordinary data.
 *  - Through the NSM (lsw_peer_mark()): a CONNECT this file does not
 *    take, and a datagram SEND with an address, whose destination is
 *    another guest's that the sender may reach (peer_allowed(): one NSM,
 *    one tenant or both "on"), goes to the NSM marked NK_F_PEER with that
 *    guest's id, so that the NSM passes it through its own stack
 *    (hostengine.rst "Guests through their NSM").  guest_by_ip() is the
 *    lookup, as for a switched CONNECT; dispatch() refuses a guest's own
 *    NK_F_PEER.
 *  - Untrusted guests: every message is about a socket of the guest that
 *    sent it (its own table); what it can do to a peer is what it could
 *    do through TCP: fill the peer's credit, EOF, reset one connection.
 *    Memory: a he_lsw per stream socket that bound or connected locally,
 *    bounded by max_sockets; queued connections by the listeners'
 *    backlogs and the clients' max_sockets.
 *
 * Threading: the data-plane lcore only, like switch.c's socket state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <rte_common.h>
#include <rte_cycles.h>

#include "he.h"
#include "dp.h"

#define LSW_PORT_FIRST	61000
#define LSW_PORT_LAST	65535
#define LSW_BACKLOG_MAX	65535

/*
 * Before the ACCEPT a client may send this much (TCP's receive window,
 * which a native client fills before the server accepts); the engine
 * holds it until the ACCEPT and the accepted socket's credit.
 */
#define LSW_PRE_CREDIT	65536U
#define LSW_TCP_INFO_LEN	232	/* Linux 6.1's struct tcp_info */
#define LSW_MSS		65483	/* loopback's MSS */
#define LSW_OPTS	16	/* int options kept for an accepted socket */
#define LSW_TW_SECS	60	/* Linux's TCP_TIMEWAIT_LEN */
#define LSW_RTO_MAX	120	/* Linux's TCP_RTO_MAX, s */

/*
 * The credit a sender is given: the receiver's buf_alloc and LSW_PRE_CREDIT
 * the engine holds beyond it, as a native sender's kernel holds what the
 * peer's window has no room for (SIOCOUTQ counts it).
 */
static inline uint32_t send_buf(uint32_t buf_alloc)
{
	return RTE_MIN((uint64_t)buf_alloc + LSW_PRE_CREDIT, (uint64_t)NK_CREDIT_MAX);
}

/* Data held for a guest, in order. */
struct lsw_chunk {
	TAILQ_ENTRY(lsw_chunk) link;
	uint32_t off, len;
	bool urg;			/* its last byte is urgent (MSG_OOB) */
	uint8_t data[];
};

/* An address without port: IPv4 (a[0..3]) or IPv6. */
struct lsw_ip {
	bool v4;
	uint8_t a[16];
};

/* An int option of a switched socket, as the engine keeps it. */
struct lsw_opt {
	bool set;
	uint64_t level, name;
	int32_t val;
};

struct he_lsw {
	struct he_map *m;
	/* Listening */
	struct nk_addr bind_try;	/* BIND asked, not answered (family 0: none) */
	struct nk_addr bound;		/* BIND answered 0 (family 0: none) */
	uint32_t backlog_try, backlog;
	bool listen_ok;			/* LISTEN answered 0 */
	bool listening;			/* on m->guest->listeners */
	LIST_ENTRY(he_lsw) llink;
	TAILQ_HEAD(lsw_queue, he_lsw) queue;	/* connections not accepted */
	uint32_t queued;
	uint32_t ready;			/* of them, acceptable (not deferred) */
	uint64_t nsm_waiting;		/* the NSM's last EV_ACCEPT count */
	/* A switched connection */
	struct he_lsw *listener;	/* waiting in its queue */
	bool deferred;			/* ... not acceptable yet (TCP_DEFER_ACCEPT) */
	uint64_t defer_until;		/* ... until then at the latest (timer cycles) */
	TAILQ_ENTRY(he_lsw) qlink;
	struct he_lsw *peer;		/* accepted: the other side */
	struct lsw_ip lip, rip;		/* local and remote addresses */
	uint16_t lport, rport;		/* network order */
	int family;			/* the socket's */
	bool shut_wr;			/* SHUTDOWN WR done */
	bool shut_first;		/* ... before EOF came */
	bool eof_recv;			/* EOF sent to this guest */
	bool eof_due;			/* EOF to send once inq is delivered */
	bool peer_closed;		/* EOF from a peer that is gone */
	uint32_t sent;			/* bytes this side sent, mod 2^32 */
	struct lsw_opt opt[LSW_OPTS];	/* int options set (opt_keep()) */
	struct lsw_opt opt_try;		/* client: a SETSOCKOPT at its NSM, not answered */
	bool linked;			/* accepted (inq: data for this side) */
	/* Data for this side not delivered yet (before the ACCEPT: for the peer). */
	TAILQ_HEAD(lsw_inq, lsw_chunk) inq;
	uint64_t inq_bytes;
	bool cr_told;			/* cr_buf and cr_fwd went to the peer */
	uint32_t cr_buf, cr_fwd;
};

static uint16_t next_port = LSW_PORT_FIRST;
static uint64_t defer_next;	/* the first defer_until of a queued connection; 0: none */

static struct he_lsw *lsw_get(struct he_map *m)
{
	if (!m->lsw) {
		m->lsw = calloc(1, sizeof(*m->lsw));
		if (!m->lsw)
			return NULL;
		m->lsw->m = m;
		TAILQ_INIT(&m->lsw->queue);
		TAILQ_INIT(&m->lsw->inq);
	}
	return m->lsw;
}

/* ---- addresses ---- */

static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

static void ip_of(const struct nk_addr *a, struct lsw_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (a->family == AF_INET) {
		ip->v4 = true;
		memcpy(ip->a, a->addr, 4);
	} else if (!memcmp(a->addr, v4mapped, sizeof(v4mapped))) {
		ip->v4 = true;
		memcpy(ip->a, a->addr + 12, 4);
	} else {
		memcpy(ip->a, a->addr, 16);
	}
}

/* @ip and @port as a socket of @family names them (IPv4 mapped in AF_INET6). */
static void addr_make(struct nk_addr *a, int family, const struct lsw_ip *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->port = port;
	if (family == AF_INET) {
		memcpy(a->addr, ip->a, 4);
	} else if (ip->v4) {
		memcpy(a->addr, v4mapped, sizeof(v4mapped));
		memcpy(a->addr + 12, ip->a, 4);
	} else {
		memcpy(a->addr, ip->a, 16);
	}
}

static bool ip_any(const struct lsw_ip *ip)
{
	static const uint8_t zero[16];

	return !memcmp(ip->a, zero, ip->v4 ? 4 : 16);
}

/* ---- TIME_WAIT ---- */

/*
 * @m closed its switched connection first, in order: its local address
 * stays in TIME_WAIT for LSW_TW_SECS, as Linux's socket would.  A full
 * table keeps none, as Linux beyond tcp_max_tw_buckets.
 */
static void tw_add(struct he_map *m, const struct he_lsw *l)
{
	uint64_t now = rte_get_timer_cycles();
	struct he_lsw_tw *t = m->guest->lsw_tw;
	unsigned int i;

	for (i = 0; i < HE_LSW_TW && t[i].until > now; i++)
		;
	if (i == HE_LSW_TW)
		return;
	t[i] = (struct he_lsw_tw){
		.until = now + rte_get_timer_hz() * LSW_TW_SECS,
		.port = l->lport,
		.v4 = l->lip.v4,
		.reuse = m->reuseaddr,
	};
	memcpy(t[i].ip, l->lip.a, sizeof(t[i].ip));
}

/*
 * Would Linux refuse @m's BIND to @a because of a TIME_WAIT of its guest?
 * Same port, the same address or a wildcard that covers it (an AF_INET6
 * "::" covers IPv4 unless V6ONLY), and not both with SO_REUSEADDR.
 */
static bool tw_conflict(const struct he_map *m, const struct nk_addr *a)
{
	uint64_t now = rte_get_timer_cycles();
	const struct he_lsw_tw *t;
	struct lsw_ip b;
	unsigned int i;

	if (a->family != AF_INET && a->family != AF_INET6)
		return false;
	ip_of(a, &b);
	for (i = 0; i < HE_LSW_TW; i++) {
		t = &m->guest->lsw_tw[i];
		if (t->until <= now || t->port != a->port || (m->reuseaddr && t->reuse))
			continue;
		if (ip_any(&b) && a->family == AF_INET6 && !b.v4) {
			if (!t->v4 || !m->v6only)
				return true;
			continue;
		}
		if (t->v4 == b.v4 && (ip_any(&b) || !memcmp(t->ip, b.a, b.v4 ? 4 : 16)))
			return true;
	}
	return false;
}

/* The guest whose address is @ip, if it is one this engine serves. */
static struct he_ep *guest_by_ip(const struct he_config *c, const struct lsw_ip *ip)
{
	unsigned int i;

	for (i = 0; i < c->nr_eps; i++) {
		struct he_ep *g = c->eps[i];

		if (g->role != NK_ROLE_GUEST)
			continue;
		if (ip->v4 ? g->has_addr4 && !memcmp(&g->addr4, ip->a, 4) :
			     g->has_addr6 && !memcmp(&g->addr6, ip->a, 16))
			return g;
	}
	return NULL;
}

/*
 * A listener of @d for @ip:@port: one bound to that address first, then
 * one bound to its family's wildcard (an AF_INET6 one without V6ONLY
 * hears IPv4 too).  NULL: none.
 */
static struct he_lsw *listener_find(struct he_ep *d, const struct lsw_ip *ip, uint16_t port)
{
	struct he_lsw *l, *any = NULL;
	struct lsw_ip b;

	LIST_FOREACH(l, &d->listeners, llink) {
		if (l->bound.port != port || l->m->reset || l->m->closing)
			continue;
		ip_of(&l->bound, &b);
		if (l->bound.family == AF_INET6 && ip_any(&b) && !b.v4) {
			/* "::": IPv6, and IPv4 unless V6ONLY. */
			if (!ip->v4 || !l->m->v6only)
				any = any ?: l;
			continue;
		}
		if (b.v4 != ip->v4)
			continue;
		if (ip_any(&b))
			any = any ?: l;
		else if (!memcmp(b.a, ip->a, ip->v4 ? 4 : 16))
			return l;
	}
	return any;
}

/* ---- policy ---- */

static struct he_config *cfg;

void lsw_init(struct he_config *c)
{
	cfg = c;
}

/* Does @a's local_switch let it be switched with @b? */
static bool lsw_allows(const struct he_ep *a, const struct he_ep *b)
{
	switch (a->local_switch) {
	case HE_LSW_ON:
		return true;
	case HE_LSW_OFF:
		return false;
	default:
		return a->nsm && a->nsm == b->nsm && !strcmp(a->tenant, b->tenant);
	}
}

static bool lsw_allowed(const struct he_ep *a, const struct he_ep *b)
{
	return lsw_allows(a, b) && lsw_allows(b, a);
}

/* ---- guests through their NSM ---- */

/*
 * May @g reach guest @d through their NSM's stack (NK_F_PEER)?  Both
 * attached to one NSM that agreed NK_FEAT_PEER, and of one tenant, or
 * local switching allowed between them (both "on": the operator let two
 * tenants meet).  A guest reaches its own address as the NSM's, refused.
 */
static bool peer_allowed(const struct he_ep *g, const struct he_ep *d)
{
	return d != g && g->nsm && g->nsm == d->nsm && (g->nsm->features & NK_FEAT_PEER) &&
	       (!strcmp(g->tenant, d->tenant) || lsw_allowed(g, d));
}

void lsw_peer_mark(const struct he_ep *g, struct nk_hdr *f, const struct he_iov *iov)
{
	struct nk_addr dst;
	struct lsw_ip ip;
	struct he_ep *d;

	/* Nothing to look up on an NSM that would not take the mark. */
	if (!g->nsm || !(g->nsm->features & NK_FEAT_PEER) || f->len < ADDR_LEN)
		return;
	he_iov_read(iov, HDR_LEN, &dst, sizeof(dst));
	if (nk_addr_check(&dst))
		return;		/* AF_UNSPEC (a datagram's disconnect) too */
	ip_of(&dst, &ip);
	d = guest_by_ip(cfg, &ip);
	if (!d || !peer_allowed(g, d))
		return;
	f->flags |= NK_F_PEER;
	f->arg[3] = d->id;
}

/* ---- messages ---- */

/*
 * Events and credit to a guest return deliver()'s error without acting on
 * it: the caller resets the socket (overflow()) as its last step, since
 * the reset ends the connection's state both ways (lsw_gone()).
 */
static int lsw_event_credit(struct he_lsw *l, uint16_t op, int status, uint64_t a0,
			    const struct nk_addr *payload, uint32_t buf_alloc)
{
	struct he_map *m = l->m;
	struct nk_hdr ev = {
		.op = op,
		.sock = m->guest_sock,
		.status = (uint32_t)status,
		.arg[0] = a0,
		.len = payload ? ADDR_LEN : 0,
		.flags = buf_alloc ? NK_F_CREDIT : 0,
		.buf_alloc = buf_alloc,
	};
	struct he_seg seg;
	struct he_iov iov;

	he_iov_flat(&iov, &seg, payload, ev.len);
	return deliver(m->guest, &ev, &iov, 0, false);
}

static int lsw_event(struct he_lsw *l, uint16_t op, int status, uint64_t a0,
		     const struct nk_addr *payload)
{
	return lsw_event_credit(l, op, status, a0, payload, 0);
}

/* EV_CONNECTED with @la, and the window the engine holds until the ACCEPT. */
static int lsw_connected(struct he_lsw *l, const struct nk_addr *la)
{
	return lsw_event_credit(l, NK_EV_CONNECTED, 0, 0, la, send_buf(0));
}

static void lsw_overflow(struct he_map *m)
{
	overflow(m->guest, m);
}

/* @l's credit, as last announced, to its peer (if it changed). */
static int credit_tell(struct he_lsw *l)
{
	const struct nk_credit_tx *c = &l->m->to_guest;
	struct he_lsw *p = l->peer;
	struct nk_hdr ev = { .op = NK_OP_CREDIT, .flags = NK_F_CREDIT };

	if (!p || (l->cr_told && l->cr_buf == c->peer_buf_alloc && l->cr_fwd == c->peer_fwd_cnt))
		return 0;
	l->cr_told = true;
	l->cr_buf = c->peer_buf_alloc;
	l->cr_fwd = ev.fwd_cnt = c->peer_fwd_cnt;
	ev.buf_alloc = send_buf(c->peer_buf_alloc);
	ev.sock = p->m->guest_sock;
	return deliver(p->m->guest, &ev, NULL, 0, false);
}

/* A reply with address @a (or none), @credit as the sender sees it. */
static void lsw_reply(struct he_ep *g, const struct nk_hdr *h, int status,
		      const struct nk_addr *a, const struct nk_credit_tx *credit)
{
	struct nk_credit_tx c = *credit;

	c.peer_buf_alloc = send_buf(c.peer_buf_alloc);
	reply_data(g, h, status, a, a ? ADDR_LEN : 0, &c);
}

static int flush(struct he_lsw *q);
static void inq_free(struct he_lsw *q);

/* ---- connect and accept ---- */

/* EV_ACCEPT: how many connections @L's guest may accept (local and NSM). */
static void accept_tell(struct he_lsw *L)
{
	if (lsw_event(L, NK_EV_ACCEPT, 0, L->ready + L->nsm_waiting, NULL))
		lsw_overflow(L->m);	/* its queue reset */
}

/*
 * Queued @c becomes acceptable (its first byte, its EOF, or its
 * TCP_DEFER_ACCEPT time), as Linux's listener then makes the socket; @c
 * may be gone after it (its listener's guest overflowed).
 */
static void defer_end(struct he_lsw *c)
{
	if (!c->listener || !c->deferred)
		return;
	c->deferred = false;
	c->listener->ready++;
	accept_tell(c->listener);
}

/*
 * TCP_DEFER_ACCEPT's seconds as Linux keeps them (tcp.c's secs_to_retrans()
 * then retrans_to_secs(), 1 s initial timeout): the time of the SYN-ACK
 * retransmission whose ACK makes a connection that sent nothing acceptable.
 */
static uint32_t defer_secs(int32_t val)
{
	uint32_t timeout = 1, period = 1, retrans = 1, secs;

	if (val <= 0)
		return 0;
	while ((uint32_t)val > period && retrans < 255) {
		retrans++;
		timeout = RTE_MIN(timeout << 1, (uint32_t)LSW_RTO_MAX);
		period += timeout;
	}
	for (secs = timeout = 1; --retrans; secs += timeout)
		timeout = RTE_MIN(timeout << 1, (uint32_t)LSW_RTO_MAX);
	return secs;
}

void lsw_tick(void)
{
	struct he_lsw *L, *nextL, *c;
	uint64_t now, next = 0;
	unsigned int i, n;

	if (!defer_next || (now = rte_get_timer_cycles()) < defer_next)
		return;
	for (i = 0; i < cfg->nr_eps; i++) {
		if (cfg->eps[i]->role != NK_ROLE_GUEST)
			continue;
		for (L = LIST_FIRST(&cfg->eps[i]->listeners); L; L = nextL) {
			nextL = LIST_NEXT(L, llink);
			n = 0;
			TAILQ_FOREACH(c, &L->queue, qlink) {
				if (!c->deferred)
					continue;
				if (c->defer_until <= now) {
					c->deferred = false;
					n++;
				} else if (!next || c->defer_until < next) {
					next = c->defer_until;
				}
			}
			if (n) {
				L->ready += n;
				accept_tell(L);
			}
		}
	}
	defer_next = next;
}

static bool lsw_connect(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
			struct he_map *m)
{
	struct he_lsw *l, *L;
	struct nk_addr dst, la;
	struct lsw_ip ip;
	struct he_ep *d;
	int err;

	if (h->len != ADDR_LEN)
		return false;
	he_iov_read(iov, HDR_LEN, &dst, sizeof(dst));
	if (nk_addr_check(&dst))
		return false;
	ip_of(&dst, &ip);
	d = guest_by_ip(cfg, &ip);
	/*
	 * Not a guest's, not allowed, no source address of that kind, or a
	 * socket that carried data through its NSM already: the NSM's.
	 */
	if (!d || !lsw_allowed(g, d) || (ip.v4 ? !g->has_addr4 : !g->has_addr6) ||
	    (dst.family == AF_INET6 && ip.v4 && m->v6only) ||
	    m->to_guest.tx_cnt || m->to_nsm.tx_cnt)
		return false;
	l = lsw_get(m);
	if (!l)
		return false;		/* no memory: through the NSM */
	if (!conn_rate_ok(g)) {
		reply(g, h, -EAGAIN);
		return true;
	}
	/*
	 * No credit here: a guest applies a reply's credit when its calling
	 * thread runs again, maybe after the events that followed (the
	 * accepted socket's CREDIT), which it would then undo.  The window
	 * comes with EV_CONNECTED, an event, in order with the others.
	 */
	reply(g, h, -EINPROGRESS);
	L = d->state == HE_EP_READY && d->running ? listener_find(d, &ip, dst.port) : NULL;
	if (!L || L->queued > L->backlog) {
		if (lsw_event(l, NK_EV_ERROR, -ECONNREFUSED, 0, NULL))
			lsw_overflow(m);
		return true;
	}
	m->local = true;
	l->family = dst.family;
	l->rip = ip;
	l->rport = dst.port;
	memset(&l->lip, 0, sizeof(l->lip));
	l->lip.v4 = ip.v4;
	memcpy(l->lip.a, ip.v4 ? (const void *)&g->addr4 : (const void *)&g->addr6,
	       ip.v4 ? 4 : 16);
	if (l->bound.family && l->bound.port) {
		l->lport = l->bound.port;
	} else {
		l->lport = htons(next_port);
		next_port = next_port == LSW_PORT_LAST ? LSW_PORT_FIRST : next_port + 1;
	}
	l->listener = L;
	TAILQ_INSERT_TAIL(&L->queue, l, qlink);
	L->queued++;
	l->deferred = L->m->defer_accept != 0;
	if (l->deferred) {
		l->defer_until = rte_get_timer_cycles() + rte_get_timer_hz() * L->m->defer_accept;
		if (!defer_next || l->defer_until < defer_next)
			defer_next = l->defer_until;
	} else {
		L->ready++;
	}
	addr_make(&la, l->family, &l->lip, l->lport);
	err = lsw_connected(l, &la);
	if (!l->deferred)
		accept_tell(L);		/* on overflow, its queue (this one too) is reset */
	if (err)
		lsw_overflow(m);
	return true;
}

/*
 * A queued client ends (its listener closes, its ACCEPT is aborted): reset,
 * or, one whose guest closed it already (a ghost), forgotten.
 */
static void queued_end(struct he_lsw *c)
{
	if (c->m) {
		map_reset(c->m, -ECONNRESET);
		return;
	}
	inq_free(c);
	free(c);
}

bool lsw_accept(struct he_ep *g, struct nk_hdr *h, struct he_map *lm)
{
	static const struct nk_credit_tx none;
	struct he_lsw *L = lm->lsw, *c, *nl;
	struct he_map *nm, *cm;
	struct nk_addr peer;
	int e1, e2 = 0;

	if (!L || !L->listening || !L->ready)
		return false;
	TAILQ_FOREACH(c, &L->queue, qlink)
		if (!c->deferred)
			break;
	if (!c)
		return false;	/* cannot be: ready counts them */
	TAILQ_REMOVE(&L->queue, c, qlink);
	L->queued--;
	L->ready--;
	c->listener = NULL;
	if (!conn_rate_ok(g)) {
		/* As switch.c's req_complete: aborted, the client reset. */
		queued_end(c);
		reply(g, h, -ECONNABORTED);
		return true;
	}
	nm = map_new(g, h->arg[0], NULL, true);
	nl = nm ? lsw_get(nm) : NULL;
	if (!nl) {
		if (nm)
			map_drop(nm, true, true);
		TAILQ_INSERT_HEAD(&L->queue, c, qlink);
		L->queued++;
		L->ready++;
		c->listener = L;
		reply(g, h, -ENOMEM);
		return true;
	}
	nm->opening = false;
	nm->local = true;
	nm->reuseaddr = lm->reuseaddr;	/* inherited, as Linux's */
	credit_take(g, h, &nm->to_guest);
	/* The listener's family names both ends (IPv4 mapped in AF_INET6). */
	nl->family = L->bound.family;
	nl->lip = c->rip;
	nl->lport = c->rport;
	nl->rip = c->lip;
	nl->rport = c->lport;
	nl->linked = c->linked = true;
	addr_make(&peer, nl->family, &nl->rip, nl->rport);
	lsw_reply(g, h, 0, &peer, c->m ? &c->m->to_guest : &none);
	cm = c->m;
	/* What the client sent meanwhile, then its EOF, as the credit allows. */
	TAILQ_CONCAT(&nl->inq, &c->inq, link);
	nl->inq_bytes = c->inq_bytes;
	c->inq_bytes = 0;
	nl->eof_due = c->shut_wr;
	if (cm) {
		nl->peer = c;
		c->peer = nl;
		c->cr_told = true;
		c->cr_buf = cm->to_guest.peer_buf_alloc;
		c->cr_fwd = cm->to_guest.peer_fwd_cnt;
	} else {
		/* Its client closed it in the queue: the data, EOF, and no peer. */
		nl->peer_closed = true;
		free(c);
	}
	e1 = credit_tell(nl);
	e2 = flush(nl);
	if (e1 && cm)
		lsw_overflow(cm);	/* nm is reset with it */
	if (e2)
		lsw_overflow(nm);
	return true;
}

/* ---- a switched connection's requests ---- */

/* Bytes the sender @l may send: its peer's credit, or the window before the ACCEPT. */
static uint32_t send_space(const struct he_lsw *l)
{
	struct nk_credit_tx c = { .tx_cnt = l->sent, .peer_buf_alloc = send_buf(0) };

	if (l->peer) {
		c.peer_buf_alloc = send_buf(l->peer->m->to_guest.peer_buf_alloc);
		c.peer_fwd_cnt = l->peer->m->to_guest.peer_fwd_cnt;
	}
	return nk_credit_tx_space(&c);
}

/* EOF to @q's guest, once the data before it is delivered. */
static int send_eof(struct he_lsw *q)
{
	if (!TAILQ_EMPTY(&q->inq)) {
		q->eof_due = true;
		return 0;
	}
	q->eof_due = false;
	q->eof_recv = true;
	return lsw_event(q, NK_EV_HUP, 0, NK_SHUT_RD, NULL);
}

/*
 * Deliver what waits for @q's guest (its inq) as far as its credit
 * allows, then a due EOF: 0 or deliver()'s error (the caller resets).
 */
static int flush(struct he_lsw *q)
{
	struct he_map *m = q->m;
	struct lsw_chunk *ch;
	struct he_seg seg;
	struct he_iov iov;
	struct nk_hdr ev;
	uint32_t k;
	int err;

	while ((ch = TAILQ_FIRST(&q->inq))) {
		k = RTE_MIN(nk_credit_tx_space(&m->to_guest), ch->len - ch->off);
		if (!k)
			return 0;
		if (ch->urg && ch->off + k == ch->len && (m->guest->features & NK_FEAT_URG)) {
			/* Its last byte is urgent: EV_URG first, as an NSM's TCP says it. */
			ev = (struct nk_hdr){
				.op = NK_EV_URG,
				.sock = m->guest_sock,
				.arg = { ch->data[ch->len - 1], (uint32_t)(m->to_guest.tx_cnt + k - 1) },
			};
			err = deliver(m->guest, &ev, NULL, 0, false);
			if (err)
				return err;
		}
		ev = (struct nk_hdr){ .op = NK_EV_DATA, .sock = m->guest_sock, .len = k };
		he_iov_flat(&iov, &seg, ch->data + ch->off, k);
		err = deliver_data(m->guest, &ev, &iov, 0, true);
		if (err)
			return err;
		m->to_guest.tx_cnt += k;
		m->rx_bytes += k;
		ch->off += k;
		q->inq_bytes -= k;
		if (ch->off == ch->len) {
			TAILQ_REMOVE(&q->inq, ch, link);
			free(ch);
		}
	}
	return q->eof_due ? send_eof(q) : 0;
}

static void inq_free(struct he_lsw *q)
{
	struct lsw_chunk *ch;

	while ((ch = TAILQ_FIRST(&q->inq))) {
		TAILQ_REMOVE(&q->inq, ch, link);
		free(ch);
	}
	q->inq_bytes = 0;
}

/*
 * A SEND: within the peer's credit (before the ACCEPT, LSW_PRE_CREDIT),
 * queued for the peer (held here until the ACCEPT) and delivered as its
 * credit allows, in order.
 */
static void lsw_send(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
		     struct he_map *m)
{
	struct he_lsw *l = m->lsw, *p = l->peer, *q = p ? p : l;
	int n = nk_hdr_data_len(h);
	struct lsw_chunk *ch;

	if (n < 0 || (h->flags & NK_F_ADDR) || (h->arg[0] & ~(uint64_t)NK_MSG_KNOWN))
		return reply(g, h, -EINVAL);
	if (l->peer_closed) {
		/* Data for a closed socket: TCP's RST. */
		he_cnt_add(g, HE_C_RESETS, 1);
		return map_reset(m, -ECONNRESET);
	}
	if ((uint32_t)n > send_space(l)) {
		he_cnt_add(g, HE_C_CREDIT_VIOLATIONS, 1);
		he_ep_log(g, NOTICE, "socket %u: SEND of %d bytes beyond credit", m->guest_sock, n);
		return reply(g, h, -ENOBUFS);
	}
	if (!n)
		return;
	ch = malloc(sizeof(*ch) + n);
	if (!ch)
		return overflow(g, m);
	ch->off = 0;
	ch->len = n;
	ch->urg = h->arg[0] & NK_MSG_OOB;
	he_iov_read(iov, HDR_LEN, ch->data, n);
	TAILQ_INSERT_TAIL(&q->inq, ch, link);
	q->inq_bytes += n;
	l->sent += n;
	m->tx_bytes += n;
	if (p && flush(p))
		overflow(p->m->guest, p->m);
	else if (!p)
		defer_end(l);	/* its first byte */
}

static void lsw_shutdown(struct he_ep *g, struct nk_hdr *h, struct he_lsw *l)
{
	if (h->arg[0] > SHUT_RDWR)
		return reply(g, h, -EINVAL);
	reply(g, h, 0);
	if (h->arg[0] == SHUT_RD || l->shut_wr)
		return;
	l->shut_wr = true;
	l->shut_first = !l->eof_recv;
	if (l->peer && send_eof(l->peer))
		lsw_overflow(l->peer->m);
	else if (!l->peer)
		defer_end(l);	/* its FIN */
}

/*
 * getsockopt(TCP_INFO): what the engine knows of a switched connection,
 * its state (as TCP's after the same shutdowns); the rest is 0.
 */
static void lsw_tcp_info(struct he_ep *g, struct nk_hdr *h, struct he_lsw *l)
{
	uint8_t info[LSW_TCP_INFO_LEN] = { 0 };
	uint8_t state = TCP_ESTABLISHED;

	if (l->shut_wr && l->eof_recv)
		state = l->shut_first ? TCP_TIME_WAIT : TCP_LAST_ACK;
	else if (l->shut_wr)
		state = TCP_FIN_WAIT2;
	else if (l->eof_recv)
		state = TCP_CLOSE_WAIT;
	info[0] = state;
	/* tcpi_snd_mss and tcpi_rcv_mss: loopback's, what a local peer has. */
	memcpy(info + 16, &(uint32_t){ LSW_MSS }, 4);
	memcpy(info + 20, &(uint32_t){ LSW_MSS }, 4);
	reply_data(g, h, 0, info, RTE_MIN(h->arg[2], (uint64_t)sizeof(info)), NULL);
}

static void lsw_ioctl(struct he_ep *g, struct nk_hdr *h, struct he_lsw *l)
{
	struct nk_hdr r = {
		.op = h->op,
		.flags = NK_F_REPLY,
		.sock = h->sock,
		.req_id = h->req_id,
	};

	if (h->arg[0] != NK_IOC_OUTQ && h->arg[0] != NK_IOC_OUTQNSD)
		return reply(g, h, -ENOTTY);
	/*
	 * Sent and not in the peer's guest yet (its TCP would have ACKed
	 * what reached it): held by the engine.  Both are that here.
	 */
	r.arg[0] = l->peer ? l->peer->inq_bytes : l->linked ? 0 : l->inq_bytes;
	if (deliver(g, &r, NULL, 0, true))
		he_cnt_add(g, HE_C_DROPS, 1);
}

/*
 * The options local switching looks at, from the guest's SETSOCKOPT
 * (whatever the NSM answers): IPV6_V6ONLY of a listener, SO_LINGER with a
 * zero timeout (CLOSE resets the peer).  On the accepted side, which has
 * no NSM socket, the int options set are kept for GETSOCKOPT
 * (opt_get()).
 */
static void opt_seen(struct he_map *m, const struct nk_hdr *h, const struct he_iov *iov)
{
	int32_t v[2] = { 0, 0 };

	if (h->len < sizeof(v[0]))
		return;
	he_iov_read(iov, HDR_LEN, v, RTE_MIN(h->len, (uint32_t)sizeof(v)));
	if (h->arg[0] == IPPROTO_IPV6 && h->arg[1] == IPV6_V6ONLY)
		m->v6only = v[0] != 0;
	if (h->arg[0] == SOL_SOCKET && h->arg[1] == SO_LINGER && h->len >= sizeof(v))
		m->linger0 = v[0] && !v[1];
	if (h->arg[0] == SOL_SOCKET && h->arg[1] == SO_REUSEADDR)
		m->reuseaddr = v[0] != 0;
	if (h->arg[0] == IPPROTO_TCP && h->arg[1] == TCP_DEFER_ACCEPT)
		m->defer_accept = defer_secs(v[0]);
}

/* Keep @o among @l's options (the first LSW_OPTS distinct ones). */
static void opt_keep(struct he_lsw *l, const struct lsw_opt *o)
{
	unsigned int i;

	for (i = 0; i < LSW_OPTS && l->opt[i].set &&
		    (l->opt[i].level != o->level || l->opt[i].name != o->name); i++)
		;
	if (i < LSW_OPTS)
		l->opt[i] = *o;
}

/* @h, a SETSOCKOPT, as an int option (false: not an int's length). */
static bool opt_of(const struct nk_hdr *h, const struct he_iov *iov, struct lsw_opt *o)
{
	if (h->len != sizeof(o->val))
		return false;
	he_iov_read(iov, HDR_LEN, &o->val, sizeof(o->val));
	o->level = h->arg[0];
	o->name = h->arg[1];
	o->set = true;
	return true;
}

static void opt_set(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
		    struct he_lsw *l)
{
	struct lsw_opt o;

	if (opt_of(h, iov, &o)) {
		/* Linux's ranges of the keepalive options. */
		if (o.level == IPPROTO_TCP &&
		    (((o.name == TCP_KEEPIDLE || o.name == TCP_KEEPINTVL) &&
		      (o.val < 1 || o.val > 32767)) ||
		     (o.name == TCP_KEEPCNT && (o.val < 1 || o.val > 127))))
			return reply(g, h, -EINVAL);
		opt_keep(l, &o);
	}
	reply(g, h, 0);
}

/*
 * An int option of a switched socket without an NSM socket (the accepted
 * side, a client whose NSM is gone): as set, else Linux's default (0 but
 * a few).
 */
static void opt_get(struct he_ep *g, struct nk_hdr *h, struct he_lsw *l)
{
	unsigned int i;
	int32_t v = 0;

	if (h->arg[0] == IPPROTO_TCP && h->arg[1] == TCP_KEEPIDLE)
		v = 7200;
	else if (h->arg[0] == IPPROTO_TCP && h->arg[1] == TCP_KEEPINTVL)
		v = 75;
	else if (h->arg[0] == IPPROTO_TCP && h->arg[1] == TCP_KEEPCNT)
		v = 9;
	for (i = 0; i < LSW_OPTS && l->opt[i].set; i++)
		if (l->opt[i].level == h->arg[0] && l->opt[i].name == h->arg[1])
			v = l->opt[i].val;
	reply_data(g, h, 0, &v, RTE_MIN(h->arg[2], (uint64_t)sizeof(v)), NULL);
}

bool lsw_request(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
		 struct he_map *m)
{
	struct he_lsw *l = m->lsw;
	struct nk_addr a;
	uint32_t unread;
	bool reset;

	if (h->op == NK_OP_SETSOCKOPT)
		opt_seen(m, h, iov);
	if (!m->local) {
		switch (h->op) {
		case NK_OP_BIND:
			if (h->len != ADDR_LEN)
				return false;
			he_iov_read(iov, HDR_LEN, &a, sizeof(a));
			if (tw_conflict(m, &a)) {
				reply(g, h, -EADDRINUSE);
				return true;
			}
			if (l || (l = lsw_get(m)))
				l->bind_try = a;
			return false;
		case NK_OP_LISTEN:
			if (l || (l = lsw_get(m)))
				l->backlog_try = RTE_MIN(h->arg[0], (uint64_t)LSW_BACKLOG_MAX);
			return false;
		case NK_OP_CONNECT:
			return lsw_connect(g, h, iov, m);
		default:
			return false;
		}
	}
	if (!l) {
		/* Cannot be: the state goes only with a reset or the CLOSE. */
		reply(g, h, -ECONNRESET);
		return true;
	}
	if (credit_tell(l) || (l->linked && flush(l))) {
		lsw_overflow(l->peer ? l->peer->m : m);	/* resets both */
		if (h->op != NK_OP_CLOSE) {
			reply(g, h, m->reset_err);
		} else {
			map_drop(m, true, false);
			reply(g, h, 0);
		}
		return true;
	}
	switch (h->op) {
	case NK_OP_SEND:
		lsw_send(g, h, iov, m);
		return true;
	case NK_OP_CREDIT:
		return true;
	case NK_OP_SHUTDOWN:
		lsw_shutdown(g, h, l);
		return true;
	case NK_OP_GETSOCKNAME:
	case NK_OP_GETPEERNAME:
		if (h->op == NK_OP_GETSOCKNAME)
			addr_make(&a, l->family, &l->lip, l->lport);
		else
			addr_make(&a, l->family, &l->rip, l->rport);
		reply_data(g, h, 0, &a, ADDR_LEN, NULL);
		return true;
	case NK_OP_IOCTL:
		lsw_ioctl(g, h, l);
		return true;
	case NK_OP_GETSOCKOPT:
		if (h->arg[0] == IPPROTO_TCP && h->arg[1] == TCP_INFO) {
			lsw_tcp_info(g, h, l);
			return true;
		}
		if (m->nsm)
			return false;
		opt_get(g, h, l);
		return true;
	case NK_OP_SETSOCKOPT:
		if (!m->nsm) {
			opt_set(g, h, iov, l);
			return true;
		}
		/* Its NSM's answer decides; kept for when the NSM is gone. */
		if (!opt_of(h, iov, &l->opt_try))
			l->opt_try.set = false;
		return false;
	case NK_OP_CONNECT:
		if (h->len >= sizeof(uint16_t)) {
			uint16_t family;

			he_iov_read(iov, HDR_LEN, &family, sizeof(family));
			if (family == AF_UNSPEC) {
				/* connect(AF_UNSPEC) dissolves it: both sides reset, as TCP's. */
				reply(g, h, 0);
				he_cnt_add(g, HE_C_RESETS, 1);
				map_reset(m, -ECONNRESET);
				return true;
			}
		}
		reply(g, h, -EISCONN);
		return true;
	case NK_OP_LISTEN:
	case NK_OP_ACCEPT:
		reply(g, h, -EINVAL);
		return true;
	case NK_OP_CLOSE:
		/* Data it never read: the peer is reset, as by TCP. */
		unread = m->to_guest.tx_cnt - m->to_guest.peer_fwd_cnt;
		reset = unread || (l->linked && l->inq_bytes) || m->linger0;
		/* Its FIN went first (now or at its SHUTDOWN): TIME_WAIT is its. */
		if (!reset && (l->shut_wr ? l->shut_first : !l->eof_recv))
			tw_add(m, l);
		lsw_gone(m, reset ? -ECONNRESET : 0);
		if (m->nsm)
			return false;	/* its NSM socket closes as usual */
		map_drop(m, true, true);
		reply(g, h, 0);
		return true;
	default:
		break;
	}
	/* Options and BIND: the client's NSM socket, if it has one. */
	if (m->nsm)
		return false;
	reply(g, h, h->op == NK_OP_SETSOCKOPT ? 0 : h->op == NK_OP_GETSOCKOPT ? -ENOPROTOOPT :
		    -EINVAL);
	return true;
}

/* ---- listener state from the NSM's answers ---- */

/* A socket that listens on a known port goes on its guest's list. */
static void listen_check(struct he_lsw *l)
{
	struct he_map *m = l->m;

	if (l->listening || !l->listen_ok || !l->bound.family || !l->bound.port || !m->guest)
		return;
	l->listening = true;
	LIST_INSERT_HEAD(&m->guest->listeners, l, llink);
}

void lsw_replied(struct he_map *m, uint16_t op, int32_t status)
{
	struct he_lsw *l = m->lsw;

	if (l && op == NK_OP_SETSOCKOPT) {
		if (!status && l->opt_try.set)
			opt_keep(l, &l->opt_try);
		l->opt_try.set = false;
		return;
	}
	if (!l || m->local || status)
		goto out;
	if (op == NK_OP_BIND && l->bind_try.family)
		l->bound = l->bind_try;
	if (op == NK_OP_LISTEN) {
		l->backlog = l->backlog_try;
		l->listen_ok = true;
		listen_check(l);
	}
out:
	if (l && op == NK_OP_BIND)
		memset(&l->bind_try, 0, sizeof(l->bind_try));
}

/*
 * The NSM's GETSOCKNAME answer for a socket that bound or listens: its
 * port, when the NSM chose it (bind to port 0, listen without bind).  A
 * Linux guest asks after each BIND and LISTEN, before they return.
 */
void lsw_sockname(struct he_map *m, const struct he_iov *iov)
{
	struct he_lsw *l = m->lsw;
	struct nk_addr a;

	if (!l || m->local || (!l->bound.family && !l->listen_ok))
		return;
	he_iov_read(iov, HDR_LEN, &a, sizeof(a));
	if (nk_addr_check(&a) || (l->listening && a.port != l->bound.port))
		return;
	l->bound = a;
	listen_check(l);
}

uint64_t lsw_ev_accept(struct he_map *m, uint64_t n)
{
	if (!m->lsw || !m->lsw->listening)
		return n;
	m->lsw->nsm_waiting = n;
	return n + m->lsw->ready;
}

/* ---- endings ---- */

void lsw_gone(struct he_map *m, int err)
{
	struct he_lsw *l = m->lsw, *c, *p;

	if (!l)
		return;
	m->lsw = NULL;
	if (l->listening) {
		LIST_REMOVE(l, llink);
		while ((c = TAILQ_FIRST(&l->queue))) {
			TAILQ_REMOVE(&l->queue, c, qlink);
			c->listener = NULL;
			queued_end(c);
		}
	}
	if (l->listener && !err) {
		/*
		 * Closed in order before its ACCEPT: it stays in the queue, as
		 * TCP's established connection does, with its data and EOF.
		 */
		l->m = NULL;
		l->shut_wr = true;
		defer_end(l);	/* its FIN */
		return;
	}
	if (l->listener) {
		TAILQ_REMOVE(&l->listener->queue, l, qlink);
		l->listener->queued--;
		if (!l->deferred)
			l->listener->ready--;
	}
	inq_free(l);
	p = l->peer;
	if (p) {
		p->peer = NULL;
		if (err) {
			map_reset(p->m, -ECONNRESET);
		} else {
			/* EOF after what it has not had yet of this side's data. */
			p->peer_closed = true;
			if (!l->shut_wr && send_eof(p))
				lsw_overflow(p->m);
		}
	}
	free(l);
}

bool lsw_nsm_gone(struct he_map *m)
{
	/* An opt_try left is never answered now, so never kept. */
	return m->local && m->lsw;
}

void lsw_info(const struct he_map *m, struct he_sock_info *s)
{
	const struct he_lsw *p = m->lsw ? m->lsw->peer : NULL;

	s->local = m->local;
	s->peer[0] = '\0';
	s->peer_sock = 0;
	if (p && p->m->guest) {
		snprintf(s->peer, sizeof(s->peer), "%s", p->m->guest->name);
		s->peer_sock = p->m->guest_sock;
	}
}
