// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket: <run_dir>/control.sock, one JSON object per line in
 * each direction (Documentation/netkernel/hostengine.rst, "Control
 * socket"), served with poll() on the main lcore.
 *
 * Listings ("sockets", "ss") are streamed a page (CTL_PAGE entries) per
 * line, each line a reply object with "more": true but the last: the next
 * page is made when the previous one has been written, so a listing of any
 * size costs one page of buffer.  "ss" waits for the NSMs' INFO replies
 * (at most HE_INFO_TIMEOUT_MS) without holding anyone up: the data plane
 * serves every endpoint meanwhile, and this loop every other client; the
 * client that asked reads nothing more until its answer is out.  One ss
 * is under way at a time (he_dp_ss_start()); other clients' wait their
 * turn (ss_wait), in slot order, and he_dp_ss_fd() says when one is done.
 *
 * Clients cannot hold the main lcore: sockets are written without
 * blocking (a reply that does not fit waits in the client's out buffer,
 * and no further request of that client is read until it is written), a
 * client that makes no progress for CTL_IDLE_MS (nothing read from it,
 * nothing written to it) is closed, and when all CTL_CLIENTS slots are
 * taken a new connection waits in the listen backlog until a slot frees
 * or takes the slot of the client idle longest, once that one has been
 * idle for CTL_EVICT_MS.
 *
 * Threading: everything here runs on the main lcore, the only thread that
 * changes the endpoint table (add, remove and SIGHUP's reload, live.c), so
 * the table and the endpoints' configuration are read without a lock;
 * counters, states and the attached NSM are read with relaxed atomic
 * loads; attach, detach, add, remove and the socket listing go through
 * the data plane's command queue (he_dp_*), which waits for the data plane
 * to carry them out.  What add, remove, attach and detach change is not
 * written to the configuration file: their replies say "persistent": false,
 * and so do those of "set" (a running guest's weight, addresses, limits).
 * Nor is what "set" changes (a running guest's weight, addresses, limits).
 */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "he.h"

#define CTL_LINE_MAX	4096
#define CTL_CLIENTS	16
#define CTL_IDLE_MS	5000	/* no progress: closed */
#define CTL_EVICT_MS	1000	/* idle this long: its slot may go to a newcomer */
#define CTL_PAGE	256	/* listing entries per reply line */

/* "ss" filters; 0 / empty: any. */
struct ss_filter {
	uint8_t state;		/* enum nk_sock_state */
	bool port_set;
	uint16_t port;		/* local or remote */
};

/* A listing being streamed: he_sock_info ("sockets") or he_ss_info ("ss"). */
struct listing {
	struct he_sock_info *socks;
	struct he_ss_info *ss;
	uint32_t n, pos;
	struct ss_filter flt;
};

struct client {
	int fd;
	size_t len;
	bool discard;		/* skipping the rest of an over-long line */
	uint64_t last_ms;	/* when bytes last moved */
	char *out;		/* the reply being written, or NULL */
	size_t out_len, out_off;
	struct listing *list;	/* pages still to write, or NULL */
	bool ss_wait;		/* an "ss" waiting to start or for its answer */
	struct he_ep *ss_guest, *ss_nsm;
	struct ss_filter ss_flt;
	uint64_t gen;		/* connections this slot has had */
	char buf[CTL_LINE_MAX];
};

static struct he_config *cfg;
static int listen_fd = -1;
static struct client clients[CTL_CLIENTS];
static struct client *ss_owner;		/* whose "ss" is under way, or NULL */
static uint64_t ss_owner_gen;
static struct timespec started;

static const char *const state_names[] = {
	[HE_EP_WAITING] = "waiting",
	[HE_EP_CONNECTED] = "connected",
	[HE_EP_READY] = "ready",
};

static json_object *error_reply(int err, const char *msg)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "errno", json_object_new_int(err));
	json_object_object_add(r, "error", json_object_new_string(msg));
	return r;
}

/* An error about endpoint @ep (and its @key, if not NULL). */
static json_object *error_at(int err, const char *ep, const char *key, const char *msg)
{
	json_object *r = error_reply(err, msg);

	json_object_object_add(r, "endpoint", json_object_new_string(ep));
	if (key)
		json_object_object_add(r, "key", json_object_new_string(key));
	return r;
}

static json_object *ok_reply(void)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	return r;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* The endpoint named by @key in @req, of @role (0: any). */
static struct he_ep *req_ep(json_object *req, const char *key, enum nk_role role,
			    json_object **err)
{
	json_object *v;
	struct he_ep *ep;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string)) {
		*err = error_reply(EINVAL, "missing endpoint name");
		return NULL;
	}
	ep = he_ep_by_name(cfg, json_object_get_string(v));
	if (!ep) {
		char msg[NK_NAME_MAX + 32];

		snprintf(msg, sizeof(msg), "unknown endpoint '%s'", json_object_get_string(v));
		*err = error_at(ENOENT, json_object_get_string(v), NULL, msg);
		return NULL;
	}
	if (role && ep->role != role) {
		char msg[NK_NAME_MAX + 32];

		snprintf(msg, sizeof(msg), "wrong role: '%s' is not %s", ep->name,
			 role == NK_ROLE_GUEST ? "a guest" : "an NSM");
		*err = error_at(EINVAL, ep->name, NULL, msg);
		return NULL;
	}
	return ep;
}

static json_object *addr_json(int af, bool has, const void *a)
{
	char s[INET6_ADDRSTRLEN];

	if (!has || !inet_ntop(af, a, s, sizeof(s)))
		return NULL;
	return json_object_new_string(s);
}

static json_object *cmd_list(void)
{
	json_object *r = ok_reply(), *arr = json_object_new_array();
	unsigned int i;

	for (i = 0; i < cfg->nr_eps; i++) {
		struct he_ep *ep = cfg->eps[i];
		json_object *e = json_object_new_object();
		uint32_t st = __atomic_load_n(&ep->state, __ATOMIC_RELAXED);
		bool guest = ep->role == NK_ROLE_GUEST;

		json_object_object_add(e, "name", json_object_new_string(ep->name));
		json_object_object_add(e, "id", json_object_new_int(ep->id));
		json_object_object_add(e, "role", json_object_new_string(guest ? "guest" : "nsm"));
		json_object_object_add(e, "state", json_object_new_string(state_names[st]));
		json_object_object_add(e, "socket", json_object_new_string(ep->sock_path));
		json_object_object_add(e, "carriers", json_object_new_int(ep->carriers));
		json_object_object_add(e, "pairs_up",
				       json_object_new_int(__atomic_load_n(&ep->pairs_up,
									   __ATOMIC_RELAXED)));
		json_object_object_add(e, "pairs",
				       json_object_new_int(__atomic_load_n(&ep->nr_pairs,
									   __ATOMIC_RELAXED)));
		add_u64(e, "sockets", he_cnt_get(ep, HE_C_SOCKETS));
		if (guest) {
			uint32_t id = __atomic_load_n(&ep->attached_id, __ATOMIC_RELAXED);

			struct he_ep *nsm = id ? he_ep_by_id(cfg, id) : NULL;

			json_object_object_add(e, "nsm", nsm ? json_object_new_string(
						       nsm->name) : NULL);
			json_object_object_add(e, "address",
					       addr_json(AF_INET, ep->has_addr4, &ep->addr4));
			json_object_object_add(e, "address6",
					       addr_json(AF_INET6, ep->has_addr6, &ep->addr6));
			json_object_object_add(e, "weight", json_object_new_int(ep->weight));
			add_u64(e, "max_sockets", ep->max_sockets);
			add_u64(e, "max_pending", ep->max_pending);
			add_u64(e, "max_conn_rate", ep->max_conn_rate);
			add_u64(e, "conn_burst", ep->conn_burst ? ep->conn_burst :
				ep->max_conn_rate);
			json_object_object_add(e, "local_switch",
					       json_object_new_string(he_lsw_mode_name(ep)));
			json_object_object_add(e, "tenant", json_object_new_string(ep->tenant));
		}
		json_object_array_add(arr, e);
	}
	json_object_object_add(r, "endpoints", arr);
	return r;
}

static json_object *ep_counters(const struct he_ep *ep)
{
	json_object *e = json_object_new_object(), *c = json_object_new_object();
	unsigned int i;

	for (i = 0; i < HE_C_NR; i++)
		add_u64(c, he_counter_names[i], he_cnt_get(ep, i));
	json_object_object_add(e, "name", json_object_new_string(ep->name));
	json_object_object_add(e, "counters", c);
	return e;
}

static json_object *cmd_stats(json_object *req)
{
	json_object *r, *arr, *err = NULL;
	struct he_ep *ep = NULL;
	unsigned int i;

	if (json_object_object_get_ex(req, "endpoint", NULL)) {
		ep = req_ep(req, "endpoint", 0, &err);
		if (!ep)
			return err;
	}
	r = ok_reply();
	arr = json_object_new_array();
	for (i = 0; i < cfg->nr_eps; i++)
		if (!ep || ep == cfg->eps[i])
			json_object_array_add(arr, ep_counters(cfg->eps[i]));
	json_object_object_add(r, "endpoints", arr);
	return r;
}

static void list_free(struct listing *l)
{
	if (l) {
		free(l->socks);
		free(l->ss);
		free(l);
	}
}

static void sock_json(json_object *o, const struct he_sock_info *s, bool credits)
{
	json_object_object_add(o, "guest", json_object_new_string(s->guest));
	add_u64(o, "guest_sock", s->guest_sock);
	json_object_object_add(o, "nsm", json_object_new_string(s->nsm));
	add_u64(o, "nsm_sock", s->nsm_sock);
	json_object_object_add(o, credits ? "state" : "engine_state",
			       json_object_new_string(s->state));
	add_u64(o, "tx_bytes", s->tx_bytes);
	add_u64(o, "rx_bytes", s->rx_bytes);
	json_object_object_add(o, "local", json_object_new_boolean(s->local));
	json_object_object_add(o, "peer", s->peer[0] ? json_object_new_string(s->peer) : NULL);
	if (s->peer[0])
		add_u64(o, "peer_sock", s->peer_sock);
	if (!credits)
		return;
	add_u64(o, "guest_buf_alloc", s->guest_buf_alloc);
	add_u64(o, "guest_fwd_cnt", s->guest_fwd_cnt);
	add_u64(o, "nsm_buf_alloc", s->nsm_buf_alloc);
	add_u64(o, "nsm_fwd_cnt", s->nsm_fwd_cnt);
	add_u64(o, "guest_tx_cnt", s->guest_tx_cnt);
	add_u64(o, "nsm_tx_cnt", s->nsm_tx_cnt);
}

static json_object *cmd_sockets(struct client *cl, json_object *req)
{
	json_object *err = NULL;
	struct listing *l;
	struct he_ep *ep;
	int n;

	ep = req_ep(req, "endpoint", 0, &err);
	if (!ep)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return error_reply(ENOMEM, strerror(ENOMEM));
	n = he_dp_sockets(ep, &l->socks);
	if (n < 0) {
		list_free(l);
		return error_reply(-n, strerror(-n));
	}
	l->n = n;
	cl->list = l;
	return NULL;
}

/* ss's names of the TCP states, as its State column prints them. */
static const char *const ss_states[NK_SS_MAX + 1] = {
	[NK_SS_ESTABLISHED] = "ESTAB",
	[NK_SS_SYN_SENT] = "SYN-SENT",
	[NK_SS_SYN_RECV] = "SYN-RECV",
	[NK_SS_FIN_WAIT1] = "FIN-WAIT-1",
	[NK_SS_FIN_WAIT2] = "FIN-WAIT-2",
	[NK_SS_TIME_WAIT] = "TIME-WAIT",
	[NK_SS_CLOSE] = "UNCONN",
	[NK_SS_CLOSE_WAIT] = "CLOSE-WAIT",
	[NK_SS_LAST_ACK] = "LAST-ACK",
	[NK_SS_LISTEN] = "LISTEN",
	[NK_SS_CLOSING] = "CLOSING",
	[NK_SS_NEW_SYN_RECV] = "NEW-SYN-RECV",
};

static json_object *ss_addr(const struct nk_addr *na)
{
	char a[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN + 16];
	int af = na->family == AF_INET ? AF_INET : AF_INET6;

	if (!inet_ntop(af, na->addr, a, sizeof(a)))
		return NULL;
	snprintf(s, sizeof(s), af == AF_INET ? "%s:%u" : "[%s]:%u", a, ntohs(na->port));
	return json_object_new_string(s);
}

static bool ss_match(const struct he_ss_info *e, const struct ss_filter *f)
{
	if (f->state && (!e->info_ok || e->info.state != f->state))
		return false;
	if (f->port_set && (!e->info_ok || (ntohs(e->info.local.port) != f->port &&
					    ntohs(e->info.remote.port) != f->port)))
		return false;
	return true;
}

static void ss_json(json_object *o, const struct he_ss_info *e)
{
	const struct nk_sock_info *i = &e->info;

	sock_json(o, &e->s, false);
	json_object_object_add(o, "proto", json_object_new_string(e->stream ? "tcp" : "udp"));
	if (!e->info_ok) {
		json_object_object_add(o, "state", NULL);
		json_object_object_add(o, "info_error", json_object_new_string(e->info_err));
		return;
	}
	json_object_object_add(o, "state", json_object_new_string(ss_states[i->state]));
	json_object_object_add(o, "family", json_object_new_string(
				       i->family == AF_INET ? "inet" : "inet6"));
	json_object_object_add(o, "local", ss_addr(&i->local));
	json_object_object_add(o, "remote", ss_addr(&i->remote));
	add_u64(o, "local_port", ntohs(i->local.port));
	add_u64(o, "remote_port", ntohs(i->remote.port));
	add_u64(o, "recv_q", i->recv_q);
	add_u64(o, "send_q", i->send_q);
	if (i->proto != IPPROTO_TCP)
		return;
	add_u64(o, "rtt_us", i->rtt_us);
	add_u64(o, "rttvar_us", i->rttvar_us);
	add_u64(o, "cwnd", i->snd_cwnd);
	add_u64(o, "retrans", i->retrans);
	add_u64(o, "delivery_rate", i->delivery_rate);
}

/* The next page of @cl's listing; the listing is freed with its last. */
static json_object *list_page(struct client *cl)
{
	json_object *r = ok_reply(), *arr = json_object_new_array();
	struct listing *l = cl->list;
	unsigned int k = 0;

	for (; l->pos < l->n && k < CTL_PAGE; l->pos++) {
		json_object *o;

		if (l->ss && !ss_match(&l->ss[l->pos], &l->flt))
			continue;
		o = json_object_new_object();
		if (l->ss)
			ss_json(o, &l->ss[l->pos]);
		else
			sock_json(o, &l->socks[l->pos], true);
		json_object_array_add(arr, o);
		k++;
	}
	/* A page ends early only at the end: no empty last page follows. */
	while (l->ss && l->pos < l->n && !ss_match(&l->ss[l->pos], &l->flt))
		l->pos++;
	json_object_object_add(r, "more", json_object_new_boolean(l->pos < l->n));
	json_object_object_add(r, "sockets", arr);
	if (l->pos >= l->n) {
		list_free(l);
		cl->list = NULL;
	}
	return r;
}

/* An optional string member: 0 (absent or null), 1 (*@out set), or -1. */
static int opt_str(json_object *req, const char *key, const char **out)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*out = json_object_get_string(v);
	return 1;
}

static void ss_start(struct client *cl)
{
	ss_owner = cl;
	ss_owner_gen = cl->gen;
	/* Cannot fail: the roles were checked, and none is under way. */
	he_dp_ss_start(cl->ss_guest, cl->ss_nsm);
}

/* The listing (NULL: cl->list set) or error reply of an "ss" that is done. */
static json_object *ss_reply(struct client *cl, int n, struct he_ss_info *ss)
{
	struct listing *l;

	if (n < 0)
		return error_reply(-n, strerror(-n));
	l = calloc(1, sizeof(*l));
	if (!l) {
		free(ss);
		return error_reply(ENOMEM, strerror(ENOMEM));
	}
	l->ss = ss;
	l->n = n;
	l->flt = cl->ss_flt;
	cl->list = l;
	return NULL;
}

static json_object *cmd_ss(struct client *cl, json_object *req)
{
	struct he_ep *g = NULL, *nsm = NULL;
	json_object *err = NULL, *v;
	struct ss_filter flt = { 0 };
	struct he_ss_info *ss;
	const char *st = NULL;
	unsigned int i;
	int n;

	if ((opt_str(req, "guest", &st) > 0 && !(g = req_ep(req, "guest", NK_ROLE_GUEST, &err))) ||
	    (opt_str(req, "nsm", &st) > 0 && !(nsm = req_ep(req, "nsm", NK_ROLE_NSM, &err))))
		return err;
	if (opt_str(req, "guest", &st) < 0 || opt_str(req, "nsm", &st) < 0)
		return error_reply(EINVAL, "guest and nsm must be endpoint names");
	st = NULL;
	if (opt_str(req, "state", &st) < 0)
		return error_reply(EINVAL, "state must be a string");
	for (i = 1; st && i <= NK_SS_MAX && !flt.state; i++)
		if (!strcasecmp(st, ss_states[i]))
			flt.state = i;
	if (st && !flt.state)
		return error_reply(EINVAL, "unknown state");
	if (json_object_object_get_ex(req, "port", &v) && !json_object_is_type(v, json_type_null)) {
		int64_t p = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || p < 0 || p > 65535)
			return error_reply(EINVAL, "port must be an integer 0 to 65535");
		flt.port_set = true;
		flt.port = p;
	}
	cl->ss_guest = g;
	cl->ss_nsm = nsm;
	cl->ss_flt = flt;
	cl->ss_wait = true;
	if (ss_owner)
		return NULL;		/* its turn comes (ss_poll) */
	ss_start(cl);
	n = he_dp_ss_result(&ss);
	if (n == -EAGAIN)
		return NULL;		/* answered by ss_poll */
	ss_owner = NULL;
	cl->ss_wait = false;
	return ss_reply(cl, n, ss);
}

static json_object *cmd_kill(json_object *req)
{
	json_object *err = NULL, *v;
	struct he_ep *g;
	int64_t sock;
	int ret;

	g = req_ep(req, "guest", NK_ROLE_GUEST, &err);
	if (!g)
		return err;
	if (!json_object_object_get_ex(req, "sock", &v) || !json_object_is_type(v, json_type_int) ||
	    (sock = json_object_get_int64(v)) <= 0 || sock > UINT32_MAX)
		return error_reply(EINVAL, "sock must be a guest socket id, 1 to 4294967295");
	ret = he_dp_kill(g, sock);
	if (ret == -ENOENT)
		return error_reply(ENOENT, "no such socket");
	if (ret == -EALREADY)
		return error_reply(EALREADY, "socket already reset or closing");
	if (ret)
		return error_reply(-ret, strerror(-ret));
	he_log(NOTICE, "control: %s socket %" PRId64 " killed", g->name, sock);
	return ok_reply();
}

static json_object *cmd_engine(void)
{
	json_object *r = ok_reply();
	struct he_engine_stats st;
	struct timespec now;
	struct mallinfo2 mi;
	uint64_t pending = 0;
	unsigned int i;

	he_dp_stats(&st);
	for (i = 0; i < cfg->nr_eps; i++)
		pending += he_cnt_get(cfg->eps[i], HE_C_PENDING_BYTES);
	clock_gettime(CLOCK_MONOTONIC, &now);
	json_object_object_add(r, "version", json_object_new_string(NK_VERSION));
	add_u64(r, "uptime_s", now.tv_sec - started.tv_sec);
	json_object_object_add(r, "poll", json_object_new_string(
				       cfg->poll == HE_POLL_BUSY ? "busy" : "adaptive"));
	add_u64(r, "dataplane_loops", st.loops);
	add_u64(r, "dataplane_sleeps", st.sleeps);
	add_u64(r, "sockets", st.sockets);
	add_u64(r, "pending_bytes", pending);
	/* malloc's bytes in use, every thread's arena: what the engine holds */
	mi = mallinfo2();
	add_u64(r, "heap_bytes", mi.uordblks + mi.hblkhd);
	return r;
}

static json_object *not_persistent(json_object *r)
{
	json_object_object_add(r, "persistent", json_object_new_boolean(0));
	return r;
}

/*
 * add: {"cmd": "add", "role": "guest"|"nsm", "name": NAME, KEY: VALUE...},
 * the keys of an endpoint section of the configuration file.
 */
static json_object *cmd_add(json_object *req)
{
	json_object *v, *r;
	const char *name;
	char msg[PATH_MAX + 256], buf[256];
	enum nk_role role;
	struct he_ep *ep;
	int ret;

	if (!json_object_object_get_ex(req, "role", &v) ||
	    !json_object_is_type(v, json_type_string))
		return error_reply(EINVAL, "missing role: guest or nsm");
	if (!strcmp(json_object_get_string(v), "guest"))
		role = NK_ROLE_GUEST;
	else if (!strcmp(json_object_get_string(v), "nsm"))
		role = NK_ROLE_NSM;
	else
		return error_reply(EINVAL, "bad role: guest or nsm");
	if (!json_object_object_get_ex(req, "name", &v) ||
	    !json_object_is_type(v, json_type_string))
		return error_reply(EINVAL, "missing endpoint name");
	name = json_object_get_string(v);
	if (!he_name_ok(name))
		return error_reply(EINVAL, "bad endpoint name (1 to 63 of [A-Za-z0-9_.-])");
	ep = he_ep_alloc(role, name);
	if (!ep)
		return error_reply(ENOMEM, "out of memory");
	json_object_object_foreach(req, key, val) {
		const char *err;

		if (!strcmp(key, "cmd") || !strcmp(key, "role") || !strcmp(key, "name"))
			continue;
		if (json_object_is_type(val, json_type_string) ||
		    json_object_is_type(val, json_type_int))
			err = he_ep_set(ep, key, json_object_get_string(val), buf, sizeof(buf));
		else
			err = "value must be a string or a number";
		if (err) {
			snprintf(msg, sizeof(msg), "%s: %s", name, err);
			free(ep);
			return error_at(EINVAL, name, key, msg);
		}
	}
	if (he_ep_pairs_check(ep, msg, sizeof(msg))) {
		free(ep);
		return error_at(EINVAL, name, "carriers", msg);
	}
	ret = he_live_add(cfg, ep, msg, sizeof(msg));	/* @ep is the table's or freed */
	if (ret)
		return error_at(-ret, name, -ret == ENOENT ? "nsm" :
				-ret == EEXIST && strstr(msg, "socket") ? "socket" : NULL, msg);
	ep = he_ep_by_name(cfg, name);
	r = ok_reply();
	json_object_object_add(r, "endpoint", json_object_new_string(name));
	json_object_object_add(r, "id", json_object_new_int(ep->id));
	json_object_object_add(r, "socket", json_object_new_string(ep->sock_path));
	return not_persistent(r);
}

static json_object *cmd_remove(json_object *req)
{
	json_object *err = NULL, *r;
	struct he_ep *ep = req_ep(req, "name", 0, &err);
	char name[NK_NAME_MAX];
	int ret;

	if (!ep)
		return err;
	snprintf(name, sizeof(name), "%s", ep->name);
	ret = he_live_remove(cfg, ep);
	if (ret)
		return error_at(-ret, name, NULL, strerror(-ret));
	r = ok_reply();
	json_object_object_add(r, "endpoint", json_object_new_string(name));
	return not_persistent(r);
}

/* The keys "set" may change on a running guest, as a reload may. */
static const char *const set_keys[] = {
	"weight", "address", "address6", "max_sockets", "max_pending", "max_conn_rate",
	"conn_burst", "local_switch", "tenant", NULL,
};

static bool set_key_ok(const char *key)
{
	const char *const *k;

	for (k = set_keys; *k; k++)
		if (!strcmp(key, *k))
			return true;
	return false;
}

/*
 * set: {"cmd": "set", "name": GUEST, KEY: VALUE...}: a running guest's
 * weight, addresses or limits, all keys checked before any applies.  The
 * data plane applies them as a reload does (ep_update(), switch.c).
 */
static json_object *cmd_set(json_object *req)
{
	json_object *err = NULL, *r;
	struct he_ep *run = req_ep(req, "name", NK_ROLE_GUEST, &err), *ep;
	char msg[512], buf[256];
	unsigned int n = 0;

	if (!run)
		return err;
	/* What may change, copied: the rest is the data plane's. */
	ep = he_ep_alloc(NK_ROLE_GUEST, run->name);
	if (!ep)
		return error_at(ENOMEM, run->name, NULL, "out of memory");
	he_ep_copy_live(ep, run);
	json_object_object_foreach(req, key, val) {
		const char *e = NULL;

		if (!strcmp(key, "cmd") || !strcmp(key, "name"))
			continue;
		if (!strcmp(key, "nsm")) {
			snprintf(msg, sizeof(msg), "%s: nsm: attach or detach the guest instead",
				 run->name);
			e = msg;
		} else if (!strcmp(key, "socket") || !strcmp(key, "queue_pairs") ||
			   !strcmp(key, "carriers")) {
			snprintf(msg, sizeof(msg), "%s: %s cannot change while the endpoint runs "
				 "(remove it and add it again)", run->name, key);
			e = msg;
		} else if (!set_key_ok(key)) {
			snprintf(msg, sizeof(msg), "%s: unknown key '%s'", run->name, key);
			e = msg;
		} else if (json_object_is_type(val, json_type_string) ||
			   json_object_is_type(val, json_type_int)) {
			e = he_ep_set(ep, key, json_object_get_string(val), buf, sizeof(buf));
			if (e) {
				snprintf(msg, sizeof(msg), "%s: %s", run->name, e);
				e = msg;
			}
		} else {
			snprintf(msg, sizeof(msg), "%s: %s: value must be a string or a number",
				 run->name, key);
			e = msg;
		}
		if (e) {
			free(ep);
			return error_at(EINVAL, run->name, key, e);
		}
		n++;
	}
	if (!n) {
		free(ep);
		return error_at(EINVAL, run->name, NULL, "nothing to set: give KEY=VALUE");
	}
	he_dp_ep_update(run, ep);
	free(ep);
	he_log(INFO, "control: %s: weight %u, max_sockets %u, max_pending %" PRIu64
	       ", max_conn_rate %u, conn_burst %u set", run->name, run->weight,
	       run->max_sockets, run->max_pending, run->max_conn_rate, run->conn_burst);
	r = ok_reply();
	json_object_object_add(r, "endpoint", json_object_new_string(run->name));
	json_object_object_add(r, "weight", json_object_new_int(run->weight));
	json_object_object_add(r, "max_sockets", json_object_new_int64(run->max_sockets));
	add_u64(r, "max_pending", run->max_pending);
	json_object_object_add(r, "max_conn_rate", json_object_new_int64(run->max_conn_rate));
	json_object_object_add(r, "conn_burst", json_object_new_int64(run->conn_burst));
	json_object_object_add(r, "local_switch", json_object_new_string(he_lsw_mode_name(run)));
	json_object_object_add(r, "tenant", json_object_new_string(run->tenant));
	return not_persistent(r);
}

/* The reply to @line, or NULL when a listing is to be streamed (cl->list). */
static json_object *handle(struct client *cl, const char *line)
{
	enum json_tokener_error jerr;
	json_object *req, *cmd, *r, *err = NULL;
	struct he_ep *g, *nsm;
	const char *c;

	req = json_tokener_parse_verbose(line, &jerr);
	if (!req)
		return error_reply(EBADMSG, json_tokener_error_desc(jerr));
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(req);
		return error_reply(EINVAL, "request must be an object with a \"cmd\" string");
	}
	c = json_object_get_string(cmd);
	if (!strcmp(c, "list")) {
		r = cmd_list();
	} else if (!strcmp(c, "stats")) {
		r = cmd_stats(req);
	} else if (!strcmp(c, "sockets")) {
		r = cmd_sockets(cl, req);
	} else if (!strcmp(c, "ss")) {
		r = cmd_ss(cl, req);
	} else if (!strcmp(c, "kill")) {
		r = cmd_kill(req);
	} else if (!strcmp(c, "engine")) {
		r = cmd_engine();
	} else if (!strcmp(c, "attach")) {
		g = req_ep(req, "guest", NK_ROLE_GUEST, &err);
		nsm = g ? req_ep(req, "nsm", NK_ROLE_NSM, &err) : NULL;
		r = nsm && !he_dp_attach(g, nsm) ? not_persistent(ok_reply()) : err;
		if (nsm)
			he_log(INFO, "control: %s attached to %s", g->name, nsm->name);
	} else if (!strcmp(c, "detach")) {
		g = req_ep(req, "guest", NK_ROLE_GUEST, &err);
		r = g && !he_dp_detach(g) ? not_persistent(ok_reply()) : err;
		if (g)
			he_log(INFO, "control: %s detached", g->name);
	} else if (!strcmp(c, "add")) {
		r = cmd_add(req);
	} else if (!strcmp(c, "remove")) {
		r = cmd_remove(req);
	} else if (!strcmp(c, "set")) {
		r = cmd_set(req);
	} else {
		r = error_reply(EINVAL, "unknown command");
	}
	json_object_put(req);
	return r;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client_close(struct client *cl)
{
	close(cl->fd);
	cl->fd = -1;
	free(cl->out);
	cl->out = NULL;
	list_free(cl->list);
	cl->list = NULL;
	cl->ss_wait = false;
}

static bool client_set_out(struct client *cl, json_object *r)
{
	const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(s);

	cl->out = malloc(len + 1);
	if (cl->out) {
		memcpy(cl->out, s, len);
		cl->out[len] = '\n';
		cl->out_len = len + 1;
		cl->out_off = 0;
	}
	json_object_put(r);
	return cl->out;
}

/*
 * Write what the client's socket takes now; the rest waits for POLLOUT.
 * A listing's next page is made when the previous one is out.
 */
static void client_flush(struct client *cl)
{
	ssize_t n;

	for (;;) {
		while (cl->out && cl->out_off < cl->out_len) {
			n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n <= 0) {
				client_close(cl);
				return;
			}
			cl->out_off += n;
			cl->last_ms = now_ms();
		}
		free(cl->out);
		cl->out = NULL;
		if (!cl->list)
			return;
		if (!client_set_out(cl, list_page(cl))) {
			client_close(cl);
			return;
		}
	}
}

static void client_send(struct client *cl, json_object *r)
{
	if (r && !client_set_out(cl, r)) {
		client_close(cl);
		return;
	}
	client_flush(cl);
}

/* Answer the complete lines in the client's buffer while replies get out. */
static void client_lines(struct client *cl)
{
	char *nl;

	while (cl->fd >= 0 && !cl->out && !cl->ss_wait &&
	       (nl = memchr(cl->buf, '\n', cl->len))) {
		size_t used = nl - cl->buf + 1;
		bool discard = cl->discard;

		*nl = '\0';
		cl->discard = false;
		if (!discard)
			client_send(cl, handle(cl, cl->buf));
		if (cl->fd < 0)
			return;
		memmove(cl->buf, cl->buf + used, cl->len - used);
		cl->len -= used;
	}
	if (cl->fd >= 0 && !cl->out && !cl->ss_wait && cl->len == sizeof(cl->buf)) {
		bool discard = cl->discard;

		cl->discard = true;
		cl->len = 0;
		if (!discard)
			client_send(cl, error_reply(EMSGSIZE, "request line over 4 KiB"));
	}
}

static void client_read(struct client *cl)
{
	ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->len += n;
	cl->last_ms = now_ms();
	client_lines(cl);
}

/* A free slot, or the slot of the client idle longest if it may be taken. */
static struct client *client_slot(uint64_t now)
{
	struct client *old = NULL;
	unsigned int i;

	for (i = 0; i < CTL_CLIENTS; i++) {
		if (clients[i].fd < 0)
			return &clients[i];
		if (!old || clients[i].last_ms < old->last_ms)
			old = &clients[i];
	}
	if (now - old->last_ms < CTL_EVICT_MS)
		return NULL;
	he_log(DEBUG, "control: client idle for %" PRIu64 " ms closed for a new one",
	       now - old->last_ms);
	client_close(old);
	return old;
}

static void client_accept(struct client *cl)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	cl->fd = fd;
	cl->len = 0;
	cl->discard = false;
	cl->out = NULL;
	cl->list = NULL;
	cl->ss_wait = false;
	cl->gen++;
	cl->last_ms = now_ms();
}

int he_ctl_open(struct he_config *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned int i;

	cfg = c;
	clock_gettime(CLOCK_MONOTONIC, &started);
	for (i = 0; i < CTL_CLIENTS; i++)
		clients[i].fd = -1;
	/* he_config_load checked that it fits */
	memcpy(sa.sun_path, cfg->ctl_path, strlen(cfg->ctl_path));
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		return -errno;
	unlink(cfg->ctl_path);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    he_perm_apply(cfg->ctl_path, &cfg->ctl_perm) < 0 || listen(listen_fd, 8) < 0) {
		int err = -errno;

		close(listen_fd);
		listen_fd = -1;
		return err;
	}
	he_log(INFO, "control socket %s", cfg->ctl_path);
	return 0;
}

void he_ctl_close(void)
{
	unsigned int i;

	for (i = 0; i < CTL_CLIENTS; i++)
		if (clients[i].fd >= 0)
			client_close(&clients[i]);
	if (listen_fd >= 0) {
		close(listen_fd);
		listen_fd = -1;
		unlink(cfg->ctl_path);
	}
}

/*
 * Close clients idle for CTL_IDLE_MS; returns the poll timeout until the
 * next one would be, or, with every slot taken, until the client idle
 * longest may give its slot up (-1: no client).  *@slot: a slot is
 * available for a new connection now.
 */
static int clients_expire(uint64_t now, bool *slot)
{
	uint64_t wait = UINT64_MAX, oldest = now;
	unsigned int i, used = 0;

	for (i = 0; i < CTL_CLIENTS; i++) {
		struct client *cl = &clients[i];

		if (cl->fd < 0)
			continue;
		if (cl->ss_wait)	/* the engine's turn: bounded by HE_INFO_TIMEOUT_MS */
			cl->last_ms = now;
		if (now - cl->last_ms >= CTL_IDLE_MS) {
			he_log(DEBUG, "control: client idle for %u ms closed", CTL_IDLE_MS);
			client_close(cl);
			continue;
		}
		used++;
		wait = RTE_MIN(wait, cl->last_ms + CTL_IDLE_MS - now);
		oldest = RTE_MIN(oldest, cl->last_ms);
	}
	*slot = used < CTL_CLIENTS || now - oldest >= CTL_EVICT_MS;
	if (used == CTL_CLIENTS && !*slot)
		wait = RTE_MIN(wait, oldest + CTL_EVICT_MS - now);
	return wait == UINT64_MAX ? -1 : (int)wait;
}

/*
 * The "ss" under way is done (he_dp_ss_fd() readable): its client gets
 * the answer, if it is still there, and the next waiting client's starts.
 */
static void ss_poll(void)
{
	struct he_ss_info *ss = NULL;
	struct client *cl;
	unsigned int i;
	int n;

	for (;;) {
		if (!ss_owner) {
			for (i = 0; i < CTL_CLIENTS && !(clients[i].fd >= 0 && clients[i].ss_wait); i++)
				;
			if (i == CTL_CLIENTS) {
				he_dp_ss_result(&ss);	/* clears the eventfd */
				return;
			}
			ss_start(&clients[i]);
		}
		n = he_dp_ss_result(&ss);
		if (n == -EAGAIN)
			return;
		cl = ss_owner;
		ss_owner = NULL;
		if (cl->fd < 0 || cl->gen != ss_owner_gen || !cl->ss_wait) {
			free(n >= 0 ? ss : NULL);
			continue;
		}
		cl->ss_wait = false;
		client_send(cl, ss_reply(cl, n, ss));
		if (cl->fd >= 0 && !cl->out)
			client_lines(cl);
	}
}

void he_ctl_run(int sigfd)
{
	struct pollfd pfd[CTL_CLIENTS + 3];
	struct signalfd_siginfo si;
	struct client *cl;
	unsigned int i;
	int timeout;
	bool slot;

	for (;;) {
		timeout = clients_expire(now_ms(), &slot);
		pfd[0].fd = sigfd;
		pfd[0].events = POLLIN;
		/* No slot: the connection waits in the backlog. */
		pfd[1].fd = slot ? listen_fd : -1;
		pfd[1].events = POLLIN;
		for (i = 0; i < CTL_CLIENTS; i++) {
			pfd[i + 2].fd = clients[i].fd;
			/* Waiting for its ss: nothing read, a hangup still seen. */
			pfd[i + 2].events = clients[i].out ? POLLOUT :
					    clients[i].ss_wait ? 0 : POLLIN;
		}
		pfd[CTL_CLIENTS + 2].fd = he_dp_ss_fd();
		pfd[CTL_CLIENTS + 2].events = POLLIN;
		if (poll(pfd, RTE_DIM(pfd), timeout) < 0) {
			if (errno == EINTR)
				continue;
			he_log(ERR, "control: poll: %s", strerror(errno));
			return;
		}
		if (pfd[0].revents & POLLIN) {
			if (read(sigfd, &si, sizeof(si)) != sizeof(si))
				return;
			if (si.ssi_signo == SIGHUP) {
				he_reload(cfg);
				continue;
			}
			he_log(NOTICE, "signal %u: shutting down", si.ssi_signo);
			return;
		}
		for (i = 0; i < CTL_CLIENTS; i++) {
			cl = &clients[i];
			if (cl->fd < 0 || cl->fd != pfd[i + 2].fd || !pfd[i + 2].revents)
				continue;
			if (pfd[i + 2].revents & POLLOUT) {
				client_flush(cl);
				if (cl->fd >= 0 && !cl->out)
					client_lines(cl);
			} else if (pfd[i + 2].revents & POLLIN) {
				client_read(cl);
			} else {
				client_close(cl);
			}
		}
		if (pfd[CTL_CLIENTS + 2].revents & POLLIN)
			ss_poll();
		if ((pfd[1].revents & POLLIN) && (cl = client_slot(now_ms())))
			client_accept(cl);
	}
}
