// SPDX-License-Identifier: GPL-2.0
/* lib/nk_sockid.c, compiled into this module (see Kbuild). */
#include "../lib/nk_sockid.c"
