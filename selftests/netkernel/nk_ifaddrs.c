// SPDX-License-Identifier: GPL-2.0
/*
 * nk_ifaddrs: the guest's addresses as getifaddrs(3) gives them, which is
 * how programs that advertise their own address find it.
 *
 *   nk_ifaddrs
 *
 * Prints one line per IPv4 or IPv6 address: "IFNAME ADDRESS UP LOOPBACK",
 * UP "up" or "down", LOOPBACK "loopback" or "-" (the interface's
 * IFF_UP and IFF_LOOPBACK flags).  Exits 1 if getifaddrs() fails.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>

int main(void)
{
	struct ifaddrs *ifa, *i;
	char buf[INET6_ADDRSTRLEN];
	const void *a;

	if (getifaddrs(&ifa)) {
		perror("getifaddrs");
		return 1;
	}
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			a = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		else if (i->ifa_addr->sa_family == AF_INET6)
			a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		else
			continue;
		if (!inet_ntop(i->ifa_addr->sa_family, a, buf, sizeof(buf)))
			continue;
		printf("%s %s %s %s\n", i->ifa_name, buf,
		       i->ifa_flags & IFF_UP ? "up" : "down",
		       i->ifa_flags & IFF_LOOPBACK ? "loopback" : "-");
	}
	freeifaddrs(ifa);
	return 0;
}
