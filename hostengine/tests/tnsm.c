// SPDX-License-Identifier: GPL-2.0
/*
 * The test NSM (tnsm.h).
 *
 * Threading: the NSM thread owns the nk_ep and does every vufront call on
 * it; it holds t->lock while it handles messages, streams data or sends
 * for the test, and drops it while it sleeps in poll() on the eventq's
 * call eventfd and the command eventfd.  Test threads take t->lock only
 * briefly and wait on t->cond.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "harness.h"
#include "tnsm.h"

#define TNSM_LOG_MAX	200000
#define TNSM_INFO_SLOT	(NK_OP_MAX_REQUEST + 1)	/* NK_OP_INFO's knobs */
#define TNSM_NOPS	(NK_OP_MAX_REQUEST + 2)

struct tsock {
	struct tnsm_sock_info i;
	struct nk_credit_rx rx;		/* the guest's SENDs */
	struct nk_credit_tx tx;		/* our EV_DATA, the guest's credit */
	uint64_t seed;
};

struct tcmd {
	const struct nk_hdr *h;
	const void *payload;
	size_t len;
	int ret;
	bool done;
	struct tcmd *next;
};

struct tnsm {
	struct nk_ep *ep;
	pthread_t th;
	int efd, callfd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool quit;
	int err;
	uint32_t max;
	uint8_t *buf, *tbuf;

	/* knobs */
	enum tnsm_mode mode[TNSM_NOPS];
	int32_t status[TNSM_NOPS];
	uint32_t credit;
	bool rec_sends;
	bool hold;

	struct tnsm_rec *log;
	size_t nlog, caplog;
	struct tsock *socks;
	size_t nsocks, capsocks;
	struct tcmd *cmds, **cmds_tail;
	uint64_t data_msgs;
};

static void terr(struct tnsm *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void terr(struct tnsm *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("# tnsm: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	t->err++;
}

static struct tsock *sock_find(struct tnsm *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nsocks; i++)
		if (t->socks[i].i.id == id)
			return &t->socks[i];
	return NULL;
}

static struct tsock *sock_new(struct tnsm *t, uint32_t id)
{
	struct tsock *s = sock_find(t, id);

	if (!s) {
		if (t->nsocks == t->capsocks) {
			size_t cap = t->capsocks ? 2 * t->capsocks : 64;
			struct tsock *n = realloc(t->socks, cap * sizeof(*n));

			if (!n) {
				terr(t, "out of memory");
				return NULL;
			}
			t->socks = n;
			t->capsocks = cap;
		}
		s = &t->socks[t->nsocks++];
	}
	memset(s, 0, sizeof(*s));
	s->i.id = id;
	s->i.rx_hash = s->i.tx_hash = H_FNV_INIT;
	s->rx.buf_alloc = t->credit;
	return s;
}

static void record(struct tnsm *t, const struct nk_hdr *h, const void *p, int len)
{
	struct tnsm_rec *r;

	if (h->op == NK_OP_SEND && !(h->flags & NK_F_REPLY) && !t->rec_sends)
		return;
	if (t->nlog == TNSM_LOG_MAX) {
		terr(t, "log full");
		return;
	}
	if (t->nlog == t->caplog) {
		size_t cap = t->caplog ? 2 * t->caplog : 1024;
		struct tnsm_rec *n = realloc(t->log, cap * sizeof(*n));

		if (!n) {
			terr(t, "out of memory");
			return;
		}
		t->log = n;
		t->caplog = cap;
	}
	r = &t->log[t->nlog++];
	r->h = *h;
	r->len = len;
	memcpy(r->data, p, len < TNSM_REC_DATA ? len : TNSM_REC_DATA);
	pthread_cond_broadcast(&t->cond);
}

static void tsend(struct tnsm *t, struct nk_hdr *h, const void *p, size_t len)
{
	int r = nk_ep_send(t->ep, h, p, len);

	if (r)
		terr(t, "nk_ep_send(op %#x sock %u): %s", h->op, h->sock, strerror(-r));
}

/*
 * The guest's credit for our EV_DATA.  An announcement nk_credit_tx_update()
 * refuses is not an error here: tests also send EV_DATA as the NSM by hand
 * (h_nsm_send()), which tx does not count.
 */
static void credit_take(const struct nk_hdr *h, struct tsock *s)
{
	if (s && (h->flags & NK_F_CREDIT))
		nk_credit_tx_update(&s->tx, h->buf_alloc, h->fwd_cnt);
}

static void reply(struct tnsm *t, const struct nk_hdr *h, const void *p, size_t len,
		  struct tsock *credit)
{
	struct nk_hdr r;

	nk_hdr_init(&r, h->op, NK_F_REPLY, h->sock, h->req_id);
	r.status = (uint32_t)t->status[h->op];
	if (h->op == NK_OP_IOCTL)
		r.arg[0] = TNSM_IOCTL_VAL;
	if (credit)
		nk_credit_rx_fill(&credit->rx, &r);
	tsend(t, &r, p, len);
}

static void on_send(struct tnsm *t, const struct nk_hdr *h, const uint8_t *p, int len)
{
	struct tsock *s = sock_find(t, h->sock);
	int n = nk_hdr_data_len(h);
	struct nk_hdr c;

	if (!s) {
		terr(t, "SEND on unknown socket %u", h->sock);
		return;
	}
	if (n < 0 || (uint32_t)len != h->len) {
		terr(t, "SEND of %d bytes, header says %u", len, h->len);
		return;
	}
	credit_take(h, s);
	p += len - n;
	len = n;
	s->i.rx_hash = h_fnv1a(s->i.rx_hash, p, len);
	s->i.rx_bytes += len;
	if (nk_credit_rx_accept(&s->rx, len)) {
		terr(t, "socket %u: SEND of %d bytes beyond credit", s->i.id, len);
		return;
	}
	s->rx.fwd_cnt += len;
	if (t->status[NK_OP_SEND]) {
		reply(t, h, NULL, 0, NULL);
		pthread_cond_broadcast(&t->cond);
		return;
	}
	/* Policy: CREDIT after a quarter of buf_alloc consumed unannounced. */
	if (s->rx.fwd_cnt - s->rx.fwd_sent >= s->rx.buf_alloc / 4) {
		nk_hdr_init(&c, NK_OP_CREDIT, 0, s->i.id, 0);
		nk_credit_rx_fill(&s->rx, &c);
		tsend(t, &c, NULL, 0);
	}
	pthread_cond_broadcast(&t->cond);
}

void tnsm_info_record(uint32_t sock, struct nk_sock_info *si)
{
	memset(si, 0, sizeof(*si));
	si->sock = sock;
	si->family = AF_INET;
	si->proto = IPPROTO_TCP;
	si->state = NK_SS_ESTABLISHED;
	nk_addr_parse(&si->local, TNSM_INFO_LOCAL_IP, TNSM_INFO_PORT(sock));
	nk_addr_parse(&si->remote, TNSM_PEER_IP, TNSM_PEER_PORT);
	si->rtt_us = TNSM_INFO_RTT(sock);
	si->rttvar_us = TNSM_INFO_RTT(sock) / 2;
	si->snd_cwnd = 10;
	si->retrans = 1;
	si->send_q = 3;
	si->recv_q = 4;
	si->delivery_rate = 125000000;
}

/* INFO: a record per id, made up by tnsm_info_record() for open sockets. */
static void on_info(struct tnsm *t, const struct nk_hdr *h, const uint8_t *p, int len)
{
	uint32_t n = len / sizeof(uint32_t), i, id;
	struct nk_sock_info *si = calloc(n + 1, sizeof(*si));
	struct tsock *s;
	struct nk_hdr r;

	if (!si || (uint32_t)len != h->len || len % sizeof(uint32_t)) {
		terr(t, "INFO of %d bytes", len);
		free(si);
		return;
	}
	for (i = 0; i < n; i++) {
		memcpy(&id, p + i * sizeof(id), sizeof(id));
		s = sock_find(t, id);
		if (s && !s->i.closed) {
			tnsm_info_record(id, &si[i]);
		} else {
			si[i].sock = id;
			si[i].status = (uint32_t)-EBADF;
		}
	}
	nk_hdr_init(&r, NK_OP_INFO, NK_F_REPLY, 0, h->req_id);
	r.status = (uint32_t)t->status[TNSM_INFO_SLOT];
	tsend(t, &r, r.status ? NULL : si, r.status ? 0 : n * sizeof(*si));
	free(si);
	pthread_cond_broadcast(&t->cond);
}

static void handle(struct tnsm *t, const struct nk_hdr *h, const uint8_t *p, int len)
{
	uint32_t optval = TNSM_OPTVAL;
	struct nk_addr a;
	struct tsock *s;
	uint16_t op = h->op;

	record(t, h, p, len);
	if (h->flags & NK_F_REPLY) {
		terr(t, "unexpected reply op %#x from the engine", op);
		return;
	}
	if (op == NK_OP_SEND)
		return on_send(t, h, p, len);
	if (op == NK_OP_CREDIT) {
		credit_take(h, sock_find(t, h->sock));
		return;
	}
	if (op == NK_OP_INFO) {
		if (t->mode[TNSM_INFO_SLOT] != TNSM_SILENT)
			on_info(t, h, p, len);
		return;
	}
	if (op < NK_OP_SOCKET || op > NK_OP_MAX_REQUEST)
		return;		/* events from the engine: recorded only */
	if (t->mode[op] == TNSM_SILENT)
		return;
	switch (op) {
	case NK_OP_SOCKET:
		s = t->status[op] ? NULL : sock_new(t, h->sock);
		if (s) {
			s->i.guest_ep = h->arg[3] >> 32;
			credit_take(h, s);
		}
		reply(t, h, NULL, 0, s);
		break;
	case NK_OP_ACCEPT:
		s = t->status[op] ? NULL : sock_new(t, h->arg[0]);
		if (s)
			credit_take(h, s);
		nk_addr_parse(&a, TNSM_PEER_IP, TNSM_PEER_PORT);
		reply(t, h, s ? &a : NULL, s ? sizeof(a) : 0, s);
		break;
	case NK_OP_CLOSE:
		s = sock_find(t, h->sock);
		if (s)
			s->i.closed = true;
		reply(t, h, NULL, 0, NULL);
		break;
	case NK_OP_GETSOCKOPT:
		reply(t, h, &optval, sizeof(optval), NULL);
		break;
	case NK_OP_GETSOCKNAME:
	case NK_OP_GETPEERNAME:
		if (op == NK_OP_GETSOCKNAME)
			nk_addr_parse(&a, "10.0.0.11", TNSM_NAME_PORT);
		else
			nk_addr_parse(&a, TNSM_PEER_IP, TNSM_PEER_PORT);
		reply(t, h, &a, sizeof(a), NULL);
		break;
	default:
		reply(t, h, NULL, 0, NULL);
		break;
	}
	pthread_cond_broadcast(&t->cond);
}

/* Stream EV_DATA within the guests' credit; true if anything was sent. */
static bool pump(struct tnsm *t)
{
	bool sent = false;
	size_t i;

	for (i = 0; i < t->nsocks; i++) {
		struct tsock *s = &t->socks[i];

		while (!s->i.closed && s->i.tx_done < s->i.tx_total) {
			uint32_t room = nk_credit_tx_space(&s->tx);
			uint64_t n = t->max;
			struct nk_hdr h;

			if (n > room)
				n = room;
			if (n > s->i.tx_total - s->i.tx_done)
				n = s->i.tx_total - s->i.tx_done;
			if (!n)
				break;
			h_pattern(t->tbuf, n, s->seed, s->i.tx_done);
			s->i.tx_hash = h_fnv1a(s->i.tx_hash, t->tbuf, n);
			nk_hdr_init(&h, NK_EV_DATA, 0, s->i.id, 0);
			tsend(t, &h, t->tbuf, n);
			s->tx.tx_cnt += n;
			s->i.tx_done += n;
			t->data_msgs++;
			sent = true;
			pthread_cond_broadcast(&t->cond);
		}
	}
	return sent;
}

static void *thread_main(void *arg)
{
	struct tnsm *t = arg;
	struct pollfd pfd[2] = {
		{ .fd = t->callfd, .events = POLLIN },
		{ .fd = t->efd, .events = POLLIN },
	};
	struct nk_hdr h;
	uint64_t v;
	bool busy;
	int len;

	pthread_mutex_lock(&t->lock);
	while (!t->quit) {
		struct tcmd *c;

		while ((c = t->cmds)) {
			struct nk_hdr hh = *c->h;

			t->cmds = c->next;
			if (!t->cmds)
				t->cmds_tail = &t->cmds;
			c->ret = nk_ep_send(t->ep, &hh, c->payload, c->len);
			c->done = true;
			pthread_cond_broadcast(&t->cond);
		}
		busy = false;
		while (!t->hold && (len = nk_ep_recv(t->ep, &h, t->buf, t->max, 0)) >= 0) {
			if ((uint32_t)len > t->max)
				terr(t, "message of %d bytes > max_payload", len);
			else
				handle(t, &h, t->buf, len);
			busy = true;
		}
		busy |= pump(t);
		if (busy)
			continue;
		pthread_mutex_unlock(&t->lock);
		if (poll(pfd, 2, 20) > 0) {
			if ((pfd[0].revents & POLLIN) && read(t->callfd, &v, sizeof(v)) < 0)
				v = 0;
			if ((pfd[1].revents & POLLIN) && read(t->efd, &v, sizeof(v)) < 0)
				v = 0;
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

struct tnsm *tnsm_start(const char *path)
{
	return tnsm_start_mp(path, 0);
}

struct tnsm *tnsm_start_mp(const char *path, uint32_t max_payload)
{
	return tnsm_start_opts(path, max_payload, 0);
}

struct tnsm *tnsm_start_opts(const char *path, uint32_t max_payload, uint64_t features)
{
	struct nk_ep_opts o = {
		.role = NK_ROLE_NSM, .timeout_ms = H_TIMEOUT_MS, .max_payload = max_payload,
		.features = features,
	};
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	struct tnsm *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->cmds_tail = &t->cmds;
	tnsm_defaults(t);
	t->rec_sends = true;
	/* Retry while the engine finishes with a previous connection. */
	while (!(t->ep = nk_ep_open(path, &o)) && h_now() < deadline &&
	       (errno == ECONNRESET || errno == EPIPE || errno == ECONNREFUSED))
		usleep(20000);
	if (!t->ep)
		goto fail;
	t->max = nk_ep_max_payload(t->ep);
	t->buf = malloc(t->max);
	t->tbuf = malloc(t->max);
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t->callfd = vuf_vq_call_fd(nk_ep_dev(t->ep), NK_VQ_EVENT(0));
	if (!t->buf || !t->tbuf || t->efd < 0)
		goto fail;
	if (pthread_create(&t->th, NULL, thread_main, t)) {
		errno = EAGAIN;
		goto fail;
	}
	return t;
fail:
	if (t->ep)
		nk_ep_close(t->ep);
	free(t->buf);
	free(t->tbuf);
	free(t);
	return NULL;
}

static void wake(struct tnsm *t)
{
	uint64_t one = 1;

	if (write(t->efd, &one, sizeof(one)) < 0)
		perror("tnsm: eventfd");
}

void tnsm_stop(struct tnsm *t)
{
	pthread_mutex_lock(&t->lock);
	t->quit = true;
	pthread_mutex_unlock(&t->lock);
	wake(t);
	pthread_join(t->th, NULL);
	nk_ep_close(t->ep);
	close(t->efd);
	free(t->buf);
	free(t->tbuf);
	free(t->log);
	free(t->socks);
	free(t);
}

uint32_t tnsm_ep_id(struct tnsm *t)
{
	return nk_ep_id(t->ep);
}

const char *tnsm_ep_name(struct tnsm *t)
{
	return nk_ep_name(t->ep);
}

int tnsm_error(struct tnsm *t)
{
	int e;

	pthread_mutex_lock(&t->lock);
	e = t->err;
	pthread_mutex_unlock(&t->lock);
	return e;
}

void tnsm_defaults(struct tnsm *t)
{
	unsigned int i;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < TNSM_NOPS; i++) {
		t->mode[i] = TNSM_AUTO;
		t->status[i] = 0;
	}
	t->credit = TNSM_CREDIT;
	t->rec_sends = true;
	pthread_mutex_unlock(&t->lock);
}

void tnsm_set_reply(struct tnsm *t, uint16_t op, enum tnsm_mode mode, int32_t status)
{
	if (op == NK_OP_INFO)
		op = TNSM_INFO_SLOT;
	if (op >= TNSM_NOPS)
		return;
	pthread_mutex_lock(&t->lock);
	t->mode[op] = mode;
	t->status[op] = status;
	pthread_mutex_unlock(&t->lock);
}

void tnsm_set_credit(struct tnsm *t, uint32_t buf_alloc)
{
	pthread_mutex_lock(&t->lock);
	t->credit = buf_alloc;
	pthread_mutex_unlock(&t->lock);
}

void tnsm_record_sends(struct tnsm *t, bool on)
{
	pthread_mutex_lock(&t->lock);
	t->rec_sends = on;
	pthread_mutex_unlock(&t->lock);
}

static void wake(struct tnsm *t);

void tnsm_hold(struct tnsm *t, bool on)
{
	pthread_mutex_lock(&t->lock);
	t->hold = on;
	pthread_mutex_unlock(&t->lock);
	wake(t);
}

size_t tnsm_log_count(struct tnsm *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nlog;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static int wait_until(struct tnsm *t, const struct timespec *ts)
{
	return pthread_cond_timedwait(&t->cond, &t->lock, ts);
}

static void deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int tnsm_wait_sock(struct tnsm *t, size_t *pos, uint16_t op, uint32_t sock, int timeout_ms,
		   struct tnsm_rec *out)
{
	struct timespec ts;
	int ret = -ETIMEDOUT;

	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&t->lock);
	for (;;) {
		for (; *pos < t->nlog; (*pos)++) {
			const struct tnsm_rec *r = &t->log[*pos];

			if ((!op || r->h.op == op) && (sock == UINT32_MAX || r->h.sock == sock)) {
				if (out)
					*out = *r;
				(*pos)++;
				ret = 0;
				goto out;
			}
		}
		if (wait_until(t, &ts) == ETIMEDOUT && *pos >= t->nlog)
			break;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int tnsm_wait(struct tnsm *t, size_t *pos, uint16_t op, int timeout_ms, struct tnsm_rec *out)
{
	return tnsm_wait_sock(t, pos, op, UINT32_MAX, timeout_ms, out);
}

int tnsm_send(struct tnsm *t, const struct nk_hdr *h, const void *payload, size_t len)
{
	struct tcmd c = { .h = h, .payload = payload, .len = len };

	pthread_mutex_lock(&t->lock);
	*t->cmds_tail = &c;
	t->cmds_tail = &c.next;
	pthread_mutex_unlock(&t->lock);
	wake(t);
	pthread_mutex_lock(&t->lock);
	while (!c.done)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return c.ret;
}

int tnsm_sock(struct tnsm *t, uint32_t sock, struct tnsm_sock_info *out)
{
	struct tsock *s;
	int ret = -ENOENT;

	pthread_mutex_lock(&t->lock);
	s = sock_find(t, sock);
	if (s) {
		*out = s->i;
		ret = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int tnsm_stream(struct tnsm *t, uint32_t sock, uint64_t bytes, uint64_t seed)
{
	struct tsock *s;
	int ret = -ENOENT;

	pthread_mutex_lock(&t->lock);
	s = sock_find(t, sock);
	if (s) {
		s->seed = seed;
		s->i.tx_total += bytes;
		ret = 0;
	}
	pthread_mutex_unlock(&t->lock);
	wake(t);
	return ret;
}

static int wait_sock_cond(struct tnsm *t, uint32_t sock, uint64_t rx, bool tx, int timeout_ms)
{
	struct timespec ts;
	struct tsock *s;
	int ret = -ETIMEDOUT;

	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&t->lock);
	for (;;) {
		s = sock_find(t, sock);
		if (s && !tx && s->i.rx_bytes >= rx) {
			ret = 0;
			break;
		}
		if (s && tx && (s->i.tx_done >= s->i.tx_total || s->i.closed)) {
			ret = 0;
			break;
		}
		if (wait_until(t, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int tnsm_wait_rx(struct tnsm *t, uint32_t sock, uint64_t bytes, int timeout_ms)
{
	return wait_sock_cond(t, sock, bytes, false, timeout_ms);
}

int tnsm_wait_tx(struct tnsm *t, uint32_t sock, int timeout_ms)
{
	return wait_sock_cond(t, sock, 0, true, timeout_ms);
}

uint64_t tnsm_evq_kicks(struct tnsm *t)
{
	return vuf_vq_kicks(nk_ep_dev(t->ep), NK_VQ_EVENT(0));
}

uint64_t tnsm_data_msgs(struct tnsm *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->lock);
	n = t->data_msgs;
	pthread_mutex_unlock(&t->lock);
	return n;
}
