// SPDX-License-Identifier: GPL-2.0
/*
 * nk_ep: an nk endpoint (guest or NSM driver) on a vufront device.
 *
 * Every eventq keeps nr_event_bufs device-writable buffers of
 * sizeof(struct nk_hdr) + max_payload posted, each one contiguous segment.
 * Every requestq has one buffer per descriptor (a slot of the same size)
 * allocated up front in guest memory: a message is copied into a free slot
 * and sent as one descriptor, or as two (header, payload) with split_hdr.
 * Messages that nk_ep_call takes while waiting for its reply wait in a
 * bounded FIFO on the heap for nk_ep_recv.
 *
 * Threading: none of its own; an endpoint belongs to the thread that owns
 * its struct vuf_dev.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "vufront.h"

#define NK_EP_DEF_TIMEOUT_MS	5000
#define NK_EP_FIFO_MAX		4096	/* messages set aside by nk_ep_call */
#define NK_HDR_LEN		sizeof(struct nk_hdr)
#define NK_EP_ALIGN(x)		(((x) + 63) & ~(size_t)63)

struct nk_msg {
	struct nk_msg *next;
	struct nk_hdr h;
	uint8_t payload[];
};

/* The buffers of one requestq: slots and a stack of the free ones. */
struct nk_rq {
	uint8_t *buf;
	uint64_t gpa;
	uint16_t *free;
	unsigned int nfree;
};

struct nk_ep {
	struct vuf_dev *d;
	unsigned int pairs;
	unsigned int qsize;
	unsigned int nr_bufs;		/* posted on each eventq */
	int timeout_ms;
	bool split_hdr;
	size_t slot_size;		/* header + offered max_payload, aligned */
	uint32_t offered;		/* max_payload offered in HELLO */
	uint32_t max_payload;		/* agreed in HELLO (offered before) */
	uint32_t id;
	char name[NK_NAME_MAX];
	uint64_t last_req_id;
	struct nk_rq *rq;		/* one per pair */
	uint8_t *ev_buf;		/* every eventq buffer, contiguous */
	uint64_t ev_gpa;
	unsigned int evqs[NK_MAX_QPAIRS];
	unsigned int rr;		/* eventq looked at first */
	uint8_t *scratch;		/* a payload for nk_ep_call */
	struct nk_msg *fifo, **fifo_tail;
	unsigned int fifo_len;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline for a wait of @timeout_ms (< 0: forever). */
static int time_left(int timeout_ms, int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (timeout_ms < 0)
		return -1;
	return left > 0 ? (int)left : 0;
}

struct vuf_dev *nk_ep_dev(struct nk_ep *ep)
{
	return ep->d;
}

uint32_t nk_ep_id(const struct nk_ep *ep)
{
	return ep->id;
}

const char *nk_ep_name(const struct nk_ep *ep)
{
	return ep->name;
}

uint32_t nk_ep_max_payload(const struct nk_ep *ep)
{
	return ep->max_payload;
}

uint64_t nk_ep_next_req_id(struct nk_ep *ep)
{
	return ++ep->last_req_id;
}


void nk_hdr_reply(struct nk_hdr *h, const struct nk_hdr *req, int status)
{
	nk_hdr_init(h, req->op, NK_F_REPLY, req->sock, req->req_id);
	h->status = status;
}

int nk_addr_parse(struct nk_addr *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->port = htons(port);
	if (inet_pton(AF_INET, ip, a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, a->addr) == 1)
		a->family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

/*
 * The token of every chain we post is its buffer's address: @idx of the
 * @n buffers at @base.  Anything else is a chain the caller published on
 * our queues with the raw vuf_vq_* calls.
 */
static bool our_buf(const struct nk_ep *ep, const uint8_t *base, size_t n, void *token,
		    size_t *idx)
{
	uintptr_t off = (uintptr_t)token - (uintptr_t)base;

	if ((uintptr_t)token < (uintptr_t)base || off % ep->slot_size ||
	    off / ep->slot_size >= n)
		return false;
	*idx = off / ep->slot_size;
	return true;
}

/* ---------------------------------------------------------------- */
/* requestq                                                          */
/* ---------------------------------------------------------------- */

/* Take back the slots of the messages the engine has consumed. */
static int rq_reclaim(struct nk_ep *ep, unsigned int pair)
{
	struct nk_rq *rq = &ep->rq[pair];
	void *token;
	size_t slot;
	int r;

	while ((r = vuf_vq_get_used(ep->d, NK_VQ_REQUEST(pair), NULL, &token)) > 0)
		if (our_buf(ep, rq->buf, ep->qsize, token, &slot))
			rq->free[rq->nfree++] = slot;
	return r;
}

int nk_ep_send(struct nk_ep *ep, struct nk_hdr *h, const void *payload, size_t len)
{
	unsigned int pair = h->sock % ep->pairs, vq = NK_VQ_REQUEST(pair);
	unsigned int nseg = ep->split_hdr && len ? 2 : 1;
	int64_t deadline = now_ms() + ep->timeout_ms;
	struct nk_rq *rq = &ep->rq[pair];
	struct vuf_seg seg[2];
	unsigned int slot;
	uint8_t *buf;
	int r;

	if (len > ep->max_payload)
		return -EMSGSIZE;
	for (;;) {
		r = rq_reclaim(ep, pair);
		if (r)
			return r;
		if (rq->nfree && vuf_vq_num_free(ep->d, vq) >= nseg)
			break;
		r = vuf_vq_wait(ep->d, vq, time_left(ep->timeout_ms, deadline));
		if (r)
			return r;
	}
	slot = rq->free[--rq->nfree];
	buf = rq->buf + slot * ep->slot_size;
	h->len = len;
	memcpy(buf, h, NK_HDR_LEN);
	if (len)
		memcpy(buf + NK_HDR_LEN, payload, len);
	seg[0] = (struct vuf_seg) {
		.gpa = rq->gpa + slot * ep->slot_size,
		.len = nseg == 2 ? NK_HDR_LEN : NK_HDR_LEN + len,
	};
	seg[1] = (struct vuf_seg) { .gpa = seg[0].gpa + NK_HDR_LEN, .len = len };
	r = vuf_vq_add(ep->d, vq, seg, nseg, buf);
	if (r < 0) {
		rq->free[rq->nfree++] = slot;
		return r;
	}
	vuf_vq_kick(ep->d, vq);
	return 0;
}

/* ---------------------------------------------------------------- */
/* eventq                                                            */
/* ---------------------------------------------------------------- */

static int ev_post(struct nk_ep *ep, unsigned int vq, size_t idx)
{
	struct vuf_seg seg = {
		.gpa = ep->ev_gpa + idx * ep->slot_size,
		.len = NK_HDR_LEN + ep->offered,
		.write = 1,
	};
	int r = vuf_vq_add(ep->d, vq, &seg, 1, ep->ev_buf + idx * ep->slot_size);

	return r < 0 ? r : 0;
}

/*
 * Take the message in eventq buffer @idx (used length @ulen), copy it out
 * and post the buffer again.
 */
static int ev_take(struct nk_ep *ep, unsigned int vq, uint32_t ulen, size_t idx,
		   struct nk_hdr *h, void *buf, size_t bufsz)
{
	const uint8_t *p = ep->ev_buf + idx * ep->slot_size;
	int r, ret;

	/*
	 * What the engine sends obeys the modules' framing and field rules.
	 * Not the op rule of nk_hdr_check(): a test sends any op, and the
	 * engine's error reply carries it back.
	 */
	if (ulen >= NK_HDR_LEN)
		memcpy(h, p, NK_HDR_LEN);
	else
		memset(h, 0, sizeof(*h));
	ret = nk_hdr_check_len(h, ulen, ep->max_payload);
	if (!ret)
		ret = nk_hdr_check_fields(h);
	if (!ret) {
		ret = h->len;
		memcpy(buf, p + NK_HDR_LEN, (size_t)ret < bufsz ? (size_t)ret : bufsz);
	}
	r = ev_post(ep, vq, idx);
	if (r)
		return r;
	vuf_vq_kick(ep->d, vq);
	return ret;
}

/* The next message from any eventq, bypassing the FIFO. */
static int ev_recv(struct nk_ep *ep, struct nk_hdr *h, void *buf, size_t bufsz,
		   int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	unsigned int k;

	for (;;) {
		int r;

		for (k = 0; k < ep->pairs; ) {
			unsigned int p = (ep->rr + k) % ep->pairs;
			uint32_t ulen;
			void *token;
			size_t idx;

			r = vuf_vq_get_used(ep->d, ep->evqs[p], &ulen, &token);
			if (r < 0)
				return r;
			if (!r) {
				k++;
				continue;
			}
			/* Skip the caller's own raw chains. */
			if (!our_buf(ep, ep->ev_buf, (size_t)ep->pairs * ep->nr_bufs, token, &idx))
				continue;
			ep->rr = p + 1;
			r = ev_take(ep, ep->evqs[p], ulen, idx, h, buf, bufsz);
			/* Before HELLO's answer, the device's start: nothing lost. */
			if (r >= 0 && !ep->id && nk_no_session(h))
				continue;
			return r;
		}
		r = vuf_vq_wait_any(ep->d, ep->evqs, ep->pairs, time_left(timeout_ms, deadline));
		if (r)
			return r;
	}
}

int nk_ep_recv(struct nk_ep *ep, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms)
{
	struct nk_msg *m = ep->fifo;

	if (!m)
		return ev_recv(ep, h, buf, bufsz, timeout_ms);
	ep->fifo = m->next;
	if (!ep->fifo)
		ep->fifo_tail = &ep->fifo;
	ep->fifo_len--;
	*h = m->h;
	memcpy(buf, m->payload, h->len < bufsz ? h->len : bufsz);
	free(m);
	return h->len;
}

static int fifo_push(struct nk_ep *ep, const struct nk_hdr *h, const void *payload)
{
	struct nk_msg *m;

	if (ep->fifo_len >= NK_EP_FIFO_MAX)
		return -ENOBUFS;
	m = malloc(sizeof(*m) + h->len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->h = *h;
	memcpy(m->payload, payload, h->len);
	*ep->fifo_tail = m;
	ep->fifo_tail = &m->next;
	ep->fifo_len++;
	return 0;
}

int nk_ep_call(struct nk_ep *ep, struct nk_hdr *req, const void *payload, size_t len,
	       struct nk_hdr *rep, void *rbuf, size_t rbufsz, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int r;

	req->req_id = nk_ep_next_req_id(ep);
	r = nk_ep_send(ep, req, payload, len);
	if (r)
		return r;
	for (;;) {
		r = ev_recv(ep, rep, ep->scratch, ep->offered, time_left(timeout_ms, deadline));
		if (r < 0)
			return r;
		if ((rep->flags & NK_F_REPLY) && rep->req_id == req->req_id) {
			if (rep->op != req->op)
				return -EPROTO;
			memcpy(rbuf, ep->scratch, rep->len < rbufsz ? rep->len : rbufsz);
			return (int32_t)rep->status;
		}
		r = fifo_push(ep, rep, ep->scratch);
		if (r)
			return r;
	}
}

/* ---------------------------------------------------------------- */
/* Open and close                                                    */
/* ---------------------------------------------------------------- */

/* HELLO; the reply is checked by the modules' rules (nk_hello_reply_parse()). */
static int hello(struct nk_ep *ep, enum nk_role role, uint64_t features)
{
	char name[NK_HELLO_REPLY_MAX];
	struct nk_hdr h, rep;
	struct nk_hello hi;
	int r;

	nk_hdr_init(&h, NK_OP_HELLO, 0, 0, 0);
	h.arg[0] = NK_PROTO_VERSION;
	h.arg[1] = features;
	h.arg[2] = ep->offered;
	h.arg[3] = role;
	if (features & NK_FEAT_MQ)
		h.buf_alloc = ep->pairs;
	r = nk_ep_call(ep, &h, NULL, 0, &rep, name, sizeof(name), ep->timeout_ms);
	if (!r)
		r = nk_hello_reply_parse(&rep, name, rep.len < sizeof(name) ? rep.len : sizeof(name),
					 features, ep->offered, &hi);
	if (r)
		return r;
	if (hi.pairs > ep->pairs)
		return -EPROTO;
	/* Messages go on the pairs agreed (the others' buffers stay posted). */
	ep->pairs = hi.pairs;
	ep->max_payload = hi.max_payload;
	ep->id = hi.endpoint_id;
	memcpy(ep->name, hi.name, sizeof(ep->name));
	return 0;
}

static int ep_setup(struct nk_ep *ep, const char *path, const struct nk_ep_opts *o)
{
	struct vuf_opts vo = o->vu;
	unsigned int p, i;
	int r;

	if (!vo.connect_timeout_ms)
		vo.connect_timeout_ms = ep->timeout_ms;
	ep->d = vuf_connect(path, &vo);
	if (!ep->d)
		return -errno;
	ep->pairs = vuf_nr_vqs(ep->d) / 2;
	ep->qsize = vuf_vq_size(ep->d, 0);
	if (!ep->pairs || ep->pairs > NK_MAX_QPAIRS)
		return -EINVAL;
	ep->nr_bufs = o->nr_event_bufs;
	if (!ep->nr_bufs || ep->nr_bufs > ep->qsize)
		ep->nr_bufs = ep->qsize;
	ep->slot_size = NK_EP_ALIGN(NK_HDR_LEN + ep->offered);

	ep->rq = calloc(ep->pairs, sizeof(*ep->rq));
	ep->scratch = malloc(ep->offered);
	if (!ep->rq || !ep->scratch)
		return -ENOMEM;
	ep->ev_buf = vuf_mem_alloc(ep->d, (size_t)ep->pairs * ep->nr_bufs * ep->slot_size,
				   &ep->ev_gpa);
	if (!ep->ev_buf)
		return -ENOMEM;
	for (p = 0; p < ep->pairs; p++) {
		struct nk_rq *rq = &ep->rq[p];

		rq->buf = vuf_mem_alloc(ep->d, ep->qsize * ep->slot_size, &rq->gpa);
		rq->free = malloc(ep->qsize * sizeof(*rq->free));
		if (!rq->buf || !rq->free)
			return -ENOMEM;
		for (i = 0; i < ep->qsize; i++)
			rq->free[rq->nfree++] = ep->qsize - 1 - i;

		ep->evqs[p] = NK_VQ_EVENT(p);
		for (i = 0; i < ep->nr_bufs; i++) {
			r = ev_post(ep, ep->evqs[p], p * ep->nr_bufs + i);
			if (r)
				return r;
		}
		vuf_vq_kick(ep->d, ep->evqs[p]);
	}
	return o->skip_hello ? 0 : hello(ep, o->role, o->features);
}

struct nk_ep *nk_ep_open(const char *path, const struct nk_ep_opts *opts)
{
	struct nk_ep_opts o = opts ? *opts : (struct nk_ep_opts) { 0 };
	struct nk_ep *ep;
	int r;

	if (!o.role)
		o.role = NK_ROLE_GUEST;
	if (!o.max_payload)
		o.max_payload = NK_MAX_PAYLOAD;
	if (!o.features)
		o.features = NK_FEAT_ALL;
	if (!o.timeout_ms)
		o.timeout_ms = NK_EP_DEF_TIMEOUT_MS;
	if (o.max_payload > NK_MAX_PAYLOAD) {
		errno = EINVAL;
		return NULL;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->timeout_ms = o.timeout_ms;
	ep->split_hdr = o.split_hdr;
	ep->offered = ep->max_payload = o.max_payload;
	ep->fifo_tail = &ep->fifo;
	r = ep_setup(ep, path, &o);
	if (r) {
		nk_ep_close(ep);
		errno = -r;
		return NULL;
	}
	return ep;
}

void nk_ep_close(struct nk_ep *ep)
{
	unsigned int p;
	int saved = errno;

	if (!ep)
		return;
	vuf_disconnect(ep->d);
	while (ep->fifo) {
		struct nk_msg *m = ep->fifo;

		ep->fifo = m->next;
		free(m);
	}
	for (p = 0; ep->rq && p < ep->pairs; p++)
		free(ep->rq[p].free);
	free(ep->rq);
	free(ep->scratch);
	free(ep);
	errno = saved;
}
