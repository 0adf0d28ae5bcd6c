"""mincore(2) (mm/mincore.c): which pages of a range are resident.

A page is resident here when its PTE maps a frame (nothing is ever swapped
out), so anonymous memory never touched reports 0 and DONTUNMAP'ed or
MADV_DONTNEED'ed pages 0 again. Checks in Linux's order: an unaligned start
(EINVAL), a range past user space (ENOMEM), then page by page a hole in the
range is ENOMEM and an unwritable vector EFAULT.
"""
from __future__ import annotations

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK
from emu_x86.kernel.errno import EINVAL, ENOMEM, SyscallError
from emu_x86.kernel.mm.mm import TASK_SIZE

SYS_mincore = 27
MASK64 = (1 << 64) - 1


def sys_mincore(kernel, vcpu, task, start, length, vec, *_):
    if start & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    pages = ((length & MASK64) + PAGE_SIZE - 1) // PAGE_SIZE
    if start + pages * PAGE_SIZE > TASK_SIZE or start + length < start:
        raise SyscallError(ENOMEM)
    mm = task.mm
    result = bytearray()
    for index in range(pages):
        address = start + index * PAGE_SIZE
        if mm.find_vma(address) is None:
            raise SyscallError(ENOMEM)
        result.append(1 if mm.pagetables.lookup(address) & PHYS_ADDR_MASK else 0)
    if result:
        mm.copy_to_user(vec, bytes(result))
    return 0


SYSCALLS = {SYS_mincore: sys_mincore}
