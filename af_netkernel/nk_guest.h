/* SPDX-License-Identifier: GPL-2.0 */
/*
 * af_netkernel.ko internals shared by its files.  See nk_af.c for the
 * implementation notes and the locking rules.
 */
#ifndef _NK_GUEST_H
#define _NK_GUEST_H

#include <linux/inet_diag.h>
#include <linux/spinlock.h>
#include <net/sock.h>

#include "../lib/nk_sockid.h"
#include "../lib/nk_transport.h"

/*
 * AF_NETKERNEL takes the number of AF_ECONET, whose implementation was
 * removed in Linux 3.5; no code in 6.1 or 6.12 registers it.
 */
#define AF_NETKERNEL	AF_ECONET
#define PF_NETKERNEL	AF_NETKERNEL

/* Ports a bind() of both halves tries (nk_dual_bind()). */
#define NK_BIND_TRIES	4
/* Native halves a socket may hold: its own and the ones bind() replaced. */
#define NK_LOWER_MAX	NK_BIND_TRIES

/* SOL_SOCKET option values last forwarded to the NSM (nk_sock_sync_opts()). */
struct nk_sol_opts {
	int reuseaddr;
	int reuseport;
	int keepalive;
	int oobinline;
	int broadcast;
	int dontroute;
	int sndbuf;
	int rcvbuf;
	struct linger linger;
};

/**
 * struct nk_sock - a NetKernel socket
 * @sk: the socket; first, as sk_alloc() with nk_proto expects
 * @nd: the device the socket lives on (referenced)
 * @id: socket id on the nk link, a key of nk_socks
 * @family: AF_INET or AF_INET6: the family the application and the NSM see
 * @domain: the family socket() was asked for (SO_DOMAIN): @family for a
 *          socket taken over, AF_NETKERNEL for socket(AF_NETKERNEL)
 * @created: the NSM has the socket (SOCKET or ACCEPT succeeded); a socket
 *           made by socket() gets it on its first need (nk_sock_nsm())
 * @sock_flags: NK_SOCK_* of its SOCKET request (to make it again)
 * @backlog: listen()'s backlog (to listen again)
 * @local: cached local address (family 0 while unknown)
 * @src: the guest's source addresses, as the engine's SOCKET reply listed
 *       them (NK_FEAT_ANC): the ones sendmsg()'s IP_PKTINFO may name
 * @nsrc: how many of @src there are (0: the engine did not say)
 * @peer: remote address of a connected socket (family 0 while unknown)
 * @sol_sent: SOL_SOCKET options as the NSM has them
 * @rx_seq: a stream socket's sequence number (see rx.rx_cnt) of the next
 *          byte to read; readers move it, under lock_sock
 * @lock: protects the fields below and sk_state/sk_shutdown transitions,
 *        shared with the event handlers
 * @tx: credit of the guest-to-world direction
 * @rx: credit of the world-to-guest direction
 * @bytes_sent: payload bytes sent
 * @bytes_rcvd: payload bytes received
 * @accept_pending: connections the NSM said wait in the accept queue
 * @accept_seq: EV_ACCEPT events seen
 * @urg_state: NK_URG_*: a stream's urgent data (EV_URG), as TCP's urg_data
 * @urg_byte: the urgent byte, while @urg_state is not NK_URG_NONE
 * @urg_mark: the sequence number (as @rx_seq) of its place in the stream
 * @reset: the socket is gone on the NSM side (EV_RESET or device removal)
 * @revive: a UDP socket or a listener whose NSM side the engine reset: it
 *          is made again on whichever NSM serves next (nk_revive_work)
 * @lower: the native half: a kernel socket of the same family, type and
 *         protocol in the guest's own stack (NULL for a connection
 *         accepted from the NSM); set before the socket is published,
 *         replaced (nk_lower_renew()) and cleared (nk_release()) under
 *         lock_sock and nks->lock, released only by nk_release()
 * @lower_spent: native halves bound to a port the NSM refused, replaced
 *               (nk_lower_renew()); as @lower
 * @path: NK_PATH_*: which half carries the traffic; changes only under
 *        lock_sock, from BOTH to NSM or LOCAL, never back
 * @lower_urg: the native half's urgent byte at @lower_urg_seq was
 *             signalled (SIGURG, nk_lower_data_ready()); under the native
 *             socket's lock
 */
struct nk_sock {
	struct sock sk;
	struct nk_dev *nd;
	u32 id;
	int family;
	int domain;
	bool created;
	u64 sock_flags;
	int backlog;
	struct nk_addr local;
	struct nk_addr src[2];
	u8 nsrc;
	struct nk_addr peer;
	struct nk_sol_opts sol_sent;
	u32 rx_seq;

	spinlock_t lock;
	struct nk_credit_tx tx;
	struct nk_credit_rx rx;
	u64 bytes_sent;
	u64 bytes_rcvd;
	u32 accept_pending;
	u32 accept_seq;
	u8 urg_state;
	u8 urg_byte;
	u32 urg_mark;
	bool reset;
	bool revive;
	/* A SOCKET or ACCEPT given up after it left (see nk_sock_abandon()) */
	u64 orphan_req;		/* its req_id, while its reply is awaited */
	u64 late_req;		/* a reply that came while the call gave up */
	int late_status;	/* and its status */
	u64 nsm_req;		/* a SOCKET of nk_sock_nsm() given up (lock_sock) */
	struct list_head orphan_node;	/* on nk_orphans_close */
	struct socket *lower;
	struct socket *lower_spent[NK_BIND_TRIES - 1];
	u8 path;
	bool lower_urg;
	u32 lower_urg_seq;
};

/* nk_sock.urg_state: TCP's urg_data without TCP_URG_NOTYET (never sent). */
enum {
	NK_URG_NONE,	/* no urgent data, or reads went past its mark */
	NK_URG_VALID,	/* the byte arrived and recv(MSG_OOB) did not take it */
	NK_URG_READ,	/* recv(MSG_OOB) took it; reads still stop at the mark */
};

/* Which half of an nk_sock carries its traffic (see nk_af.c's notes). */
enum {
	NK_PATH_NSM,	/* the NSM only: a remote peer */
	NK_PATH_BOTH,	/* not yet decided: both halves, on the same port */
	NK_PATH_LOCAL,	/* the guest's own stack only: a local peer */
};

static inline struct nk_sock *nk_sk(const struct sock *sk)
{
	return container_of(sk, struct nk_sock, sk);
}

/*
 * All NetKernel sockets by id (1..INT_MAX); the table lock nests outside
 * nk_sock.lock.  A published socket is alive while the lock is held.
 */
extern struct nk_sockid_table nk_socks;

/* nk_af.c */
int nk_sock_create(struct net *net, struct socket *sock, int protocol,
		   int family, struct nk_dev *nd);
bool nk_sock_wanted(struct nk_dev *nd, int family, int type, int protocol);
int nk_sock_getsockopt(struct nk_sock *nks, int level, int optname,
		       void *buf, u32 *len, unsigned int timeout_ms);
struct sock *nk_sock_local_sk(struct sock *sk);
bool nk_sock_has_lower(const struct sock *sk);
int nk_sock_sol_setsockopt(struct socket *sock, int level, int optname,
			   sockptr_t optval, unsigned int optlen);
const char *nk_sock_path_name(const struct nk_sock *nks);
unsigned int nk_sock_lower_inodes(struct nk_sock *nks, unsigned long *ino);
void nk_sock_local_proc(struct nk_sock *nks, int *state, struct nk_addr *local,
			struct nk_addr *peer);

/* nk_policy.c */
enum nk_bpf_op {
	NK_BPF_BIND,
	NK_BPF_CONNECT,
	NK_BPF_SEND,		/* stream data */
	NK_BPF_SENDTO,		/* a datagram, with or without an address */
};

bool nk_net_served(const struct net *net);
bool nk_bind_port_allowed(struct sock *sk, const struct nk_addr *na);
bool nk_cgroup_bpf_current(void);
int nk_cgroup_bpf_check(struct sock *sk, int family, enum nk_bpf_op op);

/* nk_takeover.c */
int nk_takeover_init(void);
void nk_takeover_exit(void);
typedef unsigned long (*nk_lookup_fn)(const char *name);	/* kallsyms */
unsigned long nk_call_target(unsigned long addr);
nk_lookup_fn nk_find_lookup(void);

/* nk_diag.c: a NetKernel socket as inet_diag and /proc/net/tcp show it */
struct nk_diag_rec {
	struct inet_diag_msg msg;
	u8 shutdown;
	int drops;
};

/* The inodes of native halves, sorted (nk_diag_lower_get()). */
struct nk_diag_lower {
	unsigned long *ino;
	unsigned int n;
};

bool nk_diag_sock(struct nk_sock *nks, int type, int family, u32 states,
		  struct user_namespace *user_ns, struct nk_diag_rec *rec);
void nk_diag_lower_get(struct net *net, struct nk_diag_lower *set);
bool nk_diag_lower_has(const struct nk_diag_lower *set, unsigned long ino);
void nk_diag_lower_put(struct nk_diag_lower *set);
void nk_diag_init(void);
void nk_diag_exit(void);

/* nk_procinet.c */
void nk_procinet_init(void);
void nk_procinet_exit(void);

/* nk_fallback.c: why a socket was left to the native stack */
enum nk_fallback {
	NK_FB_KERNEL,
	NK_FB_NETNS,
	NK_FB_NODEV,
	NK_FB_CGROUP_BPF,
	NK_FB_UNSUPPORTED,
	NK_FB_MAX
};

void nk_fallback_inc(enum nk_fallback why);
void nk_fallback_uncount(enum nk_fallback why);
int nk_fallback_init(void);
void nk_fallback_exit(void);

/* nk_proc.c */
/* nk_netdev.c: the guest's interface and its addresses */
void nk_netdev_attach(struct nk_dev *nd);
void nk_netdev_detach(void);
void nk_netdev_addrs(const struct nk_addr *a, u32 n);
void nk_netdev_exit(void);

int nk_proc_init(void);
void nk_proc_exit(void);

#endif /* _NK_GUEST_H */
