"""The guest's file system: a host directory mapped as the guest's root, or nothing.

Without ``--fs``/``--fs-rw`` a guest has fds 0-2 and no file access at all (the
syscalls in syscalls.py answer -ENOENT / -EBADF). With ``--fs DIR`` the
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

Per-process open-file tables live here (``FileTable``); fds 0-2 stay the
host streams handled in syscalls.py. ``file_syscalls`` wraps that module's
handlers: a call on fd >= 3 or on a path comes here, everything else goes
to the original handler. Network syscalls are refused (-EACCES), like a
sandbox with no network (``socket`` under a seccomp/LSM deny policy).
"""
from __future__ import annotations

import errno as host_errno
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernel.errno import (
    EACCES,
    EBADF,
    EEXIST,
    EINVAL,
    EISDIR,
    ELOOP,
    EMFILE,
    ENAMETOOLONG,
    ENOENT,
    ENOTDIR,
    ENOTTY,
    EROFS,
    SyscallError,
)

if TYPE_CHECKING:  # pragma: no cover
    from kernel.kernel import Kernel

MASK64 = (1 << 64) - 1
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAXSYMLINKS = 40                     # include/linux/namei.h
FIRST_FILE_FD = 3
MAX_OPEN_FILES = 1024                # RLIMIT_NOFILE soft limit the guest is told
IO_CHUNK_BYTES = 1 << 20             # host memory per read/write step, whatever the guest asks
MAX_RW_COUNT = 0x7FFFF000

# open(2) flags (include/uapi/asm-generic/fcntl.h)
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 0o3, 0o0, 0o1, 0o2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND = 0o100, 0o200, 0o400, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
O_PATH, O_TMPFILE = 0o10000000, 0o20000000 | 0o200000
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FD_CLOEXEC = 1
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
R_OK, W_OK, X_OK = 4, 2, 1
# linux_dirent64 d_type values (include/linux/fs_types.h)
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
GUEST_DEV = 0x801                    # st_dev the guest sees for every file of the mapped directory


@dataclass
class OpenFile:
    """One open file description. ``host_fd`` is owned here (closed with the last guest fd)."""
    host_fd: int
    flags: int                       # the guest's open flags (access mode, O_APPEND, ...)
    is_directory: bool
    path: tuple[str, ...]            # guest path components from the root, for openat(dirfd, ...)
    offset: int = 0
    directory_entries: list | None = None   # getdents64 snapshot, sorted by name
    references: int = 1


@dataclass
class FileTable:
    """A process's fds >= 3 (fds 0-2 are the host streams). ``cloexec`` is per fd, as in Linux."""
    files: dict[int, OpenFile] = field(default_factory=dict)
    cloexec: set[int] = field(default_factory=set)

    def install(self, handle: OpenFile, lowest: int = FIRST_FILE_FD) -> int:
        fd = max(lowest, FIRST_FILE_FD)
        while fd in self.files:
            fd += 1
        if fd >= MAX_OPEN_FILES:
            raise SyscallError(EMFILE)
        self.files[fd] = handle
        return fd

    def get(self, fd: int) -> OpenFile:
        handle = self.files.get(fd)
        if handle is None:
            raise SyscallError(EBADF)
        return handle


def _errno_of(error: OSError) -> int:
    """Host errno -> guest errno (the same numbers on x86-64 Linux), never leaking EXDEV/host oddities."""
    return error.errno if error.errno in _PASSED_ERRNOS else EACCES


_PASSED_ERRNOS = {ENOENT, ENOTDIR, EISDIR, EEXIST, EACCES, ELOOP, ENAMETOOLONG, EINVAL, host_errno.ENOSPC,
                  host_errno.EFBIG, host_errno.ENOTEMPTY, host_errno.EPERM, host_errno.EIO}


class SandboxFs:
    """A host directory as the guest's root. Fields: ``root_fd`` (an O_PATH fd of DIR),
    ``writable``, ``tables`` (pid -> FileTable, shared by a process's threads)."""

    def __init__(self, root: str, writable: bool = False):
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.writable = writable
        self.tables: dict[int, FileTable] = {}

    def table(self, task) -> FileTable:
        return self.tables.setdefault(task.pid, FileTable())

    def close_all(self) -> None:
        for table in self.tables.values():
            for handle in table.files.values():
                handle.references = 0
                try:
                    os.close(handle.host_fd)
                except OSError:
                    pass
            table.files.clear()
        self.tables.clear()
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

    def start_directory(self, task, dirfd: int, path: bytes) -> tuple[str, ...]:
        """Where ``path`` starts: the root for an absolute path or AT_FDCWD (the guest's cwd
        is ``/``), else the open directory ``dirfd``."""
        if path.startswith(b"/") or dirfd == AT_FDCWD:
            return ()
        if 0 <= dirfd < FIRST_FILE_FD:
            raise SyscallError(ENOTDIR)
        handle = self.table(task).get(dirfd)
        if not handle.is_directory:
            raise SyscallError(ENOTDIR)
        return handle.path

    # ---- operations --------------------------------------------------------------------------

    def open(self, task, dirfd: int, path: bytes, flags: int, mode: int) -> int:
        """openat(2) below the root; returns the new guest fd."""
        if flags & O_TMPFILE == O_TMPFILE or flags & O_PATH:
            raise SyscallError(EINVAL if flags & O_TMPFILE == O_TMPFILE else EACCES)
        access = flags & O_ACCMODE
        if access == O_ACCMODE:
            raise SyscallError(EINVAL)
        parent, name, components = self.resolve(self.start_directory(task, dirfd, path), path,
                                                follow_last=not flags & O_NOFOLLOW,
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
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                    raise SyscallError(EACCES)       # FIFOs, sockets, devices: never opened on the host
                if stat.S_ISDIR(info.st_mode) and access != O_RDONLY:
                    raise SyscallError(EISDIR)
                if flags & O_CREAT and flags & O_EXCL:
                    raise SyscallError(EEXIST)
            if info is None and not flags & O_CREAT:
                raise SyscallError(ENOENT)
            # A read-only mount (fs/namei.c may_open, open_last_lookups): writing, truncating
            # or creating is -EROFS; opening an existing file read-only with O_CREAT is fine.
            if not self.writable and (access != O_RDONLY or flags & O_TRUNC or info is None):
                raise SyscallError(EROFS)
            try:
                host_fd = os.open(name, host_flags, mode & 0o777 & ~0o022, dir_fd=parent)
            except OSError as error:
                raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)
        opened = os.fstat(host_fd)
        if not (stat.S_ISREG(opened.st_mode) or stat.S_ISDIR(opened.st_mode)):
            os.close(host_fd)
            raise SyscallError(EACCES)
        handle = OpenFile(host_fd, flags & (O_ACCMODE | O_APPEND), stat.S_ISDIR(opened.st_mode), components)
        table = self.table(task)
        try:
            fd = table.install(handle)
        except SyscallError:
            os.close(host_fd)
            raise
        if flags & O_CLOEXEC:
            table.cloexec.add(fd)
        return fd

    def close(self, task, fd: int) -> int:
        table = self.table(task)
        handle = table.files.pop(fd, None)
        if handle is None:
            raise SyscallError(EBADF)
        table.cloexec.discard(fd)
        handle.references -= 1
        if handle.references == 0:
            os.close(handle.host_fd)
        return 0

    def read(self, task, fd: int, buf: int, count: int, position: int | None = None) -> int:
        """read/pread64: copied to the guest in bounded chunks, so a huge count costs no host memory."""
        handle = self.table(task).get(fd)
        if handle.flags & O_ACCMODE == O_WRONLY:
            raise SyscallError(EBADF)
        if handle.is_directory:
            raise SyscallError(EISDIR)
        count = min(count, MAX_RW_COUNT)
        offset = handle.offset if position is None else position
        done = 0
        while done < count:
            try:
                data = os.pread(handle.host_fd, min(IO_CHUNK_BYTES, count - done), offset + done)
            except OSError as error:
                raise SyscallError(_errno_of(error)) from None
            if not data:
                break
            try:
                task.mm.copy_to_user(buf + done, data)
            except SyscallError:
                if done == 0:
                    raise
                break
            done += len(data)
        if position is None:
            handle.offset += done
        return done

    def write(self, task, fd: int, buf: int, count: int, position: int | None = None) -> int:
        handle = self.table(task).get(fd)
        if handle.flags & O_ACCMODE == O_RDONLY:
            raise SyscallError(EBADF)
        count = min(count, MAX_RW_COUNT)
        done = 0
        while done < count:
            try:
                data = task.mm.copy_from_user(buf + done, min(IO_CHUNK_BYTES, count - done))
            except SyscallError:
                if done == 0:
                    raise
                break
            try:
                if position is not None:
                    written = os.pwrite(handle.host_fd, data, position + done)
                elif handle.flags & O_APPEND:
                    written = os.write(handle.host_fd, data)
                else:
                    written = os.pwrite(handle.host_fd, data, handle.offset + done)
            except OSError as error:
                if done == 0:
                    raise SyscallError(_errno_of(error)) from None
                break
            done += written
            if written < len(data):
                break
        if position is None:
            handle.offset = os.lseek(handle.host_fd, 0, os.SEEK_CUR) if handle.flags & O_APPEND \
                else handle.offset + done
        return done

    def lseek(self, task, fd: int, offset: int, whence: int) -> int:
        handle = self.table(task).get(fd)
        offset = offset - (1 << 64) if offset & (1 << 63) else offset
        if handle.is_directory:
            if whence != SEEK_SET or offset < 0:
                raise SyscallError(EINVAL)
            handle.offset = offset
            return offset
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = handle.offset + offset
        elif whence == SEEK_END:
            new = os.fstat(handle.host_fd).st_size + offset
        else:
            raise SyscallError(EINVAL)
        if new < 0 or new > (1 << 63) - 1:
            raise SyscallError(EINVAL)
        handle.offset = new
        return new

    def getdents64(self, task, fd: int, dirp: int, count: int) -> int:
        """linux_dirent64 records (ino, off, reclen, type, name) from a sorted snapshot, so the
        order is the same on every host and run; d_off is the index of the next entry."""
        handle = self.table(task).get(fd)
        if not handle.is_directory:
            raise SyscallError(ENOTDIR)
        if handle.directory_entries is None:
            handle.directory_entries = self._directory_entries(handle)
        out = bytearray()
        index = handle.offset
        while index < len(handle.directory_entries):
            ino, kind, name = handle.directory_entries[index]
            record_length = (19 + len(name) + 1 + 7) & ~7
            if len(out) + record_length > min(count, MAX_RW_COUNT):
                break
            record = struct.pack("<QqHB", ino, index + 1, record_length, kind) + name + b"\0"
            out += record.ljust(record_length, b"\0")
            index += 1
        if not out and index < len(handle.directory_entries):
            raise SyscallError(EINVAL)      # the buffer cannot hold even one record
        if out:
            task.mm.copy_to_user(dirp, bytes(out))
        handle.offset = index
        return len(out)

    def _directory_entries(self, handle: OpenFile) -> list[tuple[int, int, bytes]]:
        entries = []
        this = os.fstat(handle.host_fd).st_ino
        entries.append((this, DT_DIR, b"."))
        entries.append((this if not handle.path else 1, DT_DIR, b".."))
        try:
            with os.scandir(handle.host_fd) as scan:
                listed = []
                for entry in scan:
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError:
                        mode = 0
                    listed.append((entry.inode(), _dirent_type(mode), os.fsencode(entry.name)))
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        return entries + sorted(listed, key=lambda item: item[2])

    def stat_path(self, task, dirfd: int, path: bytes, follow: bool) -> bytes:
        parent, name, _ = self.resolve(self.start_directory(task, dirfd, path), path, follow_last=follow)
        try:
            return stat_bytes(os.stat(name, dir_fd=parent, follow_symlinks=False))
        except OSError as error:
            raise SyscallError(_errno_of(error)) from None
        finally:
            os.close(parent)

    def stat_fd(self, task, fd: int) -> bytes:
        return stat_bytes(os.fstat(self.table(task).get(fd).host_fd))

    def access(self, task, dirfd: int, path: bytes, mode: int) -> int:
        if mode & ~(R_OK | W_OK | X_OK):
            raise SyscallError(EINVAL)
        parent, name, _ = self.resolve(self.start_directory(task, dirfd, path), path, follow_last=True)
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

    def readlink(self, task, dirfd: int, path: bytes) -> bytes:
        parent, name, _ = self.resolve(self.start_directory(task, dirfd, path), path, follow_last=False)
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

    def fcntl(self, task, fd: int, command: int, argument: int) -> int:
        table = self.table(task)
        handle = table.get(fd)
        if command in (F_DUPFD, F_DUPFD_CLOEXEC):
            if argument >= MAX_OPEN_FILES:
                raise SyscallError(EINVAL)
            handle.references += 1
            try:
                new_fd = table.install(handle, lowest=argument)
            except SyscallError:
                handle.references -= 1
                raise
            if command == F_DUPFD_CLOEXEC:
                table.cloexec.add(new_fd)
            return new_fd
        if command == F_GETFD:
            return FD_CLOEXEC if fd in table.cloexec else 0
        if command == F_SETFD:
            (table.cloexec.add if argument & FD_CLOEXEC else table.cloexec.discard)(fd)
            return 0
        if command == F_GETFL:
            return handle.flags
        if command == F_SETFL:
            handle.flags = (handle.flags & ~O_APPEND) | (argument & O_APPEND)
            return 0
        raise SyscallError(EINVAL)


def _dirent_type(mode: int) -> int:
    for test, kind in ((stat.S_ISREG, DT_REG), (stat.S_ISDIR, DT_DIR), (stat.S_ISLNK, DT_LNK),
                       (stat.S_ISFIFO, DT_FIFO), (stat.S_ISCHR, DT_CHR), (stat.S_ISBLK, DT_BLK),
                       (stat.S_ISSOCK, DT_SOCK)):
        if test(mode):
            return kind
    return DT_UNKNOWN


def stat_bytes(info: os.stat_result) -> bytes:
    """struct stat (arch/x86/include/uapi/asm/stat.h). Owner is the guest's uid/gid, st_dev
    one constant: the guest learns the file's contents and shape, not the host's accounts."""
    from kernel.exec import GUEST_GID, GUEST_UID
    return struct.pack("<QQQIIIIQqqq6q3q", GUEST_DEV, info.st_ino, info.st_nlink, info.st_mode,
                       GUEST_UID, GUEST_GID, 0, 0, info.st_size, 4096, (info.st_size + 511) // 512,
                       int(info.st_atime), info.st_atime_ns % 1_000_000_000,
                       int(info.st_mtime), info.st_mtime_ns % 1_000_000_000,
                       int(info.st_ctime), info.st_ctime_ns % 1_000_000_000, 0, 0, 0)


# ---- the syscall layer -------------------------------------------------------------------------

SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat = 0, 1, 2, 3, 4, 5, 6
SYS_lseek, SYS_pread64, SYS_pwrite64, SYS_access, SYS_fcntl, SYS_readlink = 8, 17, 18, 21, 72, 89
SYS_getdents64, SYS_openat, SYS_newfstatat, SYS_readlinkat, SYS_faccessat, SYS_faccessat2 = \
    217, 257, 262, 267, 269, 439
SYS_ioctl = 16
# Network (syscall_64.tbl): socket, socketpair refused; the rest have no socket to act on.
SYS_socket, SYS_socketpair = 41, 53
NETWORK_FD_SYSCALLS = (42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 288, 299, 307)


def _fd(value: int) -> int:
    """An ``unsigned int fd`` argument as the guest's int (so 0xFFFFFFFF is -1, -EBADF)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def _path(task, address: int) -> bytes:
    name = task.mm.strncpy_from_user(address, MAX_PATH_BYTES)
    if len(name) >= MAX_PATH_BYTES:
        raise SyscallError(ENAMETOOLONG)
    return name


def file_syscalls(table: dict[int, Callable]) -> dict[int, Callable]:
    """Handlers that send file calls to the kernel's SandboxFs (``kernel.fs``) and the rest --
    fds 0-2, or any call when no directory is mapped -- to the original ``table`` entries."""
    original = dict(table)

    def on_fd(number: int, operation: Callable) -> Callable:
        def handler(k: Kernel, vcpu, task, fd, *args):
            if k.fs is None or 0 <= _fd(fd) < FIRST_FILE_FD:
                return original[number](k, vcpu, task, fd, *args)
            return operation(k.fs, task, _fd(fd), *args)
        # Keep the syscall's own name (sys_write...): tools name calls by it.
        handler.__name__ = original[number].__name__ if number in original else f"sys_{operation.__name__}"
        return handler

    def on_path(number: int, operation: Callable) -> Callable:
        def handler(k: Kernel, vcpu, task, *args):
            if k.fs is None:
                return original[number](k, vcpu, task, *args)
            return operation(k, vcpu, task, *args)
        # Keep the syscall's own name (sys_write...): tools name calls by it.
        handler.__name__ = original[number].__name__ if number in original else f"sys_{operation.__name__}"
        return handler

    def read(fs, task, fd, buf, count, *_):
        return fs.read(task, fd, buf, count)

    def write(fs, task, fd, buf, count, *_):
        return fs.write(task, fd, buf, count)

    def pread64(k, vcpu, task, fd, buf, count, offset, *_):
        if 0 <= _fd(fd) < FIRST_FILE_FD:
            raise SyscallError(host_errno.ESPIPE)  # a terminal or pipe has no position
        if k.fs is None:
            raise SyscallError(EBADF)
        if offset & (1 << 63):
            raise SyscallError(EINVAL)
        return k.fs.read(task, _fd(fd), buf, count, position=offset)

    def pwrite64(k, vcpu, task, fd, buf, count, offset, *_):
        if 0 <= _fd(fd) < FIRST_FILE_FD:
            raise SyscallError(host_errno.ESPIPE)
        if k.fs is None:
            raise SyscallError(EBADF)
        if offset & (1 << 63):
            raise SyscallError(EINVAL)
        return k.fs.write(task, _fd(fd), buf, count, position=offset)

    def close(fs, task, fd, *_):
        return fs.close(task, fd)

    def lseek(fs, task, fd, offset, whence, *_):
        return fs.lseek(task, fd, offset, whence & 0xFFFFFFFF)

    def fstat(fs, task, fd, statbuf, *_):
        task.mm.copy_to_user(statbuf, fs.stat_fd(task, fd))
        return 0

    def fcntl(fs, task, fd, command, argument, *_):
        return fs.fcntl(task, fd, command & 0xFFFFFFFF, argument & 0xFFFFFFFF)

    def ioctl(fs, task, fd, *_):
        fs.table(task).get(fd)
        raise SyscallError(ENOTTY)

    def getdents64(k, vcpu, task, fd, dirp, count, *_):
        if 0 <= _fd(fd) < FIRST_FILE_FD:
            raise SyscallError(ENOTDIR)            # the host streams are not directories
        if k.fs is None:
            raise SyscallError(EBADF)
        return k.fs.getdents64(task, _fd(fd), dirp, count & 0xFFFFFFFF)

    def openat(k, vcpu, task, dirfd, path, flags, mode, *_):
        return k.fs.open(task, _fd(dirfd), _path(task, path), flags & 0xFFFFFFFF, mode & 0xFFFFFFFF)

    def open_(k, vcpu, task, path, flags, mode, *_):
        return k.fs.open(task, AT_FDCWD, _path(task, path), flags & 0xFFFFFFFF, mode & 0xFFFFFFFF)

    def newfstatat(k, vcpu, task, dirfd, path, statbuf, flags, *_):
        name = _path(task, path)
        flags &= 0xFFFFFFFF
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800):   # 0x800: AT_NO_AUTOMOUNT
            raise SyscallError(EINVAL)
        if not name and flags & AT_EMPTY_PATH:
            fd = _fd(dirfd)
            if 0 <= fd < FIRST_FILE_FD:
                return original[SYS_fstat](k, vcpu, task, fd, statbuf)
            data = k.fs.stat_fd(task, fd)
        else:
            data = k.fs.stat_path(task, _fd(dirfd), name, follow=not flags & AT_SYMLINK_NOFOLLOW)
        task.mm.copy_to_user(statbuf, data)
        return 0

    def stat_(k, vcpu, task, path, statbuf, *_):
        task.mm.copy_to_user(statbuf, k.fs.stat_path(task, AT_FDCWD, _path(task, path), follow=True))
        return 0

    def lstat(k, vcpu, task, path, statbuf, *_):
        task.mm.copy_to_user(statbuf, k.fs.stat_path(task, AT_FDCWD, _path(task, path), follow=False))
        return 0

    def access(k, vcpu, task, path, mode, *_):
        return k.fs.access(task, AT_FDCWD, _path(task, path), mode & 0xFFFFFFFF)

    def faccessat(k, vcpu, task, dirfd, path, mode, *_):
        return k.fs.access(task, _fd(dirfd), _path(task, path), mode & 0xFFFFFFFF)

    def readlinkat(k, vcpu, task, dirfd, path, buf, size, *_):
        name = _path(task, path)
        if name == b"/proc/self/exe":       # the emulator's own answer (syscalls.sys_readlink)
            return original[SYS_readlink](k, vcpu, task, path, buf, size)
        size = size & 0xFFFFFFFF
        if size == 0 or size & (1 << 31):
            raise SyscallError(EINVAL)
        target = k.fs.readlink(task, _fd(dirfd), name)[:size]
        task.mm.copy_to_user(buf, target)
        return len(target)

    def readlink(k, vcpu, task, path, buf, size, *_):
        return readlinkat(k, vcpu, task, AT_FDCWD & MASK64, path, buf, size)

    def refuse_socket(k, vcpu, task, *_):
        raise SyscallError(EACCES)

    def no_socket_fd(k, vcpu, task, fd, *_):
        fd = _fd(fd)
        if 0 <= fd < FIRST_FILE_FD or (k.fs is not None and fd in k.fs.table(task).files):
            raise SyscallError(88)   # ENOTSOCK
        raise SyscallError(EBADF)

    handlers = {
        SYS_read: on_fd(SYS_read, read),
        SYS_write: on_fd(SYS_write, write),
        SYS_close: on_fd(SYS_close, close),
        SYS_lseek: on_fd(SYS_lseek, lseek),
        SYS_fstat: on_fd(SYS_fstat, fstat),
        SYS_fcntl: on_fd(SYS_fcntl, fcntl),
        SYS_ioctl: on_fd(SYS_ioctl, ioctl),
        SYS_pread64: pread64,
        SYS_pwrite64: pwrite64,
        SYS_getdents64: getdents64,
        SYS_open: on_path(SYS_open, open_),
        SYS_openat: on_path(SYS_openat, openat),
        SYS_stat: on_path(SYS_stat, stat_),
        SYS_lstat: on_path(SYS_lstat, lstat),
        SYS_newfstatat: on_path(SYS_newfstatat, newfstatat),
        SYS_access: on_path(SYS_access, access),
        SYS_faccessat: on_path(SYS_faccessat, faccessat),
        SYS_faccessat2: on_path(SYS_faccessat2, faccessat),
        SYS_readlink: on_path(SYS_readlink, readlink),
        SYS_readlinkat: on_path(SYS_readlinkat, readlinkat),
        SYS_socket: refuse_socket,
        SYS_socketpair: refuse_socket,
        **{number: no_socket_fd for number in NETWORK_FD_SYSCALLS},
    }
    return handlers


__all__ = ["FileTable", "OpenFile", "SandboxFs", "file_syscalls"]
