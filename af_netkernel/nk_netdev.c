// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's interface: while an nk device is bound, a net_device
 * "nk%d" in the initial network namespace (the one the device serves,
 * nk_net_served()) holds the addresses the engine gives the guest, so
 * that getifaddrs(), ip addr and SIOCGIFCONF show them on an interface
 * that is not loopback, as a NIC shows a native guest's.  Programs that
 * advertise their own address skip loopback interfaces.
 *
 * - The addresses: HELLO's reply lists them (NK_FEAT_ADDR), and so does
 *   every successful SOCKET reply (NK_FEAT_ANC), as the engine has them
 *   then: a live reload of the engine's configuration reaches the device
 *   with the next socket.  Each goes on the device as /32 or /128, so
 *   its local route goes through lo: the guest's own stack counts it as
 *   local (nk_addr_where()), and connecting to it takes the native half
 *   (nk_af.c, "Guest loopback").  IP_PKTINFO's interface index names
 *   this device for them (nk_anc_ifindex() finds the interface holding
 *   the address).
 *
 * - The device carries no traffic: ARPHRD_VOID and IFF_NOARP, so IPv6
 *   makes no link-local address, sends no router solicitation and runs
 *   no duplicate address detection; no queue; what the guest's stack
 *   would send through it (a route to it made by hand) is dropped and
 *   counted (tx_dropped).  It cannot move to another namespace.
 *
 * - The addresses go on and off through rtnetlink, as ip addr puts them:
 *   a NETLINK_ROUTE kernel socket sends RTM_NEWADDR and RTM_DELADDR and
 *   reads the acknowledgement (neither 6.1 nor 6.12 exports a function
 *   that adds an address).  The request names its destination (the
 *   kernel, port 0), so rtnetlink checks CAP_NET_ADMIN on the sender, a
 *   kworker, and not on a file the kernel socket does not have.
 *
 * - All of it happens in nk_netdev_work, which makes the device what the
 *   wanted state says: registered and up with these addresses while a
 *   device is bound (nk_netdev_attach() to nk_netdev_detach()), gone
 *   otherwise.  A session lost and made again within one run keeps the
 *   device.  Module unload removes it (nk_netdev_exit()).  netdev=0 (a
 *   module parameter, read at attach) makes none: the administrator puts
 *   the addresses where he wants them (on lo, say).
 *
 * Locking:
 *   nk_netdev_lock    the wanted state (nk_want, nk_want_addrs); taken by
 *                     attach, detach and SOCKET replies (process context);
 *                     innermost, held across nothing
 *   nk_netdev_mutex   the device and the addresses put on it (nk_ndev,
 *                     nk_have_addrs): held by nk_netdev_work and
 *                     nk_netdev_exit() while they register, open and
 *                     unregister the device (which take rtnl_lock) and
 *                     send their rtnetlink requests (whose handlers take
 *                     rtnl_lock): never taken under rtnl_lock
 * Order: nk_netdev_mutex -> rtnl_lock; nk_netdev_lock alone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/etherdevice.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/net_namespace.h>
#include <net/netlink.h>

#include "nk_guest.h"

static bool netdev = true;
module_param(netdev, bool, 0644);
MODULE_PARM_DESC(netdev,
		 "Put the guest's addresses on an interface nk0 while an nk device is bound (default 1; read when the device binds)");

#define NK_NADDR	2

static DEFINE_SPINLOCK(nk_netdev_lock);
static bool nk_want;				/* under nk_netdev_lock */
static struct nk_addr nk_want_addrs[NK_NADDR];	/* under nk_netdev_lock */
static u32 nk_want_n;				/* under nk_netdev_lock */

static DEFINE_MUTEX(nk_netdev_mutex);
static struct net_device *nk_ndev;		/* under nk_netdev_mutex */
static struct nk_addr nk_have_addrs[NK_NADDR];	/* under nk_netdev_mutex */
static u32 nk_have_n;				/* under nk_netdev_mutex */

static void nk_netdev_work_fn(struct work_struct *work);
static DECLARE_WORK(nk_netdev_work, nk_netdev_work_fn);

static netdev_tx_t nk_netdev_xmit(struct sk_buff *skb, struct net_device *dev)
{
	DEV_STATS_INC(dev, tx_dropped);
	dev_kfree_skb_any(skb);
	return NETDEV_TX_OK;
}

static const struct net_device_ops nk_netdev_ops = {
	.ndo_start_xmit = nk_netdev_xmit,
};

static void nk_netdev_setup(struct net_device *dev)
{
	dev->netdev_ops = &nk_netdev_ops;
	dev->type = ARPHRD_VOID;
	dev->flags = IFF_NOARP;
	dev->priv_flags |= IFF_NO_QUEUE;
	dev->hard_header_len = 0;
	dev->addr_len = 0;
	dev->mtu = ETH_DATA_LEN;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = ETH_MAX_MTU;
#ifdef NETIF_F_NETNS_LOCAL
	dev->features |= NETIF_F_NETNS_LOCAL;
#else
	dev->netns_immutable = true;
#endif
}

static bool nk_addr_same(const struct nk_addr *a, const struct nk_addr *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, sizeof(a->addr));
}

static bool nk_addr_in(const struct nk_addr *a, const struct nk_addr *set, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (nk_addr_same(a, &set[i]))
			return true;
	return false;
}

static void nk_nla_put(struct nlmsghdr *nh, int type, const void *data, int len)
{
	struct nlattr *nla = (void *)nh + NLMSG_ALIGN(nh->nlmsg_len);

	nla->nla_type = type;
	nla->nla_len = nla_attr_size(len);
	memcpy(nla_data(nla), data, len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + nla_total_size(len);
}

/*
 * RTM_NEWADDR or RTM_DELADDR (@type) of @a, /32 or /128, on the device
 * of @ifindex, through the kernel socket @nl.  Return: the
 * acknowledgement's error, or the socket's.
 */
static int nk_netdev_rtnl(struct socket *nl, int type, int ifindex,
			  const struct nk_addr *a)
{
	bool v4 = le16_to_cpu(a->family) == AF_INET;
	int alen = v4 ? 4 : 16;
	u8 buf[NLMSG_SPACE(sizeof(struct ifaddrmsg)) + 2 * NLA_ALIGN(NLA_HDRLEN + 16)];
	struct nlmsghdr *nh = (void *)buf;
	struct ifaddrmsg *ifa = nlmsg_data(nh);
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct msghdr msg = { .msg_name = &kernel, .msg_namelen = sizeof(kernel) };
	struct kvec iov;
	struct {
		struct nlmsghdr nh;
		struct nlmsgerr err;
		u8 request[sizeof(buf)];
	} ack;
	int err;

	memset(buf, 0, sizeof(buf));
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(*ifa));
	nh->nlmsg_type = type;
	nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	if (type == RTM_NEWADDR)
		nh->nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
	ifa->ifa_family = v4 ? AF_INET : AF_INET6;
	ifa->ifa_prefixlen = alen * 8;
	ifa->ifa_flags = v4 ? 0 : IFA_F_NODAD;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = ifindex;
	nk_nla_put(nh, IFA_LOCAL, a->addr, alen);
	nk_nla_put(nh, IFA_ADDRESS, a->addr, alen);

	iov.iov_base = buf;
	iov.iov_len = nh->nlmsg_len;
	err = kernel_sendmsg(nl, &msg, &iov, 1, iov.iov_len);
	if (err < 0)
		return err;
	/* rtnetlink answered before sendmsg() returned. */
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = &ack;
	iov.iov_len = sizeof(ack);
	err = kernel_recvmsg(nl, &msg, &iov, 1, iov.iov_len, MSG_DONTWAIT);
	if (err < 0)
		return err;
	if (err < (int)NLMSG_LENGTH(sizeof(ack.err)) || ack.nh.nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ack.err.error;
}

/* Make the device what the wanted state says.  Under nk_netdev_mutex. */
static void nk_netdev_sync(void)
{
	struct nk_addr want[NK_NADDR];
	struct socket *nl;
	bool up;
	u32 n, i;
	int err;

	spin_lock(&nk_netdev_lock);
	up = nk_want;
	n = nk_want_n;
	memcpy(want, nk_want_addrs, sizeof(want));
	spin_unlock(&nk_netdev_lock);

	if (!up) {
		if (nk_ndev) {
			unregister_netdev(nk_ndev);
			free_netdev(nk_ndev);
			nk_ndev = NULL;
			nk_have_n = 0;
		}
		return;
	}
	if (!nk_ndev) {
		struct net_device *dev;

		dev = alloc_netdev(0, "nk%d", NET_NAME_ENUM, nk_netdev_setup);
		if (!dev) {
			pr_err("no memory for the guest's interface\n");
			return;
		}
		dev_net_set(dev, &init_net);
		err = register_netdev(dev);
		if (err) {
			pr_err("cannot register the guest's interface: %d\n", err);
			free_netdev(dev);
			return;
		}
		rtnl_lock();
		err = dev_change_flags(dev, dev->flags | IFF_UP, NULL);
		rtnl_unlock();
		if (err)
			pr_err("cannot bring %s up: %d\n", dev->name, err);
		nk_ndev = dev;
		nk_have_n = 0;
	}

	err = sock_create_kern(&init_net, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, &nl);
	if (err) {
		pr_err("no rtnetlink socket for %s's addresses: %d\n",
		       nk_ndev->name, err);
		return;
	}
	/* Those no longer wanted off, then the others on. */
	for (i = 0; i < nk_have_n; i++) {
		if (nk_addr_in(&nk_have_addrs[i], want, n))
			continue;
		err = nk_netdev_rtnl(nl, RTM_DELADDR, nk_ndev->ifindex,
				     &nk_have_addrs[i]);
		/* Gone already (ip addr del): as good. */
		if (err && err != -EADDRNOTAVAIL && err != -ENOENT)
			pr_warn("%s: cannot remove an address: %d\n",
				nk_ndev->name, err);
	}
	for (i = 0; i < n; i++) {
		if (nk_addr_in(&want[i], nk_have_addrs, nk_have_n))
			continue;
		err = nk_netdev_rtnl(nl, RTM_NEWADDR, nk_ndev->ifindex, &want[i]);
		if (err) {
			pr_warn("%s: cannot add the %s address: %d\n", nk_ndev->name,
				le16_to_cpu(want[i].family) == AF_INET ? "IPv4" : "IPv6",
				err);
			/* Not on: the next change tries again. */
			memset(&want[i], 0, sizeof(want[i]));
		}
	}
	sock_release(nl);
	nk_have_n = 0;
	for (i = 0; i < n; i++)
		if (want[i].family)
			nk_have_addrs[nk_have_n++] = want[i];
}

static void nk_netdev_work_fn(struct work_struct *work)
{
	mutex_lock(&nk_netdev_mutex);
	nk_netdev_sync();
	mutex_unlock(&nk_netdev_mutex);
}

/*
 * Set the wanted state (with @if_up, only while the device is wanted);
 * the work makes it so when it changed.
 */
static void nk_netdev_want(bool up, const struct nk_addr *a, u32 n, bool if_up)
{
	bool changed;

	n = min_t(u32, n, NK_NADDR);
	spin_lock(&nk_netdev_lock);
	changed = (!if_up || nk_want) &&
		  (up != nk_want || n != nk_want_n ||
		   memcmp(a, nk_want_addrs, n * sizeof(*a)));
	if (changed) {
		nk_want = up;
		nk_want_n = n;
		memcpy(nk_want_addrs, a, n * sizeof(*a));
	}
	spin_unlock(&nk_netdev_lock);
	if (changed)
		schedule_work(&nk_netdev_work);
}

/* @nd is bound: the device, with the addresses HELLO's reply listed. */
void nk_netdev_attach(struct nk_dev *nd)
{
	const struct nk_addr *a;
	u32 n = nk_dev_addrs(nd, &a);

	if (READ_ONCE(netdev))
		nk_netdev_want(true, a, n, false);
}

/* No device is bound: no interface. */
void nk_netdev_detach(void)
{
	nk_netdev_want(false, NULL, 0, false);
}

/*
 * A SOCKET reply listed the guest's addresses (@n of @a, checked): they
 * are the ones now, should a reload have changed them.
 */
void nk_netdev_addrs(const struct nk_addr *a, u32 n)
{
	if (n)
		nk_netdev_want(true, a, n, true);
}

/* Module unload, after the transport detached: the device goes. */
void nk_netdev_exit(void)
{
	cancel_work_sync(&nk_netdev_work);
	nk_netdev_detach();
	cancel_work_sync(&nk_netdev_work);
	mutex_lock(&nk_netdev_mutex);
	nk_netdev_sync();
	mutex_unlock(&nk_netdev_mutex);
}
