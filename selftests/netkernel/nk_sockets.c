// SPDX-License-Identifier: GPL-2.0
/*
 * nk_sockets - socket semantics test suite for NetKernel
 *
 * Two processes, a server and a client, usually on two hosts; one of them
 * (or both, in turn) on a NetKernel guest.  The client connects a TCP
 * control channel to the server, and both walk the same table of test
 * cases: for each one the client names the case, both sides run their
 * function of it in a child process of their own (bounded by an alarm and
 * killed when it overruns), and both parents exchange the result.  Every
 * case asserts the behaviour of the native Linux stack, on NetKernel as
 * natively, the two sides on two hosts or on one (the server reached at
 * 127.0.0.1, ::1 or the host's own address: see README).
 *
 * usage: nk_sockets server [--bind ADDR] [--port N]
 *        nk_sockets client --server ADDR [--server6 ADDR6] [--port N] [--run NAME]...
 *                          [--skip NAME]... [--timeout SECS] [--list]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/errqueue.h>
#include <linux/in6.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define DEFAULT_PORT		7000
#define CASE_TIMEOUT		30	/* seconds, unless the case says */
#define RUN_TIMEOUT		180	/* seconds for the whole client run */
#define BULK_LEN		(16U << 20)
#define NCONN			64

struct test_case {
	const char *name;
	void (*client)(void);
	void (*server)(void);
	int timeout;		/* seconds; 0: CASE_TIMEOUT */
	bool passive;		/* the client listens (".passive") */
};

/* ------------------------------------------------------------ helpers */

static bool listen_here(void)
{
	return cur->client == cur->passive;
}

static void xclose(int fd)
{
	CHECK_OK(close(fd), "close");
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Receive exactly strlen(@want) bytes and compare. */
static void recv_str(int fd, const char *want)
{
	size_t len = strlen(want);
	char buf[256];

	recv_all(fd, buf, len);
	buf[len] = '\0';
	CHECK(!strcmp(buf, want), "received \"%s\", expected \"%s\"", buf, want);
}

/*
 * Fill the send buffer (the peer does not read) until even a 4 KiB
 * MSG_DONTWAIT send on the blocking socket returns EAGAIN, at once.
 */
static uint64_t fill_full(int fd, struct pstream *ps)
{
	uint64_t total = fill_sndbuf(fd, ps);
	long long t0 = now_ms();
	ssize_t ret;
	int i;

	for (i = 0; ; i++) {
		ret = ps_send(fd, ps, 4096, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (ret < 0)
			break;
		total += ret;
		CHECK(i < 4096, "send MSG_DONTWAIT on a full socket: still taking data");
	}
	CHECK(errno == EAGAIN, "send MSG_DONTWAIT on a full socket: %m");
	CHECK(now_ms() - t0 < 1000, "send MSG_DONTWAIT blocked for %lld ms", now_ms() - t0);
	return total;
}

/* poll() until every event of @mask is reported; returns the revents. */
static short wait_mask(int fd, short events, short mask)
{
	long long end = now_ms() + io_timeout_ms;
	short rev;

	for (;;) {
		rev = wait_fd(fd, events, 200);
		if ((rev & mask) == mask)
			return rev;
		CHECK(now_ms() < end, "fd %d: poll events %#x, still not all of %#x after %d ms",
		      fd, rev, mask, io_timeout_ms);
		sleep_ms(10);
	}
}

static short poll_now(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	CHECK_OK(poll(&pfd, 1, 0), "poll");
	return pfd.revents;
}

static int ioctl_int(int fd, unsigned long req, const char *what)
{
	int val = -1;

	CHECK(ioctl(fd, req, &val) == 0, "ioctl %s: %m", what);
	return val;
}

/* Wait until ioctl @req reports @want. */
static void wait_ioctl(int fd, unsigned long req, const char *what, int want)
{
	long long end = now_ms() + io_timeout_ms;
	int val;

	for (;;) {
		val = ioctl_int(fd, req, what);
		if (val == want)
			return;
		CHECK(now_ms() < end, "%s is %d, not %d after %d ms", what, val,
		      want, io_timeout_ms);
		sleep_ms(10);
	}
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), "TCP_INFO");
	CHECK(len >= 8, "TCP_INFO: length %u", len);
	return ti.tcpi_state;
}

static void set_linger0(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
		 "SO_LINGER 0");
}

/* An AF_INET socket of @type bound to INADDR_ANY:@port (0: any). */
static int bound_socket(int type, uint16_t *port)
{
	struct sockaddr_in sin = sin4((struct in_addr){ INADDR_ANY }, *port);
	int fd = xsocket(AF_INET, type);

	CHECK_OK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), "bind");
	sin = sock_name4(fd, false);
	*port = ntohs(sin.sin_port);
	CHECK(*port, "bound to port 0");
	return fd;
}

static struct sockaddr_in peer_port(uint16_t port)
{
	return sin4(cur->peer.sin_addr, port);
}

static int connect_port(uint16_t port)
{
	struct sockaddr_in sin = peer_port(port);

	return tcp_connect(&sin);
}

static void ctl_parse(const char *key, char *out, size_t size)
{
	char buf[CTL_LINE_MAX];
	size_t klen = strlen(key);

	ctl_recv(buf, sizeof(buf));
	CHECK(!strncmp(buf, key, klen) && buf[klen] == ' ',
	      "control channel: expected \"%s ...\", got \"%s\"", key, buf);
	snprintf(out, size, "%s", buf + klen + 1);
}

/* ------------------------------------------------------ TCP: connections */

/* The listening side accepts with a blocking accept() (bounded by alarm). */
static void tcp_connect_accept(void)
{
	char mine[32], theirs[32];
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint16_t port;
	int lfd, fd;

	if (listen_here()) {
		lfd = tcp_listener(AF_INET, &port);
		ctl_send("PORT %u", port);
		step = "blocking accept";
		fd = accept(lfd, (struct sockaddr *)&sin, &len);
		CHECK(fd >= 0, "accept: %m");
		CHECK(len == sizeof(sin) && sin.sin_family == AF_INET,
		      "accept: address length %u family %d", len, sin.sin_family);
		CHECK(sin.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
		      "accepted a connection from %s, expected %s", addr_str(&sin),
		      addr_str(&cur->peer));
		xclose(lfd);
	} else {
		port = ctl_recv_long("PORT");
		fd = connect_port(port);
	}
	step = "exchange";
	snprintf(mine, sizeof(mine), "hello from %s", cur->client ? "client" : "server");
	snprintf(theirs, sizeof(theirs), "hello from %s", cur->client ? "server" : "client");
	send_str(fd, mine);
	recv_str(fd, theirs);
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	expect_eof(fd);
	xclose(fd);
}

/* Both ends agree on both addresses of the connection. */
static void tcp_names(void)
{
	struct sockaddr_in me, them;
	char a[64], b[64], line[CTL_LINE_MAX], *sp;
	int fd = pair_open();

	me = sock_name4(fd, false);
	them = sock_name4(fd, true);
	snprintf(a, sizeof(a), "%s", addr_str(&me));
	snprintf(b, sizeof(b), "%s", addr_str(&them));
	ctl_send("NAMES %s %s", a, b);
	ctl_parse("NAMES", line, sizeof(line));
	sp = strchr(line, ' ');
	CHECK(sp, "bad NAMES line");
	*sp++ = '\0';
	CHECK(!strcmp(line, b), "getpeername %s, but the peer's getsockname is %s",
	      b, line);
	CHECK(!strcmp(sp, a), "getsockname %s, but the peer's getpeername is %s",
	      a, sp);
	CHECK(them.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
	      "getpeername %s, the peer is %s", b, addr_str(&cur->peer));
	xclose(fd);
}

/* The client listens on an explicit port, the server connects from one. */
static void tcp_bind_explicit_client(void)
{
	struct sockaddr_in sin;
	uint16_t port = 0;
	int lfd, fd, i;

	for (i = 0; ; i++) {
		fd = bound_socket(SOCK_STREAM, &port);
		xclose(fd);
		sin = sin4((struct in_addr){ INADDR_ANY }, port);
		lfd = xsocket(AF_INET, SOCK_STREAM);
		if (!bind(lfd, (struct sockaddr *)&sin, sizeof(sin)))
			break;
		CHECK(errno == EADDRINUSE && i < 5, "bind port %u: %m", port);
		xclose(lfd);
		port = 0;
	}
	sin = sock_name4(lfd, false);
	CHECK(ntohs(sin.sin_port) == port, "bound port %u, getsockname says %u",
	      port, ntohs(sin.sin_port));
	CHECK_OK(listen(lfd, 4), "listen");
	ctl_send("PORT %u", port);
	port = ctl_recv_long("SRC");
	fd = accept_wait(lfd, &sin);
	CHECK(ntohs(sin.sin_port) == port, "peer port %u, the peer bound %u",
	      ntohs(sin.sin_port), port);
	recv_str(fd, "bound");
	xclose(fd);
	xclose(lfd);
}

static void tcp_bind_explicit_server(void)
{
	struct sockaddr_in sin;
	uint16_t port = 0, src = 0;
	int fd;

	port = ctl_recv_long("PORT");
	fd = bound_socket(SOCK_STREAM, &src);
	ctl_send("SRC %u", src);
	sin = peer_port(port);
	CHECK(!connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	      "connect from port %u: %m", src);
	sin = sock_name4(fd, false);
	CHECK(ntohs(sin.sin_port) == src, "connected from %u, bound %u",
	      ntohs(sin.sin_port), src);
	send_str(fd, "bound");
	xclose(fd);
}

/* Port 0: distinct ephemeral ports; connect() without bind() autobinds. */
static void tcp_bind_port0_client(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint16_t p1 = 0, p2 = 0;
	int a, b, fd;

	fd = xsocket(AF_INET, SOCK_STREAM);
	memset(&sin, 0xff, sizeof(sin));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sin, &len), "getsockname");
	CHECK(sin.sin_family == AF_INET && !sin.sin_port && !sin.sin_addr.s_addr,
	      "unbound socket: getsockname %s", addr_str(&sin));
	a = bound_socket(SOCK_STREAM, &p1);
	b = bound_socket(SOCK_STREAM, &p2);
	CHECK(p1 != p2, "two binds to port 0 both got port %u", p1);
	xclose(a);
	xclose(b);
	fd = connect_port(ctl_recv_long("PORT"));
	sin = sock_name4(fd, false);
	CHECK(sin.sin_port, "connected socket has local port 0");
	ctl_send("SRC %u", ntohs(sin.sin_port));
	recv_str(fd, "ok");
	xclose(fd);
}

static void tcp_bind_port0_server(void)
{
	struct sockaddr_in sin;
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	int fd;

	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, &sin);
	port = ctl_recv_long("SRC");
	CHECK(ntohs(sin.sin_port) == port, "peer port %u, its getsockname %u",
	      ntohs(sin.sin_port), port);
	send_str(fd, "ok");
	xclose(fd);
	xclose(lfd);
}

/* Local: a listening port is taken, with and without SO_REUSEADDR. */
static void tcp_eaddrinuse(void)
{
	struct sockaddr_in sin;
	uint16_t port;
	int lfd, fd;

	lfd = tcp_listener(AF_INET, &port);
	sin = sin4((struct in_addr){ INADDR_ANY }, port);
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_ERR(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), EADDRINUSE,
		  "bind to a listening port");
	set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR not set");
	CHECK_ERR(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), EADDRINUSE,
		  "bind with SO_REUSEADDR to a listening port");
	xclose(fd);
	xclose(lfd);
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)),
		 "bind after the listener closed");
	xclose(fd);
}

/*
 * SO_REUSEADDR: the client closes a connection on its listening port
 * first; a new listener then needs SO_REUSEADDR for that port.
 */
static void tcp_reuseaddr_client(void)
{
	struct sockaddr_in sin;
	uint16_t port = 0;
	int lfd, fd;

	lfd = xsocket(AF_INET, SOCK_STREAM);
	set_int_opt(lfd, SOL_SOCKET, SO_REUSEADDR, 1);
	sin = sin4((struct in_addr){ INADDR_ANY }, 0);
	CHECK_OK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), "bind");
	port = ntohs(sock_name4(lfd, false).sin_port);
	CHECK_OK(listen(lfd, 4), "listen");
	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, NULL);
	xclose(lfd);
	xclose(fd);		/* we close first: TIME_WAIT is ours */
	ctl_expect("CLOSED");
	sleep_ms(100);

	sin = sin4((struct in_addr){ INADDR_ANY }, port);
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_ERR(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), EADDRINUSE,
		  "bind without SO_REUSEADDR to a port in TIME_WAIT");
	xclose(fd);
	lfd = xsocket(AF_INET, SOCK_STREAM);
	set_int_opt(lfd, SOL_SOCKET, SO_REUSEADDR, 1);
	CHECK_OK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)),
		 "bind with SO_REUSEADDR to a port in TIME_WAIT");
	CHECK_OK(listen(lfd, 4), "listen");
	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, NULL);
	recv_str(fd, "again");
	xclose(fd);
	xclose(lfd);
}

static void tcp_reuseaddr_server(void)
{
	int fd = connect_port(ctl_recv_long("PORT"));

	expect_eof(fd);
	xclose(fd);
	ctl_send("CLOSED");
	fd = connect_port(ctl_recv_long("PORT"));
	send_str(fd, "again");
	xclose(fd);
}

static void tcp_refused_client(void)
{
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	int fd;

	fd = xsocket(AF_INET, SOCK_STREAM);
	step = "blocking connect";
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), ECONNREFUSED,
		  "connect to a closed port");
	xclose(fd);

	fd = xsocket(AF_INET, SOCK_STREAM);
	set_nonblock(fd, true);
	step = "non-blocking connect";
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), EINPROGRESS,
		  "non-blocking connect to a closed port");
	wait_ev(fd, POLLOUT);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ERROR) == ECONNREFUSED,
	      "SO_ERROR is not ECONNREFUSED");
	xclose(fd);
	ctl_send("DONE");
}

static void tcp_refused_server(void)
{
	uint16_t port = 0;
	int fd = bound_socket(SOCK_STREAM, &port);	/* bound, not listening */

	ctl_send("PORT %u", port);
	ctl_expect("DONE");
	xclose(fd);
}

/*
 * A blocking connect() with SO_SNDTIMEO to an address of the peer's subnet
 * that no host answers (.250): EINPROGRESS once the timeout has passed, as
 * Linux's inet_stream_connect() reports it.
 */
static void tcp_connect_timeout_client(void)
{
	struct sockaddr_in sin = peer_port(9);
	struct timeval tv = { .tv_sec = 1 };
	long long t0, dt;
	int fd;

	/* On a loopback every address answers, with a reset. */
	if ((ntohl(sin.sin_addr.s_addr) >> 24) == 127)
		skip_case("the peer is on a loopback network");
	sin.sin_addr.s_addr = htonl((ntohl(sin.sin_addr.s_addr) & ~0xffU) | 250);
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)),
		 "SO_SNDTIMEO");
	step = "connect";
	t0 = now_ms();
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), EINPROGRESS,
		  "connect to an address nobody answers");
	dt = now_ms() - t0;
	CHECK(dt >= 900 && dt < 10000, "connect returned after %lld ms", dt);
	xclose(fd);
	ctl_send("DONE");
}

static void tcp_connect_timeout_server(void)
{
	ctl_expect("DONE");
}

static void tcp_nb_connect_client(void)
{
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	short rev;
	int fd;

	fd = xsocket(AF_INET, SOCK_STREAM);
	set_nonblock(fd, true);
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), EINPROGRESS,
		  "non-blocking connect");
	rev = wait_ev(fd, POLLOUT);
	CHECK(!(rev & (POLLERR | POLLHUP)), "poll after connect: %#x", rev);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR not 0");
	/* Linux: the first connect() after completion reports success */
	CHECK_RET(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0,
		  "connect again after completion");
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), EISCONN,
		  "connect on a connected socket");
	sin = sock_name4(fd, true);
	CHECK(sin.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
	      "getpeername %s", addr_str(&sin));
	send_str(fd, "nb");
	recv_str(fd, "nb-ok");
	xclose(fd);
}

static void tcp_nb_connect_server(void)
{
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	int fd;

	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, NULL);
	recv_str(fd, "nb");
	send_str(fd, "nb-ok");
	xclose(fd);
	xclose(lfd);
}

static void tcp_accept4_client(void)
{
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	char ch;
	int fd;

	set_nonblock(lfd, true);
	CHECK_ERR(accept(lfd, NULL, NULL), EAGAIN, "accept with nothing pending");
	ctl_send("PORT %u", port);
	wait_ev(lfd, POLLIN);
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	CHECK(fd >= 0, "accept4: %m");
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "accept4: no O_NONBLOCK");
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "accept4: no FD_CLOEXEC");
	CHECK_ERR(recv(fd, &ch, 1, 0), EAGAIN, "recv on a SOCK_NONBLOCK socket");
	ctl_send("SEND");
	recv_str(fd, "x");
	xclose(fd);
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, "plain accept: %m");
	CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "accept: O_NONBLOCK inherited");
	CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC), "accept: FD_CLOEXEC set");
	xclose(fd);
	xclose(lfd);
}

static void tcp_accept4_server(void)
{
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	int fd = tcp_connect(&sin);
	int fd2;

	fd2 = tcp_connect(&sin);
	ctl_expect("SEND");
	send_str(fd, "x");
	xclose(fd);
	xclose(fd2);
}

/* ------------------------------------------------------------ TCP: data */

/* 16 MiB each way at once, verified byte by byte and by CRC. */
static void tcp_bulk(void)
{
	static uint8_t buf[1 << 16];
	uint64_t sent = 0, got = 0;
	struct pstream tx, rx;
	bool eof = false;
	short rev, ev;
	ssize_t ret;
	int fd = pair_open();

	ps_init(&tx, cur->client ? 11 : 12);
	ps_init(&rx, cur->client ? 12 : 11);
	set_nonblock(fd, true);
	step = "bulk transfer";
	while (sent < BULK_LEN || !eof) {
		ev = POLLIN | (sent < BULK_LEN ? POLLOUT : 0);
		rev = wait_ev(fd, ev);
		if (sent < BULK_LEN && (rev & POLLOUT)) {
			ret = ps_send(fd, &tx, BULK_LEN - sent, MSG_NOSIGNAL);
			CHECK(ret > 0 || errno == EAGAIN, "send: %m");
			if (ret > 0)
				sent += ret;
			if (sent == BULK_LEN)
				CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
		}
		if (rev & (POLLIN | POLLHUP | POLLERR)) {
			ret = recv(fd, buf, sizeof(buf), 0);
			CHECK(ret >= 0 || errno == EAGAIN, "recv after %llu bytes: %m",
			      (unsigned long long)got);
			if (!ret)
				eof = true;
			if (ret > 0) {
				ps_check(&rx, buf, ret);
				got += ret;
				CHECK(got <= BULK_LEN, "more than %u bytes", BULK_LEN);
			}
		}
	}
	CHECK(got == BULK_LEN, "EOF after %llu bytes of %u",
	      (unsigned long long)got, BULK_LEN);
	ctl_send("CRC %u", tx.crc);
	CHECK((uint32_t)ctl_recv_long("CRC") == rx.crc,
	      "CRC of the received data differs from the sender's");
	xclose(fd);
}

static void tcp_dontwait_client(void)
{
	struct pstream ps;
	uint64_t total;
	char ch = 0;
	int fd = pair_open();

	CHECK_ERR(recv(fd, &ch, 1, MSG_DONTWAIT), EAGAIN, "recv MSG_DONTWAIT, no data");
	ctl_send("SEND");
	wait_ev(fd, POLLIN);
	CHECK_RET(recv(fd, &ch, 1, MSG_DONTWAIT), 1, "recv MSG_DONTWAIT");
	CHECK(ch == 'd', "received %#x", ch);
	ps_init(&ps, 21);
	total = fill_full(fd, &ps);
	CHECK_ERR(ps_send(fd, &ps, 1, MSG_DONTWAIT | MSG_NOSIGNAL), EAGAIN,
		  "send MSG_DONTWAIT on a full socket");
	ctl_send("DRAIN %llu", (unsigned long long)total);
	ctl_expect("DRAINED");
	xclose(fd);
}

static void tcp_dontwait_server(void)
{
	struct pstream ps;
	int fd = pair_open();

	ctl_expect("SEND");
	send_str(fd, "d");
	ps_init(&ps, 21);
	ps_recv(fd, &ps, ctl_recv_long("DRAIN"));
	ctl_send("DRAINED");
	xclose(fd);
}

static void tcp_peek_client(void)
{
	uint8_t a[100], b[100], c[100];
	int fd = pair_open();

	ctl_send("SEND");
	wait_ioctl(fd, FIONREAD, "FIONREAD", 100);
	CHECK_RET(recv(fd, a, 50, MSG_PEEK), 50, "recv MSG_PEEK");
	CHECK_RET(recv(fd, b, 100, MSG_PEEK), 100, "recv MSG_PEEK again");
	CHECK(!memcmp(a, b, 50), "two peeks differ");
	CHECK(ioctl_int(fd, FIONREAD, "FIONREAD") == 100, "peek consumed data");
	CHECK_RET(recv(fd, c, 100, 0), 100, "recv");
	CHECK(!memcmp(b, c, 100), "peeked and received data differ");
	CHECK(c[0] == 'p' && c[99] == 'q', "wrong data");
	CHECK_ERR(recv(fd, c, 1, MSG_DONTWAIT | MSG_PEEK), EAGAIN, "peek at nothing");
	ctl_send("DONE");
	xclose(fd);
}

static void tcp_peek_server(void)
{
	char buf[100];
	int fd = pair_open();

	memset(buf, 'p', sizeof(buf));
	buf[99] = 'q';
	ctl_expect("SEND");
	send_all(fd, buf, sizeof(buf));
	ctl_expect("DONE");
	xclose(fd);
}

static void tcp_waitall_client(void)
{
	struct pstream ps;
	uint8_t buf[4000];
	int fd = pair_open();

	ctl_send("SEND");
	step = "recv MSG_WAITALL";
	CHECK_RET(recv(fd, buf, sizeof(buf), MSG_WAITALL), sizeof(buf),
		  "recv MSG_WAITALL of 4 sends 100 ms apart");
	ps_init(&ps, 31);
	ps_check(&ps, buf, sizeof(buf));
	xclose(fd);
}

static void tcp_waitall_server(void)
{
	struct pstream ps;
	int i, fd = pair_open();

	ctl_expect("SEND");
	ps_init(&ps, 31);
	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)),
		 "TCP_NODELAY");
	for (i = 0; i < 4; i++) {
		CHECK_RET(ps_send(fd, &ps, 1000, MSG_NOSIGNAL), 1000, "send");
		sleep_ms(100);
	}
	xclose(fd);
}

/*
 * MSG_PEEK racing another reader: a thread blocks in recv(MSG_PEEK |
 * MSG_WAITALL) after peeking a first chunk, the main thread recv()s that
 * chunk meanwhile, then a second chunk arrives.  As in TCP, the peek goes
 * on from what is left (the second chunk), so the peeking thread returns
 * both chunks, which equal what the main thread reads.  Both directions,
 * many rounds.
 */
#define PEEK_RACE_CHUNK		1000
#define PEEK_RACE_ROUNDS	100

struct peek_racer {
	int fd;
	pid_t tid;
	ssize_t ret;
	int err;
	uint8_t buf[2 * PEEK_RACE_CHUNK];
};

static void *peek_racer_run(void *arg)
{
	struct peek_racer *pr = arg;

	__atomic_store_n(&pr->tid, gettid(), __ATOMIC_RELEASE);
	pr->ret = recv(pr->fd, pr->buf, sizeof(pr->buf), MSG_PEEK | MSG_WAITALL);
	pr->err = errno;
	return NULL;
}

/* The scheduler state of thread @tid ('S': sleeping) from /proc. */
static char thread_state(pid_t tid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	CHECK_OK(fd, path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0, "read %s", path);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	CHECK(p && p[1] == ' ', "%s: cannot parse \"%s\"", path, buf);
	return p[2];
}

static void peek_race_recv(int fd)
{
	uint8_t got[2 * PEEK_RACE_CHUNK];
	struct peek_racer pr = { .fd = fd };
	struct timeval tv = { .tv_sec = io_timeout_ms / 1000,
			      .tv_usec = io_timeout_ms % 1000 * 1000 };
	struct pstream ps;
	long long end;
	pthread_t th;
	int round;

	/* A peek that never returns fails the round instead of the alarm. */
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), "SO_RCVTIMEO");
	ps_init(&ps, 41);
	for (round = 0; round < PEEK_RACE_ROUNDS; round++) {
		ctl_send("CHUNK");
		step = "wait for the first chunk";
		end = now_ms() + io_timeout_ms;
		while (ioctl_int(fd, FIONREAD, "FIONREAD") < PEEK_RACE_CHUNK) {
			CHECK(now_ms() < end, "round %d: the first chunk did not arrive", round);
			sleep_ms(1);
		}
		pr.tid = 0;
		CHECK(!pthread_create(&th, NULL, peek_racer_run, &pr), "pthread_create");
		step = "wait for the peek to block";
		end = now_ms() + io_timeout_ms;
		while (!__atomic_load_n(&pr.tid, __ATOMIC_ACQUIRE) || thread_state(pr.tid) != 'S') {
			CHECK(now_ms() < end, "round %d: the peeking thread does not sleep", round);
			sleep_ms(1);
		}
		step = "recv the peeked chunk";
		CHECK_RET(recv(fd, got, PEEK_RACE_CHUNK, MSG_DONTWAIT), PEEK_RACE_CHUNK,
			  "recv while another thread peeks");
		ctl_send("CHUNK");
		step = "join the peeking thread";
		CHECK(!pthread_join(th, NULL), "pthread_join");
		errno = pr.err;
		CHECK(pr.ret == (ssize_t)sizeof(pr.buf),
		      "round %d: recv(MSG_PEEK | MSG_WAITALL) returned %zd (%m), expected %zu",
		      round, pr.ret, sizeof(pr.buf));
		step = "recv the second chunk";
		CHECK_RET(recv(fd, got + PEEK_RACE_CHUNK, PEEK_RACE_CHUNK, MSG_WAITALL),
			  PEEK_RACE_CHUNK, "recv the second chunk");
		ps_check(&ps, got, sizeof(got));
		CHECK(!memcmp(pr.buf, got, sizeof(got)),
		      "round %d: the peeked bytes differ from the bytes received", round);
	}
	ctl_send("END");
}

static void peek_race_send(int fd)
{
	char line[CTL_LINE_MAX];
	struct pstream ps;

	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)),
		 "TCP_NODELAY");
	ps_init(&ps, 41);
	for (;;) {
		ctl_recv(line, sizeof(line));
		if (!strcmp(line, "END"))
			break;
		CHECK(!strcmp(line, "CHUNK"), "control channel: \"%s\"", line);
		CHECK_RET(ps_send(fd, &ps, PEEK_RACE_CHUNK, MSG_NOSIGNAL), PEEK_RACE_CHUNK,
			  "send a chunk");
	}
}

static void tcp_peek_race(void)
{
	int fd = pair_open();

	/* The client peeks first, then the server. */
	if (cur->client) {
		peek_race_recv(fd);
		peek_race_send(fd);
	} else {
		peek_race_send(fd);
		peek_race_recv(fd);
	}
	xclose(fd);
}

/* writev and sendmsg one way, recvmsg and readv the other; both ways. */
static void tcp_iovec(void)
{
	static uint8_t out[9010], in[9010];
	struct iovec iov[3];
	struct msghdr msg;
	struct pstream ps;
	size_t got;
	ssize_t ret;
	int fd = pair_open();

	ps_init(&ps, cur->client ? 41 : 42);
	ps_fill(&ps, out, sizeof(out));
	iov[0] = (struct iovec){ out, 10 };
	iov[1] = (struct iovec){ out + 10, 1000 };
	iov[2] = (struct iovec){ out + 1010, 5000 };
	CHECK_RET(writev(fd, iov, 3), 6010, "writev");
	iov[0] = (struct iovec){ out + 6010, 1 };
	iov[1] = (struct iovec){ out + 6011, 2999 };
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	CHECK_RET(sendmsg(fd, &msg, MSG_NOSIGNAL), 3000, "sendmsg");

	iov[0] = (struct iovec){ in, 3000 };
	iov[1] = (struct iovec){ in + 3000, 3000 };
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	step = "recvmsg";
	CHECK_RET(recvmsg(fd, &msg, MSG_WAITALL), 6000, "recvmsg MSG_WAITALL");
	CHECK(!msg.msg_flags, "recvmsg flags %#x", msg.msg_flags);
	for (got = 6000; got < sizeof(in); got += ret) {
		iov[0] = (struct iovec){ in + got, 7 };
		iov[1] = (struct iovec){ in + got + 7, sizeof(in) - got - 7 };
		wait_ev(fd, POLLIN);
		step = "readv";
		ret = readv(fd, iov, sizeof(in) - got > 7 ? 2 : 1);
		CHECK(ret > 0, "readv: %zd: %m", ret);
	}
	ps_init(&ps, cur->client ? 42 : 41);
	ps_check(&ps, in, sizeof(in));
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	expect_eof(fd);
	xclose(fd);
}

/* ------------------------------------------------------ TCP: shutdown */

static void tcp_shut_wr_client(void)
{
	short rev;
	int fd = pair_open();

	send_str(fd, "request");
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown SHUT_WR");
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE, "send after SHUT_WR");
	rev = poll_now(fd, POLLIN | POLLOUT | POLLRDHUP);
	CHECK(!(rev & (POLLRDHUP | POLLHUP)), "poll after own SHUT_WR: %#x", rev);
	ctl_send("POLLED");
	recv_str(fd, "reply after EOF");
	expect_eof(fd);
	rev = poll_now(fd, POLLIN | POLLRDHUP);
	CHECK((rev & POLLHUP) && (rev & POLLRDHUP), "poll after both FINs: %#x", rev);
	xclose(fd);
}

static void tcp_shut_wr_server(void)
{
	short rev;
	int fd = pair_open();

	recv_str(fd, "request");
	expect_eof(fd);
	rev = poll_now(fd, POLLIN | POLLOUT | POLLRDHUP);
	CHECK((rev & POLLRDHUP) && (rev & POLLOUT) && !(rev & POLLHUP),
	      "poll after the peer's SHUT_WR: %#x", rev);
	CHECK(tcp_state(fd) == TCP_CLOSE_WAIT, "TCP state %d, not CLOSE_WAIT",
	      tcp_state(fd));
	ctl_expect("POLLED");
	send_str(fd, "reply after EOF");
	xclose(fd);
}

static void tcp_shut_rd_client(void)
{
	char buf[8];
	short rev;
	int fd = pair_open();

	CHECK_OK(shutdown(fd, SHUT_RD), "shutdown SHUT_RD");
	CHECK_RET(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0, "recv after SHUT_RD");
	rev = poll_now(fd, POLLIN | POLLOUT | POLLRDHUP);
	CHECK((rev & POLLIN) && (rev & POLLRDHUP) && (rev & POLLOUT),
	      "poll after SHUT_RD: %#x", rev);
	send_str(fd, "still sending");
	ctl_expect("GOT");
	xclose(fd);
}

static void tcp_shut_rd_server(void)
{
	int fd = pair_open();

	recv_str(fd, "still sending");
	ctl_send("GOT");
	xclose(fd);
}

static void tcp_shut_rdwr_client(void)
{
	int fd = pair_open();

	CHECK_OK(shutdown(fd, SHUT_RDWR), "shutdown SHUT_RDWR");
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE, "send after SHUT_RDWR");
	CHECK_RET(recv(fd, &(char){ 0 }, 1, MSG_DONTWAIT), 0, "recv after SHUT_RDWR");
	ctl_expect("EOF");
	xclose(fd);
}

static void tcp_shut_rdwr_server(void)
{
	int fd = pair_open();

	expect_eof(fd);
	ctl_send("EOF");
	xclose(fd);
}

/* The sender closes with a full send queue: all of it arrives. */
static void tcp_close_queued_client(void)
{
	struct pstream ps;
	uint64_t len;
	int fd = pair_open();

	len = ctl_recv_long("CLOSED");
	ps_init(&ps, 51);
	ps_recv(fd, &ps, len);
	expect_eof(fd);
	xclose(fd);
}

static void tcp_close_queued_server(void)
{
	struct pstream ps;
	uint64_t len;
	int fd = pair_open();

	ps_init(&ps, 51);
	len = fill_sndbuf(fd, &ps);
	xclose(fd);
	ctl_send("CLOSED %llu", (unsigned long long)len);
}

static void tcp_linger0_client(void)
{
	char ch;
	int fd = pair_open();

	ctl_send("GO");
	ctl_expect("CLOSED");
	wait_mask(fd, POLLIN, POLLERR);
	CHECK_ERR(recv(fd, &ch, 1, 0), ECONNRESET, "recv after the peer's abortive close");
	CHECK_RET(recv(fd, &ch, 1, MSG_DONTWAIT), 0, "recv after the reset was reported");
	xclose(fd);
}

static void tcp_linger0_server(void)
{
	struct linger lg;
	socklen_t len = sizeof(lg);
	int fd = pair_open();

	set_linger0(fd);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len), "get SO_LINGER");
	CHECK(lg.l_onoff && !lg.l_linger, "SO_LINGER is {%d, %d}", lg.l_onoff,
	      lg.l_linger);
	ctl_expect("GO");
	xclose(fd);
	ctl_send("CLOSED");
}

static sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void tcp_epipe_client(void)
{
	struct sigaction sa = { .sa_handler = on_sigpipe };
	long long end;
	ssize_t ret;
	int fd;

	CHECK_OK(sigaction(SIGPIPE, &sa, NULL), "sigaction");
	/* our own SHUT_WR */
	fd = pair_open();
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE, "send MSG_NOSIGNAL after SHUT_WR");
	CHECK(!sigpipes, "SIGPIPE despite MSG_NOSIGNAL");
	CHECK_ERR(send(fd, "x", 1, 0), EPIPE, "send after SHUT_WR");
	CHECK(sigpipes == 1, "%d SIGPIPEs, expected 1", (int)sigpipes);
	CHECK_ERR(write(fd, "x", 1), EPIPE, "write after SHUT_WR");
	CHECK(sigpipes == 2, "%d SIGPIPEs, expected 2", (int)sigpipes);
	xclose(fd);

	/* the peer closed: the first send draws a reset, then EPIPE */
	fd = pair_open();
	expect_eof(fd);
	end = now_ms() + io_timeout_ms;
	step = "send until the reset";
	for (;;) {
		ret = send(fd, "y", 1, MSG_NOSIGNAL);
		if (ret < 0)
			break;
		CHECK(now_ms() < end, "send to a closed peer keeps succeeding");
		sleep_ms(20);
	}
	CHECK(errno == EPIPE || errno == ECONNRESET, "send to a closed peer: %m");
	CHECK_ERR(send(fd, "y", 1, MSG_NOSIGNAL), EPIPE, "send after the reset");
	CHECK(sigpipes == 2, "SIGPIPE despite MSG_NOSIGNAL");
	CHECK_ERR(send(fd, "y", 1, 0), EPIPE, "send after the reset");
	CHECK(sigpipes == 3, "%d SIGPIPEs, expected 3", (int)sigpipes);
	xclose(fd);
}

static void tcp_epipe_server(void)
{
	int fd = pair_open();

	expect_eof(fd);
	xclose(fd);
	fd = pair_open();
	xclose(fd);
}

/* ------------------------------------------------ TCP: ioctls, options */

static void tcp_ioctl_client(void)
{
	struct pstream ps;
	char buf[1234];
	uint64_t total;
	int outq, fd = pair_open();

	CHECK(ioctl_int(fd, FIONREAD, "FIONREAD") == 0, "FIONREAD not 0");
	CHECK(ioctl_int(fd, SIOCOUTQ, "SIOCOUTQ") == 0, "SIOCOUTQ not 0");
	ctl_send("SEND");
	wait_ioctl(fd, FIONREAD, "FIONREAD", sizeof(buf));
	recv_all(fd, buf, sizeof(buf));
	CHECK(ioctl_int(fd, FIONREAD, "FIONREAD") == 0, "FIONREAD not 0 after recv");
	ps_init(&ps, 61);
	total = fill_sndbuf(fd, &ps);
	outq = ioctl_int(fd, SIOCOUTQ, "SIOCOUTQ");
	CHECK(outq > 0 && (uint64_t)outq <= total,
	      "SIOCOUTQ %d with %llu bytes sent to a peer that does not read", outq,
	      (unsigned long long)total);
	ctl_send("DRAIN %llu", (unsigned long long)total);
	wait_ioctl(fd, SIOCOUTQ, "SIOCOUTQ", 0);
	ctl_expect("DRAINED");
	xclose(fd);
}

static void tcp_ioctl_server(void)
{
	struct pstream ps;
	char buf[1234];
	int fd = pair_open();

	memset(buf, 'i', sizeof(buf));
	ctl_expect("SEND");
	send_all(fd, buf, sizeof(buf));
	ps_init(&ps, 61);
	ps_recv(fd, &ps, ctl_recv_long("DRAIN"));
	ctl_send("DRAINED");
	xclose(fd);
}

/*
 * Urgent data (TCP's out-of-band byte).  The sender sends "ab", "c" with
 * MSG_OOB, then "de"; the receiver checks what Linux gives: SIGURG to the
 * owner (F_SETOWN) and POLLPRI once the byte is there, SIOCATMARK 0 before
 * "ab" is read and 1 after, a read stopping at the mark, recv(MSG_OOB)
 * giving 'c' once (EINVAL before any urgent data, for a second read, and
 * with SO_OOBINLINE, which leaves 'c' in the stream at the mark).
 */
static volatile sig_atomic_t sigurg_count;

static void on_sigurg(int sig)
{
	(void)sig;
	sigurg_count++;
}

static void urg_send(int fd)
{
	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)),
		 "TCP_NODELAY");
	ctl_expect("SEND");
	send_str(fd, "ab");
	CHECK_RET(send(fd, "c", 1, MSG_OOB), 1, "send MSG_OOB");
	send_str(fd, "de");
	ctl_expect("DONE");
	xclose(fd);
}

static int atmark(int fd)
{
	return ioctl_int(fd, SIOCATMARK, "SIOCATMARK");
}

static void urg_recv(int fd, bool oobinline)
{
	struct sigaction sa = { .sa_handler = on_sigurg };
	char buf[16], ch = 0;

	CHECK_OK(sigaction(SIGURG, &sa, NULL), "sigaction SIGURG");
	CHECK_OK(fcntl(fd, F_SETOWN, getpid()), "F_SETOWN");
	if (oobinline)
		CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &(int){ 1 },
				    sizeof(int)), "SO_OOBINLINE");
	step = "no urgent data yet";
	CHECK_ERR(recv(fd, &ch, 1, MSG_OOB | MSG_DONTWAIT), EINVAL,
		  "recv MSG_OOB without urgent data");
	CHECK(!atmark(fd), "SIOCATMARK 1 without urgent data");
	ctl_send("SEND");
	step = "urgent byte arrives";
	wait_mask(fd, POLLIN | POLLPRI, POLLPRI);
	CHECK(sigurg_count >= 1, "no SIGURG with POLLPRI reported");
	CHECK(!atmark(fd), "SIOCATMARK 1 before \"ab\" is read");
	/* As tcp_inq(): only the bytes before the mark while 'c' is not inline. */
	if (!oobinline)
		CHECK(ioctl_int(fd, FIONREAD, "FIONREAD") == 2,
		      "FIONREAD %d before the mark, expected 2",
		      ioctl_int(fd, FIONREAD, "FIONREAD"));
	if (oobinline) {
		CHECK_ERR(recv(fd, &ch, 1, MSG_OOB), EINVAL,
			  "recv MSG_OOB with SO_OOBINLINE");
	} else {
		step = "recv MSG_OOB";
		CHECK_RET(recv(fd, &ch, 1, MSG_OOB), 1, "recv MSG_OOB");
		CHECK(ch == 'c', "urgent byte '%c', expected 'c'", ch);
		CHECK_ERR(recv(fd, &ch, 1, MSG_OOB), EINVAL,
			  "recv MSG_OOB of a byte already read");
		CHECK(!(poll_now(fd, POLLPRI) & POLLPRI),
		      "POLLPRI after the urgent byte was read");
	}
	step = "read up to the mark";
	CHECK_RET(recv(fd, buf, sizeof(buf), 0), 2, "recv stopping at the mark");
	CHECK(!memcmp(buf, "ab", 2), "received \"%.2s\", expected \"ab\"", buf);
	CHECK(atmark(fd) == 1, "SIOCATMARK 0 at the mark");
	CHECK(!!(poll_now(fd, POLLPRI) & POLLPRI) == oobinline,
	      "POLLPRI at the mark %s", oobinline ? "not set" : "set");
	step = "read past the mark";
	recv_str(fd, oobinline ? "cde" : "de");
	CHECK(!atmark(fd), "SIOCATMARK 1 past the mark");
	CHECK(!(poll_now(fd, POLLPRI) & POLLPRI), "POLLPRI past the mark");
	CHECK_ERR(recv(fd, &ch, 1, MSG_OOB | MSG_DONTWAIT), EINVAL,
		  "recv MSG_OOB past the mark");
	CHECK(sigurg_count == 1, "%d SIGURG for one urgent byte", (int)sigurg_count);
	ctl_send("DONE");
	xclose(fd);
}

static void tcp_oob_recv(void)
{
	urg_recv(pair_open(), false);
}

static void tcp_oob_inline(void)
{
	urg_recv(pair_open(), true);
}

static void tcp_oob_send(void)
{
	urg_send(pair_open());
}

/*
 * A reader that never asks for urgent data: the stream goes on past the
 * mark, without the byte ("abde"), or with it where SO_OOBINLINE keeps it
 * ("abcde").  It holds for a NetKernel guest that does not take urgent
 * data too (one loaded with feature_mask= without NK_FEAT_URG, run-vm.sh's
 * nk_no_urg): its NSM skips the byte or keeps it as the guest's
 * SO_OOBINLINE says.
 */
static void urg_stream(int fd, bool oobinline)
{
	char ch;

	if (oobinline)
		CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &(int){ 1 },
				    sizeof(int)), "SO_OOBINLINE");
	/* A NetKernel guest forwards SO_OOBINLINE before its next call. */
	CHECK_ERR(recv(fd, &ch, 1, MSG_DONTWAIT), EAGAIN, "recv before any data");
	ctl_send("SEND");
	step = "read through the mark";
	recv_str(fd, oobinline ? "abcde" : "abde");
	ctl_send("DONE");
	xclose(fd);
}

static void tcp_oob_stream(void)
{
	urg_stream(pair_open(), false);
}

static void tcp_oob_stream_inline(void)
{
	urg_stream(pair_open(), true);
}

static void tcp_timeo_client(void)
{
	struct timeval tv = { 0, 300000 };
	socklen_t len = sizeof(tv);
	struct pstream ps;
	long long t0, dt;
	uint64_t total;
	ssize_t ret;
	char ch;
	int fd = pair_open();

	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), "SO_RCVTIMEO");
	memset(&tv, 0, sizeof(tv));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len), "get SO_RCVTIMEO");
	CHECK(!tv.tv_sec && tv.tv_usec >= 290000 && tv.tv_usec <= 310000,
	      "SO_RCVTIMEO reads back as %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
	t0 = now_ms();
	step = "recv with SO_RCVTIMEO";
	CHECK_ERR(recv(fd, &ch, 1, 0), EAGAIN, "recv with SO_RCVTIMEO, no data");
	dt = now_ms() - t0;
	CHECK(dt >= 250 && dt < 5000, "recv timed out after %lld ms, not 300", dt);

	tv = (struct timeval){ 0, 300000 };
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), "SO_SNDTIMEO");
	ps_init(&ps, 71);
	total = fill_full(fd, &ps);
	t0 = now_ms();
	step = "send with SO_SNDTIMEO";
	ret = ps_send(fd, &ps, 65536, MSG_NOSIGNAL);
	dt = now_ms() - t0;
	CHECK(ret < 0 || ret < 65536, "send into a full buffer took all %zd bytes", ret);
	if (ret < 0)
		CHECK(errno == EAGAIN, "send with SO_SNDTIMEO: %m");
	else
		total += ret;
	CHECK(dt >= 250 && dt < 5000, "send timed out after %lld ms, not 300", dt);
	ctl_send("DRAIN %llu", (unsigned long long)total);
	ctl_expect("DRAINED");
	xclose(fd);
}

static void tcp_timeo_server(void)
{
	struct pstream ps;
	int fd = pair_open();

	ps_init(&ps, 71);
	ps_recv(fd, &ps, ctl_recv_long("DRAIN"));
	ctl_send("DRAINED");
	xclose(fd);
}

/* Symmetric: TCP_NODELAY reads back, and 50 one-byte round trips work. */
static void tcp_nodelay(void)
{
	char ch;
	int i, fd = pair_open();

	CHECK(!get_int_opt(fd, IPPROTO_TCP, TCP_NODELAY), "TCP_NODELAY set by default");
	set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	CHECK(get_int_opt(fd, IPPROTO_TCP, TCP_NODELAY), "TCP_NODELAY does not read back");
	for (i = 0; i < 50; i++) {
		ch = 'a' + i % 26;
		if (cur->client) {
			send_all(fd, &ch, 1);
			recv_str(fd, (char[]){ ch + 1 - 'a' + 'A', 0 });
		} else {
			recv_str(fd, (char[]){ ch, 0 });
			ch = ch + 1 - 'a' + 'A';
			send_all(fd, &ch, 1);
		}
	}
	xclose(fd);
}

static void tcp_info_client(void)
{
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	int fd;

	CHECK(tcp_state(lfd) == TCP_LISTEN, "listener: TCP state %d", tcp_state(lfd));
	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, NULL);
	CHECK(tcp_state(fd) == TCP_ESTABLISHED, "accepted: TCP state %d", tcp_state(fd));
	ctl_send("SHUT");
	expect_eof(fd);
	CHECK(tcp_state(fd) == TCP_CLOSE_WAIT, "after EOF: TCP state %d", tcp_state(fd));
	xclose(fd);
	xclose(lfd);
}

static void tcp_info_server(void)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fd = connect_port(ctl_recv_long("PORT"));

	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), "TCP_INFO");
	CHECK(ti.tcpi_state == TCP_ESTABLISHED, "connected: TCP state %d", ti.tcpi_state);
	CHECK(ti.tcpi_snd_mss > 0, "connected: snd_mss 0");
	ctl_expect("SHUT");
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	wait_ev(fd, POLLIN);
	xclose(fd);
}

/* Symmetric: keepalive options read back. */
static void tcp_keepalive(void)
{
	int fd = pair_open();

	CHECK(!get_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE), "SO_KEEPALIVE on by default");
	set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE not set");
	set_int_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 7);
	set_int_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, 3);
	set_int_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, 4);
	CHECK(get_int_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 7, "TCP_KEEPIDLE");
	CHECK(get_int_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 3, "TCP_KEEPINTVL");
	CHECK(get_int_opt(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4, "TCP_KEEPCNT");
	set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
	CHECK(!get_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE), "SO_KEEPALIVE not cleared");
	CHECK_ERR(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &(int){ 0 }, sizeof(int)),
		  EINVAL, "TCP_KEEPIDLE 0");
	send_str(fd, "k");
	recv_str(fd, "k");
	xclose(fd);
}

/*
 * SO_RCVLOWAT beyond what the receive window can hold.  Linux clamps it
 * to half of tcp_rmem[2] (of SO_RCVBUF once that is set), and poll()
 * reports POLLIN once that much, or all the window holds, has arrived:
 * it never waits for bytes the sender cannot send.  The server sends
 * RCVLOWAT_LEN bytes and closes; the client, with SO_RCVLOWAT at 64 MiB,
 * polls before it reads a byte, then reads them all.
 */
#define RCVLOWAT_LEN	(8U << 20)

static void tcp_rcvlowat_big_client(void)
{
	struct pstream ps;
	long rmem[3];
	int fd = pair_open(), want;
	FILE *f;

	step = "tcp_rmem";
	f = fopen("/proc/sys/net/ipv4/tcp_rmem", "r");
	CHECK(f && fscanf(f, "%ld %ld %ld", &rmem[0], &rmem[1], &rmem[2]) == 3,
	      "read /proc/sys/net/ipv4/tcp_rmem");
	fclose(f);
	want = rmem[2] / 2 < (64L << 20) ? rmem[2] / 2 : 64 << 20;
	set_int_opt(fd, SOL_SOCKET, SO_RCVLOWAT, 64 << 20);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_RCVLOWAT) == want,
	      "SO_RCVLOWAT 64 MiB reads %d, not half of tcp_rmem[2] (%d)",
	      get_int_opt(fd, SOL_SOCKET, SO_RCVLOWAT), want);
	ctl_send("SEND");
	step = "poll POLLIN with SO_RCVLOWAT beyond the window";
	CHECK(wait_fd(fd, POLLIN, 20000) & POLLIN,
	      "no POLLIN in 20 s while the sender waits for window");
	set_int_opt(fd, SOL_SOCKET, SO_RCVLOWAT, 1);
	ps_init(&ps, 47);
	ps_recv(fd, &ps, RCVLOWAT_LEN);
	expect_eof(fd);
	xclose(fd);
}

static void tcp_rcvlowat_big_server(void)
{
	struct pstream ps;
	int fd = pair_open();
	size_t left;
	ssize_t ret;

	ctl_expect("SEND");
	ps_init(&ps, 47);
	step = "send while the peer polls";
	for (left = RCVLOWAT_LEN; left; left -= ret) {
		ret = ps_send(fd, &ps, left, MSG_NOSIGNAL);
		CHECK(ret > 0, "send: %m");
	}
	xclose(fd);
}

/* Symmetric: Linux doubles SO_RCVBUF and SO_SNDBUF. */
static void tcp_bufsize(void)
{
	int fd = pair_open();

	set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, 65536);
	set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, 65536);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_RCVBUF) == 131072, "SO_RCVBUF 65536 reads %d",
	      get_int_opt(fd, SOL_SOCKET, SO_RCVBUF));
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_SNDBUF) == 131072, "SO_SNDBUF 65536 reads %d",
	      get_int_opt(fd, SOL_SOCKET, SO_SNDBUF));
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM, "SO_TYPE");
	send_str(fd, "b");
	recv_str(fd, "b");
	xclose(fd);
}

/*
 * The option table: each option set on a new socket of its kind, then
 * read back, with the result, errno and value native Linux gives
 * (the baseline guest runs the same table).  Options that would act
 * outside the guest's tenancy on the NSM are refused as for an
 * unprivileged process: run as uid 65534 (the same everywhere), and on
 * NetKernel as root too, whose privileges in the guest do not count.
 * An AF_INET socket's getsockopt at a level neither its protocol's nor
 * IPPROTO_IP answers EOPNOTSUPP (ip_getsockopt()), setsockopt ENOPROTOOPT.
 * A value other than an int is @buf; getsockopt reads an int's room of it.
 * Where NetKernel answers otherwise on purpose (sockopts.rst says why),
 * @nk is its answer and native's is checked on the baseline guest.
 */
struct opt_res {
	int set_err, get_err, get;
};

struct opt_case {
	const char *what;
	int family, type, level, name, val;
	int set_err;		/* setsockopt's errno, 0: success */
	int get_err;		/* getsockopt's errno, 0: reads @get */
	int get;
	bool unpriv;		/* a privileged option */
	const void *buf;	/* the value, if not @val */
	socklen_t buflen;
	const struct opt_res *nk;	/* NetKernel's answer, if not native's */
	bool get_any;		/* the value read is not compared */
};

#define OPT_F(w, f, t, l, n, v, se, ge, g, u)					\
	.what = w, .family = f, .type = t, .level = l, .name = n, .val = v,	\
	.set_err = se, .get_err = ge, .get = g, .unpriv = u
#define OPT(...)		{ OPT_F(__VA_ARGS__) }
#define TCP_F(n, v, se, g)						\
	OPT_F(#n, AF_INET, SOCK_STREAM, IPPROTO_TCP, n, v, se, 0, g, false)
#define IP_F(t, n, v, se, g)						\
	OPT_F(#n "/" #t, AF_INET, t, IPPROTO_IP, n, v, se, 0, g, false)
#define IP6_F(t, n, v, se, g)						\
	OPT_F(#n "/" #t, AF_INET6, t, IPPROTO_IPV6, n, v, se, 0, g, false)
/* Each stringifies its own @n: an argument passed on is expanded first. */
#define OPT_TCP(n, v, se, g)						\
	{ OPT_F(#n, AF_INET, SOCK_STREAM, IPPROTO_TCP, n, v, se, 0, g, false) }
#define OPT_IP(t, n, v, se, g)						\
	{ OPT_F(#n "/" #t, AF_INET, t, IPPROTO_IP, n, v, se, 0, g, false) }
#define OPT_IP6(t, n, v, se, g)						\
	{ OPT_F(#n "/" #t, AF_INET6, t, IPPROTO_IPV6, n, v, se, 0, g, false) }
/* A value that is not an int, @b a pointer to it. */
#define BUF_F(w, f, t, l, n, b, se, ge, g, u)					\
	OPT_F(w, f, t, l, n, 0, se, ge, g, u), .buf = b, .buflen = sizeof(*(b))
#define OPT_BUF(...)		{ BUF_F(__VA_ARGS__) }
/* @fields (one of the *_F above) natively; NetKernel answers @se, @ge, @g. */
#define OPT_NK(fields, se, ge, g)	{ fields, .nk = &(const struct opt_res){ se, ge, g } }

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE		51	/* linux/in.h */
#define IP_PROTOCOL			52
#endif

#ifndef IPV6_PREFER_SRC_PUBLIC
#define IPV6_PREFER_SRC_PUBLIC		0x0002	/* linux/in6.h */
#define IPV6_PREFER_SRC_HOME		0x0400
#endif

/* htonl() of a constant, in a static initializer */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BE32(x)		__builtin_bswap32(x)
#else
#define BE32(x)		(x)
#endif
#define MC4		{ BE32(0xef010203) }		/* 239.1.2.3 */
#define MC6		{ { { 0xff, 0x05, [13] = 1, [15] = 3 } } }	/* ff05::1:3 */
#define NOT_LOCAL4	{ BE32(0x0a636363) }		/* 10.99.99.99 */
#define NO_IFINDEX	99				/* no interface has it */

/* A little-endian int of its bytes: "reno" */
#define STR4(a, b, c, d)	((a) | (b) << 8 | (c) << 16 | (d) << 24)

static const struct opt_case opt_cases[] = {
	OPT_TCP(TCP_CORK, 1, 0, 1),
	OPT_TCP(TCP_DEFER_ACCEPT, 5, 0, 7),	/* rounded up to retransmissions */
	OPT_TCP(TCP_FASTOPEN, 16, 0, 16),
	OPT_TCP(TCP_USER_TIMEOUT, 30000, 0, 30000),
	OPT_TCP(TCP_USER_TIMEOUT, -1, EINVAL, 0),
	OPT_TCP(TCP_NOTSENT_LOWAT, 16384, 0, 16384),
	OPT_TCP(TCP_QUICKACK, 0, 0, 0),
	OPT_TCP(TCP_SYNCNT, 3, 0, 3),
	OPT_TCP(TCP_SYNCNT, 0, EINVAL, 6),	/* the default tcp_syn_retries */
	OPT_TCP(TCP_LINGER2, 30, 0, 30),
	OPT_TCP(TCP_WINDOW_CLAMP, 65536, 0, 65536),
	OPT_TCP(TCP_THIN_LINEAR_TIMEOUTS, 1, 0, 1),
	OPT_TCP(TCP_TX_DELAY, 1000, 0, 1000),
	OPT_TCP(TCP_SAVE_SYN, 1, 0, 1),
	OPT_TCP(TCP_SAVE_SYN, 3, EINVAL, 0),
	/* No repair mode (TCP_REPAIR is refused): as a socket not in it. */
	OPT("TCP_REPAIR_QUEUE", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_REPAIR_QUEUE, 1,
	    EPERM, EINVAL, 0, false),
	OPT("TCP_QUEUE_SEQ", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_QUEUE_SEQ, 1,
	    EINVAL, EINVAL, 0, false),
	OPT("TCP_REPAIR_OPTIONS", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_REPAIR_OPTIONS, 1,
	    EINVAL, ENOPROTOOPT, 0, false),
	OPT("TCP_REPAIR_WINDOW", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_REPAIR_WINDOW, 1,
	    EPERM, EINVAL, 0, false),
	OPT_NK(TCP_F(TCP_FASTOPEN_CONNECT, 1, 0, 1), EOPNOTSUPP, 0, 0),
	/* As an unprivileged process: the allowed ones, no module loaded. */
	OPT_BUF("TCP_CONGESTION reno", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_CONGESTION,
		&"reno", 0, 0, STR4('r', 'e', 'n', 'o'), true),
	/* Reads the kernel's default: cubic in the guests, bbr in the world. */
	{ BUF_F("TCP_CONGESTION vegas", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_CONGESTION,
		&"vegas", ENOENT, 0, 0, true), .get_any = true },
	OPT_BUF("TCP_ULP tls", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_ULP, &"tls", ENOENT,
		0, -1, true),		/* none: reads no byte */
	OPT_BUF("TCP_MD5SIG", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_MD5SIG,
		(&(const struct tcp_md5sig){
			.tcpm_addr.ss_family = AF_INET, .tcpm_keylen = 4,
			.tcpm_key = "abcd" }), 0, ENOPROTOOPT, 0, false),
	OPT("UDP_CORK", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_CORK, 1, 0, 0, 1, false),
	OPT("UDP_SEGMENT", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_SEGMENT, 1000, 0, 0, 1000,
	    false),
	OPT("UDP_GRO", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_GRO, 1, 0, 0, 1, false),
	OPT("UDP_CORK/TCP", AF_INET, SOCK_STREAM, IPPROTO_UDP, UDP_CORK, 1, ENOPROTOOPT,
	    EOPNOTSUPP, 0, false),
	OPT_IP(SOCK_STREAM, IP_TOS, 0x10, 0, 0x10),
	OPT_IP(SOCK_DGRAM, IP_TOS, 0x12, 0, 0x12),
	OPT_IP(SOCK_STREAM, IP_TTL, 42, 0, 42),
	OPT_IP(SOCK_DGRAM, IP_TTL, 0, EINVAL, 64),	/* the default ip_default_ttl */
	OPT_IP(SOCK_STREAM, IP_MTU_DISCOVER, IP_PMTUDISC_DONT, 0, IP_PMTUDISC_DONT),
	OPT_IP(SOCK_DGRAM, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 0, IP_PMTUDISC_PROBE),
	OPT_IP(SOCK_DGRAM, IP_RECVTOS, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_RECVTTL, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_BIND_ADDRESS_NO_PORT, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_FREEBIND, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_FREEBIND, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_PKTINFO, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_PKTINFO, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_RECVERR, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_RECVERR, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_HDRINCL, 1, ENOPROTOOPT, 0),	/* raw sockets only */
	/* Read only, and only once a route is chosen. */
	OPT("IP_MTU/SOCK_STREAM", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_MTU, 1500,
	    ENOPROTOOPT, ENOTCONN, 0, false),
	OPT("IP_MTU/SOCK_DGRAM", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_MTU, 1500,
	    ENOPROTOOPT, ENOTCONN, 0, false),
	/* Three NOPs and an END, read back as set. */
	OPT_IP(SOCK_STREAM, IP_OPTIONS, STR4(1, 1, 1, 0), 0, STR4(1, 1, 1, 0)),
	OPT_IP(SOCK_DGRAM, IP_OPTIONS, STR4(1, 1, 1, 0), 0, STR4(1, 1, 1, 0)),
	/* A loose source route through 10.0.0.1: not from the NSM. */
	OPT_NK(BUF_F("IP_OPTIONS LSRR", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_OPTIONS,
		     (&(const unsigned char[8]){ 131, 7, 4, 10, 0, 0, 1, 0 }), 0, 0,
		     STR4(131, 7, 4, 10), false), EPERM, 0, -1),
	OPT_IP(SOCK_DGRAM, IP_RECVFRAGSIZE, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_RECVFRAGSIZE, 1, EINVAL, 0),
	OPT_IP(SOCK_DGRAM, IP_RECVOPTS, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_RETOPTS, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_RECVORIGDSTADDR, 1, 0, 1),
	OPT_IP(SOCK_STREAM, IP_RECVORIGDSTADDR, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_TTL, 5, 0, 5),
	OPT_IP(SOCK_STREAM, IP_MULTICAST_TTL, 5, EINVAL, 1),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_LOOP, 0, 0, 0),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_LOOP, 7, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_ALL, 0, 0, 0),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_ALL, 2, EINVAL, 1),
	OPT_IP(SOCK_DGRAM, IP_MULTICAST_IF, 0, 0, 0),		/* INADDR_ANY: none */
	OPT_IP(SOCK_STREAM, IP_MULTICAST_IF, 0, EINVAL, 0),
	OPT_BUF("IP_MULTICAST_IF not local", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		IP_MULTICAST_IF, (&(const struct in_addr)NOT_LOCAL4), EADDRNOTAVAIL, 0, 0,
		false),
	OPT_BUF("IP_MULTICAST_IF no ifindex", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		IP_MULTICAST_IF, (&(const struct ip_mreqn){ .imr_ifindex = NO_IFINDEX }),
		EADDRNOTAVAIL, 0, 0, false),
	/* lo: an interface of the guest's, not the NSM's. */
	OPT_NK(BUF_F("IP_MULTICAST_IF lo", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		       IP_MULTICAST_IF, (&(const struct ip_mreqn){ .imr_ifindex = 1 }), 0,
		       0, 0, false), EADDRNOTAVAIL, 0, 0),
	OPT_IP(SOCK_DGRAM, IP_UNICAST_IF, 0, 0, 0),
	OPT_IP(SOCK_DGRAM, IP_UNICAST_IF, (int)BE32(NO_IFINDEX), EADDRNOTAVAIL, 0),
	OPT_IP(SOCK_STREAM, IP_UNICAST_IF, (int)BE32(NO_IFINDEX), EADDRNOTAVAIL, 0),
	OPT_NK(IP_F(SOCK_DGRAM, IP_UNICAST_IF, (int)BE32(1), 0, (int)BE32(1)),
	       EADDRNOTAVAIL, 0, 0),
	/*
	 * No group is joined in the NSM: as Linux with no interface that
	 * reaches the group, as the lab's guests have none for IPv4.
	 */
	OPT_BUF("IP_ADD_MEMBERSHIP", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_ADD_MEMBERSHIP,
		(&(const struct ip_mreqn){ .imr_multiaddr = MC4 }), ENODEV, ENOPROTOOPT, 0,
		false),
	OPT_BUF("IP_ADD_MEMBERSHIP no ifindex", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		IP_ADD_MEMBERSHIP, (&(const struct ip_mreqn){ .imr_multiaddr = MC4,
							      .imr_ifindex = NO_IFINDEX }),
		ENODEV, ENOPROTOOPT, 0, false),
	OPT_BUF("IP_ADD_MEMBERSHIP/SOCK_STREAM", AF_INET, SOCK_STREAM, IPPROTO_IP,
		IP_ADD_MEMBERSHIP, (&(const struct ip_mreqn){ .imr_multiaddr = MC4 }),
		EPROTO, ENOPROTOOPT, 0, false),
	OPT_BUF("IP_DROP_MEMBERSHIP", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_DROP_MEMBERSHIP,
		(&(const struct ip_mreqn){ .imr_multiaddr = MC4 }), ENODEV, ENOPROTOOPT, 0,
		false),
	/* An interface named: the socket is not in the group. */
	OPT_BUF("IP_DROP_MEMBERSHIP no ifindex", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		IP_DROP_MEMBERSHIP, (&(const struct ip_mreqn){ .imr_multiaddr = MC4,
							       .imr_ifindex = NO_IFINDEX }),
		EADDRNOTAVAIL, ENOPROTOOPT, 0, false),
	OPT_BUF("IP_DROP_SOURCE_MEMBERSHIP", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		IP_DROP_SOURCE_MEMBERSHIP,
		(&(const struct ip_mreq_source){ .imr_multiaddr = MC4,
						 .imr_sourceaddr = NOT_LOCAL4 }),
		ENODEV, ENOPROTOOPT, 0, false),
	/* Not a group address. */
	OPT_BUF("MCAST_JOIN_GROUP 0.0.0.0", AF_INET, SOCK_DGRAM, IPPROTO_IP,
		MCAST_JOIN_GROUP, (&(const struct group_req){
			.gr_group = { .ss_family = AF_INET } }), EINVAL, ENOPROTOOPT, 0,
		false),
	OPT_IP6(SOCK_STREAM, IPV6_TCLASS, 0x20, 0, 0x20),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVPKTINFO, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVERR, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVTCLASS, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVHOPLIMIT, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_UNICAST_HOPS, 7, 0, 7),
	OPT_IP6(SOCK_STREAM, IPV6_UNICAST_HOPS, 7, 0, 7),
	OPT_IP6(SOCK_STREAM, IPV6_UNICAST_HOPS, 256, EINVAL, 64),
	OPT_IP6(SOCK_STREAM, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, 0, IPV6_PMTUDISC_DO),
	OPT_IP6(SOCK_DGRAM, IPV6_MTU_DISCOVER, 9, EINVAL, IPV6_PMTUDISC_WANT),
	OPT("IPV6_MTU/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_MTU, 1400, 0,
	    ENOTCONN, 0, false),
	OPT("IPV6_MTU 1000/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_MTU, 1000,
	    EINVAL, ENOTCONN, 0, false),
	OPT_IP6(SOCK_DGRAM, IPV6_DONTFRAG, 1, 0, 1),
	OPT_IP6(SOCK_STREAM, IPV6_ADDR_PREFERENCES, IPV6_PREFER_SRC_PUBLIC, 0,
		IPV6_PREFER_SRC_PUBLIC | IPV6_PREFER_SRC_HOME),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVRTHDR, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVDSTOPTS, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVPATHMTU, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVORIGDSTADDR, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_HOPS, 5, 0, 5),
	OPT_IP6(SOCK_STREAM, IPV6_MULTICAST_HOPS, 5, ENOPROTOOPT, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_LOOP, 0, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_LOOP, 2, EINVAL, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_ALL, 0, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_IF, 0, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_MULTICAST_IF, NO_IFINDEX, ENODEV, 0),
	OPT_NK(IP6_F(SOCK_DGRAM, IPV6_MULTICAST_IF, 1, 0, 1), ENODEV, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_UNICAST_IF, 0, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_UNICAST_IF, (int)BE32(NO_IFINDEX), EADDRNOTAVAIL, 0),
	OPT_NK(BUF_F("IPV6_JOIN_GROUP", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6,
		       IPV6_JOIN_GROUP, (&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6 }),
		       0, ENOPROTOOPT, 0, false), ENODEV, ENOPROTOOPT, 0),
	OPT_BUF("IPV6_JOIN_GROUP no ifindex", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6,
		IPV6_JOIN_GROUP, (&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6,
							     .ipv6mr_interface = NO_IFINDEX }),
		ENODEV, ENOPROTOOPT, 0, false),
	OPT_BUF("IPV6_JOIN_GROUP/SOCK_STREAM", AF_INET6, SOCK_STREAM, IPPROTO_IPV6,
		IPV6_JOIN_GROUP, (&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6 }),
		EPROTO, ENOPROTOOPT, 0, false),
	OPT_BUF("IPV6_LEAVE_GROUP", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_LEAVE_GROUP,
		(&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6 }), EADDRNOTAVAIL,
		ENOPROTOOPT, 0, false),
	/* TCP, UDP, IP and IPv6 options of Linux 6.1 not above (issue 12). */
	OPT_TCP(TCP_THIN_DUPACK, 1, 0, 0),		/* does nothing, reads 0 */
	{ OPT_F("TCP_TIMESTAMP", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_TIMESTAMP, 1, EPERM,
		0, 0, false), .get_any = true },	/* a clock */
	OPT("TCP_CC_INFO", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_CC_INFO, 1, ENOPROTOOPT,
	    0, -1, false),			/* cubic tells nothing */
	OPT_BUF("TCP_MD5SIG_EXT", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_MD5SIG_EXT,
		(&(const struct tcp_md5sig){
			.tcpm_addr.ss_family = AF_INET, .tcpm_keylen = 4,
			.tcpm_key = "abcd" }), 0, ENOPROTOOPT, 0, false),
	OPT_BUF("TCP_FASTOPEN_KEY", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_FASTOPEN_KEY,
		(&(const char[16]){ "0123456789abcdef" }), 0, 0, STR4('0', '1', '2', '3'),
		false),
	OPT_TCP(TCP_FASTOPEN_NO_COOKIE, 1, 0, 1),
	OPT_TCP(TCP_INQ, 1, 0, 1),
	OPT_TCP(TCP_INQ, 2, EINVAL, 0),
	OPT("TCP_SAVED_SYN", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_SAVED_SYN, 1,
	    ENOPROTOOPT, 0, -1, false),		/* none: reads no byte */
	OPT("TCP_ZEROCOPY_RECEIVE", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE,
	    1, ENOPROTOOPT, EINVAL, 0, false),
	OPT("UDP_NO_CHECK6_TX", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_NO_CHECK6_TX, 1, 0, 0,
	    1, false),
	OPT("UDP_NO_CHECK6_RX", AF_INET6, SOCK_DGRAM, IPPROTO_UDP, UDP_NO_CHECK6_RX, 1, 0, 0,
	    1, false),
	OPT_NK(OPT_F("UDP_ENCAP", AF_INET, SOCK_DGRAM, IPPROTO_UDP, UDP_ENCAP,
		     UDP_ENCAP_ESPINUDP, 0, 0, UDP_ENCAP_ESPINUDP, true), EPERM, 0, 0),
	OPT_IP(SOCK_STREAM, IP_MINTTL, 5, 0, 5),
	OPT_IP(SOCK_DGRAM, IP_MINTTL, 256, EINVAL, 0),
	OPT_IP(SOCK_DGRAM, IP_RECVERR_RFC4884, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_RECVERR_RFC4884, 2, EINVAL, 0),
	OPT_IP(SOCK_STREAM, IP_LOCAL_PORT_RANGE, 40000 | 50000 << 16, 0, 40000 | 50000 << 16),
	OPT_IP(SOCK_STREAM, IP_PROTOCOL, 1, ENOPROTOOPT, 0),	/* inet_num: no port yet */
	OPT_IP(SOCK_STREAM, IP_PKTOPTIONS, 1, ENOPROTOOPT, -1),	/* no cmsg */
	OPT("IP_PKTOPTIONS/SOCK_DGRAM", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_PKTOPTIONS, 1,
	    ENOPROTOOPT, ENOPROTOOPT, 0, false),
	OPT_IP(SOCK_DGRAM, IP_CHECKSUM, 1, 0, 1),
	OPT_IP(SOCK_DGRAM, IP_PASSSEC, 1, 0, 1),
	OPT("IP_ROUTER_ALERT/SOCK_DGRAM", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_ROUTER_ALERT, 1,
	    EINVAL, ENOPROTOOPT, 0, false),	/* raw sockets only */
	OPT_IP(SOCK_STREAM, IP_NODEFRAG, 1, ENOPROTOOPT, 0),	/* raw sockets only */
	OPT_IP6(SOCK_STREAM, IPV6_MINHOPCOUNT, 5, 0, 5),
	OPT_IP6(SOCK_DGRAM, IPV6_MINHOPCOUNT, 256, EINVAL, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVFRAGSIZE, 1, 0, 1),
	OPT_IP6(SOCK_STREAM, IPV6_FREEBIND, 1, 0, 1),
	OPT_IP6(SOCK_STREAM, IPV6_AUTOFLOWLABEL, 0, 0, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_FLOWINFO_SEND, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVERR_RFC4884, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVERR_RFC4884, 2, EINVAL, 0),
	OPT_IP6(SOCK_DGRAM, IPV6_ROUTER_ALERT_ISOLATE, 1, 0, 1),
	OPT("IPV6_ROUTER_ALERT/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6,
	    IPV6_ROUTER_ALERT, 1, ENOPROTOOPT, ENOPROTOOPT, 0, false),	/* raw only */
	OPT("IPV6_CHECKSUM/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_CHECKSUM,
	    1, ENOPROTOOPT, ENOPROTOOPT, 0, false),	/* raw sockets only */
	OPT("IPV6_NEXTHOP/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_NEXTHOP,
	    1, ENOPROTOOPT, ENOPROTOOPT, 0, false),	/* a control message only */
	OPT("IPV6_HDRINCL/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_HDRINCL,
	    1, ENOPROTOOPT, ENOPROTOOPT, 0, false),	/* raw sockets only */
	OPT("IPV6_PATHMTU/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_PATHMTU,
	    1, ENOPROTOOPT, EINVAL, 0, false),	/* reads a struct ip6_mtuinfo */
	OPT_BUF("IPV6_PKTINFO none", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_PKTINFO,
		(&(const struct in6_pktinfo){}), 0, ENOPROTOOPT, 0, false),
	OPT("IPV6_ADDRFORM/SOCK_STREAM", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_ADDRFORM,
	    AF_INET, ENOTCONN, ENOTCONN, 0, false),
	OPT_IP6(SOCK_STREAM, IPV6_2292PKTOPTIONS, 0, 0, -1),	/* no cmsg */
	OPT("IPV6_2292PKTOPTIONS/SOCK_DGRAM", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6,
	    IPV6_2292PKTOPTIONS, 0, 0, ENOPROTOOPT, 0, false),
	OPT_IP6(SOCK_DGRAM, IPV6_RECVHOPOPTS, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_FLOWINFO, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_2292PKTINFO, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_2292HOPLIMIT, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_2292HOPOPTS, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_2292DSTOPTS, 1, 0, 1),
	OPT_IP6(SOCK_DGRAM, IPV6_2292RTHDR, 1, 0, 1),
	/* Sticky headers: privileged but the routing header, none read. */
	OPT("IPV6_HOPOPTS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_HOPOPTS, 0, EPERM, 0, -1,
	    true),
	OPT("IPV6_DSTOPTS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_DSTOPTS, 0, EPERM, 0, -1,
	    true),
	OPT("IPV6_RTHDRDSTOPTS", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_RTHDRDSTOPTS, 0,
	    EPERM, 0, -1, true),
	/* Four bytes are too short a routing header natively. */
	OPT_NK(OPT_F("IPV6_RTHDR", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_RTHDR, 0, EINVAL,
		     0, -1, true), EPERM, 0, -1),
	OPT_BUF("IPV6_JOIN_ANYCAST", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_JOIN_ANYCAST,
		(&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6 }), EPERM, ENOPROTOOPT,
		0, true),
	OPT_BUF("IPV6_LEAVE_ANYCAST", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_LEAVE_ANYCAST,
		(&(const struct ipv6_mreq){ .ipv6mr_multiaddr = MC6 }), ENOENT, ENOPROTOOPT,
		0, true),
	/* An exclusive label to 2001:db8::1: the NSM's namespace's labels. */
	OPT_NK(BUF_F("IPV6_FLOWLABEL_MGR", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6,
		     IPV6_FLOWLABEL_MGR, (&(const struct in6_flowlabel_req){
			.flr_dst = { { { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } } },
			.flr_label = BE32(0x12345), .flr_action = IPV6_FL_A_GET,
			.flr_share = IPV6_FL_S_EXCL, .flr_flags = IPV6_FL_F_CREATE }),
		     0, EINVAL, 0, true), EPERM, EINVAL, 0),
	/* SOL_SOCKET: the guest's own socket answers. */
	/* Linux 6.1's TCP has no peek offset; NetKernel's UDP none yet. */
	OPT("SO_PEEK_OFF", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PEEK_OFF, 5, EOPNOTSUPP,
	    EOPNOTSUPP, 0, false),
	OPT_NK(OPT_F("SO_PEEK_OFF/UDP", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_PEEK_OFF, 5, 0, 0,
		     5, false), EOPNOTSUPP, EOPNOTSUPP, 0),
	OPT("SO_BUSY_POLL", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BUSY_POLL, 10, 0, 0, 10,
	    false),
	OPT("SO_PREFER_BUSY_POLL", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PREFER_BUSY_POLL, 1,
	    0, 0, 1, false),
	OPT("SO_BUSY_POLL_BUDGET", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BUSY_POLL_BUDGET, 8,
	    0, ENOPROTOOPT, 0, false),
	OPT("SO_INCOMING_CPU", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_INCOMING_CPU, 1, 0, 0, 1,
	    false),
	OPT_NK(OPT_F("SO_ZEROCOPY", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_ZEROCOPY, 1, 0, 0, 1,
		     false), EOPNOTSUPP, 0, 0),
	OPT_BUF("SO_TXTIME", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_TXTIME,
		(&(const struct sock_txtime){ .clockid = CLOCK_MONOTONIC }), 0, 0,
		CLOCK_MONOTONIC, false),
	OPT("SO_SNDLOWAT", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_SNDLOWAT, 5, ENOPROTOOPT, 0,
	    1, false),
	OPT("SO_PASSCRED", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PASSCRED, 1, 0, 0, 1, false),
	OPT("SO_PEERCRED", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PEERCRED, 1, ENOPROTOOPT, 0,
	    0, false),			/* pid 0: no peer */
	OPT("SO_PEERGROUPS", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PEERGROUPS, 1,
	    ENOPROTOOPT, ENODATA, 0, false),
	OPT("SO_PEERSEC", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PEERSEC, 1, ENOPROTOOPT,
	    ENOPROTOOPT, 0, false),
	OPT("SO_PASSSEC", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PASSSEC, 1, 0, 0, 1, false),
	OPT("SO_RCVMARK", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_RCVMARK, 1, 0, 0, 1, false),
	OPT("SO_NETNS_COOKIE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_NETNS_COOKIE, 1,
	    ENOPROTOOPT, EINVAL, 0, false),	/* a u64 */
	OPT("SO_COOKIE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_COOKIE, 1, ENOPROTOOPT, EINVAL,
	    0, false),			/* a u64 */
	OPT("SO_BUF_LOCK", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BUF_LOCK, 3, 0, 0, 3, false),
	OPT("SO_BUF_LOCK 4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BUF_LOCK, 4, EINVAL, 0, 0,
	    false),
	OPT("SO_RESERVE_MEM", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_RESERVE_MEM, 4096,
	    EOPNOTSUPP, 0, 0, false),		/* no memory cgroup */
	OPT("SO_TXREHASH", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_TXREHASH, 0, 0, 0, 0, false),
	OPT("SO_INCOMING_NAPI_ID", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_INCOMING_NAPI_ID, 1,
	    ENOPROTOOPT, 0, 0, false),
	OPT("SO_PROTOCOL", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PROTOCOL, 1, ENOPROTOOPT, 0,
	    IPPROTO_TCP, false),
	OPT("SO_PROTOCOL/UDP", AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_PROTOCOL, 1, ENOPROTOOPT,
	    0, IPPROTO_UDP, false),
	OPT("SO_TYPE", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_TYPE, 1, ENOPROTOOPT, 0,
	    SOCK_DGRAM, false),
	OPT("SO_DOMAIN", AF_INET6, SOCK_STREAM, SOL_SOCKET, SO_DOMAIN, 1, ENOPROTOOPT, 0,
	    AF_INET6, false),
	OPT("SO_ACCEPTCONN", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_ACCEPTCONN, 1, ENOPROTOOPT,
	    0, 0, false),
	OPT("SO_PEERNAME", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PEERNAME, 1, ENOPROTOOPT,
	    ENOTCONN, 0, false),
	OPT("SO_MEMINFO", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_MEMINFO, 1, ENOPROTOOPT, 0, 0,
	    false),			/* SK_MEMINFO_RMEM_ALLOC */
	OPT("SO_SELECT_ERR_QUEUE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_SELECT_ERR_QUEUE, 1,
	    0, 0, 1, false),
	OPT("SO_WIFI_STATUS", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_WIFI_STATUS, 1, 0, 0, 1,
	    false),
	OPT("SO_NOFCS", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_NOFCS, 1, 0, 0, 1, false),
	OPT("SO_LOCK_FILTER", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_LOCK_FILTER, 1, 0, 0, 1,
	    false),
	OPT("SO_DETACH_FILTER", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_DETACH_FILTER, 0, ENOENT,
	    ENOPROTOOPT, 0, false),
	OPT("SO_BPF_EXTENSIONS", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BPF_EXTENSIONS, 1,
	    ENOPROTOOPT, 0, 64, false),		/* SKF_AD_MAX */
	OPT("SO_ATTACH_BPF", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_ATTACH_BPF, -1, EBADF,
	    ENOPROTOOPT, 0, false),
	OPT("SO_ATTACH_REUSEPORT_CBPF", AF_INET, SOCK_STREAM, SOL_SOCKET,
	    SO_ATTACH_REUSEPORT_CBPF, 1, EINVAL, ENOPROTOOPT, 0, false),
	OPT("SO_ATTACH_REUSEPORT_EBPF", AF_INET, SOCK_STREAM, SOL_SOCKET,
	    SO_ATTACH_REUSEPORT_EBPF, -1, EBADF, ENOPROTOOPT, 0, false),
	OPT("SO_DETACH_REUSEPORT_BPF", AF_INET, SOCK_STREAM, SOL_SOCKET,
	    SO_DETACH_REUSEPORT_BPF, 0, EINVAL, ENOPROTOOPT, 0, false),
	OPT("SO_CNX_ADVICE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_CNX_ADVICE, 1, 0,
	    ENOPROTOOPT, 0, false),
	OPT("SO_MAX_PACING_RATE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_MAX_PACING_RATE, 1000,
	    0, 0, 1000, false),
	/* The guest's privileges count here: it is the guest's socket. */
	OPT("SO_PRIORITY", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PRIORITY, 5, 0, 0, 5, false),
	OPT("SO_MARK", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_MARK, 1, 0, 0, 1, false),
	OPT("SO_TIMESTAMP", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_TIMESTAMP, 1, 0, 0, 1, false),
	OPT("SO_TIMESTAMPNS", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_TIMESTAMPNS, 1, 0, 0, 1,
	    false),
	OPT("SO_TIMESTAMPING", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_TIMESTAMPING,
	    SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE, 0, 0,
	    SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE, false),
	OPT("SO_DEBUG", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_DEBUG, 1, 0, 0, 1, false),
	OPT("SO_SNDBUFFORCE", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_SNDBUFFORCE, 4096, 0,
	    ENOPROTOOPT, 0, false),
	OPT("SO_NO_CHECK", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_NO_CHECK, 1, 0, 0, 1, false),
	OPT("SO_BSDCOMPAT", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_BSDCOMPAT, 1, 0, 0, 0, false),
	OPT("SO_RXQ_OVFL", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_RXQ_OVFL, 1, 0, 0, 1, false),
	OPT("SO_BINDTOIFINDEX", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BINDTOIFINDEX, 0, 0, 0,
	    0, false),
	OPT("SO_SECURITY_AUTHENTICATION", AF_INET, SOCK_STREAM, SOL_SOCKET,
	    SO_SECURITY_AUTHENTICATION, 1, ENOPROTOOPT, ENOPROTOOPT, 0, false),
	OPT("TCP_CORK/UDP", AF_INET, SOCK_DGRAM, IPPROTO_TCP, TCP_CORK, 1,
	    ENOPROTOOPT, EOPNOTSUPP, 0, false),
	OPT("IPV6_TCLASS/AF_INET", AF_INET, SOCK_STREAM, IPPROTO_IPV6, IPV6_TCLASS, 1,
	    ENOPROTOOPT, EOPNOTSUPP, 0, false),
	OPT("TCP_REPAIR", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_REPAIR, 1, EPERM, 0, 0,
	    true),
	OPT("IP_TRANSPARENT", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_TRANSPARENT, 1, EPERM,
	    0, 0, true),
	OPT("IP_TRANSPARENT/UDP", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_TRANSPARENT, 1,
	    EPERM, 0, 0, true),
	OPT("IPV6_TRANSPARENT", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_TRANSPARENT, 1,
	    EPERM, 0, 0, true),
	OPT("IP_IPSEC_POLICY", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_IPSEC_POLICY, 1, EPERM,
	    ENOPROTOOPT, 0, true),
	OPT("IP_XFRM_POLICY/UDP", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_XFRM_POLICY, 1,
	    EPERM, ENOPROTOOPT, 0, true),
	OPT("IPV6_IPSEC_POLICY", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_IPSEC_POLICY, 1,
	    EPERM, ENOPROTOOPT, 0, true),
	OPT("IPV6_XFRM_POLICY/UDP", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_XFRM_POLICY,
	    1, EPERM, ENOPROTOOPT, 0, true),
};

static void opt_run(const struct opt_case *oc, struct opt_res *r)
{
	int fd = socket(oc->family, oc->type, 0), v = -1;
	socklen_t len = sizeof(v);

	r->get = -1;
	if (fd < 0) {
		r->set_err = r->get_err = -errno;
		return;
	}
	if (oc->buf)
		r->set_err = setsockopt(fd, oc->level, oc->name, oc->buf, oc->buflen) ?
			     errno : 0;
	else
		r->set_err = setsockopt(fd, oc->level, oc->name, &oc->val,
					sizeof(oc->val)) ? errno : 0;
	r->get_err = getsockopt(fd, oc->level, oc->name, &v, &len) ? errno : 0;
	r->get = v;
	close(fd);
}

/* opt_run() in a child as @uid. */
static void opt_run_as(uid_t uid, const struct opt_case *oc, struct opt_res *r)
{
	int pfd[2], status;
	pid_t pid;

	CHECK_OK(pipe(pfd), "pipe");
	pid = fork();
	CHECK_OK(pid, "fork");
	if (!pid) {
		struct opt_res cr = { -200, -200, -1 };

		close(pfd[0]);
		if (!setgroups(0, NULL) && !setgid(uid) && !setuid(uid))
			opt_run(oc, &cr);
		_exit(write(pfd[1], &cr, sizeof(cr)) != sizeof(cr));
	}
	close(pfd[1]);
	CHECK(read(pfd[0], r, sizeof(*r)) == sizeof(*r), "%s: no result from the child",
	      oc->what);
	close(pfd[0]);
	CHECK_OK(waitpid(pid, &status, 0), "waitpid");
}

static const char *err_name(int e)
{
	return e > 0 ? strerrorname_np(e) : e ? "(socket failed)" : "success";
}

/*
 * Whether @r is what @oc says (on NetKernel, oc->nk where it differs on
 * purpose); if not, one line about it in @buf.
 */
static bool opt_same(const struct opt_case *oc, const struct opt_res *r, const char *as,
		     char *buf, size_t size)
{
	struct opt_res want = { oc->set_err, oc->get_err, oc->get };

	if (oc->nk && cur->netkernel)
		want = *oc->nk;
	if (r->set_err == want.set_err && r->get_err == want.get_err &&
	    (want.get_err || oc->get_any || r->get == want.get))
		return true;
	snprintf(buf, size, "%s%s: set %d: %s, get: %s %d; %s: %s, %s %d", oc->what, as,
		 oc->val, err_name(r->set_err), err_name(r->get_err), r->get,
		 oc->nk && cur->netkernel ? "netkernel" : "native",
		 err_name(want.set_err), err_name(want.get_err), want.get);
	return false;
}

static void sockopt_table(void)
{
	char first[256] = "", line[256];
	struct opt_res r;
	struct utsname u;
	unsigned int i, bad = 0, n = 0;

	/*
	 * The table holds Linux 6.1's answers, the guests' kernel: another
	 * (the world's, when the client runs there) answers some otherwise.
	 */
	if (uname(&u) || strncmp(u.release, "6.1.", 4))
		skip_case("the table holds Linux 6.1's answers, this kernel is %s", u.release);
	for (i = 0; i < ARRAY_SIZE(opt_cases); i++) {
		const struct opt_case *oc = &opt_cases[i];

		if (oc->unpriv && geteuid())
			continue;
		if (oc->unpriv)
			opt_run_as(65534, oc, &r);
		else
			opt_run(oc, &r);
		n++;
		if (!opt_same(oc, &r, oc->unpriv ? " as uid 65534" : "", line, sizeof(line))) {
			printf("# %s\n", line);
			bad++;
			if (!first[0])
				snprintf(first, sizeof(first), "%s", line);
		}
		if (!oc->unpriv || !cur->netkernel)
			continue;
		opt_run(oc, &r);
		n++;
		if (!opt_same(oc, &r, " as root", line, sizeof(line))) {
			printf("# %s\n", line);
			bad++;
			if (!first[0])
				snprintf(first, sizeof(first), "%s", line);
		}
	}
	CHECK(!bad, "%u of %u option checks differ from native; first: %s", bad, n, first);
}

/* ---------------------------------------------------- poll, epoll, select */

static void poll_events_client(void)
{
	short rev;
	char ch;
	int fd = pair_open();

	rev = wait_ev(fd, POLLOUT);
	CHECK(rev == POLLOUT, "fresh connection: revents %#x, want POLLOUT", rev);
	CHECK(!poll_now(fd, POLLIN | POLLRDHUP), "fresh connection readable");
	ctl_send("SEND");
	rev = wait_ev(fd, POLLIN | POLLRDHUP);
	CHECK(rev == POLLIN, "data: revents %#x, want POLLIN", rev);
	CHECK_RET(recv(fd, &ch, 1, 0), 1, "recv");
	ctl_send("RESET");
	rev = wait_mask(fd, POLLIN | POLLOUT, POLLERR | POLLHUP);
	CHECK(rev & POLLERR, "after a reset: revents %#x", rev);
	CHECK_ERR(recv(fd, &ch, 1, 0), ECONNRESET, "recv after the reset");
	xclose(fd);
}

static void poll_events_server(void)
{
	int fd = pair_open();

	ctl_expect("SEND");
	send_str(fd, "e");
	ctl_expect("RESET");
	set_linger0(fd);
	xclose(fd);
}

static uint32_t epoll_once(int ep, int timeout_ms)
{
	struct epoll_event ev;
	int n;

	do
		n = epoll_wait(ep, &ev, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	CHECK_OK(n, "epoll_wait");
	return n ? ev.events : 0;
}

static int epoll_for(int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	CHECK_OK(ep, "epoll_create1");
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "EPOLL_CTL_ADD");
	return ep;
}

/* EPOLLOUT, EPOLLIN, EPOLLRDHUP (peer's SHUT_WR), EPOLLHUP (both). */
static void epoll_events_client(void)
{
	uint32_t ev;
	char ch;
	int fd = pair_open();
	int ep = epoll_for(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP);

	ev = epoll_once(ep, io_timeout_ms);
	CHECK(ev == EPOLLOUT, "fresh connection: events %#x, want EPOLLOUT", ev);
	ctl_send("SEND");
	wait_ev(fd, POLLIN);
	ev = epoll_once(ep, 0);
	CHECK(ev == (EPOLLIN | EPOLLOUT), "data: events %#x", ev);
	CHECK_RET(recv(fd, &ch, 1, 0), 1, "recv");
	ctl_send("SHUT");
	wait_ev(fd, POLLRDHUP);
	ev = epoll_once(ep, 0);
	CHECK(ev == (EPOLLIN | EPOLLOUT | EPOLLRDHUP), "peer's SHUT_WR: events %#x", ev);
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	wait_mask(fd, POLLIN, POLLHUP);
	ev = epoll_once(ep, 0);
	CHECK((ev & EPOLLHUP) && (ev & EPOLLRDHUP) && !(ev & EPOLLERR),
	      "both shut down: events %#x", ev);
	xclose(ep);
	xclose(fd);
}

static void epoll_events_server(void)
{
	int fd = pair_open();

	ctl_expect("SEND");
	send_str(fd, "e");
	ctl_expect("SHUT");
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	expect_eof(fd);
	xclose(fd);
}

static void epoll_err_client(void)
{
	uint32_t ev;
	int fd = pair_open();
	int ep = epoll_for(fd, EPOLLIN | EPOLLRDHUP);

	CHECK(!epoll_once(ep, 0), "fresh connection has events");
	ctl_send("RESET");
	ev = epoll_once(ep, io_timeout_ms);
	CHECK(ev, "no epoll event after a reset within %d ms", io_timeout_ms);
	wait_mask(fd, POLLIN, POLLERR | POLLHUP);
	ev = epoll_once(ep, 0);
	CHECK((ev & EPOLLERR) && (ev & EPOLLHUP), "after a reset: events %#x", ev);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ERROR) == ECONNRESET,
	      "SO_ERROR is not ECONNRESET");
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR not cleared");
	xclose(ep);
	xclose(fd);
}

static void epoll_err_server(void)
{
	int fd = pair_open();

	ctl_expect("RESET");
	set_linger0(fd);
	xclose(fd);
}

/* Level and edge triggered EPOLLIN, edge triggered EPOLLOUT. */
static void epoll_lt_et_client(void)
{
	struct pstream ps;
	uint64_t total;
	char buf[16];
	int fd = pair_open();
	int lt = epoll_for(fd, EPOLLIN);
	int et = epoll_for(fd, EPOLLIN | EPOLLET);
	int eo;

	ctl_send("SEND");
	CHECK(epoll_once(lt, io_timeout_ms) == EPOLLIN, "level: no EPOLLIN");
	wait_ioctl(fd, FIONREAD, "FIONREAD", 10);
	CHECK(epoll_once(lt, 0) == EPOLLIN, "level: EPOLLIN not repeated");
	CHECK(epoll_once(et, 0) == EPOLLIN, "edge: no EPOLLIN");
	CHECK(!epoll_once(et, 0), "edge: EPOLLIN repeated without new data");
	CHECK_RET(recv(fd, buf, 5, 0), 5, "recv");
	CHECK(epoll_once(lt, 0) == EPOLLIN, "level: no EPOLLIN with 5 bytes left");
	CHECK(!epoll_once(et, 0), "edge: EPOLLIN after a partial read");
	ctl_send("MORE");
	CHECK(epoll_once(et, io_timeout_ms) == EPOLLIN, "edge: no EPOLLIN on new data");
	CHECK(!epoll_once(et, 0), "edge: EPOLLIN repeated");
	wait_ioctl(fd, FIONREAD, "FIONREAD", 10);
	CHECK_RET(recv(fd, buf, 16, 0), 10, "recv");
	CHECK(!epoll_once(lt, 0), "level: EPOLLIN with nothing to read");

	eo = epoll_for(fd, EPOLLOUT | EPOLLET);
	CHECK(epoll_once(eo, io_timeout_ms) == EPOLLOUT, "edge: no EPOLLOUT");
	CHECK(!epoll_once(eo, 0), "edge: EPOLLOUT repeated");
	ps_init(&ps, 81);
	total = fill_sndbuf(fd, &ps);
	CHECK(!epoll_once(eo, 0), "edge: EPOLLOUT with a full buffer");
	ctl_send("DRAIN %llu", (unsigned long long)total);
	CHECK(epoll_once(eo, io_timeout_ms) == EPOLLOUT, "edge: no EPOLLOUT after the drain");
	ctl_expect("DRAINED");
	xclose(eo);
	xclose(et);
	xclose(lt);
	xclose(fd);
}

static void epoll_lt_et_server(void)
{
	struct pstream ps;
	int fd = pair_open();

	ctl_expect("SEND");
	send_str(fd, "0123456789");
	ctl_expect("MORE");
	send_str(fd, "abcde");
	ps_init(&ps, 81);
	ps_recv(fd, &ps, ctl_recv_long("DRAIN"));
	ctl_send("DRAINED");
	xclose(fd);
}

/* NCONN connections in one epoll set: data and EOF on each, once. */
static void epoll_many_client(void)
{
	struct epoll_event evs[NCONN];
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	int fds[NCONN], data[NCONN], eofs[NCONN];
	int i, n, k, ep, ndata = 0, neof = 0;
	unsigned char ch;
	ssize_t ret;

	ep = epoll_create1(0);
	CHECK_OK(ep, "epoll_create1");
	for (i = 0; i < NCONN; i++) {
		fds[i] = tcp_connect(&sin);
		ch = i;
		send_all(fds[i], &ch, 1);
		evs[0] = (struct epoll_event){ .events = EPOLLIN | EPOLLRDHUP,
					       .data.u32 = i };
		CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &evs[0]), "EPOLL_CTL_ADD");
		data[i] = 0;
		eofs[i] = 0;
	}
	step = "epoll";
	while (neof < NCONN) {
		n = epoll_wait(ep, evs, NCONN, io_timeout_ms);
		CHECK(n > 0, "epoll_wait: %d (%d with data, %d at EOF): %m", n, ndata, neof);
		for (k = 0; k < n; k++) {
			i = evs[k].data.u32;
			CHECK(i < NCONN, "bad epoll data %d", i);
			ret = recv(fds[i], &ch, 1, MSG_DONTWAIT);
			if (ret == 1) {
				CHECK(ch == (unsigned char)(i ^ 0x5a) && !data[i],
				      "connection %d: byte %#x (%d before)", i, ch, data[i]);
				data[i]++;
				ndata++;
				if (ndata == NCONN)
					ctl_send("CLOSE");
			} else if (ret == 0) {
				CHECK(data[i] && !eofs[i], "connection %d: EOF, data %d",
				      i, data[i]);
				CHECK(evs[k].events & EPOLLRDHUP, "EOF without EPOLLRDHUP");
				eofs[i] = 1;
				neof++;
				CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL),
					 "EPOLL_CTL_DEL");
			} else {
				CHECK(errno == EAGAIN, "connection %d: recv: %m", i);
			}
		}
	}
	for (i = 0; i < NCONN; i++)
		xclose(fds[i]);
	xclose(ep);
}

static void epoll_many_server(void)
{
	int fds[NCONN], i, idx;
	unsigned char ch;
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);

	ctl_send("PORT %u", port);
	for (i = 0; i < NCONN; i++)
		fds[i] = -1;
	for (i = 0; i < NCONN; i++) {
		static char what[48];
		int fd;

		snprintf(what, sizeof(what), "accept %d of %d", i + 1, NCONN);
		step = what;
		wait_ev(lfd, POLLIN);
		fd = accept(lfd, NULL, NULL);
		CHECK(fd >= 0, "accept: %m");
		recv_all(fd, &ch, 1);
		idx = ch;
		CHECK(idx < NCONN && fds[idx] < 0, "connection index %d", idx);
		fds[idx] = fd;
	}
	for (i = NCONN - 1; i >= 0; i--) {	/* the other order */
		ch = i ^ 0x5a;
		send_all(fds[i], &ch, 1);
	}
	ctl_expect("CLOSE");
	for (i = 0; i < NCONN; i += 2)
		xclose(fds[i]);
	for (i = 1; i < NCONN; i += 2)
		xclose(fds[i]);
	xclose(lfd);
}

static void select_client(void)
{
	struct timeval tv;
	fd_set rd, wr;
	long long t0;
	char ch;
	int fd = pair_open();

	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_SET(fd, &rd);
	FD_SET(fd, &wr);
	tv = (struct timeval){ 5, 0 };
	CHECK_RET(select(fd + 1, &rd, &wr, NULL, &tv), 1, "select read+write");
	CHECK(FD_ISSET(fd, &wr) && !FD_ISSET(fd, &rd), "select: not just writable");
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	tv = (struct timeval){ 0, 200000 };
	t0 = now_ms();
	CHECK_RET(select(fd + 1, &rd, NULL, NULL, &tv), 0, "select read, no data");
	CHECK(now_ms() - t0 >= 150, "select returned early");
	ctl_send("SEND");
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	tv = (struct timeval){ io_timeout_ms / 1000, 0 };
	CHECK_RET(select(fd + 1, &rd, NULL, NULL, &tv), 1, "select read, data sent");
	CHECK(FD_ISSET(fd, &rd), "select: not readable");
	CHECK_RET(recv(fd, &ch, 1, 0), 1, "recv");
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	tv = (struct timeval){ io_timeout_ms / 1000, 0 };
	CHECK_RET(select(fd + 1, &rd, NULL, NULL, &tv), 1, "select read, peer closed");
	CHECK_RET(recv(fd, &ch, 1, 0), 0, "recv at EOF");
	xclose(fd);
}

static void select_server(void)
{
	int fd = pair_open();

	ctl_expect("SEND");
	send_str(fd, "s");
	sleep_ms(100);
	xclose(fd);
}

/* ------------------------------------------------------------------ UDP */

static ssize_t udp_recv(int fd, void *buf, size_t len, int flags, struct sockaddr_in *from)
{
	socklen_t alen = sizeof(*from);

	wait_ev(fd, POLLIN);
	return recvfrom(fd, buf, len, flags, (struct sockaddr *)from, from ? &alen : NULL);
}

static const int udp_sizes[] = { 1, 100, 1400, 0, 3000 };
#define NSIZES	((int)ARRAY_SIZE(udp_sizes))

static void udp_sendto_client(void)
{
	struct sockaddr_in srv, from;
	static uint8_t buf[4096];
	struct pstream ps;
	uint16_t port = 0;
	int i, fd;

	srv = peer_port(ctl_recv_long("PORT"));
	fd = bound_socket(SOCK_DGRAM, &port);
	ctl_send("SRC %u", port);
	for (i = 0; i < NSIZES; i++) {
		ps_init(&ps, 90 + i);
		ps_fill(&ps, buf, udp_sizes[i]);
		CHECK_RET(sendto(fd, buf, udp_sizes[i], 0, (struct sockaddr *)&srv,
				 sizeof(srv)), udp_sizes[i], "sendto");
		sleep_ms(5);
	}
	CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, &from), 4, "recvfrom the reply");
	CHECK(!memcmp(buf, "pong", 4), "wrong reply");
	CHECK(same_addr(&from, &srv), "reply from %s, expected %s", addr_str(&from),
	      addr_str(&srv));
	xclose(fd);
}

static void udp_sendto_server(void)
{
	static uint8_t buf[4096];
	struct sockaddr_in from;
	struct pstream ps;
	uint16_t port = 0;
	int i, src, fd;

	fd = bound_socket(SOCK_DGRAM, &port);
	ctl_send("PORT %u", port);
	src = ctl_recv_long("SRC");
	for (i = 0; i < NSIZES; i++) {
		CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, &from), udp_sizes[i],
			  "recvfrom: datagram size");
		ps_init(&ps, 90 + i);
		ps_check(&ps, buf, udp_sizes[i]);
		CHECK(from.sin_family == AF_INET && ntohs(from.sin_port) == src &&
		      from.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
		      "datagram from %s, expected port %d of %s", addr_str(&from), src,
		      addr_str(&cur->peer));
	}
	CHECK_RET(sendto(fd, "pong", 4, 0, (struct sockaddr *)&from, sizeof(from)), 4,
		  "sendto");
	xclose(fd);
}

/* Connected UDP: send/recv, and datagrams from other ports filtered. */
static void udp_connected_client(void)
{
	struct sockaddr_in srv, sin;
	char buf[64];
	int i, fd;

	srv = peer_port(ctl_recv_long("PORT"));
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(connect(fd, (struct sockaddr *)&srv, sizeof(srv)), "connect");
	sin = sock_name4(fd, true);
	CHECK(same_addr(&sin, &srv), "getpeername %s", addr_str(&sin));
	sin = sock_name4(fd, false);
	CHECK(sin.sin_port, "connected UDP socket not bound");
	ctl_send("SRC %u", ntohs(sin.sin_port));
	for (i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf), "msg%d", i);
		CHECK_RET(send(fd, buf, 4, 0), 4, "send");
	}
	ctl_send("SENT");
	for (i = 0; i < 3; i++) {
		CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, NULL), 4, "recv");
		CHECK(!memcmp(buf, "echo", 4), "received \"%.4s\", a datagram from another port?",
		      buf);
	}
	sleep_ms(100);
	CHECK_ERR(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN, "recv, nothing more");
	xclose(fd);
}

static void udp_connected_server(void)
{
	struct sockaddr_in to;
	uint16_t port = 0, other = 0;
	char buf[64];
	int i, fd, fd2;

	fd = bound_socket(SOCK_DGRAM, &port);
	fd2 = bound_socket(SOCK_DGRAM, &other);
	ctl_send("PORT %u", port);
	to = peer_port(ctl_recv_long("SRC"));
	ctl_expect("SENT");
	for (i = 0; i < 3; i++) {
		CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, NULL), 4, "recv");
		CHECK_RET(sendto(fd2, "other", 5, 0, (struct sockaddr *)&to, sizeof(to)), 5,
			  "sendto from another port");
		CHECK_RET(sendto(fd, "echo", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4,
			  "sendto");
	}
	xclose(fd2);
	xclose(fd);
}

/* Datagram boundaries, MSG_PEEK and MSG_TRUNC on the receiving side. */
static void udp_trunc_client(void)
{
	struct sockaddr_in sin;
	uint8_t buf[300], want[300];
	struct pstream ps;
	struct msghdr msg;
	struct iovec iov;
	uint16_t port = 0;
	int i, fd;

	fd = bound_socket(SOCK_DGRAM, &port);
	ctl_send("PORT %u", port);
	ctl_expect("SENT");
	for (i = 0; i < NSIZES; i++) {
		CHECK_RET(udp_recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_TRUNC, &sin),
			  udp_sizes[i], "recv MSG_PEEK|MSG_TRUNC: datagram size");
		CHECK(sin.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
		      "datagram from %s", addr_str(&sin));
		ps_init(&ps, 100 + i);
		ps_fill(&ps, want, udp_sizes[i] < 50 ? udp_sizes[i] : 50);
		if (i % 2) {
			CHECK_RET(recv(fd, buf, 50, MSG_TRUNC), udp_sizes[i],
				  "recv MSG_TRUNC into 50 bytes");
		} else {
			iov = (struct iovec){ buf, 50 };
			memset(&msg, 0, sizeof(msg));
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			CHECK_RET(recvmsg(fd, &msg, 0), udp_sizes[i] < 50 ? udp_sizes[i] : 50,
				  "recvmsg into 50 bytes");
			CHECK(!!(msg.msg_flags & MSG_TRUNC) == (udp_sizes[i] > 50),
			      "recvmsg of %d bytes: flags %#x", udp_sizes[i], msg.msg_flags);
		}
		CHECK(!memcmp(buf, want, udp_sizes[i] < 50 ? udp_sizes[i] : 50),
		      "datagram %d: wrong data", i);
	}
	CHECK_ERR(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN, "recv, nothing more");
	xclose(fd);
}

static void udp_trunc_server(void)
{
	struct sockaddr_in to;
	static uint8_t buf[4096];
	struct pstream ps;
	int i, fd;

	to = peer_port(ctl_recv_long("PORT"));
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(connect(fd, (struct sockaddr *)&to, sizeof(to)), "connect");
	for (i = 0; i < NSIZES; i++) {
		ps_init(&ps, 100 + i);
		ps_fill(&ps, buf, udp_sizes[i]);
		CHECK_RET(send(fd, buf, udp_sizes[i], 0), udp_sizes[i], "send");
	}
	sleep_ms(200);
	ctl_send("SENT");
	xclose(fd);
}

/*
 * A datagram the receiver cannot hold does not hold up the ones after it:
 * Linux queues a datagram when the socket's queue is within its rcvbuf
 * and drops it otherwise (SO_RXQ_OVFL), and the next ones still come.
 * The server sends 30000 bytes, then "s1", "s2", "s3".  On a NetKernel
 * guest the socket is made with the window budget spent (window_total=1
 * for the socket() call, root only), so it announces the NSM only
 * NK_WINDOW_MIN (16 KiB) of credit: the NSM drops the large datagram,
 * which can never fit, and counts it (protocol.rst, "Flow control").
 * Natively (and on the guest's loopback) it arrives first.
 */
#define NK_WINDOW_TOTAL "/sys/module/af_netkernel/parameters/window_total"
#define UDP_BIG		30000

/* Write @val to af_netkernel's window_total; the old value to @old. */
static bool window_total_set(const char *val, char *old, size_t size)
{
	FILE *f = fopen(NK_WINDOW_TOTAL, "r+");
	bool ok;

	if (!f)
		return false;
	ok = !old || fgets(old, (int)size, f);
	ok = ok && !fseek(f, 0, SEEK_SET) && fputs(val, f) >= 0;
	return !fclose(f) && ok;
}

static void udp_beyond_credit_client(void)
{
	struct sockaddr_in sin = sin4((struct in_addr){ INADDR_ANY }, 0);
	static uint8_t buf[UDP_BIG + 1];
	char old[32] = "";
	bool spent;
	ssize_t n;
	int i, fd;

	spent = window_total_set("1", old, sizeof(old));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (spent && !window_total_set(old, NULL, 0))
		CHECK(0, "window_total not restored to %s", old);
	CHECK(fd >= 0, "socket: %s", strerror(errno));
	CHECK_OK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), "bind");
	ctl_send("PORT %u", ntohs(sock_name4(fd, false).sin_port));
	ctl_expect("SENT");
	step = "the datagrams after the large one";
	n = udp_recv(fd, buf, sizeof(buf), 0, NULL);
	if (n == UDP_BIG)
		n = udp_recv(fd, buf, sizeof(buf), 0, NULL);
	for (i = 1; i <= 3; i++) {
		CHECK(n == 2 && buf[0] == 's' && buf[1] == '0' + i,
		      "datagram %d: %zd bytes \"%.2s\", expected \"s%d\"",
		      i, n, n > 0 ? (char *)buf : "", i);
		if (i < 3)
			n = udp_recv(fd, buf, sizeof(buf), 0, NULL);
	}
	CHECK_ERR(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN, "recv, nothing more");
	xclose(fd);
}

static void udp_beyond_credit_server(void)
{
	static uint8_t buf[UDP_BIG];
	struct sockaddr_in to;
	int fd;

	to = peer_port(ctl_recv_long("PORT"));
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(connect(fd, (struct sockaddr *)&to, sizeof(to)), "connect");
	memset(buf, 'b', sizeof(buf));
	CHECK_RET(send(fd, buf, sizeof(buf), 0), UDP_BIG, "send the large datagram");
	sleep_ms(50);
	CHECK_RET(send(fd, "s1", 2, 0), 2, "send");
	CHECK_RET(send(fd, "s2", 2, 0), 2, "send");
	CHECK_RET(send(fd, "s3", 2, 0), 2, "send");
	sleep_ms(200);
	ctl_send("SENT");
	xclose(fd);
}

/*
 * connect(AF_UNSPEC) dissolves a UDP association: no peer, send() without
 * an address fails with EDESTADDRREQ, and datagrams from anyone arrive.
 */
static void udp_connect_unspec_client(void)
{
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	struct sockaddr_in srv, from;
	socklen_t alen = sizeof(from);
	uint16_t other;
	char buf[64];
	int fd;

	srv = peer_port(ctl_recv_long("PORT"));
	other = ctl_recv_long("OTHER");
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(connect(fd, (struct sockaddr *)&srv, sizeof(srv)), "connect");
	CHECK_OK(connect(fd, &un, sizeof(un)), "connect(AF_UNSPEC) of a connected socket");
	CHECK_ERR(getpeername(fd, (struct sockaddr *)&from, &alen), ENOTCONN,
		  "getpeername after connect(AF_UNSPEC)");
	CHECK_ERR(send(fd, "x", 1, 0), EDESTADDRREQ, "send without an address");
	CHECK_OK(connect(fd, &un, sizeof(un)), "connect(AF_UNSPEC) of an unconnected socket");
	CHECK_RET(sendto(fd, "ping", 4, 0, (struct sockaddr *)&srv, sizeof(srv)), 4, "sendto");
	CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, &from), 5, "recvfrom another port");
	CHECK(!memcmp(buf, "other", 5) && ntohs(from.sin_port) == other,
	      "received \"%.5s\" from %s, expected \"other\" from port %u", buf,
	      addr_str(&from), other);
	xclose(fd);
}

static void udp_connect_unspec_server(void)
{
	uint16_t port = 0, other = 0;
	struct sockaddr_in from;
	char buf[64];
	int fd, fd2;

	fd = bound_socket(SOCK_DGRAM, &port);
	fd2 = bound_socket(SOCK_DGRAM, &other);
	ctl_send("PORT %u", port);
	ctl_send("OTHER %u", other);
	CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, &from), 4, "recvfrom");
	CHECK_RET(sendto(fd2, "other", 5, 0, (struct sockaddr *)&from, sizeof(from)), 5,
		  "sendto from another port");
	xclose(fd2);
	xclose(fd);
}

/*
 * connect(AF_UNSPEC) on TCP (Linux 6.1 and later: tcp_disconnect()):
 * succeeds on an unconnected socket, stops a listener, and resets a
 * connection (the peer reads ECONNRESET).
 */
static void tcp_connect_unspec_client(void)
{
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	struct sockaddr_in sin;
	socklen_t alen = sizeof(sin);
	uint16_t port = 0;
	int fd;

	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(connect(fd, &un, sizeof(un)), "connect(AF_UNSPEC) of a new socket");
	xclose(fd);

	fd = tcp_listener(AF_INET, &port);
	CHECK_OK(connect(fd, &un, sizeof(un)), "connect(AF_UNSPEC) of a listener");
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN) == 0,
	      "SO_ACCEPTCONN after connect(AF_UNSPEC)");
	set_nonblock(fd, true);
	CHECK_ERR(accept(fd, NULL, NULL), EINVAL, "accept after connect(AF_UNSPEC)");
	xclose(fd);

	fd = connect_port(ctl_recv_long("PORT"));
	ctl_expect("ACCEPTED");
	CHECK_OK(connect(fd, &un, sizeof(un)), "connect(AF_UNSPEC) of a connection");
	CHECK_ERR(getpeername(fd, (struct sockaddr *)&sin, &alen), ENOTCONN,
		  "getpeername after connect(AF_UNSPEC)");
	ctl_send("DISCONNECTED");
	ctl_expect("RESET");
	xclose(fd);
}

static void tcp_connect_unspec_server(void)
{
	uint16_t port = 0;
	int lfd, fd;
	char c;

	lfd = tcp_listener(AF_INET, &port);
	ctl_send("PORT %u", port);
	fd = accept_wait(lfd, NULL);
	ctl_send("ACCEPTED");
	ctl_expect("DISCONNECTED");
	wait_ev(fd, POLLIN);
	CHECK_ERR(recv(fd, &c, 1, 0), ECONNRESET, "recv after the peer's connect(AF_UNSPEC)");
	ctl_send("RESET");
	xclose(fd);
	xclose(lfd);
}

/* SO_DOMAIN, SO_PROTOCOL and SO_TYPE as socket() was asked. */
static void so_domain(void)
{
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM };
	static const int families[] = { AF_INET, AF_INET6 };
	int f, t, fd;

	for (f = 0; f < 2; f++) {
		for (t = 0; t < 2; t++) {
			fd = xsocket(families[f], types[t]);
			CHECK(get_int_opt(fd, SOL_SOCKET, SO_DOMAIN) == families[f],
			      "family %d type %d: SO_DOMAIN %d", families[f], types[t],
			      get_int_opt(fd, SOL_SOCKET, SO_DOMAIN));
			CHECK(get_int_opt(fd, SOL_SOCKET, SO_TYPE) == types[t],
			      "family %d type %d: SO_TYPE %d", families[f], types[t],
			      get_int_opt(fd, SOL_SOCKET, SO_TYPE));
			CHECK(get_int_opt(fd, SOL_SOCKET, SO_PROTOCOL) ==
			      (types[t] == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP),
			      "family %d type %d: SO_PROTOCOL %d", families[f], types[t],
			      get_int_opt(fd, SOL_SOCKET, SO_PROTOCOL));
			xclose(fd);
		}
	}
}

/* ICMP port unreachable: ECONNREFUSED on a connected socket only. */
static void udp_refused_client(void)
{
	struct sockaddr_in srv = peer_port(ctl_recv_long("PORT"));
	long long end = now_ms() + io_timeout_ms;
	char buf[8];
	short rev;
	int fd;

	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(sendto(fd, "u", 1, 0, (struct sockaddr *)&srv, sizeof(srv)),
		 "sendto a closed port");
	sleep_ms(300);
	CHECK_ERR(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN,
		  "unconnected socket after an ICMP unreachable");
	xclose(fd);

	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_OK(connect(fd, (struct sockaddr *)&srv, sizeof(srv)), "connect");
	step = "send until ICMP port unreachable";
	for (;;) {
		CHECK(now_ms() < end, "no error on a connected socket after %d ms",
		      io_timeout_ms);
		if (send(fd, "u", 1, 0) < 0) {
			CHECK(errno == ECONNREFUSED, "send: %m");
			break;
		}
		rev = wait_fd(fd, POLLIN, 300);
		if (rev & POLLERR) {
			CHECK_ERR(recv(fd, buf, sizeof(buf), 0), ECONNREFUSED,
				  "recv after ICMP port unreachable");
			break;
		}
		CHECK(!rev, "poll: %#x", rev);
	}
	xclose(fd);
	ctl_send("DONE");
}

static void udp_refused_server(void)
{
	uint16_t port = 0;
	int fd = bound_socket(SOCK_DGRAM, &port);

	xclose(fd);			/* the port is closed now */
	ctl_send("PORT %u", port);
	ctl_expect("DONE");
}

/* ------------------------------------------------------ ancillary data */

/* The control message @level/@type of @msg, or NULL; its data length in @len. */
static void *cmsg_find(struct msghdr *msg, int level, int type, size_t *len)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == level && c->cmsg_type == type) {
			*len = c->cmsg_len - CMSG_LEN(0);
			return CMSG_DATA(c);
		}
	}
	return NULL;
}

/* recvmsg() one datagram of @want bytes with room for control messages. */
static void cmsg_recv(int fd, struct msghdr *msg, void *ctl, size_t ctl_len, int flags,
		      ssize_t want)
{
	static char data[64];
	static struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	static struct sockaddr_storage from;

	memset(msg, 0, sizeof(*msg));
	msg->msg_name = &from;
	msg->msg_namelen = sizeof(from);
	msg->msg_iov = &iov;
	msg->msg_iovlen = 1;
	msg->msg_control = ctl;
	msg->msg_controllen = ctl_len;
	CHECK_RET(recvmsg(fd, msg, flags), want, "recvmsg");
	CHECK(!(msg->msg_flags & MSG_CTRUNC), "control messages truncated");
}

#define TEST_TOS	0x20	/* CS1, ECN 0 */

/* IP_PKTINFO, IP_RECVTOS, IP_RECVTTL and SO_TIMESTAMPNS on a received datagram. */
static void udp_cmsg_client(void)
{
	struct sockaddr_in srv = peer_port(ctl_recv_long("PORT"));
	char ctl[512];
	struct in_pktinfo *pi;
	struct timespec now, *ts;
	struct msghdr msg;
	uint16_t port = 0;
	size_t len;
	long long d;
	int fd, *ttl;
	uint8_t *tos;

	fd = bound_socket(SOCK_DGRAM, &port);
	set_int_opt(fd, IPPROTO_IP, IP_PKTINFO, 1);
	set_int_opt(fd, IPPROTO_IP, IP_RECVTOS, 1);
	set_int_opt(fd, IPPROTO_IP, IP_RECVTTL, 1);
	set_int_opt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
	ctl_send("SRC %u", port);
	wait_ev(fd, POLLIN);
	cmsg_recv(fd, &msg, ctl, sizeof(ctl), 0, 4);
	CHECK(same_addr((struct sockaddr_in *)msg.msg_name, &srv), "datagram from %s",
	      addr_str((struct sockaddr_in *)msg.msg_name));

	pi = cmsg_find(&msg, IPPROTO_IP, IP_PKTINFO, &len);
	CHECK(pi && len == sizeof(*pi), "no IP_PKTINFO control message");
	CHECK(pi->ipi_ifindex > 0, "IP_PKTINFO ifindex %d", pi->ipi_ifindex);
	CHECK(pi->ipi_addr.s_addr == cur->self.sin_addr.s_addr,
	      "IP_PKTINFO ipi_addr %s, expected %s", inet_ntoa(pi->ipi_addr),
	      addr_str(&cur->self));
	CHECK(pi->ipi_spec_dst.s_addr == cur->self.sin_addr.s_addr,
	      "IP_PKTINFO ipi_spec_dst %s, expected %s", inet_ntoa(pi->ipi_spec_dst),
	      addr_str(&cur->self));
	tos = cmsg_find(&msg, IPPROTO_IP, IP_TOS, &len);
	CHECK(tos && len == 1, "no IP_TOS control message");
	CHECK(*tos == TEST_TOS, "IP_TOS %#x, expected %#x", *tos, TEST_TOS);
	ttl = cmsg_find(&msg, IPPROTO_IP, IP_TTL, &len);
	CHECK(ttl && len == sizeof(int), "no IP_TTL control message");
	CHECK(*ttl > 0 && *ttl <= 255, "IP_TTL %d", *ttl);
	ts = cmsg_find(&msg, SOL_SOCKET, SO_TIMESTAMPNS, &len);
	CHECK(ts && len == sizeof(*ts), "no SO_TIMESTAMPNS control message");
	CHECK_OK(clock_gettime(CLOCK_REALTIME, &now), "clock_gettime");
	d = (now.tv_sec - ts->tv_sec) * 1000LL + (now.tv_nsec - ts->tv_nsec) / 1000000;
	CHECK(d >= 0 && d < io_timeout_ms, "SO_TIMESTAMPNS %lld ms before now", d);
	ctl_send("DONE");
	xclose(fd);
}

static void udp_cmsg_server(void)
{
	uint16_t port = 0;
	struct sockaddr_in to;
	int fd = bound_socket(SOCK_DGRAM, &port);

	set_int_opt(fd, IPPROTO_IP, IP_TOS, TEST_TOS);
	ctl_send("PORT %u", port);
	to = peer_port(ctl_recv_long("SRC"));
	CHECK_RET(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4, "sendto");
	ctl_expect("DONE");
	xclose(fd);
}

/*
 * IP_RECVERR: an ICMP port unreachable lands on the error queue of an
 * unconnected and of a connected socket; MSG_ERRQUEUE gives the datagram,
 * its destination and a sock_extended_err with the offender, and reading
 * it clears the socket's pending error.
 */
static void udp_errqueue_one(const struct sockaddr_in *srv, bool connected)
{
	long long end = now_ms() + io_timeout_ms;
	struct sock_extended_err *ee;
	struct sockaddr_in *off;
	struct msghdr msg;
	char ctl[512];
	size_t len;
	short rev;
	int fd;

	step = connected ? "connected" : "unconnected";
	fd = xsocket(AF_INET, SOCK_DGRAM);
	set_int_opt(fd, IPPROTO_IP, IP_RECVERR, 1);
	if (connected)
		CHECK_OK(connect(fd, (struct sockaddr *)srv, sizeof(*srv)), "connect");
	for (;;) {
		CHECK(now_ms() < end, "no error queued after %d ms", io_timeout_ms);
		if (sendto(fd, "u", 1, 0, connected ? NULL : (struct sockaddr *)srv,
			   connected ? 0 : sizeof(*srv)) < 0) {
			/* The error is pending on the connected socket: the queue has it too. */
			CHECK(connected && errno == ECONNREFUSED, "sendto: %m");
		}
		rev = wait_fd(fd, POLLIN, 1000);
		if (rev & POLLERR)
			break;
		CHECK(!rev, "poll: %#x", rev);
	}
	cmsg_recv(fd, &msg, ctl, sizeof(ctl), MSG_ERRQUEUE, 1);
	CHECK(msg.msg_flags & MSG_ERRQUEUE, "no MSG_ERRQUEUE in msg_flags");
	CHECK(same_addr((struct sockaddr_in *)msg.msg_name, srv), "msg_name %s, expected %s",
	      addr_str((struct sockaddr_in *)msg.msg_name), addr_str(srv));
	ee = cmsg_find(&msg, IPPROTO_IP, IP_RECVERR, &len);
	CHECK(ee && len == sizeof(*ee) + sizeof(*off), "no IP_RECVERR control message");
	CHECK(ee->ee_errno == ECONNREFUSED, "ee_errno %u", ee->ee_errno);
	CHECK(ee->ee_origin == SO_EE_ORIGIN_ICMP, "ee_origin %u", ee->ee_origin);
	CHECK(ee->ee_type == 3 && ee->ee_code == 3, "ICMP type %u code %u", ee->ee_type,
	      ee->ee_code);
	off = (struct sockaddr_in *)SO_EE_OFFENDER(ee);
	CHECK(off->sin_family == AF_INET && off->sin_addr.s_addr == srv->sin_addr.s_addr,
	      "offender %s", inet_ntoa(off->sin_addr));
	/* A second datagram's error may be queued too: the last one clears SO_ERROR. */
	while (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0)
		;
	CHECK(errno == EAGAIN, "MSG_ERRQUEUE on an empty queue: %m");
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR after MSG_ERRQUEUE");
	xclose(fd);
}

static void udp_errqueue_client(void)
{
	struct sockaddr_in srv = peer_port(ctl_recv_long("PORT"));

	udp_errqueue_one(&srv, false);
	udp_errqueue_one(&srv, true);
	ctl_send("DONE");
}

/*
 * sendmsg() with IP_PKTINFO: our own address as the source is honoured;
 * an address that is not ours fails the route lookup (ENETUNREACH), a
 * multicast one is EINVAL, and neither sends anything.  The first send of
 * a socket never bound is checked too (a NetKernel socket's NSM half is
 * made by that send).
 */
static void udp_pktinfo_send_client(void)
{
	struct sockaddr_in srv = peer_port(ctl_recv_long("PORT"));
	char ctl[CMSG_SPACE(sizeof(struct in_pktinfo))] = { 0 };
	struct iovec iov = { .iov_base = "src", .iov_len = 3 };
	struct msghdr msg = {
		.msg_name = &srv, .msg_namelen = sizeof(srv),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
	uint16_t port = 0;
	int fd;

	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(*pi));
	pi->ipi_spec_dst.s_addr = htonl(0xc0000201);	/* 192.0.2.1: not ours */
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_ERR(sendmsg(fd, &msg, 0), ENETUNREACH, "first sendmsg from 192.0.2.1");
	xclose(fd);
	fd = bound_socket(SOCK_DGRAM, &port);
	ctl_send("SRC %u", port);
	CHECK_ERR(sendmsg(fd, &msg, 0), ENETUNREACH, "sendmsg from 192.0.2.1");
	pi->ipi_spec_dst.s_addr = htonl(0xe0000001);	/* 224.0.0.1 */
	CHECK_ERR(sendmsg(fd, &msg, 0), EINVAL, "sendmsg from 224.0.0.1");
	pi->ipi_spec_dst = cur->self.sin_addr;
	CHECK_RET(sendmsg(fd, &msg, 0), 3, "sendmsg from our own address");
	ctl_expect("GOT");
	xclose(fd);
}

static void udp_pktinfo_send_server(void)
{
	struct sockaddr_in from;
	uint16_t port = 0;
	char buf[16];
	int fd = bound_socket(SOCK_DGRAM, &port);
	int src;

	ctl_send("PORT %u", port);
	src = ctl_recv_long("SRC");
	CHECK_RET(udp_recv(fd, buf, sizeof(buf), 0, &from), 3, "recvfrom");
	CHECK(!memcmp(buf, "src", 3), "received \"%.3s\"", buf);
	CHECK(ntohs(from.sin_port) == src && from.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
	      "datagram from %s, expected port %d of %s", addr_str(&from), src,
	      addr_str(&cur->peer));
	ctl_send("GOT");
	xclose(fd);
}

/* ----------------------------------------------------------------- IPv6 */

static struct sockaddr_in6 mapped(struct in_addr a, uint16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	s6.sin6_addr.s6_addr[10] = 0xff;
	s6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6.sin6_addr.s6_addr[12], &a, 4);
	return s6;
}

static int v6_listener(int v6only, uint16_t *port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	socklen_t len = sizeof(s6);
	int fd = xsocket(AF_INET6, SOCK_STREAM);

	set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
	CHECK(get_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY) == v6only, "IPV6_V6ONLY");
	s6.sin6_port = htons(*port);
	CHECK_OK(bind(fd, (struct sockaddr *)&s6, sizeof(s6)), "bind [::]");
	CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &len), "getsockname");
	CHECK(s6.sin6_family == AF_INET6 && len == sizeof(s6), "getsockname: family %d",
	      s6.sin6_family);
	*port = ntohs(s6.sin6_port);
	CHECK_OK(listen(fd, 8), "listen");
	return fd;
}

/* A dual-stack AF_INET6 listener accepts IPv4: a v4-mapped peer. */
static void ipv6_dual_listen(void)
{
	struct sockaddr_in6 s6, want;
	socklen_t len = sizeof(s6);
	uint16_t port = 0;
	int lfd, fd;

	if (listen_here()) {
		lfd = v6_listener(0, &port);
		ctl_send("PORT %u", port);
		port = ctl_recv_long("SRC");
		step = "accept";
		wait_ev(lfd, POLLIN);
		fd = accept(lfd, (struct sockaddr *)&s6, &len);
		CHECK(fd >= 0, "accept: %m");
		want = mapped(cur->peer.sin_addr, port);
		CHECK(len == sizeof(s6) && same_addr(&s6, &want),
		      "accepted peer %s (length %u), expected %s", addr_str(&s6), len,
		      addr_str(&want));
		len = sizeof(s6);
		CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &len), "getsockname");
		CHECK(s6.sin6_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr),
		      "accepted socket's name %s is not v4-mapped", addr_str(&s6));
		send_str(fd, "dual");
		xclose(fd);
		xclose(lfd);
	} else {
		fd = connect_port(ctl_recv_long("PORT"));
		ctl_send("SRC %u", ntohs(sock_name4(fd, false).sin_port));
		recv_str(fd, "dual");
		xclose(fd);
	}
}

/* An AF_INET6 socket connects to a v4-mapped address. */
static void ipv6_mapped_connect(void)
{
	struct sockaddr_in6 s6, want;
	socklen_t len = sizeof(s6);
	uint16_t port;
	int lfd, fd;

	if (listen_here()) {
		lfd = tcp_listener(AF_INET, &port);
		ctl_send("PORT %u", port);
		fd = accept_wait(lfd, NULL);
		send_str(fd, "mapped");
		xclose(fd);
		xclose(lfd);
		return;
	}
	want = mapped(cur->peer.sin_addr, ctl_recv_long("PORT"));
	fd = tcp_connect(&want);
	CHECK_OK(getpeername(fd, (struct sockaddr *)&s6, &len), "getpeername");
	CHECK(same_addr(&s6, &want), "getpeername %s, expected %s", addr_str(&s6),
	      addr_str(&want));
	recv_str(fd, "mapped");
	xclose(fd);
}

/*
 * IPV6_V6ONLY: IPv4 is refused, and the IPv4 port stays free.  The port is
 * one IPv4 leaves free first: a V6ONLY listener may be given a port that an
 * earlier case's IPv4 connection still holds (TIME_WAIT), natively too.
 */
static void ipv6_v6only(void)
{
	struct sockaddr_in sin;
	uint16_t port = 0;
	int lfd, fd;

	if (listen_here()) {
		xclose(bound_socket(SOCK_STREAM, &port));
		lfd = v6_listener(1, &port);
		sin = sin4((struct in_addr){ INADDR_ANY }, port);
		fd = xsocket(AF_INET, SOCK_STREAM);
		CHECK_OK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)),
			 "bind AF_INET to the port of a V6ONLY listener");
		ctl_send("PORT %u", port);
		ctl_expect("DONE");
		set_nonblock(lfd, true);
		CHECK_ERR(accept(lfd, NULL, NULL), EAGAIN, "accept on the V6ONLY listener");
		xclose(fd);
		xclose(lfd);
		return;
	}
	sin = peer_port(ctl_recv_long("PORT"));
	fd = xsocket(AF_INET, SOCK_STREAM);
	step = "connect";
	CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), ECONNREFUSED,
		  "IPv4 connect to a V6ONLY listener");
	xclose(fd);
	ctl_send("DONE");
}

/*
 * IPv6 proper (not v4-mapped): the client reaches the server's IPv6 address
 * (--server6).  Both sides see real IPv6 addresses, and the server sees
 * the client at the address the client's getsockname() reports.  Without
 * --server6 both sides skip.
 */
static void ipv6_agree(void)
{
	char line[CTL_LINE_MAX];

	if (cur->client) {
		ctl_send("V6 %d", cur->have_peer6);
		if (!cur->have_peer6)
			skip_case("no --server6: no IPv6 path to the server");
		return;
	}
	ctl_recv(line, sizeof(line));
	if (!strcmp(line, "V6 0"))
		skip_case("the client has no IPv6 path to us");
	CHECK(!strcmp(line, "V6 1"), "expected V6 0|1, got \"%s\"", line);
}

static void check_real_v6(const struct sockaddr_in6 *s6, socklen_t len, const char *what)
{
	CHECK(len == sizeof(*s6) && s6->sin6_family == AF_INET6, "%s: family %d, length %u",
	      what, s6->sin6_family, len);
	CHECK(!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr),
	      "%s: %s is not an IPv6 address of its own", what, addr_str(s6));
}

static void ipv6_tcp(void)
{
	struct sockaddr_in6 s6, want;
	socklen_t len = sizeof(s6);
	char line[CTL_LINE_MAX];
	uint16_t port = 0;
	int lfd, fd;

	ipv6_agree();
	if (!cur->client) {
		lfd = v6_listener(1, &port);
		ctl_send("PORT %u", port);
		fd = accept_wait(lfd, NULL);
		CHECK_OK(getpeername(fd, (struct sockaddr *)&s6, &len), "getpeername");
		check_real_v6(&s6, len, "the accepted peer");
		ctl_send("PEER %s", addr_str(&s6));
		len = sizeof(s6);
		CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &len), "getsockname");
		check_real_v6(&s6, len, "the accepted socket's name");
		send_str(fd, "over ipv6");
		recv_str(fd, "and back");
		xclose(fd);
		xclose(lfd);
		return;
	}
	want = cur->peer6;
	want.sin6_port = htons(ctl_recv_long("PORT"));
	fd = tcp_connect(&want);
	CHECK_OK(getpeername(fd, (struct sockaddr *)&s6, &len), "getpeername");
	CHECK(same_addr(&s6, &want), "getpeername %s, expected %s", addr_str(&s6),
	      addr_str(&want));
	len = sizeof(s6);
	CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &len), "getsockname");
	check_real_v6(&s6, len, "getsockname");
	ctl_recv(line, sizeof(line));
	CHECK(!strncmp(line, "PEER ", 5) && !strcmp(line + 5, addr_str(&s6)),
	      "the server sees us as %s, getsockname says %s", line, addr_str(&s6));
	recv_str(fd, "over ipv6");
	send_str(fd, "and back");
	expect_eof(fd);
	xclose(fd);
}


/*
 * Options of a dual-stack listener act on its IPv6 connections too:
 * TCP_DEFER_ACCEPT, set before listen() on one listener and after it on
 * another, keeps an IPv6 connection that sent nothing out of the accept
 * queue (poll() on the listener stays quiet for a second) until its first
 * byte comes.
 */
static void ipv6_dual_options(void)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	socklen_t len = sizeof(s6);
	int lfd, fd, after;
	char c;

	ipv6_agree();
	for (after = 0; after < 2; after++) {
		if (cur->client) {
			s6 = cur->peer6;
			s6.sin6_port = htons(ctl_recv_long("PORT"));
			fd = tcp_connect(&s6);
			ctl_expect("SEND");
			send_str(fd, "d");
			recv_str(fd, "ok");
			xclose(fd);
			continue;
		}
		lfd = xsocket(AF_INET6, SOCK_STREAM);
		set_int_opt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
		if (!after)
			set_int_opt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 10);
		s6.sin6_port = 0;
		CHECK_OK(bind(lfd, (struct sockaddr *)&s6, sizeof(s6)), "bind [::]");
		len = sizeof(s6);
		CHECK_OK(getsockname(lfd, (struct sockaddr *)&s6, &len), "getsockname");
		CHECK_OK(listen(lfd, 8), "listen");
		if (after)
			set_int_opt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 10);
		ctl_send("PORT %u", ntohs(s6.sin6_port));
		step = after ? "TCP_DEFER_ACCEPT set after listen()" :
			       "TCP_DEFER_ACCEPT set before listen()";
		CHECK(!(wait_fd(lfd, POLLIN, 1000) & POLLIN),
		      "an IPv6 connection that sent nothing is ready to accept (%s)", step);
		ctl_send("SEND");
		fd = accept_wait(lfd, NULL);
		CHECK_RET(recv(fd, &c, 1, 0), 1, "recv the first byte");
		send_str(fd, "ok");
		xclose(fd);
		xclose(lfd);
		s6.sin6_addr = in6addr_any;
	}
}
/*
 * listen() again on a listening dual-stack [::] socket, with the same and
 * with another backlog, changes only the backlog: IPv4 (v4-mapped) and
 * IPv6 connections are accepted after it and carry data both ways.
 */
static void ipv6_listen_twice(void)
{
	struct sockaddr_in6 s6, want;
	struct sockaddr_in sin;
	char msg[32];
	uint16_t port = 0;
	int lfd, fd, i;

	ipv6_agree();
	if (!cur->client) {
		lfd = v6_listener(0, &port);
		CHECK_OK(listen(lfd, 8), "listen again, the same backlog");
		CHECK_OK(listen(lfd, 32), "listen again, another backlog");
		ctl_send("PORT %u", port);
		for (i = 0; i < 2; i++) {
			fd = accept_wait(lfd, &s6);
			CHECK(IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr) == !i,
			      "connection %d from %s: expected %s", i, addr_str(&s6),
			      i ? "IPv6" : "v4-mapped IPv4");
			snprintf(msg, sizeof(msg), "twice %d", i);
			recv_str(fd, msg);
			send_str(fd, msg);
			expect_eof(fd);
			xclose(fd);
		}
		xclose(lfd);
		return;
	}
	port = ctl_recv_long("PORT");
	sin = peer_port(port);
	want = cur->peer6;
	want.sin6_port = htons(port);
	for (i = 0; i < 2; i++) {
		fd = i ? tcp_connect(&want) : tcp_connect(&sin);
		snprintf(msg, sizeof(msg), "twice %d", i);
		send_str(fd, msg);
		recv_str(fd, msg);
		CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
		xclose(fd);
	}
}

static void ipv6_udp(void)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in6 from, want;
	socklen_t len = sizeof(s6);
	char buf[64];
	int fd;

	ipv6_agree();
	fd = xsocket(AF_INET6, SOCK_DGRAM);
	/* The server V6ONLY with sendto/recvfrom, the client dual-stack and connected. */
	set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !cur->client);
	if (!cur->client) {
		CHECK_OK(bind(fd, (struct sockaddr *)&s6, sizeof(s6)), "bind [::]");
		CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &len), "getsockname");
		ctl_send("PORT %u", ntohs(s6.sin6_port));
		wait_ev(fd, POLLIN);
		len = sizeof(from);
		CHECK_RET(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len), 4,
			  "recvfrom");
		CHECK(!memcmp(buf, "ping", 4), "received \"%.4s\", expected \"ping\"", buf);
		check_real_v6(&from, len, "the datagram's source");
		CHECK_RET(sendto(fd, "pong", 4, 0, (struct sockaddr *)&from, len), 4, "sendto");
		ctl_expect("DONE");
		xclose(fd);
		return;
	}
	want = cur->peer6;
	want.sin6_port = htons(ctl_recv_long("PORT"));
	CHECK_OK(bind(fd, (struct sockaddr *)&s6, sizeof(s6)), "bind [::] (dual-stack)");
	CHECK_OK(connect(fd, (struct sockaddr *)&want, sizeof(want)), "connect");
	CHECK_OK(getpeername(fd, (struct sockaddr *)&from, &len), "getpeername");
	CHECK(same_addr(&from, &want), "getpeername %s, expected %s", addr_str(&from),
	      addr_str(&want));
	CHECK_RET(send(fd, "ping", 4, 0), 4, "send");
	wait_ev(fd, POLLIN);
	len = sizeof(from);
	CHECK_RET(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len), 4,
		  "recvfrom");
	CHECK(!memcmp(buf, "pong", 4), "received \"%.4s\", expected \"pong\"", buf);
	CHECK(len == sizeof(from) && same_addr(&from, &want), "reply from %s, expected %s",
	      addr_str(&from), addr_str(&want));
	ctl_send("DONE");
	xclose(fd);
}

/* IPV6_RECVPKTINFO, IPV6_RECVTCLASS and IPV6_RECVHOPLIMIT on a received datagram. */
static void ipv6_udp_cmsg(void)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in6 peer;
	socklen_t slen = sizeof(s6);
	struct in6_pktinfo *pi;
	char ctl[512], buf[64];
	struct msghdr msg;
	size_t len;
	int fd, *v;

	ipv6_agree();
	fd = xsocket(AF_INET6, SOCK_DGRAM);
	set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	if (!cur->client) {
		/* Learn the client's address from its ping, then answer it. */
		CHECK_OK(bind(fd, (struct sockaddr *)&s6, sizeof(s6)), "bind [::]");
		CHECK_OK(getsockname(fd, (struct sockaddr *)&s6, &slen), "getsockname");
		set_int_opt(fd, IPPROTO_IPV6, IPV6_TCLASS, TEST_TOS);
		ctl_send("PORT %u", ntohs(s6.sin6_port));
		wait_ev(fd, POLLIN);
		slen = sizeof(peer);
		CHECK_RET(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &slen), 4,
			  "recvfrom");
		CHECK_RET(sendto(fd, "pong", 4, 0, (struct sockaddr *)&peer, slen), 4, "sendto");
		inet_ntop(AF_INET6, &peer.sin6_addr, buf, sizeof(buf));
		ctl_send("SELF %s", buf);
		ctl_expect("DONE");
		xclose(fd);
		return;
	}
	peer = cur->peer6;
	peer.sin6_port = htons(ctl_recv_long("PORT"));
	set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
	set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1);
	set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
	CHECK_RET(sendto(fd, "ping", 4, 0, (struct sockaddr *)&peer, sizeof(peer)), 4,
		  "sendto");
	wait_ev(fd, POLLIN);
	cmsg_recv(fd, &msg, ctl, sizeof(ctl), 0, 4);
	ctl_parse("SELF", buf, sizeof(buf));
	CHECK_OK(inet_pton(AF_INET6, buf, &s6.sin6_addr) == 1 ? 0 : -1, "SELF address");
	pi = cmsg_find(&msg, IPPROTO_IPV6, IPV6_PKTINFO, &len);
	CHECK(pi && len == sizeof(*pi), "no IPV6_PKTINFO control message");
	CHECK(pi->ipi6_ifindex > 0, "IPV6_PKTINFO ifindex %d", pi->ipi6_ifindex);
	CHECK(!memcmp(&pi->ipi6_addr, &s6.sin6_addr, sizeof(s6.sin6_addr)),
	      "IPV6_PKTINFO address is not ours (%s)", buf);
	v = cmsg_find(&msg, IPPROTO_IPV6, IPV6_TCLASS, &len);
	CHECK(v && len == sizeof(int), "no IPV6_TCLASS control message");
	CHECK(*v == TEST_TOS, "IPV6_TCLASS %#x, expected %#x", *v, TEST_TOS);
	v = cmsg_find(&msg, IPPROTO_IPV6, IPV6_HOPLIMIT, &len);
	CHECK(v && len == sizeof(int), "no IPV6_HOPLIMIT control message");
	CHECK(*v > 0 && *v <= 255, "IPV6_HOPLIMIT %d", *v);
	ctl_send("DONE");
	xclose(fd);
}

/*
 * The largest UDP datagram each way, 65507 bytes over IPv4 and 65527 over
 * IPv6 (65535 minus the headers), and one byte more fails with EMSGSIZE
 * at once, on the sender, as udp_sendmsg() and udpv6_sendmsg() fail it; a
 * v4-mapped destination of an IPv6 socket takes IPv4's limit.  With
 * @pktinfo both sides ask for IP_PKTINFO (IPV6_RECVPKTINFO), which must
 * come with the datagram.  The client sends, the server checks and sends
 * the same back to where it came from.
 */
#define UDP_MAX4	65507
#define UDP_MAX6	65527

/* recvmsg() one datagram of @max bytes into @buf; its source into @from. */
static socklen_t udp_max_recv(int fd, int family, bool pktinfo, uint8_t *buf, size_t size,
			      ssize_t max, struct sockaddr_storage *from)
{
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = {
		.msg_name = from, .msg_namelen = sizeof(*from),
		.msg_iov = &iov, .msg_iovlen = 1,
	};
	struct in6_pktinfo *pi6;
	struct in_pktinfo *pi;
	char ctl[256];
	size_t len;

	msg.msg_control = ctl;
	msg.msg_controllen = sizeof(ctl);
	wait_ev(fd, POLLIN);
	CHECK_RET(recvmsg(fd, &msg, 0), max, "recvmsg: the largest datagram");
	CHECK(!(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)), "recvmsg flags %#x",
	      msg.msg_flags);
	if (pktinfo && family == AF_INET6) {
		pi6 = cmsg_find(&msg, IPPROTO_IPV6, IPV6_PKTINFO, &len);
		CHECK(pi6 && len == sizeof(*pi6),
		      "no IPV6_PKTINFO control message with the largest datagram");
		CHECK(pi6->ipi6_ifindex > 0, "IPV6_PKTINFO ifindex %d", pi6->ipi6_ifindex);
	} else if (pktinfo) {
		pi = cmsg_find(&msg, IPPROTO_IP, IP_PKTINFO, &len);
		CHECK(pi && len == sizeof(*pi),
		      "no IP_PKTINFO control message with the largest datagram");
		CHECK(pi->ipi_ifindex > 0, "IP_PKTINFO ifindex %d", pi->ipi_ifindex);
		CHECK(!cur->client || pi->ipi_addr.s_addr == cur->self.sin_addr.s_addr,
		      "IP_PKTINFO ipi_addr %s, expected %s", inet_ntoa(pi->ipi_addr),
		      addr_str(&cur->self));
	}
	return msg.msg_namelen;
}

/* A dual-stack IPv6 socket sends to the server's v4-mapped address. */
static void udp_max_mapped(const uint8_t *buf)
{
	struct sockaddr_in6 m = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	int fd = xsocket(AF_INET6, SOCK_DGRAM);

	set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
	m.sin6_addr.s6_addr[10] = 0xff;
	m.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&m.sin6_addr.s6_addr[12], &cur->peer.sin_addr, 4);
	CHECK_ERR(sendto(fd, buf, UDP_MAX4 + 1, 0, (struct sockaddr *)&m, sizeof(m)), EMSGSIZE,
		  "sendto a v4-mapped address one byte over IPv4's largest datagram");
	xclose(fd);
}

static void udp_max(int family, bool pktinfo)
{
	static uint8_t buf[UDP_MAX6 + 1], got[65536];
	ssize_t max = family == AF_INET6 ? UDP_MAX6 : UDP_MAX4;
	struct sockaddr_storage ss = { .ss_family = family }, from;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	socklen_t slen = family == AF_INET6 ? sizeof(*s6) : sizeof(*s4), flen;
	struct pstream ps;
	int fd;

	if (family == AF_INET6)
		ipv6_agree();
	fd = xsocket(family, SOCK_DGRAM);
	if (family == AF_INET6)
		set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	if (pktinfo && family == AF_INET6)
		set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
	else if (pktinfo)
		set_int_opt(fd, IPPROTO_IP, IP_PKTINFO, 1);
	ps_init(&ps, 65000 + family + pktinfo);
	ps_fill(&ps, buf, max + 1);
	if (!cur->client) {
		CHECK_OK(bind(fd, (struct sockaddr *)&ss, slen), "bind the wildcard");
		CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &slen), "getsockname");
		ctl_send("PORT %u", ntohs(family == AF_INET6 ? s6->sin6_port : s4->sin_port));
		flen = udp_max_recv(fd, family, pktinfo, got, sizeof(got), max, &from);
		CHECK(!memcmp(got, buf, max), "the largest datagram arrived changed");
		CHECK_ERR(sendto(fd, buf, max + 1, 0, (struct sockaddr *)&from, flen), EMSGSIZE,
			  "sendto one byte over the largest datagram");
		CHECK_RET(sendto(fd, buf, max, 0, (struct sockaddr *)&from, flen), max,
			  "sendto the largest datagram back");
		ctl_expect("DONE");
		xclose(fd);
		return;
	}
	if (family == AF_INET6) {
		*s6 = cur->peer6;
		s6->sin6_port = htons(ctl_recv_long("PORT"));
		udp_max_mapped(buf);
	} else {
		*s4 = peer_port(ctl_recv_long("PORT"));
	}
	CHECK_ERR(sendto(fd, buf, max + 1, 0, (struct sockaddr *)&ss, slen), EMSGSIZE,
		  "sendto one byte over the largest datagram");
	CHECK_RET(sendto(fd, buf, max, 0, (struct sockaddr *)&ss, slen), max,
		  "sendto the largest datagram");
	flen = udp_max_recv(fd, family, pktinfo, got, sizeof(got), max, &from);
	CHECK(!memcmp(got, buf, max), "the largest datagram came back changed");
	CHECK(flen == slen && same_addr(&from, &ss), "the reply is not from the server");
	ctl_send("DONE");
	xclose(fd);
}

static void udp_max4(void)
{
	udp_max(AF_INET, false);
}

static void udp_max4_pktinfo(void)
{
	udp_max(AF_INET, true);
}

static void udp_max6(void)
{
	udp_max(AF_INET6, false);
}

static void udp_max6_pktinfo(void)
{
	udp_max(AF_INET6, true);
}

/* --------------------------------------------------- signals, fork, dup */

static sig_atomic_t sigusr1s;

static void on_sigusr1(int sig)
{
	(void)sig;
	sigusr1s++;
}

/* A helper process sends us SIGUSR1 after @ms. */
static pid_t signal_later(int ms)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	CHECK_OK(pid, "fork");
	if (!pid) {
		sleep_ms(ms);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	return pid;
}

static void sig_eintr_client(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	char buf[8];
	pid_t pid;
	int fd = pair_open();

	CHECK_OK(sigaction(SIGUSR1, &sa, NULL), "sigaction");
	pid = signal_later(200);
	step = "blocking recv, SIGUSR1 without SA_RESTART";
	CHECK_ERR(recv(fd, buf, sizeof(buf), 0), EINTR, "recv interrupted by a signal");
	CHECK(sigusr1s == 1, "handler ran %d times", (int)sigusr1s);
	waitpid(pid, NULL, 0);

	sa.sa_flags = SA_RESTART;
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL), "sigaction");
	ctl_send("SEND");
	pid = signal_later(100);
	step = "blocking recv, SIGUSR1 with SA_RESTART";
	CHECK_RET(recv(fd, buf, 4, MSG_WAITALL), 4, "recv restarted after a signal");
	CHECK(!memcmp(buf, "late", 4), "wrong data");
	CHECK(sigusr1s == 2, "handler ran %d times", (int)sigusr1s);
	waitpid(pid, NULL, 0);
	xclose(fd);
}

static void sig_eintr_server(void)
{
	int fd = pair_open();

	ctl_expect("SEND");
	sleep_ms(600);
	send_str(fd, "late");
	expect_eof(fd);
	xclose(fd);
}

/* dup() and fork() share one connection: EOF only when the last fd goes. */
static void fork_dup_client(void)
{
	int status, fd = pair_open();
	int dfd = dup(fd);
	pid_t pid;

	CHECK_OK(dfd, "dup");
	xclose(fd);
	send_str(dfd, "A");
	pid = fork();
	CHECK_OK(pid, "fork");
	if (!pid)
		_exit(send(dfd, "B", 1, MSG_NOSIGNAL) == 1 ? 0 : 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      !WEXITSTATUS(status), "the child's send failed");
	ctl_send("CHILD EXITED");
	recv_str(dfd, "C");
	ctl_expect("OPEN");
	xclose(dfd);
}

static void fork_dup_server(void)
{
	int fd = pair_open();

	recv_str(fd, "AB");
	ctl_expect("CHILD EXITED");
	CHECK(!wait_fd(fd, POLLIN | POLLRDHUP, 300),
	      "the connection ended when one of its two fds was closed");
	send_str(fd, "C");
	ctl_send("OPEN");
	expect_eof(fd);
	xclose(fd);
}

/* ------------------------------------------------------------- loopback */

/*
 * /proc/net/netkernel lists the listener at @sa as a local socket (state
 * 0A, path "local").
 */
static void proc_local_listener(const void *sa)
{
	const struct sockaddr_in6 *s6 = sa;
	const struct sockaddr_in *s4 = sa;
	char want[64], line[512];
	bool found = false;
	FILE *f;

	if (s4->sin_family == AF_INET)
		snprintf(want, sizeof(want), " 0A 127.0.0.1:%u ", ntohs(s4->sin_port));
	else
		snprintf(want, sizeof(want), " 0A [::1]:%u ", ntohs(s6->sin6_port));
	f = fopen("/proc/net/netkernel", "r");
	CHECK(f, "/proc/net/netkernel: %m");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want) && strstr(line, " local\n"))
			found = true;
	fclose(f);
	CHECK(found, "/proc/net/netkernel has no local listener \"%s\"", want);
}

/* A loopback connection of @family: bind, listen, connect, accept, data. */
static void loopback_family(int family)
{
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in lo = sin4((struct in_addr){ htonl(INADDR_LOOPBACK) }, 0);
	struct sockaddr_storage ss, peer;
	socklen_t len = sizeof(ss);
	void *sa = family == AF_INET ? (void *)&lo : (void *)&lo6;
	socklen_t salen = family == AF_INET ? sizeof(lo) : sizeof(lo6);
	int lfd, fd, afd, ufd, vfd;
	char buf[8];

	lfd = xsocket(family, SOCK_STREAM);
	CHECK_OK(bind(lfd, sa, salen), "bind loopback");
	CHECK_OK(listen(lfd, 1), "listen");
	CHECK_OK(getsockname(lfd, (struct sockaddr *)&ss, &len), "getsockname");
	CHECK(get_int_opt(lfd, SOL_SOCKET, SO_ACCEPTCONN) == 1, "SO_ACCEPTCONN not 1");
	CHECK(get_int_opt(lfd, SOL_SOCKET, SO_DOMAIN) == family, "SO_DOMAIN");
	fd = xsocket(family, SOCK_STREAM);
	CHECK_ERR(bind(fd, (struct sockaddr *)&ss, len), EADDRINUSE, "bind to the listener's port");
	xclose(fd);
	if (cur->netkernel)
		proc_local_listener(&ss);
	fd = tcp_connect(&ss);
	afd = accept_wait(lfd, &peer);
	len = sizeof(ss);
	CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len), "getsockname");
	CHECK(same_addr(&ss, &peer), "accept() says %s, the client is %s",
	      addr_str(&peer), addr_str(&ss));
	send_str(fd, "lo");
	recv_str(afd, "lo");
	CHECK_OK(shutdown(fd, SHUT_WR), "shutdown");
	expect_eof(afd);
	xclose(afd);
	xclose(fd);

	/* Refused once nobody listens. */
	len = sizeof(ss);
	CHECK_OK(getsockname(lfd, (struct sockaddr *)&ss, &len), "getsockname");
	xclose(lfd);
	fd = xsocket(family, SOCK_STREAM);
	CHECK_ERR(connect(fd, (struct sockaddr *)&ss, len), ECONNREFUSED,
		  "connect to a closed loopback port");
	xclose(fd);

	/* UDP: a datagram each way. */
	ufd = xsocket(family, SOCK_DGRAM);
	CHECK_OK(bind(ufd, sa, salen), "bind UDP loopback");
	len = sizeof(ss);
	CHECK_OK(getsockname(ufd, (struct sockaddr *)&ss, &len), "getsockname");
	vfd = xsocket(family, SOCK_DGRAM);
	CHECK_RET(sendto(vfd, "u", 1, 0, (struct sockaddr *)&ss, len), 1, "sendto");
	CHECK(wait_fd(ufd, POLLIN, io_timeout_ms) & POLLIN, "no datagram");
	len = sizeof(peer);
	CHECK_RET(recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len), 1, "recvfrom");
	CHECK_RET(sendto(ufd, "v", 1, 0, (struct sockaddr *)&peer, len), 1, "sendto back");
	CHECK(wait_fd(vfd, POLLIN, io_timeout_ms) & POLLIN, "no answer");
	CHECK_RET(recv(vfd, buf, sizeof(buf), 0), 1, "recv");
	xclose(vfd);
	xclose(ufd);
}

/*
 * Loopback works on NetKernel as natively: 127.0.0.1 and ::1 carry TCP
 * and UDP within this host, each side on its own.
 */
static void loopback(void)
{
	loopback_family(AF_INET);
	loopback_family(AF_INET6);
}

/*
 * A listener on the wildcard hears a client of its own host (127.0.0.1)
 * and the peer on one accept queue, and epoll wakes for each.
 */
static void wildcard_local_remote_client(void)
{
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	int fd;

	fd = tcp_connect(&sin);
	send_str(fd, "R");
	recv_str(fd, "r");
	xclose(fd);
	ctl_send("DONE");
}

static void wildcard_local_remote_server(void)
{
	struct sockaddr_in any = sin4((struct in_addr){ htonl(INADDR_ANY) }, 0);
	struct sockaddr_in lo = sin4((struct in_addr){ htonl(INADDR_LOOPBACK) }, 0);
	struct epoll_event ev = { .events = EPOLLIN };
	struct sockaddr_in from;
	int lfd, ep, lc, a1, a2;

	lfd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(bind(lfd, (struct sockaddr *)&any, sizeof(any)), "bind 0.0.0.0");
	CHECK_OK(listen(lfd, 4), "listen");
	set_nonblock(lfd, true);
	lo.sin_port = sock_name4(lfd, false).sin_port;
	ep = epoll_create1(0);
	CHECK_OK(ep, "epoll_create1");
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev), "epoll_ctl");
	CHECK(epoll_wait(ep, &ev, 1, 0) == 0, "epoll: the listener is ready with no client");

	step = "the local client";
	lc = tcp_connect(&lo);
	CHECK(epoll_wait(ep, &ev, 1, io_timeout_ms) == 1, "epoll: no wake-up for the local client");
	a1 = accept_wait(lfd, &from);
	CHECK(from.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "local client from %s",
	      addr_str(&from));
	send_str(lc, "L");
	recv_str(a1, "L");
	CHECK_ERR(accept(lfd, NULL, NULL), EAGAIN, "accept with nobody waiting");

	step = "the peer";
	ctl_send("PORT %u", ntohs(lo.sin_port));
	CHECK(epoll_wait(ep, &ev, 1, io_timeout_ms) == 1, "epoll: no wake-up for the peer");
	a2 = accept_wait(lfd, &from);
	CHECK(from.sin_addr.s_addr == cur->peer.sin_addr.s_addr,
	      "the peer's connection from %s", addr_str(&from));
	recv_str(a2, "R");
	send_str(a2, "r");
	ctl_expect("DONE");
	xclose(a2);
	xclose(a1);
	xclose(lc);
	xclose(ep);
	xclose(lfd);
}

/*
 * A listener on 127.0.0.1 is not reachable from elsewhere: the peer is
 * refused (a peer on this same host, reaching it at 127.0.0.1, is not).
 */
static void loopback_private_client(void)
{
	struct sockaddr_in sin = peer_port(ctl_recv_long("PORT"));
	int fd;

	if ((ntohl(sin.sin_addr.s_addr) >> 24) == 127) {
		fd = tcp_connect(&sin);
		xclose(fd);
	} else {
		fd = xsocket(AF_INET, SOCK_STREAM);
		CHECK_ERR(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), ECONNREFUSED,
			  "connect to a listener on the peer's 127.0.0.1");
		xclose(fd);
	}
	ctl_send("DONE");
}

static void loopback_private_server(void)
{
	struct sockaddr_in lo = sin4((struct in_addr){ htonl(INADDR_LOOPBACK) }, 0);
	int lfd;

	lfd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(bind(lfd, (struct sockaddr *)&lo, sizeof(lo)), "bind 127.0.0.1");
	CHECK_OK(listen(lfd, 4), "listen");
	ctl_send("PORT %u", ntohs(sock_name4(lfd, false).sin_port));
	ctl_expect("DONE");
	xclose(lfd);
}

/* ----------------------------------------- namespaces and privileges */

/* For cases with nothing to do on the server. */
static void no_server(void)
{
}

static void need_root(void)
{
	if (geteuid())
		skip_case("needs root");
}

/*
 * A socket created in a network namespace of its own is a socket of that
 * namespace's stack, with no route anywhere and a loopback that works
 * once up, on NetKernel as natively: NetKernel serves the namespace its
 * device is attached in only; socket(AF_NETKERNEL) is refused there with
 * EAFNOSUPPORT.
 */
static void netns_native(void)
{
	struct sockaddr_in dst = peer_port(9);
	struct sockaddr_in6 dst6 = mapped(cur->peer.sin_addr, 9);
	struct sockaddr_in lo = sin4((struct in_addr){ htonl(INADDR_LOOPBACK) }, 0);
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, lfd, afd;

	need_root();
	CHECK_OK(unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");

	step = "connect in the new namespace";
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_ERR(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), ENETUNREACH,
		  "TCP connect to the peer from a namespace without routes");
	xclose(fd);
	fd = xsocket(AF_INET6, SOCK_STREAM);
	CHECK_ERR(connect(fd, (struct sockaddr *)&dst6, sizeof(dst6)), ENETUNREACH,
		  "TCP connect to the peer (v4-mapped) from a namespace without routes");
	xclose(fd);
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)), ENETUNREACH,
		  "UDP sendto the peer from a namespace without routes");
	xclose(fd);
	if (cur->netkernel)	/* the family is registered here */
		CHECK_ERR(socket(19, SOCK_STREAM, 0), EAFNOSUPPORT,
			  "socket(AF_NETKERNEL) in the new namespace");

	step = "loopback of the new namespace";
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);	/* any family reaches dev_ioctl() */
	CHECK_OK(fd, "socket(AF_UNIX)");
	CHECK_OK(ioctl(fd, SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP;
	CHECK_OK(ioctl(fd, SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS lo up");
	xclose(fd);
	lfd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_OK(bind(lfd, (struct sockaddr *)&lo, sizeof(lo)), "bind 127.0.0.1");
	CHECK_OK(listen(lfd, 1), "listen");
	lo = sock_name4(lfd, false);
	fd = tcp_connect(&lo);
	afd = accept_wait(lfd, NULL);
	send_str(fd, "lo");
	recv_str(afd, "lo");
	xclose(afd);
	xclose(fd);
	xclose(lfd);
}

/* bind() of @family/@type to @port as @uid, in a child; returns its errno. */
static int bind_as(uid_t uid, int family, int type, uint16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in s4 = sin4((struct in_addr){ INADDR_ANY }, port);
	int status, fd;
	pid_t pid;

	pid = fork();
	CHECK_OK(pid, "fork");
	if (!pid) {
		if (setgroups(0, NULL) || setgid(uid) || setuid(uid))
			_exit(200);
		fd = socket(family, type, 0);
		if (fd < 0)
			_exit(201);
		if (family == AF_INET6)
			_exit(bind(fd, (struct sockaddr *)&s6, sizeof(s6)) ? errno : 0);
		_exit(bind(fd, (struct sockaddr *)&s4, sizeof(s4)) ? errno : 0);
	}
	CHECK_OK(waitpid(pid, &status, 0), "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) < 200,
	      "the bind child failed before bind (status %#x)", status);
	return WEXITSTATUS(status);
}

/*
 * bind() to a port below net.ipv4.ip_unprivileged_port_start (1024 by
 * default) needs CAP_NET_BIND_SERVICE: EACCES for nobody, fine for root.
 */
static void bind_privileged_port(void)
{
	static const struct { int family, type; const char *what; } socks[] = {
		{ AF_INET, SOCK_STREAM, "TCP" }, { AF_INET, SOCK_DGRAM, "UDP" },
		{ AF_INET6, SOCK_STREAM, "TCP6" }, { AF_INET6, SOCK_DGRAM, "UDP6" },
	};
	unsigned int i;
	int err;

	need_root();
	for (i = 0; i < ARRAY_SIZE(socks); i++) {
		err = bind_as(65534, socks[i].family, socks[i].type, 80);
		CHECK(err == EACCES, "%s bind to port 80 as uid 65534: %s, not EACCES",
		      socks[i].what, err ? strerror(err) : "success");
		err = bind_as(65534, socks[i].family, socks[i].type, 0);
		CHECK(!err, "%s bind to port 0 as uid 65534: %s", socks[i].what,
		      strerror(err));
		err = bind_as(0, socks[i].family, socks[i].type, 80);
		CHECK(!err, "%s bind to port 80 as root: %s", socks[i].what,
		      strerror(err));
	}
}

/* Load a cgroup program of @type for @attach; returns its fd. */
static int bpf_prog_load(int type, int attach, const struct bpf_insn *insns,
			 unsigned int n)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = type;
	attr.expected_attach_type = attach;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = n;
	attr.license = (uintptr_t)"GPL";
	fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	CHECK_OK(fd, "BPF_PROG_LOAD");
	return fd;
}

/*
 * Whether this system uses cgroups: a cgroup hierarchy is mounted, or this
 * process is not in the root of the unified hierarchy, or a v1 hierarchy
 * exists (/proc/self/cgroup then has more than its "0::/" line; a mount
 * namespace of "ip netns exec" hides the mounts, not those).
 */
static bool cgroups_in_use(void)
{
	const char *files[] = { "/proc/self/mountinfo", "/proc/self/cgroup" };
	char line[512];
	bool used = false;
	unsigned int i;
	FILE *f;

	for (i = 0; i < ARRAY_SIZE(files) && !used; i++) {
		f = fopen(files[i], "r");
		CHECK(f, "%s: %m", files[i]);
		while (!used && fgets(line, sizeof(line), f))
			used = i ? strcmp(line, "0::/\n") != 0 :
			       strstr(line, " - cgroup ") || strstr(line, " - cgroup2 ");
		fclose(f);
	}
	return used;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	CHECK_OK(fd, path);
	CHECK_RET(write(fd, text, strlen(text)), strlen(text), path);
	xclose(fd);
}

#define CG_ROOT	"/tmp/cgroup"
#define CG_TEST	CG_ROOT "/test"

/*
 * Move into a cgroup of our own; returns its fd.  Only on a system that
 * uses no cgroups (the lab's guests; skipped elsewhere), so that cgroups a
 * system manages are never touched: cgroup2 is mounted on a tmpfs of a
 * mount namespace of our own, and cgroup_leave() removes the cgroup.
 */
static int cgroup_enter(void)
{
	char pid[16];
	int cg;

	need_root();
	if (cgroups_in_use())
		skip_case("this system uses cgroups");
	CHECK_OK(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
	CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	CHECK_OK(mount("tmpfs", "/tmp", "tmpfs", 0, NULL), "mount a tmpfs on /tmp");
	CHECK_OK(mkdir(CG_ROOT, 0700), "mkdir " CG_ROOT);
	CHECK_OK(mount("cgroup2", CG_ROOT, "cgroup2", 0, NULL), "mount cgroup2");
	CHECK(!mkdir(CG_TEST, 0700) || errno == EEXIST, "mkdir %s: %m", CG_TEST);
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(CG_TEST "/cgroup.procs", pid);
	cg = open(CG_TEST, O_RDONLY | O_DIRECTORY);
	CHECK_OK(cg, CG_TEST);
	return cg;
}

static void cgroup_attach(int cg, int prog, int attach)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cg;
	attr.attach_bpf_fd = prog;
	attr.attach_type = attach;
	CHECK_OK(syscall(__NR_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr)),
		 "BPF_PROG_ATTACH");
}

/* Back to the root cgroup; ours goes, and its programs with it. */
static void cgroup_leave(int cg)
{
	char pid[16];

	xclose(cg);
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(CG_ROOT "/cgroup.procs", pid);
	CHECK_OK(rmdir(CG_TEST), "rmdir " CG_TEST);
}

/* Attach a cgroup sock_addr program for @attach that denies port @port. */
static void cgroup_deny_port(int cg, int attach, uint16_t port)
{
	const struct bpf_insn insns[] = {
		/* r2 = ctx->user_port (network order) */
		{ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = 2, .src_reg = 1,
		  .off = offsetof(struct bpf_sock_addr, user_port) },
		/* r0 = 1 (allow) */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1 },
		/* if r2 != the denied port goto exit */
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = 2, .off = 1,
		  .imm = htons(port) },
		/* r0 = 0 (deny: EPERM) */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	cgroup_attach(cg, bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach,
					insns, ARRAY_SIZE(insns)),
		      attach);
}

/*
 * A cgroup/connect4 program denying one port: connect() to it fails with
 * EPERM, for TCP and UDP, from a socket created after the program was
 * attached and from one created before (whose bind() still works);
 * another port is not denied.  NetKernel keeps the new sockets native
 * (SO_DOMAIN AF_INET) and fails the connect() of the older one closed;
 * socket(AF_NETKERNEL) fails with EPERM there.
 */
static void cgroup_bpf_connect4_client(void)
{
	struct sockaddr_in deny = peer_port(ctl_recv_long("PORT"));
	struct sockaddr_in allow = peer_port(ctl_recv_long("PORT"));
	struct sockaddr_in any = sin4((struct in_addr){ INADDR_ANY }, 0);
	int early, fd, cg, err = 0;

	cg = cgroup_enter();
	early = xsocket(AF_INET, SOCK_STREAM);	/* before the program */
	cgroup_deny_port(cg, BPF_CGROUP_INET4_CONNECT, ntohs(deny.sin_port));

	step = "connect to the denied port";
	if (cur->netkernel)	/* AF_NETKERNEL cannot run the program */
		CHECK_ERR(socket(19, SOCK_STREAM, 0), EPERM,
			  "socket(AF_NETKERNEL) in a cgroup with a connect4 program");
	CHECK_OK(bind(early, (struct sockaddr *)&any, sizeof(any)),
		 "bind, socket created before the program (no bind program)");
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_DOMAIN) == AF_INET,
	      "SO_DOMAIN of a socket the program applies to is not AF_INET");
	CHECK_ERR(connect(fd, (struct sockaddr *)&deny, sizeof(deny)), EPERM,
		  "TCP connect to the denied port");
	xclose(fd);
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_ERR(connect(fd, (struct sockaddr *)&deny, sizeof(deny)), EPERM,
		  "UDP connect to the denied port");
	xclose(fd);
	CHECK_ERR(connect(early, (struct sockaddr *)&deny, sizeof(deny)), EPERM,
		  "TCP connect to the denied port, socket created before the program");
	xclose(early);

	step = "connect to another port";
	fd = xsocket(AF_INET, SOCK_STREAM);
	if (connect(fd, (struct sockaddr *)&allow, sizeof(allow)))
		err = errno;
	CHECK(err != EPERM, "TCP connect to a port the program allows: EPERM");
	diag("connect to a port the program allows: %s", err ? strerror(err) : "connected");
	xclose(fd);

	cgroup_leave(cg);
	ctl_send("DONE");
}

static void cgroup_bpf_connect4_server(void)
{
	uint16_t deny = 0, allow = 0;
	int dfd = bound_socket(SOCK_STREAM, &deny);	/* bound, not listening */
	int afd = bound_socket(SOCK_STREAM, &allow);

	ctl_send("PORT %u", deny);
	ctl_send("PORT %u", allow);
	ctl_expect("DONE");
	xclose(dfd);
	xclose(afd);
}

/*
 * cgroup/bind4 and cgroup/sendmsg4 programs denying port 9: bind() to it
 * and a UDP sendto() to it fail with EPERM, from sockets created after
 * the programs were attached (native on NetKernel) and from sockets
 * created before (NetKernel fails them closed).
 */
static void cgroup_bpf_bind4_sendmsg4(void)
{
	struct sockaddr_in local = sin4((struct in_addr){ INADDR_ANY }, 9);
	struct sockaddr_in dst = peer_port(9);
	int early_t, early_u, fd, cg;

	cg = cgroup_enter();
	early_t = xsocket(AF_INET, SOCK_STREAM);	/* before the programs */
	early_u = xsocket(AF_INET, SOCK_DGRAM);
	cgroup_deny_port(cg, BPF_CGROUP_INET4_BIND, 9);
	cgroup_deny_port(cg, BPF_CGROUP_UDP4_SENDMSG, 9);

	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK_ERR(bind(fd, (struct sockaddr *)&local, sizeof(local)), EPERM,
		  "TCP bind to the denied port");
	xclose(fd);
	CHECK_ERR(bind(early_t, (struct sockaddr *)&local, sizeof(local)), EPERM,
		  "TCP bind to the denied port, socket created before the program");
	xclose(early_t);
	fd = xsocket(AF_INET, SOCK_DGRAM);
	CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)), EPERM,
		  "UDP sendto the denied port");
	xclose(fd);
	CHECK_ERR(sendto(early_u, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)), EPERM,
		  "UDP sendto the denied port, socket created before the program");
	xclose(early_u);
	cgroup_leave(cg);
}

/*
 * A cgroup/getsockopt program (it lets every call through) is given the
 * socket of each getsockopt(): an inet socket, AF_INET, as natively.  A
 * NetKernel socket would be an AF_NETKERNEL one, which such a program's
 * helpers can take for a tcp_sock (bpf_tcp_sock() checks the protocol
 * only): NetKernel keeps the socket native.
 */
static void cgroup_bpf_sockopt(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int cg, fd;

	cg = cgroup_enter();
	cgroup_attach(cg, bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCKOPT,
					BPF_CGROUP_GETSOCKOPT, insns,
					ARRAY_SIZE(insns)),
		      BPF_CGROUP_GETSOCKOPT);
	fd = xsocket(AF_INET, SOCK_STREAM);
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_DOMAIN) == AF_INET,
	      "SO_DOMAIN is not AF_INET in a cgroup with a getsockopt program");
	CHECK(get_int_opt(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP,
	      "SO_PROTOCOL is not IPPROTO_TCP");
	xclose(fd);
	cgroup_leave(cg);
}

/* ---------------------------------------------------------------- table */

#define CASE(n, c, s)		{ .name = n, .client = c, .server = s }
#define CASE_T(n, c, s, t)	{ .name = n, .client = c, .server = s, .timeout = t }
#define CASE_P(n, c, s)		{ .name = n, .client = c, .server = s, .passive = true }

static const struct test_case cases[] = {
	CASE("tcp_connect_accept.active", tcp_connect_accept, tcp_connect_accept),
	CASE_P("tcp_connect_accept.passive", tcp_connect_accept, tcp_connect_accept),
	CASE("tcp_sockname_peername.active", tcp_names, tcp_names),
	CASE_P("tcp_sockname_peername.passive", tcp_names, tcp_names),
	CASE("tcp_bind_explicit_port", tcp_bind_explicit_client, tcp_bind_explicit_server),
	CASE("tcp_bind_port0", tcp_bind_port0_client, tcp_bind_port0_server),
	CASE("tcp_bind_eaddrinuse", tcp_eaddrinuse, tcp_eaddrinuse),
	CASE("tcp_so_reuseaddr", tcp_reuseaddr_client, tcp_reuseaddr_server),
	CASE("tcp_econnrefused", tcp_refused_client, tcp_refused_server),
	CASE("tcp_connect_timeout", tcp_connect_timeout_client, tcp_connect_timeout_server),
	CASE("tcp_nonblocking_connect", tcp_nb_connect_client, tcp_nb_connect_server),
	CASE("tcp_accept4_flags", tcp_accept4_client, tcp_accept4_server),
	CASE_T("tcp_bulk_16m.active", tcp_bulk, tcp_bulk, 120),
	{ .name = "tcp_bulk_16m.passive", .client = tcp_bulk, .server = tcp_bulk,
	  .timeout = 120, .passive = true },
	CASE("tcp_msg_dontwait", tcp_dontwait_client, tcp_dontwait_server),
	CASE("tcp_msg_peek", tcp_peek_client, tcp_peek_server),
	CASE("tcp_msg_waitall", tcp_waitall_client, tcp_waitall_server),
	CASE_T("tcp_msg_peek_race", tcp_peek_race, tcp_peek_race, 120),
	CASE("tcp_iovec", tcp_iovec, tcp_iovec),
	CASE("tcp_shutdown_wr.active", tcp_shut_wr_client, tcp_shut_wr_server),
	CASE_P("tcp_shutdown_wr.passive", tcp_shut_wr_client, tcp_shut_wr_server),
	CASE("tcp_shutdown_rd", tcp_shut_rd_client, tcp_shut_rd_server),
	CASE("tcp_shutdown_rdwr", tcp_shut_rdwr_client, tcp_shut_rdwr_server),
	CASE("tcp_close_queued.active", tcp_close_queued_client, tcp_close_queued_server),
	CASE_P("tcp_close_queued.passive", tcp_close_queued_client, tcp_close_queued_server),
	CASE("tcp_linger0_reset.active", tcp_linger0_client, tcp_linger0_server),
	CASE_P("tcp_linger0_reset.passive", tcp_linger0_client, tcp_linger0_server),
	CASE("tcp_epipe_sigpipe", tcp_epipe_client, tcp_epipe_server),
	CASE("tcp_fionread_siocoutq", tcp_ioctl_client, tcp_ioctl_server),
	CASE("tcp_oob_urgent_byte", tcp_oob_recv, tcp_oob_send),
	CASE("tcp_oob_urgent_byte.server", tcp_oob_send, tcp_oob_recv),
	CASE("tcp_oob_inline", tcp_oob_inline, tcp_oob_send),
	CASE("tcp_oob_inline.server", tcp_oob_send, tcp_oob_inline),
	CASE("tcp_oob_in_stream", tcp_oob_stream, tcp_oob_send),
	CASE("tcp_oob_in_stream.server", tcp_oob_send, tcp_oob_stream),
	CASE("tcp_oob_in_stream_inline", tcp_oob_stream_inline, tcp_oob_send),
	CASE("tcp_oob_in_stream_inline.server", tcp_oob_send, tcp_oob_stream_inline),
	CASE("tcp_so_rcvtimeo_sndtimeo", tcp_timeo_client, tcp_timeo_server),
	CASE("tcp_nodelay", tcp_nodelay, tcp_nodelay),
	CASE("tcp_info_state", tcp_info_client, tcp_info_server),
	CASE("tcp_keepalive", tcp_keepalive, tcp_keepalive),
	CASE("tcp_rcvbuf_sndbuf", tcp_bufsize, tcp_bufsize),
	CASE("tcp_rcvlowat_big", tcp_rcvlowat_big_client, tcp_rcvlowat_big_server),
	CASE("sockopt_table", sockopt_table, no_server),
	CASE("poll_events", poll_events_client, poll_events_server),
	CASE("epoll_in_out_rdhup_hup", epoll_events_client, epoll_events_server),
	CASE("epoll_err", epoll_err_client, epoll_err_server),
	CASE("epoll_level_edge", epoll_lt_et_client, epoll_lt_et_server),
	CASE("epoll_64_sockets", epoll_many_client, epoll_many_server),
	CASE("select", select_client, select_server),
	CASE("udp_sendto_recvfrom", udp_sendto_client, udp_sendto_server),
	CASE("udp_connected", udp_connected_client, udp_connected_server),
	CASE("udp_boundaries_msg_trunc", udp_trunc_client, udp_trunc_server),
	CASE("udp_dgram_beyond_credit", udp_beyond_credit_client, udp_beyond_credit_server),
	CASE("udp_econnrefused", udp_refused_client, udp_refused_server),
	CASE("udp_cmsg_pktinfo_tos_ttl_timestamp", udp_cmsg_client, udp_cmsg_server),
	CASE("udp_errqueue_icmp", udp_errqueue_client, udp_refused_server),
	CASE("udp_sendmsg_pktinfo", udp_pktinfo_send_client, udp_pktinfo_send_server),
	CASE("udp_connect_unspec", udp_connect_unspec_client, udp_connect_unspec_server),
	CASE("udp_max_datagram", udp_max4, udp_max4),
	CASE("udp_max_datagram_pktinfo", udp_max4_pktinfo, udp_max4_pktinfo),
	CASE("tcp_connect_unspec", tcp_connect_unspec_client, tcp_connect_unspec_server),
	CASE("so_domain_protocol_type", so_domain, no_server),
	CASE("ipv6_dualstack_listen.active", ipv6_dual_listen, ipv6_dual_listen),
	CASE_P("ipv6_dualstack_listen.passive", ipv6_dual_listen, ipv6_dual_listen),
	CASE("ipv6_v4mapped_connect", ipv6_mapped_connect, ipv6_mapped_connect),
	CASE("ipv6_v6only.active", ipv6_v6only, ipv6_v6only),
	CASE_P("ipv6_v6only.passive", ipv6_v6only, ipv6_v6only),
	CASE("ipv6_tcp", ipv6_tcp, ipv6_tcp),
	CASE("ipv6_udp", ipv6_udp, ipv6_udp),
	CASE("ipv6_udp_cmsg", ipv6_udp_cmsg, ipv6_udp_cmsg),
	CASE("ipv6_udp_max_datagram", udp_max6, udp_max6),
	CASE("ipv6_udp_max_datagram_pktinfo", udp_max6_pktinfo, udp_max6_pktinfo),
	CASE("ipv6_dual_options", ipv6_dual_options, ipv6_dual_options),
	CASE("ipv6_listen_twice", ipv6_listen_twice, ipv6_listen_twice),
	CASE("signal_eintr", sig_eintr_client, sig_eintr_server),
	CASE("fork_dup_shared", fork_dup_client, fork_dup_server),
	CASE("loopback", loopback, loopback),
	CASE("wildcard_local_remote", wildcard_local_remote_client, wildcard_local_remote_server),
	CASE("loopback_private", loopback_private_client, loopback_private_server),
	CASE("netns_native", netns_native, no_server),
	CASE("bind_privileged_port", bind_privileged_port, no_server),
	CASE("cgroup_bpf_connect4", cgroup_bpf_connect4_client, cgroup_bpf_connect4_server),
	CASE("cgroup_bpf_bind4_sendmsg4", cgroup_bpf_bind4_sendmsg4, no_server),
	CASE("cgroup_bpf_sockopt", cgroup_bpf_sockopt, no_server),
};

#define NCASES	((int)ARRAY_SIZE(cases))

/* ------------------------------------------------------------ the runner */

static void on_alarm(int sig)
{
	(void)sig;
	FAIL("timed out (alarm)");
}

/*
 * Run one side of case @idx in a child process of its own (its own
 * process group, so helpers die with it); at most @timeout seconds.
 * Returns a CASE_* code, the reason in @reason.
 */
static int run_child(struct ctx *base, int idx, int timeout, char *reason, size_t size)
{
	const struct test_case *tc = &cases[idx];
	struct sigaction sa = { .sa_handler = on_alarm };
	long long end = now_ms() + (timeout + 5) * 1000LL;
	int pfd[2], status = 0, code;
	ssize_t n;
	pid_t pid;

	reason[0] = '\0';
	if (pipe(pfd)) {
		snprintf(reason, size, "pipe: %m");
		return CASE_FAIL;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(reason, size, "fork: %m");
		close(pfd[0]);
		close(pfd[1]);
		return CASE_FAIL;
	}
	if (!pid) {
		struct ctx c = *base;

		close(pfd[0]);
		setpgid(0, 0);
		c.name = tc->name;
		c.passive = tc->passive;
		c.resfd = pfd[1];
		cur = &c;
		step = "start";
		sigaction(SIGALRM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		alarm(timeout);
		if (c.client)
			tc->client();
		else
			tc->server();
		fflush(stdout);
		_exit(CASE_PASS);
	}
	close(pfd[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > end) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(reason, size, "killed after %d s", timeout + 5);
			close(pfd[0]);
			return CASE_FAIL;
		}
		sleep_ms(5);
	}
	kill(-pid, SIGKILL);		/* helpers left behind */
	n = read(pfd[0], reason, size - 1);
	reason[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	if (WIFSIGNALED(status)) {
		snprintf(reason, size, "killed by signal %d", WTERMSIG(status));
		return CASE_FAIL;
	}
	code = WEXITSTATUS(status);
	if (code != CASE_PASS && code != CASE_SKIP)
		code = CASE_FAIL;
	return code;
}

/*
 * Both parents: run the case, send "END idx code reason", and read up to
 * the other side's END (discarding what its child left unread).  Returns
 * our code; *@peer_code is the other side's, -1 if the connection is lost.
 */
static int run_case(struct ctx *base, int idx, int timeout, char *reason, size_t size,
		    int *peer_code, char *peer_reason, size_t psize)
{
	char line[CTL_LINE_MAX], head[32];
	size_t hlen;
	int code;

	code = run_child(base, idx, timeout, reason, size);
	*peer_code = -1;
	peer_reason[0] = '\0';
	snprintf(line, sizeof(line), "END %d %d %s", idx, code, reason);
	if (ctl_raw_send(base->ctl, line))
		return code;
	hlen = snprintf(head, sizeof(head), "END %d ", idx);
	for (;;) {
		if (ctl_raw_recv(base->ctl, line, sizeof(line),
				 (timeout + 20) * 1000) < 0)
			return code;
		if (!strncmp(line, head, hlen))
			break;
	}
	*peer_code = atoi(line + hlen);
	snprintf(peer_reason, psize, "%s", strchrnul(line + hlen, ' ') +
		 (strchr(line + hlen, ' ') ? 1 : 0));
	return code;
}

static bool on_netkernel(void)
{
	return access("/proc/net/netkernel", F_OK) == 0;
}

static int find_case(const char *name)
{
	int i;

	for (i = 0; i < NCASES; i++)
		if (!strcmp(cases[i].name, name))
			return i;
	return -1;
}

static int serve_one(int ctl)
{
	char line[CTL_LINE_MAX], reason[CTL_LINE_MAX], preason[CTL_LINE_MAX];
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct ctx base;
	int idx, pcode, code;
	char *sp;

	memset(&base, 0, sizeof(base));
	base.ctl = ctl;
	base.resfd = -1;
	base.netkernel = on_netkernel();
	if (getpeername(ctl, (struct sockaddr *)&base.peer, &len))
		return -1;
	len = sizeof(sin);
	if (getsockname(ctl, (struct sockaddr *)&base.self, &len))
		return -1;
	if (ctl_raw_recv(ctl, line, sizeof(line), 10000) < 0 ||
	    strncmp(line, "HELLO nk_sockets", 16))
		return -1;
	snprintf(line, sizeof(line), "HELLO %s", addr_str(&base.peer));
	if (ctl_raw_send(ctl, line))
		return -1;
	fprintf(stderr, "nk_sockets server: client %s%s\n", addr_str(&base.peer),
		base.netkernel ? " (this side on NetKernel)" : "");
	for (;;) {
		if (ctl_raw_recv(ctl, line, sizeof(line), 3600 * 1000) < 0)
			return -1;
		if (!strcmp(line, "BYE"))
			return 0;
		if (sscanf(line, "CASE %d", &idx) != 1)
			return -1;
		sp = strchr(line + 5, ' ');
		if (!sp || idx < 0 || find_case(sp + 1) != idx) {
			snprintf(line, sizeof(line), "NOCASE %d", idx);
			ctl_raw_send(ctl, line);
			continue;
		}
		snprintf(line, sizeof(line), "GO %d", idx);
		if (ctl_raw_send(ctl, line))
			return -1;
		idx = find_case(sp + 1);
		code = run_case(&base, idx, cases[idx].timeout ?: CASE_TIMEOUT, reason,
				sizeof(reason), &pcode, preason, sizeof(preason));
		if (pcode < 0)
			return -1;
		if (code == CASE_FAIL && strncmp(reason, "line ", 5))
			fprintf(stderr, "nk_sockets server: %s: FAIL %s\n", cases[idx].name,
				reason);
	}
}

static int ctl_listen(const char *bind_addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "nk_sockets: bad address %s\n", bind_addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4)) {
		perror("nk_sockets: control listener");
		return -1;
	}
	return fd;
}

static int server_main(const char *bind_addr, int port)
{
	int lfd = ctl_listen(bind_addr, port);
	int fd;

	if (lfd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "nk_sockets server: listening on %s:%d\n", bind_addr, port);
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("nk_sockets: accept");
			return 1;
		}
		if (serve_one(fd))
			fprintf(stderr, "nk_sockets server: the client run ended abnormally\n");
		else
			fprintf(stderr, "nk_sockets server: client run done\n");
		close(fd);
	}
}

struct selection {
	const char *run[32];
	int nrun;
	const char *skip[32];
	int nskip;
};

static bool selected(const struct selection *sel, const char *name)
{
	int i;

	for (i = 0; i < sel->nskip; i++)
		if (strstr(name, sel->skip[i]))
			return false;
	if (!sel->nrun)
		return true;
	for (i = 0; i < sel->nrun; i++)
		if (strstr(name, sel->run[i]))
			return true;
	return false;
}

static int client_connect(const char *server, int port, struct ctx *base)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	char line[CTL_LINE_MAX];
	int fd, i;

	if (inet_pton(AF_INET, server, &sin.sin_addr) != 1) {
		fprintf(stderr, "nk_sockets: bad address %s\n", server);
		return -1;
	}
	for (i = 0; ; i++) {		/* the server may be starting */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (!connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			break;
		close(fd);
		if (i == 50) {
			printf("# cannot connect to the server %s:%d: %m\n", server, port);
			return -1;
		}
		sleep_ms(200);
	}
	base->ctl = fd;
	base->peer = sin;
	if (ctl_raw_send(fd, "HELLO nk_sockets 1") ||
	    ctl_raw_recv(fd, line, sizeof(line), 10000) < 0 ||
	    strncmp(line, "HELLO ", 6)) {
		printf("# no HELLO from the server\n");
		return -1;
	}
	/* our address as the server sees it: "HELLO a.b.c.d:port" */
	*strchrnul(line, ':') = '\0';
	base->self.sin_family = AF_INET;
	if (inet_pton(AF_INET, line + 6, &base->self.sin_addr) != 1) {
		printf("# bad HELLO from the server\n");
		return -1;
	}
	return 0;
}

/*
 * The client's KTAP, printed here only: the plan, one point per case run
 * (its number counted here, its name the case table's), the totals.
 */
struct ktap {
	int num, pass, fail, skip;
};

static void ktap_plan(int n)
{
	printf("KTAP version 1\n1..%d\n", n);
}

/* One point: CASE_PASS, CASE_SKIP (WHY is the reason) or CASE_FAIL (WHY, if
 * any, follows a "#").
 */
static void ktap_point(struct ktap *k, int code, const char *name, const char *why)
{
	k->num++;
	if (code == CASE_FAIL) {
		k->fail++;
		printf("not ok %d %s", k->num, name);
		if (why)
			printf(" # %s", why);
	} else if (code == CASE_SKIP) {
		k->skip++;
		printf("ok %d %s # SKIP %s", k->num, name, why);
	} else {
		k->pass++;
		printf("ok %d %s", k->num, name);
	}
	printf("\n");
}

static void ktap_totals(const struct ktap *k)
{
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", k->pass,
	       k->fail, k->skip);
}

static int client_main(const char *server, const char *server6, int port,
		       const struct selection *sel, int run_timeout)
{
	char line[CTL_LINE_MAX], reason[CTL_LINE_MAX], preason[CTL_LINE_MAX];
	int i, n = 0, code, pcode, timeout;
	struct ktap k = { 0 };
	long long end = now_ms() + run_timeout * 1000LL;
	bool broken = false;
	struct ctx base;

	for (i = 0; i < NCASES; i++)
		n += selected(sel, cases[i].name);
	memset(&base, 0, sizeof(base));
	base.client = true;
	base.resfd = -1;
	base.netkernel = on_netkernel();
	if (server6) {
		base.peer6.sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, server6, &base.peer6.sin6_addr) != 1) {
			fprintf(stderr, "nk_sockets: bad IPv6 address %s\n", server6);
			return 2;
		}
		base.have_peer6 = true;
	}
	signal(SIGPIPE, SIG_IGN);
	ktap_plan(n);
	if (client_connect(server, port, &base)) {
		printf("Bail out! no control connection to %s:%d\n", server, port);
		return 1;
	}
	printf("# nk_sockets: server %s, this side %s (seen as %s)\n", addr_str(&base.peer),
	       base.netkernel ? "on NetKernel" : "native", inet_ntoa(base.self.sin_addr));
	fflush(stdout);
	for (i = 0; i < NCASES; i++) {
		const struct test_case *tc = &cases[i];
		long long left = (end - now_ms()) / 1000;

		if (!selected(sel, tc->name))
			continue;
		if (broken || left < 5) {
			ktap_point(&k, CASE_FAIL, tc->name, broken ?
				   "control connection lost" : "run time limit reached");
			continue;
		}
		timeout = tc->timeout ?: CASE_TIMEOUT;
		if (timeout > left)
			timeout = left;
		snprintf(line, sizeof(line), "CASE %d %s", i, tc->name);
		if (ctl_raw_send(base.ctl, line) ||
		    ctl_raw_recv(base.ctl, line, sizeof(line), 10000) < 0) {
			broken = true;
			i--;
			continue;
		}
		if (strncmp(line, "GO ", 3) || atoi(line + 3) != i) {
			printf("# %s: the server does not know this case (%s)\n", tc->name,
			       line);
			ktap_point(&k, CASE_FAIL, tc->name, NULL);
			continue;
		}
		code = run_case(&base, i, timeout, reason, sizeof(reason), &pcode, preason,
				sizeof(preason));
		if (code == CASE_FAIL && reason[0] && strncmp(reason, "line ", 5))
			printf("# %s: %s\n", tc->name, reason);
		if (pcode < 0) {
			printf("# %s: control connection lost\n", tc->name);
			ktap_point(&k, CASE_FAIL, tc->name, NULL);
			broken = true;
			continue;
		}
		if (pcode == CASE_FAIL && !strstr(preason, "the other side failed"))
			printf("# %s: server: %s\n", tc->name, preason);
		if (code == CASE_FAIL || pcode == CASE_FAIL)
			ktap_point(&k, CASE_FAIL, tc->name, NULL);
		else if (code == CASE_SKIP || pcode == CASE_SKIP)
			ktap_point(&k, CASE_SKIP, tc->name,
				   code == CASE_SKIP ? reason : preason);
		else
			ktap_point(&k, CASE_PASS, tc->name, NULL);
		fflush(stdout);
	}
	if (!broken)
		ctl_raw_send(base.ctl, "BYE");
	ktap_totals(&k);
	return k.fail ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: nk_sockets server [--bind ADDR] [--port N] [--io-timeout MS]\n"
		"       nk_sockets client --server ADDR [--server6 ADDR6] [--port N] [--run NAME]...\n"
		"                         [--skip NAME]... [--timeout SECS] [--io-timeout MS]\n"
		"       nk_sockets list\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bind", required_argument, NULL, 'b' },
		{ "server", required_argument, NULL, 's' },
		{ "server6", required_argument, NULL, '6' },
		{ "port", required_argument, NULL, 'p' },
		{ "run", required_argument, NULL, 'r' },
		{ "skip", required_argument, NULL, 'x' },
		{ "timeout", required_argument, NULL, 't' },
		{ "io-timeout", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bind_addr = "0.0.0.0", *server = NULL, *server6 = NULL, *mode;
	int opt, port = DEFAULT_PORT, run_timeout = RUN_TIMEOUT, i;
	struct selection sel;

	memset(&sel, 0, sizeof(sel));
	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "b:s:6:p:r:x:t:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			bind_addr = optarg;
			break;
		case 's':
			server = optarg;
			break;
		case '6':
			server6 = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'r':
			if (sel.nrun < 32)
				sel.run[sel.nrun++] = optarg;
			break;
		case 'x':
			if (sel.nskip < 32)
				sel.skip[sel.nskip++] = optarg;
			break;
		case 't':
			run_timeout = atoi(optarg);
			break;
		case 'i':
			io_timeout_ms = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "list")) {
		for (i = 0; i < NCASES; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	if (!strcmp(mode, "server"))
		return server_main(bind_addr, port);
	if (!strcmp(mode, "client") && server)
		return client_main(server, server6, port, &sel, run_timeout);
	usage();
	return 2;
}
