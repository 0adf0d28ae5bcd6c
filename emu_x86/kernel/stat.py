"""stat, lstat, fstat, newfstatat, statx, readlink, readlinkat (fs/stat.c).

Flags are checked before the path is read, the path before the lookup, and
a readlink buffer size before anything else, as Linux orders them.
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import EINVAL, ENOENT, SyscallError
from emu_x86.kernel.file import as_fd, fdget
from emu_x86.kernel.namei import (
    AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_STATX_SYNC_TYPE, AT_SYMLINK_NOFOLLOW, getname, readlink_path,
    stat_path,
)

SYS_stat, SYS_fstat, SYS_lstat, SYS_readlink, SYS_newfstatat, SYS_readlinkat, SYS_statx = 4, 5, 6, 89, 262, 267, 332
STAT_FLAGS = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE
STATX_BASIC_STATS = 0x7FF
STATX_RESERVED = 0x80000000
AT_STATX_SYNC_AS_STAT, AT_STATX_FORCE_SYNC, AT_STATX_DONT_SYNC = 0, 0x2000, 0x4000
_STAT = struct.Struct("<QQQIIIIQqqq6q3q")


def _stat_of(kernel, task, dirfd: int, path_address: int, flags: int) -> bytes:
    path = getname(task, path_address, allow_empty=bool(flags & AT_EMPTY_PATH))
    if not path:
        return fdget(task, dirfd).stat(kernel)
    return stat_path(kernel, task, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)


def sys_stat(kernel, vcpu, task, path, statbuf, *_):
    task.mm.copy_to_user(statbuf, _stat_of(kernel, task, AT_FDCWD, path, 0))
    return 0


def sys_lstat(kernel, vcpu, task, path, statbuf, *_):
    task.mm.copy_to_user(statbuf, _stat_of(kernel, task, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))
    return 0


def sys_fstat(kernel, vcpu, task, fd, statbuf, *_):
    task.mm.copy_to_user(statbuf, fdget(task, fd).stat(kernel))
    return 0


def sys_newfstatat(kernel, vcpu, task, dirfd, path, statbuf, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~STAT_FLAGS:
        raise SyscallError(EINVAL)
    task.mm.copy_to_user(statbuf, _stat_of(kernel, task, as_fd(dirfd), path, flags))
    return 0


def statx_bytes(stat_data: bytes, mask: int) -> bytes:
    """struct statx (include/uapi/linux/stat.h) from a struct stat's fields."""
    (dev, ino, nlink, mode, uid, gid, _, rdev, size, blksize, blocks,
     atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns, *_) = _STAT.unpack(stat_data)
    def timestamp(seconds, nanoseconds):
        return struct.pack("<qIi", seconds, nanoseconds, 0)
    return (struct.pack("<IIQIIIHH", STATX_BASIC_STATS, blksize, 0, nlink, uid, gid, mode, 0)
            + struct.pack("<QQQQ", ino, size, blocks, 0)
            + timestamp(atime, atime_ns) + timestamp(0, 0) + timestamp(ctime, ctime_ns) + timestamp(mtime, mtime_ns)
            + struct.pack("<IIII", (rdev >> 8) & 0xFFF, (rdev & 0xFF) | ((rdev >> 12) & ~0xFF),
                          (dev >> 8) & 0xFFF, (dev & 0xFF) | ((dev >> 12) & ~0xFF))
            + bytes(256 - 0x90))


def sys_statx(kernel, vcpu, task, dirfd, path, flags, mask, statxbuf, *_):
    flags &= 0xFFFFFFFF
    mask &= 0xFFFFFFFF
    if mask & STATX_RESERVED or flags & ~STAT_FLAGS or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE:
        raise SyscallError(EINVAL)
    data = _stat_of(kernel, task, as_fd(dirfd), path, flags)
    task.mm.copy_to_user(statxbuf, statx_bytes(data, mask))
    return 0


def do_readlinkat(kernel, task, dirfd: int, path_address: int, buf: int, size: int) -> int:
    size &= 0xFFFFFFFF
    if size == 0 or size & (1 << 31):
        raise SyscallError(EINVAL)
    path = getname(task, path_address, allow_empty=True)
    if not path:
        raise SyscallError(ENOENT)       # an empty path names no link (do_readlinkat)
    else:
        target = readlink_path(kernel, task, dirfd, path)
    target = target[:size]
    task.mm.copy_to_user(buf, target)
    return len(target)


def sys_readlink(kernel, vcpu, task, path, buf, size, *_):
    return do_readlinkat(kernel, task, AT_FDCWD, path, buf, size)


def sys_readlinkat(kernel, vcpu, task, dirfd, path, buf, size, *_):
    return do_readlinkat(kernel, task, as_fd(dirfd), path, buf, size)


SYSCALLS = {
    SYS_stat: sys_stat,
    SYS_lstat: sys_lstat,
    SYS_fstat: sys_fstat,
    SYS_newfstatat: sys_newfstatat,
    SYS_statx: sys_statx,
    SYS_readlink: sys_readlink,
    SYS_readlinkat: sys_readlinkat,
}

__all__ = ["SYSCALLS", "statx_bytes"]
