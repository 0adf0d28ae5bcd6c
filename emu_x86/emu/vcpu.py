"""One virtual CPU: a Unicorn instance over the machine's shared physical memory.

Unicorn runs in ``UC_TLB_VIRTUAL`` mode: every fill of Unicorn's own TLB
goes to the C fill hook (emu_x86/emu/mmu/tlb.c), which answers from this vCPU's
PCID-tagged TLB model or walks the page tables at the emulator's CR3
(Unicorn's paging is off). A failed walk records the #PF in the model's
struct and makes Unicorn stop with UC_ERR_EXCEPTION at the faulting
instruction (DESIGN.md, measured). The architected invalidations (MOV CR3,
INVLPG, INVPCID, INVLPGB/TLBSYNC, CR4.PCIDE) are methods here: the kernel's
machine API. SYSCALL, interrupts/faults (UC_HOOK_INTR) and invalid
opcodes likewise stop the vCPU and are delivered to the kernel's
``TrapHandler`` from ``run`` -- one place, after Unicorn has returned, so the
kernel never runs inside a Unicorn callback.

Per-block cycle accounting is the C hot path (emu_x86/emu/timing/hotpath.c),
registered straight with libunicorn so no Python runs per block.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86
from emu_x86.emu import firmware
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.apic import MSR_IA32_TSC_DEADLINE, X2APIC_MSRS, LocalApic
from emu_x86.emu.isa.cpuid import INTEL_SAPPHIRE_RAPIDS, INVLPGB_MAX_PAGES, MODELS_BY_PROFILE, Cpuid
from emu_x86.emu.isa.dispatch import EVENT_COSTS, execute_extension
from emu_x86.emu.isa.prefixes import MAX_INSTRUCTION_BYTES
from emu_x86.emu.isa.xstate import SUPPORTED_USER_MASK, cpuid_leaf_0xd, xinuse as xstate_xinuse
from emu_x86.emu.isa.msr import MsrFile
from emu_x86.emu.isa.state import MSR_IA32_TSC, XFEATURE_MASK_XTILE, ExtendedState
from emu_x86.emu.registers import RegisterFile, RegisterSnapshot, context_handle
from emu_x86.emu.mmu.faultaddr import candidate_addresses, exact_fault_address
from emu_x86.emu.mmu.pagewalk import ACCESS_READ, ACCESS_WRITE, is_canonical
try:
    from emu_x86.emu.timing._hotpath import ffi, lib as hotpath
except ImportError as _error:  # the cffi extension is compiled when the package installs
    raise ImportError("the C hot path emu_x86.emu.timing._hotpath is not built; reinstall the package "
                      "(make test, or pip install -e .) on a machine with a C compiler") from _error
from emu_x86.emu.timing.schedule import FRACTION_BITS
from emu_x86.emu.trace import exception_fields
from emu_x86.emu.translation_abort import aborts_unicorn_translator, find_untranslatable
from emu_x86.emu.unicorn_internals import (
    ReadableMemory, find_cpu_state, find_tlb_view, tlb_flush_page_address, tlb_layout_reason,
)
from emu_x86.emu.traps import (
    DB, GP, PF, PF_INSTR, UD, VECTOR_DB, VECTOR_BP, CpuException, SoftwareInterrupt, SysenterEntry,
    exception_for_vector,
    gp_for_software_interrupt,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.machine import Machine

# The user-visible register file that survives a fault-recovery context
# restore and a task switch. Order matters only for readability.
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_REG_IDS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in GPR_NAMES}
_REG_IDS.update(rip=x86.UC_X86_REG_RIP, rflags=x86.UC_X86_REG_RFLAGS,
                fs_base=x86.UC_X86_REG_FS_BASE, gs_base=x86.UC_X86_REG_GS_BASE,
                mxcsr=x86.UC_X86_REG_MXCSR, fpcw=x86.UC_X86_REG_FPCW,
                fpsw=x86.UC_X86_REG_FPSW, fptag=x86.UC_X86_REG_FPTAG)
for _i in range(16):
    _REG_IDS[f"xmm{_i}"] = getattr(x86, f"UC_X86_REG_XMM{_i}")
# The x87 registers by physical number with all 80 bits (UC_X86_REG_ST* would
# return only the 64-bit mantissa): (mantissa, sign|exponent) tuples.
for _i in range(8):
    _REG_IDS[f"fp{_i}"] = x86.UC_X86_REG_FP0 + _i
REGISTER_IDS = dict(_REG_IDS)
USER_REGISTER_NAMES = tuple(REGISTER_IDS)
# What a task switch keeps as Python values (save_task_registers): the leading
# registers of USER_REGISTER_NAMES up to GS base -- Linux's pt_regs plus
# thread.fsbase/gsbase, the registers the kernel reads and edits while a task
# is off its CPU. The x87/SSE rest stays raw bytes (their state travels in the
# fpstate through XSAVES/XRSTORS).
TASK_REGISTER_NAMES = USER_REGISTER_NAMES[:USER_REGISTER_NAMES.index("gs_base") + 1]

# INVPCID types (SDM Vol. 2A INVPCID).
INVPCID_INDIVIDUAL_ADDRESS = 0
INVPCID_SINGLE_CONTEXT = 1
INVPCID_ALL_INCLUDING_GLOBAL = 2
INVPCID_ALL_NON_GLOBAL = 3
INVPCID_KIND_NAMES = ("invpcid_address", "invpcid_context", "invpcid_all", "invpcid_all_non_global")

# The profile event each TLB-flush kind is charged as (its span on the timeline).
_FLUSH_COST_EVENTS = {"cr3": "cr3_write_flush", "cr3_noflush": "cr3_write_noflush", "invlpg": "invlpg",
                      "invpcid_address": "invpcid_single", "invpcid_context": "invpcid_context",
                      "invpcid_all": "invpcid_all", "invpcid_all_non_global": "invpcid_all"}

RFLAGS_IF = 1 << 9
RFLAGS_TF = 1 << 8
INT_N_OPCODE = 0xCD            # INT imm8
INT_N_BYTES = 2
SYSENTER_BYTES = 2
FIRST_INTERRUPT_VECTOR = 32    # below: exceptions (SDM Vol. 3A Table 6-1)
CR4_TSD = 1 << 2
CR4_OSXSAVE = 1 << 18
RFLAGS_RESERVED_1 = 1 << 1
# The stop reasons ``run`` reports to the machine's scheduler.
STOP_DEADLINE = "deadline"
STOP_TRAP = "trap"
STOP_PREEMPT = "preempt"      # the exploring scheduler's instruction budget ran out

# emu_start's "until" address. Unicorn translates it (and the byte before it)
# through the TLB-fill hook when a run starts, so it must be mapped: a byte in
# the middle of the firmware's GDT page, which is never executed.
_END_ADDRESS = firmware.FIRMWARE_VADDR + firmware.GDT_OFFSET + 0x800
END_ADDRESS = _END_ADDRESS      # for the machine's C loop (Machine._sched)

_uclib = uclib.lib
_uclib.uc_hook_add.restype = ctypes.c_int
hotpath.hotpath_set_emu_stop(ctypes.cast(_uclib.uc_emu_stop, ctypes.c_void_p).value)
hotpath.sched_preempt_set_emu_stop(ctypes.cast(_uclib.uc_emu_stop, ctypes.c_void_p).value)
hotpath.hotpath_set_uc_ctl(ctypes.cast(_uclib.uc_ctl, ctypes.c_void_p).value)
hotpath.hotpath_set_emu_start(ctypes.cast(_uclib.uc_emu_start, ctypes.c_void_p).value)
# One-page flushes of Unicorn's TLB; used by a vCPU only once find_cpu_state
# has validated its CPUState (emu_x86/emu/unicorn_internals.py).
hotpath.hotpath_set_tlb_flush_page(tlb_flush_page_address())
# The softmmu TLB layout probe's answer (a scratch Unicorn, a few ms, run once
# per libunicorn build and then read from where it is kept): here, so the runs
# forked after the imports (emu_x86/emucli/forkserver.py) inherit it.
tlb_layout_reason()
# XSAVES's and XRSTORS's x87/SSE registers in C (emu_x86/emu/isa/xstate_fast.c), in xstate.py's write order.
_XSTATE_LEGACY_REGISTER_IDS = ffi.new("int[]", [REGISTER_IDS[name] for name in (
    "fpcw", "fpsw", "fptag", *(f"fp{i}" for i in range(8)), *(f"xmm{i}" for i in range(16)), "mxcsr")])
hotpath.xstate_fast_set_register_access(ctypes.cast(_uclib.uc_reg_read_batch, ctypes.c_void_p).value,
                                        ctypes.cast(_uclib.uc_reg_write_batch, ctypes.c_void_p).value,
                                        _XSTATE_LEGACY_REGISTER_IDS)
hotpath.amx_fast_set_register_access(ctypes.cast(_uclib.uc_reg_read, ctypes.c_void_p).value,
                                     ctypes.cast(_uclib.uc_reg_write, ctypes.c_void_p).value,
                                     x86.UC_X86_REG_RIP)
# EMU_AMX_FAST_PATH=0 sends every tile dot product through Python
# (tests compare the two paths; VCpu.amx_fast_path is the per-vCPU switch).
AMX_FAST_PATH_DEFAULT = os.environ.get("EMU_AMX_FAST_PATH", "1") != "0"
BLOCK_TABLE_ENTRIES = 1 << 14
# Bound of the refund memo (VCpu._head_prices): cleared whole when full.
HEAD_PRICE_ENTRIES = 1 << 14
# Bound of charge_event's memo of Profile.event_cycles (events x counts seen).
EVENT_CYCLES_MEMO_ENTRIES = 1024
# The gshare predictor's 2-bit counters (a power of two): 4096, Zen 3's
# first-level predictor is larger but this already learns periodic patterns
# up to the 12 bits of history the index mixes in.
PREDICTOR_ENTRIES = 4096

# Every VCpu registers here so the one cffi miss callback finds its owner.
_VCPUS_BY_HANDLE: dict[int, "VCpu"] = {}


def _block_miss_failed(exc_type, exc_value, _traceback) -> None:
    # Pricing must never kill the guest: a block whose bytes cannot be read
    # back (it faulted on fetch anyway) is charged nothing; the fault that
    # follows is delivered normally.
    return None


@ffi.def_extern(onerror=_block_miss_failed)
def hotpath_block_miss(handle: int, address: int, size_bytes: int) -> None:
    vcpu = _VCPUS_BY_HANDLE[handle]
    try:
        instructions, entry_fixed, repeat_fixed, flags = vcpu.machine.price_block(vcpu, address, size_bytes)
    except CpuException:
        instructions, entry_fixed, repeat_fixed, flags = 0, 0, 0, 0
    port_io_blocks = vcpu.machine.port_io_blocks
    if port_io_blocks:
        port_io = port_io_blocks.get((address, size_bytes))
        if port_io is not None and vcpu.stop_before_port_io(address, port_io):
            # Nothing runs or is charged now; the slot stays unmatched, so the
            # block comes back here on every entry.
            hotpath.hotpath_store_block(vcpu.clock, address, 0, 0, 0, 0, 0)
            return
    hotpath.hotpath_store_block(vcpu.clock, address, size_bytes, instructions, entry_fixed, repeat_fixed, flags)


@dataclass
class PendingTrap:
    """A system call or exception a hook saw, acted on when the vCPU next leaves Unicorn."""

    kind: str                       # "syscall" | "exception"
    exception: CpuException | None = None
    # A #PF seen by the TLB-fill hook carries only the page address; the
    # exact CR2 is recomputed from the instruction (mmu/faultaddr.py).
    page_granular_address: bool = False
    # Unicorn left RIP this many bytes past the faulting instruction (INT n
    # that the gate's DPL refuses: a fault, so RIP goes back onto it).
    rewind_bytes: int = 0


_CPUID_INPUTS = ("rax", "rcx")

# Every system call's trap (read, never modified).
SYSCALL_TRAP = PendingTrap("syscall")


class VCpu:
    """A vCPU. Fields: ``index`` (CPU number), ``cr3`` (owned by the kernel
    through ``write_cr3``), ``clock`` (the C hot-path counters: cycles,
    instructions, deadline)."""

    _next_handle = 0

    def __init__(self, machine: "Machine", index: int):
        self.machine = machine
        self.index = index
        self._cr3 = 0
        self.cr4_pcide = False
        self.tlb_flush_counts: dict[str, int] = {}
        self.invlpgb_count = 0
        self.tlbsync_count = 0
        # The clock time by which every INVLPGB this vCPU issued has completed.
        self.invlpgb_complete_at = 0
        self._halted = False
        self.pending: PendingTrap | None = None
        self.event_counts: dict[str, int] = {}
        # Profile.event_cycles(event) of every event, for charge_event's count of one.
        self._event_cycles = {event: machine.profile.event_cycles(event) for event in machine.profile.event_costs}
        self._xsave_cycles: dict[int, int] = {}     # charge_xsave's, by size
        self.xstate = ExtendedState()
        self.msrs = MsrFile(self)
        self.apic = LocalApic(self)
        # Synchronous cross-calls this vCPU waits for (Machine.wait_for_acks):
        # while non-empty the vCPU does not run; ``ack_time_cycles`` is the
        # latest acknowledgement seen so far.
        self.waiting_for_acks: set[int] = set()
        self.ack_time_cycles = 0
        self.on_acks_complete = None
        self.cpu_model = MODELS_BY_PROFILE.get(machine.profile.name, INTEL_SAPPHIRE_RAPIDS)
        self.cpuid = Cpuid(self.cpu_model, index, machine.cpu_count, self.xstate, cpuid_leaf_0xd)
        VCpu._next_handle += 1
        self._handle = VCpu._next_handle
        _VCPUS_BY_HANDLE[self._handle] = self
        self._block_table = ffi.new("struct hotpath_block_cost[]", BLOCK_TABLE_ENTRIES)
        # (block address, size, stop address) -> (instructions, fixed-point
        # cycles) of the block's head before the stop (_refund_unexecuted).
        self._head_prices: dict[tuple[int, int, int], tuple[int, int]] = {}
        self.clock = ffi.new("struct hotpath_vcpu *")
        self.clock.table = self._block_table
        self.clock.table_mask = BLOCK_TABLE_ENTRIES - 1
        self.clock.vcpu_index = self._handle
        self.clock.deadline_cycles = (1 << 64) - 1
        self._init_branch_predictor(machine.profile)
        self._init_cache_model(machine.profile)
        # Under an exploring scheduler (emu_x86/emu/sched_policy.py): the instruction
        # budget of the per-instruction preemption hook (emu_x86/emu/timing/preempt.h),
        # set by the machine before each run; None under the default one.
        self.preempt = ffi.new("struct sched_preempt *") if machine.sched_policy is not None else None
        # Whether that hook is installed now (set_preemption_hook): the machine
        # takes it off while a single task runs, since a UC_HOOK_CODE hook
        # costs every instruction a helper call even when it does nothing.
        self.preempt_hooked = self.preempt is not None
        self._init_tlb_model(machine.profile.tlb)
        self._init_amx_fast_path()
        # Unicorn instances given up after their translator aborted
        # (_replace_aborted_unicorn); kept referenced, never run or closed again.
        self._abandoned_unicorns: list[uclib.Uc] = []
        # Called with this vCPU after its Unicorn instance was replaced, so
        # hooks others added (trace, gdb) are added again on the new one.
        self.unicorn_replaced_listeners: list = []
        # The address of an instruction known to abort Unicorn's translator:
        # a run starting there raises #UD without translating it.
        self._untranslatable_at = None
        # (block, first port I/O instruction) of the block the hot path just
        # refused to run (hotpath_block_miss): the run goes on up to that
        # instruction and raises its #GP there (_start_unicorn).
        self._port_io_at: tuple[int, int] | None = None
        # The vectors whose IDT gates have DPL 3, which INT n may reach from
        # user mode; any other INT n raises #GP. The kernel loads its IDT's
        # choice (load_idt_user_gates); none until then.
        self.user_interrupt_gates: frozenset[int] = frozenset()
        self._create_unicorn()
        self._clean_user_context = None
        self._boot()

    def kick(self) -> None:
        """uc_emu_stop from any thread (Machine.kick)."""
        _uclib.uc_emu_stop(self.uc._uch)

    def close(self) -> None:
        """Forget this vCPU in the hot path's handle registry so it (and its
        Unicorn instance) can be freed; a closed vCPU must not run again."""
        _VCPUS_BY_HANDLE.pop(self._handle, None)

    # ---- set-up ---------------------------------------------------------

    def _create_unicorn(self) -> None:
        """A Unicorn instance with the shared physical memory, the virtual TLB
        and this vCPU's hooks; the CPU state is the caller's to set."""
        self.uc = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
        self.uc.ctl_set_tlb_mode(uclib.UC_TLB_VIRTUAL)
        memory = self.machine.memory
        self.uc.mem_map_ptr(0, memory.size_bytes, uclib.UC_PROT_ALL, memory.host_address)
        self.clock.uc = ffi.cast("void *", self.uc._uch.value)
        self.register_file = RegisterFile(self.uc, REGISTER_IDS)
        self._user_register_batch = self.register_file.batch(USER_REGISTER_NAMES)
        # A model eviction flushes just its page from Unicorn's TLB when the
        # CPUState checks out; otherwise (why in this string) the whole TLB.
        readable = ReadableMemory()        # one for both checks
        cpu_state, self.unicorn_page_flush_unavailable = find_cpu_state(self.uc, readable)
        self.clock.uc_cpu = ffi.NULL if cpu_state is None else ffi.cast("void *", cpu_state)
        # With QEMU's TLB in view, an evicted data page it no longer holds
        # needs no flush at all (emu_x86/emu/mmu/tlb.c, unicorn_forget).
        view, self.unicorn_tlb_view_unavailable = (None, self.unicorn_page_flush_unavailable) \
            if cpu_state is None else find_tlb_view(self.uc, cpu_state, readable)
        self.clock.uc_tlb = {"fast": ffi.NULL} if view is None else {
            **view, "fast": ffi.cast("const uint8_t *", view["fast"]),
            "victim": ffi.cast("const uint8_t *", view["victim"]),
            "dirty": ffi.cast("const uint16_t *", view["dirty"])}
        self._install_hooks()

    def _install_hooks(self) -> None:
        uc = self.uc
        # The C tile dot products first: Unicorn calls UC_HOOK_INSN_INVALID
        # hooks in the order they were added until one returns true, so what
        # the C hook declines reaches _on_invalid_opcode unchanged.
        self._c_hook_handles = [self._add_c_hook(uclib.UC_HOOK_INSN_INVALID,
                                                 hotpath.amx_fast_on_invalid_address(), self._amx_fast)]
        # SYSCALL in C (hotpath_on_syscall): it records the trap in the clock
        # struct and stops, as _on_interrupt does for faults, without a
        # Python callback on every system call.
        self._c_hook_handles.append(self._add_c_hook(uclib.UC_HOOK_INSN, hotpath.hotpath_on_syscall_address(),
                                                     self.clock, x86.UC_X86_INS_SYSCALL))
        uc.hook_add(uclib.UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(uclib.UC_HOOK_INSN_INVALID, self._on_invalid_opcode)
        uc.hook_add(uclib.UC_HOOK_INSN, self._on_cpuid, None, 1, 0, x86.UC_X86_INS_CPUID)
        uc.hook_add(uclib.UC_HOOK_INSN, self._on_sysenter, None, 1, 0, x86.UC_X86_INS_SYSENTER)
        # The block and TLB-fill hooks are C: add them through libunicorn directly.
        for hook_type, callback, context in (
                (uclib.UC_HOOK_BLOCK, hotpath.hotpath_on_block_address(), self.clock),
                (uclib.UC_HOOK_TLB_FILL, hotpath.mmu_on_tlb_fill_address(), self._mmu)):
            self._c_hook_handles.append(self._add_c_hook(hook_type, callback, context))
        if self.clock.cache != ffi.NULL:
            self._c_hook_handles.append(self._add_c_hook(uclib.UC_HOOK_MEM_READ | uclib.UC_HOOK_MEM_WRITE,
                                                         hotpath.cache_on_access_address(), self.clock.cache))
        self._preempt_hook = None
        if self.preempt is not None and self.preempt_hooked:
            self._preempt_hook = self._add_c_hook(uclib.UC_HOOK_CODE, hotpath.sched_on_instruction_address(),
                                                  self.preempt)

    def set_preemption_hook(self, installed: bool) -> None:
        """Install or remove the per-instruction preemption hook (exploring
        policies only). Unicorn emits the hook's call into each block when it
        translates it (its x86 disas_insn), so both directions drop translated
        code: removing the hook invalidates every block translated with it
        (uc_hook_del's hooked regions, unicorn 2.1), and adding it flushes the
        blocks translated without it, or they would run past the budget.
        Which blocks exist never changes what the guest computes or what a
        block costs (prices are keyed by address and size)."""
        if self.preempt is None or installed == self.preempt_hooked:
            return
        self.preempt_hooked = installed
        if installed:
            self._preempt_hook = self._add_c_hook(uclib.UC_HOOK_CODE, hotpath.sched_on_instruction_address(),
                                                  self.preempt)
            self.uc.ctl_flush_tb()
        else:
            status = _uclib.uc_hook_del(self.uc._uch, self._preempt_hook)
            if status != 0:
                raise RuntimeError(f"uc_hook_del(UC_HOOK_CODE) failed: {status}")
            self._preempt_hook = None

    def _add_c_hook(self, hook_type: int, callback: int, context, *instruction: int) -> ctypes.c_size_t:
        """uc_hook_add of a C callback over every address; UC_HOOK_INSN takes the instruction id."""
        handle = ctypes.c_size_t()
        status = _uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(handle), ctypes.c_int(hook_type), ctypes.c_void_p(callback),
            ctypes.c_void_p(int(ffi.cast("uintptr_t", context))), ctypes.c_uint64(1), ctypes.c_uint64(0),
            *(ctypes.c_int(insn) for insn in instruction))
        if status != 0:
            raise RuntimeError(f"uc_hook_add({hook_type}) failed: {status}")
        return handle

    def _init_branch_predictor(self, profile) -> None:
        """The C hook's gshare predictor (hotpath.c predict_branch) when the
        profile charges mispredictions: counters start weakly not-taken."""
        penalty = profile.uarch.mispredict_penalty_cycles if profile.uarch is not None else 0
        if not penalty:
            return
        self._predictor = ffi.new("uint8_t[]", bytes([1]) * PREDICTOR_ENTRIES)
        self.clock.predictor = self._predictor
        self.clock.predictor_mask = PREDICTOR_ENTRIES - 1
        self.clock.mispredict_penalty_fixed = penalty << FRACTION_BITS

    def _init_cache_model(self, profile) -> None:
        """--cache-model's hierarchy (emu_x86/emu/timing/cache.h) from the profile's
        [memory] section; the clock's cache pointer stays NULL without it."""
        if not self.machine.cache_model:
            return
        memory = profile.memory
        line = int(memory["line_bytes"])
        cache = self._cache = ffi.new("struct cache_model *")
        self._cache_tags = []
        for level, prefix in enumerate(("l1", "l2", "l3")):
            ways = int(memory[f"{prefix}_ways"])
            sets = int(memory[f"{prefix}_bytes"]) // line // ways
            tags = ffi.new("uint64_t[]", sets * ways)
            self._cache_tags.append(tags)
            cache.level[level].tags = tags
            cache.level[level].sets = sets
            cache.level[level].ways = ways
            cache.level[level].latency_cycles = int(memory[f"{prefix}_latency_cycles"])
        dtlb_ways = int(memory["dtlb_ways"])
        dtlb_sets = int(memory["dtlb_entries"]) // dtlb_ways
        self._cache_tags.append(ffi.new("uint64_t[]", dtlb_sets * dtlb_ways))
        cache.dtlb.tags, cache.dtlb.sets, cache.dtlb.ways = self._cache_tags[-1], dtlb_sets, dtlb_ways
        cache.dtlb_miss_cycles = int(memory["dtlb_miss_cycles"])
        cache.l1_latency_cycles = int(memory["l1_latency_cycles"])
        cache.dram_latency_cycles = int(memory["dram_latency_cycles"])
        for level, source in enumerate(("l2", "l3", "dram")):
            cache.prefetch_line_fixed[level] = int(float(memory[f"prefetch_{source}_line_cycles"]) * (1 << FRACTION_BITS))
        cache.stream_count = min(int(memory["prefetch_streams"]), 32)
        cache.clock = self.clock
        self.clock.cache = cache

    def cache_statistics(self) -> dict:
        """The branch predictor's and --cache-model's counters for the stats
        JSON (empty when neither is on)."""
        out = {}
        if self.clock.predictor != ffi.NULL:
            out["conditional_branches"] = self.clock.conditional_branches
            out["branch_mispredicts"] = self.clock.branch_mispredicts
        cache = self.clock.cache
        if cache != ffi.NULL:
            out["cache"] = {"accesses": cache.accesses, "l1_hits": cache.level[0].hits, "l2_hits": cache.level[1].hits,
                            "l3_hits": cache.level[2].hits, "dram": cache.dram_accesses,
                            "dtlb_misses": cache.dtlb_misses,
                            "prefetched": cache.prefetched}
        return out

    def _init_amx_fast_path(self) -> None:
        """The C tile dot products (emu_x86/emu/isa/amx_fast.h): this vCPU's tile state,
        CR3 and memory for the code fetch, the clock, and the profile's costs
        rounded as ``charge_instruction`` rounds them."""
        fast = self._amx_fast = ffi.new("struct amx_fastpath *")
        fast.state = self.xstate.c_state
        fast.mmu = self._mmu
        fast.clock = self.clock
        costs = self.machine.profile.event_costs
        fast.tdpb_d_cycles = int(round(costs[EVENT_COSTS["tdpbssd"]]))
        fast.tdpbf16ps_cycles = int(round(costs[EVENT_COSTS["tdpbf16ps"]]))
        fast.amx_supported = bool(self.cpu_model.amx)
        self.amx_fast_path = AMX_FAST_PATH_DEFAULT

    @property
    def amx_fast_path(self) -> bool:
        """Whether the C tile dot products run (tests compare both paths)."""
        return bool(self.machine.amx_fast_enabled[self.index])

    @amx_fast_path.setter
    def amx_fast_path(self, value: bool) -> None:
        # Kept where the machine's C loop reads it (emu_x86/emu/runqueue_scan.h).
        self.machine.amx_fast_enabled[self.index] = bool(value)

    @property
    def _untranslatable_at(self) -> int | None:
        return self._untranslatable_address

    @_untranslatable_at.setter
    def _untranslatable_at(self, address: int | None) -> None:
        # A run that starts at it must start in Python (_start_unicorn):
        # the machine's C loop leaves this vCPU's next run to Python.
        self._untranslatable_address = address
        self.machine.run_in_python[self.index] = address is not None

    def _init_tlb_model(self, geometry) -> None:
        """The C TLB model (emu_x86/emu/mmu/tlb.h) with the profile's geometry."""
        self._tlb_small = ffi.new("struct tlb_entry[]", geometry.sets * geometry.ways)
        self._tlb_large = ffi.new("struct tlb_entry[]", geometry.large_entries)
        self._tlb_fifo = ffi.new("uint8_t[]", geometry.sets * geometry.ways)
        self._tlb_fifo_head = ffi.new("uint8_t[]", geometry.sets)
        self._tlb_fifo_count = ffi.new("uint8_t[]", geometry.sets)
        # Every tag TLB_TAG_INVALID, written with one memmove: a list of that
        # many ints was a tenth of a vCPU's creation.
        slots = geometry.sets * geometry.ways
        self._tlb_tags = ffi.new("uint64_t[]", slots)
        ffi.memmove(self._tlb_tags, hotpath.TLB_TAG_INVALID.to_bytes(8, "little") * slots, 8 * slots)
        self._tlb_tag_bytes = ffi.new("uint8_t[]", slots + 15)    # tlb.h: + 15
        mmu = self._mmu = ffi.new("struct mmu_vcpu *")
        mmu.clock = self.clock
        self.clock.mmu = mmu
        memory = self.machine.memory
        mmu.phys = ffi.cast("uint8_t *", memory.host_address)
        mmu.phys_size = memory.size_bytes
        mmu.firmware_vaddr = firmware.FIRMWARE_VADDR
        mmu.firmware_size = firmware.FIRMWARE_SIZE_BYTES
        mmu.firmware_writable_from = firmware.BOOT_STACK_OFFSET
        mmu.walk_cycles_per_read = self.machine.profile.event_cycles("page_walk_level")
        mmu.walk_line_reuse = int(geometry.walk_line_reuse)
        memory_model = self.machine.profile.memory or {}
        mmu.miss_data_cycles = 0 if self.machine.cache_model else int(memory_model.get("tlb_miss_data_proxy_cycles", 0))
        mmu.small = self._tlb_small
        mmu.large = self._tlb_large
        mmu.fifo, mmu.fifo_head, mmu.fifo_count = self._tlb_fifo, self._tlb_fifo_head, self._tlb_fifo_count
        mmu.tags, mmu.tag_bytes = self._tlb_tags, self._tlb_tag_bytes
        mmu.sets = geometry.sets
        mmu.ways = geometry.ways
        mmu.large_entries = geometry.large_entries
        self._walk_result = ffi.new("struct walk_result *")
        self._rip_slot = ffi.new("uint64_t *")         # run's RIP (hotpath_prepare_run)

    def _boot(self) -> None:
        """Power-on: run the firmware's iretq into CPL3 and save that clean context."""
        uc = self.uc
        uc.reg_write(x86.UC_X86_REG_CS, firmware.KERNEL_CS)
        uc.reg_write(x86.UC_X86_REG_SS, firmware.KERNEL_DS)
        # CR4.TSD: RDTSC/RDTSCP at CPL3 raise #GP, and the machine answers
        # them from the cycle clock (_emulate_time_stamp_counter).
        # CR4.OSXSAVE clear in Unicorn: XSAVE/XRSTOR/XGETBV then raise #UD
        # into the emulator, which owns XCR0 and XINUSE (DESIGN.md); the
        # guest's CPUID still reports OSXSAVE because the emulator runs them.
        uc.reg_write(x86.UC_X86_REG_CR4, (uc.reg_read(x86.UC_X86_REG_CR4) | CR4_TSD) & ~CR4_OSXSAVE)
        uc.reg_write(x86.UC_X86_REG_GDTR, (0, firmware.FIRMWARE_VADDR + firmware.GDT_OFFSET,
                                          firmware.GDT_LIMIT, 0))
        rsp, frame = firmware.boot_iret_frame(RFLAGS_RESERVED_1 | RFLAGS_IF)
        self.machine.memory.write(rsp - firmware.FIRMWARE_VADDR, frame)
        uc.reg_write(x86.UC_X86_REG_RSP, rsp)
        self._booting = True
        uc.emu_start(firmware.FIRMWARE_VADDR + firmware.ENTRY_STUB_OFFSET, _END_ADDRESS)
        self._booting = False
        if uc.reg_read(x86.UC_X86_REG_CS) & 3 != 3:
            raise RuntimeError("vCPU failed to enter CPL3 at boot")
        self._clean_user_context = uc.context_save()
        self._clean_context_handle = context_handle(self._clean_user_context)
        self.clock.syscall_pending = 0      # the firmware's SYSCALL that ended the boot
        self._flush_unicorn_tlb()
        # Firmware instructions are not guest work: the clock starts at zero.
        self.clock.cycles = 0
        self.clock.cycle_fraction = 0
        self.clock.instructions = 0

    # ---- registers ------------------------------------------------------

    def read_register(self, name: str):
        return self.register_file.read(name)

    def write_register(self, name: str, value) -> None:
        self.register_file.write(name, value)

    def read_registers(self, names: tuple) -> dict:
        """``read_register`` of every name (a tuple, in order), as one libunicorn call."""
        return self.register_file.read_many(names)

    def read_register_values(self, names: tuple) -> tuple:
        """The values of scalar registers ``names`` (a tuple), in order, as one libunicorn call."""
        return self.register_file.batch(names).read_values()

    def write_registers(self, values: dict) -> None:
        """``write_register`` for every item, in order, as one libunicorn call."""
        self.register_file.write_many(values)

    def save_user_registers(self) -> dict:
        """Every register of REGISTER_IDS (in that order), read in one libunicorn call."""
        return self._user_register_batch.read()

    def load_user_registers(self, registers: dict, fpregs_follow: bool = False) -> None:
        """Enter user mode with ``registers``: restore the clean CPL3 context
        first, which also drops the pending-exception state QEMU keeps after a
        fault (without it the next fault is promoted to #DF; DESIGN.md).

        ``registers`` is a dict of named registers (written in its order), or
        what ``save_task_registers`` returned (the whole user register file,
        one C call). ``fpregs_follow``: the caller writes every x87/SSE
        register next (an XRSTORS whose RFBM holds x87 and SSE: it loads each
        of them from its buffer or its init value, whatever the register held),
        so a snapshot's copies of them need not be written first."""
        if type(registers) is RegisterSnapshot:
            if len(registers) == len(TASK_REGISTER_NAMES):
                self._user_register_batch.restore_snapshot(
                    registers, self._clean_context_handle, len(TASK_REGISTER_NAMES) if fpregs_follow else None)
                return
            registers = self._user_register_batch.values_of(registers)   # an item was added: all, by name
        if registers:
            self.register_file.batch(tuple(registers)).write(registers, restore_context=self._clean_context_handle)
        else:
            self.uc.context_restore(self._clean_user_context)

    def save_task_registers(self) -> RegisterSnapshot:
        """The whole user register file (as ``save_user_registers``) in one
        libunicorn call, for a task switch: TASK_REGISTER_NAMES as items, the
        rest as raw bytes (``load_user_registers`` writes it back)."""
        return self._user_register_batch.snapshot(len(TASK_REGISTER_NAMES))

    def set_cycle_clock_word(self, paddr: int | None) -> None:
        """Machine.set_cycle_clock_word for this vCPU's hot path."""
        self.clock.cycle_clock_word = ffi.NULL if paddr is None else ffi.cast(
            "uint64_t *", self.machine.memory.host_address + paddr)

    def set_cycle_clock_block(self, vaddr: int) -> None:
        """The guest block (virtual address, 0: none) whose every start stores this
        vCPU's clock into the cycle clock word (the vDSO's clock read)."""
        if self.clock.cycle_clock_block != vaddr:
            self.clock.cycle_clock_block = vaddr
            self.clock.cycle_clock_slot.address = 0

    # ---- memory management ------------------------------------------------

    def _flush_unicorn_tlb(self) -> None:
        hotpath.hotpath_flush_unicorn_tlb(self.clock)

    @property
    def cr3(self) -> int:
        """CR3 as last loaded: the page-table root and, with CR4.PCIDE, the PCID in bits 11:0."""
        return self._cr3

    @property
    def pcid(self) -> int:
        return self._mmu.pcid

    @property
    def c_mmu(self):
        """The C ``struct mmu_vcpu *`` (CR3, physical memory) for C code that
        walks this vCPU's page tables (emu_x86/emu/isa/xstate_fast.c)."""
        return self._mmu

    def _drop_translations(self, pcid: int, start: int, end: int, include_global: bool) -> int:
        """Invalidate model entries (tlb.h ``tlb_invalidate``); flush Unicorn's
        TLB when it could hold one of them. Returns how many were dropped."""
        before = self._mmu.counters.invalidated
        visible = hotpath.tlb_invalidate(self._mmu, pcid, start, end, int(include_global), self._mmu.pcid)
        if visible:
            self._flush_unicorn_tlb()
        return self._mmu.counters.invalidated - before

    def _count_flush(self, kind: str) -> None:
        self.tlb_flush_counts[kind] = self.tlb_flush_counts.get(kind, 0) + 1
        if self.machine.events is not None:
            event = _FLUSH_COST_EVENTS.get(kind)
            self.machine.events.emit(self, "tlb_flush", kind=kind, pcid=self._mmu.pcid,
                                     cost_cycles=self.machine.profile.event_cycles(event) if event else 0)

    def write_cr3(self, value: int) -> None:
        """MOV to CR3 (SDM Vol. 3A §4.10.4.1). Without CR4.PCIDE it flushes every
        non-global translation. With PCIDE, bits 11:0 are the new PCID and bit 63
        set means "no flush": the new PCID's entries survive; bit 63 clear flushes
        the new PCID's non-global entries. Other PCIDs' entries always stay."""
        no_flush = bool(value >> 63 & 1)
        value &= ~(1 << 63)
        if no_flush and not self.cr4_pcide:
            raise GP(0)   # bit 63 is reserved without PCIDE (§2.5: MOV CR3 #GP on reserved bits)
        new_pcid = value & 0xFFF if self.cr4_pcide else 0
        self._cr3 = value
        self._mmu.cr3 = value & ~0xFFF
        self._mmu.pcid = new_pcid
        if no_flush:
            self.charge_event("cr3_write_noflush")
            self._count_flush("cr3_noflush")
        else:
            self._drop_translations(new_pcid, 0, 0, include_global=False)
            self.charge_event("cr3_write_flush")
            self._count_flush("cr3")
        # Unicorn's own TLB is not PCID-tagged and caches the old root's
        # translations: it must go whenever the address space changes.
        self._flush_unicorn_tlb()

    def set_cr4_pcide(self, enabled: bool) -> None:
        """MOV to CR4 changing PCIDE. Setting it needs CR3[11:0] = 0 (#GP otherwise);
        clearing it invalidates every translation including global ones
        (SDM Vol. 3A §4.10.4.1)."""
        if enabled == self.cr4_pcide:
            return
        if enabled:
            if self._cr3 & 0xFFF or not self.cpu_model.pcid:
                raise GP(0)   # SDM Vol. 3A 4.10.1: setting PCIDE without CPUID PCID is #GP
        else:
            self._drop_translations(-1, 0, 0, include_global=True)
            self._mmu.pcid = 0
            self._count_flush("cr4")
        self.cr4_pcide = enabled

    def flush_tlb(self) -> None:
        """Reload CR3 with its current value and bit 63 clear: drops the current
        PCID's non-global translations (Linux's flush_tlb_local)."""
        self.write_cr3(self._cr3)

    def flush_tlb_all(self) -> None:
        """Drop every translation of every PCID, global ones included (Linux's
        __flush_tlb_all: INVPCID type 2, or a CR4.PGE toggle without INVPCID)."""
        self.invpcid(INVPCID_ALL_INCLUDING_GLOBAL, 0, 0)

    def invlpg(self, vaddr: int) -> None:
        """INVLPG (SDM Vol. 2A): drop the translations of ``vaddr``'s page for the
        current PCID and global ones; other PCIDs keep theirs (§4.10.4.1)."""
        page = vaddr & ~(PAGE_SIZE - 1)
        if is_canonical(vaddr):   # a non-canonical operand is a no-op, not a fault
            self._drop_translations(self._mmu.pcid, page, page + PAGE_SIZE, include_global=True)
        self.charge_event("invlpg")
        self._count_flush("invlpg")

    def invpcid(self, kind: int, pcid: int, vaddr: int = 0) -> None:
        """INVPCID (SDM Vol. 2A) with descriptor (``pcid``, ``vaddr``):
        0 individual address (non-global, that PCID), 1 single context (all
        non-global of that PCID), 2 all contexts including global, 3 all
        contexts except global. #GP for a type above 3, a PCID above 4095, a
        non-canonical type-0 address, or type 0/1 with PCID != 0 while
        CR4.PCIDE = 0."""
        if not self.cpu_model.invpcid:
            raise UD(0)
        if kind > INVPCID_ALL_NON_GLOBAL or kind < 0 or pcid >> 12 or pcid < 0:
            raise GP(0)
        if kind in (INVPCID_INDIVIDUAL_ADDRESS, INVPCID_SINGLE_CONTEXT) and pcid and not self.cr4_pcide:
            raise GP(0)
        if kind == INVPCID_INDIVIDUAL_ADDRESS:
            if not is_canonical(vaddr):
                raise GP(0)
            page = vaddr & ~(PAGE_SIZE - 1)
            self._drop_translations(pcid, page, page + PAGE_SIZE, include_global=False)
            self.charge_event("invpcid_single")
        elif kind == INVPCID_SINGLE_CONTEXT:
            self._drop_translations(pcid, 0, 0, include_global=False)
            self.charge_event("invpcid_context")
        elif kind == INVPCID_ALL_INCLUDING_GLOBAL:
            self._drop_translations(-1, 0, 0, include_global=True)
            self.charge_event("invpcid_all")
        else:
            self._drop_translations(-1, 0, 0, include_global=False)
            self.charge_event("invpcid_all")
        self._count_flush(INVPCID_KIND_NAMES[kind])

    def invlpgb(self, rax: int, ecx: int, edx: int) -> None:
        """INVLPGB (AMD APM Vol. 3): broadcast an invalidation to every vCPU's TLB.

        rAX: bit 0 VA valid, bit 1 PCID valid, bit 2 ASID valid, bit 3 include
        global, bit 4 final translation only, bits 63:12 the virtual address.
        ECX[15:0]: additional pages (at most CPUID 8000_0008 EDX[15:0]); ECX[31]:
        stride 2 MiB instead of 4 KiB. EDX[27:16] PCID, EDX[15:0] ASID.
        This machine has no guests, so only ASID 0 (the host) holds translations.
        The model keeps no paging-structure caches, so "final only" changes
        nothing here. The invalidation reaches every TLB at once; its completion
        time (issue + invlpgb_latency) is what TLBSYNC on this vCPU waits for."""
        if not self.cpu_model.invlpgb:
            raise UD(0)
        extra_pages = ecx & 0xFFFF
        if extra_pages > INVLPGB_MAX_PAGES - 1:
            raise GP(0)
        va_valid, pcid_valid, asid_valid, include_global = (bool(rax >> bit & 1) for bit in range(4))
        pcid = (edx >> 16) & 0xFFF if pcid_valid else -1
        asid = edx & 0xFFFF if asid_valid else 0
        stride = (1 << 21) if ecx >> 31 & 1 else PAGE_SIZE
        self.charge_event("invlpgb_base")
        pages = extra_pages + 1 if va_valid else 1
        self.charge(self.machine.profile.event_cycles("invlpgb_per_page", pages))
        self.invlpgb_count += 1
        self.invlpgb_complete_at = max(self.invlpgb_complete_at,
                                       self.cycles + self.machine.profile.event_cycles("invlpgb_latency"))
        if asid:
            return
        if va_valid:
            base = rax & ~0xFFF
            ranges = [(base + i * stride, base + i * stride + PAGE_SIZE) for i in range(extra_pages + 1)]
        else:
            ranges = [(0, 0)]
        for vcpu in self.machine.vcpus:
            for start, end in ranges:
                vcpu._drop_translations(pcid, start, end, include_global)
            vcpu._count_flush("invlpgb_received")

    def tlbsync(self) -> None:
        """TLBSYNC (AMD APM Vol. 3): wait until every INVLPGB this vCPU issued
        has completed on all processors."""
        if not self.cpu_model.invlpgb:
            raise UD(0)
        self.tlbsync_count += 1
        done = max(self.cycles + self.machine.profile.event_cycles("tlbsync"), self.invlpgb_complete_at)
        self.charge(done - self.cycles)

    def tlb_statistics(self) -> dict:
        """Per-vCPU TLB counters for the stats JSON."""
        counters = self._mmu.counters
        # No hit count: hits mostly happen inside Unicorn's own TLB, unseen, and
        # how many reach the model depends on QEMU resizing that TLB by
        # wall-clock time -- it would make the statistics differ run to run.
        return {
            "tlb_misses": counters.misses,
            "tlb_dirty_assists": counters.dirty_assists, "tlb_evictions": counters.evictions,
            "tlb_invalidated_entries": counters.invalidated, "tlb_faults_from_cache": counters.faults_from_tlb,
            "page_walk_reads": counters.walk_reads,
            "tlb_flushes": dict(sorted(self.tlb_flush_counts.items())),
            "invlpgb": self.invlpgb_count, "tlbsync": self.tlbsync_count,
        }

    def tlb_fills_answered_by_model(self) -> int:
        """Unicorn TLB fills the model answered without a walk (host-dependent; diagnostics only)."""
        return self._mmu.counters.hits

    def probe_tlb(self, vaddr: int, pcid: int | None = None):
        """The model's cached translation of ``vaddr`` for ``pcid`` (default: the
        current one), or None: for tests and debugging, no side effects."""
        entry = ffi.new("struct tlb_entry *")
        if not hotpath.tlb_probe(self._mmu, vaddr, self._mmu.pcid if pcid is None else pcid, entry):
            return None
        return {"paddr": entry.paddr | (vaddr & ((1 << entry.page_shift) - 1) & ~0xFFF),
                "pcid": entry.pcid, "global": bool(getattr(entry, "global")),
                "writable": bool(entry.writable), "dirty": bool(entry.dirty), "page_shift": entry.page_shift}

    def invalidate_code(self, start: int, end: int) -> None:
        """Forget translated blocks and their prices for guest code in [start, end) that
        was unmapped or re-protected (a JIT's mprotect to executable): the block-cost
        cache is keyed by virtual address, so new code there must be priced again."""
        self.uc.ctl_remove_cache(start, end)
        self._clear_block_prices()

    def invalidate_all_code(self) -> None:
        """Forget every translated block and block price: code changed in an address
        space this vCPU may not have loaded (a debugger's POKETEXT into another
        process), where ``invalidate_code``'s virtual range would name the wrong pages."""
        self.uc.ctl_flush_tb()
        self._clear_block_prices()

    def _clear_block_prices(self) -> None:
        hotpath.hotpath_clear_blocks(self.clock)
        self._head_prices.clear()

    def translate(self, vaddr: int, access: int = ACCESS_READ, user_mode: bool = True) -> int:
        """Guest virtual -> physical through this vCPU's page tables; raises PF."""
        if not is_canonical(vaddr):
            raise GP(0)
        firmware_offset = vaddr - firmware.FIRMWARE_VADDR
        if 0 <= firmware_offset < firmware.FIRMWARE_SIZE_BYTES:
            return firmware_offset
        # The C walk (tlb.c mmu_walk_mode), the same as pagewalk.walk at this
        # CR3 (tests/test_tlb.py compares them); it touches no TLB model state.
        result = self._walk_result
        if hotpath.mmu_walk_mode(self._mmu, vaddr, access, 1 if user_mode else 0, result):
            raise PF(vaddr, result.fault_error_code)
        return result.paddr | (vaddr & (PAGE_SIZE - 1))

    def read_virtual(self, vaddr: int, size: int) -> bytes:
        """Read guest memory as a CPL3 data read (raises PF/GP like the access would)."""
        return self.machine.read_virtual(self, vaddr, size, ACCESS_READ)

    def write_virtual(self, vaddr: int, data: bytes) -> None:
        """Write guest memory as a CPL3 data write. Every page is translated
        (and may fault) before any byte is written, so a faulting write has no
        partial effect and the restarted instruction sees the same state."""
        memory = self.machine.memory
        pieces = []
        offset = 0
        while offset < len(data):
            address = vaddr + offset
            chunk = min(len(data) - offset, PAGE_SIZE - (address & (PAGE_SIZE - 1)))
            pieces.append((self.translate(address, ACCESS_WRITE), offset, chunk))
            offset += chunk
        for paddr, offset, chunk in pieces:
            memory.write(paddr, data[offset:offset + chunk])

    # ---- traps ------------------------------------------------------------

    # The trap a run ends with is the last one a hook recorded: these clear the
    # C SYSCALL hook's flag when they record theirs (see _start_unicorn).

    def load_idt_user_gates(self, vectors) -> None:
        """LIDT's part the machine models: which gates have DPL 3 (system gates)."""
        self.user_interrupt_gates = frozenset(vectors)

    def _on_interrupt(self, uc, vector, _user_data) -> None:
        self.clock.python_calls += 1        # the machine's C loop hands this run to Python
        if vector == VECTOR_DB and (self.clock.syscall_pending or self.pending is not None):
            # QEMU raises the single-step #DB of an instruction run with
            # RFLAGS.TF set even after a hook took it over; the processor
            # does not: SYSCALL clears TF through IA32_FMASK (Linux masks it),
            # so the system call is the trap, and a fault (SYSENTER's)
            # means the instruction never completed.
            uc.emu_stop()
            return
        self.pending = self._interrupt_trap(uc, vector)
        self.clock.syscall_pending = 0
        uc.emu_stop()

    def _interrupt_trap(self, uc, vector: int) -> PendingTrap:
        """What a vector Unicorn reports is architecturally. Unicorn runs INT n
        (CD ib) without reading the IDT: it reports vector n with RIP past the
        instruction, whatever the gate. The processor checks the gate's DPL
        against CPL first (SDM Vol. 3A §6.12.1.1): at CPL3 a gate below DPL 3
        is #GP(n * 8 + 2) at the INT instruction. Unicorn has no external
        interrupts, so a vector of 32 or more always comes from INT n; below 32
        the instruction bytes before RIP tell INT n from an exception (a
        single-step #DB is told by RFLAGS.TF)."""
        if vector == VECTOR_DB and uc.reg_read(x86.UC_X86_REG_EFLAGS) & RFLAGS_TF:
            return PendingTrap("exception", DB())
        if vector >= FIRST_INTERRUPT_VECTOR or self._follows_int_n(uc.reg_read(x86.UC_X86_REG_RIP), vector):
            if vector not in self.user_interrupt_gates:
                return PendingTrap("exception", gp_for_software_interrupt(vector), rewind_bytes=INT_N_BYTES)
            if vector < FIRST_INTERRUPT_VECTOR:
                return PendingTrap("exception", exception_for_vector(vector))   # INT 3, INT 4: traps
            return PendingTrap("exception", SoftwareInterrupt(vector))
        if vector == VECTOR_BP and VECTOR_BP not in self.user_interrupt_gates:
            # INT3 (CC) is checked against the gate's DPL too.
            return PendingTrap("exception", gp_for_software_interrupt(vector), rewind_bytes=1)
        return PendingTrap("exception", exception_for_vector(vector))

    def stop_before_port_io(self, block_address: int, address: int) -> bool:
        """Called at the entry of the block at ``block_address`` holding a port
        I/O instruction at ``address``, before any of it runs. At CPL3 with IOPL 0 and no I/O
        permission bitmap -- always the case here: RFLAGS.IOPL cannot be raised
        from user mode and the kernel grants neither iopl(3) nor ioperm() to
        its unprivileged user -- the instruction raises #GP(0) (SDM Vol. 1
        §19.5.1-2). Unicorn would run it, so the vCPU abandons the block and
        runs only up to that instruction (_start_unicorn)."""
        self._port_io_at = (block_address, address)
        self.uc.emu_stop()
        return True

    def _follows_int_n(self, rip: int, vector: int) -> bool:
        """The two bytes before ``rip`` are INT ``vector``."""
        try:
            return self.machine.read_virtual(self, rip - INT_N_BYTES, INT_N_BYTES) == bytes((INT_N_OPCODE, vector))
        except CpuException:
            return False

    def _on_invalid_opcode(self, uc, _user_data) -> bool:
        """Unicorn could not execute the instruction: the extensions (emu_x86/emu/isa) may."""
        self.clock.python_calls += 1
        try:
            if execute_extension(self):
                return True
        except CpuException as exc:
            self.pending = PendingTrap("exception", exc)
            self.clock.syscall_pending = 0
            return False
        self.pending = PendingTrap("exception", UD(0))
        self.clock.syscall_pending = 0
        return False

    def _on_sysenter(self, uc, _user_data) -> None:
        """SYSENTER from 64-bit user mode, which Unicorn would skip: #UD on
        AMD processors in long mode (APM Vol. 3 SYSENTER), an OS entry on
        Intel ones (SDM Vol. 2B SYSENTER; the kernel programs the MSRs): the
        kernel gets SysenterEntry. SYSENTER ends its block, so the stop is
        exact; RIP is past the instruction (0F 34) and goes back onto it."""
        self.clock.python_calls += 1
        if self.cpu_model.vendor == "AuthenticAMD":
            self.pending = PendingTrap("exception", UD(0), rewind_bytes=SYSENTER_BYTES)
        else:
            self.pending = PendingTrap("exception", SysenterEntry(0), rewind_bytes=SYSENTER_BYTES)
        self.clock.syscall_pending = 0
        uc.emu_stop()

    def _on_cpuid(self, uc, _user_data) -> int:
        self.clock.python_calls += 1
        # EAX/ECX are the low halves of RAX/RCX; the four results are written
        # in one batch, RAX, RBX, RCX, RDX in that order.
        leaf, subleaf = self.register_file.batch(_CPUID_INPUTS).read_values()
        eax, ebx, ecx, edx = self.cpuid.query(leaf & 0xFFFFFFFF, subleaf & 0xFFFFFFFF)
        self.register_file.write_many({"rax": eax, "rbx": ebx, "rcx": ecx, "rdx": edx})
        return 1   # skip Unicorn's own CPUID

    # ---- extension state ----------------------------------------------------

    def xinuse(self) -> int:
        """XINUSE: the components not in their init state (XGETBV with ECX=1)."""
        return xstate_xinuse(self)

    def fetch_code(self, rip: int, size: int) -> bytes:
        """Up to ``size`` instruction bytes at ``rip``; fewer when the next page is unmapped."""
        try:
            return self.machine.read_virtual(self, rip, size)
        except CpuException:
            return self.machine.read_virtual(self, rip, min(size, PAGE_SIZE - (rip & (PAGE_SIZE - 1))))

    @property
    def amx_fast_path_executed(self) -> int:
        """Tile dot products the C fast path retired (diagnostics and tests; not in stats)."""
        return self._amx_fast.executed

    def charge_instruction(self, event: str | None) -> None:
        """Account one instruction the emulator executed itself (the C fast
        path of the tile dot products charges the same: emu_x86/emu/isa/amx_fast.c)."""
        profile = self.machine.profile
        cycles = profile.event_costs[event] if event else profile.instruction_cycles["other"]
        self.clock.cycles += int(round(cycles))
        self.clock.instructions += 1

    def xsetbv(self, index: int, value: int) -> None:
        """XSETBV at CPL0 (the kernel's machine API), with the SDM's #GP checks
        (Vol. 2D XSETBV; Vol. 1 §13.3): XCR0[0] set, AVX needs SSE, both tile
        components or neither, only supported components."""
        supported = SUPPORTED_USER_MASK if self.cpu_model.amx else SUPPORTED_USER_MASK & ~XFEATURE_MASK_XTILE
        if index != 0 or value & ~supported or not value & 1:
            raise GP(0)
        tiles = value & XFEATURE_MASK_XTILE
        if tiles and tiles != XFEATURE_MASK_XTILE:
            raise GP(0)
        self.xstate.xcr0 = value

    def read_msr(self, index: int) -> int:
        """RDMSR at CPL0 (the kernel's machine API)."""
        if index in X2APIC_MSRS or index == MSR_IA32_TSC_DEADLINE:
            return self.apic.read_msr(index)
        return self.msrs.read(index)

    def write_msr(self, index: int, value: int) -> None:
        """WRMSR at CPL0 (the kernel's machine API); reserved bits raise GP(0)."""
        if index in X2APIC_MSRS or index == MSR_IA32_TSC_DEADLINE:
            self.apic.write_msr(index, value)
        else:
            self.msrs.write(index, value)

    @property
    def preempt_stop_address(self) -> int:
        """RIP where the exploring scheduler's instruction budget last stopped
        this vCPU (the kernel's preemption point; no register read)."""
        return self.preempt.stop_address

    @property
    def runnable(self) -> bool:
        return not self._halted and not self.waiting_for_acks

    @property
    def halted(self) -> bool:
        """Idle (HLT): runs again when an interrupt arrives."""
        return self._halted

    @halted.setter
    def halted(self, value: bool) -> None:
        self._halted = value
        self.update_runnable_flag()

    def update_runnable_flag(self) -> None:
        """Mirror ``runnable`` and whether it waits for acknowledgements into
        the machine's C arrays (emu_x86/emu/runqueue_scan.h); called whenever
        ``halted`` or ``waiting_for_acks`` changes."""
        targets = self.waiting_for_acks
        self.machine.not_runnable[self.index] = self._halted or bool(targets)
        self.machine.waiting_flags[self.index] = bool(targets)
        self.machine.waiting_targets[self.index] = sum(1 << target for target in targets)

    # ---- running ------------------------------------------------------------

    @property
    def cycles(self) -> int:
        return self.clock.cycles

    @property
    def instructions(self) -> int:
        return self.clock.instructions

    def charge(self, cycles: int) -> None:
        """Add the cost of something done outside translated code (a trap, a kernel path)."""
        self.clock.cycles += cycles

    def charge_event(self, event: str, count: float = 1) -> None:
        """Charge a profile event (emu_x86/emu/timing/profiles) and count it for statistics."""
        if count == 1:
            cycles = self._event_cycles[event]
        else:
            # Memoised by (event, count) too: XSAVES/XRSTORS charge per byte of
            # the same few buffer sizes on every switch.
            key = (event, count)
            cycles = self._event_cycles.get(key)
            if cycles is None:
                cycles = self.machine.profile.event_cycles(event, count)
                if len(self._event_cycles) < EVENT_CYCLES_MEMO_ENTRIES:
                    self._event_cycles[key] = cycles
        self.clock.cycles += cycles
        counts = self.event_counts
        counts[event] = counts.get(event, 0) + 1

    def charge_xsave(self, size_bytes: int) -> None:
        """An XSAVE-family instruction moving ``size_bytes`` of state: the
        profile's xsave_base plus xsave_per_byte per byte -- exactly
        ``charge_event("xsave_base")`` then ``charge_event("xsave_per_byte",
        size_bytes)``, in one call (the context switch runs two of them)."""
        cycles = self._xsave_cycles.get(size_bytes)
        if cycles is None:
            cycles = (self.machine.profile.event_cycles("xsave_base")
                      + self.machine.profile.event_cycles("xsave_per_byte", size_bytes))
            if len(self._xsave_cycles) < EVENT_CYCLES_MEMO_ENTRIES:
                self._xsave_cycles[size_bytes] = cycles
        self.clock.cycles += cycles
        counts = self.event_counts
        counts["xsave_base"] = counts.get("xsave_base", 0) + 1
        counts["xsave_per_byte"] = counts.get("xsave_per_byte", 0) + 1

    def run(self, deadline_cycles: int) -> str:
        """Run guest code until a trap or until the clock reaches ``deadline_cycles``.

        Traps are delivered to the machine's trap handler before returning.
        """
        clock = self.clock
        # The deadline; unless already reached: the fill hook's fault cleared,
        # a pending flush of Unicorn's TLB done, RIP read.
        status = hotpath.hotpath_prepare_run(clock, deadline_cycles, x86.UC_X86_REG_RIP, self._rip_slot)
        if status == hotpath.HOTPATH_RUN_DEADLINE:
            return STOP_DEADLINE
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status)
        return self.finish_run(self._rip_slot[0])

    def finish_run(self, rip: int, started: int | None = None) -> str:
        """The rest of ``run`` once hotpath_prepare_run succeeded: start
        Unicorn at ``rip`` and deliver what stopped it. ``started``: the
        status of the emu_start the machine's C loop already made from there
        for this run (emu_x86/emu/runqueue_scan.c sched_run, SCHED_RUN_FINISH),
        whose stop is delivered as if this method had made it."""
        clock = self.clock
        if started is None:
            self.pending = None         # else set, or not, by that run's hooks (None between runs)
        mmu = self._mmu
        events = self.machine.events
        if events is not None:
            events.resume(self)
        # Tracing keeps every instruction on the Python path, so traces are unchanged.
        fast = self._amx_fast
        fast.enabled = events is None and self.amx_fast_path
        fast.state = self.xstate.c_state
        preempt = self.preempt
        if preempt is not None:
            preempt.reached = 0
            preempt.armed = 1
        try:
            self._start_unicorn(rip, started)
        except uclib.UcError as error:
            if self.pending is None:
                if mmu.fault_vector == PF.vector:
                    self.pending = PendingTrap("exception", PF(mmu.fault_address, mmu.fault_error_code),
                                               page_granular_address=True)
                elif mmu.fault_vector == GP.vector:
                    self.pending = PendingTrap("exception", GP(0))
                else:
                    self.pending = PendingTrap("exception", self._exception_for_uc_error(error, rip))
        if preempt is not None:
            preempt.armed = 0               # other runs (gdb's stepi, boot) are never cut short
        pending = self.pending
        if events is not None:
            events.stopped(self, pending.exception if pending is not None else None)
        if pending is None:
            if clock.deadline_reached:
                self.machine.trap_handler.handle_deadline(self)
                return STOP_DEADLINE
            if preempt is not None and preempt.reached:
                # Stopped before an instruction inside the block the hot path
                # charged in full: keep the cost of those that ran.
                self._refund_unexecuted(preempt.stop_address)
                return STOP_PREEMPT
            # emu_start returned without a reason: treat like a deadline so
            # the scheduler re-evaluates (it cannot spin: RIP moved or a
            # trap will be reported next time).
            return STOP_DEADLINE
        self.pending = None
        handler = self.machine.trap_handler
        if pending.page_granular_address:
            # RIP as the fault left it (the rewind below may move it); the
            # other registers the decode reads stay as they are until the
            # kernel has looked at the fault.
            faulting_rip = self.uc.reg_read(x86.UC_X86_REG_RIP)
            fault = pending.exception
            fault.refine_address_later(lambda page_address: self._refine_fault_address(page_address, fault.error_code,
                                                                                       faulting_rip))
        if pending.kind == "syscall":
            self.charge_event("syscall")
            handler.handle_syscall(self)
            return STOP_TRAP
        exception = pending.exception
        if pending.rewind_bytes:
            self.uc.reg_write(x86.UC_X86_REG_RIP, self.uc.reg_read(x86.UC_X86_REG_RIP) - pending.rewind_bytes)
        self._refund_unexecuted()
        # Resume from a clean context: QEMU keeps a pending-exception state
        # after a fault reported to a hook (DESIGN.md, measured).
        self.load_user_registers(self.save_task_registers())
        if exception.trap_instruction_bytes:
            # A trap raised by an instruction the machine emulates (INT1): it
            # retired, and the trap frame's RIP is past it.
            self.write_register("rip", self.read_register("rip") + exception.trap_instruction_bytes)
            self.charge_instruction(None)
        if isinstance(pending.exception, GP) and self._emulate_time_stamp_counter():
            return STOP_TRAP
        self.charge_event("page_fault" if isinstance(pending.exception, PF) else "exception_entry")
        if events is not None:
            events.emit(self, "exception", **exception_fields(pending.exception))
        handler.handle_exception(self, pending.exception)
        return STOP_TRAP

    def _start_unicorn(self, rip: int, started: int | None = None) -> None:
        """uc.emu_start(rip, _END_ADDRESS) that survives Unicorn's translator
        aborting on an instruction (emu_x86/emu/translation_abort.py): the vCPU moves
        to a fresh Unicorn instance, runs up to that instruction, and the next
        run raises its #UD. Errors and hook exceptions surface as from
        uc.emu_start. ``started``: the status of that first emu_start, made
        already (finish_run)."""
        until = _END_ADDRESS
        untranslatable, self._untranslatable_at = self._untranslatable_at, None
        if untranslatable == rip and aborts_unicorn_translator(self.fetch_code(rip, MAX_INSTRUCTION_BYTES)):
            self.pending = PendingTrap("exception", UD(0))
            return
        while True:
            uc = self.uc
            if started is not None:
                # The machine's C loop started only runs no hook had failed
                # before, so _hook_exception is still None from the last check.
                status, started = started, None
            else:
                uc._hook_exception = None       # as Uc.emu_start does, for its hook wrappers
                status = hotpath.hotpath_emu_start_guarded(self.clock.uc, rip, until)
            if self.clock.syscall_pending:
                # The C SYSCALL hook was the last trap of this run.
                self.clock.syscall_pending = 0
                self.pending = SYSCALL_TRAP
            stopped_before, self._port_io_at = self._port_io_at, None
            if stopped_before is not None and status == uclib.UC_ERR_OK and self.pending is None \
                    and not self.clock.deadline_reached:
                # A block entry found a port I/O instruction (stop_before_port_io):
                # run up to it, then raise its #GP there.
                block, port_io = stopped_before
                rip = self.uc.reg_read(x86.UC_X86_REG_RIP)
                if rip == port_io:
                    self.pending = PendingTrap("exception", GP(0))
                    return
                if until == port_io:
                    return          # the run up to it ended elsewhere (no trap: the scheduler runs it again)
                # The block is translated whole: translate it again, ending
                # before the instruction (Unicorn's `until`).
                uc.ctl_remove_cache(block, port_io + 1)
                until = port_io
                continue
            if status != hotpath.HOTPATH_TRANSLATION_ABORTED:
                break
            self._replace_aborted_unicorn()
            # Registers were last written back at the start of the block being translated.
            rip = self.read_register("rip")
            culprit = find_untranslatable(self.fetch_code, rip)
            if culprit is None:
                raise RuntimeError(f"Unicorn's translator aborted on the block at {rip:#x} "
                                   f"({self.fetch_code(rip, 16).hex()}), which holds no instruction "
                                   "known to cause that")
            if culprit == rip:
                self.pending = PendingTrap("exception", UD(0))
                return
            # Run the block up to the culprit; the run that starts there raises #UD.
            self._untranslatable_at = until = culprit
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status)
        if uc._hook_exception is not None:
            raise uc._hook_exception

    def _replace_aborted_unicorn(self) -> None:
        """Continue on a new Unicorn instance with this vCPU's CPU state: the
        old one aborted inside its translator and its TCG state is undefined."""
        context = self.uc.context_save()
        self._abandoned_unicorns.append(self.uc)
        self._create_unicorn()
        self.uc.context_restore(context)
        self._flush_unicorn_tlb()
        # The block being translated was never charged.
        self.clock.last_block = ffi.NULL
        # Reported under the vCPU's "events" in the stats (no cycles: host-side work).
        self.event_counts["unicorn_translator_abort"] = self.event_counts.get("unicorn_translator_abort", 0) + 1
        for listener in self.unicorn_replaced_listeners:
            listener(self)

    def _refund_unexecuted(self, rip: int | None = None) -> None:
        """A fault (or a preemption point at ``rip``) stopped the vCPU inside
        the block the hot path charged in full at entry: keep only the cost
        of the instructions before the faulting one (which did not retire; it
        is charged again if it is restarted)."""
        clock = self.clock
        last = clock.last_block
        if last == ffi.NULL:
            return
        start, size = last.address, last.size_bytes
        if rip is None:
            rip = self.uc.reg_read(x86.UC_X86_REG_RIP)
        if not start <= rip < start + size:
            return
        # The price of the executed head, by (block, stop): what the block
        # table holds stays valid until it is cleared (_clear_block_prices),
        # and a preempting policy stops in the same hot blocks again and again.
        key = (start, size, rip)
        executed = self._head_prices.get(key)
        if executed is None:
            try:
                executed = self.machine.price_block(self, start, rip - start)[:2] if rip > start else (0, 0)
            except CpuException:
                clock.last_block = ffi.NULL
                return
            if len(self._head_prices) >= HEAD_PRICE_ENTRIES:
                self._head_prices.clear()
            self._head_prices[key] = executed
        hotpath.sched_refund_block(clock, *executed)

    def _emulate_time_stamp_counter(self) -> bool:
        """RDTSC/RDTSCP: the machine keeps CR4.TSD set so they fault (#GP at
        CPL3, SDM Vol. 2B RDTSC) and returns this vCPU's cycle clock, so a
        guest measures the cost model. RDTSCP also loads IA32_TSC_AUX (the CPU
        number, as Linux programs it) into ECX."""
        rip = self.uc.reg_read(x86.UC_X86_REG_RIP)
        try:
            code = self.machine.read_virtual(self, rip, 3)
        except CpuException:
            return False
        if code[:2] == b"\x0f\x31":
            length = 2
        elif code == b"\x0f\x01\xf9":
            length = 3
            self.uc.reg_write(x86.UC_X86_REG_RCX, self.msrs.tsc_aux)
        else:
            return False
        self.charge(int(round(self.machine.profile.instruction_cycles["rdtsc"])))
        tsc = self.msrs.read(MSR_IA32_TSC)
        self.uc.reg_write(x86.UC_X86_REG_RAX, tsc & 0xFFFFFFFF)
        self.uc.reg_write(x86.UC_X86_REG_RDX, tsc >> 32)
        self.uc.reg_write(x86.UC_X86_REG_RIP, rip + length)
        self.clock.instructions += 1
        return True

    def _refine_fault_address(self, address: int, error_code: int, rip: int) -> int:
        """The exact CR2 value of a fault the fill hook saw at page ``address``
        taken by the instruction at ``rip`` (faultaddr.py)."""
        if error_code & PF_INSTR:
            # A fetch fault: CR2 is RIP when the instruction starts on the
            # faulting page, else the page's first byte (it spans into it).
            return rip if address & ~0xFFF == rip & ~0xFFF else address
        try:
            code = self.machine.read_virtual(self, rip, MAX_INSTRUCTION_BYTES)
        except CpuException:
            try:
                code = self.machine.read_virtual(self, rip, PAGE_SIZE - (rip & (PAGE_SIZE - 1)))
            except CpuException:
                return address
        candidates = candidate_addresses(code, rip, self.read_register)
        return exact_fault_address(address, candidates)

    def _exception_for_uc_error(self, error: uclib.UcError, rip: int) -> CpuException:
        errno = error.errno
        if errno in (uclib.UC_ERR_INSN_INVALID,):
            return UD(0)
        if errno in (uclib.UC_ERR_READ_UNMAPPED, uclib.UC_ERR_WRITE_UNMAPPED,
                     uclib.UC_ERR_FETCH_UNMAPPED):
            # A translation pointed outside physical memory: a bus error.
            exc = CpuException(0)
            exc.vector = 18  # #MC
            return exc
        exc = GP(0)
        return exc
