// SPDX-License-Identifier: GPL-2.0
/*
 * nkperf - end-to-end TCP benchmark of the NetKernel lab, with every byte
 * checked.
 *
 *   nkperf server [-B ADDR] [-p PORT]
 *   nkperf client -c ADDR [-p PORT] -m stream|maerts|rr|crr [-t SECONDS]
 *                 [-P NCONN] [-s SIZE] [-D DEPTH] [--json]
 *
 * It is a static binary that runs unchanged in the lab's busybox guests and
 * on the host, so it uses only the plain IPv4 socket API (numeric addresses,
 * SO_RCVTIMEO/SO_SNDTIMEO, TCP_NODELAY, TCP_INFO) that af_netkernel serves.
 *
 * Protocol.  Every connection starts with a 32-byte request from the client,
 * all fields big-endian:
 *
 *   0  u32 magic "NKPF"     8  u32 size (bytes per write or message)
 *   4  u16 version (1)     12  u32 duration in ms
 *   6  u16 mode            16  u64 seed
 *                          24  u32 connection index, 28 u32 zero
 *
 * and may end with a 48-byte result from the server (struct nkp_result:
 * magic "NKPR", status, byte count, the server's CLOCK_MONOTONIC start and
 * end, the offset of a mismatch or an errno, the sender's retransmissions).
 *
 *   stream  the client sends for the duration, then shuts down its write
 *           side; the server checks everything up to EOF and answers with
 *           the result, whose byte count and times give the throughput.
 *   maerts  the server sends for the duration, then the result, then EOF;
 *           the client checks all but the last 48 bytes, which must be a
 *           result counting exactly the data it received.
 *   rr      the client sends a size-byte request, the server checks it and
 *           answers size bytes, until the duration is over; the client then
 *           shuts down its write side and reads the result.  With -D DEPTH
 *           the client keeps DEPTH requests in flight (pipelined, as a
 *           key-value client does): it sends another each time an answer
 *           comes, and each request's latency runs from its send to its
 *           answer.  The server is the same: it answers in order.
 *   crr     request and message in one write, one size-byte answer, then
 *           the server closes and the client reads EOF and closes; again
 *           with a new connection until the duration is over.
 *
 * Data are a pattern: the 64-bit little-endian word at stream offset 8 * i
 * is a bijective function of seed + i, so any changed, lost, duplicated or
 * reordered byte is found.  Each connection (each crr exchange) has its own
 * seed and each direction of it its own pattern.  A server that finds bad
 * data reports it in the result (stream) or logs it and closes (rr, crr).
 *
 * Threading.  The server accepts in its main thread and serves each
 * connection in a detached thread until killed.  The client runs -P
 * threads, each with its own connection (crr: its own series of them), and
 * its main thread adds up their figures once all are joined.
 *
 * Every socket call times out after IO_TIMEOUT_S without progress, and the
 * client gives up IO_TIMEOUT_S after the duration at the latest, so a dead
 * peer makes it fail instead of hang.  Exit status: 0 when every byte was
 * verified and nothing failed, 1 otherwise, 2 on a usage error.
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define NKP_MAGIC	0x4e4b5046u	/* "NKPF" */
#define NKP_RES_MAGIC	0x4e4b5052u	/* "NKPR" */
#define NKP_VERSION	1
#define NKP_PORT	5201
#define STREAM_SIZE	(128 * 1024)	/* default write size, receive buffer */
#define RR_SIZE		64
#define MAX_SIZE	(4 * 1024 * 1024)
#define MAX_CONNS	128
#define MAX_DEPTH	1024
#define MAX_IN_FLIGHT	(64 * 1024)	/* depth x size: never both sides blocked */
#define MAX_DURATION_MS	3600000u
#define IO_TIMEOUT_S	10
#define NSEC		1000000000ull

enum nkp_mode { MODE_STREAM = 1, MODE_MAERTS, MODE_RR, MODE_CRR };

static const char *const mode_names[] = {
	[0] = "?", [MODE_STREAM] = "stream", [MODE_MAERTS] = "maerts",
	[MODE_RR] = "rr", [MODE_CRR] = "crr",
};

enum nkp_status { ST_OK, ST_MISMATCH, ST_ERROR };

struct nkp_req {
	uint32_t magic;
	uint16_t version;
	uint16_t mode;
	uint32_t size;
	uint32_t duration_ms;
	uint64_t seed;
	uint32_t conn;
	uint32_t zero;
};

struct nkp_result {
	uint32_t magic;
	uint32_t status;
	uint64_t bytes;
	uint64_t start_ns;
	uint64_t end_ns;
	uint64_t detail;	/* mismatch offset or errno */
	uint32_t retrans;
	uint32_t zero;
};

_Static_assert(sizeof(struct nkp_req) == 32, "request is 32 bytes");
_Static_assert(sizeof(struct nkp_result) == 48, "result is 48 bytes");

/* Both directions of the conversion are the same byte swap. */
static void req_swap(struct nkp_req *r)
{
	r->magic = htobe32(r->magic);
	r->version = htobe16(r->version);
	r->mode = htobe16(r->mode);
	r->size = htobe32(r->size);
	r->duration_ms = htobe32(r->duration_ms);
	r->seed = htobe64(r->seed);
	r->conn = htobe32(r->conn);
	r->zero = htobe32(r->zero);
}

static void result_swap(struct nkp_result *r)
{
	r->magic = htobe32(r->magic);
	r->status = htobe32(r->status);
	r->bytes = htobe64(r->bytes);
	r->start_ns = htobe64(r->start_ns);
	r->end_ns = htobe64(r->end_ns);
	r->detail = htobe64(r->detail);
	r->retrans = htobe32(r->retrans);
	r->zero = htobe32(r->zero);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

/* splitmix64's finaliser: seeds for connections and reply directions. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t reply_seed(uint64_t seed)
{
	return mix64(seed ^ 0x5245504c59ull);	/* "REPLY" */
}

/* ------------------------------------------------------------ the pattern */

static inline uint64_t pat_word(uint64_t seed, uint64_t idx)
{
	uint64_t w = (seed + idx) * 0x9e3779b97f4a7c15ull;

	return w ^ (w >> 29);
}

static inline uint8_t pat_byte(uint64_t seed, uint64_t off)
{
	return pat_word(seed, off >> 3) >> (8 * (off & 7));
}

/* Write the pattern of stream offsets [off, off + len) to buf. */
static void pat_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *p = buf;
	size_t i = 0;
	uint64_t w;

	for (; i < len && (off + i) & 7; i++)
		p[i] = pat_byte(seed, off + i);
	for (; i + 8 <= len; i += 8) {
		w = htole64(pat_word(seed, (off + i) >> 3));
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] = pat_byte(seed, off + i);
}

/* len if buf holds the pattern of [off, off + len), else the first bad byte. */
static size_t pat_check(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const uint8_t *p = buf;
	size_t i = 0;
	uint64_t w;

	for (; i < len && (off + i) & 7; i++)
		if (p[i] != pat_byte(seed, off + i))
			return i;
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		if (le64toh(w) != pat_word(seed, (off + i) >> 3))
			break;
	}
	for (; i < len; i++)
		if (p[i] != pat_byte(seed, off + i))
			return i;
	return len;
}

/* ------------------------------------------------------------ socket I/O */

static int set_timeouts(int fd, uint64_t ns)
{
	struct timeval tv = {
		.tv_sec = ns / NSEC,
		.tv_usec = ns % NSEC / 1000,
	};

	if (!tv.tv_sec && !tv.tv_usec)
		tv.tv_usec = 1000;	/* zero would mean no timeout at all */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

static int set_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ? -errno : 0;
}

static uint32_t retransmits(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	return ti.tcpi_total_retrans;
}

/* 0 once all of buf is sent, else -errno. */
static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Bytes read until len or EOF, or -errno. */
static ssize_t recv_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, (char *)buf + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			break;
		got += n;
	}
	return got;
}

static const char *errstr(int neg_errno)
{
	if (neg_errno == -EAGAIN || neg_errno == -EINPROGRESS)
		return "timed out";
	return strerror(-neg_errno);
}

/*
 * Send the pattern in writes of size bytes until the clock reaches until.
 * Returns 0 or -errno; *sent counts the bytes sent either way.
 */
static int send_pattern(int fd, char *buf, size_t size, uint64_t seed,
			uint64_t until, uint64_t *sent)
{
	size_t pos = 0;
	ssize_t n;

	pat_fill(buf, size, seed, 0);
	while (now_ns() < until) {
		n = send(fd, buf + pos, size - pos, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*sent += n;
		pos += n;
		if (pos == size) {
			pat_fill(buf, size, seed, *sent);
			pos = 0;
		}
	}
	return 0;
}

/*
 * Receive and check the pattern until EOF, in res: the bytes checked, and
 * ST_MISMATCH with its offset or ST_ERROR with an errno (ETIMEDOUT when data
 * still arrive after until).  The last hold bytes received are not checked
 * but kept at the start of buf, which holds STREAM_SIZE + hold bytes; the
 * number kept is returned.
 */
static size_t recv_pattern(int fd, char *buf, uint64_t seed, size_t hold,
			   uint64_t until, struct nkp_result *res)
{
	size_t held = 0, bad, k;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf + held, STREAM_SIZE, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (!n)
			return held;
		if (n < 0 || now_ns() > until) {
			res->status = ST_ERROR;
			res->detail = n < 0 ? errno : ETIMEDOUT;
			return held;
		}
		held += n;
		if (held <= hold)
			continue;
		k = held - hold;
		bad = pat_check(buf, k, seed, res->bytes);
		if (bad < k) {
			res->status = ST_MISMATCH;
			res->detail = res->bytes + bad;
			return 0;
		}
		res->bytes += k;
		memmove(buf, buf + k, hold);
		held = hold;
	}
}

/* ---------------------------------------------------------------- server */

struct srv_conn {
	int fd;
	struct sockaddr_in peer;
	struct nkp_req req;
};

static void srv_log(const struct srv_conn *sc, const char *fmt, ...)
{
	char addr[INET_ADDRSTRLEN], msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	inet_ntop(AF_INET, &sc->peer.sin_addr, addr, sizeof(addr));
	fprintf(stderr, "nkperf server: %s:%u conn %u %s: %s\n", addr,
		ntohs(sc->peer.sin_port), sc->req.conn,
		mode_names[sc->req.mode <= MODE_CRR ? sc->req.mode : 0], msg);
}

static int srv_send_result(struct srv_conn *sc, struct nkp_result *res)
{
	res->magic = NKP_RES_MAGIC;
	result_swap(res);
	return send_all(sc->fd, res, sizeof(*res));
}

/* Read and drop whatever the client still sends, until EOF or a timeout. */
static void srv_drain(struct srv_conn *sc, char *buf)
{
	ssize_t n;

	do
		n = recv(sc->fd, buf, STREAM_SIZE, 0);
	while (n > 0 || (n < 0 && errno == EINTR));
}

static void srv_stream(struct srv_conn *sc, char *buf)
{
	struct nkp_result res = { .start_ns = now_ns() };
	int err;

	recv_pattern(sc->fd, buf, sc->req.seed, 0, res.start_ns +
		     sc->req.duration_ms * 1000000ull + IO_TIMEOUT_S * NSEC, &res);
	res.end_ns = now_ns();
	if (res.status == ST_MISMATCH)
		srv_log(sc, "data mismatch at offset %" PRIu64, res.detail);
	else if (res.status == ST_ERROR)
		srv_log(sc, "recv after %" PRIu64 " bytes: %s", res.bytes,
			errstr(-(int)res.detail));
	err = srv_send_result(sc, &res);
	if (err)
		srv_log(sc, "sending the result: %s", errstr(err));
	else if (res.status == ST_MISMATCH)
		srv_drain(sc, buf);
}

static void srv_maerts(struct srv_conn *sc, char *buf)
{
	struct nkp_result res = { .start_ns = now_ns() };
	int err;

	err = send_pattern(sc->fd, buf, sc->req.size, sc->req.seed, res.start_ns +
			   sc->req.duration_ms * 1000000ull, &res.bytes);
	if (err) {
		srv_log(sc, "send after %" PRIu64 " bytes: %s", res.bytes, errstr(err));
		return;
	}
	res.end_ns = now_ns();
	res.retrans = retransmits(sc->fd);
	err = srv_send_result(sc, &res);
	if (err) {
		srv_log(sc, "sending the result: %s", errstr(err));
		return;
	}
	/* Close once the client has read everything and closed. */
	shutdown(sc->fd, SHUT_WR);
	srv_drain(sc, buf);
}

/* rr and crr: requests of size bytes, each answered with size bytes. */
static void srv_rr(struct srv_conn *sc, char *buf)
{
	struct nkp_result res = { .start_ns = now_ns() };
	uint64_t rseed = reply_seed(sc->req.seed);
	size_t size = sc->req.size, bad;
	ssize_t n;
	int err;

	for (;;) {
		n = recv_full(sc->fd, buf, size);
		if (!n && sc->req.mode == MODE_RR)
			break;
		if (n < 0) {
			srv_log(sc, "recv after %" PRIu64 " bytes: %s", res.bytes, errstr(n));
			return;
		}
		if ((size_t)n < size) {
			srv_log(sc, "EOF after %" PRIu64 " bytes, in a request", res.bytes + n);
			return;
		}
		bad = pat_check(buf, size, sc->req.seed, res.bytes);
		if (bad < size) {
			srv_log(sc, "data mismatch at offset %" PRIu64, res.bytes + bad);
			return;
		}
		pat_fill(buf, size, rseed, res.bytes);
		err = send_all(sc->fd, buf, size);
		if (err) {
			srv_log(sc, "send after %" PRIu64 " bytes: %s", res.bytes, errstr(err));
			return;
		}
		res.bytes += size;
		if (sc->req.mode == MODE_CRR)
			return;
	}
	res.end_ns = now_ns();
	err = srv_send_result(sc, &res);
	if (err)
		srv_log(sc, "sending the result: %s", errstr(err));
}

static const char *req_problem(const struct nkp_req *r)
{
	if (r->magic != NKP_MAGIC)
		return "not an nkperf request (bad magic)";
	if (r->version != NKP_VERSION)
		return "unsupported protocol version";
	if (r->mode < MODE_STREAM || r->mode > MODE_CRR)
		return "unknown mode";
	if (!r->size || r->size > MAX_SIZE)
		return "bad size";
	if (!r->duration_ms || r->duration_ms > MAX_DURATION_MS)
		return "bad duration";
	return NULL;
}

static void *srv_thread(void *arg)
{
	struct srv_conn *sc = arg;
	const char *problem;
	char *buf = NULL;
	ssize_t n;
	int err;

	err = set_timeouts(sc->fd, IO_TIMEOUT_S * NSEC);
	if (err) {
		srv_log(sc, "setting timeouts: %s", errstr(err));
		goto out;
	}
	n = recv_full(sc->fd, &sc->req, sizeof(sc->req));
	req_swap(&sc->req);
	if (!n)
		goto out;	/* a port probe */
	if (n < (ssize_t)sizeof(sc->req)) {
		memset(&sc->req, 0, sizeof(sc->req));
		srv_log(sc, "no complete request: %s", n < 0 ? errstr(n) : "EOF");
		goto out;
	}
	problem = req_problem(&sc->req);
	if (problem) {
		if (sc->req.magic != NKP_MAGIC)
			memset(&sc->req, 0, sizeof(sc->req));
		srv_log(sc, "%s", problem);
		goto out;
	}
	buf = malloc(sc->req.size > STREAM_SIZE ? sc->req.size : STREAM_SIZE);
	if (!buf) {
		srv_log(sc, "out of memory");
		goto out;
	}
	if (sc->req.mode == MODE_RR)
		set_nodelay(sc->fd);
	if (sc->req.mode == MODE_STREAM)
		srv_stream(sc, buf);
	else if (sc->req.mode == MODE_MAERTS)
		srv_maerts(sc, buf);
	else
		srv_rr(sc, buf);
out:
	free(buf);
	close(sc->fd);
	free(sc);
	return NULL;
}

static int run_server(const struct sockaddr_in *addr)
{
	struct sockaddr_in peer;
	pthread_attr_t attr;
	struct srv_conn *sc;
	socklen_t len;
	pthread_t tid;
	int lfd, fd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (const struct sockaddr *)addr, sizeof(*addr)) ||
	    listen(lfd, 1024)) {
		perror("nkperf server: listening socket");
		return 1;
	}
	fprintf(stderr, "nkperf server: listening on %s:%u\n",
		inet_ntoa(addr->sin_addr), ntohs(addr->sin_port));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		len = sizeof(peer);
		fd = accept(lfd, (struct sockaddr *)&peer, &len);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED) {
				perror("nkperf server: accept");
				usleep(100000);	/* out of descriptors or memory */
			}
			continue;
		}
		sc = calloc(1, sizeof(*sc));
		if (sc) {
			sc->fd = fd;
			sc->peer = peer;
		}
		if (!sc || pthread_create(&tid, &attr, srv_thread, sc)) {
			fprintf(stderr, "nkperf server: no thread for a connection\n");
			free(sc);
			close(fd);
		}
	}
}

/* ---------------------------------------------------------------- client */

/* Latency histogram: exact below 128 ns, then 128 buckets per power of 2. */
#define HIST_SUB_BITS	7
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_MAX_EXP	40	/* about 18 minutes */
#define HIST_N		((HIST_MAX_EXP - HIST_SUB_BITS + 2) * HIST_SUB)

struct hist {
	uint64_t n, sum_ns;
	uint64_t b[HIST_N];
};

static void hist_add(struct hist *h, uint64_t ns)
{
	unsigned int e, idx;

	h->n++;
	h->sum_ns += ns;
	if (ns < HIST_SUB) {
		idx = ns;
	} else {
		e = 63 - __builtin_clzll(ns);
		if (e > HIST_MAX_EXP)
			idx = HIST_N - 1;
		else
			idx = (e - HIST_SUB_BITS + 1) * HIST_SUB +
			      ((ns >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
	}
	h->b[idx]++;
}

/* The quantile q of h in microseconds: the middle of its bucket. */
static double hist_us(const struct hist *h, double q)
{
	uint64_t rank = q * h->n + 0.999999, seen = 0, low, width;
	unsigned int i, e;

	for (i = 0; i < HIST_N; i++) {
		seen += h->b[i];
		if (seen && seen >= rank)
			break;
	}
	if (i == HIST_N)
		return 0;
	if (i < HIST_SUB)
		return i / 1000.0;
	e = i / HIST_SUB + HIST_SUB_BITS - 1;
	width = 1ull << (e - HIST_SUB_BITS);
	low = (HIST_SUB + i % HIST_SUB) * width;
	return (low + width / 2) / 1000.0;
}

static struct {
	struct sockaddr_in addr;
	enum nkp_mode mode;
	uint32_t duration_ms;
	uint32_t size;
	unsigned int conns;
	unsigned int depth;	/* rr: requests in flight per connection */
	bool json;
	uint64_t seed;
	uint64_t deadline;	/* end of the measurement */
	uint64_t hard_deadline;	/* give up on a silent peer */
} cfg;

struct job {
	pthread_t tid;
	unsigned int idx;
	bool failed;
	uint64_t seed;
	uint64_t bytes;		/* verified by the receiver */
	uint64_t count;		/* transactions or connections */
	uint64_t start_ns, end_ns;	/* in the receiver's clock */
	uint32_t retrans;
	char err[256];
	struct hist hist;
};

static void job_fail(struct job *j, const char *fmt, ...)
{
	va_list ap;

	if (j->failed)
		return;
	j->failed = true;
	va_start(ap, fmt);
	vsnprintf(j->err, sizeof(j->err), fmt, ap);
	va_end(ap);
}

static void req_fill(struct nkp_req *r, uint64_t seed, unsigned int idx)
{
	*r = (struct nkp_req) {
		.magic = NKP_MAGIC, .version = NKP_VERSION, .mode = cfg.mode,
		.size = cfg.size, .duration_ms = cfg.duration_ms,
		.seed = seed, .conn = idx,
	};
	req_swap(r);
}

/* A connected socket with timeouts, or -1 with the job failed. */
static int client_connect(struct job *j, bool nodelay)
{
	char addr[INET_ADDRSTRLEN];
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		job_fail(j, "socket: %s", strerror(errno));
		return -1;
	}
	err = set_timeouts(fd, IO_TIMEOUT_S * NSEC);
	if (!err && connect(fd, (struct sockaddr *)&cfg.addr, sizeof(cfg.addr)))
		err = -errno;
	if (!err && nodelay)
		err = set_nodelay(fd);
	if (err) {
		inet_ntop(AF_INET, &cfg.addr.sin_addr, addr, sizeof(addr));
		job_fail(j, "connecting to %s:%u: %s", addr, ntohs(cfg.addr.sin_port),
			 errstr(err));
		close(fd);
		return -1;
	}
	return fd;
}

static int send_req(struct job *j, int fd)
{
	struct nkp_req req;
	int err;

	req_fill(&req, j->seed, j->idx);
	err = send_all(fd, &req, sizeof(req));
	if (err)
		job_fail(j, "sending the request: %s", errstr(err));
	return err;
}

static void check_result(struct job *j, struct nkp_result *res, uint64_t bytes)
{
	result_swap(res);
	if (res->magic != NKP_RES_MAGIC)
		job_fail(j, "the server's result is missing or garbled");
	else if (res->status == ST_MISMATCH)
		job_fail(j, "the server found a data mismatch at offset %" PRIu64,
			 res->detail);
	else if (res->status != ST_OK)
		job_fail(j, "the server reports an error after %" PRIu64 " bytes: %s",
			 res->bytes, strerror(res->detail));
	else if (res->bytes != bytes)
		job_fail(j, "the server counts %" PRIu64 " bytes where %" PRIu64
			 " were sent", res->bytes, bytes);
}

/* After shutting down the write side: the server's result, checked. */
static void read_result(struct job *j, int fd, struct nkp_result *res, uint64_t bytes)
{
	uint64_t now = now_ns();
	ssize_t n;

	shutdown(fd, SHUT_WR);
	set_timeouts(fd, cfg.hard_deadline > now ? cfg.hard_deadline - now : 0);
	n = recv_full(fd, res, sizeof(*res));
	if (n < 0)
		job_fail(j, "reading the result: %s", errstr(n));
	else if (n < (ssize_t)sizeof(*res))
		job_fail(j, "the server closed the connection without a result");
	else
		check_result(j, res, bytes);
}

static void client_stream(struct job *j, int fd, char *buf)
{
	struct nkp_result res;
	uint64_t sent = 0;
	int err;

	err = send_pattern(fd, buf, cfg.size, j->seed, cfg.deadline, &sent);
	if (err) {
		job_fail(j, "send after %" PRIu64 " bytes: %s", sent, errstr(err));
		return;
	}
	j->retrans = retransmits(fd);
	read_result(j, fd, &res, sent);
	if (j->failed)
		return;
	j->bytes = res.bytes;
	j->start_ns = res.start_ns;
	j->end_ns = res.end_ns;
}

/*
 * The data end with the server's 48-byte result: keep the last 48 bytes
 * received at the start of buf, unchecked, until more data follow them.
 */
static void client_maerts(struct job *j, int fd, char *buf)
{
	struct nkp_result res = { .bytes = 0 };
	size_t held;

	j->start_ns = now_ns();
	held = recv_pattern(fd, buf, j->seed, sizeof(res), cfg.hard_deadline, &res);
	j->end_ns = now_ns();
	j->bytes = res.bytes;
	if (res.status == ST_MISMATCH)
		job_fail(j, "data mismatch at offset %" PRIu64, res.detail);
	else if (res.status == ST_ERROR && res.detail == ETIMEDOUT)
		job_fail(j, "the server sends for longer than it was asked to");
	else if (res.status == ST_ERROR)
		job_fail(j, "recv after %" PRIu64 " bytes: %s", res.bytes,
			 errstr(-(int)res.detail));
	else if (held < sizeof(res))
		job_fail(j, "EOF after %" PRIu64 " bytes, before the server's result",
			 res.bytes + held);
	if (j->failed)
		return;
	memcpy(&res, buf, sizeof(res));
	check_result(j, &res, j->bytes);
	if (!j->failed)
		j->retrans = res.retrans;
}

/*
 * Requests of cfg.size bytes, cfg.depth of them in flight: one more is
 * sent for each answer, until the deadline; then the rest are answered.
 * sent_ns[i % depth] is when request i left.
 */
static void client_rr(struct job *j, int fd, char *buf)
{
	uint64_t rseed = reply_seed(j->seed), sent = 0, got = 0, t, *sent_ns;
	unsigned int depth = cfg.depth;
	struct nkp_result res;
	size_t size = cfg.size, bad;
	ssize_t n;
	int err;

	sent_ns = calloc(depth, sizeof(*sent_ns));
	if (!sent_ns) {
		job_fail(j, "out of memory");
		return;
	}
	j->start_ns = now_ns();
	t = j->start_ns;
	for (;;) {
		while (t < cfg.deadline && sent - got < depth) {
			pat_fill(buf, size, j->seed, sent * size);
			sent_ns[sent % depth] = now_ns();
			err = send_all(fd, buf, size);
			if (err) {
				job_fail(j, "send after %" PRIu64 " transactions: %s",
					 j->count, errstr(err));
				goto out;
			}
			sent++;
		}
		if (got == sent)
			break;
		n = recv_full(fd, buf, size);
		t = now_ns();
		if (n < (ssize_t)size) {
			job_fail(j, "after %" PRIu64 " transactions: %s", j->count, n < 0 ?
				 errstr(n) : "the server closed the connection (see its log)");
			goto out;
		}
		bad = pat_check(buf, size, rseed, got * size);
		if (bad < size) {
			job_fail(j, "reply data mismatch at offset %" PRIu64, got * size + bad);
			goto out;
		}
		hist_add(&j->hist, t - sent_ns[got % depth]);
		got++;
		j->count++;
	}
	j->end_ns = t;
	read_result(j, fd, &res, sent * size);
	j->bytes = sent * size;
out:
	free(sent_ns);
}

/* One connection: request and message in one write, reply, EOF, close. */
static void crr_once(struct job *j, char *buf, uint64_t seed)
{
	size_t size = cfg.size, bad;
	ssize_t n;
	int fd, err;

	fd = client_connect(j, false);
	if (fd < 0)
		return;
	req_fill((struct nkp_req *)buf, seed, j->idx);
	pat_fill(buf + sizeof(struct nkp_req), size, seed, 0);
	err = send_all(fd, buf, sizeof(struct nkp_req) + size);
	if (err) {
		job_fail(j, "connection %" PRIu64 ": send: %s", j->count, errstr(err));
		goto out;
	}
	n = recv_full(fd, buf, size + 1);
	if (n != (ssize_t)size) {
		job_fail(j, "connection %" PRIu64 ": %s", j->count,
			 n < 0 ? errstr(n) : n > (ssize_t)size ? "more data than a reply" :
			 "the server closed the connection (see its log)");
		goto out;
	}
	bad = pat_check(buf, size, reply_seed(seed), 0);
	if (bad < size)
		job_fail(j, "connection %" PRIu64 ": reply data mismatch at offset %zu",
			 j->count, bad);
out:
	close(fd);
}

static void client_crr(struct job *j, char *buf)
{
	uint64_t t0, t;

	j->start_ns = now_ns();
	t = j->start_ns;
	while (t < cfg.deadline) {
		t0 = t;
		crr_once(j, buf, mix64(j->seed + j->count));
		if (j->failed)
			return;
		t = now_ns();
		hist_add(&j->hist, t - t0);
		j->bytes += cfg.size;
		j->count++;
	}
	j->end_ns = t;
}

static void *client_thread(void *arg)
{
	struct job *j = arg;
	size_t len = sizeof(struct nkp_result) + (cfg.size > STREAM_SIZE ? cfg.size : STREAM_SIZE);
	char *buf;
	int fd;

	buf = malloc(len);
	if (!buf) {
		job_fail(j, "out of memory");
		return NULL;
	}
	if (cfg.mode == MODE_CRR) {
		client_crr(j, buf);
		goto out;
	}
	fd = client_connect(j, cfg.mode == MODE_RR);
	if (fd < 0)
		goto out;
	if (!send_req(j, fd)) {
		if (cfg.mode == MODE_STREAM)
			client_stream(j, fd, buf);
		else if (cfg.mode == MODE_MAERTS)
			client_maerts(j, fd, buf);
		else
			client_rr(j, fd, buf);
	}
	close(fd);
out:
	free(buf);
	return NULL;
}

static int report(struct job *jobs)
{
	uint64_t bytes = 0, count = 0, start = UINT64_MAX, end = 0;
	unsigned int i, errors = 0, retrans = 0;
	const char *mode = mode_names[cfg.mode];
	static struct hist h;
	double secs, rate;

	for (i = 0; i < cfg.conns; i++) {
		struct job *j = &jobs[i];
		unsigned int b;

		if (j->failed) {
			fprintf(stderr, "nkperf: conn %u: %s\n", i, j->err);
			errors++;
		}
		bytes += j->bytes;
		count += j->count;
		retrans += j->retrans;
		if (j->end_ns) {
			start = j->start_ns < start ? j->start_ns : start;
			end = j->end_ns > end ? j->end_ns : end;
		}
		h.n += j->hist.n;
		h.sum_ns += j->hist.sum_ns;
		for (b = 0; b < HIST_N; b++)
			h.b[b] += j->hist.b[b];
	}
	secs = end > start ? (end - start) / 1e9 : 0;
	if (cfg.mode == MODE_STREAM || cfg.mode == MODE_MAERTS) {
		rate = secs > 0 ? bytes / secs : 0;
		if (cfg.json)
			printf("{\"mode\":\"%s\",\"conns\":%u,\"size\":%u,\"seconds\":%.3f,"
			       "\"bytes\":%" PRIu64 ",\"gbps\":%.3f,\"mbytes_per_s\":%.1f,"
			       "\"retrans\":%u,", mode, cfg.conns, cfg.size, secs, bytes,
			       rate * 8 / 1e9, rate / 1e6, retrans);
		else
			printf("%s: %u conn, %.3f s, %" PRIu64 " bytes, %.3f Gbit/s "
			       "(%.1f MB/s), %u retransmits", mode, cfg.conns, secs,
			       bytes, rate * 8 / 1e9, rate / 1e6, retrans);
	} else {
		rate = secs > 0 ? count / secs : 0;
		if (cfg.json)
			printf("{\"mode\":\"%s\",\"conns\":%u,\"size\":%u,\"depth\":%u,"
			       "\"seconds\":%.3f,\"%s\":%" PRIu64 ",\"%s\":%.1f,\"mean_us\":%.1f,"
			       "\"p50_us\":%.1f,\"p99_us\":%.1f,", mode, cfg.conns,
			       cfg.size, cfg.depth, secs, cfg.mode == MODE_RR ? "transactions" : "connections",
			       count, cfg.mode == MODE_RR ? "tps" : "conns_per_s", rate,
			       h.n ? h.sum_ns / 1e3 / h.n : 0, hist_us(&h, 0.5), hist_us(&h, 0.99));
		else
			printf("%s: %u conn, %u B, %.3f s, %" PRIu64 " %s, %.1f/s, "
			       "latency us p50 %.1f p99 %.1f mean %.1f", mode, cfg.conns,
			       cfg.size, secs, count,
			       cfg.mode == MODE_RR ? "transactions" : "connections", rate,
			       hist_us(&h, 0.5), hist_us(&h, 0.99),
			       h.n ? h.sum_ns / 1e3 / h.n : 0);
	}
	if (cfg.json)
		printf("\"verified\":%s,\"errors\":%u}\n", errors ? "false" : "true", errors);
	else
		printf(", %s\n", errors ? "FAILED" : "verified");
	return errors ? 1 : 0;
}

static int run_client(void)
{
	struct timespec ts;
	struct job *jobs;
	unsigned int i, n;
	uint64_t start;

	jobs = calloc(cfg.conns, sizeof(*jobs));
	if (!jobs) {
		fprintf(stderr, "nkperf: out of memory\n");
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	cfg.seed = mix64(ts.tv_sec * NSEC + ts.tv_nsec + ((uint64_t)getpid() << 40));
	start = now_ns();
	cfg.deadline = start + cfg.duration_ms * 1000000ull;
	cfg.hard_deadline = cfg.deadline + IO_TIMEOUT_S * NSEC;
	for (n = 0; n < cfg.conns; n++) {
		jobs[n].idx = n;
		jobs[n].seed = mix64(cfg.seed + n);
		if (pthread_create(&jobs[n].tid, NULL, client_thread, &jobs[n]))
			break;
	}
	for (i = 0; i < cfg.conns; i++)
		if (i < n)
			pthread_join(jobs[i].tid, NULL);
		else
			job_fail(&jobs[i], "no thread");
	i = report(jobs);
	free(jobs);
	return i;
}

static void __attribute__((noreturn)) usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs("nkperf: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr,
		"usage: nkperf server [-B ADDR] [-p PORT]\n"
		"       nkperf client -c ADDR [-p PORT] -m stream|maerts|rr|crr\n"
		"                     [-t SECONDS] [-P NCONN] [-s SIZE[k|m]] [-D DEPTH]\n"
		"                     [--json]\n"
		"  -B ADDR     server: IPv4 address to listen on (default 0.0.0.0)\n"
		"  -c ADDR     client: the server's IPv4 address\n"
		"  -p PORT     TCP port (default %u)\n"
		"  -m MODE     stream (client sends), maerts (server sends),\n"
		"              rr (request-response), crr (connect-request-response-close)\n"
		"  -t SECONDS  duration, may be fractional (default 10)\n"
		"  -P NCONN    parallel connections, 1..%u (default 1)\n"
		"  -s SIZE     bytes per write (stream, maerts; default 128k) or per\n"
		"              message (rr, crr; default %u), at most 4m\n"
		"  -D DEPTH    rr: requests in flight per connection, 1..%u (default 1;\n"
		"              DEPTH x SIZE at most %u)\n"
		"  --json      one JSON object on stdout instead of one line of text\n",
		NKP_PORT, MAX_CONNS, RR_SIZE, MAX_DEPTH, MAX_IN_FLIGHT);
	exit(2);
}

static unsigned long parse_num(const char *s, const char *what, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end != s && (*end == 'k' || *end == 'K') && v <= max)
		v *= 1024, end++;
	else if (end != s && (*end == 'm' || *end == 'M') && v <= max)
		v *= 1024 * 1024, end++;
	if (errno || end == s || *end || *s == '-' || !v || v > max)
		usage("bad %s '%s'", what, s);
	return v;
}

static void parse_addr(const char *s, struct sockaddr_in *sin)
{
	if (inet_pton(AF_INET, s, &sin->sin_addr) != 1)
		usage("'%s' is not an IPv4 address (no names are resolved)", s);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool server, have_addr = false;
	double secs = 10;
	char *end;
	int c;

	if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")))
		usage(argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ?
		      NULL : "the first argument is server or client");
	server = !strcmp(argv[1], "server");
	cfg.addr.sin_family = AF_INET;
	cfg.addr.sin_port = htons(NKP_PORT);
	cfg.conns = 1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "B:c:p:m:t:P:s:D:jh", longopts, NULL)) != -1) {
		if ((server && strchr("cmtPsDj", c)) || (!server && c == 'B'))
			usage("option -%c is not for the %s", c, argv[1]);
		switch (c) {
		case 'B':
		case 'c':
			parse_addr(optarg, &cfg.addr);
			have_addr = true;
			break;
		case 'p':
			cfg.addr.sin_port = htons(parse_num(optarg, "port", 65535));
			break;
		case 'm':
			for (cfg.mode = MODE_STREAM; cfg.mode <= MODE_CRR; cfg.mode++)
				if (!strcmp(optarg, mode_names[cfg.mode]))
					break;
			if (cfg.mode > MODE_CRR)
				usage("unknown mode '%s'", optarg);
			break;
		case 't':
			secs = strtod(optarg, &end);
			if (end == optarg || *end || !(secs >= 0.001 && secs * 1000 <= MAX_DURATION_MS))
				usage("bad duration '%s'", optarg);
			break;
		case 'P':
			cfg.conns = parse_num(optarg, "number of connections", MAX_CONNS);
			break;
		case 's':
			cfg.size = parse_num(optarg, "size", MAX_SIZE);
			break;
		case 'D':
			cfg.depth = parse_num(optarg, "depth", MAX_DEPTH);
			break;
		case 'j':
			cfg.json = true;
			break;
		default:
			usage(NULL);
		}
	}
	if (optind < argc)
		usage("unexpected argument '%s'", argv[optind]);
	signal(SIGPIPE, SIG_IGN);
	if (server)
		return run_server(&cfg.addr);
	if (!have_addr || !cfg.mode)
		usage("the client needs -c ADDR and -m MODE");
	if (!cfg.size)
		cfg.size = cfg.mode <= MODE_MAERTS ? STREAM_SIZE : RR_SIZE;
	if (cfg.depth && cfg.mode != MODE_RR)
		usage("-D is for -m rr");
	if (!cfg.depth)
		cfg.depth = 1;
	if ((uint64_t)cfg.depth * cfg.size > MAX_IN_FLIGHT && cfg.depth > 1)
		usage("-D %u with -s %u: more than %u bytes in flight", cfg.depth,
		      cfg.size, MAX_IN_FLIGHT);
	cfg.duration_ms = secs * 1000 + 0.5;
	return run_client();
}
