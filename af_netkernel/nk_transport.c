// SPDX-License-Identifier: GPL-2.0
/* lib/nk_transport.c, compiled into this module (see Kbuild). */
#include "../lib/nk_transport.c"
