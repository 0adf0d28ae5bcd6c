"""Kernel timers in virtual time (kernel/time/hrtimer.c, reduced).

A ``KernelTimer`` calls its function once the machine's clock passes its
expiry. Timers share the scheduler's heap of timed wake-ups
(``Scheduler.sleepers``), so the same TSC-deadline programming that wakes a
sleeping task fires them: on a busy CPU at its next tick or earlier deadline,
on an idle CPU at the expiry itself. Re-arming or cancelling leaves the old
heap entry in place; it is ignored when it comes up (its time no longer
matches ``expires_cycles``).
"""
from __future__ import annotations

import heapq
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel


class KernelTimer:
    """hrtimer: ``function(vcpu)`` runs on the CPU whose clock reached ``expires_cycles``."""
    __slots__ = ("kernel", "function", "expires_cycles")

    def __init__(self, kernel: "Kernel", function: Callable[["VCpu"], None]) -> None:
        self.kernel = kernel
        self.function = function
        self.expires_cycles: int | None = None

    def start(self, expires_cycles: int, vcpu: "VCpu | None" = None) -> None:
        """hrtimer_start: (re)arm at ``expires_cycles``; the arming CPU reprograms its
        deadline so the expiry is not late by up to a scheduler quantum."""
        from emu_x86.kernel.sched import _timer_sequence
        scheduler = self.kernel.scheduler
        self.expires_cycles = expires_cycles
        heapq.heappush(scheduler.sleepers, (expires_cycles, next(_timer_sequence), self))
        if vcpu is not None and self.kernel.current[vcpu.index] is not None:
            scheduler.arm_tick(vcpu)

    def cancel(self) -> None:
        self.expires_cycles = None

    @property
    def active(self) -> bool:
        return self.expires_cycles is not None

    def expire(self, wake_at: int, vcpu: "VCpu") -> None:
        if self.expires_cycles != wake_at:
            return                   # cancelled or re-armed since this entry was queued
        self.expires_cycles = None
        self.function(vcpu)


def ns_to_cycles(kernel: "Kernel", nanoseconds: int) -> int:
    return nanoseconds * kernel.tsc_hz // 1_000_000_000


def cycles_to_ns(kernel: "Kernel", cycles: int) -> int:
    return cycles * 1_000_000_000 // kernel.tsc_hz


__all__ = ["KernelTimer", "ns_to_cycles", "cycles_to_ns"]
