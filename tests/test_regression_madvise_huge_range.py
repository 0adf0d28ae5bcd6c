"""Regression (found by `python -m fuzz --kind syscall --seed 7`, case 7714): madvise(2^63,
-136, MADV_DONTNEED) swept the page tables one 2 MiB step at a time over 2^63 bytes and
the emulator hung. Linux's do_madvise rejects a range that wraps (-EINVAL) and one past
TASK_SIZE (-ENOMEM); a huge but valid munmap/madvise over the whole user half finishes at
once because the sweep skips absent tables at every level (and, the range being unmapped,
answers -ENOMEM as madvise_walk_vmas does for holes, checked on the host)."""
from tests.guestbuild import build_asm, emu

GUEST = """
.globl _start
_start:
    # madvise(1 << 63, -136, MADV_DONTNEED): wraps around -> -EINVAL (22)
    mov $28, %eax
    movabs $0x8000000000000000, %rdi
    mov $-136, %rsi
    mov $4, %edx
    syscall
    cmp $-22, %rax
    jne fail
    # madvise(0x10000, 1 << 47, MADV_DONTNEED): past TASK_SIZE -> -ENOMEM (12)
    mov $28, %eax
    mov $0x10000, %edi
    movabs $0x800000000000, %rsi
    mov $4, %edx
    syscall
    cmp $-12, %rax
    jne fail
    # madvise over a huge unmapped part of the user half: valid, returns at once, -ENOMEM
    mov $28, %eax
    movabs $0x600000000000, %rdi
    movabs $0x100000000000, %rsi
    mov $4, %edx
    syscall
    cmp $-0xc, %rax
    jne fail
    mov $60, %eax
    xor %edi, %edi
    syscall
fail:
    mov $60, %eax
    mov $1, %edi
    syscall
"""


def test_madvise_of_a_huge_or_wrapping_range_answers_at_once():
    result = emu("run", "--timeout", "30", str(build_asm(GUEST)))
    assert result.returncode == 0, result.stderr
