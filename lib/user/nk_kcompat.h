/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel definitions lib/nk_msg.c uses, for building it in user
 * space (the engine, libvufront, the fuzz harnesses, and nk_msg_test.c
 * on cmocka with kunit/test.h).  The headers beside this one (linux/err.h,
 * linux/in.h, linux/in6.h, linux/socket.h,
 * linux/string.h, net/ipv6.h) stand in for the kernel's and include only
 * this file and glibc's; a build that puts -I lib/user first gets them
 * instead of the UAPI headers of the same names.
 *
 * Only what the kernel defines the same way belongs here: a helper that
 * behaved differently from the kernel's would make the user-space build
 * test something else than the modules run.
 */
#ifndef _NK_KCOMPAT_H
#define _NK_KCOMPAT_H

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef unsigned long long u64;	/* as the kernel's: %llu prints it */
typedef int32_t s32;
typedef long long s64;

#define __force
#define U16_MAX		((u16)~0U)
#define U8_MAX		((u8)~0U)
#define U32_MAX		((u32)~0U)
#define S32_MAX		((s32)(U32_MAX >> 1))
#define S32_MIN		((s32)(-S32_MAX - 1))
#define MAX_ERRNO	4095
#define SIN6_LEN_RFC2133	24

/* Constant expressions, as the kernel's, for static initialisers. */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define cpu_to_le16(x)	((__le16)(u16)(x))
#define cpu_to_le32(x)	((__le32)(u32)(x))
#define cpu_to_le64(x)	((__le64)(u64)(x))
#else
#define cpu_to_le16(x)	((__le16)__builtin_bswap16(x))
#define cpu_to_le32(x)	((__le32)__builtin_bswap32(x))
#define cpu_to_le64(x)	((__le64)__builtin_bswap64(x))
#endif
#define le16_to_cpu(x)	le16toh(x)
#define le32_to_cpu(x)	le32toh(x)
#define le64_to_cpu(x)	le64toh(x)

#define min(a, b)	({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a < _b ? _a : _b; })
#define max(a, b)	({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a > _b ? _a : _b; })
#define min_t(t, a, b)	({ t _a = (a); t _b = (b); _a < _b ? _a : _b; })

/* The first byte of @start not equal to @c, NULL if there is none. */
static inline void *memchr_inv(const void *start, int c, size_t bytes)
{
	const unsigned char *p = start;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (p[i] != (unsigned char)c)
			return (void *)(p + i);
	return NULL;
}

static inline bool ipv6_addr_v4mapped(const struct in6_addr *a)
{
	return IN6_IS_ADDR_V4MAPPED(a);
}

static inline bool ipv6_addr_loopback(const struct in6_addr *a)
{
	return IN6_IS_ADDR_LOOPBACK(a);
}

static inline void ipv6_addr_set_v4mapped(const __be32 addr, struct in6_addr *v4mapped)
{
	memset(v4mapped, 0, 10);
	v4mapped->s6_addr[10] = 0xff;
	v4mapped->s6_addr[11] = 0xff;
	memcpy(&v4mapped->s6_addr[12], &addr, 4);
}

#endif /* _NK_KCOMPAT_H */
