"""Local APIC in x2APIC mode: IPIs, EOI and the timer, in virtual time (SDM Vol. 3A ch. 11).

Each vCPU has a ``LocalApic``. Writing the ICR MSR sends a fixed-vector IPI
that arrives at ``send time + ipi_latency`` (profile) on each destination;
the machine delivers it at the target's first instruction boundary at or
after arrival, to the kernel's ``handle_interrupt``. Because every IPI takes
at least ``ipi_latency`` cycles to arrive, the scheduler never lets a vCPU
run more than that far ahead of the slowest runnable one (conservative
discrete-event simulation with the IPI latency as lookahead), so no
interrupt is ever delivered late and runs are deterministic.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.traps import GP

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu

MSR_X2APIC_ID = 0x802
MSR_X2APIC_VERSION = 0x803
MSR_X2APIC_TPR = 0x808
MSR_X2APIC_EOI = 0x80B
MSR_X2APIC_LDR = 0x80D
MSR_X2APIC_SVR = 0x80F
MSR_X2APIC_ICR = 0x830
MSR_X2APIC_LVT_TIMER = 0x832
MSR_X2APIC_TIMER_INITIAL_COUNT = 0x838
MSR_X2APIC_TIMER_CURRENT_COUNT = 0x839
MSR_X2APIC_TIMER_DIVIDE = 0x83E
MSR_X2APIC_SELF_IPI = 0x83F
MSR_IA32_TSC_DEADLINE = 0x6E0
X2APIC_MSRS = range(0x800, 0x840)

ICR_DELIVERY_FIXED = 0
SHORTHAND_NONE, SHORTHAND_SELF, SHORTHAND_ALL, SHORTHAND_ALL_BUT_SELF = 0, 1, 2, 3
LVT_MASKED = 1 << 16
TIMER_MODE_ONE_SHOT, TIMER_MODE_PERIODIC, TIMER_MODE_TSC_DEADLINE = 0, 1, 2

_sequence = itertools.count()

# The machine's C scheduler (emu_x86/emu/runqueue_scan.c) reads each APIC's
# next event from an array of uint64 (Machine.apic_next_event): NO_EVENT
# for none; a time outside [0, NO_EVENT) is clamped into it, which changes
# no comparison with a clock (a clock is never negative nor near 2**64).
NO_EVENT = (1 << 64) - 1


@dataclass(order=True)
class PendingInterrupt:
    """An interrupt on its way to a local APIC, ordered by arrival cycle then send order."""

    arrival_cycles: int
    sequence: int                    # send order breaks ties deterministically
    vector: int = field(compare=False)
    source_cpu: int = field(compare=False)   # -1 for the local timer


class LocalApic:
    """Fields owned here: pending (arrival-ordered heap), in_service vectors,
    the timer registers. Counters: ``ipis_sent``, ``ipis_received``."""

    def __init__(self, vcpu: "VCpu"):
        self.vcpu = vcpu
        self.pending: list[PendingInterrupt] = []
        self.in_service: list[int] = []
        self.lvt_timer = LVT_MASKED
        self.tsc_deadline = 0
        self.timer_initial_count = 0
        self.timer_divide = 0
        self.timer_start_cycles = 0
        self.ipis_sent = 0
        self.ipis_received = 0
        self.timer_interrupts = 0
        self._published = vcpu.machine.apic_next_event
        self._publish()

    def _publish(self) -> None:
        """Store ``next_event_cycles()`` where the C scheduler reads it; called
        after every change of what it depends on: the pending heap (post,
        take_due), the timer registers (write_msr, _fire_timer) and the TSC
        offset (emu_x86/emu/isa/msr.py), so the array always equals it."""
        when = self.next_event_cycles()
        self._published[self.vcpu.index] = (NO_EVENT if when is None
                                            else 0 if when < 0 else min(when, NO_EVENT - 1))

    # ---- MSR interface (CPL0) ----------------------------------------------

    def read_msr(self, index: int) -> int:
        if index == MSR_X2APIC_ID:
            return self.vcpu.index
        if index == MSR_X2APIC_VERSION:
            return 0x14 | (5 << 16)          # version 0x14, 6 LVT entries
        if index == MSR_X2APIC_LDR:
            return ((self.vcpu.index >> 4) << 16) | (1 << (self.vcpu.index & 15))
        if index == MSR_X2APIC_LVT_TIMER:
            return self.lvt_timer
        if index == MSR_X2APIC_TIMER_INITIAL_COUNT:
            return self.timer_initial_count
        if index == MSR_X2APIC_TIMER_CURRENT_COUNT:
            return self._current_count()
        if index == MSR_X2APIC_TIMER_DIVIDE:
            return self.timer_divide
        if index == MSR_IA32_TSC_DEADLINE:
            return self.tsc_deadline
        if index in (MSR_X2APIC_TPR, MSR_X2APIC_SVR):
            return 0x1FF if index == MSR_X2APIC_SVR else 0
        if index == MSR_X2APIC_EOI or index == MSR_X2APIC_SELF_IPI:
            raise GP(0)                      # write-only registers
        if index in X2APIC_MSRS:
            return 0
        raise GP(0)

    def write_msr(self, index: int, value: int) -> None:
        if index == MSR_X2APIC_ICR:
            self.write_icr(value)
        elif index == MSR_X2APIC_SELF_IPI:
            self.vcpu.machine.send_ipi(self.vcpu, [self.vcpu.index], value & 0xFF)
        elif index == MSR_X2APIC_EOI:
            if value:
                raise GP(0)                  # x2APIC: a non-zero EOI write is #GP
            if self.in_service:
                self.in_service.pop()
        elif index == MSR_X2APIC_LVT_TIMER:
            self.lvt_timer = value & 0x700FF
            self._publish()
        elif index == MSR_X2APIC_TIMER_INITIAL_COUNT:
            self.timer_initial_count = value & 0xFFFFFFFF
            self.timer_start_cycles = self.vcpu.cycles
            self._publish()
        elif index == MSR_X2APIC_TIMER_DIVIDE:
            self.timer_divide = value & 0xB
            self._publish()
        elif index == MSR_IA32_TSC_DEADLINE:
            self.tsc_deadline = value
            self._publish()
        elif index in (MSR_X2APIC_TPR, MSR_X2APIC_SVR):
            pass
        else:
            raise GP(0)

    def write_icr(self, value: int) -> None:
        """ICR: vector 7:0, delivery mode 10:8 (fixed only), shorthand 19:18, destination 63:32."""
        vector = value & 0xFF
        delivery_mode = (value >> 8) & 7
        shorthand = (value >> 18) & 3
        destination = value >> 32
        if delivery_mode != ICR_DELIVERY_FIXED or vector < 16:
            raise GP(0)
        cpus = range(len(self.vcpu.machine.vcpus))
        if shorthand == SHORTHAND_SELF:
            targets = [self.vcpu.index]
        elif shorthand == SHORTHAND_ALL:
            targets = list(cpus)
        elif shorthand == SHORTHAND_ALL_BUT_SELF:
            targets = [cpu for cpu in cpus if cpu != self.vcpu.index]
        else:
            targets = [destination] if destination in cpus else []
        self.vcpu.machine.send_ipi(self.vcpu, targets, vector)

    # ---- timer -------------------------------------------------------------

    @property
    def timer_mode(self) -> int:
        return (self.lvt_timer >> 17) & 3

    def _divisor(self) -> int:
        code = ((self.timer_divide >> 1) & 4) | (self.timer_divide & 3)
        return 1 if code == 7 else 2 << code

    def _current_count(self) -> int:
        if not self.timer_initial_count:
            return 0
        elapsed = (self.vcpu.cycles - self.timer_start_cycles) // self._divisor()
        if self.timer_mode == TIMER_MODE_PERIODIC:
            return self.timer_initial_count - elapsed % self.timer_initial_count
        return max(0, self.timer_initial_count - elapsed)

    def timer_due_cycles(self) -> int | None:
        """When the timer next fires, in this vCPU's cycles (None: disarmed/masked)."""
        lvt_timer = self.lvt_timer
        if lvt_timer & LVT_MASKED:
            return None
        mode = (lvt_timer >> 17) & 3          # timer_mode
        if mode == TIMER_MODE_TSC_DEADLINE:
            if not self.tsc_deadline:
                return None
            return self.tsc_deadline - self.vcpu.msrs.tsc_offset
        if not self.timer_initial_count:
            return None
        period = self.timer_initial_count * self._divisor()
        return self.timer_start_cycles + period

    def _fire_timer(self) -> None:
        due = self.timer_due_cycles()
        mode = self.timer_mode
        if mode == TIMER_MODE_TSC_DEADLINE:
            self.tsc_deadline = 0            # one shot: the deadline MSR reads 0 after it fires
        elif mode == TIMER_MODE_PERIODIC:
            self.timer_start_cycles = due
        else:
            self.timer_initial_count = 0
        self.timer_interrupts += 1
        heapq.heappush(self.pending, PendingInterrupt(due, next(_sequence), self.lvt_timer & 0xFF, -1))

    # ---- delivery ------------------------------------------------------------

    def post(self, arrival_cycles: int, vector: int, source_cpu: int) -> None:
        heapq.heappush(self.pending, PendingInterrupt(arrival_cycles, next(_sequence), vector, source_cpu))
        self._publish()

    def next_event_cycles(self) -> int | None:
        """The earliest cycle at which something will be pending here."""
        due = self.timer_due_cycles()
        if self.pending:
            arrival = self.pending[0].arrival_cycles
            return arrival if due is None or arrival < due else due
        return due

    def take_due(self, now_cycles: int) -> list[PendingInterrupt]:
        """Interrupts that have arrived by ``now_cycles``, in arrival order."""
        due = self.timer_due_cycles()
        fired = False
        while due is not None and due <= now_cycles:
            self._fire_timer()
            fired = True
            due = self.timer_due_cycles()
        arrived = []
        while self.pending and self.pending[0].arrival_cycles <= now_cycles:
            arrived.append(heapq.heappop(self.pending))
        if arrived or fired:
            self._publish()
        return arrived
