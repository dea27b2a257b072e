// SPDX-License-Identifier: GPL-2.0
/*
 * Routing: every request op reaches the NSM with the socket id and request
 * id translated and its arguments and payload intact; replies and events
 * come back to the right guest with its own ids; guests are isolated.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"
#include "tnsm.h"

/* ---- helpers ---- */

/* A connected-looking stream socket of vm1: guest id and NSM id. */
static uint32_t open_sock(struct nk_ep *ep, const char *guest, uint32_t *nsm)
{
	uint32_t id = h_new_sock_id();

	assert_int_equal(h_socket(ep, id, 2, 1, 65536, NULL), 0);
	*nsm = h_nsm_id(guest, id);
	assert_int_not_equal(*nsm, id);
	return id;
}

/* ---- HELLO ---- */

static void t_hello(void **state)
{
	const struct nk_config *c = vuf_config(nk_ep_dev(W.vm1));
	struct nk_ep_opts o = {
		.role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS, .skip_hello = 1,
	};
	struct h_counters before;
	struct nk_hdr h, rep;
	struct nk_ep *vm3;
	json_object *e;
	char name[NK_NAME_MAX];
	struct {
		char name[NK_NAME_MAX];
		struct nk_addr a;
	} pl;
	int len;

	(void)state;
	assert_int_equal(nk_ep_id(W.vm1), H_ID_VM1);
	assert_string_equal(nk_ep_name(W.vm1), H_VM1);
	assert_int_equal(nk_ep_id(W.vm2), H_ID_VM2);
	assert_string_equal(nk_ep_name(W.vm2), H_VM2);
	assert_int_equal(tnsm_ep_id(W.nsm), H_ID_NSM);
	assert_string_equal(tnsm_ep_name(W.nsm), H_NSM);
	assert_int_equal(nk_ep_max_payload(W.vm1), NK_MAX_PAYLOAD);

	assert_int_equal(c->zero, 0);
	assert_int_equal(c->role, NK_ROLE_GUEST);
	assert_int_equal(c->max_qpairs, 1);
	assert_int_equal(c->magic[0], 'N');
	assert_int_equal(c->magic[1], 'K');
	assert_int_equal(c->magic[2], 'D');
	assert_int_equal(c->version, NK_PROTO_VERSION);

	e = h_list_ep(H_VM3);
	assert_string_equal(h_json_str(e, "state"), "waiting");
	json_object_put(e);

	/* A HELLO by hand: features restricted, payload agreed, id and name. */
	vm3 = h_guest_open(H_VM3, &o);
	assert_non_null(vm3);
	h_wait_state(H_VM3, "connected");
	h_counters(H_VM3, &before);
	h_hdr(&h, NK_OP_HELLO, 0);
	h.arg[0] = NK_PROTO_VERSION;
	h.arg[1] = (NK_FEAT_ALL & ~NK_FEAT_ADDR) | (1ULL << 40);
	h.arg[2] = 4096;
	h.arg[3] = NK_ROLE_GUEST;
	h.buf_alloc = 1;	/* NK_FEAT_MQ: one pair set up */
	h.req_id = h_new_req_id();
	h_send(vm3, &h, NULL, 0);
	memset(name, 0xff, sizeof(name));
	len = h_recv(vm3, &rep, name, sizeof(name), H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_HELLO);
	assert_int_equal(rep.flags & NK_F_REPLY, NK_F_REPLY);
	assert_int_equal(rep.req_id, h.req_id);
	assert_int_equal((int32_t)rep.status, 0);
	assert_int_equal(rep.arg[0], NK_PROTO_VERSION);
	/* NK_FEAT_PEER is an NSM's: a guest's offer of it is not agreed. */
	assert_int_equal(rep.arg[1], NK_FEAT_ALL & ~(NK_FEAT_ADDR | NK_FEAT_PEER));
	assert_int_equal(rep.arg[2], 4096);
	/* NK_FEAT_MQ agreed: the pairs agreed in bits 32..39. */
	assert_int_equal(rep.arg[3], H_ID_VM3 | 1ULL << 32);
	assert_int_equal(len, 4);
	assert_int_equal(rep.len, 4);
	assert_memory_equal(name, "vm3", 4);
	h_wait_state(H_VM3, "ready");
	h_assert_delta(H_VM3, &before, HC_REQUESTS, 1);
	h_assert_delta(H_VM3, &before, HC_REPLIES, 1);
	h_assert_delta(H_VM3, &before, HC_ERRORS, 0);
	nk_ep_close(vm3);
	h_wait_state(H_VM3, "waiting");

	/* NK_FEAT_ADDR: the name in NK_NAME_MAX bytes, then its address. */
	vm3 = h_guest_open(H_VM3, &o);
	assert_non_null(vm3);
	h_wait_state(H_VM3, "connected");
	h.arg[1] = NK_FEAT_ADDR;
	h.req_id = h_new_req_id();
	h_send(vm3, &h, NULL, 0);
	memset(&pl, 0xff, sizeof(pl));
	len = h_recv(vm3, &rep, &pl, sizeof(pl), H_TIMEOUT_MS);
	assert_int_equal((int32_t)rep.status, 0);
	assert_int_equal(rep.arg[1], NK_FEAT_ADDR);
	assert_int_equal(len, NK_NAME_MAX + sizeof(struct nk_addr));
	assert_int_equal(rep.len, len);
	assert_string_equal(pl.name, "vm3");
	assert_true(pl.name[NK_NAME_MAX - 1] == 0);
	assert_int_equal(pl.a.family, AF_INET);
	assert_int_equal(pl.a.port, 0);
	assert_memory_equal(pl.a.addr, ((uint8_t[]){ 10, 0, 0, 13 }), 4);
	h_wait_state(H_VM3, "ready");
	nk_ep_close(vm3);
	h_wait_state(H_VM3, "waiting");

	e = h_list_ep(H_VM1);
	assert_string_equal(h_json_str(e, "state"), "ready");
	json_object_put(e);
	e = h_list_ep(H_NSM);
	assert_string_equal(h_json_str(e, "state"), "ready");
	json_object_put(e);
	h_pass();
}

/* ---- SOCKET ---- */

static void t_socket_inet(void **state)
{
	struct h_counters g0, n0;
	struct tnsm_rec r;
	struct nk_hdr h, rep;
	uint32_t id = h_new_sock_id(), nsm;
	size_t pos = tnsm_log_count(W.nsm);

	(void)state;
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	h_hdr(&h, NK_OP_SOCKET, id);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 65536;
	h.fwd_cnt = 0;
	h.arg[0] = 2;
	h.arg[1] = 1;
	h.arg[2] = 6;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), 0);
	assert_int_equal(rep.flags, NK_F_REPLY | NK_F_CREDIT);
	assert_int_equal(rep.buf_alloc, TNSM_CREDIT);
	/* NK_FEAT_ANC: the engine lists vm1's source addresses. */
	assert_int_equal(rep.len, 2 * sizeof(struct nk_addr));

	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	nsm = h_nsm_id(H_VM1, id);
	assert_int_equal(r.h.sock, nsm);
	assert_int_not_equal(r.h.sock, id);
	assert_int_not_equal(r.h.req_id, h.req_id);
	assert_int_not_equal(r.h.req_id, 0);
	assert_int_equal(r.h.flags, NK_F_CREDIT);
	assert_int_equal(r.h.buf_alloc, 65536);
	assert_int_equal(r.h.arg[0], 2);
	assert_int_equal(r.h.arg[1], 1);
	assert_int_equal(r.h.arg[2], 6);
	/* NK_FEAT_URG agreed: the NSM hands urgent data over (EV_URG). */
	assert_int_equal(r.h.arg[3], NK_SOCK_URG | H_WEIGHT(1) | (uint64_t)H_ID_VM1 << 32);
	assert_int_equal(r.len, sizeof(struct nk_addr));
	assert_int_equal(r.h.len, sizeof(struct nk_addr));
	h_assert_addr(r.data, 2, "10.0.0.11", 0);

	h_assert_delta(H_VM1, &g0, HC_REQUESTS, 1);
	h_assert_delta(H_VM1, &g0, HC_REPLIES, 1);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 0);
	h_assert_delta(H_VM1, &g0, HC_SOCKETS, 1);
	h_assert_delta(H_NSM, &n0, HC_EVENTS, 1);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, sizeof(struct nk_addr));
	h_assert_delta(H_NSM, &n0, HC_REQUESTS, 1);
	h_assert_delta(H_NSM, &n0, HC_SOCKETS, 1);
	h_close(W.vm1, id);
	h_pass();
}

static void socket_addrs(struct nk_ep *ep, uint32_t guest_id, int family, uint64_t flags,
			 unsigned int naddr, const char *ip0, int fam0, const char *ip1, int fam1)
{
	uint32_t id = h_new_sock_id();
	size_t pos = tnsm_log_count(W.nsm);
	struct tnsm_rec r;
	struct nk_hdr h;

	h_hdr(&h, NK_OP_SOCKET, id);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 65536;
	h.arg[0] = family;
	h.arg[1] = 1;
	h.arg[3] = flags;
	assert_int_equal(h_call(ep, &h, NULL, 0, NULL, NULL, 0), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[0], family);
	/* Stream sockets: NK_FEAT_URG agreed, NK_SOCK_URG added. */
	assert_int_equal(r.h.arg[3], flags | NK_SOCK_URG | H_WEIGHT(1) | (uint64_t)guest_id << 32);
	assert_int_equal(r.len, naddr * sizeof(struct nk_addr));
	h_assert_addr(r.data, fam0, ip0, 0);
	if (naddr > 1)
		h_assert_addr(r.data + sizeof(struct nk_addr), fam1, ip1, 0);
	h_close(ep, id);
}

static void t_socket_addresses(void **state)
{
	struct h_counters n0;
	size_t pos;

	(void)state;
	/* vm1 AF_INET6, V6ONLY: its IPv6 address only. */
	socket_addrs(W.vm1, H_ID_VM1, 10, NK_SOCK_V6ONLY, 1, "fd00::11", 10, NULL, 0);
	/* vm1 AF_INET6 dual stack: IPv4 first, then IPv6. */
	socket_addrs(W.vm1, H_ID_VM1, 10, 0, 2, "10.0.0.11", 2, "fd00::11", 10);
	/* vm2: its own address and endpoint id. */
	socket_addrs(W.vm2, H_ID_VM2, 2, 0, 1, "10.0.0.12", 2, NULL, 0);
	/* vm2 has no IPv6 address: a V6ONLY socket has no usable source. */
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	{
		struct nk_hdr h;
		uint32_t id = h_new_sock_id();

		h_hdr(&h, NK_OP_SOCKET, id);
		h.arg[0] = 10;
		h.arg[1] = 1;
		h.arg[3] = NK_SOCK_V6ONLY;
		assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -EAFNOSUPPORT);
		assert_null(h_sock_entry(H_VM2, id));
	}
	h_nsm_none(pos, NK_OP_SOCKET, H_QUIET_MS);
	h_assert_delta(H_NSM, &n0, HC_EVENTS, 0);
	h_pass();
}

/* ---- the other requests, one test each ---- */

struct op_case {
	uint16_t op;
	uint16_t flags;
	uint64_t arg[4];
	const char *ip;			/* payload: an nk_addr */
	uint16_t port;
	uint32_t opt;			/* payload: a u32 (SETSOCKOPT) */
	int32_t status;			/* the NSM's answer */
	unsigned int rlen;		/* reply payload expected */
};

static const struct op_case c_bind = {
	NK_OP_BIND, 0, { 0 }, "10.0.0.11", 80, 0, -EADDRINUSE, 0 };
static const struct op_case c_listen = {
	NK_OP_LISTEN, 0, { 128 }, NULL, 0, 0, 0, 0 };
static const struct op_case c_connect = {
	NK_OP_CONNECT, 0, { 0 }, "198.51.100.7", 443, 0, -EINPROGRESS, 0 };
static const struct op_case c_shutdown = {
	NK_OP_SHUTDOWN, 0, { 1 }, NULL, 0, 0, 0, 0 };
static const struct op_case c_setsockopt = {
	NK_OP_SETSOCKOPT, 0, { 1, 2 }, NULL, 0, 1, 0, 0 };
static const struct op_case c_getsockopt = {
	NK_OP_GETSOCKOPT, 0, { 6, 1, 4 }, NULL, 0, 0, 0, 4 };
static const struct op_case c_getsockname = {
	NK_OP_GETSOCKNAME, 0, { 0 }, NULL, 0, 0, 0, sizeof(struct nk_addr) };
static const struct op_case c_getpeername = {
	NK_OP_GETPEERNAME, 0, { 0 }, NULL, 0, 0, -ENOTCONN, sizeof(struct nk_addr) };
static const struct op_case c_ioctl = {
	NK_OP_IOCTL, 0, { NK_IOC_OUTQ, 0, 0, 0x77 }, NULL, 0, 0, 0, 0 };

static void t_op(void **state)
{
	const struct op_case *c = *state;
	struct h_counters g0, n0;
	uint8_t payload[64], rbuf[64];
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	uint32_t id, nsm;
	size_t plen = 0, pos;
	int i;

	id = open_sock(W.vm1, H_VM1, &nsm);
	if (c->ip) {
		assert_int_equal(nk_addr_parse((struct nk_addr *)payload, c->ip, c->port), 0);
		plen = sizeof(struct nk_addr);
	} else if (c->op == NK_OP_SETSOCKOPT) {
		memcpy(payload, &c->opt, sizeof(c->opt));
		plen = sizeof(c->opt);
	}
	tnsm_set_reply(W.nsm, c->op, TNSM_AUTO, c->status);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);

	h_hdr(&h, c->op, id);
	h.flags = c->flags;
	for (i = 0; i < 4; i++)
		h.arg[i] = c->arg[i];
	memset(rbuf, 0, sizeof(rbuf));
	assert_int_equal(h_call(W.vm1, &h, payload, plen, &rep, rbuf, sizeof(rbuf)), c->status);

	h_nsm_expect(&pos, c->op, H_ANY_SOCK, &r);
	assert_int_equal(r.h.sock, nsm);
	assert_int_not_equal(r.h.req_id, h.req_id);
	assert_int_equal(r.h.flags, c->flags);
	for (i = 0; i < 4; i++)
		assert_int_equal(r.h.arg[i], c->arg[i]);
	assert_int_equal(r.len, plen);
	if (plen)
		assert_memory_equal(r.data, payload, plen);

	assert_int_equal(rep.len, c->rlen);
	if (c->op == NK_OP_GETSOCKOPT) {
		uint32_t v = TNSM_OPTVAL;

		assert_memory_equal(rbuf, &v, 4);
	} else if (c->op == NK_OP_GETSOCKNAME) {
		h_assert_addr(rbuf, 2, "10.0.0.11", TNSM_NAME_PORT);
	} else if (c->op == NK_OP_GETPEERNAME) {
		h_assert_addr(rbuf, 2, TNSM_PEER_IP, TNSM_PEER_PORT);
	} else if (c->op == NK_OP_IOCTL) {
		assert_int_equal(rep.arg[0], TNSM_IOCTL_VAL);
	}
	/* An NSM's error is not the engine's: "errors" stays. */
	h_assert_delta(H_VM1, &g0, HC_REQUESTS, 1);
	h_assert_delta(H_VM1, &g0, HC_REPLIES, 1);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 0);
	h_assert_delta(H_VM1, &g0, HC_BYTES_IN, plen);
	h_assert_delta(H_VM1, &g0, HC_BYTES_OUT, c->rlen);
	h_assert_delta(H_NSM, &n0, HC_EVENTS, 1);
	h_assert_delta(H_NSM, &n0, HC_REQUESTS, 1);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, plen);
	h_assert_delta(H_NSM, &n0, HC_BYTES_IN, c->rlen);
	tnsm_defaults(W.nsm);
	h_close(W.vm1, id);
	h_pass();
}

/* ---- SEND and CREDIT: not answered unless they fail ---- */

/*
 * An NSM's eventq kick (its buffers posted again) wakes the engine only
 * when someone waits for them: a request the NSM serves while the engine
 * sleeps costs the NSM no exit and the engine no wakeup (the NSM's VM paid
 * a kick per request, its most expensive instruction under TCG).
 */
static void t_nsm_evq_quiet(void **state)
{
	const unsigned int n = 20;
	struct tnsm_rec r;
	struct nk_hdr h;
	uint8_t data[64];
	uint32_t id, nsm;
	uint64_t kicks;
	unsigned int i;
	size_t pos;

	(void)state;
	id = open_sock(W.vm1, H_VM1, &nsm);
	h_pattern(data, sizeof(data), 17, 0);
	kicks = tnsm_evq_kicks(W.nsm);
	for (i = 0; i < n; i++) {
		/* The NSM takes it only once the engine sleeps. */
		tnsm_hold(W.nsm, true);
		pos = tnsm_log_count(W.nsm);
		h_hdr(&h, NK_OP_SEND, id);
		h_send(W.vm1, &h, data, sizeof(data));
		usleep(30000);
		tnsm_hold(W.nsm, false);
		h_nsm_expect(&pos, NK_OP_SEND, nsm, &r);
		assert_int_equal(r.len, sizeof(data));
	}
	kicks = tnsm_evq_kicks(W.nsm) - kicks;
	if (kicks > n / 4)
		fail_msg("the NSM kicked its eventq %" PRIu64 " times for %u requests", kicks, n);
	h_close(W.vm1, id);
}

/*
 * NK_FEAT_PIPE: a guest sends SOCKET and the CONNECT on its socket back
 * to back, without waiting for SOCKET's reply.  Both reach the NSM in
 * order under one NSM id, and both replies come back, SOCKET's first.
 * When the NSM refuses the SOCKET, the CONNECT is answered too and the
 * socket is gone.
 */
static void pipe_once(int32_t socket_status)
{
	uint32_t id = h_new_sock_id();
	struct tnsm_rec rs, rc;
	struct nk_hdr s, c, rep;
	struct nk_addr a;
	size_t pos;

	pos = tnsm_log_count(W.nsm);
	tnsm_set_reply(W.nsm, NK_OP_SOCKET, TNSM_AUTO, socket_status);
	tnsm_set_reply(W.nsm, NK_OP_CONNECT, TNSM_AUTO, -EINPROGRESS);
	h_hdr(&s, NK_OP_SOCKET, id);
	s.flags = NK_F_CREDIT;
	s.buf_alloc = 65536;
	s.arg[0] = AF_INET;
	s.arg[1] = 1;		/* stream */
	s.arg[2] = 6;
	s.req_id = h_new_req_id();
	h_send(W.vm1, &s, NULL, 0);
	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	a.port = htons(80);
	inet_pton(AF_INET, "192.0.2.1", a.addr);
	h_hdr(&c, NK_OP_CONNECT, id);
	c.req_id = h_new_req_id();
	h_send(W.vm1, &c, &a, sizeof(a));

	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &rs);
	h_nsm_expect(&pos, NK_OP_CONNECT, rs.h.sock, &rc);
	assert_int_equal(rc.len, sizeof(a));
	h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_SOCKET);
	assert_int_equal(rep.req_id, s.req_id);
	assert_int_equal((int32_t)rep.status, socket_status);
	h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_CONNECT);
	assert_int_equal(rep.req_id, c.req_id);
	assert_int_equal(rep.sock, id);
	tnsm_defaults(W.nsm);
	if (socket_status) {
		assert_null(h_sock_entry(H_VM1, id));
		return;
	}
	assert_int_equal((int32_t)rep.status, -EINPROGRESS);
	h_close(W.vm1, id);
}

static void t_pipe(void **state)
{
	(void)state;
	pipe_once(0);
	pipe_once(-ENFILE);
}

static void t_send(void **state)
{
	uint8_t data[300], rbuf[300];
	struct h_counters g0, n0;
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	uint32_t id, nsm, dg, dgn;
	json_object *e;
	struct nk_addr a;
	size_t pos;
	int len;

	(void)state;
	id = open_sock(W.vm1, H_VM1, &nsm);
	h_pattern(data, sizeof(data), 7, 0);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SEND, id);
	h.flags = NK_F_MORE;
	h.arg[0] = NK_MSG_EOR;
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, data, 100);
	h_nsm_expect(&pos, NK_OP_SEND, nsm, &r);
	assert_int_equal(r.h.flags, NK_F_MORE);
	assert_int_equal(r.h.arg[0], NK_MSG_EOR);
	assert_int_equal(r.h.req_id, h.req_id);	/* not tracked: unchanged */
	assert_int_equal(r.len, 100);
	assert_memory_equal(r.data, data, 100);
	h_recv_none(W.vm1, H_QUIET_MS);
	e = h_sock_entry(H_VM1, id);
	assert_non_null(e);
	assert_int_equal(h_json_u64(e, "tx_bytes"), 100);
	assert_int_equal(h_json_u64(e, "guest_tx_cnt"), 100);
	json_object_put(e);
	h_assert_delta(H_VM1, &g0, HC_BYTES_IN, 100);
	h_assert_delta(H_VM1, &g0, HC_REPLIES, 0);
	h_assert_delta(H_NSM, &n0, HC_BYTES_OUT, 100);

	/* The NSM's failure answer is routed back by socket id. */
	h_hdr(&rep, NK_OP_SEND, nsm);
	rep.flags = NK_F_REPLY;
	rep.req_id = h.req_id;
	rep.status = (uint32_t)-EPIPE;
	h_nsm_send(&rep, NULL, 0);
	h_recv(W.vm1, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_OP_SEND);
	assert_int_equal(rep.flags & NK_F_REPLY, NK_F_REPLY);
	assert_int_equal(rep.sock, id);
	assert_int_equal(rep.req_id, h.req_id);
	assert_int_equal((int32_t)rep.status, -EPIPE);
	h_close(W.vm1, id);

	/* A datagram: NK_F_ADDR, the address is not counted by credit. */
	dg = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, dg, 2, 2, 65536, NULL), 0);
	dgn = h_nsm_id(H_VM1, dg);
	assert_int_equal(nk_addr_parse(&a, "198.51.100.9", 53), 0);
	memcpy(rbuf, &a, sizeof(a));
	memcpy(rbuf + sizeof(a), data, 50);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SEND, dg);
	h.flags = NK_F_ADDR;
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, rbuf, sizeof(a) + 50);
	h_nsm_expect(&pos, NK_OP_SEND, dgn, &r);
	assert_int_equal(r.h.flags, NK_F_ADDR);
	assert_int_equal(r.len, sizeof(a) + 50);
	assert_memory_equal(r.data, rbuf, sizeof(a) + 50);
	e = h_sock_entry(H_VM1, dg);
	assert_int_equal(h_json_u64(e, "guest_tx_cnt"), 50);
	json_object_put(e);
	len = nk_ep_recv(W.vm1, &rep, NULL, 0, 0);
	assert_true(len < 0);
	h_close(W.vm1, dg);
	h_pass();
}

/*
 * The largest datagrams cross whole (protocol.rst, "The largest datagram"):
 * between endpoints that agreed NK_MAX_PAYLOAD, a SEND of NK_DGRAM_MAX
 * bytes after its nk_addr, and an EV_DATA of NK_DGRAM_MAX bytes after its
 * nk_anc and nk_addr; credit counts the data only.
 */
static void t_send_largest_datagram(void **state)
{
	static uint8_t buf[NK_MAX_PAYLOAD], rbuf[NK_MAX_PAYLOAD];
	const uint32_t meta = sizeof(struct nk_anc) + sizeof(struct nk_addr);
	struct nk_anc anc = {
		.version = NK_ANC_VERSION, .size = sizeof(anc),
		.present = NK_ANC_HOPLIMIT, .hoplimit = 64,
	};
	uint32_t dg = h_new_sock_id(), dgn, i;
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	struct nk_addr a;
	json_object *e;
	size_t pos;

	(void)state;
	assert_int_equal(nk_ep_max_payload(W.vm1), NK_MAX_PAYLOAD);
	assert_int_equal(h_socket(W.vm1, dg, 10, 2, 2 * NK_MAX_PAYLOAD, NULL), 0);
	dgn = h_nsm_id(H_VM1, dg);
	assert_int_equal(nk_addr_parse(&a, "2001:db8::9", 53), 0);
	memcpy(buf, &anc, sizeof(anc));
	memcpy(buf + sizeof(anc), &a, sizeof(a));
	for (i = meta; i < NK_MAX_PAYLOAD; i++)
		buf[i] = (uint8_t)(i * 7);

	/* vm1's SEND: nk_addr and data, at the NSM whole. */
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SEND, dg);
	h.flags = NK_F_ADDR;
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, buf + sizeof(anc), sizeof(a) + NK_DGRAM_MAX);
	h_nsm_expect(&pos, NK_OP_SEND, dgn, &r);
	assert_int_equal(r.h.flags, NK_F_ADDR);
	assert_int_equal(r.len, sizeof(a) + NK_DGRAM_MAX);
	assert_memory_equal(r.data, buf + sizeof(anc), TNSM_REC_DATA);
	assert_int_equal(tnsm_wait_rx(W.nsm, dgn, NK_DGRAM_MAX, H_TIMEOUT_MS), 0);

	/* The NSM's EV_DATA: nk_anc, nk_addr and data, at vm1 whole. */
	h_hdr(&h, NK_EV_DATA, dgn);
	h.flags = NK_F_ADDR | NK_F_ANC;
	h_nsm_send(&h, buf, NK_MAX_PAYLOAD);
	assert_int_equal(h_recv(W.vm1, &rep, rbuf, sizeof(rbuf), H_TIMEOUT_MS),
			 NK_MAX_PAYLOAD);
	assert_int_equal(rep.op, NK_EV_DATA);
	assert_int_equal(rep.flags, NK_F_ADDR | NK_F_ANC);
	assert_int_equal(rep.sock, dg);
	assert_memory_equal(rbuf, buf, NK_MAX_PAYLOAD);
	e = h_sock_entry(H_VM1, dg);
	assert_int_equal(h_json_u64(e, "guest_tx_cnt"), NK_DGRAM_MAX);
	assert_int_equal(h_json_u64(e, "nsm_tx_cnt"), NK_DGRAM_MAX);
	json_object_put(e);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_close(W.vm1, dg);
	h_pass();
}

static void t_credit(void **state)
{
	struct nk_hdr h, ev;
	struct tnsm_rec r;
	uint32_t id, nsm;
	json_object *e;
	size_t pos;

	(void)state;
	id = open_sock(W.vm1, H_VM1, &nsm);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_CREDIT, id);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 12345;
	h.fwd_cnt = 0;		/* nothing sent yet: nothing consumed */
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, NULL, 0);
	h_nsm_expect(&pos, NK_OP_CREDIT, nsm, &r);
	assert_int_equal(r.h.flags, NK_F_CREDIT);
	assert_int_equal(r.h.buf_alloc, 12345);
	assert_int_equal(r.h.fwd_cnt, 0);
	assert_int_equal(r.h.req_id, h.req_id);
	assert_int_equal(r.len, 0);
	h_recv_none(W.vm1, H_QUIET_MS);
	e = h_sock_entry(H_VM1, id);
	assert_int_equal(h_json_u64(e, "guest_buf_alloc"), 12345);
	assert_int_equal(h_json_u64(e, "guest_fwd_cnt"), 0);
	json_object_put(e);

	/* NSM -> guest: an event with req_id 0. */
	h_hdr(&h, NK_OP_CREDIT, nsm);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 4444;
	h.fwd_cnt = 0;
	h_nsm_send(&h, NULL, 0);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_OP_CREDIT);
	assert_int_equal(ev.flags, NK_F_CREDIT);
	assert_int_equal(ev.sock, id);
	assert_int_equal(ev.req_id, 0);
	assert_int_equal(ev.buf_alloc, 4444);
	assert_int_equal(ev.fwd_cnt, 0);
	e = h_sock_entry(H_VM1, id);
	assert_int_equal(h_json_u64(e, "nsm_buf_alloc"), 4444);
	assert_int_equal(h_json_u64(e, "nsm_fwd_cnt"), 0);
	json_object_put(e);
	h_close(W.vm1, id);
	h_pass();
}

/* ---- ACCEPT and CLOSE ---- */

static void t_accept(void **state)
{
	uint32_t l, ln, nid = h_new_sock_id(), nid2 = h_new_sock_id(), nn;
	uint8_t rbuf[64];
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	json_object *e;
	size_t pos;

	(void)state;
	l = open_sock(W.vm1, H_VM1, &ln);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_ACCEPT, l);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 32768;
	h.arg[0] = nid;
	h.arg[1] = 0;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, rbuf, sizeof(rbuf)), 0);
	assert_int_equal(rep.arg[0], nid);
	assert_int_equal(rep.len, sizeof(struct nk_addr));
	h_assert_addr(rbuf, 2, TNSM_PEER_IP, TNSM_PEER_PORT);
	assert_true(rep.flags & NK_F_CREDIT);
	assert_int_equal(rep.buf_alloc, TNSM_CREDIT);

	h_nsm_expect(&pos, NK_OP_ACCEPT, ln, &r);
	assert_int_not_equal(r.h.req_id, h.req_id);
	nn = r.h.arg[0];
	assert_int_not_equal(nn, 0);
	assert_int_not_equal(nn, nid);
	assert_int_not_equal(nn, ln);
	assert_int_equal(r.h.buf_alloc, 32768);
	assert_int_equal(h_nsm_id(H_VM1, nid), nn);
	e = h_sock_entry(H_VM1, nid);
	assert_string_equal(h_json_str(e, "state"), "open");
	assert_int_equal(h_json_u64(e, "guest_buf_alloc"), 32768);
	assert_int_equal(h_json_u64(e, "nsm_buf_alloc"), TNSM_CREDIT);
	json_object_put(e);

	/* The new socket is usable: a request on it reaches NSM id nn. */
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_GETPEERNAME, nid);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, rbuf, sizeof(rbuf)), 0);
	h_nsm_expect(&pos, NK_OP_GETPEERNAME, nn, NULL);

	/* EAGAIN: no mapping is left behind. */
	tnsm_set_reply(W.nsm, NK_OP_ACCEPT, TNSM_AUTO, -EAGAIN);
	h_hdr(&h, NK_OP_ACCEPT, l);
	h.arg[0] = nid2;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -EAGAIN);
	assert_null(h_sock_entry(H_VM1, nid2));
	h_hdr(&h, NK_OP_LISTEN, nid2);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -EBADF);
	tnsm_defaults(W.nsm);

	h_close(W.vm1, nid);
	h_close(W.vm1, l);
	h_pass();
}

static void t_close(void **state)
{
	struct h_counters g0, n0;
	struct nk_hdr h, rep;
	struct tnsm_rec r;
	uint32_t id, nsm;
	size_t pos;

	(void)state;
	id = open_sock(W.vm1, H_VM1, &nsm);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_CLOSE, id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), 0);
	h_nsm_expect(&pos, NK_OP_CLOSE, nsm, &r);
	assert_int_not_equal(r.h.req_id, h.req_id);
	assert_null(h_sock_entry(H_VM1, id));
	h_assert_delta(H_VM1, &g0, HC_SOCKETS, -1);
	h_assert_delta(H_NSM, &n0, HC_SOCKETS, -1);

	/* The id is free: a request on it is refused, SOCKET reuses it. */
	h_hdr(&h, NK_OP_LISTEN, id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -EBADF);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	assert_int_not_equal(h_nsm_id(H_VM1, id), id);
	h_close(W.vm1, id);
	h_pass();
}

/* ---- events ---- */

struct ev_case {
	uint16_t op;
	uint16_t flags;
	int32_t status;
	uint64_t a0;
	unsigned int len;
};

static const struct ev_case e_data = { NK_EV_DATA, 0, 0, 0, 300 };
static const struct ev_case e_accept = { NK_EV_ACCEPT, 0, 0, 3, 0 };
static const struct ev_case e_connected = { NK_EV_CONNECTED, 0, 0, 0, 0 };
static const struct ev_case e_writable = { NK_EV_WRITABLE, NK_F_CREDIT, 0, 0, 0 };
static const struct ev_case e_hup = { NK_EV_HUP, 0, 0, NK_SHUT_RD | NK_SHUT_WR, 0 };
static const struct ev_case e_error = { NK_EV_ERROR, 0, -ECONNREFUSED, 0, 0 };

static void t_event(void **state)
{
	const struct ev_case *c = *state;
	struct h_counters g0, g2, n0;
	uint8_t data[300], rbuf[300];
	struct nk_hdr h, ev;
	uint32_t id, nsm, id2, nsm2;
	int len;

	id = open_sock(W.vm1, H_VM1, &nsm);
	id2 = open_sock(W.vm2, H_VM2, &nsm2);
	h_pattern(data, sizeof(data), c->op, 0);
	h_counters(H_VM1, &g0);
	h_counters(H_VM2, &g2);
	h_counters(H_NSM, &n0);
	h_hdr(&h, c->op, nsm);
	h.flags = c->flags;
	h.status = (uint32_t)c->status;
	h.arg[0] = c->a0;
	h.arg[1] = 0xabcdef;
	if (c->flags & NK_F_CREDIT) {
		h.buf_alloc = 200000;
		h.fwd_cnt = 1000;
	}
	h_nsm_send(&h, data, c->len);
	memset(rbuf, 0, sizeof(rbuf));
	len = h_recv(W.vm1, &ev, rbuf, sizeof(rbuf), H_TIMEOUT_MS);
	assert_int_equal(ev.op, c->op);
	assert_int_equal(ev.flags, c->flags);
	assert_int_equal(ev.sock, id);
	assert_int_equal(ev.req_id, 0);
	assert_int_equal((int32_t)ev.status, c->status);
	assert_int_equal(ev.arg[0], c->a0);
	assert_int_equal(ev.arg[1], 0xabcdef);
	assert_int_equal(len, c->len);
	if (c->len)
		assert_memory_equal(rbuf, data, c->len);
	if (c->flags & NK_F_CREDIT) {
		assert_int_equal(ev.buf_alloc, 200000);
		assert_int_equal(ev.fwd_cnt, 1000);
	}
	h_recv_none(W.vm2, H_QUIET_MS);
	h_assert_delta(H_VM1, &g0, HC_EVENTS, 1);
	h_assert_delta(H_VM1, &g0, HC_BYTES_OUT, c->len);
	h_assert_delta(H_VM2, &g2, HC_EVENTS, 0);
	h_assert_delta(H_NSM, &n0, HC_REQUESTS, 1);
	h_assert_delta(H_NSM, &n0, HC_BYTES_IN, c->len);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 0);
	h_close(W.vm1, id);
	h_close(W.vm2, id2);
	h_pass();
}

/* ---- isolation ---- */

static void t_same_id_two_guests(void **state)
{
	uint32_t id = h_new_sock_id(), n1, n2;
	uint8_t a[40], b[40], rbuf[64];
	struct tnsm_rec r1, r2, r;
	struct nk_hdr h, ev;
	size_t pos = tnsm_log_count(W.nsm), p;
	int len;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm2, id, 2, 1, 65536, NULL), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r1);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r2);
	n1 = h_nsm_id(H_VM1, id);
	n2 = h_nsm_id(H_VM2, id);
	assert_int_not_equal(n1, n2);
	assert_int_equal(r1.h.sock, n1);
	assert_int_equal(r2.h.sock, n2);
	assert_int_equal(r1.h.arg[3] >> 32, H_ID_VM1);
	assert_int_equal(r2.h.arg[3] >> 32, H_ID_VM2);
	assert_int_equal(h_nr_sockets(H_VM1) >= 1, 1);

	/* Each guest's data reaches its own NSM socket. */
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	p = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SEND, id);
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, a, sizeof(a));
	h_hdr(&h, NK_OP_SEND, id);
	h.req_id = h_new_req_id();
	h_send(W.vm2, &h, b, sizeof(b));
	pos = p;
	h_nsm_expect(&pos, NK_OP_SEND, n1, &r);
	assert_memory_equal(r.data, a, sizeof(a));
	pos = p;
	h_nsm_expect(&pos, NK_OP_SEND, n2, &r);
	assert_memory_equal(r.data, b, sizeof(b));

	/* Data for vm2's socket reaches vm2 only, and vice versa. */
	h_hdr(&h, NK_EV_DATA, n2);
	h_nsm_send(&h, b, 20);
	len = h_recv(W.vm2, &ev, rbuf, sizeof(rbuf), H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_DATA);
	assert_int_equal(ev.sock, id);
	assert_int_equal(len, 20);
	assert_memory_equal(rbuf, b, 20);
	h_recv_none(W.vm1, H_QUIET_MS);
	h_hdr(&h, NK_EV_HUP, n1);
	h.arg[0] = NK_SHUT_RD;
	h_nsm_send(&h, NULL, 0);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_HUP);
	assert_int_equal(ev.sock, id);
	h_recv_none(W.vm2, H_QUIET_MS);

	/* Replies too: vm2's CLOSE does not touch vm1's socket. */
	h_close(W.vm2, id);
	assert_null(h_sock_entry(H_VM2, id));
	assert_int_equal(h_nsm_id(H_VM1, id), n1);
	h_close(W.vm1, id);
	h_pass();
}

/* HELLO on raw device @r (NK_FEAT_MQ with @pairs set up, unless 0). */
static int raw_hello(struct h_raw *r, uint32_t pairs, struct nk_hdr *rep)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_HELLO, 0);
	h.arg[0] = NK_PROTO_VERSION;
	h.arg[1] = pairs ? NK_FEAT_MQ : 0;
	h.arg[2] = NK_MAX_PAYLOAD;
	h.arg[3] = NK_ROLE_GUEST;
	h.buf_alloc = pairs;
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(r, &h, NULL, 0), 0);
	h_raw_recv(r, rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep->op, NK_OP_HELLO);
	assert_int_equal(rep->req_id, h.req_id);
	return (int32_t)rep->status;
}

/*
 * SOCKET (or CLOSE) of @id on carrier @r, its reply on the same carrier,
 * with an interrupt on that carrier's eventq.
 */
static void raw_sock_op(struct h_raw *r, uint16_t op, uint32_t id)
{
	uint64_t calls = vuf_vq_calls(r->d, NK_VQ_EVENT(0));
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	struct nk_hdr h, rep;

	h_hdr(&h, op, id);
	if (op == NK_OP_SOCKET) {
		h.flags = NK_F_CREDIT;
		h.buf_alloc = 65536;
		h.arg[0] = 2;
		h.arg[1] = 1;
		h.arg[2] = 6;
	}
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(r, &h, NULL, 0), 0);
	h_raw_recv(r, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, op);
	assert_int_equal(rep.flags & NK_F_REPLY, NK_F_REPLY);
	assert_int_equal(rep.req_id, h.req_id);
	assert_int_equal(rep.sock, id);
	assert_int_equal((int32_t)rep.status, 0);
	while (vuf_vq_calls(r->d, NK_VQ_EVENT(0)) == calls && h_now() < deadline)
		usleep(1000);
	assert_true(vuf_vq_calls(r->d, NK_VQ_EVENT(0)) > calls);
}

/*
 * CLOSE of @id, whose pair is @c0's (pair 0), sent on @other's pair:
 * EV_PROTO_ERROR NK_PERR_PAIR (-EXDEV) for it on pair 0, counted in
 * proto_errors, and not forwarded: @ep keeps its one socket.
 */
static void raw_wrong_pair(struct h_raw *c0, struct h_raw *other, const char *ep,
			   uint32_t id)
{
	struct h_counters before;
	struct nk_hdr h, rep;

	h_counters(ep, &before);
	h_hdr(&h, NK_OP_CLOSE, id);
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(other, &h, NULL, 0), 0);
	h_raw_recv(c0, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(rep.op, NK_EV_PROTO_ERROR);
	assert_int_equal(rep.arg[0], NK_PERR_PAIR);
	assert_int_equal((int32_t)rep.status, -EXDEV);
	assert_int_equal(rep.arg[2], NK_OP_CLOSE);
	assert_int_equal(rep.req_id, h.req_id);
	h_assert_delta(ep, &before, HC_PROTO_ERRORS, 1);
	assert_int_equal(h_nr_sockets(ep), 1);
}

static void wait_pairs_up(const char *ep, uint64_t n)
{
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	json_object *e;
	uint64_t up;

	do {
		e = h_list_ep(ep);
		up = h_json_u64(e, "pairs_up");
		json_object_put(e);
		if (up == n)
			return;
		usleep(20000);
	} while (h_now() < deadline);
	fail_msg("%s: pairs_up %" PRIu64 ", not %" PRIu64, ep, up, n);
}

/*
 * Carriers: vm5 (carriers = 2) is two vhost-user devices of one pair each,
 * each with its own memory.  The second says carrier 1 in its
 * configuration space.  HELLO with NK_FEAT_MQ agrees the pairs set up;
 * socket s's messages then travel on carrier s % 2, and one that comes on
 * the other is refused (NK_PERR_PAIR).  The second carrier's
 * stop ends the session (NO_SESSION on carrier 0), and the next HELLO
 * agrees one pair; a carrier from before a session's end is not counted
 * until it starts again.
 */
static void t_carriers(void **state)
{
	uint32_t odd = h_new_sock_id() | 1, even = h_new_sock_id() & ~1U;
	struct h_raw *c0, *c1;
	char path[256], p1[300];
	struct nk_hdr rep;
	json_object *r, *e;
	uint32_t id;

	(void)state;
	r = h_ctl_ok("{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm5\", "
		     "\"nsm\": \"nsm0\", \"address\": \"10.0.0.15\", \"carriers\": \"2\"}");
	id = h_json_u64(r, "id");
	json_object_put(r);
	e = h_list_ep("vm5");
	assert_int_equal(h_json_u64(e, "carriers"), 2);
	assert_int_equal(h_json_u64(e, "pairs_up"), 0);
	json_object_put(e);

	h_sock_path(path, sizeof(path), "vm5");
	snprintf(p1, sizeof(p1), "%s.1", path);
	c0 = h_raw_open_path(path, 8, false);
	c1 = h_raw_open_path(p1, 8, false);
	assert_int_equal(vuf_config(c0->d)->role, NK_ROLE_GUEST);
	assert_int_equal(vuf_config(c0->d)->max_qpairs, 2);
	assert_int_equal(vuf_config(c1->d)->role, NK_ROLE_GUEST | 1 << 4);
	assert_int_equal(vuf_config(c1->d)->max_qpairs, 2);
	wait_pairs_up("vm5", 2);

	/* Pairs proposed: 1 to NK_MAX_QPAIRS. */
	assert_int_equal(raw_hello(c0, NK_MAX_QPAIRS + 1, &rep), -EINVAL);
	assert_int_equal(raw_hello(c0, 4, &rep), 0);
	c0->session = true;
	assert_int_equal(rep.arg[1], NK_FEAT_MQ);
	assert_int_equal(rep.arg[3], id | 2ULL << 32);	/* 2 set up of the 4 */
	e = h_list_ep("vm5");
	assert_int_equal(h_json_u64(e, "pairs"), 2);
	json_object_put(e);

	raw_sock_op(c1, NK_OP_SOCKET, odd);
	raw_sock_op(c0, NK_OP_SOCKET, even);
	raw_sock_op(c1, NK_OP_CLOSE, odd);
	raw_wrong_pair(c0, c1, "vm5", even);

	/* Carrier 1 stops: the session ends, vm5's socket with it. */
	h_raw_close(c1);
	h_raw_recv(c0, &rep, NULL, 0, H_TIMEOUT_MS);
	assert_true(nk_no_session(&rep));
	assert_int_equal(h_nr_sockets("vm5"), 0);
	wait_pairs_up("vm5", 1);
	c0->session = false;
	assert_int_equal(raw_hello(c0, 2, &rep), 0);
	assert_int_equal(rep.arg[3], id | 1ULL << 32);
	c0->session = true;
	raw_sock_op(c0, NK_OP_SOCKET, odd);
	raw_sock_op(c0, NK_OP_CLOSE, odd);

	/*
	 * A carrier started before the session ended is not used until it
	 * starts again.  Without NK_FEAT_MQ: one pair, whatever is set up.
	 */
	c1 = h_raw_open_path(p1, 8, false);
	wait_pairs_up("vm5", 2);
	h_raw_close(c0);
	h_wait_state("vm5", "waiting");
	c0 = h_raw_open_path(path, 8, false);
	h_wait_state("vm5", "connected");
	wait_pairs_up("vm5", 1);
	h_raw_close(c1);
	c1 = h_raw_open_path(p1, 8, false);
	wait_pairs_up("vm5", 2);
	assert_int_equal(raw_hello(c0, 0, &rep), 0);
	assert_int_equal(rep.arg[1], 0);
	assert_int_equal(rep.arg[3], id);
	c0->session = true;
	raw_sock_op(c0, NK_OP_SOCKET, odd);
	raw_sock_op(c0, NK_OP_CLOSE, odd);
	e = h_list_ep("vm5");
	assert_int_equal(h_json_u64(e, "pairs"), 1);
	json_object_put(e);

	h_raw_close(c1);
	h_raw_close(c0);
	json_object_put(h_ctl_ok("{\"cmd\": \"remove\", \"name\": \"vm5\"}"));
	h_pass();
}

static const struct CMUnitTest tests[] = {
	H_TEST(t_hello),
	H_TEST(t_socket_inet),
	H_TEST(t_socket_addresses),
	H_TEST_PRE("op_bind", t_op, &c_bind),
	H_TEST_PRE("op_listen", t_op, &c_listen),
	H_TEST_PRE("op_connect", t_op, &c_connect),
	H_TEST_PRE("op_shutdown", t_op, &c_shutdown),
	H_TEST_PRE("op_setsockopt", t_op, &c_setsockopt),
	H_TEST_PRE("op_getsockopt", t_op, &c_getsockopt),
	H_TEST_PRE("op_getsockname", t_op, &c_getsockname),
	H_TEST_PRE("op_getpeername", t_op, &c_getpeername),
	H_TEST_PRE("op_ioctl", t_op, &c_ioctl),
	H_TEST(t_pipe),
	H_TEST(t_send),
	H_TEST(t_nsm_evq_quiet),
	H_TEST(t_send_largest_datagram),
	H_TEST(t_credit),
	H_TEST(t_accept),
	H_TEST(t_close),
	H_TEST_PRE("event_data", t_event, &e_data),
	H_TEST_PRE("event_accept", t_event, &e_accept),
	H_TEST_PRE("event_connected", t_event, &e_connected),
	H_TEST_PRE("event_writable", t_event, &e_writable),
	H_TEST_PRE("event_hup", t_event, &e_hup),
	H_TEST_PRE("event_error", t_event, &e_error),
	H_TEST(t_same_id_two_guests),
	H_TEST(t_carriers),
};

H_MAIN("routing", tests)
