/* SPDX-License-Identifier: GPL-2.0 */
/* User-space stand-in: see nk_kcompat.h. */
#include "../nk_kcompat.h"
