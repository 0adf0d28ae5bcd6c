"""Building and editing x86-64 4-level page tables in guest physical memory.

The entries are the real hardware format (SDM Vol. 3A §4.5, Table 4-15..4-20)
so the machine's page walker -- and a missing TLB flush -- behave as on
hardware. Intermediate tables are created with P|RW|US and the leaf carries
the real permissions, as Linux does for user mappings.
"""
from __future__ import annotations

from collections.abc import Iterator

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import (
    PHYS_ADDR_MASK, PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_USER, PTE_WRITABLE,
)
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_WRITE
from emu_x86.kernel.mm.frames import FrameAllocator

TABLE_FLAGS = PTE_PRESENT | PTE_WRITABLE | PTE_USER
LEVEL_SHIFTS = (39, 30, 21)
# PGD slots from here up map the kernel half (KERNEL_PGD_BOUNDARY in pgtable_64.h).
KERNEL_PGD_BOUNDARY = 256
USER_ADDRESS_LIMIT = 1 << 47             # the lower canonical half: every user mapping is below


def pte_flags_for_prot(prot: int) -> int:
    """Leaf PTE bits for a user mapping with PROT_* ``prot`` (PROT_NONE: not present)."""
    if prot == 0:
        return 0
    flags = PTE_PRESENT | PTE_USER | PTE_ACCESSED
    if prot & PROT_WRITE:
        flags |= PTE_WRITABLE
    if not prot & PROT_EXEC:
        flags |= PTE_NX
    return flags


class PageTables:
    """One address space's paging structures; ``pgd`` is the PML4's physical address.
    ``table_flags``: the bits of the entries pointing at lower tables."""

    table_flags = TABLE_FLAGS

    def __init__(self, frames: FrameAllocator):
        self.frames = frames
        self.memory = frames.memory
        self.pgd = frames.alloc()
        self.table_frames = 1

    def _pte_slot(self, vaddr: int, create: bool) -> int | None:
        """Physical address of the level-1 entry for ``vaddr`` (None if absent and not create)."""
        qwords = self.memory.qwords
        table = self.pgd
        for shift in LEVEL_SHIFTS:
            slot = table + ((vaddr >> shift) & 0x1FF) * 8
            entry = qwords[slot >> 3]
            if not entry & PTE_PRESENT:
                if not create:
                    return None
                new_table = self.frames.alloc()
                self.table_frames += 1
                entry = new_table | self.table_flags
                qwords[slot >> 3] = entry
            table = entry & PHYS_ADDR_MASK
        return table + ((vaddr >> 12) & 0x1FF) * 8

    def lookup(self, vaddr: int) -> int:
        """The leaf entry for ``vaddr`` (0 when there is none)."""
        slot = self._pte_slot(vaddr, create=False)
        return 0 if slot is None else self.memory.qwords[slot >> 3]

    def map_page(self, vaddr: int, paddr: int, pte_flags: int) -> None:
        slot = self._pte_slot(vaddr, create=True)
        self.memory.qwords[slot >> 3] = (paddr & PHYS_ADDR_MASK) | pte_flags

    def set_entry(self, vaddr: int, entry: int) -> None:
        slot = self._pte_slot(vaddr, create=True)
        self.memory.qwords[slot >> 3] = entry

    def clear_entry(self, vaddr: int) -> int:
        """Remove the leaf entry for ``vaddr``; return what it held (0 if none)."""
        slot = self._pte_slot(vaddr, create=False)
        if slot is None:
            return 0
        old = self.memory.qwords[slot >> 3]
        self.memory.qwords[slot >> 3] = 0
        return old

    def entries(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(vaddr, entry) for every non-zero leaf entry in [start, end) of the user half.

        A missing table skips the whole range it would map (512 GiB, 1 GiB or
        2 MiB), so a sweep over a huge sparse range costs what is mapped, not
        its size; addresses above the 47-bit user half are never looked up
        (they would alias lower PML4 slots)."""
        qwords = self.memory.qwords
        vaddr = max(start, 0)
        end = min(end, USER_ADDRESS_LIMIT)
        while vaddr < end:
            table = self.pgd
            for shift in LEVEL_SHIFTS:
                entry = qwords[(table >> 3) + ((vaddr >> shift) & 0x1FF)]
                if not entry & PTE_PRESENT:
                    vaddr = ((vaddr >> shift) + 1) << shift
                    break
                table = entry & PHYS_ADDR_MASK
            else:
                # A leaf table: scan its entries up to the end of the table or the range.
                table_end = min(end, ((vaddr >> 21) + 1) << 21)
                while vaddr < table_end:
                    entry = qwords[(table >> 3) + ((vaddr >> 12) & 0x1FF)]
                    if entry:
                        yield vaddr, entry
                    vaddr += PAGE_SIZE

    def destroy(self) -> None:
        """Free every table frame of the user half (leaf frames are freed by the
        owner first). The kernel half of the PGD points at tables shared by every
        address space (emu_x86/kernel/mm/vmalloc.py), which pgd_free leaves alone too."""
        def free_level(table: int, depth: int) -> None:
            if depth < 3:
                for index in range(KERNEL_PGD_BOUNDARY if depth == 0 else 512):
                    entry = self.memory.qwords[(table >> 3) + index]
                    if entry & PTE_PRESENT:
                        free_level(entry & PHYS_ADDR_MASK, depth + 1)
            self.frames.free(table)
        free_level(self.pgd, 0)
        self.table_frames = 0


def entry_frame(entry: int) -> int:
    return entry & PHYS_ADDR_MASK


def entry_is_dirty(entry: int) -> bool:
    return bool(entry & PTE_DIRTY)
