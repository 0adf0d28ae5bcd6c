"""Clocks and POSIX timers (kernel/time/posix-timers.c, posix-cpu-timers.c,
kernel/time/time.c, kernel/time/hrtimer.c nanosleep), in the machine's virtual time.

Clocks. Every clock reads the vCPU's cycle clock (``Kernel.now_ns``):
REALTIME, REALTIME_COARSE and TAI add the epoch (the TAI offset is 0, as on a
Linux that no NTP daemon has told the offset); MONOTONIC, MONOTONIC_RAW, the
COARSE clocks and BOOTTIME are the clock itself (the machine never suspends);
the CPU-time clocks read it too (the kernel keeps no per-task CPU time). The
vDSO (emu_x86/kernel/vdso/) computes the same values without a system call. Each
call refuses ids as ``clockid_to_kclock`` and the clock's ops do: -EINVAL for
an unknown id (and for the alarm clocks: this machine has no RTC to wake it),
-EOPNOTSUPP from clock_nanosleep for clocks without an nsleep op
(MONOTONIC_RAW, the COARSE clocks) and from timer_create for those without
timers, -EPERM from clock_settime and from clock_adjtime changes (the guest
is unprivileged).

POSIX timers (timer_create ... timer_delete, 222-226): ids per process from 0
up, never reused while the process lives (signal_struct.next_posix_timer_id);
SIGEV_SIGNAL (to the process), SIGEV_THREAD_ID (to one thread of the caller's
group: glibc's SIGEV_THREAD helper), SIGEV_NONE (no notification; gettime
still counts down). An expiry queues one siginfo (SI_TIMER, si_timerid,
si_overrun, si_value); expiries while it is still pending count as overruns,
which the delivered signal reports and timer_getoverrun returns afterwards
(it_overrun_last). Periodic timers are rearmed on the period grid
(hrtimer_forward). Setting or deleting a timer drops its queued signal, as
Linux does since 6.13. Timers go at exec (exit_itimers) and with the process;
fork gives the child none.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EFAULT, EINVAL, EOPNOTSUPP, EPERM, SyscallError
from emu_x86.kernel.sigframe import SigInfo, send_signal, sigbit
from emu_x86.kernel.timer import KernelTimer, cycles_to_ns, ns_to_cycles

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Process, Task

(CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW,
 CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM,
 CLOCK_SGI_CYCLE, CLOCK_TAI) = range(12)
NSEC_PER_SEC = 1_000_000_000
NSEC_PER_USEC = 1000
HRTIMER_RESOLUTION_NS = 1
LOW_RES_NSEC = 4_000_000              # TICK_NSEC at HZ=250: the COARSE clocks' resolution
TAI_OFFSET_NS = 0
TIMER_ABSTIME = 1
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SI_TIMER = -2
SIGRTMAX = 64
DELAYTIMER_MAX = 0x7FFFFFFF           # INT_MAX: the overrun count saturates here
SIGALRM = 14

SYS_gettimeofday, SYS_nanosleep, SYS_time, SYS_adjtimex = 96, 35, 201, 159
SYS_timer_create, SYS_timer_settime, SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_delete = \
    222, 223, 224, 225, 226
SYS_clock_settime, SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_clock_adjtime = \
    227, 228, 229, 230, 305
SYS_settimeofday = 164

# Which clocks have which k_clock operations (posix_clocks[], clock_realtime etc.).
HRES_CLOCKS = frozenset((CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI))
COARSE_CLOCKS = frozenset((CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE))
CPU_CLOCKS = frozenset((CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID))
VALID_CLOCKS = HRES_CLOCKS | COARSE_CLOCKS | CPU_CLOCKS | {CLOCK_MONOTONIC_RAW}
NSLEEP_CLOCKS = HRES_CLOCKS | {CLOCK_PROCESS_CPUTIME_ID}
TIMER_CLOCKS = HRES_CLOCKS | CPU_CLOCKS
REALTIME_BASED = frozenset((CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI))


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def check_clock(kernel: "Kernel", task: "Task", clock_id: int) -> int:
    """clockid_to_kclock: the clock, or -EINVAL. A negative id names another
    process's or thread's CPU clock (CPUCLOCK_PID/PERTHREAD, posix_cpu_clock_get):
    valid when that task exists and the clock type is PROF, VIRT or SCHED."""
    clock_id = signed32(clock_id)
    if clock_id < 0:
        if clock_id & 7 == 7 or clock_id & 3 == 3:
            raise SyscallError(EINVAL)
        pid = ~(clock_id >> 3)
        from emu_x86.kernel.proc.generic import find_task
        if pid != 0 and find_task(kernel, pid) is None:
            raise SyscallError(EINVAL)
        return CLOCK_PROCESS_CPUTIME_ID
    if clock_id not in VALID_CLOCKS:
        raise SyscallError(EINVAL)
    return clock_id


def clock_now_ns(kernel: "Kernel", vcpu, clock_id: int) -> int:
    """The clock's value in ns (as the vDSO computes it)."""
    now = kernel.now_ns(vcpu)
    if clock_id in REALTIME_BASED:
        from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
        now += REALTIME_EPOCH_NS + (TAI_OFFSET_NS if clock_id == CLOCK_TAI else 0)
    return now


def timespec_bytes(ns: int) -> bytes:
    return struct.pack("<qq", ns // NSEC_PER_SEC, ns % NSEC_PER_SEC)


def read_timespec(task: "Task", address: int) -> int:
    """get_timespec64 + timespec64_valid: ns, or -EFAULT / -EINVAL."""
    seconds, nanoseconds = struct.unpack("<qq", task.mm.copy_from_user(address, 16))
    if seconds < 0 or not 0 <= nanoseconds < NSEC_PER_SEC:
        raise SyscallError(EINVAL)
    return seconds * NSEC_PER_SEC + nanoseconds


# ---- clocks ---------------------------------------------------------------------------------

def sys_clock_gettime(kernel, vcpu, task, clock_id, tp, *_):
    clock = check_clock(kernel, task, clock_id)
    task.mm.copy_to_user(tp, timespec_bytes(clock_now_ns(kernel, vcpu, clock)))
    return 0


def sys_clock_getres(kernel, vcpu, task, clock_id, res, *_):
    """clock_getres(2): the clock first, then the copy (a NULL ``res`` only checks)."""
    clock = check_clock(kernel, task, clock_id)
    if res:
        resolution = LOW_RES_NSEC if clock in COARSE_CLOCKS else HRTIMER_RESOLUTION_NS
        task.mm.copy_to_user(res, timespec_bytes(resolution))
    return 0


def sys_clock_settime(kernel, vcpu, task, clock_id, tp, *_):
    """Setting needs CAP_SYS_TIME (REALTIME) or is not supported at all (-EINVAL for the others)."""
    clock = check_clock(kernel, task, clock_id)
    if clock != CLOCK_REALTIME:
        raise SyscallError(EINVAL)
    read_timespec(task, tp)
    raise SyscallError(EPERM)


def sys_settimeofday(kernel, vcpu, task, tv, tz, *_):
    if tv:
        seconds, microseconds = struct.unpack("<qq", task.mm.copy_from_user(tv, 16))
        if not 0 <= microseconds < 1_000_000:
            raise SyscallError(EINVAL)
    raise SyscallError(EPERM)


# struct __kernel_timex (include/uapi/linux/timex.h): 208 bytes.
TIMEX_FORMAT = "<I4xqqqqi4xqqq16sqqqi4xqqqqqi44x"
TIMEX_BYTES = struct.calcsize(TIMEX_FORMAT)
STA_UNSYNC = 0x0040
TIME_ERROR = 5
NTP_PHASE_LIMIT_US = 16_000_000
MAXFREQ_SCALED = 32768000             # 500 ppm << 16: ``tolerance``
TICK_USEC = 10_000                    # USER_HZ 100


def do_adjtimex(kernel, vcpu, task, address: int) -> int:
    """do_adjtimex as an unprivileged process sees it: reading (modes 0) fills the
    NTP state of a clock no NTP daemon disciplines and returns TIME_ERROR;
    any change needs CAP_SYS_TIME (-EPERM)."""
    raw = task.mm.copy_from_user(address, TIMEX_BYTES)
    (modes,) = struct.unpack_from("<I", raw)
    if modes:
        raise SyscallError(EPERM)
    now = clock_now_ns(kernel, vcpu, CLOCK_REALTIME)
    time = struct.pack("<qq", now // NSEC_PER_SEC, now % NSEC_PER_SEC // NSEC_PER_USEC)
    task.mm.copy_to_user(address, struct.pack(
        TIMEX_FORMAT, 0, 0, 0, NTP_PHASE_LIMIT_US, NTP_PHASE_LIMIT_US, STA_UNSYNC, 2, 1, MAXFREQ_SCALED, time,
        TICK_USEC, 0, 0, 0, 0, 0, 0, 0, 0, TAI_OFFSET_NS // NSEC_PER_SEC))
    return TIME_ERROR


def sys_adjtimex(kernel, vcpu, task, address, *_):
    return do_adjtimex(kernel, vcpu, task, address)


def sys_clock_adjtime(kernel, vcpu, task, clock_id, address, *_):
    """Only CLOCK_REALTIME has clock_adj (posix_clock_realtime_adj); other valid clocks -EOPNOTSUPP."""
    clock = check_clock(kernel, task, clock_id)
    if clock != CLOCK_REALTIME or signed32(clock_id) < 0:
        raise SyscallError(EOPNOTSUPP)
    return do_adjtimex(kernel, vcpu, task, address)


def sys_gettimeofday(kernel, vcpu, task, tv, tz, *_):
    now = clock_now_ns(kernel, vcpu, CLOCK_REALTIME)
    if tv:
        task.mm.copy_to_user(tv, struct.pack("<qq", now // NSEC_PER_SEC, now % NSEC_PER_SEC // NSEC_PER_USEC))
    if tz:
        task.mm.copy_to_user(tz, struct.pack("<ii", 0, 0))
    return 0


def sys_time(kernel, vcpu, task, tloc, *_):
    seconds = clock_now_ns(kernel, vcpu, CLOCK_REALTIME) // NSEC_PER_SEC
    if tloc:
        task.mm.copy_to_user(tloc, struct.pack("<q", seconds))
    return seconds


def _sleep(kernel, vcpu, task, duration_ns: int, rmtp: int = 0) -> None:
    """Block the task until ``duration_ns`` of guest time has passed (hrtimer sleep);
    a signal that ends it early writes the time left to ``rmtp`` if not NULL."""
    vcpu.write_register("rax", 0)
    task.timeout_result = 0
    wake_cycles = vcpu.cycles + max(1, ns_to_cycles(kernel, duration_ns))
    task.nanosleep_rmtp = (rmtp, wake_cycles) if rmtp else None
    kernel.scheduler.block_current(vcpu, wake_cycles)


def nanosleep_interrupted(kernel, task, now_cycles: int) -> None:
    """do_nanosleep ended by a signal: nanosleep_copyout of the time left to
    the caller's rmtp (relative sleeps only; a fault there is not reported)."""
    rmtp, wake_cycles = task.nanosleep_rmtp
    task.nanosleep_rmtp = None
    if task.wake_cycles != wake_cycles:
        return                       # that sleep ended; this one is another call's
    left_ns = cycles_to_ns(kernel, max(0, wake_cycles - now_cycles))
    try:
        task.mm.copy_to_user(rmtp, struct.pack("<qq", left_ns // NSEC_PER_SEC, left_ns % NSEC_PER_SEC))
    except SyscallError:
        pass


def sys_nanosleep(kernel, vcpu, task, req, rem, *_):
    _sleep(kernel, vcpu, task, read_timespec(task, req), rem)
    return None


def sys_clock_nanosleep(kernel, vcpu, task, clock_id, flags, req, rem, *_):
    """clock_nanosleep(2): the clock (-EINVAL unknown or THREAD_CPUTIME, -EOPNOTSUPP
    without nsleep), then the request (-EFAULT, -EINVAL)."""
    raw_id = signed32(clock_id)
    if raw_id == CLOCK_THREAD_CPUTIME_ID:
        raise SyscallError(EINVAL)
    clock = check_clock(kernel, task, clock_id)
    if clock not in NSLEEP_CLOCKS:
        raise SyscallError(EOPNOTSUPP)
    duration = read_timespec(task, req)
    if flags & TIMER_ABSTIME:
        duration = max(0, duration - clock_now_ns(kernel, vcpu, clock))
        rem = 0                      # absolute sleeps leave rmtp alone
    _sleep(kernel, vcpu, task, duration, rem)
    return None


# ---- POSIX timers ---------------------------------------------------------------------------

class TimerSigInfo(SigInfo):
    """The siginfo a POSIX timer queues (SI_TIMER): si_timerid, si_overrun, si_value.
    The overrun is read when the frame is built, as posixtimer_rearm does at dequeue."""

    def __init__(self, timer: "PosixTimer") -> None:
        super().__init__(timer.signo, SI_TIMER)
        self.timer = timer

    def pack(self) -> bytes:
        timer = self.timer
        timer.overrun_last, timer.overrun = timer.overrun, 0
        head = struct.pack("<iii4x", self.signo, 0, self.code)
        return (head + struct.pack("<iiQ", timer.timer_id, timer.overrun_last, timer.value)).ljust(128, b"\0")


class PosixTimer:
    """struct k_itimer: the clock, the notification, the hrtimer and the counts."""

    def __init__(self, kernel: "Kernel", process: "Process", timer_id: int, clock: int, notify: int,
                 signo: int, value: int, target: "Task | None") -> None:
        self.kernel = kernel
        self.process = process
        self.timer_id = timer_id
        self.clock = clock
        self.notify = notify
        self.signo = signo
        self.value = value
        self.target = target              # SIGEV_THREAD_ID: the thread; else None (the process)
        self.interval_cycles = 0
        self.overrun = 0
        self.overrun_last = 0
        self.timer = KernelTimer(kernel, self._expired)
        self.pending: TimerSigInfo | None = None
        self.last_expiry_cycles = 0

    def drop_pending_signal(self) -> None:
        """A queued signal of a timer that was set again or deleted is stale: it is
        dropped (Linux 6.13+ posixtimer_deliver_signal checks the timer's signal
        sequence; this removes it at once)."""
        if self.pending is not None:
            for task in self.process.tasks:
                task.pending_signals[:] = [info for info in task.pending_signals if info is not self.pending]
            self.pending = None

    def arm(self, expires_cycles: int | None, interval_cycles: int, vcpu) -> None:
        self.drop_pending_signal()
        self.interval_cycles = interval_cycles
        self.overrun = 0
        if expires_cycles is None:
            self.timer.cancel()
        else:
            self.last_expiry_cycles = expires_cycles
            self.timer.start(expires_cycles, vcpu)

    def _expired(self, vcpu) -> None:
        """posix_timer_fn: queue the signal (or count an overrun), rearm a periodic timer."""
        process = self.process
        if process.exit_state is not None or getattr(process, "posix_timers", {}).get(self.timer_id) is not self:
            return
        expired_at = self.last_expiry_cycles
        if self.interval_cycles:
            # hrtimer_forward: the next expiry on the period grid; periods passed meanwhile are overruns.
            missed = max(0, (vcpu.cycles - expired_at) // self.interval_cycles)
            self.last_expiry_cycles = expired_at + (missed + 1) * self.interval_cycles
            self.timer.start(self.last_expiry_cycles)
            self.overrun = min(DELAYTIMER_MAX, self.overrun + missed)
        if self.notify == SIGEV_NONE:
            return
        target = self._signal_target()
        if target is None:
            return
        if self.pending is not None and any(info is self.pending for info in target.pending_signals):
            self.overrun = min(DELAYTIMER_MAX, self.overrun + 1)
            return
        self.pending = TimerSigInfo(self)
        send_timer_signal(self.kernel, vcpu, target, self.pending)

    def _signal_target(self) -> "Task | None":
        from emu_x86.kernel.task import TASK_EXITED
        if self.target is not None:
            return self.target if self.target.state != TASK_EXITED else None
        live = [task for task in self.process.tasks if task.state != TASK_EXITED]
        if not live:
            return None
        # complete_signal: a thread that does not block the signal, else the first.
        return next((task for task in live if not task.signal_mask & sigbit(self.signo)), live[0])


def send_timer_signal(kernel: "Kernel", vcpu, target: "Task", info: SigInfo) -> None:
    """Queue a timer's signal. The expiry runs in the timer interrupt: when it
    interrupted the target itself, the signal is delivered on this return to user
    mode (exit_to_user_mode_loop), as kick_process's IPI does on another CPU."""
    from emu_x86.kernel.sigframe import deliver_pending_signals
    from emu_x86.kernel.task import TASK_RUNNING
    send_signal(kernel, vcpu, target, info)
    if kernel.current[vcpu.index] is target and target.state == TASK_RUNNING:
        deliver_pending_signals(kernel, vcpu, target)


def timers_of(process: "Process") -> dict:
    return process.__dict__.setdefault("posix_timers", {})


def exit_itimers(process: "Process") -> None:
    """exit_itimers: every POSIX timer goes (exec, exit)."""
    for timer in timers_of(process).values():
        timer.timer.cancel()
        timer.drop_pending_signal()
    timers_of(process).clear()


def sys_timer_create(kernel, vcpu, task, clock_id, event_address, id_address, *_):
    raw_id = signed32(clock_id)
    clock = check_clock(kernel, task, clock_id)
    if raw_id >= 0 and clock not in TIMER_CLOCKS:
        raise SyscallError(EOPNOTSUPP)
    process = task.process
    target = None
    if event_address:
        raw = task.mm.copy_from_user(event_address, 64)
        value, signo, notify, thread_id = struct.unpack_from("<Qiii", raw)
        # good_sigevent
        if notify == SIGEV_THREAD_ID:
            target = next((t for t in process.tasks if t.tid == thread_id and t.state != "exited"), None)
            if target is None:
                raise SyscallError(EINVAL)
        if notify in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID):
            if not 0 < signo <= SIGRTMAX:
                raise SyscallError(EINVAL)
        elif notify != SIGEV_NONE:
            raise SyscallError(EINVAL)
    else:
        notify, signo, value = SIGEV_SIGNAL, SIGALRM, None
    timer_id = process.__dict__.get("next_posix_timer_id", 0)
    process.next_posix_timer_id = (timer_id + 1) & 0x7FFFFFFF
    timer = PosixTimer(kernel, process, timer_id, clock, notify, signo, timer_id if value is None else value,
                       target)
    try:
        task.mm.copy_to_user(id_address, struct.pack("<i", timer_id))
    except SyscallError:
        raise SyscallError(EFAULT) from None
    timers_of(process)[timer_id] = timer
    return 0


def _find_timer(task, timer_id: int) -> PosixTimer:
    timer = timers_of(task.process).get(signed32(timer_id))
    if timer is None:
        raise SyscallError(EINVAL)
    return timer


def _itimerspec(interval_ns: int, value_ns: int) -> bytes:
    return timespec_bytes(interval_ns) + timespec_bytes(value_ns)


def _current(kernel, vcpu, timer: PosixTimer) -> bytes:
    """common_timer_get: the interval and the time to the next expiry (0 when disarmed)."""
    remaining_ns = 0
    if timer.timer.active:
        remaining_ns = max(1, cycles_to_ns(kernel, timer.timer.expires_cycles - vcpu.cycles))
    return _itimerspec(cycles_to_ns(kernel, timer.interval_cycles), remaining_ns)


def sys_timer_settime(kernel, vcpu, task, timer_id, flags, new_address, old_address, *_):
    if not new_address:
        raise SyscallError(EINVAL)
    raw = task.mm.copy_from_user(new_address, 32)
    interval_s, interval_ns, value_s, value_ns = struct.unpack("<qqqq", raw)
    for seconds, nanoseconds in ((interval_s, interval_ns), (value_s, value_ns)):
        if seconds < 0 or not 0 <= nanoseconds < NSEC_PER_SEC:
            raise SyscallError(EINVAL)
    timer = _find_timer(task, timer_id)
    if old_address:
        task.mm.copy_to_user(old_address, _current(kernel, vcpu, timer))
    interval = interval_s * NSEC_PER_SEC + interval_ns
    value = value_s * NSEC_PER_SEC + value_ns
    if value == 0:
        timer.arm(None, 0, vcpu)
        return 0
    if flags & TIMER_ABSTIME:
        value = max(0, value - clock_now_ns(kernel, vcpu, timer.clock))
    expires = vcpu.cycles + max(1, ns_to_cycles(kernel, value))
    timer.arm(expires, max(1, ns_to_cycles(kernel, interval)) if interval else 0, vcpu)
    return 0


def sys_timer_gettime(kernel, vcpu, task, timer_id, setting_address, *_):
    timer = _find_timer(task, timer_id)
    task.mm.copy_to_user(setting_address, _current(kernel, vcpu, timer))
    return 0


def sys_timer_getoverrun(kernel, vcpu, task, timer_id, *_):
    return _find_timer(task, timer_id).overrun_last


def sys_timer_delete(kernel, vcpu, task, timer_id, *_):
    timer = _find_timer(task, timer_id)
    timer.timer.cancel()
    timer.drop_pending_signal()
    del timers_of(task.process)[timer.timer_id]
    return 0


SYSCALLS = {
    SYS_gettimeofday: sys_gettimeofday,
    SYS_settimeofday: sys_settimeofday,
    SYS_time: sys_time,
    SYS_nanosleep: sys_nanosleep,
    SYS_adjtimex: sys_adjtimex,
    SYS_clock_gettime: sys_clock_gettime,
    SYS_clock_getres: sys_clock_getres,
    SYS_clock_settime: sys_clock_settime,
    SYS_clock_nanosleep: sys_clock_nanosleep,
    SYS_clock_adjtime: sys_clock_adjtime,
    SYS_timer_create: sys_timer_create,
    SYS_timer_settime: sys_timer_settime,
    SYS_timer_gettime: sys_timer_gettime,
    SYS_timer_getoverrun: sys_timer_getoverrun,
    SYS_timer_delete: sys_timer_delete,
}

__all__ = ["SYSCALLS", "exit_itimers", "clock_now_ns", "check_clock"]
