"""Scheduling system calls (kernel/sched/syscalls.c): policies and RT priorities,
affinity, sched_yield, getcpu.

Policies are recorded per thread and inherited by clone and fork (reset to
SCHED_NORMAL with SCHED_RESET_ON_FORK, sched_fork), but the scheduler
(emu_x86/kernel/sched.py) gives every task the same treatment: no policy changes
which task runs. Permissions are an unprivileged user's (the guest runs as
uid 1000 without CAP_SYS_NICE): RLIMIT_RTPRIO is 0, so SCHED_FIFO/SCHED_RR
are EPERM (user_check_sched_setscheduler), and a SCHED_IDLE task cannot go
back to SCHED_NORMAL/BATCH (RLIMIT_NICE is 0).

Task lookup (find_process_by_pid): 0 is the caller; any thread id of the
guest, including a zombie's group leader until it is reaped; 1 is the init
that getppid() reports for orphans -- root's task, outside the machine: it
exists (so a bad buffer is still EFAULT, as on Linux) but the guest may not
change it (EPERM).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EFAULT, EINVAL, EPERM, ESRCH, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_sched_yield, SYS_sched_setparam, SYS_sched_getparam = 24, 142, 143
SYS_sched_setscheduler, SYS_sched_getscheduler = 144, 145
SYS_sched_get_priority_max, SYS_sched_get_priority_min = 146, 147
SYS_sched_setaffinity, SYS_sched_getaffinity, SYS_getcpu = 203, 204, 309

# Policies (include/uapi/linux/sched.h)
SCHED_NORMAL, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE, SCHED_EXT = 0, 1, 2, 3, 5, 6, 7
SCHED_RESET_ON_FORK = 0x40000000
SETPARAM_POLICY = -1
MAX_RT_PRIO = 100
RT_POLICIES = (SCHED_FIFO, SCHED_RR)
FAIR_POLICIES = (SCHED_NORMAL, SCHED_BATCH)
VALID_POLICIES = (SCHED_NORMAL, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE)
INIT_PID = 1
BITS_PER_LONG = 64


@dataclass
class InitTask:
    """Init (pid 1), root's task outside the machine: visible, not changeable."""
    tid: int = INIT_PID
    sched_policy: int = SCHED_NORMAL
    sched_priority: int = 0
    sched_reset_on_fork: bool = False
    affinity: int | None = None
    owned_by_root: bool = True


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def find_process_by_pid(kernel: Kernel, task: Task, pid: int):
    """The thread ``pid`` names (0: the caller), or None (find_process_by_pid)."""
    if pid == 0:
        return task
    for process in kernel.processes.values():
        for thread in process.tasks:
            if thread.tid != pid:
                continue
            # An exited thread is gone, but a zombie's leader stays until reaped.
            if thread.state != "exited" or (process.exit_state == "zombie" and thread.tid == process.pid):
                return thread
    if pid == INIT_PID:
        return InitTask()
    return None


def check_same_owner(target) -> bool:
    return not getattr(target, "owned_by_root", False)


def nr_cpu_ids(kernel: Kernel) -> int:
    return len(kernel.machine.vcpus)


def cpumask_size(kernel: Kernel) -> int:
    """Bytes of a kernel cpumask: whole longs for nr_cpu_ids bits (CPUMASK_OFFSTACK)."""
    return (nr_cpu_ids(kernel) + BITS_PER_LONG - 1) // BITS_PER_LONG * 8


# ---- priorities ------------------------------------------------------------------

def sys_sched_get_priority_max(kernel, vcpu, task, policy, *_):
    policy = signed32(policy)
    if policy in RT_POLICIES:
        return MAX_RT_PRIO - 1
    if policy in (SCHED_DEADLINE, SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_EXT):
        return 0
    raise SyscallError(EINVAL)


def sys_sched_get_priority_min(kernel, vcpu, task, policy, *_):
    policy = signed32(policy)
    if policy in RT_POLICIES:
        return 1
    if policy in (SCHED_DEADLINE, SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_EXT):
        return 0
    raise SyscallError(EINVAL)


def sys_sched_getscheduler(kernel, vcpu, task, pid, *_):
    pid = signed32(pid)
    if pid < 0:
        raise SyscallError(EINVAL)
    target = find_process_by_pid(kernel, task, pid)
    if target is None:
        raise SyscallError(ESRCH)
    return target.sched_policy | (SCHED_RESET_ON_FORK if target.sched_reset_on_fork else 0)


def sys_sched_getparam(kernel, vcpu, task, pid, param, *_):
    pid = signed32(pid)
    if not param or pid < 0:
        raise SyscallError(EINVAL)
    target = find_process_by_pid(kernel, task, pid)
    if target is None:
        raise SyscallError(ESRCH)
    priority = target.sched_priority if target.sched_policy in RT_POLICIES else 0
    task.mm.copy_to_user(param, struct.pack("<i", priority))
    return 0


def __sched_setscheduler(target, policy: int, priority: int, reset_on_fork: bool | None) -> int:
    """__sched_setscheduler for a user caller: the policy and priority checks
    (EINVAL), then user_check_sched_setscheduler (EPERM), then the change."""
    if policy == SETPARAM_POLICY:
        policy = target.sched_policy
        reset_on_fork = target.sched_reset_on_fork
    elif policy not in VALID_POLICIES:
        raise SyscallError(EINVAL)
    if not 0 <= priority <= MAX_RT_PRIO - 1:         # sched_priority is unsigned there
        raise SyscallError(EINVAL)
    # SCHED_DEADLINE needs sched_setattr's runtime/deadline/period: all zero here.
    if policy == SCHED_DEADLINE or (policy in RT_POLICIES) != (priority != 0):
        raise SyscallError(EINVAL)
    # user_check_sched_setscheduler: RLIMIT_RTPRIO = 0 and RLIMIT_NICE = 0.
    needs_privilege = False
    if policy in RT_POLICIES and (policy != target.sched_policy or priority > target.sched_priority):
        needs_privilege = True
    if target.sched_policy == SCHED_IDLE and policy != SCHED_IDLE:
        needs_privilege = True           # is_nice_reduction(p, task_nice(p)) fails
    if not check_same_owner(target):
        needs_privilege = True
    if target.sched_reset_on_fork and not reset_on_fork:
        needs_privilege = True
    if needs_privilege:
        raise SyscallError(EPERM)
    target.sched_policy = policy
    target.sched_priority = priority if policy in RT_POLICIES else 0
    target.sched_reset_on_fork = bool(reset_on_fork)
    return 0


def do_sched_setscheduler(kernel: Kernel, task: Task, pid: int, policy: int, param: int) -> int:
    pid = signed32(pid)
    if not param or pid < 0:
        raise SyscallError(EINVAL)
    (priority,) = struct.unpack("<i", task.mm.copy_from_user(param, 4))
    target = find_process_by_pid(kernel, task, pid)
    if target is None:
        raise SyscallError(ESRCH)
    reset_on_fork = None
    if policy != SETPARAM_POLICY:
        # The legacy SCHED_RESET_ON_FORK bit in the policy (_sched_setscheduler).
        reset_on_fork = bool(policy & SCHED_RESET_ON_FORK)
        policy &= ~SCHED_RESET_ON_FORK
    return __sched_setscheduler(target, policy, priority & 0xFFFFFFFF if priority < 0 else priority,
                                reset_on_fork)


def sys_sched_setscheduler(kernel, vcpu, task, pid, policy, param, *_):
    policy = signed32(policy)
    if policy < 0:
        raise SyscallError(EINVAL)
    return do_sched_setscheduler(kernel, task, pid, policy, param)


def sys_sched_setparam(kernel, vcpu, task, pid, param, *_):
    return do_sched_setscheduler(kernel, task, pid, SETPARAM_POLICY, param)


def sched_fork(child: Task, parent: Task) -> None:
    """A new task's policy (sched_fork): the parent's, or SCHED_NORMAL with
    priority 0 when the parent asked for SCHED_RESET_ON_FORK."""
    if parent.sched_reset_on_fork:
        child.sched_policy = SCHED_NORMAL if parent.sched_policy in (*RT_POLICIES, SCHED_DEADLINE) \
            else parent.sched_policy
        child.sched_priority = 0
        child.sched_reset_on_fork = False
    else:
        child.sched_policy = parent.sched_policy
        child.sched_priority = parent.sched_priority


# ---- affinity -------------------------------------------------------------------

def sys_sched_getaffinity(kernel, vcpu, task, pid, length, mask_address, *_):
    """sched_getaffinity(2) in Linux's order: the length checks (EINVAL), the
    task lookup (ESRCH), then the copy (EFAULT); returns the bytes copied."""
    length &= 0xFFFFFFFF
    if length * 8 < nr_cpu_ids(kernel) or length & 7:
        raise SyscallError(EINVAL)
    target = find_process_by_pid(kernel, task, signed32(pid))
    if target is None:
        raise SyscallError(ESRCH)
    all_cpus = (1 << nr_cpu_ids(kernel)) - 1
    allowed = all_cpus if target.affinity is None else target.affinity & all_cpus
    returned = min(length, cpumask_size(kernel))
    task.mm.copy_to_user(mask_address, allowed.to_bytes(cpumask_size(kernel), "little")[:returned])
    return returned


def sys_sched_setaffinity(kernel, vcpu, task, pid, length, mask_address, *_):
    """sched_setaffinity(2): copy the mask (a short one is zero-extended, a long
    one cut: get_user_cpu_mask), find the task, check permission, then the
    mask must name an existing CPU (EINVAL). A running task outside it moves."""
    length &= 0xFFFFFFFF
    size = cpumask_size(kernel)
    raw = task.mm.copy_from_user(mask_address, min(length, size))
    target = find_process_by_pid(kernel, task, signed32(pid))
    if target is None:
        raise SyscallError(ESRCH)
    if not check_same_owner(target):
        raise SyscallError(EPERM)
    allowed = int.from_bytes(raw, "little") & ((1 << nr_cpu_ids(kernel)) - 1)
    if not allowed:
        raise SyscallError(EINVAL)
    target.affinity = allowed
    vcpu.write_register("rax", 0)
    if kernel.scheduler.affinity_changed(vcpu, target):
        return None                     # the caller moved to an allowed CPU
    return 0


def sys_getcpu(kernel, vcpu, task, cpu_address, node_address, *_):
    if cpu_address:
        task.mm.copy_to_user(cpu_address, struct.pack("<I", vcpu.index))
    if node_address:
        task.mm.copy_to_user(node_address, struct.pack("<I", 0))
    return 0


def sys_sched_yield(kernel, vcpu, task, *_):
    """Give the CPU to the next runnable task, if any (do_sched_yield)."""
    vcpu.write_register("rax", 0)
    kernel.scheduler.yield_current(vcpu)


SYSCALLS = {
    SYS_sched_yield: sys_sched_yield,
    SYS_sched_setparam: sys_sched_setparam,
    SYS_sched_getparam: sys_sched_getparam,
    SYS_sched_setscheduler: sys_sched_setscheduler,
    SYS_sched_getscheduler: sys_sched_getscheduler,
    SYS_sched_get_priority_max: sys_sched_get_priority_max,
    SYS_sched_get_priority_min: sys_sched_get_priority_min,
    SYS_sched_setaffinity: sys_sched_setaffinity,
    SYS_sched_getaffinity: sys_sched_getaffinity,
    SYS_getcpu: sys_getcpu,
}

__all__ = ["EFAULT", "SYSCALLS", "find_process_by_pid", "sched_fork"]
