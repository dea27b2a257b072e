// SPDX-License-Identifier: GPL-2.0
/*
 * nk_tenancy: the socket calls of tenancy.sh, one static binary for the
 * world, the NSM and the guests.  Each command makes its calls and prints
 * one line with what they returned (errno names, counts); the script
 * decides what is right, so this program does not know what it tests.
 *
 *   nk_tenancy bind ADDR PORT [v6only] [reuseport] [hold SECS]
 *       A TCP socket bound to ADDR:PORT (and listening, if held): "ok" or
 *       the errno name.  With hold, it stays open SECS seconds.
 *   nk_tenancy connect ADDR PORT [recv SECS]
 *       A TCP connect (5 s at most): "ok" or the errno name.  With recv,
 *       once connected it writes one line and waits up to SECS seconds in
 *       recv(), then prints "recv " and what recv() gave: the errno name,
 *       "eof", or "data".
 *   nk_tenancy conns ADDR PORT N
 *       N TCP connects (5 s each at most), one after the other, each
 *       socket closed once it is answered: "ok K" and, for each errno
 *       met, "ERRNO COUNT", in the order first met.
 *   nk_tenancy sendto ADDR PORT [broadcast]
 *       One UDP datagram: "ok" or the errno name, of sendto() or else of
 *       the error the socket reports within 2 s (see pending_error()).
 *       ADDR may carry a numeric %scope.
 *   nk_tenancy socks N [hold SECS]
 *       Opens up to N TCP sockets, each bound to 0.0.0.0:0 (so that the
 *       NSM has it: a NetKernel socket gets its socket there on first
 *       need): "opened K FIRST-ERRNO|none".  With hold, it keeps them SECS
 *       seconds (or until killed), trying one more every 20 ms meanwhile.
 *   nk_tenancy sink PORT
 *       Accepts TCP connections on PORT (IPv4) and never reads them (a
 *       tiny receive buffer: the peers see a zero window).  Until killed.
 *   nk_tenancy source PORT
 *       Accepts TCP connections on PORT (IPv4) and writes to each, from a
 *       process of its own, as fast as it takes, until the peer goes.
 *       Until killed.
 *   nk_tenancy drain ADDR PORT SECS
 *       A TCP connect, then reads everything for SECS seconds: "drain
 *       BYTES", or the errno name of the connect or of a read.
 *   nk_tenancy fill ADDR PORT N
 *       N times: connect, write without blocking until the socket takes
 *       nothing for 500 ms, close.  Prints "fill N connected K bytes B
 *       errors E" (E: connects and writes that failed otherwise).
 *   nk_tenancy burst ADDR PORT N TAG GOFILE
 *       A UDP socket sends "TAG warm" (which makes its NSM socket) and
 *       prints "ready"; once GOFILE exists (60 s at most), N datagrams
 *       "TAG I", one sendto() each, I from 1: "sent N" or the errno name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
	return e ? strerrorname_np(e) ?: "?" : "ok";
}

/* ADDR[%scope] and PORT into @ss; the family is ADDR's. */
static socklen_t parse_addr(const char *addr, const char *port,
			    struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char buf[INET6_ADDRSTRLEN + 16];
	char *pct;

	memset(ss, 0, sizeof(*ss));
	snprintf(buf, sizeof(buf), "%s", addr);
	pct = strchr(buf, '%');
	if (pct)
		*pct++ = 0;
	if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(atoi(port));
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(atoi(port));
		s6->sin6_scope_id = pct ? atoi(pct) : 0;
		return sizeof(*s6);
	}
	fprintf(stderr, "nk_tenancy: bad address %s\n", addr);
	exit(2);
}

static int setopt(int fd, int level, int name)
{
	int one = 1;

	return setsockopt(fd, level, name, &one, sizeof(one)) ? errno : 0;
}

static int cmd_bind(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	int fd, err = 0, hold = 0, i;

	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		err = errno;
	for (i = 2; i < argc && !err; i++) {
		if (!strcmp(argv[i], "v6only"))
			err = setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY);
		else if (!strcmp(argv[i], "reuseport"))
			err = setopt(fd, SOL_SOCKET, SO_REUSEPORT);
		else if (!strcmp(argv[i], "hold") && i + 1 < argc)
			hold = atoi(argv[++i]);
	}
	if (!err && bind(fd, (struct sockaddr *)&ss, len))
		err = errno;
	if (!err && hold && listen(fd, 8))
		err = errno;
	printf("%s\n", ename(err));
	fflush(stdout);
	if (!err && hold)
		sleep(hold);
	return 0;
}

static int cmd_connect(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	struct timeval tv = { .tv_sec = 5 };
	int fd, err = 0;
	char c;
	ssize_t n;

	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		err = errno;
	if (!err)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!err && connect(fd, (struct sockaddr *)&ss, len))
		err = errno;
	printf("%s\n", ename(err));
	fflush(stdout);
	if (err || argc < 4 || strcmp(argv[2], "recv"))
		return 0;
	tv.tv_sec = atoi(argv[3]);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, "hello\n", 6) != 6)
		printf("write %s\n", ename(errno));
	n = recv(fd, &c, 1, 0);
	printf("recv %s\n", n < 0 ? ename(errno) : n ? "data" : "eof");
	return 0;
}

static int cmd_conns(char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	struct timeval tv = { .tv_sec = 5 };
	int n = atoi(argv[2]), i, j, nerr = 0, ok = 0, fd, err;
	int errs[8], counts[8];

	for (i = 0; i < n; i++) {
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		err = fd < 0 ? errno : 0;
		if (!err)
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (!err && connect(fd, (struct sockaddr *)&ss, len))
			err = errno;
		if (fd >= 0)
			close(fd);
		if (!err) {
			ok++;
			continue;
		}
		for (j = 0; j < nerr && errs[j] != err; j++)
			;
		if (j == nerr && nerr < 8)
			errs[nerr++] = err, counts[j] = 0;
		if (j < nerr)
			counts[j]++;
	}
	printf("ok %d", ok);
	for (j = 0; j < nerr; j++)
		printf(" %s %d", ename(errs[j]), counts[j]);
	printf("\n");
	return 0;
}

/*
 * The error a datagram that was sent raised later: NetKernel reports a
 * SEND the NSM refused as the socket's pending error (POLLERR).  Waits
 * 2 s for it.
 */
static int pending_error(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	socklen_t len = sizeof(int);
	int err = 0;

	if (poll(&p, 1, 2000) > 0 && (p.revents & POLLERR) &&
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	return err;
}

static int cmd_sendto(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	int fd, err = 0;

	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		err = errno;
	if (!err && argc > 2 && !strcmp(argv[2], "broadcast"))
		err = setopt(fd, SOL_SOCKET, SO_BROADCAST);
	if (!err && sendto(fd, "nk", 2, 0, (struct sockaddr *)&ss, len) < 0)
		err = errno;
	if (!err)
		err = pending_error(fd);
	printf("%s\n", ename(err));
	return 0;
}

/*
 * A TCP socket bound to the wildcard: the bind makes the NSM's socket
 * (nk_af.c: lazily).  0, or the errno; a socket that failed is closed.
 */
static int open_bound(void)
{
	struct sockaddr_in any = { .sin_family = AF_INET };
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	if (!bind(fd, (struct sockaddr *)&any, sizeof(any)))
		return 0;
	err = errno;
	close(fd);
	return err;
}

static int cmd_socks(int argc, char **argv)
{
	int n = atoi(argv[0]), k, err = 0;
	time_t end;

	for (k = 0; k < n; k++) {
		err = open_bound();
		if (err)
			break;
	}
	printf("opened %d %s\n", k, err ? ename(err) : "none");
	if (argc < 3 || strcmp(argv[1], "hold"))
		return 0;
	end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end) {
		usleep(20000);
		open_bound();
	}
	return 0;
}

static int cmd_sink(char **argv)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(atoi(argv[0])),
	};
	int fd, small = 4096;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setopt(fd, SOL_SOCKET, SO_REUSEADDR);
	/* Inherited by the accepted sockets: the window closes at once. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(fd, 128)) {
		perror("nk_tenancy sink");
		return 1;
	}
	for (;;) {
		/* Kept open, never read. */
		if (accept(fd, NULL, NULL) < 0 && errno != EINTR &&
		    errno != ECONNABORTED) {
			perror("nk_tenancy sink: accept");
			sleep(1);
		}
	}
}

static int cmd_source(char **argv)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(atoi(argv[0])),
	};
	static char buf[65536];
	int fd, c;

	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	memset(buf, 'x', sizeof(buf));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setopt(fd, SOL_SOCKET, SO_REUSEADDR);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(fd, 16)) {
		perror("nk_tenancy source");
		return 1;
	}
	for (;;) {
		c = accept(fd, NULL, NULL);
		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				sleep(1);
			continue;
		}
		if (fork() == 0) {
			close(fd);
			while (write(c, buf, sizeof(buf)) > 0)
				;
			_exit(0);
		}
		close(c);
	}
}

static int cmd_drain(char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	struct timeval tv = { .tv_sec = 1 };
	static char buf[131072];
	long long bytes = 0;
	time_t end;
	int fd, err = 0;
	ssize_t n;

	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len)) {
		printf("%s\n", ename(errno));
		return 0;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			err = errno;
			break;
		}
		if (n == 0) {
			err = ECONNRESET;
			break;
		}
		if (n > 0)
			bytes += n;
	}
	if (err)
		printf("%s\n", ename(err));
	else
		printf("drain %lld\n", bytes);
	return 0;
}

static int cmd_fill(char **argv)
{
	static char buf[65536];
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	int n = atoi(argv[2]), i, fd, connected = 0, errors = 0;
	long long bytes = 0;
	struct pollfd p;
	ssize_t r;

	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < n; i++) {
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len)) {
			fprintf(stderr, "fill %d: %s\n", i, ename(errno));
			errors++;
			if (fd >= 0)
				close(fd);
			continue;
		}
		connected++;
		fcntl(fd, F_SETFL, O_NONBLOCK);
		for (;;) {
			r = write(fd, buf, sizeof(buf));
			if (r > 0) {
				bytes += r;
				continue;
			}
			if (r < 0 && errno != EAGAIN) {
				fprintf(stderr, "fill %d: write: %s\n", i,
					ename(errno));
				errors++;
				break;
			}
			p.fd = fd;
			p.events = POLLOUT;
			if (poll(&p, 1, 500) <= 0)
				break;
		}
		close(fd);
	}
	printf("fill %d connected %d bytes %lld errors %d\n", n, connected,
	       bytes, errors);
	return 0;
}

static int cmd_burst(char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	int n = atoi(argv[2]), i, fd, err = 0;
	char msg[64];

	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		err = errno;
	snprintf(msg, sizeof(msg), "%s warm", argv[3]);
	if (!err && sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&ss, len) < 0)
		err = errno;
	if (err) {
		printf("%s\n", ename(err));
		return 0;
	}
	printf("ready\n");
	for (i = 0; i < 6000 && access(argv[4], F_OK); i++)
		usleep(10000);
	for (i = 1; i <= n && !err; i++) {
		snprintf(msg, sizeof(msg), "%s %d", argv[3], i);
		if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&ss, len) < 0)
			err = errno;
	}
	if (err)
		printf("%s\n", ename(err));
	else
		printf("sent %d\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "bind") && argc >= 4)
		return cmd_bind(argc - 2, argv + 2);
	if (!strcmp(cmd, "connect") && (argc == 4 || argc == 6))
		return cmd_connect(argc - 2, argv + 2);
	if (!strcmp(cmd, "conns") && argc == 5)
		return cmd_conns(argv + 2);
	if (!strcmp(cmd, "sendto") && argc >= 4)
		return cmd_sendto(argc - 2, argv + 2);
	if (!strcmp(cmd, "socks") && (argc == 3 || argc == 5))
		return cmd_socks(argc - 2, argv + 2);
	if (!strcmp(cmd, "sink") && argc == 3)
		return cmd_sink(argv + 2);
	if (!strcmp(cmd, "source") && argc == 3)
		return cmd_source(argv + 2);
	if (!strcmp(cmd, "drain") && argc == 5)
		return cmd_drain(argv + 2);
	if (!strcmp(cmd, "fill") && argc == 5)
		return cmd_fill(argv + 2);
	if (!strcmp(cmd, "burst") && argc == 7)
		return cmd_burst(argv + 2);
	fprintf(stderr, "usage: see the comment at the top of nk_tenancy.c\n");
	return 2;
}
