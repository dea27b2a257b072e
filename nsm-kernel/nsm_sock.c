// SPDX-License-Identifier: GPL-2.0
/*
 * nsm_kernel.ko: the kernel sockets' side.  Socket callbacks, the event
 * work that turns what happened on a socket into events, guest data waiting
 * for send space, a socket's references, releasing a socket and draining a
 * closed one.  It calls into nsm_out.c only.  The implementation notes are
 * at the top of nsm_main.c.
 *
 * Locking (order in nsm_main.c): this file owns the shards' ready_lock
 * (_bh) and nsm_dev.drain_lock.  The callbacks run in softirq context, on
 * any CPU, with sk_callback_lock read-held and take only the socket's
 * shard's ready_lock; they never sleep and never touch the socket's
 * state.  Each shard's ev_work runs on its CPU, at once with the others'
 * and with the shards' requests, and holds one nsm_sock.lock at a time,
 * and its ready_lock only to take a socket off its ready list; a shard's
 * ev_hi_work (sparse guests' sockets, on the high-priority workqueue) may
 * run at once with its ev_work, so their periods (nsm_shard.ev_cur,
 * ev_last, ev_seq) are under the shard's ev_period_lock (spin, taken with
 * nothing else held but nsm_sock.lock), and a socket's share of them
 * (nsm_sock.rb_*) under the socket's lock.
 * drain_work takes a reference under drain_lock, drops it, then takes the
 * socket's lock and checks the socket is still draining.  Every other
 * function here but nsm_sock_hold() and nsm_sock_put() is called with
 * nsm_sock.lock held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errqueue.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/module.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "nsm.h"

static unsigned int sock_budget = 65536;
module_param(sock_budget, uint, 0644);
MODULE_PARM_DESC(sock_budget,
		 "Bytes ev_work reads from one socket before it turns to the next, times its guest's weight (default 65536)");

static unsigned int drain_timeout = 60;
module_param(drain_timeout, uint, 0644);
MODULE_PARM_DESC(drain_timeout,
		 "Seconds a closed socket may take to hand its queued data to TCP before it is reset, 1..86400 (default 60)");

static unsigned int guest_max_draining = 64;
module_param(guest_max_draining, uint, 0644);
MODULE_PARM_DESC(guest_max_draining,
		 "Closed sockets per guest that may still drain; a CLOSE beyond resets (default 64)");

/* Sockets ev_work serves before it requeues itself. */
#define NSM_EV_BATCH	64

static unsigned int ev_turn_shared = 4;
module_param(ev_turn_shared, uint, 0644);
MODULE_PARM_DESC(ev_turn_shared,
		 "Sockets ev_work serves before the CPU's other work has a turn, once it met two guests' sockets, 1..64 (default 4; 64: as for one guest)");

static bool rcvbuf_share = true;
module_param(rcvbuf_share, bool, 0644);
MODULE_PARM_DESC(rcvbuf_share,
		 "While a heavier guest's streams compete, size a lighter guest's stream receive buffers for its weight's share of the NSM's reading (default on)");

/* Guest data the kernel socket has not taken yet. */
struct nsm_chunk {
	struct list_head node;
	u32 len;
	u32 off;
	unsigned int msg_flags;
	int tolen;			/* 0: no destination address */
	struct sockaddr_storage to;
	u8 data[];
};

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */
/* ------------------------------------------------------------------ */

/**
 * nsm_sock_kick() - have ev_work look at @ns
 * @ns: a socket with callbacks installed, or one the caller holds
 *
 * Any context but hard interrupts.
 */
void nsm_sock_kick(struct nsm_sock *ns)
{
	struct nsm_shard *sh = ns->shard;
	bool hi = READ_ONCE(ns->g->sparse);

	spin_lock_bh(&sh->ready_lock);
	if (!ns->queued && !sh->ev_stop) {
		ns->queued = true;
		refcount_inc(&ns->ref);
		list_add_tail(&ns->ready_node, hi ? &sh->ready_hi : &sh->ready);
		if (!sh->ev_throttled)
			nsm_ev_queue(sh, hi);
	}
	spin_unlock_bh(&sh->ready_lock);
}

/*
 * The nsm_sock behind @sk; sk_callback_lock is read-held.  A connection
 * waiting in our listener's accept queue inherited the listener's
 * callbacks and sk_user_data: it is not ns->sk, so it chains to the
 * listener's saved callbacks (the same functions) without queueing
 * anything.  An orphaned child may outlive the listener: never look at it.
 */
static struct nsm_sock *nsm_sk_ns(struct sock *sk)
{
	if (sock_flag(sk, SOCK_DEAD))
		return NULL;
	return sk->sk_user_data;
}

/* The callbacks to chain to from @sk: a second listener has its own. */
static const struct nsm_sk_cbs *nsm_sk_cbs(struct nsm_sock *ns,
					   struct sock *sk)
{
	return sk == ns->sk6 ? &ns->orig6 : &ns->orig;
}

/*
 * What every callback does: with sk_callback_lock read-held, kick ev_work
 * for @sk's socket (for write_space, @blocked, only while its txq waits)
 * and copy the callbacks @sk had before ours to @orig.  The caller chains
 * to its own one once the lock is dropped.  A listener's child or a
 * socket no longer ours is not kicked.
 *
 * Return: false when @sk is not ours any more: nothing to chain to.
 */
static bool nsm_sk_forward(struct sock *sk, bool blocked,
			   struct nsm_sk_cbs *orig)
{
	struct nsm_sock *ns;

	read_lock_bh(&sk->sk_callback_lock);
	ns = nsm_sk_ns(sk);
	if (ns) {
		*orig = *nsm_sk_cbs(ns, sk);
		if ((ns->sk == sk || ns->sk6 == sk) &&
		    (!blocked || READ_ONCE(ns->tx_blocked)))
			nsm_sock_kick(ns);
	}
	read_unlock_bh(&sk->sk_callback_lock);
	return ns;
}

static void nsm_data_ready(struct sock *sk)
{
	struct nsm_sk_cbs orig;

	if (nsm_sk_forward(sk, false, &orig))
		orig.data_ready(sk);
}

/* UDP calls this for every packet freed: kick only when it matters. */
static void nsm_write_space(struct sock *sk)
{
	struct nsm_sk_cbs orig;

	if (nsm_sk_forward(sk, true, &orig))
		orig.write_space(sk);
}

static void nsm_state_change(struct sock *sk)
{
	struct nsm_sk_cbs orig;

	if (nsm_sk_forward(sk, false, &orig))
		orig.state_change(sk);
}

static void nsm_error_report(struct sock *sk)
{
	struct nsm_sk_cbs orig;

	if (nsm_sk_forward(sk, false, &orig))
		orig.error_report(sk);
}

/*
 * Install our callbacks on @sk, ns->sock's (@six false) or ns->sock6's,
 * saving the ones to restore on release: @orig, or @sk's current ones.
 */
static void nsm_sk_install(struct nsm_sock *ns, struct sock *sk, bool six,
			   const struct nsm_sk_cbs *orig)
{
	struct nsm_sk_cbs *saved = six ? &ns->orig6 : &ns->orig;

	write_lock_bh(&sk->sk_callback_lock);
	if (orig) {
		*saved = *orig;
	} else {
		saved->data_ready = sk->sk_data_ready;
		saved->write_space = sk->sk_write_space;
		saved->state_change = sk->sk_state_change;
		saved->error_report = sk->sk_error_report;
	}
	if (six)
		ns->sk6 = sk;
	else
		ns->sk = sk;
	sk->sk_user_data = ns;
	sk->sk_data_ready = nsm_data_ready;
	sk->sk_write_space = nsm_write_space;
	sk->sk_state_change = nsm_state_change;
	sk->sk_error_report = nsm_error_report;
	write_unlock_bh(&sk->sk_callback_lock);
}

/* Give @sk back the callbacks @orig it had before ours. */
static void nsm_sk_restore(struct sock *sk, const struct nsm_sk_cbs *orig)
{
	write_lock_bh(&sk->sk_callback_lock);
	sk->sk_user_data = NULL;
	sk->sk_data_ready = orig->data_ready;
	sk->sk_write_space = orig->write_space;
	sk->sk_state_change = orig->state_change;
	sk->sk_error_report = orig->error_report;
	write_unlock_bh(&sk->sk_callback_lock);
}

/**
 * nsm_sock_set_callbacks() - install our callbacks on ns->sock
 * @ns: the socket, locked
 * @orig: the callbacks to restore on release, or NULL for the socket's
 *        current ones.  A socket from kernel_accept() carries its
 *        listener's callbacks (ours): it gets the listener's saved ones.
 */
void nsm_sock_set_callbacks(struct nsm_sock *ns, const struct nsm_sk_cbs *orig)
{
	nsm_sk_install(ns, ns->sock->sk, false, orig);
}

/**
 * nsm_sock_set_callbacks6() - install our callbacks on ns->sock6
 * @ns: the socket, locked
 */
void nsm_sock_set_callbacks6(struct nsm_sock *ns)
{
	nsm_sk_install(ns, ns->sock6->sk, true, NULL);
}

/* Release ns->sock6, if any, with its callbacks restored.  @ns is locked. */
void nsm_sock_release6(struct nsm_sock *ns)
{
	struct sock *sk = ns->sk6;

	if (!ns->sock6)
		return;
	if (sk) {
		nsm_sk_restore(sk, &ns->orig6);
		ns->sk6 = NULL;
	}
	if (ns->dgram_peer == ns->sock6)
		ns->dgram_peer = NULL;
	sock_release(ns->sock6);
	ns->sock6 = NULL;
}

/* ------------------------------------------------------------------ */
/* Guest data towards the world                                        */
/* ------------------------------------------------------------------ */

static int nsm_sock_send(struct nsm_sock *ns, const void *data, u32 len,
			 unsigned int msg_flags,
			 const struct sockaddr_storage *to, int tolen)
{
	struct msghdr msg = {
		.msg_flags = msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL,
	};
	struct kvec kv = { .iov_base = (void *)data, .iov_len = len };

	/* Connected: the kernel socket the peer is on (see nsm_op_connect()). */
	struct socket *sock = tolen ? ns->sock : ns->dgram_peer ?: ns->sock;

	if (tolen) {
		msg.msg_name = (void *)to;
		msg.msg_namelen = tolen;
		/* A dual-stack datagram socket's IPv6 peers: see nsm_bind6(). */
		if (ns->sock6 && to->ss_family == AF_INET6 &&
		    !ipv6_addr_v4mapped(&((struct sockaddr_in6 *)to)->sin6_addr))
			sock = ns->sock6;
	}
	return kernel_sendmsg(sock, &msg, &kv, 1, len);
}

static void nsm_txq_purge(struct nsm_sock *ns)
{
	struct nsm_chunk *c, *tmp;

	list_for_each_entry_safe(c, tmp, &ns->txq, node) {
		nsm_sock_consumed(ns, c->len - c->off);
		list_del(&c->node);
		kfree(c);
	}
	ns->txq_bytes = 0;
	WRITE_ONCE(ns->tx_blocked, false);
}

/* A SEND failed after it was accepted: tell the guest (SEND replies only fail). */
static void nsm_sock_send_failed(struct nsm_sock *ns, int err)
{
	if (!ns->closed)
		nsm_msg(ns->nsm, ns, ns->id, NK_OP_SEND, NK_F_REPLY, 0, err, 0,
			NULL, 0);
}

/*
 * Push the txq into the kernel socket.  Return: 0 when it is empty,
 * -EAGAIN when the socket is full (write_space queues the socket again), or
 * the error that made a stream socket drop its queue.
 */
static int nsm_txq_push(struct nsm_sock *ns)
{
	struct nsm_chunk *c;
	int r;

	/* Set before trying, so that no write_space can slip in between. */
	WRITE_ONCE(ns->tx_blocked, true);
	while ((c = list_first_entry_or_null(&ns->txq, struct nsm_chunk,
					     node))) {
		r = nsm_sock_send(ns, c->data + c->off, c->len - c->off,
				  c->msg_flags, &c->to, c->tolen);
		if (r == -EAGAIN)
			return r;
		if (r < 0) {
			nsm_sock_send_failed(ns, r);
			if (ns->type == SOCK_STREAM) {
				nsm_txq_purge(ns);
				return r;
			}
			/* A datagram that failed is dropped; the others go on. */
			r = c->len - c->off;
		}
		c->off += r;
		ns->txq_bytes -= r;
		nsm_sock_consumed(ns, r);
		if (c->off < c->len)
			return -EAGAIN;
		list_del(&c->node);
		kfree(c);
	}
	WRITE_ONCE(ns->tx_blocked, false);
	return 0;
}

/**
 * nsm_sock_write() - send guest data, keeping what does not fit
 * @ns: the socket, locked; the bytes are within the credit it announced
 * @data: the data
 * @len: its length
 * @msg_flags: MSG_* flags from the SEND
 * @to: destination, used when @tolen is not 0
 * @tolen: its length
 *
 * Return: 0 when the data was sent or queued, or the error of the SEND
 * (the bytes then count as consumed).
 */
int nsm_sock_write(struct nsm_sock *ns, const void *data, u32 len,
		   unsigned int msg_flags, const struct sockaddr_storage *to,
		   int tolen)
{
	struct nsm_chunk *c;
	int r;

	if (list_empty(&ns->txq)) {
		r = nsm_sock_send(ns, data, len, msg_flags, to, tolen);
		if (r < 0 && r != -EAGAIN) {
			nsm_sock_consumed(ns, len);
			return r;
		}
		if (r >= 0) {
			nsm_sock_consumed(ns, r);
			data += r;
			len -= r;
			if (!len)
				return 0;
		}
	}

	c = kmalloc(struct_size(c, data, len), GFP_KERNEL);
	if (!c) {
		nsm_sock_consumed(ns, len);
		return -ENOMEM;
	}
	c->len = len;
	c->off = 0;
	c->msg_flags = msg_flags;
	c->tolen = tolen;
	if (tolen)
		memcpy(&c->to, to, tolen);
	memcpy(c->data, data, len);
	list_add_tail(&c->node, &ns->txq);
	ns->txq_bytes += len;
	/* ev_work retries with tx_blocked set: no write_space is lost. */
	WRITE_ONCE(ns->tx_blocked, true);
	nsm_sock_kick(ns);
	return 0;
}

/* Tell the guest about consumed data once it matters (nk_msg.h). */
void nsm_sock_credit(struct nsm_sock *ns)
{
	if (!ns->closed && nk_credit_rx_need_update(&ns->rx))
		nsm_event(ns, NK_OP_CREDIT, 0, 0);
}

/* ev_work: the txq, and what waited for it to drain. */
static void nsm_sock_flush(struct nsm_sock *ns)
{
	int err;

	err = nsm_txq_push(ns);
	if (err == -EAGAIN)
		return;
	if (ns->shut_wr_pending) {
		ns->shut_wr_pending = false;
		kernel_sock_shutdown(ns->sock, SHUT_WR);
	}
	if (!err && !ns->closed)
		nsm_event(ns, NK_EV_WRITABLE, 0, 0);
}

/* ------------------------------------------------------------------ */
/* The world towards the guest                                         */
/* ------------------------------------------------------------------ */

static int nsm_recv_from(struct socket *sock, struct msghdr *msg, void *buf,
			 u32 len, int flags)
{
	struct kvec kv = { .iov_base = buf, .iov_len = len };

	return kernel_recvmsg(sock, msg, &kv, len ? 1 : 0, len,
			      flags | MSG_DONTWAIT);
}

static int nsm_recv(struct nsm_sock *ns, struct msghdr *msg, void *buf,
		    u32 len, int flags)
{
	return nsm_recv_from(ns->sock, msg, buf, len, flags);
}

/* The kernel socket's local address, as the wire carries it.  @ns is locked. */
int nsm_sock_name(struct nsm_sock *ns, struct nk_addr *na)
{
	struct sockaddr_storage ss;
	int len;

	len = kernel_getsockname(ns->sock, (struct sockaddr *)&ss);
	if (len < 0)
		return len;
	return nk_addr_from_sockaddr(na, (struct sockaddr *)&ss, len);
}

static void nsm_check_connect(struct nsm_sock *ns)
{
	int state = READ_ONCE(ns->sock->sk->sk_state);
	struct nk_addr local;
	int err;

	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV)
		return;
	ns->connecting = false;
	if (state == TCP_CLOSE) {
		err = sock_error(ns->sock->sk);
		nsm_event(ns, NK_EV_ERROR, err ?: -ECONNREFUSED, 0);
		return;
	}
	ns->connected = true;
	/* With the local address, so that the guest need not ask for it. */
	err = nsm_sock_name(ns, &local);
	nsm_msg(ns->nsm, ns, ns->id, NK_EV_CONNECTED, 0, 0, 0, 0, &local,
		err ? 0 : sizeof(local));
}

static void nsm_check_accept(struct nsm_sock *ns)
{
	u32 n = READ_ONCE(ns->sock->sk->sk_ack_backlog);

	if (ns->sock6)
		n += READ_ONCE(ns->sock6->sk->sk_ack_backlog);

	if (n == ns->accept_sent)
		return;
	ns->accept_sent = n;
	if (n)
		nsm_event(ns, NK_EV_ACCEPT, 0, n);
}

/*
 * A stream socket with nothing left to read: errors, then EOF.  @shutdown
 * is sk_shutdown as it was when the receive queue was seen empty: read
 * now, it could announce a FIN that arrived after data still unread.
 */
static void nsm_check_stream_state(struct nsm_sock *ns, u8 shutdown)
{
	struct sock *sk = ns->sock->sk;
	u8 hup = 0;
	int err;

	err = sock_error(sk);
	if (err)
		nsm_event(ns, NK_EV_ERROR, err, 0);
	if (shutdown & RCV_SHUTDOWN)
		hup |= NK_SHUT_RD;
	if (shutdown & SEND_SHUTDOWN)
		hup |= NK_SHUT_WR;
	hup &= ~ns->hup_sent;
	if (hup) {
		ns->hup_sent |= hup;
		nsm_event(ns, NK_EV_HUP, 0, hup);
	}
}

/*
 * Bytes ev_work reads from @ns before it turns to the next socket:
 * sock_budget times its guest's weight, so that guests whose sockets all
 * have data get the NSM's reading in proportion to their weights.
 */
static u32 nsm_sock_budget(const struct nsm_sock *ns)
{
	return min_t(u64, (u64)max(READ_ONCE(sock_budget), 1U) *
		     READ_ONCE(ns->g->weight), U32_MAX);
}

/*
 * Urgent data that arrived on a socket of a guest that takes it (ns->urg:
 * SO_OOBINLINE, so the byte stays in the stream; tcp_urg() set urg_data
 * and called sk_data_ready): take the byte as recv(MSG_OOB) would, so that
 * it is handed over once, and return the mark, the stream sequence number
 * (ns->tx.tx_cnt counts) of the byte, into ns->urg_held/_byte/_mark (a
 * later urgent byte replaces one still held, as a new urgent pointer does
 * in TCP).  Called with the socket owned, in the section that reads
 * tcp_inq(): ev_work never reads past the bytes tcp_inq() counted then,
 * which all come before a mark not yet seen.  nsm_urg_send() sends EV_URG
 * when the bytes before the mark are sent, and ev_work sends none past the
 * mark before it: EV_URG comes after the bytes before the byte and before
 * the EV_DATA that carries it, so a guest woken by it has them to read, as
 * a native reader woken by urgent data has.
 */
static void nsm_urg_take(struct nsm_sock *ns, struct sock *sk)
{
	struct tcp_sock *tp = tcp_sk(sk);
	u16 urg = READ_ONCE(tp->urg_data);

	if (!(urg & TCP_URG_VALID) || !ns->urg)
		return;
	WRITE_ONCE(tp->urg_data, TCP_URG_READ);
	ns->urg_held = true;
	ns->urg_byte = urg & 0xff;
	ns->urg_mark = ns->tx.tx_cnt + (tp->urg_seq - tp->copied_seq);
}

/*
 * Send the held EV_URG once every byte before its mark is sent.  Return:
 * the bytes ev_work may send before the mark (U32_MAX: no mark held).
 */
static u32 nsm_urg_send(struct nsm_sock *ns)
{
	u32 before = ns->urg_mark - ns->tx.tx_cnt;
	struct nsm_out *out;

	if (!ns->urg_held)
		return U32_MAX;
	if (before)
		return before;
	ns->urg_held = false;
	out = nsm_msg_new(ns->id, NK_EV_URG, 0, 0, 0);
	if (!out) {
		pr_warn_ratelimited("socket %u: no memory for EV_URG\n", ns->id);
		return U32_MAX;
	}
	out->tb->hdr.arg[0] = cpu_to_le64(ns->urg_byte);
	out->tb->hdr.arg[1] = cpu_to_le64(ns->urg_mark);
	nsm_xmit(ns->nsm, ns, out);
	return U32_MAX;
}

/*
 * The bytes ev_work may read from @sk (owned) now: tcp_inq(), which stops
 * at an urgent mark until the byte there is read, unless SO_OOBINLINE.
 * A socket whose guest takes urgent data keeps SO_OOBINLINE
 * (nsm_urg_inline()); on any other (its guest did not agree NK_FEAT_URG)
 * the guest's own SO_OOBINLINE decides, and the NSM, which never reads
 * MSG_OOB for it, would wait at the mark for ever.  So there, at a mark
 * whose byte has arrived, the bytes after the byte count: tcp_recvmsg()
 * skips the byte, as it does for a native reader without SO_OOBINLINE,
 * and reads on.  The guest gets the stream without the byte.
 */
static u32 nsm_stream_inq(struct nsm_sock *ns, struct sock *sk)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 avail = tcp_inq(sk);

	if (avail || ns->urg || sock_flag(sk, SOCK_URGINLINE) ||
	    !READ_ONCE(tp->urg_data) || tp->urg_seq != tp->copied_seq ||
	    !before(tp->urg_seq, tp->rcv_nxt) ||
	    ((1 << sk->sk_state) & (TCPF_SYN_SENT | TCPF_SYN_RECV)))
		return avail;
	/* Past the byte; a FIN takes a sequence number and is no byte. */
	avail = tp->rcv_nxt - tp->copied_seq - 1;
	if (avail && sock_flag(sk, SOCK_DONE))
		avail--;
	return avail;
}

/*
 * The event works' periods (NSM_SHARED_TIME each, struct nsm_ev_period):
 * the bytes they read from streams, the weights of the streams they read,
 * each counted once, and the heaviest weight among those they had to cut
 * short (more to read than their turn).  The current period becomes the
 * last one when it is over; one over for longer than a period is
 * forgotten.  Called with the shard's ev_period_lock held.
 */
static struct nsm_ev_period *nsm_ev_period(struct nsm_shard *sh)
{
	unsigned long now = jiffies;

	lockdep_assert_held(&sh->ev_period_lock);

	if (time_before(now, sh->ev_cur.start + NSM_SHARED_TIME))
		return &sh->ev_cur;
	if (time_before(now, sh->ev_cur.start + 2 * NSM_SHARED_TIME))
		sh->ev_last = sh->ev_cur;
	else
		memset(&sh->ev_last, 0, sizeof(sh->ev_last));
	memset(&sh->ev_cur, 0, sizeof(sh->ev_cur));
	sh->ev_cur.start = now;
	sh->ev_seq++;
	return &sh->ev_cur;
}

/*
 * A lighter guest's stream beside a heavier guest's ("Receive buffers" in
 * nsm_main.c), once per period in which ev_work reads @ns, which @got
 * bytes of the last period's reading went to: while ev_work cuts short
 * the streams of a guest heavier than @ns's, @ns's receive buffer shrinks
 * by an eighth when @got was over 1.05 times its weight's share of that
 * reading, and grows by a seventh, up to the buffer it had, when @got was
 * under 0.95 times.  When no heavier stream competes any more, @ns gets
 * back the buffer it had.  A buffer the guest set (SO_RCVBUF, which locks
 * it) is left alone.  Called with nsm_sock.lock held.
 */
static void nsm_rcvbuf_share(struct nsm_sock *ns, struct sock *sk, u64 got,
			     const struct nsm_ev_period *last, u32 wmax)
{
	u32 w = READ_ONCE(ns->g->weight);
	u64 fair, buf, own;
	bool lighter;
	bool slow;

	lighter = READ_ONCE(rcvbuf_share) && last->wsum && w < wmax;
	if (!lighter && !ns->rb_own)
		return;
	slow = lock_sock_fast(sk);
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK) {
		ns->rb_own = 0;
	} else if (!lighter) {
		WRITE_ONCE(sk->sk_rcvbuf, max(sk->sk_rcvbuf, ns->rb_own));
		ns->rb_own = 0;
	} else {
		if (!ns->rb_own)
			ns->rb_own = sk->sk_rcvbuf;
		own = max_t(u64, ns->rb_own, SOCK_MIN_RCVBUF);
		fair = div_u64(last->bytes * w, last->wsum);
		buf = sk->sk_rcvbuf;
		if (got * 20 > fair * 21) {
			buf -= buf / 8;
			nsm_count(ns->nsm, NSM_S_RCVBUF_CUTS, 1);
		} else if (got * 20 < fair * 19) {
			buf += buf / 7;
		}
		WRITE_ONCE(sk->sk_rcvbuf, clamp_t(u64, buf, SOCK_MIN_RCVBUF, own));
	}
	unlock_sock_fast(sk, slow);
}

/*
 * Count @n bytes ev_work read from stream @ns in its period; the first
 * reading of a period counts the stream's weight, and looks at its share
 * of the last period (nsm_rcvbuf_share()).
 */
static void nsm_ev_read(struct nsm_sock *ns, struct sock *sk, u32 n)
{
	struct nsm_shard *sh = ns->shard;
	struct nsm_ev_period *p, last = {};
	bool first = false;
	u64 got = 0;
	u32 wmax = 0;

	spin_lock(&sh->ev_period_lock);
	p = nsm_ev_period(sh);
	if (ns->rb_seq != sh->ev_seq) {
		first = true;
		got = ns->rb_seq == sh->ev_seq - 1 ? ns->rb_bytes : 0;
		ns->rb_seq = sh->ev_seq;
		ns->rb_bytes = 0;
		p->wsum += READ_ONCE(ns->g->weight);
		last = sh->ev_last;
		wmax = max(last.wmax, p->wmax);
	}
	ns->rb_bytes += n;
	p->bytes += n;
	spin_unlock(&sh->ev_period_lock);
	if (first)
		nsm_rcvbuf_share(ns, sk, got, &last, wmax);
}

/* Read stream data within the guest's credit.  Return: budget exhausted. */
static bool nsm_read_stream(struct nsm_sock *ns)
{
	u32 budget = nsm_sock_budget(ns);
	struct sock *sk = ns->sock->sk;
	struct msghdr msg = {};
	struct nsm_ev_period *p;
	struct nsm_out *out;
	u32 space, avail, n;
	u8 shutdown;
	bool slow;
	int r;

	for (;;) {
		/* Owning the socket keeps them consistent. */
		slow = lock_sock_fast(sk);
		shutdown = READ_ONCE(sk->sk_shutdown);
		avail = nsm_stream_inq(ns, sk);
		nsm_urg_take(ns, sk);
		unlock_sock_fast(sk, slow);
		/* Not past a held mark before its EV_URG. */
		avail = min(avail, nsm_urg_send(ns));
		if (!avail)
			break;
		space = nk_credit_tx_space(&ns->tx);
		if (!space)
			return false;	/* the guest's CREDIT queues us again */
		if (!budget) {
			spin_lock(&ns->shard->ev_period_lock);
			p = nsm_ev_period(ns->shard);
			p->wmax = max(p->wmax, READ_ONCE(ns->g->weight));
			spin_unlock(&ns->shard->ev_period_lock);
			return true;
		}

		n = min3(avail, space, budget);
		n = min(n, ns->nsm->max_payload);
		out = nsm_msg_new(ns->id, NK_EV_DATA, 0, 0, n);
		if (!out)
			return true;
		r = nsm_recv(ns, &msg, out->tb->payload, n, 0);
		if (r <= 0) {
			nsm_out_free(out);
			if (r < 0 && r != -EAGAIN)
				nsm_event(ns, NK_EV_ERROR, r, 0);
			break;
		}
		out->tb->hdr.len = cpu_to_le32(r);
		ns->tx.tx_cnt += r;
		ns->bytes_out += r;
		budget -= r;
		nsm_ev_read(ns, sk, r);
		nsm_xmit(ns->nsm, ns, out);
	}
	nsm_check_stream_state(ns, shutdown);
	return false;
}

/* Room for the control messages one datagram or error entry may give. */
#define NSM_CMSG_SPACE	256

/* The most of an error queue entry's data (what the ICMP error quoted). */
#define NSM_ERRQ_DATA	1280

/*
 * Fill @anc with the control messages the kernel wrote to @buf (@used
 * bytes of it) for a datagram or an error queue entry: the ones struct
 * nk_anc carries, each as recvmsg() gave it.  Any other is left out.
 */
static void nsm_anc_fill(struct nk_anc *anc, void *buf, size_t used)
{
	struct msghdr m = { .msg_control = buf, .msg_controllen = used };
	struct sock_extended_err *ee;
	struct in6_pktinfo *pi6;
	struct in_pktinfo *pi;
	u16 present = 0;
	struct cmsghdr *c;
	size_t len;
	void *d;
	int v;

	memset(anc, 0, sizeof(*anc));
	anc->version = NK_ANC_VERSION;
	anc->size = sizeof(*anc);
	for_each_cmsghdr(c, &m) {
		d = CMSG_DATA(c);
		len = c->cmsg_len - CMSG_LEN(0);
		v = len >= sizeof(int) ? *(int *)d : len ? *(u8 *)d : 0;
		switch (c->cmsg_level << 16 | c->cmsg_type) {
		case SOL_IP << 16 | IP_PKTINFO:
			if (len < sizeof(*pi))
				break;
			pi = d;
			present |= NK_ANC_PKTINFO;
			anc->ifindex = cpu_to_le32(pi->ipi_ifindex);
			memcpy(anc->addr4, &pi->ipi_addr, sizeof(anc->addr4));
			memcpy(anc->spec_dst, &pi->ipi_spec_dst,
			       sizeof(anc->spec_dst));
			break;
		case SOL_IP << 16 | IP_TOS:
			present |= NK_ANC_TOS;
			anc->tos = v;
			break;
		case SOL_IP << 16 | IP_TTL:
			present |= NK_ANC_TTL;
			anc->ttl = v;
			break;
		case SOL_IPV6 << 16 | IPV6_PKTINFO:
			if (len < sizeof(*pi6))
				break;
			pi6 = d;
			present |= NK_ANC_PKTINFO6;
			anc->ifindex = cpu_to_le32(pi6->ipi6_ifindex);
			memcpy(anc->addr6, &pi6->ipi6_addr, sizeof(anc->addr6));
			break;
		case SOL_IPV6 << 16 | IPV6_TCLASS:
			present |= NK_ANC_TCLASS;
			anc->tclass = v;
			break;
		case SOL_IPV6 << 16 | IPV6_HOPLIMIT:
			present |= NK_ANC_HOPLIMIT;
			anc->hoplimit = v;
			break;
		case SOL_IP << 16 | IP_RECVERR:
		case SOL_IPV6 << 16 | IPV6_RECVERR:
			if (len < sizeof(*ee))
				break;
			ee = d;
			present |= c->cmsg_level == SOL_IP ? NK_ANC_ERR :
							     NK_ANC_ERR6;
			anc->ee_errno = cpu_to_le32(ee->ee_errno);
			anc->ee_origin = ee->ee_origin;
			anc->ee_type = ee->ee_type;
			anc->ee_code = ee->ee_code;
			anc->ee_info = cpu_to_le32(ee->ee_info);
			anc->ee_data = cpu_to_le32(ee->ee_data);
			if (SO_EE_OFFENDER(ee)->sa_family != AF_UNSPEC)
				nk_addr_from_sockaddr(&anc->offender,
						      SO_EE_OFFENDER(ee),
						      len - sizeof(*ee));
			break;
		}
	}
	anc->present = cpu_to_le16(present);
}

/* Whether the guest has @sk's error queue (IP_RECVERR, IPV6_RECVERR). */
static bool nsm_errq_guest(const struct nsm_sock *ns, struct sock *sk)
{
	return ns->anc && (nsm_inet_flag(sk, recverr, RECVERR) ||
			   (sk->sk_family == AF_INET6 &&
			    nsm_inet6_flag(sk, recverr, RECVERR6)));
}

/*
 * Forward the entries of @sock's error queue (IP_RECVERR, IPV6_RECVERR)
 * within the guest's credit: EV_DATA with NK_F_ANC, the entry's error and
 * offender in the nk_anc, the destination of the datagram that failed in
 * the nk_addr, what the error quoted of it as data (at most
 * NSM_ERRQ_DATA bytes, less when the credit has less room).  An entry
 * struct nk_anc cannot carry is dropped and counted.
 * Return: the credit ran out (the guest's CREDIT queues us again).
 */
static bool nsm_read_errqueue(struct nsm_sock *ns, struct socket *sock)
{
	u32 meta = sizeof(struct nk_anc) + sizeof(struct nk_addr);
	u8 cbuf[NSM_CMSG_SPACE];
	struct sockaddr_storage ss;
	struct msghdr msg;
	struct nsm_out *out;
	struct nk_addr *na;
	struct nk_anc *anc;
	u32 n;
	int r;

	while (!skb_queue_empty_lockless(&sock->sk->sk_error_queue)) {
		n = min3(ns->nsm->max_payload - meta, (u32)NSM_ERRQ_DATA,
			 nk_credit_tx_space(&ns->tx));
		if (!n)
			return true;
		out = nsm_msg_new(ns->id, NK_EV_DATA, NK_F_ADDR | NK_F_ANC, 0,
				  meta + n);
		if (!out)
			return false;
		anc = (struct nk_anc *)out->tb->payload;
		na = (struct nk_addr *)(anc + 1);
		memset(&msg, 0, sizeof(msg));
		msg.msg_name = &ss;
		msg.msg_namelen = sizeof(ss);
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		r = nsm_recv_from(sock, &msg, na + 1, n, MSG_ERRQUEUE);
		if (r < 0) {
			nsm_out_free(out);
			return false;
		}
		nsm_anc_fill(anc, cbuf, sizeof(cbuf) - msg.msg_controllen);
		if (nk_anc_check(anc) ||
		    !(anc->present & cpu_to_le16(NK_ANC_ERR | NK_ANC_ERR6)) ||
		    nk_addr_from_sockaddr(na, (struct sockaddr *)&ss,
					  msg.msg_namelen)) {
			nsm_out_free(out);
			nsm_count(ns->nsm, NSM_S_DGRAM_DROPS, 1);
			continue;
		}
		out->tb->hdr.len = cpu_to_le32(meta + r);
		ns->tx.tx_cnt += r;
		ns->bytes_out += r;
		nsm_xmit(ns->nsm, ns, out);
	}
	return false;
}

/*
 * Read datagrams from @sock (ns->sock or ns->sock6) within the guest's
 * credit, each with its source address and, when the guest asked for
 * control messages (nsm_sock.anc_rx), the ones the kernel gave in a
 * struct nk_anc first.
 * Return: budget exhausted.
 */
static bool nsm_read_dgram(struct nsm_sock *ns, struct socket *sock)
{
	u32 meta = sizeof(struct nk_addr) +
		   (ns->anc_rx ? sizeof(struct nk_anc) : 0);
	u32 room = ns->nsm->max_payload - meta;
	u32 budget = nsm_sock_budget(ns);
	u8 cbuf[NSM_CMSG_SPACE];
	struct sockaddr_storage ss;
	struct nk_anc *anc = NULL;
	struct msghdr msg;
	struct nsm_out *out;
	struct nk_addr *na;
	int size, r;

	if (ns->anc && nsm_read_errqueue(ns, sock))
		return false;

	while (budget) {
		memset(&msg, 0, sizeof(msg));
		size = nsm_recv_from(sock, &msg, NULL, 0, MSG_PEEK | MSG_TRUNC);
		if (size == -EAGAIN)
			return false;
		budget -= min(budget, (u32)max(size, 0) + 1);
		if (size < 0) {
			/*
			 * A queued ICMP error, as recvmsg() reports it; not
			 * where the guest has the error queue: each error
			 * came with an entry of it, which the guest's
			 * MSG_ERRQUEUE clears the error with.  The entry may
			 * have been forwarded (and sk_err cleared with it) on
			 * this CPU before the ICMP's softirq on another one
			 * set sk_err.
			 */
			if (!nsm_errq_guest(ns, sock->sk))
				nsm_event(ns, NK_EV_ERROR, size, 0);
			continue;
		}
		/*
		 * Too large for a message or for the guest's whole credit
		 * (it announced less than this datagram: it waits for no
		 * credit, as UDP drops what its receive buffer cannot take,
		 * and the ones after it go on), or heard by the socket the
		 * peer is not on.
		 */
		if (size > room || size > ns->tx.peer_buf_alloc ||
		    (ns->dgram_peer && sock != ns->dgram_peer)) {
			memset(&msg, 0, sizeof(msg));
			nsm_recv_from(sock, &msg, NULL, 0, 0);
			nsm_count(ns->nsm, NSM_S_DGRAM_DROPS, 1);
			continue;
		}
		if (nk_credit_tx_space(&ns->tx) < size)
			return false;

		out = nsm_msg_new(ns->id, NK_EV_DATA,
				  NK_F_ADDR | (ns->anc_rx ? NK_F_ANC : 0), 0,
				  meta + size);
		if (!out)
			return true;
		memset(&msg, 0, sizeof(msg));
		na = (struct nk_addr *)out->tb->payload;
		if (ns->anc_rx) {
			anc = (struct nk_anc *)out->tb->payload;
			na = (struct nk_addr *)(anc + 1);
			msg.msg_control = cbuf;
			msg.msg_controllen = sizeof(cbuf);
		}
		msg.msg_name = &ss;
		msg.msg_namelen = sizeof(ss);
		r = nsm_recv_from(sock, &msg, na + 1, size, 0);
		if (r < 0 || (msg.msg_flags & MSG_TRUNC) ||
		    nk_addr_from_sockaddr(na, (struct sockaddr *)&ss,
					  msg.msg_namelen)) {
			nsm_out_free(out);
			if (r == -EAGAIN)
				return false;
			if (r < 0)
				nsm_event(ns, NK_EV_ERROR, r, 0);
			else
				nsm_count(ns->nsm, NSM_S_DGRAM_DROPS, 1);
			continue;
		}
		if (anc)
			nsm_anc_fill(anc, cbuf,
				     sizeof(cbuf) - msg.msg_controllen);
		out->tb->hdr.len = cpu_to_le32(meta + r);
		ns->tx.tx_cnt += r;
		ns->bytes_out += r;
		nsm_xmit(ns->nsm, ns, out);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

/* The socket table's hold function: nk_sockid_get() takes a reference. */
void nsm_sock_hold(void *entry)
{
	struct nsm_sock *ns = entry;

	refcount_inc(&ns->ref);
}

void nsm_sock_put(struct nsm_sock *ns)
{
	if (!refcount_dec_and_test(&ns->ref))
		return;
	WARN_ON_ONCE(ns->sock || ns->sock6 || !list_empty(&ns->txq));
	mutex_destroy(&ns->lock);
	put_net(ns->net);
	kfree(ns);
}
/* ------------------------------------------------------------------ */
/* Release                                                             */
/* ------------------------------------------------------------------ */

/**
 * nsm_sock_release() - restore the callbacks and release the kernel socket
 * @ns: the socket, locked; nothing happens if it is released already
 *
 * SO_LINGER with a timeout would make the release wait: the NSM does not
 * wait (see nsm_main.c), the close stays graceful.  SO_LINGER 0 still
 * resets the connection.
 */
void nsm_sock_release(struct nsm_sock *ns)
{
	struct socket *sock = ns->sock;
	struct sock *sk;

	if (!sock)
		return;
	sk = sock->sk;
	nsm_sock_release6(ns);
	if (ns->sk) {
		nsm_sk_restore(ns->sk, &ns->orig);
		ns->sk = NULL;
	}
	nsm_txq_purge(ns);

	lock_sock(sk);
	if (sock_flag(sk, SOCK_LINGER) && sk->sk_lingertime)
		sock_reset_flag(sk, SOCK_LINGER);
	release_sock(sk);

	ns->sock = NULL;
	ns->dgram_peer = NULL;
	sock_release(sock);
	atomic_long_sub(ns->rx.buf_alloc, &ns->g->credit);
	atomic_dec(&ns->g->socks);
	atomic_dec(&ns->nsm->nsocks);
	nsm_count(ns->nsm, NSM_S_SOCKETS_CLOSED, 1);
}

/**
 * nsm_sock_drained() - release a draining socket for good
 * @ns: the socket, locked, on nsm_dev.draining (or a list detach took it
 *      to); the list's reference is dropped, the caller must hold another
 * @reset: reset the connection (drain_timeout): what is unsent is lost
 *
 * Called when it drained its txq or failed, or its time is up.
 */
void nsm_sock_drained(struct nsm_sock *ns, bool reset)
{
	struct nsm_dev *nsm = ns->nsm;

	if (reset && ns->sock)
		sock_no_linger(ns->sock->sk);
	nsm_sock_release(ns);
	spin_lock(&nsm->drain_lock);
	list_del_init(&ns->drain_node);
	spin_unlock(&nsm->drain_lock);
	atomic_dec(&ns->g->draining);
	nsm_sock_put(ns);
}

/* ------------------------------------------------------------------ */
/* Draining                                                            */
/* ------------------------------------------------------------------ */

/**
 * nsm_drain_start() - let a closed socket drain its txq, if its guest may
 * @ns: the socket, locked, closed, out of the table; the table's reference
 *      moves to the draining list
 *
 * Return: false when the guest has guest_max_draining sockets draining
 * already: the caller resets the socket.
 */
bool nsm_drain_start(struct nsm_sock *ns)
{
	unsigned long timeo = clamp(READ_ONCE(drain_timeout), 1U, 86400U) * HZ;
	struct nsm_dev *nsm = ns->nsm;

	if (!nsm_atomic_inc_below(&ns->g->draining,
				  min_t(unsigned int,
					READ_ONCE(guest_max_draining),
					INT_MAX))) {
		nsm_count(nsm, NSM_S_DRAIN_ABORTS, 1);
		pr_info_ratelimited("guest %u: %d closed sockets draining already, socket %u reset\n",
				    ns->guest, atomic_read(&ns->g->draining),
				    ns->id);
		return false;
	}
	ns->drain_deadline = jiffies + timeo;
	spin_lock(&nsm->drain_lock);
	list_add_tail(&ns->drain_node, &nsm->draining);
	if (!nsm->drain_armed ||
	    time_before(ns->drain_deadline, nsm->drain_next)) {
		nsm->drain_armed = true;
		nsm->drain_next = ns->drain_deadline;
		mod_delayed_work(nsm_wq, &nsm->drain_work, timeo);
	}
	spin_unlock(&nsm->drain_lock);
	return true;
}

/* Reset the draining sockets whose time is up; requeue for the next one. */
void nsm_drain_work(struct work_struct *work)
{
	struct nsm_dev *nsm = container_of(to_delayed_work(work),
					   struct nsm_dev, drain_work);
	struct nsm_sock *ns, *found;
	unsigned long next = 0;

	for (;;) {
		found = NULL;
		spin_lock(&nsm->drain_lock);
		nsm->drain_armed = false;
		list_for_each_entry(ns, &nsm->draining, drain_node) {
			if (!time_before(jiffies, ns->drain_deadline)) {
				refcount_inc(&ns->ref);
				found = ns;
				break;
			}
			if (!nsm->drain_armed ||
			    time_before(ns->drain_deadline, next)) {
				nsm->drain_armed = true;
				next = ns->drain_deadline;
			}
		}
		if (!found) {
			if (nsm->drain_armed) {
				nsm->drain_next = next;
				mod_delayed_work(nsm_wq, &nsm->drain_work,
						 next - jiffies);
			}
			spin_unlock(&nsm->drain_lock);
			return;
		}
		spin_unlock(&nsm->drain_lock);

		/* Whoever holds the socket's lock may have released it. */
		mutex_lock(&found->lock);
		if (found->sock && !list_empty(&found->drain_node)) {
			nsm_count(nsm, NSM_S_DRAIN_TIMEOUTS, 1);
			pr_info_ratelimited("guest %u: socket %u still had %u bytes to hand to TCP after drain_timeout, reset\n",
					    found->guest, found->id,
					    found->txq_bytes);
			nsm_sock_drained(found, true);
		}
		mutex_unlock(&found->lock);
		nsm_sock_put(found);
		cond_resched();
	}
}
/* ------------------------------------------------------------------ */
/* ev_work                                                             */
/* ------------------------------------------------------------------ */

/* Look at everything about @ns.  Return: it has more to do right away. */
static bool nsm_sock_process(struct nsm_sock *ns)
{
	bool more = false;

	mutex_lock(&ns->lock);
	if (!ns->sock)
		goto out;
	if (!list_empty(&ns->txq))
		nsm_sock_flush(ns);
	if (ns->closed) {
		if (list_empty(&ns->txq))
			nsm_sock_drained(ns, false);
		goto out;
	}
	if (ns->connecting)
		nsm_check_connect(ns);
	if (ns->listening)
		nsm_check_accept(ns);
	else if (ns->type == SOCK_DGRAM)
		more = nsm_read_dgram(ns, ns->sock) |
		       (ns->sock6 && nsm_read_dgram(ns, ns->sock6));
	else if (ns->connected)
		more = nsm_read_stream(ns);
	nsm_sock_credit(ns);
out:
	mutex_unlock(&ns->lock);
	return more;
}

/*
 * Reading by weight (sock_budget * weight) holds only while ev_work is
 * what the sockets wait for: ev_work that reads on until every socket is
 * drained reads whatever TCP let in, in TCP's shares.  So once a turn has
 * met two guests' sockets it ends after ev_turn_shared sockets, letting
 * the requests (the guests' credit among them) and tx_work in, and the
 * sockets left on the ready list keep what was not read.  A turn of one
 * guest's sockets has nobody to share with and goes on to NSM_EV_BATCH,
 * which costs fewer switches.
 */
static void nsm_ev_run(struct nsm_shard *sh, bool hi)
{
	struct list_head *ready = hi ? &sh->ready_hi : &sh->ready;
	unsigned int n, batch = NSM_EV_BATCH;
	struct nsm_guest *first = NULL;
	struct nsm_sock *ns;
	u64 t0;

	for (n = 0; n < batch; n++) {
		if (nsm_ev_throttle(sh))
			return;
		spin_lock_bh(&sh->ready_lock);
		ns = list_first_entry_or_null(ready, struct nsm_sock,
					      ready_node);
		if (!ns || sh->ev_stop) {
			spin_unlock_bh(&sh->ready_lock);
			return;
		}
		list_del_init(&ns->ready_node);
		ns->queued = false;
		spin_unlock_bh(&sh->ready_lock);

		if (!first)
			first = ns->g;
		else if (ns->g != first)
			batch = clamp(READ_ONCE(ev_turn_shared), 1U, NSM_EV_BATCH);
		/* Round robin: a socket with more to do goes to the tail. */
		atomic64_inc(&sh->processed);
		t0 = local_clock();
		if (nsm_sock_process(ns))
			nsm_sock_kick(ns);
		nsm_guest_used(sh->nsm, ns->g, local_clock() - t0);
		nsm_sock_put(ns);
		cond_resched();
	}
	nsm_ev_queue(sh, hi);
}

void nsm_ev_work(struct work_struct *work)
{
	nsm_ev_run(container_of(work, struct nsm_shard, ev_work), false);
}

/* The same for the sparse guests' sockets (see "Sparse guests"). */
void nsm_ev_hi_work(struct work_struct *work)
{
	nsm_ev_run(container_of(work, struct nsm_shard, ev_hi_work), true);
}
