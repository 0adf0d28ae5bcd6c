"""The machine: physical memory, vCPUs and the deterministic scheduler that runs them.

Each vCPU has its own cycle clock (the C hot path's counters). The machine
always runs the runnable vCPU with the smallest clock for one quantum, ties
broken by CPU number, so a run is a pure function of the program, options and
seed (DESIGN.md, determinism).
"""
from __future__ import annotations

from typing import Callable

import capstone

from emu import firmware
from emu.memory import PAGE_SIZE, PhysicalMemory
from emu.mmu.pagewalk import ACCESS_FETCH
from emu.timing.profile import DEFAULT_PROFILE, Profile, load_profile
from emu.traps import CpuException, TrapHandler
from emu.vcpu import STOP_DEADLINE, VCpu

DEFAULT_MEMORY_BYTES = 512 << 20
DEFAULT_QUANTUM_CYCLES = 1_000_000
MAX_CPUS = 64


class MachineStopped(Exception):
    pass


class Machine:
    """Fields: ``memory`` (shared physical memory), ``vcpus``, ``trap_handler``
    (the kernel, set by ``attach``), ``reserved_physical_bytes`` (frames below
    this belong to the firmware; the kernel allocates above it)."""

    def __init__(self, cpus: int = 1, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 quantum_cycles: int = DEFAULT_QUANTUM_CYCLES, max_cycles: int | None = None,
                 profile: Profile | str = DEFAULT_PROFILE):
        if not 1 <= cpus <= MAX_CPUS:
            raise ValueError(f"--cpus must be between 1 and {MAX_CPUS}")
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.memory = PhysicalMemory(memory_bytes)
        self.memory.write(0, firmware.firmware_image())
        self.reserved_physical_bytes = firmware.FIRMWARE_SIZE_BYTES
        self.quantum_cycles = quantum_cycles
        self.max_cycles = max_cycles
        self.trap_handler: TrapHandler | None = None
        # Extension instructions Unicorn does not know (emu/isa): called from
        # the invalid-opcode hook; returns True when it executed the instruction.
        self.invalid_opcode_handler: Callable[[VCpu], bool] | None = None
        self._disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._disassembler.detail = True
        self.vcpus = [VCpu(self, index) for index in range(cpus)]
        self.stopped = False
        self.cycle_limit_reached = False

    def attach(self, trap_handler: TrapHandler) -> None:
        self.trap_handler = trap_handler

    # ---- cost of code ---------------------------------------------------

    def price_block(self, vcpu: VCpu, address: int, size_bytes: int) -> tuple[int, int]:
        """(instructions, cycles) of the translated block at ``address``.

        Called once per new block from the C hot path; the cost comes from the
        profile (emu/timing/profile.py).
        """
        code = self.read_virtual(vcpu, address, size_bytes)
        if size_bytes == 0:
            return 0, 0
        decoded = list(self._disassembler.disasm(code, address))
        if not decoded:
            return 1, self.profile.block_cycles([])
        return len(decoded), self.profile.block_cycles(decoded)

    def read_virtual(self, vcpu: VCpu, address: int, size: int, access: int = ACCESS_FETCH) -> bytes:
        """Read guest-virtual bytes through ``vcpu``'s page tables (raises PF)."""
        out = bytearray()
        while size > 0:
            chunk = min(size, PAGE_SIZE - (address & (PAGE_SIZE - 1)))
            paddr = vcpu.translate(address, access)
            out += self.memory.read(paddr, chunk)
            address += chunk
            size -= chunk
        return bytes(out)

    # ---- running --------------------------------------------------------

    def stop(self) -> None:
        """End the run after the current quantum (the kernel calls this on exit_group)."""
        self.stopped = True

    def run(self) -> None:
        """Run vCPUs until the kernel stops the machine or the cycle limit is reached."""
        if self.trap_handler is None:
            raise RuntimeError("no trap handler attached")
        while not self.stopped:
            runnable = [vcpu for vcpu in self.vcpus if not vcpu.halted]
            if not runnable:
                self.trap_handler.handle_all_idle(self)
                if all(vcpu.halted for vcpu in self.vcpus) and not self.stopped:
                    raise MachineStopped("every vCPU is halted and nothing can wake one")
                continue
            vcpu = min(runnable, key=lambda v: (v.cycles, v.index))
            deadline = vcpu.cycles + self.quantum_cycles
            if self.max_cycles is not None:
                if vcpu.cycles >= self.max_cycles:
                    self.cycle_limit_reached = True
                    return
                deadline = min(deadline, self.max_cycles)
            vcpu.run(deadline)

    @property
    def elapsed_cycles(self) -> int:
        """Machine time: the furthest any vCPU's clock has advanced."""
        return max(vcpu.cycles for vcpu in self.vcpus)
