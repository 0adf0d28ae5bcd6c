"""The 4-level x86-64 page walk (Intel SDM Vol. 3A §4.5), over page tables in guest memory.

The kernel builds real x86-64 paging structures in guest physical memory;
the machine's TLB-fill path translates through them exactly as the
hardware's page walker would: permissions are the AND of R/W and U/S over
all levels and XD is the OR (§4.6), the walker sets Accessed on every entry
it uses and Dirty on the leaf for a write (§4.8), and a violation is a #PF
with the architected error code (§4.7).
"""
from __future__ import annotations

from dataclasses import dataclass

from emu_x86.emu.memory import PhysicalMemory
from emu_x86.emu.traps import PF, PF_INSTR, PF_PRESENT, PF_RSVD, PF_USER, PF_WRITE

PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_USER = 1 << 2
PTE_PWT = 1 << 3
PTE_PCD = 1 << 4
PTE_ACCESSED = 1 << 5
PTE_DIRTY = 1 << 6
PTE_LARGE = 1 << 7      # PS: a 1 GiB (PDPTE) or 2 MiB (PDE) page
PTE_GLOBAL = 1 << 8
PTE_NX = 1 << 63

MAXPHYADDR = 46
PHYS_ADDR_MASK = ((1 << MAXPHYADDR) - 1) & ~0xFFF
# Bits MAXPHYADDR..51 must be zero in every paging-structure entry (§4.5.4).
RESERVED_HIGH_MASK = ((1 << 52) - 1) & ~((1 << MAXPHYADDR) - 1)
CR3_ADDR_MASK = PHYS_ADDR_MASK

ACCESS_READ = 0
ACCESS_WRITE = 1
ACCESS_FETCH = 2

# Level shifts from the PML4 down to the page table.
LEVEL_SHIFTS = (39, 30, 21, 12)


@dataclass
class Translation:
    """The outcome of a successful page walk: the 4 KiB physical page and the leaf permissions."""

    paddr_page: int       # physical address of the 4 KiB page holding the address
    writable: bool
    user: bool
    executable: bool
    dirty: bool           # leaf Dirty after this walk (a write hit sets it)
    page_size_bytes: int


def is_canonical(vaddr: int) -> bool:
    top = vaddr >> 47
    return top == 0 or top == (1 << 17) - 1


def walk(memory: PhysicalMemory, cr3: int, vaddr: int, access: int, user_mode: bool,
         nx_enabled: bool = True, write_protect: bool = True) -> Translation:
    """Translate ``vaddr``; raise ``PF`` exactly as the hardware would for ``access``.

    ``user_mode``: the access is made at CPL3. ``write_protect``: CR0.WP.
    """
    error_user = PF_USER if user_mode else 0
    error_write = PF_WRITE if access == ACCESS_WRITE else 0
    error_fetch = PF_INSTR if (access == ACCESS_FETCH and nx_enabled) else 0
    qwords = memory.qwords
    table = cr3 & CR3_ADDR_MASK
    writable = user = True
    no_execute = False
    visited = []
    for level, shift in enumerate(LEVEL_SHIFTS):
        entry_paddr = table + ((vaddr >> shift) & 0x1FF) * 8
        if not memory.contains(entry_paddr, 8):
            raise PF(vaddr, PF_RSVD | PF_PRESENT | error_user | error_write | error_fetch)
        entry = qwords[entry_paddr >> 3]
        if not entry & PTE_PRESENT:
            raise PF(vaddr, error_user | error_write | error_fetch)
        large = level in (1, 2) and bool(entry & PTE_LARGE)
        reserved = entry & RESERVED_HIGH_MASK
        if level == 0 and entry & PTE_LARGE:
            reserved = 1
        if not nx_enabled and entry & PTE_NX:
            reserved = 1
        if large:
            page_shift = shift
            # Bits 12..page_shift-1 except PAT (bit 12) must be zero in a large-page entry.
            if entry & (((1 << page_shift) - 1) & ~0x1FFF):
                reserved = 1
        if reserved:
            raise PF(vaddr, PF_RSVD | PF_PRESENT | error_user | error_write | error_fetch)
        writable = writable and bool(entry & PTE_WRITABLE)
        user = user and bool(entry & PTE_USER)
        no_execute = no_execute or bool(entry & PTE_NX)
        visited.append(entry_paddr)
        if large or level == 3:
            page_shift = shift
            break
        table = entry & PHYS_ADDR_MASK
    leaf_paddr = visited[-1]
    leaf = qwords[leaf_paddr >> 3]

    violation = False
    if user_mode and not user:
        violation = True
    if access == ACCESS_WRITE and not writable and (user_mode or write_protect):
        violation = True
    if access == ACCESS_FETCH and nx_enabled and no_execute:
        violation = True
    if violation:
        raise PF(vaddr, PF_PRESENT | error_user | error_write | error_fetch)

    # §4.8: Accessed on every entry used; Dirty on the leaf when writing.
    for entry_paddr in visited[:-1]:
        qwords[entry_paddr >> 3] |= PTE_ACCESSED
    leaf |= PTE_ACCESSED
    if access == ACCESS_WRITE:
        leaf |= PTE_DIRTY
    qwords[leaf_paddr >> 3] = leaf

    page_mask = (1 << page_shift) - 1
    frame = leaf & PHYS_ADDR_MASK & ~page_mask
    return Translation(
        paddr_page=frame | (vaddr & page_mask & ~0xFFF),
        writable=writable,
        user=user,
        executable=not no_execute,
        dirty=bool(leaf & PTE_DIRTY),
        page_size_bytes=1 << page_shift,
    )


def walk_paddr(memory: PhysicalMemory, cr3: int, vaddr: int, access: int, user_mode: bool) -> int:
    """``walk(memory, cr3, vaddr, access, user_mode)`` reduced to the physical
    address of ``vaddr``, through the C walker (emu_x86/emu/mmu/tlb.c mmu_walk_mode,
    which tests/test_tlb.py checks against ``walk``): the same translation,
    Accessed/Dirty updates and #PF, without building a ``Translation``.
    ``vaddr`` must be in [0, 2**64)."""
    walker = memory.__dict__.get("_c_walker")
    if walker is None:
        from emu_x86.emu.timing._hotpath import ffi, lib   # the C extension: imported on first use only
        mmu = ffi.new("struct mmu_vcpu *")
        mmu.phys = ffi.cast("uint8_t *", memory.host_address)
        mmu.phys_size = memory.size_bytes
        walker = memory._c_walker = (lib.mmu_walk_mode, mmu, ffi.new("struct walk_result *"))
    c_walk, mmu, result = walker
    mmu.cr3 = cr3 & CR3_ADDR_MASK
    if c_walk(mmu, vaddr, access, 1 if user_mode else 0, result):
        raise PF(vaddr, result.fault_error_code)
    return result.paddr | (vaddr & 0xFFF)
