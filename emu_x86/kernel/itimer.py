"""Interval timers and alarm (kernel/time/itimer.c, kernel/time/alarm via sys_alarm).

ITIMER_REAL counts the machine's virtual time and sends SIGALRM (SI_KERNEL,
as kill_pid_info with SEND_SIG_PRIV does) to the process at each expiry;
alarm(2) is ITIMER_REAL without an interval, answering the seconds that were
left rounded to the nearest second (at least 1 while armed). ITIMER_VIRTUAL
and ITIMER_PROF send SIGVTALRM and SIGPROF; they should count the process's
user (and system) CPU time, which this kernel does not account per process,
so they count the machine's clock as well -- the same thing for a process that
computes without sleeping, and early for one that sleeps. Times are
microseconds at the interface (struct itimerval), nanoseconds inside.

Itimers survive exec and are not inherited by fork (a new Process has none).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINVAL, SyscallError
from emu_x86.kernel.posix_timers import send_timer_signal
from emu_x86.kernel.sigframe import SigInfo, sigbit
from emu_x86.kernel.signals import SI_KERNEL, SIGALRM, SIGPROF, SIGVTALRM
from emu_x86.kernel.timer import KernelTimer, cycles_to_ns, ns_to_cycles

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.task import Process

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
SIGNAL_OF = {ITIMER_REAL: SIGALRM, ITIMER_VIRTUAL: SIGVTALRM, ITIMER_PROF: SIGPROF}
NSEC_PER_USEC = 1000
USEC_PER_SEC = 1_000_000
SYS_getitimer, SYS_alarm, SYS_setitimer = 36, 37, 38


class IntervalTimer:
    """One of a process's three itimers (signal_struct.real_timer / it[]):
    a KernelTimer, the period, and the last expiry the period counts from."""

    def __init__(self, kernel, process: "Process", which: int) -> None:
        self.kernel = kernel
        self.process = process
        self.signo = SIGNAL_OF[which]
        self.interval_cycles = 0
        self.expiry_cycles = 0
        self.timer = KernelTimer(kernel, self._expired)

    def arm(self, value_ns: int, interval_ns: int, vcpu) -> None:
        self.interval_cycles = max(1, ns_to_cycles(self.kernel, interval_ns)) if interval_ns else 0
        if value_ns == 0:
            self.timer.cancel()
            return
        self.expiry_cycles = vcpu.cycles + max(1, ns_to_cycles(self.kernel, value_ns))
        self.timer.start(self.expiry_cycles, vcpu)

    def remaining_ns(self, vcpu) -> int:
        """itimer_get_remtime: the time left, at least 1 µs while armed (an expiry due but not yet run)."""
        if not self.timer.active:
            return 0
        left = cycles_to_ns(self.kernel, self.timer.expires_cycles - vcpu.cycles)
        return left if left > 0 else NSEC_PER_USEC

    def _expired(self, vcpu) -> None:
        """it_real_fn: signal the process, rearm on the period grid."""
        from emu_x86.kernel.task import TASK_EXITED
        process = self.process
        if process.exit_state is not None:
            return
        if self.interval_cycles:
            missed = max(0, (vcpu.cycles - self.expiry_cycles) // self.interval_cycles)
            self.expiry_cycles += (missed + 1) * self.interval_cycles
            self.timer.start(self.expiry_cycles)
        live = [task for task in process.tasks if task.state != TASK_EXITED]
        if live:
            target = next((task for task in live if not task.signal_mask & sigbit(self.signo)), live[0])
            send_timer_signal(self.kernel, vcpu, target, SigInfo(self.signo, SI_KERNEL))


def itimers_of(kernel, process: "Process") -> dict[int, IntervalTimer]:
    timers = process.__dict__.get("itimers")
    if timers is None:
        timers = process.itimers = {which: IntervalTimer(kernel, process, which) for which in SIGNAL_OF}
    return timers


def _itimerval(interval_ns: int, value_ns: int) -> bytes:
    """ns_to_kernel_old_timeval of each (microseconds truncated)."""
    def timeval(ns: int) -> bytes:
        return struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000 // NSEC_PER_USEC)
    return timeval(interval_ns) + timeval(value_ns)


def _current(kernel, vcpu, timer: IntervalTimer) -> bytes:
    return _itimerval(cycles_to_ns(kernel, timer.interval_cycles), timer.remaining_ns(vcpu))


def sys_getitimer(kernel, vcpu, task, which, value_address, *_):
    which = which & 0xFFFFFFFF
    if which not in SIGNAL_OF:
        raise SyscallError(EINVAL)
    task.mm.copy_to_user(value_address, _current(kernel, vcpu, itimers_of(kernel, task.process)[which]))
    return 0


def _read_timeval(raw: bytes, offset: int) -> int:
    seconds, microseconds = struct.unpack_from("<qq", raw, offset)
    if seconds < 0 or not 0 <= microseconds < USEC_PER_SEC:
        raise SyscallError(EINVAL)
    return seconds * 1_000_000_000 + microseconds * NSEC_PER_USEC


def sys_setitimer(kernel, vcpu, task, which, new_address, old_address, *_):
    """setitimer(2): a NULL new value disarms (as Linux has done since 2.6 with a warning)."""
    which = which & 0xFFFFFFFF
    interval_ns = value_ns = 0
    if new_address:
        raw = task.mm.copy_from_user(new_address, 32)
        interval_ns, value_ns = _read_timeval(raw, 0), _read_timeval(raw, 16)
    if which not in SIGNAL_OF:
        raise SyscallError(EINVAL)
    timer = itimers_of(kernel, task.process)[which]
    old = _current(kernel, vcpu, timer)
    timer.arm(value_ns, interval_ns, vcpu)
    if old_address:
        task.mm.copy_to_user(old_address, old)
    return 0


def sys_alarm(kernel, vcpu, task, seconds, *_):
    """alarm(2): ITIMER_REAL for ``seconds`` (0 cancels); the old remainder in whole
    seconds, rounded to nearest, and 1 for less than a second left (alarm_setitimer)."""
    seconds = seconds & 0xFFFFFFFF
    timer = itimers_of(kernel, task.process)[ITIMER_REAL]
    left_ns = timer.remaining_ns(vcpu)
    timer.arm(seconds * 1_000_000_000, 0, vcpu)
    left_s, left_us = left_ns // 1_000_000_000, left_ns % 1_000_000_000 // NSEC_PER_USEC
    if (left_s == 0 and left_us) or left_us >= 500_000:
        left_s += 1
    return left_s


SYSCALLS = {
    SYS_getitimer: sys_getitimer,
    SYS_setitimer: sys_setitimer,
    SYS_alarm: sys_alarm,
}

__all__ = ["SYSCALLS", "itimers_of"]
