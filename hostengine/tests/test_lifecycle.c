// SPDX-License-Identifier: GPL-2.0
/*
 * Life cycle: a guest or the NSM disconnecting mid-transfer, reconnecting
 * and saying HELLO again, and detach/attach through the control socket.
 * Tests that kill an endpoint bring it back in their teardown.
 *
 * The service's side of the life cycle runs an engine of its own: the
 * readiness notification systemd waits for (Type=notify), the journal's
 * log priorities, and the owner and mode of the sockets it creates.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "netkernel/nk_version.h"
#include "harness.h"
#include "tnsm.h"

#define MIB	(1ULL << 20)

static pid_t svc_pid;	/* an engine a service test started, until it exits */

static int td(void **state)
{
	char path[256];

	if (svc_pid > 0) {
		kill(svc_pid, SIGKILL);
		waitpid(svc_pid, NULL, 0);
		svc_pid = 0;
	}

	if (!W.nsm) {
		h_sock_path(path, sizeof(path), H_NSM);
		W.nsm = tnsm_start(path);
	}
	if (!W.vm1)
		W.vm1 = h_guest_open(H_VM1, NULL);
	if (!W.vm2)
		W.vm2 = h_guest_open(H_VM2, NULL);
	json_object_put(h_ctl("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	h_test_teardown(state);
	return W.nsm && W.vm1 && W.vm2 ? 0 : -1;
}

#define T(f)	{ #f, f, h_test_setup, td, NULL }

/* Wait until the engine lists no socket of @ep (its CLOSEs answered). */
static void wait_no_sockets(const char *ep)
{
	double deadline = h_now() + H_TIMEOUT_MS / 1000.0;

	while (h_nr_sockets(ep) && h_now() < deadline)
		usleep(10000);
	assert_int_equal(h_nr_sockets(ep), 0);
	assert_int_equal(h_counter(ep, HC_SOCKETS), 0);
}

/* @ep sends up to @n bytes of SEND on @s within the NSM's credit. */
static void send_some(struct nk_ep *ep, uint32_t id, uint64_t n)
{
	static uint8_t buf[NK_MAX_PAYLOAD];
	struct nk_hdr h;
	uint64_t off;

	h_pattern(buf, sizeof(buf), id, 0);
	for (off = 0; off < n; off += sizeof(buf)) {
		h_hdr(&h, NK_OP_SEND, id);
		h.req_id = h_new_req_id();
		h_send(ep, &h, buf, sizeof(buf));
	}
}

static void t_guest_disconnect_mid_transfer(void **state)
{
	struct h_counters g1;
	struct h_stream s[3], v1;
	struct tnsm_rec r;
	unsigned int i;
	int nsm_before;
	double deadline;
	size_t pos;

	(void)state;
	h_stream_open(W.vm1, H_VM1, &v1, 1 << 20, 11);
	h_counters(H_VM1, &g1);
	nsm_before = h_nr_sockets(H_NSM);
	for (i = 0; i < 3; i++)
		h_stream_open(W.vm2, H_VM2, &s[i], 256 << 10, 20 + i);
	/* Data both ways in flight: SENDs queued, EV_DATA streaming. */
	for (i = 0; i < 3; i++) {
		send_some(W.vm2, s[i].id, 512 << 10);
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, 64 * MIB, 30 + i), 0);
	}
	assert_int_equal(h_nr_sockets(H_VM2), 3);
	pos = tnsm_log_count(W.nsm);
	usleep(20000);
	nk_ep_close(W.vm2);
	W.vm2 = NULL;

	/* The NSM is told to CLOSE each of vm2's sockets. */
	for (i = 0; i < 3; i++) {
		size_t p = pos;

		h_nsm_expect(&p, NK_OP_CLOSE, s[i].nsm_sock, &r);
		assert_int_equal(r.h.flags & NK_F_REPLY, 0);
	}
	h_wait_state(H_VM2, "waiting");
	wait_no_sockets(H_VM2);
	/* Once the NSM has answered, the engine forgets the mappings. */
	deadline = h_now() + H_TIMEOUT_MS / 1000.0;
	while (h_nr_sockets(H_NSM) != nsm_before && h_now() < deadline)
		usleep(10000);
	assert_int_equal(h_nr_sockets(H_NSM), nsm_before);
	assert_int_equal(h_counter(H_NSM, HC_SOCKETS), nsm_before);

	/* vm1 is unaffected: its socket still works, 4 MiB each way. */
	v1.tx_total = v1.rx_total = 4 * MIB;
	assert_int_equal(tnsm_stream(W.nsm, v1.nsm_sock, 4 * MIB, 12), 0);
	assert_int_equal(h_xfer(W.vm1, &v1, 1, 60000), 0);
	assert_int_equal(tnsm_wait_rx(W.nsm, v1.nsm_sock, 4 * MIB, 60000), 0);
	h_assert_delta(H_VM1, &g1, HC_RESETS, 0);
	h_assert_delta(H_VM1, &g1, HC_ERRORS, 0);
	while (nk_ep_recv(W.vm1, &r.h, NULL, 0, 100) >= 0)
		assert_int_equal(r.h.op, NK_OP_CREDIT);
	h_close(W.vm1, v1.id);

	/* vm2 comes back: HELLO again, same id, and it works. */
	W.vm2 = h_guest_open(H_VM2, NULL);
	assert_non_null(W.vm2);
	assert_int_equal(nk_ep_id(W.vm2), H_ID_VM2);
	assert_string_equal(nk_ep_name(W.vm2), H_VM2);
	h_wait_state(H_VM2, "ready");
	assert_int_equal(h_socket(W.vm2, s[0].id, 2, 1, 65536, NULL), 0);
	h_close(W.vm2, s[0].id);
	h_pass();
}

static void t_nsm_disconnect_mid_transfer(void **state)
{
	bool reset[3] = { false }, replied = false;
	struct h_counters g0, n0;
	struct h_stream s[3];
	struct nk_hdr h, rep, ev;
	uint64_t rid;
	unsigned int i, left;
	size_t pos;

	(void)state;
	for (i = 0; i < 3; i++)
		h_stream_open(W.vm1, H_VM1, &s[i], 256 << 10, 40 + i);
	for (i = 0; i < 3; i++) {
		send_some(W.vm1, s[i].id, 256 << 10);
		assert_int_equal(tnsm_stream(W.nsm, s[i].nsm_sock, 64 * MIB, 50 + i), 0);
	}
	/* One request outstanding at the NSM. */
	tnsm_set_reply(W.nsm, NK_OP_GETSOCKOPT, TNSM_SILENT, 0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_GETSOCKOPT, s[0].id);
	h.arg[0] = 1;
	h.arg[1] = 7;
	h.arg[2] = 4;
	h.req_id = rid = h_new_req_id();
	h_send(W.vm1, &h, NULL, 0);
	h_nsm_expect(&pos, NK_OP_GETSOCKOPT, s[0].nsm_sock, NULL);
	h_counters(H_VM1, &g0);
	h_counters(H_NSM, &n0);

	tnsm_stop(W.nsm);
	W.nsm = NULL;

	/* The outstanding request fails, every socket gets EV_RESET. */
	for (left = 4; left; ) {
		int len = nk_ep_recv(W.vm1, &ev, NULL, 0, H_TIMEOUT_MS);

		if (len < 0)
			fail_msg("vm1: %u of 4 expected messages missing", left);
		if (ev.op == NK_EV_DATA || ev.op == NK_OP_CREDIT)
			continue;	/* sent before the NSM went */
		if (ev.op == NK_OP_GETSOCKOPT) {
			assert_true(ev.flags & NK_F_REPLY);
			assert_int_equal(ev.req_id, rid);
			assert_int_equal(ev.sock, s[0].id);
			assert_int_equal((int32_t)ev.status, -ECONNRESET);
			assert_false(replied);
			replied = true;
			left--;
			continue;
		}
		assert_int_equal(ev.op, NK_EV_RESET);
		assert_int_equal((int32_t)ev.status, -ECONNRESET);
		for (i = 0; i < 3 && s[i].id != ev.sock; i++)
			;
		assert_true(i < 3);
		assert_false(reset[i]);
		reset[i] = true;
		left--;
	}
	h_wait_state(H_NSM, "waiting");
	h_assert_delta(H_NSM, &n0, HC_RESETS, 3);
	h_assert_delta(H_VM1, &g0, HC_ERRORS, 1);

	/* Requests on a reset id are answered by the engine... */
	h_hdr(&h, NK_OP_LISTEN, s[1].id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -ECONNRESET);
	h_hdr(&h, NK_OP_SEND, s[2].id);
	assert_int_equal(h_call(W.vm1, &h, "x", 1, &rep, NULL, 0), -ECONNRESET);
	/* ...a new SOCKET has nowhere to go... */
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.arg[0] = 2;
	h.arg[1] = 1;
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, &rep, NULL, 0), -ENETUNREACH);
	/* ...and CLOSE frees the ids. */
	for (i = 0; i < 3; i++)
		h_close(W.vm1, s[i].id);
	assert_int_equal(h_nr_sockets(H_VM1), 0);
	h_recv_none(W.vm1, H_QUIET_MS);

	/* The NSM comes back, HELLO again, and serves vm1, ids reused. */
	W.nsm = h_nsm_open(H_NSM);
	assert_int_equal(tnsm_ep_id(W.nsm), H_ID_NSM);
	assert_int_equal(h_socket(W.vm1, s[0].id, 2, 1, 65536, NULL), 0);
	h_close(W.vm1, s[0].id);
	h_roundtrip(W.vm1);
	h_roundtrip(W.vm2);
	h_pass();
}

static void t_guest_reconnect(void **state)
{
	uint32_t id = h_new_sock_id(), nsm;
	struct nk_hdr h;
	size_t pos;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nsm = h_nsm_id(H_VM1, id);
	pos = tnsm_log_count(W.nsm);
	nk_ep_close(W.vm1);
	W.vm1 = NULL;
	h_nsm_expect(&pos, NK_OP_CLOSE, nsm, NULL);
	h_wait_state(H_VM1, "waiting");
	wait_no_sockets(H_VM1);

	W.vm1 = h_guest_open(H_VM1, NULL);
	assert_non_null(W.vm1);
	assert_int_equal(nk_ep_id(W.vm1), H_ID_VM1);
	assert_string_equal(nk_ep_name(W.vm1), H_VM1);
	h_wait_state(H_VM1, "ready");
	/* The old session's id is gone, and free for reuse. */
	h_hdr(&h, NK_OP_LISTEN, id);
	assert_int_equal(h_call(W.vm1, &h, NULL, 0, NULL, NULL, 0), -EBADF);
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	assert_int_not_equal(h_nsm_id(H_VM1, id), nsm);
	h_close(W.vm1, id);
	h_pass();
}

/*
 * A device that starts finds EV_PROTO_ERROR NK_PERR_NO_SESSION first on its
 * eventq, before the answer to its HELLO: a driver that was in a session
 * (the vhost-user device stopped and started, a new engine) learns that
 * it has lost it.
 */
static void t_start_says_no_session(void **state)
{
	struct h_counters c0;
	struct h_raw *raw;
	struct nk_hdr h;

	(void)state;
	h_counters(H_VM3, &c0);
	raw = h_raw_open(H_VM3, 4, false);
	raw->session = true;	/* see what a driver in a session would see */
	h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_EV_PROTO_ERROR);
	assert_int_equal(h.arg[0], NK_PERR_NO_SESSION);
	assert_int_equal((int32_t)h.status, -ENOTCONN);
	assert_int_equal(h.req_id, 0);
	assert_int_equal(h.len, 0);
	/* Before HELLO, requests are refused as they always were. */
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.req_id = h_new_req_id();
	assert_int_equal(h_raw_send(raw, &h, NULL, 0), 0);
	h_raw_recv(raw, &h, NULL, 0, H_TIMEOUT_MS);
	assert_int_equal(h.op, NK_OP_SOCKET);
	assert_int_equal((int32_t)h.status, -EPROTO);
	/* It is the device's start, not a protocol error of the driver's. */
	h_assert_delta(H_VM3, &c0, HC_PROTO_ERRORS, 0);
	h_raw_close(raw);
	h_pass();
}

static void t_detach_then_socket(void **state)
{
	struct h_counters g0;
	struct tnsm_rec r;
	struct nk_hdr h;
	json_object *e, *v;
	size_t pos;

	(void)state;
	json_object_put(h_ctl_ok("{\"cmd\":\"detach\",\"guest\":\"vm2\"}"));
	e = h_list_ep(H_VM2);
	assert_true(json_object_object_get_ex(e, "nsm", &v));
	assert_null(v);
	json_object_put(e);
	h_counters(H_VM2, &g0);
	pos = tnsm_log_count(W.nsm);
	h_hdr(&h, NK_OP_SOCKET, h_new_sock_id());
	h.arg[0] = 2;
	h.arg[1] = 1;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -ENETUNREACH);
	h_assert_delta(H_VM2, &g0, HC_ERRORS, 1);
	h_nsm_none(pos, NK_OP_SOCKET, H_QUIET_MS);

	json_object_put(h_ctl_ok("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	e = h_list_ep(H_VM2);
	assert_string_equal(h_json_str(e, "nsm"), H_NSM);
	json_object_put(e);
	h_hdr(&h, NK_OP_SOCKET, h.sock);
	h.flags = NK_F_CREDIT;
	h.buf_alloc = 65536;
	h.arg[0] = 2;
	h.arg[1] = 1;
	h.req_id = 0;
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), 0);
	h_nsm_expect(&pos, NK_OP_SOCKET, H_ANY_SOCK, &r);
	assert_int_equal(r.h.arg[3] >> 32, H_ID_VM2);
	h_close(W.vm2, h.sock);
	h_pass();
}

static void t_detach_with_open_sockets(void **state)
{
	uint32_t id[2] = { h_new_sock_id(), h_new_sock_id() }, nsm[2];
	bool seen[2] = { false, false };
	struct h_counters g0;
	struct nk_hdr h, ev;
	json_object *e;
	unsigned int i, k;
	size_t pos;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_int_equal(h_socket(W.vm2, id[i], 2, 1, 65536, NULL), 0);
		nsm[i] = h_nsm_id(H_VM2, id[i]);
	}
	h_counters(H_VM2, &g0);
	pos = tnsm_log_count(W.nsm);
	json_object_put(h_ctl_ok("{\"cmd\":\"detach\",\"guest\":\"vm2\"}"));
	for (k = 0; k < 2; k++) {
		h_recv(W.vm2, &ev, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(ev.op, NK_EV_RESET);
		assert_int_equal((int32_t)ev.status, -ENETDOWN);
		assert_int_equal(ev.req_id, 0);
		for (i = 0; i < 2 && id[i] != ev.sock; i++)
			;
		assert_true(i < 2);
		assert_false(seen[i]);
		seen[i] = true;
	}
	for (i = 0; i < 2; i++) {
		size_t p = pos;

		h_nsm_expect(&p, NK_OP_CLOSE, nsm[i], NULL);
	}
	h_assert_delta(H_VM2, &g0, HC_RESETS, 2);
	e = h_sock_entry(H_VM2, id[0]);
	assert_non_null(e);
	assert_string_equal(h_json_str(e, "state"), "reset");
	json_object_put(e);
	/* Until CLOSE the ids answer with the reset errno. */
	h_hdr(&h, NK_OP_LISTEN, id[0]);
	assert_int_equal(h_call(W.vm2, &h, NULL, 0, NULL, NULL, 0), -ENETDOWN);
	for (i = 0; i < 2; i++)
		h_close(W.vm2, id[i]);
	assert_int_equal(h_nr_sockets(H_VM2), 0);
	json_object_put(h_ctl_ok("{\"cmd\":\"attach\",\"guest\":\"vm2\",\"nsm\":\"nsm0\"}"));
	assert_int_equal(h_socket(W.vm2, id[0], 2, 1, 65536, NULL), 0);
	h_close(W.vm2, id[0]);
	h_roundtrip(W.vm1);
	h_pass();
}

/*
 * Second and later SET_MEM_TABLEs mid-run (the guest's memory grew):
 * rte_vhost maps the new table and unmaps the old mapping without
 * destroy_device.  The engine pauses the device around it and goes on
 * with the new mapping: the session and its socket survive, requests,
 * events and data still flow, nothing is reset, and the engine never
 * touches the old mapping (it would fault, or read another guest page).
 * Before the fix the engine kept its pointers into the old mapping.
 */
static void t_mem_table_change(void **state)
{
	struct h_counters c0;
	uint32_t id = h_new_sock_id(), nid;
	unsigned int i;
	struct nk_hdr h;

	(void)state;
	assert_int_equal(h_socket(W.vm1, id, 2, 1, 65536, NULL), 0);
	nid = h_nsm_id(H_VM1, id);
	h_counters(H_VM1, &c0);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(vuf_mem_grow(nk_ep_dev(W.vm1), 64 * MIB), 0);
		assert_true(h_engine_alive());
		/* Guest memory read: a SEND reaches the NSM. */
		send_some(W.vm1, id, NK_MAX_PAYLOAD);
		assert_int_equal(tnsm_wait_rx(W.nsm, nid, i * NK_MAX_PAYLOAD, H_TIMEOUT_MS), 0);
		/* Guest memory written: an event reaches vm1. */
		h_hdr(&h, NK_EV_WRITABLE, nid);
		h_nsm_send(&h, NULL, 0);
		h_recv(W.vm1, &h, NULL, 0, H_TIMEOUT_MS);
		assert_int_equal(h.op, NK_EV_WRITABLE);
		assert_int_equal(h.sock, id);
		h_roundtrip(W.vm1);
	}
	h_assert_delta(H_VM1, &c0, HC_RESETS, 0);
	h_assert_delta(H_VM1, &c0, HC_PROTO_ERRORS, 0);
	h_close(W.vm1, id);
	h_roundtrip(W.vm2);
	h_pass();
}

/* Run hostengine -c @conf with @env set; its stderr to @log.  */
static pid_t service_start(const char *conf, const char *log, char *const env[])
{
	char bin[PATH_MAX];
	pid_t pid;

	h_tool_path(bin, sizeof(bin), "HOSTENGINE", "../hostengine");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		char js[64];
		struct stat st;

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || fstat(STDERR_FILENO, &st))
			_exit(127);
		/* What systemd sets when stderr is the journal. */
		snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", js, 1);
		for (; *env; env += 2)
			setenv(env[0], env[1], 1);
		execl(bin, bin, "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The next datagram on @fd within 30 s, as a string. */
static void notify_recv(int fd, char *buf, size_t size)
{
	struct timeval tv = { .tv_sec = 30 };
	ssize_t n;

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	n = recv(fd, buf, size - 1, 0);
	if (n < 0)
		fail_msg("no notification within 30 s: %s", strerror(errno));
	buf[n] = '\0';
}

static void assert_sock(const char *path, gid_t gid, mode_t mode)
{
	struct stat st;

	if (lstat(path, &st))
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(S_ISSOCK(st.st_mode));
	if (st.st_gid != gid || (st.st_mode & 0777) != mode)
		fail_msg("%s: group %u mode %03o, want %u %03o", path, st.st_gid,
			 st.st_mode & 0777, gid, mode);
}

/*
 * Under systemd: READY=1 only once every socket exists, with the owner and
 * mode the file gives; the journal gets each line once with its priority;
 * SIGTERM says STOPPING=1 and exits 0.
 */
static void t_service_ready_perms_journal(void **state)
{
	char dir[80], conf[192], log[192], nsock[100], path[256], buf[256];
	char *env[] = { "NOTIFY_SOCKET", nsock, NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct group *gr = getgrnam("daemon");
	int fd, st, info = 0;
	pid_t pid;
	FILE *f;

	(void)state;
	assert_non_null(gr);
	snprintf(dir, sizeof(dir), "%s/svc", W.dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/engine.conf", dir);
	snprintf(log, sizeof(log), "%s/journal", dir);
	snprintf(nsock, sizeof(nsock), "%s/notify", dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[engine]\nname = %s-svc\nrun_dir = %s\nhugepages = no\n"
		"socket_group = daemon\nsocket_mode = 0660\n"
		"control_group = %u\ncontrol_mode = 0640\n\n"
		"[nsm:nsm0]\n\n[guest:vm1]\nnsm = nsm0\n", W.name, dir, gr->gr_gid);
	assert_int_equal(fclose(f), 0);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", nsock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);

	svc_pid = pid = service_start(conf, log, env);
	notify_recv(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1");
	snprintf(path, sizeof(path), "%s/nsm0.sock", dir);
	assert_sock(path, gr->gr_gid, 0660);
	snprintf(path, sizeof(path), "%s/vm1.sock", dir);
	assert_sock(path, gr->gr_gid, 0660);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	assert_sock(path, gr->gr_gid, 0640);

	assert_int_equal(kill(pid, SIGTERM), 0);
	notify_recv(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	assert_int_equal(waitpid(pid, &st, 0), pid);
	svc_pid = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(fd);
	/* Nothing left behind: no socket, no DPDK runtime directory. */
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/vm1.sock", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "/var/run/dpdk/netkernel-%s-svc", W.name);
	if (!access(path, F_OK))
		fail_msg("%s left behind", path);

	/* Every line carries a priority: <6> for info, the ready line among them. */
	f = fopen(log, "r");
	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f)) {
		if (buf[0] != '<' || buf[1] < '0' || buf[1] > '7' || buf[2] != '>')
			fail_msg("journal line without a priority: %s", buf);
		if (!strncmp(buf, "<6>", 3) && strstr(buf, "hostengine " NK_VERSION))
			info++;
	}
	fclose(f);
	assert_int_equal(info, 1);
	h_pass();
}

/* Bad owners and modes stop the engine with file:line: message. */
static void t_perm_config(void **state)
{
	static const char *const bad[][2] = {
		{ "socket_mode = 0999", "bad value '0999' for socket_mode: an octal mode, 0 to 0777" },
		{ "socket_mode = 1777", "bad value '1777' for socket_mode: an octal mode, 0 to 0777" },
		{ "control_mode = ", "bad value '' for control_mode: an octal mode, 0 to 0777" },
		{ "socket_group = nk-no-such-group", "unknown group 'nk-no-such-group' for socket_group" },
		{ "control_owner = nk-no-such-user", "unknown user 'nk-no-such-user' for control_owner" },
		{ "socket_perms = 0600", "unknown key 'socket_perms' in [engine]" },
	};
	char conf[128], out[512], want[256], log[160], *env[] = { NULL };
	unsigned int i;
	FILE *f;
	int st;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		h_config_refused(bad[i][0], bad[i][1], conf, sizeof(conf));
	/* In the journal the message is an error: priority 3. */
	snprintf(log, sizeof(log), "%s/bad.journal", W.dir);
	svc_pid = service_start(conf, log, env);
	assert_int_equal(waitpid(svc_pid, &st, 0), svc_pid);
	svc_pid = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	f = fopen(log, "r");
	assert_non_null(f);
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	fclose(f);
	snprintf(want, sizeof(want), "<3>%s:3: %s\n", conf, bad[i - 1][1]);
	assert_string_equal(out, want);
	h_pass();
}

static const struct CMUnitTest tests[] = {
	T(t_guest_disconnect_mid_transfer),
	T(t_nsm_disconnect_mid_transfer),
	T(t_guest_reconnect),
	T(t_start_says_no_session),
	T(t_detach_then_socket),
	T(t_detach_with_open_sockets),
	T(t_mem_table_change),
	T(t_service_ready_perms_journal),
	T(t_perm_config),
};

H_MAIN("lifecycle", tests)
