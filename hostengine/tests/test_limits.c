// SPDX-License-Identifier: GPL-2.0
/*
 * Limits an endpoint must not be able to push the engine past
 * (hostengine.rst, "Limits"): messages longer than the receiver's agreed
 * max_payload, an NSM's replies against a guest's pending_limit, and the
 * per-guest socket cap (max_sockets).
 *
 * The group's endpoints agree different max_payload values: the test NSM
 * NSM_MP, vm1 NK_MAX_PAYLOAD, vm2 VM2_MP (so NSM_MP lies between them),
 * and vm3, attached to nsm0 by the tests that need it, posts only a few
 * eventq buffers so that the engine must hold what the NSM sends it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tnsm.h"

#define NSM_MP		8192
#define VM2_MP		NK_MIN_PAYLOAD
#define LIMIT		(64U << 10)	/* the group's pending_limit */
#define MAX_SOCKETS	16		/* the group's max_sockets */
#define HDR		((uint32_t)sizeof(struct nk_hdr))
#define VM3_BUFS	4

static uint8_t big[2 * NSM_MP];
static struct nk_ep *ep3;		/* vm3, attached; closed by the teardown */

static int td(void **state)
{
	if (ep3) {
		nk_ep_close(ep3);
		ep3 = NULL;
		json_object_put(h_ctl_ok("{\"cmd\": \"detach\", \"guest\": \"vm3\"}"));
	}
	return h_test_teardown(state);
}

#define T(f)	{ #f, f, h_test_setup, td, NULL }

/* Wait until @ep's counter @c reaches @v. */
static void wait_counter(const char *ep, enum h_cnt c, uint64_t v)
{
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;

	while (h_counter(ep, c) < v) {
		if (h_now() > deadline)
			fail_msg("%s: %s %llu, want %llu", ep, h_cnt_names[c],
				 (unsigned long long)h_counter(ep, c), (unsigned long long)v);
		usleep(10000);
	}
}

/* The next EV_PROTO_ERROR the NSM got: NK_PERR_LENGTH -EMSGSIZE for @op. */
static void nsm_expect_length_error(size_t *pos, uint16_t op)
{
	struct tnsm_rec e;

	h_nsm_expect(pos, NK_EV_PROTO_ERROR, H_ANY_SOCK, &e);
	assert_int_equal((int32_t)e.h.status, -EMSGSIZE);
	assert_int_equal(e.h.arg[0], NK_PERR_LENGTH);
	assert_int_equal(e.h.arg[2], op);
}

/* ---- messages longer than the receiver's max_payload ---- */

/*
 * vm1 (NK_MAX_PAYLOAD) sends a BIND the NSM (NSM_MP) could not take:
 * -EMSGSIZE, counted in the NSM's "oversize", nothing written to the NSM.
 * Before the fix this overflowed the NSM's eventq buffer (and, beyond it,
 * the engine's chain array).
 */
static void t_request_over_nsm_max_payload(void **state)
{
	struct h_counters g0, n0;
	uint32_t id = h_new_sock_id();
	struct tnsm_rec r;
	struct nk_hdr h;
	size_t pos;

	(void)state;
	assert_int_equal(nk_ep_max_payload(W.vm1), NK_MAX_PAYLOAD);
	assert_int_equal(h_socket(W.vm1, id, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_BIND, id);
	assert_int_equal(h_call(W.vm1, &h, big, 2 * NSM_MP, NULL, NULL, 0), -EMSGSIZE);
	h_hdr(&h, NK_OP_BIND, id);
	assert_int_equal(h_call(W.vm1, &h, big, NSM_MP + 1, NULL, NULL, 0), -EMSGSIZE);
	h_nsm_none(pos, NK_OP_BIND, H_QUIET_MS);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 2);
	h_assert_delta(H_NSM, &n0, HC_OVERSIZE, 2);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, 0);

	/* Exactly the NSM's max_payload gets through. */
	h_hdr(&h, NK_OP_BIND, id);
	assert_int_equal(h_call(W.vm1, &h, big, NSM_MP, NULL, NULL, 0), 0);
	h_nsm_expect(&pos, NK_OP_BIND, h_nsm_id(H_VM1, id), &r);
	assert_int_equal(r.len, NSM_MP);
	h_close(W.vm1, id);
	h_roundtrip(W.vm2);
	h_pass();
}

/*
 * The NSM answers vm2's GETSOCKOPT with more than vm2's max_payload: the
 * NSM gets EV_PROTO_ERROR, vm2 a -EMSGSIZE reply without payload.
 */
static void t_reply_over_guest_max_payload(void **state)
{
	struct h_counters g0, n0;
	uint32_t id = h_new_sock_id();
	uint32_t sizes[] = { VM2_MP + 1, VM2_MP };
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	unsigned int i;
	size_t pos;

	(void)state;
	assert_int_equal(nk_ep_max_payload(W.vm2), VM2_MP);
	assert_int_equal(h_socket(W.vm2, id, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	tnsm_set_reply(W.nsm, NK_OP_GETSOCKOPT, TNSM_SILENT, 0);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		h_counters(H_VM2, &g0);
		h_counters(H_NSM, &n0);
		pos = tnsm_log_count(W.nsm);
		h_hdr(&h, NK_OP_GETSOCKOPT, id);
		h.req_id = h_new_req_id();
		h_send(W.vm2, &h, NULL, 0);
		h_nsm_expect(&pos, NK_OP_GETSOCKOPT, h_nsm_id(H_VM2, id), &r);
		r.h.flags = NK_F_REPLY;
		r.h.status = 0;
		h_nsm_send(&r.h, big, sizes[i]);
		assert_int_equal(h_recv(W.vm2, &rep, NULL, 0, H_TIMEOUT_MS),
				 sizes[i] > VM2_MP ? 0 : (int)sizes[i]);
		assert_int_equal(rep.op, NK_OP_GETSOCKOPT);
		assert_int_equal(rep.flags, NK_F_REPLY);
		assert_int_equal(rep.req_id, h.req_id);
		assert_int_equal(rep.sock, id);
		if (sizes[i] > VM2_MP) {
			assert_int_equal((int32_t)rep.status, -EMSGSIZE);
			nsm_expect_length_error(&pos, NK_OP_GETSOCKOPT);
			h_assert_delta(H_VM2, &g0, HC_OVERSIZE, 1);
			h_assert_delta(H_VM2, &g0, HC_ERRORS, 1);
			h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
		} else {
			assert_int_equal((int32_t)rep.status, 0);
			h_assert_delta(H_VM2, &g0, HC_OVERSIZE, 0);
		}
	}
	tnsm_defaults(W.nsm);
	h_close(W.vm2, id);
	h_pass();
}

/*
 * A non-data event and a SEND failure reply longer than vm2's
 * max_payload: dropped (vm2's "drops" and "oversize"), EV_PROTO_ERROR to
 * the NSM; the socket stays usable.
 */
static void t_event_over_guest_max_payload(void **state)
{
	static const struct { uint16_t op; uint16_t flags; int32_t status; } m[] = {
		{ NK_EV_ERROR, 0, -ECONNREFUSED },
		{ NK_OP_SEND, NK_F_REPLY, -EPIPE },
	};
	struct h_counters g0, n0;
	uint32_t id = h_new_sock_id(), nid;
	struct nk_hdr h;
	unsigned int i;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm2, id, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	nid = h_nsm_id(H_VM2, id);
	for (i = 0; i < ARRAY_SIZE(m); i++) {
		h_counters(H_VM2, &g0);
		h_counters(H_NSM, &n0);
		pos = tnsm_log_count(W.nsm);
		h_hdr(&h, m[i].op, nid);
		h.flags = m[i].flags;
		h.status = (uint32_t)m[i].status;
		h_nsm_send(&h, big, VM2_MP + 1);
		nsm_expect_length_error(&pos, m[i].op);
		h_recv_none(W.vm2, H_QUIET_MS);
		h_assert_delta(H_VM2, &g0, HC_OVERSIZE, 1);
		h_assert_delta(H_VM2, &g0, HC_DROPS, 1);
		h_assert_delta(H_VM2, &g0, HC_RESETS, 0);
		h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
	}
	h_close(W.vm2, id);
	h_pass();
}

/* ---- an NSM against a guest's pending_limit ---- */

/* vm3 attached to nsm0, VM3_BUFS eventq buffers, one open socket @id. */
static void vm3_open(uint32_t id)
{
	static const struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .nr_event_bufs = VM3_BUFS,
	};
	json_object_put(h_ctl_ok("{\"cmd\": \"attach\", \"guest\": \"vm3\", \"nsm\": \"nsm0\"}"));
	ep3 = h_guest_open(H_VM3, &o);
	assert_non_null(ep3);
	assert_int_equal(h_socket(ep3, id, AF_INET, SOCK_STREAM, 65536, NULL), 0);
}

/*
 * SEND failure replies are not tracked: an NSM could send any number.
 * Past pending_limit they reset the socket like any event; vm3's pending
 * bytes never pass the limit by more than that EV_RESET.  Before the fix
 * they were queued without bound (64 x 8 KiB here).
 */
static void t_failure_replies_bounded(void **state)
{
	const unsigned int n = 64;
	uint32_t id = h_new_sock_id(), nid;
	struct h_counters g0, n0;
	struct nk_hdr h;
	unsigned int i;

	(void)state;
	vm3_open(id);
	nid = h_nsm_id(H_VM3, id);
	h_counters(H_VM3, &g0);
	h_counters(H_NSM, &n0);
	for (i = 0; i < n; i++) {
		h_hdr(&h, NK_OP_SEND, nid);
		h.flags = NK_F_REPLY;
		h.status = (uint32_t)-EPIPE;
		h_nsm_send(&h, big, NSM_MP);
	}
	wait_counter(H_NSM, HC_REQUESTS, n0.v[HC_REQUESTS] + n);
	printf("# vm3: pending_max %llu, limit %u, drops %llu\n",
	       (unsigned long long)h_counter(H_VM3, HC_PENDING_MAX), LIMIT,
	       (unsigned long long)(h_counter(H_VM3, HC_DROPS) - g0.v[HC_DROPS]));
	assert_true(h_counter(H_VM3, HC_PENDING_MAX) <= LIMIT + HDR);
	h_assert_delta(H_VM3, &g0, HC_RESETS, 1);
	assert_true(h_counter(H_VM3, HC_DROPS) > g0.v[HC_DROPS]);
	h_pass();
}

/*
 * Tracked replies carry payload only while it fits under vm3's
 * pending_limit; beyond, the reply comes without it, status -ENOBUFS
 * (counted in "drops"), so that the pending bytes stay under the limit
 * plus one header per outstanding request.  Before the fix every payload
 * was queued (40 x 8 KiB here).
 */
static void t_tracked_replies_bounded(void **state)
{
	const unsigned int n = 40;
	uint32_t id = h_new_sock_id(), nid;
	struct h_counters g0, n0;
	unsigned int i, ok = 0, nobufs = 0;
	struct nk_hdr h;
	struct tnsm_rec r;
	size_t pos;
	int len;

	(void)state;
	vm3_open(id);
	nid = h_nsm_id(H_VM3, id);
	tnsm_set_reply(W.nsm, NK_OP_GETSOCKOPT, TNSM_SILENT, 0);
	pos = tnsm_log_count(W.nsm);
	for (i = 0; i < n; i++) {
		h_hdr(&h, NK_OP_GETSOCKOPT, id);
		h.req_id = 1000 + i;
		h_send(ep3, &h, NULL, 0);
	}
	h_counters(H_VM3, &g0);
	h_counters(H_NSM, &n0);
	for (i = 0; i < n; i++) {
		h_nsm_expect(&pos, NK_OP_GETSOCKOPT, nid, &r);
		r.h.flags = NK_F_REPLY;
		r.h.status = 0;
		h_nsm_send(&r.h, big, NSM_MP);
	}
	wait_counter(H_NSM, HC_REQUESTS, n0.v[HC_REQUESTS] + n);
	printf("# vm3: pending_max %llu, limit %u\n",
	       (unsigned long long)h_counter(H_VM3, HC_PENDING_MAX), LIMIT);
	assert_true(h_counter(H_VM3, HC_PENDING_MAX) <= LIMIT + n * HDR);
	for (i = 0; i < n; i++) {
		len = h_recv(ep3, &h, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(h.op, NK_OP_GETSOCKOPT);
		assert_int_equal(h.req_id, 1000 + i);
		if ((int32_t)h.status == -ENOBUFS) {
			assert_int_equal(len, 0);
			nobufs++;
		} else {
			assert_int_equal((int32_t)h.status, 0);
			assert_int_equal(len, NSM_MP);
			ok++;
		}
	}
	printf("# vm3: %u replies with payload, %u without\n", ok, nobufs);
	assert_true(nobufs > 0 && ok > 0);
	h_assert_delta(H_VM3, &g0, HC_DROPS, nobufs);
	h_assert_delta(H_VM3, &g0, HC_RESETS, 0);
	tnsm_defaults(W.nsm);
	h_close(ep3, id);
	h_pass();
}

/* ---- sockets per guest ---- */

/*
 * The (MAX_SOCKETS + 1)th socket of vm1, by SOCKET or by ACCEPT, gets
 * -EMFILE and never reaches the NSM.
 */
static void t_socket_cap(void **state)
{
	uint32_t ids[MAX_SOCKETS], extra = h_new_sock_id();
	struct h_counters g0;
	struct nk_hdr h, rep;
	unsigned int i, n;
	size_t pos;

	(void)state;
	n = MAX_SOCKETS - h_counter(H_VM1, HC_SOCKETS);
	for (i = 0; i < n; i++) {
		ids[i] = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, ids[i], AF_INET, SOCK_STREAM, 65536, NULL), 0);
	}
	h_counters(H_VM1, &g0);
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(h_socket(W.vm1, extra, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);
	h_hdr(&h, NK_OP_ACCEPT, ids[0]);
	h.arg[0] = extra;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -EMFILE);
	/* The refusal names the new socket, as every ACCEPT reply does. */
	assert_int_equal(rep.arg[0], extra);
	h_nsm_none(pos, NK_OP_SOCKET, H_QUIET_MS);
	h_nsm_none(pos, NK_OP_ACCEPT, 0);
	h_assert_delta(H_VM1, &g0, HC_SOCKET_LIMIT, 2);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 2);
	assert_int_equal(h_counter(H_VM1, HC_SOCKETS), MAX_SOCKETS);
	/* Other guests are not limited by vm1's sockets. */
	h_roundtrip(W.vm2);
	/* Closing one makes room. */
	h_close(W.vm1, ids[0]);
	assert_int_equal(h_socket(W.vm1, extra, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_close(W.vm1, extra);
	for (i = 1; i < n; i++)
		h_close(W.vm1, ids[i]);
	h_pass();
}

/* A bad max_sockets stops the engine with file:line: message. */
static void t_max_sockets_config(void **state)
{
	static const char *const bad[] = { "0", "1048577", "many" };
	char conf[128], line[64], msg[128];
	unsigned int i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(line, sizeof(line), "max_sockets = %s", bad[i]);
		snprintf(msg, sizeof(msg),
			 "bad value '%s' for max_sockets: sockets per guest, 1 to 1048576", bad[i]);
		h_config_refused(line, msg, conf, sizeof(conf));
	}
	h_pass();
}

static const struct CMUnitTest tests[] = {
	T(t_request_over_nsm_max_payload),
	T(t_reply_over_guest_max_payload),
	T(t_event_over_guest_max_payload),
	T(t_failure_replies_bounded),
	T(t_tracked_replies_bounded),
	T(t_socket_cap),
	T(t_max_sockets_config),
};

static int prepare(void)
{
	static const struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .max_payload = VM2_MP,
	};

	memset(big, 0x5a, sizeof(big));
	W.vm2_opts = &o;
	return 0;
}

static const struct h_engine_opts eo = {
	.pending_limit = LIMIT, .max_sockets = MAX_SOCKETS, .nsm_max_payload = NSM_MP,
};

H_MAIN("limits", tests, .opts = &eo, .prepare = prepare)
