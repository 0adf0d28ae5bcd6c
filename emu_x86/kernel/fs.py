"""The --fs sandbox: a host directory mapped as the guest's root, and its open files.

Without ``--fs``/``--fs-rw`` a guest's root holds only /dev (emu_x86/kernel/namei.py).
With ``--fs DIR`` the
directory is the guest's ``/``, read-only (writes fail -EROFS, as on a
read-only mount); ``--fs-rw DIR`` also lets the guest create, truncate and
write files there.

Path resolution never asks the host to resolve a guest path. Each component
is looked up here, one directory file descriptor at a time (``openat`` with
O_NOFOLLOW, ``readlinkat`` for symbolic links), with the semantics of
openat2(RESOLVE_IN_ROOT) (fs/namei.c, ``nd_jump_root`` / ``follow_dotdot``):
``..`` at the root stays at the root, an absolute symlink restarts at the
root, and at most 40 links are followed (-ELOOP). So no ``..``, symlink or
``/proc/self/root`` path reaches anything outside DIR -- there is no
``/proc`` unless DIR has one, and then it is just a directory. Only regular
files and directories are opened; FIFOs, sockets and devices are -EACCES, so
a guest cannot make the emulator block on the host.

``HostFile`` is such a file or directory once open (emu_x86/kernel/file.py's File);
the system calls that reach it live with their Linux counterparts
(emu_x86/kernel/open.py, emu_x86/kernel/stat.py, emu_x86/kernel/read_write.py ...) and resolve paths
through emu_x86/kernel/namei.py, which sends what is not /dev here.
"""
from __future__ import annotations

import errno as host_errno
import os
import stat
import struct

from emu_x86.kernel.errno import (
    EACCES,
    EEXIST,
    EINVAL,
    EISDIR,
    ELOOP,
    ENAMETOOLONG,
    ENOENT,
    ENOTDIR,
    EROFS,
    SyscallError,
)
from emu_x86.kernel.file import (
    O_ACCMODE, O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOFOLLOW, O_PATH, O_RDONLY, O_TMPFILE,
    O_TRUNC, File,
)

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAXSYMLINKS = 40                     # include/linux/namei.h
MAX_RW_COUNT = 0x7FFFF000
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
R_OK, W_OK, X_OK = 4, 2, 1
# linux_dirent64 d_type values (include/linux/fs_types.h)
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
GUEST_DEV = 0x801                    # st_dev the guest sees for every file of the mapped directory


class HostFile(File):
    """A file or directory of the mapped directory, open. ``host_fd`` is owned here
    (closed when the last guest fd goes); ``path``: guest components from the root,
    for openat(dirfd, ...), fchdir and /proc/self/fd."""
    seekable = True
    pollable = False              # regular files and directories: epoll_ctl gives -EPERM

    def __init__(self, sandbox: "SandboxFs | None", host_fd: int, flags: int, is_directory: bool,
                 path: tuple[str, ...]) -> None:
        super().__init__(flags)
        self.sandbox = sandbox
        self.host_fd = host_fd
        self.is_directory = is_directory
        self.regular = not is_directory
        self.path = path
        self.offset = 0
        self.directory_entries: list | None = None   # getdents64 snapshot, sorted by name
        if sandbox is not None:          # None: the program the emulator was started with
            sandbox.open_host_fds.add(host_fd)

    def release(self, kernel) -> None:
        if self.sandbox is not None:
            self.sandbox.open_host_fds.discard(self.host_fd)
        try:
            os.close(self.host_fd)
        except OSError:
            pass

    def describe(self) -> str:
        return "/" + "/".join(self.path)

    def read_bytes(self, kernel, task, max_bytes):
        data = self.pread_bytes(kernel, max_bytes, self.offset)
        self.offset += len(data)
        return data

    def pread_bytes(self, kernel, max_bytes, position):
        if self.is_directory:
            raise SyscallError(EISDIR)
        try:
            return os.pread(self.host_fd, max_bytes, position)
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None

    def write_bytes(self, kernel, task, data):
        try:
            if self.flags & O_APPEND:
                written = os.write(self.host_fd, data)
                self.offset = os.lseek(self.host_fd, 0, os.SEEK_CUR)
                return written
            written = os.pwrite(self.host_fd, data, self.offset)
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        self.offset += written
        return written

    def pwrite_bytes(self, kernel, data, position):
        try:
            return os.pwrite(self.host_fd, data, position)
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None

    def llseek(self, kernel, offset, whence):
        if self.is_directory:
            if whence != SEEK_SET or offset < 0:
                raise SyscallError(EINVAL)
            self.offset = offset
            return offset
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.offset + offset
        elif whence == SEEK_END:
            new = os.fstat(self.host_fd).st_size + offset
        else:                              # SEEK_DATA / SEEK_HOLE: the file has no holes here
            size = os.fstat(self.host_fd).st_size
            if offset < 0 or offset >= size:
                raise SyscallError(host_errno.ENXIO)
            new = offset if whence == 3 else size
        if new < 0 or new > (1 << 63) - 1:
            raise SyscallError(EINVAL)
        self.offset = new
        return new

    def stat(self, kernel) -> bytes:
        return stat_bytes(os.fstat(self.host_fd))

    def getdents64(self, kernel, task, dirp: int, count: int) -> int:
        """linux_dirent64 records (ino, off, reclen, type, name) from a sorted snapshot, so the
        order is the same on every host and run; d_off is the index of the next entry."""
        if not self.is_directory:
            raise SyscallError(ENOTDIR)
        if self.directory_entries is None:
            self.directory_entries = self._directory_entries()
        return emit_dirents(task, self, self.directory_entries, dirp, count)

    def _directory_entries(self) -> list[tuple[int, int, bytes]]:
        entries = []
        this = os.fstat(self.host_fd).st_ino
        entries.append((this, DT_DIR, b"."))
        entries.append((this if not self.path else 1, DT_DIR, b".."))
        try:
            with os.scandir(self.host_fd) as scan:
                listed = []
                for entry in scan:
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError:
                        mode = 0
                    listed.append((entry.inode(), _dirent_type(mode), os.fsencode(entry.name)))
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        if not self.path and not any(name == b"dev" for _, _, name in listed):
            listed.append((2, DT_DIR, b"dev"))        # devtmpfs is mounted on /dev
        if not self.path and not any(name == b"proc" for _, _, name in listed):
            listed.append((1, DT_DIR, b"proc"))       # and procfs on /proc
        return entries + sorted(listed, key=lambda item: item[2])


def emit_dirents(task, file, entries: list[tuple[int, int, bytes]], dirp: int, count: int) -> int:
    """Write linux_dirent64 records from ``entries`` starting at ``file.offset`` (an index)."""
    out = bytearray()
    index = file.offset
    while index < len(entries):
        ino, kind, name = entries[index]
        record_length = (19 + len(name) + 1 + 7) & ~7
        if len(out) + record_length > min(count, MAX_RW_COUNT):
            break
        record = struct.pack("<QqHB", ino, index + 1, record_length, kind) + name + b"\0"
        out += record.ljust(record_length, b"\0")
        index += 1
    if not out and index < len(entries):
        raise SyscallError(EINVAL)      # the buffer cannot hold even one record
    if out:
        task.mm.copy_to_user(dirp, bytes(out))
    file.offset = index
    return len(out)


def _errno_of(error: OSError) -> int:
    """Host errno -> guest errno (the same numbers on x86-64 Linux), never leaking EXDEV/host oddities."""
    return error.errno if error.errno in _PASSED_ERRNOS else EACCES


_PASSED_ERRNOS = {ENOENT, ENOTDIR, EISDIR, EEXIST, EACCES, ELOOP, ENAMETOOLONG, EINVAL, host_errno.ENOSPC,
                  host_errno.EFBIG, host_errno.ENOTEMPTY, host_errno.EPERM, host_errno.EIO}


class SandboxFs:
    """A host directory as the guest's root. Fields: ``root_fd`` (an O_PATH fd of DIR),
    ``writable``, ``open_host_fds`` (the host fds behind the guest's open HostFiles)."""

    def __init__(self, root: str, writable: bool = False):
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.writable = writable
        self.open_host_fds: set[int] = set()
        self.fifo_opener = None          # set by the kernel: (st_dev, st_ino, flags) -> File
        # (uid, gid) a file the guest creates is given to (when the emulator runs as root).
        self.new_file_owner: tuple[int, int] | None = None

    def close_all(self) -> None:
        """Release every host fd (the machine is being torn down)."""
        for fd in sorted(self.open_host_fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self.open_host_fds.clear()
        os.close(self.root_fd)

    # ---- path walk (RESOLVE_IN_ROOT) ------------------------------------------------------

    def resolve(self, start: tuple[str, ...], path: bytes, follow_last: bool,
                allow_missing_last: bool = False) -> tuple[int, str, tuple[str, ...]]:
        """Walk ``path`` from the directory ``start`` (components below the root).

        Returns (parent directory fd, final name, final path components): the
        caller opens ``final name`` relative to the parent fd, which it must
        close. The final name is ``"."`` when the path names a directory on the
        walk (``/``, ``a/..``). With ``allow_missing_last`` a missing final
        component is returned instead of -ENOENT (O_CREAT)."""
        if not path:
            raise SyscallError(ENOENT)
        if len(path) >= MAX_PATH_BYTES:
            raise SyscallError(ENAMETOOLONG)
        try:
            text = path.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:      # pragma: no cover - surrogateescape accepts every byte
            raise SyscallError(ENOENT) from None
        pending = text.split("/")
        if text.startswith("/"):
            start = ()
        stack = [self.root_fd]           # directory fds from the root down; stack[0] is not ours to close
        names: list[str] = []
        try:
            for name in start:
                self._descend(stack, names, name)
            links_followed = 0
            pending.reverse()            # pop() from the end = next component
            while pending:
                name = pending.pop()
                is_last = not any(part not in ("", ".") for part in pending)
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:   # at the root, ".." is the root (RESOLVE_IN_ROOT)
                        os.close(stack.pop())
                        names.pop()
                    continue
                if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
                    raise SyscallError(ENAMETOOLONG)
                try:
                    info = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if is_last and allow_missing_last:
                        return self._result(stack, names, name)
                    raise SyscallError(ENOENT) from None
                except OSError as error:
                    raise SyscallError(_errno_of(error)) from None
                if stat.S_ISLNK(info.st_mode) and (not is_last or follow_last):
                    links_followed += 1
                    if links_followed > MAXSYMLINKS:
                        raise SyscallError(ELOOP)
                    try:
                        target = os.readlink(name, dir_fd=stack[-1])
                    except OSError as error:
                        raise SyscallError(_errno_of(error)) from None
                    if target.startswith("/"):   # absolute link: back to the guest's root
                        while len(stack) > 1:
                            os.close(stack.pop())
                            names.pop()
                    pending.extend(reversed(target.split("/")))
                    continue
                if stat.S_ISDIR(info.st_mode) and not is_last:
                    self._descend(stack, names, name)
                    continue
                if not is_last:
                    raise SyscallError(ENOTDIR)
                trailing_slash = text.rstrip("/") != text
                if trailing_slash and not stat.S_ISDIR(info.st_mode):
                    raise SyscallError(ENOTDIR)
                return self._result(stack, names, name)
            return self._result(stack, names, ".")
        except BaseException:
            for fd in stack[1:]:
                os.close(fd)
            raise

    def _descend(self, stack: list[int], names: list[str], name: str) -> None:
        try:
            fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
        except OSError as error:
            raise SyscallError(ENOTDIR if error.errno == ELOOP else _errno_of(error)) from None
        stack.append(fd)
        names.append(name)

    def _result(self, stack: list[int], names: list[str], name: str) -> tuple[int, str, tuple[str, ...]]:
        parent = os.dup(stack[-1])
        for fd in stack[1:]:
            os.close(fd)
        final = tuple(names) if name == "." else (*names, name)
        return parent, name, final

    # ---- operations (``start``: the components the walk starts from) ------------------------

    def open(self, start: tuple[str, ...], path: bytes, flags: int, mode: int, umask: int = 0o022) -> HostFile:
        """openat(2) below the root: the opened HostFile (not yet in any fd table)."""
        if flags & O_TMPFILE == O_TMPFILE or flags & O_PATH:
            raise SyscallError(EINVAL if flags & O_TMPFILE == O_TMPFILE else EACCES)
        access = flags & O_ACCMODE
        if access == O_ACCMODE:
            raise SyscallError(EINVAL)
        parent, name, components = self.resolve(start, path, follow_last=not flags & O_NOFOLLOW,
                                                allow_missing_last=bool(flags & O_CREAT))
        try:
            host_flags = os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW | access
            if flags & O_CREAT:
                host_flags |= os.O_CREAT | (os.O_EXCL if flags & O_EXCL else 0)
            if flags & O_TRUNC:
                host_flags |= os.O_TRUNC
            if flags & O_APPEND:
                host_flags |= os.O_APPEND
            if flags & O_DIRECTORY:
                host_flags |= os.O_DIRECTORY
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            except OSError as error:
                raise SyscallError(_errno_of(error)) from None
            if info is not None:
                if stat.S_ISLNK(info.st_mode):
                    raise SyscallError(ELOOP)        # O_NOFOLLOW on a link (or it changed under us)
                if stat.S_ISFIFO(info.st_mode) and self.fifo_opener is not None \
                        and not (flags & O_CREAT and flags & O_EXCL):
                    return self.fifo_opener(info.st_dev, info.st_ino, flags)   # a kernel pipe (kernel/fifo.py)
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                    raise SyscallError(EACCES)       # FIFOs, sockets, devices: never opened on the host
                if flags & O_CREAT and flags & O_EXCL:
                    raise SyscallError(EEXIST)
                if stat.S_ISDIR(info.st_mode) and (access != O_RDONLY or flags & O_CREAT):
                    raise SyscallError(EISDIR)
                if flags & O_DIRECTORY and not stat.S_ISDIR(info.st_mode):
                    raise SyscallError(ENOTDIR)
            if info is None and not flags & O_CREAT:
                raise SyscallError(ENOENT)
            # A read-only mount (fs/namei.c may_open, open_last_lookups): writing, truncating
            # or creating is -EROFS; opening an existing file read-only with O_CREAT is fine.
            if not self.writable and (access != O_RDONLY or flags & O_TRUNC or info is None):
                raise SyscallError(EROFS)
            try:
                host_fd = os.open(name, host_flags, mode & 0o7777 & ~umask, dir_fd=parent)
            except OSError as error:
                raise SyscallError(_errno_of(error)) from None
            if info is None and self.new_file_owner is not None and os.geteuid() == 0:
                try:
                    os.fchown(host_fd, *self.new_file_owner)   # the creator's fsuid/fsgid, as Linux
                except OSError:
                    pass
        finally:
            os.close(parent)
        opened = os.fstat(host_fd)
        if not (stat.S_ISREG(opened.st_mode) or stat.S_ISDIR(opened.st_mode)):
            os.close(host_fd)
            raise SyscallError(EACCES)
        # x86-64 opens every file with O_LARGEFILE (force_o_largefile), and F_GETFL shows it.
        status = flags & (O_ACCMODE | O_APPEND | 0o4000 | 0o10000 | 0o40000 | 0o1000000) | O_LARGEFILE
        return HostFile(self, host_fd, status, stat.S_ISDIR(opened.st_mode), components)

    def stat_path(self, start: tuple[str, ...], path: bytes, follow: bool) -> bytes:
        parent, name, _ = self.resolve(start, path, follow_last=follow)
        try:
            return stat_bytes(os.stat(name, dir_fd=parent, follow_symlinks=False))
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)

    def directory(self, start: tuple[str, ...], path: bytes) -> tuple[str, ...]:
        """The components of the directory ``path`` names (chdir): -ENOTDIR for anything else."""
        parent, name, components = self.resolve(start, path, follow_last=True)
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)
        if not stat.S_ISDIR(info.st_mode):
            raise SyscallError(ENOTDIR)
        if not info.st_mode & 0o111:
            raise SyscallError(EACCES)
        return components

    def access(self, start: tuple[str, ...], path: bytes, mode: int, follow: bool = True) -> int:
        parent, name, _ = self.resolve(start, path, follow_last=follow)
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)
        if mode & W_OK and not self.writable:
            raise SyscallError(EROFS)
        permission = info.st_mode & 0o777
        wanted = ((0o444 if mode & R_OK else 0) | (0o222 if mode & W_OK else 0) | (0o111 if mode & X_OK else 0))
        if mode and not permission & wanted & 0o700:
            raise SyscallError(EACCES)
        return 0

    def readlink(self, start: tuple[str, ...], path: bytes) -> bytes:
        parent, name, _ = self.resolve(start, path, follow_last=False)
        try:
            if name == ".":
                raise SyscallError(EINVAL)
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                raise SyscallError(EINVAL)
            return os.fsencode(os.readlink(name, dir_fd=parent))
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)


def _dirent_type(mode: int) -> int:
    for test, kind in ((stat.S_ISREG, DT_REG), (stat.S_ISDIR, DT_DIR), (stat.S_ISLNK, DT_LNK),
                       (stat.S_ISFIFO, DT_FIFO), (stat.S_ISCHR, DT_CHR), (stat.S_ISBLK, DT_BLK),
                       (stat.S_ISSOCK, DT_SOCK)):
        if test(mode):
            return kind
    return DT_UNKNOWN


def stat_bytes(info: os.stat_result) -> bytes:
    """struct stat (arch/x86/include/uapi/asm/stat.h). The owner is the host file's, as
    `ls -l` shows it natively; st_dev is one constant for the whole mapped tree."""
    return struct.pack("<QQQIIIIQqqq6q3q", GUEST_DEV, info.st_ino, info.st_nlink, info.st_mode,
                       info.st_uid, info.st_gid, 0, 0, info.st_size, 4096, (info.st_size + 511) // 512,
                       int(info.st_atime), info.st_atime_ns % 1_000_000_000,
                       int(info.st_mtime), info.st_mtime_ns % 1_000_000_000,
                       int(info.st_ctime), info.st_ctime_ns % 1_000_000_000, 0, 0, 0)


__all__ = ["HostFile", "SandboxFs", "stat_bytes", "emit_dirents"]
