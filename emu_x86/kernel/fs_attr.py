"""Changing a file's size, mode, owner and times: truncate/ftruncate,
chmod/fchmod/fchmodat(2), chown/fchown/lchown/fchownat (fs/open.c) and
utime/utimes/futimesat/utimensat (fs/utimes.c).

Paths go through the same lookup as every other call (emu_x86/kernel/fs_namei.py's
``where``); an open file is changed through what it is: a file of the
``--fs`` tree by its host fd, a tmpfs file by its inode, anything else as
Linux's VFS answers for it. Rules an unprivileged guest meets (Linux's):

- truncate: a directory is EISDIR, anything but a regular file EINVAL, a
  negative length EINVAL, then EROFS, then write permission (EACCES);
  ftruncate needs a regular file open for writing (EINVAL; EBADF for a bad fd);
- chmod/chown/utimes with explicit times need the file's owner (EPERM),
  utimes to "now" the owner or write permission (EACCES); chown may only
  keep the owner and set the group to one of the caller's (EPERM), and a
  read-only mount is EROFS first;
- utimensat: nanoseconds outside [0, 1e9) other than UTIME_NOW/UTIME_OMIT
  and unknown flags are EINVAL; a NULL path with a dirfd changes that file
  (futimens), with flags EINVAL; UTIME_NOW is the machine's own clock
  (CLOCK_REALTIME), so runs stay deterministic.

The owner test: the host file's uid is the guest's --uid, or -- when the
emulator does not run as root and so cannot give files away -- the
emulator's own uid (its files are the guest's).
"""
from __future__ import annotations

import os
import stat
import struct

from emu_x86.kernel.errno import EACCES, EFAULT, EINVAL, EISDIR, EOPNOTSUPP, EPERM, EROFS, SyscallError
from emu_x86.kernel.file import as_fd, fdget
from emu_x86.kernel.fs_namei import host_errno_of, where
from emu_x86.kernel.namei import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, getname

SYS_truncate, SYS_ftruncate, SYS_chmod, SYS_fchmod, SYS_chown, SYS_fchown, SYS_lchown = 76, 77, 90, 91, 92, 93, 94
SYS_utime, SYS_utimes, SYS_futimesat, SYS_fchownat, SYS_fchmodat, SYS_utimensat, SYS_fchmodat2 = \
    132, 235, 261, 260, 268, 280, 452
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
NSEC_PER_SEC = 1_000_000_000
MASK64 = (1 << 64) - 1
UNCHANGED = 0xFFFFFFFF


def _signed64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def owner_ok(kernel, uid: int) -> bool:
    host_euid = os.geteuid()
    return uid == kernel.guest_uid or (host_euid != 0 and uid == host_euid)


def may_write(kernel, info) -> bool:
    if owner_ok(kernel, info.st_uid):
        return bool(info.st_mode & 0o200)
    if info.st_gid == kernel.guest_gid:
        return bool(info.st_mode & 0o020)
    return bool(info.st_mode & 0o002)


class Target:
    """The file a call changes: host (parent fd + name, or an open host fd), a tmpfs inode, or a kernel node."""

    def __init__(self, kind: str, info=None, host_fd: int | None = None, parent: int | None = None,
                 name: str | None = None, inode=None, file=None) -> None:
        self.kind, self.info, self.host_fd, self.parent, self.name = kind, info, host_fd, parent, name
        self.inode, self.file = inode, file

    def close(self) -> None:
        if self.parent is not None:
            os.close(self.parent)
            self.parent = None


def path_target(kernel, task, dirfd: int, path: bytes, follow: bool) -> Target:
    kind, place = where(kernel, task, dirfd, path)
    if kind == "tmpfs":
        return Target("tmpfs", inode=kernel.tmpfs.lookup(place, follow=follow))
    if kind == "kernel":
        from emu_x86.kernel.namei import _lookup_kernel_node
        node = _lookup_kernel_node(place, path.endswith(b"/"))
        return Target("kernel", name=node)
    parent, name, _ = kernel.fs.resolve(place, path, follow_last=follow)
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError as error:
        os.close(parent)
        raise SyscallError(host_errno_of(error)) from None
    return Target("host", info=info, parent=parent, name=name)


def file_target(kernel, task, fd: int) -> Target:
    from emu_x86.kernel.fs import HostFile
    file = fdget(task, fd)
    if isinstance(file, HostFile) and file.sandbox is not None:
        return Target("host", info=os.fstat(file.host_fd), host_fd=file.host_fd, file=file)
    inode = getattr(file, "tmpfs_inode", None)
    if inode is not None:
        return Target("tmpfs", inode=inode, file=file)
    return Target("other", file=file)


def _host_writable(kernel) -> bool:
    return kernel.fs is not None and kernel.fs.writable


# ---- truncate ----------------------------------------------------------------------------

def sys_truncate(kernel, vcpu, task, path_address, length, *_):
    length = _signed64(length)
    path = getname(task, path_address)
    if length < 0:
        raise SyscallError(EINVAL)
    target = path_target(kernel, task, AT_FDCWD, path, follow=True)
    try:
        if target.kind == "tmpfs":
            return kernel.tmpfs.truncate(target.inode, length, check_write=True)
        if target.kind == "kernel":
            raise SyscallError(EISDIR if target.name in ("root", "dev") else EINVAL)
        info = target.info
        if stat.S_ISDIR(info.st_mode):
            raise SyscallError(EISDIR)
        if not stat.S_ISREG(info.st_mode):
            raise SyscallError(EINVAL)
        if not _host_writable(kernel):
            raise SyscallError(EROFS)
        if not may_write(kernel, info):
            raise SyscallError(EACCES)
        try:
            fd = os.open(target.name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=target.parent)
            try:
                os.ftruncate(fd, length)
            finally:
                os.close(fd)
        except OSError as error:
            raise SyscallError(host_errno_of(error)) from None
    finally:
        target.close()
    return 0


def sys_ftruncate(kernel, vcpu, task, fd, length, *_):
    length = _signed64(length)
    if length < 0:
        raise SyscallError(EINVAL)
    target = file_target(kernel, task, as_fd(fd))
    file = target.file
    if not file.writable or not file.regular:
        raise SyscallError(EINVAL)
    if target.kind == "tmpfs":
        return kernel.tmpfs.truncate(target.inode, length, check_write=False)
    if target.kind != "host":
        raise SyscallError(EINVAL)
    try:
        os.ftruncate(target.host_fd, length)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    return 0


# ---- chmod -------------------------------------------------------------------------------

def _chmod(kernel, target: Target, mode: int) -> int:
    if target.kind == "tmpfs":
        return kernel.tmpfs.chmod(target.inode, mode)
    if target.kind == "kernel":
        raise SyscallError(EROFS if kernel.fs is None and target.name == "root" else EPERM)
    if target.kind == "other":
        raise SyscallError(EPERM)           # pipes, sockets, anon inodes: not the caller's inode
    if not _host_writable(kernel):
        raise SyscallError(EROFS)
    if not owner_ok(kernel, target.info.st_uid):
        raise SyscallError(EPERM)
    if stat.S_ISLNK(target.info.st_mode):
        raise SyscallError(EOPNOTSUPP)     # a symlink's own mode (fchmodat2 AT_SYMLINK_NOFOLLOW)
    # An unprivileged owner outside the file's group loses S_ISGID (inode_init_owner / setattr_should_drop_sgid).
    if mode & stat.S_ISGID and target.info.st_gid != kernel.guest_gid:
        mode &= ~stat.S_ISGID
    try:
        if target.host_fd is not None:
            os.fchmod(target.host_fd, mode & 0o7777)
        else:
            os.chmod(target.name, mode & 0o7777, dir_fd=target.parent, follow_symlinks=False)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    return 0


def do_fchmodat(kernel, task, dirfd: int, path_address: int, mode: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    path = getname(task, path_address, allow_empty=bool(flags & AT_EMPTY_PATH))
    if not path:
        return _chmod(kernel, file_target(kernel, task, dirfd), mode)
    target = path_target(kernel, task, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    try:
        return _chmod(kernel, target, mode)
    finally:
        target.close()


def sys_chmod(kernel, vcpu, task, path, mode, *_):
    return do_fchmodat(kernel, task, AT_FDCWD, path, mode, 0)


def sys_fchmodat(kernel, vcpu, task, dirfd, path, mode, *_):
    return do_fchmodat(kernel, task, as_fd(dirfd), path, mode, 0)


def sys_fchmodat2(kernel, vcpu, task, dirfd, path, mode, flags, *_):
    return do_fchmodat(kernel, task, as_fd(dirfd), path, mode, flags)


def sys_fchmod(kernel, vcpu, task, fd, mode, *_):
    return _chmod(kernel, file_target(kernel, task, as_fd(fd)), mode)


# ---- chown -------------------------------------------------------------------------------

def _chown(kernel, target: Target, uid: int, gid: int) -> int:
    uid &= 0xFFFFFFFF
    gid &= 0xFFFFFFFF
    if target.kind == "tmpfs":
        return kernel.tmpfs.chown(target.inode, uid, gid)
    if target.kind == "kernel":
        raise SyscallError(EROFS if kernel.fs is None and target.name == "root" else EPERM)
    if target.kind == "other":
        raise SyscallError(EPERM)
    if not _host_writable(kernel):
        raise SyscallError(EROFS)
    info = target.info
    # chown_ok / chgrp_ok without CAP_CHOWN: the owner may keep its uid and pick one of its groups.
    owner = owner_ok(kernel, info.st_uid)
    if uid != UNCHANGED and not (owner and uid == info.st_uid):
        raise SyscallError(EPERM)
    if gid != UNCHANGED and not (owner and gid in (info.st_gid, kernel.guest_gid)):
        raise SyscallError(EPERM)
    if gid == UNCHANGED or gid == info.st_gid:
        return 0
    try:
        if target.host_fd is not None:
            os.fchown(target.host_fd, -1, gid)
        else:
            os.chown(target.name, -1, gid, dir_fd=target.parent, follow_symlinks=False)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    return 0


def do_fchownat(kernel, task, dirfd: int, path_address: int, uid: int, gid: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    path = getname(task, path_address, allow_empty=bool(flags & AT_EMPTY_PATH))
    if not path:
        return _chown(kernel, file_target(kernel, task, dirfd), uid, gid)
    target = path_target(kernel, task, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    try:
        return _chown(kernel, target, uid, gid)
    finally:
        target.close()


def sys_chown(kernel, vcpu, task, path, uid, gid, *_):
    return do_fchownat(kernel, task, AT_FDCWD, path, uid, gid, 0)


def sys_lchown(kernel, vcpu, task, path, uid, gid, *_):
    return do_fchownat(kernel, task, AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


def sys_fchownat(kernel, vcpu, task, dirfd, path, uid, gid, flags, *_):
    return do_fchownat(kernel, task, as_fd(dirfd), path, uid, gid, flags)


def sys_fchown(kernel, vcpu, task, fd, uid, gid, *_):
    return _chown(kernel, file_target(kernel, task, as_fd(fd)), uid, gid)


# ---- times -------------------------------------------------------------------------------

def _now_ns(kernel) -> int:
    from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
    return kernel.now_ns(kernel.this_cpu) + REALTIME_EPOCH_NS


def _utimes(kernel, target: Target, times: tuple[int, int] | None) -> int:
    """vfs_utimes: ``times`` (atime_ns, mtime_ns, each possibly UTIME_OMIT) or None for now."""
    if times is not None and times == (UTIME_OMIT, UTIME_OMIT):
        return 0
    if target.kind == "tmpfs":
        return kernel.tmpfs.utimes(target.inode, times, _now_ns(kernel))
    if target.kind in ("kernel", "other"):
        if target.kind == "kernel" and kernel.fs is None and target.name == "root":
            raise SyscallError(EROFS)
        raise SyscallError(EPERM if times is not None else EACCES)
    if not _host_writable(kernel):
        raise SyscallError(EROFS)
    info = target.info
    if not owner_ok(kernel, info.st_uid):
        if times is not None:
            raise SyscallError(EPERM)
        if not may_write(kernel, info):
            raise SyscallError(EACCES)
    now = _now_ns(kernel)
    atime = now if times is None or times[0] == UTIME_NOW else (info.st_atime_ns if times[0] == UTIME_OMIT else times[0])
    mtime = now if times is None or times[1] == UTIME_NOW else (info.st_mtime_ns if times[1] == UTIME_OMIT else times[1])
    try:
        if target.host_fd is not None:
            os.utime(target.host_fd, ns=(atime, mtime))
        else:
            os.utime(target.name, ns=(atime, mtime), dir_fd=target.parent, follow_symlinks=False)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    return 0


def _nsec_valid(nsec: int) -> bool:
    return 0 <= nsec < NSEC_PER_SEC or nsec in (UTIME_NOW, UTIME_OMIT)


def do_utimes(kernel, task, dirfd: int, path_address: int, times: tuple[int, int] | None, flags: int) -> int:
    """do_utimes: a NULL path with a dirfd is futimens (flags must be 0)."""
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    if times is not None and times[0] == UTIME_NOW and times[1] == UTIME_NOW:
        times = None
    if not path_address and dirfd != AT_FDCWD:
        if flags:
            raise SyscallError(EINVAL)
        return _utimes(kernel, file_target(kernel, task, dirfd), times)
    if not path_address:
        raise SyscallError(EFAULT)
    path = getname(task, path_address, allow_empty=bool(flags & AT_EMPTY_PATH))
    if not path:
        return _utimes(kernel, file_target(kernel, task, dirfd), times)
    target = path_target(kernel, task, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    try:
        return _utimes(kernel, target, times)
    finally:
        target.close()


def sys_utimensat(kernel, vcpu, task, dirfd, path, times_address, flags, *_):
    times = None
    if times_address:
        a_sec, a_nsec, m_sec, m_nsec = struct.unpack("<qqqq", task.mm.copy_from_user(times_address, 32))
        if not _nsec_valid(a_nsec) or not _nsec_valid(m_nsec):
            raise SyscallError(EINVAL)
        times = (a_nsec if a_nsec in (UTIME_NOW, UTIME_OMIT) else a_sec * NSEC_PER_SEC + a_nsec,
                 m_nsec if m_nsec in (UTIME_NOW, UTIME_OMIT) else m_sec * NSEC_PER_SEC + m_nsec)
    return do_utimes(kernel, task, as_fd(dirfd), path, times, flags)


def _timevals(task, address: int) -> tuple[int, int] | None:
    """utimes/futimesat's struct timeval[2]: microseconds must lie in [0, 1e6)."""
    if not address:
        return None
    a_sec, a_usec, m_sec, m_usec = struct.unpack("<qqqq", task.mm.copy_from_user(address, 32))
    if not 0 <= a_usec < 1_000_000 or not 0 <= m_usec < 1_000_000:
        raise SyscallError(EINVAL)
    return a_sec * NSEC_PER_SEC + a_usec * 1000, m_sec * NSEC_PER_SEC + m_usec * 1000


def sys_futimesat(kernel, vcpu, task, dirfd, path, times_address, *_):
    return do_utimes(kernel, task, as_fd(dirfd), path, _timevals(task, times_address), 0)


def sys_utimes(kernel, vcpu, task, path, times_address, *_):
    return do_utimes(kernel, task, AT_FDCWD, path, _timevals(task, times_address), 0)


def sys_utime(kernel, vcpu, task, path, times_address, *_):
    times = None
    if times_address:
        actime, modtime = struct.unpack("<qq", task.mm.copy_from_user(times_address, 16))
        times = (actime * NSEC_PER_SEC, modtime * NSEC_PER_SEC)
    return do_utimes(kernel, task, AT_FDCWD, path, times, 0)


SYSCALLS = {
    SYS_truncate: sys_truncate,
    SYS_ftruncate: sys_ftruncate,
    SYS_chmod: sys_chmod,
    SYS_fchmod: sys_fchmod,
    SYS_chown: sys_chown,
    SYS_fchown: sys_fchown,
    SYS_lchown: sys_lchown,
    SYS_utime: sys_utime,
    SYS_utimes: sys_utimes,
    SYS_futimesat: sys_futimesat,
    SYS_fchownat: sys_fchownat,
    SYS_fchmodat: sys_fchmodat,
    SYS_utimensat: sys_utimensat,
    SYS_fchmodat2: sys_fchmodat2,
}

__all__ = ["SYSCALLS", "owner_ok"]
