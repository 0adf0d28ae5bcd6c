"""Extended FPU state for tasks: XSAVE features, permissions, XFD and first-use (#NM).

Mirrors the semantics of Linux's arch/x86/kernel/fpu/xstate.c and traps.c:
every task starts with the small fpstate and IA32_XFD arming XTILEDATA; the
process must ask ARCH_REQ_XCOMP_PERM before its first AMX instruction, which
traps with #NM (handle_xfd_event); xfd_enable_feature then checks the
permission and fpstate_realloc gives the task the large buffer and disarms
XFD, and the instruction restarts. Without the permission: SIGILL; when the
allocation fails: SIGSEGV. Where the larger buffer comes from is the
``xstate_alloc=`` policy (emu_x86/kernel/xstate_alloc.py); the permission also sizes
signal frames and alternate stacks (signal.c sigaltstack_size_valid,
xstate.c validate_sigaltstack).
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import xstate
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import ACCESS_READ, ACCESS_WRITE
from emu_x86.emu.isa.state import (
    MSR_IA32_XFD, MSR_IA32_XFD_ERR, XFEATURE_MASK_PASID, XFEATURE_MASK_SSE, XFEATURE_MASK_X87,
    XFEATURE_MASK_XTILE, XFEATURE_MASK_XTILECFG, XFEATURE_MASK_XTILEDATA, XFEATURE_XTILEDATA,
)
from emu_x86.kernel.errno import EFAULT, EINVAL, ENOSPC, EOPNOTSUPP, EPERM, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

ARCH_GET_XCOMP_SUPP = 0x1021
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_MAX = 19    # one past the highest feature number this kernel knows (XTILEDATA)
XFEATURE_MASK_FPSSE = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE

# Features that need a permission request and a larger buffer (XFEATURE_MASK_USER_DYNAMIC).
XFEATURE_MASK_USER_DYNAMIC = XFEATURE_MASK_XTILEDATA


@dataclass
class FpuConfig:
    """What the kernel enabled at boot (fpu_kernel_cfg/fpu_user_cfg)."""
    user_features: int           # XCR0
    supervisor_features: int     # IA32_XSS

    @property
    def default_user_features(self) -> int:
        return self.user_features & ~XFEATURE_MASK_USER_DYNAMIC


_fpstate_ids = itertools.count(1)
# Kernel virtual addresses of fpstates embedded in task_struct (slab memory in
# the direct map, 0xffff888000000000 on x86-64). They are what XSAVES's
# modified optimization compares; the bytes live in ``FpState.buffer``.
FPSTATE_VADDR_BASE = 0xFFFF888000000000
FPSTATE_VADDR_STRIDE = 0x10000

# Where an fpstate's bytes live (who owns them):
FPSTATE_EMBEDDED = "embedded"   # in task_struct (kernel slab): ``buffer``
FPSTATE_VMALLOC = "vmalloc"     # vzalloc'ed (kernel/mm/vmalloc.py): ``area``, real PTEs
FPSTATE_PAGES = "pages"         # an array of page frames, not mapped contiguously:
                                # XSAVES/XRSTORS go through a per-CPU area (pages_percpu)


@dataclass
class FpState:
    """A task's xstate buffer (struct fpstate): which features it holds, the
    XSAVES image (compacted form) and where it was last loaded. Owned by
    emu_x86/kernel/fpu.py; its storage by the allocation policy (emu_x86/kernel/xstate_alloc.py).
    ``amx``: under xstate_alloc=separate, the buffer holding only the AMX
    components while this one keeps the standard layout."""
    xfeatures: int
    user_xfeatures: int
    xfd: int                     # the IA32_XFD value this task runs with
    storage: str = FPSTATE_EMBEDDED
    buffer: bytearray = field(default_factory=bytearray)
    area: object = None          # kernel.mm.vmalloc.VmapArea when storage is vmalloc
    pages: list = field(default_factory=list)
    kernel_address: int = 0
    last_cpu: int | None = None  # fpu->last_cpu
    amx: "FpState | None" = None
    released: bool = False       # given back at task exit (fpstate_free)

    def __post_init__(self):
        if self.storage == FPSTATE_EMBEDDED and not self.buffer:
            self.buffer = bytearray(self.size_bytes)
            # init_fpstate's image: XSTATE_BV = 0, compacted form with these
            # features, and the legacy area fpstate_init_fxstate fills in
            # (FCW 0x37F, MXCSR 0x1F80). XRSTORS loads MXCSR from the buffer
            # even when SSE is in its init state, so a new program starts with
            # every SSE exception masked, as on Linux.
            self.buffer[:xstate.LEGACY_INIT_BYTES] = xstate.legacy_init_image()
            struct.pack_into("<QQ", self.buffer, xstate.HEADER_OFFSET, 0, self.xfeatures | xstate.COMPACTED_FORM)
        if self.storage == FPSTATE_VMALLOC:
            self.kernel_address = self.area.start
        if not self.kernel_address and self.storage == FPSTATE_EMBEDDED:
            self.kernel_address = FPSTATE_VADDR_BASE + next(_fpstate_ids) * FPSTATE_VADDR_STRIDE

    @property
    def size_bytes(self) -> int:
        return xstate.compacted_size(self.xfeatures)

    @property
    def is_vmalloc(self) -> bool:
        return self.storage == FPSTATE_VMALLOC


def init_xstate_header(memory, frames: list[int], xfeatures: int) -> None:
    """xstate_init_xcomp_bv on a buffer made of page frames (written through the
    direct map): XSTATE_BV = 0 (all init), XCOMP_BV = features | compacted,
    and init_fpstate's legacy values (FCW, MXCSR) as in FpState.__post_init__."""
    memory.write(frames[0], xstate.legacy_init_image())
    memory.write(frames[0] + xstate.HEADER_OFFSET,
                 struct.pack("<QQ", 0, xfeatures | xstate.COMPACTED_FORM).ljust(xstate.HEADER_BYTES, b"\0"))


class KernelBufferAccess:
    """Lets the machine's XSAVES/XRSTORS (emu_x86/emu/isa/xstate.py) work on a kernel
    buffer at CPL0: registers and extended state come from the vCPU; memory
    is the fpstate -- an embedded buffer directly, a vmalloc'ed one through the
    vCPU's page tables (supervisor accesses to the shared kernel half, so a
    missing PTE is a kernel bug that surfaces as a #PF here)."""

    def __init__(self, vcpu: "VCpu", fpstate: FpState, registers: dict | None = None):
        self.vcpu = vcpu
        self.fpstate = fpstate
        self.xstate = vcpu.xstate
        self.cpu_model = vcpu.cpu_model
        # The vCPU's save_user_registers() when the caller has just read them
        # (switch-out), so the instruction does not read them again.
        self._registers = registers
        # One XSAVES/XRSTORS walks each page of the buffer once per access kind:
        # a second walk of the same page with the same access finds the same
        # frame and sets the same Accessed/Dirty bits, so it is skipped. The
        # cache lives as long as this object -- one instruction.
        self._frames: dict[tuple[int, int], int] = {}

    def _physical_pieces(self, address: int, size: int, access: int):
        pieces = []
        frames = self._frames
        while size > 0:
            page_offset = address & (PAGE_SIZE - 1)
            chunk = min(size, PAGE_SIZE - page_offset)
            key = (address - page_offset, access)
            frame = frames.get(key)
            if frame is None:
                frame = frames[key] = self.vcpu.translate(address - page_offset, access, user_mode=False)
            pieces.append((frame | page_offset, chunk))
            address += chunk
            size -= chunk
        return pieces

    def read_virtual(self, address: int, size: int) -> bytes:
        if self.fpstate.storage == FPSTATE_VMALLOC:
            memory = self.vcpu.machine.memory
            page_offset = address & (PAGE_SIZE - 1)
            if page_offset + size <= PAGE_SIZE:            # within one page: one cached frame
                frame = self._frames.get((address - page_offset, ACCESS_READ))
                if frame is not None:
                    return memory.read(frame | page_offset, size)
            pieces = self._physical_pieces(address, size, ACCESS_READ)
            if len(pieces) == 1:
                return memory.read(*pieces[0])
            return b"".join(memory.read(paddr, chunk) for paddr, chunk in pieces)
        offset = address - self.fpstate.kernel_address
        return bytes(self.fpstate.buffer[offset:offset + size])

    def write_virtual(self, address: int, data: bytes) -> None:
        if self.fpstate.storage == FPSTATE_VMALLOC:
            memory = self.vcpu.machine.memory
            page_offset = address & (PAGE_SIZE - 1)
            if page_offset + len(data) <= PAGE_SIZE:       # within one page: one cached frame
                frame = self._frames.get((address - page_offset, ACCESS_WRITE))
                if frame is not None:
                    memory.write(frame | page_offset, data)
                    return
            offset = 0
            for paddr, chunk in self._physical_pieces(address, len(data), ACCESS_WRITE):
                memory.write(paddr, data[offset:offset + chunk])
                offset += chunk
            return
        offset = address - self.fpstate.kernel_address
        self.fpstate.buffer[offset:offset + len(data)] = data

    def save_user_registers(self) -> dict:
        if self._registers is not None:
            return self._registers
        return self.vcpu.save_user_registers()

    def write_register(self, name: str, value) -> None:
        self.vcpu.write_register(name, value)

    def write_registers(self, values: dict) -> None:
        self.vcpu.write_registers(values)


def _xsaves(kernel: "Kernel", vcpu: "VCpu", buffer: FpState, mask: int, registers: dict | None = None) -> None:
    # The C instruction (emu_x86/emu/isa/xstate_fast.c) when it takes the case, else the Python one.
    # The C one takes an fpstate embedded in task_struct as host bytes, and
    # reaches a vmalloc'ed one through the page tables.
    skipped = xstate.xsaves_fast(vcpu, buffer.kernel_address, mask,
                                 None if buffer.storage == FPSTATE_VMALLOC else buffer.buffer)
    if skipped is None:
        skipped = xstate.xsave(KernelBufferAccess(vcpu, buffer, registers), buffer.kernel_address, mask,
                               variant="xsaves")
    vcpu.charge_xsave(buffer.size_bytes)
    counters = kernel.counters
    counters["xsaves"] += 1
    counters["xsaves_components_skipped"] += skipped
    if kernel.machine.events is not None:
        kernel.machine.events.emit(vcpu, "xsaves", mask=f"{mask:#x}", components_skipped=skipped)


def _xrstors(kernel: "Kernel", vcpu: "VCpu", buffer: FpState, mask: int) -> None:
    if not xstate.xrstors_fast(vcpu, buffer.kernel_address, mask,
                               None if buffer.storage == FPSTATE_VMALLOC else buffer.buffer):
        xstate.xrstor(KernelBufferAccess(vcpu, buffer), buffer.kernel_address, mask, supervisor=True)
    vcpu.charge_xsave(buffer.size_bytes)
    kernel.counters["xrstors"] += 1


def _copy_pages(kernel: "Kernel", vcpu: "VCpu", source: list[int], target: list[int], size_bytes: int) -> None:
    """memcpy between two page arrays through the direct map (pages_percpu's copy in/out)."""
    memory = kernel.machine.memory
    remaining = size_bytes
    for source_frame, target_frame in zip(source, target):
        chunk = min(remaining, PAGE_SIZE)
        memory.write(target_frame, memory.read(source_frame, chunk))
        remaining -= chunk
    vcpu.charge_event("memcpy_per_byte", size_bytes)
    kernel.counters["xstate_copy_bytes"] += size_bytes


def save_fpregs_to_fpstate(kernel: "Kernel", vcpu: "VCpu", task: "Task", registers: dict | None = None) -> None:
    """Switch-out: XSAVES the task's registers into its fpstate (save_fpregs_to_fpstate).
    The registers stay valid on this CPU until another fpstate is loaded.
    ``registers``: the vCPU's ``save_user_registers()``, when just read (the
    Python XSAVES uses them; the C one reads x87/SSE itself).

    A paged fpstate (xstate_alloc=pages_percpu) is saved into this CPU's
    contiguous area and copied out; a separate AMX buffer (xstate_alloc=separate)
    takes a second XSAVES of the tile components."""
    fpstate = task.fpstate
    enabled = vcpu.xstate.xcr0 | vcpu.xstate.xss
    if fpstate.storage == FPSTATE_PAGES:
        area = kernel.xstate_alloc.percpu_area(vcpu.index)
        _xsaves(kernel, vcpu, area, fpstate.xfeatures & enabled, registers)
        _copy_pages(kernel, vcpu, area.area.frames, fpstate.pages, fpstate.size_bytes)
    else:
        _xsaves(kernel, vcpu, fpstate, fpstate.xfeatures & enabled, registers)
        if fpstate.amx is not None:
            _xsaves(kernel, vcpu, fpstate.amx, fpstate.amx.xfeatures & enabled, registers)
    fpstate.last_cpu = vcpu.index
    kernel.fpregs_owner[vcpu.index] = fpstate


def fpregs_state_valid(kernel: "Kernel", vcpu: "VCpu", fpstate: FpState) -> bool:
    """This CPU still holds exactly ``fpstate``'s registers (fpregs_state_valid:
    the per-CPU owner is this fpstate and its last_cpu is this CPU)."""
    return kernel.fpregs_owner[vcpu.index] is fpstate and fpstate.last_cpu == vcpu.index


def restore_loads_legacy_registers(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> bool:
    """Whether ``restore_fpregs_from_fpstate`` for ``task`` will write every
    x87/SSE register: it runs an XRSTORS (the registers are not still valid
    here) whose RFBM, every enabled feature, holds x87 and SSE. Such an
    XRSTORS loads each from the buffer or its init value (SDM Vol. 1
    §13.12), so Kernel.switch_to need not write them before it."""
    enabled = vcpu.xstate.xcr0 | vcpu.xstate.xss
    return (enabled & XFEATURE_MASK_FPSSE == XFEATURE_MASK_FPSSE
            and not fpregs_state_valid(kernel, vcpu, task.fpstate))


def restore_fpregs_from_fpstate(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Return to user: XRSTORS unless this CPU still holds exactly this task's
    registers (fpregs_state_valid: the per-CPU owner is this fpstate and its
    last_cpu is this CPU) -- then the restore is skipped.

    The restore covers every enabled feature, not just the buffer's: a feature
    the previous task used and this one lacks must go back to its init state
    (restore_fpregs_from_fpstate uses fpu_kernel_cfg.max_features)."""
    fpstate = task.fpstate
    if fpregs_state_valid(kernel, vcpu, fpstate):
        kernel.counters["xrstors_skipped"] += 1
        vcpu.charge_event("xrstors_skipped")
        if kernel.machine.events is not None:
            kernel.machine.events.emit(vcpu, "xrstors", task=task.tid, skipped=True)
        return
    mask = vcpu.xstate.xcr0 | vcpu.xstate.xss
    if fpstate.storage == FPSTATE_PAGES:
        area = kernel.xstate_alloc.percpu_area(vcpu.index)
        _copy_pages(kernel, vcpu, fpstate.pages, area.area.frames, fpstate.size_bytes)
        _xrstors(kernel, vcpu, area, mask)
    else:
        _xrstors(kernel, vcpu, fpstate, mask)
        if fpstate.amx is not None:
            _xrstors(kernel, vcpu, fpstate.amx, fpstate.amx.xfeatures & mask)
    kernel.fpregs_owner[vcpu.index] = fpstate
    if kernel.machine.events is not None:
        kernel.machine.events.emit(vcpu, "xrstors", task=task.tid, mask=f"{mask:#x}", skipped=False)
    fpstate.last_cpu = vcpu.index


def fpu_drop(kernel: "Kernel", task: "Task") -> None:
    """The task is gone: no CPU may treat its registers as live (fpu__drop)."""
    for cpu, owner in enumerate(kernel.fpregs_owner):
        if owner is task.fpstate:
            kernel.fpregs_owner[cpu] = None


def fpstate_free(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Task exit: drop the registers and give the dynamic buffer back
    (arch_release_task_struct -> fpstate_free: vfree when it was vmalloc'ed)."""
    fpu_drop(kernel, task)
    fpstate = task.fpstate
    if fpstate is not None and not fpstate.released:
        fpstate.released = True
        before = vcpu.cycles
        kernel.xstate_alloc.release(vcpu, fpstate)
        kernel.counters["xstate_alloc_cycles"] += vcpu.cycles - before


@dataclass
class FpuPermission:
    """Process-wide (group leader's fpu.perm, shared by its threads): the
    features this process may use and the buffer sizes they need --
    ``state_size_bytes`` the kernel's compacted buffer (__state_size),
    ``user_state_size_bytes`` the standard-format signal-frame copy
    (__user_state_size)."""
    state_perm: int
    state_size_bytes: int = 0
    user_state_size_bytes: int = 0


def fpu_init(kernel: "Kernel") -> FpuConfig:
    """Enable every feature the CPU and this kernel support on every CPU (fpu__init_cpu_xstate)."""
    wanted_user = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE
    vcpu0 = kernel.machine.vcpus[0]
    if vcpu0.cpu_model.amx:
        wanted_user |= XFEATURE_MASK_XTILE
    config = FpuConfig(user_features=wanted_user, supervisor_features=XFEATURE_MASK_PASID)
    for vcpu in kernel.machine.vcpus:
        vcpu.xsetbv(0, config.user_features)
        vcpu.write_msr(0xDA0, config.supervisor_features)
    return config


def new_process_permission(config: FpuConfig) -> FpuPermission:
    """What exec gives a process: the default features only (fpstate_reset)."""
    return FpuPermission(state_perm=config.default_user_features,
                         state_size_bytes=xstate.compacted_size(config.default_user_features
                                                                | config.supervisor_features),
                         user_state_size_bytes=xstate.standard_size(config.default_user_features))


def new_task_fpstate(config: FpuConfig) -> FpState:
    """Every task starts small with the dynamic features armed in XFD (fpu__init_task)."""
    return FpState(xfeatures=config.default_user_features | config.supervisor_features,
                   user_xfeatures=config.default_user_features,
                   xfd=config.user_features & XFEATURE_MASK_USER_DYNAMIC)


def xfd_update_state(vcpu: "VCpu", fpstate: FpState) -> None:
    """Write IA32_XFD only when it differs from what this CPU holds (xfd_update_state)."""
    if vcpu.read_msr(MSR_IA32_XFD) != fpstate.xfd:
        vcpu.write_msr(MSR_IA32_XFD, fpstate.xfd)


# ---- signal-frame sizes (arch/x86/kernel/signal.c) ------------------------------------

RT_SIGFRAME_BYTES = 440             # sizeof(struct rt_sigframe): MAX_FRAME_SIGINFO_UCTXT_SIZE
FRAME_ALIGNMENT_BYTES = 16
MAX_FRAME_PADDING_BYTES = FRAME_ALIGNMENT_BYTES - 1
MAX_XSAVE_PADDING_BYTES = 63        # the XSAVE area is 64-byte aligned below an unaligned frame
FP_XSTATE_MAGIC2_BYTES = 4
MINSIGSTKSZ = 2048                  # the uapi constant sigaltstack checks first


def fpstate_sigframe_bytes(config: FpuConfig) -> int:
    """fpu__get_fpstate_size: the largest user xstate (standard format) plus
    MAGIC2. This kernel has no 32-bit compat, so no fsave header is added."""
    return xstate.standard_size(config.user_features) + FP_XSTATE_MAGIC2_BYTES


def get_sigframe_size(config: FpuConfig) -> int:
    """max_frame_size (init_sigframe_size): the worst-case signal frame with every
    feature the machine enables -- what AT_MINSIGSTKSZ reports to every program."""
    size = RT_SIGFRAME_BYTES + MAX_FRAME_PADDING_BYTES + fpstate_sigframe_bytes(config) + MAX_XSAVE_PADDING_BYTES
    return (size + FRAME_ALIGNMENT_BYTES - 1) & ~(FRAME_ALIGNMENT_BYTES - 1)


def sigaltstack_size_valid(kernel: "Kernel", process, ss_size: int) -> bool:
    """sigaltstack_size_valid: with dynamic features, an alternate stack must hold
    the frame for what the process is permitted (always under strict_sas_size;
    else only once a dynamic feature is permitted, so programs that never ask
    for AMX keep working with MINSIGSTKSZ stacks)."""
    config = kernel.fpu_config
    dynamic = bool(config.user_features & XFEATURE_MASK_USER_DYNAMIC)
    strict = kernel.strict_sas_size
    if not dynamic and not strict:
        return True
    perm = process.fpu_permission
    frame_without_xstate = get_sigframe_size(config) - fpstate_sigframe_bytes(config)
    needed = frame_without_xstate + perm.user_state_size_bytes
    if ss_size > needed:
        return True
    if strict or perm.state_perm & XFEATURE_MASK_USER_DYNAMIC:
        return False
    return True


def validate_sigaltstack(kernel: "Kernel", process, user_state_size_bytes: int) -> None:
    """Before widening the permission: every thread's alternate stack must hold
    the larger frame, else -ENOSPC (xstate.c validate_sigaltstack)."""
    config = kernel.fpu_config
    framesize = get_sigframe_size(config) - xstate.standard_size(config.user_features) + user_state_size_bytes
    for thread in process.tasks:
        if thread.state == "exited" or thread.sigaltstack is None:
            continue
        if thread.sigaltstack[2] < framesize:
            raise SyscallError(ENOSPC)


# ---- arch_prctl ------------------------------------------------------------------------

def arch_prctl_xcomp(kernel: "Kernel", vcpu: "VCpu", task: "Task", code: int, arg: int) -> int:
    config = kernel.fpu_config
    perm = task.process.fpu_permission
    if code == ARCH_GET_XCOMP_SUPP:
        task.mm.copy_to_user(arg, struct.pack("<Q", config.user_features))
        return 0
    if code == ARCH_GET_XCOMP_PERM:
        task.mm.copy_to_user(arg, struct.pack("<Q", perm.state_perm))
        return 0
    if code == ARCH_REQ_XCOMP_PERM:
        granted = xstate_request_perm(kernel, task.process, arg)
        if granted:
            kernel.xstate_alloc.permission_granted(vcpu, task.process, granted)
        return 0
    raise SyscallError(EINVAL)


def xstate_request_perm(kernel: "Kernel", process, feature: int) -> int:
    """ARCH_REQ_XCOMP_PERM: permit a dynamic feature process-wide (xstate_request_perm,
    __xstate_request_perm). Returns the newly permitted features (0 if none)."""
    config = kernel.fpu_config
    perm = process.fpu_permission
    if feature >= XFEATURE_MAX:
        raise SyscallError(EINVAL)
    requested = 1 << feature
    if feature == XFEATURE_XTILEDATA:
        requested |= XFEATURE_MASK_XTILECFG     # tile data is useless without its config
    if config.user_features & requested != requested:
        raise SyscallError(EOPNOTSUPP)
    if perm.state_perm & requested == requested:
        return 0
    mask = perm.state_perm | requested
    kernel_size = xstate.compacted_size(mask | config.supervisor_features)
    user_size = xstate.standard_size(mask)
    validate_sigaltstack(kernel, process, user_size)
    perm.state_perm = mask
    perm.state_size_bytes = kernel_size
    perm.user_state_size_bytes = user_size
    return requested


def handle_xfd_event(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> str:
    """#NM from user mode. Returns "retry" (feature enabled, restart the
    instruction), "sigill" (no permission) or "sigsegv" (allocation failed),
    or "not_xfd" when XFD_ERR is clear (not an XFD event)."""
    xfd_err = vcpu.read_msr(MSR_IA32_XFD_ERR)
    if not xfd_err:
        return "not_xfd"
    # Hardware sets XFD_ERR, software clears it (SDM Vol. 1 §13.14).
    vcpu.write_msr(MSR_IA32_XFD_ERR, 0)
    kernel.counters["nm_faults"] += 1
    result = xfd_enable_feature(kernel, vcpu, task, xfd_err)
    if result == -EPERM:
        return "sigill"
    if result == -EFAULT:
        return "sigsegv"
    xfd_update_state(vcpu, task.fpstate)
    return "retry"


def xfd_enable_feature(kernel: "Kernel", vcpu: "VCpu", task: "Task", xfd_err: int) -> int:
    """Give the task the buffer for ``xfd_err``'s features and disarm XFD
    (xfd_enable_feature -> fpstate_realloc). 0, -EPERM or -EFAULT."""
    requested = xfd_err & XFEATURE_MASK_USER_DYNAMIC
    if not requested:
        return 0            # not a dynamic feature: nothing to enable (Linux logs it once)
    if task.process.fpu_permission.state_perm & requested != requested:
        return -EPERM
    fpstate = task.fpstate
    if fpstate.xfeatures & requested == requested or fpstate.user_xfeatures & requested == requested:
        # The buffer already holds the feature (eager allocation, or another
        # thread's request raced): only XFD needs disarming.
        fpstate.xfd &= ~requested
        return 0
    before = vcpu.cycles
    allocated = kernel.xstate_alloc.fpstate_realloc(vcpu, task, requested)
    kernel.counters["xstate_alloc_cycles"] += vcpu.cycles - before
    return 0 if allocated else -EFAULT


def fpstate_replace(kernel: "Kernel", task: "Task", new: FpState) -> FpState:
    """Swap in ``new`` (the second half of fpstate_realloc). The task trapped
    from user mode, so its registers are live on this CPU: the new buffer need
    not copy the old image -- ownership of the live registers moves to it and
    the next XSAVES fills it. Returns the old fpstate for the caller to free."""
    old = task.fpstate
    task.fpstate = new
    if task.cpu is not None and kernel.fpregs_owner[task.cpu] is old:
        kernel.fpregs_owner[task.cpu] = new
        new.last_cpu = task.cpu
    kernel.counters["xstate_allocs"] += 1
    return old
