/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The part of a vhost-user message that the GET_CONFIG handler needs, and
 * the request numbers vhost.c looks at.
 *
 * DPDK 22.11 does not install its VhostUserMsg (lib/vhost/vhost_user.h):
 * rte_vhost hands pre_msg_handle a pointer to its struct vhu_msg_context,
 * whose first member is the message, laid out as the vhost-user
 * specification says (packed: request, flags, size, then the payload
 * union, which includes VhostUserConfig).  This mirrors only the header and
 * the config payload; the real union is larger, so every access below stays
 * inside the real message.  Re-check it when DPDK moves.
 */
#ifndef _HE_VHOST_MSG_H
#define _HE_VHOST_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>

#define HE_VHOST_USER_SET_MEM_TABLE	5
#define HE_VHOST_USER_GET_CONFIG	24
#define HE_VHOST_USER_MAX_CONFIG_SIZE	256

struct he_vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[HE_VHOST_USER_MAX_CONFIG_SIZE];
};

#define HE_VU_CONFIG_HDR_SIZE	offsetof(struct he_vu_config, region)

struct he_vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;		/* payload bytes that follow */
	union {
		uint64_t u64;
		struct he_vu_config cfg;
	} payload;
} __rte_packed;

_Static_assert(offsetof(struct he_vu_msg, request) == 0, "vhost-user request");
_Static_assert(offsetof(struct he_vu_msg, flags) == 4, "vhost-user flags");
_Static_assert(offsetof(struct he_vu_msg, size) == 8, "vhost-user size");
_Static_assert(offsetof(struct he_vu_msg, payload) == 12, "vhost-user payload");
_Static_assert(offsetof(struct he_vu_msg, payload.cfg.size) == 16, "config size");
_Static_assert(offsetof(struct he_vu_msg, payload.cfg.region) == 24, "config region");
_Static_assert(HE_VU_CONFIG_HDR_SIZE == 12, "config header");

#endif /* _HE_VHOST_MSG_H */
