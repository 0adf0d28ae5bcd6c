"""fcntl(2) (fs/fcntl.c) and ioctl(2)'s generic commands (fs/ioctl.c).

fcntl: F_DUPFD/F_DUPFD_CLOEXEC (the lowest free fd >= arg; -EINVAL past
RLIMIT_NOFILE), F_GETFD/F_SETFD (FD_CLOEXEC), F_GETFL/F_SETFL (only the status
flags of SETFL_MASK change), advisory record locks answered as a single
process holding no conflicting lock would see them, F_GETOWN/F_SETOWN,
F_GETSIG/F_SETSIG, pipe sizes. ioctl: FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC
here; the rest goes to the file (terminal and pipe ioctls), else -ENOTTY.
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import EBADF, EINVAL, SyscallError
from emu_x86.kernel.file import O_NONBLOCK, SETFL_MASK, File, as_fd, fdget, files_of, nofile_limit

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW = 0, 1, 2, 3, 4, 5, 6, 7
F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETOWN_EX, F_GETOWN_EX = 8, 9, 10, 11, 15, 16
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE, F_NOTIFY = 1024, 1025, 1026
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1030, 1031, 1032, 1033, 1034
FD_CLOEXEC = 1
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
FIONCLEX, FIOCLEX, FIOASYNC, FIONBIO = 0x5450, 0x5451, 0x5452, 0x5421
SYS_ioctl, SYS_fcntl = 16, 72


def _record_lock(task, file: File, command: int, address: int) -> int:
    """POSIX/OFD record locks: checked for shape; no other process here ever holds a
    conflicting lock the guest could observe, so F_GETLK reports F_UNLCK."""
    raw = task.mm.copy_from_user(address, 32)              # struct flock
    lock_type, whence = struct.unpack_from("<hh", raw)
    if lock_type not in (F_RDLCK, F_WRLCK, F_UNLCK) or whence not in (0, 1, 2):
        raise SyscallError(EINVAL)
    if command in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW) and struct.unpack_from("<i", raw, 24)[0] != 0:
        raise SyscallError(EINVAL)                          # l_pid must be 0 for OFD locks
    if command in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
        if lock_type == F_RDLCK and not file.readable or lock_type == F_WRLCK and not file.writable:
            raise SyscallError(EBADF)
        return 0
    task.mm.copy_to_user(address, struct.pack("<hh", F_UNLCK, whence) + raw[4:])
    return 0


def sys_fcntl(kernel, vcpu, task, fd, command, argument, *_):
    fd = as_fd(fd)
    table = files_of(task)
    file = table.get(fd)
    command &= 0xFFFFFFFF
    if command in (F_DUPFD, F_DUPFD_CLOEXEC):
        lowest = argument & 0xFFFFFFFF
        if lowest >= nofile_limit(task):
            raise SyscallError(EINVAL)
        return table.install(file, lowest=lowest, cloexec=command == F_DUPFD_CLOEXEC, limit=nofile_limit(task))
    if command == F_GETFD:
        return FD_CLOEXEC if fd in table.cloexec else 0
    if command == F_SETFD:
        (table.cloexec.add if argument & FD_CLOEXEC else table.cloexec.discard)(fd)
        return 0
    if command == F_GETFL:
        return file.flags
    if command == F_SETFL:
        file.flags = (file.flags & ~SETFL_MASK) | (argument & SETFL_MASK)
        return 0
    if command in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _record_lock(task, file, command, argument)
    if command == F_GETOWN:
        return getattr(file, "owner", 0)
    if command == F_SETOWN:
        file.owner = argument & 0xFFFFFFFF
        return 0
    if command == F_GETSIG:
        return getattr(file, "owner_signal", 0)
    if command == F_SETSIG:
        if argument & 0xFFFFFFFF > 64:
            raise SyscallError(EINVAL)
        file.owner_signal = argument & 0xFFFFFFFF
        return 0
    if command in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        from emu_x86.kernel.pipe import PAGE_BYTES, PipeEnd
        if not isinstance(file, PipeEnd):
            raise SyscallError(EBADF)
        if command == F_SETPIPE_SZ:
            return file.set_size(argument & 0xFFFFFFFF)
        return file.pipe.max_slots * PAGE_BYTES
    if command == F_GETLEASE:
        return F_UNLCK
    raise SyscallError(EINVAL)


def sys_ioctl(kernel, vcpu, task, fd, request, argument, *_):
    fd = as_fd(fd)
    file = fdget(task, fd)
    request &= 0xFFFFFFFF
    table = files_of(task)
    if request == FIOCLEX:
        table.cloexec.add(fd)
        return 0
    if request == FIONCLEX:
        table.cloexec.discard(fd)
        return 0
    if request == FIONBIO:
        (on,) = struct.unpack("<i", task.mm.copy_from_user(argument, 4))
        file.flags = file.flags | O_NONBLOCK if on else file.flags & ~O_NONBLOCK
        return 0
    if request == FIOASYNC:
        task.mm.copy_from_user(argument, 4)
        return 0
    return file.ioctl(kernel, task, request, argument)


SYSCALLS = {SYS_fcntl: sys_fcntl, SYS_ioctl: sys_ioctl}

__all__ = ["SYSCALLS"]
