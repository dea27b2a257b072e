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
 * - cgroup-BPF.  The native stack runs a cgroup's programs from
 *   af_inet.c, af_inet6.c, tcp and udp: sock_create/sock_release,
 *   bind/post_bind, connect, UDP sendmsg/recvmsg, getpeername/getsockname,
 *   skb ingress/egress and sock_ops.  A NetKernel socket can run none of
 *   them.  The runners are exported (__cgroup_bpf_run_filter_sk() and
 *   __cgroup_bpf_run_filter_sock_addr() in 6.1 and 6.12), but
 *   __cgroup_bpf_run_filter_sock_addr() returns 0 at once for a socket
 *   whose sk_family is neither AF_INET nor AF_INET6, and a NetKernel
 *   socket's is AF_NETKERNEL (see nk_af.c).  Giving a program an nk_sock
 *   with sk_family AF_INET, even for the duration of the run, would let
 *   its helpers take the socket for a tcp_sock or an inet_sock
 *   (bpf_skc_to_tcp_sock() checks only sk_protocol; bpf_setsockopt() at
 *   SOL_IP the family): reads and writes beyond struct nk_sock.  And
 *   there are no skbs for ingress/egress programs and no TCP events for
 *   sock_ops ones.  So a socket whose cgroup has any such program in
 *   effect when it is created (cgroup_bpf_enabled() and the cgroup's
 *   effective arrays, as cgroup_bpf_sock_enabled() reads them) is a
 *   native socket, on which every program runs as usual; AF_NETKERNEL
 *   fails with EPERM there.  A program attached after a NetKernel socket
 *   was created cannot run on it either: bind(), connect() and sendmsg()
 *   of such a socket then fail with EPERM (fail closed, logged), where
 *   the bind, connect, UDP sendmsg or egress program of the socket's
 *   family (both families for an AF_INET6 socket, which may use
 *   v4-mapped addresses) is in effect; an ingress, recvmsg, getname or
 *   sock_ops program attached later is not enforced on it.
 *   setsockopt and getsockopt programs are the other way round:
 *   net/socket.c runs them for every family, before the family's own
 *   setsockopt/getsockopt, so they do run on NetKernel sockets and are
 *   given an AF_NETKERNEL socket whose sk_protocol is IPPROTO_TCP, which
 *   bpf_tcp_sock() (it checks the protocol only) takes for a tcp_sock:
 *   the program reads beyond struct nk_sock.  A socket created in a cgroup
 *   with such a program is native too; one attached later runs on the
 *   NetKernel sockets already there, and a module cannot stop it (it
 *   needs CAP_BPF or CAP_SYS_ADMIN to load).
 *
 * - LSMs.  net/socket.c calls the security_socket_* hooks (create,
 *   post_create, bind, connect, listen, accept, sendmsg, recvmsg,
 *   getsockname, getpeername, setsockopt, getsockopt, shutdown) for every
 *   family, so they run for NetKernel sockets; create and post_create get
 *   the family asked for (AF_INET/AF_INET6), the others find sk_family
 *   AF_NETKERNEL.  SELinux therefore labels the socket tcp_socket or
 *   udp_socket and checks its create, bind, connect, listen, accept,
 *   send and receive permissions, and name_connect (it keys on the
 *   class), but not name_bind and node_bind (keyed on sk_family) nor any
 *   peer or packet check (no skb crosses this guest's stack).  AppArmor
 *   checks socket creation against the rules of the family asked for and
 *   every later operation against those of family 19 (econet): a profile
 *   allowing "network inet" but not econet lets the socket be created and
 *   then denies its bind, connect, sendmsg...  Netfilter and the other
 *   packet hooks apply in the NSM, not here.
 *
 * Locking: none of its own.  The cgroup pointers are read under RCU.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bpf-cgroup.h>
#include <linux/capability.h>
#include <linux/cgroup.h>
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

#ifdef CONFIG_CGROUP_BPF

#define NK_ATYPE(t)	BIT_ULL(t)

/*
 * The programs the native stack runs for @op on a socket of @family; an
 * AF_INET6 socket gets the AF_INET ones too (v4-mapped addresses).
 */
static u64 nk_bpf_types(int family, enum nk_bpf_op op)
{
	bool v6 = family == AF_INET6;

	switch (op) {
	case NK_BPF_BIND:
		return NK_ATYPE(CGROUP_INET4_BIND) |
		       NK_ATYPE(CGROUP_INET4_POST_BIND) |
		       (v6 ? NK_ATYPE(CGROUP_INET6_BIND) |
			     NK_ATYPE(CGROUP_INET6_POST_BIND) : 0);
	case NK_BPF_CONNECT:
		return NK_ATYPE(CGROUP_INET4_CONNECT) |
		       (v6 ? NK_ATYPE(CGROUP_INET6_CONNECT) : 0);
	case NK_BPF_SEND:
		return NK_ATYPE(CGROUP_INET_EGRESS);
	case NK_BPF_SENDTO:
		return NK_ATYPE(CGROUP_INET_EGRESS) |
		       NK_ATYPE(CGROUP_UDP4_SENDMSG) |
		       (v6 ? NK_ATYPE(CGROUP_UDP6_SENDMSG) : 0);
	}
	return 0;
}

/* Every program that can run on an inet socket in its life. */
static u64 nk_bpf_all_types(void)
{
	return nk_bpf_types(AF_INET6, NK_BPF_BIND) |
	       nk_bpf_types(AF_INET6, NK_BPF_CONNECT) |
	       nk_bpf_types(AF_INET6, NK_BPF_SENDTO) |
	       NK_ATYPE(CGROUP_INET_INGRESS) |
	       NK_ATYPE(CGROUP_INET_SOCK_CREATE) |
	       NK_ATYPE(CGROUP_INET_SOCK_RELEASE) |
	       NK_ATYPE(CGROUP_SOCK_OPS) |
	       NK_ATYPE(CGROUP_UDP4_RECVMSG) | NK_ATYPE(CGROUP_UDP6_RECVMSG) |
	       NK_ATYPE(CGROUP_INET4_GETPEERNAME) |
	       NK_ATYPE(CGROUP_INET6_GETPEERNAME) |
	       NK_ATYPE(CGROUP_INET4_GETSOCKNAME) |
	       NK_ATYPE(CGROUP_INET6_GETSOCKNAME) |
	       NK_ATYPE(CGROUP_SETSOCKOPT) | NK_ATYPE(CGROUP_GETSOCKOPT);
}

/* Whether @cgrp has a program of one of @types in effect.  Under RCU. */
static bool nk_cgroup_has_bpf(struct cgroup *cgrp, u64 types)
{
	struct bpf_prog_array *array;
	int t;

	BUILD_BUG_ON(MAX_CGROUP_BPF_ATTACH_TYPE > 64);
	for (t = 0; t < MAX_CGROUP_BPF_ATTACH_TYPE; t++) {
		if (!(types & NK_ATYPE(t)) ||
		    !static_key_enabled(&cgroup_bpf_enabled_key[t]))
			continue;
		array = rcu_access_pointer(cgrp->bpf.effective[t]);
		if (array != &bpf_empty_prog_array.hdr)
			return true;
	}
	return false;
}

bool nk_cgroup_bpf_current(void)
{
	bool ret;

	rcu_read_lock();
	ret = nk_cgroup_has_bpf(task_dfl_cgroup(current), nk_bpf_all_types());
	rcu_read_unlock();
	return ret;
}

int nk_cgroup_bpf_check(struct sock *sk, int family, enum nk_bpf_op op)
{
	bool ret;

	rcu_read_lock();
	ret = nk_cgroup_has_bpf(sock_cgroup_ptr(&sk->sk_cgrp_data),
				nk_bpf_types(family, op));
	rcu_read_unlock();
	if (!ret)
		return 0;
	pr_warn_ratelimited("%s (pid %d): refused with EPERM: a cgroup-BPF program attached after the NetKernel socket was created cannot run on it\n",
			    current->comm, task_pid_nr(current));
	return -EPERM;
}

#else

bool nk_cgroup_bpf_current(void)
{
	return false;
}

int nk_cgroup_bpf_check(struct sock *sk, int family, enum nk_bpf_op op)
{
	return 0;
}

#endif /* CONFIG_CGROUP_BPF */
