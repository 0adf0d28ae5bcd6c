"""Signal delivery to user handlers and rt_sigreturn (arch/x86/kernel/signal.c, signal_64.c).

The frame is Linux's ``struct rt_sigframe`` on the user stack (or the
sigaltstack with SA_ONSTACK): the return address (sa_restorer), a ucontext
with the saved registers (struct sigcontext), the blocked mask and the
alternate-stack settings, the siginfo, and -- 64-byte aligned above the
frame -- the extended state in the standard XSAVE format with Linux's
software-reserved bytes (FP_XSTATE_MAGIC1 in the legacy area, MAGIC2 after
the state), so a handler can inspect and change every register and
rt_sigreturn restores them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import XFEATURE_MASK_XTILE
from emu_x86.emu.traps import CpuException
from emu_x86.kernel import jobctl, signals
from emu_x86.kernel.errno import EFAULT, EINVAL, ENOMEM, EPERM, SyscallError
from emu_x86.kernel.rseq import RseqViolation, rseq_ip_fixup

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SA_SIGINFO = 0x4
SA_ONSTACK = 0x08000000
SA_RESTORER = 0x04000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
SIG_DFL, SIG_IGN = 0, 1
SS_ONSTACK, SS_DISABLE = 1, 2
SS_AUTODISARM = 1 << 31
SS_FLAG_BITS = SS_AUTODISARM
MINSIGSTKSZ = 2048

SI_USER = 0
SI_TKILL = -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
ILL_ILLOPN = 2
FPE_INTDIV = 1
BUS_ADRERR = 2
UC_FP_XSTATE = 0x1
UC_SIGCONTEXT_SS = 0x2
UC_STRICT_RESTORE_SS = 0x4

RED_ZONE_BYTES = 128
SIGINFO_BYTES = 128
UCONTEXT_BYTES = 8 + 8 + 24 + 256 + 8    # uc_flags, uc_link, uc_stack, uc_mcontext, uc_sigmask
RT_SIGFRAME_BYTES = 8 + UCONTEXT_BYTES + SIGINFO_BYTES
FP_XSTATE_MAGIC1 = 0x46505853
FP_XSTATE_MAGIC2 = 0x46505845
FP_XSTATE_MAGIC2_BYTES = 4
SW_RESERVED_OFFSET = 464                  # struct _fpx_sw_bytes in the FXSAVE legacy area

# struct sigcontext (64-bit) order of the general registers.
SIGCONTEXT_GPRS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
                   "rdx", "rax", "rcx", "rsp", "rip")
USER_CS, USER_DS = 0x33, 0x2B

DEFAULT_IGNORED = {signals.SIGCHLD, signals.SIGURG, signals.SIGWINCH, signals.SIGCONT}
UNBLOCKABLE = (1 << (signals.SIGKILL - 1)) | (1 << (signals.SIGSTOP - 1))


@dataclass
class SigAction:
    """A signal's disposition (struct k_sigaction): handler, SA_* flags, restorer and mask."""

    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        return struct.pack("<QQQQ", self.handler, self.flags, self.restorer, self.mask)

    @classmethod
    def unpack(cls, raw: bytes) -> "SigAction":
        return cls(*struct.unpack("<QQQQ", raw))


@dataclass
class SigInfo:
    """The siginfo a signal carries to its handler (struct siginfo, the fields used here)."""

    signo: int
    code: int
    address: int = 0            # si_addr for faults
    pid: int = 0                # si_pid/si_uid for kill/tgkill
    uid: int = 0
    status: int = 0             # si_status for SIGCHLD (exit code or signal)

    def pack(self) -> bytes:
        head = struct.pack("<iii4x", self.signo, 0, self.code)
        if self.signo in (signals.SIGSEGV, signals.SIGBUS, signals.SIGILL, signals.SIGFPE, signals.SIGTRAP) \
                and self.code > 0:
            body = struct.pack("<Q", self.address)
        elif self.signo == signals.SIGCHLD:
            body = struct.pack("<iIi", self.pid, self.uid, self.status)
        else:
            body = struct.pack("<iI", self.pid, self.uid)
        return (head + body).ljust(SIGINFO_BYTES, b"\0")


def sigbit(signo: int) -> int:
    return 1 << (signo - 1)


def xstate_frame_bytes(kernel: "Kernel", task: "Task") -> int:
    """Size of the standard-format XSAVE area for the task's features (+ MAGIC2)."""
    return xstate.standard_size(task.fpstate.user_xfeatures) + FP_XSTATE_MAGIC2_BYTES


def setup_rt_frame(kernel: "Kernel", vcpu: "VCpu", task: "Task", info: SigInfo, action: SigAction) -> bool:
    """Build the frame and point the vCPU at the handler. False if the frame cannot be written."""
    if kernel.machine.events is not None:
        kernel.machine.events.emit(vcpu, "signal", signo=info.signo, code=info.code, action="handler",
                                   handler=f"{action.handler:#x}")
    registers = vcpu.save_user_registers()
    if task.rseq is not None:
        # rseq_signal_deliver: a signal is an rseq event, and the fix-up happens before
        # the frame records RIP, so the handler returns to abort_ip.
        try:
            rseq_ip_fixup(kernel, task, registers)
        except (RseqViolation, SyscallError):
            return False
    mm = task.mm
    sp = registers["rsp"]
    altstack = task.sigaltstack
    on_altstack = altstack is not None and altstack[0] < sp <= altstack[0] + altstack[2]
    entering_altstack = (action.flags & SA_ONSTACK and altstack is not None and not altstack[1] & SS_DISABLE
                         and not on_altstack)
    if entering_altstack:
        sp = altstack[0] + altstack[2]
    else:
        sp -= RED_ZONE_BYTES
    # Extended state first (64-byte aligned), then the frame below it.
    xstate_size = xstate_frame_bytes(kernel, task)
    fp_address = (sp - xstate_size) & ~63
    frame = ((fp_address - RT_SIGFRAME_BYTES) & ~15) - 8
    if (on_altstack or entering_altstack) and not altstack[0] < frame <= altstack[0] + altstack[2]:
        # get_sigframe: a frame that would overflow the alternate stack is
        # never written below it (the caller turns this into SIGSEGV).
        return False
    try:
        # Linux's copy_fpstate_to_sigframe: XSAVE of the user features into
        # the frame, then the software-reserved bytes and MAGIC2.
        mask = task.fpstate.user_xfeatures
        mm.copy_to_user(fp_address, bytes(xstate_size))
        xstate.xsave(vcpu, fp_address, mask, variant="xsave")
        sw_bytes = struct.pack("<IIQI", FP_XSTATE_MAGIC1, xstate_size, mask, xstate_size - FP_XSTATE_MAGIC2_BYTES)
        mm.copy_to_user(fp_address + SW_RESERVED_OFFSET, sw_bytes)
        mm.copy_to_user(fp_address + xstate_size - FP_XSTATE_MAGIC2_BYTES, struct.pack("<I", FP_XSTATE_MAGIC2))
        mcontext = [registers[name] for name in SIGCONTEXT_GPRS]
        mcontext += [registers["rflags"]]
        segments = struct.pack("<HHHH", USER_CS, 0, 0, USER_DS)
        # err, trapno and cr2 are the thread's fault record (emu_x86/kernel/traps.py), as
        # setup_sigcontext copies current->thread.error_code/trap_nr/cr2.
        sigcontext = (struct.pack(f"<{len(mcontext)}Q", *mcontext) + segments
                      + struct.pack("<QQQQQ", task.error_code, task.trap_nr, task.signal_mask & 0xFFFFFFFF,
                                    task.cr2, fp_address) + bytes(64))
        ss_sp, ss_flags, ss_size = altstack if altstack is not None else (0, SS_DISABLE, 0)
        if on_altstack:
            ss_flags |= SS_ONSTACK
        ucontext = (struct.pack("<QQ", UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0)
                    + struct.pack("<Qi4xQ", ss_sp, ss_flags, ss_size) + sigcontext
                    + struct.pack("<Q", task.signal_mask))
        assert len(ucontext) == UCONTEXT_BYTES
        mm.copy_to_user(frame, struct.pack("<Q", action.restorer) + ucontext + info.pack())
    except SyscallError:
        return False
    # Enter the handler: arguments per the psABI, DF and TF clear (signal.c handle_signal).
    vcpu.write_register("rdi", info.signo)
    vcpu.write_register("rsi", frame + 8 + UCONTEXT_BYTES)
    vcpu.write_register("rdx", frame + 8)
    vcpu.write_register("rax", 0)
    vcpu.write_register("rsp", frame)
    vcpu.write_register("rip", action.handler)
    vcpu.write_register("rflags", registers["rflags"] & ~((1 << 10) | (1 << 8)))
    # The handler runs with every user feature but PKRU in its init state
    # (fpu__clear_user_states -> restore_fpregs_from_init_fpstate(XFEATURE_MASK_USER_RESTORE)):
    # x87/SSE reset and the AMX tiles released; rt_sigreturn brings them back from the frame.
    for name, value in xstate.init_legacy_registers().items():
        vcpu.write_register(name, value)
    vcpu.write_register("mxcsr", xstate.MXCSR_INIT)
    # ... and so do the other user components (fpu__clear_user_states restores
    # every user feature from init_fpstate): the handler starts with no tiles.
    if task.fpstate.user_xfeatures & XFEATURE_MASK_XTILE:
        vcpu.xstate.release_tiles()
        vcpu.xstate.modified_since_restore |= XFEATURE_MASK_XTILE
    blocked = task.signal_mask | action.mask
    if not action.flags & SA_NODEFER:
        blocked |= sigbit(info.signo)
    task.signal_mask = blocked & ~UNBLOCKABLE
    if action.flags & SA_RESETHAND:
        task.process.sigactions[info.signo] = SigAction().pack()
    kernel.counters["signals_delivered"] += 1
    return True


def sys_rt_sigreturn(kernel: "Kernel", vcpu: "VCpu", task: "Task", *_):
    """Restore the registers, mask, altstack and xstate from the frame the handler returns through.
    A frame that cannot be read or restored is rt_sigreturn's badframe:
    signal_fault -> force_sig(SIGSEGV), which an installed handler catches,
    with RAX = 0 (the call's return value) and whatever was restored so far."""
    frame = vcpu.read_register("rsp") - 8
    mm = task.mm
    try:
        raw = mm.copy_from_user(frame + 8, UCONTEXT_BYTES)
    except SyscallError:
        return _rt_sigreturn_badframe(kernel, vcpu, task)
    _flags, _link = struct.unpack_from("<QQ", raw, 0)
    ss_sp, ss_flags, ss_size = struct.unpack_from("<Qi4xQ", raw, 16)
    mcontext = struct.unpack_from(f"<{len(SIGCONTEXT_GPRS) + 1}Q", raw, 40)
    fp_address = struct.unpack_from("<Q", raw, 40 + 8 * 18 + 8 + 8 * 4)[0]
    (mask,) = struct.unpack_from("<Q", raw, 40 + 256)
    for name, value in zip(SIGCONTEXT_GPRS, mcontext):
        vcpu.write_register(name, value)
    # Only the user-changeable flags come back (FIX_EFLAGS in signal.c).
    user_flags = 0x40DD5   # AC OF DF TF SF ZF AF PF CF + RF
    current_flags = vcpu.read_register("rflags")
    vcpu.write_register("rflags", (current_flags & ~user_flags) | (mcontext[-1] & user_flags) | 0x2)
    task.signal_mask = mask & ~UNBLOCKABLE
    if fp_address:
        try:
            (magic1,) = struct.unpack("<I", mm.copy_from_user(fp_address + SW_RESERVED_OFFSET, 4))
            mask_to_restore = task.fpstate.user_xfeatures if magic1 == FP_XSTATE_MAGIC1 else 0b11
            xstate.xrstor(vcpu, fp_address, mask_to_restore, supervisor=False)
        except (CpuException, SyscallError):
            # A corrupt xstate (reserved header bits: XRSTOR's #GP) or an
            # unreadable one: __fpu_restore_sig fails, and so does the frame.
            return _rt_sigreturn_badframe(kernel, vcpu, task)
    if not ss_flags & SS_DISABLE:
        task.sigaltstack = (ss_sp, ss_flags & ~SS_ONSTACK, ss_size)
    deliver_pending_signals(kernel, vcpu, task)
    return None   # RAX was restored from the frame


def _rt_sigreturn_badframe(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    vcpu.write_register("rax", 0)
    force_sig(kernel, vcpu, task, SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0))


def sys_sigaltstack(kernel: "Kernel", vcpu: "VCpu", task: "Task", new_address, old_address, *_):
    """sigaltstack(2) in kernel/signal.c's order: read the new stack (EFAULT),
    do_sigaltstack's checks (EPERM on it, EINVAL mode, ENOMEM size), and only
    then, on success, write the old one (EFAULT)."""
    mm = task.mm
    sp = vcpu.read_register("rsp")
    current = task.sigaltstack
    new = struct.unpack("<Qi4xQ", mm.copy_from_user(new_address, 24)) if new_address else None
    on_stack = current is not None and current[0] < sp <= current[0] + current[2]
    if current is None:
        old = (0, SS_DISABLE, 0)
    else:
        old = (current[0], (SS_ONSTACK if on_stack else 0) | (current[1] & SS_FLAG_BITS), current[2])
    if new is not None:
        ss_sp, ss_flags, ss_size = new
        ss_flags &= 0xFFFFFFFF
        if on_stack:
            raise SyscallError(EPERM)
        ss_mode = ss_flags & ~SS_FLAG_BITS
        if ss_mode not in (0, SS_DISABLE, SS_ONSTACK):
            raise SyscallError(EINVAL)
        if ss_mode == SS_DISABLE:
            task.sigaltstack = None
        else:
            # MINSIGSTKSZ first, then the frame the permitted xstate needs
            # (kernel/signal.c do_sigaltstack -> sigaltstack_size_valid).
            from emu_x86.kernel.fpu import sigaltstack_size_valid
            if ss_size < MINSIGSTKSZ or not sigaltstack_size_valid(kernel, task.process, ss_size):
                raise SyscallError(ENOMEM)
            task.sigaltstack = (ss_sp, ss_flags & SS_FLAG_BITS, ss_size)
    if old_address:
        mm.copy_to_user(old_address, struct.pack("<Qi4xQ", old[0], old[1], old[2]))
    return 0


def get_action(task: "Task", signo: int) -> SigAction:
    raw = task.process.sigactions.get(signo)
    return SigAction.unpack(raw) if raw else SigAction()


def force_sig_fault(kernel: "Kernel", vcpu: "VCpu", task: "Task", info: SigInfo) -> None:
    """A synchronous fault signal (force_sig_fault): blocked or ignored means the default action."""
    action = get_action(task, info.signo)
    if task.signal_mask & sigbit(info.signo) or action.handler == SIG_IGN:
        action = SigAction()
        if task.ptrace is not None:
            # force_sig_info_to_task: the handler becomes SIG_DFL and the signal
            # unblocked, then it is queued and the tracer sees it first.
            task.process.sigactions[info.signo] = action.pack()
            task.signal_mask &= ~sigbit(info.signo)
    if task.ptrace is not None:
        task.pending_signals.insert(0, info)
        deliver_pending_signals(kernel, vcpu, task)
        return
    if kernel.strace is not None:       # delivered here, not through handle_signal
        kernel.strace.signal(task, info)
    if action.handler == SIG_DFL:
        # The exit line names the faulting address for memory faults only.
        address = info.address if info.signo in (signals.SIGSEGV, signals.SIGBUS) and info.code > 0 else None
        kernel.force_fatal_signal(task, info.signo, vcpu.read_register("rip"), address)
        return
    if not setup_rt_frame(kernel, vcpu, task, info, action):
        force_sigsegv(kernel, vcpu, task, info.signo)


def force_sig(kernel: "Kernel", vcpu: "VCpu", task: "Task", info: SigInfo) -> None:
    """force_sig (force_sig_info_to_task, HANDLER_CURRENT): a blocked or
    ignored signal gets its default action back and is unblocked; then it is
    delivered at once -- synchronous signals are dequeued first."""
    action = get_action(task, info.signo)
    if task.signal_mask & sigbit(info.signo) or action.handler == SIG_IGN:
        action.handler = SIG_DFL
        task.process.sigactions[info.signo] = action.pack()
        task.signal_mask &= ~sigbit(info.signo)
    force_sig_fault(kernel, vcpu, task, info)


def force_sigsegv(kernel: "Kernel", vcpu: "VCpu", task: "Task", failed_signo: int) -> None:
    """signal_setup_done(failed) -> force_sigsegv (kernel/signal.c): the frame
    for ``failed_signo`` could not be written. A SIGSEGV whose own frame failed
    is fatal (force_fatal_sig); any other signal becomes a SIGSEGV, which a
    SIGSEGV handler may catch."""
    if failed_signo == signals.SIGSEGV:
        kernel.force_fatal_signal(task, signals.SIGSEGV, vcpu.read_register("rip"), None,
                                  detail="cannot write the signal frame")
        return
    force_sig(kernel, vcpu, task, SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0))


def send_signal(kernel: "Kernel", sender_vcpu: "VCpu | None", target: "Task", info: SigInfo) -> None:
    """kill/tgkill: queue for the target thread; it is delivered on its way back to user mode."""
    if info.signo in jobctl.PREPARE_SIGNALS and jobctl.prepare_signal(kernel, sender_vcpu, target, info):
        return
    action = get_action(target, info.signo)
    traced = target.ptrace is not None
    # sig_ignored: a tracer sees even ignored signals (but SIGKILL).
    if not traced and (action.handler == SIG_IGN or (action.handler == SIG_DFL and info.signo in DEFAULT_IGNORED)):
        if kernel.strace is not None and not target.signal_mask & sigbit(info.signo):
            kernel.strace.ignored(target, info)     # strace -f still shows it (kernel/strace/tracer.py)
        return
    target.pending_signals.append(info)
    if traced:
        from emu_x86.kernel.ptrace import ptrace_signal_wake
        if ptrace_signal_wake(kernel, sender_vcpu, target, info):
            return
    if target.signal_mask & sigbit(info.signo) and not sigbit(info.signo) & UNBLOCKABLE:
        return           # blocked: it stays pending and wakes nobody (signal_wake_up is not called)
    if target.state == "sleeping" and not target.sleep_uninterruptible:
        from emu_x86.kernel.errno import EINTR
        if target.nanosleep_rmtp is not None:
            from emu_x86.kernel.posix_timers import nanosleep_interrupted
            now_cycles = sender_vcpu.cycles if sender_vcpu is not None else target.wake_cycles or 0
            nanosleep_interrupted(kernel, target, now_cycles)
        restart_number = getattr(target.wait_request, "syscall_number", None)
        if restart_number is None:       # a blocking read/write (kernel/wait.py): -ERESTARTSYS
            restart_number = getattr(target.waiter, "restart_number", None)
        if kernel.strace is not None and not traced:
            kernel.strace.interrupted(target, restart_number)      # the log shows Linux's -ERESTART*
        if traced:
            # -ERESTART*: the traced task's return to user decides (emu_x86/kernel/ptrace.py).
            from emu_x86.kernel.ptrace import ptrace_interrupted_sleep
            target.registers["rax"] = ptrace_interrupted_sleep(target, restart_number)
        elif restart_number is not None and action.handler != SIG_DFL and action.flags & SA_RESTART:
            # wait4/waitid end with -ERESTARTSYS: with SA_RESTART the handler
            # returns onto the SYSCALL instruction, which runs again.
            target.registers["rip"] -= 2
            target.registers["rax"] = restart_number
        else:
            target.registers["rax"] = (-EINTR) & ((1 << 64) - 1)
        kernel.timeout_expired_silently(target)
        kernel.scheduler.wake_up(target, sender_vcpu)
    elif target.state == "running" and sender_vcpu is not None and target.cpu not in (None, sender_vcpu.index):
        kick_process(kernel, sender_vcpu, target)


def kick_process(kernel: "Kernel", sender_vcpu: "VCpu", target: "Task") -> None:
    """signal_wake_up on a task running on another CPU (kick_process): an IPI
    makes that CPU pass through the return-to-user path, which delivers the signal."""
    def deliver_on_interrupt_return(vcpu: "VCpu") -> None:
        running = kernel.current[vcpu.index]
        if running is not None and running.pending_signals:
            deliver_pending_signals(kernel, vcpu, running)
    kernel.smp_call_function_many(sender_vcpu, [target.cpu], deliver_on_interrupt_return, wait=False)


def deliver_pending_signals(kernel: "Kernel", vcpu: "VCpu", task: "Task") -> None:
    """On return to user mode: deliver the first unblocked pending signal (get_signal)."""
    for index, info in enumerate(task.pending_signals):
        if info.signo in (signals.SIGKILL, signals.SIGSTOP) or not task.signal_mask & sigbit(info.signo):
            del task.pending_signals[index]
            if task.ptrace is not None and info.signo != signals.SIGKILL:
                # The tracer decides first (get_signal -> ptrace_signal).
                from emu_x86.kernel.ptrace import ptrace_signal
                ptrace_signal(kernel, vcpu, task, info)
                return
            handle_signal(kernel, vcpu, task, info)
            return


def handle_signal(kernel: "Kernel", vcpu: "VCpu", task: "Task", info: SigInfo) -> None:
    """Take the signal's action: ignore, the default (death), or the handler's frame."""
    action = get_action(task, info.signo)
    if kernel.strace is not None and info.signo != signals.SIGKILL:
        kernel.strace.signal(task, info)       # ignored ones too: a traced task shows every signal it dequeues
    if action.handler == SIG_IGN:
        return
    if action.handler == SIG_DFL:
        if info.signo in DEFAULT_IGNORED:
            return
        if info.signo in jobctl.STOP_SIGNALS:
            jobctl.do_signal_stop(kernel, vcpu, task, info.signo)
            return
        kernel.force_fatal_signal(task, info.signo, vcpu.read_register("rip"), None)
        return
    if not setup_rt_frame(kernel, vcpu, task, info, action):
        force_sigsegv(kernel, vcpu, task, info.signo)


__all__ = ["EFAULT", "SigAction", "SigInfo", "deliver_pending_signals", "force_sig_fault", "handle_signal",
           "send_signal", "sys_rt_sigreturn", "sys_sigaltstack"]
