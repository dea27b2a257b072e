// SPDX-License-Identifier: GPL-2.0
/*
 * Device side of split virtqueues: taking descriptor chains from the avail
 * ring with full validation, returning them on the used ring, notification
 * suppression and interrupts, and copying between scatter lists.
 *
 * Threading: only the data-plane lcore calls these functions, on queues of
 * devices it currently owns (between he_dp_dev_start and he_dp_dev_stop).
 * The rings live in guest memory that the guest changes concurrently:
 * every field is read exactly once into local memory before it is
 * validated and used, and indices are read with acquire / written with
 * release ordering.  (When he_vq_pop()'s inline part in he.h gives a chain
 * up, he_vq_pop_slow() reads the avail entry and descriptors again and
 * uses only its own copies.)
 *
 * What runs per message or per pass is inline in he.h: taking the usual
 * chain (one direct descriptor in one memory region) from the avail
 * entries already announced, returning chains, and looking at a queue's
 * index or flag; an idle queue costs a pass one load of its avail index.
 *
 * Index traffic: each index is a cache line the driver writes or polls
 * from another core.  The avail index is read again only once the chains
 * it announced are all taken (avail_seen), and the used index is written
 * once per pass of the data plane (he_vq_call), not once per chain: the
 * driver sees a pass's chains together, as it sees them with the
 * interrupt that follows.
 */
#include <errno.h>
#include <string.h>

#include <rte_atomic.h>

#include "he.h"

/*
 * he_vq_pop() once its inline part did not take the chain: the avail index
 * to read again, a ring found corrupt, or a chain other than the usual one
 * (which may be malformed).  It starts over from the avail ring entry.
 */
int he_vq_pop_slow(struct rte_vhost_memory *mem, struct he_vq *vq, bool writable,
		   struct he_chain *c, int *err)
{
	const uint16_t size = vq->vr.size;
	uint16_t avail_idx, idx, ndesc = 0;
	uint64_t total = 0;

	if (vq->broken)
		return 0;
	if (vq->avail_seen == vq->last_avail) {
		avail_idx = he_ring_load16(&vq->vr.avail->idx, __ATOMIC_ACQUIRE);
		if (avail_idx == vq->last_avail)
			return 0;
		if ((uint16_t)(avail_idx - vq->last_avail) > size) {
			vq->broken = true;
			c->head = avail_idx;
			return HE_VQ_BROKEN;
		}
		vq->avail_seen = avail_idx;
	}
	c->head = he_ring_load16(&vq->vr.avail->ring[vq->last_avail & (size - 1)],
				 __ATOMIC_RELAXED);
	if (c->head >= size) {
		vq->broken = true;
		return HE_VQ_BROKEN;
	}
	vq->last_avail++;
	idx = c->head;

	/* The loop below takes the usual chain again when a check fails. */
	if (he_chain_direct(mem, vq, writable, idx, c))
		return 1;
	c->iov.seg = c->seg;
	c->iov.nseg = 0;
	c->iov.len = 0;
	for (;;) {
		struct vring_desc d;
		uint64_t gpa, rem;

		if (idx >= size) {
			*err = -EFAULT;
			return -NK_PERR_DESC_RANGE;
		}
		if (++ndesc > size) {
			*err = -ELOOP;
			return -NK_PERR_DESC_LOOP;
		}
		he_desc_read(vq, idx, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* VIRTIO_F_INDIRECT_DESC is never negotiated. */
			*err = -EINVAL;
			return -NK_PERR_DESC_INDIRECT;
		}
		if (!!(d.flags & VRING_DESC_F_WRITE) != writable) {
			if (writable) {
				*err = -ENOBUFS;
				return -NK_PERR_EVENT_BUF;
			}
			*err = -EINVAL;
			return -NK_PERR_DESC_DIR;
		}
		total += d.len;
		if (total > UINT32_MAX) {
			*err = -EMSGSIZE;
			return -NK_PERR_LENGTH;
		}
		if (d.addr + d.len < d.addr) {
			*err = -EFAULT;
			return -NK_PERR_DESC_RANGE;
		}
		/* Translate piecewise: a descriptor may span memory regions. */
		for (gpa = d.addr, rem = d.len; rem; ) {
			uint64_t len = rem;
			uint64_t va = rte_vhost_va_from_guest_pa(mem, gpa, &len);

			if (!va || !len) {
				*err = -EFAULT;
				return -NK_PERR_DESC_RANGE;
			}
			if (c->iov.nseg == HE_MAX_SEGS) {
				*err = -ELOOP;
				return -NK_PERR_DESC_LOOP;
			}
			c->seg[c->iov.nseg].va = (uint8_t *)(uintptr_t)va;
			c->seg[c->iov.nseg].len = len;
			c->iov.nseg++;
			gpa += len;
			rem -= len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		idx = d.next;
	}
	c->iov.len = total;
	return 1;
}

/*
 * Ask for kicks (enable) or suppress them.  The caller issues a full
 * barrier before looking at the avail ring again.
 */
void he_vq_notify(struct he_vq *vq, bool enable)
{
	__atomic_store_n(&vq->vr.used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY,
			 __ATOMIC_RELAXED);
}

/*
 * he_vq_call()'s work once used entries were added: publish them and
 * interrupt the driver if it wants to know.  Never waits for rte_vhost's
 * queue lock: its message thread holds it while it waits for the data
 * plane (a memory table change pauses the device from under that lock).
 * A busy lock leaves the call for the next pass.
 */
void he_vq_call_used(int vid, struct he_vq *vq)
{
	vq->need_call = false;
	he_vq_publish(vq);
	rte_smp_mb();
	if (he_ring_load16(&vq->vr.avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	if (rte_vhost_vring_call_nonblock(vid, vq->vring) == -EAGAIN)
		vq->need_call = true;
}

/* Find the segment holding byte @off; returns the offset inside it. */
static uint32_t iov_seek(const struct he_iov *iov, uint32_t off, uint32_t *i)
{
	for (*i = 0; *i < iov->nseg && off >= iov->seg[*i].len; (*i)++)
		off -= iov->seg[*i].len;
	return off;
}

/*
 * he_iov_copy() across segments.  The copy never leaves either list: it
 * stops at the end of the shorter one (the callers make sure both hold
 * the range).
 */
void he_iov_copy_segs(const struct he_iov *dst, uint32_t doff, const struct he_iov *src,
		      uint32_t soff, uint32_t len)
{
	uint32_t di, si;

	doff = iov_seek(dst, doff, &di);
	soff = iov_seek(src, soff, &si);
	while (len && di < dst->nseg && si < src->nseg) {
		uint32_t n = RTE_MIN(len, RTE_MIN(dst->seg[di].len - doff,
						  src->seg[si].len - soff));

		memcpy(dst->seg[di].va + doff, src->seg[si].va + soff, n);
		len -= n;
		doff += n;
		soff += n;
		if (doff == dst->seg[di].len) {
			di++;
			doff = 0;
		}
		if (soff == src->seg[si].len) {
			si++;
			soff = 0;
		}
	}
}

void he_iov_read(const struct he_iov *iov, uint32_t off, void *buf, uint32_t len)
{
	struct he_seg seg;
	struct he_iov dst;

	he_iov_flat(&dst, &seg, buf, len);
	he_iov_copy(&dst, 0, iov, off, len);
}
