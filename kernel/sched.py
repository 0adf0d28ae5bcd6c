"""The scheduler: which task runs on which vCPU, preemption by the local APIC timer,
wake-ups by reschedule IPI.

A deliberately small model of Linux's: one FIFO run queue shared by all CPUs
(per-CPU queues and load balancing are a later issue), a tick from each
CPU's TSC-deadline timer every ``sched_quantum`` cycles that preempts the
running task when someone is waiting, and -- as Linux's try_to_wake_up does
for an idle CPU -- a RESCHEDULE IPI that wakes a halted vCPU when a task
becomes runnable. An idle vCPU keeps the last mm loaded (lazy TLB).
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import TYPE_CHECKING

from kernel.fpu import save_fpregs_to_fpstate
from kernel.task import TASK_EXITED, TASK_RUNNABLE, TASK_RUNNING, TASK_SLEEPING

if TYPE_CHECKING:  # pragma: no cover
    from emu.vcpu import VCpu
    from kernel.kernel import Kernel
    from kernel.task import Task

DEFAULT_SCHED_QUANTUM_CYCLES = 4_000_000     # 2 ms at the profiles' 2 GHz
MSR_X2APIC_LVT_TIMER = 0x832
MSR_IA32_TSC_DEADLINE = 0x6E0
TIMER_MODE_TSC_DEADLINE = 2 << 17

_timer_sequence = itertools.count()


class Scheduler:
    """Owns: ``runqueue`` (runnable tasks not on a CPU, FIFO), ``sleepers``
    (tasks with a wake-up time: heap of (cycles, seq, task)), ``kicked``
    (idle CPUs already sent a reschedule IPI)."""

    def __init__(self, kernel: "Kernel", quantum_cycles: int = DEFAULT_SCHED_QUANTUM_CYCLES):
        self.kernel = kernel
        self.machine = kernel.machine
        self.quantum_cycles = quantum_cycles
        self.runqueue: deque[Task] = deque()
        self.sleepers: list[tuple[int, int, Task]] = []
        self.kicked: set[int] = set()
        self.migrations = 0
        self.preemptions = 0

    # ---- making tasks runnable ---------------------------------------------

    def enqueue(self, task: "Task") -> bool:
        """Put a sleeping or new task on the run queue; False if it was not sleeping."""
        if task.state in (TASK_RUNNABLE, TASK_RUNNING, TASK_EXITED):
            return False
        task.state = TASK_RUNNABLE
        task.wake_cycles = None
        self.runqueue.append(task)
        return True

    def wake_up(self, task: "Task", waker: "VCpu | None") -> None:
        """try_to_wake_up: queue ``task`` and wake an idle CPU for it by IPI."""
        if self.enqueue(task):
            self._kick_idle_cpu(waker, task)

    def _kick_idle_cpu(self, waker: "VCpu | None", task: "Task") -> None:
        from kernel.kernel import RESCHEDULE_VECTOR
        for vcpu in self.machine.vcpus:
            if (vcpu.halted and vcpu.index not in self.kicked and self.kernel.current[vcpu.index] is None
                    and task.allowed_on(vcpu.index)):
                self.kicked.add(vcpu.index)
                sender = waker if waker is not None else vcpu
                self.machine.send_ipi(sender, [vcpu.index], RESCHEDULE_VECTOR)
                self.kernel.counters["ipis"] += 1
                return

    # ---- giving up the CPU ------------------------------------------------------

    def block_current(self, vcpu: "VCpu", wake_cycles: int | None = None) -> None:
        """The running task sleeps (futex wait, nanosleep): save it, run someone else."""
        task = self.kernel.current[vcpu.index]
        task.registers = vcpu.save_user_registers()
        save_fpregs_to_fpstate(self.kernel, vcpu, task)
        task.rseq_event_pending = True        # rseq_preempt on every switch out
        task.state = TASK_SLEEPING
        task.wake_cycles = wake_cycles
        if wake_cycles is not None:
            heapq.heappush(self.sleepers, (wake_cycles, next(_timer_sequence), task))
        self.kernel.current[vcpu.index] = None
        task.cpu = None
        self.schedule(vcpu)

    def preempt(self, vcpu: "VCpu") -> None:
        """Tick: put the running task at the back of the queue if someone waits."""
        self.wake_expired_sleepers(vcpu)
        task = self.kernel.current[vcpu.index]
        if task is not None and (any(queued.allowed_on(vcpu.index) for queued in self.runqueue)
                                 or not task.allowed_on(vcpu.index)):
            task.registers = vcpu.save_user_registers()
            save_fpregs_to_fpstate(self.kernel, vcpu, task)
            task.rseq_event_pending = True    # rseq_preempt
            task.state = TASK_RUNNABLE
            self.kernel.current[vcpu.index] = None
            task.cpu = None
            self.runqueue.append(task)
            self.preemptions += 1
            self.schedule(vcpu)
        elif task is not None:
            self.arm_tick(vcpu)

    def schedule(self, vcpu: "VCpu") -> None:
        """Pick the next task for ``vcpu`` (__schedule); idle the CPU if there is none."""
        self.kicked.discard(vcpu.index)
        self.wake_expired_sleepers(vcpu)
        if self.kernel.current[vcpu.index] is not None:
            return
        # The first queued task this CPU is allowed to run (sched_setaffinity).
        task = next((queued for queued in self.runqueue if queued.allowed_on(vcpu.index)), None)
        if task is None:
            vcpu.halted = True
            self.kernel.tlb.enter_lazy_tlb(vcpu)   # idle keeps the mm loaded (lazy TLB)
            self.arm_sleeper_timer(vcpu)
            return
        self.runqueue.remove(task)
        if task.last_cpu is not None and task.last_cpu != vcpu.index:
            self.migrations += 1
            task.rseq_event_pending = True    # rseq_migrate
        self.kernel.switch_to(vcpu, task)
        self.arm_tick(vcpu)

    # ---- time ------------------------------------------------------------------------

    def arm_tick(self, vcpu: "VCpu") -> None:
        vcpu.write_msr(MSR_X2APIC_LVT_TIMER, TIMER_MODE_TSC_DEADLINE | self._timer_vector())
        deadline = vcpu.cycles + self.quantum_cycles
        if self.sleepers:
            deadline = min(deadline, max(self.sleepers[0][0], vcpu.cycles + 1))
        vcpu.write_msr(MSR_IA32_TSC_DEADLINE, deadline + vcpu.msrs.tsc_offset)

    def arm_sleeper_timer(self, vcpu: "VCpu") -> None:
        """An idle CPU sleeps until the earliest timed sleeper is due (or forever)."""
        if self.sleepers:
            vcpu.write_msr(MSR_X2APIC_LVT_TIMER, TIMER_MODE_TSC_DEADLINE | self._timer_vector())
            vcpu.write_msr(MSR_IA32_TSC_DEADLINE, max(self.sleepers[0][0], vcpu.cycles + 1) + vcpu.msrs.tsc_offset)
        else:
            vcpu.write_msr(MSR_IA32_TSC_DEADLINE, 0)

    def wake_expired_sleepers(self, vcpu: "VCpu") -> None:
        while self.sleepers and self.sleepers[0][0] <= vcpu.cycles:
            _, _, task = heapq.heappop(self.sleepers)
            if task.state == TASK_SLEEPING and task.wake_cycles is not None:
                self.kernel.timeout_expired(task)
                self.wake_up(task, vcpu)

    @staticmethod
    def _timer_vector() -> int:
        from kernel.kernel import LOCAL_TIMER_VECTOR
        return LOCAL_TIMER_VECTOR
