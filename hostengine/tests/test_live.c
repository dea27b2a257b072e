// SPDX-License-Identifier: GPL-2.0
/*
 * Live endpoints: "add", "remove", "attach" and "detach" on the control
 * socket and SIGHUP's reload of the configuration file change the running
 * engine without disturbing the other endpoints.
 *
 * While each test changes the engine, a background thread (bg_*) keeps a
 * verified transfer going from vm1 to the test NSM on nsm0: it must see no
 * error and no gap above BG_GAP_MAX_S between two credit returns, and the
 * NSM must have received every byte, checksum matching.  The background
 * thread makes no cmocka assertion (only the test thread may): it records
 * its first error, which the test thread asserts on after joining it.
 *
 * New endpoints are played by vufront too: a second test NSM (tnsm) and
 * guests opened with h_guest_open().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "harness.h"
#include "tnsm.h"

#define BG_GAP_MAX_S	1.0	/* the longest pause of vm1's transfer allowed */
#define BG_MIN_S	0.5	/* the transfer runs at least this long */
#define WAIT_MS		5000
#define HE_MAX_SOCKETS_DEFAULT	4096	/* [engine] max_sockets by default */

/* ------------------------------------------------------------------ */
/* The background transfer                                             */
/* ------------------------------------------------------------------ */

static struct bg {
	pthread_t th;
	struct nk_ep *ep;
	struct h_stream s;
	bool running;			/* test thread */
	bool stop;			/* atomic */
	char err[256];
	double start, last, max_gap, gap_at;	/* gap_at: when the longest gap ended */
	uint64_t credits;
	uint64_t req_id;
} bg;

static void bg_fail(const char *fmt, int v)
{
	if (!bg.err[0])
		snprintf(bg.err, sizeof(bg.err), fmt, v);
}

static void bg_progress(void)
{
	double now = h_now();

	if (now - bg.last > bg.max_gap) {
		bg.max_gap = now - bg.last;
		bg.gap_at = now;
	}
	bg.last = now;
}

static void *bg_main(void *arg)
{
	uint32_t max = nk_ep_max_payload(bg.ep);
	uint8_t *buf = malloc(max), *rbuf = malloc(max);
	struct h_stream *s = &bg.s;
	struct nk_hdr h;
	int len, ret;

	(void)arg;
	if (!buf || !rbuf) {
		bg_fail("out of memory (%d)", 0);
		goto out;
	}
	while (!bg.err[0] && !__atomic_load_n(&bg.stop, __ATOMIC_ACQUIRE)) {
		uint32_t n = nk_credit_tx_space(&s->tx);

		if (n > max)
			n = max;
		if (n) {
			h_pattern(buf, n, s->seed, s->tx_done);
			memset(&h, 0, sizeof(h));
			h.op = NK_OP_SEND;
			h.sock = s->id;
			h.req_id = bg.req_id++;
			nk_credit_rx_fill(&s->rx, &h);
			ret = nk_ep_send(bg.ep, &h, buf, n);
			if (ret) {
				bg_fail("SEND: %d", ret);
				break;
			}
			s->tx_hash = h_fnv1a(s->tx_hash, buf, n);
			s->tx.tx_cnt += n;
			s->tx_done += n;
		}
		len = nk_ep_recv(bg.ep, &h, rbuf, max, n ? 0 : 50);
		if (len == -ETIMEDOUT)
			continue;
		if (len < 0) {
			bg_fail("recv: %d", len);
			break;
		}
		if (h.op != NK_OP_CREDIT || (h.flags & NK_F_REPLY) || h.sock != s->id) {
			bg_fail("unexpected message op %#x", h.op);
			break;
		}
		if (nk_credit_tx_update(&s->tx, h.buf_alloc, h.fwd_cnt)) {
			bg_fail("bad credit from the NSM (%d)", 0);
			break;
		}
		bg.credits++;
		bg_progress();
	}
	bg_progress();
out:
	free(buf);
	free(rbuf);
	return NULL;
}

/* What the test thread did when, to name what the longest gap overlapped. */
static struct {
	double t;
	int line;
} steps[64];
static unsigned int nr_steps;

static void step(int line)
{
	if (nr_steps < ARRAY_SIZE(steps)) {
		steps[nr_steps].t = h_now();
		steps[nr_steps++].line = line;
	}
}

/* Before each control operation of a test: its line. */
#define STEP()	step(__LINE__)

/* The steps running during [@from, @to]: times relative to @to. */
static void steps_print(double from, double to)
{
	unsigned int i;

	for (i = 0; i < nr_steps; i++) {
		bool running = steps[i].t <= from && (i + 1 == nr_steps || steps[i + 1].t > from);

		if (running || (steps[i].t > from && steps[i].t <= to))
			printf("# %+.3f s: %s line %d\n", steps[i].t - to, __FILE__,
			       steps[i].line);
	}
}

/* vm1 starts sending to nsm0 in the background. */
static void bg_start(void)
{
	memset(&bg, 0, sizeof(bg));
	bg.ep = W.vm1;
	bg.req_id = 1ULL << 62;		/* far from h_new_req_id()'s */
	tnsm_record_sends(W.nsm, false);
	h_stream_open(W.vm1, H_VM1, &bg.s, 1 << 20, 0x11feULL);
	bg.start = bg.last = h_now();
	nr_steps = 0;
	assert_int_equal(pthread_create(&bg.th, NULL, bg_main, NULL), 0);
	bg.running = true;
}

/* Stop the thread, if it runs (a test failed while it ran). */
static void bg_join(void)
{
	if (!bg.running)
		return;
	__atomic_store_n(&bg.stop, true, __ATOMIC_RELEASE);
	pthread_join(bg.th, NULL);
	bg.running = false;
}

static int live_teardown(void **state)
{
	bg_join();
	return h_test_teardown(state);
}

#define LIVE_TEST(f)	cmocka_unit_test_setup_teardown(f, h_test_setup, live_teardown)

/* A message within H_QUIET_MS: 0, or -ETIMEDOUT. */
static int h_recv_any(struct nk_ep *ep, struct nk_hdr *h)
{
	int len = nk_ep_recv(ep, h, NULL, 0, H_QUIET_MS);

	return len == -ETIMEDOUT ? len : 0;
}

/* Stop it and check it: no error, no long gap, every byte delivered. */
static void bg_check(void)
{
	struct tnsm_sock_info si;
	struct nk_hdr h;
	double ran;

	while (h_now() - bg.start < BG_MIN_S)
		usleep(10000);
	bg_join();
	ran = h_now() - bg.start;
	printf("# vm1 transfer: %.1f MiB in %.2f s, %llu credit returns, longest gap %.3f s\n",
	       bg.s.tx_done / 1048576.0, ran, (unsigned long long)bg.credits, bg.max_gap);
	if (bg.err[0])
		fail_msg("vm1's transfer: %s", bg.err);
	assert_true(bg.credits > 0);
	if (bg.max_gap >= BG_GAP_MAX_S) {
		printf("# the test's steps during the gap (times relative to its end):\n");
		steps_print(bg.gap_at - bg.max_gap, bg.gap_at);
		fail_msg("vm1's transfer stalled for %.3f s", bg.max_gap);
	}
	assert_int_equal(tnsm_wait_rx(W.nsm, bg.s.nsm_sock, bg.s.tx_done, WAIT_MS), 0);
	assert_int_equal(tnsm_sock(W.nsm, bg.s.nsm_sock, &si), 0);
	assert_true(si.rx_bytes == bg.s.tx_done);
	assert_true(si.rx_hash == bg.s.tx_hash);
	/* The NSM's last credit returns, then the stream's CLOSE. */
	while (h_recv_any(W.vm1, &h) == 0) {
		assert_int_equal(h.op, NK_OP_CREDIT);
		assert_int_equal(h.sock, bg.s.id);
	}
	h_close(W.vm1, bg.s.id);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* The reply to @req must be an error @err naming @ep (and @key) with @msg in it. */
static void ctl_refused(const char *req, int err, const char *ep, const char *key,
			const char *msg)
{
	json_object *r = h_ctl("%s", req), *v;

	assert_non_null(r);
	if (!json_object_object_get_ex(r, "ok", &v) || json_object_get_boolean(v))
		fail_msg("%s: accepted: %s", req, json_object_to_json_string(r));
	if (h_json_u64(r, "errno") != (uint64_t)err || !h_json_str(r, "error") ||
	    !strstr(h_json_str(r, "error"), msg) ||
	    (ep && (!h_json_str(r, "endpoint") || strcmp(h_json_str(r, "endpoint"), ep))) ||
	    (key && (!h_json_str(r, "key") || strcmp(h_json_str(r, "key"), key))))
		fail_msg("%s: want errno %d \"%s\" endpoint %s key %s, got %s", req, err, msg,
			 ep ? ep : "-", key ? key : "-", json_object_to_json_string(r));
	json_object_put(r);
}

/* The engine's endpoint list, as text (states and counts included). */
static char *list_text(void)
{
	json_object *r = h_ctl_ok("{\"cmd\": \"list\"}");
	char *s = strdup(json_object_to_json_string(r));

	json_object_put(r);
	assert_non_null(s);
	return s;
}

static bool listed(const char *ep)
{
	json_object *r = h_ctl_ok("{\"cmd\": \"list\"}"), *arr, *e;
	bool found = false;
	size_t i;

	assert_true(json_object_object_get_ex(r, "endpoints", &arr));
	for (i = 0; i < json_object_array_length(arr); i++) {
		e = json_object_array_get_idx(arr, i);
		if (!strcmp(h_json_str(e, "name"), ep))
			found = true;
	}
	json_object_put(r);
	return found;
}

static uint32_t max_id_seen;

/* "add": ok, not persistent, a fresh id (above every id seen). */
static uint32_t add_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static uint32_t add_ok(const char *fmt, ...)
{
	char req[1024];
	json_object *r, *v;
	uint32_t id;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	r = h_ctl_ok("%s", req);
	assert_true(json_object_object_get_ex(r, "persistent", &v));
	assert_false(json_object_get_boolean(v));
	id = h_json_u64(r, "id");
	json_object_put(r);
	if (id <= max_id_seen)
		fail_msg("id %u given again (ids up to %u seen)", id, max_id_seen);
	max_id_seen = id;
	return id;
}

static void remove_ok(const char *ep)
{
	json_object *r = h_ctl_ok("{\"cmd\": \"remove\", \"name\": \"%s\"}", ep), *v;

	assert_true(json_object_object_get_ex(r, "persistent", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(r);
	assert_false(listed(ep));
}

/* The next message on @ep is EV_RESET of @sock with @status; then CLOSE it. */
static void expect_reset(struct nk_ep *ep, uint32_t sock, int status)
{
	struct nk_hdr h;

	h_recv(ep, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_EV_RESET);
	assert_int_equal(h.sock, sock);
	assert_int_equal((int32_t)h.status, status);
	h_close(ep, sock);
}

static const char *attached(const char *ep)
{
	static char name[64];
	json_object *e = h_list_ep(ep);
	const char *n = h_json_str(e, "nsm");

	snprintf(name, sizeof(name), "%s", n ? n : "");
	json_object_put(e);
	return name;
}

static uint32_t max_listed_id(void)
{
	json_object *r = h_ctl_ok("{\"cmd\": \"list\"}"), *arr;
	uint32_t m = 0, id;
	size_t i;

	assert_true(json_object_object_get_ex(r, "endpoints", &arr));
	for (i = 0; i < json_object_array_length(arr); i++) {
		id = h_json_u64(json_object_array_get_idx(arr, i), "id");
		if (id > m)
			m = id;
	}
	json_object_put(r);
	return m;
}

/* ------------------------------------------------------------------ */
/* The configuration file and SIGHUP                                   */
/* ------------------------------------------------------------------ */

static char conf_path[256];
static char *conf_orig;		/* the file as the harness wrote it */

static void conf_write(const char *text)
{
	FILE *f = fopen(conf_path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* The original file with @from replaced by @to (first match) and @tail added. */
static void conf_edit(const char *from, const char *to, const char *tail)
{
	char *buf = malloc(strlen(conf_orig) + strlen(to) + strlen(tail) + 1);
	const char *at = from ? strstr(conf_orig, from) : NULL;

	assert_non_null(buf);
	if (from)
		assert_non_null(at);
	if (at)
		sprintf(buf, "%.*s%s%s%s", (int)(at - conf_orig), conf_orig, to,
			at + strlen(from), tail);
	else
		sprintf(buf, "%s%s", conf_orig, tail);
	conf_write(buf);
	free(buf);
}

static long log_size(void)
{
	struct stat st;

	assert_int_equal(stat(W.log, &st), 0);
	return st.st_size;
}

/* Wait for @what in the engine log past @from; asserted to come. */
static void log_wait(long from, const char *what)
{
	double deadline = h_now() + WAIT_MS / 1000.0;
	char *buf = NULL;

	do {
		FILE *f = fopen(W.log, "r");
		size_t n;

		assert_non_null(f);
		free(buf);
		buf = calloc(1, 1 << 20);
		assert_non_null(buf);
		fseek(f, from, SEEK_SET);
		n = fread(buf, 1, (1 << 20) - 1, f);
		buf[n] = '\0';
		fclose(f);
		if (strstr(buf, what)) {
			free(buf);
			return;
		}
		assert_true(h_engine_alive());
		usleep(20000);
	} while (h_now() < deadline);
	h_log_tail(20);
	free(buf);
	fail_msg("no \"%s\" in the engine log", what);
}

/* SIGHUP; @result must follow in the log, the engine must live on. */
static void hup(const char *result)
{
	long from = log_size();

	assert_int_equal(kill(W.pid, SIGHUP), 0);
	log_wait(from, result);
	assert_true(h_engine_alive());
}

static int ready(void)
{
	FILE *f;
	long n;

	snprintf(conf_path, sizeof(conf_path), "%s/engine.conf", W.dir);
	f = fopen(conf_path, "r");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	conf_orig = calloc(1, n + 1);
	if (!conf_orig || fread(conf_orig, 1, n, f) != (size_t)n) {
		fclose(f);
		return -1;
	}
	fclose(f);
	max_id_seen = H_ID_VM3;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/*
 * An NSM and a guest added live pass traffic; removing the guest closes
 * its sockets at the NSM, detaching resets them for the guest, removing
 * the NSM resets its guests' sockets and detaches them; ids are never
 * given again; vm1's transfer to nsm0 goes on throughout.
 */
static void t_add_attach_detach_remove(void **state)
{
	struct tnsm_sock_info si;
	struct tnsm_rec rec;
	struct tnsm *nsm1;
	struct nk_ep *vm4;
	uint32_t nsm1_id, vm4_id, vm4_id2, a, b, c, na;
	size_t pos;

	(void)state;
	bg_start();

	STEP();
	nsm1_id = add_ok("{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"nsm1\"}");
	STEP();
	nsm1 = h_nsm_open("nsm1");
	assert_int_equal(tnsm_ep_id(nsm1), nsm1_id);
	STEP();
	vm4_id = add_ok("{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm4\", "
			"\"socket\": \"vm4.sock\", \"nsm\": \"nsm1\", \"address\": \"10.0.0.14\", "
			"\"weight\": \"2\", \"queue_pairs\": 2}");
	assert_string_equal(attached("vm4"), "nsm1");
	STEP();
	vm4 = h_guest_open("vm4", NULL);
	assert_non_null(vm4);
	assert_int_equal(nk_ep_id(vm4), vm4_id);

	/* Traffic through nsm1, which learns vm4's id. */
	STEP();
	h_roundtrip(vm4);
	a = h_new_sock_id();
	STEP();
	assert_int_equal(h_socket(vm4, a, 2, 1, 65536, NULL), 0);
	na = h_nsm_id("vm4", a);
	assert_int_equal(tnsm_sock(nsm1, na, &si), 0);
	assert_int_equal(si.guest_ep, vm4_id);

	/* Removing the guest: nsm1 gets a CLOSE for its socket. */
	pos = 0;
	STEP();
	remove_ok("vm4");
	assert_int_equal(tnsm_wait_sock(nsm1, &pos, NK_OP_CLOSE, na, WAIT_MS, &rec), 0);
	STEP();
	nk_ep_close(vm4);
	STEP();
	ctl_refused("{\"cmd\": \"remove\", \"name\": \"vm4\"}", ENOENT, "vm4", NULL,
		    "unknown endpoint 'vm4'");

	/* The same name again: a new id; detached until attached. */
	STEP();
	vm4_id2 = add_ok("{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm4\", "
			 "\"address\": \"10.0.0.14\"}");
	assert_true(vm4_id2 > vm4_id);
	assert_string_equal(attached("vm4"), "");
	STEP();
	vm4 = h_guest_open("vm4", NULL);
	assert_non_null(vm4);
	STEP();
	json_object_put(h_ctl_ok("{\"cmd\": \"attach\", \"guest\": \"vm4\", \"nsm\": \"nsm1\"}"));
	b = h_new_sock_id();
	STEP();
	assert_int_equal(h_socket(vm4, b, 2, 1, 65536, NULL), 0);
	assert_int_equal(tnsm_sock(nsm1, h_nsm_id("vm4", b), &si), 0);
	assert_int_equal(si.guest_ep, vm4_id2);

	/* Detach: the guest's socket is reset. */
	STEP();
	json_object_put(h_ctl_ok("{\"cmd\": \"detach\", \"guest\": \"vm4\"}"));
	STEP();
	expect_reset(vm4, b, -ENETDOWN);
	assert_string_equal(attached("vm4"), "");

	/* Removing its NSM: the guest's socket is reset, the guest detached. */
	STEP();
	json_object_put(h_ctl_ok("{\"cmd\": \"attach\", \"guest\": \"vm4\", \"nsm\": \"nsm1\"}"));
	c = h_new_sock_id();
	STEP();
	assert_int_equal(h_socket(vm4, c, 2, 1, 65536, NULL), 0);
	STEP();
	remove_ok("nsm1");
	STEP();
	expect_reset(vm4, c, -ECONNRESET);
	assert_string_equal(attached("vm4"), "");
	STEP();
	tnsm_stop(nsm1);
	STEP();
	ctl_refused("{\"cmd\": \"remove\", \"name\": \"nsm1\"}", ENOENT, "nsm1", NULL,
		    "unknown endpoint 'nsm1'");

	/* vm4 on nsm0 beside vm1's transfer, then gone. */
	STEP();
	json_object_put(h_ctl_ok("{\"cmd\": \"attach\", \"guest\": \"vm4\", \"nsm\": \"nsm0\"}"));
	STEP();
	h_roundtrip(vm4);
	STEP();
	remove_ok("vm4");
	STEP();
	nk_ep_close(vm4);
	STEP();
	h_roundtrip(W.vm2);
	bg_check();
	h_pass();
}

/*
 * Bad add, remove, attach and detach requests: each a precise error
 * naming the endpoint (and key), the engine unchanged, vm1's transfer
 * undisturbed.
 */
static void t_bad_commands(void **state)
{
	char req[1024], dir[300], file[200], msg[800];
	char *before, *after;
	size_t i;
	static const struct {
		const char *req;
		int err;
		const char *ep, *key, *msg;
	} bad[] = {
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm1\"}",
		  EEXIST, "vm1", NULL, "endpoint 'vm1' exists" },
		{ "{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"vm1\"}",
		  EEXIST, "vm1", NULL, "endpoint 'vm1' exists" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"nsm\": \"nope\"}",
		  ENOENT, "vm6", "nsm", "vm6: nsm 'nope' is not an NSM endpoint" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"nsm\": \"vm1\"}",
		  ENOENT, "vm6", "nsm", "vm6: nsm 'vm1' is not an NSM endpoint" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"weight\": \"0\"}",
		  EINVAL, "vm6", "weight", "vm6: bad value '0' for weight: 1 to 1000" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"weight\": 1001}",
		  EINVAL, "vm6", "weight", "vm6: bad value '1001' for weight: 1 to 1000" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"queue_pairs\": \"0\"}",
		  EINVAL, "vm6", "queue_pairs", "bad value '0' for queue_pairs: 1 to" },
		{ "{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"n6\", \"queue_pairs\": \"99\"}",
		  EINVAL, "n6", "queue_pairs", "bad value '99' for queue_pairs: 1 to" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"carriers\": \"0\"}",
		  EINVAL, "vm6", "carriers", "bad value '0' for carriers: 1 to" },
		{ "{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"n6\", \"carriers\": 17}",
		  EINVAL, "n6", "carriers", "bad value '17' for carriers: 1 to" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"carriers\": 2, "
		  "\"queue_pairs\": 3}",
		  EINVAL, "vm6", "carriers", "vm6: queue_pairs 3 with 2 carriers: one pair each" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"address\": \"10.0.0.300\"}",
		  EINVAL, "vm6", "address", "bad value '10.0.0.300' for address: an IPv4 address" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"address6\": \"zz\"}",
		  EINVAL, "vm6", "address6", "bad value 'zz' for address6: an IPv6 address" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"max_sockets\": \"0\"}",
		  EINVAL, "vm6", "max_sockets",
		  "vm6: bad value '0' for max_sockets: sockets, 1 to 1048576" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"max_sockets\": 1048577}",
		  EINVAL, "vm6", "max_sockets",
		  "vm6: bad value '1048577' for max_sockets: sockets, 1 to 1048576" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"max_pending\": \"4095\"}",
		  EINVAL, "vm6", "max_pending",
		  "vm6: bad value '4095' for max_pending: bytes, 4096 to 1099511627776" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"max_pending\": \"1099511627777\"}",
		  EINVAL, "vm6", "max_pending",
		  "vm6: bad value '1099511627777' for max_pending: bytes, 4096 to 1099511627776" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"max_conn_rate\": \"-1\"}",
		  EINVAL, "vm6", "max_conn_rate", "vm6: bad value '-1' for max_conn_rate: "
		  "connections a second, 0 (no limit) to 1000000" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"conn_burst\": \"1000001\"}",
		  EINVAL, "vm6", "conn_burst", "vm6: bad value '1000001' for conn_burst: "
		  "connections, 0 (max_conn_rate) to 1000000" },
		{ "{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"n6\", \"max_sockets\": \"9\"}",
		  EINVAL, "n6", "max_sockets", "n6: unknown key 'max_sockets' in [nsm:n6]" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"speed\": \"9\"}",
		  EINVAL, "vm6", "speed", "vm6: unknown key 'speed' in [guest:vm6]" },
		{ "{\"cmd\": \"add\", \"role\": \"nsm\", \"name\": \"n6\", \"nsm\": \"nsm0\"}",
		  EINVAL, "n6", "nsm", "n6: unknown key 'nsm' in [nsm:n6]" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"weight\": true}",
		  EINVAL, "vm6", "weight", "value must be a string or a number" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", \"socket\": \"\"}",
		  EINVAL, "vm6", "socket", "bad value '' for socket: a path" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		  "\"socket\": \"vm1.sock\"}",
		  EEXIST, "vm6", "socket", "vm1.sock is vm1's" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"a/b\"}",
		  EINVAL, NULL, NULL, "bad endpoint name" },
		{ "{\"cmd\": \"add\", \"role\": \"router\", \"name\": \"vm6\"}",
		  EINVAL, NULL, NULL, "bad role: guest or nsm" },
		{ "{\"cmd\": \"add\", \"name\": \"vm6\"}",
		  EINVAL, NULL, NULL, "missing role" },
		{ "{\"cmd\": \"add\", \"role\": \"guest\"}",
		  EINVAL, NULL, NULL, "missing endpoint name" },
		{ "{\"cmd\": \"remove\", \"name\": \"nope\"}",
		  ENOENT, "nope", NULL, "unknown endpoint 'nope'" },
		{ "{\"cmd\": \"remove\"}",
		  EINVAL, NULL, NULL, "missing endpoint name" },
		{ "{\"cmd\": \"attach\", \"guest\": \"vm3\", \"nsm\": \"nope\"}",
		  ENOENT, "nope", NULL, "unknown endpoint 'nope'" },
		{ "{\"cmd\": \"attach\", \"guest\": \"vm3\", \"nsm\": \"vm2\"}",
		  EINVAL, "vm2", NULL, "wrong role: 'vm2' is not an NSM" },
		{ "{\"cmd\": \"attach\", \"guest\": \"nope\", \"nsm\": \"nsm0\"}",
		  ENOENT, "nope", NULL, "unknown endpoint 'nope'" },
		{ "{\"cmd\": \"detach\", \"guest\": \"nsm0\"}",
		  EINVAL, "nsm0", NULL, "wrong role: 'nsm0' is not a guest" },
	};

	(void)state;
	bg_start();
	before = list_text();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		STEP();
		ctl_refused(bad[i].req, bad[i].err, bad[i].ep, bad[i].key, bad[i].msg);
	}

	/* Socket paths: one that exists, one under a file, one under a missing dir. */
	snprintf(file, sizeof(file), "%s/taken.sock", W.dir);
	close(open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	snprintf(req, sizeof(req), "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		 "\"socket\": \"%s\"}", file);
	snprintf(msg, sizeof(msg), "vm6: socket %s exists", file);
	STEP();
	ctl_refused(req, EEXIST, "vm6", "socket", msg);
	snprintf(req, sizeof(req), "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		 "\"socket\": \"%s/x.sock\"}", file);
	snprintf(msg, sizeof(msg), "vm6: socket %s/x.sock: directory %s: Permission denied",
		 file, file);
	STEP();
	ctl_refused(req, EACCES, "vm6", NULL, msg);
	snprintf(req, sizeof(req), "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm6\", "
		 "\"socket\": \"%s/nodir/x.sock\"}", W.dir);
	STEP();
	ctl_refused(req, ENOENT, "vm6", NULL, "No such file or directory");
	if (geteuid()) {	/* root writes anywhere */
		snprintf(dir, sizeof(dir), "%s/ro", W.dir);
		assert_int_equal(mkdir(dir, 0555), 0);
		snprintf(req, sizeof(req), "{\"cmd\": \"add\", \"role\": \"guest\", "
			 "\"name\": \"vm6\", \"socket\": \"%s/x.sock\"}", dir);
		STEP();
		ctl_refused(req, EACCES, "vm6", NULL, "Permission denied");
		rmdir(dir);
	}
	unlink(file);

	after = list_text();
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_false(listed("vm6"));
	STEP();
	h_roundtrip(W.vm2);
	bg_check();
	h_pass();
}

/*
 * SIGHUP with endpoints added to, changed in and removed from the file:
 * the difference is applied, vm1's transfer goes on.  What nkctl changed
 * and the file does not say (an endpoint added, a guest detached) is
 * undone: it was not persistent.  (An engine without reload died of
 * SIGHUP: status 129.)
 */
static void t_reload_add_remove(void **state)
{
	uint32_t before_max = max_listed_id();
	struct tnsm *nsm2;
	struct nk_ep *vm5;
	json_object *e;

	(void)state;
	if (before_max > max_id_seen)
		max_id_seen = before_max;
	bg_start();
	/* Run-time changes the file does not have. */
	STEP();
	add_ok("{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm8\"}");
	STEP();
	json_object_put(h_ctl_ok("{\"cmd\": \"detach\", \"guest\": \"vm2\"}"));
	/* vm3 (the file's last section) gets an NSM and a weight. */
	conf_edit(NULL, "", "nsm = nsm0\nweight = 2\n\n[nsm:nsm2]\nsocket = nsm2.sock\n\n"
		  "[guest:vm5]\nsocket = vm5.sock\nnsm = nsm2\naddress = 10.0.0.15\n"
		  "weight = 4\n");
	STEP();
	hup("6 change(s)");
	assert_false(listed("vm8"));
	assert_string_equal(attached(H_VM2), H_NSM);
	assert_true(listed("nsm2"));
	e = h_list_ep("vm5");
	assert_string_equal(h_json_str(e, "nsm"), "nsm2");
	assert_int_equal(h_json_u64(e, "weight"), 4);
	assert_string_equal(h_json_str(e, "address"), "10.0.0.15");
	assert_true(h_json_u64(e, "id") > max_id_seen);
	max_id_seen = h_json_u64(e, "id");
	json_object_put(e);
	e = h_list_ep(H_VM3);
	assert_string_equal(h_json_str(e, "nsm"), "nsm0");
	assert_int_equal(h_json_u64(e, "weight"), 2);
	assert_int_equal(h_json_u64(e, "id"), H_ID_VM3);
	json_object_put(e);

	STEP();
	nsm2 = h_nsm_open("nsm2");
	STEP();
	vm5 = h_guest_open("vm5", NULL);
	assert_non_null(vm5);
	STEP();
	h_roundtrip(vm5);

	/* Back to the original file: nsm2 and vm5 go, vm3 as it was. */
	conf_write(conf_orig);
	STEP();
	hup("4 change(s)");
	assert_false(listed("nsm2"));
	assert_false(listed("vm5"));
	e = h_list_ep(H_VM3);
	assert_null(h_json_str(e, "nsm"));
	assert_int_equal(h_json_u64(e, "weight"), 1);
	json_object_put(e);
	STEP();
	nk_ep_close(vm5);
	STEP();
	tnsm_stop(nsm2);

	/* The same file again: nothing to do. */
	STEP();
	hup("0 change(s)");
	STEP();
	h_roundtrip(W.vm2);
	bg_check();
	h_pass();
}

/* A file that cannot be applied changes nothing and says why. */
static void t_reload_bad_file(void **state)
{
	/* line: the line the message names, < 0: past the original file's end */
	static const struct {
		const char *from, *to, *tail;
		int line;
		const char *msg;
	} bad[] = {
		{ NULL, NULL, "[guest:broken\n", -1, "section header without ']'" },
		{ NULL, NULL, "weight = 0\n", -1, "bad value '0' for weight: 1 to 1000" },
		{ NULL, NULL, "\n[guest:vm1]\n", -2, "endpoint 'vm1' defined twice" },
		{ NULL, NULL, "\n[guest:vm6]\nnsm = nope\n", -3,
		  "nsm 'nope' of guest 'vm6' is not an [nsm:] section" },
		{ "[nsm:nsm0]", "[nsm:nsm0]\nunknown = 1", "", 8,
		  "unknown key 'unknown' in [nsm:nsm0]" },
		{ NULL, NULL, "\n[guest:vm6]\nsocket = vm1.sock\n", 0, "vm6: socket " },
		{ "socket = vm1.sock", "socket = vm1b.sock", "", 0,
		  "vm1: socket cannot change while the engine runs" },
		{ "[guest:vm3]\nsocket = vm3.sock",
		  "[guest:vm3]\nsocket = vm3.sock\nqueue_pairs = 2", "", 0,
		  "vm3: queue_pairs cannot change while the engine runs" },
		{ "[guest:vm3]\nsocket = vm3.sock",
		  "[guest:vm3]\nsocket = vm3.sock\ncarriers = 2", "", 0,
		  "vm3: carriers cannot change while the engine runs" },
		{ NULL, NULL, "\n[guest:vm6]\ncarriers = 2\nqueue_pairs = 4\n", 0,
		  "vm6: queue_pairs 4 with 2 carriers: one pair each" },
		{ "poll = adaptive", "poll = busy", "", 0,
		  "[engine] poll cannot change while the engine runs" },
		{ NULL, NULL, "max_sockets = 0\n", -1,
		  "bad value '0' for max_sockets: sockets, 1 to 1048576" },
		{ NULL, NULL, "max_pending = lots\n", -1,
		  "bad value 'lots' for max_pending: bytes, 4096 to 1099511627776" },
		{ NULL, NULL, "max_conn_rate = 1000001\n", -1, "bad value '1000001' for "
		  "max_conn_rate: connections a second, 0 (no limit) to 1000000" },
		{ NULL, NULL, "conn_burst = 1e3\n", -1, "bad value '1e3' for conn_burst: "
		  "connections, 0 (max_conn_rate) to 1000000" },
		{ "poll = adaptive", "poll = adaptive\nmax_conn_rate = 5", "", 0,
		  "[engine] max_conn_rate cannot change while the engine runs" },
	};
	char *before, *after, msg[512];
	int lines = 0;
	const char *c;
	size_t i;

	(void)state;
	for (c = conf_orig; *c; c++)
		lines += *c == '\n';
	bg_start();
	before = list_text();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		long from = log_size();

		if (bad[i].line)
			snprintf(msg, sizeof(msg), "%s:%d: %s", conf_path,
				 bad[i].line > 0 ? bad[i].line : lines - bad[i].line, bad[i].msg);
		else
			snprintf(msg, sizeof(msg), "%s: %s", conf_path, bad[i].msg);
		conf_edit(bad[i].from, bad[i].to ? bad[i].to : "", bad[i].tail);
		STEP();
		assert_int_equal(kill(W.pid, SIGHUP), 0);
		log_wait(from, msg);
		log_wait(from, "nothing changed");
		assert_true(h_engine_alive());
		after = list_text();
		assert_string_equal(before, after);
		free(after);
	}
	conf_write(conf_orig);
	free(before);
	STEP();
	h_roundtrip(W.vm2);
	bg_check();
	h_pass();
}

/* vm2's limits as "list" shows them. */
static void assert_limits(uint64_t sockets, uint64_t pending, uint64_t rate, uint64_t burst)
{
	json_object *e = h_list_ep(H_VM2);

	assert_int_equal(h_json_u64(e, "max_sockets"), sockets);
	assert_int_equal(h_json_u64(e, "max_pending"), pending);
	assert_int_equal(h_json_u64(e, "max_conn_rate"), rate);
	assert_int_equal(h_json_u64(e, "conn_burst"), burst);
	json_object_put(e);
}

/*
 * SIGHUP changes a guest's limits live.  vm2's max_sockets lowered below
 * the sockets it holds: they stay usable, a new one is refused (-EMFILE,
 * counted) until it is under the limit again; the file as it was lifts
 * the limit.  vm1's transfer goes on undisturbed, its limits unchanged.
 * (Before, the keys were unknown: the reload changed nothing.)
 */
static void t_reload_limits(void **state)
{
	uint32_t a = h_new_sock_id(), b = h_new_sock_id(), c = h_new_sock_id();
	char to[256];
	struct h_counters g0;
	uint64_t n;
	json_object *e;

	(void)state;
	bg_start();
	assert_limits(HE_MAX_SOCKETS_DEFAULT, 8U << 20, 0, 0);
	STEP();
	assert_int_equal(h_socket(W.vm2, a, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm2, b, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	n = h_counter(H_VM2, HC_SOCKETS);
	snprintf(to, sizeof(to), "[guest:vm2]\nsocket = vm2.sock\nmax_sockets = %llu\n"
		 "max_pending = 65536\nmax_conn_rate = 10\nconn_burst = 20",
		 (unsigned long long)n - 1);
	conf_edit("[guest:vm2]\nsocket = vm2.sock", to, "");
	STEP();
	hup("1 change(s)");
	assert_limits(n - 1, 65536, 10, 20);
	e = h_list_ep(H_VM1);
	assert_int_equal(h_json_u64(e, "max_sockets"), HE_MAX_SOCKETS_DEFAULT);
	json_object_put(e);

	h_counters(H_VM2, &g0);
	STEP();
	assert_int_equal(h_socket(W.vm2, c, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);
	h_assert_delta(H_VM2, &g0, HC_SOCKET_LIMIT, 1);
	/* What it holds still works; one closed leaves it at the limit. */
	h_close(W.vm2, a);
	assert_int_equal(h_socket(W.vm2, c, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);
	h_assert_delta(H_VM2, &g0, HC_SOCKET_LIMIT, 2);
	h_close(W.vm2, b);
	assert_int_equal(h_socket(W.vm2, c, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_close(W.vm2, c);
	assert_int_equal(h_socket(W.vm2, a, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	assert_int_equal(h_socket(W.vm2, b, AF_INET, SOCK_STREAM, 65536, NULL), -EMFILE);

	/* The file as it was: the [engine] defaults again. */
	conf_write(conf_orig);
	STEP();
	hup("1 change(s)");
	assert_limits(HE_MAX_SOCKETS_DEFAULT, 8U << 20, 0, 0);
	assert_int_equal(h_socket(W.vm2, b, AF_INET, SOCK_STREAM, 65536, NULL), 0);
	h_close(W.vm2, a);
	h_close(W.vm2, b);
	STEP();
	h_roundtrip(W.vm2);
	bg_check();
	h_pass();
}

static const struct CMUnitTest tests[] = {
	LIVE_TEST(t_add_attach_detach_remove),
	LIVE_TEST(t_bad_commands),
	LIVE_TEST(t_reload_add_remove),
	LIVE_TEST(t_reload_bad_file),
	LIVE_TEST(t_reload_limits),
};

H_MAIN("live", tests, .ready = ready)
