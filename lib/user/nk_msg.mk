# SPDX-License-Identifier: GPL-2.0
#
# lib/nk_msg.c built for user space (lib/user/ stands in for the kernel
# headers it includes, see nk_kcompat.h), so that the host engine, the test
# frontend library and the benchmarks apply the protocol's rules with the
# same code as the modules.  A Makefile sets NK_TOP to the top of the tree,
# includes this file, links $(NK_MSG_OBJ) and compiles the sources that
# include nk_msg.h with $(NK_MSG_CPPFLAGS).  The object is built in the
# including directory: lib/nk_msg.o belongs to Kbuild.

NK_MSG_CPPFLAGS := -I$(NK_TOP)/lib/user -I$(NK_TOP)/lib -I$(NK_TOP)/include
NK_MSG_OBJ := nk_msg.o

# Not the including Makefile's default goal.
nk_msg_goal := $(.DEFAULT_GOAL)
$(NK_MSG_OBJ): $(NK_TOP)/lib/nk_msg.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(NK_MSG_CPPFLAGS) -MMD -MP -c -o $@ $<
.DEFAULT_GOAL := $(nk_msg_goal)
