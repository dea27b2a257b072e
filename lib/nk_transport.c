// SPDX-License-Identifier: GPL-2.0
/*
 * nk transport: virtio driver core for the nk device, shared by the guest
 * and the NSM module.  The API is documented in nk_transport.h.
 *
 * Queue pairs.  A device has one pair per CPU (module parameter
 * queue_pairs, at most the config space's max_qpairs): virtqueues 2q and
 * 2q + 1 of the device when it has them (QEMU 10.2's test device), else
 * pair 0 on the device and pair k on the device that says carrier k in
 * its configuration space (QEMU 7.2's carrier has one pair; protocol.rst,
 * "Queue pairs").  Each pair (struct nk_pair) has its own locks, works,
 * eventq buffers and requestq, and its works run on its CPU.  HELLO, on
 * pair 0, offers NK_FEAT_MQ with the pairs set up; from its answer on, a
 * message about socket s goes out on pair s % pairs, and one that comes
 * in on another pair than its socket's is invalid (nk_rx_route()).  The
 * guest names its sockets so that a socket's pair is the one of the CPU
 * that made it (nk_dev_local_pair()).
 *
 * Carriers.  A device of carrier k > 0 sets up its pair in its own probe,
 * posts its eventq buffers and waits in nk_carriers[k] for carrier 0's
 * probe, which takes carriers 1, 2, ... as they are bound (so carriers
 * should come first on the bus: the lab puts them there; one bound later
 * is used from the endpoint's next session).  A session's carriers are
 * never used again after it: the engine counts a carrier only when it
 * started after the last session ended, so when the device ends the
 * carriers are probed again (nk_restart_work: carrier 0 unbound first,
 * since its reset ends the engine's session, then the carriers, then
 * carrier 0 bound again).  A carrier whose pair is in use going away ends
 * the device as a lost session does.
 *
 * Interrupt callbacks only queue work.  Used requestq buffers are
 * reclaimed by senders before they add, and by the rx work after each
 * pass (a request's reply, a CREDIT, comes back there); the requestq's
 * interrupt stays disabled, since each one would cost the VM an interrupt
 * and a work item per request, except while a sender waits for ring space:
 * then the tx work reclaims and wakes it.  The rx work takes eventq
 * buffers, validates and dispatches each message, and posts the buffer
 * again at once (messages are copied out by their consumer, unless it
 * borrows the buffer), topping the ring up to event_bufs when an
 * allocation failed earlier.  Each eventq buffer is one (compound) page of
 * a page_pool, large enough for a header plus the payload size proposed in
 * HELLO: by default NK_MAX_PAYLOAD, so that the largest datagram arrives
 * with its control messages, which takes an order-5 page (128 KiB);
 * max_payload=65472 keeps them at 64 KiB, and datagrams at 65444 bytes.
 *
 * Lending (nk_rx_skb()).  ops->rx() may turn a message that fills at least
 * half its buffer into an skb whose fragment is the buffer itself, so bulk
 * data is not copied again; the buffer is not posted again, the rx work
 * posts a new one from the pool, and the skb's free returns the page to
 * the pool (skb_mark_for_recycle()).  The pool keeps at most event_bufs
 * returned pages; pages still in skbs when the device goes away return to
 * the pool after it is destroyed, which frees them then.  Recycling
 * matters as much as the copy: with init_on_alloc (Debian's default) every
 * fresh page is zeroed first.
 *
 * Large messages to send are recycled the same way: nk_txbuf_free() and
 * the requestq's reclaim keep up to NK_TXCACHE_MAX buffers of the largest
 * size (4 MiB by default) for nk_txbuf_alloc() of anything larger than the
 * slab caches serve (nk_txcache, one per module, as the device is).
 *
 * Kicks.  nk_send() with NK_XMIT_MORE adds to the requestq without telling
 * the device; the caller's next nk_send() without it, or nk_kick(), does.
 * nk_call_pair() sends two requests so, and waits for both replies, which
 * the peer sends together: one kick, one interrupt and one sleep.
 *
 * A full requestq.  What must go out but may not wait (the CREDIT a
 * non-blocking recv() owes, the CLOSE of close()) is sent with
 * NK_XMIT_QUEUE: on a full ring it joins tx_queue (at most
 * NK_TX_QUEUE_MAX messages), as vsock's send_pkt_queue does, and the tx
 * work moves it to the ring as buffers come back, before anything else:
 * while tx_queue is not empty every sender finds the ring full, so
 * messages keep their order.  Other senders wait for room in nk_send()
 * (with a timeout), or in nk_tx_wait() with no lock of theirs held, or
 * give up with -EAGAIN; with NK_XMIT_KEEP the message is then still
 * theirs, to try again when ops->tx_space() says there is room (the NSM's
 * tx work, which may not sleep on the ring).
 *
 * Messages for ops->rx() that arrive before ops->attach() has returned
 * (the engine forwards requests to an endpoint as soon as its HELLO is
 * answered) are held, in their buffers and in order, in the rx_held FIFO
 * (one slot per eventq buffer, allocated at probe); the rx work dispatches
 * them first once the device is ready.  Held buffers are
 * not posted again until then, and the ring is topped up only to
 * event_bufs counting them, so holding costs no memory beyond the ring and
 * a flood before attach only fills the ring.  Replies are never held: an
 * nk_call() made by ops->attach() completes as usual while buffers remain.
 *
 * Locking (rx_lock, tx_lock: each pair's own):
 *   rx_lock (mutex)   its eventq, rx_run, rx_posted, rx_held, rx_cur,
 *                     rx_msgs and allocations from its rx_pool (page_pool
 *                     allocation wants one context); ops->rx() runs
 *                     under it, for that pair's messages.  payload_limit,
 *                     npairs and ready are written once each before the
 *                     device is published (WRITE_ONCE) and read with
 *                     READ_ONCE
 *   call_lock (spin)  the device's list of nk_call()s waiting for replies,
 *                     next_req_id
 *   tx_lock (spin)    its requestq, tx_free, tx_unkicked, tx_queue,
 *                     tx_nqueued, tx_msgs; ops->tx_space() runs under it
 *   nk_txcache.lock (spin)  the txbuf cache; nests inside tx_lock
 *   dead              set with call_lock held, then each tx_lock taken
 *                     once (nk_dev_mark_dead()); read under either
 *   a pair's nd       set and cleared with its rx_lock and tx_lock held
 *   a pair's rx_hi    WRITE_ONCE by nk_dev_set_rx_hipri() (and cleared with
 *                     nd), READ_ONCE where its rx work is queued: which of
 *                     its two rx works (rx_work on nk_wq, rx_hi_work on
 *                     the WQ_HIGHPRI nk_hiwq) serves next; both take
 *                     rx_lock, so one serves at a time
 * Order: nk_dev_lock -> rx_lock -> call_lock -> tx_lock; no two pairs'
 * locks are held at once.  nk_dev_lock (mutex) serialises probe and
 * remove and protects nk_bound and nk_carriers, and the sysfs attributes
 * read the device under it; the published device pointer nk_cur is RCU
 * protected and holds a reference.  A struct nk_carrier lives while its
 * device is bound or a struct nk_dev that took its pair lives (its kref).
 *
 * A lost session.  The engine ends an endpoint's session whenever the
 * vhost-user device stops (QEMU stop/cont, savevm, a reconnect after an
 * engine restart) and, when the device starts again, tells the driver so
 * with EV_PROTO_ERROR NK_PERR_NO_SESSION before anything else.  Before
 * HELLO has been answered that is the normal start and is dropped; on a
 * ready device it means that every socket the engine knew is gone.  The
 * device is then marked dead and lost (pending calls and senders fail at
 * once), pair 0's rx work stops, and nk_restart_work probes the device
 * (and its carriers) again from scratch: remove (ops->detach() resets
 * every socket; nk_dev_lost() tells it why), a virtio reset, which also
 * resets the engine's view of the rings, then probe, HELLO and
 * ops->attach().  nk_restart_lock protects nk_restart_vdev (device
 * references for the work, by carrier) and nk_restart_off (set at
 * unregister, before the work is cancelled, so that it is not queued
 * again).
 *
 * Teardown (remove, or a probe that fails after the queues exist):
 * unpublish (RCU), mark dead (pending calls complete with -ENODEV, senders
 * wake and every later nk_send()/nk_call() fails with -ENODEV), stop the rx
 * works (ops->rx() has returned and is not called again), then ops->detach()
 * (remove only; it may wait for its own workers that are inside nk_send(),
 * since they return at once now), give the carriers back, reset the
 * device, cancel the works, free every buffer still on a ring or held,
 * delete the virtqueues.  The struct nk_dev is freed with its last
 * reference.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
#include <net/page_pool/helpers.h>
#else
#include <net/page_pool.h>
#endif

#include "nk_transport.h"

static unsigned int reply_timeout_ms = 10000;
module_param(reply_timeout_ms, uint, 0644);
MODULE_PARM_DESC(reply_timeout_ms,
		 "Milliseconds to wait for the host engine to answer a request (default 10000)");

static unsigned int max_payload = NK_MAX_PAYLOAD;
module_param(max_payload, uint, 0444);
MODULE_PARM_DESC(max_payload,
		 "Payload size proposed in HELLO, 2048..65635 (default 65635: the largest datagram with its control messages; eventq buffers of 128 KiB, 65472 for 64 KiB ones)");

static unsigned long long feature_mask = NK_FEAT_ALL;
module_param(feature_mask, ullong, 0444);
MODULE_PARM_DESC(feature_mask,
		 "Feature bits (NK_FEAT_*) this module may offer in HELLO (default all it has; fewer make it an endpoint from before them, e.g. 63 a guest without NK_FEAT_URG, for tests)");

static unsigned int queue_pairs;
module_param(queue_pairs, uint, 0444);
MODULE_PARM_DESC(queue_pairs,
		 "Queue pairs to set up, at most what the device offers (default 0: one per CPU online)");

static unsigned int event_bufs = 64;
module_param(event_bufs, uint, 0444);
MODULE_PARM_DESC(event_bufs,
		 "Eventq buffers kept posted, 1..ring size (default 64)");

/* Messages the rx work handles before giving the CPU back. */
#define NK_RX_BUDGET	128

struct nk_stats {
	atomic64_t tx_msgs;
	atomic64_t tx_bytes;
	atomic64_t tx_ring_full;
	atomic64_t tx_queued;
	atomic64_t rx_msgs;
	atomic64_t rx_bytes;
	atomic64_t rx_replies;
	atomic64_t rx_invalid;
	atomic64_t rx_held_early;
	atomic64_t rx_proto_errors;
	atomic64_t rx_buf_alloc_fail;
	atomic64_t rx_lent;
	atomic64_t call_timeouts;
	atomic64_t call_waits;
};

/* An eventq buffer held until the device is ready. */
struct nk_rx_held {
	void *buf;
	u32 len;			/* bytes the device wrote */
};

/*
 * One queue pair: its requestq and eventq, on the device itself or on
 * another carrier of the endpoint.  A carrier's pair exists from that
 * carrier's probe on; @nd is set when the device adopts it (under
 * nk_dev_lock and the pair's own locks) and cleared never: a carrier's
 * removal ends the device first.
 */
struct nk_pair {
	struct nk_dev *nd;		/* NULL: a carrier not adopted yet */
	struct virtio_device *vdev;	/* the device its virtqueues are on */
	unsigned int index;		/* the endpoint's pair number */
	int cpu;			/* where its works run */
	struct virtqueue *reqq;
	struct virtqueue *evq;

	spinlock_t tx_lock;
	wait_queue_head_t tx_wait;
	unsigned int tx_free;
	bool tx_unkicked;		/* added with NK_XMIT_MORE, not kicked */
	struct list_head tx_queue;	/* NK_XMIT_QUEUE messages, in order */
	unsigned int tx_nqueued;
	struct work_struct tx_work;

	struct mutex rx_lock;
	bool rx_run;
	unsigned int rx_posted;
	unsigned int rx_target;
	struct nk_rx_held *rx_held;	/* FIFO of rx_target slots */
	unsigned int rx_held_first;
	unsigned int rx_nheld;
	struct page_pool *rx_pool;	/* the eventq buffers */
	void *rx_cur;			/* the buffer in ops->rx(); NULL once lent */
	struct work_struct rx_work;
	struct work_struct rx_hi_work;	/* the same, on nk_hiwq */
	bool rx_hi;			/* serve on nk_hiwq (nk_dev_set_rx_hipri()) */

	u64 rx_msgs;			/* under rx_lock */
	u64 tx_msgs;			/* under tx_lock */
};

/*
 * What a bound virtio device's priv points to: a struct nk_dev (carrier 0)
 * or a struct nk_carrier, both starting with this.
 */
struct nk_vpriv {
	bool carrier;
};

/*
 * A device that carries one pair of an endpoint whose pair 0 is elsewhere.
 * Its bound device holds a reference, and so does every struct nk_dev
 * that took its pair (a sender may still look at the pair through a dead
 * device).
 */
struct nk_carrier {
	struct nk_vpriv vpriv;		/* carrier: true */
	struct kref ref;
	struct nk_pair pair;
};

struct nk_dev {
	struct nk_vpriv vpriv;		/* carrier: false */
	struct kref ref;
	struct virtio_device *vdev;	/* carrier 0 */
	const struct nk_transport_ops *ops;
	struct nk_pair *pairs;		/* the device's own pairs */
	unsigned int nown;		/* how many */
	struct nk_pair *pair[NK_MAX_QPAIRS];	/* every pair set up */
	unsigned int nset;		/* pair[0..nset) */
	struct nk_carrier *held[NK_MAX_QPAIRS];	/* carriers taken, referenced */
	unsigned int nheld;
	unsigned int npairs;		/* in use: 1 until HELLO agrees more */
	atomic_t pair_turn;		/* nk_dev_local_pair() */

	bool dead;
	bool lost;			/* the engine lost the session */
	bool ready;			/* HELLO done, ops->attach() succeeded */
	u32 rx_buf_size;
	unsigned int rx_order;		/* the eventq buffers' page order */
	u32 payload_limit;		/* proposal until HELLO, then agreed */

	spinlock_t call_lock;
	struct list_head calls;
	u64 next_req_id;

	struct nk_hello hello;
	void *priv;
	struct nk_stats stats;
};

struct nk_pending {
	struct list_head node;
	u64 req_id;
	struct nk_reply *reply;
	struct completion done;
	int err;
};

static const struct nk_transport_ops *nk_ops;
static struct workqueue_struct *nk_wq;
static struct workqueue_struct *nk_hiwq;	/* WQ_HIGHPRI: rx works of rx_hi pairs */
static DEFINE_MUTEX(nk_dev_lock);
static struct nk_dev *nk_bound;		/* under nk_dev_lock */
static struct nk_carrier *nk_carriers[NK_MAX_QPAIRS];	/* under nk_dev_lock */
static struct nk_dev __rcu *nk_cur;	/* the ready device, holds a reference */
static DEFINE_SPINLOCK(nk_restart_lock);
/* Devices to probe again, by carrier index (under nk_restart_lock). */
static struct virtio_device *nk_restart_vdev[NK_MAX_QPAIRS];
static bool nk_restart_off;			/* under nk_restart_lock */

/* ------------------------------------------------------------------ */
/* References and accessors                                           */
/* ------------------------------------------------------------------ */

static void nk_carrier_release(struct kref *ref)
{
	struct nk_carrier *c = container_of(ref, struct nk_carrier, ref);

	kfree(c->pair.rx_held);
	kfree(c);
}

static void nk_dev_release(struct kref *ref)
{
	struct nk_dev *nd = container_of(ref, struct nk_dev, ref);
	unsigned int i;

	for (i = 0; i < nd->nown; i++)
		kfree(nd->pairs[i].rx_held);
	for (i = 0; i < nd->nheld; i++)
		kref_put(&nd->held[i]->ref, nk_carrier_release);
	kfree(nd->pairs);
	kfree(nd);
}

void nk_dev_hold(struct nk_dev *nd)
{
	kref_get(&nd->ref);
}

void nk_dev_put(struct nk_dev *nd)
{
	kref_put(&nd->ref, nk_dev_release);
}

struct nk_dev *nk_dev_get(void)
{
	struct nk_dev *nd;

	rcu_read_lock();
	nd = rcu_dereference(nk_cur);
	if (nd)
		nk_dev_hold(nd);
	rcu_read_unlock();
	return nd;
}

bool nk_dev_bound(void)
{
	return rcu_access_pointer(nk_cur);
}

bool nk_dev_alive(struct nk_dev *nd)
{
	return !READ_ONCE(nd->dead);
}

bool nk_dev_lost(struct nk_dev *nd)
{
	return READ_ONCE(nd->lost);
}

u32 nk_dev_max_payload(const struct nk_dev *nd)
{
	return nd->hello.max_payload;
}

u32 nk_dev_engine_hold(const struct nk_dev *nd)
{
	return nd->hello.engine_hold;
}

u64 nk_dev_features(const struct nk_dev *nd)
{
	return nd->hello.features;
}

u32 nk_dev_endpoint_id(const struct nk_dev *nd)
{
	return nd->hello.endpoint_id;
}

u32 nk_dev_local_pair(struct nk_dev *nd, u32 *npairs)
{
	unsigned int i, n = READ_ONCE(nd->npairs), mine = 0;
	int cpu = raw_smp_processor_id();
	u32 cand[NK_MAX_QPAIRS];

	*npairs = n;
	for (i = 0; i < n; i++)
		if (nd->pair[i]->cpu == cpu)
			cand[mine++] = i;
	if (!mine)
		return cpu % n;
	/* More pairs than CPUs: the pairs of this CPU take turns. */
	return cand[mine > 1 ? (u32)atomic_inc_return(&nd->pair_turn) % mine : 0];
}

u32 nk_dev_addrs(const struct nk_dev *nd, const struct nk_addr **addrs)
{
	*addrs = nd->hello.addrs;
	return nd->hello.naddrs;
}

const char *nk_dev_name(const struct nk_dev *nd)
{
	return nd->hello.name;
}

struct device *nk_dev_device(struct nk_dev *nd)
{
	return &nd->vdev->dev;
}

void nk_dev_set_priv(struct nk_dev *nd, void *priv)
{
	nd->priv = priv;
}

void *nk_dev_priv(const struct nk_dev *nd)
{
	return nd->priv;
}

/* ------------------------------------------------------------------ */
/* requestq                                                            */
/* ------------------------------------------------------------------ */

/*
 * The txbuf cache: free buffers of max_payload bytes, linked through their
 * first word.  A request too large for the slab caches (which would come
 * zeroed from the page allocator) takes one.
 */
#define NK_TXCACHE_MAX	64

static struct {
	spinlock_t lock;
	void *free;
	unsigned int nfree;
} nk_txcache = { .lock = __SPIN_LOCK_UNLOCKED(nk_txcache.lock) };

static u32 nk_txcache_len(void)
{
	return max_payload;
}

static struct nk_txbuf *nk_txcache_get(void)
{
	void *buf;

	spin_lock(&nk_txcache.lock);
	buf = nk_txcache.free;
	if (buf) {
		nk_txcache.free = *(void **)buf;
		nk_txcache.nfree--;
	}
	spin_unlock(&nk_txcache.lock);
	return buf;
}

/* Keep @tb for reuse if it is of the cached size and there is room. */
static bool nk_txcache_put(struct nk_txbuf *tb)
{
	bool kept = false;

	if (tb->cap != nk_txcache_len())
		return false;
	spin_lock(&nk_txcache.lock);
	if (nk_txcache.nfree < NK_TXCACHE_MAX) {
		*(void **)tb = nk_txcache.free;
		nk_txcache.free = tb;
		nk_txcache.nfree++;
		kept = true;
	}
	spin_unlock(&nk_txcache.lock);
	return kept;
}

static void nk_txcache_drain(void)
{
	struct nk_txbuf *tb;

	while ((tb = nk_txcache_get()))
		kfree(tb);
}

struct nk_txbuf *nk_txbuf_alloc(u32 len, gfp_t gfp)
{
	struct nk_txbuf *tb = NULL;
	u32 cap = len;

	if (struct_size(tb, payload, len) > KMALLOC_MAX_CACHE_SIZE &&
	    len <= nk_txcache_len()) {
		cap = nk_txcache_len();
		tb = nk_txcache_get();
	}
	if (!tb)
		tb = kmalloc(struct_size(tb, payload, cap), gfp);
	if (!tb)
		return NULL;
	tb->cap = cap;
	memset(&tb->hdr, 0, sizeof(tb->hdr));
	tb->hdr.len = cpu_to_le32(len);
	return tb;
}

void nk_txbuf_free(struct nk_txbuf *tb)
{
	if (tb && !nk_txcache_put(tb))
		kfree(tb);
}

/*
 * The pair a message about socket @sock travels on (protocol.rst, Queue
 * pairs): pair 0 until HELLO agreed more.
 */
static struct nk_pair *nk_pair_of(struct nk_dev *nd, u32 sock)
{
	unsigned int n = READ_ONCE(nd->npairs);

	return nd->pair[n > 1 ? sock % n : 0];
}

/*
 * Move queued messages (NK_XMIT_QUEUE) to the ring, oldest first, while it
 * has room; true when any went, not yet kicked.  Caller holds tx_lock; the
 * device is alive.
 */
static bool nk_tx_flush(struct nk_pair *pp)
{
	struct scatterlist sg;
	struct nk_txbuf *tb;
	bool added = false;

	while ((tb = list_first_entry_or_null(&pp->tx_queue, struct nk_txbuf,
					      node))) {
		sg_init_one(&sg, &tb->hdr,
			    sizeof(tb->hdr) + le32_to_cpu(tb->hdr.len));
		if (virtqueue_add_outbuf(pp->reqq, &sg, 1, tb, GFP_ATOMIC))
			break;
		list_del(&tb->node);
		pp->tx_nqueued--;
		added = true;
	}
	pp->tx_free = pp->reqq->num_free;
	return added;
}

/* Return used requestq buffers.  Caller holds tx_lock; the device is alive. */
static void nk_tx_reclaim(struct nk_pair *pp)
{
	struct nk_txbuf *tb;
	unsigned int len;

	while ((tb = virtqueue_get_buf(pp->reqq, &len)))
		nk_txbuf_free(tb);
	pp->tx_free = pp->reqq->num_free;
}

/* Whether @pp may not be used: its device is dead, or it has none yet. */
static bool nk_pair_dead(struct nk_pair *pp)
{
	return !pp->nd || READ_ONCE(pp->nd->dead);
}

/*
 * Reclaim the requestq and wake senders waiting for space.  The interrupt
 * is left off: a sender that finds the ring full turns it on again.
 */
static void nk_tx_reclaim_wake(struct nk_pair *pp)
{
	bool wake, kick = false;

	spin_lock(&pp->tx_lock);
	if (nk_pair_dead(pp)) {
		spin_unlock(&pp->tx_lock);
		return;
	}
	virtqueue_disable_cb(pp->reqq);
	nk_tx_reclaim(pp);
	if (nk_tx_flush(pp)) {
		kick = virtqueue_kick_prepare(pp->reqq);
		pp->tx_unkicked = false;
	}
	/* Still queued: be told again; false means buffers came back. */
	if (pp->tx_nqueued && !virtqueue_enable_cb(pp->reqq))
		queue_work_on(pp->cpu, nk_wq, &pp->tx_work);
	wake = pp->tx_free && !pp->tx_nqueued;
	/* Under tx_lock: after nk_dev_mark_dead(), tx_space() never runs. */
	if (wake && pp->nd->ops->tx_space)
		pp->nd->ops->tx_space(pp->nd);
	spin_unlock(&pp->tx_lock);
	if (kick)
		virtqueue_notify(pp->reqq);
	if (wake)
		wake_up_all(&pp->tx_wait);
}

static void nk_tx_work(struct work_struct *work)
{
	nk_tx_reclaim_wake(container_of(work, struct nk_pair, tx_work));
}

/*
 * The pair @vq belongs to: the device's own pair vq->index / 2, or the
 * pair of the carrier @vq is on.
 */
static struct nk_pair *nk_pair_of_vq(struct virtqueue *vq)
{
	struct nk_vpriv *v = vq->vdev->priv;

	if (v->carrier)
		return &container_of(v, struct nk_carrier, vpriv)->pair;
	return &container_of(v, struct nk_dev, vpriv)->pairs[vq->index / 2];
}

static void nk_reqq_done(struct virtqueue *vq)
{
	struct nk_pair *pp = nk_pair_of_vq(vq);

	queue_work_on(pp->cpu, nk_wq, &pp->tx_work);
}

static bool nk_tx_can_try(struct nk_pair *pp)
{
	return nk_pair_dead(pp) ||
	       (READ_ONCE(pp->tx_free) && !READ_ONCE(pp->tx_nqueued));
}

/*
 * Whether the requestq has room for one more message now; if not, its
 * interrupt is on, so that the tx work wakes tx_wait (and calls
 * ops->tx_space()) once it has.  Caller holds tx_lock.
 */
static bool nk_tx_room(struct nk_pair *pp)
{
	for (;;) {
		nk_tx_reclaim(pp);
		if (nk_tx_flush(pp))
			pp->tx_unkicked = true;
		if (pp->tx_free && !pp->tx_nqueued)
			return true;
		if (virtqueue_enable_cb(pp->reqq))
			return false;
		/* Some came back meanwhile. */
		virtqueue_disable_cb(pp->reqq);
	}
}

int nk_tx_wait(struct nk_dev *nd, u32 sock, unsigned int flags, long *timeo)
{
	struct nk_pair *pp = nk_pair_of(nd, sock);
	bool room, kick;
	long left;

	spin_lock(&pp->tx_lock);
	if (nd->dead) {
		spin_unlock(&pp->tx_lock);
		return -ENODEV;
	}
	room = nk_tx_room(pp);
	kick = pp->tx_unkicked && virtqueue_kick_prepare(pp->reqq);
	pp->tx_unkicked = false;
	spin_unlock(&pp->tx_lock);
	if (kick)
		virtqueue_notify(pp->reqq);
	if (room)
		return 0;
	if (!*timeo)
		return -EAGAIN;
	if (flags & NK_XMIT_INTR)
		left = wait_event_interruptible_timeout(pp->tx_wait,
							nk_tx_can_try(pp),
							*timeo);
	else
		left = wait_event_killable_timeout(pp->tx_wait,
						   nk_tx_can_try(pp), *timeo);
	if (left < 0)
		return left;
	*timeo = left;
	if (READ_ONCE(nd->dead))
		return -ENODEV;
	return left || nk_tx_can_try(pp) ? 0 : -EAGAIN;
}

int nk_send(struct nk_dev *nd, struct nk_txbuf *tb, unsigned int flags,
	    long *timeo)
{
	struct nk_pair *pp = nk_pair_of(nd, le32_to_cpu(tb->hdr.sock));
	u32 len = le32_to_cpu(tb->hdr.len);
	struct scatterlist sg;
	bool kick;
	long left;
	int err;

	if (len > READ_ONCE(nd->payload_limit)) {
		err = -EMSGSIZE;
		goto out;
	}
	sg_init_one(&sg, &tb->hdr, sizeof(tb->hdr) + len);

	for (;;) {
		spin_lock(&pp->tx_lock);
		if (nd->dead) {
			spin_unlock(&pp->tx_lock);
			err = -ENODEV;
			goto out;
		}
		nk_tx_reclaim(pp);
		/* Queued messages go first: a socket's messages stay in order. */
		if (nk_tx_flush(pp))
			pp->tx_unkicked = true;
		err = pp->tx_nqueued ? -ENOSPC :
		      virtqueue_add_outbuf(pp->reqq, &sg, 1, tb, GFP_ATOMIC);
		if (!err) {
			pp->tx_free = pp->reqq->num_free;
			WRITE_ONCE(pp->tx_msgs, pp->tx_msgs + 1);
			pp->tx_unkicked = flags & NK_XMIT_MORE;
			kick = !pp->tx_unkicked &&
			       virtqueue_kick_prepare(pp->reqq);
			spin_unlock(&pp->tx_lock);
			if (kick)
				virtqueue_notify(pp->reqq);
			atomic64_inc(&nd->stats.tx_msgs);
			atomic64_add(len, &nd->stats.tx_bytes);
			return 0;
		}
		/*
		 * Full: be told when buffers come back.  False means some came
		 * back already; take them and try again.
		 */
		if (err == -ENOSPC && nk_tx_room(pp)) {
			spin_unlock(&pp->tx_lock);
			continue;
		}
		if (err == -ENOSPC && flags & NK_XMIT_QUEUE &&
		    pp->tx_nqueued < NK_TX_QUEUE_MAX) {
			list_add_tail(&tb->node, &pp->tx_queue);
			pp->tx_nqueued++;
			WRITE_ONCE(pp->tx_msgs, pp->tx_msgs + 1);
			atomic64_inc(&nd->stats.tx_queued);
			err = 0;
		}
		/* What was added without a kick must reach the device first. */
		kick = pp->tx_unkicked && virtqueue_kick_prepare(pp->reqq);
		pp->tx_unkicked = false;
		spin_unlock(&pp->tx_lock);
		if (kick)
			virtqueue_notify(pp->reqq);
		if (!err) {
			atomic64_inc(&nd->stats.tx_msgs);
			atomic64_add(len, &nd->stats.tx_bytes);
			return 0;
		}
		if (err != -ENOSPC)
			goto out;

		atomic64_inc(&nd->stats.tx_ring_full);
		if (!timeo || !*timeo) {
			err = -EAGAIN;
			if (flags & NK_XMIT_KEEP)
				return err;
			goto out;
		}
		if (flags & NK_XMIT_INTR)
			left = wait_event_interruptible_timeout(pp->tx_wait,
					nk_tx_can_try(pp), *timeo);
		else
			left = wait_event_killable_timeout(pp->tx_wait,
					nk_tx_can_try(pp), *timeo);
		if (left < 0) {
			err = left;
			goto out;
		}
		/* On timeout, *timeo is 0: one more try, then -EAGAIN. */
		*timeo = left;
	}
out:
	nk_txbuf_free(tb);
	return err;
}

void nk_kick(struct nk_dev *nd)
{
	unsigned int i, n = READ_ONCE(nd->npairs);
	struct nk_pair *pp;
	bool kick;

	for (i = 0; i < n; i++) {
		pp = nd->pair[i];
		kick = false;
		spin_lock(&pp->tx_lock);
		if (!nd->dead && pp->tx_unkicked)
			kick = virtqueue_kick_prepare(pp->reqq);
		pp->tx_unkicked = false;
		spin_unlock(&pp->tx_lock);
		if (kick)
			virtqueue_notify(pp->reqq);
	}
}

/* Complete the call waiting for @req_id with @hdr; false if there is none. */
static bool nk_call_complete(struct nk_dev *nd, u64 req_id,
			     const struct nk_hdr *hdr, const void *payload)
{
	struct nk_pending *p;
	u32 len;

	spin_lock(&nd->call_lock);
	list_for_each_entry(p, &nd->calls, node) {
		if (p->req_id != req_id)
			continue;
		list_del_init(&p->node);
		p->reply->hdr = *hdr;
		len = min(le32_to_cpu(hdr->len), p->reply->buf_len);
		if (len)
			memcpy(p->reply->buf, payload, len);
		p->reply->len = len;
		p->err = 0;
		complete(&p->done);
		spin_unlock(&nd->call_lock);
		return true;
	}
	spin_unlock(&nd->call_lock);
	return false;
}

int nk_post(struct nk_dev *nd, struct nk_txbuf *tb, unsigned int flags,
	    long *timeo)
{
	spin_lock(&nd->call_lock);
	tb->hdr.req_id = cpu_to_le64(++nd->next_req_id);
	spin_unlock(&nd->call_lock);
	return nk_send(nd, tb, flags, timeo);
}

/*
 * Register @p, the call of @tb whose reply goes to @reply, and give @tb
 * its req_id.  -ENODEV (and @tb freed) when the device is gone.
 */
static int nk_call_add(struct nk_dev *nd, struct nk_pending *p,
		       struct nk_txbuf *tb, struct nk_reply *reply)
{
	memset(&reply->hdr, 0, sizeof(reply->hdr));
	reply->len = 0;
	reply->req_id = 0;
	p->reply = reply;
	p->err = -ETIMEDOUT;
	init_completion(&p->done);

	spin_lock(&nd->call_lock);
	if (nd->dead) {
		spin_unlock(&nd->call_lock);
		nk_txbuf_free(tb);
		return -ENODEV;
	}
	p->req_id = ++nd->next_req_id;
	list_add_tail(&p->node, &nd->calls);
	spin_unlock(&nd->call_lock);
	tb->hdr.req_id = cpu_to_le64(p->req_id);
	return 0;
}

/*
 * Wait for @p's reply at most @timeo jiffies: what is left, or -EINTR.
 * call_waits counts the waits that found no reply yet, each a round trip
 * the caller slept through.
 */
static long nk_call_wait(struct nk_dev *nd, struct nk_pending *p,
			 unsigned int flags, long timeo)
{
	long left;

	if (!completion_done(&p->done))
		atomic64_inc(&nd->stats.call_waits);

	if (flags & NK_CALL_INTR)
		left = wait_for_completion_interruptible_timeout(&p->done,
								 max(timeo, 1L));
	else
		left = wait_for_completion_killable_timeout(&p->done,
							    max(timeo, 1L));
	return left < 0 ? -EINTR : left;
}

/*
 * End the call @p, whose wait ended with @err: the reply's status if it
 * came, else @err, or -ETIMEDOUT.
 */
static int nk_call_end(struct nk_dev *nd, struct nk_pending *p, int err,
		       unsigned int timeout_ms)
{
	/*
	 * The completer works under call_lock: after this, it is done or
	 * never runs.  A reply that came wins over a signal, so that what it
	 * created is not forgotten.
	 */
	spin_lock(&nd->call_lock);
	if (!list_empty(&p->node)) {
		list_del(&p->node);
		if (!err) {
			err = -ETIMEDOUT;
			atomic64_inc(&nd->stats.call_timeouts);
		}
	} else if (p->reply->req_id) {
		err = p->err ?: nk_hdr_status(&p->reply->hdr);
	}
	spin_unlock(&nd->call_lock);

	if (err == -ETIMEDOUT && !p->reply->hdr.op)
		dev_warn_ratelimited(&nd->vdev->dev,
				     "no reply to request %llu within %u ms\n",
				     p->req_id, timeout_ms);
	return err;
}

static unsigned int nk_call_limit(unsigned int timeout_ms)
{
	unsigned int limit_ms = READ_ONCE(reply_timeout_ms);

	return !timeout_ms || timeout_ms > limit_ms ? limit_ms : timeout_ms;
}

int nk_call_timeout(struct nk_dev *nd, struct nk_txbuf *tb,
		    struct nk_reply *reply, unsigned int flags,
		    unsigned int timeout_ms)
{
	struct nk_pending p;
	long timeo, left;
	int err;

	timeout_ms = nk_call_limit(timeout_ms);
	timeo = msecs_to_jiffies(timeout_ms);
	err = nk_call_add(nd, &p, tb, reply);
	if (err)
		return err;
	err = nk_send(nd, tb, flags, flags & NK_CALL_NOWAIT ? NULL : &timeo);
	if (!err) {
		reply->req_id = p.req_id;
		left = nk_call_wait(nd, &p, flags, timeo);
		if (left < 0)
			err = left;
	}
	return nk_call_end(nd, &p, err, timeout_ms);
}

int nk_call_pair(struct nk_dev *nd, struct nk_txbuf *first,
		 struct nk_reply *first_reply, int *first_err,
		 struct nk_txbuf *tb, struct nk_reply *reply,
		 unsigned int flags)
{
	unsigned int timeout_ms = nk_call_limit(0);
	long timeo = msecs_to_jiffies(timeout_ms);
	long *wait = flags & NK_CALL_NOWAIT ? NULL : &timeo;
	struct nk_pending p1, p2;
	long left = 0;
	int err1, err2;

	err1 = nk_call_add(nd, &p1, first, first_reply);
	if (err1) {
		nk_txbuf_free(tb);
		*first_err = err1;
		return err1;
	}
	err2 = nk_call_add(nd, &p2, tb, reply);
	if (err2) {
		nk_txbuf_free(first);
		*first_err = nk_call_end(nd, &p1, err2, timeout_ms);
		return err2;
	}
	/* One kick for both: the device sees them together, in order. */
	err1 = nk_send(nd, first, flags | NK_XMIT_MORE, wait);
	if (err1) {
		nk_txbuf_free(tb);
		err2 = err1;
	} else {
		first_reply->req_id = p1.req_id;
		err2 = nk_send(nd, tb, flags, wait);
		if (err2)
			nk_kick(nd);	/* @first is on the ring unkicked */
		else
			reply->req_id = p2.req_id;
		left = nk_call_wait(nd, &p1, flags, timeo);
		if (left < 0)
			err1 = left;
	}
	*first_err = nk_call_end(nd, &p1, err1, timeout_ms);
	if (err2)
		return nk_call_end(nd, &p2, err2, timeout_ms);
	/* @first's reply came, whatever it said: @tb's comes right behind. */
	if (first_reply->hdr.op) {
		left = nk_call_wait(nd, &p2, flags, left);
		return nk_call_end(nd, &p2, left < 0 ? left : 0, timeout_ms);
	}
	/* Given up with @first (a signal, its timeout): @tb too. */
	return nk_call_end(nd, &p2, err1 ?: *first_err, timeout_ms);
}

int nk_call(struct nk_dev *nd, struct nk_txbuf *tb, struct nk_reply *reply,
	    unsigned int flags)
{
	return nk_call_timeout(nd, tb, reply, flags, 0);
}

/* ------------------------------------------------------------------ */
/* eventq                                                              */
/* ------------------------------------------------------------------ */

/* A new eventq buffer from the pool, or NULL.  Caller holds rx_lock. */
static void *nk_rx_buf_alloc(struct nk_pair *pp)
{
	struct page *page;

	page = page_pool_alloc_pages(pp->rx_pool, GFP_KERNEL | __GFP_NOWARN);
	return page ? page_address(page) : NULL;
}

/* Give an eventq buffer back to the pool.  Any context. */
static void nk_rx_buf_free(struct nk_pair *pp, void *buf)
{
	page_pool_put_full_page(pp->rx_pool, virt_to_head_page(buf), false);
}

/* Post one eventq buffer of @size bytes.  Caller holds rx_lock. */
static int nk_rx_post(struct nk_pair *pp, void *buf, u32 size)
{
	struct scatterlist sg;
	int err;

	sg_init_one(&sg, buf, size);
	err = virtqueue_add_inbuf(pp->evq, &sg, 1, buf, GFP_KERNEL);
	if (err)
		return err;
	pp->rx_posted++;
	return 0;
}

/*
 * Top the eventq up to rx_target buffers of @size bytes; false when an
 * allocation failed.  Caller holds rx_lock.
 */
static bool nk_rx_fill(struct nk_pair *pp, u32 size)
{
	void *buf;

	while (pp->rx_posted + pp->rx_nheld < pp->rx_target) {
		buf = nk_rx_buf_alloc(pp);
		if (!buf)
			return false;
		if (nk_rx_post(pp, buf, size)) {
			nk_rx_buf_free(pp, buf);
			break;
		}
	}
	return true;
}

/*
 * Fail pending calls and senders now; see nk_dev_kill().  Each pair's
 * tx_lock is taken once after dead is set: a sender inside it has added
 * its message by then, every later one sees dead.
 */
static void nk_dev_mark_dead(struct nk_dev *nd)
{
	struct nk_pending *p, *tmp;
	unsigned int i;

	spin_lock(&nd->call_lock);
	WRITE_ONCE(nd->dead, true);
	for (i = 0; i < nd->nset; i++) {
		spin_lock(&nd->pair[i]->tx_lock);
		spin_unlock(&nd->pair[i]->tx_lock);
	}
	list_for_each_entry_safe(p, tmp, &nd->calls, node) {
		list_del_init(&p->node);
		p->err = -ENODEV;
		complete(&p->done);
	}
	spin_unlock(&nd->call_lock);
	for (i = 0; i < nd->nset; i++)
		wake_up_all(&nd->pair[i]->tx_wait);
}

/* Take the device of carrier @k asked for, if any. */
static struct virtio_device *nk_restart_take(unsigned int k)
{
	struct virtio_device *vdev;

	spin_lock(&nk_restart_lock);
	vdev = nk_restart_vdev[k];
	nk_restart_vdev[k] = NULL;
	spin_unlock(&nk_restart_lock);
	return vdev;
}

/*
 * Probe the devices asked for again, in the order the engine needs:
 * carrier 0 is unbound first (its reset ends the engine's session), the
 * carriers are probed again (fresh rings, which the engine counts only
 * when they started after that end), then carrier 0 is bound again and
 * takes them.  Until none is asked for: a removal may ask for more.
 */
static void nk_restart_work_fn(struct work_struct *work)
{
	struct virtio_device *zero, *vdev;
	bool again = true;
	unsigned int k;
	int err;

	while (again) {
		zero = nk_restart_take(0);
		if (zero)
			device_release_driver(&zero->dev);
		for (k = 1; k < NK_MAX_QPAIRS; k++) {
			vdev = nk_restart_take(k);
			if (!vdev)
				continue;
			err = device_reprobe(&vdev->dev);
			if (err)
				dev_err(&vdev->dev, "probing the carrier again failed: %d\n",
					err);
			put_device(&vdev->dev);
		}
		if (zero) {
			err = device_attach(&zero->dev);
			if (err <= 0)
				dev_err(&zero->dev, "probing again after the lost session failed: %d\n",
					err);
			put_device(&zero->dev);
		}
		spin_lock(&nk_restart_lock);
		again = false;
		for (k = 0; k < NK_MAX_QPAIRS; k++)
			again |= nk_restart_vdev[k] != NULL;
		spin_unlock(&nk_restart_lock);
	}
}

static DECLARE_WORK(nk_restart_work, nk_restart_work_fn);

/* Have carrier @k's @vdev probed again (unless the module is going). */
static void nk_reprobe_later(struct virtio_device *vdev, unsigned int k)
{
	spin_lock(&nk_restart_lock);
	if (!nk_restart_off && !nk_restart_vdev[k]) {
		get_device(&vdev->dev);
		nk_restart_vdev[k] = vdev;
		queue_work(system_wq, &nk_restart_work);
	}
	spin_unlock(&nk_restart_lock);
}

/* Have @nd's carriers, then its own device, probed again. */
static void nk_restart(struct nk_dev *nd)
{
	unsigned int i;

	for (i = nd->nown; i < nd->nset; i++)
		nk_reprobe_later(nd->pair[i]->vdev, nd->pair[i]->index);
	nk_reprobe_later(nd->vdev, 0);
}

/*
 * The engine has no session with this ready device: fail everything now
 * and probe it again.  Caller holds pair 0's rx_lock (its rx work); the
 * other pairs' rx works stop when the device is removed.
 */
static void nk_session_lost(struct nk_pair *pp)
{
	struct nk_dev *nd = pp->nd;

	lockdep_assert_held(&pp->rx_lock);
	dev_warn(&nd->vdev->dev,
		 "the engine lost endpoint %u's session; resetting its sockets and saying HELLO again\n",
		 nd->hello.endpoint_id);
	WRITE_ONCE(nd->lost, true);
	nk_dev_mark_dead(nd);
	pp->rx_run = false;
	nk_restart(nd);
}

static void nk_rx_invalid(struct nk_pair *pp, const struct nk_hdr *hdr,
			  u32 len, int err)
{
	atomic64_inc(&pp->nd->stats.rx_invalid);
	dev_warn_ratelimited(&pp->vdev->dev,
			     "invalid message dropped (%d): op %#x flags %#x len %u, %u bytes used\n",
			     err, le16_to_cpu(hdr->op), le16_to_cpu(hdr->flags),
			     le32_to_cpu(hdr->len), len);
}

/*
 * ops->rx() on the message at the start of its eventq buffer @hdr.
 * Return: false when ops->rx() took the buffer (nk_rx_skb()).
 */
static bool nk_rx_deliver(struct nk_pair *pp, struct nk_hdr *hdr)
{
	pp->rx_cur = hdr;
	pp->nd->ops->rx(pp->nd, hdr, hdr + 1);
	if (!pp->rx_cur)
		return false;
	pp->rx_cur = NULL;
	return true;
}

struct sk_buff *nk_rx_skb(struct nk_dev *nd, const struct nk_hdr *hdr,
			  const void *data, u32 len)
{
	struct nk_pair *pp = nk_pair_of(nd, le32_to_cpu(hdr->sock));
	const u8 *buf = pp->rx_cur;
	struct sk_buff *skb;
	struct page *page;

	lockdep_assert_held(&pp->rx_lock);
	if (!buf || (const void *)hdr != buf || len < nd->rx_buf_size / 2 ||
	    (const u8 *)data < buf || len > nd->rx_buf_size ||
	    (const u8 *)data - buf > nd->rx_buf_size - len)
		return NULL;
	skb = alloc_skb(0, GFP_KERNEL);
	if (!skb)
		return NULL;
	page = virt_to_head_page(buf);
	skb_add_rx_frag(skb, 0, page, (const u8 *)data - buf, len,
			PAGE_SIZE << nd->rx_order);
	skb_mark_for_recycle(skb);
	pp->rx_cur = NULL;
	atomic64_inc(&nd->stats.rx_lent);
	return skb;
}

/*
 * A socket's messages travel on its pair, the others on pair 0, by the
 * pairs HELLO agreed (which messages held before it are checked against).
 */
static int nk_rx_route(struct nk_pair *pp, const struct nk_hdr *hdr)
{
	return nk_pair_of(pp->nd, le32_to_cpu(hdr->sock)) == pp ? 0 : -EXDEV;
}

/*
 * Hand the held messages to ops->rx(), oldest first, and post their
 * buffers again.  Caller holds rx_lock; the device is ready.
 */
static void nk_rx_release_held(struct nk_pair *pp)
{
	struct nk_dev *nd = pp->nd;
	struct nk_rx_held *h;
	struct nk_hdr *hdr;
	int err;

	while (pp->rx_nheld) {
		h = &pp->rx_held[pp->rx_held_first];
		pp->rx_held_first = (pp->rx_held_first + 1) % pp->rx_target;
		pp->rx_nheld--;
		hdr = h->buf;
		/* Checked against the proposal; HELLO may have agreed on less. */
		err = nk_hdr_check(hdr, h->len, nd->ops->role,
				   nd->payload_limit) ?: nk_rx_route(pp, hdr);
		if (err)
			nk_rx_invalid(pp, hdr, h->len, err);
		else if (!nk_rx_deliver(pp, hdr))
			continue;
		if (nk_rx_post(pp, hdr, nd->rx_buf_size))
			nk_rx_buf_free(pp, hdr);
	}
}

/*
 * Validate and dispatch one eventq buffer.  Caller holds rx_lock.
 * Return: true when the buffer is not to be posted again: held for later,
 * or lent by ops->rx().
 */
static bool nk_rx_one(struct nk_pair *pp, struct nk_hdr *hdr, u32 len)
{
	struct nk_dev *nd = pp->nd;
	const void *payload = hdr + 1;
	struct nk_rx_held *h;
	u16 flags, op;
	int err;

	if (len > nd->rx_buf_size) {
		err = -EMSGSIZE;
		goto invalid;
	}
	err = nk_hdr_check(hdr, len, nd->ops->role, nd->payload_limit);
	if (err)
		goto invalid;

	atomic64_inc(&nd->stats.rx_msgs);
	atomic64_add(len - sizeof(*hdr), &nd->stats.rx_bytes);
	WRITE_ONCE(pp->rx_msgs, pp->rx_msgs + 1);
	op = le16_to_cpu(hdr->op);
	flags = le16_to_cpu(hdr->flags);

	if ((flags & NK_F_REPLY) &&
	    nk_call_complete(nd, le64_to_cpu(hdr->req_id), hdr, payload)) {
		atomic64_inc(&nd->stats.rx_replies);
		return false;
	}
	if (op == NK_EV_PROTO_ERROR &&
	    le64_to_cpu(hdr->arg[0]) == NK_PERR_NO_SESSION) {
		/* Before HELLO's answer, the device's start: nothing lost. */
		if (nd->ready)
			nk_session_lost(pp);
		return false;
	}
	if (op == NK_EV_PROTO_ERROR) {
		atomic64_inc(&nd->stats.rx_proto_errors);
		dev_warn_ratelimited(&nd->vdev->dev,
				     "engine refused a message: %d (code %llu, op %s, req %llu)\n",
				     nk_hdr_status(hdr), le64_to_cpu(hdr->arg[0]),
				     nk_op_name(le64_to_cpu(hdr->arg[2])),
				     le64_to_cpu(hdr->req_id));
		if (hdr->req_id &&
		    nk_call_complete(nd, le64_to_cpu(hdr->req_id), hdr, NULL))
			return false;
	}
	if (!READ_ONCE(nd->ready)) {
		/* ops->attach() has not returned: keep it, in order. */
		/* Never full: held and posted buffers are at most rx_target. */
		h = &pp->rx_held[(pp->rx_held_first + pp->rx_nheld) %
				 pp->rx_target];
		h->buf = hdr;
		h->len = len;
		pp->rx_nheld++;
		atomic64_inc(&nd->stats.rx_held_early);
		return true;
	}
	err = nk_rx_route(pp, hdr);
	if (err)
		goto invalid;
	return !nk_rx_deliver(pp, hdr);

invalid:
	nk_rx_invalid(pp, hdr, len, err);
	return false;
}

/*
 * Have @pp's eventq served by its rx work, on the high-priority pool while
 * its device asks for that (nk_dev_set_rx_hipri()).  Both works take
 * rx_lock, so one serves at a time, whichever was queued.
 */
static void nk_rx_queue(struct nk_pair *pp)
{
	if (READ_ONCE(pp->rx_hi))
		queue_work_on(pp->cpu, nk_hiwq, &pp->rx_hi_work);
	else
		queue_work_on(pp->cpu, nk_wq, &pp->rx_work);
}

static void nk_rx_serve(struct nk_pair *pp)
{
	unsigned int budget = NK_RX_BUDGET;
	struct nk_dev *nd;
	unsigned int len;
	void *buf;

	mutex_lock(&pp->rx_lock);
	nd = pp->nd;
	if (!pp->rx_run)
		goto out;
	if (!nd) {
		/* A carrier nobody uses yet: nothing may come on it. */
		while ((buf = virtqueue_get_buf(pp->evq, &len))) {
			dev_warn_ratelimited(&pp->vdev->dev,
					     "message on an unused carrier dropped\n");
			pp->rx_posted--;
			nk_rx_buf_free(pp, buf);
		}
		goto out;
	}
	if (nd->ready && pp->rx_nheld)
		nk_rx_release_held(pp);

	do {
		virtqueue_disable_cb(pp->evq);
		while ((buf = virtqueue_get_buf(pp->evq, &len))) {
			bool held = false;

			pp->rx_posted--;
			if (len < sizeof(struct nk_hdr)) {
				atomic64_inc(&nd->stats.rx_invalid);
				dev_warn_ratelimited(&pp->vdev->dev,
						     "eventq buffer with %u bytes used, dropped\n",
						     len);
			} else {
				held = nk_rx_one(pp, buf, len);
			}
			if (!held && nk_rx_post(pp, buf, nd->rx_buf_size))
				nk_rx_buf_free(pp, buf);
			if (!pp->rx_run)	/* nk_session_lost() */
				goto out;
			if (!--budget) {
				nk_rx_queue(pp);
				goto kick;
			}
		}
	} while (!virtqueue_enable_cb(pp->evq));
kick:
	if (!nk_rx_fill(pp, nd->rx_buf_size))
		atomic64_inc(&nd->stats.rx_buf_alloc_fail);
	virtqueue_kick(pp->evq);
	nk_tx_reclaim_wake(pp);
out:
	mutex_unlock(&pp->rx_lock);
}

static void nk_rx_work(struct work_struct *work)
{
	nk_rx_serve(container_of(work, struct nk_pair, rx_work));
}

static void nk_rx_hi_work(struct work_struct *work)
{
	nk_rx_serve(container_of(work, struct nk_pair, rx_hi_work));
}

static void nk_evq_done(struct virtqueue *vq)
{
	nk_rx_queue(nk_pair_of_vq(vq));
}

void nk_dev_set_rx_hipri(struct nk_dev *nd, bool on)
{
	unsigned int i;

	for (i = 0; i < nd->nset; i++)
		WRITE_ONCE(nd->pair[i]->rx_hi, on);
}

/* ------------------------------------------------------------------ */
/* Probe and remove                                                    */
/* ------------------------------------------------------------------ */

static int nk_config_check(struct virtio_device *vdev, struct nk_config *out)
{
	static const char * const roles[] = {
		[NK_ROLE_GUEST] = "guest", [NK_ROLE_NSM] = "nsm",
	};
	int role = nk_ops->role;
	struct nk_config cfg;

	virtio_cread_bytes(vdev, 0, &cfg, sizeof(cfg));
	*out = cfg;
	if (le16_to_cpu(cfg.zero) || cfg.magic[0] != NK_CONFIG_MAGIC0 ||
	    cfg.magic[1] != NK_CONFIG_MAGIC1 ||
	    cfg.magic[2] != NK_CONFIG_MAGIC2) {
		dev_err(&vdev->dev,
			"virtio device %u is not an nk device (no NKD magic in its config space); not binding\n",
			vdev->id.device);
		return -ENODEV;
	}
	if (cfg.version != NK_PROTO_VERSION) {
		dev_err(&vdev->dev,
			"nk device speaks protocol version %u, this driver %u; not binding\n",
			cfg.version, NK_PROTO_VERSION);
		return -ENODEV;
	}
	if (NK_CONFIG_ROLE(cfg.role) != role) {
		dev_err(&vdev->dev,
			"nk device has role %u (%s); %s binds only %s devices\n",
			NK_CONFIG_ROLE(cfg.role),
			NK_CONFIG_ROLE(cfg.role) == NK_ROLE_GUEST ||
			NK_CONFIG_ROLE(cfg.role) == NK_ROLE_NSM ?
			roles[NK_CONFIG_ROLE(cfg.role)] : "unknown",
			nk_ops->name, roles[role]);
		return -ENODEV;
	}
	if (!cfg.max_qpairs || cfg.max_qpairs > NK_MAX_QPAIRS ||
	    NK_CONFIG_CARRIER(cfg.role) >= cfg.max_qpairs) {
		dev_err(&vdev->dev,
			"nk device offers %u queue pairs (1..%u allowed), carrier %u; not binding\n",
			cfg.max_qpairs, NK_MAX_QPAIRS, NK_CONFIG_CARRIER(cfg.role));
		return -ENODEV;
	}
	return 0;
}

static void nk_pair_init(struct nk_pair *pp, struct virtio_device *vdev,
			 unsigned int index)
{
	pp->vdev = vdev;
	pp->index = index;
	pp->cpu = cpumask_local_spread(index % num_online_cpus(), NUMA_NO_NODE);
	spin_lock_init(&pp->tx_lock);
	init_waitqueue_head(&pp->tx_wait);
	INIT_WORK(&pp->tx_work, nk_tx_work);
	INIT_LIST_HEAD(&pp->tx_queue);
	mutex_init(&pp->rx_lock);
	INIT_WORK(&pp->rx_work, nk_rx_work);
	INIT_WORK(&pp->rx_hi_work, nk_rx_hi_work);
}

/* Virtqueues 0..2n-1 of @vdev become pairs @pp[0..n). */
static int nk_find_vqs(struct virtio_device *vdev, struct nk_pair *pp,
		       unsigned int n)
{
	struct virtqueue *vqs[2 * NK_MAX_QPAIRS];
	unsigned int i;
	int err;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	struct virtqueue_info info[2 * NK_MAX_QPAIRS];

	for (i = 0; i < n; i++) {
		info[NK_VQ_REQUEST(i)] = (struct virtqueue_info)
			{ .name = "requestq", .callback = nk_reqq_done };
		info[NK_VQ_EVENT(i)] = (struct virtqueue_info)
			{ .name = "eventq", .callback = nk_evq_done };
	}
	err = virtio_find_vqs(vdev, 2 * n, vqs, info, NULL);
#else
	vq_callback_t *callbacks[2 * NK_MAX_QPAIRS];
	const char *names[2 * NK_MAX_QPAIRS];

	for (i = 0; i < n; i++) {
		callbacks[NK_VQ_REQUEST(i)] = nk_reqq_done;
		callbacks[NK_VQ_EVENT(i)] = nk_evq_done;
		names[NK_VQ_REQUEST(i)] = "requestq";
		names[NK_VQ_EVENT(i)] = "eventq";
	}
	err = virtio_find_vqs(vdev, 2 * n, vqs, callbacks, names, NULL);
#endif
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		pp[i].reqq = vqs[NK_VQ_REQUEST(i)];
		pp[i].evq = vqs[NK_VQ_EVENT(i)];
		pp[i].tx_free = pp[i].reqq->num_free;
		virtqueue_disable_cb(pp[i].reqq);
	}
	return 0;
}

/*
 * The eventq buffers of @pp (@size bytes, of page order @order): its pool,
 * its held FIFO, and the ring filled.  Then @pp's rx work may run.
 */
static int nk_pair_rx_setup(struct nk_pair *pp, u32 size, unsigned int order)
{
	struct page_pool_params pparams = { .nid = NUMA_NO_NODE };

	pp->rx_target = clamp(event_bufs, 1U,
			      virtqueue_get_vring_size(pp->evq));
	pparams.order = order;
	pparams.pool_size = pp->rx_target;
	pp->rx_pool = page_pool_create(&pparams);
	if (IS_ERR(pp->rx_pool)) {
		int err = PTR_ERR(pp->rx_pool);

		pp->rx_pool = NULL;
		return err;
	}
	pp->rx_held = kcalloc(pp->rx_target, sizeof(*pp->rx_held),
			      GFP_KERNEL);
	if (!pp->rx_held)
		return -ENOMEM;
	mutex_lock(&pp->rx_lock);
	nk_rx_fill(pp, size);
	pp->rx_run = pp->rx_posted > 0;
	mutex_unlock(&pp->rx_lock);
	return pp->rx_run ? 0 : -ENOMEM;
}

/* Stop @pp's rx work: once this returns, ops->rx() is not called from it. */
static void nk_pair_rx_stop(struct nk_pair *pp)
{
	mutex_lock(&pp->rx_lock);
	pp->rx_run = false;
	mutex_unlock(&pp->rx_lock);
}

/*
 * Mark the device dead: pending calls complete with -ENODEV, senders wake,
 * and every later nk_send()/nk_call() fails at once.  Then stop the rx
 * works: once this returns, ops->rx() is not running and never runs again.
 */
static void nk_dev_kill(struct nk_dev *nd)
{
	unsigned int i;

	nk_dev_mark_dead(nd);
	for (i = 0; i < nd->nset; i++)
		nk_pair_rx_stop(nd->pair[i]);
}

/*
 * After its device was reset (no interrupts come): cancel @pp's works and
 * free everything on its rings; the caller deletes the virtqueues.
 */
static void nk_pair_drain(struct nk_pair *pp)
{
	void *buf;

	cancel_work_sync(&pp->rx_work);
	cancel_work_sync(&pp->rx_hi_work);
	cancel_work_sync(&pp->tx_work);
	for (; pp->rx_nheld; pp->rx_nheld--) {
		nk_rx_buf_free(pp, pp->rx_held[pp->rx_held_first].buf);
		pp->rx_held_first = (pp->rx_held_first + 1) % pp->rx_target;
	}
	while (pp->evq && (buf = virtqueue_detach_unused_buf(pp->evq)))
		nk_rx_buf_free(pp, buf);
	while ((buf = list_first_entry_or_null(&pp->tx_queue, struct nk_txbuf,
					       node))) {
		list_del(&((struct nk_txbuf *)buf)->node);
		nk_txbuf_free(buf);
	}
	pp->tx_nqueued = 0;
	while (pp->reqq &&
	       (buf = virtqueue_get_buf(pp->reqq, &(unsigned int){ 0 })))
		nk_txbuf_free(buf);
	while (pp->reqq && (buf = virtqueue_detach_unused_buf(pp->reqq)))
		nk_txbuf_free(buf);
}

/* After nk_pair_drain() of its pairs: the virtqueues and pools go. */
static void nk_pairs_free(struct virtio_device *vdev, struct nk_pair *pp,
			  unsigned int n)
{
	unsigned int i;

	vdev->config->del_vqs(vdev);
	for (i = 0; i < n; i++) {
		pp[i].reqq = NULL;
		pp[i].evq = NULL;
		/* Pages lent to skbs come back later; the pool waits for them. */
		if (pp[i].rx_pool)
			page_pool_destroy(pp[i].rx_pool);
		pp[i].rx_pool = NULL;
	}
}

/*
 * After nk_dev_kill(): stop the device's own pairs and free everything on
 * their rings.  The carriers it used are left to their own removal or
 * probe again (nk_dev_end()).
 */
static void nk_dev_shutdown(struct nk_dev *nd)
{
	unsigned int i;

	/* No interrupts after the reset: the works cannot be queued again. */
	virtio_reset_device(nd->vdev);
	for (i = 0; i < nd->nown; i++)
		nk_pair_drain(&nd->pairs[i]);
	nk_pairs_free(nd->vdev, nd->pairs, nd->nown);
}

static int nk_hello(struct nk_dev *nd)
{
	u64 features = nd->ops->features;
	char name[NK_HELLO_REPLY_MAX];
	struct nk_reply reply = { .buf = name, .buf_len = sizeof(name) };
	struct nk_txbuf *tb;
	int err;

	/* Several pairs set up: say so, and how many (protocol.rst). */
	if (nd->nset > 1)
		features |= NK_FEAT_MQ;
	features &= feature_mask;
	tb = nk_txbuf_alloc(0, GFP_KERNEL);
	if (!tb)
		return -ENOMEM;
	nk_hdr_init(&tb->hdr, NK_OP_HELLO, 0, 0, 0);
	tb->hdr.arg[0] = cpu_to_le64(NK_PROTO_VERSION);
	tb->hdr.arg[1] = cpu_to_le64(features);
	tb->hdr.arg[2] = cpu_to_le64(nd->payload_limit);
	tb->hdr.arg[3] = cpu_to_le64(nd->ops->role);
	if (features & NK_FEAT_MQ)
		tb->hdr.buf_alloc = cpu_to_le32(nd->nset);

	err = nk_call(nd, tb, &reply, 0);
	if (le16_to_cpu(reply.hdr.op) == NK_OP_HELLO)
		err = nk_hello_reply_parse(&reply.hdr, name, reply.len,
					   features, nd->payload_limit,
					   &nd->hello);
	if (!err && nd->hello.pairs > nd->nset)
		err = -EPROTO;
	if (err == -EPROTONOSUPPORT)
		dev_err(&nd->vdev->dev,
			"HELLO refused: the engine speaks protocol version %u, this driver %u\n",
			nd->hello.version, NK_PROTO_VERSION);
	else if (err)
		dev_err(&nd->vdev->dev, "HELLO failed: %d\n", err);
	return err;
}

static int nk_validate(struct virtio_device *vdev)
{
	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev,
			"nk device without VIRTIO_F_VERSION_1; not binding\n");
		return -ENODEV;
	}
	/* Split rings of direct descriptors only (protocol.rst, Features). */
	vdev->features &= BIT_ULL(VIRTIO_F_VERSION_1);
	return 0;
}

/* The eventq buffer size, and so its page order, are the module's. */
static u32 nk_rx_buf_size(void)
{
	return sizeof(struct nk_hdr) + max_payload;
}

/*
 * @nd no longer uses its carriers, and none is taken again before it was
 * probed again (a reset: fresh rings on both sides, since its rings may
 * hold what this session sent and was sent).  With @resched, each but
 * @skip is probed again now.  Caller holds nk_dev_lock; @nd is dead.
 */
static void nk_dev_release_carriers(struct nk_dev *nd, bool resched,
				    struct nk_pair *skip)
{
	struct nk_pair *pp;
	unsigned int i;

	for (i = nd->nown; i < nd->nset; i++) {
		pp = nd->pair[i];
		mutex_lock(&pp->rx_lock);
		spin_lock(&pp->tx_lock);
		pp->nd = NULL;
		WRITE_ONCE(pp->rx_hi, false);
		spin_unlock(&pp->tx_lock);
		mutex_unlock(&pp->rx_lock);
		if (nk_carriers[pp->index] &&
		    &nk_carriers[pp->index]->pair == pp)
			nk_carriers[pp->index] = NULL;
		if (resched && pp != skip)
			nk_reprobe_later(pp->vdev, pp->index);
	}
	nd->nset = nd->nown;
}

/*
 * The end of a device: unpublished, dead, its module's state detached,
 * its rings stopped, its carriers given back (see
 * nk_dev_release_carriers()).  Caller holds nk_dev_lock.
 */
static void nk_dev_end(struct nk_dev *nd, bool resched, struct nk_pair *skip)
{
	RCU_INIT_POINTER(nk_cur, NULL);
	nk_bound = NULL;
	synchronize_rcu();
	/* nk_cur's reference: nobody can take a new one now. */
	nk_dev_put(nd);

	/* Dead first, so that detach may wait for its own senders. */
	nk_dev_kill(nd);
	nd->ops->detach(nd);
	nk_dev_release_carriers(nd, resched, skip);
	nk_dev_shutdown(nd);
	dev_info(&nd->vdev->dev, "nk endpoint %u removed\n",
		 nd->hello.endpoint_id);
	nd->vdev->priv = NULL;
	nk_dev_put(nd);
}

/*
 * Carrier @k of an endpoint: its pair is set up and waits, posted, for
 * the device of carrier 0 to take it (nk_probe()), now or when that one
 * is probed next.  Caller holds nk_dev_lock.
 */
static int nk_carrier_probe(struct virtio_device *vdev, unsigned int k)
{
	struct nk_carrier *c;
	int err;

	if (nk_carriers[k]) {
		dev_err(&vdev->dev, "%s already has carrier %u (%s)\n",
			nk_ops->name, k, dev_name(&nk_carriers[k]->pair.vdev->dev));
		return -EBUSY;
	}
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	c->vpriv.carrier = true;
	kref_init(&c->ref);
	nk_pair_init(&c->pair, vdev, k);
	vdev->priv = &c->vpriv;
	err = nk_find_vqs(vdev, &c->pair, 1);
	if (err) {
		dev_err(&vdev->dev, "cannot set up the virtqueues: %d\n", err);
		goto out_free;
	}
	err = nk_pair_rx_setup(&c->pair, nk_rx_buf_size(),
			       get_order(nk_rx_buf_size()));
	if (err)
		goto out_shutdown;
	virtio_device_ready(vdev);
	virtqueue_kick(c->pair.evq);
	nk_carriers[k] = c;
	if (nk_bound)
		dev_info(&vdev->dev,
			 "nk carrier %u bound; endpoint %u uses it from its next session\n",
			 k, nk_bound->hello.endpoint_id);
	else
		dev_info(&vdev->dev, "nk carrier %u bound\n", k);
	return 0;

out_shutdown:
	nk_pair_rx_stop(&c->pair);
	virtio_reset_device(vdev);
	nk_pair_drain(&c->pair);
	nk_pairs_free(vdev, &c->pair, 1);
out_free:
	vdev->priv = NULL;
	kref_put(&c->ref, nk_carrier_release);
	return err;
}

/*
 * Take carriers 1, 2, ... (as many in a row as are bound, up to @want
 * pairs) as pairs of @nd, which has one pair of its own.  Caller holds
 * nk_dev_lock.
 */
static void nk_adopt_carriers(struct nk_dev *nd, unsigned int want)
{
	struct nk_pair *pp;

	while (nd->nset < want && nk_carriers[nd->nset]) {
		kref_get(&nk_carriers[nd->nset]->ref);
		nd->held[nd->nheld++] = nk_carriers[nd->nset];
		pp = &nk_carriers[nd->nset]->pair;
		mutex_lock(&pp->rx_lock);
		spin_lock(&pp->tx_lock);
		pp->nd = nd;
		spin_unlock(&pp->tx_lock);
		mutex_unlock(&pp->rx_lock);
		nd->pair[nd->nset++] = pp;
	}
}

/* How many pairs to set up: one per CPU, at most what the device offers. */
static unsigned int nk_pairs_wanted(const struct nk_config *cfg)
{
	unsigned int n = queue_pairs ?: num_online_cpus();

	return clamp(n, 1U, (unsigned int)cfg->max_qpairs);
}

static int nk_probe(struct virtio_device *vdev)
{
	unsigned int want, i;
	struct nk_config cfg;
	struct nk_dev *nd;
	int err;

	err = nk_config_check(vdev, &cfg);
	if (err)
		return err;
	if (max_payload < NK_MIN_PAYLOAD || max_payload > NK_MAX_PAYLOAD) {
		dev_err(&vdev->dev, "max_payload=%u is outside %u..%u\n",
			max_payload, NK_MIN_PAYLOAD, NK_MAX_PAYLOAD);
		return -EINVAL;
	}

	mutex_lock(&nk_dev_lock);
	if (NK_CONFIG_CARRIER(cfg.role)) {
		err = nk_carrier_probe(vdev, NK_CONFIG_CARRIER(cfg.role));
		goto out_unlock;
	}
	if (nk_bound) {
		dev_err(&vdev->dev,
			"%s already serves %s; one nk device per VM\n",
			nk_ops->name, dev_name(&nk_bound->vdev->dev));
		err = -EBUSY;
		goto out_unlock;
	}

	want = nk_pairs_wanted(&cfg);
	nd = kzalloc(sizeof(*nd), GFP_KERNEL);
	if (nd)
		nd->pairs = kcalloc(want, sizeof(*nd->pairs), GFP_KERNEL);
	if (!nd || !nd->pairs) {
		kfree(nd);
		err = -ENOMEM;
		goto out_unlock;
	}
	kref_init(&nd->ref);
	nd->vdev = vdev;
	nd->ops = nk_ops;
	spin_lock_init(&nd->call_lock);
	INIT_LIST_HEAD(&nd->calls);
	nd->payload_limit = max_payload;
	nd->rx_buf_size = nk_rx_buf_size();
	nd->rx_order = get_order(nd->rx_buf_size);
	nd->npairs = 1;
	for (i = 0; i < want; i++)
		nk_pair_init(&nd->pairs[i], vdev, i);
	vdev->priv = &nd->vpriv;

	/*
	 * Every pair on this device, or (QEMU 7.2's carrier has one pair)
	 * pair 0 here and the others on carriers 1, 2, ...
	 */
	nd->nown = want;
	err = want > 1 ? nk_find_vqs(vdev, nd->pairs, want) : -ENOENT;
	if (err) {
		nd->nown = 1;
		err = nk_find_vqs(vdev, nd->pairs, 1);
	}
	if (err) {
		dev_err(&vdev->dev, "cannot set up the virtqueues: %d\n", err);
		goto out_free;
	}
	for (i = 0; i < nd->nown; i++) {
		nd->pairs[i].nd = nd;
		nd->pair[nd->nset++] = &nd->pairs[i];
		err = nk_pair_rx_setup(&nd->pairs[i], nd->rx_buf_size,
				       nd->rx_order);
		if (err)
			goto out_shutdown;
	}
	if (nd->nown == 1)
		nk_adopt_carriers(nd, want);

	virtio_device_ready(vdev);
	for (i = 0; i < nd->nown; i++)
		virtqueue_kick(nd->pairs[i].evq);

	err = nk_hello(nd);
	if (err)
		goto out_shutdown;
	WRITE_ONCE(nd->payload_limit, nd->hello.max_payload);
	WRITE_ONCE(nd->npairs, nd->hello.pairs);

	err = nk_ops->attach(nd);
	if (err) {
		dev_err(&vdev->dev, "%s refused the device: %d\n",
			nk_ops->name, err);
		goto out_shutdown;
	}
	/* What arrived during attach goes to ops->rx() first, in order. */
	WRITE_ONCE(nd->ready, true);
	for (i = 0; i < nd->nset; i++) {
		mutex_lock(&nd->pair[i]->rx_lock);
		if (nd->pair[i]->rx_nheld)
			nk_rx_queue(nd->pair[i]);
		mutex_unlock(&nd->pair[i]->rx_lock);
	}

	nk_bound = nd;
	nk_dev_hold(nd);
	rcu_assign_pointer(nk_cur, nd);
	mutex_unlock(&nk_dev_lock);

	dev_info(&vdev->dev,
		 "nk %s endpoint %u \"%s\" ready: max_payload %u, features %#llx, %u of %u queue pairs (%u on carriers), %u eventq buffers each\n",
		 nk_ops->role == NK_ROLE_GUEST ? "guest" : "nsm",
		 nd->hello.endpoint_id, nd->hello.name, nd->hello.max_payload,
		 nd->hello.features, nd->npairs, nd->nset, nd->nset - nd->nown,
		 nd->pairs[0].rx_target);
	return 0;

out_shutdown:
	nk_dev_kill(nd);
	nk_dev_release_carriers(nd, false, NULL);
	nk_dev_shutdown(nd);
out_free:
	vdev->priv = NULL;
	nk_dev_put(nd);
out_unlock:
	mutex_unlock(&nk_dev_lock);
	return err;
}

static void nk_remove(struct virtio_device *vdev)
{
	struct nk_carrier *c;
	struct nk_vpriv *v;
	struct nk_dev *nd;

	mutex_lock(&nk_dev_lock);
	/* Read under the lock: a carrier's removal may have ended it. */
	v = vdev->priv;
	if (!v) {
		/* Carrier 0 of a device a carrier's removal ended. */
		mutex_unlock(&nk_dev_lock);
		return;
	}
	if (!v->carrier) {
		nk_dev_end(container_of(v, struct nk_dev, vpriv), false, NULL);
		mutex_unlock(&nk_dev_lock);
		return;
	}
	c = container_of(v, struct nk_carrier, vpriv);
	nd = c->pair.nd;
	if (nd) {
		/*
		 * A pair in use goes: the device ends, and starts again with
		 * its other carriers fresh.
		 */
		dev_warn(&vdev->dev,
			 "nk carrier %u removed; endpoint %u's sockets are reset and it says HELLO again\n",
			 c->pair.index, nd->hello.endpoint_id);
		WRITE_ONCE(nd->lost, true);
		nk_reprobe_later(nd->vdev, 0);
		nk_dev_end(nd, true, &c->pair);
	}
	if (nk_carriers[c->pair.index] == c)
		nk_carriers[c->pair.index] = NULL;
	nk_pair_rx_stop(&c->pair);
	virtio_reset_device(vdev);
	nk_pair_drain(&c->pair);
	nk_pairs_free(vdev, &c->pair, 1);
	vdev->priv = NULL;
	mutex_unlock(&nk_dev_lock);
	kref_put(&c->ref, nk_carrier_release);
}

/* ------------------------------------------------------------------ */
/* sysfs: device counters                                              */
/* ------------------------------------------------------------------ */

/* The device @dev is carrier 0 of; NULL on another carrier. */
static struct nk_dev *nk_attr_dev(struct device *dev)
{
	struct nk_vpriv *v = dev_to_virtio(dev)->priv;

	return v && !v->carrier ? container_of(v, struct nk_dev, vpriv) : NULL;
}

/*
 * The attributes read the device under nk_dev_lock: a carrier's removal
 * may end the device of carrier 0 while carrier 0's attributes stay (the
 * driver core removes them, before ->remove(), only when carrier 0 is
 * unbound).
 */
#define NK_DEV_ATTR(name, fmt, expr)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct nk_dev *nd;						\
	ssize_t ret = -ENODEV;						\
									\
	mutex_lock(&nk_dev_lock);					\
	nd = nk_attr_dev(dev);						\
	if (nd)								\
		ret = sysfs_emit(buf, fmt "\n", expr);			\
	mutex_unlock(&nk_dev_lock);					\
	return ret;							\
}									\
static DEVICE_ATTR_RO(name)

#define NK_STAT_ATTR(field)						\
	NK_DEV_ATTR(field, "%lld", atomic64_read(&nd->stats.field))

NK_STAT_ATTR(tx_msgs);
NK_STAT_ATTR(tx_bytes);
NK_STAT_ATTR(tx_ring_full);
NK_STAT_ATTR(tx_queued);
NK_STAT_ATTR(rx_msgs);
NK_STAT_ATTR(rx_bytes);
NK_STAT_ATTR(rx_replies);
NK_STAT_ATTR(rx_invalid);
NK_STAT_ATTR(rx_held_early);
NK_STAT_ATTR(rx_proto_errors);
NK_STAT_ATTR(rx_buf_alloc_fail);
NK_STAT_ATTR(rx_lent);
NK_STAT_ATTR(call_timeouts);
NK_STAT_ATTR(call_waits);

NK_DEV_ATTR(endpoint_id, "%u", nd->hello.endpoint_id);
NK_DEV_ATTR(endpoint_name, "%s", nd->hello.name);
NK_DEV_ATTR(max_payload, "%u", nd->hello.max_payload);
NK_DEV_ATTR(features, "%#llx", nd->hello.features);
/* Queue pairs in use (HELLO), and set up (its own and carriers'). */
NK_DEV_ATTR(pairs, "%u", READ_ONCE(nd->npairs));
NK_DEV_ATTR(pairs_set_up, "%u", nd->nset);

/* Per pair set up, in pair order, space-separated: messages each way. */
#define NK_PAIR_ATTR(name, field)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct nk_dev *nd;						\
	unsigned int i;							\
	int n = -ENODEV;						\
									\
	mutex_lock(&nk_dev_lock);					\
	nd = nk_attr_dev(dev);						\
	if (nd) {							\
		for (i = 0, n = 0; i < nd->nset; i++)			\
			n += sysfs_emit_at(buf, n, "%s%llu", i ? " " : "", \
					   READ_ONCE(nd->pair[i]->field)); \
		n += sysfs_emit_at(buf, n, "\n");			\
	}								\
	mutex_unlock(&nk_dev_lock);					\
	return n;							\
}									\
static DEVICE_ATTR_RO(name)

NK_PAIR_ATTR(pair_rx_msgs, rx_msgs);
NK_PAIR_ATTR(pair_tx_msgs, tx_msgs);

/* Everything in one directory, .../virtio<N>/nk/, clear of virtio's own attributes. */
static struct attribute *nk_dev_attrs[] = {
	&dev_attr_endpoint_id.attr,
	&dev_attr_endpoint_name.attr,
	&dev_attr_max_payload.attr,
	&dev_attr_features.attr,
	&dev_attr_pairs.attr,
	&dev_attr_pairs_set_up.attr,
	&dev_attr_pair_rx_msgs.attr,
	&dev_attr_pair_tx_msgs.attr,
	&dev_attr_tx_msgs.attr,
	&dev_attr_tx_bytes.attr,
	&dev_attr_tx_ring_full.attr,
	&dev_attr_tx_queued.attr,
	&dev_attr_rx_msgs.attr,
	&dev_attr_rx_bytes.attr,
	&dev_attr_rx_replies.attr,
	&dev_attr_rx_invalid.attr,
	&dev_attr_rx_held_early.attr,
	&dev_attr_rx_proto_errors.attr,
	&dev_attr_rx_buf_alloc_fail.attr,
	&dev_attr_rx_lent.attr,
	&dev_attr_call_timeouts.attr,
	&dev_attr_call_waits.attr,
	NULL
};

/* A carrier but 0 shows none: its nk/ directory is empty. */
static umode_t nk_dev_attr_visible(struct kobject *kobj, struct attribute *a,
				   int n)
{
	return nk_attr_dev(kobj_to_dev(kobj)) ? a->mode : 0;
}

static const struct attribute_group nk_dev_group = {
	.name = "nk",
	.attrs = nk_dev_attrs,
	.is_visible = nk_dev_attr_visible,
};

static const struct attribute_group *nk_dev_groups[] = {
	&nk_dev_group,
	NULL
};

/* ------------------------------------------------------------------ */
/* Registration                                                        */
/* ------------------------------------------------------------------ */

static const struct virtio_device_id nk_id_table[] = {
	{ NK_VIRTIO_ID_GPIO, VIRTIO_DEV_ANY_ID },
	{ NK_VIRTIO_ID, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, nk_id_table);

static struct virtio_driver nk_driver = {
	.driver.owner = THIS_MODULE,
	.driver.dev_groups = nk_dev_groups,
	.id_table = nk_id_table,
	.validate = nk_validate,
	.probe = nk_probe,
	.remove = nk_remove,
};

int nk_transport_register(const struct nk_transport_ops *ops)
{
	int err;

	nk_wq = alloc_workqueue("%s", 0, 0, ops->name);
	if (!nk_wq)
		return -ENOMEM;
	nk_hiwq = alloc_workqueue("%s_hi", WQ_HIGHPRI, 0, ops->name);
	if (!nk_hiwq) {
		destroy_workqueue(nk_wq);
		return -ENOMEM;
	}
	nk_ops = ops;
	nk_driver.driver.name = ops->name;
	err = register_virtio_driver(&nk_driver);
	if (err) {
		destroy_workqueue(nk_hiwq);
		destroy_workqueue(nk_wq);
	}
	return err;
}

void nk_transport_unregister(void)
{
	struct virtio_device *vdev;
	unsigned int k;

	spin_lock(&nk_restart_lock);
	nk_restart_off = true;
	spin_unlock(&nk_restart_lock);
	cancel_work_sync(&nk_restart_work);
	for (k = 0; k < NK_MAX_QPAIRS; k++) {
		spin_lock(&nk_restart_lock);
		vdev = nk_restart_vdev[k];
		nk_restart_vdev[k] = NULL;
		spin_unlock(&nk_restart_lock);
		if (vdev)
			put_device(&vdev->dev);
	}
	unregister_virtio_driver(&nk_driver);
	destroy_workqueue(nk_hiwq);
	destroy_workqueue(nk_wq);
	nk_txcache_drain();
}
