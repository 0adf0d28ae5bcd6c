"""Copy-on-write: the write fault on a page fork left write-protected (mm/memory.c do_wp_page).

After fork, private writable pages are mapped read-only in both address
spaces and their frame carries one reference per mapping. The first write
from either side faults with a present, write-protected PTE in a writable
VMA: if this mm is the frame's last user, the PTE is simply made writable
again (wp_page_reuse, no flush: a stale read-only entry only causes a
spurious fault); otherwise the page is copied to a new frame, the PTE
pointed at it, the old frame's reference dropped, and the old translation
flushed from every CPU using the mm (wp_page_copy's ptep_clear_flush).
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK, PTE_DIRTY, PTE_PRESENT, PTE_WRITABLE

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.mm.mm import MmStruct


def do_wp_page(mm: "MmStruct", vaddr: int) -> bool:
    """Resolve a write fault at ``vaddr`` whose VMA allows writing. False when
    the PTE is not a write-protected present page (nothing to copy)."""
    page = vaddr & ~(PAGE_SIZE - 1)
    entry = mm.pagetables.lookup(page)
    if not entry & PTE_PRESENT or entry & PTE_WRITABLE:
        return False
    frame = entry & PHYS_ADDR_MASK
    frames = mm.frames
    if frames.page_count(frame) == 1:
        mm.pagetables.set_entry(page, entry | PTE_WRITABLE | PTE_DIRTY)
        mm.cow_reuses += 1
        return True
    new_frame = frames.alloc()          # OutOfMemory goes to the fault's caller
    view = frames.memory.view
    view[new_frame:new_frame + PAGE_SIZE] = view[frame:frame + PAGE_SIZE]
    mm.pagetables.set_entry(page, new_frame | (entry & ~PHYS_ADDR_MASK) | PTE_WRITABLE | PTE_DIRTY)
    # The old frame's reference goes only once no TLB can reach it through
    # this mm (ptep_clear_flush, then put_page).
    mm.flush_tlb_range(page, page + PAGE_SIZE, on_flushed=lambda: frames.free(frame))
    mm.cow_copies += 1
    return True
