/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The data plane's private interfaces: what switch.c shares with local.c
 * (local switching).  Everything here runs on the data-plane lcore only
 * and touches data-plane state without a lock (switch.c, "Threading and
 * locking").
 */
#ifndef _HE_DP_H
#define _HE_DP_H

#include "he.h"
#include "nk_msg.h"

#define HDR_LEN		((uint32_t)sizeof(struct nk_hdr))
#define ADDR_LEN	((uint32_t)sizeof(struct nk_addr))

/*
 * One guest socket and its NSM socket.  It sits in the guest's table while
 * guest != NULL and in the NSM's table while nsm != NULL, and is freed when
 * it is in neither.
 */
struct he_map {
	struct he_hnode gnode;		/* guest->socks, key guest_sock */
	struct he_hnode nnode;		/* nsm->socks, key nsm_sock */
	struct he_ep *guest;
	struct he_ep *nsm;
	uint32_t guest_sock;
	uint32_t nsm_sock;
	bool stream;
	bool opening;			/* SOCKET/ACCEPT reply outstanding */
	bool closing;			/* a CLOSE is outstanding at the NSM */
	bool reset;			/* guest view: gone (EV_RESET sent) */
	bool v6only;			/* SOCKET a3 NK_SOCK_V6ONLY */
	bool local;			/* a connection local.c switches: no NSM data */
	bool linger0;			/* SO_LINGER on, 0 s: CLOSE resets (local.c) */
	bool reuseaddr;			/* SO_REUSEADDR on (local.c's TIME_WAIT) */
	uint32_t defer_accept;		/* TCP_DEFER_ACCEPT, s as Linux reads it (local.c) */
	int reset_err;
	uint64_t tx_bytes, rx_bytes;
	struct nk_credit_tx to_nsm;	/* the guest's SENDs, the NSM's credit */
	struct nk_credit_tx to_guest;	/* the NSM's EV_DATA, the guest's credit */
	struct he_lsw *lsw;		/* local switching state (local.c), or NULL */
};

/* ---- switch.c ---- */

/*
 * Deliver @h and h->len payload bytes from @src at @soff to @dst: its
 * eventq, else its pending queue (unless @must, within max_pending).
 * 0, -EMSGSIZE, -ENOBUFS, -ENOTCONN or -ENOMEM.
 */
int deliver(struct he_ep *dst, const struct nk_hdr *h, const struct he_iov *src, uint32_t soff,
	    bool must);
/* SEND or EV_DATA: split for @dst's max_payload when @stream. */
int deliver_data(struct he_ep *dst, const struct nk_hdr *h, const struct he_iov *src,
		 uint32_t soff, bool stream);
/* The engine's own reply to request @h, without payload. */
void reply(struct he_ep *ep, const struct nk_hdr *h, int status);
void reply_data(struct he_ep *ep, const struct nk_hdr *h, int status,
		const void *buf, uint32_t len, const struct nk_credit_tx *credit);
/*
 * Report a protocol error to @ep.  @queue_only: called while an eventq
 * chain is being taken, so the event goes to the pending queue.
 */
void proto_error(struct he_ep *ep, int perr, int err, uint16_t head, uint16_t op,
		 uint64_t req_id, bool queue_only);
/* A new socket of @g (@nsm NULL: one without an NSM socket, local.c's). */
struct he_map *map_new(struct he_ep *g, uint32_t gsock, struct he_ep *nsm, bool stream);
void map_drop(struct he_map *m, bool gside, bool nside);
/* EV_RESET(@err) to the guest, the NSM socket closed.  @m may be freed. */
void map_reset(struct he_map *m, int err);
/* @dst's pending queue is over its limit: drop the message, reset @m. */
void overflow(struct he_ep *dst, struct he_map *m);
void credit_take(struct he_ep *from, struct nk_hdr *h, struct nk_credit_tx *c);
bool conn_rate_ok(struct he_ep *g);

/* ---- local.c: local switching ---- */

void lsw_init(struct he_config *c);
/*
 * A request of @g on its stream socket @m (its credit taken, @m neither
 * reset nor closing): true when local switching handled it, false when
 * it goes on to the NSM as usual.
 */
bool lsw_request(struct he_ep *g, struct nk_hdr *h, const struct he_iov *iov,
		 struct he_map *m);
/* @g's ACCEPT @h on listener @m, checked: true when served from local clients. */
bool lsw_accept(struct he_ep *g, struct nk_hdr *h, struct he_map *m);
/* The NSM answered @m's BIND, LISTEN or SETSOCKOPT with @status. */
void lsw_replied(struct he_map *m, uint16_t op, int32_t status);
/* The NSM's answer (payload in @iov) to @m's GETSOCKNAME. */
void lsw_sockname(struct he_map *m, const struct he_iov *iov);
/* The NSM says @n connections wait on listener @m: what the guest is told. */
uint64_t lsw_ev_accept(struct he_map *m, uint64_t n);
/*
 * @m's guest side ends (closed, reset or gone): its local state goes, its
 * peer gets EOF (@err 0) or a reset, its queued clients a reset.
 */
void lsw_gone(struct he_map *m, int err);
/*
 * @g's CONNECT or datagram SEND @f (the copy that goes to the NSM, its
 * destination at the start of @iov's payload): mark it NK_F_PEER, a3 the
 * destination guest's id, when that is another guest's address @g may
 * reach through their NSM (hostengine.rst "Guests through their NSM").
 */
void lsw_peer_mark(const struct he_ep *g, struct nk_hdr *f, const struct he_iov *iov);
/*
 * @m's NSM is gone (its NSM socket forgotten): true when @m is a switched
 * connection, which goes on without it, false when it is to be reset.
 */
bool lsw_nsm_gone(struct he_map *m);
/* Data plane loop: switched connections whose TCP_DEFER_ACCEPT time passed. */
void lsw_tick(void);
/* The "sockets" listing's local switching columns. */
void lsw_info(const struct he_map *m, struct he_sock_info *s);

#endif /* _HE_DP_H */
