"""The futex2 calls (kernel/futex/syscalls.c, waitwake.c futex_wait_multiple):
futex_waitv (449), futex_wake (454), futex_wait (455), futex_requeue (456).

``struct futex_waitv`` is {u64 val; u64 uaddr; u32 flags; u32 __reserved}:
flags are FUTEX2_SIZE_* (only U32 is implemented, as in Linux), FUTEX2_NUMA
and FUTEX2_PRIVATE. futex_waitv sleeps on every word at once and returns the
index of the one that was woken.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EAGAIN, EINVAL, ETIMEDOUT, SyscallError
from emu_x86.kernel.futex.core import (
    RESTART_SYS,
    FutexQ,
    deadline_cycles,
    futex_queue,
    futex_requeue,
    futex_sleep,
    futex_unqueue_task,
    futex_wait,
    futex_wake_key,
    get_futex_key,
    get_user_u32,
    read_timespec,
    signed32,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.task import Task

SYS_futex_waitv, SYS_futex_wake, SYS_futex_wait, SYS_futex_requeue = 449, 454, 455, 456
FUTEX2_SIZE_U8, FUTEX2_SIZE_U16, FUTEX2_SIZE_U32, FUTEX2_SIZE_U64 = 0, 1, 2, 3
FUTEX2_SIZE_MASK = 3
FUTEX2_NUMA = 4
FUTEX2_PRIVATE = 128
FUTEX2_VALID_MASK = FUTEX2_SIZE_MASK | FUTEX2_NUMA | FUTEX2_PRIVATE
FUTEX_WAITV_MAX = 128
FUTEX_WAITV_BYTES = 24
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1


def futex2_flags_valid(flags: int) -> bool:
    """futex_flags_valid: only 32-bit futexes are implemented."""
    return flags & FUTEX2_SIZE_MASK == FUTEX2_SIZE_U32


def futex_validate_input(flags: int, value: int) -> bool:
    """The value must fit the futex size (32 bits)."""
    return not value >> 32


def futex2_setup_timeout(task: Task, address: int, clockid: int) -> tuple[int, bool] | None:
    """An absolute timeout on CLOCK_MONOTONIC or CLOCK_REALTIME (else EINVAL, checked first)."""
    if not address:
        return None
    clockid = signed32(clockid)
    if clockid not in (CLOCK_REALTIME, CLOCK_MONOTONIC):
        raise SyscallError(EINVAL)
    return read_timespec(task, address), clockid == CLOCK_REALTIME


def futex_parse_waitv(task: Task, address: int, count: int) -> list[tuple[int, int, int]]:
    """(flags, val, uaddr) per entry: EFAULT unreadable, EINVAL for unknown flags,
    a non-zero __reserved, a size other than U32, or a value wider than it."""
    entries = []
    for index in range(count):
        val, uaddr, flags, reserved = struct.unpack(
            "<QQII", task.mm.copy_from_user(address + index * FUTEX_WAITV_BYTES, FUTEX_WAITV_BYTES))
        if flags & ~FUTEX2_VALID_MASK or reserved:
            raise SyscallError(EINVAL)
        if not futex2_flags_valid(flags) or not futex_validate_input(flags, val):
            raise SyscallError(EINVAL)
        entries.append((flags, val, uaddr))
    return entries


def sys_futex_waitv(kernel, vcpu, task, waiters, nr_futexes, flags, timeout_address, clockid, *_):
    """futex_waitv(2): EINVAL for flags, no or more than 128 futexes, a NULL
    vector; then the timeout, then every entry; all keys are taken before any
    word is read, and a word that differs from its value is -EAGAIN."""
    nr_futexes &= 0xFFFFFFFF
    if flags & 0xFFFFFFFF:
        raise SyscallError(EINVAL)
    if not nr_futexes or nr_futexes > FUTEX_WAITV_MAX or not waiters:
        raise SyscallError(EINVAL)
    timeout = futex2_setup_timeout(task, timeout_address, clockid)
    entries = futex_parse_waitv(task, waiters, nr_futexes)
    keys = [get_futex_key(task, uaddr, not flags & FUTEX2_PRIVATE) for flags, _val, uaddr in entries]
    for (_flags, val, uaddr) in entries:
        if get_user_u32(task.mm, uaddr) != val:
            raise SyscallError(EAGAIN)
    wake_cycles = deadline_cycles(kernel, vcpu, timeout)
    if wake_cycles == -1:
        raise SyscallError(ETIMEDOUT)
    for index, key in enumerate(keys):
        futex_queue(kernel, FutexQ(task, key, result=index))
    futex_sleep(kernel, vcpu, task, wake_cycles, RESTART_SYS)


def sys_futex_wake(kernel, vcpu, task, uaddr, mask, nr, flags, *_):
    """futex_wake(2): FLAGS_STRICT, so nr = 0 wakes nobody."""
    flags &= 0xFFFFFFFF
    if flags & ~FUTEX2_VALID_MASK or not futex2_flags_valid(flags) or not futex_validate_input(flags, mask):
        raise SyscallError(EINVAL)
    if not mask:
        raise SyscallError(EINVAL)
    key = get_futex_key(task, uaddr, not flags & FUTEX2_PRIVATE)
    nr = signed32(nr)
    if not nr:
        return 0
    return futex_wake_key(kernel, vcpu, key, nr, mask)


def sys_futex_wait(kernel, vcpu, task, uaddr, val, mask, flags, timeout_address, clockid):
    flags &= 0xFFFFFFFF
    if flags & ~FUTEX2_VALID_MASK or not futex2_flags_valid(flags):
        raise SyscallError(EINVAL)
    if not futex_validate_input(flags, val) or not futex_validate_input(flags, mask):
        raise SyscallError(EINVAL)
    timeout = futex2_setup_timeout(task, timeout_address, clockid)
    return futex_wait(kernel, vcpu, task, uaddr, not flags & FUTEX2_PRIVATE, val, timeout, mask)


def sys_futex_requeue(kernel, vcpu, task, waiters, flags, nr_wake, nr_requeue, *_):
    if flags & 0xFFFFFFFF or not waiters:
        raise SyscallError(EINVAL)
    (flags1, val1, uaddr1), (flags2, _val2, uaddr2) = futex_parse_waitv(task, waiters, 2)
    if flags1 != flags2:
        raise SyscallError(EINVAL)
    return futex_requeue(kernel, vcpu, task, uaddr1, not flags1 & FUTEX2_PRIVATE, uaddr2,
                         signed32(nr_wake), signed32(nr_requeue), val1, False)


__all__ = ["futex_unqueue_task", "sys_futex_requeue", "sys_futex_wait", "sys_futex_waitv", "sys_futex_wake"]
