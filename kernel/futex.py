"""futex(2): wait queues keyed by (mm, address), WAIT/WAKE and their bitset forms
(kernel/futex/ semantics: the value check and the enqueue are atomic with
respect to wakers, which holds trivially here since the kernel runs one call
at a time)."""
from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING

from kernel.errno import EAGAIN, EINVAL, ENOSYS, ETIMEDOUT, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu.vcpu import VCpu
    from kernel.kernel import Kernel
    from kernel.mm.mm import MmStruct
    from kernel.task import Task

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF


def _key(mm: "MmStruct", address: int) -> tuple[int, int]:
    return (mm.ctx_id, address)


def futex_wait(kernel: "Kernel", vcpu: "VCpu", task: "Task", address: int, expected: int,
               timeout_ns: int | None, bitset: int) -> int | None:
    if address & 3:
        raise SyscallError(EINVAL)
    if bitset == 0:
        raise SyscallError(EINVAL)
    (current,) = struct.unpack("<I", task.mm.copy_from_user(address, 4))
    if current != expected & 0xFFFFFFFF:
        raise SyscallError(EAGAIN)
    queue = kernel.futex_queues.setdefault(_key(task.mm, address), deque())
    queue.append((task, bitset))
    task.futex_key = _key(task.mm, address)
    task.timeout_result = -ETIMEDOUT
    wake_cycles = None
    if timeout_ns is not None:
        wake_cycles = vcpu.cycles + timeout_ns * kernel.tsc_hz // 1_000_000_000
    # The woken task returns 0 unless its timeout fires first.
    vcpu.write_register("rax", 0)
    kernel.scheduler.block_current(vcpu, wake_cycles)
    return None


def futex_wake(kernel: "Kernel", vcpu: "VCpu | None", mm: "MmStruct", address: int, count: int,
               bitset: int = FUTEX_BITSET_MATCH_ANY) -> int:
    key = _key(mm, address)
    queue = kernel.futex_queues.get(key)
    woken = 0
    if not queue:
        return 0
    remaining = deque()
    while queue:
        task, task_bitset = queue.popleft()
        if woken < count and task_bitset & bitset:
            task.futex_key = None
            task.registers["rax"] = 0
            kernel.scheduler.wake_up(task, vcpu)
            woken += 1
        else:
            remaining.append((task, task_bitset))
    if remaining:
        kernel.futex_queues[key] = remaining
    else:
        kernel.futex_queues.pop(key, None)
    return woken


def futex_cancel_wait(kernel: "Kernel", task: "Task") -> None:
    """Take ``task`` off its futex queue (timeout or exit)."""
    key = getattr(task, "futex_key", None)
    if key is None:
        return
    queue = kernel.futex_queues.get(key)
    if queue:
        kernel.futex_queues[key] = deque(entry for entry in queue if entry[0] is not task)
        if not kernel.futex_queues[key]:
            del kernel.futex_queues[key]
    task.futex_key = None


def sys_futex(kernel, vcpu, task, address, op, value, timeout_address, address2, value3):
    command = op & 0x7F & ~FUTEX_PRIVATE_FLAG
    if command in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        timeout_ns = None
        if timeout_address:
            seconds, nanoseconds = struct.unpack("<qq", task.mm.copy_from_user(timeout_address, 16))
            if seconds < 0 or not 0 <= nanoseconds < 1_000_000_000:
                raise SyscallError(EINVAL)
            timeout_ns = seconds * 1_000_000_000 + nanoseconds
            if command == FUTEX_WAIT_BITSET:
                # FUTEX_WAIT_BITSET takes an absolute time on the chosen clock.
                now = kernel.now_ns(vcpu)
                if op & FUTEX_CLOCK_REALTIME:
                    from kernel.kernel import REALTIME_EPOCH_NS
                    now += REALTIME_EPOCH_NS
                timeout_ns = max(0, timeout_ns - now)
        bitset = value3 & 0xFFFFFFFF if command == FUTEX_WAIT_BITSET else FUTEX_BITSET_MATCH_ANY
        return futex_wait(kernel, vcpu, task, address, value, timeout_ns, bitset)
    if command in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = value3 & 0xFFFFFFFF if command == FUTEX_WAKE_BITSET else FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            raise SyscallError(EINVAL)
        return futex_wake(kernel, vcpu, task.mm, address, value & 0x7FFFFFFF, bitset)
    raise SyscallError(ENOSYS)
