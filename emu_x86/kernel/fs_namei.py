"""The namespace-changing calls of fs/namei.c -- mkdir(at), rmdir, unlink(at),
rename(at)(2), link(at), symlink(at), mknod(at) -- over the guest's tree.

Each call reads its path(s) with ``getname``, checks its flags, then finds
the file system that answers the path (``where``): the ``--fs`` directory
(emu_x86/kernel/fs.py's RESOLVE_IN_ROOT walk, ``SandboxFs.resolve`` with the last
component left for the call), the in-memory tmpfs on /tmp
(emu_x86/kernel/tmpfs.py), or the kernel's own nodes (the bare root without
``--fs``, devtmpfs on /dev). The order of the checks is Linux's:

- a creating call (mkdir, mknod, symlink, link's new name: filename_create)
  fails EEXIST for an existing name -- including ``.``/``..`` -- before the
  read-only mount's EROFS; trailing slashes are allowed only for mkdir;
- rmdir refuses ``.`` (EINVAL), ``..`` (ENOTEMPTY) and the root (EBUSY),
  unlink any of them (EISDIR), then EROFS, then the lookup (ENOENT,
  ENOTDIR, EISDIR for unlink of a directory);
- rename: unknown flags or EXCHANGE with NOREPLACE/WHITEOUT (EINVAL),
  then ``.``/``..``/root as either name
  (EBUSY), another file system (EXDEV), EROFS, then what the host's
  renameat2 answers (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL);
- mknod: a directory type is EPERM, an unknown type EINVAL (may_mknod),
  devices EPERM after the name is created-checked (no CAP_MKNOD); regular
  files, FIFOs and sockets are made. A FIFO opened in the guest is a kernel
  pipe (emu_x86/kernel/fifo.py), never the host's FIFO.

The host side creates through the emulator's own credentials; when the
emulator runs as root, what the guest creates is given to the guest's
--uid/--gid (as Linux gives a new inode the creator's fsuid/fsgid), so stat
shows the same owner as a native run.
"""
from __future__ import annotations

import ctypes
import errno as host_errno
import os
import stat

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import (
    EBUSY, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY, EPERM, EROFS, EXDEV, SyscallError,
)
from emu_x86.kernel.file import as_fd
from emu_x86.kernel.namei import AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, getname, kernel_path, start_of

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_rename, SYS_mkdir, SYS_rmdir, SYS_link, SYS_unlink, SYS_symlink, SYS_mknod = 82, 83, 84, 86, 87, 88, 133
SYS_mknodat, SYS_mkdirat, SYS_unlinkat, SYS_renameat, SYS_linkat, SYS_symlinkat, SYS_renameat2 = \
    259, 258, 263, 264, 265, 266, 316
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
EACCES = 13

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def host_errno_of(error: OSError) -> int:
    from emu_x86.kernel.fs import _errno_of
    if error.errno in (host_errno.ENOTEMPTY, host_errno.EXDEV, host_errno.EBUSY, host_errno.EMLINK):
        return error.errno
    return _errno_of(error)


def last_component(path: bytes) -> str:
    """The last component as Linux's walk types it: 'root' (only slashes), '.', '..' or 'name'."""
    stripped = path.rstrip(b"/")
    if not stripped:
        return "root"
    last = stripped.rsplit(b"/", 1)[-1]
    return last.decode("utf-8", "surrogateescape") if last in (b".", b"..") else "name"


def where(kernel: "Kernel", task: "Task", dirfd: int, path: bytes):
    """(kind, start or components): 'host' with the walk's start, 'tmpfs' or 'kernel' with the
    folded components."""
    start = start_of(task, dirfd, path)
    tmpfs = getattr(kernel, "tmpfs", None)
    if tmpfs is not None:
        components = tmpfs.claims(start, path)
        if components is not None:
            return "tmpfs", components
    components = kernel_path(kernel, start, path)
    if components is not None:
        return "kernel", components
    return "host", start


def _kernel_node_exists(kernel, components) -> bool:
    from emu_x86.kernel.namei import _lookup_kernel_node
    try:
        _lookup_kernel_node(components, False)
    except SyscallError:
        return False
    return True


def _kernel_refusal(kernel, components) -> int:
    """Changing the kernel's own nodes: /dev is root's (EACCES), the bare root is read-only."""
    return EACCES if components[:1] == ("dev",) else EROFS


def give_to_guest(kernel, name: str, parent: int) -> None:
    """A new host file made for the guest belongs to its --uid/--gid (possible only as root)."""
    if os.geteuid() != 0:
        return
    try:
        os.chown(name, kernel.guest_uid, kernel.guest_gid, dir_fd=parent, follow_symlinks=False)
    except OSError:
        pass


def _lstat(name: str, parent: int):
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None


def _create_lookup(kernel, task, dirfd: int, path: bytes, directory: bool):
    """filename_create for the host: (parent fd, name) of a name that does not exist yet."""
    kind, where_ = where(kernel, task, dirfd, path)
    if kind != "host":
        return kind, where_, None
    if last_component(path) != "name":
        raise SyscallError(EEXIST)
    if path.endswith(b"/") and not directory:
        # A trailing slash on a name that is not to be a directory (filename_create).
        parent, name, _ = kernel.fs.resolve(where_, path.rstrip(b"/"), follow_last=False, allow_missing_last=True)
        info = _lstat(name, parent)
        os.close(parent)
        raise SyscallError(EEXIST if info is not None else ENOENT)
    parent, name, _ = kernel.fs.resolve(where_, path.rstrip(b"/") if directory else path, follow_last=False,
                                        allow_missing_last=True)
    if _lstat(name, parent) is not None:
        os.close(parent)
        raise SyscallError(EEXIST)
    if not kernel.fs.writable:
        os.close(parent)
        raise SyscallError(EROFS)
    return kind, parent, name


# ---- mkdir -----------------------------------------------------------------------------

def do_mkdirat(kernel, task, dirfd: int, path_address: int, mode: int) -> int:
    path = getname(task, path_address)
    mode = mode & 0o7777 & ~task.process.umask
    kind, parent, name = _create_lookup(kernel, task, dirfd, path, directory=True)
    if kind == "tmpfs":
        return kernel.tmpfs.mkdir(parent, mode & 0o1777)
    return _create_new_entry(kernel, kind, parent, name, lambda: os.mkdir(name, mode & 0o1777, dir_fd=parent))


def _create_new_entry(kernel, kind: str, parent, name: str, create) -> int:
    """The shared tail of mkdir and symlink once the tmpfs case is handled: a kernel
    directory (/dev, /proc) refuses; on the host ``create()`` makes the entry in the
    open ``parent`` directory, which then belongs to the guest's uid/gid."""
    if kind == "kernel":
        raise SyscallError(EEXIST if _kernel_node_exists(kernel, parent) else _kernel_refusal(kernel, parent))
    try:
        create()
        give_to_guest(kernel, name, parent)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    finally:
        os.close(parent)
    return 0


def sys_mkdir(kernel, vcpu, task, path, mode, *_):
    return do_mkdirat(kernel, task, AT_FDCWD, path, mode)


def sys_mkdirat(kernel, vcpu, task, dirfd, path, mode, *_):
    return do_mkdirat(kernel, task, as_fd(dirfd), path, mode)


# ---- rmdir / unlink ------------------------------------------------------------------------

def do_rmdir(kernel, task, dirfd: int, path: bytes) -> int:
    last = last_component(path)
    if last == ".":
        raise SyscallError(EINVAL)
    if last == "..":
        raise SyscallError(ENOTEMPTY)
    if last == "root":
        raise SyscallError(EBUSY)
    kind, place = where(kernel, task, dirfd, path)
    if kind == "tmpfs":
        return kernel.tmpfs.rmdir(place)
    if kind == "kernel":
        raise SyscallError(_kernel_refusal(kernel, place) if _kernel_node_exists(kernel, place) else ENOENT)
    parent, name, _ = kernel.fs.resolve(place, path.rstrip(b"/"), follow_last=False, allow_missing_last=True)
    try:
        if not kernel.fs.writable:
            raise SyscallError(EROFS)
        info = _lstat(name, parent)
        if info is None:
            raise SyscallError(ENOENT)
        if not stat.S_ISDIR(info.st_mode):
            raise SyscallError(ENOTDIR)
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError as error:
            raise SyscallError(host_errno_of(error)) from None
    finally:
        os.close(parent)
    return 0


def do_unlinkat(kernel, task, dirfd: int, path: bytes) -> int:
    if last_component(path) != "name":
        raise SyscallError(EISDIR)
    kind, place = where(kernel, task, dirfd, path)
    if kind == "tmpfs":
        return kernel.tmpfs.unlink(place, path.endswith(b"/"))
    if kind == "kernel":
        raise SyscallError(_kernel_refusal(kernel, place) if _kernel_node_exists(kernel, place) else ENOENT)
    trailing = path.endswith(b"/")
    parent, name, _ = kernel.fs.resolve(place, path.rstrip(b"/"), follow_last=False, allow_missing_last=True)
    try:
        if not kernel.fs.writable:
            raise SyscallError(EROFS)
        info = _lstat(name, parent)
        if info is None:
            raise SyscallError(ENOENT)
        if stat.S_ISDIR(info.st_mode):
            raise SyscallError(EISDIR)
        if trailing:
            raise SyscallError(ENOTDIR)
        try:
            os.unlink(name, dir_fd=parent)
        except OSError as error:
            raise SyscallError(host_errno_of(error)) from None
    finally:
        os.close(parent)
    return 0


def sys_rmdir(kernel, vcpu, task, path, *_):
    return do_rmdir(kernel, task, AT_FDCWD, getname(task, path))


def sys_unlink(kernel, vcpu, task, path, *_):
    return do_unlinkat(kernel, task, AT_FDCWD, getname(task, path))


def sys_unlinkat(kernel, vcpu, task, dirfd, path, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~AT_REMOVEDIR:
        raise SyscallError(EINVAL)
    name = getname(task, path)
    if flags & AT_REMOVEDIR:
        return do_rmdir(kernel, task, as_fd(dirfd), name)
    return do_unlinkat(kernel, task, as_fd(dirfd), name)


# ---- rename ----------------------------------------------------------------------------

def do_renameat2(kernel, task, olddfd: int, old_address: int, newdfd: int, new_address: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise SyscallError(EINVAL)
    if flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
        raise SyscallError(EINVAL)
    old = getname(task, old_address)
    new = getname(task, new_address)
    if last_component(old) != "name":
        raise SyscallError(EBUSY)
    if last_component(new) != "name":
        raise SyscallError(EEXIST if flags & RENAME_NOREPLACE else EBUSY)
    old_kind, old_place = where(kernel, task, olddfd, old)
    new_kind, new_place = where(kernel, task, newdfd, new)
    if old_kind != new_kind:
        raise SyscallError(EXDEV)
    if old_kind == "tmpfs":
        return kernel.tmpfs.rename(old_place, new_place, flags, old.endswith(b"/"), new.endswith(b"/"))
    if old_kind == "kernel":
        raise SyscallError(_kernel_refusal(kernel, old_place) if _kernel_node_exists(kernel, old_place)
                           else ENOENT)
    old_parent, old_name, _ = kernel.fs.resolve(old_place, old.rstrip(b"/"), follow_last=False,
                                                allow_missing_last=True)
    try:
        new_parent, new_name, _ = kernel.fs.resolve(new_place, new.rstrip(b"/"), follow_last=False,
                                                    allow_missing_last=True)
    except SyscallError:
        os.close(old_parent)
        raise
    try:
        if not kernel.fs.writable:
            raise SyscallError(EROFS)
        info = _lstat(old_name, old_parent)
        if info is None:
            raise SyscallError(ENOENT)
        if (old.endswith(b"/") or new.endswith(b"/")) and not stat.S_ISDIR(info.st_mode):
            raise SyscallError(ENOTDIR)
        host_renameat2(old_parent, old_name, new_parent, new_name, flags)
    finally:
        os.close(old_parent)
        os.close(new_parent)
    return 0


def host_renameat2(old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int) -> None:
    if not flags:
        try:
            os.rename(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent)
        except OSError as error:
            raise SyscallError(host_errno_of(error)) from None
        return
    if _renameat2 is None:                  # pragma: no cover - glibc >= 2.28 has it
        raise SyscallError(EINVAL)
    result = _renameat2(old_parent, os.fsencode(old_name), new_parent, os.fsencode(new_name), flags)
    if result != 0:
        number = ctypes.get_errno()
        raise SyscallError(host_errno_of(OSError(number, os.strerror(number))))


def sys_rename(kernel, vcpu, task, old, new, *_):
    return do_renameat2(kernel, task, AT_FDCWD, old, AT_FDCWD, new, 0)


def sys_renameat(kernel, vcpu, task, olddfd, old, newdfd, new, *_):
    return do_renameat2(kernel, task, as_fd(olddfd), old, as_fd(newdfd), new, 0)


def sys_renameat2(kernel, vcpu, task, olddfd, old, newdfd, new, flags, *_):
    return do_renameat2(kernel, task, as_fd(olddfd), old, as_fd(newdfd), new, flags)


# ---- link / symlink -----------------------------------------------------------------------

def do_linkat(kernel, task, olddfd: int, old_address: int, newdfd: int, new_address: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    if flags & AT_EMPTY_PATH:
        raise SyscallError(ENOENT)          # linking an fd needs CAP_DAC_READ_SEARCH
    old = getname(task, old_address)
    new = getname(task, new_address)
    old_kind, old_place = where(kernel, task, olddfd, old)
    follow = bool(flags & AT_SYMLINK_FOLLOW)
    if old_kind == "host":
        parent, name, _ = kernel.fs.resolve(old_place, old, follow_last=follow)
        info = _lstat(name, parent)
        if info is None:
            os.close(parent)
            raise SyscallError(ENOENT)
        old_ref = (parent, name)
    elif old_kind == "tmpfs":
        old_ref = kernel.tmpfs.lookup(old_place, follow=follow)
    else:
        if not _kernel_node_exists(kernel, old_place):
            raise SyscallError(ENOENT)
        old_ref = None
    try:
        kind, parent, name = _create_lookup(kernel, task, newdfd, new, directory=False)
        if kind != old_kind:
            if kind == "host":
                os.close(parent)
            raise SyscallError(EXDEV)
        if kind == "tmpfs":
            return kernel.tmpfs.link(old_ref, parent)
        if kind == "kernel":
            raise SyscallError(EEXIST if _kernel_node_exists(kernel, parent) else _kernel_refusal(kernel, parent))
        try:
            if stat.S_ISDIR(info.st_mode):
                raise SyscallError(EPERM)   # no hard links to directories
            os.link(old_ref[1], name, src_dir_fd=old_ref[0], dst_dir_fd=parent, follow_symlinks=False)
        except OSError as error:
            raise SyscallError(host_errno_of(error)) from None
        finally:
            os.close(parent)
    finally:
        if old_kind == "host":
            os.close(old_ref[0])
    return 0


def sys_link(kernel, vcpu, task, old, new, *_):
    return do_linkat(kernel, task, AT_FDCWD, old, AT_FDCWD, new, 0)


def sys_linkat(kernel, vcpu, task, olddfd, old, newdfd, new, flags, *_):
    return do_linkat(kernel, task, as_fd(olddfd), old, as_fd(newdfd), new, flags)


def do_symlinkat(kernel, task, target_address: int, newdfd: int, path_address: int) -> int:
    target = getname(task, target_address)
    path = getname(task, path_address)
    kind, parent, name = _create_lookup(kernel, task, newdfd, path, directory=False)
    if kind == "tmpfs":
        return kernel.tmpfs.symlink(target, parent)
    return _create_new_entry(kernel, kind, parent, name,
                             lambda: os.symlink(os.fsdecode(target), name, dir_fd=parent))


def sys_symlink(kernel, vcpu, task, target, path, *_):
    return do_symlinkat(kernel, task, target, AT_FDCWD, path)


def sys_symlinkat(kernel, vcpu, task, target, newdfd, path, *_):
    return do_symlinkat(kernel, task, target, as_fd(newdfd), path)


# ---- mknod -----------------------------------------------------------------------------

def do_mknodat(kernel, task, dirfd: int, path_address: int, mode: int, dev: int) -> int:
    path = getname(task, path_address)
    mode &= 0xFFFFFFFF
    kind_bits = stat.S_IFMT(mode) or stat.S_IFREG
    if kind_bits == stat.S_IFDIR:
        raise SyscallError(EPERM)
    if kind_bits not in (stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        raise SyscallError(EINVAL)
    permissions = mode & 0o7777 & ~task.process.umask
    kind, parent, name = _create_lookup(kernel, task, dirfd, path, directory=False)
    if kind == "kernel":
        raise SyscallError(EEXIST if _kernel_node_exists(kernel, parent) else _kernel_refusal(kernel, parent))
    if kind_bits in (stat.S_IFCHR, stat.S_IFBLK):
        if kind == "host":
            os.close(parent)
        elif kernel.tmpfs.exists(parent):
            raise SyscallError(EEXIST)          # filename_create comes first
        raise SyscallError(EPERM)               # vfs_mknod: CAP_MKNOD
    if kind == "tmpfs":
        return kernel.tmpfs.mknod(parent, kind_bits | permissions)
    try:
        if kind_bits == stat.S_IFREG:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, permissions, dir_fd=parent))
        elif kind_bits == stat.S_IFIFO:
            os.mkfifo(name, permissions, dir_fd=parent)
        else:
            os.mknod(name, stat.S_IFSOCK | permissions, dir_fd=parent)
        give_to_guest(kernel, name, parent)
    except OSError as error:
        raise SyscallError(host_errno_of(error)) from None
    finally:
        os.close(parent)
    return 0


def sys_mknod(kernel, vcpu, task, path, mode, dev, *_):
    return do_mknodat(kernel, task, AT_FDCWD, path, mode, dev)


def sys_mknodat(kernel, vcpu, task, dirfd, path, mode, dev, *_):
    return do_mknodat(kernel, task, as_fd(dirfd), path, mode, dev)


SYSCALLS = {
    SYS_rename: sys_rename,
    SYS_mkdir: sys_mkdir,
    SYS_rmdir: sys_rmdir,
    SYS_link: sys_link,
    SYS_unlink: sys_unlink,
    SYS_symlink: sys_symlink,
    SYS_mknod: sys_mknod,
    SYS_mknodat: sys_mknodat,
    SYS_mkdirat: sys_mkdirat,
    SYS_unlinkat: sys_unlinkat,
    SYS_renameat: sys_renameat,
    SYS_linkat: sys_linkat,
    SYS_symlinkat: sys_symlinkat,
    SYS_renameat2: sys_renameat2,
}

__all__ = ["SYSCALLS", "give_to_guest", "host_errno_of", "where"]
