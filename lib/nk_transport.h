/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nk transport: the virtio side of an nk endpoint, shared by
 * af_netkernel.ko (NK_ROLE_GUEST) and nsm_kernel.ko (NK_ROLE_NSM).
 *
 * A module describes itself with a struct nk_transport_ops and calls
 * nk_transport_register() at init.  For every nk device whose config space
 * matches (magic, version, role), the transport sets up its queue pairs
 * (a requestq and an eventq each, one pair per CPU; on QEMU 7.2 the pairs
 * beyond 0 come from the endpoint's other carrier devices), keeps the
 * eventqs filled, exchanges HELLO with the host engine, then publishes the
 * device and calls ops->attach().  Only one device per module is served; a
 * second one is refused.  A message about socket s travels on pair
 * s % pairs, each pair's eventq work on its own CPU: ops->rx() runs for
 * different pairs at once, one message at a time per pair (so per socket).
 *
 * Using a device:
 *   nd = nk_dev_get();          reference to the ready device, or NULL
 *   tb = nk_txbuf_alloc(len);   header + @len bytes of payload
 *   nk_hdr_init(&tb->hdr, ...); fill tb->payload
 *   nk_send(nd, tb, ...)        one-way message (SEND, CREDIT, replies)
 *   nk_call(nd, tb, &reply...)  request + wait for its reply
 *   nk_dev_put(nd);
 *
 * Messages from the device are validated (nk_hdr_check() for the module's
 * role) and then: a reply that matches an nk_call() in progress completes
 * it; everything else goes to ops->rx().  Invalid messages are counted and
 * dropped with a rate-limited log line.  ops->rx() is never called before
 * ops->attach() has returned 0: messages that arrive earlier (the engine
 * forwards requests as soon as HELLO is answered) are held, in order, and
 * dispatched first once attach returns; none is dropped.  Held messages
 * occupy eventq buffers, so an nk_call() from ops->attach() can starve if
 * the engine sends event_bufs messages first.
 *
 * Contexts: ops->rx(), ops->attach() and ops->detach() run in process
 * context.  ops->rx() runs from a pair's eventq work item with that pair's
 * eventq lock held: it must not sleep waiting for the device (no
 * nk_call(), and nk_send() only with a zero timeout).  The other functions
 * may sleep unless said otherwise.
 *
 * sysfs: /sys/bus/virtio/devices/virtio<N>/nk/ holds the HELLO results
 * (endpoint_id, endpoint_name, max_payload, features, pairs: in use;
 * pairs_set_up; pair_rx_msgs and pair_tx_msgs: messages each pair carried,
 * space-separated in pair order) and the device
 * counters (tx_msgs, tx_bytes, tx_ring_full, tx_queued (messages that
 * waited in the transport's queue for ring space, NK_XMIT_QUEUE), rx_msgs, rx_bytes, rx_replies,
 * rx_invalid, rx_held_early (messages held until attach returned),
 * rx_proto_errors, rx_buf_alloc_fail, rx_lent (eventq buffers lent to
 * skbs by nk_rx_skb()), call_timeouts, call_waits (nk_call() and
 * nk_call_pair() waits that found no reply yet: round trips a caller
 * slept through; a pair whose replies come together counts one)).
 *
 * Removal: the device is unpublished (nk_dev_get() returns NULL), then
 * marked dead: every nk_send()/nk_call() waiting or started afterwards
 * fails with -ENODEV at once, and ops->rx() has returned and is not called
 * again.  Only then does ops->detach() run, so it may flush its own workers
 * that send (they cannot stay blocked in nk_send()) and free the module's
 * state.  Then the virtqueues are torn down.  The struct nk_dev itself
 * lives until its last reference is put.
 *
 * Lock order: eventq lock (mutex, ops->rx() runs under it) -> call_lock
 * -> tx_lock, each pair's own but call_lock.  tx_lock and call_lock are
 * spinlocks and nest inside nothing else of the transport.
 */
#ifndef _NK_TRANSPORT_H
#define _NK_TRANSPORT_H

#include <linux/kref.h>
#include <linux/skbuff.h>
#include <linux/types.h>

#include "nk_msg.h"

struct nk_dev;

/**
 * struct nk_transport_ops - what a module tells the transport
 * @name: driver name (shows in sysfs)
 * @role: NK_ROLE_GUEST or NK_ROLE_NSM; devices of the other role are refused
 * @features: NK_FEAT_* proposed in HELLO
 * @attach: the device is ready (HELLO done); an error fails the probe.
 *          ops->rx() is not called before it returns.
 * @detach: the device is going away and already dead (sends fail with
 *          -ENODEV, ops->rx() is stopped); wake everything that waits on
 *          it and free what attach set up
 * @rx: a validated message that is not the reply to an nk_call()
 * @tx_space: optional; the requestq has room again after a sender found it
 *            full.  Runs in the transport's tx work with a spinlock held:
 *            it may only queue work.  Never called once the device is dead.
 */
struct nk_transport_ops {
	const char *name;
	int role;
	u64 features;
	int (*attach)(struct nk_dev *nd);
	void (*detach)(struct nk_dev *nd);
	void (*rx)(struct nk_dev *nd, const struct nk_hdr *hdr,
		   const void *payload);
	void (*tx_space)(struct nk_dev *nd);
};

/**
 * struct nk_txbuf - one outgoing message
 * @node: the transport's (NK_XMIT_QUEUE)
 * @cap: payload bytes allocated (the transport's; hdr.len may be lowered)
 * @hdr: the header; hdr.len is set by nk_txbuf_alloc()
 * @payload: hdr.len bytes
 *
 * Owned by the caller until passed to nk_send() or nk_call(), which always
 * consume it (on error too).  Only @hdr and the payload go on the wire.
 */
struct nk_txbuf {
	struct list_head node;
	u32 cap;
	struct nk_hdr hdr;
	u8 payload[];
};

/**
 * struct nk_reply - where nk_call() puts a reply
 * @hdr: the reply header (op, flags, status, credit, args)
 * @buf: buffer for the payload, may be NULL when @buf_len is 0
 * @buf_len: its size; a longer payload is truncated to it
 * @len: payload bytes copied
 * @req_id: the request's req_id once it is on the requestq, 0 while it is
 *          not (so 0 after a call that failed before the request left):
 *          a call that gave up after it left may still get its reply,
 *          which then goes to ops->rx() with this req_id
 */
struct nk_reply {
	struct nk_hdr hdr;
	void *buf;
	u32 buf_len;
	u32 len;
	u64 req_id;
};

int nk_transport_register(const struct nk_transport_ops *ops);
void nk_transport_unregister(void);

/**
 * nk_dev_get() - the ready device of this module
 *
 * Safe in any context.  Return: a referenced device or NULL.
 */
struct nk_dev *nk_dev_get(void);
/**
 * nk_dev_bound() - whether a ready device exists (no reference taken)
 *
 * A hint only; safe in any context.
 */
bool nk_dev_bound(void);
void nk_dev_hold(struct nk_dev *nd);
void nk_dev_put(struct nk_dev *nd);

/* Whether @nd is still usable (not removed).  Any context. */
bool nk_dev_alive(struct nk_dev *nd);

/**
 * nk_dev_lost() - whether @nd died because the engine lost its session
 * @nd: the device
 *
 * True from the EV_PROTO_ERROR NK_PERR_NO_SESSION that ended a ready
 * device on: ops->detach() resets its sockets as a peer's reset would,
 * and the device is probed again.
 */
bool nk_dev_lost(struct nk_dev *nd);

/* The HELLO results. */
u32 nk_dev_max_payload(const struct nk_dev *nd);
/* Bytes the engine holds for us beyond the eventq (0: it did not say). */
u32 nk_dev_engine_hold(const struct nk_dev *nd);
u64 nk_dev_features(const struct nk_dev *nd);
u32 nk_dev_endpoint_id(const struct nk_dev *nd);
/*
 * A queue pair whose works run on this CPU (in turns when several do;
 * else one by the CPU's number), and in *@npairs the pairs in use: a
 * socket whose id is that pair modulo *@npairs has its messages on it.
 * Any context; a hint.
 */
u32 nk_dev_local_pair(struct nk_dev *nd, u32 *npairs);
/* The guest's addresses HELLO's reply listed (NK_FEAT_ADDR): how many. */
u32 nk_dev_addrs(const struct nk_dev *nd, const struct nk_addr **addrs);
const char *nk_dev_name(const struct nk_dev *nd);
struct device *nk_dev_device(struct nk_dev *nd);

/*
 * Module-private pointer, set by the module in ops->attach() and read in
 * ops->rx(); the transport never touches it.
 */
void nk_dev_set_priv(struct nk_dev *nd, void *priv);
void *nk_dev_priv(const struct nk_dev *nd);

/**
 * nk_dev_set_rx_hipri() - serve the eventqs on the high-priority pool
 * @nd: the device, between ops->attach() and ops->detach() returning
 * @on: true: the rx work of each pair runs on WQ_HIGHPRI kworkers from
 *	the next time it is queued, which the CPU's normal kworkers yield
 *	to; false: on the normal pool again (the default)
 *
 * For a module whose own works can keep a CPU's normal pool busy: while
 * they do, a message waits in the eventq for them.  Any context.
 */
void nk_dev_set_rx_hipri(struct nk_dev *nd, bool on);

/**
 * nk_txbuf_alloc() - allocate a message with @len bytes of payload
 * @len: payload bytes, at most nk_dev_max_payload()
 * @gfp: allocation flags
 *
 * The header is zeroed but for len, the payload is not initialised.  Free
 * with nk_txbuf_free() if never sent.  Large ones come from a cache of
 * recycled buffers.
 */
struct nk_txbuf *nk_txbuf_alloc(u32 len, gfp_t gfp);

/* nk_txbuf_free() - free (or keep for reuse) a message never sent; NULL is fine */
void nk_txbuf_free(struct nk_txbuf *tb);

/* nk_send() and nk_call() flags */
#define NK_XMIT_INTR	0x1	/* any signal interrupts a wait (else only fatal ones) */
#define NK_XMIT_MORE	0x2	/* nk_send(): more follows, do not kick yet */
#define NK_XMIT_QUEUE	0x4	/* nk_send(): a full ring queues, no wait */
#define NK_XMIT_KEEP	0x8	/* nk_send(): on -EAGAIN, @tb is not consumed */
#define NK_CALL_INTR	0x10	/* nk_call(): any signal ends the reply wait */
#define NK_CALL_NOWAIT	0x20	/* nk_call(): a full ring fails it, -EAGAIN */

/* Messages NK_XMIT_QUEUE may hold per device (each a header, mostly). */
#define NK_TX_QUEUE_MAX	8192

/**
 * nk_kick() - tell the device about messages sent with NK_XMIT_MORE
 * @nd: the device
 *
 * A later nk_send() without NK_XMIT_MORE does the same.
 */
void nk_kick(struct nk_dev *nd);

/**
 * nk_rx_skb() - the message being dispatched as an skb, without a copy
 * @nd: the device; only from inside ops->rx()
 * @hdr: the message's header, as ops->rx() got it
 * @data: the bytes the skb is to hold, within the message's payload
 * @len: how many
 *
 * For bulk data: the skb's one fragment is the eventq buffer itself, which
 * the transport replaces on the ring; freeing the skb recycles it.  Only a
 * message filling at least half its buffer is lent, so a queue of such skbs
 * costs at most twice its bytes.  At most one skb per message.
 *
 * Return: the skb (len, data_len and truesize set), or NULL: copy instead.
 */
struct sk_buff *nk_rx_skb(struct nk_dev *nd, const struct nk_hdr *hdr,
			  const void *data, u32 len);

/**
 * nk_send() - put one message on the requestq
 * @nd: the device
 * @tb: the message, consumed
 * @flags: NK_XMIT_*
 * @timeo: jiffies to wait for ring space; updated with what is left.  NULL
 *         or 0: do not wait.
 *
 * With NK_XMIT_QUEUE, a full ring does not make it wait: @tb is queued
 * (up to NK_TX_QUEUE_MAX messages) and goes out, in order and before
 * anything sent later, as soon as the ring has room; 0 is returned.
 *
 * Return: 0; -EAGAIN when the ring stays full (with NK_XMIT_KEEP, @tb is
 * then the caller's again); -ERESTARTSYS on a signal (with NK_XMIT_INTR)
 * or a fatal signal; -ENODEV when the device is gone; -EMSGSIZE when the
 * payload exceeds max_payload.
 */
int nk_send(struct nk_dev *nd, struct nk_txbuf *tb, unsigned int flags,
	    long *timeo);

/**
 * nk_tx_wait() - wait until the requestq has room for a message
 * @nd: the device
 * @sock: the socket the message is about (its pair's requestq)
 * @flags: NK_XMIT_INTR: any signal interrupts (else only fatal ones)
 * @timeo: jiffies to wait, updated with what is left; 0: do not wait
 *
 * For a sender that must not wait inside nk_send() (it holds a lock that
 * others need): it drops the lock, waits here, takes the lock again and
 * sends with a zero timeout, which may still find the ring full.
 *
 * Return: 0 when there is room; -EAGAIN when there was none within
 * @timeo; -ERESTARTSYS on a signal; -ENODEV when the device is gone.
 */
int nk_tx_wait(struct nk_dev *nd, u32 sock, unsigned int flags, long *timeo);

/**
 * nk_post() - send a request without waiting for its reply
 * @nd: the device
 * @tb: the request, consumed; its req_id is assigned here
 * @flags: NK_XMIT_*
 * @timeo: as for nk_send()
 *
 * The reply, when it comes, goes to ops->rx() like any reply no nk_call()
 * waits for.
 *
 * Return: as nk_send().
 */
int nk_post(struct nk_dev *nd, struct nk_txbuf *tb, unsigned int flags,
	    long *timeo);

/**
 * nk_call() - send a request and wait for its reply
 * @nd: the device
 * @tb: the request, consumed; its req_id is assigned here
 * @reply: filled with the reply; reply->hdr.op stays 0 if none came
 * @flags: NK_XMIT_*, for the wait for ring space
 *
 * Waiting for ring space and for the reply together is bounded by the
 * reply timeout (module parameter reply_timeout_ms); the reply itself is
 * awaited killably, since the peer answers every request at once (the NSM
 * never blocks), or interruptibly with NK_CALL_INTR.  An EV_PROTO_ERROR
 * naming the request's req_id ends the call with its status.
 *
 * With NK_CALL_NOWAIT, a full ring ends the call at once with -EAGAIN
 * (reply->hdr.op stays 0: the request never left).
 *
 * Return: the reply's status (0 or -errno from the peer), or a local error
 * as for nk_send(), -ETIMEDOUT when no reply came, -ENODEV when the device
 * went away, -EINTR on a fatal signal (any signal with NK_CALL_INTR).  A
 * reply that came is never lost: a signal or the timeout racing with it
 * still returns its status.  A reply arriving after the call gave up goes
 * to ops->rx(); reply->req_id tells whether one may come.
 */
int nk_call(struct nk_dev *nd, struct nk_txbuf *tb, struct nk_reply *reply,
	    unsigned int flags);

/**
 * nk_call_pair() - two requests in one kick, each waited for as nk_call()
 * @nd: the device
 * @first: the first request, consumed
 * @first_reply: filled with its reply
 * @first_err: set to what nk_call() of @first would return
 * @tb: the second request, consumed; it goes right behind @first
 * @reply: filled with its reply
 * @flags: as for nk_call()
 *
 * For a request that needs the first's outcome at the peer, which serves
 * a link's requests in order (a CONNECT on the socket a SOCKET makes):
 * one kick, one interrupt and one wait instead of two of each.  The
 * reply timeout bounds both together.  When the wait for @first's reply
 * ends without it (a signal, the timeout), @tb's is not awaited either;
 * reply->req_id then tells whether it may come later, as for nk_call().
 *
 * Return: the status of @tb's reply, or a local error as nk_call()'s.
 */
int nk_call_pair(struct nk_dev *nd, struct nk_txbuf *first,
		 struct nk_reply *first_reply, int *first_err,
		 struct nk_txbuf *tb, struct nk_reply *reply,
		 unsigned int flags);

/**
 * nk_call_timeout() - nk_call() with a shorter bound
 * @timeout_ms: bound of the wait for ring space and reply together, at
 *              most the reply timeout; 0: the reply timeout
 *
 * For callers that must not wait as long as an application's call may
 * (a diag dump asking for many sockets).  Otherwise as nk_call().
 */
int nk_call_timeout(struct nk_dev *nd, struct nk_txbuf *tb,
		    struct nk_reply *reply, unsigned int flags,
		    unsigned int timeout_ms);

#endif /* _NK_TRANSPORT_H */
