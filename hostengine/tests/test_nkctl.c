// SPDX-License-Identifier: GPL-2.0
/*
 * nkctl against the live engine: every command, its --json output parsed
 * back and checked against the configuration and the counters, and its
 * exit statuses (0 ok, 1 engine error, 2 usage, 3 cannot connect).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "harness.h"
#include "tnsm.h"

#define OUT_MAX		(1 << 20)

static char nkctl_bin[PATH_MAX];
static char out[OUT_MAX];
static char err_out[4096];

/*
 * Run nkctl with the NULL-terminated arguments; its stdout goes to out[],
 * its stderr to err_out[].  Returns its exit status (-1 if it did not
 * exit normally).
 */
static int nkctl(const char *arg0, ...)
{
	const char *argv[16];
	int pfd[2], st, n = 0;
	size_t len = 0;
	ssize_t k;
	va_list ap;
	pid_t pid;

	argv[n++] = nkctl_bin;
	va_start(ap, arg0);
	for (argv[n] = arg0; argv[n] && n < 15; argv[n] = va_arg(ap, const char *))
		n++;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char ep[256];
		int efd;

		snprintf(ep, sizeof(ep), "%s/nkctl.err", W.dir);
		efd = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(pfd[1], STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		unsetenv("NKCTL_SOCKET");
		execv(nkctl_bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((k = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += k;
	out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		fail_msg("cannot run %s", nkctl_bin);
	{
		char ep[256];
		int efd;

		snprintf(ep, sizeof(ep), "%s/nkctl.err", W.dir);
		efd = open(ep, O_RDONLY | O_CLOEXEC);
		k = efd >= 0 ? read(efd, err_out, sizeof(err_out) - 1) : 0;
		err_out[k > 0 ? k : 0] = '\0';
		if (efd >= 0)
			close(efd);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* out[] as one JSON object with "ok": @ok. */
static json_object *out_json(bool ok)
{
	json_object *o = json_tokener_parse(out), *v;

	if (!o || !json_object_is_type(o, json_type_object))
		fail_msg("nkctl --json printed no JSON object: %.200s", out);
	if (json_object_object_get_ex(o, "ok", &v))
		assert_int_equal(json_object_get_boolean(v), ok);
	else if (!ok)
		fail_msg("nkctl --json error output has no \"ok\"");
	return o;
}

static void t_list(void **state)
{
	static const struct {
		const char *name, *role, *nsm, *addr, *addr6, *state;
		unsigned int id;
	} want[] = {
		{ "nsm0", "nsm", NULL, NULL, NULL, "ready", 1 },
		{ "vm1", "guest", "nsm0", "10.0.0.11", "fd00::11", "ready", 2 },
		{ "vm2", "guest", "nsm0", "10.0.0.12", NULL, "ready", 3 },
		{ "vm3", "guest", NULL, "10.0.0.13", NULL, "waiting", 4 },
	};
	json_object *o, *arr, *e, *v;
	char sock[256];
	unsigned int i;

	(void)state;
	assert_int_equal(nkctl("-s", W.ctl, "--json", "list", NULL), 0);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "endpoints", &arr));
	assert_int_equal(json_object_array_length(arr), 4);
	for (i = 0; i < 4; i++) {
		e = json_object_array_get_idx(arr, i);
		assert_string_equal(h_json_str(e, "name"), want[i].name);
		assert_int_equal(h_json_u64(e, "id"), want[i].id);
		assert_string_equal(h_json_str(e, "role"), want[i].role);
		assert_string_equal(h_json_str(e, "state"), want[i].state);
		h_sock_path(sock, sizeof(sock), want[i].name);
		assert_string_equal(h_json_str(e, "socket"), sock);
		assert_int_equal(h_json_u64(e, "sockets"), 0);
		if (strcmp(want[i].role, "guest"))
			continue;
		assert_true(json_object_object_get_ex(e, "nsm", &v));
		if (want[i].nsm)
			assert_string_equal(json_object_get_string(v), want[i].nsm);
		else
			assert_null(v);
		assert_string_equal(h_json_str(e, "address"), want[i].addr);
		assert_true(json_object_object_get_ex(e, "address6", &v));
		if (want[i].addr6)
			assert_string_equal(json_object_get_string(v), want[i].addr6);
		else
			assert_null(v);
		assert_int_equal(h_json_u64(e, "weight"), 1);
	}
	json_object_put(o);

	/* The table names every endpoint too. */
	assert_int_equal(nkctl("-s", W.ctl, "list", NULL), 0);
	for (i = 0; i < 4; i++)
		assert_non_null(strstr(out, want[i].name));
	assert_non_null(strstr(out, "10.0.0.11"));
	h_pass();
}

static void t_stats(void **state)
{
	struct h_counters before, after;
	uint32_t id = h_new_sock_id();
	json_object *o, *arr, *e, *cnt;
	unsigned int i;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	h_counters(H_VM1, &before);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "stats", "vm1", NULL), 0);
	h_counters(H_VM1, &after);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "endpoints", &arr));
	assert_int_equal(json_object_array_length(arr), 1);
	e = json_object_array_get_idx(arr, 0);
	assert_string_equal(h_json_str(e, "name"), "vm1");
	assert_true(json_object_object_get_ex(e, "counters", &cnt));
	assert_int_equal(json_object_object_length(cnt), HC_NR);
	for (i = 0; i < HC_NR; i++) {
		uint64_t v = h_json_u64(cnt, h_cnt_names[i]);

		if (v < before.v[i] || v > after.v[i])
			fail_msg("%s: nkctl says %llu, engine %llu..%llu", h_cnt_names[i],
				 (unsigned long long)v, (unsigned long long)before.v[i],
				 (unsigned long long)after.v[i]);
	}
	assert_int_equal(h_json_u64(cnt, "sockets"), 1);
	assert_true(h_json_u64(cnt, "requests") >= 2);
	json_object_put(o);

	assert_int_equal(nkctl("-s", W.ctl, "--json", "stats", NULL), 0);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "endpoints", &arr));
	assert_int_equal(json_object_array_length(arr), 4);
	assert_string_equal(h_json_str(json_object_array_get_idx(arr, 3), "name"), "vm3");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "stats", "vm1", NULL), 0);
	assert_non_null(strstr(out, "requests"));
	h_close(W.vm1, id);
	h_pass();
}

static void t_sockets(void **state)
{
	uint32_t id[2] = { h_new_sock_id(), h_new_sock_id() };
	json_object *o, *arr, *e;
	unsigned int i, k, found = 0;

	(void)state;
	for (i = 0; i < 2; i++)
		assert_int_equal(h_socket(W.vm1, id[i], 2, 1, 4096 << i, NULL), 0);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "sockets", "vm1", NULL), 0);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "sockets", &arr));
	assert_int_equal(json_object_array_length(arr), 2);
	for (k = 0; k < 2; k++) {
		e = json_object_array_get_idx(arr, k);
		for (i = 0; i < 2; i++) {
			if (h_json_u64(e, "guest_sock") != id[i])
				continue;
			found++;
			assert_string_equal(h_json_str(e, "guest"), "vm1");
			assert_string_equal(h_json_str(e, "nsm"), "nsm0");
			assert_string_equal(h_json_str(e, "state"), "open");
			assert_int_equal(h_json_u64(e, "nsm_sock"), h_nsm_id(H_VM1, id[i]));
			assert_int_equal(h_json_u64(e, "guest_buf_alloc"), 4096 << i);
			assert_int_equal(h_json_u64(e, "nsm_buf_alloc"), TNSM_CREDIT);
			assert_int_equal(h_json_u64(e, "tx_bytes"), 0);
		}
	}
	assert_int_equal(found, 2);
	json_object_put(o);
	/* From the NSM's side, the same sockets. */
	assert_int_equal(nkctl("-s", W.ctl, "--json", "sockets", "nsm0", NULL), 0);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "sockets", &arr));
	assert_int_equal(json_object_array_length(arr), 2);
	json_object_put(o);
	for (i = 0; i < 2; i++)
		h_close(W.vm1, id[i]);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "sockets", "vm1", NULL), 0);
	o = out_json(true);
	assert_true(json_object_object_get_ex(o, "sockets", &arr));
	assert_int_equal(json_object_array_length(arr), 0);
	json_object_put(o);
	h_pass();
}

static void t_attach_detach(void **state)
{
	json_object *e, *v;
	struct nk_hdr h;

	(void)state;
	assert_int_equal(nkctl("-s", W.ctl, "detach", "vm2", NULL), 0);
	e = h_list_ep(H_VM2);
	assert_true(json_object_object_get_ex(e, "nsm", &v));
	assert_null(v);
	json_object_put(e);
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.arg[0] = 2;
	h.arg[1] = 1;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -ENETUNREACH);

	assert_int_equal(nkctl("-s", W.ctl, "--json", "attach", "vm2", "nsm0", NULL), 0);
	json_object_put(out_json(true));
	e = h_list_ep(H_VM2);
	assert_string_equal(h_json_str(e, "nsm"), "nsm0");
	json_object_put(e);
	h_roundtrip(W.vm2);
	/* vm3 was detached in the configuration: attach it, then detach. */
	assert_int_equal(nkctl("-s", W.ctl, "attach", "vm3", "nsm0", NULL), 0);
	e = h_list_ep(H_VM3);
	assert_string_equal(h_json_str(e, "nsm"), "nsm0");
	json_object_put(e);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "detach", "vm3", NULL), 0);
	json_object_put(out_json(true));
	e = h_list_ep(H_VM3);
	assert_true(json_object_object_get_ex(e, "nsm", &v));
	assert_null(v);
	json_object_put(e);
	h_pass();
}

static void t_engine(void **state)
{
	json_object *o, *c;
	uint32_t id = h_new_sock_id();

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "engine", NULL), 0);
	o = out_json(true);
	c = h_ctl_ok("{\"cmd\":\"engine\"}");
	assert_non_null(h_json_str(o, "version"));
	assert_string_equal(h_json_str(o, "version"), h_json_str(c, "version"));
	assert_string_equal(h_json_str(o, "poll"), "adaptive");
	assert_int_equal(h_json_u64(o, "sockets"), 1);
	assert_int_equal(h_json_u64(o, "sockets"), h_json_u64(c, "sockets"));
	assert_true(h_json_u64(o, "dataplane_loops") > 0);
	assert_true(h_json_u64(o, "dataplane_loops") <= h_json_u64(c, "dataplane_loops"));
	assert_true(h_json_u64(o, "uptime_s") <= h_json_u64(c, "uptime_s"));
	(void)h_json_u64(o, "dataplane_sleeps");
	(void)h_json_u64(o, "pending_bytes");
	json_object_put(o);
	json_object_put(c);
	h_close(W.vm1, id);
	h_pass();
}

static void t_errors(void **state)
{
	json_object *o;
	char path[256];

	(void)state;
	/* The engine refuses: 1. */
	assert_int_equal(nkctl("-s", W.ctl, "stats", "nosuch", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "sockets", "nosuch", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "attach", "vm1", "vm2", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "attach", "nosuch", "nsm0", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "detach", "nsm0", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "stats", "nosuch", NULL), 1);
	o = out_json(false);
	assert_int_equal(h_json_u64(o, "errno"), ENOENT);
	assert_non_null(h_json_str(o, "error"));
	json_object_put(o);
	/* Nothing changed. */
	o = h_list_ep(H_VM1);
	assert_string_equal(h_json_str(o, "nsm"), "nsm0");
	json_object_put(o);
	/* Usage: 2. */
	assert_int_equal(nkctl("-s", W.ctl, NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "bogus", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "attach", "vm1", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "sockets", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "list", "extra", NULL), 2);
	assert_int_equal(nkctl("--no-such-option", "list", NULL), 2);
	/* No engine: 3. */
	snprintf(path, sizeof(path), "%s/nothing.sock", W.dir);
	assert_int_equal(nkctl("-s", path, "list", NULL), 3);
	assert_int_equal(nkctl("-s", "/nonexistent/control.sock", "--json", "engine", NULL), 3);
	h_roundtrip(W.vm1);
	h_pass();
}

/* hostengine.rst, "Control socket": the idle timeout and the slot hand-over. */
#define CTL_CLIENTS	16
#define CTL_IDLE_S	5.0
#define CTL_EVICT_S	1.0
#define STUCK		(CTL_CLIENTS + 4)
#define SILENT		2

static int ctl_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", W.ctl);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Wait until the engine has closed every one of @fds: seconds it took. */
static double wait_hup(const int *fds, unsigned int n, double limit)
{
	double t0 = h_now();
	struct pollfd p;
	unsigned int i;

	for (i = 0; i < n; i++) {
		p = (struct pollfd){ .fd = fds[i], .events = 0 };
		while (poll(&p, 1, 20) == 0 || !(p.revents & POLLHUP)) {
			if (h_now() - t0 > limit)
				fail_msg("control client %u of %u still open after %.1f s", i, n,
					 limit);
		}
	}
	return h_now() - t0;
}

/*
 * Clients that never read their replies (their requests keep coming, the
 * replies fill their sockets) or never send anything hold neither the main
 * thread nor the 16 slots: nkctl is answered once a slot's owner has been
 * idle CTL_EVICT_S, and idle clients are closed after CTL_IDLE_S.  Before
 * the fix every stuck client cost the main thread 1 s per reply, the 17th
 * connection was closed unanswered, and a silent client was never closed.
 */
static void t_stuck_clients(void **state)
{
	static const char req[] = "{\"cmd\": \"stats\"}\n";
	int stuck[STUCK], silent[SILENT];
	char reqs[1000 * (sizeof(req) - 1)];
	unsigned int i;
	double t0, t;

	(void)state;
	for (i = 0; i < sizeof(reqs); i += sizeof(req) - 1)
		memcpy(reqs + i, req, sizeof(req) - 1);
	for (i = 0; i < STUCK; i++) {
		stuck[i] = ctl_open();
		assert_int_equal(send(stuck[i], reqs, sizeof(reqs), MSG_NOSIGNAL), sizeof(reqs));
	}
	t0 = h_now();
	assert_int_equal(nkctl("-s", W.ctl, "--json", "engine", NULL), 0);
	json_object_put(out_json(true));
	t = h_now() - t0;
	printf("# nkctl engine beside %u stuck clients: %.2f s\n", STUCK, t);
	assert_true(t < CTL_EVICT_S + 2.0);

	/* Silent clients, from now: closed after CTL_IDLE_S, not before. */
	for (i = 0; i < SILENT; i++)
		silent[i] = ctl_open();
	t = wait_hup(silent, SILENT, CTL_IDLE_S + 2.0);
	printf("# silent clients closed after %.2f s\n", t);
	assert_true(t > CTL_IDLE_S - 0.5);
	/* By now every stuck client has been idle longer than that. */
	wait_hup(stuck, STUCK, 1.0);
	for (i = 0; i < STUCK; i++)
		close(stuck[i]);
	for (i = 0; i < SILENT; i++)
		close(silent[i]);
	assert_int_equal(nkctl("-s", W.ctl, "list", NULL), 0);
	h_pass();
}

/*
 * add and remove: what they print, --json, that they say the change is not
 * persistent, and the errors naming the endpoint or key.
 */
static void t_add_remove(void **state)
{
	char sock[256], want[512];
	json_object *o, *v;
	uint32_t id;

	(void)state;
	assert_int_equal(nkctl("-s", W.ctl, "-j", "add", "nsm", "nsm7", NULL), 0);
	o = out_json(true);
	assert_string_equal(h_json_str(o, "endpoint"), "nsm7");
	h_sock_path(sock, sizeof(sock), "nsm7");
	assert_string_equal(h_json_str(o, "socket"), sock);
	assert_true(json_object_object_get_ex(o, "persistent", &v));
	assert_false(json_object_get_boolean(v));
	id = h_json_u64(o, "id");
	assert_true(id > H_ID_VM3);
	json_object_put(o);

	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm7", "nsm=nsm7",
			       "address=10.0.0.17", "address6=fd00::17", "weight=3",
			       "queue_pairs=2", "socket=vm7.sock", NULL), 0);
	h_sock_path(sock, sizeof(sock), "vm7");
	snprintf(want, sizeof(want), "guest vm7 added, id %u, socket %s\n", id + 1, sock);
	assert_string_equal(out, want);
	assert_non_null(strstr(err_out, "not persistent"));
	o = h_list_ep("vm7");
	assert_string_equal(h_json_str(o, "nsm"), "nsm7");
	assert_string_equal(h_json_str(o, "address"), "10.0.0.17");
	assert_string_equal(h_json_str(o, "address6"), "fd00::17");
	assert_int_equal(h_json_u64(o, "weight"), 3);
	json_object_put(o);

	/* Engine errors: exit 1, the endpoint and key named. */
	assert_int_equal(nkctl("-s", W.ctl, "-j", "add", "guest", "vm7", NULL), 1);
	o = out_json(false);
	assert_int_equal(h_json_u64(o, "errno"), EEXIST);
	assert_string_equal(h_json_str(o, "endpoint"), "vm7");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm8", "weight=0", NULL), 1);
	assert_non_null(strstr(err_out, "vm8: bad value '0' for weight: 1 to 1000"));
	assert_int_equal(nkctl("-s", W.ctl, "-j", "add", "guest", "vm8", "nsm=nsm9", NULL), 1);
	o = out_json(false);
	assert_string_equal(h_json_str(o, "key"), "nsm");
	assert_string_equal(h_json_str(o, "endpoint"), "vm8");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "add", "router", "vm8", NULL), 1);
	assert_non_null(strstr(err_out, "bad role"));

	/* Usage errors: exit 2, nothing sent. */
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm8", "weight", NULL), 2);
	assert_non_null(strstr(err_out, "'weight' is not KEY=VALUE"));
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm8", "=3", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm8", "weight=1", "weight=2",
			       NULL), 2);
	assert_non_null(strstr(err_out, "key 'weight' given twice"));
	assert_int_equal(nkctl("-s", W.ctl, "add", "guest", "vm8", "name=vm9", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "remove", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "remove", "vm7", "vm8", NULL), 2);

	/* remove, twice. */
	assert_int_equal(nkctl("-s", W.ctl, "remove", "vm7", NULL), 0);
	assert_string_equal(out, "vm7 removed\n");
	assert_non_null(strstr(err_out, "not persistent"));
	assert_int_equal(nkctl("-s", W.ctl, "-j", "remove", "vm7", NULL), 1);
	o = out_json(false);
	assert_int_equal(h_json_u64(o, "errno"), ENOENT);
	assert_string_equal(h_json_str(o, "endpoint"), "vm7");
	assert_string_equal(h_json_str(o, "error"), "unknown endpoint 'vm7'");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "-j", "remove", "nsm7", NULL), 0);
	o = out_json(true);
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "remove", "nsm7", NULL), 1);
	assert_non_null(strstr(err_out, "unknown endpoint 'nsm7'"));
	assert_int_equal(nkctl("-s", W.ctl, "--json", "list", NULL), 0);
	assert_null(strstr(out, "vm7"));
	h_pass();
}

static const struct CMUnitTest tests[] = {
	H_TEST(t_list),
	H_TEST(t_stats),
	H_TEST(t_sockets),
	H_TEST(t_attach_detach),
	H_TEST(t_engine),
	H_TEST(t_errors),
	H_TEST(t_stuck_clients),
	H_TEST(t_add_remove),
};

static int prepare(void)
{
	h_tool_path(nkctl_bin, sizeof(nkctl_bin), "NKCTL", "../../tools/nkctl/nkctl");
	if (access(nkctl_bin, X_OK)) {
		printf("# %s: %s (make -C tools/nkctl)\n", nkctl_bin, strerror(errno));
		return -1;
	}
	return 0;
}

H_MAIN("nkctl", tests, .prepare = prepare)
