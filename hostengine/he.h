/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NetKernel host engine: internal interfaces.
 *
 * Threads and ownership (every file repeats the rules that concern it):
 *  - the main lcore ("control"): configuration, EAL start, the control
 *    socket, telemetry registration, signals, shutdown;
 *  - the rte_vhost threads (vhost-user message handling): vhost.c callbacks,
 *    which hand devices to the data plane through the command queue;
 *  - the data-plane lcore: owns every endpoint's runtime state (rings,
 *    sockets, outstanding requests, pending queues).  Nobody else touches it
 *    while the data plane runs;
 *  - the telemetry thread: reads configuration and counters only.
 *
 * struct he_ep has three parts: configuration (readable by anyone who can
 * reach the endpoint; live.c changes weight, addresses and limits only
 * through the data plane's command queue, while the main lcore, their only
 * other reader that does not hold he_eps_lock, waits), counters and gauges
 * (written by the data plane with relaxed atomic stores, read by anyone
 * with relaxed atomic loads), and data-plane state.
 *
 * The endpoint table (cfg->eps, cfg->nr_eps) changes at run time (live.c:
 * nkctl add/remove, SIGHUP): it is written by the data plane only, while
 * it executes a command the main lcore submitted holding he_eps_lock for
 * writing.  So the data plane and the main lcore read it without a lock;
 * every other thread (rte_vhost's, telemetry) holds he_eps_lock for
 * reading while it looks an endpoint up, and may keep the pointer only as
 * long as rte_vhost guarantees the endpoint's socket is registered (an
 * endpoint is freed only after rte_vhost_driver_unregister returned).
 */
#ifndef _HE_H
#define _HE_H

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <rte_branch_prediction.h>
#include <rte_common.h>
#include <rte_log.h>
#include <rte_vhost.h>

#include "netkernel/nk_proto.h"
#include "netkernel/nk_version.h"

#define HE_MAX_SEGS		256	/* guest memory segments per chain */
#define HE_MAX_REQS_PER_GUEST	1024	/* outstanding requests at the NSM */
#define HE_HASH_BITS		12
#define HE_HASH_BUCKETS		(1U << HE_HASH_BITS)	/* per endpoint tables */
#define HE_MAX_SOCKETS		4096	/* default max_sockets */
#define HE_MAX_SOCKETS_LIMIT	(1U << 20)	/* largest max_sockets */
#define HE_MIN_PENDING		4096U		/* smallest max_pending */
#define HE_MAX_PENDING		(1ULL << 40)	/* largest max_pending */
#define HE_MAX_CONN_RATE	1000000U	/* largest max_conn_rate, conn_burst */
#define HE_SLEEP_MS		100	/* adaptive sleep timeout */
#define HE_NSM_QUEUE		32	/* messages toward an NSM shared by weight */
#define HE_INFO_TIMEOUT_MS	2000	/* NSMs' INFO replies for one listing */

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

extern int he_logtype;
#define RTE_LOGTYPE_HE he_logtype

#define he_log(level, fmt, ...) \
	RTE_LOG(level, HE, fmt "\n", ##__VA_ARGS__)

/* Token bucket: HE_LOG_RATE lines per second, bursts of HE_LOG_RATE. */
#define HE_LOG_RATE		10
struct he_ratelimit {
	uint64_t last_tsc;
	uint32_t tokens;
	uint64_t suppressed;
};

struct he_ep;
bool he_ratelimit_ok(struct he_ep *ep);
#define he_ep_log(ep, level, fmt, ...) do {					\
	if (he_ratelimit_ok(ep))						\
		RTE_LOG(level, HE, "%s: " fmt "\n", (ep)->name, ##__VA_ARGS__);	\
} while (0)

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

enum he_poll {
	HE_POLL_ADAPTIVE,
	HE_POLL_BUSY,
};

/*
 * Owner, group and mode given to a Unix socket the engine creates: the
 * vhost-user sockets (socket_owner, socket_group, socket_mode) and the
 * control socket (control_owner, control_group, control_mode).  An owner or
 * group of -1 is left as created (the engine's own).
 */
struct he_perm {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

int he_perm_apply(const char *path, const struct he_perm *perm);

struct he_config {
	char name[NK_NAME_MAX];
	char run_dir[PATH_MAX];
	bool hugepages;
	unsigned int main_lcore;
	unsigned int dataplane_lcore;
	enum he_poll poll;
	uint32_t idle_polls;
	uint32_t batch;
	uint32_t max_payload;
	/* The guests' limits where their sections do not set them. */
	uint64_t pending_limit;		/* max_pending */
	uint32_t max_sockets;
	uint32_t max_conn_rate;		/* 0: no limit */
	uint32_t conn_burst;		/* 0: max_conn_rate */
	char ctl_path[PATH_MAX];
	struct he_perm sock_perm;	/* every vhost-user socket */
	struct he_perm ctl_perm;	/* the control socket */

	char path[PATH_MAX];		/* the configuration file */
	struct he_ep **eps;		/* he_eps_lock; ids in ascending order */
	unsigned int nr_eps;
	/*
	 * The next endpoint id: the file's endpoints get 1.. in file order at
	 * start, every endpoint added later the next number.  Ids are never
	 * reused while the engine runs (peers learn them: the NSM gets the
	 * guest's id with every SOCKET), main lcore only.
	 */
	uint32_t next_id;
};

/* stderr is the journal: lines written there carry a "<N>" priority. */
extern bool he_journal;

extern pthread_rwlock_t he_eps_lock;

int he_config_load(struct he_config *cfg, const char *path);
/* he_config_load without printing: the error ("file:line: message") in @err. */
int he_config_parse(struct he_config *cfg, const char *path, char *err, size_t size);
void he_config_free(struct he_config *cfg);
struct he_ep *he_ep_by_name(const struct he_config *cfg, const char *name);
struct he_ep *he_ep_by_id(const struct he_config *cfg, uint32_t id);
bool he_name_ok(const char *name);
/* A guest's local_switch as its key's value: "auto", "on" or "off". */
const char *he_lsw_mode_name(const struct he_ep *ep);
/* A new endpoint with the defaults (id 0), or NULL. */
struct he_ep *he_ep_alloc(enum nk_role role, const char *name);
/* Copy what may change on a running guest (weight, addresses, limits, policy). */
void he_ep_copy_live(struct he_ep *to, const struct he_ep *from);
/* Set one endpoint key from its text: NULL, or the error (in @buf). */
const char *he_ep_set(struct he_ep *ep, const char *key, const char *value, char *buf,
		      size_t size);
/* A guest's limits its section did not set become @cfg's [engine] ones. */
void he_ep_limits(const struct he_config *cfg, struct he_ep *ep);
/* With several carriers, queue_pairs checked and set: NULL or the error. */
const char *he_ep_pairs_check(struct he_ep *ep, char *buf, size_t size);
/* The socket path made absolute (run_dir) and checked: NULL or the error. */
const char *he_ep_resolve(const struct he_config *cfg, struct he_ep *ep, char *buf,
			  size_t size);
/* The vhost-user socket of @ep's carrier @k: its socket, then socket.k. */
void he_carrier_path(const struct he_ep *ep, unsigned int k, char *buf, size_t size);

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

enum he_counter {
	HE_C_REQUESTS,
	HE_C_REPLIES,
	HE_C_EVENTS,
	HE_C_BYTES_IN,
	HE_C_BYTES_OUT,
	HE_C_ERRORS,
	HE_C_PROTO_ERRORS,
	HE_C_CREDIT_VIOLATIONS,
	HE_C_DROPS,
	HE_C_RESETS,
	HE_C_PENDING_BYTES,	/* gauge */
	HE_C_PENDING_MAX,
	HE_C_SOCKETS,		/* gauge */
	HE_C_CONFIG_ERRORS,	/* written by the vhost-user message thread */
	HE_C_OVERSIZE,
	HE_C_SOCKET_LIMIT,
	HE_C_CONN_RESETS,	/* guests: EV_RESET sent to it, any cause */
	HE_C_PENDING_LIMIT,	/* messages refused: max_pending */
	HE_C_CONN_RATE_LIMIT,	/* CONNECTs refused, ACCEPTs aborted: max_conn_rate */
	HE_C_NSM_QUEUED,	/* gauge, guests: messages toward its NSM not taken */
	HE_C_NSM_QUEUED_MAX,
	HE_C_NR,
};

extern const char *const he_counter_names[HE_C_NR];

/* ------------------------------------------------------------------ */
/* Guest memory and virtqueues (vring.c)                               */
/* ------------------------------------------------------------------ */

struct he_seg {
	uint8_t *va;
	uint32_t len;
};

/* A scatter list over guest (or engine) memory. */
struct he_iov {
	struct he_seg *seg;
	uint32_t nseg;
	uint32_t len;
};

struct he_vq {
	struct rte_vhost_vring vr;
	struct rte_vhost_memory *mem;	/* its carrier's: translates its chains */
	int vid;			/* its carrier's */
	uint16_t qid;			/* the endpoint's: pair qid / 2 */
	uint16_t vring;			/* its index on its carrier's device */
	uint16_t last_avail;
	uint16_t avail_seen;	/* avail->idx as last read */
	uint16_t last_used;	/* published by he_vq_call / he_vq_publish */
	bool broken;		/* avail ring corrupt: no longer served */
	bool need_call;		/* used entries added since the last call */
};

/* One descriptor chain taken from an avail ring. */
struct he_chain {
	uint16_t head;
	struct he_iov iov;
	struct he_seg seg[HE_MAX_SEGS];
};

/* he_vq_pop() results besides 1 (a chain) and 0 (ring empty). */
#define HE_VQ_BROKEN	(-1000)

int he_vq_pop_slow(struct rte_vhost_memory *mem, struct he_vq *vq, bool writable,
		   struct he_chain *c, int *err);
void he_vq_notify(struct he_vq *vq, bool enable);
void he_vq_call_used(int vid, struct he_vq *vq);

/*
 * The ring helpers that run on every pass or for every message are inline
 * (vring.c has the rest): an idle pass looks at each queue's index and
 * flag and nothing else.
 */
static __rte_always_inline uint16_t he_ring_load16(const uint16_t *p, int order)
{
	return __atomic_load_n(p, order);
}

/* One read of descriptor @idx; only the copy is used. */
static __rte_always_inline void he_desc_read(const struct he_vq *vq, uint16_t idx,
					     struct vring_desc *d)
{
	d->addr = __atomic_load_n(&vq->vr.desc[idx].addr, __ATOMIC_RELAXED);
	d->len = __atomic_load_n(&vq->vr.desc[idx].len, __ATOMIC_RELAXED);
	d->flags = __atomic_load_n(&vq->vr.desc[idx].flags, __ATOMIC_RELAXED);
	d->next = __atomic_load_n(&vq->vr.desc[idx].next, __ATOMIC_RELAXED);
}

/*
 * The usual chain at @head: one direct descriptor of the direction
 * @writable asks for, not empty, in one memory region.  1 with *c filled;
 * 0 for any other chain, which he_vq_pop_slow() walks with every check.
 */
static __rte_always_inline int he_chain_direct(struct rte_vhost_memory *mem,
					       const struct he_vq *vq, bool writable,
					       uint16_t head, struct he_chain *c)
{
	struct vring_desc d;
	uint64_t len, va;

	he_desc_read(vq, head, &d);
	len = d.len;
	if (unlikely(d.flags != (writable ? VRING_DESC_F_WRITE : 0) || !len ||
		     d.addr + len <= d.addr))
		return 0;
	va = rte_vhost_va_from_guest_pa(mem, d.addr, &len);
	if (unlikely(!va || len != d.len))
		return 0;
	c->head = head;
	c->seg[0].va = (uint8_t *)(uintptr_t)va;
	c->seg[0].len = len;
	c->iov.seg = c->seg;
	c->iov.nseg = 1;
	c->iov.len = len;
	return 1;
}

/*
 * Take the next chain.  Returns 1 with *c filled, 0 when the ring is empty,
 * HE_VQ_BROKEN when the avail ring itself is corrupt (index too far ahead,
 * head out of range: the queue is then no longer served; c->head holds the
 * bad value) or -enum nk_proto_err with *err set to -errno when the chain
 * is malformed: the caller must then return c->head with length 0.
 *
 * @writable selects the direction every descriptor must have: device
 * writable (eventq) or device readable (requestq).
 *
 * Inline, per message: the usual chain among those the last read of the
 * avail index announced (checked then: not too far ahead).  The avail
 * index to read again, and every other chain, are he_vq_pop_slow()'s,
 * which reads the avail ring entry again and uses only its own copy.
 */
static __rte_always_inline int he_vq_pop(struct rte_vhost_memory *mem, struct he_vq *vq,
					 bool writable, struct he_chain *c, int *err)
{
	if (likely(vq->avail_seen != vq->last_avail && !vq->broken)) {
		uint16_t head = he_ring_load16(&vq->vr.avail->ring[vq->last_avail &
								   (vq->vr.size - 1)],
					       __ATOMIC_RELAXED);

		if (likely(head < vq->vr.size) && he_chain_direct(mem, vq, writable, head, c)) {
			vq->last_avail++;
			return 1;
		}
	}
	return he_vq_pop_slow(mem, vq, writable, c, err);
}

/* Return chain @head with @len bytes written; he_vq_call publishes it. */
static __rte_always_inline void he_vq_push(struct he_vq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &vq->vr.used->ring[vq->last_used & (vq->vr.size - 1)];

	e->id = head;
	e->len = len;
	vq->last_used++;
	vq->need_call = true;
}

/* Make the chains he_vq_push() returned visible to the driver. */
static __rte_always_inline void he_vq_publish(struct he_vq *vq)
{
	__atomic_store_n(&vq->vr.used->idx, vq->last_used, __ATOMIC_RELEASE);
}

/* Would he_vq_pop() find a chain (or a corrupt avail ring)? */
static __rte_always_inline bool he_vq_pending(const struct he_vq *vq)
{
	return !vq->broken &&
	       (vq->avail_seen != vq->last_avail ||
		he_ring_load16(&vq->vr.avail->idx, __ATOMIC_ACQUIRE) != vq->last_avail);
}

/* Buffers the driver made available that the device has not taken yet. */
static __rte_always_inline uint16_t he_vq_avail_count(const struct he_vq *vq)
{
	uint16_t n = he_ring_load16(&vq->vr.avail->idx, __ATOMIC_ACQUIRE) - vq->last_avail;

	return RTE_MIN(n, vq->vr.size);
}

/*
 * Once a pass: publish the used entries added since the last call and
 * interrupt the driver if it wants to know (he_vq_call_used).
 */
static __rte_always_inline void he_vq_call(int vid, struct he_vq *vq)
{
	if (vq->need_call)
		he_vq_call_used(vid, vq);
}

static inline void he_iov_flat(struct he_iov *iov, struct he_seg *seg, const void *buf,
			       uint32_t len)
{
	seg->va = (uint8_t *)(uintptr_t)buf;
	seg->len = len;
	iov->seg = seg;
	iov->nseg = 1;
	iov->len = len;
}

void he_iov_read(const struct he_iov *iov, uint32_t off, void *buf, uint32_t len);
void he_iov_copy_segs(const struct he_iov *dst, uint32_t doff, const struct he_iov *src,
		      uint32_t soff, uint32_t len);

/*
 * Copy @len bytes from @src at @soff to @dst at @doff; both must hold them.
 * Inline for the usual case, both ranges inside a first segment.
 */
static inline void he_iov_copy(const struct he_iov *dst, uint32_t doff,
			       const struct he_iov *src, uint32_t soff, uint32_t len)
{
	if (likely(dst->nseg && src->nseg && doff + len <= dst->seg[0].len &&
		   soff + len <= src->seg[0].len))
		memcpy(dst->seg[0].va + doff, src->seg[0].va + soff, len);
	else
		he_iov_copy_segs(dst, doff, src, soff, len);
}

/* A message header to the start of @dst, from the start of @src: fixed size. */
static inline void he_iov_put_hdr(const struct he_iov *dst, const struct nk_hdr *h)
{
	struct he_seg seg;
	struct he_iov hi;

	if (likely(dst->nseg && dst->seg[0].len >= sizeof(*h))) {
		memcpy(dst->seg[0].va, h, sizeof(*h));
		return;
	}
	he_iov_flat(&hi, &seg, h, sizeof(*h));
	he_iov_copy_segs(dst, 0, &hi, 0, sizeof(*h));
}

static inline void he_iov_get_hdr(const struct he_iov *src, struct nk_hdr *h)
{
	if (likely(src->nseg && src->seg[0].len >= sizeof(*h)))
		memcpy(h, src->seg[0].va, sizeof(*h));
	else
		he_iov_read(src, 0, h, sizeof(*h));
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

/* A guest section's limit keys (struct he_ep.lim_set). */
enum {
	HE_LIM_SOCKETS = 1,
	HE_LIM_PENDING = 2,
	HE_LIM_CONN_RATE = 4,
	HE_LIM_CONN_BURST = 8,
};

enum he_ep_state {
	HE_EP_WAITING,		/* no frontend */
	HE_EP_CONNECTED,	/* rings set up, no HELLO yet */
	HE_EP_READY,		/* HELLO done */
};

/*
 * Intrusive hash node keyed by a u64.  Guests choose their socket ids, so
 * the bucket comes from a keyed hash (switch.c, ht_bucket) and a guest has
 * at most max_sockets of them.
 */
struct he_hnode {
	struct he_hnode *next;
	uint64_t key;
};

struct he_htab {
	struct he_hnode *b[HE_HASH_BUCKETS];
	uint32_t count;
};

/*
 * A token bucket (max_conn_rate): @rate tokens a second, at most @burst
 * (0: @rate), one per new connection.  @level is in tokens * @hz, so that
 * the refill is exact in timer cycles.  A zeroed bucket starts full.
 */
struct he_bucket {
	uint64_t last;			/* timer cycles */
	uint64_t level;
};

/* Take a token at @now (timer cycles, @hz a second): whether there was one. */
static inline bool he_bucket_take(struct he_bucket *b, uint32_t rate, uint32_t burst,
				  uint64_t now, uint64_t hz)
{
	uint64_t cap, elapsed;

	if (!rate)
		return true;
	cap = (uint64_t)(burst ? burst : rate) * hz;
	elapsed = now - b->last;
	b->last = now;
	if (elapsed >= cap / rate)
		b->level = cap;
	else if (b->level + elapsed * rate < cap)
		b->level += elapsed * rate;
	else
		b->level = cap;
	if (b->level < hz)
		return false;
	b->level -= hz;
	return true;
}

struct he_pmsg;
struct he_req;
struct he_evq_track;
struct he_lsw;
TAILQ_HEAD(he_pmsg_list, he_pmsg);
TAILQ_HEAD(he_req_list, he_req);
LIST_HEAD(he_lsw_list, he_lsw);

/*
 * A switched connection's local address in TIME_WAIT (local.c, tw_add()):
 * a guest's BIND to it is refused as Linux refuses it.
 */
#define HE_LSW_TW	64		/* at most per guest, as tcp_max_tw_buckets */
struct he_lsw_tw {
	uint64_t until;			/* timer cycles; 0: a free slot */
	uint8_t ip[16];			/* IPv4 (mapped included) in ip[0..3] */
	uint16_t port;			/* network order */
	bool v4;
	bool reuse;			/* its socket had SO_REUSEADDR */
};

/* A guest's local_switch key (local.c, hostengine.rst "Local switching"). */
enum he_lsw_mode {
	HE_LSW_AUTO,		/* with guests of the same NSM and tenant */
	HE_LSW_ON,		/* with any guest whose own policy allows it */
	HE_LSW_OFF,		/* never: every connection through the NSM */
};

/* One vhost-user device of an endpoint (data-plane state). */
struct he_carrier {
	int vid;			/* -1: not started */
	struct rte_vhost_memory *mem;
	uint16_t nr_vqs;		/* its virtqueues: ep->vq[2k...] (k > 0: 2) */
	uint32_t gen;			/* ep->session_gen when it started */
};

struct he_ep {
	/* Configuration: immutable once loaded but weight, addresses, limits. */
	char name[NK_NAME_MAX];
	uint32_t id;
	enum nk_role role;
	char sock_path[PATH_MAX];
	char cfg_nsm[NK_NAME_MAX];	/* guests: NSM at start, "" detached */
	bool has_addr4, has_addr6;
	struct in_addr addr4;
	struct in6_addr addr6;
	uint32_t weight;		/* guests; NSMs 1 */
	uint32_t local_switch;		/* guests: enum he_lsw_mode */
	char tenant[NK_NAME_MAX];	/* guests: "" the default tenant */
	uint32_t queue_pairs;		/* offered in the config space */
	uint32_t carriers;		/* vhost-user devices: pair k on device k if > 1 */
	/*
	 * Limits: a guest's, or for an NSM only max_pending (pending_limit).
	 * Changed live by the data plane (CMD_EP_UPDATE, reload).
	 */
	uint32_t max_sockets;
	uint64_t max_pending;
	uint32_t max_conn_rate;		/* 0: no limit */
	uint32_t conn_burst;		/* 0: max_conn_rate */
	unsigned int lim_set;		/* HE_LIM_* its section set */

	/* Counters and gauges: data plane writes, anyone reads (relaxed). */
	uint64_t cnt[HE_C_NR];
	uint32_t state;			/* enum he_ep_state */
	uint32_t attached_id;		/* guests: id of the NSM, 0 detached */

	/*
	 * vhost.c state, written by the rte_vhost thread handling a carrier's
	 * messages: a SET_MEM_TABLE paused carrier k (bit k).
	 */
	uint32_t mem_paused;
	uint32_t registered;		/* main lcore: carriers' drivers registered */

	/*
	 * Data-plane state.  The endpoint runs while carrier 0 runs; carrier
	 * k > 0 brings pair k.  While a carrier's memory table changes, none
	 * of the endpoint's memory is touched.
	 */
	bool running;
	uint32_t paused;		/* carriers whose memory table changes */
	struct he_carrier car[NK_MAX_QPAIRS];
	/*
	 * Sessions ended so far: a carrier started before the last end may
	 * hold that session's messages, and is not used until it starts again.
	 */
	uint32_t session_gen;
	/* Both read by "list" too (relaxed atomics). */
	uint16_t pairs_up;		/* pairs set up, from pair 0 on */
	uint16_t nr_pairs;		/* in use: 1, or as HELLO agreed (NK_FEAT_MQ) */
	struct he_vq vq[2 * NK_MAX_QPAIRS];
	uint16_t rr_pair;		/* next requestq to serve first */
	uint32_t max_payload;		/* agreed in HELLO */
	uint64_t features;		/* agreed in HELLO */
	struct he_ep *nsm;		/* guests: attached NSM */
	uint32_t guest_weight;		/* NSMs: sum of attached guests' weights */
	/*
	 * Sharing an NSM (switch.c, "Scheduling"): the sum of the weights of
	 * its guests that have messages queued toward it (their nsm_queued
	 * counter), and per eventq who wrote each message it has not taken
	 * (NULL when nothing is tracked: no memory for it).
	 */
	uint32_t queued_weight;		/* NSMs */
	struct he_evq_track *evt[NK_MAX_QPAIRS];	/* NSMs, per pair */
	struct he_htab socks;		/* guest: by guest id; NSM: by NSM id */
	struct he_htab reqs;		/* NSM: outstanding requests by engine id */
	struct he_req_list my_reqs;	/* guest: its outstanding requests */
	uint32_t nr_reqs;		/* guest: entries in my_reqs */
	uint32_t next_sock;		/* NSM: next NSM socket id to try */
	uint32_t info_reqs;		/* NSM: INFO requests outstanding */
	struct he_pmsg_list pending;
	struct he_ratelimit rl;
	struct he_bucket conn_bucket;	/* guest: max_conn_rate */
	struct he_lsw_list listeners;	/* guest: its listeners (local.c) */
	struct he_lsw_tw lsw_tw[HE_LSW_TW];	/* guest: TIME_WAIT (local.c) */
};

static inline uint64_t he_cnt_get(const struct he_ep *ep, enum he_counter c)
{
	return __atomic_load_n(&ep->cnt[c], __ATOMIC_RELAXED);
}

/* Data plane only (single writer). */
static inline void he_cnt_add(struct he_ep *ep, enum he_counter c, uint64_t n)
{
	__atomic_store_n(&ep->cnt[c], ep->cnt[c] + n, __ATOMIC_RELAXED);
}

static inline void he_cnt_set(struct he_ep *ep, enum he_counter c, uint64_t v)
{
	__atomic_store_n(&ep->cnt[c], v, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Data plane (switch.c) and its command queue                         */
/* ------------------------------------------------------------------ */

/* A device handed to the data plane by new_device. */
struct he_dev_start {
	int vid;
	unsigned int carrier;		/* which of the endpoint's */
	struct rte_vhost_memory *mem;
	uint16_t nr_vqs;
	struct rte_vhost_vring vr[2 * NK_MAX_QPAIRS];
	uint16_t last_avail[2 * NK_MAX_QPAIRS];
	uint16_t last_used[2 * NK_MAX_QPAIRS];
};

/* One socket as the "sockets" control command reports it. */
struct he_sock_info {
	char guest[NK_NAME_MAX];
	char nsm[NK_NAME_MAX];
	uint32_t guest_sock, nsm_sock;
	const char *state;
	bool local;			/* switched by the engine (local.c) */
	char peer[NK_NAME_MAX];		/* local: the peer guest, "" none */
	uint32_t peer_sock;		/* local: its socket id, 0 none */
	uint64_t tx_bytes, rx_bytes;
	uint32_t guest_buf_alloc, guest_fwd_cnt, nsm_buf_alloc, nsm_fwd_cnt;
	uint32_t guest_tx_cnt, nsm_tx_cnt;
};

/*
 * One socket as the "ss" control command reports it: the engine's view
 * (he_sock_info) and, when info_ok, what the NSM answered to INFO; else
 * info_err says why there is none.
 */
struct he_ss_info {
	struct he_sock_info s;
	bool stream;
	bool info_ok;
	char info_err[80];
	struct nk_sock_info info;	/* checked by nk_sock_info_check() */
};

struct he_engine_stats {
	uint64_t loops;
	uint64_t sleeps;
	uint64_t sockets;	/* gauge */
};

int he_dp_init(struct he_config *cfg);
int he_dp_launch(void);
void he_dp_stop(void);
void he_dp_stats(struct he_engine_stats *st);

/* Synchronous requests to the data plane (any thread but the data plane). */
int he_dp_dev_start(struct he_ep *ep, struct he_dev_start *ds);
/*
 * Returns once the data plane no longer touches the device's memory, with
 * the ring indices to save and the memory table to free (NULL if the device
 * was not running).
 */
struct rte_vhost_memory *he_dp_dev_stop(struct he_ep *ep, int vid, uint16_t *nr_vqs,
					 uint16_t *last_avail, uint16_t *last_used);
/*
 * Around a memory table change: pause returns 1 once the data plane no
 * longer touches the device's memory (0: the device was not running);
 * resume hands it the new table and rings (0, or -errno: the device stays
 * paused until stopped), with the table to free in *@old.
 */
int he_dp_dev_pause(struct he_ep *ep, int vid);
int he_dp_dev_resume(struct he_ep *ep, struct he_dev_start *ds, struct rte_vhost_memory **old);
int he_dp_attach(struct he_ep *guest, struct he_ep *nsm);
int he_dp_detach(struct he_ep *guest);
/*
 * The endpoint table becomes @eps (@nr entries): with @ep added (attached
 * to @nsm unless NULL), or with @ep removed (detached, every guest of an
 * NSM detached from it, nothing left pointing at it).  The caller holds
 * he_eps_lock for writing and frees the old table (and a removed @ep).
 */
void he_dp_ep_add(struct he_ep *ep, struct he_ep *nsm, struct he_ep **eps, unsigned int nr);
void he_dp_ep_remove(struct he_ep *ep, struct he_ep **eps, unsigned int nr);
/* A guest's weight, addresses and limits become @from's. */
void he_dp_ep_update(struct he_ep *ep, const struct he_ep *from);
/* Returns the number of entries in *out (malloc'ed), or -errno. */
int he_dp_sockets(struct he_ep *ep, struct he_sock_info **out);
/*
 * The "ss" listing, for the control thread, one at a time: start it for
 * the connections of @guest (NULL: every guest's) served by @nsm (NULL:
 * any): 0, -EINVAL (wrong role) or -EBUSY (one is under way).  Its NSMs'
 * INFO answers are waited for at most HE_INFO_TIMEOUT_MS, without the
 * caller waiting: he_dp_ss_fd() becomes readable when it is done, and
 * he_dp_ss_result() then gives the number of entries in *out (malloc'ed)
 * or -errno; before, -EAGAIN; with none started, -ENOENT.
 */
int he_dp_ss_start(struct he_ep *guest, struct he_ep *nsm);
int he_dp_ss_result(struct he_ss_info **out);
int he_dp_ss_fd(void);
/* Reset @guest's socket @gsock as a peer's reset would: 0 or -errno. */
int he_dp_kill(struct he_ep *guest, uint32_t gsock);

/* ------------------------------------------------------------------ */
/* vhost-user (vhost.c), control socket (ctl.c), telemetry             */
/* ------------------------------------------------------------------ */

int he_vhost_start(struct he_config *cfg);
void he_vhost_stop(struct he_config *cfg);
/* Serve / stop serving one endpoint's socket (main lcore). */
int he_vhost_add(struct he_ep *ep);
void he_vhost_remove(struct he_ep *ep);

int he_ctl_open(struct he_config *cfg);
void he_ctl_close(void);
/* Serves the control socket until a signal arrives on @sigfd. */
void he_ctl_run(int sigfd);

int he_telemetry_register(struct he_config *cfg);

/* ------------------------------------------------------------------ */
/* Live endpoints and reload (live.c), main lcore only                 */
/* ------------------------------------------------------------------ */

/*
 * Can @ep (new, not yet in the table) be added?  0, or -errno with the
 * reason in @err.  @file: the reloaded file @ep comes from (its socket
 * path is resolved, its NSM is looked up there), NULL for "add".
 */
int he_live_check(const struct he_config *cfg, struct he_ep *ep, const struct he_config *file,
		  char *err, size_t size);
/* Check, publish and serve @ep (which is the table's or freed): 0 or -errno. */
int he_live_add(struct he_config *cfg, struct he_ep *ep, char *err, size_t size);
/* Unserve, retire and free @ep: 0 or -ENOMEM (nothing changed). */
int he_live_remove(struct he_config *cfg, struct he_ep *ep);
/* SIGHUP: apply cfg->path's difference; 0, or -1 (nothing changed, logged). */
int he_reload(struct he_config *cfg);

#endif /* _HE_H */
