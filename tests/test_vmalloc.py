"""emu_x86/kernel/mm/vmalloc.py on a real machine's memory: vzalloc maps zeroed frames
with global supervisor PTEs that every address space sees; vfree unmaps at
once but keeps the range until a batched purge, whose TLB flush reaches every
other CPU by IPI (mm/vmalloc.c free_vmap_area_noflush, __purge_vmap_area_lazy)."""
import pytest

from emu_x86.emu.machine import Machine
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import ACCESS_READ, ACCESS_WRITE, PTE_GLOBAL, PTE_NX, PTE_USER, walk
from emu_x86.emu.traps import PF
from emu_x86.kernel.kernel import CALL_FUNCTION_VECTOR, Kernel, KernelConfig
from emu_x86.kernel.mm.mm import MmStruct
from emu_x86.kernel.mm.vmalloc import VMALLOC_START, lazy_max_pages


def make_kernel(cpus=2, **cmdline):
    machine = Machine(cpus=cpus, memory_bytes=64 << 20)
    return Kernel(machine, KernelConfig(argv=["test"], envp=[], cmdline={k: str(v) for k, v in cmdline.items()}))


def test_vzalloc_maps_zeroed_frames_with_global_supervisor_ptes():
    kernel = make_kernel()
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[0]
    memory = kernel.machine.memory
    area = vmalloc.vzalloc(vcpu, 3 * PAGE_SIZE - 100)
    assert area.start == VMALLOC_START and area.va_pages == 4        # three pages + the guard page
    for index, frame in enumerate(area.frames):
        address = area.start + index * PAGE_SIZE
        entry = vmalloc.pagetables.lookup(address)
        assert entry & PTE_GLOBAL and entry & PTE_NX and not entry & PTE_USER
        assert walk(memory, vmalloc.pagetables.pgd, address + 8, ACCESS_WRITE, user_mode=False).paddr_page == frame
        assert memory.read(frame, PAGE_SIZE) == bytes(PAGE_SIZE)
        with pytest.raises(PF):                                       # user code cannot reach it
            walk(memory, vmalloc.pagetables.pgd, address, ACCESS_READ, user_mode=True)
    assert vmalloc.pagetables.lookup(area.start + 3 * PAGE_SIZE) == 0  # the guard page stays unmapped


def test_every_address_space_shares_the_vmalloc_tables():
    kernel = make_kernel()
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[0]
    mm = MmStruct(kernel.frames)
    vmalloc.clone_kernel_pgd_entries(mm.pagetables)
    # Mapped after the PGD was cloned: visible anyway, the lower tables are shared.
    area = vmalloc.vzalloc(vcpu, PAGE_SIZE)
    translation = walk(kernel.machine.memory, mm.pgd, area.start, ACCESS_READ, user_mode=False)
    assert translation.paddr_page == area.frames[0]
    vcpu.write_cr3(mm.pgd)
    assert vcpu.translate(area.start, ACCESS_READ, user_mode=False) == area.frames[0]


def test_vfree_unmaps_now_and_keeps_the_range_until_the_purge():
    kernel = make_kernel(lazy_max_pages=1000)
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[0]
    first = vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE)
    frames_before = kernel.frames.allocated_frames
    vmalloc.vfree(vcpu, first)
    assert vmalloc.pagetables.lookup(first.start) == 0
    assert kernel.frames.allocated_frames == frames_before - 2
    assert kernel.counters["vmalloc_lazy_pages"] == 3 and kernel.counters["vmalloc_purges"] == 0
    second = vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE)
    assert second.start == first.end                  # not reused: its TLB entries may live on
    vmalloc.purge_vmap_area_lazy(vcpu)
    third = vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE)
    assert third.start == first.start                 # reusable after the flush


def test_crossing_lazy_max_pages_purges_with_one_ipi_per_other_cpu():
    kernel = make_kernel(cpus=4, lazy_max_pages=8)
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[1]
    areas = [vmalloc.vzalloc(vcpu, PAGE_SIZE) for _ in range(5)]    # 2 pages of range each
    for area in areas[:4]:
        vmalloc.vfree(vcpu, area)
    assert kernel.counters["vmalloc_purges"] == 0                  # 8 lazy pages: not above the threshold
    vmalloc.vfree(vcpu, areas[4])
    assert kernel.counters["vmalloc_purges"] == 1 and kernel.counters["vfree_ipis"] == 3
    assert vmalloc.lazy_pages == 0 and vmalloc.free_ranges == [(vmalloc.start, vmalloc.end)]
    # The flush is queued for CPUs 0, 2, 3 and posted as CALL_FUNCTION IPIs; CPU 1 waits for them.
    assert [len(kernel.call_function_queue[cpu]) for cpu in range(4)] == [1, 0, 1, 1]
    assert vcpu.waiting_for_acks == {0, 2, 3}
    for cpu in (0, 2, 3):
        assert [pending.vector for pending in kernel.machine.vcpus[cpu].apic.take_due(1 << 62)] == \
            [CALL_FUNCTION_VECTOR]


def test_default_threshold_is_linux_lazy_max_pages():
    assert lazy_max_pages(1) == 8192 and lazy_max_pages(4) == 3 * 8192 and lazy_max_pages(64) == 7 * 8192
    assert make_kernel(cpus=4).vmalloc.lazy_max_pages == 3 * 8192


def test_a_full_area_purges_then_fails():
    kernel = make_kernel(vmalloc="16K", lazy_max_pages=1000)
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[0]
    first = vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE)      # 3 of the 4 pages of range
    assert vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE) is None
    assert kernel.counters["vmalloc_failures"] == 1 and kernel.counters["vmalloc_purges"] == 0
    vmalloc.vfree(vcpu, first)
    again = vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE)      # no room until the lazy range is purged
    assert again is not None and again.start == first.start
    assert kernel.counters["vmalloc_purges"] == 1 and kernel.counters["vfree_ipis"] == 1


def test_purge_flushes_global_entries_by_invlpg_or_everything_past_the_ceiling():
    # The purge of one small range INVLPGs its pages on every CPU (global
    # entries included); a range above tlb_single_page_flush_ceiling (33
    # pages) flushes everything (arch/x86/mm/tlb.c flush_tlb_kernel_range).
    kernel = make_kernel(cpus=2, lazy_max_pages=1000)
    vmalloc, vcpu = kernel.vmalloc, kernel.machine.vcpus[0]
    other = kernel.machine.vcpus[1]
    vmalloc.vfree(vcpu, vmalloc.vzalloc(vcpu, 2 * PAGE_SIZE))       # 3 pages of range
    vmalloc.purge_vmap_area_lazy(vcpu)
    assert vcpu.tlb_flush_counts.get("invlpg") == 3
    kernel._call_function_interrupt(other)                           # the IPI arrives
    assert other.tlb_flush_counts.get("invlpg") == 3
    big = vmalloc.vzalloc(vcpu, 40 * PAGE_SIZE)
    vmalloc.vfree(vcpu, big)
    vmalloc.purge_vmap_area_lazy(vcpu)
    assert vcpu.tlb_flush_counts.get("invpcid_all") == 1 and vcpu.tlb_flush_counts.get("invlpg") == 3
