/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The host engine test harness: one real hostengine process per test group
 * (a fresh run directory, a configuration with one NSM and three guests),
 * its control socket, its counters, guest endpoints built on vufront, and
 * the helpers every test group shares (messages, data streams, checksums).
 *
 * Endpoints of the standard configuration, in file order (so their ids):
 *   1 nsm0   the NSM, played by the in-process test NSM (tnsm.h)
 *   2 vm1    10.0.0.11, fd00::11, attached to nsm0
 *   3 vm2    10.0.0.12, attached to nsm0
 *   4 vm3    10.0.0.13, detached
 *
 * cmocka assertions are made from the test thread only.
 */
#ifndef _NK_TEST_HARNESS_H
#define _NK_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "vufront.h"

#define H_NSM		"nsm0"
#define H_VM1		"vm1"
#define H_VM2		"vm2"
#define H_VM3		"vm3"
#define H_ID_NSM	1
#define H_ID_VM1	2
#define H_ID_VM2	3
#define H_ID_VM3	4
/* SOCKET a3 E -> N: weight @w (the test NSM agrees NK_FEAT_WEIGHT). */
#define H_WEIGHT(w)	((uint64_t)(w) << NK_SOCK_WEIGHT_SHIFT)

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

#define H_TIMEOUT_MS	5000	/* one expected message */
#define H_QUIET_MS	200	/* "nothing arrives" windows */
#define H_STOP_S	10	/* SIGTERM to exit */

/* Counters, in the order of hostengine.rst. */
enum h_cnt {
	HC_REQUESTS,
	HC_REPLIES,
	HC_EVENTS,
	HC_BYTES_IN,
	HC_BYTES_OUT,
	HC_ERRORS,
	HC_PROTO_ERRORS,
	HC_CREDIT_VIOLATIONS,
	HC_DROPS,
	HC_RESETS,
	HC_PENDING_BYTES,
	HC_PENDING_MAX,
	HC_SOCKETS,
	HC_CONFIG_ERRORS,
	HC_OVERSIZE,
	HC_SOCKET_LIMIT,
	HC_CONN_RESETS,
	HC_PENDING_LIMIT,
	HC_CONN_RATE_LIMIT,
	HC_NSM_QUEUED,
	HC_NSM_QUEUED_MAX,
	HC_NR,
};

extern const char *const h_cnt_names[HC_NR];

struct h_counters {
	uint64_t v[HC_NR];
};

struct h_engine_opts {
	uint64_t pending_limit;		/* 0: the engine's default */
	uint32_t max_sockets;		/* 0: the engine's default */
	uint32_t nsm_max_payload;	/* the test NSM's HELLO; 0: NK_MAX_PAYLOAD */
	const char *vm2_keys;		/* lines added to [guest:vm2], or NULL */
	const char *vm3_keys;		/* lines added to [guest:vm3], or NULL */
};

struct tnsm;

/* The group's world: the engine, the test NSM and the two attached guests. */
struct h_world {
	char dir[64];			/* run_dir (mkdtemp) */
	char name[64];			/* [engine] name */
	char log[192];			/* engine stderr */
	char ctl[108];			/* control.sock */
	uint64_t pending_limit;
	pid_t pid;
	struct tnsm *nsm;
	struct nk_ep *vm1;
	struct nk_ep *vm2;
	const struct nk_ep_opts *vm2_opts;	/* vm2's, if not the defaults */
};

extern struct h_world W;

/* ---- engine life cycle (group setup / teardown) ---- */

int h_engine_start(const char *tag, const struct h_engine_opts *o);
/* SIGTERM; 0 if it exited 0 within H_STOP_S, else -1 (SIGKILLed). */
int h_engine_stop(void);
bool h_engine_alive(void);
void h_log_tail(unsigned int lines);
void h_sock_path(char *buf, size_t size, const char *ep);
/* The test NSM started on endpoint @name's socket, once the engine has it ready. */
struct tnsm *h_nsm_open(const char *name);
/* $@env if set, else @rel relative to the test binary's directory. */
void h_tool_path(char *buf, size_t size, const char *env, const char *rel);
/*
 * An engine whose file is "[engine]", "name = bad" and @line, written to
 * @conf (W.dir/bad.conf), must exit 1 saying "@conf:N: @msg", N the
 * number of @line's last line (3 if it has one).
 */
void h_config_refused(const char *line, const char *msg, char *conf, size_t size);
/*
 * Standard group setup: engine, test NSM on nsm0, vm1 and vm2 (HELLO done).
 * Teardown stops everything and cleans up; both return 0 or -1.
 */
int h_group_setup(const char *tag, const struct h_engine_opts *o);
int h_group_teardown(void);

/*
 * Per-test setup/teardown: the teardown prints the engine log tail when the
 * test did not reach h_pass(), and returns the test NSM to its defaults.
 */
int h_test_setup(void **state);
int h_test_teardown(void **state);
void h_pass(void);
#define H_TEST(f)	cmocka_unit_test_setup_teardown(f, h_test_setup, h_test_teardown)
/* A table-driven case: test @f with state @s, reported as @name. */
#define H_TEST_PRE(name, f, s) \
	{ name, f, h_test_setup, h_test_teardown, (void *)(s) }

/*
 * A group of tests, one binary: h_main() sets up the world
 * (h_group_setup() with @opts), runs @tests with TAP output and tears the
 * world down.  @prepare runs before the world is set up, @ready after it
 * (either NULL; non-zero fails the group setup).
 */
struct h_group {
	const char *name;
	const struct CMUnitTest *tests;
	size_t n;
	const struct h_engine_opts *opts;
	int (*prepare)(void);
	int (*ready)(void);
};

/* Run @g; returns the failure count. */
int h_main(const struct h_group *g);
/* The main() of a group whose @tests is a static array. */
#define H_MAIN(gname, gtests, ...)						\
	int main(void)								\
	{									\
		static const struct h_group g = {				\
			.name = gname, .tests = gtests, .n = ARRAY_SIZE(gtests),	\
			__VA_ARGS__						\
		};								\
		return h_main(&g);						\
	}

/* ---- control socket ---- */

/*
 * A request sent without waiting (printf format): the connection, or -1;
 * h_ctl_finish() reads the reply (a listing's pages joined, "more"
 * removed) and closes it.
 */
int h_ctl_start(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_object *h_ctl_finish(int fd);
/* One request line (printf format); the reply object, or NULL. */
json_object *h_ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, asserting "ok": true.  Caller puts the object. */
json_object *h_ctl_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void h_counters(const char *ep, struct h_counters *c);
uint64_t h_counter(const char *ep, enum h_cnt c);
/* list: the endpoint's object (a new reference), asserted present. */
json_object *h_list_ep(const char *ep);
const char *h_json_str(json_object *o, const char *key);
uint64_t h_json_u64(json_object *o, const char *key);
/* @p holds the nk_addr of @family, @ip and @port (nk_addr_parse()). */
void h_assert_addr(const uint8_t *p, int family, const char *ip, uint16_t port);
/* sockets EP: the entry for guest socket @gsock, NULL if none (new ref). */
json_object *h_sock_entry(const char *ep, uint32_t gsock);
/* The NSM id the engine mapped @guest's @gsock to (asserted present). */
uint32_t h_nsm_id(const char *guest, uint32_t gsock);
int h_nr_sockets(const char *ep);
/* Wait until the engine reports @ep in @state ("waiting", ...). */
void h_wait_state(const char *ep, const char *state);

/* Counter deltas: assert ep's counter moved by exactly @d since @before. */
#define h_assert_delta(ep, before, c, d) \
	h_assert_delta_(ep, before, c, d, __FILE__, __LINE__)
void h_assert_delta_(const char *ep, const struct h_counters *before, enum h_cnt c,
		     uint64_t d, const char *file, int line);

/* ---- guest endpoints and messages ---- */

struct nk_ep *h_guest_open(const char *name, const struct nk_ep_opts *o);
/* A guest socket id that no test has used yet (far from NSM ids). */
uint32_t h_new_sock_id(void);
/* A request id, distinct from any the engine chooses. */
uint64_t h_new_req_id(void);

void h_hdr(struct nk_hdr *h, uint16_t op, uint32_t sock);
/* nk_ep_send, asserted to succeed; h->req_id is left as set. */
void h_send(struct nk_ep *ep, struct nk_hdr *h, const void *p, size_t len);
/*
 * The next message on @ep's eventq within @timeout_ms, asserted present;
 * returns its payload length (copied up to @bufsz).
 */
int h_recv(struct nk_ep *ep, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms);
/* Assert that nothing arrives on @ep within @ms. */
void h_recv_none(struct nk_ep *ep, int ms);
/*
 * Send @req (req_id set here if 0) and receive its reply, which must be the
 * next message: op, NK_F_REPLY, req_id and sock asserted.  Returns status.
 */
int h_call(struct nk_ep *ep, struct nk_hdr *req, const void *p, size_t len,
	   struct nk_hdr *rep, void *rbuf, size_t rbufsz);
/* SOCKET with NK_F_CREDIT(@buf_alloc); returns the status. */
int h_socket(struct nk_ep *ep, uint32_t id, int family, int type, uint32_t buf_alloc,
	     struct nk_hdr *rep);
/* CLOSE, asserting status 0. */
void h_close(struct nk_ep *ep, uint32_t id);
/* SOCKET then CLOSE through the NSM: the engine still serves @ep. */
void h_roundtrip(struct nk_ep *ep);

/*
 * A raw device: a vufront connection driven by hand, without nk_ep, for
 * malformed descriptor chains.  @nev eventq buffers of a header plus
 * NK_MAX_PAYLOAD are posted (0: none); with @hello, HELLO is done.
 */
struct h_raw {
	struct vuf_dev *d;
	uint8_t *ev;			/* eventq buffers */
	uint64_t ev_gpa;
	unsigned int nev;
	uint8_t *msg;			/* scratch for requests, H_RAW_MSG bytes */
	uint64_t msg_gpa;
	bool session;			/* h_raw_open() said HELLO */
};

#define H_RAW_EVSZ	(sizeof(struct nk_hdr) + NK_MAX_PAYLOAD)
#define H_RAW_MSG	(2 * H_RAW_EVSZ)
#define H_RAW_TOKEN	((void *)(uintptr_t)0x7fff0000)	/* raw request chains */

struct h_raw *h_raw_open(const char *ep, unsigned int nev, bool hello);
/* The same on the vhost-user socket @path (a carrier's). */
struct h_raw *h_raw_open_path(const char *path, unsigned int nev, bool hello);
void h_raw_close(struct h_raw *r);
/* Post eventq buffer @idx (< nev) and kick. */
void h_raw_post(struct h_raw *r, unsigned int idx);
/*
 * The next message on the eventq (buffer re-posted), asserted to come
 * within @timeout_ms; returns its payload length.
 */
int h_raw_recv(struct h_raw *r, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms);
/* A free requestq (@vq) descriptor with these fields; returns its index. */
uint16_t h_raw_desc(struct h_raw *r, unsigned int vq, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next);
/* Publish @head on @vq with H_RAW_TOKEN and kick. */
void h_raw_publish(struct h_raw *r, unsigned int vq, uint16_t head);
/* Wait for @vq's next used element: asserts @token, returns its length. */
uint32_t h_raw_used(struct h_raw *r, unsigned int vq, void *token);
/* A well-formed request in one descriptor; returns the used length. */
uint32_t h_raw_send(struct h_raw *r, const struct nk_hdr *h, const void *p, size_t len);

/* ---- the test NSM of the group (W.nsm) ---- */

struct tnsm_rec;
#define H_ANY_SOCK	UINT32_MAX
/* The next record from *pos with @op and @sock, asserted to come. */
void h_nsm_expect(size_t *pos, uint16_t op, uint32_t sock, struct tnsm_rec *r);
/* Assert that no record with @op (0: any) arrives after @pos within @ms. */
void h_nsm_none(size_t pos, uint16_t op, int ms);
/* Send as the NSM, asserting success. */
void h_nsm_send(struct nk_hdr *h, const void *p, size_t len);

/* ---- data ---- */

uint64_t h_fnv1a(uint64_t h, const void *p, size_t len);
#define H_FNV_INIT	0xcbf29ce484222325ULL
/* Deterministic test data: bytes [off, off+len) of stream @seed. */
void h_pattern(void *buf, size_t len, uint64_t seed, uint64_t off);
double h_now(void);

/*
 * One guest socket's bulk streams, driven by h_xfer() on the guest side
 * while the test NSM drives the other ends.
 */
struct h_stream {
	uint32_t id;			/* guest socket id */
	uint32_t nsm_sock;		/* its NSM id */
	uint64_t seed;
	/* guest -> NSM */
	uint64_t tx_total, tx_done, tx_hash;
	struct nk_credit_tx tx;		/* the NSM's credit */
	/* NSM -> guest */
	uint64_t rx_total, rx_bytes, rx_hash;
	struct nk_credit_rx rx;		/* ours */
	bool rx_reset;
};

/*
 * Open a stream socket on @ep with receive credit @buf_alloc; the NSM's
 * credit comes from its SOCKET reply.
 */
void h_stream_open(struct nk_ep *ep, const char *guest, struct h_stream *s,
		   uint32_t buf_alloc, uint64_t seed);
/*
 * Move data until every stream has sent tx_total and received rx_total,
 * or @timeout_ms.  0 or -ETIMEDOUT; unexpected messages fail the test.
 */
int h_xfer(struct nk_ep *ep, struct h_stream *s, unsigned int n, int timeout_ms);

#endif /* _NK_TEST_HARNESS_H */
