"""The system call table, assembled from the subsystems that own the calls.

Linux keeps each call beside its mechanism (fs/pipe.c, fs/eventpoll.c,
emu_x86/kernel/futex/, ipc/shm.c, kernel/ptrace.c ...) and syscall_64.tbl only names
them; here each subsystem module exports ``SYSCALLS = {number: handler}`` for
the calls it owns and this module merges them. A number claimed by two
modules is a bug caught at import time, so the table never depends on import
order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from emu_x86.kernel import (
    cred, eventfd, eventpoll, execve, fcntl, file, futex, ioport, ldt, membarrier, open as open_calls, pipe, prctl,
    process_vm, ptrace, read_write, readdir, resource, rseq, sched_syscalls, select, signal_calls, socket, stat,
    syscalls, timerfd, posix_timers, itimer, mqueue,
)
from emu_x86.kernel.errno import ENOMEM, ENOSYS, SyscallError
from emu_x86.kernel.ipc import shm
from emu_x86.kernel import fork, pidfd, process_groups  # issue 22's process-control modules
from emu_x86.kernel.mm import mincore, mlock, mremap, mseal, oom_kill
from emu_x86.kernel import fs_attr, fs_namei
from emu_x86.kernel.mm.frames import OutOfMemory
from emu_x86.kernel.sigframe import deliver_pending_signals
from emu_x86.kernel.strace.names import SYSCALL_NAMES
from emu_x86.kernel.syscalls import ARG_REGISTERS, MASK64

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

# Every module that registers system calls. Add a subsystem here, never by
# growing emu_x86/kernel/syscalls.py.
SUBSYSTEMS = (
    syscalls,
    file,            # close, dup*
    open_calls,      # open*, access, chdir, getcwd
    stat,            # stat family, readlink
    read_write,      # read/write family, lseek, sendfile
    readdir,
    fcntl,           # fcntl, ioctl
    pipe,
    select,          # poll, select
    eventpoll,       # epoll_*
    eventfd,
    timerfd,
    posix_timers,    # clocks, clock_nanosleep, timer_*, gettimeofday, time, adjtimex
    itimer,          # getitimer, setitimer, alarm
    mqueue,          # POSIX message queues
    socket,
    execve,          # execve, execveat
    cred,            # get/set*id, groups
    prctl,
    signal_calls,    # pause, rt_sigpending
    ioport,          # iopl, ioperm
    ptrace,
    futex,
    membarrier,
    sched_syscalls,
    resource,
    rseq,
    shm,
    process_vm,
    ldt,
    process_groups,  # setpgid/setsid/getpgid/getsid, kill
    fork,            # clone, clone3, fork, vfork, unshare
    pidfd,           # pidfd_open, pidfd_getfd, pidfd_send_signal
    mremap,
    mlock,           # mlock, mlock2, munlock, mlockall, munlockall
    mseal,
    mincore,
    oom_kill,        # process_mrelease
    fs_namei,        # mkdir, rmdir, unlink, rename, link, symlink, mknod (+at)
    fs_attr,         # truncate, chmod, chown, utimes families
)


def assemble(modules=SUBSYSTEMS) -> dict[int, Callable]:
    table: dict[int, Callable] = {}
    owner: dict[int, str] = {}
    for module in modules:
        for number, handler in module.SYSCALLS.items():
            if number in table:
                raise ImportError(f"syscall {number} registered by both {owner[number]} and {module.__name__}")
            table[number] = handler
            owner[number] = module.__name__
    return table


SYSCALLS: dict[int, Callable] = assemble()
OWNER: dict[int, str] = {number: module.__name__ for module in SUBSYSTEMS for number in module.SYSCALLS}


_SYSCALL_REGISTERS = ("rax", *ARG_REGISTERS)
NR_SYSCALLS = 463                    # syscall_64.tbl of Linux 6.12 ends at 462 (mseal)


def dispatch_syscall(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Run one system call for ``task`` on ``vcpu`` (do_syscall_64)."""
    if task.ptrace is not None:
        # syscall_enter_from_user_mode's work: orig_rax, syscall stops (emu_x86/kernel/ptrace.py).
        ptrace.syscall_trace_dispatch(kernel, vcpu, task)
        return
    number, *args = vcpu.read_register_values(_SYSCALL_REGISTERS)
    strace = kernel.strace
    if strace is not None:
        strace.enter(task, number & 0xFFFFFFFF, args)
    result = invoke_syscall(kernel, vcpu, task, number, args)
    if result is not None:
        vcpu.write_register("rax", result & MASK64)
    if strace is not None:
        if kernel.current[vcpu.index] is task and task.state != "sleeping":
            strace.leave(task, vcpu.read_register("rax"))
        else:
            strace.blocked(task)      # its result is logged when it is switched back in
    # Return to user mode: signals queued for the task are delivered now.
    if kernel.current[vcpu.index] is task and task.pending_signals:
        deliver_pending_signals(kernel, vcpu, task)


def invoke_syscall(kernel: "Kernel", vcpu: "VCpu", task: "Task", number: int, args) -> int | None:
    """The handler's result for syscall ``number`` (-ENOSYS when there is none),
    errors as negative errno; None when the task blocked or RAX is set.

    do_syscall_64 takes the number as an ``int``: the upper half of RAX is
    ignored, and a number outside the table (negative, x32's bit 30 on a kernel
    without CONFIG_X86_X32_ABI, past NR_syscalls) is -ENOSYS without a warning --
    only a Linux call this kernel lacks is worth one."""
    number &= 0xFFFFFFFF
    kernel.syscall_counts[number] += 1
    handler = SYSCALLS.get(number) or kernel.optional_syscalls.get(number)
    if handler is None:
        if number < NR_SYSCALLS and number not in kernel.warned_syscalls:
            kernel.warned_syscalls.add(number)
            known = SYSCALL_NAMES.get(number)
            kernel.warn(f"unimplemented syscall {number}{f' ({known})' if known else ''}, returning -ENOSYS")
        return -ENOSYS
    try:
        return handler(kernel, vcpu, task, *args)
    except SyscallError as error:
        return -error.errno
    except OutOfMemory:          # a page table or kernel buffer found no frame
        return -ENOMEM


# Calls whose result is a fixed value of the calling task, with no other
# effect: the hot path may answer them without leaving guest code
# (Kernel.arm_fast_syscalls, emu_x86/emu/timing/hotpath.c fast_syscall).
# getpid, getppid, gettid (syscall_64.tbl); at most FAST_SYSCALLS_MAX.
FAST_SYSCALL_NUMBERS = (39, 110, 186)
FAST_SYSCALLS_MAX = 4           # HOTPATH_FAST_SYSCALLS_MAX
_FAST_SYSCALLS = tuple((number, SYSCALLS[number]) for number in FAST_SYSCALL_NUMBERS)


def fast_syscall_handlers():
    """(number, handler) of the fixed-value calls whose handler is still the
    table's (a test or command line that replaces one takes it off)."""
    if all(SYSCALLS.get(number) is handler for number, handler in _FAST_SYSCALLS):
        return _FAST_SYSCALLS
    return tuple((number, handler) for number, handler in _FAST_SYSCALLS if SYSCALLS.get(number) is handler)
