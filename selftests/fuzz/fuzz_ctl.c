// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: the host engine's control-socket parser
 * (hostengine/ctl.c, compiled in whole) on request lines, as a client
 * writes them, against a configuration of two guests and two NSMs and the
 * real data plane's commands (executed in the caller while the data plane
 * is not running, as before launch).
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

static void setup(void)
{
	static struct he_config conf;

	he_fuzz_engine(&conf, "");
	cfg = &conf;
	clock_gettime(CLOCK_MONOTONIC, &started);
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
	return 0;
}
