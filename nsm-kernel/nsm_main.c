// SPDX-License-Identifier: GPL-2.0
/*
 * nsm_kernel.ko: a NetKernel network stack module (NSM) built on the
 * kernel's own TCP/IP stack.  It binds the nk device in the NSM role and
 * serves the guests' socket requests, which the host engine forwards with
 * socket ids translated, with kernel sockets; what happens on those sockets
 * goes back to the guests as events.
 *
 * Implementation notes:
 *
 * - Requests arrive in the transport's eventq work (ops->rx) and are served
 *   there, one at a time, without blocking: every kernel socket call is
 *   non-blocking (O_NONBLOCK, MSG_DONTWAIT).  ACCEPT answers -EAGAIN when no
 *   connection waits, CONNECT -EINPROGRESS; the guest waits for the events.
 *
 * - Nothing is sent to the transport directly.  Replies and events are
 *   queued on nsm_dev.outq, in order, and tx_work hands them to nk_send().
 *   It never sleeps for requestq space: when the ring is full, the message
 *   goes back to the head of outq (NK_XMIT_KEEP) and tx_work ends; the
 *   transport's ops->tx_space() queues it again once the ring has room.
 *   So a stalled engine holds no worker of nsm_wq, and detach never waits
 *   for one (ops->rx may not wait for the device either).  A
 *   reply or event about a socket is queued with nsm_sock.lock held, so the
 *   guest sees them in the order they happened (the CONNECT reply before
 *   EV_CONNECTED, the ACCEPT reply before the new socket's EV_DATA).
 *
 * - Socket callbacks (data_ready, write_space, state_change, error_report)
 *   only queue the socket on nsm_dev.ready and kick ev_work, then call the
 *   callback they replaced.  ev_work takes sockets in turn, gives each a
 *   byte budget (module parameter sock_budget) and puts it back at the tail
 *   when the budget ran out, so one busy or stalled socket never delays the
 *   others.  There is no thread per socket and no polling.
 *
 * - Memory is bounded by credits in both directions.  World to guest: data
 *   is read from a kernel socket only as far as the guest's credit allows
 *   (nsm_sock.tx); the rest stays in the socket's receive queue, so TCP's
 *   window closes.  Guest to world: each socket announces buf_alloc (module
 *   parameter) and keeps what the kernel socket did not take on its txq;
 *   fwd_cnt advances as the kernel takes bytes.  ev_work also stops reading
 *   while more than out_limit bytes wait for the requestq.
 *
 * - Source addresses.  SOCKET carries the guest's source addresses.  BIND
 *   to the wildcard or to one of them, and the implicit bind before
 *   CONNECT, LISTEN or an unbound datagram SEND, bind the kernel socket to
 *   the guest's address, so guests are told apart on the wire.  A guest
 *   address that is not configured on the NSM is not used: the socket is
 *   refused: BIND, LISTEN and CONNECT answer -EADDRNOTAVAIL, as Linux
 *   does for an address the host does not have.  So does a wildcard BIND
 *   when the guest has no address of the family the socket can use (an
 *   IPV6_V6ONLY socket of a guest without IPv6), and a CONNECT or
 *   datagram SEND to a family the guest has no address of answers
 *   -ENETUNREACH.  Never the wildcard instead: it would be the NSM's own
 *   addresses and every other guest's, so the socket would hear their
 *   traffic.  source_unavailable counts these, with a rate-limited log.
 *   BIND to any other address answers -EADDRNOTAVAIL.  A guest that bound
 *   to the wildcard sees the wildcard in GETSOCKNAME until it connects.
 *   A datagram socket's implicit bind is to the wildcard, as in UDP.
 *   A stream socket's implicit bind before CONNECT is to the address
 *   only (IP_BIND_ADDRESS_NO_PORT): connect() picks the port, unique for
 *   the four-tuple, as for an unbound socket in Linux.  A port bound
 *   first would be held against every destination for as long as its
 *   TIME_WAIT lasts.
 *   A dual-stack AF_INET6 socket bound to the wildcard is bound to the
 *   guest's IPv4 address; when the guest also has an IPv6 address here, a
 *   second kernel socket (nsm_sock.sock6, IPV6_V6ONLY, same port) serves
 *   IPv6, so it is reachable over both as in Linux: a stream socket gets
 *   it at LISTEN (ACCEPT takes from both), a datagram socket at bind
 *   (datagrams are read from both, IPv6 destinations are sent from it,
 *   and a CONNECT to an IPv6 peer connects it; a connected one's other
 *   socket then drops what it hears, as connected UDP filters).
 *
 * - Destinations.  CONNECT and datagram SEND to a loopback or unspecified
 *   address answer -ENETUNREACH, to an address of the NSM itself (which
 *   includes other guests' addresses configured here) -EADDRNOTAVAIL, so a
 *   guest reaches neither the NSM's services nor another tenant's.  So do
 *   link-local destinations, -ENETUNREACH: 169.254.0.0/16 and IPv6
 *   addresses that need a scope id (fe80::/10, link- and interface-local
 *   multicast), whatever scope id the guest gave: those links are the
 *   NSM's, not the guest's (a scope id on other addresses is ignored, as
 *   Linux does).  An IPv4 broadcast destination (255.255.255.255, the
 *   NSM's subnet broadcasts: inet_addr_type() RTN_BROADCAST) answers
 *   -EACCES, what Linux answers without SO_BROADCAST: the NSM's own UDP
 *   services would hear it.  SO_BROADCAST is still accepted (and read
 *   back), it just never lets a broadcast through.  dest_refused counts
 *   all of these.  Datagram sockets are created with multicast loopback
 *   off.
 *
 * - Owners.  Each guest's kernel sockets belong to a uid of their own,
 *   1000000000 + the guest's endpoint id (socket inode and sk_uid; guest
 *   ids from 2^24 up are refused), so SO_REUSEPORT, which only groups
 *   sockets of one uid, never joins two guests' sockets or a guest's and
 *   the NSM's own (root's).  It shows in /proc/net/tcp and in uid routing
 *   rules of the NSM.
 *
 * - CLOSE frees the id at once.  A stream socket whose txq still holds
 *   guest data keeps draining it (nsm_dev.draining) and is released when it
 *   is empty or fails, or reset when drain_timeout (module parameter,
 *   seconds) passes first (drain_timeouts), as TCP gives up on an orphan
 *   whose peer keeps a zero window.  Once released, what TCP still holds
 *   is an ordinary orphan, bounded by tcp_max_orphans, tcp_orphan_retries
 *   and tcp_mem.  SO_LINGER with a zero timeout gives an abortive
 *   close (RST); with a non-zero timeout the close is the ordinary graceful
 *   one, since nobody in the NSM may wait for it: the guest's close() is
 *   where lingering can block.
 *
 * - Limits, per guest (struct nsm_guest; debugfs "guests" shows them).
 *   A guest has at most guest_max_socks kernel sockets, draining ones
 *   included: SOCKET and ACCEPT beyond answer -ENFILE, the "too many open
 *   files in the system" of the guest's share of the NSM (the connection
 *   stays queued, as when accept() fails so); guest_sock_limit counts
 *   them.  The txqs are charged through the credit that bounds them: a
 *   socket's buf_alloc is the most guest data its txq can hold, and a
 *   guest's sockets announce at most guest_txq_max in all; a socket
 *   created beyond gets what is left, at least one message (max_payload,
 *   which a datagram needs), counted in credit_cut.  So one guest's txqs
 *   hold at most guest_txq_max plus max_payload per socket (by default
 *   64 MiB + 1024 * 64 KiB).  At most guest_max_draining of a guest's
 *   closed sockets drain; a CLOSE beyond resets the connection
 *   (drain_aborts), as Linux resets orphans beyond tcp_max_orphans.  A
 *   connect, fill, close loop therefore holds a bounded number of sockets
 *   and bytes on the NSM.
 *
 * - The device going away (ops->detach) stops events, restores every
 *   socket's callbacks, releases every kernel socket, frees what waits for
 *   the requestq, flushes tx_work and frees the struct nsm_dev.  The
 *   transport has already marked the device dead (tx_work's nk_send()
 *   returns -ENODEV at once, ops->tx_space() is not called any more) and
 *   stopped ops->rx, so nothing else uses the nsm_dev.
 *
 * Locking:
 *   nsm_dev.rx_lock (mutex)     request handling vs the debugfs socket list;
 *                               the socket table's changes (detach runs
 *                               after ops->rx has stopped for good and needs
 *                               no lock).  The table's own spinlock is held
 *                               only inside the lib/nk_sockid.c calls.
 *   nsm_sock.lock (mutex)       one socket's state, its txq and credits, and
 *                               every call on its kernel socket
 *   sk->sk_callback_lock (rw)   sk_user_data and the callbacks
 *   nsm_dev.ready_lock (spin, _bh)  the ready list
 *   nsm_dev.drain_lock (spin)   the draining list and drain_work's timer
 *   nsm_guest counters (atomic) grow only under rx_lock (checked, then
 *                               added), shrink under the socket's lock
 *   nsm_dev.out_lock (spin)     the outgoing queue
 * Order: rx_lock -> nsm_sock.lock (a listener's before its new socket's)
 * -> lock_sock -> sk_callback_lock -> ready_lock; drain_lock and out_lock
 * nest inside nsm_sock.lock and take nothing.  drain_work takes a
 * reference under drain_lock, drops it, then takes the socket's lock and
 * checks the socket is still draining.  Socket callbacks run in
 * softirq context and take only sk_callback_lock (read) and ready_lock.
 * No lock is held across nk_send().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/nsproxy.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "../include/netkernel/nk_version.h"
#include "nsm.h"

static int netns_pid;
module_param(netns_pid, int, 0444);
MODULE_PARM_DESC(netns_pid,
		 "Serve sockets in the network namespace of this process (default 0: the initial namespace)");

static unsigned int out_limit = 4 << 20;
module_param(out_limit, uint, 0644);
MODULE_PARM_DESC(out_limit,
		 "Bytes waiting for the requestq above which sockets are not read (default 4 MiB)");

static unsigned int drain_timeout = 60;
module_param(drain_timeout, uint, 0644);
MODULE_PARM_DESC(drain_timeout,
		 "Seconds a closed socket may take to hand its queued data to TCP before it is reset, 1..86400 (default 60)");

static unsigned int guest_max_draining = 64;
module_param(guest_max_draining, uint, 0644);
MODULE_PARM_DESC(guest_max_draining,
		 "Closed sockets per guest that may still drain; a CLOSE beyond resets (default 64)");

/* Kernel sockets of guest N belong to uid NSM_GUEST_UID_BASE + N. */
#define NSM_GUEST_UID_BASE	1000000000u
#define NSM_GUEST_ID_MAX	(1u << 24)

static struct dentry *nsm_debugfs_root;
struct workqueue_struct *nsm_wq;

/* ------------------------------------------------------------------ */
/* Outgoing messages                                                   */
/* ------------------------------------------------------------------ */

/**
 * nsm_msg_new() - allocate a message
 * @id: socket id of the message (0: none)
 * @op: enum nk_op
 * @flags: NK_F_*
 * @req_id: request id (0 for events)
 * @len: payload bytes; hdr.len may be lowered before nsm_xmit()
 *
 * Return: the message or NULL.
 */
struct nsm_out *nsm_msg_new(u32 id, u16 op, u16 flags, u64 req_id, u32 len)
{
	struct nsm_out *out;

	out = kmalloc(sizeof(*out), GFP_KERNEL);
	if (!out)
		return NULL;
	out->tb = nk_txbuf_alloc(len, GFP_KERNEL);
	if (!out->tb) {
		kfree(out);
		return NULL;
	}
	nk_hdr_init(&out->tb->hdr, op, flags, id, req_id);
	out->tb->hdr.len = cpu_to_le32(len);
	return out;
}

static u32 nsm_out_size(const struct nsm_out *out)
{
	return sizeof(out->tb->hdr) + le32_to_cpu(out->tb->hdr.len);
}

void nsm_out_free(struct nsm_out *out)
{
	nk_txbuf_free(out->tb);
	kfree(out);
}

/**
 * nsm_xmit() - queue a message for the requestq
 * @nsm: the device
 * @ns: socket whose receive credit the message announces, or NULL; its
 *      lock is held
 * @out: the message, consumed
 */
void nsm_xmit(struct nsm_dev *nsm, struct nsm_sock *ns, struct nsm_out *out)
{
	struct nk_hdr *hdr = &out->tb->hdr;
	u16 flags = le16_to_cpu(hdr->flags);
	u16 op = le16_to_cpu(hdr->op);

	/* outq is sent in order, all of it unless the device dies */
	if (ns) {
		nk_credit_rx_fill(&ns->rx, hdr);
		nk_credit_rx_queued(&ns->rx, ns->rx.fwd_cnt);
	}
	if (flags & NK_F_REPLY) {
		nsm_count(nsm, NSM_S_REPLIES, 1);
		if (nk_hdr_status(hdr))
			nsm_count(nsm, NSM_S_ERROR_REPLIES, 1);
	} else {
		nsm_count(nsm, NSM_S_EVENTS, 1);
		if (op == NK_EV_DATA)
			nsm_count(nsm, NSM_S_BYTES_TO_GUESTS,
				  le32_to_cpu(hdr->len) -
				  (flags & NK_F_ADDR ? sizeof(struct nk_addr) : 0));
	}

	spin_lock(&nsm->out_lock);
	if (nsm->out_dead) {
		spin_unlock(&nsm->out_lock);
		nsm_out_free(out);
		return;
	}
	list_add_tail(&out->node, &nsm->outq);
	nsm->out_bytes += nsm_out_size(out);
	spin_unlock(&nsm->out_lock);
	queue_work(nsm_wq, &nsm->tx_work);
}

/**
 * nsm_msg() - queue a reply or an event
 * @nsm: the device
 * @ns: socket whose credit the message carries, or NULL (see nsm_xmit())
 * @id: socket id
 * @op: enum nk_op
 * @flags: NK_F_*
 * @req_id: request id (0 for events)
 * @status: 0 or -errno
 * @a0: argument 0
 * @payload: @len bytes of payload, or NULL
 * @len: payload length
 */
void nsm_msg(struct nsm_dev *nsm, struct nsm_sock *ns, u32 id, u16 op,
	     u16 flags, u64 req_id, int status, u64 a0, const void *payload,
	     u32 len)
{
	struct nsm_out *out;

	out = nsm_msg_new(id, op, flags, req_id, len);
	if (!out) {
		pr_warn_ratelimited("socket %u: no memory for %s%s\n", id,
				    nk_op_name(op),
				    flags & NK_F_REPLY ? " reply" : "");
		return;
	}
	out->tb->hdr.status = cpu_to_le32(status);
	out->tb->hdr.arg[0] = cpu_to_le64(a0);
	if (len)
		memcpy(out->tb->payload, payload, len);
	nsm_xmit(nsm, ns, out);
}

/* Queue event @op about @ns, whose lock is held. */
void nsm_event(struct nsm_sock *ns, u16 op, int status, u64 a0)
{
	nsm_msg(ns->nsm, ns, ns->id, op, 0, 0, status, a0, NULL, 0);
}

/* Whether ev_work must wait for the requestq to drain. */
static bool nsm_out_over(struct nsm_dev *nsm, size_t limit)
{
	return READ_ONCE(nsm->out_bytes) > limit;
}

static void nsm_tx_work(struct work_struct *work)
{
	struct nsm_dev *nsm = container_of(work, struct nsm_dev, tx_work);
	struct nsm_out *out;
	bool more = false;
	int err;

	for (;;) {
		spin_lock(&nsm->out_lock);
		out = list_first_entry_or_null(&nsm->outq, struct nsm_out,
					       node);
		if (out) {
			list_del(&out->node);
			nsm->out_bytes -= nsm_out_size(out);
			more = !list_empty(&nsm->outq);
		}
		spin_unlock(&nsm->out_lock);
		if (!out)
			break;

		/*
		 * One kick for what is queued now: only this work takes from
		 * outq.  A full ring: back to the head, in order; tx_space
		 * brings us back (nk_send() kicked what it added before).
		 */
		err = nk_send(nsm->nd, out->tb,
			      NK_XMIT_KEEP | (more ? NK_XMIT_MORE : 0), NULL);
		if (err == -EAGAIN) {
			spin_lock(&nsm->out_lock);
			list_add(&out->node, &nsm->outq);
			nsm->out_bytes += nsm_out_size(out);
			spin_unlock(&nsm->out_lock);
			nsm_count(nsm, NSM_S_TX_RING_FULL, 1);
			return;
		}
		kfree(out);
		if (err) {
			nsm_count(nsm, NSM_S_XMIT_FAILED, 1);
			if (err != -ENODEV)
				pr_warn_ratelimited("cannot queue a message on the requestq: %d\n",
						    err);
		}
		if (READ_ONCE(nsm->ev_throttled) &&
		    !nsm_out_over(nsm, READ_ONCE(out_limit) / 2))
			nsm_ev_unthrottle(nsm);
		cond_resched();
	}
	nk_kick(nsm->nd);
}

/**
 * nsm_ev_throttle() - pause ev_work while the requestq lags
 * @nsm: the device
 *
 * Called by ev_work before it reads a socket; tx_work resumes it once the
 * outgoing queue is below half the limit.
 *
 * Return: true when ev_work must stop.
 */
bool nsm_ev_throttle(struct nsm_dev *nsm)
{
	if (!nsm_out_over(nsm, READ_ONCE(out_limit)))
		return false;
	spin_lock_bh(&nsm->ready_lock);
	nsm->ev_throttled = true;
	spin_unlock_bh(&nsm->ready_lock);
	nsm_count(nsm, NSM_S_THROTTLED, 1);
	/* tx_work may have emptied the queue before it could see the flag. */
	if (!nsm_out_over(nsm, READ_ONCE(out_limit) / 2))
		nsm_ev_unthrottle(nsm);
	return true;
}

void nsm_ev_unthrottle(struct nsm_dev *nsm)
{
	spin_lock_bh(&nsm->ready_lock);
	if (nsm->ev_throttled && !nsm->ev_stop) {
		nsm->ev_throttled = false;
		queue_work(nsm_wq, &nsm->ev_work);
	}
	spin_unlock_bh(&nsm->ready_lock);
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

/* The socket table's hold function: nk_sockid_get() takes a reference. */
static void nsm_sock_hold(void *entry)
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
	kfree(ns);
}

/* ------------------------------------------------------------------ */
/* Guests                                                              */
/* ------------------------------------------------------------------ */

/**
 * nsm_guest_get() - the accounting of guest @id, created on first use
 * @nsm: the device; rx_lock is held
 * @id: the guest's endpoint id
 *
 * Return: the guest (freed at detach), or an ERR_PTR(): -EINVAL for an id
 * that has no uid of its own, -ENOMEM.
 */
struct nsm_guest *nsm_guest_get(struct nsm_dev *nsm, u32 id)
{
	struct nsm_guest *g = xa_load(&nsm->guests, id);
	kuid_t uid;
	int err;

	if (g)
		return g;
	uid = make_kuid(nsm->net->user_ns, NSM_GUEST_UID_BASE + id);
	if (id >= NSM_GUEST_ID_MAX || !uid_valid(uid))
		return ERR_PTR(-EINVAL);
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (!g)
		return ERR_PTR(-ENOMEM);
	g->id = id;
	g->uid = uid;
	atomic_set(&g->socks, 0);
	atomic_set(&g->draining, 0);
	atomic_long_set(&g->credit, 0);
	err = xa_err(xa_store(&nsm->guests, id, g, GFP_KERNEL));
	if (err) {
		kfree(g);
		return ERR_PTR(err);
	}
	return g;
}

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

	if (atomic_read(&ns->g->draining) >= READ_ONCE(guest_max_draining)) {
		nsm_count(nsm, NSM_S_DRAIN_ABORTS, 1);
		pr_info_ratelimited("guest %u: %d closed sockets draining already, socket %u reset\n",
				    ns->guest, atomic_read(&ns->g->draining),
				    ns->id);
		return false;
	}
	atomic_inc(&ns->g->draining);
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
static void nsm_drain_work(struct work_struct *work)
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
/* debugfs                                                             */
/* ------------------------------------------------------------------ */

static const char * const nsm_stat_names[NSM_S_NR] = {
	[NSM_S_REQUESTS]	= "requests",
	[NSM_S_REPLIES]		= "replies",
	[NSM_S_ERROR_REPLIES]	= "error_replies",
	[NSM_S_INVALID]		= "invalid",
	[NSM_S_EVENTS]		= "events",
	[NSM_S_BYTES_FROM_GUESTS] = "bytes_from_guests",
	[NSM_S_BYTES_TO_GUESTS]	= "bytes_to_guests",
	[NSM_S_DGRAM_DROPS]	= "dgram_drops",
	[NSM_S_SOCKETS_OPENED]	= "sockets_opened",
	[NSM_S_SOCKETS_CLOSED]	= "sockets_closed",
	[NSM_S_XMIT_FAILED]	= "xmit_failed",
	[NSM_S_THROTTLED]	= "throttled",
	[NSM_S_ENGINE_ERRORS]	= "engine_errors",
	[NSM_S_SRC_UNAVAIL]	= "source_unavailable",
	[NSM_S_DEST_REFUSED]	= "dest_refused",
	[NSM_S_SOCK_LIMIT]	= "guest_sock_limit",
	[NSM_S_CREDIT_CUT]	= "credit_cut",
	[NSM_S_DRAIN_ABORTS]	= "drain_aborts",
	[NSM_S_DRAIN_TIMEOUTS]	= "drain_timeouts",
	[NSM_S_TX_RING_FULL]	= "tx_ring_full",
};

static int nsm_stats_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	int i;

	for (i = 0; i < NSM_S_NR; i++)
		seq_printf(m, "%s %lld\n", nsm_stat_names[i],
			   atomic64_read(&nsm->stats[i]));
	seq_printf(m, "sockets %d\n", atomic_read(&nsm->nsocks));
	seq_printf(m, "out_bytes %zu\n", READ_ONCE(nsm->out_bytes));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_stats);

static int nsm_guests_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	struct nsm_guest *g;
	unsigned long id;

	seq_puts(m, "guest uid sockets draining credit\n");
	xa_for_each(&nsm->guests, id, g)
		seq_printf(m, "%u %u %d %d %ld\n", g->id,
			   from_kuid_munged(&init_user_ns, g->uid),
			   atomic_read(&g->socks), atomic_read(&g->draining),
			   atomic_long_read(&g->credit));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_guests);

static int nsm_sockets_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	struct nsm_sock *ns;
	unsigned long id;

	seq_puts(m, "id guest family type state bytes_in bytes_out txq rx_buf_alloc rx_fwd_cnt tx_cnt peer_buf_alloc peer_fwd_cnt\n");
	mutex_lock(&nsm->rx_lock);
	nk_sockid_for_each(&nsm->socks, id, ns) {
		mutex_lock(&ns->lock);
		seq_printf(m, "%u %u %d %d %u %llu %llu %u %u %u %u %u %u\n",
			   ns->id, ns->guest, ns->family, ns->type,
			   ns->sock ? ns->sock->sk->sk_state : 0,
			   ns->bytes_in, ns->bytes_out, ns->txq_bytes,
			   ns->rx.buf_alloc, ns->rx.fwd_cnt, ns->tx.tx_cnt,
			   ns->tx.peer_buf_alloc, ns->tx.peer_fwd_cnt);
		mutex_unlock(&ns->lock);
	}
	mutex_unlock(&nsm->rx_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_sockets);

/* ------------------------------------------------------------------ */
/* The device                                                          */
/* ------------------------------------------------------------------ */

static int nsm_attach(struct nk_dev *nd)
{
	struct nsm_dev *nsm;
	struct net *net;
	int i;

	net = netns_pid ? get_net_ns_by_pid(netns_pid) : get_net(&init_net);
	if (IS_ERR(net)) {
		dev_err(nk_dev_device(nd), "no network namespace for pid %d: %ld\n",
			netns_pid, PTR_ERR(net));
		return PTR_ERR(net);
	}
	nsm = kzalloc(sizeof(*nsm), GFP_KERNEL);
	if (!nsm) {
		put_net(net);
		return -ENOMEM;
	}

	nsm->net = net;
	nsm->max_payload = nk_dev_max_payload(nd);
	mutex_init(&nsm->rx_lock);
	nk_sockid_init(&nsm->socks, U32_MAX, nsm_sock_hold);
	xa_init(&nsm->guests);
	spin_lock_init(&nsm->drain_lock);
	INIT_LIST_HEAD(&nsm->draining);
	INIT_DELAYED_WORK(&nsm->drain_work, nsm_drain_work);
	spin_lock_init(&nsm->ready_lock);
	INIT_LIST_HEAD(&nsm->ready);
	INIT_WORK(&nsm->ev_work, nsm_ev_work);
	spin_lock_init(&nsm->out_lock);
	INIT_LIST_HEAD(&nsm->outq);
	INIT_WORK(&nsm->tx_work, nsm_tx_work);
	for (i = 0; i < NSM_S_NR; i++)
		atomic64_set(&nsm->stats[i], 0);
	nk_dev_hold(nd);
	nsm->nd = nd;

	nsm->debugfs = debugfs_create_dir(nk_dev_name(nd), nsm_debugfs_root);
	debugfs_create_file("stats", 0444, nsm->debugfs, nsm, &nsm_stats_fops);
	debugfs_create_file("sockets", 0400, nsm->debugfs, nsm,
			    &nsm_sockets_fops);
	debugfs_create_file("guests", 0444, nsm->debugfs, nsm,
			    &nsm_guests_fops);

	nk_dev_set_priv(nd, nsm);

	dev_info(nk_dev_device(nd),
		 "serving guest sockets in network namespace %u\n",
		 net->ns.inum);
	return 0;
}

/*
 * The transport has marked the device dead and stopped ops->rx: no request
 * comes any more, and nk_send() fails at once, so tx_work can be flushed.
 */
static void nsm_detach(struct nk_dev *nd)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);
	struct nsm_sock *ns, *tmp;
	struct nsm_out *out, *otmp;
	struct nsm_guest *g;
	LIST_HEAD(list);
	unsigned long id;

	debugfs_remove_recursive(nsm->debugfs);

	/* No socket is queued after this, and ev_work is idle. */
	spin_lock_bh(&nsm->ready_lock);
	nsm->ev_stop = true;
	spin_unlock_bh(&nsm->ready_lock);
	cancel_work_sync(&nsm->ev_work);
	spin_lock_bh(&nsm->ready_lock);
	list_splice_init(&nsm->ready, &list);
	list_for_each_entry(ns, &list, ready_node)
		ns->queued = false;
	spin_unlock_bh(&nsm->ready_lock);
	list_for_each_entry_safe(ns, tmp, &list, ready_node) {
		list_del_init(&ns->ready_node);
		nsm_sock_put(ns);
	}

	/* Requests are stopped: nothing else changes the table now. */
	nk_sockid_for_each(&nsm->socks, id, ns) {
		nk_sockid_remove(&nsm->socks, id);
		mutex_lock(&ns->lock);
		nsm_sock_release(ns);
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
	}
	nk_sockid_destroy(&nsm->socks);

	/* Only CLOSE, stopped, adds to the list; drain_work requeues itself. */
	cancel_delayed_work_sync(&nsm->drain_work);
	spin_lock(&nsm->drain_lock);
	list_splice_init(&nsm->draining, &list);
	spin_unlock(&nsm->drain_lock);
	list_for_each_entry_safe(ns, tmp, &list, drain_node) {
		refcount_inc(&ns->ref);
		mutex_lock(&ns->lock);
		nsm_sock_drained(ns, false);
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
	}
	xa_for_each(&nsm->guests, id, g)
		kfree(g);
	xa_destroy(&nsm->guests);

	spin_lock(&nsm->out_lock);
	nsm->out_dead = true;
	list_for_each_entry_safe(out, otmp, &nsm->outq, node) {
		list_del(&out->node);
		nsm_out_free(out);
	}
	nsm->out_bytes = 0;
	spin_unlock(&nsm->out_lock);

	/* Nothing queues tx_work now, and nk_send() returns -ENODEV at once. */
	flush_work(&nsm->tx_work);

	put_net(nsm->net);
	nk_dev_set_priv(nd, NULL);
	nk_dev_put(nsm->nd);
	mutex_destroy(&nsm->rx_lock);
	kfree(nsm);
}

static void nsm_rx(struct nk_dev *nd, const struct nk_hdr *hdr,
		   const void *payload)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);

	mutex_lock(&nsm->rx_lock);
	nsm_request(nsm, hdr, payload);
	mutex_unlock(&nsm->rx_lock);
}

/* The requestq has room again: tx_work goes on (tx_lock held: no sleep). */
static void nsm_tx_space(struct nk_dev *nd)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);

	if (nsm)
		queue_work(nsm_wq, &nsm->tx_work);
}

static const struct nk_transport_ops nsm_ops = {
	.name = "nsm_kernel",
	.role = NK_ROLE_NSM,
	.features = NK_FEAT_INET6 | NK_FEAT_DGRAM,
	.attach = nsm_attach,
	.detach = nsm_detach,
	.rx = nsm_rx,
	.tx_space = nsm_tx_space,
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static int __init nsm_init(void)
{
	int err;

	nsm_wq = alloc_workqueue("nsm_kernel", 0, 0);
	if (!nsm_wq)
		return -ENOMEM;
	nsm_debugfs_root = debugfs_create_dir("nsm_kernel", NULL);
	err = nk_transport_register(&nsm_ops);
	if (err) {
		debugfs_remove_recursive(nsm_debugfs_root);
		destroy_workqueue(nsm_wq);
	}
	return err;
}

static void __exit nsm_exit(void)
{
	nk_transport_unregister();
	debugfs_remove_recursive(nsm_debugfs_root);
	destroy_workqueue(nsm_wq);
}

module_init(nsm_init);
module_exit(nsm_exit);

MODULE_AUTHOR("NetKernel project");
MODULE_DESCRIPTION("NetKernel network stack module: guest sockets served by the kernel's TCP/IP stack");
MODULE_LICENSE("GPL");
MODULE_VERSION(NK_VERSION);
