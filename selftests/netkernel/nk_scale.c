// SPDX-License-Identifier: GPL-2.0
/*
 * nk_scale: many TCP connections, for the scale runs (scale.sh).
 *
 *   nk_scale serve ADDR PORT
 *       Accepts every connection and closes it when the peer does; with
 *       --close-first it closes each connection as soon as it is accepted
 *       (so that the server side, not the client, keeps TIME_WAIT).
 *   nk_scale hold ADDR PORT N SECONDS
 *       Opens N connections at once (non-blocking connects, at most 256
 *       in progress), holds them SECONDS, closes them.
 *   nk_scale cycles ADDR PORT N
 *       N connect/close cycles, one after the other, each waiting for the
 *       server's close.
 *   nk_scale cycles-cf ADDR PORT NPORTS N
 *       N connect/close cycles where the client closes first (so that the
 *       client side keeps TIME_WAIT), to ports PORT .. PORT + NPORTS - 1
 *       in turn: as native Linux, connect() shares a local port among
 *       different destinations, so N may exceed the ephemeral ports.
 *
 * The client modes print one line, "established N failed N rate R/s" and
 * for each errno seen "errno NAME COUNT", and exit 0 only when every
 * connection was established.  File limits are raised as far as allowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

static struct sockaddr_storage peer;
static socklen_t peer_len;
static unsigned long errs[512];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void parse_addr(const char *ip, const char *port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&peer;
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;

	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(atoi(port));
		peer_len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(atoi(port));
		peer_len = sizeof(*sin6);
	} else {
		fprintf(stderr, "nk_scale: %s: not an address\n", ip);
		exit(2);
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max = 1 << 20;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
}

static void count_err(int e)
{
	errs[e < 0 || e >= 512 ? 0 : e]++;
}

static int report(unsigned long ok, unsigned long failed, double secs)
{
	unsigned int e;

	printf("established %lu failed %lu rate %.0f/s\n", ok, failed,
	       secs > 0 ? ok / secs : 0.0);
	for (e = 0; e < 512; e++)
		if (errs[e])
			printf("errno %s %lu\n", e ? strerrorname_np(e) : "?", errs[e]);
	return failed ? 1 : 0;
}

static int serve(bool close_first)
{
	struct epoll_event ev, evs[256];
	int lfd, ep, one = 1, i, n;
	char buf[4096];

	lfd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&peer, peer_len) ||
	    listen(lfd, 4096)) {
		perror("nk_scale serve");
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if (close_first) {
						close(fd);
						continue;
					}
					ev.events = EPOLLIN;
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (read(fd, buf, sizeof(buf)) <= 0)
				close(fd);
		}
	}
}

static int hold(unsigned long n, unsigned int secs)
{
	unsigned long ok = 0, failed = 0, started = 0, inflight = 0, i;
	struct epoll_event ev, evs[256];
	int *fds = calloc(n, sizeof(int));
	double t0 = now();
	int ep = epoll_create1(0), k, m;

	while (ok + failed < n) {
		while (started < n && inflight < 256) {
			int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

			if (fd < 0) {
				count_err(errno);
				failed++;
				started++;
				continue;
			}
			if (connect(fd, (struct sockaddr *)&peer, peer_len) && errno != EINPROGRESS) {
				count_err(errno);
				failed++;
				close(fd);
				started++;
				continue;
			}
			fds[started] = fd;
			ev.events = EPOLLOUT;
			ev.data.u64 = started++;
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			inflight++;
		}
		m = epoll_wait(ep, evs, 256, 30000);
		if (m <= 0)
			break;
		for (k = 0; k < m; k++) {
			int fd = fds[evs[k].data.u64], err = 0;
			socklen_t len = sizeof(err);

			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			inflight--;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err) {
				count_err(err);
				failed++;
				close(fd);
				fds[evs[k].data.u64] = -1;
			} else {
				ok++;
			}
		}
	}
	if (ok + failed < n)	/* connects that never completed */
		errs[ETIMEDOUT] += n - ok - failed;
	failed = n - ok;
	k = report(ok, failed, now() - t0);
	fflush(stdout);
	sleep(secs);
	for (i = 0; i < n; i++)
		if (fds[i] > 0)
			close(fds[i]);
	return k;
}

static int cycles(unsigned long n)
{
	unsigned long ok = 0, failed = 0, i;
	double t0 = now();
	char c;

	for (i = 0; i < n; i++) {
		int fd = socket(peer.ss_family, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&peer, peer_len)) {
			count_err(errno);
			failed++;
		} else {
			/* the server closes first: EOF */
			if (read(fd, &c, 1) != 0) {
				count_err(errno);
				failed++;
			} else {
				ok++;
			}
		}
		if (fd >= 0)
			close(fd);
	}
	return report(ok, failed, now() - t0);
}

static int cycles_client_first(unsigned long nports, unsigned long n)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&peer;
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
	in_port_t *pp = peer.ss_family == AF_INET6 ? &sin6->sin6_port :
						      &sin->sin_port;
	int port = ntohs(*pp);
	unsigned long ok = 0, failed = 0, i;
	double t0 = now();

	for (i = 0; i < n; i++) {
		int fd = socket(peer.ss_family, SOCK_STREAM, 0);

		*pp = htons(port + i % (nports ?: 1));
		if (fd < 0 || connect(fd, (struct sockaddr *)&peer, peer_len)) {
			count_err(errno);
			failed++;
		} else {
			ok++;
		}
		if (fd >= 0)
			close(fd);
	}
	return report(ok, failed, now() - t0);
}

int main(int argc, char **argv)
{
	bool close_first = argc > 4 && !strcmp(argv[4], "--close-first");

	if (argc < 4)
		goto usage;
	raise_nofile();
	parse_addr(argv[2], argv[3]);
	if (!strcmp(argv[1], "serve"))
		return serve(close_first);
	if (!strcmp(argv[1], "hold") && argc == 6)
		return hold(strtoul(argv[4], NULL, 0), atoi(argv[5]));
	if (!strcmp(argv[1], "cycles") && argc == 5)
		return cycles(strtoul(argv[4], NULL, 0));
	if (!strcmp(argv[1], "cycles-cf") && argc == 6)
		return cycles_client_first(strtoul(argv[4], NULL, 0),
					   strtoul(argv[5], NULL, 0));
usage:
	fprintf(stderr, "usage: nk_scale serve ADDR PORT [--close-first]\n"
		"       nk_scale hold ADDR PORT N SECONDS\n"
		"       nk_scale cycles ADDR PORT N\n"
		"       nk_scale cycles-cf ADDR PORT NPORTS N\n");
	return 2;
}
