"""Restartable sequences (kernel/rseq.c semantics).

A task that was preempted, migrated or signalled gets, on its way back to
user mode, its critical section checked (rseq_ip_fixup): if it was stopped
with RIP inside ``[start_ip, start_ip + post_commit_offset)`` of the
``struct rseq_cs`` its ``rseq->rseq_cs`` points at, it resumes at
``abort_ip`` -- after checking that the 4 bytes before ``abort_ip`` hold the
signature the thread registered -- and ``rseq_cs`` is cleared. Then the
cpu_id fields are refreshed (rseq_update_cpu_node_id). A malformed
descriptor or signature mismatch is SIGSEGV, as Linux does.

The fields written on every return to user after a switch are cpu_id_start,
cpu_id, node_id (0: one NUMA node) and mm_cid. The concurrency id (mm_cid,
kernel/sched/sched.h mm_cid_get) is per mm and per CPU: a task switched in on
a CPU takes that CPU's id for its mm if it has one, else the lowest id no
other CPU holds for the mm. Ids held by CPUs no longer running the mm are
reclaimed once the lowest free one would reach min(nr CPUs, the mm's
users) -- Linux's periodic task_mm_cid_work compaction, done at the moment it
matters -- so ids stay compact and unique among the mm's running tasks.

sys_rseq (kernel/rseq.c SYSCALL_DEFINE4(rseq)) registers with Linux's
length rules: at least ORIG_RSEQ_SIZE (32); exactly 32 must be 32-byte
aligned, any other length must have the struct's alignment (AT_RSEQ_ALIGN,
32) and cover every field the kernel knows (AT_RSEQ_FEATURE_SIZE, 28).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EBUSY, EFAULT, EINVAL, EPERM, SyscallError
from emu_x86.kernel.mm.mm import TASK_SIZE
from emu_x86.kernel.task import Rseq

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

RSEQ_CS_OFFSET = 8            # struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, u32 flags, ...
RSEQ_NODE_ID_OFFSET = 20
RSEQ_MM_CID_OFFSET = 24
RSEQ_CS_BYTES = 32            # struct rseq_cs: u32 version, u32 flags, u64 start_ip, post_commit_offset, abort_ip
ORIG_RSEQ_SIZE = 32
RSEQ_FEATURE_SIZE = 28        # offsetof(struct rseq, end): AT_RSEQ_FEATURE_SIZE
RSEQ_ALIGN = 32               # __alignof__(struct rseq): AT_RSEQ_ALIGN
RSEQ_FLAG_UNREGISTER = 1
RSEQ_CPU_ID_UNINITIALIZED = 0xFFFFFFFF
SYS_rseq = 334


class RseqViolation(Exception):
    """The task's rseq area or descriptor is invalid: it gets SIGSEGV."""


def rseq_ip_fixup(kernel: Kernel, task: Task, registers: dict) -> None:
    """Move RIP to the abort handler if the task was stopped inside its critical section."""
    rseq = task.rseq
    mm = task.mm
    try:
        descriptor = mm.get_user_u64(rseq.address + RSEQ_CS_OFFSET)
        if descriptor == 0:
            return
        version, _flags, start_ip, post_commit_offset, abort_ip = struct.unpack(
            "<IIQQQ", mm.copy_from_user(descriptor, RSEQ_CS_BYTES))
    except SyscallError:
        raise RseqViolation("rseq area or rseq_cs unreadable") from None
    if version != 0 or start_ip + post_commit_offset >= 1 << 64 or \
            start_ip <= abort_ip < start_ip + post_commit_offset:
        raise RseqViolation("invalid rseq_cs")
    rip = registers["rip"]
    try:
        if not start_ip <= rip < start_ip + post_commit_offset:
            # Outside the section: only clear the stale descriptor (clear_rseq_cs).
            mm.copy_to_user(rseq.address + RSEQ_CS_OFFSET, bytes(8))
            return
        (signature,) = struct.unpack("<I", mm.copy_from_user(abort_ip - 4, 4))
        if signature != rseq.signature:
            raise RseqViolation("rseq abort signature mismatch")
        mm.copy_to_user(rseq.address + RSEQ_CS_OFFSET, bytes(8))
    except SyscallError:
        raise RseqViolation("rseq area unwritable") from None
    registers["rip"] = abort_ip
    kernel.counters["rseq_aborts"] += 1


def mm_cid_get(kernel: Kernel, task: Task, cpu: int) -> int:
    """The concurrency id of ``task``'s mm on ``cpu`` (mm_cid_get)."""
    mm = task.mm
    pcpu_cid = mm.pcpu_cid
    cid = pcpu_cid.get(cpu)
    if cid is not None:
        return cid
    limit = min(len(kernel.machine.vcpus), max(1, mm.mm_users))
    cid = _lowest_free(pcpu_cid)
    if cid >= limit:
        # Compact: CPUs not running this mm now give their ids back.
        for other in list(pcpu_cid):
            running = kernel.current[other] if other < len(kernel.current) else None
            if other != cpu and (running is None or running.mm is not mm):
                del pcpu_cid[other]
        cid = _lowest_free(pcpu_cid)
    pcpu_cid[cpu] = cid
    return cid


def _lowest_free(pcpu_cid: dict[int, int]) -> int:
    used = set(pcpu_cid.values())
    cid = 0
    while cid in used:
        cid += 1
    return cid


def mm_cid_exit(task: Task) -> None:
    """An exiting task gives back the id of the CPU it ran on (sched_mm_cid_exit_signals)."""
    if task.cpu is not None:
        task.mm.pcpu_cid.pop(task.cpu, None)


def rseq_update_cpu_id(task: Task, cpu: int, mm_cid: int) -> None:
    """rseq_update_cpu_node_id: cpu_id_start, cpu_id, node_id = 0, mm_cid (the
    32-byte original layout always holds them)."""
    rseq = task.rseq
    task.mm.copy_to_user(rseq.address, struct.pack("<II", cpu, cpu))
    task.mm.copy_to_user(rseq.address + RSEQ_NODE_ID_OFFSET, struct.pack("<II", 0, mm_cid))
    task.rseq_cpu_written = cpu
    task.mm_cid = mm_cid


def rseq_handle_notify_resume(kernel: Kernel, task: Task, registers: dict, cpu: int) -> bool:
    """On return to user after preemption/migration/signal: fix up the IP, refresh cpu ids.
    Returns False when the task must die with SIGSEGV."""
    try:
        if task.rseq_event_pending:
            task.rseq_event_pending = False
            rseq_ip_fixup(kernel, task, registers)
        mm_cid = mm_cid_get(kernel, task, cpu)
        if task.rseq_cpu_written != cpu or task.mm_cid != mm_cid:
            rseq_update_cpu_id(task, cpu, mm_cid)
    except (RseqViolation, SyscallError):
        return False
    return True


def sys_rseq(kernel, vcpu, task, address, length, flags, signature, *_):
    length &= 0xFFFFFFFF
    signature &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags & RSEQ_FLAG_UNREGISTER:
        if flags & ~RSEQ_FLAG_UNREGISTER:
            raise SyscallError(EINVAL)
        if task.rseq is None or task.rseq.address != address or task.rseq.length != length:
            raise SyscallError(EINVAL)
        if task.rseq.signature != signature:
            raise SyscallError(EPERM)
        # rseq_reset_rseq_cpu_node_id: cpu_id_start 0, cpu_id uninitialized, node_id and mm_cid 0.
        task.mm.copy_to_user(address, struct.pack("<II", 0, RSEQ_CPU_ID_UNINITIALIZED))
        task.mm.copy_to_user(address + RSEQ_NODE_ID_OFFSET, struct.pack("<II", 0, 0))
        task.rseq = None
        task.rseq_cpu_written = None
        task.mm_cid = None
        return 0
    if flags:
        raise SyscallError(EINVAL)
    if task.rseq is not None:
        if task.rseq.address != address or task.rseq.length != length:
            raise SyscallError(EINVAL)
        if task.rseq.signature != signature:
            raise SyscallError(EPERM)
        raise SyscallError(EBUSY)
    if length < ORIG_RSEQ_SIZE or (length == ORIG_RSEQ_SIZE and address % ORIG_RSEQ_SIZE) or \
            (length != ORIG_RSEQ_SIZE and (address % RSEQ_ALIGN or length < RSEQ_FEATURE_SIZE)):
        raise SyscallError(EINVAL)
    if address + length > TASK_SIZE:
        raise SyscallError(EFAULT)           # access_ok
    # A stale rseq_cs left by an earlier user of the area is cleared, not refused.
    if task.mm.get_user_u64(address + RSEQ_CS_OFFSET):
        task.mm.copy_to_user(address + RSEQ_CS_OFFSET, bytes(8))
    task.rseq = Rseq(address, length, signature)
    # rseq_set_notify_resume: the ids are written before the return to user;
    # an unwritable area is found then (a SIGSEGV at the next switch-in).
    try:
        rseq_update_cpu_id(task, vcpu.index, mm_cid_get(kernel, task, vcpu.index))
    except SyscallError:
        task.rseq_cpu_written = None
    return 0


SYSCALLS = {SYS_rseq: sys_rseq}
