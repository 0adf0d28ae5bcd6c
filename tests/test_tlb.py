"""The PCID-tagged TLB model (emu_x86/emu/mmu/tlb.c) and its architected flush rules.

Every test runs real guest loads and stores on Unicorn vCPUs over page tables
built in guest physical memory, changes a PTE behind the TLB's back, and
shows both sides of each rule: the translations the rule must drop are gone
(the guest sees the new frame) and the ones it must keep are still there
(the guest still sees the old frame) -- a stale read, exactly as hardware
would give after a missing flush.
"""
import random
import struct

import pytest

from emu_x86.emu.machine import Machine
from emu_x86.emu.mmu.pagewalk import (
    ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, PTE_ACCESSED, PTE_DIRTY, PTE_GLOBAL, PTE_LARGE, PTE_NX,
    PTE_PRESENT, PTE_USER, PTE_WRITABLE, walk, walk_paddr,
)
from emu_x86.emu.timing._hotpath import ffi, lib
from emu_x86.emu.traps import GP, PF, UD
from emu_x86.emu.vcpu import (
    INVPCID_ALL_INCLUDING_GLOBAL, INVPCID_ALL_NON_GLOBAL, INVPCID_INDIVIDUAL_ADDRESS, INVPCID_SINGLE_CONTEXT,
)
from tests.guestbuild import missing_prerequisite

CODE_VA = 0x400000
LOAD_OFFSET, STORE_OFFSET = 0, 0x10
# mov (%rdi),%rax; syscall  /  mov %rsi,(%rdi); syscall
LOAD_CODE = bytes.fromhex("488b07") + b"\x0f\x05"
STORE_CODE = bytes.fromhex("488937") + b"\x0f\x05"
DATA_VA = 0x7000_0000
USER_RW = PTE_PRESENT | PTE_WRITABLE | PTE_USER
NO_FLUSH = 1 << 63
ICR = 0x830
EOI = 0x80B
FLUSH_VECTOR = 0xF0


class Rig:
    """A machine with no kernel: the test plays ring 0, building page tables by
    hand and running one load or store at a time on a chosen vCPU."""

    def __init__(self, cpus=1, profile="spr"):
        self.machine = Machine(cpus=cpus, memory_bytes=32 << 20, profile=profile)
        self.memory = self.machine.memory
        self._next_frame = 1 << 20
        self.loaded = []
        self.faults = []
        self.interrupt_actions = {}
        self.code_frame = self.frame()
        self.memory.write(self.code_frame + LOAD_OFFSET, LOAD_CODE)
        self.memory.write(self.code_frame + STORE_OFFSET, STORE_CODE)
        self.machine.attach(self)

    # -- ring 0 ------------------------------------------------------------

    def frame(self, fill: int | None = None) -> int:
        paddr = self._next_frame
        self._next_frame += 0x1000
        self.memory.write(paddr, bytes(0x1000) if fill is None else struct.pack("<Q", fill) * 512)
        return paddr

    def address_space(self) -> int:
        root = self.frame()
        self.map(root, CODE_VA, self.code_frame, PTE_PRESENT | PTE_USER)
        return root

    def pte_address(self, root: int, vaddr: int, leaf_shift: int = 12) -> int:
        table = root
        for shift in (39, 30, 21, 12):
            slot = table + ((vaddr >> shift) & 0x1FF) * 8
            if shift == leaf_shift:
                return slot
            entry = self.qword(slot)
            if not entry & PTE_PRESENT:
                entry = self.frame() | USER_RW
                self.memory.write(slot, struct.pack("<Q", entry))
            table = entry & 0x000F_FFFF_FFFF_F000
        raise AssertionError("unreachable")

    def map(self, root, vaddr, paddr, flags=USER_RW, leaf_shift=12):
        entry = paddr | flags | (PTE_LARGE if leaf_shift != 12 else 0)
        self.memory.write(self.pte_address(root, vaddr, leaf_shift), struct.pack("<Q", entry))

    def qword(self, paddr: int) -> int:
        return struct.unpack("<Q", self.memory.read(paddr, 8))[0]

    # -- guest accesses -------------------------------------------------------

    def load(self, vcpu_index: int, vaddr: int) -> int | PF:
        """One CPL3 ``mov (%rdi),%rax`` on the vCPU: the value, or the fault."""
        return self._access(vcpu_index, LOAD_OFFSET, rdi=vaddr)

    def store(self, vcpu_index: int, vaddr: int, value: int):
        return self._access(vcpu_index, STORE_OFFSET, rdi=vaddr, rsi=value)

    def _access(self, vcpu_index, offset, **registers):
        vcpu = self.machine.vcpus[vcpu_index]
        vcpu.load_user_registers({"rip": CODE_VA + offset, "rax": 0, **registers})
        loaded, faults = len(self.loaded), len(self.faults)
        vcpu.run(vcpu.cycles + 1_000_000)
        if len(self.faults) > faults:
            return self.faults[-1]
        assert len(self.loaded) == loaded + 1, "the access neither completed nor faulted"
        return self.loaded[-1]

    # -- TrapHandler ----------------------------------------------------------

    def handle_syscall(self, vcpu):
        self.loaded.append(vcpu.read_register("rax"))

    def handle_exception(self, vcpu, exc):
        self.faults.append(exc)

    def handle_deadline(self, vcpu):
        raise AssertionError("a single access ran out of cycles")

    def handle_interrupt(self, vcpu, vector):
        self.interrupt_actions.pop(vector)(vcpu)
        vcpu.write_msr(EOI, 0)
        vcpu.halted = True

    def handle_all_idle(self, machine):
        machine.stop()


def two_frames(rig):
    """Frames whose every qword is 0x1111... and 0x2222...: a read says which one it hit."""
    return rig.frame(0x1111_1111_1111_1111), rig.frame(0x2222_2222_2222_2222)


OLD, NEW = 0x1111_1111_1111_1111, 0x2222_2222_2222_2222


def remap(rig, root, vaddr, paddr, flags=USER_RW, leaf_shift=12):
    """Change a PTE with no flush (what a buggy kernel would do)."""
    rig.map(root, vaddr, paddr, flags, leaf_shift)


# ---- the page walk ---------------------------------------------------------


@pytest.mark.parametrize("user_mode", [True, False])
def test_c_page_walk_matches_the_python_walker_on_random_tables(user_mode):
    """The C walker (the fill path at CPL3; VCpu.translate at either CPL) and
    emu_x86/emu/mmu/pagewalk.walk agree on translation, permissions, faults and the
    Accessed/Dirty bits they set, over random page tables."""
    rng = random.Random(5)
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    addresses = [rng.randrange(0, 1 << 47) & ~0xFFF for _ in range(48)]
    for vaddr in addresses:
        flags = rng.choice([0, PTE_PRESENT, PTE_PRESENT | PTE_USER, USER_RW, USER_RW | PTE_NX,
                            USER_RW | PTE_DIRTY, USER_RW | (1 << 50)])
        rig.map(root, vaddr, rig.frame(), flags)
    # Clear a user bit or set a reserved bit in some upper-level entries too.
    for vaddr in addresses[:6]:
        slot = rig.pte_address(root, vaddr, leaf_shift=21)
        entry = rig.qword(slot)
        rig.memory.write(slot, struct.pack("<Q", entry & ~PTE_USER if vaddr & 0x1000 else entry | PTE_LARGE))
    vcpu.write_cr3(root)
    result = ffi.new("struct walk_result *")
    checked = 0
    for vaddr in addresses + [rng.randrange(0, 1 << 47) for _ in range(32)]:
        for access in (ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH):
            snapshot = rig.memory.read(1 << 20, 2 << 20)
            try:
                expected = walk(rig.memory, root, vaddr, access, user_mode)
            except PF as fault:
                expected = fault
            python_memory = rig.memory.read(1 << 20, 2 << 20)
            rig.memory.write(1 << 20, snapshot)
            faulted = (lib.mmu_walk(vcpu._mmu, vaddr, access, result) if user_mode
                       else lib.mmu_walk_mode(vcpu._mmu, vaddr, access, 0, result))
            assert rig.memory.read(1 << 20, 2 << 20) == python_memory, "A/D bits differ"
            if isinstance(expected, PF):
                assert faulted and result.fault_error_code == expected.error_code, hex(vaddr)
            else:
                assert not faulted
                assert (result.paddr, bool(result.writable), bool(result.executable), bool(result.dirty)) == (
                    expected.paddr_page, expected.writable, expected.executable, expected.dirty)
            checked += 1
    assert checked == 240


def test_translate_raises_the_walkers_fault_at_either_privilege():
    """VCpu.translate and pagewalk.walk_paddr (the C walk) answer or fault exactly as pagewalk.walk,
    for user and supervisor accesses, on present, user-less and absent pages."""
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    user_page, kernel_page, read_only = 0x40_0000, 0x7f00_0000_0000, 0x50_0000
    rig.map(root, user_page, rig.frame(), USER_RW)
    rig.map(root, kernel_page, rig.frame(), PTE_PRESENT | (1 << 1))
    rig.map(root, read_only, rig.frame(), PTE_PRESENT | PTE_USER)
    vcpu.write_cr3(root)
    for vaddr in (user_page + 0x123, kernel_page + 8, read_only + 0xFF8, 0x60_0000):
        for access in (ACCESS_READ, ACCESS_WRITE):
            for user_mode in (True, False):
                try:
                    expected = walk(rig.memory, root, vaddr, access, user_mode)
                    expected = expected.paddr_page | (vaddr & 0xFFF)
                except PF as fault:
                    expected = ("PF", fault.address, fault.error_code)
                for translate in (lambda: vcpu.translate(vaddr, access, user_mode),
                                  lambda: walk_paddr(rig.memory, root, vaddr, access, user_mode)):
                    try:
                        got = translate()
                    except PF as fault:
                        got = ("PF", fault.address, fault.error_code)
                    assert got == expected, (hex(vaddr), access, user_mode)


# ---- hits, misses, A/D ------------------------------------------------------


def test_a_walk_fills_the_model_sets_accessed_and_dirty_and_repeats_hit():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    old, _ = two_frames(rig)
    rig.map(root, DATA_VA, old)
    vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == OLD
    pte = rig.qword(rig.pte_address(root, DATA_VA))
    assert pte & PTE_ACCESSED and not pte & PTE_DIRTY
    stats = vcpu.tlb_statistics()
    assert stats["tlb_misses"] == 2          # the code page and the data page
    assert rig.load(0, DATA_VA + 8) == OLD   # a new run: Unicorn refills from the model
    assert vcpu.tlb_statistics()["tlb_misses"] == 2
    assert rig.store(0, DATA_VA, 5) == 0
    assert rig.qword(rig.pte_address(root, DATA_VA)) & PTE_DIRTY
    assert vcpu.tlb_statistics()["tlb_dirty_assists"] == 1
    assert rig.qword(old) == 5


def test_walk_cost_is_charged_per_paging_structure_read():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    rig.map(root, DATA_VA, rig.frame())
    vcpu.write_cr3(root)
    rig.load(0, DATA_VA)
    before = vcpu.cycles
    rig.load(0, DATA_VA)             # all hits: no walk
    hit_cost = vcpu.cycles - before
    vcpu.flush_tlb()
    before = vcpu.cycles
    rig.load(0, DATA_VA)             # two misses: 2 x 4 reads
    miss_cost = vcpu.cycles - before
    events = rig.machine.profile.event_costs
    assert miss_cost - hit_cost == 8 * events["page_walk_level"]


def test_walk_line_reuse_charges_only_reads_of_lines_the_previous_walk_did_not_read():
    """zen5's [tlb] walk_line_reuse (tlb.h): a neighbouring page's walk reads
    the same PML4E, PDPTE and PDE lines and the same PTE line (eight PTEs a
    line), so it is free; eight pages on, only the PTE line is new."""
    rig = Rig(profile="zen5")
    assert rig.machine.profile.tlb.walk_line_reuse
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    for page in (0, 1, 8):
        rig.map(root, DATA_VA + page * 0x1000, rig.frame())
    vcpu.write_cr3(root)
    rig.load(0, DATA_VA)
    before = vcpu.cycles
    rig.load(0, DATA_VA)                 # all hits: no walk
    hit_cost = vcpu.cycles - before

    def walk_cost(vaddr):
        before = vcpu.cycles
        rig.load(0, vaddr)
        return vcpu.cycles - before - hit_cost

    # Each data miss also pays the default path's DRAM stand-in.
    proxy = rig.machine.profile.memory["tlb_miss_data_proxy_cycles"]
    reads_before = vcpu.tlb_statistics()["page_walk_reads"]
    # (within a cycle: zen5's block prices carry a fraction of a cycle)
    assert walk_cost(DATA_VA + 0x1000) == pytest.approx(proxy, abs=1)
    assert walk_cost(DATA_VA + 0x8000) == pytest.approx(proxy + rig.machine.profile.event_costs["page_walk_level"], abs=1)
    assert vcpu.tlb_statistics()["page_walk_reads"] - reads_before == 8     # every read still counted


# ---- MOV CR3 and PCIDs ----------------------------------------------------


def test_mov_cr3_without_pcid_flushes_non_global_keeps_global():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    old, new = two_frames(rig)
    rig.map(root, DATA_VA, old)
    rig.map(root, DATA_VA + 0x1000, old, USER_RW | PTE_GLOBAL)
    vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == OLD and rig.load(0, DATA_VA + 0x1000) == OLD
    remap(rig, root, DATA_VA, new)
    remap(rig, root, DATA_VA + 0x1000, new, USER_RW | PTE_GLOBAL)
    assert rig.load(0, DATA_VA) == OLD, "no flush yet: the stale translation must still be used"
    vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == NEW
    assert rig.load(0, DATA_VA + 0x1000) == OLD, "a CR3 write keeps global translations"


def test_mov_cr3_rejects_bit_63_without_pcide():
    rig = Rig()
    with pytest.raises(GP):
        rig.machine.vcpus[0].write_cr3(rig.address_space() | NO_FLUSH)


def pcid_spaces(rig):
    """Two address spaces mapping DATA_VA to different frames, loaded as PCIDs 1 and 2."""
    vcpu = rig.machine.vcpus[0]
    vcpu.set_cr4_pcide(True)
    first, second = rig.address_space(), rig.address_space()
    old, new = two_frames(rig)
    third = rig.frame(0x3333_3333_3333_3333)
    rig.map(first, DATA_VA, old)
    rig.map(second, DATA_VA, third)
    vcpu.write_cr3(first | 1)
    assert rig.load(0, DATA_VA) == OLD
    vcpu.write_cr3(second | 2)
    assert rig.load(0, DATA_VA) == 0x3333_3333_3333_3333
    return vcpu, first, second, new


def test_pcids_tag_entries_and_no_flush_keeps_the_new_pcids_entries():
    rig = Rig()
    vcpu, first, second, new = pcid_spaces(rig)
    remap(rig, first, DATA_VA, new)
    vcpu.write_cr3(first | 1 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == OLD, "bit 63 set: PCID 1's stale entry survives"
    assert vcpu.probe_tlb(DATA_VA, pcid=2) is not None
    vcpu.write_cr3(first | 1)
    assert rig.load(0, DATA_VA) == NEW, "bit 63 clear: PCID 1's entries are flushed"
    assert vcpu.probe_tlb(DATA_VA, pcid=2) is not None, "another PCID's entries stay"
    vcpu.write_cr3(second | 2 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == 0x3333_3333_3333_3333
    assert vcpu.tlb_statistics()["tlb_flushes"]["cr3_noflush"] == 2


def test_cr4_pcide_rules():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    vcpu.write_cr3(root)
    vcpu._cr3 |= 5   # CR3[11:0] != 0 (PCD/PWT bits): setting PCIDE must #GP
    with pytest.raises(GP):
        vcpu.set_cr4_pcide(True)
    vcpu.write_cr3(root)
    old, new = two_frames(rig)
    rig.map(root, DATA_VA, old, USER_RW | PTE_GLOBAL)
    vcpu.set_cr4_pcide(True)
    assert rig.load(0, DATA_VA) == OLD
    remap(rig, root, DATA_VA, new, USER_RW | PTE_GLOBAL)
    vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == OLD, "global entries survive a CR3 flush"
    vcpu.set_cr4_pcide(False)
    assert rig.load(0, DATA_VA) == NEW, "clearing PCIDE drops every entry, global ones too"


def test_a_cpu_model_without_pcid_or_invpcid_refuses_them():
    """PCIDE and INVPCID follow the CPU model (CPUID.1:ECX.PCID[17],
    CPUID.(7,0):EBX.INVPCID[10]): setting PCIDE without PCID is #GP, INVPCID
    without INVPCID is #UD, and CPUID says so."""
    import dataclasses

    from emu_x86.emu.isa.cpuid import CPUID1_ECX_PCID, CPUID7_EBX_INVPCID, Cpuid
    from emu_x86.emu.traps import UD
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    assert vcpu.cpuid.query(1, 0)[2] & CPUID1_ECX_PCID and vcpu.cpuid.query(7, 0)[1] & CPUID7_EBX_INVPCID
    vcpu.cpu_model = dataclasses.replace(vcpu.cpu_model, pcid=False, invpcid=False)
    vcpu.write_cr3(rig.address_space())
    with pytest.raises(GP):
        vcpu.set_cr4_pcide(True)
    with pytest.raises(UD):
        vcpu.invpcid(2, 0)
    cpuid = Cpuid(vcpu.cpu_model, 0, 1, vcpu.xstate, lambda *args: (0, 0, 0, 0))
    assert not cpuid.query(1, 0)[2] & CPUID1_ECX_PCID and not cpuid.query(7, 0)[1] & CPUID7_EBX_INVPCID


# ---- INVLPG -----------------------------------------------------------------


def test_invlpg_drops_the_current_pcid_and_global_entries_of_one_page_only():
    rig = Rig()
    vcpu, first, second, new = pcid_spaces(rig)
    # PCID 2 (current) also maps a neighbour page and a global page.
    rig.map(second, DATA_VA + 0x1000, rig.frame(0x4444_4444_4444_4444))
    rig.map(second, DATA_VA + 0x2000, rig.frame(0x5555_5555_5555_5555), USER_RW | PTE_GLOBAL)
    assert rig.load(0, DATA_VA + 0x1000) == 0x4444_4444_4444_4444
    assert rig.load(0, DATA_VA + 0x2000) == 0x5555_5555_5555_5555
    remap(rig, second, DATA_VA, new)
    remap(rig, second, DATA_VA + 0x1000, new)
    remap(rig, second, DATA_VA + 0x2000, new, USER_RW | PTE_GLOBAL)
    remap(rig, first, DATA_VA, new)
    vcpu.invlpg(DATA_VA + 0x123)
    assert rig.load(0, DATA_VA) == NEW
    assert rig.load(0, DATA_VA + 0x1000) == 0x4444_4444_4444_4444, "another page stays"
    assert vcpu.probe_tlb(DATA_VA, pcid=1)["paddr"] != 0, "another PCID's entry for the page stays"
    vcpu.invlpg(DATA_VA + 0x2000)
    assert rig.load(0, DATA_VA + 0x2000) == NEW, "INVLPG drops a global entry too"
    vcpu.write_cr3(first | 1 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == OLD


# ---- INVPCID ----------------------------------------------------------------


def test_invpcid_individual_address():
    rig = Rig()
    vcpu, first, second, new = pcid_spaces(rig)
    rig.map(first, DATA_VA + 0x1000, rig.frame(0x4444_4444_4444_4444))
    vcpu.write_cr3(first | 1 | NO_FLUSH)
    assert rig.load(0, DATA_VA + 0x1000) == 0x4444_4444_4444_4444
    remap(rig, first, DATA_VA, new)
    remap(rig, first, DATA_VA + 0x1000, new)
    remap(rig, second, DATA_VA, new)
    vcpu.invpcid(INVPCID_INDIVIDUAL_ADDRESS, 1, DATA_VA)
    assert rig.load(0, DATA_VA) == NEW
    assert rig.load(0, DATA_VA + 0x1000) == 0x4444_4444_4444_4444, "other addresses stay"
    vcpu.write_cr3(second | 2 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == 0x3333_3333_3333_3333, "other PCIDs stay"


def test_invpcid_individual_address_keeps_global_entries():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    vcpu.set_cr4_pcide(True)
    root = rig.address_space()
    old, new = two_frames(rig)
    rig.map(root, DATA_VA, old, USER_RW | PTE_GLOBAL)
    vcpu.write_cr3(root | 3)
    assert rig.load(0, DATA_VA) == OLD
    remap(rig, root, DATA_VA, new, USER_RW | PTE_GLOBAL)
    vcpu.invpcid(INVPCID_INDIVIDUAL_ADDRESS, 3, DATA_VA)
    assert rig.load(0, DATA_VA) == OLD
    vcpu.invpcid(INVPCID_ALL_NON_GLOBAL, 0)
    assert rig.load(0, DATA_VA) == OLD
    vcpu.invpcid(INVPCID_ALL_INCLUDING_GLOBAL, 0)
    assert rig.load(0, DATA_VA) == NEW


def test_invpcid_single_context_flushes_one_pcid_only():
    rig = Rig()
    vcpu, first, second, new = pcid_spaces(rig)
    remap(rig, first, DATA_VA, new)
    remap(rig, second, DATA_VA, new)
    vcpu.invpcid(INVPCID_SINGLE_CONTEXT, 1)
    assert rig.load(0, DATA_VA) == 0x3333_3333_3333_3333, "PCID 2 (current) keeps its entry"
    vcpu.write_cr3(first | 1 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == NEW


def test_invpcid_all_contexts_non_global_and_including_global():
    rig = Rig()
    vcpu, first, second, new = pcid_spaces(rig)
    glob = rig.frame(0x5555_5555_5555_5555)
    rig.map(second, DATA_VA + 0x2000, glob, USER_RW | PTE_GLOBAL)
    assert rig.load(0, DATA_VA + 0x2000) == 0x5555_5555_5555_5555
    remap(rig, first, DATA_VA, new)
    remap(rig, second, DATA_VA, new)
    remap(rig, second, DATA_VA + 0x2000, new, USER_RW | PTE_GLOBAL)
    vcpu.invpcid(INVPCID_ALL_NON_GLOBAL, 0)
    assert rig.load(0, DATA_VA) == NEW
    assert rig.load(0, DATA_VA + 0x2000) == 0x5555_5555_5555_5555, "type 3 keeps global entries"
    vcpu.write_cr3(first | 1 | NO_FLUSH)
    assert rig.load(0, DATA_VA) == NEW, "type 3 reached PCID 1 too"
    assert rig.load(0, DATA_VA + 0x2000) == 0x5555_5555_5555_5555, (
        "a global entry serves every PCID, even one whose tables do not map the page")
    vcpu.invpcid(INVPCID_ALL_INCLUDING_GLOBAL, 0)
    assert isinstance(rig.load(0, DATA_VA + 0x2000), PF)
    vcpu.write_cr3(second | 2 | NO_FLUSH)
    assert rig.load(0, DATA_VA + 0x2000) == NEW
    assert vcpu.tlb_statistics()["tlb_flushes"]["invpcid_all"] == 1


def test_invpcid_operand_checks():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    vcpu.write_cr3(rig.address_space())
    for kind, pcid, address in ((4, 0, 0), (0, 1 << 12, 0), (0, 0, 1 << 47), (1, 1, 0), (0, 1, 0)):
        with pytest.raises(GP):
            vcpu.invpcid(kind, pcid, address)   # last two: PCID != 0 with CR4.PCIDE = 0
    vcpu.invpcid(INVPCID_SINGLE_CONTEXT, 0)      # PCID 0 is fine without PCIDE


# ---- capacity ---------------------------------------------------------------


def test_eviction_drops_the_way_filled_first_and_unicorn_refills_from_a_walk():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    geometry = rig.machine.profile.tlb
    root = rig.address_space()
    set_stride = geometry.sets * 0x1000       # addresses this far apart share a set
    # Set 5: not the code page's set.
    pages = [DATA_VA + 0x5000 + i * set_stride for i in range(geometry.ways + 1)]
    old, new = two_frames(rig)
    for vaddr in pages:
        rig.map(root, vaddr, old)
    vcpu.write_cr3(root)
    for vaddr in pages[:-1]:
        assert rig.load(0, vaddr) == OLD
    assert vcpu.tlb_statistics()["tlb_evictions"] == 0
    remap(rig, root, pages[0], new)
    assert rig.load(0, pages[-1]) == OLD        # one more page: the way filled first goes
    assert vcpu.tlb_statistics()["tlb_evictions"] == 1
    assert vcpu.probe_tlb(pages[0]) is None
    assert rig.load(0, pages[0]) == NEW, "the evicted entry is walked again (Unicorn's copy was flushed)"
    assert vcpu.probe_tlb(pages[1]) is None, "reloading pages[0] evicted the next-oldest way"


def test_large_pages_live_in_their_own_array_and_invlpg_anywhere_in_them_drops_them():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    big_va = 0x4000_0000
    frames = [rig.frame(0x6000 + i) for i in range(512)]   # contiguous 2 MiB? align below
    base = (frames[0] + 0x1FFFFF) & ~0x1FFFFF
    rig._next_frame = max(rig._next_frame, base + (2 << 20))
    rig.memory.write(base + 0x5000, struct.pack("<Q", OLD))
    rig.map(root, big_va, base, USER_RW, leaf_shift=21)
    vcpu.write_cr3(root)
    assert rig.load(0, big_va + 0x5000) == OLD
    entry = vcpu.probe_tlb(big_va + 0x1FF000)
    assert entry["page_shift"] == 21 and entry["paddr"] == base + 0x1FF000
    rig.memory.write(base + 0x5000, struct.pack("<Q", NEW))
    rig.map(root, big_va, 0, 0, leaf_shift=21)          # unmapped without a flush
    assert rig.load(0, big_va + 0x5000) == NEW          # still translated by the stale 2 MiB entry
    vcpu.invlpg(big_va + 0x100000)
    assert isinstance(rig.load(0, big_va + 0x5000), PF)


# ---- faults from cached entries ----------------------------------------------


def test_relaxed_pte_without_flush_gives_one_spurious_fault_then_succeeds():
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    page = rig.frame()
    rig.map(root, DATA_VA, page, PTE_PRESENT | PTE_USER)
    vcpu.write_cr3(root)
    rig.load(0, DATA_VA)                                # caches a read-only translation
    remap(rig, root, DATA_VA, page)                     # now writable; no flush
    fault = rig.store(0, DATA_VA, 9)
    assert isinstance(fault, PF) and fault.address == DATA_VA and fault.error_code == 0b111, (
        "the cached read-only entry faults (a spurious fault)")
    assert rig.store(0, DATA_VA, 9) == 0, "the #PF dropped the entry: the retry walks and succeeds"
    assert rig.qword(page) == 9
    assert vcpu.tlb_statistics()["tlb_faults_from_cache"] == 1


# ---- several vCPUs ------------------------------------------------------------


def shared_page_on_two_cpus(profile):
    rig = Rig(cpus=2, profile=profile)
    root = rig.address_space()
    old, new = two_frames(rig)
    rig.map(root, DATA_VA, old)                 # vCPU 0 "maps the page"
    for vcpu in rig.machine.vcpus:
        vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == OLD
    assert rig.load(1, DATA_VA) == OLD          # vCPU 1 caches it
    remap(rig, root, DATA_VA, new)              # vCPU 0 changes the PTE
    rig.machine.vcpus[0].invlpg(DATA_VA)        # ... and flushes only its own TLB
    assert rig.load(0, DATA_VA) == NEW
    return rig


@pytest.mark.parametrize("profile", ["spr", "zen4"])
def test_remote_cpu_reads_the_old_frame_without_a_shootdown(profile):
    rig = shared_page_on_two_cpus(profile)
    assert rig.load(1, DATA_VA) == OLD


def test_ipi_driven_shootdown_makes_the_remote_cpu_read_the_new_frame():
    rig = shared_page_on_two_cpus("spr")
    sender, target = rig.machine.vcpus
    for vcpu in rig.machine.vcpus:
        vcpu.halted = True
    rig.interrupt_actions[FLUSH_VECTOR] = lambda vcpu: vcpu.invlpg(DATA_VA)
    sent_at = sender.cycles
    sender.write_msr(ICR, (1 << 32) | FLUSH_VECTOR)
    rig.machine.run()
    assert rig.interrupt_actions == {}, "the flush IPI was delivered"
    events = rig.machine.profile.event_costs
    assert target.cycles >= sent_at + events["ipi_send"] + events["ipi_latency"]
    assert rig.load(1, DATA_VA) == NEW
    assert sender.apic.ipis_sent == 1 and target.apic.ipis_received == 1


def test_invlpgb_and_tlbsync_flush_the_remote_cpu_without_an_ipi():
    rig = shared_page_on_two_cpus("zen4")
    sender, target = rig.machine.vcpus
    before = sender.cycles
    sender.invlpgb(DATA_VA | 0b0001, 0, 0)      # VA valid, this page, any PCID
    sender.tlbsync()
    events = rig.machine.profile.event_costs
    # INVLPGB issues, then TLBSYNC waits until the broadcast has completed.
    assert sender.cycles - before == (events["invlpgb_base"] + events["invlpgb_per_page"]
                                      + max(events["invlpgb_latency"], events["tlbsync"]))
    assert rig.load(1, DATA_VA) == NEW
    assert target.apic.ipis_received == 0
    assert (sender.tlb_statistics()["invlpgb"], sender.tlb_statistics()["tlbsync"]) == (1, 1)
    assert target.tlb_statistics()["tlb_flushes"]["invlpgb_received"] == 1


def test_invlpgb_operand_encoding():
    rig = Rig(cpus=2, profile="zen4")
    sender, target = rig.machine.vcpus
    for vcpu in rig.machine.vcpus:
        vcpu.set_cr4_pcide(True)
    first, second = rig.address_space(), rig.address_space()
    old, new = two_frames(rig)
    pages = [DATA_VA + i * 0x1000 for i in range(4)]
    for vaddr in pages:
        rig.map(first, vaddr, old)
        rig.map(second, vaddr, old)
    rig.map(first, DATA_VA + 0x10000, old, USER_RW | PTE_GLOBAL)
    for vcpu_index, root, pcid in ((0, first, 1), (1, second, 2)):
        rig.machine.vcpus[vcpu_index].write_cr3(root | pcid)
        for vaddr in pages:
            assert rig.load(vcpu_index, vaddr) == OLD
    assert rig.load(0, DATA_VA + 0x10000) == OLD
    for vaddr in pages:
        remap(rig, first, vaddr, new)
        remap(rig, second, vaddr, new)
    remap(rig, first, DATA_VA + 0x10000, new, USER_RW | PTE_GLOBAL)
    # PCID 2 only, pages 1 and 2 (ECX = 1 additional page), from vCPU 0.
    sender.invlpgb((DATA_VA + 0x1000) | 0b0011, 1, 2 << 16)
    assert [rig.load(1, v) for v in pages] == [OLD, NEW, NEW, OLD]
    assert [rig.load(0, v) for v in pages] == [OLD] * 4, "PCID 1 entries are untouched"
    # A non-zero ASID names a guest: this machine has none, nothing is flushed.
    sender.invlpgb(DATA_VA | 0b0101, 3, 7)
    assert rig.load(0, DATA_VA) == OLD
    # No VA, no PCID: every non-global entry everywhere; globals stay ...
    sender.invlpgb(0, 0, 0)
    assert [rig.load(0, v) for v in pages] == [NEW] * 4
    assert rig.load(0, DATA_VA + 0x10000) == OLD
    # ... unless "include global".
    sender.invlpgb(0b1000, 0, 0)
    assert rig.load(0, DATA_VA + 0x10000) == NEW
    with pytest.raises(GP):
        sender.invlpgb(DATA_VA | 1, 8, 0)       # more pages than CPUID 8000_0008 EDX allows


def test_invlpgb_stride_2m():
    rig = Rig(cpus=1, profile="zen4")
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    old, new = two_frames(rig)
    targets = [DATA_VA, DATA_VA + (2 << 20), DATA_VA + 0x1000]
    for vaddr in targets:
        rig.map(root, vaddr, old)
    vcpu.write_cr3(root)
    for vaddr in targets:
        assert rig.load(0, vaddr) == OLD
        remap(rig, root, vaddr, new)
    vcpu.invlpgb(DATA_VA | 1, (1 << 31) | 1, 0)     # two 2 MiB-strided addresses
    assert [rig.load(0, v) for v in targets] == [NEW, NEW, OLD]


def test_invlpgb_and_tlbsync_are_undefined_on_intel():
    rig = Rig(profile="spr")
    with pytest.raises(UD):
        rig.machine.vcpus[0].invlpgb(0, 0, 0)
    with pytest.raises(UD):
        rig.machine.vcpus[0].tlbsync()


# ---- Unicorn's TLB stays a subset of the model ---------------------------------

EVICT_CODE_VA = 0x60_0000
PTE_WINDOW_VA = 0x50_0000
# rdi: the watched page X; rsi: X's PTE through PTE_WINDOW_VA; rdx: the new PTE;
# r8: the first page sharing X's set; r12: the set stride; r9d: how many pages.
EVICT_SOURCE = """
    mov rax, [rdi]
    mov [rsi], rdx
    mov rbx, [rdi]
    mov ecx, r9d
next:
    mov r10, [r8]
    mov r11, [rdi]
    add r8, r12
    dec ecx
    jnz next
    mov rax, [rdi]
    syscall
"""


def run_eviction_only_path(unicorn_page_flush: bool):
    """One run, no flush instruction anywhere: the guest reads page X, rewrites
    X's PTE to another frame (no INVLPG), then reads pages of X's set -- re-reading
    X after each so Unicorn's own TLB keeps X hot -- until the model's FIFO evicts
    X, and reads X once more. Returns (X before, X right after the rewrite, X at
    the end, the vCPU)."""
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    if not unicorn_page_flush:
        vcpu.clock.uc_cpu = ffi.NULL          # as when find_cpu_state refuses
    geometry = rig.machine.profile.tlb
    root = rig.address_space()
    code, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(EVICT_SOURCE, EVICT_CODE_VA)
    code_frame = rig.frame()
    rig.memory.write(code_frame, bytes(code))
    rig.map(root, EVICT_CODE_VA, code_frame, PTE_PRESENT | PTE_USER)
    set_stride = geometry.sets * 0x1000
    watched = DATA_VA + 0x5000                # set 5: not the code's, the window's or the stack's
    old, new = two_frames(rig)
    rig.map(root, watched, old)
    others = [watched + (i + 1) * set_stride for i in range(2 * geometry.ways)]
    filler = rig.frame()
    for vaddr in others:
        rig.map(root, vaddr, filler)
    pte = rig.pte_address(root, watched)
    rig.map(root, PTE_WINDOW_VA, pte & ~0xFFF)    # the page table, writable at CPL3
    vcpu.write_cr3(root)
    vcpu.load_user_registers({"rip": EVICT_CODE_VA, "rdi": watched, "rsi": PTE_WINDOW_VA + (pte & 0xFFF),
                              "rdx": new | USER_RW, "r8": others[0], "r12": set_stride,
                              "r9": len(others)})
    vcpu.run(vcpu.cycles + 10_000_000)
    assert len(rig.loaded) == 1, "the guest reached its syscall"
    return OLD, vcpu.read_register("rbx"), rig.loaded[-1], vcpu


@pytest.mark.parametrize("unicorn_page_flush", [True, False], ids=["page-flush", "whole-flush"])
def test_an_eviction_alone_makes_the_guest_see_the_rewritten_pte(unicorn_page_flush):
    """The model's eviction of X is the only thing that can end the stale
    translation, and it must: Unicorn's TLB (kept hot by the loop) may not
    outlive the model's entry, whether Unicorn drops X's page alone or
    everything."""
    before, after_rewrite, at_end, vcpu = run_eviction_only_path(unicorn_page_flush)
    assert after_rewrite == before == OLD, "no flush yet: X is still cached"
    assert vcpu.tlb_statistics()["tlb_evictions"] > 0
    assert at_end == NEW, "X was evicted from the model, so the last read walked to the new frame"
    flushes = vcpu.clock.unicorn_tlb_page_flushes
    assert (flushes > 0) == unicorn_page_flush


def test_page_and_whole_flushes_give_identical_statistics():
    """Which entries Unicorn's TLB caches never changes the model's decisions."""
    with_pages = run_eviction_only_path(True)[3]
    whole = run_eviction_only_path(False)[3]
    assert with_pages.tlb_statistics() == whole.tlb_statistics()
    assert with_pages.cycles == whole.cycles and with_pages.instructions == whole.instructions
    assert whole.clock.unicorn_tlb_full_flushes > with_pages.clock.unicorn_tlb_full_flushes


def test_the_verified_unicorn_gets_page_flushes():
    """On the libunicorn the offsets were read from, every check passes."""
    from emu_x86.emu import unicorn_internals
    if unicorn_internals.library_version() != unicorn_internals.VERIFIED_VERSION:
        missing_prerequisite("not the libunicorn version the CPUState layout was verified on")
    vcpu = Rig().machine.vcpus[0]
    assert vcpu.unicorn_page_flush_unavailable == ""
    assert vcpu.clock.uc_cpu != ffi.NULL


def test_readable_memory_asks_the_kernel_and_falls_back_to_the_maps(monkeypatch):
    """unicorn_internals.ReadableMemory: readable memory yes, the null page and
    kernel space no, through process_vm_readv -- and the same answers from
    /proc/self/maps where that call is refused (the vCPU's checks then pass too)."""
    import ctypes
    from emu_x86.emu import unicorn_internals
    buffer = ctypes.create_string_buffer(4096)
    probes = [(ctypes.addressof(buffer), 4096, True), (8, 8, False), (0xFFFF_8000_0000_0000, 8, False)]
    for refused in (False, True):
        if refused:
            monkeypatch.setattr(unicorn_internals.ReadableMemory, "_ask_kernel", classmethod(lambda cls, a, s: None))
        memory = unicorn_internals.ReadableMemory()
        assert [memory.covers(address, size) for address, size, _ in probes] == [want for *_, want in probes]
        assert (memory._ranges is not None) == refused
    if unicorn_internals.library_version() == unicorn_internals.VERIFIED_VERSION:
        assert Rig().machine.vcpus[0].unicorn_page_flush_unavailable == ""


@pytest.mark.parametrize("constant, value, reason", [
    ("VERIFIED_VERSION", (2, 1, 3), "is not the verified"),
    ("TLB_FLUSH_PAGE_SYMBOL", "no_such_function_x86_64", "does not export"),
    ("UC_STRUCT_CPU_OFFSET", 0x1B0, ""),
    ("CPU_STATE_UC_OFFSET", 0x81A0, "CPUState.uc"),
    ("CPU_STATE_ENV_PTR_OFFSET", 0x130, "env_ptr"),
    ("ENV_UC_OFFSET", 0x1B50, "CPUX86State.uc"),
])
def test_a_failed_check_falls_back_to_whole_flushes(monkeypatch, constant, value, reason):
    """A different library, or any offset that does not check out, leaves the
    vCPU on whole-TLB flushes -- never a dereference of an unchecked pointer --
    and the guest still sees the rewritten PTE after the eviction."""
    from emu_x86.emu import unicorn_internals
    monkeypatch.setattr(unicorn_internals, constant, value)
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    assert reason in vcpu.unicorn_page_flush_unavailable and vcpu.unicorn_page_flush_unavailable
    assert vcpu.clock.uc_cpu == ffi.NULL
    assert vcpu.clock.uc_tlb.fast == ffi.NULL and vcpu.unicorn_tlb_view_unavailable
    root = rig.address_space()
    old, new = two_frames(rig)
    rig.map(root, DATA_VA, old)
    vcpu.write_cr3(root)
    assert rig.load(0, DATA_VA) == OLD
    remap(rig, root, DATA_VA, new)
    vcpu.invlpg(DATA_VA)
    assert rig.load(0, DATA_VA) == NEW
    assert vcpu.clock.unicorn_tlb_page_flushes == 0


@pytest.mark.parametrize("evictions, pending", [(16, "pages"), (17, "all")])
def test_evictions_in_one_block_queue_pages_until_the_list_is_full(evictions, pending):
    """Evictions inside one block wait for the next block hook as a list of
    pages; one more than the list holds (HOTPATH_FLUSH_PAGES_MAX) turns it
    into a whole-TLB flush."""
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    assert lib.HOTPATH_FLUSH_PAGES_MAX == 16
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    vcpu.clock.uc_tlb.fast = ffi.NULL           # every eviction queues, as when find_tlb_view refuses
    geometry = rig.machine.profile.tlb
    root = rig.address_space()
    set_stride = geometry.sets * 0x1000
    loads = geometry.ways + evictions           # one straight-line block
    source = "".join(f"mov r10, [r8 + {i * set_stride:#x}]; " for i in range(loads)) + "syscall"
    code, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(source, EVICT_CODE_VA)
    code_frame = rig.frame()
    rig.memory.write(code_frame, bytes(code))
    rig.map(root, EVICT_CODE_VA, code_frame, PTE_PRESENT | PTE_USER)
    first = DATA_VA + 0x5000
    filler = rig.frame()
    for i in range(loads):
        rig.map(root, first + i * set_stride, filler)
    vcpu.write_cr3(root)
    vcpu.load_user_registers({"rip": EVICT_CODE_VA, "r8": first})
    vcpu.run(vcpu.cycles + 10_000_000)       # stops at the syscall, before another block
    assert len(rig.loaded) == 1
    assert vcpu.tlb_statistics()["tlb_evictions"] == evictions
    clock = vcpu.clock
    if pending == "pages":
        assert clock.unicorn_tlb_flush_pending == lib.HOTPATH_FLUSH_PAGES
        assert clock.unicorn_tlb_flush_page_count == evictions
        assert [clock.unicorn_tlb_flush_pages[i] for i in range(evictions)] == [
            first + i * set_stride for i in range(evictions)], "the ways filled first, in order"
    else:
        assert clock.unicorn_tlb_flush_pending == lib.HOTPATH_FLUSH_ALL


# ---- evictions QEMU's TLB no longer holds need no flush ----------------------------

STACK_TOP = DATA_VA + 0x10_0000            # the stack page's set and QEMU slot: 127 and 255
FUNC_VA = DATA_VA + 0x5000                 # set 5, QEMU slot 5
QEMU_STRIDE = 0x10_0000                    # 256 pages: the same model set and QEMU slot (256-entry table)
# rbp: the function (or data page) X; rsi: X's PTE through PTE_WINDOW_VA; rdx: the new PTE;
# r8: the first page sharing X's set and QEMU slot; r12: their stride; r9d: how many.
REUSE_SOURCE = """
    {first_use}
    mov rbx, rax
    mov [rsi], rdx
    mov ecx, r9d
next:
    mov r10, [r8]
    add r8, r12
    dec ecx
    jnz next
    {second_use}
    syscall
"""
USES = {"read": ("mov rax, [rbp]", "mov rax, [rbp]"), "call": ("call rbp", "call rbp"),
        # a read first: Unicorn gets X without execute permission, so the call
        # must come back to the model, which marks X fetched
        "read-then-call": ("mov rax, [rbp]; call rbp", "call rbp")}


def run_reuse_after_eviction(uses: str, tlb_view: bool = True):
    """One run, no flush instruction: use X (read it, call it: USES), rewrite X's PTE
    to another frame, read pages sharing X's model set and QEMU slot until both
    the model and QEMU's TLB (table and victim TLB) have let X go, use X again.
    Returns (first use, second use, the vCPU)."""
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    if not tlb_view:
        vcpu.clock.uc_tlb.fast = ffi.NULL
    geometry = rig.machine.profile.tlb
    assert QEMU_STRIDE % (geometry.sets * 0x1000) == 0
    root = rig.address_space()
    first_use, second_use = USES[uses]
    code, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(REUSE_SOURCE.format(first_use=first_use, second_use=second_use),
                                              EVICT_CODE_VA)
    code_frame = rig.frame()
    rig.memory.write(code_frame, bytes(code))
    rig.map(root, EVICT_CODE_VA, code_frame, PTE_PRESENT | PTE_USER)
    rig.map(root, STACK_TOP - 0x1000, rig.frame())
    old, new = two_frames(rig)
    if uses != "read":                          # mov eax, 1 / 2; ret
        rig.memory.write(old, bytes.fromhex("b801000000c3"))
        rig.memory.write(new, bytes.fromhex("b802000000c3"))
    rig.map(root, FUNC_VA, old)
    others = [FUNC_VA + (i + 1) * QEMU_STRIDE for i in range(geometry.ways + 2 * 8)]
    filler = rig.frame()
    for vaddr in others:
        rig.map(root, vaddr, filler)
    pte = rig.pte_address(root, FUNC_VA)
    rig.map(root, PTE_WINDOW_VA, pte & ~0xFFF)
    vcpu.write_cr3(root)
    vcpu.load_user_registers({"rip": EVICT_CODE_VA, "rsp": STACK_TOP, "rbp": FUNC_VA,
                              "rsi": PTE_WINDOW_VA + (pte & 0xFFF), "rdx": new | USER_RW, "r8": others[0],
                              "r12": QEMU_STRIDE, "r9": len(others)})
    vcpu.run(vcpu.cycles + 10_000_000)
    assert len(rig.loaded) == 1, "the guest reached its syscall"
    return vcpu.read_register("rbx"), rig.loaded[-1], vcpu


def test_an_evicted_data_page_qemu_no_longer_holds_is_not_flushed_and_walks_again():
    """QEMU's direct-mapped TLB and victim TLB let X go long before the model
    evicts it, so that eviction needs no tlb_flush_page; the next read of X
    still reaches the model, walks and sees the rewritten PTE."""
    first, second, vcpu = run_reuse_after_eviction("read")
    assert first == OLD and second == NEW
    assert vcpu.clock.unicorn_tlb_flushes_skipped > 0
    assert vcpu.probe_tlb(FUNC_VA) is not None, "the second read filled the model again"


@pytest.mark.parametrize("uses", ["call", "read-then-call"])
def test_an_evicted_code_page_is_flushed_even_when_qemu_no_longer_holds_its_tlb_entry(uses):
    """X was fetched: its translated block sits in QEMU's TB jump cache, which
    finds blocks without the TLB, so only tlb_flush_page (which clears the
    page's jump-cache entries) makes the next call reach the model -- and run
    the new frame's code."""
    first, second, vcpu = run_reuse_after_eviction(uses)
    assert (first, second) == (1, 2)
    assert vcpu.clock.unicorn_tlb_page_flushes > 0


@pytest.mark.parametrize("uses", list(USES))
def test_skipping_flushes_never_changes_statistics(uses):
    """Which pages QEMU's TLB still held decides only whether a flush is done."""
    with_view, without = (run_reuse_after_eviction(uses, tlb_view)[2] for tlb_view in (True, False))
    assert with_view.tlb_statistics() == without.tlb_statistics()
    assert (with_view.cycles, with_view.instructions) == (without.cycles, without.instructions)
    assert with_view.clock.unicorn_tlb_flushes_skipped > 0 == without.clock.unicorn_tlb_flushes_skipped


def test_unicorn_tlb_holds_what_unicorn_filled_and_nothing_after_a_flush():
    """The C reader of QEMU's TLB (tlb.h unicorn_tlb_holds) against fills and flushes."""
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    root = rig.address_space()
    pages = [DATA_VA + i * 0x1000 for i in range(3)]
    for vaddr in pages:
        rig.map(root, vaddr, rig.frame())
    vcpu.write_cr3(root)

    def holds(vaddr):
        return lib.unicorn_tlb_holds(ffi.addressof(vcpu.clock.uc_tlb), vaddr)

    assert not any(map(holds, pages))
    rig.load(0, pages[0])
    rig.load(0, pages[1])
    assert holds(pages[0]) and holds(pages[1]) and holds(CODE_VA) and not holds(pages[2])
    vcpu.invlpg(pages[0])                      # the model drops it: Unicorn's TLB is flushed whole
    assert not any(map(holds, [*pages, CODE_VA]))


def test_the_layout_probe_runs_once_per_library_build(tmp_path):
    """The scratch-Unicorn probe's answer is kept beside the block price store:
    a second process reads it and never probes; another layout key (a constant
    changed) or another cache directory probes afresh."""
    import os
    import subprocess
    import sys
    probe = (
        "import sys\n"
        "from emu_x86.emu import unicorn_internals as u\n"
        "probed = []\n"
        "real = u._probe_tlb_layout\n"
        "u._probe_tlb_layout = lambda: probed.append(1) or real()\n"
        "if sys.argv[1] == 'other-key':\n"
        "    u.TLB_VICTIM_ENTRIES = 4\n"
        "reason = u.tlb_layout_reason()\n"
        "print(len(probed), repr(reason))\n")
    env = {**os.environ, "EMU_BLOCK_CACHE": str(tmp_path / "block-prices")}

    def run(mode):
        # the first import of unicorn_internals probes nothing: vcpu.py does
        done = subprocess.run([sys.executable, "-c", probe, mode], env=env, capture_output=True, text=True,
                              check=True)
        probes, reason = done.stdout.strip().split(" ", 1)
        return int(probes), reason

    first, second, other = run("same"), run("same"), run("other-key")
    assert first[0] == 1 and second == (0, first[1]), (first, second)
    assert other[0] == 1
    assert len(list((tmp_path / "unicorn-probes").iterdir())) == 2


def test_the_verified_unicorn_gets_a_view_of_qemus_tlb():
    from emu_x86.emu import unicorn_internals
    if unicorn_internals.library_version() != unicorn_internals.VERIFIED_VERSION:
        missing_prerequisite("not the libunicorn version the softmmu TLB layout was verified on")
    vcpu = Rig().machine.vcpus[0]
    assert vcpu.unicorn_tlb_view_unavailable == ""
    assert vcpu.clock.uc_tlb.fast != ffi.NULL
    assert (lib.UNICORN_TLB_ENTRY_ADDR_READ, lib.UNICORN_TLB_ENTRY_ADDR_WRITE, lib.UNICORN_TLB_ENTRY_ADDR_CODE) == (
        unicorn_internals.TLB_ENTRY_ADDR_READ, unicorn_internals.TLB_ENTRY_ADDR_WRITE,
        unicorn_internals.TLB_ENTRY_ADDR_CODE)


@pytest.mark.parametrize("constant, value, reason", [
    ("TLB_FAST_ENV_OFFSET", -0x50, "mask or table"),
    ("TLB_FAST_STRIDE", 0x18, "mask or table"),
    ("TLB_VICTIM_ENV_OFFSET", -0x800, "where expected"),
    ("TLB_DESC_STRIDE", 0x2C0, "victim TLB"),
    ("TLB_VICTIM_ENTRIES", 4, "victim TLB"),
    ("TLB_VICTIM_ENTRIES", 16, "where expected"),
    ("TLB_DIRTY_ENV_OFFSET", -0x888, "dirty"),
    ("TLB_MMU_MODES", 2, "MMU indexes"),
    ("TLB_ENTRY_SHIFT", 5, "outside the entry"),
    ("TLB_ENTRY_ADDR_CODE", 24, "where expected"),
    ("TLB_ENTRY_ADDEND", 24, "where expected"),
    ("CPU_STATE_UC_OFFSET", 0x81A0, "CPUState.uc"),
])
def test_a_wrong_tlb_layout_falls_back_to_flushing_every_eviction(monkeypatch, constant, value, reason):
    """Any layout constant that does not check out leaves the vCPU without a
    view of QEMU's TLB: every eviction of the current context is flushed
    again, and the guest still sees a rewritten PTE after the eviction."""
    from emu_x86.emu import unicorn_internals
    monkeypatch.setattr(unicorn_internals, constant, value)
    first, second, vcpu = run_reuse_after_eviction("read")
    assert reason in vcpu.unicorn_tlb_view_unavailable and vcpu.unicorn_tlb_view_unavailable
    assert vcpu.clock.uc_tlb.fast == ffi.NULL
    assert (first, second) == (OLD, NEW)
    assert vcpu.clock.unicorn_tlb_flushes_skipped == 0


# ---- FIFO replacement kept as a ring per set ----------------------------------------


def test_fifo_rings_pick_the_victims_fill_stamps_would():
    """Random loads over three times as many pages as two sets hold, mixed with
    INVLPG, INVPCID single-context and PCID switches: after every step the model
    caches exactly what a reference FIFO (oldest fill of the set goes) predicts,
    each set's ring lists its valid ways in fill order and its tags name
    exactly its valid entries (tlb_sets_consistent)."""
    rng = random.Random(7)
    rig = Rig()
    vcpu = rig.machine.vcpus[0]
    geometry = rig.machine.profile.tlb
    set_stride = geometry.sets * 0x1000
    pages = [DATA_VA + 0x5000 + s * 0x1000 + i * set_stride for s in range(2) for i in range(3 * geometry.ways)]
    roots = {}
    for pcid in (1, 2):
        roots[pcid] = root = rig.address_space()
        for vaddr in pages:
            rig.map(root, vaddr, rig.frame())
    vcpu.set_cr4_pcide(True)
    cached = {}                  # (pcid, set) -> [vaddr, ...] oldest fill first
    stamps = {}                  # (pcid, vaddr) -> the step that filled it
    pcid = 1
    vcpu.write_cr3(roots[pcid] | pcid)

    def set_of(vaddr):
        return (vaddr >> 12) % geometry.sets

    for step in range(1500):
        choice = rng.random()
        if choice < 0.85:
            vaddr = rng.choice(pages)
            rig.load(0, vaddr)
            order = cached.setdefault((pcid, set_of(vaddr)), [])
            if vaddr not in order:
                fills = [key for key in cached if key[1] == set_of(vaddr)]
                if sum(len(cached[key]) for key in fills) == geometry.ways:
                    # the set is shared by both PCIDs: the oldest fill of either goes
                    oldest = min(fills, key=lambda key: stamps[(key[0], cached[key][0])] if cached[key] else 1 << 60)
                    del stamps[(oldest[0], cached[oldest].pop(0))]
                order.append(vaddr)
                stamps[(pcid, vaddr)] = step
        elif choice < 0.93:
            vaddr = rng.choice(pages)
            vcpu.invlpg(vaddr)
            order = cached.get((pcid, set_of(vaddr)), [])
            if vaddr in order:
                order.remove(vaddr)
                del stamps[(pcid, vaddr)]
        elif choice < 0.96:
            victim_pcid = rng.choice((1, 2))
            vcpu.invpcid(INVPCID_SINGLE_CONTEXT, victim_pcid, 0)
            for key in [key for key in cached if key[0] == victim_pcid]:
                for vaddr in cached.pop(key):
                    del stamps[(victim_pcid, vaddr)]
        else:
            pcid = 3 - pcid
            vcpu.write_cr3(roots[pcid] | pcid | NO_FLUSH)
        assert lib.tlb_sets_consistent(vcpu.c_mmu), f"step {step}"
        if step % 50 == 0 or step > 1400:
            for check_pcid in (1, 2):
                for vaddr in pages:
                    expected = vaddr in cached.get((check_pcid, set_of(vaddr)), [])
                    assert (vcpu.probe_tlb(vaddr, check_pcid) is not None) == expected, (step, check_pcid, hex(vaddr))
