"""process_mrelease(2) (mm/oom_kill.c): reap a dying process's memory early.

Here a process killed by a signal releases its address space in the same
kernel step that ends it (Kernel.exit_group -> mmput), so there is never a
dying mm left to reap: a pidfd whose process has exited is ESRCH, one being
killed (SIGKILL queued) answers 0, a live process not exiting is EINVAL (task_will_free_mem false
and MMF_OOM_SKIP unset), exactly Linux's answers in those states.
"""
from __future__ import annotations

from emu_x86.kernel.errno import EINVAL, ESRCH, SyscallError

SYS_process_mrelease = 448
SIGKILL = 9


def sys_process_mrelease(kernel, vcpu, task, pidfd, flags, *_):
    from emu_x86.kernel.file import as_fd
    from emu_x86.kernel.pidfd import pidfd_process
    if flags & 0xFFFFFFFF:
        raise SyscallError(EINVAL)
    process = pidfd_process(task, as_fd(pidfd)).process   # EBADF: not a pidfd
    if process.exit_state is not None:
        # pidfd_get_task: an exited pid (zombie or reaped) has no task to
        # give, ESRCH (Linux 6.18, the reference host; older kernels answered
        # 0 for a zombie, whose mm was already gone).
        raise SyscallError(ESRCH)
    if any(info.signo == SIGKILL for thread in process.tasks for info in thread.pending_signals):
        return 0                              # dying (SIGKILL queued): its exit frees the mm
    raise SyscallError(EINVAL)


SYSCALLS = {SYS_process_mrelease: sys_process_mrelease}
