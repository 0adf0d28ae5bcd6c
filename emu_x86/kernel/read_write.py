"""read/write and their vector, positional and in-kernel forms (fs/read_write.c).

read, write, readv, writev, pread64, pwrite64, preadv, pwritev, preadv2,
pwritev2, lseek, sendfile. The checks come in Linux's order: the fd
(-EBADF), the file's access mode (-EBADF), the count clamped to MAX_RW_COUNT,
the user buffer (-EFAULT only when nothing was transferred), then the file's
own operation. Data moves in chunks of at most ``IO_CHUNK_BYTES``, so a huge
count costs no host memory.

A read or write that cannot progress sleeps on the file's wait queue
(emu_x86/kernel/wait.py) -- or fails -EAGAIN on an O_NONBLOCK file -- and restarts
after a handler installed with SA_RESTART (-ERESTARTSYS). A write to a pipe
with no reader fails -EPIPE and raises SIGPIPE (pipe_write's send_sig).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel import signals
from emu_x86.kernel.errno import EAGAIN, EBADF, EFAULT, EINVAL, EPIPE, ESPIPE, SyscallError
from emu_x86.kernel.file import O_NONBLOCK, File, WouldBlock, as_fd, fdget
from emu_x86.kernel.pipe import PipeEnd
from emu_x86.kernel.syscalls import signed
from emu_x86.kernel.wait import wait_event

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.task import Task

MAX_RW_COUNT = 0x7FFFF000
IO_CHUNK_BYTES = 1 << 20
UIO_MAXIOV = 1024
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
RWF_SUPPORTED = 0x1F                  # RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND
RWF_NOWAIT = 0x8

SYS_read, SYS_write, SYS_lseek, SYS_pread64, SYS_pwrite64, SYS_readv, SYS_writev = 0, 1, 8, 17, 18, 19, 20
SYS_sendfile, SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2 = 40, 295, 296, 327, 328


def queue_sigpipe(task: "Task") -> None:
    """send_sig(SIGPIPE, current, 0): pending for the writer, delivered on its way back
    to user mode (whether it writes now or completes a write it slept in)."""
    from emu_x86.kernel.cred import cred_of
    from emu_x86.kernel.sigframe import SI_USER, SIG_IGN, SigInfo, get_action
    if get_action(task, signals.SIGPIPE).handler == SIG_IGN:     # discarded at once
        return
    task.pending_signals.append(SigInfo(signals.SIGPIPE, SI_USER, pid=task.pid, uid=cred_of(task).uid))


# ---- the transfer loops (shared with the retry of a sleeping task) ----------------------

def _read_into(kernel, task, file: File, segments: list[tuple[int, int]], position: int | None) -> int:
    """Fill ``segments`` (address, length) from ``file``; returns the count. Raises
    WouldBlock only when nothing was read yet (the caller sleeps or fails -EAGAIN)."""
    done = 0
    for address, length in segments:
        offset = 0
        while offset < length:
            want = min(IO_CHUNK_BYTES, length - offset)
            try:
                if position is None:
                    data = file.read_bytes(kernel, task, want)
                else:
                    data = file.pread_bytes(kernel, want, position + done)
            except WouldBlock:
                if done:
                    return done
                raise
            if not data:
                return done
            try:
                task.mm.copy_to_user(address + offset, data)
            except SyscallError:
                if done:
                    return done
                raise
            offset += len(data)
            done += len(data)
            if len(data) < want and not file.regular:
                return done          # a pipe or device gave what it had: do not wait for more
    return done


class WriteProgress:
    """A write's state across sleeps: how much of ``segments`` has gone out."""
    __slots__ = ("done", "segments")

    def __init__(self, segments: list[tuple[int, int]]) -> None:
        self.done = 0
        self.segments = segments


def _write_from(kernel, task, file: File, progress: WriteProgress, position: int | None) -> int | None:
    """Write what remains of ``progress``; the total, or raise WouldBlock with nothing
    new written this time (a blocking caller waits and calls again)."""
    skip = progress.done
    total = sum(length for _, length in progress.segments)
    for address, length in progress.segments:
        if skip >= length:
            skip -= length
            continue
        offset = skip
        skip = 0
        while offset < length:
            want = min(IO_CHUNK_BYTES, length - offset)
            room = file.write_room(kernel)
            # A pipe takes only what fits: copy no more than that from the user (a write of
            # at most PIPE_BUF bytes goes whole or not at all, so it is never cut here).
            if room is not None and total - progress.done > 4096:
                want = max(1, min(want, room)) if room else min(want, 4096)
            try:
                data = task.mm.copy_from_user(address + offset, want)
            except SyscallError:
                if progress.done:
                    return progress.done
                raise
            try:
                if position is None:
                    written = file.write_bytes(kernel, task, data)
                else:
                    written = file.pwrite_bytes(kernel, data, position + progress.done)
            except SyscallError as error:
                if error.errno == EPIPE:
                    queue_sigpipe(task)
                if progress.done:
                    return progress.done
                raise
            offset += written
            progress.done += written
            if written < len(data) and room is None:
                return progress.done    # a short write from the host: report it
    return progress.done


def do_read(kernel, vcpu, task, file: File, segments, position, number: int) -> int | None:
    """The read once the fd is known readable (reading_fd) and the arguments checked."""
    try:
        return _read_into(kernel, task, file, segments, position)
    except WouldBlock:
        pass
    if file.flags & O_NONBLOCK:
        raise SyscallError(EAGAIN)

    def retry():
        try:
            return _read_into(kernel, task, file, segments, position)
        except WouldBlock:
            return None
    wait_event(kernel, vcpu, task, [file.wait], retry, restart_number=number)
    return None


def do_write(kernel, vcpu, task, file: File, segments, position, number: int) -> int | None:
    """The write once the fd is known writable (writing_fd) and the arguments checked."""
    if file.discards_writes:             # /dev/null, /dev/zero, /dev/full never read the buffer
        file.write_bytes(kernel, task, b"")          # -ENOSPC for /dev/full
        return sum(length for _, length in segments)
    progress = WriteProgress(segments)
    try:
        return _write_from(kernel, task, file, progress, position)
    except WouldBlock:
        pass
    if file.flags & O_NONBLOCK:
        if progress.done:
            return progress.done
        raise SyscallError(EAGAIN)

    def retry():
        try:
            return _write_from(kernel, task, file, progress, position)
        except WouldBlock:
            return None
    # Restartable only while nothing went out (a partial write returns its count).
    wait_event(kernel, vcpu, task, [file.wait], retry, restart_number=number)
    return None


def _check_buffer(address: int, count: int) -> None:
    """access_ok: the range must lie in the user half (checked before any transfer)."""
    if count and (address + count > (1 << 47) or address + count < address):
        raise SyscallError(EFAULT)


def read_iovec(task: "Task", iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """import_iovec: at most UIO_MAXIOV entries, the total clamped to MAX_RW_COUNT."""
    iovcnt &= 0xFFFFFFFF
    if iovcnt > UIO_MAXIOV:
        raise SyscallError(EINVAL)
    if iovcnt == 0:
        return []
    raw = task.mm.copy_from_user(iov, 16 * iovcnt)
    segments = []
    total = 0
    for index in range(iovcnt):
        base, length = struct.unpack_from("<QQ", raw, 16 * index)
        if length & (1 << 63):
            raise SyscallError(EINVAL)
        length = min(length, MAX_RW_COUNT - total)
        _check_buffer(base, length)
        total += length
        segments.append((base, length))
    return segments


# ---- system calls -------------------------------------------------------------------------

def reading_fd(task, fd) -> File:
    """fdget + FMODE_READ, the first checks of every read (-EBADF)."""
    file = fdget(task, fd)
    if not file.readable:
        raise SyscallError(EBADF)
    return file


def writing_fd(task, fd) -> File:
    """fdget + FMODE_WRITE, the first checks of every write (-EBADF)."""
    file = fdget(task, fd)
    if not file.writable:
        raise SyscallError(EBADF)
    return file


def sys_read(kernel, vcpu, task, fd, buf, count, *_):
    file = reading_fd(task, fd)
    count = min(count, MAX_RW_COUNT)
    _check_buffer(buf, count)
    return do_read(kernel, vcpu, task, file, [(buf, count)], None, SYS_read)


def sys_write(kernel, vcpu, task, fd, buf, count, *_):
    file = writing_fd(task, fd)
    count = min(count, MAX_RW_COUNT)
    _check_buffer(buf, count)
    return do_write(kernel, vcpu, task, file, [(buf, count)], None, SYS_write)


def sys_readv(kernel, vcpu, task, fd, iov, iovcnt, *_):
    file = reading_fd(task, fd)
    return do_read(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), None, SYS_readv)


def sys_writev(kernel, vcpu, task, fd, iov, iovcnt, *_):
    file = writing_fd(task, fd)
    return do_write(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), None, SYS_writev)


def _position(file: File, offset: int) -> int:
    if not file.seekable:
        raise SyscallError(ESPIPE)
    if offset & (1 << 63):
        raise SyscallError(EINVAL)
    return offset


def sys_pread64(kernel, vcpu, task, fd, buf, count, offset, *_):
    file = reading_fd(task, fd)
    position = _position(file, offset)
    count = min(count, MAX_RW_COUNT)
    _check_buffer(buf, count)
    return do_read(kernel, vcpu, task, file, [(buf, count)], position, SYS_pread64)


def sys_pwrite64(kernel, vcpu, task, fd, buf, count, offset, *_):
    file = writing_fd(task, fd)
    position = _position(file, offset)
    count = min(count, MAX_RW_COUNT)
    _check_buffer(buf, count)
    return do_write(kernel, vcpu, task, file, [(buf, count)], position, SYS_pwrite64)


def _vector_position(file: File, low: int, flags: int) -> int | None:
    """preadv2/pwritev2: offset -1 means the file position, as readv/writev."""
    if flags & ~RWF_SUPPORTED:
        raise SyscallError(95)        # EOPNOTSUPP
    if low == (1 << 64) - 1:
        return None
    return _position(file, low)


def sys_preadv(kernel, vcpu, task, fd, iov, iovcnt, pos_low, pos_high, *_):
    file = reading_fd(task, fd)
    position = _position(file, pos_low)
    return do_read(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), position, SYS_preadv)


def sys_pwritev(kernel, vcpu, task, fd, iov, iovcnt, pos_low, pos_high, *_):
    file = writing_fd(task, fd)
    position = _position(file, pos_low)
    return do_write(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), position, SYS_pwritev)


def sys_preadv2(kernel, vcpu, task, fd, iov, iovcnt, pos_low, pos_high, flags, *_):
    file = reading_fd(task, fd)
    position = _vector_position(file, pos_low, flags)
    return do_read(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), position, SYS_preadv2)


def sys_pwritev2(kernel, vcpu, task, fd, iov, iovcnt, pos_low, pos_high, flags, *_):
    file = writing_fd(task, fd)
    position = _vector_position(file, pos_low, flags)
    return do_write(kernel, vcpu, task, file, read_iovec(task, iov, iovcnt), position, SYS_pwritev2)


def sys_lseek(kernel, vcpu, task, fd, offset, whence, *_):
    file = fdget(task, fd)
    whence &= 0xFFFFFFFF
    if whence > SEEK_HOLE:
        raise SyscallError(EINVAL)
    return file.llseek(kernel, signed(offset), whence)


def sys_sendfile(kernel, vcpu, task, out_fd, in_fd, offset_address, count, *_):
    """sendfile(2) (do_sendfile): from ``in_fd`` (at *offset when given, leaving its
    position alone) to ``out_fd``; blocks on a full pipe as write would. The data is
    read only as it can be written, so nothing read is ever lost."""
    in_file = reading_fd(task, in_fd)
    out_file = writing_fd(task, out_fd)
    position = None
    if offset_address:
        (position,) = struct.unpack("<q", task.mm.copy_from_user(offset_address, 8))
        if position < 0:
            raise SyscallError(EINVAL)
        if not in_file.seekable:
            raise SyscallError(ESPIPE)
    if isinstance(in_file, PipeEnd):
        raise SyscallError(EINVAL)       # a pipe or FIFO has no splice_read (do_splice_direct)
    count = min(count, MAX_RW_COUNT)
    state = {"done": 0, "pending": b""}

    def pump() -> int | None:
        while state["done"] < count or state["pending"]:
            if not state["pending"]:
                want = min(IO_CHUNK_BYTES, count - state["done"])
                room = out_file.write_room(kernel)
                if room is not None:
                    want = min(want, max(room, 1))
                try:
                    if position is None:
                        data = in_file.read_bytes(kernel, task, want)
                    else:
                        data = in_file.pread_bytes(kernel, want, position + state["done"])
                except WouldBlock:
                    if state["done"]:
                        return finish()
                    raise
                if not data:
                    return finish()
                state["pending"] = data
            try:
                written = out_file.write_bytes(kernel, task, state["pending"])
            except SyscallError as error:
                if error.errno == EPIPE:
                    queue_sigpipe(task)
                if state["done"]:
                    return finish()
                raise
            state["pending"] = state["pending"][written:]
            state["done"] += written
        return finish()

    def finish() -> int:
        if offset_address:
            task.mm.copy_to_user(offset_address, struct.pack("<q", position + state["done"]))
        return state["done"]

    try:
        return pump()
    except WouldBlock:
        pass
    if (in_file.flags | out_file.flags) & O_NONBLOCK:
        if state["done"]:
            return finish()
        raise SyscallError(EAGAIN)

    def retry():
        try:
            return pump()
        except WouldBlock:
            return None
    queues = [out_file.wait] if state["pending"] else [in_file.wait, out_file.wait]
    wait_event(kernel, vcpu, task, queues, retry, restart_number=SYS_sendfile)
    return None


SYSCALLS = {
    SYS_read: sys_read,
    SYS_write: sys_write,
    SYS_readv: sys_readv,
    SYS_writev: sys_writev,
    SYS_pread64: sys_pread64,
    SYS_pwrite64: sys_pwrite64,
    SYS_preadv: sys_preadv,
    SYS_pwritev: sys_pwritev,
    SYS_preadv2: sys_preadv2,
    SYS_pwritev2: sys_pwritev2,
    SYS_lseek: sys_lseek,
    SYS_sendfile: sys_sendfile,
}

__all__ = ["SYSCALLS", "queue_sigpipe", "read_iovec", "do_read", "do_write", "as_fd"]
