"""Instructions that abort Unicorn's translator, and finding them in a block.

Unicorn 2.1.4 (QEMU 5 underneath) translates a LOCK-prefixed BT, BTS, BTR or
BTC with a register destination by reading an address temporary it never
wrote, and TCG then calls abort() while generating the block ("tcg fatal
error"; fixed upstream by unicorn PR #2358, not in a release). The SDM
defines all of them as #UD: LOCK is allowed only on a read-modify-write of
memory, and never on BT (Vol. 2A, "LOCK -- Assert LOCK# Signal Prefix").

emu_x86/emu/timing/abort_guard.c turns the abort into a return; VCpu then continues
on a fresh Unicorn instance and uses ``find_untranslatable`` to stop the
block before the culprit and raise the #UD itself. LOCK BT with a memory
operand does not abort Unicorn (it runs as a plain BT), so it is not listed.
"""
from __future__ import annotations

from collections.abc import Callable

from emu_x86.emu.isa.decoder import (
    CS_GRP_BRANCH_RELATIVE, CS_GRP_CALL, CS_GRP_INT, CS_GRP_IRET, CS_GRP_JUMP, CS_GRP_RET, detailed_decoder,
)
from emu_x86.emu.isa.prefixes import MAX_INSTRUCTION_BYTES, PREFIX_LOCK, PREFIX_NAMES

LEGACY_PREFIXES = frozenset(PREFIX_NAMES)
# 0F A3 BT, 0F AB BTS, 0F B3 BTR, 0F BB BTC (r/m, r); 0F BA /4../7 (r/m, imm8).
_BIT_TEST_REG_FORMS = frozenset({0xA3, 0xAB, 0xB3, 0xBB})
_BIT_TEST_IMM_GROUP = 0xBA
# A straight run of instructions longer than a translation block can be
# (TCG_MAX_INSNS) is not searched further.
MAX_BLOCK_INSTRUCTIONS = 512
_BLOCK_ENDING_GROUPS = (CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET, CS_GRP_INT, CS_GRP_IRET, CS_GRP_BRANCH_RELATIVE)


def aborts_unicorn_translator(code: bytes) -> bool:
    """True when ``code`` starts with LOCK BT/BTS/BTR/BTC whose destination is a register."""
    position, locked = 0, False
    while position < len(code) and position < MAX_INSTRUCTION_BYTES - 3:
        byte = code[position]
        if byte in LEGACY_PREFIXES:
            locked |= byte == PREFIX_LOCK
        elif not 0x40 <= byte <= 0x4F:     # REX
            break
        position += 1
    if not locked or code[position:position + 1] != b"\x0f" or position + 2 >= len(code):
        return False
    opcode, modrm = code[position + 1], code[position + 2]
    if modrm >> 6 != 3:
        return False
    return opcode in _BIT_TEST_REG_FORMS or (opcode == _BIT_TEST_IMM_GROUP and (modrm >> 3) & 7 >= 4)


def find_untranslatable(fetch: Callable[[int, int], bytes], start: int) -> int | None:
    """The address of the first instruction at or after ``start``, in the
    straight-line run a translation block starting there can cover, that
    aborts Unicorn's translator; None if there is none. ``fetch(address, n)``
    returns up to n code bytes (fewer at the end of mapped memory)."""
    address = start
    for _ in range(MAX_BLOCK_INSTRUCTIONS):
        code = fetch(address, MAX_INSTRUCTION_BYTES)
        if aborts_unicorn_translator(code):
            return address
        instruction = next(detailed_decoder().disasm(code, address, 1), None)
        if instruction is None or any(instruction.group(group) for group in _BLOCK_ENDING_GROUPS):
            return None
        address += instruction.size
    return None
