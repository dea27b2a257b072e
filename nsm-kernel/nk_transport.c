// SPDX-License-Identifier: GPL-2.0
/* The shared virtio transport, compiled into this module (see Kbuild). */
#include "../lib/nk_transport.c"
