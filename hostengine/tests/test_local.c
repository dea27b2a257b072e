// SPDX-License-Identifier: GPL-2.0
/*
 * Local switching (hostengine/local.c): vm1 (10.0.0.11) connects to a
 * listener of vm2 (10.0.0.12), both attached to nsm0 with the default
 * policy (local_switch = auto, one tenant), and the engine joins the two
 * sockets itself: the test NSM never sees the CONNECT, the ACCEPT or the
 * data.  Stream semantics (order, credit, shutdown, reset, refusal), the
 * policy (nkctl set), a guest going away, and bad input on switched
 * sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tnsm.h"

#define VM1_IP		"10.0.0.11"
#define VM2_IP		"10.0.0.12"
#define BUF		65536
#define PRE_CREDIT	65536	/* local.c's LSW_PRE_CREDIT */

/* One switched connection: vm1's client socket, vm2's listener and accepted one. */
struct conn {
	uint32_t c;		/* vm1 */
	uint32_t l;		/* vm2: listener */
	uint32_t a;		/* vm2: accepted */
	uint16_t port;		/* vm2's */
	uint16_t cport;		/* vm1's, as the engine chose it */
	uint32_t c_rx, a_rx;	/* bytes received (their fwd_cnt, when consumed) */
	uint32_t c_buf, a_buf;	/* their buf_alloc */
};

static uint16_t next_port = 7000;

static void sockaddr_req(struct nk_ep *ep, uint16_t op, uint32_t id, const char *ip,
			 uint16_t port, int want)
{
	struct nk_addr a;
	struct nk_hdr h;

	assert_int_equal(nk_addr_parse(&a, ip, port), 0);
	h_hdr(&h, op, id);
	assert_int_equal(h_call(ep, &h, &a, sizeof(a), NULL, NULL, 0), want);
}

/* vm2 listens on 0.0.0.0:@port (or @ip) with @backlog. */
static uint32_t listener(const char *ip, uint16_t port, uint32_t backlog)
{
	uint32_t id = h_new_sock_id();
	struct nk_hdr h;

	assert_int_equal(h_socket(W.vm2, id, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	sockaddr_req(W.vm2, NK_OP_BIND, id, ip, port, 0);
	h_hdr(&h, NK_OP_LISTEN, id);
	h.arg[0] = backlog;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	return id;
}

/* vm1's CONNECT to @ip:@port: -EINPROGRESS, then the event it gets. */
static void connect_start(uint32_t id, const char *ip, uint16_t port, struct nk_hdr *ev,
			  uint8_t *addr)
{
	struct nk_addr a;
	struct nk_hdr h, rep;
	int len;

	assert_int_equal(nk_addr_parse(&a, ip, port), 0);
	h_hdr(&h, NK_OP_CONNECT, id);
	assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), &rep, NULL, 0), -EINPROGRESS);
	/* No credit in the reply (t_connect_credit). */
	assert_false(rep.flags & NK_F_CREDIT);
	len = h_recv(W.vm1, ev, addr, sizeof(struct nk_addr), H_TIMEOUT_MS);
	assert_int_equal(ev->sock, id);
	if (ev->op == NK_EV_CONNECTED) {
		assert_int_equal(len, sizeof(struct nk_addr));
		/* The window the engine holds until vm2 accepts. */
		assert_true(ev->flags & NK_F_CREDIT);
		assert_int_equal(ev->buf_alloc, PRE_CREDIT);
		assert_int_equal(ev->fwd_cnt, 0);
	}
}

static void accept_one(struct conn *k)
{
	uint8_t peer[sizeof(struct nk_addr)];
	struct nk_hdr h, rep, ev;

	k->a = h_new_sock_id();
	h_hdr(&h, NK_OP_ACCEPT, k->l);
	h.arg[0] = k->a;
	h.flags = NK_F_CREDIT;
	h.buf_alloc = k->a_buf;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, &rep, peer, sizeof(peer)), 0);
	assert_int_equal(rep.len, sizeof(struct nk_addr));
	h_assert_addr(peer, AF_INET, VM1_IP, k->cport);
	/* The new socket's credit is vm1's, and what the engine holds beyond. */
	assert_true(rep.flags & NK_F_CREDIT);
	assert_int_equal(rep.buf_alloc, k->c_buf + PRE_CREDIT);
	/* vm1 learns vm2's credit. */
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_OP_CREDIT);
	assert_int_equal(ev.sock, k->c);
	assert_true(ev.flags & NK_F_CREDIT);
	assert_int_equal(ev.buf_alloc, k->a_buf + PRE_CREDIT);
}

/* A switched connection vm1 -> vm2, accepted, credit @c_buf and @a_buf. */
static void conn_connect(struct conn *k);

static void conn_open(struct conn *k, uint32_t c_buf, uint32_t a_buf)
{
	memset(k, 0, sizeof(*k));
	k->port = next_port++;
	k->c_buf = c_buf;
	k->a_buf = a_buf;
	k->l = listener("0.0.0.0", k->port, 16);
	conn_connect(k);
}

/* vm1's connection to vm2's listener k->l on k->port, accepted. */
static void conn_connect(struct conn *k)
{
	uint8_t addr[sizeof(struct nk_addr)];
	struct nk_addr la;
	struct nk_hdr ev;
	size_t pos;

	k->c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, k->c, AF_INET, SOCK_STREAM, k->c_buf, NULL), 0);
	pos = tnsm_log_count(W.nsm);
	connect_start(k->c, VM2_IP, k->port, &ev, addr);
	assert_int_equal(ev.op, NK_EV_CONNECTED);
	memcpy(&la, addr, sizeof(la));
	assert_int_equal(la.family, AF_INET);
	k->cport = ntohs(la.port);
	assert_true(k->cport >= 61000);
	h_assert_addr(addr, AF_INET, VM1_IP, k->cport);
	/* vm2's listener hears of it. */
	h_recv(W.vm2, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_ACCEPT);
	assert_int_equal(ev.sock, k->l);
	assert_int_equal(ev.arg[0], 1);
	accept_one(k);
	/* None of it reached the NSM. */
	h_nsm_none(pos, NK_OP_CONNECT, 0);
	h_nsm_none(pos, NK_OP_ACCEPT, 0);
}

static void send_data(struct nk_ep *ep, uint32_t id, const void *p, size_t len)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_SEND, id);
	h_send(ep, &h, p, len);
}

/* The next message on @ep: EV_DATA for @id, @len bytes equal to @p. */
static void expect_data(struct nk_ep *ep, uint32_t id, const void *p, size_t len)
{
	static uint8_t buf[NK_MAX_PAYLOAD];
	struct nk_hdr ev;
	int n;

	n = h_recv(ep, &ev, buf, sizeof(buf), H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_DATA);
	assert_int_equal(ev.sock, id);
	assert_int_equal(n, len);
	assert_memory_equal(buf, p, len);
}

static void expect_event(struct nk_ep *ep, uint32_t id, uint16_t op, int status, uint64_t a0)
{
	struct nk_hdr ev;

	h_recv(ep, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, op);
	assert_int_equal(ev.sock, id);
	assert_int_equal((int32_t)ev.status, status);
	assert_int_equal(ev.arg[0], a0);
}

/* @ep consumed @fwd bytes of @id: a CREDIT request. */
static void consumed(struct nk_ep *ep, uint32_t id, uint32_t buf, uint32_t fwd)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_CREDIT, id);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = buf;
	h.fwd_cnt = fwd;
	h_send(ep, &h, NULL, 0);
}

/*
 * CLOSE @id on @ep, taking the events that come before its reply (EOF,
 * credit, resets of switched peers): returns how many were EV_RESET.
 */
static unsigned int close_sock(struct nk_ep *ep, uint32_t id)
{
	unsigned int resets = 0;
	struct nk_hdr h, ev;

	h_hdr(&h, NK_OP_CLOSE, id);
	h.req_id = h_new_req_id();
	h_send(ep, &h, NULL, 0);
	for (;;) {
		h_recv(ep, &ev, NULL, 0, H_TIMEOUT_MS);
		if (ev.flags & NK_F_REPLY) {
			assert_int_equal(ev.op, NK_OP_CLOSE);
			assert_int_equal(ev.sock, id);
			assert_int_equal(ev.req_id, h.req_id);
			assert_int_equal((int32_t)ev.status, 0);
			return resets;
		}
		if (ev.op == NK_EV_RESET) {
			assert_int_equal((int32_t)ev.status, -ECONNRESET);
			resets++;
		} else if (ev.op != NK_EV_HUP && ev.op != NK_OP_CREDIT) {
			fail_msg("op %#x for socket %u before CLOSE's reply", ev.op, ev.sock);
		}
	}
}

static void close_all(struct conn *k)
{
	close_sock(W.vm1, k->c);
	close_sock(W.vm2, k->a);
	close_sock(W.vm2, k->l);
}

/* Drop what is left on both guests (EOFs, resets of closed sockets). */
static void drain_quiet(void)
{
	struct nk_hdr h;

	while (nk_ep_recv(W.vm1, &h, NULL, 0, H_QUIET_MS) >= 0)
		;
	while (nk_ep_recv(W.vm2, &h, NULL, 0, H_QUIET_MS) >= 0)
		;
}

static json_object *sock_entry_ok(const char *ep, uint32_t id)
{
	json_object *e = h_sock_entry(ep, id);

	if (!e)
		fail_msg("engine lists no socket %u of %s", id, ep);
	return e;
}

/* "nkctl sockets vm1": socket @id's LOCAL column reads @peer@psock. */
static void nkctl_local_column(uint32_t id, const char *peer, uint32_t psock)
{
	char bin[PATH_MAX], cmd[PATH_MAX + 256], line[1024], want[96], sid[16];
	bool header = false, seen = false;
	FILE *f;

	h_tool_path(bin, sizeof(bin), "NKCTL", "../../tools/nkctl/nkctl");
	snprintf(cmd, sizeof(cmd), "'%s' -s '%s' sockets vm1", bin, W.ctl);
	snprintf(want, sizeof(want), " %s%u ", peer, psock);
	snprintf(sid, sizeof(sid), " %u ", id);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "LOCAL"))
			header = true;
		if (strstr(line, sid) && strstr(line, want))
			seen = true;
	}
	assert_int_equal(pclose(f), 0);
	assert_true(header);
	if (!seen)
		fail_msg("nkctl sockets vm1: no row for %u with LOCAL%s", id, want);
}

/* Data both ways, in order; addresses on both ends; the listing. */
static void t_data(void **state)
{
	static const char *const msgs[] = { "one", "two", "three", "four" };
	struct conn k;
	uint8_t a[sizeof(struct nk_addr)];
	size_t pos, i;
	json_object *e, *v;
	struct nk_hdr h;

	(void)state;
	conn_open(&k, BUF, BUF);
	pos = tnsm_log_count(W.nsm);
	for (i = 0; i < ARRAY_SIZE(msgs); i++)
		send_data(W.vm1, k.c, msgs[i], strlen(msgs[i]));
	for (i = 0; i < ARRAY_SIZE(msgs); i++)
		expect_data(W.vm2, k.a, msgs[i], strlen(msgs[i]));
	for (i = ARRAY_SIZE(msgs); i-- > 0;)
		send_data(W.vm2, k.a, msgs[i], strlen(msgs[i]));
	for (i = ARRAY_SIZE(msgs); i-- > 0;)
		expect_data(W.vm1, k.c, msgs[i], strlen(msgs[i]));
	h_nsm_none(pos, NK_OP_SEND, 0);

	/* The guests' real addresses on both ends. */
	h_hdr(&h, NK_OP_GETSOCKNAME, k.c);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, a, sizeof(a)), 0);
	h_assert_addr(a, AF_INET, VM1_IP, k.cport);
	h_hdr(&h, NK_OP_GETPEERNAME, k.c);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, a, sizeof(a)), 0);
	h_assert_addr(a, AF_INET, VM2_IP, k.port);
	h_hdr(&h, NK_OP_GETSOCKNAME, k.a);
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, a, sizeof(a)), 0);
	h_assert_addr(a, AF_INET, VM2_IP, k.port);
	h_hdr(&h, NK_OP_GETPEERNAME, k.a);
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, a, sizeof(a)), 0);
	h_assert_addr(a, AF_INET, VM1_IP, k.cport);
	h_nsm_none(pos, NK_OP_GETSOCKNAME, 0);

	/* "sockets": local, with the peer. */
	e = sock_entry_ok(H_VM1, k.c);
	assert_true(json_object_object_get_ex(e, "local", &v));
	assert_true(json_object_get_boolean(v));
	assert_string_equal(h_json_str(e, "peer"), H_VM2);
	assert_int_equal(h_json_u64(e, "peer_sock"), k.a);
	assert_int_equal(h_json_u64(e, "tx_bytes"), 3 + 3 + 5 + 4);
	json_object_put(e);
	e = sock_entry_ok(H_VM2, k.a);
	assert_string_equal(h_json_str(e, "peer"), H_VM1);
	json_object_put(e);
	e = sock_entry_ok(H_VM2, k.l);
	assert_true(json_object_object_get_ex(e, "local", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(e);
	nkctl_local_column(k.c, H_VM2 ":", k.a);

	close_all(&k);
	drain_quiet();
	h_pass();
}

/*
 * Credit: vm1 sends what vm2 grants plus what the engine holds beyond it
 * (PRE_CREDIT), no more; vm2 gets its credit's worth, the rest as it
 * consumes; vm1 hears of each new announcement.
 */
static void t_credit(void **state)
{
	static uint8_t buf[1000 + PRE_CREDIT + 600];
	struct h_counters before;
	struct conn k;
	struct nk_hdr h, ev, rep;
	uint32_t got = 0;

	(void)state;
	h_pattern(buf, sizeof(buf), 5, 0);
	conn_open(&k, BUF, 1000);
	send_data(W.vm1, k.c, buf, 1000);
	send_data(W.vm1, k.c, buf + 1000, PRE_CREDIT);
	expect_data(W.vm2, k.a, buf, 1000);
	h_recv_none(W.vm2, H_QUIET_MS);
	/* What the engine holds is vm1's SIOCOUTQ. */
	h_hdr(&h, NK_OP_IOCTL, k.c);
	h.arg[0] = NK_IOC_OUTQ;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), 0);
	assert_int_equal(rep.arg[0], PRE_CREDIT);
	/* Beyond vm2's credit and the engine's: refused, vm2 gets nothing. */
	h_counters(H_VM1, &before);
	h_hdr(&h, NK_OP_SEND, k.c);
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, buf + 1000 + PRE_CREDIT, 1);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_OP_SEND);
	assert_true(ev.flags & NK_F_REPLY);
	assert_int_equal((int32_t)ev.status, -ENOBUFS);
	h_assert_delta(H_VM1, &before, HC_CREDIT_VIOLATIONS, 1);
	h_recv_none(W.vm2, H_QUIET_MS);
	/* vm2 consumes: vm1 is told; vm2 gets the next 1000. */
	consumed(W.vm2, k.a, 1000, 1000);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_OP_CREDIT);
	assert_int_equal(ev.sock, k.c);
	assert_int_equal(ev.buf_alloc, 1000 + PRE_CREDIT);
	assert_int_equal(ev.fwd_cnt, 1000);
	expect_data(W.vm2, k.a, buf + 1000, 1000);
	/* The same announcement again tells vm1 nothing. */
	consumed(W.vm2, k.a, 1000, 1000);
	h_recv_none(W.vm1, H_QUIET_MS);
	/* vm2 grows its buffer: the rest comes, then vm1's 600 more. */
	consumed(W.vm2, k.a, 2 * PRE_CREDIT, 2000);
	expect_event(W.vm1, k.c, NK_OP_CREDIT, 0, 0);
	for (got = 2000; got < 1000 + PRE_CREDIT;) {
		static uint8_t rb[NK_MAX_PAYLOAD];
		int n = h_recv(W.vm2, &ev, rb, sizeof(rb), H_TIMEOUT_MS);

		assert_int_equal(ev.op, NK_EV_DATA);
		assert_memory_equal(rb, buf + got, n);
		got += n;
	}
	send_data(W.vm1, k.c, buf + 1000 + PRE_CREDIT, 600);
	expect_data(W.vm2, k.a, buf + 1000 + PRE_CREDIT, 600);
	consumed(W.vm2, k.a, 2 * PRE_CREDIT, 1600 + PRE_CREDIT);
	expect_event(W.vm1, k.c, NK_OP_CREDIT, 0, 0);

	/*
	 * An option goes to vm1's NSM socket; the NSM's reply reaches vm1
	 * without the NSM socket's credit (vm2's is vm1's credit).
	 */
	{
		uint32_t val = 1;
		struct tnsm_rec rec;
		size_t pos = tnsm_log_count(W.nsm);

		tnsm_set_reply(W.nsm, NK_OP_SETSOCKOPT, TNSM_SILENT, 0);
		h_hdr(&h, NK_OP_SETSOCKOPT, k.c);
		h.req_id = h_new_req_id();
		h.arg[0] = 6;	/* IPPROTO_TCP */
		h.arg[1] = 1;	/* TCP_NODELAY */
		h_send(W.vm1, &h, &val, sizeof(val));
		h_nsm_expect(&pos, NK_OP_SETSOCKOPT, H_ANY_SOCK, &rec);
		nk_hdr_init(&h, NK_OP_SETSOCKOPT, NK_F_REPLY | NK_F_CREDIT, rec.h.sock,
			    rec.h.req_id);
		h.buf_alloc = 1 << 20;
		h_nsm_send(&h, NULL, 0);
		h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(ev.op, NK_OP_SETSOCKOPT);
		assert_true(ev.flags & NK_F_REPLY);
		assert_int_equal((int32_t)ev.status, 0);
		assert_false(ev.flags & NK_F_CREDIT);
		tnsm_defaults(W.nsm);
	}
	close_all(&k);
	drain_quiet();
	h_pass();
}

/* getsockopt(TCP_INFO) on @id: its tcpi_state is @state. */
static void tcp_state(struct nk_ep *ep, uint32_t id, uint8_t state)
{
	uint8_t info[256];
	struct nk_hdr h, rep;
	size_t pos = tnsm_log_count(W.nsm);

	h_hdr(&h, NK_OP_GETSOCKOPT, id);
	h.arg[0] = 6;		/* IPPROTO_TCP */
	h.arg[1] = 11;		/* TCP_INFO */
	h.arg[2] = 232;
	assert_int_equal(h_call(ep, &h, NULL, 0, &rep, info, sizeof(info)), 0);
	assert_int_equal(rep.len, 232);
	assert_int_equal(info[0], state);
	h_nsm_none(pos, NK_OP_GETSOCKOPT, 0);
}

/* Shutdown each way: EOF after the data before it; the other way still works. */
static void t_shutdown(void **state)
{
	struct conn k;
	struct nk_hdr h;

	(void)state;
	conn_open(&k, BUF, BUF);
	send_data(W.vm1, k.c, "abc", 3);
	h_hdr(&h, NK_OP_SHUTDOWN, k.c);
	h.arg[0] = SHUT_WR;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), 0);
	expect_data(W.vm2, k.a, "abc", 3);
	expect_event(W.vm2, k.a, NK_EV_HUP, 0, NK_SHUT_RD);
	/* TCP_INFO's state, as TCP's after the same: engine's answers. */
	tcp_state(W.vm1, k.c, 5);	/* TCP_FIN_WAIT2 */
	tcp_state(W.vm2, k.a, 8);	/* TCP_CLOSE_WAIT */
	send_data(W.vm2, k.a, "xyz", 3);
	expect_data(W.vm1, k.c, "xyz", 3);
	h_hdr(&h, NK_OP_SHUTDOWN, k.a);
	h.arg[0] = SHUT_RDWR;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	expect_event(W.vm1, k.c, NK_EV_HUP, 0, NK_SHUT_RD);
	/* A bad how. */
	h_hdr(&h, NK_OP_SHUTDOWN, k.c);
	h.arg[0] = 7;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -EINVAL);
	/* Orderly close (all read): vm2, which had its EOF, hears no more. */
	consumed(W.vm1, k.c, BUF, 3);
	h_close(W.vm1, k.c);
	expect_event(W.vm2, k.a, NK_OP_CREDIT, 0, 0);
	h_recv_none(W.vm2, H_QUIET_MS);
	h_close(W.vm2, k.a);
	h_close(W.vm2, k.l);
	drain_quiet();
	h_pass();
}

/* Close with unread data resets the peer; a peer closed in order gets EOF. */
static void t_reset(void **state)
{
	struct conn k;
	struct nk_hdr h;

	(void)state;
	conn_open(&k, BUF, BUF);
	send_data(W.vm1, k.c, "unread", 6);
	expect_data(W.vm2, k.a, "unread", 6);
	/* vm2 closes without consuming it. */
	h_close(W.vm2, k.a);
	expect_event(W.vm1, k.c, NK_EV_RESET, -ECONNRESET, 0);
	/* The reset socket answers by itself until closed. */
	h_hdr(&h, NK_OP_GETPEERNAME, k.c);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -ECONNRESET);
	h_close(W.vm1, k.c);
	h_close(W.vm2, k.l);

	/* Orderly close: EOF; data sent to the closed socket then resets. */
	conn_open(&k, BUF, BUF);
	h_close(W.vm2, k.a);
	expect_event(W.vm1, k.c, NK_EV_HUP, 0, NK_SHUT_RD);
	send_data(W.vm1, k.c, "late", 4);
	expect_event(W.vm1, k.c, NK_EV_RESET, -ECONNRESET, 0);
	h_close(W.vm1, k.c);
	h_close(W.vm2, k.l);
	drain_quiet();
	h_pass();
}

/* Nothing listening on vm2's port: refused, as TCP's RST; the NSM sees nothing. */
static void t_refused(void **state)
{
	uint8_t addr[sizeof(struct nk_addr)];
	uint32_t c = h_new_sock_id(), l;
	size_t pos;
	struct nk_hdr ev;

	(void)state;
	assert_int_equal(h_socket(W.vm1, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	pos = tnsm_log_count(W.nsm);
	connect_start(c, VM2_IP, 6999, &ev, addr);
	assert_int_equal(ev.op, NK_EV_ERROR);
	assert_int_equal((int32_t)ev.status, -ECONNREFUSED);
	h_nsm_none(pos, NK_OP_CONNECT, H_QUIET_MS);
	/* A listener bound to another address of vm2 is not reached either. */
	l = listener("10.0.0.99", 6998, 4);
	connect_start(c, VM2_IP, 6998, &ev, addr);
	assert_int_equal(ev.op, NK_EV_ERROR);
	assert_int_equal((int32_t)ev.status, -ECONNREFUSED);
	/* A full backlog (listen(0): one waits) refuses the next one. */
	h_close(W.vm2, l);
	l = listener(VM2_IP, 6997, 0);
	connect_start(c, VM2_IP, 6997, &ev, addr);
	assert_int_equal(ev.op, NK_EV_CONNECTED);
	expect_event(W.vm2, l, NK_EV_ACCEPT, 0, 1);
	{
		uint32_t c2 = h_new_sock_id();

		assert_int_equal(h_socket(W.vm1, c2, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		connect_start(c2, VM2_IP, 6997, &ev, addr);
		assert_int_equal(ev.op, NK_EV_ERROR);
		assert_int_equal((int32_t)ev.status, -ECONNREFUSED);
		h_close(W.vm1, c2);
	}
	/* The listener closes with c in its queue: c is reset. */
	h_close(W.vm2, l);
	expect_event(W.vm1, c, NK_EV_RESET, -ECONNRESET, 0);
	h_close(W.vm1, c);
	h_nsm_none(pos, NK_OP_CONNECT, 0);
	drain_quiet();
	h_pass();
}

/* Policy: either guest's local_switch off (or another tenant) goes through the NSM. */
static void t_policy(void **state)
{
	static const char *const sets[][2] = {
		{ H_VM2, "\"local_switch\":\"off\"" },
		{ H_VM1, "\"local_switch\":\"off\"" },
		{ H_VM1, "\"tenant\":\"blue\"" },
	};
	uint32_t c, l;
	struct tnsm_rec rec;
	json_object *r;
	size_t pos, i;
	struct nk_hdr h;
	struct nk_addr a;

	(void)state;
	l = listener("0.0.0.0", 6990, 4);
	for (i = 0; i < ARRAY_SIZE(sets); i++) {
		r = h_ctl_ok("{\"cmd\":\"set\",\"name\":\"%s\",%s}", sets[i][0], sets[i][1]);
		json_object_put(r);
		c = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		pos = tnsm_log_count(W.nsm);
		assert_int_equal(nk_addr_parse(&a, VM2_IP, 6990), 0);
		h_hdr(&h, NK_OP_CONNECT, c);
		/* The test NSM answers 0: connected through it. */
		assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), NULL, NULL, 0), 0);
		h_nsm_expect(&pos, NK_OP_CONNECT, H_ANY_SOCK, &rec);
		h_close(W.vm1, c);
		r = h_ctl_ok("{\"cmd\":\"set\",\"name\":\"%s\",\"local_switch\":\"auto\","
			     "\"tenant\":\"\"}", sets[i][0]);
		json_object_put(r);
	}
	/* Both "on": switched even with different tenants. */
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"on\","
				 "\"tenant\":\"red\"}"));
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm2\",\"local_switch\":\"on\"}"));
	r = h_list_ep(H_VM1);
	assert_string_equal(h_json_str(r, "local_switch"), "on");
	assert_string_equal(h_json_str(r, "tenant"), "red");
	json_object_put(r);
	c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(nk_addr_parse(&a, VM2_IP, 6990), 0);
	h_hdr(&h, NK_OP_CONNECT, c);
	assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), NULL, NULL, 0), -EINPROGRESS);
	expect_event(W.vm1, c, NK_EV_CONNECTED, 0, 0);
	expect_event(W.vm2, l, NK_EV_ACCEPT, 0, 1);
	h_nsm_none(pos, NK_OP_CONNECT, H_QUIET_MS);
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"auto\","
				 "\"tenant\":\"\"}"));
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm2\",\"local_switch\":\"auto\"}"));
	/* A bad value is refused. */
	r = h_ctl("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"maybe\"}");
	assert_non_null(r);
	assert_false(json_object_get_boolean(json_object_object_get(r, "ok")));
	json_object_put(r);
	h_close(W.vm2, l);
	expect_event(W.vm1, c, NK_EV_RESET, -ECONNRESET, 0);
	h_close(W.vm1, c);
	drain_quiet();
	h_pass();
}

/* vm1's datagram to @ip:5000 on @id: the NSM's SEND, as it received it. */
static void dgram_to(uint32_t id, const char *ip, uint16_t flags, struct tnsm_rec *rec)
{
	uint8_t buf[sizeof(struct nk_addr) + 4];
	size_t pos = tnsm_log_count(W.nsm);
	struct nk_hdr h;

	assert_int_equal(nk_addr_parse((struct nk_addr *)buf, ip, 5000), 0);
	memcpy(buf + sizeof(struct nk_addr), "ping", 4);
	h_hdr(&h, NK_OP_SEND, id);
	h.flags = NK_F_ADDR | flags;
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, buf, sizeof(buf));
	h_nsm_expect(&pos, NK_OP_SEND, H_ANY_SOCK, rec);
	assert_int_equal(rec->len, sizeof(buf));
}

/* Whether vm1's datagram to @ip is marked as for guest @peer (0: unmarked). */
static void assert_dgram_peer(uint32_t id, const char *ip, uint32_t peer)
{
	struct tnsm_rec rec;

	dgram_to(id, ip, 0, &rec);
	if (peer) {
		assert_true(rec.h.flags & NK_F_PEER);
		assert_int_equal(rec.h.arg[3], peer);
	} else {
		assert_false(rec.h.flags & NK_F_PEER);
	}
}

/*
 * Guests through their NSM (issue 13): what is not switched and names
 * another guest's address goes to the NSM marked NK_F_PEER (a3 the
 * guest's id), so that the NSM passes it through its own stack: datagrams
 * (SEND with an address, CONNECT) and a stream CONNECT with
 * local_switch off, between guests of one tenant or both "on".  Not
 * marked: another tenant's guest, a guest of no NSM, an address that is
 * no guest's, the sender's own.  A guest that sets NK_F_PEER itself is
 * refused, and the NSM never sees it.
 */
static void t_peer(void **state)
{
	struct tnsm_rec rec;
	struct nk_addr a;
	struct nk_hdr h;
	size_t pos;
	uint32_t d, c;

	(void)state;
	d = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, d, AF_INET, SOCK_DGRAM, BUF, NULL), 0);
	assert_dgram_peer(d, VM2_IP, H_ID_VM2);
	assert_dgram_peer(d, "10.0.0.13", 0);	/* vm3: attached to no NSM */
	assert_dgram_peer(d, VM1_IP, 0);	/* its own */
	assert_dgram_peer(d, TNSM_PEER_IP, 0);	/* no guest's */

	/* A datagram socket's CONNECT to vm2 (a dual-stack one, mapped). */
	c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, c, AF_INET6, SOCK_DGRAM, BUF, NULL), 0);
	pos = tnsm_log_count(W.nsm);
	sockaddr_req(W.vm1, NK_OP_CONNECT, c, "::ffff:10.0.0.12", 5000, 0);
	h_nsm_expect(&pos, NK_OP_CONNECT, H_ANY_SOCK, &rec);
	assert_true(rec.h.flags & NK_F_PEER);
	assert_int_equal(rec.h.arg[3], H_ID_VM2);
	h_close(W.vm1, c);

	/* The guest's own NK_F_PEER: refused, on SEND and CONNECT. */
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(nk_addr_parse(&a, VM2_IP, 5000), 0);
	h_hdr(&h, NK_OP_CONNECT, d);
	h.flags = NK_F_PEER;
	h.arg[3] = H_ID_VM2;
	assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), NULL, NULL, 0), -EINVAL);
	{
		uint8_t buf[sizeof(struct nk_addr) + 4] = { 0 };
		struct nk_hdr ev;

		memcpy(buf, &a, sizeof(a));
		h_hdr(&h, NK_OP_SEND, d);
		h.flags = NK_F_ADDR | NK_F_PEER;
		h.arg[3] = H_ID_VM2;
		h.req_id = h_new_req_id();
		h_send(W.vm1, &h, buf, sizeof(buf));
		h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
		assert_true(ev.flags & NK_F_REPLY);
		assert_int_equal((int32_t)ev.status, -EINVAL);
	}
	h_nsm_none(pos, 0, H_QUIET_MS);

	/* Another tenant: not marked, unless both guests' local_switch is "on". */
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"tenant\":\"blue\"}"));
	assert_dgram_peer(d, VM2_IP, 0);
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"on\"}"));
	assert_dgram_peer(d, VM2_IP, 0);
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm2\",\"local_switch\":\"on\"}"));
	assert_dgram_peer(d, VM2_IP, H_ID_VM2);
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm2\",\"local_switch\":\"auto\"}"));

	/* One tenant, local_switch off: a stream CONNECT goes to the NSM, marked. */
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"off\","
				 "\"tenant\":\"\"}"));
	assert_dgram_peer(d, VM2_IP, H_ID_VM2);
	c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	pos = tnsm_log_count(W.nsm);
	sockaddr_req(W.vm1, NK_OP_CONNECT, c, VM2_IP, 6960, 0);
	h_nsm_expect(&pos, NK_OP_CONNECT, H_ANY_SOCK, &rec);
	assert_true(rec.h.flags & NK_F_PEER);
	assert_int_equal(rec.h.arg[3], H_ID_VM2);
	h_close(W.vm1, c);
	json_object_put(h_ctl_ok("{\"cmd\":\"set\",\"name\":\"vm1\",\"local_switch\":\"auto\"}"));
	h_close(W.vm1, d);
	drain_quiet();
	h_pass();
}

/* vm2 goes away: vm1's switched socket is reset; vm1 goes on. */
static void t_guest_gone(void **state)
{
	struct conn k;

	(void)state;
	conn_open(&k, BUF, BUF);
	send_data(W.vm1, k.c, "bye", 3);
	expect_data(W.vm2, k.a, "bye", 3);
	nk_ep_close(W.vm2);
	W.vm2 = NULL;
	expect_event(W.vm1, k.c, NK_EV_RESET, -ECONNRESET, 0);
	h_close(W.vm1, k.c);
	W.vm2 = h_guest_open(H_VM2, W.vm2_opts);
	assert_non_null(W.vm2);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

/*
 * Bad input: vm1 cannot reach vm2's switched socket by its id; requests a
 * switched socket does not take are refused on vm1's own socket; a guest
 * connecting to its own listener in a loop fills only its backlog.
 */
static void t_bad_input(void **state)
{
	uint8_t addr[sizeof(struct nk_addr)];
	uint32_t ids[8], l, i;
	struct conn k;
	struct nk_hdr h, ev;

	(void)state;
	conn_open(&k, BUF, BUF);
	/* vm2's accepted id, from vm1: not vm1's. */
	h_hdr(&h, NK_OP_GETPEERNAME, k.a);
	if (k.a != k.c)
		assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -EBADF);
	h_hdr(&h, NK_OP_LISTEN, k.c);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -EINVAL);
	h_hdr(&h, NK_OP_CONNECT, k.c);
	assert_int_equal(nk_addr_parse((struct nk_addr *)addr, VM2_IP, k.port), 0);
	assert_int_equal(h_call(W.vm1, &h, addr, sizeof(addr), NULL, NULL, 0), -EISCONN);
	h_hdr(&h, NK_OP_SEND, k.c);
	h.flags = NK_F_ADDR;
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, addr, sizeof(addr));
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal((int32_t)ev.status, -EINVAL);
	/* A credit beyond what vm2 was sent is refused, vm1 hears nothing. */
	consumed(W.vm2, k.a, BUF, 12345);
	h_recv_none(W.vm1, H_QUIET_MS);
	/* The connection still works. */
	send_data(W.vm1, k.c, "ok", 2);
	expect_data(W.vm2, k.a, "ok", 2);
	close_all(&k);
	drain_quiet();

	/* vm1 connects to itself (its own address) in a loop. */
	{
		struct nk_hdr lh;

		l = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, l, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		sockaddr_req(W.vm1, NK_OP_BIND, l, "0.0.0.0", 6980, 0);
		h_hdr(&lh, NK_OP_LISTEN, l);
		lh.arg[0] = 3;
		assert_int_equal(h_call(W.vm1, &lh, NULL, 0, NULL, NULL, 0), 0);
	}
	for (i = 0; i < ARRAY_SIZE(ids); i++) {
		struct nk_addr a;
		struct nk_hdr rep;
		int got = 0;

		ids[i] = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, ids[i], AF_INET, SOCK_STREAM, BUF, NULL), 0);
		assert_int_equal(nk_addr_parse(&a, VM1_IP, 6980), 0);
		h_hdr(&h, NK_OP_CONNECT, ids[i]);
		assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), &rep, NULL, 0), -EINPROGRESS);
		/* Its own events: CONNECTED/ERROR for ids[i], EV_ACCEPT for l. */
		while (got < (i < 4 ? 2 : 1)) {
			h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
			if (ev.sock == l) {
				assert_int_equal(ev.op, NK_EV_ACCEPT);
				assert_int_equal(ev.arg[0], i + 1);
			} else {
				assert_int_equal(ev.sock, ids[i]);
				assert_int_equal(ev.op, i < 4 ? NK_EV_CONNECTED : NK_EV_ERROR);
			}
			got++;
		}
	}
	h_recv_none(W.vm2, 0);
	/* Closing the listener resets the 4 it held. */
	assert_int_equal(close_sock(W.vm1, l), 4);
	for (i = 0; i < ARRAY_SIZE(ids); i++)
		h_close(W.vm1, ids[i]);
	assert_int_equal(h_nr_sockets(H_VM1), 0);
	drain_quiet();
	h_pass();
}

/*
 * A listener whose port the NSM chose (bind to port 0; listen without
 * bind): the engine learns it from the NSM's GETSOCKNAME answer, which the
 * test NSM gives as 10.0.0.11:TNSM_NAME_PORT, so vm1 listens and vm2
 * connects.
 */
static void t_port_chosen(void **state)
{
	uint8_t addr[sizeof(struct nk_addr)];
	uint32_t l, c;
	struct nk_hdr h;
	int bind;

	(void)state;
	for (bind = 1; bind >= 0; bind--) {
		l = h_new_sock_id();
		assert_int_equal(h_socket(W.vm1, l, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		if (bind)
			sockaddr_req(W.vm1, NK_OP_BIND, l, "0.0.0.0", 0, 0);
		h_hdr(&h, NK_OP_LISTEN, l);
		h.arg[0] = 4;
		assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), 0);
		h_hdr(&h, NK_OP_GETSOCKNAME, l);
		assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, addr, sizeof(addr)), 0);
		h_assert_addr(addr, AF_INET, VM1_IP, TNSM_NAME_PORT);
		c = h_new_sock_id();
		assert_int_equal(h_socket(W.vm2, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		h_hdr(&h, NK_OP_CONNECT, c);
		assert_int_equal(nk_addr_parse((struct nk_addr *)addr, VM1_IP, TNSM_NAME_PORT), 0);
		assert_int_equal(h_call(W.vm2, &h, addr, sizeof(addr), NULL, NULL, 0), -EINPROGRESS);
		expect_event(W.vm2, c, NK_EV_CONNECTED, 0, 0);
		expect_event(W.vm1, l, NK_EV_ACCEPT, 0, 1);
		h_close(W.vm1, l);
		expect_event(W.vm2, c, NK_EV_RESET, -ECONNRESET, 0);
		h_close(W.vm2, c);
	}
	h_pass();
}

/* MSG_OOB: its last byte announced with EV_URG (the stream's mark), then the data. */
static void t_urgent(void **state)
{
	struct conn k;
	struct nk_hdr h, ev;

	(void)state;
	conn_open(&k, BUF, BUF);
	send_data(W.vm1, k.c, "0123", 4);
	h_hdr(&h, NK_OP_SEND, k.c);
	h.arg[0] = NK_MSG_OOB;
	h_send(W.vm1, &h, "abc!", 4);
	expect_data(W.vm2, k.a, "0123", 4);
	h_recv(W.vm2, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_URG);
	assert_int_equal(ev.sock, k.a);
	assert_int_equal(ev.arg[0], '!');
	assert_int_equal(ev.arg[1], 7);
	expect_data(W.vm2, k.a, "abc!", 4);
	close_all(&k);
	drain_quiet();
	h_pass();
}

/*
 * Data before the ACCEPT, as a native client sends into the server's
 * receive window: held by the engine (at most the window), delivered
 * after the ACCEPT within the accepted socket's credit, then the EOF,
 * though the client closed before the ACCEPT (TCP keeps it queued).
 */
static void t_before_accept(void **state)
{
	static uint8_t buf[PRE_CREDIT + 1];
	uint8_t addr[sizeof(struct nk_addr)];
	struct conn k = { .c_buf = BUF, .a_buf = 40000 };
	struct nk_hdr h, ev;
	uint32_t got = 0, i;

	(void)state;
	h_pattern(buf, sizeof(buf), 9, 0);
	k.port = next_port++;
	k.l = listener("0.0.0.0", k.port, 4);
	k.c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, k.c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	connect_start(k.c, VM2_IP, k.port, &ev, addr);
	assert_int_equal(ev.op, NK_EV_CONNECTED);
	k.cport = ntohs(((struct nk_addr *)addr)->port);
	expect_event(W.vm2, k.l, NK_EV_ACCEPT, 0, 1);
	/* The whole window, in two SENDs; one byte more is refused. */
	send_data(W.vm1, k.c, buf, 1000);
	send_data(W.vm1, k.c, buf + 1000, PRE_CREDIT - 1000);
	h_hdr(&h, NK_OP_SEND, k.c);
	h.req_id = h_new_req_id();
	h_send(W.vm1, &h, buf + PRE_CREDIT, 1);
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_OP_SEND);
	assert_int_equal((int32_t)ev.status, -ENOBUFS);
	/* vm1 closes it before the ACCEPT: it stays queued with its data and EOF. */
	h_close(W.vm1, k.c);
	h_recv_none(W.vm2, H_QUIET_MS);
	/* vm2 accepts with room for 40000: that much comes, in order. */
	k.a = h_new_sock_id();
	h_hdr(&h, NK_OP_ACCEPT, k.l);
	h.arg[0] = k.a;
	h.flags = NK_F_CREDIT;
	h.buf_alloc = k.a_buf;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, addr, sizeof(addr)), 0);
	h_assert_addr(addr, AF_INET, VM1_IP, k.cport);
	while (got < 40000) {
		static uint8_t rb[NK_MAX_PAYLOAD];
		int n = h_recv(W.vm2, &ev, rb, sizeof(rb), H_TIMEOUT_MS);

		assert_int_equal(ev.op, NK_EV_DATA);
		assert_memory_equal(rb, buf + got, n);
		got += n;
	}
	assert_int_equal(got, 40000);
	h_recv_none(W.vm2, H_QUIET_MS);
	/* It consumes: the rest, then the EOF. */
	consumed(W.vm2, k.a, 40000, 40000);
	for (i = 0; got < PRE_CREDIT; i++) {
		static uint8_t rb[NK_MAX_PAYLOAD];
		int n = h_recv(W.vm2, &ev, rb, sizeof(rb), H_TIMEOUT_MS);

		assert_int_equal(ev.op, NK_EV_DATA);
		assert_memory_equal(rb, buf + got, n);
		got += n;
	}
	expect_event(W.vm2, k.a, NK_EV_HUP, 0, NK_SHUT_RD);
	consumed(W.vm2, k.a, 40000, PRE_CREDIT);
	/* Its peer is gone: sending resets it, as TCP's RST would. */
	send_data(W.vm2, k.a, "late", 4);
	expect_event(W.vm2, k.a, NK_EV_RESET, -ECONNRESET, 0);
	close_sock(W.vm2, k.a);
	close_sock(W.vm2, k.l);
	drain_quiet();
	h_pass();
}

static int32_t getopt_int(struct nk_ep *ep, uint32_t id, int level, int name)
{
	struct nk_hdr h;
	int32_t v = -1;

	h_hdr(&h, NK_OP_GETSOCKOPT, id);
	h.arg[0] = level;
	h.arg[1] = name;
	h.arg[2] = sizeof(v);
	assert_int_equal(h_call(ep, &h, NULL, 0, NULL, &v, sizeof(v)), 0);
	return v;
}

static void setopt(struct nk_ep *ep, uint32_t id, int level, int name, const void *v, size_t len)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_SETSOCKOPT, id);
	h.arg[0] = level;
	h.arg[1] = name;
	assert_int_equal(h_call(ep, &h, v, len, NULL, NULL, 0), 0);
}

/*
 * Options: the accepted side (no NSM socket) keeps what it sets and has
 * Linux's defaults; SO_LINGER 0 makes CLOSE reset the peer; OUTQ is what
 * the engine still holds; an IPV6_V6ONLY listener set by setsockopt
 * refuses IPv4; connect(AF_UNSPEC) dissolves a connection, both sides reset.
 */
static void t_options(void **state)
{
	static const int32_t one = 1, linger0[2] = { 1, 0 };
	uint8_t addr[sizeof(struct nk_addr)];
	struct conn k;
	struct nk_hdr h, rep, ev;
	uint32_t l, c;
	int32_t v;

	(void)state;
	conn_open(&k, BUF, BUF);
	setopt(W.vm2, k.a, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	assert_int_equal(getopt_int(W.vm2, k.a, IPPROTO_TCP, 1), 1);
	assert_int_equal(getopt_int(W.vm2, k.a, IPPROTO_TCP, 4 /* TCP_KEEPIDLE */), 7200);
	{
		static const int32_t zero;

		h_hdr(&h, NK_OP_SETSOCKOPT, k.a);
		h.arg[0] = IPPROTO_TCP;
		h.arg[1] = 4;	/* TCP_KEEPIDLE 0: Linux's EINVAL */
		assert_int_equal(h_call(W.vm2, &h, &zero, sizeof(zero), NULL, NULL, 0), -EINVAL);
	}
	send_data(W.vm1, k.c, "held", 4);
	expect_data(W.vm2, k.a, "held", 4);
	h_hdr(&h, NK_OP_IOCTL, k.c);
	h.arg[0] = NK_IOC_OUTQ;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), 0);
	assert_int_equal(rep.arg[0], 0);
	consumed(W.vm2, k.a, BUF, 4);
	expect_event(W.vm1, k.c, NK_OP_CREDIT, 0, 0);
	/* SO_LINGER {1, 0} (to vm1's NSM socket too): its CLOSE resets vm2. */
	setopt(W.vm1, k.c, 1 /* SOL_SOCKET */, 13 /* SO_LINGER */, linger0, sizeof(linger0));
	h_close(W.vm1, k.c);
	expect_event(W.vm2, k.a, NK_EV_RESET, -ECONNRESET, 0);
	h_close(W.vm2, k.a);
	h_close(W.vm2, k.l);

	/* connect(AF_UNSPEC) on a switched connection. */
	conn_open(&k, BUF, BUF);
	memset(addr, 0, sizeof(addr));
	h_hdr(&h, NK_OP_CONNECT, k.c);
	assert_int_equal(h_call(W.vm1, &h, addr, sizeof(addr), NULL, NULL, 0), 0);
	expect_event(W.vm1, k.c, NK_EV_RESET, -ECONNRESET, 0);
	expect_event(W.vm2, k.a, NK_EV_RESET, -ECONNRESET, 0);
	close_all(&k);

	/* An AF_INET6 listener made V6ONLY by setsockopt: IPv4 is refused. */
	l = h_new_sock_id();
	assert_int_equal(h_socket(W.vm2, l, AF_INET6, SOCK_STREAM, BUF, NULL), 0);
	v = 1;
	setopt(W.vm2, l, IPPROTO_IPV6, 26 /* IPV6_V6ONLY */, &v, sizeof(v));
	sockaddr_req(W.vm2, NK_OP_BIND, l, "::", 6970, 0);
	h_hdr(&h, NK_OP_LISTEN, l);
	h.arg[0] = 4;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	connect_start(c, VM2_IP, 6970, &ev, addr);
	assert_int_equal(ev.op, NK_EV_ERROR);
	assert_int_equal((int32_t)ev.status, -ECONNREFUSED);
	h_close(W.vm1, c);
	h_close(W.vm2, l);
	drain_quiet();
	h_pass();
}

/* A new stream socket of @ep, SO_REUSEADDR @reuse, AF_INET6 ones V6ONLY: its BIND's answer. */
static int bind_new(struct nk_ep *ep, int family, int reuse, const char *ip, uint16_t port)
{
	static const int32_t one = 1;
	uint32_t id = h_new_sock_id();
	struct nk_addr a;
	struct nk_hdr h;
	int ret;

	assert_int_equal(h_socket(ep, id, family, SOCK_STREAM, BUF, NULL), 0);
	if (reuse)
		setopt(ep, id, 1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, &one, sizeof(one));
	if (family == AF_INET6)
		setopt(ep, id, IPPROTO_IPV6, 26 /* IPV6_V6ONLY */, &one, sizeof(one));
	assert_int_equal(nk_addr_parse(&a, ip, port), 0);
	h_hdr(&h, NK_OP_BIND, id);
	ret = h_call(ep, &h, &a, sizeof(a), NULL, NULL, 0);
	h_close(ep, id);
	return ret;
}

/*
 * TIME_WAIT: the side that closes a switched connection first keeps its
 * local address in TIME_WAIT, as Linux does: a BIND to it fails with
 * EADDRINUSE unless both that socket (here the listener it inherits
 * from) and the binding one have SO_REUSEADDR; another port, an IPv6-only
 * wildcard and the side that closed second are free.  Refused BINDs never
 * reach the NSM.
 */
static void t_time_wait(void **state)
{
	static const int32_t one = 1;
	struct conn k;
	struct nk_hdr h;
	size_t pos;
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		/* i 0: the listener has SO_REUSEADDR; 1: it has not. */
		memset(&k, 0, sizeof(k));
		k.port = next_port++;
		k.c_buf = k.a_buf = BUF;
		k.l = h_new_sock_id();
		assert_int_equal(h_socket(W.vm2, k.l, AF_INET, SOCK_STREAM, BUF, NULL), 0);
		if (!i)
			setopt(W.vm2, k.l, 1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, &one,
			       sizeof(one));
		sockaddr_req(W.vm2, NK_OP_BIND, k.l, "0.0.0.0", k.port, 0);
		h_hdr(&h, NK_OP_LISTEN, k.l);
		h.arg[0] = 4;
		assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
		conn_connect(&k);
		send_data(W.vm1, k.c, "tw", 2);
		expect_data(W.vm2, k.a, "tw", 2);
		consumed(W.vm2, k.a, BUF, 2);
		expect_event(W.vm1, k.c, NK_OP_CREDIT, 0, 0);
		/* vm2 closes first, in order (nothing unread): vm1 reads EOF, then closes. */
		h_close(W.vm2, k.l);
		assert_int_equal(close_sock(W.vm2, k.a), 0);
		expect_event(W.vm1, k.c, NK_EV_HUP, 0, NK_SHUT_RD);
		assert_int_equal(close_sock(W.vm1, k.c), 0);

		pos = tnsm_log_count(W.nsm);
		assert_int_equal(bind_new(W.vm2, AF_INET, 0, "0.0.0.0", k.port), -EADDRINUSE);
		assert_int_equal(bind_new(W.vm2, AF_INET, 0, VM2_IP, k.port), -EADDRINUSE);
		h_nsm_none(pos, NK_OP_BIND, 0);
		assert_int_equal(bind_new(W.vm2, AF_INET, 1, "0.0.0.0", k.port),
				 i ? -EADDRINUSE : 0);
		assert_int_equal(bind_new(W.vm2, AF_INET6, 0, "::", k.port), 0);
		assert_int_equal(bind_new(W.vm2, AF_INET, 0, "0.0.0.0", next_port++), 0);
		/* vm1 closed second: its port is free. */
		assert_int_equal(bind_new(W.vm1, AF_INET, 0, "0.0.0.0", k.cport), 0);
	}
	drain_quiet();
	h_pass();
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* vm2 has no message for H_QUIET_MS. */
static void vm2_quiet(const char *what)
{
	struct nk_hdr ev;

	if (nk_ep_recv(W.vm2, &ev, NULL, 0, H_QUIET_MS) >= 0)
		fail_msg("%s: op %#x for socket %u", what, ev.op, ev.sock);
}

/*
 * A listener of vm2 with TCP_DEFER_ACCEPT @secs, set before its LISTEN or
 * after it, and a connection of vm1's queued on it (k->c, not accepted).
 */
static void defer_open(struct conn *k, int32_t secs, bool after)
{
	uint8_t addr[sizeof(struct nk_addr)];
	struct nk_addr la;
	struct nk_hdr h, ev;

	memset(k, 0, sizeof(*k));
	k->port = next_port++;
	k->c_buf = k->a_buf = BUF;
	k->l = h_new_sock_id();
	assert_int_equal(h_socket(W.vm2, k->l, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	if (!after)
		setopt(W.vm2, k->l, IPPROTO_TCP, 9 /* TCP_DEFER_ACCEPT */, &secs, sizeof(secs));
	sockaddr_req(W.vm2, NK_OP_BIND, k->l, "0.0.0.0", k->port, 0);
	h_hdr(&h, NK_OP_LISTEN, k->l);
	h.arg[0] = 4;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	if (after)
		setopt(W.vm2, k->l, IPPROTO_TCP, 9 /* TCP_DEFER_ACCEPT */, &secs, sizeof(secs));
	k->c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, k->c, AF_INET, SOCK_STREAM, BUF, NULL), 0);
	connect_start(k->c, VM2_IP, k->port, &ev, addr);
	assert_int_equal(ev.op, NK_EV_CONNECTED);
	memcpy(&la, addr, sizeof(la));
	k->cport = ntohs(la.port);
}

/* vm2's listener k->l hears of one connection now acceptable. */
static void defer_ready(struct conn *k)
{
	expect_event(W.vm2, k->l, NK_EV_ACCEPT, 0, 1);
	accept_one(k);
}

/*
 * TCP_DEFER_ACCEPT on a listener (set before or after its LISTEN): a
 * connection that sent nothing is not acceptable (no EV_ACCEPT) until its
 * first byte, its EOF, or the option's time as Linux reads it back (10 s:
 * 15 s, 1 s: 1 s); 0 is no deferral.
 */
static void t_defer_accept(void **state)
{
	struct conn k;
	struct nk_hdr h;
	long long t0;
	int after;

	(void)state;
	for (after = 0; after < 2; after++) {
		defer_open(&k, 10, after);
		vm2_quiet("a connection that sent nothing");
		send_data(W.vm1, k.c, "d", 1);
		defer_ready(&k);
		expect_data(W.vm2, k.a, "d", 1);
		close_all(&k);
		drain_quiet();
	}
	/* Its EOF makes it acceptable too. */
	defer_open(&k, 10, false);
	vm2_quiet("a connection that sent nothing");
	h_close(W.vm1, k.c);
	expect_event(W.vm2, k.l, NK_EV_ACCEPT, 0, 1);
	k.a = h_new_sock_id();
	h_hdr(&h, NK_OP_ACCEPT, k.l);
	h.arg[0] = k.a;
	h.flags = NK_F_CREDIT;
	h.buf_alloc = BUF;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	expect_event(W.vm2, k.a, NK_EV_HUP, 0, NK_SHUT_RD);
	close_sock(W.vm2, k.a);
	close_sock(W.vm2, k.l);
	drain_quiet();
	/* The time: 1 s (Linux's one SYN-ACK retransmission), 0 none. */
	defer_open(&k, 1, false);
	t0 = ms_now();
	vm2_quiet("before the deferral's time");
	defer_ready(&k);
	assert_true(ms_now() - t0 >= 900);
	close_all(&k);
	drain_quiet();
	defer_open(&k, 0, true);
	defer_ready(&k);
	close_all(&k);
	drain_quiet();
	h_pass();
}

/*
 * A guest applies a reply's credit when its calling thread runs again,
 * which may be after the events that followed it (af_netkernel's
 * nk_sock_call_done()): vm1's window, with the CONNECT reply's credit
 * applied last, is still vm2's window once vm2 accepted, never the
 * pre-ACCEPT one (with which a sender filling itself stops at 64 KiB,
 * all of it then delivered: SIOCOUTQ 0, nk_sockets tcp_fionread_siocoutq).
 */
static void t_connect_credit(void **state)
{
	struct nk_hdr h, rep, ev;
	struct nk_addr a;
	struct conn k;
	uint32_t win;

	(void)state;
	memset(&k, 0, sizeof(k));
	k.port = next_port++;
	k.c_buf = BUF;
	k.a_buf = 4 * BUF;
	k.l = listener("0.0.0.0", k.port, 4);
	k.c = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, k.c, AF_INET, SOCK_STREAM, k.c_buf, NULL), 0);
	assert_int_equal(nk_addr_parse(&a, VM2_IP, k.port), 0);
	h_hdr(&h, NK_OP_CONNECT, k.c);
	assert_int_equal(h_call(W.vm1, &h, &a, sizeof(a), &rep, NULL, 0), -EINPROGRESS);
	h_recv(W.vm1, &ev, &a, sizeof(a), H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_CONNECTED);
	k.cport = ntohs(a.port);
	expect_event(W.vm2, k.l, NK_EV_ACCEPT, 0, 1);
	accept_one(&k);		/* vm1's CREDIT: vm2's window and 64 KiB */
	win = k.a_buf + PRE_CREDIT;
	if (rep.flags & NK_F_CREDIT)
		win = rep.buf_alloc;	/* the thread ran late */
	assert_int_equal(win, k.a_buf + PRE_CREDIT);
	close_all(&k);
	drain_quiet();
	h_pass();
}

/*
 * The NSM goes away: a switched connection carries nothing through it and
 * goes on.  Data both ways, the client's option that its NSM socket took
 * before still reads back (the engine kept it), a new one is the
 * engine's, EOF and close as usual.  The sockets that were the NSM's
 * (vm1's unconnected one, vm2's listener) are reset.  Before: the client
 * was reset with them, and its peer.
 */
static void t_nsm_gone(void **state)
{
	static const int32_t one = 1, idle = 60;
	struct conn k;
	uint32_t other;

	(void)state;
	conn_open(&k, BUF, BUF);
	setopt(W.vm1, k.c, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	other = h_new_sock_id();
	assert_int_equal(h_socket(W.vm1, other, AF_INET, SOCK_STREAM, BUF, NULL), 0);

	tnsm_stop(W.nsm);
	W.nsm = NULL;
	expect_event(W.vm1, other, NK_EV_RESET, -ECONNRESET, 0);
	expect_event(W.vm2, k.l, NK_EV_RESET, -ECONNRESET, 0);
	h_wait_state(H_NSM, "waiting");

	send_data(W.vm1, k.c, "after", 5);
	expect_data(W.vm2, k.a, "after", 5);
	send_data(W.vm2, k.a, "back", 4);
	expect_data(W.vm1, k.c, "back", 4);
	assert_int_equal(getopt_int(W.vm1, k.c, IPPROTO_TCP, 1), 1);
	setopt(W.vm1, k.c, IPPROTO_TCP, 4 /* TCP_KEEPIDLE */, &idle, sizeof(idle));
	assert_int_equal(getopt_int(W.vm1, k.c, IPPROTO_TCP, 4), idle);
	h_recv_none(W.vm1, H_QUIET_MS);

	/* Orderly close, all read: vm2 gets its EOF, no reset. */
	consumed(W.vm1, k.c, BUF, 4);
	expect_event(W.vm2, k.a, NK_OP_CREDIT, 0, 0);
	consumed(W.vm2, k.a, BUF, 5);
	expect_event(W.vm1, k.c, NK_OP_CREDIT, 0, 0);
	assert_int_equal(close_sock(W.vm1, k.c), 0);
	expect_event(W.vm2, k.a, NK_EV_HUP, 0, NK_SHUT_RD);
	h_close(W.vm2, k.a);
	h_close(W.vm1, other);
	h_close(W.vm2, k.l);
	drain_quiet();

	W.nsm = h_nsm_open(H_NSM);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	H_TEST(t_data),
	H_TEST(t_credit),
	H_TEST(t_shutdown),
	H_TEST(t_reset),
	H_TEST(t_refused),
	H_TEST(t_policy),
	H_TEST(t_peer),
	H_TEST(t_guest_gone),
	H_TEST(t_bad_input),
	H_TEST(t_port_chosen),
	H_TEST(t_urgent),
	H_TEST(t_before_accept),
	H_TEST(t_options),
	H_TEST(t_time_wait),
	H_TEST(t_defer_accept),
	H_TEST(t_connect_credit),
	H_TEST(t_nsm_gone),
};

H_MAIN("local", tests)
