"""Decoding and encoding the extension instructions the machine executes itself (SDM Vol. 2, ch. 2-3).

Capstone 5 knows none of AMX, INVLPGB, TLBSYNC, RDPID or SERIALIZE, and the
XSAVE family has to be decoded here anyway because it reaches the emulator
through Unicorn's invalid-opcode hook. One table, ``ROWS``, lists each form:
opcode map, mandatory prefix (VEX.pp or legacy), opcode byte, ModRM
constraints and operand kinds; ``decode`` walks prefixes, VEX/REX, ModRM, SIB
and displacement once for all of them, and ``encode`` builds the same bytes
from GNU-as operand text for the project's assembler.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Callable

GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
GPR32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
         "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d")
SEGMENT_PREFIXES = {0x64: "fs", 0x65: "gs", 0x2E: None, 0x36: None, 0x3E: None, 0x26: None}


@dataclass(frozen=True)
class TileReg:
    number: int


@dataclass(frozen=True)
class GPR:
    name: str


@dataclass(frozen=True)
class Mem:
    base: str | None
    index: str | None
    scale: int
    disp: int
    rip_relative: bool
    segment: str | None
    address_size: int


@dataclass(frozen=True)
class Decoded:
    mnemonic: str
    operands: tuple
    length: int
    raw: bytes


# Operand kinds in Intel order (destination first):
#   "m"   ModRM memory operand      "tr"  tile in ModRM.reg     "tm"  tile in ModRM.rm (register form)
#   "tv"  tile in VEX.vvvv          "gm"  64-bit GPR in ModRM.rm (register form)
@dataclass(frozen=True)
class Row:
    mnemonic: str
    vex: bool
    opcode_map: int          # 1: 0F, 2: 0F38
    prefix: int              # VEX.pp or legacy mandatory prefix: 0 none, 1 66, 2 F3, 3 F2
    opcode: int
    reg: int | None          # required ModRM.reg (/digit), None if it names an operand
    modrm_form: str          # "mem", "reg", "none" (no ModRM), or "fixed:XX" (a full ModRM byte)
    operands: tuple
    rex_w: bool | None = None   # None: W ignored; True/False: must match (xsave vs xsave64)


ROWS = (
    # AMX (Vol. 2: LDTILECFG ... TDPBF16PS), all VEX.128.0F38.W0.
    Row("ldtilecfg", True, 2, 0, 0x49, 0, "mem", ("m",)),
    Row("sttilecfg", True, 2, 1, 0x49, 0, "mem", ("m",)),
    Row("tilerelease", True, 2, 0, 0x49, None, "fixed:c0", ()),
    Row("tilezero", True, 2, 3, 0x49, None, "reg0", ("tr",)),
    Row("tileloadd", True, 2, 3, 0x4B, None, "sib", ("tr", "m")),
    Row("tileloaddt1", True, 2, 1, 0x4B, None, "sib", ("tr", "m")),
    Row("tilestored", True, 2, 2, 0x4B, None, "sib", ("m", "tr")),
    Row("tdpbssd", True, 2, 3, 0x5E, None, "reg", ("tr", "tm", "tv")),
    Row("tdpbsud", True, 2, 2, 0x5E, None, "reg", ("tr", "tm", "tv")),
    Row("tdpbusd", True, 2, 1, 0x5E, None, "reg", ("tr", "tm", "tv")),
    Row("tdpbuud", True, 2, 0, 0x5E, None, "reg", ("tr", "tm", "tv")),
    Row("tdpbf16ps", True, 2, 2, 0x5C, None, "reg", ("tr", "tm", "tv")),
    # System instructions, 0F 01 with a fixed ModRM byte.
    Row("xgetbv", False, 1, 0, 0x01, None, "fixed:d0", ()),
    Row("xsetbv", False, 1, 0, 0x01, None, "fixed:d1", ()),
    Row("serialize", False, 1, 0, 0x01, None, "fixed:e8", ()),
    Row("invlpgb", False, 1, 0, 0x01, None, "fixed:fe", ()),
    Row("tlbsync", False, 1, 0, 0x01, None, "fixed:ff", ()),
    Row("rdpid", False, 1, 2, 0xC7, 7, "reg", ("gm",)),
    Row("invpcid", False, 2, 1, 0x82, None, "mem", ("gr", "m")),
    # XSAVE family (Vol. 2: XSAVE, XRSTOR, XSAVEOPT, XSAVEC, XSAVES, XRSTORS).
    Row("xsave", False, 1, 0, 0xAE, 4, "mem", ("m",), rex_w=False),
    Row("xsave64", False, 1, 0, 0xAE, 4, "mem", ("m",), rex_w=True),
    Row("xrstor", False, 1, 0, 0xAE, 5, "mem", ("m",), rex_w=False),
    Row("xrstor64", False, 1, 0, 0xAE, 5, "mem", ("m",), rex_w=True),
    Row("xsaveopt", False, 1, 0, 0xAE, 6, "mem", ("m",), rex_w=False),
    Row("xsaveopt64", False, 1, 0, 0xAE, 6, "mem", ("m",), rex_w=True),
    Row("xsavec", False, 1, 0, 0xC7, 4, "mem", ("m",), rex_w=False),
    Row("xsavec64", False, 1, 0, 0xC7, 4, "mem", ("m",), rex_w=True),
    Row("xsaves", False, 1, 0, 0xC7, 5, "mem", ("m",), rex_w=False),
    Row("xsaves64", False, 1, 0, 0xC7, 5, "mem", ("m",), rex_w=True),
    Row("xrstors", False, 1, 0, 0xC7, 3, "mem", ("m",), rex_w=False),
    Row("xrstors64", False, 1, 0, 0xC7, 3, "mem", ("m",), rex_w=True),
)
MNEMONICS = frozenset(row.mnemonic for row in ROWS)

_LEGACY_PREFIX_TO_PP = {0x66: 1, 0xF3: 2, 0xF2: 3}


class _Truncated(Exception):
    pass


def decode(code: bytes, address: int) -> Decoded | None:
    """The extension instruction at the start of ``code``, or None (never raises)."""
    try:
        return _decode(code, address)
    except (_Truncated, IndexError):
        return None


def _decode(code: bytes, address: int) -> Decoded | None:
    i = 0
    segment = None
    address_size = 64
    mandatory = 0
    rex = 0
    while code[i] in (0x66, 0xF2, 0xF3, 0x67, 0x64, 0x65, 0x2E, 0x36, 0x3E, 0x26, 0xF0):
        byte = code[i]
        if byte in _LEGACY_PREFIX_TO_PP:
            mandatory = _LEGACY_PREFIX_TO_PP[byte]
        elif byte == 0x67:
            address_size = 32
        elif byte in SEGMENT_PREFIXES:
            segment = SEGMENT_PREFIXES[byte] or segment
        i += 1
    vex = False
    vvvv = 0
    if code[i] == 0xC4:
        # Three-byte VEX: R X B mmmmm | W vvvv L pp (R, X, B, vvvv stored inverted).
        if mandatory or rex:
            return None       # a legacy 66/F2/F3 before VEX is #UD
        byte1, byte2 = code[i + 1], code[i + 2]
        rex = (0 if byte1 & 0x80 else 4) | (0 if byte1 & 0x40 else 2) | (0 if byte1 & 0x20 else 1) \
            | (8 if byte2 & 0x80 else 0)
        opcode_map = byte1 & 0x1F
        vvvv = (~byte2 >> 3) & 0xF
        if byte2 & 0x04:       # VEX.L must be 0 for every row here
            return None
        mandatory = byte2 & 3
        vex = True
        i += 3
    else:
        if 0x40 <= code[i] <= 0x4F:
            rex = code[i] & 0xF
            i += 1
        if code[i] != 0x0F:
            return None
        i += 1
        if code[i] == 0x38:
            opcode_map = 2
            i += 1
        else:
            opcode_map = 1
    opcode = code[i]
    i += 1
    rex_w = bool(rex & 8)
    candidates = [row for row in ROWS if row.vex == vex and row.opcode_map == opcode_map
                  and row.opcode == opcode and row.prefix == mandatory]
    if not candidates:
        return None
    modrm = code[i]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    for row in candidates:
        if row.rex_w is not None and row.rex_w != rex_w:
            continue
        if vex and (rex_w or (vvvv and "tv" not in row.operands)):
            continue                          # W0, and vvvv = 1111b unless it names a tile
        form = row.modrm_form
        if form.startswith("fixed:"):
            if modrm != int(form[6:], 16):
                continue
            length = i + 1
            return Decoded(row.mnemonic, (), length, bytes(code[:length]))
        if row.reg is not None and reg != row.reg:
            continue
        if form in ("reg", "reg0") and mod != 3:
            continue
        if form == "reg0" and rm != 0:
            continue
        if form in ("mem", "sib") and mod == 3:
            continue
        if form == "sib" and rm != 4:
            continue                          # TILELOADD/TILESTORED need a SIB byte (sibmem)
        memory, length = (None, i + 1)
        if form in ("mem", "sib"):
            memory, length = _memory_operand(code, i, rex, segment, address_size)
        reg_full = reg | (8 if rex & 4 else 0)
        rm_full = rm | (8 if rex & 1 else 0)
        operands = []
        for kind in row.operands:
            if kind == "m":
                operands.append(memory)
            elif kind == "tr":
                if reg_full > 7:
                    return None
                operands.append(TileReg(reg_full))
            elif kind == "tm":
                if rm_full > 7:
                    return None
                operands.append(TileReg(rm_full))
            elif kind == "tv":
                if vvvv > 7:
                    return None
                operands.append(TileReg(vvvv))
            elif kind == "gm":
                operands.append(GPR(GPR64[rm_full]))
            elif kind == "gr":
                operands.append(GPR(GPR64[reg_full]))
        return Decoded(row.mnemonic, tuple(operands), length, bytes(code[:length]))
    return None


def _memory_operand(code: bytes, i: int, rex: int, segment, address_size: int) -> tuple[Mem, int]:
    """ModRM at code[i] with mod != 3: the memory operand and the instruction length."""
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    names = GPR64 if address_size == 64 else GPR32
    i += 1
    base = index = None
    scale = 1
    rip_relative = False
    if rm == 4:
        sib = code[i]
        i += 1
        scale = 1 << (sib >> 6)
        index_number = ((sib >> 3) & 7) | (8 if rex & 2 else 0)
        base_number = (sib & 7) | (8 if rex & 1 else 0)
        if index_number != 4:                 # index 100b without REX.X: no index
            index = names[index_number]
        if (sib & 7) == 5 and mod == 0:
            base = None                       # disp32 with no base
            disp_size = 4
        else:
            base = names[base_number]
            disp_size = {0: 0, 1: 1, 2: 4}[mod]
    elif rm == 5 and mod == 0:
        rip_relative = True
        disp_size = 4
    else:
        base = names[rm | (8 if rex & 1 else 0)]
        disp_size = {0: 0, 1: 1, 2: 4}[mod]
    if i + disp_size > len(code):
        raise _Truncated()
    disp = int.from_bytes(code[i:i + disp_size], "little", signed=True) if disp_size else 0
    i += disp_size
    return Mem(base, index, scale, disp, rip_relative, segment, address_size), i


def effective_address(mem: Mem, read_register: Callable[[str], int], next_rip: int) -> int:
    """The linear address of ``mem`` with the current registers (segment bases included)."""
    def value(name: str) -> int:
        if name in GPR32:
            return read_register(GPR64[GPR32.index(name)]) & 0xFFFFFFFF
        return read_register(name)
    address = mem.disp
    if mem.rip_relative:
        address += next_rip
    if mem.base:
        address += value(mem.base)
    if mem.index:
        address += value(mem.index) * mem.scale
    if mem.address_size == 32:
        address &= 0xFFFFFFFF
    if mem.segment == "fs":
        address += read_register("fs_base")
    elif mem.segment == "gs":
        address += read_register("gs_base")
    return address & ((1 << 64) - 1)


# ---- encoding (the assembler's pre-pass for mnemonics keystone does not know) ----------

class EncodingError(Exception):
    pass


_MEM_ATT = re.compile(r"^(?:%(?P<seg>[fg]s):)?(?P<disp>[^(]*)\((?P<base>%\w+)?(?:,(?P<index>%\w+)?(?:,(?P<scale>\w+))?)?\)$")
_SIZE_WORDS = re.compile(r"^(?:byte|word|dword|qword|xmmword|zmmword|tmmword)?\s*(?:ptr\s*)?", re.IGNORECASE)


def _parse_number(text: str) -> int:
    text = text.replace(" ", "")
    if not text:
        return 0
    try:
        return int(text, 0)
    except ValueError:
        raise EncodingError(f"bad displacement {text!r}") from None


def _parse_register(text: str):
    name = text.strip().lstrip("%").lower()
    if name.startswith("tmm") and name[3:].isdigit() and int(name[3:]) < 8:
        return TileReg(int(name[3:]))
    if name in GPR64 or name in GPR32:
        return GPR(name)
    return None


def _parse_memory(text: str, syntax: str) -> Mem:
    text = text.strip()
    if syntax == "att":
        match = _MEM_ATT.match(text.replace(" ", ""))
        if not match:
            raise EncodingError(f"bad memory operand {text!r}")
        base = match.group("base")
        index = match.group("index")
        base_name = base.lstrip("%").lower() if base else None
        index_name = index.lstrip("%").lower() if index else None
        scale = int(match.group("scale") or "1", 0)
        disp = _parse_number(match.group("disp"))
        segment = match.group("seg")
    else:
        segment = None
        text = _SIZE_WORDS.sub("", text).strip()
        seg_match = re.match(r"^([fg]s):\s*(.*)$", text, re.IGNORECASE)
        if seg_match:
            segment, text = seg_match.group(1).lower(), seg_match.group(2).strip()
        if not (text.startswith("[") and text.endswith("]")):
            raise EncodingError(f"bad memory operand {text!r}")
        inner = text[1:-1].replace(" ", "")
        seg_match = re.match(r"^([fg]s):(.*)$", inner, re.IGNORECASE)
        if seg_match:
            segment, inner = seg_match.group(1).lower(), seg_match.group(2)
        base_name = index_name = None
        scale, disp = 1, 0
        for sign, term in re.findall(r"([+-]?)([^+-]+)", inner):
            term_lower = term.lower()
            if "*" in term:
                register, factor = term_lower.split("*")
                if register.isdigit():
                    register, factor = factor, register
                index_name, scale = register, int(factor, 0)
            elif term_lower in GPR64 or term_lower in GPR32 or term_lower == "rip":
                if base_name is None:
                    base_name = term_lower
                else:
                    index_name = term_lower
            else:
                disp += -_parse_number(term) if sign == "-" else _parse_number(term)
    if scale not in (1, 2, 4, 8):
        raise EncodingError(f"bad scale {scale}")
    rip_relative = base_name == "rip"
    if rip_relative:
        base_name = None
    address_size = 32 if (base_name in GPR32 or index_name in GPR32) else 64
    return Mem(base_name, index_name, scale, disp, rip_relative, segment, address_size)


def parse_operands(operands: str, syntax: str) -> list:
    parts = [p.strip() for p in re.split(r",(?![^(\[]*[)\]])", operands) if p.strip()] if operands.strip() else []
    parsed = []
    for part in parts:
        register = _parse_register(part)
        parsed.append(register if register is not None else _parse_memory(part, syntax))
    return list(reversed(parsed)) if syntax == "att" else parsed


def _register_number(name: str) -> int:
    return GPR64.index(name) if name in GPR64 else GPR32.index(name)


def _encode_memory(mem: Mem, reg_field: int, force_sib: bool) -> tuple[bytes, int, int]:
    """ModRM (+SIB, +disp) for ``mem`` with ModRM.reg = reg_field; returns (bytes, rex_x, rex_b)."""
    if mem.rip_relative:
        return bytes([(reg_field & 7) << 3 | 5]) + struct.pack("<i", mem.disp), 0, 0
    base = _register_number(mem.base) if mem.base else None
    index = _register_number(mem.index) if mem.index else None
    if index is not None and index == 4:
        raise EncodingError("rsp cannot be an index register")
    disp = mem.disp
    if base is None:
        mod, disp_bytes = 0, struct.pack("<i", disp)
    elif disp == 0 and base & 7 != 5:
        mod, disp_bytes = 0, b""
    elif -128 <= disp <= 127:
        mod, disp_bytes = 1, struct.pack("<b", disp)
    else:
        mod, disp_bytes = 2, struct.pack("<i", disp)
    need_sib = force_sib or index is not None or base is None or (base & 7) == 4
    rex_x = (index >> 3) if index is not None else 0
    rex_b = (base >> 3) if base is not None else 0
    if not need_sib:
        return bytes([mod << 6 | (reg_field & 7) << 3 | (base & 7)]) + disp_bytes, rex_x, rex_b
    scale_bits = {1: 0, 2: 1, 4: 2, 8: 3}[mem.scale]
    sib = scale_bits << 6 | ((index & 7) if index is not None else 4) << 3 | ((base & 7) if base is not None else 5)
    return bytes([mod << 6 | (reg_field & 7) << 3 | 4, sib]) + disp_bytes, rex_x, rex_b


def encode(mnemonic: str, operands: str, syntax: str = "att") -> bytes:
    """The bytes of one extension instruction (the same forms GNU as 2.40 emits)."""
    mnemonic = mnemonic.lower()
    rows = [row for row in ROWS if row.mnemonic == mnemonic]
    if not rows:
        raise EncodingError(f"unknown instruction {mnemonic}")
    row = rows[0]
    values = parse_operands(operands, syntax)
    if len(values) != len(row.operands):
        raise EncodingError(f"{mnemonic} takes {len(row.operands)} operand(s)")
    reg_field = row.reg or 0
    rm_register = None
    vvvv = 0
    memory = None
    for kind, value in zip(row.operands, values):
        if kind == "m":
            if not isinstance(value, Mem):
                raise EncodingError(f"{mnemonic}: expected a memory operand")
            memory = value
        elif kind in ("tr", "tm", "tv"):
            if not isinstance(value, TileReg):
                raise EncodingError(f"{mnemonic}: expected a tile register")
            if kind == "tr":
                reg_field = value.number
            elif kind == "tm":
                rm_register = value.number
            else:
                vvvv = value.number
        elif kind in ("gm", "gr"):
            if not isinstance(value, GPR) or value.name not in GPR64:
                raise EncodingError(f"{mnemonic}: expected a 64-bit register")
            if kind == "gm":
                rm_register = GPR64.index(value.name)
            else:
                reg_field = GPR64.index(value.name)
    form = row.modrm_form
    rex_x = rex_b = 0
    if form.startswith("fixed:"):
        modrm = bytes([int(form[6:], 16)])
    elif form == "reg0":
        modrm = bytes([0xC0 | (reg_field & 7) << 3])
    elif form == "reg":
        modrm = bytes([0xC0 | (reg_field & 7) << 3 | (rm_register & 7)])
        rex_b = rm_register >> 3
    else:
        if memory is None:
            raise EncodingError(f"{mnemonic}: expected a memory operand")
        if form == "sib" and (memory.rip_relative or memory.index is None and memory.base is None):
            raise EncodingError(f"{mnemonic} needs a base or index register (sibmem)")
        modrm, rex_x, rex_b = _encode_memory(memory, reg_field, force_sib=form == "sib")
    rex_r = reg_field >> 3
    prefixes = b""
    if memory is not None and memory.segment:
        prefixes += bytes([0x64 if memory.segment == "fs" else 0x65])
    if memory is not None and memory.address_size == 32:
        prefixes += b"\x67"
    if row.vex:
        byte1 = ((rex_r ^ 1) << 7) | ((rex_x ^ 1) << 6) | ((rex_b ^ 1) << 5) | row.opcode_map
        byte2 = ((~vvvv & 0xF) << 3) | row.prefix
        return prefixes + bytes([0xC4, byte1, byte2, row.opcode]) + modrm
    mandatory = {0: b"", 1: b"\x66", 2: b"\xf3", 3: b"\xf2"}[row.prefix]
    rex = (8 if row.rex_w else 0) | rex_r << 2 | rex_x << 1 | rex_b
    opcode = b"\x0f" + (b"\x38" if row.opcode_map == 2 else b"") + bytes([row.opcode])
    return prefixes + mandatory + (bytes([0x40 | rex]) if rex else b"") + opcode + modrm
