// SPDX-License-Identifier: GPL-2.0
/*
 * Which sockets NetKernel may serve, and the checks of the native inet
 * stack that must apply to NetKernel sockets as well.
 *
 * - Network namespaces.  The nk device serves the namespace it was
 *   attached in, init_net (it is probed by the kernel, never moved).  A
 *   socket created in any other namespace (a container, a service with
 *   PrivateNetwork=) is a native socket of that namespace:
 *   nk_takeover_create() hands it to inet_create()/inet6_create(), and
 *   socket(AF_NETKERNEL) fails there with EAFNOSUPPORT.  A socket keeps the
 *   namespace it was created in, as a native one does (setns() after
 *   socket() changes nothing).
 *
 * - Privileged ports.  bind() to a port below the namespace's
 *   net.ipv4.ip_unprivileged_port_start without CAP_NET_BIND_SERVICE in
 *   the user namespace owning the socket's network namespace fails with
 *   EACCES, the test of __inet_bind() and __inet6_bind()
 *   (nk_bind_port_allowed()).  Native Linux checks no implicit bind (an
 *   ephemeral port on connect() or sendto()), nor does NetKernel.
 *
 * Locking: none.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <net/ip.h>
#include <net/net_namespace.h>

#include "nk_guest.h"

bool nk_net_served(const struct net *net)
{
	return net_eq(net, &init_net);
}

bool nk_bind_port_allowed(struct sock *sk, const struct nk_addr *na)
{
	struct net *net = sock_net(sk);
	unsigned short port = ntohs(na->port);

	return !port || !inet_port_requires_bind_service(net, port) ||
	       ns_capable(net->user_ns, CAP_NET_BIND_SERVICE);
}
