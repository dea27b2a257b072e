// SPDX-License-Identifier: GPL-2.0
/*
 * nk_flood - the adversarial suite's traffic (selftests/netkernel/adversarial.sh):
 * a flood of tiny datagrams or TCP segments towards a socket that does not
 * read, and that socket.
 *
 * usage: nk_flood udp-sink PORT
 *            bind UDP 0.0.0.0:PORT with SO_RXQ_OVFL, print "ready", read
 *            nothing until SIGUSR1; then drain what is queued ("drained N
 *            datagrams") and wait for a datagram "after": "after ok, ovfl
 *            M" (M: the socket's drop counter as SO_RXQ_OVFL reports it
 *            with "after", -1 if it did not), exit 0
 *        nk_flood tcp-sink PORT
 *            listen on TCP 0.0.0.0:PORT, accept one connection, print
 *            "accepted", read nothing until SIGUSR1; then read to the end
 *            of the stream and check it (COUNT bytes 'x', then "after"):
 *            "read N bytes, after ok", exit 0
 *        nk_flood udp ADDR PORT COUNT SECONDS
 *            send COUNT datagrams to ADDR:PORT, empty and 1-byte in turn,
 *            paced evenly over SECONDS (and never longer)
 *        nk_flood udp-after ADDR PORT
 *            send one datagram "after"
 *        nk_flood tcp ADDR PORT COUNT SECONDS
 *            connect, send COUNT 1-byte segments (TCP_NODELAY), paced
 *            evenly over SECONDS (and never longer), then "after" and
 *            close
 * The flooders print "sent N in T ms".  Every wait is bounded (30 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS	30000

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(atoi(port)) };

	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1) {
		fprintf(stderr, "nk_flood: bad address %s\n", ip);
		exit(2);
	}
	return sin;
}

/* Wait for SIGUSR1 without reading, at most WAIT_MS. */
static void wait_go(void)
{
	long long end = now_ms() + WAIT_MS;

	while (!go) {
		if (now_ms() > end) {
			fprintf(stderr, "nk_flood: no SIGUSR1\n");
			exit(1);
		}
		usleep(10000);
	}
}

static int wait_in(int fd, long long end)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	long long left = end - now_ms();

	return left > 0 && poll(&pfd, 1, (int)left) > 0;
}

static int wait_out(int fd, long long end)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	long long left = end - now_ms();

	return left > 0 && poll(&pfd, 1, (int)left) > 0;
}

static int bound(int type, const char *port)
{
	struct sockaddr_in sin = addr_of("0.0.0.0", port);
	int fd = socket(AF_INET, type, 0);

	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)))
		die("SO_REUSEADDR");
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)))
		die("bind");
	return fd;
}

static int udp_sink(const char *port)
{
	char buf[64], cbuf[CMSG_SPACE(sizeof(unsigned int))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	long long ovfl = -1, n = 0, end;
	struct cmsghdr *cm;
	unsigned int val;
	ssize_t ret;
	int fd;

	fd = bound(SOCK_DGRAM, port);
	if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &(int){ 1 }, sizeof(int)))
		die("SO_RXQ_OVFL");
	printf("ready\n");
	fflush(stdout);
	wait_go();
	for (;;) {
		ret = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (ret < 0)
			break;
		n++;
	}
	if (errno != EAGAIN)
		die("recv");
	printf("drained %lld datagrams\n", n);
	fflush(stdout);
	/*
	 * The drop counter comes with each datagram queued after a drop
	 * (SO_RXQ_OVFL), so with "after": every drop is older.
	 */
	end = now_ms() + WAIT_MS;
	while (wait_in(fd, end)) {
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		ret = recvmsg(fd, &msg, 0);
		if (ret != 5 || memcmp(buf, "after", 5))
			continue;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
				memcpy(&val, CMSG_DATA(cm), sizeof(val));
				ovfl = val;
			}
		}
		printf("after ok, ovfl %lld\n", ovfl);
		return 0;
	}
	printf("no datagram \"after\"\n");
	return 1;
}

static int tcp_sink(const char *port)
{
	long long n = 0, end;
	char buf[4096], tail[5] = "";
	ssize_t ret, i;
	int lfd, fd;

	lfd = bound(SOCK_STREAM, port);
	if (listen(lfd, 1))
		die("listen");
	if (!wait_in(lfd, now_ms() + WAIT_MS))
		die("no connection");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	printf("accepted\n");
	fflush(stdout);
	wait_go();
	end = now_ms() + WAIT_MS;
	while (wait_in(fd, end)) {
		ret = recv(fd, buf, sizeof(buf), 0);
		if (ret < 0)
			die("recv");
		if (!ret) {
			printf("read %lld bytes, after %s\n", n,
			       memcmp(tail, "after", 5) ? "missing" : "ok");
			return memcmp(tail, "after", 5) != 0;
		}
		for (i = 0; i < ret; i++) {
			/* 'x' until "after": the tail keeps the last five. */
			if (buf[i] != 'x' && !strchr("after", buf[i])) {
				printf("byte %lld is %#x\n", n + i, buf[i]);
				return 1;
			}
			memmove(tail, tail + 1, 4);
			tail[4] = buf[i];
		}
		n += ret;
	}
	printf("no end of stream after %lld bytes\n", n);
	return 1;
}

static int flood(int type, const char *ip, const char *port, long long count,
		 int seconds)
{
	struct sockaddr_in sin = addr_of(ip, port);
	long long t0 = now_ms(), end = t0 + seconds * 1000LL, i;
	int fd = socket(AF_INET, type, 0);

	if (fd < 0)
		die("socket");
	if (type == SOCK_STREAM &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)))
		die("TCP_NODELAY");
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		die("connect");
	for (i = 0; i < count && now_ms() < end; i++) {
		/*
		 * Paced: COUNT evenly over SECONDS, as the VMs can take it;
		 * datagrams in bursts of 64, each segment alone (so that the
		 * receiver's stack does not merge them).
		 */
		if (type == SOCK_STREAM || !(i % 64)) {
			long long due = t0 + i * seconds * 1000LL / count;

			if (due > now_ms())
				usleep((due - now_ms()) * 1000);
		}
		/* UDP: empty and 1-byte in turn; TCP: 1-byte segments. */
		if (send(fd, "x", type == SOCK_DGRAM ? i & 1 : 1,
			 MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			continue;
		if (type == SOCK_DGRAM && (errno == ENOBUFS || errno == EAGAIN ||
					   errno == ECONNREFUSED))
			continue;
		if (errno != EAGAIN)
			die("send");
		/* TCP: the peer's window is full; wait for room, up to the end. */
		if (!wait_out(fd, end))
			break;
		i--;	/* and send that byte again */
	}
	printf("sent %lld in %lld ms\n", i, now_ms() - t0);
	if (type == SOCK_STREAM) {
		/* Blocks until the sink reads: bounded by SO_SNDTIMEO. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO,
			       &(struct timeval){ .tv_sec = WAIT_MS / 1000 },
			       sizeof(struct timeval)))
			die("SO_SNDTIMEO");
		if (send(fd, "after", 5, MSG_NOSIGNAL) != 5)
			die("send after");
	}
	close(fd);
	return 0;
}

static int udp_after(const char *ip, const char *port)
{
	struct sockaddr_in sin = addr_of(ip, port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	if (sendto(fd, "after", 5, 0, (struct sockaddr *)&sin, sizeof(sin)) != 5)
		die("sendto");
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGUSR1, on_usr1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "udp-sink"))
		return udp_sink(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "tcp-sink"))
		return tcp_sink(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "udp"))
		return flood(SOCK_DGRAM, argv[2], argv[3], atoll(argv[4]), atoi(argv[5]));
	if (argc == 4 && !strcmp(argv[1], "udp-after"))
		return udp_after(argv[2], argv[3]);
	if (argc == 6 && !strcmp(argv[1], "tcp"))
		return flood(SOCK_STREAM, argv[2], argv[3], atoll(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: see the header of selftests/netkernel/nk_flood.c\n");
	return 2;
}
