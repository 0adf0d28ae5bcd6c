"""Job control: group stop and continue (kernel/signal.c prepare_signal,
do_signal_stop, do_notify_parent_cldstop; kernel/exit.c wait_task_stopped,
wait_task_continued).

A stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) whose action is the
default stops the whole thread group. The thread that takes it stops (the
scheduler's TASK_STOPPED: off every run queue, ``enqueue`` refuses it) and
queues SIGSTOP on each other thread; a thread running elsewhere takes it at
its next return to user mode (kicked by IPI), one waiting on a run queue
when it is switched in. A thread sleeping in a system call is not woken:
Linux would wake it, stop it and restart the call on SIGCONT; here it
stays asleep and counts as stopped, and takes its queued SIGSTOP if its
sleep ends while the group is still stopped -- the same observable result.
When every live thread is stopped (or so asleep) the group stop is
complete: the parent's waiters see it (WUNTRACED/WSTOPPED: status
``sig << 8 | 0x7f``, CLD_STOPPED) and the parent gets SIGCHLD unless its
SIGCHLD action has SA_NOCLDSTOP.

SIGCONT, whatever its action, and SIGKILL first wake every stopped thread
(prepare_signal); SIGCONT also discards pending stop signals, a completed
stop becomes a WCONTINUED report (status 0xffff, CLD_CONTINUED) with a
SIGCHLD, and a stop signal discards a pending SIGCONT. SIGTSTP, SIGTTIN and
SIGTTOU are dropped for a process in an orphaned process group (no member
with a parent in another group of the same session): no job-control shell
could continue it. The first process's group is orphaned here -- its parent
is outside the machine. When an exit leaves a group with a stopped member
orphaned -- the exiting process's own group, or a child's group once the
child is reparented -- that group gets SIGHUP then SIGCONT (kill_orphaned_pgrp).
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel import signals
from emu_x86.kernel.task import TASK_EXITED, TASK_SLEEPING, TASK_STOPPED

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.sigframe import SigInfo
    from emu_x86.kernel.task import Process, Task

STOP_SIGNALS = frozenset((signals.SIGSTOP, signals.SIGTSTP, signals.SIGTTIN, signals.SIGTTOU))
PREPARE_SIGNALS = STOP_SIGNALS | {signals.SIGCONT, signals.SIGKILL}
CLD_STOPPED, CLD_CONTINUED = 5, 6
SA_NOCLDSTOP = 0x1


def is_pgrp_orphaned(kernel: "Kernel", pgid: int, ignored: "Process | None" = None) -> bool:
    """will_become_orphaned_pgrp: no member (but ``ignored``, the one exiting) has a
    parent in another group of its session."""
    from emu_x86.kernel.process_groups import group_members
    for member in group_members(kernel, pgid):
        parent = member.parent
        if member is ignored or member.exit_state is not None or parent is None or parent.exit_state is not None:
            continue
        if parent.pgid != pgid and parent.sid == member.sid:
            return False
    return True


def kill_orphaned_pgrp(kernel: "Kernel", waker: "VCpu | None", process: "Process", parent: "Process | None",
                       exiting: "Process | None") -> None:
    """kill_orphaned_pgrp: when ``process``'s link to ``parent`` (another group of the
    same session) was its group's last one, and the group has stopped members, the
    group gets SIGHUP then SIGCONT, since no job-control shell can continue it now."""
    from emu_x86.kernel.process_groups import group_members
    from emu_x86.kernel.sigframe import SigInfo
    if parent is None or parent.pgid == process.pgid or parent.sid != process.sid:
        return
    pgid = process.pgid
    if not is_pgrp_orphaned(kernel, pgid, exiting):
        return
    if not any(member.group_stopped for member in group_members(kernel, pgid)):
        return
    for signo in (signals.SIGHUP, signals.SIGCONT):
        for member in group_members(kernel, pgid):
            if member is exiting or member.exit_state is not None:
                continue
            live = _live_threads(member)
            if live:
                from emu_x86.kernel.sigframe import send_signal
                send_signal(kernel, waker, live[0], SigInfo(signo, signals.SI_KERNEL))


def _live_threads(process: "Process") -> list["Task"]:
    return [t for t in process.tasks if t.state != TASK_EXITED]


def prepare_signal(kernel: "Kernel", sender: "VCpu | None", target: "Task", info: "SigInfo") -> bool:
    """Generation-time work of a job-control signal (prepare_signal). True when
    the signal has been dealt with here and send_signal must do nothing more."""
    from emu_x86.kernel.sigframe import SIG_DFL, get_action
    process = target.process
    signo = info.signo
    if signo in STOP_SIGNALS:
        for thread in process.tasks:        # a stop cancels a pending SIGCONT
            thread.pending_signals = [i for i in thread.pending_signals if i.signo != signals.SIGCONT]
        if target.ptrace is not None or get_action(target, signo).handler != SIG_DFL:
            return False
        if target.state == TASK_SLEEPING and not target.sleep_uninterruptible:
            # Stop in place: no wake-up (see the module notes).
            if signo != signals.SIGSTOP and is_pgrp_orphaned(kernel, process.pgid):
                return True
            target.pending_signals.append(info)
            _begin_group_stop(kernel, sender, process, target, signo)
            return True
        return False
    # SIGCONT and SIGKILL: the stopped threads run again, with no stop left pending.
    for thread in process.tasks:
        thread.pending_signals = [i for i in thread.pending_signals if i.signo not in STOP_SIGNALS]
    if signo == signals.SIGCONT:
        was_stopped = process.group_stopped
        _wake_stopped(kernel, sender, process)
        if was_stopped:
            process.stop_report = 0
            process.continued_report = True
            _notify_parent(kernel, sender, process, CLD_CONTINUED, signals.SIGCONT)
    else:
        _wake_stopped(kernel, sender, process)
    return False


def _wake_stopped(kernel: "Kernel", sender: "VCpu | None", process: "Process") -> None:
    process.group_stop_signo = 0
    process.group_stopped = False
    for thread in process.tasks:
        if thread.state == TASK_STOPPED:
            thread.state = TASK_SLEEPING
            kernel.scheduler.wake_up(thread, sender)


def do_signal_stop(kernel: "Kernel", vcpu: "VCpu", task: "Task", signo: int) -> None:
    """The running ``task`` takes a default-action stop signal on its way to user mode."""
    process = task.process
    if signo != signals.SIGSTOP and not process.group_stop_signo and is_pgrp_orphaned(kernel, process.pgid):
        return                              # orphaned process group: TSTP/TTIN/TTOU ignored
    _begin_group_stop(kernel, vcpu, process, task, signo)
    # The parent hears of a completed stop once this CPU is free but before it
    # schedules, so a waiter woken onto this CPU is run by that schedule.
    kernel.scheduler.trace_stop_current(vcpu, lambda: _complete_if_stopped(kernel, vcpu, process),
                                        state=TASK_STOPPED)


def _begin_group_stop(kernel: "Kernel", vcpu: "VCpu | None", process: "Process", initiator: "Task",
                      signo: int) -> None:
    """Start the group stop (JOBCTL_STOP_PENDING on every thread) unless one is under way."""
    from emu_x86.kernel.sigframe import SigInfo, kick_process
    if not process.group_stop_signo:
        process.group_stop_signo = signo    # signal->group_exit_code: what wait reports
        for thread in _live_threads(process):
            if thread is initiator or thread.state == TASK_STOPPED:
                continue
            thread.pending_signals.append(SigInfo(signals.SIGSTOP, signals.SI_KERNEL))
            if thread.state == "running" and vcpu is not None and thread.cpu not in (None, vcpu.index):
                kick_process(kernel, vcpu, thread)
    _complete_if_stopped(kernel, vcpu, process)


def _complete_if_stopped(kernel: "Kernel", vcpu: "VCpu | None", process: "Process") -> None:
    """The last thread to stop completes the group stop and tells the parent."""
    if process.group_stopped or not process.group_stop_signo:
        return
    for thread in _live_threads(process):
        if thread.state == TASK_STOPPED:
            continue
        if thread.state == TASK_SLEEPING and not thread.sleep_uninterruptible:
            continue
        return
    process.group_stopped = True
    process.stop_report = process.group_stop_signo
    process.continued_report = False
    _notify_parent(kernel, vcpu, process, CLD_STOPPED, process.group_stop_signo)


def _notify_parent(kernel: "Kernel", vcpu: "VCpu | None", process: "Process", code: int, status: int) -> None:
    """do_notify_parent_cldstop: the parent's waiters retry; SIGCHLD unless SA_NOCLDSTOP."""
    from emu_x86.kernel.cred import cred_of
    from emu_x86.kernel.exit import _signal_target, wake_waiters
    from emu_x86.kernel.sigframe import SigInfo, get_action, send_signal
    parent = process.parent
    if parent is None or parent.exit_state is not None or not parent.tasks:
        return
    wake_waiters(kernel, parent, vcpu)
    if get_action(parent.tasks[0], signals.SIGCHLD).flags & SA_NOCLDSTOP:
        return
    target = _signal_target(parent, signals.SIGCHLD)
    if target is not None:
        uid = cred_of(process.tasks[0]).uid if process.tasks else 0
        send_signal(kernel, vcpu, target, SigInfo(signals.SIGCHLD, code, pid=process.pid, uid=uid, status=status))


def wait_report(child: "Process", options: int, consume: bool) -> tuple[int, int, int] | None:
    """wait_task_stopped / wait_task_continued: (wait status, si_code, si_status)
    for a stop or continue not yet reported, if the options ask for it."""
    from emu_x86.kernel.exit import WCONTINUED, WSTOPPED
    if options & WSTOPPED and child.stop_report:
        signo = child.stop_report
        if consume:
            child.stop_report = 0
        return (signo << 8) | 0x7F, CLD_STOPPED, signo
    if options & WCONTINUED and child.continued_report:
        if consume:
            child.continued_report = False
        return 0xFFFF, CLD_CONTINUED, signals.SIGCONT
    return None


__all__ = ["PREPARE_SIGNALS", "STOP_SIGNALS", "do_signal_stop", "is_pgrp_orphaned", "kill_orphaned_pgrp", "prepare_signal",
           "wait_report"]
