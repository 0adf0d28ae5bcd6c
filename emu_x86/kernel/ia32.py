"""32-bit system calls through int $0x80 from 64-bit code (arch/x86/entry/common.c
do_int80_emulation, syscall_32.tbl).

EAX holds the i386 system call number (truncated to 32 bits), EBX, ECX,
EDX, ESI, EDI, EBP the arguments; the result goes to RAX (a long: -errno is
sign-extended) and every other register is kept (the IDT entry saves and
restores all of them; int $0x80 does not clobber RCX/R11 as SYSCALL does).
Only the calls whose 64-bit implementation takes the same arguments are
mapped -- no struct whose compat layout differs -- and the rest return
-ENOSYS, as a kernel without them would.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EFAULT, ENOMEM, ENOSYS, SyscallError
from emu_x86.kernel.mm.frames import OutOfMemory

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1

# i386 number -> (x86-64 number of the same implementation, indices of the
# arguments that are C ints, sign-extended by the compat wrapper).
IA32_SYSCALLS = {
    1: (60, (0,)),          # exit(int)
    3: (0, ()),             # read
    4: (1, ()),             # write
    6: (3, ()),             # close
    20: (39, ()),           # getpid
    24: (102, ()),          # getuid (16-bit uid: 1000 fits)
    29: (34, ()),           # pause
    37: (62, (0, 1)),       # kill(pid_t, int)
    45: (12, ()),           # brk
    47: (104, ()),          # getgid
    49: (107, ()),          # geteuid
    50: (108, ()),          # getegid
    64: (110, ()),          # getppid
    91: (11, ()),           # munmap
    101: (173, (2,)),       # ioperm(ulong, ulong, int)
    110: (172, ()),         # iopl(unsigned int)
    125: (10, ()),          # mprotect
    158: (24, ()),          # sched_yield
    199: (102, ()),         # getuid32
    200: (104, ()),         # getgid32
    201: (107, ()),         # geteuid32
    202: (108, ()),         # getegid32
    219: (28, (2,)),        # madvise(ulong, size_t, int)
    224: (186, ()),         # gettid
    238: (200, (0, 1)),     # tkill(pid_t, int)
    252: (231, (0,)),       # exit_group(int)
    270: (234, (0, 1, 2)),  # tgkill(pid_t, pid_t, int)
    318: (309, ()),         # getcpu
}
_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp")


def _sign_extend32(value: int) -> int:
    return (value | ~MASK32) & MASK64 if value & 0x80000000 else value


# Where the 32-bit vDSO's int80_landing_pad lies from its base
# (vdso_image_32.sym_int80_landing_pad; a representative value: a 64-bit
# process has no 32-bit vDSO, and this kernel maps no vDSO at all, so the
# return lands on an unmapped low address either way).
VDSO32_INT80_LANDING_PAD = 0x579


def do_fast_syscall_32(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """SYSENTER from 64-bit code on Intel (entry_SYSENTER_compat ->
    do_fast_syscall_32): the vDSO convention -- the user stack pointer is in
    EBP, the sixth argument at [ESP] -- and the return goes to the 32-bit
    vDSO's landing pad (SYSENTER forgets RIP), which a 64-bit process lacks:
    it faults there. A stack word that cannot be read gives -EFAULT."""
    from emu_x86.kernel.sigframe import deliver_pending_signals
    rsp, rbp = vcpu.read_register_values(("rsp", "rbp"))
    vcpu.write_registers({"rip": VDSO32_INT80_LANDING_PAD, "rsp": rbp & MASK32})
    try:
        (ebp,) = struct.unpack("<I", task.mm.copy_from_user(rsp & MASK32, 4))
    except SyscallError:
        vcpu.write_register("rax", (-EFAULT) & MASK64)
        if kernel.current[vcpu.index] is task and task.pending_signals:
            deliver_pending_signals(kernel, vcpu, task)
        return
    vcpu.write_register("rbp", ebp)
    do_int80_syscall_32(kernel, vcpu, task)


def do_int80_syscall_32(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """int $0x80 from user mode: run the i386 call in EAX (RIP is already past INT)."""
    from emu_x86.kernel.sigframe import deliver_pending_signals
    from emu_x86.kernel.syscall_table import SYSCALLS
    number, *raw = vcpu.read_register_values(_REGISTERS)
    number &= MASK32
    arguments = [value & MASK32 for value in raw]
    entry = IA32_SYSCALLS.get(number)
    handler = SYSCALLS.get(entry[0]) if entry is not None else None
    if handler is None:
        result = -ENOSYS
    else:
        for index in entry[1]:
            arguments[index] = _sign_extend32(arguments[index])
        kernel.counters["ia32_syscalls"] += 1
        try:
            result = handler(kernel, vcpu, task, *arguments)
        except SyscallError as error:
            result = -error.errno
        except OutOfMemory:
            result = -ENOMEM
    if result is not None:
        vcpu.write_register("rax", result & MASK64)
    if kernel.current[vcpu.index] is task and task.pending_signals:
        deliver_pending_signals(kernel, vcpu, task)


__all__ = ["IA32_SYSCALLS", "do_fast_syscall_32", "do_int80_syscall_32"]
