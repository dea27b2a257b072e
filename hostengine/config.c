// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration file (Documentation/netkernel/hostengine.rst,
 * "Configuration"), parsed with libinih.
 *
 * Threading: he_config_load runs once on the main thread before EAL
 * starts; he_config_parse runs again on the main lcore for a reload
 * (live.c) into a separate struct he_config, which live.c compares with
 * the running one and frees.  The endpoint helpers (he_ep_alloc,
 * he_ep_set, he_ep_resolve) build an endpoint that nobody else sees yet:
 * they are shared by the file and the control socket's "add" (live.c),
 * so both give the same errors.  he_ep_by_name and he_ep_by_id read
 * cfg->eps: callers other than the main lcore and the data plane hold
 * he_eps_lock for reading (live.c has the rules).
 *
 * Line numbers: inih's handler is not told the line, so the file is fed
 * through our own reader, which counts lines and also sees section headers
 * (an endpoint section may have no keys at all).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ini.h>

#include "he.h"

struct parse {
	struct he_config *cfg;
	const char *file;
	FILE *f;
	unsigned int line;
	char *buf;
	size_t bufsz;
	char err[512];
	unsigned int err_line;
	struct he_ep *cur;		/* endpoint section being read */
	bool in_engine;
	unsigned int *nsm_line;		/* per endpoint: line of its nsm key */
};

static void perr(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->err_line = p->line;
}

static const char *const lsw_modes[] = {
	[HE_LSW_AUTO] = "auto", [HE_LSW_ON] = "on", [HE_LSW_OFF] = "off",
};

bool he_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n >= NK_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

const char *he_lsw_mode_name(const struct he_ep *ep)
{
	return lsw_modes[ep->local_switch < RTE_DIM(lsw_modes) ? ep->local_switch : 0];
}

struct he_ep *he_ep_by_id(const struct he_config *cfg, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_eps; i++)
		if (cfg->eps[i]->id == id)
			return cfg->eps[i];
	return NULL;
}

struct he_ep *he_ep_alloc(enum nk_role role, const char *name)
{
	struct he_ep *ep = calloc(1, sizeof(*ep));

	if (!ep)
		return NULL;
	snprintf(ep->name, sizeof(ep->name), "%s", name);
	ep->role = role;
	ep->weight = 1;
	ep->queue_pairs = 1;
	ep->carriers = 1;
	snprintf(ep->sock_path, sizeof(ep->sock_path), "%s.sock", name);
	return ep;
}

void he_ep_copy_live(struct he_ep *to, const struct he_ep *from)
{
	to->weight = from->weight;
	to->max_sockets = from->max_sockets;
	to->max_pending = from->max_pending;
	to->max_conn_rate = from->max_conn_rate;
	to->conn_burst = from->conn_burst;
	to->lim_set = from->lim_set;
	to->has_addr4 = from->has_addr4;
	to->addr4 = from->addr4;
	to->has_addr6 = from->has_addr6;
	to->addr6 = from->addr6;
	to->local_switch = from->local_switch;
	memcpy(to->tenant, from->tenant, sizeof(to->tenant));
}

struct he_ep *he_ep_by_name(const struct he_config *cfg, const char *name)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_eps; i++)
		if (!strcmp(cfg->eps[i]->name, name))
			return cfg->eps[i];
	return NULL;
}

static void section(struct parse *p, const char *name)
{
	struct he_config *cfg = p->cfg;
	enum nk_role role;
	struct he_ep *ep, **eps;
	unsigned int *lines;
	const char *n;

	p->cur = NULL;
	p->in_engine = !strcmp(name, "engine");
	if (p->in_engine)
		return;
	if (!strncmp(name, "nsm:", 4)) {
		role = NK_ROLE_NSM;
		n = name + 4;
	} else if (!strncmp(name, "guest:", 6)) {
		role = NK_ROLE_GUEST;
		n = name + 6;
	} else {
		return perr(p, "unknown section [%s]", name);
	}
	if (!he_name_ok(n))
		return perr(p, "bad endpoint name '%s' (1 to 63 of [A-Za-z0-9_.-])", n);
	if (he_ep_by_name(cfg, n))
		return perr(p, "endpoint '%s' defined twice", n);
	ep = he_ep_alloc(role, n);
	eps = realloc(cfg->eps, (cfg->nr_eps + 1) * sizeof(*eps));
	lines = realloc(p->nsm_line, (cfg->nr_eps + 1) * sizeof(*lines));
	if (eps)
		cfg->eps = eps;
	if (lines)
		p->nsm_line = lines;
	if (!ep || !eps || !lines) {
		free(ep);
		return perr(p, "out of memory");
	}
	ep->id = cfg->nr_eps + 1;
	p->nsm_line[cfg->nr_eps] = 0;
	cfg->eps[cfg->nr_eps++] = ep;
	p->cur = ep;
}

/* inih reader: one line per call; counts lines and sees section headers. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t n = getline(&p->buf, &p->bufsz, p->f);
	char *end;

	if (n < 0)
		return NULL;
	p->line++;
	if (n >= num)
		perr(p, "line longer than %d characters", num - 1);
	snprintf(str, num, "%s", p->buf);
	if (p->buf[0] == '[') {
		end = strchr(p->buf, ']');
		if (end) {
			*end = '\0';
			section(p, p->buf + 1);
		} else {
			perr(p, "section header without ']'");
		}
	} else if (isspace((unsigned char)p->buf[0]) && strchr(p->buf, '[') &&
		   p->buf[strspn(p->buf, " \t")] == '[') {
		perr(p, "indented section header");
	}
	return str;
}

static bool parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long x;
	char *end;

	if (!isdigit((unsigned char)*v))
		return false;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || *end || x < min || x > max)
		return false;
	*out = x;
	return true;
}

static bool parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t x;

	if (!parse_u64(v, min, max, &x))
		return false;
	*out = x;
	return true;
}

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return false;
	return true;
}

static bool parse_path(const char *v, char *out, size_t size)
{
	return *v && (size_t)snprintf(out, size, "%s", v) < size;
}

/* A user or group: a name, or a number. */
static bool parse_id(const char *v, bool group, unsigned int *out)
{
	char *end;
	unsigned long n;

	if (!*v)
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (!*end && !errno && isdigit((unsigned char)*v) && n < (unsigned int)-1) {
		*out = n;
		return true;
	}
	if (group) {
		struct group *gr = getgrnam(v);

		if (gr)
			*out = gr->gr_gid;
		return gr;
	} else {
		struct passwd *pw = getpwnam(v);

		if (pw)
			*out = pw->pw_uid;
		return pw;
	}
}

/* An octal mode of a socket: the permission bits only. */
static bool parse_mode(const char *v, mode_t *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 8);
	if (!*v || *end || errno || n > 0777)
		return false;
	*out = n;
	return true;
}

/*
 * socket_owner, socket_group, socket_mode and the control_ ones.
 * 1: handled (an error is in p), 0: not such a key.
 */
static int perm_key(struct parse *p, const char *k, const char *v)
{
	struct he_config *cfg = p->cfg;
	const char *key = k;
	struct he_perm *perm;
	unsigned int id;

	if (!strncmp(k, "socket_", 7))
		perm = &cfg->sock_perm, k += 7;
	else if (!strncmp(k, "control_", 8))
		perm = &cfg->ctl_perm, k += 8;
	else
		return 0;
	if (!strcmp(k, "owner") || !strcmp(k, "group")) {
		bool group = k[0] == 'g';

		if (!parse_id(v, group, &id))
			perr(p, "unknown %s '%s' for %s", group ? "group" : "user", v,
			     key);
		else if (group)
			perm->gid = id;
		else
			perm->uid = id;
	} else if (!strcmp(k, "mode")) {
		if (!parse_mode(v, &perm->mode))
			perr(p, "bad value '%s' for %s: an octal mode, 0 to 0777", v,
			     key);
	} else {
		return 0;
	}
	return 1;
}

int he_perm_apply(const char *path, const struct he_perm *perm)
{
	if ((perm->uid != (uid_t)-1 || perm->gid != (gid_t)-1) &&
	    chown(path, perm->uid, perm->gid) < 0)
		return -errno;
	if (chmod(path, perm->mode) < 0)
		return -errno;
	return 0;
}

static int engine_key(struct parse *p, const char *k, const char *v)
{
	struct he_config *cfg = p->cfg;
	bool ok;

	if (!strcmp(k, "name")) {
		ok = he_name_ok(v) && parse_path(v, cfg->name, sizeof(cfg->name));
	} else if (!strcmp(k, "run_dir")) {
		ok = parse_path(v, cfg->run_dir, sizeof(cfg->run_dir));
	} else if (!strcmp(k, "hugepages")) {
		ok = parse_bool(v, &cfg->hugepages);
	} else if (!strcmp(k, "main_lcore")) {
		ok = parse_u32(v, 0, RTE_MAX_LCORE - 1, &cfg->main_lcore);
	} else if (!strcmp(k, "dataplane_lcore")) {
		ok = parse_u32(v, 0, RTE_MAX_LCORE - 1, &cfg->dataplane_lcore);
	} else if (!strcmp(k, "poll")) {
		ok = true;
		if (!strcmp(v, "adaptive"))
			cfg->poll = HE_POLL_ADAPTIVE;
		else if (!strcmp(v, "busy"))
			cfg->poll = HE_POLL_BUSY;
		else
			ok = false;
	} else if (!strcmp(k, "idle_polls")) {
		ok = parse_u32(v, 1, UINT32_MAX, &cfg->idle_polls);
	} else if (!strcmp(k, "batch")) {
		ok = parse_u32(v, 1, 4096, &cfg->batch);
	} else if (!strcmp(k, "max_payload")) {
		ok = parse_u32(v, NK_MIN_PAYLOAD, NK_MAX_PAYLOAD, &cfg->max_payload);
	} else if (!strcmp(k, "pending_limit")) {
		ok = parse_u64(v, 1, UINT64_MAX / 2, &cfg->pending_limit);
	} else if (!strcmp(k, "max_sockets")) {
		if (!parse_u32(v, 1, HE_MAX_SOCKETS_LIMIT, &cfg->max_sockets)) {
			perr(p, "bad value '%s' for max_sockets: sockets per guest, 1 to %u", v,
			     HE_MAX_SOCKETS_LIMIT);
			return 0;
		}
		ok = true;
	} else if (!strcmp(k, "max_conn_rate")) {
		ok = parse_u32(v, 0, HE_MAX_CONN_RATE, &cfg->max_conn_rate);
	} else if (!strcmp(k, "conn_burst")) {
		ok = parse_u32(v, 0, HE_MAX_CONN_RATE, &cfg->conn_burst);
	} else if (perm_key(p, k, v)) {
		return !p->err[0];
	} else {
		perr(p, "unknown key '%s' in [engine]", k);
		return 0;
	}
	if (!ok && (!strcmp(k, "max_conn_rate") || !strcmp(k, "conn_burst")))
		perr(p, "bad value '%s' for %s: 0 to %u", v, k, HE_MAX_CONN_RATE);
	else if (!ok)
		perr(p, "bad value '%s' for %s", v, k);
	return ok;
}

/* A guest's limit key: its range (*@ok set), or NULL if @k is not one. */
static const char *limit_key(struct he_ep *ep, const char *k, const char *v, bool *ok)
{
	if (!strcmp(k, "max_sockets")) {
		*ok = parse_u32(v, 1, HE_MAX_SOCKETS_LIMIT, &ep->max_sockets);
		ep->lim_set |= HE_LIM_SOCKETS;
		return ": sockets, 1 to 1048576";
	}
	if (!strcmp(k, "max_pending")) {
		*ok = parse_u64(v, HE_MIN_PENDING, HE_MAX_PENDING, &ep->max_pending);
		ep->lim_set |= HE_LIM_PENDING;
		return ": bytes, 4096 to 1099511627776";
	}
	if (!strcmp(k, "max_conn_rate")) {
		*ok = parse_u32(v, 0, HE_MAX_CONN_RATE, &ep->max_conn_rate);
		ep->lim_set |= HE_LIM_CONN_RATE;
		return ": connections a second, 0 (no limit) to 1000000";
	}
	if (!strcmp(k, "conn_burst")) {
		*ok = parse_u32(v, 0, HE_MAX_CONN_RATE, &ep->conn_burst);
		ep->lim_set |= HE_LIM_CONN_BURST;
		return ": connections, 0 (max_conn_rate) to 1000000";
	}
	return NULL;
}

void he_ep_limits(const struct he_config *cfg, struct he_ep *ep)
{
	if (!(ep->lim_set & HE_LIM_SOCKETS))
		ep->max_sockets = cfg->max_sockets;
	if (!(ep->lim_set & HE_LIM_PENDING))
		ep->max_pending = cfg->pending_limit;
	if (!(ep->lim_set & HE_LIM_CONN_RATE))
		ep->max_conn_rate = cfg->max_conn_rate;
	if (!(ep->lim_set & HE_LIM_CONN_BURST))
		ep->conn_burst = cfg->conn_burst;
}

const char *he_ep_set(struct he_ep *ep, const char *k, const char *v, char *buf, size_t size)
{
	bool guest = ep->role == NK_ROLE_GUEST;
	const char *range = "";
	bool ok;

	if (!strcmp(k, "socket")) {
		ok = parse_path(v, ep->sock_path, sizeof(ep->sock_path) - 1);
		range = ": a path";
	} else if (guest && !strcmp(k, "nsm")) {
		ok = !*v || he_name_ok(v);
		snprintf(ep->cfg_nsm, sizeof(ep->cfg_nsm), "%s", ok ? v : "");
		range = ": an NSM's name";
	} else if (!strcmp(k, "queue_pairs")) {
		ok = parse_u32(v, 1, NK_MAX_QPAIRS, &ep->queue_pairs);
		range = ": 1 to " RTE_STR(NK_MAX_QPAIRS);
	} else if (!strcmp(k, "carriers")) {
		ok = parse_u32(v, 1, NK_MAX_QPAIRS, &ep->carriers);
		range = ": 1 to " RTE_STR(NK_MAX_QPAIRS);
	} else if (guest && !strcmp(k, "address")) {
		ok = inet_pton(AF_INET, v, &ep->addr4) == 1;
		ep->has_addr4 = ok;
		range = ": an IPv4 address";
	} else if (guest && !strcmp(k, "address6")) {
		ok = inet_pton(AF_INET6, v, &ep->addr6) == 1;
		ep->has_addr6 = ok;
		range = ": an IPv6 address";
	} else if (guest && !strcmp(k, "weight")) {
		ok = parse_u32(v, 1, NK_WEIGHT_MAX, &ep->weight);
		range = ": 1 to 1000";
	} else if (guest && !strcmp(k, "local_switch")) {
		unsigned int i;

		ok = false;
		for (i = 0; i < RTE_DIM(lsw_modes); i++)
			if (!strcmp(v, lsw_modes[i])) {
				ep->local_switch = i;
				ok = true;
			}
		range = ": auto, on or off";
	} else if (guest && !strcmp(k, "tenant")) {
		ok = !*v || he_name_ok(v);
		snprintf(ep->tenant, sizeof(ep->tenant), "%s", ok ? v : "");
		range = ": a name (letters, digits, '-', '_', '.'), or empty";
	} else if (!guest || !(range = limit_key(ep, k, v, &ok))) {
		snprintf(buf, size, "unknown key '%s' in [%s:%s]", k, guest ? "guest" : "nsm",
			 ep->name);
		return buf;
	}
	if (ok)
		return NULL;
	snprintf(buf, size, "bad value '%s' for %s%s", v, k, range);
	return buf;
}

static int ep_key(struct parse *p, const char *k, const char *v)
{
	char buf[sizeof(p->err)];
	const char *err;

	if (!strcmp(k, "nsm"))
		p->nsm_line[p->cur->id - 1] = p->line;
	err = he_ep_set(p->cur, k, v, buf, sizeof(buf));
	if (err)
		perr(p, "%s", err);
	return !err;
}

static int handler(void *user, const char *sect, const char *key, const char *value)
{
	struct parse *p = user;

	RTE_SET_USED(sect);
	if (p->in_engine)
		return engine_key(p, key, value);
	if (p->cur)
		return ep_key(p, key, value);
	if (!p->err[0])
		perr(p, "key '%s' outside a known section", key);
	return 0;
}

const char *he_ep_resolve(const struct he_config *cfg, struct he_ep *ep, char *buf,
			  size_t size)
{
	char path[PATH_MAX];

	if (ep->sock_path[0] != '/') {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg->run_dir,
				     ep->sock_path) >= sizeof(path)) {
			snprintf(buf, size, "%s: socket path too long", ep->name);
			return buf;
		}
		memcpy(ep->sock_path, path, sizeof(path));
	}
	he_carrier_path(ep, ep->carriers - 1, path, sizeof(path));
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(buf, size, "%s: socket path %s too long for a Unix socket", ep->name,
			 path);
		return buf;
	}
	return NULL;
}

const char *he_ep_pairs_check(struct he_ep *ep, char *buf, size_t size)
{
	if (ep->carriers == 1)
		return NULL;
	/* Each carrier has one pair. */
	if (ep->queue_pairs != 1 && ep->queue_pairs != ep->carriers) {
		snprintf(buf, size, "%s: queue_pairs %u with %u carriers: one pair each",
			 ep->name, ep->queue_pairs, ep->carriers);
		return buf;
	}
	ep->queue_pairs = ep->carriers;
	return NULL;
}

void he_carrier_path(const struct he_ep *ep, unsigned int k, char *buf, size_t size)
{
	if (k)
		snprintf(buf, size, "%s.%u", ep->sock_path, k);
	else
		snprintf(buf, size, "%s", ep->sock_path);
}

/* Checks that need the whole file. */
static void finish(struct parse *p)
{
	struct he_config *cfg = p->cfg;
	unsigned int i;

	if (cfg->main_lcore == cfg->dataplane_lcore) {
		p->line = 0;
		return perr(p, "main_lcore and dataplane_lcore must differ");
	}
	for (i = 0; i < cfg->nr_eps; i++) {
		struct he_ep *ep = cfg->eps[i];
		struct he_ep *nsm;

		const char *err = he_ep_pairs_check(ep, p->err, sizeof(p->err));

		if (!err)
			err = he_ep_resolve(cfg, ep, p->err, sizeof(p->err));
		he_ep_limits(cfg, ep);
		if (err) {
			p->err_line = 0;
			return;
		}
		if (ep->role != NK_ROLE_GUEST || !ep->cfg_nsm[0])
			continue;
		nsm = he_ep_by_name(cfg, ep->cfg_nsm);
		if (!nsm || nsm->role != NK_ROLE_NSM) {
			p->line = p->nsm_line[i];
			return perr(p, "nsm '%s' of guest '%s' is not an [nsm:] section",
				    ep->cfg_nsm, ep->name);
		}
	}
	if ((size_t)snprintf(cfg->ctl_path, sizeof(cfg->ctl_path), "%s/control.sock",
			     cfg->run_dir) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		p->line = 0;
		perr(p, "run_dir %s too long for a Unix socket path", cfg->run_dir);
	}
}

void he_config_free(struct he_config *cfg)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_eps; i++)
		free(cfg->eps[i]);
	free(cfg->eps);
	cfg->eps = NULL;
	cfg->nr_eps = 0;
}

int he_config_parse(struct he_config *cfg, const char *file, char *err, size_t size)
{
	struct parse p = { .cfg = cfg, .file = file };
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	if (!realpath(file, cfg->path))	/* a reload finds it whatever the cwd */
		snprintf(cfg->path, sizeof(cfg->path), "%s", file);
	snprintf(cfg->name, sizeof(cfg->name), "netkernel");
	snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/run/netkernel");
	cfg->hugepages = true;
	cfg->main_lcore = 0;
	cfg->dataplane_lcore = 1;
	cfg->poll = HE_POLL_ADAPTIVE;
	cfg->idle_polls = 2048;
	cfg->batch = 32;
	cfg->max_payload = NK_MAX_PAYLOAD;
	cfg->pending_limit = 8U << 20;
	cfg->max_sockets = HE_MAX_SOCKETS;
	cfg->sock_perm = (struct he_perm){ (uid_t)-1, (gid_t)-1, 0600 };
	cfg->ctl_perm = cfg->sock_perm;

	p.f = fopen(file, "r");
	if (!p.f) {
		snprintf(err, size, "%s: %s", file, strerror(errno));
		return -1;
	}
	ret = ini_parse_stream(reader, &p, handler, &p);
	fclose(p.f);
	free(p.buf);
	if (ret && !p.err[0]) {
		p.line = ret > 0 ? (unsigned int)ret : 0;
		perr(&p, "syntax error");
	}
	if (!p.err[0])
		finish(&p);
	free(p.nsm_line);
	if (p.err[0]) {
		/* Line 0: the whole file's check, no line of its own. */
		if (p.err_line)
			snprintf(err, size, "%s:%u: %s", file, p.err_line, p.err);
		else
			snprintf(err, size, "%s: %s", file, p.err);
		he_config_free(cfg);
		return -1;
	}
	cfg->next_id = cfg->nr_eps + 1;
	return 0;
}

int he_config_load(struct he_config *cfg, const char *file)
{
	char err[PATH_MAX + 600];

	if (!he_config_parse(cfg, file, err, sizeof(err)))
		return 0;
	fprintf(stderr, "%s%s\n", he_journal ? "<3>" : "", err);
	return -1;
}
