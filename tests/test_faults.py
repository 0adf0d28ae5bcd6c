"""Guest faults become the architected exception, then the Linux signal -- never a host crash.

Each guest is a few instructions of AT&T assembly; the expected signal is
what Linux delivers for that exception (arch/x86/kernel/traps.c), checked
against a native run of the same binary where the host can run it.
"""
import re

import pytest

from tests.guestbuild import build_asm, emu, native

PROLOGUE = ".globl _start\n_start:\n"

CASES = {
    # name: (body, signal number, signal name)
    "write_unmapped": ("movq $1, 0x700000\n", 11, "SIGSEGV"),
    "read_null": ("mov 0, %rax\n", 11, "SIGSEGV"),
    "write_text": ("lea _start(%rip), %rax\nmovb $0, (%rax)\n", 11, "SIGSEGV"),
    "execute_data": ("lea data(%rip), %rax\njmp *%rax\n.data\ndata: .byte 0xc3\n", 11, "SIGSEGV"),
    "kernel_address": ("movabs $0xffffffff81000000, %rax\nmov (%rax), %rax\n", 11, "SIGSEGV"),
    "non_canonical": ("movabs $0x0000900000000000, %rax\nmov (%rax), %rax\n", 11, "SIGSEGV"),
    "ud2": ("ud2\n", 4, "SIGILL"),
    "divide_by_zero": ("xor %ecx, %ecx\nmov $1, %eax\ncqto\nidiv %rcx\n", 8, "SIGFPE"),
    "privileged_hlt": ("hlt\n", 11, "SIGSEGV"),
    "int3": ("int3\n", 5, "SIGTRAP"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fault_kills_guest_with_linux_signal(name):
    body, signo, signame = CASES[name]
    binary = build_asm(PROLOGUE + body)
    result = emu("run", str(binary))
    assert result.returncode == 128 + signo, result.stderr
    assert native(binary).returncode == 128 + signo
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert signame in line and "Traceback" not in line
    assert re.search(r"rip 0x[0-9a-f]+", line)


def test_sigsegv_line_names_rip_and_address():
    binary = build_asm(PROLOGUE + "nop\nmovq $1, 0x700008\n")
    result = emu("run", str(binary))
    assert result.returncode == 139
    (line,) = result.stderr_lines
    # The faulting instruction is the movq right after the 1-byte nop at the entry.
    entry = int(re.search(r"rip (0x[0-9a-f]+)", line).group(1), 16)
    assert entry & 0xFFF == 0x001, line
    assert "address 0x700008" in line
    assert "SIGSEGV" in line


def test_stack_grows_and_deep_recursion_works():
    # 64 KiB of stack below the initially populated pages faults in on demand.
    binary = build_asm(PROLOGUE + """
        mov $8192, %ecx
    1:  push %rcx
        loop 1b
        mov $60, %eax
        mov $5, %edi
        syscall
    """)
    assert emu("run", str(binary)).returncode == 5
