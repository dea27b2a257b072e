// SPDX-License-Identifier: GPL-2.0
/*
 * Taking AF_INET and AF_INET6 over.
 *
 * The socket layer calls the create() of the struct net_proto_family
 * registered for a family.  At load, the kernel's inet_family_ops (and
 * inet6_family_ops) are replaced by families of this module whose create()
 * makes a NetKernel socket when it should (nk_takeover_create()), and calls
 * the kernel's own create() (inet_create, inet6_create) otherwise.  At
 * unload the kernel's own structures are registered again: a family
 * structure living in module memory must never stay registered, since
 * __sock_create() would use it after the module is gone.
 *
 * The kernel's structures are not exported.  kallsyms_lookup_name() finds
 * them (CONFIG_KALLSYMS_ALL=y in Debian's kernels); it is not exported
 * either, and a kprobe on it gives its address.  With IBT (Debian's 6.12
 * has CONFIG_X86_KERNEL_IBT=y) a kprobe sits after the function's ENDBR
 * instruction, so the address is moved back onto the ENDBR for the
 * indirect call to land on it; if the function's ENDBR was sealed at boot
 * and the CPU enforces IBT, an indirect call would fault, and the takeover
 * is refused instead.  inet_create() itself is never looked up: it is the
 * create() of the kernel's own family structure, a pointer the kernel
 * calls indirectly, so it is always a valid indirect call target.
 *
 * Sockets created while no nk device is ready, sockets created by the
 * kernel (kern=1), every type and protocol but TCP and UDP, sockets of a
 * network namespace the device does not serve, and sockets of a cgroup
 * with cgroup-BPF programs for inet sockets go to the kernel's create()
 * (the last two: see nk_policy.c), each counted per reason
 * (nk_fallback.c).  While the families are swapped
 * (module load and unload, a few microseconds), socket(AF_INET) fails
 * with EAFNOSUPPORT.
 *
 * getsockopt(SOL_SOCKET) never reaches a family: the kernel answers it
 * from struct sock, and SO_DOMAIN from sk_family, which is AF_NETKERNEL
 * so that no generic code mistakes an nk_sock for an inet_sock or a
 * tcp_sock (see nk_af.c).  So an ftrace hook on sk_getsockopt() (both
 * the system call and BPF's bpf_getsockopt() go through it) sends
 * SO_DOMAIN of an nk_sock to nk_so_domain(), which answers the family
 * socket() was asked for (nks->domain), as sk_getsockopt() answers an
 * int.  Every other option of a local socket (one only its native half
 * carries, see nk_af.c) is answered by sk_getsockopt() from that half's
 * struct sock (SO_ERROR, SO_RCVBUF, SO_ACCEPTCONN... as TCP has them);
 * every other call runs sk_getsockopt() untouched.  Without ftrace (the
 * hook cannot be installed: logged), SO_DOMAIN reports AF_NETKERNEL and a
 * local socket's SOL_SOCKET options come from the nk_sock.
 *
 * setsockopt(SOL_SOCKET) never reaches a family either (6.1 lets only
 * MPTCP have it): the kernel applies it to struct sock.  A socket with a
 * native half needs it on that half too, so a second hook, on
 * sock_setsockopt(), sends those calls to nk_sock_sol_setsockopt().
 *
 * Locking: none of its own.  Install and remove run from module init and
 * exit only; create() runs with the family referenced by __sock_create().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/sockptr.h>
#include <linux/uaccess.h>
#include <net/sock.h>
#ifdef CONFIG_X86_KERNEL_IBT
#include <asm/ibt.h>
#endif

#include "nk_guest.h"

static bool inet = true;
module_param(inet, bool, 0444);
MODULE_PARM_DESC(inet,
		 "Serve user-space AF_INET TCP and UDP sockets through NetKernel while an nk device is ready (default Y)");

static bool inet6 = true;
module_param(inet6, bool, 0444);
MODULE_PARM_DESC(inet6,
		 "Serve user-space AF_INET6 TCP and UDP sockets through NetKernel while an nk device is ready (default Y)");

struct nk_hook {
	int family;
	const char *symbol;
	const bool *enabled;
	const struct net_proto_family *kernel_ops;
	struct net_proto_family ops;
	bool installed;
};

static int nk_inet_create(struct net *net, struct socket *sock, int protocol,
			  int kern);
static int nk_inet6_create(struct net *net, struct socket *sock, int protocol,
			   int kern);

static struct nk_hook nk_hooks[] = {
	{
		.family = PF_INET,
		.symbol = "inet_family_ops",
		.enabled = &inet,
		.ops = {
			.family = PF_INET,
			.create = nk_inet_create,
			.owner = THIS_MODULE,
		},
	},
	{
		.family = PF_INET6,
		.symbol = "inet6_family_ops",
		.enabled = &inet6,
		.ops = {
			.family = PF_INET6,
			.create = nk_inet6_create,
			.owner = THIS_MODULE,
		},
	},
};

static int nk_takeover_create(struct nk_hook *hook, struct net *net,
			      struct socket *sock, int protocol, int kern)
{
	enum nk_fallback why = NK_FB_NODEV;
	struct nk_dev *nd;

	if (kern) {
		why = NK_FB_KERNEL;
	} else if (!nk_net_served(net)) {
		why = NK_FB_NETNS;
	} else if (nk_dev_bound() && nk_cgroup_bpf_current()) {
		why = NK_FB_CGROUP_BPF;
	} else if (nk_dev_bound()) {
		nd = nk_dev_get();
		if (nd && nk_sock_wanted(nd, hook->family, sock->type, protocol))
			return nk_sock_create(net, sock, protocol, hook->family,
					      nd);
		if (nd) {
			why = NK_FB_UNSUPPORTED;
			nk_dev_put(nd);
		}
	}
	nk_fallback_inc(why);
	return hook->kernel_ops->create(net, sock, protocol, kern);
}

static int nk_inet_create(struct net *net, struct socket *sock, int protocol,
			  int kern)
{
	return nk_takeover_create(&nk_hooks[0], net, sock, protocol, kern);
}

static int nk_inet6_create(struct net *net, struct socket *sock, int protocol,
			   int kern)
{
	return nk_takeover_create(&nk_hooks[1], net, sock, protocol, kern);
}

/* Make a kprobe address callable indirectly; 0 if it cannot be. */
unsigned long nk_call_target(unsigned long addr)
{
#ifdef CONFIG_X86_KERNEL_IBT
	u32 insn;

	if (copy_from_kernel_nofault(&insn, (void *)(addr - ENDBR_INSN_SIZE),
				     sizeof(insn)))
		return addr;
	if (insn == gen_endbr())
		return addr - ENDBR_INSN_SIZE;
	if (insn == gen_endbr_poison())
		return cpu_feature_enabled(X86_FEATURE_IBT) ?
		       0 : addr - ENDBR_INSN_SIZE;
#endif
	return addr;
}

nk_lookup_fn nk_find_lookup(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long addr;
	int err;

	err = register_kprobe(&kp);
	if (err) {
		pr_err("cannot find kallsyms_lookup_name with a kprobe: %d\n",
		       err);
		return NULL;
	}
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);

	addr = nk_call_target(addr);
	if (!addr)
		pr_err("kallsyms_lookup_name is sealed against indirect calls (IBT)\n");
	return (nk_lookup_fn)addr;
}

/* sk_getsockopt(SOL_SOCKET, SO_DOMAIN) of an nk_sock, as it answers an int. */
static int nk_so_domain(struct sock *sk, int level, int optname,
			sockptr_t optval, sockptr_t optlen)
{
	int v = nk_sk(sk)->domain;
	int len;

	if (copy_from_sockptr(&len, optlen, sizeof(int)))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	len = min_t(int, len, sizeof(v));
	if (copy_to_sockptr(optval, &v, len) ||
	    copy_to_sockptr(optlen, &len, sizeof(int)))
		return -EFAULT;
	return 0;
}

static void notrace nk_getsockopt_hook(unsigned long ip, unsigned long parent_ip,
				       struct ftrace_ops *op,
				       struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct sock *sk, *lsk;

	/* sk_getsockopt(sk, level, optname, optval, optlen) */
	if (!regs || (int)regs->si != SOL_SOCKET)
		return;
	sk = (struct sock *)regs->di;
	if (!sk || sk->sk_family != PF_NETKERNEL)
		return;
	if ((int)regs->dx == SO_DOMAIN) {
		regs->ip = (unsigned long)nk_so_domain;
		return;
	}
	/* A local socket's options live in its native half (nk_af.c). */
	lsk = nk_sock_local_sk(sk);
	if (lsk)
		regs->di = (unsigned long)lsk;
}

static struct ftrace_ops nk_getsockopt_ops = {
	.func = nk_getsockopt_hook,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
		 FTRACE_OPS_FL_RECURSION,
};

/*
 * sock_setsockopt(sock, level, optname, optval, optlen) of an nk_sock with
 * a native half goes to nk_sock_sol_setsockopt(), same arguments, which
 * calls sock_setsockopt() for each half: calls from this module pass.
 */
static void notrace nk_setsockopt_hook(unsigned long ip, unsigned long parent_ip,
				       struct ftrace_ops *op,
				       struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct socket *sock;

	if (!regs || within_module(parent_ip, THIS_MODULE))
		return;
	sock = (struct socket *)regs->di;
	if (sock && sock->sk && sock->sk->sk_family == PF_NETKERNEL &&
	    nk_sock_has_lower(sock->sk))
		regs->ip = (unsigned long)nk_sock_sol_setsockopt;
}

static struct ftrace_ops nk_setsockopt_ops = {
	.func = nk_setsockopt_hook,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
		 FTRACE_OPS_FL_RECURSION,
};

struct nk_fhook {
	struct ftrace_ops *ops;
	const char *symbol;
	const char *without;
	bool hooked;
};

static struct nk_fhook nk_fhooks[] = {
	{ &nk_getsockopt_ops, "sk_getsockopt",
	  "SO_DOMAIN reports AF_NETKERNEL" },
	{ &nk_setsockopt_ops, "sock_setsockopt",
	  "SOL_SOCKET options of a local socket stay off its native half" },
};

static void nk_sockopt_hooks_install(void)
{
	unsigned char name[32];
	struct nk_fhook *h;
	int i, err;

	for (i = 0; i < ARRAY_SIZE(nk_fhooks); i++) {
		h = &nk_fhooks[i];
		strscpy(name, h->symbol, sizeof(name));
		err = ftrace_set_filter(h->ops, name, strlen(name), 0);
		if (!err)
			err = register_ftrace_function(h->ops);
		if (err) {
			pr_warn("cannot hook %s (%d): %s\n", h->symbol, err,
				h->without);
			continue;
		}
		h->hooked = true;
	}
}

static void nk_sockopt_hooks_remove(void)
{
	struct nk_fhook *h;
	int i;

	for (i = 0; i < ARRAY_SIZE(nk_fhooks); i++) {
		h = &nk_fhooks[i];
		if (!h->hooked)
			continue;
		unregister_ftrace_function(h->ops);
		ftrace_free_filter(h->ops);
		h->hooked = false;
	}
}

static void nk_hook_remove(struct nk_hook *hook)
{
	int err;

	if (!hook->installed)
		return;
	sock_unregister(hook->family);
	err = sock_register(hook->kernel_ops);
	if (err)
		pr_crit("cannot give family %d back to the kernel: %d\n",
			hook->family, err);
	hook->installed = false;
}

static int nk_hook_install(struct nk_hook *hook)
{
	int err;

	sock_unregister(hook->family);
	err = sock_register(&hook->ops);
	if (err) {
		pr_err("cannot take family %d over: %d\n", hook->family, err);
		if (sock_register(hook->kernel_ops))
			pr_crit("cannot give family %d back to the kernel\n",
				hook->family);
		return err;
	}
	hook->installed = true;
	return 0;
}

int nk_takeover_init(void)
{
	nk_lookup_fn lookup;
	const struct net_proto_family *ops;
	struct nk_hook *hook;
	int i, err;

	if (!inet && !inet6)
		return 0;
	lookup = nk_find_lookup();
	if (!lookup)
		goto unavailable;

	for (i = 0; i < ARRAY_SIZE(nk_hooks); i++) {
		hook = &nk_hooks[i];
		if (!*hook->enabled)
			continue;
		ops = (const struct net_proto_family *)lookup(hook->symbol);
		if (!ops || ops->family != hook->family || !ops->create ||
		    ops->owner) {
			pr_err("%s not found or not the kernel's own\n",
			       hook->symbol);
			goto unavailable;
		}
		hook->kernel_ops = ops;
	}

	nk_sockopt_hooks_install();
	for (i = 0; i < ARRAY_SIZE(nk_hooks); i++) {
		if (!*nk_hooks[i].enabled)
			continue;
		err = nk_hook_install(&nk_hooks[i]);
		if (err) {
			nk_takeover_exit();
			return err;
		}
	}
	pr_info("serving user-space TCP and UDP sockets of%s%s while an nk device is ready\n",
		inet ? " AF_INET" : "", inet6 ? " AF_INET6" : "");
	return 0;

unavailable:
	pr_err("cannot take AF_INET/AF_INET6 over; load with inet=0 inet6=0 to use AF_NETKERNEL (%d) only\n",
	       PF_NETKERNEL);
	return -ENOENT;
}

void nk_takeover_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(nk_hooks) - 1; i >= 0; i--)
		nk_hook_remove(&nk_hooks[i]);
	nk_sockopt_hooks_remove();
}
