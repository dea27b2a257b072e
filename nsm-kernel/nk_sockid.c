// SPDX-License-Identifier: GPL-2.0
/* The shared socket-id tables, compiled into this module (see Kbuild). */
#include "../lib/nk_sockid.c"
