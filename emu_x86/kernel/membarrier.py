"""membarrier(2) (kernel/sched/membarrier.c, Linux 6.12).

Registrations live in the mm (``MmStruct.membarrier_state``, Linux's
mm->membarrier_state bits), so CLONE_VM processes share them, fork copies
them with the rest of the mm (dup_mm) and exec starts clean. The expedited commands IPI the other CPUs and wait for
every one to acknowledge (smp_call_function_many with wait); the barrier
itself is implicit -- the machine's vCPUs are sequentially consistent with
each other at interrupt boundaries. Which CPUs:

- GLOBAL_EXPEDITED: every other CPU whose current task's mm registered
  REGISTER_GLOBAL_EXPEDITED (the runqueue's membarrier_state);
- PRIVATE_EXPEDITED(_SYNC_CORE, _RSEQ): every other CPU running a task of the
  caller's mm (SYNC_CORE includes the caller's own CPU: on_each_cpu_mask),
  or only ``cpu_id`` with MEMBARRIER_CMD_FLAG_CPU (RSEQ only);
- the RSEQ flavour makes the interrupted task's rseq critical section
  restart (rseq_preempt on the target, handled before it returns to user).

GLOBAL (the synchronize_rcu one) returns at once: no CPU can be inside a
read-side section of the kernel, which runs one call at a time.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINVAL, EPERM, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_membarrier = 324

# Commands (include/uapi/linux/membarrier.h)
MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL = 1 << 0
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2
MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4
MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 5
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 6
MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ = 1 << 7
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ = 1 << 8
MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9
MEMBARRIER_CMD_FLAG_CPU = 1 << 0
MEMBARRIER_CMD_BITMASK = (
    MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
    | MEMBARRIER_CMD_GET_REGISTRATIONS)

# mm->membarrier_state bits (include/linux/sched/mm.h)
MEMBARRIER_STATE_PRIVATE_EXPEDITED_READY = 1 << 0
MEMBARRIER_STATE_PRIVATE_EXPEDITED = 1 << 1
MEMBARRIER_STATE_GLOBAL_EXPEDITED_READY = 1 << 2
MEMBARRIER_STATE_GLOBAL_EXPEDITED = 1 << 3
MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE_READY = 1 << 4
MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 5
MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ_READY = 1 << 6
MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ = 1 << 7

# The flavours of the private commands (MEMBARRIER_FLAG_*): (state set, state ready)
FLAVOURS = {
    "plain": (MEMBARRIER_STATE_PRIVATE_EXPEDITED, MEMBARRIER_STATE_PRIVATE_EXPEDITED_READY),
    "sync_core": (MEMBARRIER_STATE_PRIVATE_EXPEDITED | MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE,
                  MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE_READY),
    "rseq": (MEMBARRIER_STATE_PRIVATE_EXPEDITED | MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ,
             MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ_READY),
}

# GET_REGISTRATIONS: which state bits report which registration command.
REGISTRATIONS = (
    (MEMBARRIER_STATE_GLOBAL_EXPEDITED | MEMBARRIER_STATE_GLOBAL_EXPEDITED_READY,
     MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED),
    (MEMBARRIER_STATE_PRIVATE_EXPEDITED | MEMBARRIER_STATE_PRIVATE_EXPEDITED_READY,
     MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED),
    (MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE | MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE_READY,
     MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE),
    (MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ | MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ_READY,
     MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ),
)


def _ipi_rseq(kernel: Kernel, target_vcpu: VCpu) -> None:
    """ipi_rseq: rseq_preempt on the interrupted task, so a critical section it
    is in aborts before it returns to user mode."""
    running = kernel.current[target_vcpu.index]
    if running is None or running.rseq is None:
        return
    from emu_x86.kernel.rseq import rseq_handle_notify_resume
    running.registers = target_vcpu.save_user_registers()
    running.rseq_event_pending = True
    if rseq_handle_notify_resume(kernel, running, running.registers, target_vcpu.index):
        target_vcpu.write_register("rip", running.registers["rip"])


def _ipi_targets(kernel: Kernel, vcpu: VCpu, predicate) -> list[int]:
    return [cpu for cpu, current in enumerate(kernel.current)
            if cpu != vcpu.index and current is not None and predicate(current)]


def _send(kernel: Kernel, vcpu: VCpu, targets: list[int], function) -> None:
    kernel.counters["membarriers"] += 1
    vcpu.write_register("rax", 0)
    if targets:
        kernel.smp_call_function_many(vcpu, targets, function, wait=True)


def membarrier_global_expedited(kernel: Kernel, vcpu: VCpu) -> int:
    if len(kernel.machine.vcpus) == 1:
        return 0
    targets = _ipi_targets(kernel, vcpu,
                           lambda running: running.mm.membarrier_state & MEMBARRIER_STATE_GLOBAL_EXPEDITED)
    _send(kernel, vcpu, targets, lambda target: None)
    return 0


def membarrier_private_expedited(kernel: Kernel, vcpu: VCpu, task: Task, flavour: str, cpu_id: int) -> int:
    mm = task.mm
    if not mm.membarrier_state & FLAVOURS[flavour][1]:
        raise SyscallError(EPERM)
    if flavour != "sync_core" and (mm.mm_users == 1 or len(kernel.machine.vcpus) == 1):
        return 0
    if cpu_id >= 0:
        if cpu_id >= len(kernel.machine.vcpus):
            return 0
        running = kernel.current[cpu_id]
        if running is None or running.mm is not mm or cpu_id == vcpu.index:
            # smp_call_function_single on the caller's CPU runs the function
            # locally: the caller makes syscalls, so it is in no critical section.
            return 0
        targets = [cpu_id]
    else:
        targets = _ipi_targets(kernel, vcpu, lambda running: running.mm is mm)
    function = (lambda target: _ipi_rseq(kernel, target)) if flavour == "rseq" else (lambda target: None)
    _send(kernel, vcpu, targets, function)
    return 0


def membarrier_register(task: Task, flavour: str | None) -> int:
    """REGISTER_*: set the state bits, then the ready bit (sync_runqueues_membarrier_state
    has nothing to wait for: every CPU reads the mm's state when it needs it)."""
    mm = task.mm
    if flavour is None:
        mm.membarrier_state |= MEMBARRIER_STATE_GLOBAL_EXPEDITED | MEMBARRIER_STATE_GLOBAL_EXPEDITED_READY
        return 0
    set_state, ready_state = FLAVOURS[flavour]
    mm.membarrier_state |= set_state | ready_state
    return 0


def membarrier_get_registrations(task: Task) -> int:
    state = task.mm.membarrier_state
    mask = 0
    for bits, command in REGISTRATIONS:
        if state & bits:
            mask |= command
    return mask


def sys_membarrier(kernel, vcpu, task, command, flags, cpu_id, *_):
    """membarrier(2): flags must be 0, except MEMBARRIER_CMD_FLAG_CPU for
    PRIVATE_EXPEDITED_RSEQ (EINVAL, checked before the command); cpu_id counts
    only with that flag."""
    command = command & 0xFFFFFFFF
    command = command - (1 << 32) if command & (1 << 31) else command
    flags &= 0xFFFFFFFF
    if command == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ:
        if flags and flags != MEMBARRIER_CMD_FLAG_CPU:
            raise SyscallError(EINVAL)
    elif flags:
        raise SyscallError(EINVAL)
    cpu_id &= 0xFFFFFFFF
    cpu_id = cpu_id - (1 << 32) if cpu_id & (1 << 31) else cpu_id
    if not flags & MEMBARRIER_CMD_FLAG_CPU:
        cpu_id = -1
    if command == MEMBARRIER_CMD_QUERY:
        return MEMBARRIER_CMD_BITMASK
    if command == MEMBARRIER_CMD_GLOBAL:
        return 0
    if command == MEMBARRIER_CMD_GLOBAL_EXPEDITED:
        return membarrier_global_expedited(kernel, vcpu)
    if command == MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED:
        return membarrier_register(task, None)
    if command == MEMBARRIER_CMD_PRIVATE_EXPEDITED:
        return membarrier_private_expedited(kernel, vcpu, task, "plain", cpu_id)
    if command == MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED:
        return membarrier_register(task, "plain")
    if command == MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE:
        return membarrier_private_expedited(kernel, vcpu, task, "sync_core", cpu_id)
    if command == MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE:
        return membarrier_register(task, "sync_core")
    if command == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ:
        return membarrier_private_expedited(kernel, vcpu, task, "rseq", cpu_id)
    if command == MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ:
        return membarrier_register(task, "rseq")
    if command == MEMBARRIER_CMD_GET_REGISTRATIONS:
        return membarrier_get_registrations(task)
    raise SyscallError(EINVAL)


SYSCALLS = {SYS_membarrier: sys_membarrier}
