/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nk message helpers shared by af_netkernel.ko and nsm_kernel.ko.
 *
 * Pure functions: no virtio, no sockets, no locking, no allocation.  They
 * build headers, validate what arrives from the host engine (which neither
 * module trusts), convert addresses between struct nk_addr and struct
 * sockaddr_in/sockaddr_in6, and do the credit arithmetic of nk_proto.h.
 * Each function is safe in any context.
 *
 * Every function that takes input from the wire returns 0 or a negative
 * errno and never trusts a length, an op, a flag or an address it has not
 * checked itself.
 */
#ifndef _NK_MSG_H
#define _NK_MSG_H

#include <linux/socket.h>
#include <linux/types.h>

#include "../include/netkernel/nk_proto.h"

/**
 * nk_hdr_init() - zero a header and fill in the fields every message has
 * @hdr: the header
 * @op: enum nk_op
 * @flags: NK_F_*
 * @sock: socket id, 0 for none
 * @req_id: request id (0 for events and unanswered requests)
 *
 * len is left 0; the sender sets it when the payload is known.
 */
void nk_hdr_init(struct nk_hdr *hdr, u16 op, u16 flags, u32 sock, u64 req_id);

/**
 * nk_hdr_set_credit() - add a credit announcement to a header
 * @hdr: the header
 * @buf_alloc: receive buffer for the socket (clamped to NK_CREDIT_MAX)
 * @fwd_cnt: bytes consumed so far
 *
 * Sets NK_F_CREDIT.
 */
void nk_hdr_set_credit(struct nk_hdr *hdr, u32 buf_alloc, u32 fwd_cnt);

/**
 * nk_hdr_check() - validate a header received by an endpoint
 * @hdr: the header, as it arrived
 * @len: bytes the device wrote into the buffer (header included)
 * @role: role of the receiving endpoint (enum nk_role)
 * @max_payload: largest payload the receiver accepts
 *
 * Checks that @len covers the header and exactly hdr.len bytes of payload,
 * that hdr.len does not exceed @max_payload, that no unknown flag is set,
 * that the op is one the receiving role may be sent (a guest gets replies
 * and events; an NSM gets requests, the HELLO reply and engine events),
 * that NK_F_REPLY is set exactly on replies, and that the status of a
 * reply or event is 0 or a negative errno.
 *
 * Return: 0, -EBADMSG (truncated), -EMSGSIZE (length), -EINVAL (flags or
 * status) or -EOPNOTSUPP (op not allowed for @role).
 */
int nk_hdr_check(const struct nk_hdr *hdr, u32 len, int role, u32 max_payload);

/**
 * nk_hdr_check_len() - the framing rules of nk_hdr_check()
 * @hdr: the header, as it arrived (only hdr.len is read)
 * @len: bytes in the buffer or chain (header included)
 * @max_payload: largest payload the receiver accepts
 *
 * Return: 0, -EBADMSG (@len shorter than a header) or -EMSGSIZE (hdr.len
 * over @max_payload or not the rest of @len).
 */
int nk_hdr_check_len(const struct nk_hdr *hdr, u32 len, u32 max_payload);

/**
 * nk_hdr_check_fields() - the flag and status rules of nk_hdr_check()
 * @hdr: the header
 *
 * No unknown flag, NK_F_ADDR only on SEND and EV_DATA, NK_F_MORE only on
 * SEND, NK_F_ANC only on EV_DATA with NK_F_ADDR, a status of 0 or a negative errno.  Whoever receives a message
 * applies them, the engine included.
 *
 * Return: 0 or -EINVAL.
 */
int nk_hdr_check_fields(const struct nk_hdr *hdr);

/**
 * nk_op_sendable() - whether an endpoint may send an op to the engine
 * @role: role of the sending endpoint (enum nk_role)
 * @op: the op
 * @reply: whether NK_F_REPLY is set
 *
 * A guest sends requests (HELLO included) and answers none; an NSM sends
 * HELLO, replies to requests other than HELLO, CREDIT and the events
 * EV_DATA to EV_ERROR and EV_URG (EV_RESET and EV_PROTO_ERROR are the
 * engine's own).
 * The counterpart of the rule nk_hdr_check() applies to what an endpoint
 * is sent.
 */
bool nk_op_sendable(int role, u16 op, bool reply);

/**
 * nk_hdr_data_len() - the payload bytes credit counts
 * @hdr: a SEND or EV_DATA header whose hdr.len was checked
 *
 * hdr.len less the struct nk_anc of NK_F_ANC and the struct nk_addr of
 * NK_F_ADDR that come first.
 *
 * Return: the byte count, or -EMSGSIZE when the payload has no room for
 * them.
 */
int nk_hdr_data_len(const struct nk_hdr *hdr);

/**
 * nk_anc_check() - validate the struct nk_anc of an EV_DATA with NK_F_ANC
 * @anc: the block, as it arrived
 *
 * Every byte is checked against the rules of nk_proto.h: version and size,
 * no unknown NK_ANC_* bit, every field that no present bit covers 0; an
 * error entry (ERR or ERR6) carries nothing else, an errno of 1 to 4095,
 * an origin it may have (LOCAL, ICMP; ICMP6 for ERR6 only), ee_pad 0 and
 * an offender all 0 or valid (nk_addr_check()).
 *
 * Return: 0 or -EINVAL.
 */
int nk_anc_check(const struct nk_anc *anc);

/**
 * nk_urg_check() - validate an EV_URG
 * @hdr: its header, whose hdr.len was checked
 * @rx_cnt: stream bytes the receiver has had on the socket (its credit's
 *          rx_cnt, or the engine's tx_cnt towards the guest)
 *
 * The rules of nk_proto.h: no payload, status 0, no flag but NK_F_CREDIT,
 * a byte of 0..255 in a0, a u32 mark in a1 that is not before @rx_cnt
 * (a difference below 2^31), a2 and a3 0.
 *
 * Return: 0 or -EINVAL.
 */
int nk_urg_check(const struct nk_hdr *hdr, u32 rx_cnt);

/**
 * nk_hdr_status() - the status field of a checked header as an int
 * @hdr: a header that passed nk_hdr_check()
 *
 * Return: 0 or a negative errno.
 */
int nk_hdr_status(const struct nk_hdr *hdr);

/**
 * nk_op_name() - printable name of an op, for logs
 * @op: enum nk_op value (anything)
 *
 * Return: a static string, "?" for unknown values.
 */
const char *nk_op_name(u16 op);

/**
 * struct nk_hello - the result of a HELLO exchange
 * @version: protocol version the engine speaks
 * @features: features agreed (NK_FEAT_*)
 * @max_payload: payload limit agreed
 * @endpoint_id: id the engine gave this endpoint
 * @name: endpoint name, NUL terminated, printable ASCII only
 * @engine_hold: bytes the engine holds for the endpoint beyond its eventq
 *               before it resets sockets (the reply's buf_alloc), 0 if the
 *               engine did not say
 * @addrs: with NK_FEAT_ADDR agreed, the guest's addresses (port 0, at most
 *         one per family, IPv4 first)
 * @naddrs: how many of @addrs there are
 * @pairs: queue pairs agreed (1 unless NK_FEAT_MQ was agreed; then at most
 *         NK_MAX_QPAIRS, and the caller checks it against its proposal)
 */
struct nk_hello {
	u32 version;
	u64 features;
	u32 max_payload;
	u32 endpoint_id;
	u32 pairs;
	char name[NK_NAME_MAX];
	u32 engine_hold;
	struct nk_addr addrs[2];
	u32 naddrs;
};

/* The largest HELLO reply payload: the name, then the guest's addresses. */
#define NK_HELLO_REPLY_MAX	(NK_NAME_MAX + 2 * sizeof(struct nk_addr))

/**
 * nk_hello_reply_parse() - validate a HELLO reply against the proposal
 * @hdr: the reply header (passed nk_hdr_check())
 * @payload: the payload (the endpoint name; with NK_FEAT_ADDR agreed, the
 *           name in NK_NAME_MAX bytes, then 0 to 2 struct nk_addr)
 * @plen: bytes of it available (less than hdr.len if it was truncated)
 * @features: features proposed
 * @max_payload: max_payload proposed
 * @out: filled on success
 *
 * Return: 0, the reply's own error status, -EPROTONOSUPPORT for another
 * version, or -EPROTO for a reply that breaks the HELLO rules (features
 * not proposed, payload size out of range, endpoint id 0, pairs agreed 0
 * or over NK_MAX_QPAIRS, bad name, bad address list).
 */
int nk_hello_reply_parse(const struct nk_hdr *hdr, const void *payload,
			 u32 plen, u64 features, u32 max_payload,
			 struct nk_hello *out);

/**
 * nk_addr_check() - validate an address received from the wire
 * @na: the address
 *
 * family must be AF_INET or AF_INET6; an IPv4 address must have flowinfo,
 * scope_id and addr[4..15] zero.
 *
 * Return: 0 or -EINVAL.
 */
int nk_addr_check(const struct nk_addr *na);

/**
 * nk_sock_weight() - the guest's weight in a SOCKET's a3 (E -> N)
 * @a3: the request's arg[3]
 *
 * Bits 16..25 (NK_SOCK_WEIGHT_MASK) carry it when the NSM agreed
 * NK_FEAT_WEIGHT; the other bits are not looked at.
 *
 * Return: the weight, 1 to NK_WEIGHT_MAX; 0 when none is said; -EINVAL
 * above NK_WEIGHT_MAX.
 */
int nk_sock_weight(u64 a3);

/**
 * nk_info_req_check() - validate an NK_OP_INFO request (the NSM's side)
 * @hdr: the header, already checked by nk_hdr_check()
 * @max_payload: the NSM's agreed max_payload (its reply must fit)
 *
 * sock must be 0 and the payload 1 to NK_INFO_MAX(@max_payload) __le32
 * socket ids.
 *
 * Return: the number of ids, or -EINVAL.
 */
int nk_info_req_check(const struct nk_hdr *hdr, u32 max_payload);

/**
 * nk_sock_info_check() - validate one record of an NK_OP_INFO reply
 * @si: the record, as received
 * @sock: the socket id the request asked for at this record's place
 * @why: set to what is wrong (a constant string), NULL if nothing
 *
 * Every byte is checked: the id, status 0 or -EBADF (then all else 0),
 * family, protocol, state (UDP: ESTABLISHED or CLOSE), both addresses of
 * the record's family (nk_addr_check()), reserved 0.
 *
 * Return: 0 (a socket described), -EBADF (the NSM has no such socket), or
 * -EPROTO (a malformed record, *@why says how).
 */
int nk_sock_info_check(const struct nk_sock_info *si, u32 sock,
		       const char **why);

/**
 * nk_addr_from_sockaddr() - convert a user's socket address
 * @na: result
 * @sa: struct sockaddr_in or sockaddr_in6 (kernel copy)
 * @len: its length as passed by the user
 *
 * Return: 0, -EINVAL for a short length or -EAFNOSUPPORT for another
 * family.
 */
int nk_addr_from_sockaddr(struct nk_addr *na, const struct sockaddr *sa,
			  int len);

/**
 * nk_addr_to_sockaddr() - convert a checked wire address for a user
 * @na: address that passed nk_addr_check()
 * @ss: result, a struct sockaddr_in or sockaddr_in6
 * @family: family of the socket the user sees: an AF_INET address shown to
 *          an AF_INET6 socket becomes a v4-mapped address
 *
 * Return: the sockaddr length, or -EINVAL when @na cannot be shown to a
 * socket of @family (an IPv6 address on an AF_INET socket).
 */
int nk_addr_to_sockaddr(const struct nk_addr *na,
			struct sockaddr_storage *ss, int family);

/**
 * nk_addr_is_loopback() - whether an address is on a loopback network
 * @na: a checked address
 *
 * True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104.
 */
bool nk_addr_is_loopback(const struct nk_addr *na);

/**
 * nk_addr_is_v4() - whether an address is an IPv4 one
 * @na: a checked address
 *
 * True for AF_INET and for a v4-mapped AF_INET6 address (an IPv6 socket
 * sends to it over IPv4, so its datagrams are at most NK_DGRAM_MAX4).
 */
bool nk_addr_is_v4(const struct nk_addr *na);

/*
 * Credit arithmetic (see "Flow control" in protocol.rst).  One struct per
 * socket and direction; the caller provides the locking.
 */

/**
 * struct nk_credit_tx - what a sender knows about its peer's buffer
 * @tx_cnt: bytes sent so far, mod 2^32
 * @peer_buf_alloc: last buf_alloc the receiver announced (clamped)
 * @peer_fwd_cnt: last fwd_cnt the receiver announced
 */
struct nk_credit_tx {
	u32 tx_cnt;
	u32 peer_buf_alloc;
	u32 peer_fwd_cnt;
};

/**
 * struct nk_credit_rx - what a receiver has announced and consumed
 * @buf_alloc: receive buffer it announces (at most NK_CREDIT_MAX)
 * @rx_cnt: bytes received so far, mod 2^32
 * @fwd_cnt: bytes consumed (handed to the application) so far
 * @fwd_sent: fwd_cnt as last put in a message for the sender
 *            (nk_credit_rx_fill()): the most the sender can know, which
 *            bounds what it may send
 * @starved: the sender has used all the credit announced to it since
 *           nk_credit_rx_autotune() last looked (set by nk_credit_rx_accept())
 * @fwd_queued: fwd_cnt as carried by the last message actually queued
 *              (nk_credit_rx_queued()): what the sender will know, which
 *              decides whether to announce again
 */
struct nk_credit_rx {
	u32 buf_alloc;
	u32 rx_cnt;
	u32 fwd_cnt;
	u32 fwd_sent;
	bool starved;
	u32 fwd_queued;
};

/**
 * nk_credit_tx_send() - account @n bytes about to leave
 * @c: sender state
 * @n: payload bytes of the message about to be queued
 *
 * Called before the message can reach the receiver: the receiver's
 * announcement that it consumed them may come back before the sending
 * thread runs again, and nk_credit_tx_update() takes it only if tx_cnt
 * counts them.  A message that does not leave after all is taken back
 * with nk_credit_tx_unsend().
 */
void nk_credit_tx_send(struct nk_credit_tx *c, u32 n);

/**
 * nk_credit_tx_unsend() - take back the bytes of a message that did not leave
 * @c: sender state
 * @n: what the last nk_credit_tx_send() accounted (nothing sent since)
 *
 * The receiver never got them, so it cannot have consumed them: an fwd_cnt
 * it announced meanwhile beyond what is left is pulled back to tx_cnt.
 *
 * Return: 0, or -EPROTO when the receiver had announced consuming them.
 */
int nk_credit_tx_unsend(struct nk_credit_tx *c, u32 n);

/**
 * nk_credit_tx_space() - bytes the sender may send now
 * @c: sender state
 */
u32 nk_credit_tx_space(const struct nk_credit_tx *c);

/**
 * nk_credit_tx_update() - record a credit announcement from the receiver
 * @c: sender state
 * @buf_alloc: announced buf_alloc (clamped to NK_CREDIT_MAX)
 * @fwd_cnt: announced fwd_cnt
 *
 * An fwd_cnt beyond tx_cnt (the receiver claims to have consumed bytes
 * never sent) is refused; an older fwd_cnt than the one recorded is
 * ignored.
 *
 * Return: 0 or -EPROTO (state unchanged).
 */
int nk_credit_tx_update(struct nk_credit_tx *c, u32 buf_alloc, u32 fwd_cnt);

/**
 * nk_credit_rx_accept() - account @n received bytes against the credit
 * @c: receiver state
 * @n: payload bytes that arrived
 *
 * Return: 0, or -ENOBUFS when the sender exceeded the credit announced
 * (state unchanged).
 */
int nk_credit_rx_accept(struct nk_credit_rx *c, u32 n);

/**
 * nk_credit_rx_unread() - bytes received and not consumed yet
 * @c: receiver state
 */
u32 nk_credit_rx_unread(const struct nk_credit_rx *c);

/**
 * nk_credit_rx_closed() - whether the sender can send nothing more
 * @c: receiver state
 *
 * True when the bytes received since the last consumption the sender may
 * know of (fwd_sent) fill buf_alloc: until more is announced, nothing more
 * comes, so a reader waiting for more than it has (SO_RCVLOWAT) must be
 * told what it has, as TCP's poll does when its window is closed.
 */
bool nk_credit_rx_closed(const struct nk_credit_rx *c);

/**
 * nk_credit_rx_fill() - put the receiver's credit in an outgoing message
 * @c: receiver state
 * @hdr: the message's header (nk_hdr_set_credit() with buf_alloc, fwd_cnt)
 *
 * From now on the sender may know this fwd_cnt (fwd_sent), but it counts
 * as announced only once the message is queued: nk_credit_rx_queued().
 */
void nk_credit_rx_fill(struct nk_credit_rx *c, struct nk_hdr *hdr);

/**
 * nk_credit_rx_queued() - a message announcing @fwd_cnt is queued
 * @c: receiver state
 * @fwd_cnt: the fwd_cnt it carries (as nk_credit_rx_fill() put it there)
 *
 * A message dropped before it was queued (a signal, no ring space, a bad
 * user buffer) announced nothing, so the consumption it carried is still
 * to be announced.  Messages filled earlier may be queued later:
 * fwd_queued never goes back.
 */
void nk_credit_rx_queued(struct nk_credit_rx *c, u32 fwd_cnt);

/**
 * nk_credit_rx_need_update() - whether the sender should be told more credit
 * @c: receiver state
 *
 * True when the free space the sender believes in (by the last queued
 * announcement) has fallen below half of buf_alloc and consumption was
 * not announced yet.
 */
bool nk_credit_rx_need_update(const struct nk_credit_rx *c);

/**
 * nk_credit_rx_autotune() - grow buf_alloc for a receiver that keeps up
 * @c: receiver state
 * @limit: the largest buf_alloc to grow to (clamped to NK_CREDIT_MAX)
 *
 * Called when the receiver has consumed everything and waits for more.  If
 * the sender ran out of credit meanwhile (it waited for us while we waited
 * for it), the credit window, not the application, limits the stream:
 * buf_alloc doubles, up to @limit.  The starved mark is cleared either way.
 * The caller announces the new buf_alloc.
 *
 * Return: true when buf_alloc grew.
 */
bool nk_credit_rx_autotune(struct nk_credit_rx *c, u32 limit);

#endif /* _NK_MSG_H */
