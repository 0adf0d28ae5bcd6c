"""Signal system calls that wait for or report signals (kernel/signal.c):
pause(2) and rt_sigpending(2)."""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINTR, EINVAL, SyscallError
from emu_x86.kernel.sigframe import UNBLOCKABLE, sigbit

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_pause, SYS_rt_sigpending = 34, 127
SIGSET_BYTES = 8
ERESTARTNOHAND = 514
MASK64 = (1 << 64) - 1


def _deliverable(task: "Task") -> bool:
    """signal_pending: a queued signal the thread does not block."""
    return any(not task.signal_mask & sigbit(info.signo) or sigbit(info.signo) & UNBLOCKABLE
               for info in task.pending_signals)


def sys_pause(kernel: "Kernel", vcpu: "VCpu", task: "Task", *_):
    """Sleep until a signal is delivered: TASK_INTERRUPTIBLE + schedule(), then
    -ERESTARTNOHAND, which becomes -EINTR once a handler ran. A signal with no
    handler (ignored) does not wake it (send_signal drops it), so the call
    keeps waiting, as the restart would; a fatal one ends the process."""
    if _deliverable(task):
        # A signal already pending (its kick from another CPU not yet arrived):
        # no sleep. A traced task shows -ERESTARTNOHAND at its exit stop
        # (emu_x86/kernel/ptrace.py restarts the call when no handler runs).
        return -ERESTARTNOHAND if task.ptrace is not None else -EINTR
    vcpu.write_register("rax", (-EINTR) & MASK64)
    kernel.scheduler.block_current(vcpu)


def sys_rt_sigpending(kernel: "Kernel", vcpu: "VCpu", task: "Task", set_address, sigsetsize, *_):
    """The signals pending and blocked (do_sigpending: pending & blocked), the
    first ``sigsetsize`` bytes of the set: a size above sizeof(sigset_t) is
    EINVAL, a smaller one copies part, zero copies nothing (no EFAULT)."""
    if sigsetsize > SIGSET_BYTES:
        raise SyscallError(EINVAL)
    pending = 0
    for info in task.pending_signals:
        pending |= sigbit(info.signo)
    pending &= task.signal_mask
    if sigsetsize:
        task.mm.copy_to_user(set_address, struct.pack("<Q", pending)[:sigsetsize])
    return 0


SYSCALLS = {
    SYS_pause: sys_pause,
    SYS_rt_sigpending: sys_rt_sigpending,
}
