// SPDX-License-Identifier: GPL-2.0
/*
 * Malformed input: each case feeds the engine one kind of bad input and
 * asserts the documented answer (an error reply or EV_PROTO_ERROR with its
 * nk_proto_err and errno), the counter it moves, and that the engine still
 * serves vm1 afterwards.  Descriptor-level cases drive vm3 (detached) as a
 * raw device; message-level cases use vm1, vm2 and the test NSM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tnsm.h"

static struct h_raw *raw;		/* closed by the teardown */
static struct nk_ep *ep3;		/* likewise */

static int td(void **state)
{
	h_raw_close(raw);
	raw = NULL;
	if (ep3)
		nk_ep_close(ep3);
	ep3 = NULL;
	return h_test_teardown(state);
}

#define T(f)	{ #f, f, h_test_setup, td, NULL }

static void nsm_perr(size_t *pos, int32_t err, uint16_t op, uint64_t req_id, int perr);

static void check_perr(const struct nk_hdr *h, uint32_t perr, int err, int head, uint16_t op,
		       uint64_t req_id)
{
	if (h->op != NK_EV_PROTO_ERROR)
		fail_msg("want EV_PROTO_ERROR, got op %#x flags %#x status %d", h->op, h->flags,
			 (int32_t)h->status);
	assert_int_equal(h->flags & NK_F_REPLY, 0);
	assert_int_equal((int32_t)h->status, err);
	assert_int_equal(h->arg[0], perr);
	if (head >= 0)
		assert_int_equal(h->arg[1], head);
	assert_int_equal(h->arg[2], op);
	assert_int_equal(h->req_id, req_id);
	assert_int_equal(h->len, 0);
}

/* vm3 as a raw device after HELLO, and its counters. */
static void raw_ready(struct h_counters *c)
{
	raw = h_raw_open(H_VM3, 8, true);
	h_counters(H_VM3, c);
}

/* After a bad chain: EV_PROTO_ERROR on vm3, counted, vm1 still served. */
static void raw_expect_perr(const struct h_counters *c0, uint32_t perr, int err, int head,
			    uint16_t op, uint64_t req_id, unsigned int n)
{
	struct nk_hdr h;
	unsigned int i;

	for (i = 0; i < n; i++) {
		h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
		check_perr(&h, perr, err, n == 1 ? head : -1, op, req_id);
	}
	h_assert_delta(H_VM3, c0, HC_PROTO_ERRORS, n);
	h_assert_delta(H_VM3, c0, HC_REQUESTS, n);
	h_assert_delta(H_VM3, c0, HC_ERRORS, 0);
	h_assert_delta(H_VM3, c0, HC_BYTES_IN, 0);
	h_roundtrip(W.vm1);
}

/* ---- descriptors ---- */

static void t_desc_outside_memory(void **state)
{
	struct h_counters c0;
	uint64_t base, end;
	uint16_t d;

	(void)state;
	raw_ready(&c0);
	base = vuf_mem_base(raw->d);
	end = base + vuf_mem_size(raw->d);

	d = h_raw_desc(raw, NK_VQ_REQUEST(0), end + 4096, 64, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), d);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_RANGE, -EFAULT, d, 0, 0, 1);

	/* Straddling the end of memory, and below its base. */
	h_counters(H_VM3, &c0);
	d = h_raw_desc(raw, NK_VQ_REQUEST(0), end - 32, 64, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), d);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_RANGE, -EFAULT, d, 0, 0, 1);
	h_counters(H_VM3, &c0);
	d = h_raw_desc(raw, NK_VQ_REQUEST(0), base - 4096, 64, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), d);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_RANGE, -EFAULT, d, 0, 0, 1);
	h_pass();
}

static void t_desc_loop(void **state)
{
	struct h_counters c0;
	struct vring_desc *da, *db;
	struct nk_hdr h;
	uint16_t a, b;

	(void)state;
	raw_ready(&c0);
	h_hdr(&h, NK_OP_SOCKET, 1);
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 32, VRING_DESC_F_NEXT, 0);
	b = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa + 32, 32, VRING_DESC_F_NEXT, a);
	da = vuf_vq_desc(raw->d, NK_VQ_REQUEST(0), a);
	db = vuf_vq_desc(raw->d, NK_VQ_REQUEST(0), b);
	da->next = b;
	assert_int_equal(db->next, a);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_LOOP, -ELOOP, a, 0, 0, 1);

	/* A self loop. */
	h_counters(H_VM3, &c0);
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 64, VRING_DESC_F_NEXT, 0);
	vuf_vq_desc(raw->d, NK_VQ_REQUEST(0), a)->next = a;
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_LOOP, -ELOOP, a, 0, 0, 1);
	h_pass();
}

static void t_desc_indirect(void **state)
{
	struct h_counters c0;
	uint16_t d;

	(void)state;
	raw_ready(&c0);
	d = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 16, VRING_DESC_F_INDIRECT, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), d);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_INDIRECT, -EINVAL, d, 0, 0, 1);
	h_pass();
}

static void t_writable_desc_on_requestq(void **state)
{
	struct h_counters c0;
	struct nk_hdr h;
	uint16_t a, b;

	(void)state;
	raw_ready(&c0);
	h_hdr(&h, NK_OP_SOCKET, 5);
	h.arg[0] = 2;
	h.arg[1] = 1;
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 64, VRING_DESC_F_WRITE, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_DIR, -EINVAL, a, 0, 0, 1);

	/* A readable header followed by a writable payload descriptor. */
	h_counters(H_VM3, &c0);
	h.len = 16;
	memcpy(raw->msg, &h, sizeof(h));
	b = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa + 64, 16, VRING_DESC_F_WRITE, 0);
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 64, VRING_DESC_F_NEXT, b);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_DESC_DIR, -EINVAL, a, 0, 0, 1);
	h_pass();
}

static void t_truncated_header(void **state)
{
	struct h_counters c0;
	struct nk_hdr h;
	uint16_t a, b;

	(void)state;
	raw_ready(&c0);
	h_hdr(&h, NK_OP_SOCKET, 5);
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 32, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_TRUNCATED, -EBADMSG, a, 0, 0, 1);

	/* 63 bytes in two descriptors. */
	h_counters(H_VM3, &c0);
	b = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa + 32, 31, 0, 0);
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 32, VRING_DESC_F_NEXT, b);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_TRUNCATED, -EBADMSG, a, 0, 0, 1);
	h_pass();
}

static void t_length_larger_than_chain(void **state)
{
	struct h_counters c0;
	struct nk_hdr h;
	uint16_t a;

	(void)state;
	raw_ready(&c0);
	h_hdr(&h, NK_OP_BIND, 5);
	h.len = 100;
	h.req_id = 0x1234;
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 64 + 28, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_LENGTH, -EMSGSIZE, a, NK_OP_BIND, 0x1234, 1);

	/* Smaller than the chain is as wrong. */
	h_counters(H_VM3, &c0);
	h.len = 0;
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 128, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_LENGTH, -EMSGSIZE, a, NK_OP_BIND, 0x1234, 1);
	h_pass();
}

static void t_length_over_max_payload(void **state)
{
	uint32_t n = NK_MAX_PAYLOAD + 4;
	struct h_counters c0;
	struct nk_hdr h;
	uint16_t a;

	(void)state;
	raw_ready(&c0);
	h_hdr(&h, NK_OP_SETSOCKOPT, 5);
	h.len = n;
	h.req_id = 0x4321;
	memcpy(raw->msg, &h, sizeof(h));
	a = h_raw_desc(raw, NK_VQ_REQUEST(0), raw->msg_gpa, 64 + n, 0, 0);
	h_raw_publish(raw, NK_VQ_REQUEST(0), a);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_LENGTH, -EMSGSIZE, a, NK_OP_SETSOCKOPT, 0x4321, 1);
	h_pass();
}

static void t_length_chain_overflows_u32(void **state)
{
	struct h_counters c0;
	uint64_t base;
	uint32_t size;
	unsigned int n, i;
	uint16_t next = 0, d = 0;

	(void)state;
	raw_ready(&c0);
	base = vuf_mem_base(raw->d);
	size = vuf_mem_size(raw->d);
	n = (uint32_t)((1ULL << 32) / size) + 1;
	assert_true(n < vuf_vq_num_free(raw->d, NK_VQ_REQUEST(0)));
	/* n descriptors each covering all of guest memory: > 4 GiB in all. */
	for (i = 0; i < n; i++) {
		d = h_raw_desc(raw, NK_VQ_REQUEST(0), base, size, i ? VRING_DESC_F_NEXT : 0, next);
		next = d;
	}
	h_raw_publish(raw, NK_VQ_REQUEST(0), d);
	assert_int_equal(h_raw_used(raw, NK_VQ_REQUEST(0), H_RAW_TOKEN), 0);
	raw_expect_perr(&c0, NK_PERR_LENGTH, -EMSGSIZE, d, 0, 0, 1);
	h_pass();
}

static void t_avail_ring_corrupt(void **state)
{
	struct h_counters c0;
	struct nk_hdr h;
	uint16_t bad;

	(void)state;
	raw_ready(&c0);
	/* avail->idx far more than a ring ahead of the engine. */
	bad = 0x8000;
	vuf_vq_set_avail_idx(raw->d, NK_VQ_REQUEST(0), bad);
	vuf_vq_kick(raw->d, NK_VQ_REQUEST(0));
	h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
	check_perr(&h, NK_PERR_DESC_RANGE, -EFAULT, -1, 0, 0);
	h_assert_delta(H_VM3, &c0, HC_PROTO_ERRORS, 1);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

/* An eventq buffer the engine must refuse comes first in the ring. */
static void bad_event_buffer(bool readable)
{
	uint64_t good_gpa;
	uint8_t *good = NULL;
	struct h_counters c0;
	struct vuf_seg seg;
	struct nk_hdr h;
	unsigned int i;
	uint32_t len;
	void *tok;
	int bad;

	raw = h_raw_open(H_VM3, 0, false);
	h_counters(H_VM3, &c0);
	good = vuf_mem_alloc(raw->d, H_RAW_EVSZ, &good_gpa);
	assert_non_null(good);
	seg = (struct vuf_seg) {
		.gpa = raw->msg_gpa,
		.len = readable ? H_RAW_EVSZ : 32,
		.write = !readable,
	};
	bad = vuf_vq_add(raw->d, NK_VQ_EVENT(0), &seg, 1, (void *)1);
	assert_true(bad >= 0);
	seg = (struct vuf_seg) { .gpa = good_gpa, .len = H_RAW_EVSZ, .write = 1 };
	assert_true(vuf_vq_add(raw->d, NK_VQ_EVENT(0), &seg, 1, (void *)2) >= 0);
	vuf_vq_kick(raw->d, NK_VQ_EVENT(0));

	/* Something for vm3: its HELLO reply, or a SOCKET's before HELLO. */
	h_hdr(&h, readable ? NK_OP_HELLO : NK_OP_SOCKET, readable ? 0 : 9);
	h.req_id = h_new_req_id();
	if (readable) {
		h.arg[0] = NK_PROTO_VERSION;
		h.arg[2] = NK_MAX_PAYLOAD;
		h.arg[3] = NK_ROLE_GUEST;
	} else {
		h.arg[0] = 2;
		h.arg[1] = 1;
	}
	assert_int_equal(h_raw_send(raw, &h, NULL, 0), 0);

	/*
	 * The bad buffer comes back empty.  The good one, posted again each
	 * time, has what waited for a buffer, in order: the device's start,
	 * the EV_PROTO_ERROR about the bad buffer, then the reply.
	 */
	assert_int_equal(vuf_vq_wait(raw->d, NK_VQ_EVENT(0), H_TIMEOUT_MS), 0);
	assert_int_equal(vuf_vq_get_used(raw->d, NK_VQ_EVENT(0), &len, &tok), 1);
	assert_ptr_equal(tok, (void *)1);
	assert_int_equal(len, 0);
	for (i = 0; i < 3; i++) {
		if (i) {
			assert_true(vuf_vq_add(raw->d, NK_VQ_EVENT(0), &seg, 1, (void *)2) >= 0);
			vuf_vq_kick(raw->d, NK_VQ_EVENT(0));
		}
		assert_int_equal(vuf_vq_wait(raw->d, NK_VQ_EVENT(0), H_TIMEOUT_MS), 0);
		assert_int_equal(vuf_vq_get_used(raw->d, NK_VQ_EVENT(0), &len, &tok), 1);
		assert_ptr_equal(tok, (void *)2);
		memcpy(&h, good, sizeof(h));
		if (i == 0)
			assert_true(nk_no_session(&h));
		if (i == 1) {
			assert_int_equal(len, sizeof(h));
			check_perr(&h, NK_PERR_EVENT_BUF, -ENOBUFS, bad, 0, 0);
		}
	}
	assert_int_equal(h.op, readable ? NK_OP_HELLO : NK_OP_SOCKET);
	assert_true(h.flags & NK_F_REPLY);
	assert_int_equal((int32_t)h.status, readable ? 0 : -EPROTO);
	h_assert_delta(H_VM3, &c0, HC_PROTO_ERRORS, 1);
	h_roundtrip(W.vm1);
}

static void t_readable_desc_on_eventq(void **state)
{
	(void)state;
	bad_event_buffer(true);
	h_pass();
}

static void t_small_eventq_buffer(void **state)
{
	(void)state;
	bad_event_buffer(false);
	h_pass();
}

/* ---- configuration space and HELLO ---- */

static void t_config_probe(void **state)
{
	static const struct { uint32_t off, size; } probes[] = {
		{ 4, 16 }, { 8, 8 }, { 0, 256 }, { 200, 56 }, { 0xfffffff8U, 16 },
	};
	uint8_t buf[256], cfg[8];
	unsigned int i, k;
	int n;

	(void)state;
	raw = h_raw_open(H_VM3, 4, false);
	memcpy(cfg, vuf_config(raw->d), 8);
	assert_int_equal(vuf_get_config(raw->d, 0, buf, 8), 8);
	assert_memory_equal(buf, cfg, 8);
	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		memset(buf, 0xee, sizeof(buf));
		n = vuf_get_config(raw->d, probes[i].off, buf, probes[i].size);
		assert_true(n >= 0);
		assert_true((uint32_t)n <= probes[i].size);
		for (k = 0; k < (unsigned int)n; k++) {
			uint64_t off = (uint64_t)probes[i].off + k;

			if (buf[k] != (off < 8 ? cfg[off] : 0))
				fail_msg("config offset %llu: %#x", (unsigned long long)off, buf[k]);
		}
	}
	/* The device still works: HELLO, and vm1 is served. */
	vuf_disconnect(raw->d);
	free(raw);
	raw = h_raw_open(H_VM3, 4, true);
	h_roundtrip(W.vm1);
	h_pass();
}

/* protocol.rst, Errors: reads beyond the 8 bytes count in "config_errors". */
static void t_config_probe_counted(void **state)
{
	struct h_counters c0;
	uint8_t buf[64];

	(void)state;
	raw = h_raw_open(H_VM3, 4, false);
	h_counters(H_VM3, &c0);
	assert_true(vuf_get_config(raw->d, 4, buf, 16) >= 0);
	assert_true(vuf_get_config(raw->d, 64, buf, 8) >= 0);
	h_assert_delta(H_VM3, &c0, HC_CONFIG_ERRORS, 2);
	h_pass();
}

static void t_request_before_hello(void **state)
{
	struct h_counters c0;
	struct nk_hdr h, rep;
	size_t pos = tnsm_log_count(W.nsm);

	(void)state;
	raw = h_raw_open(H_VM3, 4, false);
	h_counters(H_VM3, &c0);
	h_hdr(&h, NK_OP_SOCKET, 7);
	h.arg[0] = 2;
	h.arg[1] = 1;
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(raw, &h, NULL, 0), 0);
	h_raw_recv(raw, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_SOCKET);
	assert_true(rep.flags & NK_F_REPLY);
	assert_int_equal(rep.req_id, h.req_id);
	assert_int_equal(rep.sock, 7);
	assert_int_equal((int32_t)rep.status, -EPROTO);
	h_hdr(&h, NK_OP_CLOSE, 7);
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(raw, &h, NULL, 0), 0);
	h_raw_recv(raw, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_CLOSE);
	assert_int_equal((int32_t)rep.status, -EPROTO);
	h_assert_delta(H_VM3, &c0, HC_ERRORS, 2);
	h_assert_delta(H_VM3, &c0, HC_REQUESTS, 2);
	h_nsm_none(pos, 0, H_QUIET_MS);
	h_roundtrip(W.vm1);
	h_pass();
}

/* HELLO with every feature (NK_FEAT_MQ: @pairs set up). */
static int hello_pairs(struct nk_ep *ep, uint64_t version, uint64_t max, uint64_t role,
		       uint32_t pairs, struct nk_hdr *rep)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_HELLO, 0);
	h.arg[0] = version;
	h.arg[1] = NK_FEAT_ALL;
	h.arg[2] = max;
	h.arg[3] = role;
	h.buf_alloc = pairs;
	return h_call(ep, &h, NULL, 0, rep, NULL, 0);
}

static int hello(struct nk_ep *ep, uint64_t version, uint64_t max, uint64_t role,
		 struct nk_hdr *rep)
{
	return hello_pairs(ep, version, max, role, 1, rep);
}

static void t_hello_wrong_version(void **state)
{
	struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .skip_hello = 1,
	};
	struct h_counters c0;
	struct nk_hdr rep;

	(void)state;
	ep3 = h_guest_open(H_VM3, &o);
	assert_non_null(ep3);
	h_wait_state(H_VM3, "connected");
	h_counters(H_VM3, &c0);
	assert_int_equal(hello(ep3, NK_PROTO_VERSION + 1, NK_MAX_PAYLOAD, NK_ROLE_GUEST, &rep),
			 -EPROTONOSUPPORT);
	h_assert_delta(H_VM3, &c0, HC_ERRORS, 1);
	h_wait_state(H_VM3, "connected");
	h_roundtrip(W.vm1);
	/* The reply still says which version the engine speaks. */
	assert_int_equal(rep.arg[0], NK_PROTO_VERSION);
	h_pass();
}

static void t_hello_bad_args_and_twice(void **state)
{
	struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .skip_hello = 1,
	};
	struct h_counters c0;
	struct nk_hdr rep;

	(void)state;
	ep3 = h_guest_open(H_VM3, &o);
	assert_non_null(ep3);
	h_wait_state(H_VM3, "connected");
	h_counters(H_VM3, &c0);
	assert_int_equal(hello(ep3, NK_PROTO_VERSION, NK_MIN_PAYLOAD - 1, NK_ROLE_GUEST, &rep),
			 -EINVAL);
	assert_int_equal(hello(ep3, NK_PROTO_VERSION, NK_MAX_PAYLOAD, NK_ROLE_NSM, &rep),
			 -EINVAL);
	/* NK_FEAT_MQ with no pairs, or more than a device can have. */
	assert_int_equal(hello_pairs(ep3, NK_PROTO_VERSION, NK_MAX_PAYLOAD, NK_ROLE_GUEST, 0,
				     &rep), -EINVAL);
	assert_int_equal(hello_pairs(ep3, NK_PROTO_VERSION, NK_MAX_PAYLOAD, NK_ROLE_GUEST,
				     NK_MAX_QPAIRS + 1, &rep), -EINVAL);
	h_wait_state(H_VM3, "connected");
	assert_int_equal(hello(ep3, NK_PROTO_VERSION, NK_MAX_PAYLOAD, NK_ROLE_GUEST, &rep), 0);
	/* NK_FEAT_MQ agreed: the one pair set up, in bits 32..39. */
	assert_int_equal(rep.arg[3], H_ID_VM3 | 1ULL << 32);
	h_wait_state(H_VM3, "ready");
	assert_int_equal(hello(ep3, NK_PROTO_VERSION, NK_MAX_PAYLOAD, NK_ROLE_GUEST, &rep),
			 -EALREADY);
	h_wait_state(H_VM3, "ready");
	h_assert_delta(H_VM3, &c0, HC_ERRORS, 5);
	h_assert_delta(H_VM3, &c0, HC_REQUESTS, 6);
	h_roundtrip(W.vm1);
	h_pass();
}

/* ---- message level ---- */

/* A request from vm1 that the engine must refuse with @err, unseen by the NSM. */
static void refused(uint16_t op, uint32_t sock, uint16_t flags, const uint64_t *args,
		    const void *p, size_t len, int err)
{
	size_t pos = tnsm_log_count(W.nsm);
	struct h_counters c0;
	struct nk_hdr h, rep;
	int i;

	h_counters(H_VM1, &c0);
	h_hdr(&h, op, sock);
	h.flags = flags;
	for (i = 0; args && i < 4; i++)
		h.arg[i] = args[i];
	if (h_call(W.vm1, &h, p, len, &rep, NULL, 0) != err)
		fail_msg("op %#x flags %#x sock %u: status %d, want %d", op, flags, sock,
			 (int32_t)rep.status, err);
	h_assert_delta(H_VM1, &c0, HC_ERRORS, 1);
	h_assert_delta(H_VM1, &c0, HC_PROTO_ERRORS, 0);
	h_nsm_none(pos, op, H_QUIET_MS);
}

/*
 * One bad message, and the engine's answer: to vm1, an error reply with
 * @err; to the NSM, EV_PROTO_ERROR NK_PERR_REFUSED with @err.  Nothing of
 * it reaches the other side.  The rules are lib/nk_msg.c's
 * (nk_hdr_check_fields(), nk_op_sendable()), which the modules apply too.
 */
struct bad_msg {
	const char *name;
	bool from_nsm;		/* sent by the test NSM, else by vm1 */
	bool on_socket;		/* on a socket of vm1's (for the NSM: its id) */
	uint16_t op, flags;
	int32_t status;
	uint64_t args[4];
	uint32_t len;		/* payload: @len bytes of 'x' */
	int err;
};

#define SOCK_ARGS	{ 2, 1, 6, 0 }

static const struct bad_msg bad_msgs[] = {
	/* vm1: ops a guest may not send */
	{ "guest_op_0x55", false, true, 0x55, 0, 0, { 0 }, 0, -EOPNOTSUPP },
	{ "guest_op_max_request_plus_1", false, true, NK_OP_MAX_REQUEST + 1, 0, 0, { 0 }, 0,
	  -EOPNOTSUPP },
	{ "guest_ev_data", false, true, NK_EV_DATA, 0, 0, { 0 }, 1, -EOPNOTSUPP },
	{ "guest_ev_reset", false, true, NK_EV_RESET, 0, 0, { 0 }, 0, -EOPNOTSUPP },
	{ "guest_info", false, false, NK_OP_INFO, 0, 0, { 0 }, 4, -EOPNOTSUPP },
	/* vm1: flags */
	{ "guest_socket_flag_0x0100", false, false, NK_OP_SOCKET, 0x0100, 0, SOCK_ARGS, 0,
	  -EINVAL },
	{ "guest_socket_flag_0x8000", false, false, NK_OP_SOCKET, 0x8000 | NK_F_CREDIT, 0,
	  SOCK_ARGS, 0, -EINVAL },
	{ "guest_listen_flag_0x0010", false, true, NK_OP_LISTEN, 0x0010, 0, { 0 }, 0, -EINVAL },
	{ "guest_bind_addr", false, true, NK_OP_BIND, NK_F_ADDR, 0, { 0 },
	  sizeof(struct nk_addr), -EINVAL },
	{ "guest_connect_more", false, true, NK_OP_CONNECT, NK_F_MORE, 0, { 0 },
	  sizeof(struct nk_addr), -EINVAL },
	{ "guest_send_msg_flag_0x100", false, true, NK_OP_SEND, 0, 0, { 0x100 }, 3, -EINVAL },
	/* vm1: a status that is not 0 or a negative errno */
	{ "guest_status_positive", false, true, NK_OP_LISTEN, 0, 1, { 16 }, 0, -EINVAL },
	{ "guest_status_below_max_errno", false, true, NK_OP_LISTEN, 0, -4096, { 16 }, 0,
	  -EINVAL },
	{ "guest_socket_status_positive", false, false, NK_OP_SOCKET, 0, 1, SOCK_ARGS, 0,
	  -EINVAL },
	/* the NSM: ops it may not send */
	{ "nsm_op_0x55", true, true, 0x55, 0, 0, { 0 }, 0, -EOPNOTSUPP },
	{ "nsm_socket_request", true, true, NK_OP_SOCKET, 0, 0, { 0 }, 0, -EOPNOTSUPP },
	{ "nsm_op_max_request_plus_1", true, true, NK_OP_MAX_REQUEST + 1, 0, 0, { 0 }, 0,
	  -EOPNOTSUPP },
	{ "nsm_ev_reset", true, true, NK_EV_RESET, 0, 0, { 0 }, 0, -EOPNOTSUPP },
	{ "nsm_info_request", true, false, NK_OP_INFO, 0, 0, { 0 }, 4, -EOPNOTSUPP },
	/* the NSM: flags and status */
	{ "nsm_ev_hup_flag_0x0100", true, true, NK_EV_HUP, 0x0100, 0, { 0 }, 0, -EINVAL },
	{ "nsm_ev_connected_addr", true, true, NK_EV_CONNECTED, NK_F_ADDR, 0, { 0 },
	  sizeof(struct nk_addr), -EINVAL },
	{ "nsm_ev_data_more", true, true, NK_EV_DATA, NK_F_MORE, 0, { 0 }, 1, -EINVAL },
	{ "nsm_credit_more", true, true, NK_OP_CREDIT, NK_F_CREDIT | NK_F_MORE, 0, { 0 }, 0,
	  -EINVAL },
	{ "nsm_ev_error_status_positive", true, true, NK_EV_ERROR, 0, ECONNREFUSED, { 0 }, 0,
	  -EINVAL },
	{ "nsm_ev_hup_status_below_max_errno", true, true, NK_EV_HUP, 0, -4096, { 0 }, 0,
	  -EINVAL },
};

static void t_bad_msg(void **state)
{
	const struct bad_msg *c = *state;
	uint32_t id = h_new_sock_id(), sock = id;
	struct h_counters g0, n0;
	struct nk_hdr h, rep;
	uint8_t data[64];
	size_t pos;
	int err;

	memset(data, 'x', sizeof(data));
	if (c->on_socket) {
		assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
		if (c->from_nsm)
			sock = h_nsm_id(H_VM1, id);
	}
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, c->op, sock);
	h.flags = c->flags;
	h.status = (uint32_t)c->status;
	memcpy(h.arg, c->args, sizeof(h.arg));
	if (c->from_nsm) {
		h.req_id = 0x77000;
		h_nsm_send(&h, data, c->len);
		nsm_perr(&pos, c->err, c->op, 0x77000, NK_PERR_REFUSED);
		h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
		h_assert_delta(H_NSM, &n0, HC_REPLIES, 0);
		h_assert_delta(H_VM1, &g0, HC_EVENTS, 0);
		h_recv_none(W.vm1, H_QUIET_MS);
	} else {
		err = h_call(W.vm1, &h, data, c->len, &rep, NULL, 0);
		if (err != c->err)
			fail_msg("status %d, want %d", err, c->err);
		h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);
		h_assert_delta(H_VM1, &g0, HC_PROTO_ERRORS, 0);
		h_nsm_none(pos, c->op, H_QUIET_MS);
	}
	if (c->on_socket)
		h_close(W.vm1, id);
	else
		assert_null(h_sock_entry(H_VM1, id));
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * The guest's credit as the engine records it (nk_credit_tx_update()): a
 * CREDIT older than one already seen (requestqs are served in any order)
 * does not take credit back, and one claiming more consumed than was sent
 * is counted and ignored.  Either, taken as it came, would make the NSM's
 * EV_DATA within the credit it was told look like a violation and reset
 * the socket.
 */
static void t_credit_stale_fwd_cnt(void **state)
{
	static const uint32_t fwd[] = { 1000, 0, 2000, 99999 };
	uint32_t id = h_new_sock_id(), nsm;
	uint8_t data[1000], buf[1000];
	struct h_counters g0, n0;
	struct nk_hdr h, ev;
	unsigned int i;
	size_t pos;

	(void)state;
	memset(data, 'd', sizeof(data));
	assert_int_equal(h_socket(W.vm1, id, 2, 1, sizeof(data), NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	for (i = 0; i < ARRAY_SIZE(fwd); i++) {
		/* EV_DATA of the whole credit, then the guest's CREDIT(s). */
		if (i != 1 && i != 3) {
			h_hdr(&h, NK_EV_DATA, nsm);
			h_nsm_send(&h, data, sizeof(data));
			assert_int_equal(h_recv(W.vm1, &ev, buf, sizeof(buf), H_TIMEOUT_MS),
					 sizeof(data));
			assert_int_equal(ev.op, NK_EV_DATA);
		}
		pos = tnsm_log_count(W.nsm);
		h_hdr(&h, NK_OP_CREDIT, id);
		h.flags = NK_F_CREDIT;
		h.buf_alloc = sizeof(data);
		h.fwd_cnt = fwd[i];
		h_send(W.vm1, &h, NULL, 0);
		h_nsm_expect(&pos, NK_OP_CREDIT, nsm, NULL);
	}
	/* 2000 sent, 2000 consumed: a whole window more is within credit. */
	h_hdr(&h, NK_EV_DATA, nsm);
	h_nsm_send(&h, data, sizeof(data));
	assert_int_equal(h_recv(W.vm1, &ev, buf, sizeof(buf), H_TIMEOUT_MS), sizeof(data));
	assert_int_equal(ev.op, NK_EV_DATA);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_assert_delta(H_VM1, &g0, HC_CREDIT_VIOLATIONS, 1);
	h_assert_delta(H_NSM, &n0, HC_CREDIT_VIOLATIONS, 0);
	h_assert_delta(H_NSM, &n0, HC_RESETS, 0);
	h_close(W.vm1, id);
	h_roundtrip(W.vm1);
	h_pass();
}

static void t_flags_unknown_sock_bits(void **state)
{
	uint64_t args[4] = { 2, 1, 6, 0x2 };
	uint32_t id = h_new_sock_id(), l = h_new_sock_id();

	(void)state;
	/* SOCKET a3: a bit outside NK_SOCK_*, or the engine's bits 32..63. */
	refused(NK_OP_SOCKET, id, 0, args, NULL, 0, -EINVAL);
	args[3] = 1ULL << 32;
	refused(NK_OP_SOCKET, id, 0, args, NULL, 0, -EINVAL);
	assert_null(h_sock_entry(H_VM1, id));
	/* ACCEPT a1 */
	assert_int_equal(h_socket(W.vm1, l, 2, 1, 65536, NULL), 0);
	args[0] = id;
	args[1] = 0x40;
	args[2] = args[3] = 0;
	refused(NK_OP_ACCEPT, l, 0, args, NULL, 0, -EINVAL);
	assert_null(h_sock_entry(H_VM1, id));
	h_close(W.vm1, l);
	h_roundtrip(W.vm1);
	h_pass();
}

static void t_sock_not_owned(void **state)
{
	uint32_t id = h_new_sock_id();
	uint64_t args[4] = { 16 };

	(void)state;
	assert_int_equal(h_socket(W.vm2, id, 2, 1, 65536, NULL), 0);
	/* vm2's socket, named by vm1. */
	refused(NK_OP_LISTEN, id, 0, args, NULL, 0, -EBADF);
	refused(NK_OP_SEND, id, 0, NULL, "abc", 3, -EBADF);
	refused(NK_OP_CLOSE, id, 0, NULL, NULL, 0, -EBADF);
	/* Never opened by anyone. */
	refused(NK_OP_LISTEN, 0x7ffffff0, 0, args, NULL, 0, -EBADF);
	refused(NK_OP_GETSOCKNAME, 0, 0, NULL, NULL, 0, -EBADF);
	/* vm2's socket is untouched. */
	assert_non_null(h_sock_entry(H_VM2, id));
	h_close(W.vm2, id);
	h_roundtrip(W.vm1);
	h_pass();
}

static void t_socket_id_in_use(void **state)
{
	uint64_t args[4] = { 2, 1, 6, 0 };
	uint32_t id = h_new_sock_id(), l = h_new_sock_id();
	json_object *e;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	refused(NK_OP_SOCKET, id, 0, args, NULL, 0, -EEXIST);
	/* 0 is never a socket id. */
	refused(NK_OP_SOCKET, 0, 0, args, NULL, 0, -EINVAL);
	/* ACCEPT naming an id in use, or 0. */
	assert_int_equal(h_socket(W.vm1, l, 2, 1, 65536, NULL), 0);
	args[0] = id;
	args[1] = args[2] = 0;
	refused(NK_OP_ACCEPT, l, 0, args, NULL, 0, -EEXIST);
	args[0] = 0;
	refused(NK_OP_ACCEPT, l, 0, args, NULL, 0, -EINVAL);
	e = h_sock_entry(H_VM1, id);
	assert_non_null(e);
	assert_string_equal(h_json_str(e, "state"), "open");
	json_object_put(e);
	h_close(W.vm1, id);
	h_close(W.vm1, l);
	h_roundtrip(W.vm1);
	h_pass();
}

/* NSM side: an EV_PROTO_ERROR for a message the NSM sent. */
static void nsm_perr(size_t *pos, int32_t err, uint16_t op, uint64_t req_id, int perr)
{
	struct tnsm_rec r;

	h_nsm_expect(pos, NK_EV_PROTO_ERROR, H_ANY_SOCK, &r);
	assert_int_equal((int32_t)r.h.status, err);
	if (perr >= 0)
		assert_int_equal(r.h.arg[0], perr);
	assert_int_equal(r.h.arg[2], op);
	assert_int_equal(r.h.req_id, req_id);
}

static void t_nsm_stray_reply(void **state)
{
	struct h_counters n0, g0;
	struct tnsm_rec r;
	struct nk_hdr h, rep;
	uint32_t id, nsm;
	size_t pos;

	(void)state;
	id = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	h_counters(H_NSM, &n0);
	h_counters(H_VM1, &g0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_BIND, nsm);
	h.flags = NK_F_REPLY;
	h.req_id = 0xfff00000ULL;
	h_nsm_send(&h, NULL, 0);
	nsm_perr(&pos, -ENOENT, NK_OP_BIND, 0xfff00000ULL, NK_PERR_STRAY_REPLY);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
	h_recv_none(W.vm1, H_QUIET_MS);

	/* An outstanding request answered with another op is stray too. */
	tnsm_set_reply(W.nsm, NK_OP_LISTEN, TNSM_SILENT, 0);
	h_hdr(&h, NK_OP_LISTEN, id);
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, NULL, 0);
	h_nsm_expect(&pos, NK_OP_LISTEN, nsm, &r);
	h_hdr(&rep, NK_OP_BIND, nsm);
	rep.flags = NK_F_REPLY;
	rep.req_id = r.h.req_id;
	h_nsm_send(&rep, NULL, 0);
	nsm_perr(&pos, -ENOENT, NK_OP_BIND, r.h.req_id, NK_PERR_STRAY_REPLY);
	h_recv_none(W.vm1, H_QUIET_MS);
	/* The right answer still finds the guest. */
	rep.op = NK_OP_LISTEN;
	rep.status = (uint32_t)-EADDRINUSE;
	h_nsm_send(&rep, NULL, 0);
	h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_LISTEN);
	assert_int_equal(rep.req_id, h.req_id);
	assert_int_equal((int32_t)rep.status, -EADDRINUSE);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 2);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 0);
	tnsm_defaults(W.nsm);
	h_close(W.vm1, id);
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * protocol.rst: "an NSM cannot name a socket E did not give it"; a socket
 * id the sender does not own is -EBADF, and an NSM's message that the
 * engine refuses gets EV_PROTO_ERROR (NK_PERR_REFUSED) with the reason.
 */
static void t_nsm_event_not_owned(void **state)
{
	struct h_counters n0, g1, g2;
	struct nk_hdr h;
	size_t pos;

	(void)state;
	h_counters(H_NSM, &n0);
	h_counters(H_VM1, &g1);
	h_counters(H_VM2, &g2);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_EV_DATA, 0x7ffffff0);
	h_nsm_send(&h, "data", 4);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_recv_none(W.vm2, 0);
	h_assert_delta(H_VM1, &g1, HC_EVENTS, 0);
	h_assert_delta(H_VM2, &g2, HC_EVENTS, 0);
	nsm_perr(&pos, -EBADF, NK_EV_DATA, 0, NK_PERR_REFUSED);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
	h_roundtrip(W.vm1);
	h_pass();
}

/* A struct nk_anc that passes nk_anc_check(): IP_TTL 64. */
static void anc_ttl(uint8_t *p)
{
	struct nk_anc a = {
		.version = NK_ANC_VERSION,
		.size = sizeof(a),
		.present = NK_ANC_TTL,
		.ttl = 64,
	};

	memcpy(p, &a, sizeof(a));
}

/*
 * A socket of vm1's (IPv4, @type) made at the NSM: the SOCKET the NSM gets
 * carries @flags, vm1's weight and id in a3.  Its NSM id.
 */
static uint32_t vm1_socket_at_nsm(size_t *pos, uint32_t id, int type, uint64_t flags)
{
	struct tnsm_rec r;

	assert_int_equal(h_socket(W.vm1, id, AF_INET, type, 65536, NULL), 0);
	h_nsm_expect(pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3], flags | H_WEIGHT(1) | (uint64_t)H_ID_VM1 << 32);
	return h_nsm_id(H_VM1, id);
}

/*
 * protocol.rst, "Ancillary data": a datagram socket of a guest and NSM that
 * agreed NK_FEAT_ANC reaches the NSM marked NK_SOCK_ANC, and its SOCKET
 * reply lists the guest's addresses; an EV_DATA's struct nk_anc passes
 * whole when it keeps the rules, is refused (EV_PROTO_ERROR
 * NK_PERR_REFUSED, -EPROTO) when it breaks one or is on a stream socket,
 * and credit counts only the data after it.
 */
static void t_ancillary_data(void **state)
{
	uint8_t buf[256], rbuf[256];
	uint32_t dg = h_new_sock_id(), st = h_new_sock_id(), dgn, stn;
	struct h_counters n0, g0;
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	struct nk_addr a;
	json_object *e;
	size_t pos;
	int len;

	(void)state;
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SOCKET, dg);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 65536;
	h.arg[0] = 2;
	h.arg[1] = 2;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, rbuf, sizeof(rbuf)), 0);
	assert_int_equal(rep.len, 2 * sizeof(struct nk_addr));
	h_assert_addr(rbuf, 2, "10.0.0.11", 0);
	h_assert_addr(rbuf + sizeof(struct nk_addr), 10, "fd00::11", 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3], NK_SOCK_ANC | H_WEIGHT(1) | (uint64_t)H_ID_VM1 << 32);
	dgn = h_nsm_id(H_VM1, dg);
	stn = vm1_socket_at_nsm(&pos, st, SOCK_STREAM, NK_SOCK_URG);

	/* A good one passes as it is; credit counts the 10 bytes of data. */
	anc_ttl(buf);
	assert_int_equal(nk_addr_parse(&a, "198.51.100.9", 53), 0);
	memcpy(buf + sizeof(struct nk_anc), &a, sizeof(a));
	memset(buf + sizeof(struct nk_anc) + sizeof(a), 'd', 10);
	len = sizeof(struct nk_anc) + sizeof(a) + 10;
	h_hdr(&h, NK_EV_DATA, dgn);
	h.flags = NK_F_ADDR | NK_F_ANC;
	h_nsm_send(&h, buf, len);
	assert_int_equal(h_recv(W.vm1, &rep, rbuf, sizeof(rbuf), H_TIMEOUT_MS), len);
	assert_int_equal(rep.op, NK_EV_DATA);
	assert_int_equal(rep.flags, NK_F_ADDR | NK_F_ANC);
	assert_int_equal(rep.sock, dg);
	assert_memory_equal(rbuf, buf, len);
	e = h_sock_entry(H_VM1, dg);
	assert_int_equal(h_json_u64(e, "nsm_tx_cnt"), 10);
	json_object_put(e);

	/* A bad one (version 2), and a good one on a stream socket. */
	h_counters(H_NSM, &n0);
	h_counters(H_VM1, &g0);
	buf[0] = 2;
	h_nsm_send(&h, buf, len);
	nsm_perr(&pos, -EPROTO, NK_EV_DATA, 0, NK_PERR_REFUSED);
	buf[0] = NK_ANC_VERSION;
	h.sock = stn;
	h_nsm_send(&h, buf, len);
	nsm_perr(&pos, -EPROTO, NK_EV_DATA, 0, NK_PERR_REFUSED);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 2);
	h_assert_delta(H_VM1, &g0, HC_EVENTS, 0);
	h_close(W.vm1, st);
	h_close(W.vm1, dg);
	h_pass();
}

/*
 * protocol.rst, "Urgent data": a stream socket of a guest and NSM that
 * agreed NK_FEAT_URG reaches the NSM marked NK_SOCK_URG (a datagram one
 * not); an EV_URG passes whole when it keeps the rules of nk_urg_check()
 * against the stream bytes the guest was sent, and is refused
 * (EV_PROTO_ERROR NK_PERR_REFUSED, -EPROTO, counted) when it breaks one
 * or is on a datagram socket.
 */
static void t_urgent_data(void **state)
{
	uint32_t st = h_new_sock_id(), dg = h_new_sock_id(), stn, dgn;
	struct h_counters n0, g0;
	struct nk_hdr h, rep;
	uint8_t data[10], rbuf[64];
	size_t pos;
	int i;
	static const struct {
		uint64_t byte, mark, a2;
		uint32_t len;
	} bad[] = {
		{ 256, 12, 0, 0 },		/* not a byte */
		{ 'c', 9, 0, 0 },		/* before the 10 bytes sent */
		{ 'c', 1ULL << 32, 0, 0 },	/* not a u32 */
		{ 'c', 12, 1, 0 },		/* a2 set */
		{ 'c', 12, 0, 1 },		/* a payload */
	};

	(void)state;
	pos = tnsm_log_count(W.nsm);
	stn = vm1_socket_at_nsm(&pos, st, SOCK_STREAM, NK_SOCK_URG);
	dgn = vm1_socket_at_nsm(&pos, dg, SOCK_DGRAM, NK_SOCK_ANC);

	/* 10 bytes of stream, then urgent data at 12: it passes as it is. */
	memset(data, 'd', sizeof(data));
	h_hdr(&h, NK_EV_DATA, stn);
	h_nsm_send(&h, data, sizeof(data));
	assert_int_equal(h_recv(W.vm1, &rep, rbuf, sizeof(rbuf), H_TIMEOUT_MS), sizeof(data));
	assert_int_equal(rep.op, NK_EV_DATA);
	h_hdr(&h, NK_EV_URG, stn);
	h.arg[0] = 'c';
	h.arg[1] = 12;
	h_nsm_send(&h, NULL, 0);
	assert_int_equal(h_recv(W.vm1, &rep, rbuf, sizeof(rbuf), H_TIMEOUT_MS), 0);
	assert_int_equal(rep.op, NK_EV_URG);
	assert_int_equal(rep.sock, st);
	assert_int_equal(rep.arg[0], 'c');
	assert_int_equal(rep.arg[1], 12);
	assert_int_equal(rep.arg[2], 0);

	/* Each bad one, and a good one on the datagram socket: refused. */
	h_counters(H_NSM, &n0);
	h_counters(H_VM1, &g0);
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
		h_hdr(&h, NK_EV_URG, stn);
		h.arg[0] = bad[i].byte;
		h.arg[1] = bad[i].mark;
		h.arg[2] = bad[i].a2;
		h_nsm_send(&h, data, bad[i].len);
		nsm_perr(&pos, -EPROTO, NK_EV_URG, 0, NK_PERR_REFUSED);
	}
	h_hdr(&h, NK_EV_URG, dgn);
	h.arg[0] = 'c';
	h_nsm_send(&h, NULL, 0);
	nsm_perr(&pos, -EPROTO, NK_EV_URG, 0, NK_PERR_REFUSED);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 6);
	h_assert_delta(H_VM1, &g0, HC_EVENTS, 0);
	h_close(W.vm1, st);
	h_close(W.vm1, dg);
	h_pass();
}

static void t_credit_violation_send(void **state)
{
	uint8_t data[1500];
	struct h_counters g0, n0;
	struct nk_hdr h, rep;
	uint32_t id = h_new_sock_id(), nsm;
	size_t pos;

	(void)state;
	tnsm_set_credit(W.nsm, 1000);
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, &rep), 0);
	assert_int_equal(rep.buf_alloc, 1000);
	nsm = h_nsm_id(H_VM1, id);
	h_pattern(data, sizeof(data), 3, 0);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SEND, id);
	assert_int_equal(h_call(W.vm1, &h, data, 1500, &rep, NULL, 0), -ENOBUFS);
	h_assert_delta(H_VM1, &g0, HC_CREDIT_VIOLATIONS, 1);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);
	h_nsm_none(pos, NK_OP_SEND, H_QUIET_MS);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, 0);
	/* Within the credit it passes. */
	h_hdr(&h, NK_OP_SEND, id);
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, data, 1000);
	h_nsm_expect(&pos, NK_OP_SEND, nsm, NULL);
	h_assert_delta(H_VM1, &g0, HC_CREDIT_VIOLATIONS, 1);
	/* The NSM consumed it and returns the credit, through the engine. */
	h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_CREDIT);
	assert_int_equal(rep.sock, id);
	assert_int_equal(rep.buf_alloc, 1000);
	assert_int_equal(rep.fwd_cnt, 1000);
	tnsm_defaults(W.nsm);
	h_close(W.vm1, id);
	h_roundtrip(W.vm1);
	h_pass();
}

static void t_credit_violation_ev_data(void **state)
{
	uint8_t data[1500];
	struct h_counters g0, n0;
	struct tnsm_rec r;
	struct nk_hdr h, ev;
	uint32_t id = h_new_sock_id(), nsm;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 1000, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_EV_DATA, nsm);
	h_nsm_send(&h, data, sizeof(data));
	/* The NSM: EV_PROTO_ERROR, then the engine's CLOSE of the socket. */
	nsm_perr(&pos, -ENOBUFS, NK_EV_DATA, 0, NK_PERR_CREDIT);
	h_nsm_expect(&pos, NK_OP_CLOSE, nsm, &r);
	/* The guest: EV_RESET -ENOBUFS, no data. */
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_RESET);
	assert_int_equal(ev.sock, id);
	assert_int_equal((int32_t)ev.status, -ENOBUFS);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_assert_delta(H_NSM, &n0, HC_CREDIT_VIOLATIONS, 1);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 1);
	h_assert_delta(H_NSM, &n0, HC_RESETS, 1);
	h_assert_delta(H_VM1, &g0, HC_BYTES_OUT, 0);
	/* The id answers with the reset errno until CLOSE, which frees it. */
	h_hdr(&h, NK_OP_LISTEN, id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -ENOBUFS);
	h_close(W.vm1, id);
	assert_null(h_sock_entry(H_VM1, id));
	h_roundtrip(W.vm1);
	h_pass();
}

#define OUTSTANDING_MAX	1024	/* the engine's table, per guest */

/*
 * Fill vm1's outstanding-request table: OUTSTANDING_MAX GETSOCKNAMEs on
 * @id (req_ids @req_base...) that the NSM records and leaves unanswered.
 * Returns the NSM's log position before them.
 */
static size_t outstanding_fill(uint32_t id, uint32_t nsm, uint64_t req_base)
{
	struct nk_hdr h;
	size_t pos, p;
	unsigned int i;

	tnsm_set_reply(W.nsm, NK_OP_GETSOCKNAME, TNSM_SILENT, 0);
	pos = tnsm_log_count(W.nsm);
	for (i = 0; i < OUTSTANDING_MAX; i++) {
		h_hdr(&h, NK_OP_GETSOCKNAME, id);
		h.req_id = req_base + i;
		h_send(W.vm1, &h, NULL, 0);
	}
	p = pos;
	for (i = 0; i < OUTSTANDING_MAX; i++)
		h_nsm_expect(&p, NK_OP_GETSOCKNAME, nsm, NULL);
	return pos;
}

/* The NSM answers them all: every answer reaches vm1 with its req_id. */
static void outstanding_answer(size_t pos, uint32_t nsm, uint64_t req_base)
{
	struct tnsm_rec r;
	struct nk_hdr rep;
	unsigned int i;

	for (i = 0; i < OUTSTANDING_MAX; i++) {
		h_nsm_expect(&pos, NK_OP_GETSOCKNAME, nsm, &r);
		h_hdr(&rep, NK_OP_GETSOCKNAME, nsm);
		rep.flags = NK_F_REPLY;
		rep.req_id = r.h.req_id;
		h_nsm_send(&rep, NULL, 0);
	}
	for (i = 0; i < OUTSTANDING_MAX; i++) {
		h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(rep.op, NK_OP_GETSOCKNAME);
		assert_int_equal(rep.req_id, req_base + i);
	}
	tnsm_defaults(W.nsm);
}

static void t_outstanding_table_full(void **state)
{
	struct h_counters g0;
	struct nk_hdr h, rep;
	uint32_t id = h_new_sock_id(), nsm;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &g0);
	pos = outstanding_fill(id, nsm, 0x100000);
	h_hdr(&h, NK_OP_GETSOCKNAME, id);
	h.req_id = 0x100000 + OUTSTANDING_MAX;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -EBUSY);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);
	outstanding_answer(pos, nsm, 0x100000);
	h_close(W.vm1, id);
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * A CLOSE when the guest's outstanding requests are at their limit: the
 * guest forgets the socket whatever the answer, so the engine must close
 * the NSM socket itself and answer 0, never -EBUSY (the NSM socket would
 * stay open for good).
 */
static void t_close_with_outstanding_full(void **state)
{
	uint32_t id = h_new_sock_id(), nsm;
	size_t pos, p;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	pos = outstanding_fill(id, nsm, 0x200000);
	h_close(W.vm1, id);
	p = pos;
	h_nsm_expect(&p, NK_OP_CLOSE, nsm, NULL);
	assert_null(h_sock_entry(H_VM1, id));
	/* The answers to the requests still reach vm1, then nothing is left. */
	outstanding_answer(pos, nsm, 0x200000);
	h_roundtrip(W.vm1);
	h_pass();
}

static void t_guest_sends_reply(void **state)
{
	struct h_counters g0;
	struct nk_hdr h, ev;
	uint32_t id = h_new_sock_id();
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	h_counters(H_VM1, &g0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_BIND, id);
	h.flags = NK_F_REPLY;
	h.req_id = 0xabc;
	h_send(W.vm1, &h, NULL, 0);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	check_perr(&ev, NK_PERR_STRAY_REPLY, -ENOENT, -1, NK_OP_BIND, 0xabc);
	h_assert_delta(H_VM1, &g0, HC_PROTO_ERRORS, 1);
	h_nsm_none(pos, 0, H_QUIET_MS);
	h_close(W.vm1, id);
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * The limit keys out of range, in [engine] and in a [guest:] section:
 * the engine does not start and names the file, line, key and range.
 * An [nsm:] section has none of them.
 */
static void t_limit_keys_config(void **state)
{
	static const struct {
		const char *line, *msg;
	} bad[] = {
		{ "max_conn_rate = 1000001", "bad value '1000001' for max_conn_rate: 0 to 1000000" },
		{ "conn_burst = -1", "bad value '-1' for conn_burst: 0 to 1000000" },
		{ "[guest:g]\nmax_sockets = 0",
		  "bad value '0' for max_sockets: sockets, 1 to 1048576" },
		{ "[guest:g]\nmax_sockets = 1048577",
		  "bad value '1048577' for max_sockets: sockets, 1 to 1048576" },
		{ "[guest:g]\nmax_pending = 4095",
		  "bad value '4095' for max_pending: bytes, 4096 to 1099511627776" },
		{ "[guest:g]\nmax_pending = 18446744073709551616",
		  "bad value '18446744073709551616' for max_pending: bytes, 4096 to 1099511627776" },
		{ "[guest:g]\nmax_conn_rate = 2M",
		  "bad value '2M' for max_conn_rate: connections a second, 0 (no limit) to 1000000" },
		{ "[guest:g]\nconn_burst = ",
		  "bad value '' for conn_burst: connections, 0 (max_conn_rate) to 1000000" },
		{ "[nsm:n]\nmax_sockets = 5", "unknown key 'max_sockets' in [nsm:n]" },
	};
	char conf[128];
	unsigned int i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		h_config_refused(bad[i].line, bad[i].msg, conf, sizeof(conf));
	h_pass();
}

static const struct CMUnitTest tests[] = {
	T(t_desc_outside_memory),
	T(t_desc_loop),
	T(t_desc_indirect),
	T(t_length_larger_than_chain),
	T(t_length_over_max_payload),
	T(t_length_chain_overflows_u32),
	T(t_truncated_header),
	T(t_writable_desc_on_requestq),
	T(t_readable_desc_on_eventq),
	T(t_small_eventq_buffer),
	T(t_avail_ring_corrupt),
	T(t_config_probe),
	T(t_config_probe_counted),
	T(t_request_before_hello),
	T(t_hello_wrong_version),
	T(t_hello_bad_args_and_twice),
	T(t_flags_unknown_sock_bits),
	T(t_close_with_outstanding_full),
	T(t_guest_sends_reply),
	T(t_sock_not_owned),
	T(t_socket_id_in_use),
	T(t_nsm_stray_reply),
	T(t_nsm_event_not_owned),
	T(t_credit_violation_send),
	T(t_credit_violation_ev_data),
	T(t_credit_stale_fwd_cnt),
	T(t_outstanding_table_full),
	T(t_limit_keys_config),
	T(t_ancillary_data),
	T(t_urgent_data),
};

/* tests[], then a test a row of bad_msgs[], named after the row. */
int main(void)
{
	struct CMUnitTest all[ARRAY_SIZE(tests) + ARRAY_SIZE(bad_msgs)];
	struct h_group g = { .name = "malformed", .tests = all, .n = ARRAY_SIZE(all) };
	size_t i;

	memcpy(all, tests, sizeof(tests));
	for (i = 0; i < ARRAY_SIZE(bad_msgs); i++)
		all[ARRAY_SIZE(tests) + i] = (struct CMUnitTest){
			bad_msgs[i].name, t_bad_msg, h_test_setup, td, (void *)&bad_msgs[i],
		};
	return h_main(&g);
}
