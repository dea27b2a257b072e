/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the engine harnesses share: the definitions main.c gives the rest
 * of the engine, and an engine configured as two guests (vm1 on nsm0, vm2
 * on nsm1) and two NSMs, with its data plane initialised but not launched,
 * so that its commands run in the caller.
 */
#ifndef _HE_FUZZ_H
#define _HE_FUZZ_H

#include "he.h"

/* Load that configuration, with @engine_keys ("key = value\n"...) added
 * to [engine], into @conf and initialise the data plane; aborts on error. */
void he_fuzz_engine(struct he_config *conf, const char *engine_keys);

#endif /* _HE_FUZZ_H */
