"""Process exit, zombies and wait (kernel/exit.c).

When the last thread of a process ends (exit_group, the last exit, or a
fatal signal), Kernel.exit_group runs the rest of do_exit in its order:

- mm_release for each task that was still running: the vfork parent is
  woken (complete_vfork_done);
- exit_mm: ``Kernel.mmput`` drops each task's reference; the last one tears
  the address space down (exit_mmap) after the TLB shootdown completed;
- ``exit_process`` (exit_notify): live children become orphans (reparented to an init outside
  the machine: they are reaped as soon as they exit), zombie children are
  released; the process becomes a zombie holding its wait status, the
  parent's waiters are completed and the parent is sent ``exit_signal``
  (SIGCHLD, ignored by default). A parent that ignores SIGCHLD (SIG_IGN or
  SA_NOCLDWAIT) gets its children reaped at once, as Linux autoreaps them;
- then the CPU schedules another task.

wait4/waitid (do_wait, wait_consider_task, wait_task_zombie) pick an
eligible child: a zombie is reaped at once; otherwise WNOHANG returns 0, or
the caller sleeps (scheduler.block_current) until a child's exit completes
its request; no eligible child at all is -ECHILD. A signal ends the sleep
with -EINTR, or, when its handler has SA_RESTART, runs the call again after
the handler (-ERESTARTSYS).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel import signals
from emu_x86.kernel.errno import EAGAIN, ECHILD, EFAULT, EINVAL, ESRCH, SyscallError
from emu_x86.kernel.file import O_NONBLOCK
from emu_x86.kernel.jobctl import kill_orphaned_pgrp, wait_report
from emu_x86.kernel.pidfd import notify_pidfd, pidfd_process
from emu_x86.kernel.ptrace import wait_task_traced, wait_tracees
from emu_x86.kernel.sigframe import SIG_IGN, SigInfo, get_action, send_signal, sigbit
from emu_x86.kernel.task import TASK_EXITED, Process, Task

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

MASK64 = (1 << 64) - 1
ZOMBIE, DEAD = "zombie", "dead"

# wait options (include/uapi/linux/wait.h)
WNOHANG, WUNTRACED, WSTOPPED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 2, 4, 8, 0x01000000
__WNOTHREAD, __WALL, __WCLONE = 0x20000000, 0x40000000, 0x80000000
WAIT4_VALID_OPTIONS = WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE
WAITID_VALID_OPTIONS = WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
# si_code for SIGCHLD (include/uapi/asm-generic/siginfo.h)
CLD_EXITED, CLD_KILLED = 1, 2
SA_NOCLDWAIT = 0x2
RUSAGE_BYTES = 144
SIGINFO_BYTES = 128


@dataclass
class WaitRequest:
    """One wait4/waitid call (struct wait_opts): which children (``pid``:
    -1 any, > 0 that one, < -1 the members of group -pid), the options, and
    where the results go."""
    pid: int
    options: int
    status_address: int = 0
    infop_address: int = 0
    rusage_address: int = 0
    is_waitid: bool = False
    syscall_number: int = 61      # run again after a SA_RESTART handler (-ERESTARTSYS)


def wait_status(process: Process) -> int:
    """The wait status word: exit code << 8, or the killing signal in the low
    7 bits (no core dumps are written, so the 0x80 core flag is never set)."""
    if process.killed_by_signal is not None:
        return process.killed_by_signal & 0x7F
    return (process.exit_status & 0xFF) << 8


# ---- exit ------------------------------------------------------------------------

def mm_release(kernel: "Kernel", task: Task, waker: "VCpu | None") -> None:
    """The task is done with its address space: a vfork parent may go on
    (mm_release's complete_vfork_done)."""
    task.wait_request = None
    if (task.ptrace is not None or task.ptraced) and task.state == TASK_EXITED:   # not exec's mm_release
        from emu_x86.kernel.ptrace import ptrace_task_exit
        ptrace_task_exit(kernel, task, waker)
    parent_task = task.vfork_done
    if parent_task is not None:
        task.vfork_done = None
        parent_task.sleep_uninterruptible = False
        kernel.scheduler.wake_up(parent_task, waker)


def exit_mm(kernel: "Kernel", task: Task) -> None:
    """Drop the task's reference to its mm (exit_mm -> mmput)."""
    kernel.mmput(task.mm)


def exit_process(kernel: "Kernel", process: Process, waker: "VCpu | None") -> None:
    """do_exit's notifications once every task of ``process`` has stopped and
    released its mm (Kernel.exit_group calls mm_release and mmput first)."""
    if process.exit_state is not None:
        return
    kernel.counters["process_exits"] += 1
    exit_files(kernel, process)
    exit_notify(kernel, process, waker)


def exit_files(kernel: "Kernel", process: Process) -> None:
    """exit_files: drop the process's fd table; the last holder closes every file
    (a pipe's reader sees EOF once every writer's process is gone)."""
    files, process.files = process.files, None
    if files is None:
        return
    files.references -= 1
    if files.references == 0:
        files.close_all(kernel)


def exit_notify(kernel: "Kernel", process: Process, waker: "VCpu | None") -> None:
    """Orphan the children, become a zombie (or be reaped), tell the parent."""
    # Groups this exit leaves orphaned with stopped members get SIGHUP + SIGCONT:
    # the process's own group, then each child's (kill_orphaned_pgrp).
    kill_orphaned_pgrp(kernel, waker, process, process.parent, exiting=process)
    for child in list(process.children):
        child.parent = None
        if child.exit_state == ZOMBIE:
            release_task(kernel, child)
        else:
            kill_orphaned_pgrp(kernel, waker, child, process, exiting=None)   # reparent_leader
    process.children.clear()
    parent = process.parent
    if parent is None or parent.exit_state is not None:
        process.exit_state = ZOMBIE
        notify_pidfd(kernel, process, waker)
        release_task(kernel, process)
        return
    process.exit_state = ZOMBIE
    notify_pidfd(kernel, process, waker)
    action = get_action(parent.tasks[0], signals.SIGCHLD)
    if process.exit_signal == signals.SIGCHLD and (action.handler == SIG_IGN or action.flags & SA_NOCLDWAIT):
        release_task(kernel, process)          # autoreap: nobody will wait for it
    wake_waiters(kernel, parent, waker)
    if process.exit_signal:
        code = CLD_KILLED if process.killed_by_signal is not None else CLD_EXITED
        status = process.killed_by_signal if process.killed_by_signal is not None else process.exit_status
        info = SigInfo(process.exit_signal, code, pid=process.pid, uid=_uid_of(process), status=status)
        target = _signal_target(parent, process.exit_signal)
        if target is not None:
            send_signal(kernel, waker, target, info)


def _uid_of(process: Process) -> int:
    """The real uid a child's SIGCHLD and wait report (si_uid: from_kuid_munged(task_uid))."""
    from emu_x86.kernel.exec import GUEST_UID
    return process.cred.uid if process.cred is not None else GUEST_UID


def release_task(kernel: "Kernel", process: Process) -> None:
    """Forget a reaped process (release_task): its pid becomes unused."""
    process.exit_state = DEAD
    kernel.processes.pop(process.pid, None)
    notify_pidfd(kernel, process, None)          # pollers now see POLLHUP
    if process.parent is not None and process in process.parent.children:
        process.parent.children.remove(process)


def _signal_target(process: Process, signo: int) -> Task | None:
    """The thread that takes a process-directed signal: one that does not block it, if any."""
    live = [task for task in process.tasks if task.state != TASK_EXITED]
    unblocked = [task for task in live if not task.signal_mask & sigbit(signo)]
    return (unblocked or live or [None])[0]


# ---- wait ------------------------------------------------------------------------

def _eligible(child: Process, request: WaitRequest) -> bool:
    """eligible_pid + eligible_child: the pid selector, then __WCLONE/__WALL
    (only children whose exit signal is SIGCHLD count without them)."""
    if request.pid > 0 and child.pid != request.pid:
        return False
    if request.pid < -1 and child.pgid != -request.pid:
        return False                 # waitpid(-pgid) / waitpid(0): a member of that group
    if request.options & __WALL:
        return True
    return (child.exit_signal != signals.SIGCHLD) == bool(request.options & __WCLONE)


def do_wait(kernel: "Kernel", task: Task, request: WaitRequest) -> int | None:
    """Reap an eligible zombie (its pid, or 0 for waitid), 0 with WNOHANG when
    children live on, -ECHILD when there are none; None: sleep and retry at
    the next child exit."""
    eligible = [child for child in task.process.children if _eligible(child, request)]
    tracees = wait_tracees(task, request) if any(waiter.ptraced for waiter in task.process.tasks) else ()
    if not eligible and not tracees:
        return -ECHILD
    for tracee in tracees:
        # ptrace_do_wait: a ptrace stop, or a traced thread's exit.
        result = wait_task_traced(kernel, task, tracee, request)
        if result is not None:
            return result
    for child in eligible:
        # wait_consider_task's order per child: an exit, a stop, a continue.
        if child.exit_state == ZOMBIE:
            if request.options & WEXITED or not request.is_waitid:
                return wait_task_zombie(kernel, task, child, request)
            continue
        report = wait_report(child, request.options, consume=not request.options & WNOWAIT)
        if report is not None:
            return _report_job_control(kernel, task, child, request, report)
    if request.options & WNOHANG:
        if request.is_waitid and request.infop_address:
            return _put_user(task, request.infop_address, bytes(SIGINFO_BYTES), 0)
        return 0
    return None


def wait_task_zombie(kernel: "Kernel", task: Task, child: Process, request: WaitRequest) -> int:
    """Report ``child``'s exit to the waiter's memory and release it (unless WNOWAIT)."""
    status = wait_status(child)
    result = 0 if request.is_waitid else child.pid
    if request.rusage_address:
        result = _put_user(task, request.rusage_address, bytes(RUSAGE_BYTES), result)
    if request.is_waitid:
        killed = child.killed_by_signal is not None
        info = SigInfo(signals.SIGCHLD, CLD_KILLED if killed else CLD_EXITED, pid=child.pid, uid=_uid_of(child),
                       status=child.killed_by_signal if killed else child.exit_status)
        if request.infop_address:
            result = _put_user(task, request.infop_address, info.pack(), result)
    elif request.status_address:
        result = _put_user(task, request.status_address, struct.pack("<i", status), result)
    if not request.options & WNOWAIT:
        release_task(kernel, child)
    return result


def _report_job_control(kernel: "Kernel", task: Task, child: Process, request: WaitRequest,
                        report: tuple[int, int, int]) -> int:
    """wait_task_stopped / wait_task_continued's answer: the status word, or waitid's siginfo."""
    status, code, si_status = report
    result = 0 if request.is_waitid else child.pid
    if request.rusage_address:
        result = _put_user(task, request.rusage_address, bytes(RUSAGE_BYTES), result)
    if request.is_waitid:
        if request.infop_address:
            info = SigInfo(signals.SIGCHLD, code, pid=child.pid, uid=_uid_of(child), status=si_status)
            result = _put_user(task, request.infop_address, info.pack(), result)
    elif request.status_address:
        result = _put_user(task, request.status_address, struct.pack("<i", status), result)
    return result


def _put_user(task: Task, address: int, data: bytes, result: int) -> int:
    try:
        task.mm.copy_to_user(address, data)
    except SyscallError as error:
        return -error.errno
    return result


def wake_waiters(kernel: "Kernel", parent: Process, waker: "VCpu | None") -> None:
    """__wake_up_parent: every thread of ``parent`` sleeping in wait retries its
    request; those that now have an answer return it."""
    for waiter in parent.tasks:
        request = waiter.wait_request
        if request is None or waiter.state != "sleeping":
            continue
        result = do_wait(kernel, waiter, request)
        if result is None:
            continue
        waiter.wait_request = None
        waiter.registers["rax"] = result & MASK64
        kernel.scheduler.wake_up(waiter, waker)


def _wait_or_sleep(kernel: "Kernel", vcpu: "VCpu", task: Task, request: WaitRequest) -> int | None:
    result = do_wait(kernel, task, request)
    if result is not None:
        return result
    task.wait_request = request
    vcpu.write_register("rax", 0)
    kernel.scheduler.block_current(vcpu)
    return None


def _pid_selector(kernel: "Kernel", task: Task, pid: int) -> int:
    """wait4's pid as WaitRequest.pid: -1 any child, > 0 that child, < -1 the
    group -pid; 0 is the caller's own group, taken now (task_pgrp at the call)."""
    if pid == 0:
        return -task.process.pgid
    return pid


def sys_wait4(kernel, vcpu, task, pid, status_address, options, rusage_address, *_):
    pid = _signed32(pid)
    options &= 0xFFFFFFFF
    if options & ~WAIT4_VALID_OPTIONS:
        raise SyscallError(EINVAL)
    if pid == -(1 << 31):
        raise SyscallError(ESRCH)      # -INT_MIN names no group
    request = WaitRequest(pid=_pid_selector(kernel, task, pid), options=options | WEXITED,
                          status_address=status_address, rusage_address=rusage_address)
    return _wait_or_sleep(kernel, vcpu, task, request)


def sys_waitid(kernel, vcpu, task, idtype, upid, infop, options, rusage_address, *_):
    """waitid(2) in kernel/exit.c's order: kernel_waitid's checks and the wait
    itself first; then, whatever it returned, a non-NULL ``infop`` is written
    -- the child's siginfo, or zeroes (si_signo 0) with no child to report or
    on an error -- so an unwritable ``infop`` is EFAULT even where the wait
    failed (EINVAL, ECHILD)."""
    try:
        result = _kernel_waitid(kernel, vcpu, task, idtype, upid, infop, options, rusage_address)
    except SyscallError as error:
        result = -error.errno
    if result is None or not infop or result >= 0:
        return result             # a sleep (the wake-up writes infop), or infop written already
    if result != -EFAULT:
        # No child reported: si_signo, si_errno, si_code, si_pid, si_uid, si_status all 0.
        result = _put_user(task, infop, bytes(WAITID_ZEROED_HEAD_BYTES), result)
        result = _put_user(task, infop + WAITID_ZEROED_TAIL_OFFSET, bytes(WAITID_ZEROED_TAIL_BYTES), result)
    return result


# The siginfo fields waitid writes when no child is reported: si_signo,
# si_errno, si_code (bytes 0-11), then si_pid, si_uid, si_status (16-27).
WAITID_ZEROED_HEAD_BYTES = 12
WAITID_ZEROED_TAIL_OFFSET = 16
WAITID_ZEROED_TAIL_BYTES = 12


def _kernel_waitid(kernel, vcpu, task, idtype, upid, infop, options, rusage_address):
    options &= 0xFFFFFFFF
    upid = _signed32(upid)
    if options & ~WAITID_VALID_OPTIONS or not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise SyscallError(EINVAL)
    if idtype == P_ALL:
        pid = -1
    elif idtype == P_PID:
        if upid <= 0:
            raise SyscallError(EINVAL)
        pid = upid
    elif idtype == P_PGID:
        if upid < 0:
            raise SyscallError(EINVAL)
        pid = _pid_selector(kernel, task, -upid if upid else 0)
    elif idtype == P_PIDFD:
        if upid < 0:
            raise SyscallError(EINVAL)
        pidfd = pidfd_process(task, upid)          # pidfd_get_pid: EBADF for anything else
        if pidfd.process.exit_state == DEAD:
            return -ECHILD                         # reaped: no such child any more
        pid = pidfd.process.pid
        if pidfd.flags & O_NONBLOCK and not options & WNOHANG:
            # kernel_waitid: a non-blocking pidfd waits as WNOHANG, and finding
            # nothing to report is -EAGAIN instead of 0.
            options |= WNOHANG
            child = pidfd.process
            reportable = (child.exit_state == ZOMBIE and options & WEXITED
                          or wait_report(child, options, consume=False) is not None)
            if not reportable:
                return -EAGAIN if child in task.process.children else -ECHILD
    else:
        raise SyscallError(EINVAL)
    if pid == 0:
        return -ECHILD
    request = WaitRequest(pid=pid, options=options, infop_address=infop, rusage_address=rusage_address,
                          is_waitid=True, syscall_number=247)
    return _wait_or_sleep(kernel, vcpu, task, request)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value
