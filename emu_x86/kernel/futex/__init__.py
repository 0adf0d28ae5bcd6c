"""Fast user-space mutexes (emu_x86/kernel/futex/): the futex and futex2 system calls,
PI futexes and the robust-list walk at exit. Split as Linux splits it:
core.py (keys, queues, wait/wake/requeue/wake_op, do_futex), pi.py,
futex2.py (futex_waitv and the futex2 calls), robust.py."""
from emu_x86.kernel.futex.core import (
    FUTEX_BITSET_MATCH_ANY,
    FUTEX_OWNER_DIED,
    FUTEX_TID_MASK,
    FUTEX_WAITERS,
    futex_cancel_wait,
    futex_interrupted,
    futex_wake,
    sys_futex,
)
from emu_x86.kernel.futex.futex2 import (
    SYS_futex_requeue,
    SYS_futex_wait,
    SYS_futex_waitv,
    SYS_futex_wake,
    sys_futex_requeue,
    sys_futex_wait,
    sys_futex_waitv,
    sys_futex_wake,
)
from emu_x86.kernel.futex.robust import (
    SYS_get_robust_list,
    SYS_set_robust_list,
    futex_exit_release,
    sys_get_robust_list,
    sys_set_robust_list,
)

SYS_futex = 202

SYSCALLS = {
    SYS_futex: sys_futex,
    SYS_set_robust_list: sys_set_robust_list,
    SYS_get_robust_list: sys_get_robust_list,
    SYS_futex_waitv: sys_futex_waitv,
    SYS_futex_wake: sys_futex_wake,
    SYS_futex_wait: sys_futex_wait,
    SYS_futex_requeue: sys_futex_requeue,
}

__all__ = [
    "FUTEX_BITSET_MATCH_ANY",
    "FUTEX_OWNER_DIED",
    "FUTEX_TID_MASK",
    "FUTEX_WAITERS",
    "SYSCALLS",
    "futex_cancel_wait",
    "futex_exit_release",
    "futex_interrupted",
    "futex_wake",
    "sys_futex",
]
