"""Restartable sequences (kernel/rseq.c semantics).

A task that was preempted, migrated or signalled gets, on its way back to
user mode, its critical section checked (rseq_ip_fixup): if it was stopped
with RIP inside ``[start_ip, start_ip + post_commit_offset)`` of the
``struct rseq_cs`` its ``rseq->rseq_cs`` points at, it resumes at
``abort_ip`` -- after checking that the 4 bytes before ``abort_ip`` hold the
signature the thread registered -- and ``rseq_cs`` is cleared. Then the
cpu_id fields are refreshed (rseq_update_cpu_node_id). A malformed
descriptor or signature mismatch is SIGSEGV, as Linux does.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kernel.errno import SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from kernel.kernel import Kernel
    from kernel.task import Task

RSEQ_CS_OFFSET = 8            # struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, u32 flags, ...
RSEQ_NODE_ID_OFFSET = 20
RSEQ_MM_CID_OFFSET = 24
RSEQ_CS_BYTES = 32            # struct rseq_cs: u32 version, u32 flags, u64 start_ip, post_commit_offset, abort_ip


class RseqViolation(Exception):
    """The task's rseq area or descriptor is invalid: it gets SIGSEGV."""


def rseq_ip_fixup(kernel: "Kernel", task: "Task", registers: dict) -> None:
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


def rseq_update_cpu_id(task: "Task", cpu: int) -> None:
    """cpu_id_start/cpu_id = cpu, node_id = 0, mm_cid = cpu (one node, CPU-number cids)."""
    rseq = task.rseq
    task.mm.copy_to_user(rseq.address, struct.pack("<II", cpu, cpu))
    if rseq.length >= RSEQ_MM_CID_OFFSET + 4:
        task.mm.copy_to_user(rseq.address + RSEQ_NODE_ID_OFFSET, struct.pack("<II", 0, cpu))
    task.rseq_cpu_written = cpu


def rseq_handle_notify_resume(kernel: "Kernel", task: "Task", registers: dict, cpu: int) -> bool:
    """On return to user after preemption/migration/signal: fix up the IP, refresh cpu ids.
    Returns False when the task must die with SIGSEGV."""
    try:
        if task.rseq_event_pending:
            task.rseq_event_pending = False
            rseq_ip_fixup(kernel, task, registers)
        if task.rseq_cpu_written != cpu:
            rseq_update_cpu_id(task, cpu)
    except (RseqViolation, SyscallError):
        return False
    return True
