"""Robust futexes (kernel/futex/core.c exit_robust_list, handle_futex_death;
syscalls.c set_robust_list/get_robust_list) and the futex half of exit
(futex_exit_release).

A thread registers ``struct robust_list_head`` {next, long futex_offset,
list_op_pending} (24 bytes). When it exits, the kernel walks the list (at
most ROBUST_LIST_LIMIT entries; bit 0 of each pointer marks a PI futex):
every futex word at entry + futex_offset whose TID is the dying thread's
becomes (FUTEX_WAITERS kept) | FUTEX_OWNER_DIED and, if it had waiters and is
not PI, one waiter is woken with a shared wake. ``list_op_pending`` is handled
last; a pending non-PI entry with no owner also gets a wake (the unlock race
handle_futex_death describes). Contended PI futexes the thread owned then go
to their top waiters (pi.exit_pi_state_list).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EFAULT, EINVAL, EPERM, ESRCH, SyscallError
from emu_x86.kernel.futex.core import (
    FUTEX_OWNER_DIED,
    FUTEX_TID_MASK,
    FUTEX_WAITERS,
    find_task_by_vpid,
    futex_cancel_wait,
    futex_wake,
    get_user_u32,
    put_user_u32,
    signed32,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_set_robust_list, SYS_get_robust_list = 273, 274
ROBUST_LIST_HEAD_BYTES = 24
ROBUST_LIST_LIMIT = 2048
MASK64 = (1 << 64) - 1


def sys_set_robust_list(kernel, vcpu, task, head, length, *_):
    if length != ROBUST_LIST_HEAD_BYTES:
        raise SyscallError(EINVAL)
    task.robust_list_head, task.robust_list_len = head, length
    return 0


def sys_get_robust_list(kernel, vcpu, task, pid, head_ptr, len_ptr, *_):
    """get_robust_list(2): another thread's head needs ptrace read access --
    every guest task has the caller's credentials, so only an unknown id fails."""
    pid = signed32(pid)
    target = task if pid == 0 else find_task_by_vpid(kernel, pid)
    if target is None:
        raise SyscallError(EPERM if pid == 1 else ESRCH)
    task.mm.copy_to_user(len_ptr, struct.pack("<Q", ROBUST_LIST_HEAD_BYTES))
    task.mm.copy_to_user(head_ptr, struct.pack("<Q", target.robust_list_head))
    return 0


def _fetch_robust_entry(task: Task, address: int) -> tuple[int, bool]:
    """A list pointer: the entry address and its PI bit (fetch_robust_entry)."""
    value = task.mm.get_user_u64(address)
    return value & ~1 & MASK64, bool(value & 1)


def handle_futex_death(kernel: Kernel, waker: VCpu | None, task: Task, address: int, pi: bool,
                       pending: bool) -> bool:
    """Mark one futex the dying ``task`` holds; False stops the walk (a fault)."""
    if address & 3:
        return False
    try:
        uval = get_user_u32(task.mm, address)
        owner = uval & FUTEX_TID_MASK
        if pending and not pi and not owner:
            futex_wake(kernel, waker, task.mm, address, 1)
            return True
        if owner != task.tid:
            return True
        put_user_u32(task.mm, address, (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
        if not pi and uval & FUTEX_WAITERS:
            futex_wake(kernel, waker, task.mm, address, 1)
    except SyscallError:
        return False
    return True


def exit_robust_list(kernel: Kernel, waker: VCpu | None, task: Task) -> None:
    head = task.robust_list_head
    if not head:
        return
    try:
        entry, pi = _fetch_robust_entry(task, head)
        futex_offset = task.mm.get_user_u64(head + 8)
        pending, pending_pi = _fetch_robust_entry(task, head + 16)
    except SyscallError:
        return
    if futex_offset & (1 << 63):
        futex_offset -= 1 << 64
    limit = ROBUST_LIST_LIMIT
    while entry != head:
        try:
            next_entry, next_pi = _fetch_robust_entry(task, entry)
            fetched = True
        except SyscallError:
            fetched = False
        if entry != pending and not handle_futex_death(kernel, waker, task, (entry + futex_offset) & MASK64,
                                                        pi, pending=False):
            return
        if not fetched:
            return
        entry, pi = next_entry, next_pi
        limit -= 1
        if not limit:
            break
    if pending:
        handle_futex_death(kernel, waker, task, (pending + futex_offset) & MASK64, pending_pi, pending=True)


def futex_exit_release(kernel: Kernel, task: Task, waker: VCpu | None) -> None:
    """The futex work of an exiting thread (futex_exit_release, from mm_release):
    leave any wait, walk the robust list, hand over owned PI futexes."""
    futex_cancel_wait(kernel, task)
    if task.robust_list_head:
        exit_robust_list(kernel, waker, task)
        task.robust_list_head = 0
    from emu_x86.kernel.futex.pi import exit_pi_state_list
    exit_pi_state_list(kernel, task, waker)


__all__ = ["EFAULT", "futex_exit_release", "sys_get_robust_list", "sys_set_robust_list"]
