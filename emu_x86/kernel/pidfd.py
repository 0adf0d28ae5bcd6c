"""pidfds: file descriptors that name a process (kernel/pid.c, kernel/fork.c,
kernel/signal.c pidfd_send_signal, kernel/exit.c's P_PIDFD).

A ``PidFd`` is an anon_inode:[pidfd] file holding the ``Process`` (or, with
PIDFD_THREAD, the ``Task``) it was opened for: a reference to the pid, not
to the task, so it outlives the process and then reports it gone. Made by
pidfd_open(2) and by clone(CLONE_PIDFD)/clone3's ``pidfd`` (emu_x86/kernel/fork.py
calls ``pidfd_create`` while building the child); always close-on-exec, as
pidfd_prepare makes it.

poll/select/epoll (pidfd_poll): POLLIN|POLLRDNORM once the process has
exited (a zombie), POLLIN|POLLRDNORM|POLLHUP once it is reaped; nothing
before. The file's wait queue is the process's ``pidfd_wait``, woken by
exit_notify and release_task (do_notify_pidfd).

pidfd_send_signal sends as kill(2) does (SI_USER) or with the caller's
siginfo under Linux's checks; pidfd_getfd duplicates a target's fd
(ptrace_may_access: every guest process has the same owner, so it is
allowed); waitid(P_PIDFD) waits for the pidfd's process like P_PID (emu_x86/kernel/exit.py).
"""
from __future__ import annotations

import stat
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EBADF, EINVAL, EPERM, ESRCH, SyscallError
from emu_x86.kernel.file import (
    ANON_INODE_DEV, O_EXCL, O_NONBLOCK, O_RDWR, POLLHUP, POLLIN, POLLRDNORM, File, as_fd,
    fdget, files_of, nofile_limit, stat_struct,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Process, Task

SYS_pidfd_send_signal, SYS_pidfd_open, SYS_pidfd_getfd = 424, 434, 438
PIDFD_NONBLOCK = O_NONBLOCK
PIDFD_THREAD = O_EXCL
# pidfd_send_signal flags (include/uapi/linux/pidfd.h, 6.9+)
PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP = 1, 2, 4
SI_USER, SI_TKILL = 0, -6
SIGINFO_BYTES = 128
NSIG = 64


class PidFd(File):
    """struct file of a pidfd: ``process`` (and ``thread`` for PIDFD_THREAD)."""

    def __init__(self, process: "Process", thread: "Task | None", flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.process = process
        self.thread = thread
        self.wait = process.pidfd_wait       # exit_notify and release_task wake it

    def poll(self, kernel: "Kernel") -> int:
        process = self.process
        if process.exit_state == "dead":
            return POLLIN | POLLRDNORM | POLLHUP
        exited = (self.thread.state == "exited" and self.thread.tid != process.pid) if self.thread is not None \
            else False
        if process.exit_state is not None or exited:
            return POLLIN | POLLRDNORM
        return 0

    def stat(self, kernel: "Kernel") -> bytes:
        return stat_struct(ANON_INODE_DEV, id(self) & 0xFFFFFF, stat.S_IFREG | 0o600, kernel)

    def describe(self) -> str:
        return "anon_inode:[pidfd]"


def pidfd_create(kernel: "Kernel", task: "Task", process: "Process", thread: "Task | None", flags: int) -> int:
    """pidfd_prepare + fd_install: a close-on-exec fd in the caller's table."""
    return files_of(task).install(PidFd(process, thread, flags), cloexec=True, limit=nofile_limit(task))


def pidfd_process(task: "Task", fd: int) -> PidFd:
    """pidfd_get_pid / pidfd_to_pid: the PidFd an fd names; EBADF for a bad fd or another file."""
    file = fdget(task, fd)
    if not isinstance(file, PidFd):
        raise SyscallError(EBADF)
    return file


def find_live_task(kernel: "Kernel", pid: int):
    from emu_x86.kernel.process_groups import find_thread
    return find_thread(kernel, pid)


def sys_pidfd_open(kernel, vcpu, task, pid, flags, *_):
    pid &= 0xFFFFFFFF
    pid = pid - (1 << 32) if pid & (1 << 31) else pid
    flags &= 0xFFFFFFFF
    if flags & ~(PIDFD_NONBLOCK | PIDFD_THREAD) or pid <= 0:
        raise SyscallError(EINVAL)
    target = find_live_task(kernel, pid)
    if target is None:
        raise SyscallError(ESRCH)
    if flags & PIDFD_THREAD:
        return pidfd_create(kernel, task, target.process, target, flags)
    if target.tid != target.process.pid:
        raise SyscallError(EINVAL)             # pid_has_task(PIDTYPE_TGID): not a thread-group leader
    return pidfd_create(kernel, task, target.process, None, flags)


def sys_pidfd_send_signal(kernel, vcpu, task, pidfd, signo, info_address, flags, *_):
    """pidfd_send_signal(2) in kernel/signal.c's order: flags, the fd, the
    siginfo, the target's existence, then the signal number (check_kill_permission)."""
    from emu_x86.kernel.process_groups import kill_pgrp, kill_process
    from emu_x86.kernel.sigframe import SigInfo, send_signal
    from emu_x86.kernel.cred import cred_of
    flags &= 0xFFFFFFFF
    if flags & ~(PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP):
        raise SyscallError(EINVAL)
    if flags & (flags - 1):
        raise SyscallError(EINVAL)             # at most one scope
    signo = as_fd(signo)
    file = pidfd_process(task, as_fd(pidfd))
    process = file.process
    if not flags:
        flags = PIDFD_SIGNAL_THREAD if file.thread is not None else PIDFD_SIGNAL_THREAD_GROUP
    code = SI_USER if flags != PIDFD_SIGNAL_THREAD else SI_TKILL
    info = SigInfo(signo, code, pid=task.pid, uid=cred_of(task).uid)
    if info_address:
        raw = task.mm.copy_from_user(info_address, SIGINFO_BYTES)
        si_signo, _errno, si_code = struct.unpack_from("<iii", raw)
        if si_signo != signo:
            raise SyscallError(EINVAL)
        # Only to itself may a task send an arbitrary siginfo (a kernel or
        # kill-like si_code from anyone else would be a forgery).
        target_pid = file.thread.tid if file.thread is not None else process.pid
        if (task.tid != target_pid or flags == PIDFD_SIGNAL_PROCESS_GROUP) \
                and (si_code >= 0 or si_code == SI_TKILL):
            raise SyscallError(EPERM)
        info = SigInfo(signo, si_code, pid=task.pid, uid=cred_of(task).uid)
    if process.exit_state == "dead":
        raise SyscallError(ESRCH)
    if not 0 <= signo <= NSIG:
        raise SyscallError(EINVAL)
    if flags == PIDFD_SIGNAL_PROCESS_GROUP:
        kill_pgrp(kernel, vcpu, task, process.pid, info)     # the group the pid leads
    elif flags == PIDFD_SIGNAL_THREAD:
        thread = file.thread or process.tasks[0]
        if thread.state == "exited":
            raise SyscallError(ESRCH)
        if signo:
            send_signal(kernel, vcpu, thread, info)
    else:
        kill_process(kernel, vcpu, task, process, info)
    return 0


def sys_pidfd_getfd(kernel, vcpu, task, pidfd, targetfd, flags, *_):
    """pidfd_getfd(2): a close-on-exec duplicate of ``targetfd`` of the pidfd's process."""
    if flags & 0xFFFFFFFF:
        raise SyscallError(EINVAL)
    file = pidfd_process(task, as_fd(pidfd))
    process = file.process
    if process.exit_state == "dead":
        raise SyscallError(ESRCH)
    if process.files is None or process.exit_state is not None:
        raise SyscallError(ESRCH)              # past exit_files: PF_EXITING, so ESRCH not EBADF
    target = process.files.get(as_fd(targetfd))
    return files_of(task).install(target, cloexec=True, limit=nofile_limit(task))


def notify_pidfd(kernel: "Kernel", process: "Process", waker) -> None:
    """do_notify_pidfd: pollers of the process's pidfds look again."""
    process.pidfd_wait.wake_up(kernel, waker)


SYSCALLS = {
    SYS_pidfd_send_signal: sys_pidfd_send_signal,
    SYS_pidfd_open: sys_pidfd_open,
    SYS_pidfd_getfd: sys_pidfd_getfd,
}

__all__ = ["PidFd", "SYSCALLS", "notify_pidfd", "pidfd_create", "pidfd_process"]
