// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: the host engine's data plane (hostengine/switch.c and
 * vring.c, compiled in whole) between two guests and two NSMs whose
 * virtqueues are real split rings in memory of their own, as a VM's
 * driver lays them out.  The harness is each endpoint's driver; the input
 * says what they put on their rings and how the rings are laid out, and
 * the engine runs its passes over them as dp_main() does.
 *
 * Input: 4 bytes, the max_payload each endpoint proposes in HELLO
 * (2048 + 256 * b, vm1, vm2, nsm0, nsm1; vm1 on nsm0, vm2 on nsm1), then
 * actions, each one byte a (endpoint a & 3, kind (a >> 2) & 3, flags
 * a >> 4) and its operands:
 *   0 submit: 2 bytes of length L, then up to L bytes of message (zeros
 *     after the input's end): on the requestq in 1 + (flags & 3)
 *     descriptors; flags & 4: set the header's len to L - 64 (an honest
 *     length); flags & 8: one more byte picks a broken descriptor (wrong
 *     direction, zero length, outside guest memory, a loop)
 *   1 post: 1 + (flags & 7) eventq buffers of a header and 1 + v bytes
 *     each, v the next 2 bytes (flags & 8: 1 + v bytes, smaller than a
 *     header if v says so)
 *   2 run: 1 + flags passes of the data plane, each followed by every
 *     endpoint's driver taking its used entries
 *   3 reconnect: the endpoint's device is stopped and started again (a
 *     vhost-user reconnect) and says HELLO again
 *
 * Each buffer a driver posts is followed by a poisoned redzone, so a
 * write or read past it is an AddressSanitizer report.  The driver also
 * asserts what the engine promises every endpoint: a used length within
 * the buffer, a whole header, a payload of at most the max_payload that
 * endpoint agreed in HELLO, and a len field that matches what was
 * written.  Every endpoint's device is stopped after each input, which
 * must free everything the input made the engine hold (LeakSanitizer).
 */
#include <assert.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sanitizer/asan_interface.h>

#include "../../hostengine/switch.c"
#include "he_fuzz.h"

#define NEPS		4
#define QSIZE		256
#define MEM_SIZE	(8U << 20)
#define RING_AREA	(64U << 10)
#define REDZONE		64
#define GPA_BASE(i)	((uint64_t)(i + 1) << 32)

/* One endpoint's driver: its memory, its two rings and what is posted. */
struct drv {
	struct he_ep *ep;
	uint8_t *mem;
	struct rte_vhost_memory *table;
	uint32_t brk;			/* buffer space bump pointer */
	uint32_t mp;			/* max_payload proposed */
	struct {
		struct vring_desc *desc;
		struct vring_avail *avail;
		struct vring_used *used;
		uint16_t next_desc;	/* next free descriptor, cyclic */
		uint16_t avail_idx, used_seen, outstanding;
		uint8_t *buf[QSIZE];		/* by head: the buffer */
		uint32_t buf_len[QSIZE];	/* by head: bytes posted */
		uint16_t ndesc[QSIZE];		/* by head: descriptors */
	} q[2];
	uint32_t agreed;		/* max_payload the engine agreed */
};

static struct drv drv[NEPS];
static bool ready;

static uint64_t gpa(const struct drv *d, const void *p)
{
	return GPA_BASE(d - drv) + (uint64_t)((const uint8_t *)p - d->mem);
}

static void *drv_alloc(struct drv *d, uint32_t len)
{
	uint8_t *p;

	len = RTE_ALIGN_CEIL(len, 8);
	if (d->brk + len + REDZONE > MEM_SIZE)
		return NULL;
	p = d->mem + d->brk;
	d->brk += len + REDZONE;
	ASAN_POISON_MEMORY_REGION(p + len, REDZONE);
	return p;
}

/* Put a chain of @nseg descriptors over @buf on ring @qi; false if full. */
static bool drv_chain(struct drv *d, int qi, uint8_t *buf, uint32_t len, unsigned int nseg,
		      int broken)
{
	typeof(d->q[0]) *q = &d->q[qi];
	uint16_t head = q->next_desc, idx = head, flags = qi ? VRING_DESC_F_WRITE : 0;
	uint32_t off = 0, part;
	unsigned int i;

	if (nseg > len)
		nseg = len ? len : 1;
	if (q->outstanding + nseg > QSIZE)
		return false;
	for (i = 0; i < nseg; i++) {
		struct vring_desc *desc = &q->desc[idx];

		part = i + 1 < nseg ? len / nseg : len - off;
		desc->addr = gpa(d, buf + off);
		desc->len = part;
		desc->flags = flags | (i + 1 < nseg ? VRING_DESC_F_NEXT : 0);
		idx = (idx + 1) % QSIZE;
		desc->next = idx;
		off += part;
	}
	switch (broken) {
	case 1:	/* the wrong direction */
		q->desc[head].flags ^= VRING_DESC_F_WRITE;
		break;
	case 2:	/* a descriptor of no length */
		q->desc[head].len = 0;
		break;
	case 3:	/* outside guest memory */
		q->desc[head].addr = GPA_BASE(NEPS + 1);
		break;
	case 4:	/* a loop */
		q->desc[head].flags |= VRING_DESC_F_NEXT;
		q->desc[head].next = head;
		break;
	case 5:	/* an indirect table, not negotiated */
		q->desc[head].flags |= VRING_DESC_F_INDIRECT;
		break;
	}
	q->buf[head] = buf;
	q->buf_len[head] = len;
	q->ndesc[head] = nseg;
	q->next_desc = idx;
	q->outstanding += nseg;
	q->avail->ring[q->avail_idx % QSIZE] = head;
	__atomic_store_n(&q->avail->idx, ++q->avail_idx, __ATOMIC_RELEASE);
	return true;
}

static void drv_submit(struct drv *d, const uint8_t *msg, uint32_t len, unsigned int nseg,
		       bool honest_len, int broken)
{
	uint8_t *buf = drv_alloc(d, len);
	struct nk_hdr h;

	if (!buf)
		return;
	memcpy(buf, msg, len);
	if (honest_len && len >= sizeof(h)) {
		memcpy(&h, buf, sizeof(h));
		h.len = len - sizeof(h);
		memcpy(buf, &h, sizeof(h));
	}
	drv_chain(d, 0, buf, len, nseg, broken);
}

static void drv_post(struct drv *d, uint32_t len)
{
	uint8_t *buf = drv_alloc(d, len);

	if (buf)
		drv_chain(d, 1, buf, len, 1, 0);
}

/* The driver takes the used entries of ring @qi and checks each. */
static void drv_reap(struct drv *d, int qi)
{
	typeof(d->q[0]) *q = &d->q[qi];
	uint16_t used_idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	struct nk_hdr h;

	while (q->used_seen != used_idx) {
		struct vring_used_elem *e = &q->used->ring[q->used_seen % QSIZE];
		uint32_t head = e->id;

		assert(head < QSIZE && q->ndesc[head]);
		assert(e->len <= q->buf_len[head]);
		if (qi == 1 && e->len) {
			/* The engine writes one whole message into a buffer. */
			assert(e->len >= sizeof(h));
			memcpy(&h, q->buf[head], sizeof(h));
			assert(h.len == e->len - sizeof(h));
			if (h.op == NK_OP_HELLO && (h.flags & NK_F_REPLY) && !h.status)
				d->agreed = h.arg[2];
			assert(h.len <= (d->agreed ? d->agreed : cfg->max_payload));
		}
		if (qi == 0)
			assert(e->len == 0);
		q->outstanding -= q->ndesc[head];
		q->ndesc[head] = 0;
		q->used_seen++;
	}
}

static void run_pass(void)
{
	unsigned int i;

	for (i = 0; i < NEPS; i++)
		if (drv[i].ep->running)
			visit(drv[i].ep);
	calls_flush();
	for (i = 0; i < NEPS; i++) {
		drv_reap(&drv[i], 0);
		drv_reap(&drv[i], 1);
	}
}

static void drv_hello(struct drv *d)
{
	struct nk_hdr h = {
		.op = NK_OP_HELLO,
		.req_id = 1,
		.arg = { NK_PROTO_VERSION, NK_FEAT_ALL, d->mp, d->ep->role },
		.buf_alloc = 1,		/* NK_FEAT_MQ: pairs set up */
	};

	d->agreed = 0;
	drv_post(d, sizeof(h) + NK_NAME_MAX);
	drv_submit(d, (const uint8_t *)&h, sizeof(h), 1, false, 0);
}

static void drv_start(struct drv *d)
{
	struct he_dev_start ds = { .vid = (int)(d - drv), .mem = d->table, .nr_vqs = 2 };
	unsigned int qi;
	int r;

	if (d->brk)	/* the redzones of the last input's buffers */
		ASAN_UNPOISON_MEMORY_REGION(d->mem, d->brk);
	memset(d->mem, 0, RING_AREA);
	memset(d->q, 0, sizeof(d->q));
	d->brk = RING_AREA;
	for (qi = 0; qi < 2; qi++) {
		uint8_t *base = d->mem + qi * (RING_AREA / 2);

		d->q[qi].desc = (struct vring_desc *)base;
		d->q[qi].avail = (struct vring_avail *)(base + QSIZE * sizeof(struct vring_desc));
		d->q[qi].used = (struct vring_used *)(base + 8192);
		/* No interrupts: the harness looks at the used rings itself. */
		d->q[qi].avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
		ds.vr[qi] = (struct rte_vhost_vring){
			.desc = d->q[qi].desc, .avail = d->q[qi].avail, .used = d->q[qi].used,
			.size = QSIZE, .kickfd = -1, .callfd = -1,
		};
	}
	r = cmd_start(d->ep, &ds);
	assert(!r);
	drv_hello(d);
}

static void drv_stop(struct drv *d)
{
	uint16_t la[2 * NK_MAX_QPAIRS], lu[2 * NK_MAX_QPAIRS];
	struct he_cmd c = {
		.type = CMD_STOP, .ep = d->ep, .vid = d->ep->car[0].vid,
		.last_avail = la, .last_used = lu,
	};

	cmd_exec(&c);
}

static void setup(void)
{
	static struct he_config conf;
	unsigned int i;

	he_fuzz_engine(&conf, "pending_limit = 65536\nmax_conn_rate = 1000\n");
	assert(conf.nr_eps == NEPS);
	for (i = 0; i < NEPS; i++) {
		drv[i].ep = conf.eps[i];
		drv[i].mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert(drv[i].mem != MAP_FAILED);
		drv[i].table = calloc(1, sizeof(*drv[i].table) + sizeof(drv[i].table->regions[0]));
		assert(drv[i].table);
		drv[i].table->nregions = 1;
		drv[i].table->regions[0] = (struct rte_vhost_mem_region){
			.guest_phys_addr = GPA_BASE(i),
			.guest_user_addr = GPA_BASE(i),
			.host_user_addr = (uint64_t)(uintptr_t)drv[i].mem,
			.size = MEM_SIZE,
			.fd = -1,
		};
	}
	ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[sizeof(struct nk_hdr) + NK_MAX_PAYLOAD + 256];
	const uint8_t *end = data + size;
	unsigned int i, n, steps = 0;

	if (!ready)
		setup();
	if (size < NEPS)
		return 0;
	next_req_id = 1;
	for (i = 0; i < NEPS; i++) {
		drv[i].mp = NK_MIN_PAYLOAD + 256U * data[i];
		drv[i].ep->next_sock = 1;
		drv_start(&drv[i]);
	}
	data += NEPS;
	run_pass();

	while (data < end && steps++ < 256) {
		uint8_t a = *data++, flags = a >> 4;
		struct drv *d = &drv[a & 3];
		uint32_t len;
		int broken = 0;

		switch ((a >> 2) & 3) {
		case 0:
			if (end - data < 2)
				break;
			len = ((uint32_t)data[0] << 8 | data[1]) % sizeof(msg);
			data += 2;
			if (flags & 8 && data < end)
				broken = 1 + *data++ % 5;
			n = RTE_MIN((size_t)len, (size_t)(end - data));
			memcpy(msg, data, n);
			memset(msg + n, 0, len - n);
			data += n;
			drv_submit(d, msg, len, 1 + (flags & 3), flags & 4, broken);
			break;
		case 1:
			if (end - data < 2)
				break;
			len = 1 + ((uint32_t)data[0] << 8 | data[1]);
			if (!(flags & 8))
				len += sizeof(struct nk_hdr);
			data += 2;
			for (i = 0; i <= (flags & 7U); i++)
				drv_post(d, len);
			break;
		case 2:
			for (i = 0; i <= flags; i++)
				run_pass();
			break;
		case 3:
			drv_stop(d);
			drv_start(d);
			run_pass();
			break;
		}
	}
	for (i = 0; i < 4; i++)
		run_pass();
	for (i = 0; i < NEPS; i++)
		drv_stop(&drv[i]);
	return 0;
}
