// SPDX-License-Identifier: GPL-2.0
/*
 * The data plane: message validation and routing between guests and NSMs,
 * socket id and request id translation, credits, pending queues, the
 * scheduler and adaptive sleeping.  The protocol's rules (header fields,
 * which role may send which op, the credit arithmetic) are lib/nk_msg.c's,
 * the modules' code built for user space (lib/user/nk_msg.mk); what is
 * decided here is what the engine does about a message.
 *
 * Threading and locking:
 *  - Everything in this file except the command-queue entry points
 *    (he_dp_dev_start/stop/pause/resume, he_dp_attach/detach,
 *    he_dp_ep_add/remove/update, he_dp_sockets, he_dp_ss_*, he_dp_kill,
 *    he_dp_stats)
 *    runs on the data-plane lcore, which owns all endpoints' data-plane
 *    state, every he_map, he_req and he_pmsg, and the endpoints' rings and
 *    guest memory while they are running.  No lock protects that state.
 *  - Other threads reach the data plane through the command queue
 *    (cmd_lock, cmd_cond, cmd_efd): they append a command, wake the data
 *    plane and wait for it to be executed; the data plane drains the queue
 *    at the top of every loop and while sleeping.  When the data plane is
 *    not running (before launch, after stop) commands execute in the
 *    caller, under cmd_lock, which keeps them serialised.
 *  - Counters are written here with relaxed atomic stores (he_cnt_*);
 *    other threads only read them.
 *  - An "ss" command (CMD_SS, he_dp_ss_start) is the one its caller does
 *    not wait for, and the one the data plane does not finish when it
 *    takes it: it sends NK_OP_INFO requests to the NSMs and completes the
 *    command when the last reply is in or HE_INFO_TIMEOUT_MS have passed,
 *    whichever is first, serving every endpoint meanwhile; ss_efd then
 *    tells the control thread, which collects it (he_dp_ss_result).  One
 *    at a time.  A reply that comes after that is dropped; an NSM with
 *    INFO requests still outstanding is not asked again.
 *  - The endpoint table (cfg->eps) is replaced only by CMD_EP_ADD and
 *    CMD_EP_DEL, between two passes of the loop: the data plane never sees
 *    it change under it, and once he_dp_ep_remove returns it holds no
 *    pointer to the endpoint (no attached guest, map, request or pending
 *    message), so live.c may free it.  The caller (main lcore) holds
 *    he_eps_lock for writing meanwhile, for the other threads' readers.
 *
 * Scheduling (also in Documentation/netkernel/hostengine.rst, "Data
 * plane"): the data plane makes passes over all running endpoints, starting
 * one endpoint later on each pass.  On its visit an endpoint first gets its
 * pending queue written into its eventq as far as buffers allow.  If its
 * requestqs announce nothing new, that is all: an idle endpoint costs a
 * load of each avail index (and, for a guest with messages queued toward
 * its NSM, nsm_sync(): following what the NSM took).  Otherwise, unless it
 * is held back (its own pending bytes at or over its max_pending; for a
 * guest, also its NSM's at or over half of the NSM's), up to batch * weight
 * messages are taken from its requestqs (pairs served in turn, starting
 * one pair later on each visit).  A guest's weight is its
 * configured weight; an NSM's is the sum of the weights of the guests
 * attached to it (at least 1), because it answers for all of them.
 *
 * The NSM, not the engine, is where guests contend: it serves its eventq
 * first come, first served.  So a guest is also held back while it has
 * its weight's share of HE_NSM_QUEUE messages queued toward its NSM
 * (over_share(): among the guests that have some), counted from what the
 * engine wrote and what the NSM took since (struct he_evq_track), and the
 * NSM is told each guest's weight in SOCKET (NK_FEAT_WEIGHT) for its own
 * work (hostengine.rst, "Sharing an NSM").
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <rte_atomic.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "he.h"
#include "dp.h"
#include "nk_msg.h"

#if RTE_BYTE_ORDER != RTE_LITTLE_ENDIAN
#error "nk_hdr fields are used natively: little-endian hosts only"
#endif

/* A request outstanding at an NSM, keyed by the engine's request id. */
struct he_req {
	struct he_hnode node;		/* nsm->reqs */
	TAILQ_ENTRY(he_req) glink;	/* guest->my_reqs while guest != NULL */
	struct he_ep *guest;		/* NULL: the engine's own, or guest gone */
	uint64_t guest_req_id;
	uint32_t guest_sock;
	uint32_t nsm_sock;
	uint32_t new_guest_sock;	/* ACCEPT */
	uint32_t new_nsm_sock;		/* ACCEPT */
	uint32_t info_first, info_n;	/* INFO: its entries of ss_job.idx */
	uint64_t info_gen;		/* INFO: the ss_job it was sent for */
	uint16_t op;
};

/* A message held for an endpoint whose eventq has no buffer. */
struct he_pmsg {
	TAILQ_ENTRY(he_pmsg) link;
	struct he_ep *from;		/* NSMs: the guest it is counted to */
	struct nk_hdr h;
	uint8_t data[];
};

enum he_cmd_type {
	CMD_START,
	CMD_STOP,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_ATTACH,
	CMD_DETACH,
	CMD_SOCKETS,
	CMD_SS,
	CMD_KILL,
	CMD_EP_ADD,
	CMD_EP_DEL,
	CMD_EP_UPDATE,
};

struct he_cmd {
	STAILQ_ENTRY(he_cmd) link;
	enum he_cmd_type type;
	struct he_ep *ep;
	struct he_ep *ep2;
	int vid;
	struct he_dev_start *ds;
	uint16_t nr_vqs;
	uint16_t *last_avail;
	uint16_t *last_used;
	struct rte_vhost_memory *mem;
	struct he_sock_info *socks;
	struct he_ss_info *ss;
	uint32_t sock;			/* CMD_KILL */
	struct he_ep **eps;		/* CMD_EP_ADD/DEL: the new table */
	unsigned int nr_eps;
	int ret;
	bool deferred;			/* CMD_SS: done later (ss_finish) */
	bool done;
};

/*
 * The "ss" command being answered: its entries, and for each NSM asked
 * the indices of its entries (idx), in the order of the INFO requests.
 */
static struct {
	struct he_cmd *cmd;		/* NULL: none */
	uint64_t gen;
	uint64_t deadline;		/* timer cycles */
	uint32_t *idx;
	uint32_t outstanding;		/* INFO requests */
} ss_job;

static struct he_config *cfg;
static uint64_t next_req_id = 1;
static int epfd = -1;
static int cmd_efd = -1;
static int ss_efd = -1;			/* ss_cmd done */
static struct he_cmd ss_cmd;		/* the control thread's "ss" */
static bool ss_started;			/* control thread only */
static bool dp_quit;
static struct he_chain rq_chain;	/* the requestq chain being handled */
static struct he_chain ev_chain;	/* the eventq chain being filled */
static uint16_t cur_head;		/* head of rq_chain, for EV_PROTO_ERROR */
static struct he_ep *cur_guest;		/* the guest whose request take() handles */
static struct he_engine_stats dp_stats;

static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cmd_cond = PTHREAD_COND_INITIALIZER;
static STAILQ_HEAD(, he_cmd) cmd_q = STAILQ_HEAD_INITIALIZER(cmd_q);
static uint32_t cmd_nr;			/* commands queued (atomic hint) */
static bool dp_running;			/* under cmd_lock */

static void stat_add(uint64_t *v, int64_t n)
{
	__atomic_store_n(v, *v + n, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Hash tables                                                         */
/* ------------------------------------------------------------------ */

/*
 * Keys chosen by a guest (its socket ids, 32 bits) must not let it pile
 * its sockets into one bucket: the bucket comes from multiply-add-shift
 * with a random 64-bit multiplier and addend drawn at start
 * (Dietzfelbinger's universal family for 32-bit keys: any two keys share
 * a bucket with probability at most 2 / HE_HASH_BUCKETS, whatever the
 * guest chooses).  Chains are also bounded by max_sockets per guest.  It
 * costs one add more than the unkeyed multiplicative hash it replaces.
 */
static uint64_t ht_mul, ht_addend;

static inline uint32_t ht_bucket(uint64_t key)
{
	return (key * ht_mul + ht_addend) >> (64 - HE_HASH_BITS);
}

static struct he_hnode *ht_find(const struct he_htab *t, uint64_t key)
{
	struct he_hnode *n;

	for (n = t->b[ht_bucket(key)]; n; n = n->next)
		if (n->key == key)
			return n;
	return NULL;
}

static void ht_add(struct he_htab *t, struct he_hnode *n, uint64_t key)
{
	struct he_hnode **b = &t->b[ht_bucket(key)];

	n->key = key;
	n->next = *b;
	*b = n;
	t->count++;
}

static void ht_del(struct he_htab *t, struct he_hnode *n)
{
	struct he_hnode **p;

	for (p = &t->b[ht_bucket(n->key)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			t->count--;
			return;
		}
	}
}

/* Empty the table; returns its nodes linked through ->next. */
static struct he_hnode *ht_take_all(struct he_htab *t)
{
	struct he_hnode *all = NULL, *n;
	unsigned int i;

	for (i = 0; i < HE_HASH_BUCKETS; i++) {
		while ((n = t->b[i])) {
			t->b[i] = n->next;
			n->next = all;
			all = n;
		}
	}
	t->count = 0;
	return all;
}

/* ------------------------------------------------------------------ */
/* Delivery into eventqs and pending queues                            */
/* ------------------------------------------------------------------ */

/*
 * The queue pair of @ep's socket @sock, the one its messages travel on
 * both ways (protocol.rst, "Queue pairs").  No division on the usual
 * single pair: this runs per message.
 */
static inline unsigned int sock_pair(const struct he_ep *ep, uint32_t sock)
{
	return ep->nr_pairs == 1 ? 0 : sock % ep->nr_pairs;
}

static struct he_vq *event_vq(struct he_ep *ep, uint32_t sock)
{
	return &ep->vq[NK_VQ_EVENT(sock_pair(ep, sock))];
}

/*
 * Bytes of pending messages freed since the heap was last trimmed.  A
 * guest behind its eventq can make the engine hold up to pending_limit;
 * once that is delivered the data plane gives the memory back when it is
 * next idle (malloc_trim), rather than keep it in malloc's free lists.
 */
#define HE_TRIM_BYTES	(1U << 20)
static uint64_t pend_freed;

static void pend_account(struct he_ep *ep, int64_t delta)
{
	uint64_t v = ep->cnt[HE_C_PENDING_BYTES] + delta;

	if (delta < 0)
		pend_freed -= delta;
	he_cnt_set(ep, HE_C_PENDING_BYTES, v);
	if (v > ep->cnt[HE_C_PENDING_MAX])
		he_cnt_set(ep, HE_C_PENDING_MAX, v);
}

/* ---- Sharing an NSM ---- */

/*
 * One eventq of an NSM: who wrote each message the NSM has not taken
 * yet, oldest first (NULL: the engine, or a guest since detached).  The
 * NSM takes its eventq in order and posts a buffer again for each message
 * it took, so the buffers it keeps posted when idle (most: the most ever
 * seen available) less those available now are the messages it has not
 * taken.  An NSM that posts fewer only holds its own guests back.
 */
struct he_evq_track {
	uint32_t size, head, len;	/* size: a power of 2, as the ring's */
	uint16_t most;
	struct he_ep *own[];
};

/* @g's messages toward its NSM change by @d. */
static void queued_add(struct he_ep *g, int64_t d)
{
	uint64_t n = g->cnt[HE_C_NSM_QUEUED] + d;
	uint32_t before = g->cnt[HE_C_NSM_QUEUED] ? g->weight : 0;

	he_cnt_set(g, HE_C_NSM_QUEUED, n);
	if (n > g->cnt[HE_C_NSM_QUEUED_MAX])
		he_cnt_set(g, HE_C_NSM_QUEUED_MAX, n);
	g->nsm->queued_weight += (n ? g->weight : 0) - before;
}

/* The guest a message to @nsm is counted to: the one being served. */
static struct he_ep *msg_owner(const struct he_ep *nsm)
{
	return cur_guest && cur_guest->nsm == nsm && nsm->evt[0] ? cur_guest : NULL;
}

static void evq_pop(struct he_evq_track *t)
{
	struct he_ep *g = t->own[t->head];

	t->head = (t->head + 1) & (t->size - 1);
	t->len--;
	if (g)
		queued_add(g, -1);
}

/* A message of @from (or none: NULL) went into @ep's eventq @vq. */
static __rte_always_inline void evq_written(struct he_ep *ep, const struct he_vq *vq,
					    struct he_ep *from)
{
	struct he_evq_track *t = ep->evt[vq->qid / 2];

	if (!t)
		return;
	if (t->len == t->size)		/* the NSM posts more than it said */
		evq_pop(t);
	t->own[(t->head + t->len++) & (t->size - 1)] = from;
}

/* What @nsm took from its eventqs since it was last looked at. */
static void nsm_sync(struct he_ep *nsm)
{
	unsigned int p;

	if (!nsm->evt[0] || !nsm->running || nsm->paused)
		return;
	for (p = 0; p < nsm->nr_pairs; p++) {
		struct he_evq_track *t = nsm->evt[p];
		const struct he_vq *vq = &nsm->vq[NK_VQ_EVENT(p)];
		uint16_t avail = vq->broken ? t->most : he_vq_avail_count(vq);

		if (avail > t->most)
			t->most = avail;
		while (t->len > (uint32_t)(t->most - avail))
			evq_pop(t);
	}
}

static void evq_track_free(struct he_ep *nsm)
{
	unsigned int p;

	for (p = 0; p < RTE_DIM(nsm->evt) && nsm->evt[p]; p++) {
		while (nsm->evt[p]->len)
			evq_pop(nsm->evt[p]);
		free(nsm->evt[p]);
		nsm->evt[p] = NULL;
	}
}

/* Track an NSM's eventqs; without the memory, its guests are not held. */
static void evq_track_alloc(struct he_ep *nsm)
{
	unsigned int p;

	for (p = 0; p < nsm->nr_pairs; p++) {
		uint32_t size = RTE_MAX(nsm->vq[NK_VQ_EVENT(p)].vr.size, 1U);

		nsm->evt[p] = calloc(1, sizeof(*nsm->evt[p]) + size * sizeof(nsm->evt[p]->own[0]));
		if (!nsm->evt[p]) {
			he_ep_log(nsm, WARNING, "no memory to share it by weight");
			evq_track_free(nsm);
			return;
		}
		nsm->evt[p]->size = size;
	}
}

/* @g no longer counts what it queued toward its NSM (it detaches). */
static void queued_forget(struct he_ep *g)
{
	struct he_ep *nsm = g->nsm;
	struct he_pmsg *pm;
	unsigned int p, i;

	if (!g->cnt[HE_C_NSM_QUEUED])
		return;
	TAILQ_FOREACH(pm, &nsm->pending, link)
		if (pm->from == g)
			pm->from = NULL;
	for (p = 0; p < RTE_DIM(nsm->evt) && nsm->evt[p]; p++)
		for (i = 0; i < nsm->evt[p]->size; i++)
			if (nsm->evt[p]->own[i] == g)
				nsm->evt[p]->own[i] = NULL;
	queued_add(g, -(int64_t)g->cnt[HE_C_NSM_QUEUED]);
}

/*
 * Has @g queued as many messages toward its NSM as it may: its weight's
 * share of HE_NSM_QUEUE among the guests that have some queued, at least
 * one?
 */
static bool over_share(const struct he_ep *g)
{
	uint64_t q = g->cnt[HE_C_NSM_QUEUED];

	/*
	 * q >= max(HE_NSM_QUEUE * weight / w, 1) without the division (this
	 * runs for every request): with w the weights of the guests that
	 * have some queued, g's included, that is q >= 1 and
	 * HE_NSM_QUEUE * weight < (q + 1) * w.  No overflow: q is bounded
	 * by pending_limit, w by NK_WEIGHT_MAX times the guests.
	 */
	return q && g->nsm && g->nsm->evt[0] &&
	       (uint64_t)HE_NSM_QUEUE * g->weight < (q + 1) * g->nsm->queued_weight;
}

static int pend_add(struct he_ep *ep, const struct nk_hdr *h, const struct he_iov *src,
		    uint32_t soff, struct he_ep *from)
{
	struct he_pmsg *pm = malloc(sizeof(*pm) + h->len);

	if (!pm)
		return -ENOMEM;
	pm->from = from;
	pm->h = *h;
	if (h->len)
		he_iov_read(src, soff, pm->data, h->len);
	TAILQ_INSERT_TAIL(&ep->pending, pm, link);
	pend_account(ep, HDR_LEN + h->len);
	return 0;
}

static void pend_free_all(struct he_ep *ep)
{
	struct he_pmsg *pm;

	while ((pm = TAILQ_FIRST(&ep->pending))) {
		TAILQ_REMOVE(&ep->pending, pm, link);
		if (pm->from)
			queued_add(pm->from, -1);
		free(pm);
	}
	he_cnt_set(ep, HE_C_PENDING_BYTES, 0);
}

/* Would @add more bytes take @ep over its max_pending?  Refusals are counted. */
static bool over_limit(struct he_ep *ep, uint64_t add)
{
	if (likely(ep->cnt[HE_C_PENDING_BYTES] + add <= ep->max_pending))
		return false;
	he_cnt_add(ep, HE_C_PENDING_LIMIT, 1);
	return true;
}

static void ring_broken(struct he_ep *ep, struct he_vq *vq, uint16_t bad)
{
	he_ep_log(ep, ERR, "virtqueue %u: avail ring corrupt (%u), queue stopped", vq->qid, bad);
	proto_error(ep, NK_PERR_DESC_RANGE, -EFAULT, bad, 0, 0, true);
}

/*
 * Take an eventq chain that can hold @h: device-writable only and at least
 * a header plus the agreed max_payload (before HELLO: plus h->len), and
 * never less than the whole message.  Bad chains are returned with length 0
 * and reported.  1: ev_chain holds it.
 */
static __rte_always_inline int event_chain(struct he_ep *ep, struct he_vq *vq,
					   const struct nk_hdr *h)
{
	uint32_t need = HDR_LEN + RTE_MAX(h->len, ep->state == HE_EP_READY ?
					  ep->max_payload : 0);

	for (;;) {
		int err = 0, r = he_vq_pop(vq->mem, vq, true, &ev_chain, &err);

		if (!r)
			return 0;
		if (r == HE_VQ_BROKEN) {
			ring_broken(ep, vq, ev_chain.head);
			return 0;
		}
		if (r == 1) {
			if (ev_chain.iov.len >= need)
				return 1;
			r = -NK_PERR_EVENT_BUF;
			err = -ENOBUFS;
		}
		he_vq_push(vq, ev_chain.head, 0);
		evq_written(ep, vq, NULL);
		proto_error(ep, -r, err, ev_chain.head, 0, 0, true);
	}
}

static __rte_always_inline void write_msg(struct he_ep *ep, struct he_vq *vq,
					  const struct nk_hdr *h, const struct he_iov *src,
					  uint32_t soff, struct he_ep *from)
{
	he_iov_put_hdr(&ev_chain.iov, h);
	if (h->len)
		he_iov_copy(&ev_chain.iov, HDR_LEN, src, soff, h->len);
	he_vq_push(vq, ev_chain.head, HDR_LEN + h->len);
	evq_written(ep, vq, from);
	he_cnt_add(ep, h->flags & NK_F_REPLY ? HE_C_REPLIES : HE_C_EVENTS, 1);
	he_cnt_add(ep, HE_C_BYTES_OUT, h->len);
}

/*
 * Deliver @h and h->len payload bytes from @src at @soff to @dst: straight
 * into its eventq (guest memory to guest memory) when nothing is pending
 * and a buffer is there, else into its pending queue.  Unless @must, the
 * pending queue's limit applies.  0, -EMSGSIZE (longer than @dst's
 * max_payload: its buffers cannot hold it; counted in its "oversize"),
 * -ENOBUFS (over the limit), -ENOTCONN (@dst has no device) or -ENOMEM.
 */
int deliver(struct he_ep *dst, const struct nk_hdr *h, const struct he_iov *src,
		   uint32_t soff, bool must)
{
	struct he_ep *from = msg_owner(dst);
	struct he_vq *vq;
	int err;

	if (!dst->running)
		return -ENOTCONN;
	if (unlikely(dst->state == HE_EP_READY && h->len > dst->max_payload)) {
		he_cnt_add(dst, HE_C_OVERSIZE, 1);
		return -EMSGSIZE;
	}
	if (!must && over_limit(dst, HDR_LEN + h->len))
		return -ENOBUFS;
	if (TAILQ_EMPTY(&dst->pending) && !dst->paused) {
		vq = event_vq(dst, h->sock);
		if (event_chain(dst, vq, h)) {
			write_msg(dst, vq, h, src, soff, from);
			if (from)
				queued_add(from, 1);
			return 0;
		}
	}
	err = pend_add(dst, h, src, soff, from);
	if (!err && from)
		queued_add(from, 1);
	return err;
}

/*
 * Deliver SEND or EV_DATA: a stream message larger than the receiver's
 * max_payload is split (SEND parts but the last get NK_F_MORE); any other
 * too large message gives -EMSGSIZE.  All parts or none are accepted.
 */
int deliver_data(struct he_ep *dst, const struct nk_hdr *h, const struct he_iov *src,
			uint32_t soff, bool stream)
{
	uint32_t max = dst->max_payload, off, n, parts;
	struct nk_hdr p;
	int err;

	if (!dst->running)
		return -ENOTCONN;
	if (h->len <= max)
		return deliver(dst, h, src, soff, false);
	if (!stream || (h->flags & NK_F_ADDR)) {
		he_cnt_add(dst, HE_C_OVERSIZE, 1);
		return -EMSGSIZE;
	}
	parts = (h->len + max - 1) / max;
	if (over_limit(dst, (uint64_t)parts * HDR_LEN + h->len))
		return -ENOBUFS;
	for (off = 0; off < h->len; off += n) {
		n = RTE_MIN(max, h->len - off);
		p = *h;
		p.len = n;
		if (h->op == NK_OP_SEND && off + n < h->len)
			p.flags |= NK_F_MORE;
		err = deliver(dst, &p, src, soff + off, true);
		if (err)
			return err;
	}
	return 0;
}

/* Write pending messages into the eventq, in order, while buffers last. */
static unsigned int flush_pending(struct he_ep *ep)
{
	unsigned int n = 0;
	struct he_pmsg *pm;
	struct he_seg seg;
	struct he_iov iov;
	struct he_vq *vq;

	while (!ep->paused && (pm = TAILQ_FIRST(&ep->pending))) {
		vq = event_vq(ep, pm->h.sock);
		if (!event_chain(ep, vq, &pm->h))
			break;
		he_iov_flat(&iov, &seg, pm->data, pm->h.len);
		write_msg(ep, vq, &pm->h, &iov, 0, pm->from);
		TAILQ_REMOVE(&ep->pending, pm, link);
		pend_account(ep, -(int64_t)(HDR_LEN + pm->h.len));
		free(pm);
		n++;
	}
	return n;
}

void proto_error(struct he_ep *ep, int perr, int err, uint16_t head, uint16_t op,
			uint64_t req_id, bool queue_only)
{
	struct nk_hdr e = {
		.op = NK_EV_PROTO_ERROR,
		.status = (uint32_t)err,
		.req_id = req_id,
		.arg = { perr, head, op },
	};
	int ret;

	he_cnt_add(ep, HE_C_PROTO_ERRORS, 1);
	he_ep_log(ep, WARNING, "protocol error %d (%d) head %u op %#x", perr, err, head, op);
	if (queue_only)
		ret = over_limit(ep, HDR_LEN) ? -ENOBUFS : pend_add(ep, &e, NULL, 0, NULL);
	else
		ret = deliver(ep, &e, NULL, 0, false);
	if (ret)
		he_cnt_add(ep, HE_C_DROPS, 1);
}

/*
 * Reply to @h on behalf of the engine, with @len bytes of payload @buf
 * and @credit's announcement (or none).  An ACCEPT's reply names the new
 * socket in a0, as the NSM's do: a guest that gave the call up finds by
 * it the socket it keeps for the late reply.
 */
void reply_data(struct he_ep *ep, const struct nk_hdr *h, int status,
		const void *buf, uint32_t len, const struct nk_credit_tx *credit)
{
	struct nk_hdr r = {
		.op = h->op,
		.flags = NK_F_REPLY,
		.sock = h->sock,
		.status = (uint32_t)status,
		.req_id = h->req_id,
		.arg[0] = h->op == NK_OP_ACCEPT ? h->arg[0] : 0,
		.len = len,
	};
	struct he_seg seg;
	struct he_iov iov;

	if (credit) {
		r.flags |= NK_F_CREDIT;
		r.buf_alloc = credit->peer_buf_alloc;
		r.fwd_cnt = credit->peer_fwd_cnt;
	}
	if (status)
		he_cnt_add(ep, HE_C_ERRORS, 1);
	he_iov_flat(&iov, &seg, buf, len);
	if (deliver(ep, &r, &iov, 0, true))
		he_cnt_add(ep, HE_C_DROPS, 1);
}

void reply(struct he_ep *ep, const struct nk_hdr *h, int status)
{
	reply_data(ep, h, status, NULL, 0, NULL);
}

/* Refuse a message: an error reply, or EV_PROTO_ERROR if it was a reply. */
static void refuse(struct he_ep *ep, const struct nk_hdr *h, int err)
{
	if (h->flags & NK_F_REPLY)
		proto_error(ep, NK_PERR_STRAY_REPLY, err, cur_head, h->op, h->req_id, false);
	else if (ep->role == NK_ROLE_NSM && h->op != NK_OP_HELLO)
		/* An NSM takes no reply but HELLO's. */
		proto_error(ep, NK_PERR_REFUSED, err, cur_head, h->op, h->req_id, false);
	else
		reply(ep, h, err);
}

/* ------------------------------------------------------------------ */
/* Sockets and requests                                                */
/* ------------------------------------------------------------------ */

static void socks_gauge(struct he_ep *ep)
{
	he_cnt_set(ep, HE_C_SOCKETS, ep->socks.count);
}

static struct he_map *map_by_guest(struct he_ep *g, uint64_t sock)
{
	struct he_hnode *n = sock ? ht_find(&g->socks, sock) : NULL;

	return n ? container_of(n, struct he_map, gnode) : NULL;
}

static struct he_map *map_by_nsm(struct he_ep *nsm, uint64_t sock)
{
	struct he_hnode *n = sock ? ht_find(&nsm->socks, sock) : NULL;

	return n ? container_of(n, struct he_map, nnode) : NULL;
}

struct he_map *map_new(struct he_ep *g, uint32_t gsock, struct he_ep *nsm, bool stream)
{
	struct he_map *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	/*
	 * NSM ids: never 0, never one still in the NSM's table.  A guest
	 * with several pairs has the socket on the NSM's pair of the same
	 * number, which its NSM serves on the same vCPU number (as RFS keeps
	 * a flow on one CPU end to end).
	 */
	while (nsm && (!m->nsm_sock || ht_find(&nsm->socks, m->nsm_sock) ||
		       (g->nr_pairs > 1 && nsm->nr_pairs > 1 &&
			sock_pair(nsm, m->nsm_sock) != sock_pair(g, gsock) % nsm->nr_pairs)))
		m->nsm_sock = nsm->next_sock++;
	m->guest = g;
	m->nsm = nsm;
	m->guest_sock = gsock;
	m->stream = stream;
	m->opening = true;
	ht_add(&g->socks, &m->gnode, gsock);
	socks_gauge(g);
	if (nsm) {
		ht_add(&nsm->socks, &m->nnode, m->nsm_sock);
		socks_gauge(nsm);
	}
	stat_add(&dp_stats.sockets, 1);
	return m;
}

/* Take @m out of the guest's and/or the NSM's table; free it when in none. */
void map_drop(struct he_map *m, bool gside, bool nside)
{
	if (gside && m->guest) {
		lsw_gone(m, -ECONNRESET);
		ht_del(&m->guest->socks, &m->gnode);
		socks_gauge(m->guest);
		m->guest = NULL;
	}
	if (nside && m->nsm) {
		ht_del(&m->nsm->socks, &m->nnode);
		socks_gauge(m->nsm);
		m->nsm = NULL;
	}
	if (!m->guest && !m->nsm) {
		free(m);
		stat_add(&dp_stats.sockets, -1);
	}
}

static struct he_req *req_new(struct he_ep *g, uint16_t op)
{
	struct he_req *r = calloc(1, sizeof(*r));

	if (r) {
		r->guest = g;
		r->op = op;
	}
	return r;
}

static void req_track(struct he_ep *nsm, struct he_req *r)
{
	ht_add(&nsm->reqs, &r->node, r->node.key);
	if (r->guest) {
		TAILQ_INSERT_TAIL(&r->guest->my_reqs, r, glink);
		r->guest->nr_reqs++;
	}
}

/*
 * The engine's own CLOSE of @m's NSM socket (the guest side is gone or
 * reset).  @m may be freed.
 */
static void nsm_close(struct he_map *m)
{
	struct nk_hdr f = { .op = NK_OP_CLOSE, .sock = m->nsm_sock };
	struct he_req *r = req_new(NULL, NK_OP_CLOSE);

	m->closing = true;
	if (r) {
		r->nsm_sock = m->nsm_sock;
		r->node.key = f.req_id = next_req_id++;
		if (!deliver(m->nsm, &f, NULL, 0, true)) {
			req_track(m->nsm, r);
			return;
		}
		free(r);
	}
	he_ep_log(m->nsm, ERR, "cannot close socket %u: forgotten", m->nsm_sock);
	map_drop(m, false, true);
}

/*
 * The socket is gone for the guest: EV_RESET(@err) and, if the NSM side
 * still exists, the engine's CLOSE.  The guest id stays allocated until the
 * guest's CLOSE, which the engine then answers itself.  @m may be freed.
 */
void map_reset(struct he_map *m, int err)
{
	struct nk_hdr ev = {
		.op = NK_EV_RESET,
		.sock = m->guest_sock,
		.status = (uint32_t)err,
	};

	if (!m->guest || m->reset || m->closing)
		return;
	m->reset = true;
	m->reset_err = err;
	lsw_gone(m, err);
	he_cnt_add(m->guest, HE_C_CONN_RESETS, 1);
	if (deliver(m->guest, &ev, NULL, 0, true))
		he_cnt_add(m->guest, HE_C_DROPS, 1);
	if (m->nsm)
		nsm_close(m);
}

/* @dst's pending queue is over its limit: drop the message, reset @m. */
void overflow(struct he_ep *dst, struct he_map *m)
{
	he_cnt_add(dst, HE_C_DROPS, 1);
	he_ep_log(dst, WARNING, "pending queue over limit, socket reset");
	if (m && m->guest && !m->reset && !m->closing) {
		he_cnt_add(dst, HE_C_RESETS, 1);
		map_reset(m, -ENOBUFS);
	}
}

/*
 * The credit announced in @h by the receiver of @c's direction: recorded
 * by nk_credit_tx_update() (a stale fwd_cnt is ignored, one beyond the
 * bytes forwarded is refused and counted), and clamped in @h, which goes
 * on to the sender.
 */
void credit_take(struct he_ep *from, struct nk_hdr *h, struct nk_credit_tx *c)
{
	if (!(h->flags & NK_F_CREDIT))
		return;
	h->buf_alloc = RTE_MIN(h->buf_alloc, NK_CREDIT_MAX);
	if (nk_credit_tx_update(c, h->buf_alloc, h->fwd_cnt)) {
		he_cnt_add(from, HE_C_CREDIT_VIOLATIONS, 1);
		he_ep_log(from, NOTICE, "socket %u: fwd_cnt %u beyond the %u bytes sent",
			  h->sock, h->fwd_cnt, c->tx_cnt);
	}
}

/* ------------------------------------------------------------------ */
/* Guest -> NSM                                                        */
/* ------------------------------------------------------------------ */

/*
 * Forward guest request @h, translated into @f, to @nsm and remember it so
 * that the reply finds its way back.  @nm: the socket an ACCEPT creates.
 */
static int fwd_tracked(struct he_ep *g, const struct nk_hdr *h, struct he_ep *nsm,
		       struct nk_hdr *f, const struct he_iov *src, uint32_t soff,
		       const struct he_map *nm)
{
	struct he_req *r;
	int err;

	if (g->nr_reqs >= HE_MAX_REQS_PER_GUEST)
		return -EBUSY;
	r = req_new(g, h->op);
	if (!r)
		return -ENOMEM;
	r->guest_req_id = h->req_id;
	r->guest_sock = h->sock;
	r->nsm_sock = f->sock;
	if (nm) {
		r->new_guest_sock = nm->guest_sock;
		r->new_nsm_sock = nm->nsm_sock;
	}
	r->node.key = f->req_id = next_req_id++;
	err = deliver(nsm, f, src, soff, false);
	if (err) {
		free(r);
		return err;
	}
	req_track(nsm, r);
	return 0;
}

/* Forwarding @h to @nsm failed with @err: answer, and reset @m on overflow. */
static void fwd_failed(struct he_ep *g, const struct nk_hdr *h, struct he_ep *nsm,
		       struct he_map *m, int err)
{
	reply(g, h, err == -ENOTCONN ? -ECONNRESET : err);
	if (err == -ENOBUFS)
		overflow(nsm, m);
}

/*
 * Does @g hold max_sockets ids already (reset ones included, until their
 * CLOSE)?  A new one is then refused with -EMFILE, the errno of a process
 * at its descriptor limit: the guest's socket() or accept() reports a
 * limit on open sockets that closing some lifts, which servers already
 * handle (they back off and retry), where -ENOBUFS would claim a memory
 * shortage.
 */
static bool socket_limit(struct he_ep *g)
{
	if (likely(g->socks.count < g->max_sockets))
		return false;
	he_cnt_add(g, HE_C_SOCKET_LIMIT, 1);
	he_ep_log(g, NOTICE, "%u sockets: max_sockets reached", g->socks.count);
	return true;
}

/*
 * A new connection of @g, CONNECT or accepted: does max_conn_rate allow
 * it (a token from its bucket)?  A refusal is counted.
 */
bool conn_rate_ok(struct he_ep *g)
{
	if (likely(he_bucket_take(&g->conn_bucket, g->max_conn_rate, g->conn_burst,
				  rte_get_timer_cycles(), rte_get_timer_hz())))
		return true;
	he_cnt_add(g, HE_C_CONN_RATE_LIMIT, 1);
	he_ep_log(g, NOTICE, "max_conn_rate %u reached", g->max_conn_rate);
	return false;
}

/*
 * Is @h a CONNECT that opens a connection of stream socket @m, and not
 * allowed by @g's max_conn_rate?  It is then refused with -EAGAIN, what
 * Linux's connect() returns when it has no local port left: a temporary
 * shortage, after which the same socket may connect again (the guest's
 * socket goes back to unconnected), and which clients treat as retryable.
 * connect(AF_UNSPEC) dissolves a connection and opens none; a datagram
 * CONNECT only sets a peer; a CONNECT too short to say is the NSM's to
 * refuse.
 */
static bool connect_refused(struct he_ep *g, const struct nk_hdr *h, const struct he_iov *iov,
			    const struct he_map *m)
{
	uint16_t family;

	if (h->op != NK_OP_CONNECT || !m->stream || !g->max_conn_rate || h->len < ADDR_LEN)
		return false;
	he_iov_read(iov, HDR_LEN + offsetof(struct nk_addr, family), &family, sizeof(family));
	return family != AF_UNSPEC && !conn_rate_ok(g);
}

/*
 * The guest's source addresses, IPv4 first (with @v4), then IPv6 (with
 * @v6), into @a.  Return: how many.
 */
static unsigned int guest_addrs(const struct he_ep *g, bool v4, bool v6, struct nk_addr a[2])
{
	unsigned int n = 0;

	memset(a, 0, 2 * sizeof(*a));
	if (v4 && g->has_addr4) {
		a[n].family = AF_INET;
		memcpy(a[n++].addr, &g->addr4, sizeof(g->addr4));
	}
	if (v6 && g->has_addr6) {
		a[n].family = AF_INET6;
		memcpy(a[n++].addr, &g->addr6, sizeof(g->addr6));
	}
	return n;
}

static void guest_socket(struct he_ep *g, struct nk_hdr *h)
{
	struct he_ep *nsm = g->nsm;
	struct nk_addr a[2];
	unsigned int na;
	uint64_t feat;
	struct he_seg seg;
	struct he_iov ai;
	struct he_map *m;
	struct nk_hdr f;
	int err;

	if (!h->sock || (h->arg[3] & ~(uint64_t)NK_SOCK_V6ONLY))
		return reply(g, h, -EINVAL);
	if (map_by_guest(g, h->sock))
		return reply(g, h, -EEXIST);
	if (socket_limit(g))
		return reply(g, h, -EMFILE);
	if (!nsm || !nsm->running || nsm->state != HE_EP_READY)
		return reply(g, h, -ENETUNREACH);
	feat = g->features & nsm->features;
	if (h->arg[0] != AF_INET && !(h->arg[0] == AF_INET6 && (feat & NK_FEAT_INET6)))
		return reply(g, h, -EAFNOSUPPORT);
	/*
	 * The guest's source addresses, IPv4 first: an AF_INET6 socket that
	 * is not V6ONLY may reach IPv4 peers through mapped addresses.
	 */
	na = guest_addrs(g, h->arg[0] == AF_INET || !(h->arg[3] & NK_SOCK_V6ONLY),
			 h->arg[0] == AF_INET6, a);
	if (!na)
		return reply(g, h, -EAFNOSUPPORT);
	if (h->arg[1] != SOCK_STREAM && !(h->arg[1] == SOCK_DGRAM && (feat & NK_FEAT_DGRAM)))
		return reply(g, h, -ESOCKTNOSUPPORT);

	m = map_new(g, h->sock, nsm, h->arg[1] == SOCK_STREAM);
	if (!m)
		return reply(g, h, -ENOMEM);
	m->v6only = h->arg[3] & NK_SOCK_V6ONLY;
	credit_take(g, h, &m->to_guest);
	f = *h;
	f.sock = m->nsm_sock;
	f.arg[3] = h->arg[3] | (uint64_t)g->id << 32;
	if (h->arg[1] == SOCK_DGRAM && (feat & NK_FEAT_ANC))
		f.arg[3] |= NK_SOCK_ANC;
	/* Its weight, for the NSM's own scheduling; the latest one counts. */
	if (nsm->features & NK_FEAT_WEIGHT)
		f.arg[3] |= (uint64_t)g->weight << NK_SOCK_WEIGHT_SHIFT;
	if (h->arg[1] == SOCK_STREAM && (feat & NK_FEAT_URG))
		f.arg[3] |= NK_SOCK_URG;
	f.len = na * ADDR_LEN;
	he_iov_flat(&ai, &seg, a, f.len);
	err = fwd_tracked(g, h, nsm, &f, &ai, 0, NULL);
	if (err) {
		map_drop(m, true, true);
		fwd_failed(g, h, nsm, NULL, err);
	}
}

static void guest_accept(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
			 struct he_map *m)
{
	struct he_map *nm;
	struct nk_hdr f;
	int err;

	if (!h->arg[0] || h->arg[0] > UINT32_MAX || (h->arg[1] & ~(uint64_t)NK_SOCK_V6ONLY))
		return reply(g, h, -EINVAL);
	if (map_by_guest(g, h->arg[0]))
		return reply(g, h, -EEXIST);
	if (socket_limit(g))
		return reply(g, h, -EMFILE);
	if (m->stream && lsw_accept(g, h, m))
		return;
	nm = map_new(g, h->arg[0], m->nsm, m->stream);
	if (!nm)
		return reply(g, h, -ENOMEM);
	credit_take(g, h, &nm->to_guest);
	f = *h;
	f.sock = m->nsm_sock;
	f.arg[0] = nm->nsm_sock;
	err = fwd_tracked(g, h, m->nsm, &f, iov, HDR_LEN, nm);
	if (err) {
		map_drop(nm, true, true);
		fwd_failed(g, h, m->nsm, m, err);
	}
}

/*
 * An EV_DATA with NK_F_ANC (its length checked by nk_hdr_data_len()) that
 * may not pass: a stream socket, a guest or NSM that did not agree
 * NK_FEAT_ANC, or a struct nk_anc that breaks a rule of nk_anc_check().
 */
static bool anc_refused(struct he_ep *g, struct he_ep *nsm, const struct he_map *m,
			const struct he_iov *iov)
{
	struct nk_anc anc;

	if (m->stream || !(g->features & nsm->features & NK_FEAT_ANC))
		return true;
	he_iov_read(iov, HDR_LEN, &anc, sizeof(anc));
	return nk_anc_check(&anc) != 0;
}

static void guest_send(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
		       struct he_map *m)
{
	int n = nk_hdr_data_len(h);
	struct he_ep *nsm = m->nsm;
	int err;

	if (n < 0 || (h->arg[0] & ~(uint64_t)NK_MSG_KNOWN))
		return reply(g, h, -EINVAL);
	if ((uint32_t)n > nk_credit_tx_space(&m->to_nsm)) {
		he_cnt_add(g, HE_C_CREDIT_VIOLATIONS, 1);
		he_ep_log(g, NOTICE, "socket %u: SEND of %d bytes beyond credit",
			  m->guest_sock, n);
		return reply(g, h, -ENOBUFS);
	}
	/* The NSM's socket id in the validated copy, for the time it is sent. */
	h->sock = m->nsm_sock;
	if (!m->stream && (h->flags & NK_F_ADDR))
		lsw_peer_mark(g, h, iov);
	err = deliver_data(nsm, h, iov, HDR_LEN, m->stream);
	h->sock = m->guest_sock;
	h->flags &= ~NK_F_PEER;
	if (err == -EMSGSIZE) {
		he_cnt_add(nsm, HE_C_DROPS, 1);
		return reply(g, h, -EMSGSIZE);
	}
	if (err)
		return fwd_failed(g, h, nsm, m, err);
	m->to_nsm.tx_cnt += n;
	m->tx_bytes += n;
}

/*
 * The guest's CLOSE of @m could not go to the NSM as its own request (its
 * outstanding requests at their limit, or the NSM's queue full).  A guest
 * forgets a socket it closed whatever the answer, so a refusal would leave
 * the NSM socket open for good: the engine closes it itself, as when a
 * guest goes away, and answers the guest.
 */
static void guest_close_fallback(struct he_ep *g, const struct nk_hdr *h, struct he_map *m)
{
	map_drop(m, true, false);
	nsm_close(m);
	reply(g, h, 0);
}

static void guest_request(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov)
{
	struct he_map *m;
	struct nk_hdr f;
	int err;

	if (h->op == NK_OP_SOCKET)
		return guest_socket(g, h);
	m = map_by_guest(g, h->sock);
	if (!m)
		return reply(g, h, -EBADF);
	if (h->op != NK_OP_ACCEPT)
		credit_take(g, h, &m->to_guest);
	if (m->reset) {
		if (h->op != NK_OP_CLOSE)
			return reply(g, h, m->reset_err);
		map_drop(m, true, false);
		return reply(g, h, 0);
	}
	if (m->closing)
		return reply(g, h, -EBADF);
	if (m->stream && lsw_request(g, h, iov, m))
		return;

	switch (h->op) {
	case NK_OP_ACCEPT:
		return guest_accept(g, h, iov, m);
	case NK_OP_SEND:
		return guest_send(g, h, iov, m);
	case NK_OP_CREDIT:
		f = *h;
		f.sock = m->nsm_sock;
		err = deliver(m->nsm, &f, iov, HDR_LEN, false);
		break;
	default:
		if (connect_refused(g, h, iov, m))
			return reply(g, h, -EAGAIN);
		f = *h;
		f.sock = m->nsm_sock;
		if (h->op == NK_OP_CONNECT)
			lsw_peer_mark(g, &f, iov);
		err = fwd_tracked(g, h, m->nsm, &f, iov, HDR_LEN, NULL);
		if (h->op == NK_OP_CLOSE) {
			if (!err)
				m->closing = true;
			else
				guest_close_fallback(g, h, m);
			return;
		}
		break;
	}
	if (err)
		fwd_failed(g, h, m->nsm, m, err);
}

/* ------------------------------------------------------------------ */
/* NSM -> guest                                                        */
/* ------------------------------------------------------------------ */

/*
 * Can the NSM's reply @h to @g get to @g with its payload?  Not when it is
 * longer than @g's max_payload (the NSM gets EV_PROTO_ERROR) or when its
 * payload would take @g's pending bytes over pending_limit (dropped,
 * counted): the reply then goes without its payload, with this errno.
 */
static int reply_room(struct he_ep *nsm, struct he_ep *g, const struct nk_hdr *h)
{
	if (!h->len || !g->running)
		return 0;
	if (h->len > g->max_payload) {
		he_cnt_add(g, HE_C_OVERSIZE, 1);
		proto_error(nsm, NK_PERR_LENGTH, -EMSGSIZE, cur_head, h->op, h->req_id, false);
		return -EMSGSIZE;
	}
	if (over_limit(g, HDR_LEN + h->len)) {
		he_cnt_add(g, HE_C_DROPS, 1);
		he_ep_log(g, WARNING, "pending queue over limit, reply payload dropped");
		return -ENOBUFS;
	}
	return 0;
}

/*
 * Complete request @r (already out of the NSM's table) with reply @h:
 * socket state changes, then the reply goes to the guest with its own ids.
 * A reply whose payload cannot reach the guest (reply_room) becomes an
 * error reply without payload; a socket the NSM did open is then closed.
 */
static void info_reply(struct he_ep *nsm, struct he_req *r, const struct nk_hdr *h,
		       const struct he_iov *iov);

static void req_complete(struct he_ep *nsm, struct he_req *r, struct nk_hdr *h,
			 const struct he_iov *iov)
{
	struct he_ep *g = r->guest;
	bool opened = (int32_t)h->status >= 0;
	const struct he_iov *src = iov;
	uint32_t soff = HDR_LEN;
	struct nk_addr a[2];
	struct he_map *m;
	struct he_seg seg;
	struct he_iov ai;
	struct nk_hdr f;
	int err;

	if (r->op == NK_OP_INFO) {
		info_reply(nsm, r, h, iov);
		free(r);
		return;
	}
	if (g) {
		TAILQ_REMOVE(&g->my_reqs, r, glink);
		g->nr_reqs--;
		err = reply_room(nsm, g, h);
		/*
		 * A connection accepted beyond max_conn_rate is aborted: closed
		 * at the NSM (below), -ECONNABORTED to the guest, whose accept()
		 * servers already skip, as Linux's for a connection that died
		 * in the queue.  Refusing the ACCEPT instead would leave the
		 * connection queued and its accept() spinning on it.
		 */
		if (!err && r->op == NK_OP_ACCEPT && opened && !conn_rate_ok(g))
			err = -ECONNABORTED;
		if (err) {
			he_cnt_add(g, HE_C_ERRORS, 1);
			h->status = (uint32_t)err;
			h->len = 0;
		}
	}
	m = map_by_nsm(nsm, r->op == NK_OP_ACCEPT ? r->new_nsm_sock : r->nsm_sock);
	/* A switched socket's credit is its peer's, not its NSM socket's. */
	if (m && m->local)
		h->flags &= ~NK_F_CREDIT;
	if (m) {
		switch (r->op) {
		case NK_OP_SOCKET:
		case NK_OP_ACCEPT:
			credit_take(nsm, h, &m->to_nsm);
			if (opened)
				m->opening = false;
			if ((int32_t)h->status >= 0 || m->closing || m->reset)
				break;
			if (!opened) {
				if (m->opening)
					map_drop(m, true, true);
			} else if (m->guest) {
				/* Open at the NSM, failed for the guest. */
				map_drop(m, true, false);
				nsm_close(m);
			}
			break;
		case NK_OP_CLOSE:
			map_drop(m, g != NULL, true);
			break;
		case NK_OP_BIND:
		case NK_OP_LISTEN:
		case NK_OP_SETSOCKOPT:
			lsw_replied(m, r->op, (int32_t)h->status);
			credit_take(nsm, h, &m->to_nsm);
			break;
		case NK_OP_GETSOCKNAME:
			if (!h->status && h->len == ADDR_LEN && iov)
				lsw_sockname(m, iov);
			credit_take(nsm, h, &m->to_nsm);
			break;
		default:
			credit_take(nsm, h, &m->to_nsm);
			break;
		}
	}
	if (g) {
		f = *h;
		f.sock = r->guest_sock;
		f.req_id = r->guest_req_id;
		if (r->op == NK_OP_ACCEPT)
			f.arg[0] = r->new_guest_sock;
		if (r->op == NK_OP_SOCKET && (g->features & NK_FEAT_ANC) && !h->status) {
			/*
			 * All of the guest's source addresses, whatever the
			 * NSM's reply carried: the guest checks sendmsg()'s
			 * IP_PKTINFO against them.
			 */
			f.len = guest_addrs(g, true, true, a) * ADDR_LEN;
			he_iov_flat(&ai, &seg, a, f.len);
			src = &ai;
			soff = 0;
		}
		if (deliver(g, &f, src, soff, true))
			he_cnt_add(g, HE_C_DROPS, 1);
	}
	free(r);
}

/*
 * Forward the NSM's message @f (translated, payload in @iov) to @m's guest:
 * one longer than the guest's max_payload is dropped and the NSM gets
 * EV_PROTO_ERROR (NK_PERR_LENGTH), one over the guest's pending_limit
 * resets the socket.
 */
static void nsm_to_guest(struct he_ep *nsm, struct he_map *m, const struct nk_hdr *f,
			 const struct he_iov *iov)
{
	int err = deliver(m->guest, f, iov, HDR_LEN, false);

	if (err == -EMSGSIZE) {
		he_cnt_add(m->guest, HE_C_DROPS, 1);
		proto_error(nsm, NK_PERR_LENGTH, -EMSGSIZE, cur_head, f->op, f->req_id, false);
	} else if (err) {
		overflow(m->guest, m);
	}
}

/* The NSM's answer to a failed SEND or CREDIT: routed by socket. */
static void nsm_data_reply(struct he_ep *nsm, struct nk_hdr *h, const struct he_iov *iov)
{
	struct he_map *m = map_by_nsm(nsm, h->sock);
	struct nk_hdr f;

	if (!m || (int32_t)h->status >= 0)
		return proto_error(nsm, NK_PERR_STRAY_REPLY, -ENOENT, cur_head, h->op,
				   h->req_id, false);
	credit_take(nsm, h, &m->to_nsm);
	if (!m->guest || m->reset || m->closing || m->local)
		return;
	f = *h;
	f.sock = m->guest_sock;
	/* Not tracked, so bounded like events: pending_limit, then a reset. */
	nsm_to_guest(nsm, m, &f, iov);
}

static void nsm_reply(struct he_ep *nsm, struct nk_hdr *h, const struct he_iov *iov)
{
	struct he_hnode *n;
	struct he_req *r;

	if (h->op == NK_OP_SEND || h->op == NK_OP_CREDIT)
		return nsm_data_reply(nsm, h, iov);
	n = ht_find(&nsm->reqs, h->req_id);
	r = n ? container_of(n, struct he_req, node) : NULL;
	if (!r || r->op != h->op)
		return proto_error(nsm, NK_PERR_STRAY_REPLY, -ENOENT, cur_head, h->op,
				   h->req_id, false);
	ht_del(&nsm->reqs, &r->node);
	req_complete(nsm, r, h, iov);
}

/*
 * An EV_URG passes only on a stream whose SOCKET carried NK_SOCK_URG (the
 * guest and the NSM agreed NK_FEAT_URG), as nk_urg_check() has it against
 * the stream bytes sent to the guest so far (every EV_DATA before it was
 * forwarded, in order); else it is refused (EV_PROTO_ERROR, counted and
 * logged).
 */
static void nsm_urg(struct he_ep *nsm, struct he_ep *g, struct he_map *m, struct nk_hdr *f,
		    const struct he_iov *iov)
{
	if (!(g->features & nsm->features & NK_FEAT_URG) || !m->stream ||
	    nk_urg_check(f, m->to_guest.tx_cnt))
		return proto_error(nsm, NK_PERR_REFUSED, -EPROTO, cur_head, f->op, 0, false);
	nsm_to_guest(nsm, m, f, iov);
}

static void nsm_event(struct he_ep *nsm, struct nk_hdr *h, const struct he_iov *iov)
{
	struct he_map *m = map_by_nsm(nsm, h->sock);
	struct he_ep *g;
	struct nk_hdr f;
	int n, err;

	if (!m)
		return refuse(nsm, h, -EBADF);
	credit_take(nsm, h, &m->to_nsm);
	g = m->guest;
	if (!g || m->reset || m->closing)
		return;
	if (m->local) {
		/* A switched client's NSM socket is never connected. */
		he_cnt_add(nsm, HE_C_DROPS, 1);
		return;
	}
	f = *h;
	f.sock = m->guest_sock;
	if (h->op == NK_EV_ACCEPT)
		f.arg[0] = lsw_ev_accept(m, h->arg[0]);
	if (h->op == NK_EV_URG)
		return nsm_urg(nsm, g, m, &f, iov);
	if (h->op != NK_EV_DATA)
		return nsm_to_guest(nsm, m, &f, iov);
	n = nk_hdr_data_len(h);
	if (n < 0)
		return proto_error(nsm, NK_PERR_LENGTH, -EMSGSIZE, cur_head, h->op, 0, false);
	if ((h->flags & NK_F_ANC) && anc_refused(g, nsm, m, iov))
		return proto_error(nsm, NK_PERR_REFUSED, -EPROTO, cur_head, h->op, 0, false);
	if ((uint32_t)n > nk_credit_tx_space(&m->to_guest)) {
		/* A stream with a hole is worth nothing: reset the socket. */
		he_cnt_add(nsm, HE_C_CREDIT_VIOLATIONS, 1);
		proto_error(nsm, NK_PERR_CREDIT, -ENOBUFS, cur_head, h->op, 0, false);
		he_cnt_add(nsm, HE_C_RESETS, 1);
		return map_reset(m, -ENOBUFS);
	}
	err = deliver_data(g, &f, iov, HDR_LEN, m->stream);
	if (err == -EMSGSIZE) {
		he_cnt_add(g, HE_C_DROPS, 1);
		return;
	}
	if (err)
		return overflow(g, m);
	m->to_guest.tx_cnt += n;
	m->rx_bytes += n;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/* The guest is gone (device stopped or new HELLO): close its NSM sockets. */
static void guest_down(struct he_ep *g)
{
	struct he_hnode *n, *next;
	struct he_req *r;

	while ((r = TAILQ_FIRST(&g->my_reqs))) {
		TAILQ_REMOVE(&g->my_reqs, r, glink);
		r->guest = NULL;
	}
	g->nr_reqs = 0;
	for (n = ht_take_all(&g->socks); n; n = next) {
		struct he_map *m = container_of(n, struct he_map, gnode);

		next = n->next;
		lsw_gone(m, -ECONNRESET);
		m->guest = NULL;
		if (!m->nsm)
			map_drop(m, false, false);
		else if (!m->closing)
			nsm_close(m);
	}
	/* A new session (a rebooted guest) has no TIME_WAIT of the old one. */
	memset(g->lsw_tw, 0, sizeof(g->lsw_tw));
	socks_gauge(g);
}

/*
 * The NSM is gone: its outstanding requests fail with @err (a CLOSE
 * succeeds), every socket it served is reset for its guest, except a
 * switched connection's client, which needs none of the NSM
 * (lsw_nsm_gone()).
 */
static void nsm_down(struct he_ep *nsm, int err)
{
	struct he_hnode *n, *next;
	unsigned int kept = 0;

	for (n = ht_take_all(&nsm->reqs); n; n = next) {
		struct he_req *r = container_of(n, struct he_req, node);
		struct nk_hdr h = {
			.op = r->op,
			.flags = NK_F_REPLY,
			.status = r->op == NK_OP_CLOSE ? 0 : (uint32_t)err,
		};

		next = n->next;
		if (r->guest && h.status)
			he_cnt_add(r->guest, HE_C_ERRORS, 1);
		req_complete(nsm, r, &h, NULL);
	}
	for (n = ht_take_all(&nsm->socks); n; n = next) {
		struct he_map *m = container_of(n, struct he_map, nnode);

		next = n->next;
		m->nsm = NULL;
		if (m->guest && !m->reset && !m->closing) {
			if (lsw_nsm_gone(m)) {
				kept++;
				continue;
			}
			he_cnt_add(nsm, HE_C_RESETS, 1);
			map_reset(m, err);
		}
		map_drop(m, false, false);
	}
	socks_gauge(nsm);
	if (kept)
		he_ep_log(nsm, INFO, "%u switched connection(s) of its guests go on without it",
			  kept);
}

static void pairs_use(struct he_ep *ep, uint16_t n);

static void session_end(struct he_ep *ep)
{
	if (ep->role == NK_ROLE_GUEST)
		guest_down(ep);
	else
		nsm_down(ep, -ECONNRESET);
}

static void hello(struct he_ep *ep, const struct nk_hdr *h)
{
	uint64_t mp = RTE_MIN(h->arg[2], (uint64_t)cfg->max_payload);
	struct nk_hdr r = {
		.op = NK_OP_HELLO,
		.flags = NK_F_REPLY,
		.req_id = h->req_id,
		.len = strlen(ep->name) + 1,
	};
	/* With NK_FEAT_ADDR: the name in NK_NAME_MAX bytes, the addresses. */
	struct {
		char name[NK_NAME_MAX];
		struct nk_addr a[2];
	} pl;
	struct he_seg seg;
	struct he_iov iov;
	uint16_t pairs;

	if (h->arg[0] != NK_PROTO_VERSION) {
		/* The reply says which version the engine speaks. */
		r.status = (uint32_t)-EPROTONOSUPPORT;
		r.arg[0] = NK_PROTO_VERSION;
		r.len = 0;
		he_cnt_add(ep, HE_C_ERRORS, 1);
		if (deliver(ep, &r, NULL, 0, true))
			he_cnt_add(ep, HE_C_DROPS, 1);
		return;
	}
	/* With NK_FEAT_MQ, buf_alloc: the pairs the driver has set up. */
	if (h->arg[3] != ep->role || mp < NK_MIN_PAYLOAD ||
	    ((h->arg[1] & NK_FEAT_MQ) && (!h->buf_alloc || h->buf_alloc > NK_MAX_QPAIRS)))
		return reply(ep, h, -EINVAL);
	if (ep->state == HE_EP_READY)
		return reply(ep, h, -EALREADY);
	ep->max_payload = mp;
	ep->features = h->arg[1] & NK_FEAT_ALL;
	pairs = ep->features & NK_FEAT_MQ ? RTE_MIN(h->buf_alloc, (uint32_t)ep->pairs_up) : 1;
	pairs_use(ep, pairs);
	/*
	 * Only a guest has addresses to learn, and sends requests: guest_request()
	 * forwards those on a socket whose SOCKET is not answered yet (the map
	 * exists from the SOCKET on), in order, so NK_FEAT_PIPE costs nothing.
	 */
	if (ep->role != NK_ROLE_GUEST)
		ep->features &= ~(NK_FEAT_ADDR | NK_FEAT_PIPE);
	else
		ep->features &= ~NK_FEAT_PEER;	/* the NSM's: it takes NK_F_PEER */
	__atomic_store_n(&ep->state, HE_EP_READY, __ATOMIC_RELAXED);
	r.arg[0] = NK_PROTO_VERSION;
	r.arg[1] = ep->features;
	r.arg[2] = mp;
	r.arg[3] = ep->id;
	if (ep->features & NK_FEAT_MQ)
		r.arg[3] |= (uint64_t)pairs << 32;
	/* What a guest's windows together may promise beyond its eventq. */
	r.buf_alloc = RTE_MIN(ep->max_pending, (uint64_t)UINT32_MAX);
	if (ep->features & NK_FEAT_ADDR) {
		memset(pl.name, 0, sizeof(pl.name));
		memcpy(pl.name, ep->name, r.len);
		r.len = NK_NAME_MAX + guest_addrs(ep, true, true, pl.a) * ADDR_LEN;
		he_iov_flat(&iov, &seg, &pl, r.len);
	} else {
		he_iov_flat(&iov, &seg, ep->name, r.len);
	}
	if (deliver(ep, &r, &iov, 0, true))
		he_cnt_add(ep, HE_C_DROPS, 1);
	he_log(INFO, "%s: HELLO: max_payload %u features %#" PRIx64 " pairs %u", ep->name,
	       ep->max_payload, ep->features, ep->nr_pairs);
}

/* ------------------------------------------------------------------ */
/* Requestq service                                                    */
/* ------------------------------------------------------------------ */

/*
 * The protocol's rules are lib/nk_msg.c's, as the modules apply them:
 * nk_hdr_check_fields() (flags and status, -EINVAL) and nk_op_sendable()
 * (-EOPNOTSUPP).  What is the engine's own: HELLO, the session state,
 * -ENOENT for a guest's reply (no request of the engine's is outstanding
 * at a guest), and the pair a message came on (@pair), which must be its
 * socket's: one that is not is not forwarded (NK_PERR_PAIR), since it
 * could overtake the socket's messages on their own pair.
 */
static void dispatch(struct he_ep *ep, unsigned int pair, struct nk_hdr *h,
		     const struct he_iov *iov)
{
	bool is_reply = h->flags & NK_F_REPLY;
	int err = nk_hdr_check_fields(h);

	if (err)
		return refuse(ep, h, err);
	if (h->op == NK_OP_HELLO && !is_reply)
		return hello(ep, h);
	if (ep->state != HE_EP_READY)
		return refuse(ep, h, -EPROTO);
	/* Socket s's messages come on pair s % pairs, in order (Queue pairs). */
	if (unlikely(sock_pair(ep, h->sock) != pair))
		return proto_error(ep, NK_PERR_PAIR, -EXDEV, cur_head, h->op, h->req_id, false);
	if (ep->role == NK_ROLE_GUEST && is_reply)
		return refuse(ep, h, -ENOENT);
	/* Only the engine says a destination is a guest's (lsw_peer_mark()). */
	if (ep->role == NK_ROLE_GUEST && (h->flags & NK_F_PEER))
		return refuse(ep, h, -EINVAL);
	if (!nk_op_sendable(ep->role, h->op, is_reply))
		return refuse(ep, h, -EOPNOTSUPP);
	if (ep->role == NK_ROLE_GUEST)
		guest_request(ep, h, iov);
	else if (is_reply)
		nsm_reply(ep, h, iov);
	else
		nsm_event(ep, h, iov);
}

/* Handle one chain taken from a requestq (r, err: he_vq_pop's results). */
static void take(struct he_ep *ep, struct he_vq *vq, int r, int err)
{
	struct he_chain *c = &rq_chain;
	uint32_t limit;
	struct nk_hdr h;
	int bad;

	cur_head = c->head;
	he_cnt_add(ep, HE_C_REQUESTS, 1);
	if (r < 0) {
		proto_error(ep, -r, err, c->head, 0, 0, false);
		goto done;
	}
	/* One copy out of guest memory; only the copy is looked at. */
	if (likely(c->iov.len >= HDR_LEN))
		he_iov_get_hdr(&c->iov, &h);
	else
		memset(&h, 0, sizeof(h));
	limit = ep->state == HE_EP_READY ? ep->max_payload : cfg->max_payload;
	bad = nk_hdr_check_len(&h, c->iov.len, limit);
	if (bad) {
		proto_error(ep, bad == -EBADMSG ? NK_PERR_TRUNCATED : NK_PERR_LENGTH, bad,
			    c->head, h.op, h.req_id, false);
		goto done;
	}
	he_cnt_add(ep, HE_C_BYTES_IN, h.len);
	cur_guest = ep->role == NK_ROLE_GUEST ? ep : NULL;
	dispatch(ep, vq->qid / 2, &h, &c->iov);
	cur_guest = NULL;
done:
	he_vq_push(vq, c->head, 0);
}

/*
 * Is @ep not to be served from its requestqs now?  When it is not reading
 * its own eventq (pending_limit reached), and, for a guest, while its NSM
 * holds half of pending_limit that the NSM has not taken yet: the guest's
 * SENDs would only add to it, up to resets of sockets that did nothing
 * wrong, where waiting costs nothing but time; or while the guest has
 * its share of HE_NSM_QUEUE queued toward its NSM (over_share()).
 */
static bool held_back(const struct he_ep *ep)
{
	return ep->cnt[HE_C_PENDING_BYTES] >= ep->max_pending ||
	       (ep->role == NK_ROLE_GUEST && ep->nsm &&
		(ep->nsm->cnt[HE_C_PENDING_BYTES] >= ep->nsm->max_pending / 2 ||
		 over_share(ep)));
}

/* Does a requestq of @ep announce a chain it has not given yet? */
static __rte_always_inline bool requests_waiting(const struct he_ep *ep)
{
	unsigned int p;

	if (likely(ep->nr_pairs == 1))
		return he_vq_pending(&ep->vq[NK_VQ_REQUEST(0)]);
	for (p = 0; p < ep->nr_pairs; p++)
		if (he_vq_pending(&ep->vq[NK_VQ_REQUEST(p)]))
			return true;
	return false;
}

static unsigned int visit(struct he_ep *ep)
{
	unsigned int work, quota, i;
	bool waiting;
	int r, err;

	if (ep->paused)
		return 0;
	work = flush_pending(ep);
	/*
	 * An idle endpoint costs a look at its requestqs' indices; a guest
	 * with messages queued toward its NSM still follows what the NSM
	 * took (its nsm_queued stays current).
	 */
	waiting = requests_waiting(ep);
	if (ep->role == NK_ROLE_GUEST && ep->nsm && (waiting || ep->cnt[HE_C_NSM_QUEUED]))
		nsm_sync(ep->nsm);
	if (!waiting || held_back(ep))
		return work;
	quota = cfg->batch * (ep->role == NK_ROLE_GUEST ? ep->weight :
			      RTE_MAX(ep->guest_weight, 1U));
	for (i = 0; i < ep->nr_pairs && quota; i++) {
		struct he_vq *vq = &ep->vq[NK_VQ_REQUEST((ep->rr_pair + i) % ep->nr_pairs)];

		while (quota) {
			r = he_vq_pop(vq->mem, vq, false, &rq_chain, &err);
			if (!r)
				break;
			if (r == HE_VQ_BROKEN) {
				ring_broken(ep, vq, rq_chain.head);
				break;
			}
			take(ep, vq, r, err);
			quota--;
			work++;
			if (ep->role == NK_ROLE_GUEST && over_share(ep))
				quota = 0;
		}
	}
	ep->rr_pair++;
	return work;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

/* Kicks of carrier @k's virtqueues into (or out of) the sleep's epoll set. */
static void epoll_kick(struct he_ep *ep, unsigned int k, int op)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned int q;

	for (q = 2 * k; q < 2 * k + ep->car[k].nr_vqs; q++) {
		ev.data.fd = ep->vq[q].vr.kickfd;
		if (ev.data.fd >= 0 && epoll_ctl(epfd, op, ev.data.fd, &ev) < 0)
			he_log(WARNING, "%s: epoll_ctl(kick fd %d): %s", ep->name, ev.data.fd,
			       strerror(errno));
	}
}

static const struct nk_hdr no_session = {
	.op = NK_EV_PROTO_ERROR,
	.status = (uint32_t)-ENOTCONN,
	.arg = { NK_PERR_NO_SESSION },
};

/* Interrupts owed on the pairs in use: before their number changes. */
static void calls_flush_ep(struct he_ep *ep)
{
	unsigned int q;

	if (!ep->running || ep->paused)
		return;
	for (q = 0; q < 2U * ep->nr_pairs; q++)
		he_vq_call(ep->vq[q].vid, &ep->vq[q]);
}

/* The pairs in use become @n (an NSM's eventqs tracked anew). */
static void pairs_use(struct he_ep *ep, uint16_t n)
{
	calls_flush_ep(ep);
	if (ep->role == NK_ROLE_NSM)
		evq_track_free(ep);
	__atomic_store_n(&ep->nr_pairs, n, __ATOMIC_RELAXED);
	if (ep->role == NK_ROLE_NSM && n)
		evq_track_alloc(ep);
}

/*
 * Pairs set up from pair 0 on: carrier 0's own, or with several carriers
 * as many in a row as have started since the last session ended.
 */
static void pairs_count(struct he_ep *ep)
{
	unsigned int k = 1;

	if (!ep->running) {
		__atomic_store_n(&ep->pairs_up, 0, __ATOMIC_RELAXED);
		return;
	}
	if (ep->carriers > 1)
		while (k < ep->carriers && ep->car[k].vid >= 0 &&
		       ep->car[k].gen == ep->session_gen)
			k++;
	else
		k = ep->car[0].nr_vqs / 2;
	__atomic_store_n(&ep->pairs_up, k, __ATOMIC_RELAXED);	/* "list" reads it */
}

/*
 * The session ends while carrier 0 goes on (another carrier stopped): the
 * driver is told as on a device start, and says HELLO again.
 */
static void session_restart(struct he_ep *ep)
{
	if (ep->state != HE_EP_READY)
		return;
	session_end(ep);
	ep->session_gen++;
	pend_free_all(ep);
	pairs_use(ep, 1);
	pairs_count(ep);
	__atomic_store_n(&ep->state, HE_EP_CONNECTED, __ATOMIC_RELAXED);
	if (pend_add(ep, &no_session, NULL, 0, NULL))
		he_cnt_add(ep, HE_C_DROPS, 1);
	he_log(INFO, "%s: a carrier stopped, session ended", ep->name);
}

static int cmd_start(struct he_ep *ep, const struct he_dev_start *ds)
{
	unsigned int k = ds->carrier, q;
	struct he_carrier *car;

	if (k >= ep->carriers)
		return -EINVAL;
	car = &ep->car[k];
	if (car->vid >= 0)
		return -EBUSY;
	/* A carrier other than 0 has one pair: the endpoint's pair k. */
	if (ep->carriers > 1 && ds->nr_vqs != 2)
		return -EINVAL;
	car->vid = ds->vid;
	car->mem = ds->mem;
	car->nr_vqs = ds->nr_vqs;
	car->gen = ep->session_gen;
	for (q = 0; q < ds->nr_vqs; q++) {
		struct he_vq *vq = &ep->vq[2 * k + q];

		memset(vq, 0, sizeof(*vq));
		vq->vr = ds->vr[q];
		vq->mem = ds->mem;
		vq->vid = ds->vid;
		vq->qid = 2 * k + q;
		vq->vring = q;
		vq->last_avail = ds->last_avail[q];
		vq->avail_seen = vq->last_avail;
		vq->last_used = ds->last_used[q];
		he_vq_notify(vq, false);
	}
	epoll_kick(ep, k, EPOLL_CTL_ADD);
	if (k) {
		/* Used from the endpoint's next HELLO on. */
		pairs_count(ep);
		he_log(INFO, "%s: carrier %u started", ep->name, k);
		return 0;
	}
	ep->max_payload = 0;
	ep->features = 0;
	ep->running = true;
	pairs_count(ep);
	pairs_use(ep, 1);
	__atomic_store_n(&ep->state, HE_EP_CONNECTED, __ATOMIC_RELAXED);
	/*
	 * First on the eventq: no session.  A driver that was in one (the
	 * device stopped and started again, or this engine is a new process)
	 * starts over; one that is saying HELLO ignores it.
	 */
	if (pend_add(ep, &no_session, NULL, 0, NULL))
		he_cnt_add(ep, HE_C_DROPS, 1);
	he_log(INFO, "%s: device started, %u queue pair(s)", ep->name, ep->pairs_up);
	return 0;
}

/* The carrier of @ep that @vid is, or NULL. */
static struct he_carrier *carrier_of(struct he_ep *ep, int vid, unsigned int *k)
{
	for (*k = 0; *k < ep->carriers; (*k)++)
		if (ep->car[*k].vid == vid && vid >= 0)
			return &ep->car[*k];
	return NULL;
}

static void cmd_stop(struct he_cmd *c)
{
	struct he_ep *ep = c->ep;
	struct he_carrier *car;
	unsigned int k, q;

	c->mem = NULL;
	c->nr_vqs = 0;
	car = carrier_of(ep, c->vid, &k);
	if (!car)
		return;
	/* From here on nothing is written to this carrier. */
	if (!k) {
		ep->running = false;
		if (ep->state == HE_EP_READY)
			session_end(ep);
		ep->session_gen++;
		pend_free_all(ep);
		pairs_use(ep, 0);
	} else if (ep->running && k < ep->nr_pairs) {
		session_restart(ep);
	}
	epoll_kick(ep, k, EPOLL_CTL_DEL);
	c->nr_vqs = car->nr_vqs;
	for (q = 0; q < c->nr_vqs; q++) {
		struct he_vq *vq = &ep->vq[2 * k + q];

		if (!(ep->paused & (1U << k)))	/* else published by cmd_pause */
			he_vq_publish(vq);
		c->last_avail[q] = vq->last_avail;
		c->last_used[q] = vq->last_used;
	}
	c->mem = car->mem;
	car->mem = NULL;
	car->vid = -1;
	car->nr_vqs = 0;
	ep->paused &= ~(1U << k);
	pairs_count(ep);
	if (!k) {
		__atomic_store_n(&ep->state, HE_EP_WAITING, __ATOMIC_RELAXED);
		he_log(INFO, "%s: device stopped", ep->name);
	} else {
		he_log(INFO, "%s: carrier %u stopped", ep->name, k);
	}
}

/*
 * A carrier's memory table is about to change (its mapping goes away):
 * publish what was used, and touch none of the endpoint's memory until
 * cmd_resume.  Messages for it wait in its pending queue meanwhile.
 */
static void cmd_pause(struct he_cmd *c)
{
	struct he_ep *ep = c->ep;
	struct he_carrier *car;
	unsigned int k, q;

	c->ret = 0;
	car = carrier_of(ep, c->vid, &k);
	if (!car || (ep->paused & (1U << k)))
		return;
	/* Interrupts owed stay owed (need_call) until cmd_resume. */
	for (q = 2 * k; q < 2 * k + car->nr_vqs; q++)
		he_vq_publish(&ep->vq[q]);
	ep->paused |= 1U << k;
	c->ret = 1;
	he_log(INFO, "%s: memory table changing, device paused", ep->name);
}

/*
 * The new memory table and ring addresses of a paused carrier: serve it
 * again where it stopped.  c->mem: the table to free (the old one, or the
 * new one if the carrier was not paused).
 */
static void cmd_resume(struct he_cmd *c)
{
	struct he_ep *ep = c->ep;
	struct he_dev_start *ds = c->ds;
	struct he_carrier *car;
	unsigned int k, q;

	c->mem = ds->mem;
	c->ret = -ENODEV;
	car = carrier_of(ep, c->vid, &k);
	if (!car || !(ep->paused & (1U << k)))
		return;
	c->ret = -EINVAL;
	if (ds->nr_vqs != car->nr_vqs)
		return;
	for (q = 0; q < ds->nr_vqs; q++)
		if (ds->vr[q].size != ep->vq[2 * k + q].vr.size ||
		    ds->vr[q].kickfd != ep->vq[2 * k + q].vr.kickfd)
			return;
	c->mem = car->mem;
	car->mem = ds->mem;
	for (q = 0; q < ds->nr_vqs; q++) {
		struct he_vq *vq = &ep->vq[2 * k + q];

		vq->vr = ds->vr[q];
		vq->mem = ds->mem;
		he_vq_notify(vq, false);
	}
	ep->paused &= ~(1U << k);
	c->ret = 0;
	he_log(INFO, "%s: new memory table, device resumed", ep->name);
}

static void detach(struct he_ep *g)
{
	struct he_hnode *n, *next;
	unsigned int i;

	if (!g->nsm)
		return;
	for (i = 0; i < HE_HASH_BUCKETS; i++) {
		for (n = g->socks.b[i]; n; n = next) {
			struct he_map *m = container_of(n, struct he_map, gnode);

			next = n->next;
			if (!m->reset && !m->closing) {
				he_cnt_add(g, HE_C_RESETS, 1);
				map_reset(m, -ENETDOWN);
			}
		}
	}
	queued_forget(g);
	g->nsm->guest_weight -= g->weight;
	g->nsm = NULL;
	__atomic_store_n(&g->attached_id, 0, __ATOMIC_RELAXED);
}

static void attach(struct he_ep *g, struct he_ep *nsm)
{
	if (g->nsm == nsm)
		return;
	detach(g);
	g->nsm = nsm;
	nsm->guest_weight += g->weight;
	__atomic_store_n(&g->attached_id, nsm->id, __ATOMIC_RELAXED);
}

/*
 * An endpoint leaves the table.  Its device is stopped already
 * (rte_vhost_driver_unregister ran destroy_device, whose session_end reset
 * its sockets for their peers); what is left is who points at it.
 */
static void ep_retire(struct he_ep *ep)
{
	unsigned int i;

	if (ep->role == NK_ROLE_GUEST) {
		detach(ep);
	} else {
		for (i = 0; i < cfg->nr_eps; i++)
			if (cfg->eps[i]->nsm == ep)
				detach(cfg->eps[i]);
	}
	for (i = 0; i < ep->carriers; i++) {
		if (ep->car[i].vid < 0)
			continue;
		/* Not expected: the caller unregistered it. */
		he_log(WARNING, "%s: removed while its device runs", ep->name);
		ep->running = false;
		epoll_kick(ep, i, EPOLL_CTL_DEL);
		ep->car[i].vid = -1;
	}
	session_end(ep);
	pend_free_all(ep);
	evq_track_free(ep);
}

static void ep_update(struct he_ep *ep, const struct he_ep *from)
{
	if (ep->nsm) {
		ep->nsm->guest_weight += from->weight - ep->weight;
		if (ep->cnt[HE_C_NSM_QUEUED])
			ep->nsm->queued_weight += from->weight - ep->weight;
	}
	he_ep_copy_live(ep, from);
}

static const char *map_state(const struct he_map *m)
{
	if (m->reset)
		return "reset";
	if (!m->guest)
		return "orphan";
	if (m->closing)
		return "closing";
	return m->opening ? "opening" : "open";
}

static void sock_info_fill(struct he_sock_info *s, const struct he_map *m)
{
	snprintf(s->guest, sizeof(s->guest), "%s", m->guest ? m->guest->name : "");
	snprintf(s->nsm, sizeof(s->nsm), "%s", m->nsm ? m->nsm->name : "");
	s->guest_sock = m->guest_sock;
	s->nsm_sock = m->nsm_sock;
	s->state = map_state(m);
	s->tx_bytes = m->tx_bytes;
	s->rx_bytes = m->rx_bytes;
	s->guest_buf_alloc = m->to_guest.peer_buf_alloc;
	s->guest_fwd_cnt = m->to_guest.peer_fwd_cnt;
	s->nsm_buf_alloc = m->to_nsm.peer_buf_alloc;
	s->nsm_fwd_cnt = m->to_nsm.peer_fwd_cnt;
	s->guest_tx_cnt = m->to_nsm.tx_cnt;
	s->nsm_tx_cnt = m->to_guest.tx_cnt;
	lsw_info(m, s);
}

static int cmd_sockets(struct he_ep *ep, struct he_sock_info **out)
{
	struct he_sock_info *s = calloc(ep->socks.count + 1, sizeof(*s));
	bool guest = ep->role == NK_ROLE_GUEST;
	struct he_hnode *n;
	unsigned int i, k = 0;

	if (!s)
		return -ENOMEM;
	for (i = 0; i < HE_HASH_BUCKETS; i++) {
		for (n = ep->socks.b[i]; n; n = n->next) {
			const struct he_map *m = guest ? container_of(n, struct he_map, gnode) :
							 container_of(n, struct he_map, nnode);

			sock_info_fill(&s[k++], m);
		}
	}
	*out = s;
	return k;
}

/* ------------------------------------------------------------------ */
/* "ss": the NSMs' view of the sockets (NK_OP_INFO)                    */
/* ------------------------------------------------------------------ */

static void __attribute__((format(printf, 2, 3)))
ss_err(struct he_ss_info *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->info_err, sizeof(e->info_err), fmt, ap);
	va_end(ap);
}

static void cmd_done_locked(struct he_cmd *c);

/* The job is over: entries still waiting timed out; the caller goes on. */
static void ss_finish(void)
{
	struct he_cmd *c = ss_job.cmd;
	int i;

	if (!c)
		return;
	for (i = 0; i < c->ret; i++)
		if (!c->ss[i].info_ok && !c->ss[i].info_err[0])
			ss_err(&c->ss[i], "no INFO reply from the NSM within %u ms",
			       HE_INFO_TIMEOUT_MS);
	free(ss_job.idx);
	ss_job.idx = NULL;
	ss_job.cmd = NULL;
	ss_job.outstanding = 0;
	pthread_mutex_lock(&cmd_lock);
	cmd_done_locked(c);
	pthread_cond_broadcast(&cmd_cond);
	pthread_mutex_unlock(&cmd_lock);
}

/* Ask @nsm about the entries ss_job.idx[first..first+n): 0 or -errno. */
static int info_ask(struct he_ep *nsm, uint32_t first, uint32_t n)
{
	struct nk_hdr f = { .op = NK_OP_INFO, .len = n * sizeof(uint32_t) };
	struct he_cmd *c = ss_job.cmd;
	uint32_t ids[NK_INFO_MAX(NK_MAX_PAYLOAD)], i;
	struct he_seg seg;
	struct he_iov iov;
	struct he_req *r;
	int err;

	for (i = 0; i < n; i++)
		ids[i] = c->ss[ss_job.idx[first + i]].s.nsm_sock;
	r = req_new(NULL, NK_OP_INFO);
	if (!r)
		return -ENOMEM;
	r->info_first = first;
	r->info_n = n;
	r->info_gen = ss_job.gen;
	r->node.key = f.req_id = next_req_id++;
	he_iov_flat(&iov, &seg, ids, f.len);
	err = deliver(nsm, &f, &iov, 0, false);
	if (err) {
		free(r);
		return err;
	}
	req_track(nsm, r);
	nsm->info_reqs++;
	ss_job.outstanding++;
	return 0;
}

/*
 * Start answering CMD_SS: collect the entries, then ask each NSM that
 * can answer about its entries in INFO requests of up to NK_INFO_MAX of
 * its max_payload ids.  The command is deferred while any is outstanding.
 */
static void ss_start(struct he_cmd *c)
{
	struct he_ep **enm = NULL, *g, *nsm;
	uint32_t total = 0, n = 0, k = 0, i, j, l, b, batch;
	struct he_hnode *h;
	int err;

	if (ss_job.cmd) {
		c->ret = -EBUSY;
		return;
	}
	for (i = 0; i < cfg->nr_eps; i++)
		if (cfg->eps[i]->role == NK_ROLE_GUEST && (!c->ep || c->ep == cfg->eps[i]))
			total += cfg->eps[i]->socks.count;
	c->ss = calloc(total + 1, sizeof(*c->ss));
	enm = calloc(total + 1, sizeof(*enm));
	ss_job.idx = calloc(total + 1, sizeof(*ss_job.idx));
	if (!c->ss || !enm || !ss_job.idx) {
		free(c->ss);
		free(enm);
		free(ss_job.idx);
		ss_job.idx = NULL;
		c->ret = -ENOMEM;
		return;
	}
	for (i = 0; i < cfg->nr_eps; i++) {
		g = cfg->eps[i];
		if (g->role != NK_ROLE_GUEST || (c->ep && c->ep != g))
			continue;
		for (j = 0; j < HE_HASH_BUCKETS; j++) {
			for (h = g->socks.b[j]; h; h = h->next) {
				struct he_map *m = container_of(h, struct he_map, gnode);
				struct he_ss_info *e = &c->ss[n];

				if (c->ep2 && m->nsm != c->ep2)
					continue;
				sock_info_fill(&e->s, m);
				e->stream = m->stream;
				nsm = m->nsm;
				if (m->local)
					ss_err(e, "switched locally by the engine: not asked");
				else if (!nsm || m->reset || m->closing)
					ss_err(e, "%s by the engine: not asked", e->s.state);
				else if (!dp_running || !nsm->running || nsm->state != HE_EP_READY)
					ss_err(e, "the NSM is not connected");
				else if (!(nsm->features & NK_FEAT_INFO))
					ss_err(e, "the NSM does not answer INFO (no NK_FEAT_INFO)");
				else if (nsm->info_reqs)
					ss_err(e, "the NSM has not answered an earlier INFO request");
				else
					enm[n] = nsm;
				n++;
			}
		}
	}
	c->ret = n;
	ss_job.cmd = c;
	ss_job.gen++;
	ss_job.deadline = rte_get_timer_cycles() +
			  rte_get_timer_hz() * HE_INFO_TIMEOUT_MS / 1000;
	for (i = 0; i < cfg->nr_eps; i++) {
		uint32_t first = k;

		nsm = cfg->eps[i];
		if (nsm->role != NK_ROLE_NSM)
			continue;
		for (j = 0; j < n; j++)
			if (enm[j] == nsm)
				ss_job.idx[k++] = j;
		batch = NK_INFO_MAX(nsm->max_payload);
		for (j = first; j < k; j += b) {
			b = RTE_MIN(batch, k - j);
			err = info_ask(nsm, j, b);
			for (l = 0; err && l < b; l++)
				ss_err(&c->ss[ss_job.idx[j + l]], "INFO request not sent: %s",
				       strerror(-err));
		}
	}
	free(enm);
	c->deferred = ss_job.outstanding > 0;
	if (!c->deferred) {
		free(ss_job.idx);
		ss_job.idx = NULL;
		ss_job.cmd = NULL;
	}
}

/*
 * An NSM's answer to INFO request @r (or its failure: @iov NULL when the
 * NSM went away).  Every byte is checked before any of it is used: the
 * length must be one record per id asked, and each record pass
 * nk_sock_info_check() for the id at its place; a reply that fails is
 * refused whole (EV_PROTO_ERROR NK_PERR_REFUSED to the NSM, the reason in
 * each entry).  Records are copied out of the NSM's memory once.
 */
static void info_reply(struct he_ep *nsm, struct he_req *r, const struct nk_hdr *h,
		       const struct he_iov *iov)
{
	struct he_cmd *c = ss_job.cmd;
	const uint32_t rlen = sizeof(struct nk_sock_info);
	int status = (int32_t)h->status;
	struct nk_sock_info *rec = NULL;
	const char *why = NULL;
	bool refused = false;
	char bad[64] = "";
	uint32_t i;

	nsm->info_reqs--;
	if (!c || r->info_gen != ss_job.gen)
		return;		/* its listing is over */
	ss_job.outstanding--;
	if (!iov) {
		snprintf(bad, sizeof(bad), "the NSM went away (%s)", strerror(-status));
	} else if (status < 0 && !h->len && !h->sock) {
		snprintf(bad, sizeof(bad), "the NSM answered %s", strerror(-status));
	} else {
		refused = true;
		if (h->sock)
			snprintf(bad, sizeof(bad), "reply for socket %u", h->sock);
		else if (status < 0)
			snprintf(bad, sizeof(bad), "error reply with %u bytes", h->len);
		else if (h->len != r->info_n * rlen)
			snprintf(bad, sizeof(bad), "%u bytes for %u sockets", h->len, r->info_n);
		else
			refused = false;
	}
	if (!bad[0]) {
		rec = malloc(h->len);
		if (!rec)
			snprintf(bad, sizeof(bad), "%s", strerror(ENOMEM));
		else
			he_iov_read(iov, HDR_LEN, rec, h->len);
	}
	for (i = 0; rec && !bad[0] && i < r->info_n; i++) {
		uint32_t sock = c->ss[ss_job.idx[r->info_first + i]].s.nsm_sock;

		if (nk_sock_info_check(&rec[i], sock, &why) == -EPROTO) {
			snprintf(bad, sizeof(bad), "record %u: %s", i, why);
			refused = true;
		}
	}
	if (refused) {
		he_ep_log(nsm, WARNING, "INFO reply refused: %s", bad);
		proto_error(nsm, NK_PERR_REFUSED, -EPROTO, cur_head, h->op, h->req_id, false);
	}
	for (i = 0; i < r->info_n; i++) {
		struct he_ss_info *e = &c->ss[ss_job.idx[r->info_first + i]];

		if (bad[0]) {
			ss_err(e, "%s%s", refused ? "INFO reply refused: " : "", bad);
			continue;
		}
		if (nk_sock_info_check(&rec[i], e->s.nsm_sock, &why)) {
			ss_err(e, "the NSM has no such socket");
			continue;
		}
		e->info = rec[i];
		e->info_ok = true;
	}
	free(rec);
	if (!ss_job.outstanding)
		ss_finish();
}

static int cmd_kill(struct he_ep *g, uint32_t gsock)
{
	struct he_map *m = map_by_guest(g, gsock);

	if (!m)
		return -ENOENT;
	if (m->reset || m->closing)
		return -EALREADY;
	he_cnt_add(g, HE_C_RESETS, 1);
	he_ep_log(g, NOTICE, "socket %u (NSM socket %u) reset by the operator", gsock,
		  m->nsm_sock);
	map_reset(m, -ECONNRESET);
	return 0;
}

static void cmd_exec(struct he_cmd *c)
{
	switch (c->type) {
	case CMD_START:
		c->ret = cmd_start(c->ep, c->ds);
		break;
	case CMD_STOP:
		cmd_stop(c);
		break;
	case CMD_PAUSE:
		cmd_pause(c);
		break;
	case CMD_RESUME:
		cmd_resume(c);
		break;
	case CMD_ATTACH:
		attach(c->ep, c->ep2);
		break;
	case CMD_DETACH:
		detach(c->ep);
		break;
	case CMD_SOCKETS:
		c->ret = cmd_sockets(c->ep, &c->socks);
		break;
	case CMD_SS:
		ss_start(c);
		break;
	case CMD_KILL:
		c->ret = cmd_kill(c->ep, c->sock);
		break;
	case CMD_EP_ADD:
		cfg->eps = c->eps;
		cfg->nr_eps = c->nr_eps;
		if (c->ep2)
			attach(c->ep, c->ep2);
		break;
	case CMD_EP_DEL:
		ep_retire(c->ep);
		cfg->eps = c->eps;
		cfg->nr_eps = c->nr_eps;
		break;
	case CMD_EP_UPDATE:
		ep_update(c->ep, c->ep2);
		break;
	}
}

/* @c is carried out (cmd_lock held); the "ss" command's caller is told. */
static void cmd_done_locked(struct he_cmd *c)
{
	uint64_t one = 1;

	c->done = true;
	if (c == &ss_cmd && ss_efd >= 0 && write(ss_efd, &one, sizeof(one)) < 0)
		he_log(ERR, "ss eventfd: %s", strerror(errno));
}

/* Queue @c for the data plane (or run it here if it is not running). */
static void cmd_submit_async(struct he_cmd *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&cmd_lock);
	if (!dp_running) {
		cmd_exec(c);
		cmd_done_locked(c);
	} else {
		STAILQ_INSERT_TAIL(&cmd_q, c, link);
		__atomic_add_fetch(&cmd_nr, 1, __ATOMIC_RELEASE);
		if (write(cmd_efd, &one, sizeof(one)) < 0)
			he_log(ERR, "command eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&cmd_lock);
}

/* Run @c on the data plane (or here if it is not running) and wait. */
static void cmd_submit(struct he_cmd *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&cmd_lock);
	if (!dp_running) {
		cmd_exec(c);
	} else {
		STAILQ_INSERT_TAIL(&cmd_q, c, link);
		__atomic_add_fetch(&cmd_nr, 1, __ATOMIC_RELEASE);
		if (write(cmd_efd, &one, sizeof(one)) < 0)
			he_log(ERR, "command eventfd: %s", strerror(errno));
		while (!c->done)
			pthread_cond_wait(&cmd_cond, &cmd_lock);
	}
	pthread_mutex_unlock(&cmd_lock);
}

/* Data plane: execute queued commands.  Returns how many. */
static unsigned int cmd_drain(void)
{
	unsigned int n = 0;
	struct he_cmd *c;

	if (!__atomic_load_n(&cmd_nr, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&cmd_lock);
	while ((c = STAILQ_FIRST(&cmd_q))) {
		STAILQ_REMOVE_HEAD(&cmd_q, link);
		__atomic_sub_fetch(&cmd_nr, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&cmd_lock);
		cmd_exec(c);
		pthread_mutex_lock(&cmd_lock);
		if (!c->deferred)
			cmd_done_locked(c);
		n++;
	}
	pthread_cond_broadcast(&cmd_cond);
	pthread_mutex_unlock(&cmd_lock);
	return n;
}

int he_dp_dev_start(struct he_ep *ep, struct he_dev_start *ds)
{
	struct he_cmd c = { .type = CMD_START, .ep = ep, .ds = ds };

	cmd_submit(&c);
	return c.ret;
}

struct rte_vhost_memory *he_dp_dev_stop(struct he_ep *ep, int vid, uint16_t *nr_vqs,
					 uint16_t *last_avail, uint16_t *last_used)
{
	struct he_cmd c = {
		.type = CMD_STOP,
		.ep = ep,
		.vid = vid,
		.last_avail = last_avail,
		.last_used = last_used,
	};

	cmd_submit(&c);
	*nr_vqs = c.nr_vqs;
	return c.mem;
}

int he_dp_dev_pause(struct he_ep *ep, int vid)
{
	struct he_cmd c = { .type = CMD_PAUSE, .ep = ep, .vid = vid };

	cmd_submit(&c);
	return c.ret;
}

int he_dp_dev_resume(struct he_ep *ep, struct he_dev_start *ds, struct rte_vhost_memory **old)
{
	struct he_cmd c = { .type = CMD_RESUME, .ep = ep, .vid = ds->vid, .ds = ds };

	cmd_submit(&c);
	*old = c.mem;
	return c.ret;
}

int he_dp_attach(struct he_ep *guest, struct he_ep *nsm)
{
	struct he_cmd c = { .type = CMD_ATTACH, .ep = guest, .ep2 = nsm };

	if (guest->role != NK_ROLE_GUEST || nsm->role != NK_ROLE_NSM)
		return -EINVAL;
	cmd_submit(&c);
	return 0;
}

int he_dp_detach(struct he_ep *guest)
{
	struct he_cmd c = { .type = CMD_DETACH, .ep = guest };

	if (guest->role != NK_ROLE_GUEST)
		return -EINVAL;
	cmd_submit(&c);
	return 0;
}

/* The data-plane state of an endpoint nobody has seen yet. */
static void ep_init(struct he_ep *ep)
{
	unsigned int k;

	for (k = 0; k < RTE_DIM(ep->car); k++)
		ep->car[k].vid = -1;
	ep->next_sock = 1;
	TAILQ_INIT(&ep->pending);
	TAILQ_INIT(&ep->my_reqs);
}

void he_dp_ep_add(struct he_ep *ep, struct he_ep *nsm, struct he_ep **eps, unsigned int nr)
{
	struct he_cmd c = {
		.type = CMD_EP_ADD, .ep = ep, .ep2 = nsm, .eps = eps, .nr_eps = nr,
	};

	ep_init(ep);
	cmd_submit(&c);
}

void he_dp_ep_remove(struct he_ep *ep, struct he_ep **eps, unsigned int nr)
{
	struct he_cmd c = { .type = CMD_EP_DEL, .ep = ep, .eps = eps, .nr_eps = nr };

	cmd_submit(&c);
}

void he_dp_ep_update(struct he_ep *ep, const struct he_ep *from)
{
	struct he_cmd c = { .type = CMD_EP_UPDATE, .ep = ep, .ep2 = (struct he_ep *)from };

	cmd_submit(&c);
}

int he_dp_sockets(struct he_ep *ep, struct he_sock_info **out)
{
	struct he_cmd c = { .type = CMD_SOCKETS, .ep = ep };

	cmd_submit(&c);
	*out = c.socks;
	return c.ret;
}

int he_dp_ss_start(struct he_ep *guest, struct he_ep *nsm)
{
	if ((guest && guest->role != NK_ROLE_GUEST) || (nsm && nsm->role != NK_ROLE_NSM))
		return -EINVAL;
	if (ss_started)
		return -EBUSY;
	memset(&ss_cmd, 0, sizeof(ss_cmd));
	ss_cmd.type = CMD_SS;
	ss_cmd.ep = guest;
	ss_cmd.ep2 = nsm;
	ss_started = true;
	cmd_submit_async(&ss_cmd);
	return 0;
}

int he_dp_ss_result(struct he_ss_info **out)
{
	uint64_t v;
	bool done;

	if (ss_efd >= 0 && read(ss_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		he_log(DEBUG, "read(ss eventfd): %s", strerror(errno));
	if (!ss_started)
		return -ENOENT;
	pthread_mutex_lock(&cmd_lock);
	done = ss_cmd.done;
	pthread_mutex_unlock(&cmd_lock);
	if (!done)
		return -EAGAIN;
	ss_started = false;
	*out = ss_cmd.ss;
	return ss_cmd.ret;
}

int he_dp_ss_fd(void)
{
	return ss_efd;
}

int he_dp_kill(struct he_ep *guest, uint32_t gsock)
{
	struct he_cmd c = { .type = CMD_KILL, .ep = guest, .sock = gsock };

	if (guest->role != NK_ROLE_GUEST)
		return -EINVAL;
	cmd_submit(&c);
	return c.ret;
}

void he_dp_stats(struct he_engine_stats *st)
{
	st->loops = __atomic_load_n(&dp_stats.loops, __ATOMIC_RELAXED);
	st->sleeps = __atomic_load_n(&dp_stats.sleeps, __ATOMIC_RELAXED);
	st->sockets = __atomic_load_n(&dp_stats.sockets, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */
/* ------------------------------------------------------------------ */

static void calls_flush(void)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_eps; i++)
		calls_flush_ep(cfg->eps[i]);
}

/*
 * Kicks on or off for the sleep.  An eventq's kick (new buffers) matters
 * only while messages wait for its buffers, or, for an NSM's, while one of
 * its guests is held back until the NSM takes what that guest queued
 * (over_share()): otherwise every refill would cost the VM an exit and
 * the engine a wakeup, one per request an NSM serves.  The count of what a
 * guest queued changes only when the engine looks, and what the NSM takes
 * meanwhile only lowers it: a guest not held now stays so while it sleeps.
 */
static void notify_all(bool enable)
{
	unsigned int i, q;

	for (i = 0; i < cfg->nr_eps; i++) {
		struct he_ep *ep = cfg->eps[i];
		bool waiting = !TAILQ_EMPTY(&ep->pending);

		for (q = 0; ep->running && !ep->paused && q < 2U * ep->nr_pairs; q++)
			he_vq_notify(&ep->vq[q], enable &&
				     (q % 2 == 0 || waiting));	/* requestq */
	}
	for (i = 0; enable && i < cfg->nr_eps; i++) {
		struct he_ep *g = cfg->eps[i];
		struct he_ep *nsm = g->nsm;

		if (g->role != NK_ROLE_GUEST || !nsm || !over_share(g) ||
		    !nsm->running || nsm->paused)
			continue;
		for (q = 0; q < nsm->nr_pairs; q++)
			he_vq_notify(&nsm->vq[NK_VQ_EVENT(q)], true);
	}
	rte_smp_mb();
}

/* Would a pass find anything to do? */
static bool work_available(void)
{
	unsigned int i, p;

	if (__atomic_load_n(&cmd_nr, __ATOMIC_ACQUIRE))
		return true;
	for (i = 0; i < cfg->nr_eps; i++) {
		struct he_ep *ep = cfg->eps[i];
		struct he_pmsg *pm = TAILQ_FIRST(&ep->pending);

		if (!ep->running || ep->paused)
			continue;
		if (pm && he_vq_pending(event_vq(ep, pm->h.sock)))
			return true;
		for (p = 0; p < 2U * ep->nr_pairs; p++)
			if (ep->vq[p].need_call)	/* an interrupt to retry */
				return true;
		if (ep->role == NK_ROLE_GUEST && ep->nsm)
			nsm_sync(ep->nsm);
		if (!held_back(ep) && requests_waiting(ep))
			return true;
	}
	return false;
}

/*
 * Adaptive mode, idle: ask for kicks, look once more, then sleep on all
 * kick eventfds and the command eventfd; suppress kicks again afterwards.
 */
static void dp_sleep(void)
{
	struct epoll_event ev[64];
	uint64_t v;
	int i, n;

	notify_all(true);
	if (!work_available()) {
		n = epoll_wait(epfd, ev, RTE_DIM(ev), HE_SLEEP_MS);
		for (i = 0; i < n; i++)
			if (read(ev[i].data.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				he_log(DEBUG, "read(kick fd): %s", strerror(errno));
		stat_add(&dp_stats.sleeps, 1);
	}
	notify_all(false);
}

static int dp_main(void *arg)
{
	uint32_t idle = 0, start = 0;
	unsigned int i, k, work;
	struct he_cmd *c;

	RTE_SET_USED(arg);
	he_log(INFO, "data plane running on lcore %u, poll %s", rte_lcore_id(),
	       cfg->poll == HE_POLL_BUSY ? "busy" : "adaptive");
	while (!__atomic_load_n(&dp_quit, __ATOMIC_ACQUIRE)) {
		work = cmd_drain();
		/* No division per endpoint: the table may have shrunk, though. */
		if (start >= cfg->nr_eps)
			start = 0;
		for (i = 0, k = start; i < cfg->nr_eps; i++) {
			struct he_ep *ep = cfg->eps[k];

			if (++k == cfg->nr_eps)
				k = 0;
			if (ep->running)
				work += visit(ep);
		}
		start++;
		calls_flush();
		lsw_tick();
		stat_add(&dp_stats.loops, 1);
		if (ss_job.cmd && rte_get_timer_cycles() >= ss_job.deadline)
			ss_finish();
		if (work) {
			idle = 0;
		} else if (++idle >= cfg->idle_polls) {
			if (pend_freed >= HE_TRIM_BYTES) {
				malloc_trim(0);
				pend_freed = 0;
			}
			if (cfg->poll == HE_POLL_ADAPTIVE)
				dp_sleep();
			idle = 0;
		}
	}

	/* Hand over: later commands run in their callers. */
	ss_finish();
	pthread_mutex_lock(&cmd_lock);
	dp_running = false;
	while ((c = STAILQ_FIRST(&cmd_q))) {
		STAILQ_REMOVE_HEAD(&cmd_q, link);
		cmd_exec(c);
		cmd_done_locked(c);
	}
	cmd_nr = 0;
	pthread_cond_broadcast(&cmd_cond);
	pthread_mutex_unlock(&cmd_lock);
	he_log(INFO, "data plane stopped");
	return 0;
}

int he_dp_init(struct he_config *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned int i;

	cfg = c;
	lsw_init(c);
	if (getrandom(&ht_mul, sizeof(ht_mul), 0) != sizeof(ht_mul) ||
	    getrandom(&ht_addend, sizeof(ht_addend), 0) != sizeof(ht_addend))
		return -EIO;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	cmd_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ss_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (epfd < 0 || cmd_efd < 0 || ss_efd < 0)
		return -errno;
	ev.data.fd = cmd_efd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, cmd_efd, &ev) < 0)
		return -errno;
	for (i = 0; i < cfg->nr_eps; i++)
		ep_init(cfg->eps[i]);
	for (i = 0; i < cfg->nr_eps; i++) {
		struct he_ep *ep = cfg->eps[i];

		if (ep->role == NK_ROLE_GUEST && ep->cfg_nsm[0])
			attach(ep, he_ep_by_name(cfg, ep->cfg_nsm));
	}
	return 0;
}

int he_dp_launch(void)
{
	int ret;

	pthread_mutex_lock(&cmd_lock);
	dp_running = true;
	pthread_mutex_unlock(&cmd_lock);
	ret = rte_eal_remote_launch(dp_main, NULL, cfg->dataplane_lcore);
	if (ret) {
		pthread_mutex_lock(&cmd_lock);
		dp_running = false;
		pthread_mutex_unlock(&cmd_lock);
	}
	return ret;
}

void he_dp_stop(void)
{
	uint64_t one = 1;

	__atomic_store_n(&dp_quit, true, __ATOMIC_RELEASE);
	if (write(cmd_efd, &one, sizeof(one)) < 0)
		he_log(ERR, "command eventfd: %s", strerror(errno));
	rte_eal_wait_lcore(cfg->dataplane_lcore);
}
