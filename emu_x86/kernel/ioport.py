"""iopl(2) and ioperm(2) (arch/x86/kernel/ioport.c, CONFIG_X86_IOPL_IOPERM=y).

The guest runs as an unprivileged user (uid 1000, no CAP_SYS_RAWIO), so it
may only give up I/O permissions: raising the I/O privilege level or
turning ports on fails with EPERM after the argument checks, and nothing
ever grants port access -- the machine's port I/O at CPL3 always raises
#GP (emu_x86/emu/isa/system.py), as on Linux for such a user.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINVAL, EPERM, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_iopl, SYS_ioperm = 172, 173
IO_BITMAP_BITS = 65536
MAX_IOPL = 3
MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1


def capable_sys_rawio(task: "Task") -> bool:
    """capable(CAP_SYS_RAWIO): the guest's user holds no capabilities."""
    return False


def sys_iopl(kernel: "Kernel", vcpu: "VCpu", task: "Task", level, *_):
    """iopl(level): per-thread emulated IOPL (thread.iopl_emul), 0 here forever."""
    level &= MASK32                     # unsigned int
    if level > MAX_IOPL:
        raise SyscallError(EINVAL)
    old = 0                             # thread.iopl_emul: never raised (below)
    if level == old:
        return 0
    if level > old and not capable_sys_rawio(task):
        raise SyscallError(EPERM)
    return 0                            # lowering: nothing was ever raised


def sys_ioperm(kernel: "Kernel", vcpu: "VCpu", task: "Task", start, count, turn_on, *_):
    """ioperm(from, num, turn_on): ksys_ioperm's checks, in its order."""
    end = (start + count) & MASK64      # unsigned long arithmetic
    if end <= start or end > IO_BITMAP_BITS:
        raise SyscallError(EINVAL)
    if turn_on & MASK32 and not capable_sys_rawio(task):
        raise SyscallError(EPERM)
    return 0                            # no bitmap yet: clearing permissions is a no-op


SYSCALLS = {
    SYS_iopl: sys_iopl,
    SYS_ioperm: sys_ioperm,
}
