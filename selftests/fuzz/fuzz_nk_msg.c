// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: lib/nk_msg.c as both modules use it on what arrives
 * from the host engine, which neither trusts.
 *
 * Input: a 5-byte selector, then one message as the device wrote it
 * (header and payload), then credit announcements of 12 bytes each.
 *   selector[0] bit 0: the receiving role (guest or NSM)
 *   selector[1..2]:    the receiver's max_payload, NK_MIN_PAYLOAD and up
 *   selector[3..4]:    the bytes the device wrote, big-endian (0: as many
 *                      as the header's len says, as an honest device
 *                      would write, up to 64 KiB); the input
 *                      gives their start, zeros the rest (so that short
 *                      inputs stand for long messages); what follows them
 *                      in the input is credit
 *
 * Each step is what nk_transport.c, nk_af.c and nsm_ops.c do with the
 * result; the asserts are the contract nk_msg.h states, so a function that
 * accepts what it promised to refuse, or returns out of its range, aborts.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nk_msg.h"

static void check_addr(const uint8_t *p, uint32_t plen)
{
	struct sockaddr_storage ss;
	struct nk_addr na;
	int r;

	if (plen < sizeof(na))
		return;
	memcpy(&na, p, sizeof(na));
	if (nk_addr_check(&na))
		return;
	r = nk_addr_to_sockaddr(&na, &ss, AF_INET6);
	assert(r == sizeof(struct sockaddr_in6) && ss.ss_family == AF_INET6);
	/* IPv4's largest datagram: an AF_INET address or a v4-mapped one. */
	assert(nk_addr_is_v4(&na) ==
	       !!IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr));
	r = nk_addr_to_sockaddr(&na, &ss, AF_INET);
	if (le16_to_cpu(na.family) == AF_INET)
		assert(r == sizeof(struct sockaddr_in) && ss.ss_family == AF_INET);
	else
		assert(r == -EINVAL);
	(void)nk_addr_is_loopback(&na);
}

/* An EV_DATA's struct nk_anc, as nk_af.c takes it. */
static void check_anc(const uint8_t *p, uint32_t plen)
{
	u16 present, err;
	struct nk_anc anc;

	if (plen < sizeof(anc))
		return;
	memcpy(&anc, p, sizeof(anc));
	if (nk_anc_check(&anc))
		return;
	present = le16_to_cpu(anc.present);
	err = present & (NK_ANC_ERR | NK_ANC_ERR6);
	assert(anc.version == NK_ANC_VERSION && anc.size == sizeof(anc));
	assert(!(present & ~NK_ANC_KNOWN));
	assert(!err || present == NK_ANC_ERR || present == NK_ANC_ERR6);
	if (err) {
		assert(le32_to_cpu(anc.ee_errno) && le32_to_cpu(anc.ee_errno) <= MAX_ERRNO);
		if (anc.offender.family)
			assert(!nk_addr_check(&anc.offender));
	} else {
		assert(!anc.ee_errno && !anc.offender.family);
	}
	if (!(present & (NK_ANC_PKTINFO | NK_ANC_PKTINFO6)))
		assert(!anc.ifindex);
}

/* An EV_URG, as nk_af.c takes it, against a receiver at @rx_cnt. */
static void check_urg(const struct nk_hdr *h, u32 rx_cnt)
{
	u64 mark = le64_to_cpu(h->arg[1]);

	if (nk_urg_check(h, rx_cnt))
		return;
	assert(le16_to_cpu(h->op) == NK_EV_URG && !h->len && !h->status);
	assert(!(le16_to_cpu(h->flags) & ~NK_F_CREDIT));
	assert(le64_to_cpu(h->arg[0]) <= 0xff && mark <= U32_MAX);
	assert((u32)mark - rx_cnt <= S32_MAX);
	assert(!h->arg[2] && !h->arg[3]);
}

static void check_hello(const struct nk_hdr *h, const uint8_t *p, uint32_t plen,
			uint32_t max_payload)
{
	const u64 features = NK_FEAT_ALL;
	struct nk_hello hello;
	size_t n;

	if (nk_hello_reply_parse(h, p, plen, features, max_payload, &hello))
		return;
	assert(!(hello.features & ~features));
	assert(hello.max_payload >= NK_MIN_PAYLOAD && hello.max_payload <= max_payload);
	assert(hello.endpoint_id);
	n = strnlen(hello.name, sizeof(hello.name));
	assert(n > 0 && n < sizeof(hello.name));
}

/* Credit announcements against a sender and a receiver that obey them. */
static void check_credit(const uint8_t *p, size_t len)
{
	struct nk_credit_tx tx = { .peer_buf_alloc = 65536 };
	struct nk_credit_rx rx = { .buf_alloc = 65536 };
	u32 v[3], space, fwd;
	struct nk_hdr h;

	for (; len >= sizeof(v); p += sizeof(v), len -= sizeof(v)) {
		memcpy(v, p, sizeof(v));
		fwd = tx.peer_fwd_cnt;
		if (!nk_credit_tx_update(&tx, v[0], v[1])) {
			assert(tx.peer_buf_alloc <= NK_CREDIT_MAX);
			assert((s32)(tx.peer_fwd_cnt - fwd) >= 0);
			assert((s32)(tx.tx_cnt - tx.peer_fwd_cnt) >= 0);
		}
		space = nk_credit_tx_space(&tx);
		assert(space <= tx.peer_buf_alloc);
		tx.tx_cnt += v[2] % (space + 1);
		assert(nk_credit_tx_space(&tx) <= space);

		if (!nk_credit_rx_accept(&rx, v[2]))
			assert(rx.rx_cnt - rx.fwd_sent <= rx.buf_alloc);
		rx.fwd_cnt += v[0] % (nk_credit_rx_unread(&rx) + 1);
		assert(nk_credit_rx_unread(&rx) <= rx.rx_cnt - rx.fwd_sent + rx.buf_alloc);
		if (nk_credit_rx_need_update(&rx)) {
			nk_credit_rx_fill(&rx, &h);
			/* some announcements never leave */
			if (v[1] & 1)
				nk_credit_rx_queued(&rx, le32_to_cpu(h.fwd_cnt));
		}
		if (!nk_credit_rx_unread(&rx))
			nk_credit_rx_autotune(&rx, v[1]);
		assert(rx.buf_alloc <= NK_CREDIT_MAX);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[0xffff];
	struct nk_hdr h;
	uint32_t max_payload, mlen, plen, n;
	int role, r;

	if (size < 5)
		return 0;
	role = data[0] & 1 ? NK_ROLE_NSM : NK_ROLE_GUEST;
	max_payload = NK_MIN_PAYLOAD +
		      (((uint32_t)data[1] << 8 | data[2]) % (NK_MAX_PAYLOAD - NK_MIN_PAYLOAD + 1));
	mlen = (uint32_t)data[3] << 8 | data[4];
	data += 5;
	size -= 5;
	if (!mlen && size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		mlen = sizeof(h) + le32_to_cpu(h.len);
		if (mlen > sizeof(buf) || mlen < sizeof(h))
			mlen = sizeof(buf);
	}
	n = mlen < size ? mlen : size;
	memcpy(buf, data, n);
	memset(buf + n, 0, mlen - n);

	/* The device may write less than a header: check it like the modules. */
	memset(&h, 0, sizeof(h));
	memcpy(&h, buf, mlen < sizeof(h) ? mlen : sizeof(h));
	r = nk_hdr_check(&h, mlen, role, max_payload);
	assert(r == 0 || r == -EBADMSG || r == -EMSGSIZE || r == -EINVAL || r == -EOPNOTSUPP);
	if (!r) {
		plen = le32_to_cpu(h.len);
		assert(mlen >= sizeof(h) && plen == mlen - sizeof(h) && plen <= max_payload);
		assert(!(le16_to_cpu(h.flags) & ~NK_F_KNOWN));
		r = nk_hdr_status(&h);
		assert(r <= 0 && r >= -MAX_ERRNO);
		assert(strcmp(nk_op_name(le16_to_cpu(h.op)), "?"));
		if (le16_to_cpu(h.op) == NK_OP_HELLO)
			check_hello(&h, buf + sizeof(h), plen, max_payload);
		if (le16_to_cpu(h.op) == NK_OP_SOCKET) {
			r = nk_sock_weight(le64_to_cpu(h.arg[3]));
			assert(r == -EINVAL || (r >= 0 && r <= NK_WEIGHT_MAX));
			assert((r == -EINVAL) == (((le64_to_cpu(h.arg[3]) & NK_SOCK_WEIGHT_MASK) >>
						   NK_SOCK_WEIGHT_SHIFT) > NK_WEIGHT_MAX));
		}
		/* The receiver's place in the stream: what fwd_cnt says. */
		check_urg(&h, le32_to_cpu(h.fwd_cnt));
		if (le16_to_cpu(h.flags) & NK_F_ANC) {
			assert(le16_to_cpu(h.op) == NK_EV_DATA && (le16_to_cpu(h.flags) & NK_F_ADDR));
			check_anc(buf + sizeof(h), plen);
			if (plen >= sizeof(struct nk_anc))
				check_addr(buf + sizeof(h) + sizeof(struct nk_anc),
					   plen - sizeof(struct nk_anc));
		} else if (le16_to_cpu(h.flags) & NK_F_ADDR) {
			check_addr(buf + sizeof(h), plen);
		}
	}
	check_credit(data + n, size - n);
	return 0;
}
