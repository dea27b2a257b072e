// SPDX-License-Identifier: GPL-2.0
/*
 * nk_diagreq: sock_diag requests, good and bad, and how the kernel
 * answers each; one line per request:
 *
 *   NAME: ok             a dump that ended with NLMSG_DONE
 *   NAME: ERRNAME        the request failed (for example ENOENT)
 *
 * programs.sh runs it in the NetKernel guest and in the baseline guest:
 * af_netkernel.ko's wrapped inet_diag handlers (af_netkernel/nk_diag.c)
 * must answer every request as the kernel's own do, so both print the
 * same lines.  Record counts are not printed: the guests hold different
 * sockets.  Exits 0 when every request got an answer, 1 otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#define BUF_SIZE	65536
#define BIG_FILTER	60000	/* bytes of bytecode: more than any valid filter */

struct req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
	unsigned char attrs[BIG_FILTER + 64];
};

static const char *errname(int err)
{
	switch (err) {
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EPERM: return "EPERM";
	case EMSGSIZE: return "EMSGSIZE";
	case ENOMEM: return "ENOMEM";
	default: return strerror(err);
	}
}

/* Append an INET_DIAG_REQ_BYTECODE attribute of @len bytes at @at. */
static size_t put_bytecode(unsigned char *at, const void *bc, size_t len)
{
	struct nlattr *nla = (struct nlattr *)at;

	nla->nla_len = NLA_HDRLEN + len;
	nla->nla_type = INET_DIAG_REQ_BYTECODE;
	memcpy(at + NLA_HDRLEN, bc, len);
	return NLA_ALIGN(nla->nla_len);
}

/*
 * Send @q (its nlh.nlmsg_len set) and read the answer: 0 for a dump that
 * ended with NLMSG_DONE or an exact answer, a positive errno otherwise,
 * -1 if there was no answer at all.
 */
static int ask(struct req *q, int flags)
{
	static unsigned char buf[BUF_SIZE];
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 10 };
	struct nlmsghdr *h;
	int fd, ret = -1;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		perror("socket(NETLINK_SOCK_DIAG)");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	q->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q->nlh.nlmsg_flags = NLM_F_REQUEST | flags;
	q->nlh.nlmsg_seq = 1;
	if (sendto(fd, q, q->nlh.nlmsg_len, 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0) {
		ret = errno;
		goto out;
	}
	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			perror("recv");
			goto out;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				ret = 0;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				ret = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
				goto out;
			}
			if (!(flags & NLM_F_DUMP)) {
				ret = 0;
				goto out;
			}
		}
	}
out:
	close(fd);
	return ret;
}

static struct req *new_req(int family, int proto)
{
	static struct req q;

	memset(&q, 0, sizeof(q));
	q.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(q.r));
	q.r.sdiag_family = family;
	q.r.sdiag_protocol = proto;
	q.r.idiag_states = ~0U;
	return &q;
}

static int report(const char *name, int ret)
{
	if (ret < 0) {
		printf("%s: no answer\n", name);
		return 1;
	}
	printf("%s: %s\n", name, ret ? errname(ret) : "ok");
	return 0;
}

int main(void)
{
	struct inet_diag_bc_op bad_jump[2] = {
		{ .code = INET_DIAG_BC_JMP, .yes = 4, .no = 64 },
		{ .code = INET_DIAG_BC_NOP, .yes = 4, .no = 8 },
	};
	struct inet_diag_bc_op *big;
	struct req *q;
	int fail = 0, i;

	q = new_req(AF_INET, IPPROTO_TCP);
	fail |= report("tcp4 dump", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET6, IPPROTO_TCP);
	fail |= report("tcp6 dump", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET, IPPROTO_UDP);
	fail |= report("udp4 dump", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET6, IPPROTO_UDP);
	fail |= report("udp6 dump", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET, IPPROTO_TCP);
	q->r.idiag_states = 0;
	fail |= report("tcp4 dump, no state", ask(q, NLM_F_DUMP));

	q = new_req(AF_INET, 253);
	fail |= report("unknown protocol 253", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET, IPPROTO_SCTP);
	fail |= report("protocol sctp", ask(q, NLM_F_DUMP));
	q = new_req(200, IPPROTO_TCP);
	fail |= report("unknown family 200", ask(q, NLM_F_DUMP));
	q = new_req(19, IPPROTO_TCP);
	fail |= report("family 19 (AF_NETKERNEL)", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET, IPPROTO_TCP);
	q->nlh.nlmsg_len = NLMSG_LENGTH(sizeof(q->r) - 8);
	fail |= report("short request", ask(q, NLM_F_DUMP));

	q = new_req(AF_INET, IPPROTO_TCP);
	q->nlh.nlmsg_len += put_bytecode(q->attrs, bad_jump, sizeof(bad_jump));
	fail |= report("filter jumping out", ask(q, NLM_F_DUMP));

	big = calloc(BIG_FILTER / sizeof(*big), sizeof(*big));
	if (!big)
		return 1;
	for (i = 0; i < (int)(BIG_FILTER / sizeof(*big)); i++)
		big[i] = (struct inet_diag_bc_op){ INET_DIAG_BC_NOP, 4, 8 };
	q = new_req(AF_INET, IPPROTO_TCP);
	q->nlh.nlmsg_len += put_bytecode(q->attrs, big, BIG_FILTER);
	fail |= report("oversized filter", ask(q, NLM_F_DUMP));
	q = new_req(AF_INET, IPPROTO_UDP);
	q->nlh.nlmsg_len += put_bytecode(q->attrs, big, BIG_FILTER);
	fail |= report("oversized filter, udp", ask(q, NLM_F_DUMP));
	free(big);

	q = new_req(AF_INET, IPPROTO_TCP);
	fail |= report("exact, no such socket", ask(q, 0));
	q = new_req(AF_INET, IPPROTO_UDP);
	fail |= report("exact udp, no such socket", ask(q, 0));
	return fail;
}
