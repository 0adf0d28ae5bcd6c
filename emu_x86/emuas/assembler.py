"""The project's assembler front end: a GNU-as style source -> ProgramImage.

``.s`` and ``.S`` are GNU-as AT&T syntax (``.S`` goes through the C
preprocessor first), ``.asm`` is GNU-as Intel syntax (``.intel_syntax
noprefix`` from the first line); ``.intel_syntax``/``.att_syntax`` switch in
the middle of a file.  The result is laid out as a static Linux x86-64
program: ``.text`` at 0x401000 (the kernel synthesizes ELF headers at
0x400000), then read-only data, data and bss, each section on fresh pages so
that each becomes one segment with its own protection.

Who does what
-------------
keystone 0.9.2 encodes single instructions.  Everything else belongs to this
module: splitting statements, comments, the preprocessor, macros and
conditionals, every directive, sections, symbols and expressions, layout,
branch relaxation.  Keystone only ever sees one instruction whose operands
are registers and hexadecimal numbers, because it mis-handles much of the
rest (see ``_Keystone`` and ``_encode_instruction`` for every bug found and
its workaround).

The model is GNU as's own, frags and fixups, so that the bytes come out the
same as ``as`` + ``ld`` produce for the same layout:

* The source is read once, in order.  A non-branch instruction is encoded as
  soon as it is read.  A value known at that point -- a number, or a symbol
  already set to an absolute value -- is encoded as is, so the shortest form
  is chosen (``cmp $N, %eax`` with an 8-bit immediate).  A value not known
  yet -- a label, a forward reference -- gets a placeholder that forces the
  32-bit field GNU as would fill through a relocation, and a fixup patches
  that field once the layout is final.  Hence ``.set`` symbols reassigned in
  a ``.rept`` are seen with the value they have where they are used.
* Bytes accumulate in frags: fixed bytes ending in at most one variable-size
  item (a jmp/jcc to a symbol, an alignment, an extension instruction).  A
  difference of two labels inside one frag is an absolute value at once
  (``.equ len, . - msg``); across a variable item only after layout.
* Layout iterates to a fixed point: jumps start short and grow to rel32 when
  the target is out of reach (they never shrink, so this terminates), and
  alignments pad to their boundary.  Then the fixups are patched.

Errors are ``AssemblyError``: one line, ``FILE:LINE: error: MESSAGE``, where
FILE:LINE is the line of the original source (through ``#include`` and the
preprocessor's line markers; a macro expansion reports the invoking line).
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator

from emu_x86.emucli.resources import include_dir
from emu_x86.emuas.expression import (ExpressionError, ExpressionParser, apply_binary, apply_unary, signed64,
                              tokenize)
from emu_x86.emuas.source import (SourceLine, read_regular_file, regular_file_size, split_statements, split_top_level,
                          unescape)
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, LoadError, ProgramImage, Segment

IMAGE_BASE = 0x400000              # the kernel's synthesized ELF headers live here
TEXT_BASE = 0x401000               # first byte of .text
PAGE_SIZE_BYTES = 0x1000
# The headers guest sources include (linux_syscalls.h ...): guest/include in a
# source tree, the copy shipped inside the installed package otherwise.
INCLUDE_DIR = include_dir()

MAX_LAYOUT_PASSES = 200            # jumps only grow, so layout converges long before this
MAX_EXPANSION_DEPTH = 100          # nested macros / .include
MAX_REPEAT_COUNT = 1_000_000       # one .rept, .fill or .skip
# Budgets for a whole assembly, across every level of nesting, so that no
# source -- a macro that doubles itself, .rept inside .rept -- runs or grows
# without bound (GNU as has none: it is fast and runs in its own process).
# A statement is one line read or one repetition started, after expansion.
MAX_STATEMENTS = 500_000           # about 5 s of this assembler's time
MAX_OUTPUT_BYTES = 64 << 20        # file-backed bytes (code and data; .bss costs nothing)
# Expression text parsed, in characters: a statement's cost grows with its
# expressions (a macro that passes "\n-1" down 40 levels parses 40-term
# expressions at every step), so the statement count alone does not bound time.
MAX_EXPRESSION_CHARACTERS = 1 << 20
MAX_SOURCE_BYTES = 16 << 20        # the source with its .includes (and cpp's output for .S)
USER_ADDRESS_LIMIT = 1 << 47       # TASK_SIZE: every section must end below it
MASK64 = (1 << 64) - 1
PREPROCESSOR_MEMORY_BYTES = 512 << 20  # address space of gcc -E and cc1 (a normal .S needs < 100 MiB)
PREPROCESSOR_CPU_SECONDS = 10
PREPROCESSOR_WALL_SECONDS = 30         # an #include of a FIFO waits without using CPU
_RUN_LIMIT_SIGNALS = {signal.SIGALRM}  # emucli/limits.py's interval timer

# Extension instructions keystone does not know.  The table is consulted
# before keystone for every instruction:
#
#     EXTRA_ENCODERS[mnemonic](operands_text, syntax, address, resolve) -> bytes
#
# ``operands_text`` is the operand field as written, except that symbols with
# an absolute value are replaced by the value they have where the instruction
# appears, and ``1b``/``1f``/``.`` by hidden names ``resolve`` understands;
# ``syntax`` is "att" or "intel"; ``address`` is where the instruction will
# be; ``resolve(expr)`` evaluates an expression to its final value (labels
# included).  The encoder is called again on
# every layout pass, so its size may depend on addresses.  An encoder raises
# any exception with a one-line message for a bad operand.  The project's
# extension encoder (``emu.isa.encoding``: AMX, the XSAVE family, RDPID,
# SERIALIZE, INVPCID, INVLPGB/TLBSYNC, checked against GNU as) registers
# itself at the end of this module.
ExtraEncoder = Callable[[str, str, int, Callable[[str], int]], bytes]
EXTRA_ENCODERS: dict[str, ExtraEncoder] = {}


class AssemblyError(LoadError):
    """A bad source: ``str()`` is one line, ``FILE:LINE: error: MESSAGE``."""

    def __init__(self, filename: str, line: int, message: str):
        self.filename = filename
        self.line = line
        self.message = " ".join(str(message).splitlines()) or "error"
        super().__init__(f"{filename}:{line}: error: {self.message}")


# ---------------------------------------------------------------------------
# Registers and instruction tables.

_GPR64 = ("rax rcx rdx rbx rsp rbp rsi rdi r8 r9 r10 r11 r12 r13 r14 r15").split()
_GPR32 = ("eax ecx edx ebx esp ebp esi edi r8d r9d r10d r11d r12d r13d r14d r15d").split()
_GPR16 = ("ax cx dx bx sp bp si di r8w r9w r10w r11w r12w r13w r14w r15w").split()
_GPR8 = ("al cl dl bl spl bpl sil dil r8b r9b r10b r11b r12b r13b r14b r15b ah ch dh bh").split()
_SEGMENT_REGISTERS = ("es", "cs", "ss", "ds", "fs", "gs")
_REGISTERS = frozenset(
    _GPR64 + _GPR32 + _GPR16 + _GPR8 + list(_SEGMENT_REGISTERS) + ["rip", "eip", "riz", "eiz", "st"]
    + [f"r{n}l" for n in range(8, 16)]
    + [f"xmm{n}" for n in range(32)] + [f"ymm{n}" for n in range(32)] + [f"zmm{n}" for n in range(32)]
    + [f"mm{n}" for n in range(8)] + [f"st{n}" for n in range(8)] + [f"k{n}" for n in range(8)]
    + [f"cr{n}" for n in range(16)] + [f"dr{n}" for n in range(16)] + [f"tmm{n}" for n in range(8)]
    + [f"bnd{n}" for n in range(4)])
_INTEL_SIZE_WORDS = ("byte", "word", "dword", "fword", "qword", "mmword", "tbyte", "oword", "xmmword",
                     "ymmword", "zmmword")

# Prefixes written as separate words.  GNU as orders legacy prefixes by slot
# (segment, 0x67, 0x66, rep/repne, lock, then REX); we insert them ourselves
# in that order -- keystone puts lock/rep before 0x66 (measured: "lock addw
# $1, (%rax)" gives f0 66 83 00 01, GNU as 66 f0 83 00 01; same for
# "rep stosw") and knows no segment-name, data16, addr32 or notrack prefix.
_PREFIX_BYTES = {
    "lock": 0xF0, "rep": 0xF3, "repe": 0xF3, "repz": 0xF3, "repne": 0xF2, "repnz": 0xF2,
    "xacquire": 0xF2, "xrelease": 0xF3, "bnd": 0xF2, "notrack": 0x3E,
    "es": 0x26, "cs": 0x2E, "ss": 0x36, "ds": 0x3E, "fs": 0x64, "gs": 0x65,
    "data16": 0x66, "addr32": 0x67,
}
_PREFIX_SLOT = {0x26: 1, 0x2E: 1, 0x36: 1, 0x3E: 1, 0x64: 1, 0x65: 1, 0x67: 2, 0x66: 3, 0xF2: 4, 0xF3: 4,
                0xF0: 5}

_CONDITION_CODES = {
    "o": 0, "no": 1, "b": 2, "c": 2, "nae": 2, "ae": 3, "nb": 3, "nc": 3, "e": 4, "z": 4, "ne": 5, "nz": 5,
    "be": 6, "na": 6, "a": 7, "nbe": 7, "s": 8, "ns": 9, "p": 10, "pe": 10, "np": 11, "po": 11,
    "l": 12, "nge": 12, "ge": 13, "nl": 13, "le": 14, "ng": 14, "g": 15, "nle": 15,
}
# Relaxable jumps: (short opcode, long opcode).  We encode direct branches
# ourselves: their size is the layout's business, not keystone's.
_RELAXABLE_JUMPS = {"jmp": (b"\xeb", b"\xe9"), "jmpq": (b"\xeb", b"\xe9")}
_RELAXABLE_JUMPS.update({f"j{cc}": (bytes([0x70 + n]), bytes([0x0F, 0x80 + n]))
                         for cc, n in _CONDITION_CODES.items()})
_CALLS = {"call": b"\xe8", "callq": b"\xe8"}                        # always rel32
_LOOPS = {"loop": b"\xe2", "loope": b"\xe1", "loopz": b"\xe1", "loopne": b"\xe0", "loopnz": b"\xe0",
          "jrcxz": b"\xe3", "jecxz": b"\x67\xe3"}                   # rel8 only

# Instructions without operands that keystone does not know.
_FIXED_ENCODINGS = {
    "endbr64": b"\xf3\x0f\x1e\xfa",
    "endbr32": b"\xf3\x0f\x1e\xfb",
    "wbnoinvd": b"\xf3\x0f\x09",
}

# Multi-byte NOPs GNU as 2.40 pads code alignment with (x86-64, default
# tuning): the longest is 11 bytes; a gap is filled with 11-byte NOPs and one
# shorter NOP for the rest (measured against ``as`` for every gap 1..63).
_CODE_NOPS = {
    1: "90", 2: "6690", 3: "0f1f00", 4: "0f1f4000", 5: "0f1f440000", 6: "660f1f440000",
    7: "0f1f8000000000", 8: "0f1f840000000000", 9: "660f1f840000000000",
    10: "662e0f1f840000000000", 11: "66662e0f1f840000000000",
}
_CODE_NOPS = {size: bytes.fromhex(text) for size, text in _CODE_NOPS.items()}


def _code_padding(size_bytes: int) -> bytes:
    longest = max(_CODE_NOPS)
    count, rest = divmod(size_bytes, longest)
    return _CODE_NOPS[longest] * count + (_CODE_NOPS[rest] if rest else b"")


# ---------------------------------------------------------------------------
# Sections, frags, symbols.

@dataclass(eq=False)
class _Fixup:
    """A field of ``width`` bytes at ``offset`` in a frag, filled from ``node`` after layout."""
    offset: int
    width: int
    node: tuple
    source: SourceLine
    pcrel_end: int | None = None    # RIP-relative: frag offset of the instruction's end
    signed_only: bool = False        # displacements are sign-extended


@dataclass(eq=False)
class _Jump:
    """A jmp/jcc to a symbol: rel8 unless the target is out of reach or elsewhere."""
    short_opcode: bytes
    long_opcode: bytes
    prefix: bytes
    target: tuple
    source: SourceLine
    long: bool = False

    def size(self, _address: int) -> int:
        return len(self.prefix) + (len(self.long_opcode) + 4 if self.long else len(self.short_opcode) + 1)


@dataclass(eq=False)
class _Align:
    boundary: int
    fill: bytes | None              # repeated pattern; None: NOPs (code) or zeros (data)
    max_skip: int | None
    code: bool
    source: SourceLine | None = None

    def size(self, address: int) -> int:
        padding = -address % self.boundary
        return 0 if self.max_skip is not None and padding > self.max_skip else padding


@dataclass(eq=False)
class _Extension:
    """An EXTRA_ENCODERS instruction, re-encoded on every layout pass."""
    mnemonic: str
    operands: str
    syntax: str
    source: SourceLine
    encoder: ExtraEncoder
    dot_symbol: str                 # a hidden label at the instruction, for "." in operands
    current_size: int = 0

    def size(self, _address: int) -> int:
        return self.current_size


class _ZeroFill:
    """The contents of a frag in a nobits section: only its length. GNU as keeps
    no bytes for .bss either, so a gigabyte of .skip costs nothing here."""
    __slots__ = ("length",)

    def __init__(self):
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def __iadd__(self, data: bytes) -> "_ZeroFill":
        self.length += len(data)        # callers refuse non-zero bytes in nobits sections first
        return self

    def grow(self, size_bytes: int) -> None:
        self.length += size_bytes


class _Frag:
    """Fixed bytes, then at most one variable-size tail."""
    __slots__ = ("section", "data", "fixups", "tail", "address", "tail_size")

    def __init__(self, section: "_Section"):
        self.section = section
        self.data = _ZeroFill() if section.nobits else bytearray()
        self.fixups: list[_Fixup] = []
        self.tail = None
        self.address = 0
        self.tail_size = 0


@dataclass(eq=False)
class _Section:
    name: str
    flags: str                      # subset of "awx"
    nobits: bool
    frags: list = field(default_factory=list)
    address: int = 0
    size: int = 0
    alignment: int = 1

    def __post_init__(self):
        self.frags.append(_Frag(self))

    @property
    def current(self) -> _Frag:
        return self.frags[-1]

    def close_frag(self, tail) -> None:
        self.current.tail = tail
        self.frags.append(_Frag(self))


@dataclass(frozen=True, eq=False)
class _Place:
    """A position: ``offset`` bytes after the start of ``frag``."""
    frag: _Frag
    offset: int

    @property
    def address(self) -> int:
        return self.frag.address + self.offset


@dataclass(eq=False)
class _Symbol:
    name: str
    kind: str                       # "label" | "absolute" | "expression"
    source: SourceLine
    place: _Place | None = None     # label
    value: int = 0                  # absolute
    node: tuple | None = None       # expression, evaluated after layout
    assigned: bool = False          # defined by .set/.equ/= (which may redefine it)


class _Unknown(Exception):
    """An expression whose value is not known yet (read time)."""


@dataclass
class AssembledSection:
    name: str
    address: int
    data: bytes                     # b"" for a nobits section
    size_bytes: int
    flags: str
    nobits: bool


@dataclass
class Assembly:
    """The image plus what went into it, section by section (for tests and tools)."""
    image: ProgramImage
    sections: list[AssembledSection]


_DEFAULT_SECTION_FLAGS = {".text": "ax", ".data": "aw", ".bss": "aw", ".rodata": "a"}
_NONALLOC_PREFIXES = (".note", ".comment", ".debug", ".stab", ".gnu.warning", ".gnu_debug")


def _default_flags(name: str) -> tuple[str, bool]:
    """GNU as's flags for a section named without a flag string (nobits second)."""
    for prefix, flags in _DEFAULT_SECTION_FLAGS.items():
        if name == prefix or name.startswith(prefix + "."):
            return flags, prefix == ".bss"
    if name.startswith(".tbss"):
        return "aw", True
    if name.startswith(_NONALLOC_PREFIXES):
        return "", False
    return "aw", False       # unknown names: like .data (GNU as would make them non-alloc)


# ---------------------------------------------------------------------------
# Operands (text level, shared with the extension-encoder adapter).

@dataclass
class _OperandText:
    kind: str                 # "reg" | "imm" | "mem" | "expr" (bare expression)
    register: str = ""        # reg: lower-case name without "%"
    expr: str = ""            # imm / expr / mem displacement ("" for none)
    segment: str = ""
    base: str = ""
    index: str = ""
    scale: str = ""
    size_word: str = ""       # Intel "dword ptr"
    star: bool = False        # AT&T indirect "*"


def _is_register(name: str) -> bool:
    name = name.strip().lower()
    return name in _REGISTERS or bool(re.fullmatch(r"st\s*\(\s*[0-7]\s*\)", name))


def _canonical_register(name: str) -> str:
    return re.sub(r"\s+", "", name.strip().lower())


def _parse_att_operand(text: str) -> _OperandText:
    text = text.strip()
    if not text:
        raise ExpressionError("missing operand")
    star = text.startswith("*")
    if star:
        text = text[1:].strip()
    if text.startswith("$"):
        if star:
            raise ExpressionError(f"bad operand '*{text}'")
        return _OperandText("imm", expr=text[1:].strip())
    segment = ""
    seg = re.match(r"%(cs|ds|es|fs|gs|ss)\s*:\s*", text, re.IGNORECASE)
    if seg:
        segment, text = seg.group(1).lower(), text[seg.end():]
    elif text.startswith("%"):
        if not _is_register(text[1:]):
            raise ExpressionError(f"bad register name '{text}'")
        return _OperandText("reg", register=_canonical_register(text[1:]), star=star)
    if text.endswith(")"):
        depth, start = 0, None
        for position in range(len(text) - 1, -1, -1):
            if text[position] == ")":
                depth += 1
            elif text[position] == "(":
                depth -= 1
                if depth == 0:
                    start = position
                    break
        inner = text[start + 1:-1].strip() if start is not None else ""
        if start is not None and (not inner or inner.startswith("%") or inner.startswith(",")):
            parts = [part.strip() for part in inner.split(",")]
            if len(parts) > 3:
                raise ExpressionError(f"bad memory operand '{text}'")
            base = parts[0]
            index = parts[1] if len(parts) > 1 else ""
            scale = parts[2] if len(parts) > 2 else ""
            for register in (base, index):
                if register and not (register.startswith("%") and _is_register(register[1:])):
                    raise ExpressionError(f"bad register '{register}' in memory operand")
            return _OperandText("mem", expr=text[:start].strip(), segment=segment,
                                base=base[1:].lower(), index=index[1:].lower(), scale=scale, star=star)
    if segment:
        return _OperandText("mem", expr=text.strip(), segment=segment, star=star)
    return _OperandText("expr", expr=text, star=star)


_INTEL_SIZE = re.compile(r"(" + "|".join(_INTEL_SIZE_WORDS) + r")\s+ptr\b\s*", re.IGNORECASE)


def _parse_intel_operand(text: str) -> _OperandText:
    text = text.strip()
    if not text:
        raise ExpressionError("missing operand")
    if text.startswith("%"):          # ".intel_syntax prefix" style
        text = text[1:]
    if _is_register(text):
        return _OperandText("reg", register=_canonical_register(text))
    offset = re.match(r"offset\s+", text, re.IGNORECASE)
    if offset:
        return _OperandText("imm", expr=text[offset.end():].strip())
    size_word = ""
    size = _INTEL_SIZE.match(text)
    if size:
        size_word, text = size.group(1).lower(), text[size.end():].strip()
    segment = ""
    seg = re.match(r"%?(cs|ds|es|fs|gs|ss)\s*:\s*", text, re.IGNORECASE)
    if seg:
        segment, text = seg.group(1).lower(), text[seg.end():].strip()
    if "[" not in text:
        if size_word or segment:
            return _OperandText("mem", expr=text, segment=segment, size_word=size_word)
        return _OperandText("expr", expr=text)
    # disp[base + index*scale + disp]...: every bracket's terms are added.
    outside: list[str] = []
    inside: list[str] = []
    depth, current = 0, []
    for ch in text:
        if ch == "[":
            if depth == 0:
                outside.append("".join(current))
                current = []
            else:
                current.append(ch)
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                inside.append("".join(current))
                current = []
            else:
                current.append(ch)
        else:
            current.append(ch)
    if depth != 0:
        raise ExpressionError(f"unbalanced brackets in '{text}'")
    outside.append("".join(current))
    operand = _OperandText("mem", segment=segment, size_word=size_word)
    disp_terms = [term.strip() for term in outside if term.strip()]
    for bracket in inside:
        bracket = bracket.strip()
        seg = re.match(r"%?(cs|ds|es|fs|gs|ss)\s*:\s*", bracket, re.IGNORECASE)
        if seg:
            operand.segment, bracket = seg.group(1).lower(), bracket[seg.end():]
        for sign, term in _intel_terms(bracket):
            word = term.strip().lower().lstrip("%")
            scaled = re.fullmatch(r"%?(\w+)\s*\*\s*(\w+)", term.strip().lower())
            if _is_register(word):
                if sign == "-":
                    raise ExpressionError(f"cannot subtract register '{word}'")
                if not operand.base:
                    operand.base = word
                elif not operand.index:
                    operand.index, operand.scale = word, "1"
                else:
                    raise ExpressionError(f"too many registers in '{text}'")
            elif scaled and (_is_register(scaled.group(1)) or _is_register(scaled.group(2))):
                register, factor = scaled.groups()
                if not _is_register(register):
                    register, factor = factor, register
                if operand.index:
                    raise ExpressionError(f"too many index registers in '{text}'")
                operand.index, operand.scale = register, factor
            else:
                disp_terms.append(term.strip() if sign == "+" else f"-({term.strip()})")
    operand.expr = " + ".join(f"({term})" for term in disp_terms) if len(disp_terms) > 1 else \
        (disp_terms[0] if disp_terms else "")
    return operand


def _intel_terms(text: str) -> Iterator[tuple[str, str]]:
    """(sign, term) pairs of a bracket's top-level sum."""
    depth, current, sign = 0, [], "+"
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch in "+-" and depth == 0 and "".join(current).strip():
            yield sign, "".join(current)
            current, sign = [], ch
        elif ch in "+-" and depth == 0 and not "".join(current).strip():
            sign = "-" if (sign == "-") != (ch == "-") else "+"
        else:
            current.append(ch)
    if "".join(current).strip():
        yield sign, "".join(current)


def _parse_operand(text: str, syntax: str) -> _OperandText:
    return _parse_att_operand(text) if syntax == "att" else _parse_intel_operand(text)


def _hex(value: int) -> str:
    value = signed64(value)
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _render_memory(operand: _OperandText, disp: str, syntax: str) -> str:
    """One memory operand as keystone reads it (numbers only)."""
    if syntax == "att":
        segment = f"%{operand.segment}:" if operand.segment else ""
        if operand.base or operand.index:
            registers = f"%{operand.base}" if operand.base else ""
            if operand.index:
                registers += f",%{operand.index},{operand.scale or '1'}"
            return f"{'*' if operand.star else ''}{segment}{disp}({registers})"
        return f"{'*' if operand.star else ''}{segment}{disp}"
    terms = []
    if operand.base:
        terms.append(operand.base)
    if operand.index:
        terms.append(f"{operand.index}*{operand.scale or '1'}")
    if disp:
        if terms and disp.startswith("-"):
            terms.append(f"- {disp[1:]}")
        else:
            terms.append(disp)
    inner = " + ".join(terms).replace("+ -", "-") if terms else "0x0"
    size = f"{operand.size_word} ptr " if operand.size_word else ""
    segment = f"{operand.segment}:" if operand.segment else ""
    return f"{size}{segment}[{inner}]"


# ---------------------------------------------------------------------------
# Keystone.

class _Keystone:
    """One engine per syntax, results cached by text (operands are position-free)."""

    def __init__(self):
        self._engines: dict[str, object] = {}
        self._cache: dict[tuple[str, str], bytes | Exception] = {}

    def _engine(self, syntax: str):
        engine = self._engines.get(syntax)
        if engine is None:
            try:
                from keystone import KS_ARCH_X86, KS_MODE_64, KS_OPT_SYNTAX_ATT, KS_OPT_SYNTAX_INTEL, Ks
            except ImportError:
                raise LoadError("the keystone-engine package is needed to assemble sources") from None
            engine = Ks(KS_ARCH_X86, KS_MODE_64)
            engine.syntax = KS_OPT_SYNTAX_ATT if syntax == "att" else KS_OPT_SYNTAX_INTEL
            self._engines[syntax] = engine
        return engine

    def encode(self, text: str, syntax: str) -> bytes:
        """Bytes of one instruction; raises ExpressionError with a readable message."""
        key = (syntax, text)
        cached = self._cache.get(key)
        if cached is None:
            from keystone import KsError
            mnemonic = text.split()[0] if text.split() else text
            try:
                encoding, _count = self._engine(syntax).asm(text, 0)
                # keystone 0.9.2 sometimes fails silently with no bytes at all
                # (measured: "movq %eax" returns (None, 0)).
                cached = bytes(encoding) if encoding else ExpressionError(f"invalid operands for '{mnemonic}'")
            except KsError as error:
                if "MNEMONICFAIL" in str(error) and not self.knows_mnemonic(mnemonic):
                    cached = ExpressionError(f"unknown mnemonic '{mnemonic}'")
                elif "MNEMONICFAIL" in str(error) or "OPERAND" in str(error):
                    cached = ExpressionError(f"invalid operands for '{mnemonic}'")
                else:
                    cached = ExpressionError(f"cannot assemble: {error}")
            self._cache[key] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def knows_mnemonic(self, mnemonic: str) -> bool:
        """Whether keystone knows ``mnemonic`` with some operands.

        keystone's AT&T mode reports "invalid mnemonic" for a known mnemonic
        with operands it cannot take ("mov %eax, %rbx"); its Intel mode tells
        the two apart (bare "mov" is an operand error there), so ask it, with
        and without an AT&T size suffix.
        """
        from keystone import KsError
        candidates = [mnemonic] + ([mnemonic[:-1]] if mnemonic[-1:] in ("b", "w", "l", "q") else [])
        for candidate in candidates:
            for syntax in ("intel", "att"):
                try:
                    self._engine(syntax).asm(candidate, 0)
                    return True
                except KsError as error:
                    if "MNEMONICFAIL" not in str(error):
                        return True
        return False


# Placeholder pairs per field width: every byte differs between the two, so
# encoding both and comparing finds the field exactly.
_PLACEHOLDERS = {8: (0x1122334455667788, 0x2233445566778899), 4: (0x11223344, 0x55667788),
                 2: (0x1122, 0x3344), 1: (0x11, 0x22)}


@dataclass
class _Hole:
    """An operand value encoded through a placeholder, then patched."""
    node: tuple | None
    kind: str                       # "imm" | "disp" | "rip" | "absolute" | "moffs"
    known: int | None = None        # the value when already known (absolute memory only)
    widths: tuple = (4, 2, 1)       # placeholder widths to try, widest first


# ---------------------------------------------------------------------------
# The assembler.

class _MacroExit(Exception):
    pass


@dataclass
class _Macro:
    name: str
    parameters: list               # (name, default, required, vararg)
    body: list


class Assembler:
    """Reads statements, lays out sections, emits the image.  One instance per source."""

    def __init__(self, filename: str, syntax: str, include_dirs: list[str] | None = None,
                 nasm_isms: bool = False):
        self.filename = filename
        self.syntax = syntax
        self.nasm_isms = nasm_isms
        self.include_dirs = list(include_dirs or [])
        self.sections: dict[str, _Section] = {}
        self.symbols: dict[str, _Symbol] = {}
        self.local_label_counts: dict[str, int] = {}
        self.macros: dict[str, _Macro] = {}
        self.macro_invocations = 0
        self.section_stack: list[tuple[_Section, _Section | None]] = []
        self.previous_section: _Section | None = None
        self.section = self._get_section(".text")
        self.keystone = _Keystone()
        self.ended = False
        self.depth = 0
        self.local_commons: list[tuple[str, int, int, SourceLine]] = []
        self.commons: list[tuple[str, int, int, SourceLine]] = []
        self.hidden_counter = 0
        self.current_source = SourceLine(filename, 1, "")
        self.statements_left = MAX_STATEMENTS
        self.expression_characters_left = MAX_EXPRESSION_CHARACTERS
        self.output_bytes_left = MAX_OUTPUT_BYTES
        self.source_bytes_left = MAX_SOURCE_BYTES
        self.macro_depth = 0
        self.common_bytes = 0

    # ---- errors ------------------------------------------------------------------

    @staticmethod
    def _error(source: SourceLine, message: str) -> AssemblyError:
        return AssemblyError(source.filename, source.line, message)

    # ---- reading -----------------------------------------------------------------

    def run(self, lines: list[SourceLine]) -> None:
        """Process ``lines`` in order, expanding blocks (.macro/.rept/.irp/.if) as they come."""
        index = 0
        while index < len(lines) and not self.ended:
            source = lines[index]
            self.current_source = source
            self._charge_statement(source)
            text = self._define_leading_labels(source, source.text)
            head, rest = _head(text)
            if head in _BLOCK_OPENERS:
                end = self._block_end(lines, index, head)
                self._block(head, rest, source, lines[index + 1:end])
                index = end + 1
                continue
            if head in _BLOCK_CLOSERS:
                raise self._error(source, f"'{head}' without a matching opener")
            if text:
                self._statement(source, text, head, rest)
            index += 1

    def _charge_statement(self, source: SourceLine) -> None:
        self.statements_left -= 1
        if self.statements_left < 0:
            raise self._error(source, f"more than {MAX_STATEMENTS} statements after expanding macros and "
                                      "repetitions")

    def charge_source(self, size_bytes: int, source: SourceLine, what: str) -> None:
        """Count ``size_bytes`` of source text (an .include, cpp's output) against MAX_SOURCE_BYTES."""
        self.source_bytes_left -= size_bytes
        if self.source_bytes_left < 0:
            raise self._error(source, f"{what}: the source with its includes exceeds {MAX_SOURCE_BYTES >> 20} MiB")

    def _define_leading_labels(self, source: SourceLine, text: str) -> str:
        while True:
            match = _LABEL.match(text)
            if not match:
                return text
            self._define_label(match.group(1), source)
            text = text[match.end():].lstrip()

    def _block_end(self, lines: list[SourceLine], start: int, head: str) -> int:
        openers, closer = _BLOCK_KINDS[head]
        depth = 1
        for index in range(start + 1, len(lines)):
            word, _rest = _head(_strip_labels(lines[index].text))
            if word in openers:
                depth += 1
            elif word == closer or (closer == ".endm" and word == ".endmacro"):
                depth -= 1
                if depth == 0:
                    return index
        raise self._error(lines[start], f"'{head}' without '{closer}'")

    def _block(self, head: str, rest: str, source: SourceLine, body: list[SourceLine]) -> None:
        if head == ".macro":
            self._define_macro(rest, source, body)
        elif head == ".rept":
            count = self._absolute(rest, source, ".rept")
            if count > MAX_REPEAT_COUNT:
                raise self._error(source, f".rept count {count} is too large")
            for _ in range(max(0, count)):
                self._charge_statement(source)         # an empty body still costs its repetitions
                self._nested(source, body)
        elif head in (".irp", ".irpc"):
            name, _, values_text = rest.partition(",")
            name = name.strip()
            if not re.fullmatch(r"[A-Za-z_.][\w.$]*", name):
                raise self._error(source, f"bad {head} parameter '{name}'")
            if head == ".irp":
                values = [value.strip() for value in split_top_level(values_text)] if values_text.strip() else [""]
            else:
                values = list(values_text.strip()) or [""]
            for value in values:
                self._charge_statement(source)
                substituted = [SourceLine(line.filename, line.line,
                                          _substitute_parameters(line.text, {name: value}, None))
                               for line in body]
                self._nested(source, substituted)
        else:
            self._conditional(head, rest, source, body)

    def _nested(self, source: SourceLine, lines: list[SourceLine]) -> None:
        self.depth += 1
        if self.depth > MAX_EXPANSION_DEPTH:
            raise self._error(source, "macros, repetitions or includes nested too deeply")
        try:
            self.run(lines)
        finally:
            self.depth -= 1

    def _conditional(self, head: str, rest: str, source: SourceLine, body: list[SourceLine]) -> None:
        # Split the body into branches at top-level .elseif/.else.
        branches: list[tuple[str, str, SourceLine, list[SourceLine]]] = [(head, rest, source, [])]
        depth = 0
        for line in body:
            word, args = _head(_strip_labels(line.text))
            if word in _CONDITIONALS:
                depth += 1
            elif word == ".endif":
                depth -= 1
            elif depth == 0 and word in (".elseif", ".else"):
                branches.append((word, args, line, []))
                continue
            branches[-1][3].append(line)
        for kind, args, where, lines in branches:
            if kind == ".else" or self._condition(kind, args, where):
                self._nested(where, lines)
                return

    def _condition(self, kind: str, args: str, source: SourceLine) -> bool:
        if kind in (".ifdef", ".ifndef", ".ifnotdef"):
            defined = args.strip() in self.symbols
            return defined if kind == ".ifdef" else not defined
        if kind in (".ifb", ".ifnb"):
            return (not args.strip()) == (kind == ".ifb")
        if kind in (".ifc", ".ifnc", ".ifeqs", ".ifnes"):
            left, _, right = args.partition(",")
            same = _unquote(left.strip()) == _unquote(right.strip())
            return same if kind in (".ifc", ".ifeqs") else not same
        value = self._absolute(args, source, kind)
        tests = {".if": value != 0, ".elseif": value != 0, ".ifne": value != 0, ".ifeq": value == 0,
                 ".ifgt": value > 0, ".ifge": value >= 0, ".iflt": value < 0, ".ifle": value <= 0}
        return tests[kind]

    # ---- macros ------------------------------------------------------------------

    def _define_macro(self, rest: str, source: SourceLine, body: list[SourceLine]) -> None:
        match = re.match(r"\s*([A-Za-z_.$][\w.$]*)\s*,?\s*(.*)$", rest)
        if not match:
            raise self._error(source, "missing macro name")
        name, parameter_text = match.group(1).lower(), match.group(2)
        parameters = []
        for item in re.split(r"\s*,\s*|\s+(?=[A-Za-z_])", parameter_text.strip()) if parameter_text.strip() else []:
            if not item:
                continue
            item_name, has_default, default = item.partition("=")
            item_name, _, qualifier = item_name.strip().partition(":")
            parameters.append((item_name.strip(), default.strip() if has_default else None,
                               qualifier == "req", qualifier == "vararg"))
        self.macros[name] = _Macro(name, parameters, body)

    def _expand_macro(self, macro: _Macro, args_text: str, source: SourceLine) -> None:
        arguments = split_top_level(args_text) if args_text.strip() else []
        if len(arguments) == 1 and len(macro.parameters) > 1 and not macro.parameters[0][3]:
            arguments = args_text.split()            # space-separated arguments
        values: dict[str, str] = {}
        positional = [argument.strip() for argument in arguments]
        keyword = {}
        for argument in list(positional):
            match = re.fullmatch(r"([A-Za-z_][\w$]*)\s*=\s*(.*)", argument)
            if match and any(parameter[0] == match.group(1) for parameter in macro.parameters):
                keyword[match.group(1)] = match.group(2)
                positional.remove(argument)
        for index, (name, default, required, vararg) in enumerate(macro.parameters):
            if vararg:
                value = ", ".join(positional[index:])
            elif name in keyword:
                value = keyword[name]
            elif index < len(positional) and positional[index] != "":
                value = positional[index]
            else:
                value = default if default is not None else ""
                if required:
                    raise self._error(source, f"missing value for required parameter '{name}' of '{macro.name}'")
            values[name] = value
        if len(positional) > len(macro.parameters) and not (macro.parameters and macro.parameters[-1][3]):
            raise self._error(source, f"too many arguments for macro '{macro.name}'")
        self.macro_invocations += 1
        counter = str(self.macro_invocations - 1)
        # Errors inside an expansion are reported at the invoking line.
        expanded = [SourceLine(source.filename, source.line, _substitute_parameters(line.text, values, counter))
                    for line in macro.body]
        self.macro_depth += 1
        try:
            self._nested(source, expanded)
        except _MacroExit:
            pass
        finally:
            self.macro_depth -= 1

    # ---- one statement -----------------------------------------------------------

    def _statement(self, source: SourceLine, text: str, head: str, rest: str) -> None:
        assignment = _ASSIGNMENT.match(text)
        if assignment:
            self._set_symbol(assignment.group(1), assignment.group(2), source, ".set")
            return
        macro = self.macros.get(head)
        if macro is not None:
            self._expand_macro(macro, rest, source)
            return
        if head.startswith("."):
            handler = _DIRECTIVES.get(head)
            if handler is None:
                if head.startswith(".cfi_"):
                    return
                raise self._error(source, f"unknown directive '{head}'")
            handler(self, rest, source)
            return
        if self.nasm_isms and head in ("section", "segment", "global", "extern", "bits", "default"):
            if head in ("section", "segment"):
                self._directive_section(rest, source)
            return
        self._instruction(source, text)

    # ---- symbols -----------------------------------------------------------------

    def _here(self) -> _Place:
        frag = self.section.current
        return _Place(frag, len(frag.data))

    def _define_label(self, name: str, source: SourceLine) -> None:
        if name.isdigit():
            count = self.local_label_counts.get(name, 0) + 1
            self.local_label_counts[name] = count
            name = _local_label_name(name, count)
        existing = self.symbols.get(name)
        if existing is not None:
            raise self._error(source, f"symbol '{name}' is already defined")
        self.symbols[name] = _Symbol(name, "label", source, place=self._here())

    def _set_symbol(self, name: str, expression: str, source: SourceLine, directive: str) -> None:
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_.$][\w.$]*", name):
            raise self._error(source, f"bad symbol name '{name}'")
        existing = self.symbols.get(name)
        if existing is not None and (not existing.assigned or directive == ".equiv"):
            raise self._error(source, f"symbol '{name}' is already defined")
        node = self._parse_expression(expression, source, inline_expressions=True)
        value = self._known(node, source)
        if value is None:
            self.symbols[name] = _Symbol(name, "expression", source, node=node, assigned=True)
            return
        if isinstance(value, _Place):
            # An alias of a position (".set here, ." or "x = label + 4").
            self.symbols[name] = _Symbol(name, "label", source, place=value, assigned=True)
        else:
            self.symbols[name] = _Symbol(name, "absolute", source, value=value, assigned=True)

    # ---- expressions -------------------------------------------------------------

    def _parse_expression(self, text: str, source: SourceLine, inline_expressions: bool = False,
                          dot: _Place | None = None) -> tuple:
        """Parse ``text``; symbols already absolute are bound to their current value."""
        dot = dot or self._here()

        def leaf(kind: str, value: str) -> tuple:
            if kind == "local":
                number, direction = value[:-1], value[-1]
                count = self.local_label_counts.get(number, 0)
                if direction == "b":
                    if count == 0:
                        raise ExpressionError(f"undefined local label '{value}'")
                    return ("sym", _local_label_name(number, count))
                return ("sym", _local_label_name(number, count + 1))
            if value == ".":
                return ("dot", dot.frag, dot.offset)
            if "@" in value:
                name, _, suffix = value.partition("@")
                if suffix.lower() != "plt":
                    raise ExpressionError(f"relocation '@{suffix}' is not supported in a static program")
                value = name
            symbol = self.symbols.get(value)
            if symbol is not None:
                if symbol.kind == "absolute":
                    return ("num", symbol.value)
                if symbol.kind == "expression" and inline_expressions:
                    return symbol.node
            return ("sym", value)

        try:
            self.expression_characters_left -= len(text)
            if self.expression_characters_left < 0:
                raise self._error(source, f"more than {MAX_EXPRESSION_CHARACTERS >> 10} KiB of expressions "
                                          "after expanding macros and repetitions")
            return ExpressionParser(tokenize(text, self.syntax == "intel"), leaf).parse()
        except ExpressionError as error:
            raise self._error(source, str(error)) from None

    def _read_value(self, node: tuple):
        """Value at read time: int, _Place, or raise _Unknown."""
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "dot":
            return _Place(node[1], node[2])
        if kind == "sym":
            symbol = self.symbols.get(node[1])
            if symbol is None or symbol.kind == "expression":
                raise _Unknown
            return symbol.place if symbol.kind == "label" else symbol.value
        if kind == "unary":
            value = self._read_value(node[2])
            if isinstance(value, _Place):
                raise _Unknown
            return apply_unary(node[1], value)
        op, left, right = node[1], self._read_value(node[2]), self._read_value(node[3])
        if isinstance(left, _Place) or isinstance(right, _Place):
            if op == "+" and isinstance(left, _Place) and isinstance(right, int):
                return _Place(left.frag, left.offset + right)
            if op == "+" and isinstance(right, _Place) and isinstance(left, int):
                return _Place(right.frag, right.offset + left)
            if op == "-" and isinstance(left, _Place) and isinstance(right, int):
                return _Place(left.frag, left.offset - right)
            if op == "-" and isinstance(left, _Place) and isinstance(right, _Place) and left.frag is right.frag:
                return left.offset - right.offset
            raise _Unknown
        return apply_binary(op, left, right)

    def _known(self, node: tuple, source: SourceLine):
        """The read-time value of ``node`` (int or _Place), or None when not known yet."""
        try:
            return self._read_value(node)
        except _Unknown:
            return None
        except ExpressionError as error:
            raise self._error(source, str(error)) from None

    def _absolute(self, text: str, source: SourceLine, what: str) -> int:
        value = self._known(self._parse_expression(text, source), source)
        if not isinstance(value, int):
            raise self._error(source, f"{what} needs an absolute expression known here: '{text.strip()}'")
        return value

    def _layout_value(self, node: tuple, source: SourceLine, depth: int = 0):
        """Value once addresses are assigned: int, or _Place for a position."""
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "dot":
            return _Place(node[1], node[2])
        if kind == "sym":
            symbol = self.symbols.get(node[1])
            if symbol is None:
                name = node[1]
                if name.startswith("\x02L"):
                    number = name.split("\x02")[1][1:]
                    raise self._error(source, f"undefined local label '{number}f'")
                raise self._error(source, f"undefined symbol '{name}'")
            if symbol.kind == "label":
                return symbol.place
            if symbol.kind == "absolute":
                return symbol.value
            if depth > 64:
                raise self._error(source, f"symbol '{symbol.name}' is defined in terms of itself")
            return self._layout_value(symbol.node, symbol.source, depth + 1)
        try:
            if kind == "unary":
                return apply_unary(node[1], _address(self._layout_value(node[2], source, depth)))
            op = node[1]
            left = self._layout_value(node[2], source, depth)
            right = self._layout_value(node[3], source, depth)
            if op in "+-" and isinstance(left, _Place) and isinstance(right, int):
                return _Place(left.frag, left.offset + (right if op == "+" else -right))
            if op == "+" and isinstance(right, _Place) and isinstance(left, int):
                return _Place(right.frag, right.offset + left)
            return apply_binary(op, _address(left), _address(right))
        except ExpressionError as error:
            raise self._error(source, str(error)) from None

    def _final_value(self, node: tuple, source: SourceLine) -> int:
        return _address(self._layout_value(node, source))

    # ---- emitting bytes ----------------------------------------------------------

    def _emit(self, data: bytes, source: SourceLine) -> None:
        if self.section.nobits and any(data):
            raise self._error(source, f"non-zero data in nobits section '{self.section.name}'")
        self._charge_output(len(data), source)
        self.section.current.data += data

    def _charge_output(self, size_bytes: int, source: SourceLine) -> None:
        if self.section.nobits:
            return
        self.output_bytes_left -= size_bytes
        if self.output_bytes_left < 0:
            raise self._error(source, f"code and data exceed {MAX_OUTPUT_BYTES >> 20} MiB")

    def _emit_repeated(self, unit: bytes, count: int, source: SourceLine) -> None:
        """``count`` copies of ``unit``; in a nobits section only the size grows (no bytes are kept)."""
        if self.section.nobits and any(unit):
            raise self._error(source, f"non-zero data in nobits section '{self.section.name}'")
        self._charge_output(len(unit) * count, source)
        if self.section.nobits:
            if len(self.section.current.data) + len(unit) * count > USER_ADDRESS_LIMIT:
                raise self._error(source, f"section '{self.section.name}' does not fit in the user address space")
            self.section.current.data.grow(len(unit) * count)
        else:
            self.section.current.data += unit * count

    def _emit_value(self, node: tuple, width: int, source: SourceLine) -> None:
        """A data value: bytes now if known, else a fixup."""
        value = self._known(node, source)
        if isinstance(value, int):
            self._emit((value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"), source)
            return
        if self.section.nobits:
            raise self._error(source, f"relocatable data in nobits section '{self.section.name}'")
        frag = self.section.current
        frag.fixups.append(_Fixup(len(frag.data), width, node, source))
        frag.data += bytes(width)

    # ---- sections ----------------------------------------------------------------

    def _get_section(self, name: str, flags: str | None = None, nobits: bool | None = None) -> _Section:
        section = self.sections.get(name)
        if section is None:
            default_flags, default_nobits = _default_flags(name)
            section = _Section(name, default_flags if flags is None else flags,
                               default_nobits if nobits is None else nobits)
            self.sections[name] = section
        return section

    def _switch_section(self, section: _Section) -> None:
        if section is not self.section:
            self.previous_section = self.section
            self.section = section

    # ---- directives --------------------------------------------------------------

    @staticmethod
    def _directive_simple_section(name: str):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            if rest.strip() and self._absolute(rest, source, "subsection") != 0:
                raise self._error(source, "subsections are not supported")
            self._switch_section(self._get_section(name))
        return handler

    def _directive_section(self, rest: str, source: SourceLine) -> None:
        parts = [part.strip() for part in split_top_level(rest)]
        if not parts or not parts[0]:
            raise self._error(source, "missing section name")
        name = _unquote(parts[0].split()[0])
        flags = nobits = None
        if len(parts) > 1:
            flag_text = _unquote(parts[1])
            unknown = set(flag_text) - set("awxMSGTRoedy?")
            if unknown:
                raise self._error(source, f"unknown section flag '{sorted(unknown)[0]}'")
            flags = "".join(letter for letter in "awx" if letter in flag_text)
        if len(parts) > 2:
            section_type = parts[2].lstrip("@%").lower()
            if section_type not in ("progbits", "nobits", "note", "init_array", "fini_array",
                                    "preinit_array", "unwind"):
                raise self._error(source, f"unknown section type '{parts[2]}'")
            nobits = section_type == "nobits"
        self._switch_section(self._get_section(name, flags, nobits))

    def _directive_pushsection(self, rest: str, source: SourceLine) -> None:
        self.section_stack.append((self.section, self.previous_section))
        self._directive_section(rest, source)

    def _directive_popsection(self, rest: str, source: SourceLine) -> None:
        if not self.section_stack:
            raise self._error(source, ".popsection without .pushsection")
        self.section, self.previous_section = self.section_stack.pop()

    def _directive_previous(self, rest: str, source: SourceLine) -> None:
        if self.previous_section is None:
            raise self._error(source, ".previous without a previous section")
        self.section, self.previous_section = self.previous_section, self.section

    def _directive_ignore(self, rest: str, source: SourceLine) -> None:
        pass

    def _directive_symbol_binding(self, rest: str, source: SourceLine) -> None:
        for name in split_top_level(rest):
            if not re.fullmatch(r"\s*[A-Za-z_.$][\w.$]*\s*", name):
                raise self._error(source, f"bad symbol name '{name.strip()}'")

    def _directive_set(self, rest: str, source: SourceLine, directive: str = ".set") -> None:
        name, comma, expression = rest.partition(",")
        if not comma:
            raise self._error(source, f"expected 'symbol, expression' after {directive}")
        self._set_symbol(name, expression, source, directive)

    @staticmethod
    def _directive_data(width: int):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            if not rest.strip():
                return
            for item in split_top_level(rest):
                if not item.strip():
                    raise self._error(source, "missing value")
                self._emit_value(self._parse_expression(item, source), width, source)
        return handler

    def _directive_octa(self, rest: str, source: SourceLine) -> None:
        for item in split_top_level(rest):
            value = self._absolute(item, source, ".octa")
            self._emit((value & ((1 << 128) - 1)).to_bytes(16, "little"), source)

    @staticmethod
    def _directive_leb128(signed: bool):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            for item in split_top_level(rest):
                value = self._absolute(item, source, ".sleb128" if signed else ".uleb128")
                # GNU as encodes the 64-bit value: -1 as .uleb128 is 2^64-1 (ten bytes).
                value = signed64(value) if signed else value & MASK64
                out = bytearray()
                while True:
                    byte = value & 0x7F
                    value >>= 7
                    done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40) if signed \
                        else value == 0
                    out.append(byte if done else byte | 0x80)
                    if done:
                        break
                self._emit(bytes(out), source)
        return handler

    @staticmethod
    def _directive_float(fmt: str):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            for item in split_top_level(rest):
                text = item.strip()
                text = re.sub(r"^0[dDfFeErR]", "", text)
                try:
                    number = float(text)
                except ValueError:
                    raise self._error(source, f"bad floating-point number '{item.strip()}'") from None
                self._emit(struct.pack(fmt, number), source)
        return handler

    @staticmethod
    def _directive_string(terminator: bytes):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            for item in split_top_level(rest):
                item = item.strip()
                if len(item) < 2 or item[0] != '"' or item[-1] != '"':
                    raise self._error(source, f"expected a string, got '{item}'")
                self._emit(unescape(item[1:-1]) + terminator, source)
        return handler

    def _directive_skip(self, rest: str, source: SourceLine) -> None:
        parts = split_top_level(rest)
        count = self._absolute(parts[0], source, ".skip")
        fill = self._absolute(parts[1], source, ".skip") if len(parts) > 1 else 0
        if not 0 <= count <= MAX_REPEAT_COUNT * 64:
            raise self._error(source, f"bad .skip size {count}")
        self._emit_repeated(bytes([fill & 0xFF]), count, source)

    def _directive_fill(self, rest: str, source: SourceLine) -> None:
        parts = split_top_level(rest)
        repeat = self._absolute(parts[0], source, ".fill")
        size = self._absolute(parts[1], source, ".fill") if len(parts) > 1 and parts[1].strip() else 1
        value = self._absolute(parts[2], source, ".fill") if len(parts) > 2 and parts[2].strip() else 0
        if not 0 <= repeat <= MAX_REPEAT_COUNT or size < 0:
            raise self._error(source, f"bad .fill repeat count {repeat}")
        # GNU as: each copy comes from an 8-byte number whose upper 4 bytes are zero.
        unit = ((value & 0xFFFFFFFF).to_bytes(8, "little"))[:min(size, 8)]
        self._emit_repeated(unit, repeat, source)

    @staticmethod
    def _directive_align(kind: str):
        """.balign/.align (bytes), .p2align (power of two); the *w/*l forms fill with 2/4-byte values."""
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            parts = split_top_level(rest) if rest.strip() else [""]
            if not parts[0].strip():
                raise self._error(source, f"{kind} needs an alignment")
            amount = self._absolute(parts[0], source, kind)
            if kind.startswith(".p2align"):
                if not 0 <= amount <= 16:
                    raise self._error(source, f"bad alignment {amount}")
                boundary = 1 << amount
            else:
                boundary = amount or 1
                if boundary & (boundary - 1) or boundary < 0:
                    raise self._error(source, f"alignment {boundary} is not a power of 2")
                if boundary > 1 << 16:
                    raise self._error(source, f"alignment {boundary} is too large")
            fill_width = 2 if kind.endswith("w") else 4 if kind.endswith("l") else 1
            fill = None
            if len(parts) > 1 and parts[1].strip():
                fill_value = self._absolute(parts[1], source, kind)
                fill = (fill_value & ((1 << (8 * fill_width)) - 1)).to_bytes(fill_width, "little")
            max_skip = self._absolute(parts[2], source, kind) if len(parts) > 2 and parts[2].strip() else None
            if boundary <= 1:
                return
            section = self.section
            section.alignment = max(section.alignment, boundary)
            if section.nobits and fill and any(fill):
                raise self._error(source, f"non-zero fill in nobits section '{section.name}'")
            section.close_frag(_Align(boundary, fill, max_skip, code="x" in section.flags, source=source))
        return handler

    @staticmethod
    def _directive_comm(local: bool):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            parts = [part.strip() for part in split_top_level(rest)]
            if len(parts) < 2:
                raise self._error(source, "expected 'symbol, size'")
            name = parts[0]
            size = self._absolute(parts[1], source, ".comm")
            if size < 0:
                return      # GNU as: "size (-1) out of range, ignored" (a warning)
            self.common_bytes += size
            if self.common_bytes >= USER_ADDRESS_LIMIT:
                raise self._error(source, f"size of '{name}' ({size:#x}) does not fit in the user address space")
            if len(parts) > 2 and parts[2]:
                alignment = self._absolute(parts[2], source, ".comm")
            elif local:
                alignment = min(8, 1 << (max(size, 1).bit_length() - 1))   # GNU as: pow2 <= size, at most 8
            else:
                alignment = min(16, 1 << (max(size, 1) - 1).bit_length())  # GNU as: pow2 >= size, at most 16
            if name in self.symbols:
                raise self._error(source, f"symbol '{name}' is already defined")
            (self.local_commons if local else self.commons).append((name, size, max(alignment, 1), source))
            # Reserve the name now; it gets its place once .bss is complete.
            self.symbols[name] = _Symbol(name, "expression", source, node=("num", 0))
        return handler

    @staticmethod
    def _directive_syntax(syntax: str):
        def handler(self: "Assembler", rest: str, source: SourceLine) -> None:
            self.syntax = syntax
        return handler

    def _directive_code(self, rest: str, source: SourceLine) -> None:
        raise self._error(source, "only 64-bit code is supported")

    def _directive_end(self, rest: str, source: SourceLine) -> None:
        self.ended = True

    def _directive_exitm(self, rest: str, source: SourceLine) -> None:
        if self.macro_depth == 0:
            return          # GNU as: "ignoring macro exit outside a macro definition" (a warning)
        raise _MacroExit

    def _directive_purgem(self, rest: str, source: SourceLine) -> None:
        self.macros.pop(rest.strip().lower(), None)

    def _directive_error(self, rest: str, source: SourceLine) -> None:
        raise self._error(source, _unquote(rest.strip()) or ".error directive invoked")

    def _directive_include(self, rest: str, source: SourceLine) -> None:
        path = self._find_file(_unquote(rest.strip()), source)
        size_bytes = self._regular_file_size(path, source)
        self.charge_source(size_bytes, source, f".include \"{path}\"")
        try:
            text = read_regular_file(path, 0, size_bytes).decode()
        except (OSError, UnicodeDecodeError) as error:
            raise self._error(source, f"cannot read '{path}': {error}") from None
        self._nested(source, split_statements(text, path))

    def _directive_incbin(self, rest: str, source: SourceLine) -> None:
        parts = split_top_level(rest)
        path = self._find_file(_unquote(parts[0].strip()), source)
        file_bytes = self._regular_file_size(path, source)
        skip = self._absolute(parts[1], source, ".incbin") if len(parts) > 1 and parts[1].strip() else 0
        count = self._absolute(parts[2], source, ".incbin") if len(parts) > 2 else file_bytes - skip
        # GNU as (s_incbin) checks the range against the file's size before reading anything.
        if skip < 0 or count < 0 or skip + count > file_bytes:
            raise self._error(source, f"skip ({skip}) or count ({count}) invalid for file size ({file_bytes})")
        self._charge_output(count, source)
        try:
            data = read_regular_file(path, skip, count)
        except OSError as error:
            raise self._error(source, f"cannot read '{path}': {error.strerror}") from None
        self._emit(data, source)

    def _regular_file_size(self, path: str, source: SourceLine) -> int:
        try:
            return regular_file_size(path)
        except OSError as error:
            raise self._error(source, f"cannot read '{path}': {error.strerror}") from None

    def _find_file(self, name: str, source: SourceLine) -> str:
        candidates = [name] if os.path.isabs(name) else \
            [os.path.join(os.path.dirname(source.filename), name)] + \
            [os.path.join(directory, name) for directory in self.include_dirs] + [name]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise self._error(source, f"cannot find file '{name}'")

    # ---- instructions ------------------------------------------------------------

    def _instruction(self, source: SourceLine, text: str) -> None:
        prefix = bytearray()
        words = text.split(None, 1)
        mnemonic, operand_text = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        while mnemonic in _PREFIX_BYTES:
            prefix.append(_PREFIX_BYTES[mnemonic])
            if not operand_text:
                # A prefix alone ("lock" then the instruction on the next statement).
                self._emit_code(bytes(prefix), source)
                return
            words = operand_text.split(None, 1)
            mnemonic, operand_text = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        if not _MNEMONIC.fullmatch(mnemonic):
            # Never hand keystone a statement that does not start with a
            # mnemonic: keystone 0.9.2 loops forever on some (measured: a
            # statement "999999999999999999" never returns).
            raise self._error(source, f"unknown mnemonic '{mnemonic}'")
        if self.section.nobits:
            raise self._error(source, f"instruction in nobits section '{self.section.name}'")
        syntax = self.syntax

        encoder = EXTRA_ENCODERS.get(mnemonic)
        if encoder is not None:
            self._extension(source, bytes(prefix), mnemonic, operand_text, encoder)
            return
        if mnemonic in _FIXED_ENCODINGS and not operand_text:
            self._emit_code(_with_prefixes(_FIXED_ENCODINGS[mnemonic], prefix), source)
            return

        try:
            operands = [_parse_operand(item, syntax) for item in split_top_level(operand_text)] \
                if operand_text else []
        except ExpressionError as error:
            raise self._error(source, f"{error} in '{text}'") from None

        if mnemonic == "push" and len(operands) == 1 and operands[0].kind == "imm":
            # keystone turns a value past imm32 into pushw of its low half; GNU as refuses it.
            value = self._known(self._parse_expression(operands[0].expr, source), source)
            if isinstance(value, int) and not -(1 << 31) <= signed64(value) < 1 << 31:
                raise self._error(source, f"operand size mismatch for `push' in '{text}'")
        if len(operands) == 1 and operands[0].kind == "expr" and not operands[0].star:
            target_text = re.sub(r"^(short|near(\s+ptr)?)\s+", "", operands[0].expr, flags=re.IGNORECASE) \
                if syntax == "intel" else operands[0].expr
            if mnemonic in _RELAXABLE_JUMPS or mnemonic in _CALLS or mnemonic in _LOOPS:
                self._branch(source, bytes(prefix), mnemonic, target_text)
                return

        code, fixups = self._encode_instruction(source, text, mnemonic, operands, syntax)
        code = bytes(code)
        for byte in prefix:
            code, inserted_at = _insert_prefix(code, byte)
            fixups = [(offset + 1 if offset >= inserted_at else offset, width, node, kind)
                      for offset, width, node, kind in fixups]
        self._charge_output(len(code), source)
        frag = self.section.current
        start = len(frag.data)
        frag.data += code
        for offset, width, node, kind in fixups:
            frag.fixups.append(_Fixup(start + offset, width, node, source,
                                      pcrel_end=start + len(code) if kind == "rip" else None,
                                      signed_only=kind in ("disp", "rip", "absolute")))

    def _emit_code(self, code: bytes, source: SourceLine) -> None:
        if self.section.nobits:
            raise self._error(source, f"instruction in nobits section '{self.section.name}'")
        self._charge_output(len(code), source)
        self.section.current.data += code

    def _branch(self, source: SourceLine, prefix: bytes, mnemonic: str, target_text: str) -> None:
        target = self._parse_expression(target_text, source)
        frag = self.section.current
        if mnemonic in _RELAXABLE_JUMPS:
            short_opcode, long_opcode = _RELAXABLE_JUMPS[mnemonic]
            self.section.close_frag(_Jump(short_opcode, long_opcode, prefix, target, source))
            return
        # call is always rel32, loop/jrcxz always rel8: fixed size, a fixup.
        opcode = _CALLS.get(mnemonic) or _LOOPS[mnemonic]
        width = 4 if mnemonic in _CALLS else 1
        frag.data += prefix + opcode + bytes(width)
        frag.fixups.append(_Fixup(len(frag.data) - width, width, target, source,
                                  pcrel_end=len(frag.data), signed_only=True))

    def _extension(self, source: SourceLine, prefix: bytes, mnemonic: str, operands: str,
                   encoder: ExtraEncoder) -> None:
        if prefix:
            self._emit_code(prefix, source)
        self.hidden_counter += 1
        dot_symbol = f"\x02ext{self.hidden_counter}"
        self.symbols[dot_symbol] = _Symbol(dot_symbol, "label", source, place=self._here())
        frozen = self._freeze_operands(operands, source, dot_symbol)
        self.section.close_frag(_Extension(mnemonic, frozen, self.syntax, source, encoder, dot_symbol))

    def _freeze_operands(self, operands: str, source: SourceLine, dot_symbol: str) -> str:
        """Bind absolute symbols, numeric labels and "." to what they mean here."""
        def replace(match: re.Match) -> str:
            word = match.group(0)
            if re.fullmatch(r"\d+[bf]", word):
                number, direction = word[:-1], word[-1]
                count = self.local_label_counts.get(number, 0) + (1 if direction == "f" else 0)
                return _local_label_name(number, count)
            if word == ".":
                return dot_symbol
            symbol = self.symbols.get(word)
            if symbol is not None and symbol.kind == "absolute" and not _is_register(word):
                return _hex(symbol.value)
            return word
        pieces = re.split(r'("(?:[^"\\]|\\.)*")', operands)
        return "".join(piece if piece.startswith('"') else
                       re.sub(r"(?<![\w.%])(\d+[bf]|[A-Za-z_.][\w.$]*)(?![\w.$])", replace, piece)
                       for piece in pieces)

    def _encode_instruction(self, source: SourceLine, text: str, mnemonic: str,
                            operands: list[_OperandText], syntax: str):
        """Keystone bytes for one instruction, and its fixups (offset, width, node, kind)."""
        holes: list[_Hole] = []
        pieces: list = []          # str, or an int index into holes
        segment_move = any(op.kind == "reg" and op.register in _SEGMENT_REGISTERS for op in operands) \
            and mnemonic.startswith("mov")
        nop_with_operand = mnemonic in ("nop", "nopw", "nopl", "nopq") and bool(operands)

        # keystone 0.9.2 does not know "movsxd" in AT&T mode (Intel is fine):
        # GNU as takes it as "movslq".
        if syntax == "att" and mnemonic == "movsxd":
            mnemonic = "movslq"
        # keystone (Intel mode) does not know the string forms of movsd/cmpsd
        # (no operands): the AT&T engine knows them as movsl/cmpsl.
        if syntax == "intel" and mnemonic in ("movsd", "cmpsd") and not operands:
            syntax, mnemonic = "att", mnemonic[:-1] + "l"
        # keystone does not know "nopq" (nopl with REX.W, added below).
        keystone_mnemonic = "nopl" if mnemonic == "nopq" else mnemonic

        try:
            for position, operand in enumerate(operands):
                if position:
                    pieces.append(", ")
                self._operand_pieces(operand, mnemonic, syntax, pieces, holes, source)
        except ExpressionError as error:
            raise self._error(source, f"{error} in '{text}'") from None

        # keystone 0.9.2, AT&T mode, mis-selects "mov $imm, %r64": it always
        # emits the 10-byte movabs (48 b8 imm64), where GNU as emits 48 c7 c0
        # imm32 whenever the value fits in a sign-extended 32-bit field (and
        # for a relocated value).  The explicit "movq" gets the GNU form.
        if (syntax == "att" and mnemonic == "mov" and len(operands) == 2 and operands[0].kind == "imm"
                and operands[1].kind == "reg" and operands[1].register in _GPR64):
            immediate = pieces[1]           # pieces: "$", value or hole index, ", ", register
            value = None if isinstance(immediate, int) else _immediate_value(immediate)
            if value is None or -(1 << 31) <= value < (1 << 31):
                keystone_mnemonic = "movq"
        if mnemonic.startswith("movabs"):
            for hole in holes:
                hole.widths = (8,)

        def render(values: list[int]) -> str:
            parts = []
            for piece in pieces:
                if isinstance(piece, int):
                    parts.append(_hex(values[piece]))
                else:
                    parts.append(piece)
            operand_text = "".join(parts)
            return f"{keystone_mnemonic} {operand_text}".strip()

        try:
            code, located = self._locate_holes(render, holes, syntax)
        except ExpressionError as error:
            message = str(error)
            if message.startswith("unknown mnemonic"):
                raise self._error(source, f"unknown mnemonic '{mnemonic}'") from None
            if message.startswith("invalid operands"):
                raise self._error(source, f"invalid operands for '{mnemonic}' in '{text}'") from None
            raise self._error(source, f"{message} in '{text}'") from None
        code = bytearray(code)

        fixups = []
        for hole, (offset, width) in zip(holes, located):
            if hole.kind == "absolute":
                # keystone 0.9.2 mis-encodes an absolute memory operand (no base,
                # no index): "mov 0x1000, %rbx" comes out RIP-relative
                # (48 8b 1d ...) -- silently wrong -- and with the accumulator it
                # picks the moffs64 form (a1 + 8-byte address).  GNU as emits
                # ModRM + SIB "no base, no index" + disp32.  We encoded the
                # operand with a dummy index register (rbx*2) to force the SIB
                # form, and now turn the SIB into 0x25 (index none, base none).
                modrm, sib = code[offset - 2], code[offset - 1]
                if (modrm & 0xC7) != 0x04 or (sib & 0x07) != 0x05:
                    raise self._error(source, f"cannot encode absolute memory operand in '{text}'")
                code[offset - 1] = 0x25
                if hole.known is not None:
                    code[offset:offset + width] = _field_bytes(hole.known, width, True, source,
                                                               "displacement")
                    continue
            fixups.append((offset, width, hole.node, hole.kind))

        if nop_with_operand:
            # keystone 0.9.2 encodes "nop r/m" (nopw/nopl with an operand) as
            # 0f 18 /4, a prefetch hint -- silently different bytes from the
            # architectural multi-byte NOP 0f 1f /0 that GNU as emits.
            position = code.find(b"\x0f\x18")
            if position < 0 or (code[position + 2] >> 3) & 7 != 4:
                raise self._error(source, f"cannot encode '{text}'")
            code[position + 1] = 0x1F
            code[position + 2] &= 0xC7
            if mnemonic == "nopq":
                code, shift = _set_rex_w(code, position)
                fixups = [(offset + shift, width, node, kind) for offset, width, node, kind in fixups]

        if (mnemonic in ("xchg", "xchgq") and len(operands) == 2
                and all(op.kind == "reg" and op.register == "rax" for op in operands)):
            # keystone 0.9.2 encodes "xchg %rax, %rax" as 48 90; GNU as emits
            # the one-byte 90 (the same no-op).
            code = bytearray(b"\x90")

        if segment_move:
            # keystone 0.9.2 adds an operand-size prefix to moves to/from a
            # segment register (66 8e d8 for "mov %ax, %ds"; 48 8c d8 for
            # "mov %ds, %rax") that GNU as leaves out; only a 16-bit general
            # register destination keeps the 0x66.
            destination = operands[-1] if syntax == "att" else operands[0]
            keep_66 = destination.kind == "reg" and destination.register in _GPR16
            code, shift = _strip_segment_move_prefixes(code, keep_66)
            fixups = [(offset - shift, width, node, kind) for offset, width, node, kind in fixups]
        return bytes(code), fixups

    def _operand_pieces(self, operand: _OperandText, mnemonic: str, syntax: str, pieces: list,
                        holes: list[_Hole], source: SourceLine) -> None:
        """Append ``operand`` as keystone text, with holes for values not known yet."""
        att = syntax == "att"

        def value_or_hole(expression: str, kind: str):
            node = self._parse_expression(expression, source)
            value = self._known(node, source)
            if isinstance(value, int):
                if kind in ("rip", "disp") and not -(1 << 31) <= signed64(value) < 1 << 31:
                    raise ExpressionError(f"{_hex(value)} out of range of signed 32bit displacement")
                return _hex(value)           # for "rip" too: a number is a plain displacement
            holes.append(_Hole(node, kind, widths=(4,) if kind != "imm" else (4, 2, 1)))
            return len(holes) - 1

        if operand.kind == "reg":
            pieces.append(("*" if operand.star else "") + ("%" if att else "") + operand.register)
            return
        if operand.kind == "expr" and not att:
            # GNU Intel syntax: a bare "symbol + constant" whose symbol is not
            # an absolute value known here (a label, a forward reference) is a
            # memory reference; anything else (a number, a difference of
            # labels) is an immediate.
            if self._names_memory(self._parse_expression(operand.expr, source)):
                operand = _OperandText("mem", expr=operand.expr)
            else:
                operand = _OperandText("imm", expr=operand.expr)
        if operand.kind == "imm":
            piece = value_or_hole(operand.expr, "imm")
            if att:
                pieces.append("$")
            pieces.append(piece)
            return
        # Memory (AT&T "expr" is an absolute memory reference too).
        base, index = operand.base, operand.index
        for register in (base, index):
            if register and register not in _REGISTERS:
                raise ExpressionError(f"bad register '{register}'")
        if operand.scale:
            scale = self._absolute(operand.scale, source, "scale")
            if scale not in (1, 2, 4, 8):
                raise ExpressionError(f"scale factor {scale} is not 1, 2, 4 or 8")
            operand = _replace(operand, scale=str(scale))
        if base in ("eip",):
            # keystone silently drops the EIP base ("lea (%eip), %eax" -> 8d 00).
            raise ExpressionError("EIP-relative addressing is not supported")
        if base == "rip":
            disp = value_or_hole(operand.expr, "rip") if operand.expr else "0x0"
            self._memory_pieces(operand, disp, syntax, pieces)
            return
        if not base and not index and not mnemonic.startswith("movabs"):
            # Absolute address: always through a hole, see _encode_instruction.
            node = self._parse_expression(operand.expr or "0", source)
            value = self._known(node, source)
            known = value if isinstance(value, int) else None
            holes.append(_Hole(node, "absolute", known=known, widths=(4,)))
            forced = _replace(operand, index="rbx", scale="2")
            self._memory_pieces(forced, len(holes) - 1, syntax, pieces)
            return
        if not operand.expr:
            self._memory_pieces(operand, "", syntax, pieces)
            return
        disp = value_or_hole(operand.expr, "moffs" if mnemonic.startswith("movabs") else "disp")
        self._memory_pieces(operand, disp, syntax, pieces)

    def _names_memory(self, node: tuple) -> bool:
        while node[0] == "binary" and node[1] in "+-" and node[3][0] == "num":
            node = node[2]
        if node[0] == "binary" and node[1] == "+" and node[2][0] == "num":
            return self._names_memory(node[3])
        if node[0] == "dot":
            return True
        if node[0] != "sym":
            return False
        symbol = self.symbols.get(node[1])
        return symbol is None or symbol.kind == "label"

    @staticmethod
    def _memory_pieces(operand: _OperandText, disp, syntax: str, pieces: list) -> None:
        """Memory operand text around a displacement that may be a hole index."""
        marker = "\x00"
        text = _render_memory(operand, marker if isinstance(disp, int) else disp, syntax)
        if isinstance(disp, int):
            before, _, after = text.partition(marker)
            pieces.extend([before, disp, after])
        else:
            pieces.append(text)

    def _locate_holes(self, render: Callable[[list[int]], str], holes: list[_Hole], syntax: str):
        """Encode with placeholders; find each hole's (offset, width) by varying it alone.

        A hole first gets its widest placeholder (the 32-bit field GNU as uses
        for a value it does not know yet); an instruction whose field is
        narrower (imm8 of "shl", imm16 of "ret") rejects or truncates it, and
        the next width is tried.
        """
        choice = [0] * len(holes)
        for _attempt in range(1 + 3 * len(holes)):
            widths = [hole.widths[choice[k]] for k, hole in enumerate(holes)]
            base_values = [_PLACEHOLDERS[width][0] for width in widths]
            try:
                code = self.keystone.encode(render(base_values), syntax)
            except ExpressionError:
                if not self._narrow(holes, choice):
                    raise
                continue
            located = []
            retry = False
            for k, width in enumerate(widths):
                values = list(base_values)
                values[k] = _PLACEHOLDERS[width][1]
                try:
                    other = self.keystone.encode(render(values), syntax)
                except ExpressionError:
                    other = b""
                differing = [i for i in range(min(len(code), len(other))) if code[i] != other[i]]
                if (len(other) == len(code) and len(differing) == width
                        and differing[-1] - differing[0] == width - 1):
                    located.append((differing[0], width))
                    continue
                if choice[k] + 1 < len(holes[k].widths):
                    choice[k] += 1
                    retry = True
                    break
                raise ExpressionError("cannot encode this operand with a symbolic value")
            if not retry:
                return code, located
        raise ExpressionError("cannot encode this operand with a symbolic value")

    @staticmethod
    def _narrow(holes: list[_Hole], choice: list[int]) -> bool:
        for k, hole in enumerate(holes):
            if choice[k] + 1 < len(hole.widths):
                choice[k] += 1
                return True
        return False

    # ---- layout ------------------------------------------------------------------

    def finish(self) -> Assembly:
        self._place_commons()
        ordered = self._ordered_sections()
        self._layout(ordered)
        return self._emit_image(ordered)

    def _place_commons(self) -> None:
        """.lcomm then .comm symbols go after everything else in .bss (as GNU as and ld put them)."""
        if not (self.local_commons or self.commons):
            return
        bss = self._get_section(".bss")
        for name, size, alignment, source in self.local_commons + self.commons:
            bss.alignment = max(bss.alignment, alignment)
            if alignment > 1:
                bss.close_frag(_Align(alignment, None, None, code=False))
            self.symbols[name] = _Symbol(name, "label", source, place=_Place(bss.current, len(bss.current.data)))
            bss.current.data.grow(size)

    def _ordered_sections(self) -> list[_Section]:
        """Code first (.text leading), then read-only data, data, and bss."""
        allocated = [section for section in self.sections.values() if "a" in section.flags]

        def rank(section: _Section) -> tuple[int, int]:
            if section.nobits:
                group = 3
            elif "x" in section.flags:
                group = 0
            elif "w" not in section.flags:
                group = 1
            else:
                group = 2
            canonical = section.name in (".text", ".rodata", ".data", ".bss")
            return (group, 0 if canonical else 1)
        return sorted(allocated, key=rank)       # stable: first use order within a rank

    def _assign_addresses(self, ordered: list[_Section]) -> None:
        address = TEXT_BASE
        for section in ordered:
            alignment = max(PAGE_SIZE_BYTES, section.alignment)
            address = -(-address // alignment) * alignment
            section.address = address
            for frag in section.frags:
                frag.address = address
                address += len(frag.data)
                frag.tail_size = frag.tail.size(address) if frag.tail is not None else 0
                address += frag.tail_size
            section.size = address - section.address
            if address > USER_ADDRESS_LIMIT:
                # ld's "will not fit in region": the program could not be mapped below TASK_SIZE.
                raise self._error(self.current_source, f"section '{section.name}' ({section.size:#x} bytes) "
                                                       "does not fit in the user address space")

    def _layout(self, ordered: list[_Section]) -> None:
        for _pass in range(MAX_LAYOUT_PASSES):
            self._assign_addresses(ordered)
            changed = False
            for section in ordered:
                for frag in section.frags:
                    tail = frag.tail
                    if isinstance(tail, _Jump) and not tail.long:
                        target = self._layout_value(tail.target, tail.source)
                        start = frag.address + len(frag.data)
                        if not isinstance(target, _Place) or target.frag.section is not section:
                            tail.long = True        # GNU as: another section, or absolute -> rel32
                        else:
                            displacement = target.address - (start + tail.size(start))
                            tail.long = not -128 <= displacement <= 127
                        changed |= tail.long
                    elif isinstance(tail, _Extension):
                        start = frag.address + len(frag.data)
                        size = len(self._encode_extension(tail, start))
                        if size != tail.current_size:
                            tail.current_size = size
                            changed = True
            if not changed:
                return
        raise AssemblyError(self.filename, 1, "layout does not converge")

    def _encode_extension(self, tail: _Extension, address: int) -> bytes:
        def resolve(expression: str) -> int:
            dot_place = self.symbols[tail.dot_symbol].place
            node = self._parse_expression(expression, tail.source, dot=dot_place)
            return self._final_value(node, tail.source)
        try:
            code = tail.encoder(tail.operands, tail.syntax, address, resolve)
        except AssemblyError:
            raise
        except Exception as error:      # the encoder's own one-line message
            raise self._error(tail.source, f"{error} in '{tail.mnemonic} {tail.operands}'") from None
        return bytes(code)

    # ---- output ------------------------------------------------------------------

    def _emit_image(self, ordered: list[_Section]) -> Assembly:
        assembled = []
        segments = []
        for section in ordered:
            data = bytearray()
            for frag in [] if section.nobits else section.frags:   # a nobits section has no bytes
                chunk = bytearray(frag.data)
                for fixup in frag.fixups:
                    value = self._final_value(fixup.node, fixup.source)
                    if fixup.pcrel_end is not None:
                        value -= frag.address + fixup.pcrel_end
                    chunk[fixup.offset:fixup.offset + fixup.width] = _field_bytes(
                        value, fixup.width, fixup.signed_only or fixup.pcrel_end is not None, fixup.source,
                        "branch target" if fixup.pcrel_end is not None and fixup.width == 1 else "value")
                data += chunk
                data += self._tail_bytes(frag)
            if not section.size:
                continue
            assembled.append(AssembledSection(section.name, section.address, b"" if section.nobits else bytes(data),
                                              section.size, section.flags, section.nobits))
            prot = PROT_READ | (PROT_WRITE if "w" in section.flags else 0) | (PROT_EXEC if "x" in section.flags else 0)
            segments.append(Segment(section.address, b"" if section.nobits else bytes(data), section.size, prot))
        if not segments:
            raise AssemblyError(self.filename, 1, "nothing to run: no code or data")
        symbols = {}
        for name, symbol in self.symbols.items():
            if symbol.kind == "label" and not name.startswith("\x02"):
                symbols[name] = symbol.place.address
        start = self.symbols.get("_start")
        if start is not None and start.kind == "label":
            entry = start.place.address
        else:
            text = self.sections.get(".text")
            entry = text.address if text is not None and text.size else segments[0].vaddr
        image = ProgramImage(path=self.filename, entry=entry, segments=segments, symbols=symbols)
        return Assembly(image, assembled)

    def _tail_bytes(self, frag: _Frag) -> bytes:
        tail = frag.tail
        if tail is None:
            return b""
        start = frag.address + len(frag.data)
        if isinstance(tail, _Align):
            size = frag.tail_size
            if tail.fill is not None:
                if size % len(tail.fill):
                    raise self._error(tail.source, f"alignment padding ({size} bytes) is not a multiple of "
                                                   f"{len(tail.fill)}")
                return (tail.fill * (size // len(tail.fill) + 1))[:size]
            return _code_padding(size) if tail.code else bytes(size)
        if isinstance(tail, _Jump):
            target = _address(self._layout_value(tail.target, tail.source))
            end = start + frag.tail_size
            displacement = target - end
            if tail.long:
                return tail.prefix + tail.long_opcode + _field_bytes(displacement, 4, True, tail.source,
                                                                     "branch target")
            return tail.prefix + tail.short_opcode + _field_bytes(displacement, 1, True, tail.source,
                                                                  "branch target")
        code = self._encode_extension(tail, start)
        if len(code) != frag.tail_size:
            raise self._error(tail.source, f"size of '{tail.mnemonic}' changed after layout")
        return code


# ---- helpers used by the assembler --------------------------------------------------

_MNEMONIC = re.compile(r"[a-z][a-z0-9]*(?:\.[a-z0-9]+)?")
_LABEL = re.compile(r"([A-Za-z_.$][\w.$]*|\d+)\s*:(?![:=])\s*")
_ASSIGNMENT = re.compile(r"([A-Za-z_.$][\w.$]*)\s*=(?!=)\s*(.+)$")
_CONDITIONALS = (".if", ".ifdef", ".ifndef", ".ifnotdef", ".ifeq", ".ifne", ".ifgt", ".ifge", ".iflt", ".ifle",
                 ".ifb", ".ifnb", ".ifc", ".ifnc", ".ifeqs", ".ifnes")
_BLOCK_KINDS = {".macro": ((".macro",), ".endm"),
                ".rept": ((".rept", ".irp", ".irpc"), ".endr"),
                ".irp": ((".rept", ".irp", ".irpc"), ".endr"),
                ".irpc": ((".rept", ".irp", ".irpc"), ".endr")}
_BLOCK_KINDS.update({name: (_CONDITIONALS, ".endif") for name in _CONDITIONALS})
_BLOCK_OPENERS = frozenset(_BLOCK_KINDS)
_BLOCK_CLOSERS = frozenset((".endm", ".endmacro", ".endr", ".endif", ".else", ".elseif"))


def _head(text: str) -> tuple[str, str]:
    words = text.split(None, 1)
    if not words:
        return "", ""
    return words[0].lower(), (words[1].strip() if len(words) > 1 else "")


def _strip_labels(text: str) -> str:
    while True:
        match = _LABEL.match(text)
        if not match:
            return text
        text = text[match.end():]


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _local_label_name(number: str, instance: int) -> str:
    """The hidden name of the ``instance``-th definition of numeric label ``number``."""
    return f"\x02L{number}\x02{instance}"


def _substitute_parameters(text: str, values: dict[str, str], counter: str | None) -> str:
    """Macro/.irp parameter substitution: \\name, \\() (empty), \\@ (expansion counter)."""
    def replace(match: re.Match) -> str:
        word = match.group(1)
        if word == "()":
            return ""
        if word == "@":
            return counter if counter is not None else match.group(0)
        if word in values:
            return values[word]
        return match.group(0)
    return re.sub(r"\\(\(\)|@|[A-Za-z_][\w$]*)", replace, text)


def _address(value) -> int:
    return value.address if isinstance(value, _Place) else value


def _replace(operand: _OperandText, **changes) -> _OperandText:
    fields = dict(operand.__dict__)
    fields.update(changes)
    return _OperandText(**fields)


def _immediate_value(text: str) -> int | None:
    try:
        return int(text, 0) if not text.startswith("-") else -int(text[1:], 0)
    except ValueError:
        return None


def _field_bytes(value: int, width: int, signed_only: bool, source: SourceLine, what: str) -> bytes:
    bits = 8 * width
    low = -(1 << (bits - 1))
    high = (1 << (bits - 1)) if signed_only else (1 << bits)
    if width < 8 and not low <= value < high:
        raise AssemblyError(source.filename, source.line, f"{what} {_hex(value)} does not fit in {width} byte(s)")
    return (value & ((1 << bits) - 1)).to_bytes(width, "little")


def _legacy_prefix_length(code: bytes | bytearray) -> int:
    position = 0
    while position < len(code) and code[position] in _PREFIX_SLOT:
        position += 1
    return position


def _insert_prefix(code: bytes, byte: int) -> tuple[bytes, int]:
    """Insert a legacy prefix at its GNU-as slot; returns the code and the insertion offset.

    A prefix the encoding already has is not repeated ("addr32" on an operand
    that already made keystone emit 0x67), as GNU as does not repeat it.
    """
    if byte in code[:_legacy_prefix_length(code)]:
        return code, len(code) + 1          # nothing inserted: no offset moves
    slot = _PREFIX_SLOT[byte]
    position = 0
    while position < len(code) and code[position] in _PREFIX_SLOT and _PREFIX_SLOT[code[position]] <= slot:
        position += 1
    return code[:position] + bytes([byte]) + code[position:], position


def _with_prefixes(code: bytes, prefix: bytes | bytearray) -> bytes:
    for byte in prefix:
        code, _ = _insert_prefix(code, byte)
    return code


def _set_rex_w(code: bytearray, opcode_position: int) -> tuple[bytearray, int]:
    """Set REX.W on the instruction whose opcode starts at ``opcode_position``."""
    if opcode_position > 0 and 0x40 <= code[opcode_position - 1] <= 0x4F:
        code[opcode_position - 1] |= 0x08
        return code, 0
    return code[:opcode_position] + bytearray([0x48]) + code[opcode_position:], 1


def _strip_segment_move_prefixes(code: bytearray, keep_66: bool) -> tuple[bytearray, int]:
    removed = 0
    prefix_length = _legacy_prefix_length(code)
    if not keep_66 and 0x66 in code[:prefix_length]:
        position = code.index(0x66)
        code = code[:position] + code[position + 1:]
        prefix_length -= 1
        removed += 1
    if prefix_length < len(code) and 0x40 <= code[prefix_length] <= 0x4F and code[prefix_length] & 0x08:
        rex = code[prefix_length] & ~0x08
        if rex == 0x40:
            code = code[:prefix_length] + code[prefix_length + 1:]
            removed += 1
        else:
            code[prefix_length] = rex
    return code, removed


_DIRECTIVES: dict[str, Callable[[Assembler, str, SourceLine], None]] = {
    ".text": Assembler._directive_simple_section(".text"),
    ".data": Assembler._directive_simple_section(".data"),
    ".bss": Assembler._directive_simple_section(".bss"),
    # Not a GNU as directive (GNU as wants ".section .rodata"); accepted as a shorthand.
    ".rodata": Assembler._directive_simple_section(".rodata"),
    ".section": Assembler._directive_section,
    ".pushsection": Assembler._directive_pushsection,
    ".popsection": Assembler._directive_popsection,
    ".previous": Assembler._directive_previous,
    ".globl": Assembler._directive_symbol_binding,
    ".global": Assembler._directive_symbol_binding,
    ".local": Assembler._directive_symbol_binding,
    ".weak": Assembler._directive_symbol_binding,
    ".hidden": Assembler._directive_symbol_binding,
    ".protected": Assembler._directive_symbol_binding,
    ".internal": Assembler._directive_symbol_binding,
    ".extern": Assembler._directive_ignore,
    ".set": Assembler._directive_set,
    ".equ": Assembler._directive_set,
    ".equiv": lambda self, rest, source: Assembler._directive_set(self, rest, source, ".equiv"),
    ".eqv": Assembler._directive_set,
    ".byte": Assembler._directive_data(1),
    ".short": Assembler._directive_data(2),
    ".hword": Assembler._directive_data(2),
    ".word": Assembler._directive_data(2),
    ".value": Assembler._directive_data(2),
    ".2byte": Assembler._directive_data(2),
    ".long": Assembler._directive_data(4),
    ".int": Assembler._directive_data(4),
    ".4byte": Assembler._directive_data(4),
    ".quad": Assembler._directive_data(8),
    ".8byte": Assembler._directive_data(8),
    ".octa": Assembler._directive_octa,
    ".uleb128": Assembler._directive_leb128(False),
    ".sleb128": Assembler._directive_leb128(True),
    ".float": Assembler._directive_float("<f"),
    ".single": Assembler._directive_float("<f"),
    ".double": Assembler._directive_float("<d"),
    ".ascii": Assembler._directive_string(b""),
    ".asciz": Assembler._directive_string(b"\0"),
    ".string": Assembler._directive_string(b"\0"),
    ".zero": Assembler._directive_skip,
    ".skip": Assembler._directive_skip,
    ".space": Assembler._directive_skip,
    ".fill": Assembler._directive_fill,
    ".align": Assembler._directive_align(".balign"),       # bytes on x86 ELF
    ".balign": Assembler._directive_align(".balign"),
    ".balignw": Assembler._directive_align(".balignw"),
    ".balignl": Assembler._directive_align(".balignl"),
    ".p2align": Assembler._directive_align(".p2align"),
    ".p2alignw": Assembler._directive_align(".p2alignw"),
    ".p2alignl": Assembler._directive_align(".p2alignl"),
    ".comm": Assembler._directive_comm(False),
    ".lcomm": Assembler._directive_comm(True),
    ".intel_syntax": Assembler._directive_syntax("intel"),
    ".att_syntax": Assembler._directive_syntax("att"),
    ".code64": Assembler._directive_ignore,
    ".code32": Assembler._directive_code,
    ".code16": Assembler._directive_code,
    ".end": Assembler._directive_end,
    ".exitm": Assembler._directive_exitm,
    ".purgem": Assembler._directive_purgem,
    ".error": Assembler._directive_error,
    ".err": Assembler._directive_error,
    ".include": Assembler._directive_include,
    ".incbin": Assembler._directive_incbin,
    # Metadata that does not change the loaded bytes.
    ".type": Assembler._directive_ignore,
    ".size": Assembler._directive_ignore,
    ".file": Assembler._directive_ignore,
    ".ident": Assembler._directive_ignore,
    ".loc": Assembler._directive_ignore,
    ".arch": Assembler._directive_ignore,
    ".intel_mnemonic": Assembler._directive_ignore,
    ".att_mnemonic": Assembler._directive_ignore,
    ".warning": Assembler._directive_ignore,
    ".print": Assembler._directive_ignore,
    ".addrsig": Assembler._directive_ignore,
    ".addrsig_sym": Assembler._directive_ignore,
}


# ---------------------------------------------------------------------------
# Public API.

def _preprocess(text: str, filename: str) -> str:
    """Run the C preprocessor, keeping line markers (errors map back to the source)."""
    compiler = shutil.which("gcc") or shutil.which("gcc", path="/usr/local/bin:/usr/bin:/bin")
    if compiler is None:
        raise AssemblyError(filename, 1, "the C preprocessor (gcc) is needed for .S sources")
    directory = os.path.dirname(os.path.abspath(filename))
    command = [compiler, "-E", "-x", "assembler-with-cpp", "-I", directory, "-I", str(INCLUDE_DIR), "-"]
    # gcc finds cc1 through PATH; a guest-style environment may not have one.
    environment = dict(os.environ, PATH=os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        # --timeout's SIGALRM handler raises wherever the run is: held back while
        # the child starts, so that it is raised below, where cpp gets killed.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _RUN_LIMIT_SIGNALS)
        try:
            # Its own process group: gcc runs cc1 as a child, and killing only the
            # driver would leave cc1 behind (blocked forever on an #include of a FIFO).
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=output, stderr=errors,
                                       env=environment, cwd=directory if os.path.isdir(directory) else None,
                                       preexec_fn=_limit_preprocessor, process_group=0)
        except OSError as error:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise AssemblyError(filename, 1, f"cannot run the C preprocessor: {error.strerror}") from None
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            try:
                process.communicate(text.encode(), timeout=PREPROCESSOR_WALL_SECONDS)
            except BrokenPipeError:          # cpp stopped reading (a fatal error early on)
                process.wait(timeout=PREPROCESSOR_WALL_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise AssemblyError(filename, 1, f"the C preprocessor did not finish within "
                                             f"{PREPROCESSOR_WALL_SECONDS} s") from None
        except BaseException:                # --timeout (WallClockTimeout) or ^C: cpp must not outlive us
            _kill_group(process)
            raise
        if process.returncode == -signal.SIGXFSZ:
            raise AssemblyError(filename, 1, f"the preprocessed source exceeds {MAX_SOURCE_BYTES >> 20} MiB")
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise AssemblyError(filename, 1, f"the C preprocessor ran past {PREPROCESSOR_CPU_SECONDS} s of CPU")
        output.seek(0)
        stdout = output.read().decode(errors="replace")
        errors.seek(0)
        stderr = errors.read(1 << 20).decode(errors="replace")
    if process.returncode != 0:
        first = next((line for line in stderr.splitlines()
                      if re.search(r"\berror\b", line)), None) \
            or next((line for line in stderr.splitlines() if line.strip()), "preprocessing failed")
        match = re.match(r"(.*?):(\d+):(?:\d+:)?\s*(?:fatal error|error):\s*(.*)$", first)
        if match:
            where = filename if match.group(1) == "<stdin>" else match.group(1)
            raise AssemblyError(where, int(match.group(2)), match.group(3))
        raise AssemblyError(filename, 1, first.replace("<stdin>", filename))
    return stdout


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the preprocessor's whole process group (the driver and cc1) and reap the driver,
    with the run limits' signal held back so that a second firing cannot cut this short."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _RUN_LIMIT_SIGNALS)
    try:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _limit_preprocessor() -> None:
    """In the cpp child: its output, memory and CPU are bounded as the assembler's own
    work is (an #include of /dev/zero or a macro that doubles 30 times ends in an error)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _RUN_LIMIT_SIGNALS)   # inherited from the parent's hold
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_SOURCE_BYTES, MAX_SOURCE_BYTES))
    resource.setrlimit(resource.RLIMIT_AS, (PREPROCESSOR_MEMORY_BYTES, PREPROCESSOR_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (PREPROCESSOR_CPU_SECONDS, PREPROCESSOR_CPU_SECONDS + 1))


def assemble(text: str, filename: str, syntax: str = "att", preprocess: bool = False) -> Assembly:
    """Assemble ``text`` (named ``filename`` in messages) into an image plus its sections."""
    if syntax not in ("att", "intel"):
        raise ValueError(f"syntax must be 'att' or 'intel', not {syntax!r}")
    if len(text) > MAX_SOURCE_BYTES:
        raise AssemblyError(filename, 1, f"the source exceeds {MAX_SOURCE_BYTES >> 20} MiB")
    if preprocess:
        text = _preprocess(text, filename)
    lines = split_statements(text, filename)
    include_dirs = [os.path.dirname(os.path.abspath(filename)), str(INCLUDE_DIR)]
    assembler = Assembler(filename, syntax, include_dirs, nasm_isms=syntax == "intel")
    try:
        assembler.run(lines)
        return assembler.finish()
    except LoadError:
        raise
    except RecursionError:
        where = assembler.current_source
        raise AssemblyError(where.filename, where.line, "expression or expansion nested too deeply") from None
    except Exception as error:
        # A bug of ours must still read as one line naming the statement.
        where = assembler.current_source
        raise AssemblyError(where.filename, where.line,
                            f"internal assembler error ({type(error).__name__}: {error})") from None


def assemble_source(text: str, filename: str, syntax: str = "att", preprocess: bool = False) -> ProgramImage:
    """Assemble ``text`` into a ProgramImage; bad input raises AssemblyError (one line)."""
    return assemble(text, filename, syntax, preprocess).image


def assemble_file(path: str) -> ProgramImage:
    """``.s`` (AT&T), ``.S`` (AT&T through cpp), ``.asm`` (Intel) -> ProgramImage."""
    if path.endswith(".S"):
        syntax, preprocess = "att", True
    elif path.endswith(".s"):
        syntax, preprocess = "att", False
    elif path.endswith(".asm"):
        syntax, preprocess = "intel", False
    else:
        raise LoadError(f"{path}: not an assembly source (.s, .S, .asm)")
    try:
        size_bytes = regular_file_size(path)
        if size_bytes > MAX_SOURCE_BYTES:
            raise LoadError(f"{path}: the source exceeds {MAX_SOURCE_BYTES >> 20} MiB")
        text = read_regular_file(path, 0, size_bytes).decode()
    except FileNotFoundError:
        raise LoadError(f"{path}: cannot read: No such file or directory") from None
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise LoadError(f"{path}: cannot read: not a text file") from None
    return assemble_source(text, path, syntax, preprocess)


# ---------------------------------------------------------------------------
# The project's extension encoder (emu_x86/emu/isa/encoding.py) behind EXTRA_ENCODERS.

def _project_extension_encoder(mnemonic: str, encode: Callable[[str, str, str], bytes]) -> ExtraEncoder:
    """Adapt ``encode(mnemonic, numeric_operands, syntax)`` to the EXTRA_ENCODERS signature.

    That encoder reads numbers only: expressions are resolved here, and a
    RIP-relative target becomes a displacement from the end of the
    instruction (its RIP displacement is always 32-bit, so the size does not
    depend on the value).
    """
    def encoder(operands_text: str, syntax: str, address: int, resolve: Callable[[str], int]) -> bytes:
        parsed = [_parse_operand(item, syntax) for item in split_top_level(operands_text)] \
            if operands_text.strip() else []

        def render(rip_displacement: int) -> str:
            parts = []
            for operand in parsed:
                if operand.kind == "reg":
                    parts.append(("%" if syntax == "att" else "") + operand.register)
                elif operand.kind == "imm":
                    parts.append(("$" if syntax == "att" else "") + _hex(resolve(operand.expr)))
                else:
                    if operand.base == "rip":
                        disp = _hex(rip_displacement)
                    else:
                        disp = _hex(resolve(operand.expr)) if operand.expr else ""
                    if operand.scale:
                        operand = _replace(operand, scale=str(resolve(operand.scale)))
                    parts.append(_render_memory(operand, disp, syntax))
            return ", ".join(parts)

        code = encode(mnemonic, render(0), syntax)
        rip = [operand for operand in parsed if operand.kind == "mem" and operand.base == "rip"]
        if rip:
            target = resolve(rip[0].expr) if rip[0].expr else address + len(code)
            code = encode(mnemonic, render(target - (address + len(code))), syntax)
        return code
    return encoder


def _register_project_extensions() -> None:
    try:
        from emu_x86.emu.isa import encoding as decoder
    except ImportError:
        return
    for mnemonic in sorted(decoder.MNEMONICS):
        EXTRA_ENCODERS.setdefault(mnemonic, _project_extension_encoder(mnemonic, decoder.encode))


_register_project_extensions()
