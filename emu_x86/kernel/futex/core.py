"""futex(2) core: keys, wait queues, WAIT/WAKE, REQUEUE, WAKE_OP (kernel/futex/core.c,
waitwake.c, requeue.c), and the syscall's decoding (syscalls.c do_futex).

The kernel runs one call at a time while no guest code executes, so the value
check and the enqueue of a waiter (futex_wait_setup), the atomic op of
WAKE_OP and the cmpxchg loops of the PI code are atomic with respect to every
other CPU, as the hash-bucket lock makes them in Linux.

Keys (get_futex_key): a FUTEX_PRIVATE_FLAG futex is (mm, address); a shared
one on a private mapping is the same pair marked FUT_OFF_MMSHARED -- Linux's
private and shared keys of one word never match, so a private waiter is not
woken by a shared wake --; a shared one on a MAP_SHARED mapping or SysV
segment is the physical frame + offset, the same in every process mapping it.

A waiter is a ``FutexQ`` on ``kernel.futex_queues[key]`` (FIFO: every task
has the same priority, so Linux's plist order is arrival order) and in its
task's ``futex_waits`` (several for futex_waitv). Waking a task takes all of
its entries off the queues and sets its return value.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import EAGAIN, EFAULT, EINTR, EINVAL, ENOSYS, ETIMEDOUT, SyscallError
from emu_x86.kernel.mm.mm import MAP_SHARED, TASK_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.mm.mm import MmStruct
    from emu_x86.kernel.task import Task

# Operations (include/uapi/linux/futex.h)
FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI, FUTEX_LOCK_PI2 = 11, 12, 13
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
FUTEX_CMD_MASK = 0xFFFFFFFF & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
# The futex word of PI and robust futexes
FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF
# FUTEX_WAKE_OP's encoded operation: op (bits 28-30, bit 31 = oparg is a shift), cmp (24-27),
# oparg (12-23, signed), cmparg (0-11, signed)
FUTEX_OP_SET, FUTEX_OP_ADD, FUTEX_OP_OR, FUTEX_OP_ANDN, FUTEX_OP_XOR = 0, 1, 2, 3, 4
FUTEX_OP_OPARG_SHIFT = 8
FUTEX_OP_CMP_EQ, FUTEX_OP_CMP_NE, FUTEX_OP_CMP_LT, FUTEX_OP_CMP_LE, FUTEX_OP_CMP_GT, FUTEX_OP_CMP_GE = range(6)

# Commands whose fourth argument is a timeout (futex_cmd_has_timeout); the
# others read it as a count (val2).
TIMEOUT_COMMANDS = {FUTEX_WAIT, FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI}
# The commands that accept FUTEX_CLOCK_REALTIME (do_futex).
CLOCKRT_COMMANDS = {FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI, FUTEX_LOCK_PI2}
SYS_futex = 202
NSEC_PER_SEC = 1_000_000_000

# How a sleep ends when a signal arrives (the -ERESTART* codes of the wait paths):
RESTART_SYS = "restartsys"         # -ERESTARTSYS: run again after an SA_RESTART handler, else -EINTR
RESTART_NOINTR = "restartnointr"   # -ERESTARTNOINTR: always run again (lock_pi, unrequeued wait_requeue_pi)
RESTART_NONE = "eintr"             # -EINTR (-ERESTART_RESTARTBLOCK with a handler): timed waits
RESTART_WOULDBLOCK = "wouldblock"  # requeued wait_requeue_pi: -EWOULDBLOCK, not restartable


@dataclass(eq=False)
class FutexQ:
    """One waiter (struct futex_q). ``result``: the return value when woken
    (futex_waitv's index). ``pi_state``: blocked on a PI futex's rt_mutex;
    ``requeue_pi_key``: sleeping in FUTEX_WAIT_REQUEUE_PI (q->rt_waiter),
    the PI futex it may be requeued to."""
    task: Task
    key: tuple
    bitset: int = FUTEX_BITSET_MATCH_ANY
    result: int = 0
    pi_state: object = None
    requeue_pi_key: tuple | None = None
    address: int = 0          # the PI futex word, in ``task``'s address space


# ---- keys and user words ---------------------------------------------------

def get_futex_key(task: Task, address: int, shared: bool, write: bool = False) -> tuple:
    """get_futex_key: EINVAL when not 4-byte aligned, EFAULT outside user space;
    a shared key faults the page in (EFAULT if it cannot be)."""
    if address & 3:
        raise SyscallError(EINVAL)
    if address + 4 > TASK_SIZE:
        raise SyscallError(EFAULT)
    mm = task.mm
    if not shared:
        return ("private", mm.ctx_id, address)
    (frame,) = mm.pin_user_pages(address, 4, write)
    vma = mm.find_vma(address)
    if vma is not None and vma.flags & MAP_SHARED:
        return ("inode", frame + (address & (PAGE_SIZE - 1)))
    return ("mmshared", mm.ctx_id, address)


def get_user_u32(mm: MmStruct, address: int) -> int:
    return struct.unpack("<I", mm.copy_from_user(address, 4))[0]


def put_user_u32(mm: MmStruct, address: int, value: int) -> None:
    mm.copy_to_user(address, struct.pack("<I", value & 0xFFFFFFFF))


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def find_task_by_vpid(kernel: Kernel, tid: int) -> Task | None:
    """A live thread with this id, in any process (find_task_by_vpid)."""
    for process in kernel.processes.values():
        for thread in process.tasks:
            if thread.tid == tid and thread.state != "exited":
                return thread
    return None


# ---- queues ---------------------------------------------------------------------

def futex_queue(kernel: Kernel, q: FutexQ) -> None:
    kernel.futex_queues.setdefault(q.key, []).append(q)
    q.task.futex_waits.append(q)


def _dequeue(kernel: Kernel, q: FutexQ) -> None:
    queue = kernel.futex_queues.get(q.key)
    if queue is not None:
        try:
            queue.remove(q)
        except ValueError:
            pass
        if not queue:
            del kernel.futex_queues[q.key]
    if q.pi_state is not None:
        from emu_x86.kernel.futex.pi import pi_state_drop_waiter
        pi_state_drop_waiter(kernel, q)


def requeue_futex(kernel: Kernel, q: FutexQ, key2: tuple) -> None:
    """requeue_futex: move a waiter to another key, keeping its place in its task."""
    queue = kernel.futex_queues.get(q.key)
    if queue is not None:
        queue.remove(q)
        if not queue:
            del kernel.futex_queues[q.key]
    q.key = key2
    kernel.futex_queues.setdefault(key2, []).append(q)


def futex_unqueue_task(kernel: Kernel, task: Task) -> None:
    for q in task.futex_waits:
        _dequeue(kernel, q)
    task.futex_waits = []
    task.futex_restart = None


def futex_waiters(kernel: Kernel, key: tuple) -> list[FutexQ]:
    """The waiters on ``key`` in queue order (a copy: waking edits the queue)."""
    return list(kernel.futex_queues.get(key, ()))


def wake_futex(kernel: Kernel, waker: VCpu | None, q: FutexQ, result: int | None = None) -> None:
    """futex_wake_mark + wake_up_q: the task leaves every queue it waits on and
    returns ``result`` (the entry's own result by default)."""
    task = q.task
    futex_unqueue_task(kernel, task)
    task.registers["rax"] = (q.result if result is None else result) & ((1 << 64) - 1)
    kernel.scheduler.wake_up(task, waker)


def futex_cancel_wait(kernel: Kernel, task: Task) -> None:
    """Take ``task`` off every futex queue (timeout or exit)."""
    if task.futex_waits:
        futex_unqueue_task(kernel, task)
    task.futex_restart = None


def futex_interrupted(kernel: Kernel, task: Task) -> None:
    """A signal ends the task's sleep (send_signal already set RAX to -EINTR):
    apply the wait path's restart code. -ERESTARTNOINTR always runs the
    system call again; -ERESTARTSYS does when the handler has SA_RESTART;
    a requeued FUTEX_WAIT_REQUEUE_PI gives -EWOULDBLOCK (futex_wait_requeue_pi)."""
    mode = task.futex_restart
    if task.futex_waits and mode is not None:
        restart = mode == RESTART_NOINTR
        if mode == RESTART_SYS and task.pending_signals:
            from emu_x86.kernel.sigframe import SA_RESTART, SIG_DFL, get_action
            action = get_action(task, task.pending_signals[-1].signo)
            restart = action.handler != SIG_DFL and bool(action.flags & SA_RESTART)
        if restart:
            task.registers["rip"] -= 2          # back onto the SYSCALL instruction
            task.registers["rax"] = SYS_futex
        elif mode == RESTART_WOULDBLOCK:
            task.registers["rax"] = (-EAGAIN) & ((1 << 64) - 1)
        else:
            task.registers["rax"] = (-EINTR) & ((1 << 64) - 1)
    futex_cancel_wait(kernel, task)


# ---- time ---------------------------------------------------------------------

def read_timespec(task: Task, address: int) -> int:
    """A struct __kernel_timespec in nanoseconds; EFAULT unreadable, EINVAL not
    valid (timespec64_valid: seconds >= 0, 0 <= nanoseconds < 10^9)."""
    seconds, nanoseconds = struct.unpack("<qq", task.mm.copy_from_user(address, 16))
    if seconds < 0 or not 0 <= nanoseconds < NSEC_PER_SEC:
        raise SyscallError(EINVAL)
    return seconds * NSEC_PER_SEC + nanoseconds


def deadline_cycles(kernel: Kernel, vcpu: VCpu, timeout: tuple[int, bool] | None) -> int | None:
    """The vCPU cycle at which an absolute timeout ``(ns, realtime)`` expires;
    -1 when it already has (the hrtimer fires at once)."""
    if timeout is None:
        return None
    deadline_ns, realtime = timeout
    now_ns = kernel.now_ns(vcpu)
    if realtime:
        from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
        now_ns += REALTIME_EPOCH_NS
    remaining_ns = deadline_ns - now_ns
    if remaining_ns <= 0:
        return -1
    return vcpu.cycles + max(1, -(-remaining_ns * kernel.tsc_hz // NSEC_PER_SEC))


def futex_sleep(kernel: Kernel, vcpu: VCpu, task: Task, wake_cycles: int | None, restart: str) -> None:
    """Block the caller on the queues it joined; a waker sets RAX, a timeout gives -ETIMEDOUT."""
    task.timeout_result = -ETIMEDOUT
    task.futex_restart = restart
    vcpu.write_register("rax", 0)
    kernel.scheduler.block_current(vcpu, wake_cycles)


# ---- WAIT / WAKE ------------------------------------------------------------------

def futex_wait(kernel: Kernel, vcpu: VCpu, task: Task, address: int, shared: bool, value: int,
               timeout: tuple[int, bool] | None, bitset: int) -> None:
    """futex_wait: sleep if the word still holds ``value`` (else -EAGAIN)."""
    if not bitset:
        raise SyscallError(EINVAL)
    key = get_futex_key(task, address, shared)
    if get_user_u32(task.mm, address) != value & 0xFFFFFFFF:
        raise SyscallError(EAGAIN)
    wake_cycles = deadline_cycles(kernel, vcpu, timeout)
    if wake_cycles == -1:
        raise SyscallError(ETIMEDOUT)
    futex_queue(kernel, FutexQ(task, key, bitset))
    futex_sleep(kernel, vcpu, task, wake_cycles, RESTART_SYS if timeout is None else RESTART_NONE)


def futex_wake_key(kernel: Kernel, waker: VCpu | None, key: tuple, nr_wake: int, bitset: int) -> int:
    """Wake up to ``nr_wake`` waiters whose bitset matches (at least one: the
    loop tests the count after each wake-up, as futex_wake does); a PI or
    requeue-PI waiter on the key is -EINVAL."""
    woken = 0
    for q in futex_waiters(kernel, key):
        if q.pi_state is not None or q.requeue_pi_key is not None:
            return -EINVAL
        if not q.bitset & bitset:
            continue
        wake_futex(kernel, waker, q)
        woken += 1
        if woken >= nr_wake:
            break
    return woken


def futex_wake(kernel: Kernel, waker: VCpu | None, mm_or_task, address: int, nr_wake: int,
               bitset: int = FUTEX_BITSET_MATCH_ANY, shared: bool = True, task: Task | None = None) -> int:
    """FUTEX_WAKE on ``address`` of the given task's mm (the kernel's own wakes --
    clear_child_tid, robust futexes -- are shared wakes, as do_futex(FUTEX_WAKE))."""
    if task is None:
        task = _TaskView(mm_or_task)
    if not bitset:
        raise SyscallError(EINVAL)
    key = get_futex_key(task, address, shared)
    result = futex_wake_key(kernel, waker, key, nr_wake, bitset)
    if result < 0:
        raise SyscallError(-result)
    return result


class _TaskView:
    """Just enough of a task for get_futex_key when only the mm is at hand."""

    def __init__(self, mm):
        self.mm = mm


# ---- REQUEUE / CMP_REQUEUE / WAKE_OP ------------------------------------------------

def futex_requeue(kernel: Kernel, vcpu: VCpu, task: Task, address1: int, shared: bool, address2: int,
                  nr_wake: int, nr_requeue: int, cmpval: int | None, requeue_pi: bool) -> int:
    """futex_requeue: wake ``nr_wake`` waiters of the first futex and move up to
    ``nr_requeue`` more to the second; the count of both. CMP_REQUEUE first
    checks the first word (-EAGAIN when it changed); CMP_REQUEUE_PI moves
    FUTEX_WAIT_REQUEUE_PI waiters onto the PI futex, first trying to take it
    for the top waiter (emu_x86/kernel/futex/pi.py)."""
    if nr_wake < 0 or nr_requeue < 0:
        raise SyscallError(EINVAL)
    if requeue_pi and (address1 == address2 or nr_wake != 1):
        raise SyscallError(EINVAL)
    key1 = get_futex_key(task, address1, shared)
    key2 = get_futex_key(task, address2, shared, write=requeue_pi)
    if requeue_pi and key1 == key2:
        raise SyscallError(EINVAL)
    if cmpval is not None and get_user_u32(task.mm, address1) != cmpval:
        raise SyscallError(EAGAIN)
    task_count = 0
    pi_state = None
    if requeue_pi:
        from emu_x86.kernel.futex.pi import futex_proxy_trylock_atomic
        acquired, pi_state = futex_proxy_trylock_atomic(kernel, vcpu, task, address2, key1, key2, nr_requeue)
        task_count += acquired
    for q in futex_waiters(kernel, key1):
        if task_count - nr_wake >= nr_requeue:
            break
        if (requeue_pi and q.requeue_pi_key is None) or (not requeue_pi and q.requeue_pi_key is not None) \
                or q.pi_state is not None:
            return -EINVAL      # ret = -EINVAL; break: the call returns it whatever it did before
        if not requeue_pi:
            task_count += 1
            if task_count <= nr_wake:
                wake_futex(kernel, vcpu, q)
            else:
                requeue_futex(kernel, q, key2)
            continue
        if q.requeue_pi_key != key2:
            return -EINVAL
        from emu_x86.kernel.futex.pi import requeue_pi_waiter
        pi_state = requeue_pi_waiter(kernel, vcpu, task, q, key2, address2, pi_state)
        task_count += 1
    return task_count


def futex_atomic_op_inuser(mm: MmStruct, encoded_op: int, address: int) -> bool:
    """Apply FUTEX_WAKE_OP's operation to the word at ``address`` and compare its
    old value (futex_atomic_op_inuser, arch_futex_atomic_op_inuser). ENOSYS for
    an unknown op or comparison (the op is checked before the word changes)."""
    op = (encoded_op >> 28) & 7
    cmp = (encoded_op >> 24) & 0xF
    oparg = _sign_extend12((encoded_op >> 12) & 0xFFF)
    cmparg = _sign_extend12(encoded_op & 0xFFF)
    if encoded_op & (FUTEX_OP_OPARG_SHIFT << 28):
        # Linux warns about a shift outside 0..31 and masks it.
        oparg = 1 << (oparg & 31)
    if op > FUTEX_OP_XOR:
        raise SyscallError(ENOSYS)
    old = get_user_u32(mm, address)
    new = {
        FUTEX_OP_SET: oparg,
        FUTEX_OP_ADD: old + oparg,
        FUTEX_OP_OR: old | oparg,
        FUTEX_OP_ANDN: old & ~oparg,
        FUTEX_OP_XOR: old ^ oparg,
    }[op]
    put_user_u32(mm, address, new)
    oldval = signed32(old)
    compare = {
        FUTEX_OP_CMP_EQ: oldval == cmparg,
        FUTEX_OP_CMP_NE: oldval != cmparg,
        FUTEX_OP_CMP_LT: oldval < cmparg,
        FUTEX_OP_CMP_GE: oldval >= cmparg,
        FUTEX_OP_CMP_LE: oldval <= cmparg,
        FUTEX_OP_CMP_GT: oldval > cmparg,
    }
    if cmp not in compare:
        raise SyscallError(ENOSYS)     # the op already ran, as in Linux
    return compare[cmp]


def _sign_extend12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


def futex_wake_op(kernel: Kernel, vcpu: VCpu, task: Task, address1: int, shared: bool, address2: int,
                  nr_wake: int, nr_wake2: int, encoded_op: int) -> int:
    """futex_wake_op: atomically update the second word, wake up to ``nr_wake``
    waiters of the first and, when the comparison of the second word's old
    value holds, up to ``nr_wake2`` of the second."""
    key1 = get_futex_key(task, address1, shared)
    key2 = get_futex_key(task, address2, shared, write=True)
    op_true = futex_atomic_op_inuser(task.mm, encoded_op, address2)
    woken = 0
    for q in futex_waiters(kernel, key1):
        if q.pi_state is not None or q.requeue_pi_key is not None:
            return -EINVAL
        wake_futex(kernel, vcpu, q)
        woken += 1
        if woken >= nr_wake:
            break
    if op_true:
        woken2 = 0
        for q in futex_waiters(kernel, key2):
            if q.pi_state is not None or q.requeue_pi_key is not None:
                return -EINVAL
            wake_futex(kernel, vcpu, q)
            woken2 += 1
            if woken2 >= nr_wake2:
                break
        woken += woken2
    return woken


# ---- the system call ---------------------------------------------------------------

def sys_futex(kernel, vcpu, task, uaddr, op, val, utime, uaddr2, val3):
    """futex(2) (SYSCALL_DEFINE6(futex) + do_futex): the timeout is read and
    checked before the command is; FUTEX_WAIT's is relative, LOCK_PI's
    absolute on CLOCK_REALTIME, the others' absolute on CLOCK_MONOTONIC unless
    FUTEX_CLOCK_REALTIME."""
    op &= 0xFFFFFFFF
    val &= 0xFFFFFFFF
    val3 &= 0xFFFFFFFF
    cmd = op & FUTEX_CMD_MASK
    timeout = None
    if utime and cmd in TIMEOUT_COMMANDS:
        ns = read_timespec(task, utime)
        if cmd == FUTEX_WAIT:
            timeout = (kernel.now_ns(vcpu) + ns, False)
        elif cmd == FUTEX_LOCK_PI:
            timeout = (ns, True)
        else:
            timeout = (ns, bool(op & FUTEX_CLOCK_REALTIME))
    shared = not op & FUTEX_PRIVATE_FLAG
    if op & FUTEX_CLOCK_REALTIME and cmd not in CLOCKRT_COMMANDS:
        raise SyscallError(ENOSYS)
    val2 = utime & 0xFFFFFFFF
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = FUTEX_BITSET_MATCH_ANY if cmd == FUTEX_WAIT else val3
        return futex_wait(kernel, vcpu, task, uaddr, shared, val, timeout, bitset)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = FUTEX_BITSET_MATCH_ANY if cmd == FUTEX_WAKE else val3
        if not bitset:
            raise SyscallError(EINVAL)
        key = get_futex_key(task, uaddr, shared)
        return futex_wake_key(kernel, vcpu, key, signed32(val), bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_CMP_REQUEUE_PI):
        return futex_requeue(kernel, vcpu, task, uaddr, shared, uaddr2, signed32(val), signed32(val2),
                             None if cmd == FUTEX_REQUEUE else val3, cmd == FUTEX_CMP_REQUEUE_PI)
    if cmd == FUTEX_WAKE_OP:
        return futex_wake_op(kernel, vcpu, task, uaddr, shared, uaddr2, signed32(val), signed32(val2), val3)
    from emu_x86.kernel.futex import pi
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2):
        return pi.futex_lock_pi(kernel, vcpu, task, uaddr, shared, timeout, trylock=False)
    if cmd == FUTEX_TRYLOCK_PI:
        return pi.futex_lock_pi(kernel, vcpu, task, uaddr, shared, None, trylock=True)
    if cmd == FUTEX_UNLOCK_PI:
        return pi.futex_unlock_pi(kernel, vcpu, task, uaddr, shared)
    if cmd == FUTEX_WAIT_REQUEUE_PI:
        return pi.futex_wait_requeue_pi(kernel, vcpu, task, uaddr, shared, val, timeout,
                                        FUTEX_BITSET_MATCH_ANY, uaddr2)
    raise SyscallError(ENOSYS)
