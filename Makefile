# Set-up is automatic: every target creates .venv and installs the package
# (which compiles the cffi hot path) when missing or out of date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RELINKED := $(VENV)/.relinked-stamp
DEMO   ?= guest/examples/hello.S

.PHONY: run test guest-test bench calibrate lint clean fuzz compare toolchains conformance

$(STAMP): pyproject.toml setup.py emu_x86/emucli/scripts/emu emu_x86/emu/timing/hotpath.c emu_x86/emu/timing/hotpath.h emu_x86/emu/timing/preempt.c emu_x86/emu/timing/preempt.h emu_x86/emu/timing/_build_hotpath.py emu_x86/emu/mmu/tlb.c emu_x86/emu/mmu/tlb.h \
	 emu_x86/emu/timing/abort_guard.c emu_x86/emu/timing/cache.c emu_x86/emu/timing/cache.h emu_x86/emu/isa/amx_fast.c emu_x86/emu/isa/amx_fast.h \
	 emu_x86/emu/isa/xstate_fast.c emu_x86/emu/isa/xstate_fast.h emu_x86/emu/registers_fast.c emu_x86/emu/registers_fast.h \
	 emu_x86/emu/runqueue_scan.c emu_x86/emu/runqueue_scan.h
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# editable_mode=compat: a plain path in a .pth file. The default editable
	@# finder imports pathlib, importlib.util and more at every interpreter
	@# start (20 ms of CPU measured here, in every `emu` command and test).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" --config-settings editable_mode=compat
	@# Bytecode for the editable sources now: with PYTHONDONTWRITEBYTECODE set,
	@# every `emu run` would otherwise compile ~300 modules (~1 s of CPU) again.
	$(BIN)/python -m compileall -q emu_x86 > /dev/null
	@touch $(STAMP)

# The unicorn package's libunicorn linked again with -Bsymbolic (loading the
# stock one was 5% of a hello's start-up), a TLB fill that does not recover
# CPU state no hook reads (a quarter to a half of each TLB miss), code buffers
# without huge pages and a TB hash table started small (each vCPU's start-up):
# emu_x86/emu/unicorn_relink.py. Every target below depends on it.
$(RELINKED): $(STAMP) emu_x86/emu/unicorn_relink.py emu_x86/emu/uclib.py
	$(BIN)/python -m emu_x86.emu.unicorn_relink
	@touch $(RELINKED)

run: $(RELINKED)
	$(BIN)/emu run $(DEMO) hello world

test: $(RELINKED) toolchains
	$(BIN)/python -m pytest -n auto

guest-test: $(RELINKED) toolchains
	$(BIN)/emu test guest/tests guest/examples

# rustc, go and a static busybox for the Rust/Go/shell guest tests
# (emu_x86/emucli/toolchains.py): installs only what is missing, from Debian's
# packages, one line per tool fetched. A tool it cannot get skips the tests
# that need it, except under CI=true, where this fails.
toolchains: $(RELINKED)
	@$(BIN)/python -m emu_x86.emucli.toolchains

# Linux's selftests natively and under emu -> docs/conformance.md (not part of
# `make test`: it downloads Debian's linux-source-6.12 into
# $${EMU_CONFORMANCE_CACHE:-~/.cache/emu-conformance} and runs for many minutes).
# TESTS=rseq,futex_wait picks cases; CONFORMANCE_TIMEOUT is the per-run limit
# under emu in seconds.
TESTS ?=
CONFORMANCE_TIMEOUT ?= 120
conformance: $(RELINKED)
	$(BIN)/python -m conformance --timeout $(CONFORMANCE_TIMEOUT) $(if $(TESTS),--tests "$(TESTS)")

# The long fuzz campaign (the CI part is tests/test_fuzz.py). Progress goes to stderr.
FUZZ_SEED ?= 1
FUZZ_JOBS ?= 2
FUZZ = $(BIN)/python -m fuzz --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)
fuzz: $(RELINKED)
	$(FUZZ) --kind code --cases 100000
	$(FUZZ) --kind syscall --cases 20000
	$(FUZZ) --kind extension --cases 20000
	$(FUZZ) --kind machine_api --cases 20000
	$(FUZZ) --kind elf --cases 10000
	$(FUZZ) --kind asm --cases 10000

# The comparisons the lists argue about -> results/*.json/csv/png and docs/compare.md
# (emu_x86/emucli/compare_report.py): lazy-TLB schemes as CPUs grow, IPI vs INVLPGB
# (zen4), nr_dyn_asids/percpu_pgd with many live mms, the AMX buffer policies.
# COMPARE_CPUS and COMPARE_JOBS size the run.
COMPARE_CPUS ?= 1,2,4,8
COMPARE_JOBS ?= 2
COMPARE = $(BIN)/emu compare --no-progress -j $(COMPARE_JOBS)
compare: $(RELINKED)
	@mkdir -p results
	$(COMPARE) --workload "guest/workloads/munmap_threads.c 0 20" \
	    --workload "guest/workloads/short_processes.c 24 4" \
	    --workload "guest/workloads/pinned_idle.c 0 20" \
	    --workload "guest/workloads/lazy_exit.c 16" \
	    --policy-matrix lazy_tlb=refcount,shootdown,hazard --cpus $(COMPARE_CPUS) --out results/lazy
	$(COMPARE) --profile zen4 --workload "guest/workloads/munmap_threads.c 0 20" \
	    --policy-matrix tlb_flush=ipi,invlpgb --cpus $(COMPARE_CPUS) --out results/flush
	$(COMPARE) --workload "guest/workloads/short_processes.c 24 4 0" \
	    --policy-matrix nr_dyn_asids=1,6 --policy-matrix percpu_pgd=0,1 --cpus 1,2,4 --out results/asids
	$(COMPARE) --workload "CFLAGS='-mamx-tile -mamx-int8' guest/tests/amx/amx_churn.c 16 4 0 2" \
	    --policy-matrix xstate_alloc=vmalloc,vmalloc_cache,separate,eager,pages_percpu --cpus 1,4 \
	    --out results/xstate
	$(BIN)/python -m emu_x86.emucli.compare_report results docs/compare.md

# Bytecode first: the bench times start-up, and with PYTHONDONTWRITEBYTECODE
# set a module edited since the install is compiled again at every start
# (machine.py: ~15 ms of a hello), which is not the emulator's cost.
bench: $(RELINKED)
	$(BIN)/python -m compileall -q emu_x86 > /dev/null
	$(BIN)/python -m bench

# The cycle model against this host (docs/calibration.md): bench/calibrate's
# microbenchmarks natively and under `emu run --profile P --cache-model` (P: the
# profile nearest this host's CPU, e.g. zen5 on an EPYC 9005, zen3 on a 7003),
# a table with the geometric-mean error factor, and the working-set sweep PNG
# in results/calibration/. Needs gcc; matplotlib for the PNG (pip install '.[docs]').
calibrate: $(RELINKED)
	$(BIN)/python -m bench.calibrate

lint: $(RELINKED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'ruff>=0.4'
	$(BIN)/ruff check emu_x86 tests guest/tools conformance

clean:
	rm -rf $(VENV) build *.egg-info emu/timing/_hotpath*.so guest/.build
