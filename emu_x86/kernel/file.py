"""Open files and fd tables (include/linux/fs.h struct file, fs/file.c, fs/file_table.c).

A ``File`` is one open file description: what dup(2) and fork share, with the
status flags (O_APPEND, O_NONBLOCK) and, for seekable files, the offset. Each
kind of file -- the host streams the guest started with, pipes, devices,
files of the ``--fs`` directory, eventfds, timerfds, epoll instances --
subclasses it and implements the operations it supports; the others fail as
Linux's VFS fails them when ``file->f_op`` lacks the method.

Data moves through the files as bytes; the system calls (emu_x86/kernel/read_write.py)
copy between them and guest memory in bounded chunks, so a huge count never
costs host memory. An operation that would block raises ``WouldBlock``; the
caller sleeps on ``File.wait`` (emu_x86/kernel/wait.py) unless the file is O_NONBLOCK.

``FdTable`` is a process's files_struct: fd -> File plus the close-on-exec
set. Threads share one (CLONE_FILES); fork copies it (dup_fd), so both tables
refer to the same File objects, counted in ``File.references``.

System calls here: close, close_range, dup, dup2, dup3 (fs/open.c, fs/file.c).
"""
from __future__ import annotations

import stat
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EBADF, EINVAL, EMFILE, ESPIPE, ENOTDIR, ENOTTY, SyscallError
from emu_x86.kernel.wait import WaitQueue

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

# open(2) flags (include/uapi/asm-generic/fcntl.h)
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 0o3, 0o0, 0o1, 0o2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND = 0o100, 0o200, 0o400, 0o1000, 0o2000
O_NONBLOCK, O_DSYNC, O_DIRECT, O_LARGEFILE = 0o4000, 0o10000, 0o40000, 0o100000
O_DIRECTORY, O_NOFOLLOW, O_NOATIME, O_CLOEXEC = 0o200000, 0o400000, 0o1000000, 0o2000000
O_PATH, O_TMPFILE = 0o10000000, 0o20000000 | 0o200000
# Status flags F_SETFL may change (fs/fcntl.c SETFL_MASK).
SETFL_MASK = O_APPEND | O_NONBLOCK | O_DSYNC | O_DIRECT | O_NOATIME

# poll(2) events (include/uapi/asm-generic/poll.h)
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x2000
# What a file without a poll method reports (DEFAULT_POLLMASK).
DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM

NR_OPEN_DEFAULT = 1024                # the RLIMIT_NOFILE soft limit a process starts with
NR_OPEN = 1 << 20                     # sysctl fs.nr_open: the hard ceiling
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 1 << 1, 1 << 2

# struct stat's st_dev for the kernel's own files (pipefs, anon_inode, devtmpfs).
PIPEFS_DEV, ANON_INODE_DEV, DEVTMPFS_DEV = 0xC, 0xD, 0x5


class WouldBlock(Exception):
    """The operation cannot make progress now (-EAGAIN for an O_NONBLOCK file, else sleep)."""


class File:
    """struct file. ``flags``: access mode and status flags; ``wait``: who sleeps on it
    (readers, writers, poll and epoll)."""
    seekable = False
    regular = False               # a regular file: reads loop over chunks until count or EOF
    pollable = True               # has f_op->poll (epoll refuses files without: -EPERM)
    discards_writes = False       # write_bytes answers without looking at the data

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.references = 0
        self.wait = WaitQueue()

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR)

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR)

    # ---- operations; the defaults are what the VFS does without the f_op ----------------
    def read_bytes(self, kernel: "Kernel", task: "Task", max_bytes: int) -> bytes:
        raise SyscallError(EINVAL)

    def write_bytes(self, kernel: "Kernel", task: "Task", data: bytes) -> int:
        raise SyscallError(EINVAL)

    def write_room(self, kernel: "Kernel") -> int | None:
        """How many bytes a write can take now without blocking (None: any amount)."""
        return None

    def pread_bytes(self, kernel: "Kernel", max_bytes: int, position: int) -> bytes:
        raise SyscallError(ESPIPE)

    def pwrite_bytes(self, kernel: "Kernel", data: bytes, position: int) -> int:
        raise SyscallError(ESPIPE)

    def llseek(self, kernel: "Kernel", offset: int, whence: int) -> int:
        raise SyscallError(ESPIPE)

    def poll(self, kernel: "Kernel") -> int:
        return DEFAULT_POLLMASK

    def ioctl(self, kernel: "Kernel", task: "Task", request: int, argument: int) -> int:
        raise SyscallError(ENOTTY)

    def getdents64(self, kernel: "Kernel", task: "Task", address: int, count: int) -> int:
        raise SyscallError(ENOTDIR)

    def stat(self, kernel: "Kernel") -> bytes:
        return stat_struct(ANON_INODE_DEV, id(self) & 0xFFFFFF, stat.S_IFREG | 0o600, kernel)

    def release(self, kernel: "Kernel") -> None:
        """The last reference is gone (fput -> f_op->release)."""

    def describe(self) -> str:
        """What readlink(/proc/self/fd/N) shows."""
        return f"anon_inode:[{type(self).__name__.lower()}]"


def stat_struct(device: int, inode: int, mode: int, kernel: "Kernel", size: int = 0, rdev: int = 0,
                nlink: int = 1, blksize: int = 4096, times: tuple = (0, 0, 0, 0, 0, 0),
                uid: int | None = None, gid: int | None = None) -> bytes:
    """struct stat (arch/x86/include/uapi/asm/stat.h) for a file the kernel itself provides."""
    # The kernel's own files (pipes, anon inodes, devices) belong to the guest's user.
    guest_uid, guest_gid = getattr(kernel, "guest_uid", 1000), getattr(kernel, "guest_gid", 1000)
    return struct.pack("<QQQIIIIQqqq6q3q", device, inode, nlink, mode,
                       guest_uid if uid is None else uid, guest_gid if gid is None else gid, 0, rdev,
                       size, blksize, (size + 511) // 512, *times, 0, 0, 0)


class FdTable:
    """files_struct: fd -> File, the close-on-exec set, and the fd limit in force."""

    def __init__(self) -> None:
        self.files: dict[int, File] = {}
        self.cloexec: set[int] = set()
        self.references = 1               # processes sharing this table (CLONE_FILES)

    def share(self) -> "FdTable":
        self.references += 1
        return self

    def get(self, fd: int) -> File:
        """fdget: the File an fd names, or -EBADF."""
        file = self.files.get(fd) if fd >= 0 else None
        if file is None:
            raise SyscallError(EBADF)
        return file

    def alloc_fd(self, lowest: int, limit: int) -> int:
        """The lowest free fd >= ``lowest`` below ``limit`` (alloc_fd), or -EMFILE."""
        fd = lowest
        while fd in self.files:
            fd += 1
        if fd >= limit:
            raise SyscallError(EMFILE)
        return fd

    def install(self, file: File, lowest: int = 0, cloexec: bool = False, limit: int = NR_OPEN_DEFAULT) -> int:
        fd = self.alloc_fd(lowest, limit)
        self.install_at(None, fd, file, cloexec)
        return fd

    def install_at(self, kernel: "Kernel | None", fd: int, file: File, cloexec: bool) -> None:
        """fd_install, replacing (and closing) what ``fd`` held, as dup2 does."""
        file.references += 1
        old = self.files.get(fd)
        self.files[fd] = file
        (self.cloexec.add if cloexec else self.cloexec.discard)(fd)
        if old is not None and kernel is not None:
            fput(kernel, old)

    def close(self, kernel: "Kernel", fd: int) -> None:
        file = self.files.pop(fd, None) if fd >= 0 else None
        if file is None:
            raise SyscallError(EBADF)
        self.cloexec.discard(fd)
        fput(kernel, file)

    def copy(self) -> "FdTable":
        """dup_fd (fork without CLONE_FILES): the same Files, one more reference each."""
        table = FdTable()
        table.files = dict(self.files)
        table.cloexec = set(self.cloexec)
        for file in table.files.values():
            file.references += 1
        return table

    def close_all(self, kernel: "Kernel") -> None:
        """exit_files / put_files_struct: every fd closed, in fd order."""
        for fd in sorted(self.files):
            self.close(kernel, fd)

    def close_on_exec(self, kernel: "Kernel") -> None:
        """do_close_on_exec."""
        for fd in sorted(self.cloexec):
            if fd in self.files:
                self.close(kernel, fd)
        self.cloexec.clear()


def fput(kernel: "Kernel", file: File) -> None:
    """Drop a reference; the last one leaves every epoll set and releases the file (__fput)."""
    file.references -= 1
    if file.references == 0:
        if file.__dict__.get("epoll_items"):
            from emu_x86.kernel.eventpoll import eventpoll_release
            eventpoll_release(file)
        file.release(kernel)


def files_of(task: "Task") -> FdTable:
    return task.process.files


def fdget(task: "Task", fd: int) -> File:
    return task.process.files.get(as_fd(fd))


def as_fd(value: int) -> int:
    """An ``unsigned int fd`` argument as the guest's int (so 0xFFFFFFFF is -1: -EBADF)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def nofile_limit(task: "Task") -> int:
    """RLIMIT_NOFILE's soft limit (setrlimit changes it: emu_x86/kernel/resource.py), the
    bound for new fds (alloc_fd, F_DUPFD, dup2)."""
    from emu_x86.kernel.resource import RLIMIT_NOFILE, task_rlimit
    return min(task_rlimit(task.process, RLIMIT_NOFILE), NR_OPEN)


# ---- system calls -------------------------------------------------------------------------

SYS_close, SYS_dup, SYS_dup2, SYS_dup3, SYS_close_range = 3, 32, 33, 292, 436


def sys_close(kernel, vcpu, task, fd, *_):
    files_of(task).close(kernel, as_fd(fd))
    return 0


def sys_close_range(kernel, vcpu, task, first, last, flags, *_):
    """close_range(2) (fs/file.c __close_range): CLOSE_RANGE_CLOEXEC only marks."""
    first &= 0xFFFFFFFF
    last &= 0xFFFFFFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(EINVAL)
    table = files_of(task)
    for fd in sorted(fd for fd in table.files if first <= fd <= last):
        if flags & CLOSE_RANGE_CLOEXEC:
            table.cloexec.add(fd)
        else:
            table.close(kernel, fd)
    return 0


def sys_dup(kernel, vcpu, task, oldfd, *_):
    table = files_of(task)
    file = table.get(as_fd(oldfd))
    return table.install(file, limit=nofile_limit(task))


def _do_dup2(kernel, task, oldfd: int, newfd: int, cloexec: bool) -> int:
    table = files_of(task)
    file = table.get(oldfd)
    if not 0 <= newfd < nofile_limit(task):
        raise SyscallError(EBADF)
    table.install_at(kernel, newfd, file, cloexec)
    return newfd


def sys_dup2(kernel, vcpu, task, oldfd, newfd, *_):
    oldfd, newfd = as_fd(oldfd), as_fd(newfd)
    if oldfd == newfd:
        files_of(task).get(oldfd)          # dup2 of a valid fd onto itself: nothing to do
        return newfd
    return _do_dup2(kernel, task, oldfd, newfd, False)


def sys_dup3(kernel, vcpu, task, oldfd, newfd, flags, *_):
    oldfd, newfd = as_fd(oldfd), as_fd(newfd)
    flags &= 0xFFFFFFFF
    if flags & ~O_CLOEXEC or oldfd == newfd:
        raise SyscallError(EINVAL)
    return _do_dup2(kernel, task, oldfd, newfd, bool(flags & O_CLOEXEC))


SYSCALLS = {
    SYS_close: sys_close,
    SYS_close_range: sys_close_range,
    SYS_dup: sys_dup,
    SYS_dup2: sys_dup2,
    SYS_dup3: sys_dup3,
}

__all__ = ["File", "FdTable", "WouldBlock", "fdget", "fput", "files_of", "as_fd", "stat_struct", "SYSCALLS"]
