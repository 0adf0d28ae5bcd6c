"""Path lookup over the guest's namespace (fs/namei.c): the root, /dev, /proc and the rest.

The guest's tree is the ``--fs`` directory (emu_x86/kernel/fs.py, walked with
RESOLVE_IN_ROOT semantics) with devtmpfs mounted on /dev and procfs on /proc
(emu_x86/kernel/proc/), as every Linux system has them; without ``--fs`` the root is
an empty read-only directory holding only /dev and /proc. A path starts at the root (absolute), at the process's
working directory (AT_FDCWD) or at an open directory (dirfd); paths under
/dev are recognised after ``.`` and ``..`` are folded, since nothing below
/dev is a link.

``getname`` reads a path argument as Linux's getname_flags: -EFAULT for a bad
pointer, -ENAMETOOLONG at PATH_MAX, -ENOENT for an empty path unless the call
allows AT_EMPTY_PATH.
"""
from __future__ import annotations

import stat

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel import proc as procfs
from emu_x86.kernel.devices import DEVICES, open_device
from emu_x86.kernel.proc import PROC_ROOT_INO
from emu_x86.kernel.errno import EACCES, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOTDIR, EROFS, SyscallError
from emu_x86.kernel.file import (
    DEVTMPFS_DEV, O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_RDONLY, O_TRUNC, File, fdget,
    stat_struct,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_NO_AUTOMOUNT, AT_EMPTY_PATH = \
    0x100, 0x200, 0x400, 0x800, 0x1000
AT_EACCESS = 0x200
AT_STATX_SYNC_TYPE = 0x6000
PATH_MAX = 4096
DT_DIR, DT_CHR = 4, 2
ROOT_INODE, DEV_INODE, TMP_INODE = 2, 3, 4


def getname(task: "Task", address: int, allow_empty: bool = False) -> bytes:
    """getname_flags: the path string, checked as Linux checks it."""
    name = task.mm.strncpy_from_user(address, PATH_MAX)
    if len(name) >= PATH_MAX:
        raise SyscallError(ENAMETOOLONG)
    if not name and not allow_empty:
        raise SyscallError(ENOENT)
    return name


class SyntheticDirectory(File):
    """A directory the kernel provides: the bare root (no --fs) or /dev."""
    seekable = True
    pollable = False

    def __init__(self, flags: int, components: tuple[str, ...]) -> None:
        super().__init__(flags)
        self.path = components
        self.is_directory = True
        self.offset = 0

    def entries(self) -> list[tuple[int, int, bytes]]:
        if self.path:
            listing = [(0x400 + cls.minor, DT_CHR, name.encode()) for name, cls in sorted(DEVICES.items())]
            return [(DEV_INODE, DT_DIR, b"."), (ROOT_INODE, DT_DIR, b"..")] + listing
        return [(ROOT_INODE, DT_DIR, b"."), (ROOT_INODE, DT_DIR, b".."), (DEV_INODE, DT_DIR, b"dev"),
                (PROC_ROOT_INO, DT_DIR, b"proc"), (TMP_INODE, DT_DIR, b"tmp")]

    def read_bytes(self, kernel, task, max_bytes):
        raise SyscallError(EISDIR)

    def pread_bytes(self, kernel, max_bytes, position):
        raise SyscallError(EISDIR)

    def llseek(self, kernel, offset, whence):
        if whence != 0 or offset < 0:
            raise SyscallError(EINVAL)
        self.offset = offset
        return offset

    def getdents64(self, kernel, task, address, count):
        from emu_x86.kernel.fs import emit_dirents
        return emit_dirents(task, self, self.entries(), address, count)

    def stat(self, kernel):
        return directory_stat(kernel, self.path)

    def describe(self) -> str:
        return "/" + "/".join(self.path)


def directory_stat(kernel: "Kernel", components: tuple[str, ...]) -> bytes:
    inode = DEV_INODE if components else ROOT_INODE
    return stat_struct(DEVTMPFS_DEV, inode, stat.S_IFDIR | 0o755, kernel, nlink=2, size=4096 if not components
                       else 60, uid=0, gid=0)


def start_of(task: "Task", dirfd: int, path: bytes) -> tuple[str, ...]:
    """Where a lookup of ``path`` begins, as components below the root."""
    if path.startswith(b"/"):
        return ()
    if dirfd == AT_FDCWD:
        return task.process.cwd
    file = fdget(task, dirfd)
    if not getattr(file, "is_directory", False):
        raise SyscallError(ENOTDIR)
    return file.path


def fold(start: tuple[str, ...], path: bytes) -> tuple[str, ...]:
    """``path`` from ``start`` with ``.`` and ``..`` folded (no links followed)."""
    parts = list(start) if not path.startswith(b"/") else []
    for part in path.decode("utf-8", "surrogateescape").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


def kernel_path(kernel: "Kernel", start: tuple[str, ...], path: bytes) -> tuple[str, ...] | None:
    """The folded components if the path is one the kernel itself answers (/dev, or the
    bare root without --fs), else None (the --fs directory answers)."""
    components = fold(start, path)
    if components[:1] in (("dev",), ("proc",)):
        return components
    if kernel.fs is None:
        return components
    return None


def _lookup_kernel_node(components: tuple[str, ...], trailing_slash: bool) -> str:
    """'root', 'dev' or a device name; -ENOENT/-ENOTDIR as the walk would fail."""
    if not components:
        return "root"
    if components == ("dev",):
        return "dev"
    if components[0] == "dev" and len(components) == 2 and components[1] in DEVICES:
        if trailing_slash:
            raise SyscallError(ENOTDIR)
        return components[1]
    if components[0] == "dev" and len(components) > 2 and components[1] in DEVICES:
        raise SyscallError(ENOTDIR)
    raise SyscallError(ENOENT)


def open_exe(kernel: "Kernel", task: "Task") -> File:
    """/proc/self/exe opened: the running program's file again (proc_exe_link)."""
    import os
    location = task.process.exe_location
    if not location:
        raise SyscallError(ENOENT)
    if location[0] == "host":
        from emu_x86.kernel.fs import HostFile
        try:
            host_fd = os.open(location[1], os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise SyscallError(ENOENT) from None
        return HostFile(None, host_fd, O_RDONLY | O_LARGEFILE, False, ())
    _, start, path = location
    components = kernel_path(kernel, start, path)
    if components is None:
        return kernel.fs.open(start, path, O_RDONLY, 0)
    raise SyscallError(ENOENT)


def tmpfs_path(kernel: "Kernel", start: tuple[str, ...], path: bytes) -> tuple[str, ...] | None:
    """The components below /tmp when the in-memory tmpfs answers the path (emu_x86/kernel/tmpfs.py)."""
    tmpfs = getattr(kernel, "tmpfs", None)
    return tmpfs.claims(start, path) if tmpfs is not None else None


def open_path(kernel: "Kernel", task: "Task", dirfd: int, path: bytes, flags: int, mode: int) -> File:
    """do_filp_open: the File ``path`` names, opened with ``flags``."""
    start = start_of(task, dirfd, path)
    if (tmp := tmpfs_path(kernel, start, path)) is not None:
        return kernel.tmpfs.open(tmp, flags, mode, getattr(task.process, "umask", 0o022))
    components = kernel_path(kernel, start, path)
    if components is not None and components[:1] == ("proc",):
        try:
            return procfs.proc_open(kernel, task, components, flags, path.endswith(b"/"))
        except procfs.Redirect as redirect:
            return open_path(kernel, task, AT_FDCWD, redirect.path, flags, mode)
    if components is None:
        return kernel.fs.open(start, path, flags, mode, umask=getattr(task.process, "umask", 0o022))
    try:
        node = _lookup_kernel_node(components, path.endswith(b"/"))
    except SyscallError as error:
        if error.errno == ENOENT and flags & O_CREAT and len(components) == 1:
            raise SyscallError(EROFS if kernel.fs is None else EACCES) from None
        raise
    access = flags & O_ACCMODE
    if access == O_ACCMODE:
        raise SyscallError(EINVAL)
    if flags & O_CREAT and flags & O_EXCL:
        from emu_x86.kernel.errno import EEXIST
        raise SyscallError(EEXIST)
    if node in ("root", "dev"):
        if access != O_RDONLY or flags & (O_CREAT | O_TRUNC):
            raise SyscallError(EISDIR)
        return SyntheticDirectory(O_RDONLY | O_LARGEFILE, components)
    if flags & O_DIRECTORY:
        raise SyscallError(ENOTDIR)
    return open_device(node, flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_DIRECTORY) | O_LARGEFILE)


def stat_path(kernel: "Kernel", task: "Task", dirfd: int, path: bytes, follow: bool) -> bytes:
    start = start_of(task, dirfd, path)
    if (tmp := tmpfs_path(kernel, start, path)) is not None:
        return kernel.tmpfs.stat_path(tmp, follow)
    components = kernel_path(kernel, start, path)
    if components is not None and components[:1] == ("proc",):
        try:
            return procfs.proc_stat(kernel, task, components, follow, path.endswith(b"/"))
        except procfs.Redirect as redirect:
            return stat_path(kernel, task, AT_FDCWD, redirect.path, follow)
    if components is None:
        return kernel.fs.stat_path(start, path, follow)
    node = _lookup_kernel_node(components, path.endswith(b"/"))
    if node in ("root", "dev"):
        return directory_stat(kernel, components)
    return DEVICES[node](O_RDONLY).stat(kernel)


def access_path(kernel: "Kernel", task: "Task", dirfd: int, path: bytes, mode: int, follow: bool = True) -> int:
    start = start_of(task, dirfd, path)
    if (tmp := tmpfs_path(kernel, start, path)) is not None:
        return kernel.tmpfs.access(tmp, mode, follow)
    components = kernel_path(kernel, start, path)
    if components is not None and components[:1] == ("proc",):
        try:
            return procfs.proc_access(kernel, task, components, mode, follow, path.endswith(b"/"))
        except procfs.Redirect as redirect:
            return access_path(kernel, task, AT_FDCWD, redirect.path, mode, follow)
    if components is None:
        return kernel.fs.access(start, path, mode, follow)
    node = _lookup_kernel_node(components, path.endswith(b"/"))
    if node == "root" and mode & 2:
        raise SyscallError(EROFS if kernel.fs is None else EACCES)
    if node not in ("root", "dev") and mode & 1:
        raise SyscallError(EACCES)                 # devices are rw-rw-rw-
    if node == "dev" and mode & 2:
        raise SyscallError(EACCES)                 # /dev is root's
    return 0


def readlink_path(kernel: "Kernel", task: "Task", dirfd: int, path: bytes) -> bytes:
    start = start_of(task, dirfd, path)
    if (tmp := tmpfs_path(kernel, start, path)) is not None:
        return kernel.tmpfs.readlink(tmp)
    components = kernel_path(kernel, start, path)
    if components is not None and components[:1] == ("proc",):
        try:
            return procfs.proc_readlink(kernel, task, components, path.endswith(b"/"))
        except procfs.Redirect as redirect:
            return readlink_path(kernel, task, AT_FDCWD, redirect.path)
    if components is None:
        return kernel.fs.readlink(start, path)
    _lookup_kernel_node(components, path.endswith(b"/"))
    raise SyscallError(EINVAL)                     # none of the kernel's nodes is a link


def directory_path(kernel: "Kernel", task: "Task", dirfd: int, path: bytes) -> tuple[str, ...]:
    """chdir: the components of the directory ``path`` names."""
    start = start_of(task, dirfd, path)
    if (tmp := tmpfs_path(kernel, start, path)) is not None:
        return kernel.tmpfs.directory(tmp)
    components = kernel_path(kernel, start, path)
    if components is not None and components[:1] == ("proc",):
        try:
            return procfs.proc_directory(kernel, task, components)
        except procfs.Redirect as redirect:
            return directory_path(kernel, task, AT_FDCWD, redirect.path)
    if components is None:
        return kernel.fs.directory(start, path)
    node = _lookup_kernel_node(components, path.endswith(b"/"))
    if node not in ("root", "dev"):
        raise SyscallError(ENOTDIR)
    return components


__all__ = ["getname", "open_path", "stat_path", "access_path", "readlink_path", "directory_path", "start_of",
           "AT_FDCWD", "AT_EMPTY_PATH", "AT_SYMLINK_NOFOLLOW"]
