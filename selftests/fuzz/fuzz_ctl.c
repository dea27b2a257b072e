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
 * string; the reply must print as one line.
 */
#include <assert.h>
#include <stdio.h>

#include <rte_log.h>

#include "../../hostengine/ctl.c"

int he_logtype;

bool he_ratelimit_ok(struct he_ep *ep)
{
	RTE_SET_USED(ep);
	return false;
}

static void setup(void)
{
	char path[] = "/tmp/fuzz_ctl.XXXXXX";
	static struct he_config conf;
	FILE *f;
	int fd;

	rte_log_set_global_level(RTE_LOG_EMERG);
	fd = mkstemp(path);
	assert(fd >= 0);
	f = fdopen(fd, "w");
	assert(f);
	fprintf(f, "[engine]\nname = fuzz\nrun_dir = /nonexistent\nhugepages = no\n\n"
		"[guest:vm1]\nsocket = vm1.sock\nnsm = nsm0\naddress = 10.0.0.11\n"
		"address6 = fd00::11\n\n"
		"[guest:vm2]\nsocket = vm2.sock\nnsm = nsm1\naddress = 10.0.0.12\n\n"
		"[nsm:nsm0]\nsocket = nsm0.sock\n\n[nsm:nsm1]\nsocket = nsm1.sock\n");
	fclose(f);
	assert(!he_config_load(&conf, path));
	unlink(path);
	assert(!he_dp_init(&conf));
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
			check_reply(handle(line));
		}
		data += n + 1;
	}
	return 0;
}
