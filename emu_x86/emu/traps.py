"""Architected exceptions and the interface through which the machine reports them.

Faults are exception classes raised anywhere in the machine (page walker,
instruction handlers) and delivered in one place, ``VCpu`` -> ``TrapHandler``
(the pattern of Spike's trap.h). The kernel implements ``TrapHandler``; the
machine never imports the kernel (DESIGN.md, layers).
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from typing import Protocol

    from emu_x86.emu.vcpu import VCpu
else:
    # TrapHandler is a Protocol for the type checker alone; at run time it is
    # a plain class naming the interface (no isinstance checks use it), so the
    # start-up path need not import typing.
    Protocol = object

# Vector numbers, Intel SDM Vol. 3A, Table 6-1.
VECTOR_DE = 0
VECTOR_DB = 1
VECTOR_BP = 3
VECTOR_OF = 4
VECTOR_BR = 5
VECTOR_UD = 6
VECTOR_NM = 7
VECTOR_DF = 8
VECTOR_TS = 10
VECTOR_NP = 11
VECTOR_SS = 12
VECTOR_GP = 13
VECTOR_PF = 14
VECTOR_MF = 16
VECTOR_AC = 17
VECTOR_XM = 19

VECTOR_NAMES = {
    VECTOR_DE: "#DE", VECTOR_DB: "#DB", VECTOR_BP: "#BP", VECTOR_OF: "#OF",
    VECTOR_BR: "#BR", VECTOR_UD: "#UD", VECTOR_NM: "#NM", VECTOR_DF: "#DF",
    VECTOR_TS: "#TS", VECTOR_NP: "#NP", VECTOR_SS: "#SS", VECTOR_GP: "#GP",
    VECTOR_PF: "#PF", VECTOR_MF: "#MF", VECTOR_AC: "#AC", VECTOR_XM: "#XM",
}

# Page-fault error code bits, SDM Vol. 3A §4.7 (Figure 4-12).
PF_PRESENT = 1 << 0   # 1: protection violation on a present page; 0: not present
PF_WRITE = 1 << 1     # the access was a write
PF_USER = 1 << 2      # the access was made at CPL3
PF_RSVD = 1 << 3      # a reserved bit was set in a paging-structure entry
PF_INSTR = 1 << 4     # the access was an instruction fetch (NX enabled)


class CpuException(Exception):
    """An architected exception raised while executing guest code."""

    vector: int = -1

    # A trap an emulated instruction raised after retiring (INT1): RIP moves
    # this many bytes past the instruction when it is delivered (VCpu.run).
    trap_instruction_bytes: int = 0

    def __init__(self, error_code: int = 0):
        super().__init__(error_code)
        self.error_code = error_code

    def after_instruction(self, length_bytes: int) -> "CpuException":
        """Mark this exception as a trap that follows the instruction at RIP."""
        self.trap_instruction_bytes = length_bytes
        return self

    @property
    def name(self) -> str:
        return VECTOR_NAMES.get(self.vector, f"vector {self.vector}")

    def __str__(self) -> str:
        return f"{self.name}({self.error_code:#x})"


class DE(CpuException):
    vector = VECTOR_DE


# DR6 bits (SDM Vol. 3B §18.2.3): B0-B3 (breakpoint conditions) and BS (single step).
DR6_TRAP_BITS = 0xF
DR6_BS = 1 << 14


class DB(CpuException):
    """#DB. ``dr6``: the status bits the processor reports -- BS for a
    single-step trap (RFLAGS.TF), none for INT1/ICEBP (SDM Vol. 3B §18.2.3)."""
    vector = VECTOR_DB

    def __init__(self, error_code: int = 0, dr6: int = DR6_BS):
        super().__init__(error_code)
        self.dr6 = dr6


class BP(CpuException):
    vector = VECTOR_BP


class OF(CpuException):
    vector = VECTOR_OF


class UD(CpuException):
    vector = VECTOR_UD


class NM(CpuException):
    vector = VECTOR_NM


class GP(CpuException):
    vector = VECTOR_GP


class SS(CpuException):
    vector = VECTOR_SS


class AC(CpuException):
    vector = VECTOR_AC


class MF(CpuException):
    vector = VECTOR_MF


class XM(CpuException):
    vector = VECTOR_XM


class PF(CpuException):
    vector = VECTOR_PF

    def __init__(self, address: int, error_code: int):
        super().__init__(error_code)
        self._address = address  # becomes CR2
        self._refine = None

    @property
    def address(self) -> int:
        """CR2: the exact faulting linear address, worked out on first use
        when the machine saw only its page (VCpu._refine_fault_address)."""
        refine = self._refine
        if refine is not None:
            self._refine = None
            self._address = refine(self._address)
        return self._address

    @address.setter
    def address(self, value: int) -> None:
        self._address = value
        self._refine = None

    @property
    def page_address(self) -> int:
        """The faulting page, known without refining: what resolving a
        demand fault needs (VMAs and PTEs are per page). Refinement never
        leaves the page (emu_x86/emu/mmu/faultaddr.py exact_fault_address)."""
        return self._address & ~0xFFF

    def refine_address_later(self, refine) -> None:
        """``refine(page_granular_address) -> exact address``, run when
        ``address`` is first read. Most faults are demand faults the kernel
        resolves from the page alone; decoding their instruction (capstone)
        for a CR2 nobody reads was the only reason a run loaded capstone."""
        self._refine = refine

    def __str__(self) -> str:
        return f"#PF(addr={self.address:#x}, err={self.error_code:#x})"


class SoftwareInterrupt(CpuException):
    """INT n through an interrupt gate user mode may use (DPL 3) for a vector
    that is not an exception: the operating system's entry (Linux's int $0x80).
    A trap: RIP is past the instruction."""

    def __init__(self, vector: int):
        super().__init__(0)
        self.vector = vector

    def __str__(self) -> str:
        return f"INT {self.vector:#x}"


class SysenterEntry(CpuException):
    """SYSENTER from user mode on an Intel processor in long mode: an entry
    into the operating system at CPL0 (SDM Vol. 2B SYSENTER), which loads RIP
    and RSP from MSRs -- the user's are lost; the OS decides where to return."""

    def __str__(self) -> str:
        return "SYSENTER"


def gp_for_software_interrupt(vector: int) -> GP:
    """INT n whose gate's DPL is below CPL: #GP with the IDT-referencing error
    code (vector * 8 + 2: IDT bit set, EXT clear; SDM Vol. 3A §6.13)."""
    return GP((vector << 3) | 2)


_BY_VECTOR = {cls.vector: cls for cls in (DE, DB, BP, OF, UD, NM, GP, SS, AC, MF, XM)}


def exception_for_vector(vector: int, error_code: int = 0) -> CpuException:
    """The exception object for a vector Unicorn reported through UC_HOOK_INTR."""
    cls = _BY_VECTOR.get(vector)
    if cls is None:
        exc = CpuException(error_code)
        exc.vector = vector
        return exc
    return cls(error_code)


class TrapHandler(Protocol):
    """What the machine calls when a vCPU leaves guest code. The kernel implements it.

    Each method runs with the vCPU stopped at an instruction boundary; it may
    read and write the vCPU's registers and memory and returns when the vCPU
    may resume (or after it has parked the vCPU, e.g. by ending the task).
    """

    def handle_syscall(self, vcpu: "VCpu") -> None:
        """SYSCALL from CPL3. RIP already points after the instruction; RCX and
        R11 hold the return RIP and RFLAGS as the SDM's SYSCALL defines."""

    def handle_exception(self, vcpu: "VCpu", exc: CpuException) -> None:
        """A fault or trap. For faults RIP points at the faulting instruction;
        for #PF, ``exc.address`` is CR2."""

    def handle_preemption_point(self, vcpu: "VCpu") -> None:
        """An exploring scheduler (emu_x86/emu/sched_policy.py) ended the run between
        two user instructions: the kernel may switch tasks, as on an interrupt."""

    def handle_deadline(self, vcpu: "VCpu") -> None:
        """The vCPU's clock reached the deadline the scheduler set."""

    def handle_interrupt(self, vcpu: "VCpu", vector: int) -> None:
        """An external interrupt (IPI or local timer) arrived at an instruction boundary."""

    def handle_all_idle(self, machine) -> None:
        """Every vCPU is halted: advance time to the next event or stop the machine."""
