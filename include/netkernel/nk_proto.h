/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * NetKernel wire protocol: the nk virtio device and the messages that cross
 * it.  Shared, unchanged, by af_netkernel.ko (guest), nsm_kernel.ko (network
 * stack module) and the host engine.  Documentation/netkernel/protocol.rst
 * explains every field; this header is the single source of truth for their
 * layout and values.
 *
 * All multi-byte fields are little endian, except port, flowinfo and
 * address bytes in struct nk_addr, which are in network order as in a
 * struct sockaddr_in/sockaddr_in6.  Every structure has a fixed size that is
 * asserted below; none has implicit padding.
 */
#ifndef _NETKERNEL_NK_PROTO_H
#define _NETKERNEL_NK_PROTO_H

#include <linux/types.h>

#define NK_PROTO_VERSION	1

/* ------------------------------------------------------------------ */
/* The device                                                          */
/* ------------------------------------------------------------------ */

/*
 * Virtio device IDs the nk device is presented under.  On QEMU 7.2 to 10.1
 * the carrier is vhost-user-gpio-pci, a pure pass-through frontend with
 * device ID 41.  On QEMU 10.2 and later vhost-user-test-device-pci takes
 * any ID: NK_VIRTIO_ID (63) is the last ID a modern virtio-pci function
 * can carry (PCI device 0x1040 + 63 = 0x107f) and is far above the IDs the
 * virtio specification has assigned, so no other driver claims it.
 * Drivers bind under either ID only when struct nk_config carries the magic.
 */
#define NK_VIRTIO_ID_GPIO	41
#define NK_VIRTIO_ID		63

/* Virtio feature bits the device offers and the drivers accept. */
#define NK_VIRTIO_FEATURES	(1ULL << 32)	/* VIRTIO_F_VERSION_1 */

/*
 * Virtqueue layout: pair q uses virtqueue 2q (requestq) and 2q+1 (eventq).
 * Every message about socket s travels on pair (s % pairs) of its link, so
 * a socket's messages stay in order; messages without a socket (HELLO,
 * EV_PROTO_ERROR) use pair 0.  pairs is 1 unless HELLO agreed NK_FEAT_MQ.
 * One pair is always enough.
 *
 * Carriers: a device of one pair (QEMU 7.2's has no more) may be one of
 * several that together carry an endpoint's pairs, pair k on the device
 * whose configuration says carrier k (NK_CONFIG_CARRIER()); its pair is
 * the endpoint's pair k, at virtqueues 0 and 1 of that device.  A device
 * that has every pair itself is carrier 0.
 */
#define NK_VQ_REQUEST(q)	(2 * (q))
#define NK_VQ_EVENT(q)		(2 * (q) + 1)
#define NK_MAX_QPAIRS		16

enum nk_role {
	NK_ROLE_GUEST	= 1,	/* af_netkernel.ko: issues socket requests */
	NK_ROLE_NSM	= 2,	/* nsm_kernel.ko: serves them */
};

#define NK_CONFIG_MAGIC0	'N'
#define NK_CONFIG_MAGIC1	'K'
#define NK_CONFIG_MAGIC2	'D'

/*
 * The 8-byte device configuration space, read-only for the driver.  The
 * first u16 is zero so that a virtio-gpio driver (whose ngpio sits there)
 * refuses the device; bytes 4..7 carry the magic and the protocol version.
 */
struct nk_config {
	__le16	zero;		/* always 0 */
	__u8	role;		/* enum nk_role; bits 4..7: carrier index */
	__u8	max_qpairs;	/* queue pairs the device offers, >= 1 */
	__u8	magic[3];	/* 'N', 'K', 'D' */
	__u8	version;	/* NK_PROTO_VERSION */
};

/* struct nk_config.role: the role, and which carrier of the endpoint. */
#define NK_CONFIG_ROLE(r)	((r) & 0x0f)
#define NK_CONFIG_CARRIER(r)	((r) >> 4)

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/*
 * Every message is one struct nk_hdr followed by hdr.len bytes of payload,
 * carried in one descriptor chain.  On the requestq the chain is
 * device-readable only and its total length equals sizeof(hdr) + hdr.len;
 * on the eventq the driver posts device-writable chains of at least
 * sizeof(hdr) + the max_payload agreed in HELLO, and the used length tells
 * how much was written.  Buffers must be posted before HELLO, sized for
 * the max_payload the endpoint offers in it.
 *
 * A guest's requestq carries its requests; its eventq carries replies and
 * events.  An NSM's eventq carries the guests' requests (socket ids
 * translated) and its requestq carries its replies and events.
 */
struct nk_hdr {
	__le16	op;		/* enum nk_op */
	__le16	flags;		/* NK_F_* */
	__le32	len;		/* payload bytes after the header */
	__le32	sock;		/* socket id in the namespace of this link's endpoint; 0: none */
	__le32	status;		/* replies and error events: 0 or a negative errno (s32) */
	__le64	req_id;		/* chosen by the requester, echoed in the reply */
	__le32	buf_alloc;	/* credit: sender's receive buffer for this socket */
	__le32	fwd_cnt;	/* credit: bytes the sender has consumed, mod 2^32 */
	__le64	arg[4];		/* per-operation arguments, see enum nk_op */
};

/* nk_hdr.flags */
#define NK_F_REPLY	0x0001	/* a reply to the request with this req_id */
#define NK_F_ADDR	0x0002	/* payload starts with a struct nk_addr (datagrams) */
#define NK_F_CREDIT	0x0004	/* buf_alloc and fwd_cnt are valid */
#define NK_F_MORE	0x0008	/* SEND: more data follows (MSG_MORE) */
#define NK_F_ANC	0x0010	/* datagram EV_DATA: payload starts with struct nk_anc */
/*
 * CONNECT and SEND requests E -> N only, with NK_FEAT_PEER agreed (a
 * guest's gets -EINVAL): the destination is the address of the guest
 * whose endpoint id is a3 bits 0..31, one the requesting guest may reach
 * through this NSM (hostengine.rst "Guests through their NSM").  The NSM
 * lets it through its own stack when both guests' sockets live in one
 * network namespace, instead of refusing it as one of its own addresses.
 */
#define NK_F_PEER	0x0020
#define NK_F_KNOWN	(NK_F_REPLY | NK_F_ADDR | NK_F_CREDIT | NK_F_MORE | NK_F_ANC | \
			 NK_F_PEER)

/*
 * Operations.  "G" is the guest, "E" the host engine, "N" the NSM.  A
 * request travels G -> E -> N (socket id translated), its reply N -> E -> G
 * with the same op, NK_F_REPLY and the request's socket id (each link's
 * own).  The credit on an ACCEPT reply is the new socket's.  Replies to
 * SOCKET, ACCEPT and CONNECT and EV_WRITABLE carry the NSM's credit
 * (NK_F_CREDIT); until a socket's first announcement its credit is 0.
 * Every request gets exactly one reply,
 * except SEND and CREDIT, which are answered only when they fail.  The NSM
 * never blocks on a request: blocking semantics live in the guest, which
 * waits for events.
 *
 *  op            arguments (request)              reply
 *  HELLO         a0 version, a1 features,         a0 version, a1 features,
 *                a2 max_payload, a3 role;          a2 max_payload, a3 endpoint
 *                with NK_FEAT_MQ, buf_alloc: the   id (NK_FEAT_MQ agreed: bits
 *                pairs it has set up, 1 to         32..39 the pairs agreed, 1
 *                NK_MAX_QPAIRS                     to those proposed and set
 *                                                  up at E); buf_alloc: bytes
 *                                                  E holds for the endpoint
 *                                                  beyond its eventq before
 *                                                  it resets sockets (0: not
 *                                                  said);
 *                                                  payload: endpoint name
 *                                                  with its NUL (NK_FEAT_ADDR:
 *                                                  in NK_NAME_MAX bytes, then
 *                                                  the guest's nk_addr, 0 to
 *                                                  2, IPv4 first)
 *  SOCKET        a0 family (2, 10), a1 type        status; E -> G, to a
 *                (1 stream, 2 dgram), a2 protocol  guest with NK_FEAT_ANC,
 *                (0, 6, 17), a3 NK_SOCK_* flags.   status 0: payload the
 *                E -> N adds a3 bits 32..63: guest guest's source addresses
 *                endpoint id, payload: the guest's as nk_addr (0 to 2, IPv4
 *                source addresses as nk_addr, its  first), whatever the
 *                IPv4 one first (0 to 2 of them);  NSM's reply carried
 *                with NK_FEAT_WEIGHT, bits 16..25
 *                the guest's weight
 *  BIND          payload nk_addr                   status
 *  LISTEN        a0 backlog                        status
 *  ACCEPT        a0 new socket id, a1 NK_SOCK_*    status, payload peer nk_addr;
 *                (never blocks: -EAGAIN if none)   the new socket exists on 0
 *  CONNECT       payload nk_addr                   status 0, -EINPROGRESS (then
 *                                                  EV_CONNECTED or EV_ERROR)
 *  SEND          a0 NK_MSG_* flags; payload data,  none unless it fails
 *                NK_F_ADDR: nk_addr then data
 *  SHUTDOWN      a0 how (0 RD, 1 WR, 2 RDWR)       status
 *  CLOSE         none                              status; the id is free after
 *  SETSOCKOPT    a0 level, a1 optname,             status
 *                payload option value
 *  GETSOCKOPT    a0 level, a1 optname, a2 optlen   status, payload value
 *  GETSOCKNAME   none                              status, payload nk_addr
 *  GETPEERNAME   none                              status, payload nk_addr
 *  IOCTL         a0 NK_IOC_*                       status, a0 value
 *  CREDIT        buf_alloc, fwd_cnt (NK_F_CREDIT)  none unless it fails;
 *                sent by either side (N -> E -> G
 *                too, as an event with req_id 0)
 *  INFO          E -> N only, sock 0, with          status 0, payload one struct
 *                NK_FEAT_INFO: payload 1 to         nk_sock_info per id, in the
 *                NK_INFO_MAX(max_payload) NSM       request's order (status
 *                socket ids, __le32 each            -EBADF in the record: no
 *                                                   such socket); status < 0:
 *                                                   no payload
 *
 * Events travel N -> E -> G with req_id 0, except EV_RESET and
 * EV_PROTO_ERROR, which only the engine sends.  An NSM reports a connection
 * reset by its peer as EV_ERROR -ECONNRESET then EV_HUP; EV_ERROR hands
 * the socket's pending error over (the NSM's SO_ERROR reads 0 afterwards),
 * so the guest answers SO_ERROR itself:
 *  EV_DATA       payload data (NK_F_ADDR: nk_addr first; NK_F_ANC: struct
 *                nk_anc before that), counted by credit
 *  EV_ACCEPT     a0 connections waiting in the accept queue
 *  EV_CONNECTED  a non-blocking CONNECT completed; payload: none, or the
 *                socket's local nk_addr (what GETSOCKNAME would answer)
 *  EV_WRITABLE   the NSM socket has send space again
 *  EV_HUP        a0 NK_SHUT_* mask: the peer shut down (EOF for RD)
 *  EV_ERROR      status -errno: a socket error (sk_err)
 *  EV_URG        on a stream socket made with NK_SOCK_URG (or accepted
 *                from one): urgent data arrived.  a0 the urgent byte
 *                (0..255), a1 the mark: the stream sequence number (as
 *                credit counts EV_DATA bytes, mod 2^32) of the byte, which
 *                stays in the stream (EV_DATA carries it after this
 *                event); a2, a3, len and status 0.  A new one replaces an
 *                unread one; its mark is never before the bytes EV_DATA
 *                has sent (u32 difference < 2^31)
 *  EV_RESET      status -errno: the socket is gone (peer reset, NSM lost,
 *                guest detached); the id stays allocated until CLOSE
 *  EV_PROTO_ERROR status -errno, a0 enum nk_proto_err, a1 descriptor head,
 *                a2 op, req_id: the message could not be handled and had no
 *                request to answer (descriptor errors, stray replies)
 *
 * Size rules: max_payload is agreed per endpoint in HELLO (at least
 * NK_MIN_PAYLOAD, or -EINVAL).  Stream data larger than the receiver's
 * max_payload is split by the engine; a datagram larger than it is refused
 * (SEND: -EMSGSIZE; EV_DATA: dropped and counted).  A datagram always
 * travels whole, in one message: NK_MAX_PAYLOAD is the largest UDP
 * datagram (NK_DGRAM_MAX, IPv6's) with its struct nk_anc and nk_addr.
 *
 * Reset sockets: after EV_RESET the engine answers every request on the id
 * itself with the EV_RESET's errno, and CLOSE with 0, which frees the id.  EV_RESET
 * carries -ECONNRESET (NSM lost or peer reset), -ENETDOWN (guest detached)
 * or -ENOBUFS (the guest's pending limit or its credit was exceeded).
 *
 * Other answers: a second HELLO -EALREADY; a HELLO whose role differs from
 * the configuration space -EINVAL; NK_F_ADDR or NK_F_MORE on an op they do
 * not apply to -EINVAL; socket id 0 as a new id -EINVAL; a guest setting
 * SOCKET a3 bits 32..63 -EINVAL.
 */
enum nk_op {
	NK_OP_HELLO		= 1,
	NK_OP_SOCKET		= 2,
	NK_OP_BIND		= 3,
	NK_OP_LISTEN		= 4,
	NK_OP_ACCEPT		= 5,
	NK_OP_CONNECT		= 6,
	NK_OP_SEND		= 7,
	NK_OP_SHUTDOWN		= 8,
	NK_OP_CLOSE		= 9,
	NK_OP_SETSOCKOPT	= 10,
	NK_OP_GETSOCKOPT	= 11,
	NK_OP_GETSOCKNAME	= 12,
	NK_OP_GETPEERNAME	= 13,
	NK_OP_IOCTL		= 14,
	NK_OP_CREDIT		= 15,
	NK_OP_MAX_REQUEST	= NK_OP_CREDIT,
	NK_OP_INFO		= 0x40,	/* the engine's own request to an NSM */

	NK_EV_DATA		= 0x101,
	NK_EV_ACCEPT		= 0x102,
	NK_EV_CONNECTED		= 0x103,
	NK_EV_WRITABLE		= 0x104,
	NK_EV_HUP		= 0x105,
	NK_EV_ERROR		= 0x106,
	NK_EV_RESET		= 0x107,
	NK_EV_URG		= 0x108,
	NK_EV_PROTO_ERROR	= 0x1ff,
};

/* HELLO a1: protocol features. */
#define NK_FEAT_INET6		(1ULL << 0)	/* AF_INET6 sockets */
#define NK_FEAT_DGRAM		(1ULL << 1)	/* SOCK_DGRAM sockets */
#define NK_FEAT_INFO		(1ULL << 2)	/* NSM: answers NK_OP_INFO */
#define NK_FEAT_ANC		(1ULL << 3)	/* datagrams carry struct nk_anc (NK_F_ANC) */
#define NK_FEAT_WEIGHT		(1ULL << 4)	/* NSM: SOCKET a3 carries the guest's weight */
#define NK_FEAT_ADDR		(1ULL << 5)	/* guest: HELLO's reply lists its addresses */
#define NK_FEAT_URG		(1ULL << 6)	/* TCP urgent data (NK_EV_URG) */
#define NK_FEAT_PIPE		(1ULL << 7)	/* guest: requests before SOCKET's reply */
#define NK_FEAT_PEER		(1ULL << 8)	/* NSM: passes NK_F_PEER destinations */
#define NK_FEAT_MQ		(1ULL << 9)	/* several queue pairs (HELLO) */
#define NK_FEAT_ALL		(NK_FEAT_INET6 | NK_FEAT_DGRAM | NK_FEAT_INFO | NK_FEAT_ANC | \
				 NK_FEAT_WEIGHT | NK_FEAT_ADDR | NK_FEAT_URG | NK_FEAT_PIPE | \
				 NK_FEAT_PEER | NK_FEAT_MQ)

/*
 * Largest payload any endpoint may send or be sent; HELLO agrees on less.
 * It is the largest datagram, NK_DGRAM_MAX bytes of data (an IPv6 UDP
 * datagram's without jumbograms: 65535 minus its UDP header; IPv4's are at
 * most NK_DGRAM_MAX4), after its struct nk_anc and nk_addr: 65527 + 80 +
 * 28 (asserted below).  It was 65536 before; HELLO agrees on the smaller
 * proposal, so a peer that proposes that or less still gets what it asks.
 */
#define NK_DGRAM_MAX		65527
#define NK_DGRAM_MAX4		65507	/* 65535 - IPv4 header - UDP header */
#define NK_MAX_PAYLOAD		65635
#define NK_MIN_PAYLOAD		2048
#define NK_NAME_MAX		64	/* endpoint names, NUL included */

/* SOCKET and ACCEPT a3/a1 flags. */
#define NK_SOCK_V6ONLY		0x1	/* IPV6_V6ONLY at creation */
/*
 * SOCKET a3, set by the engine only (E -> N; a guest's gets -EINVAL): the
 * guest and the NSM both agreed NK_FEAT_ANC, so the NSM may send this
 * socket's datagrams with NK_F_ANC.
 */
#define NK_SOCK_ANC		0x2
/*
 * SOCKET a3, set by the engine only, on a stream socket: the guest and the
 * NSM both agreed NK_FEAT_URG.  The NSM keeps the urgent byte in the
 * stream (its socket's SO_OOBINLINE stays on, the guest's own applies in
 * the guest) and sends EV_URG; a connection accepted from such a listener
 * does the same.
 */
#define NK_SOCK_URG		0x4
/*
 * SOCKET a3 bits 16..25, set by the engine only (E -> N, when the NSM
 * agreed NK_FEAT_WEIGHT; a guest's gets -EINVAL): the guest's scheduling
 * weight, 1 to NK_WEIGHT_MAX; 0: not said.  The NSM keeps the latest per
 * guest and shares its own CPU by it (hostengine.rst "Data plane").
 */
#define NK_SOCK_WEIGHT_SHIFT	16
#define NK_SOCK_WEIGHT_MASK	(0x3ffU << NK_SOCK_WEIGHT_SHIFT)
#define NK_WEIGHT_MAX		1000

/* SEND a0 flags: the subset of MSG_* that crosses the wire. */
#define NK_MSG_OOB		0x1
#define NK_MSG_DONTROUTE	0x2
#define NK_MSG_EOR		0x4
#define NK_MSG_KNOWN		(NK_MSG_OOB | NK_MSG_DONTROUTE | NK_MSG_EOR)

/* EV_HUP a0 */
#define NK_SHUT_RD		0x1	/* peer will send no more: EOF after queued data */
#define NK_SHUT_WR		0x2	/* our side can send no more */

/* IOCTL a0 */
enum nk_ioc {
	NK_IOC_OUTQ		= 1,	/* SIOCOUTQ: bytes not yet acked by the peer */
	NK_IOC_OUTQNSD		= 2,	/* SIOCOUTQNSD: bytes not yet sent */
};

/* EV_PROTO_ERROR a0 */
enum nk_proto_err {
	NK_PERR_DESC_RANGE	= 1,	/* descriptor outside the endpoint's memory (-EFAULT) */
	NK_PERR_DESC_LOOP	= 2,	/* descriptor chain loops or is too long (-ELOOP) */
	NK_PERR_DESC_DIR	= 3,	/* writable descriptor on requestq (-EINVAL) */
	NK_PERR_TRUNCATED	= 4,	/* chain shorter than a header (-EBADMSG) */
	NK_PERR_LENGTH		= 5,	/* hdr.len disagrees with the chain (-EMSGSIZE) */
	NK_PERR_STRAY_REPLY	= 6,	/* reply for no outstanding request (-ENOENT) */
	NK_PERR_EVENT_BUF	= 7,	/* eventq buffer too small or readable (-ENOBUFS) */
	NK_PERR_CREDIT		= 8,	/* EV_DATA beyond the guest's credit (-ENOBUFS) */
	NK_PERR_DESC_INDIRECT	= 9,	/* indirect descriptor, not negotiated (-EINVAL) */
	NK_PERR_REFUSED		= 10,	/* an NSM's message refused; status says why */
	NK_PERR_NO_SESSION	= 11,	/* no session: the device (re)started (-ENOTCONN) */
	NK_PERR_PAIR		= 12,	/* message on another pair than its socket's (-EXDEV) */
};

/*
 * A socket address on the wire.  family is 2 (AF_INET) or 10 (AF_INET6),
 * as in Linux.  IPv4 addresses use addr[0..3]; the rest is zero.
 */
struct nk_addr {
	__le16	family;
	__be16	port;
	__be32	flowinfo;
	__u8	addr[16];
	__le32	scope_id;
};

/*
 * Ancillary data of one datagram (NK_F_ANC, with NK_FEAT_ANC agreed): the
 * control messages a native socket would give or take with it.  It comes
 * first in the payload, before the nk_addr of NK_F_ADDR, and credit does
 * not count it.  version is NK_ANC_VERSION and size sizeof(struct nk_anc);
 * present says which fields hold something (NK_ANC_*), and every byte of
 * a field not present is 0.
 *
 * EV_DATA (N -> G): what the NSM's kernel socket gave for the datagram,
 * each only when the guest's socket asked for it.  PKTINFO: ifindex the
 * NSM's interface (the guest names its own), addr4 ipi_addr, spec_dst
 * ipi_spec_dst; PKTINFO6: ifindex, addr6 ipi6_addr; TOS, TTL, TCLASS,
 * HOPLIMIT: the header's values.  ERR and ERR6 (alone: nothing else is
 * present) make the message an entry of the socket's error queue, not
 * data: IP_RECVERR's or IPV6_RECVERR's sock_extended_err (ee_*; origin
 * LOCAL, ICMP or, for ERR6, ICMP6; errno 1 to 4095) and its offender
 * (family 0 and all 0: none); the nk_addr is the datagram's destination
 * and the data what the error quoted of it.
 *
 * Only EV_DATA (N -> G) carries it: a source address that sendmsg()'s
 * IP_PKTINFO or IPV6_PKTINFO names is checked by the guest against the
 * addresses its SOCKET reply listed (the NSM sends from them anyway).
 */
#define NK_ANC_VERSION		1

#define NK_ANC_PKTINFO		0x01	/* IP_PKTINFO: ifindex, addr4, spec_dst */
#define NK_ANC_TTL		0x02	/* IP_TTL: ttl */
#define NK_ANC_TOS		0x04	/* IP_TOS: tos */
#define NK_ANC_PKTINFO6		0x08	/* IPV6_PKTINFO: ifindex, addr6 */
#define NK_ANC_HOPLIMIT		0x10	/* IPV6_HOPLIMIT: hoplimit */
#define NK_ANC_TCLASS		0x20	/* IPV6_TCLASS: tclass */
#define NK_ANC_ERR		0x40	/* IP_RECVERR entry: ee_*, offender */
#define NK_ANC_ERR6		0x80	/* IPV6_RECVERR entry: ee_*, offender */
#define NK_ANC_KNOWN		0xff

/* nk_anc.ee_origin: Linux's SO_EE_ORIGIN_* that an error entry may carry. */
#define NK_EE_ORIGIN_LOCAL	1
#define NK_EE_ORIGIN_ICMP	2
#define NK_EE_ORIGIN_ICMP6	3

struct nk_anc {
	__u8	version;	/* NK_ANC_VERSION */
	__u8	size;		/* sizeof(struct nk_anc) */
	__le16	present;	/* NK_ANC_* */
	__le32	ifindex;
	__u8	addr6[16];
	__u8	addr4[4];
	__u8	spec_dst[4];
	__u8	tos;
	__u8	tclass;
	__u8	ttl;
	__u8	hoplimit;
	__le32	ee_errno;
	__u8	ee_origin;
	__u8	ee_type;
	__u8	ee_code;
	__u8	ee_pad;
	__le32	ee_info;
	__le32	ee_data;
	struct nk_addr offender;
};

/*
 * One socket as an NSM sees it, in the reply to NK_OP_INFO.  sock is the
 * id asked for.  status 0: every other field describes the NSM's kernel
 * socket; status -EBADF (the NSM has no such socket): all other bytes 0.
 * family is 2 or 10, proto 6 (TCP) or 17 (UDP); state is a Linux TCP
 * state (enum nk_sock_state, 1 to 12; a UDP socket is ESTABLISHED when
 * connected, else CLOSE).  local and remote carry family's addresses
 * (remote all 0 but family when there is no peer).  The counters are
 * struct tcp_info's (tcpi_rtt, tcpi_rttvar in microseconds, tcpi_snd_cwnd
 * in segments, tcpi_total_retrans, tcpi_delivery_rate in bytes per
 * second), 0 for UDP; send_q and recv_q are the bytes in the socket's
 * send and receive queues (as ss's Send-Q and Recv-Q; a listener's
 * recv_q is its accept queue, send_q its backlog).  reserved is 0.
 */
struct nk_sock_info {
	__le32	sock;
	__le32	status;		/* 0 or a negative errno (s32) */
	__le16	family;
	__u8	proto;
	__u8	state;		/* enum nk_sock_state */
	struct nk_addr local;
	struct nk_addr remote;
	__le32	rtt_us;
	__le32	rttvar_us;
	__le32	snd_cwnd;
	__le32	retrans;
	__le32	send_q;
	__le32	recv_q;
	__le32	reserved;
	__le64	delivery_rate;
};

/* The records one INFO reply may carry for a max_payload. */
#define NK_INFO_MAX(max_payload)	((max_payload) / sizeof(struct nk_sock_info))

/* nk_sock_info.state: Linux's TCP states (include/net/tcp_states.h). */
enum nk_sock_state {
	NK_SS_ESTABLISHED	= 1,
	NK_SS_SYN_SENT		= 2,
	NK_SS_SYN_RECV		= 3,
	NK_SS_FIN_WAIT1		= 4,
	NK_SS_FIN_WAIT2		= 5,
	NK_SS_TIME_WAIT		= 6,
	NK_SS_CLOSE		= 7,
	NK_SS_CLOSE_WAIT	= 8,
	NK_SS_LAST_ACK		= 9,
	NK_SS_LISTEN		= 10,
	NK_SS_CLOSING		= 11,
	NK_SS_NEW_SYN_RECV	= 12,
	NK_SS_MAX		= NK_SS_NEW_SYN_RECV,
};

/*
 * Credits (per socket and direction, as virtio-vsock's buf_alloc/fwd_cnt):
 * a receiver announces buf_alloc, the bytes it will hold for the socket, and
 * fwd_cnt, the bytes it has consumed so far.  A sender that has sent tx_cnt
 * bytes may send n more only if (u32)(tx_cnt + n - fwd_cnt) <= buf_alloc.
 * Only SEND and EV_DATA payload (nk_addr and nk_anc excluded) is counted.  The engine
 * checks every data message against the credit the receiver announced and
 * refuses what exceeds it, so no party, the engine included, ever holds more
 * than buf_alloc bytes for a socket that stops reading.  EV_DATA beyond the
 * guest's credit resets the socket (EV_RESET -ENOBUFS to the guest, CLOSE to
 * the NSM, EV_PROTO_ERROR NK_PERR_CREDIT to the NSM).  NK_CREDIT_MAX is what
 * the protocol allows; a receiver may keep its own buf_alloc lower (a guest
 * keeps 4 MiB, an NSM gives a guest of weight w its buf_alloc times w).
 */
#define NK_CREDIT_MAX		(16U << 20)	/* buf_alloc above this is clamped */

static inline int nk_credit_ok(__u32 tx_cnt, __u32 n, __u32 peer_fwd_cnt,
			       __u32 peer_buf_alloc)
{
	__u32 in_flight = tx_cnt - peer_fwd_cnt;

	return in_flight <= peer_buf_alloc && n <= peer_buf_alloc - in_flight;
}

_Static_assert(sizeof(struct nk_config) == 8, "nk_config is 8 bytes");
_Static_assert(sizeof(struct nk_hdr) == 64, "nk_hdr is one cache line");
_Static_assert(sizeof(struct nk_addr) == 28, "nk_addr is 28 bytes");
_Static_assert(sizeof(struct nk_sock_info) == 104, "nk_sock_info is 104 bytes");
_Static_assert(sizeof(struct nk_anc) == 80, "nk_anc is 80 bytes");
_Static_assert(NK_MAX_PAYLOAD == NK_DGRAM_MAX + sizeof(struct nk_anc) +
	       sizeof(struct nk_addr), "the largest datagram fits one message");

#endif /* _NETKERNEL_NK_PROTO_H */
