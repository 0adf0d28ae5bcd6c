"""The limits of one `emu run`: --timeout (wall clock) and the host-memory ceiling.

Both are armed before the program is read, assembled or loaded (DESIGN.md:
every limit before the load), so no input, however built, outlives them. One
interval timer serves both: its SIGALRM handler raises in the main thread
wherever the run is -- the loader, the assembler, the kernel -- and it re-fires
every 100 ms until the run unwinds, because a raise inside a callback that
swallows errors (the C hot path's) would otherwise be lost.

The host-memory ceiling is on the emulator's own resident set (the peak
resident set of its address space, VmHWM in /proc/self/status; not ru_maxrss,
which Linux carries over execve from the parent's address space -- exec_mmap()
folds the old mm's high-water mark into signal->maxrss -- so an `emu` started
by a large process, e.g. through vfork from a pytest worker, would start
"over" a ceiling it never reached),
by default the guest's memory plus HOST_MEMORY_HEADROOM_BYTES: the guest can
touch all of its memory, and everything else the emulator keeps (translated
code, page tables in Python, the kernel's objects) must fit in the headroom.
Exceeding it ends the run as the out-of-memory contract does (exit 123).

A raise that lands inside a ctypes callback (Unicorn's Python hooks catch
Exception, not these BaseExceptions) cannot propagate; CPython reports it
through sys.unraisablehook as "Exception ignored ...", with a traceback on
stderr. While the limits are armed that hook drops these two exceptions (the
handler fires again 100 ms later, outside the callback) and passes anything
else on, so a limit never prints a traceback.

Ctrl-C (SIGINT) goes the same way: Python's KeyboardInterrupt, raised where
the signal lands, was lost when that was a hook (early in a run nearly every
new block calls into Python), and the run went on; measured: a SIGINT 0.3 s
into a spinning guest never stopped it. While armed, SIGINT kicks the
machine and raises KeyboardInterrupt, and the 100 ms timer raises it again
until the run has unwound.
"""
from __future__ import annotations

import resource
import signal
import sys
import time

from emu_x86.emucli import interrupts

HOST_MEMORY_HEADROOM_BYTES = 512 << 20
REPEAT_SECONDS = 0.1
FIRST_CHECK_SECONDS = 0.001


class WallClockTimeout(BaseException):
    """Raised in the main thread when --timeout expires. A BaseException, as
    KeyboardInterrupt is, so no ``except Exception`` on the way (the assembler's
    diagnostics, a loader's) can turn it into another error."""


class HostMemoryExceeded(BaseException):
    """Raised in the main thread when the emulator's resident set passes the ceiling."""


# Pages a forked child (emu server's worker, the guest-test fork server's
# child, the fuzz driver's case) found resident when it began: Linux counts
# them in its resident set and starts its high-water mark from them, but
# they are the parent's. note_fork() sets it; the ceiling is over the rest.
inherited_resident_bytes = 0


def _status_bytes(field: bytes) -> int | None:
    """A size from /proc/self/status (``VmRSS``, ``VmHWM``; reported in kB), None when unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(field + b":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int:
    """This process's resident set now (VmRSS), 0 when unknown."""
    return _status_bytes(b"VmRSS") or 0


def note_fork() -> None:
    """In a forked child, before it runs: what is resident now is the parent's."""
    global inherited_resident_bytes
    inherited_resident_bytes = resident_bytes()


def peak_resident_bytes() -> int:
    """The high-water resident set of this process's own address space, less
    what a forked child inherited (note_fork)."""
    peak = _status_bytes(b"VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux reports KiB
    return peak - inherited_resident_bytes


class RunLimits:
    """Context manager arming --timeout and the host-memory ceiling (either may be None)."""

    def __init__(self, timeout_seconds: float | None, host_memory_bytes: int | None, machine=None):
        self.timeout_seconds = timeout_seconds
        self.host_memory_bytes = host_memory_bytes
        self.expired = False                 # --timeout fired
        self.memory_exceeded = False         # the ceiling was passed
        self.interrupted = False             # SIGINT arrived
        self._previous_sigint = None
        self.active = False
        self._previous_handler = None
        self._started = 0.0
        # SIGALRM's Python handler runs only between bytecodes, and guest code can
        # stay inside Unicorn (translated blocks, C hooks) for long: once the time
        # is up the machine is also kicked out of Unicorn (Machine.kick_after).
        self._machine = machine
        self._done = None       # a threading.Event with --timeout (Machine.kick_after)
        self._previous_unraisable_hook = None

    @property
    def armed(self) -> bool:
        return self.timeout_seconds is not None or self.host_memory_bytes is not None

    def _interrupt(self, signum, frame):
        interrupts.received = True
        if not self.active:
            raise KeyboardInterrupt
        self.interrupted = True
        if self._machine is not None:
            self._machine.kick()
        raise KeyboardInterrupt

    def _fire(self, signum, frame):
        if not self.active:
            return
        if self.interrupted or interrupts.received:      # a first KeyboardInterrupt may have been lost
            self._interrupt(signum, frame)
        if self.timeout_seconds is not None and time.monotonic() - self._started >= self.timeout_seconds:
            self.expired = True
            raise WallClockTimeout()
        if self.host_memory_bytes is not None and peak_resident_bytes() > self.host_memory_bytes:
            self.memory_exceeded = True
            if self._machine is not None:
                self._machine.kick()
            raise HostMemoryExceeded()

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, (WallClockTimeout, HostMemoryExceeded, KeyboardInterrupt)):
            return
        self._previous_unraisable_hook(unraisable)

    def __enter__(self):
        if not self.armed:
            return self
        self._previous_unraisable_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._started = time.monotonic()
        self._previous_handler = signal.signal(signal.SIGALRM, self._fire)
        if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, interrupts.on_sigint):  # not when ignored
            self._previous_sigint = signal.signal(signal.SIGINT, self._interrupt)
        self.active = True
        # The ceiling is checked at once (the emulator may be over it already), then every 100 ms.
        first = FIRST_CHECK_SECONDS if self.host_memory_bytes is not None else self.timeout_seconds
        if self.timeout_seconds is not None:
            first = min(first, self.timeout_seconds)
        signal.setitimer(signal.ITIMER_REAL, first, REPEAT_SECONDS)
        if self._machine is not None and self.timeout_seconds is not None:
            import threading    # only with --timeout: not on every run's start-up path
            self._done = threading.Event()
            self._machine.kick_after(self.timeout_seconds, self._done, REPEAT_SECONDS)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.active = False
        # A peak reached between two checks (or in a run shorter than one period) still counts.
        if self.host_memory_bytes is not None and peak_resident_bytes() > self.host_memory_bytes:
            self.memory_exceeded = True
        if self._done is not None:
            self._done.set()
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_handler)
            if self._previous_sigint is not None:
                signal.signal(signal.SIGINT, self._previous_sigint)
                self._previous_sigint = None
            sys.unraisablehook = self._previous_unraisable_hook
        # The run is over (ended by the interrupt, or before it could be): a
        # process that runs again (a test, an embedding) starts afresh.
        interrupts.received = False
        # Fired between run() and here: still a timeout / still over the ceiling.
        return exc_type in (WallClockTimeout, HostMemoryExceeded)
