"""procfs (fs/proc/): files generated from the kernel's own state, on /proc.

Mounted on /proc in every guest, with or without ``--fs`` (emu_x86/kernel/namei.py
sends every path under /proc here, as it sends /dev to devtmpfs). The tree:

- ``/proc/self`` and ``/proc/thread-self``: links to the caller's pid and
  ``pid/task/tid`` (proc_self_get_link, proc_thread_self_get_link);
- ``/proc/PID`` and ``/proc/PID/task/TID``: emu_x86/kernel/proc/base.py (the
  tgid_base_stuff/tid_base_stuff tables: status, stat, statm, maps, smaps,
  auxv, cmdline, environ, comm, exe, cwd, root, fd/, fdinfo/, limits, mounts);
- ``/proc/cpuinfo``, ``meminfo``, ``stat``, ``uptime``, ``loadavg``,
  ``version``, ``filesystems``, ``mounts`` (a link to self/mounts):
  emu_x86/kernel/proc/generic.py;
- ``/proc/sys``: the sysctl knobs guests read (emu_x86/kernel/proc/sysctl.py).

A lookup walks ``Node``s: each directory node answers ``child(name)`` and
lists ``entries()``; files are read through a seq_file-like ``ProcFile``
that generates its text when a read starts at offset 0, so a program that
rewinds sees the state of that moment, as Linux's seq_read does. Magic links
(exe, cwd, root, fd/N) open the object itself rather than a path.
"""
from __future__ import annotations

import stat as st
from dataclasses import dataclass, field
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EACCES, EINVAL, EISDIR, ELOOP, ENOENT, ENOTDIR, SyscallError
from emu_x86.kernel.file import O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_RDONLY, O_TRUNC, File, stat_struct

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

PROC_SUPER_MAGIC_DEV = 0x16          # st_dev of procfs (an anonymous block device, 0:22 on the host)
PROC_ROOT_INO = 1                     # PROC_ROOT_INO
MAXSYMLINKS = 40
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
R_OK, W_OK, X_OK = 4, 2, 1


class Redirect(Exception):
    """A magic link followed in the middle of a path: the lookup goes on from ``path``
    (an absolute guest path) in the whole namespace."""

    def __init__(self, path: bytes) -> None:
        super().__init__(path)
        self.path = path


@dataclass
class Node:
    """One dentry of procfs. ``kind``: "dir", "file" or "link". Directories
    provide ``child``/``entries``; files ``read`` (and ``write`` when writable);
    links ``target`` (readlink's text) and ``follow``: ("proc", components below
    /proc), ("path", absolute guest path) or ("file", an open File)."""
    kind: str
    key: tuple                      # identity for the inode number
    mode: int = 0o444
    uid: int = 0
    gid: int = 0
    child: Callable[[str], "Node | None"] | None = None
    entries: Callable[[], list[tuple[str, int]]] | None = None
    read: Callable[[], bytes] | None = None
    write: Callable[[bytes], int] | None = None
    target: Callable[[], bytes] | None = None
    follow: Callable[[], tuple] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def type_bits(self) -> int:
        return {"dir": st.S_IFDIR, "file": st.S_IFREG, "link": st.S_IFLNK}[self.kind]

    @property
    def dirent_type(self) -> int:
        return {"dir": DT_DIR, "file": DT_REG, "link": DT_LNK}[self.kind]


def inode_of(kernel: "Kernel", key: tuple) -> int:
    """A stable inode number per node: numbered in order of first lookup, so
    the same run numbers them the same way (Linux allocates them dynamically)."""
    table = kernel.__dict__.setdefault("proc_inodes", {})
    if key == ("root",):
        return PROC_ROOT_INO
    return table.setdefault(key, 0x1000 + len(table))


def node_stat(kernel: "Kernel", node: Node) -> bytes:
    nlink = 2 if node.kind == "dir" else 1
    return stat_struct(PROC_SUPER_MAGIC_DEV, inode_of(kernel, node.key), node.type_bits | node.mode, kernel,
                       nlink=nlink, blksize=1024, uid=node.uid, gid=node.gid,
                       size=len(node.target()) if node.kind == "link" else 0)


# ---- open files --------------------------------------------------------------------------

class ProcFile(File):
    """A procfs file open: seq_file semantics (text generated when a read starts at 0)."""
    seekable = True
    pollable = False

    def __init__(self, kernel: "Kernel", node: Node, flags: int, path: tuple[str, ...]) -> None:
        super().__init__(flags)
        self.kernel = kernel
        self.node = node
        self.path = path
        self.offset = 0
        self.text: bytes | None = None

    def _contents(self, position: int) -> bytes:
        if self.text is None or position == 0:
            self.text = self.node.read()
        return self.text

    def read_bytes(self, kernel, task, max_bytes):
        data = self.pread_bytes(kernel, max_bytes, self.offset)
        self.offset += len(data)
        return data

    def pread_bytes(self, kernel, max_bytes, position):
        text = self._contents(position)
        return text[position:position + max_bytes]

    def write_bytes(self, kernel, task, data):
        if self.node.write is None:
            raise SyscallError(EINVAL)
        return self.node.write(data)

    def pwrite_bytes(self, kernel, data, position):
        return self.write_bytes(kernel, None, data)

    def llseek(self, kernel, offset, whence):
        if whence == 0:
            new = offset
        elif whence == 1:
            new = self.offset + offset
        else:
            raise SyscallError(EINVAL)       # seq_lseek: SEEK_END is not supported
        if new < 0:
            raise SyscallError(EINVAL)
        self.offset = new
        return new

    def stat(self, kernel):
        return node_stat(kernel, self.node)

    def describe(self) -> str:
        return "/" + "/".join(self.path)


class ProcDirectory(File):
    """A procfs directory open: getdents64 over ``entries()`` (with . and ..)."""
    seekable = True
    pollable = False

    def __init__(self, kernel: "Kernel", node: Node, flags: int, path: tuple[str, ...]) -> None:
        super().__init__(flags)
        self.kernel = kernel
        self.node = node
        self.path = path
        self.is_directory = True
        self.offset = 0
        self.listing: list | None = None

    def read_bytes(self, kernel, task, max_bytes):
        raise SyscallError(EISDIR)

    def pread_bytes(self, kernel, max_bytes, position):
        raise SyscallError(EISDIR)

    def llseek(self, kernel, offset, whence):
        if whence != 0 or offset < 0:
            raise SyscallError(EINVAL)
        self.offset = offset
        if offset == 0:
            self.listing = None
        return offset

    def getdents64(self, kernel, task, address, count):
        from emu_x86.kernel.fs import emit_dirents
        if self.listing is None:
            me = inode_of(kernel, self.node.key)
            self.listing = [(me, DT_DIR, b"."), (me, DT_DIR, b"..")]
            for name, dirent_type in self.node.entries():
                child = self.node.child(name)
                ino = inode_of(kernel, child.key) if child is not None else 0
                self.listing.append((ino, dirent_type, name.encode()))
        return emit_dirents(task, self, self.listing, address, count)

    def stat(self, kernel):
        return node_stat(kernel, self.node)

    def describe(self) -> str:
        return "/" + "/".join(self.path)


# ---- the walk ----------------------------------------------------------------------------

def root_node(kernel: "Kernel", task: "Task") -> Node:
    from emu_x86.kernel.proc.generic import proc_root
    return proc_root(kernel, task)


def walk(kernel: "Kernel", task: "Task", components: tuple[str, ...], follow_last: bool,
         trailing_slash: bool = False) -> tuple[Node, tuple[str, ...]]:
    """Resolve ``components`` (the first is "proc"): the node and its canonical path.
    Raises Redirect when a magic link to the rest of the namespace is crossed."""
    pending = list(components[1:])
    path: list[str] = ["proc"]
    node = root_node(kernel, task)
    links = 0
    while pending:
        name = pending.pop(0)
        if node.kind != "dir":
            raise SyscallError(ENOTDIR)
        child = node.child(name)
        if child is None:
            raise SyscallError(ENOENT)
        last = not pending
        if child.kind == "link" and (not last or follow_last or trailing_slash):
            links += 1
            if links > MAXSYMLINKS:
                raise SyscallError(ELOOP)
            how, target = child.follow()
            if how == "proc":
                pending = list(target[1:]) + pending
                path = ["proc"]
                node = root_node(kernel, task)
                continue
            if how == "path":
                rest = b"/".join(part.encode("utf-8", "surrogateescape") for part in pending)
                raise Redirect(target.rstrip(b"/") + (b"/" + rest if rest else b"") + (b"/" if trailing_slash
                                                                                       else b""))
            if not last:
                raise SyscallError(ENOTDIR)     # a link to an open non-directory file
            return child, tuple(path + [name])
        node = child
        path.append(name)
    if trailing_slash and node.kind != "dir":
        raise SyscallError(ENOTDIR)
    return node, tuple(path)


def may_access(task: "Task", node: Node, mode: int) -> bool:
    """generic_permission for an unprivileged caller: the owner's bits when the
    node is the caller's, else the others' bits."""
    from emu_x86.kernel.cred import cred_of
    cred = cred_of(task)
    bits = (node.mode >> 6) & 7 if cred.fsuid == node.uid else (
        (node.mode >> 3) & 7 if cred.fsgid == node.gid else node.mode & 7)
    return mode & bits == mode


def proc_open(kernel: "Kernel", task: "Task", components: tuple[str, ...], flags: int,
              trailing_slash: bool) -> File:
    from emu_x86.kernel.file import O_NOFOLLOW
    node, path = walk(kernel, task, components, follow_last=not flags & O_NOFOLLOW, trailing_slash=trailing_slash)
    if node.kind == "link":
        if flags & O_NOFOLLOW:
            raise SyscallError(ELOOP)
        how, target = node.follow()
        if how == "file":
            return target
        raise SyscallError(ENOENT)      # pragma: no cover - walk resolved the others
    access = flags & O_ACCMODE
    if access == O_ACCMODE:
        raise SyscallError(EINVAL)
    if flags & O_CREAT and flags & O_EXCL:
        from emu_x86.kernel.errno import EEXIST
        raise SyscallError(EEXIST)
    wanted = (R_OK if access != 1 else 0) | (W_OK if access != O_RDONLY else 0)
    if node.kind == "dir":
        if access != O_RDONLY or flags & (O_CREAT | O_TRUNC):
            raise SyscallError(EISDIR)
        if not may_access(task, node, R_OK):
            raise SyscallError(EACCES)
        return ProcDirectory(kernel, node, O_RDONLY | O_LARGEFILE, path)
    if flags & O_DIRECTORY:
        raise SyscallError(ENOTDIR)
    if not may_access(task, node, wanted) or (wanted & W_OK and node.write is None):
        raise SyscallError(EACCES)
    return ProcFile(kernel, node, (flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_LARGEFILE, path)


def proc_stat(kernel: "Kernel", task: "Task", components: tuple[str, ...], follow: bool,
              trailing_slash: bool) -> bytes:
    node, _ = walk(kernel, task, components, follow_last=follow, trailing_slash=trailing_slash)
    if node.kind == "link" and follow:
        how, target = node.follow()
        if how == "file":
            return target.stat(kernel)
    return node_stat(kernel, node)


def proc_access(kernel: "Kernel", task: "Task", components: tuple[str, ...], mode: int, follow: bool,
                trailing_slash: bool) -> int:
    node, _ = walk(kernel, task, components, follow_last=follow, trailing_slash=trailing_slash)
    if node.kind == "link":
        return 0
    if mode & W_OK and node.kind == "file" and node.write is None:
        raise SyscallError(EACCES)
    if not may_access(task, node, mode):
        raise SyscallError(EACCES)
    return 0


def proc_readlink(kernel: "Kernel", task: "Task", components: tuple[str, ...], trailing_slash: bool) -> bytes:
    node, _ = walk(kernel, task, components, follow_last=False, trailing_slash=trailing_slash)
    if node.kind != "link":
        raise SyscallError(EINVAL)
    return node.target()


def proc_directory(kernel: "Kernel", task: "Task", components: tuple[str, ...]) -> tuple[str, ...]:
    node, path = walk(kernel, task, components, follow_last=True)
    if node.kind != "dir":
        raise SyscallError(ENOTDIR)
    return path


__all__ = ["Node", "ProcFile", "ProcDirectory", "Redirect", "proc_open", "proc_stat", "proc_access",
           "proc_readlink", "proc_directory", "walk"]
