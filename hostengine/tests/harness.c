// SPDX-License-Identifier: GPL-2.0
/*
 * The host engine test harness (harness.h): the engine process, its
 * control socket, guest endpoints, messages and data streams.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "harness.h"
#include "tnsm.h"

const char *const h_cnt_names[HC_NR] = {
	[HC_REQUESTS] = "requests",
	[HC_REPLIES] = "replies",
	[HC_EVENTS] = "events",
	[HC_BYTES_IN] = "bytes_in",
	[HC_BYTES_OUT] = "bytes_out",
	[HC_ERRORS] = "errors",
	[HC_PROTO_ERRORS] = "proto_errors",
	[HC_CREDIT_VIOLATIONS] = "credit_violations",
	[HC_DROPS] = "drops",
	[HC_RESETS] = "resets",
	[HC_PENDING_BYTES] = "pending_bytes",
	[HC_PENDING_MAX] = "pending_max",
	[HC_SOCKETS] = "sockets",
	[HC_CONFIG_ERRORS] = "config_errors",
	[HC_OVERSIZE] = "oversize",
	[HC_SOCKET_LIMIT] = "socket_limit",
	[HC_CONN_RESETS] = "conn_resets",
	[HC_PENDING_LIMIT] = "pending_limit",
	[HC_CONN_RATE_LIMIT] = "conn_rate_limit",
	[HC_NSM_QUEUED] = "nsm_queued",
	[HC_NSM_QUEUED_MAX] = "nsm_queued_max",
};

struct h_world W = { .pid = -1 };

static bool test_passed;
static uint32_t next_sock_id = 0x10000;
static uint64_t next_req_id = 0x5e0000000000ULL;

double h_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* The engine process                                                  */
/* ------------------------------------------------------------------ */

void h_sock_path(char *buf, size_t size, const char *ep)
{
	snprintf(buf, size, "%s/%s.sock", W.dir, ep);
}

struct tnsm *h_nsm_open(const char *name)
{
	char path[256];
	struct tnsm *t;

	h_sock_path(path, sizeof(path), name);
	t = tnsm_start(path);
	assert_non_null(t);
	h_wait_state(name, "ready");
	return t;
}

static int write_config(const char *path, const char *tag, const struct h_engine_opts *o)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f, "[engine]\nname = %s\nrun_dir = %s\nhugepages = no\npoll = adaptive\n",
		W.name, W.dir);
	if (o && o->pending_limit)
		fprintf(f, "pending_limit = %llu\n", (unsigned long long)o->pending_limit);
	if (o && o->max_sockets)
		fprintf(f, "max_sockets = %u\n", o->max_sockets);
	fprintf(f, "\n[nsm:nsm0]\nsocket = nsm0.sock\n\n"
		"[guest:vm1]\nsocket = vm1.sock\nnsm = nsm0\naddress = 10.0.0.11\n"
		"address6 = fd00::11\n\n"
		"[guest:vm2]\nsocket = vm2.sock\nnsm = nsm0\naddress = 10.0.0.12\n%s\n"
		"[guest:vm3]\nsocket = vm3.sock\naddress = 10.0.0.13\n%s",
		o && o->vm2_keys ? o->vm2_keys : "", o && o->vm3_keys ? o->vm3_keys : "");
	(void)tag;
	return fclose(f);
}

static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", W.ctl);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool h_engine_alive(void)
{
	int st;

	if (W.pid <= 0)
		return false;
	if (waitpid(W.pid, &st, WNOHANG) == W.pid) {
		fprintf(stderr, "# hostengine exited early: %s %d\n",
			WIFEXITED(st) ? "status" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		W.pid = -1;
		return false;
	}
	return true;
}

void h_log_tail(unsigned int lines)
{
	char *buf = NULL, *p;
	size_t size = 0, n = 0;
	unsigned int nl = 0;
	FILE *f = fopen(W.log, "r");
	int c;

	if (!f)
		return;
	while ((c = fgetc(f)) != EOF) {
		if (n + 1 >= size) {
			size = size ? 2 * size : 65536;
			p = realloc(buf, size);
			if (!p)
				break;
			buf = p;
		}
		buf[n++] = c;
	}
	fclose(f);
	if (!buf)
		return;
	buf[n] = '\0';
	for (p = buf + n; p > buf; p--)
		if (p[-1] == '\n' && ++nl > lines)
			break;
	printf("# ---- engine log (%s), last %u lines ----\n", W.log, lines);
	while (*p) {
		char *e = strchr(p, '\n');

		if (e)
			*e = '\0';
		printf("# | %s\n", p);
		if (!e)
			break;
		p = e + 1;
	}
	printf("# ---- end of engine log ----\n");
	fflush(stdout);
	free(buf);
}

void h_tool_path(char *buf, size_t size, const char *env, const char *rel)
{
	const char *v = getenv(env);
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (v && *v) {
		snprintf(buf, size, "%s", v);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(buf, size, "%s", rel);
		return;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, size, "%s/%s", exe, rel);
}

void h_config_refused(const char *line, const char *msg, char *conf, size_t size)
{
	char bin[PATH_MAX], cmd[PATH_MAX + 256], out[512], want[256];
	unsigned int n = 3;
	const char *c;
	FILE *f;
	int st;

	for (c = line; *c; c++)
		n += *c == '\n';

	h_tool_path(bin, sizeof(bin), "HOSTENGINE", "../hostengine");
	snprintf(conf, size, "%s/bad.conf", W.dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[engine]\nname = bad\n%s\n", line);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "%s -c %s -f 2>&1", bin, conf);
	f = popen(cmd, "r");
	assert_non_null(f);
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	st = pclose(f);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(want, sizeof(want), "%s:%u: %s", conf, n, msg);
	if (!strstr(out, want))
		fail_msg("want \"%s\", got \"%s\"", want, out);
}

int h_engine_start(const char *tag, const struct h_engine_opts *o)
{
	char cfg[256], bin[PATH_MAX];
	double deadline;
	int fd;

	h_tool_path(bin, sizeof(bin), "HOSTENGINE", "../hostengine");
	snprintf(W.dir, sizeof(W.dir), "/tmp/nkt-%s.XXXXXX", tag);
	if (!mkdtemp(W.dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(W.name, sizeof(W.name), "nkt-%d-%s", (int)getpid(), tag);
	snprintf(W.log, sizeof(W.log), "%s/engine.log", W.dir);
	snprintf(W.ctl, sizeof(W.ctl), "%s/control.sock", W.dir);
	snprintf(cfg, sizeof(cfg), "%s/engine.conf", W.dir);
	W.pending_limit = o && o->pending_limit ? o->pending_limit : 8U << 20;
	if (write_config(cfg, tag, o))
		return -1;

	fflush(stdout);
	fflush(stderr);
	W.pid = fork();
	if (W.pid < 0)
		return -1;
	if (!W.pid) {
		int lfd = open(W.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (lfd < 0)
			_exit(127);
		dup2(lfd, STDOUT_FILENO);
		dup2(lfd, STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execl(bin, bin, "-c", cfg, "-f", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	deadline = h_now() + 30;
	while (h_now() < deadline) {
		if (!h_engine_alive()) {
			h_log_tail(40);
			return -1;
		}
		fd = ctl_connect();
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		usleep(20000);
	}
	fprintf(stderr, "# control socket %s never appeared\n", W.ctl);
	h_log_tail(40);
	h_engine_stop();
	return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int h_engine_stop(void)
{
	char dpdk[256];
	double deadline;
	int st = 0, ret = -1;
	pid_t r = 0;

	if (W.pid > 0) {
		kill(W.pid, SIGTERM);
		deadline = h_now() + H_STOP_S;
		while (h_now() < deadline) {
			r = waitpid(W.pid, &st, WNOHANG);
			if (r == W.pid)
				break;
			usleep(10000);
		}
		if (r != W.pid) {
			fprintf(stderr, "# hostengine hangs after SIGTERM: SIGKILL\n");
			h_log_tail(40);
			kill(W.pid, SIGKILL);
			waitpid(W.pid, &st, 0);
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			ret = 0;
		} else {
			fprintf(stderr, "# hostengine exit on SIGTERM: %s %d (want status 0)\n",
				WIFEXITED(st) ? "status" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			h_log_tail(40);
		}
		W.pid = -1;
	}
	if (W.name[0]) {
		snprintf(dpdk, sizeof(dpdk), "/var/run/dpdk/netkernel-%s", W.name);
		rm_rf(dpdk);
	}
	if (W.dir[0] && !getenv("NKT_KEEP"))
		rm_rf(W.dir);
	return ret;
}

int h_group_setup(const char *tag, const struct h_engine_opts *o)
{
	char path[256];

	signal(SIGPIPE, SIG_IGN);
	if (h_engine_start(tag, o))
		return -1;
	h_sock_path(path, sizeof(path), H_NSM);
	W.nsm = tnsm_start_mp(path, o ? o->nsm_max_payload : 0);
	if (!W.nsm) {
		fprintf(stderr, "# test NSM: %s\n", strerror(errno));
		goto fail;
	}
	W.vm1 = h_guest_open(H_VM1, NULL);
	W.vm2 = h_guest_open(H_VM2, W.vm2_opts);
	if (!W.vm1 || !W.vm2)
		goto fail;
	return 0;
fail:
	h_log_tail(40);
	h_group_teardown();
	return -1;
}

int h_group_teardown(void)
{
	if (W.vm1)
		nk_ep_close(W.vm1);
	if (W.vm2)
		nk_ep_close(W.vm2);
	W.vm1 = W.vm2 = NULL;
	if (W.nsm)
		tnsm_stop(W.nsm);
	W.nsm = NULL;
	return h_engine_stop();
}

int h_test_setup(void **state)
{
	(void)state;
	test_passed = false;
	if (!h_engine_alive())
		return -1;
	return 0;
}

/* Throw away what a failed test left on a guest's eventq. */
static void drain(struct nk_ep *ep, const char *name)
{
	struct nk_hdr h;
	unsigned int n = 0;

	while (ep && nk_ep_recv(ep, &h, NULL, 0, 50) >= 0) {
		if (n++ < 8)
			printf("# %s: left over: op %#x flags %#x sock %u status %d\n", name,
			       h.op, h.flags, h.sock, (int32_t)h.status);
	}
	if (n > 8)
		printf("# %s: %u messages left over\n", name, n);
}

int h_test_teardown(void **state)
{
	(void)state;
	if (!test_passed) {
		h_log_tail(30);
		drain(W.vm1, H_VM1);
		drain(W.vm2, H_VM2);
		/* Fresh guest sessions, so that the next test starts clean. */
		if (W.vm1)
			nk_ep_close(W.vm1);
		if (W.vm2)
			nk_ep_close(W.vm2);
		W.vm1 = h_guest_open(H_VM1, NULL);
		W.vm2 = h_guest_open(H_VM2, W.vm2_opts);
		if (!W.vm1 || !W.vm2)
			return -1;
	}
	if (W.nsm)
		tnsm_defaults(W.nsm);
	return 0;
}

void h_pass(void)
{
	if (W.nsm)
		assert_int_equal(tnsm_error(W.nsm), 0);
	assert_true(h_engine_alive());
	test_passed = true;
}

/*
 * cmocka 1.1 reports a failed group setup or teardown but does not count it
 * in its result: the wrappers below do.
 */
static const struct h_group *group;
static int fixture_failures;

static int wrap_setup(void **state)
{
	int r = 0;

	(void)state;
	if (group->prepare)
		r = group->prepare();
	if (!r)
		r = h_group_setup(group->name, group->opts);
	if (!r && group->ready && group->ready()) {
		h_group_teardown();
		r = -1;
	}
	fixture_failures += !!r;
	return r;
}

static int wrap_teardown(void **state)
{
	int r = h_group_teardown();

	(void)state;
	fixture_failures += !!r;
	return r;
}

int h_main(const struct h_group *g)
{
	double t0 = h_now();
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	if (getenv("NKT_FILTER"))
		cmocka_set_test_filter(getenv("NKT_FILTER"));
	group = g;
	ret = _cmocka_run_group_tests(g->name, g->tests, g->n, wrap_setup, wrap_teardown);
	ret += fixture_failures;
	printf("# group %s: %s, %.1f s\n", g->name, ret ? "FAILED" : "passed", h_now() - t0);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Control socket                                                      */
/* ------------------------------------------------------------------ */

static int vctl_start(const char *fmt, va_list ap)
{
	char line[4096];
	int fd, len;

	len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (len < 0 || len >= (int)sizeof(line) - 1)
		return -1;
	line[len++] = '\n';
	fd = ctl_connect();
	if (fd < 0)
		return -1;
	if (write(fd, line, len) != len) {
		close(fd);
		return -1;
	}
	return fd;
}

int h_ctl_start(const char *fmt, ...)
{
	va_list ap;
	int fd;

	va_start(ap, fmt);
	fd = vctl_start(fmt, ap);
	va_end(ap);
	return fd;
}

/* Join a listing's page @p into @r's "sockets"; false if @p is not one. */
static bool join_page(json_object *r, json_object *p)
{
	json_object *all, *arr;
	size_t i;

	if (!json_object_object_get_ex(r, "sockets", &all) ||
	    !json_object_object_get_ex(p, "sockets", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return false;
	for (i = 0; i < json_object_array_length(arr); i++)
		json_object_array_add(all, json_object_get(json_object_array_get_idx(arr, i)));
	return true;
}

json_object *h_ctl_finish(int fd)
{
	json_object *r = NULL, *pg, *more;
	size_t size = 0, n = 0;
	char *buf = NULL, *p, *nl;
	bool last, joined;
	ssize_t k;

	if (fd < 0)
		return NULL;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		while (buf && (nl = memchr(buf, '\n', n))) {
			*nl = '\0';
			pg = json_tokener_parse(buf);
			n -= nl + 1 - buf;
			memmove(buf, nl + 1, n);
			if (!pg)
				goto fail;
			last = !json_object_object_get_ex(pg, "more", &more) ||
			       !json_object_get_boolean(more);
			if (!r) {
				r = pg;
			} else {
				joined = join_page(r, pg);
				json_object_put(pg);
				if (!joined)
					goto fail;
			}
			if (last) {
				json_object_object_del(r, "more");
				goto out;
			}
		}
		if (n + 65536 > size) {
			size = size ? 2 * size : 131072;
			p = realloc(buf, size);
			if (!p)
				goto fail;
			buf = p;
		}
		if (poll(&pfd, 1, 10000) <= 0)
			goto fail;
		k = read(fd, buf + n, size - n - 1);
		if (k <= 0)
			goto fail;
		n += k;
	}
fail:
	json_object_put(r);
	r = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static json_object *vctl(const char *fmt, va_list ap)
{
	return h_ctl_finish(vctl_start(fmt, ap));
}

json_object *h_ctl(const char *fmt, ...)
{
	json_object *r;
	va_list ap;

	va_start(ap, fmt);
	r = vctl(fmt, ap);
	va_end(ap);
	return r;
}

json_object *h_ctl_ok(const char *fmt, ...)
{
	json_object *r, *ok;
	va_list ap;

	va_start(ap, fmt);
	r = vctl(fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok))
		fail_msg("control request failed: %s", json_object_to_json_string(r));
	return r;
}

const char *h_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

uint64_t h_json_u64(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_uint64(v);
}

void h_assert_addr(const uint8_t *p, int family, const char *ip, uint16_t port)
{
	struct nk_addr want;

	assert_int_equal(nk_addr_parse(&want, ip, port), 0);
	assert_int_equal(want.family, family);
	assert_memory_equal(p, &want, sizeof(want));
}

void h_counters(const char *ep, struct h_counters *c)
{
	json_object *r = h_ctl_ok("{\"cmd\":\"stats\",\"endpoint\":\"%s\"}", ep);
	json_object *arr, *e, *cnt;
	unsigned int i;

	assert_true(json_object_object_get_ex(r, "endpoints", &arr));
	assert_int_equal(json_object_array_length(arr), 1);
	e = json_object_array_get_idx(arr, 0);
	assert_string_equal(h_json_str(e, "name"), ep);
	assert_true(json_object_object_get_ex(e, "counters", &cnt));
	for (i = 0; i < HC_NR; i++)
		c->v[i] = h_json_u64(cnt, h_cnt_names[i]);
	json_object_put(r);
}

uint64_t h_counter(const char *ep, enum h_cnt c)
{
	struct h_counters cs;

	h_counters(ep, &cs);
	return cs.v[c];
}

void h_assert_delta_(const char *ep, const struct h_counters *before, enum h_cnt c,
		     uint64_t d, const char *file, int line)
{
	uint64_t now = h_counter(ep, c);

	if (now - before->v[c] != d) {
		print_error("%s counter %s moved by %lld (from %llu to %llu), want %lld\n",
			    ep, h_cnt_names[c], (long long)(now - before->v[c]),
			    (unsigned long long)before->v[c], (unsigned long long)now,
			    (long long)d);
		_fail(file, line);
	}
}

json_object *h_list_ep(const char *ep)
{
	json_object *r = h_ctl_ok("{\"cmd\":\"list\"}"), *arr, *e, *found = NULL;
	size_t i;

	assert_true(json_object_object_get_ex(r, "endpoints", &arr));
	for (i = 0; i < json_object_array_length(arr); i++) {
		e = json_object_array_get_idx(arr, i);
		if (h_json_str(e, "name") && !strcmp(h_json_str(e, "name"), ep))
			found = json_object_get(e);
	}
	json_object_put(r);
	if (!found)
		fail_msg("endpoint %s not listed", ep);
	return found;
}

void h_wait_state(const char *ep, const char *state)
{
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	char last[32] = "";

	while (h_now() < deadline) {
		json_object *e = h_list_ep(ep);

		snprintf(last, sizeof(last), "%s", h_json_str(e, "state") ?: "?");
		json_object_put(e);
		if (!strcmp(last, state))
			return;
		usleep(10000);
	}
	fail_msg("%s: state %s, want %s", ep, last, state);
}

json_object *h_sock_entry(const char *ep, uint32_t gsock)
{
	json_object *r = h_ctl_ok("{\"cmd\":\"sockets\",\"endpoint\":\"%s\"}", ep);
	json_object *arr, *e, *found = NULL;
	size_t i;

	assert_true(json_object_object_get_ex(r, "sockets", &arr));
	for (i = 0; i < json_object_array_length(arr); i++) {
		e = json_object_array_get_idx(arr, i);
		if (h_json_u64(e, "guest_sock") == gsock)
			found = json_object_get(e);
	}
	json_object_put(r);
	return found;
}

uint32_t h_nsm_id(const char *guest, uint32_t gsock)
{
	json_object *e = h_sock_entry(guest, gsock);
	uint32_t id;

	if (!e)
		fail_msg("engine lists no socket %u of %s", gsock, guest);
	id = h_json_u64(e, "nsm_sock");
	json_object_put(e);
	return id;
}

int h_nr_sockets(const char *ep)
{
	json_object *r = h_ctl_ok("{\"cmd\":\"sockets\",\"endpoint\":\"%s\"}", ep), *arr;
	int n;

	assert_true(json_object_object_get_ex(r, "sockets", &arr));
	n = json_object_array_length(arr);
	json_object_put(r);
	return n;
}

/* ------------------------------------------------------------------ */
/* Guest endpoints and messages                                        */
/* ------------------------------------------------------------------ */

struct nk_ep *h_guest_open(const char *name, const struct nk_ep_opts *o)
{
	struct nk_ep_opts def = { .role = NK_ROLE_GUEST, .timeout_ms = H_TIMEOUT_MS };
	char path[256];
	struct nk_ep *ep;

	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;

	h_sock_path(path, sizeof(path), name);
	/*
	 * The engine refuses a new connection until it has finished with
	 * the previous one (just closed by a test): retry for a while.
	 */
	while (!(ep = nk_ep_open(path, o ? o : &def)) && h_now() < deadline &&
	       (errno == ECONNRESET || errno == EPIPE || errno == ECONNREFUSED))
		usleep(20000);
	if (!ep)
		printf("# nk_ep_open(%s): %s\n", path, strerror(errno));
	return ep;
}

uint32_t h_new_sock_id(void)
{
	return next_sock_id++;
}

uint64_t h_new_req_id(void)
{
	return next_req_id++;
}

void h_hdr(struct nk_hdr *h, uint16_t op, uint32_t sock)
{
	nk_hdr_init(h, op, 0, sock, 0);
}

void h_send(struct nk_ep *ep, struct nk_hdr *h, const void *p, size_t len)
{
	int r = nk_ep_send(ep, h, p, len);

	if (r)
		fail_msg("nk_ep_send(op %#x): %s", h->op, strerror(-r));
}

int h_recv(struct nk_ep *ep, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms)
{
	int r = nk_ep_recv(ep, h, buf, bufsz, timeout_ms);

	if (r < 0)
		fail_msg("no message within %d ms (%s)", timeout_ms, strerror(-r));
	return r;
}

void h_recv_none(struct nk_ep *ep, int ms)
{
	struct nk_hdr h;
	int r = nk_ep_recv(ep, &h, NULL, 0, ms);

	if (r >= 0)
		fail_msg("unexpected message op %#x flags %#x sock %u status %d len %u", h.op,
			 h.flags, h.sock, (int32_t)h.status, h.len);
}

int h_call(struct nk_ep *ep, struct nk_hdr *req, const void *p, size_t len,
	   struct nk_hdr *rep, void *rbuf, size_t rbufsz)
{
	struct nk_hdr tmp;

	if (!rep)
		rep = &tmp;
	if (!req->req_id)
		req->req_id = h_new_req_id();
	h_send(ep, req, p, len);
	h_recv(ep, rep, rbuf, rbufsz, H_TIMEOUT_MS);
	if (rep->op != req->op || !(rep->flags & NK_F_REPLY) || rep->req_id != req->req_id)
		fail_msg("want reply to op %#x req %#llx, got op %#x flags %#x req %#llx "
			 "sock %u status %d", req->op, (unsigned long long)req->req_id, rep->op,
			 rep->flags, (unsigned long long)rep->req_id, rep->sock,
			 (int32_t)rep->status);
	assert_int_equal(rep->sock, req->sock);
	return (int32_t)rep->status;
}

int h_socket(struct nk_ep *ep, uint32_t id, int family, int type, uint32_t buf_alloc,
	     struct nk_hdr *rep)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_SOCKET, id);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = buf_alloc;
	h.arg[0] = family;
	h.arg[1] = type;
	h.arg[2] = type == 1 ? 6 : 17;
	return h_call(ep, &h, NULL, 0, rep, NULL, 0);
}

void h_close(struct nk_ep *ep, uint32_t id)
{
	struct nk_hdr h;

	h_hdr(&h, NK_OP_CLOSE, id);
	assert_int_equal(h_call(ep, &h, NULL, 0, NULL, NULL, 0), 0);
}

void h_roundtrip(struct nk_ep *ep)
{
	uint32_t id = h_new_sock_id();

	assert_int_equal(h_socket(ep, id, 2, 1, 65536, NULL), 0);
	h_close(ep, id);
}

/* ------------------------------------------------------------------ */
/* Raw devices                                                         */
/* ------------------------------------------------------------------ */

struct h_raw *h_raw_open(const char *ep, unsigned int nev, bool hello)
{
	char path[256];

	h_sock_path(path, sizeof(path), ep);
	return h_raw_open_path(path, nev, hello);
}

struct h_raw *h_raw_open_path(const char *path, unsigned int nev, bool hello)
{
	struct h_raw *r = calloc(1, sizeof(*r));
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	unsigned int i;

	assert_non_null(r);
	while (!(r->d = vuf_connect(path, NULL)) && h_now() < deadline &&
	       (errno == ECONNRESET || errno == EPIPE || errno == ECONNREFUSED))
		usleep(20000);
	if (!r->d)
		fail_msg("vuf_connect(%s): %s", path, strerror(errno));
	r->nev = nev;
	if (nev) {
		r->ev = vuf_mem_alloc(r->d, nev * H_RAW_EVSZ, &r->ev_gpa);
		assert_non_null(r->ev);
	}
	r->msg = vuf_mem_alloc(r->d, H_RAW_MSG, &r->msg_gpa);
	assert_non_null(r->msg);
	for (i = 0; i < nev; i++)
		h_raw_post(r, i);
	if (hello) {
		struct nk_hdr h, rep;

		h_hdr(&h, NK_OP_HELLO, 0);
		h.arg[0] = NK_PROTO_VERSION;
		h.arg[1] = NK_FEAT_ALL;
		h.arg[2] = NK_MAX_PAYLOAD;
		h.arg[3] = vuf_config(r->d)->role;
		h.buf_alloc = 1;	/* NK_FEAT_MQ: pairs set up */
		h.req_id = h_new_req_id();
		assert_int_equal(h_raw_send(r, &h, NULL, 0), 0);
		h_raw_recv(r, &rep, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(rep.op, NK_OP_HELLO);
		assert_int_equal(rep.req_id, h.req_id);
		assert_int_equal((int32_t)rep.status, 0);
		/* What the engine holds for us beyond the eventq. */
		assert_int_equal(rep.buf_alloc, W.pending_limit);
		r->session = true;
	}
	return r;
}

void h_raw_close(struct h_raw *r)
{
	if (!r)
		return;
	vuf_disconnect(r->d);
	free(r);
}

void h_raw_post(struct h_raw *r, unsigned int idx)
{
	struct vuf_seg seg = {
		.gpa = r->ev_gpa + idx * H_RAW_EVSZ,
		.len = H_RAW_EVSZ,
		.write = 1,
	};

	assert_true(idx < r->nev);
	assert_true(vuf_vq_add(r->d, NK_VQ_EVENT(0), &seg, 1, (void *)(uintptr_t)(idx + 1)) >= 0);
	vuf_vq_kick(r->d, NK_VQ_EVENT(0));
}

int h_raw_recv(struct h_raw *r, struct nk_hdr *h, void *buf, size_t bufsz, int timeout_ms)
{
	uint32_t len;
	void *token;
	uintptr_t idx;
	const uint8_t *p;

again:
	if (vuf_vq_wait(r->d, NK_VQ_EVENT(0), timeout_ms))
		fail_msg("raw device: no eventq message within %d ms", timeout_ms);
	assert_int_equal(vuf_vq_get_used(r->d, NK_VQ_EVENT(0), &len, &token), 1);
	idx = (uintptr_t)token - 1;
	assert_true(idx < r->nev);
	assert_true(len >= sizeof(*h));
	p = r->ev + idx * H_RAW_EVSZ;
	memcpy(h, p, sizeof(*h));
	assert_int_equal(h->len, len - sizeof(*h));
	if (buf)
		memcpy(buf, p + sizeof(*h), h->len < bufsz ? h->len : bufsz);
	h_raw_post(r, idx);
	/* Before HELLO's answer, the device's start: nothing lost. */
	if (!r->session && nk_no_session(h))
		goto again;
	return h->len;
}

uint16_t h_raw_desc(struct h_raw *r, unsigned int vq, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	int i = vuf_vq_desc_alloc(r->d, vq);
	struct vring_desc *d;

	assert_true(i >= 0);
	d = vuf_vq_desc(r->d, vq, i);
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
	return i;
}

void h_raw_publish(struct h_raw *r, unsigned int vq, uint16_t head)
{
	vuf_vq_publish(r->d, vq, head, H_RAW_TOKEN);
	vuf_vq_kick(r->d, vq);
}

uint32_t h_raw_used(struct h_raw *r, unsigned int vq, void *token)
{
	uint32_t len;
	void *t;

	if (vuf_vq_wait(r->d, vq, H_TIMEOUT_MS))
		fail_msg("raw device: virtqueue %u: chain not returned", vq);
	assert_int_equal(vuf_vq_get_used(r->d, vq, &len, &t), 1);
	assert_ptr_equal(t, token);
	return len;
}

uint32_t h_raw_send(struct h_raw *r, const struct nk_hdr *h, const void *p, size_t len)
{
	struct vuf_seg seg = { .gpa = r->msg_gpa, .len = sizeof(*h) + len };
	struct nk_hdr hh = *h;

	assert_true(sizeof(*h) + len <= H_RAW_MSG);
	hh.len = len;
	memcpy(r->msg, &hh, sizeof(hh));
	if (len)
		memcpy(r->msg + sizeof(hh), p, len);
	assert_true(vuf_vq_add(r->d, NK_VQ_REQUEST(0), &seg, 1, H_RAW_TOKEN) >= 0);
	vuf_vq_kick(r->d, NK_VQ_REQUEST(0));
	return h_raw_used(r, NK_VQ_REQUEST(0), H_RAW_TOKEN);
}

/* ------------------------------------------------------------------ */
/* The test NSM                                                        */
/* ------------------------------------------------------------------ */

void h_nsm_expect(size_t *pos, uint16_t op, uint32_t sock, struct tnsm_rec *r)
{
	if (tnsm_wait_sock(W.nsm, pos, op, sock, H_TIMEOUT_MS, r))
		fail_msg("the NSM received no op %#x for socket %d", op, (int)sock);
}

void h_nsm_none(size_t pos, uint16_t op, int ms)
{
	struct tnsm_rec r;

	if (!tnsm_wait(W.nsm, &pos, op, ms, &r))
		fail_msg("the NSM unexpectedly received op %#x flags %#x sock %u status %d",
			 r.h.op, r.h.flags, r.h.sock, (int32_t)r.h.status);
}

void h_nsm_send(struct nk_hdr *h, const void *p, size_t len)
{
	int r = tnsm_send(W.nsm, h, p, len);

	if (r)
		fail_msg("NSM send op %#x: %s", h->op, strerror(-r));
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

uint64_t h_fnv1a(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

void h_pattern(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *b = buf;
	uint64_t w = mix64(seed ^ (off / 8) * 0x9e3779b97f4a7c15ULL);
	size_t i;

	for (i = 0; i < len; i++, off++) {
		if (i && !(off % 8))
			w = mix64(seed ^ (off / 8) * 0x9e3779b97f4a7c15ULL);
		b[i] = w >> (8 * (off % 8));
	}
}

void h_stream_open(struct nk_ep *ep, const char *guest, struct h_stream *s,
		   uint32_t buf_alloc, uint64_t seed)
{
	struct nk_hdr rep;

	memset(s, 0, sizeof(*s));
	s->id = h_new_sock_id();
	s->seed = seed;
	s->rx.buf_alloc = buf_alloc;
	s->tx_hash = s->rx_hash = H_FNV_INIT;
	assert_int_equal(h_socket(ep, s->id, 2, 1, buf_alloc, &rep), 0);
	assert_true(rep.flags & NK_F_CREDIT);
	assert_int_equal(nk_credit_tx_update(&s->tx, rep.buf_alloc, rep.fwd_cnt), 0);
	s->nsm_sock = h_nsm_id(guest, s->id);
}

static struct h_stream *stream_of(struct h_stream *s, unsigned int n, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (s[i].id == id)
			return &s[i];
	return NULL;
}

/* Send what credit allows on @s; returns the bytes sent. */
static uint64_t stream_push(struct nk_ep *ep, struct h_stream *s, uint8_t *buf, uint32_t max)
{
	uint64_t sent = 0;

	while (s->tx_done < s->tx_total) {
		uint32_t room = nk_credit_tx_space(&s->tx);
		uint32_t n = max;
		struct nk_hdr h;

		if (n > room)
			n = room;
		if (n > s->tx_total - s->tx_done)
			n = s->tx_total - s->tx_done;
		if (!n)
			break;
		h_pattern(buf, n, s->seed, s->tx_done);
		s->tx_hash = h_fnv1a(s->tx_hash, buf, n);
		h_hdr(&h, NK_OP_SEND, s->id);
		h.req_id = h_new_req_id();
		nk_credit_rx_fill(&s->rx, &h);
		h_send(ep, &h, buf, n);
		s->tx.tx_cnt += n;
		s->tx_done += n;
		sent += n;
	}
	return sent;
}

static bool xfer_done(const struct h_stream *s, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (s[i].tx_done < s[i].tx_total || s[i].rx_bytes < s[i].rx_total)
			return false;
	return true;
}

int h_xfer(struct nk_ep *ep, struct h_stream *s, unsigned int n, int timeout_ms)
{
	uint32_t max = nk_ep_max_payload(ep);
	double deadline = h_now() + timeout_ms / 1000.0;
	uint8_t *buf = malloc(max), *rbuf = malloc(max);
	struct h_stream *x;
	struct nk_hdr h;
	unsigned int i;
	uint64_t sent;
	int len;

	assert_non_null(buf);
	assert_non_null(rbuf);
	while (!xfer_done(s, n)) {
		if (h_now() > deadline) {
			free(buf);
			free(rbuf);
			return -ETIMEDOUT;
		}
		for (sent = 0, i = 0; i < n; i++)
			sent += stream_push(ep, &s[i], buf, max);
		len = nk_ep_recv(ep, &h, rbuf, max, sent ? 0 : 100);
		if (len < 0)
			continue;
		x = stream_of(s, n, h.sock);
		if (!x)
			fail_msg("message op %#x for unknown socket %u", h.op, h.sock);
		if (h.op == NK_OP_CREDIT && !(h.flags & NK_F_REPLY)) {
			assert_true(h.flags & NK_F_CREDIT);
			assert_int_equal(nk_credit_tx_update(&x->tx, h.buf_alloc, h.fwd_cnt), 0);
		} else if (h.op == NK_EV_DATA) {
			assert_int_equal(len, h.len);
			assert_true((uint64_t)len <= x->rx_total - x->rx_bytes);
			x->rx_hash = h_fnv1a(x->rx_hash, rbuf, len);
			x->rx_bytes += len;
			/* The engine delivers within the credit we announced. */
			assert_int_equal(nk_credit_rx_accept(&x->rx, len), 0);
			x->rx.fwd_cnt += len;
			/* Policy: CREDIT after a quarter of buf_alloc, and at the end. */
			if (x->rx.fwd_cnt - x->rx.fwd_sent >= x->rx.buf_alloc / 4 ||
			    x->rx_bytes == x->rx_total) {
				h_hdr(&h, NK_OP_CREDIT, x->id);
				nk_credit_rx_fill(&x->rx, &h);
				h_send(ep, &h, NULL, 0);
			}
		} else {
			fail_msg("unexpected message during transfer: op %#x flags %#x sock %u "
				 "status %d", h.op, h.flags, h.sock, (int32_t)h.status);
		}
	}
	free(buf);
	free(rbuf);
	return 0;
}
