// SPDX-License-Identifier: GPL-2.0
/*
 * Life cycle: a guest or the NSM disconnecting mid-transfer, reconnecting
 * and saying HELLO again, and detach/attach through the control socket.
 * Tests that kill an endpoint bring it back in their teardown.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tnsm.h"

#define MIB	(1ULL << 20)

static int td(void **state)
{
	char path[256];

	if (!W.nsm) {
		h_sock_path(path, sizeof(path), H_NSM);
		W.nsm = tnsm_start(path);
	}
	if (!W.vm1)
		W.vm1 = h_guest_open(H_VM1, NULL);
	if (!W.vm2)
		W.vm2 = h_guest_open(H_VM2, NULL);
	json_object_put(h_ctl("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	h_test_teardown(state);
	return W.nsm && W.vm1 && W.vm2 ? 0 : -1;
}

#define T(f)	{ #f, f, h_test_setup, td, NULL }

/* Wait until the engine lists no socket of @ep (its CLOSEs answered). */
static void wait_no_sockets(const char *ep)
{
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;

	while (h_nr_sockets(ep) && h_now() < deadline)
		usleep(10000);
	assert_int_equal(h_nr_sockets(ep), 0);
	assert_int_equal(h_counter(ep, HC_SOCKETS), 0);
}

/* @ep sends up to @n bytes of SEND on @s within the NSM's credit. */
static void send_some(struct nk_ep *ep, uint32_t id, uint64_t n)
{
	static uint8_t buf[NK_MAX_PAYLOAD];
	struct nk_hdr h;
	uint64_t off;

	h_pattern(buf, sizeof(buf), id, 0);
	for (off = 0; off < n; off += sizeof(buf)) {
		h_hdr(&h, NK_OP_SEND, id);
		h.req_id = h_new_req_id();
		h_send(ep, &h, buf, sizeof(buf));
	}
}

static void t_guest_disconnect_mid_transfer(void **state)
{
	struct h_counters g1;
	struct h_stream s[3], v1;
	struct tnsm_rec r;
	unsigned int i;
	int nsm_before;
	double deadline;
	size_t pos;

	(void)state;
	h_stream_open(W.vm1, H_VM1, &v1, 1 << 20, 11);
	h_counters(H_VM1, &g1);
	nsm_before = h_nr_sockets(H_NSM);
	for (i = 0; i < 3; i++)
		h_stream_open(W.vm2, H_VM2, &s[i], 256 << 10, 20 + i);
	/* Data both ways in flight: SENDs queued, EV_DATA streaming. */
	for (i = 0; i < 3; i++) {
		send_some(W.vm2, s[i].id, 512 << 10);
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, 64 * MIB, 30 + i), 0);
	}
	assert_int_equal(h_nr_sockets(H_VM2), 3);
	pos = tnsm_log_count(W.nsm);
	usleep(20000);
	nk_ep_close(W.vm2);
	W.vm2 = NULL;

	/* The NSM is told to CLOSE each of vm2's sockets. */
	for (i = 0; i < 3; i++) {
		size_t p = pos;

		h_nsm_expect(&p, NK_OP_CLOSE, s[i].nsm_sock, &r);
		assert_int_equal(r.h.flags & NK_F_REPLY, 0);
	}
	h_wait_state(H_VM2, "waiting");
	wait_no_sockets(H_VM2);
	/* Once the NSM has answered, the engine forgets the mappings. */
	deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	while (h_nr_sockets(H_NSM) != nsm_before && h_now() < deadline)
		usleep(10000);
	assert_int_equal(h_nr_sockets(H_NSM), nsm_before);
	assert_int_equal(h_counter(H_NSM, HC_SOCKETS), nsm_before);

	/* vm1 is unaffected: its socket still works, 4 MiB each way. */
	v1.tx_total = v1.rx_total = 4 * MIB;
	assert_int_equal(tnsm_stream(W.nsm, v1.nsm_sock, 4 * MIB, 12), 0);
	assert_int_equal(h_xfer(W.vm1, &v1, 1, 60000), 0);
	assert_int_equal(tnsm_wait_rx(W.nsm, v1.nsm_sock, 4 * MIB, 60000), 0);
	h_assert_delta(H_VM1, &g1, HC_RESETS, 0);
	h_assert_delta(H_VM1, &g1, HC_ERRORS, 0);
	while (nk_ep_recv(W.vm1, &r.h, NULL, 0, 100) >= 0)
		assert_int_equal(r.h.op, NK_OP_CREDIT);
	h_close(W.vm1, v1.id);

	/* vm2 comes back: HELLO again, same id, and it works. */
	W.vm2 = h_guest_open(H_VM2, NULL);
	assert_non_null(W.vm2);
	assert_int_equal(nk_ep_id(W.vm2), H_ID_VM2);
	assert_string_equal(nk_ep_name(W.vm2), H_VM2);
	h_wait_state(H_VM2, "ready");
	assert_int_equal(h_socket(W.vm2, s[0].id, 2, 1, 65536, NULL), 0);
	h_close(W.vm2, s[0].id);
	h_pass();
}

static void t_nsm_disconnect_mid_transfer(void **state)
{
	bool reset[3] = { false }, replied = false;
	struct h_counters g0, n0;
	struct h_stream s[3];
	char path[256];
	struct nk_hdr h, rep, ev;
	uint64_t rid;
	unsigned int i, left;
	size_t pos;

	(void)state;
	for (i = 0; i < 3; i++)
		h_stream_open(W.vm1, H_VM1, &s[i], 256 << 10, 40 + i);
	for (i = 0; i < 3; i++) {
		send_some(W.vm1, s[i].id, 256 << 10);
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, 64 * MIB, 50 + i), 0);
	}
	/* One request outstanding at the NSM. */
	tnsm_set_reply(W.nsm, NK_OP_GETSOCKOPT, TNSM_SILENT, 0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_GETSOCKOPT, s[0].id);
	h.arg[0] = 1;
	h.arg[1] = 7;
	h.arg[2] = 4;
	h.req_id = rid = h_new_req_id();
	h_send(W.vm1, &h, NULL, 0);
	h_nsm_expect(&pos, NK_OP_GETSOCKOPT, s[0].nsm_sock, NULL);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);

	tnsm_stop(W.nsm);
	W.nsm = NULL;

	/* The outstanding request fails, every socket gets EV_RESET. */
	for (left = 4; left; ) {
		int len = nk_ep_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);

		if (len < 0)
			fail_msg("vm1: %u of 4 expected messages missing", left);
		if (ev.op == NK_EV_DATA || ev.op == NK_OP_CREDIT)
			continue;	/* sent before the NSM went */
		if (ev.op == NK_OP_GETSOCKOPT) {
			assert_true(ev.flags & NK_F_REPLY);
			assert_int_equal(ev.req_id, rid);
			assert_int_equal(ev.sock, s[0].id);
			assert_int_equal((int32_t)ev.status, -ECONNRESET);
			assert_false(replied);
			replied = true;
			left--;
			continue;
		}
		assert_int_equal(ev.op, NK_EV_RESET);
		assert_int_equal((int32_t)ev.status, -ECONNRESET);
		for (i = 0; i < 3 && s[i].id != ev.sock; i++)
			;
		assert_true(i < 3);
		assert_false(reset[i]);
		reset[i] = true;
		left--;
	}
	h_wait_state(H_NSM, "waiting");
	h_assert_delta(H_NSM, &n0, HC_RESETS, 3);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);

	/* Requests on a reset id are answered by the engine... */
	h_hdr(&h, NK_OP_LISTEN, s[1].id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -ECONNRESET);
	h_hdr(&h, NK_OP_SEND, s[2].id);
	assert_int_equal(h_call(W.vm1, &h, "x", 1, &rep, NULL, 0), -ECONNRESET);
	/* ...a new SOCKET has nowhere to go... */
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.arg[0] = 2;
	h.arg[1] = 1;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -ENETUNREACH);
	/* ...and CLOSE frees the ids. */
	for (i = 0; i < 3; i++)
		h_close(W.vm1, s[i].id);
	assert_int_equal(h_nr_sockets(H_VM1), 0);
	h_recv_none(W.vm1, H_QUIET_MS);

	/* The NSM comes back, HELLO again, and serves vm1, ids reused. */
	h_sock_path(path, sizeof(path), H_NSM);
	W.nsm = tnsm_start(path);
	assert_non_null(W.nsm);
	assert_int_equal(tnsm_ep_id(W.nsm), H_ID_NSM);
	h_wait_state(H_NSM, "ready");
	assert_int_equal(h_socket(W.vm1, s[0].id, 2, 1, 65536, NULL), 0);
	h_close(W.vm1, s[0].id);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

static void t_guest_reconnect(void **state)
{
	uint32_t id = h_new_sock_id(), nsm;
	struct nk_hdr h;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	pos = tnsm_log_count(W.nsm);
	nk_ep_close(W.vm1);
	W.vm1 = NULL;
	h_nsm_expect(&pos, NK_OP_CLOSE, nsm, NULL);
	h_wait_state(H_VM1, "waiting");
	wait_no_sockets(H_VM1);

	W.vm1 = h_guest_open(H_VM1, NULL);
	assert_non_null(W.vm1);
	assert_int_equal(nk_ep_id(W.vm1), H_ID_VM1);
	assert_string_equal(nk_ep_name(W.vm1), H_VM1);
	h_wait_state(H_VM1, "ready");
	/* The old session's id is gone, and free for reuse. */
	h_hdr(&h, NK_OP_LISTEN, id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -EBADF);
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	assert_int_not_equal(h_nsm_id(H_VM1, id), nsm);
	h_close(W.vm1, id);
	h_pass();
}

/*
 * A device that starts finds EV_PROTO_ERROR NK_PERR_NO_SESSION first on its
 * eventq, before the answer to its HELLO: a driver that was in a session
 * (the vhost-user device stopped and started, a new engine) learns that
 * it has lost it.
 */
static void t_start_says_no_session(void **state)
{
	struct h_counters c0;
	struct h_raw *raw;
	struct nk_hdr h;

	(void)state;
	h_counters(H_VM3, &c0);
	raw = h_raw_open(H_VM3, 4, false);
	raw->session = true;	/* see what a driver in a session would see */
	h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_EV_PROTO_ERROR);
	assert_int_equal(h.arg[0], NK_PERR_NO_SESSION);
	assert_int_equal((int32_t)h.status, -ENOTCONN);
	assert_int_equal(h.req_id, 0);
	assert_int_equal(h.len, 0);
	/* Before HELLO, requests are refused as they always were. */
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(raw, &h, NULL, 0), 0);
	h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_OP_SOCKET);
	assert_int_equal((int32_t)h.status, -EPROTO);
	/* It is the device's start, not a protocol error of the driver's. */
	h_assert_delta(H_VM3, &c0, HC_PROTO_ERRORS, 0);
	h_raw_close(raw);
	h_pass();
}

static void t_detach_then_socket(void **state)
{
	struct h_counters g0;
	struct tnsm_rec r;
	struct nk_hdr h;
	json_object *e, *v;
	size_t pos;

	(void)state;
	json_object_put(h_ctl_ok("{\"cmd\":\"detach\",\"guest\":\"vm2\"}"));
	e = h_list_ep(H_VM2);
	assert_true(json_object_object_get_ex(e, "nsm", &v));
	assert_null(v);
	json_object_put(e);
	h_counters(H_VM2, &g0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.arg[0] = 2;
	h.arg[1] = 1;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -ENETUNREACH);
	h_assert_delta(H_VM2, &g0, HC_ERRORS, 1);
	h_nsm_none(pos, NK_OP_SOCKET, H_QUIET_MS);

	json_object_put(h_ctl_ok("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	e = h_list_ep(H_VM2);
	assert_string_equal(h_json_str(e, "nsm"), H_NSM);
	json_object_put(e);
	h_hdr(&h, NK_OP_SOCKET, h.sock);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 65536;
	h.arg[0] = 2;
	h.arg[1] = 1;
	h.req_id = 0;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3] >> 32, H_ID_VM2);
	h_close(W.vm2, h.sock);
	h_pass();
}

static void t_detach_with_open_sockets(void **state)
{
	uint32_t id[2] = { h_new_sock_id(), h_new_sock_id() }, nsm[2];
	bool seen[2] = { false, false };
	struct h_counters g0;
	struct nk_hdr h, ev;
	json_object *e;
	unsigned int i, k;
	size_t pos;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_int_equal(h_socket(W.vm2, id[i], 2, 1, 65536, NULL), 0);
		nsm[i] = h_nsm_id(H_VM2, id[i]);
	}
	h_counters(H_VM2, &g0);
	pos = tnsm_log_count(W.nsm);
	json_object_put(h_ctl_ok("{\"cmd\":\"detach\",\"guest\":\"vm2\"}"));
	for (k = 0; k < 2; k++) {
		h_recv(W.vm2, &ev, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(ev.op, NK_EV_RESET);
		assert_int_equal((int32_t)ev.status, -ENETDOWN);
		assert_int_equal(ev.req_id, 0);
		for (i = 0; i < 2 && id[i] != ev.sock; i++)
			;
		assert_true(i < 2);
		assert_false(seen[i]);
		seen[i] = true;
	}
	for (i = 0; i < 2; i++) {
		size_t p = pos;

		h_nsm_expect(&p, NK_OP_CLOSE, nsm[i], NULL);
	}
	h_assert_delta(H_VM2, &g0, HC_RESETS, 2);
	e = h_sock_entry(H_VM2, id[0]);
	assert_non_null(e);
	assert_string_equal(h_json_str(e, "state"), "reset");
	json_object_put(e);
	/* Until CLOSE the ids answer with the reset errno. */
	h_hdr(&h, NK_OP_LISTEN, id[0]);
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -ENETDOWN);
	for (i = 0; i < 2; i++)
		h_close(W.vm2, id[i]);
	assert_int_equal(h_nr_sockets(H_VM2), 0);
	json_object_put(h_ctl_ok("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	assert_int_equal(h_socket(W.vm2, id[0], 2, 1, 65536, NULL), 0);
	h_close(W.vm2, id[0]);
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * Second and later SET_MEM_TABLEs mid-run (the guest's memory grew):
 * rte_vhost maps the new table and unmaps the old mapping without
 * destroy_device.  The engine pauses the device around it and goes on
 * with the new mapping: the session and its socket survive, requests,
 * events and data still flow, nothing is reset, and the engine never
 * touches the old mapping (it would fault, or read another guest page).
 * Before the fix the engine kept its pointers into the old mapping.
 */
static void t_mem_table_change(void **state)
{
	struct h_counters c0;
	uint32_t id = h_new_sock_id(), nid;
	unsigned int i;
	struct nk_hdr h;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nid = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &c0);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(vuf_mem_grow(nk_ep_dev(W.vm1), 64 * MIB), 0);
		assert_true(h_engine_alive());
		/* Guest memory read: a SEND reaches the NSM. */
		send_some(W.vm1, id, NK_MAX_PAYLOAD);
		assert_int_equal(tnsm_wait_rx(W.nsm, nid, i * NK_MAX_PAYLOAD, H_TIMEOUT_MS), 0);
		/* Guest memory written: an event reaches vm1. */
		h_hdr(&h, NK_EV_WRITABLE, nid);
		h_nsm_send(&h, NULL, 0);
		h_recv(W.vm1, &h, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(h.op, NK_EV_WRITABLE);
		assert_int_equal(h.sock, id);
		h_roundtrip(W.vm1);
	}
	h_assert_delta(H_VM1, &c0, HC_RESETS, 0);
	h_assert_delta(H_VM1, &c0, HC_PROTO_ERRORS, 0);
	h_close(W.vm1, id);
	h_roundtrip(W.vm2);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	T(t_guest_disconnect_mid_transfer),
	T(t_nsm_disconnect_mid_transfer),
	T(t_guest_reconnect),
	T(t_start_says_no_session),
	T(t_detach_then_socket),
	T(t_detach_with_open_sockets),
	T(t_mem_table_change),
};

H_MAIN("lifecycle", tests)
