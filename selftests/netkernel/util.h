/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nk_sockets helpers: the per-case context, assertions that end the case,
 * the control channel, socket and data-pattern helpers.
 *
 * Every test case runs in a child process of its own on each side (see
 * run_side() in nk_sockets.c): an assertion that fails reports where and why
 * and ends that child, never the whole run.
 */
#ifndef NK_SELFTEST_UTIL_H
#define NK_SELFTEST_UTIL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Exit codes of a case's child process, as kselftest's KSFT_*. */
#define CASE_PASS	0
#define CASE_FAIL	1
#define CASE_SKIP	4

#define CTL_LINE_MAX	256

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

/* The kernel's attribute macros (include/linux/compiler_attributes.h). */
#define NK_ATTRIBUTE(x)	__attribute__(x)
#ifndef __printf
#define __printf(a, b)	NK_ATTRIBUTE((format(printf, a, b)))
#endif
#ifndef __noreturn
#define __noreturn	NK_ATTRIBUTE((noreturn))
#endif

/* What one side of one test case knows. */
struct ctx {
	int ctl;			/* control connection */
	bool client;			/* --mode=client: the side under test */
	bool passive;			/* the client listens (".passive") */
	bool netkernel;			/* this side runs on NetKernel */
	struct sockaddr_in peer;	/* the other side's IPv4 address */
	struct sockaddr_in self;	/* ours, as the other side sees it */
	bool have_peer6;
	struct sockaddr_in6 peer6;	/* the server's IPv6 address (--server6) */
	const char *name;		/* the case, for diagnostics */
	int resfd;			/* the reason pipe to our parent */
};

extern struct ctx *cur;		/* the context of the running case */
extern int io_timeout_ms;	/* bound of every blocking wait */
extern const char *step;	/* what the case is doing (for timeouts) */

__noreturn __printf(2, 3) void fail_at(int line, const char *fmt, ...);
__noreturn __printf(1, 2) void skip_case(const char *fmt, ...);
__printf(1, 2) void diag(const char *fmt, ...);

#define FAIL(...)	fail_at(__LINE__, __VA_ARGS__)
#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)
/* @ret must be >= 0; otherwise fail with errno. */
#define CHECK_OK(ret, what) \
	CHECK((ret) >= 0, "%s: %m", (what))
/* @ret must be -1 with errno @err. */
#define CHECK_ERR(ret, err, what) \
	check_err_at(__LINE__, (long)(ret), (err), #err, (what))
/* @ret must equal @want. */
#define CHECK_RET(ret, want, what) \
	check_ret_at(__LINE__, (long)(ret), (long)(want), (what))

void check_err_at(int line, long ret, int err, const char *ename,
		  const char *what);
void check_ret_at(int line, long ret, long want, const char *what);

/* Time. */
long long now_ms(void);
void sleep_ms(int ms);

/* The control channel: one text line per message. */
__printf(1, 2) void ctl_send(const char *fmt, ...);
void ctl_recv(char *buf, size_t size);
void ctl_expect(const char *line);
long ctl_recv_long(const char *key);
int ctl_raw_send(int fd, const char *line);
int ctl_raw_recv(int fd, char *buf, size_t size, int timeout_ms);

/* Waiting. */
short wait_fd(int fd, short events, int timeout_ms);
short wait_ev(int fd, short events);

/* Addresses. */
struct sockaddr_in sin4(struct in_addr addr, uint16_t port);
const char *addr_str(const void *sa);
bool same_addr(const void *a, const void *b);
struct sockaddr_in sock_name4(int fd, bool peer);

/* Sockets; all of these fail the case on error. */
int xsocket(int family, int type);
int tcp_listener(int family, uint16_t *port);
int tcp_connect(const void *sa);
int accept_wait(int lfd, void *sa);
int pair_open(void);
void set_nonblock(int fd, bool on);
int get_int_opt(int fd, int level, int name);
void set_int_opt(int fd, int level, int name, int val);
void send_all(int fd, const void *buf, size_t len);
void recv_all(int fd, void *buf, size_t len);
void expect_eof(int fd);

/* A reproducible byte stream, for data integrity. */
struct pstream {
	uint64_t seed;
	uint64_t off;
	uint32_t crc;
};

void ps_init(struct pstream *ps, uint64_t seed);
void ps_fill(struct pstream *ps, uint8_t *buf, size_t len);
void ps_check(struct pstream *ps, const uint8_t *buf, size_t len);
ssize_t ps_send(int fd, struct pstream *ps, size_t len, int flags);
void ps_recv(int fd, struct pstream *ps, uint64_t len);
uint64_t fill_sndbuf(int fd, struct pstream *ps);
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

#endif /* NK_SELFTEST_UTIL_H */
