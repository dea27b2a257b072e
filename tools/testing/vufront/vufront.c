// SPDX-License-Identifier: GPL-2.0
/*
 * vufront: the vhost-user frontend (the part QEMU plays) and the driver
 * side of split virtqueues in memfd-backed guest memory.
 *
 * Threading: a struct vuf_dev is used by one thread at a time and takes no
 * locks.  The backend works on the shared memory concurrently: it reads
 * descriptors and avail rings and writes used rings and used->flags.  The
 * avail index is published with release ordering, the used index read with
 * acquire ordering, and a full fence separates publishing avail->idx from
 * reading VRING_USED_F_NO_NOTIFY, as the virtio specification asks.  Each
 * used element is read once into local variables before it is checked.
 *
 * Bookkeeping never trusts the shared rings: the free list and the
 * descriptors of each chain are kept in a private array (struct vuf_slot),
 * so a test that scribbles over descriptors, or a backend that returns
 * bogus used elements, cannot corrupt it.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/virtio_config.h>

#include "vufront.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "rings and nk headers are written in host order: little endian only");

#define VUF_DEF_MEM_SIZE	(64UL << 20)
#define VUF_DEF_GPA_BASE	(1ULL << 20)
#define VUF_DEF_QSIZE		256
#define VUF_DEF_NR_VQS		2
#define VUF_DEF_TIMEOUT_MS	5000
#define VUF_MAX_VQS		(2 * NK_MAX_QPAIRS)
#define VUF_MAX_QSIZE		32768
#define VUF_ALIGN		64
#define VUF_REPLY_TIMEOUT_MS	10000	/* a backend that never answers */
#define VUF_RETRY_NS		20000000L

/* vhost-user, as in QEMU's docs/interop/vhost-user.rst */
#define VU_VERSION		0x1
#define VU_VERSION_MASK		0x3
#define VU_FLAG_REPLY		0x4
#define VU_FLAG_NEED_REPLY	0x8
#define VU_HDR_SIZE		12
#define VU_MAX_CONFIG		256

#define VHOST_USER_F_PROTOCOL_FEATURES	30
#define VU_PROTO_F_MQ		0
#define VU_PROTO_F_REPLY_ACK	3
#define VU_PROTO_F_CONFIG	9

enum vu_request {
	VU_GET_FEATURES			= 1,
	VU_SET_FEATURES			= 2,
	VU_SET_OWNER			= 3,
	VU_SET_MEM_TABLE		= 5,
	VU_SET_VRING_NUM		= 8,
	VU_SET_VRING_ADDR		= 9,
	VU_SET_VRING_BASE		= 10,
	VU_SET_VRING_KICK		= 12,
	VU_SET_VRING_CALL		= 13,
	VU_GET_PROTOCOL_FEATURES	= 15,
	VU_SET_PROTOCOL_FEATURES	= 16,
	VU_GET_QUEUE_NUM		= 17,
	VU_SET_VRING_ENABLE		= 18,
	VU_GET_CONFIG			= 24,
};

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;		/* frontend user addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region region[1];	/* we send exactly one */
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VU_MAX_CONFIG];
};

#define VU_CONFIG_HDR_SIZE	offsetof(struct vu_config, region)

struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;		/* payload bytes */
	union {
		uint64_t u64;
		struct vu_vring_state state;
		struct vu_vring_addr addr;
		struct vu_mem_table mem;
		struct vu_config cfg;
	} p;
} __attribute__((packed));

_Static_assert(offsetof(struct vu_msg, p) == VU_HDR_SIZE, "vhost-user header");

/* Private state of one descriptor. */
enum vuf_slot_state {
	SLOT_FREE,		/* on the free list */
	SLOT_RAW,		/* taken by vuf_vq_desc_alloc, not published */
	SLOT_HEAD,		/* heads a chain we published */
	SLOT_MEMBER,		/* in a chain built by vuf_vq_add, not its head */
};

#define SLOT_END	0xffff	/* end of the free list or of a chain */

struct vuf_slot {
	void *token;
	uint16_t next;		/* free list, or the chain as vuf_vq_add built it */
	uint16_t pubs;		/* times published as a head and not yet used */
	uint8_t state;		/* enum vuf_slot_state */
	bool raw;		/* head from vuf_vq_desc_alloc: chain follows the ring */
};

struct vuf_vq {
	unsigned int size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	int kick_fd;
	int call_fd;
	uint64_t calls;			/* interrupts read from call_fd */
	uint16_t avail_idx;	/* next index to publish */
	uint16_t last_used;	/* next used element to take */
	uint16_t free_head;
	unsigned int num_free;
	bool no_interrupt;
	bool taken;		/* handed over by vuf_vq_take */
	uint64_t kicks;		/* eventfd writes by vuf_vq_kick() */
	struct vuf_slot *slot;
};

struct vuf_dev {
	int sock;
	bool reply_ack;
	int mem_fd;
	uint8_t *mem;
	size_t mem_size;
	size_t mem_used;
	uint64_t gpa_base;
	struct nk_config config;
	unsigned int nr_vqs;
	struct vuf_vq *vq;
};

static struct vuf_vq *vq_of(const struct vuf_dev *d, unsigned int vq)
{
	return vq < d->nr_vqs && !d->vq[vq].taken ? &d->vq[vq] : NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- */
/* vhost-user messages                                               */
/* ---------------------------------------------------------------- */

static int sock_errno(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
}

/* Send @m with at most one file descriptor (-1: none). */
static int vu_send(struct vuf_dev *d, struct vu_msg *m, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = VU_HDR_SIZE + m->size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (iov.iov_len) {
		ssize_t n = sendmsg(d->sock, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sock_errno();
		}
		iov.iov_base = (uint8_t *)iov.iov_base + n;
		iov.iov_len -= n;
		mh.msg_control = NULL;		/* the fd went with the first byte */
		mh.msg_controllen = 0;
	}
	return 0;
}

static int sock_recv_all(int sock, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(sock, p, len, 0);

		if (!n)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sock_errno();
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Read the reply to @request into @m. */
static int vu_recv(struct vuf_dev *d, struct vu_msg *m, uint32_t request)
{
	int r = sock_recv_all(d->sock, m, VU_HDR_SIZE);

	if (r)
		return r;
	if (m->size > sizeof(m->p))
		return -EPROTO;
	r = sock_recv_all(d->sock, &m->p, m->size);
	if (r)
		return r;
	if (m->request != request ||
	    (m->flags & (VU_FLAG_REPLY | VU_VERSION_MASK)) != (VU_FLAG_REPLY | VU_VERSION))
		return -EPROTO;
	return 0;
}

static bool vu_has_reply(uint32_t request)
{
	return request == VU_GET_FEATURES || request == VU_GET_PROTOCOL_FEATURES ||
	       request == VU_GET_QUEUE_NUM || request == VU_GET_CONFIG;
}

/*
 * Send @m (request and size filled in), with @fd attached unless -1.  A
 * GET_* request's reply comes back in @m.  Other requests wait for the
 * backend's acknowledgement when REPLY_ACK was negotiated: -EIO if it
 * reports a failure.
 */
static int vu_request(struct vuf_dev *d, struct vu_msg *m, int fd)
{
	uint32_t request = m->request;
	bool get = vu_has_reply(request);
	int r;

	m->flags = VU_VERSION;
	if (!get && d->reply_ack)
		m->flags |= VU_FLAG_NEED_REPLY;
	r = vu_send(d, m, fd);
	if (r || (!get && !d->reply_ack))
		return r;
	r = vu_recv(d, m, request);
	if (r || get)
		return r;
	if (m->size != sizeof(m->p.u64))
		return -EPROTO;
	return m->p.u64 ? -EIO : 0;
}

static int vu_get_u64(struct vuf_dev *d, uint32_t request, uint64_t *val)
{
	struct vu_msg m = { .request = request };
	int r = vu_request(d, &m, -1);

	if (r)
		return r;
	if (m.size != sizeof(m.p.u64))
		return -EPROTO;
	*val = m.p.u64;
	return 0;
}

/* A request with a u64 payload (a feature mask, or a vring index and @fd). */
static int vu_set_u64(struct vuf_dev *d, uint32_t request, uint64_t val, int fd)
{
	struct vu_msg m = { .request = request, .size = sizeof(m.p.u64), .p.u64 = val };

	return vu_request(d, &m, fd);
}

static int vu_set_state(struct vuf_dev *d, uint32_t request, uint32_t index, uint32_t num)
{
	struct vu_msg m = {
		.request = request,
		.size = sizeof(m.p.state),
		.p.state = { .index = index, .num = num },
	};

	return vu_request(d, &m, -1);
}

int vuf_get_config(struct vuf_dev *d, uint32_t offset, void *buf, uint32_t size)
{
	struct vu_msg m = {
		.request = VU_GET_CONFIG,
		.size = VU_CONFIG_HDR_SIZE + size,
		.p.cfg = { .offset = offset, .size = size },
	};
	uint32_t n;
	int r;

	if (size > VU_MAX_CONFIG)
		return -EINVAL;
	r = vu_request(d, &m, -1);
	if (r)
		return r;
	if (m.size < VU_CONFIG_HDR_SIZE || m.p.cfg.size > m.size - VU_CONFIG_HDR_SIZE)
		return -EPROTO;
	n = m.p.cfg.size;
	memcpy(buf, m.p.cfg.region, n < size ? n : size);
	return n;
}

/* ---------------------------------------------------------------- */
/* Guest memory                                                      */
/* ---------------------------------------------------------------- */

void *vuf_mem_alloc(struct vuf_dev *d, size_t len, uint64_t *gpa)
{
	size_t off = (d->mem_used + VUF_ALIGN - 1) & ~(size_t)(VUF_ALIGN - 1);

	if (off > d->mem_size || len > d->mem_size - off) {
		errno = ENOMEM;
		return NULL;
	}
	d->mem_used = off + len;
	if (gpa)
		*gpa = d->gpa_base + off;
	return d->mem + off;
}

void *vuf_gpa_to_va(struct vuf_dev *d, uint64_t gpa, size_t len)
{
	if (gpa < d->gpa_base || gpa - d->gpa_base > d->mem_size ||
	    len > d->mem_size - (gpa - d->gpa_base))
		return NULL;
	return d->mem + (gpa - d->gpa_base);
}

uint64_t vuf_mem_base(const struct vuf_dev *d)
{
	return d->gpa_base;
}

size_t vuf_mem_size(const struct vuf_dev *d)
{
	return d->mem_size;
}

static int mem_setup(struct vuf_dev *d)
{
	struct vu_msg m = {
		.request = VU_SET_MEM_TABLE,
		.size = sizeof(m.p.mem),
	};
	void *p;

	d->mem_fd = memfd_create("vufront-guest", MFD_CLOEXEC);
	if (d->mem_fd < 0)
		return -errno;
	if (ftruncate(d->mem_fd, d->mem_size))
		return -errno;
	p = mmap(NULL, d->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, d->mem_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	d->mem = p;
	m.p.mem.nregions = 1;
	m.p.mem.region[0] = (struct vu_region) {
		.gpa = d->gpa_base,
		.size = d->mem_size,
		.uaddr = (uintptr_t)d->mem,
		.mmap_offset = 0,
	};
	return vu_request(d, &m, d->mem_fd);
}

int vuf_mem_grow(struct vuf_dev *d, size_t extra)
{
	struct vu_msg m = {
		.request = VU_SET_MEM_TABLE,
		.size = sizeof(m.p.mem),
	};
	struct stat st;

	if (fstat(d->mem_fd, &st) || ftruncate(d->mem_fd, st.st_size + extra))
		return -errno;
	m.p.mem.nregions = 1;
	m.p.mem.region[0] = (struct vu_region) {
		.gpa = d->gpa_base,
		.size = st.st_size + extra,
		.uaddr = (uintptr_t)d->mem,
		.mmap_offset = 0,
	};
	return vu_request(d, &m, d->mem_fd);
}

/* ---------------------------------------------------------------- */
/* Virtqueues                                                        */
/* ---------------------------------------------------------------- */

static int vq_setup(struct vuf_dev *d, unsigned int i)
{
	struct vuf_vq *q = &d->vq[i];
	unsigned int k;
	struct vu_msg m = {
		.request = VU_SET_VRING_ADDR,
		.size = sizeof(m.p.addr),
	};
	int r;

	q->slot = calloc(q->size, sizeof(*q->slot));
	if (!q->slot)
		return -ENOMEM;
	for (k = 0; k < q->size; k++)
		q->slot[k].next = k + 1 < q->size ? k + 1 : SLOT_END;
	q->num_free = q->size;
	q->desc = vuf_mem_alloc(d, sizeof(*q->desc) * q->size, NULL);
	/* flags, idx, ring[size], used_event */
	q->avail = vuf_mem_alloc(d, sizeof(uint16_t) * (3 + q->size), NULL);
	/* flags, idx, ring[size], avail_event */
	q->used = vuf_mem_alloc(d, sizeof(uint16_t) * 3 + sizeof(struct vring_used_elem) * q->size,
				NULL);
	if (!q->desc || !q->avail || !q->used)
		return -ENOMEM;
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0)
		return -errno;
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->call_fd < 0)
		return -errno;

	r = vu_set_state(d, VU_SET_VRING_NUM, i, q->size);
	if (r)
		return r;
	r = vu_set_state(d, VU_SET_VRING_BASE, i, 0);
	if (r)
		return r;
	m.p.addr = (struct vu_vring_addr) {
		.index = i,
		.desc = (uintptr_t)q->desc,
		.used = (uintptr_t)q->used,
		.avail = (uintptr_t)q->avail,
	};
	r = vu_request(d, &m, -1);
	if (r)
		return r;
	r = vu_set_u64(d, VU_SET_VRING_KICK, i, q->kick_fd);
	if (r)
		return r;
	return vu_set_u64(d, VU_SET_VRING_CALL, i, q->call_fd);
}

/* Put one descriptor back on the free list. */
static void vq_put(struct vuf_vq *q, uint16_t i)
{
	struct vuf_slot *s = &q->slot[i];

	s->state = SLOT_FREE;
	s->raw = false;
	s->token = NULL;
	s->next = q->free_head;
	q->free_head = i;
	q->num_free++;
}

/*
 * Free the chain headed by @head.  A chain built by vuf_vq_add follows its
 * private links.  A raw head also frees the raw descriptors its ring chain
 * reaches: each is freed once, so a looping chain ends.
 */
static void vq_free_chain(struct vuf_vq *q, uint16_t head)
{
	uint16_t i = head, next;
	bool raw = q->slot[head].raw;

	for (;;) {
		next = q->slot[i].next;
		if (raw) {
			uint16_t f = q->desc[i].flags, n = q->desc[i].next;

			next = (f & VRING_DESC_F_NEXT) && n < q->size &&
			       q->slot[n].state == SLOT_RAW ? n : SLOT_END;
		}
		vq_put(q, i);
		if (next == SLOT_END)
			return;
		i = next;
	}
}

static void vq_publish(struct vuf_vq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	if (head < q->size)
		q->slot[head].pubs++;
	q->avail_idx++;
	__atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
}

int vuf_vq_add(struct vuf_dev *d, unsigned int vq, const struct vuf_seg *segs,
	       unsigned int n, void *token)
{
	struct vuf_vq *q = vq_of(d, vq);
	uint16_t head, i, last = SLOT_END;
	unsigned int k;

	if (!q || !n)
		return -EINVAL;
	if (n > q->num_free)
		return -ENOSPC;
	head = i = q->free_head;
	for (k = 0; k < n; k++) {
		struct vring_desc *desc = &q->desc[i];

		q->slot[i].state = k ? SLOT_MEMBER : SLOT_HEAD;
		last = i;
		i = q->slot[i].next;
		desc->addr = segs[k].gpa;
		desc->len = segs[k].len;
		desc->flags = (segs[k].write ? VRING_DESC_F_WRITE : 0) |
			      (k + 1 < n ? VRING_DESC_F_NEXT : 0);
		desc->next = k + 1 < n ? i : 0;
	}
	q->slot[last].next = SLOT_END;
	q->free_head = i;
	q->num_free -= n;
	q->slot[head].token = token;
	vq_publish(q, head);
	return head;
}

int vuf_vq_desc_alloc(struct vuf_dev *d, unsigned int vq)
{
	struct vuf_vq *q = vq_of(d, vq);
	uint16_t i;

	if (!q)
		return -EINVAL;
	if (!q->num_free)
		return -ENOSPC;
	i = q->free_head;
	q->free_head = q->slot[i].next;
	q->num_free--;
	q->slot[i].state = SLOT_RAW;
	q->slot[i].next = SLOT_END;
	memset(&q->desc[i], 0, sizeof(q->desc[i]));
	return i;
}

struct vring_desc *vuf_vq_desc(struct vuf_dev *d, unsigned int vq, uint16_t idx)
{
	struct vuf_vq *q = vq_of(d, vq);

	return q && idx < q->size ? &q->desc[idx] : NULL;
}

void vuf_vq_publish(struct vuf_dev *d, unsigned int vq, uint16_t head, void *token)
{
	struct vuf_vq *q = vq_of(d, vq);

	if (!q)
		return;
	if (head < q->size && q->slot[head].state == SLOT_RAW) {
		q->slot[head].state = SLOT_HEAD;
		q->slot[head].raw = true;
		q->slot[head].token = token;
	}
	vq_publish(q, head);
}

void vuf_vq_set_avail_idx(struct vuf_dev *d, unsigned int vq, uint16_t idx)
{
	struct vuf_vq *q = vq_of(d, vq);

	if (!q)
		return;
	q->avail_idx = idx;
	__atomic_store_n(&q->avail->idx, idx, __ATOMIC_RELEASE);
}

/* Returns whether the device was notified. */
static bool kick(int fd, const struct vring_used *used)
{
	uint64_t one = 1;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (fd < 0 || (__atomic_load_n(&used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY))
		return false;
	/*
	 * A non-blocking eventfd write fails only when the counter would
	 * overflow, and then a kick is pending anyway.
	 */
	if (write(fd, &one, sizeof(one)) < 0)
		assert(errno == EAGAIN);
	return true;
}

void vuf_vq_kick(struct vuf_dev *d, unsigned int vq)
{
	struct vuf_vq *q = vq_of(d, vq);

	if (q && kick(q->kick_fd, q->used))
		__atomic_add_fetch(&q->kicks, 1, __ATOMIC_RELAXED);
}

uint64_t vuf_vq_kicks(struct vuf_dev *d, unsigned int vq)
{
	return vq < d->nr_vqs ? __atomic_load_n(&d->vq[vq].kicks, __ATOMIC_RELAXED) : 0;
}

void vuf_ring_kick(const struct vuf_ring *r)
{
	kick(r->kick_fd, r->vr.used);
}

int vuf_vq_take(struct vuf_dev *d, unsigned int vq, struct vuf_ring *r)
{
	struct vuf_vq *q = vq_of(d, vq);

	if (!q)
		return -EINVAL;
	while (vuf_vq_get_used(d, vq, NULL, NULL) > 0)
		;
	q->taken = true;
	*r = (struct vuf_ring) {
		.vr = { .num = q->size, .desc = q->desc, .avail = q->avail, .used = q->used },
		.avail_idx = q->avail_idx,
		.last_used = q->last_used,
		.kick_fd = q->kick_fd,
	};
	return 0;
}

void vuf_vq_set_interrupts(struct vuf_dev *d, unsigned int vq, int enable)
{
	struct vuf_vq *q = vq_of(d, vq);

	if (!q)
		return;
	q->no_interrupt = !enable;
	__atomic_store_n(&q->avail->flags, enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT,
			 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * A used element the device returns must be a head we published: anything
 * else (an index out of range, a used index running more than a ring ahead)
 * is a backend bug and gets -EPROTO, without consuming the element.
 */
int vuf_vq_get_used(struct vuf_dev *d, unsigned int vq, uint32_t *len, void **token)
{
	struct vuf_vq *q = vq_of(d, vq);
	struct vring_used_elem *e;
	struct vuf_slot *s;
	uint16_t used_idx;
	uint32_t id, l;

	if (!q)
		return -EINVAL;
	used_idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	if (used_idx == q->last_used)
		return 0;
	if ((uint16_t)(used_idx - q->last_used) > q->size)
		return -EPROTO;
	e = &q->used->ring[q->last_used & (q->size - 1)];
	id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
	l = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	if (id >= q->size || !q->slot[id].pubs)
		return -EPROTO;
	q->last_used++;
	s = &q->slot[id];
	s->pubs--;
	if (len)
		*len = l;
	if (token)
		*token = s->state == SLOT_HEAD ? s->token : NULL;
	if (s->state == SLOT_HEAD && !s->pubs)
		vq_free_chain(q, id);
	return 1;
}

static bool vq_used_pending(const struct vuf_vq *q)
{
	return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) != q->last_used;
}

int vuf_vq_wait_any(struct vuf_dev *d, const unsigned int *vqs, unsigned int n,
		    int timeout_ms)
{
	struct pollfd pfd[VUF_MAX_VQS + 1];
	int64_t deadline = now_ms() + timeout_ms;
	bool slice = false;
	unsigned int i;

	if (!n || n > VUF_MAX_VQS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct vuf_vq *q = vq_of(d, vqs[i]);

		if (!q)
			return -EINVAL;
		pfd[i] = (struct pollfd) { .fd = q->call_fd, .events = POLLIN };
		slice |= q->no_interrupt;
	}
	/* The backend never writes to us unasked: readable means closed. */
	pfd[n] = (struct pollfd) { .fd = d->sock, .events = POLLIN | POLLRDHUP };

	for (;;) {
		int64_t left = timeout_ms < 0 ? -1 : deadline - now_ms();
		int r;

		for (i = 0; i < n; i++)
			if (vq_used_pending(&d->vq[vqs[i]]))
				return 0;
		if (timeout_ms >= 0 && left <= 0)
			return -ETIMEDOUT;
		/* Without interrupts the used rings are polled every millisecond. */
		if (slice && (left < 0 || left > 1))
			left = 1;
		r = poll(pfd, n + 1, left);
		if (r < 0)
			return -errno;
		if (pfd[n].revents)
			return -ECONNRESET;
		for (i = 0; i < n; i++) {
			uint64_t cnt;

			if (!(pfd[i].revents & POLLIN))
				continue;
			if (read(pfd[i].fd, &cnt, sizeof(cnt)) == sizeof(cnt))
				d->vq[vqs[i]].calls += cnt;
			else if (errno != EAGAIN)
				return -errno;
		}
	}
}

int vuf_vq_wait(struct vuf_dev *d, unsigned int vq, int timeout_ms)
{
	return vuf_vq_wait_any(d, &vq, 1, timeout_ms);
}

unsigned int vuf_vq_num_free(const struct vuf_dev *d, unsigned int vq)
{
	const struct vuf_vq *q = vq_of(d, vq);

	return q ? q->num_free : 0;
}

unsigned int vuf_vq_size(const struct vuf_dev *d, unsigned int vq)
{
	const struct vuf_vq *q = vq_of(d, vq);

	return q ? q->size : 0;
}

uint64_t vuf_vq_calls(struct vuf_dev *d, unsigned int vq)
{
	struct vuf_vq *q = vq_of(d, vq);
	uint64_t cnt;

	if (!q)
		return 0;
	if (read(q->call_fd, &cnt, sizeof(cnt)) == sizeof(cnt))
		q->calls += cnt;
	return q->calls;
}

int vuf_vq_call_fd(const struct vuf_dev *d, unsigned int vq)
{
	const struct vuf_vq *q = vq_of(d, vq);

	return q ? q->call_fd : -EINVAL;
}

unsigned int vuf_nr_vqs(const struct vuf_dev *d)
{
	return d->nr_vqs;
}

/* ---------------------------------------------------------------- */
/* Connection                                                        */
/* ---------------------------------------------------------------- */

/* Connect, retrying while the socket is absent or nobody listens yet. */
static int vu_connect(const char *path, int timeout_ms)
{
	const struct timespec pause = { .tv_nsec = VUF_RETRY_NS };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + timeout_ms;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		err = errno;
		close(fd);
		if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN) ||
		    now_ms() >= deadline)
			return -err;
		nanosleep(&pause, NULL);
	}
}

static int set_timeouts(int sock, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

/* Feature negotiation, as QEMU's vhost_user_backend_init and vhost_dev_start do. */
static int negotiate(struct vuf_dev *d)
{
	const uint64_t want = (1ULL << VIRTIO_F_VERSION_1) |
			      (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t features, proto, queues;
	int r;

	r = vu_get_u64(d, VU_GET_FEATURES, &features);
	if (r)
		return r;
	if ((features & want) != want)
		return -EPROTONOSUPPORT;
	r = vu_get_u64(d, VU_GET_PROTOCOL_FEATURES, &proto);
	if (r)
		return r;
	if (!(proto & (1ULL << VU_PROTO_F_CONFIG)))
		return -EPROTONOSUPPORT;
	proto &= (1ULL << VU_PROTO_F_CONFIG) | (1ULL << VU_PROTO_F_REPLY_ACK) |
		 (1ULL << VU_PROTO_F_MQ);
	r = vu_set_u64(d, VU_SET_PROTOCOL_FEATURES, proto, -1);
	if (r)
		return r;
	d->reply_ack = proto & (1ULL << VU_PROTO_F_REPLY_ACK);
	if (proto & (1ULL << VU_PROTO_F_MQ)) {
		r = vu_get_u64(d, VU_GET_QUEUE_NUM, &queues);
		if (r)
			return r;
		if (queues < (d->nr_vqs + 1) / 2)
			return -EINVAL;
	}
	r = vu_set_u64(d, VU_SET_OWNER, 0, -1);
	if (r)
		return r;
	r = vuf_get_config(d, 0, &d->config, sizeof(d->config));
	if (r < 0)
		return r;
	if ((size_t)r < sizeof(d->config))
		return -EPROTO;
	return vu_set_u64(d, VU_SET_FEATURES, want, -1);
}

static int dev_setup(struct vuf_dev *d, const char *path, int timeout_ms)
{
	unsigned int i;
	int r;

	d->sock = vu_connect(path, timeout_ms);
	if (d->sock < 0)
		return d->sock;
	r = set_timeouts(d->sock, VUF_REPLY_TIMEOUT_MS);
	if (r)
		return r;
	r = negotiate(d);
	if (r)
		return r;
	r = mem_setup(d);
	if (r)
		return r;
	for (i = 0; i < d->nr_vqs; i++) {
		r = vq_setup(d, i);
		if (r)
			return r;
	}
	/* Enable last, as QEMU does: rte_vhost starts the device on the last. */
	for (i = 0; i < d->nr_vqs; i++) {
		r = vu_set_state(d, VU_SET_VRING_ENABLE, i, 1);
		if (r)
			return r;
	}
	return 0;
}

struct vuf_dev *vuf_connect(const char *path, const struct vuf_opts *opts)
{
	struct vuf_opts o = opts ? *opts : (struct vuf_opts) { 0 };
	long page = sysconf(_SC_PAGESIZE);
	struct vuf_dev *d;
	unsigned int i;
	int r;

	if (!o.mem_size)
		o.mem_size = VUF_DEF_MEM_SIZE;
	if (!o.gpa_base)
		o.gpa_base = VUF_DEF_GPA_BASE;
	if (!o.qsize)
		o.qsize = VUF_DEF_QSIZE;
	if (!o.nr_vqs)
		o.nr_vqs = VUF_DEF_NR_VQS;
	if (!o.connect_timeout_ms)
		o.connect_timeout_ms = VUF_DEF_TIMEOUT_MS;
	if (page <= 0 || o.qsize > VUF_MAX_QSIZE || (o.qsize & (o.qsize - 1)) ||
	    o.nr_vqs > VUF_MAX_VQS || o.gpa_base % page ||
	    o.mem_size > SIZE_MAX - page || o.gpa_base + o.mem_size < o.gpa_base) {
		errno = EINVAL;
		return NULL;
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->sock = d->mem_fd = -1;
	d->gpa_base = o.gpa_base;
	d->mem_size = (o.mem_size + page - 1) & ~(size_t)(page - 1);
	d->nr_vqs = o.nr_vqs;
	d->vq = calloc(d->nr_vqs, sizeof(*d->vq));
	if (!d->vq) {
		free(d);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < d->nr_vqs; i++) {
		d->vq[i].size = o.qsize;
		d->vq[i].kick_fd = d->vq[i].call_fd = -1;
	}
	r = dev_setup(d, path, o.connect_timeout_ms);
	if (r) {
		vuf_disconnect(d);
		errno = -r;
		return NULL;
	}
	return d;
}

void vuf_disconnect(struct vuf_dev *d)
{
	unsigned int i;
	int saved = errno;

	if (!d)
		return;
	/*
	 * The socket first, as a dying QEMU: the backend keeps its own
	 * mapping of the memory until it has torn the device down.
	 */
	if (d->sock >= 0)
		close(d->sock);
	for (i = 0; i < d->nr_vqs; i++) {
		if (d->vq[i].kick_fd >= 0)
			close(d->vq[i].kick_fd);
		if (d->vq[i].call_fd >= 0)
			close(d->vq[i].call_fd);
		free(d->vq[i].slot);
	}
	if (d->mem)
		munmap(d->mem, d->mem_size);
	if (d->mem_fd >= 0)
		close(d->mem_fd);
	free(d->vq);
	free(d);
	errno = saved;
}

const struct nk_config *vuf_config(const struct vuf_dev *d)
{
	return &d->config;
}
