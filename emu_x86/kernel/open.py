"""Opening files, checking access and the working directory (fs/open.c, fs/d_path.c).

open, openat, creat, openat2, access, faccessat, faccessat2, chdir, fchdir,
getcwd and umask, each checking its arguments in Linux's order (flags and
mode before the path, the path before the lookup). The working directory is
the process's (fs_struct, shared by threads, copied by fork).
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import E2BIG, EINVAL, ERANGE, SyscallError
from emu_x86.kernel.file import O_CLOEXEC, O_CREAT, O_PATH, O_TMPFILE, fdget, files_of, nofile_limit
from emu_x86.kernel.namei import (
    AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, access_path, directory_path, getname, open_path,
)
from emu_x86.kernel.file import as_fd
from emu_x86.kernel.fifo import FifoEnd, PendingFifoOpen

SYS_open, SYS_access, SYS_creat, SYS_chdir, SYS_fchdir, SYS_getcwd, SYS_umask = 2, 21, 85, 80, 81, 79, 95
SYS_openat, SYS_faccessat, SYS_openat2, SYS_faccessat2 = 257, 269, 437, 439
# VALID_OPEN_FLAGS (include/linux/fcntl.h): bits open() keeps; the rest are ignored by open/openat.
VALID_OPEN_FLAGS = 0o3 | 0o100 | 0o200 | 0o400 | 0o1000 | 0o2000 | 0o4000 | 0o10000 | 0o20000 | 0o40000 \
    | 0o100000 | 0o200000 | 0o400000 | 0o1000000 | 0o2000000 | 0o10000000 | 0o20000000
O_WRONLY, O_TRUNC = 0o1, 0o1000
OPEN_HOW_SIZE_VER0 = 24
RESOLVE_ALL = 0x3F                   # NO_XDEV | NO_MAGICLINKS | NO_SYMLINKS | BENEATH | IN_ROOT | CACHED
PAGE_SIZE = 4096
S_IRWXO = 0o7


def do_sys_open(kernel, task, dirfd: int, path_address: int, flags: int, mode: int) -> int | None:
    flags &= VALID_OPEN_FLAGS
    path = getname(task, path_address)
    file = open_path(kernel, task, dirfd, path, flags, mode & 0o7777)
    if isinstance(file, PendingFifoOpen):
        return _wait_for_fifo_partner(kernel, task, file, flags)
    fd = files_of(task).install(file, cloexec=bool(flags & O_CLOEXEC), limit=nofile_limit(task))
    if isinstance(file, FifoEnd):
        file.pipe.wait.wake_up(kernel, kernel.this_cpu)     # a partner waiting in its open goes on
    return fd


def _wait_for_fifo_partner(kernel, task, pending, flags: int) -> int | None:
    """fifo_open's wait_for_partner: sleep until the other end is opened; the fd is
    installed only then. A signal ends the wait with -ERESTARTSYS (SA_RESTART
    reruns the open)."""
    from emu_x86.kernel.wait import wait_event

    def retry() -> int | None:
        end = pending.complete()
        if end is None:
            return None
        # No wake-up from here: the partner whose open woke us is already in.
        return files_of(task).install(end, cloexec=bool(flags & O_CLOEXEC), limit=nofile_limit(task))
    pending.task, pending.retry = task, retry
    number = task_syscall_number(kernel)
    wait_event(kernel, kernel.this_cpu, task, [pending.pipe.wait], retry, restart_number=number)
    return None


def task_syscall_number(kernel) -> int | None:
    """The open call being run (RAX still holds its number when the handler starts)."""
    try:
        return kernel.this_cpu.read_register("rax") & 0xFFFFFFFF
    except Exception:                   # pragma: no cover - no CPU context
        return None


def sys_open(kernel, vcpu, task, path, flags, mode, *_):
    return do_sys_open(kernel, task, AT_FDCWD, path, flags & 0xFFFFFFFF, mode & 0xFFFFFFFF)


def sys_openat(kernel, vcpu, task, dirfd, path, flags, mode, *_):
    return do_sys_open(kernel, task, as_fd(dirfd), path, flags & 0xFFFFFFFF, mode & 0xFFFFFFFF)


def sys_creat(kernel, vcpu, task, path, mode, *_):
    return do_sys_open(kernel, task, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode & 0xFFFFFFFF)


def sys_openat2(kernel, vcpu, task, dirfd, path, how_address, size, *_):
    """openat2(2): struct open_how checked as copy_struct_from_user and build_open_flags do."""
    if size < OPEN_HOW_SIZE_VER0:
        raise SyscallError(EINVAL)
    if size > PAGE_SIZE:
        raise SyscallError(E2BIG)
    raw = task.mm.copy_from_user(how_address, size)
    if any(raw[OPEN_HOW_SIZE_VER0:]):
        raise SyscallError(E2BIG)
    flags, mode, resolve = struct.unpack_from("<QQQ", raw)
    if flags & ~VALID_OPEN_FLAGS or resolve & ~RESOLVE_ALL:
        raise SyscallError(EINVAL)
    if mode & ~0o7777 or (mode and not flags & (O_CREAT | (O_TMPFILE & ~0o200000))):
        raise SyscallError(EINVAL)
    if flags & O_PATH and flags & ~(O_PATH | O_CLOEXEC | 0o200000 | 0o400000):
        raise SyscallError(EINVAL)
    return do_sys_open(kernel, task, as_fd(dirfd), path, flags, mode)


def do_faccessat(kernel, task, dirfd: int, path_address: int, mode: int, flags: int) -> int:
    mode &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if mode & ~S_IRWXO:
        raise SyscallError(EINVAL)
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    path = getname(task, path_address, allow_empty=bool(flags & AT_EMPTY_PATH))
    if not path:
        fdget(task, dirfd)                       # AT_EMPTY_PATH: the fd itself, which exists
        return 0
    return access_path(kernel, task, dirfd, path, mode, follow=not flags & AT_SYMLINK_NOFOLLOW)


def sys_access(kernel, vcpu, task, path, mode, *_):
    return do_faccessat(kernel, task, AT_FDCWD, path, mode, 0)


def sys_faccessat(kernel, vcpu, task, dirfd, path, mode, *_):
    return do_faccessat(kernel, task, as_fd(dirfd), path, mode, 0)


def sys_faccessat2(kernel, vcpu, task, dirfd, path, mode, flags, *_):
    return do_faccessat(kernel, task, as_fd(dirfd), path, mode, flags)


def sys_chdir(kernel, vcpu, task, path_address, *_):
    path = getname(task, path_address)
    task.process.cwd = directory_path(kernel, task, AT_FDCWD, path)
    return 0


def sys_fchdir(kernel, vcpu, task, fd, *_):
    from emu_x86.kernel.errno import ENOTDIR
    file = fdget(task, fd)
    if not getattr(file, "is_directory", False):
        raise SyscallError(ENOTDIR)
    task.process.cwd = tuple(file.path)
    return 0


def sys_getcwd(kernel, vcpu, task, buf, size, *_):
    """getcwd(2): the path with its NUL; -ERANGE when ``size`` cannot hold it."""
    cwd = ("/" + "/".join(task.process.cwd)).encode("utf-8", "surrogateescape") + b"\0"
    if size < len(cwd):
        raise SyscallError(ERANGE)
    task.mm.copy_to_user(buf, cwd)
    return len(cwd)


def sys_umask(kernel, vcpu, task, mask, *_):
    old = getattr(task.process, "umask", 0o022)
    task.process.umask = mask & 0o777
    return old


SYSCALLS = {
    SYS_open: sys_open,
    SYS_openat: sys_openat,
    SYS_creat: sys_creat,
    SYS_openat2: sys_openat2,
    SYS_access: sys_access,
    SYS_faccessat: sys_faccessat,
    SYS_faccessat2: sys_faccessat2,
    SYS_chdir: sys_chdir,
    SYS_fchdir: sys_fchdir,
    SYS_getcwd: sys_getcwd,
    SYS_umask: sys_umask,
}

__all__ = ["SYSCALLS"]
