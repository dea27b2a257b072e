// SPDX-License-Identifier: GPL-2.0
/*
 * NetKernel guest sockets: AF_NETKERNEL, and the AF_INET/AF_INET6 TCP and
 * UDP sockets taken over by nk_takeover.c, served by a network stack module
 * (NSM) in another VM through the nk device.
 *
 * Implementation notes:
 *
 * - Every socket operation becomes a request on the nk device (see
 *   include/netkernel/nk_proto.h).  The NSM never blocks on a request:
 *   ACCEPT answers -EAGAIN when no connection waits, CONNECT -EINPROGRESS.
 *   Blocking is done here, on the socket's wait queue, until the event the
 *   operation needs arrives (EV_ACCEPT, EV_CONNECTED/EV_ERROR, EV_DATA,
 *   credit), so signals, SO_RCVTIMEO/SO_SNDTIMEO and O_NONBLOCK behave as on
 *   a local socket.
 *
 * - Received data is pushed by the NSM (EV_DATA) within the credit this
 *   socket announced, and queued as skbs on sk_receive_queue: recv(),
 *   MSG_PEEK, FIONREAD and poll() are served locally.  The credit announced
 *   (buf_alloc) is sk_rcvbuf at the time, clamped to NK_SOCK_WINDOW_MAX,
 *   as far as the window budget allows, and never shrinks.  Consumption is
 *   announced (CREDIT, or any request carrying NK_F_CREDIT) once the free
 *   space the NSM believes in falls below half the buffer, and always
 *   before recv() sleeps.  A message announces only once it is on the
 *   ring (nk_credit_rx_queued()): one dropped before (a signal, no ring
 *   space, a bad user buffer) leaves its consumption to announce.  A
 *   stream socket without SO_RCVBUF autotunes it as native TCP does: when
 *   its reader has taken everything and waits while the NSM had used all
 *   its credit, the window was the limit, and buf_alloc (and sk_rcvbuf)
 *   doubles, up to tcp_rmem[2] and NK_SOCK_WINDOW_MAX
 *   (nk_credit_rx_autotune()), as far as the window budget allows.
 *   SO_RCVLOWAT is clamped as TCP clamps it, and
 *   poll() reports what arrived once the credit window is closed
 *   (nk_credit_rx_closed()), as TCP's does: a low-water mark beyond the
 *   window never waits for bytes that cannot come.
 *
 * - The window budget.  The engine holds what the guest has not taken off
 *   its eventq up to what HELLO said (its pending_limit) and resets
 *   sockets beyond it, and every byte it may have to hold was promised by
 *   some socket's window.  So all windows together are kept within
 *   window_total: by default three quarters of what the engine holds (the
 *   rest is for replies and events).  The eventq's buffers do not count:
 *   a guest that falls behind does not post them.  A socket
 *   takes its window from the budget when it is created and as it grows,
 *   and gives it back when freed (nks->rx_window); one created when the
 *   budget is spent still gets NK_WINDOW_MIN, so it makes progress.
 *
 * - Credit bounds bytes, not memory, so every queued skb is charged to the
 *   socket by its truesize (sk_rmem_alloc), as the kernel's own sockets
 *   are.  A datagram socket holds its rcvbuf's worth: a datagram arriving
 *   beyond it is dropped and counted (sk_drops: SO_RXQ_OVFL and
 *   /proc/net/netkernel report it), and its bytes count as consumed.  A
 *   stream is never dropped: small segments are copied into the tail skb
 *   (nk_rxq_append()), so memory stays near the bytes the credit allows.
 *   A stream skb carries the sequence number of its first byte, and
 *   readers the next one to read (nks->rx_seq; MSG_PEEK a sequence number
 *   of its own, as TCP's peek_seq), never a pointer to an skb across a
 *   sleep: another reader may free it meanwhile.
 *
 * - Sending is bounded by the NSM's credit; a SEND is never answered unless
 *   it fails, and a failure reaches the socket as an asynchronous error.
 *   A SEND's bytes are counted (tx_cnt) before it goes on the ring, and
 *   taken back if it does not: the NSM's CREDIT for them may be handled
 *   before nk_send() returns, and is refused if they are not counted.
 *
 * - A full requestq (the engine stalls).  Sending data never waits for
 *   ring space with the socket lock held: a sender drops it and waits in
 *   nk_tx_wait(), as sk_wait_event() does, then looks at the socket
 *   again; with MSG_DONTWAIT or O_NONBLOCK it gets -EAGAIN at once.  What
 *   must go out but may not wait, the CREDIT a recv() owes and the CLOSE
 *   of close(), waits in the transport's queue (NK_XMIT_QUEUE), so neither
 *   recv(MSG_DONTWAIT) nor close() ever blocks on the ring, and a
 *   non-blocking accept() gets -EAGAIN (NK_CALL_NOWAIT).  Forwarded
 *   setsockopt()/getsockopt() hold no socket lock while they wait for the
 *   reply, and any signal ends that wait (-EINTR); as native ones they
 *   ignore O_NONBLOCK, and the wait is bounded by the transport's reply
 *   timeout (10 s).  SOL_SOCKET options forwarded before another call
 *   (nk_sock_sync_opts()) still wait under the lock, interruptibly, and
 *   so do the other requests the NSM answers (bind, connect, listen, a
 *   blocking accept, shutdown, getsockname, SIOCOUTQ): for ring space and
 *   reply together at most the reply timeout, never without limit.
 *
 * - Socket ids are allocated here (nk_socks, lib/nk_sockid.c: cyclic,
 *   1..INT_MAX) and published before the SOCKET or ACCEPT request goes out,
 *   so that events arriving right after the reply find their socket.  The
 *   socket is retired from the table (its id stays reserved, events for it
 *   are dropped) before CLOSE goes out, and the id is freed when CLOSE is
 *   answered; close() does not wait for that answer (nk_post()).  A
 *   SOCKET or ACCEPT whose call gave up after the request left (a fatal
 *   signal, the reply timeout) keeps its new socket published, unattached,
 *   until the late reply: a socket it created is closed (nk_orphan_work),
 *   so the NSM and the engine do not keep it and an accepted connection's
 *   peer sees its end.
 *
 * - The local address is cached (nks->local) for /proc/net/netkernel;
 *   getsockname() always asks the NSM.  A connect() learns it from the
 *   EV_CONNECTED that ends it, which carries it, and asks only when it
 *   did not come (a CONNECT that completed at once).
 *
 * - Guest loopback: the native half.  A socket made by socket() also
 *   holds a kernel socket of the same family, type and protocol in the
 *   guest's own stack (nks->lower, sock_create_kern(): kern=1 goes to the
 *   kernel's create(), nk_takeover.c), in the style of SMC's fallback
 *   socket, and nks->path says which half carries it.  An address is
 *   local when the guest's own stack says so (nk_addr_where():
 *   127.0.0.0/8, ::1, v4-mapped loopback, the wildcard as a destination,
 *   or an address on a guest interface: inet_addr_type() == RTN_LOCAL,
 *   ipv6_chk_addr()).  connect() or sendto() to a local address, bind()
 *   to a loopback one: the native half only (NK_PATH_LOCAL, for good;
 *   nk_go_local() closes the NSM's socket if it was made, and the nk_sock
 *   keeps or takes an id known only here, to be listed in
 *   /proc/net/netkernel), and every
 *   call goes straight to the native socket's proto_ops: semantics and
 *   speed are native by construction.  bind() to the wildcard or an own
 *   address, listen(), a UDP socket's first sendto(): both halves
 *   (NK_PATH_BOTH), on one port, the native half's (nk_dual_bind());
 *   accept() takes a native connection first (it costs no request) and
 *   makes it a new local nk_sock, recvmsg() a native datagram first, and
 *   poll() reports both.  connect() or bind() to a remote address: the
 *   NSM only (NK_PATH_NSM), as are connections accepted from the NSM.
 *   The path only moves from BOTH, under lock_sock; the native half stays
 *   until nk_release(), so lockless readers (poll, the hooks) can use it
 *   whatever the path.  The native socket's sk_wq is this socket's wait
 *   queue (nk_lower_attach()): its sk_data_ready, sk_write_space,
 *   sk_state_change and sk_error_report wake the application, blocking
 *   calls and poll() wherever it waits, and its SIGIO reaches the
 *   application's fasync list.  Why this rather than a loopback transport
 *   of our own (vsock_loopback's way): it needs no second implementation
 *   of TCP's semantics, and the guest's loopback is as fast as native.
 *   Options: SOL_SOCKET ones reach both halves' struct sock through a
 *   hook on sock_setsockopt() (nk_takeover.c; 6.1 never gives them to a
 *   family), and a local socket's getsockopt(SOL_SOCKET) is answered from
 *   its native half (SO_ERROR...); other levels go to the NSM and, while
 *   both halves may carry the socket, to the native half too (the NSM's
 *   answer counts); on a local socket, to the native half only.  The
 *   native half is made eagerly, one sock_create_kern() per socket(),
 *   but the NSM's socket lazily: SOCKET goes out with the first call
 *   that needs it (nk_sock_nsm(): a bind() or connect() to anything but
 *   loopback, listen(), an option of another level than SOL_SOCKET,
 *   shutdown(), a datagram to a remote address), so a socket that only
 *   talks over loopback costs the NSM nothing; until then the SOL_SOCKET
 *   options wait here (nk_sock_sync_opts() sends them after SOCKET),
 *   getsockname() is the native half's, SIOCOUTQ is 0.  A connect()
 *   that makes it sends SOCKET and CONNECT in one kick and waits once
 *   (nk_sock_nsm_with(), nk_call_pair()) when the engine agreed
 *   NK_FEAT_PIPE and no SOL_SOCKET option waits to go in between: one
 *   round trip to the NSM instead of two.  Costs on the
 *   remote path: that sock_create_kern() (and its release) per socket,
 *   and on an unbound UDP socket's first sendto() the BIND (and
 *   GETSOCKNAME) that puts both halves on one port.  The native halves
 *   are the guest stack's sockets, which ss, netstat and lsof would list:
 *   nk_diag.c and nk_procinet.c hide them by inode
 *   (nk_sock_lower_inodes()) and list a local socket from its native
 *   half (nk_sock_local_proc()).
 *   Differences left: a socket that went local stays local (connect
 *   (AF_UNSPEC) then a remote peer: the guest's stack has no route,
 *   ENETUNREACH), and one that went to the NSM refuses a local
 *   destination as before (-ENETUNREACH; e.g. a UDP socket connected to
 *   a remote peer that then sends to 127.0.0.1); a bind() both halves
 *   take fails with the NSM's error should the NSM's port space refuse the
 *   port the guest picked (the socket then stays on the NSM only); a
 *   UDP socket with both halves sends local datagrams without the NSM's
 *   credit, as natively.  The guest's own addresses count as local
 *   because nk_netdev.c puts them on nk0 (with netdev=0, the
 *   administrator on some interface, lo say).
 *
 * - setsockopt(SOL_SOCKET) never reaches a protocol family in 6.1 (the
 *   socket layer applies it to struct sock itself), and getsockopt
 *   (SOL_SOCKET) is always answered from struct sock.  So the local socket
 *   keeps those options, and the ones that change the NSM's socket
 *   (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_LINGER, SO_RCVBUF,
 *   SO_SNDBUF, SO_OOBINLINE, SO_BROADCAST, SO_DONTROUTE) are forwarded by
 *   nk_sock_sync_opts() before the next operation that can depend on them
 *   (bind, listen, connect, send, recv, shutdown, close, any forwarded
 *   option).  Every other level is forwarded at once, so TCP_INFO and
 *   friends come from the NSM's real socket (ss -ti reads TCP_INFO the
 *   same way, nk_sock_getsockopt() from nk_diag.c).
 *
 * - sk_family is AF_NETKERNEL, not the family the application asked for,
 *   so that no generic code mistakes a struct nk_sock for an inet_sock or
 *   a tcp_sock (with AF_INET and IPPROTO_TCP, sk_is_tcp() would hold:
 *   SO_TIMESTAMPING's OPT_ID would read tcp_sk(sk)->snd_una, BPF helpers
 *   that check only family and protocol would cast).  getsockopt
 *   (SO_DOMAIN) still answers the family socket() was asked for
 *   (nks->domain), from a hook on sk_getsockopt() (nk_takeover.c);
 *   SO_PROTOCOL and SO_TYPE report what Linux reports.  No inet hash
 *   table holds an nk_sock either: ss, netstat and lsof learn of them
 *   from nk_diag.c (inet_diag dumps) and nk_procinet.c (/proc/net/tcp).
 *
 * - connect(AF_UNSPEC) dissolves a UDP socket's association and, on TCP,
 *   does what tcp_disconnect() does (the NSM disconnects its socket):
 *   nothing on a socket never connected, a listener stops listening, a
 *   connection is reset.  Unlike Linux, a connection so reset cannot
 *   connect again (EOPNOTSUPP; its credit state is the old connection's):
 *   a new socket can.
 *
 * - A datagram travels whole in one message, with its 28-byte struct
 *   nk_addr (and, received, its 80-byte struct nk_anc): the default
 *   max_payload, NK_MAX_PAYLOAD, carries Linux's largest, 65507 bytes to
 *   an IPv4 address (v4-mapped too) and 65527 to an IPv6 one, and larger
 *   ones fail with -EMSGSIZE here as udp_sendmsg() fails them.  With a
 *   smaller max_payload agreed (an older engine, max_payload=65472)
 *   sends beyond max_payload minus the address fail with -EMSGSIZE too;
 *   one the NSM's smaller max_payload cannot take fails there (the
 *   engine's -EMSGSIZE, as an asynchronous error), and the NSM drops
 *   incoming ones larger than it can send (counted).
 *
 * - Ancillary data (NK_FEAT_ANC): a datagram's EV_DATA may carry the
 *   control messages the NSM's socket gave with it (struct nk_anc,
 *   checked with nk_anc_check()).  They stay in the skb's headroom and
 *   recvmsg() gives them after SO_TIMESTAMP* (the skb is stamped when it
 *   arrives here: the guest's clock) and SO_RXQ_OVFL, an interface index
 *   translated to the guest's interface holding the address (nk0), or lo.  An
 *   error queue entry (IP_RECVERR) goes to sk_error_queue, charged to
 *   sk_rcvbuf as sock_queue_err_skb() charges it (beyond: dropped, its
 *   bytes consumed); MSG_ERRQUEUE takes it and, as
 *   sock_dequeue_err_skb(), leaves sk_err to the next ICMP entry.  The
 *   engine's SOCKET reply lists the guest's source addresses (nks->src,
 *   kept by nk_sock_nsm(), which sendmsg() calls before its check):
 *   sendmsg()'s IP_PKTINFO/IPV6_PKTINFO may name them, any other source
 *   is EINVAL here and nothing of it crosses the wire.  A SOCKET that a
 *   late reply made (nks->nsm_req) lists none: any source passes, as with
 *   an engine without NK_FEAT_ANC.  A local socket's datagrams, their
 *   control messages and its error queue are its native half's.
 *
 * - Urgent data (NK_FEAT_URG): the NSM keeps TCP's urgent byte in the
 *   stream and tells where it is before it comes (EV_URG: the byte, its
 *   sequence number, checked with nk_urg_check()).  nks->urg_* hold them as
 *   TCP's urg_data and urg_seq do, and the stream calls act as
 *   tcp_recvmsg(), tcp_poll() and tcp_ioctl() do: SIGURG to the owner and
 *   EPOLLPRI while the byte is unread, reads stop at the mark and one that
 *   starts there skips the byte unless SO_OOBINLINE (a read past the mark
 *   forgets it), recv(MSG_OOB) takes it once, SIOCATMARK; while the byte
 *   is not inline SIOCINQ counts the bytes before it only and EPOLLIN
 *   does not count it.  A new EV_URG replaces the old one.
 *   recv(MSG_OOB) never answers EAGAIN: the NSM tells of urgent data only
 *   once the byte is there.
 *
 * - When the device goes away, every socket is reset with ENETDOWN and
 *   requests in flight fail with ENETDOWN.  When the engine lost the
 *   session (the transport then probes the device again), the sockets are
 *   reset with ECONNRESET, as by a peer's reset.  A datagram socket is
 *   never reset like a connection: it reports ENETDOWN once (sk_err),
 *   never reads end-of-file, and its sends fail with ENETDOWN, never
 *   EPIPE or SIGPIPE.  Such sockets stay on their device: only new ones
 *   use the device probed again.
 *
 * - When the engine resets a socket while the device lives (its NSM died),
 *   a connection is lost as on a peer's reset (ECONNRESET), but a UDP
 *   socket and a TCP listener are made again on whichever NSM serves next
 *   (nk_sock_revive(), retried every NK_REVIVE_RETRY): a new id, SOCKET,
 *   the SOL_SOCKET options, BIND to the address it had, then CONNECT or
 *   LISTEN again.  Meanwhile nothing tells the application: recv() and
 *   accept() wait (or -EAGAIN), sendto() fails with ENETUNREACH as with no
 *   route.  Not made again: options of other levels (IP_TOS,
 *   IPV6_V6ONLY set by setsockopt()...), the port of a UDP socket the
 *   kernel bound implicitly and nobody asked about (it gets a new one),
 *   datagrams received before and still unread (dropped, counted in
 *   SO_RXQ_OVFL), a TCP socket only bound.  A BIND, CONNECT or LISTEN
 *   that fails on the new NSM (its port taken meanwhile) resets the
 *   socket for good with that error, given once.
 *
 * - Only sockets of the namespace the device serves are NetKernel sockets,
 *   bind() checks CAP_NET_BIND_SERVICE for a privileged port as
 *   inet_bind() does, and cgroup-BPF programs for inet sockets, which
 *   cannot run on a NetKernel socket, keep a socket native or, attached
 *   later, fail bind(), connect() and sendmsg() with EPERM; what the LSMs
 *   see is described there too (nk_policy.c).
 *
 * Locking:
 *   lock_sock(sk)     serialises the socket calls of the application
 *   nks->lock         credits, counters, accept state, urgent data,
 *                     orphan_req, late_req and the sk_state, sk_shutdown
 *                     and sk_err changes; taken by the event handlers,
 *                     which run in the transport's rx work and never take
 *                     lock_sock
 *   sk_receive_queue.lock  the skb queue itself
 *   nk_socks lock     the id table (nk_sockid_lock())
 *   nk_window_lock    the window budget; innermost, takes nothing
 *   nk_revive_work    takes one socket at a time, referenced under the
 *                     nk_socks lock, then lock_sock (nothing else held)
 *   nk_orphans_lock   the sockets nk_orphan_work is to close; innermost
 *   the native half's locks  lock_sock(lower->sk) and its own, taken by
 *                     its proto_ops; its wake-ups take only this
 *                     socket's wait queue lock, and its sk_data_ready
 *                     (nk_lower_data_ready()) its sk_callback_lock, read,
 *                     then nothing but sk_send_sigurg()'s locks
 * Order: lock_sock -> nk_socks lock -> nks->lock -> sk_receive_queue.lock,
 * nks->lock -> nk_window_lock, nk_socks lock -> nk_orphans_lock,
 * lock_sock -> lock_sock(lower->sk) (never the other way: the native
 * half takes no lock of the nk_sock; nk_lower_data_ready() only signals
 * its owner and writes lower_urg*, which nothing else touches).  A local socket's calls take no
 * lock of the nk_sock: the native socket's own lock serialises them.
 * /proc/net/netkernel and the diag dumps read a local socket's native half
 * under the nk_socks lock and nks->lock, without its lock (a snapshot, as
 * /proc/net/tcp's); nk_release() clears nks->lower and lower_spent under
 * nks->lock before it releases them.
 * No spinlock is held across a transport call, and the rx work (transport
 * rx_lock) takes only nks->lock, the queue lock, the nk_socks lock and
 * nk_orphans_lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <asm/ioctls.h>
#include <linux/errqueue.h>
#include <linux/inetdevice.h>
#include <linux/init.h>
#include <linux/ip.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/skbuff.h>
#include <linux/sockios.h>
#include <linux/version.h>
#include <net/addrconf.h>
#include <net/inet_connection_sock.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/tcp.h>
#include <net/tcp_states.h>

#include "../include/netkernel/nk_version.h"
#include "nk_guest.h"

/* Wire values of SOCKET a1 (Linux x86 values, fixed by the protocol). */
#define NK_WIRE_STREAM	1
#define NK_WIRE_DGRAM	2

struct nk_sockid_table nk_socks;

/*
 * The window budget (see the notes at the top): the bytes all sockets'
 * receive windows together may promise the NSM.
 */
static unsigned int window_total;
module_param(window_total, uint, 0644);
MODULE_PARM_DESC(window_total,
		 "Bytes all sockets' receive windows may promise together (default 0: 3/4 of what the engine holds for the guest, from HELLO, or of 8 MiB if it does not say)");

/* A socket's window when the budget is spent: it still makes progress. */
#define NK_WINDOW_MIN	(16U << 10)

/*
 * A socket's largest window, below NK_CREDIT_MAX: two thirds of the
 * default budget, so that one stream leaves room for the next.
 */
#define NK_SOCK_WINDOW_MAX	(4U << 20)

static DEFINE_SPINLOCK(nk_window_lock);
static unsigned long nk_window_used;	/* under nk_window_lock */

static unsigned long nk_window_budget(struct nk_dev *nd)
{
	unsigned long total = READ_ONCE(window_total);
	u32 hold = nk_dev_engine_hold(nd);

	if (total)
		return total;
	return (hold ? hold : 8UL << 20) / 4 * 3;
}

/*
 * Take up to @want bytes of window, at least @floor even from a spent
 * budget; returns what it got.
 */
static u32 nk_window_take(struct nk_dev *nd, u32 want, u32 floor)
{
	unsigned long max = nk_window_budget(nd);
	u32 got;

	spin_lock(&nk_window_lock);
	got = nk_window_used < max ? min_t(unsigned long, want, max - nk_window_used) : 0;
	got = max(got, min(floor, want));
	nk_window_used += got;
	spin_unlock(&nk_window_lock);
	return got;
}

static void nk_window_put(u32 n)
{
	spin_lock(&nk_window_lock);
	nk_window_used -= min_t(unsigned long, n, nk_window_used);
	spin_unlock(&nk_window_lock);
}

static struct proto nk_proto = {
	.name = "NETKERNEL",
	.owner = THIS_MODULE,
	.obj_size = sizeof(struct nk_sock),
};

static const struct proto_ops nk_stream_ops;
static const struct proto_ops nk_dgram_ops;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Errors from the transport as the application sees them. */
static int nk_err(int err)
{
	return err == -ENODEV ? -ENETDOWN : err;
}

static bool nk_is_stream(const struct sock *sk)
{
	return sk->sk_type == SOCK_STREAM;
}

/*
 * Attach our receive credit to an outgoing header.  It counts as announced
 * only once the message is on the ring (nk_sock_credit_sent()): one that
 * never leaves (a signal, no ring space, a bad user buffer) announced
 * nothing.  Takes nks->lock.
 */
static void nk_sock_fill_credit(struct nk_sock *nks, struct nk_hdr *hdr)
{
	spin_lock(&nks->lock);
	nk_credit_rx_fill(&nks->rx, hdr);
	spin_unlock(&nks->lock);
}

/* A message that carried @fwd_cnt as @nks's credit is on the ring. */
static void nk_sock_credit_sent(struct nk_sock *nks, u32 fwd_cnt)
{
	spin_lock(&nks->lock);
	nk_credit_rx_queued(&nks->rx, fwd_cnt);
	spin_unlock(&nks->lock);
}

/* A request about @nks with @len bytes of payload and our credit. */
static struct nk_txbuf *nk_req_alloc(struct nk_sock *nks, u16 op, u32 len)
{
	struct nk_txbuf *tb;

	tb = nk_txbuf_alloc(len, GFP_KERNEL);
	if (!tb)
		return NULL;
	nk_hdr_init(&tb->hdr, op, 0, nks->id, 0);
	tb->hdr.len = cpu_to_le32(len);
	nk_sock_fill_credit(nks, &tb->hdr);
	return tb;
}

/*
 * Record the NSM's credit from a message about @nks.  Takes nks->lock.
 * Returns true when the send space grew.
 */
static bool nk_sock_apply_credit(struct nk_sock *nks, const struct nk_hdr *hdr)
{
	u32 before, after;
	int err;

	if (!(le16_to_cpu(hdr->flags) & NK_F_CREDIT))
		return false;
	spin_lock(&nks->lock);
	before = nk_credit_tx_space(&nks->tx);
	err = nk_credit_tx_update(&nks->tx, le32_to_cpu(hdr->buf_alloc),
				  le32_to_cpu(hdr->fwd_cnt));
	after = nk_credit_tx_space(&nks->tx);
	spin_unlock(&nks->lock);
	if (err)
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: %s announces fwd_cnt %u beyond the bytes sent, ignored\n",
				     nks->id, nk_op_name(le16_to_cpu(hdr->op)),
				     le32_to_cpu(hdr->fwd_cnt));
	return after > before;
}

/*
 * The call of a request that announced @fwd consumed ended with @err and
 * @reply: apply the reply's credit, and say what the caller returns.
 */
static int nk_sock_call_done(struct nk_sock *nks, struct nk_reply *reply,
			     u32 fwd, int err)
{
	if (reply->req_id)
		nk_sock_credit_sent(nks, fwd);
	if (!(le16_to_cpu(reply->hdr.flags) & NK_F_REPLY))
		return nk_err(err);
	if (nk_sock_apply_credit(nks, &reply->hdr))
		nks->sk.sk_write_space(&nks->sk);
	/* The NSM's answer is its kernel's (-ENODEV: no such interface). */
	return err == nk_hdr_status(&reply->hdr) ? err : nk_err(err);
}

/*
 * Send a request and wait for its reply, at most @timeout_ms (0: the
 * reply timeout); the reply's credit is applied.  The transport's -ENODEV
 * (the device went away) becomes -ENETDOWN; a reply's status is the NSM's
 * answer, passed on as it is.
 */
static int nk_sock_call_timeout(struct nk_sock *nks, struct nk_txbuf *tb,
				struct nk_reply *reply, unsigned int flags,
				unsigned int timeout_ms)
{
	u32 fwd = le32_to_cpu(tb->hdr.fwd_cnt);
	int err;

	err = nk_call_timeout(nks->nd, tb, reply, flags, timeout_ms);
	return nk_sock_call_done(nks, reply, fwd, err);
}

static int nk_sock_call(struct nk_sock *nks, struct nk_txbuf *tb,
			struct nk_reply *reply, unsigned int flags)
{
	return nk_sock_call_timeout(nks, tb, reply, flags, 0);
}

/* A request whose reply carries only a status. */
static int nk_sock_simple(struct nk_sock *nks, struct nk_txbuf *tb)
{
	struct nk_reply reply = {};

	if (!tb)
		return -ENOMEM;
	return nk_sock_call(nks, tb, &reply, NK_XMIT_INTR);
}

/*
 * A forwarded option: native setsockopt() and getsockopt() never block
 * long and ignore O_NONBLOCK, so this waits for the reply as long as the
 * transport's reply timeout (10 s), but any signal ends the wait (-EINTR).
 * setsockopt() and getsockopt() call it without the socket lock: a
 * stalled NSM delays that call, not every other call on the socket.
 * Options synchronised before another call (nk_sock_sync_opts()) still
 * go under the lock, before that call's own request.
 */
static int nk_sock_opt_call(struct nk_sock *nks, struct nk_txbuf *tb,
			    struct nk_reply *reply)
{
	if (!tb)
		return -ENOMEM;
	return nk_sock_call(nks, tb, reply, NK_XMIT_INTR | NK_CALL_INTR);
}

/*
 * Tell the NSM what we consumed.  Never waits for ring space: on a full
 * ring the CREDIT waits in the transport's queue.
 */
static void nk_sock_send_credit(struct nk_sock *nks)
{
	struct nk_txbuf *tb;
	u32 fwd;

	/* Nobody on the NSM to tell (a revived socket starts afresh). */
	if (READ_ONCE(nks->reset))
		return;
	tb = nk_req_alloc(nks, NK_OP_CREDIT, 0);
	if (!tb)
		return;
	fwd = le32_to_cpu(tb->hdr.fwd_cnt);
	if (!nk_send(nks->nd, tb, NK_XMIT_QUEUE, NULL))
		nk_sock_credit_sent(nks, fwd);
}

/* How nk_sock_credit_consumed() was called. */
#define NK_RX_DRAINED	0x1	/* a stream reader found the queue empty */
#define NK_RX_FLUSH	0x2	/* announce now: the reader will sleep */

/*
 * Account @n bytes handed to the application, and announce them when
 * needed.  A drained stream socket whose NSM ran out of credit meanwhile
 * was held back by the window, not by its reader: the window grows
 * (receive buffer autotuning, as native TCP does up to tcp_rmem[2], here
 * also up to NK_SOCK_WINDOW_MAX, unless SO_RCVBUF fixed the size), as far
 * as the window budget allows, and is announced.
 */
static void nk_sock_credit_consumed(struct nk_sock *nks, u32 n,
				    unsigned int how)
{
	struct sock *sk = &nks->sk;
	bool update, grew = false;
	u32 limit, old, got;

	limit = min_t(u32, READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_rmem[2]),
		      NK_SOCK_WINDOW_MAX);
	spin_lock(&nks->lock);
	nks->rx.fwd_cnt += n;
	old = nks->rx.buf_alloc;
	if (how & NK_RX_DRAINED && nks->rx.starved &&
	    !(sk->sk_userlocks & SOCK_RCVBUF_LOCK) &&
	    !nk_credit_rx_unread(&nks->rx) && old < limit) {
		/* Doubling asks for @old more; take what the budget has. */
		got = nk_window_take(nks->nd, min(old, limit - old), 0);
		if (nk_credit_rx_autotune(&nks->rx, old + got)) {
			WRITE_ONCE(sk->sk_rcvbuf, nks->rx.buf_alloc);
			grew = true;
		}
		nk_window_put(got - (nks->rx.buf_alloc - old));
	}
	update = grew || (nks->rx.fwd_cnt != nks->rx.fwd_queued &&
			  (how & NK_RX_FLUSH ||
			   nk_credit_rx_need_update(&nks->rx)));
	spin_unlock(&nks->lock);
	if (update)
		nk_sock_send_credit(nks);
}

/*
 * The socket is gone on the NSM side (or the device is), for good.  A
 * datagram socket has no connection to lose: it reports @err once and
 * never reads end-of-file (its sends fail, nk_sock_gone_err()).
 */
static void nk_sock_reset(struct nk_sock *nks, int err)
{
	struct sock *sk = &nks->sk;

	spin_lock(&nks->lock);
	nks->reset = true;
	nks->revive = false;
	WRITE_ONCE(sk->sk_err, err);
	if (nk_is_stream(sk)) {
		sk->sk_state = TCP_CLOSE;
		WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
	}
	spin_unlock(&nks->lock);
	sk_error_report(sk);
	sk->sk_state_change(sk);
}

/*
 * What a send on a reset socket fails with: EPIPE for a stream, as TCP's
 * after a reset; for a datagram socket what UDP gives with no route, never
 * EPIPE (which would raise SIGPIPE): ENETUNREACH, or ENETDOWN when the
 * device is gone.
 */
static int nk_sock_gone_err(struct nk_sock *nks)
{
	if (nk_is_stream(&nks->sk))
		return -EPIPE;
	return nk_dev_alive(nks->nd) ? -ENETUNREACH : -ENETDOWN;
}

/*
 * Refresh the cached local address from the NSM.  Callers that only
 * refresh the cache ignore errors; getsockname() reports them.
 */
static int nk_sock_getsockname(struct nk_sock *nks, struct nk_addr *out)
{
	struct nk_addr na;
	struct nk_reply reply = { .buf = &na, .buf_len = sizeof(na) };
	struct nk_txbuf *tb;
	int err;

	tb = nk_req_alloc(nks, NK_OP_GETSOCKNAME, 0);
	if (!tb)
		return -ENOMEM;
	err = nk_sock_call(nks, tb, &reply, NK_XMIT_INTR);
	if (err)
		return err;
	if (reply.len != sizeof(na) || nk_addr_check(&na))
		return -EPROTO;
	nks->local = na;
	if (out)
		*out = na;
	return 0;
}

/* Convert and check a user address for @nks; @bind selects the errno. */
static int nk_sock_addr(struct nk_sock *nks, struct sockaddr *addr, int len,
			struct nk_addr *na, bool bind)
{
	int err;

	if (len < (int)sizeof(addr->sa_family))
		return -EINVAL;
	if (addr->sa_family != nks->family)
		return -EAFNOSUPPORT;
	err = nk_addr_from_sockaddr(na, addr, len);
	if (err)
		return err;
	if (nk_addr_is_loopback(na))
		return bind ? -EADDRNOTAVAIL : -ENETUNREACH;
	return 0;
}

/*
 * Forward one int SOL_SOCKET option if it changed since last time (only
 * say so when @dry).  Return: whether it changed.
 */
static bool nk_sync_opt(struct nk_sock *nks, int optname, int val,
			int *sent, bool dry)
{
	struct nk_txbuf *tb;
	int err;

	if (val == *sent)
		return false;
	if (dry)
		return true;
	tb = nk_req_alloc(nks, NK_OP_SETSOCKOPT, sizeof(val));
	if (tb) {
		memcpy(tb->payload, &val, sizeof(val));
		tb->hdr.arg[0] = cpu_to_le64(SOL_SOCKET);
		tb->hdr.arg[1] = cpu_to_le64(optname);
	}
	err = nk_sock_opt_call(nks, tb, &(struct nk_reply){});
	if (err)
		dev_dbg_ratelimited(nk_dev_device(nks->nd),
				    "socket %u: SOL_SOCKET option %d not forwarded: %d\n",
				    nks->id, optname, err);
	else
		*sent = val;
	return true;
}

/*
 * Forward the SOL_SOCKET options that matter to the NSM's socket and
 * changed locally, and grow the receive credit with SO_RCVBUF; with @dry,
 * only tell whether there is any to forward (a socket with SO_RCVBUF set
 * always has), made or not.  Caller holds lock_sock.  Return: whether
 * there was.
 */
static bool nk_sock_opts(struct nk_sock *nks, bool dry)
{
	struct nk_sol_opts *sent = &nks->sol_sent;
	struct sock *sk = &nks->sk;
	struct linger ling = {};
	struct nk_txbuf *tb;
	bool any = false;
	u32 want;

	/* Not made yet: nk_sock_nsm() makes it, then this sends them all. */
	if (!dry && !READ_ONCE(nks->created))
		return false;
	any |= nk_sync_opt(nks, SO_REUSEADDR, sk->sk_reuse != SK_NO_REUSE,
			   &sent->reuseaddr, dry);
	any |= nk_sync_opt(nks, SO_REUSEPORT, sk->sk_reuseport,
			   &sent->reuseport, dry);
	any |= nk_sync_opt(nks, SO_KEEPALIVE, sock_flag(sk, SOCK_KEEPOPEN),
			   &sent->keepalive, dry);
	any |= nk_sync_opt(nks, SO_OOBINLINE, sock_flag(sk, SOCK_URGINLINE),
			   &sent->oobinline, dry);
	any |= nk_sync_opt(nks, SO_BROADCAST, sock_flag(sk, SOCK_BROADCAST),
			   &sent->broadcast, dry);
	any |= nk_sync_opt(nks, SO_DONTROUTE, sock_flag(sk, SOCK_LOCALROUTE),
			   &sent->dontroute, dry);
	/* setsockopt() doubled the value; the NSM's kernel doubles it again */
	if (sk->sk_userlocks & SOCK_SNDBUF_LOCK)
		any |= nk_sync_opt(nks, SO_SNDBUF, READ_ONCE(sk->sk_sndbuf) / 2,
				   &sent->sndbuf, dry);
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK) {
		any |= nk_sync_opt(nks, SO_RCVBUF, READ_ONCE(sk->sk_rcvbuf) / 2,
				   &sent->rcvbuf, dry);
		if (dry)
			return true;
		spin_lock(&nks->lock);
		want = clamp_t(u32, READ_ONCE(sk->sk_rcvbuf), nks->rx.buf_alloc,
			       NK_SOCK_WINDOW_MAX) - nks->rx.buf_alloc;
		nks->rx.buf_alloc += nk_window_take(nks->nd, want, 0);
		spin_unlock(&nks->lock);
	}

	if (sock_flag(sk, SOCK_LINGER)) {
		ling.l_onoff = 1;
		ling.l_linger = min_t(unsigned long, sk->sk_lingertime / HZ,
				      INT_MAX);
	}
	if (ling.l_onoff == sent->linger.l_onoff &&
	    ling.l_linger == sent->linger.l_linger)
		return any;
	if (dry)
		return true;
	tb = nk_req_alloc(nks, NK_OP_SETSOCKOPT, sizeof(ling));
	if (tb) {
		memcpy(tb->payload, &ling, sizeof(ling));
		tb->hdr.arg[0] = cpu_to_le64(SOL_SOCKET);
		tb->hdr.arg[1] = cpu_to_le64(SO_LINGER);
	}
	if (!nk_sock_opt_call(nks, tb, &(struct nk_reply){}))
		sent->linger = ling;
	return true;
}

static void nk_sock_sync_opts(struct nk_sock *nks)
{
	nk_sock_opts(nks, false);
}

/* The native half, while it may carry traffic; lockless readers too. */
static struct socket *nk_lower(const struct nk_sock *nks)
{
	return READ_ONCE(nks->path) == NK_PATH_NSM ? NULL :
	       READ_ONCE(nks->lower);
}

static bool nk_is_local(const struct nk_sock *nks)
{
	return READ_ONCE(nks->path) == NK_PATH_LOCAL;
}

static void nk_set_path(struct nk_sock *nks, u8 path)
{
	spin_lock(&nks->lock);
	WRITE_ONCE(nks->path, path);
	if (path == NK_PATH_LOCAL)
		nks->revive = false;
	spin_unlock(&nks->lock);
}

/*
 * A native half: kern=1 goes to the kernel's own create()
 * (nk_takeover.c), which counts it as a kernel socket left to the native
 * stack; it is a part of a NetKernel socket, not counted.
 */
static int nk_lower_create(struct net *net, int family, int type,
			   int protocol, struct socket **res)
{
	int err;

	err = sock_create_kern(net, family, type, protocol, res);
	if (!err)
		nk_fallback_uncount(NK_FB_KERNEL);
	return err;
}

/*
 * @lower becomes @sock's native half: its wake-ups (sk_data_ready,
 * sk_write_space, sk_state_change, sk_error_report, SIGIO) go to @sock's
 * wait queue, where the application sleeps and polls.
 */
/* The kernel's sk_data_ready of a TCP socket (sock_def_readable(), not exported). */
static void (*nk_lower_readable)(struct sock *sk);

/*
 * The native half's sk_data_ready, on a stream.  A native socket's
 * sk_send_sigurg() has no file to signal (it is a kernel socket), so the
 * owner of this socket gets SIGURG from here when tcp_urg() has an urgent
 * byte (it calls sk_data_ready then), once per byte.  The native socket's
 * lock is held; sk_callback_lock keeps the socket whose wait queue it has
 * (nk_lower_attach()) from going away: its release orphans the native
 * half first.  A connection in the accept queue, which has no wait queue
 * of ours yet, or one being accepted, is only woken as the kernel's.
 */
static void nk_lower_data_ready(struct sock *lsk)
{
	struct tcp_sock *tp = tcp_sk(lsk);
	struct socket_wq *wq;
	struct socket *sock;
	struct nk_sock *nks;
	u32 seq;

	READ_ONCE(nk_lower_readable)(lsk);
	read_lock_bh(&lsk->sk_callback_lock);
	wq = rcu_dereference_protected(lsk->sk_wq,
				       lockdep_is_held(&lsk->sk_callback_lock));
	sock = wq ? container_of(wq, struct socket, wq) : NULL;
	if (!sock || !sock->sk || sock->sk == lsk ||
	    sock->sk->sk_family != PF_NETKERNEL)
		goto out;
	nks = nk_sk(sock->sk);
	seq = READ_ONCE(tp->urg_seq);
	if ((READ_ONCE(tp->urg_data) & TCP_URG_VALID) &&
	    (!nks->lower_urg || nks->lower_urg_seq != seq)) {
		nks->lower_urg = true;
		nks->lower_urg_seq = seq;
		sk_send_sigurg(sock->sk);
	}
out:
	read_unlock_bh(&lsk->sk_callback_lock);
}

static void nk_lower_attach(struct socket *sock, struct socket *lower)
{
	struct sock *lsk = lower->sk;

	write_lock_bh(&lsk->sk_callback_lock);
	rcu_assign_pointer(lsk->sk_wq, &sock->wq);
	if (lsk->sk_type == SOCK_STREAM &&
	    lsk->sk_data_ready != nk_lower_data_ready) {
		WRITE_ONCE(nk_lower_readable, lsk->sk_data_ready);
		lsk->sk_data_ready = nk_lower_data_ready;
	}
	write_unlock_bh(&lsk->sk_callback_lock);
}

/* ------------------------------------------------------------------ */
/* Socket life cycle                                                   */
/* ------------------------------------------------------------------ */

static void nk_sk_destruct(struct sock *sk)
{
	struct nk_sock *nks = nk_sk(sk);

	nk_window_put(nks->rx.buf_alloc);
	skb_queue_purge(&sk->sk_receive_queue);
	skb_queue_purge(&sk->sk_error_queue);
	if (nks->nd)
		nk_dev_put(nks->nd);
}

/*
 * A fresh id for @nks, on the queue pair of the CPU making it (as
 * virtio-net's XPS and RFS keep a flow on its CPU): its requests go out on
 * this CPU's requestq, its events come back on this CPU's eventq.
 */
static int nk_sock_id_alloc(struct nk_sock *nks, u32 *id)
{
	u32 n, pair = nk_dev_local_pair(nks->nd, &n);

	return nk_sockid_alloc_on(&nk_socks, nks, id, n, pair, GFP_KERNEL);
}

/* Allocate an nk_sock with an id; @nd's reference passes to it. */
static struct nk_sock *nk_sock_alloc(struct net *net, int type, int protocol,
				     int family, struct nk_dev *nd, u8 path)
{
	struct nk_sock *nks;
	struct sock *sk;
	u32 want;
	int err;

	sk = sk_alloc(net, PF_NETKERNEL, GFP_KERNEL, &nk_proto, 0);
	if (!sk) {
		nk_dev_put(nd);
		return NULL;
	}
	sock_init_data(NULL, sk);
	sk->sk_type = type;
	sk->sk_protocol = protocol;
	sk->sk_destruct = nk_sk_destruct;
	sk->sk_state = TCP_CLOSE;

	nks = nk_sk(sk);
	nks->nd = nd;
	nks->family = family;
	nks->domain = family;
	nks->path = path;
	spin_lock_init(&nks->lock);
	/* A local socket promises the NSM nothing. */
	want = clamp_t(u32, READ_ONCE(sk->sk_rcvbuf), nk_dev_max_payload(nd),
		       NK_SOCK_WINDOW_MAX);
	if (path != NK_PATH_LOCAL)
		nks->rx.buf_alloc = nk_window_take(nd, want, NK_WINDOW_MIN);

	err = nk_sock_id_alloc(nks, &nks->id);
	if (err) {
		sk_free(sk);
		return NULL;
	}
	return nks;
}

/* Free an nk_sock whose socket the NSM never had. */
static void nk_sock_discard(struct nk_sock *nks)
{
	nk_sockid_remove(&nk_socks, nks->id);
	sock_orphan(&nks->sk);
	sock_put(&nks->sk);
}

/*
 * Sockets whose SOCKET or ACCEPT was given up after it left (nk_call()
 * ended by a fatal signal or the reply timeout): the NSM may still create
 * the socket, and the engine map it.  Such an nk_sock stays published,
 * unattached, with nks->orphan_req set, until the late reply says what
 * happened (nk_rx_orphan_reply()) or the device goes: a socket the NSM
 * created is closed, so neither the NSM nor the engine keeps it and an
 * accepted connection's peer sees its end; otherwise the nk_sock is freed.
 * Closing sends CLOSE, which may wait for ring space, so nk_orphan_work
 * does it, for the sockets on nk_orphans_close (each holding the
 * reference its creator had).
 */
static DEFINE_SPINLOCK(nk_orphans_lock);
static LIST_HEAD(nk_orphans_close);	/* under nk_orphans_lock */

static void nk_sock_close(struct nk_sock *nks);

static void nk_orphan_work_fn(struct work_struct *work)
{
	struct nk_sock *nks;

	for (;;) {
		spin_lock(&nk_orphans_lock);
		nks = list_first_entry_or_null(&nk_orphans_close,
					       struct nk_sock, orphan_node);
		if (nks)
			list_del(&nks->orphan_node);
		spin_unlock(&nk_orphans_lock);
		if (!nks)
			return;
		if (nk_dev_alive(nks->nd))
			nk_sock_close(nks);
		else
			nk_sockid_remove(&nk_socks, nks->id);
		sock_put(&nks->sk);
	}
}

static DECLARE_WORK(nk_orphan_work, nk_orphan_work_fn);

/* Close @nks, which the NSM created for nobody; its creator's reference passes. */
static void nk_orphan_close(struct nk_sock *nks)
{
	spin_lock(&nk_orphans_lock);
	list_add_tail(&nks->orphan_node, &nk_orphans_close);
	spin_unlock(&nk_orphans_lock);
	queue_work(system_wq, &nk_orphan_work);
}

/*
 * The SOCKET or ACCEPT for @nks failed with @reply.  If the request left
 * and no reply came, one may still come: @nks waits for it (see above),
 * unless it already came while the call gave up.
 */
static void nk_sock_abandon(struct nk_sock *nks, const struct nk_reply *reply)
{
	int status = 1;		/* not known yet */

	if (!reply->req_id || reply->hdr.op || !nk_dev_alive(nks->nd)) {
		nk_sock_discard(nks);
		return;
	}
	sock_orphan(&nks->sk);
	spin_lock(&nks->lock);
	if (nks->late_req == reply->req_id)
		status = nks->late_status;
	else
		nks->orphan_req = reply->req_id;
	spin_unlock(&nks->lock);
	/*
	 * nk_detach() takes the waiting sockets of a dead device; one that
	 * died before it could see this one is handled here.
	 */
	if (status > 0 && !nk_dev_alive(nks->nd)) {
		spin_lock(&nks->lock);
		if (nks->orphan_req == reply->req_id) {
			nks->orphan_req = 0;
			status = -ENODEV;
		}
		spin_unlock(&nks->lock);
	}
	if (!status)
		nk_orphan_close(nks);
	else if (status < 0)
		nk_sock_discard(nks);
}

/*
 * A SOCKET or ACCEPT reply no nk_call() waited for: the one an abandoned
 * call waits for, or one that came while its call was giving up (kept for
 * nk_sock_abandon()).  Anything else is dropped.
 */
static void nk_rx_orphan_reply(struct nk_dev *nd, const struct nk_hdr *hdr)
{
	u16 op = le16_to_cpu(hdr->op);
	u64 req_id = le64_to_cpu(hdr->req_id);
	int status = nk_hdr_status(hdr);
	struct nk_sock *nks = NULL;
	bool mine = false;
	u64 id;

	id = op == NK_OP_ACCEPT ? le64_to_cpu(hdr->arg[0]) :
				  le32_to_cpu(hdr->sock);
	if (req_id && nk_sockid_valid(&nk_socks, id))
		nks = nk_sockid_get(&nk_socks, id);
	if (!nks) {
		dev_dbg_ratelimited(nk_dev_device(nd),
				    "late %s reply for socket %llu dropped\n",
				    nk_op_name(op), id);
		return;
	}
	spin_lock(&nks->lock);
	if (nks->orphan_req == req_id) {
		nks->orphan_req = 0;
		mine = true;
	} else if (!nks->orphan_req && !READ_ONCE(nks->created)) {
		nks->late_req = req_id;
		nks->late_status = status;
	}
	spin_unlock(&nks->lock);
	if (mine) {
		dev_dbg_ratelimited(nk_dev_device(nd),
				    "socket %llu: late %s reply (%d) for a call given up\n",
				    id, nk_op_name(op), status);
		if (status)
			nk_sock_discard(nks);
		else
			nk_orphan_close(nks);
	}
	sock_put(&nks->sk);
}

bool nk_sock_wanted(struct nk_dev *nd, int family, int type, int protocol)
{
	u64 features = nk_dev_features(nd);

	if (family == AF_INET6 && !(features & NK_FEAT_INET6))
		return false;
	switch (type) {
	case SOCK_STREAM:
		return protocol == 0 || protocol == IPPROTO_TCP;
	case SOCK_DGRAM:
		return (features & NK_FEAT_DGRAM) &&
		       (protocol == 0 || protocol == IPPROTO_UDP);
	default:
		return false;
	}
}

/*
 * The SOCKET request that makes @nks on the NSM under @id: a new socket
 * there, so it announces nothing consumed yet.
 */
static struct nk_txbuf *nk_socket_req(struct nk_sock *nks, u32 id)
{
	struct nk_txbuf *tb;

	tb = nk_txbuf_alloc(0, GFP_KERNEL);
	if (!tb)
		return NULL;
	nk_hdr_init(&tb->hdr, NK_OP_SOCKET, 0, id, 0);
	nk_hdr_set_credit(&tb->hdr, READ_ONCE(nks->rx.buf_alloc), 0);
	tb->hdr.arg[0] = cpu_to_le64(nks->family);
	tb->hdr.arg[1] = cpu_to_le64(nk_is_stream(&nks->sk) ? NK_WIRE_STREAM :
				     NK_WIRE_DGRAM);
	tb->hdr.arg[2] = cpu_to_le64(nks->sk.sk_protocol);
	tb->hdr.arg[3] = cpu_to_le64(nks->sock_flags);
	return tb;
}

/*
 * Keep the source addresses a successful SOCKET reply listed (@reply's
 * buffer is @src): every one must be a well-formed address of port 0; a
 * malformed list is logged and counts as no list.
 */
static void nk_sock_set_src(struct nk_sock *nks, const struct nk_reply *reply,
			    const struct nk_addr *src)
{
	u32 i, n = reply->len / sizeof(*src);

	if (reply->len % sizeof(*src) || n > ARRAY_SIZE(nks->src))
		n = U32_MAX;
	for (i = 0; n != U32_MAX && i < n; i++)
		if (nk_addr_check(&src[i]) || src[i].port)
			n = U32_MAX;
	if (n == U32_MAX) {
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: bad address list in the SOCKET reply, ignored\n",
				     nks->id);
		n = 0;
	}
	memcpy(nks->src, src, n * sizeof(*src));
	nks->nsrc = n;
	/* The guest's addresses as the engine has them now (nk_netdev.c). */
	nk_netdev_addrs(src, n);
}

/*
 * Create a NetKernel socket for @sock (type already checked by
 * nk_sock_wanted()).  @nd's reference passes to the socket.
 */
int nk_sock_create(struct net *net, struct socket *sock, int protocol,
		   int family, struct nk_dev *nd)
{
	struct socket *lower;
	struct nk_sock *nks;
	bool stream = sock->type == SOCK_STREAM;
	int err;

	protocol = protocol ?: (stream ? IPPROTO_TCP : IPPROTO_UDP);
	err = nk_lower_create(net, family, sock->type, protocol, &lower);
	if (err) {
		nk_dev_put(nd);
		return err;
	}
	nks = nk_sock_alloc(net, sock->type, protocol, family, nd,
			    NK_PATH_BOTH);
	if (!nks) {
		sock_release(lower);
		return -ENOMEM;
	}
	nks->lower = lower;

	if (family == AF_INET6 && READ_ONCE(net->ipv6.sysctl.bindv6only))
		nks->sock_flags = NK_SOCK_V6ONLY;
	/* The NSM's socket waits for its first need (nk_sock_nsm()). */
	sock->state = SS_UNCONNECTED;
	sock->ops = stream ? &nk_stream_ops : &nk_dgram_ops;
	sock_graft(&nks->sk, sock);
	nk_lower_attach(sock, lower);
	return 0;
}

/*
 * The SOCKET of @nks ended with @err and @reply (its source addresses in
 * @src): the socket is made, or not, or may be by a late reply.
 */
static int nk_sock_made(struct nk_sock *nks, const struct nk_reply *reply,
			const struct nk_addr *src, int err)
{
	if (err) {
		if (reply->req_id && !reply->hdr.op && nk_dev_alive(nks->nd)) {
			nks->nsm_req = reply->req_id;
			nk_set_path(nks, NK_PATH_NSM);
		}
		return err;
	}
	nk_sock_set_src(nks, reply, src);
	WRITE_ONCE(nks->created, true);
	return 0;
}

/*
 * The NSM's socket of @nks (locked), made on the first call that needs
 * it: SOCKET under the id @nks has.  A SOCKET given up after it left (a
 * fatal signal, the reply timeout) may yet create it: @nks keeps to the
 * NSM then, its later calls learn what the late reply said (a socket
 * made is taken, a failure tried again; -ETIMEDOUT while none came), and
 * nk_release() leaves the id to nk_sock_abandon().
 */
static int nk_sock_nsm(struct nk_sock *nks)
{
	struct nk_addr src[2];
	struct nk_reply reply = { .buf = src, .buf_len = sizeof(src) };
	struct nk_txbuf *tb;
	int err, status;

	if (READ_ONCE(nks->created) || nk_is_local(nks))
		return 0;
	if (!nk_dev_alive(nks->nd))
		return -ENETDOWN;
	if (nks->nsm_req) {
		spin_lock(&nks->lock);
		status = nks->late_req == nks->nsm_req ? nks->late_status : 1;
		spin_unlock(&nks->lock);
		if (status > 0)
			return -ETIMEDOUT;
		nks->nsm_req = 0;
		if (!status)
			goto made;
	}
	tb = nk_socket_req(nks, nks->id);
	if (!tb)
		return -ENOMEM;
	err = nk_sock_call(nks, tb, &reply, NK_XMIT_INTR);
	return nk_sock_made(nks, &reply, src, err);
made:
	WRITE_ONCE(nks->created, true);
	return 0;
}

/*
 * Whether @nks's SOCKET may go with the request that needs it
 * (nk_sock_nsm_with()): the socket is not made yet, no SOCKET of it was
 * given up, no option waits to be forwarded in between, and the engine
 * takes requests on a socket whose SOCKET is not answered yet
 * (NK_FEAT_PIPE).  Caller holds lock_sock.
 */
static bool nk_sock_nsm_pipe(struct nk_sock *nks)
{
	return !READ_ONCE(nks->created) && !nk_is_local(nks) &&
	       !nks->nsm_req &&
	       (nk_dev_features(nks->nd) & NK_FEAT_PIPE) &&
	       !nk_sock_opts(nks, true);
}

/*
 * nk_sock_nsm() and the request @tb that needs the socket, in one kick
 * and one wait (nk_sock_nsm_pipe() said yes): a connect() pays one round
 * trip to the NSM instead of two.  Return: the SOCKET's error, else
 * what nk_sock_call() of @tb returns.
 */
static int nk_sock_nsm_with(struct nk_sock *nks, struct nk_txbuf *tb,
			    struct nk_reply *reply)
{
	u32 fwd = le32_to_cpu(tb->hdr.fwd_cnt);
	struct nk_addr src[2];
	struct nk_reply sreply = { .buf = src, .buf_len = sizeof(src) };
	struct nk_txbuf *stb;
	int err, serr;

	stb = nk_socket_req(nks, nks->id);
	if (!stb) {
		nk_txbuf_free(tb);
		return -ENOMEM;
	}
	err = nk_call_pair(nks->nd, stb, &sreply, &serr, tb, reply,
			   NK_XMIT_INTR);
	serr = nk_sock_made(nks, &sreply, src,
			    nk_sock_call_done(nks, &sreply, 0, serr));
	err = nk_sock_call_done(nks, reply, fwd, err);
	return serr ?: err;
}

/*
 * Tell the NSM the socket is closed.  close() does not wait for the
 * answer, as it does not wait for TCP's FIN exchange: the id stays
 * reserved until the answer frees it (nk_rx_reply()).
 */
static void nk_sock_close(struct nk_sock *nks)
{
	struct nk_txbuf *tb;
	int err = -ENOMEM;

	/* Reserved before CLOSE goes out: the answer finds the reservation. */
	nk_sockid_retire(&nk_socks, nks->id);
	tb = nk_req_alloc(nks, NK_OP_CLOSE, 0);
	/* Nor does it wait for ring space: the transport queues it. */
	if (tb)
		err = nk_post(nks->nd, tb, NK_XMIT_QUEUE, NULL);
	if (!err)
		return;
	if (err != -ENODEV)
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: CLOSE not sent: %d\n", nks->id,
				     err);
	nk_sockid_remove(&nk_socks, nks->id);
}

static int nk_release(struct socket *sock)
{
	struct socket *lowers[NK_LOWER_MAX];
	struct sock *sk = sock->sk;
	struct nk_sock *nks;
	int i;

	if (!sk)
		return 0;
	nks = nk_sk(sk);

	lock_sock(sk);
	if (nk_is_local(nks)) {
		if (nks->id)
			nk_sockid_remove(&nk_socks, nks->id);
	} else if (nks->created && nk_dev_alive(nks->nd)) {
		nk_sock_sync_opts(nks);
		nk_sock_close(nks);
	} else if (nks->nsm_req) {
		/* Its SOCKET's late reply decides; this reference waits. */
		sock_hold(sk);
		nk_sock_abandon(nks, &(struct nk_reply){ .req_id = nks->nsm_req });
	} else {
		nk_sockid_remove(&nk_socks, nks->id);
	}

	spin_lock(&nks->lock);
	sk->sk_state = TCP_CLOSE;
	WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
	nks->revive = false;
	/* Readers of the table look at the halves under nks->lock. */
	lowers[0] = nks->lower;
	WRITE_ONCE(nks->lower, NULL);
	for (i = 1; i < NK_LOWER_MAX; i++) {
		lowers[i] = nks->lower_spent[i - 1];
		nks->lower_spent[i - 1] = NULL;
	}
	spin_unlock(&nks->lock);
	sock_orphan(sk);
	skb_queue_purge(&sk->sk_receive_queue);
	skb_queue_purge(&sk->sk_error_queue);
	release_sock(sk);

	for (i = 0; i < NK_LOWER_MAX; i++)
		if (lowers[i])
			sock_release(lowers[i]);
	sock->sk = NULL;
	sock_put(sk);
	return 0;
}
/* ------------------------------------------------------------------ */
/* The native half (see the notes at the top)                          */
/* ------------------------------------------------------------------ */

/* Where an address is, as the guest's own stack sees it. */
enum nk_where {
	NK_WHERE_REMOTE,	/* elsewhere: the NSM's */
	NK_WHERE_ANY,		/* the wildcard */
	NK_WHERE_LOOP,		/* 127.0.0.0/8, ::1 */
	NK_WHERE_OWN,		/* configured on a guest interface */
};

static enum nk_where nk_where4(struct net *net, __be32 a)
{
	if (a == htonl(INADDR_ANY))
		return NK_WHERE_ANY;
	if (ipv4_is_loopback(a))
		return NK_WHERE_LOOP;
	return inet_addr_type(net, a) == RTN_LOCAL ? NK_WHERE_OWN :
						     NK_WHERE_REMOTE;
}

/*
 * Where @addr of a socket of @family is.  A malformed address is
 * "remote": the NSM path reports its error as it always did.
 */
static enum nk_where nk_addr_where(struct net *net, const struct sockaddr *addr,
				   int len, int family)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

	if (len < (int)sizeof(addr->sa_family) || addr->sa_family != family)
		return NK_WHERE_REMOTE;
	if (family == AF_INET)
		return len < (int)sizeof(*sin) ? NK_WHERE_REMOTE :
		       nk_where4(net, sin->sin_addr.s_addr);
	if (len < SIN6_LEN_RFC2133)
		return NK_WHERE_REMOTE;
	if (ipv6_addr_v4mapped(&sin6->sin6_addr))
		return nk_where4(net, sin6->sin6_addr.s6_addr32[3]);
	if (ipv6_addr_any(&sin6->sin6_addr))
		return NK_WHERE_ANY;
	if (ipv6_addr_loopback(&sin6->sin6_addr))
		return NK_WHERE_LOOP;
	return ipv6_chk_addr(net, &sin6->sin6_addr, NULL, 0) ?
	       NK_WHERE_OWN : NK_WHERE_REMOTE;
}

/* The native half is bound (explicitly or by a connect or a send). */
static bool nk_lower_bound(const struct nk_sock *nks)
{
	return inet_sk(nks->lower->sk)->inet_num;
}

/*
 * Only the native half carries @nks (locked) from now on: the NSM's
 * socket is closed, and the nk_sock gets an id of its own for
 * /proc/net/netkernel (0 when none is left: it is not listed).
 */
static void nk_go_local(struct nk_sock *nks)
{
	u32 old = nks->id, id, window;

	nk_set_path(nks, NK_PATH_LOCAL);
	id = old;
	/* Made on the NSM (see nk_sock_nsm()): closed there, a new id. */
	if (nks->created) {
		if (nk_dev_alive(nks->nd))
			nk_sock_close(nks);
		else
			nk_sockid_remove(&nk_socks, old);
		if (nk_sock_id_alloc(nks, &id))
			id = 0;
	}
	spin_lock(&nks->lock);
	nks->id = id;
	nks->created = false;
	/* It promises the NSM nothing any more. */
	window = nks->rx.buf_alloc;
	nks->rx.buf_alloc = 0;
	nk_window_put(window);
	spin_unlock(&nks->lock);
}

/*
 * A new native half for @nks (locked) in place of one bound to a port the
 * NSM refused: with the old one's SOL_SOCKET options and IPV6_V6ONLY.
 * The old one cannot be unbound, nor freed while a lockless reader may
 * hold it: it waits in lower_spent[@slot] for nk_release().
 */
static int nk_lower_renew(struct nk_sock *nks, int slot)
{
	static const enum sock_flags flags[] = {
		SOCK_LINGER, SOCK_BROADCAST, SOCK_URGINLINE, SOCK_LOCALROUTE,
	};
	struct sock *old = nks->lower->sk, *new;
	struct socket *lower;
	int err, i;

	err = nk_lower_create(sock_net(&nks->sk), nks->family,
			      nks->sk.sk_type, nks->sk.sk_protocol, &lower);
	if (err)
		return err;
	/* Nobody else has @new yet. */
	new = lower->sk;
	new->sk_reuse = old->sk_reuse;
	new->sk_reuseport = old->sk_reuseport;
	new->sk_ipv6only = old->sk_ipv6only;
	new->sk_bound_dev_if = old->sk_bound_dev_if;
	new->sk_userlocks = old->sk_userlocks &
			    (SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK);
	WRITE_ONCE(new->sk_sndbuf, old->sk_sndbuf);
	WRITE_ONCE(new->sk_rcvbuf, old->sk_rcvbuf);
	WRITE_ONCE(new->sk_rcvtimeo, old->sk_rcvtimeo);
	WRITE_ONCE(new->sk_sndtimeo, old->sk_sndtimeo);
	WRITE_ONCE(new->sk_rcvlowat, old->sk_rcvlowat);
	new->sk_priority = old->sk_priority;
	new->sk_mark = old->sk_mark;
	new->sk_lingertime = old->sk_lingertime;
	for (i = 0; i < ARRAY_SIZE(flags); i++)
		if (sock_flag(old, flags[i]))
			sock_set_flag(new, flags[i]);
	if (sock_flag(old, SOCK_KEEPOPEN))
		sock_set_keepalive(new);
	nk_lower_attach(nks->sk.sk_socket, lower);
	spin_lock(&nks->lock);
	nks->lower_spent[slot] = nks->lower;
	WRITE_ONCE(nks->lower, lower);
	spin_unlock(&nks->lock);
	return 0;
}

/*
 * Bind both halves of @nks (locked) to @addr, a wildcard or an own
 * address, on the same port: the native half first, which picks the port
 * when @addr has none, then the NSM's.  The NSM's port space is not the
 * guest's (its TIME_WAIT connections of this guest, say): a port it
 * refuses is tried again with a new native half, up to NK_BIND_TRIES
 * times when the port was the guest's pick; otherwise bind() fails with
 * the NSM's error and the socket goes on as an NSM-only one.
 */
static int nk_sock_bind_req(struct nk_sock *nks, const struct nk_addr *na);

static int nk_dual_bind(struct nk_sock *nks, struct sockaddr *addr, int len)
{
	struct nk_addr na;
	int err, try;

	err = nk_addr_from_sockaddr(&na, addr, len);
	if (err)
		return err;
	for (try = 1; ; try++) {
		err = kernel_bind(nks->lower, addr, len);
		if (err)
			return err;
		if (na.port) {
			err = nk_sock_bind_req(nks, &na);
			break;
		}
		na.port = htons(inet_sk(nks->lower->sk)->inet_num);
		err = nk_sock_bind_req(nks, &na);
		na.port = 0;
		if (err != -EADDRINUSE || try == NK_BIND_TRIES ||
		    nk_lower_renew(nks, try - 1))
			break;
	}
	if (err)
		nk_set_path(nks, NK_PATH_NSM);
	return err;
}

/* Bind both halves to the wildcard, as an implicit bind does. */
static int nk_dual_autobind(struct nk_sock *nks)
{
	struct sockaddr_storage ss = { .ss_family = nks->family };

	if (nk_lower_bound(nks))
		return 0;
	return nk_dual_bind(nks, (struct sockaddr *)&ss,
			    nks->family == AF_INET ?
			    sizeof(struct sockaddr_in) :
			    sizeof(struct sockaddr_in6));
}

/*
 * A connection accepted on the native half of listener @nks (locked, or
 * local) becomes @newsock, a new local nk_sock.
 */
static int nk_accept_lower(struct nk_sock *nks, struct socket *newsock,
			   int flags)
{
	struct socket *lower;
	struct nk_sock *child;
	int err;

	err = kernel_accept(nks->lower, &lower, flags);
	if (err)
		return err;
	nk_dev_hold(nks->nd);
	child = nk_sock_alloc(sock_net(&nks->sk), nks->sk.sk_type,
			      nks->sk.sk_protocol, nks->family, nks->nd,
			      NK_PATH_LOCAL);
	if (!child) {
		sock_release(lower);
		return -ENOMEM;
	}
	child->domain = nks->domain;
	child->lower = lower;
	sock_graft(&child->sk, newsock);
	newsock->state = SS_CONNECTED;
	nk_lower_attach(newsock, lower);
	return 0;
}

/* Whether the native half of listener @nks has a connection waiting. */
static bool nk_lower_acceptable(const struct nk_sock *nks)
{
	struct socket *lower = nk_lower(nks);

	return lower &&
	       !reqsk_queue_empty(&inet_csk(lower->sk)->icsk_accept_queue);
}

/*
 * What the native half of @nks adds to poll(), of @events: readability of
 * a listener with both halves; that and an error (its sk_err or error
 * queue: EPOLLERR, EPOLLPRI with SO_SELECT_ERR_QUEUE) of such a datagram
 * socket.
 */
static __poll_t nk_lower_poll(struct file *file, const struct nk_sock *nks,
			      __poll_t events)
{
	struct socket *lower = nk_lower(nks);

	if (!lower || !file)
		return 0;
	return lower->ops->poll(file, lower, NULL) & events;
}

/*
 * setsockopt(SOL_SOCKET) of a socket with a native half, sent here by a
 * hook on sock_setsockopt() (nk_takeover.c): struct sock of each half
 * takes it, and a local socket answers with its native half's result.
 */
int nk_sock_sol_setsockopt(struct socket *sock, int level, int optname,
			   sockptr_t optval, unsigned int optlen)
{
	struct nk_sock *nks = nk_sk(sock->sk);
	struct socket *lower = nk_lower(nks);
	int err, lerr;

	err = sock_setsockopt(sock, level, optname, optval, optlen);
	if (!lower)
		return err;
	lerr = sock_setsockopt(lower, level, optname, optval, optlen);
	return nk_is_local(nks) ? lerr : err;
}

/* Called from the sock_setsockopt() hook. */
bool nk_sock_has_lower(const struct sock *sk)
{
	return nk_lower(nk_sk(sk));
}

/* Called from the sk_getsockopt() hook: the socket SOL_SOCKET reads. */
struct sock *nk_sock_local_sk(struct sock *sk)
{
	struct nk_sock *nks = nk_sk(sk);

	return nk_is_local(nks) ? nks->lower->sk : NULL;
}

const char *nk_sock_path_name(const struct nk_sock *nks)
{
	static const char * const names[] = {
		[NK_PATH_NSM] = "nsm",
		[NK_PATH_BOTH] = "both",
		[NK_PATH_LOCAL] = "local",
	};

	return names[READ_ONCE(nks->path)];
}

static void nk_addr_of(struct nk_addr *na, const struct sock *lsk, bool peer)
{
	const struct inet_sock *inet = inet_sk(lsk);

	memset(na, 0, sizeof(*na));
	na->family = cpu_to_le16(lsk->sk_family);
	na->port = peer ? inet->inet_dport : htons(inet->inet_num);
	if (lsk->sk_family == AF_INET)
		memcpy(na->addr, peer ? &inet->inet_daddr :
		       &inet->inet_rcv_saddr, 4);
#if IS_ENABLED(CONFIG_IPV6)
	else
		memcpy(na->addr, peer ? &lsk->sk_v6_daddr :
		       &lsk->sk_v6_rcv_saddr, 16);
#endif
}

/*
 * The inodes of @nks's native halves into @ino (NK_LOWER_MAX of them at
 * most); how many.  The kernel lists those sockets as its own, and they
 * are not to be listed: @nks is, once (nk_diag.c).  Called with the
 * nk_socks lock held; takes nks->lock, under which nk_release() takes the
 * halves away before it frees them.
 */
unsigned int nk_sock_lower_inodes(struct nk_sock *nks, unsigned long *ino)
{
	unsigned int n = 0;
	int i;

	spin_lock(&nks->lock);
	if (nks->lower)
		ino[n++] = SOCK_INODE(nks->lower)->i_ino;
	for (i = 0; i < ARRAY_SIZE(nks->lower_spent); i++)
		if (nks->lower_spent[i])
			ino[n++] = SOCK_INODE(nks->lower_spent[i])->i_ino;
	spin_unlock(&nks->lock);
	return n;
}

/*
 * /proc/net/netkernel's and the diag dumps' view of a local socket (the
 * nk_socks lock and nks->lock held: the socket and its native half live).
 */
void nk_sock_local_proc(struct nk_sock *nks, int *state, struct nk_addr *local,
			struct nk_addr *peer)
{
	const struct sock *lsk;

	if (!nks->lower)
		return;
	lsk = nks->lower->sk;
	*state = READ_ONCE(lsk->sk_state);
	nk_addr_of(local, lsk, false);
	if (inet_sk(lsk)->inet_dport)
		nk_addr_of(peer, lsk, true);
	else
		memset(peer, 0, sizeof(*peer));
}

/* ------------------------------------------------------------------ */
/* Operations common to both types                                     */
/* ------------------------------------------------------------------ */

/* BIND @na on the NSM (@nks locked). */
static int nk_sock_bind_req(struct nk_sock *nks, const struct nk_addr *na)
{
	struct nk_txbuf *tb;
	int err;

	err = nk_sock_nsm(nks);
	if (err)
		return err;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_BIND, sizeof(*na));
	if (tb)
		memcpy(tb->payload, na, sizeof(*na));
	err = nk_sock_simple(nks, tb);
	if (!err)
		nk_sock_getsockname(nks, NULL);
	return err;
}

/*
 * A loopback address binds the native half only; a wildcard or an own
 * address both halves, on one port; any other address the NSM's only.
 */
static int nk_bind(struct socket *sock, struct sockaddr *addr, int addr_len)
{
	struct nk_sock *nks = nk_sk(sock->sk);
	struct socket *lower = nk_lower(nks);
	struct nk_addr na;
	int err;

	err = nk_cgroup_bpf_check(sock->sk, nks->family, NK_BPF_BIND);
	if (err)
		return err;
	if (nk_is_local(nks))
		return lower->ops->bind(lower, addr, addr_len);

	lock_sock(sock->sk);
	if (nk_lower(nks)) {
		switch (nk_addr_where(sock_net(sock->sk), addr, addr_len,
				      nks->family)) {
		case NK_WHERE_LOOP:
			err = lower->ops->bind(lower, addr, addr_len);
			if (!err)
				nk_go_local(nks);
			goto out;
		case NK_WHERE_ANY:
		case NK_WHERE_OWN:
			err = nk_dual_bind(nks, addr, addr_len);
			goto out;
		default:
			nk_set_path(nks, NK_PATH_NSM);
			break;
		}
	}
	err = nk_sock_addr(nks, addr, addr_len, &na, true);
	if (!err && !nk_bind_port_allowed(sock->sk, &na))
		err = -EACCES;
	if (!err)
		err = nk_sock_bind_req(nks, &na);
out:
	release_sock(sock->sk);
	return err;
}

static int nk_getname(struct socket *sock, struct sockaddr *addr, int peer)
{
	struct nk_sock *nks = nk_sk(sock->sk);
	struct sockaddr_storage ss;
	struct nk_addr na;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->getname(nks->lower, addr, peer);
	lock_sock(sock->sk);
	/* Neither bound nor connected yet: as its native half. */
	if (!READ_ONCE(nks->created) && nks->lower) {
		err = nks->lower->ops->getname(nks->lower, addr, peer);
		release_sock(sock->sk);
		return err;
	}
	if (peer) {
		na = nks->peer;
		err = na.family && sock->sk->sk_state != TCP_CLOSE ?
		      0 : -ENOTCONN;
	} else {
		err = nk_sock_getsockname(nks, &na);
	}
	release_sock(sock->sk);
	if (err == -EPROTO)
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: bad address in GETSOCKNAME reply\n",
				     nks->id);
	if (err)
		return err;

	err = nk_addr_to_sockaddr(&na, &ss, nks->family);
	if (err < 0)
		return -EPROTO;
	memcpy(addr, &ss, err);
	return err;
}

static int nk_setsockopt(struct socket *sock, int level, int optname,
			 sockptr_t optval, unsigned int optlen)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct socket *lower = nk_lower(nks);
	struct nk_txbuf *tb;
	int err = 0;

	if (nk_is_local(nks))
		return lower->ops->setsockopt(lower, level, optname, optval,
					      optlen);
	if (optlen > nk_dev_max_payload(nks->nd))
		return -EINVAL;

	lock_sock(sk);
	err = nk_sock_nsm(nks);
	if (err)
		goto out;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_SETSOCKOPT, optlen);
	if (!tb) {
		err = -ENOMEM;
		goto out;
	}
	if (copy_from_sockptr(tb->payload, optval, optlen)) {
		nk_txbuf_free(tb);
		err = -EFAULT;
		goto out;
	}
	tb->hdr.arg[0] = cpu_to_le64((s64)level);
	tb->hdr.arg[1] = cpu_to_le64((s64)optname);
	release_sock(sk);
	err = nk_sock_opt_call(nks, tb, &(struct nk_reply){});
	/* Both halves may yet carry the traffic: the native one too. */
	lower = nk_lower(nks);
	if (!err && lower)
		lower->ops->setsockopt(lower, level, optname, optval, optlen);
	return err;
out:
	release_sock(sk);
	return err;
}

/*
 * Read option @level/@optname of the NSM's socket into @buf, which has
 * room for *@len bytes; *@len becomes the length of the value, at most
 * that (a longer one is cut, as getsockopt() cuts it).  The wait is that
 * of nk_sock_opt_call(), bounded by @timeout_ms (0: the reply timeout).
 * Takes no socket lock: nk_getsockopt() synchronises the SOL_SOCKET
 * options first, nk_diag.c does not (they are not what it reads).
 */
int nk_sock_getsockopt(struct nk_sock *nks, int level, int optname,
		       void *buf, u32 *len, unsigned int timeout_ms)
{
	struct nk_reply reply = { .buf = buf, .buf_len = *len };
	struct nk_txbuf *tb;
	int err;

	tb = nk_req_alloc(nks, NK_OP_GETSOCKOPT, 0);
	if (!tb)
		return -ENOMEM;
	tb->hdr.arg[0] = cpu_to_le64((s64)level);
	tb->hdr.arg[1] = cpu_to_le64((s64)optname);
	tb->hdr.arg[2] = cpu_to_le64(*len);
	err = nk_sock_call_timeout(nks, tb, &reply,
				   NK_XMIT_INTR | NK_CALL_INTR, timeout_ms);
	if (!err)
		*len = reply.len;
	return err;
}

static int nk_getsockopt(struct socket *sock, int level, int optname,
			 char __user *optval, int __user *optlen)
{
	struct nk_sock *nks = nk_sk(sock->sk);
	void *buf;
	int len, err;
	u32 got;

	if (nk_is_local(nks))
		return nks->lower->ops->getsockopt(nks->lower, level, optname,
						   optval, optlen);
	if (get_user(len, optlen))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	got = min_t(u32, len, nk_dev_max_payload(nks->nd));

	buf = kmalloc(got ?: 1, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	lock_sock(sock->sk);
	err = nk_sock_nsm(nks);
	if (!err)
		nk_sock_sync_opts(nks);
	release_sock(sock->sk);
	if (!err)
		err = nk_sock_getsockopt(nks, level, optname, buf, &got, 0);

	if (!err && (copy_to_user(optval, buf, got) ||
		     put_user(got, optlen)))
		err = -EFAULT;
	kfree(buf);
	return err;
}

/*
 * SIOCINQ of a stream, as tcp_inq(): the bytes not read, but only those
 * before the urgent mark while the byte there is not inline.  nks->lock
 * held.
 */
static u32 nk_urg_unread(struct nk_sock *nks)
{
	u32 unread = nk_credit_rx_unread(&nks->rx);
	u32 before = nks->urg_mark - READ_ONCE(nks->rx_seq);

	if (nks->urg_state != NK_URG_NONE && before < unread &&
	    !sock_flag(&nks->sk, SOCK_URGINLINE))
		return before;
	return unread;
}

static int nk_ioctl(struct socket *sock, unsigned int cmd, unsigned long arg)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_reply reply = {};
	struct sk_buff *skb;
	struct nk_txbuf *tb;
	u64 val;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->ioctl(nks->lower, cmd, arg);
	switch (cmd) {
	case SIOCINQ:
		if (sk->sk_state == TCP_LISTEN)
			return -EINVAL;
		if (nk_is_stream(sk)) {
			spin_lock(&nks->lock);
			val = nk_urg_unread(nks);
			spin_unlock(&nks->lock);
		} else {
			/* UDP: the size of the next datagram */
			spin_lock_irq(&sk->sk_receive_queue.lock);
			skb = skb_peek(&sk->sk_receive_queue);
			val = skb ? skb->len : 0;
			spin_unlock_irq(&sk->sk_receive_queue.lock);
		}
		break;
	case SIOCATMARK:
		/* As tcp_ioctl(): the next byte to read is the urgent mark. */
		if (!nk_is_stream(sk))
			return -ENOIOCTLCMD;
		spin_lock(&nks->lock);
		val = nks->urg_state != NK_URG_NONE &&
		      nks->urg_mark == READ_ONCE(nks->rx_seq);
		spin_unlock(&nks->lock);
		break;
	case SIOCOUTQ:
	case SIOCOUTQNSD:
		if (sk->sk_state == TCP_LISTEN)
			return -EINVAL;
		/* Nothing sent without the NSM's socket: as a native one. */
		if (!READ_ONCE(nks->created)) {
			val = 0;
			break;
		}
		lock_sock(sk);
		tb = nk_req_alloc(nks, NK_OP_IOCTL, 0);
		err = -ENOMEM;
		if (tb) {
			tb->hdr.arg[0] = cpu_to_le64(cmd == SIOCOUTQ ?
						     NK_IOC_OUTQ :
						     NK_IOC_OUTQNSD);
			err = nk_sock_call(nks, tb, &reply, NK_XMIT_INTR);
		}
		release_sock(sk);
		if (err)
			return err;
		/*
		 * The NSM counts its socket's queue and the guest data it
		 * holds; every SEND before this request reached it first (a
		 * socket's messages stay in order), so nothing is in flight.
		 */
		val = le64_to_cpu(reply.hdr.arg[0]);
		break;
	default:
		return -ENOIOCTLCMD;
	}
	return put_user((int)min_t(u64, val, INT_MAX), (int __user *)arg);
}

static int nk_shutdown(struct socket *sock, int how)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_txbuf *tb;
	int mask, err;

	if (nk_is_local(nks))
		return nks->lower->ops->shutdown(nks->lower, how);
	/* SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 -> RCV_SHUTDOWN/SEND_SHUTDOWN bits */
	mask = how + 1;
	if ((mask & ~SHUTDOWN_MASK) || !mask)
		return -EINVAL;

	lock_sock(sk);
	nk_sock_sync_opts(nks);
	if (nk_is_stream(sk) &&
	    !((1 << sk->sk_state) &
	      (TCPF_ESTABLISHED | TCPF_SYN_SENT | TCPF_LISTEN))) {
		err = -ENOTCONN;
		goto out;
	}
	err = nk_sock_nsm(nks);
	if (err)
		goto out;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_SHUTDOWN, 0);
	if (tb)
		tb->hdr.arg[0] = cpu_to_le64(how);
	err = nk_sock_simple(nks, tb);
	if (err)
		goto out;

	/* A listener's or a datagram socket's native half too. */
	if (nk_lower(nks))
		nks->lower->ops->shutdown(nks->lower, how);
	spin_lock(&nks->lock);
	WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | mask);
	/* A listener shut down for reading stops listening, as in TCP. */
	if (sk->sk_state == TCP_LISTEN && (mask & RCV_SHUTDOWN))
		sk->sk_state = TCP_CLOSE;
	spin_unlock(&nks->lock);
	sk->sk_state_change(sk);
out:
	release_sock(sk);
	return err;
}

/* Wait until the NSM gives credit; 0, or an error to return. */
static int nk_wait_credit(struct sock *sk, long *timeo, u32 need)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct nk_sock *nks = nk_sk(sk);
	int err = 0;

	add_wait_queue(sk_sleep(sk), &wait);
	for (;;) {
		if (READ_ONCE(sk->sk_err)) {
			err = sock_error(sk);
			break;
		}
		if (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN) {
			err = -EPIPE;
			break;
		}
		if (READ_ONCE(nks->reset)) {
			err = nk_sock_gone_err(nks);
			break;
		}
		if (!nk_dev_alive(nks->nd)) {
			err = -ENETDOWN;
			break;
		}
		spin_lock(&nks->lock);
		if (nk_credit_tx_space(&nks->tx) >= need) {
			spin_unlock(&nks->lock);
			break;
		}
		spin_unlock(&nks->lock);
		if (!*timeo) {
			err = -EAGAIN;
			break;
		}
		if (signal_pending(current)) {
			err = sock_intr_errno(*timeo);
			break;
		}
		sk_set_bit(SOCKWQ_ASYNC_NOSPACE, sk);
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
		sk_wait_event(sk, timeo,
			      nk_credit_tx_space(&nks->tx) >= need ||
			      READ_ONCE(sk->sk_err) || READ_ONCE(nks->reset) ||
			      !nk_dev_alive(nks->nd) ||
			      READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN,
			      &wait);
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	return err;
}

/*
 * Send @len bytes from @msg as one SEND (with @dest for datagrams).  The
 * caller checked the credit; the bytes are accounted here, before the SEND
 * is on the ring: the NSM's CREDIT for them may be handled before
 * nk_send() returns, and must find them counted.
 */
static int nk_send_chunk(struct nk_sock *nks, struct msghdr *msg, u32 len,
			 const struct nk_addr *dest, u16 flags)
{
	u32 off = dest ? sizeof(*dest) : 0;
	struct nk_txbuf *tb;
	u64 wire_flags = 0;
	int err, bad = 0;
	u32 fwd;

	tb = nk_req_alloc(nks, NK_OP_SEND, off + len);
	if (!tb)
		return -ENOMEM;
	if (dest) {
		memcpy(tb->payload, dest, sizeof(*dest));
		tb->hdr.flags |= cpu_to_le16(NK_F_ADDR);
	}
	if (copy_from_iter(tb->payload + off, len, &msg->msg_iter) != len) {
		nk_txbuf_free(tb);
		return -EFAULT;
	}
	if (msg->msg_flags & MSG_OOB)
		wire_flags |= NK_MSG_OOB;
	if (msg->msg_flags & MSG_DONTROUTE)
		wire_flags |= NK_MSG_DONTROUTE;
	if (msg->msg_flags & MSG_EOR)
		wire_flags |= NK_MSG_EOR;
	tb->hdr.arg[0] = cpu_to_le64(wire_flags);
	tb->hdr.flags |= cpu_to_le16(flags);
	fwd = le32_to_cpu(tb->hdr.fwd_cnt);

	spin_lock(&nks->lock);
	nk_credit_tx_send(&nks->tx, len);
	spin_unlock(&nks->lock);
	err = nk_send(nks->nd, tb, NK_XMIT_INTR, NULL);
	spin_lock(&nks->lock);
	if (err) {
		bad = nk_credit_tx_unsend(&nks->tx, len);
	} else {
		nks->bytes_sent += len;
		nk_credit_rx_queued(&nks->rx, fwd);
	}
	spin_unlock(&nks->lock);
	/* A full ring: the caller waits for room and sends these again. */
	if (err == -EAGAIN)
		iov_iter_revert(&msg->msg_iter, len);
	if (bad)
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: NSM announced consuming bytes never sent\n",
				     nks->id);
	return nk_err(err);
}

/*
 * The requestq is full: wait for room as sk_wait_event() waits, without
 * the socket lock, which other callers need meanwhile (a stalled engine
 * would leave them in uninterruptible sleep).  The caller checks the
 * socket's state again afterwards: it may have changed.
 */
static int nk_sock_wait_ring(struct sock *sk, long *timeo)
{
	int err;

	if (!*timeo)
		return -EAGAIN;
	release_sock(sk);
	err = nk_tx_wait(nk_sk(sk)->nd, nk_sk(sk)->id, NK_XMIT_INTR, timeo);
	lock_sock(sk);
	if (err == -ERESTARTSYS)
		return sock_intr_errno(*timeo);
	return nk_err(err);
}

/* EPIPE raises SIGPIPE unless MSG_NOSIGNAL, as sk_stream_error() does. */
static int nk_send_error(struct msghdr *msg, int err)
{
	if (err == -EPIPE && !(msg->msg_flags & MSG_NOSIGNAL))
		send_sig(SIGPIPE, current, 0);
	return err;
}

/* ------------------------------------------------------------------ */
/* SOCK_STREAM                                                         */
/* ------------------------------------------------------------------ */

static int nk_listen(struct socket *sock, int backlog)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_txbuf *tb;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->listen(nks->lower, backlog);
	lock_sock(sk);
	nk_sock_sync_opts(nks);
	if (sock->state != SS_UNCONNECTED ||
	    !((1 << sk->sk_state) & (TCPF_CLOSE | TCPF_LISTEN))) {
		err = -EINVAL;
		goto out;
	}
	/* Local clients reach the native half: on the NSM's port. */
	if (nk_lower(nks)) {
		err = nk_dual_autobind(nks);
		if (!err && nk_lower(nks))
			err = nks->lower->ops->listen(nks->lower, backlog);
		if (err)
			goto out;
	}
	err = nk_sock_nsm(nks);
	if (err)
		goto out;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_LISTEN, 0);
	if (tb)
		tb->hdr.arg[0] = cpu_to_le64((s64)backlog);
	err = nk_sock_simple(nks, tb);
	if (err)
		goto out;
	nks->backlog = backlog;
	spin_lock(&nks->lock);
	sk->sk_state = TCP_LISTEN;
	WRITE_ONCE(sk->sk_shutdown, 0);
	spin_unlock(&nks->lock);
	nk_sock_getsockname(nks, NULL);
out:
	release_sock(sk);
	return err;
}

/*
 * One ACCEPT request; -EAGAIN when no connection waits, or when the ring
 * is full and @nowait (a non-blocking accept() never waits for it).
 */
static int nk_accept_one(struct sock *sk, struct socket *newsock,
			 bool nowait)
{
	struct nk_sock *nks = nk_sk(sk), *child;
	struct nk_addr peer;
	struct nk_reply reply = { .buf = &peer, .buf_len = sizeof(peer) };
	struct nk_txbuf *tb;
	u32 seq, fwd;
	int err;

	/*
	 * An EV_ACCEPT that arrives while the request is out may count the
	 * queue before or after this ACCEPT took its connection: its count
	 * is kept then, since too high a count costs one -EAGAIN but too
	 * low a one hides a waiting connection from poll().
	 */
	seq = READ_ONCE(nks->accept_seq);
	nk_dev_hold(nks->nd);
	child = nk_sock_alloc(sock_net(sk), sk->sk_type, sk->sk_protocol,
			      nks->family, nks->nd, NK_PATH_NSM);
	if (!child)
		return -ENOMEM;
	child->domain = nks->domain;

	tb = nk_req_alloc(nks, NK_OP_ACCEPT, 0);
	if (!tb) {
		err = -ENOMEM;
		goto fail;
	}
	tb->hdr.arg[0] = cpu_to_le64(child->id);
	/* The new socket's receive credit rides in the ACCEPT itself. */
	nk_sock_fill_credit(child, &tb->hdr);
	fwd = le32_to_cpu(tb->hdr.fwd_cnt);
	err = nk_call(nks->nd, tb, &reply,
		      NK_XMIT_INTR | (nowait ? NK_CALL_NOWAIT : 0));
	if (reply.req_id)
		nk_sock_credit_sent(child, fwd);
	if (err) {
		err = nk_err(err);
		goto fail;
	}
	if (reply.len != sizeof(peer) || nk_addr_check(&peer)) {
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: bad peer address in ACCEPT reply\n",
				     nks->id);
		memset(&peer, 0, sizeof(peer));
	}

	nk_sock_apply_credit(child, &reply.hdr);
	WRITE_ONCE(child->created, true);
	child->peer = peer;
	spin_lock(&child->lock);
	if (!child->reset)
		child->sk.sk_state = TCP_ESTABLISHED;
	spin_unlock(&child->lock);

	spin_lock(&nks->lock);
	if (nks->accept_seq == seq && nks->accept_pending)
		nks->accept_pending--;
	spin_unlock(&nks->lock);

	sock_graft(&child->sk, newsock);
	newsock->state = SS_CONNECTED;
	nk_sock_getsockname(child, NULL);
	return 0;

fail:
	/* The NSM said so (not the ring): none waits. */
	if (err == -EAGAIN && reply.hdr.op) {
		spin_lock(&nks->lock);
		if (nks->accept_seq == seq)
			nks->accept_pending = 0;
		spin_unlock(&nks->lock);
	}
	nk_sock_abandon(child, &reply);
	return err;
}

static int nk_do_accept(struct socket *sock, struct socket *newsock,
			int flags)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	long timeo;
	u32 seq;
	int err;

	/* The native half waits as TCP does; the nk_sock stays unlocked. */
	if (nk_is_local(nks))
		return nk_accept_lower(nks, newsock, flags);
	lock_sock(sk);
	timeo = sock_rcvtimeo(sk, flags & O_NONBLOCK);
	add_wait_queue(sk_sleep(sk), &wait);
	for (;;) {
		if (sk->sk_state != TCP_LISTEN) {
			/*
			 * Not listening (any more): -EINVAL as in TCP, or why
			 * the listener was reset (the NSM or the device lost).
			 */
			err = READ_ONCE(nks->reset) ? sock_error(sk) : 0;
			err = err ?: -EINVAL;
			break;
		}
		seq = READ_ONCE(nks->accept_seq);
		/* A local client first: it costs no request. */
		err = nk_lower(nks) ?
		      nk_accept_lower(nks, newsock, O_NONBLOCK) : -EAGAIN;
		if (err != -EAGAIN)
			break;
		/*
		 * Nothing to accept from the NSM while its side is being made
		 * again, or while it announced no connection: it announces
		 * every one (EV_ACCEPT, which poll() counts on too, wakes this
		 * loop), so a listener woken by local clients asks it nothing.
		 */
		err = READ_ONCE(nks->revive) || !READ_ONCE(nks->accept_pending) ?
		      -EAGAIN : nk_accept_one(sk, newsock, !timeo);
		if (err != -EAGAIN)
			break;
		if (!timeo)
			break;
		if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
			break;
		}
		sk_wait_event(sk, &timeo,
			      READ_ONCE(nks->accept_seq) != seq ||
			      nk_lower_acceptable(nks) ||
			      READ_ONCE(sk->sk_state) != TCP_LISTEN ||
			      !nk_dev_alive(nks->nd), &wait);
		if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
			break;
		}
		if (!nk_dev_alive(nks->nd)) {
			err = -ENETDOWN;
			break;
		}
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	release_sock(sk);
	return err;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
static int nk_accept(struct socket *sock, struct socket *newsock,
		     struct proto_accept_arg *arg)
{
	return nk_do_accept(sock, newsock, arg->flags);
}
#else
static int nk_accept(struct socket *sock, struct socket *newsock, int flags,
		     bool kern)
{
	return nk_do_accept(sock, newsock, flags);
}
#endif

/*
 * connect(AF_UNSPEC), as tcp_disconnect(): nothing to do on a socket
 * never connected; a listener stops listening; a connection is reset
 * (its peer reads ECONNRESET, and so does this socket, from the NSM's
 * EV_ERROR), and is left closed for good: sending fails with EPIPE,
 * reading finds end-of-file, and it cannot connect again (see the notes).
 * Called with the socket locked.
 */
static int nk_stream_disconnect(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	bool listener = sk->sk_state == TCP_LISTEN;
	struct nk_txbuf *tb;
	int err;

	if (sk->sk_state == TCP_CLOSE && sock->state == SS_UNCONNECTED)
		return 0;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_CONNECT, sizeof(struct nk_addr));
	if (tb)
		memset(tb->payload, 0, sizeof(struct nk_addr));
	err = nk_sock_simple(nks, tb);
	if (err)
		return err;
	spin_lock(&nks->lock);
	sk->sk_state = TCP_CLOSE;
	nks->accept_pending = 0;
	if (!listener)
		WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
	spin_unlock(&nks->lock);
	memset(&nks->peer, 0, sizeof(nks->peer));
	sock->state = listener ? SS_UNCONNECTED : SS_DISCONNECTING;
	sk->sk_state_change(sk);
	return 0;
}

static int nk_stream_connect(struct socket *sock, struct sockaddr *addr,
			     int addr_len, int flags)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_reply reply = {};
	struct nk_txbuf *tb;
	struct nk_addr na;
	long timeo;
	bool pipe;
	u16 known;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->connect(nks->lower, addr, addr_len,
						flags);
	lock_sock(sk);
	if (addr_len >= (int)sizeof(addr->sa_family) &&
	    addr->sa_family == AF_UNSPEC) {
		err = nk_stream_disconnect(sock);
		/* A listener's native half stops listening too. */
		if (!err && nk_lower(nks))
			nks->lower->ops->connect(nks->lower, addr, addr_len,
						 flags);
		goto out;
	}
	switch (sock->state) {
	case SS_DISCONNECTING:
		/* A connection dissolved by connect(AF_UNSPEC). */
		err = -EOPNOTSUPP;
		goto out;
	case SS_CONNECTED:
		err = -EISCONN;
		goto out;
	case SS_CONNECTING:
		/* A connect() in progress, or completed since. */
		err = -EALREADY;
		if (sk->sk_state == TCP_SYN_SENT && !(flags & O_NONBLOCK))
			goto wait;
		if (sk->sk_state != TCP_SYN_SENT)
			goto done;
		goto out;
	default:
		break;
	}
	if (sk->sk_state != TCP_CLOSE) {
		err = -EISCONN;
		goto out;
	}
	err = nk_cgroup_bpf_check(sk, nks->family, NK_BPF_CONNECT);
	if (err)
		goto out;
	/* A local peer: the native half alone, from now on. */
	if (nk_lower(nks)) {
		if (nk_addr_where(sock_net(sk), addr, addr_len,
				  nks->family) != NK_WHERE_REMOTE) {
			nk_go_local(nks);
			release_sock(sk);
			return nks->lower->ops->connect(nks->lower, addr,
							addr_len, flags);
		}
		nk_set_path(nks, NK_PATH_NSM);
	}
	err = nk_sock_addr(nks, addr, addr_len, &na, false);
	if (err)
		goto out;
	/* SOCKET and CONNECT in one go when nothing goes in between. */
	pipe = nk_sock_nsm_pipe(nks);
	if (!pipe) {
		err = nk_sock_nsm(nks);
		if (err)
			goto out;
		nk_sock_sync_opts(nks);
	}
	tb = nk_req_alloc(nks, NK_OP_CONNECT, sizeof(na));
	if (!tb) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(tb->payload, &na, sizeof(na));
	/*
	 * Events may overtake our wake-up: be SYN_SENT before asking.  The
	 * local address changes now; EV_CONNECTED tells the new one.
	 */
	spin_lock(&nks->lock);
	sk->sk_state = TCP_SYN_SENT;
	WRITE_ONCE(sk->sk_shutdown, 0);
	memset(&nks->local, 0, sizeof(nks->local));
	spin_unlock(&nks->lock);
	nks->peer = na;

	err = pipe ? nk_sock_nsm_with(nks, tb, &reply) :
		     nk_sock_call(nks, tb, &reply, NK_XMIT_INTR);
	if (err && err != -EINPROGRESS) {
		spin_lock(&nks->lock);
		if (sk->sk_state == TCP_SYN_SENT)
			sk->sk_state = TCP_CLOSE;
		spin_unlock(&nks->lock);
		memset(&nks->peer, 0, sizeof(nks->peer));
		goto out;
	}
	if (!err) {
		spin_lock(&nks->lock);
		if (sk->sk_state == TCP_SYN_SENT)
			sk->sk_state = TCP_ESTABLISHED;
		spin_unlock(&nks->lock);
	}
	sock->state = SS_CONNECTING;
	/*
	 * The NSM's connect() did not complete at once: a non-blocking
	 * caller gets -EINPROGRESS, as from TCP over a network, even when
	 * EV_CONNECTED or EV_ERROR has already arrived; poll() and SO_ERROR
	 * report the outcome.
	 */
	if (err == -EINPROGRESS && !sock_sndtimeo(sk, flags & O_NONBLOCK))
		goto out;
	err = -EINPROGRESS;

wait:
	timeo = sock_sndtimeo(sk, flags & O_NONBLOCK);
	if (sk->sk_state == TCP_SYN_SENT) {
		if (!timeo)
			goto out;
		add_wait_queue(sk_sleep(sk), &wait);
		while (READ_ONCE(sk->sk_state) == TCP_SYN_SENT) {
			if (!timeo || signal_pending(current))
				break;
			sk_wait_event(sk, &timeo,
				      READ_ONCE(sk->sk_state) != TCP_SYN_SENT,
				      &wait);
		}
		remove_wait_queue(sk_sleep(sk), &wait);
		if (sk->sk_state == TCP_SYN_SENT) {
			/* Still connecting: -EINPROGRESS on timeout, as TCP. */
			if (signal_pending(current))
				err = sock_intr_errno(timeo);
			goto out;
		}
	}
done:
	if (sk->sk_state != TCP_ESTABLISHED) {
		err = sock_error(sk) ?: -ECONNABORTED;
		sock->state = SS_UNCONNECTED;
		memset(&nks->peer, 0, sizeof(nks->peer));
		goto out;
	}
	sock->state = SS_CONNECTED;
	err = 0;
	spin_lock(&nks->lock);
	known = nks->local.family;
	spin_unlock(&nks->lock);
	if (!known)
		nk_sock_getsockname(nks, NULL);
out:
	release_sock(sk);
	return err;
}

static __poll_t nk_stream_poll(struct file *file, struct socket *sock,
			       poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	int state, shutdown;
	__poll_t mask = 0;
	u32 unread, space;
	bool closed;

	/* The native half wakes this socket's wait queue too. */
	sock_poll_wait(file, sock, wait);
	if (nk_is_local(nks))
		return nks->lower->ops->poll(file, nks->lower, NULL);
	state = READ_ONCE(sk->sk_state);
	shutdown = READ_ONCE(sk->sk_shutdown);

	if (state == TCP_LISTEN)
		return (READ_ONCE(nks->accept_pending) ?
			EPOLLIN | EPOLLRDNORM : 0) |
		       nk_lower_poll(file, nks, EPOLLIN | EPOLLRDNORM);

	if (READ_ONCE(sk->sk_err))
		mask |= EPOLLERR;
	if (shutdown == SHUTDOWN_MASK || state == TCP_CLOSE)
		mask |= EPOLLHUP;
	if (shutdown & RCV_SHUTDOWN)
		mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
	if (state == TCP_SYN_SENT)
		return mask;

	spin_lock(&nks->lock);
	unread = nk_credit_rx_unread(&nks->rx);
	/* As tcp_poll(): the urgent byte at the mark is not data to read. */
	if (nks->urg_state != NK_URG_NONE && unread &&
	    nks->urg_mark == READ_ONCE(nks->rx_seq) &&
	    !sock_flag(sk, SOCK_URGINLINE))
		unread--;
	closed = nk_credit_rx_closed(&nks->rx);
	space = nk_credit_tx_space(&nks->tx);
	spin_unlock(&nks->lock);

	if (unread && (unread >= sock_rcvlowat(sk, 0, INT_MAX) || closed))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (READ_ONCE(nks->urg_state) == NK_URG_VALID)
		mask |= EPOLLPRI;
	if (shutdown & SEND_SHUTDOWN || state != TCP_ESTABLISHED || space) {
		mask |= EPOLLOUT | EPOLLWRNORM;
	} else {
		sk_set_bit(SOCKWQ_ASYNC_NOSPACE, sk);
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
	}
	return mask;
}

static int nk_stream_sendmsg(struct socket *sock, struct msghdr *msg,
			     size_t len)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	u32 max = nk_dev_max_payload(nks->nd);
	size_t copied = 0;
	long timeo;
	u32 chunk;
	u16 more;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->sendmsg(nks->lower, msg, len);

	err = nk_cgroup_bpf_check(sk, nks->family, NK_BPF_SEND);
	if (err)
		return err;
	lock_sock(sk);
	nk_sock_sync_opts(nks);
	timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);

	if (sk->sk_state == TCP_SYN_SENT) {
		DEFINE_WAIT_FUNC(wait, woken_wake_function);

		add_wait_queue(sk_sleep(sk), &wait);
		while (READ_ONCE(sk->sk_state) == TCP_SYN_SENT && timeo &&
		       !signal_pending(current))
			sk_wait_event(sk, &timeo,
				      READ_ONCE(sk->sk_state) != TCP_SYN_SENT,
				      &wait);
		remove_wait_queue(sk_sleep(sk), &wait);
		if (sk->sk_state == TCP_SYN_SENT) {
			err = timeo ? sock_intr_errno(timeo) : -EAGAIN;
			goto out;
		}
	}

	while (copied < len) {
		if (READ_ONCE(sk->sk_err)) {
			err = sock_error(sk);
			break;
		}
		if (sk->sk_state != TCP_ESTABLISHED ||
		    READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN) {
			err = -EPIPE;
			break;
		}
		err = nk_wait_credit(sk, &timeo, 1);
		if (err)
			break;

		spin_lock(&nks->lock);
		chunk = min_t(size_t, len - copied,
			      min(max, nk_credit_tx_space(&nks->tx)));
		spin_unlock(&nks->lock);
		more = copied + chunk < len || msg->msg_flags & MSG_MORE ?
		       NK_F_MORE : 0;
		err = nk_send_chunk(nks, msg, chunk, NULL, more);
		if (err == -EAGAIN) {
			err = nk_sock_wait_ring(sk, &timeo);
			if (err)
				break;
			continue;
		}
		if (err)
			break;
		copied += chunk;
	}
out:
	release_sock(sk);
	if (copied)
		return copied;
	return nk_send_error(msg, err);
}

/*
 * A stream skb's place in the stream: the sequence number (rx.rx_cnt when
 * it was queued) of its first byte.  Readers take bytes off the queue up
 * to nks->rx_seq; an skb whose bytes are all read is unlinked.  (An skb
 * may be an eventq buffer lent by the transport, whose data is in a
 * fragment, so it is not pulled.)
 */
struct nk_skb_cb {
	u32 seq;
};

#define NK_SKB_CB(skb)	((struct nk_skb_cb *)(skb)->cb)

/*
 * A datagram skb (on sk_receive_queue or sk_error_queue): its sender, or
 * an error entry's destination, and whether its struct nk_anc sits in its
 * headroom, at skb->head.  The end of cb is the socket layer's
 * (SOCK_SKB_CB: the drop count).
 */
struct nk_dgram_cb {
	struct nk_addr from;
	bool anc;
};

#define NK_DGRAM_CB(skb)	((struct nk_dgram_cb *)(skb)->cb)

static const struct nk_anc *nk_skb_anc(const struct sk_buff *skb)
{
	return NK_DGRAM_CB(skb)->anc ? (const struct nk_anc *)skb->head : NULL;
}

/*
 * The queued skb that holds stream byte @seq, with @seq's offset in it and
 * its length at the time, or NULL when that byte has not arrived.  The
 * skb stays queued while the caller holds lock_sock: only readers unlink.
 */
static struct sk_buff *nk_rxq_find(struct sock *sk, u32 seq, u32 *off,
				   u32 *len)
{
	struct sk_buff_head *q = &sk->sk_receive_queue;
	struct sk_buff *skb, *found = NULL;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	skb_queue_walk(q, skb) {
		if (seq - NK_SKB_CB(skb)->seq < skb->len) {
			*off = seq - NK_SKB_CB(skb)->seq;
			*len = skb->len;
			found = skb;
			break;
		}
	}
	spin_unlock_irqrestore(&q->lock, flags);
	return found;
}

/*
 * Readers took the bytes of @skb before nks->rx_seq: free it if that is
 * all of them (nk_ev_data() may have added to it meanwhile).
 */
static void nk_rxq_read(struct nk_sock *nks, struct sk_buff *skb)
{
	struct sk_buff_head *q = &nks->sk.sk_receive_queue;
	unsigned long flags;
	bool done;

	spin_lock_irqsave(&q->lock, flags);
	done = nks->rx_seq - NK_SKB_CB(skb)->seq == skb->len;
	if (done)
		__skb_unlink(skb, q);
	spin_unlock_irqrestore(&q->lock, flags);
	if (done)
		consume_skb(skb);
}

/*
 * MSG_PEEK reads from peek_seq, a sequence number, as TCP does: the queue
 * may change while the reader sleeps (sk_wait_event() releases the socket
 * lock), and when another reader took bytes meanwhile, peeking goes on
 * from what is left.
 */
/*
 * recv(MSG_OOB), as tcp_recv_urg(): the urgent byte, once (MSG_PEEK
 * leaves it); -EINVAL with SO_OOBINLINE, without urgent data or when it
 * was taken.  It never waits.
 */
static int nk_stream_recv_urg(struct nk_sock *nks, struct msghdr *msg,
			      size_t len, int flags)
{
	struct sock *sk = &nks->sk;
	int err = -EINVAL;
	u8 byte = 0;

	if (READ_ONCE(sk->sk_state) == TCP_LISTEN)
		return -ENOTCONN;
	spin_lock(&nks->lock);
	if (!sock_flag(sk, SOCK_URGINLINE) &&
	    nks->urg_state == NK_URG_VALID) {
		byte = nks->urg_byte;
		if (!(flags & MSG_PEEK))
			WRITE_ONCE(nks->urg_state, NK_URG_READ);
		err = 0;
	}
	spin_unlock(&nks->lock);
	if (err)
		return err;
	msg->msg_flags |= MSG_OOB;
	if (!len) {
		msg->msg_flags |= MSG_TRUNC;
		return 0;
	}
	if (!(flags & MSG_TRUNC) && memcpy_to_msg(msg, &byte, 1))
		return -EFAULT;
	return 1;
}

/*
 * The bytes a read from @seq may take before it stops at the urgent mark,
 * as tcp_recvmsg() stops there: 0 at the mark, U32_MAX with no mark ahead.
 * The urgent byte is in the stream, at the mark (NK_SOCK_URG): a read
 * that starts there skips it, unless SO_OOBINLINE, and goes on.
 */
static u32 nk_urg_room(struct nk_sock *nks, u32 seq)
{
	u32 room = U32_MAX;

	spin_lock(&nks->lock);
	if (nks->urg_state != NK_URG_NONE && (s32)(nks->urg_mark - seq) >= 0)
		room = nks->urg_mark - seq;
	spin_unlock(&nks->lock);
	return room;
}

/* Reads went past the mark: the urgent data is gone, as in tcp_recvmsg(). */
static void nk_urg_passed(struct nk_sock *nks)
{
	spin_lock(&nks->lock);
	if (nks->urg_state != NK_URG_NONE &&
	    (s32)(nks->rx_seq - nks->urg_mark) > 0)
		WRITE_ONCE(nks->urg_state, NK_URG_NONE);
	spin_unlock(&nks->lock);
}

static int nk_stream_recvmsg(struct socket *sock, struct msghdr *msg,
			     size_t len, int flags)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct sk_buff *skb = NULL;
	bool peek = flags & MSG_PEEK;
	size_t copied = 0;
	u32 consumed = 0, rx_seen, off, skb_len, peek_seq, *seq;
	int target, err = 0;
	long timeo;
	u32 chunk, room;

	if (nk_is_local(nks))
		return nks->lower->ops->recvmsg(nks->lower, msg, len, flags);

	if (flags & MSG_OOB)
		return nk_stream_recv_urg(nks, msg, len, flags);
	if (flags & MSG_ERRQUEUE)
		return -EAGAIN;

	lock_sock(sk);
	nk_sock_sync_opts(nks);
	if (sk->sk_state == TCP_LISTEN) {
		err = -ENOTCONN;
		goto out;
	}
	target = sock_rcvlowat(sk, flags & MSG_WAITALL, len);
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	peek_seq = nks->rx_seq;
	seq = peek ? &peek_seq : &nks->rx_seq;

	while (copied < len) {
		rx_seen = READ_ONCE(nks->rx.rx_cnt);
		/* Stop at the urgent mark; a read that starts there passes it. */
		room = nk_urg_room(nks, *seq);
		skb = nk_rxq_find(sk, *seq, &off, &skb_len);
		if (!room && copied)
			break;
		if (!room && skb && !sock_flag(sk, SOCK_URGINLINE)) {
			/* The urgent byte, not part of the data: skipped. */
			*seq += 1;
			if (!peek) {
				consumed++;
				nk_rxq_read(nks, skb);
				nk_urg_passed(nks);
			}
			continue;
		}
		if (!room)
			room = U32_MAX;
		if (skb) {
			chunk = min_t(size_t, min(skb_len - off, room),
				      len - copied);
			if (!(flags & MSG_TRUNC) &&
			    skb_copy_datagram_msg(skb, off, msg, chunk)) {
				err = -EFAULT;
				break;
			}
			copied += chunk;
			*seq += chunk;
			if (!peek) {
				consumed += chunk;
				nk_rxq_read(nks, skb);
				nk_urg_passed(nks);
			}
			continue;
		}
		if (copied >= target)
			break;
		if (READ_ONCE(sk->sk_err)) {
			if (!copied)
				err = sock_error(sk);
			break;
		}
		if (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN)
			break;
		if (sk->sk_state == TCP_CLOSE) {
			if (!copied && !sock_flag(sk, SOCK_DONE))
				err = -ENOTCONN;
			break;
		}
		if (!timeo) {
			err = -EAGAIN;
			break;
		}
		if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
			break;
		}
		/* Announce what was consumed before sleeping on more. */
		nk_sock_credit_consumed(nks, consumed,
					NK_RX_DRAINED | NK_RX_FLUSH);
		consumed = 0;
		add_wait_queue(sk_sleep(sk), &wait);
		sk_wait_event(sk, &timeo,
			      READ_ONCE(nks->rx.rx_cnt) != rx_seen ||
			      READ_ONCE(sk->sk_err) ||
			      READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN ||
			      READ_ONCE(sk->sk_state) == TCP_CLOSE, &wait);
		remove_wait_queue(sk_sleep(sk), &wait);
		/* Another reader took bytes while we slept. */
		if (peek && peek_seq - copied != nks->rx_seq)
			peek_seq = nks->rx_seq;
	}
	nk_sock_credit_consumed(nks, consumed, skb ? 0 : NK_RX_DRAINED);
out:
	release_sock(sk);
	if (copied)
		return copied;
	return err;
}

/* ------------------------------------------------------------------ */
/* SOCK_DGRAM                                                          */
/* ------------------------------------------------------------------ */

static int nk_dgram_connect(struct socket *sock, struct sockaddr *addr,
			    int addr_len, int flags)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_txbuf *tb;
	struct nk_addr na;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->connect(nks->lower, addr, addr_len,
						flags);
	if (addr_len >= (int)sizeof(addr->sa_family) &&
	    addr->sa_family == AF_UNSPEC) {
		/* Dissolve the association. */
		memset(&na, 0, sizeof(na));
		na.family = cpu_to_le16(AF_UNSPEC);
	} else {
		err = nk_cgroup_bpf_check(sk, nks->family, NK_BPF_CONNECT);
		if (err)
			return err;
		/* A local peer: the native half alone; a remote one not. */
		lock_sock(sk);
		if (nk_lower(nks)) {
			if (nk_addr_where(sock_net(sk), addr, addr_len,
					  nks->family) != NK_WHERE_REMOTE) {
				nk_go_local(nks);
				release_sock(sk);
				return nks->lower->ops->connect(nks->lower,
								addr, addr_len,
								flags);
			}
			nk_set_path(nks, NK_PATH_NSM);
		}
		release_sock(sk);
		err = nk_sock_addr(nks, addr, addr_len, &na, false);
		if (err)
			return err;
	}

	lock_sock(sk);
	/* Not on the NSM yet, so not connected: nothing to dissolve. */
	if (na.family == cpu_to_le16(AF_UNSPEC) && !READ_ONCE(nks->created)) {
		err = 0;
		goto out;
	}
	err = nk_sock_nsm(nks);
	if (err)
		goto out;
	nk_sock_sync_opts(nks);
	tb = nk_req_alloc(nks, NK_OP_CONNECT, sizeof(na));
	if (tb)
		memcpy(tb->payload, &na, sizeof(na));
	err = nk_sock_simple(nks, tb);
	if (!err) {
		bool connected = na.family != cpu_to_le16(AF_UNSPEC);

		nks->peer = connected ? na : (struct nk_addr){};
		spin_lock(&nks->lock);
		sk->sk_state = connected ? TCP_ESTABLISHED : TCP_CLOSE;
		spin_unlock(&nks->lock);
		sock->state = connected ? SS_CONNECTED : SS_UNCONNECTED;
		nk_sock_getsockname(nks, NULL);
	}
out:
	release_sock(sk);
	return err;
}

static __poll_t nk_dgram_poll(struct file *file, struct socket *sock,
			      poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	__poll_t mask = 0;
	int shutdown;

	/* The native half wakes this socket's wait queue too. */
	sock_poll_wait(file, sock, wait);
	if (nk_is_local(nks))
		return nks->lower->ops->poll(file, nks->lower, NULL);
	mask = nk_lower_poll(file, nks, EPOLLIN | EPOLLRDNORM | EPOLLERR |
					  EPOLLPRI);
	shutdown = READ_ONCE(sk->sk_shutdown);
	if (READ_ONCE(sk->sk_err) ||
	    !skb_queue_empty_lockless(&sk->sk_error_queue))
		mask |= EPOLLERR |
			(sock_flag(sk, SOCK_SELECT_ERR_QUEUE) ? EPOLLPRI : 0);
	if (shutdown == SHUTDOWN_MASK)
		mask |= EPOLLHUP;
	if (shutdown & RCV_SHUTDOWN)
		mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
	if (!skb_queue_empty_lockless(&sk->sk_receive_queue))
		mask |= EPOLLIN | EPOLLRDNORM;

	spin_lock(&nks->lock);
	if (nk_credit_tx_space(&nks->tx) >= nk_dev_max_payload(nks->nd) ||
	    nks->reset)
		mask |= EPOLLOUT | EPOLLWRNORM;
	else
		sk_set_bit(SOCKWQ_ASYNC_NOSPACE, sk);
	spin_unlock(&nks->lock);
	return mask;
}

/*
 * Whether @a (4 bytes with @v4, else 16) is one of the guest's source
 * addresses, or any: the addresses the NSM sends this socket's datagrams
 * from.  A v4-mapped IPv6 address is its IPv4 one.  Unknown (an engine
 * without NK_FEAT_ANC): any address passes, as it did before.
 */
static bool nk_src_ours(const struct nk_sock *nks, const u8 *a, bool v4)
{
	static const u8 any[16];
	int i;

	if (!v4 && ipv6_addr_v4mapped((const struct in6_addr *)a)) {
		a += 12;
		v4 = true;
	}
	if (!memcmp(a, any, v4 ? 4 : 16) || !nks->nsrc)
		return true;
	for (i = 0; i < nks->nsrc; i++)
		if (le16_to_cpu(nks->src[i].family) == (v4 ? AF_INET : AF_INET6) &&
		    !memcmp(nks->src[i].addr, a, v4 ? 4 : 16))
			return true;
	return false;
}

/*
 * sendmsg()'s IP_PKTINFO and (an AF_INET6 socket's) IPV6_PKTINFO, with
 * the errors ip_cmsg_send(), the IPv4 route lookup and
 * ip6_datagram_send_ctl() give: a wrong length -EINVAL; an IPv4 source
 * that is multicast, limited broadcast or in 0/8 -EINVAL, one that is
 * not the guest's -ENETUNREACH, then an interface the guest does not
 * have -ENODEV; IPv6 checks the interface first, and a source not the
 * guest's is -EINVAL.  The guest's own address (or none) needs nothing
 * more: the NSM sends from it anyway, through its own interfaces.  Other
 * control messages are not looked at.  lock_sock is held.
 */
static int nk_dgram_cmsg_check(struct nk_sock *nks, struct msghdr *msg)
{
	struct net *net = sock_net(&nks->sk);
	struct in6_pktinfo pi6;
	struct in_pktinfo pi;
	struct cmsghdr *c;
	bool nodev;

	if (!msg->msg_controllen)
		return 0;
	for_each_cmsghdr(c, msg) {
		if (!CMSG_OK(msg, c))
			return -EINVAL;
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO) {
			if (c->cmsg_len != CMSG_LEN(sizeof(pi)))
				return -EINVAL;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			if (ipv4_is_multicast(pi.ipi_spec_dst.s_addr) ||
			    ipv4_is_lbcast(pi.ipi_spec_dst.s_addr) ||
			    (pi.ipi_spec_dst.s_addr &&
			     ipv4_is_zeronet(pi.ipi_spec_dst.s_addr)))
				return -EINVAL;
			if (!nk_src_ours(nks, (u8 *)&pi.ipi_spec_dst, true))
				return -ENETUNREACH;
			rcu_read_lock();
			nodev = pi.ipi_ifindex &&
				!dev_get_by_index_rcu(net, pi.ipi_ifindex);
			rcu_read_unlock();
			if (nodev)
				return -ENODEV;
		} else if (c->cmsg_level == SOL_IPV6 &&
			   c->cmsg_type == IPV6_PKTINFO &&
			   nks->family == AF_INET6) {
			if (c->cmsg_len < CMSG_LEN(sizeof(pi6)))
				return -EINVAL;
			memcpy(&pi6, CMSG_DATA(c), sizeof(pi6));
			rcu_read_lock();
			nodev = pi6.ipi6_ifindex &&
				!dev_get_by_index_rcu(net, pi6.ipi6_ifindex);
			rcu_read_unlock();
			if (nodev)
				return -ENODEV;
			if (!nk_src_ours(nks, pi6.ipi6_addr.s6_addr, false))
				return -EINVAL;
		}
	}
	return 0;
}

static int nk_dgram_sendmsg(struct socket *sock, struct msghdr *msg,
			    size_t len)
{
	DECLARE_SOCKADDR(struct sockaddr *, addr, msg->msg_name);
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	struct nk_addr dest, *destp = NULL;
	long timeo;
	int err;

	if (nk_is_local(nks))
		return nks->lower->ops->sendmsg(nks->lower, msg, len);
	if (addr && nk_lower(nks)) {
		err = nk_cgroup_bpf_check(sk, nks->family, NK_BPF_SENDTO);
		if (err)
			return err;
		/* Both halves on one port before either sends. */
		lock_sock(sk);
		err = nk_lower(nks) ? nk_dual_autobind(nks) : 0;
		release_sock(sk);
		if (err)
			return err;
		if (nk_lower(nks) &&
		    nk_addr_where(sock_net(sk), addr, msg->msg_namelen,
				  nks->family) != NK_WHERE_REMOTE)
			return nks->lower->ops->sendmsg(nks->lower, msg, len);
	}
	if (msg->msg_flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (len > NK_DGRAM_MAX ||
	    len > nk_dev_max_payload(nks->nd) - sizeof(dest))
		return -EMSGSIZE;
	err = nk_cgroup_bpf_check(sk, nks->family, NK_BPF_SENDTO);
	if (err)
		return err;
	if (addr) {
		err = nk_sock_addr(nks, addr, msg->msg_namelen, &dest, false);
		if (err)
			return err;
		destp = &dest;
	}

	lock_sock(sk);
	nk_sock_sync_opts(nks);
	if (!destp && sk->sk_state != TCP_ESTABLISHED) {
		err = -EDESTADDRREQ;
		goto out;
	}
	if (len > NK_DGRAM_MAX4 && nk_addr_is_v4(destp ?: &nks->peer)) {
		err = -EMSGSIZE;
		goto out;
	}
	/* The NSM's socket first: its SOCKET reply lists our sources. */
	err = nk_sock_nsm(nks);
	if (err)
		goto out;
	nk_sock_sync_opts(nks);
	err = nk_dgram_cmsg_check(nks, msg);
	if (err)
		goto out;
	if (READ_ONCE(nks->reset)) {
		err = nk_sock_gone_err(nks);
		goto out;
	}
	timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);
	for (;;) {
		err = nk_wait_credit(sk, &timeo, len);
		if (!err)
			err = nk_send_chunk(nks, msg, len, destp,
					    msg->msg_flags & MSG_MORE ?
					    NK_F_MORE : 0);
		if (err != -EAGAIN)
			break;
		err = nk_sock_wait_ring(sk, &timeo);
		if (err)
			break;
	}
out:
	release_sock(sk);
	return err ? nk_send_error(msg, err) : len;
}

/*
 * The guest's interface for a datagram the NSM received on its own: the
 * one that holds the destination address (the guest's address, as the
 * engine gives it), or lo when none does.  @addr is 4 bytes (@v6 false)
 * or 16.
 */
static int nk_anc_ifindex(struct sock *sk, const u8 *addr, bool v6)
{
	struct net *net = sock_net(sk);
	struct net_device *dev;
	struct in6_addr a6;
	__be32 a4;
	int ifindex;

	rcu_read_lock();
	if (v6) {
		memcpy(&a6, addr, sizeof(a6));
		dev = ipv6_dev_find(net, &a6, NULL);
	} else {
		memcpy(&a4, addr, sizeof(a4));
		dev = __ip_dev_find(net, a4, false);
	}
	ifindex = dev ? dev->ifindex : net->loopback_dev->ifindex;
	rcu_read_unlock();
	return ifindex;
}

/*
 * The control messages of a datagram, in the order udp_recvmsg() and
 * udpv6_recvmsg() give them.  Only those the socket asked for are there:
 * the NSM's socket has the same options.
 */
static void nk_put_anc(struct sock *sk, struct msghdr *msg,
		       const struct nk_anc *anc)
{
	u16 present = le16_to_cpu(anc->present);
	struct in6_pktinfo pi6;
	struct in_pktinfo pi;
	int v;

	if (present & NK_ANC_PKTINFO) {
		pi.ipi_ifindex = nk_anc_ifindex(sk, anc->addr4, false);
		memcpy(&pi.ipi_spec_dst, anc->spec_dst, sizeof(pi.ipi_spec_dst));
		memcpy(&pi.ipi_addr, anc->addr4, sizeof(pi.ipi_addr));
		put_cmsg(msg, SOL_IP, IP_PKTINFO, sizeof(pi), &pi);
	}
	if (present & NK_ANC_TTL) {
		v = anc->ttl;
		put_cmsg(msg, SOL_IP, IP_TTL, sizeof(v), &v);
	}
	if (present & NK_ANC_TOS)
		put_cmsg(msg, SOL_IP, IP_TOS, 1, (void *)&anc->tos);
	if (present & NK_ANC_PKTINFO6) {
		pi6.ipi6_ifindex = nk_anc_ifindex(sk, anc->addr6, true);
		memcpy(&pi6.ipi6_addr, anc->addr6, sizeof(pi6.ipi6_addr));
		put_cmsg(msg, SOL_IPV6, IPV6_PKTINFO, sizeof(pi6), &pi6);
	}
	if (present & NK_ANC_HOPLIMIT) {
		v = anc->hoplimit;
		put_cmsg(msg, SOL_IPV6, IPV6_HOPLIMIT, sizeof(v), &v);
	}
	if (present & NK_ANC_TCLASS) {
		v = anc->tclass;
		put_cmsg(msg, SOL_IPV6, IPV6_TCLASS, sizeof(v), &v);
	}
}

static bool nk_anc_icmp(const struct nk_anc *anc)
{
	return anc->ee_origin == NK_EE_ORIGIN_ICMP ||
	       anc->ee_origin == NK_EE_ORIGIN_ICMP6;
}

/*
 * recvmsg(MSG_ERRQUEUE): the oldest entry of the error queue as
 * ip_recv_error() (IP_RECVERR) or ipv6_recv_error() (IPV6_RECVERR) give
 * it: what the error quoted of the datagram, its destination as the
 * address, the sock_extended_err and its offender, MSG_ERRQUEUE.  As
 * sock_dequeue_err_skb(), taking an ICMP error leaves the next one's
 * errno pending, or none.  Never waits.
 */
static int nk_dgram_recv_err(struct nk_sock *nks, struct msghdr *msg,
			     size_t len)
{
	DECLARE_SOCKADDR(struct sockaddr *, addr, msg->msg_name);
	struct sk_buff_head *q = &nks->sk.sk_error_queue;
	struct sock *sk = &nks->sk;
	struct {
		struct sock_extended_err ee;
		struct sockaddr_in6 offender;
	} eh = {};
	const struct nk_anc *anc = NULL, *next_anc;
	struct sockaddr_storage ss;
	struct sk_buff *skb, *next;
	unsigned long flags;
	int err, namelen;
	size_t copied;
	bool v6;

	spin_lock(&nks->lock);
	spin_lock_irqsave(&q->lock, flags);
	skb = __skb_dequeue(q);
	next = skb ? skb_peek(q) : NULL;
	spin_unlock_irqrestore(&q->lock, flags);
	if (skb) {
		anc = nk_skb_anc(skb);
		next_anc = next ? nk_skb_anc(next) : NULL;
		if (next_anc && nk_anc_icmp(next_anc))
			WRITE_ONCE(sk->sk_err, le32_to_cpu(next_anc->ee_errno));
		else if (nk_anc_icmp(anc))
			WRITE_ONCE(sk->sk_err, 0);
	}
	spin_unlock(&nks->lock);
	if (!skb)
		return -EAGAIN;
	if (next)
		sk_error_report(sk);

	copied = min_t(size_t, skb->len, len);
	if (copied < skb->len)
		msg->msg_flags |= MSG_TRUNC;
	err = skb_copy_datagram_msg(skb, 0, msg, copied);
	if (err)
		goto out;
	sock_recv_timestamp(msg, sk, skb);
	if (addr) {
		namelen = nk_addr_to_sockaddr(&NK_DGRAM_CB(skb)->from, &ss,
					      nks->family);
		if (namelen > 0) {
			memcpy(addr, &ss, namelen);
			msg->msg_namelen = namelen;
		}
	}
	v6 = le16_to_cpu(anc->present) & NK_ANC_ERR6;
	eh.ee.ee_errno = le32_to_cpu(anc->ee_errno);
	eh.ee.ee_origin = anc->ee_origin;
	eh.ee.ee_type = anc->ee_type;
	eh.ee.ee_code = anc->ee_code;
	eh.ee.ee_info = le32_to_cpu(anc->ee_info);
	eh.ee.ee_data = le32_to_cpu(anc->ee_data);
	if (anc->offender.family) {
		namelen = nk_addr_to_sockaddr(&anc->offender, &ss,
					      v6 ? AF_INET6 : AF_INET);
		if (namelen > 0)
			memcpy(&eh.offender, &ss,
			       min_t(size_t, namelen, sizeof(eh.offender)));
	}
	put_cmsg(msg, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_RECVERR : IP_RECVERR,
		 sizeof(eh.ee) + (v6 ? sizeof(struct sockaddr_in6) :
				       sizeof(struct sockaddr_in)), &eh);
	msg->msg_flags |= MSG_ERRQUEUE;
	err = copied;
out:
	nk_sock_credit_consumed(nks, skb->len, 0);
	kfree_skb(skb);
	return err;
}

/* A datagram, or an error queue entry, the NSM's socket sent us. */
static int nk_dgram_recv_nsm(struct socket *sock, struct msghdr *msg,
			     size_t len, int flags)
{
	DECLARE_SOCKADDR(struct sockaddr *, addr, msg->msg_name);
	struct sock *sk = sock->sk;
	struct nk_sock *nks = nk_sk(sk);
	const struct nk_anc *anc;
	struct sockaddr_storage ss;
	struct nk_addr *from;
	struct sk_buff *skb;
	int err, namelen;
	size_t copied;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (flags & MSG_ERRQUEUE)
		return nk_dgram_recv_err(nks, msg, len);

	skb = skb_recv_datagram(sk, flags, &err);
	if (!skb)
		return err;

	copied = min_t(size_t, skb->len, len);
	if (copied < skb->len)
		msg->msg_flags |= MSG_TRUNC;
	err = skb_copy_datagram_msg(skb, 0, msg, copied);
	if (!err && addr) {
		from = &NK_DGRAM_CB(skb)->from;
		namelen = nk_addr_to_sockaddr(from, &ss, nks->family);
		if (namelen > 0) {
			memcpy(addr, &ss, namelen);
			msg->msg_namelen = namelen;
		}
	}
	if (!err) {
		/* SO_TIMESTAMP*: its arrival here; SO_RXQ_OVFL: the drops */
		sock_recv_cmsgs(msg, sk, skb);
		anc = nk_skb_anc(skb);
		if (anc)
			nk_put_anc(sk, msg, anc);
	}
	if (!err && flags & MSG_TRUNC)
		copied = skb->len;
	if (!(flags & MSG_PEEK))
		nk_sock_credit_consumed(nks, skb->len, 0);
	skb_free_datagram(sk, skb);
	return err ?: copied;
}

/*
 * With both halves, a datagram from either: the native one first, then
 * the NSM's, and a blocking call sleeps on the wait queue both wake.  The
 * error queue (MSG_ERRQUEUE, never waits) likewise: the native half's
 * entries, then those the NSM sent.  A local socket's are its native
 * half's alone, control messages and all.
 */
static int nk_dgram_recvmsg(struct socket *sock, struct msghdr *msg,
			    size_t len, int flags)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	struct sock *sk = sock->sk;
	struct socket *lower = nk_lower(nk_sk(sk));
	long timeo;
	int err;

	if (!lower)
		return nk_dgram_recv_nsm(sock, msg, len, flags);
	if (nk_is_local(nk_sk(sk)))
		return lower->ops->recvmsg(lower, msg, len, flags);
	if (flags & MSG_ERRQUEUE) {
		err = lower->ops->recvmsg(lower, msg, len, flags);
		return err != -EAGAIN ? err :
		       nk_dgram_recv_nsm(sock, msg, len, flags);
	}
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	add_wait_queue(sk_sleep(sk), &wait);
	for (;;) {
		err = lower->ops->recvmsg(lower, msg, len,
					  flags | MSG_DONTWAIT);
		if (err != -EAGAIN)
			break;
		err = nk_dgram_recv_nsm(sock, msg, len, flags | MSG_DONTWAIT);
		if (err != -EAGAIN || !timeo)
			break;
		if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
			break;
		}
		timeo = wait_woken(&wait, TASK_INTERRUPTIBLE, timeo);
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	return err;
}

/* ------------------------------------------------------------------ */
/* proto_ops and the family                                            */
/* ------------------------------------------------------------------ */

/*
 * SO_RCVLOWAT as tcp_set_rcvlowat() takes it: clamped to half of
 * tcp_rmem[2], or of SO_RCVBUF once that is set, and readers woken to
 * look again.  poll() also reports what has arrived once the NSM can send
 * no more (nk_credit_rx_closed()), as TCP's does when its window is
 * closed, so a low-water mark beyond the credit window never waits for
 * bytes that cannot come.
 */
static int nk_stream_set_rcvlowat(struct sock *sk, int val)
{
	int cap;

	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK)
		cap = READ_ONCE(sk->sk_rcvbuf) >> 1;
	else
		cap = READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_rmem[2]) >> 1;
	WRITE_ONCE(sk->sk_rcvlowat, min(val, cap) ? : 1);
	sk->sk_data_ready(sk);
	return 0;
}

static const struct proto_ops nk_stream_ops = {
	.family = PF_NETKERNEL,
	.owner = THIS_MODULE,
	.release = nk_release,
	.bind = nk_bind,
	.connect = nk_stream_connect,
	.socketpair = sock_no_socketpair,
	.accept = nk_accept,
	.getname = nk_getname,
	.poll = nk_stream_poll,
	.ioctl = nk_ioctl,
	.listen = nk_listen,
	.shutdown = nk_shutdown,
	.setsockopt = nk_setsockopt,
	.getsockopt = nk_getsockopt,
	.sendmsg = nk_stream_sendmsg,
	.recvmsg = nk_stream_recvmsg,
	.mmap = sock_no_mmap,
	.set_rcvlowat = nk_stream_set_rcvlowat,
};

static const struct proto_ops nk_dgram_ops = {
	.family = PF_NETKERNEL,
	.owner = THIS_MODULE,
	.release = nk_release,
	.bind = nk_bind,
	.connect = nk_dgram_connect,
	.socketpair = sock_no_socketpair,
	.accept = sock_no_accept,
	.getname = nk_getname,
	.poll = nk_dgram_poll,
	.ioctl = nk_ioctl,
	.listen = sock_no_listen,
	.shutdown = nk_shutdown,
	.setsockopt = nk_setsockopt,
	.getsockopt = nk_getsockopt,
	.sendmsg = nk_dgram_sendmsg,
	.recvmsg = nk_dgram_recvmsg,
	.mmap = sock_no_mmap,
};

/*
 * socket(AF_NETKERNEL, type, protocol): an IPv4 TCP or UDP socket on the
 * NSM, whether or not AF_INET is taken over.
 */
static int nk_family_create(struct net *net, struct socket *sock,
			    int protocol, int kern)
{
	struct nk_dev *nd;
	int err;

	if (!nk_net_served(net))
		return -EAFNOSUPPORT;
	if (nk_cgroup_bpf_current())
		return -EPERM;
	nd = nk_dev_get();
	if (!nd)
		return -ENETDOWN;
	if (!nk_sock_wanted(nd, AF_INET, sock->type, protocol)) {
		nk_dev_put(nd);
		return sock->type == SOCK_STREAM || sock->type == SOCK_DGRAM ?
		       -EPROTONOSUPPORT : -ESOCKTNOSUPPORT;
	}
	err = nk_sock_create(net, sock, protocol, AF_INET, nd);
	if (!err)
		nk_sk(sock->sk)->domain = AF_NETKERNEL;
	return err;
}

static const struct net_proto_family nk_family = {
	.family = PF_NETKERNEL,
	.create = nk_family_create,
	.owner = THIS_MODULE,
};

/* ------------------------------------------------------------------ */
/* Sockets made again after their NSM died                            */
/* ------------------------------------------------------------------ */

/* How often a socket waiting for an NSM tries again. */
#define NK_REVIVE_RETRY	(HZ / 2)

static void nk_revive_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(nk_revive_work, nk_revive_fn);

/*
 * The engine reset @nks: its NSM died (or dropped it).  A UDP socket or a
 * listener has nothing the application could not have again, so it is
 * made again on whichever NSM serves next (nk_revive_work), and meanwhile
 * it stays as it was: no error, no end-of-file, a listener listens; sends
 * fail with ENETUNREACH.  False for a connection, which is lost, as TCP's
 * is.  Takes nks->lock.
 */
static bool nk_sock_revive_later(struct nk_sock *nks)
{
	struct sock *sk = &nks->sk;
	bool revive;

	spin_lock(&nks->lock);
	revive = nks->created && !nks->reset &&
		 (!nk_is_stream(sk) || sk->sk_state == TCP_LISTEN);
	if (revive) {
		nks->reset = true;
		nks->revive = true;
	}
	spin_unlock(&nks->lock);
	if (!revive)
		return false;
	mod_delayed_work(system_wq, &nk_revive_work, 0);
	sk->sk_state_change(sk);
	return true;
}

/* A request about @nks carrying @na (BIND, CONNECT), answered by a status. */
static int nk_sock_addr_req(struct nk_sock *nks, u16 op,
			    const struct nk_addr *na)
{
	struct nk_txbuf *tb;

	tb = nk_req_alloc(nks, op, sizeof(*na));
	if (tb)
		memcpy(tb->payload, na, sizeof(*na));
	return nk_sock_simple(nks, tb);
}

/*
 * Make @nks again on the NSM that serves now, as the application made it:
 * SOCKET under a new id (the engine keeps the old one until its CLOSE),
 * its SOL_SOCKET options, BIND to the address it had, then CONNECT (UDP)
 * or LISTEN.  The old id is closed once the new socket exists.  What the
 * old socket had queued and not read is dropped (counted in sk_drops):
 * its credit belonged to the old socket.  Options of other levels are
 * not known here and not set again.  Caller holds lock_sock.
 *
 * Return: -EAGAIN when no NSM took the SOCKET yet (try again later); 0
 * otherwise: made again, or failed for good (then reset with that error).
 */
static int nk_sock_revive(struct nk_sock *nks)
{
	struct sock *sk = &nks->sk;
	struct nk_addr src[2];
	struct nk_reply reply = { .buf = src, .buf_len = sizeof(src) };
	struct nk_txbuf *tb;
	u32 id, buf_alloc;
	int err, drops = 0;

	if (!nk_dev_alive(nks->nd))
		return -EAGAIN;	/* nk_detach() resets it for good */
	if (nk_sock_id_alloc(nks, &id))
		return -EAGAIN;
	tb = nk_socket_req(nks, id);
	if (!tb) {
		nk_sockid_remove(&nk_socks, id);
		return -EAGAIN;
	}
	/* The new socket's credit starts afresh; nothing is sent meanwhile. */
	spin_lock(&nks->lock);
	memset(&nks->tx, 0, sizeof(nks->tx));
	spin_unlock(&nks->lock);
	err = nk_sock_call(nks, tb, &reply, 0);
	if (err) {
		nk_sockid_remove(&nk_socks, id);
		return -EAGAIN;
	}

	nk_sock_close(nks);
	nks->id = id;
	nk_sock_set_src(nks, &reply, src);
	spin_lock(&nks->lock);
	buf_alloc = nks->rx.buf_alloc;
	memset(&nks->rx, 0, sizeof(nks->rx));
	nks->rx.buf_alloc = buf_alloc;
	nks->accept_pending = 0;
	/* Data for the new socket is taken from now on. */
	nks->reset = false;
	spin_unlock(&nks->lock);
	while (!skb_queue_empty(&sk->sk_receive_queue)) {
		kfree_skb(skb_dequeue(&sk->sk_receive_queue));
		drops++;
	}
	atomic_add(drops, &sk->sk_drops);
	skb_queue_purge(&sk->sk_error_queue);
	nks->rx_seq = 0;

	memset(&nks->sol_sent, 0, sizeof(nks->sol_sent));
	nk_sock_sync_opts(nks);
	if (nks->local.family && nks->local.port)
		err = nk_sock_addr_req(nks, NK_OP_BIND, &nks->local);
	if (!err && !nk_is_stream(sk) && sk->sk_state == TCP_ESTABLISHED)
		err = nk_sock_addr_req(nks, NK_OP_CONNECT, &nks->peer);
	if (!err && nk_is_stream(sk)) {
		tb = nk_req_alloc(nks, NK_OP_LISTEN, 0);
		if (tb)
			tb->hdr.arg[0] = cpu_to_le64((s64)nks->backlog);
		err = nk_sock_simple(nks, tb);
	}
	if (err) {
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: cannot be made again on the NSM: %d\n",
				     id, err);
		nk_sock_reset(nks, -err);
		return 0;
	}
	WRITE_ONCE(nks->revive, false);
	sk->sk_state_change(sk);
	sk->sk_write_space(sk);
	return 0;
}

/* The first socket waiting to be made again, referenced, or NULL. */
static struct nk_sock *nk_revive_next(void)
{
	struct nk_sock *nks, *found = NULL;
	unsigned long id;

	nk_sockid_lock(&nk_socks);
	nk_sockid_for_each(&nk_socks, id, nks) {
		if (READ_ONCE(nks->revive)) {
			sock_hold(&nks->sk);
			found = nks;
			break;
		}
	}
	nk_sockid_unlock(&nk_socks);
	return found;
}

static void nk_revive_fn(struct work_struct *work)
{
	struct nk_sock *nks;
	int err;

	while ((nks = nk_revive_next())) {
		lock_sock(&nks->sk);
		err = READ_ONCE(nks->revive) ? nk_sock_revive(nks) : 0;
		release_sock(&nks->sk);
		sock_put(&nks->sk);
		if (err) {
			schedule_delayed_work(&nk_revive_work, NK_REVIVE_RETRY);
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Events from the NSM                                                 */
/* ------------------------------------------------------------------ */

/*
 * Stream data smaller than this is copied into an skb of this size, which
 * later small data fills (nk_rxq_append()): an skb per segment of a few
 * bytes would cost hundreds of bytes of memory per byte of credit.
 */
#define NK_RX_SMALL	SKB_WITH_OVERHEAD(2048)

/*
 * A datagram socket's queue holds its receive buffer's worth: the next
 * datagram is dropped, as UDP drops it (the memory, not the credit, is the
 * bound: an empty datagram costs no credit).
 */
static bool nk_rxq_full(const struct sock *sk)
{
	return atomic_read(&sk->sk_rmem_alloc) > READ_ONCE(sk->sk_rcvbuf);
}

/*
 * Copy @len bytes of stream data (less than NK_RX_SMALL: the copy is made
 * with the queue lock held) into the last skb queued when it has room;
 * false when it has not (or the socket takes no data: the caller drops it).
 * Takes nks->lock.
 */
static bool nk_rxq_append(struct nk_sock *nks, const void *data, u32 len)
{
	struct sk_buff_head *q = &nks->sk.sk_receive_queue;
	struct sk_buff *tail;
	unsigned long flags;
	bool done = false;

	spin_lock(&nks->lock);
	if (nks->reset || READ_ONCE(nks->sk.sk_shutdown) & RCV_SHUTDOWN)
		goto out;
	spin_lock_irqsave(&q->lock, flags);
	tail = skb_peek_tail(q);
	if (tail && !skb_is_nonlinear(tail) && skb_tailroom(tail) >= len &&
	    !nk_credit_rx_accept(&nks->rx, len)) {
		skb_put_data(tail, data, len);
		nks->bytes_rcvd += len;
		done = true;
	}
	spin_unlock_irqrestore(&q->lock, flags);
out:
	spin_unlock(&nks->lock);
	return done;
}

/*
 * An error queue entry (IP_RECVERR) is queued as sock_queue_err_skb()
 * queues it: within the receive buffer, charged to it.
 */
static bool nk_errq_full(const struct sock *sk, const struct sk_buff *skb)
{
	return atomic_read(&sk->sk_rmem_alloc) + skb->truesize >=
	       (unsigned int)READ_ONCE(sk->sk_rcvbuf);
}

static void nk_ev_data(struct nk_sock *nks, const struct nk_hdr *hdr,
		       const void *payload)
{
	u16 flags = le16_to_cpu(hdr->flags);
	bool addr = flags & NK_F_ADDR;
	u32 len = le32_to_cpu(hdr->len);
	struct sock *sk = &nks->sk;
	const struct nk_anc *anc = NULL;
	const struct nk_addr *from;
	struct sk_buff *skb;
	bool errq = false;
	int err;

	if (flags & NK_F_ANC) {
		anc = payload;
		if (nk_is_stream(sk) || len < sizeof(*anc) ||
		    nk_anc_check(anc))
			goto malformed;
		errq = le16_to_cpu(anc->present) & (NK_ANC_ERR | NK_ANC_ERR6);
		payload = anc + 1;
		len -= sizeof(*anc);
	}
	from = payload;
	if (addr != !nk_is_stream(sk) ||
	    (addr && (len < sizeof(*from) || nk_addr_check(from))))
		goto malformed;
	if (addr) {
		payload = from + 1;
		len -= sizeof(*from);
	}
	if (!len && nk_is_stream(sk))
		return;

	/*
	 * Bulk stream data keeps its eventq buffer; the rest is copied, small
	 * stream data into the last skb queued when it has room (only small:
	 * the copy is made under the queue lock).
	 */
	skb = addr ? NULL : nk_rx_skb(nks->nd, hdr, payload, len);
	if (!skb && !addr && len < NK_RX_SMALL &&
	    nk_rxq_append(nks, payload, len)) {
		sk->sk_data_ready(sk);
		return;
	}
	if (!skb) {
		skb = alloc_skb(addr ? (anc ? sizeof(*anc) : 0) + len :
				max_t(u32, len, NK_RX_SMALL), GFP_KERNEL);
		/* A datagram's control messages stay in its headroom. */
		if (skb && anc) {
			memcpy(skb->data, anc, sizeof(*anc));
			skb_reserve(skb, sizeof(*anc));
		}
		if (skb)
			skb_put_data(skb, payload, len);
	}
	if (skb && addr) {
		BUILD_BUG_ON(sizeof(struct nk_dgram_cb) >
			     sizeof(skb->cb) - sizeof(struct sock_skb_cb));
		NK_DGRAM_CB(skb)->from = *from;
		NK_DGRAM_CB(skb)->anc = anc;
		__net_timestamp(skb);
	}

	spin_lock(&nks->lock);
	if (nks->reset || READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) {
		spin_unlock(&nks->lock);
		kfree_skb(skb);
		return;
	}
	if (skb && !addr)
		NK_SKB_CB(skb)->seq = nks->rx.rx_cnt;
	err = skb ? nk_credit_rx_accept(&nks->rx, len) : -ENOMEM;
	if (!err && addr && (errq ? nk_errq_full(sk, skb) : nk_rxq_full(sk))) {
		/* As UDP: dropped, counted, and its credit is free again. */
		if (!errq)
			atomic_inc(&sk->sk_drops);
		nks->rx.fwd_cnt += len;
		spin_unlock(&nks->lock);
		kfree_skb(skb);
		return;
	}
	if (!err && errq) {
		skb_set_owner_r(skb, sk);
		skb_queue_tail(&sk->sk_error_queue, skb);
	} else if (!err) {
		nks->bytes_rcvd += len;
		skb_set_owner_r(skb, sk);
		sock_skb_set_dropcount(sk, skb);
		skb_queue_tail(&sk->sk_receive_queue, skb);
	}
	spin_unlock(&nks->lock);

	if (!err && errq) {
		sk_error_report(sk);
		return;
	}
	if (!err) {
		sk->sk_data_ready(sk);
		return;
	}
	kfree_skb(skb);
	if (err == -ENOBUFS)
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: EV_DATA of %u bytes beyond the credit announced\n",
				     nks->id, len);
	/* A stream with a hole is worse than a reset one. */
	if (nk_is_stream(sk))
		nk_sock_reset(nks, err == -ENOBUFS ? EPROTO : ENOMEM);
	return;

malformed:
	dev_warn_ratelimited(nk_dev_device(nks->nd),
			     "socket %u: malformed EV_DATA dropped\n", nks->id);
}

/*
 * Urgent data arrived on a connection: as tcp_urg() does, a new byte
 * replaces an unread one, the socket's owner gets SIGURG (F_SETOWN) and
 * pollers EPOLLPRI.  The mark may be ahead of the bytes received (the NSM
 * sends them within credit), never behind them (nk_urg_check()).
 */
static void nk_ev_urg(struct nk_sock *nks, const struct nk_hdr *hdr)
{
	struct sock *sk = &nks->sk;
	bool ok;

	spin_lock(&nks->lock);
	ok = nk_is_stream(sk) && sk->sk_state != TCP_LISTEN &&
	     sk->sk_state != TCP_SYN_SENT && !nks->reset &&
	     !nk_urg_check(hdr, nks->rx.rx_cnt);
	if (ok) {
		nks->urg_byte = le64_to_cpu(hdr->arg[0]);
		nks->urg_mark = le64_to_cpu(hdr->arg[1]);
		WRITE_ONCE(nks->urg_state, NK_URG_VALID);
	}
	spin_unlock(&nks->lock);
	if (!ok) {
		dev_warn_ratelimited(nk_dev_device(nks->nd),
				     "socket %u: malformed EV_URG dropped\n",
				     nks->id);
		return;
	}
	sk_send_sigurg(sk);
	sk->sk_data_ready(sk);
}

static void nk_ev_status(struct nk_sock *nks, const struct nk_hdr *hdr,
			 const void *payload)
{
	u16 op = le16_to_cpu(hdr->op);
	int status = nk_hdr_status(hdr);
	u64 arg0 = le64_to_cpu(hdr->arg[0]);
	const struct nk_addr *local = payload;
	u32 len = le32_to_cpu(hdr->len);
	struct sock *sk = &nks->sk;
	int shut = 0;

	switch (op) {
	case NK_EV_ACCEPT:
		spin_lock(&nks->lock);
		if (sk->sk_state == TCP_LISTEN) {
			nks->accept_pending = min_t(u64, arg0, U32_MAX);
			nks->accept_seq++;
		}
		spin_unlock(&nks->lock);
		sk->sk_data_ready(sk);
		break;
	case NK_EV_CONNECTED:
		/* Optional payload: the local address the connection has. */
		if (len && (len != sizeof(*local) || nk_addr_check(local))) {
			dev_warn_ratelimited(nk_dev_device(nks->nd),
					     "socket %u: bad address in EV_CONNECTED, ignored\n",
					     nks->id);
			len = 0;
		}
		spin_lock(&nks->lock);
		if (sk->sk_state == TCP_SYN_SENT) {
			sk->sk_state = TCP_ESTABLISHED;
			if (len)
				nks->local = *local;
		}
		spin_unlock(&nks->lock);
		sk->sk_state_change(sk);
		break;
	case NK_EV_WRITABLE:
		sk->sk_write_space(sk);
		break;
	case NK_EV_HUP:
		if (arg0 & NK_SHUT_RD)
			shut |= RCV_SHUTDOWN;
		if (arg0 & NK_SHUT_WR)
			shut |= SEND_SHUTDOWN;
		spin_lock(&nks->lock);
		WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | shut);
		sock_set_flag(sk, SOCK_DONE);
		spin_unlock(&nks->lock);
		sk->sk_state_change(sk);
		break;
	case NK_EV_ERROR:
		spin_lock(&nks->lock);
		WRITE_ONCE(sk->sk_err, -status);
		if (sk->sk_state == TCP_SYN_SENT) {
			/* The connect() failed, as tcp_done() would. */
			sk->sk_state = TCP_CLOSE;
			WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
		}
		spin_unlock(&nks->lock);
		sk_error_report(sk);
		sk->sk_state_change(sk);
		break;
	case NK_EV_RESET:
		if (!nk_sock_revive_later(nks))
			nk_sock_reset(nks, -status);
		break;
	case NK_EV_URG:
		nk_ev_urg(nks, hdr);
		break;
	}
}

/* A reply no nk_call() waited for. */
static void nk_rx_reply(struct nk_dev *nd, const struct nk_hdr *hdr)
{
	u16 op = le16_to_cpu(hdr->op);
	u32 id = le32_to_cpu(hdr->sock);
	int status = nk_hdr_status(hdr);
	struct nk_sock *nks;

	if (op == NK_OP_CLOSE) {
		/* nk_sock_close() does not wait for its answer. */
		if (status && status != -ENODEV)
			dev_warn_ratelimited(nk_dev_device(nd),
					     "socket %u: CLOSE failed: %d\n",
					     id, status);
		nk_sockid_release(&nk_socks, id);
		return;
	}
	if (op == NK_OP_SOCKET || op == NK_OP_ACCEPT) {
		nk_rx_orphan_reply(nd, hdr);
		return;
	}
	if ((op != NK_OP_SEND && op != NK_OP_CREDIT) || !status) {
		dev_dbg_ratelimited(nk_dev_device(nd),
				    "late %s reply for socket %u dropped\n",
				    nk_op_name(op), id);
		return;
	}
	nks = nk_sockid_get(&nk_socks, id);
	if (!nks)
		return;
	/* The NSM never had a local socket's id. */
	if (nk_is_local(nks)) {
		sock_put(&nks->sk);
		return;
	}
	dev_dbg_ratelimited(nk_dev_device(nd), "socket %u: %s failed: %d\n",
			    id, nk_op_name(op), status);
	/* A reset socket knows already; one being revived must not hear. */
	if (!READ_ONCE(nks->reset)) {
		WRITE_ONCE(nks->sk.sk_err, -status);
		sk_error_report(&nks->sk);
	}
	sock_put(&nks->sk);
}

static void nk_rx(struct nk_dev *nd, const struct nk_hdr *hdr,
		  const void *payload)
{
	u16 op = le16_to_cpu(hdr->op);
	u32 id = le32_to_cpu(hdr->sock);
	int status = nk_hdr_status(hdr);
	struct nk_sock *nks;

	if (le16_to_cpu(hdr->flags) & NK_F_REPLY) {
		nk_rx_reply(nd, hdr);
		return;
	}
	/* EV_PROTO_ERROR without a waiting call: logged by the transport. */
	if (op == NK_EV_PROTO_ERROR)
		return;
	if ((op == NK_EV_ERROR || op == NK_EV_RESET) && !status) {
		dev_warn_ratelimited(nk_dev_device(nd),
				     "socket %u: %s without an error, dropped\n",
				     id, nk_op_name(op));
		return;
	}

	nks = nk_sockid_get(&nk_socks, id);
	if (!nks) {
		/* Normal after close: events may cross the CLOSE. */
		dev_dbg_ratelimited(nk_dev_device(nd),
				    "%s for unknown socket %u dropped\n",
				    nk_op_name(op), id);
		return;
	}
	if (nk_is_local(nks)) {
		dev_warn_ratelimited(nk_dev_device(nd),
				     "%s for local socket %u dropped\n",
				     nk_op_name(op), id);
		sock_put(&nks->sk);
		return;
	}
	if (nk_sock_apply_credit(nks, hdr))
		nks->sk.sk_write_space(&nks->sk);
	if (op == NK_EV_DATA)
		nk_ev_data(nks, hdr, payload);
	else
		nk_ev_status(nks, hdr, payload);
	sock_put(&nks->sk);
}

static int nk_attach(struct nk_dev *nd)
{
	nk_netdev_attach(nd);
	return 0;
}

/*
 * The device is going away: every socket on it is reset, with ECONNRESET
 * when the engine lost the session (as a peer's reset), ENETDOWN otherwise
 * (and always for a datagram socket: UDP knows no reset).  None is made
 * again: a socket keeps its device, and a new one comes after a lost
 * session.
 */
static void nk_detach(struct nk_dev *nd)
{
	int err = nk_dev_lost(nd) ? ECONNRESET : ENETDOWN;
	struct nk_sock *nks;
	unsigned long id;
	bool orphan;

	nk_netdev_detach();
	/* A socket in nk_socks is alive while the table is locked. */
	nk_sockid_lock(&nk_socks);
	nk_sockid_for_each(&nk_socks, id, nks) {
		/* A local socket, or one not made there, has nothing on it. */
		if (nks->nd != nd || nk_is_local(nks) ||
		    (!READ_ONCE(nks->created) && !READ_ONCE(nks->orphan_req)))
			continue;
		nk_sock_reset(nks, nk_is_stream(&nks->sk) ? err : ENETDOWN);
		/* No late reply comes any more: nk_orphan_work frees it. */
		spin_lock(&nks->lock);
		orphan = nks->orphan_req;
		nks->orphan_req = 0;
		spin_unlock(&nks->lock);
		if (orphan)
			nk_orphan_close(nks);
	}
	nk_sockid_unlock(&nk_socks);
}

static const struct nk_transport_ops nk_guest_ops = {
	.name = "af_netkernel",
	.role = NK_ROLE_GUEST,
	.features = NK_FEAT_INET6 | NK_FEAT_DGRAM | NK_FEAT_ANC | NK_FEAT_ADDR |
		    NK_FEAT_URG | NK_FEAT_PIPE,
	.attach = nk_attach,
	.detach = nk_detach,
	.rx = nk_rx,
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

/* nk_socks' hold function: nk_sockid_get() takes a socket reference. */
static void nk_sock_hold(void *entry)
{
	struct nk_sock *nks = entry;

	sock_hold(&nks->sk);
}

static int __init nk_init(void)
{
	int err;

	nk_sockid_init(&nk_socks, INT_MAX, nk_sock_hold);
	err = proto_register(&nk_proto, 1);
	if (err)
		return err;
	err = sock_register(&nk_family);
	if (err) {
		pr_err("cannot register AF_NETKERNEL (%d): %d; is another module using family %d?\n",
		       PF_NETKERNEL, err, PF_NETKERNEL);
		goto err_proto;
	}
	err = nk_proc_init();
	if (err)
		goto err_family;
	err = nk_fallback_init();
	if (err)
		goto err_proc;
	err = nk_transport_register(&nk_guest_ops);
	if (err)
		goto err_fallback;
	err = nk_takeover_init();
	if (err)
		goto err_transport;
	nk_diag_init();
	nk_procinet_init();
	return 0;

err_transport:
	nk_transport_unregister();
	nk_netdev_exit();
err_fallback:
	nk_fallback_exit();
err_proc:
	nk_proc_exit();
err_family:
	sock_unregister(PF_NETKERNEL);
err_proto:
	proto_unregister(&nk_proto);
	nk_sockid_destroy(&nk_socks);
	return err;
}

static void __exit nk_exit(void)
{
	nk_procinet_exit();
	nk_diag_exit();
	nk_takeover_exit();
	nk_transport_unregister();
	nk_netdev_exit();
	cancel_delayed_work_sync(&nk_revive_work);
	/* nk_detach() queued the sockets still waiting for a late reply. */
	flush_work(&nk_orphan_work);
	nk_fallback_exit();
	nk_proc_exit();
	sock_unregister(PF_NETKERNEL);
	proto_unregister(&nk_proto);
	/* Ids of CLOSE requests never answered may still be reserved. */
	nk_sockid_destroy(&nk_socks);
}

module_init(nk_init);
module_exit(nk_exit);

MODULE_AUTHOR("NetKernel project");
MODULE_DESCRIPTION("NetKernel guest sockets: TCP/UDP served by a network stack VM");
MODULE_LICENSE("GPL");
MODULE_VERSION(NK_VERSION);
MODULE_ALIAS_NETPROTO(PF_NETKERNEL);
