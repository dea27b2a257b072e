// SPDX-License-Identifier: GPL-2.0
/*
 * nk transport: virtio driver core for the nk device, shared by the guest
 * and the NSM module.  The API is documented in nk_transport.h.
 *
 * Virtqueues.  Queue pair 0 only: virtqueue 0 is the requestq (driver to
 * device), virtqueue 1 the eventq (device to driver).  Pairs are an
 * optimisation the protocol does not require; QEMU 7.2's carrier has one.
 * HELLO does not offer NK_FEAT_MQ, so the engine uses pair 0 alone, and a
 * device that is another carrier of the endpoint (carrier k > 0 in its
 * configuration space) is not bound.
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
 * Locking:
 *   rx_lock (mutex)   the eventq, rx_run, ready, rx_posted, rx_held,
 *                     rx_cur and allocations from rx_pool (page_pool
 *                     allocation wants one context); ops->rx() runs
 *                     under it.  payload_limit is written
 *                     under it (before the device is published) and read
 *                     with READ_ONCE() by senders
 *   call_lock (spin)  the list of nk_call()s waiting for replies, next_req_id
 *   tx_lock (spin)    the requestq, tx_free, tx_unkicked, tx_queue,
 *                     tx_nqueued; ops->tx_space() runs under it
 *   nk_txcache.lock (spin)  the txbuf cache; nests inside tx_lock
 *   dead              set with call_lock and tx_lock held; read under either
 * Order: rx_lock -> call_lock -> tx_lock.  nk_dev_lock (mutex) serialises
 * probe and remove and protects nk_bound; the published device pointer
 * nk_cur is RCU protected and holds a reference.
 *
 * A lost session.  The engine ends an endpoint's session whenever the
 * vhost-user device stops (QEMU stop/cont, savevm, a reconnect after an
 * engine restart) and, when the device starts again, tells the driver so
 * with EV_PROTO_ERROR NK_PERR_NO_SESSION before anything else.  Before
 * HELLO has been answered that is the normal start and is dropped; on a
 * ready device it means that every socket the engine knew is gone.  The
 * device is then marked dead and lost (pending calls and senders fail at
 * once), the rx work stops, and nk_restart_work probes the device again
 * from scratch with device_reprobe(): remove (ops->detach() resets every
 * socket; nk_dev_lost() tells it why), a virtio reset, which also resets
 * the engine's view of the rings, then probe, HELLO and ops->attach().
 * nk_restart_lock protects nk_restart_vdev (a device reference for the
 * work) and nk_restart_off (set at unregister, before the work is
 * cancelled, so that it is not queued again).
 *
 * Teardown (remove, or a probe that fails after the queues exist):
 * unpublish (RCU), mark dead (pending calls complete with -ENODEV, senders
 * wake and every later nk_send()/nk_call() fails with -ENODEV), stop the rx
 * work (ops->rx() has returned and is not called again), then ops->detach()
 * (remove only; it may wait for its own workers that are inside nk_send(),
 * since they return at once now), reset the device, cancel the works, free
 * every buffer still on a ring or held, delete the virtqueues.  The struct
 * nk_dev is freed with its last reference.
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

struct nk_dev {
	struct kref ref;
	struct virtio_device *vdev;
	const struct nk_transport_ops *ops;
	struct virtqueue *reqq;
	struct virtqueue *evq;

	spinlock_t tx_lock;
	wait_queue_head_t tx_wait;
	unsigned int tx_free;
	bool tx_unkicked;		/* added with NK_XMIT_MORE, not kicked */
	struct list_head tx_queue;	/* NK_XMIT_QUEUE messages, in order */
	unsigned int tx_nqueued;
	bool dead;
	bool lost;			/* the engine lost the session */
	struct work_struct tx_work;

	struct mutex rx_lock;
	bool rx_run;
	bool ready;			/* HELLO done, ops->attach() succeeded */
	unsigned int rx_posted;
	unsigned int rx_target;
	struct nk_rx_held *rx_held;	/* FIFO of rx_target slots */
	unsigned int rx_held_first;
	unsigned int rx_nheld;
	u32 rx_buf_size;
	struct page_pool *rx_pool;	/* the eventq buffers */
	unsigned int rx_order;		/* their page order */
	void *rx_cur;			/* the buffer in ops->rx(); NULL once lent */
	u32 payload_limit;		/* proposal until HELLO, then agreed */
	struct work_struct rx_work;

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
static DEFINE_MUTEX(nk_dev_lock);
static struct nk_dev *nk_bound;		/* under nk_dev_lock */
static struct nk_dev __rcu *nk_cur;	/* the ready device, holds a reference */
static DEFINE_SPINLOCK(nk_restart_lock);
static struct virtio_device *nk_restart_vdev;	/* under nk_restart_lock */
static bool nk_restart_off;			/* under nk_restart_lock */

/* ------------------------------------------------------------------ */
/* References and accessors                                           */
/* ------------------------------------------------------------------ */

static void nk_dev_release(struct kref *ref)
{
	struct nk_dev *nd = container_of(ref, struct nk_dev, ref);

	kfree(nd->rx_held);
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
 * Move queued messages (NK_XMIT_QUEUE) to the ring, oldest first, while it
 * has room; true when any went, not yet kicked.  Caller holds tx_lock; the
 * device is alive.
 */
static bool nk_tx_flush(struct nk_dev *nd)
{
	struct scatterlist sg;
	struct nk_txbuf *tb;
	bool added = false;

	while ((tb = list_first_entry_or_null(&nd->tx_queue, struct nk_txbuf,
					      node))) {
		sg_init_one(&sg, &tb->hdr,
			    sizeof(tb->hdr) + le32_to_cpu(tb->hdr.len));
		if (virtqueue_add_outbuf(nd->reqq, &sg, 1, tb, GFP_ATOMIC))
			break;
		list_del(&tb->node);
		nd->tx_nqueued--;
		added = true;
	}
	nd->tx_free = nd->reqq->num_free;
	return added;
}

/* Return used requestq buffers.  Caller holds tx_lock; the device is alive. */
static void nk_tx_reclaim(struct nk_dev *nd)
{
	struct nk_txbuf *tb;
	unsigned int len;

	while ((tb = virtqueue_get_buf(nd->reqq, &len)))
		nk_txbuf_free(tb);
	nd->tx_free = nd->reqq->num_free;
}

/*
 * Reclaim the requestq and wake senders waiting for space.  The interrupt
 * is left off: a sender that finds the ring full turns it on again.
 */
static void nk_tx_reclaim_wake(struct nk_dev *nd)
{
	bool wake, kick = false;

	spin_lock(&nd->tx_lock);
	if (nd->dead) {
		spin_unlock(&nd->tx_lock);
		return;
	}
	virtqueue_disable_cb(nd->reqq);
	nk_tx_reclaim(nd);
	if (nk_tx_flush(nd)) {
		kick = virtqueue_kick_prepare(nd->reqq);
		nd->tx_unkicked = false;
	}
	/* Still queued: be told again; false means buffers came back. */
	if (nd->tx_nqueued && !virtqueue_enable_cb(nd->reqq))
		queue_work(nk_wq, &nd->tx_work);
	wake = nd->tx_free && !nd->tx_nqueued;
	/* Under tx_lock: after nk_dev_mark_dead(), tx_space() never runs. */
	if (wake && nd->ops->tx_space)
		nd->ops->tx_space(nd);
	spin_unlock(&nd->tx_lock);
	if (kick)
		virtqueue_notify(nd->reqq);
	if (wake)
		wake_up_all(&nd->tx_wait);
}

static void nk_tx_work(struct work_struct *work)
{
	nk_tx_reclaim_wake(container_of(work, struct nk_dev, tx_work));
}

static void nk_reqq_done(struct virtqueue *vq)
{
	struct nk_dev *nd = vq->vdev->priv;

	queue_work(nk_wq, &nd->tx_work);
}

static bool nk_tx_can_try(struct nk_dev *nd)
{
	return READ_ONCE(nd->dead) ||
	       (READ_ONCE(nd->tx_free) && !READ_ONCE(nd->tx_nqueued));
}

/*
 * Whether the requestq has room for one more message now; if not, its
 * interrupt is on, so that the tx work wakes tx_wait (and calls
 * ops->tx_space()) once it has.  Caller holds tx_lock.
 */
static bool nk_tx_room(struct nk_dev *nd)
{
	for (;;) {
		nk_tx_reclaim(nd);
		if (nk_tx_flush(nd))
			nd->tx_unkicked = true;
		if (nd->tx_free && !nd->tx_nqueued)
			return true;
		if (virtqueue_enable_cb(nd->reqq))
			return false;
		/* Some came back meanwhile. */
		virtqueue_disable_cb(nd->reqq);
	}
}

int nk_tx_wait(struct nk_dev *nd, unsigned int flags, long *timeo)
{
	bool room, kick;
	long left;

	spin_lock(&nd->tx_lock);
	if (nd->dead) {
		spin_unlock(&nd->tx_lock);
		return -ENODEV;
	}
	room = nk_tx_room(nd);
	kick = nd->tx_unkicked && virtqueue_kick_prepare(nd->reqq);
	nd->tx_unkicked = false;
	spin_unlock(&nd->tx_lock);
	if (kick)
		virtqueue_notify(nd->reqq);
	if (room)
		return 0;
	if (!*timeo)
		return -EAGAIN;
	if (flags & NK_XMIT_INTR)
		left = wait_event_interruptible_timeout(nd->tx_wait,
							nk_tx_can_try(nd),
							*timeo);
	else
		left = wait_event_killable_timeout(nd->tx_wait,
						   nk_tx_can_try(nd), *timeo);
	if (left < 0)
		return left;
	*timeo = left;
	if (READ_ONCE(nd->dead))
		return -ENODEV;
	return left || nk_tx_can_try(nd) ? 0 : -EAGAIN;
}

int nk_send(struct nk_dev *nd, struct nk_txbuf *tb, unsigned int flags,
	    long *timeo)
{
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
		spin_lock(&nd->tx_lock);
		if (nd->dead) {
			spin_unlock(&nd->tx_lock);
			err = -ENODEV;
			goto out;
		}
		nk_tx_reclaim(nd);
		/* Queued messages go first: a socket's messages stay in order. */
		if (nk_tx_flush(nd))
			nd->tx_unkicked = true;
		err = nd->tx_nqueued ? -ENOSPC :
		      virtqueue_add_outbuf(nd->reqq, &sg, 1, tb, GFP_ATOMIC);
		if (!err) {
			nd->tx_free = nd->reqq->num_free;
			nd->tx_unkicked = flags & NK_XMIT_MORE;
			kick = !nd->tx_unkicked &&
			       virtqueue_kick_prepare(nd->reqq);
			spin_unlock(&nd->tx_lock);
			if (kick)
				virtqueue_notify(nd->reqq);
			atomic64_inc(&nd->stats.tx_msgs);
			atomic64_add(len, &nd->stats.tx_bytes);
			return 0;
		}
		/*
		 * Full: be told when buffers come back.  False means some came
		 * back already; take them and try again.
		 */
		if (err == -ENOSPC && nk_tx_room(nd)) {
			spin_unlock(&nd->tx_lock);
			continue;
		}
		if (err == -ENOSPC && flags & NK_XMIT_QUEUE &&
		    nd->tx_nqueued < NK_TX_QUEUE_MAX) {
			list_add_tail(&tb->node, &nd->tx_queue);
			nd->tx_nqueued++;
			atomic64_inc(&nd->stats.tx_queued);
			err = 0;
		}
		/* What was added without a kick must reach the device first. */
		kick = nd->tx_unkicked && virtqueue_kick_prepare(nd->reqq);
		nd->tx_unkicked = false;
		spin_unlock(&nd->tx_lock);
		if (kick)
			virtqueue_notify(nd->reqq);
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
			left = wait_event_interruptible_timeout(nd->tx_wait,
					nk_tx_can_try(nd), *timeo);
		else
			left = wait_event_killable_timeout(nd->tx_wait,
					nk_tx_can_try(nd), *timeo);
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
	bool kick = false;

	spin_lock(&nd->tx_lock);
	if (!nd->dead && nd->tx_unkicked)
		kick = virtqueue_kick_prepare(nd->reqq);
	nd->tx_unkicked = false;
	spin_unlock(&nd->tx_lock);
	if (kick)
		virtqueue_notify(nd->reqq);
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
static void *nk_rx_buf_alloc(struct nk_dev *nd)
{
	struct page *page;

	page = page_pool_alloc_pages(nd->rx_pool, GFP_KERNEL | __GFP_NOWARN);
	return page ? page_address(page) : NULL;
}

/* Give an eventq buffer back to the pool.  Any context. */
static void nk_rx_buf_free(struct nk_dev *nd, void *buf)
{
	page_pool_put_full_page(nd->rx_pool, virt_to_head_page(buf), false);
}

/* Post one eventq buffer.  Caller holds rx_lock. */
static int nk_rx_post(struct nk_dev *nd, void *buf)
{
	struct scatterlist sg;
	int err;

	sg_init_one(&sg, buf, nd->rx_buf_size);
	err = virtqueue_add_inbuf(nd->evq, &sg, 1, buf, GFP_KERNEL);
	if (err)
		return err;
	nd->rx_posted++;
	return 0;
}

/* Top the eventq up to rx_target buffers.  Caller holds rx_lock. */
static void nk_rx_fill(struct nk_dev *nd)
{
	void *buf;

	while (nd->rx_posted + nd->rx_nheld < nd->rx_target) {
		buf = nk_rx_buf_alloc(nd);
		if (!buf) {
			atomic64_inc(&nd->stats.rx_buf_alloc_fail);
			return;
		}
		if (nk_rx_post(nd, buf)) {
			nk_rx_buf_free(nd, buf);
			return;
		}
	}
}

/* Fail pending calls and senders now; see nk_dev_kill(). */
static void nk_dev_mark_dead(struct nk_dev *nd)
{
	struct nk_pending *p, *tmp;

	spin_lock(&nd->call_lock);
	spin_lock(&nd->tx_lock);
	WRITE_ONCE(nd->dead, true);
	spin_unlock(&nd->tx_lock);
	list_for_each_entry_safe(p, tmp, &nd->calls, node) {
		list_del_init(&p->node);
		p->err = -ENODEV;
		complete(&p->done);
	}
	spin_unlock(&nd->call_lock);
	wake_up_all(&nd->tx_wait);
}

static void nk_restart_work_fn(struct work_struct *work)
{
	struct virtio_device *vdev;
	int err;

	spin_lock(&nk_restart_lock);
	vdev = nk_restart_vdev;
	nk_restart_vdev = NULL;
	spin_unlock(&nk_restart_lock);
	if (!vdev)
		return;
	err = device_reprobe(&vdev->dev);
	if (err)
		dev_err(&vdev->dev, "probing again after the lost session failed: %d\n",
			err);
	put_device(&vdev->dev);
}

static DECLARE_WORK(nk_restart_work, nk_restart_work_fn);

/*
 * The engine has no session with this ready device: fail everything now
 * and probe it again.  Caller holds rx_lock (the rx work).
 */
static void nk_session_lost(struct nk_dev *nd)
{
	lockdep_assert_held(&nd->rx_lock);
	dev_warn(&nd->vdev->dev,
		 "the engine lost endpoint %u's session; resetting its sockets and saying HELLO again\n",
		 nd->hello.endpoint_id);
	WRITE_ONCE(nd->lost, true);
	nk_dev_mark_dead(nd);
	nd->rx_run = false;
	spin_lock(&nk_restart_lock);
	if (!nk_restart_off && !nk_restart_vdev) {
		get_device(&nd->vdev->dev);
		nk_restart_vdev = nd->vdev;
		queue_work(system_wq, &nk_restart_work);
	}
	spin_unlock(&nk_restart_lock);
}

static void nk_rx_invalid(struct nk_dev *nd, const struct nk_hdr *hdr,
			  u32 len, int err)
{
	atomic64_inc(&nd->stats.rx_invalid);
	dev_warn_ratelimited(&nd->vdev->dev,
			     "invalid message dropped (%d): op %#x flags %#x len %u, %u bytes used\n",
			     err, le16_to_cpu(hdr->op), le16_to_cpu(hdr->flags),
			     le32_to_cpu(hdr->len), len);
}

/*
 * ops->rx() on the message at the start of its eventq buffer @hdr.
 * Return: false when ops->rx() took the buffer (nk_rx_skb()).
 */
static bool nk_rx_deliver(struct nk_dev *nd, struct nk_hdr *hdr)
{
	nd->rx_cur = hdr;
	nd->ops->rx(nd, hdr, hdr + 1);
	if (!nd->rx_cur)
		return false;
	nd->rx_cur = NULL;
	return true;
}

struct sk_buff *nk_rx_skb(struct nk_dev *nd, const void *data, u32 len)
{
	const u8 *buf = nd->rx_cur;
	struct sk_buff *skb;
	struct page *page;

	lockdep_assert_held(&nd->rx_lock);
	if (!buf || len < nd->rx_buf_size / 2 ||
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
	nd->rx_cur = NULL;
	atomic64_inc(&nd->stats.rx_lent);
	return skb;
}

/*
 * Hand the held messages to ops->rx(), oldest first, and post their
 * buffers again.  Caller holds rx_lock; the device is ready.
 */
static void nk_rx_release_held(struct nk_dev *nd)
{
	struct nk_rx_held *h;
	struct nk_hdr *hdr;
	int err;

	while (nd->rx_nheld) {
		h = &nd->rx_held[nd->rx_held_first];
		nd->rx_held_first = (nd->rx_held_first + 1) % nd->rx_target;
		nd->rx_nheld--;
		hdr = h->buf;
		/* Checked against the proposal; HELLO may have agreed on less. */
		err = nk_hdr_check(hdr, h->len, nd->ops->role,
				   nd->payload_limit);
		if (err)
			nk_rx_invalid(nd, hdr, h->len, err);
		else if (!nk_rx_deliver(nd, hdr))
			continue;
		if (nk_rx_post(nd, hdr))
			nk_rx_buf_free(nd, hdr);
	}
}

/*
 * Validate and dispatch one eventq buffer.  Caller holds rx_lock.
 * Return: true when the buffer is not to be posted again: held for later,
 * or lent by ops->rx().
 */
static bool nk_rx_one(struct nk_dev *nd, struct nk_hdr *hdr, u32 len)
{
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
			nk_session_lost(nd);
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
	if (!nd->ready) {
		/* ops->attach() has not returned: keep it, in order. */
		/* Never full: held and posted buffers are at most rx_target. */
		h = &nd->rx_held[(nd->rx_held_first + nd->rx_nheld) %
				 nd->rx_target];
		h->buf = hdr;
		h->len = len;
		nd->rx_nheld++;
		atomic64_inc(&nd->stats.rx_held_early);
		return true;
	}
	return !nk_rx_deliver(nd, hdr);

invalid:
	nk_rx_invalid(nd, hdr, len, err);
	return false;
}

static void nk_rx_work(struct work_struct *work)
{
	struct nk_dev *nd = container_of(work, struct nk_dev, rx_work);
	unsigned int budget = NK_RX_BUDGET;
	unsigned int len;
	void *buf;

	mutex_lock(&nd->rx_lock);
	if (!nd->rx_run)
		goto out;
	if (nd->ready && nd->rx_nheld)
		nk_rx_release_held(nd);

	do {
		virtqueue_disable_cb(nd->evq);
		while ((buf = virtqueue_get_buf(nd->evq, &len))) {
			bool held = false;

			nd->rx_posted--;
			if (len < sizeof(struct nk_hdr)) {
				atomic64_inc(&nd->stats.rx_invalid);
				dev_warn_ratelimited(&nd->vdev->dev,
						     "eventq buffer with %u bytes used, dropped\n",
						     len);
			} else {
				held = nk_rx_one(nd, buf, len);
			}
			if (!held && nk_rx_post(nd, buf))
				nk_rx_buf_free(nd, buf);
			if (!nd->rx_run)	/* nk_session_lost() */
				goto out;
			if (!--budget) {
				queue_work(nk_wq, &nd->rx_work);
				goto kick;
			}
		}
	} while (!virtqueue_enable_cb(nd->evq));
kick:
	nk_rx_fill(nd);
	virtqueue_kick(nd->evq);
	nk_tx_reclaim_wake(nd);
out:
	mutex_unlock(&nd->rx_lock);
}

static void nk_evq_done(struct virtqueue *vq)
{
	struct nk_dev *nd = vq->vdev->priv;

	queue_work(nk_wq, &nd->rx_work);
}

/* ------------------------------------------------------------------ */
/* Probe and remove                                                    */
/* ------------------------------------------------------------------ */

static int nk_config_check(struct virtio_device *vdev)
{
	static const char * const roles[] = {
		[NK_ROLE_GUEST] = "guest", [NK_ROLE_NSM] = "nsm",
	};
	int role = nk_ops->role;
	struct nk_config cfg;

	virtio_cread_bytes(vdev, 0, &cfg, sizeof(cfg));
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
	/* Pair 0 carries the endpoint; this driver uses that pair only. */
	if (NK_CONFIG_CARRIER(cfg.role)) {
		dev_info(&vdev->dev,
			 "nk device is carrier %u of an endpoint; %s uses carrier 0 only, not binding\n",
			 NK_CONFIG_CARRIER(cfg.role), nk_ops->name);
		return -ENODEV;
	}
	if (!cfg.max_qpairs || cfg.max_qpairs > NK_MAX_QPAIRS) {
		dev_err(&vdev->dev,
			"nk device offers %u queue pairs (1..%u allowed); not binding\n",
			cfg.max_qpairs, NK_MAX_QPAIRS);
		return -ENODEV;
	}
	return 0;
}

static int nk_find_vqs(struct nk_dev *nd)
{
	struct virtqueue *vqs[2];
	int err;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	struct virtqueue_info info[2] = {
		[0] = { .name = "requestq", .callback = nk_reqq_done },
		[1] = { .name = "eventq", .callback = nk_evq_done },
	};

	err = virtio_find_vqs(nd->vdev, 2, vqs, info, NULL);
#else
	vq_callback_t *callbacks[2] = { nk_reqq_done, nk_evq_done };
	static const char * const names[2] = { "requestq", "eventq" };

	err = virtio_find_vqs(nd->vdev, 2, vqs, callbacks, names, NULL);
#endif
	if (err)
		return err;
	nd->reqq = vqs[NK_VQ_REQUEST(0)];
	nd->evq = vqs[NK_VQ_EVENT(0)];
	nd->tx_free = nd->reqq->num_free;
	virtqueue_disable_cb(nd->reqq);
	return 0;
}

/*
 * Mark the device dead: pending calls complete with -ENODEV, senders wake,
 * and every later nk_send()/nk_call() fails at once.  Then stop the rx
 * work: once this returns, ops->rx() is not running and never runs again.
 */
static void nk_dev_kill(struct nk_dev *nd)
{
	nk_dev_mark_dead(nd);
	mutex_lock(&nd->rx_lock);
	nd->rx_run = false;
	mutex_unlock(&nd->rx_lock);
}

/* After nk_dev_kill(): stop the device and free everything on its rings. */
static void nk_dev_shutdown(struct nk_dev *nd)
{
	void *buf;

	/* No interrupts after the reset: the works cannot be queued again. */
	virtio_reset_device(nd->vdev);
	cancel_work_sync(&nd->rx_work);
	cancel_work_sync(&nd->tx_work);

	for (; nd->rx_nheld; nd->rx_nheld--) {
		nk_rx_buf_free(nd, nd->rx_held[nd->rx_held_first].buf);
		nd->rx_held_first = (nd->rx_held_first + 1) % nd->rx_target;
	}
	while ((buf = virtqueue_detach_unused_buf(nd->evq)))
		nk_rx_buf_free(nd, buf);
	while ((buf = list_first_entry_or_null(&nd->tx_queue, struct nk_txbuf,
					       node))) {
		list_del(&((struct nk_txbuf *)buf)->node);
		nk_txbuf_free(buf);
	}
	nd->tx_nqueued = 0;
	while ((buf = virtqueue_get_buf(nd->reqq, &(unsigned int){ 0 })))
		nk_txbuf_free(buf);
	while ((buf = virtqueue_detach_unused_buf(nd->reqq)))
		nk_txbuf_free(buf);
	nd->vdev->config->del_vqs(nd->vdev);
	nd->reqq = NULL;
	nd->evq = NULL;
	/* Pages lent to skbs come back later; the pool waits for them. */
	page_pool_destroy(nd->rx_pool);
	nd->rx_pool = NULL;
}

static int nk_hello(struct nk_dev *nd)
{
	u64 features = nd->ops->features & feature_mask;
	char name[NK_HELLO_REPLY_MAX];
	struct nk_reply reply = { .buf = name, .buf_len = sizeof(name) };
	struct nk_txbuf *tb;
	int err;

	tb = nk_txbuf_alloc(0, GFP_KERNEL);
	if (!tb)
		return -ENOMEM;
	nk_hdr_init(&tb->hdr, NK_OP_HELLO, 0, 0, 0);
	tb->hdr.arg[0] = cpu_to_le64(NK_PROTO_VERSION);
	tb->hdr.arg[1] = cpu_to_le64(features);
	tb->hdr.arg[2] = cpu_to_le64(nd->payload_limit);
	tb->hdr.arg[3] = cpu_to_le64(nd->ops->role);

	err = nk_call(nd, tb, &reply, 0);
	if (le16_to_cpu(reply.hdr.op) == NK_OP_HELLO)
		err = nk_hello_reply_parse(&reply.hdr, name, reply.len,
					   features, nd->payload_limit,
					   &nd->hello);
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

static int nk_probe(struct virtio_device *vdev)
{
	struct page_pool_params pp = { .nid = NUMA_NO_NODE };
	struct nk_dev *nd;
	int err;

	err = nk_config_check(vdev);
	if (err)
		return err;
	if (max_payload < NK_MIN_PAYLOAD || max_payload > NK_MAX_PAYLOAD) {
		dev_err(&vdev->dev, "max_payload=%u is outside %u..%u\n",
			max_payload, NK_MIN_PAYLOAD, NK_MAX_PAYLOAD);
		return -EINVAL;
	}

	mutex_lock(&nk_dev_lock);
	if (nk_bound) {
		dev_err(&vdev->dev,
			"%s already serves %s; one nk device per VM\n",
			nk_ops->name, dev_name(&nk_bound->vdev->dev));
		err = -EBUSY;
		goto out_unlock;
	}

	nd = kzalloc(sizeof(*nd), GFP_KERNEL);
	if (!nd) {
		err = -ENOMEM;
		goto out_unlock;
	}
	kref_init(&nd->ref);
	nd->vdev = vdev;
	nd->ops = nk_ops;
	spin_lock_init(&nd->tx_lock);
	init_waitqueue_head(&nd->tx_wait);
	INIT_WORK(&nd->tx_work, nk_tx_work);
	INIT_LIST_HEAD(&nd->tx_queue);
	mutex_init(&nd->rx_lock);
	INIT_WORK(&nd->rx_work, nk_rx_work);
	spin_lock_init(&nd->call_lock);
	INIT_LIST_HEAD(&nd->calls);
	nd->payload_limit = max_payload;
	nd->rx_buf_size = sizeof(struct nk_hdr) + max_payload;
	vdev->priv = nd;

	err = nk_find_vqs(nd);
	if (err) {
		dev_err(&vdev->dev, "cannot set up the virtqueues: %d\n", err);
		goto out_free;
	}

	nd->rx_target = clamp(event_bufs, 1U,
			      virtqueue_get_vring_size(nd->evq));
	nd->rx_order = get_order(nd->rx_buf_size);
	pp.order = nd->rx_order;
	pp.pool_size = nd->rx_target;
	nd->rx_pool = page_pool_create(&pp);
	if (IS_ERR(nd->rx_pool)) {
		err = PTR_ERR(nd->rx_pool);
		nd->rx_pool = NULL;
		goto out_shutdown;
	}
	nd->rx_held = kcalloc(nd->rx_target, sizeof(*nd->rx_held),
			      GFP_KERNEL);
	if (nd->rx_held) {
		mutex_lock(&nd->rx_lock);
		nk_rx_fill(nd);
		nd->rx_run = nd->rx_posted > 0;
		mutex_unlock(&nd->rx_lock);
	}
	if (!nd->rx_run) {
		err = -ENOMEM;
		goto out_shutdown;
	}

	virtio_device_ready(vdev);
	virtqueue_kick(nd->evq);

	err = nk_hello(nd);
	if (err)
		goto out_shutdown;
	mutex_lock(&nd->rx_lock);
	WRITE_ONCE(nd->payload_limit, nd->hello.max_payload);
	mutex_unlock(&nd->rx_lock);

	err = nk_ops->attach(nd);
	if (err) {
		dev_err(&vdev->dev, "%s refused the device: %d\n",
			nk_ops->name, err);
		goto out_shutdown;
	}
	/* What arrived during attach goes to ops->rx() first, in order. */
	mutex_lock(&nd->rx_lock);
	nd->ready = true;
	if (nd->rx_nheld)
		queue_work(nk_wq, &nd->rx_work);
	mutex_unlock(&nd->rx_lock);

	nk_bound = nd;
	nk_dev_hold(nd);
	rcu_assign_pointer(nk_cur, nd);
	mutex_unlock(&nk_dev_lock);

	dev_info(&vdev->dev,
		 "nk %s endpoint %u \"%s\" ready: max_payload %u, features %#llx, %u eventq buffers\n",
		 nk_ops->role == NK_ROLE_GUEST ? "guest" : "nsm",
		 nd->hello.endpoint_id, nd->hello.name, nd->hello.max_payload,
		 nd->hello.features, nd->rx_posted);
	return 0;

out_shutdown:
	nk_dev_kill(nd);
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
	struct nk_dev *nd = vdev->priv;

	mutex_lock(&nk_dev_lock);
	RCU_INIT_POINTER(nk_cur, NULL);
	nk_bound = NULL;
	mutex_unlock(&nk_dev_lock);
	synchronize_rcu();
	/* nk_cur's reference: nobody can take a new one now. */
	nk_dev_put(nd);

	/* Dead first, so that detach may wait for its own senders. */
	nk_dev_kill(nd);
	nd->ops->detach(nd);
	nk_dev_shutdown(nd);
	dev_info(&vdev->dev, "nk endpoint %u removed\n", nd->hello.endpoint_id);
	vdev->priv = NULL;
	nk_dev_put(nd);
}

/* ------------------------------------------------------------------ */
/* sysfs: device counters                                              */
/* ------------------------------------------------------------------ */

static struct nk_dev *nk_attr_dev(struct device *dev)
{
	return dev_to_virtio(dev)->priv;
}

#define NK_STAT_ATTR(field)						\
static ssize_t field##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lld\n",				\
			  atomic64_read(&nk_attr_dev(dev)->stats.field)); \
}									\
static DEVICE_ATTR_RO(field)

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

static ssize_t endpoint_id_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", nk_attr_dev(dev)->hello.endpoint_id);
}
static DEVICE_ATTR_RO(endpoint_id);

static ssize_t endpoint_name_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", nk_attr_dev(dev)->hello.name);
}
static DEVICE_ATTR_RO(endpoint_name);

static ssize_t max_payload_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", nk_attr_dev(dev)->hello.max_payload);
}
static DEVICE_ATTR_RO(max_payload);

static ssize_t features_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%#llx\n", nk_attr_dev(dev)->hello.features);
}
static DEVICE_ATTR_RO(features);

/* Everything in one directory, .../virtio<N>/nk/, clear of virtio's own attributes. */
static struct attribute *nk_dev_attrs[] = {
	&dev_attr_endpoint_id.attr,
	&dev_attr_endpoint_name.attr,
	&dev_attr_max_payload.attr,
	&dev_attr_features.attr,
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

static const struct attribute_group nk_dev_group = {
	.name = "nk",
	.attrs = nk_dev_attrs,
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
	nk_ops = ops;
	nk_driver.driver.name = ops->name;
	err = register_virtio_driver(&nk_driver);
	if (err)
		destroy_workqueue(nk_wq);
	return err;
}

void nk_transport_unregister(void)
{
	struct virtio_device *vdev;

	spin_lock(&nk_restart_lock);
	nk_restart_off = true;
	spin_unlock(&nk_restart_lock);
	cancel_work_sync(&nk_restart_work);
	spin_lock(&nk_restart_lock);
	vdev = nk_restart_vdev;
	nk_restart_vdev = NULL;
	spin_unlock(&nk_restart_lock);
	if (vdev)
		put_device(&vdev->dev);
	unregister_virtio_driver(&nk_driver);
	destroy_workqueue(nk_wq);
	nk_txcache_drain();
}
