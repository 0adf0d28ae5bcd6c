"""The page walker against the SDM's rules (Vol. 3A §4.5-4.8), on hand-built tables."""
import pytest

from emu_x86.emu.memory import PhysicalMemory
from emu_x86.emu.mmu.pagewalk import (
    ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, PTE_ACCESSED, PTE_DIRTY, PTE_LARGE, PTE_NX, PTE_PRESENT,
    PTE_USER, PTE_WRITABLE, walk,
)
from emu_x86.emu.traps import PF, PF_INSTR, PF_PRESENT, PF_RSVD, PF_USER, PF_WRITE

P, W, U = PTE_PRESENT, PTE_WRITABLE, PTE_USER
VA = 0x0000_7F12_3456_7000


class Tables:
    """Four tables at fixed frames mapping VA; leaf flags chosen per test."""

    def __init__(self, leaf_flags, upper_flags=P | W | U, large_at=None):
        self.memory = PhysicalMemory(1 << 20)
        self.pml4, self.pdpt, self.pd, self.pt = 0x1000, 0x2000, 0x3000, 0x4000
        self.frame = 0x80000
        m = self.memory
        m.write_u64(self.pml4 + ((VA >> 39) & 511) * 8, self.pdpt | upper_flags)
        if large_at == "pd":
            m.write_u64(self.pdpt + ((VA >> 30) & 511) * 8, self.pd | upper_flags)
            m.write_u64(self.pd + ((VA >> 21) & 511) * 8, 0x200000 | leaf_flags | PTE_LARGE)
            return
        m.write_u64(self.pdpt + ((VA >> 30) & 511) * 8, self.pd | upper_flags)
        m.write_u64(self.pd + ((VA >> 21) & 511) * 8, self.pt | upper_flags)
        m.write_u64(self.pt + ((VA >> 12) & 511) * 8, self.frame | leaf_flags)

    def leaf(self):
        return self.memory.read_u64(self.pt + ((VA >> 12) & 511) * 8)


def fault(tables, access, user=True, vaddr=VA):
    with pytest.raises(PF) as info:
        walk(tables.memory, tables.pml4, vaddr, access, user)
    assert info.value.address == vaddr
    return info.value.error_code


def test_translates_and_sets_accessed_not_dirty_on_read():
    t = Tables(P | W | U)
    tr = walk(t.memory, t.pml4, VA + 0x123, ACCESS_READ, True)
    assert tr.paddr_page == t.frame
    assert t.leaf() & PTE_ACCESSED and not t.leaf() & PTE_DIRTY


def test_write_sets_dirty():
    t = Tables(P | W | U)
    walk(t.memory, t.pml4, VA, ACCESS_WRITE, True)
    assert t.leaf() & PTE_DIRTY


def test_not_present_error_code():
    t = Tables(0)
    assert fault(t, ACCESS_READ) == PF_USER
    assert fault(t, ACCESS_WRITE) == PF_USER | PF_WRITE
    assert fault(t, ACCESS_FETCH) == PF_USER | PF_INSTR


def test_user_access_to_supervisor_page():
    t = Tables(P | W)
    assert fault(t, ACCESS_READ) == PF_PRESENT | PF_USER
    # The same access at CPL0 is allowed.
    walk(t.memory, t.pml4, VA, ACCESS_READ, False)


def test_supervisor_bit_in_upper_level_applies():
    t = Tables(P | W | U, upper_flags=P | W)
    assert fault(t, ACCESS_READ) == PF_PRESENT | PF_USER


def test_write_to_read_only_page():
    t = Tables(P | U)
    assert fault(t, ACCESS_WRITE) == PF_PRESENT | PF_USER | PF_WRITE
    # CR0.WP=0 lets supervisor writes through, never user ones.
    walk(t.memory, t.pml4, VA, ACCESS_WRITE, False, write_protect=False)
    with pytest.raises(PF):
        walk(t.memory, t.pml4, VA, ACCESS_WRITE, False, write_protect=True)


def test_execute_disable():
    t = Tables(P | U | PTE_NX)
    assert fault(t, ACCESS_FETCH) == PF_PRESENT | PF_USER | PF_INSTR
    walk(t.memory, t.pml4, VA, ACCESS_READ, True)


def test_reserved_bit_fault():
    t = Tables(P | U | (1 << 50))
    assert fault(t, ACCESS_READ) == PF_PRESENT | PF_USER | PF_RSVD


def test_two_mib_page():
    t = Tables(P | W | U, large_at="pd")
    tr = walk(t.memory, t.pml4, VA, ACCESS_READ, True)
    assert tr.page_size_bytes == 2 << 20
    assert tr.paddr_page == 0x200000 | (VA & 0x1FF000)
