"""TLB management as arch/x86/mm/tlb.c does it, plus the alternatives argued on the lists.

- **ASIDs with PCID** (choose_new_asid, switch_mm_irqs_off): each CPU has
  ``nr_dyn_asids`` slots (TLB_NR_DYN_ASIDS, 6) remembering (ctx_id, tlb_gen)
  of the mm last run in them, handed out round robin (next_asid). The PCID
  in CR3 is ASID + 1 (PCID 0 stays for PCID-unaware code). Switching to an mm
  whose slot is still there loads CR3 with the no-flush bit, and flushes only
  if the slot's tlb_gen is behind the mm's.
- **The tlb_gen protocol** (flush_tlb_mm_range, flush_tlb_func): a change to
  an mm's page tables bumps ``mm.tlb_gen``; the CPU making it flushes locally
  (INVLPG per page up to ``tlb_single_page_flush_ceiling`` pages, else a full
  flush) and IPIs every other CPU in ``mm.cpus`` (mm_cpumask) and waits; a CPU
  already at the new generation skips the work; CPUs not running the mm catch
  up from the generation when they switch back. Lazy CPUs are skipped unless
  page tables were freed, in which case they switch to ``init_mm``.
  Frames are freed only after the flush completed everywhere (mmu_gather).
- **Lazy TLB** (``lazy_tlb=``): an idle CPU keeps the last mm loaded.
  ``refcount`` takes a reference (mmgrab_lazy_tlb) on going idle and drops
  it on leaving -- two atomics on a shared cache line; ``shootdown``
  (MMU_LAZY_TLB_SHOOTDOWN) takes none and, when the mm dies, IPIs the CPUs
  that may hold it to switch to init_mm; ``hazard`` (Lutomirski's 2022
  proposal) publishes a per-CPU pointer with a plain store and, when the mm
  dies, scans every CPU's pointer, turning hits into real references.
- **Flush transport** (``tlb_flush=``): ``ipi``, or ``invlpgb`` -- an mm
  active on more than 3 CPUs gets a global ASID (the same PCID on every CPU)
  and is flushed with INVLPGB + TLBSYNC instead of IPIs (the 2025 series);
  ``auto`` picks invlpgb when the CPU has it.
- **Per-CPU PGDs** (``percpu_pgd=on``): CR3 points at a top-level table per
  (CPU, ASID), allocated when the slot is given to an mm with only the
  kernel half copied; user top-level entries are faulted in lazily from the
  mm's own PGD, counting copies and extra faults.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PTE_PRESENT
from emu_x86.kernel.mm.mm import MmStruct

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

TLB_FLUSH_ALL = -1
CR3_NOFLUSH = 1 << 63
# An mm active on more CPUs than this gets a global ASID in invlpgb mode
# (mm_active_cpus_exceeds(mm, 3) in consider_global_asid).
GLOBAL_ASID_CPU_THRESHOLD = 3
# PCIDs are 12 bits; Linux keeps bit 11 for PTI's user half.
MAX_ASID_AVAILABLE = (1 << 11) - 2
PGD_ENTRIES = 512
KERNEL_PGD_FIRST = 256      # entries 256-511 map the kernel half


@dataclass
class TlbContext:
    """One dynamic-ASID slot of a CPU (struct tlb_context)."""
    ctx_id: int = 0
    tlb_gen: int = 0


@dataclass
class CpuTlbState:
    """Per-CPU TLB state (cpu_tlbstate)."""
    ctxs: list[TlbContext]
    loaded_mm: MmStruct | None = None
    loaded_mm_asid: int = 0
    is_lazy: bool = False
    next_asid: int = 1
    # lazy_tlb=refcount/hazard: the mm this CPU holds a real reference to
    # while lazy (hazard: only after a teardown scan converted its pointer).
    lazy_reference: MmStruct | None = None
    # lazy_tlb=hazard: the per-CPU hazard pointer (a plain store).
    lazy_hazard: MmStruct | None = None
    # percpu_pgd=on: the top-level table frame of each ASID slot.
    percpu_pgds: dict[int, int] = field(default_factory=dict)


@dataclass
class FlushTlbInfo:
    """What one flush asks every CPU to do (struct flush_tlb_info)."""
    mm: MmStruct
    start: int
    end: int                # TLB_FLUSH_ALL: the whole address space
    new_tlb_gen: int
    freed_tables: bool
    initiating_cpu: int


def kern_pcid(asid: int) -> int:
    """PCID for an ASID: +1 so that PCID 0 stays for PCID-unaware code."""
    return asid + 1


class TlbManager:
    """The kernel's TLB policy; one per Kernel. Counters go to ``kernel.counters``."""

    def __init__(self, kernel: "Kernel", params: dict):
        self.kernel = kernel
        self.machine = kernel.machine
        self.counters = kernel.counters
        self.nr_dyn_asids = params["nr_dyn_asids"]
        self.flush_ceiling = params["tlb_single_page_flush_ceiling"]
        self.lazy_scheme = params["lazy_tlb"]
        self.remote_flush_enabled = params["tlb_remote_flush"]
        self.percpu_pgd = params["percpu_pgd"]
        vcpu0 = self.machine.vcpus[0]
        self.use_pcid = not params["nopcid"]
        transport = params["tlb_flush"]
        has_invlpgb = vcpu0.cpu_model.invlpgb
        if transport == "invlpgb" and not has_invlpgb:
            from emu_x86.kernel.cmdline import CmdlineError
            # INVLPGB/TLBSYNC came with Zen 3 (AMD APM Vol. 3; CPUID Fn8000_0008 EBX[3]).
            raise CmdlineError(f"tlb_flush=invlpgb needs a CPU with INVLPGB (profile "
                               f"{self.machine.profile.name!r} has none; try --profile zen3, zen4 or zen5)")
        self.use_invlpgb = transport == "invlpgb" or (transport == "auto" and has_invlpgb)
        if self.use_invlpgb and not self.use_pcid:
            from emu_x86.kernel.cmdline import CmdlineError
            raise CmdlineError("tlb_flush=invlpgb needs PCIDs (drop nopcid)")
        self.cpu_state = [CpuTlbState(ctxs=[TlbContext() for _ in range(self.nr_dyn_asids)])
                          for _ in self.machine.vcpus]
        # Global ASIDs live above the dynamic ones; freed ones are reusable
        # only after every TLB has dropped their entries (reset_global_asid_space).
        self.next_global_asid = self.nr_dyn_asids
        self.free_global_asids: list[int] = []
        self.freed_global_asids: list[int] = []
        self.invlpgb_max_pages = 8
        # init_mm: the kernel-only address space a lazy CPU falls back to.
        self.init_mm = MmStruct(kernel.frames)
        for vcpu in self.machine.vcpus:
            if self.use_pcid:
                vcpu.set_cr4_pcide(True)
            self._load_cr3(vcpu, self.init_mm.pgd, 0, need_flush=True)
            self.cpu_state[vcpu.index].loaded_mm = self.init_mm
            self.cpu_state[vcpu.index].ctxs[0] = TlbContext(self.init_mm.ctx_id, 0)

    # ---- CR3 ---------------------------------------------------------------

    def _load_cr3(self, vcpu: "VCpu", pgd: int, asid: int, need_flush: bool) -> None:
        """load_new_mm_cr3: the PGD with kPCID, and the no-flush bit when the slot is current."""
        if not self.use_pcid:
            vcpu.write_cr3(pgd)
            return
        vcpu.write_cr3(pgd | kern_pcid(asid) | (0 if need_flush else CR3_NOFLUSH))

    def _pgd_for(self, vcpu: "VCpu", mm: MmStruct, asid: int, new_slot: bool) -> int:
        if not self.percpu_pgd or mm is self.init_mm:
            return mm.pgd
        state = self.cpu_state[vcpu.index]
        frame = state.percpu_pgds.get(asid)
        if frame is None or new_slot:
            if frame is None:
                frame = self.kernel.frames.alloc()
                state.percpu_pgds[asid] = frame
            # A fresh top level: the kernel half copied, user entries faulted in lazily.
            memory = self.kernel.frames.memory
            half = KERNEL_PGD_FIRST * 8
            memory.write(frame, bytes(half) + memory.read(mm.pgd + half, PAGE_SIZE - half))
            self.counters["percpu_pgd_copies"] += 1
            vcpu.charge_event("page_copy")
        return frame

    def percpu_pgd_fault(self, vcpu: "VCpu", mm: MmStruct, vaddr: int) -> bool:
        """A #PF whose cause is only a missing top-level entry in this CPU's PGD
        copy: copy that one entry from the mm's PGD. True: retry the access."""
        if not self.percpu_pgd:
            return False
        state = self.cpu_state[vcpu.index]
        if state.loaded_mm is not mm:
            return False
        frame = state.percpu_pgds.get(state.loaded_mm_asid)
        if frame is None:
            return False
        memory = self.kernel.frames.memory
        offset = ((vaddr >> 39) & 0x1FF) * 8
        master = int.from_bytes(memory.read(mm.pgd + offset, 8), "little")
        local = int.from_bytes(memory.read(frame + offset, 8), "little")
        # Only a missing entry is this fault's cause (the walker sets Accessed
        # in the copy, so the two may differ in A/D bits legitimately).
        if not master & PTE_PRESENT or local & PTE_PRESENT:
            return False
        memory.write(frame + offset, master.to_bytes(8, "little"))
        self.counters["percpu_pgd_faults"] += 1
        return True

    # ---- ASIDs -------------------------------------------------------------

    def choose_new_asid(self, state: CpuTlbState, mm: MmStruct, next_tlb_gen: int) -> tuple[int, bool]:
        """(asid, need_flush) for running ``mm`` on this CPU."""
        if not self.use_pcid:
            return 0, True
        if mm.global_asid is not None:
            # INVLPGB keeps the global PCID current on every CPU.
            return mm.global_asid, False
        for asid, context in enumerate(state.ctxs):
            if context.ctx_id == mm.ctx_id:
                return asid, context.tlb_gen < next_tlb_gen
        asid = state.next_asid
        state.next_asid += 1
        if asid >= self.nr_dyn_asids:
            asid, state.next_asid = 0, 1
        self.counters["asid_allocations"] += 1
        return asid, True

    def _remember(self, state: CpuTlbState, asid: int, mm: MmStruct, tlb_gen: int) -> None:
        if asid < self.nr_dyn_asids:
            state.ctxs[asid] = TlbContext(mm.ctx_id, tlb_gen)

    # ---- switching -----------------------------------------------------------

    def switch_mm_irqs_off(self, vcpu: "VCpu", next_mm: MmStruct) -> None:
        """Make ``next_mm`` this CPU's address space (arch/x86/mm/tlb.c)."""
        state = self.cpu_state[vcpu.index]
        prev = state.loaded_mm
        was_lazy = state.is_lazy
        if was_lazy:
            self._leave_lazy(vcpu, state)
        if prev is next_mm and next_mm.global_asid is not None and state.loaded_mm_asid != next_mm.global_asid:
            prev = None     # finish the move to the mm's global ASID
        if prev is next_mm:
            if not was_lazy or next_mm.global_asid is not None:
                return
            # Back from lazy mode: flushes may have skipped this CPU; catch up by generation.
            context = state.ctxs[state.loaded_mm_asid] if state.loaded_mm_asid < self.nr_dyn_asids else None
            next_tlb_gen = next_mm.tlb_gen
            if context is not None and context.tlb_gen >= next_tlb_gen:
                return
            vcpu.flush_tlb()
            self.counters["tlb_flushes"] += 1
            self._remember(state, state.loaded_mm_asid, next_mm, next_tlb_gen)
            return
        next_mm.cpus.add(vcpu.index)
        next_tlb_gen = next_mm.tlb_gen
        asid, need_flush = self.choose_new_asid(state, next_mm, next_tlb_gen)
        new_slot = need_flush and not any(c.ctx_id == next_mm.ctx_id for c in state.ctxs)
        self._remember(state, asid, next_mm, next_tlb_gen)
        self._load_cr3(vcpu, self._pgd_for(vcpu, next_mm, asid, new_slot), asid, need_flush)
        if need_flush:
            self.counters["tlb_flushes"] += 1
        state.loaded_mm = next_mm
        state.loaded_mm_asid = asid

    def switch_to_init_mm(self, vcpu: "VCpu") -> None:
        self.switch_mm_irqs_off(vcpu, self.init_mm)

    def enter_lazy_tlb(self, vcpu: "VCpu") -> None:
        """The CPU goes idle keeping its mm loaded (enter_lazy_tlb + the
        scheduler's lazy active_mm handling for the chosen scheme)."""
        state = self.cpu_state[vcpu.index]
        mm = state.loaded_mm
        if state.is_lazy or mm is None or mm is self.init_mm:
            return
        state.is_lazy = True
        if self.lazy_scheme == "refcount":
            self._mm_atomic(vcpu, mm, +1)                # mmgrab_lazy_tlb
            state.lazy_reference = mm
        elif self.lazy_scheme == "hazard":
            state.lazy_hazard = mm                       # a plain per-CPU store

    def _leave_lazy(self, vcpu: "VCpu", state: CpuTlbState) -> None:
        state.is_lazy = False
        state.lazy_hazard = None
        if state.lazy_reference is not None:
            mm, state.lazy_reference = state.lazy_reference, None
            self._mm_atomic(vcpu, mm, -1)                # mmdrop_lazy_tlb in finish_task_switch
            if mm.mm_count == 0:
                self._free_mm(vcpu, mm)

    def _mm_atomic(self, vcpu: "VCpu", mm: MmStruct, delta: int) -> None:
        """An atomic on mm->mm_count: a cache line bounced between CPUs."""
        mm.mm_count += delta
        self.counters["mm_refcount_atomics"] += 1
        vcpu.charge(self.machine.profile.event_cycles("mm_refcount_atomic"))

    # ---- flushing ------------------------------------------------------------

    def flush_tlb_mm_range(self, vcpu: "VCpu | None", mm: MmStruct, start: int, end: int,
                           freed_tables: bool = False, on_flushed: Callable[[], None] | None = None) -> None:
        """Page-table entries of ``mm`` in [start, end) changed: flush them
        everywhere, then run ``on_flushed`` (free the frames: tlb_finish_mmu)."""
        if vcpu is None:
            vcpu = self.machine.vcpus[0]
        mm.tlb_gen += 1
        new_tlb_gen = mm.tlb_gen
        if end != TLB_FLUSH_ALL and (end - start) // PAGE_SIZE > self.flush_ceiling:
            start, end = 0, TLB_FLUSH_ALL
        info = FlushTlbInfo(mm, start, end, new_tlb_gen, freed_tables, vcpu.index)
        self.counters["tlb_shootdowns"] += 1
        if self.use_invlpgb:
            self.consider_global_asid(mm)
            if mm.global_asid is not None:
                self.broadcast_tlb_flush(vcpu, info)
                state = self.cpu_state[vcpu.index]
                if state.loaded_mm is mm and state.loaded_mm_asid != mm.global_asid:
                    # This CPU still runs the mm on a dynamic ASID, which the
                    # broadcast for the global PCID does not reach: move it over.
                    self.flush_tlb_func(vcpu, info)
                stragglers = [cpu for cpu in sorted(mm.cpus) if cpu != vcpu.index
                              and self.cpu_state[cpu].loaded_mm is mm
                              and self.cpu_state[cpu].loaded_mm_asid != mm.global_asid]
                # CPUs still on a dynamic ASID (the transition to the global
                # one happens at their next switch) need the IPI path.
                self._flush_remote(vcpu, info, stragglers, on_flushed)
                return
        if self.cpu_state[vcpu.index].loaded_mm is mm:
            self.flush_tlb_func(vcpu, info)
        targets = [cpu for cpu in sorted(mm.cpus) if cpu != vcpu.index]
        if not freed_tables:
            # should_flush_tlb: a lazy CPU catches up when it switches back.
            targets = [cpu for cpu in targets if not self.cpu_state[cpu].is_lazy]
        self._flush_remote(vcpu, info, targets, on_flushed)

    def _flush_remote(self, vcpu: "VCpu", info: FlushTlbInfo, targets: list[int],
                      on_flushed: Callable[[], None] | None) -> None:
        if not self.remote_flush_enabled:
            targets = []
        if targets:
            self.counters["tlb_flush_ipis"] += len(targets)
            self.kernel.smp_call_function_many(vcpu, targets, lambda target: self.flush_tlb_func(target, info),
                                               wait=True, on_complete=on_flushed)
        elif on_flushed is not None:
            on_flushed()

    def flush_tlb_func(self, vcpu: "VCpu", info: FlushTlbInfo) -> None:
        """One CPU brings its TLB up to ``info.mm``'s generation."""
        state = self.cpu_state[vcpu.index]
        mm = info.mm
        if state.loaded_mm is not mm:
            # This CPU switched away since the cpumask said otherwise: trim it.
            mm.cpus.discard(vcpu.index)
            self.counters["tlb_flush_cpumask_trims"] += 1
            return
        if state.is_lazy:
            # Page tables are going away under a lazy CPU: stop using them.
            self.switch_to_init_mm(vcpu)
            self.counters["lazy_tlb_switches_to_init_mm"] += 1
            return
        if mm.global_asid is not None:
            if state.loaded_mm_asid != mm.global_asid:
                # The mm moved to a global ASID while this CPU ran it on a
                # dynamic one: switch over (no flush: INVLPGB has kept the
                # global PCID current here); later flushes need no IPI.
                self._load_cr3(vcpu, self._pgd_for(vcpu, mm, mm.global_asid, False), mm.global_asid,
                               need_flush=False)
                state.loaded_mm_asid = mm.global_asid
                self.counters["global_asid_transitions"] += 1
            return
        asid = state.loaded_mm_asid
        local_tlb_gen = state.ctxs[asid].tlb_gen
        mm_tlb_gen = mm.tlb_gen
        if local_tlb_gen >= mm_tlb_gen:
            self.counters["tlb_flushes_skipped"] += 1
            return
        partial = (info.end != TLB_FLUSH_ALL and info.new_tlb_gen == local_tlb_gen + 1
                   and info.new_tlb_gen == mm_tlb_gen)
        if partial:
            for page in range(info.start & ~(PAGE_SIZE - 1), info.end, PAGE_SIZE):
                vcpu.invlpg(page)
            self.counters["tlb_single_page_flushes"] += (info.end - info.start + PAGE_SIZE - 1) // PAGE_SIZE
        else:
            vcpu.flush_tlb()
        self.counters["tlb_flushes"] += 1
        state.ctxs[asid].tlb_gen = mm_tlb_gen

    # ---- INVLPGB ---------------------------------------------------------------

    def consider_global_asid(self, mm: MmStruct) -> None:
        if mm.global_asid is not None or mm is self.init_mm:
            return
        active = sum(1 for state in self.cpu_state if state.loaded_mm is mm)
        if active <= GLOBAL_ASID_CPU_THRESHOLD:
            return
        if not self.free_global_asids and self.next_global_asid > MAX_ASID_AVAILABLE:
            self._reset_global_asid_space()
        if self.free_global_asids:
            mm.global_asid = self.free_global_asids.pop(0)
        elif self.next_global_asid <= MAX_ASID_AVAILABLE:
            mm.global_asid = self.next_global_asid
            self.next_global_asid += 1
        else:
            return
        self.counters["global_asids"] += 1

    def _reset_global_asid_space(self) -> None:
        """Freed global ASIDs are reused only after every CPU dropped their
        entries: one broadcast flush of all non-global translations."""
        vcpu = self.machine.vcpus[0]
        vcpu.invlpgb(0, 0, 0)
        vcpu.tlbsync()
        self.free_global_asids.extend(sorted(self.freed_global_asids))
        self.freed_global_asids.clear()

    def broadcast_tlb_flush(self, vcpu: "VCpu", info: FlushTlbInfo) -> None:
        """INVLPGB for the mm's global PCID (this CPU included), then TLBSYNC."""
        pcid = kern_pcid(info.mm.global_asid)
        pcid_flag = 1 << 1
        if info.end == TLB_FLUSH_ALL:
            vcpu.invlpgb(pcid_flag, 0, pcid << 16)
        else:
            page = info.start & ~(PAGE_SIZE - 1)
            while page < info.end:
                pages = min(self.invlpgb_max_pages, (info.end - page + PAGE_SIZE - 1) // PAGE_SIZE)
                final_only = 0 if info.freed_tables else 1 << 4
                vcpu.invlpgb(page | 1 | pcid_flag | final_only, pages - 1, pcid << 16)
                page += pages * PAGE_SIZE
        vcpu.tlbsync()
        self.counters["invlpgb_flushes"] += 1

    # ---- mm lifetime -------------------------------------------------------------

    def exit_mmap(self, vcpu: "VCpu", mm: MmStruct, on_flushed: Callable[[], None] | None = None) -> None:
        """The last user of ``mm`` left: its page tables go (free_pgtables), which
        is a flush with freed tables -- lazy CPUs holding it switch to init_mm."""
        self.flush_tlb_mm_range(vcpu, mm, 0, TLB_FLUSH_ALL, freed_tables=True, on_flushed=on_flushed)

    def mmdrop(self, vcpu: "VCpu", mm: MmStruct) -> None:
        """Drop the mm_count reference its users held; the last one frees it."""
        mm.mm_count -= 1
        self.counters["mm_refcount_atomics"] += 1
        vcpu.charge(self.machine.profile.event_cycles("mm_refcount_atomic"))
        if mm.mm_count == 0:
            self._free_mm(vcpu, mm)

    def _free_mm(self, vcpu: "VCpu", mm: MmStruct) -> None:
        """Free the mm itself: first make sure no lazy CPU still uses it."""
        if self.lazy_scheme == "shootdown":
            # cleanup_lazy_tlbs: IPI every CPU that may have it as its lazy mm.
            targets = [cpu for cpu in sorted(mm.cpus) if cpu != vcpu.index]
            if targets:
                self.counters["lazy_tlb_shootdown_ipis"] += len(targets)
                self.kernel.smp_call_function_many(vcpu, targets, lambda target: self._shoot_lazy(target, mm))
            self._shoot_lazy(vcpu, mm)
        elif self.lazy_scheme == "hazard":
            # Scan every CPU's hazard pointer (remote cache lines, no atomics);
            # a hit becomes a real reference the CPU drops when it unlazies.
            for state in self.cpu_state:
                vcpu.charge(self.machine.profile.event_cycles("hazard_pointer_scan"))
                self.counters["hazard_pointer_scans"] += 1
                if state.lazy_hazard is mm and state.lazy_reference is None:
                    state.lazy_reference = mm
                    self._mm_atomic(vcpu, mm, +1)
                    self.counters["hazard_pointer_hits"] += 1
            if mm.mm_count:
                return
        if mm.global_asid is not None:
            self.freed_global_asids.append(mm.global_asid)
            mm.global_asid = None
        for state in self.cpu_state:
            for asid, context in enumerate(state.ctxs):
                if context.ctx_id == mm.ctx_id:
                    state.ctxs[asid] = TlbContext()
        self.counters["mm_freed"] += 1

    def _shoot_lazy(self, vcpu: "VCpu", mm: MmStruct) -> None:
        state = self.cpu_state[vcpu.index]
        if state.loaded_mm is mm and state.is_lazy:
            state.is_lazy = False
            self.switch_to_init_mm(vcpu)
            self.counters["lazy_tlb_switches_to_init_mm"] += 1
