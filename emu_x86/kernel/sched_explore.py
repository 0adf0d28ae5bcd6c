"""The kernel's decision points under an exploring scheduler (emu_x86/emu/sched_policy.py).

Linux reschedules at a handful of places: an interrupt arriving at any user
instruction (preempt on return from the interrupt, irqentry_exit_to_user_mode),
the return from a system call (exit_to_user_mode_loop's need_resched check),
a wake-up (try_to_wake_up: select_task_rq picks the CPU, check_preempt_curr
whether the wakee preempts), and the pick of the next task (__schedule).
Under ``--sched random|pct`` the policy answers at each of them, so a seed
explores which thread runs where and when; the default scheduler never calls
this module. A preemption inside an rseq critical section is what makes
the section abort on the way back (rseq_preempt, then rseq_ip_fixup in
emu_x86/kernel/rseq.py), so the policy is asked there even with nobody waiting.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.mmu.pagewalk import ACCESS_READ
from emu_x86.emu.traps import CpuException
from emu_x86.kernel.errno import SyscallError
from emu_x86.kernel.rseq import RSEQ_CS_BYTES, RSEQ_CS_OFFSET

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task


def attach(kernel: "Kernel") -> None:
    """Tell the machine's policy which guest thread each CPU runs and how many wait for it."""
    policy = kernel.machine.sched_policy
    if policy is None:
        return

    def current_tid(cpu: int) -> int | None:
        task = kernel.current[cpu]
        return task.tid if task is not None else None
    policy.current_tid = current_tid
    policy.queued_count = lambda cpu: len(kernel.scheduler.runqueues[cpu])
    current, runqueues = kernel.current, kernel.scheduler.runqueues

    def single_task() -> bool:
        only = None
        for cpu, queue in enumerate(runqueues):
            if queue:
                if only is not None or len(queue) > 1:
                    return False
                only = queue[0]
            task = current[cpu]
            if task is not None:
                if only is not None:
                    return False
                only = task
        return only is None or not rseq_armed(only)
    policy.single_task = single_task


def _queued_tids(kernel: "Kernel", cpu: int) -> list[int]:
    return [task.tid for task in kernel.scheduler.runqueues[cpu] if task.allowed_on(cpu)]


def rseq_armed(task: "Task") -> bool:
    """Whether ``task``'s rseq area names a critical section (rseq_cs set):
    a task that uses rseq critical sections keeps its preemption points even
    alone, since a preemption there is what makes the section abort.
    glibc registers every thread but leaves rseq_cs zero; a section's
    descriptor stays set until the kernel clears it (rseq_ip_fixup)."""
    rseq = task.rseq
    if rseq is None:
        return False
    try:
        return task.mm.get_user_u64(rseq.address + RSEQ_CS_OFFSET) != 0
    except SyscallError:
        return False


def in_rseq_critical_section(task: "Task", rip: int) -> bool:
    """Whether ``rip`` lies in the critical section ``task``'s rseq area names
    now (the test rseq_ip_fixup makes; unreadable areas count as outside:
    rseq_ip_fixup reports them when the task next returns to user)."""
    rseq = task.rseq
    if rseq is None:
        return False
    try:
        descriptor = task.mm.get_user_u64(rseq.address + RSEQ_CS_OFFSET)
        if descriptor == 0:
            return False
        _version, _flags, start_ip, post_commit_offset, _abort_ip = struct.unpack(
            "<IIQQQ", task.mm.copy_from_user(descriptor, RSEQ_CS_BYTES))
    except SyscallError:
        return False
    return start_ip <= rip < start_ip + post_commit_offset


def _preempt(kernel: "Kernel", vcpu: "VCpu") -> None:
    kernel.machine.sched_policy.task_preemptions += 1
    kernel.scheduler.preempt_current(vcpu)


def _rseq_cs_of_current(vcpu: "VCpu", task: "Task") -> int:
    """The rseq_cs word of ``task``, running on ``vcpu``: read through the
    vCPU's page tables (the C walk), as every preemption point asks it
    (glibc registers rseq for every thread). 0 when unreadable."""
    address = task.rseq.address + RSEQ_CS_OFFSET      # 8-aligned: the area is 32-byte aligned
    try:
        paddr = vcpu.translate(address, ACCESS_READ)
    except CpuException:
        return 0
    memory = vcpu.machine.memory
    if address & 7 or not memory.contains(paddr, 8):
        return 0
    return memory.qwords[paddr >> 3]


def preemption_point(kernel: "Kernel", vcpu: "VCpu") -> None:
    """The instruction budget ended a run between two user instructions, as
    an interrupt would: the running task may be preempted there."""
    policy = kernel.machine.sched_policy
    cpu = vcpu.index
    task = kernel.current[cpu]
    if task is None:
        return
    queued = _queued_tids(kernel, cpu) if kernel.scheduler.runqueues[cpu] else []
    if task.rseq is not None and _rseq_cs_of_current(vcpu, task) \
            and in_rseq_critical_section(task, vcpu.preempt_stop_address):
        if policy.preempt_task(cpu, queued, "rseq"):
            _preempt(kernel, vcpu)
        return
    if policy.preempt_task(cpu, queued, "instruction"):
        _preempt(kernel, vcpu)


def syscall_exit(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """Return to user from a system call that left ``task`` running: the
    need_resched check of exit_to_user_mode_loop."""
    if kernel.current[vcpu.index] is not task or kernel.machine.stopped:
        return
    cpu = vcpu.index
    if kernel.machine.sched_policy.preempt_task(cpu, _queued_tids(kernel, cpu), "syscall_exit"):
        _preempt(kernel, vcpu)


def place_woken_task(kernel: "Kernel", task: "Task", chosen_cpu: int) -> int:
    """try_to_wake_up's CPU: the policy may move the task to any CPU its
    affinity allows (a wake-up migration) instead of select_task_rq's pick."""
    allowed = [cpu for cpu in range(kernel.scheduler.cpu_count) if task.allowed_on(cpu)]
    return kernel.machine.sched_policy.place_woken_task(allowed, chosen_cpu)


def pick_next_task(kernel: "Kernel", cpu: int, candidates: list["Task"]) -> "Task":
    """__schedule's pick among the tasks queued on ``cpu`` that may run there."""
    return candidates[kernel.machine.sched_policy.pick_task(cpu, [task.tid for task in candidates])]
