// SPDX-License-Identifier: GPL-2.0
/*
 * nkbench - the host engine alone, beside the machine's own limits
 * (Documentation/netkernel/performance.rst, part 1 of "make bench").
 *
 *   nkbench (--engine PATH | --run-dir DIR) [--smoke] [--seconds S]
 *           [--reps N] [--json FILE | --only NAME]
 *
 * One process plays two guests (vm1, vm2) and their NSM (nsm0) over
 * vhost-user with libvufront, and measures, each beside a baseline taken
 * in the same run (engine and baseline alternate, A B A B, --reps times):
 *
 *  1. small SENDs (32-byte payload) switched per second at batch 1, 8 and
 *     32: B requests published, wait until the requestq has given them
 *     all back, repeat; counted as messages the NSM received.  Baseline:
 *     the same generator against an ideal switch thread on plain memory
 *     rings (pop, one memcpy of header and payload into an eventq buffer,
 *     push used on both; no validation, no translation).
 *  2. payload forwarding GB/s for 64 B, 1 KiB, 16 KiB and 64 KiB SENDs,
 *     the ring kept as full as the NSM's credit (NK_CREDIT_MAX) allows.
 *     Baseline: single-core memcpy of the same size over as many distinct
 *     source and destination buffers as the rings have entries.
 *  3. one-way latency of a 32-byte SEND, guest publish to visible in the
 *     NSM's eventq, p50, p99 and max: idle (one probe every 50 us) and
 *     loaded (the same probes from vm2 while vm1 streams 16 KiB SENDs).
 *     Baseline: the same on the ideal switch.
 *
 * Every message the NSM receives is checked: op, socket id (the NSM's
 * own, as the engine translated it), length, and req_id, which carries
 * the message's sequence number.  The payload carries a per-slot pattern
 * and, in its first and (inverted) last word, the sequence number:
 * written and checked for every message with --smoke, for one in 64
 * otherwise (so that the generator's own cache-line traffic stays small).
 * Any mismatch, any other message (an error reply, an EV_PROTO_ERROR), or
 * nothing moving for STALL_S seconds ends the run with exit status 1.
 *
 * The generator drives the rings itself (vuf_vq_take): descriptor chains
 * are fixed (requestq descriptor i is slot i, in avail ring entry i), only
 * the avail index is stored per batch, interrupts are off
 * (VRING_AVAIL_F_NO_INTERRUPT) and a kick is written only when the engine
 * has cleared VRING_USED_F_NO_NOTIFY (it sleeps).  Setup (HELLO, SOCKET,
 * CONNECT) uses nk_ep, step by step: the guest sends, the NSM answers,
 * the guest reads the reply.  The NSM announces NK_CREDIT_MAX and returns
 * credit (a CREDIT message) every CREDIT_STEP bytes it consumes.
 *
 * Threading: the main thread is the whole frontend (both guests and the
 * NSM), pinned to FRONT_CPU.  The engine's data-plane lcore is ENGINE_CPU
 * (the generated configuration says so; with --run-dir the operator's
 * must).  The baselines run one thread pinned to ENGINE_CPU, started for
 * each baseline measurement and joined after it, so that it never
 * competes with the engine: the ideal switch (it owns the device side of
 * the plain rings while it runs) or the memcpy loop.  A failure prints
 * its cause, stops the engine nkbench started, and exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vufront.h"

#define FRONT_CPU	0		/* the frontend: this process */
#define ENGINE_CPU	1		/* the engine's data plane, and the baselines */

#define HDR_LEN		((uint32_t)sizeof(struct nk_hdr))
#define QSIZE		256		/* entries of every virtqueue */
#define GEV_BUFS	64		/* guest eventq buffers (CREDIT events only) */
#define BULK_STRIDE	(HDR_LEN + NK_MAX_PAYLOAD)	/* a requestq slot of vm1 */
#define SMALL_STRIDE	128		/* a requestq slot of vm2, of the NSM */
#define SMALL_LEN	32		/* payload of small requests and probes */
#define LOAD_LEN	16384		/* payload of the load under latency probes */
#define MAX_BATCH	32		/* SENDs published at once when streaming */
#define PROBE_RESERVE	8		/* NSM eventq buffers left for probes */
#define CREDIT		NK_CREDIT_MAX	/* the NSM's buf_alloc */
#define CREDIT_STEP	(CREDIT / 8)	/* CREDIT after this many bytes consumed */
#define SAMPLE_MASK	63		/* full payload check: 1 in 64 (all: --smoke) */
#define PROBE_GAP_NS	50000ULL
#define STALL_S		3
#define SETUP_MS	10000
#define ENGINE_WAIT_S	30
#define ENGINE_STOP_S	10
#define MAX_REPS	50
#define NSEC		1000000000ULL

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#define __noreturn	__attribute__((noreturn))

/* One virtqueue driven by the generator, and the buffer of each descriptor. */
struct bring {
	struct vuf_ring r;
	uint16_t mask;
	uint8_t **va;
};

/* One guest socket, its rings and its NSM end. */
struct link {
	struct bring rq;		/* descriptor i: slot i, avail entry i */
	struct bring ev;
	uint32_t gsock, nsock;		/* the guest's id, the NSM's */
	uint32_t len;			/* payload of its SENDs */
	bool probe;			/* its SENDs are latency probes */
	uint16_t seq0;			/* avail index of sequence number 0 */
	uint64_t tx_seq, rx_seq;	/* SENDs published, received by the NSM */
	struct nk_credit_tx tx;		/* guest: bytes sent, the NSM's credit */
	struct nk_credit_rx rx;		/* NSM: bytes consumed, and announced */
	uint64_t probe_t0;		/* a probe is out since then (ns), or 0 */
};

/* The ideal switch's side of a plain ring. */
struct sw_q {
	struct vring *vr;
	uint16_t last_avail;
	uint16_t used_idx;
	bool dirty;			/* used_idx not yet published */
};

struct ideal {
	pthread_t tid;
	bool stop;
	uint32_t probe_sock;		/* NSM messages for it go to vm2 */
	struct sw_q grq[2], gev[2], nrq, nev;
};

/* One side of the comparison: the engine's rings, or the ideal switch's. */
struct bench {
	const char *name;
	struct link l[2];		/* vm1: load, vm2: probes */
	struct bring nrq, nev;		/* the NSM */
	struct ideal *sw;		/* plain rings: their switch */
	uint64_t rx_bytes;		/* payload the NSM received */
	uint64_t *lat;			/* probe latencies (ns) */
	size_t nlat, lat_cap;
	uint64_t work, seen_work, seen_ns;	/* stall watchdog */
	unsigned int spins;
};

/* The phases: one line of output and one JSON entry each. */
enum {
	P_B1, P_B8, P_B32,
	P_F64, P_F1K, P_F16K, P_F64K,
	P_IDLE_P50, P_IDLE_P99, P_IDLE_MAX,
	P_LOAD_P50, P_LOAD_P99, P_LOAD_MAX,
	NR_PHASES,
};

struct phase {
	const char *name, *metric, *unit, *baseline;
	double eng[MAX_REPS], base[MAX_REPS];
};

#define RATE(n, b)	{ n, "requests at batch " #b, "Mreq/s", "ideal ring" }
#define FWD(n, s)	{ n, "forwarding " s, "GB/s", "memcpy" }
#define LAT(n, m)	{ n, m, "us", "ideal ring" }

static struct phase phases[NR_PHASES] = {
	[P_B1] = RATE("small_b1", 1),
	[P_B8] = RATE("small_b8", 8),
	[P_B32] = RATE("small_b32", 32),
	[P_F64] = FWD("fwd_64", "64 B"),
	[P_F1K] = FWD("fwd_1k", "1 KiB"),
	[P_F16K] = FWD("fwd_16k", "16 KiB"),
	[P_F64K] = FWD("fwd_64k", "64 KiB"),
	[P_IDLE_P50] = LAT("lat_idle_p50", "latency idle p50"),
	[P_IDLE_P99] = LAT("lat_idle_p99", "latency idle p99"),
	[P_IDLE_MAX] = LAT("lat_idle_max", "latency idle max"),
	[P_LOAD_P50] = LAT("lat_load_p50", "latency loaded p50"),
	[P_LOAD_P99] = LAT("lat_load_p99", "latency loaded p99"),
	[P_LOAD_MAX] = LAT("lat_load_max", "latency loaded max"),
};

/* The engine nkbench started (pid > 0), or the one at --run-dir. */
static struct {
	char dir[PATH_MAX];
	char name[32];
	char cfg[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	pid_t pid;
} E = { .pid = -1 };

static bool full_check;
static uint64_t warm_ns, meas_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec;
}

static void engine_stop(bool keep);

static void __printf(1, 2) __noreturn fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	fputs("nkbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	engine_stop(true);
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;
	int r;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (r)
		fail("cannot pin a thread to CPU %d: %s", cpu, strerror(r));
}

static void *zmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap %zu bytes: %s", len, strerror(errno));
	return p;
}

static void *zalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		fail("out of memory");
	return p;
}

/* ------------------------------------------------------------------ */
/* The engine process                                                  */
/* ------------------------------------------------------------------ */

static const char *const ep_names[] = { "nsm0", "vm1", "vm2" };

static void ep_path(char *buf, size_t size, const char *ep)
{
	snprintf(buf, size, "%s/%s.sock", E.dir, ep);
}

static void write_config(void)
{
	FILE *f = fopen(E.cfg, "w");

	if (!f)
		fail("%s: %s", E.cfg, strerror(errno));
	fprintf(f, "[engine]\nname = %s\nrun_dir = %s\nhugepages = no\n"
		"main_lcore = %d\ndataplane_lcore = %d\npoll = adaptive\nmax_payload = %d\n\n"
		"[nsm:nsm0]\nsocket = nsm0.sock\n\n"
		"[guest:vm1]\nsocket = vm1.sock\nnsm = nsm0\naddress = 10.0.0.11\n\n"
		"[guest:vm2]\nsocket = vm2.sock\nnsm = nsm0\naddress = 10.0.0.12\n",
		E.name, E.dir, FRONT_CPU, ENGINE_CPU, NK_MAX_PAYLOAD);
	if (fclose(f))
		fail("%s: %s", E.cfg, strerror(errno));
}

static bool engine_alive(void)
{
	int st;

	if (waitpid(E.pid, &st, WNOHANG) != E.pid)
		return true;
	E.pid = -1;
	return false;
}

/* Spawn @bin on a generated configuration; wait for its sockets. */
static void engine_start(const char *bin)
{
	uint64_t deadline = now_ns() + ENGINE_WAIT_S * NSEC;
	char path[PATH_MAX + 32];
	unsigned int i;

	snprintf(E.dir, sizeof(E.dir), "/tmp/nkbench.XXXXXX");
	if (!mkdtemp(E.dir))
		fail("mkdtemp: %s", strerror(errno));
	snprintf(E.name, sizeof(E.name), "nkbench-%d", (int)getpid());
	snprintf(E.cfg, sizeof(E.cfg), "%s/engine.conf", E.dir);
	snprintf(E.log, sizeof(E.log), "%s/engine.log", E.dir);
	write_config();
	fflush(NULL);
	E.pid = fork();
	if (E.pid < 0)
		fail("fork: %s", strerror(errno));
	if (!E.pid) {
		int fd = open(E.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execl(bin, bin, "-c", E.cfg, "-f", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (i = 0; i < ARRAY_SIZE(ep_names); ) {
		if (!engine_alive())
			fail("%s exited during start-up (log: %s)", bin, E.log);
		if (now_ns() > deadline)
			fail("%s: no vhost-user sockets after %d s (log: %s)", bin,
			     ENGINE_WAIT_S, E.log);
		ep_path(path, sizeof(path), ep_names[i]);
		if (!access(path, F_OK))
			i++;
		else
			usleep(20000);
	}
}

/* The files DPDK left for the engine's EAL file prefix (no subdirectories). */
static void rm_dpdk_dir(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "/var/run/dpdk/netkernel-%s", E.name);
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir)))
		unlinkat(dirfd(dir), de->d_name, 0);
	closedir(dir);
	rmdir(path);
}

/*
 * SIGTERM to the engine nkbench started; its run directory is removed
 * unless @keep (a failure: the log stays for a person to read), and so is
 * the EAL's runtime directory.
 */
static void engine_stop(bool keep)
{
	static const char *const files[] = { "engine.conf", "engine.log", "control.sock",
					      "nsm0.sock", "vm1.sock", "vm2.sock" };
	uint64_t deadline = now_ns() + ENGINE_STOP_S * NSEC;
	char path[PATH_MAX + 32];
	unsigned int i;
	int st = 0;

	if (E.pid <= 0)
		return;
	kill(E.pid, SIGTERM);
	while (waitpid(E.pid, &st, WNOHANG) != E.pid) {
		if (now_ns() > deadline) {
			fprintf(stderr, "nkbench: engine hangs after SIGTERM: SIGKILL\n");
			kill(E.pid, SIGKILL);
			waitpid(E.pid, &st, 0);
			keep = true;
			break;
		}
		usleep(10000);
	}
	E.pid = -1;
	rm_dpdk_dir();
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		keep = true;
	if (keep) {
		fprintf(stderr, "nkbench: engine log: %s\n", E.log);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", E.dir, files[i]);
		unlink(path);
	}
	rmdir(E.dir);
}

/* ------------------------------------------------------------------ */
/* Rings                                                               */
/* ------------------------------------------------------------------ */

static void bring_init(struct bring *q)
{
	q->mask = q->r.vr.num - 1;
	q->va = zalloc(q->r.vr.num, sizeof(*q->va));
}

/* Take virtqueue @vq of @d over, interrupts off. */
static void bring_take(struct bring *q, struct vuf_dev *d, unsigned int vq)
{
	vuf_vq_set_interrupts(d, vq, 0);
	if (vuf_vq_take(d, vq, &q->r))
		fail("cannot take virtqueue %u over", vq);
	bring_init(q);
}

/* Rings in plain memory, for the ideal switch: used->flags says "no kicks". */
static void bring_plain(struct bring *q)
{
	unsigned int n = QSIZE;

	q->r = (struct vuf_ring) {
		.vr = {
			.num = n,
			.desc = zmap(sizeof(struct vring_desc) * n),
			.avail = zmap(sizeof(uint16_t) * (3 + n)),
			.used = zmap(sizeof(uint16_t) * 3 + sizeof(struct vring_used_elem) * n),
		},
		.kick_fd = -1,
	};
	q->r.vr.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	q->r.vr.used->flags = VRING_USED_F_NO_NOTIFY;
	bring_init(q);
}

/*
 * A requestq's fixed chains: descriptor i is slot i (at @base, device
 * address @addr, @stride bytes apart, @len long) and sits in avail ring
 * entry i, so that publishing is storing the avail index.
 */
static void rq_slots(struct bring *q, uint8_t *base, uint64_t addr, size_t stride,
		     uint32_t len)
{
	unsigned int i;

	for (i = 0; i < q->r.vr.num; i++) {
		q->r.vr.desc[i] = (struct vring_desc) { .addr = addr + i * stride, .len = len };
		q->va[i] = base + i * stride;
		q->r.vr.avail->ring[i] = i;
	}
}

/* Plain eventq: @n buffers of @stride bytes posted. */
static void ev_post_plain(struct bring *q, unsigned int n, size_t stride)
{
	uint8_t *base = zmap(n * stride);
	unsigned int i;

	for (i = 0; i < n; i++) {
		q->va[i] = base + i * stride;
		q->r.vr.desc[i] = (struct vring_desc) {
			.addr = (uintptr_t)q->va[i],
			.len = stride,
			.flags = VRING_DESC_F_WRITE,
		};
		q->r.vr.avail->ring[i] = i;
	}
	q->r.avail_idx = n;
	vuf_ring_publish(&q->r);
}

/* Engine eventq: adopt the buffers nk_ep left posted. */
static void ev_adopt(struct bring *q, struct vuf_dev *d)
{
	uint16_t i;

	for (i = q->r.last_used; i != q->r.avail_idx; i++) {
		uint16_t head = q->r.vr.avail->ring[i & q->mask];
		struct vring_desc *desc = &q->r.vr.desc[head];

		if (desc->len < HDR_LEN + NK_MAX_PAYLOAD)
			fail("eventq buffer of %u bytes", desc->len);
		q->va[head] = vuf_gpa_to_va(d, desc->addr, desc->len);
	}
}

/* Post used buffer @id again (its avail entry is rewritten only if it moved). */
static inline void ev_repost(struct bring *q, uint16_t id)
{
	uint16_t *e = &q->r.vr.avail->ring[q->r.avail_idx++ & q->mask];

	if (*e != id)
		*e = id;
}

/* ------------------------------------------------------------------ */
/* The generator: guests and NSM                                       */
/* ------------------------------------------------------------------ */

static void __noreturn stall(struct bench *b)
{
	struct link *l = &b->l[0], *p = &b->l[1];

	fail("%s: stalled, nothing moved for %d s: vm1 sent %llu received %llu "
	     "(requestq avail %u used %u, credit in flight %u of %u), vm2 sent %llu "
	     "received %llu, NSM eventq avail %u used %u",
	     b->name, STALL_S, (unsigned long long)l->tx_seq, (unsigned long long)l->rx_seq,
	     l->rq.r.avail_idx, vuf_ring_used_idx(&l->rq.r), l->tx.tx_cnt - l->tx.peer_fwd_cnt,
	     l->tx.peer_buf_alloc, (unsigned long long)p->tx_seq, (unsigned long long)p->rx_seq,
	     b->nev.r.avail_idx, vuf_ring_used_idx(&b->nev.r));
}

/* Nothing to do: fail when nothing has moved for STALL_S seconds. */
static void idle(struct bench *b)
{
	uint64_t t;

	if (++b->spins & 1023)
		return;
	t = now_ns();
	if (b->work != b->seen_work) {
		b->seen_work = b->work;
		b->seen_ns = t;
	} else if (t - b->seen_ns > STALL_S * NSEC) {
		stall(b);
	}
}

static void __noreturn bad_msg(struct bench *b, const char *who, const struct nk_hdr *h,
			       uint32_t ulen, const char *why)
{
	fail("%s: %s received %s: op %#x flags %#x sock %u len %u (used length %u) "
	     "status %d req_id %llu", b->name, who, why, h->op, h->flags, h->sock, h->len,
	     ulen, (int32_t)h->status, (unsigned long long)h->req_id);
}

/* Payload words: the sequence number, the slot's pattern, its inverse. */
static uint64_t pattern(unsigned int slot, unsigned int word, uint32_t len)
{
	return ((uint64_t)slot << 40 | len) ^ (word * 0x9e3779b97f4a7c15ULL);
}

/* Set @l's SENDs to @len payload bytes: headers, lengths, patterns. */
static void link_set_len(struct link *l, uint32_t len)
{
	unsigned int i, k;

	l->len = len;
	for (i = 0; i < l->rq.r.vr.num; i++) {
		uint64_t *w = (uint64_t *)(l->rq.va[i] + HDR_LEN);

		l->rq.r.vr.desc[i].len = HDR_LEN + len;
		nk_hdr_init((struct nk_hdr *)l->rq.va[i], NK_OP_SEND, 0, l->gsock, 0);
		((struct nk_hdr *)l->rq.va[i])->len = len;
		for (k = 1; k + 1 < len / 8; k++)
			w[k] = pattern(i, k, len);
	}
}

static void check_payload(struct bench *b, struct link *l, const struct nk_hdr *h)
{
	const uint64_t *w = (const uint64_t *)(h + 1);
	unsigned int n = l->len / 8;
	uint16_t slot = (uint16_t)(l->seq0 + l->rx_seq) & l->rq.mask;
	const uint64_t *sent = (const uint64_t *)(l->rq.va[slot] + HDR_LEN);

	if (w[0] != l->rx_seq || w[n - 1] != ~l->rx_seq ||
	    memcmp(w + 1, sent + 1, (n - 2) * sizeof(*w)))
		bad_msg(b, "the NSM", h, HDR_LEN + h->len, "a corrupt payload");
}

/* CREDIT from the NSM for @l: fwd_cnt is what it has consumed. */
static void nsm_credit(struct bench *b, struct link *l)
{
	struct bring *q = &b->nrq;
	struct nk_hdr *h;

	while ((uint16_t)(q->r.avail_idx - vuf_ring_used_idx(&q->r)) >= q->r.vr.num)
		idle(b);
	h = (struct nk_hdr *)q->va[q->r.avail_idx & q->mask];
	nk_hdr_init(h, NK_OP_CREDIT, 0, l->nsock, 0);
	nk_credit_rx_fill(&l->rx, h);
	q->r.avail_idx++;
	vuf_ring_publish(&q->r);
	vuf_ring_kick(&q->r);
}

/* The NSM takes what arrived on its eventq, checks it, posts the buffers again. */
static unsigned int nsm_poll(struct bench *b)
{
	struct bring *q = &b->nev;
	uint16_t used = vuf_ring_used_idx(&q->r);
	unsigned int n = 0, i;

	for (; q->r.last_used != used; q->r.last_used++, n++) {
		struct vring_used_elem *e = &q->r.vr.used->ring[q->r.last_used & q->mask];
		uint32_t id = e->id, ulen = e->len;
		const struct nk_hdr *h;
		struct link *l;

		if (id >= q->r.vr.num || !q->va[id])
			fail("%s: the NSM's eventq returned descriptor %u", b->name, id);
		h = (const struct nk_hdr *)q->va[id];
		l = h->sock == b->l[0].nsock ? &b->l[0] : h->sock == b->l[1].nsock ? &b->l[1] :
		    NULL;
		if (!l || h->op != NK_OP_SEND || h->flags || h->len != l->len ||
		    ulen != HDR_LEN + l->len)
			bad_msg(b, "the NSM", h, ulen, "an unexpected message");
		if (h->req_id != l->rx_seq)
			bad_msg(b, "the NSM", h, ulen, "a message out of sequence");
		if (full_check || !(l->rx_seq & SAMPLE_MASK))
			check_payload(b, l, h);
		if (l->probe_t0) {
			b->lat[b->nlat++] = now_ns() - l->probe_t0;
			l->probe_t0 = 0;
		}
		l->rx_seq++;
		l->rx.fwd_cnt += l->len;
		b->rx_bytes += l->len;
		ev_repost(q, id);
	}
	if (!n)
		return 0;
	vuf_ring_publish(&q->r);
	vuf_ring_kick(&q->r);
	b->work += n;
	for (i = 0; i < ARRAY_SIZE(b->l); i++)
		if (b->l[i].rx.fwd_cnt - b->l[i].rx.fwd_sent >= CREDIT_STEP)
			nsm_credit(b, &b->l[i]);
	return n;
}

/* A guest takes its CREDIT events; anything else fails the run. */
static unsigned int guest_poll(struct bench *b, struct link *l)
{
	struct bring *q = &l->ev;
	uint16_t used = vuf_ring_used_idx(&q->r);
	unsigned int n = 0;

	for (; q->r.last_used != used; q->r.last_used++, n++) {
		struct vring_used_elem *e = &q->r.vr.used->ring[q->r.last_used & q->mask];
		uint32_t id = e->id, ulen = e->len;
		const struct nk_hdr *h;

		if (id >= q->r.vr.num || !q->va[id])
			fail("%s: a guest's eventq returned descriptor %u", b->name, id);
		h = (const struct nk_hdr *)q->va[id];
		if (h->op != NK_OP_CREDIT || h->flags != NK_F_CREDIT || h->sock != l->gsock ||
		    h->len || ulen != HDR_LEN)
			bad_msg(b, "a guest", h, ulen, "an unexpected message");
		if (nk_credit_tx_update(&l->tx, h->buf_alloc, h->fwd_cnt))
			bad_msg(b, "a guest", h, ulen, "a fwd_cnt beyond the bytes sent");
		ev_repost(q, id);
	}
	if (n) {
		vuf_ring_publish(&q->r);
		vuf_ring_kick(&q->r);
		b->work += n;
	}
	return n;
}

static unsigned int service(struct bench *b)
{
	return nsm_poll(b) + guest_poll(b, &b->l[0]) + guest_poll(b, &b->l[1]);
}

static uint64_t in_flight(const struct bench *b)
{
	return b->l[0].tx_seq - b->l[0].rx_seq + b->l[1].tx_seq - b->l[1].rx_seq;
}

/*
 * How many SENDs @l may publish now, up to @max: room on its requestq, in
 * the NSM's credit, and in the NSM's eventq (the engine must never have
 * to hold a message).
 */
static unsigned int room(const struct bench *b, struct link *l, unsigned int max)
{
	uint32_t in_rq = (uint16_t)(l->rq.r.avail_idx - l->rq.r.last_used);
	uint32_t credit = nk_credit_tx_space(&l->tx);
	uint64_t nsm = b->nev.r.vr.num - PROBE_RESERVE * !l->probe;
	uint64_t n = max;

	/* The engine's used index is read only when the last one read is short. */
	if (in_rq + max > l->rq.r.vr.num) {
		l->rq.r.last_used = vuf_ring_used_idx(&l->rq.r);
		in_rq = (uint16_t)(l->rq.r.avail_idx - l->rq.r.last_used);
	}
	n = n < l->rq.r.vr.num - in_rq ? n : l->rq.r.vr.num - in_rq;
	n = n < credit / l->len ? n : credit / l->len;
	n = in_flight(b) + n <= nsm ? n : nsm > in_flight(b) ? nsm - in_flight(b) : 0;
	return n;
}

/* Publish @n SENDs on @l: sequence numbers in, one avail index store. */
static void publish(struct bench *b, struct link *l, unsigned int n)
{
	struct bring *q = &l->rq;
	unsigned int k, last = l->len / 8 - 1;

	for (k = 0; k < n; k++) {
		uint8_t *p = q->va[(uint16_t)(q->r.avail_idx + k) & q->mask];
		uint64_t *w = (uint64_t *)(p + HDR_LEN), seq = l->tx_seq++;

		((struct nk_hdr *)p)->req_id = seq;
		if (full_check || !(seq & SAMPLE_MASK)) {
			w[0] = seq;
			w[last] = ~seq;
		}
	}
	l->tx.tx_cnt += n * l->len;
	q->r.avail_idx += n;
	if (l->probe)
		l->probe_t0 = now_ns();
	vuf_ring_publish(&q->r);
	vuf_ring_kick(&q->r);
	b->work += n;
}

/* Until everything sent was received and every requestq is given back. */
static void drain(struct bench *b)
{
	unsigned int i;

	while (in_flight(b))
		if (!service(b))
			idle(b);
	for (i = 0; i < ARRAY_SIZE(b->l); i++)
		while (vuf_ring_used_idx(&b->l[i].rq.r) != b->l[i].rq.r.avail_idx)
			idle(b);
	while (vuf_ring_used_idx(&b->nrq.r) != b->nrq.r.avail_idx)
		idle(b);
}

/* Phase 1: batches of @batch SENDs, each waited for.  Messages per second. */
static double run_rate(struct bench *b, unsigned int batch, uint64_t ns)
{
	struct link *l = &b->l[0];
	uint64_t t0 = now_ns(), end = t0 + ns, rx0 = l->rx_seq;

	do {
		while (room(b, l, batch) < batch)
			if (!service(b))
				idle(b);
		publish(b, l, batch);
		while (vuf_ring_used_idx(&l->rq.r) != l->rq.r.avail_idx)
			if (!service(b))
				idle(b);
	} while (now_ns() < end);
	drain(b);
	return (l->rx_seq - rx0) * 1e9 / (now_ns() - t0);
}

/*
 * Stream on vm1 as fast as the rings and the credit allow; with @probes,
 * one probe on vm2 every PROBE_GAP_NS.  Payload GB/s received by the NSM.
 */
static double run_stream(struct bench *b, bool load, bool probes, uint64_t ns)
{
	struct link *l = &b->l[0], *p = &b->l[1];
	uint64_t t0 = now_ns(), t = t0, end = t0 + ns, next = t0, bytes0 = b->rx_bytes;
	unsigned int n = 0;

	b->nlat = 0;
	while (t < end) {
		if (load) {
			n = room(b, l, MAX_BATCH);
			if (n)
				publish(b, l, n);
		}
		if (probes && !p->probe_t0 && t >= next && b->nlat < b->lat_cap &&
		    room(b, p, 1)) {
			publish(b, p, 1);
			next = t + PROBE_GAP_NS;
		}
		if (!service(b) && !n)
			idle(b);
		t = now_ns();
	}
	drain(b);
	return (b->rx_bytes - bytes0) / (double)(now_ns() - t0);
}

/* ------------------------------------------------------------------ */
/* The two sides                                                       */
/* ------------------------------------------------------------------ */

/*
 * A guest request answered by the NSM, step by step: the guest sends it,
 * the NSM takes it and replies with its credit, the guest takes the reply.
 * Returns the NSM's socket id.
 */
static uint32_t setup_call(struct nk_ep *g, struct nk_ep *nsm, struct nk_hdr *h,
			   const void *p, size_t len, struct link *l)
{
	struct nk_hdr req, rep;
	uint8_t buf[64];
	int r;

	h->req_id = nk_ep_next_req_id(g);
	r = nk_ep_send(g, h, p, len);
	if (!r)
		r = nk_ep_recv(nsm, &req, buf, sizeof(buf), SETUP_MS);
	if (r < 0)
		fail("setup: request %u: %s", h->op, strerror(-r));
	if (req.op != h->op || (req.flags & NK_F_REPLY))
		fail("setup: the NSM received op %#x flags %#x for op %u", req.op, req.flags,
		     h->op);
	nk_hdr_reply(&rep, &req, 0);
	l->rx.buf_alloc = CREDIT;
	nk_credit_rx_fill(&l->rx, &rep);
	r = nk_ep_send(nsm, &rep, NULL, 0);
	if (!r)
		r = nk_ep_recv(g, &rep, buf, sizeof(buf), SETUP_MS);
	if (r < 0)
		fail("setup: reply %u: %s", h->op, strerror(-r));
	if (rep.op != h->op || !(rep.flags & NK_F_REPLY) || rep.req_id != h->req_id ||
	    rep.status || !(rep.flags & NK_F_CREDIT))
		fail("setup: op %u: reply op %#x flags %#x status %d", h->op, rep.op, rep.flags,
		     (int32_t)rep.status);
	if (nk_credit_tx_update(&l->tx, rep.buf_alloc, rep.fwd_cnt))
		fail("setup: op %u: fwd_cnt %u in the reply", h->op, rep.fwd_cnt);
	return req.sock;
}

static struct nk_ep *ep_open(const char *name, enum nk_role role, unsigned int evbufs)
{
	struct nk_ep_opts o = {
		.role = role,
		.nr_event_bufs = evbufs,
		.timeout_ms = SETUP_MS,
		.vu = { .qsize = QSIZE },
	};
	char path[PATH_MAX + 32];
	struct nk_ep *ep;

	ep_path(path, sizeof(path), name);
	ep = nk_ep_open(path, &o);
	if (!ep)
		fail("%s: %s", path, strerror(errno));
	if (nk_ep_max_payload(ep) != NK_MAX_PAYLOAD)
		fail("%s: max_payload %u agreed, %u needed", name, nk_ep_max_payload(ep),
		     NK_MAX_PAYLOAD);
	return ep;
}

/* A guest's socket, connected through the engine, and its rings taken over. */
static void engine_link(struct link *l, struct nk_ep *g, struct nk_ep *nsm, uint32_t gsock,
			size_t stride)
{
	struct vuf_dev *d = nk_ep_dev(g);
	struct nk_addr to;
	struct nk_hdr h;
	uint64_t gpa;
	uint8_t *base;

	l->gsock = gsock;
	nk_hdr_init(&h, NK_OP_SOCKET, 0, gsock, 0);
	h.arg[0] = AF_INET;
	h.arg[1] = SOCK_STREAM;
	l->nsock = setup_call(g, nsm, &h, NULL, 0, l);
	nk_addr_parse(&to, "192.0.2.1", 80);
	nk_hdr_init(&h, NK_OP_CONNECT, 0, gsock, 0);
	setup_call(g, nsm, &h, &to, sizeof(to), l);

	bring_take(&l->rq, d, NK_VQ_REQUEST(0));
	bring_take(&l->ev, d, NK_VQ_EVENT(0));
	base = vuf_mem_alloc(d, QSIZE * stride, &gpa);
	if (!base)
		fail("guest memory: %s", strerror(errno));
	rq_slots(&l->rq, base, gpa, stride, 0);
	ev_adopt(&l->ev, d);
	l->seq0 = l->rq.r.avail_idx;
}

static void engine_side(struct bench *b)
{
	struct nk_ep *nsm = ep_open("nsm0", NK_ROLE_NSM, 0);
	struct nk_ep *vm1 = ep_open("vm1", NK_ROLE_GUEST, GEV_BUFS);
	struct nk_ep *vm2 = ep_open("vm2", NK_ROLE_GUEST, GEV_BUFS);
	struct vuf_dev *d = nk_ep_dev(nsm);
	uint64_t gpa;
	uint8_t *base;

	b->name = "engine";
	engine_link(&b->l[0], vm1, nsm, 1, BULK_STRIDE);
	engine_link(&b->l[1], vm2, nsm, 2, SMALL_STRIDE);
	bring_take(&b->nrq, d, NK_VQ_REQUEST(0));
	bring_take(&b->nev, d, NK_VQ_EVENT(0));
	base = vuf_mem_alloc(d, QSIZE * SMALL_STRIDE, &gpa);
	if (!base)
		fail("NSM memory: %s", strerror(errno));
	rq_slots(&b->nrq, base, gpa, SMALL_STRIDE, HDR_LEN);
	ev_adopt(&b->nev, d);
	/* The endpoints stay open (their memory with them) until exit. */
}

static void plain_link(struct link *l, uint32_t sock, size_t stride)
{
	uint8_t *base;

	l->gsock = sock;
	l->nsock = sock;
	l->tx.peer_buf_alloc = CREDIT;
	l->rx.buf_alloc = CREDIT;
	bring_plain(&l->rq);
	bring_plain(&l->ev);
	base = zmap(QSIZE * stride);
	rq_slots(&l->rq, base, (uintptr_t)base, stride, 0);
	ev_post_plain(&l->ev, GEV_BUFS, HDR_LEN + NK_MAX_PAYLOAD);
}

static void sw_q_init(struct sw_q *s, struct bring *q)
{
	s->vr = &q->r.vr;
}

static void plain_side(struct bench *b)
{
	struct ideal *sw = zalloc(1, sizeof(*sw));
	uint8_t *base = zmap(QSIZE * SMALL_STRIDE);
	unsigned int i;

	b->name = "baseline";
	b->sw = sw;
	plain_link(&b->l[0], 1, BULK_STRIDE);
	plain_link(&b->l[1], 2, SMALL_STRIDE);
	bring_plain(&b->nrq);
	bring_plain(&b->nev);
	rq_slots(&b->nrq, base, (uintptr_t)base, SMALL_STRIDE, HDR_LEN);
	ev_post_plain(&b->nev, QSIZE, HDR_LEN + NK_MAX_PAYLOAD);
	for (i = 0; i < ARRAY_SIZE(b->l); i++) {
		sw_q_init(&sw->grq[i], &b->l[i].rq);
		sw_q_init(&sw->gev[i], &b->l[i].ev);
	}
	sw_q_init(&sw->nrq, &b->nrq);
	sw_q_init(&sw->nev, &b->nev);
	sw->probe_sock = b->l[1].gsock;
}

/* vm2 sends the latency probes; room for a sample every PROBE_GAP_NS. */
static void bench_probes(struct bench *b)
{
	b->lat_cap = meas_ns / PROBE_GAP_NS + 16;
	b->lat = zalloc(b->lat_cap, sizeof(*b->lat));
	link_set_len(&b->l[1], SMALL_LEN);
	b->l[1].probe = true;
}

/* ------------------------------------------------------------------ */
/* Baselines: the ideal switch and memcpy                              */
/* ------------------------------------------------------------------ */

static void sw_used(struct sw_q *q, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e = &q->vr->used->ring[q->used_idx++ & (q->vr->num - 1)];

	e->id = id;
	e->len = len;
	q->dirty = true;
}

static void sw_flush(struct sw_q *q)
{
	if (!q->dirty)
		return;
	q->dirty = false;
	__atomic_store_n(&q->vr->used->idx, q->used_idx, __ATOMIC_RELEASE);
}

/*
 * Move up to MAX_BATCH messages from @src into the NSM's eventq, or (from
 * the NSM) into the eventq of the guest the socket id names: pop, one
 * memcpy of the whole message, used entries on both rings.
 */
static void sw_move(struct ideal *s, struct sw_q *src, bool from_nsm)
{
	uint16_t avail = __atomic_load_n(&src->vr->avail->idx, __ATOMIC_ACQUIRE);
	unsigned int n;

	for (n = 0; src->last_avail != avail && n < MAX_BATCH; n++) {
		uint16_t head = src->vr->avail->ring[src->last_avail & (src->vr->num - 1)], dh;
		const struct vring_desc *d = &src->vr->desc[head];
		const struct nk_hdr *h = (const struct nk_hdr *)(uintptr_t)d->addr;
		struct sw_q *dst = !from_nsm ? &s->nev : &s->gev[h->sock == s->probe_sock];

		if (dst->last_avail == __atomic_load_n(&dst->vr->avail->idx, __ATOMIC_ACQUIRE))
			break;
		dh = dst->vr->avail->ring[dst->last_avail++ & (dst->vr->num - 1)];
		memcpy((void *)(uintptr_t)dst->vr->desc[dh].addr, h, d->len);
		sw_used(dst, dh, d->len);
		sw_used(src, head, 0);
		src->last_avail++;
	}
	sw_flush(src);
	sw_flush(&s->nev);
	sw_flush(&s->gev[0]);
	sw_flush(&s->gev[1]);
}

static void *sw_main(void *arg)
{
	struct ideal *s = arg;

	pin(ENGINE_CPU);
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		sw_move(s, &s->grq[0], false);
		sw_move(s, &s->grq[1], false);
		sw_move(s, &s->nrq, true);
	}
	return NULL;
}

static void sw_start(struct ideal *s)
{
	int r;

	s->stop = false;
	r = pthread_create(&s->tid, NULL, sw_main, s);
	if (r)
		fail("pthread_create: %s", strerror(r));
}

static void sw_stop(struct ideal *s)
{
	__atomic_store_n(&s->stop, true, __ATOMIC_RELAXED);
	pthread_join(s->tid, NULL);
}

struct mcpy {
	uint8_t *src, *dst;
	size_t sstride, dstride, len;
	uint64_t ns;
	double gbps;
};

/* Copy @len bytes from buffer i % QSIZE to buffer i % QSIZE, for @ns. */
static void *mcpy_main(void *arg)
{
	struct mcpy *m = arg;
	uint64_t i, t0, t;

	pin(ENGINE_CPU);
	for (i = 0; i < QSIZE; i++)
		memcpy(m->dst + i * m->dstride, m->src + i * m->sstride, m->len);
	t0 = now_ns();
	t = t0;
	for (i = 0; t - t0 < m->ns; i++) {
		unsigned int k = i & (QSIZE - 1);

		memcpy(m->dst + k * m->dstride, m->src + k * m->sstride, m->len);
		if ((i & 63) == 63)
			t = now_ns();
	}
	m->gbps = i * m->len / (double)(t - t0);
	return NULL;
}

/* memcpy GB/s over the baseline's vm1 slots and NSM eventq buffers. */
static double memcpy_gbps(struct bench *plain, size_t len)
{
	struct mcpy m = {
		.src = plain->l[0].rq.va[0] + HDR_LEN,
		.dst = plain->nev.va[0] + HDR_LEN,
		.sstride = BULK_STRIDE,
		.dstride = HDR_LEN + NK_MAX_PAYLOAD,
		.len = len,
	};
	pthread_t tid;
	int r;

	m.ns = warm_ns;
	r = pthread_create(&tid, NULL, mcpy_main, &m);
	if (!r)
		r = pthread_join(tid, NULL);
	m.ns = meas_ns;
	if (!r)
		r = pthread_create(&tid, NULL, mcpy_main, &m);
	if (!r)
		r = pthread_join(tid, NULL);
	if (r)
		fail("memcpy thread: %s", strerror(r));
	return m.gbps;
}

/* ------------------------------------------------------------------ */
/* Measurements                                                        */
/* ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)ceil(p * n);

	return v[i ? i - 1 : 0] / 1e3;
}

enum test_kind { T_RATE, T_FWD, T_LAT };

struct test {
	enum test_kind kind;
	unsigned int arg;		/* batch, payload, or loaded */
	unsigned int phase;		/* the first of its phases */
};

static const struct test tests[] = {
	{ T_RATE, 1, P_B1 }, { T_RATE, 8, P_B8 }, { T_RATE, 32, P_B32 },
	{ T_FWD, 64, P_F64 }, { T_FWD, 1024, P_F1K }, { T_FWD, 16384, P_F16K },
	{ T_FWD, 65536, P_F64K },
	{ T_LAT, 0, P_IDLE_P50 }, { T_LAT, 1, P_LOAD_P50 },
};

/* One measurement of @t on side @b (its ideal switch running if plain). */
static void measure(const struct test *t, struct bench *b, double *out)
{
	unsigned int i;

	switch (t->kind) {
	case T_RATE:
		link_set_len(&b->l[0], SMALL_LEN);
		run_rate(b, t->arg, warm_ns);
		out[0] = run_rate(b, t->arg, meas_ns) / 1e6;
		break;
	case T_FWD:
		link_set_len(&b->l[0], t->arg);
		run_stream(b, true, false, warm_ns);
		out[0] = run_stream(b, true, false, meas_ns);
		break;
	case T_LAT:
		link_set_len(&b->l[0], LOAD_LEN);
		run_stream(b, t->arg, true, warm_ns);
		run_stream(b, t->arg, true, meas_ns);
		if (b->nlat < 100)
			fail("%s: only %zu latency samples", b->name, b->nlat);
		qsort(b->lat, b->nlat, sizeof(*b->lat), cmp_u64);
		out[0] = pct_us(b->lat, b->nlat, 0.50);
		out[1] = pct_us(b->lat, b->nlat, 0.99);
		out[2] = b->lat[b->nlat - 1] / 1e3;
		break;
	}
	for (i = 0; i < (t->kind == T_LAT ? 3U : 1U); i++)
		if (!isfinite(out[i]) || out[i] <= 0)
			fail("%s: %s: %g %s", b->name, phases[t->phase + i].name, out[i],
			     phases[t->phase + i].unit);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double med, min, max;
};

static struct stats stats(const double *v, unsigned int n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_dbl);
	return (struct stats) {
		.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2,
		.min = s[0],
		.max = s[n - 1],
	};
}

static void print_phase(const struct phase *p, unsigned int reps)
{
	double ratio[MAX_REPS];
	struct stats e = stats(p->eng, reps), b = stats(p->base, reps), r;
	unsigned int i;

	for (i = 0; i < reps; i++)
		ratio[i] = p->eng[i] / p->base[i];
	r = stats(ratio, reps);
	printf("%-20s %-7s %9.4g [%.4g..%.4g]  %-10s %9.4g [%.4g..%.4g]  %6.3f [%.3f..%.3f]\n",
	       p->metric, p->unit, e.med, e.min, e.max, p->baseline, b.med, b.min, b.max,
	       r.med, r.min, r.max);
}

static void print_values(FILE *f, const double *v, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		fprintf(f, "%s%.6g", i ? ", " : "", v[i]);
}

static void write_json(const char *path, unsigned int reps, double secs, bool smoke)
{
	FILE *f = fopen(path, "w");
	unsigned int i;

	if (!f)
		fail("%s: %s", path, strerror(errno));
	fprintf(f, "{\"tool\": \"nkbench\", \"smoke\": %s, \"seconds\": %g, \"reps\": %u, "
		"\"verified\": true, \"phases\": [", smoke ? "true" : "false", secs, reps);
	for (i = 0; i < NR_PHASES; i++) {
		const struct phase *p = &phases[i];

		fprintf(f, "%s\n  {\"name\": \"%s\", \"metric\": \"%s\", \"unit\": \"%s\", "
			"\"baseline_name\": \"%s\", \"engine\": [", i ? "," : "", p->name,
			p->metric, p->unit, p->baseline);
		print_values(f, p->eng, reps);
		fprintf(f, "], \"baseline\": [");
		print_values(f, p->base, reps);
		fprintf(f, "]}");
	}
	fprintf(f, "\n]}\n");
	if (fclose(f))
		fail("%s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkbench (--engine PATH | --run-dir DIR) [--smoke] [--seconds S]\n"
		"               [--reps N] [--json FILE]\n"
		"\n"
		"The host engine alone, played by one process (guests vm1 and vm2, NSM nsm0),\n"
		"each figure beside the machine's limit measured in the same run.\n"
		"  --engine PATH  start PATH on a generated configuration in a temporary\n"
		"                 run_dir (data plane on CPU %d, this process on CPU %d)\n"
		"  --run-dir DIR  use the engine already serving DIR/{nsm0,vm1,vm2}.sock\n"
		"                 (vm1 and vm2 attached to nsm0, data plane on CPU %d)\n"
		"  --smoke        short (0.3 s per measurement), every payload checked\n"
		"  --seconds S    length of each measurement (default 2)\n"
		"  --reps N       engine and baseline alternated N times (default 3)\n"
		"  --json FILE    the results as JSON\n"
		"  --only NAME    just one measurement (small_b1, small_b8, small_b32, fwd_64,\n"
		"                 fwd_1k, fwd_16k, fwd_64k, lat_idle_p50, lat_load_p50), no\n"
		"                 --json: for profiling the engine under it\n"
		"Exit status: 0 every phase ran with sane figures and verified data, 1\n"
		"failure, 2 usage.\n", ENGINE_CPU, FRONT_CPU, ENGINE_CPU);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "engine", required_argument, NULL, 'e' },
		{ "run-dir", required_argument, NULL, 'd' },
		{ "smoke", no_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "json", required_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *engine = NULL, *run_dir = NULL, *json = NULL, *only = NULL;
	static struct bench eng, plain;
	double secs = 2, vals[3];
	unsigned int reps = 3, i, k, rep;
	bool smoke = false, secs_set = false;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			engine = optarg;
			break;
		case 'd':
			run_dir = optarg;
			break;
		case 's':
			smoke = true;
			break;
		case 't':
			secs = strtod(optarg, &end);
			if (*end || !(secs >= 0.05 && secs <= 600)) {
				fprintf(stderr, "nkbench: --seconds: 0.05 to 600\n");
				return 2;
			}
			secs_set = true;
			break;
		case 'r':
			reps = strtoul(optarg, &end, 10);
			if (*end || !reps || reps > MAX_REPS) {
				fprintf(stderr, "nkbench: --reps: 1 to %d\n", MAX_REPS);
				return 2;
			}
			break;
		case 'j':
			json = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !engine == !run_dir || (only && json)) {
		usage(stderr);
		return 2;
	}
	for (i = 0; only && i < ARRAY_SIZE(tests); i++)
		if (!strcmp(only, phases[tests[i].phase].name))
			break;
	if (only && i == ARRAY_SIZE(tests)) {
		fprintf(stderr, "nkbench: --only: no measurement %s\n", only);
		return 2;
	}
	if (smoke && !secs_set)
		secs = 0.3;
	full_check = smoke;
	meas_ns = secs * NSEC;
	warm_ns = meas_ns / 8;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	if (engine)
		engine_start(engine);
	else if (snprintf(E.dir, sizeof(E.dir), "%s", run_dir) >= (int)sizeof(E.dir))
		fail("--run-dir: path too long");
	pin(FRONT_CPU);
	engine_side(&eng);
	plain_side(&plain);
	bench_probes(&eng);
	bench_probes(&plain);

	printf("nkbench: %s, %s, %.2g s per measurement, %u repetition(s); frontend on CPU %d, "
	       "engine data plane and baselines on CPU %d\n", engine ? engine : E.dir,
	       smoke ? "smoke" : "full", secs, reps, FRONT_CPU, ENGINE_CPU);
	printf("%-20s %-7s %-26s  %-10s %-24s  %s\n", "phase", "unit", "engine median [min..max]",
	       "baseline", "median [min..max]", "engine/baseline");
	for (i = 0; i < ARRAY_SIZE(tests); i++) {
		const struct test *t = &tests[i];
		unsigned int np = t->kind == T_LAT ? 3 : 1;

		if (only && strcmp(only, phases[t->phase].name))
			continue;
		for (rep = 0; rep < reps; rep++) {
			measure(t, &eng, vals);
			for (k = 0; k < np; k++)
				phases[t->phase + k].eng[rep] = vals[k];
			if (t->kind == T_FWD) {
				vals[0] = memcpy_gbps(&plain, t->arg);
			} else {
				sw_start(plain.sw);
				measure(t, &plain, vals);
				sw_stop(plain.sw);
			}
			for (k = 0; k < np; k++)
				phases[t->phase + k].base[rep] = vals[k];
		}
		for (k = 0; k < np; k++)
			print_phase(&phases[t->phase + k], reps);
	}
	printf("data verified: %llu messages at the NSM (%s), %llu through the ideal switch\n",
	       (unsigned long long)(eng.l[0].rx_seq + eng.l[1].rx_seq),
	       full_check ? "every payload" : "every header, 1 payload in 64",
	       (unsigned long long)(plain.l[0].rx_seq + plain.l[1].rx_seq));
	if (json)
		write_json(json, reps, secs, smoke);
	engine_stop(false);
	return 0;
}
