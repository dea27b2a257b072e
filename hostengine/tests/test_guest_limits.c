// SPDX-License-Identifier: GPL-2.0
/*
 * Per-guest limits (hostengine.rst, "Limits"): a [guest:] section's
 * max_sockets, max_pending, max_conn_rate and conn_burst, the [engine]
 * values for the guests that do not set them, and what a guest at its
 * limit gets: -EMFILE for a socket, -EAGAIN for a CONNECT, an aborted
 * connection (-ECONNABORTED) for an ACCEPT, each counted, the other
 * guests unaffected.
 *
 * The group's vm2 has its own limits and weight 3 (VM2_KEYS), vm3 its max_pending
 * (VM3_PENDING, attached to nsm0 by the test that needs it, posting only
 * VM3_BUFS eventq buffers); vm1 has the [engine] ones: max_sockets
 * ENGINE_SOCKETS, pending_limit 8 MiB, no connection rate limit.  The bucket
 * refills at VM2_RATE (1) a second, so a test that must find it empty
 * empties it first and checks that it did (a token may come at any time).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tnsm.h"

#define ENGINE_SOCKETS	16		/* [engine] max_sockets */
#define VM2_SOCKETS	4
#define VM2_PENDING	65536
#define VM2_RATE	1
#define VM2_BURST	3
#define VM2_KEYS	"max_sockets = 4\nmax_pending = 65536\nmax_conn_rate = 1\n" \
			"conn_burst = 3\nweight = 3\n"
#define VM3_KEYS	"max_pending = 16384\n"
#define TRIES		5		/* to find the bucket empty */
#define VM3_PENDING	16384
#define VM3_BUFS	4
#define FLOOD_LEN	4096
#define HDR		((uint32_t)sizeof(struct nk_hdr))
#define NSM_QUEUE	32		/* the engine's HE_NSM_QUEUE */
#define FLOOD_MSGS	150		/* vm2's SENDs while the NSM is busy */

static uint8_t flood[FLOOD_LEN];

#define T(f)	{ #f, f, h_test_setup, h_test_teardown, NULL }

static void assert_limits(const char *ep, uint64_t sockets, uint64_t pending, uint64_t rate,
			  uint64_t burst)
{
	json_object *e = h_list_ep(ep);

	assert_int_equal(h_json_u64(e, "max_sockets"), sockets);
	assert_int_equal(h_json_u64(e, "max_pending"), pending);
	assert_int_equal(h_json_u64(e, "max_conn_rate"), rate);
	assert_int_equal(h_json_u64(e, "conn_burst"), burst);
	json_object_put(e);
}

/* CONNECT of @id to @ip (NULL: AF_UNSPEC, a disconnect): the status. */
static int connect_to(struct nk_ep *ep, uint32_t id, const char *ip)
{
	struct nk_addr a = { 0 };
	struct nk_hdr h;

	if (ip)
		assert_int_equal(nk_addr_parse(&a, ip, 80), 0);
	h_hdr(&h, NK_OP_CONNECT, id);
	return h_call(ep, &h, &a, sizeof(a), NULL, NULL, 0);
}

/* CONNECTs of vm2's @id until one is refused: the number that were not. */
static unsigned int connect_until_refused(uint32_t id, double *elapsed)
{
	double t0 = h_now();
	unsigned int ok = 0;
	int st;

	while ((st = connect_to(W.vm2, id, "192.0.2.1")) == 0) {
		ok++;
		assert_true(ok < 100);
	}
	assert_int_equal(st, -EAGAIN);
	if (elapsed)
		*elapsed = h_now() - t0;
	return ok;
}

/* The list shows each guest's limits: vm2's own, vm1's the [engine] ones. */
static void t_limits_listed(void **state)
{
	(void)state;
	assert_limits(H_VM1, ENGINE_SOCKETS, 8U << 20, 0, 0);
	assert_limits(H_VM2, VM2_SOCKETS, VM2_PENDING, VM2_RATE, VM2_BURST);
	h_pass();
}

/*
 * vm2 at its max_sockets gets -EMFILE (counted, nothing reaches the NSM)
 * while vm1 opens more than vm2 may: the limit is vm2's own.
 */
static void t_guest_max_sockets(void **state)
{
	uint32_t v2[VM2_SOCKETS], v1[2 * VM2_SOCKETS], extra = h_new_sock_id();
	struct h_counters g1, g2;
	unsigned int i;
	size_t pos;

	(void)state;
	assert_int_equal(h_counter(H_VM2, HC_SOCKETS), 0);	/* the tests before closed theirs */
	for (i = 0; i < VM2_SOCKETS; i++) {
		v2[i] = h_new_sock_id();
		assert_int_equal(h_socket(W.vm2, v2[i], AF_INET, SOCK_STREAM, 65536, NULL), 0);
	}
	h_counters(H_VM1, &g1);
	h_counters(H_VM2, &g2);
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(h_socket(W.vm2, extra, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);
	h_nsm_none(pos, NK_OP_SOCKET, H_QUIET_MS);
	h_assert_delta(H_VM2, &g2, HC_SOCKET_LIMIT, 1);
	for (i = 0; i < ARRAY_SIZE(v1); i++) {
		v1[i] = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, v1[i], AF_INET, SOCK_STREAM, 65536, NULL), 0);
	}
	h_assert_delta(H_VM1, &g1, HC_SOCKET_LIMIT, 0);
	for (i = 0; i < ARRAY_SIZE(v1); i++)
		h_close(W.vm1, v1[i]);
	for (i = 0; i < VM2_SOCKETS; i++)
		h_close(W.vm2, v2[i]);
	h_pass();
}

/*
 * vm2's CONNECTs: the burst, plus what the bucket refilled meanwhile, then
 * -EAGAIN (counted, not forwarded).  Disconnects (AF_UNSPEC) take no
 * token; vm1, without a rate limit, connects as often as it likes.  Once
 * a token is back (1 / VM2_RATE seconds), vm2 connects again.
 */
static void t_connect_rate(void **state)
{
	uint32_t id = h_new_sock_id(), id1 = h_new_sock_id();
	struct h_counters g1, g2;
	unsigned int ok, i;
	double elapsed;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm2, id, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm1, id1, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	sleep((VM2_BURST + VM2_RATE - 1) / VM2_RATE);	/* a full bucket */
	h_counters(H_VM2, &g2);
	pos = tnsm_log_count(W.nsm);
	ok = connect_until_refused(id, &elapsed);
	printf("# vm2: %u CONNECTs in %.3f s before -EAGAIN\n", ok, elapsed);
	assert_true(ok >= VM2_BURST);
	assert_true(ok <= VM2_BURST + (unsigned int)(elapsed * VM2_RATE) + 1);
	h_assert_delta(H_VM2, &g2, HC_CONN_RATE_LIMIT, 1);
	/* The NSM got those that were not refused, and no other. */
	for (i = 0; i < ok; i++)
		h_nsm_expect(&pos, NK_OP_CONNECT, h_nsm_id(H_VM2, id), NULL);
	h_nsm_none(pos, NK_OP_CONNECT, H_QUIET_MS);

	/* Disconnects take no token: not one refused, the bucket empty. */
	for (i = 0; i < 5; i++)
		assert_int_equal(connect_to(W.vm2, id, NULL), 0);
	h_assert_delta(H_VM2, &g2, HC_CONN_RATE_LIMIT, 1);

	h_counters(H_VM1, &g1);
	for (i = 0; i < 20; i++)
		assert_int_equal(connect_to(W.vm1, id1, "192.0.2.1"), 0);
	h_assert_delta(H_VM1, &g1, HC_CONN_RATE_LIMIT, 0);

	sleep(1 + 1 / VM2_RATE);
	assert_int_equal(connect_to(W.vm2, id, "192.0.2.1"), 0);
	h_close(W.vm2, id);
	h_close(W.vm1, id1);
	h_pass();
}

/*
 * A connection vm2 accepts with its bucket empty is aborted: the NSM
 * accepted it and gets a CLOSE for it, vm2 an ACCEPT reply -ECONNABORTED
 * naming the socket, which it does not hold.  Counted.
 */
static void t_accept_rate_abort(void **state)
{
	uint32_t c = h_new_sock_id(), l = h_new_sock_id(), n = 0;
	struct h_counters g2;
	struct tnsm_rec r;
	struct nk_hdr h, rep;
	unsigned int try;
	uint64_t socks;
	size_t pos;
	int st = 0;

	(void)state;
	assert_int_equal(h_socket(W.vm2, c, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm2, l, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	socks = h_counter(H_VM2, HC_SOCKETS);
	for (try = 0; try < TRIES; try++) {
		connect_until_refused(c, NULL);
		h_counters(H_VM2, &g2);
		pos = tnsm_log_count(W.nsm);
		n = h_new_sock_id();
		h_hdr(&h, NK_OP_ACCEPT, l);
		h.arg[0] = n;
		st = h_call(W.vm2, &h, NULL, 0, &rep, NULL, 0);
		if (st == -ECONNABORTED)
			break;
		/* A token came meanwhile: accepted. */
		assert_int_equal(st, 0);
		h_close(W.vm2, n);
	}
	assert_int_equal(st, -ECONNABORTED);
	assert_int_equal(rep.arg[0], n);
	h_nsm_expect(&pos, NK_OP_ACCEPT, h_nsm_id(H_VM2, l), &r);
	h_nsm_expect(&pos, NK_OP_CLOSE, (uint32_t)r.h.arg[0], NULL);
	h_assert_delta(H_VM2, &g2, HC_CONN_RATE_LIMIT, 1);
	assert_int_equal(h_counter(H_VM2, HC_SOCKETS), socks);

	/* With a token back, the next one is accepted. */
	sleep(1 + 1 / VM2_RATE);
	h_hdr(&h, NK_OP_ACCEPT, l);
	h.arg[0] = n;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, &rep, NULL, 0), 0);
	h_close(W.vm2, n);
	h_close(W.vm2, l);
	h_close(W.vm2, c);
	h_pass();
}

/*
 * The NSM floods vm3, which does not read, and vm1 with SEND failure
 * replies (not tracked: only max_pending bounds them): vm3's pending
 * bytes stop at its own max_pending, the socket is reset (EV_RESET
 * -ENOBUFS), refusals counted in its pending_limit; vm1, under the
 * [engine] pending_limit, gets every one.
 */
static void t_guest_max_pending(void **state)
{
	static const struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .nr_event_bufs = VM3_BUFS,
	};
	const unsigned int n = 3 * VM3_PENDING / FLOOD_LEN;
	uint32_t id3 = h_new_sock_id(), id1 = h_new_sock_id(), nid3, nid1;
	struct h_counters g1, g3;
	struct nk_ep *ep3;
	struct nk_hdr h;
	unsigned int i;

	(void)state;
	assert_limits(H_VM3, ENGINE_SOCKETS, VM3_PENDING, 0, 0);
	json_object_put(h_ctl_ok("{\"cmd\": \"attach\", \"guest\": \"vm3\", \"nsm\": \"nsm0\"}"));
	ep3 = h_guest_open(H_VM3, &o);
	assert_non_null(ep3);
	assert_int_equal(h_socket(ep3, id3, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm1, id1, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	nid3 = h_nsm_id(H_VM3, id3);
	nid1 = h_nsm_id(H_VM1, id1);
	h_counters(H_VM1, &g1);
	h_counters(H_VM3, &g3);
	for (i = 0; i < n; i++) {
		h_hdr(&h, NK_OP_SEND, nid3);
		h.flags = NK_F_REPLY;
		h.status = (uint32_t)-EPIPE;
		h_nsm_send(&h, flood, FLOOD_LEN);
		h.sock = nid1;
		h_nsm_send(&h, flood, FLOOD_LEN);
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(h_recv(W.vm1, &h, NULL, 0, H_TIMEOUT_MS), FLOOD_LEN);
		assert_int_equal(h.op, NK_OP_SEND);
		assert_int_equal((int32_t)h.status, -EPIPE);
	}
	printf("# vm3: pending_max %llu, max_pending %u\n",
	       (unsigned long long)h_counter(H_VM3, HC_PENDING_MAX), VM3_PENDING);
	assert_true(h_counter(H_VM3, HC_PENDING_MAX) <= VM3_PENDING + HDR);
	h_assert_delta(H_VM3, &g3, HC_RESETS, 1);
	assert_true(h_counter(H_VM3, HC_PENDING_LIMIT) > g3.v[HC_PENDING_LIMIT]);
	h_assert_delta(H_VM1, &g1, HC_RESETS, 0);
	h_assert_delta(H_VM1, &g1, HC_PENDING_LIMIT, 0);
	h_close(W.vm1, id1);
	nk_ep_close(ep3);
	json_object_put(h_ctl_ok("{\"cmd\": \"detach\", \"guest\": \"vm3\"}"));
	h_pass();
}

/*
 * hostengine.rst, "Data plane": the NSM (NK_FEAT_WEIGHT) is told each
 * guest's weight in SOCKET a3 bits 16..25: vm1's 1, vm2's 3.
 */
static void t_weight_to_nsm(void **state)
{
	uint32_t id1 = h_new_sock_id(), id2 = h_new_sock_id();
	struct tnsm_rec r;
	size_t pos;

	(void)state;
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(h_socket(W.vm1, id1, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3], NK_SOCK_URG | H_WEIGHT(1) | (uint64_t)H_ID_VM1 << 32);
	assert_int_equal(h_socket(W.vm2, id2, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3], NK_SOCK_URG | H_WEIGHT(3) | (uint64_t)H_ID_VM2 << 32);
	assert_int_equal((r.h.arg[3] & NK_SOCK_WEIGHT_MASK) >> NK_SOCK_WEIGHT_SHIFT, 3);
	h_close(W.vm1, id1);
	h_close(W.vm2, id2);
	h_pass();
}

/*
 * hostengine.rst, "Data plane": while the NSM takes nothing, vm2 floods it
 * with small SENDs, then vm1 sends one.  vm2 queues toward the NSM no more
 * than its share of HE_NSM_QUEUE (the rest waits in its own requestq), so
 * vm1's SEND is written right behind those and the NSM, once it goes on,
 * takes it before all but NSM_QUEUE of vm2's; every SEND arrives, each
 * guest's in its order.
 */
static void t_flood_share(void **state)
{
	uint32_t id1 = h_new_sock_id(), id2 = h_new_sock_id(), n1, n2, seq;
	size_t pos, i, before_vm1 = 0;
	struct tnsm_rec r;
	struct nk_hdr h;
	bool seen1 = false;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id1, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm2, id2, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	n1 = h_nsm_id(H_VM1, id1);
	n2 = h_nsm_id(H_VM2, id2);
	pos = tnsm_log_count(W.nsm);
	tnsm_hold(W.nsm, true);
	for (seq = 0; seq < FLOOD_MSGS; seq++) {
		h_hdr(&h, NK_OP_SEND, id2);
		h_send(W.vm2, &h, &seq, sizeof(seq));
	}
	/* The engine takes what it will of the flood (and vm1's comes later). */
	usleep(2 * H_QUIET_MS * 1000);
	h_hdr(&h, NK_OP_SEND, id1);
	seq = 0xfeed;
	h_send(W.vm1, &h, &seq, sizeof(seq));
	usleep(H_QUIET_MS * 1000);
	tnsm_hold(W.nsm, false);

	for (seq = 0; seq < FLOOD_MSGS || !seen1;) {
		uint32_t v;

		h_nsm_expect(&pos, NK_OP_SEND, H_ANY_SOCK, &r);
		memcpy(&v, r.data, sizeof(v));
		if (r.h.sock == n1) {
			assert_int_equal(v, 0xfeed);
			seen1 = true;
			before_vm1 = seq;
			continue;
		}
		assert_int_equal(r.h.sock, n2);
		assert_int_equal(v, seq);
		seq++;
	}
	printf("# vm1's SEND taken after %zu of vm2's %u\n", before_vm1, FLOOD_MSGS);
	assert_true(before_vm1 <= NSM_QUEUE);
	printf("# vm2: nsm_queued_max %llu\n",
	       (unsigned long long)h_counter(H_VM2, HC_NSM_QUEUED_MAX));
	assert_true(h_counter(H_VM2, HC_NSM_QUEUED_MAX) <= NSM_QUEUE);
	for (i = 0; i < 100 && h_counter(H_VM2, HC_NSM_QUEUED); i++)
		usleep(10000);
	assert_int_equal(h_counter(H_VM2, HC_NSM_QUEUED), 0);
	assert_int_equal(h_counter(H_VM1, HC_NSM_QUEUED), 0);
	h_close(W.vm1, id1);
	h_close(W.vm2, id2);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	T(t_limits_listed),
	T(t_weight_to_nsm),
	T(t_flood_share),
	T(t_guest_max_sockets),
	T(t_guest_max_pending),
	T(t_connect_rate),
	T(t_accept_rate_abort),
};

static const struct h_engine_opts eo = {
	.max_sockets = ENGINE_SOCKETS, .vm2_keys = VM2_KEYS, .vm3_keys = VM3_KEYS,
};

H_MAIN("guest_limits", tests, .opts = &eo)
