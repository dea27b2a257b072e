// SPDX-License-Identifier: GPL-2.0
/*
 * nk_stall: non-blocking calls while the nk requestq is full.
 *
 *   nk_stall ADDR PORT BYTES GOFILE LPORT [CONNS]
 *
 * Listens on 0.0.0.0:LPORT (non-blocking), makes CONNS (default 1)
 * connections to ADDR:PORT (IPv4), one after the other, waits until BYTES
 * bytes from the peer are queued unread on the first and a connection
 * waits on the listener, prints "ready", then waits for GOFILE to exist
 * (the test has stopped the host engine meanwhile, so nothing takes the
 * guest's requestqs any more).  Then, timing each call:
 *
 *   - 400 one-byte send(MSG_DONTWAIT)s on each connection: the requestq
 *     (256 entries) of its queue pair fills.  A socket goes out on the
 *     queue pair its id names, and a guest CPU with several pairs takes
 *     them in turn for the sockets it makes, so on a guest of one vCPU
 *     with N pairs, N connections made after the listener fill every
 *     pair's requestq, the listener's too;
 *   - a thread's setsockopt(TCP_NODELAY) on the first, forwarded to the
 *     NSM, which waits for the ring: meanwhile recv(MSG_DONTWAIT) until
 *     EAGAIN (consuming BYTES owes the peer a CREDIT, which finds the ring
 *     full); then a signal (no SA_RESTART) to the thread, which ends its
 *     wait;
 *   - accept() on the listener, which the ACCEPT request cannot leave;
 *   - close() of the first.
 *
 * and prints "send ok=N eagain=M full=F max_ms=T" (F: the connections
 * whose sends met EAGAIN), "recv bytes=N ms=T", "sockopt ERRNAME ms=T" (T
 * from the signal), "accept ERRNAME ms=T", "close ms=T" and "done".  A
 * call that waits for ring space, or for the socket lock of one that
 * does, shows as a time as long as the engine stays stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define NK_STALL_CONNS_MAX	16

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static int opt_fd, opt_err;
static long opt_end;

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void *sockopt_thread(void *arg)
{
	int one = 1;

	(void)arg;
	opt_err = setsockopt(opt_fd, IPPROTO_TCP, TCP_NODELAY, &one,
			     sizeof(one)) ? errno : 0;
	opt_end = now_ms();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	pthread_t th;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in loc = { .sin_family = AF_INET };
	long t0, t, max_ms = 0, got = 0;
	int fds[NK_STALL_CONNS_MAX];
	int fd, lfd, c, i, k, n, ok = 0, eagain = 0, full = 0, want, conns = 1;
	bool met;
	struct pollfd p;
	static char buf[65536];
	ssize_t r;

	if (argc == 7)
		conns = atoi(argv[6]);
	if (argc < 6 || argc > 7 || conns < 1 || conns > NK_STALL_CONNS_MAX ||
	    inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
		fprintf(stderr, "usage: nk_stall ADDR PORT BYTES GOFILE LPORT [CONNS]\n");
		return 2;
	}
	sin.sin_port = htons(atoi(argv[2]));
	want = atoi(argv[3]);
	loc.sin_port = htons(atoi(argv[5]));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&loc, sizeof(loc)) ||
	    listen(lfd, 8)) {
		printf("listen %s\n", strerrorname_np(errno));
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (k = 0; k < conns; k++) {
		fds[k] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[k] < 0 ||
		    connect(fds[k], (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			printf("connect %s\n", strerrorname_np(errno));
			return 1;
		}
	}
	fd = fds[0];
	for (i = 0;; i++) {
		if (ioctl(fd, FIONREAD, &n) < 0 || i > 2000) {
			printf("queued %d of %d\n", n, want);
			return 1;
		}
		p = (struct pollfd){ .fd = lfd, .events = POLLIN };
		if (n >= want && poll(&p, 1, 0) == 1)
			break;
		usleep(10000);
	}
	printf("ready\n");
	fflush(stdout);
	for (i = 0; access(argv[4], F_OK); i++) {
		if (i > 6000)
			return 1;
		usleep(10000);
	}

	for (k = 0; k < conns; k++) {
		met = false;
		for (i = 0; i < 400; i++) {
			t0 = now_ms();
			r = send(fds[k], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			t = now_ms() - t0;
			if (t > max_ms)
				max_ms = t;
			if (r == 1) {
				ok++;
			} else if (errno == EAGAIN) {
				eagain++;
				met = true;
			} else {
				printf("send %s\n", strerrorname_np(errno));
			}
		}
		full += met;
	}
	printf("send ok=%d eagain=%d full=%d max_ms=%ld\n", ok, eagain, full,
	       max_ms);
	fflush(stdout);

	sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART */
	opt_fd = fd;
	pthread_create(&th, NULL, sockopt_thread, NULL);
	usleep(50000);
	t0 = now_ms();
	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		got += r;
	t = now_ms() - t0;
	printf("recv bytes=%ld ms=%ld%s%s\n", got, t, r < 0 ? " " : "",
	       r < 0 ? strerrorname_np(errno) : "");
	fflush(stdout);
	t0 = now_ms();
	pthread_kill(th, SIGUSR1);
	pthread_join(th, NULL);
	printf("sockopt %s ms=%ld\n", opt_err ? strerrorname_np(opt_err) : "OK",
	       opt_end - t0);
	fflush(stdout);

	t0 = now_ms();
	c = accept(lfd, NULL, NULL);
	printf("accept %s ms=%ld\n", c < 0 ? strerrorname_np(errno) : "OK",
	       now_ms() - t0);
	fflush(stdout);

	t0 = now_ms();
	close(fd);
	printf("close ms=%ld\n", now_ms() - t0);
	printf("done\n");
	return 0;
}
