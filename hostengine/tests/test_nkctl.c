// SPDX-License-Identifier: GPL-2.0
/*
 * nkctl against the live engine: every command, its --json output parsed
 * back and checked against the configuration and the counters, and its
 * exit statuses (0 ok, 1 engine error, 2 usage, 3 cannot connect).  "ss"
 * with the test NSM's INFO answers (good, garbage, none), at 10,000
 * sockets, and "kill".
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

#define MANY		10000	/* sockets of t_ss_many */

#define OUT_MAX		(32 << 20)	/* ss --json of 10,000 sockets */

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

/* out[]'s "sockets" array (asserted), of @n entries. */
static json_object *out_sockets(json_object *o, size_t n)
{
	json_object *arr;

	assert_true(json_object_object_get_ex(o, "sockets", &arr));
	assert_true(json_object_is_type(arr, json_type_array));
	assert_int_equal(json_object_array_length(arr), n);
	return arr;
}

/* The ss entry of vm's @gsock in @arr (asserted present). */
static json_object *ss_entry(json_object *arr, const char *vm, uint32_t gsock)
{
	size_t i;

	for (i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		if (!strcmp(h_json_str(e, "guest"), vm) && h_json_u64(e, "guest_sock") == gsock)
			return e;
	}
	fail_msg("no ss entry for %s socket %u", vm, gsock);
	return NULL;
}

/* An entry as tnsm_info_record() describes NSM socket @nsock. */
static void ss_assert_info(json_object *e, uint32_t nsock)
{
	char local[64];

	snprintf(local, sizeof(local), "%s:%u", TNSM_INFO_LOCAL_IP, TNSM_INFO_PORT(nsock));
	assert_int_equal(h_json_u64(e, "nsm_sock"), nsock);
	assert_string_equal(h_json_str(e, "proto"), "tcp");
	assert_string_equal(h_json_str(e, "state"), "ESTAB");
	assert_string_equal(h_json_str(e, "family"), "inet");
	assert_string_equal(h_json_str(e, "local"), local);
	assert_string_equal(h_json_str(e, "remote"), TNSM_PEER_IP ":4242");
	assert_int_equal(h_json_u64(e, "local_port"), TNSM_INFO_PORT(nsock));
	assert_int_equal(h_json_u64(e, "remote_port"), TNSM_PEER_PORT);
	assert_int_equal(h_json_u64(e, "rtt_us"), TNSM_INFO_RTT(nsock));
	assert_int_equal(h_json_u64(e, "rttvar_us"), TNSM_INFO_RTT(nsock) / 2);
	assert_int_equal(h_json_u64(e, "cwnd"), 10);
	assert_int_equal(h_json_u64(e, "retrans"), 1);
	assert_int_equal(h_json_u64(e, "send_q"), 3);
	assert_int_equal(h_json_u64(e, "recv_q"), 4);
	assert_int_equal(h_json_u64(e, "delivery_rate"), 125000000);
	assert_string_equal(h_json_str(e, "engine_state"), "open");
	assert_null(h_json_str(e, "info_error"));
}

/* Lines in out[]. */
static unsigned int out_lines(void)
{
	unsigned int n = 0;
	const char *p;

	for (p = out; (p = strchr(p, '\n')); p++)
		n++;
	return n;
}

static void t_ss(void **state)
{
	uint32_t a = h_new_sock_id(), b = h_new_sock_id(), c = h_new_sock_id();
	static const struct {
		const char *k1, *v1, *k2, *v2;
		unsigned int n;		/* entries of a, b, c */
	} filters[] = {
		{ NULL, NULL, NULL, NULL, 3 },
		{ "guest", "vm1", NULL, NULL, 2 },
		{ "guest", "vm2", NULL, NULL, 1 },
		{ "guest", "vm3", NULL, NULL, 0 },	/* not attached: none */
		{ "nsm", "nsm0", NULL, NULL, 3 },
		{ "state", "estab", NULL, NULL, 3 },
		{ "state", "LISTEN", NULL, NULL, 0 },
		{ "port", "4242", NULL, NULL, 3 },
		{ "port", "1", NULL, NULL, 0 },
		{ "guest", "vm1", "state", "Time-Wait", 0 },
		{ "guest", "vm2", "port", "4242", 1 },
	};
	json_object *o, *arr;
	char port[16];
	unsigned int i;

	(void)state;
	assert_int_equal(h_socket(W.vm1, a, 2, 1, 4096, NULL), 0);
	assert_int_equal(h_socket(W.vm1, b, 2, 1, 4096, NULL), 0);
	assert_int_equal(h_socket(W.vm2, c, 2, 1, 4096, NULL), 0);

	assert_int_equal(nkctl("-s", W.ctl, "--json", "ss", NULL), 0);
	o = out_json(true);
	arr = out_sockets(o, 3);
	ss_assert_info(ss_entry(arr, "vm1", a), h_nsm_id(H_VM1, a));
	ss_assert_info(ss_entry(arr, "vm1", b), h_nsm_id(H_VM1, b));
	ss_assert_info(ss_entry(arr, "vm2", c), h_nsm_id(H_VM2, c));
	json_object_put(o);

	for (i = 0; i < ARRAY_SIZE(filters); i++) {
		assert_int_equal(nkctl("-s", W.ctl, "--json", "ss", filters[i].k1, filters[i].v1,
				       filters[i].k2, filters[i].v2, NULL), 0);
		o = out_json(true);
		out_sockets(o, filters[i].n);
		json_object_put(o);
		/* The table: a heading and a line per entry; none is still exit 0. */
		assert_int_equal(nkctl("-s", W.ctl, "ss", filters[i].k1, filters[i].v1,
				       filters[i].k2, filters[i].v2, NULL), 0);
		assert_int_equal(out_lines(), 1 + filters[i].n);
		assert_non_null(strstr(out, "Local Address:Port"));
	}
	/* One connection by its local port. */
	snprintf(port, sizeof(port), "%u", TNSM_INFO_PORT(h_nsm_id(H_VM1, b)));
	assert_int_equal(nkctl("-s", W.ctl, "--json", "ss", "port", port, NULL), 0);
	o = out_json(true);
	arr = out_sockets(o, 1);
	assert_int_equal(h_json_u64(json_object_array_get_idx(arr, 0), "guest_sock"), b);
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "ss", "guest", "vm1", NULL), 0);
	assert_non_null(strstr(out, "ESTAB"));
	assert_non_null(strstr(out, TNSM_PEER_IP ":4242"));

	h_close(W.vm1, a);
	h_close(W.vm1, b);
	h_close(W.vm2, c);
	h_pass();
}

/* Filters nkctl refuses (exit 2) and requests the engine refuses (EINVAL, ENOENT). */
static void t_ss_bad_filters(void **state)
{
	static const char *const bad[][4] = {
		{ "bogus", "x" }, { "guest" }, { "port", "70000" }, { "port", "abc" },
		{ "port", "-1" }, { "port", "" }, { "port", "80x" }, { "state", "nope" },
		{ "guest", "vm1", "guest", "vm2" }, { "state" },
	};
	static const struct {
		const char *req;
		int err;
	} refused[] = {
		{ "{\"cmd\":\"ss\",\"state\":\"nope\"}", EINVAL },
		{ "{\"cmd\":\"ss\",\"state\":7}", EINVAL },
		{ "{\"cmd\":\"ss\",\"port\":70000}", EINVAL },
		{ "{\"cmd\":\"ss\",\"port\":-1}", EINVAL },
		{ "{\"cmd\":\"ss\",\"port\":\"80\"}", EINVAL },
		{ "{\"cmd\":\"ss\",\"guest\":\"nsm0\"}", EINVAL },
		{ "{\"cmd\":\"ss\",\"nsm\":\"vm1\"}", EINVAL },
		{ "{\"cmd\":\"ss\",\"guest\":\"nosuch\"}", ENOENT },
		{ "{\"cmd\":\"ss\",\"guest\":7}", EINVAL },
		{ "{\"cmd\":\"kill\",\"guest\":\"vm1\"}", EINVAL },
		{ "{\"cmd\":\"kill\",\"guest\":\"vm1\",\"sock\":0}", EINVAL },
		{ "{\"cmd\":\"kill\",\"guest\":\"vm1\",\"sock\":4294967296}", EINVAL },
		{ "{\"cmd\":\"kill\",\"guest\":\"nsm0\",\"sock\":1}", EINVAL },
		{ "{\"cmd\":\"kill\",\"guest\":\"vm1\",\"sock\":\"1\"}", EINVAL },
	};
	json_object *r;
	unsigned int i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		if (nkctl("-s", W.ctl, "ss", bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL) != 2)
			fail_msg("nkctl ss %s %s: not a usage error", bad[i][0],
				 bad[i][1] ? bad[i][1] : "");
	assert_int_equal(nkctl("-s", W.ctl, "ss", "guest", "nosuch", NULL), 1);
	for (i = 0; i < ARRAY_SIZE(refused); i++) {
		r = h_ctl("%s", refused[i].req);
		assert_non_null(r);
		if (h_json_u64(r, "errno") != (uint64_t)refused[i].err)
			fail_msg("%s: %s", refused[i].req, json_object_to_json_string(r));
		json_object_put(r);
	}
	h_pass();
}

/*
 * An NSM's answer to INFO and what ss says of it.  @mut: the records as
 * the test NSM sends them, from @n good ones; returns the payload length.
 */
struct info_case {
	const char *name;
	int32_t status;			/* the reply's */
	uint32_t hsock;			/* the reply's socket id */
	bool silent;			/* no answer at all */
	uint32_t (*mut)(struct nk_sock_info *si, uint32_t len);
	const char *want;		/* in info_error */
	unsigned int proto_errors;	/* the NSM's, counted */
};

static uint32_t m_none(struct nk_sock_info *si, uint32_t len) { (void)si; return len; }
static uint32_t m_short(struct nk_sock_info *si, uint32_t len) { (void)si; return len - 1; }
static uint32_t m_empty(struct nk_sock_info *si, uint32_t len) { (void)si; (void)len; return 0; }
static uint32_t m_two(struct nk_sock_info *si, uint32_t len) { si[1] = si[0]; return 2 * len; }
static uint32_t m_id(struct nk_sock_info *si, uint32_t len) { si->sock += 1000; return len; }
static uint32_t m_family(struct nk_sock_info *si, uint32_t len) { si->family = 3; return len; }
static uint32_t m_proto(struct nk_sock_info *si, uint32_t len) { si->proto = 1; return len; }
static uint32_t m_state0(struct nk_sock_info *si, uint32_t len) { si->state = 0; return len; }
static uint32_t m_state13(struct nk_sock_info *si, uint32_t len) { si->state = 13; return len; }
static uint32_t m_udp_listen(struct nk_sock_info *si, uint32_t len)
{
	si->proto = IPPROTO_UDP;
	si->state = NK_SS_LISTEN;
	return len;
}
static uint32_t m_addr_family(struct nk_sock_info *si, uint32_t len)
{
	si->remote.family = AF_INET6;
	return len;
}
static uint32_t m_addr_bytes(struct nk_sock_info *si, uint32_t len)
{
	si->local.addr[10] = 1;
	return len;
}
static uint32_t m_reserved(struct nk_sock_info *si, uint32_t len) { si->reserved = 1; return len; }
static uint32_t m_status(struct nk_sock_info *si, uint32_t len)
{
	si->status = (uint32_t)-EINVAL;
	return len;
}
static uint32_t m_status_positive(struct nk_sock_info *si, uint32_t len)
{
	si->status = 1;
	return len;
}
static uint32_t m_ebadf(struct nk_sock_info *si, uint32_t len)
{
	uint32_t sock = si->sock;

	memset(si, 0, sizeof(*si));
	si->sock = sock;
	si->status = (uint32_t)-EBADF;
	return len;
}
static uint32_t m_ebadf_data(struct nk_sock_info *si, uint32_t len)
{
	si->status = (uint32_t)-EBADF;
	return len;
}

static const struct info_case info_cases[] = {
	{ "ss_info_short", 0, 0, false, m_short, "INFO reply refused: 103 bytes for 1", 1 },
	{ "ss_info_empty", 0, 0, false, m_empty, "INFO reply refused: 0 bytes for 1", 1 },
	{ "ss_info_too_many", 0, 0, false, m_two, "INFO reply refused: 208 bytes for 1", 1 },
	{ "ss_info_unknown_id", 0, 0, false, m_id, "not the socket asked for", 1 },
	{ "ss_info_bad_family", 0, 0, false, m_family, "bad family", 1 },
	{ "ss_info_bad_proto", 0, 0, false, m_proto, "bad protocol", 1 },
	{ "ss_info_state_0", 0, 0, false, m_state0, "bad state", 1 },
	{ "ss_info_state_13", 0, 0, false, m_state13, "bad state", 1 },
	{ "ss_info_udp_listen", 0, 0, false, m_udp_listen, "bad state", 1 },
	{ "ss_info_addr_family", 0, 0, false, m_addr_family, "bad address", 1 },
	{ "ss_info_v4_addr_bytes", 0, 0, false, m_addr_bytes, "bad address", 1 },
	{ "ss_info_reserved", 0, 0, false, m_reserved, "reserved field set", 1 },
	{ "ss_info_record_einval", 0, 0, false, m_status, "bad status", 1 },
	{ "ss_info_record_status_positive", 0, 0, false, m_status_positive, "bad status", 1 },
	{ "ss_info_ebadf_with_data", 0, 0, false, m_ebadf_data, "unknown socket with data", 1 },
	{ "ss_info_reply_on_socket", 0, 5, false, m_none, "reply for socket 5", 1 },
	{ "ss_info_error_with_payload", -EIO, 0, false, m_none, "error reply with 104 bytes", 1 },
	{ "ss_info_error", -EIO, 0, false, m_empty, "the NSM answered Input/output error", 0 },
	{ "ss_info_ebadf", 0, 0, false, m_ebadf, "the NSM has no such socket", 0 },
	{ "ss_info_silent", 0, 0, true, NULL, "no INFO reply from the NSM within 2000 ms", 0 },
};

static void t_ss_info_case(void **state)
{
	const struct info_case *c = *state;
	uint32_t id = h_new_sock_id(), nsock, asked;
	struct nk_sock_info si[2];
	struct h_counters n0;
	struct tnsm_rec rec;
	struct nk_hdr h;
	json_object *r, *arr, *e;
	int fd, fd2 = -1;
	double t;
	size_t pos;

	assert_int_equal(h_socket(W.vm1, id, 2, 1, 4096, NULL), 0);
	nsock = h_nsm_id(H_VM1, id);
	tnsm_set_reply(W.nsm, NK_OP_INFO, TNSM_SILENT, 0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	fd = h_ctl_start("{\"cmd\":\"ss\",\"guest\":\"vm1\"}");
	assert_true(fd >= 0);
	h_nsm_expect(&pos, NK_OP_INFO, 0, &rec);
	assert_int_equal(rec.len, sizeof(uint32_t));
	memcpy(&asked, rec.data, sizeof(asked));
	assert_int_equal(asked, nsock);
	if (c->silent) {
		/*
		 * Meanwhile the engine serves everyone else: the guests, and
		 * other control clients at once; a second ss waits its turn.
		 */
		h_roundtrip(W.vm2);
		h_roundtrip(W.vm1);
		fd2 = h_ctl_start("{\"cmd\":\"ss\",\"guest\":\"vm1\"}");
		assert_true(fd2 >= 0);
		t = h_now();
		json_object_put(h_ctl_ok("{\"cmd\":\"list\"}"));
		t = h_now() - t;
		/* Answered while the ss still waits, not after it. */
		if (poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 0))
			fail_msg("list answered only after the ss (%.2f s)", t);
	} else {
		tnsm_info_record(nsock, &si[0]);
		nk_hdr_init(&h, NK_OP_INFO, NK_F_REPLY, c->hsock, rec.h.req_id);
		h.status = (uint32_t)c->status;
		h_nsm_send(&h, si, c->mut(si, sizeof(si[0])));
	}
	r = h_ctl_finish(fd);
	assert_non_null(r);
	arr = out_sockets(r, 1);
	e = json_object_array_get_idx(arr, 0);
	assert_non_null(h_json_str(e, "info_error"));
	if (!strstr(h_json_str(e, "info_error"), c->want))
		fail_msg("info_error \"%s\", want \"%s\"", h_json_str(e, "info_error"), c->want);
	assert_null(h_json_str(e, "state"));
	assert_string_equal(h_json_str(e, "engine_state"), "open");
	json_object_put(r);
	h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, c->proto_errors);

	if (c->silent) {
		/* Not asked again while that request is outstanding... */
		r = h_ctl_finish(fd2);
		assert_non_null(r);
		e = json_object_array_get_idx(out_sockets(r, 1), 0);
		assert_non_null(strstr(h_json_str(e, "info_error"), "earlier INFO request"));
		json_object_put(r);
		/* ...whose late answer is dropped without complaint. */
		tnsm_info_record(nsock, &si[0]);
		nk_hdr_init(&h, NK_OP_INFO, NK_F_REPLY, 0, rec.h.req_id);
		h_nsm_send(&h, si, sizeof(si[0]));
		h_roundtrip(W.vm1);
		h_assert_delta(H_NSM, &n0, HC_PROTO_ERRORS, 0);
	}
	/* The NSM answering again, ss is whole again. */
	tnsm_set_reply(W.nsm, NK_OP_INFO, TNSM_AUTO, 0);
	r = h_ctl_ok("{\"cmd\":\"ss\",\"guest\":\"vm1\"}");
	ss_assert_info(json_object_array_get_idx(out_sockets(r, 1), 0), nsock);
	json_object_put(r);
	h_close(W.vm1, id);
	h_pass();
}

/* The first entry of "ss guest vm1", whose Note must contain @want. */
static void ss_note(json_object *r, const char *want)
{
	json_object *e;

	assert_non_null(r);
	e = json_object_array_get_idx(out_sockets(r, 1), 0);
	if (!h_json_str(e, "info_error") || !strstr(h_json_str(e, "info_error"), want))
		fail_msg("%s: want \"%s\"", json_object_to_json_string(e), want);
	json_object_put(r);
}

/*
 * The NSM goes away while INFO is outstanding; one that does not offer
 * NK_FEAT_INFO (a v1 NSM) is never sent it.
 */
static void t_ss_nsm_lost_and_v1(void **state)
{
	uint32_t id = h_new_sock_id();
	struct tnsm_rec rec;
	struct nk_hdr ev;
	char path[256];
	size_t pos;
	int fd;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 4096, NULL), 0);
	tnsm_set_reply(W.nsm, NK_OP_INFO, TNSM_SILENT, 0);
	pos = tnsm_log_count(W.nsm);
	fd = h_ctl_start("{\"cmd\":\"ss\",\"guest\":\"vm1\"}");
	assert_true(fd >= 0);
	h_nsm_expect(&pos, NK_OP_INFO, 0, &rec);
	tnsm_stop(W.nsm);
	W.nsm = NULL;
	ss_note(h_ctl_finish(fd), "the NSM went away");
	h_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(ev.op, NK_EV_RESET);
	h_close(W.vm1, id);
	h_wait_state(H_NSM, "waiting");

	/* An NSM of before INFO. */
	h_sock_path(path, sizeof(path), H_NSM);
	W.nsm = tnsm_start_opts(path, 0, NK_FEAT_INET6 | NK_FEAT_DGRAM);
	assert_non_null(W.nsm);
	h_wait_state(H_NSM, "ready");
	pos = tnsm_log_count(W.nsm);
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 4096, NULL), 0);
	/* Nor NK_FEAT_WEIGHT: SOCKET says no weight. */
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &rec);
	assert_int_equal(rec.h.arg[3], (uint64_t)H_ID_VM1 << 32);
	pos = tnsm_log_count(W.nsm);
	ss_note(h_ctl("{\"cmd\":\"ss\",\"guest\":\"vm1\"}"), "does not answer INFO");
	h_nsm_none(pos, NK_OP_INFO, H_QUIET_MS);
	h_close(W.vm1, id);
	tnsm_stop(W.nsm);
	W.nsm = NULL;
	h_wait_state(H_NSM, "waiting");

	W.nsm = h_nsm_open(H_NSM);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

/* 10,000 sockets: "sockets" and "ss" stream them all (one 1 MiB line did not). */
static void t_ss_many(void **state)
{
	uint32_t first = h_new_sock_id(), i;
	json_object *o, *arr, *e;
	size_t k;

	(void)state;
	for (i = 1; i < MANY; i++)
		h_new_sock_id();
	for (i = 0; i < MANY; i++)
		assert_int_equal(h_socket(W.vm1, first + i, 2, 1, 4096, NULL), 0);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "sockets", "vm1", NULL), 0);
	o = out_json(true);
	out_sockets(o, MANY);
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "--json", "ss", "guest", "vm1", NULL), 0);
	o = out_json(true);
	arr = out_sockets(o, MANY);
	for (k = 0; k < MANY; k++) {
		e = json_object_array_get_idx(arr, k);
		if (h_json_str(e, "info_error"))
			fail_msg("entry %zu: %s", k, h_json_str(e, "info_error"));
		assert_int_equal(h_json_u64(e, "rtt_us"),
				 TNSM_INFO_RTT(h_json_u64(e, "nsm_sock")));
	}
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "ss", "guest", "vm1", NULL), 0);
	assert_int_equal(out_lines(), 1 + MANY);
	for (i = 0; i < MANY; i++)
		h_close(W.vm1, first + i);
	h_pass();
}

static void t_kill(void **state)
{
	uint32_t id = h_new_sock_id(), other = h_new_sock_id(), nsock;
	struct h_counters g0, n0;
	struct tnsm_rec rec;
	struct nk_hdr h;
	char sid[16];
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 4096, NULL), 0);
	assert_int_equal(h_socket(W.vm1, other, 2, 1, 4096, NULL), 0);
	nsock = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);
	pos = tnsm_log_count(W.nsm);
	snprintf(sid, sizeof(sid), "%u", id);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", sid, NULL), 0);
	/* The guest sees a reset, the NSM's socket is closed. */
	h_recv(W.vm1, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_EV_RESET);
	assert_int_equal(h.sock, id);
	assert_int_equal((int32_t)h.status, -ECONNRESET);
	h_nsm_expect(&pos, NK_OP_CLOSE, nsock, &rec);
	h_assert_delta(H_VM1, &g0, HC_RESETS, 1);
	h_assert_delta(H_VM1, &g0, HC_CONN_RESETS, 1);
	h_assert_delta(H_NSM, &n0, HC_RESETS, 0);
	/* The per-guest counters, in nkctl stats. */
	assert_int_equal(nkctl("-s", W.ctl, "stats", "vm1", NULL), 0);
	assert_non_null(strstr(out, "conn_resets"));
	/* ss says so, and does not ask the NSM about it. */
	assert_int_equal(nkctl("-s", W.ctl, "--json", "ss", "guest", "vm1", NULL), 0);
	assert_non_null(strstr(out, "reset by the engine: not asked"));
	/* Twice, unknown, wrong role: the engine's error; malformed: usage. */
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", sid, NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", "4000000000", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "nsm0", "1", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "nosuch", "1", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", "abc", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", "0", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", "4294967296", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "kill", "vm1", NULL), 2);
	/* The other socket is untouched; the killed one closes as a reset one. */
	h_roundtrip(W.vm1);
	assert_non_null(h_sock_entry(H_VM1, other));
	h_close(W.vm1, id);
	h_close(W.vm1, other);
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

/*
 * set: a running guest's weight and limits change at once and act (a
 * socket beyond the new max_sockets gets -EMFILE, counted), --json gives
 * the new values, the change is said not to be persistent, the other
 * guest is unchanged; every bad request names the endpoint or key and
 * changes nothing.
 */
static void t_set(void **state)
{
	uint32_t a = h_new_sock_id(), b = h_new_sock_id();
	json_object *o, *v;
	uint64_t n, lim;
	char arg[64];

	(void)state;
	assert_int_equal(h_socket(W.vm2, a, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	n = h_counter(H_VM2, HC_SOCKETS);
	assert_int_equal(nkctl("-s", W.ctl, "-j", "set", "vm2", "weight=7", "max_conn_rate=50",
			       NULL), 0);
	o = out_json(true);
	assert_string_equal(h_json_str(o, "endpoint"), "vm2");
	assert_int_equal(h_json_u64(o, "weight"), 7);
	assert_int_equal(h_json_u64(o, "max_conn_rate"), 50);
	assert_true(json_object_object_get_ex(o, "persistent", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(o);
	snprintf(arg, sizeof(arg), "max_sockets=%llu", (unsigned long long)n);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", arg, NULL), 0);
	assert_non_null(strstr(out, "vm2 set\n"));
	assert_non_null(strstr(out, "weight"));
	assert_non_null(strstr(err_out, "not persistent"));
	o = h_list_ep(H_VM2);
	assert_int_equal(h_json_u64(o, "weight"), 7);
	assert_int_equal(h_json_u64(o, "max_sockets"), n);
	assert_int_equal(h_json_u64(o, "max_conn_rate"), 50);
	json_object_put(o);
	o = h_list_ep(H_VM1);
	assert_int_equal(h_json_u64(o, "weight"), 1);
	lim = h_json_u64(o, "max_sockets");
	assert_true(lim > n);
	json_object_put(o);
	lim = h_counter(H_VM2, HC_SOCKET_LIMIT);
	assert_int_equal(h_socket(W.vm2, b, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);
	assert_int_equal(h_counter(H_VM2, HC_SOCKET_LIMIT), lim + 1);

	/* Engine errors: exit 1, the endpoint and key named, nothing changed. */
	assert_int_equal(nkctl("-s", W.ctl, "-j", "set", "vm2", "weight=2", "speed=3", NULL), 1);
	o = out_json(false);
	assert_int_equal(h_json_u64(o, "errno"), EINVAL);
	assert_string_equal(h_json_str(o, "endpoint"), "vm2");
	assert_string_equal(h_json_str(o, "key"), "speed");
	assert_string_equal(h_json_str(o, "error"), "vm2: unknown key 'speed'");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "weight=1001", NULL), 1);
	assert_non_null(strstr(err_out, "vm2: bad value '1001' for weight: 1 to 1000"));
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "max_sockets=0", NULL), 1);
	assert_non_null(strstr(err_out, "max_sockets"));
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "address=10.0.0.300", NULL), 1);
	assert_non_null(strstr(err_out, "for address"));
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "nsm=nsm0", NULL), 1);
	assert_non_null(strstr(err_out, "attach or detach"));
	assert_int_equal(nkctl("-s", W.ctl, "-j", "set", "vm2", "socket=x.sock", NULL), 1);
	o = out_json(false);
	assert_string_equal(h_json_str(o, "key"), "socket");
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "queue_pairs=2", NULL), 1);
	assert_int_equal(nkctl("-s", W.ctl, "-j", "set", "nsm0", "weight=2", NULL), 1);
	o = out_json(false);
	assert_string_equal(h_json_str(o, "endpoint"), "nsm0");
	assert_non_null(strstr(h_json_str(o, "error"), "not a guest"));
	json_object_put(o);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm9", "weight=2", NULL), 1);
	assert_non_null(strstr(err_out, "unknown endpoint 'vm9'"));
	o = h_list_ep(H_VM2);
	assert_int_equal(h_json_u64(o, "weight"), 7);
	json_object_put(o);

	/* Usage errors: exit 2, nothing sent. */
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "weight", NULL), 2);
	assert_non_null(strstr(err_out, "'weight' is not KEY=VALUE"));
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "weight=1", "weight=2", NULL), 2);
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "name=vm1", NULL), 2);

	/* Back as the file has it, the socket limit lifted. */
	assert_int_equal(nkctl("-s", W.ctl, "set", "vm2", "weight=1", "max_sockets=4096",
			       "max_conn_rate=0", NULL), 0);
	assert_int_equal(h_socket(W.vm2, b, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_close(W.vm2, a);
	h_close(W.vm2, b);
	h_roundtrip(W.vm2);
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
	H_TEST(t_ss),
	H_TEST(t_ss_bad_filters),
	H_TEST(t_kill),
	H_TEST(t_ss_nsm_lost_and_v1),
	H_TEST(t_ss_many),
	H_TEST(t_add_remove),
	H_TEST(t_set),
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

/* tests[], then a test a row of info_cases[], named after the row. */
int main(void)
{
	static const struct h_engine_opts opts = { .max_sockets = MANY + 16 };
	struct CMUnitTest all[ARRAY_SIZE(tests) + ARRAY_SIZE(info_cases)];
	struct h_group g = {
		.name = "nkctl", .tests = all, .n = ARRAY_SIZE(all), .opts = &opts,
		.prepare = prepare,
	};
	size_t i;

	memcpy(all, tests, sizeof(tests));
	for (i = 0; i < ARRAY_SIZE(info_cases); i++)
		all[ARRAY_SIZE(tests) + i] = (struct CMUnitTest)H_TEST_PRE(
			info_cases[i].name, t_ss_info_case, &info_cases[i]);
	return h_main(&g);
}
