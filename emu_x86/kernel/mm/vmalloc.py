"""vmalloc: virtually contiguous kernel allocations, and vfree's lazy TLB purge.

Mirrors the semantics of Linux's mm/vmalloc.c on x86-64:

- The vmalloc range starts at VMALLOC_START (0xffffc90000000000 with 4-level
  paging). Its upper paging levels are allocated once at boot and every
  address space's PGD points at the same tables (preallocate_vmalloc_pages in
  arch/x86/mm/init_64.c, clone_pgd_range in pgd_ctor), so a mapping made here
  is visible through any CR3 without syncing PGDs.
- ``vzalloc`` finds a free range with a trailing guard page (alloc_vmap_area,
  first fit), backs each page with a zeroed frame and maps it with a real
  supervisor, global, non-executable PTE in guest physical memory.
- ``vfree`` clears the PTEs and frees the frames at once but does not flush
  TLBs: the range goes on the purge list (free_vmap_area_noflush) and cannot
  be reused until a purge. When the lazily freed pages exceed
  ``lazy_max_pages`` -- or an allocation finds no room -- every lazy range is
  purged in one batch: one kernel-range TLB flush on every CPU by IPI
  (__purge_vmap_area_lazy -> flush_tlb_kernel_range), then the ranges are free.

Owned here: the kernel page tables for the range, the free/busy/lazy range
lists and the lazy page count (vmap_lazy_nr). Statistics go to the kernel's
counters: ``vmalloc_allocs``, ``vmalloc_frees``, ``vmalloc_failures``,
``vmalloc_lazy_pages`` (pages whose flush was deferred), ``vmalloc_purges``
and ``vfree_ipis`` (the purges' flush IPIs).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PTE_ACCESSED, PTE_DIRTY, PTE_GLOBAL, PTE_NX, PTE_PRESENT, PTE_WRITABLE
from emu_x86.kernel.mm.frames import OutOfMemory
from emu_x86.kernel.mm.pagetable import KERNEL_PGD_BOUNDARY, PageTables

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

VMALLOC_START = 0xFFFFC90000000000
VMALLOC_SIZE_MAX_BYTES = 32 << 40          # VMALLOC_SIZE_TB = 32 with 4-level paging
PGDIR_SIZE_BYTES = 1 << 39
# Kernel mappings: present, writable, supervisor-only, global (survive CR3
# writes), never executable, pre-dirtied (PAGE_KERNEL).
PAGE_KERNEL = PTE_PRESENT | PTE_WRITABLE | PTE_ACCESSED | PTE_DIRTY | PTE_GLOBAL | PTE_NX
KERNEL_TABLE_FLAGS = PTE_PRESENT | PTE_WRITABLE | PTE_ACCESSED
# Lazily freed bytes allowed per fls(online CPUs) before a purge (lazy_max_pages).
LAZY_MAX_BYTES_PER_CPU_ORDER = 32 << 20
# More pages than this in one kernel-range flush: flush everything instead of
# INVLPG per page (tlb_single_page_flush_ceiling, arch/x86/mm/tlb.c).
TLB_SINGLE_PAGE_FLUSH_CEILING = 33


class KernelPageTables(PageTables):
    """swapper_pg_dir: the kernel's own PGD; its tables carry no User bit."""
    table_flags = KERNEL_TABLE_FLAGS


@dataclass
class VmapArea:
    """One vmalloc allocation (struct vmap_area + vm_struct): [start, end)
    includes the guard page; ``frames`` back the pages before it."""
    start: int
    end: int
    size_bytes: int
    frames: list[int] = field(default_factory=list)

    @property
    def va_pages(self) -> int:
        return (self.end - self.start) // PAGE_SIZE


def lazy_max_pages(online_cpus: int) -> int:
    """Linux's lazy_max_pages: 32 MiB of lazily freed space per fls(num_online_cpus())."""
    return online_cpus.bit_length() * (LAZY_MAX_BYTES_PER_CPU_ORDER // PAGE_SIZE)


class Vmalloc:
    def __init__(self, kernel: "Kernel", size_bytes: int = VMALLOC_SIZE_MAX_BYTES,
                 lazy_max: int | None = None):
        if not PAGE_SIZE * 2 <= size_bytes <= VMALLOC_SIZE_MAX_BYTES:
            raise ValueError(f"vmalloc area must be between 8K and 32T, not {size_bytes}")
        self.kernel = kernel
        self.frames = kernel.frames
        self.start = VMALLOC_START
        self.end = VMALLOC_START + (size_bytes & ~(PAGE_SIZE - 1))
        self.lazy_max_pages = lazy_max if lazy_max is not None else lazy_max_pages(len(kernel.machine.vcpus))
        self.pagetables = KernelPageTables(self.frames)
        self._preallocate_vmalloc_pages()
        self.free_ranges: list[tuple[int, int]] = [(self.start, self.end)]   # sorted, coalesced
        self.busy: dict[int, VmapArea] = {}
        self.purge_list: list[VmapArea] = []
        self.lazy_pages = 0                                                  # vmap_lazy_nr

    # ---- kernel page tables --------------------------------------------------

    def _preallocate_vmalloc_pages(self) -> None:
        """Allocate the PGD-level entries of the range now so every PGD can share them."""
        for address in range(self.start, self.end, PGDIR_SIZE_BYTES):
            self.pagetables._pte_slot(address, create=True)

    def clone_kernel_pgd_entries(self, user_pagetables: PageTables) -> None:
        """pgd_ctor: a new address space gets the kernel half of swapper_pg_dir."""
        qwords = self.frames.memory.qwords
        source, target = self.pagetables.pgd >> 3, user_pagetables.pgd >> 3
        for index in range(KERNEL_PGD_BOUNDARY, 512):
            if qwords[source + index]:
                qwords[target + index] = qwords[source + index]

    # ---- allocation ---------------------------------------------------------

    def _alloc_vmap_area(self, va_bytes: int) -> int | None:
        for position, (start, end) in enumerate(self.free_ranges):
            if end - start >= va_bytes:
                if end - start == va_bytes:
                    del self.free_ranges[position]
                else:
                    self.free_ranges[position] = (start + va_bytes, end)
                return start
        return None

    def _free_vmap_area(self, start: int, end: int) -> None:
        ranges = self.free_ranges
        position = bisect.bisect_left(ranges, (start, end))
        ranges.insert(position, (start, end))
        # Coalesce with the neighbours (merge_or_add_vmap_area).
        if position + 1 < len(ranges) and ranges[position][1] == ranges[position + 1][0]:
            ranges[position] = (ranges[position][0], ranges[position + 1][1])
            del ranges[position + 1]
        if position > 0 and ranges[position - 1][1] == ranges[position][0]:
            ranges[position - 1] = (ranges[position - 1][0], ranges[position][1])
            del ranges[position]

    def vzalloc(self, vcpu: "VCpu", size_bytes: int) -> VmapArea | None:
        """Zeroed, virtually contiguous kernel memory; None when the range or memory is exhausted."""
        counters = self.kernel.counters
        pages = (size_bytes + PAGE_SIZE - 1) // PAGE_SIZE
        va_bytes = (pages + 1) * PAGE_SIZE      # + the guard page
        start = self._alloc_vmap_area(va_bytes)
        if start is None and self.purge_list:
            # No room: purge the lazily freed ranges and try once more (alloc_vmap_area's overflow path).
            self.purge_vmap_area_lazy(vcpu)
            start = self._alloc_vmap_area(va_bytes)
        if start is None:
            counters["vmalloc_failures"] += 1
            return None
        area = VmapArea(start, start + va_bytes, size_bytes)
        try:
            for _ in range(pages):
                area.frames.append(self.frames.alloc())     # zeroed (__GFP_ZERO)
        except OutOfMemory:
            for frame in area.frames:
                self.frames.free(frame)
            self._free_vmap_area(area.start, area.end)
            counters["vmalloc_failures"] += 1
            return None
        for index, frame in enumerate(area.frames):
            self.pagetables.map_page(start + index * PAGE_SIZE, frame, PAGE_KERNEL)
        self.busy[start] = area
        counters["vmalloc_allocs"] += 1
        vcpu.charge_event("vmalloc_page", pages)
        return area

    def vfree(self, vcpu: "VCpu", area: VmapArea) -> None:
        """Unmap and free now; flush later, in a batch (vfree -> free_vmap_area_noflush)."""
        del self.busy[area.start]
        for index, frame in enumerate(area.frames):
            self.pagetables.clear_entry(area.start + index * PAGE_SIZE)
            self.frames.free(frame)
        vcpu.charge_event("vfree_page", len(area.frames))
        area.frames = []
        counters = self.kernel.counters
        counters["vmalloc_frees"] += 1
        counters["vmalloc_lazy_pages"] += area.va_pages
        self.purge_list.append(area)
        self.lazy_pages += area.va_pages
        if self.lazy_pages > self.lazy_max_pages:
            self.purge_vmap_area_lazy(vcpu)

    def purge_vmap_area_lazy(self, vcpu: "VCpu") -> None:
        """One TLB flush covering every lazily freed range, then the ranges are reusable."""
        if not self.purge_list:
            return
        start = min(area.start for area in self.purge_list)
        end = max(area.end for area in self.purge_list)
        self.flush_tlb_kernel_range(vcpu, start, end)
        for area in self.purge_list:
            self._free_vmap_area(area.start, area.end)
        self.purge_list = []
        self.lazy_pages = 0
        self.kernel.counters["vmalloc_purges"] += 1

    def flush_tlb_kernel_range(self, vcpu: "VCpu", start: int, end: int) -> None:
        """Flush [start, end) of the kernel's translations on every CPU, by IPI to
        the others (arch/x86/mm/tlb.c flush_tlb_kernel_range: on_each_cpu).
        The one place vmalloc touches TLBs. The mappings are global, so a CR3
        reload would not drop them: more than tlb_single_page_flush_ceiling
        pages flush everything (do_flush_tlb_all), fewer INVLPG each page
        (do_kernel_range_flush)."""
        counters = self.kernel.counters
        pages = (end - start) // PAGE_SIZE
        others = [cpu for cpu in range(len(self.kernel.machine.vcpus)) if cpu != vcpu.index]
        # vmalloc_purge_cycles: from the first IPI until the last CPU has flushed
        # (the caller spins that long), measured on the CPUs' own clocks.
        started = vcpu.cycles
        waiting = {"targets": len(others), "latest": started}

        def do_kernel_range_flush(target: "VCpu") -> None:
            if pages > TLB_SINGLE_PAGE_FLUSH_CEILING:
                target.flush_tlb_all()
            else:
                for address in range(start, end, PAGE_SIZE):
                    target.invlpg(address)
            if target is vcpu:
                return
            waiting["latest"] = max(waiting["latest"], target.cycles)
            waiting["targets"] -= 1
            if waiting["targets"] == 0:
                counters["vmalloc_purge_cycles"] += waiting["latest"] - started

        self.kernel.smp_call_function_many(vcpu, others, do_kernel_range_flush, wait=True)
        counters["vfree_ipis"] += len(others)
        do_kernel_range_flush(vcpu)
        if not others:
            counters["vmalloc_purge_cycles"] += vcpu.cycles - started

    # ---- access ----------------------------------------------------------------

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end
