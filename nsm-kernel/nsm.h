/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nsm_kernel.ko internals shared by its files.  The implementation notes
 * and the lock order are at the top of nsm_main.c; each file's own rules
 * are at its top.
 */
#ifndef _NSM_H
#define _NSM_H

#include <linux/bitmap.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/refcount.h>
#include <linux/socket.h>
#include <linux/spinlock.h>
#include <linux/uidgid.h>
#include <linux/wait.h>
#include <linux/version.h>
#include <linux/workqueue.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <linux/xarray.h>

#include "../lib/nk_sockid.h"
#include "../lib/nk_transport.h"

enum nsm_stat {
	NSM_S_REQUESTS,		/* requests taken from the eventq */
	NSM_S_REPLIES,		/* replies queued for the requestq */
	NSM_S_ERROR_REPLIES,	/* of which with a negative status */
	NSM_S_INVALID,		/* requests refused by validation */
	NSM_S_EVENTS,		/* events (and CREDIT) queued */
	NSM_S_BYTES_FROM_GUESTS,	/* SEND payload taken */
	NSM_S_BYTES_TO_GUESTS,	/* EV_DATA payload sent */
	NSM_S_DGRAM_DROPS,	/* datagrams too large for max_payload or credit */
	NSM_S_SOCKETS_OPENED,	/* SOCKET and ACCEPT that succeeded */
	NSM_S_SOCKETS_CLOSED,	/* kernel sockets released */
	NSM_S_XMIT_FAILED,	/* messages the transport refused */
	NSM_S_THROTTLED,	/* times socket reading paused for the requestq */
	NSM_S_ENGINE_ERRORS,	/* EV_PROTO_ERROR and EV_RESET from the engine */
	NSM_S_SRC_UNAVAIL,	/* binds refused: no guest address of that family here */
	NSM_S_DEST_REFUSED,	/* CONNECT and SEND destinations refused */
	NSM_S_SOCK_LIMIT,	/* SOCKET and ACCEPT refused: guest_max_socks */
	NSM_S_CREDIT_CUT,	/* sockets given less credit: guest_txq_max */
	NSM_S_DRAIN_ABORTS,	/* CLOSEs that reset: guest_max_draining */
	NSM_S_DRAIN_TIMEOUTS,	/* draining sockets reset after drain_timeout */
	NSM_S_TX_RING_FULL,	/* times tx_work found the requestq full */
	NSM_S_RQ_SLICES,	/* runs of rq_work ended by rq_slice_us */
	NSM_S_RCVBUF_CUTS,	/* a lighter stream's receive buffer made smaller */
	NSM_S_SPARSE,		/* requests served in the sparse guests' lane */
	NSM_S_LIGHT_ENDS,	/* a light guest's period of light use ended */
	NSM_S_EVQ_HI_PERIODS,	/* periods with the eventq on nk_hiwq: eventq_hipri */
	NSM_S_NR
};

/**
 * struct nsm_gq - one guest's requests waiting for one shard
 * @reqs: struct nsm_rxmsg, in eventq order
 * @node: in nsm_shard.active while @reqs is not empty
 * @g: the guest; NULL for nsm_shard.other
 * @served: requests served in a row in this turn (at most the weight)
 * @busy: one of @reqs is being served
 * @hi: this is the guest's queue in the shard's sparse lane
 *
 * Each guest has two on each shard, one per lane (see "Sparse guests" in
 * nsm_main.c); while its sparse lane's has requests waiting or being
 * served, the other waits.
 */
struct nsm_gq {
	struct list_head reqs;
	struct list_head node;
	struct nsm_guest *g;
	u32 served;
	bool busy;
	bool hi;
};

/* How long a shard counts as shared after it last changed guests. */
#define NSM_SHARED_TIME	(HZ / 50)

/**
 * struct nsm_ev_period - what a shard's ev_work read in one period
 * @start: when it began (jiffies)
 * @bytes: stream bytes read
 * @wsum: the weights of the streams read, each counted once
 * @wmax: the heaviest weight of the streams it cut short (more to read
 *        than their turn)
 */
struct nsm_ev_period {
	unsigned long start;
	u64 bytes;
	u32 wsum;
	u32 wmax;
};

/**
 * struct nsm_shard - one worker's share of the sockets (see "Shards" in
 * nsm_main.c): the requests and the events of the sockets whose id maps to
 * it, served on its CPU
 * @nsm: the device
 * @cpu: the CPU its works are queued on
 * @rq_lock: protects @active, every struct nsm_gq of this shard (@other
 *           and each guest's nsm_guest.q[] entry for it), @rq_stop,
 *           @last_guest and @shared_until
 * @active: the struct nsm_gq with requests waiting, in turn order
 * @other: the requests of no guest: socket 0 (INFO), and ids that are
 *         neither open nor opening (late messages, errors)
 * @rq_stop: nothing is queued any more (detach)
 * @last_guest: id of the guest whose request was served last
 * @shared_until: jiffies until which the shard counts as shared by two
 *                guests (NSM_SHARED_TIME after it last changed guests)
 * @rq_work: serves the requests, by weighted round robin of @active
 * @active_hi: the same for the sparse guests' lane (see "Sparse guests"
 *             in nsm_main.c)
 * @rq_hi_work: serves @active_hi, on nsm_hiwq
 * @ready_lock: protects @ready, nsm_sock.queued, @ev_stop, @ev_throttled;
 *              taken from socket callbacks (softirq), so always _bh
 * @ready: its sockets waiting for @ev_work, each holding a reference
 * @ev_stop: no socket is queued any more (detach)
 * @ev_throttled: @ev_work paused because nsm_dev.out_bytes was over the
 *                limit
 * @ev_cur: the event works' current period (nsm_sock.c)
 * @ev_last: the period before, if it ended less than a period ago
 * @ev_seq: counts @ev_cur's periods
 * @ev_work: reads sockets and turns their state into events
 * @ready_hi: sparse guests' sockets waiting for @ev_hi_work (under
 *            @ready_lock, as @ready)
 * @ev_hi_work: @ev_work for @ready_hi, on nsm_hiwq
 * @ev_period_lock: protects @ev_cur, @ev_last and @ev_seq, which both
 *                  event works of the shard update
 * @requests: requests it served (debugfs "shards")
 * @processed: sockets its @ev_work looked at (debugfs "shards")
 */
struct nsm_shard {
	struct nsm_dev *nsm;
	int cpu;

	spinlock_t rq_lock;
	struct list_head active;
	struct nsm_gq other;
	bool rq_stop;
	u32 last_guest;
	unsigned long shared_until;
	struct work_struct rq_work;
	struct list_head active_hi;
	struct work_struct rq_hi_work;

	spinlock_t ready_lock;
	struct list_head ready;
	bool ev_stop;
	bool ev_throttled;
	spinlock_t ev_period_lock;
	struct nsm_ev_period ev_cur;
	struct nsm_ev_period ev_last;
	u32 ev_seq;
	struct work_struct ev_work;
	struct list_head ready_hi;
	struct work_struct ev_hi_work;

	atomic64_t requests;
	atomic64_t processed;
} ____cacheline_aligned_in_smp;

/**
 * struct nsm_dev - the NSM side of one ready nk device
 * @nd: the transport device (referenced)
 * @net: network namespace the kernel sockets live in (referenced)
 * @max_payload: payload limit agreed in HELLO
 * @socks: socket id (1..U32_MAX, chosen by the engine) -> struct nsm_sock,
 *         each published entry holding a reference; its own spinlock
 *         serialises its changes (lib/nk_sockid.c)
 * @guests: guest id -> struct nsm_guest, created when the guest's first
 *          SOCKET arrives (nsm_guest_get(); xa_insert(): the first of two
 *          racing callers wins), freed at detach
 * @opening: socket id -> struct nsm_guest, for each SOCKET that nsm_rx()
 *           queued and no shard served yet: the requests pipelined behind
 *           it (NK_FEAT_PIPE) go to the same guest's queue.  nsm_rx()
 *           stores, the shard erases once the SOCKET is served.
 * @nshards: how many @shards: one per CPU online at attach, at most the
 *           module parameter shards when set
 * @shards: the workers; a socket id's requests and events go to
 *          nsm_shard_of()
 * @rx_queued: bytes of requests waiting in the shards (struct
 *             nsm_rxmsg.size)
 * @rx_wait: ops->rx waits there while @rx_queued is at rx_queue_max
 * @drain_lock: protects @draining, @drain_next and @drain_armed
 * @draining: closed sockets still pushing queued guest data, each holding
 *            the reference the table had, oldest first
 * @drain_next: when @drain_work is due
 * @drain_armed: @drain_work is queued for @drain_next
 * @drain_work: resets the draining sockets whose drain_timeout expired
 * @out_lock: protects @outq, @outq_hi, @out_bytes, @out_dead and each
 *            guest's nsm_guest.out_hi and out_lo
 * @outq: struct nsm_out waiting for @tx_work to put them on the requestq
 * @outq_hi: the same for the sparse guests' messages, for @tx_hi_work
 * @out_bytes: bytes (headers included) in @outq and @outq_hi
 * @out_dead: messages are freed instead of queued (detach)
 * @tx_work: moves @outq to the transport
 * @tx_hi_work: moves @outq_hi to the transport, on nsm_hiwq
 * @use_lock: one CPU at a time ends a period of the guests' use
 *            (nsm_use_period())
 * @use_start: when the current period began (jiffies)
 * @light: some guest's nsm_guest.under is 2 (nsm_use_period(); read
 *         with READ_ONCE)
 * @nsocks: kernel sockets currently open
 * @stats: counters, see enum nsm_stat
 * @debugfs: this device's debugfs directory
 */
struct nsm_dev {
	struct nk_dev *nd;
	struct net *net;
	u32 max_payload;

	struct nk_sockid_table socks;
	struct xarray guests;
	struct xarray opening;

	unsigned int nshards;
	struct nsm_shard *shards;
	atomic_t rx_queued;
	wait_queue_head_t rx_wait;

	spinlock_t drain_lock;
	struct list_head draining;
	unsigned long drain_next;
	bool drain_armed;
	struct delayed_work drain_work;

	spinlock_t out_lock;
	struct list_head outq;
	struct list_head outq_hi;
	size_t out_bytes;
	bool out_dead;
	struct work_struct tx_work;
	struct work_struct tx_hi_work;

	spinlock_t use_lock;
	unsigned long use_start;
	bool light;

	atomic_t nsocks;
	atomic64_t stats[NSM_S_NR];
	struct dentry *debugfs;
};

/**
 * struct nsm_guest - what one guest holds on this NSM (see "Limits" in
 * nsm_main.c)
 * @id: the guest's endpoint id (SOCKET's arg 3)
 * @uid: the owner of its kernel sockets, its own per guest
 * @socks: its kernel sockets (draining ones included)
 * @draining: its closed sockets still draining
 * @credit: bytes of credit its sockets announce (nsm_sock.rx.buf_alloc):
 *          the most guest data their txqs can hold
 * @sock_limit: its SOCKETs and ACCEPTs refused at guest_max_socks (the
 *              stats' guest_sock_limit, per guest)
 * @weight: its scheduling weight, 1..NK_WEIGHT_MAX, the latest SOCKET's
 *          (NK_SOCK_WEIGHT_MASK; 1 until one says): its sockets' read
 *          budget, credit and turn of requests are scaled by it (see
 *          "Weights" in nsm_main.c)
 * @use_ns: CPU time of its requests and sockets in the current period
 * @use_last: the same in the last period (under nsm_dev.use_lock)
 * @under: periods in a row, up to 2, in which it used less than a
 *         quarter of its weight's share; once 2 (the guest is light), it
 *         stays 2 while the guest uses less than its share of a busy NSM
 *         (under nsm_dev.use_lock)
 * @sparse: @under is 2 and sparse_lanes is on: its work takes the sparse
 *          lanes (see "Sparse guests" in nsm_main.c)
 * @sparse_reqs: its requests served in the sparse lane (debugfs guests)
 * @out_hi: its messages in nsm_dev.outq_hi or being sent from it
 * @out_lo: its messages in nsm_dev.outq or being sent from it
 * @q: its requests waiting for each shard, one per nsm_dev.shards entry,
 *     then the same for the sparse lane (nsm_gq_of())
 *
 * Shards change them at once: @socks and @draining grow only through
 * nsm_atomic_inc_below() and @credit through a compare-and-exchange of
 * the whole charge (nsm_ops.c), so no limit is overshot; they shrink
 * under the socket's lock anywhere.
 */
struct nsm_guest {
	u32 id;
	kuid_t uid;
	atomic_t socks;
	atomic_t draining;
	atomic_long_t credit;
	atomic64_t sock_limit;
	u32 weight;
	atomic64_t use_ns;
	u64 use_last;
	u8 under;
	bool sparse;
	atomic64_t sparse_reqs;
	u32 out_hi;
	u32 out_lo;
	struct nsm_gq q[];
};

/* The socket callbacks a kernel socket had before ours. */
struct nsm_sk_cbs {
	void (*data_ready)(struct sock *sk);
	void (*write_space)(struct sock *sk);
	void (*state_change)(struct sock *sk);
	void (*error_report)(struct sock *sk);
};

/* Room for a bit per entry of nsm_opts[] (nsm_ops.c). */
#define NSM_OPTS_MAX	192

/**
 * struct nsm_sock - one guest socket served by a kernel socket
 * @nsm: the device
 * @shard: where its requests and events are served (nsm_shard_of(@id))
 * @id: socket id on the NSM link (chosen by the engine)
 * @guest: endpoint id of the guest that owns it
 * @g: that guest's accounting
 * @net: the namespace its kernel sockets live in, referenced (kernel
 *       sockets do not hold one): the NSM's, or the guest's tenant
 *       namespace (nsm_tenant.c)
 * @family: AF_INET or AF_INET6
 * @type: SOCK_STREAM or SOCK_DGRAM
 * @ref: references: table or draining list, ready list, callers
 * @lock: serialises everything below and every call on @sock; held while
 *        a reply or event about the socket is queued, which keeps them in
 *        order
 * @sock: the kernel socket, NULL once released
 * @src4: the guest's IPv4 source address (family 0: none)
 * @src6: the guest's IPv6 source address (family 0: none)
 * @bound: bound by BIND or implicitly
 * @bound_any: the guest bound to the wildcard address
 * @listening: LISTEN succeeded
 * @connecting: CONNECT answered -EINPROGRESS, no EV_CONNECTED/EV_ERROR yet
 * @connected: a stream socket that reached ESTABLISHED
 * @closed: CLOSE answered; the socket only drains @txq
 * @shut_wr_pending: SHUTDOWN WR waits for @txq to drain
 * @hup_sent: NK_SHUT_* bits already reported with EV_HUP
 * @accept_sent: accept queue length last reported with EV_ACCEPT
 * @tx_blocked: @txq is not empty; write_space must queue the socket
 * @kept_opts: options kept for the guest, not applied (nsm_ops.c), a bit
 *	each (by its index in nsm_opts[]; for one that reads 1 until
 *	cleared, the bit says it is cleared)
 * @anc: the guest takes ancillary data on this datagram socket (SOCKET's
 *	NK_SOCK_ANC): its options that ask for control messages or an
 *	error queue are applied too, and its datagrams carry struct nk_anc
 * @anc_rx: @anc and an option asks for control messages on data: every
 *	datagram carries a struct nk_anc
 * @urg: the guest takes urgent data on this stream socket (SOCKET's
 *	NK_SOCK_URG, an accepted one its listener's): the kernel socket keeps
 *	SO_OOBINLINE and EV_URG says where the byte is (nsm_sock.c)
 * @urg_held: an urgent byte taken whose EV_URG waits until the bytes
 *	before its mark are sent (ev_work only)
 * @urg_byte: that byte
 * @urg_mark: its mark (stream sequence number, as @tx counts)
 * @set_opts: carried options the guest set, a bit each (by the same
 *	index): a dual-stack socket's IPv6 half takes them (nsm_opts_copy())
 * @rx: credit of the guest-to-world direction (this side receives)
 * @tx: credit of the world-to-guest direction (this side sends)
 * @txq: struct nsm_chunk of guest data the kernel socket did not take yet
 * @txq_bytes: payload bytes in @txq
 * @bytes_in: SEND payload taken from the guest
 * @bytes_out: EV_DATA payload sent to the guest
 * @rb_seq: the ev_work period (nsm_shard.ev_seq) in which ev_work last
 *          read this stream
 * @rb_bytes: what it read from it in that period
 * @rb_own: the stream's sk_rcvbuf before nsm_rcvbuf_share() first set
 *          it, 0 while it does not
 * @sk: the sock our callbacks are installed on, NULL before
 * @orig: callbacks to restore (under sk_callback_lock)
 * @sock6: a dual-stack wildcard socket's second kernel socket (see
 *         nsm_bind6()): AF_INET6, IPV6_V6ONLY, bound to @src6 and the same
 *         port, or NULL
 * @sk6: the sock of @sock6 while our callbacks are installed on it
 * @orig6: its callbacks to restore
 * @dgram_peer: the kernel socket (@sock or @sock6) a connected datagram
 *              socket is connected through, or NULL; datagrams the other
 *              one hears are dropped, as Linux's connected UDP filters them
 * @ready_node: on its shard's ready list (under its ready_lock)
 * @queued: on its shard's ready list (under its ready_lock)
 * @drain_node: on nsm_dev.draining (under drain_lock)
 * @drain_deadline: when a draining socket is reset (jiffies)
 */
struct nsm_sock {
	struct nsm_dev *nsm;
	struct nsm_shard *shard;
	u32 id;
	u32 guest;
	struct nsm_guest *g;
	struct net *net;
	int family;
	int type;
	refcount_t ref;

	struct mutex lock;
	struct socket *sock;
	struct nk_addr src4;
	struct nk_addr src6;
	bool bound;
	bool bound_any;
	bool listening;
	bool connecting;
	bool connected;
	bool closed;
	bool shut_wr_pending;
	u8 hup_sent;
	u32 accept_sent;
	bool tx_blocked;
	DECLARE_BITMAP(kept_opts, NSM_OPTS_MAX);
	DECLARE_BITMAP(set_opts, NSM_OPTS_MAX);
	bool anc;
	bool anc_rx;
	bool urg;
	bool urg_held;
	u8 urg_byte;
	u32 urg_mark;
	struct nk_credit_rx rx;
	struct nk_credit_tx tx;
	struct list_head txq;
	u32 txq_bytes;
	u64 bytes_in;
	u64 bytes_out;
	u32 rb_seq;
	u64 rb_bytes;
	int rb_own;

	struct sock *sk;
	struct nsm_sk_cbs orig;
	struct socket *sock6;
	struct sock *sk6;
	struct nsm_sk_cbs orig6;
	struct socket *dgram_peer;

	struct list_head ready_node;
	bool queued;
	struct list_head drain_node;
	unsigned long drain_deadline;
};

/* One queued outgoing message. */
struct nsm_out {
	struct list_head node;
	struct nk_txbuf *tb;
	struct nsm_guest *g;	/* counted in its out_hi or out_lo, or NULL */
};

/* @g's request queue on @sh, in the sparse lane or the other. */
static inline struct nsm_gq *nsm_gq_of(struct nsm_dev *nsm,
				       struct nsm_guest *g,
				       struct nsm_shard *sh, bool hi)
{
	return &g->q[(hi ? nsm->nshards : 0) + (sh - nsm->shards)];
}

/* The shard that serves socket id @id; id 0 (INFO, nothing else) shard 0. */
static inline struct nsm_shard *nsm_shard_of(struct nsm_dev *nsm, u32 id)
{
	return &nsm->shards[id % nsm->nshards];
}

/*
 * Add one to @v unless it is at @max already, as one step (shards charge a
 * guest at once).  Return: whether it was added.
 */
static inline bool nsm_atomic_inc_below(atomic_t *v, int max)
{
	int old = atomic_read(v);

	do {
		if (old >= max)
			return false;
	} while (!atomic_try_cmpxchg(v, &old, old + 1));
	return true;
}

static inline void nsm_count(struct nsm_dev *nsm, enum nsm_stat s, u64 n)
{
	atomic64_add(n, &nsm->stats[s]);
}

/* Guest ids from 2^24 up are refused: they have no uid of their own. */
#define NSM_GUEST_ID_MAX	(1u << 24)

/* nsm_tenant.c */
struct net *nsm_tenant_net(u32 id, struct net *dflt);
bool nsm_tenant_is(u32 id, struct net *net, struct net *dflt);
/* nsm_ops.c: the credentials guest options are applied with */
int nsm_opts_init(void);
void nsm_opts_exit(void);
int nsm_tenant_init(void);
void nsm_tenant_exit(void);

/* @n bytes of guest data are gone (sent or dropped): the guest may reuse them. */
static inline void nsm_sock_consumed(struct nsm_sock *ns, u32 n)
{
	ns->rx.fwd_cnt += n;
}

/*
 * The files call one way: nsm_main.c -> nsm_ops.c -> nsm_sock.c ->
 * nsm_out.c, each only into the ones after it.
 */

/* nsm_ops.c */
struct nsm_guest *nsm_guest_get(struct nsm_dev *nsm, u32 id);
void nsm_request(struct nsm_dev *nsm, const struct nk_hdr *hdr,
		 const void *payload);

/* nsm_sock.c */
void nsm_sock_hold(void *entry);
void nsm_sock_put(struct nsm_sock *ns);
void nsm_sock_kick(struct nsm_sock *ns);
void nsm_sock_set_callbacks(struct nsm_sock *ns, const struct nsm_sk_cbs *orig);
void nsm_sock_set_callbacks6(struct nsm_sock *ns);
void nsm_sock_release6(struct nsm_sock *ns);
void nsm_sock_release(struct nsm_sock *ns);
void nsm_sock_drained(struct nsm_sock *ns, bool reset);
int nsm_sock_name(struct nsm_sock *ns, struct nk_addr *na);
int nsm_sock_write(struct nsm_sock *ns, const void *data, u32 len,
		   unsigned int msg_flags, const struct sockaddr_storage *to,
		   int tolen);
void nsm_sock_credit(struct nsm_sock *ns);
bool nsm_drain_start(struct nsm_sock *ns);
void nsm_drain_work(struct work_struct *work);
void nsm_ev_work(struct work_struct *work);
void nsm_ev_hi_work(struct work_struct *work);
void nsm_guest_used(struct nsm_dev *nsm, struct nsm_guest *g, u64 ns);

/*
 * An inet_sock or ipv6_pinfo flag of @sk: a bit field before 6.6, a bit
 * of inet_flags since.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
#define nsm_inet_flag(sk, field, bit)	inet_test_bit(bit, sk)
#define nsm_inet6_flag(sk, field, bit)	inet6_test_bit(bit, sk)
#else
#define nsm_inet_flag(sk, field, bit)	(inet_sk(sk)->field)
#define nsm_inet6_flag(sk, field, bit)	(inet6_sk(sk)->field)
#endif

/* nsm_out.c */
extern struct workqueue_struct *nsm_wq;
extern struct workqueue_struct *nsm_hiwq;

/* Have @sh's event work of one lane (the sparse guests' or the other) run. */
static inline void nsm_ev_queue(struct nsm_shard *sh, bool hi)
{
	if (hi)
		queue_work_on(sh->cpu, nsm_hiwq, &sh->ev_hi_work);
	else
		queue_work_on(sh->cpu, nsm_wq, &sh->ev_work);
}
struct nsm_out *nsm_msg_new(u32 id, u16 op, u16 flags, u64 req_id, u32 len);
void nsm_out_free(struct nsm_out *out);
void nsm_xmit(struct nsm_dev *nsm, struct nsm_sock *ns, struct nsm_out *out);
void nsm_msg(struct nsm_dev *nsm, struct nsm_sock *ns, u32 id, u16 op,
	     u16 flags, u64 req_id, int status, u64 a0, const void *payload,
	     u32 len);
void nsm_event(struct nsm_sock *ns, u16 op, int status, u64 a0);
void nsm_tx_work(struct work_struct *work);
void nsm_tx_hi_work(struct work_struct *work);
bool nsm_ev_throttle(struct nsm_shard *sh);
void nsm_ev_unthrottle(struct nsm_dev *nsm);

#endif /* _NSM_H */
