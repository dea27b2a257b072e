/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The test NSM: a thread that plays the NSM endpoint (NK_ROLE_NSM) on a
 * vufront device.  It records every message the engine sends it, answers
 * requests as its knobs say, consumes SEND data (checksummed, credit
 * returned), streams EV_DATA within the guest's credit, and sends whatever
 * the test asks it to.
 *
 * The thread owns the device; the test talks to it only through these
 * functions (a mutex, a condition variable and an eventfd).
 */
#ifndef _NK_TEST_TNSM_H
#define _NK_TEST_TNSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vufront.h"

#define TNSM_REC_DATA		256		/* payload bytes kept per record */
#define TNSM_CREDIT		(1U << 20)	/* default credit on SOCKET/ACCEPT */
#define TNSM_IOCTL_VAL		0x1234567ULL	/* IOCTL reply a0 */
#define TNSM_OPTVAL		0xa1b2c3d4U	/* GETSOCKOPT reply payload */
#define TNSM_PEER_PORT		4242		/* ACCEPT/GETPEERNAME peer */
#define TNSM_PEER_IP		"192.0.2.1"
#define TNSM_NAME_PORT		8080		/* GETSOCKNAME */
/* INFO records for open sockets (tnsm_info_record()) */
#define TNSM_INFO_LOCAL_IP	"10.0.0.11"
#define TNSM_INFO_PORT(sock)	((uint16_t)(30000 + (sock) % 30000))
#define TNSM_INFO_RTT(sock)	(1000 + (sock))

enum tnsm_mode {
	TNSM_AUTO,		/* answer with the configured status */
	TNSM_SILENT,		/* record only: the request stays outstanding */
};

/* One message received from the engine. */
struct tnsm_rec {
	struct nk_hdr h;
	uint32_t len;			/* full payload length */
	uint8_t data[TNSM_REC_DATA];	/* its first bytes */
};

/* What the NSM knows about one of its sockets. */
struct tnsm_sock_info {
	uint32_t id;
	uint32_t guest_ep;		/* SOCKET a3 >> 32 (0 for ACCEPTed) */
	bool closed;			/* CLOSE received */
	uint64_t rx_bytes, rx_hash;	/* SEND data consumed */
	uint64_t tx_total, tx_done, tx_hash;	/* EV_DATA streamed */
};

struct tnsm;

struct tnsm *tnsm_start(const char *path);
/* The same, offering @max_payload in HELLO (0: NK_MAX_PAYLOAD). */
struct tnsm *tnsm_start_mp(const char *path, uint32_t max_payload);
/* ... and @features in HELLO (0: NK_FEAT_ALL). */
struct tnsm *tnsm_start_opts(const char *path, uint32_t max_payload, uint64_t features);
/* Stop the thread and disconnect abruptly (as a dying VM). */
void tnsm_stop(struct tnsm *t);
uint32_t tnsm_ep_id(struct tnsm *t);
const char *tnsm_ep_name(struct tnsm *t);
/* Non-zero: the thread met something it could not handle (message logged). */
int tnsm_error(struct tnsm *t);

/* Knobs (tnsm_defaults restores them all). */
void tnsm_defaults(struct tnsm *t);
/* NK_OP_INFO too: TNSM_SILENT leaves it unanswered, a status fails it. */
void tnsm_set_reply(struct tnsm *t, uint16_t op, enum tnsm_mode mode, int32_t status);
/* The record an INFO reply carries for open socket @sock. */
struct nk_sock_info;
void tnsm_info_record(uint32_t sock, struct nk_sock_info *si);
void tnsm_set_credit(struct tnsm *t, uint32_t buf_alloc);
/* Record SEND messages in the log (default yes; bulk tests say no). */
void tnsm_record_sends(struct tnsm *t, bool on);
/* Stop taking messages from the eventq (@on), or go on, as a busy NSM. */
void tnsm_hold(struct tnsm *t, bool on);

/* The log: records are numbered from 0 in arrival order. */
size_t tnsm_log_count(struct tnsm *t);
/*
 * The first record at or after *pos with @op (0: any), waiting up to
 * @timeout_ms; *pos moves past it.  0 or -ETIMEDOUT.
 */
int tnsm_wait(struct tnsm *t, size_t *pos, uint16_t op, int timeout_ms, struct tnsm_rec *out);
/* Like tnsm_wait but matching the socket id too. */
int tnsm_wait_sock(struct tnsm *t, size_t *pos, uint16_t op, uint32_t sock, int timeout_ms,
		   struct tnsm_rec *out);

/* Send a message as the NSM (from its thread); nk_ep_send's result. */
int tnsm_send(struct tnsm *t, const struct nk_hdr *h, const void *payload, size_t len);

/* Socket state; -ENOENT if the NSM never saw @sock. */
int tnsm_sock(struct tnsm *t, uint32_t sock, struct tnsm_sock_info *out);
/* Stream @bytes of h_pattern(@seed) to @sock as EV_DATA within credit. */
int tnsm_stream(struct tnsm *t, uint32_t sock, uint64_t bytes, uint64_t seed);
/* Wait until @sock has consumed @bytes of SEND data: 0 or -ETIMEDOUT. */
int tnsm_wait_rx(struct tnsm *t, uint32_t sock, uint64_t bytes, int timeout_ms);
/* Wait until @sock's stream is fully sent: 0 or -ETIMEDOUT. */
int tnsm_wait_tx(struct tnsm *t, uint32_t sock, int timeout_ms);
/* EV_DATA messages sent so far (all sockets). */
uint64_t tnsm_data_msgs(struct tnsm *t);
/* Times the NSM kicked its eventq (buffers posted again): the engine asked. */
uint64_t tnsm_evq_kicks(struct tnsm *t);

#endif /* _NK_TEST_TNSM_H */
