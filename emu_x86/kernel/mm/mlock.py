"""mlock, mlock2, munlock, mlockall, munlockall (mm/mlock.c).

Locking is bookkeeping: each VMA carries VM_LOCKED (and VM_LOCKONFAULT) in
``VMA.locked``, ``locked_vm_pages`` (mm->locked_vm, /proc's VmLck) is the
pages of locked VMAs, and nothing is ever swapped here, so no page needs
pinning. What a program can observe is Linux's: a lock without ONFAULT
populates the range (__mm_populate, as MAP_POPULATE would), the total is
held to RLIMIT_MEMLOCK (ENOMEM; already-locked pages of the range are not
counted twice, count_mm_mlocked_page_nr), a zero limit is EPERM
(can_do_mlock: the guest has no CAP_IPC_LOCK), a hole in the range is
ENOMEM after the mapped part before it was changed (apply_vma_lock_flags).
mlockall(MCL_FUTURE) sets mm->def_flags, so later mappings start locked;
fork clears every lock and def_flags (dup_mmap, mm_init), exec starts a new mm.
"""
from __future__ import annotations

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK
from emu_x86.kernel.errno import EINVAL, ENOMEM, EPERM, SyscallError
from emu_x86.kernel.loader.image import PROT_READ, PROT_WRITE

SYS_mlock, SYS_munlock, SYS_mlockall, SYS_munlockall, SYS_mlock2 = 149, 150, 151, 152, 325
VM_LOCKED, VM_LOCKONFAULT = 0x2000, 0x80000000
MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
MASK64 = (1 << 64) - 1


def locked_vm_pages(mm) -> int:
    """mm->locked_vm: pages in VM_LOCKED mappings."""
    return sum((vma.end - vma.start) // PAGE_SIZE for vma in mm.vmas if vma.locked)


def lock_limit_pages(task) -> int:
    from emu_x86.kernel.resource import RLIMIT_MEMLOCK, task_rlimit
    return task_rlimit(task.process, RLIMIT_MEMLOCK) // PAGE_SIZE


def mlock_future_ok(task, extra_pages: int) -> bool:
    """mlock_future_ok: room under RLIMIT_MEMLOCK for ``extra_pages`` more locked pages."""
    return locked_vm_pages(task.mm) + extra_pages <= lock_limit_pages(task)


def can_do_mlock(task) -> bool:
    """A non-zero RLIMIT_MEMLOCK (in bytes, even below a page); no CAP_IPC_LOCK here."""
    from emu_x86.kernel.resource import RLIMIT_MEMLOCK, task_rlimit
    return task_rlimit(task.process, RLIMIT_MEMLOCK) != 0


def populate(mm, start: int, end: int) -> None:
    """__mm_populate for newly locked, not on-fault ranges: fault each accessible page in."""
    for vma in list(mm.vmas):
        if vma.end <= start or vma.start >= end or vma.locked & VM_LOCKONFAULT:
            continue
        if not vma.prot & (PROT_READ | PROT_WRITE):
            continue                        # PROT_NONE: locked, nothing to bring in
        for page in range(max(start, vma.start), min(end, vma.end), PAGE_SIZE):
            if not mm.pagetables.lookup(page) & PHYS_ADDR_MASK:
                mm.populate(page, vma.prot)


def apply_vma_lock_flags(mm, start: int, length: int, locked: int) -> None:
    end = start + length
    if end > MASK64:
        raise SyscallError(EINVAL)
    if end == start:
        return
    vma = mm.find_vma(start)
    if vma is None:
        raise SyscallError(ENOMEM)
    position = start
    # Walk the range in address order: a hole stops the walk with ENOMEM,
    # the mappings before it already changed.
    inside = sorted(mm._split_vmas(start, end), key=lambda v: v.start)
    for piece in inside:
        if piece.start != position:
            raise SyscallError(ENOMEM)
        piece.locked = locked
        position = piece.end
    if position < end:
        raise SyscallError(ENOMEM)


def count_mm_mlocked_page_nr(mm, start: int, length: int) -> int:
    end = start + length
    return sum((min(vma.end, end) - max(vma.start, start)) // PAGE_SIZE
               for vma in mm.vmas if vma.locked and vma.end > start and vma.start < end)


def do_mlock(task, start: int, length: int, locked: int) -> int:
    if not can_do_mlock(task):
        raise SyscallError(EPERM)
    length = ((length + (start & (PAGE_SIZE - 1)) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) & MASK64
    start &= ~(PAGE_SIZE - 1)
    mm = task.mm
    pages = length // PAGE_SIZE + locked_vm_pages(mm)
    limit = lock_limit_pages(task)
    if pages > limit:
        pages -= count_mm_mlocked_page_nr(mm, start, length)
    if pages > limit:
        raise SyscallError(ENOMEM)
    apply_vma_lock_flags(mm, start, length, locked)
    populate(mm, start, start + length)
    return 0


def sys_mlock(kernel, vcpu, task, start, length, *_):
    return do_mlock(task, start, length, VM_LOCKED)


def sys_mlock2(kernel, vcpu, task, start, length, flags, *_):
    if flags & 0xFFFFFFFF & ~MLOCK_ONFAULT:
        raise SyscallError(EINVAL)
    return do_mlock(task, start, length, VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0))


def sys_munlock(kernel, vcpu, task, start, length, *_):
    length = ((length + (start & (PAGE_SIZE - 1)) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) & MASK64
    start &= ~(PAGE_SIZE - 1)
    apply_vma_lock_flags(task.mm, start, length, 0)
    return 0


def sys_mlockall(kernel, vcpu, task, flags, *_):
    flags &= 0xFFFFFFFF
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise SyscallError(EINVAL)
    if not can_do_mlock(task):
        raise SyscallError(EPERM)
    mm = task.mm
    total_vm = sum((vma.end - vma.start) // PAGE_SIZE for vma in mm.vmas)
    if flags & MCL_CURRENT and total_vm > lock_limit_pages(task):
        raise SyscallError(ENOMEM)
    to_add = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
    mm.def_locked = to_add if flags & MCL_FUTURE else 0
    if flags & MCL_CURRENT:
        for vma in mm.vmas:
            vma.locked = to_add
        if not flags & MCL_ONFAULT:
            populate(mm, 0, MASK64)
    return 0


def sys_munlockall(kernel, vcpu, task, *_):
    mm = task.mm
    mm.def_locked = 0
    for vma in mm.vmas:
        vma.locked = 0
    return 0


SYSCALLS = {
    SYS_mlock: sys_mlock,
    SYS_munlock: sys_munlock,
    SYS_mlockall: sys_mlockall,
    SYS_munlockall: sys_munlockall,
    SYS_mlock2: sys_mlock2,
}
