"""A process address space: VMAs over 4-level page tables, demand paging, uaccess.

Mirrors the shape of Linux's ``struct mm_struct``/``vm_area_struct``: the VMA
list says what may be mapped, the page tables say what is mapped now;
anonymous memory is faulted in on first touch (do_anonymous_page), and the
kernel's own accesses to user memory (copy_from_user/copy_to_user) fault pages
in the same way and fail with -EFAULT outside any VMA.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import (
    ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, PHYS_ADDR_MASK, PTE_DIRTY, PTE_WRITABLE, walk, walk_paddr,
)
from emu_x86.emu.traps import PF, PF_PRESENT, PF_WRITE, PF_INSTR
from emu_x86.kernel.errno import EFAULT, EINVAL, ENOMEM, SyscallError
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE
from emu_x86.kernel.mm.cow import do_wp_page
from emu_x86.kernel.mm.frames import OVERCOMMIT_NEVER, FrameAllocator, OutOfMemory
from emu_x86.kernel.mm.pagetable import PageTables, pte_flags_for_prot

# x86-64 user address space without ASLR (arch/x86/include/asm/page_64_types.h,
# mm/util.c mmap_base): TASK_SIZE_MAX = 2^47 - 4096; the stack top sits just
# below it and mmap_base one 128 MiB gap below the stack.
TASK_SIZE = (1 << 47) - PAGE_SIZE
STACK_TOP = TASK_SIZE
STACK_LIMIT_BYTES = 8 << 20            # RLIMIT_STACK default
MMAP_GAP_BYTES = 128 << 20
MMAP_BASE = STACK_TOP - MMAP_GAP_BYTES
MMAP_MIN_ADDR = 0x10000                 # vm.mmap_min_addr
# Where Linux loads an ET_DYN program without an interpreter (ELF_ET_DYN_BASE, no ASLR).
ELF_ET_DYN_BASE = 0x555555554000

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_STACK = 0x20000
MAP_FIXED_NOREPLACE = 0x100000

_ctx_ids = itertools.count(1)


def page_align_down(value: int) -> int:
    return value & ~(PAGE_SIZE - 1)


def page_align_up(value: int) -> int:
    return (value + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass
class VMA:
    """A virtual memory area: a page-aligned range with one protection, flags and name."""

    start: int
    end: int            # exclusive
    prot: int
    flags: int
    name: str = ""
    accounted: bool = False     # charged to the commitment (VM_ACCOUNT), see FrameAllocator
    # A shared object whose pages this VMA maps (vm_file: a SysV segment,
    # emu_x86/kernel/ipc/shm.py), from its page ``pgoff`` on. It provides the frames
    # (``get_frame(index)``) and counts the VMAs mapping it (vm_ops open/close).
    backing: object = None
    pgoff: int = 0
    # mlock (emu_x86/kernel/mm/mlock.py): VM_LOCKED / VM_LOCKONFAULT bits, 0 when not
    # locked; mseal (emu_x86/kernel/mm/mseal.py): VM_SEALED, never cleared.
    locked: int = 0
    sealed: bool = False

    def piece(self, start: int, end: int) -> VMA:
        """The part [start, end) of this VMA (split_vma), same backing at the matching offset."""
        return VMA(start, end, self.prot, self.flags, self.name, self.accounted, self.backing,
                   self.pgoff + (start - self.start) // PAGE_SIZE, self.locked, self.sealed)

    def __contains__(self, vaddr: int) -> bool:
        return self.start <= vaddr < self.end


class MmStruct:
    """Fields: ``pagetables`` (owned here), ``vmas`` (sorted by start),
    ``start_brk``/``brk`` (the heap), ``ctx_id`` (never reused, as Linux's
    mm->context.ctx_id), ``cpus`` (CPU numbers that have this mm loaded: the
    mm_cpumask, maintained by the scheduler), ``mm_users`` (tasks using it;
    the last ``Kernel.mmput`` tears it down)."""

    def __init__(self, frames: FrameAllocator):
        self.frames = frames
        self.memory = frames.memory
        self.pagetables = PageTables(frames)
        self.vmas: list[VMA] = []
        self._starts: list[int] = []
        self.start_brk = 0
        self.brk = 0
        self.ctx_id = next(_ctx_ids)
        self.cpus: set[int] = set()
        self.mm_users = 1    # tasks using this mm (kernel/fork.py, Kernel.mmput)
        # arch/x86/mm/tlb.c state (emu_x86/kernel/mm/tlb.py): the page-table generation,
        # mm_count (users' reference + lazy CPUs' references), a global ASID
        # when INVLPGB flushes it.
        self.tlb_gen = 0
        self.mm_count = 1
        self.global_asid: int | None = None
        self.page_faults = 0
        self.spurious_faults = 0   # #PF from a stale TLB entry the PTE no longer justifies
        self.cow_copies = 0        # write faults that copied a shared page (kernel/mm/cow.py)
        self.cow_reuses = 0        # write faults that found the page no longer shared
        # Tasks whose write fault waits for a fork's TLB flush of this mm (None:
        # no fork in flight). dup_mmap holds the mmap and VMA write locks until
        # its flush_tlb_mm is done, so no copy-on-write copy is made while
        # another CPU may still write through a stale writable translation.
        self.fork_flush_waiters: list | None = None
        self.tlb_flush_hook = None   # set by the kernel: (mm, start, end) -> None
        # emu_x86/kernel/membarrier.py: registrations (mm->membarrier_state bits).
        self.membarrier_state = 0
        # emu_x86/kernel/rseq.py: the concurrency ids of this mm's tasks, per CPU (mm->pcpu_cid).
        self.pcpu_cid: dict[int, int] = {}
        # emu_x86/kernel/ipc/shm.py: SysV segments attached here, by start address.
        self.shm_attachments: dict = {}
        # arch/x86 modify_ldt (emu_x86/kernel/ldt.py): the LDT's 8-byte descriptors, or None.
        self.ldt: list[bytes] | None = None
        self.code_change_hook = None  # set by the kernel: (mm, start, end) -> None
        # Where exec mapped the vDSO (mm->context.vdso; emu_x86/kernel/vdso/), 0: none.
        self.vdso_base = 0
        self.vdso_clock_block = 0   # the vDSO block that reads the clock word (kernel/vdso/)
        # emu_x86/kernel/exec.py ExecLayout: code/data/stack/argument bounds and the auxv (/proc).
        self.exec_layout = None
        # mm->def_flags' VM_LOCKED/VM_LOCKONFAULT: mlockall(MCL_FUTURE) locks new mappings.
        self.def_locked = 0

    @property
    def pgd(self) -> int:
        return self.pagetables.pgd

    # ---- VMAs -------------------------------------------------------------

    def find_vma(self, vaddr: int) -> VMA | None:
        index = bisect.bisect_right(self._starts, vaddr) - 1
        if index >= 0 and vaddr < self.vmas[index].end:
            return self.vmas[index]
        return None

    def _insert_vma(self, vma: VMA) -> None:
        index = bisect.bisect_left(self._starts, vma.start)
        self.vmas.insert(index, vma)
        self._starts.insert(index, vma.start)
        if vma.backing is not None:
            vma.backing.vma_open(self, vma)

    def _remove_vma(self, vma: VMA) -> None:
        index = self.vmas.index(vma)
        del self.vmas[index]
        del self._starts[index]
        if vma.backing is not None:
            vma.backing.vma_close(self, vma)

    def range_is_free(self, start: int, end: int) -> bool:
        index = bisect.bisect_left(self._starts, end) - 1
        return index < 0 or self.vmas[index].end <= start

    def get_unmapped_area(self, length: int, hint: int = 0) -> int:
        """Top-down search below MMAP_BASE, as arch_get_unmapped_area_topdown."""
        if hint:
            hint = page_align_up(hint)
            if MMAP_MIN_ADDR <= hint and hint + length <= TASK_SIZE and self.range_is_free(hint, hint + length):
                return hint
        candidate_end = MMAP_BASE
        for vma in reversed(self.vmas):
            if vma.start >= candidate_end:
                continue
            if vma.end <= candidate_end - length:
                break
            candidate_end = min(candidate_end, vma.start)
        start = candidate_end - length
        if start < MMAP_MIN_ADDR or not self.range_is_free(start, start + length):
            raise SyscallError(ENOMEM)
        return start

    def add_vma(self, start: int, end: int, prot: int, flags: int, name: str = "", backing: object = None,
                pgoff: int = 0) -> VMA:
        """Map [start, end) replacing anything there (MAP_FIXED semantics).

        A writable private mapping is charged to the commitment first, after the
        old mappings are gone, as mmap_region does: -ENOMEM when the overcommit
        policy refuses (MAP_NORESERVE is exempt unless the policy is strict)."""
        self.unmap_range(start, end)
        accounted = self._accountable(prot, flags)
        if accounted and not self.frames.vm_enough_memory((end - start) // PAGE_SIZE):
            raise SyscallError(ENOMEM)
        vma = VMA(start, end, prot, flags, name, accounted, backing, pgoff, locked=self.def_locked)
        self._insert_vma(vma)
        return vma

    def _accountable(self, prot: int, flags: int) -> bool:
        """mm/mmap.c accountable_mapping: private (or anonymous shared) and writable."""
        if not prot & PROT_WRITE:
            return False
        return not (flags & MAP_NORESERVE and self.frames.overcommit_policy != OVERCOMMIT_NEVER)

    def expand_vma(self, vma: VMA, new_end: int) -> None:
        """Grow ``vma`` in place to ``new_end`` (brk, mremap), charging the new pages."""
        if vma.accounted and not self.frames.vm_enough_memory((new_end - vma.end) // PAGE_SIZE):
            raise SyscallError(ENOMEM)
        vma.end = new_end

    def _split_vmas(self, start: int, end: int) -> list[VMA]:
        """Split VMAs at start and end; return the VMAs fully inside [start, end)."""
        inside = []
        for vma in list(self.vmas):
            if vma.end <= start or vma.start >= end:
                continue
            if vma.start < start:
                # New pieces open before the old VMA closes, so a backing
                # object never sees its mapping count reach zero mid-split.
                head, tail = vma.piece(vma.start, start), vma.piece(start, vma.end)
                self._insert_vma(head)
                self._remove_vma(vma)
                vma = tail
                self._insert_vma(vma)
            if vma.end > end:
                head, tail = vma.piece(vma.start, end), vma.piece(end, vma.end)
                self._insert_vma(tail)
                self._remove_vma(vma)
                vma = head
                self._insert_vma(vma)
            inside.append(vma)
        return inside

    def unmap_range(self, start: int, end: int) -> None:
        removed = self._split_vmas(start, end)
        if not removed:
            return
        if any(vma.prot & PROT_EXEC for vma in removed) and self.code_change_hook is not None:
            self.code_change_hook(self, start, end)
        for vma in removed:
            self._remove_vma(vma)
            if vma.accounted:
                self.frames.vm_unacct_memory((vma.end - vma.start) // PAGE_SIZE)
        # mmu_gather: clear the PTEs now, free the frames only once no TLB
        # can still reach them (after the shootdown completed everywhere).
        cleared = False
        gathered = []
        for vaddr, entry in list(self.pagetables.entries(start, end)):
            self.pagetables.clear_entry(vaddr)
            if entry & PHYS_ADDR_MASK:
                gathered.append(entry & PHYS_ADDR_MASK)
            cleared = True
        if cleared:
            self.flush_tlb_range(start, end, on_flushed=lambda: self._free_frames(gathered))

    def _free_frames(self, frames: list[int]) -> None:
        for frame in frames:
            self.frames.free(frame)

    def mprotect(self, start: int, end: int, prot: int) -> None:
        addr = start
        if prot & PROT_EXEC and self.code_change_hook is not None:
            self.code_change_hook(self, start, end)
        inside = sorted(self._split_vmas(start, end), key=lambda v: v.start)
        if prot & PROT_WRITE:
            # mprotect_fixup: a private mapping made writable is charged now (and stays so).
            newly = [vma for vma in inside if not vma.accounted and self._accountable(prot, vma.flags)]
            if not self.frames.vm_enough_memory(sum(vma.end - vma.start for vma in newly) // PAGE_SIZE):
                raise SyscallError(ENOMEM)
            for vma in newly:
                vma.accounted = True
        for vma in inside:
            if vma.start > addr:
                raise SyscallError(ENOMEM)
            addr = vma.end
            vma.prot = prot
        if addr < end:
            raise SyscallError(ENOMEM)
        changed = False
        for vaddr, entry in list(self.pagetables.entries(start, end)):
            # PROT_NONE keeps the frame in a non-present entry, so a later
            # mprotect back to readable finds the same contents (Linux keeps
            # such pages with _PAGE_PROTNONE for the same reason).
            new_entry = (entry & PHYS_ADDR_MASK) | pte_flags_for_prot(prot) | (entry & PTE_DIRTY)
            new_entry = self._keep_cow_write_protected(vaddr, new_entry)
            if new_entry != entry:
                self.pagetables.set_entry(vaddr, new_entry)
                changed = True
        if changed:
            self.flush_tlb_range(start, end)

    def _keep_cow_write_protected(self, vaddr: int, entry: int) -> int:
        """A private page still shared after fork stays read-only, so the
        first write copies it (emu_x86/kernel/mm/cow.py)."""
        if entry & PTE_WRITABLE and self.frames.page_count(entry & PHYS_ADDR_MASK) > 1:
            vma = self.find_vma(vaddr)
            if vma is None or not vma.flags & MAP_SHARED:
                return entry & ~PTE_WRITABLE
        return entry

    def flush_tlb_range(self, start: int, end: int, on_flushed=None) -> None:
        """PTEs in [start, end) changed: have every TLB drop them, then call ``on_flushed()``."""
        if self.tlb_flush_hook is not None:
            self.tlb_flush_hook(self, start, end, on_flushed)
        elif on_flushed is not None:
            on_flushed()

    # ---- populating ---------------------------------------------------------

    def populate(self, vaddr: int, prot: int) -> int:
        """Back the page at ``vaddr`` with a zeroed frame; return its physical address."""
        entry = self.pagetables.lookup(vaddr)
        frame = entry & PHYS_ADDR_MASK
        if not frame:
            vma = self.find_vma(vaddr)
            try:
                if vma is not None and vma.backing is not None:
                    # A page of a shared object: its frame, one more reference for this PTE.
                    frame = vma.backing.get_frame(vma.pgoff + (page_align_down(vaddr) - vma.start) // PAGE_SIZE)
                    self.frames.get(frame)
                else:
                    frame = self.frames.alloc()
            except OutOfMemory:
                raise SyscallError(ENOMEM) from None
        self.pagetables.set_entry(vaddr, self._keep_cow_write_protected(vaddr, frame | pte_flags_for_prot(prot)))
        return frame

    def write_initial(self, vaddr: int, data: bytes) -> None:
        """Write bytes into pages already populated (exec time, no permission checks)."""
        offset = 0
        while offset < len(data):
            page = page_align_down(vaddr + offset)
            entry = self.pagetables.lookup(page)
            frame = entry & PHYS_ADDR_MASK
            if not frame:
                raise RuntimeError(f"write_initial to unpopulated page {page:#x}")
            in_page = (vaddr + offset) - page
            chunk = min(len(data) - offset, PAGE_SIZE - in_page)
            self.memory.write(frame + in_page, data[offset:offset + chunk])
            offset += chunk

    # ---- faults -------------------------------------------------------------

    def handle_page_fault(self, vaddr: int, error_code: int) -> bool:
        """Resolve a user #PF (do_user_addr_fault). True: retry the instruction.
        False: the access is invalid and the task gets SIGSEGV."""
        vma = self.find_vma(vaddr)
        if vma is None:
            return False
        if error_code & PF_WRITE and not vma.prot & PROT_WRITE:
            return False
        if error_code & PF_INSTR and not vma.prot & PROT_EXEC:
            return False
        if not error_code & (PF_WRITE | PF_INSTR) and not vma.prot & PROT_READ:
            return False
        if error_code & PF_PRESENT:
            # A write to a page fork left write-protected: copy-on-write.
            if error_code & PF_WRITE and do_wp_page(self, vaddr):
                return True
            # Present page, permitted by the VMA. If the PTE allows the access
            # now, the fault came from a stale TLB entry (a PTE relaxed without
            # a flush): the #PF already dropped that entry, so retrying is
            # enough -- handle_pte_fault's spurious-fault case. Otherwise the
            # PTE disagrees with the VMA: refuse rather than loop.
            access = ACCESS_WRITE if error_code & PF_WRITE else (
                ACCESS_FETCH if error_code & PF_INSTR else ACCESS_READ)
            try:
                walk(self.memory, self.pgd, vaddr, access, user_mode=True)
            except PF:
                return False
            self.spurious_faults += 1
            return True
        try:
            self.populate(page_align_down(vaddr), vma.prot)
        except SyscallError:
            raise OutOfMemory() from None
        self.page_faults += 1
        return True

    def fault_code(self, vaddr: int) -> int:
        """si_code for SIGSEGV at ``vaddr``: SEGV_MAPERR outside any VMA, else SEGV_ACCERR."""
        from emu_x86.kernel.signals import SEGV_ACCERR, SEGV_MAPERR
        return SEGV_ACCERR if self.find_vma(vaddr) else SEGV_MAPERR

    # ---- uaccess --------------------------------------------------------------

    def _user_paddr(self, vaddr: int, write: bool) -> int:
        access = ACCESS_WRITE if write else ACCESS_READ
        for _attempt in range(2):
            try:
                return walk_paddr(self.memory, self.pgd, vaddr, access, user_mode=True)
            except PF as fault:
                if vaddr >= TASK_SIZE or not self.handle_page_fault(vaddr, fault.error_code):
                    raise SyscallError(EFAULT) from None
            except OutOfMemory:
                raise SyscallError(EFAULT) from None
        raise SyscallError(EFAULT)

    def pin_user_pages(self, vaddr: int, length: int, write: bool) -> list[int]:
        """get_user_pages: fault in every page of [vaddr, vaddr + length) for
        reading (or writing) and return their physical frames; EFAULT if one is
        not accessible that way."""
        if length <= 0:
            return []
        if vaddr < 0 or vaddr + length > TASK_SIZE:
            raise SyscallError(EFAULT)
        first, last = page_align_down(vaddr), page_align_down(vaddr + length - 1)
        return [self._user_paddr(page, write) for page in range(first, last + 1, PAGE_SIZE)]

    def copy_from_user(self, vaddr: int, size: int) -> bytes:
        if size < 0 or vaddr < 0 or vaddr + size > TASK_SIZE:
            raise SyscallError(EFAULT)
        if 0 < size <= PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)):
            # Within one page (a u64, an rseq_cs): one walk, one slice.
            paddr = self._user_paddr(vaddr, write=False)
            return bytes(self.memory.view[paddr:paddr + size])
        out = bytearray()
        while size > 0:
            chunk = min(size, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            paddr = self._user_paddr(vaddr, write=False)
            out += self.memory.view[paddr:paddr + chunk]
            vaddr += chunk
            size -= chunk
        return bytes(out)

    def get_user_u64(self, vaddr: int) -> int:
        """get_user of a little-endian u64: ``copy_from_user(vaddr, 8)`` as an
        integer (the same walk and faults), without the bytes in between."""
        if 0 <= vaddr and vaddr + 8 <= TASK_SIZE and (vaddr & (PAGE_SIZE - 1)) <= PAGE_SIZE - 8:
            return self.memory.read_u64(self._user_paddr(vaddr, write=False))
        return int.from_bytes(self.copy_from_user(vaddr, 8), "little")

    def copy_to_user(self, vaddr: int, data: bytes) -> None:
        size = len(data)
        if vaddr < 0 or vaddr + size > TASK_SIZE:
            raise SyscallError(EFAULT)
        offset = 0
        while offset < size:
            chunk = min(size - offset, PAGE_SIZE - ((vaddr + offset) & (PAGE_SIZE - 1)))
            paddr = self._user_paddr(vaddr + offset, write=True)
            self.memory.view[paddr:paddr + chunk] = data[offset:offset + chunk]
            offset += chunk

    def strncpy_from_user(self, vaddr: int, max_bytes: int) -> bytes:
        """The NUL-terminated string at ``vaddr`` (without the NUL); EFAULT if unreadable,
        ENAMETOOLONG-style truncation is the caller's business."""
        out = bytearray()
        while len(out) < max_bytes:
            chunk = min(max_bytes - len(out), PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            data = self.copy_from_user(vaddr, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                return bytes(out)
            out += data
            vaddr += chunk
        return bytes(out)

    # ---- teardown ---------------------------------------------------------------

    def destroy(self) -> None:
        for vma in list(self.vmas):
            if vma.accounted:
                self.frames.vm_unacct_memory((vma.end - vma.start) // PAGE_SIZE)
            for vaddr, entry in list(self.pagetables.entries(vma.start, vma.end)):
                frame = entry & PHYS_ADDR_MASK
                if frame:
                    self.frames.free(frame)
        backed = [vma for vma in self.vmas if vma.backing is not None]
        self.vmas.clear()
        self._starts.clear()
        self.pagetables.destroy()
        for vma in backed:
            vma.backing.vma_close(self, vma)


def check_user_range(addr: int, length: int) -> None:
    if addr & (PAGE_SIZE - 1) or length < 0 or addr + length > TASK_SIZE:
        raise SyscallError(EINVAL)
