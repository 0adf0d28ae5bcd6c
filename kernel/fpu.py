"""Extended FPU state for tasks: XSAVE features, permissions, XFD and first-use (#NM).

Mirrors the semantics of Linux's arch/x86/kernel/fpu/xstate.c and traps.c:
every task starts with the small fpstate and IA32_XFD arming XTILEDATA; the
process must ask ARCH_REQ_XCOMP_PERM before its first AMX instruction, which
traps with #NM (handle_xfd_event); xfd_enable_feature then checks the
permission and fpstate_realloc gives the task the large buffer and disarms
XFD, and the instruction restarts. Without the permission: SIGILL.
The full first-use design (vmalloc, context switches) grows in later issues.
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emu.isa import xstate
from emu.isa.state import (
    MSR_IA32_XFD, MSR_IA32_XFD_ERR, XFEATURE_MASK_PASID, XFEATURE_MASK_SSE, XFEATURE_MASK_X87,
    XFEATURE_MASK_XTILE, XFEATURE_MASK_XTILECFG, XFEATURE_MASK_XTILEDATA, XFEATURE_XTILEDATA,
)
from kernel.errno import EFAULT, EINVAL, EOPNOTSUPP, EPERM, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu.vcpu import VCpu
    from kernel.kernel import Kernel
    from kernel.task import Task

ARCH_GET_XCOMP_SUPP = 0x1021
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_MAX = 19    # one past the highest feature number this kernel knows (XTILEDATA)

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
# Kernel virtual addresses of fpstate buffers, in the vmalloc range (they are
# what XSAVES's modified optimization compares).
FPSTATE_VADDR_BASE = 0xFFFFC90000000000
FPSTATE_VADDR_STRIDE = 0x10000


@dataclass
class FpState:
    """A task's xstate buffer (struct fpstate): which features it holds, the
    XSAVES image (compacted form) and where it was last loaded."""
    xfeatures: int
    user_xfeatures: int
    xfd: int                     # the IA32_XFD value this task runs with
    is_vmalloc: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    kernel_address: int = 0
    last_cpu: int | None = None  # fpu->last_cpu

    def __post_init__(self):
        if not self.buffer:
            size = xstate.compacted_size(self.xfeatures)
            self.buffer = bytearray(size)
            # An all-init image: XSTATE_BV = 0, compacted form with these features.
            struct.pack_into("<QQ", self.buffer, xstate.HEADER_OFFSET, 0, self.xfeatures | xstate.COMPACTED_FORM)
        if not self.kernel_address:
            self.kernel_address = FPSTATE_VADDR_BASE + next(_fpstate_ids) * FPSTATE_VADDR_STRIDE


class KernelBufferAccess:
    """Lets the machine's XSAVES/XRSTORS (emu/isa/xstate.py) work on a kernel
    buffer: memory accesses go to ``fpstate.buffer`` at its kernel address,
    registers and extended state to the vCPU. The kernel's XSAVES runs at CPL0."""

    def __init__(self, vcpu: "VCpu", fpstate: FpState):
        self.vcpu = vcpu
        self.fpstate = fpstate
        self.xstate = vcpu.xstate
        self.cpu_model = vcpu.cpu_model

    def read_virtual(self, address: int, size: int) -> bytes:
        offset = address - self.fpstate.kernel_address
        return bytes(self.fpstate.buffer[offset:offset + size])

    def write_virtual(self, address: int, data: bytes) -> None:
        offset = address - self.fpstate.kernel_address
        self.fpstate.buffer[offset:offset + len(data)] = data

    def save_user_registers(self) -> dict:
        return self.vcpu.save_user_registers()

    def write_register(self, name: str, value) -> None:
        self.vcpu.write_register(name, value)


def save_fpregs_to_fpstate(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Switch-out: XSAVES the task's registers into its fpstate (save_fpregs_to_fpstate).
    The registers stay valid on this CPU until another fpstate is loaded."""
    fpstate = task.fpstate
    mask = fpstate.xfeatures & (vcpu.xstate.xcr0 | vcpu.xstate.xss)
    skipped = xstate.xsave(KernelBufferAccess(vcpu, fpstate), fpstate.kernel_address, mask, variant="xsaves")
    _charge_xsave(vcpu, fpstate, mask)
    kernel.counters["xsaves"] += 1
    kernel.counters["xsaves_components_skipped"] += skipped
    if kernel.machine.events is not None:
        kernel.machine.events.emit(vcpu, "xsaves", task=task.tid, mask=f"{mask:#x}", components_skipped=skipped)
    fpstate.last_cpu = vcpu.index
    kernel.fpregs_owner[vcpu.index] = fpstate


def restore_fpregs_from_fpstate(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Return to user: XRSTORS unless this CPU still holds exactly this task's
    registers (fpregs_state_valid: the per-CPU owner is this fpstate and its
    last_cpu is this CPU) -- then the restore is skipped."""
    fpstate = task.fpstate
    if kernel.fpregs_owner[vcpu.index] is fpstate and fpstate.last_cpu == vcpu.index:
        kernel.counters["xrstors_skipped"] += 1
        vcpu.charge_event("xrstors_skipped")
        if kernel.machine.events is not None:
            kernel.machine.events.emit(vcpu, "xrstors", task=task.tid, skipped=True)
        return
    mask = fpstate.xfeatures & (vcpu.xstate.xcr0 | vcpu.xstate.xss)
    xstate.xrstor(KernelBufferAccess(vcpu, fpstate), fpstate.kernel_address, mask, supervisor=True)
    _charge_xsave(vcpu, fpstate, mask)
    kernel.counters["xrstors"] += 1
    kernel.fpregs_owner[vcpu.index] = fpstate
    if kernel.machine.events is not None:
        kernel.machine.events.emit(vcpu, "xrstors", task=task.tid, mask=f"{mask:#x}", skipped=False)
    fpstate.last_cpu = vcpu.index


def _charge_xsave(vcpu: "VCpu", fpstate: FpState, mask: int) -> None:
    vcpu.charge_event("xsave_base")
    vcpu.charge_event("xsave_per_byte", xstate.compacted_size(mask))


@dataclass
class FpuPermission:
    """Process-wide (group leader's fpu.perm): features this process may use."""
    state_perm: int


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
    return FpuPermission(state_perm=config.default_user_features)


def new_task_fpstate(config: FpuConfig) -> FpState:
    """Every task starts small with the dynamic features armed in XFD (fpu__init_task)."""
    return FpState(xfeatures=config.default_user_features | config.supervisor_features,
                   user_xfeatures=config.default_user_features,
                   xfd=config.user_features & XFEATURE_MASK_USER_DYNAMIC)


def xfd_update_state(vcpu: "VCpu", fpstate: FpState) -> None:
    """Write IA32_XFD only when it differs from what this CPU holds (xfd_update_state)."""
    if vcpu.read_msr(MSR_IA32_XFD) != fpstate.xfd:
        vcpu.write_msr(MSR_IA32_XFD, fpstate.xfd)


def arch_prctl_xcomp(kernel: "Kernel", task: "Task", code: int, arg: int) -> int:
    config = kernel.fpu_config
    perm = task.process.fpu_permission
    if code == ARCH_GET_XCOMP_SUPP:
        task.mm.copy_to_user(arg, struct.pack("<Q", config.user_features))
        return 0
    if code == ARCH_GET_XCOMP_PERM:
        task.mm.copy_to_user(arg, struct.pack("<Q", perm.state_perm))
        return 0
    if code == ARCH_REQ_XCOMP_PERM:
        return xstate_request_perm(config, perm, arg)
    raise SyscallError(EINVAL)


def xstate_request_perm(config: FpuConfig, perm: FpuPermission, feature: int) -> int:
    """ARCH_REQ_XCOMP_PERM: permit a dynamic feature process-wide (xstate_request_perm)."""
    if feature >= XFEATURE_MAX:
        raise SyscallError(EINVAL)
    mask = 1 << feature
    if not config.user_features & mask:
        raise SyscallError(EOPNOTSUPP)
    if not mask & XFEATURE_MASK_USER_DYNAMIC:
        return 0   # already permitted by default
    # Linux also requires XTILECFG with XTILEDATA and checks every thread's
    # sigaltstack against the larger frame (the first-use issue adds that).
    perm.state_perm |= mask | (XFEATURE_MASK_XTILECFG if feature == XFEATURE_XTILEDATA else 0)
    return 0


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
    result = xfd_enable_feature(kernel, task, xfd_err)
    if result == -EPERM:
        return "sigill"
    if result == -EFAULT:
        return "sigsegv"
    xfd_update_state(vcpu, task.fpstate)
    return "retry"


def xfd_enable_feature(kernel: "Kernel", task: "Task", xfd_err: int) -> int:
    """Give the task the buffer for ``xfd_err``'s features and disarm XFD (fpstate_realloc)."""
    requested = xfd_err & XFEATURE_MASK_USER_DYNAMIC
    if not requested:
        return -EPERM
    if task.process.fpu_permission.state_perm & requested != requested:
        return -EPERM
    fpstate = task.fpstate
    if fpstate.xfeatures & requested == requested:
        return 0
    # The task's registers are live on this CPU (it trapped from user mode), so
    # the larger buffer need not copy the old image: ownership moves to it and
    # the next XSAVES fills it, as fpstate_realloc does when the regs are live.
    new = FpState(xfeatures=fpstate.xfeatures | requested, user_xfeatures=fpstate.user_xfeatures | requested,
                  xfd=fpstate.xfd & ~requested, is_vmalloc=True)
    task.fpstate = new
    if task.cpu is not None and kernel.fpregs_owner[task.cpu] is fpstate:
        kernel.fpregs_owner[task.cpu] = new
        new.last_cpu = task.cpu
    kernel.counters["xstate_allocs"] += 1
    return 0
