// SPDX-License-Identifier: GPL-2.0
/*
 * A stalled guest: vm2 (4 eventq buffers) stops reading its eventq while
 * the NSM pushes EV_DATA at its sockets.  The engine holds at most the
 * credit (or pending_limit, beyond which it resets vm2's sockets), the NSM
 * is never blocked, and vm1's transfer running meanwhile completes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tnsm.h"

#define MIB		(1ULL << 20)
#define LIMIT		(4 * MIB)	/* the group's pending_limit */
#define VM2_BUFS	4
#define NS		4		/* vm2's sockets */
#define VM1_BYTES	(16 * MIB)
#define XFER_MS		120000
#define HDR		sizeof(struct nk_hdr)

/* vm1: VM1_BYTES each way through one socket; returns the seconds taken. */
static double vm1_transfer(void)
{
	struct tnsm_sock_info info;
	struct h_stream s;
	double t0 = h_now();

	h_stream_open(W.vm1, H_VM1, &s, 1 << 20, 77);
	s.tx_total = VM1_BYTES;
	s.rx_total = VM1_BYTES;
	assert_int_equal(tnsm_stream(W.nsm, s.nsm_sock, VM1_BYTES, 78), 0);
	if (h_xfer(W.vm1, &s, 1, XFER_MS))
		fail_msg("vm1's transfer did not complete within %d s", XFER_MS / 1000);
	assert_int_equal(tnsm_wait_rx(W.nsm, s.nsm_sock, VM1_BYTES, XFER_MS), 0);
	assert_int_equal(tnsm_sock(W.nsm, s.nsm_sock, &info), 0);
	assert_true(info.rx_hash == s.tx_hash);
	assert_true(info.tx_hash == s.rx_hash);
	t0 = h_now() - t0;
	for (;;) {
		struct nk_hdr h;

		if (nk_ep_recv(W.vm1, &h, NULL, 0, 100) < 0)
			break;
		assert_int_equal(h.op, NK_OP_CREDIT);
	}
	h_close(W.vm1, s.id);
	return t0;
}

/*
 * vm2 reads again: everything the engine held arrives, in order and
 * intact; returns the number of EV_RESETs (-ENOBUFS) seen.
 */
static unsigned int vm2_read_all(struct h_stream *s, unsigned int n)
{
	static uint8_t buf[NK_MAX_PAYLOAD];
	unsigned int resets = 0, i;
	struct nk_hdr h;
	int len;

	while ((len = nk_ep_recv(W.vm2, &h, buf, sizeof(buf), 300)) >= 0) {
		struct h_stream *x = NULL;

		for (i = 0; i < n; i++)
			if (s[i].id == h.sock)
				x = &s[i];
		if (!x)
			fail_msg("vm2: op %#x for unknown socket %u", h.op, h.sock);
		if (h.op == NK_EV_DATA) {
			assert_false(x->rx_reset);
			x->rx_hash = h_fnv1a(x->rx_hash, buf, len);
			x->rx_bytes += len;
		} else if (h.op == NK_EV_RESET) {
			assert_int_equal((int32_t)h.status, -ENOBUFS);
			assert_false(x->rx_reset);
			x->rx_reset = true;
			resets++;
		} else {
			fail_msg("vm2: unexpected op %#x", h.op);
		}
	}
	return resets;
}

static void stall(uint32_t credit, bool over)
{
	struct h_counters v0, n0, v1;
	struct tnsm_sock_info info;
	struct h_stream s[NS];
	uint64_t sum = 0, msgs0, msgs, bound;
	unsigned int i, resets, closed = 0;
	double base, t;

	for (i = 0; i < NS; i++) {
		h_stream_open(W.vm2, H_VM2, &s[i], credit, 300 + i);
		sum += credit;
	}
	printf("# vm2: %u sockets x %u KiB credit = %llu KiB, pending_limit %llu KiB\n", NS,
	       credit >> 10, (unsigned long long)sum >> 10, (unsigned long long)LIMIT >> 10);
	base = over ? 0 : vm1_transfer();
	h_counters(H_VM2, &v0);
	h_counters(H_NSM, &n0);
	msgs0 = tnsm_data_msgs(W.nsm);

	/* vm2 stops reading; the NSM pushes all the credit allows. */
	for (i = 0; i < NS; i++)
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, credit, 900 + i), 0);
	/* vm1 works meanwhile. */
	t = vm1_transfer();
	if (base)
		printf("# vm1: %llu MiB each way in %.2f s unstalled, %.2f s with vm2 stalled "
		       "(diagnostic)\n", (unsigned long long)VM1_BYTES / MIB, base, t);
	/* The NSM was never blocked: it sent everything (or was told CLOSE). */
	for (i = 0; i < NS; i++)
		assert_int_equal(tnsm_wait_tx(W.nsm, s[i].nsm_sock, 10000), 0);
	usleep(100000);
	msgs = tnsm_data_msgs(W.nsm) - msgs0;

	h_counters(H_VM2, &v1);
	printf("# vm2: pending_bytes %llu, pending_max %llu, resets %llu, drops %llu\n",
	       (unsigned long long)v1.v[HC_PENDING_BYTES],
	       (unsigned long long)v1.v[HC_PENDING_MAX],
	       (unsigned long long)(v1.v[HC_RESETS] - v0.v[HC_RESETS]),
	       (unsigned long long)(v1.v[HC_DROPS] - v0.v[HC_DROPS]));
	/* Held: the data the credit allows, with a header per message. */
	bound = sum + msgs * HDR;
	assert_true(v1.v[HC_PENDING_BYTES] > 0);
	if (!over) {
		assert_true(v1.v[HC_PENDING_MAX] <= bound);
		assert_true(v1.v[HC_PENDING_MAX] <= LIMIT);
		assert_int_equal(v1.v[HC_RESETS], v0.v[HC_RESETS]);
		assert_int_equal(v1.v[HC_DROPS], v0.v[HC_DROPS]);
	} else {
		/* Over the limit: refused, sockets reset; EV_RESETs always get in. */
		assert_true(v1.v[HC_PENDING_MAX] <= LIMIT + NS * HDR);
		assert_true(v1.v[HC_RESETS] > v0.v[HC_RESETS]);
		assert_true(v1.v[HC_DROPS] > v0.v[HC_DROPS]);
		for (i = 0; i < NS; i++) {
			assert_int_equal(tnsm_sock(W.nsm, s[i].nsm_sock, &info), 0);
			closed += info.closed;
		}
		assert_int_equal(closed, v1.v[HC_RESETS] - v0.v[HC_RESETS]);
	}
	h_assert_delta(H_NSM, &n0, HC_CREDIT_VIOLATIONS, 0);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 0);
	assert_true(h_counter(H_NSM, HC_PENDING_BYTES) < LIMIT);
	h_roundtrip(W.vm1);

	/* vm2 reads again. */
	resets = vm2_read_all(s, NS);
	assert_int_equal(resets, closed);
	for (i = 0; i < NS; i++) {
		assert_int_equal(tnsm_sock(W.nsm, s[i].nsm_sock, &info), 0);
		if (s[i].rx_reset)
			continue;
		assert_int_equal(s[i].rx_bytes, credit);
		assert_int_equal(info.tx_done, credit);
		if (info.tx_hash != s[i].rx_hash)
			fail_msg("vm2 socket %u: data damaged while held", s[i].id);
	}
	assert_int_equal(h_counter(H_VM2, HC_PENDING_BYTES), 0);
	for (i = 0; i < NS; i++)
		h_close(W.vm2, s[i].id);
	assert_int_equal(h_nr_sockets(H_VM2), 0);
}

static void t_stalled_guest_bounded(void **state)
{
	(void)state;
	stall(512 << 10, false);
	h_pass();
}

static void t_stalled_guest_over_limit(void **state)
{
	(void)state;
	stall(2 << 20, true);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	H_TEST(t_stalled_guest_bounded),
	H_TEST(t_stalled_guest_over_limit),
};

/* vm2 again, with few eventq buffers, so that the engine must hold. */
static int ready(void)
{
	static const struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .nr_event_bufs = VM2_BUFS,
	};

	nk_ep_close(W.vm2);
	W.vm2_opts = &o;
	W.vm2 = h_guest_open(H_VM2, &o);
	return W.vm2 ? 0 : -1;
}

static const struct h_engine_opts eo = { .pending_limit = LIMIT };

H_MAIN("stall", tests, .opts = &eo, .ready = ready)
