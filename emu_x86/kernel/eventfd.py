"""eventfd and eventfd2 (fs/eventfd.c).

A 64-bit counter behind an fd. read returns the counter and zeroes it (or,
with EFD_SEMAPHORE, returns 1 and decrements), blocking while it is zero;
write adds to it, blocking while the sum would pass 0xfffffffffffffffe.
Both need an 8-byte buffer (-EINVAL below that); writing 2^64-1 is -EINVAL.
poll: readable while the counter is non-zero, writable while one more can be
added, POLLERR at the (unreachable by write) overflow value.
"""
from __future__ import annotations

import stat
import struct

from emu_x86.kernel.errno import EINVAL, SyscallError
from emu_x86.kernel.file import (
    ANON_INODE_DEV, O_CLOEXEC, O_NONBLOCK, O_RDWR, POLLERR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, File,
    WouldBlock, files_of, nofile_limit, stat_struct,
)

EFD_SEMAPHORE = 1
EFD_CLOEXEC, EFD_NONBLOCK = O_CLOEXEC, O_NONBLOCK
ULLONG_MAX = (1 << 64) - 1
SYS_eventfd, SYS_eventfd2 = 284, 290


class EventFd(File):
    def __init__(self, count: int, flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.count = count
        self.semaphore = bool(flags & EFD_SEMAPHORE)

    def read_bytes(self, kernel, task, max_bytes):
        if max_bytes < 8:
            raise SyscallError(EINVAL)
        if self.count == 0:
            raise WouldBlock()
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.wait.wake_up(kernel, kernel.this_cpu)
        return struct.pack("<Q", value)

    def write_bytes(self, kernel, task, data):
        if len(data) < 8:
            raise SyscallError(EINVAL)
        (value,) = struct.unpack_from("<Q", data)
        if value == ULLONG_MAX:
            raise SyscallError(EINVAL)
        if ULLONG_MAX - self.count <= value:
            raise WouldBlock()
        self.count += value
        if value:
            self.wait.wake_up(kernel, kernel.this_cpu)
        return 8

    def poll(self, kernel):
        mask = 0
        if self.count > 0:
            mask |= POLLIN | POLLRDNORM
        if self.count == ULLONG_MAX:
            mask |= POLLERR
        if ULLONG_MAX - 1 > self.count:
            mask |= POLLOUT | POLLWRNORM
        return mask

    def stat(self, kernel):
        return stat_struct(ANON_INODE_DEV, 1, stat.S_IFREG | 0o600, kernel, blksize=4096)

    def describe(self) -> str:
        return "anon_inode:[eventfd]"


def sys_eventfd2(kernel, vcpu, task, count, flags, *_):
    count &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags & ~(EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE):
        raise SyscallError(EINVAL)
    return files_of(task).install(EventFd(count, flags), cloexec=bool(flags & EFD_CLOEXEC),
                                  limit=nofile_limit(task))


def sys_eventfd(kernel, vcpu, task, count, *_):
    return sys_eventfd2(kernel, vcpu, task, count, 0)


SYSCALLS = {SYS_eventfd: sys_eventfd, SYS_eventfd2: sys_eventfd2}
