/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vufront: a vhost-user frontend that plays a VM's nk device.
 *
 * It speaks the vhost-user protocol the way QEMU does (features, a memfd
 * memory table, split virtqueues, kick and call eventfds, GET_CONFIG) and
 * drives the nk protocol as a guest or as an NSM would.  The host engine's
 * tests, its benchmarks and its fuzzing use it as a real peer.
 *
 * Two layers:
 *  - vuf_*: one vhost-user connection, its guest memory and its virtqueues
 *    (driver side), with raw access for building malformed input;
 *  - nk_ep_*: an nk endpoint on top of it (HELLO, posting eventq buffers,
 *    sending messages, receiving replies and events).
 *
 * Threading: a struct vuf_dev and the struct nk_ep on it belong to one
 * thread at a time; different devices are independent.
 */
#ifndef _VUFRONT_H
#define _VUFRONT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "netkernel/nk_proto.h"
#include "nk_msg.h"

/* ---------------------------------------------------------------- */
/* vhost-user connection, memory and virtqueues                      */
/* ---------------------------------------------------------------- */

struct vuf_dev;

struct vuf_opts {
	size_t mem_size;		/* guest memory; default 64 MiB */
	uint64_t gpa_base;		/* guest physical base; default 1 MiB */
	unsigned int qsize;		/* entries per virtqueue; default 256 */
	unsigned int nr_vqs;		/* virtqueues; default 2 (one pair) */
	int connect_timeout_ms;		/* retry while the socket is absent; default 5000 */
};

/*
 * Connect to a vhost-user backend socket and set the device up as QEMU
 * does: GET/SET_FEATURES (VERSION_1 | PROTOCOL_FEATURES),
 * GET/SET_PROTOCOL_FEATURES (CONFIG), SET_OWNER, GET_CONFIG, SET_MEM_TABLE,
 * and for every virtqueue SET_VRING_NUM/ADDR/BASE/KICK/CALL and
 * SET_VRING_ENABLE.  @opts may be NULL.  Returns NULL with errno set.
 */
struct vuf_dev *vuf_connect(const char *path, const struct vuf_opts *opts);

/* Close the connection abruptly (as a dying QEMU does) and free everything. */
void vuf_disconnect(struct vuf_dev *d);

/* The config space read at connect time (8 bytes). */
const struct nk_config *vuf_config(const struct vuf_dev *d);

/*
 * A raw VHOST_USER_GET_CONFIG with any offset and size (size <= 256).
 * Returns the number of bytes the backend returned, or -errno.
 */
int vuf_get_config(struct vuf_dev *d, uint32_t offset, void *buf, uint32_t size);

/*
 * A second VHOST_USER_SET_MEM_TABLE mid-run, as a frontend whose guest
 * memory grew by @extra bytes (the region's file is extended; what this
 * side uses does not move): the backend maps the table again.  0 or
 * -errno (-EIO: the backend refused it).
 */
int vuf_mem_grow(struct vuf_dev *d, size_t extra);

/* Allocate from guest memory (bump allocator, 64-byte aligned, never freed). */
void *vuf_mem_alloc(struct vuf_dev *d, size_t len, uint64_t *gpa);
/* Translate a guest physical range; NULL if outside guest memory. */
void *vuf_gpa_to_va(struct vuf_dev *d, uint64_t gpa, size_t len);
uint64_t vuf_mem_base(const struct vuf_dev *d);
size_t vuf_mem_size(const struct vuf_dev *d);

struct vuf_seg {
	uint64_t gpa;
	uint32_t len;
	int write;			/* device-writable */
};

/*
 * Build a chain from @segs on free descriptors and publish it in the avail
 * ring; @token comes back from vuf_vq_get_used().  Returns the head index,
 * or -ENOSPC when there are not enough free descriptors.  Does not kick.
 */
int vuf_vq_add(struct vuf_dev *d, unsigned int vq, const struct vuf_seg *segs,
	       unsigned int n, void *token);

/*
 * Raw access for malformed input: take a free descriptor (removed from the
 * free list, returned by vuf_vq_get_used when the device uses the chain
 * headed by it, together with the raw descriptors its ring chain reaches
 * from there), write any fields into it, publish any head.
 */
int vuf_vq_desc_alloc(struct vuf_dev *d, unsigned int vq);
struct vring_desc *vuf_vq_desc(struct vuf_dev *d, unsigned int vq, uint16_t idx);
void vuf_vq_publish(struct vuf_dev *d, unsigned int vq, uint16_t head, void *token);
/* Make avail->idx any value (ring corruption tests). */
void vuf_vq_set_avail_idx(struct vuf_dev *d, unsigned int vq, uint16_t idx);

/* Notify the device (write the kick eventfd) unless it set VRING_USED_F_NO_NOTIFY. */
void vuf_vq_kick(struct vuf_dev *d, unsigned int vq);
/* How many times vuf_vq_kick() notified the device on @vq (any thread). */
uint64_t vuf_vq_kicks(struct vuf_dev *d, unsigned int vq);

/*
 * Raw rings, for a caller that drives a virtqueue itself with no per-call
 * bookkeeping (the benchmarks: fixed descriptor chains recycled in place,
 * one avail index store per batch).  vuf_vq_take() takes the used
 * elements already there (freeing their chains), then hands the virtqueue
 * over: from then on the caller owns its descriptor table and both rings,
 * and every other vuf_vq_* call on it fails (-EINVAL) or does nothing.
 * Chains still held by the device come back on the used ring, to the
 * caller.  A struct vuf_ring may also describe rings in plain memory, with
 * descriptor addresses the caller's own and kick_fd -1.
 */
struct vuf_ring {
	struct vring vr;		/* num, desc, avail, used */
	uint16_t avail_idx;		/* next avail index to publish */
	uint16_t last_used;		/* next used element to take */
	int kick_fd;			/* -1: never kicked */
};

/* Hand @vq over to the caller, its state in @r: 0 or -EINVAL. */
int vuf_vq_take(struct vuf_dev *d, unsigned int vq, struct vuf_ring *r);

/* Make the avail entries written up to r->avail_idx visible (release). */
static inline void vuf_ring_publish(struct vuf_ring *r)
{
	__atomic_store_n(&r->vr.avail->idx, r->avail_idx, __ATOMIC_RELEASE);
}

/* The device's used index (acquire: the elements before it are readable). */
static inline uint16_t vuf_ring_used_idx(const struct vuf_ring *r)
{
	return __atomic_load_n(&r->vr.used->idx, __ATOMIC_ACQUIRE);
}

/*
 * After publishing: a full fence, then a kick unless the device set
 * VRING_USED_F_NO_NOTIFY or kick_fd is -1 (what vuf_vq_kick does).
 */
void vuf_ring_kick(const struct vuf_ring *r);

/*
 * Take one used element: returns 1 and fills @len and @token, 0 if none.
 * The chain's descriptors go back to the free list.  -EPROTO, without
 * consuming it, when the element names no head we published (a backend
 * bug).  A head published n times comes back n times.
 */
int vuf_vq_get_used(struct vuf_dev *d, unsigned int vq, uint32_t *len, void **token);

/*
 * Wait until @vq has a used element: 0, -ETIMEDOUT, -EINTR (a signal), or
 * -ECONNRESET when the backend closed the connection.  @timeout_ms < 0
 * waits forever.
 */
int vuf_vq_wait(struct vuf_dev *d, unsigned int vq, int timeout_ms);
/* The same for whichever of @n virtqueues @vqs gets a used element first. */
int vuf_vq_wait_any(struct vuf_dev *d, const unsigned int *vqs, unsigned int n,
		    int timeout_ms);

/*
 * Set or clear VRING_AVAIL_F_NO_INTERRUPT (interrupts are on by default);
 * without interrupts vuf_vq_wait polls the used ring every millisecond.
 */
void vuf_vq_set_interrupts(struct vuf_dev *d, unsigned int vq, int enable);

unsigned int vuf_vq_num_free(const struct vuf_dev *d, unsigned int vq);
unsigned int vuf_vq_size(const struct vuf_dev *d, unsigned int vq);
unsigned int vuf_nr_vqs(const struct vuf_dev *d);
/* The call eventfd of @vq, for poll(); vuf_vq_wait() drains it. */
int vuf_vq_call_fd(const struct vuf_dev *d, unsigned int vq);
/* Interrupts the backend sent on @vq so far (its call eventfd, read). */
uint64_t vuf_vq_calls(struct vuf_dev *d, unsigned int vq);

/* ---------------------------------------------------------------- */
/* nk endpoint                                                       */
/* ---------------------------------------------------------------- */

struct nk_ep;

struct nk_ep_opts {
	enum nk_role role;		/* default NK_ROLE_GUEST */
	uint32_t max_payload;		/* offered in HELLO; default NK_MAX_PAYLOAD */
	unsigned int nr_event_bufs;	/* eventq buffers kept posted; default qsize */
	uint64_t features;		/* offered in HELLO; default NK_FEAT_ALL */
	int timeout_ms;			/* for connect and HELLO; default 5000 */
	int skip_hello;			/* connect and post buffers only */
	int split_hdr;			/* requestq: header, payload in 2 descriptors */
	struct vuf_opts vu;
};

/*
 * Connect, post eventq buffers of sizeof(struct nk_hdr) + max_payload, and
 * (unless skip_hello) exchange HELLO.  Returns NULL with errno set; a HELLO
 * refused by the engine sets errno to the negated reply status.  Chains the
 * caller publishes on the endpoint's queues with the raw vuf_vq_* calls
 * mix with the endpoint's own: when the device returns them, nk_ep_send
 * and nk_ep_recv take them off the used ring and ignore them.
 */
struct nk_ep *nk_ep_open(const char *path, const struct nk_ep_opts *opts);

/* Disconnect abruptly and free. */
void nk_ep_close(struct nk_ep *ep);

struct vuf_dev *nk_ep_dev(struct nk_ep *ep);
uint32_t nk_ep_id(const struct nk_ep *ep);		/* from the HELLO reply */
const char *nk_ep_name(const struct nk_ep *ep);	/* from the HELLO reply */
uint32_t nk_ep_max_payload(const struct nk_ep *ep);	/* agreed in HELLO */

/* A fresh request id, unique on this endpoint. */
uint64_t nk_ep_next_req_id(struct nk_ep *ep);

/*
 * Send one message on the requestq of pair h->sock % pairs (pair 0 with a
 * single pair, as protocol.rst routes it): @h (h->len is set to @len) then
 * @payload.  -EMSGSIZE when @len exceeds the max_payload agreed (before
 * HELLO: offered).  Reclaims used requestq buffers, waits up to the
 * endpoint's timeout for free descriptors, kicks.  0 or -errno.
 */
int nk_ep_send(struct nk_ep *ep, struct nk_hdr *h, const void *payload, size_t len);

/*
 * Receive the next message from the eventqs (messages set aside by
 * nk_ep_call first).  Copies at most @bufsz payload bytes into @buf and
 * returns the payload length (which may exceed @bufsz), or -ETIMEDOUT.
 * The eventq buffer is posted again.  @timeout_ms 0 polls once, < 0 waits
 * forever.  When the engine wrote a message the modules would refuse for
 * its framing or fields, the error of nk_hdr_check_len() or
 * nk_hdr_check_fields() (-EBADMSG, -EMSGSIZE: used length not 64 +
 * hdr.len or over max_payload; -EINVAL: flags, status).  -ECONNRESET when
 * the engine closed the connection, -EINTR on a signal.
 */
int nk_ep_recv(struct nk_ep *ep, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms);

/*
 * Send request @req (req_id assigned here) and wait for the reply with its
 * req_id; other messages that arrive meanwhile are set aside for
 * nk_ep_recv().  Returns the reply's status (0 or -errno) with the reply
 * in @rep and its payload in @rbuf, or -ETIMEDOUT.
 */
int nk_ep_call(struct nk_ep *ep, struct nk_hdr *req, const void *payload, size_t len,
	       struct nk_hdr *rep, void *rbuf, size_t rbufsz, int timeout_ms);

/* Helpers */
/* @h: the reply to @req (its op, sock and req_id, NK_F_REPLY) with @status. */
void nk_hdr_reply(struct nk_hdr *h, const struct nk_hdr *req, int status);
/*
 * Whether @h is EV_PROTO_ERROR NK_PERR_NO_SESSION, which the engine puts
 * first on a device's eventq when the device starts: a driver that has
 * not had its HELLO answered drops it; one in a session has lost it.
 */
static inline bool nk_no_session(const struct nk_hdr *h)
{
	return h->op == NK_EV_PROTO_ERROR && h->arg[0] == NK_PERR_NO_SESSION;
}
/* "1.2.3.4" or "fd00::1" and a port (host order) into an nk_addr: 0 or -EINVAL. */
int nk_addr_parse(struct nk_addr *a, const char *ip, uint16_t port);

#endif /* _VUFRONT_H */
