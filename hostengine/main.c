// SPDX-License-Identifier: GPL-2.0
/*
 * hostengine: command line, EAL arguments, logging, signals and the
 * program's life cycle.
 *
 * Threading: main() runs on the main lcore.  SIGTERM, SIGINT and SIGHUP
 * are blocked before rte_eal_init, so every thread EAL creates inherits
 * the mask, and are read from a signalfd by the control loop: SIGHUP
 * reloads the configuration file there (live.c), the others stop the
 * engine.  Startup order: config,
 * EAL, telemetry, data plane (launched on the data-plane lcore), vhost-user
 * sockets, control socket.  Shutdown: data plane stopped first, then the
 * vhost-user drivers unregistered (their destroy_device callbacks then run
 * in this thread), the control socket removed, EAL cleaned up.
 *
 * he_ratelimit_ok() is called by the data plane only, on its endpoints'
 * rate limiters.
 *
 * Under systemd (hostengine.service, Type=notify): READY=1 goes to
 * $NOTIFY_SOCKET once every vhost-user socket and the control socket exist,
 * so VMs can be ordered after the engine, and STOPPING=1 when shutdown
 * begins.  When stderr is the journal ($JOURNAL_STREAM names it), DPDK's
 * log stream writes there with each line's priority as a "<N>" prefix,
 * so every line lands once, at its level.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "he.h"

#define EXIT_CONFIG	1
#define EXIT_USAGE	2
#define EXIT_DPDK	3

int he_logtype;
bool he_journal;

bool he_ratelimit_ok(struct he_ep *ep)
{
	struct he_ratelimit *rl = &ep->rl;
	uint64_t now = rte_get_tsc_cycles(), hz = rte_get_tsc_hz();
	uint64_t refill = (now - rl->last_tsc) * HE_LOG_RATE / hz;

	if (refill) {
		rl->tokens = RTE_MIN(rl->tokens + refill, (uint64_t)HE_LOG_RATE);
		rl->last_tsc = now;
	}
	if (!rl->tokens) {
		rl->suppressed++;
		return false;
	}
	rl->tokens--;
	if (rl->suppressed) {
		RTE_LOG(WARNING, HE, "%s: suppressed %" PRIu64 " messages\n", ep->name,
			rl->suppressed);
		rl->suppressed = 0;
	}
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hostengine -c CONFIG [-f] [-v] [-- EAL-ARGS...]\n"
		"       hostengine -h | -V\n"
		"  -c, --config FILE  configuration file\n"
		"  -f, --foreground   log to stderr\n"
		"  -v, --verbose      debug logging\n"
		"  -V, --version      print the version and exit\n");
}

/* sd_notify(3)'s protocol: one datagram to $NOTIFY_SOCKET, if set. */
static void sd_notify_state(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   offsetof(struct sockaddr_un, sun_path) + n) < 0)
		he_log(WARNING, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

/* Is stderr the journal's stream ($JOURNAL_STREAM is "DEV:INODE")? */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       !fstat(STDERR_FILENO, &st) && st.st_dev == dev && st.st_ino == ino;
}

/*
 * The journal's log stream: rte_vlog() prints one message and flushes, so
 * a write here is one message; every line of it gets the message's syslog
 * priority (DPDK's levels are syslog's plus one).
 */
static ssize_t journal_write(void *cookie, const char *buf, size_t size)
{
	static bool midline;
	char out[4096];
	size_t i, n = 0;
	int prio = (int)rte_log_cur_msg_loglevel() - 1;

	(void)cookie;
	if (prio < 0 || prio > 7)
		prio = 6;
	for (i = 0; i < size; i++) {
		if (n > sizeof(out) - 8) {
			if (write(STDERR_FILENO, out, n) < 0)
				return -1;
			n = 0;
		}
		if (!midline)
			n += snprintf(out + n, sizeof(out) - n, "<%d>", prio);
		out[n++] = buf[i];
		midline = buf[i] != '\n';
	}
	if (n && write(STDERR_FILENO, out, n) < 0)
		return -1;
	return size;
}

static void log_to_journal(void)
{
	static const cookie_io_functions_t io = { .write = journal_write };
	FILE *f = fopencookie(NULL, "w", io);

	if (f)
		rte_openlog_stream(f);
}

/*
 * rte_eal_cleanup(), then the EAL's runtime directory: with --no-shconf
 * it holds only the telemetry socket (which DPDK unlinks only at exit(),
 * after this), so the engine removes what is there and the directory:
 * an engine that stops leaves nothing in /run/dpdk.
 */
static void eal_exit(void)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	d = dir[0] ? opendir(dir) : NULL;
	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (rmdir(dir) < 0)
		he_log(WARNING, "%s left behind: %s", dir, strerror(errno));
}

static int mkdir_p(const char *dir)
{
	char path[PATH_MAX], *p;

	snprintf(path, sizeof(path), "%s", dir);
	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char lcores[32], main_lcore[16], prefix[NK_NAME_MAX + 32];
	const char *config = NULL;
	bool foreground = false, verbose = false;
	static struct he_config cfg;
	char **eal_argv;
	int eal_argc = 0, opt, sigfd, i, ret;
	struct stat st;
	sigset_t sigs;

	while ((opt = getopt_long(argc, argv, "c:fvhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("hostengine %s\n", NK_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!config || (optind < argc && strcmp(argv[optind - 1], "--"))) {
		usage(stderr);
		return EXIT_USAGE;
	}
	he_journal = stderr_is_journal();
	if (he_config_load(&cfg, config))
		return EXIT_CONFIG;

	/* EAL arguments: ours, then the extra ones after "--". */
	eal_argv = calloc(argc + 16, sizeof(*eal_argv));
	if (!eal_argv)
		return EXIT_DPDK;
	snprintf(lcores, sizeof(lcores), "%u,%u", cfg.main_lcore, cfg.dataplane_lcore);
	snprintf(main_lcore, sizeof(main_lcore), "%u", cfg.main_lcore);
	snprintf(prefix, sizeof(prefix), "--file-prefix=netkernel-%s", cfg.name);
	eal_argv[eal_argc++] = argv[0];
	eal_argv[eal_argc++] = "-l";
	eal_argv[eal_argc++] = lcores;
	eal_argv[eal_argc++] = "--main-lcore";
	eal_argv[eal_argc++] = main_lcore;
	eal_argv[eal_argc++] = "--no-pci";
	/* Never a secondary process: no shared configuration files. */
	eal_argv[eal_argc++] = "--no-shconf";
	eal_argv[eal_argc++] = prefix;
	if (!cfg.hugepages) {
		eal_argv[eal_argc++] = "--no-huge";
		eal_argv[eal_argc++] = "-m";
		eal_argv[eal_argc++] = "64";
	}
	for (i = optind; i < argc; i++)
		eal_argv[eal_argc++] = argv[i];

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0) {
		perror("signalfd");
		return EXIT_DPDK;
	}

	if (he_journal)
		log_to_journal();
	else if (foreground || isatty(STDERR_FILENO) ||
		 (!fstat(STDERR_FILENO, &st) && S_ISFIFO(st.st_mode)))
		rte_openlog_stream(stderr);
	he_logtype = rte_log_register_type_and_pick_level("netkernel.engine",
							  verbose ? RTE_LOG_DEBUG : RTE_LOG_INFO);
	if (he_logtype < 0)
		he_logtype = RTE_LOGTYPE_USER1;
	if (verbose)
		rte_log_set_level(he_logtype, RTE_LOG_DEBUG);

	ret = rte_eal_init(eal_argc, eal_argv);
	if (ret < 0) {
		fprintf(stderr, "%shostengine: EAL initialisation failed: %s\n",
			he_journal ? "<3>" : "", rte_strerror(rte_errno));
		return EXIT_DPDK;
	}
	if (!rte_lcore_is_enabled(cfg.dataplane_lcore)) {
		he_log(ERR, "data-plane lcore %u not available", cfg.dataplane_lcore);
		eal_exit();
		return EXIT_DPDK;
	}
	ret = mkdir_p(cfg.run_dir);
	if (ret) {
		he_log(ERR, "run_dir %s: %s", cfg.run_dir, strerror(-ret));
		eal_exit();
		return EXIT_CONFIG;
	}
	if (he_telemetry_register(&cfg))
		he_log(WARNING, "telemetry commands not registered");
	ret = he_dp_init(&cfg);
	if (!ret)
		ret = he_dp_launch();
	if (ret) {
		he_log(ERR, "data plane: %s", strerror(ret < 0 ? -ret : ret));
		eal_exit();
		return EXIT_DPDK;
	}
	ret = he_vhost_start(&cfg);
	if (!ret) {
		ret = he_ctl_open(&cfg);
		if (ret)
			he_log(ERR, "control socket %s: %s", cfg.ctl_path, strerror(-ret));
	}
	he_log(INFO, "hostengine %s: %s, %u endpoint(s), poll %s", NK_VERSION, cfg.name,
	       cfg.nr_eps, cfg.poll == HE_POLL_BUSY ? "busy" : "adaptive");
	if (!ret) {
		sd_notify_state("READY=1");
		he_ctl_run(sigfd);
		sd_notify_state("STOPPING=1");
	}

	he_dp_stop();
	he_vhost_stop(&cfg);
	he_ctl_close();
	eal_exit();
	he_log(INFO, "exit");
	return ret ? EXIT_DPDK : 0;
}
