"""Character devices every guest has, and the host streams it starts with.

- ``/dev/null``, ``/dev/zero``, ``/dev/full`` (drivers/char/mem.c) and
  ``/dev/random``, ``/dev/urandom`` (drivers/char/random.c) exist in every
  guest, with or without ``--fs``, as devtmpfs mounted on /dev gives them on
  Linux. The random devices read the kernel's seeded generator (``--seed``),
  so runs stay reproducible.
- ``HostStream``: fds 0-2 as the emulator got them from the host. They are
  typed like the host fd (a terminal, a pipe or a regular file: stdio buffers
  as it would natively) and answer the terminal ioctls only for a terminal.
"""
from __future__ import annotations

import os
import stat
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import ENOSPC, ENOTTY, EPIPE, SyscallError
from emu_x86.kernel.file import (
    DEFAULT_POLLMASK, DEVTMPFS_DEV, O_RDONLY, O_RDWR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, File, stat_struct,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel

TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGPGRP, TIOCSPGRP, TIOCGWINSZ = \
    0x5401, 0x5402, 0x5403, 0x5404, 0x540F, 0x5410, 0x5413
FIONREAD, FIONBIO = 0x541B, 0x5421
TIOCGSID = 0x5429


def makedev(major: int, minor: int) -> int:
    """new_encode_dev for small numbers, as st_rdev shows them."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


class CharDevice(File):
    """A devtmpfs node opened: ``name`` under /dev, (major, minor) as on Linux."""
    name = ""
    major, minor = 1, 0
    pollable = False              # mem devices have no poll method (drivers/char/mem.c)

    def stat(self, kernel: "Kernel") -> bytes:
        return stat_struct(DEVTMPFS_DEV, 0x400 + self.minor, stat.S_IFCHR | 0o666, kernel,
                           rdev=makedev(self.major, self.minor), uid=0, gid=0)

    def llseek(self, kernel: "Kernel", offset: int, whence: int) -> int:
        return 0                     # memory devices ignore seeks (noop_llseek / null_lseek)

    def pread_bytes(self, kernel, max_bytes, position):
        return self.read_bytes(kernel, None, max_bytes)

    def pwrite_bytes(self, kernel, data, position):
        return self.write_bytes(kernel, None, data)

    def describe(self) -> str:
        return f"/dev/{self.name}"


class NullDevice(CharDevice):
    name, minor = "null", 3
    discards_writes = True        # write_null never reads the buffer: returns count at once

    def read_bytes(self, kernel, task, max_bytes):
        return b""

    def write_bytes(self, kernel, task, data):
        return len(data)


class ZeroDevice(CharDevice):
    name, minor = "zero", 5
    discards_writes = True        # write_zero is write_null

    def read_bytes(self, kernel, task, max_bytes):
        return bytes(max_bytes)

    def write_bytes(self, kernel, task, data):
        return len(data)


class FullDevice(CharDevice):
    name, minor = "full", 7
    discards_writes = True        # write_full fails -ENOSPC without reading the buffer

    def read_bytes(self, kernel, task, max_bytes):
        return bytes(max_bytes)

    def write_bytes(self, kernel, task, data):
        raise SyscallError(ENOSPC)


class RandomDevice(CharDevice):
    name, minor = "urandom", 9
    pollable = True               # random_poll

    def read_bytes(self, kernel, task, max_bytes):
        return kernel.guest_random.randbytes(max_bytes)

    def write_bytes(self, kernel, task, data):
        return len(data)              # mixes into the pool on Linux; nothing to do here


class BlockingRandomDevice(RandomDevice):
    name, minor = "random", 8        # since Linux 5.6 it blocks only until the pool is seeded


DEVICES: dict[str, type[CharDevice]] = {
    cls.name: cls for cls in (NullDevice, ZeroDevice, FullDevice, RandomDevice, BlockingRandomDevice)
}


def open_device(name: str, flags: int) -> CharDevice | None:
    cls = DEVICES.get(name)
    return cls(flags) if cls is not None else None


class HostStream(File):
    """fd 0, 1 or 2 as the host gave it to the emulator (kernel.stdin/stdout/stderr)."""

    def __init__(self, kernel: "Kernel", number: int) -> None:
        super().__init__(O_RDONLY if number == 0 else O_RDWR)
        self.number = number
        self.stream = (kernel.stdin, kernel.stdout, kernel.stderr)[number]

    def _host_mode(self) -> int | None:
        try:
            return os.fstat(self.stream.fileno()).st_mode
        except (OSError, AttributeError, ValueError):
            return None

    def is_tty(self) -> bool:
        try:
            return os.isatty(self.stream.fileno())
        except (OSError, AttributeError, ValueError):
            return False

    @property
    def readable(self) -> bool:
        return self.number == 0

    @property
    def writable(self) -> bool:
        return self.number != 0

    def read_bytes(self, kernel, task, max_bytes):
        stream = self.stream
        if hasattr(stream, "read1"):
            return stream.read1(max_bytes) if max_bytes else b""
        return stream.read(max_bytes)

    def write_bytes(self, kernel, task, data):
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            raise SyscallError(EPIPE) from None
        return len(data)

    def poll(self, kernel):
        # The host stream is never waited for (a read blocks the emulator on
        # the host, as qemu-user does): it is always ready.
        return (POLLIN | POLLRDNORM) if self.number == 0 else (POLLOUT | POLLWRNORM)

    def ioctl(self, kernel, task, request, argument):
        request &= 0xFFFFFFFF
        if not self.is_tty():
            raise SyscallError(ENOTTY)
        if request == TCGETS:
            # A plausible cooked-mode termios: iflag ICRNL|IXON, oflag OPOST|ONLCR,
            # cflag B38400|CS8|CREAD, lflag ISIG|ICANON|ECHO|ECHOE|ECHOK|IEXTEN...
            task.mm.copy_to_user(argument, struct.pack("<IIIIB19s", 0x0500, 0x0005, 0x00BF, 0x8A3B, 0, bytes(19)))
            return 0
        if request in (TCSETS, TCSETSW, TCSETSF):
            task.mm.copy_from_user(argument, 36)
            return 0
        if request == TIOCGWINSZ:
            task.mm.copy_to_user(argument, struct.pack("<HHHH", 24, 80, 0, 0))
            return 0
        if request in (TIOCGPGRP, TIOCSPGRP, TIOCGSID):
            from emu_x86.kernel.process_groups import tty_job_control_ioctl
            return tty_job_control_ioctl(kernel, task, request, argument)
        raise SyscallError(ENOTTY)

    def stat(self, kernel):
        """Typed like the host fd so stdio buffers as it would natively."""
        mode, rdev = stat.S_IFCHR | 0o620, makedev(136, self.number)
        host_mode = self._host_mode()
        if host_mode is None or stat.S_ISFIFO(host_mode):
            mode, rdev = stat.S_IFIFO | 0o600, 0
        elif stat.S_ISREG(host_mode):
            mode, rdev = stat.S_IFREG | 0o644, 0
        elif stat.S_ISSOCK(host_mode):
            mode, rdev = stat.S_IFSOCK | 0o777, 0
        return stat_struct(0x16, 1 + self.number, mode, kernel, rdev=rdev)

    def describe(self) -> str:
        return "/dev/pts/0" if self.is_tty() else f"pipe:[{1 + self.number}]"


__all__ = ["DEVICES", "HostStream", "open_device", "DEFAULT_POLLMASK"]
