// SPDX-License-Identifier: GPL-2.0
/*
 * nkfront - play a VM's nk device from user space, on libvufront.
 *
 *   nkfront nsm -s SOCK [--echo|--sink] [--credit BYTES]
 *   nkfront guest -s SOCK [--connect IP:PORT] [--bytes N] [--sockets K] [--quiet]
 *   nkfront config -s SOCK
 *
 * The NSM answers every request as protocol.rst says a network stack
 * would, without a network: it echoes or discards what it is sent.  The
 * guest opens sockets, sends pseudo-random data within the NSM's credit and
 * checks what comes back.  Both keep the credit rules of nk_proto.h.
 *
 * Threading: single-threaded.  SIGINT and SIGTERM only set a flag, which
 * the NSM loop checks between waits (the signal also cuts a wait short).
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "vufront.h"

#define DEF_CREDIT		(256U << 10)
#define DEF_BYTES		(1ULL << 20)
#define DEF_CONNECT		"192.0.2.1:80"
#define MAX_SOCKETS		1024
#define WAIT_MS			5000	/* longest a peer may stay silent */
#define NSM_POLL_MS		500	/* NSM: look at the stop flag this often */
#define NSOCK_BUCKETS		256
#define FNV_BASIS		0xcbf29ce484222325ULL
#define FNV_PRIME		0x100000001b3ULL

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)		__attribute__((format(printf, a, b)))

enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,
	EXIT_USAGE	= 2,
};

static const char *progname = "nkfront";
static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s nsm -s SOCKPATH [--echo|--sink] [--credit BYTES]\n"
		"       %s guest -s SOCKPATH [--connect IP:PORT] [--bytes N] [--sockets K] [--quiet]\n"
		"       %s config -s SOCKPATH\n"
		"\n"
		"Play a VM's nk device over vhost-user (as QEMU does) against the host engine.\n"
		"  nsm     serve every request as a network stack module; --echo sends the\n"
		"          data it is sent back (the default), --sink discards it;\n"
		"          --credit is the receive buffer announced per socket (default 256K)\n"
		"  guest   open K sockets (default 1), connect them (default " DEF_CONNECT "),\n"
		"          send N bytes on each (default 1M) and check the echo if there is one\n"
		"  config  print the device's configuration space\n"
		"Sizes take a k, m or g suffix.  Exit status: 0 success, 1 failure, 2 usage.\n",
		progname, progname, progname);
}

/* ---------------------------------------------------------------- */
/* Messages and their counts                                         */
/* ---------------------------------------------------------------- */

/* Counters index requests by op, then the events, then the rest. */
#define OPI_EV(op)	(NK_OP_MAX_REQUEST + 1 + (op) - NK_EV_DATA)
#define OPI_PERR	OPI_EV(NK_EV_RESET + 1)
#define OPI_UNKNOWN	(OPI_PERR + 1)
#define NR_OPS		(OPI_UNKNOWN + 1)

static unsigned int op_index(uint16_t op)
{
	if (op >= NK_OP_HELLO && op <= NK_OP_MAX_REQUEST)
		return op;
	if (op >= NK_EV_DATA && op <= NK_EV_RESET)
		return OPI_EV(op);
	return op == NK_EV_PROTO_ERROR ? OPI_PERR : OPI_UNKNOWN;
}

/* The name of counter @i (nk_op_name() of its op). */
static const char *index_name(unsigned int i)
{
	if (i <= NK_OP_MAX_REQUEST)
		return nk_op_name(i);
	if (i < OPI_PERR)
		return nk_op_name(i - OPI_EV(0));
	return i == OPI_PERR ? nk_op_name(NK_EV_PROTO_ERROR) : "unknown";
}

struct front {
	struct nk_ep *ep;
	uint32_t max_payload;
	uint8_t *buf;			/* max_payload bytes */
	uint64_t sent[NR_OPS];
	uint64_t rcvd[NR_OPS];
};

static int front_open(struct front *f, const char *path, enum nk_role role)
{
	struct nk_ep_opts o = { .role = role, .timeout_ms = WAIT_MS };

	f->ep = nk_ep_open(path, &o);
	if (!f->ep) {
		warnx("%s: cannot open the nk device: %s", path, strerror(errno));
		return -1;
	}
	f->max_payload = nk_ep_max_payload(f->ep);
	f->buf = malloc(f->max_payload);
	if (!f->buf) {
		warnx("out of memory");
		nk_ep_close(f->ep);
		return -1;
	}
	f->sent[NK_OP_HELLO] = f->rcvd[NK_OP_HELLO] = 1;
	return 0;
}

static void front_close(struct front *f)
{
	nk_ep_close(f->ep);
	free(f->buf);
}

static int front_send(struct front *f, struct nk_hdr *h, const void *p, size_t len)
{
	int r = nk_ep_send(f->ep, h, p, len);

	if (r)
		warnx("cannot send %s on socket %u: %s", nk_op_name(h->op), h->sock, strerror(-r));
	else
		f->sent[op_index(h->op)]++;
	return r;
}

/* The next message, its payload in f->buf: payload length or -errno. */
static int front_recv(struct front *f, struct nk_hdr *h, int timeout_ms)
{
	int r = nk_ep_recv(f->ep, h, f->buf, f->max_payload, timeout_ms);

	if (r < 0)
		return r;
	f->rcvd[op_index(h->op)]++;
	if ((uint32_t)r > f->max_payload) {
		warnx("%s on socket %u carries %d bytes, over max_payload %u",
		       nk_op_name(h->op), h->sock, r, f->max_payload);
		return -EMSGSIZE;
	}
	return r;
}

/* A request and its reply (payload in f->buf): the reply's status. */
static int front_call(struct front *f, struct nk_hdr *h, const void *p, size_t len,
		      struct nk_hdr *rep)
{
	int r;

	memset(rep, 0, sizeof(*rep));
	r = nk_ep_call(f->ep, h, p, len, rep, f->buf, f->max_payload, WAIT_MS);
	f->sent[op_index(h->op)]++;
	if ((rep->flags & NK_F_REPLY) && rep->req_id == h->req_id)
		f->rcvd[op_index(rep->op)]++;
	return r;
}

static void print_counts(const char *what, const uint64_t *cnt)
{
	unsigned int i;

	printf("%s:", what);
	for (i = 0; i < NR_OPS; i++)
		if (cnt[i])
			printf(" %s %" PRIu64, index_name(i), cnt[i]);
	putchar('\n');
}

/* ---------------------------------------------------------------- */
/* Credit (nk_proto.h)                                               */
/* ---------------------------------------------------------------- */

/* The arithmetic is lib/nk_msg.c's (struct nk_credit_tx, nk_credit_rx). */

/* The peer's credit announcement in @h, if any: 0 or -EPROTO. */
static int tx_update(struct nk_credit_tx *c, const struct nk_hdr *h)
{
	if (!(h->flags & NK_F_CREDIT) || !nk_credit_tx_update(c, h->buf_alloc, h->fwd_cnt))
		return 0;
	warnx("socket %u: fwd_cnt %u beyond the %u bytes sent", h->sock, h->fwd_cnt, c->tx_cnt);
	return -EPROTO;
}

/* Policy: CREDIT once more than a quarter of the buffer was consumed unannounced. */
static int rx_consumed(struct front *f, uint32_t sock, struct nk_credit_rx *c, uint32_t n,
		       uint64_t req_id)
{
	struct nk_hdr h;

	c->fwd_cnt += n;
	if (c->fwd_cnt - c->fwd_sent <= c->buf_alloc / 4)
		return 0;
	nk_hdr_init(&h, NK_OP_CREDIT, 0, sock, req_id);
	nk_credit_rx_fill(c, &h);
	return front_send(f, &h, NULL, 0);
}

/* ---------------------------------------------------------------- */
/* Option parsing                                                    */
/* ---------------------------------------------------------------- */

static int parse_size(const char *s, uint64_t max, uint64_t *val)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		v = v > max >> 10 ? max + 1 : v << 10;
		end++;
		break;
	case 'm':
	case 'M':
		v = v > max >> 20 ? max + 1 : v << 20;
		end++;
		break;
	case 'g':
	case 'G':
		v = v > max >> 30 ? max + 1 : v << 30;
		end++;
		break;
	}
	if (*end || v > max)
		return -1;
	*val = v;
	return 0;
}

/* "1.2.3.4:80" or "[fd00::1]:80" */
static int parse_ip_port(const char *s, struct nk_addr *a)
{
	char ip[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	uint64_t port;
	size_t n;

	if (!colon || parse_size(colon + 1, 65535, &port) || !port)
		return -1;
	n = colon - s;
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= sizeof(ip))
		return -1;
	memcpy(ip, s, n);
	ip[n] = '\0';
	return nk_addr_parse(a, ip, port);
}

static const char *addr_str(const struct nk_addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	int v6 = a->family == AF_INET6;

	if (!inet_ntop(v6 ? AF_INET6 : AF_INET, a->addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, size, v6 ? "[%s]:%u" : "%s:%u", ip, ntohs(a->port));
	return buf;
}

/* ---------------------------------------------------------------- */
/* nkfront guest                                                     */
/* ---------------------------------------------------------------- */

struct gsock {
	uint32_t id;
	bool connected;
	uint64_t tx, rx;		/* payload bytes */
	uint64_t tx_sum, rx_sum;	/* FNV-1a of what was sent and received */
	struct nk_credit_tx txc;		/* the NSM's credit */
	struct nk_credit_rx rxc;		/* ours */
};

struct guest {
	struct front f;
	struct gsock *socks;
	unsigned int nr_socks;
	uint64_t bytes;			/* to send on each socket */
	bool quiet;
};

static uint64_t fnv(uint64_t sum, const uint8_t *p, size_t n)
{
	while (n--)
		sum = (sum ^ *p++) * FNV_PRIME;
	return sum;
}

/* Stream byte @off of socket @id: any chunking gives the same stream. */
static void fill(uint8_t *p, size_t n, uint32_t id, uint64_t off)
{
	for (; n--; off++) {
		uint64_t z = (uint64_t)id << 48 ^ (off >> 3);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		*p++ = z >> (8 * (off & 7));
	}
}

static int guest_open_socket(struct guest *g, struct gsock *s, const struct nk_addr *to)
{
	struct nk_hdr h, rep;
	char abuf[64];
	int r;

	nk_hdr_init(&h, NK_OP_SOCKET, 0, s->id, 0);
	h.arg[0] = to->family;
	h.arg[1] = 1;				/* stream */
	s->rxc.buf_alloc = DEF_CREDIT;
	nk_credit_rx_fill(&s->rxc, &h);
	r = front_call(&g->f, &h, NULL, 0, &rep);
	if (r) {
		warnx("SOCKET %u: %s", s->id, strerror(-r));
		return r;
	}
	if (tx_update(&s->txc, &rep))
		return -EPROTO;

	nk_hdr_init(&h, NK_OP_CONNECT, 0, s->id, 0);
	nk_credit_rx_fill(&s->rxc, &h);
	r = front_call(&g->f, &h, to, sizeof(*to), &rep);
	if (r && r != -EINPROGRESS) {
		warnx("CONNECT %u to %s: %s", s->id, addr_str(to, abuf, sizeof(abuf)),
		       strerror(-r));
		return r;
	}
	if (tx_update(&s->txc, &rep))
		return -EPROTO;
	s->connected = !r;
	if (!g->quiet)
		printf("socket %u: %s %s, NSM credit %u\n", s->id,
		       r ? "connecting to" : "connected to", addr_str(to, abuf, sizeof(abuf)),
		       s->txc.peer_buf_alloc);
	return 0;
}

/* Send on @s as far as the NSM's credit allows; 1 if anything was sent. */
static int guest_pump(struct guest *g, struct gsock *s)
{
	struct front *f = &g->f;
	int sent = 0;

	while (s->connected && s->tx < g->bytes) {
		uint64_t n = g->bytes - s->tx;
		uint32_t room = nk_credit_tx_space(&s->txc);
		struct nk_hdr h;
		int r;

		if (n > room)
			n = room;
		if (n > f->max_payload)
			n = f->max_payload;
		if (!n)
			break;
		fill(f->buf, n, s->id, s->tx);
		nk_hdr_init(&h, NK_OP_SEND, 0, s->id, 0);
		h.req_id = nk_ep_next_req_id(f->ep);
		nk_credit_rx_fill(&s->rxc, &h);
		r = front_send(f, &h, f->buf, n);
		if (r)
			return r;
		s->tx_sum = fnv(s->tx_sum, f->buf, n);
		s->tx += n;
		s->txc.tx_cnt += n;
		sent = 1;
	}
	return sent;
}

static int guest_handle(struct guest *g, const struct nk_hdr *h, int len)
{
	struct gsock *s = h->sock >= 1 && h->sock <= g->nr_socks ? &g->socks[h->sock - 1] : NULL;
	int status = (int32_t)h->status;

	if (h->op == NK_EV_PROTO_ERROR) {
		warnx("engine reports a protocol error: %s, code %" PRIu64 ", op %" PRIu64
		       ", descriptor %" PRIu64, strerror(-status), (uint64_t)h->arg[0],
		       (uint64_t)h->arg[2], (uint64_t)h->arg[1]);
		return -EPROTO;
	}
	if (!s) {
		warnx("%s for unknown socket %u", nk_op_name(h->op), h->sock);
		return -EPROTO;
	}
	if (tx_update(&s->txc, h))
		return -EPROTO;
	if (h->flags & NK_F_REPLY) {
		warnx("%s on socket %u failed: %s", nk_op_name(h->op), s->id, strerror(-status));
		return -EPROTO;
	}
	switch (h->op) {
	case NK_EV_DATA:
		if (s->rx + len > g->bytes) {
			warnx("socket %u: more data back than was sent", s->id);
			return -EPROTO;
		}
		s->rx_sum = fnv(s->rx_sum, g->f.buf, len);
		s->rx += len;
		return rx_consumed(&g->f, s->id, &s->rxc, len, nk_ep_next_req_id(g->f.ep));
	case NK_EV_CONNECTED:
		s->connected = true;
		return 0;
	case NK_OP_CREDIT:
	case NK_EV_WRITABLE:
	case NK_EV_HUP:
		return 0;
	case NK_EV_ERROR:
	case NK_EV_RESET:
		warnx("socket %u: %s: %s", s->id, nk_op_name(h->op), strerror(-status));
		return -EPROTO;
	default:
		warnx("socket %u: unexpected %s", s->id, nk_op_name(h->op));
		return -EPROTO;
	}
}

/*
 * Handle what arrives within @timeout_ms, then everything already there.
 * -ETIMEDOUT if nothing came.
 */
static int guest_events(struct guest *g, int timeout_ms)
{
	struct nk_hdr h;
	int r, n = 0;

	for (;;) {
		r = front_recv(&g->f, &h, n ? 0 : timeout_ms);
		if (r == -ETIMEDOUT && n)
			return 0;
		if (r < 0)
			return r;
		r = guest_handle(g, &h, r);
		if (r)
			return r;
		n++;
	}
}

static uint64_t guest_total(const struct guest *g, bool rx)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < g->nr_socks; i++)
		sum += rx ? g->socks[i].rx : g->socks[i].tx;
	return sum;
}

/* Send everything, wait for the echo if there is one, check it. */
static int guest_run(struct guest *g, const struct nk_addr *to)
{
	struct front *f = &g->f;
	bool more = true, echo;
	unsigned int i;
	struct nk_hdr h, rep;
	int r;

	for (i = 0; i < g->nr_socks; i++) {
		g->socks[i] = (struct gsock) { .id = i + 1, .tx_sum = FNV_BASIS,
					       .rx_sum = FNV_BASIS };
		r = guest_open_socket(g, &g->socks[i], to);
		if (r)
			return r;
	}
	while (more) {
		bool sent = false;

		more = false;
		for (i = 0; i < g->nr_socks; i++) {
			r = guest_pump(g, &g->socks[i]);
			if (r < 0)
				return r;
			sent |= r;
			more |= g->socks[i].tx < g->bytes;
		}
		if (!more)
			break;
		r = guest_events(g, sent ? 0 : WAIT_MS);
		if (r == -ETIMEDOUT && sent)
			continue;
		if (r == -ETIMEDOUT)
			warnx("stalled: no credit from the NSM for %d ms", WAIT_MS);
		if (r)
			return r;
	}

	/*
	 * The NSM handles a socket's messages in order and echoes as it goes:
	 * once an IOCTL sent after the data is answered, an echoing NSM has
	 * sent something back.
	 */
	for (i = 0; i < g->nr_socks; i++) {
		nk_hdr_init(&h, NK_OP_IOCTL, 0, g->socks[i].id, 0);
		h.arg[0] = NK_IOC_OUTQ;
		r = front_call(f, &h, NULL, 0, &rep);
		if (r) {
			warnx("IOCTL on socket %u: %s", g->socks[i].id, strerror(-r));
			return r;
		}
	}
	r = guest_events(g, 0);
	if (r && r != -ETIMEDOUT)
		return r;
	echo = guest_total(g, true) > 0;
	while (echo && guest_total(g, true) < guest_total(g, false)) {
		r = guest_events(g, WAIT_MS);
		if (r == -ETIMEDOUT)
			warnx("echo stalled at %" PRIu64 " of %" PRIu64 " bytes",
			       guest_total(g, true), guest_total(g, false));
		if (r)
			return r;
	}

	for (i = 0; i < g->nr_socks; i++) {
		struct gsock *s = &g->socks[i];

		nk_hdr_init(&h, NK_OP_CLOSE, 0, s->id, 0);
		r = front_call(f, &h, NULL, 0, &rep);
		if (r) {
			warnx("CLOSE %u: %s", s->id, strerror(-r));
			return r;
		}
		if (echo && s->rx_sum != s->tx_sum) {
			warnx("socket %u: checksum mismatch: sent %#" PRIx64 ", received %#"
			       PRIx64, s->id, s->tx_sum, s->rx_sum);
			return -EPROTO;
		}
		if (!g->quiet)
			printf("socket %u: sent %" PRIu64 " bytes, received %" PRIu64
			       " (fnv64 %#" PRIx64 "%s), closed\n", s->id, s->tx, s->rx,
			       s->tx_sum, echo ? ", checksum ok" : "");
	}
	return echo ? 1 : 0;
}

static int cmd_guest(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "connect", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "sockets", required_argument, NULL, 'k' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct guest g = { .bytes = DEF_BYTES, .nr_socks = 1 };
	const char *path = NULL, *connect = DEF_CONNECT;
	struct timespec t0, t1;
	struct nk_addr to;
	uint64_t v;
	double secs;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:c:b:k:qh", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'c':
			connect = optarg;
			break;
		case 'b':
			if (parse_size(optarg, UINT64_MAX >> 1, &g.bytes)) {
				warnx("--bytes: not a size: %s", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'k':
			if (parse_size(optarg, MAX_SOCKETS, &v) || !v) {
				warnx("--sockets: 1 to %d", MAX_SOCKETS);
				return EXIT_USAGE;
			}
			g.nr_socks = v;
			break;
		case 'q':
			g.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (parse_ip_port(connect, &to)) {
		warnx("--connect: not IP:PORT: %s", connect);
		return EXIT_USAGE;
	}
	g.socks = calloc(g.nr_socks, sizeof(*g.socks));
	if (!g.socks) {
		warnx("out of memory");
		return EXIT_FAIL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (front_open(&g.f, path, NK_ROLE_GUEST)) {
		free(g.socks);
		return EXIT_FAIL;
	}
	if (!g.quiet)
		printf("%s: endpoint %u, max_payload %u\n", nk_ep_name(g.f.ep),
		       nk_ep_id(g.f.ep), g.f.max_payload);
	r = guest_run(&g, &to);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (r >= 0) {
		if (!g.quiet) {
			print_counts("sent", g.f.sent);
			print_counts("received", g.f.rcvd);
		}
		printf("%s: %u socket(s), %" PRIu64 " bytes out, %" PRIu64 " bytes in, %s, "
		       "%.3f s, %.1f MB/s\n", nk_ep_name(g.f.ep), g.nr_socks,
		       guest_total(&g, false), guest_total(&g, true),
		       r ? "echo checksum ok" : "nothing echoed (the NSM sinks)", secs,
		       (guest_total(&g, false) + guest_total(&g, true)) / secs / 1e6);
	} else {
		warnx("%s: failed", nk_ep_name(g.f.ep));
	}
	front_close(&g.f);
	free(g.socks);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* nkfront nsm                                                       */
/* ---------------------------------------------------------------- */

struct nsock {
	struct nsock *next;		/* hash chain */
	uint32_t id;
	uint32_t guest;			/* the guest's endpoint id */
	uint32_t type;			/* 1 stream, 2 datagram */
	struct nk_addr name, peer;
	uint64_t rx, tx;		/* payload bytes */
	struct nk_credit_rx rxc;		/* guest to world: we receive */
	struct nk_credit_tx txc;		/* world to guest: the guest's credit */
	uint8_t *q;			/* echo: received, not yet sent back */
	uint32_t qhead, qlen;
};

struct nsm {
	struct front f;
	bool echo;
	uint32_t credit;
	struct nsock *hash[NSOCK_BUCKETS];
	uint64_t requests, opened, closed, rx, tx, errors, drops;
};

static struct nsock **nsock_slot(struct nsm *n, uint32_t id)
{
	struct nsock **pp = &n->hash[id % NSOCK_BUCKETS];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static void nsock_free(struct nsm *n, struct nsock **pp, const char *why)
{
	struct nsock *s = *pp;

	printf("%s: socket %u closed%s: %" PRIu64 " bytes in, %" PRIu64 " bytes out\n",
	       nk_ep_name(n->f.ep), s->id, why, s->rx, s->tx);
	*pp = s->next;
	free(s->q);
	free(s);
	n->closed++;
}

static int nsm_reply(struct nsm *n, const struct nk_hdr *req, struct nsock *s, int status,
		     const void *p, size_t len)
{
	struct nk_hdr h;

	nk_hdr_reply(&h, req, status);
	if (s)
		nk_credit_rx_fill(&s->rxc, &h);
	return front_send(&n->f, &h, p, len);
}

/* Send the echo queue back as far as the guest's credit allows. */
static int nsm_flush(struct nsm *n, struct nsock *s)
{
	while (s->qlen) {
		uint32_t len = s->qlen, room = nk_credit_tx_space(&s->txc);
		struct nk_hdr h;
		int r;

		if (len > room)
			len = room;
		if (len > n->f.max_payload)
			len = n->f.max_payload;
		if (len > n->credit - s->qhead)
			len = n->credit - s->qhead;
		if (!len)
			return 0;
		nk_hdr_init(&h, NK_EV_DATA, 0, s->id, 0);
		s->rxc.fwd_cnt += len;
		nk_credit_rx_fill(&s->rxc, &h);
		r = front_send(&n->f, &h, s->q + s->qhead, len);
		if (r)
			return r;
		s->txc.tx_cnt += len;
		s->qhead = (s->qhead + len) % n->credit;
		s->qlen -= len;
		s->tx += len;
		n->tx += len;
	}
	return 0;
}

/* SEND: consume the data (sink), or queue it to be echoed. */
static int nsm_data(struct nsm *n, const struct nk_hdr *h, struct nsock *s, int len)
{
	const uint8_t *data = n->f.buf;
	uint32_t tail;

	if (nk_hdr_data_len(h) < 0)
		return nsm_reply(n, h, s, -EINVAL, NULL, 0);
	data += h->len - nk_hdr_data_len(h);
	len = nk_hdr_data_len(h);
	s->rx += len;
	n->rx += len;
	if (h->flags & NK_F_ADDR || s->type != 1) {
		/* A datagram goes back whole at once, or is dropped as UDP would. */
		if (n->echo && nk_credit_tx_space(&s->txc) >= (uint32_t)len) {
			struct nk_hdr e;
			int r;

			nk_hdr_init(&e, NK_EV_DATA, 0, s->id, 0);
			e.flags = h->flags & NK_F_ADDR;
			r = front_send(&n->f, &e, n->f.buf, (data - n->f.buf) + len);
			if (r)
				return r;
			s->txc.tx_cnt += len;
			s->tx += len;
			n->tx += len;
		} else if (n->echo) {
			n->drops++;
		}
		return rx_consumed(&n->f, s->id, &s->rxc, len, 0);
	}
	if (!n->echo)
		return rx_consumed(&n->f, s->id, &s->rxc, len, 0);
	if ((uint32_t)len > n->credit - s->qlen) {
		warnx("socket %u: %d bytes beyond the credit announced (%u held): engine bug",
		       s->id, len, s->qlen);
		n->errors++;
		return 0;
	}
	if (!s->q) {
		s->q = malloc(n->credit);
		if (!s->q)
			return -ENOMEM;
	}
	tail = (s->qhead + s->qlen) % n->credit;
	if ((uint32_t)len > n->credit - tail) {
		memcpy(s->q + tail, data, n->credit - tail);
		memcpy(s->q, data + (n->credit - tail), len - (n->credit - tail));
	} else {
		memcpy(s->q + tail, data, len);
	}
	s->qlen += len;
	return nsm_flush(n, s);
}

static int nsm_socket(struct nsm *n, const struct nk_hdr *h, int len)
{
	struct nsock **pp = nsock_slot(n, h->sock), *s;
	char abuf[64];

	if (*pp)
		return nsm_reply(n, h, NULL, -EEXIST, NULL, 0);
	s = calloc(1, sizeof(*s));
	if (!s)
		return nsm_reply(n, h, NULL, -ENOMEM, NULL, 0);
	s->id = h->sock;
	s->guest = h->arg[3] >> 32;
	s->type = h->arg[1];
	s->name.family = h->arg[0];
	if (len >= (int)sizeof(s->name))
		memcpy(&s->name, n->f.buf, sizeof(s->name));
	s->rxc.buf_alloc = n->credit;
	if (tx_update(&s->txc, h))
		return -EPROTO;
	*pp = s;
	n->opened++;
	printf("%s: socket %u opened: guest %u, %s %s, source %s, guest credit %u\n",
	       nk_ep_name(n->f.ep), s->id, s->guest,
	       h->arg[0] == AF_INET6 ? "inet6" : "inet", s->type == 1 ? "stream" : "dgram",
	       len >= (int)sizeof(s->name) ? addr_str(&s->name, abuf, sizeof(abuf)) : "none",
	       s->txc.peer_buf_alloc);
	return nsm_reply(n, h, s, 0, NULL, 0);
}

/* One request from a guest, forwarded by the engine. */
static int nsm_request(struct nsm *n, struct nk_hdr *h, int len)
{
	struct nsock **pp = nsock_slot(n, h->sock), *s = *pp;
	static const uint8_t zero[4];
	struct nk_addr *a = (struct nk_addr *)n->f.buf;
	bool addr = len >= (int)sizeof(*a);
	int r;

	n->requests++;
	if (h->op == NK_OP_SOCKET)
		return nsm_socket(n, h, len);
	if (!s)
		return nsm_reply(n, h, NULL, -EBADF, NULL, 0);
	if (tx_update(&s->txc, h))
		return -EPROTO;
	switch (h->op) {
	case NK_OP_BIND:
		if (!addr)
			return nsm_reply(n, h, s, -EINVAL, NULL, 0);
		s->name = *a;
		return nsm_reply(n, h, s, 0, NULL, 0);
	case NK_OP_CONNECT:
		if (!addr)
			return nsm_reply(n, h, s, -EINVAL, NULL, 0);
		s->peer = *a;
		return nsm_reply(n, h, s, 0, NULL, 0);
	case NK_OP_LISTEN:
	case NK_OP_SHUTDOWN:
	case NK_OP_SETSOCKOPT:
	case NK_OP_IOCTL:
		return nsm_reply(n, h, s, 0, NULL, 0);
	case NK_OP_ACCEPT:
		return nsm_reply(n, h, s, -EAGAIN, NULL, 0);
	case NK_OP_GETSOCKOPT:
		return nsm_reply(n, h, s, 0, zero, h->arg[2] < sizeof(zero) ? h->arg[2] : sizeof(zero));
	case NK_OP_GETSOCKNAME:
		return nsm_reply(n, h, s, 0, &s->name, sizeof(s->name));
	case NK_OP_GETPEERNAME:
		return nsm_reply(n, h, s, 0, &s->peer, sizeof(s->peer));
	case NK_OP_CLOSE:
		r = nsm_reply(n, h, NULL, 0, NULL, 0);
		nsock_free(n, pp, "");
		return r;
	case NK_OP_SEND:
		return nsm_data(n, h, s, len);
	case NK_OP_CREDIT:
		return nsm_flush(n, s);
	default:
		return nsm_reply(n, h, s, -EOPNOTSUPP, NULL, 0);
	}
}

static int nsm_message(struct nsm *n, struct nk_hdr *h, int len)
{
	if (h->op == NK_EV_PROTO_ERROR) {
		warnx("engine reports a protocol error: %s, code %" PRIu64 ", op %" PRIu64
		       ", socket %u", strerror(-(int32_t)h->status), (uint64_t)h->arg[0],
		       (uint64_t)h->arg[2], h->sock);
		n->errors++;
		return 0;
	}
	if (h->flags & NK_F_REPLY) {
		warnx("engine refused %s on socket %u: %s", nk_op_name(h->op), h->sock,
		       strerror(-(int32_t)h->status));
		n->errors++;
		return 0;
	}
	if (h->op < NK_OP_SOCKET || h->op > NK_OP_MAX_REQUEST) {
		warnx("unexpected %s on socket %u", nk_op_name(h->op), h->sock);
		n->errors++;
		return 0;
	}
	return nsm_request(n, h, len);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int nsm_run(struct nsm *n)
{
	struct nk_hdr h;
	int r;

	while (!stop) {
		r = front_recv(&n->f, &h, NSM_POLL_MS);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r >= 0)
			r = nsm_message(n, &h, r);
		if (r) {
			warnx("%s", strerror(-r));
			return r;
		}
	}
	return 0;
}

static int cmd_nsm(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "echo", no_argument, NULL, 'e' },
		{ "sink", no_argument, NULL, 'n' },
		{ "credit", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct nsm n = { .echo = true, .credit = DEF_CREDIT };
	struct sigaction sa = { .sa_handler = on_signal };
	const char *path = NULL;
	unsigned int i;
	uint64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:c:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'e':
		case 'n':
			n.echo = c == 'e';
			break;
		case 'c':
			if (parse_size(optarg, NK_CREDIT_MAX, &v) || !v) {
				warnx("--credit: 1 to %u bytes", NK_CREDIT_MAX);
				return EXIT_USAGE;
			}
			n.credit = v;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* No SA_RESTART: a signal ends the current wait. */
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		warnx("sigaction: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (front_open(&n.f, path, NK_ROLE_NSM))
		return EXIT_FAIL;
	printf("%s: NSM endpoint %u, max_payload %u, %s, credit %u\n", nk_ep_name(n.f.ep),
	       nk_ep_id(n.f.ep), n.f.max_payload, n.echo ? "echo" : "sink", n.credit);
	r = nsm_run(&n);
	for (i = 0; i < NSOCK_BUCKETS; i++)
		while (n.hash[i])
			nsock_free(&n, &n.hash[i], " at exit");
	printf("%s: %" PRIu64 " requests, %" PRIu64 " sockets opened, %" PRIu64 " closed, %"
	       PRIu64 " bytes in, %" PRIu64 " bytes out, %" PRIu64 " dropped, %" PRIu64
	       " errors\n", nk_ep_name(n.f.ep), n.requests, n.opened, n.closed, n.rx, n.tx,
	       n.drops, n.errors);
	print_counts("sent", n.f.sent);
	print_counts("received", n.f.rcvd);
	front_close(&n.f);
	return r ? EXIT_FAIL : EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* nkfront config                                                    */
/* ---------------------------------------------------------------- */

static int cmd_config(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct nk_config *cfg;
	const char *path = NULL;
	struct vuf_dev *d;
	bool ok;
	int c;

	while ((c = getopt_long(argc, argv, "s:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	d = vuf_connect(path, NULL);
	if (!d) {
		warnx("%s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	cfg = vuf_config(d);
	ok = !cfg->zero && cfg->magic[0] == NK_CONFIG_MAGIC0 &&
	     cfg->magic[1] == NK_CONFIG_MAGIC1 && cfg->magic[2] == NK_CONFIG_MAGIC2;
	printf("role:       %u (%s)\n", cfg->role,
	       cfg->role == NK_ROLE_GUEST ? "guest" : cfg->role == NK_ROLE_NSM ? "nsm" : "?");
	printf("max_qpairs: %u\n", cfg->max_qpairs);
	printf("magic:      %02x %02x %02x (%s)\n", cfg->magic[0], cfg->magic[1], cfg->magic[2],
	       ok ? "nk device" : "not an nk device");
	printf("version:    %u\n", cfg->version);
	vuf_disconnect(d);
	return ok ? EXIT_OK : EXIT_FAIL;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} cmds[] = {
		{ "nsm", cmd_nsm },
		{ "guest", cmd_guest },
		{ "config", cmd_config },
	};
	unsigned int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	warnx("unknown command: %s", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
