"""Resource limits (kernel/sys.c: getrlimit, setrlimit, prlimit64, do_prlimit).

Limits belong to the thread group (signal->rlim): ``Process.rlimits`` holds
the ones set so far, the rest are Linux's INIT_RLIMITS as a process started
by an unprivileged user sees them. fork copies them (copy_signal). The
guest has no CAP_SYS_RESOURCE: a hard limit can only go down.

Other code reads a limit with ``task_rlimit(process, resource)`` (the soft
value, task_rlimit) or ``rlimit(process, resource)`` ((soft, hard)); the file
descriptor code's bound is ``task_rlimit(process, RLIMIT_NOFILE)``. Only the
record is kept: no limit is enforced here (RLIMIT_STACK, RLIMIT_AS and the
others are the subsystems' business).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINVAL, EPERM, ESRCH, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Process

SYS_getrlimit, SYS_setrlimit, SYS_prlimit64 = 97, 160, 302

RLIM_INFINITY = (1 << 64) - 1
(RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_RSS, RLIMIT_NPROC, RLIMIT_NOFILE,
 RLIMIT_MEMLOCK, RLIMIT_AS, RLIMIT_LOCKS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_RTPRIO,
 RLIMIT_RTTIME) = range(16)
RLIM_NLIMITS = 16
NR_OPEN = 1024 * 1024            # sysctl fs.nr_open
# NPROC and SIGPENDING default to max_threads / 2 (fork_init), max_threads being
# RAM / (8 * THREAD_SIZE) with 16 KiB kernel stacks: a function of guest memory.
THREAD_SIZE_BYTES = 16 << 10

# INIT_RLIMITS (include/asm-generic/resource.h): (soft, hard)
INIT_RLIMITS = {
    RLIMIT_CPU: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_FSIZE: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_DATA: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_STACK: (8 << 20, RLIM_INFINITY),           # _STK_LIM
    RLIMIT_CORE: (0, RLIM_INFINITY),
    RLIMIT_RSS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_NOFILE: (1024, 4096),                      # INR_OPEN_CUR, INR_OPEN_MAX
    RLIMIT_MEMLOCK: (8 << 20, 8 << 20),               # MLOCK_LIMIT
    RLIMIT_AS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_LOCKS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_MSGQUEUE: (819200, 819200),                # MQ_BYTES_MAX
    RLIMIT_NICE: (0, 0),
    RLIMIT_RTPRIO: (0, 0),
    RLIMIT_RTTIME: (RLIM_INFINITY, RLIM_INFINITY),
}


def _default(kernel: Kernel | None, resource: int) -> tuple[int, int]:
    if resource in (RLIMIT_NPROC, RLIMIT_SIGPENDING):
        memory_bytes = kernel.machine.memory.size_bytes if kernel is not None else 1 << 30
        max_threads = max(20, memory_bytes // (8 * THREAD_SIZE_BYTES))
        return (max_threads // 2, max_threads // 2)
    return INIT_RLIMITS[resource]


def rlimit(process: Process, resource: int, kernel: Kernel | None = None) -> tuple[int, int]:
    """(soft, hard) of ``resource`` for ``process``."""
    return process.rlimits.get(resource) or _default(kernel, resource)


def task_rlimit(process: Process, resource: int, kernel: Kernel | None = None) -> int:
    """The soft limit (task_rlimit): what the subsystems enforce."""
    return rlimit(process, resource, kernel)[0]


def do_prlimit(kernel: Kernel, process: Process, resource: int, new: tuple[int, int] | None) -> tuple[int, int]:
    """Read (and with ``new`` replace) one limit; returns the old one. EINVAL for
    an unknown resource or soft > hard; EPERM for RLIMIT_NOFILE above nr_open
    or a raised hard limit."""
    if resource >= RLIM_NLIMITS:
        raise SyscallError(EINVAL)
    old = rlimit(process, resource, kernel)
    if new is not None:
        soft, hard = new
        if soft > hard:
            raise SyscallError(EINVAL)
        if resource == RLIMIT_NOFILE and hard > NR_OPEN:
            raise SyscallError(EPERM)
        if hard > old[1]:
            raise SyscallError(EPERM)         # no CAP_SYS_RESOURCE
        process.rlimits[resource] = (soft, hard)
    return old


def sys_getrlimit(kernel, vcpu, task, resource, old_address, *_):
    old = do_prlimit(kernel, task.process, resource & 0xFFFFFFFF, None)
    task.mm.copy_to_user(old_address, struct.pack("<QQ", *old))
    return 0


def sys_setrlimit(kernel, vcpu, task, resource, new_address, *_):
    new = struct.unpack("<QQ", task.mm.copy_from_user(new_address, 16))
    do_prlimit(kernel, task.process, resource & 0xFFFFFFFF, new)
    return 0


def sys_prlimit64(kernel, vcpu, task, pid, resource, new_address, old_address, *_):
    """prlimit64(2): the new limit is read first (EFAULT), then the task (ESRCH;
    any guest thread has the caller's credentials, init is root's: EPERM),
    then do_prlimit, then the old limit is written (EFAULT)."""
    new = struct.unpack("<QQ", task.mm.copy_from_user(new_address, 16)) if new_address else None
    from emu_x86.kernel.sched_syscalls import find_process_by_pid, signed32
    pid = signed32(pid)
    target = find_process_by_pid(kernel, task, pid) if pid else task
    if target is None or (pid and pid < 0):
        raise SyscallError(ESRCH)
    if getattr(target, "owned_by_root", False):
        raise SyscallError(EPERM)
    old = do_prlimit(kernel, target.process, resource & 0xFFFFFFFF, new)
    if old_address:
        task.mm.copy_to_user(old_address, struct.pack("<QQ", *old))
    return 0


SYSCALLS = {
    SYS_getrlimit: sys_getrlimit,
    SYS_setrlimit: sys_setrlimit,
    SYS_prlimit64: sys_prlimit64,
}
