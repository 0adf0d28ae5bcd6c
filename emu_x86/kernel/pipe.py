"""Pipes (fs/pipe.c): pipe(2), pipe2(2).

A ``Pipe`` is the shared buffer (pipe_inode_info) with a capacity of
PIPE_DEF_BUFFERS pages; each end is its own ``File``. Linux's rules kept here:

- read returns what is there (up to count); with nothing there it returns 0
  once no writer is left, else blocks (or -EAGAIN with O_NONBLOCK);
- a write of at most PIPE_BUF bytes is atomic: it waits until all of it fits;
  a larger one takes what fits and continues as room appears, returning only
  when all is written (blocking) or with the partial count (O_NONBLOCK);
- a write with no reader left fails -EPIPE and sends SIGPIPE to the writer;
- poll: readable with data or with no writer left (POLLHUP), writable while
  there is room for PIPE_BUF bytes, POLLERR once no reader is left.
"""
from __future__ import annotations

import stat
import struct
from collections import deque
from emu_x86.kernel.errno import EBUSY, EINVAL, EPERM, EPIPE, SyscallError
from emu_x86.kernel.file import (
    O_CLOEXEC, O_DIRECT, O_NONBLOCK, O_RDONLY, O_WRONLY, PIPEFS_DEV, POLLERR, POLLHUP, POLLIN, POLLOUT,
    POLLRDNORM, POLLWRNORM, File, WouldBlock, files_of, nofile_limit, stat_struct,
)
from emu_x86.kernel.wait import WaitQueue

PIPE_BUF_BYTES = 4096
PAGE_BYTES = 4096
PIPE_DEF_BUFFERS = 16
PIPE_MAX_SIZE_BYTES = 1 << 20            # /proc/sys/fs/pipe-max-size
FIONREAD = 0x541B
O_NOTIFICATION_PIPE = 0o200             # O_EXCL's bit (include/uapi/linux/watch_queue.h)
_pipe_inodes = iter(range(0x10000, 1 << 32))


class Pipe:
    """pipe_inode_info: the buffers in flight (one page each, ``max_slots`` of them:
    pipe->max_usage) and how many ends are open."""

    def __init__(self) -> None:
        self.buffers: deque[bytearray] = deque()
        self.nbytes = 0
        self.max_slots = PIPE_DEF_BUFFERS
        self.readers = 0
        self.writers = 0
        self.inode = next(_pipe_inodes)
        self.wait = WaitQueue()          # both ends' sleepers, pollers and epoll items

    def full(self) -> bool:
        return len(self.buffers) >= self.max_slots

    def room(self) -> int:
        """An upper bound of what a write can place now (free slots plus the last page's tail)."""
        tail = PAGE_BYTES - len(self.buffers[-1]) if self.buffers else 0
        return (self.max_slots - len(self.buffers)) * PAGE_BYTES + tail

    def take(self, max_bytes: int) -> bytes:
        out = bytearray()
        while self.buffers and len(out) < max_bytes:
            head = self.buffers[0]
            part = head[:max_bytes - len(out)]
            out += part
            del head[:len(part)]
            if not head:
                self.buffers.popleft()         # the slot is free only once fully read
        self.nbytes -= len(out)
        return bytes(out)

    def put(self, data: bytes) -> int:
        """pipe_write's placement: a write of at most PIPE_BUF bytes goes whole into the last
        page (if it fits there) or a new slot, else nothing; a larger one merges its
        sub-page remainder into the last page, then fills free slots page by page."""
        done = 0
        if len(data) <= PIPE_BUF_BYTES:
            if self.buffers and len(self.buffers[-1]) + len(data) <= PAGE_BYTES:
                self.buffers[-1] += data
            elif not self.full():
                self.buffers.append(bytearray(data))
            else:
                return 0
            self.nbytes += len(data)
            return len(data)
        remainder = len(data) % PAGE_BYTES
        if remainder and self.buffers and len(self.buffers[-1]) + remainder <= PAGE_BYTES:
            self.buffers[-1] += data[:remainder]
            done = remainder
        while done < len(data) and not self.full():
            chunk = data[done:done + PAGE_BYTES]
            self.buffers.append(bytearray(chunk))
            done += len(chunk)
        self.nbytes += done
        return done


class PipeEnd(File):
    def __init__(self, pipe: Pipe, flags: int) -> None:
        super().__init__(flags)
        self.pipe = pipe
        self.wait = pipe.wait
        if self.readable:
            pipe.readers += 1
        if self.writable:
            pipe.writers += 1

    def read_bytes(self, kernel, task, max_bytes):
        pipe = self.pipe
        if not pipe.nbytes:
            if pipe.writers == 0 or max_bytes == 0:
                return b""
            raise WouldBlock()
        data = pipe.take(max_bytes)
        pipe.wait.wake_up(kernel, kernel.this_cpu)       # room for writers
        return data

    def write_room(self, kernel):
        return self.pipe.room()

    def write_bytes(self, kernel, task, data):
        pipe = self.pipe
        if pipe.readers == 0:
            raise SyscallError(EPIPE)                     # the caller sends SIGPIPE
        if not data:
            return 0
        placed = pipe.put(data)
        if placed == 0:
            raise WouldBlock()
        pipe.wait.wake_up(kernel, kernel.this_cpu)       # data for readers
        return placed

    def set_size(self, size: int) -> int:
        """F_SETPIPE_SZ (pipe_set_size): a power-of-two number of pages, at most
        pipe-max-size (1 MiB) for an unprivileged user, never below what is queued."""
        if size > PIPE_MAX_SIZE_BYTES:
            raise SyscallError(EPERM)
        slots = 1
        while slots * PAGE_BYTES < max(size, PAGE_BYTES):
            slots *= 2
        if len(self.pipe.buffers) > slots:
            raise SyscallError(EBUSY)
        self.pipe.max_slots = slots
        return slots * PAGE_BYTES

    def poll(self, kernel):
        pipe = self.pipe
        mask = 0
        if self.readable:
            if pipe.nbytes:
                mask |= POLLIN | POLLRDNORM
            if pipe.writers == 0:
                mask |= POLLHUP
        if self.writable:
            if not pipe.full():
                mask |= POLLOUT | POLLWRNORM
            if pipe.readers == 0:
                mask |= POLLERR
        return mask

    def ioctl(self, kernel, task, request, argument):
        if request & 0xFFFFFFFF == FIONREAD:
            task.mm.copy_to_user(argument, struct.pack("<i", self.pipe.nbytes))
            return 0
        return super().ioctl(kernel, task, request, argument)

    def stat(self, kernel):
        return stat_struct(PIPEFS_DEV, self.pipe.inode, stat.S_IFIFO | 0o600, kernel, blksize=4096)

    def release(self, kernel):
        if self.readable:
            self.pipe.readers -= 1
        if self.writable:
            self.pipe.writers -= 1
        self.pipe.wait.wake_up(kernel, kernel.this_cpu)  # EOF for readers, EPIPE for writers

    def describe(self) -> str:
        return f"pipe:[{self.pipe.inode}]"


def create_pipe(flags: int = 0) -> tuple[PipeEnd, PipeEnd]:
    pipe = Pipe()
    status = flags & (O_NONBLOCK | O_DIRECT)
    return PipeEnd(pipe, O_RDONLY | status), PipeEnd(pipe, O_WRONLY | status)


SYS_pipe, SYS_pipe2 = 22, 293


def sys_pipe2(kernel, vcpu, task, fds_address, flags, *_):
    """do_pipe2: both fds installed only if the user buffer takes them (-EFAULT else)."""
    flags &= 0xFFFFFFFF
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE):
        raise SyscallError(EINVAL)
    if flags & O_NOTIFICATION_PIPE:
        raise SyscallError(EINVAL)                   # watch_queue is not configured
    table = files_of(task)
    limit = nofile_limit(task)
    read_end, write_end = create_pipe(flags)
    read_fd = table.install(read_end, cloexec=bool(flags & O_CLOEXEC), limit=limit)
    try:
        write_fd = table.install(write_end, cloexec=bool(flags & O_CLOEXEC), limit=limit)
    except SyscallError:
        table.close(kernel, read_fd)
        raise
    try:
        task.mm.copy_to_user(fds_address, struct.pack("<ii", read_fd, write_fd))
    except SyscallError:
        table.close(kernel, read_fd)
        table.close(kernel, write_fd)
        raise
    return 0


def sys_pipe(kernel, vcpu, task, fds_address, *_):
    return sys_pipe2(kernel, vcpu, task, fds_address, 0)


SYSCALLS = {SYS_pipe: sys_pipe, SYS_pipe2: sys_pipe2}

__all__ = ["Pipe", "PipeEnd", "create_pipe", "PIPE_BUF_BYTES", "SYSCALLS"]
