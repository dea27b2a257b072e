// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suites for lib/nk_msg.c: what NetKernel's guest and NSM modules do
 * with every message the host engine hands them.
 *
 *   netkernel_msg     nk_hdr_init/set_credit encoding, nk_hdr_check (framing,
 *                     flags, op/role/reply matrix, status), its parts
 *                     nk_hdr_check_len/fields, nk_op_sendable, nk_op_name
 *   netkernel_hello   nk_hello_reply_parse (and NK_FEAT_ADDR's addresses)
 *   netkernel_addr    nk_addr_check, sockaddr <-> nk_addr, loopback
 *   netkernel_anc     nk_anc_check(), the layout of struct nk_anc
 *   netkernel_urg     nk_urg_check()
 *   netkernel_credit  nk_credit_ok(), nk_hdr_data_len() and the
 *                     nk_credit_tx/rx helpers
 *
 * Most cases are rows of a table (one KUNIT_ARRAY_PARAM loop per table), so
 * each row is its own named KTAP result and a failure says which rule broke.
 * Expected values come from include/netkernel/nk_proto.h and
 * Documentation/netkernel/protocol.rst, not from the code under test.
 *
 * The code under test is compiled into this object, as the modules do it.
 * Run with selftests/kunit/run.sh.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/string.h>

#include "../../lib/nk_msg.c"

#define HDR_SIZE	64U
static_assert(sizeof(struct nk_hdr) == HDR_SIZE);

#define GUEST		NK_ROLE_GUEST
#define NSM		NK_ROLE_NSM
#define R		NK_F_REPLY

static void hdr_make(struct nk_hdr *h, u16 op, u16 flags, u32 plen, s32 status)
{
	memset(h, 0, sizeof(*h));
	h->op = cpu_to_le16(op);
	h->flags = cpu_to_le16(flags);
	h->len = cpu_to_le32(plen);
	h->status = cpu_to_le32((u32)status);
}

static const char *role_name(int role)
{
	switch (role) {
	case NK_ROLE_GUEST:
		return "guest";
	case NK_ROLE_NSM:
		return "nsm";
	default:
		return "bad-role";
	}
}

/* ====================================================================== */
/* netkernel_msg                                                          */
/* ====================================================================== */

/* nk_hdr_init() zeroes the header and writes little-endian fields. */
static void hdr_init_wire_layout(struct kunit *test)
{
	static const u8 want[HDR_SIZE] = {
		0x06, 0x00,			/* op CONNECT */
		0x05, 0x00,			/* flags REPLY | CREDIT */
		0x00, 0x00, 0x00, 0x00,		/* len */
		0x04, 0x03, 0x02, 0x01,		/* sock */
		0x00, 0x00, 0x00, 0x00,		/* status */
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,	/* req_id */
	};
	struct nk_hdr h;

	memset(&h, 0xa5, sizeof(h));
	nk_hdr_init(&h, NK_OP_CONNECT, NK_F_REPLY | NK_F_CREDIT, 0x01020304,
		    0x1122334455667788ULL);
	KUNIT_EXPECT_TRUE_MSG(test, !memcmp(&h, want, sizeof(want)),
			      "header bytes %*ph", (int)sizeof(h), &h);
}

/* nk_hdr_set_credit(): sets NK_F_CREDIT, keeps other flags, clamps buf_alloc. */
static void hdr_set_credit_clamps_and_keeps_flags(struct kunit *test)
{
	static const u8 want_credit[8] = {
		0x00, 0x00, 0x00, 0x01,		/* buf_alloc 16 MiB (clamped) */
		0xef, 0xbe, 0xad, 0xde,		/* fwd_cnt */
	};
	struct nk_hdr h;

	nk_hdr_init(&h, NK_OP_SOCKET, NK_F_REPLY, 9, 3);
	nk_hdr_set_credit(&h, 32U << 20, 0xdeadbeef);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h.flags), NK_F_REPLY | NK_F_CREDIT);
	KUNIT_EXPECT_TRUE_MSG(test, !memcmp(&h.buf_alloc, want_credit, 8),
			      "credit bytes %8ph", &h.buf_alloc);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h.op), NK_OP_SOCKET);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.sock), 9U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h.req_id), 3ULL);

	nk_hdr_set_credit(&h, NK_CREDIT_MAX, 0);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), NK_CREDIT_MAX);
	nk_hdr_set_credit(&h, NK_CREDIT_MAX + 1, 0);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), NK_CREDIT_MAX);
	nk_hdr_set_credit(&h, U32_MAX, U32_MAX);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), NK_CREDIT_MAX);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.fwd_cnt), U32_MAX);
	nk_hdr_set_credit(&h, 0, 1);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), 0U);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h.flags), NK_F_REPLY | NK_F_CREDIT);
}

/* nk_hdr_status() reads the s32 status as a negative errno. */
static void hdr_status_is_signed(struct kunit *test)
{
	struct nk_hdr h;

	hdr_make(&h, NK_OP_CONNECT, R, 0, -EINPROGRESS);
	KUNIT_EXPECT_EQ(test, nk_hdr_status(&h), -EINPROGRESS);
	hdr_make(&h, NK_OP_CONNECT, R, 0, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_status(&h), 0);
	hdr_make(&h, NK_OP_CONNECT, R, 0, -MAX_ERRNO);
	KUNIT_EXPECT_EQ(test, nk_hdr_status(&h), -MAX_ERRNO);
}

struct hdr_case {
	const char *name;
	int role;
	u16 op;
	u16 flags;
	u32 hlen;		/* hdr.len */
	u32 len;		/* bytes the device wrote, header included */
	u32 max_payload;
	s32 status;
	int want;
};

static const struct hdr_case hdr_cases[] = {
	/* framing: the used length against hdr.len and max_payload */
	{ "len_0_truncated", GUEST, NK_EV_DATA, 0, 0, 0, 4096, 0, -EBADMSG },
	{ "len_63_truncated", GUEST, NK_EV_DATA, 0, 0, 63, 4096, 0, -EBADMSG },
	{ "truncated_wins_over_garbage", GUEST, 0, 0xffff, 0xffffffff, 10, 4096,
	  1, -EBADMSG },
	{ "header_only", GUEST, NK_EV_CONNECTED, 0, 0, 64, 4096, 0, 0 },
	{ "payload_exact", GUEST, NK_EV_DATA, 0, 100, 164, 4096, 0, 0 },
	{ "hdr_len_below_used_len", GUEST, NK_EV_DATA, 0, 99, 164, 4096, 0,
	  -EMSGSIZE },
	{ "hdr_len_above_used_len", GUEST, NK_EV_DATA, 0, 101, 164, 4096, 0,
	  -EMSGSIZE },
	{ "hdr_len_huge_header_only", GUEST, NK_EV_DATA, 0, 0xffffffc0, 64, U32_MAX, 0,
	  -EMSGSIZE },
	{ "payload_equals_max", GUEST, NK_EV_DATA, 0, 4096, 4160, 4096, 0, 0 },
	{ "payload_one_over_max", GUEST, NK_EV_DATA, 0, 4097, 4161, 4096, 0,
	  -EMSGSIZE },
	{ "nsm_payload_one_over_max", NSM, NK_OP_SEND, 0, 2049, 2113, 2048, 0,
	  -EMSGSIZE },
	{ "max_payload_0_header_only", NSM, NK_OP_CLOSE, 0, 0, 64, 0, 0, 0 },
	{ "max_payload_0_one_byte", NSM, NK_OP_SEND, 0, 1, 65, 0, 0, -EMSGSIZE },
	{ "len_u32_max_no_overflow", GUEST, NK_EV_DATA, 0, U32_MAX - 64, U32_MAX,
	  U32_MAX, 0, 0 },

	/* flags */
	{ "unknown_flag_0x40", GUEST, NK_EV_DATA, 0x40, 0, 64, 4096, 0, -EINVAL },
	{ "unknown_flag_0x8000", NSM, NK_OP_SEND, 0x8000, 0, 64, 4096, 0,
	  -EINVAL },
	{ "all_flags_set", GUEST, NK_OP_SEND, 0xffff, 0, 64, 4096, 0, -EINVAL },
	{ "credit_on_event", GUEST, NK_EV_WRITABLE, NK_F_CREDIT, 0, 64, 4096, 0,
	  0 },
	{ "credit_on_reply", GUEST, NK_OP_SOCKET, R | NK_F_CREDIT, 0, 64, 4096, 0,
	  0 },
	{ "credit_on_request", NSM, NK_OP_SOCKET, NK_F_CREDIT, 0, 64, 4096, 0, 0 },
	{ "addr_on_ev_data", GUEST, NK_EV_DATA, NK_F_ADDR, 28, 92, 4096, 0, 0 },
	{ "addr_on_send", NSM, NK_OP_SEND, NK_F_ADDR, 28, 92, 4096, 0, 0 },
	{ "addr_more_on_send", NSM, NK_OP_SEND, NK_F_ADDR | NK_F_MORE, 28, 92,
	  4096, 0, 0 },
	{ "more_on_send", NSM, NK_OP_SEND, NK_F_MORE, 1, 65, 4096, 0, 0 },
	{ "addr_on_connect", NSM, NK_OP_CONNECT, NK_F_ADDR, 28, 92, 4096, 0,
	  -EINVAL },
	{ "addr_on_bind", NSM, NK_OP_BIND, NK_F_ADDR, 28, 92, 4096, 0, -EINVAL },
	{ "addr_on_ev_accept", GUEST, NK_EV_ACCEPT, NK_F_ADDR, 0, 64, 4096, 0,
	  -EINVAL },
	{ "addr_on_accept_reply", GUEST, NK_OP_ACCEPT, R | NK_F_ADDR, 28, 92, 4096,
	  0, -EINVAL },
	{ "more_on_ev_data", GUEST, NK_EV_DATA, NK_F_MORE, 1, 65, 4096, 0,
	  -EINVAL },
	{ "more_on_credit", NSM, NK_OP_CREDIT, NK_F_MORE | NK_F_CREDIT, 0, 64,
	  4096, 0, -EINVAL },
	/* nk_proto.h: NK_F_ANC on a datagram's EV_DATA, which has NK_F_ADDR */
	{ "anc_addr_on_ev_data", GUEST, NK_EV_DATA, NK_F_ANC | NK_F_ADDR, 108, 172,
	  4096, 0, 0 },
	{ "anc_without_addr_on_ev_data", GUEST, NK_EV_DATA, NK_F_ANC, 80, 144,
	  4096, 0, -EINVAL },
	{ "anc_on_send", NSM, NK_OP_SEND, NK_F_ANC | NK_F_ADDR, 108, 172, 4096, 0,
	  -EINVAL },
	{ "anc_on_ev_error", GUEST, NK_EV_ERROR, NK_F_ANC, 0, 64, 4096, 0,
	  -EINVAL },
	/* nk_proto.h: NK_F_PEER on a CONNECT or SEND request only */
	{ "peer_on_connect", NSM, NK_OP_CONNECT, NK_F_PEER, 28, 92, 4096, 0, 0 },
	{ "peer_addr_on_send", NSM, NK_OP_SEND, NK_F_PEER | NK_F_ADDR, 29, 93,
	  4096, 0, 0 },
	{ "peer_on_bind", NSM, NK_OP_BIND, NK_F_PEER, 28, 92, 4096, 0, -EINVAL },
	{ "peer_on_connect_reply", GUEST, NK_OP_CONNECT, R | NK_F_PEER, 0, 64,
	  4096, 0, -EINVAL },
	{ "peer_on_ev_data", GUEST, NK_EV_DATA, NK_F_PEER, 1, 65, 4096, 0,
	  -EINVAL },

	/* who may be sent what */
	{ "guest_gets_reply", GUEST, NK_OP_CONNECT, R, 0, 64, 4096, 0, 0 },
	{ "guest_gets_hello_reply", GUEST, NK_OP_HELLO, R, 6, 70, 4096, 0, 0 },
	{ "guest_gets_send_error_reply", GUEST, NK_OP_SEND, R, 0, 64, 4096,
	  -ENOBUFS, 0 },
	{ "guest_refuses_request", GUEST, NK_OP_CONNECT, 0, 0, 64, 4096, 0,
	  -EOPNOTSUPP },
	{ "guest_gets_event", GUEST, NK_EV_HUP, 0, 0, 64, 4096, 0, 0 },
	{ "guest_refuses_event_marked_reply", GUEST, NK_EV_HUP, R, 0, 64, 4096, 0,
	  -EOPNOTSUPP },
	/* nk_proto.h: CREDIT is "sent by either side (N -> E -> G too, as an
	 * event with req_id 0)"; nsm_sock.c sends it that way.
	 */
	{ "guest_gets_credit_event_from_nsm", GUEST, NK_OP_CREDIT, NK_F_CREDIT, 0,
	  64, 4096, 0, 0 },
	{ "nsm_gets_request", NSM, NK_OP_SOCKET, 0, 0, 64, 4096, 0, 0 },
	{ "nsm_gets_guest_credit", NSM, NK_OP_CREDIT, NK_F_CREDIT, 0, 64, 4096, 0,
	  0 },
	{ "nsm_refuses_hello_request", NSM, NK_OP_HELLO, 0, 0, 64, 4096, 0,
	  -EOPNOTSUPP },
	{ "nsm_gets_hello_reply", NSM, NK_OP_HELLO, R, 4, 68, 4096, 0, 0 },
	{ "nsm_refuses_reply", NSM, NK_OP_SOCKET, R, 0, 64, 4096, 0, -EOPNOTSUPP },
	{ "nsm_gets_ev_reset", NSM, NK_EV_RESET, 0, 0, 64, 4096, -ECONNRESET, 0 },
	{ "nsm_gets_ev_proto_error", NSM, NK_EV_PROTO_ERROR, 0, 0, 64, 4096,
	  -ENOBUFS, 0 },
	{ "nsm_refuses_ev_data", NSM, NK_EV_DATA, 0, 1, 65, 4096, 0, -EOPNOTSUPP },
	{ "nsm_refuses_ev_connected", NSM, NK_EV_CONNECTED, 0, 0, 64, 4096, 0,
	  -EOPNOTSUPP },
	{ "role_0_refused", 0, NK_OP_SOCKET, 0, 0, 64, 4096, 0, -EOPNOTSUPP },
	{ "role_3_refused", 3, NK_EV_DATA, 0, 0, 64, 4096, 0, -EOPNOTSUPP },
	{ "op_0_refused", GUEST, 0, 0, 0, 64, 4096, 0, -EOPNOTSUPP },
	{ "op_16_refused", NSM, NK_OP_MAX_REQUEST + 1, 0, 0, 64, 4096, 0,
	  -EOPNOTSUPP },
	{ "op_byteswapped_send_refused", NSM, 0x0700, 0, 0, 64, 4096, 0,
	  -EOPNOTSUPP },

	/* status: 0 or a negative errno */
	{ "status_minus_1", GUEST, NK_OP_BIND, R, 0, 64, 4096, -1, 0 },
	{ "status_minus_max_errno", GUEST, NK_OP_BIND, R, 0, 64, 4096, -MAX_ERRNO,
	  0 },
	{ "status_below_minus_max_errno", GUEST, NK_OP_BIND, R, 0, 64, 4096,
	  -MAX_ERRNO - 1, -EINVAL },
	{ "status_positive", GUEST, NK_OP_BIND, R, 0, 64, 4096, 1, -EINVAL },
	{ "status_int_max", GUEST, NK_OP_BIND, R, 0, 64, 4096, S32_MAX, -EINVAL },
	{ "status_int_min", GUEST, NK_OP_BIND, R, 0, 64, 4096, S32_MIN, -EINVAL },
	{ "ev_error_status", GUEST, NK_EV_ERROR, 0, 0, 64, 4096, -ECONNREFUSED,
	  0 },
	{ "ev_reset_positive_status", GUEST, NK_EV_RESET, 0, 0, 64, 4096,
	  ECONNRESET, -EINVAL },
	{ "nsm_ev_proto_error_positive_status", NSM, NK_EV_PROTO_ERROR, 0, 0, 64,
	  4096, EBADMSG, -EINVAL },
};

static void hdr_case_desc(const struct hdr_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(hdr_check, hdr_cases, hdr_case_desc);

static void hdr_check_table(struct kunit *test)
{
	const struct hdr_case *c = test->param_value;
	struct nk_hdr h;

	hdr_make(&h, c->op, c->flags, c->hlen, c->status);
	KUNIT_EXPECT_EQ_MSG(test, nk_hdr_check(&h, c->len, c->role, c->max_payload),
			    c->want,
			    "%s: %s op 0x%x flags 0x%x hdr.len %u len %u max %u status %d",
			    c->name, role_name(c->role), c->op, c->flags, c->hlen,
			    c->len, c->max_payload, c->status);
}

/* Every flag bit outside NK_F_KNOWN is refused, for either role. */
static void hdr_check_unknown_flag_bits(struct kunit *test)
{
	struct nk_hdr h;
	int bit;

	for (bit = 0; bit < 16; bit++) {
		u16 f = 1U << bit;

		if (f & NK_F_KNOWN)
			continue;
		hdr_make(&h, NK_EV_DATA, f, 0, 0);
		KUNIT_EXPECT_EQ_MSG(test, nk_hdr_check(&h, HDR_SIZE, GUEST, 4096),
				    -EINVAL, "guest EV_DATA flag 0x%x", f);
		hdr_make(&h, NK_OP_SEND, f, 0, 0);
		KUNIT_EXPECT_EQ_MSG(test, nk_hdr_check(&h, HDR_SIZE, NSM, 4096),
				    -EINVAL, "nsm SEND flag 0x%x", f);
	}
	KUNIT_EXPECT_EQ(test, NK_F_KNOWN, 0x3f);
}

/*
 * The op/role/reply matrix, from the Directions table of protocol.rst and
 * the op table of nk_proto.h, not from nk_msg.c:
 *  - a guest's eventq carries replies to its requests (HELLO's included)
 *    and events, and the NSM's CREDIT, forwarded "as an event with req_id 0";
 *  - an NSM's eventq carries the guests' requests (HELLO ends at E), its own
 *    HELLO reply, the engine's INFO request, and the events E itself sends
 *    (EV_RESET, EV_PROTO_ERROR).
 */
static bool spec_is_request(u16 op)
{
	return op >= NK_OP_HELLO && op <= NK_OP_CREDIT;
}

static bool spec_is_event(u16 op)
{
	switch (op) {
	case NK_EV_DATA:
	case NK_EV_ACCEPT:
	case NK_EV_CONNECTED:
	case NK_EV_WRITABLE:
	case NK_EV_HUP:
	case NK_EV_ERROR:
	case NK_EV_RESET:
	case NK_EV_URG:
	case NK_EV_PROTO_ERROR:
		return true;
	default:
		return false;
	}
}

static bool spec_may_receive(int role, u16 op, bool reply)
{
	switch (role) {
	case NK_ROLE_GUEST:
		if (reply)
			return spec_is_request(op);
		return spec_is_event(op) || op == NK_OP_CREDIT;
	case NK_ROLE_NSM:
		if (reply)
			return op == NK_OP_HELLO;
		return (spec_is_request(op) && op != NK_OP_HELLO) ||
		       op == NK_OP_INFO ||
		       op == NK_EV_RESET || op == NK_EV_PROTO_ERROR;
	default:
		return false;
	}
}

struct op_case {
	u16 op;
	const char *name;	/* nk_op_name(), "?" for unknown ops */
};

static const struct op_case op_cases[] = {
	{ NK_OP_HELLO, "HELLO" },
	{ NK_OP_SOCKET, "SOCKET" },
	{ NK_OP_BIND, "BIND" },
	{ NK_OP_LISTEN, "LISTEN" },
	{ NK_OP_ACCEPT, "ACCEPT" },
	{ NK_OP_CONNECT, "CONNECT" },
	{ NK_OP_SEND, "SEND" },
	{ NK_OP_SHUTDOWN, "SHUTDOWN" },
	{ NK_OP_CLOSE, "CLOSE" },
	{ NK_OP_SETSOCKOPT, "SETSOCKOPT" },
	{ NK_OP_GETSOCKOPT, "GETSOCKOPT" },
	{ NK_OP_GETSOCKNAME, "GETSOCKNAME" },
	{ NK_OP_GETPEERNAME, "GETPEERNAME" },
	{ NK_OP_IOCTL, "IOCTL" },
	{ NK_OP_CREDIT, "CREDIT" },
	{ NK_OP_INFO, "INFO" },
	{ NK_EV_DATA, "EV_DATA" },
	{ NK_EV_ACCEPT, "EV_ACCEPT" },
	{ NK_EV_CONNECTED, "EV_CONNECTED" },
	{ NK_EV_WRITABLE, "EV_WRITABLE" },
	{ NK_EV_HUP, "EV_HUP" },
	{ NK_EV_ERROR, "EV_ERROR" },
	{ NK_EV_RESET, "EV_RESET" },
	{ NK_EV_URG, "EV_URG" },
	{ NK_EV_PROTO_ERROR, "EV_PROTO_ERROR" },
	{ 0, "?" },
	{ 16, "?" },
	{ 0x0100, "?" },
	{ 0x0109, "?" },
	{ 0x01fe, "?" },
	{ 0x0200, "?" },
	{ 0x0700, "?" },
	{ 0x8001, "?" },
	{ 0xffff, "?" },
};

static void op_case_desc(const struct op_case *c, char *desc)
{
	if (strcmp(c->name, "?"))
		snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
	else
		snprintf(desc, KUNIT_PARAM_DESC_SIZE, "unknown_0x%04x", c->op);
}

KUNIT_ARRAY_PARAM(op, op_cases, op_case_desc);

static void hdr_check_op_role_matrix(struct kunit *test)
{
	static const int roles[] = { NK_ROLE_GUEST, NK_ROLE_NSM, 0, 3 };
	const struct op_case *c = test->param_value;
	struct nk_hdr h;
	int i, reply;

	for (i = 0; i < ARRAY_SIZE(roles); i++) {
		for (reply = 0; reply <= 1; reply++) {
			bool ok = spec_may_receive(roles[i], c->op, reply);

			hdr_make(&h, c->op, reply ? NK_F_REPLY : 0, 0, 0);
			KUNIT_EXPECT_EQ_MSG(test,
					    nk_hdr_check(&h, HDR_SIZE, roles[i], 4096),
					    ok ? 0 : -EOPNOTSUPP,
					    "op 0x%04x (%s) %s to %s (role %d): the spec %s it",
					    c->op, c->name,
					    reply ? "as a reply" : "without NK_F_REPLY",
					    role_name(roles[i]), roles[i],
					    ok ? "allows" : "forbids");
		}
	}
}

/*
 * protocol.rst: what each endpoint sends the engine.  A guest: requests
 * (INFO is the engine's own), answering none; an NSM: HELLO, replies to the
 * guests' requests and to the engine's INFO, CREDIT and the events
 * EV_DATA..EV_ERROR and EV_URG (EV_RESET, EV_PROTO_ERROR are the engine's).
 */
static bool spec_may_send(int role, u16 op, bool reply)
{
	switch (role) {
	case NK_ROLE_GUEST:
		return !reply && spec_is_request(op);
	case NK_ROLE_NSM:
		if (reply)
			return (spec_is_request(op) && op != NK_OP_HELLO) ||
			       op == NK_OP_INFO;
		return op == NK_OP_HELLO || op == NK_OP_CREDIT ||
		       (spec_is_event(op) && op != NK_EV_RESET &&
			op != NK_EV_PROTO_ERROR);
	default:
		return false;
	}
}

static void op_sendable_role_matrix(struct kunit *test)
{
	static const int roles[] = { NK_ROLE_GUEST, NK_ROLE_NSM, 0, 3 };
	const struct op_case *c = test->param_value;
	int i, reply;

	for (i = 0; i < ARRAY_SIZE(roles); i++)
		for (reply = 0; reply <= 1; reply++)
			KUNIT_EXPECT_EQ_MSG(test,
					    nk_op_sendable(roles[i], c->op, reply),
					    spec_may_send(roles[i], c->op, reply),
					    "op 0x%04x (%s) %s from %s (role %d)",
					    c->op, c->name,
					    reply ? "as a reply" : "without NK_F_REPLY",
					    role_name(roles[i]), roles[i]);
}

/*
 * nk_hdr_check() is nk_hdr_check_len(), the op rule, then
 * nk_hdr_check_fields(): each part gives on its own what the whole gives
 * for the rows of hdr_cases that the part decides.
 */
static void hdr_check_parts(struct kunit *test)
{
	const struct hdr_case *c = test->param_value;
	struct nk_hdr h;
	int len, fields;

	hdr_make(&h, c->op, c->flags, c->hlen, c->status);
	len = nk_hdr_check_len(&h, c->len, c->max_payload);
	fields = nk_hdr_check_fields(&h);
	if (c->want == -EBADMSG || c->want == -EMSGSIZE) {
		KUNIT_EXPECT_EQ(test, len, c->want);
		return;
	}
	KUNIT_EXPECT_EQ(test, len, 0);
	if (!c->want)
		KUNIT_EXPECT_EQ(test, fields, 0);
	else if (c->want == -EINVAL)
		KUNIT_EXPECT_EQ(test, fields, -EINVAL);
}

static void op_name_table(struct kunit *test)
{
	const struct op_case *c = test->param_value;
	const char *name = nk_op_name(c->op);

	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, name);
	KUNIT_EXPECT_STREQ_MSG(test, name, c->name, "op 0x%04x", c->op);
}

/* nk_op_name() never indexes out of its tables, whatever the u16. */
static void op_name_every_u16(struct kunit *test)
{
	unsigned int op, known = 0;

	for (op = 0; op <= U16_MAX; op++) {
		const char *name = nk_op_name(op);

		if (!name) {
			KUNIT_FAIL(test, "nk_op_name(0x%04x) is NULL", op);
			return;
		}
		if (strcmp(name, "?"))
			known++;
	}
	/* 15 requests, INFO, 8 events and EV_PROTO_ERROR */
	KUNIT_EXPECT_EQ(test, known, 25U);
}

static struct kunit_case netkernel_msg_cases[] = {
	KUNIT_CASE(hdr_init_wire_layout),
	KUNIT_CASE(hdr_set_credit_clamps_and_keeps_flags),
	KUNIT_CASE(hdr_status_is_signed),
	KUNIT_CASE_PARAM(hdr_check_table, hdr_check_gen_params),
	KUNIT_CASE(hdr_check_unknown_flag_bits),
	KUNIT_CASE_PARAM(hdr_check_op_role_matrix, op_gen_params),
	KUNIT_CASE_PARAM(hdr_check_parts, hdr_check_gen_params),
	KUNIT_CASE_PARAM(op_sendable_role_matrix, op_gen_params),
	KUNIT_CASE_PARAM(op_name_table, op_gen_params),
	KUNIT_CASE(op_name_every_u16),
	{}
};

static struct kunit_suite netkernel_msg_suite = {
	.name = "netkernel_msg",
	.test_cases = netkernel_msg_cases,
};

/* ====================================================================== */
/* netkernel_hello                                                        */
/* ====================================================================== */

/* 64 name characters; NAME64 + 1 is 63 of them, the longest name allowed */
#define NAME64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."
static_assert(sizeof(NAME64) == 65);

struct hello_case {
	const char *name;
	s32 status;
	u64 version;		/* reply a0 */
	u64 features;		/* reply a1 */
	u64 payload;		/* reply a2 */
	u64 id;			/* reply a3 */
	const char *pl;		/* reply payload */
	u32 pl_len;		/* its bytes: hdr.len */
	u32 avail;		/* bytes passed as plen (truncation) */
	u64 prop_features;
	u32 prop_payload;
	int want;
	u32 want_version;	/* checked whatever the result */
	const char *want_name;	/* checked on success */
};

static const struct hello_case hello_cases[] = {
	/* NK_FEAT_MQ's pairs in a3: hello_reply_pairs. */
	{ "name_with_nul", 0, 1, NK_FEAT_ALL & ~(NK_FEAT_ADDR | NK_FEAT_MQ), 65536, 7, "guest1",
	  7, 7, NK_FEAT_ALL, 65536, 0, 1, "guest1" },
	{ "name_without_nul", 0, 1, NK_FEAT_ALL & ~(NK_FEAT_ADDR | NK_FEAT_MQ), 65536, 7,
	  "guest1", 6, 6, NK_FEAT_ALL, 65536, 0, 1, "guest1" },
	{ "name_all_allowed_chars", 0, 1, 0, 2048, 1, "aZ09_.-", 8, 8,
	  NK_FEAT_ALL, 65536, 0, 1, "aZ09_.-" },
	{ "name_63_chars_with_nul", 0, 1, NK_FEAT_DGRAM, 4096, 2, NAME64 + 1, 64,
	  64, NK_FEAT_ALL, 65536, 0, 1, NAME64 + 1 },
	{ "name_63_chars_without_nul", 0, 1, NK_FEAT_DGRAM, 4096, 2, NAME64 + 1, 63,
	  63, NK_FEAT_ALL, 65536, 0, 1, NAME64 + 1 },
	{ "name_64_chars_with_nul", 0, 1, 0, 4096, 2, NAME64, 65, 65, NK_FEAT_ALL,
	  65536, -EPROTO, 1, NULL },
	{ "name_64_chars_without_nul", 0, 1, 0, 4096, 2, NAME64, 64, 64,
	  NK_FEAT_ALL, 65536, -EPROTO, 1, NULL },
	{ "name_empty", 0, 1, 0, 4096, 2, "", 0, 0, NK_FEAT_ALL, 65536, -EPROTO, 1,
	  NULL },
	{ "name_only_nul", 0, 1, 0, 4096, 2, "", 1, 1, NK_FEAT_ALL, 65536, -EPROTO,
	  1, NULL },
	{ "name_space", 0, 1, 0, 4096, 2, "a b", 4, 4, NK_FEAT_ALL, 65536, -EPROTO,
	  1, NULL },
	{ "name_slash", 0, 1, 0, 4096, 2, "../x", 5, 5, NK_FEAT_ALL, 65536,
	  -EPROTO, 1, NULL },
	{ "name_newline", 0, 1, 0, 4096, 2, "a\n", 3, 3, NK_FEAT_ALL, 65536,
	  -EPROTO, 1, NULL },
	{ "name_escape", 0, 1, 0, 4096, 2, "a\033[2J", 6, 6, NK_FEAT_ALL, 65536,
	  -EPROTO, 1, NULL },
	{ "name_del", 0, 1, 0, 4096, 2, "a\177", 3, 3, NK_FEAT_ALL, 65536, -EPROTO,
	  1, NULL },
	{ "name_high_bit", 0, 1, 0, 4096, 2, "caf\xc3\xa9", 6, 6, NK_FEAT_ALL,
	  65536, -EPROTO, 1, NULL },
	{ "name_embedded_nul", 0, 1, 0, 4096, 2, "ab\0cd", 6, 6, NK_FEAT_ALL,
	  65536, -EPROTO, 1, NULL },
	{ "name_truncated", 0, 1, 0, 4096, 2, "guest1", 7, 3, NK_FEAT_ALL, 65536,
	  -EPROTO, 1, NULL },
	{ "error_status_returned", -EINVAL, 1, 0, 0, 0, "", 0, 0, NK_FEAT_ALL,
	  65536, -EINVAL, 1, NULL },
	{ "version_2", 0, 2, NK_FEAT_ALL, 65536, 7, "g", 2, 2, NK_FEAT_ALL, 65536,
	  -EPROTONOSUPPORT, 2, NULL },
	{ "version_0", 0, 0, NK_FEAT_ALL, 65536, 7, "g", 2, 2, NK_FEAT_ALL, 65536,
	  -EPROTONOSUPPORT, 0, NULL },
	{ "version_1_in_high_bits", 0, (1ULL << 32) | 1, NK_FEAT_ALL, 65536, 7,
	  "g", 2, 2, NK_FEAT_ALL, 65536, -EPROTONOSUPPORT, U32_MAX, NULL },
	{ "version_2_refused_with_status", -EPROTONOSUPPORT, 2, 0, 0, 0, "", 0, 0,
	  NK_FEAT_ALL, 65536, -EPROTONOSUPPORT, 2, NULL },
	{ "features_subset", 0, 1, NK_FEAT_INET6, 65536, 7, "g", 2, 2,
	  NK_FEAT_ALL, 65536, 0, 1, "g" },
	{ "features_none", 0, 1, 0, 65536, 7, "g", 2, 2, NK_FEAT_ALL, 65536, 0, 1,
	  "g" },
	{ "features_not_proposed", 0, 1, NK_FEAT_DGRAM, 65536, 7, "g", 2, 2,
	  NK_FEAT_INET6, 65536, -EPROTO, 1, NULL },
	{ "features_unknown_bit", 0, 1, NK_FEAT_INET6 | (1ULL << 40), 65536, 7,
	  "g", 2, 2, NK_FEAT_ALL, 65536, -EPROTO, 1, NULL },
	{ "payload_min", 0, 1, 0, NK_MIN_PAYLOAD, 7, "g", 2, 2, 0, 65536, 0, 1,
	  "g" },
	{ "payload_below_min", 0, 1, 0, NK_MIN_PAYLOAD - 1, 7, "g", 2, 2, 0, 65536,
	  -EPROTO, 1, NULL },
	{ "payload_0", 0, 1, 0, 0, 7, "g", 2, 2, 0, 65536, -EPROTO, 1, NULL },
	{ "payload_equals_proposal", 0, 1, 0, 8192, 7, "g", 2, 2, 0, 8192, 0, 1,
	  "g" },
	{ "payload_above_proposal", 0, 1, 0, 8193, 7, "g", 2, 2, 0, 8192, -EPROTO,
	  1, NULL },
	{ "payload_2_pow_32_plus_min", 0, 1, 0, (1ULL << 32) + NK_MIN_PAYLOAD, 7,
	  "g", 2, 2, 0, 65536, -EPROTO, 1, NULL },
	{ "endpoint_id_0", 0, 1, 0, 4096, 0, "g", 2, 2, 0, 65536, -EPROTO, 1,
	  NULL },
	{ "endpoint_id_u32_max", 0, 1, 0, 4096, U32_MAX, "g", 2, 2, 0, 65536, 0, 1,
	  "g" },
	{ "endpoint_id_above_u32", 0, 1, 0, 4096, 1ULL << 32, "g", 2, 2, 0, 65536,
	  -EPROTO, 1, NULL },
};

static void hello_case_desc(const struct hello_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(hello, hello_cases, hello_case_desc);

static void hello_reply_parse_table(struct kunit *test)
{
	const struct hello_case *c = test->param_value;
	struct nk_hello out;
	struct nk_hdr h;
	int err;

	hdr_make(&h, NK_OP_HELLO, NK_F_REPLY, c->pl_len, c->status);
	h.req_id = cpu_to_le64(1);
	h.arg[0] = cpu_to_le64(c->version);
	h.arg[1] = cpu_to_le64(c->features);
	h.arg[2] = cpu_to_le64(c->payload);
	h.arg[3] = cpu_to_le64(c->id);
	/* What the engine holds beyond the eventq: any value, passed on. */
	h.buf_alloc = cpu_to_le32((u32)c->id << 20);
	memset(&out, 0x5a, sizeof(out));

	err = nk_hello_reply_parse(&h, c->pl, c->avail, c->prop_features,
				   c->prop_payload, &out);
	KUNIT_EXPECT_EQ_MSG(test, err, c->want, "%s", c->name);
	KUNIT_EXPECT_EQ_MSG(test, out.version, c->want_version,
			    "%s: the version E speaks is reported", c->name);
	if (err || c->want)
		return;
	KUNIT_EXPECT_EQ(test, out.features, c->features);
	KUNIT_EXPECT_EQ(test, (u64)out.max_payload, c->payload);
	KUNIT_EXPECT_EQ(test, (u64)out.endpoint_id, c->id);
	KUNIT_EXPECT_EQ(test, out.engine_hold, (u32)c->id << 20);
	KUNIT_EXPECT_EQ(test, strnlen(out.name, sizeof(out.name)),
			strlen(c->want_name));
	KUNIT_EXPECT_STREQ(test, out.name, c->want_name);
}

/* A reply for another op is not a HELLO reply. */
static void hello_reply_wrong_op(struct kunit *test)
{
	struct nk_hello out;
	struct nk_hdr h;

	hdr_make(&h, NK_OP_SOCKET, NK_F_REPLY, 2, 0);
	h.arg[0] = cpu_to_le64(NK_PROTO_VERSION);
	h.arg[2] = cpu_to_le64(4096);
	h.arg[3] = cpu_to_le64(1);
	KUNIT_EXPECT_EQ(test, nk_hello_reply_parse(&h, "g", 2, NK_FEAT_ALL, 65536,
						   &out), -EPROTO);
}

/*
 * NK_FEAT_MQ agreed: a3 bits 32..39 are the pairs agreed, 1 to
 * NK_MAX_QPAIRS; without it the pairs are 1 and a3 is the id alone.
 */
static void hello_reply_pairs(struct kunit *test)
{
	static const struct {
		u64 features, a3;
		int want;
		u32 pairs;
	} c[] = {
		{ NK_FEAT_MQ, 7 | 3ULL << 32, 0, 3 },
		{ NK_FEAT_MQ, 7 | (u64)NK_MAX_QPAIRS << 32, 0, NK_MAX_QPAIRS },
		{ NK_FEAT_MQ, 7, -EPROTO, 0 },
		{ NK_FEAT_MQ, 7 | (u64)(NK_MAX_QPAIRS + 1) << 32, -EPROTO, 0 },
		{ NK_FEAT_MQ, 1ULL << 32, -EPROTO, 0 },
		{ 0, 7, 0, 1 },
		{ 0, 7 | 1ULL << 32, -EPROTO, 0 },
	};
	struct nk_hello out;
	struct nk_hdr h;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(c); i++) {
		hdr_make(&h, NK_OP_HELLO, NK_F_REPLY, 2, 0);
		h.arg[0] = cpu_to_le64(NK_PROTO_VERSION);
		h.arg[1] = cpu_to_le64(c[i].features);
		h.arg[2] = cpu_to_le64(4096);
		h.arg[3] = cpu_to_le64(c[i].a3);
		KUNIT_EXPECT_EQ_MSG(test, nk_hello_reply_parse(&h, "g", 2, NK_FEAT_ALL, 65536,
							       &out), c[i].want, "case %u", i);
		if (c[i].want)
			continue;
		KUNIT_EXPECT_EQ_MSG(test, out.pairs, c[i].pairs, "case %u", i);
		KUNIT_EXPECT_EQ_MSG(test, out.endpoint_id, 7U, "case %u", i);
	}
}

/*
 * NK_FEAT_ADDR: the name in NK_NAME_MAX bytes, then 0 to 2 addresses of
 * port 0, IPv4 before IPv6; anything else is -EPROTO.
 */
static void hello_reply_addrs(struct kunit *test)
{
	static const u8 a6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	struct {
		char name[NK_NAME_MAX];
		struct nk_addr a[3];
	} pl;
	struct nk_hello out;
	struct nk_hdr h;
	u32 len;

	static_assert(sizeof(pl) == NK_HELLO_REPLY_MAX + sizeof(struct nk_addr));
	memset(&pl, 0, sizeof(pl));
	strscpy(pl.name, "guest1", sizeof(pl.name));
	pl.a[0].family = cpu_to_le16(AF_INET);
	memcpy(pl.a[0].addr, (u8[]){ 10, 0, 0, 2 }, 4);
	pl.a[1].family = cpu_to_le16(AF_INET6);
	memcpy(pl.a[1].addr, a6, 16);
	pl.a[2] = pl.a[1];

#define HELLO_ADDRS(len_, want_) do {					\
	len = (len_);							\
	hdr_make(&h, NK_OP_HELLO, NK_F_REPLY, len, 0);			\
	h.arg[0] = cpu_to_le64(NK_PROTO_VERSION);			\
	h.arg[1] = cpu_to_le64(NK_FEAT_ADDR);				\
	h.arg[2] = cpu_to_le64(4096);					\
	h.arg[3] = cpu_to_le64(3);					\
	KUNIT_EXPECT_EQ_MSG(test, nk_hello_reply_parse(&h, &pl, len,	\
			    NK_FEAT_ALL, 65536, &out), want_, "len %u", len); \
} while (0)

	HELLO_ADDRS(NK_NAME_MAX + 2 * sizeof(struct nk_addr), 0);
	KUNIT_EXPECT_EQ(test, out.naddrs, 2U);
	KUNIT_EXPECT_STREQ(test, out.name, "guest1");
	KUNIT_EXPECT_EQ(test, le16_to_cpu(out.addrs[0].family), AF_INET);
	KUNIT_EXPECT_EQ(test, out.addrs[0].addr[0], 10);
	KUNIT_EXPECT_EQ(test, out.addrs[0].addr[3], 2);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(out.addrs[1].family), AF_INET6);
	KUNIT_EXPECT_EQ(test, memcmp(out.addrs[1].addr, a6, 16), 0);
	HELLO_ADDRS(NK_NAME_MAX + sizeof(struct nk_addr), 0);
	KUNIT_EXPECT_EQ(test, out.naddrs, 1U);
	HELLO_ADDRS(NK_NAME_MAX, 0);
	KUNIT_EXPECT_EQ(test, out.naddrs, 0U);
	KUNIT_EXPECT_STREQ(test, out.name, "guest1");
	/* Short of the name's bytes, part of an address, three of them. */
	HELLO_ADDRS(7, -EPROTO);
	HELLO_ADDRS(NK_NAME_MAX - 1, -EPROTO);
	HELLO_ADDRS(NK_NAME_MAX + 1, -EPROTO);
	HELLO_ADDRS(NK_NAME_MAX + sizeof(struct nk_addr) - 1, -EPROTO);
	HELLO_ADDRS(NK_NAME_MAX + 3 * sizeof(struct nk_addr), -EPROTO);
	/* Two of one family, IPv6 first, a port, a bad family. */
	pl.a[0] = pl.a[1];
	HELLO_ADDRS(NK_NAME_MAX + 2 * sizeof(struct nk_addr), -EPROTO);
	pl.a[1].family = cpu_to_le16(AF_INET);
	memset(pl.a[1].addr, 0, 16);
	HELLO_ADDRS(NK_NAME_MAX + 2 * sizeof(struct nk_addr), -EPROTO);
	HELLO_ADDRS(NK_NAME_MAX + sizeof(struct nk_addr), 0);
	pl.a[0].port = htons(53);
	HELLO_ADDRS(NK_NAME_MAX + sizeof(struct nk_addr), -EPROTO);
	pl.a[0].port = 0;
	pl.a[0].family = cpu_to_le16(AF_UNIX);
	HELLO_ADDRS(NK_NAME_MAX + sizeof(struct nk_addr), -EPROTO);
	/* A name that fills NK_NAME_MAX bytes without its NUL. */
	memset(pl.name, 'a', sizeof(pl.name));
	HELLO_ADDRS(NK_NAME_MAX, -EPROTO);
#undef HELLO_ADDRS
}

static struct kunit_case netkernel_hello_cases[] = {
	KUNIT_CASE_PARAM(hello_reply_parse_table, hello_gen_params),
	KUNIT_CASE(hello_reply_wrong_op),
	KUNIT_CASE(hello_reply_pairs),
	KUNIT_CASE(hello_reply_addrs),
	{}
};

static struct kunit_suite netkernel_hello_suite = {
	.name = "netkernel_hello",
	.test_cases = netkernel_hello_cases,
};

/* ====================================================================== */
/* netkernel_addr                                                         */
/* ====================================================================== */

#define LE16(x)		cpu_to_le16(x)
#define V4(a, b, c, d)	{ a, b, c, d }
#define V6_MAPPED(a, b, c, d) \
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }

struct addr_case {
	const char *name;
	struct nk_addr na;
	int want;		/* nk_addr_check() */
	bool loopback;		/* nk_addr_is_loopback(), when want is 0 */
	bool v4;		/* nk_addr_is_v4(), when want is 0 */
};

static const struct addr_case addr_cases[] = {
	{ "v4_any", { LE16(AF_INET), 0, 0, V4(0, 0, 0, 0), 0 }, 0, false, true },
	{ "v4_127.0.0.1", { LE16(AF_INET), htons(80), 0, V4(127, 0, 0, 1), 0 },
	  0, true, true },
	{ "v4_127.0.0.0", { LE16(AF_INET), 0, 0, V4(127, 0, 0, 0), 0 }, 0, true, true },
	{ "v4_127.255.255.255", { LE16(AF_INET), 0, 0, V4(127, 255, 255, 255), 0 },
	  0, true, true },
	{ "v4_126.255.255.255", { LE16(AF_INET), 0, 0, V4(126, 255, 255, 255), 0 },
	  0, false, true },
	{ "v4_128.0.0.1", { LE16(AF_INET), 0, 0, V4(128, 0, 0, 1), 0 }, 0, false, true },
	{ "v4_10.0.0.127", { LE16(AF_INET), 0, 0, V4(10, 0, 0, 127), 0 }, 0,
	  false, true },
	{ "v4_1.0.0.127", { LE16(AF_INET), 0, 0, V4(1, 0, 0, 127), 0 }, 0, false, true },
	{ "v4_broadcast", { LE16(AF_INET), 0, 0, V4(255, 255, 255, 255), 0 }, 0,
	  false, true },
	{ "v4_flowinfo_set", { LE16(AF_INET), 0, htonl(1), V4(10, 0, 0, 1), 0 },
	  -EINVAL },
	{ "v4_scope_id_set", { LE16(AF_INET), 0, 0, V4(10, 0, 0, 1), cpu_to_le32(1) },
	  -EINVAL },
	{ "v4_addr4_set", { LE16(AF_INET), 0, 0, { 10, 0, 0, 1, 1 }, 0 },
	  -EINVAL },
	{ "v4_addr15_set", { LE16(AF_INET), 0, 0, { 10, 0, 0, 1, [15] = 1 }, 0 },
	  -EINVAL },
	{ "v4_as_v4_mapped_bytes", { LE16(AF_INET), 0, 0,
	  V6_MAPPED(127, 0, 0, 1), 0 }, -EINVAL },
	{ "v6_any", { LE16(AF_INET6), 0, 0, { 0 }, 0 }, 0, false },
	{ "v6_loopback", { LE16(AF_INET6), htons(22), 0, { [15] = 1 }, 0 }, 0,
	  true },
	{ "v6_loopback_scoped", { LE16(AF_INET6), 0, htonl(0xfffff), { [15] = 1 },
	  cpu_to_le32(3) }, 0, true },
	{ "v6_::2", { LE16(AF_INET6), 0, 0, { [15] = 2 }, 0 }, 0, false },
	{ "v6_1::1", { LE16(AF_INET6), 0, 0, { 0, 1, [15] = 1 }, 0 }, 0, false },
	{ "v6_::1:0:0:1", { LE16(AF_INET6), 0, 0, { [11] = 1, [15] = 1 }, 0 }, 0,
	  false },
	{ "v6_fe80::1", { LE16(AF_INET6), 0, 0, { 0xfe, 0x80, [15] = 1 },
	  cpu_to_le32(2) }, 0, false },
	{ "v6_mapped_127.0.0.1", { LE16(AF_INET6), 0, 0, V6_MAPPED(127, 0, 0, 1),
	  0 }, 0, true, true },
	{ "v6_mapped_127.1.2.3", { LE16(AF_INET6), 0, 0, V6_MAPPED(127, 1, 2, 3),
	  0 }, 0, true, true },
	{ "v6_mapped_126.0.0.1", { LE16(AF_INET6), 0, 0, V6_MAPPED(126, 0, 0, 1),
	  0 }, 0, false, true },
	{ "v6_mapped_128.0.0.1", { LE16(AF_INET6), 0, 0, V6_MAPPED(128, 0, 0, 1),
	  0 }, 0, false, true },
	{ "v6_mapped_10.0.0.127", { LE16(AF_INET6), 0, 0,
	  V6_MAPPED(10, 0, 0, 127), 0 }, 0, false, true },
	{ "v6_compat_::127.0.0.1", { LE16(AF_INET6), 0, 0,
	  { [12] = 127, [15] = 1 }, 0 }, 0, false },
	{ "v6_siit_::ffff:0:127.0.0.1", { LE16(AF_INET6), 0, 0,
	  { [8] = 0xff, [9] = 0xff, [12] = 127, [15] = 1 }, 0 }, 0, false },
	{ "v6_nat64_64:ff9b::127.0.0.1", { LE16(AF_INET6), 0, 0,
	  { 0, 0x64, 0xff, 0x9b, [12] = 127, [15] = 1 }, 0 }, 0, false },
	{ "family_0", { 0, 0, 0, V4(127, 0, 0, 1), 0 }, -EINVAL },
	{ "family_unix", { LE16(AF_UNIX), 0, 0, { 0 }, 0 }, -EINVAL },
	{ "family_netkernel_19", { LE16(19), 0, 0, { 0 }, 0 }, -EINVAL },
	{ "family_inet_big_endian", { (__force __le16)0x0200, 0, 0,
	  V4(127, 0, 0, 1), 0 }, -EINVAL },
	{ "family_inet6_big_endian", { (__force __le16)0x0a00, 0, 0,
	  { [15] = 1 }, 0 }, -EINVAL },
	{ "family_0xffff", { (__force __le16)0xffff, 0, 0, { 0 }, 0 }, -EINVAL },
};

static void addr_case_desc(const struct addr_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(addr, addr_cases, addr_case_desc);

static void addr_check_table(struct kunit *test)
{
	const struct addr_case *c = test->param_value;

	KUNIT_EXPECT_EQ_MSG(test, nk_addr_check(&c->na), c->want, "%s", c->name);
}

/* The rows of addr_cases that nk_addr_check() accepts. */
static const void *loopback_gen_params(const void *prev, char *desc)
{
	const struct addr_case *c = prev ? (const struct addr_case *)prev + 1 :
					   addr_cases;

	for (; c < addr_cases + ARRAY_SIZE(addr_cases); c++) {
		if (!c->want) {
			addr_case_desc(c, desc);
			return c;
		}
	}
	return NULL;
}

static void addr_loopback_table(struct kunit *test)
{
	const struct addr_case *c = test->param_value;

	KUNIT_EXPECT_EQ_MSG(test, nk_addr_is_loopback(&c->na), c->loopback,
			    "%s", c->name);
}

/* The largest datagram to the address: IPv4's for AF_INET and v4-mapped. */
static void addr_v4_table(struct kunit *test)
{
	const struct addr_case *c = test->param_value;

	KUNIT_EXPECT_EQ_MSG(test, nk_addr_is_v4(&c->na), c->v4, "%s", c->name);
}

union sa_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

#define SIN(a, p) { .in = { .sin_family = AF_INET, .sin_port = htons(p), \
			    .sin_addr.s_addr = htonl(a) } }

struct from_case {
	const char *name;
	union sa_any sa;
	int len;
	int want;
	u8 wire[28];		/* the nk_addr on the wire, when want is 0 */
};

static const struct from_case from_cases[] = {
	{ "sin_192.0.2.1:8080", SIN(0xc0000201, 8080), sizeof(struct sockaddr_in),
	  0, { 0x02, 0x00, 0x1f, 0x90, 0, 0, 0, 0, 0xc0, 0x00, 0x02, 0x01 } },
	{ "sin_storage_len", SIN(0x7f000001, 1), sizeof(struct sockaddr_storage),
	  0, { 0x02, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x7f, 0x00, 0x00, 0x01 } },
	{ "sin_len_15", SIN(0x7f000001, 1), sizeof(struct sockaddr_in) - 1,
	  -EINVAL },
	{ "sin_len_8", SIN(0x7f000001, 1), 8, -EINVAL },
	{ "len_0", SIN(0x7f000001, 1), 0, -EINVAL },
	{ "len_1", SIN(0x7f000001, 1), 1, -EINVAL },
	{ "len_negative", SIN(0x7f000001, 1), -1, -EINVAL },
	{ "sin6_full", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(443), .sin6_flowinfo = htonl(0x12345),
	  .sin6_addr.s6_addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },
	  .sin6_scope_id = 5 } }, sizeof(struct sockaddr_in6), 0,
	  { 0x0a, 0x00, 0x01, 0xbb, 0x00, 0x01, 0x23, 0x45,
	    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	    0x05, 0x00, 0x00, 0x00 } },
	{ "sin6_rfc2133_len_drops_scope", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(443), .sin6_addr.s6_addr = { [15] = 1 },
	  .sin6_scope_id = 5 } }, SIN6_LEN_RFC2133, 0,
	  { 0x0a, 0x00, 0x01, 0xbb, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01 } },
	{ "sin6_len_23", { .in6 = { .sin6_family = AF_INET6 } },
	  SIN6_LEN_RFC2133 - 1, -EINVAL },
	{ "sin6_len_16", { .in6 = { .sin6_family = AF_INET6 } },
	  sizeof(struct sockaddr_in), -EINVAL },
	{ "af_unspec", { .sa = { .sa_family = AF_UNSPEC } },
	  sizeof(struct sockaddr_in), -EAFNOSUPPORT },
	{ "af_unix", { .sa = { .sa_family = AF_UNIX } },
	  sizeof(struct sockaddr_storage), -EAFNOSUPPORT },
	{ "af_netkernel_19", { .sa = { .sa_family = 19 } },
	  sizeof(struct sockaddr_in6), -EAFNOSUPPORT },
};

static void from_case_desc(const struct from_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(from, from_cases, from_case_desc);

static void addr_from_sockaddr_table(struct kunit *test)
{
	const struct from_case *c = test->param_value;
	struct nk_addr na;
	int err;

	memset(&na, 0xa5, sizeof(na));
	err = nk_addr_from_sockaddr(&na, &c->sa.sa, c->len);
	KUNIT_EXPECT_EQ_MSG(test, err, c->want, "%s (len %d)", c->name, c->len);
	if (err || c->want)
		return;
	KUNIT_EXPECT_TRUE_MSG(test, !memcmp(&na, c->wire, sizeof(na)),
			      "%s: wire %*ph, want %*ph", c->name,
			      (int)sizeof(na), &na, (int)sizeof(na), c->wire);
	KUNIT_EXPECT_EQ_MSG(test, nk_addr_check(&na), 0,
			    "%s: a converted address passes nk_addr_check()",
			    c->name);
}

struct to_case {
	const char *name;
	struct nk_addr na;
	int family;		/* of the socket the user sees */
	int want;		/* length or -errno */
	union sa_any sa;	/* the result, whole sockaddr_in/in6 */
};

static const struct to_case to_cases[] = {
	{ "v4_to_inet", { LE16(AF_INET), htons(8080), 0, V4(192, 0, 2, 1), 0 },
	  AF_INET, sizeof(struct sockaddr_in), SIN(0xc0000201, 8080) },
	{ "v4_to_inet6_mapped", { LE16(AF_INET), htons(8080), 0, V4(192, 0, 2, 1),
	  0 }, AF_INET6, sizeof(struct sockaddr_in6),
	  { .in6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080),
		     .sin6_addr.s6_addr = V6_MAPPED(192, 0, 2, 1) } } },
	{ "v6_to_inet6", { LE16(AF_INET6), htons(443), htonl(0xabcde),
	  { 0xfe, 0x80, [15] = 1 }, cpu_to_le32(7) }, AF_INET6,
	  sizeof(struct sockaddr_in6),
	  { .in6 = { .sin6_family = AF_INET6, .sin6_port = htons(443),
		     .sin6_flowinfo = htonl(0xabcde),
		     .sin6_addr.s6_addr = { 0xfe, 0x80, [15] = 1 },
		     .sin6_scope_id = 7 } } },
	{ "v6_to_inet_refused", { LE16(AF_INET6), htons(443), 0, { [15] = 1 }, 0 },
	  AF_INET, -EINVAL },
	{ "v6_mapped_to_inet_refused", { LE16(AF_INET6), htons(1), 0,
	  V6_MAPPED(127, 0, 0, 1), 0 }, AF_INET, -EINVAL },
	{ "v6_mapped_to_inet6", { LE16(AF_INET6), htons(1), 0,
	  V6_MAPPED(127, 0, 0, 1), 0 }, AF_INET6, sizeof(struct sockaddr_in6),
	  { .in6 = { .sin6_family = AF_INET6, .sin6_port = htons(1),
		     .sin6_addr.s6_addr = V6_MAPPED(127, 0, 0, 1) } } },
};

static void to_case_desc(const struct to_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(to, to_cases, to_case_desc);

static void addr_to_sockaddr_table(struct kunit *test)
{
	const struct to_case *c = test->param_value;
	struct sockaddr_storage ss;
	int ret;

	KUNIT_ASSERT_EQ(test, nk_addr_check(&c->na), 0);
	memset(&ss, 0xa5, sizeof(ss));
	ret = nk_addr_to_sockaddr(&c->na, &ss, c->family);
	KUNIT_EXPECT_EQ_MSG(test, ret, c->want, "%s", c->name);
	if (ret <= 0 || ret != c->want)
		return;
	/* The whole sockaddr is compared: sin_zero and padding go to users. */
	KUNIT_EXPECT_TRUE_MSG(test, !memcmp(&ss, &c->sa, ret),
			      "%s: got %*ph, want %*ph", c->name, ret, &ss, ret,
			      &c->sa);
}

/* sockaddr -> nk_addr -> sockaddr gives back the same bytes. */
struct rt_case {
	const char *name;
	union sa_any sa;
	int len;
	bool loopback;
};

static const struct rt_case rt_cases[] = {
	{ "sin_0.0.0.0:0", SIN(0, 0), sizeof(struct sockaddr_in), false },
	{ "sin_127.0.0.1:80", SIN(0x7f000001, 80), sizeof(struct sockaddr_in),
	  true },
	{ "sin_127.200.1.1:65535", SIN(0x7fc80101, 65535),
	  sizeof(struct sockaddr_in), true },
	{ "sin_10.1.2.3:8080", SIN(0x0a010203, 8080), sizeof(struct sockaddr_in),
	  false },
	{ "sin_255.255.255.255:1", SIN(0xffffffff, 1), sizeof(struct sockaddr_in),
	  false },
	{ "sin6_::", { .in6 = { .sin6_family = AF_INET6 } },
	  sizeof(struct sockaddr_in6), false },
	{ "sin6_::1:22", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(22), .sin6_addr.s6_addr = { [15] = 1 } } },
	  sizeof(struct sockaddr_in6), true },
	{ "sin6_fe80::1%3_flow", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(5353), .sin6_flowinfo = htonl(0xfffff),
	  .sin6_addr.s6_addr = { 0xfe, 0x80, [15] = 1 },
	  .sin6_scope_id = 3 } }, sizeof(struct sockaddr_in6), false },
	{ "sin6_2001:db8::1_scope_u32_max", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(443),
	  .sin6_addr.s6_addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },
	  .sin6_scope_id = U32_MAX } }, sizeof(struct sockaddr_in6), false },
	{ "sin6_::ffff:127.0.0.1", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(80),
	  .sin6_addr.s6_addr = V6_MAPPED(127, 0, 0, 1) } },
	  sizeof(struct sockaddr_in6), true },
	{ "sin6_::ffff:192.0.2.1", { .in6 = { .sin6_family = AF_INET6,
	  .sin6_port = htons(80),
	  .sin6_addr.s6_addr = V6_MAPPED(192, 0, 2, 1) } },
	  sizeof(struct sockaddr_in6), false },
};

static void rt_case_desc(const struct rt_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(rt, rt_cases, rt_case_desc);

static void addr_round_trip_table(struct kunit *test)
{
	const struct rt_case *c = test->param_value;
	int family = c->sa.sa.sa_family;
	struct sockaddr_storage ss;
	struct nk_addr na;
	int ret;

	KUNIT_ASSERT_EQ(test, nk_addr_from_sockaddr(&na, &c->sa.sa, c->len), 0);
	KUNIT_ASSERT_EQ(test, nk_addr_check(&na), 0);
	KUNIT_EXPECT_EQ_MSG(test, nk_addr_is_loopback(&na), c->loopback, "%s",
			    c->name);
	ret = nk_addr_to_sockaddr(&na, &ss, family);
	KUNIT_ASSERT_EQ(test, ret, c->len);
	KUNIT_EXPECT_TRUE_MSG(test, !memcmp(&ss, &c->sa, c->len),
			      "%s: got %*ph, want %*ph", c->name, ret, &ss, ret,
			      &c->sa);
}

/*
 * An AF_INET peer shown to an AF_INET6 socket is v4-mapped; converted back
 * from that socket's address it is an AF_INET6 nk_addr that still counts as
 * loopback.
 */
static void addr_v4_through_v6_socket(struct kunit *test)
{
	static const union sa_any sin = SIN(0x7f000001, 8080);
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct nk_addr na, back;

	KUNIT_ASSERT_EQ(test, nk_addr_from_sockaddr(&na, &sin.sa, sizeof(sin.in)), 0);
	KUNIT_ASSERT_EQ(test, nk_addr_to_sockaddr(&na, &ss, AF_INET6),
			(int)sizeof(*sin6));
	KUNIT_EXPECT_TRUE(test, ipv6_addr_v4mapped(&sin6->sin6_addr));
	KUNIT_EXPECT_EQ(test, sin6->sin6_addr.s6_addr32[3], htonl(0x7f000001));
	KUNIT_EXPECT_EQ(test, sin6->sin6_port, htons(8080));

	KUNIT_ASSERT_EQ(test, nk_addr_from_sockaddr(&back, (struct sockaddr *)&ss,
						    sizeof(*sin6)), 0);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(back.family), AF_INET6);
	KUNIT_EXPECT_EQ(test, nk_addr_check(&back), 0);
	KUNIT_EXPECT_TRUE(test, nk_addr_is_loopback(&back));
	KUNIT_EXPECT_EQ(test, back.port, htons(8080));
}

static struct kunit_case netkernel_addr_cases[] = {
	KUNIT_CASE_PARAM(addr_check_table, addr_gen_params),
	KUNIT_CASE_PARAM(addr_loopback_table, loopback_gen_params),
	KUNIT_CASE_PARAM(addr_v4_table, loopback_gen_params),
	KUNIT_CASE_PARAM(addr_from_sockaddr_table, from_gen_params),
	KUNIT_CASE_PARAM(addr_to_sockaddr_table, to_gen_params),
	KUNIT_CASE_PARAM(addr_round_trip_table, rt_gen_params),
	KUNIT_CASE(addr_v4_through_v6_socket),
	{}
};

static struct kunit_suite netkernel_addr_suite = {
	.name = "netkernel_addr",
	.test_cases = netkernel_addr_cases,
};

/* ====================================================================== */
/* netkernel_credit                                                       */
/* ====================================================================== */

/* nk_proto.h's rule, computed in 64 bits: in_flight <= buf_alloc and
 * in_flight + n <= buf_alloc, with in_flight = (u32)(tx_cnt - fwd_cnt).
 */
static bool model_credit_ok(u32 tx_cnt, u32 n, u32 fwd_cnt, u32 buf_alloc)
{
	u64 in_flight = (u32)(tx_cnt - fwd_cnt);

	return in_flight <= buf_alloc && in_flight + n <= buf_alloc;
}

struct ok_case {
	const char *name;
	u32 tx_cnt, n, fwd_cnt, buf_alloc;
	bool want;
};

static const struct ok_case ok_cases[] = {
	{ "nothing_to_nothing", 0, 0, 0, 0, true },
	{ "one_byte_no_credit", 0, 1, 0, 0, false },
	{ "exactly_full", 0, 65536, 0, 65536, true },
	{ "one_over", 0, 65537, 0, 65536, false },
	{ "in_flight_plus_n_exactly_full", 40000, 25536, 0, 65536, true },
	{ "in_flight_plus_n_one_over", 40000, 25537, 0, 65536, false },
	{ "full_then_zero_bytes", 65536, 0, 0, 65536, true },
	{ "full_then_one_byte", 65536, 1, 0, 65536, false },
	{ "consumed_frees_credit", 65536, 50000, 50000, 65536, true },
	{ "wrap_tx_below_2_32", 0xfffffff0, 0xf10, 0xffffff00, 0x1000, true },
	{ "wrap_tx_below_2_32_one_over", 0xfffffff0, 0xf11, 0xffffff00, 0x1000,
	  false },
	{ "wrap_tx_past_0", 0x10, 0xe0, 0xfffffff0, 0x100, true },
	{ "wrap_tx_past_0_one_over", 0x10, 0xe1, 0xfffffff0, 0x100, false },
	{ "wrap_exactly_at_0", 0, 0x100, 0xffffff00, 0x200, true },
	{ "n_u32_max", 0, U32_MAX, 0, NK_CREDIT_MAX, false },
	{ "n_wraps_naive_sum", 100, U32_MAX - 50, 0, NK_CREDIT_MAX, false },
	{ "shrunk_below_in_flight", 200, 0, 0, 100, false },
	{ "shrunk_below_in_flight_n", 200, 1, 0, 100, false },
	{ "shrunk_to_in_flight", 100, 0, 0, 100, true },
	{ "fwd_ahead_of_tx", 0, 1, 10, 65536, false },
	{ "max_credit_full", 0, NK_CREDIT_MAX, 0, NK_CREDIT_MAX, true },
	{ "buf_alloc_u32_max_empty", 8, U32_MAX, 8, U32_MAX, true },
	{ "buf_alloc_u32_max_one_in_flight", 9, U32_MAX, 8, U32_MAX, false },
};

static void ok_case_desc(const struct ok_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(ok, ok_cases, ok_case_desc);

static void credit_ok_table(struct kunit *test)
{
	const struct ok_case *c = test->param_value;

	KUNIT_EXPECT_EQ_MSG(test, !!nk_credit_ok(c->tx_cnt, c->n, c->fwd_cnt,
						 c->buf_alloc), c->want,
			    "%s: tx_cnt %#x n %#x fwd_cnt %#x buf_alloc %#x",
			    c->name, c->tx_cnt, c->n, c->fwd_cnt, c->buf_alloc);
	KUNIT_EXPECT_EQ_MSG(test, model_credit_ok(c->tx_cnt, c->n, c->fwd_cnt,
						  c->buf_alloc), c->want,
			    "%s: the table row itself disagrees with the rule",
			    c->name);
}

/* nk_credit_ok() against the 64-bit model on every combination of edges. */
static void credit_ok_edges_exhaustive(struct kunit *test)
{
	static const u32 v[] = {
		0, 1, 2, 100, 4095, 4096, 65535, 65536, NK_CREDIT_MAX - 1,
		NK_CREDIT_MAX, NK_CREDIT_MAX + 1, 0x7fffffff, 0x80000000,
		0x80000001, 0xffff0000, 0xfffffffe, 0xffffffff,
	};
	const unsigned int k = ARRAY_SIZE(v);
	unsigned int i, bad = 0;

	for (i = 0; i < k * k * k * k; i++) {
		u32 tx_cnt = v[i % k], n = v[i / k % k];
		u32 fwd_cnt = v[i / (k * k) % k], buf_alloc = v[i / (k * k * k)];
		bool got = nk_credit_ok(tx_cnt, n, fwd_cnt, buf_alloc);
		bool want = model_credit_ok(tx_cnt, n, fwd_cnt, buf_alloc);

		if (got != want && bad++ < 5)
			KUNIT_FAIL(test,
				   "tx_cnt %#x n %#x fwd_cnt %#x buf_alloc %#x: got %d want %d",
				   tx_cnt, n, fwd_cnt, buf_alloc, got, want);
	}
	KUNIT_EXPECT_EQ(test, bad, 0U);
}

struct tx_case {
	const char *name;
	struct nk_credit_tx before;
	u32 buf_alloc, fwd_cnt;		/* the announcement */
	int want;
	struct nk_credit_tx after;
	u32 space;			/* nk_credit_tx_space() after */
};

static const struct tx_case tx_cases[] = {
	{ "fresh_socket_has_no_credit", { 0, 0, 0 }, 0, 0, 0, { 0, 0, 0 }, 0 },
	{ "first_announcement", { 0, 0, 0 }, 65536, 0, 0, { 0, 65536, 0 }, 65536 },
	{ "in_flight_counts", { 40000, 65536, 0 }, 65536, 0, 0,
	  { 40000, 65536, 0 }, 25536 },
	{ "consumption_frees_space", { 65536, 65536, 0 }, 65536, 50000, 0,
	  { 65536, 65536, 50000 }, 50000 },
	{ "fwd_equals_tx", { 65536, 65536, 0 }, 65536, 65536, 0,
	  { 65536, 65536, 65536 }, 65536 },
	{ "fwd_beyond_tx_refused", { 100, 65536, 0 }, 65536, 101, -EPROTO,
	  { 100, 65536, 0 }, 65436 },
	{ "fwd_far_beyond_tx_refused", { 100, 65536, 50 }, 1, 0x7fffffff, -EPROTO,
	  { 100, 65536, 50 }, 65486 },
	{ "stale_fwd_ignored_alloc_taken", { 1000, 4096, 900 }, 8192, 800, 0,
	  { 1000, 8192, 900 }, 8092 },
	{ "clamped_to_credit_max", { 0, 0, 0 }, U32_MAX, 0, 0,
	  { 0, NK_CREDIT_MAX, 0 }, NK_CREDIT_MAX },
	{ "clamped_32m", { 0, 0, 0 }, 32U << 20, 0, 0, { 0, NK_CREDIT_MAX, 0 },
	  NK_CREDIT_MAX },
	{ "shrink_below_in_flight", { 3000, 4096, 0 }, 1024, 0, 0,
	  { 3000, 1024, 0 }, 0 },
	{ "shrink_to_zero", { 3000, 4096, 3000 }, 0, 3000, 0, { 3000, 0, 3000 },
	  0 },
	{ "wrap_fwd_past_0", { 5, 0x1000, 0xfffffff0 }, 0x1000, 2, 0,
	  { 5, 0x1000, 2 }, 0x1000 - 3 },
	{ "wrap_fwd_past_tx_refused", { 5, 0x1000, 0xfffffff0 }, 0x1000, 6,
	  -EPROTO, { 5, 0x1000, 0xfffffff0 }, 0x1000 - 0x15 },
	{ "wrap_stale_fwd_ignored", { 5, 0x1000, 2 }, 0x800, 0xfffffff8, 0,
	  { 5, 0x800, 2 }, 0x800 - 3 },
	{ "wrap_fwd_equals_tx", { 0xffffffff, 0x1000, 0xfffff000 }, 0x1000,
	  0xffffffff, 0, { 0xffffffff, 0x1000, 0xffffffff }, 0x1000 },
};

static void tx_case_desc(const struct tx_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(tx, tx_cases, tx_case_desc);

static void credit_tx_update_table(struct kunit *test)
{
	const struct tx_case *c = test->param_value;
	struct nk_credit_tx s = c->before;

	KUNIT_EXPECT_EQ_MSG(test, nk_credit_tx_update(&s, c->buf_alloc, c->fwd_cnt),
			    c->want, "%s: buf_alloc %#x fwd_cnt %#x", c->name,
			    c->buf_alloc, c->fwd_cnt);
	KUNIT_EXPECT_EQ_MSG(test, s.tx_cnt, c->after.tx_cnt, "%s", c->name);
	KUNIT_EXPECT_EQ_MSG(test, s.peer_buf_alloc, c->after.peer_buf_alloc, "%s",
			    c->name);
	KUNIT_EXPECT_EQ_MSG(test, s.peer_fwd_cnt, c->after.peer_fwd_cnt, "%s",
			    c->name);
	KUNIT_EXPECT_EQ_MSG(test, nk_credit_tx_space(&s), c->space, "%s",
			    c->name);
	/* tx_space is exactly what nk_credit_ok() allows */
	if ((u32)(s.tx_cnt - s.peer_fwd_cnt) <= s.peer_buf_alloc)
		KUNIT_EXPECT_TRUE_MSG(test, nk_credit_ok(s.tx_cnt, c->space,
							 s.peer_fwd_cnt,
							 s.peer_buf_alloc),
				      "%s", c->name);
	KUNIT_EXPECT_FALSE_MSG(test, nk_credit_ok(s.tx_cnt, c->space + 1,
						  s.peer_fwd_cnt, s.peer_buf_alloc),
			       "%s", c->name);
}

struct rx_case {
	const char *name;
	struct nk_credit_rx before;
	u32 n;
	int want;
	u32 rx_cnt;		/* after */
};

static const struct rx_case rx_cases[] = {
	{ "no_credit_zero_bytes", { 0, 0, 0, 0 }, 0, 0, 0 },
	{ "no_credit_one_byte", { 0, 0, 0, 0 }, 1, -ENOBUFS, 0 },
	{ "exactly_full", { 65536, 0, 0, 0 }, 65536, 0, 65536 },
	{ "one_over", { 65536, 0, 0, 0 }, 65537, -ENOBUFS, 0 },
	{ "fills_up", { 65536, 40000, 0, 0 }, 25536, 0, 65536 },
	{ "full_one_more", { 65536, 65536, 0, 0 }, 1, -ENOBUFS, 65536 },
	{ "full_zero_more", { 65536, 65536, 0, 0 }, 0, 0, 65536 },
	/* consumed but not announced: the sender cannot know yet */
	{ "consumed_not_announced", { 65536, 65536, 50000, 0 }, 1, -ENOBUFS,
	  65536 },
	{ "consumed_and_announced", { 65536, 65536, 50000, 50000 }, 50000, 0,
	  115536 },
	{ "announced_one_over", { 65536, 65536, 50000, 50000 }, 50001, -ENOBUFS,
	  65536 },
	{ "wrap_rx_cnt_past_0", { 0x1000, 0xfffff800, 0xfffff800, 0xfffff800 },
	  0x1000, 0, 0x800 },
	{ "wrap_rx_cnt_past_0_one_over", { 0x1000, 0xfffff800, 0xfffff800,
	  0xfffff800 }, 0x1001, -ENOBUFS, 0xfffff800 },
	{ "small_counters", { 0x1000, 0x100, 0x80, 0x80 }, 0xf80, 0, 0x1080 },
	{ "wrap_fwd_sent_before_0", { 0x1000, 0x100, 0xffffff80, 0xffffff80 },
	  0xe80, 0, 0xf80 },
	{ "wrap_fwd_sent_before_0_one_over", { 0x1000, 0x100, 0xffffff80,
	  0xffffff80 }, 0xe81, -ENOBUFS, 0x100 },
	{ "n_u32_max", { NK_CREDIT_MAX, 100, 0, 0 }, U32_MAX, -ENOBUFS, 100 },
	{ "n_wraps_naive_sum", { NK_CREDIT_MAX, 100, 0, 0 }, U32_MAX - 50,
	  -ENOBUFS, 100 },
	{ "buf_alloc_shrunk_below_unread", { 1024, 3000, 0, 0 }, 1, -ENOBUFS,
	  3000 },
};

static void rx_case_desc(const struct rx_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(rx, rx_cases, rx_case_desc);

static void credit_rx_accept_table(struct kunit *test)
{
	const struct rx_case *c = test->param_value;
	struct nk_credit_rx s = c->before;

	KUNIT_EXPECT_EQ_MSG(test, nk_credit_rx_accept(&s, c->n), c->want,
			    "%s: n %#x", c->name, c->n);
	KUNIT_EXPECT_EQ_MSG(test, s.rx_cnt, c->rx_cnt, "%s", c->name);
	KUNIT_EXPECT_EQ_MSG(test, s.buf_alloc, c->before.buf_alloc, "%s", c->name);
	KUNIT_EXPECT_EQ_MSG(test, s.fwd_cnt, c->before.fwd_cnt, "%s", c->name);
	KUNIT_EXPECT_EQ_MSG(test, s.fwd_sent, c->before.fwd_sent, "%s", c->name);
}

static void credit_rx_unread(struct kunit *test)
{
	struct nk_credit_rx s = { 65536, 0, 0, 0 };

	KUNIT_EXPECT_EQ(test, nk_credit_rx_unread(&s), 0U);
	s.rx_cnt = 40000;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_unread(&s), 40000U);
	s.fwd_cnt = 30000;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_unread(&s), 10000U);
	s.rx_cnt = 0x10;
	s.fwd_cnt = 0xfffffff0;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_unread(&s), 0x20U);
}

/* The window closes when received bytes fill it since what was announced. */
static void credit_rx_closed(struct kunit *test)
{
	struct nk_credit_rx s = { 65536, 0, 0, 0 };
	struct nk_hdr hdr = {};

	KUNIT_EXPECT_FALSE(test, nk_credit_rx_closed(&s));
	s.rx_cnt = 65535;
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_closed(&s));
	s.rx_cnt = 65536;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_closed(&s));
	/* Consumed but not announced: still closed for the sender. */
	s.fwd_cnt = 100;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_closed(&s));
	/* Announced (filled into a message): open by 100 bytes. */
	nk_credit_rx_fill(&s, &hdr);
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_closed(&s));
	/* Across the wrap of the counters. */
	s.fwd_cnt = 0xfffffff0;
	s.fwd_sent = 0xfffffff0;
	s.rx_cnt = 0xfffffff0 + 65536;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_closed(&s));
	s.rx_cnt--;
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_closed(&s));
}

struct upd_case {
	const char *name;
	struct nk_credit_rx s;
	bool want;
};

static const struct upd_case upd_cases[] = {
	{ "nothing_consumed", { 65536, 65536, 0, 0 }, false },
	{ "consumed_announced_already", { 65536, 65536, 65536, 65536 }, false },
	/* the sender believes 65536 - 30000 = 35536 are free: not below half */
	{ "free_above_half", { 65536, 30000, 30000, 0 }, false },
	{ "free_below_half_not_announced", { 65536, 40000, 40000, 0 }, true },
	{ "free_exactly_half", { 65536, 32768, 32768, 0 }, false },
	{ "free_below_half", { 65536, 32769, 1, 0 }, true },
	{ "full_and_consumed_one", { 65536, 65536, 1, 0 }, true },
	{ "full_nothing_consumed", { 65536, 65536, 0, 0 }, false },
	{ "full_all_announced", { 65536, 65536, 65536, 65536 }, false },
	{ "after_announce_free_again", { 65536, 65536, 50000, 50000 }, false },
	{ "wrap_below_half", { 0x1000, 0x100, 0x80, 0xfffff800 }, true },
	{ "wrap_above_half", { 0x1000, 0x100, 0x80, 0xffffff80 }, false },
	{ "over_credit_counts_as_full", { 1024, 3000, 10, 0 }, true },
};

static void upd_case_desc(const struct upd_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(upd, upd_cases, upd_case_desc);

static void credit_rx_need_update_table(struct kunit *test)
{
	const struct upd_case *c = test->param_value;
	struct nk_credit_rx s = c->s;

	/* the announcement of fwd_sent was queued */
	s.fwd_queued = s.fwd_sent;
	KUNIT_EXPECT_EQ_MSG(test, nk_credit_rx_need_update(&s), c->want,
			    "%s: buf_alloc %#x rx_cnt %#x fwd_cnt %#x fwd_sent %#x",
			    c->name, c->s.buf_alloc, c->s.rx_cnt, c->s.fwd_cnt,
			    c->s.fwd_sent);
}

/* The sender starves only when it used every byte of the credit it knew. */
static void credit_rx_accept_marks_starved(struct kunit *test)
{
	struct nk_credit_rx s = { .buf_alloc = 65536 };

	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 65535), 0);
	KUNIT_EXPECT_FALSE(test, s.starved);
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 1), 0);
	KUNIT_EXPECT_TRUE(test, s.starved);
	/* the mark stays until autotune looks, across announcements */
	s.fwd_cnt = s.rx_cnt;
	s.fwd_sent = s.fwd_cnt;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 100), 0);
	KUNIT_EXPECT_TRUE(test, s.starved);
	/* a refused accept changes nothing */
	s.starved = false;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 65537), -ENOBUFS);
	KUNIT_EXPECT_FALSE(test, s.starved);
	/* with the counters wrapped */
	s = (struct nk_credit_rx){ .buf_alloc = 0x1000, .rx_cnt = 0xfffff800,
				   .fwd_cnt = 0xfffff800, .fwd_sent = 0xfffff800 };
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 0xfff), 0);
	KUNIT_EXPECT_FALSE(test, s.starved);
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 1), 0);
	KUNIT_EXPECT_TRUE(test, s.starved);
	KUNIT_EXPECT_EQ(test, s.rx_cnt, 0x800U);
}

/* nk_hdr_data_len(): protocol.rst, "Only SEND and EV_DATA payload (nk_addr excluded)". */
static void hdr_data_len(struct kunit *test)
{
	struct nk_hdr h;

	hdr_make(&h, NK_OP_SEND, 0, 100, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 100);
	hdr_make(&h, NK_EV_DATA, NK_F_ADDR, 100, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 100 - 28);
	hdr_make(&h, NK_OP_SEND, NK_F_ADDR, 28, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 0);
	hdr_make(&h, NK_OP_SEND, NK_F_ADDR, 27, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), -EMSGSIZE);
	hdr_make(&h, NK_EV_DATA, NK_F_ADDR, 0, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), -EMSGSIZE);
	hdr_make(&h, NK_OP_SEND, NK_F_MORE, 0, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 0);
	/* nk_proto.h: "credit does not count" the 80-byte nk_anc either */
	hdr_make(&h, NK_EV_DATA, NK_F_ADDR | NK_F_ANC, 200, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 200 - 28 - 80);
	hdr_make(&h, NK_EV_DATA, NK_F_ADDR | NK_F_ANC, 108, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), 0);
	hdr_make(&h, NK_EV_DATA, NK_F_ADDR | NK_F_ANC, 107, 0);
	KUNIT_EXPECT_EQ(test, nk_hdr_data_len(&h), -EMSGSIZE);
}

/* nk_credit_rx_fill(): the header says buf_alloc and fwd_cnt, fwd_sent follows. */
static void credit_rx_fill_header(struct kunit *test)
{
	struct nk_credit_rx rx = {
		.buf_alloc = 32U << 20, .rx_cnt = 900, .fwd_cnt = 700, .fwd_sent = 100,
	};
	struct nk_hdr h;

	nk_hdr_init(&h, NK_OP_SEND, 0, 5, 9);
	nk_credit_rx_fill(&rx, &h);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h.flags), NK_F_CREDIT);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), NK_CREDIT_MAX);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.fwd_cnt), 700U);
	KUNIT_EXPECT_EQ(test, rx.fwd_sent, 700U);
	KUNIT_EXPECT_EQ(test, rx.fwd_cnt, 700U);
	KUNIT_EXPECT_EQ(test, rx.rx_cnt, 900U);
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_need_update(&rx));
}

static void credit_rx_autotune(struct kunit *test)
{
	struct nk_credit_rx s = { .buf_alloc = 212992 };

	/* not starved: no growth */
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_autotune(&s, 4 << 20));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, 212992U);
	/* starved: doubles, and the mark is consumed */
	s.starved = true;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_autotune(&s, 4 << 20));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, 425984U);
	KUNIT_EXPECT_FALSE(test, s.starved);
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_autotune(&s, 4 << 20));
	/* the last step stops at max, then nothing more */
	s.buf_alloc = 3 << 20;
	s.starved = true;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_autotune(&s, 4 << 20));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, 4U << 20);
	s.starved = true;
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_autotune(&s, 4 << 20));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, 4U << 20);
	KUNIT_EXPECT_FALSE(test, s.starved);
	/* max is clamped to NK_CREDIT_MAX; never shrinks below buf_alloc */
	s.buf_alloc = NK_CREDIT_MAX / 2 + 1;
	s.starved = true;
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_autotune(&s, U32_MAX));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, NK_CREDIT_MAX);
	s.buf_alloc = 65536;
	s.starved = true;
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_autotune(&s, 4096));
	KUNIT_EXPECT_EQ(test, s.buf_alloc, 65536U);
}

/* protocol.rst, "Flow control", worked example (world to guest), step by step. */
static void credit_spec_worked_example(struct kunit *test)
{
	struct nk_credit_rx guest = { .buf_alloc = 65536 };
	struct nk_credit_tx nsm = { 0 };
	struct nk_hdr h;

	/* the guest's SOCKET carries buf_alloc 65536, fwd_cnt 0 */
	KUNIT_ASSERT_EQ(test, nk_credit_tx_update(&nsm, guest.buf_alloc,
						  guest.fwd_sent), 0);
	/* 1. 40000 bytes arrive: all may be sent */
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&nsm), 65536U);
	KUNIT_EXPECT_TRUE(test, nk_credit_ok(nsm.tx_cnt, 40000, nsm.peer_fwd_cnt,
					     nsm.peer_buf_alloc));
	nsm.tx_cnt += 40000;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&guest, 40000), 0);
	/* 2. 30000 more: only 25536 may go */
	KUNIT_EXPECT_FALSE(test, nk_credit_ok(nsm.tx_cnt, 30000, nsm.peer_fwd_cnt,
					      nsm.peer_buf_alloc));
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&nsm), 25536U);
	nsm.tx_cnt += 25536;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&guest, 25536), 0);
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&guest, 1), -ENOBUFS);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&nsm), 0U);
	/* 3. the application reads 50000: the guest sends CREDIT */
	guest.fwd_cnt += 50000;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_unread(&guest), 15536U);
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_need_update(&guest));
	nk_credit_rx_fill(&guest, &h);
	nk_credit_rx_queued(&guest, le32_to_cpu(h.fwd_cnt));
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_need_update(&guest));
	KUNIT_ASSERT_EQ(test, nk_credit_tx_update(&nsm, guest.buf_alloc,
						  guest.fwd_sent), 0);
	/* 4. 15536 in flight: 50000 more may go, the 4464 held first */
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&nsm), 50000U);
	nsm.tx_cnt += 4464;
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&guest, 4464), 0);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&nsm), 45536U);
}

/*
 * A sender and a receiver exchange about 12 GiB in uneven chunks, starting
 * just below 2^32 so every counter wraps a few times, while the receiver
 * changes buf_alloc and reads at its own pace.  A sender that sends at most
 * nk_credit_tx_space() is never refused, never has more than buf_alloc in
 * flight, and the receiver's unread data never exceeds what it announced.
 */
static void credit_stream_across_wraparound(struct kunit *test)
{
	static const u32 allocs[] = { 65536, 4096, NK_CREDIT_MAX, 1, 300000 };
	struct nk_credit_rx rx = { .buf_alloc = 65536 };
	struct nk_credit_tx tx = { 0 };
	u32 start = 0xfff00000, seed = 12345;
	u64 sent = 0, consumed = 0;
	unsigned int i, wraps = 0;
	bool announce;

	rx.rx_cnt = start;
	rx.fwd_cnt = start;
	rx.fwd_sent = start;
	rx.fwd_queued = start;
	tx.tx_cnt = start;
	tx.peer_fwd_cnt = start;
	KUNIT_ASSERT_EQ(test, nk_credit_tx_update(&tx, rx.buf_alloc, rx.fwd_sent),
			0);

	for (i = 0; i < 200000; i++) {
		u32 space = nk_credit_tx_space(&tx), n, old = tx.tx_cnt;

		seed = seed * 1103515245 + 12345;
		n = space ? (seed >> 8) % space + 1 : 0;
		if (n && nk_credit_rx_accept(&rx, n)) {
			KUNIT_FAIL(test, "step %u: %u bytes within credit refused",
				   i, n);
			return;
		}
		tx.tx_cnt += n;
		sent += n;
		if (tx.tx_cnt < old)
			wraps++;
		if (n && nk_credit_rx_unread(&rx) > rx.buf_alloc) {
			KUNIT_FAIL(test, "step %u: %u unread beyond buf_alloc %u",
				   i, nk_credit_rx_unread(&rx), rx.buf_alloc);
			return;
		}
		/* the application reads some */
		n = (seed >> 4) % (nk_credit_rx_unread(&rx) + 1);
		rx.fwd_cnt += n;
		consumed += n;
		/* a new buf_alloc is announced at once (nk_credit_rx enforces
		 * the current one, so a shrink must not wait)
		 */
		announce = i % 1000 == 999;
		if (announce)
			rx.buf_alloc = allocs[(i / 1000) % ARRAY_SIZE(allocs)];
		if (announce || nk_credit_rx_need_update(&rx) || i % 7 == 0) {
			rx.fwd_sent = rx.fwd_cnt;
			rx.fwd_queued = rx.fwd_cnt;
			if (nk_credit_tx_update(&tx, rx.buf_alloc, rx.fwd_sent)) {
				KUNIT_FAIL(test, "step %u: announcement refused", i);
				return;
			}
		}
	}
	KUNIT_EXPECT_GE(test, wraps, 2U);
	KUNIT_EXPECT_EQ(test, (u32)sent, (u32)(tx.tx_cnt - start));
	KUNIT_EXPECT_EQ(test, (u32)consumed, (u32)(rx.fwd_cnt - start));
	KUNIT_EXPECT_EQ(test, rx.rx_cnt, tx.tx_cnt);
	kunit_info(test, "%llu bytes sent, %u wraps\n", sent, wraps);
}

/*
 * A receiver's CREDIT for bytes may overtake the sender's accounting of
 * them: the message is on the ring before the sending thread runs again.
 * The announcement must be taken, and the stream keep its credit.
 */
static void credit_tx_announcement_overtakes_accounting(struct kunit *test)
{
	struct nk_credit_tx s = { 0 };

	KUNIT_ASSERT_EQ(test, nk_credit_tx_update(&s, 65536, 0), 0);
	/* 65536 bytes go out: counted before the message is queued */
	nk_credit_tx_send(&s, 65536);
	/* the receiver consumed all of them, and says so first */
	KUNIT_EXPECT_EQ(test, nk_credit_tx_update(&s, 65536, 65536), 0);
	KUNIT_EXPECT_EQ(test, s.peer_fwd_cnt, 65536U);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&s), 65536U);
	/* still no more than was handed over */
	KUNIT_EXPECT_EQ(test, nk_credit_tx_update(&s, 65536, 65537), -EPROTO);
	KUNIT_EXPECT_EQ(test, s.peer_fwd_cnt, 65536U);
}

/* A message that did not leave after all is taken back. */
static void credit_tx_unsend(struct kunit *test)
{
	struct nk_credit_tx s = { .tx_cnt = 0xffffff00, .peer_buf_alloc = 4096,
				  .peer_fwd_cnt = 0xffffff00 };

	nk_credit_tx_send(&s, 1000);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&s), 3096U);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_unsend(&s, 1000), 0);
	KUNIT_EXPECT_EQ(test, s.tx_cnt, 0xffffff00U);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&s), 4096U);
	/* some of them consumed, though they never left: a lie, undone */
	nk_credit_tx_send(&s, 1000);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_update(&s, 4096, 0xffffff00 + 600), 0);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_unsend(&s, 1000), -EPROTO);
	KUNIT_EXPECT_EQ(test, s.tx_cnt, 0xffffff00U);
	KUNIT_EXPECT_EQ(test, s.peer_fwd_cnt, 0xffffff00U);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&s), 4096U);
	/* what was sent before stays consumed */
	nk_credit_tx_send(&s, 500);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_update(&s, 4096, 0xffffff00 + 500), 0);
	nk_credit_tx_send(&s, 200);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_unsend(&s, 200), 0);
	KUNIT_EXPECT_EQ(test, s.peer_fwd_cnt, 0xffffff00U + 500);
	KUNIT_EXPECT_EQ(test, nk_credit_tx_space(&s), 4096U);
}

/* A message that carried credit but never left announced nothing. */
static void credit_rx_unsent_announcement(struct kunit *test)
{
	struct nk_credit_rx s = { .buf_alloc = 65536, .rx_cnt = 65536,
				  .fwd_cnt = 40000 };
	struct nk_hdr h, h2;

	KUNIT_ASSERT_TRUE(test, nk_credit_rx_need_update(&s));
	nk_hdr_init(&h, NK_OP_SEND, 0, 1, 0);
	nk_credit_rx_fill(&s, &h);
	KUNIT_EXPECT_TRUE(test, le16_to_cpu(h.flags) & NK_F_CREDIT);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.buf_alloc), 65536U);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h.fwd_cnt), 40000U);
	/* the sender may know it now: it bounds what the sender may send */
	KUNIT_EXPECT_EQ(test, s.fwd_sent, 40000U);
	KUNIT_EXPECT_EQ(test, nk_credit_rx_accept(&s, 40000), 0);
	/* the message is dropped (EFAULT, a signal, no ring space) */
	KUNIT_EXPECT_EQ(test, s.fwd_queued, 0U);
	KUNIT_EXPECT_TRUE(test, nk_credit_rx_need_update(&s));
	/* one filled later is queued first; the earlier one after it */
	s.fwd_cnt += 1000;
	nk_credit_rx_fill(&s, &h2);
	nk_credit_rx_queued(&s, le32_to_cpu(h2.fwd_cnt));
	KUNIT_EXPECT_EQ(test, s.fwd_queued, 41000U);
	KUNIT_EXPECT_FALSE(test, nk_credit_rx_need_update(&s));
	nk_credit_rx_queued(&s, le32_to_cpu(h.fwd_cnt));
	KUNIT_EXPECT_EQ(test, s.fwd_queued, 41000U);
	/* across the wrap */
	s.fwd_queued = 0xfffffff0;
	nk_credit_rx_queued(&s, 0x10);
	KUNIT_EXPECT_EQ(test, s.fwd_queued, 0x10U);
	nk_credit_rx_queued(&s, 0xfffffff8);
	KUNIT_EXPECT_EQ(test, s.fwd_queued, 0x10U);
}

static struct kunit_case netkernel_credit_cases[] = {
	KUNIT_CASE_PARAM(credit_ok_table, ok_gen_params),
	KUNIT_CASE(credit_ok_edges_exhaustive),
	KUNIT_CASE_PARAM(credit_tx_update_table, tx_gen_params),
	KUNIT_CASE_PARAM(credit_rx_accept_table, rx_gen_params),
	KUNIT_CASE(credit_rx_unread),
	KUNIT_CASE(credit_rx_closed),
	KUNIT_CASE_PARAM(credit_rx_need_update_table, upd_gen_params),
	KUNIT_CASE(credit_rx_accept_marks_starved),
	KUNIT_CASE(hdr_data_len),
	KUNIT_CASE(credit_rx_fill_header),
	KUNIT_CASE(credit_rx_autotune),
	KUNIT_CASE(credit_spec_worked_example),
	KUNIT_CASE(credit_stream_across_wraparound),
	KUNIT_CASE(credit_tx_announcement_overtakes_accounting),
	KUNIT_CASE(credit_tx_unsend),
	KUNIT_CASE(credit_rx_unsent_announcement),
	{}
};

static struct kunit_suite netkernel_credit_suite = {
	.name = "netkernel_credit",
	.test_cases = netkernel_credit_cases,
};

/* ------------------------------------------------------------------ */
/* NK_OP_INFO: the request (NSM side) and the records (engine side)    */
/* ------------------------------------------------------------------ */

struct sock_weight_case {
	const char *name;
	u64 a3;
	int want;
};

static const struct sock_weight_case sock_weight_cases[] = {
	{ "none", 0, 0 },
	{ "none_flags_and_guest", NK_SOCK_V6ONLY | NK_SOCK_ANC | 7ULL << 32, 0 },
	{ "one", 1 << NK_SOCK_WEIGHT_SHIFT, 1 },
	{ "three_with_flags", 3 << NK_SOCK_WEIGHT_SHIFT | NK_SOCK_ANC | 9ULL << 32, 3 },
	{ "max", NK_WEIGHT_MAX << NK_SOCK_WEIGHT_SHIFT, NK_WEIGHT_MAX },
	{ "over_max", (NK_WEIGHT_MAX + 1) << NK_SOCK_WEIGHT_SHIFT, -EINVAL },
	{ "all_bits", NK_SOCK_WEIGHT_MASK, -EINVAL },
	{ "bit_26_not_weight", 1ULL << 26 | 2 << NK_SOCK_WEIGHT_SHIFT, 2 },
	{ "guest_id_not_weight", 0xffffffffULL << 32, 0 },
};

static void sock_weight_case_desc(const struct sock_weight_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
}

KUNIT_ARRAY_PARAM(sock_weight, sock_weight_cases, sock_weight_case_desc);

/* SOCKET a3's weight (E -> N, NK_FEAT_WEIGHT): 0 none, 1..1000, else -EINVAL. */
static void sock_weight_table(struct kunit *test)
{
	const struct sock_weight_case *c = test->param_value;

	KUNIT_EXPECT_EQ(test, nk_sock_weight(c->a3), c->want);
}

struct info_req_case {
	const char *name;
	u32 sock, len, max_payload;
	int want;
};

static const struct info_req_case info_req_cases[] = {
	{ "one_id", 0, 4, 4096, 1 },
	{ "max_ids_4096", 0, 4 * 39, 4096, 39 },
	{ "over_max_ids_4096", 0, 4 * 40, 4096, -EINVAL },
	{ "max_ids_65536", 0, 4 * 630, 65536, 630 },
	{ "over_max_ids_65536", 0, 4 * 631, 65536, -EINVAL },
	{ "no_ids", 0, 0, 4096, -EINVAL },
	{ "partial_id", 0, 6, 4096, -EINVAL },
	{ "socket_set", 7, 4, 4096, -EINVAL },
};

static void info_req_case_desc(const struct info_req_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
}

KUNIT_ARRAY_PARAM(info_req, info_req_cases, info_req_case_desc);

static void info_req_check_table(struct kunit *test)
{
	const struct info_req_case *c = test->param_value;
	struct nk_hdr h;

	hdr_make(&h, NK_OP_INFO, 0, c->len, 0);
	h.sock = cpu_to_le32(c->sock);
	KUNIT_EXPECT_EQ(test, nk_info_req_check(&h, c->max_payload), c->want);
}

enum info_mut {
	IM_NONE, IM_SOCK, IM_EBADF, IM_EBADF_DATA, IM_EINVAL, IM_STATUS_POS,
	IM_FAMILY, IM_V6, IM_PROTO, IM_UDP, IM_UDP_LISTEN, IM_STATE_0,
	IM_STATE_MAX, IM_STATE_13, IM_LOCAL_FAMILY, IM_REMOTE_FAMILY,
	IM_V4_HIGH, IM_V4_FLOWINFO, IM_RESERVED, IM_RATE_ANY,
};

struct info_case {
	const char *name;
	enum info_mut mut;
	int want;
	const char *why;
};

static const struct info_case info_cases[] = {
	{ "tcp_v4_established", IM_NONE, 0, NULL },
	{ "tcp_v6", IM_V6, 0, NULL },
	{ "udp_unconnected", IM_UDP, 0, NULL },
	{ "state_new_syn_recv", IM_STATE_MAX, 0, NULL },
	{ "counters_any_value", IM_RATE_ANY, 0, NULL },
	{ "no_such_socket", IM_EBADF, -EBADF, NULL },
	{ "other_socket", IM_SOCK, -EPROTO, "not the socket asked for" },
	{ "no_such_socket_with_data", IM_EBADF_DATA, -EPROTO, "unknown socket with data" },
	{ "status_einval", IM_EINVAL, -EPROTO, "bad status" },
	{ "status_positive", IM_STATUS_POS, -EPROTO, "bad status" },
	{ "family_3", IM_FAMILY, -EPROTO, "bad family" },
	{ "proto_1", IM_PROTO, -EPROTO, "bad protocol" },
	{ "udp_listen", IM_UDP_LISTEN, -EPROTO, "bad state" },
	{ "state_0", IM_STATE_0, -EPROTO, "bad state" },
	{ "state_13", IM_STATE_13, -EPROTO, "bad state" },
	{ "local_other_family", IM_LOCAL_FAMILY, -EPROTO, "bad address" },
	{ "remote_other_family", IM_REMOTE_FAMILY, -EPROTO, "bad address" },
	{ "v4_address_high_bytes", IM_V4_HIGH, -EPROTO, "bad address" },
	{ "v4_flowinfo", IM_V4_FLOWINFO, -EPROTO, "bad address" },
	{ "reserved_set", IM_RESERVED, -EPROTO, "reserved field set" },
};

static void info_case_desc(const struct info_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
}

KUNIT_ARRAY_PARAM(info, info_cases, info_case_desc);

static void info_record(struct nk_sock_info *si, enum info_mut mut)
{
	memset(si, 0, sizeof(*si));
	si->sock = cpu_to_le32(9);
	si->family = cpu_to_le16(AF_INET);
	si->proto = IPPROTO_TCP;
	si->state = NK_SS_ESTABLISHED;
	si->local.family = si->family;
	si->local.addr[0] = 10;
	si->local.port = htons(80);
	si->remote.family = si->family;
	si->rtt_us = cpu_to_le32(1000);
	switch (mut) {
	case IM_NONE:
		break;
	case IM_SOCK:
		si->sock = cpu_to_le32(10);
		break;
	case IM_EBADF:
		memset(&si->family, 0, sizeof(*si) - offsetof(struct nk_sock_info, family));
		si->status = cpu_to_le32(-EBADF);
		break;
	case IM_EBADF_DATA:
		si->status = cpu_to_le32(-EBADF);
		break;
	case IM_EINVAL:
		si->status = cpu_to_le32(-EINVAL);
		break;
	case IM_STATUS_POS:
		si->status = cpu_to_le32(1);
		break;
	case IM_FAMILY:
		si->family = cpu_to_le16(3);
		break;
	case IM_V6:
		si->family = cpu_to_le16(AF_INET6);
		si->local.family = si->family;
		si->remote.family = si->family;
		si->local.addr[15] = 1;
		si->local.flowinfo = htonl(5);
		break;
	case IM_PROTO:
		si->proto = 1;
		break;
	case IM_UDP:
		si->proto = IPPROTO_UDP;
		si->state = NK_SS_CLOSE;
		break;
	case IM_UDP_LISTEN:
		si->proto = IPPROTO_UDP;
		si->state = NK_SS_LISTEN;
		break;
	case IM_STATE_0:
		si->state = 0;
		break;
	case IM_STATE_MAX:
		si->state = NK_SS_MAX;
		break;
	case IM_STATE_13:
		si->state = NK_SS_MAX + 1;
		break;
	case IM_LOCAL_FAMILY:
		si->local.family = cpu_to_le16(AF_INET6);
		break;
	case IM_REMOTE_FAMILY:
		si->remote.family = 0;
		break;
	case IM_V4_HIGH:
		si->remote.addr[4] = 1;
		break;
	case IM_V4_FLOWINFO:
		si->local.flowinfo = htonl(1);
		break;
	case IM_RESERVED:
		si->reserved = cpu_to_le32(1);
		break;
	case IM_RATE_ANY:
		si->delivery_rate = cpu_to_le64(~0ULL);
		si->snd_cwnd = cpu_to_le32(U32_MAX);
		break;
	}
}

static void sock_info_check_table(struct kunit *test)
{
	const struct info_case *c = test->param_value;
	struct nk_sock_info si;
	const char *why = "unset";

	info_record(&si, c->mut);
	KUNIT_EXPECT_EQ(test, nk_sock_info_check(&si, 9, &why), c->want);
	if (c->why)
		KUNIT_EXPECT_STREQ(test, why ? why : "(null)", c->why);
	else
		KUNIT_EXPECT_TRUE_MSG(test, !why, "why: %s", why);
}

/* The wire layout protocol.rst gives. */
static void sock_info_layout(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, sizeof(struct nk_sock_info), 104);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, family), 8);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, state), 11);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, local), 12);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, remote), 40);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, rtt_us), 68);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, reserved), 92);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_sock_info, delivery_rate), 96);
	KUNIT_EXPECT_EQ(test, NK_INFO_MAX(NK_MIN_PAYLOAD), 19);
}

/* ====================================================================== */
/* netkernel_anc                                                          */
/* ====================================================================== */

enum anc_mut {
	AM_NONE, AM_EMPTY, AM_V6, AM_ERR, AM_ERR_NO_OFFENDER, AM_ERR6_ICMP6,
	AM_VERSION, AM_SIZE, AM_UNKNOWN_BIT, AM_IFINDEX_NO_PKTINFO,
	AM_ADDR6_NO_PKTINFO6, AM_SPEC_DST_NO_PKTINFO, AM_TTL_NOT_PRESENT,
	AM_TCLASS_NOT_PRESENT, AM_EE_WITHOUT_ERR, AM_ERR_AND_TTL, AM_ERR_AND_ERR6,
	AM_ERRNO_0, AM_ERRNO_4096, AM_ORIGIN_0, AM_ICMP6_ON_ERR,
	AM_ORIGIN_ZEROCOPY, AM_EE_PAD, AM_OFFENDER_BAD, AM_OFFENDER_FAMILY_0_DATA,
};

struct anc_case {
	const char *name;
	enum anc_mut mut;
	int want;
};

/* Rows from the nk_anc rules of nk_proto.h and protocol.rst. */
static const struct anc_case anc_cases[] = {
	{ "pktinfo_tos_ttl", AM_NONE, 0 },
	{ "nothing_present", AM_EMPTY, 0 },
	{ "pktinfo6_tclass_hoplimit", AM_V6, 0 },
	{ "err_icmp_port_unreachable", AM_ERR, 0 },
	{ "err_local_no_offender", AM_ERR_NO_OFFENDER, 0 },
	{ "err6_icmp6", AM_ERR6_ICMP6, 0 },
	{ "version_2", AM_VERSION, -EINVAL },
	{ "size_79", AM_SIZE, -EINVAL },
	{ "unknown_present_bit", AM_UNKNOWN_BIT, -EINVAL },
	{ "ifindex_without_pktinfo", AM_IFINDEX_NO_PKTINFO, -EINVAL },
	{ "addr6_without_pktinfo6", AM_ADDR6_NO_PKTINFO6, -EINVAL },
	{ "spec_dst_without_pktinfo", AM_SPEC_DST_NO_PKTINFO, -EINVAL },
	{ "ttl_not_present", AM_TTL_NOT_PRESENT, -EINVAL },
	{ "tclass_not_present", AM_TCLASS_NOT_PRESENT, -EINVAL },
	{ "ee_without_err", AM_EE_WITHOUT_ERR, -EINVAL },
	{ "err_with_ttl", AM_ERR_AND_TTL, -EINVAL },
	{ "err_and_err6", AM_ERR_AND_ERR6, -EINVAL },
	{ "errno_0", AM_ERRNO_0, -EINVAL },
	{ "errno_4096", AM_ERRNO_4096, -EINVAL },
	{ "origin_none", AM_ORIGIN_0, -EINVAL },
	{ "origin_icmp6_on_err", AM_ICMP6_ON_ERR, -EINVAL },
	{ "origin_zerocopy", AM_ORIGIN_ZEROCOPY, -EINVAL },
	{ "ee_pad_set", AM_EE_PAD, -EINVAL },
	{ "offender_v4_high_bytes", AM_OFFENDER_BAD, -EINVAL },
	{ "offender_family_0_with_data", AM_OFFENDER_FAMILY_0_DATA, -EINVAL },
};

static void anc_case_desc(const struct anc_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
}

KUNIT_ARRAY_PARAM(anc, anc_cases, anc_case_desc);

static void anc_err(struct nk_anc *a, u16 present, u8 origin)
{
	a->present = cpu_to_le16(present);
	a->ifindex = 0;
	memset(a->addr4, 0, sizeof(a->addr4));
	memset(a->spec_dst, 0, sizeof(a->spec_dst));
	a->tos = 0;
	a->ttl = 0;
	a->ee_errno = cpu_to_le32(ECONNREFUSED);
	a->ee_origin = origin;
	a->ee_type = 3;
	a->ee_code = 3;
	a->offender.family = cpu_to_le16(AF_INET);
	a->offender.addr[0] = 10;
}

static void anc_block(struct nk_anc *a, enum anc_mut mut)
{
	memset(a, 0, sizeof(*a));
	a->version = NK_ANC_VERSION;
	a->size = sizeof(*a);
	a->present = cpu_to_le16(NK_ANC_PKTINFO | NK_ANC_TOS | NK_ANC_TTL);
	a->ifindex = cpu_to_le32(2);
	a->addr4[0] = 10;
	a->spec_dst[0] = 10;
	a->tos = 0x20;
	a->ttl = 64;
	switch (mut) {
	case AM_NONE:
		break;
	case AM_EMPTY:
		memset(a, 0, sizeof(*a));
		a->version = NK_ANC_VERSION;
		a->size = sizeof(*a);
		break;
	case AM_V6:
		anc_block(a, AM_EMPTY);
		a->present = cpu_to_le16(NK_ANC_PKTINFO6 | NK_ANC_TCLASS |
					 NK_ANC_HOPLIMIT);
		a->ifindex = cpu_to_le32(2);
		a->addr6[0] = 0xfd;
		a->tclass = 0x20;
		a->hoplimit = 64;
		break;
	case AM_ERR:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		break;
	case AM_ERR_NO_OFFENDER:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_LOCAL);
		memset(&a->offender, 0, sizeof(a->offender));
		break;
	case AM_ERR6_ICMP6:
		anc_err(a, NK_ANC_ERR6, NK_EE_ORIGIN_ICMP6);
		a->offender.family = cpu_to_le16(AF_INET6);
		break;
	case AM_VERSION:
		a->version = 2;
		break;
	case AM_SIZE:
		a->size = sizeof(*a) - 1;
		break;
	case AM_UNKNOWN_BIT:
		a->present |= cpu_to_le16(0x100);
		break;
	case AM_IFINDEX_NO_PKTINFO:
		a->present = cpu_to_le16(NK_ANC_TTL);
		memset(a->addr4, 0, sizeof(a->addr4));
		memset(a->spec_dst, 0, sizeof(a->spec_dst));
		a->tos = 0;
		break;
	case AM_ADDR6_NO_PKTINFO6:
		a->addr6[15] = 1;
		break;
	case AM_SPEC_DST_NO_PKTINFO:
		a->present = cpu_to_le16(NK_ANC_PKTINFO6 | NK_ANC_TOS | NK_ANC_TTL);
		memset(a->addr4, 0, sizeof(a->addr4));
		break;
	case AM_TTL_NOT_PRESENT:
		a->present = cpu_to_le16(NK_ANC_PKTINFO | NK_ANC_TOS);
		break;
	case AM_TCLASS_NOT_PRESENT:
		a->tclass = 1;
		break;
	case AM_EE_WITHOUT_ERR:
		a->ee_info = cpu_to_le32(1500);
		break;
	case AM_ERR_AND_TTL:
		anc_err(a, NK_ANC_ERR | NK_ANC_TTL, NK_EE_ORIGIN_ICMP);
		a->ttl = 64;
		break;
	case AM_ERR_AND_ERR6:
		anc_err(a, NK_ANC_ERR | NK_ANC_ERR6, NK_EE_ORIGIN_ICMP);
		break;
	case AM_ERRNO_0:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		a->ee_errno = 0;
		break;
	case AM_ERRNO_4096:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		a->ee_errno = cpu_to_le32(4096);
		break;
	case AM_ORIGIN_0:
		anc_err(a, NK_ANC_ERR, 0);
		break;
	case AM_ICMP6_ON_ERR:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP6);
		break;
	case AM_ORIGIN_ZEROCOPY:
		anc_err(a, NK_ANC_ERR6, 5);	/* SO_EE_ORIGIN_ZEROCOPY */
		break;
	case AM_EE_PAD:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		a->ee_pad = 1;
		break;
	case AM_OFFENDER_BAD:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		a->offender.addr[4] = 1;
		break;
	case AM_OFFENDER_FAMILY_0_DATA:
		anc_err(a, NK_ANC_ERR, NK_EE_ORIGIN_ICMP);
		a->offender.family = 0;
		break;
	}
}

static void anc_check_table(struct kunit *test)
{
	const struct anc_case *c = test->param_value;
	struct nk_anc a;

	anc_block(&a, c->mut);
	KUNIT_EXPECT_EQ(test, nk_anc_check(&a), c->want);
}

/* The wire layout nk_proto.h and protocol.rst give. */
static void anc_layout(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, sizeof(struct nk_anc), 80);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, present), 2);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, ifindex), 4);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, addr6), 8);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, addr4), 24);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, spec_dst), 28);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, tos), 32);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, hoplimit), 35);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, ee_errno), 36);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, ee_info), 44);
	KUNIT_EXPECT_EQ(test, offsetof(struct nk_anc, offender), 52);
}

static struct kunit_case netkernel_anc_cases[] = {
	KUNIT_CASE_PARAM(anc_check_table, anc_gen_params),
	KUNIT_CASE(anc_layout),
	{}
};

static struct kunit_suite netkernel_anc_suite = {
	.name = "netkernel_anc",
	.test_cases = netkernel_anc_cases,
};

/*
 * nk_urg_check(): an EV_URG as nk_proto.h has it.  Each row changes one
 * field of a valid event (byte 'c', mark 1000, receiver at 990).
 */
struct urg_case {
	const char *name;
	u16 op;
	u16 flags;
	u32 len;
	s32 status;
	u64 byte;
	u64 mark;
	u64 a2;
	u64 a3;
	u32 rx_cnt;
	int want;
};

static const struct urg_case urg_cases[] = {
	{ "valid", NK_EV_URG, 0, 0, 0, 'c', 1000, 0, 0, 990, 0 },
	{ "valid_with_credit", NK_EV_URG, NK_F_CREDIT, 0, 0, 'c', 1000, 0, 0, 990, 0 },
	{ "byte_0", NK_EV_URG, 0, 0, 0, 0, 1000, 0, 0, 990, 0 },
	{ "byte_255", NK_EV_URG, 0, 0, 0, 255, 1000, 0, 0, 990, 0 },
	{ "byte_256", NK_EV_URG, 0, 0, 0, 256, 1000, 0, 0, 990, -EINVAL },
	{ "byte_high_bits", NK_EV_URG, 0, 0, 0, 0x100000063ULL, 1000, 0, 0, 990, -EINVAL },
	{ "mark_at_rx_cnt", NK_EV_URG, 0, 0, 0, 'c', 990, 0, 0, 990, 0 },
	{ "mark_one_behind", NK_EV_URG, 0, 0, 0, 'c', 989, 0, 0, 990, -EINVAL },
	{ "mark_2g_ahead", NK_EV_URG, 0, 0, 0, 'c', 990 + 0x7fffffffULL, 0, 0, 990, 0 },
	{ "mark_2g_plus_1_ahead", NK_EV_URG, 0, 0, 0, 'c', 990 + 0x80000000ULL, 0, 0, 990,
	  -EINVAL },
	{ "mark_wraps", NK_EV_URG, 0, 0, 0, 'c', 5, 0, 0, 0xfffffff0U, 0 },
	{ "mark_behind_across_wrap", NK_EV_URG, 0, 0, 0, 'c', 0xfffffff0U, 0, 0, 5, -EINVAL },
	{ "mark_above_u32", NK_EV_URG, 0, 0, 0, 'c', 0x1000003e8ULL, 0, 0, 990, -EINVAL },
	{ "a2_set", NK_EV_URG, 0, 0, 0, 'c', 1000, 1, 0, 990, -EINVAL },
	{ "a3_set", NK_EV_URG, 0, 0, 0, 'c', 1000, 0, 1, 990, -EINVAL },
	{ "payload", NK_EV_URG, 0, 1, 0, 'c', 1000, 0, 0, 990, -EINVAL },
	{ "status", NK_EV_URG, 0, 0, -EIO, 'c', 1000, 0, 0, 990, -EINVAL },
	{ "flag_addr", NK_EV_URG, NK_F_ADDR, 0, 0, 'c', 1000, 0, 0, 990, -EINVAL },
	{ "flag_reply", NK_EV_URG, NK_F_REPLY, 0, 0, 'c', 1000, 0, 0, 990, -EINVAL },
	{ "flag_unknown", NK_EV_URG, 0x8000, 0, 0, 'c', 1000, 0, 0, 990, -EINVAL },
	{ "other_op", NK_EV_DATA, 0, 0, 0, 'c', 1000, 0, 0, 990, -EINVAL },
};

static void urg_case_desc(const struct urg_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%s", c->name);
}

KUNIT_ARRAY_PARAM(urg, urg_cases, urg_case_desc);

static void urg_check_table(struct kunit *test)
{
	const struct urg_case *c = test->param_value;
	struct nk_hdr h;

	hdr_make(&h, c->op, c->flags, c->len, c->status);
	h.arg[0] = cpu_to_le64(c->byte);
	h.arg[1] = cpu_to_le64(c->mark);
	h.arg[2] = cpu_to_le64(c->a2);
	h.arg[3] = cpu_to_le64(c->a3);
	KUNIT_EXPECT_EQ(test, nk_urg_check(&h, c->rx_cnt), c->want);
}

static struct kunit_case netkernel_urg_cases[] = {
	KUNIT_CASE_PARAM(urg_check_table, urg_gen_params),
	{}
};

static struct kunit_suite netkernel_urg_suite = {
	.name = "netkernel_urg",
	.test_cases = netkernel_urg_cases,
};

static struct kunit_case netkernel_info_cases[] = {
	KUNIT_CASE_PARAM(info_req_check_table, info_req_gen_params),
	KUNIT_CASE_PARAM(sock_weight_table, sock_weight_gen_params),
	KUNIT_CASE_PARAM(sock_info_check_table, info_gen_params),
	KUNIT_CASE(sock_info_layout),
	{}
};

static struct kunit_suite netkernel_info_suite = {
	.name = "netkernel_info",
	.test_cases = netkernel_info_cases,
};

kunit_test_suites(&netkernel_msg_suite, &netkernel_hello_suite,
		  &netkernel_addr_suite, &netkernel_credit_suite,
		  &netkernel_info_suite, &netkernel_anc_suite,
		  &netkernel_urg_suite);

MODULE_DESCRIPTION("KUnit tests for NetKernel's nk message helpers");
MODULE_LICENSE("GPL");
