// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-user: one rte_vhost server socket per endpoint, feature and
 * protocol-feature setup, the device configuration space (GET_CONFIG) and
 * the device life cycle callbacks.
 *
 * Threading and locking:
 *  - he_vhost_start/he_vhost_stop run on the main lcore, before the control
 *    loop and at shutdown.  rte_vhost_driver_unregister may call
 *    destroy_device from the main lcore; the data plane is stopped by then
 *    and the command then runs in the caller (see switch.c).
 *  - The callbacks run on rte_vhost's threads.  They touch no data-plane
 *    state: new_device collects the rings and memory table and hands them
 *    to the data plane with he_dp_dev_start; destroy_device waits in
 *    he_dp_dev_stop until the data plane has stopped touching the device,
 *    then saves the ring indices and frees the memory table; a memory
 *    table change pauses the device around rte_vhost's handling of it
 *    (pre_msg_handle / post_msg_handle, he_dp_dev_pause / resume).  Those
 *    two run with the device's queue locks held, which is why the data
 *    plane never waits for them (vring.c, he_vq_call).
 *  - Every connection is accepted: rte_vhost may see a reconnecting
 *    frontend before it has torn the previous connection down.  One device
 *    per endpoint runs at a time: the data plane refuses a second
 *    new_device (-EBUSY) while the first runs.
 *  - The callbacks find their endpoint by socket path in cfg->eps, holding
 *    he_eps_lock for reading (the table changes at run time, live.c), and
 *    use it after dropping the lock: an endpoint is freed only after
 *    he_vhost_remove returned, and rte_vhost_driver_unregister returns
 *    only once no callback of that socket runs or can start.  live.c
 *    publishes an endpoint before he_vhost_add and retires it after
 *    he_vhost_remove, so a callback always finds its endpoint.  No lock is
 *    held across rte_vhost calls.
 *  - he_vhost_add/he_vhost_remove run on the main lcore (live.c);
 *    ep->registered is main-lcore state.
 *  - Configuration (cfg, endpoints' names and roles) is read-only here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/virtio_config.h>

#include "he.h"
#include "vhost_msg.h"

#define HE_VIRTIO_FEATURES	((1ULL << VIRTIO_F_VERSION_1) | \
				 (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))

static struct he_config *cfg;

/* The endpoint whose carrier @vid is (its index in *@k), or NULL. */
static struct he_ep *ep_by_vid(int vid, unsigned int *k)
{
	char path[PATH_MAX], cpath[PATH_MAX];
	struct he_ep *ep = NULL;
	unsigned int i, j;

	if (rte_vhost_get_ifname(vid, path, sizeof(path)) < 0)
		return NULL;
	pthread_rwlock_rdlock(&he_eps_lock);
	for (i = 0; i < cfg->nr_eps && !ep; i++) {
		for (j = 0; j < cfg->eps[i]->carriers; j++) {
			he_carrier_path(cfg->eps[i], j, cpath, sizeof(cpath));
			if (!strcmp(cpath, path)) {
				ep = cfg->eps[i];
				*k = j;
				break;
			}
		}
	}
	pthread_rwlock_unlock(&he_eps_lock);
	return ep;
}

/*
 * VHOST_USER_GET_CONFIG: bytes of struct nk_config at offset..offset+size;
 * bytes past the 8-byte config space read as zero.  A request larger than
 * a vhost-user config region, or too short to carry offset and size, gets
 * a reply with size 0.
 */
static enum rte_vhost_msg_result get_config(int vid, struct he_vu_msg *m)
{
	struct nk_config nc = {
		.zero = 0,
		.magic = { NK_CONFIG_MAGIC0, NK_CONFIG_MAGIC1, NK_CONFIG_MAGIC2 },
		.version = NK_PROTO_VERSION,
	};
	const uint8_t *src = (const uint8_t *)&nc;
	uint32_t size = 0, i;
	unsigned int k;
	struct he_ep *ep = ep_by_vid(vid, &k);

	if (!ep)
		return RTE_VHOST_MSG_RESULT_ERR;
	nc.role = ep->role | k << 4;
	nc.max_qpairs = ep->queue_pairs;
	if (m->size >= HE_VU_CONFIG_HDR_SIZE &&
	    m->payload.cfg.size <= HE_VHOST_USER_MAX_CONFIG_SIZE)
		size = m->payload.cfg.size;
	else
		m->payload.cfg.offset = m->payload.cfg.flags = 0;
	for (i = 0; i < size; i++) {
		uint64_t off = (uint64_t)m->payload.cfg.offset + i;

		m->payload.cfg.region[i] = off < sizeof(nc) ? src[off] : 0;
	}
	/* The message thread is this counter's only writer. */
	if (size != m->payload.cfg.size ||
	    (uint64_t)m->payload.cfg.offset + size > sizeof(nc))
		he_cnt_add(ep, HE_C_CONFIG_ERRORS, 1);
	m->payload.cfg.size = size;
	m->size = HE_VU_CONFIG_HDR_SIZE + size;
	he_log(DEBUG, "%s: GET_CONFIG offset %u size %u", ep->name, m->payload.cfg.offset, size);
	return RTE_VHOST_MSG_RESULT_REPLY;
}

/*
 * VHOST_USER_SET_MEM_TABLE on a running device: rte_vhost unmaps the old
 * regions (without destroy_device) and translates the rings again.  The
 * data plane holds raw pointers into them, so the device is paused before
 * rte_vhost handles the message and resumed after it with the new table
 * and ring addresses; messages for it wait in its pending queue meanwhile,
 * and its session and sockets go on.  If rte_vhost fails the message it
 * closes the connection, and destroy_device stops the paused device.
 */
static enum rte_vhost_msg_result pre_msg_handle(int vid, void *msg)
{
	struct he_vu_msg *m = msg;
	struct he_ep *ep;
	unsigned int k;

	if (m->request == HE_VHOST_USER_GET_CONFIG)
		return get_config(vid, m);
	if (m->request == HE_VHOST_USER_SET_MEM_TABLE) {
		ep = ep_by_vid(vid, &k);
		if (ep && he_dp_dev_pause(ep, vid) == 1)
			__atomic_or_fetch(&ep->mem_paused, 1U << k, __ATOMIC_RELAXED);
	}
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static int dev_collect(int vid, unsigned int k, struct he_ep *ep, struct he_dev_start *ds);

static enum rte_vhost_msg_result post_msg_handle(int vid, void *msg)
{
	struct he_vu_msg *m = msg;
	struct rte_vhost_memory *old = NULL;
	struct he_dev_start *ds;
	struct he_ep *ep;
	int ret = -ENOMEM;
	unsigned int k;

	if (m->request != HE_VHOST_USER_SET_MEM_TABLE)
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	ep = ep_by_vid(vid, &k);
	if (!ep || !(__atomic_fetch_and(&ep->mem_paused, ~(1U << k), __ATOMIC_RELAXED) &
		     (1U << k)))
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	ds = calloc(1, sizeof(*ds));
	if (ds && !(ret = dev_collect(vid, k, ep, ds))) {
		ret = he_dp_dev_resume(ep, ds, &old);
		free(old);
	}
	if (ret)
		he_log(ERR, "%s: memory table changed, device not resumed (%s): stopped until "
		       "it is set up again", ep->name, strerror(-ret));
	free(ds);
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static const struct rte_vhost_user_extern_ops extern_ops = {
	.pre_msg_handle = pre_msg_handle,
	.post_msg_handle = post_msg_handle,
};

static int new_connection(int vid)
{
	unsigned int k;
	struct he_ep *ep = ep_by_vid(vid, &k);

	if (!ep || rte_vhost_extern_callback_register(vid, &extern_ops, ep))
		return -1;
	he_log(INFO, "%s: frontend connected (vid %d, carrier %u)", ep->name, vid, k);
	return 0;
}

static void destroy_connection(int vid)
{
	unsigned int k;
	struct he_ep *ep = ep_by_vid(vid, &k);

	if (ep)
		he_log(INFO, "%s: frontend disconnected (vid %d, carrier %u)", ep->name, vid, k);
}

/*
 * The device's memory table (a copy in ds->mem, NULL on error) and rings:
 * 0 or -errno (logged).
 */
static int dev_collect(int vid, unsigned int k, struct he_ep *ep, struct he_dev_start *ds)
{
	uint16_t nr, q;

	ds->vid = vid;
	ds->carrier = k;
	nr = rte_vhost_get_vring_num(vid);
	if (nr < 2) {
		he_log(ERR, "%s: %u virtqueues, need a pair", ep->name, nr);
		return -EINVAL;
	}
	/* Pairs beyond queue_pairs, or carrier k's beyond its own, are not served. */
	ds->nr_vqs = RTE_MIN(nr, 2 * (ep->carriers > 1 ? 1 : ep->queue_pairs)) & ~1;
	if (rte_vhost_get_mem_table(vid, &ds->mem)) {
		he_log(ERR, "%s: no memory table", ep->name);
		ds->mem = NULL;
		return -EINVAL;
	}
	for (q = 0; q < ds->nr_vqs; q++) {
		struct rte_vhost_vring *vr = &ds->vr[q];

		if (rte_vhost_get_vhost_vring(vid, q, vr) ||
		    rte_vhost_get_vring_base(vid, q, &ds->last_avail[q], &ds->last_used[q]) ||
		    !vr->desc || !vr->avail || !vr->used) {
			he_log(ERR, "%s: virtqueue %u not set up", ep->name, q);
			goto fail;
		}
		if (!vr->size || (vr->size & (vr->size - 1))) {
			he_log(ERR, "%s: virtqueue %u size %u not a power of 2", ep->name, q,
			       vr->size);
			goto fail;
		}
	}
	return 0;
fail:
	free(ds->mem);
	ds->mem = NULL;
	return -EINVAL;
}

static int new_device(int vid)
{
	struct he_dev_start *ds;
	unsigned int k;
	struct he_ep *ep = ep_by_vid(vid, &k);
	int ret;

	if (!ep)
		return -1;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -1;
	ret = dev_collect(vid, k, ep, ds);
	if (!ret) {
		ret = he_dp_dev_start(ep, ds);
		if (ret) {
			he_log(ERR, "%s: device refused: %s", ep->name, strerror(-ret));
			free(ds->mem);
		}
	}
	free(ds);
	return ret ? -1 : 0;
}

static void destroy_device(int vid)
{
	uint16_t last_avail[2 * NK_MAX_QPAIRS], last_used[2 * NK_MAX_QPAIRS], nr, q;
	struct rte_vhost_memory *mem;
	unsigned int k;
	struct he_ep *ep = ep_by_vid(vid, &k);

	if (!ep)
		return;
	mem = he_dp_dev_stop(ep, vid, &nr, last_avail, last_used);
	for (q = 0; q < nr; q++)
		rte_vhost_set_vring_base(vid, q, last_avail[q], last_used[q]);
	free(mem);
}

static const struct rte_vhost_device_ops dev_ops = {
	.new_device = new_device,
	.destroy_device = destroy_device,
	.new_connection = new_connection,
	.destroy_connection = destroy_connection,
};

static int register_path(struct he_ep *ep, const char *path, unsigned int k)
{
	uint64_t pf;
	struct stat st;
	int err;

	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);
	if (rte_vhost_driver_register(path, 0))
		return -1;
	ep->registered |= 1U << k;
	if (rte_vhost_driver_set_features(path, HE_VIRTIO_FEATURES) ||
	    rte_vhost_driver_get_protocol_features(path, &pf))
		return -1;
	pf |= 1ULL << VHOST_USER_PROTOCOL_F_CONFIG;
	pf &= ~(1ULL << VHOST_USER_PROTOCOL_F_STATUS);
	if (rte_vhost_driver_set_protocol_features(path, pf) ||
	    rte_vhost_driver_callback_register(path, &dev_ops) ||
	    rte_vhost_driver_start(path))
		return -1;
	err = he_perm_apply(path, &cfg->sock_perm);
	if (err) {
		he_log(ERR, "%s: owner or mode of %s: %s", ep->name, path, strerror(-err));
		return -1;
	}
	return 0;
}

int he_vhost_add(struct he_ep *ep)
{
	char path[PATH_MAX];
	unsigned int k;

	for (k = 0; k < ep->carriers; k++) {
		he_carrier_path(ep, k, path, sizeof(path));
		if (register_path(ep, path, k)) {
			he_log(ERR, "%s: cannot serve vhost-user socket %s", ep->name, path);
			return -EIO;
		}
	}
	he_log(INFO, "%s: %s on %s%s", ep->name, ep->role == NK_ROLE_GUEST ? "guest" : "nsm",
	       ep->sock_path, ep->carriers > 1 ? " and its carriers" : "");
	return 0;
}

void he_vhost_remove(struct he_ep *ep)
{
	char path[PATH_MAX];
	unsigned int k;

	for (k = 0; k < ep->carriers; k++) {
		if (!(ep->registered & (1U << k)))
			continue;
		he_carrier_path(ep, k, path, sizeof(path));
		rte_vhost_driver_unregister(path);
		unlink(path);
	}
	ep->registered = 0;
}

int he_vhost_start(struct he_config *c)
{
	unsigned int i;

	cfg = c;
	for (i = 0; i < cfg->nr_eps; i++)
		if (he_vhost_add(cfg->eps[i]))
			return -EIO;
	return 0;
}

void he_vhost_stop(struct he_config *c)
{
	unsigned int i;

	for (i = 0; i < c->nr_eps; i++)
		he_vhost_remove(c->eps[i]);
}
