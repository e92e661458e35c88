# SPDX-License-Identifier: GPL-2.0
#
# persona-vfio-pci. The two commands that matter (README):
#   make run     set up, build everything, boot the test guest, load the driver, bind an edu, show it
#   make check   the tests (tests/manifest's check tier); ends with "N passed, M failed, K skipped"
#   make check-full  the whole matrix: every suite on every kernel flavour
# `make bench` prints benchmarks as ratios against baselines measured in the same run.
#
# The module itself builds the kernel way: `make module` against the cached test kernel, or
# `make module KDIR=/lib/modules/$(uname -r)/build` against a host kernel
# (clang-built with LLVM=1, or GCC-built).

# Kernel flavour (scripts/lib.sh): default, debug (KASAN, kCFI, kmemleak, fault injection) or gcc
# (the default config built with GCC: LLVM empty below, so the kernel's make picks gcc).
PVP_FLAVOUR ?= default
export PVP_FLAVOUR
# Tools scripts/setup installs (bindgen, cargo-fuzz) live in the cache, outside the repository.
PVP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/persona-vfio-pci
export PATH := $(PVP_CACHE)/tools/bin:$(HOME)/.cargo/bin:$(PATH)
# bindgen's libclang, whichever compiler built the kernel.
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
FLAVOUR_SUFFIX := $(if $(filter-out default,$(PVP_FLAVOUR)),-$(PVP_FLAVOUR))
CARGO ?= cargo

ifeq ($(origin KDIR),undefined)
KERNEL_DEP := kernel
KDIR = $(shell scripts/kernel-dir)
MO ?= $(CURDIR)/build/module$(FLAVOUR_SUFFIX)
LLVM ?= $(if $(filter gcc,$(PVP_FLAVOUR)),,-19)
else
# The flavour names a test kernel; a kernel named by KDIR (a host's, or DKMS's) builds into
# build/module, where dkms.conf's BUILT_MODULE_LOCATION looks, whatever PVP_FLAVOUR says.
MO ?= $(CURDIR)/build/module
# A host kernel is built with its own compiler: LLVM empty (gcc) when its config says GCC.
LLVM ?= $(if $(shell grep -s '^CONFIG_CC_IS_GCC=y' $(KDIR)/include/config/auto.conf),,-19)
endif
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) MO=$(MO) LLVM=$(LLVM)
# DKMS appends CC=clang LD=ld.lld for a clang-built kernel; LLVM=-19 already names the kernel's
# own tools (clang-19, ld.lld-19, ...), and a bare `clang` may not exist, so those two are not
# handed down to the kernel build.
MAKEOVERRIDES := $(filter-out CC=% LD=%,$(MAKEOVERRIDES))

.PHONY: all setup kernel module tool personas install uninstall selftests fixtures guest-deps run check check-full host-check lint bench bench-progs fuzz clean

all: module tool

setup:
	@scripts/setup

kernel:
	@scripts/build-kernel >/dev/null

module: $(KERNEL_DEP)
	@mkdir -p $(MO)
	+$(KMAKE) modules

# The tool, and its man pages and shell completions (generated from its clap definitions by
# src/tool/build.rs) into build/share.
tool:
	@PVP_TOOL_SHARE=$(CURDIR)/build/share $(CARGO) build --quiet --release -p vfio-persona
	@mkdir -p build/bin && { cmp -s target/release/vfio-persona build/bin/vfio-persona || cp target/release/vfio-persona build/bin/; }

# The example personas (tests/personas/*.toml) compiled under the names the driver's firmware
# request uses: build/personas/persona-vfio-pci/NAME@MAJOR.MINOR.bin.
personas: tool
	@rm -rf build/personas && mkdir -p build/personas/persona-vfio-pci
	@for f in tests/personas/*.toml; do build/bin/vfio-persona compile $$f -o build/personas/persona-vfio-pci || exit 1; done

# make install [DESTDIR=<staging root>] [KDIR=<kernel build tree>] [PREFIX=/usr/local]: the module
# (modules_install into /lib/modules/<kver>/updates), the personas under
# /lib/firmware/persona-vfio-pci/, vfio-persona with its man pages and completions, then depmod
# (-b DESTDIR). make uninstall removes what it installed. scripts/install says more.
install: module tool personas
	@KDIR=$(KDIR) MO=$(MO) LLVM=$(LLVM) scripts/install install

uninstall:
	@KDIR=$(KDIR) MO=$(MO) LLVM=$(LLVM) scripts/install uninstall

# The project's own kselftests (tests/selftests), static, against the test kernel's uapi headers.
selftests: $(KERNEL_DEP)
	+$(MAKE) -C tests/selftests KSRC=$(shell scripts/kernel-src) \
		KHDR=$(shell scripts/kernel-dir)/usr-headers/include OUT=$(CURDIR)/build/selftests

# Test-only guest kernel modules (tests/fixtures; never part of the driver), into build/fixtures
# (build/fixtures-debug for the debug flavour).
FIXTURES := pasid klog layout
fixtures: $(KERNEL_DEP)
	+@for f in $(FIXTURES); do mkdir -p build/fixtures$(FLAVOUR_SUFFIX)/$$f && \
		$(MAKE) -C $(KDIR) M=$(CURDIR)/tests/fixtures/$$f MO=$(CURDIR)/build/fixtures$(FLAVOUR_SUFFIX)/$$f LLVM=$(LLVM) modules || exit 1; done

# What scripts/guest-run needs: kernel, module, tools and test programs (each reused when current).
guest-deps: module tool selftests fixtures
	@scripts/build-initramfs >/dev/null

run: setup
	@$(MAKE) -s guest-deps
	@scripts/guest-run -- scripts/guest/demo

check: setup
	@scripts/check

# The whole matrix: every suite on every kernel flavour (tests/manifest's full column too).
check-full: setup
	@PVP_TIER=full scripts/check

lint: $(KERNEL_DEP)
	@scripts/lint

# Benchmarks, each a ratio against a baseline measured in the same run (never pass/fail).
bench: setup
	@scripts/bench

# The guest benchmark programs (tests/bench), static, against the test kernel's uapi headers.
bench-progs: $(KERNEL_DEP)
	+$(MAKE) -C tests/bench KHDR=$(shell scripts/kernel-dir)/usr-headers/include OUT=$(CURDIR)/build/bench

fuzz:
	@scripts/fuzz long

clean:
	rm -rf build target
