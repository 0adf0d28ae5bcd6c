"""Legacy system instructions Unicorn gets wrong at CPL3, and what the SDM says instead.

Unicorn (QEMU 5.0's TCG with Unicorn's changes) raises "invalid
instruction" for a few one- or two-byte system instructions where the
processor raises another exception at CPL3. They reach the invalid-opcode
hook like the extensions (dispatch.py), which asks this module before
giving up with #UD:

- INT1/ICEBP (F1): a #DB trap without any DR6 status bit (SDM Vol. 3B
  §18.2.3, Vol. 2A INT n/INTO/INT3/INT1): RIP moves past it.
- RDPMC (0F 33): #GP(0) at CPL3 unless CR4.PCE is set (SDM Vol. 2B RDPMC).
  The machine never sets CR4.PCE (Linux sets it only for tasks that mmap a
  perf event with rdpmc allowed), so it is always #GP(0) here.
- SYSRET (0F 07, REX.W or not): #GP(0) when CPL is not 0 (SDM Vol. 2B
  SYSRET; EFER.SCE is set by every x86-64 kernel, so not #UD).

The port I/O instructions are the other half of the story: Unicorn runs
them at any CPL without the IOPL and I/O-bitmap checks (its gen_check_io
returns at once), so the machine raises their #GP itself before they
execute (VCpu: blocks holding one, see Machine.price_block).
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.traps import DB, GP

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu

INT1 = 0xF1
RDPMC = b"\x0f\x33"
SYSRET = b"\x0f\x07"
REX_W_PREFIXES = range(0x48, 0x50)


def execute_system_instruction(vcpu: "VCpu", code: bytes, rip: int) -> bool:
    """Raise the architected exception for the system instruction at ``rip``;
    False when ``code`` is none of them (the caller raises #UD)."""
    if not code:
        return False
    if code[0] == INT1:
        raise DB(0, dr6=0).after_instruction(1)
    if code[:2] == RDPMC:
        raise GP(0)                 # CR4.PCE clear, CPL3
    if code[:2] == SYSRET or (code[0] in REX_W_PREFIXES and code[1:3] == SYSRET):
        raise GP(0)                 # CPL3
    return False


__all__ = ["execute_system_instruction"]
