"""mremap(2) as mm/mremap.c: shrink, grow in place, move (MREMAP_MAYMOVE),
move to a chosen address (MREMAP_FIXED), and move leaving the old range
mapped but empty (MREMAP_DONTUNMAP).

Argument checks in the syscall's order: the flags (only MAYMOVE, FIXED,
DONTUNMAP; FIXED needs MAYMOVE; DONTUNMAP needs MAYMOVE and equal sizes),
an unaligned address, a new size of zero (EINVAL); sealed ranges are EPERM
(emu_x86/kernel/mm/mseal.py). mremap_to then refuses an unaligned or out-of-range
destination and any overlap of source and destination (EINVAL) before it
unmaps the destination. The address must lie in a mapping (EFAULT; Linux 6.17
and later look it up before anything else, as the reference host does); a
shrink then only unmaps the tail, across mappings and holes. vma_to_resize: no mapping at the address, or a source crossing the
mapping's end, is EFAULT; a zero old size of a private mapping is EINVAL;
growing a locked mapping past RLIMIT_MEMLOCK is EAGAIN.
"""
from __future__ import annotations

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import EAGAIN, EFAULT, EINVAL, ENOMEM, SyscallError
from emu_x86.kernel.mm.mm import MAP_SHARED, TASK_SIZE, page_align_up
from emu_x86.kernel.mm import mlock, mseal

SYS_mremap = 25
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MASK64 = (1 << 64) - 1


def vma_to_resize(task, addr: int, old_len: int, new_len: int, flags: int):
    mm = task.mm
    vma = mm.find_vma(addr)
    if vma is None:
        raise SyscallError(EFAULT)
    if not old_len and not vma.flags & MAP_SHARED:
        raise SyscallError(EINVAL)          # "duplicating" a private mapping is refused
    if old_len > vma.end - addr:
        raise SyscallError(EFAULT)          # no remapping across mapping boundaries
    if new_len > old_len and vma.locked and not mlock.mlock_future_ok(task, (new_len - old_len) // PAGE_SIZE):
        raise SyscallError(EAGAIN)
    return vma


def move_vma(mm, vma, old_addr: int, old_len: int, new_len: int, new_addr: int, dontunmap: bool) -> int:
    """Move the pages of [old_addr, old_addr+old_len) to new_addr (move_vma /
    move_page_tables): the new VMA keeps the old one's protection, flags,
    backing (at the matching page offset) and lock; the old range is unmapped,
    or with MREMAP_DONTUNMAP stays mapped with no pages (it faults in afresh)."""
    prot, flags, name, locked = vma.prot, vma.flags, vma.name, vma.locked
    backing, pgoff = vma.backing, vma.pgoff + (old_addr - vma.start) // PAGE_SIZE
    moved = [(vaddr - old_addr, entry) for vaddr, entry in mm.pagetables.entries(old_addr, old_addr + min(old_len, new_len))]
    for vaddr, _entry in mm.pagetables.entries(old_addr, old_addr + old_len):
        mm.pagetables.clear_entry(vaddr)
    # The frames now belong to the new range; unmap_range must not free them.
    new_vma = mm.add_vma(new_addr, new_addr + new_len, prot, flags, name, backing, pgoff)
    new_vma.locked = locked
    for offset, entry in moved:
        mm.pagetables.set_entry(new_addr + offset, entry)
    if dontunmap:
        # The old mapping remains, unlocked (VM_LOCKED moves with the pages).
        for old in mm.vmas:
            if old.start < old_addr + old_len and old.end > old_addr:
                old.locked = 0
    else:
        mm.unmap_range(old_addr, old_addr + old_len)
    mm.flush_tlb_range(old_addr, old_addr + old_len)
    return new_addr


def mremap_to(task, addr: int, old_len: int, new_addr: int, new_len: int, flags: int) -> int:
    mm = task.mm
    if new_addr & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
        raise SyscallError(EINVAL)
    if addr + old_len > new_addr and new_addr + new_len > addr:
        raise SyscallError(EINVAL)          # source and destination overlap
    if flags & MREMAP_FIXED:
        mseal.check_modify(mm, new_addr, new_addr + new_len)
        mm.unmap_range(new_addr, new_addr + new_len)
    if old_len > new_len:
        mm.unmap_range(addr + new_len, addr + old_len)
        old_len = new_len
    vma = vma_to_resize(task, addr, old_len, new_len, flags)
    if not flags & MREMAP_FIXED:
        new_addr = mm.get_unmapped_area(new_len, new_addr)
    return move_vma(mm, vma, addr, old_len, new_len, new_addr, bool(flags & MREMAP_DONTUNMAP))


def sys_mremap(kernel, vcpu, task, addr, old_len, new_len, flags, new_addr, *_):
    mm = task.mm
    flags &= MASK64
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise SyscallError(EINVAL)
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        raise SyscallError(EINVAL)
    if flags & MREMAP_DONTUNMAP and (not flags & MREMAP_MAYMOVE or old_len != new_len):
        raise SyscallError(EINVAL)
    if addr & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    old_len = page_align_up(old_len) & MASK64
    new_len = page_align_up(new_len) & MASK64
    if not new_len:
        raise SyscallError(EINVAL)
    mseal.check_modify(mm, addr, addr + old_len)
    if mm.find_vma(addr) is None:
        raise SyscallError(EFAULT)          # Linux 6.17+ looks the mapping up first, for a shrink too
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return mremap_to(task, addr, old_len, new_addr, new_len, flags)
    if old_len >= new_len:
        # Always allowed: the tail goes, whatever is (or is not) mapped there.
        if old_len > new_len:
            mm.unmap_range(addr + new_len, addr + old_len)
        return addr
    vma = vma_to_resize(task, addr, old_len, new_len, flags)
    if old_len == vma.end - addr and addr + new_len <= TASK_SIZE and mm.range_is_free(vma.end, addr + new_len):
        mm.expand_vma(vma, addr + new_len)
        return addr
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError(ENOMEM)
    return move_vma(mm, vma, addr, old_len, new_len, mm.get_unmapped_area(new_len), False)


SYSCALLS = {SYS_mremap: sys_mremap}
