"""Tasks and processes: who owns which state (in the manner of xv6's proc.h).

A ``Task`` is one schedulable thread (Linux's task_struct); tasks of one
process share a ``Process`` (the thread group: pid, mm, exit status).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from emu_x86.kernel.mm.mm import MmStruct
from emu_x86.kernel.wait import WaitQueue

TASK_RUNNABLE = "runnable"
TASK_RUNNING = "running"
TASK_EXITED = "exited"
TASK_SLEEPING = "sleeping"
# Stopped by ptrace (TASK_TRACED): off every run queue until the tracer resumes it.
TASK_TRACED = "traced"
# Stopped by a job-control signal (TASK_STOPPED, emu_x86/kernel/jobctl.py): off every run queue until SIGCONT/SIGKILL.
TASK_STOPPED = "stopped"

_pids = itertools.count(1000)


def allocate_pid() -> int:
    return next(_pids)


@dataclass
class Process:
    """Owned by the kernel's process table. ``exit_status``: the wait status
    (Linux encoding) once the whole group has exited, else None."""
    pid: int
    mm: MmStruct
    exe_path: str
    tasks: list["Task"] = field(default_factory=list)
    exit_status: int | None = None
    killed_by_signal: int | None = None
    fpu_permission: object = None          # kernel.fpu.FpuPermission, process-wide
    sigactions: dict = field(default_factory=dict)   # signo -> raw struct sigaction bytes
    # Resource limits (emu_x86/kernel/resource.py): resource number -> (soft, hard),
    # shared by the threads, inherited by fork (signal->rlim).
    rlimits: dict = field(default_factory=dict)
    # Process tree (emu_x86/kernel/fork.py, emu_x86/kernel/exit.py): ``parent`` is None for the
    # first process and for orphans (their exit is reaped at once, as init
    # would). ``exit_signal`` goes to the parent at exit (SIGCHLD for fork).
    # ``exit_state``: None while alive, "zombie" until reaped, "dead" after.
    parent: "Process | None" = None
    children: list["Process"] = field(default_factory=list)
    exit_signal: int = 17
    exit_state: str | None = None
    # Open files and working directory (files_struct, fs_struct): owned by
    # emu_x86/kernel/file.py and emu_x86/kernel/open.py; threads share them, fork copies them.
    files: object = None                   # kernel.file.FdTable
    cwd: tuple = ()                        # path components below the guest's root
    umask: int = 0o022
    cred: object = None                    # kernel.cred.Cred (None: the default user until first asked)
    comm: str = ""                         # prctl(PR_SET_NAME) of the thread-group leader
    # How to open the running program again (/proc/self/exe, mm->exe_file):
    # ("host", absolute host path) for the program emu started, ("guest",
    # start components, path) for one execve found in the guest's tree.
    exe_location: tuple = ()
    # Job control (emu_x86/kernel/process_groups.py, kernel/sys.c): the process group
    # and session (0 at creation: the process leads it); fork copies them. ``did_exec``: execve ran since fork
    # (setpgid on such a child is EACCES).
    pgid: int = 0
    sid: int = 0
    did_exec: bool = False
    # Group stop (emu_x86/kernel/jobctl.py): the stop signal under way (signal->group_exit_code),
    # whether every thread has stopped, and what the parent's wait has yet to see.
    group_stop_signo: int = 0
    group_stopped: bool = False
    stop_report: int = 0
    continued_report: bool = False
    # pidfd (emu_x86/kernel/pidfd.py): woken when the process exits (do_notify_pidfd).
    pidfd_wait: WaitQueue = field(default_factory=WaitQueue)

    def __post_init__(self) -> None:
        self.pgid = self.pgid or self.pid
        self.sid = self.sid or self.pid


@dataclass
class Rseq:
    """A registered ``struct rseq`` (kernel/rseq.c): address, length, signature."""
    address: int
    length: int
    signature: int


@dataclass
class Task:
    """Fields owned by the scheduler: ``state``, ``cpu``. Saved user registers
    (``registers``) are valid while the task is not on a vCPU. The rest is
    owned by the syscalls that set it."""
    tid: int
    process: Process
    registers: dict = field(default_factory=dict)
    state: str = TASK_RUNNABLE
    cpu: int | None = None
    clear_child_tid: int = 0
    robust_list_head: int = 0
    robust_list_len: int = 0
    # Futex state (emu_x86/kernel/futex/): the queue entries the task sleeps on and how
    # a signal ends that sleep (a RESTART_* mode of emu_x86/kernel/futex/core.py).
    futex_waits: list = field(default_factory=list)
    futex_restart: str | None = None
    rseq: Rseq | None = None
    rseq_cpu_written: int | None = None   # CPU number last written to the rseq area
    rseq_event_pending: bool = False      # preempted/migrated/signalled since last return to user
    signal_mask: int = 0
    fpstate: object = None                 # kernel.fpu.FpState, owned by kernel/fpu.py
    # Scheduler-owned: the CPU the task last ran on, its timed wake-up and the
    # CPUs it may run on (None: all; sched_setaffinity).
    last_cpu: int | None = None
    affinity: int | None = None
    # Policy and RT priority (emu_x86/kernel/sched_syscalls.py); recorded, not used by the scheduler.
    sched_policy: int = 0
    sched_priority: int = 0
    sched_reset_on_fork: bool = False
    # rseq's mm_cid as last written to the rseq area (emu_x86/kernel/rseq.py).
    mm_cid: int | None = None
    wake_cycles: int | None = None
    # A relative nanosleep's (rmtp, wake_cycles): where an interrupting signal
    # writes the time left (restart_block.nanosleep, emu_x86/kernel/posix_timers.py).
    nanosleep_rmtp: tuple[int, int] | None = None
    runqueue_cpu: int | None = None        # the CPU whose run queue holds the task, if queued
    # Kernel work to run on the CPU the task was pushed to, before it returns
    # to user mode (cpu_opv's preempt-off operations); called as work(vcpu, task).
    resume_work: object = None
    # Syscall-owned: RAX to return when a sleep ends by timeout.
    timeout_result: int = 0
    # Signal state (emu_x86/kernel/sigframe.py): the alternate stack (sp, flags, size)
    # and the signals queued for this thread.
    sigaltstack: tuple | None = None
    pending_signals: list = field(default_factory=list)
    # Process-lifetime state (emu_x86/kernel/exit.py): the wait4/waitid request this
    # task sleeps in, and the parent task a CLONE_VFORK child releases when it
    # gives up its mm (vfork_done); ``sleep_uninterruptible`` while sleeping
    # where signals stay pending instead of waking it (the vfork wait).
    wait_request: object = None
    waiter: object = None                  # kernel.wait.Waiter of a blocking file operation
    vfork_done: "Task | None" = None
    sleep_uninterruptible: bool = False
    # thread_struct's fault record (emu_x86/kernel/traps.py): the last exception's
    # vector and error code, and the last page fault's address. Signal frames
    # report them in sigcontext (trapno, err, cr2), stale ones included.
    trap_nr: int = 0
    error_code: int = 0
    cr2: int = 0
    # ptrace (emu_x86/kernel/ptrace.py): this task's link to its tracer (a
    # PtraceState, None when untraced), the tasks it traces, and the kernel
    # work that continues a ptrace stop once the task runs again (run by
    # Kernel.switch_to) with the signal the tracer resumed it with.
    ptrace: object = None
    ptraced: list = field(default_factory=list)
    ptrace_resume: object = None
    ptrace_resume_signal: int = 0
    # pt_regs->orig_ax: the number of the syscall being run, -1 in user mode;
    # kept by the traced syscall path (emu_x86/kernel/ptrace.py), which alone needs it.
    orig_rax: int = -1

    def allowed_on(self, cpu: int) -> bool:
        return self.affinity is None or bool(self.affinity >> cpu & 1)

    @property
    def mm(self) -> MmStruct:
        return self.process.mm

    @property
    def pid(self) -> int:
        return self.process.pid
