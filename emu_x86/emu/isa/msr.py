"""The MSR file the emulator owns, with CPL0 semantics (SDM Vol. 4).

Guests run at CPL3, where RDMSR/WRMSR fault (#GP) before reaching here; the
kernel reaches MSRs through ``VCpu.read_msr``/``write_msr`` (its machine
API), and a write of a reserved bit raises GP(0) exactly as WRMSR would.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa.state import (
    MSR_IA32_EFER, MSR_IA32_FS_BASE, MSR_IA32_GS_BASE, MSR_IA32_KERNEL_GS_BASE, MSR_IA32_PASID,
    MSR_IA32_TSC, MSR_IA32_TSC_AUX, MSR_IA32_XFD, MSR_IA32_XFD_ERR, MSR_IA32_XSS, XFEATURE_MASK_PASID,
    XFEATURE_MASK_XTILEDATA,
)
from emu_x86.emu.traps import GP

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu

# EFER: SCE | LME | LMA | NXE -- long mode with SYSCALL and execute-disable.
EFER_VALUE = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11)
# XFD may arm only XFD-capable components (CPUID.(EAX=0DH,ECX=i):ECX[2]); others are reserved.
XFD_SUPPORTED_MASK = XFEATURE_MASK_XTILEDATA
# IA32_XSS: the supervisor components this machine implements.
XSS_SUPPORTED_MASK = XFEATURE_MASK_PASID
PASID_VALID_MASK = (1 << 31) | ((1 << 20) - 1)   # bit 31 valid, bits 19:0 PASID


def _canonical(value: int) -> bool:
    top = value >> 47
    return top == 0 or top == (1 << 17) - 1


class MsrFile:
    def __init__(self, vcpu: "VCpu"):
        self.vcpu = vcpu
        self.tsc_aux = 0
        self.kernel_gs_base = 0
        self.tsc_offset = 0

    def read(self, index: int) -> int:
        vcpu, xstate = self.vcpu, self.vcpu.xstate
        if index == MSR_IA32_XFD:
            return xstate.xfd
        if index == MSR_IA32_XFD_ERR:
            return xstate.xfd_err
        if index == MSR_IA32_XSS:
            return xstate.xss
        if index == MSR_IA32_PASID:
            return xstate.pasid
        if index == MSR_IA32_TSC:
            return (vcpu.cycles + self.tsc_offset) & ((1 << 64) - 1)
        if index == MSR_IA32_TSC_AUX:
            return self.tsc_aux
        if index == MSR_IA32_EFER:
            return EFER_VALUE
        if index == MSR_IA32_FS_BASE:
            return vcpu.read_register("fs_base")
        if index == MSR_IA32_GS_BASE:
            return vcpu.read_register("gs_base")
        if index == MSR_IA32_KERNEL_GS_BASE:
            return self.kernel_gs_base
        raise GP(0)

    def write(self, index: int, value: int) -> None:
        vcpu, xstate = self.vcpu, self.vcpu.xstate
        if not 0 <= value < (1 << 64):
            raise GP(0)
        if index == MSR_IA32_XFD:
            if value & ~XFD_SUPPORTED_MASK:
                raise GP(0)
            xstate.xfd = value
        elif index == MSR_IA32_XFD_ERR:
            if value & ~XFD_SUPPORTED_MASK:
                raise GP(0)
            xstate.xfd_err = value
        elif index == MSR_IA32_XSS:
            if value & ~XSS_SUPPORTED_MASK:
                raise GP(0)
            xstate.xss = value
        elif index == MSR_IA32_PASID:
            if value & ~PASID_VALID_MASK:
                raise GP(0)
            xstate.pasid = value
            xstate.modified_since_restore |= XFEATURE_MASK_PASID
        elif index == MSR_IA32_TSC:
            self.tsc_offset = (value - vcpu.cycles) & ((1 << 64) - 1)
            vcpu.apic._publish()        # a TSC-deadline timer's due time moved with the offset
        elif index == MSR_IA32_TSC_AUX:
            if value >> 32:
                raise GP(0)
            self.tsc_aux = value
        elif index in (MSR_IA32_FS_BASE, MSR_IA32_GS_BASE, MSR_IA32_KERNEL_GS_BASE):
            if not _canonical(value):
                raise GP(0)
            if index == MSR_IA32_FS_BASE:
                vcpu.write_register("fs_base", value)
            elif index == MSR_IA32_GS_BASE:
                vcpu.write_register("gs_base", value)
            else:
                self.kernel_gs_base = value
        elif index == MSR_IA32_EFER:
            if value != EFER_VALUE:
                raise GP(0)   # long mode, SCE and NXE are fixed on this machine
        else:
            raise GP(0)
