"""ptrace(2): a guest task tracing its children or threads (kernel/ptrace.c,
arch/x86/kernel/ptrace.c, the ptrace parts of kernel/signal.c and
kernel/entry/common.c, arch/x86/kernel/fpu/regset.c).

State (who owns what):

- ``Task.ptrace`` (a ``PtraceState``, None when untraced) belongs to the
  tracee and is written by this module only: the tracer, the options, the
  resume mode (PTRACE_SYSCALL/SYSEMU work, single step), and while the
  tracee is stopped the stop's ``exit_code`` (what wait reports; cleared once
  reported), ``last_siginfo``, the event message and ``resume`` -- the kernel
  work that continues when the tracer lets the tracee go.
- ``Task.ptraced``: the tracees of a tracer task (its ``ptraced`` list).

Linux stops a tracee in the middle of kernel code (ptrace_stop schedules
away inside syscall entry, signal delivery or do_exit) and resumes it there.
This kernel has no kernel stacks, so every stop names its continuation
(``Task.ptrace_resume``); ``Kernel.switch_to`` runs it once the tracee is
back on a CPU with its registers loaded, in place of the usual return to user
mode. A stopped tracee is in ``TASK_TRACED``: off every run queue, woken only
by the tracer (resume, detach), SIGKILL or the tracer's exit.

Stops and what wait reports (status word; waitid: CLD_TRAPPED, si_status):

- signal-delivery-stop: every signal but SIGKILL, before its action is taken
  (get_signal -> ptrace_signal); the tracer's resume signal is what is
  delivered (0: none; another number: a new SI_USER siginfo);
  ``(sig << 8) | 0x7f``;
- syscall-entry/exit stops (PTRACE_SYSCALL, PTRACE_SYSEMU): SIGTRAP, or
  SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD (syscall_trace_enter /
  syscall_exit_work); at entry RAX reads -ENOSYS and ``orig_rax`` the number;
  a tracer that sets orig_rax to -1 skips the call, as does SYSEMU;
- event stops: ``SIGTRAP | PTRACE_EVENT_x << 8`` for fork/vfork/clone (the
  new task is attached too and starts with SIGSTOP, or with a
  PTRACE_EVENT_STOP when seized), exit (exit/exit_group calls) and
  PTRACE_INTERRUPT / group stops of seized tracees (PTRACE_EVENT_STOP);
- single step: PTRACE_SINGLESTEP sets RFLAGS.TF (TIF_FORCED_TF when the
  tracee had it clear, hidden from GETREGS); the machine raises #DB after one
  instruction, which is a SIGTRAP (TRAP_TRACE) signal-delivery-stop. Nothing
  is added to the machine's hot path.

A traced thread that exits stays for its tracer's wait (a ptrace zombie)
unless it is a process leader traced by its parent, whose exit the parent
reaps as usual. A tracer's exit detaches its tracees (SIGKILL with
PTRACE_O_EXITKILL).

Signals that interrupt a traced task's sleep leave -ERESTARTSYS (wait) or
-ERESTARTNOHAND (others) in RAX, visible at the syscall-exit stop; the
return to user mode then restarts the call when no handler runs, or turns it
into -EINTR (arch_do_signal_or_restart / handle_signal). Untraced tasks keep
the kernel's older rule (emu_x86/kernel/sigframe.py send_signal).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK, PTE_PRESENT
from emu_x86.kernel import signals
from emu_x86.kernel.errno import EINVAL, EIO, ENOSYS, EPERM, ESRCH, SyscallError
from emu_x86.kernel.cred import cred_of
from emu_x86.kernel.mm.mm import PROT_EXEC, PROT_WRITE, TASK_SIZE
from emu_x86.kernel.ptrace_regset import (
    USER_I387_BYTES,
    USER_REGS_BYTES,
    X86_EFLAGS_TF,
    _peek_user,
    _poke_user,
    _set_user_regs,
    _signed64,
    _user_regs_bytes,
    copy_uabi_to_xstate,
    copy_xstate_to_uabi,
    regset,
)
from emu_x86.kernel.sigframe import (
    SA_RESTART,
    SIG_DFL,
    SIG_IGN,
    SigInfo,
    get_action,
    handle_signal,
    sigbit,
)
from emu_x86.kernel.task import TASK_EXITED, TASK_RUNNABLE, TASK_SLEEPING, TASK_TRACED, Task

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

SYS_ptrace = 101
SYS_clone, SYS_fork, SYS_vfork, SYS_exit, SYS_exit_group, SYS_clone3 = 56, 57, 58, 60, 231, 435
SYS_restart_syscall = 219
SYS_execve, SYS_execveat = 59, 322
MASK64 = (1 << 64) - 1

# Requests (include/uapi/linux/ptrace.h, arch/x86/include/uapi/asm/ptrace-abi.h).
PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_PEEKDATA, PTRACE_PEEKUSR = 0, 1, 2, 3
PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_POKEUSR = 4, 5, 6
PTRACE_CONT, PTRACE_KILL, PTRACE_SINGLESTEP = 7, 8, 9
PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_GETFPREGS, PTRACE_SETFPREGS = 12, 13, 14, 15
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SYSCALL = 16, 17, 24
PTRACE_SYSEMU, PTRACE_SYSEMU_SINGLESTEP = 31, 32
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO, PTRACE_SETSIGINFO = 0x4200, 0x4201, 0x4202, 0x4203
PTRACE_GETREGSET, PTRACE_SETREGSET, PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4204, 0x4205, 0x4206, 0x4207
PTRACE_GET_SYSCALL_INFO = 0x420E

# Options and events.
PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACECLONE = 1, 2, 4, 8
PTRACE_O_TRACEEXEC, PTRACE_O_TRACEVFORKDONE, PTRACE_O_TRACEEXIT, PTRACE_O_TRACESECCOMP = 0x10, 0x20, 0x40, 0x80
PTRACE_O_EXITKILL, PTRACE_O_SUSPEND_SECCOMP = 0x100000, 0x200000
PTRACE_O_MASK = 0xFF | PTRACE_O_EXITKILL | PTRACE_O_SUSPEND_SECCOMP
PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC = 1, 2, 3, 4
PTRACE_EVENT_VFORK_DONE, PTRACE_EVENT_EXIT, PTRACE_EVENT_STOP = 5, 6, 128
EVENT_OPTIONS = {PTRACE_EVENT_FORK: PTRACE_O_TRACEFORK, PTRACE_EVENT_VFORK: PTRACE_O_TRACEVFORK,
                 PTRACE_EVENT_CLONE: PTRACE_O_TRACECLONE, PTRACE_EVENT_EXEC: PTRACE_O_TRACEEXEC,
                 PTRACE_EVENT_VFORK_DONE: PTRACE_O_TRACEVFORKDONE, PTRACE_EVENT_EXIT: PTRACE_O_TRACEEXIT}
CLONE_VFORK, CLONE_UNTRACED = 0x4000, 0x00800000

# si_code of SIGCHLD for a ptrace stop; syscall-info ops.
CLD_TRAPPED = 4
SI_USER, SI_KERNEL = 0, 0x80
PTRACE_SYSCALL_INFO_NONE, PTRACE_SYSCALL_INFO_ENTRY, PTRACE_SYSCALL_INFO_EXIT = 0, 1, 2
AUDIT_ARCH_X86_64 = 0xC000003E
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
STOP_SIGNALS = (signals.SIGSTOP, signals.SIGTSTP, signals.SIGTTIN, signals.SIGTTOU)
SYSCALL_INSTRUCTION_BYTES = 2

_SYSCALL_REGISTERS = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9")


@dataclass
class PtraceState:
    """One tracee's ptrace link (task->ptrace, ->parent, ->exit_code,
    ->last_siginfo, ->ptrace_message, TIF_SYSCALL_*, TIF_SINGLESTEP)."""
    tracer: Task
    seized: bool = False
    options: int = 0
    syscall_work: str = ""             # "", "syscall" or "sysemu": the resume request's syscall stops
    singlestep: bool = False
    forced_tf: bool = False            # TIF_FORCED_TF: TF is ours, not the tracee's
    exit_code: int = 0                 # the stop wait reports; 0 once reported
    last_siginfo: SigInfo | None = None
    message: int = 0                   # PTRACE_GETEVENTMSG
    syscall_stop: int = PTRACE_SYSCALL_INFO_NONE
    interrupt_pending: bool = False    # JOBCTL_TRAP_STOP: PTRACE_INTERRUPT or a seized child's first stop
    zombie_status: int | None = None   # an exited traced thread waiting for its tracer's wait
    exit_status_hint: int | None = None
    selectors: dict = field(default_factory=lambda: {"ds": 0, "es": 0, "fs": 0, "gs": 0})
    debugreg: list = field(default_factory=lambda: [0] * 8)


class RawSigInfo(SigInfo):
    """A siginfo as 128 raw bytes (PTRACE_SETSIGINFO, ptrace_do_notify's layout)."""

    def __init__(self, raw: bytes):
        signo, _errno, code = struct.unpack_from("<iii", raw)
        super().__init__(signo, code)
        self.raw = bytes(raw).ljust(128, b"\0")[:128]

    def pack(self) -> bytes:
        return self.raw


def _notify_info(signo: int, code: int, task: Task) -> RawSigInfo:
    """ptrace_do_notify's siginfo: si_code = the exit code, si_pid/si_uid of the tracee."""
    return RawSigInfo(struct.pack("<iii4xiI", signo, 0, code, task.tid, cred_of(task).uid))


# ---- finding tasks -----------------------------------------------------------------

def find_task(kernel: "Kernel", tid: int) -> Task | None:
    """find_task_by_vpid: a live thread of any process."""
    process = kernel.processes.get(tid)
    if process is not None:
        for task in process.tasks:
            if task.tid == tid and task.state != TASK_EXITED:
                return task
    for process in kernel.processes.values():
        for task in process.tasks:
            if task.tid == tid and task.state != TASK_EXITED:
                return task
    return None


def _traced_by(tracee: Task, task: Task) -> bool:
    """The caller's thread group traces ``tracee``. Linux requires the tracer
    thread itself; any thread of its group is accepted here (TRACEME names the
    parent process's first thread, not the thread that forked)."""
    return tracee.ptrace is not None and tracee.ptrace.tracer.process is task.process


# ---- stops -------------------------------------------------------------------------

def ptrace_stop(kernel: "Kernel", vcpu: "VCpu", task: Task, exit_code: int, info: SigInfo | None,
                resume: Callable) -> None:
    """The tracee stops (ptrace_stop): TASK_TRACED with ``exit_code`` for wait,
    the tracer's waiters woken and sent SIGCHLD (CLD_TRAPPED); ``resume(vcpu,
    task)`` runs when the tracer lets it go."""
    pt = task.ptrace
    pt.exit_code = exit_code
    pt.last_siginfo = info
    task.ptrace_resume = resume
    task.ptrace_resume_signal = 0
    kernel.counters["ptrace_stops"] += 1
    tracer = pt.tracer

    def notify() -> None:
        from emu_x86.kernel.exit import wake_waiters
        wake_waiters(kernel, tracer.process, vcpu)
        _notify_tracer_cldstop(kernel, vcpu, task, exit_code)

    kernel.scheduler.trace_stop_current(vcpu, notify)


def _notify_tracer_cldstop(kernel: "Kernel", vcpu: "VCpu", task: Task, exit_code: int) -> None:
    """do_notify_parent_cldstop(for_ptracer): SIGCHLD, CLD_TRAPPED, unless SA_NOCLDSTOP."""
    from emu_x86.kernel.exit import _signal_target
    from emu_x86.kernel.sigframe import send_signal
    tracer_process = task.ptrace.tracer.process
    if tracer_process.exit_state is not None or not tracer_process.tasks:
        return
    action = get_action(tracer_process.tasks[0], signals.SIGCHLD)
    if action.flags & 1:       # SA_NOCLDSTOP
        return
    target = _signal_target(tracer_process, signals.SIGCHLD)
    if target is not None:
        send_signal(kernel, vcpu, target, SigInfo(signals.SIGCHLD, CLD_TRAPPED, pid=task.tid, uid=cred_of(task).uid,
                                                  status=exit_code & 0x7F))


def ptrace_event_stop(kernel: "Kernel", vcpu: "VCpu", task: Task, event: int, message: int,
                      resume: Callable) -> None:
    """ptrace_event: a SIGTRAP | event << 8 stop with ``message`` for PTRACE_GETEVENTMSG."""
    task.ptrace.message = message
    code = signals.SIGTRAP | event << 8
    ptrace_stop(kernel, vcpu, task, code, _notify_info(signals.SIGTRAP, code, task), resume)


def _event_enabled(task: Task, event: int) -> bool:
    pt = task.ptrace
    return pt is not None and bool(pt.options & EVENT_OPTIONS[event])


def ptrace_signal(kernel: "Kernel", vcpu: "VCpu", task: Task, info: SigInfo) -> None:
    """A signal-delivery-stop (get_signal -> ptrace_signal); called by
    emu_x86/kernel/sigframe.py for every signal but SIGKILL of a traced task."""
    ptrace_stop(kernel, vcpu, task, info.signo, info,
                lambda v, t: _after_signal_stop(kernel, v, t, info))


def _after_signal_stop(kernel: "Kernel", vcpu: "VCpu", task: Task, info: SigInfo) -> None:
    """The rest of ptrace_signal and get_signal: deliver what the tracer chose."""
    pt = task.ptrace
    signr = task.ptrace_resume_signal
    if signr:
        if pt is not None and pt.last_siginfo is not None and signr == pt.last_siginfo.signo:
            info = pt.last_siginfo                      # PTRACE_SETSIGINFO may have changed it
        elif signr != info.signo:
            tracer_pid = pt.tracer.tid if pt is not None else 0
            info = SigInfo(signr, SI_USER, pid=tracer_pid, uid=cred_of(task).uid)
        if task.signal_mask & sigbit(signr) and signr != signals.SIGKILL:
            task.pending_signals.append(info)          # blocked now: requeue
        else:
            action = get_action(task, signr)
            if action.handler not in (SIG_DFL, SIG_IGN):
                _restart_fixup(vcpu, task, action)
                handle_signal(kernel, vcpu, task, info)
                _leave_syscall(task)
                return
            if action.handler == SIG_DFL and signr in STOP_SIGNALS and pt is not None:
                # do_signal_stop: a traced task reports the group stop to its tracer.
                # (A seized tracee's is a PTRACE_EVENT_STOP; a plain one has no siginfo.)
                code = signr | PTRACE_EVENT_STOP << 8 if pt.seized else signr
                ptrace_stop(kernel, vcpu, task, code, _notify_info(signals.SIGTRAP, code, task) if pt.seized
                            else None, lambda v, t: _return_to_user(kernel, v, t))
                return
            if action.handler == SIG_DFL and signr not in signals_default_ignored():
                handle_signal(kernel, vcpu, task, info)     # the default action: death
                return
    _return_to_user(kernel, vcpu, task)


def signals_default_ignored():
    from emu_x86.kernel.sigframe import DEFAULT_IGNORED
    return DEFAULT_IGNORED


# ---- the return to user mode of a traced task ----------------------------------------

def _return_to_user(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    """exit_to_user_mode_loop for a traced task: a pending PTRACE_INTERRUPT
    trap, then signals (each a signal-delivery-stop), then the syscall restart
    when no handler ran."""
    if kernel.current[vcpu.index] is not task:
        return
    pt = task.ptrace
    if pt is not None and pt.interrupt_pending:
        pt.interrupt_pending = False
        code = signals.SIGTRAP | PTRACE_EVENT_STOP << 8
        ptrace_stop(kernel, vcpu, task, code, _notify_info(signals.SIGTRAP, code, task),
                    lambda v, t: _return_to_user(kernel, v, t))
        return
    if task.pending_signals:
        from emu_x86.kernel.sigframe import deliver_pending_signals
        deliver_pending_signals(kernel, vcpu, task)
        if kernel.current[vcpu.index] is not task:
            return                  # stopped for a signal, or dead
    _restart_fixup(vcpu, task, None)
    _leave_syscall(task)


def _leave_syscall(task: Task) -> None:
    """Back in user mode: no syscall to restart (the next entry from an interrupt has orig_ax -1)."""
    task.orig_rax = -1
    pt = task.ptrace
    if pt is not None:
        pt.syscall_stop = PTRACE_SYSCALL_INFO_NONE


def _restart_fixup(vcpu: "VCpu", task: Task, action) -> None:
    """arch_do_signal_or_restart / handle_signal for a syscall a signal
    interrupted: with a handler, -EINTR (or a restart for -ERESTARTSYS under
    SA_RESTART, and always for -ERESTARTNOINTR); without one, restart."""
    if task.orig_rax < 0:
        return
    rax = _signed64(vcpu.read_register("rax"))
    if -rax not in (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK):
        return
    if action is not None:
        restart = -rax == ERESTARTNOINTR or (-rax == ERESTARTSYS and action.flags & SA_RESTART)
        if not restart:
            vcpu.write_register("rax", (-4) & MASK64)      # -EINTR
            return
    number = SYS_restart_syscall if -rax == ERESTART_RESTARTBLOCK else task.orig_rax
    vcpu.write_register("rax", number)
    vcpu.write_register("rip", vcpu.read_register("rip") - SYSCALL_INSTRUCTION_BYTES)


def ptrace_interrupted_sleep(target: Task, restart_number: int | None) -> int:
    """send_signal woke a traced task sleeping in a syscall: the RAX the
    syscall-exit stop shows, fixed up on the return to user mode."""
    if target.orig_rax < 0:
        # The call began before the task was traced, so its number was not
        # kept: wait4/waitid name theirs; any other call ends with -EINTR.
        if restart_number is None:
            return (-4) & MASK64
        target.orig_rax = restart_number
    errno = ERESTARTSYS if restart_number is not None else ERESTARTNOHAND
    return (-errno) & MASK64


def ptrace_signal_wake(kernel: "Kernel", sender: "VCpu | None", target: Task, info: SigInfo) -> bool:
    """send_signal to a stopped tracee: only SIGKILL wakes it (to die). True if handled."""
    if target.state != TASK_TRACED:
        return False
    if info.signo == signals.SIGKILL:
        def die(vcpu: "VCpu", task: Task) -> None:
            kernel.force_fatal_signal(task, signals.SIGKILL, vcpu.read_register("rip"), None)

        target.ptrace_resume = die
        target.ptrace.exit_code = 0
        target.state = TASK_SLEEPING
        kernel.scheduler.wake_up(target, sender)
    return True


def ptrace_resume_user(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    """Kernel.switch_to: the tracee (or a task detached while stopped) is back
    on a CPU with its registers; continue where it stopped."""
    work, task.ptrace_resume = task.ptrace_resume, None
    work(vcpu, task)


# ---- the syscall path of a traced task --------------------------------------------

def syscall_trace_dispatch(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    """do_syscall_64 for a traced task (emu_x86/kernel/syscall_table.py sends it here):
    orig_rax, RAX = -ENOSYS, the entry stop, the call, the exit stop, the
    return to user mode."""
    pt = task.ptrace
    number, *_args = vcpu.read_register_values(_SYSCALL_REGISTERS)
    task.orig_rax = _signed64(number)
    vcpu.write_register("rax", (-ENOSYS) & MASK64)
    if pt.syscall_work:
        emulated = pt.syscall_work == "sysemu"
        _syscall_stop(kernel, vcpu, task, PTRACE_SYSCALL_INFO_ENTRY,
                      lambda v, t: _after_entry_stop(kernel, v, t, emulated))
        return
    _run_syscall(kernel, vcpu, task)


def _syscall_stop(kernel: "Kernel", vcpu: "VCpu", task: Task, which: int, resume: Callable) -> None:
    """ptrace_report_syscall: SIGTRAP (| 0x80 with TRACESYSGOOD). A signal the
    tracer resumes with is sent to the tracee (send_sig, SEND_SIG_PRIV)."""
    pt = task.ptrace
    pt.syscall_stop = which
    code = signals.SIGTRAP | (0x80 if pt.options & PTRACE_O_TRACESYSGOOD else 0)

    def resumed(v: "VCpu", t: Task) -> None:
        if t.ptrace_resume_signal:
            t.pending_signals.append(SigInfo(t.ptrace_resume_signal, SI_KERNEL))
            t.ptrace_resume_signal = 0
        resume(v, t)

    ptrace_stop(kernel, vcpu, task, code, _notify_info(signals.SIGTRAP, code, task), resumed)


def _after_entry_stop(kernel: "Kernel", vcpu: "VCpu", task: Task, emulated: bool) -> None:
    """syscall_trace_enter after the stop: SYSEMU or a number of -1 skip the call
    (RAX keeps what it holds); otherwise the number is orig_rax. do_syscall_64
    takes the number as an int, so only orig_rax's low half counts."""
    pt = task.ptrace
    if pt is not None:
        pt.syscall_stop = PTRACE_SYSCALL_INFO_NONE
        if emulated or task.orig_rax & 0xFFFFFFFF == 0xFFFFFFFF:
            _syscall_exit_work(kernel, vcpu, task)
            return
    _run_syscall(kernel, vcpu, task)


def _run_syscall(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    from emu_x86.kernel.syscall_table import invoke_syscall
    pt = task.ptrace
    values = vcpu.read_register_values(_SYSCALL_REGISTERS)
    number = task.orig_rax & MASK64 if task.orig_rax != -1 else values[0]
    args = values[1:]
    if pt is not None and number in (SYS_exit, SYS_exit_group):
        pt.exit_status_hint = (args[0] & 0xFF) << 8
        if pt.options & PTRACE_O_TRACEEXIT:
            # do_exit -> ptrace_event(PTRACE_EVENT_EXIT, code) before anything is torn down.
            def exit_now(v: "VCpu", t: Task) -> None:
                invoke_syscall(kernel, v, t, number, args)
            ptrace_event_stop(kernel, vcpu, task, PTRACE_EVENT_EXIT, pt.exit_status_hint, exit_now)
            return
    result = invoke_syscall(kernel, vcpu, task, number, args)
    if result is not None and number in (SYS_execve, SYS_execveat) and result == 0 and task.ptrace is not None:
        vcpu.write_register("rax", 0)
        _ptrace_exec_notify(kernel, vcpu, task)
        return
    if result is not None:
        event, child_tid = _clone_event(task, number, args, result)
        if event:
            _attach_new_child(kernel, task, child_tid)
            # ptrace_event_pid: the parent stops with RAX still -ENOSYS; the pid comes after.
            def finish(v: "VCpu", t: Task) -> None:
                v.write_register("rax", result & MASK64)
                _syscall_exit_work(kernel, v, t)
            ptrace_event_stop(kernel, vcpu, task, event, child_tid, finish)
            return
        vcpu.write_register("rax", result & MASK64)
        _syscall_exit_work(kernel, vcpu, task)
        return
    if kernel.current[vcpu.index] is task:
        # rt_sigreturn and friends: RAX already set; a successful execve too.
        if number in (SYS_execve, SYS_execveat) and task.ptrace is not None:
            _ptrace_exec_notify(kernel, vcpu, task)
            return
        _syscall_exit_work(kernel, vcpu, task)
        return
    pt = task.ptrace
    if pt is None or task.state not in (TASK_SLEEPING, TASK_RUNNABLE) or task.ptrace_resume is not None:
        return
    # The call blocked (or yielded): its exit work runs when the task is back.
    if number == SYS_vfork or (number == SYS_clone and args[0] & CLONE_VFORK):
        child_tid = task.registers["rax"]
        if _event_enabled(task, PTRACE_EVENT_VFORK) and child_tid > 0:
            _attach_new_child(kernel, task, child_tid)

            # The parent already waited for the child here (copy_process blocked it), so
            # the VFORK event comes after the wait, then VFORK_DONE (Linux: before, after).
            def after_vfork(v: "VCpu", t: Task) -> None:
                def finish(v2: "VCpu", t2: Task) -> None:
                    v2.write_register("rax", child_tid)
                    if _event_enabled(t2, PTRACE_EVENT_VFORK_DONE):
                        ptrace_event_stop(kernel, v2, t2, PTRACE_EVENT_VFORK_DONE, child_tid,
                                          lambda v3, t3: _syscall_exit_work(kernel, v3, t3))
                        return
                    _syscall_exit_work(kernel, v2, t2)
                ptrace_event_stop(kernel, v, t, PTRACE_EVENT_VFORK, child_tid, finish)
            task.ptrace_resume = after_vfork
            return
    task.ptrace_resume = lambda v, t: _syscall_exit_work(kernel, v, t)
    if task.state == TASK_SLEEPING and not task.sleep_uninterruptible and _deliverable_signal(task):
        # A signal queued while the tracee was stopped: the sleep ends at once
        # (schedule() returns with signal_pending), as send_signal ends one.
        restart = getattr(task.wait_request, "syscall_number", None)
        task.registers["rax"] = ptrace_interrupted_sleep(task, restart)
        kernel.timeout_expired_silently(task)
        kernel.scheduler.wake_up(task, vcpu)
        if kernel.current[vcpu.index] is None:
            kernel.scheduler.schedule(vcpu)


def _deliverable_signal(task: Task) -> bool:
    return any(info.signo == signals.SIGKILL or not task.signal_mask & sigbit(info.signo)
               for info in task.pending_signals)


def _ptrace_exec_notify(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    """exec_binprm's ptrace_event(PTRACE_EVENT_EXEC, old_vpid): the event stop with
    PTRACE_O_TRACEEXEC; otherwise a tracee that was not seized gets the legacy
    SIGTRAP after a successful execve."""
    if _event_enabled(task, PTRACE_EVENT_EXEC):
        ptrace_event_stop(kernel, vcpu, task, PTRACE_EVENT_EXEC, task.tid,
                          lambda v, t: _syscall_exit_work(kernel, v, t))
        return
    if not task.ptrace.seized:
        task.pending_signals.append(SigInfo(signals.SIGTRAP, SI_USER))
    _syscall_exit_work(kernel, vcpu, task)


def _syscall_exit_work(kernel: "Kernel", vcpu: "VCpu", task: Task) -> None:
    """syscall_exit_work: the exit stop under PTRACE_SYSCALL, then the return to user."""
    if kernel.current[vcpu.index] is not task:
        return
    pt = task.ptrace
    if pt is not None and pt.singlestep and pt.syscall_work != "sysemu":
        # report_single_step: a step over SYSCALL stops after it with a SIGTRAP
        # (user_single_step_report: SI_USER), instead of the exit stop.
        task.pending_signals.insert(0, SigInfo(signals.SIGTRAP, SI_USER))
    elif pt is not None and pt.syscall_work == "syscall":
        _syscall_stop(kernel, vcpu, task, PTRACE_SYSCALL_INFO_EXIT, lambda v, t: _return_to_user(kernel, v, t))
        return
    _return_to_user(kernel, vcpu, task)


def _clone_event(task: Task, number: int, args, result: int) -> tuple[int, int]:
    """kernel_clone's choice of event: VFORK, CLONE (exit signal not SIGCHLD) or FORK."""
    if number not in (SYS_clone, SYS_fork, SYS_clone3) or _signed64(result) <= 0 or task.ptrace is None:
        return 0, 0
    if number == SYS_fork:
        flags, exit_signal = 0, signals.SIGCHLD
    elif number == SYS_clone:
        flags, exit_signal = args[0] & ~0xFF, args[0] & 0xFF
    else:
        try:
            flags, _pidfd, _ctid, _ptid, exit_signal = struct.unpack("<5Q", task.mm.copy_from_user(args[0], 40))
        except SyscallError:
            return 0, 0
    if flags & CLONE_UNTRACED:
        return 0, 0
    event = PTRACE_EVENT_VFORK if flags & CLONE_VFORK else (
        PTRACE_EVENT_CLONE if exit_signal != signals.SIGCHLD else PTRACE_EVENT_FORK)
    return (event, result) if _event_enabled(task, event) else (0, 0)


def ptrace_init_task(kernel: "Kernel", parent: Task, child: Task, flags: int, exit_signal: int) -> None:
    """copy_process -> ptrace_init_task: a traced parent's new process is traced
    too when the event kernel_clone would report is enabled."""
    if flags & CLONE_UNTRACED:
        return
    event = PTRACE_EVENT_VFORK if flags & CLONE_VFORK else (
        PTRACE_EVENT_CLONE if exit_signal != signals.SIGCHLD else PTRACE_EVENT_FORK)
    if _event_enabled(parent, event):
        _attach_new_child(kernel, parent, child.tid, child)


def _attach_new_child(kernel: "Kernel", parent: Task, tid: int, child: Task | None = None) -> None:
    """ptrace_init_task: the new task is traced by the same tracer with the same
    options; it starts with SIGSTOP pending, or a PTRACE_EVENT_STOP when seized."""
    child = child if child is not None else find_task(kernel, tid)
    pt = parent.ptrace
    if child is None or child.ptrace is not None:
        return
    child.ptrace = PtraceState(tracer=pt.tracer, seized=pt.seized, options=pt.options)
    pt.tracer.ptraced.append(child)
    if pt.seized:
        child.ptrace.interrupt_pending = True
        child.ptrace_resume = lambda v, t: _return_to_user(kernel, v, t)
    else:
        child.pending_signals.append(SigInfo(signals.SIGSTOP, SI_USER))


# ---- wait ------------------------------------------------------------------------------

def wait_tracees(task: Task, request) -> list[Task]:
    """The tracees of the waiter's thread group the request may report
    (ptrace_do_wait: tracees are eligible whatever __WCLONE/__WALL say)."""
    from emu_x86.kernel.exit import __WNOTHREAD
    waiters = [task] if request.options & __WNOTHREAD else task.process.tasks
    tracees = []
    for waiter in waiters:
        for tracee in waiter.ptraced:
            if request.pid > 0 and tracee.tid != request.pid:
                continue
            if request.pid < -1 and tracee.process.pgid != -request.pid:
                continue
            tracees.append(tracee)
    return tracees


def wait_task_traced(kernel: "Kernel", task: Task, tracee: Task, request) -> int | None:
    """wait_task_stopped for a ptrace stop, or the exit of a traced thread; None: nothing to report."""
    from emu_x86.kernel.exit import WEXITED, WNOWAIT
    pt = tracee.ptrace
    if pt is None:
        return None
    if pt.zombie_status is not None:
        if not (request.options & WEXITED or not request.is_waitid):
            return None
        status = pt.zombie_status
        killed = status & 0x7F
        info = SigInfo(signals.SIGCHLD, 2 if killed else 1, pid=tracee.tid, uid=cred_of(tracee).uid,
                       status=killed if killed else status >> 8)
        result = _report(task, request, tracee.tid, status, info)
        if not request.options & WNOWAIT:
            _ptrace_unlink(tracee)
        return result
    if tracee.state != TASK_TRACED or not pt.exit_code:
        return None
    exit_code = pt.exit_code
    if not request.options & WNOWAIT:
        pt.exit_code = 0
    info = SigInfo(signals.SIGCHLD, CLD_TRAPPED, pid=tracee.tid, uid=cred_of(tracee).uid, status=exit_code)
    return _report(task, request, tracee.tid, (exit_code << 8) | 0x7F, info)


def _report(task: Task, request, tid: int, status: int, info: SigInfo) -> int:
    from emu_x86.kernel.exit import RUSAGE_BYTES, _put_user
    result = 0 if request.is_waitid else tid
    if request.rusage_address:
        result = _put_user(task, request.rusage_address, bytes(RUSAGE_BYTES), result)
    if request.is_waitid:
        if request.infop_address:
            result = _put_user(task, request.infop_address, info.pack(), result)
    elif request.status_address:
        result = _put_user(task, request.status_address, struct.pack("<i", status), result)
    return result


# ---- attach, detach, exit ---------------------------------------------------------

def _ptrace_link(tracee: Task, tracer: Task, seized: bool, options: int) -> None:
    tracee.ptrace = PtraceState(tracer=tracer, seized=seized, options=options)
    tracer.ptraced.append(tracee)


def _ptrace_unlink(tracee: Task) -> None:
    """__ptrace_unlink: forget the link; a forced TF goes away with it."""
    pt = tracee.ptrace
    if pt is None:
        return
    if tracee in pt.tracer.ptraced:
        pt.tracer.ptraced.remove(tracee)
    if pt.forced_tf and tracee.state != TASK_EXITED and "rflags" in tracee.registers:
        tracee.registers["rflags"] &= ~X86_EFLAGS_TF
    tracee.ptrace = None


def _detach(kernel: "Kernel", vcpu: "VCpu | None", tracee: Task, signal: int) -> None:
    """ptrace_detach / __ptrace_detach: unlink and let a stopped tracee go on
    with ``signal`` (delivered if it stopped for a signal)."""
    stopped = tracee.state == TASK_TRACED
    _ptrace_unlink(tracee)
    if stopped:
        # The stop's continuation (Task.ptrace_resume) still runs, untraced.
        tracee.ptrace_resume_signal = signal
        tracee.state = TASK_SLEEPING
        kernel.scheduler.wake_up(tracee, vcpu)


def ptrace_task_exit(kernel: "Kernel", task: Task, waker: "VCpu | None") -> None:
    """A task exits (called from emu_x86/kernel/exit.py mm_release): its tracees are
    detached (or killed with EXITKILL: exit_ptrace); a traced task becomes a
    ptrace zombie for its tracer unless its parent reaps it as a process."""
    for tracee in list(task.ptraced):
        pt = tracee.ptrace
        if pt is None:
            continue
        if pt.options & PTRACE_O_EXITKILL:
            from emu_x86.kernel.sigframe import send_signal
            send_signal(kernel, waker, tracee, SigInfo(signals.SIGKILL, SI_USER))
        if tracee.ptrace is not None and tracee.state != TASK_EXITED:
            _detach(kernel, waker, tracee, 0)
        elif tracee.ptrace is not None:
            _ptrace_unlink(tracee)
    task.ptraced.clear()
    pt = task.ptrace
    if pt is None:
        return
    process = task.process
    tracer = pt.tracer
    if tracer.state == TASK_EXITED or (task.tid == process.pid and tracer.process is process.parent):
        _ptrace_unlink(task)
        return
    if process.killed_by_signal is not None:
        status = process.killed_by_signal & 0x7F
    elif pt.exit_status_hint is not None:
        status = pt.exit_status_hint
    else:
        status = ((process.exit_status or 0) & 0xFF) << 8
    pt.zombie_status = status
    task.ptrace_resume = None
    from emu_x86.kernel.exit import wake_waiters
    wake_waiters(kernel, tracer.process, waker)


# ---- memory -----------------------------------------------------------------------------

def access_process_vm(kernel: "Kernel", tracee: Task, address: int, data: bytes | None, size: int = 8) -> bytes:
    """ptrace_access_vm with FOLL_FORCE: reads need a mapping, writes may go to
    read-only private mappings (text breakpoints): the page is copied first if
    shared (copy-on-write) and every CPU forgets its translations of the code."""
    mm = tracee.mm
    if data is None:
        try:
            return mm.copy_from_user(address, size)
        except SyscallError:
            raise SyscallError(EIO) from None
    if address < 0 or address + len(data) > TASK_SIZE:
        raise SyscallError(EIO)
    offset = 0
    while offset < len(data):
        vaddr = address + offset
        chunk = min(len(data) - offset, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
        vma = mm.find_vma(vaddr)
        if vma is None:
            raise SyscallError(EIO)
        if vma.prot & PROT_WRITE:
            try:
                mm.copy_to_user(vaddr, data[offset:offset + chunk])
            except SyscallError:
                raise SyscallError(EIO) from None
        else:
            paddr = _force_writable_frame(mm, vaddr, vma)
            mm.memory.view[paddr:paddr + chunk] = data[offset:offset + chunk]
        if vma.prot & PROT_EXEC:
            # Translated blocks are found by physical page, and the tracee's mm is
            # not the one loaded here: every vCPU drops all of them (rare: breakpoints).
            for cpu in kernel.machine.vcpus:
                cpu.invalidate_all_code()
        offset += chunk
    return b""


def _force_writable_frame(mm, vaddr: int, vma) -> int:
    """The frame behind a read-only private page, made private to ``mm``
    (FOLL_FORCE's copy-on-write break), physical address of ``vaddr``."""
    from emu_x86.kernel.mm.mm import MAP_SHARED
    if vma.flags & MAP_SHARED:
        raise SyscallError(EIO)
    page = vaddr & ~(PAGE_SIZE - 1)
    try:
        mm.copy_from_user(page, 1)          # fault it in (read)
    except SyscallError:
        raise SyscallError(EIO) from None
    entry = mm.pagetables.lookup(page)
    if not entry & PTE_PRESENT:
        raise SyscallError(EIO)
    frame = entry & PHYS_ADDR_MASK
    frames = mm.frames
    if frames.page_count(frame) > 1:
        new_frame = frames.alloc()
        view = frames.memory.view
        view[new_frame:new_frame + PAGE_SIZE] = view[frame:frame + PAGE_SIZE]
        mm.pagetables.set_entry(page, new_frame | (entry & ~PHYS_ADDR_MASK))
        mm.flush_tlb_range(page, page + PAGE_SIZE, on_flushed=lambda: frames.free(frame))
        frame = new_frame
    return frame | (vaddr & (PAGE_SIZE - 1))


# ---- the system call ------------------------------------------------------------------

def _valid_signal(data: int) -> int:
    if not 0 <= data <= signals.NSIG:
        raise SyscallError(EIO)
    return data


def _resume(kernel: "Kernel", vcpu: "VCpu", tracee: Task, request: int, data: int) -> int:
    """ptrace_resume: the syscall stops and single step the request asks for, then wake it."""
    signal = _valid_signal(data)
    pt = tracee.ptrace
    pt.syscall_work = {PTRACE_SYSCALL: "syscall", PTRACE_SYSEMU: "sysemu",
                       PTRACE_SYSEMU_SINGLESTEP: "sysemu"}.get(request, "")
    step = request in (PTRACE_SINGLESTEP, PTRACE_SYSEMU_SINGLESTEP)
    pt.singlestep = step
    flags = tracee.registers["rflags"]
    if step:
        if not flags & X86_EFLAGS_TF:       # user_enable_single_step: TF is ours
            pt.forced_tf = True
            tracee.registers["rflags"] = flags | X86_EFLAGS_TF
    elif pt.forced_tf:                      # user_disable_single_step
        pt.forced_tf = False
        tracee.registers["rflags"] = flags & ~X86_EFLAGS_TF
    tracee.ptrace_resume_signal = signal
    pt.exit_code = 0
    tracee.state = TASK_SLEEPING
    kernel.scheduler.wake_up(tracee, vcpu)
    return 0


def _interrupt(kernel: "Kernel", vcpu: "VCpu", tracee: Task) -> None:
    """PTRACE_INTERRUPT: a seized tracee stops with PTRACE_EVENT_STOP at its next
    return to user mode; a sleep in a syscall ends (and is restarted later)."""
    pt = tracee.ptrace
    if tracee.state == TASK_TRACED:
        return
    pt.interrupt_pending = True
    if tracee.state == TASK_SLEEPING and not tracee.sleep_uninterruptible:
        restart = getattr(tracee.wait_request, "syscall_number", None)
        tracee.registers["rax"] = ptrace_interrupted_sleep(tracee, restart)
        kernel.timeout_expired_silently(tracee)
        kernel.scheduler.wake_up(tracee, vcpu)
    elif tracee.state == TASK_RUNNABLE and tracee.ptrace_resume is None:
        tracee.ptrace_resume = lambda v, t: _return_to_user(kernel, v, t)
    elif tracee.cpu is not None and tracee.cpu != vcpu.index:
        def stop_on_interrupt_return(target_vcpu: "VCpu") -> None:
            running = kernel.current[target_vcpu.index]
            if running is tracee and tracee.ptrace is not None and tracee.ptrace.interrupt_pending:
                _return_to_user(kernel, target_vcpu, running)
        kernel.smp_call_function_many(vcpu, [tracee.cpu], stop_on_interrupt_return, wait=False)


def _get_syscall_info(kernel: "Kernel", vcpu: "VCpu", tracee: Task, size: int, address: int) -> int:
    """PTRACE_GET_SYSCALL_INFO: op, arch, IP, SP and the entry or exit details."""
    pt = tracee.ptrace
    registers = tracee.registers
    head = struct.pack("<B3xIQQ", pt.syscall_stop, AUDIT_ARCH_X86_64, registers["rip"], registers["rsp"])
    if pt.syscall_stop == PTRACE_SYSCALL_INFO_ENTRY:
        args = [registers[name] for name in ("rdi", "rsi", "rdx", "r10", "r8", "r9")]
        info = head + struct.pack("<7Q", tracee.orig_rax & MASK64, *args)
    elif pt.syscall_stop == PTRACE_SYSCALL_INFO_EXIT:
        rval = _signed64(registers["rax"])
        info = head + struct.pack("<qB", rval, 1 if -4095 <= rval < 0 else 0)
    else:
        info = head
    tracee_bytes = info[:size]
    if tracee_bytes:
        vcpu_task = kernel.current[vcpu.index]
        vcpu_task.mm.copy_to_user(address, tracee_bytes)
    return len(info)


def sys_ptrace(kernel, vcpu, task, request, pid, addr, data, *_):
    request &= 0xFFFFFFFF
    pid = pid & 0xFFFFFFFF
    pid = pid - (1 << 32) if pid >> 31 else pid
    if request == PTRACE_TRACEME:
        parent = task.process.parent
        if task.ptrace is not None or parent is None or not parent.tasks:
            raise SyscallError(EPERM)
        tracer = next((t for t in parent.tasks if t.state != TASK_EXITED), None)
        if tracer is None:
            raise SyscallError(EPERM)
        _ptrace_link(task, tracer, False, 0)
        return 0
    tracee = find_task(kernel, pid) if pid > 0 else None
    if tracee is None:
        raise SyscallError(ESRCH)
    if request in (PTRACE_ATTACH, PTRACE_SEIZE):
        # ptrace_attach: not our own thread group, not already traced; same uid suffices.
        if request == PTRACE_SEIZE:
            if addr:
                raise SyscallError(EIO)
            if data & ~PTRACE_O_MASK:
                raise SyscallError(EIO)
        if tracee.process is task.process or tracee.ptrace is not None:
            raise SyscallError(EPERM)
        _ptrace_link(tracee, task, request == PTRACE_SEIZE, data if request == PTRACE_SEIZE else 0)
        if request == PTRACE_ATTACH:
            from emu_x86.kernel.sigframe import send_signal
            send_signal(kernel, vcpu, tracee, SigInfo(signals.SIGSTOP, SI_KERNEL))
        return 0
    if not _traced_by(tracee, task):
        raise SyscallError(ESRCH)
    if request == PTRACE_KILL:
        from emu_x86.kernel.sigframe import send_signal
        send_signal(kernel, vcpu, tracee, SigInfo(signals.SIGKILL, SI_USER))
        return 0
    if request == PTRACE_INTERRUPT:
        if not tracee.ptrace.seized or addr or data:
            raise SyscallError(EIO)
        _interrupt(kernel, vcpu, tracee)
        return 0
    # ptrace_check_attach: the remaining requests need the tracee stopped.
    if tracee.state != TASK_TRACED:
        raise SyscallError(ESRCH)
    return _stopped_request(kernel, vcpu, task, tracee, request, addr, data)


def _stopped_request(kernel, vcpu, task: Task, tracee: Task, request: int, addr: int, data: int) -> int:
    mm = task.mm
    pt = tracee.ptrace
    if request in (PTRACE_PEEKTEXT, PTRACE_PEEKDATA):
        word = access_process_vm(kernel, tracee, addr, None)
        mm.copy_to_user(data, word)
        return 0
    if request in (PTRACE_POKETEXT, PTRACE_POKEDATA):
        access_process_vm(kernel, tracee, addr, struct.pack("<Q", data & MASK64))
        return 0
    if request == PTRACE_PEEKUSR:
        mm.copy_to_user(data, struct.pack("<Q", _peek_user(tracee, addr)))
        return 0
    if request == PTRACE_POKEUSR:
        _poke_user(tracee, addr, data)
        return 0
    if request == PTRACE_GETREGS:
        mm.copy_to_user(data, _user_regs_bytes(tracee))
        return 0
    if request == PTRACE_SETREGS:
        _set_user_regs(tracee, mm.copy_from_user(data, USER_REGS_BYTES))
        return 0
    if request == PTRACE_GETFPREGS:
        mm.copy_to_user(data, copy_xstate_to_uabi(kernel, tracee, USER_I387_BYTES, legacy_only=True))
        return 0
    if request == PTRACE_SETFPREGS:
        copy_uabi_to_xstate(kernel, tracee, mm.copy_from_user(data, USER_I387_BYTES), legacy_only=True)
        return 0
    if request in (PTRACE_GETREGSET, PTRACE_SETREGSET):
        return regset(kernel, task, tracee, request, addr, data)
    if request == PTRACE_GETSIGINFO:
        if pt.last_siginfo is None:
            raise SyscallError(EINVAL)
        mm.copy_to_user(data, pt.last_siginfo.pack())
        return 0
    if request == PTRACE_SETSIGINFO:
        if pt.last_siginfo is None:
            raise SyscallError(EINVAL)
        pt.last_siginfo = RawSigInfo(mm.copy_from_user(data, 128))
        return 0
    if request == PTRACE_SETOPTIONS:
        if data & ~PTRACE_O_MASK:
            raise SyscallError(EINVAL)
        pt.options = data
        return 0
    if request == PTRACE_GETEVENTMSG:
        mm.copy_to_user(data, struct.pack("<Q", pt.message & MASK64))
        return 0
    if request == PTRACE_GET_SYSCALL_INFO:
        return _get_syscall_info(kernel, vcpu, tracee, addr, data)
    if request in (PTRACE_CONT, PTRACE_SYSCALL, PTRACE_SINGLESTEP, PTRACE_SYSEMU, PTRACE_SYSEMU_SINGLESTEP):
        return _resume(kernel, vcpu, tracee, request, data)
    if request == PTRACE_DETACH:
        _detach(kernel, vcpu, tracee, _valid_signal(data))
        return 0
    raise SyscallError(EIO)


SYSCALLS = {SYS_ptrace: sys_ptrace}
