# SPDX-License-Identifier: GPL-2.0
#
# NetKernel top-level Makefile.
#
#   make          build everything; as root it first installs the Debian
#                 packages that are missing, as another user it names them
#                 and stops (tools/install-deps.sh)
#   make deps     only the packages (root)
#   make check    build, then run every test suite (what CI runs)
#   make demo     build, then show unmodified programs in a guest VM with no
#                 NIC reaching the world through NetKernel (tools/demo.sh)
#   make kselftest  the socket-semantics suite in the VM lab (NetKernel and
#                 baseline guests, both directions), KTAP
#   make tenancy  adversarial guests sharing one NSM (isolation, per-guest
#                 limits) in the VM lab, KTAP
#   make lab-up / lab-down  the VM lab in the background (tools/testing/lab/lab.sh)
#   make bench    the benchmarks: the host engine alone and end to end in the
#                 VM lab, NetKernel beside the native virtio-net path, with a
#                 table, results/bench-DATE/results.{json,csv,png}
#   make bench-smoke  the same, short, asserting only sane numbers (in check)
#   make deb      the Debian packages in build/deb (tools/mkdeb.sh):
#                 netkernel-hostengine, netkernel-guest-dkms, netkernel-nsm-dkms
#   make fuzz     each libFuzzer harness of selftests/fuzz for FUZZ_SECONDS
#                 (default 60; make check runs each for 15)
#
# Kernel modules are built by Kbuild against Debian's headers; see Kbuild.

MAKEFLAGS += --no-print-directory -j2

SUBDIRS := hostengine tools/testing/vufront tools/nkctl tools/testing/bench

# The kernel the modules are built for: the newest of Debian's headers of
# KSERIES under KSRC, or KDIR when given.  Nothing here may depend on an
# installed package when the Makefile is read, since deps may install it
# later in the same run: kdir is a shell lookup expanded only when a recipe
# that needs it runs, after its prerequisite deps.  DEPS is the install step
# (selftests/build/run.sh stands a stub in for it).
KSERIES ?= 6.1
KSRC ?= /usr/src
DEPS ?= tools/install-deps.sh
kdir = $(or $(KDIR),$(shell ls -d $(KSRC)/linux-headers-$(KSERIES).*-amd64 2>/dev/null | sort -V | tail -n 1))
need_kdir = $(if $(kdir),,$(error no $(KSRC)/linux-headers-$(KSERIES).*-amd64: run 'make deps' as root, or set KDIR))

.PHONY: all deps $(SUBDIRS) modules tests check demo kunit bench bench-smoke fuzz clean \
	kselftest tenancy scale deb

all: $(SUBDIRS) modules

modules: deps
	$(need_kdir)$(MAKE) -C $(kdir) M=$(CURDIR) modules

deps:
	@$(DEPS)

$(SUBDIRS): deps
	$(MAKE) -C $@

tools/testing/bench: tools/testing/vufront

tests: all
	$(MAKE) -C hostengine/tests

# Every suite prints TAP/KTAP; tools/testing/run-tests.sh runs them in order and
# closes with "N passed, N failed".
check: tests
	tools/testing/run-tests.sh

demo: all
	tools/demo.sh

# nk_sockets in the VM lab: client and server sides, in a NetKernel guest
# and unchanged in a baseline guest (selftests/netkernel/run-vm.sh).
kselftest: all
	selftests/netkernel/run-vm.sh

# Two adversarial guests sharing the NSM (selftests/netkernel/tenancy.sh).
tenancy: all
	selftests/netkernel/tenancy.sh

# The VM lab left running for hands-on work: tools/testing/lab/lab.sh exec vm1 ...
lab-up: all
	tools/testing/lab/lab.sh up

lab-down:
	tools/testing/lab/lab.sh down

# KUnit suites of lib/ in a User-Mode Linux kernel built from Debian's
# linux-source-6.1 (about 6 minutes the first time, seconds after).
kunit: deps
	selftests/kunit/run.sh

# Documentation/netkernel/performance.rst; BENCH_ARGS, e.g. --reps 5.
bench: all
	tools/testing/bench/bench.sh $(BENCH_ARGS)

bench-smoke: all
	tools/testing/bench/bench.sh --smoke

# The scale runs at the figures the resilience issue asks for (10,000
# connections at once, 100,000 cycles, 64 downloads; make check runs them
# smaller): about 15 minutes under TCG.
scale: all
	selftests/netkernel/scale.sh $(SCALE_ARGS)

# libFuzzer harnesses with ASan and UBSan; findings in build/fuzz/artifacts.
FUZZ_SECONDS ?= 60
fuzz: deps
	selftests/fuzz/run.sh -t $(FUZZ_SECONDS)

# Debian packages, lintian-checked (the deploy suite installs them).
deb: deps
	tools/mkdeb.sh

clean:
	for d in $(SUBDIRS) hostengine/tests; do $(MAKE) -C $$d clean; done
	$(if $(kdir),$(MAKE) -C $(kdir) M=$(CURDIR) clean)
	rm -rf build results
