"""The scheduler: which task runs on which vCPU, preemption by the local APIC timer,
wake-ups by reschedule IPI, per-CPU run queues and load balancing.

A small model of Linux's CFS structure (kernel/sched/core.c, fair.c):

- one FIFO run queue per CPU (``runqueues[cpu]``: runnable tasks waiting for
  that CPU; the running task is ``kernel.current[cpu]``);
- placement on wake-up and creation (``select_task_rq``): the task's
  previous CPU if it is idle, else the waker's CPU if idle (wake-affine),
  else the lowest-numbered idle allowed CPU (select_idle_sibling), else the
  least loaded allowed CPU -- ties to the previous CPU, then the waker's,
  then the lowest number;
- a tick from each CPU's TSC-deadline timer every ``sched_quantum`` cycles
  that rotates the local queue (the running task goes to its back when
  someone waits there) and runs the periodic balance (load_balance): while
  the busiest CPU has more than one task more than the least loaded one, a
  waiting task that may run there (affinity, can_migrate_task) moves over
  (detach_tasks/attach_tasks), and an idle destination gets a reschedule
  IPI (the nohz idle-balance kick);
- a CPU about to go idle first pulls the longest-waiting task it may run
  from the busiest queue (newidle_balance);
- try_to_wake_up on a remote idle CPU sends it a RESCHEDULE IPI; an idle
  vCPU keeps the last mm loaded (lazy TLB, see Kernel.switch_to).

Every choice scans CPUs in number order and breaks ties by CPU number, so
runs are deterministic.
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel import sched_explore
from emu_x86.kernel.fpu import save_fpregs_to_fpstate
from emu_x86.kernel.task import TASK_EXITED, TASK_RUNNABLE, TASK_RUNNING, TASK_SLEEPING, TASK_STOPPED, TASK_TRACED, Task

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

DEFAULT_SCHED_QUANTUM_CYCLES = 4_000_000     # 2 ms at the profiles' 2 GHz
MSR_X2APIC_LVT_TIMER = 0x832
MSR_IA32_TSC_DEADLINE = 0x6E0
TIMER_MODE_TSC_DEADLINE = 2 << 17

_timer_sequence = itertools.count()


class Scheduler:
    """Owns: ``runqueues`` (per CPU, runnable tasks not on a CPU, FIFO; a
    queued task's ``runqueue_cpu`` names its queue), ``sleepers`` (tasks with
    a wake-up time: heap of (cycles, seq, task)), ``kicked`` (idle CPUs
    already sent a reschedule IPI), ``next_tick_cycles`` (per CPU, when its
    periodic tick is due) and the counters reported in the stats."""

    def __init__(self, kernel: "Kernel", quantum_cycles: int = DEFAULT_SCHED_QUANTUM_CYCLES):
        self.kernel = kernel
        self.machine = kernel.machine
        self.quantum_cycles = quantum_cycles
        self.cpu_count = len(self.machine.vcpus)
        self.runqueues: list[deque[Task]] = [deque() for _ in range(self.cpu_count)]
        self.sleepers: list[tuple[int, int, Task]] = []
        self.kicked: set[int] = set()
        self.next_tick_cycles: list[int | None] = [None] * self.cpu_count
        self.migrations = 0                 # a task started on another CPU than it last ran on
        self.preemptions = 0
        self.load_balance_migrations = 0    # tasks moved by the periodic balance
        self.idle_pulls = 0                 # tasks pulled by a CPU going idle
        self._lvt_timer = TIMER_MODE_TSC_DEADLINE | self._timer_vector()   # LVT timer: TSC-deadline mode
        # Per CPU: LVT timer programmed (only this code writes it, always the
        # same value), so later ticks write only the deadline MSR, as Linux's
        # lapic_next_deadline does after lapic_timer_set_oneshot.
        self._lvt_programmed = [False] * self.cpu_count

    # ---- load ------------------------------------------------------------------

    def nr_running(self, cpu: int) -> int:
        """Tasks on ``cpu``: the running one plus those waiting in its queue (rq->nr_running)."""
        return len(self.runqueues[cpu]) + (self.kernel.current[cpu] is not None)

    def cpu_is_idle(self, cpu: int) -> bool:
        return self.kernel.current[cpu] is None and not self.runqueues[cpu]

    @staticmethod
    def can_migrate_task(task: "Task", cpu: int) -> bool:
        """A waiting task may move to ``cpu`` if its affinity allows it and it was
        not pushed there for work it must do on that CPU (cpu_opv)."""
        return task.allowed_on(cpu) and task.resume_work is None

    # ---- making tasks runnable ---------------------------------------------

    def select_task_rq(self, task: "Task", waker_cpu: int | None) -> int:
        """The CPU whose queue a waking or new task joins (select_task_rq_fair)."""
        preferred = []
        for cpu in (task.last_cpu, waker_cpu):
            if cpu is not None and cpu not in preferred and task.allowed_on(cpu):
                preferred.append(cpu)
        for cpu in preferred:
            if self.cpu_is_idle(cpu):
                return cpu
        allowed = [cpu for cpu in range(self.cpu_count) if task.allowed_on(cpu)]
        for cpu in allowed:
            if self.cpu_is_idle(cpu):
                return cpu

        def rank(cpu: int) -> tuple:
            return (self.nr_running(cpu), preferred.index(cpu) if cpu in preferred else len(preferred), cpu)
        return min(allowed, key=rank)

    def _enqueue_on(self, task: "Task", cpu: int, front: bool = False) -> None:
        task.runqueue_cpu = cpu
        if front:
            self.runqueues[cpu].appendleft(task)
        else:
            self.runqueues[cpu].append(task)

    def dequeue(self, task: "Task") -> None:
        """Take a waiting task off whichever run queue holds it (exit, migration)."""
        if task.runqueue_cpu is not None:
            self.runqueues[task.runqueue_cpu].remove(task)
            task.runqueue_cpu = None

    def enqueue(self, task: "Task", waker: "VCpu | None" = None) -> int | None:
        """Put a sleeping or new task on a run queue; the chosen CPU, or None if
        the task was not sleeping. A ptrace-stopped task stays put: its tracer
        makes it sleeping first when it lets it go (emu_x86/kernel/ptrace.py)."""
        if task.state in (TASK_RUNNABLE, TASK_RUNNING, TASK_EXITED, TASK_TRACED, TASK_STOPPED):
            return None
        task.state = TASK_RUNNABLE
        task.wake_cycles = None
        cpu = self.select_task_rq(task, waker.index if waker is not None else None)
        if waker is not None and self.machine.sched_policy is not None:
            cpu = sched_explore.place_woken_task(self.kernel, task, cpu)
        self._enqueue_on(task, cpu)
        return cpu

    def wake_up(self, task: "Task", waker: "VCpu | None") -> None:
        """try_to_wake_up: queue ``task`` and wake its CPU by IPI if that CPU is idle."""
        cpu = self.enqueue(task, waker)
        if cpu is not None:
            self.resched_cpu(cpu, waker)

    def resched_cpu(self, cpu: int, sender: "VCpu | None") -> None:
        """Send a RESCHEDULE IPI to ``cpu`` if it idles (halted, nothing running)
        and was not kicked yet. A CPU waking tasks for itself while idle
        (timer interrupt) schedules right after, so it needs none."""
        from emu_x86.kernel.kernel import RESCHEDULE_VECTOR
        target = self.machine.vcpus[cpu]
        if not target.halted or cpu in self.kicked or self.kernel.current[cpu] is not None:
            return
        if sender is not None and sender.index == cpu:
            return
        self.kicked.add(cpu)
        self.machine.send_ipi(sender if sender is not None else target, [cpu], RESCHEDULE_VECTOR)
        self.kernel.counters["ipis"] += 1

    # ---- giving up the CPU ------------------------------------------------------

    def _put_prev_task(self, vcpu: "VCpu") -> "Task":
        """Save the running task's user state and take it off ``vcpu``."""
        task = self.kernel.current[vcpu.index]
        # The whole user register file in one call; x87/SSE stay raw bytes,
        # which the XSAVES below does not need (it reads them itself).
        task.registers = vcpu.save_task_registers()
        save_fpregs_to_fpstate(self.kernel, vcpu, task)
        task.rseq_event_pending = True        # rseq_preempt on every switch out
        self.kernel.current[vcpu.index] = None
        task.cpu = None
        return task

    def block_current(self, vcpu: "VCpu", wake_cycles: int | None = None) -> None:
        """The running task sleeps (futex wait, nanosleep): save it, run someone else."""
        task = self._put_prev_task(vcpu)
        task.state = TASK_SLEEPING
        task.wake_cycles = wake_cycles
        if wake_cycles is not None:
            heapq.heappush(self.sleepers, (wake_cycles, next(_timer_sequence), task))
        self.schedule(vcpu)

    def trace_stop_current(self, vcpu: "VCpu", notify=None, state: str = TASK_TRACED) -> None:
        """The running task stops for its tracer (ptrace_stop: TASK_TRACED, then
        schedule). ``notify()`` wakes the tracer once the CPU is free, so a
        tracer waiting on another CPU and this one compete fairly for it."""
        task = self._put_prev_task(vcpu)
        task.state = state                 # TASK_TRACED, or TASK_STOPPED for a group stop (kernel/jobctl.py)
        if notify is not None:
            notify()
        self.schedule(vcpu)

    def preempt_current(self, vcpu: "VCpu", position: int | None = None) -> None:
        """Put the running task back on a run queue -- this CPU's (at its back, or at
        ``position``) if it may run here, else an allowed CPU's -- and schedule."""
        task = self._put_prev_task(vcpu)
        task.state = TASK_RUNNABLE
        if task.allowed_on(vcpu.index):
            task.runqueue_cpu = vcpu.index
            queue = self.runqueues[vcpu.index]
            queue.insert(len(queue) if position is None else min(position, len(queue)), task)
        else:
            cpu = self.select_task_rq(task, None)
            self._enqueue_on(task, cpu)
            self.resched_cpu(cpu, vcpu)
        self.preemptions += 1
        self.schedule(vcpu)

    def yield_current(self, vcpu: "VCpu") -> None:
        """sched_yield: let the next waiting task on this CPU run (do_sched_yield)."""
        if self.runqueues[vcpu.index]:
            self.preempt_current(vcpu)

    def push_task_to_cpu(self, vcpu: "VCpu", cpu: int) -> None:
        """Move the running task to ``cpu`` now, ahead of that CPU's queue and
        preempting what runs there, as the stopper-thread migration the cpu_opv
        proposal's push_task_to_cpu did. The caller has set ``resume_work``
        (run on ``cpu`` before the task returns to user mode)."""
        from emu_x86.kernel.kernel import RESCHEDULE_VECTOR
        task = self._put_prev_task(vcpu)
        task.state = TASK_RUNNABLE
        self._enqueue_on(task, cpu, front=True)
        if self.kernel.current[cpu] is not None:
            self.machine.send_ipi(vcpu, [cpu], RESCHEDULE_VECTOR)
            self.kernel.counters["ipis"] += 1
        else:
            self.resched_cpu(cpu, vcpu)
        self.schedule(vcpu)

    def affinity_changed(self, vcpu: "VCpu", task: "Task") -> bool:
        """sched_setaffinity changed ``task``'s mask: move it off a CPU it may no
        longer use (__set_cpus_allowed_ptr). True when the caller itself left ``vcpu``."""
        if task.cpu == vcpu.index and not task.allowed_on(vcpu.index):
            self.preempt_current(vcpu)
            return True
        if task.cpu is not None and not task.allowed_on(task.cpu):
            # Running elsewhere: that CPU's reschedule interrupt moves it (migration_cpu_stop).
            from emu_x86.kernel.kernel import RESCHEDULE_VECTOR
            self.machine.send_ipi(vcpu, [task.cpu], RESCHEDULE_VECTOR)
            self.kernel.counters["ipis"] += 1
        elif task.runqueue_cpu is not None and not task.allowed_on(task.runqueue_cpu):
            self.dequeue(task)
            cpu = self.select_task_rq(task, vcpu.index)
            self._enqueue_on(task, cpu)
            self.resched_cpu(cpu, vcpu)
        return False

    # ---- interrupts ----------------------------------------------------------

    def scheduler_tick(self, vcpu: "VCpu") -> None:
        """LOCAL_TIMER interrupt: wake due sleepers, balance, rotate the local queue."""
        self.wake_expired_sleepers(vcpu)
        task = self.kernel.current[vcpu.index]
        if task is None:
            self.schedule(vcpu)
            return
        next_tick = self.next_tick_cycles[vcpu.index]
        if next_tick is not None and vcpu.cycles < next_tick:
            self.arm_tick(vcpu)           # an early wake-up for a sleeper, not the tick
            return
        self.next_tick_cycles[vcpu.index] = None
        self.load_balance(vcpu)
        if self.runqueues[vcpu.index] or not task.allowed_on(vcpu.index):
            self.preempt_current(vcpu)
        else:
            self.arm_tick(vcpu)

    def scheduler_ipi(self, vcpu: "VCpu") -> None:
        """RESCHEDULE interrupt: an idle CPU looks for work; a busy one gives way to
        a task pushed to it (cpu_opv) or moves a task whose affinity excludes it."""
        self.kicked.discard(vcpu.index)
        task = self.kernel.current[vcpu.index]
        if task is None:
            self.schedule(vcpu)
            return
        queue = self.runqueues[vcpu.index]
        if queue and queue[0].resume_work is not None:
            self.preempt_current(vcpu, position=1)       # resumes right after the pushed task
        elif not task.allowed_on(vcpu.index):
            self.preempt_current(vcpu)

    # ---- picking the next task ------------------------------------------------

    def schedule(self, vcpu: "VCpu") -> None:
        """Pick the next task for ``vcpu`` (__schedule); pull work when the local
        queue is empty (newidle_balance); idle the CPU if there is none."""
        cpu = vcpu.index
        self.kicked.discard(cpu)
        if self.sleepers:
            self.wake_expired_sleepers(vcpu)
        if self.kernel.current[cpu] is not None:
            return
        task = None
        if self.machine.sched_policy is not None:
            allowed = [queued for queued in self.runqueues[cpu] if queued.allowed_on(cpu)]
            if allowed:
                task = sched_explore.pick_next_task(self.kernel, cpu, allowed)
        else:
            for queued in self.runqueues[cpu]:
                if queued.allowed_on(cpu):
                    task = queued
                    break
        if task is None:
            task = self.newidle_balance(vcpu)
        if task is None:
            vcpu.halted = True
            if self.kernel.machine.events is not None:
                self.kernel.machine.events.emit(vcpu, "idle")
            self.kernel.tlb.enter_lazy_tlb(vcpu)   # idle keeps the mm loaded (lazy TLB)
            self.arm_sleeper_timer(vcpu)
            return
        self.dequeue(task)
        if task.last_cpu is not None and task.last_cpu != vcpu.index:
            self.migrations += 1
            task.rseq_event_pending = True    # rseq_migrate
        self.kernel.switch_to(vcpu, task)
        if self.kernel.current[vcpu.index] is task:
            self.arm_tick(vcpu)

    # ---- balancing ------------------------------------------------------------------

    def newidle_balance(self, vcpu: "VCpu") -> "Task | None":
        """This CPU is about to idle: pull the longest-waiting task it may run from
        the busiest CPU running more than one task (ties: lowest CPU number).
        Returns it, queued here."""
        best = None
        for cpu in range(self.cpu_count):
            # A lone queued task is about to run where it is (its CPU was kicked).
            if cpu == vcpu.index or self.nr_running(cpu) < 2:
                continue
            candidate = next((queued for queued in self.runqueues[cpu]
                              if self.can_migrate_task(queued, vcpu.index)), None)
            if candidate is not None and (best is None or self.nr_running(cpu) > best[0]):
                best = (self.nr_running(cpu), candidate)
        if best is None:
            return None
        task = best[1]
        self.dequeue(task)
        self._enqueue_on(task, vcpu.index)
        self.idle_pulls += 1
        return task

    def load_balance(self, vcpu: "VCpu") -> None:
        """Periodic balance on ``vcpu``'s tick: while the busiest CPU runs more than
        one task more than the least loaded CPU that can take one of its waiting
        tasks, move one over (load_balance -> detach_tasks/attach_tasks); kick an
        idle destination with a reschedule IPI."""
        loads = [self.nr_running(cpu) for cpu in range(self.cpu_count)]
        for _move in range(self.cpu_count):
            found = self._find_movable_task(loads)
            if found is None:
                return
            task, source, destination = found
            self.dequeue(task)
            self._enqueue_on(task, destination)
            loads[source] -= 1
            loads[destination] += 1
            self.load_balance_migrations += 1
            self.resched_cpu(destination, vcpu)

    def _find_movable_task(self, loads: list[int]) -> "tuple[Task, int, int] | None":
        by_load_descending = sorted(range(self.cpu_count), key=lambda cpu: (-loads[cpu], cpu))
        by_load_ascending = sorted(range(self.cpu_count), key=lambda cpu: (loads[cpu], cpu))
        for source in by_load_descending:
            if not self.runqueues[source]:
                continue
            for destination in by_load_ascending:
                if loads[source] - loads[destination] <= 1:
                    break
                task = next((queued for queued in self.runqueues[source]
                             if self.can_migrate_task(queued, destination)), None)
                if task is not None:
                    return task, source, destination
        return None

    # ---- time ------------------------------------------------------------------------

    def arm_tick(self, vcpu: "VCpu") -> None:
        """Program the TSC deadline for this CPU's next periodic tick (or an earlier
        timed sleeper). The tick keeps its period across context switches, as
        Linux's does, so short-running tasks cannot postpone the balance."""
        self._program_lvt_timer(vcpu)
        now = vcpu.cycles
        next_tick = self.next_tick_cycles[vcpu.index]
        if next_tick is None or next_tick <= now:
            next_tick = self.next_tick_cycles[vcpu.index] = now + self.quantum_cycles
        deadline = next_tick
        if self.sleepers:
            deadline = min(deadline, max(self.sleepers[0][0], now + 1))
        vcpu.write_msr(MSR_IA32_TSC_DEADLINE, deadline + vcpu.msrs.tsc_offset)

    def arm_sleeper_timer(self, vcpu: "VCpu") -> None:
        """An idle CPU sleeps until the earliest timed sleeper is due (or forever)."""
        if self.sleepers:
            self._program_lvt_timer(vcpu)
            vcpu.write_msr(MSR_IA32_TSC_DEADLINE, max(self.sleepers[0][0], vcpu.cycles + 1) + vcpu.msrs.tsc_offset)
        else:
            vcpu.write_msr(MSR_IA32_TSC_DEADLINE, 0)

    def _program_lvt_timer(self, vcpu: "VCpu") -> None:
        """The LVT timer in TSC-deadline mode with the timer vector, written once per CPU."""
        if not self._lvt_programmed[vcpu.index]:
            vcpu.write_msr(MSR_X2APIC_LVT_TIMER, self._lvt_timer)
            self._lvt_programmed[vcpu.index] = True

    def wake_expired_sleepers(self, vcpu: "VCpu") -> None:
        while self.sleepers and self.sleepers[0][0] <= vcpu.cycles:
            wake_at, _, task = heapq.heappop(self.sleepers)
            if not isinstance(task, Task):     # a kernel timer (kernel/timer.py)
                task.expire(wake_at, vcpu)
                continue
            # An entry left by an earlier sleep the task was woken from sooner
            # must not end its current sleep: only the matching deadline does.
            if task.state == TASK_SLEEPING and task.wake_cycles == wake_at:
                self.kernel.timeout_expired(task)
                self.wake_up(task, vcpu)

    @staticmethod
    def _timer_vector() -> int:
        from emu_x86.kernel.kernel import LOCAL_TIMER_VECTOR
        return LOCAL_TIMER_VECTOR
