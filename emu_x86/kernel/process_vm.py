"""process_vm_readv(2) / process_vm_writev(2) (mm/process_vm_access.c).

Bytes move between the caller's iovecs (local) and another process's
(remote; any guest process, the caller's own included) through the remote
mm's uaccess, so the remote side faults pages in, breaks copy-on-write on a
write, and respects its protections (no FOLL_FORCE: a read-only remote page
is EFAULT for process_vm_writev). The transfer goes remote iovec by remote
iovec and stops at the first page either side cannot access: the bytes
moved so far are returned, or the error when there are none.

Checks in Linux's order: flags (EINVAL); the local vector (import_iovec:
more than UIO_MAXIOV entries EINVAL, unreadable EFAULT, a length above
SSIZE_MAX EINVAL, a buffer outside user space EFAULT; the total is capped at
MAX_RW_COUNT); nothing to move returns 0; the remote vector (same checks
but no access_ok); no remote byte returns 0; then the process (ESRCH; init,
root's, is EPERM: ptrace attach would be refused).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import EFAULT, EINVAL, EPERM, ESRCH, SyscallError
from emu_x86.kernel.mm.mm import TASK_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.task import Task

SYS_process_vm_readv, SYS_process_vm_writev = 310, 311
UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000
SSIZE_MAX = (1 << 63) - 1


def iovec_from_user(task: Task, address: int, count: int) -> list[list[int]]:
    if count > UIO_MAXIOV:
        raise SyscallError(EINVAL)
    if not count:
        return []
    raw = task.mm.copy_from_user(address, 16 * count)
    vectors = [list(struct.unpack_from("<QQ", raw, 16 * i)) for i in range(count)]
    if any(length > SSIZE_MAX for _base, length in vectors):
        raise SyscallError(EINVAL)
    return vectors


def import_iovec(task: Task, address: int, count: int) -> list[list[int]]:
    """The local vector, each buffer within user space, the total capped at MAX_RW_COUNT."""
    vectors = iovec_from_user(task, address, count)
    total = 0
    for vector in vectors:
        base, length = vector
        if base + length > TASK_SIZE:
            raise SyscallError(EFAULT)
        if length > MAX_RW_COUNT - total:
            vector[1] = length = MAX_RW_COUNT - total
        total += length
    return vectors


def process_vm_rw(kernel, task: Task, pid: int, lvec: int, liovcnt: int, rvec: int, riovcnt: int, flags: int,
                  write: bool) -> int:
    if flags:
        raise SyscallError(EINVAL)
    local = import_iovec(task, lvec, liovcnt)
    if not sum(length for _base, length in local):
        return 0
    remote = iovec_from_user(task, rvec, riovcnt)
    if not any(length for _base, length in remote):
        return 0
    from emu_x86.kernel.sched_syscalls import find_process_by_pid, signed32
    pid = signed32(pid)
    target = find_process_by_pid(kernel, task, pid) if pid > 0 else None
    if target is None:
        raise SyscallError(ESRCH)
    if getattr(target, "owned_by_root", False):
        raise SyscallError(EPERM)
    if target.state == "exited":
        raise SyscallError(ESRCH)          # a zombie has no mm left (mm_access)
    remote_mm = target.mm
    local = [vector for vector in local if vector[1]]
    moved = 0
    error = 0
    index = 0
    for remote_base, remote_length in remote:
        address, left = remote_base, remote_length
        while left and index < len(local):
            local_base, local_left = local[index]
            # One piece never crosses a page on either side, so a fault stops it whole.
            chunk = min(left, local_left, PAGE_SIZE - (address & (PAGE_SIZE - 1)),
                        PAGE_SIZE - (local_base & (PAGE_SIZE - 1)))
            try:
                if write:
                    remote_mm.copy_to_user(address, task.mm.copy_from_user(local_base, chunk))
                else:
                    task.mm.copy_to_user(local_base, remote_mm.copy_from_user(address, chunk))
            except SyscallError as fault:
                error = fault.errno
                break
            moved += chunk
            address += chunk
            left -= chunk
            local[index] = [local_base + chunk, local_left - chunk]
            if local_left == chunk:
                index += 1
        if error or index >= len(local):
            break
    if moved:
        return moved
    if error:
        raise SyscallError(error)
    return 0


def sys_process_vm_readv(kernel, vcpu, task, pid, lvec, liovcnt, rvec, riovcnt, flags):
    return process_vm_rw(kernel, task, pid, lvec, liovcnt, rvec, riovcnt, flags, write=False)


def sys_process_vm_writev(kernel, vcpu, task, pid, lvec, liovcnt, rvec, riovcnt, flags):
    return process_vm_rw(kernel, task, pid, lvec, liovcnt, rvec, riovcnt, flags, write=True)


SYSCALLS = {
    SYS_process_vm_readv: sys_process_vm_readv,
    SYS_process_vm_writev: sys_process_vm_writev,
}

__all__ = ["EFAULT", "SYSCALLS"]
