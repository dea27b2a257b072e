// SPDX-License-Identifier: GPL-2.0
/*
 * nk_hold: hold one TCP connection open and say how it ended.
 *
 *   nk_hold ADDR PORT
 *
 * Connects to ADDR:PORT (IPv4 or IPv6), prints "connected", then reads
 * until the connection ends and prints "ended EOF" or "ended ERRNAME"
 * (for example "ended ECONNRESET") with the seconds it was held.  The
 * resilience tests run it in a guest and look at its last line after a
 * failure of a shared part.
 *
 *   nk_hold socket
 *
 * One socket(AF_INET, SOCK_STREAM) bound to 0.0.0.0:0, the call that
 * makes a NetKernel socket's socket on the NSM (socket() itself does not:
 * af_netkernel/nk_af.c, nk_sock_nsm()): prints "socket OK" or
 * "socket ERRNAME" (of socket() or bind()).
 *
 *   nk_hold accept PORT
 *
 * Listens on PORT (IPv4 wildcard), prints "listening", waits until a
 * connection is pending and prints "pending", then waits for SIGUSR1 and
 * calls accept() once: prints "accept OK" or "accept ERRNAME", and exits.
 * The resilience tests use both to give up a call whose reply is late.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static int say(const char *what, int ok)
{
	printf("%s %s\n", what, ok ? "OK" : strerrorname_np(errno));
	fflush(stdout);
	return !ok;
}

static int do_accept(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };
	struct pollfd pfd = { .events = POLLIN };
	sigset_t usr1, old;
	int fd;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	signal(SIGUSR1, on_usr1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 8) < 0)
		return say("listen", 0);
	say("listening", 1);
	pfd.fd = fd;
	if (poll(&pfd, 1, -1) != 1)
		return say("poll", 0);
	say("pending", 1);
	while (!go)
		sigsuspend(&old);
	return say("accept", accept(fd, NULL, NULL) >= 0);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct timespec t0, t1;
	char buf[4096];
	ssize_t n;
	int fd;

	if (argc == 2 && !strcmp(argv[1], "socket")) {
		struct sockaddr_in any = { .sin_family = AF_INET };

		fd = socket(AF_INET, SOCK_STREAM, 0);
		return say("socket", fd >= 0 &&
			   !bind(fd, (struct sockaddr *)&any, sizeof(any)));
	}
	if (argc == 3 && !strcmp(argv[1], "accept"))
		return do_accept(atoi(argv[2]));
	if (argc != 3) {
		fprintf(stderr, "usage: nk_hold ADDR PORT | socket | accept PORT\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(atoi(argv[2]));
	} else if (inet_pton(AF_INET6, argv[1], &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(atoi(argv[2]));
	} else {
		fprintf(stderr, "nk_hold: %s: not an address\n", argv[1]);
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		printf("connect %s\n", strerrorname_np(errno));
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("ended %s after %ld s\n", n ? strerrorname_np(errno) : "EOF",
	       (long)(t1.tv_sec - t0.tv_sec));
	return 0;
}
