// SPDX-License-Identifier: GPL-2.0
/*
 * Bulk data: 64 MiB each way through one socket and through 32 sockets at
 * once, within credits (the guest announces buf_alloc and returns CREDIT as
 * it reads, the NSM likewise), FNV-1a checked end to end, counters exact.
 * Throughput is printed as a diagnostic only.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tnsm.h"

#define MIB		(1ULL << 20)
#define TOTAL		(64 * MIB)
#define XFER_MS		120000

struct bulk_case {
	unsigned int nsock;
	bool g2n, n2g;
	uint32_t credit;		/* each side's per-socket credit */
};

static const struct bulk_case b_g2n_1 = { 1, true, false, 1 << 20 };
static const struct bulk_case b_n2g_1 = { 1, false, true, 1 << 20 };
static const struct bulk_case b_g2n_32 = { 32, true, false, 128 << 10 };
static const struct bulk_case b_n2g_32 = { 32, false, true, 128 << 10 };
static const struct bulk_case b_both_32 = { 32, true, true, 128 << 10 };

static void t_bulk(void **state)
{
	const struct bulk_case *c = *state;
	uint64_t per = TOTAL / c->nsock, g2n = 0, n2g = 0;
	struct h_counters g0, n0;
	struct h_stream s[32];
	struct tnsm_sock_info info;
	unsigned int i;
	json_object *e;
	double t0, dt;

	tnsm_set_credit(W.nsm, c->credit);
	tnsm_record_sends(W.nsm, false);
	for (i = 0; i < c->nsock; i++) {
		h_stream_open(W.vm1, H_VM1, &s[i], c->credit, 1000 + i);
		assert_int_equal(s[i].tx.peer_buf_alloc, c->credit);
		if (c->g2n) {
			s[i].tx_total = per;
			g2n += per;
		}
		if (c->n2g) {
			s[i].rx_total = per;
			n2g += per;
		}
	}
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	t0 = h_now();
	for (i = 0; c->n2g && i < c->nsock; i++)
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, per, 5000 + i), 0);
	assert_int_equal(h_xfer(W.vm1, s, c->nsock, XFER_MS), 0);
	for (i = 0; i < c->nsock; i++) {
		if (c->g2n)
			assert_int_equal(tnsm_wait_rx(W.nsm, s[i].nsm_sock, per, XFER_MS), 0);
		assert_int_equal(tnsm_sock(W.nsm, s[i].nsm_sock, &info), 0);
		if (c->g2n) {
			assert_int_equal(info.rx_bytes, per);
			if (info.rx_hash != s[i].tx_hash)
				fail_msg("socket %u: guest -> NSM checksum mismatch", s[i].id);
		}
		if (c->n2g) {
			assert_int_equal(info.tx_done, per);
			assert_int_equal(s[i].rx_bytes, per);
			if (info.tx_hash != s[i].rx_hash)
				fail_msg("socket %u: NSM -> guest checksum mismatch", s[i].id);
		}
	}
	dt = h_now() - t0;
	printf("# %u socket(s)%s%s: %.1f MiB in %.2f s, %.0f MiB/s (diagnostic)\n", c->nsock,
	       c->g2n ? " guest->NSM" : "", c->n2g ? " NSM->guest" : "",
	       (double)(g2n + n2g) / MIB, dt, (g2n + n2g) / MIB / (dt > 0 ? dt : 1e-9));

	h_assert_delta(H_VM1, &g0, HC_BYTES_IN, g2n);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, g2n);
	h_assert_delta(H_NSM, &n0, HC_BYTES_IN, n2g);
	h_assert_delta(H_VM1, &g0, HC_BYTES_OUT, n2g);
	h_assert_delta(H_VM1, &g0, HC_CREDIT_VIOLATIONS, 0);
	h_assert_delta(H_NSM, &n0, HC_CREDIT_VIOLATIONS, 0);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 0);
	h_assert_delta(H_VM1, &g0, HC_DROPS, 0);
	h_assert_delta(H_NSM, &n0, HC_DROPS, 0);
	h_assert_delta(H_VM1, &g0, HC_RESETS, 0);
	h_assert_delta(H_NSM, &n0, HC_RESETS, 0);
	h_assert_delta(H_VM1, &g0, HC_PROTO_ERRORS, 0);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 0);
	for (i = 0; i < c->nsock; i++) {
		e = h_sock_entry(H_VM1, s[i].id);
		assert_non_null(e);
		assert_int_equal(h_json_u64(e, "tx_bytes"), c->g2n ? per : 0);
		assert_int_equal(h_json_u64(e, "rx_bytes"), c->n2g ? per : 0);
		json_object_put(e);
	}
	assert_int_equal(h_counter(H_VM1, HC_PENDING_BYTES), 0);
	/* Late CREDIT messages may follow the transfer: read them first. */
	for (;;) {
		struct nk_hdr h;

		if (nk_ep_recv(W.vm1, &h, NULL, 0, 100) < 0)
			break;
		assert_int_equal(h.op, NK_OP_CREDIT);
	}
	for (i = 0; i < c->nsock; i++)
		h_close(W.vm1, s[i].id);
	tnsm_defaults(W.nsm);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	H_TEST_PRE("bulk_guest_to_nsm_1sock_64MiB", t_bulk, &b_g2n_1),
	H_TEST_PRE("bulk_nsm_to_guest_1sock_64MiB", t_bulk, &b_n2g_1),
	H_TEST_PRE("bulk_guest_to_nsm_32sock_64MiB", t_bulk, &b_g2n_32),
	H_TEST_PRE("bulk_nsm_to_guest_32sock_64MiB", t_bulk, &b_n2g_32),
	H_TEST_PRE("bulk_both_ways_32sock_2x64MiB", t_bulk, &b_both_32),
};

H_MAIN("bulk", tests)
