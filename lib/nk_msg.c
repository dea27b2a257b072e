// SPDX-License-Identifier: GPL-2.0
/*
 * nk message helpers: header building and validation, address conversion
 * and credit arithmetic.  See nk_msg.h for the contract of each function.
 */
#include <linux/err.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/string.h>
#include <net/ipv6.h>

#include "nk_msg.h"

void nk_hdr_init(struct nk_hdr *hdr, u16 op, u16 flags, u32 sock, u64 req_id)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->op = cpu_to_le16(op);
	hdr->flags = cpu_to_le16(flags);
	hdr->sock = cpu_to_le32(sock);
	hdr->req_id = cpu_to_le64(req_id);
}

void nk_hdr_set_credit(struct nk_hdr *hdr, u32 buf_alloc, u32 fwd_cnt)
{
	hdr->flags |= cpu_to_le16(NK_F_CREDIT);
	hdr->buf_alloc = cpu_to_le32(min(buf_alloc, NK_CREDIT_MAX));
	hdr->fwd_cnt = cpu_to_le32(fwd_cnt);
}

static bool nk_op_is_request(u16 op)
{
	return op >= NK_OP_HELLO && op <= NK_OP_MAX_REQUEST;
}

static bool nk_op_is_event(u16 op)
{
	return (op >= NK_EV_DATA && op <= NK_EV_URG) ||
	       op == NK_EV_PROTO_ERROR;
}

/* Whether an endpoint of @role may be sent @op with (@reply) or without NK_F_REPLY. */
static bool nk_op_allowed(int role, u16 op, bool reply)
{
	switch (role) {
	case NK_ROLE_GUEST:
		/* replies to its requests, events, and the NSM's CREDIT */
		if (reply)
			return nk_op_is_request(op);
		return nk_op_is_event(op) || op == NK_OP_CREDIT;
	case NK_ROLE_NSM:
		/* the HELLO reply, the guests' requests, the engine's events */
		if (reply)
			return op == NK_OP_HELLO;
		return (nk_op_is_request(op) && op != NK_OP_HELLO) ||
		       op == NK_OP_INFO ||
		       op == NK_EV_RESET || op == NK_EV_PROTO_ERROR;
	default:
		return false;
	}
}

bool nk_op_sendable(int role, u16 op, bool reply)
{
	switch (role) {
	case NK_ROLE_GUEST:
		/* requests; a guest answers none */
		return !reply && nk_op_is_request(op);
	case NK_ROLE_NSM:
		/* HELLO, replies to the guests' and the engine's requests, events, CREDIT */
		if (reply)
			return (nk_op_is_request(op) && op != NK_OP_HELLO) ||
			       op == NK_OP_INFO;
		return op == NK_OP_HELLO || op == NK_OP_CREDIT ||
		       (op >= NK_EV_DATA && op <= NK_EV_ERROR) ||
		       op == NK_EV_URG;
	default:
		return false;
	}
}

int nk_hdr_check_len(const struct nk_hdr *hdr, u32 len, u32 max_payload)
{
	u32 plen = le32_to_cpu(hdr->len);

	if (len < sizeof(*hdr))
		return -EBADMSG;
	if (plen > max_payload || plen != len - sizeof(*hdr))
		return -EMSGSIZE;
	return 0;
}

int nk_hdr_check_fields(const struct nk_hdr *hdr)
{
	u16 op = le16_to_cpu(hdr->op);
	u16 flags = le16_to_cpu(hdr->flags);
	s32 status = (s32)le32_to_cpu(hdr->status);

	if (flags & ~NK_F_KNOWN)
		return -EINVAL;
	if ((flags & NK_F_ADDR) && op != NK_OP_SEND && op != NK_EV_DATA)
		return -EINVAL;
	if ((flags & NK_F_MORE) && op != NK_OP_SEND)
		return -EINVAL;
	if ((flags & NK_F_ANC) && (op != NK_EV_DATA || !(flags & NK_F_ADDR)))
		return -EINVAL;
	if ((flags & NK_F_PEER) &&
	    ((op != NK_OP_CONNECT && op != NK_OP_SEND) || (flags & NK_F_REPLY)))
		return -EINVAL;
	if (status > 0 || status < -MAX_ERRNO)
		return -EINVAL;
	return 0;
}

int nk_hdr_check(const struct nk_hdr *hdr, u32 len, int role, u32 max_payload)
{
	u16 flags = le16_to_cpu(hdr->flags);
	int err;

	err = nk_hdr_check_len(hdr, len, max_payload);
	if (err)
		return err;
	if (flags & ~NK_F_KNOWN)
		return -EINVAL;
	if (!nk_op_allowed(role, le16_to_cpu(hdr->op), flags & NK_F_REPLY))
		return -EOPNOTSUPP;
	return nk_hdr_check_fields(hdr);
}

int nk_hdr_data_len(const struct nk_hdr *hdr)
{
	u16 flags = le16_to_cpu(hdr->flags);
	u32 plen = le32_to_cpu(hdr->len);
	u32 meta = 0;

	if (flags & NK_F_ADDR)
		meta += sizeof(struct nk_addr);
	if (flags & NK_F_ANC)
		meta += sizeof(struct nk_anc);
	if (plen < meta)
		return -EMSGSIZE;
	return plen - meta;
}

/* The bytes of @anc that @present leaves unused must be 0. */
static bool nk_anc_unused_zero(const struct nk_anc *anc, u16 present)
{
	static const u8 zero_addr[sizeof(struct nk_addr)];

	if (!(present & (NK_ANC_PKTINFO | NK_ANC_PKTINFO6)) && anc->ifindex)
		return false;
	if (!(present & NK_ANC_PKTINFO6) &&
	    memchr_inv(anc->addr6, 0, sizeof(anc->addr6)))
		return false;
	if (!(present & NK_ANC_PKTINFO) &&
	    (memchr_inv(anc->addr4, 0, sizeof(anc->addr4)) ||
	     memchr_inv(anc->spec_dst, 0, sizeof(anc->spec_dst))))
		return false;
	if ((!(present & NK_ANC_TOS) && anc->tos) ||
	    (!(present & NK_ANC_TCLASS) && anc->tclass) ||
	    (!(present & NK_ANC_TTL) && anc->ttl) ||
	    (!(present & NK_ANC_HOPLIMIT) && anc->hoplimit))
		return false;
	if (!(present & (NK_ANC_ERR | NK_ANC_ERR6)) &&
	    (anc->ee_errno || anc->ee_origin || anc->ee_type || anc->ee_code ||
	     anc->ee_info || anc->ee_data ||
	     memcmp(&anc->offender, zero_addr, sizeof(zero_addr))))
		return false;
	return true;
}

int nk_anc_check(const struct nk_anc *anc)
{
	static const u8 zero_addr[sizeof(struct nk_addr)];
	u16 present = le16_to_cpu(anc->present);
	u16 err = present & (NK_ANC_ERR | NK_ANC_ERR6);
	u32 ee_errno = le32_to_cpu(anc->ee_errno);

	if (anc->version != NK_ANC_VERSION || anc->size != sizeof(*anc) ||
	    (present & ~NK_ANC_KNOWN) || !nk_anc_unused_zero(anc, present))
		return -EINVAL;
	if (!err)
		return 0;
	/* An error queue entry carries its error and nothing else. */
	if (present != NK_ANC_ERR && present != NK_ANC_ERR6)
		return -EINVAL;
	if (!ee_errno || ee_errno > MAX_ERRNO || anc->ee_pad)
		return -EINVAL;
	if (anc->ee_origin != NK_EE_ORIGIN_LOCAL &&
	    anc->ee_origin != NK_EE_ORIGIN_ICMP &&
	    (anc->ee_origin != NK_EE_ORIGIN_ICMP6 || present != NK_ANC_ERR6))
		return -EINVAL;
	if (!memcmp(&anc->offender, zero_addr, sizeof(zero_addr)))
		return 0;
	return nk_addr_check(&anc->offender);
}

int nk_urg_check(const struct nk_hdr *hdr, u32 rx_cnt)
{
	u64 byte = le64_to_cpu(hdr->arg[0]);
	u64 mark = le64_to_cpu(hdr->arg[1]);

	if (le16_to_cpu(hdr->op) != NK_EV_URG || hdr->len || hdr->status ||
	    (le16_to_cpu(hdr->flags) & ~NK_F_CREDIT))
		return -EINVAL;
	if (byte > U8_MAX || mark > U32_MAX || hdr->arg[2] || hdr->arg[3])
		return -EINVAL;
	/* Not before the bytes already sent: their reads did not stop there. */
	if ((u32)mark - rx_cnt > S32_MAX)
		return -EINVAL;
	return 0;
}

int nk_hdr_status(const struct nk_hdr *hdr)
{
	return (s32)le32_to_cpu(hdr->status);
}

const char *nk_op_name(u16 op)
{
	static const char * const req_names[] = {
		[NK_OP_HELLO]		= "HELLO",
		[NK_OP_SOCKET]		= "SOCKET",
		[NK_OP_BIND]		= "BIND",
		[NK_OP_LISTEN]		= "LISTEN",
		[NK_OP_ACCEPT]		= "ACCEPT",
		[NK_OP_CONNECT]		= "CONNECT",
		[NK_OP_SEND]		= "SEND",
		[NK_OP_SHUTDOWN]	= "SHUTDOWN",
		[NK_OP_CLOSE]		= "CLOSE",
		[NK_OP_SETSOCKOPT]	= "SETSOCKOPT",
		[NK_OP_GETSOCKOPT]	= "GETSOCKOPT",
		[NK_OP_GETSOCKNAME]	= "GETSOCKNAME",
		[NK_OP_GETPEERNAME]	= "GETPEERNAME",
		[NK_OP_IOCTL]		= "IOCTL",
		[NK_OP_CREDIT]		= "CREDIT",
	};
	static const char * const ev_names[] = {
		[NK_EV_DATA - NK_EV_DATA]	= "EV_DATA",
		[NK_EV_ACCEPT - NK_EV_DATA]	= "EV_ACCEPT",
		[NK_EV_CONNECTED - NK_EV_DATA]	= "EV_CONNECTED",
		[NK_EV_WRITABLE - NK_EV_DATA]	= "EV_WRITABLE",
		[NK_EV_HUP - NK_EV_DATA]	= "EV_HUP",
		[NK_EV_ERROR - NK_EV_DATA]	= "EV_ERROR",
		[NK_EV_RESET - NK_EV_DATA]	= "EV_RESET",
		[NK_EV_URG - NK_EV_DATA]	= "EV_URG",
	};

	if (nk_op_is_request(op))
		return req_names[op];
	if (op == NK_OP_INFO)
		return "INFO";
	if (op == NK_EV_PROTO_ERROR)
		return "EV_PROTO_ERROR";
	if (nk_op_is_event(op))
		return ev_names[op - NK_EV_DATA];
	return "?";
}

static bool nk_name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

int nk_hello_reply_parse(const struct nk_hdr *hdr, const void *payload,
			 u32 plen, u64 features, u32 max_payload,
			 struct nk_hello *out)
{
	const char *name = payload;
	int status = nk_hdr_status(hdr);
	u64 agreed_payload, id;
	u32 i;

	if (le16_to_cpu(hdr->op) != NK_OP_HELLO)
		return -EPROTO;
	out->version = min_t(u64, le64_to_cpu(hdr->arg[0]), U32_MAX);
	if (status)
		return status;
	if (out->version != NK_PROTO_VERSION)
		return -EPROTONOSUPPORT;

	out->features = le64_to_cpu(hdr->arg[1]);
	agreed_payload = le64_to_cpu(hdr->arg[2]);
	id = le64_to_cpu(hdr->arg[3]);
	if (out->features & ~features)
		return -EPROTO;
	if (agreed_payload < NK_MIN_PAYLOAD || agreed_payload > max_payload)
		return -EPROTO;
	/* With NK_FEAT_MQ, a3 bits 32..39 are the pairs agreed. */
	out->pairs = 1;
	if (out->features & NK_FEAT_MQ) {
		out->pairs = id >> 32;
		id &= U32_MAX;
		if (!out->pairs || out->pairs > NK_MAX_QPAIRS)
			return -EPROTO;
	}
	if (!id || id > U32_MAX)
		return -EPROTO;
	out->max_payload = agreed_payload;
	out->endpoint_id = id;
	out->engine_hold = le32_to_cpu(hdr->buf_alloc);

	if (plen < le32_to_cpu(hdr->len))
		return -EPROTO;
	plen = le32_to_cpu(hdr->len);
	out->naddrs = 0;
	if (out->features & NK_FEAT_ADDR) {
		/* The name in NK_NAME_MAX bytes, then the addresses. */
		const struct nk_addr *a = (const void *)(name + NK_NAME_MAX);
		u32 alen = plen - min_t(u32, plen, NK_NAME_MAX);

		if (plen < NK_NAME_MAX || name[NK_NAME_MAX - 1] ||
		    alen % sizeof(*a) || alen > sizeof(out->addrs))
			return -EPROTO;
		out->naddrs = alen / sizeof(*a);
		memcpy(out->addrs, a, alen);
		for (i = 0; i < out->naddrs; i++)
			if (nk_addr_check(&out->addrs[i]) || out->addrs[i].port)
				return -EPROTO;
		if (out->naddrs == 2 &&
		    (le16_to_cpu(out->addrs[0].family) != AF_INET ||
		     le16_to_cpu(out->addrs[1].family) != AF_INET6))
			return -EPROTO;
		plen = NK_NAME_MAX;
	}
	/* The name may or may not carry its NUL (protocol.rst, open point 6). */
	while (plen && !name[plen - 1])
		plen--;
	if (!plen || plen >= NK_NAME_MAX)
		return -EPROTO;
	for (i = 0; i < plen; i++)
		if (!nk_name_char_ok(name[i]))
			return -EPROTO;
	memcpy(out->name, name, plen);
	out->name[plen] = '\0';
	return 0;
}

int nk_sock_weight(u64 a3)
{
	u32 w = ((u32)a3 & NK_SOCK_WEIGHT_MASK) >> NK_SOCK_WEIGHT_SHIFT;

	return w > NK_WEIGHT_MAX ? -EINVAL : (int)w;
}

int nk_addr_check(const struct nk_addr *na)
{
	switch (le16_to_cpu(na->family)) {
	case AF_INET:
		if (na->flowinfo || na->scope_id ||
		    memchr_inv(na->addr + 4, 0, sizeof(na->addr) - 4))
			return -EINVAL;
		return 0;
	case AF_INET6:
		return 0;
	default:
		return -EINVAL;
	}
}

int nk_info_req_check(const struct nk_hdr *hdr, u32 max_payload)
{
	u32 plen = le32_to_cpu(hdr->len);

	if (hdr->sock || plen % sizeof(__le32) || !plen ||
	    plen / sizeof(__le32) > NK_INFO_MAX(max_payload))
		return -EINVAL;
	return plen / sizeof(__le32);
}

/* An address of a socket of @family: that family, or all zero but it. */
static bool nk_info_addr_ok(const struct nk_addr *na, u16 family)
{
	return le16_to_cpu(na->family) == family && !nk_addr_check(na);
}

int nk_sock_info_check(const struct nk_sock_info *si, u32 sock,
		       const char **why)
{
	s32 status = (s32)le32_to_cpu(si->status);
	u16 family = le16_to_cpu(si->family);

	*why = NULL;
	if (le32_to_cpu(si->sock) != sock)
		*why = "not the socket asked for";
	else if (status == -EBADF)
		*why = memchr_inv(&si->family, 0, sizeof(*si) -
				  offsetof(struct nk_sock_info, family)) ?
		       "unknown socket with data" : NULL;
	else if (status)
		*why = "bad status";
	else if (family != AF_INET && family != AF_INET6)
		*why = "bad family";
	else if (si->proto != IPPROTO_TCP && si->proto != IPPROTO_UDP)
		*why = "bad protocol";
	else if (!si->state || si->state > NK_SS_MAX ||
		 (si->proto == IPPROTO_UDP && si->state != NK_SS_ESTABLISHED &&
		  si->state != NK_SS_CLOSE))
		*why = "bad state";
	else if (!nk_info_addr_ok(&si->local, family) ||
		 !nk_info_addr_ok(&si->remote, family))
		*why = "bad address";
	else if (si->reserved)
		*why = "reserved field set";
	if (*why)
		return -EPROTO;
	return status;
}

int nk_addr_from_sockaddr(struct nk_addr *na, const struct sockaddr *sa,
			  int len)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

	memset(na, 0, sizeof(*na));
	if (len < (int)sizeof(sa->sa_family))
		return -EINVAL;

	switch (sa->sa_family) {
	case AF_INET:
		if (len < (int)sizeof(*sin))
			return -EINVAL;
		na->family = cpu_to_le16(AF_INET);
		na->port = sin->sin_port;
		memcpy(na->addr, &sin->sin_addr, sizeof(sin->sin_addr));
		return 0;
	case AF_INET6:
		if (len < SIN6_LEN_RFC2133)
			return -EINVAL;
		na->family = cpu_to_le16(AF_INET6);
		na->port = sin6->sin6_port;
		na->flowinfo = sin6->sin6_flowinfo;
		memcpy(na->addr, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
		if (len >= (int)sizeof(*sin6))
			na->scope_id = cpu_to_le32(sin6->sin6_scope_id);
		return 0;
	default:
		return -EAFNOSUPPORT;
	}
}

int nk_addr_to_sockaddr(const struct nk_addr *na,
			struct sockaddr_storage *ss, int family)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	bool v4 = le16_to_cpu(na->family) == AF_INET;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		if (!v4)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = na->port;
		memcpy(&sin->sin_addr, na->addr, sizeof(sin->sin_addr));
		return sizeof(*sin);
	}

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = na->port;
	if (v4) {
		__be32 a;

		memcpy(&a, na->addr, sizeof(a));
		ipv6_addr_set_v4mapped(a, &sin6->sin6_addr);
	} else {
		sin6->sin6_flowinfo = na->flowinfo;
		memcpy(&sin6->sin6_addr, na->addr, sizeof(sin6->sin6_addr));
		sin6->sin6_scope_id = le32_to_cpu(na->scope_id);
	}
	return sizeof(*sin6);
}

bool nk_addr_is_loopback(const struct nk_addr *na)
{
	struct in6_addr a6;

	if (le16_to_cpu(na->family) == AF_INET)
		return na->addr[0] == 127;

	memcpy(&a6, na->addr, sizeof(a6));
	if (ipv6_addr_v4mapped(&a6))
		return na->addr[12] == 127;
	return ipv6_addr_loopback(&a6);
}

bool nk_addr_is_v4(const struct nk_addr *na)
{
	struct in6_addr a6;

	if (le16_to_cpu(na->family) == AF_INET)
		return true;
	memcpy(&a6, na->addr, sizeof(a6));
	return ipv6_addr_v4mapped(&a6);
}

u32 nk_credit_tx_space(const struct nk_credit_tx *c)
{
	u32 in_flight = c->tx_cnt - c->peer_fwd_cnt;

	if (in_flight > c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

void nk_credit_tx_send(struct nk_credit_tx *c, u32 n)
{
	c->tx_cnt += n;
}

int nk_credit_tx_unsend(struct nk_credit_tx *c, u32 n)
{
	c->tx_cnt -= n;
	if ((s32)(c->tx_cnt - c->peer_fwd_cnt) >= 0)
		return 0;
	c->peer_fwd_cnt = c->tx_cnt;
	return -EPROTO;
}

int nk_credit_tx_update(struct nk_credit_tx *c, u32 buf_alloc, u32 fwd_cnt)
{
	/* Older than what we know (a stale announcement): keep ours. */
	if ((s32)(fwd_cnt - c->peer_fwd_cnt) < 0)
		fwd_cnt = c->peer_fwd_cnt;
	/* Consumed more than was ever sent. */
	else if ((s32)(c->tx_cnt - fwd_cnt) < 0)
		return -EPROTO;

	c->peer_buf_alloc = min(buf_alloc, NK_CREDIT_MAX);
	c->peer_fwd_cnt = fwd_cnt;
	return 0;
}

int nk_credit_rx_accept(struct nk_credit_rx *c, u32 n)
{
	if (!nk_credit_ok(c->rx_cnt, n, c->fwd_sent, c->buf_alloc))
		return -ENOBUFS;
	c->rx_cnt += n;
	if (n && c->rx_cnt - c->fwd_sent >= c->buf_alloc)
		c->starved = true;
	return 0;
}

u32 nk_credit_rx_unread(const struct nk_credit_rx *c)
{
	return c->rx_cnt - c->fwd_cnt;
}

bool nk_credit_rx_closed(const struct nk_credit_rx *c)
{
	return c->rx_cnt - c->fwd_sent >= c->buf_alloc;
}

void nk_credit_rx_fill(struct nk_credit_rx *c, struct nk_hdr *hdr)
{
	nk_hdr_set_credit(hdr, c->buf_alloc, c->fwd_cnt);
	c->fwd_sent = c->fwd_cnt;
}

void nk_credit_rx_queued(struct nk_credit_rx *c, u32 fwd_cnt)
{
	if ((s32)(fwd_cnt - c->fwd_queued) > 0)
		c->fwd_queued = fwd_cnt;
}

bool nk_credit_rx_need_update(const struct nk_credit_rx *c)
{
	u32 seen_used = c->rx_cnt - c->fwd_queued;
	u32 seen_free = seen_used < c->buf_alloc ? c->buf_alloc - seen_used : 0;

	return c->fwd_cnt != c->fwd_queued && seen_free < c->buf_alloc / 2;
}

bool nk_credit_rx_autotune(struct nk_credit_rx *c, u32 limit)
{
	bool starved = c->starved;
	u32 old = c->buf_alloc;

	c->starved = false;
	limit = min(limit, NK_CREDIT_MAX);
	if (!starved || old >= limit)
		return false;
	c->buf_alloc = old > limit / 2 ? limit : max(2 * old, 1U);
	return true;
}
