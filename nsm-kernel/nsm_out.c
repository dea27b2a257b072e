// SPDX-License-Identifier: GPL-2.0
/*
 * nsm_kernel.ko: the floor every other file of the module stands on.
 * Building replies and events, queueing them on nsm_dev.outq in order,
 * tx_work that hands them to the transport, and the throttle that pauses
 * ev_work while the requestq lags.  It calls nothing of nsm_main.c,
 * nsm_ops.c or nsm_sock.c.  The implementation notes of the module are at
 * the top of nsm_main.c.
 *
 * Nothing is sent to the transport directly.  Replies and events are
 * queued on nsm_dev.outq, in order, and tx_work hands them to nk_send().
 * It never sleeps for requestq space: when the ring is full, the message
 * goes back to the head of outq (NK_XMIT_KEEP) and tx_work ends; the
 * transport's ops->tx_space() queues it again once the ring has room.  So a
 * stalled engine holds no worker of nsm_wq, and detach never waits for one
 * (ops->rx may not wait for the device either).  A reply or event about a
 * socket is queued with nsm_sock.lock held, so the guest sees them in the
 * order they happened (the CONNECT reply before EV_CONNECTED, the ACCEPT
 * reply before the new socket's EV_DATA).
 *
 * Locking (order in nsm_main.c): this file owns nsm_dev.out_lock (spin),
 * which protects outq, outq_hi, out_bytes, out_dead and each guest's
 * out_hi and out_lo, and nests inside everything, taking nothing.  Every
 * shard queues on the one outq, or outq_hi for a sparse guest (the
 * requestq is one ring), and only tx_work takes from outq, tx_hi_work
 * from outq_hi: the spinlock is held for a
 * list operation, never across anything that sleeps.  nsm_xmit() is
 * called with the socket's nsm_sock.lock held when it carries that
 * socket's credit.  The throttle takes a shard's ready_lock (_bh) on its
 * own, never with out_lock; out_bytes is the whole device's, so every
 * shard pauses and resumes at the same marks.  No lock is held across
 * nk_send().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "nsm.h"

static unsigned int out_limit = 4 << 20;
module_param(out_limit, uint, 0644);
MODULE_PARM_DESC(out_limit,
		 "Bytes waiting for the requestq above which sockets are not read (default 4 MiB)");

struct workqueue_struct *nsm_wq;
struct workqueue_struct *nsm_hiwq;

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
	bool hi;

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
				  max(nk_hdr_data_len(hdr), 0));
	}

	spin_lock(&nsm->out_lock);
	if (nsm->out_dead) {
		spin_unlock(&nsm->out_lock);
		nsm_out_free(out);
		return;
	}
	/*
	 * A sparse guest's messages take the lane of tx_hi_work, unless some
	 * of its messages are still in tx_work's (and the other way round):
	 * one guest's messages stay in order.
	 */
	out->g = ns ? ns->g : NULL;
	hi = out->g && !out->g->out_lo &&
	     (out->g->out_hi || READ_ONCE(out->g->sparse));
	if (out->g) {
		if (hi)
			out->g->out_hi++;
		else
			out->g->out_lo++;
	}
	list_add_tail(&out->node, hi ? &nsm->outq_hi : &nsm->outq);
	nsm->out_bytes += nsm_out_size(out);
	spin_unlock(&nsm->out_lock);
	if (hi)
		queue_work(nsm_hiwq, &nsm->tx_hi_work);
	else
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

static void nsm_tx_run(struct nsm_dev *nsm, bool hi)
{
	struct list_head *q = hi ? &nsm->outq_hi : &nsm->outq;
	struct nsm_out *out;
	bool more = false;
	int err;

	for (;;) {
		spin_lock(&nsm->out_lock);
		out = list_first_entry_or_null(q, struct nsm_out, node);
		if (out) {
			list_del(&out->node);
			nsm->out_bytes -= nsm_out_size(out);
			more = !list_empty(q);
		}
		spin_unlock(&nsm->out_lock);
		if (!out)
			break;

		/*
		 * One kick for what is queued now: only this work takes from
		 * its queue.  A full ring: back to the head, in order;
		 * tx_space brings us back (nk_send() kicked what it added
		 * before).  The guest's count drops once the message is on
		 * the ring, so its next one cannot overtake it in the other
		 * lane.
		 */
		err = nk_send(nsm->nd, out->tb,
			      NK_XMIT_KEEP | (more ? NK_XMIT_MORE : 0), NULL);
		if (err == -EAGAIN) {
			spin_lock(&nsm->out_lock);
			list_add(&out->node, q);
			nsm->out_bytes += nsm_out_size(out);
			spin_unlock(&nsm->out_lock);
			nsm_count(nsm, NSM_S_TX_RING_FULL, 1);
			return;
		}
		if (out->g) {
			spin_lock(&nsm->out_lock);
			if (hi)
				out->g->out_hi--;
			else
				out->g->out_lo--;
			spin_unlock(&nsm->out_lock);
		}
		kfree(out);
		if (err) {
			nsm_count(nsm, NSM_S_XMIT_FAILED, 1);
			if (err != -ENODEV)
				pr_warn_ratelimited("cannot queue a message on the requestq: %d\n",
						    err);
		}
		if (!nsm_out_over(nsm, READ_ONCE(out_limit) / 2))
			nsm_ev_unthrottle(nsm);
		cond_resched();
	}
	nk_kick(nsm->nd);
}

void nsm_tx_work(struct work_struct *work)
{
	nsm_tx_run(container_of(work, struct nsm_dev, tx_work), false);
}

/* The same for the sparse guests' messages (nsm_dev.outq_hi). */
void nsm_tx_hi_work(struct work_struct *work)
{
	nsm_tx_run(container_of(work, struct nsm_dev, tx_hi_work), true);
}

/**
 * nsm_ev_throttle() - pause a shard's ev_work while the requestq lags
 * @sh: the shard
 *
 * Called by ev_work before it reads a socket; tx_work resumes it once the
 * outgoing queue is below half the limit.
 *
 * Return: true when ev_work must stop.
 */
bool nsm_ev_throttle(struct nsm_shard *sh)
{
	struct nsm_dev *nsm = sh->nsm;

	if (!nsm_out_over(nsm, READ_ONCE(out_limit)))
		return false;
	spin_lock_bh(&sh->ready_lock);
	sh->ev_throttled = true;
	spin_unlock_bh(&sh->ready_lock);
	nsm_count(nsm, NSM_S_THROTTLED, 1);
	/* tx_work may have emptied the queue before it could see the flag. */
	if (!nsm_out_over(nsm, READ_ONCE(out_limit) / 2))
		nsm_ev_unthrottle(nsm);
	return true;
}

/* Resume every shard's ev_work that the throttle paused. */
void nsm_ev_unthrottle(struct nsm_dev *nsm)
{
	struct nsm_shard *sh;
	unsigned int i;

	for (i = 0; i < nsm->nshards; i++) {
		sh = &nsm->shards[i];
		if (!READ_ONCE(sh->ev_throttled))
			continue;
		spin_lock_bh(&sh->ready_lock);
		if (sh->ev_throttled && !sh->ev_stop) {
			sh->ev_throttled = false;
			nsm_ev_queue(sh, false);
			nsm_ev_queue(sh, true);
		}
		spin_unlock_bh(&sh->ready_lock);
	}
}
