"""User-mode exceptions -> signals, as arch/x86/kernel/traps.c sends them.

Every handler records the vector and error code in the thread's fault
record (thread.trap_nr/error_code: sigcontext's trapno and err) before
the signal, as do_trap/do_error_trap, exc_general_protection and
send_sigtrap do. Page faults and #NM have their own paths in kernel.py
(fault.c, handle_xfd_event); int $0x80 is a system call (emu_x86/kernel/ia32.py).
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.traps import (
    DR6_BS, DR6_TRAP_BITS, VECTOR_AC, VECTOR_BP, VECTOR_DB, VECTOR_DE, VECTOR_GP, VECTOR_MF, VECTOR_NP,
    VECTOR_OF, VECTOR_PF, VECTOR_SS, VECTOR_UD, VECTOR_XM, CpuException,
)
from emu_x86.kernel import signals
from emu_x86.kernel.sigframe import SigInfo

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.task import Task

# The IDT's system gates (DPL 3), which user code may reach with INT n
# (arch/x86/kernel/idt.c def_idts: X86_TRAP_OF, X86_TRAP_BP; and
# IA32_SYSCALL_VECTOR for 32-bit system calls). INT n to any other vector
# is #GP(n * 8 + 2).
IA32_SYSCALL_VECTOR = 0x80
USER_GATES = (VECTOR_BP, VECTOR_OF, IA32_SYSCALL_VECTOR)

# Page-fault error-code bits Linux adds for a user fault (fault.c set_signal_archinfo).
X86_PF_PROT = 1 << 0
X86_PF_USER = 1 << 2
TASK_SIZE_MAX = (1 << 47) - 4096

BUS_ADRALN = 1
VECTOR_BR = 5
TRAP_HWBKPT = 4


def record_fault(task: "Task", vector: int, error_code: int) -> None:
    """thread.trap_nr and thread.error_code (do_trap, send_sigtrap ...)."""
    task.trap_nr = vector
    task.error_code = error_code


def record_page_fault(task: "Task", address: int, error_code: int) -> None:
    """set_signal_archinfo: user faults on kernel addresses always look like
    protection faults (not to leak the kernel's page-table layout), and the
    error code always has the user bit."""
    if address >= TASK_SIZE_MAX:
        error_code |= X86_PF_PROT
    task.trap_nr = VECTOR_PF
    task.error_code = error_code | X86_PF_USER
    task.cr2 = address


def debug_si_code(dr6: int) -> int:
    """get_si_code: single step, a hardware breakpoint, else INT1/ICEBP."""
    if dr6 & DR6_BS:
        return signals.TRAP_TRACE
    if dr6 & DR6_TRAP_BITS:
        return TRAP_HWBKPT
    return signals.TRAP_BRKPT


def user_exception_signal(task: "Task", exc: CpuException, rip: int) -> SigInfo:
    """The signal a user-mode exception sends (the exc_* handlers of traps.c),
    with the fault record updated. ``rip`` is the RIP the exception left:
    the faulting instruction for faults, the next one for traps."""
    vector = exc.vector
    record_fault(task, vector, exc.error_code)
    if vector == VECTOR_DE:
        return SigInfo(signals.SIGFPE, signals.FPE_INTDIV, rip)
    if vector == VECTOR_DB:
        # exc_debug_user -> send_sigtrap: si_addr is the user RIP (past the instruction).
        record_fault(task, vector, 0)
        return SigInfo(signals.SIGTRAP, debug_si_code(getattr(exc, "dr6", DR6_BS)), rip)
    if vector == VECTOR_BP:
        return SigInfo(signals.SIGTRAP, signals.SI_KERNEL, 0)         # do_int3_user: force_sig
    if vector in (VECTOR_OF, VECTOR_BR, VECTOR_GP):
        return SigInfo(signals.SIGSEGV, signals.SI_KERNEL, 0)         # do_trap without si_code; gp: force_sig
    if vector == VECTOR_UD:
        return SigInfo(signals.SIGILL, signals.ILL_ILLOPN, rip)
    if vector in (VECTOR_NP, VECTOR_SS):
        return SigInfo(signals.SIGBUS, signals.SI_KERNEL, 0)
    if vector == VECTOR_AC:
        return SigInfo(signals.SIGBUS, BUS_ADRALN, 0)
    if vector in (VECTOR_MF, VECTOR_XM):
        return SigInfo(signals.SIGFPE, signals.SI_KERNEL, 0)
    return SigInfo(signals.SIGBUS if vector == 18 else signals.SIGSEGV, signals.SI_KERNEL, 0)


def load_idt(vcpu: "VCpu") -> None:
    """idt_setup_traps: the gates user mode may use."""
    vcpu.load_idt_user_gates(USER_GATES)


__all__ = ["IA32_SYSCALL_VECTOR", "USER_GATES", "load_idt", "record_page_fault", "user_exception_signal"]
