"""FIFOs (fs/pipe.c fifo_open): a named pipe made by mknod(S_IFIFO) or mkfifo,
in the --fs tree or on /tmp, opened as a kernel pipe (emu_x86/kernel/pipe.py).

The inode's pipe (``i_pipe``) is created at the first open and shared by
every later open of the same FIFO while any end is open; the host's FIFO is
never opened, so the emulator never blocks on the host. fifo_open's rules:

- O_RDONLY: with O_NONBLOCK at once; else it waits for a writer -- one
  already there, or one that opens later (``w_counter`` moves);
- O_WRONLY: with O_NONBLOCK and no reader, ENXIO; else it waits for a reader;
- O_RDWR: at once (Linux allows it: the opener is both ends).

A waiting open sleeps on the pipe's wait queue (emu_x86/kernel/wait.py) and installs
its fd only when the partner has come, so a signal that ends the wait leaves
nothing behind (the open returns -EINTR, or restarts under SA_RESTART).
"""
from __future__ import annotations

from emu_x86.kernel.errno import ENXIO, SyscallError
from emu_x86.kernel.file import O_ACCMODE, O_LARGEFILE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY
from emu_x86.kernel.pipe import Pipe, PipeEnd


class FifoEnd(PipeEnd):
    """One open end of a FIFO: a pipe end that lets go of the inode's pipe at the last close."""

    def __init__(self, holder, pipe: Pipe, flags: int) -> None:
        super().__init__(pipe, flags)
        self.holder = holder
        holder.fifo_opens = getattr(holder, "fifo_opens", 0) + 1

    def release(self, kernel):
        super().release(kernel)
        self.holder.fifo_opens -= 1
        if not self.holder.fifo_opens:
            self.holder.pipe = None         # free_pipe_info: the next open starts a new pipe


class PendingFifoOpen:
    """An open that must wait for its partner; do_sys_open sleeps on ``pipe.wait``
    with ``retry`` (set there), which installs the end once the partner is there.
    While it waits it counts as an end for the other side's open, as Linux's
    readers/writers counts include a waiting opener."""

    def __init__(self, holder, pipe: Pipe, flags: int, snapshot: int) -> None:
        self.holder, self.pipe, self.flags, self.snapshot = holder, pipe, flags, snapshot
        self.task = None
        self.retry = None
        pipe.pending_opens.append(self)

    def alive(self) -> bool:
        """Still asleep in its open (a signal or exit ends the wait without telling us)."""
        task = self.task
        return task is not None and task.waiter is not None and task.waiter.retry is self.retry

    def complete(self) -> FifoEnd | None:
        pipe = self.pipe
        if self.flags & O_ACCMODE == O_RDONLY:
            ready = pipe.writers > 0 or pipe.w_counter != self.snapshot
        else:
            ready = pipe.readers > 0 or pipe.r_counter != self.snapshot
        if not ready:
            return None
        if self in pipe.pending_opens:
            pipe.pending_opens.remove(self)
        return _make_end(self.holder, pipe, self.flags)


def _waiting(pipe: Pipe, access: int) -> bool:
    pipe.pending_opens = [p for p in pipe.pending_opens if p.task is None or p.alive()]
    return any(p.flags & O_ACCMODE == access for p in pipe.pending_opens)


def _make_end(holder, pipe: Pipe, flags: int) -> FifoEnd:
    end = FifoEnd(holder, pipe, flags)
    if end.readable:
        pipe.r_counter += 1
    if end.writable:
        pipe.w_counter += 1
    return end


def fifo_open(holder, flags: int):
    """A FifoEnd, or a PendingFifoOpen when the open must wait (the caller wakes
    the partners' waiters once the new end is installed)."""
    pipe = getattr(holder, "pipe", None)
    if pipe is None:
        pipe = holder.pipe = Pipe()
        pipe.r_counter = pipe.w_counter = 0
        pipe.pending_opens = []
    access = flags & O_ACCMODE
    status = access | (flags & O_NONBLOCK) | O_LARGEFILE
    if access == O_RDWR or flags & O_NONBLOCK and access == O_RDONLY:
        return _make_end(holder, pipe, status)
    if access == O_RDONLY:
        if pipe.writers or _waiting(pipe, O_WRONLY):
            return _make_end(holder, pipe, status)
        return PendingFifoOpen(holder, pipe, status, pipe.w_counter)
    if pipe.readers or _waiting(pipe, O_RDONLY):
        return _make_end(holder, pipe, status)
    if flags & O_NONBLOCK:
        raise SyscallError(ENXIO)
    return PendingFifoOpen(holder, pipe, status, pipe.r_counter)


class HostFifo:
    """The kernel side of a FIFO of the --fs tree, found by the host inode (dev, ino)."""

    def __init__(self) -> None:
        self.pipe = None


def host_fifo(kernel, device: int, inode: int) -> HostFifo:
    table = kernel.__dict__.setdefault("host_fifos", {})
    return table.setdefault((device, inode), HostFifo())


__all__ = ["FifoEnd", "PendingFifoOpen", "fifo_open", "host_fifo"]
