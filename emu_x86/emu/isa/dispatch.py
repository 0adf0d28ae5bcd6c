"""Executing the instructions Unicorn does not know, from its invalid-opcode hook.

Unicorn raises "invalid instruction" for AMX, the XSAVE family (CR4.OSXSAVE
is kept clear in Unicorn so they fault here: the emulator owns XCR0/XINUSE),
XGETBV/XSETBV, RDPID, SERIALIZE, INVPCID, INVLPGB and TLBSYNC. The hook reads
the bytes at RIP, decodes them with the project's codec (encoding.py) and
runs the handler registered for the mnemonic in ``HANDLERS``; a handler
raises an architected exception (UD, GP, NM, PF) or returns, after which RIP
moves past the instruction and its cost is charged.
"""
from __future__ import annotations

from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import amx
from emu_x86.emu.isa.prefixes import MAX_INSTRUCTION_BYTES
from emu_x86.emu.isa.state import XFEATURE_MASK_XTILE
from emu_x86.emu.isa.system import execute_system_instruction
from emu_x86.emu.traps import GP, UD

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu

MASK64 = (1 << 64) - 1


def _memory_address(vcpu: "VCpu", operand, next_rip: int) -> int:
    from emu_x86.emu.isa import encoding     # the codec: loaded at the first extension instruction
    return encoding.effective_address(operand, vcpu.read_register, next_rip)


def _sibmem(vcpu: "VCpu", operand, next_rip: int) -> tuple[int, int]:
    """TILELOADD/TILESTORED memory operand: (row-0 address, stride)."""
    from emu_x86.emu.isa import encoding
    return encoding.sibmem_address(operand, vcpu.read_register, next_rip)


def _exec_ldtilecfg(vcpu, insn, next_rip):
    amx.ldtilecfg(vcpu, _memory_address(vcpu, insn.operands[0], next_rip))


def _exec_sttilecfg(vcpu, insn, next_rip):
    amx.sttilecfg(vcpu, _memory_address(vcpu, insn.operands[0], next_rip))


def _exec_tilerelease(vcpu, insn, next_rip):
    amx.tilerelease(vcpu)


def _exec_tilezero(vcpu, insn, next_rip):
    amx.tilezero(vcpu, insn.operands[0].number)


def _exec_tileloadd(vcpu, insn, next_rip):
    tile, memory = insn.operands
    base, stride = _sibmem(vcpu, memory, next_rip)
    amx.tileloadd(vcpu, tile.number, base, stride)


def _exec_tilestored(vcpu, insn, next_rip):
    memory, tile = insn.operands
    base, stride = _sibmem(vcpu, memory, next_rip)
    amx.tilestored(vcpu, tile.number, base, stride)


def _dot_product(kind: str) -> Callable:
    def execute(vcpu, insn, next_rip):
        dest, src1, src2 = (operand.number for operand in insn.operands)
        amx.tile_dot_product(vcpu, kind, dest, src1, src2)
    return execute


# XGETBV is NP 0F 01 D0 (SDM Vol. 2C): with no prefix byte, these three bytes are the whole instruction.
_XGETBV = b"\x0f\x01\xd0"


def _exec_xgetbv(vcpu, insn, next_rip):
    """XGETBV: ECX=0 reads XCR0; ECX=1 reads XINUSE (XCR0 & in-use components); else #GP."""
    selector = vcpu.read_register("rcx") & 0xFFFFFFFF
    xstate = vcpu.xstate
    if selector == 0:
        value = xstate.xcr0
    elif selector == 1:
        value = vcpu.xinuse() & xstate.xcr0
    else:
        raise GP(0)
    vcpu.write_register("rax", value & 0xFFFFFFFF)
    vcpu.write_register("rdx", value >> 32)


def _exec_xsetbv(vcpu, insn, next_rip):
    raise GP(0)   # CPL3: XSETBV is privileged (SDM Vol. 2D XSETBV: #GP(0) if CPL > 0)


def _exec_rdpid(vcpu, insn, next_rip):
    """RDPID r64: IA32_TSC_AUX, which Linux programs with the CPU number."""
    register = insn.operands[0].name
    vcpu.write_register(register if register.startswith("r") else "r" + register[1:], vcpu.msrs.tsc_aux)


def _exec_serialize(vcpu, insn, next_rip):
    if not vcpu.cpu_model.serialize:
        raise UD(0)


def _exec_privileged(vcpu, insn, next_rip):
    """INVPCID, INVLPGB, TLBSYNC at CPL3: #GP(0) (CPL0-only)."""
    if insn.mnemonic in ("invlpgb", "tlbsync") and not vcpu.cpu_model.invlpgb:
        raise UD(0)
    raise GP(0)


def _exec_xsave_family(vcpu, insn, next_rip):
    from emu_x86.emu.isa import xstate as xsave
    mnemonic = insn.mnemonic.removesuffix("64")
    address = _memory_address(vcpu, insn.operands[0], next_rip)
    rfbm_request = ((vcpu.read_register("rdx") & 0xFFFFFFFF) << 32) | (vcpu.read_register("rax") & 0xFFFFFFFF)
    if mnemonic in ("xsaves", "xrstors"):
        raise GP(0)   # CPL3
    if mnemonic in ("xsave", "xsaveopt", "xsavec"):
        xsave.xsave(vcpu, address, rfbm_request & vcpu.xstate.xcr0, variant=mnemonic)
    else:
        xsave.xrstor(vcpu, address, rfbm_request & vcpu.xstate.xcr0, supervisor=False)


HANDLERS: dict[str, Callable] = {
    "ldtilecfg": _exec_ldtilecfg,
    "sttilecfg": _exec_sttilecfg,
    "tilerelease": _exec_tilerelease,
    "tilezero": _exec_tilezero,
    "tileloadd": _exec_tileloadd,
    "tileloaddt1": _exec_tileloadd,
    "tilestored": _exec_tilestored,
    "tdpbssd": _dot_product("tdpbssd"),
    "tdpbsud": _dot_product("tdpbsud"),
    "tdpbusd": _dot_product("tdpbusd"),
    "tdpbuud": _dot_product("tdpbuud"),
    "tdpbf16ps": _dot_product("tdpbf16ps"),
    "xgetbv": _exec_xgetbv,
    "xsetbv": _exec_xsetbv,
    "rdpid": _exec_rdpid,
    "serialize": _exec_serialize,
    "invpcid": _exec_privileged,
    "invlpgb": _exec_privileged,
    "tlbsync": _exec_privileged,
    **{name: _exec_xsave_family for name in ("xsave", "xsave64", "xsaveopt", "xsaveopt64", "xsavec", "xsavec64",
                                             "xrstor", "xrstor64", "xsaves", "xsaves64", "xrstors", "xrstors64")},
}

# Cost class of each mnemonic in the profile's [events] table (emu_x86/emu/timing/profiles).
EVENT_COSTS = {
    "tdpbssd": "tdpb_d", "tdpbsud": "tdpb_d", "tdpbusd": "tdpb_d", "tdpbuud": "tdpb_d",
    "tdpbf16ps": "tdpbf16ps", "tileloadd": "tile_load_store", "tileloaddt1": "tile_load_store",
    "tilestored": "tile_load_store",
}


def execute_extension(vcpu: "VCpu") -> bool:
    """Run the instruction at RIP if it is one the emulator implements.

    Returns False when the bytes are not an extension instruction (the
    caller raises #UD). Architected exceptions propagate to the caller.
    """
    rip = vcpu.read_register("rip")
    code = vcpu.fetch_code(rip, MAX_INSTRUCTION_BYTES)
    if code.startswith(_XGETBV):
        # Every glibc start-up runs one XGETBV (its CPU-feature probe) and often
        # nothing else here: its fixed bytes need not load the codec's tables.
        next_rip = (rip + len(_XGETBV)) & MASK64
        _exec_xgetbv(vcpu, None, next_rip)
        vcpu.write_register("rip", next_rip)
        vcpu.charge_instruction(EVENT_COSTS.get("xgetbv"))
        return True
    from emu_x86.emu.isa import encoding     # the codec: loaded at the first other extension instruction
    insn = encoding.decode(code, rip)
    handler = HANDLERS.get(insn.mnemonic) if insn is not None else None
    if handler is None:
        # INT1, RDPMC, SYSRET: another exception than #UD at CPL3 (system.py).
        return execute_system_instruction(vcpu, code, rip)
    next_rip = (rip + insn.length) & MASK64
    handler(vcpu, insn, next_rip)
    vcpu.write_register("rip", next_rip)
    event = EVENT_COSTS.get(insn.mnemonic)
    vcpu.charge_instruction(event)
    return True


__all__ = ["HANDLERS", "execute_extension", "XFEATURE_MASK_XTILE"]
