"""mseal(2) (mm/mseal.c, Linux 6.10+): seal mappings against change.

``VMA.sealed`` (VM_SEALED) is set on every mapping of the range and never
cleared; fork copies it (dup_mmap copies vm_flags), exec drops it with the
old mm. A sealed range refuses, with EPERM: munmap, mremap (as source or
MREMAP_FIXED destination), mprotect, mmap(MAP_FIXED) over it, and the
destructive madvise advices on a read-only private mapping
(can_modify_vma_madv). Checks in do_mseal's order: flags (EINVAL), an
unaligned start, a length rounding up to zero from a huge value, a
wrap-around (EINVAL); an empty range succeeds; any unmapped byte in the
range is ENOMEM before anything is sealed.
"""
from __future__ import annotations

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import EINVAL, ENOMEM, EPERM, SyscallError
from emu_x86.kernel.loader.image import PROT_WRITE

SYS_mseal = 462
MASK64 = (1 << 64) - 1
MAP_SHARED = 0x01
# madvise advices that discard or may discard contents (is_madv_discard).
MADV_FREE, MADV_DONTNEED, MADV_REMOVE, MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTNEED_LOCKED = 8, 4, 9, 10, 18, 24
DISCARDING_ADVICES = frozenset((MADV_FREE, MADV_DONTNEED, MADV_REMOVE, MADV_DONTFORK, MADV_WIPEONFORK,
                                MADV_DONTNEED_LOCKED))


def check_modify(mm, start: int, end: int) -> None:
    """can_modify_mm: EPERM if any mapping overlapping [start, end) is sealed."""
    for vma in mm.vmas:
        if vma.sealed and vma.start < end and vma.end > start:
            raise SyscallError(EPERM)


def check_madvise(mm, start: int, end: int, advice: int) -> None:
    """can_modify_mm_madv: a discarding advice on a sealed read-only private mapping."""
    if advice not in DISCARDING_ADVICES:
        return
    for vma in mm.vmas:
        if vma.sealed and vma.start < end and vma.end > start \
                and not vma.prot & PROT_WRITE and not vma.flags & MAP_SHARED:
            raise SyscallError(EPERM)


def sys_mseal(kernel, vcpu, task, start, length, flags, *_):
    if flags & MASK64:
        raise SyscallError(EINVAL)
    if start & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    aligned = ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) & MASK64
    if length and not aligned:
        raise SyscallError(EINVAL)
    end = start + aligned
    if end > MASK64:
        raise SyscallError(EINVAL)
    if end == start:
        return 0
    mm = task.mm
    position = start
    for vma in mm.vmas:                     # check_mm_seal: the whole range mapped
        if vma.end <= position or vma.start >= end:
            continue
        if vma.start > position:
            break
        position = vma.end
    if position < end:
        raise SyscallError(ENOMEM)
    for piece in mm._split_vmas(start, end):
        piece.sealed = True
    return 0


SYSCALLS = {SYS_mseal: sys_mseal}
