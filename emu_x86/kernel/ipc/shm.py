"""System V shared memory (ipc/shm.c, ipc/util.c): shmget, shmat, shmdt, shmctl.

A segment (``ShmSegment``, struct shmid_kernel) owns its frames, allocated
on first touch and shared by every attach in every process: an attach is a
MAP_SHARED VMA whose ``backing`` is the segment (emu_x86/kernel/mm/mm.py asks it for
the frame of a faulting page and tells it when a VMA mapping it opens or
closes, which is how ``nattch`` counts -- fork and VMA splits included, as
shm_open/shm_close count them). IPC_RMID with attaches left marks the segment
SHM_DEST and makes its key private; the last detach (munmap, shmdt, exit)
then destroys it.

Ids are ipc_buildid's: index + 32768 * sequence. The guest runs as uid/gid
1000 without CAP_IPC_OWNER/CAP_SYS_ADMIN/CAP_IPC_LOCK, so the mode bits and
ownership are checked (ipcperms, ipcctl_obtain_check) as for such a user.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import (
    EACCES,
    EEXIST,
    EIDRM,
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EPERM,
    SyscallError,
)
from emu_x86.kernel.exec import GUEST_GID, GUEST_UID
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE
from emu_x86.kernel.mm.mm import MAP_SHARED, MMAP_MIN_ADDR, TASK_SIZE, page_align_up

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.mm.mm import VMA, MmStruct
    from emu_x86.kernel.task import Task

SYS_shmget, SYS_shmat, SYS_shmctl, SYS_shmdt = 29, 30, 31, 67

IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
SHM_LOCK, SHM_UNLOCK, SHM_STAT, SHM_INFO, SHM_STAT_ANY = 11, 12, 13, 14, 15
SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_DEST, SHM_LOCKED = 0o1000, 0o2000
S_IRWXUGO = 0o777
S_IRUGO, S_IWUGO, S_IXUGO = 0o444, 0o222, 0o111
SHMLBA = PAGE_SIZE
# Limits (include/uapi/linux/shm.h)
SHMMIN = 1
SHMMNI = 4096
SHMMAX = (1 << 64) - 1 - (1 << 24)
SHMALL = (1 << 64) - 1 - (1 << 24)       # pages
SHMSEG = SHMMNI
IPCMNI = 32768                            # SEQ_MULTIPLIER
SHMID64_DS_BYTES = 112
SHMINFO64_BYTES = 72
SHM_INFO_BYTES = 48


@dataclass(eq=False)
class ShmSegment:
    """struct shmid_kernel. ``frames``: page index -> physical frame (one
    reference held by the segment); ``nattch``: VMAs mapping it."""
    kernel: Kernel
    id: int
    key: int
    size_bytes: int
    mode: int
    uid: int = GUEST_UID
    gid: int = GUEST_GID
    cuid: int = GUEST_UID
    cgid: int = GUEST_GID
    seq: int = 0
    cpid: int = 0
    lpid: int = 0
    atime: int = 0
    dtime: int = 0
    ctime: int = 0
    nattch: int = 0
    frames: dict = field(default_factory=dict)
    destroyed: bool = False

    @property
    def pages(self) -> int:
        return (self.size_bytes + PAGE_SIZE - 1) // PAGE_SIZE

    def get_frame(self, index: int) -> int:
        """The frame holding page ``index`` (shmem_fault: zeroed on first use)."""
        frame = self.frames.get(index)
        if frame is None:
            frame = self.kernel.frames.alloc()       # OutOfMemory goes to the fault
            self.frames[index] = frame
        return frame

    def vma_open(self, mm: MmStruct, vma: VMA) -> None:
        self.nattch += 1

    def vma_close(self, mm: MmStruct, vma: VMA) -> None:
        """shm_close: one VMA fewer; the last one destroys a removed segment."""
        self.nattch -= 1
        ns = shm_namespace(self.kernel)
        self.dtime = ns.now_seconds()
        if ns.current_pid is not None:
            self.lpid = ns.current_pid
        if self.nattch == 0 and self.mode & SHM_DEST:
            ns.destroy(self)

    def pack(self) -> bytes:
        """struct shmid64_ds (struct ipc64_perm first)."""
        perm = struct.pack("<iIIIIIHH4xQQ", self.key, self.uid, self.gid, self.cuid, self.cgid, self.mode,
                           self.seq, 0, 0, 0)
        return perm + struct.pack("<QqqqiiQQQ", self.size_bytes, self.atime, self.dtime, self.ctime,
                                  self.cpid, self.lpid, self.nattch, 0, 0)


class ShmNamespace:
    """The IPC namespace's shm ids (struct ipc_ids)."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.segments: dict[int, ShmSegment] = {}     # index -> segment
        self.seq = 0
        self.last_index = -1
        self.total_pages = 0                           # shm_tot
        self.current_pid: int | None = None            # the caller, for shm_lpid

    def now_seconds(self) -> int:
        from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
        vcpu = self.kernel.this_cpu if self.kernel.this_cpu is not None else self.kernel.machine.vcpus[0]
        return (self.kernel.now_ns(vcpu) + REALTIME_EPOCH_NS) // 1_000_000_000

    def find_key(self, key: int) -> ShmSegment | None:
        for segment in self.segments.values():
            if segment.key == key:
                return segment
        return None

    def obtain(self, shmid: int) -> ShmSegment:
        """ipc_obtain_object_check: EINVAL for an unused index or a stale sequence."""
        segment = self.segments.get(shmid % IPCMNI)
        if segment is None or segment.id != shmid:
            raise SyscallError(EINVAL)
        return segment

    def add(self, segment: ShmSegment) -> None:
        """ipc_addid/ipc_idr_alloc: cyclic index; the sequence steps when it wraps."""
        if len(self.segments) >= SHMMNI:
            raise SyscallError(ENOSPC)
        index = next((i for i in range(self.last_index + 1, SHMMNI) if i not in self.segments), None)
        if index is None:
            index = next(i for i in range(SHMMNI) if i not in self.segments)
        if index <= self.last_index:
            self.seq += 1
        self.last_index = index
        segment.seq = self.seq
        segment.id = self.seq * IPCMNI + index
        self.segments[index] = segment

    def destroy(self, segment: ShmSegment) -> None:
        """shm_destroy: forget the id, give the frames back."""
        if segment.destroyed:
            return
        segment.destroyed = True
        self.segments.pop(segment.id % IPCMNI, None)
        self.total_pages -= segment.pages
        for frame in segment.frames.values():
            self.kernel.frames.free(frame)
        segment.frames.clear()


def shm_namespace(kernel: Kernel) -> ShmNamespace:
    ns = getattr(kernel, "ipc_shm", None)
    if ns is None:
        ns = kernel.ipc_shm = ShmNamespace(kernel)
    return ns


def ipcperms(segment: ShmSegment, requested: int) -> bool:
    """True when the caller (uid/gid 1000, no capabilities) may access the segment."""
    mode = segment.mode
    uid, gid = segment.kernel.guest_uid, segment.kernel.guest_gid
    if uid in (segment.cuid, segment.uid):
        granted = mode >> 6
    elif gid in (segment.cgid, segment.gid):
        granted = mode >> 3
    else:
        granted = mode
    requested_bits = (requested | requested >> 3 | requested >> 6) & 7
    return not requested_bits & ~granted & 7


def is_owner(segment: ShmSegment) -> bool:
    return segment.kernel.guest_uid in (segment.uid, segment.cuid)


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


# ---- shmget -----------------------------------------------------------------------

def newseg(kernel: Kernel, task: Task, key: int, size: int, shmflg: int) -> int:
    ns = shm_namespace(kernel)
    if size < SHMMIN or size > SHMMAX:
        raise SyscallError(EINVAL)
    pages = (size + PAGE_SIZE - 1) // PAGE_SIZE
    if ns.total_pages + pages > SHMALL:
        raise SyscallError(ENOSPC)
    segment = ShmSegment(kernel, 0, key, size, shmflg & S_IRWXUGO, cpid=task.pid, ctime=ns.now_seconds(),
                         uid=kernel.guest_uid, gid=kernel.guest_gid, cuid=kernel.guest_uid, cgid=kernel.guest_gid)
    ns.add(segment)
    ns.total_pages += pages
    return segment.id


def sys_shmget(kernel, vcpu, task, key, size, shmflg, *_):
    """shmget(2) (ipcget): IPC_PRIVATE always makes a segment; a key is looked
    up -- ENOENT without IPC_CREAT, EEXIST with IPC_CREAT|IPC_EXCL, EINVAL when
    the segment is smaller than asked (checked before EACCES)."""
    key = signed32(key)
    shmflg = signed32(shmflg)
    ns = shm_namespace(kernel)
    if key == IPC_PRIVATE:
        return newseg(kernel, task, key, size, shmflg)
    segment = ns.find_key(key)
    if segment is None:
        if not shmflg & IPC_CREAT:
            raise SyscallError(ENOENT)
        return newseg(kernel, task, key, size, shmflg)
    if shmflg & IPC_CREAT and shmflg & IPC_EXCL:
        raise SyscallError(EEXIST)
    if segment.size_bytes < size:
        raise SyscallError(EINVAL)
    if not ipcperms(segment, shmflg & S_IRWXUGO):
        raise SyscallError(EACCES)
    return segment.id


# ---- shmat / shmdt ------------------------------------------------------------------

def sys_shmat(kernel, vcpu, task, shmid, shmaddr, shmflg, *_):
    """shmat(2) (do_shmat): an address must be SHMLBA-aligned unless SHM_RND
    rounds it down; it must not overlap a mapping unless SHM_REMAP; returns
    the address."""
    shmid = signed32(shmid)
    shmflg = signed32(shmflg)
    ns = shm_namespace(kernel)
    if shmid < 0:
        raise SyscallError(EINVAL)
    fixed = False
    if shmaddr:
        if shmaddr & (SHMLBA - 1):
            if not shmflg & SHM_RND:
                raise SyscallError(EINVAL)
            shmaddr &= ~(SHMLBA - 1)
            if not shmaddr and shmflg & SHM_REMAP:
                raise SyscallError(EINVAL)
        fixed = True
    elif shmflg & SHM_REMAP:
        raise SyscallError(EINVAL)
    if shmflg & SHM_RDONLY:
        prot, acc_mode = PROT_READ, S_IRUGO
    else:
        prot, acc_mode = PROT_READ | PROT_WRITE, S_IRUGO | S_IWUGO
    if shmflg & SHM_EXEC:
        prot |= PROT_EXEC
        acc_mode |= S_IXUGO
    segment = ns.obtain(shmid)
    if not ipcperms(segment, acc_mode):
        raise SyscallError(EACCES)
    if segment.destroyed:
        raise SyscallError(EIDRM)
    mm = task.mm
    length = page_align_up(segment.size_bytes)
    if fixed:
        if not shmflg & SHM_REMAP and (shmaddr + length > TASK_SIZE or not mm.range_is_free(shmaddr, shmaddr + length)):
            raise SyscallError(EINVAL)
        if shmaddr < MMAP_MIN_ADDR:
            raise SyscallError(EPERM)
        if shmaddr + length > TASK_SIZE:
            raise SyscallError(ENOMEM)
        start = shmaddr
    else:
        start = mm.get_unmapped_area(length)
    ns.current_pid = task.pid
    try:
        mm.add_vma(start, start + length, prot, MAP_SHARED, f"/SYSV{segment.key & 0xFFFFFFFF:08x}",
                   backing=segment, pgoff=0)
    finally:
        ns.current_pid = None
    segment.atime = ns.now_seconds()
    segment.lpid = task.pid
    return start


def sys_shmdt(kernel, vcpu, task, shmaddr, *_):
    """shmdt(2): the attach starting at ``shmaddr`` (offset 0 of a segment) and
    any other piece of the same segment within its size go; EINVAL if none."""
    if shmaddr & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    mm = task.mm
    vma = mm.find_vma(shmaddr)
    if vma is None or vma.start != shmaddr or not isinstance(vma.backing, ShmSegment) or vma.pgoff != 0:
        raise SyscallError(EINVAL)
    segment = vma.backing
    end = shmaddr + page_align_up(segment.size_bytes)
    ns = shm_namespace(kernel)
    ns.current_pid = task.pid
    try:
        for piece in [v for v in mm.vmas if v.backing is segment and shmaddr <= v.start < end
                      and v.pgoff == (v.start - shmaddr) // PAGE_SIZE]:
            mm.unmap_range(piece.start, piece.end)
    finally:
        ns.current_pid = None
    segment.lpid = task.pid
    return 0


# ---- shmctl ------------------------------------------------------------------------

def sys_shmctl(kernel, vcpu, task, shmid, cmd, buf, *_):
    """shmctl(2) (ksys_shmctl with IPC_64)."""
    shmid = signed32(shmid)
    cmd = signed32(cmd)
    ns = shm_namespace(kernel)
    if cmd < 0 or shmid < 0:
        raise SyscallError(EINVAL)
    if cmd == IPC_INFO:
        info = struct.pack("<9Q", SHMMAX, SHMMIN, SHMMNI, SHMSEG, SHMALL, 0, 0, 0, 0)
        task.mm.copy_to_user(buf, info)
        return max(ns.segments, default=0)
    if cmd == SHM_INFO:
        rss = sum(len(segment.frames) for segment in ns.segments.values())
        info = struct.pack("<i4xQQQQQ", len(ns.segments), ns.total_pages, rss, 0, 0, 0)
        task.mm.copy_to_user(buf, info)
        return max(ns.segments, default=0)
    if cmd in (SHM_STAT, SHM_STAT_ANY, IPC_STAT):
        if cmd == IPC_STAT:
            segment = ns.obtain(shmid)
        else:
            segment = ns.segments.get(shmid)       # an index, not an id
            if segment is None:
                raise SyscallError(EINVAL)
        if cmd != SHM_STAT_ANY and not ipcperms(segment, S_IRUGO):
            raise SyscallError(EACCES)
        task.mm.copy_to_user(buf, segment.pack())
        return 0 if cmd == IPC_STAT else segment.id
    if cmd in (SHM_LOCK, SHM_UNLOCK):
        segment = ns.obtain(shmid)
        if not is_owner(segment):
            raise SyscallError(EPERM)
        if cmd == SHM_LOCK:
            from emu_x86.kernel.resource import RLIMIT_MEMLOCK, task_rlimit
            if not task_rlimit(task.process, RLIMIT_MEMLOCK, kernel):
                raise SyscallError(EPERM)
            segment.mode |= SHM_LOCKED
        else:
            segment.mode &= ~SHM_LOCKED
        return 0
    if cmd in (IPC_SET, IPC_RMID):
        new = task.mm.copy_from_user(buf, SHMID64_DS_BYTES) if cmd == IPC_SET else None
        segment = ns.obtain(shmid)
        if not is_owner(segment):
            raise SyscallError(EPERM)
        if cmd == IPC_SET:
            _key, uid, gid, _cuid, _cgid, mode = struct.unpack_from("<iIIIII", new)
            segment.uid, segment.gid = uid, gid
            segment.mode = (segment.mode & ~S_IRWXUGO) | (mode & S_IRWXUGO)
            segment.ctime = ns.now_seconds()
            return 0
        do_shm_rmid(ns, segment)
        return 0
    raise SyscallError(EINVAL)


def do_shm_rmid(ns: ShmNamespace, segment: ShmSegment) -> None:
    if segment.nattch:
        segment.mode |= SHM_DEST
        segment.key = IPC_PRIVATE               # ipc_set_key_private
    else:
        ns.destroy(segment)


SYSCALLS = {
    SYS_shmget: sys_shmget,
    SYS_shmat: sys_shmat,
    SYS_shmctl: sys_shmctl,
    SYS_shmdt: sys_shmdt,
}
