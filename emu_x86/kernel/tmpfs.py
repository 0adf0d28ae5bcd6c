"""A small tmpfs mounted on /tmp, its file data in guest memory (mm/shmem.c).

Every machine has a writable /tmp so tmpfile(), mkstemp() and friends work:
with ``--fs-rw DIR`` whose tree has a ``tmp`` directory that directory is
/tmp (emu_x86/kernel/fs.py); otherwise -- no ``--fs``, a read-only ``--fs``, or no
``DIR/tmp`` -- /tmp is this in-memory file system, created empty (mode 1777,
root's, like a tmpfs mount) at boot and gone at the end of the run.

Inodes hold directories (name -> inode, in creation order, as tmpfs's
offset map lists them), regular files, symbolic links and FIFOs. A regular
file's bytes live in physical frames taken from the kernel's frame
allocator, one per 4 KiB page (shmem's page cache), allocated on first
write; holes read as zeroes; truncation frees the pages past the end. So a
guest that fills /tmp uses guest memory, and running out of frames is ENOSPC
as a full tmpfs is. Times come from the machine's clock (CLOCK_REALTIME),
inode numbers from a counter: runs stay deterministic.

The lookup folds ``.``/``..`` and follows symbolic links inside /tmp (an
absolute target must lead back under /tmp; one elsewhere is ENOENT here).
Permissions: new inodes belong to the guest's --uid/--gid; the sticky /tmp
lets anyone create but only the owner remove or rename an entry; write,
search and owner checks follow the mode bits as generic_permission does.
"""
from __future__ import annotations

import itertools
import stat
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import (
    EACCES, EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EPERM, EROFS, SyscallError,
)
from emu_x86.kernel.file import (
    O_ACCMODE, O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOFOLLOW, O_PATH, O_RDONLY, O_TMPFILE,
    O_TRUNC, File,
)
from emu_x86.kernel.mm.frames import OutOfMemory

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel

TMPFS_DEV = 0x2A                    # st_dev of /tmp (an anonymous block device number, as tmpfs has)
MAXSYMLINKS = 40
MAX_NAME_BYTES = 255
DT_FIFO, DT_DIR, DT_REG, DT_LNK, DT_SOCK = 1, 4, 8, 10, 12
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4


def make_tmp_mount(kernel: "Kernel") -> "Tmpfs | None":
    """The /tmp the machine gets: None when --fs-rw's tree has its own tmp directory."""
    fs = kernel.fs
    if fs is not None and fs.writable:
        import os
        try:
            if stat.S_ISDIR(os.stat("tmp", dir_fd=fs.root_fd, follow_symlinks=False).st_mode):
                return None
        except OSError:
            pass
    return Tmpfs(kernel)


class Inode:
    """One tmpfs inode: ``children`` for a directory, ``pages``/``size`` for a
    regular file, ``target`` for a symlink, ``pipe`` for a FIFO once opened."""

    def __init__(self, ino: int, mode: int, uid: int, gid: int, now_ns: int) -> None:
        self.ino, self.mode, self.uid, self.gid = ino, mode, uid, gid
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.atime_ns = self.mtime_ns = self.ctime_ns = now_ns
        self.children: dict[str, Inode] = {}
        self.parent: Inode | None = None
        self.pages: dict[int, int] = {}          # page index -> physical frame
        self.size = 0
        self.target = b""
        self.pipe = None
        self.open_count = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class Tmpfs:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self._inos = itertools.count(2)
        self.root = Inode(next(self._inos), stat.S_IFDIR | 0o1777, 0, 0, self._now())
        self.root.parent = self.root

    # ---- helpers -----------------------------------------------------------------------------

    def _now(self) -> int:
        from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
        kernel = self.kernel
        cpu = getattr(kernel, "this_cpu", None)
        cycles = cpu.cycles if cpu is not None else 0
        return cycles * 1_000_000_000 // kernel.tsc_hz + REALTIME_EPOCH_NS if hasattr(kernel, "tsc_hz") \
            else REALTIME_EPOCH_NS

    def _new(self, mode: int) -> Inode:
        return Inode(next(self._inos), mode, self.kernel.guest_uid, self.kernel.guest_gid, self._now())

    def _permission(self, inode: Inode, mask: int) -> None:
        """generic_permission with the guest's ids and no capabilities."""
        uid, gid = self.kernel.guest_uid, self.kernel.guest_gid
        if uid == inode.uid:
            granted = inode.mode >> 6
        elif gid == inode.gid:
            granted = inode.mode >> 3
        else:
            granted = inode.mode
        if mask & ~granted & 7:
            raise SyscallError(EACCES)

    def _owner(self, inode: Inode) -> bool:
        return inode.uid == self.kernel.guest_uid

    def _may_delete(self, directory: Inode, victim: Inode) -> None:
        """may_delete: write+search on the directory, and the sticky bit's owner rule."""
        self._permission(directory, MAY_WRITE | MAY_EXEC)
        if directory.mode & stat.S_ISVTX and not self._owner(victim) and not self._owner(directory):
            raise SyscallError(EPERM)

    def claims(self, start: tuple[str, ...], path: bytes) -> tuple[str, ...] | None:
        """The path's components below /tmp if /tmp (after folding) is where it leads."""
        from emu_x86.kernel.namei import fold
        components = fold(start, path)
        if components[:1] == ("tmp",):
            return components[1:] + (("/",) if path.endswith(b"/") else ())
        return None

    def _walk(self, components: tuple[str, ...], follow_last: bool, parent_only: bool = False):
        """(parent inode, last name, inode or None). ``parent_only``: the last may be missing."""
        pending = [c for c in components if c != "/"]
        trailing = bool(components) and components[-1] == "/"
        pending.reverse()
        here = self.root
        links = 0
        name = "."
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                here = here.parent
                continue
            if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
                from emu_x86.kernel.errno import ENAMETOOLONG
                raise SyscallError(ENAMETOOLONG)
            self._permission(here, MAY_EXEC)
            child = here.children.get(name)
            last = not pending
            if child is None:
                if last and parent_only:
                    return here, name, None
                raise SyscallError(ENOENT)
            if stat.S_ISLNK(child.mode) and (not last or follow_last or trailing):
                links += 1
                if links > MAXSYMLINKS:
                    raise SyscallError(ELOOP)
                target = child.target.decode("utf-8", "surrogateescape")
                if target.startswith("/"):
                    parts = [p for p in target.split("/") if p]
                    if parts[:1] != ["tmp"]:
                        raise SyscallError(ENOENT)  # outside /tmp: not followed from here
                    here = self.root
                    parts = parts[1:]
                else:
                    parts = target.split("/")
                pending.extend(reversed(parts))
                continue
            if last:
                if trailing and not child.is_dir:
                    raise SyscallError(ENOTDIR)
                return here, name, child
            if not child.is_dir:
                raise SyscallError(ENOTDIR)
            here = child
        return here.parent, ".", here

    def exists(self, components) -> bool:
        return self._walk(components, follow_last=False, parent_only=True)[2] is not None

    def lookup(self, components, follow: bool) -> Inode:
        return self._walk(components, follow_last=follow)[2]

    # ---- page store -----------------------------------------------------------------------

    def _read(self, inode: Inode, position: int, count: int) -> bytes:
        end = min(inode.size, position + count)
        memory = self.kernel.frames.memory
        out = bytearray()
        while position < end:
            index, offset = divmod(position, PAGE_SIZE)
            take = min(PAGE_SIZE - offset, end - position)
            frame = inode.pages.get(index)
            out += memory.read(frame + offset, take) if frame is not None else bytes(take)
            position += take
        inode.atime_ns = self._now()
        return bytes(out)

    def _write(self, inode: Inode, position: int, data: bytes) -> int:
        memory = self.kernel.frames.memory
        done = 0
        while done < len(data):
            index, offset = divmod(position + done, PAGE_SIZE)
            frame = inode.pages.get(index)
            if frame is None:
                try:
                    frame = self.kernel.frames.alloc()
                except OutOfMemory:
                    if done:
                        break
                    raise SyscallError(ENOSPC) from None
                inode.pages[index] = frame
            take = min(PAGE_SIZE - offset, len(data) - done)
            memory.write(frame + offset, data[done:done + take])
            done += take
        inode.size = max(inode.size, position + done)
        inode.mtime_ns = inode.ctime_ns = self._now()
        return done

    def _truncate(self, inode: Inode, length: int) -> None:
        keep_pages = (length + PAGE_SIZE - 1) // PAGE_SIZE
        for index in [i for i in inode.pages if i >= keep_pages]:
            self.kernel.frames.free(inode.pages.pop(index))
        if length % PAGE_SIZE and (length // PAGE_SIZE) in inode.pages:
            frame = inode.pages[length // PAGE_SIZE]
            self.kernel.frames.memory.zero(frame + length % PAGE_SIZE, PAGE_SIZE - length % PAGE_SIZE)
        inode.size = length
        inode.mtime_ns = inode.ctime_ns = self._now()

    def _drop_link(self, inode: Inode) -> None:
        inode.nlink -= 1
        inode.ctime_ns = self._now()
        self._maybe_free(inode)

    def _maybe_free(self, inode: Inode) -> None:
        if inode.nlink <= 0 and inode.open_count == 0 and inode.pages:
            for frame in inode.pages.values():
                self.kernel.frames.free(frame)
            inode.pages.clear()

    # ---- the calls ----------------------------------------------------------------------------

    def stat_bytes(self, inode: Inode) -> bytes:
        size = inode.size if stat.S_ISREG(inode.mode) else (len(inode.target) if stat.S_ISLNK(inode.mode)
                                                           else 40 + 20 * len(inode.children) if inode.is_dir else 0)
        blocks = len(inode.pages) * (PAGE_SIZE // 512)
        times = []
        for ns in (inode.atime_ns, inode.mtime_ns, inode.ctime_ns):
            times += [ns // 1_000_000_000, ns % 1_000_000_000]
        return struct.pack("<QQQIIIIQqqq6q3q", TMPFS_DEV, inode.ino, inode.nlink, inode.mode, inode.uid, inode.gid,
                           0, 0, size, PAGE_SIZE, blocks, *times, 0, 0, 0)

    def stat_path(self, components, follow: bool) -> bytes:
        return self.stat_bytes(self.lookup(components, follow))

    def access(self, components, mode: int, follow: bool = True) -> int:
        inode = self.lookup(components, follow)
        if mode:
            self._permission(inode, mode & 7)
        return 0

    def readlink(self, components) -> bytes:
        inode = self.lookup(components, follow=False)
        if not stat.S_ISLNK(inode.mode):
            raise SyscallError(EINVAL)
        return inode.target

    def directory(self, components) -> tuple[str, ...]:
        inode = self.lookup(components, follow=True)
        if not inode.is_dir:
            raise SyscallError(ENOTDIR)
        self._permission(inode, MAY_EXEC)
        return ("tmp", *self._path_of(inode))

    def _path_of(self, inode: Inode) -> tuple[str, ...]:
        names = []
        while inode is not self.root:
            parent = inode.parent
            names.append(next(name for name, child in parent.children.items() if child is inode))
            inode = parent
        return tuple(reversed(names))

    def open(self, components, flags: int, mode: int, umask: int) -> File:
        if flags & O_PATH:
            raise SyscallError(EACCES)
        access = flags & O_ACCMODE
        if access == O_ACCMODE:
            raise SyscallError(EINVAL)
        if flags & O_TMPFILE == O_TMPFILE:
            directory = self.lookup(components, follow=True)
            if not directory.is_dir:
                raise SyscallError(ENOTDIR)
            if access == O_RDONLY:
                raise SyscallError(EINVAL)
            self._permission(directory, MAY_WRITE | MAY_EXEC)
            inode = self._new(stat.S_IFREG | (mode & 0o7777 & ~umask))
            inode.nlink = 0                      # an unnamed file: gone at its last close
            return TmpfsFile(self, inode, access | (flags & O_APPEND) | O_LARGEFILE, ())
        parent, name, inode = self._walk(components, follow_last=not flags & O_NOFOLLOW,
                                          parent_only=bool(flags & O_CREAT))
        if inode is None:
            if components and components[-1] == "/":
                raise SyscallError(EISDIR)
            self._permission(parent, MAY_WRITE | MAY_EXEC)
            inode = self._new(stat.S_IFREG | (mode & 0o7777 & ~umask))
            self._link(parent, name, inode)
        else:
            if flags & O_CREAT and flags & O_EXCL:
                raise SyscallError(EEXIST)
            if stat.S_ISLNK(inode.mode):
                raise SyscallError(ELOOP)
            if inode.is_dir and (access != O_RDONLY or flags & O_CREAT):
                raise SyscallError(EISDIR)
            if flags & O_DIRECTORY and not inode.is_dir:
                raise SyscallError(ENOTDIR)
            wanted = (MAY_READ if access != 1 else 0) | (MAY_WRITE if access != O_RDONLY or flags & O_TRUNC else 0)
            self._permission(inode, wanted)
            if stat.S_ISFIFO(inode.mode):
                from emu_x86.kernel.fifo import fifo_open
                return fifo_open(inode, flags)
            if not (stat.S_ISREG(inode.mode) or inode.is_dir):
                raise SyscallError(EACCES)       # sockets: no connect through open(2)
            if flags & O_TRUNC and stat.S_ISREG(inode.mode) and access != O_RDONLY:
                self._truncate(inode, 0)
        status = access | (flags & (O_APPEND | 0o4000)) | O_LARGEFILE
        return TmpfsFile(self, inode, status, ("tmp", *self._path_of(inode)) if inode.is_dir else ())

    def _link(self, parent: Inode, name: str, inode: Inode) -> None:
        parent.children[name] = inode
        if inode.is_dir:
            inode.parent = parent
            parent.nlink += 1
        elif inode.parent is None:
            inode.parent = parent
        parent.mtime_ns = parent.ctime_ns = self._now()

    def _unlink_entry(self, parent: Inode, name: str) -> Inode:
        inode = parent.children.pop(name)
        if inode.is_dir:
            parent.nlink -= 1
        parent.mtime_ns = parent.ctime_ns = self._now()
        return inode

    def _create(self, components, mode: int) -> int:
        parent, name, existing = self._walk(components, follow_last=False, parent_only=True)
        if existing is not None or name == ".":
            raise SyscallError(EEXIST)
        self._permission(parent, MAY_WRITE | MAY_EXEC)
        self._link(parent, name, self._new(mode))
        return 0

    def mkdir(self, components, mode: int) -> int:
        return self._create(components, stat.S_IFDIR | mode)

    def mknod(self, components, mode: int) -> int:
        return self._create(components, mode)

    def symlink(self, target: bytes, components) -> int:
        parent, name, existing = self._walk(components, follow_last=False, parent_only=True)
        if existing is not None:
            raise SyscallError(EEXIST)
        self._permission(parent, MAY_WRITE | MAY_EXEC)
        inode = self._new(stat.S_IFLNK | 0o777)
        inode.target = target
        self._link(parent, name, inode)
        return 0

    def link(self, old: Inode, components) -> int:
        parent, name, existing = self._walk(components, follow_last=False, parent_only=True)
        if existing is not None:
            raise SyscallError(EEXIST)
        if old.is_dir:
            raise SyscallError(EPERM)
        self._permission(parent, MAY_WRITE | MAY_EXEC)
        if old.nlink == 0:
            raise SyscallError(ENOENT)           # an unlinked (or O_TMPFILE without LINKAT) inode
        old.nlink += 1
        old.ctime_ns = self._now()
        self._link(parent, name, old)
        return 0

    def rmdir(self, components) -> int:
        parent, name, inode = self._walk(tuple(c for c in components if c != "/"), follow_last=False)
        if inode is None:
            raise SyscallError(ENOENT)
        if not inode.is_dir:
            raise SyscallError(ENOTDIR)
        if inode is self.root:
            # /tmp itself is a dentry of the root's file system: read-only there
            # (EROFS), else a mount point (EBUSY).
            fs = self.kernel.fs
            raise SyscallError(EBUSY if fs is not None and fs.writable else EROFS)
        if inode.children:
            raise SyscallError(ENOTEMPTY)
        self._may_delete(parent, inode)
        self._unlink_entry(parent, name)
        inode.nlink = 0
        return 0

    def unlink(self, components, trailing_slash: bool) -> int:
        parent, name, inode = self._walk(tuple(c for c in components if c != "/"), follow_last=False)
        if inode.is_dir:
            raise SyscallError(EISDIR)
        if trailing_slash:
            raise SyscallError(ENOTDIR)
        self._may_delete(parent, inode)
        self._unlink_entry(parent, name)
        self._drop_link(inode)
        return 0

    def rename(self, old_components, new_components, flags: int, old_slash: bool, new_slash: bool) -> int:
        old_parent, old_name, inode = self._walk(tuple(c for c in old_components if c != "/"), follow_last=False)
        new_parent, new_name, target = self._walk(tuple(c for c in new_components if c != "/"), follow_last=False,
                                                  parent_only=True)
        if old_name == "." or new_name == ".":
            raise SyscallError(EBUSY)            # /tmp itself: a mount point
        if (old_slash or new_slash) and not inode.is_dir:
            raise SyscallError(ENOTDIR)
        if flags & RENAME_NOREPLACE and target is not None:
            raise SyscallError(EEXIST)
        if flags & RENAME_EXCHANGE and target is None:
            raise SyscallError(ENOENT)
        # A directory may not move below itself.
        walker = new_parent
        while inode.is_dir:
            if walker is inode:
                raise SyscallError(EINVAL)
            if walker is self.root:
                break
            walker = walker.parent
        self._may_delete(old_parent, inode)
        if target is not None:
            self._may_delete(new_parent, target)
        else:
            self._permission(new_parent, MAY_WRITE | MAY_EXEC)
        if target is inode:
            return 0
        if flags & RENAME_EXCHANGE:
            old_parent.children[old_name], new_parent.children[new_name] = target, inode
            for moved, parent in ((inode, new_parent), (target, old_parent)):
                if moved.is_dir:
                    moved.parent = parent
            return 0
        if target is not None:
            if inode.is_dir and not target.is_dir:
                raise SyscallError(ENOTDIR)
            if not inode.is_dir and target.is_dir:
                raise SyscallError(EISDIR)
            if target.is_dir and target.children:
                raise SyscallError(ENOTEMPTY)
            self._unlink_entry(new_parent, new_name)
            target.nlink = 0 if target.is_dir else target.nlink - 1
            self._maybe_free(target)
        self._unlink_entry(old_parent, old_name)
        self._link(new_parent, new_name, inode)
        inode.ctime_ns = self._now()
        if flags & RENAME_WHITEOUT:
            # A whiteout (a 0:0 character device) takes the old name (an
            # unprivileged caller may make one since Linux 5.8).
            self._link(old_parent, old_name, self._new(stat.S_IFCHR))
        return 0

    def truncate(self, inode: Inode, length: int, check_write: bool) -> int:
        if inode.is_dir:
            raise SyscallError(EISDIR)
        if not stat.S_ISREG(inode.mode):
            raise SyscallError(EINVAL)
        if check_write:
            self._permission(inode, MAY_WRITE)
        self._truncate(inode, length)
        return 0

    def chmod(self, inode: Inode, mode: int) -> int:
        if not self._owner(inode):
            raise SyscallError(EPERM)
        if mode & stat.S_ISGID and inode.gid != self.kernel.guest_gid:
            mode &= ~stat.S_ISGID
        inode.mode = stat.S_IFMT(inode.mode) | (mode & 0o7777)
        inode.ctime_ns = self._now()
        return 0

    def chown(self, inode: Inode, uid: int, gid: int) -> int:
        unchanged = 0xFFFFFFFF
        if uid != unchanged and not (self._owner(inode) and uid == inode.uid):
            raise SyscallError(EPERM)
        if gid != unchanged and not (self._owner(inode) and gid in (inode.gid, self.kernel.guest_gid)):
            raise SyscallError(EPERM)
        if gid != unchanged:
            inode.gid = gid
        inode.ctime_ns = self._now()
        return 0

    def utimes(self, inode: Inode, times, now_ns: int) -> int:
        from emu_x86.kernel.fs_attr import UTIME_NOW, UTIME_OMIT
        if not self._owner(inode):
            if times is not None:
                raise SyscallError(EPERM)
            self._permission(inode, MAY_WRITE)
        atime = now_ns if times is None or times[0] == UTIME_NOW else times[0]
        mtime = now_ns if times is None or times[1] == UTIME_NOW else times[1]
        if times is None or times[0] != UTIME_OMIT:
            inode.atime_ns = atime
        if times is None or times[1] != UTIME_OMIT:
            inode.mtime_ns = mtime
        inode.ctime_ns = now_ns
        return 0

    def entries(self, directory: Inode) -> list[tuple[int, int, bytes]]:
        listing = [(directory.ino, DT_DIR, b"."), (directory.parent.ino if directory is not self.root else 2,
                                                   DT_DIR, b"..")]
        for name, child in directory.children.items():
            kind = (DT_DIR if child.is_dir else DT_LNK if stat.S_ISLNK(child.mode) else DT_FIFO
                    if stat.S_ISFIFO(child.mode) else DT_SOCK if stat.S_ISSOCK(child.mode) else DT_REG)
            listing.append((child.ino, kind, name.encode("utf-8", "surrogateescape")))
        return listing


class TmpfsFile(File):
    """An open tmpfs file or directory (``tmpfs_inode`` lets fchmod/ftruncate reach it)."""
    seekable = True
    pollable = False              # shmem has no poll: epoll_ctl refuses it (EPERM)

    def __init__(self, tmpfs: Tmpfs, inode: Inode, flags: int, path: tuple[str, ...]) -> None:
        super().__init__(flags)
        self.tmpfs = tmpfs
        self.tmpfs_inode = inode
        self.is_directory = inode.is_dir
        self.regular = not inode.is_dir
        self.path = path
        self.offset = 0
        inode.open_count += 1

    def read_bytes(self, kernel, task, max_bytes):
        data = self.pread_bytes(kernel, max_bytes, self.offset)
        self.offset += len(data)
        return data

    def pread_bytes(self, kernel, max_bytes, position):
        if self.is_directory:
            raise SyscallError(EISDIR)
        return self.tmpfs._read(self.tmpfs_inode, position, max_bytes)

    def write_bytes(self, kernel, task, data):
        if self.flags & O_APPEND:
            self.offset = self.tmpfs_inode.size
        written = self.tmpfs._write(self.tmpfs_inode, self.offset, data)
        self.offset += written
        return written

    def pwrite_bytes(self, kernel, data, position):
        if self.flags & O_APPEND:
            position = self.tmpfs_inode.size      # Linux appends whatever pwrite's offset says
        return self.tmpfs._write(self.tmpfs_inode, position, data)

    def llseek(self, kernel, offset, whence):
        from emu_x86.kernel.fs import SEEK_CUR, SEEK_END, SEEK_SET
        if self.is_directory:
            if whence != SEEK_SET or offset < 0:
                raise SyscallError(EINVAL)
            self.offset = offset
            return offset
        base = {SEEK_SET: 0, SEEK_CUR: self.offset, SEEK_END: self.tmpfs_inode.size}.get(whence)
        if base is None:
            raise SyscallError(EINVAL)
        new = base + offset
        if new < 0:
            raise SyscallError(EINVAL)
        self.offset = new
        return new

    def getdents64(self, kernel, task, address, count):
        from emu_x86.kernel.fs import emit_dirents
        if not self.is_directory:
            from emu_x86.kernel.errno import ENOTDIR as not_dir
            raise SyscallError(not_dir)
        return emit_dirents(task, self, self.tmpfs.entries(self.tmpfs_inode), address, count)

    def stat(self, kernel):
        return self.tmpfs.stat_bytes(self.tmpfs_inode)

    def release(self, kernel):
        inode = self.tmpfs_inode
        inode.open_count -= 1
        self.tmpfs._maybe_free(inode)

    def describe(self) -> str:
        inode = self.tmpfs_inode
        if inode.nlink == 0:
            return f"/tmp/#{inode.ino} (deleted)"
        try:
            return "/" + "/".join(("tmp", *self.tmpfs._path_of(inode)))
        except StopIteration:             # a hard link's first parent no longer names it
            return "/tmp"


__all__ = ["Inode", "Tmpfs", "TmpfsFile", "make_tmp_mount"]
