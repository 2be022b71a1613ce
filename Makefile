# SPDX-License-Identifier: GPL-2.0
#
# vhost-blk: an in-kernel virtio-blk backend in Rust.
#
#   make run          set everything up, boot the test VM, load the module,
#                     boot an L2 guest on a vhost-blk-pci disk and run fio on
#                     it beside virtio-blk-pci and vhost-user-blk-pci disks
#   make check        set everything up and run every test: host tests, lints,
#                     the VM runner's self-test, the VM selftests on the
#                     release kernel, every mutant of tools/testing/mutants/
#                     against the case that must catch it, the selftests
#                     and QEMU's qtest of vhost-blk-pci on the debug (KASAN,
#                     lockdep, kmemleak) kernel, the qtest and the QEMU
#                     mutants on the release kernel, then the end-to-end
#                     test (patched QEMU, L2 guest on vhost-blk-pci, fio
#                     verification)
#
#   make bench        the side-by-side benchmark in the test VM: vhost-blk
#                     against QEMU 10.0's qemu-storage-daemon (vhost-user-blk)
#                     and raw io_uring; table, CSV, JSON and SVG plots under
#                     results/<date>/ (BENCH_ARGS: see vhost-blk-bench --help;
#                     BENCH_APPEND: VM kernel parameters, e.g. idle=poll)
#   make bench-e2e    the end-to-end benchmark: fio in an L2 guest on
#                     vhost-blk-pci, virtio-blk-pci and vhost-user-blk-pci
#   make bench-ab BENCH_B=other.ko
#                     the benchmark on this module and on another, side by
#                     side in one VM boot, compared
#
# Other targets: deps kernel module lint fmt tools test-host check-runner
# check-vm check-mutants check-debug check-release qemu check-qtest check-e2e
# show fuzz clean.
# tools/testing/mutant.sh PATCH [TARGET [CASE]] proves a test (CASE) fails
# on a broken module (tools/testing/mutants/); TEST_FILTER=TEXT runs only
# the host tests whose name contains TEXT.
# KFLAVOUR=debug selects the sanitizer kernel for kernel, module and
# check-vm; SELFTEST_FILTER=TEXT runs only the VM selftests whose name
# contains TEXT.

KFLAVOUR ?= release
export KFLAVOUR

TESTING := tools/testing
# (make 4.3 does not pass exported variables to $(shell): name the flavour.)
KDIR = $(shell KFLAVOUR=$(KFLAVOUR) $(TESTING)/kernel.sh --print-dir)
KMAKE := $(TESTING)/kmake
MODDIR := drivers/vhost/blk
BUILD := build/$(KFLAVOUR)
CARGO ?= cargo
VM_TIMEOUT ?= 900
# The L2 guest's accelerator: tcg, kvm (nested KVM in the TCG L1: it has
# crashed L1, see Documentation/vhost-blk/qemu.rst) or auto (KVM when L1 has it).
E2E_ACCEL ?= tcg

RUST_SRCS := $(shell find $(MODDIR) tools -name '*.rs')
C_SRCS := $(filter-out %.mod.c,$(wildcard $(MODDIR)/*.c $(MODDIR)/*.h)) include/uapi/linux/vhost_blk.h

.PHONY: all deps kernel module lint rustfmt fmt clippy clippy-tools checkpatch checkpatch-qemu \
	tools test-host \
	check check-release check-runner check-vm check-debug check-mutants fuzz run clean module-clean help \
	qemu fio check-qtest check-e2e bench bench-ab bench-e2e show

all: module tools

help:
	@sed -n '3,/^$$/p' Makefile

deps:
	@$(TESTING)/deps.sh

kernel: deps
	@$(TESTING)/kernel.sh

# The module is built in place; a build for another kernel tree first
# cleans the objects of the previous one.
module: kernel
	@mkdir -p $(BUILD)
	@if [ "$$(cat build/.module-kdir 2>/dev/null)" != "$(KDIR)" ]; then \
		$(MAKE) --no-print-directory module-clean; \
		echo "$(KDIR)" > build/.module-kdir; \
	fi
	@$(KMAKE) -C $(KDIR) M=$(CURDIR) $(if $(CLIPPY),CLIPPY=1) modules > $(BUILD)/module.log 2>&1 \
		|| { cat $(BUILD)/module.log; exit 1; }
	@cat $(BUILD)/module.log
	@if grep -q 'warning:' $(BUILD)/module.log; then \
		echo "module: the build printed warnings (see above); it must be warning-free"; exit 1; fi
	@cp $(MODDIR)/vhost_blk.ko $(BUILD)/vhost_blk.ko
	@echo "module: $(BUILD)/vhost_blk.ko"

# Style and lint: clippy over the module and over the host crates (core,
# harness), kernel rustfmt, checkpatch --strict, QEMU's checkpatch over the
# QEMU series (whose vhost_blk.h must be the UAPI header).
lint: clippy clippy-tools rustfmt checkpatch checkpatch-qemu

clippy: kernel
	@touch $(MODDIR)/vhost_blk_main.rs
	$(MAKE) --no-print-directory module CLIPPY=1

clippy-tools:
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

rustfmt: kernel
	/usr/bin/rustfmt --check --edition 2021 --config-path $(KDIR)/.rustfmt.toml $(RUST_SRCS)

# Format every Rust file (module and tools) the kernel's way.
fmt: kernel
	/usr/bin/rustfmt --edition 2021 --config-path $(KDIR)/.rustfmt.toml $(RUST_SRCS)

checkpatch: kernel
	$(KDIR)/scripts/checkpatch.pl --no-tree --strict --terse -f $(C_SRCS)

checkpatch-qemu: deps
	$(TESTING)/qemu.sh --checkpatch

tools:
	$(CARGO) build --release --workspace --quiet

# Host tests; like the module, they must build without warnings.
test-host:
	@mkdir -p build
	@echo "$(CARGO) test --workspace --quiet $(if $(TEST_FILTER),-- $(TEST_FILTER))"
	@$(CARGO) test --workspace --quiet $(if $(TEST_FILTER),-- $(TEST_FILTER)) > build/test-host.log 2>&1 \
		|| { cat build/test-host.log; exit 1; }
	@cat build/test-host.log
	@if grep -q '^warning' build/test-host.log; then \
		echo "test-host: the build printed warnings (see above); it must be warning-free"; exit 1; fi

# (QEMU's qemu-img and qemu-nbd serve the qcow2 disk over NBD.)
check-vm: module tools qemu
	$(TESTING)/vm-run.sh --timeout $(VM_TIMEOUT) -- \
		$(CURDIR)/target/release/vhost-blk-selftest --module $(CURDIR)/$(BUILD)/vhost_blk.ko \
		--kdir $(KDIR) --qemu $$(dirname $$($(TESTING)/qemu.sh --print)) \
		$(if $(SELFTEST_FILTER),--filter $(SELFTEST_FILTER))

check-runner: kernel
	$(TESTING)/runner-selftest.sh

# Every mutant of tools/testing/mutants/cases must be caught by its case.
check-mutants: module tools
	$(TESTING)/mutants.sh

# Everything on the release kernel only (faster while developing).
check-release: deps test-host lint check-runner check-vm

check: check-release check-mutants check-debug check-qtest check-e2e

check-debug:
	$(MAKE) --no-print-directory KFLAVOUR=debug VM_TIMEOUT=1800 check-vm
	$(MAKE) --no-print-directory KFLAVOUR=debug QTEST_ARGS=--no-mutants check-qtest

# Fuzz chain walking and request parsing for FUZZ_SECONDS (needs a nightly
# toolchain and cargo-fuzz); new inputs land in the corpus, which
# `cargo test` replays with stable Rust.
FUZZ_SECONDS ?= 60
fuzz:
	$(CARGO) +nightly fuzz run --fuzz-dir tools/fuzz chain_and_request \
		tools/fuzz/corpus/chain_and_request -- \
		-max_total_time=$(FUZZ_SECONDS) -max_len=40000 -print_final_stats=1

# QEMU 10.0 with the vhost-blk-pci series of qemu-patches/, cached.
qemu: deps
	@$(TESTING)/qemu.sh >/dev/null

# QEMU's qtest of vhost-blk-pci (tests/qtest/vhost-blk-test.c of the
# series) against the module in the test VM, then each QEMU mutant of
# tools/testing/mutants/qemu/ against the case that must catch it
# (QTEST_ARGS=--no-mutants: the qtest alone).
# vhost.ko's memory-region limit is raised above the module's, as on hosts
# set up for memory hot-plug, so that the memslots case can tell them apart.
check-qtest: module qemu
	$(TESTING)/vm-run.sh --timeout $(VM_TIMEOUT) --append vhost.max_mem_regions=509 -- \
		$(CURDIR)/$(TESTING)/qtest.sh $$(dirname $$($(TESTING)/qemu.sh --print)) $(KDIR) \
		$(QTEST_ARGS)

# End to end: an L2 guest, booted in the test VM by the patched QEMU,
# verifies data with fio on a vhost-blk-pci disk.
check-e2e: module tools qemu fio
	$(TESTING)/vm-run.sh --timeout 2400 --memory 3G -- \
		$(CURDIR)/$(TESTING)/e2e-l1.sh $$($(TESTING)/qemu.sh --print) $(KDIR) $(E2E_ACCEL) check \
		E2E_FIO=$$($(TESTING)/fio.sh --print)

# A static fio for the L2 guest's initramfs, cached.
fio: deps
	@$(TESTING)/fio.sh >/dev/null

BENCH_OUT ?= results/$(shell date +%Y%m%d-%H%M%S)
# Level 2: the L2 guest's fio on vhost-blk-pci, virtio-blk-pci (aio=native,
# io_uring) and vhost-user-blk-pci, repeated; e2e.csv and e2e-table.txt.
E2E_BENCH_ARGS ?= E2E_REPS=3 E2E_JOBS=full E2E_TIMEOUT=5000
bench-e2e: module tools qemu fio
	$(TESTING)/vm-run.sh --timeout 5400 --memory 3G --out $(BENCH_OUT) -- \
		$(CURDIR)/$(TESTING)/e2e-l1.sh $$($(TESTING)/qemu.sh --print) $(KDIR) $(E2E_ACCEL) demo \
		E2E_FIO=$$($(TESTING)/fio.sh --print) E2E_OUT=$(abspath $(BENCH_OUT))/data $(E2E_BENCH_ARGS)

BENCH_ARGS ?=
# More kernel parameters for the benchmark VM, e.g. BENCH_APPEND=idle=poll
# (idle vCPUs spin instead of halting: what TCG's wake-ups cost without
# the halt, see Documentation/vhost-blk/benchmarks.rst).
BENCH_APPEND ?=
# The daemon peer: QEMU 10.0's from qemu.sh's build, without libvhost-user's
# per-request stack zeroing (BENCH_QSD=storage-daemon/qemu-storage-daemon
# for the daemon as QEMU builds it).
BENCH_QSD ?= peers/unzeroed/qemu-storage-daemon
bench: module tools qemu
	$(TESTING)/vm-run.sh --timeout 5400 --out $(BENCH_OUT) \
		$(if $(BENCH_APPEND),--append "$(BENCH_APPEND)") -- \
		$(CURDIR)/target/release/vhost-blk-bench --out $(abspath $(BENCH_OUT))/data \
		--qsd $$(dirname $$($(TESTING)/qemu.sh --print))/$(BENCH_QSD) $(BENCH_ARGS)
	@echo "bench: results in $(BENCH_OUT)/data (table.txt, summary.csv, results.json, *.svg)"

# The benchmark on vhost-blk alone, this module (A) against another (B,
# BENCH_B=path/to/vhost_blk.ko, e.g. one built from an older commit), in
# one VM boot: OUT/a, OUT/b and OUT/compare.txt (A/B of each median).
bench-ab: module tools
	@test -n "$(BENCH_B)" || { echo "bench-ab: set BENCH_B=path/to/other/vhost_blk.ko"; exit 2; }
	$(TESTING)/vm-run.sh --timeout 5400 --out $(BENCH_OUT) -- \
		$(CURDIR)/$(TESTING)/bench-ab.sh $(CURDIR)/target/release/vhost-blk-bench \
		$(abspath $(BENCH_OUT)) $(CURDIR)/$(BUILD)/vhost_blk.ko $(abspath $(BENCH_B)) $(BENCH_ARGS)

# The main job: an L2 guest, booted in the test VM by the patched QEMU, runs
# the same short fio jobs on a vhost-blk-pci disk, virtio-blk-pci disks
# (an iothread per queue; aio=native, io_uring) and a vhost-user-blk-pci
# disk (QEMU 10.0's qemu-storage-daemon),
# each on its own identical null_blk, and prints them side by side.
run: module tools qemu fio
	$(TESTING)/vm-run.sh --timeout 2400 --memory 3G -- \
		$(CURDIR)/$(TESTING)/e2e-l1.sh $$($(TESTING)/qemu.sh --print) $(KDIR) $(E2E_ACCEL) demo \
		E2E_FIO=$$($(TESTING)/fio.sh --print)

# What /dev/vhost-blk offers (features, limits, parameters), in the test VM.
show: module tools
	$(TESTING)/vm-run.sh --timeout $(VM_TIMEOUT) -- \
		$(CURDIR)/target/release/vhost-blk-selftest --show --module $(CURDIR)/$(BUILD)/vhost_blk.ko

# Kbuild's own `M=... clean` would also sweep cargo's target/.
module-clean:
	find drivers \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
		-o -name '.*.cmd' -o -name '*.rmeta' -o -name 'modules.order' \) -delete
	rm -f Module.symvers modules.order

clean: module-clean
	rm -rf build target
