// SPDX-License-Identifier: GPL-2.0
/*
 * nkctl - control the NetKernel host engine.
 *
 * A client of the engine's control socket (Documentation/netkernel/
 * hostengine.rst): it sends one JSON request on one line, reads one JSON
 * reply on one line and prints it as tables, or as pretty JSON with --json.
 * A listing ("sockets", "ss") comes as several lines, pages of a
 * "sockets" array with "more": true but the last; they are read within one
 * timeout each and joined into one reply.
 */
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "netkernel/nk_version.h"

#define NKCTL_DEFAULT_SOCKET	"/run/netkernel/control.sock"
#define NKCTL_SOCKET_ENV	"NKCTL_SOCKET"
#define NKCTL_TIMEOUT_MS	5000
#define NKCTL_REPLY_MAX		(1024 * 1024)	/* bytes per line, newline excluded */
#define NKCTL_ROWS_MAX		(1U << 22)	/* entries of a listing */
#define NKCTL_CELL_MAX		128

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)		__attribute__((format(printf, a, b)))

enum {
	NKCTL_EXIT_OK		= 0,
	NKCTL_EXIT_ENGINE	= 1,	/* the engine answered an error */
	NKCTL_EXIT_USAGE	= 2,
	NKCTL_EXIT_CONNECT	= 3,	/* the engine cannot be reached */
	NKCTL_EXIT_REPLY	= 4,	/* malformed or missing reply */
};

struct command {
	const char *name;
	const char *args;		/* for the usage text */
	int min_args;
	int max_args;
	const char *keys[2];		/* request member of each argument; */
					/* any further one is KEY=VALUE */
	int (*show)(struct json_object *reply, char **argv);
	/* Adds the arguments to the request itself (keys unused): exit code. */
	int (*build)(struct json_object *req, char **argv, int argc);
};

/* One column of a table: a heading and how to fill it from a row object. */
struct column {
	const char *head;
	const char *key;
	bool right;			/* right-aligned (numbers) */
	void (*fmt)(struct json_object *row, const struct column *col,
		    char *buf, size_t size);
};

static const char *progname = "nkctl";

/* ------------------------------------------------------------------ */
/* Formatting values                                                  */
/* ------------------------------------------------------------------ */

/* Replace anything that could upset a terminal. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if (!isprint((unsigned char)*s))
			*s = '?';
}

static void format_value(struct json_object *val, char *buf, size_t size)
{
	int64_t i;

	switch (json_object_get_type(val)) {
	case json_type_null:
		snprintf(buf, size, "-");
		break;
	case json_type_boolean:
		snprintf(buf, size, "%s",
			 json_object_get_boolean(val) ? "yes" : "no");
		break;
	case json_type_int:
		/* Counters are unsigned 64-bit; json-c keeps both kinds. */
		i = json_object_get_int64(val);
		if (i < 0)
			snprintf(buf, size, "%lld", (long long)i);
		else
			snprintf(buf, size, "%llu", (unsigned long long)
				 json_object_get_uint64(val));
		break;
	case json_type_string:
		snprintf(buf, size, "%s", json_object_get_string(val));
		break;
	default:
		snprintf(buf, size, "%s", json_object_to_json_string_ext(val,
			 JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		break;
	}
	sanitize(buf);
}

/* A member of a row; "-" when it is absent. */
static void fmt_member(struct json_object *row, const struct column *col,
		       char *buf, size_t size)
{
	struct json_object *val;

	if (json_object_object_get_ex(row, col->key, &val))
		format_value(val, buf, size);
	else
		snprintf(buf, size, "-");
}

/* list: a guest's NSM is null when detached; an NSM has none at all. */
static void fmt_nsm(struct json_object *row, const struct column *col,
		    char *buf, size_t size)
{
	struct json_object *val;

	if (json_object_object_get_ex(row, col->key, &val) &&
	    json_object_is_type(val, json_type_null))
		snprintf(buf, size, "(detached)");
	else
		fmt_member(row, col, buf, size);
}

/*
 * sockets: LOCAL, the peer of a connection the engine switches itself
 * (GUEST:SOCK; "yes" while not accepted yet), "-" for one through an NSM.
 */
static void fmt_local(struct json_object *row, const struct column *col,
		      char *buf, size_t size)
{
	struct json_object *local, *peer, *psock;

	(void)col;
	if (!json_object_object_get_ex(row, "local", &local) ||
	    !json_object_get_boolean(local))
		snprintf(buf, size, "-");
	else if (json_object_object_get_ex(row, "peer", &peer) &&
		 json_object_is_type(peer, json_type_string) &&
		 json_object_object_get_ex(row, "peer_sock", &psock))
		snprintf(buf, size, "%s:%" PRId64, json_object_get_string(peer),
			 json_object_get_int64(psock));
	else
		snprintf(buf, size, "yes");
	sanitize(buf);
}

/* list: the IPv4 and IPv6 source addresses, comma separated. */
static void fmt_address(struct json_object *row, const struct column *col,
			char *buf, size_t size)
{
	struct json_object *v4, *v6;
	const char *s4 = NULL, *s6 = NULL;

	(void)col;
	if (json_object_object_get_ex(row, "address", &v4) &&
	    json_object_is_type(v4, json_type_string) &&
	    json_object_get_string_len(v4))
		s4 = json_object_get_string(v4);
	if (json_object_object_get_ex(row, "address6", &v6) &&
	    json_object_is_type(v6, json_type_string) &&
	    json_object_get_string_len(v6))
		s6 = json_object_get_string(v6);

	if (s4 && s6)
		snprintf(buf, size, "%s,%s", s4, s6);
	else if (s4 || s6)
		snprintf(buf, size, "%s", s4 ? s4 : s6);
	else
		snprintf(buf, size, "-");
	sanitize(buf);
}

/* ------------------------------------------------------------------ */
/* Tables and key/value blocks                                        */
/* ------------------------------------------------------------------ */

static void print_cell(const char *s, int width, bool right, bool last)
{
	if (right)
		printf("%*s", width, s);
	else if (last)
		fputs(s, stdout);
	else
		printf("%-*s", width, s);
	if (!last)
		fputs("  ", stdout);
}

/* Print rows (an array of objects) aligned under the columns' headings. */
static void print_table(struct json_object *rows, const struct column *cols,
			int ncols)
{
	char cell[NKCTL_CELL_MAX];
	size_t nrows = json_object_array_length(rows);
	int width[ncols];
	size_t r;
	int c;

	for (c = 0; c < ncols; c++)
		width[c] = strlen(cols[c].head);
	for (r = 0; r < nrows; r++) {
		struct json_object *row = json_object_array_get_idx(rows, r);

		for (c = 0; c < ncols; c++) {
			int len;

			cols[c].fmt(row, &cols[c], cell, sizeof(cell));
			len = strlen(cell);
			if (len > width[c])
				width[c] = len;
		}
	}

	for (c = 0; c < ncols; c++)
		print_cell(cols[c].head, width[c], cols[c].right,
			   c == ncols - 1);
	putchar('\n');
	for (r = 0; r < nrows; r++) {
		struct json_object *row = json_object_array_get_idx(rows, r);

		for (c = 0; c < ncols; c++) {
			cols[c].fmt(row, &cols[c], cell, sizeof(cell));
			print_cell(cell, width[c], cols[c].right,
				   c == ncols - 1);
		}
		putchar('\n');
	}
}

static bool in_list(const char *key, const char *const *order)
{
	for (; *order; order++)
		if (!strcmp(key, *order))
			return true;
	return false;
}

/*
 * Print the members of obj one per line, names aligned, values
 * right-aligned: those named in order first, in that order, then any
 * others the engine added, in its order.
 */
static void print_kv(struct json_object *obj, const char *const *order,
		     const char *indent)
{
	char cell[NKCTL_CELL_MAX];
	struct json_object_iter it;
	const char *const *o;
	struct json_object *val;
	int kw = 0, vw = 0, len;

	json_object_object_foreachC(obj, it) {
		len = strlen(it.key);
		if (len > kw)
			kw = len;
		format_value(it.val, cell, sizeof(cell));
		len = strlen(cell);
		if (len > vw)
			vw = len;
	}

	for (o = order; *o; o++) {
		if (!json_object_object_get_ex(obj, *o, &val))
			continue;
		format_value(val, cell, sizeof(cell));
		printf("%s%-*s  %*s\n", indent, kw, *o, vw, cell);
	}
	json_object_object_foreachC(obj, it) {
		if (in_list(it.key, order))
			continue;
		snprintf(cell, sizeof(cell), "%s", it.key);
		sanitize(cell);
		printf("%s%-*s  ", indent, kw, cell);
		format_value(it.val, cell, sizeof(cell));
		printf("%*s\n", vw, cell);
	}
}

/*
 * The reply member key as an array whose elements are all objects, or NULL
 * (and a message) when the reply does not have one.
 */
static struct json_object *object_array(struct json_object *reply,
					const char *key)
{
	struct json_object *arr;
	size_t i, n;

	if (!json_object_object_get_ex(reply, key, &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		warnx("malformed reply: no \"%s\" array", key);
		return NULL;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		if (!json_object_is_type(json_object_array_get_idx(arr, i),
					 json_type_object)) {
			warnx("malformed reply: \"%s\"[%zu] is not an object",
			       key, i);
			return NULL;
		}
	}
	return arr;
}

/* ------------------------------------------------------------------ */
/* Commands                                                           */
/* ------------------------------------------------------------------ */

static const struct column list_columns[] = {
	{ "NAME",	"name",		false,	fmt_member },
	{ "ID",		"id",		true,	fmt_member },
	{ "ROLE",	"role",		false,	fmt_member },
	{ "STATE",	"state",	false,	fmt_member },
	{ "NSM",	"nsm",		false,	fmt_nsm },
	{ "ADDRESS",	NULL,		false,	fmt_address },
	{ "WEIGHT",	"weight",	true,	fmt_member },
	{ "SOCKETS",	"sockets",	true,	fmt_member },
};

static int show_list(struct json_object *reply, char **argv)
{
	struct json_object *eps = object_array(reply, "endpoints");

	(void)argv;
	if (!eps)
		return NKCTL_EXIT_REPLY;
	print_table(eps, list_columns, ARRAY_SIZE(list_columns));
	return NKCTL_EXIT_OK;
}

/* The counters in the order hostengine.rst documents them. */
static const char *const counter_order[] = {
	"requests", "replies", "events", "bytes_in", "bytes_out", "errors",
	"proto_errors", "credit_violations", "drops", "resets",
	"pending_bytes", "pending_max", "sockets", "config_errors", "oversize",
	"socket_limit", "conn_resets", "pending_limit", "conn_rate_limit", "nsm_queued",
	"nsm_queued_max", NULL,
};

static int show_stats(struct json_object *reply, char **argv)
{
	struct json_object *eps = object_array(reply, "endpoints");
	size_t i, n;

	(void)argv;
	if (!eps)
		return NKCTL_EXIT_REPLY;
	n = json_object_array_length(eps);
	for (i = 0; i < n; i++) {
		struct json_object *ep = json_object_array_get_idx(eps, i);
		struct json_object *counters, *name;
		char cell[NKCTL_CELL_MAX];

		if (!json_object_object_get_ex(ep, "counters", &counters) ||
		    !json_object_is_type(counters, json_type_object)) {
			warnx("malformed reply: endpoint %zu has no counters",
			       i);
			return NKCTL_EXIT_REPLY;
		}
		if (json_object_object_get_ex(ep, "name", &name))
			format_value(name, cell, sizeof(cell));
		else
			snprintf(cell, sizeof(cell), "-");

		printf("%s%s:\n", i ? "\n" : "", cell);
		print_kv(counters, counter_order, "  ");
	}
	return NKCTL_EXIT_OK;
}

static const struct column socket_columns[] = {
	{ "GUEST",	"guest",		false,	fmt_member },
	{ "GSOCK",	"guest_sock",		true,	fmt_member },
	{ "NSM",	"nsm",			false,	fmt_member },
	{ "NSOCK",	"nsm_sock",		true,	fmt_member },
	{ "STATE",	"state",		false,	fmt_member },
	{ "LOCAL",	"local",		false,	fmt_local },
	{ "TX_BYTES",	"tx_bytes",		true,	fmt_member },
	{ "RX_BYTES",	"rx_bytes",		true,	fmt_member },
	{ "G_BUF",	"guest_buf_alloc",	true,	fmt_member },
	{ "G_FWD",	"guest_fwd_cnt",	true,	fmt_member },
	{ "G_TX",	"guest_tx_cnt",		true,	fmt_member },
	{ "N_BUF",	"nsm_buf_alloc",	true,	fmt_member },
	{ "N_FWD",	"nsm_fwd_cnt",		true,	fmt_member },
	{ "N_TX",	"nsm_tx_cnt",		true,	fmt_member },
};

static int show_sockets(struct json_object *reply, char **argv)
{
	struct json_object *socks = object_array(reply, "sockets");

	(void)argv;
	if (!socks)
		return NKCTL_EXIT_REPLY;
	print_table(socks, socket_columns, ARRAY_SIZE(socket_columns));
	return NKCTL_EXIT_OK;
}

/* ss: Netid, as ss -tunip prints it. */
static void fmt_ss_addr(struct json_object *row, const struct column *col,
			char *buf, size_t size)
{
	struct json_object *v;

	if (json_object_object_get_ex(row, col->key, &v) &&
	    json_object_is_type(v, json_type_string))
		format_value(v, buf, size);
	else
		snprintf(buf, size, "-");
}

static const struct column ss_columns[] = {
	{ "Netid",		"proto",	false,	fmt_member },
	{ "State",		"state",	false,	fmt_member },
	{ "Recv-Q",		"recv_q",	true,	fmt_member },
	{ "Send-Q",		"send_q",	true,	fmt_member },
	{ "Local Address:Port",	"local",	false,	fmt_ss_addr },
	{ "Peer Address:Port",	"remote",	false,	fmt_ss_addr },
	{ "Guest",		"guest",	false,	fmt_member },
	{ "GSock",		"guest_sock",	true,	fmt_member },
	{ "NSM",		"nsm",		false,	fmt_member },
	{ "NSock",		"nsm_sock",	true,	fmt_member },
	{ "TX_Bytes",		"tx_bytes",	true,	fmt_member },
	{ "RX_Bytes",		"rx_bytes",	true,	fmt_member },
	{ "RTT_us",		"rtt_us",	true,	fmt_member },
	{ "RTTvar",		"rttvar_us",	true,	fmt_member },
	{ "Cwnd",		"cwnd",		true,	fmt_member },
	{ "Retrans",		"retrans",	true,	fmt_member },
	{ "Rate_Bps",		"delivery_rate", true,	fmt_member },
	{ "Note",		"info_error",	false,	fmt_ss_addr },
};

static int show_ss(struct json_object *reply, char **argv)
{
	struct json_object *socks = object_array(reply, "sockets");

	(void)argv;
	if (!socks)
		return NKCTL_EXIT_REPLY;
	print_table(socks, ss_columns, ARRAY_SIZE(ss_columns));
	return NKCTL_EXIT_OK;
}

/* The State column's names, which the state filter takes (any case). */
static const char *const ss_states[] = {
	"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
	"TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
	"NEW-SYN-RECV",
};

static int __printf(1, 2) usage_error(const char *fmt, ...);

/* A decimal number in [@min, @max], or -1. */
static long long parse_num(const char *s, long long min, long long max)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	return v;
}

/* ss [guest NAME] [nsm NAME] [state STATE] [port PORT] */
static int build_ss(struct json_object *req, char **argv, int argc)
{
	static const char *const keys[] = { "guest", "nsm", "state", "port" };
	long long port;
	size_t k, i;
	int a;

	for (a = 0; a < argc; a += 2) {
		for (k = 0; k < ARRAY_SIZE(keys) && strcmp(argv[a], keys[k]); k++)
			;
		if (k == ARRAY_SIZE(keys))
			return usage_error("ss: unknown filter '%s' (guest, nsm, state, port)",
					   argv[a]);
		if (a + 1 >= argc)
			return usage_error("ss: filter '%s' needs a value", argv[a]);
		if (json_object_object_get_ex(req, keys[k], NULL))
			return usage_error("ss: filter '%s' given twice", argv[a]);
		if (k == 3) {
			port = parse_num(argv[a + 1], 0, 65535);
			if (port < 0)
				return usage_error("ss: port '%s' is not 0 to 65535", argv[a + 1]);
			json_object_object_add(req, "port", json_object_new_int(port));
			continue;
		}
		if (k == 2) {
			for (i = 0; i < ARRAY_SIZE(ss_states) &&
			     strcasecmp(argv[a + 1], ss_states[i]); i++)
				;
			if (i == ARRAY_SIZE(ss_states))
				return usage_error("ss: unknown state '%s' (ESTAB, LISTEN, ...; see nkctl(8))",
						   argv[a + 1]);
		}
		json_object_object_add(req, keys[k], json_object_new_string(argv[a + 1]));
	}
	return NKCTL_EXIT_OK;
}

/* kill GUEST SOCK */
static int build_kill(struct json_object *req, char **argv, int argc)
{
	long long sock = parse_num(argv[1], 1, UINT32_MAX);

	(void)argc;
	if (sock < 0)
		return usage_error("kill: socket id '%s' is not 1 to 4294967295", argv[1]);
	json_object_object_add(req, "guest", json_object_new_string(argv[0]));
	json_object_object_add(req, "sock", json_object_new_int64(sock));
	return NKCTL_EXIT_OK;
}

static int show_kill(struct json_object *reply, char **argv)
{
	(void)reply;
	printf("%s socket %s reset\n", argv[0], argv[1]);
	return NKCTL_EXIT_OK;
}

/*
 * What add, remove, attach and detach change is not written to the
 * engine's configuration file: say so, where a script will not parse it.
 */
static void not_persistent(void)
{
	fprintf(stderr, "%s: note: not persistent: the configuration file is unchanged, "
		"a reload (SIGHUP) or restart applies the file again\n", progname);
}

static int show_attach(struct json_object *reply, char **argv)
{
	(void)reply;
	printf("%s attached to %s\n", argv[0], argv[1]);
	not_persistent();
	return NKCTL_EXIT_OK;
}

static int show_detach(struct json_object *reply, char **argv)
{
	(void)reply;
	printf("%s detached\n", argv[0]);
	not_persistent();
	return NKCTL_EXIT_OK;
}

static int show_add(struct json_object *reply, char **argv)
{
	struct json_object *id, *sock;

	if (!json_object_object_get_ex(reply, "id", &id) ||
	    !json_object_object_get_ex(reply, "socket", &sock)) {
		warnx("malformed reply: no \"id\" or \"socket\"");
		return NKCTL_EXIT_REPLY;
	}
	printf("%s %s added, id %d, socket %s\n", argv[0], argv[1], json_object_get_int(id),
	       json_object_get_string(sock));
	not_persistent();
	return NKCTL_EXIT_OK;
}

static int show_remove(struct json_object *reply, char **argv)
{
	(void)reply;
	printf("%s removed\n", argv[0]);
	not_persistent();
	return NKCTL_EXIT_OK;
}

static const char *const engine_order[] = {
	"version", "uptime_s", "poll", "dataplane_loops", "dataplane_sleeps",
	"sockets", "pending_bytes", "heap_bytes", NULL,
};

static int show_engine(struct json_object *reply, char **argv)
{
	(void)argv;
	json_object_object_del(reply, "ok");
	print_kv(reply, engine_order, "");
	return NKCTL_EXIT_OK;
}

/* How many leading arguments are named by cmd->keys; the rest are KEY=VALUE. */
static int named_args(const struct command *cmd)
{
	int n = 0;

	while (n < (int)ARRAY_SIZE(cmd->keys) && cmd->keys[n])
		n++;
	return n;
}

static int show_set(struct json_object *reply, char **argv)
{
	static const char *const order[] = {
		"weight", "max_sockets", "max_pending", "max_conn_rate", "conn_burst",
		"local_switch", "tenant", NULL,
	};

	json_object_object_del(reply, "ok");
	json_object_object_del(reply, "endpoint");
	json_object_object_del(reply, "persistent");
	printf("%s set\n", argv[0]);
	print_kv(reply, order, "  ");
	not_persistent();
	return NKCTL_EXIT_OK;
}

static const struct command commands[] = {
	{ "list",	"",		0, 0, { NULL },
	  show_list, NULL },
	{ "stats",	"[ENDPOINT]",	0, 1, { "endpoint" },
	  show_stats, NULL },
	{ "sockets",	"ENDPOINT",	1, 1, { "endpoint" },
	  show_sockets, NULL },
	{ "ss",		"[guest G] [nsm N] [state S] [port P]", 0, 8, { NULL },
	  show_ss, build_ss },
	{ "kill",	"GUEST SOCK",	2, 2, { NULL },
	  show_kill, build_kill },
	{ "attach",	"GUEST NSM",	2, 2, { "guest", "nsm" },
	  show_attach, NULL },
	{ "detach",	"GUEST",	1, 1, { "guest" },
	  show_detach, NULL },
	{ "engine",	"",		0, 0, { NULL },
	  show_engine, NULL },
	{ "add",	"guest|nsm NAME [KEY=VALUE...]", 2, 10, { "role", "name" },
	  show_add, NULL },
	{ "remove",	"NAME",		1, 1, { "name" },
	  show_remove, NULL },
	{ "set",	"GUEST KEY=VALUE...", 2, 9, { "name" },
	  show_set, NULL },
};

/* ------------------------------------------------------------------ */
/* Talking to the engine                                              */
/* ------------------------------------------------------------------ */

static struct json_object *build_request(const struct command *cmd,
					 char **argv, int argc, int *ret)
{
	struct json_object *req = json_object_new_object();
	int i;

	*ret = NKCTL_EXIT_REPLY;
	if (!req ||
	    json_object_object_add(req, "cmd",
				   json_object_new_string(cmd->name)))
		goto fail;
	if (cmd->build) {
		*ret = cmd->build(req, argv, argc);
		if (*ret) {
			json_object_put(req);
			return NULL;
		}
		return req;
	}
	for (i = 0; i < argc; i++) {
		const char *key = i < named_args(cmd) ? cmd->keys[i] : NULL, *val = argv[i];
		char kbuf[64];

		if (!key) {
			/* main() checked the '=' */
			const char *eq = strchr(argv[i], '=');

			snprintf(kbuf, sizeof(kbuf), "%.*s", (int)(eq - argv[i]), argv[i]);
			key = kbuf;
			val = eq + 1;
		}
		if (json_object_object_add(req, key, json_object_new_string(val)))
			goto fail;
	}
	return req;
fail:
	json_object_put(req);
	warnx("out of memory");
	return NULL;
}

static int connect_engine(const char *path, int *fdp)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = {
		.tv_sec = NKCTL_TIMEOUT_MS / 1000,
		.tv_usec = NKCTL_TIMEOUT_MS % 1000 * 1000,
	};
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		warnx("cannot connect to %s: %s", path, strerror(ENAMETOOLONG));
		return NKCTL_EXIT_CONNECT;
	}
	strcpy(addr.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		warnx("socket: %s", strerror(errno));
		return NKCTL_EXIT_CONNECT;
	}
	/* Bounds connect() on a full backlog and send() on a full buffer. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		warnx("setsockopt: %s", strerror(errno));
		close(fd);
		return NKCTL_EXIT_CONNECT;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		err = errno;
		close(fd);
		if (err == EAGAIN) {
			warnx("timed out connecting to %s", path);
			return NKCTL_EXIT_REPLY;
		}
		warnx("cannot connect to %s: %s", path, strerror(err));
		fprintf(stderr, "%s: is hostengine running? (set the socket with -s or $%s)\n",
			progname, NKCTL_SOCKET_ENV);
		return NKCTL_EXIT_CONNECT;
	}
	*fdp = fd;
	return NKCTL_EXIT_OK;
}

static int send_request(int fd, struct json_object *req)
{
	const char *s = json_object_to_json_string_ext(req,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len, off = 0;
	char *line;
	int ret = NKCTL_EXIT_OK;

	len = strlen(s);
	line = malloc(len + 1);
	if (!line) {
		warnx("out of memory");
		return NKCTL_EXIT_REPLY;
	}
	memcpy(line, s, len);
	line[len++] = '\n';

	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN)
				warnx("timed out sending to the engine");
			else
				warnx("cannot send to the engine: %s",
				       strerror(errno));
			ret = NKCTL_EXIT_REPLY;
			break;
		}
		off += n;
	}
	free(line);
	return ret;
}

static long ms_until(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Bytes read from the engine and not yet handed out as lines. */
struct reader {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof;
};

/*
 * Read one reply line (without its newline, NUL-terminated) into *linep,
 * within NKCTL_TIMEOUT_MS.  A connection closed after a partial line
 * yields that line; the parser decides whether it is whole.
 */
static int read_reply_line(struct reader *rd, char **linep)
{
	struct timespec deadline;
	size_t scanned = 0, used;
	char *nl = NULL, *line;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += NKCTL_TIMEOUT_MS / 1000;

	while (!(nl = memchr(rd->buf + scanned, '\n', rd->len - scanned))) {
		struct pollfd pfd = { .fd = rd->fd, .events = POLLIN };
		long ms = ms_until(&deadline);
		ssize_t n;
		int r;

		scanned = rd->len;
		if (rd->len > NKCTL_REPLY_MAX) {
			warnx("reply longer than %d bytes", NKCTL_REPLY_MAX);
			return NKCTL_EXIT_REPLY;
		}
		if (rd->eof) {
			if (!rd->len) {
				warnx("the engine closed the connection without a reply");
				return NKCTL_EXIT_REPLY;
			}
			break;
		}
		if (ms <= 0) {
			warnx("no reply from the engine within %d s",
			      NKCTL_TIMEOUT_MS / 1000);
			return NKCTL_EXIT_REPLY;
		}
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			warnx("poll: %s", strerror(errno));
			return NKCTL_EXIT_REPLY;
		}
		if (!r)
			continue;	/* the deadline check reports it */
		if (rd->cap - rd->len < 4096) {
			size_t cap = rd->cap ? 2 * rd->cap : 65536;
			char *nbuf = realloc(rd->buf, cap + 1);

			if (!nbuf) {
				warnx("out of memory");
				return NKCTL_EXIT_REPLY;
			}
			rd->buf = nbuf;
			rd->cap = cap;
		}
		n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			warnx("cannot read from the engine: %s", strerror(errno));
			return NKCTL_EXIT_REPLY;
		}
		if (!n)
			rd->eof = true;
		rd->len += n;
	}
	used = nl ? (size_t)(nl - rd->buf) : rd->len;
	if (used > NKCTL_REPLY_MAX) {
		warnx("reply longer than %d bytes", NKCTL_REPLY_MAX);
		return NKCTL_EXIT_REPLY;
	}
	line = malloc(used + 1);
	if (!line) {
		warnx("out of memory");
		return NKCTL_EXIT_REPLY;
	}
	memcpy(line, rd->buf, used);
	line[used] = '\0';
	if (nl)
		used++;
	memmove(rd->buf, rd->buf + used, rd->len - used);
	rd->len -= used;
	*linep = line;
	return NKCTL_EXIT_OK;
}

/*
 * Parse a reply line: exactly one JSON object, whitespace around it.  Strict
 * mode refuses anything else after the object.
 */
static struct json_object *parse_reply(const char *line)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;

	if (!tok) {
		warnx("out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, line, strlen(line));
	if (!obj) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);

		warnx("malformed reply: not JSON (%s)",
		       jerr == json_tokener_continue ?
		       "incomplete" : json_tokener_error_desc(jerr));
		goto out;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		warnx("malformed reply: not a JSON object");
		json_object_put(obj);
		obj = NULL;
	}
out:
	json_tokener_free(tok);
	return obj;
}

/* Report an "ok": false reply. */
static void report_engine_error(struct json_object *reply)
{
	struct json_object *msg, *eno;

	if (json_object_object_get_ex(reply, "error", &msg) &&
	    json_object_is_type(msg, json_type_string)) {
		char text[1024];

		snprintf(text, sizeof(text), "%s", json_object_get_string(msg));
		sanitize(text);
		warnx("%s", text);
	} else if (json_object_object_get_ex(reply, "errno", &eno) &&
		   json_object_is_type(eno, json_type_int)) {
		warnx("%s", strerror(json_object_get_int(eno)));
	} else {
		warnx("the engine reported an unspecified error");
	}
}

/* One reply line, parsed, with a boolean "ok": NULL after a message. */
static struct json_object *read_reply(struct reader *rd, bool *ok)
{
	struct json_object *reply, *v;
	char *line = NULL;

	if (read_reply_line(rd, &line))
		return NULL;
	reply = parse_reply(line);
	free(line);
	if (!reply)
		return NULL;
	if (!json_object_object_get_ex(reply, "ok", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		warnx("malformed reply: no boolean \"ok\"");
		json_object_put(reply);
		return NULL;
	}
	*ok = json_object_get_boolean(v);
	return reply;
}

/* Does this page of a listing say more follow?  -1: malformed. */
static int page_more(struct json_object *page)
{
	struct json_object *v;

	if (!json_object_object_get_ex(page, "more", &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		warnx("malformed reply: \"more\" is not a boolean");
		return -1;
	}
	return json_object_get_boolean(v);
}

/*
 * Read the pages after the first of a listing and join their "sockets"
 * into @reply's, which loses its "more".
 */
static int read_pages(struct reader *rd, struct json_object *reply)
{
	struct json_object *all, *page, *arr;
	int more = page_more(reply);
	size_t i, n;
	bool ok;

	if (more < 0)
		return NKCTL_EXIT_REPLY;
	json_object_object_del(reply, "more");
	if (!more)
		return NKCTL_EXIT_OK;
	all = object_array(reply, "sockets");
	if (!all)
		return NKCTL_EXIT_REPLY;
	while (more) {
		page = read_reply(rd, &ok);
		if (!page)
			return NKCTL_EXIT_REPLY;
		more = page_more(page);
		arr = ok && more >= 0 ? object_array(page, "sockets") : NULL;
		if (!arr) {
			if (!ok)
				warnx("malformed reply: a failed page in a listing");
			json_object_put(page);
			return NKCTL_EXIT_REPLY;
		}
		n = json_object_array_length(arr);
		if (json_object_array_length(all) + n > NKCTL_ROWS_MAX) {
			warnx("listing longer than %u entries", NKCTL_ROWS_MAX);
			json_object_put(page);
			return NKCTL_EXIT_REPLY;
		}
		for (i = 0; i < n; i++)
			json_object_array_add(all, json_object_get(
						      json_object_array_get_idx(arr, i)));
		json_object_put(page);
	}
	return NKCTL_EXIT_OK;
}

static int run(const char *path, const struct command *cmd, char **argv,
	       int argc, bool json)
{
	struct json_object *req, *reply = NULL;
	struct reader rd = { .fd = -1 };
	bool ok;
	int ret;

	req = build_request(cmd, argv, argc, &ret);
	if (!req)
		return ret;

	ret = connect_engine(path, &rd.fd);
	if (ret)
		goto out;
	ret = send_request(rd.fd, req);
	if (ret)
		goto out;
	ret = NKCTL_EXIT_REPLY;
	reply = read_reply(&rd, &ok);
	if (!reply)
		goto out;
	if (ok) {
		ret = read_pages(&rd, reply);
		if (ret)
			goto out;
	}

	if (json)
		puts(json_object_to_json_string_ext(reply,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
			JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!ok) {
		report_engine_error(reply);
		ret = NKCTL_EXIT_ENGINE;
	} else {
		ret = json ? NKCTL_EXIT_OK : cmd->show(reply, argv);
	}
out:
	if (rd.fd >= 0)
		close(rd.fd);
	free(rd.buf);
	json_object_put(reply);
	json_object_put(req);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Command line                                                       */
/* ------------------------------------------------------------------ */

static void print_help(void)
{
	size_t i;

	printf("Usage: %s [-s|--socket PATH] [-j|--json] COMMAND [ARGS]\n"
	       "       %s -h|--help | -V|--version\n"
	       "\n"
	       "Control the NetKernel host engine through its control socket.\n"
	       "\n"
	       "Commands:\n", progname, progname);
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %s%*s%s\n", commands[i].name,
		       *commands[i].args ? 9 - (int)strlen(commands[i].name) : 0,
		       "", commands[i].args);
	printf("\n"
	       "Options:\n"
	       "  -s, --socket PATH  control socket (default: $%s, else %s)\n"
	       "  -j, --json         print the engine's reply as JSON\n"
	       "  -h, --help         print this help and exit\n"
	       "  -V, --version      print the version and exit\n"
	       "\n"
	       "Exit status: 0 success, 1 the engine answered an error, 2 usage error,\n"
	       "3 cannot reach the engine, 4 malformed reply or timeout.\n"
	       "See nkctl(8).\n", NKCTL_SOCKET_ENV, NKCTL_DEFAULT_SOCKET);
}

static int __printf(1, 2) usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", progname);
	return NKCTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket",	required_argument,	NULL, 's' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL,		0,			NULL, 0 },
	};
	const struct command *cmd = NULL;
	const char *path = getenv(NKCTL_SOCKET_ENV);
	bool json = false;
	size_t i, j;
	int opt, nargs;

	if (!path || !*path)
		path = NKCTL_DEFAULT_SOCKET;

	/* Options end at the command: "+" keeps getopt from permuting. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:jhV", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (!*optarg)
				return usage_error("empty socket path");
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			print_help();
			return NKCTL_EXIT_OK;
		case 'V':
			printf("nkctl %s\n", NK_VERSION);
			return NKCTL_EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			if (optopt && strncmp(argv[optind - 1], "--", 2))
				return usage_error("unknown option '-%c'",
						   optopt);
			return usage_error("invalid option '%s'",
					   argv[optind - 1]);
		}
	}

	if (optind >= argc)
		return usage_error("no command given");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[optind], commands[i].name))
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);

	nargs = argc - optind - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return usage_error("wrong number of arguments; usage: %s %s%s%s",
				   progname, cmd->name, *cmd->args ? " " : "",
				   cmd->args);
	for (i = 0; i < (size_t)nargs; i++) {
		const char *a = argv[optind + 1 + i], *eq = strchr(a, '=');

		if (!a[0])
			return usage_error("%s: empty argument", cmd->name);
		/* A command with a builder (ss, kill) checks its own arguments. */
		if ((int)i < named_args(cmd) || cmd->build)
			continue;
		if (!eq || eq == a || eq - a >= 64)
			return usage_error("%s: '%s' is not KEY=VALUE", cmd->name, a);
		if (!strncmp(a, "cmd=", 4) || !strncmp(a, "role=", 5) ||
		    !strncmp(a, "name=", 5))
			return usage_error("%s: '%s': that key is an argument", cmd->name, a);
		for (j = named_args(cmd); j < i; j++)
			if (!strncmp(argv[optind + 1 + j], a, eq - a + 1))
				return usage_error("%s: key '%.*s' given twice", cmd->name,
						   (int)(eq - a), a);
	}

	return run(path, cmd, argv + optind + 1, nargs, json);
}
