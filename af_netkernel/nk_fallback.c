// SPDX-License-Identifier: GPL-2.0
/*
 * Fallback counters: the AF_INET and AF_INET6 sockets nk_takeover.c hands
 * to the native stack, counted per reason (as SMC counts the connections
 * it leaves to TCP), since the module was loaded, for all network
 * namespaces together.  Each reason is one file of
 * /sys/module/af_netkernel/fallback/, holding a decimal count:
 *
 *   kernel       created by the kernel (kern=1: NFS, iSCSI, tunnels...),
 *                but for the native halves of NetKernel sockets (nk_af.c)
 *   netns        created in a network namespace the nk device does not
 *                serve (nk_policy.c)
 *   nodev        no nk device bound and ready
 *   cgroup_bpf   the creator's cgroup has cgroup-BPF programs for inet
 *                sockets (nk_policy.c)
 *   unsupported  a type or protocol NetKernel does not serve (raw, SCTP,
 *                SOCK_SEQPACKET...), or a family or UDP the NSM did not
 *                offer (NK_FEAT_INET6, NK_FEAT_DGRAM)
 *
 * The reasons are tested in that order; a socket counts once, under the
 * first that applies.  Documentation/netkernel/architecture.rst describes
 * them.
 *
 * Locking: none; the counters are atomic.  The sysfs directory lives from
 * module init to exit.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/module.h>
#include <linux/sysfs.h>

#include "nk_guest.h"

static atomic_long_t nk_fallbacks[NK_FB_MAX];

void nk_fallback_inc(enum nk_fallback why)
{
	atomic_long_inc(&nk_fallbacks[why]);
}

/* Take back a count: the socket was made by this module (nk_af.c). */
void nk_fallback_uncount(enum nk_fallback why)
{
	atomic_long_dec(&nk_fallbacks[why]);
}

/*
 * Attributes of the module's kobject are struct module_attribute: its
 * sysfs_ops (module_sysfs_ops) call them so.
 */
static struct module_attribute nk_fallback_attrs[NK_FB_MAX];

static ssize_t nk_fallback_show(struct module_attribute *attr,
				struct module_kobject *mk, char *buf)
{
	return sysfs_emit(buf, "%ld\n",
			  atomic_long_read(&nk_fallbacks[attr - nk_fallback_attrs]));
}

static struct module_attribute nk_fallback_attrs[NK_FB_MAX] = {
	[NK_FB_KERNEL] = __ATTR(kernel, 0444, nk_fallback_show, NULL),
	[NK_FB_NETNS] = __ATTR(netns, 0444, nk_fallback_show, NULL),
	[NK_FB_NODEV] = __ATTR(nodev, 0444, nk_fallback_show, NULL),
	[NK_FB_CGROUP_BPF] = __ATTR(cgroup_bpf, 0444, nk_fallback_show, NULL),
	[NK_FB_UNSUPPORTED] = __ATTR(unsupported, 0444, nk_fallback_show,
				     NULL),
};

static struct attribute *nk_fallback_attr_list[NK_FB_MAX + 1] = {
	&nk_fallback_attrs[NK_FB_KERNEL].attr,
	&nk_fallback_attrs[NK_FB_NETNS].attr,
	&nk_fallback_attrs[NK_FB_NODEV].attr,
	&nk_fallback_attrs[NK_FB_CGROUP_BPF].attr,
	&nk_fallback_attrs[NK_FB_UNSUPPORTED].attr,
};

static const struct attribute_group nk_fallback_group = {
	.name = "fallback",
	.attrs = nk_fallback_attr_list,
};

int nk_fallback_init(void)
{
	return sysfs_create_group(&THIS_MODULE->mkobj.kobj, &nk_fallback_group);
}

void nk_fallback_exit(void)
{
	sysfs_remove_group(&THIS_MODULE->mkobj.kobj, &nk_fallback_group);
}
