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
 * Locking: none.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <net/net_namespace.h>

#include "nk_guest.h"

bool nk_net_served(const struct net *net)
{
	return net_eq(net, &init_net);
}
