"""Priority-inheritance futexes (kernel/futex/pi.c, requeue.c's PI half).

The futex word holds the owner's TID, FUTEX_WAITERS when the kernel has to
be entered to unlock, and FUTEX_OWNER_DIED after the owner died holding it.
Contended locks get a ``PiState`` (struct futex_pi_state): the owner task and
the waiters blocked on its rt_mutex, in arrival order. Priority inheritance
itself is a no-op: the scheduler has no priorities to lend, so only the
ownership protocol is modelled (who gets the lock, what the word says, which
errors). A waiter's own return value says whether it got the lock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EAGAIN, EDEADLK, EINVAL, EPERM, ESRCH, ETIMEDOUT, SyscallError
from emu_x86.kernel.futex.core import (
    FUTEX_OWNER_DIED,
    FUTEX_TID_MASK,
    FUTEX_WAITERS,
    RESTART_NOINTR,
    RESTART_WOULDBLOCK,
    FutexQ,
    deadline_cycles,
    find_task_by_vpid,
    futex_queue,
    futex_sleep,
    futex_waiters,
    get_futex_key,
    get_user_u32,
    put_user_u32,
    requeue_futex,
    wake_futex,
)

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.mm.mm import MmStruct
    from emu_x86.kernel.task import Task


@dataclass(eq=False)
class PiState:
    """Owned by ``kernel.futex_pi_states[key]`` while someone waits for the lock."""
    key: tuple
    owner: Task | None
    waiters: list = field(default_factory=list)     # FutexQ, top waiter first


def pi_state_drop_waiter(kernel: Kernel, q: FutexQ) -> None:
    """A waiter leaves the rt_mutex (woken, timed out, signalled, exiting);
    the last one frees the PI state (put_pi_state). FUTEX_WAITERS stays in the
    word, so the owner's unlock still enters the kernel, which clears it."""
    pi_state = q.pi_state
    q.pi_state = None
    if q in pi_state.waiters:
        pi_state.waiters.remove(q)
    if not pi_state.waiters and kernel.futex_pi_states.get(pi_state.key) is pi_state:
        del kernel.futex_pi_states[pi_state.key]


def futex_lock_pi_atomic(kernel: Kernel, mm: MmStruct, address: int, key: tuple, locker: Task,
                         set_waiters: bool) -> tuple[bool, PiState | None]:
    """Take the lock for ``locker`` if the word has no owner (keeping
    OWNER_DIED), else set FUTEX_WAITERS and attach to the owner's PI state.
    (True, None) when acquired. EDEADLK: ``locker`` owns it already; ESRCH: the
    owner TID names no live task (attach_to_pi_owner -> handle_exit_race)."""
    uval = get_user_u32(mm, address)
    if uval & FUTEX_TID_MASK == locker.tid:
        raise SyscallError(EDEADLK)
    pi_state = kernel.futex_pi_states.get(key)
    if pi_state is not None:
        return False, pi_state                  # attach_to_pi_state: the top waiter's state
    if not uval & FUTEX_TID_MASK:
        newval = (uval & FUTEX_OWNER_DIED) | locker.tid | (FUTEX_WAITERS if set_waiters else 0)
        put_user_u32(mm, address, newval)
        return True, None
    put_user_u32(mm, address, uval | FUTEX_WAITERS)
    owner = find_task_by_vpid(kernel, uval & FUTEX_TID_MASK)
    if owner is None:
        raise SyscallError(ESRCH)
    pi_state = PiState(key, owner)
    kernel.futex_pi_states[key] = pi_state
    return False, pi_state


def _discard_if_unused(kernel: Kernel, pi_state: PiState | None) -> None:
    if pi_state is not None and not pi_state.waiters and kernel.futex_pi_states.get(pi_state.key) is pi_state:
        del kernel.futex_pi_states[pi_state.key]


def futex_lock_pi(kernel: Kernel, vcpu: VCpu, task: Task, address: int, shared: bool,
                  timeout: tuple[int, bool] | None, trylock: bool) -> int | None:
    """FUTEX_LOCK_PI / LOCK_PI2 / TRYLOCK_PI: 0 with the lock taken; TRYLOCK_PI
    on a held lock is -EWOULDBLOCK (FUTEX_WAITERS is left set, as Linux
    leaves it); otherwise sleep on the rt_mutex until an unlock hands the lock
    over (a signal restarts the call: -ERESTARTNOINTR)."""
    key = get_futex_key(task, address, shared, write=True)
    acquired, pi_state = futex_lock_pi_atomic(kernel, task.mm, address, key, task, set_waiters=False)
    if acquired:
        return 0
    if trylock:
        _discard_if_unused(kernel, pi_state)
        raise SyscallError(EAGAIN)
    wake_cycles = deadline_cycles(kernel, vcpu, timeout)
    if wake_cycles == -1:
        _discard_if_unused(kernel, pi_state)
        raise SyscallError(ETIMEDOUT)
    q = FutexQ(task, key, pi_state=pi_state, address=address)
    pi_state.waiters.append(q)
    futex_queue(kernel, q)
    futex_sleep(kernel, vcpu, task, wake_cycles, RESTART_NOINTR)
    return None


def _hand_over(kernel: Kernel, waker: VCpu | None, pi_state: PiState, owner_died: bool) -> None:
    """Give the lock to the top waiter (wake_futex_pi / fixup_pi_state_owner):
    the word becomes FUTEX_WAITERS | its TID (| OWNER_DIED after a death) and
    it returns 0 from its lock call."""
    q = pi_state.waiters[0]
    new_owner = q.task
    newval = FUTEX_WAITERS | new_owner.tid | (FUTEX_OWNER_DIED if owner_died else 0)
    put_user_u32(new_owner.mm, q.address, newval)
    pi_state.owner = new_owner
    wake_futex(kernel, waker, q, 0)


def futex_unlock_pi(kernel: Kernel, vcpu: VCpu, task: Task, address: int, shared: bool) -> int:
    """FUTEX_UNLOCK_PI: only the owner may unlock (EPERM); the top waiter gets
    the lock, or the word becomes 0."""
    uval = get_user_u32(task.mm, address)
    if uval & FUTEX_TID_MASK != task.tid:
        raise SyscallError(EPERM)
    key = get_futex_key(task, address, shared, write=True)
    pi_state = kernel.futex_pi_states.get(key)
    if pi_state is not None and pi_state.waiters:
        _hand_over(kernel, vcpu, pi_state, owner_died=False)
        return 0
    put_user_u32(task.mm, address, 0)
    return 0


def futex_wait_requeue_pi(kernel: Kernel, vcpu: VCpu, task: Task, address: int, shared: bool, value: int,
                          timeout: tuple[int, bool] | None, bitset: int, address2: int) -> None:
    """FUTEX_WAIT_REQUEUE_PI: wait on a plain futex until FUTEX_CMP_REQUEUE_PI
    moves the waiter onto the PI futex at ``address2``; returns 0 holding it."""
    if address == address2 or not bitset:
        raise SyscallError(EINVAL)
    key2 = get_futex_key(task, address2, shared, write=True)
    key = get_futex_key(task, address, shared)
    if get_user_u32(task.mm, address) != value & 0xFFFFFFFF:
        raise SyscallError(EAGAIN)
    if key == key2:
        raise SyscallError(EINVAL)
    wake_cycles = deadline_cycles(kernel, vcpu, timeout)
    if wake_cycles == -1:
        raise SyscallError(ETIMEDOUT)
    futex_queue(kernel, FutexQ(task, key, bitset, requeue_pi_key=key2, address=address2))
    futex_sleep(kernel, vcpu, task, wake_cycles, RESTART_NOINTR)


def futex_proxy_trylock_atomic(kernel: Kernel, vcpu: VCpu, task: Task, address2: int, key1: tuple,
                               key2: tuple, nr_requeue: int) -> tuple[int, PiState | None]:
    """Try to take the PI futex for the top waiter of the first futex; (1, None)
    when it got it (and was woken), else (0, the PI state others will block on)."""
    get_user_u32(task.mm, address2)
    waiters = futex_waiters(kernel, key1)
    if not waiters:
        return 0, None
    top = waiters[0]
    if top.requeue_pi_key is None or top.pi_state is not None or top.requeue_pi_key != key2:
        raise SyscallError(EINVAL)
    acquired, pi_state = futex_lock_pi_atomic(kernel, task.mm, address2, key2, top.task,
                                              set_waiters=nr_requeue > 0)
    if acquired:
        wake_futex(kernel, vcpu, top, 0)
        return 1, None
    return 0, pi_state


def requeue_pi_waiter(kernel: Kernel, vcpu: VCpu, task: Task, q: FutexQ, key2: tuple, address2: int,
                      pi_state: PiState | None) -> PiState:
    """Move a FUTEX_WAIT_REQUEUE_PI waiter onto the PI futex's rt_mutex
    (rt_mutex_start_proxy_lock + requeue_futex). When the top waiter was just
    given the lock there is no state yet: one is made for its new owner."""
    if pi_state is None:
        pi_state = kernel.futex_pi_states.get(key2)
    if pi_state is None:
        uval = get_user_u32(task.mm, address2)
        put_user_u32(task.mm, address2, uval | FUTEX_WAITERS)
        pi_state = PiState(key2, find_task_by_vpid(kernel, uval & FUTEX_TID_MASK))
    kernel.futex_pi_states[key2] = pi_state
    requeue_futex(kernel, q, key2)
    q.pi_state = pi_state
    pi_state.waiters.append(q)
    q.task.futex_restart = RESTART_WOULDBLOCK
    return pi_state


def exit_pi_state_list(kernel: Kernel, task: Task, waker: VCpu | None) -> None:
    """The exiting task owned contended PI futexes: each goes to its top waiter
    with FUTEX_OWNER_DIED set (exit_pi_state_list + fixup_pi_state_owner)."""
    for pi_state in [state for state in kernel.futex_pi_states.values() if state.owner is task]:
        pi_state.owner = None
        if pi_state.waiters:
            _hand_over(kernel, waker, pi_state, owner_died=True)
        else:
            _discard_if_unused(kernel, pi_state)
