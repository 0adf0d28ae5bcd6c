"""emu_x86/emu/translation_abort.py: which encodings abort Unicorn's translator, checked
against GNU objdump's decoding, and the search for them in a straight-line run."""
import re
import subprocess

import pytest

from emu_x86.emu.translation_abort import aborts_unicorn_translator, find_untranslatable
from tests.guestbuild import missing_prerequisite

ABORTING = ["f00fa3c8", "40f00fa3c8", "f0480fabc8", "66f0480fb3c8", "2ef00fbbd1", "f00fbae805", "f00fbaf807",
            "f0410fa3c0"]
NOT_ABORTING = [
    "0fa3c8",          # bt %ecx,%eax without LOCK
    "f00fab08",        # lock bts %ecx,(%rax): the legal memory form
    "f00fa308",        # lock bt %ecx,(%rax): #UD on hardware, but Unicorn runs it as BT
    "f00fbad005",      # 0F BA /2: no such instruction (capstone/Unicorn #UD), not a translator abort
    "f0ffc0",         # lock inc %eax: Unicorn raises #UD itself
    "f00f",            # truncated
]


def objdump(hex_bytes: str, tmp_path) -> str:
    code = tmp_path / "code.bin"
    code.write_bytes(bytes.fromhex(hex_bytes))
    try:
        result = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", str(code)],
                                capture_output=True, check=True)
    except FileNotFoundError:
        missing_prerequisite("GNU objdump")
    # A REX byte before a legacy prefix is ignored; objdump prints it as its own "rex" line.
    lines = [line.split("\t")[-1] for line in result.stdout.decode().splitlines()
             if re.match(r"\s*[0-9a-f]+:\t", line)]
    return " ".join(line for line in lines if line != "rex")


@pytest.mark.parametrize("hex_bytes", ABORTING)
def test_flagged_encodings_are_locked_bit_tests_of_a_register(hex_bytes, tmp_path):
    assert aborts_unicorn_translator(bytes.fromhex(hex_bytes))
    text = objdump(hex_bytes, tmp_path)
    assert "lock" in text and " bt" in text, text
    assert "(" not in text.split("lock", 1)[1], f"memory operand: {text}"


def test_lock_bt_immediate_group_is_flagged_only_for_bt_to_btc():
    assert aborts_unicorn_translator(bytes.fromhex("f00fbae005"))          # /4 bt $5,%eax
    assert not aborts_unicorn_translator(bytes.fromhex("f00fbad005"))      # /2 undefined


@pytest.mark.parametrize("hex_bytes", NOT_ABORTING)
def test_unflagged_encodings(hex_bytes):
    assert not aborts_unicorn_translator(bytes.fromhex(hex_bytes))


def _fetcher(code: bytes, base: int):
    def fetch(address, size):
        return code[address - base:address - base + size]
    return fetch


def test_search_finds_the_culprit_after_straight_line_code_and_stops_at_a_branch():
    base = 0x1000
    straight = bytes.fromhex("4883c301" "4883c302" "f00fabc8" "90")    # add; add; lock bts; nop
    assert find_untranslatable(_fetcher(straight, base), base) == base + 8
    behind_branch = bytes.fromhex("4883c301" "eb00" "f00fabc8")          # add; jmp; lock bts
    assert find_untranslatable(_fetcher(behind_branch, base), base) is None
    assert find_untranslatable(_fetcher(behind_branch, base), base + 6) == base + 6
    undecodable = bytes.fromhex("4883c301" "0fff")                      # add; ud0 without ModRM
    assert find_untranslatable(_fetcher(undecodable, base), base) is None


def test_a_replaced_unicorn_gets_its_own_validated_cpu_state_and_the_same_results():
    """After translator aborts the vCPU runs on a new Unicorn instance: its
    one-page TLB flushes must target the new CPUState (emu_x86/emu/unicorn_internals.py),
    and the guest's output and exit match a host run of the same program."""
    import io

    from emu_x86.emu.timing._hotpath import ffi

    from emu_x86.emu.machine import Machine
    from emu_x86.emu.unicorn_internals import find_cpu_state
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    from tests.guestbuild import REPO, build_asm, native

    source = (REPO / "guest" / "tests" / "kernel" / "lock_bit_test_register.S").read_text()
    binary = str(build_asm(source))
    machine = Machine(cpus=1, memory_bytes=64 << 20)
    stdout = io.BytesIO()
    kernel = Kernel(machine, KernelConfig(argv=[binary], envp=[], stdout=stdout))
    kernel.start(binary)
    vcpu = machine.vcpus[0]
    first_cpu_state = int(ffi.cast("uintptr_t", vcpu.clock.uc_cpu))
    try:
        machine.run()
        assert vcpu.event_counts["unicorn_translator_abort"] == 6
        assert len(vcpu._abandoned_unicorns) == 6
        current, reason = find_cpu_state(vcpu.uc)
        if current is None:
            assert first_cpu_state == 0, reason       # no validated CPUState on this Unicorn at all
        else:
            assert int(ffi.cast("uintptr_t", vcpu.clock.uc_cpu)) == current != first_cpu_state
        host = native(build_asm(source))
        assert stdout.getvalue() == host.stdout and kernel.exit_status() == host.returncode == 0
    finally:
        machine.close()


def test_the_abort_guard_installed_for_a_run_loop_hands_sigabrt_back():
    """Machine.run keeps the guard's SIGABRT handler installed between runs
    (emu_x86/emu/timing/abort_guard.c): removing it restores the action it replaced,
    and a SIGABRT outside a run while it is installed reaches that action."""
    import os
    import signal

    from emu_x86.emu.timing._hotpath import lib

    received = []
    previous = signal.signal(signal.SIGABRT, lambda signo, frame: received.append(signo))
    try:
        lib.hotpath_abort_guard_install()
        lib.hotpath_abort_guard_remove()
        os.kill(os.getpid(), signal.SIGABRT)
        assert received == [signal.SIGABRT]
        lib.hotpath_abort_guard_install()
        os.kill(os.getpid(), signal.SIGABRT)      # not inside a run: the replaced action
        assert received == [signal.SIGABRT, signal.SIGABRT]
        lib.hotpath_abort_guard_remove()
        os.kill(os.getpid(), signal.SIGABRT)
        assert received == [signal.SIGABRT] * 3
    finally:
        lib.hotpath_abort_guard_remove()
        signal.signal(signal.SIGABRT, previous)
