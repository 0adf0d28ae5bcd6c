"""The system call table, assembled from the subsystems that own the calls.

Linux keeps each call beside its mechanism (fs/pipe.c, fs/eventpoll.c,
emu_x86/kernel/futex/, ipc/shm.c, kernel/ptrace.c ...) and syscall_64.tbl only names
them; here each subsystem module exports ``SYSCALLS = {number: handler}`` for
the calls it owns and this module merges them.

A subsystem is imported at its first call, not at start-up: a glibc hello
makes calls of six of the forty, and importing all of them was 4% of its
host instructions (23 M of 606 M, callgrind). Which module owns which number
is kept in syscall_owners.py, written by ``python -m
emu_x86.kernel.syscall_table`` from the modules themselves;
tests/test_syscall_table.py fails when it is out of date, and a number
claimed by two modules is refused there and by the writer.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import ENOMEM, ENOSYS, SyscallError
from emu_x86.kernel.mm.frames import OutOfMemory
from emu_x86.kernel.sigframe import deliver_pending_signals
from emu_x86.kernel.syscall_owners import OWNERS
from emu_x86.kernel.syscalls import ARG_REGISTERS, MASK64

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

# Every module that registers system calls. Add a subsystem here, never by
# growing emu_x86/kernel/syscalls.py, then rewrite syscall_owners.py.
SUBSYSTEMS = (
    "emu_x86.kernel.syscalls",
    "emu_x86.kernel.file",            # close, dup*
    "emu_x86.kernel.open",            # open*, access, chdir, getcwd
    "emu_x86.kernel.stat",            # stat family, readlink
    "emu_x86.kernel.read_write",      # read/write family, lseek, sendfile
    "emu_x86.kernel.readdir",
    "emu_x86.kernel.fcntl",           # fcntl, ioctl
    "emu_x86.kernel.pipe",
    "emu_x86.kernel.select",          # poll, select
    "emu_x86.kernel.eventpoll",       # epoll_*
    "emu_x86.kernel.eventfd",
    "emu_x86.kernel.timerfd",
    "emu_x86.kernel.posix_timers",    # clocks, clock_nanosleep, timer_*, gettimeofday, time, adjtimex
    "emu_x86.kernel.itimer",          # getitimer, setitimer, alarm
    "emu_x86.kernel.mqueue",          # POSIX message queues
    "emu_x86.kernel.socket",
    "emu_x86.kernel.execve",          # execve, execveat
    "emu_x86.kernel.cred",            # get/set*id, groups
    "emu_x86.kernel.prctl",
    "emu_x86.kernel.signal_calls",    # pause, rt_sigpending
    "emu_x86.kernel.ioport",          # iopl, ioperm
    "emu_x86.kernel.ptrace",
    "emu_x86.kernel.futex",
    "emu_x86.kernel.membarrier",
    "emu_x86.kernel.sched_syscalls",
    "emu_x86.kernel.resource",
    "emu_x86.kernel.rseq",
    "emu_x86.kernel.ipc.shm",
    "emu_x86.kernel.process_vm",
    "emu_x86.kernel.ldt",
    "emu_x86.kernel.process_groups",  # setpgid/setsid/getpgid/getsid, kill
    "emu_x86.kernel.fork",            # clone, clone3, fork, vfork, unshare
    "emu_x86.kernel.pidfd",           # pidfd_open, pidfd_getfd, pidfd_send_signal
    "emu_x86.kernel.mm.mremap",
    "emu_x86.kernel.mm.mlock",        # mlock, mlock2, munlock, mlockall, munlockall
    "emu_x86.kernel.mm.mseal",
    "emu_x86.kernel.mm.mincore",
    "emu_x86.kernel.mm.oom_kill",     # process_mrelease
    "emu_x86.kernel.fs_namei",        # mkdir, rmdir, unlink, rename, link, symlink, mknod (+at)
    "emu_x86.kernel.fs_attr",         # truncate, chmod, chown, utimes families
)


def assemble(module_names=SUBSYSTEMS) -> dict[int, str]:
    """{number: owning module's name} from the modules themselves (all imported);
    ImportError for a number two of them claim."""
    owner: dict[int, str] = {}
    for name in module_names:
        for number in importlib.import_module(name).SYSCALLS:
            if number in owner:
                raise ImportError(f"syscall {number} registered by both {owner[number]} and {name}")
            owner[number] = name
    return owner


class SyscallTable(dict):
    """{number: handler}, filled a subsystem at a time: looking up a number
    imports the module that owns it (OWNERS) and takes all of that module's
    handlers. An entry already present stays: a test or command line that
    replaced a handler keeps its replacement. Iterating, len and items see the
    whole table (every subsystem imported)."""

    def __missing__(self, number: int) -> Callable:
        name = OWNERS.get(number)
        if name is None:
            raise KeyError(number)
        for owned, handler in importlib.import_module(name).SYSCALLS.items():
            self.setdefault(owned, handler)
        if not dict.__contains__(self, number):      # the owner no longer has it: a stale index
            raise KeyError(number)
        return dict.__getitem__(self, number)

    def get(self, number, default=None):
        try:
            return self[number]
        except KeyError:
            return default

    def __contains__(self, number) -> bool:
        return self.get(number) is not None

    def load_all(self) -> "SyscallTable":
        for number in OWNERS:
            self.get(number)
        return self

    def __iter__(self):
        return dict.__iter__(self.load_all())

    def __len__(self) -> int:
        return dict.__len__(self.load_all())

    def keys(self):
        return dict.keys(self.load_all())

    def values(self):
        return dict.values(self.load_all())

    def items(self):
        return dict.items(self.load_all())


SYSCALLS: SyscallTable = SyscallTable()
OWNER: dict[int, str] = OWNERS


_SYSCALL_REGISTERS = ("rax", *ARG_REGISTERS)
NR_SYSCALLS = 463                    # syscall_64.tbl of Linux 6.12 ends at 462 (mseal)


def dispatch_syscall(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Run one system call for ``task`` on ``vcpu`` (do_syscall_64)."""
    if task.ptrace is not None:
        # syscall_enter_from_user_mode's work: orig_rax, syscall stops (emu_x86/kernel/ptrace.py).
        from emu_x86.kernel import ptrace
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
            from emu_x86.kernel.strace.names import SYSCALL_NAMES
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


def write_owners(path: str) -> None:
    """Write syscall_owners.py (OWNERS) from the subsystem modules."""
    owners = assemble()
    lines = ['"""Which subsystem module owns each system call number: the index',
             "syscall_table.SyscallTable imports a module by at its first call.",
             "",
             "Written by `python -m emu_x86.kernel.syscall_table` from the modules'",
             'own SYSCALLS; do not edit (tests/test_syscall_table.py checks it)."""',
             "", "OWNERS = {"]
    lines += [f"    {number}: {owners[number]!r}," for number in sorted(owners)]
    lines.append("}")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    import os
    write_owners(os.path.join(os.path.dirname(os.path.abspath(__file__)), "syscall_owners.py"))
