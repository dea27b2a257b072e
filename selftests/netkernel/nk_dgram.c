// SPDX-License-Identifier: GPL-2.0
/*
 * nk_dgram: a bound UDP socket and a TCP listener that outlive a failure.
 *
 *   nk_dgram SERVER PORT LPORT FIFO
 *
 * Binds a UDP socket and a TCP listener to 0.0.0.0:LPORT (IPv4), prints
 * "ready", then runs the commands it reads from FIFO (opened read-write,
 * so writers may come and go), one a line, printing what each saw:
 *
 *   probe     sendto(SERVER:PORT) once ("sendto OK" or "sendto ERRNAME",
 *             with its time), the SIGPIPEs seen so far ("sigpipe N"), then
 *             two recvfrom()s with a 300 ms SO_RCVTIMEO ("recv N" or
 *             "recv ERRNAME"; nothing arrives, so EAGAIN is right)
 *   echo S    every 200 ms, sendto(SERVER:PORT) and wait 200 ms for an
 *             answer, for up to S seconds: "echo ok after T ms" or
 *             "echo fail ERRNAME"
 *   accept S  accept() on the listener (poll()ed, retried after an
 *             error) for up to S seconds: "accept ok after T ms" or
 *             "accept fail ERRNAME"
 *   quit
 *
 * Each command's output ends with "end CMD".
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sys/socket.h>

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static void rcvtimeo(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static const char *ename(int err)
{
	return strerrorname_np(err) ?: "?";
}

static void probe(int u, const struct sockaddr_in *srv)
{
	char buf[64];
	long t0 = now_ms();
	ssize_t r;
	int i;

	r = sendto(u, "probe", 5, 0, (const struct sockaddr *)srv, sizeof(*srv));
	printf("sendto %s ms=%ld\n", r == 5 ? "OK" : ename(errno), now_ms() - t0);
	printf("sigpipe %d\n", (int)sigpipes);
	rcvtimeo(u, 300);
	for (i = 0; i < 2; i++) {
		r = recvfrom(u, buf, sizeof(buf), 0, NULL, NULL);
		if (r < 0)
			printf("recv %s\n", ename(errno));
		else
			printf("recv %zd\n", r);
	}
}

static void echo(int u, const struct sockaddr_in *srv, int secs)
{
	long t0 = now_ms();
	int err = 0;
	char buf[64];
	ssize_t r;

	rcvtimeo(u, 200);
	while (now_ms() - t0 < secs * 1000L) {
		r = sendto(u, "ping", 4, 0, (const struct sockaddr *)srv,
			   sizeof(*srv));
		if (r != 4) {
			err = errno;
			usleep(200000);
			continue;
		}
		r = recvfrom(u, buf, sizeof(buf), 0, NULL, NULL);
		if (r == 4 && !memcmp(buf, "ping", 4)) {
			printf("echo ok after %ld ms\n", now_ms() - t0);
			return;
		}
		err = r < 0 ? errno : EBADMSG;
	}
	printf("echo fail %s\n", err ? ename(err) : "timeout");
}

static void do_accept(int l, int secs)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	long t0 = now_ms(), left;
	int c, err = 0;

	while ((left = secs * 1000L - (now_ms() - t0)) > 0) {
		if (poll(&p, 1, left) <= 0)
			break;
		c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		if (c >= 0) {
			close(c);
			printf("accept ok after %ld ms\n", now_ms() - t0);
			return;
		}
		if (errno != EAGAIN) {
			if (!err)
				printf("accept error %s\n", ename(errno));
			err = errno;
			usleep(100000);
		}
	}
	printf("accept fail %s\n", err ? ename(err) : "timeout");
}

int main(int argc, char **argv)
{
	struct sockaddr_in srv = { .sin_family = AF_INET };
	struct sockaddr_in loc = { .sin_family = AF_INET };
	char line[128];
	FILE *in;
	int u, l, one = 1;

	if (argc != 5 || inet_pton(AF_INET, argv[1], &srv.sin_addr) != 1) {
		fprintf(stderr, "usage: nk_dgram SERVER PORT LPORT FIFO\n");
		return 2;
	}
	srv.sin_port = htons(atoi(argv[2]));
	loc.sin_port = htons(atoi(argv[3]));
	signal(SIGPIPE, on_sigpipe);
	setvbuf(stdout, NULL, _IOLBF, 0);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (u < 0 || l < 0 ||
	    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(u, (struct sockaddr *)&loc, sizeof(loc)) ||
	    bind(l, (struct sockaddr *)&loc, sizeof(loc)) || listen(l, 8)) {
		printf("setup %s\n", ename(errno));
		return 1;
	}
	in = fopen(argv[4], "r+");
	if (!in) {
		printf("fifo %s\n", ename(errno));
		return 1;
	}
	printf("ready\n");
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, "probe"))
			probe(u, &srv);
		else if (!strncmp(line, "echo ", 5))
			echo(u, &srv, atoi(line + 5));
		else if (!strncmp(line, "accept ", 7))
			do_accept(l, atoi(line + 7));
		else if (!strcmp(line, "quit"))
			break;
		printf("end %s\n", line);
	}
	return 0;
}
