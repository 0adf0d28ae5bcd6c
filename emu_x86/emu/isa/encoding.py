"""Encoder, decoder and disassembler for the extension instructions capstone 5 and keystone 0.9 lack.

AMX (LDTILECFG ... TDPBF16PS), INVLPGB/TLBSYNC, RDPID and SERIALIZE are
unknown to both libraries; the XSAVE family, XGETBV/XSETBV and INVPCID are
decoded here too because they reach the emulator through Unicorn's
invalid-opcode hook (DESIGN.md, "What Unicorn lacks").

One table, ``ROWS``, drives everything. Each row is the instruction's opcode
column as the SDM (Vol. 2) prints it -- ``"VEX.128.F2.0F38.W0 4B
!(11):rrr:100"``, ``"NP REX.W + 0F AE /4"`` -- plus its operand kinds in
Intel order. ``_row`` parses that text once into fields (VEX or legacy,
mandatory prefix / VEX.pp, opcode map, opcode byte, W, ModRM.mod/reg/rm
constraints); ``decode`` walks prefixes, VEX/REX, ModRM, SIB and
displacement once for all rows, ``encode`` builds the same fields back from
GNU-as operand text (AT&T or Intel), choosing the bytes GNU as 2.40 emits,
and ``format_att``/``format_intel`` print what ``objdump -d`` prints.

Where objdump 2.40 is more lenient, decode follows the SDM's opcode column
and returns None (the caller raises #UD): a 66/F2/F3 prefix on an "NP"
instruction (objdump: ``data16 xgetbv``, ``repz xsaves``), TILEZERO with
ModRM.rm != 000 and LDTILECFG/STTILECFG with ModRM.reg != 000 (objdump
ignores those fields). The other way round, TDPB* with a repeated tile
register decodes (objdump prints ``(bad)``): that #UD is the handler's check,
after the AMX #NM/#UD guards.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emu_x86.emu.isa.prefixes import (MAX_INSTRUCTION_BYTES, PREFIX_ADDRESS_SIZE, PREFIX_LOCK,  # noqa: F401
                                      PREFIX_NAMES, PREFIX_OPERAND_SIZE, SEGMENT_PREFIXES)

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1

GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
GPR32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
         "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d")
TILE_REGISTERS = 8

MANDATORY_PREFIXES = {0x66: "66", 0xF2: "F2", 0xF3: "F3"}
VEX3 = 0xC4                          # SDM Vol. 2 §2.3: three-byte VEX (C5 implies map 0F: no row here)
VEX_PP = ("NP", "66", "F3", "F2")    # VEX.pp: the implied mandatory prefix
OPCODE_MAPS = {"0F": 1, "0F38": 2, "0F3A": 3}   # escape bytes / VEX.mmmmm


# ---- operand values: what decode returns and encode reads ---------------------------------

@dataclass(frozen=True)
class TileReg:
    number: int                      # tmm0..tmm7


@dataclass(frozen=True)
class GPR:
    name: str                        # "rax", "r8", "eax", ...


@dataclass(frozen=True)
class Mem:
    """A ModRM memory operand. ``segment`` is "fs"/"gs" or None: in 64-bit mode
    CS/DS/ES/SS overrides are null prefixes (SDM Vol. 1 §3.4.2.1)."""
    base: str | None
    index: str | None
    scale: int
    disp: int                        # signed, as encoded (sign-extended disp8/disp32)
    rip_relative: bool
    segment: str | None
    address_size: int                # 64, or 32 with the 67 prefix


@dataclass(frozen=True)
class Decoded:
    mnemonic: str
    operands: tuple                  # Intel order, destination first
    length: int
    raw: bytes


class EncodingError(Exception):
    """Operand text that GNU as would reject for this instruction."""


# ---- the opcode table ---------------------------------------------------------------------

# Operand kinds, named by type and by the field that encodes them.
TMM_REG, TMM_RM, TMM_VVVV = "tmm:reg", "tmm:rm", "tmm:vvvv"
R64_REG, R64_RM = "r64:reg", "r64:rm"
MEM, M128, M512, SIBMEM = "mem", "m128", "m512", "sibmem"   # SIBMEM: ModRM.rm = 100, a SIB byte
MEMORY_KINDS = frozenset({MEM, M128, M512, SIBMEM})
REG_FIELD_KINDS = frozenset({TMM_REG, R64_REG})
RM_REGISTER_KINDS = frozenset({TMM_RM, R64_RM})
# Intel-syntax size keywords GNU as accepts per memory kind (it rejects every other one).
INTEL_SIZE_KEYWORDS = {M128: frozenset({"xmmword", "oword"})}


@dataclass(frozen=True)
class Row:
    mnemonic: str
    opcode: str                      # the SDM opcode column, verbatim
    operands: tuple[str, ...]        # operand kinds, Intel order
    vex: bool
    prefix: str                      # mandatory legacy prefix or VEX.pp: "NP", "66", "F3", "F2"
    opcode_map: str                  # "0F" or "0F38"
    opcode_byte: int
    w: int | None                    # required REX.W / VEX.W, None when ignored
    vex_l: int | None                # required VEX.L (VEX.128: 0)
    mod_register: bool               # ModRM.mod = 11b (register form) or !(11b) (memory form)
    reg: int | None                  # fixed ModRM.reg, None when an operand lives there
    rm: int | None                   # fixed ModRM.rm, None when an operand lives there


def _row(mnemonic: str, opcode: str, *operands: str) -> Row:
    """Parse one SDM opcode column (legacy ``[NP|66|F2|F3] [REX.W +] 0F [38] op modrm`` or
    ``VEX.L.pp.map.W op modrm``; modrm is ``/r``, ``/digit``, a whole byte, or ``mod:reg:rm``)."""
    tokens = [token for token in opcode.split() if token != "+"]
    if tokens[0].startswith("VEX."):
        _, length, pp, opcode_map, w_text = tokens[0].split(".")
        vex, prefix, w = True, pp, {"W0": 0, "W1": 1, "WIG": None}[w_text]
        vex_l = {"128": 0, "L0": 0, "LZ": 0, "LIG": None}[length]
        opcode_byte, modrm = int(tokens[1], 16), tokens[2]
    else:
        vex, vex_l, w = False, None, None
        prefix = tokens.pop(0) if tokens[0] in ("NP", "66", "F2", "F3") else "NP"
        if tokens[0] == "REX.W":
            w = 1
            tokens.pop(0)
        assert tokens[0] == "0F"
        opcode_map = "0F38" if tokens[1] == "38" else "0F"
        opcode_byte, modrm = int(tokens[-2], 16), tokens[-1]
    memory = [kind for kind in operands if kind in MEMORY_KINDS]
    if modrm.startswith("/"):
        mod_register = not memory
        reg = None if modrm == "/r" else int(modrm[1:])
        rm = None
    elif ":" in modrm:
        mod_text, reg_text, rm_text = modrm.split(":")
        mod_register = mod_text == "11"
        reg = None if reg_text == "rrr" else int(reg_text, 2)
        rm = None if rm_text == "bbb" else int(rm_text, 2)
    else:
        byte = int(modrm, 16)
        mod_register, reg, rm = byte >> 6 == 3, (byte >> 3) & 7, byte & 7
    row = Row(mnemonic, opcode, tuple(operands), vex, prefix, opcode_map, opcode_byte, w, vex_l,
              mod_register, reg, rm)
    # The table must be self-consistent: each ModRM field holds exactly what the operands say.
    assert (reg is None) == any(kind in REG_FIELD_KINDS for kind in operands), row
    assert mod_register == (not memory), row
    assert (rm is None) == any(kind in RM_REGISTER_KINDS or kind in (MEM, M128, M512) for kind in operands), row
    assert (SIBMEM in operands) <= (rm == 4), row
    return row


_DOT_PRODUCT = (TMM_REG, TMM_RM, TMM_VVVV)       # tmm1 (ModRM.reg), tmm2 (ModRM.rm), tmm3 (VEX.vvvv)

ROWS: tuple[Row, ...] = (
    # AMX, SDM Vol. 2 (LDTILECFG, STTILECFG, TILERELEASE, TILEZERO, TILELOADD[T1], TILESTORED,
    # TDPB[SU][SU]D, TDPBF16PS): all VEX.128 map 0F38, W0. The ModRM column is the SDM's.
    _row("ldtilecfg", "VEX.128.NP.0F38.W0 49 !(11):000:bbb", M512),
    _row("sttilecfg", "VEX.128.66.0F38.W0 49 !(11):000:bbb", M512),
    _row("tilerelease", "VEX.128.NP.0F38.W0 49 C0"),
    _row("tilezero", "VEX.128.F2.0F38.W0 49 11:rrr:000", TMM_REG),
    _row("tileloadd", "VEX.128.F2.0F38.W0 4B !(11):rrr:100", TMM_REG, SIBMEM),
    _row("tileloaddt1", "VEX.128.66.0F38.W0 4B !(11):rrr:100", TMM_REG, SIBMEM),
    _row("tilestored", "VEX.128.F3.0F38.W0 4B !(11):rrr:100", SIBMEM, TMM_REG),
    _row("tdpbssd", "VEX.128.F2.0F38.W0 5E 11:rrr:bbb", *_DOT_PRODUCT),
    _row("tdpbsud", "VEX.128.F3.0F38.W0 5E 11:rrr:bbb", *_DOT_PRODUCT),
    _row("tdpbusd", "VEX.128.66.0F38.W0 5E 11:rrr:bbb", *_DOT_PRODUCT),
    _row("tdpbuud", "VEX.128.NP.0F38.W0 5E 11:rrr:bbb", *_DOT_PRODUCT),
    _row("tdpbf16ps", "VEX.128.F3.0F38.W0 5C 11:rrr:bbb", *_DOT_PRODUCT),
    # System instructions with a whole ModRM byte: SDM Vol. 2D XGETBV, XSETBV; Vol. 2B
    # SERIALIZE; AMD APM Vol. 3 INVLPGB, TLBSYNC (listed without NP there; binutils and
    # this table treat a 66/F2/F3 prefix as another instruction).
    _row("xgetbv", "NP 0F 01 D0"),
    _row("xsetbv", "NP 0F 01 D1"),
    _row("serialize", "NP 0F 01 E8"),
    _row("invlpgb", "NP 0F 01 FE"),
    _row("tlbsync", "NP 0F 01 FF"),
    # SDM Vol. 2B RDPID: "F3 0F C7 /7  RDPID r64" (64-bit mode; REX.W ignored).
    _row("rdpid", "F3 0F C7 /7", R64_RM),
    # SDM Vol. 2A INVPCID: "66 0F 38 82 /r  INVPCID r64, m128" (64-bit mode).
    _row("invpcid", "66 0F 38 82 /r", R64_REG, M128),
    # SDM Vol. 2D XSAVE, XRSTOR, XSAVEOPT, XSAVEC, XSAVES, XRSTORS (+ their REX.W forms).
    _row("xsave", "NP 0F AE /4", MEM),
    _row("xsave64", "NP REX.W + 0F AE /4", MEM),
    _row("xrstor", "NP 0F AE /5", MEM),
    _row("xrstor64", "NP REX.W + 0F AE /5", MEM),
    _row("xsaveopt", "NP 0F AE /6", MEM),
    _row("xsaveopt64", "NP REX.W + 0F AE /6", MEM),
    _row("xsavec", "NP 0F C7 /4", MEM),
    _row("xsavec64", "NP REX.W + 0F C7 /4", MEM),
    _row("xsaves", "NP 0F C7 /5", MEM),
    _row("xsaves64", "NP REX.W + 0F C7 /5", MEM),
    _row("xrstors", "NP 0F C7 /3", MEM),
    _row("xrstors64", "NP REX.W + 0F C7 /3", MEM),
)

MNEMONICS: frozenset[str] = frozenset(row.mnemonic for row in ROWS)
_BY_MNEMONIC = {row.mnemonic: row for row in ROWS}
_BY_OPCODE: dict[tuple[bool, str, int], list[Row]] = {}
for _r in ROWS:
    _BY_OPCODE.setdefault((_r.vex, _r.opcode_map, _r.opcode_byte), []).append(_r)
for _rows in _BY_OPCODE.values():
    _rows.sort(key=lambda row: row.w is None)    # a REX.W row (xsave64) before its W-ignored twin
del _r, _rows


# ---- decoding -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """A decoded instruction plus what formatting needs beyond ``Decoded``."""
    row: Row
    operands: tuple
    length: int
    has_sib: bool
    mod: int                             # ModRM.mod: whether a zero displacement was encoded
    unused_prefixes: tuple[str, ...]     # objdump's names for prefixes the instruction ignores


class _Truncated(Exception):
    pass


def decode(code: bytes, address: int = 0) -> Decoded | None:
    """The instruction at the start of ``code`` if it is one of ``ROWS``, else None.

    ``address`` is where ``code`` sits; RIP-relative operands keep their
    displacement (see ``effective_address``). Never raises on any bytes.
    """
    try:
        layout = _decode_layout(bytes(code[:MAX_INSTRUCTION_BYTES + 1]))
    except (_Truncated, IndexError):
        return None
    if layout is None:
        return None
    return Decoded(layout.row.mnemonic, layout.operands, layout.length, bytes(code[:layout.length]))


def _decode_layout(code: bytes) -> _Layout | None:
    # Legacy prefixes and REX (SDM Vol. 2 §2.1.1, §2.2.1). A REX byte followed by
    # another prefix is ignored; of repeated prefixes the last one counts.
    i = 0
    legacy: list[tuple[int, int]] = []
    stale_rex: list[int] = []
    rex_at = None
    while True:
        byte = code[i]
        if byte in PREFIX_NAMES:
            if rex_at is not None:
                stale_rex.append(rex_at)
                rex_at = None
            legacy.append((i, byte))
        elif 0x40 <= byte <= 0x4F:
            if rex_at is not None:
                stale_rex.append(rex_at)
            rex_at = i
        else:
            break
        i += 1
        if i >= MAX_INSTRUCTION_BYTES:
            return None
    legacy_bytes = [byte for _, byte in legacy]
    if PREFIX_LOCK in legacy_bytes:
        return None                      # LOCK is #UD on every instruction here
    rex = code[rex_at] & 0xF if rex_at is not None else 0
    mandatory_at = None
    if code[i] == VEX3:
        # SDM Vol. 2 §2.3 (VEX): C4 [R X B mmmmm] [W vvvv L pp], with R, X, B and vvvv
        # stored inverted; a 66, F2, F3 or REX prefix before VEX is #UD.
        if rex_at is not None or stale_rex or any(byte in MANDATORY_PREFIXES for byte in legacy_bytes):
            return None
        byte1, byte2 = code[i + 1], code[i + 2]
        rex = (0 if byte1 & 0x80 else 4) | (0 if byte1 & 0x40 else 2) | (0 if byte1 & 0x20 else 1) \
            | (8 if byte2 & 0x80 else 0)
        opcode_map = {1: "0F", 2: "0F38", 3: "0F3A"}.get(byte1 & 0x1F)
        vvvv = (~byte2 >> 3) & 0xF
        vex_l = (byte2 >> 2) & 1
        prefix = VEX_PP[byte2 & 3]
        vex = True
        i += 3
    else:
        if code[i] != 0x0F:
            return None
        opcode_map = {0x38: "0F38", 0x3A: "0F3A"}.get(code[i + 1], "0F")
        i += 1 if opcode_map == "0F" else 2
        # The mandatory prefix is the last F2/F3, else 66 (a 66 beside F3 is just data16).
        repeats = [(at, byte) for at, byte in legacy if byte in (0xF2, 0xF3)]
        sizes = [(at, byte) for at, byte in legacy if byte == PREFIX_OPERAND_SIZE]
        chosen = repeats[-1] if repeats else sizes[-1] if sizes else None
        prefix = MANDATORY_PREFIXES[chosen[1]] if chosen else "NP"
        mandatory_at = chosen[0] if chosen else None
        vex, vvvv, vex_l = False, 0, 0
    opcode = code[i]
    i += 1
    for row in _BY_OPCODE.get((vex, opcode_map, opcode), ()):
        layout = _match(row, code, i, prefix, rex, vvvv, vex_l, legacy)
        if layout is not None:
            operands, length, has_sib, used_rex = layout
            if length > MAX_INSTRUCTION_BYTES:
                return None
            unused = _unused_prefixes(code, row, operands, legacy, mandatory_at, stale_rex,
                                      rex_at, used_rex)
            return _Layout(row, operands, length, has_sib, code[i] >> 6, unused)
    return None


def _match(row: Row, code: bytes, i: int, prefix: str, rex: int, vvvv: int, vex_l: int, legacy):
    """Operands, length, SIB presence and used REX bits if ``row`` matches, else None."""
    w = rex >> 3
    if row.prefix != prefix or (row.w is not None and row.w != w):
        return None
    if row.vex and ((row.vex_l is not None and row.vex_l != vex_l)
                    or (TMM_VVVV not in row.operands and vvvv != 0)):
        return None                      # VEX.L, and VEX.vvvv = 1111b unless it names an operand
    modrm = code[i]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    if (mod == 3) != row.mod_register or (row.reg is not None and reg != row.reg) \
            or (row.rm is not None and rm != row.rm):
        return None
    reg_full, rm_full = reg | (rex & 4) << 1, rm | (rex & 1) << 3
    address_size = 32 if any(byte == PREFIX_ADDRESS_SIZE for _, byte in legacy) else 64
    segments = [byte for _, byte in legacy if byte in (SEGMENT_PREFIXES["fs"], SEGMENT_PREFIXES["gs"])]
    segment = PREFIX_NAMES[segments[-1]] if segments else None
    length, has_sib = i + 1, False
    used_rex = 8 if row.w == 1 else 0
    operands = []
    for kind in row.operands:
        if kind in MEMORY_KINDS:
            memory, length, has_sib = _memory_operand(code, i, rex, address_size, segment)
            operands.append(memory)
            used_rex |= 1 | (2 if has_sib else 0)
        elif kind in REG_FIELD_KINDS:
            operands.append(_register(kind, reg_full))
            used_rex |= 4
        elif kind in RM_REGISTER_KINDS:
            operands.append(_register(kind, rm_full))
            used_rex |= 1
        else:                                   # TMM_VVVV
            operands.append(_register(kind, vvvv))
    if any(operand is None for operand in operands):
        return None                             # tmm8..tmm15 do not exist
    return tuple(operands), length, has_sib, used_rex


def _register(kind: str, number: int):
    if kind.startswith("tmm"):
        return TileReg(number) if number < TILE_REGISTERS else None
    return GPR(GPR64[number])


def _memory_operand(code: bytes, i: int, rex: int, address_size: int, segment):
    """ModRM at code[i] (mod != 11b) with its SIB and displacement (SDM Vol. 2 §2.1.5,
    Tables 2-2 and 2-3; §2.2.1.6 RIP-relative): (Mem, end offset, has SIB)."""
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    names = GPR64 if address_size == 64 else GPR32
    i += 1
    base = index = None
    scale, rip_relative, has_sib = 1, False, rm == 4
    disp_size = (0, 1, 4)[mod]
    if has_sib:
        sib = code[i]
        i += 1
        scale = 1 << (sib >> 6)
        index_number = (sib >> 3) & 7 | (rex & 2) << 2
        if index_number != 4:                   # 100b without REX.X: no index
            index = names[index_number]
        if sib & 7 == 5 and mod == 0:
            disp_size = 4                       # no base, disp32
        else:
            base = names[sib & 7 | (rex & 1) << 3]
    elif rm == 5 and mod == 0:
        rip_relative, disp_size = True, 4
    else:
        base = names[rm | (rex & 1) << 3]
    if i + disp_size > len(code):
        raise _Truncated()
    disp = int.from_bytes(code[i:i + disp_size], "little", signed=True)
    return Mem(base, index, scale, disp, rip_relative, segment, address_size), i + disp_size, has_sib


def _unused_prefixes(code, row, operands, legacy, mandatory_at, stale_rex, rex_at, used_rex):
    """objdump's names for the prefixes the instruction does not use, in byte order."""
    has_memory = any(isinstance(operand, Mem) for operand in operands)
    used = set()
    if mandatory_at is not None and row.prefix != "NP":
        used.add(mandatory_at)
    if has_memory:
        for wanted in ((SEGMENT_PREFIXES["fs"], SEGMENT_PREFIXES["gs"]), (PREFIX_ADDRESS_SIZE,)):
            matching = [at for at, byte in legacy if byte in wanted]
            if matching:
                used.add(matching[-1])
    names = {at: PREFIX_NAMES[byte] for at, byte in legacy if at not in used}
    names.update({at: _rex_name(code[at]) for at in stale_rex})
    if rex_at is not None and not row.vex:
        rex = code[rex_at] & 0xF
        if rex & used_rex != rex or not rex:    # objdump shows a REX with any bit left unused
            names[rex_at] = _rex_name(code[rex_at])
    return tuple(names[at] for at in sorted(names))


def _rex_name(byte: int) -> str:
    letters = "".join(letter for bit, letter in ((8, "W"), (4, "R"), (2, "X"), (1, "B")) if byte & bit)
    return "rex." + letters if letters else "rex"


# ---- operand semantics ----------------------------------------------------------------------

def _read_gpr(name: str, read_register: Callable[[str], int]) -> int:
    if name in GPR32:
        return read_register(GPR64[GPR32.index(name)]) & MASK32
    return read_register(name) & MASK64


def _segment_base(mem: Mem, read_register: Callable[[str], int]) -> int:
    return read_register(f"{mem.segment}_base") if mem.segment in ("fs", "gs") else 0


def effective_address(mem: Mem, read_register: Callable[[str], int], next_rip: int) -> int:
    """Linear address of ``mem``: base + index*scale + disp (+ next RIP when RIP-relative),
    wrapped to the address size, then + FS/GS base wrapped to 64 bits (SDM Vol. 1 §3.7.5,
    Vol. 2 §2.2.1.6). ``read_register`` takes "rax".."r15", "fs_base", "gs_base"."""
    mask = MASK32 if mem.address_size == 32 else MASK64
    offset = mem.disp + (next_rip if mem.rip_relative else 0)
    if mem.base:
        offset += _read_gpr(mem.base, read_register)
    if mem.index:
        offset += _read_gpr(mem.index, read_register) * mem.scale
    return ((offset & mask) + _segment_base(mem, read_register)) & MASK64


def sibmem_address(mem: Mem, read_register: Callable[[str], int], next_rip: int) -> tuple[int, int]:
    """TILELOADD/TILESTORED ``sibmem``: (address of row 0, stride in bytes).

    SDM Vol. 2B TILELOADD, Operation: start = base + displacement, stride =
    index << scale; without an index register the stride is 0.
    """
    start = Mem(mem.base, None, 1, mem.disp, mem.rip_relative, mem.segment, mem.address_size)
    mask = MASK32 if mem.address_size == 32 else MASK64
    stride = _read_gpr(mem.index, read_register) * mem.scale & mask if mem.index else 0
    return effective_address(start, read_register, next_rip), stride


# ---- formatting (objdump -d, AT&T and -M intel) ---------------------------------------------

def format_att(d: Decoded, address: int) -> str:
    """The instruction as ``objdump -d`` prints it (AT&T), for ``d`` at ``address``."""
    return _format(d, address, intel=False)


def format_intel(d: Decoded, address: int) -> str:
    """The instruction as ``objdump -d -M intel`` prints it."""
    return _format(d, address, intel=True)


def _format(d: Decoded, address: int, intel: bool) -> str:
    try:
        layout = _decode_layout(d.raw)
    except (_Truncated, IndexError):
        layout = None
    if layout is None or layout.length != d.length:
        raise ValueError(f"not an instruction this module decodes: {d.raw.hex()}")
    texts, comment = [], ""
    for operand in layout.operands:
        if isinstance(operand, TileReg):
            texts.append(("" if intel else "%") + f"tmm{operand.number}")
        elif isinstance(operand, GPR):
            texts.append(("" if intel else "%") + operand.name)
        else:
            texts.append(_format_memory(operand, layout.has_sib, layout.mod, intel))
            if operand.rip_relative:
                comment = f"        # 0x{(address + d.length + operand.disp) & MASK64:x}"
    if not intel:
        texts.reverse()
    head = " ".join(layout.unused_prefixes + (layout.row.mnemonic,))
    return f"{head:<6} {','.join(texts)}{comment}" if texts else head


def _hex(value: int, signed: bool = True) -> str:
    if signed and value < 0:
        return f"-0x{-value:x}"
    return f"0x{value & MASK64:x}"


def _format_memory(mem: Mem, has_sib: bool, mod: int, intel: bool) -> str:
    """objdump's spelling (binutils i386-dis.c OP_E_memory): %riz/%eiz for a SIB byte with
    no index where the SIB was not needed, ds: on Intel absolute addresses, and so on."""
    register = (lambda name: name) if intel else (lambda name: "%" + name)
    segment = (f"{mem.segment}:" if intel else f"%{mem.segment}:") if mem.segment else ""
    if mem.rip_relative:
        ip = "eip" if mem.address_size == 32 else "rip"
        if intel:
            return f"{segment}[{ip}+{_hex(mem.disp, signed=False)}]"
        return f"{segment}{_hex(mem.disp)}({register(ip)})"
    address32 = mem.address_size == 32
    scale_bits = mem.scale.bit_length() - 1
    need_index = has_sib and mem.base is None and mem.index is None and address32
    disp = mem.disp & MASK32 if need_index else mem.disp
    has_disp = mem.base is not None or need_index or (has_sib and (mem.index is not None or scale_bits))
    if not has_disp:                            # absolute disp32, sign-extended to 64 bits
        if intel:
            return (segment or "ds:") + _hex(disp, signed=False)
        return segment + _hex(disp, signed=False)
    base_low = _register_number(mem.base) & 7 if mem.base else 5
    show_index = has_sib and (scale_bits or need_index or mem.index is not None
                              or (mem.base is not None and base_low != 4))
    show_disp = mem.base is None or mod != 0
    index_name = mem.index or ("eiz" if address32 else "riz")
    if intel:
        inner = mem.base or ""
        if show_index:
            inner += ("+" if mem.base else "") + f"{index_name}*{mem.scale}"
        if show_disp:
            inner += _hex(disp) if disp < 0 else "+" + _hex(disp)
        return f"{segment}[{inner}]"
    inner = register(mem.base) if mem.base else ""
    if show_index:
        inner += f",{register(index_name)},{mem.scale}"
    return f"{segment}{_hex(disp) if show_disp else ''}({inner})"


def _register_number(name: str) -> int:
    return GPR64.index(name) if name in GPR64 else GPR32.index(name)


# ---- operand text (GNU as syntax, numbers and registers only) --------------------------------

@dataclass(frozen=True)
class _MemoryText:
    """A parsed memory operand: ``mem`` plus what only the encoder needs."""
    mem: Mem
    segment_prefix: str | None       # any written override, before GNU as drops a redundant one
    size_keyword: str | None         # Intel "xmmword ptr" and the like
    written_disp: int                # the 64-bit value before 32-bit truncation: it sizes the disp


_TOKEN = re.compile(r"\s*(?:(?P<number>0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)|(?P<name>%?[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>[-+*~()]))")


def _number(text: str) -> int:
    """GNU as integer syntax: 0x hex, 0b binary, leading-0 octal, decimal."""
    if text[:2] in ("0x", "0X", "0b", "0B"):
        return int(text, 0)
    if len(text) > 1 and text[0] == "0":
        try:
            return int(text, 8)
        except ValueError:
            raise EncodingError(f"bad number {text!r}") from None
    return int(text)


@dataclass(frozen=True)
class _Linear:
    """An address expression: constant + registers, each (name, scale, scale written)."""
    constant: int
    registers: tuple[tuple[str, int, bool], ...] = ()


class _Expression:
    """Recursive descent over + - * ~ ( ) for displacements and Intel ``[...]`` contents."""

    def __init__(self, text: str, registers_allowed: bool):
        self.tokens = []
        position = 0
        text = text.rstrip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match:
                raise EncodingError(f"bad expression {text!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            position = match.end()
        self.text, self.position, self.registers_allowed = text, 0, registers_allowed

    def parse(self) -> _Linear:
        value = self._sum()
        if self.position != len(self.tokens):
            raise EncodingError(f"bad expression {self.text!r}")
        return value

    def _peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else (None, None)

    def _sum(self) -> _Linear:
        value = self._product()
        while self._peek() in (("op", "+"), ("op", "-")):
            operator = self.tokens[self.position][1]
            self.position += 1
            right = self._product()
            if operator == "-":
                right = self._negate(right)
            value = _Linear(value.constant + right.constant, value.registers + right.registers)
        return value

    def _product(self) -> _Linear:
        value = self._unary()
        while self._peek() == ("op", "*"):
            self.position += 1
            right = self._unary()
            if value.registers and right.registers:
                raise EncodingError(f"bad expression {self.text!r}")
            scaled, factor = (value, right) if value.registers else (right, value)
            if scaled.registers:
                if len(scaled.registers) != 1 or scaled.constant:
                    raise EncodingError(f"bad scaled index in {self.text!r}")
                name, scale, _ = scaled.registers[0]
                value = _Linear(0, ((name, scale * factor.constant, True),))
            else:
                value = _Linear(value.constant * right.constant)
        return value

    def _negate(self, value: _Linear) -> _Linear:
        if value.registers:
            raise EncodingError(f"a register cannot be subtracted in {self.text!r}")
        return _Linear(-value.constant)

    def _unary(self) -> _Linear:
        kind, text = self._peek()
        self.position += 1
        if kind == "op" and text in "+-~":
            value = self._unary()
            if text == "-":
                return self._negate(value)
            if text == "~":
                if value.registers:
                    raise EncodingError(f"a register cannot be complemented in {self.text!r}")
                return _Linear(~value.constant)
            return value
        if kind == "op" and text == "(":
            value = self._sum()
            if self._peek() != ("op", ")"):
                raise EncodingError(f"unbalanced parentheses in {self.text!r}")
            self.position += 1
            return value
        if kind == "number":
            return _Linear(_number(text))
        if kind == "name" and self.registers_allowed and text.lower() in _ADDRESS_REGISTERS:
            return _Linear(0, ((text.lower(), 1, False),))
        if kind == "name":
            raise EncodingError(f"unexpected name {text!r} (symbols must be resolved first)")
        raise EncodingError(f"bad expression {self.text!r}")


_ADDRESS_REGISTERS = frozenset(GPR64 + GPR32 + ("rip", "eip"))
_SIZE_KEYWORD = re.compile(r"(?i)(byte|word|dword|fword|qword|tbyte|oword|xmmword|ymmword|zmmword|tmmword)"
                           r"\s+ptr\b\s*")
_SEGMENT_ATT = re.compile(r"(?i)%(es|cs|ss|ds|fs|gs)\s*:\s*")
_SEGMENT_INTEL = re.compile(r"(?i)(es|cs|ss|ds|fs|gs)\s*:\s*")


def _evaluate(text: str) -> int:
    return _Expression(text, registers_allowed=False).parse().constant


def _split_operands(text: str) -> list[str]:
    """Top-level comma split (commas inside (...) or [...] stay)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    parts = [part.strip() for part in parts]
    if parts == [""]:
        return []
    if any(not part for part in parts):
        raise EncodingError(f"empty operand in {text!r}")
    return parts


def _register_operand(name: str):
    name = name.lower()
    if name.startswith("tmm") and name[3:].isdigit() and int(name[3:]) < TILE_REGISTERS \
            and name[3:] == str(int(name[3:])):
        return TileReg(int(name[3:]))
    if name in GPR64 or name in GPR32:
        return GPR(name)
    return None


def _parse_att(text: str):
    if text.startswith("$"):
        raise EncodingError(f"immediate {text!r} where a register or memory operand is expected")
    if re.fullmatch(r"%\w+", text):
        register = _register_operand(text[1:])
        if register is None:
            raise EncodingError(f"bad register name {text!r}")
        return register
    segment = None
    match = _SEGMENT_ATT.match(text)
    if match:
        segment, text = match.group(1).lower(), text[match.end():]
    base = index = None
    scale = 1
    displacement = text
    if text.endswith(")"):
        depth = 0
        for position in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[position], 0)
            if depth == 0:
                break
        inner = text[position + 1:-1].strip()
        if depth == 0 and inner.startswith(("%", ",")):
            displacement = text[:position]
            parts = [part.strip() for part in inner.split(",")]
            if len(parts) > 3 or any(not part for part in parts[1:]):
                raise EncodingError(f"bad base/index expression {text!r}")
            if parts[0]:
                base = _att_address_register(parts[0], text)
            if len(parts) > 1:
                index = _att_address_register(parts[1], text)
            if len(parts) > 2:
                scale = _evaluate(parts[2])
    if not displacement.strip() and base is None and index is None:
        raise EncodingError(f"bad memory operand {text!r}")
    disp = _evaluate(displacement) if displacement.strip() else 0
    return _memory_text(base, index, scale, disp, segment, None, text)


def _att_address_register(text: str, operand: str) -> str:
    name = text[1:].lower() if text.startswith("%") else ""
    if name not in _ADDRESS_REGISTERS:
        raise EncodingError(f"bad register {text!r} in {operand!r}")
    return name


def _parse_intel(text: str):
    size = None
    match = _SIZE_KEYWORD.match(text)
    if match:
        size, text = match.group(1).lower(), text[match.end():]
    elif re.fullmatch(r"\w+", text) and _register_operand(text) is not None:
        return _register_operand(text)
    segment = None
    match = _SEGMENT_INTEL.match(text)
    if match:
        segment, text = match.group(1).lower(), text[match.end():]
    if "[" not in text and segment is None:
        raise EncodingError(f"{text!r} is not a register or a memory operand ([...])")
    # "disp[base+index*scale]", "[a][b]" and "[a]+disp" all mean the sum of the pieces.
    pieces, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            if depth:
                raise EncodingError(f"nested brackets in {text!r}")
            pieces.append(current)
            current, depth = "", 1
        elif char == "]":
            if not depth:
                raise EncodingError(f"unbalanced brackets in {text!r}")
            pieces.append(current)
            current, depth = "", 0
        else:
            current += char
    if depth:
        raise EncodingError(f"unbalanced brackets in {text!r}")
    pieces.append(current)
    expression = "+".join(f"({piece})" if piece.strip().startswith("-") else piece
                          for piece in pieces if piece.strip())
    if not expression:
        raise EncodingError(f"empty memory operand {text!r}")
    linear = _Expression(expression, registers_allowed=True).parse()
    # GNU as: a written scale makes the index; otherwise the first register is the base.
    scaled = [(name, scale) for name, scale, written in linear.registers if written]
    plain = [name for name, _, written in linear.registers if not written]
    if len(scaled) > 1 or len(plain) + len(scaled) > 2:
        raise EncodingError(f"{text!r} is not a valid base/index expression")
    if scaled:
        base, (index, scale) = (plain[0] if plain else None), scaled[0]
    else:
        base, index, scale = (plain + [None])[0], (plain + [None, None])[1], 1
        if index in ("rsp", "esp"):
            base, index = index, base           # [rax+rsp]: rsp can only be the base
    return _memory_text(base, index, scale, linear.constant, segment, size, text)


def _memory_text(base, index, scale: int, disp: int, segment, size, text: str) -> _MemoryText:
    """Validate a base/index/scale/disp combination the way GNU as does."""
    if scale not in (1, 2, 4, 8):
        raise EncodingError(f"expecting scale factor of 1, 2, 4, or 8 in {text!r}")
    rip_relative = base in ("rip", "eip")
    if index in ("rsp", "esp", "rip", "eip") or (rip_relative and index):
        raise EncodingError(f"{text!r} is not a valid base/index expression")
    widths = {32 if name in GPR32 or name == "eip" else 64 for name in (base, index) if name}
    if len(widths) > 1:
        raise EncodingError(f"{text!r} mixes 32- and 64-bit address registers")
    address_size = widths.pop() if widths else 64
    # GNU as reads the displacement as a 64-bit value (0xffffffffffffffff is -1). With 32-bit
    # addressing a value that fits in 32 bits is sign-extended from bit 31, a wider one is
    # shortened but keeps a disp32; otherwise it must fit in a signed disp32.
    if not -(1 << 63) <= disp <= MASK64:
        raise EncodingError(f"invalid displacement {disp:#x} in {text!r}")
    disp = written_disp = (disp & MASK64) - ((disp & (1 << 63)) << 1)
    if address_size == 32:
        disp = (disp & MASK32) - ((disp & 0x80000000) << 1)
        if -0x80000000 <= written_disp <= MASK32:
            written_disp = disp
    elif not -0x80000000 <= disp <= 0x7FFFFFFF:
        raise EncodingError(f"{disp:#x} out of range of signed 32bit displacement in {text!r}")
    mem = Mem(None if rip_relative else base, index, scale, disp, rip_relative,
              segment if segment in ("fs", "gs") else None, address_size)
    return _MemoryText(mem, segment, size, written_disp)


# ---- encoding ---------------------------------------------------------------------------------

def encode(mnemonic: str, operands: str, syntax: str = "att") -> bytes:
    """The bytes GNU as 2.40 emits for ``mnemonic operands`` (operands after symbol
    resolution: registers and numbers). Raises EncodingError where as reports an error."""
    row = _BY_MNEMONIC.get(mnemonic.strip().lower())
    if row is None:
        raise EncodingError(f"unknown instruction {mnemonic!r}")
    if syntax not in ("att", "intel"):
        raise EncodingError(f"unknown syntax {syntax!r}")
    parse = _parse_att if syntax == "att" else _parse_intel
    values = [parse(text) for text in _split_operands(operands)]
    if syntax == "att":
        values.reverse()
    if len(values) != len(row.operands):
        raise EncodingError(f"{row.mnemonic} takes {len(row.operands)} operand(s), got {len(values)}")
    reg, rm, vvvv, memory = row.reg or 0, row.rm or 0, 0, None
    for kind, value in zip(row.operands, values):
        if kind in MEMORY_KINDS:
            if not isinstance(value, _MemoryText):
                raise EncodingError(f"{row.mnemonic}: operand {kind} must be memory")
            if value.size_keyword and value.size_keyword not in INTEL_SIZE_KEYWORDS.get(kind, ()):
                raise EncodingError(f"operand size mismatch for {row.mnemonic} ({value.size_keyword} ptr)")
            if kind == SIBMEM and value.mem.rip_relative:
                raise EncodingError(f"{row.mnemonic}: RIP-relative addressing cannot be used here (sibmem)")
            memory = value
            continue
        expected = TileReg if kind.startswith("tmm") else GPR
        if not isinstance(value, expected) or (expected is GPR and value.name not in GPR64):
            raise EncodingError(f"operand size mismatch for {row.mnemonic}: {kind.split(':')[0]} expected")
        number = value.number if expected is TileReg else GPR64.index(value.name)
        if kind in REG_FIELD_KINDS:
            reg = number
        elif kind in RM_REGISTER_KINDS:
            rm = number
        else:
            vvvv = number
    tiles = [value.number for value in values if isinstance(value, TileReg)]
    if row.operands == _DOT_PRODUCT and len(set(tiles)) != len(tiles):
        raise EncodingError(f"all tmm registers must be distinct for {row.mnemonic}")  # SDM: #UD
    return _assemble(row, reg, rm, vvvv, memory)


def _assemble(row: Row, reg: int, rm: int, vvvv: int, memory: _MemoryText | None) -> bytes:
    """Prefixes (GNU as order: segment, 67, mandatory 66/F3, REX | VEX), opcode, ModRM, SIB, disp."""
    out = bytearray()
    rex_x = rex_b = 0
    if memory is not None:
        modrm_sib_disp, rex_x, rex_b = _memory_bytes(memory.mem, reg, row.rm == 4, memory.written_disp)
        segment = memory.segment_prefix
        base = memory.mem.base
        default = "ss" if base in ("rsp", "rbp", "esp", "ebp") else "ds"
        if segment and segment != default:       # GNU as drops an override naming the default
            out.append(SEGMENT_PREFIXES[segment])
        if memory.mem.address_size == 32:
            out.append(PREFIX_ADDRESS_SIZE)
    else:
        modrm_sib_disp = bytes([0xC0 | (reg & 7) << 3 | (rm & 7)])
        rex_b = rm >> 3
    rex_r = reg >> 3
    if row.vex:
        pp = VEX_PP.index(row.prefix)
        out += bytes([VEX3, (rex_r ^ 1) << 7 | (rex_x ^ 1) << 6 | (rex_b ^ 1) << 5 | OPCODE_MAPS[row.opcode_map],
                      (row.w or 0) << 7 | (~vvvv & 0xF) << 3 | (row.vex_l or 0) << 2 | pp])
    else:
        if row.prefix != "NP":
            out.append(int(row.prefix, 16))
        rex = (row.w or 0) << 3 | rex_r << 2 | rex_x << 1 | rex_b
        if rex:
            out.append(0x40 | rex)
        out += b"\x0f" + (b"\x38" if row.opcode_map == "0F38" else b"")
    out.append(row.opcode_byte)
    return bytes(out + modrm_sib_disp)


def _memory_bytes(mem: Mem, reg: int, sib_required: bool, written_disp: int) -> tuple[bytes, int, int]:
    """ModRM, SIB and displacement as GNU as picks them (the shortest displacement that holds
    the value as written; a SIB only when needed or for sibmem): (bytes, REX.X, REX.B).
    SDM Vol. 2 §2.1.5, Tables 2-2 and 2-3."""
    reg_bits = (reg & 7) << 3
    if mem.rip_relative:
        return bytes([reg_bits | 0b101]) + mem.disp.to_bytes(4, "little", signed=True), 0, 0
    base = _register_number(mem.base) if mem.base else None
    index = _register_number(mem.index) if mem.index else None
    scale_bits = {1: 0, 2: 1, 4: 2, 8: 3}[mem.scale]
    index_bits = (index & 7 if index is not None else 0b100) << 3
    rex_x = index >> 3 if index is not None else 0
    if base is None:                            # SIB base 101b with mod 00: disp32, no base
        return bytes([reg_bits | 0b100, scale_bits << 6 | index_bits | 0b101]) \
            + mem.disp.to_bytes(4, "little", signed=True), rex_x, 0
    if written_disp == 0 and base & 7 != 0b101:
        mod, disp = 0, b""
    elif -0x80 <= written_disp <= 0x7F:
        mod, disp = 1, mem.disp.to_bytes(1, "little", signed=True)
    else:
        mod, disp = 2, mem.disp.to_bytes(4, "little", signed=True)
    if index is None and base & 7 != 0b100 and not sib_required:
        return bytes([mod << 6 | reg_bits | base & 7]) + disp, 0, base >> 3
    return bytes([mod << 6 | reg_bits | 0b100, scale_bits << 6 | index_bits | base & 7]) + disp, \
        rex_x, base >> 3
