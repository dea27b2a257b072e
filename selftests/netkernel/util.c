// SPDX-License-Identifier: GPL-2.0
/*
 * nk_sockets helpers: assertions, the control channel, sockets and the
 * reproducible data stream used for integrity checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct ctx *cur;
int io_timeout_ms = 10000;
const char *step = "start";

static bool ctl_has_data;	/* the next control line is not ABORT/SKIP */

static void put_reason(const char *msg)
{
	ssize_t ret;

	if (!cur || cur->resfd < 0)
		return;
	ret = write(cur->resfd, msg, strlen(msg));
	(void)ret;
	close(cur->resfd);
	cur->resfd = -1;
}

static void vdiag(const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cur && cur->client) {
		printf("# %s: %s\n", cur->name, msg);
		fflush(stdout);
	} else {
		fprintf(stderr, "nk_sockets server: %s: %s\n",
			cur ? cur->name : "-", msg);
	}
}

void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

/* End the case: report @msg to our parent and tell the other side. */
static __noreturn void end_case(int code, const char *word, const char *msg,
				 bool tell)
{
	char line[CTL_LINE_MAX];

	put_reason(msg);
	if (tell && cur && cur->ctl >= 0) {
		snprintf(line, sizeof(line), "%s %s", word, msg);
		ctl_raw_send(cur->ctl, line);
	}
	fflush(stdout);
	_exit(code);
}

static __noreturn void vfail(bool tell, int line, const char *fmt,
			      va_list ap)
{
	char msg[400], full[460];

	vsnprintf(msg, sizeof(msg), fmt, ap);	/* first: %m reads errno */
	snprintf(full, sizeof(full), "line %d (%s): %s", line, step, msg);
	diag("FAIL %s", full);
	end_case(CASE_FAIL, "ABORT", full, tell);
}

void fail_at(int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(true, line, fmt, ap);
}

void skip_case(const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	end_case(CASE_SKIP, "SKIP", msg, true);
}

static __noreturn __printf(2, 3) void fail_quiet(int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(false, line, fmt, ap);
}

void check_err_at(int line, long ret, int err, const char *ename,
		  const char *what)
{
	int saved = errno;

	if (ret == -1 && saved == err)
		return;
	if (ret == -1)
		fail_at(line, "%s: expected -1 %s, got -1 %s (%s)", what, ename,
			strerrorname_np(saved) ?: "?", strerror(saved));
	fail_at(line, "%s: expected -1 %s, got %ld", what, ename, ret);
}

void check_ret_at(int line, long ret, long want, const char *what)
{
	int saved = errno;

	if (ret == want)
		return;
	if (ret == -1)
		fail_at(line, "%s: expected %ld, got -1 %s (%s)", what, want,
			strerrorname_np(saved) ?: "?", strerror(saved));
	fail_at(line, "%s: expected %ld, got %ld", what, want, ret);
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- control channel ---- */

int ctl_raw_send(int fd, const char *line)
{
	char buf[CTL_LINE_MAX + 1];
	size_t len, done = 0;
	ssize_t ret;

	snprintf(buf, sizeof(buf) - 1, "%s", line);
	len = strlen(buf);
	buf[len++] = '\n';
	while (done < len) {
		ret = send(fd, buf + done, len - done, MSG_NOSIGNAL);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return -1;
		done += ret;
	}
	return 0;
}

/*
 * Read one line, a byte at a time: the connection is shared by a parent and
 * its case's child, so nothing may be read ahead.  Returns the length, or -1
 * on timeout, error or EOF.
 */
int ctl_raw_recv(int fd, char *buf, size_t size, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0;
	ssize_t ret;
	char ch;

	for (;;) {
		long long left = end - now_ms();

		if (left < 0)
			left = 0;
		ret = poll(&pfd, 1, left);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return -1;
		ret = recv(fd, &ch, 1, 0);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return -1;
		if (ch == '\n')
			break;
		if (len + 1 < size)
			buf[len++] = ch;
	}
	buf[len] = '\0';
	return len;
}

void ctl_send(const char *fmt, ...)
{
	char line[CTL_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ctl_raw_send(cur->ctl, line))
		fail_quiet(__LINE__, "control channel: send \"%s\": %m", line);
}

/*
 * The other side's parent ends every case with an "END ..." line once its
 * child is done; that line belongs to our parent, so a case's child must
 * never consume it.
 */
static void ctl_check_end(void)
{
	struct pollfd pfd = { .fd = cur->ctl, .events = POLLIN };
	long long end = now_ms() + io_timeout_ms;
	char peek[4];
	ssize_t ret;

	for (;;) {
		long long left = end - now_ms();

		if (left < 0)
			return;	/* ctl_raw_recv() reports the timeout */
		ret = poll(&pfd, 1, left);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return;
		ret = recv(cur->ctl, peek, sizeof(peek), MSG_PEEK);
		if (ret <= 0)
			return;
		if (ret == sizeof(peek) || memchr(peek, '\n', ret))
			break;
		sleep_ms(1);
	}
	if (ret == sizeof(peek) && !memcmp(peek, "END ", 4))
		fail_quiet(__LINE__, "the other side ended the case (step %s)", step);
}

void ctl_recv(char *buf, size_t size)
{
	ctl_check_end();
	if (ctl_raw_recv(cur->ctl, buf, size, io_timeout_ms) < 0)
		fail_quiet(__LINE__, "control channel: no message within %d ms",
			   io_timeout_ms);
	ctl_has_data = false;
	if (!strncmp(buf, "ABORT ", 6))
		fail_quiet(__LINE__, "the other side failed: %s", buf + 6);
	if (!strncmp(buf, "SKIP ", 5))
		end_case(CASE_SKIP, "SKIP", buf + 5, false);
}

void ctl_expect(const char *line)
{
	char buf[CTL_LINE_MAX];

	ctl_recv(buf, sizeof(buf));
	if (strcmp(buf, line))
		fail_quiet(__LINE__, "control channel: expected \"%s\", got \"%s\"",
			   line, buf);
}

long ctl_recv_long(const char *key)
{
	char buf[CTL_LINE_MAX], *end;
	size_t klen = strlen(key);
	long val;

	ctl_recv(buf, sizeof(buf));
	if (strncmp(buf, key, klen) || buf[klen] != ' ')
		fail_quiet(__LINE__, "control channel: expected \"%s N\", got \"%s\"",
			   key, buf);
	errno = 0;
	val = strtol(buf + klen + 1, &end, 0);
	if (errno || *end)
		fail_quiet(__LINE__, "control channel: bad number in \"%s\"", buf);
	return val;
}

/* ---- waiting ---- */

/*
 * poll() @fd for @events for at most @timeout_ms; meanwhile an ABORT or
 * SKIP from the other side ends the case at once.  Returns the revents of
 * @fd, 0 on timeout.
 */
short wait_fd(int fd, short events, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	struct pollfd pfd[2];
	char peek[6];
	int ret, n;

	for (;;) {
		long long left = end - now_ms();

		if (left < 0)
			left = 0;
		pfd[0] = (struct pollfd){ .fd = fd, .events = events };
		n = 1;
		if (cur && cur->ctl >= 0 && cur->ctl != fd && !ctl_has_data) {
			pfd[1] = (struct pollfd){ .fd = cur->ctl,
						  .events = POLLIN };
			n = 2;
		}
		ret = poll(pfd, n, left);
		if (ret < 0 && errno == EINTR)
			continue;
		CHECK(ret >= 0, "poll: %m");
		if (pfd[0].revents)
			return pfd[0].revents;
		if (n == 2 && pfd[1].revents) {
			ret = recv(cur->ctl, peek, sizeof(peek), MSG_PEEK);
			if (ret <= 0)
				fail_quiet(__LINE__, "control channel closed");
			if (ret >= 4 && !memcmp(peek, "END ", 4)) {
				/* its part is done; ours may still be busy */
				ctl_has_data = true;
				continue;
			}
			if ((ret >= 5 && !memcmp(peek, "SKIP ", 5)) ||
			    (ret >= 6 && !memcmp(peek, "ABORT ", 6))) {
				char buf[CTL_LINE_MAX];

				ctl_recv(buf, sizeof(buf));
			}
			if (memcmp(peek, "SKIP ", ret < 5 ? ret : 5) &&
			    memcmp(peek, "ABORT ", ret))
				ctl_has_data = true;	/* an ordinary line */
			else
				sleep_ms(1);		/* not all there yet */
			continue;
		}
		if (!left)
			return 0;
	}
}

/* Like wait_fd(), but failing the case when nothing comes in time. */
short wait_ev(int fd, short events)
{
	short rev = wait_fd(fd, events, io_timeout_ms);

	CHECK(rev, "fd %d: none of the poll events %#x within %d ms", fd,
	      events, io_timeout_ms);
	return rev;
}

/* ---- addresses ---- */

struct sockaddr_in sin4(struct in_addr addr, uint16_t port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr = addr,
	};

	return sin;
}

const char *addr_str(const void *sa)
{
	static char bufs[4][INET6_ADDRSTRLEN + 16];
	static int next;
	const struct sockaddr_in6 *s6 = sa;
	const struct sockaddr_in *s4 = sa;
	char ip[INET6_ADDRSTRLEN];
	char *buf = bufs[next++ % 4];

	if (s4->sin_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(bufs[0]), "%s:%u", ip, ntohs(s4->sin_port));
	} else if (s6->sin6_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(bufs[0]), "[%s]:%u", ip,
			 ntohs(s6->sin6_port));
	} else {
		snprintf(buf, sizeof(bufs[0]), "(family %d)", s4->sin_family);
	}
	return buf;
}

/* Same family, address and port. */
bool same_addr(const void *a, const void *b)
{
	const struct sockaddr_in6 *a6 = a, *b6 = b;
	const struct sockaddr_in *a4 = a, *b4 = b;

	if (a4->sin_family != b4->sin_family)
		return false;
	if (a4->sin_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		       a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port &&
	       !memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr));
}

struct sockaddr_in sock_name4(int fd, bool peer)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int ret;

	memset(&sin, 0, sizeof(sin));
	if (peer)
		ret = getpeername(fd, (struct sockaddr *)&sin, &len);
	else
		ret = getsockname(fd, (struct sockaddr *)&sin, &len);
	CHECK_OK(ret, peer ? "getpeername" : "getsockname");
	CHECK(len == sizeof(sin) && sin.sin_family == AF_INET,
	      "%s: length %u family %d, want %zu AF_INET",
	      peer ? "getpeername" : "getsockname", len, sin.sin_family,
	      sizeof(sin));
	return sin;
}

/* ---- sockets ---- */

int xsocket(int family, int type)
{
	int fd = socket(family, type, 0);

	CHECK(fd >= 0, "socket(%d, %#x): %m", family, type);
	return fd;
}

int tcp_listener(int family, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = xsocket(family, SOCK_STREAM);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	len = family == AF_INET ? sizeof(struct sockaddr_in) :
				  sizeof(struct sockaddr_in6);
	CHECK_OK(bind(fd, (struct sockaddr *)&ss, len), "bind port 0");
	CHECK_OK(listen(fd, 128), "listen");
	CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len), "getsockname");
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	CHECK(*port, "listener has port 0");
	return fd;
}

int tcp_connect(const void *sa)
{
	const struct sockaddr *s = sa;
	socklen_t len = s->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
						  sizeof(struct sockaddr_in6);
	int fd = xsocket(s->sa_family, SOCK_STREAM);

	step = "connect";
	CHECK(connect(fd, s, len) == 0, "connect to %s: %m", addr_str(sa));
	return fd;
}

int accept_wait(int lfd, void *sa)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd;

	step = "accept";
	wait_ev(lfd, POLLIN);
	fd = accept(lfd, (struct sockaddr *)&ss, &len);
	CHECK(fd >= 0, "accept: %m");
	if (sa)
		memcpy(sa, &ss, len);
	return fd;
}

/*
 * The TCP connection of a ".active"/".passive" case: the server listens and
 * the client connects, or (passive) the other way round.
 */
int pair_open(void)
{
	bool listen_here = cur->client == cur->passive;
	struct sockaddr_in sin;
	uint16_t port;
	int lfd, fd;

	if (listen_here) {
		lfd = tcp_listener(AF_INET, &port);
		ctl_send("PORT %u", port);
		fd = accept_wait(lfd, NULL);
		close(lfd);
	} else {
		port = ctl_recv_long("PORT");
		sin = sin4(cur->peer.sin_addr, port);
		fd = tcp_connect(&sin);
	}
	step = "test";
	return fd;
}

void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	CHECK_OK(fl, "fcntl F_GETFL");
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	CHECK_OK(fcntl(fd, F_SETFL, fl), "fcntl F_SETFL");
}

int get_int_opt(int fd, int level, int name)
{
	socklen_t len = sizeof(int);
	int val = -1;

	CHECK(getsockopt(fd, level, name, &val, &len) == 0,
	      "getsockopt(%d, %d): %m", level, name);
	CHECK(len == sizeof(int), "getsockopt(%d, %d): length %u", level, name,
	      len);
	return val;
}

void set_int_opt(int fd, int level, int name, int val)
{
	CHECK(setsockopt(fd, level, name, &val, sizeof(val)) == 0,
	      "setsockopt(%d, %d, %d): %m", level, name, val);
}

void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t ret;

	while (len) {
		wait_ev(fd, POLLOUT);
		ret = send(fd, p, len, MSG_NOSIGNAL);
		if (ret < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		CHECK(ret > 0, "send: %m");
		p += ret;
		len -= ret;
	}
}

void recv_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t ret;

	while (len) {
		wait_ev(fd, POLLIN);
		ret = recv(fd, p, len, 0);
		if (ret < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		CHECK(ret >= 0, "recv: %m");
		CHECK(ret > 0, "recv: EOF with %zu bytes still expected", len);
		p += ret;
		len -= ret;
	}
}

void expect_eof(int fd)
{
	char ch;

	wait_ev(fd, POLLIN);
	CHECK_RET(recv(fd, &ch, 1, MSG_DONTWAIT), 0, "recv at end of stream");
}

/* ---- data stream ---- */

static uint32_t crc_table[256];

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c;
	int i, k;

	if (!crc_table[1]) {
		for (i = 0; i < 256; i++) {
			c = i;
			for (k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
			crc_table[i] = c;
		}
	}
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void ps_init(struct pstream *ps, uint64_t seed)
{
	ps->seed = seed;
	ps->off = 0;
	ps->crc = 0;
}

/* The next @len bytes of the stream, without consuming them. */
void ps_fill(struct pstream *ps, uint8_t *buf, size_t len)
{
	uint64_t off = ps->off, word = 0;
	size_t i;

	for (i = 0; i < len; i++, off++) {
		if (i == 0 || !(off & 7))
			word = mix64(ps->seed + (off >> 3) * 0x9e3779b97f4a7c15ULL);
		buf[i] = word >> ((off & 7) * 8);
	}
}

/* @buf must be the next @len bytes of the stream; consumes them. */
void ps_check(struct pstream *ps, const uint8_t *buf, size_t len)
{
	uint8_t want[4096];
	size_t i, n;

	while (len) {
		n = len < sizeof(want) ? len : sizeof(want);
		ps_fill(ps, want, n);
		if (memcmp(buf, want, n)) {
			for (i = 0; buf[i] == want[i]; i++)
				;
			FAIL("data corrupted at stream offset %llu: got %#x, want %#x",
			     (unsigned long long)(ps->off + i), buf[i], want[i]);
		}
		ps->crc = crc32_update(ps->crc, buf, n);
		ps->off += n;
		buf += n;
		len -= n;
	}
}

/* send() the next @len bytes; consumes what was sent. */
ssize_t ps_send(int fd, struct pstream *ps, size_t len, int flags)
{
	static uint8_t buf[1 << 16];
	ssize_t ret;

	if (len > sizeof(buf))
		len = sizeof(buf);
	ps_fill(ps, buf, len);
	ret = send(fd, buf, len, flags);
	if (ret > 0) {
		ps->crc = crc32_update(ps->crc, buf, ret);
		ps->off += ret;
	}
	return ret;
}

/* Receive and verify the next @len bytes, then expect nothing more yet. */
void ps_recv(int fd, struct pstream *ps, uint64_t len)
{
	static uint8_t buf[1 << 16];
	ssize_t ret;

	while (len) {
		wait_ev(fd, POLLIN);
		ret = recv(fd, buf, len < sizeof(buf) ? len : sizeof(buf),
			   MSG_DONTWAIT);
		if (ret < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		CHECK(ret >= 0, "recv: %m");
		CHECK(ret > 0, "recv: EOF with %llu bytes still expected",
		      (unsigned long long)len);
		ps_check(ps, buf, ret);
		len -= ret;
	}
}

/*
 * Send until neither the send buffer nor the peer's receive buffer takes
 * more (the peer must not be reading): nothing writable for 300 ms.
 * Returns the bytes sent; the socket is left blocking.
 */
uint64_t fill_sndbuf(int fd, struct pstream *ps)
{
	uint64_t total = 0;
	ssize_t ret;

	step = "fill the send buffer";
	set_nonblock(fd, true);
	for (;;) {
		ret = ps_send(fd, ps, 1 << 16, MSG_NOSIGNAL);
		if (ret > 0) {
			total += ret;
			CHECK(total < (512ULL << 20),
			      "512 MiB sent to a peer that does not read");
			continue;
		}
		CHECK(ret < 0 && errno == EAGAIN, "send: returned %zd: %m", ret);
		if (!wait_fd(fd, POLLOUT, 300))
			break;
	}
	set_nonblock(fd, false);
	step = "test";
	return total;
}
