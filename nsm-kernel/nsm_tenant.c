// SPDX-License-Identifier: GPL-2.0
/*
 * Tenants: the network namespace each guest's kernel sockets are made in.
 *
 * By default every guest's sockets live in the NSM's namespace (the one of
 * module parameter netns_pid, else the initial one).  The NSM's operator
 * gives a guest a namespace of its own by writing the guest's endpoint id
 * into /proc/net/nsm_tenants from inside that namespace:
 *
 *   ip netns exec tenant1 sh -c 'echo 3 > /proc/net/nsm_tenants'
 *   ip netns exec tenant1 sh -c 'echo -3 > /proc/net/nsm_tenants'
 *
 * Reading the file lists the guests given to the reader's namespace.  A
 * guest is given to at most one namespace (-EBUSY while it is given to
 * another); writing needs CAP_NET_ADMIN in the initial user namespace,
 * since the table is the whole NSM's policy, not the namespace's.
 *
 * The table (guest id -> struct net) holds no reference: a namespace that
 * goes away takes its guests out of the table (pre_exit, before the
 * namespace can be freed).  Each kernel socket holds a reference to the
 * namespace it was made in (nsm_sock.net), since kernel sockets do not;
 * so a namespace deleted by name lives on until its guests' sockets are
 * closed.  A guest's new sockets go to the namespace given to it when the
 * SOCKET arrives: sockets it already has stay where they were made.  A
 * guest given to a namespace that is going away gets -ENETDOWN, never the
 * NSM's own namespace instead.
 *
 * Locking: nsm_tenant_lock (mutex) serialises the table's changes and its
 * listing; it takes nothing else.  SOCKET's lookup, from every shard at
 * once, takes no lock: it reads the table under rcu_read_lock() and takes
 * a reference with maybe_get_net().  That is safe because a namespace
 * leaves the table in pre_exit and the kernel frees it only after an RCU
 * grace period that follows every pre_exit (cleanup_net()), so a lookup
 * that found it reads live memory, and maybe_get_net() fails once its
 * count reached zero.
 * nsm_tenant_is() reads without the mutex too (xa_load() under RCU) and
 * compares pointers only, taking no reference.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/seq_file_net.h>
#include <linux/xarray.h>
#include <net/net_namespace.h>

#include "nsm.h"

#define NSM_TENANTS_FILE "nsm_tenants"

static DEFINE_MUTEX(nsm_tenant_lock);
static DEFINE_XARRAY(nsm_tenants);

/**
 * nsm_tenant_net() - the namespace a new kernel socket of guest @id goes to
 * @id: the guest's endpoint id
 * @dflt: the NSM's namespace, for a guest that was given none
 *
 * Return: a referenced namespace (put_net() it), or ERR_PTR(-ENETDOWN)
 * when the guest's namespace is going away.
 */
struct net *nsm_tenant_net(u32 id, struct net *dflt)
{
	struct net *net;

	rcu_read_lock();
	net = xa_load(&nsm_tenants, id);
	if (!net)
		net = get_net(dflt);
	else if (!maybe_get_net(net))
		net = ERR_PTR(-ENETDOWN);
	rcu_read_unlock();
	return net;
}

/**
 * nsm_tenant_is() - whether guest @id's new sockets go to namespace @net
 * @id: the guest's endpoint id
 * @net: a namespace the caller holds a reference to
 * @dflt: the NSM's namespace, for a guest that was given none
 *
 * For a destination that is another guest's (NK_F_PEER): only one in the
 * sender's own namespace is let through.  Without a lock: the answer may
 * be stale by the time it is used, as a SOCKET's namespace may be.
 */
bool nsm_tenant_is(u32 id, struct net *net, struct net *dflt)
{
	struct net *t = xa_load(&nsm_tenants, id);

	return (t ?: dflt) == net;
}

static int nsm_tenants_show(struct seq_file *m, void *v)
{
	struct net *net = seq_file_single_net(m);
	unsigned long id;
	struct net *t;

	mutex_lock(&nsm_tenant_lock);
	xa_for_each(&nsm_tenants, id, t)
		if (t == net)
			seq_printf(m, "%lu\n", id);
	mutex_unlock(&nsm_tenant_lock);
	return 0;
}

/* "ID" gives guest ID to the writer's namespace, "-ID" takes it back. */
static int nsm_tenants_write(struct file *file, char *buf, size_t size)
{
	struct net *net = seq_file_single_net(file->private_data);
	bool del = buf[0] == '-';
	struct net *t;
	u32 id;
	int err;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	err = kstrtou32(strim(buf) + del, 10, &id);
	if (err)
		return err;
	if (!id || id >= NSM_GUEST_ID_MAX)
		return -EINVAL;

	mutex_lock(&nsm_tenant_lock);
	t = xa_load(&nsm_tenants, id);
	if (del)
		err = t == net ? 0 : -ENOENT;
	else if (t)
		err = t == net ? 0 : -EBUSY;
	if (!err && del)
		xa_erase(&nsm_tenants, id);
	else if (!err && !t)
		err = xa_err(xa_store(&nsm_tenants, id, net, GFP_KERNEL));
	mutex_unlock(&nsm_tenant_lock);
	if (!err)
		pr_info("guest %u: %s network namespace %u\n", id,
			del ? "leaves" : "given", net->ns.inum);
	return err;
}

static int __net_init nsm_tenant_net_init(struct net *net)
{
	if (!proc_create_net_single_write(NSM_TENANTS_FILE, 0600, net->proc_net,
					  nsm_tenants_show, nsm_tenants_write,
					  NULL))
		return -ENOMEM;
	return 0;
}

/* Before the namespace can be freed: its guests leave the table. */
static void __net_exit nsm_tenant_net_pre_exit(struct net *net)
{
	unsigned long id;
	struct net *t;

	mutex_lock(&nsm_tenant_lock);
	xa_for_each(&nsm_tenants, id, t)
		if (t == net)
			xa_erase(&nsm_tenants, id);
	mutex_unlock(&nsm_tenant_lock);
}

static void __net_exit nsm_tenant_net_exit(struct net *net)
{
	remove_proc_entry(NSM_TENANTS_FILE, net->proc_net);
}

static struct pernet_operations nsm_tenant_net_ops = {
	.init = nsm_tenant_net_init,
	.pre_exit = nsm_tenant_net_pre_exit,
	.exit = nsm_tenant_net_exit,
};

int nsm_tenant_init(void)
{
	return register_pernet_subsys(&nsm_tenant_net_ops);
}

void nsm_tenant_exit(void)
{
	unregister_pernet_subsys(&nsm_tenant_net_ops);
	xa_destroy(&nsm_tenants);
}
