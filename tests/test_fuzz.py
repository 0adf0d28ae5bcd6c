"""The fuzz harnesses (fuzz/) in CI: a short run of each kind. ``make fuzz`` runs them long.

Properties (fuzz/__init__.py ``check``): no host exception, every death is the
Linux signal of a CPU exception (or any signal the guest sent itself, for the
syscall kind), the run ends within its cycle budget and its wall-clock guard.
"""
import pytest

from fuzz import SYSCALL, CaseHung, Guest, exit_group, movabs, run_case, run_guest

CI_SEED = 2026
CODE_CASES, CODE_CHUNKS = 2000, 4


def assert_all_hold(kind, indices):
    failures = [outcome for outcome in (run_case(kind, CI_SEED, index) for index in indices) if not outcome.ok]
    assert not failures, "\n".join(f"{kind} #{o.index}: {o.failure}" for o in failures[:3])


@pytest.mark.parametrize("chunk", range(CODE_CHUNKS))
def test_random_code_never_crashes_the_emulator(chunk):
    size = CODE_CASES // CODE_CHUNKS
    assert_all_hold("code", range(chunk * size, (chunk + 1) * size))


@pytest.mark.parametrize("chunk", range(2))
def test_random_syscalls_never_crash_the_emulator(chunk):
    assert_all_hold("syscall", range(chunk * 150, (chunk + 1) * 150))


def test_extension_instructions_with_random_operands():
    assert_all_hold("extension", range(150))


def test_machine_api_xsetbv_and_xstate_msrs_only_raise_gp():
    assert_all_hold("machine_api", range(300))


# ---- the harness itself must be able to fail -------------------------------------------------

def test_harness_reports_a_signal_that_is_not_a_cpu_exception():
    # kill(getpid(), SIGUSR1) in a "code" case: not the signal of any CPU exception.
    code = (movabs("rax", 39) + SYSCALL + movabs("rdi", 0) + b"\x48\x89\xc7"     # mov %rax, %rdi
            + movabs("rax", 62) + movabs("rsi", 10) + SYSCALL + exit_group(0))
    outcome = run_guest(Guest(code=code))
    assert outcome.ending == "signal SIGUSR1"
    assert "not a CPU exception" in outcome.failure


def test_harness_reports_a_run_over_its_cycle_budget(monkeypatch):
    import fuzz
    monkeypatch.setattr(fuzz, "CYCLE_OVERSHOOT_ALLOWANCE", -1)
    outcome = run_guest(Guest(code=b"\xeb\xfe", max_cycles=10_000))
    assert outcome.ending == "cycle limit"
    assert "budget" in outcome.failure


def test_harness_reports_a_hang(monkeypatch):
    from emu_x86.kernel import syscall_table as syscalls

    def hang(*_):
        raise CaseHung("simulated")
    monkeypatch.setitem(syscalls.SYSCALLS, 39, hang)
    outcome = run_guest(Guest(code=movabs("rax", 39) + SYSCALL + exit_group(0)))
    assert outcome.failure.startswith("hang")


# 1: rex.W fs nop %ebx (a hint NOP capstone cannot decode); jns 1b -- code:1:89256.
HINT_NOP_LOOP = bytes.fromhex("48640f1ceb" "79f9")


def test_harness_guard_reaches_a_guest_that_never_leaves_unicorn(monkeypatch):
    """A run whose clock stops advancing never returns to Python by itself; the
    wall-clock guard must still end it (the machine is kicked out of Unicorn so
    SIGALRM's handler runs). Simulated by pricing every block at zero."""
    import fuzz
    from emu_x86.emu.machine import Machine
    monkeypatch.setattr(fuzz, "WALL_SECONDS_PER_CASE", 1.0)
    monkeypatch.setattr(Machine, "price_block", lambda self, vcpu, address, size: (0, 0, 0, 0))
    outcome = run_guest(Guest(code=HINT_NOP_LOOP + exit_group(0)))
    assert outcome.failure.startswith("hang"), outcome.failure


def test_found_code_1_89256_a_loop_of_an_undecodable_hint_nop_ends_at_its_cycle_budget():
    # Capstone stops at 48 64 0f 1c eb, which Unicorn runs as a NOP: the block
    # was priced zero cycles, so a loop of it never reached its deadline.
    outcome = run_case("code", 1, 89256)
    assert outcome.ok, outcome.failure
    loop = run_guest(Guest(code=HINT_NOP_LOOP + exit_group(0), max_cycles=20_000))
    assert loop.ending == "cycle limit" and loop.ok, loop


def test_harness_reports_a_host_exception(monkeypatch):
    from emu_x86.kernel import syscall_table as syscalls

    def broken(*_):
        raise KeyError("emulator bug")
    monkeypatch.setitem(syscalls.SYSCALLS, 39, broken)
    outcome = run_guest(Guest(code=movabs("rax", 39) + SYSCALL + exit_group(0)))
    assert outcome.failure.startswith("host exception") and "KeyError" in outcome.failure


def test_cases_are_reproducible():
    first, second = run_case("syscall", 5, 17), run_case("syscall", 5, 17)
    assert (first.ending, first.cycles) == (second.ending, second.cycles)


# ---- regressions: cases the long campaign (make fuzz) found ------------------------------------

def test_found_code_1_98816_lock_bt_register_form_is_sigill_not_a_host_abort():
    # 40 f0 0f a3 c8 (rex lock bt %ecx,%eax) made Unicorn's translator abort()
    # the whole process. It must be an ordinary #UD -> SIGILL for the guest;
    # guest/tests/kernel/lock_bit_test_register.S checks the guest's view.
    outcome = run_case("code", 1, 98816)
    assert outcome.ok, outcome.failure


# ---- program files through `emu run` (fuzz/inputs.py) ------------------------------------------

@pytest.mark.parametrize("kind", ["elf", "asm"])
def test_hostile_program_files_end_within_their_limits(kind):
    assert_all_hold(kind, range(20))


def test_input_harness_reports_an_internal_error(monkeypatch):
    """The child is forked from this process, so a loader broken here is broken there."""
    import emu_x86.kernel.loader.elf as elf

    def broken(*_args, **_kwargs):
        raise KeyError("loader bug")
    monkeypatch.setattr(elf, "load_elf_stream", broken)
    import os

    from fuzz.inputs import check_program_run, run_program, workdir
    case_dir = os.path.join(workdir(), "harness-70")
    os.makedirs(case_dir, exist_ok=True)
    result = run_program(os.path.join(workdir(), "bare"), case_dir)
    assert result[0] == 70
    assert check_program_run(*result).startswith("exit 70")


def test_input_harness_reports_memory_over_the_limit(monkeypatch):
    import os

    import fuzz.inputs as inputs
    monkeypatch.setattr(inputs, "HOST_MEMORY_LIMIT_BYTES", 1 << 20)
    # The child's growth past the pages it inherits may be ~0 in a test worker
    # that has run machines before (freed memory is reused): the harness counts
    # it all here. The child's own ceiling (emu run's, over what it did not
    # inherit) still leaves the worker's pages out: a worker holding more than
    # that ceiling (576 MiB), as CI's did once, would otherwise stop the run
    # with exit 123 before the harness could judge it.
    from emu_x86.emucli import limits
    real_resident_bytes = limits.resident_bytes

    def note_fork_uncounted():
        limits.inherited_resident_bytes = real_resident_bytes()
    monkeypatch.setattr(limits, "resident_bytes", lambda: 0)
    monkeypatch.setattr(limits, "note_fork", note_fork_uncounted)
    case_dir = os.path.join(inputs.workdir(), "harness-memory")
    os.makedirs(case_dir, exist_ok=True)
    result = inputs.run_program(os.path.join(inputs.workdir(), "bare"), case_dir)
    assert result[0] == 7                                   # the bare program's exit status
    assert inputs.check_program_run(*result).startswith("peak host memory")


def test_input_harness_does_not_count_the_parents_pages():
    """A forked case starts with the parent's pages resident (Linux sets the
    child's high-water mark from them): a parent holding 600 MiB, as a busy
    pytest worker did in CI, must not make a small case fail the memory
    property (fuzz/inputs.py run_program)."""
    import os

    import fuzz.inputs as inputs
    ballast = b"\x01" * (600 << 20)          # written, so resident
    case_dir = os.path.join(inputs.workdir(), "harness-ballast")
    os.makedirs(case_dir, exist_ok=True)
    result = inputs.run_program(os.path.join(inputs.workdir(), "bare"), case_dir)
    assert len(ballast) == 600 << 20
    assert result[0] == 7 and inputs.check_program_run(*result) is None, result[3]


def test_input_harness_sees_a_process_left_in_the_case_directory(tmp_path):
    import subprocess

    from fuzz.inputs import leftover_processes
    straggler = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert leftover_processes(str(tmp_path), grace_seconds=0.2) == [straggler.pid]
    finally:
        straggler.kill()
        straggler.wait()
    assert leftover_processes(str(tmp_path), grace_seconds=0.2) == []
