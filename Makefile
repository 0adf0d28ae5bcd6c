# Set-up is automatic: every target creates .venv and installs the package
# (which compiles the cffi hot path) when missing or out of date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= guest/examples/hello.S

.PHONY: run test guest-test bench lint clean fuzz compare toolchains conformance

$(STAMP): pyproject.toml setup.py emu/timing/hotpath.c emu/timing/hotpath.h emu/timing/preempt.c emu/timing/preempt.h emu/timing/_build_hotpath.py emu/mmu/tlb.c emu/mmu/tlb.h \
	 emu/timing/abort_guard.c emu/isa/amx_fast.c emu/isa/amx_fast.h \
	 emu/isa/xstate_fast.c emu/isa/xstate_fast.h emu/registers_fast.c emu/registers_fast.h
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/emu run $(DEMO) hello world

test: $(STAMP) toolchains
	$(BIN)/python -m pytest -n auto

guest-test: $(STAMP) toolchains
	$(BIN)/emu test guest/tests guest/examples

# rustc, go and a static busybox for the Rust/Go/shell guest tests
# (emucli/toolchains.py): installs only what is missing, from Debian's
# packages, one line per tool fetched. A tool it cannot get skips the tests
# that need it, except under CI=true, where this fails.
toolchains: $(STAMP)
	@$(BIN)/python -m emucli.toolchains

# Linux's selftests natively and under emu -> docs/conformance.md (not part of
# `make test`: it downloads Debian's linux-source-6.12 into
# $${EMU_CONFORMANCE_CACHE:-~/.cache/emu-conformance} and runs for many minutes).
# TESTS=rseq,futex_wait picks cases; CONFORMANCE_TIMEOUT is the per-run limit
# under emu in seconds.
TESTS ?=
CONFORMANCE_TIMEOUT ?= 120
conformance: $(STAMP)
	$(BIN)/python -m conformance --timeout $(CONFORMANCE_TIMEOUT) $(if $(TESTS),--tests "$(TESTS)")

# The long fuzz campaign (the CI part is tests/test_fuzz.py). Progress goes to stderr.
FUZZ_SEED ?= 1
FUZZ_JOBS ?= 2
FUZZ = $(BIN)/python -m fuzz --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)
fuzz: $(STAMP)
	$(FUZZ) --kind code --cases 100000
	$(FUZZ) --kind syscall --cases 20000
	$(FUZZ) --kind extension --cases 20000
	$(FUZZ) --kind machine_api --cases 20000

compare: $(STAMP)
	$(BIN)/emu compare --workload "guest/workloads/munmap_threads.c 0 50" \
	    --workload "guest/workloads/mapfixed_generation.c 0 100" \
	    --workload "guest/workloads/pinned_idle.c 0 50" \
	    --policy-matrix lazy_tlb=refcount,shootdown,hazard --cpus 1,2,4,8 --out results/tlb

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'ruff>=0.4'
	$(BIN)/ruff check emu kernel emucli tests guest/tools conformance

clean:
	rm -rf $(VENV) build *.egg-info emu/timing/_hotpath*.so guest/.build
