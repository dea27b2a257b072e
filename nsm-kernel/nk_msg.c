// SPDX-License-Identifier: GPL-2.0
/* The shared message helpers, compiled into this module (see Kbuild). */
#include "../lib/nk_msg.c"
