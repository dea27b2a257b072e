// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: the host engine's control-socket parser
 * (hostengine/ctl.c, compiled in whole) on request lines, as a client
 * writes them, against a configuration of two guests and two NSMs and the
 * real data plane's commands (executed in the caller while the data plane
 * is not running, as before launch).
 *
 * "add" and "remove" run live.c as the engine does, but with no vhost-user
 * socket behind an endpoint (he_vhost_add/remove below); endpoints an
 * input added are removed after it, so every input starts from the same
 * four.  setup() checks that a well-formed add and remove succeed, so the
 * fuzzer can reach past their checks.
 *
 * Input: request lines separated by '\n', each cut at the control
 * socket's 4 KiB limit.  Every reply must be one JSON object with a
 * boolean "ok", and a failed one a positive "errno" and an "error"
 * string; the reply must print as one line.  A listing ("sockets", "ss")
 * is paged through to its end as client_flush() would, each page checked
 * the same way and carrying a boolean "more".
 */
#include <assert.h>
#include <stdio.h>

#include "../../hostengine/ctl.c"
#include "he_fuzz.h"

#define BASE_EPS	4

int he_vhost_add(struct he_ep *ep)
{
	ep->registered = true;
	return 0;
}

void he_vhost_remove(struct he_ep *ep)
{
	ep->registered = false;
}

/* The reply's "ok". */
static bool reply_ok(json_object *r)
{
	json_object *ok;
	bool ret = json_object_object_get_ex(r, "ok", &ok) && json_object_get_boolean(ok);

	json_object_put(r);
	return ret;
}

static void setup(void)
{
	static struct client cl = { .fd = -1 };
	static struct he_config conf;

	he_fuzz_engine(&conf, "");
	cfg = &conf;
	clock_gettime(CLOCK_MONOTONIC, &started);
	assert(cfg->nr_eps == BASE_EPS);
	/* Reachability: the add and remove paths succeed past every check. */
	assert(reply_ok(handle(&cl, "{\"cmd\": \"add\", \"role\": \"guest\", \"name\": \"vm5\", "
			       "\"socket\": \"/tmp/he_fuzz_vm5.sock\", \"nsm\": \"nsm0\", "
			       "\"weight\": \"3\", \"address\": \"10.0.0.15\"}")));
	assert(cfg->nr_eps == BASE_EPS + 1 && he_ep_by_name(cfg, "vm5")->nsm);
	assert(reply_ok(handle(&cl, "{\"cmd\": \"remove\", \"name\": \"vm5\"}")));
	assert(!reply_ok(handle(&cl, "{\"cmd\": \"remove\", \"name\": \"vm5\"}")));
	assert(cfg->nr_eps == BASE_EPS);
}

/* Back to the four endpoints of he_fuzz_engine. */
static void remove_added(void)
{
	while (cfg->nr_eps > BASE_EPS)
		assert(!he_live_remove(cfg, cfg->eps[cfg->nr_eps - 1]));
}

static void check_reply(json_object *r)
{
	json_object *ok, *v;
	const char *s;

	assert(r && json_object_is_type(r, json_type_object));
	assert(json_object_object_get_ex(r, "ok", &ok) &&
	       json_object_is_type(ok, json_type_boolean));
	if (!json_object_get_boolean(ok)) {
		assert(json_object_object_get_ex(r, "errno", &v) &&
		       json_object_is_type(v, json_type_int) && json_object_get_int(v) > 0);
		assert(json_object_object_get_ex(r, "error", &v) &&
		       json_object_is_type(v, json_type_string));
	}
	s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	assert(s && !strchr(s, '\n'));
	json_object_put(r);
}

/* handle()'s answer, and a listing's pages, as the client would get them. */
static void check_replies(struct client *cl, json_object *r)
{
	json_object *more;

	if (r)
		return check_reply(r);
	assert(cl->list);
	while (cl->list) {
		r = list_page(cl);
		assert(json_object_object_get_ex(r, "more", &more) &&
		       json_object_is_type(more, json_type_boolean) &&
		       json_object_get_boolean(more) == !!cl->list);
		check_reply(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client cl = { .fd = -1 };
	static char line[CTL_LINE_MAX];
	const uint8_t *end = data + size, *nl;
	size_t n;

	if (!cfg)
		setup();
	while (data < end) {
		nl = memchr(data, '\n', end - data);
		n = (nl ? nl : end) - data;
		/* What client_read() hands handle(): at most 4 KiB - 1 and a NUL. */
		if (n < sizeof(line)) {
			memcpy(line, data, n);
			line[n] = '\0';
			check_replies(&cl, handle(&cl, line));
		}
		data += n + 1;
	}
	remove_added();
	return 0;
}
