"""prctl(2) (kernel/sys.c): the process attributes guests commonly ask about.

The thread name (PR_SET_NAME/PR_GET_NAME, 16 bytes with its NUL), the parent
death signal, dumpable, no_new_privs, timer slack, child subreaper, the
capability bounding set (every capability Linux knows is in it), seccomp's
mode (0: none), THP disable, and the clear_child_tid address. Options Linux
rejects for an unprivileged process fail -EPERM; unknown ones -EINVAL.
"""
from __future__ import annotations

import os
import struct

from emu_x86.kernel.errno import EINVAL, EPERM, SyscallError

SYS_prctl = 157
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_SET_NAME, PR_GET_NAME = 7, 8, 15, 16
PR_GET_SECCOMP, PR_CAPBSET_READ, PR_CAPBSET_DROP = 21, 23, 24
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30
PR_SET_MM, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 35, 36, 37
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS = 38, 39, 40
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42
CAP_LAST_CAP = 40
TASK_COMM_LEN = 16
DEFAULT_TIMER_SLACK_NS = 50_000


def task_comm(task) -> bytes:
    name = getattr(task, "comm", None) or task.process.comm or os.path.basename(task.process.exe_path)
    return name.encode("utf-8", "surrogateescape")[:TASK_COMM_LEN - 1]


def sys_prctl(kernel, vcpu, task, option, arg2, arg3, arg4, arg5, *_):
    option &= 0xFFFFFFFF
    process = task.process
    state = process.__dict__.setdefault("prctl_state", {})
    if option == PR_SET_NAME:
        name = task.mm.copy_from_user(arg2, TASK_COMM_LEN).split(b"\0")[0][:TASK_COMM_LEN - 1]
        task.comm = name.decode("utf-8", "surrogateescape")
        if task.tid == process.pid:
            process.comm = task.comm
        return 0
    if option == PR_GET_NAME:
        task.mm.copy_to_user(arg2, task_comm(task).ljust(TASK_COMM_LEN, b"\0"))
        return 0
    if option == PR_SET_PDEATHSIG:
        if arg2 > 64:
            raise SyscallError(EINVAL)
        task.pdeath_signal = arg2
        return 0
    if option == PR_GET_PDEATHSIG:
        task.mm.copy_to_user(arg2, struct.pack("<i", getattr(task, "pdeath_signal", 0)))
        return 0
    if option == PR_GET_DUMPABLE:
        return state.get("dumpable", 1)
    if option == PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise SyscallError(EINVAL)
        state["dumpable"] = arg2
        return 0
    if option == PR_GET_KEEPCAPS:
        return state.get("keepcaps", 0)
    if option == PR_SET_KEEPCAPS:
        if arg2 > 1:
            raise SyscallError(EINVAL)
        state["keepcaps"] = arg2
        return 0
    if option == PR_GET_SECCOMP:
        return 0
    if option == PR_CAPBSET_READ:
        if arg2 > CAP_LAST_CAP:
            raise SyscallError(EINVAL)
        return 1
    if option == PR_CAPBSET_DROP:
        raise SyscallError(EPERM if arg2 <= CAP_LAST_CAP else EINVAL)
    if option == PR_SET_TIMERSLACK:
        state["timerslack"] = arg2 or DEFAULT_TIMER_SLACK_NS
        return 0
    if option == PR_GET_TIMERSLACK:
        return state.get("timerslack", DEFAULT_TIMER_SLACK_NS)
    if option == PR_SET_CHILD_SUBREAPER:
        state["subreaper"] = int(bool(arg2))
        return 0
    if option == PR_GET_CHILD_SUBREAPER:
        task.mm.copy_to_user(arg2, struct.pack("<i", state.get("subreaper", 0)))
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise SyscallError(EINVAL)
        state["no_new_privs"] = 1
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        if arg2 or arg3 or arg4 or arg5:
            raise SyscallError(EINVAL)
        return state.get("no_new_privs", 0)
    if option == PR_GET_TID_ADDRESS:
        task.mm.copy_to_user(arg2, struct.pack("<Q", task.clear_child_tid))
        return 0
    if option == PR_SET_THP_DISABLE:
        if arg3 or arg4 or arg5:
            raise SyscallError(EINVAL)
        state["thp_disable"] = int(bool(arg2))
        return 0
    if option == PR_GET_THP_DISABLE:
        if arg2 or arg3 or arg4 or arg5:
            raise SyscallError(EINVAL)
        return state.get("thp_disable", 0)
    if option == PR_SET_MM:
        raise SyscallError(EPERM)            # CAP_SYS_RESOURCE
    raise SyscallError(EINVAL)


SYSCALLS = {SYS_prctl: sys_prctl}
