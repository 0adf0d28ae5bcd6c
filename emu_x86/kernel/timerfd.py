"""timerfd_create, timerfd_settime, timerfd_gettime (fs/timerfd.c).

A timer delivered through an fd, in the machine's virtual time: read returns
the number of expirations since the last read (8 bytes; -EINVAL for a
smaller buffer) and blocks while there were none. A periodic timer that fires
late counts every period it missed (hrtimer_forward). Setting the timer
resets the count; an it_value of zero disarms it.
"""
from __future__ import annotations

import stat
import struct

from emu_x86.kernel.errno import EINVAL, EPERM, SyscallError
from emu_x86.kernel.file import (
    ANON_INODE_DEV, O_CLOEXEC, O_NONBLOCK, O_RDWR, POLLIN, POLLRDNORM, File, WouldBlock, fdget, files_of,
    nofile_limit, stat_struct,
)
from emu_x86.kernel.timer import KernelTimer, cycles_to_ns, ns_to_cycles

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 0, 1, 7, 8, 9
TFD_CLOEXEC, TFD_NONBLOCK = O_CLOEXEC, O_NONBLOCK
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TFD_IOC_SET_TICKS = 0x40085400
NSEC_PER_SEC = 1_000_000_000
SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime = 283, 286, 287


class TimerFd(File):
    def __init__(self, kernel, clock_id: int, flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.clock_id = clock_id
        self.ticks = 0
        self.interval_cycles = 0
        self.timer = KernelTimer(kernel, self._expired)
        self.kernel = kernel
        self._last_expiry = 0

    def _expired(self, vcpu) -> None:
        """timerfd_tmrproc: count the expiry (and every missed period) and wake readers."""
        expired_at = self._last_expiry
        if self.interval_cycles:
            missed = (vcpu.cycles - expired_at) // self.interval_cycles
            self.ticks += 1 + missed
            self._last_expiry = expired_at + (1 + missed) * self.interval_cycles
            self.timer.start(self._last_expiry)
        else:
            self.ticks += 1
        self.wait.wake_up(self.kernel, vcpu)

    def arm(self, expires_cycles: int | None, interval_cycles: int, vcpu) -> None:
        self.ticks = 0
        self.interval_cycles = interval_cycles
        if expires_cycles is None:
            self.timer.cancel()
            return
        self._last_expiry = expires_cycles
        self.timer.start(expires_cycles, vcpu)

    def read_bytes(self, kernel, task, max_bytes):
        if max_bytes < 8:
            raise SyscallError(EINVAL)
        if self.ticks == 0:
            raise WouldBlock()
        ticks, self.ticks = self.ticks, 0
        return struct.pack("<Q", ticks)

    def poll(self, kernel):
        return POLLIN | POLLRDNORM if self.ticks else 0

    def ioctl(self, kernel, task, request, argument):
        if request & 0xFFFFFFFF == TFD_IOC_SET_TICKS:
            (ticks,) = struct.unpack("<Q", task.mm.copy_from_user(argument, 8))
            if ticks == 0:
                raise SyscallError(EINVAL)
            self.ticks = ticks
            self.wait.wake_up(kernel, kernel.this_cpu)
            return 0
        return super().ioctl(kernel, task, request, argument)

    def stat(self, kernel):
        return stat_struct(ANON_INODE_DEV, 1, stat.S_IFREG | 0o600, kernel, blksize=4096)

    def release(self, kernel) -> None:
        self.timer.cancel()

    def describe(self) -> str:
        return "anon_inode:[timerfd]"


def _clock_now_ns(kernel, vcpu, clock_id: int) -> int:
    from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
    now = kernel.now_ns(vcpu)
    return now + REALTIME_EPOCH_NS if clock_id in (CLOCK_REALTIME, CLOCK_REALTIME_ALARM) else now


def _read_itimerspec(task, address: int) -> tuple[int, int]:
    interval_s, interval_ns, value_s, value_ns = struct.unpack("<qqqq", task.mm.copy_from_user(address, 32))
    for seconds, nanoseconds in ((interval_s, interval_ns), (value_s, value_ns)):
        if seconds < 0 or not 0 <= nanoseconds < NSEC_PER_SEC:
            raise SyscallError(EINVAL)
    return interval_s * NSEC_PER_SEC + interval_ns, value_s * NSEC_PER_SEC + value_ns


def _itimerspec(interval_ns: int, value_ns: int) -> bytes:
    return struct.pack("<qqqq", interval_ns // NSEC_PER_SEC, interval_ns % NSEC_PER_SEC,
                       value_ns // NSEC_PER_SEC, value_ns % NSEC_PER_SEC)


def _timerfd(task, fd: int) -> TimerFd:
    file = fdget(task, fd)
    if not isinstance(file, TimerFd):
        raise SyscallError(EINVAL)
    return file


def _current_setting(kernel, vcpu, timer: TimerFd) -> bytes:
    remaining_ns = 0
    if timer.timer.active:
        remaining_ns = max(1, cycles_to_ns(kernel, timer.timer.expires_cycles - vcpu.cycles))
    return _itimerspec(cycles_to_ns(kernel, timer.interval_cycles), remaining_ns)


def sys_timerfd_create(kernel, vcpu, task, clock_id, flags, *_):
    clock_id &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK) or clock_id not in (
            CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM):
        raise SyscallError(EINVAL)
    if clock_id in (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM):
        raise SyscallError(EPERM)                # CAP_WAKE_ALARM
    return files_of(task).install(TimerFd(kernel, clock_id, flags), cloexec=bool(flags & TFD_CLOEXEC),
                                  limit=nofile_limit(task))


def sys_timerfd_settime(kernel, vcpu, task, fd, flags, new_address, old_address, *_):
    flags &= 0xFFFFFFFF
    interval_ns, value_ns = _read_itimerspec(task, new_address)
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(EINVAL)
    timer = _timerfd(task, fd)
    if old_address:
        task.mm.copy_to_user(old_address, _current_setting(kernel, vcpu, timer))
    if value_ns == 0:
        timer.arm(None, 0, vcpu)
        return 0
    if flags & TFD_TIMER_ABSTIME:
        delay_ns = max(0, value_ns - _clock_now_ns(kernel, vcpu, timer.clock_id))
    else:
        delay_ns = value_ns
    interval_cycles = max(1, ns_to_cycles(kernel, interval_ns)) if interval_ns else 0
    timer.arm(vcpu.cycles + max(1, ns_to_cycles(kernel, delay_ns)), interval_cycles, vcpu)
    return 0


def sys_timerfd_gettime(kernel, vcpu, task, fd, current_address, *_):
    timer = _timerfd(task, fd)
    task.mm.copy_to_user(current_address, _current_setting(kernel, vcpu, timer))
    return 0


SYSCALLS = {
    SYS_timerfd_create: sys_timerfd_create,
    SYS_timerfd_settime: sys_timerfd_settime,
    SYS_timerfd_gettime: sys_timerfd_gettime,
}
