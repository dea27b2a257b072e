// SPDX-License-Identifier: GPL-2.0
/*
 * Live endpoints: adding and removing endpoints while the engine runs
 * (the control socket's "add" and "remove", ctl.c) and SIGHUP's reload
 * of the configuration file, which applies the file's difference from the
 * running engine the same way (Documentation/netkernel/hostengine.rst,
 * "Live endpoints").  Nothing here is written back to the file: what nkctl
 * changes lasts until the next reload or restart, and the replies say so
 * ("persistent": false).
 *
 * Threading and locking:
 *  - Everything here runs on the main lcore, the only thread that changes
 *    the endpoint table; it reads the table without a lock.
 *  - he_eps_lock (a rwlock) is held for writing only around the data-plane
 *    command that swaps the table (he_dp_ep_add/remove), so rte_vhost's and
 *    the telemetry thread's lookups (read lock) never see a table being
 *    replaced.  The data plane takes no lock: it replaces the table itself,
 *    between two passes, so it never walks a table that changes (switch.c).
 *    Nothing holding he_eps_lock waits for anything but the data plane,
 *    which never takes it: no deadlock.
 *  - Adding: the endpoint is checked (name, NSM, socket path), gets the
 *    next id, is published in the table (attached to its NSM), and only
 *    then its vhost-user socket is created, so rte_vhost's callbacks always
 *    find it.  Removing: the socket is unregistered first
 *    (rte_vhost_driver_unregister returns once no callback of it runs; a
 *    running device is destroyed on the way, which ends its session as a
 *    lost frontend does: the NSM gets a CLOSE for each of a guest's
 *    sockets, each guest of an NSM an EV_RESET for each of its sockets),
 *    then the data plane drops it from the table and every pointer to it
 *    (its guests are detached), then it is freed.
 *  - Ids: cfg->next_id only grows, so an id is never reused while the
 *    engine runs: a removed guest's id cannot reach an NSM again for
 *    another guest (the NSM learns guest ids from SOCKET and may still
 *    hold the old one's state).  A restart starts a new session with every
 *    NSM, which forgets them.
 *  - Reload: the file is parsed into a separate configuration and the whole
 *    difference is checked before anything changes; a file that does not
 *    parse, changes an [engine] key, or changes what cannot change live
 *    (an endpoint's role, socket or queue_pairs) changes nothing and the
 *    reason is logged.  Then endpoints are removed, added (NSMs first),
 *    and guests' weights, addresses, limits and NSMs are updated in place.
 *    A limit applies from then on to what is new: a guest over a lowered
 *    max_sockets keeps its sockets and gets no new one, one over a lowered
 *    max_pending keeps what is queued and gets nothing more queued.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "he.h"

pthread_rwlock_t he_eps_lock = PTHREAD_RWLOCK_INITIALIZER;

static const char *role_name(const struct he_ep *ep)
{
	return ep->role == NK_ROLE_GUEST ? "guest" : "nsm";
}

/* The table without @drop and with @add (either NULL), or NULL. */
static struct he_ep **table_new(const struct he_config *cfg, const struct he_ep *drop,
				struct he_ep *add, unsigned int *nr)
{
	struct he_ep **eps = malloc((cfg->nr_eps + 1) * sizeof(*eps));
	unsigned int i, n = 0;

	if (!eps)
		return NULL;
	for (i = 0; i < cfg->nr_eps; i++)
		if (cfg->eps[i] != drop)
			eps[n++] = cfg->eps[i];
	if (add)
		eps[n++] = add;
	*nr = n;
	return eps;
}

int he_live_check(const struct he_config *cfg, struct he_ep *ep, const struct he_config *file,
		  char *err, size_t size)
{
	const struct he_config *names = file ? file : cfg;
	char buf[256], dir[PATH_MAX], path[PATH_MAX], other[PATH_MAX];
	unsigned int i, j, k;
	struct he_ep *nsm;
	struct stat st;

	if (!file && he_ep_by_name(cfg, ep->name)) {
		snprintf(err, size, "endpoint '%s' exists", ep->name);
		return -EEXIST;
	}
	if (ep->role == NK_ROLE_GUEST && ep->cfg_nsm[0]) {
		nsm = he_ep_by_name(names, ep->cfg_nsm);
		if (!nsm || nsm->role != NK_ROLE_NSM) {
			snprintf(err, size, "%s: nsm '%s' is not an NSM endpoint", ep->name,
				 ep->cfg_nsm);
			return -ENOENT;
		}
	}
	if (!file && he_ep_resolve(cfg, ep, buf, sizeof(buf))) {
		snprintf(err, size, "%s", buf);
		return -ENAMETOOLONG;
	}
	for (k = 0; k < ep->carriers; k++) {
		he_carrier_path(ep, k, path, sizeof(path));
		for (i = 0; i < cfg->nr_eps; i++) {
			for (j = 0; j < cfg->eps[i]->carriers; j++) {
				he_carrier_path(cfg->eps[i], j, other, sizeof(other));
				if (!strcmp(other, path)) {
					snprintf(err, size, "%s: socket %s is %s's", ep->name,
						 path, cfg->eps[i]->name);
					return -EEXIST;
				}
			}
		}
		if (!lstat(path, &st)) {
			snprintf(err, size, "%s: socket %s exists", ep->name, path);
			return -EEXIST;
		}
	}
	snprintf(dir, sizeof(dir), "%s", ep->sock_path);
	if (access(dirname(dir), W_OK | X_OK) < 0) {
		int e = errno;

		snprintf(dir, sizeof(dir), "%s", ep->sock_path);
		snprintf(err, size, "%s: socket %s: directory %s: %s", ep->name, ep->sock_path,
			 dirname(dir), strerror(e));
		return -e;
	}
	return 0;
}

/* Publish @ep (checked) and serve its socket; on failure @ep is freed. */
static int live_add(struct he_config *cfg, struct he_ep *ep, char *err, size_t size)
{
	struct he_ep **eps, **old = cfg->eps, *nsm = NULL;
	unsigned int nr;

	if (ep->role == NK_ROLE_GUEST && ep->cfg_nsm[0])
		nsm = he_ep_by_name(cfg, ep->cfg_nsm);
	eps = table_new(cfg, NULL, ep, &nr);
	if (!eps) {
		snprintf(err, size, "%s: out of memory", ep->name);
		free(ep);
		return -ENOMEM;
	}
	ep->id = cfg->next_id++;
	pthread_rwlock_wrlock(&he_eps_lock);
	he_dp_ep_add(ep, nsm, eps, nr);
	pthread_rwlock_unlock(&he_eps_lock);
	free(old);
	if (he_vhost_add(ep)) {
		snprintf(err, size, "%s: cannot serve vhost-user socket %s", ep->name,
			 ep->sock_path);
		he_live_remove(cfg, ep);
		return -EIO;
	}
	he_log(INFO, "%s: %s added (id %u)%s%s", ep->name, role_name(ep), ep->id,
	       nsm ? ", attached to " : "", nsm ? nsm->name : "");
	return 0;
}

int he_live_add(struct he_config *cfg, struct he_ep *ep, char *err, size_t size)
{
	int ret = he_live_check(cfg, ep, NULL, err, size);

	if (ret) {
		free(ep);
		return ret;
	}
	he_ep_limits(cfg, ep);
	return live_add(cfg, ep, err, size);
}

int he_live_remove(struct he_config *cfg, struct he_ep *ep)
{
	struct he_ep **eps, **old = cfg->eps;
	unsigned int nr;

	eps = table_new(cfg, ep, NULL, &nr);
	if (!eps)
		return -ENOMEM;
	he_vhost_remove(ep);
	pthread_rwlock_wrlock(&he_eps_lock);
	he_dp_ep_remove(ep, eps, nr);
	pthread_rwlock_unlock(&he_eps_lock);
	free(old);
	he_log(INFO, "%s: %s removed (id %u)", ep->name, role_name(ep), ep->id);
	free(ep);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reload                                                              */
/* ------------------------------------------------------------------ */

/* The [engine] key whose value differs, or NULL. */
static const char *engine_diff(const struct he_config *a, const struct he_config *b)
{
#define DIFF(field, key) do { if (memcmp(&a->field, &b->field, sizeof(a->field))) return key; } while (0)
	if (strcmp(a->name, b->name))
		return "name";
	if (strcmp(a->run_dir, b->run_dir))
		return "run_dir";
	DIFF(hugepages, "hugepages");
	DIFF(main_lcore, "main_lcore");
	DIFF(dataplane_lcore, "dataplane_lcore");
	DIFF(poll, "poll");
	DIFF(idle_polls, "idle_polls");
	DIFF(batch, "batch");
	DIFF(max_payload, "max_payload");
	DIFF(pending_limit, "pending_limit");
	DIFF(max_sockets, "max_sockets");
	DIFF(max_conn_rate, "max_conn_rate");
	DIFF(conn_burst, "conn_burst");
	DIFF(sock_perm.uid, "socket_owner");
	DIFF(sock_perm.gid, "socket_group");
	DIFF(sock_perm.mode, "socket_mode");
	DIFF(ctl_perm.uid, "control_owner");
	DIFF(ctl_perm.gid, "control_group");
	DIFF(ctl_perm.mode, "control_mode");
#undef DIFF
	return NULL;
}

/* What of a running endpoint cannot change live: the key, or NULL. */
static const char *ep_fixed_diff(const struct he_ep *run, const struct he_ep *f)
{
	if (run->role != f->role)
		return "role";
	if (strcmp(run->sock_path, f->sock_path))
		return "socket";
	if (run->carriers != f->carriers)
		return "carriers";
	if (run->queue_pairs != f->queue_pairs)
		return "queue_pairs";
	return NULL;
}

static bool ep_live_diff(const struct he_ep *run, const struct he_ep *f)
{
	return run->weight != f->weight || run->max_sockets != f->max_sockets ||
	       run->max_pending != f->max_pending || run->max_conn_rate != f->max_conn_rate ||
	       run->conn_burst != f->conn_burst || run->has_addr4 != f->has_addr4 ||
	       run->has_addr6 != f->has_addr6 || run->local_switch != f->local_switch ||
	       strcmp(run->tenant, f->tenant) ||
	       (f->has_addr4 && memcmp(&run->addr4, &f->addr4, sizeof(f->addr4))) ||
	       (f->has_addr6 && memcmp(&run->addr6, &f->addr6, sizeof(f->addr6)));
}

/* The name of the NSM @g is attached to, "" if none. */
static const char *attached_name(const struct he_config *cfg, const struct he_ep *g)
{
	uint32_t id = __atomic_load_n(&g->attached_id, __ATOMIC_RELAXED);
	const struct he_ep *nsm = id ? he_ep_by_id(cfg, id) : NULL;

	return nsm ? nsm->name : "";
}

/* Everything the file changes is possible: 0, or -1 with the reason. */
static int reload_check(struct he_config *cfg, struct he_config *f, char *err, size_t size)
{
	const char *key = engine_diff(cfg, f);
	unsigned int i;

	if (key) {
		snprintf(err, size, "[engine] %s cannot change while the engine runs (restart it)",
			 key);
		return -1;
	}
	for (i = 0; i < f->nr_eps; i++) {
		struct he_ep *fe = f->eps[i], *run = he_ep_by_name(cfg, fe->name);

		if (run) {
			key = ep_fixed_diff(run, fe);
			if (key) {
				snprintf(err, size, "%s: %s cannot change while the engine runs "
					 "(remove the endpoint, or restart)", fe->name, key);
				return -1;
			}
		} else if (he_live_check(cfg, fe, f, err, size)) {
			return -1;
		}
	}
	return 0;
}

int he_reload(struct he_config *cfg)
{
	char err[PATH_MAX + 600];
	struct he_config f;
	unsigned int i, changes = 0;
	int pass;

	he_log(NOTICE, "reload: reading %s", cfg->path);
	if (he_config_parse(&f, cfg->path, err, sizeof(err))) {
		he_log(ERR, "reload: %s: nothing changed", err);
		return -1;
	}
	if (reload_check(cfg, &f, err, sizeof(err))) {
		he_log(ERR, "reload: %s: %s: nothing changed", cfg->path, err);
		he_config_free(&f);
		return -1;
	}
	/* Removed: every running endpoint the file no longer has. */
	for (i = 0; i < cfg->nr_eps;) {
		struct he_ep *run = cfg->eps[i];

		if (he_ep_by_name(&f, run->name)) {
			i++;
			continue;
		}
		if (he_live_remove(cfg, run)) {
			he_log(ERR, "reload: %s: not removed: out of memory", run->name);
			i++;
		}
		changes++;
	}
	/* Added: NSMs first, so that new guests find theirs. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < f.nr_eps; i++) {
			struct he_ep *fe = f.eps[i];

			if (!fe || (fe->role == NK_ROLE_NSM) != !pass ||
			    he_ep_by_name(cfg, fe->name))
				continue;
			f.eps[i] = NULL;
			if (live_add(cfg, fe, err, sizeof(err)))
				he_log(ERR, "reload: %s", err);
			changes++;
		}
	}
	/* Changed in place: a guest's weight, addresses and NSM. */
	for (i = 0; i < f.nr_eps; i++) {
		struct he_ep *fe = f.eps[i], *run, *nsm;

		if (!fe || fe->role != NK_ROLE_GUEST)
			continue;
		run = he_ep_by_name(cfg, fe->name);
		if (ep_live_diff(run, fe)) {
			he_log(INFO, "%s: weight %u, addresses, max_sockets %u, max_pending %" PRIu64
			       ", max_conn_rate %u, conn_burst %u updated", run->name, fe->weight,
			       fe->max_sockets, fe->max_pending, fe->max_conn_rate, fe->conn_burst);
			he_dp_ep_update(run, fe);
			changes++;
		}
		if (!strcmp(attached_name(cfg, run), fe->cfg_nsm))
			continue;
		nsm = fe->cfg_nsm[0] ? he_ep_by_name(cfg, fe->cfg_nsm) : NULL;
		if (nsm)
			he_dp_attach(run, nsm);
		else
			he_dp_detach(run);
		snprintf(run->cfg_nsm, sizeof(run->cfg_nsm), "%s", fe->cfg_nsm);
		he_log(INFO, "%s: %s%s", run->name, nsm ? "attached to " : "detached",
		       nsm ? nsm->name : "");
		changes++;
	}
	he_config_free(&f);
	he_log(NOTICE, "reload: %s: %u change(s)", cfg->path, changes);
	return 0;
}
