"""The toy kernel: plays ring 0 for the machine's vCPUs (implements emu.traps.TrapHandler).

It execs the first program, puts tasks on vCPUs, dispatches system calls
through the explicit table in ``syscalls.py``, resolves page faults and turns
every other fault into the Linux signal (arch/x86/kernel/traps.c semantics).
"""
from __future__ import annotations

import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.machine import Machine
from emu_x86.emu.traps import PF, PF_WRITE, VECTOR_NM, CpuException, SoftwareInterrupt, SysenterEntry
from emu_x86.emu.vcpu import VCpu
from emu_x86.kernel import cpu_opv, fpu, sched_explore, signals
from emu_x86.kernel.cmdline import parse_kernel_cmdline
from emu_x86.kernel.errno import SyscallError
from emu_x86.kernel.exec import exec_image
from emu_x86.kernel.cred import Cred
from emu_x86.kernel.fs import SandboxFs
from emu_x86.kernel.tmpfs import make_tmp_mount
from emu_x86.kernel.process_groups import INIT_SESSION_ID
from emu_x86.kernel.loader import load_program
from emu_x86.kernel.mm.frames import FrameAllocator, OutOfMemory
from emu_x86.kernel.mm.mm import ELF_ET_DYN_BASE, MmStruct
from emu_x86.kernel.mm.tlb import TlbManager
from emu_x86.kernel.rseq import mm_cid_exit, rseq_handle_notify_resume
from emu_x86.kernel.sched import Scheduler
from emu_x86.kernel.sigframe import SigInfo, deliver_pending_signals, force_sig_fault
from emu_x86.kernel.task import (
    TASK_EXITED,
    TASK_RUNNING,
    TASK_SLEEPING,
    Process,
    Task,
    allocate_pid,
)
from emu_x86.kernel.traps import (
    IA32_SYSCALL_VECTOR,
    load_idt,
    record_page_fault,
    user_exception_signal,
)
from emu_x86.kernel.xstate_alloc import xstate_alloc_from_cmdline

if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO

# CLOCK_REALTIME at cycle 0 (2026-01-01T00:00:00Z), fixed so runs are reproducible.
REALTIME_EPOCH_NS = 1_767_225_600 * 1_000_000_000

# Interrupt vectors as Linux assigns them (arch/x86/include/asm/irq_vectors.h).
LOCAL_TIMER_VECTOR = 0xEC
CALL_FUNCTION_SINGLE_VECTOR = 0xFB
CALL_FUNCTION_VECTOR = 0xFC
RESCHEDULE_VECTOR = 0xFD
MSR_X2APIC_EOI = 0x80B

# CPUID.1:EDX as Linux reports it in AT_HWCAP for the features this machine
# executes: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat
# pse36 clflush mmx fxsr sse sse2.
HWCAP_CPUID1_EDX = 0x078BFBFF
# HWCAP2_FSGSBASE: CR4.FSGSBASE is set, so RDFSBASE and friends work at CPL3.
HWCAP2 = 1 << 1


# getpid/getppid/gettid answered in the SYSCALL hook when armed (arm_fast_syscalls);
# RCX gets the return RIP, the end of the block SYSCALL ends (hotpath.c fast_syscall).
FAST_SYSCALLS_ENABLED = True


@dataclass
class KernelConfig:
    """What a kernel boots with: the program's argv and envp, the seed, --cmdline and the I/O."""

    argv: list[str]
    envp: list[str]
    seed: int = 0
    cmdline: dict[str, str] = field(default_factory=dict)
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None
    stderr: BinaryIO | None = None
    # --fs / --fs-rw: host directory mapped as the guest's root (emu_x86/kernel/fs.py); None: no files.
    fs_root: str | None = None
    fs_writable: bool = False
    # --uid/--gid: the guest's user and group (emu_x86/kernel/cred.py); files keep the host's owners.
    uid: int = 1000
    gid: int = 1000


# SYSCALL: RCX <- RIP (already past the instruction), R11 <- RFLAGS.
_SYSCALL_SAVED = ("rip", "rflags")
_SYSCALL_CLOBBERED = ("rcx", "r11")


class GuestExit(Exception):
    """Raised inside a syscall when the calling task has ended and must not resume."""


class Kernel:
    """Fields: ``machine``; ``frames`` (physical frame allocator); ``current``
    (per-CPU running task, owned by the scheduler); ``processes`` (by pid);
    ``counters`` (statistics); ``init_process`` (the program ``emu run`` started)."""

    def __init__(self, machine: Machine, config: KernelConfig):
        self.machine = machine
        self.config = config
        self.stdin = config.stdin if config.stdin is not None else sys.stdin.buffer
        self.stdout = config.stdout if config.stdout is not None else sys.stdout.buffer
        self.stderr = config.stderr if config.stderr is not None else sys.stderr.buffer
        # Guest clocks tick at the profile's TSC rate (virtual time from cycles).
        self.tsc_hz = machine.profile.frequency_hz
        self.frames = FrameAllocator(machine.memory, machine.reserved_physical_bytes)
        self.current: list[Task | None] = [None] * len(machine.vcpus)
        self.processes: dict[int, Process] = {}
        self.counters: Counter = Counter()
        self.syscall_counts: Counter = Counter()
        self.warned_syscalls: set[int] = set()
        self.init_process: Process | None = None
        self.fatal_message: str | None = None
        # getrandom(2)'s source: seeded, so a run is reproducible (--seed).
        self.guest_random = random.Random(config.seed ^ 0x5EED)
        self.params = parse_kernel_cmdline(config.cmdline)   # CmdlineError on bad input
        self.fs = SandboxFs(config.fs_root, config.fs_writable) if config.fs_root else None
        self.guest_uid, self.guest_gid = config.uid, config.gid
        self.tmpfs = make_tmp_mount(self)       # /tmp (kernel/tmpfs.py)
        if self.fs is not None:
            from emu_x86.kernel.fifo import fifo_open, host_fifo
            self.fs.fifo_opener = lambda dev, ino, flags: fifo_open(host_fifo(self, dev, ino), flags)
            self.fs.new_file_owner = (self.guest_uid, self.guest_gid)
        self.out_of_memory = False       # the OOM killer ended the run
        # Every task asleep with nothing left to wake one (handle_all_idle)
        # before the first process exited: the run could never end.
        self.deadlocked = False
        self.frames.overcommit_policy = self.params["sysctl.vm.overcommit_memory"]
        self.frames.overcommit_ratio = self.params["sysctl.vm.overcommit_ratio"]
        machine.attach(self)
        for vcpu in machine.vcpus:
            vcpu.halted = True
            # IA32_TSC_AUX = CPU number, read back by RDTSCP/RDPID (setup_getcpu).
            vcpu.write_msr(0xC0000103, vcpu.index)
            load_idt(vcpu)
        self.fpu_config = fpu.fpu_init(self)
        # strict_sas_size: check every sigaltstack against the permitted frame size.
        self.strict_sas_size = self.params["strict_sas_size"]
        self.vmalloc, self.xstate_alloc = xstate_alloc_from_cmdline(self, self.params)
        # The vDSO image and its [vvar] page, mapped by every exec (emu_x86/kernel/vdso/).
        from emu_x86.kernel.vdso import Vdso
        self.vdso = Vdso(self) if self.params["vdso"] else None
        self.xstate_alloc.boot()
        self.call_function_queue: list[list] = [[] for _ in machine.vcpus]
        # Interrupts other than call-function IPIs that arrived while the CPU
        # spun waiting for acknowledgements (preemption is off there).
        self.deferred_interrupts: list[list[int]] = [[] for _ in machine.vcpus]
        self.this_cpu: VCpu | None = None   # the vCPU the kernel is running on now
        self.tlb = TlbManager(self, self.params)
        self._exit_reschedules: list[VCpu] = []   # CPUs whose exiting task still has to schedule()
        self.last_task: list[Task | None] = [None] * len(machine.vcpus)
        # Per CPU: the fpstate whose registers are live there (fpu_fpregs_owner_ctx).
        self.fpregs_owner: list = [None] * len(machine.vcpus)
        self.scheduler = Scheduler(self, self.params["sched_quantum"])
        sched_explore.attach(self)
        from emu_x86.kernel.syscall_table import (
            dispatch_syscall,  # kernel.syscalls imports this module
        )
        self._dispatch_syscall = dispatch_syscall
        from emu_x86.kernel.syscall_table import fast_syscall_handlers
        self._fast_syscall_handlers = fast_syscall_handlers
        self._syscall_event_cycles = machine.profile.event_cycles("syscall")
        # Per CPU: what the fast-syscall values loaded there were computed from (arm_fast_syscalls).
        self._fast_syscall_keys: list = [None] * len(machine.vcpus)
        self._fast_syscall_counts: list[int] = [0] * len(machine.vcpus)
        self.futex_queues: dict = {}        # key -> [FutexQ] (kernel/futex/core.py)
        self.futex_pi_states: dict = {}     # key -> PiState of a contended PI futex (kernel/futex/pi.py)
        # System calls only some command lines enable (number -> handler).
        self.optional_syscalls: dict = {}
        # emu run --strace (emu_x86/kernel/strace/tracer.py): the syscall log's hooks, None when off.
        self.strace = None
        cpu_opv.cpu_opv_setup(self, self.params["cpu_opv"])
        self.interrupt_handlers = {
            CALL_FUNCTION_VECTOR: self._call_function_interrupt,
            LOCAL_TIMER_VECTOR: self.scheduler.scheduler_tick,
            RESCHEDULE_VECTOR: self.scheduler.scheduler_ipi,
        }

    # ---- starting programs ------------------------------------------------

    def start(self, path: str) -> Process:
        """exec ``path`` as the first process on CPU 0 (raises LoadError on bad input)."""
        return self.start_image(load_program(path, ELF_ET_DYN_BASE, self.machine.memory.size_bytes), path)

    def start_image(self, image, path: str) -> Process:
        """exec an already-built ProgramImage as the first process on CPU 0."""
        mm, initial = exec_image(self.frames, image, execfn=self.config.argv[0], argv=self.config.argv,
                                 envp=self.config.envp, seed=self.config.seed, hwcap=HWCAP_CPUID1_EDX,
                                 hwcap2=HWCAP2, minsigstksz=fpu.get_sigframe_size(self.fpu_config),
                                 vdso=self.vdso, ids=(self.guest_uid, self.guest_gid))
        self.vmalloc.clone_kernel_pgd_entries(mm.pagetables)
        mm.tlb_flush_hook = self.flush_tlb_mm_range
        mm.code_change_hook = self.invalidate_code
        process = Process(pid=allocate_pid(), mm=mm, exe_path=path, exe_location=("host", os.path.abspath(path)),
                          fpu_permission=fpu.new_process_permission(self.fpu_config),
                          files=self.initial_files(), cred=Cred.user(self.guest_uid, self.guest_gid),
                          sid=INIT_SESSION_ID)     # a job of a session begun outside (kernel/process_groups.py)
        task = Task(tid=process.pid, process=process, fpstate=fpu.new_task_fpstate(self.fpu_config))
        process.tasks.append(task)
        self.xstate_alloc.task_created(self.machine.vcpus[0], task)
        self.processes[process.pid] = process
        self.init_process = process
        task.registers = initial_user_registers(initial.rip, initial.rsp)
        task.state = TASK_SLEEPING
        self.scheduler.enqueue(task)
        self.scheduler.schedule(self.machine.vcpus[0])
        return process

    def initial_files(self):
        """fds 0-2: the host's stdin, stdout and stderr, as the emulator was started."""
        from emu_x86.kernel.devices import HostStream
        from emu_x86.kernel.file import FdTable
        table = FdTable()
        for number in range(3):
            table.install(HostStream(self, number), lowest=number)
        return table

    # ---- scheduling ---------------------------------------------------------

    @property
    def loaded_mm(self) -> list[MmStruct | None]:
        """Per CPU: the mm whose page tables are loaded (cpu_tlbstate.loaded_mm)."""
        return [state.loaded_mm for state in self.tlb.cpu_state]

    def switch_to(self, vcpu: VCpu, task: Task) -> None:
        """Put ``task`` on the idle ``vcpu``: switch_mm if the mm differs from the
        one still loaded (an idle CPU keeps the last mm: lazy TLB), then its
        registers. The previous task was saved by whoever took it off."""
        assert self.current[vcpu.index] is None
        self.tlb.switch_mm_irqs_off(vcpu, task.mm)
        vcpu.set_cycle_clock_block(task.mm.vdso_clock_block)   # where this mm's vDSO reads the clock
        if task.rseq is not None and not rseq_handle_notify_resume(self, task, task.registers, vcpu.index):
            self.current[vcpu.index] = task
            task.cpu = vcpu.index
            self.force_fatal_signal(task, signals.SIGSEGV, task.registers["rip"], task.rseq.address,
                                    detail="invalid rseq critical section")
            return
        if task.resume_work is not None:
            # Work the task was pushed here to do with preemption off (cpu_opv).
            work, task.resume_work = task.resume_work, None
            work(vcpu, task)
        # __switch_to's register half: the task's saved registers; x87/SSE
        # only when the XRSTORS below will not load them anyway
        # (switch_fpu_return -> restore_fpregs_from_fpstate).
        vcpu.load_user_registers(task.registers, fpregs_follow=fpu.restore_loads_legacy_registers(self, vcpu, task))
        previous = self.last_task[vcpu.index]
        if previous is not task and previous is not None:
            self.counters["context_switches"] += 1
            vcpu.charge_event("context_switch")
        if self.machine.events is not None:
            self.machine.events.emit(vcpu, "context_switch", task=task.tid,
                                     prev=previous.tid if previous else None, next=task.tid)
        # XFD first (XRSTORS of an armed component would #NM), then the xstate.
        fpu.xfd_update_state(vcpu, task.fpstate)
        fpu.restore_fpregs_from_fpstate(self, vcpu, task)
        task.state = TASK_RUNNING
        task.cpu = vcpu.index
        task.last_cpu = vcpu.index
        self.current[vcpu.index] = task
        self.last_task[vcpu.index] = task
        vcpu.halted = False
        if self.strace is not None:
            # A call that slept returns now, its result in the saved RAX (before any signal).
            self.strace.leave(task, task.registers["rax"])
        if task.ptrace_resume is not None:
            # A ptrace stop continues (emu_x86/kernel/ptrace.py) instead of the plain return to user.
            from emu_x86.kernel.ptrace import ptrace_resume_user
            ptrace_resume_user(self, vcpu, task)
        elif task.pending_signals:
            deliver_pending_signals(self, vcpu, task)

    def timeout_expired_silently(self, task: Task) -> None:
        """A signal ends a sleep: take the task off its futex queues (applying the
        futex wait's restart code to RAX), wait and timer."""
        from emu_x86.kernel.futex import futex_interrupted
        from emu_x86.kernel.wait import cancel_wait
        futex_interrupted(self, task)
        cancel_wait(task)
        task.wake_cycles = None
        task.wait_request = None

    def minsigstksz(self, process: Process) -> int:
        """AT_MINSIGSTKSZ: the worst-case signal frame with every enabled feature
        (get_sigframe_size); alternate stacks are checked against what
        ``process`` is permitted (fpu.sigaltstack_size_valid)."""
        return fpu.get_sigframe_size(self.fpu_config)

    def timeout_expired(self, task: Task) -> None:
        """A timed sleep ended by its timeout: the syscall returns ``timeout_result``."""
        from emu_x86.kernel.futex import futex_cancel_wait
        from emu_x86.kernel.wait import cancel_wait, timeout_value
        futex_cancel_wait(self, task)
        value = timeout_value(task)          # poll/select/epoll_wait: 0 and their side effects
        cancel_wait(task)
        task.registers["rax"] = (task.timeout_result if value is None else value) & ((1 << 64) - 1)

    def task_on(self, vcpu: VCpu) -> Task:
        task = self.current[vcpu.index]
        if task is None:
            raise RuntimeError(f"CPU {vcpu.index} trapped with no task")
        return task

    def exit_task(self, task: Task, vcpu: VCpu | None = None) -> None:
        """do_exit for one thread: clear_child_tid + futex wake (mm_release), leave the CPU."""
        if self.strace is not None:
            self.strace.exited(task)
        from emu_x86.kernel.futex import futex_exit_release, futex_wake
        from emu_x86.kernel.wait import cancel_wait
        cancel_wait(task)
        self.scheduler.dequeue(task)
        # mm_release: robust futexes and PI futexes first, then clear_child_tid.
        futex_exit_release(self, task, vcpu)
        if task.clear_child_tid and task.process.exit_status is None:
            try:
                task.mm.copy_to_user(task.clear_child_tid, bytes(4))
                futex_wake(self, vcpu, task.mm, task.clear_child_tid, 1)
            except SyscallError:
                pass
        task.state = TASK_EXITED
        fpu.fpstate_free(self, vcpu if vcpu is not None else self.machine.vcpus[task.last_cpu or 0], task)
        mm_cid_exit(task)
        cpu = task.cpu
        if cpu is not None:
            self.current[cpu] = None
            task.cpu = None
        from emu_x86.kernel.exit import exit_mm, mm_release
        mm_release(self, task, self.machine.vcpus[cpu] if cpu is not None else vcpu)
        if cpu is not None:
            self.scheduler.schedule(self.machine.vcpus[cpu])
        exit_mm(self, task)

    def exit_group(self, process: Process, status: int, signal: int | None = None) -> None:
        """End every task of ``process`` (do_group_exit), then the process
        (emu_x86/kernel/exit.py exit_process: mm teardown, zombie, SIGCHLD). When the
        first process ends the run ends: other processes stop where they are."""
        if process.exit_status is None:
            process.exit_status = status & 0xFF
            process.killed_by_signal = signal
        from emu_x86.kernel.futex import futex_cancel_wait
        from emu_x86.kernel.wait import cancel_wait
        freed_cpus = []
        exited_tasks = []
        if self.strace is not None:
            # Other threads first, the group leader last, as strace -f reports a group exit.
            for task in sorted(process.tasks, key=lambda t: t.tid == process.pid):
                if task.state != TASK_EXITED:
                    self.strace.exited(task, status, signal)
        for task in process.tasks:
            if task.state == TASK_EXITED:
                continue
            futex_cancel_wait(self, task)
            cancel_wait(task)
            self.scheduler.dequeue(task)
            task.state = TASK_EXITED
            exited_tasks.append(task)
            if task.cpu is not None:
                self.current[task.cpu] = None
                freed_cpus.append(task.cpu)
                task.cpu = None
        if process is self.init_process:
            # The run ends here: the buffers die with the machine.
            self.machine.stop()
            return
        from emu_x86.kernel.futex import futex_exit_release
        for task in exited_tasks:
            # mm_release's futex_exit_release: robust and PI futexes other processes may share.
            futex_exit_release(self, task, self.this_cpu)
        for task in process.tasks:
            fpu.fpstate_free(self, self.machine.vcpus[task.last_cpu or 0], task)
        # do_exit's order: exit_mm -- this CPU stays on the dying mm as a lazy
        # CPU and the last mmput tears the mm down, waiting for the shootdown
        # -- then exit_notify (zombie, wait, SIGCHLD), then schedule away.
        from emu_x86.kernel.exit import exit_process, mm_release
        here = self.this_cpu if self.this_cpu is not None and self.this_cpu.index in freed_cpus else None
        for cpu in freed_cpus:
            if here is None or cpu != here.index:
                self._schedule_after_exit(self.machine.vcpus[cpu])   # threads stopped on other CPUs
        waker = here if here is not None else (self.machine.vcpus[freed_cpus[0]] if freed_cpus else None)
        if here is not None:
            self.tlb.enter_lazy_tlb(here)
        for task in exited_tasks:
            mm_release(self, task, waker)

        def exit_notify_and_schedule() -> None:
            # May run later, from the interrupt of the last CPU to acknowledge.
            interrupted = self.this_cpu
            if here is not None:
                self.this_cpu = here
            exit_process(self, process, waker)
            if here is not None:
                self._schedule_after_exit(here)
            self.this_cpu = interrupted

        if not exited_tasks:
            exit_notify_and_schedule()
            return
        for task in exited_tasks[:-1]:
            self.mmput(task.mm)
        self.mmput(exited_tasks[-1].mm, on_done=exit_notify_and_schedule)

    def _schedule_after_exit(self, vcpu: VCpu) -> None:
        """do_exit's final schedule(), run iteratively: a task killed while it
        is being switched in exits inside switch_to, and calling schedule()
        from there would nest once per such task (a row of SIGKILLed children)."""
        self._exit_reschedules.append(vcpu)
        if len(self._exit_reschedules) > 1:
            return                       # the outer call picks it up
        while self._exit_reschedules:
            self.scheduler.schedule(self._exit_reschedules[0])
            self._exit_reschedules.pop(0)

    def mmput(self, mm: MmStruct, on_done=None) -> None:
        """Drop one task's reference to ``mm`` (mmput); the last one tears it
        down (exit_mmap): the page tables go away, which is a TLB flush with
        freed tables -- every CPU still holding ``mm`` (an idle CPU keeps its
        last mm: lazy TLB) moves to init_mm -- and once that flush has
        completed everywhere every frame and page-table page goes back to the
        frame allocator and the users' mm_count reference is dropped (mmdrop).
        ``on_done()`` runs after that (at once when others still use ``mm``)."""
        mm.mm_users -= 1
        if mm.mm_users > 0:
            if on_done is not None:
                on_done()
            return
        vcpu = self.this_cpu if self.this_cpu is not None else self.machine.vcpus[0]

        def free_address_space() -> None:
            # Lazy-TLB schemes hook in here (and in TlbManager.mmdrop): no CPU
            # may keep a CR3 naming the page tables freed below.
            for cpu, loaded in enumerate(self.loaded_mm):
                if loaded is mm:
                    self.switch_to_init_mm(self.machine.vcpus[cpu])
            mm.destroy()
            self.counters["mm_teardowns"] += 1
            self.tlb.mmdrop(vcpu, mm)
            if on_done is not None:
                on_done()

        self.tlb.exit_mmap(vcpu, mm, on_flushed=free_address_space)

    @property
    def init_mm(self) -> MmStruct:
        """The kernel-only address space: an empty PML4 (emu_x86/kernel/mm/tlb.py owns it)."""
        return self.tlb.init_mm

    def switch_to_init_mm(self, vcpu: VCpu) -> None:
        """Load init_mm's page tables on the idle ``vcpu`` (switch_mm to &init_mm,
        as leave_mm does), leaving lazy mode."""
        self.tlb.switch_to_init_mm(vcpu)

    # ---- time -------------------------------------------------------------

    def now_ns(self, vcpu: VCpu) -> int:
        """Monotonic guest time: this vCPU's clock converted at the TSC rate."""
        return vcpu.cycles * 1_000_000_000 // self.tsc_hz

    # ---- TLB -------------------------------------------------------------

    def flush_tlb_mm_range(self, mm: MmStruct, start: int, end: int, on_flushed=None) -> None:
        """``mm``'s page tables changed in [start, end): the tlb_gen protocol
        (emu_x86/kernel/mm/tlb.py) flushes every CPU that may cache them, then
        ``on_flushed()`` frees what was unmapped."""
        self.tlb.flush_tlb_mm_range(self.this_cpu, mm, start, end, on_flushed=on_flushed)

    def invalidate_code(self, mm: MmStruct, start: int, end: int) -> None:
        """Code in [start, end) may change: every CPU forgets its translations and block prices."""
        for vcpu in self.machine.vcpus:
            vcpu.invalidate_code(start, end)

    # ---- TrapHandler ------------------------------------------------------

    def handle_syscall(self, vcpu: VCpu) -> None:
        self.this_cpu = vcpu
        task = self.task_on(vcpu)
        # SYSCALL itself (SDM Vol. 2B SYSCALL) loads RCX with the return RIP
        # and R11 with RFLAGS; Unicorn's SYSCALL hook runs instead of the
        # instruction, so the machine's registers get them here. Linux's
        # entry_SYSCALL_64 saves both into pt_regs (cx, r11) and its SYSRET
        # path returns with RCX = RIP and R11 = RFLAGS, so user code and a
        # signal frame built on the way out see them (selftest sysret_rip).
        vcpu.write_registers(dict(zip(_SYSCALL_CLOBBERED, vcpu.read_register_values(_SYSCALL_SAVED))))
        self.counters["syscalls"] += 1
        if self.machine.events is not None:
            self._trace_syscall(vcpu)
        self._dispatch_syscall(self, vcpu, task)
        if self.machine.sched_policy is not None:
            sched_explore.syscall_exit(self, vcpu, task)

    def arm_fast_syscalls(self, vcpu: VCpu) -> bool:
        """Before a run: list in ``vcpu``'s hot path the system calls whose
        result is a fixed value of the task about to run (getpid, getppid,
        gettid), each computed here by its handler, so that its SYSCALL hook
        answers them without stopping (emu_x86/emu/timing/hotpath.c
        fast_syscall). Nothing is armed when a call has more to do than return
        its value: strace or ptrace watching, signals pending (the exit to user
        mode delivers them), an exploring scheduler (its syscall_exit step).
        Whether to answer stays a decision made here. The values stay in the
        vCPU's table while what the handlers read -- the task, its ids, its
        process's parent -- is unchanged."""
        if not FAST_SYSCALLS_ENABLED:
            return False
        task = self.current[vcpu.index]
        if (task is None or task.ptrace is not None or task.pending_signals or self.strace is not None
                or self.machine.sched_policy is not None):
            return False
        key = (task, task.pid, task.tid, task.process.parent)
        clock = vcpu.clock
        if self._fast_syscall_keys[vcpu.index] != key:
            count = 0
            for number, handler in self._fast_syscall_handlers():
                clock.fast_syscall_nr[count] = number
                clock.fast_syscall_value[count] = handler(self, vcpu, task, 0, 0, 0, 0, 0, 0) & 0xFFFFFFFFFFFFFFFF
                count += 1
            self._fast_syscall_keys[vcpu.index] = key
            self._fast_syscall_counts[vcpu.index] = count
            clock.fast_syscall_cycles = self._syscall_event_cycles
        count = self._fast_syscall_counts[vcpu.index]
        clock.fast_syscall_count = count
        return count > 0

    def fold_fast_syscalls(self, vcpu: VCpu) -> None:
        """Count the calls the hot path answered during the last run as
        handle_syscall and VCpu.run count the others (statistics stay identical)."""
        clock = vcpu.clock
        total = clock.fast_syscall_hits_total
        clock.fast_syscall_hits_total = 0
        self.counters["syscalls"] += total
        vcpu.event_counts["syscall"] = vcpu.event_counts.get("syscall", 0) + total
        for index in range(clock.fast_syscall_count):
            hits = clock.fast_syscall_hits[index]
            if hits:
                clock.fast_syscall_hits[index] = 0
                self.syscall_counts[clock.fast_syscall_nr[index]] += hits

    def _trace_syscall(self, vcpu: VCpu) -> None:
        """The syscall event: number, name, arguments (its result is traced on return to user)."""
        from emu_x86.kernel.syscalls import ARG_REGISTERS
        number = vcpu.read_register("rax")
        from emu_x86.kernel.strace.names import syscall_name
        from emu_x86.kernel.strace.signatures import ARITY
        name = syscall_name(number)
        registers = ARG_REGISTERS[:ARITY.get(name, len(ARG_REGISTERS))]
        self.machine.events.emit(vcpu, "syscall", nr=number, name=name,
                                 args=[f"{vcpu.read_register(reg):#x}" for reg in registers],
                                 charged_cycles=self.machine.profile.event_cycles("syscall"))

    def handle_exception(self, vcpu: VCpu, exc: CpuException) -> None:
        """A user-mode exception: resolve page faults, else send the signal
        Linux sends for it (arch/x86/kernel/traps.c, fault.c)."""
        self.this_cpu = vcpu
        task = self.task_on(vcpu)
        rip = vcpu.read_register("rip")
        if isinstance(exc, PF):
            self.counters["page_faults"] += 1
            # Resolving a demand fault needs only the page; the exact CR2
            # (decoded from the instruction) only when a signal reports it.
            if self.tlb.percpu_pgd_fault(vcpu, task.mm, exc.page_address):
                return
            mm = task.mm
            if mm.fork_flush_waiters is not None and exc.error_code & PF_WRITE:
                # A fork of this mm is flushing its write-protected PTEs: the
                # fault waits for it, as on dup_mmap's mmap/VMA write locks,
                # and the instruction is retried after (RIP still at it).
                mm.fork_flush_waiters.append(task)
                task.sleep_uninterruptible = True
                self.scheduler.block_current(vcpu)
                return
            spurious_before, copies_before, reuses_before = mm.spurious_faults, mm.cow_copies, mm.cow_reuses
            try:
                if mm.handle_page_fault(exc.page_address, exc.error_code):
                    self.counters["spurious_faults"] += mm.spurious_faults - spurious_before
                    copies = mm.cow_copies - copies_before
                    self.counters["cow_faults"] += copies + mm.cow_reuses - reuses_before
                    if copies:
                        self.counters["cow_copies"] += copies
                        vcpu.charge_event("page_copy", copies)
                    return
            except OutOfMemory:
                self.oom_kill(task, rip, exc.address)
                return
            from emu_x86.kernel import vsyscall     # a fault no mapping resolves: rare, off the start-up path
            if vsyscall.emulate_vsyscall(self, vcpu, task, exc.address, exc.error_code):
                return
            record_page_fault(task, exc.address, exc.error_code)
            force_sig_fault(self, vcpu, task, SigInfo(signals.SIGSEGV, task.mm.fault_code(exc.address),
                                                      exc.address))
            return
        if exc.vector == VECTOR_NM:
            allocs_before = self.counters["xstate_allocs"]
            outcome = fpu.handle_xfd_event(self, vcpu, task)
            if self.machine.events is not None:
                self.machine.events.emit(vcpu, "nm_handled", outcome=outcome, xfd=f"{task.fpstate.xfd:#x}",
                                         xfeatures=f"{task.fpstate.xfeatures:#x}",
                                         xstate_alloc=self.counters["xstate_allocs"] > allocs_before)
            if outcome == "retry":
                return
            if outcome == "sigsegv":
                force_sig_fault(self, vcpu, task, SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0))
                return
            # No permission (or not an XFD event): SIGILL, ILL_ILLOPC at the instruction.
            force_sig_fault(self, vcpu, task, SigInfo(signals.SIGILL, signals.ILL_ILLOPC, rip))
            return
        if isinstance(exc, SysenterEntry):
            from emu_x86.kernel.ia32 import do_fast_syscall_32     # 32-bit entry: loaded at its first use
            self.counters["syscalls"] += 1
            do_fast_syscall_32(self, vcpu, task)
            return
        if isinstance(exc, SoftwareInterrupt):
            if exc.vector == IA32_SYSCALL_VECTOR:
                from emu_x86.kernel.ia32 import do_int80_syscall_32
                self.counters["syscalls"] += 1
                do_int80_syscall_32(self, vcpu, task)
            return
        force_sig_fault(self, vcpu, task, user_exception_signal(task, exc, rip))

    def handle_preemption_point(self, vcpu: VCpu) -> None:
        """An exploring scheduler stopped ``vcpu`` between two user instructions."""
        self.this_cpu = vcpu
        sched_explore.preemption_point(self, vcpu)

    def handle_deadline(self, vcpu: VCpu) -> None:
        """A quantum ended; with one runnable task per CPU there is nothing to switch."""

    # handle_deadline does nothing: the machine may end a run at its deadline
    # without calling it (emu_x86/emu/runqueue_scan.c sched_run) while it is
    # this function (a subclass or an instance may replace it).
    handle_deadline_noop = handle_deadline

    def handle_interrupt(self, vcpu: VCpu, vector: int) -> None:
        """Interrupt entry on ``vcpu`` (IPI or timer): run the vector's handler, then EOI."""
        self.this_cpu = vcpu
        handler = self.interrupt_handlers.get(vector)
        if vcpu.waiting_for_acks and vector != CALL_FUNCTION_VECTOR:
            # The CPU spins in smp_call_function_many with preemption off:
            # only call-function IPIs run now; the rest waits for the end.
            self.deferred_interrupts[vcpu.index].append(vector)
        elif handler is not None:
            handler(vcpu)
        vcpu.write_msr(MSR_X2APIC_EOI, 0)

    def smp_call_function_many(self, vcpu: VCpu, cpus, function, wait: bool = True,
                               on_complete=None) -> None:
        """Run ``function(target_vcpu)`` on each CPU in ``cpus`` by IPI; with
        ``wait``, the caller's vCPU stops until every target has run it
        (kernel/smp.c smp_call_function_many_cond), then ``on_complete()`` runs."""
        targets = [cpu for cpu in cpus if cpu != vcpu.index]
        for cpu in targets:
            self.call_function_queue[cpu].append((function, vcpu.index, wait))
        if targets:
            self.machine.send_ipi(vcpu, targets, CALL_FUNCTION_VECTOR)
            self.counters["ipis"] += len(targets)
            if wait:
                self.machine.wait_for_acks(vcpu, targets,
                                           on_complete=lambda: self._call_function_done(vcpu, on_complete))
                return
        if on_complete is not None:
            on_complete()

    def _call_function_done(self, vcpu: VCpu, on_complete) -> None:
        """The wait ended: finish the caller's work, then the interrupts it deferred."""
        if on_complete is not None:
            on_complete()
        deferred, self.deferred_interrupts[vcpu.index] = self.deferred_interrupts[vcpu.index], []
        for vector in deferred:
            handler = self.interrupt_handlers.get(vector)
            if handler is not None:
                handler(vcpu)

    def _call_function_interrupt(self, vcpu: VCpu) -> None:
        queue, self.call_function_queue[vcpu.index] = self.call_function_queue[vcpu.index], []
        for function, sender, wait in queue:
            function(vcpu)
            if wait:
                self.machine.acknowledge(vcpu, sender)

    def handle_all_idle(self, machine: Machine) -> None:
        # No task can run and nothing (timers, IPIs) can wake one: the run is over.
        # If the first process has not exited, Linux would leave it asleep forever.
        if self.init_process is not None and self.init_process.exit_status is None:
            self.deadlocked = True
        machine.stop()

    # ---- signals ------------------------------------------------------------

    def force_fatal_signal(self, task: Task, signo: int, rip: int, address: int | None,
                           detail: str | None = None) -> None:
        """A synchronous fault nobody handles: kill the thread group (default action)."""
        self.counters["signals"] += 1
        if task.process is self.init_process:
            # The run's exit line names the signal; other processes report
            # their death to their parent through wait instead.
            name = signals.signal_name(signo)
            parts = [f"emu: guest killed by {name} at rip {rip:#x}"]
            if address is not None:
                parts.append(f"address {address:#x}")
            if detail:
                parts.append(detail)
            self.fatal_message = ", ".join(parts)
        if self.machine.events is not None and task.cpu is not None:
            self.machine.events.emit(self.machine.vcpus[task.cpu], "signal", signo=signo,
                                     name=signals.signal_name(signo), action="kill", rip=f"{rip:#x}")
        self.exit_group(task.process, 128 + signo, signal=signo)

    def oom_kill(self, task: Task, rip: int, address: int) -> None:
        """A user fault found no free frame: mm/oom_kill.c pagefault_out_of_memory picks a
        victim and sends it SIGKILL. The guest's processes share one machine, so the
        victim is the faulting thread group."""
        self.counters["oom_kills"] += 1
        self.out_of_memory = True
        self.force_fatal_signal(task, signals.SIGKILL, rip, address,
                                detail=f"out of guest memory ({self.machine.memory.size_bytes >> 20} MiB): OOM killer")

    # ---- results ------------------------------------------------------------

    def exit_status(self) -> int:
        process = self.init_process
        if process is None or process.exit_status is None:
            return 0
        return process.exit_status

    def warn(self, message: str) -> None:
        self.stderr.write(f"emu: {message}\n".encode())
        self.stderr.flush()


def initial_user_registers(rip: int, rsp: int) -> dict:
    """Registers at process start (ELF_PLAT_INIT/start_thread: all GPRs zero)."""
    registers = {name: 0 for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
                                      "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")}
    registers.update(rip=rip, rsp=rsp, rflags=0x202, fs_base=0, gs_base=0, mxcsr=0x1F80, fpcw=0x37F,
                     fpsw=0, fptag=0xFFFF)   # FNINIT state: every x87 register empty
    return registers
