"""The legacy vsyscall page at 0xffffffffff600000, as Linux's default vsyscall=xonly.

No page is mapped there; a user call into it takes an instruction-fetch
page fault, and the fault handler emulates the three vsyscalls -- the
system call, then a RET to the caller's return address
(arch/x86/entry/vsyscall/vsyscall_64.c emulate_vsyscall, called from
arch/x86/mm/fault.c do_user_addr_fault before any VMA lookup). Reading the
page is an ordinary SIGSEGV (xonly: execute only), a call to any other
offset a SIGSEGV too.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.traps import PF_INSTR, PF_USER, PF_WRITE
from emu_x86.kernel import signals
from emu_x86.kernel.errno import EFAULT, SyscallError
from emu_x86.kernel.sigframe import SigInfo, force_sig_fault
from emu_x86.kernel.traps import TASK_SIZE_MAX

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

VSYSCALL_ADDR = 0xFFFFFFFFFF600000
PAGE_MASK = ~0xFFF
VSYSCALL_NR_BITS = 0xC00          # entries every 1024 bytes
MASK64 = (1 << 64) - 1

# vsyscall number -> (x86-64 system call, bytes each pointer argument may write)
SYS_gettimeofday, SYS_time, SYS_getcpu = 96, 201, 309
VSYSCALLS = {
    0: (SYS_gettimeofday, (16, 8)),     # struct __kernel_old_timeval, struct timezone
    1: (SYS_time, (8,)),                # __kernel_old_time_t
    2: (SYS_getcpu, (4, 4)),            # unsigned cpu, unsigned node
}
_ARGUMENTS = ("rdi", "rsi", "rdx")


def is_vsyscall_vaddr(address: int) -> bool:
    return address & PAGE_MASK & MASK64 == VSYSCALL_ADDR


def addr_to_vsyscall_nr(address: int) -> int | None:
    if address & ~VSYSCALL_NR_BITS & MASK64 != VSYSCALL_ADDR:
        return None
    number = (address & VSYSCALL_NR_BITS) >> 10
    return number if number < 3 else None


def _access_ok(pointer: int, size: int) -> bool:
    return pointer + size <= TASK_SIZE_MAX


def emulate_vsyscall(kernel: "Kernel", vcpu: "VCpu", task: "Task", address: int, error_code: int) -> bool:
    """A user page fault at ``address``: True when handled here (emulated, or
    a signal sent), False for the ordinary fault path (reads: SIGSEGV)."""
    if not is_vsyscall_vaddr(address):
        return False
    if error_code & (PF_WRITE | PF_USER) != PF_USER or not error_code & PF_INSTR:
        return False                 # writes, and (xonly) every read, fault normally
    number = addr_to_vsyscall_nr(address)
    registers = vcpu.read_registers(("rsp", *_ARGUMENTS))
    try:
        if number is None:
            raise SyscallError(EFAULT)   # misaligned vsyscall
        (caller,) = struct.unpack("<Q", task.mm.copy_from_user(registers["rsp"], 8))
    except SyscallError:
        force_sig_fault(kernel, vcpu, task, SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0))
        return True
    syscall_number, pointer_sizes = VSYSCALLS[number]
    for register, size in zip(_ARGUMENTS, pointer_sizes):
        pointer = registers[register]
        if not _access_ok(pointer, size):
            # write_ok_or_segv: a pointer outside user space is a SEGV_MAPERR at it.
            task.trap_nr, task.error_code, task.cr2 = 14, PF_USER | PF_WRITE, pointer
            force_sig_fault(kernel, vcpu, task, SigInfo(signals.SIGSEGV, signals.SEGV_MAPERR, pointer))
            return True
    from emu_x86.kernel.syscall_table import SYSCALLS
    arguments = [registers[name] for name in _ARGUMENTS] + [0, 0, 0]
    if number == 2:
        arguments[2] = 0              # getcpu's third argument (tcache) is NULL, RDX kept
    kernel.counters["vsyscalls"] += 1
    try:
        result = SYSCALLS[syscall_number](kernel, vcpu, task, *arguments)
    except SyscallError as error:
        result = -error.errno
    if result == -EFAULT:
        # A bad pointer fed to a vsyscall: SIGSEGV (force_sig) instead of -EFAULT.
        force_sig_fault(kernel, vcpu, task, SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0))
        return True
    # Emulate the RET: back to the caller with the result in RAX.
    vcpu.write_registers({"rax": result & MASK64, "rip": caller, "rsp": registers["rsp"] + 8})
    return True


__all__ = ["VSYSCALL_ADDR", "emulate_vsyscall", "is_vsyscall_vaddr"]
