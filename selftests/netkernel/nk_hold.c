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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct timespec t0, t1;
	char buf[4096];
	ssize_t n;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: nk_hold ADDR PORT\n");
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
