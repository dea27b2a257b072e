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
 * int; every other call runs sk_getsockopt() untouched.  Without ftrace
 * (the hook cannot be installed: logged), SO_DOMAIN reports AF_NETKERNEL.
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
	struct sock *sk;

	/* sk_getsockopt(sk, level, optname, optval, optlen) */
	if (!regs || (int)regs->si != SOL_SOCKET || (int)regs->dx != SO_DOMAIN)
		return;
	sk = (struct sock *)regs->di;
	if (sk && sk->sk_family == PF_NETKERNEL)
		regs->ip = (unsigned long)nk_so_domain;
}

static struct ftrace_ops nk_getsockopt_ops = {
	.func = nk_getsockopt_hook,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
		 FTRACE_OPS_FL_RECURSION,
};

static bool nk_getsockopt_hooked;

static void nk_getsockopt_hook_install(void)
{
	static unsigned char name[] = "sk_getsockopt";
	int err;

	err = ftrace_set_filter(&nk_getsockopt_ops, name, sizeof(name) - 1, 0);
	if (!err)
		err = register_ftrace_function(&nk_getsockopt_ops);
	if (err) {
		pr_warn("cannot hook sk_getsockopt (%d): SO_DOMAIN reports AF_NETKERNEL\n",
			err);
		return;
	}
	nk_getsockopt_hooked = true;
}

static void nk_getsockopt_hook_remove(void)
{
	if (!nk_getsockopt_hooked)
		return;
	unregister_ftrace_function(&nk_getsockopt_ops);
	ftrace_free_filter(&nk_getsockopt_ops);
	nk_getsockopt_hooked = false;
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

	nk_getsockopt_hook_install();
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
	nk_getsockopt_hook_remove();
}
