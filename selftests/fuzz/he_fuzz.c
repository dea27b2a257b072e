// SPDX-License-Identifier: GPL-2.0
/* The engine harnesses' shared set-up: see he_fuzz.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_log.h>

#include "he_fuzz.h"

/* What main.c gives the rest of the engine: no log lines while fuzzing. */
int he_logtype;
bool he_journal;

bool he_ratelimit_ok(struct he_ep *ep)
{
	RTE_SET_USED(ep);
	return false;
}

void he_fuzz_engine(struct he_config *conf, const char *engine_keys)
{
	char path[] = "/tmp/he_fuzz.XXXXXX";
	FILE *f;
	int fd;

	rte_log_set_global_level(RTE_LOG_EMERG);
	fd = mkstemp(path);
	assert(fd >= 0);
	f = fdopen(fd, "w");
	assert(f);
	fprintf(f, "[engine]\nname = fuzz\nrun_dir = /nonexistent\nhugepages = no\n%s\n"
		"[guest:vm1]\nsocket = vm1.sock\nnsm = nsm0\naddress = 10.0.0.11\n"
		"address6 = fd00::11\nlocal_switch = on\n\n"
		"[guest:vm2]\nsocket = vm2.sock\nnsm = nsm1\naddress = 10.0.0.12\n"
		"local_switch = on\n\n"
		"[nsm:nsm0]\nsocket = nsm0.sock\n\n[nsm:nsm1]\nsocket = nsm1.sock\n",
		engine_keys);
	fclose(f);
	assert(!he_config_load(conf, path));
	unlink(path);
	assert(!he_dp_init(conf));
}
