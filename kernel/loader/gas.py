"""A GNU-as compatible front end over keystone: assembly source -> ProgramImage.

Keystone encodes single instructions well but handles GNU directives,
sections and cross-section symbols poorly, so this front end owns everything
but the instruction encoding: it splits statements, keeps sections and
symbols, evaluates data directives itself, substitutes every symbol by its
value before handing an instruction to keystone, and iterates the layout
until instruction sizes stop changing (GNU as relaxes branches the same way:
short first, longer where the target is out of reach).

Conventions (GNU as on x86-64): ``.s``/``.S`` are AT&T syntax (``.S`` through
the C preprocessor first), ``.intel_syntax noprefix`` / ``.att_syntax``
switch, ``.asm`` is Intel syntax; ``#`` starts a comment, ``;`` separates
statements; ``.align`` takes bytes. Layout: the kernel puts synthesized ELF
headers at 0x400000, ``.text`` starts at 0x401000 and every further section
starts on a new page, so each becomes one segment with its own protection.
"""
from __future__ import annotations

import ast
import struct
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from keystone import KS_ARCH_X86, KS_MODE_64, KS_OPT_SYNTAX_ATT, KS_OPT_SYNTAX_INTEL, Ks, KsError

from kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, LoadError, ProgramImage, Segment

TEXT_BASE = 0x401000
PAGE = 0x1000
INCLUDE_DIR = Path(__file__).resolve().parents[2] / "guest" / "include"
MAX_LAYOUT_PASSES = 12

# Extension instructions keystone does not know (AMX, XSAVEC/XSAVES/XRSTORS,
# RDPID, SERIALIZE, INVLPGB, TLBSYNC, ...) are encoded by the project's own
# encoder, checked byte for byte against GNU as (tests/test_isa_decoder.py).
from emu.isa import decoder as _extension_codec  # noqa: E402

EXTRA_ENCODERS = {mnemonic: (lambda m: lambda operands, syntax: _extension_codec.encode(m, operands, syntax))(mnemonic)
                  for mnemonic in _extension_codec.MNEMONICS}


class AssemblyError(LoadError):
    def __init__(self, filename: str, line: int, message: str):
        super().__init__(f"{filename}:{line}: error: {message}")


@dataclass
class Statement:
    filename: str
    line: int
    text: str
    syntax: str            # "att" | "intel"


@dataclass
class Section:
    name: str
    flags: str                         # subset of "awx"
    items: list = field(default_factory=list)   # (kind, statement, payload)
    address: int = 0
    size: int = 0
    nobits: bool = False


REGISTER_NAMES = set(
    "rax rbx rcx rdx rsi rdi rbp rsp eax ebx ecx edx esi edi ebp esp ax bx cx dx si di bp sp "
    "al bl cl dl ah bh ch dh sil dil bpl spl rip eip cs ds es fs gs ss st".split()
    + [f"r{i}{s}" for i in range(8, 16) for s in ("", "d", "w", "b")]
    + [f"xmm{i}" for i in range(16)] + [f"ymm{i}" for i in range(16)] + [f"mm{i}" for i in range(8)]
    + [f"st{i}" for i in range(8)] + [f"cr{i}" for i in range(9)] + [f"dr{i}" for i in range(8)]
    + [f"tmm{i}" for i in range(8)])
INTEL_WORDS = {"byte", "word", "dword", "qword", "xmmword", "tbyte", "ptr", "offset", "flat", "short",
               "near", "far", "rel"}
IDENT = re.compile(r"(?<![\w.])([A-Za-z_.][\w.]*|\d+[bf])(?![\w.])")
DECIMAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
CHARACTER = re.compile(r"'(\\.|[^\\'])'?")
PREFIXES = {"rep", "repe", "repz", "repne", "repnz", "lock", "notrack", "data16", "addr32", "rex64"}


def _split_statements(text: str, filename: str, first_line: int = 1) -> list[tuple[str, int, str]]:
    """(file, line, statement) with comments removed; honours ``# N "file"`` markers."""
    out = []
    current_file, line_number = filename, first_line - 1
    in_block_comment = False
    for raw in text.split("\n"):
        line_number += 1
        marker = re.match(r'^#\s*(\d+)\s+"([^"]*)"', raw)
        if marker:
            line_number = int(marker.group(1)) - 1
            current_file = marker.group(2) if marker.group(2) not in ("<stdin>",) else filename
            continue
        cleaned, i, quote = [], 0, None
        while i < len(raw):
            ch = raw[i]
            if in_block_comment:
                if raw.startswith("*/", i):
                    in_block_comment = False
                    i += 2
                    continue
                i += 1
                continue
            if quote:
                cleaned.append(ch)
                if ch == "\\" and i + 1 < len(raw):
                    cleaned.append(raw[i + 1])
                    i += 2
                    continue
                if ch == quote:
                    quote = None
                i += 1
                continue
            if ch == '"':
                quote = ch
            elif ch == "'" and i + 1 < len(raw):
                # A character constant: 'c or 'c' (GNU as accepts both).
                end = i + 2 if raw[i + 1] != "\\" else i + 3
                cleaned.append(raw[i:end])
                if end < len(raw) and raw[end] == "'":
                    end += 1
                i = end
                continue
            elif raw.startswith("/*", i):
                in_block_comment = True
                i += 2
                continue
            elif ch == "#":
                break
            cleaned.append(ch)
            i += 1
        for part in _split_outside_quotes("".join(cleaned), ";"):
            part = part.strip()
            if part:
                out.append((current_file, line_number, part))
    return out


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quote = [], [], None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch == '"':
            quote = ch
            current.append(ch)
        elif ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(body: str, statement: Statement) -> bytes:
    out = bytearray()
    i = 0
    escapes = {"n": 10, "t": 9, "r": 13, "b": 8, "f": 12, "v": 11, "a": 7, "\\": 92, '"': 34, "'": 39, "e": 27}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise AssemblyError(statement.filename, statement.line, "bad escape in string")
        ch = body[i]
        if ch in escapes:
            out.append(escapes[ch])
            i += 1
        elif ch in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i:]).group(0)
            out.append(int(digits, 8) & 0xFF)
            i += len(digits)
        elif ch in "xX":
            digits = re.match(r"[0-9a-fA-F]+", body[i + 1:])
            if not digits:
                raise AssemblyError(statement.filename, statement.line, "bad \\x escape")
            out.append(int(digits.group(0), 16) & 0xFF)
            i += 1 + len(digits.group(0))
        else:
            out += ch.encode()
            i += 1
    return bytes(out)


def _strings(operands: str, statement: Statement) -> list[bytes]:
    values = []
    for part in _split_outside_quotes(operands, ","):
        part = part.strip()
        if not (len(part) >= 2 and part[0] == '"' and part[-1] == '"'):
            raise AssemblyError(statement.filename, statement.line, f"expected a string, got {part!r}")
        values.append(_unescape(part[1:-1], statement))
    return values


class Assembler:
    def __init__(self, filename: str, statements: list[Statement]):
        self.filename = filename
        self.statements = statements
        self.sections: dict[str, Section] = {}
        self.order: list[str] = []
        self.symbols: dict[str, int] = {}
        self.equates: dict[str, str] = {}        # .set/.equ/= : name -> expression text
        self.numeric_labels: dict[str, list[tuple[str, int]]] = {}   # "1" -> [(section, item index)]
        self.ks_att = Ks(KS_ARCH_X86, KS_MODE_64)
        self.ks_att.syntax = KS_OPT_SYNTAX_ATT
        self.ks_intel = Ks(KS_ARCH_X86, KS_MODE_64)
        self.ks_intel.syntax = KS_OPT_SYNTAX_INTEL
        self._cache: dict = {}

    # ---- pass 0: statements into section items -------------------------------

    def _section(self, name: str, flags: str | None = None) -> Section:
        if name not in self.sections:
            default = {".text": "ax", ".data": "aw", ".bss": "aw", ".rodata": "a"}
            guessed = default.get(name, "ax" if name.startswith(".text") else
                                  "a" if name.startswith(".rodata") else "aw")
            self.sections[name] = Section(name, flags if flags is not None else guessed,
                                          nobits=name == ".bss" or name.startswith(".bss") or name.startswith(".tbss"))
            self.order.append(name)
        return self.sections[name]

    def collect(self) -> None:
        section = self._section(".text")
        for statement in self.statements:
            text = statement.text
            while True:
                label = re.match(r"^([A-Za-z_.$][\w.$]*|\d+)\s*:(?!:)\s*", text)
                if not label:
                    break
                name = label.group(1)
                section.items.append(("label", statement, name))
                text = text[label.end():]
            if not text:
                continue
            assignment = re.match(r"^([A-Za-z_.][\w.]*)\s*=\s*(.+)$", text)
            if assignment and not text.startswith("."):
                section.items.append(("equ", statement, (assignment.group(1), assignment.group(2))))
                continue
            parts = text.split(None, 1)
            word, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            rest = rest.strip()
            lowered = word.lower()
            while lowered in PREFIXES and rest:
                more = rest.split(None, 1)
                lowered = f"{lowered} {more[0].lower()}"
                rest = more[1].strip() if len(more) > 1 else ""
            if lowered.startswith("."):
                new_section = self._directive(lowered, rest, statement, section)
                if new_section is not None:
                    section = new_section
                continue
            section.items.append(("insn", statement, (lowered, rest)))

    def _directive(self, name: str, args: str, statement: Statement, section: Section):
        if name in (".text", ".data", ".bss"):
            return self._section(name)
        if name == ".section":
            parts = [p.strip() for p in _split_outside_quotes(args, ",")]
            flags = parts[1].strip('"') if len(parts) > 1 else None
            section_name = parts[0]
            if section_name.startswith(".note") or section_name.startswith(".comment"):
                return self._section(section_name, "")
            return self._section(section_name, flags)
        if name in (".intel_syntax", ".att_syntax"):
            # Handled while splitting (the syntax is a property of each statement).
            return None
        if name in (".set", ".equ", ".equiv"):
            symbol, _, expression = args.partition(",")
            section.items.append(("equ", statement, (symbol.strip(), expression.strip())))
            return None
        if name in (".globl", ".global", ".type", ".size", ".file", ".ident", ".local", ".weak", ".hidden",
                    ".code64", ".loc", ".cfi_startproc", ".cfi_endproc", ".p2alignl", ".protected",
                    ".extern", ".end", ".lflags", ".arch", ".nops_placeholder") or name.startswith(".cfi_"):
            return None
        data_sizes = {".byte": 1, ".short": 2, ".hword": 2, ".word": 2, ".value": 2, ".long": 4, ".int": 4,
                      ".quad": 8, ".8byte": 8, ".4byte": 4, ".2byte": 2}
        if name in data_sizes:
            values = [v.strip() for v in _split_outside_quotes(args, ",") if v.strip()]
            section.items.append(("data", statement, (data_sizes[name], values)))
            return None
        if name in (".double", ".float", ".single"):
            fmt = "<d" if name == ".double" else "<f"
            for value in _split_outside_quotes(args, ","):
                if value.strip():
                    try:
                        number = float(value.strip().replace("0d", "", 1) if value.strip().startswith("0d")
                                       else value.strip())
                    except ValueError:
                        raise AssemblyError(statement.filename, statement.line,
                                            f"bad floating-point number {value.strip()!r}") from None
                    section.items.append(("bytes", statement, struct.pack(fmt, number)))
            return None
        if name in (".ascii", ".asciz", ".string"):
            for value in _strings(args, statement):
                section.items.append(("bytes", statement, value + (b"\0" if name != ".ascii" else b"")))
            return None
        if name in (".zero", ".skip", ".space"):
            parts = [p.strip() for p in _split_outside_quotes(args, ",")]
            section.items.append(("fill", statement, (parts[0], "1", parts[1] if len(parts) > 1 else "0")))
            return None
        if name == ".fill":
            parts = [p.strip() for p in _split_outside_quotes(args, ",")]
            section.items.append(("fill", statement, (parts[0], parts[1] if len(parts) > 1 else "1",
                                                      parts[2] if len(parts) > 2 else "0")))
            return None
        if name in (".balign", ".align", ".p2align"):
            parts = [p.strip() for p in _split_outside_quotes(args, ",")]
            section.items.append(("align", statement, (name, parts)))
            return None
        if name in (".comm", ".lcomm"):
            parts = [p.strip() for p in _split_outside_quotes(args, ",")]
            bss = self._section(".bss")
            alignment = parts[2] if len(parts) > 2 else "8"
            bss.items.append(("align", statement, (".balign", [alignment])))
            bss.items.append(("label", statement, parts[0]))
            bss.items.append(("fill", statement, (parts[1], "1", "0")))
            return None
        raise AssemblyError(statement.filename, statement.line, f"unknown directive {name}")

    # ---- expressions -------------------------------------------------------------

    def _numeric_label(self, token: str, section_name: str, item_index: int) -> int | None:
        number, direction = token[:-1], token[-1]
        candidates = self.numeric_labels.get(number, [])
        position = (self.order.index(section_name), item_index)
        if direction == "b":
            before = [c for c in candidates if (self.order.index(c[0]), c[1]) <= position]
            return before[-1][2] if before else None
        after = [c for c in candidates if (self.order.index(c[0]), c[1]) > position]
        return after[0][2] if after else None

    def value_of(self, token: str, statement: Statement, section_name: str, item_index: int,
                 depth: int = 0) -> int | None:
        if re.fullmatch(r"\d+[bf]", token):
            return self._numeric_label(token, section_name, item_index)
        if token == ".":
            return self.offsets.get((section_name, item_index), 0) if hasattr(self, "offsets") else 0
        if token in self.symbols:
            return self.symbols[token]
        if token in self.equates and depth < 20:
            return self.evaluate(self.equates[token], statement, section_name, item_index, depth + 1)
        return None

    def substitute(self, text: str, statement: Statement, section_name: str, item_index: int,
                   depth: int = 0, strict: bool = True) -> str:
        def replace(match):
            token = match.group(1)
            lowered = token.lower()
            if lowered in REGISTER_NAMES or lowered.lstrip("%") in REGISTER_NAMES or lowered in INTEL_WORDS:
                return token
            start = match.start(1)
            if start > 0 and text[start - 1] == "%":
                return token
            if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", token):
                return token
            value = self.value_of(token, statement, section_name, item_index, depth)
            if value is None:
                if strict:
                    raise AssemblyError(statement.filename, statement.line, f"undefined symbol {token!r}")
                value = 0
            return hex(value)
        return IDENT.sub(replace, text)

    def evaluate(self, expression: str, statement: Statement, section_name: str, item_index: int,
                 depth: int = 0, strict: bool = True) -> int:
        text = self.substitute(expression.strip(), statement, section_name, item_index, depth, strict)
        text = re.sub(r"'(\\.|.)'?", lambda m: str(_unescape(m.group(1), statement)[0]), text)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise AssemblyError(statement.filename, statement.line, f"bad expression {expression!r}") from None
        return _eval_integer(tree.body, statement)

    # ---- layout -------------------------------------------------------------------

    def _assign(self, sizes: dict, strict: bool) -> None:
        """Addresses of every item and the symbols they define, for the given instruction sizes."""
        self.offsets: dict[tuple[str, int], int] = {}
        self.numeric_labels = {}
        address = TEXT_BASE
        for name in self.order:
            section = self.sections[name]
            if "a" not in section.flags:
                continue
            section.address = address
            offset = address
            for index, (kind, statement, payload) in enumerate(section.items):
                self.offsets[(name, index)] = offset
                if kind == "label":
                    if payload.isdigit():
                        self.numeric_labels.setdefault(payload, []).append((name, index, offset))
                    else:
                        self.symbols[payload] = offset
                elif kind == "equ":
                    self.location = offset
                    self.equates[payload[0]] = str(self.evaluate(payload[1], statement, name, index,
                                                                 strict=strict))
                elif kind == "insn":
                    offset += sizes.get((name, index), 0)
                elif kind == "data":
                    offset += payload[0] * len(payload[1])
                elif kind == "bytes":
                    offset += len(payload)
                elif kind == "fill":
                    count = self.evaluate(payload[0], statement, name, index, strict=strict)
                    width = self.evaluate(payload[1], statement, name, index, strict=strict)
                    offset += max(0, count) * max(0, width)
                elif kind == "align":
                    offset += self._padding(payload, offset, statement, name, index)
            section.size = offset - address
            address = (offset + PAGE - 1) & ~(PAGE - 1)

    def layout(self) -> None:
        """Iterate addresses and instruction sizes to a fixed point (branch relaxation)."""
        sizes: dict[tuple[str, int], int] = {}
        for layout_pass in range(MAX_LAYOUT_PASSES):
            self._sizes = sizes
            self._assign(sizes, strict=False)
            new_sizes = {}
            for name in self.order:
                section = self.sections[name]
                if "a" not in section.flags:
                    continue
                for index, (kind, statement, payload) in enumerate(section.items):
                    if kind == "insn":
                        size = len(self.encode_instruction(statement, payload, self.offsets[(name, index)],
                                                           name, index, strict=False))
                        if layout_pass >= MAX_LAYOUT_PASSES // 2:
                            size = max(size, sizes.get((name, index), 0))   # force convergence
                        new_sizes[(name, index)] = size
            if new_sizes == sizes:
                break
            sizes = new_sizes
        self._sizes = sizes
        self._assign(sizes, strict=True)

    def _padding(self, payload, offset, statement, section_name, index) -> int:
        name, parts = payload
        if not parts or not parts[0]:
            return 0
        amount = self.evaluate(parts[0], statement, section_name, index)
        boundary = 1 << amount if name == ".p2align" else amount
        if boundary <= 1:
            return 0
        padding = (-offset) % boundary
        if len(parts) > 2 and parts[2]:
            limit = self.evaluate(parts[2], statement, section_name, index)
            if padding > limit:
                return 0
        return padding

    def _sizes_or_none(self, section_name, item_index):
        return self._sizes.get((section_name, item_index)) if getattr(self, "_sizes", None) else None

    # ---- encoding ---------------------------------------------------------------

    def encode_instruction(self, statement: Statement, payload, address: int, section_name: str,
                           item_index: int, strict: bool = True) -> bytes:
        mnemonic, operands = payload
        syntax = statement.syntax
        operands = CHARACTER.sub(lambda m: str(_unescape(m.group(1), statement)[0]), operands)
        operands = self._rip_relative(mnemonic, operands, statement, address, section_name, item_index, strict)
        operands = self.substitute(operands, statement, section_name, item_index, strict=strict)
        if mnemonic in EXTRA_ENCODERS:
            try:
                return EXTRA_ENCODERS[mnemonic](DECIMAL.sub(lambda m: hex(int(m.group(1))), operands), syntax)
            except Exception as error:   # the encoder's own one-line message
                raise AssemblyError(statement.filename, statement.line, str(error)) from None
        # Keystone 0.9.2 may read a decimal literal as hexadecimal (measured:
        # "mov $10, %eax" encodes 0x10 in AT&T mode, and "mov ecx, 10" does in
        # a fresh Intel-mode engine), so every number reaches it as 0x...
        operands = DECIMAL.sub(lambda m: hex(int(m.group(1))), operands)
        text = f"{mnemonic} {operands}".strip()
        key = (text, address, syntax)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        engine = self.ks_att if syntax == "att" else self.ks_intel
        try:
            encoding, _count = engine.asm(text, address)
        except KsError as error:
            raise AssemblyError(statement.filename, statement.line,
                                f"cannot assemble '{statement.text}': {error}") from None
        if not encoding:
            raise AssemblyError(statement.filename, statement.line, f"cannot assemble '{statement.text}'")
        result = bytes(encoding)
        self._cache[key] = result
        return result

    def _rip_relative(self, mnemonic, operands: str, statement, address, section_name, item_index, strict) -> str:
        """``sym(%rip)`` / ``[rip + sym]`` name a target; keystone wants the displacement."""
        size_guess = self._sizes_or_none(section_name, item_index)
        if statement.syntax == "att":
            match = re.search(r"([^,()]*)\(%rip\)", operands)
        else:
            match = re.search(r"\[\s*rip\s*([+-][^\]]*)\]", operands, re.IGNORECASE)
        if not match:
            return operands
        expression = match.group(1).strip()
        if not expression or re.fullmatch(r"[+-]?\s*(0[xX][0-9a-fA-F]+|\d+)", expression):
            return operands   # a plain displacement
        target = self.evaluate(expression.lstrip("+") if statement.syntax == "intel" else expression,
                               statement, section_name, item_index, strict=strict)
        # Two tries: the size with a displacement placeholder, then the real one.
        size = size_guess
        for _attempt in range(3):
            displacement = target - (address + (size or 7))
            candidate = (operands[:match.start(1)] + hex(displacement) + operands[match.end(1):]
                         if statement.syntax == "att" else
                         operands[:match.start()] + f"[rip {'+' if displacement >= 0 else '-'} {hex(abs(displacement))}]"
                         + operands[match.end():])
            substituted = self.substitute(candidate, statement, section_name, item_index, strict=False)
            if mnemonic in EXTRA_ENCODERS:
                encoded = EXTRA_ENCODERS[mnemonic](DECIMAL.sub(lambda m: hex(int(m.group(1))), substituted),
                                                   statement.syntax)
            else:
                encoded = self._raw_encode(statement, substituted, address, mnemonic)
            if size == len(encoded):
                return candidate
            size = len(encoded)
        return candidate

    def _raw_encode(self, statement, operands, address, mnemonic) -> bytes:
        operands = DECIMAL.sub(lambda m: hex(int(m.group(1))), operands)
        text = f"{mnemonic} {operands}"
        engine = self.ks_att if statement.syntax == "att" else self.ks_intel
        try:
            encoding, _ = engine.asm(text, address)
        except KsError as error:
            raise AssemblyError(statement.filename, statement.line,
                                f"cannot assemble '{statement.text}': {error}") from None
        return bytes(encoding or b"")

    # ---- output ---------------------------------------------------------------------

    def emit(self) -> ProgramImage:
        segments = []
        for name in self.order:
            section = self.sections[name]
            if "a" not in section.flags:
                continue
            data = bytearray()
            for index, (kind, statement, payload) in enumerate(section.items):
                offset = section.address + len(data)
                if kind == "insn":
                    encoded = self.encode_instruction(statement, payload, offset, name, index)
                    expected = self._sizes.get((name, index), len(encoded))
                    if len(encoded) < expected:
                        encoded += b"\x90" * (expected - len(encoded))
                    data += encoded
                elif kind == "data":
                    width, values = payload
                    for value in values:
                        number = self.evaluate(value, statement, name, index)
                        data += (number & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
                elif kind == "bytes":
                    data += payload
                elif kind == "fill":
                    count = self.evaluate(payload[0], statement, name, index)
                    width = self.evaluate(payload[1], statement, name, index)
                    value = self.evaluate(payload[2], statement, name, index)
                    data += ((value & ((1 << (8 * width)) - 1)).to_bytes(width, "little") if width else b"") * count
                elif kind == "align":
                    padding = self._padding(payload, offset, statement, name, index)
                    fill = b"\x90" if "x" in section.flags else b"\0"
                    if payload[1] and len(payload[1]) > 1 and payload[1][1]:
                        fill = bytes([self.evaluate(payload[1][1], statement, name, index) & 0xFF])
                    data += fill * padding
            if not data and not section.size:
                continue
            prot = PROT_READ | (PROT_WRITE if "w" in section.flags else 0) | (PROT_EXEC if "x" in section.flags else 0)
            if section.nobits:
                segments.append(Segment(section.address, b"", len(data), prot))
            else:
                segments.append(Segment(section.address, bytes(data), len(data), prot))
        entry = self.symbols.get("_start", TEXT_BASE)
        if not segments:
            raise AssemblyError(self.filename, 1, "no code or data")
        return ProgramImage(path=self.filename, entry=entry, segments=segments, symbols=dict(self.symbols))


def _eval_integer(node, statement: Statement) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp):
        value = _eval_integer(node.operand, statement)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Invert):
            return ~value
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _eval_integer(node.left, statement), _eval_integer(node.comparators[0], statement)
        comparisons = {ast.Gt: left > right, ast.Lt: left < right, ast.GtE: left >= right, ast.LtE: left <= right,
                       ast.Eq: left == right, ast.NotEq: left != right}
        if type(node.ops[0]) in comparisons:
            return -1 if comparisons[type(node.ops[0])] else 0   # GNU as: true is -1
    if isinstance(node, ast.BoolOp):
        values = [_eval_integer(value, statement) for value in node.values]
        result = all(values) if isinstance(node.op, ast.And) else any(values)
        return 1 if result else 0
    if isinstance(node, ast.BinOp):
        left, right = _eval_integer(node.left, statement), _eval_integer(node.right, statement)
        operations = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                      ast.Mult: lambda: left * right, ast.FloorDiv: lambda: left // right if right else 0,
                      ast.Div: lambda: int(left / right) if right else 0, ast.Mod: lambda: left % right if right else 0,
                      ast.LShift: lambda: left << right, ast.RShift: lambda: left >> right,
                      ast.BitAnd: lambda: left & right, ast.BitOr: lambda: left | right,
                      ast.BitXor: lambda: left ^ right}
        operation = operations.get(type(node.op))
        if operation is not None:
            return operation()
    raise AssemblyError(statement.filename, statement.line, "unsupported expression")


def _expand(statements: list[Statement], depth: int = 0, macros: dict | None = None,
            absolute: dict | None = None) -> list[Statement]:
    """GNU as's text-level directives: .macro/.endm, .rept/.irp/.irpc/.endr, .if*/.else/.endif.

    Absolute symbols defined by .set/.equ/= are tracked in order so that
    ``.if`` and repeated blocks see the value current at that point, as GNU
    as evaluates absolute expressions when it reads them."""
    if depth > 50:
        raise AssemblyError(statements[0].filename, statements[0].line, "macro expansion too deep")
    macros = {} if macros is None else macros          # name -> (params, body)
    absolute = {} if absolute is None else absolute    # symbol -> current absolute value
    out: list[Statement] = []
    i = 0

    def block(start: int, openers: tuple, closer: str) -> tuple[list[Statement], int]:
        level, j, body = 1, start + 1, []
        while j < len(statements):
            head = statements[j].text.split(None, 1)[0].lower() if statements[j].text.split() else ""
            if head in openers:
                level += 1
            elif head == closer:
                level -= 1
                if level == 0:
                    return body, j
            body.append(statements[j])
            j += 1
        raise AssemblyError(statements[start].filename, statements[start].line, f"missing {closer}")

    def absolute_value(expression: str, statement: Statement) -> int:
        text = IDENT.sub(lambda m: str(absolute[m.group(1)]) if m.group(1) in absolute else m.group(1),
                         expression)
        text = CHARACTER.sub(lambda m: str(_unescape(m.group(1), statement)[0]), text)
        text = text.replace("&&", " and ").replace("||", " or ")
        try:
            tree = ast.parse(text.strip(), mode="eval")
            return _eval_integer(tree.body, statement)
        except (SyntaxError, AssemblyError):
            raise AssemblyError(statement.filename, statement.line,
                                f"expression must be absolute here: {expression!r}") from None

    while i < len(statements):
        statement = statements[i]
        words = statement.text.split(None, 1)
        head = words[0].lower() if words else ""
        args = words[1].strip() if len(words) > 1 else ""
        if head == ".macro":
            name_and_params = re.split(r"[\s,]+", args.strip(), maxsplit=1)
            params = []
            if len(name_and_params) > 1:
                for param in re.split(r"\s*,\s*|\s+", name_and_params[1].strip()):
                    if param:
                        key, _, default = param.partition("=")
                        params.append((key.split(":")[0], default if "=" in param else None))
            body, end = block(i, (".macro",), ".endm")
            macros[name_and_params[0]] = (params, body)
            i = end + 1
            continue
        if head in (".rept", ".irp", ".irpc"):
            body, end = block(i, (".rept", ".irp", ".irpc"), ".endr")
            copies: list[list[Statement]] = []
            if head == ".rept":
                for _ in range(absolute_value(args, statement)):
                    copies.append(list(body))
            else:
                symbol, _, values = args.partition(",")
                symbol = symbol.strip()
                items = ([v.strip() for v in values.split(",")] if head == ".irp"
                         else list(values.strip()))
                for value in items:
                    copies.append([Statement(s.filename, s.line, s.text.replace("\\" + symbol, value), s.syntax)
                                   for s in body])
            expanded = []
            for copy in copies:
                expanded += copy
            statements = statements[:i] + expanded + statements[end + 1:]
            continue
        if head in (".if", ".ifdef", ".ifndef", ".ifeq", ".ifne"):
            body, end = block(i, (".if", ".ifdef", ".ifndef", ".ifeq", ".ifne"), ".endif")
            then_part, else_part, level = [], [], 0
            target = then_part
            for inner in body:
                inner_head = inner.text.split(None, 1)[0].lower() if inner.text.split() else ""
                if inner_head in (".if", ".ifdef", ".ifndef", ".ifeq", ".ifne"):
                    level += 1
                elif inner_head == ".endif":
                    level -= 1
                elif inner_head == ".else" and level == 0:
                    target = else_part
                    continue
                target.append(inner)
            if head == ".ifdef":
                condition = args.strip() in absolute
            elif head == ".ifndef":
                condition = args.strip() not in absolute
            elif head == ".ifeq":
                condition = absolute_value(args, statement) == 0
            else:
                condition = absolute_value(args, statement) != 0
            statements = statements[:i] + (then_part if condition else else_part) + statements[end + 1:]
            continue
        set_match = re.match(r"^\.(?:set|equ)\s+([A-Za-z_.][\w.]*)\s*,\s*(.+)$", statement.text, re.IGNORECASE) \
            or re.match(r"^([A-Za-z_.][\w.]*)\s*=\s*(.+)$", statement.text)
        if set_match:
            try:
                absolute[set_match.group(1)] = absolute_value(set_match.group(2), statement)
                out.append(Statement(statement.filename, statement.line,
                                     f".set {set_match.group(1)}, {absolute[set_match.group(1)]}", statement.syntax))
            except AssemblyError:
                absolute.pop(set_match.group(1), None)
                out.append(statement)
            i += 1
            continue
        if head in macros:
            params, body = macros[head]
            values = [v.strip() for v in _split_outside_quotes(args, ",")] if args else []
            if len(values) == 1 and len(params) > 1 and " " in values[0]:
                values = values[0].split()
            bindings = {}
            for index, (param, default) in enumerate(params):
                value = values[index] if index < len(values) and values[index] != "" else default
                if value is None:
                    raise AssemblyError(statement.filename, statement.line, f"missing argument {param!r} for {head}")
                bindings[param] = value
            expanded = []
            for inner in body:
                text = inner.text
                for param in sorted(bindings, key=len, reverse=True):
                    text = text.replace("\\" + param, bindings[param])
                text = text.replace("\\()", "")
                expanded.append(Statement(statement.filename, statement.line, text, inner.syntax))
            out.extend(_expand(expanded, depth + 1, macros, absolute))
            i += 1
            continue
        if head and not head.startswith(".") and absolute:
            # Absolute symbols are replaced by their current value (GNU as
            # evaluates absolute expressions when it reads them).
            label_prefix = re.match(r"^((?:[A-Za-z_.][\w.]*|\d+)\s*:\s*)*", statement.text).group(0)
            body_text = statement.text[len(label_prefix):]
            pieces = re.split(r'("(?:[^"\\]|\\.)*")', body_text)
            body_text = "".join(
                piece if piece.startswith('"') else
                IDENT.sub(lambda m: str(absolute[m.group(1)]) if m.group(1) in absolute else m.group(1), piece)
                for piece in pieces)
            statement = Statement(statement.filename, statement.line, label_prefix + body_text, statement.syntax)
        out.append(statement)
        i += 1
    return out


def _statements_with_syntax(pieces, syntax: str) -> list[Statement]:
    statements = []
    for filename, line, text in pieces:
        directive = text.split()[0].lower() if text.split() else ""
        if directive == ".intel_syntax":
            syntax = "intel"
            continue
        if directive == ".att_syntax":
            syntax = "att"
            continue
        statements.append(Statement(filename, line, text, syntax))
    return statements


def assemble_source(text: str, filename: str, syntax: str = "att", preprocess: bool = False) -> ProgramImage:
    if preprocess:
        text = _preprocess(text, filename)
    pieces = _split_statements(text, filename)
    assembler = Assembler(filename, _expand(_statements_with_syntax(pieces, syntax)))
    assembler.collect()
    assembler.layout()
    return assembler.emit()


def _preprocess(text: str, filename: str) -> str:
    directory = os.path.dirname(os.path.abspath(filename))
    command = ["gcc", "-E", "-x", "assembler-with-cpp", "-I", directory, "-I", str(INCLUDE_DIR), "-"]
    try:
        # The guest's environment may lack PATH; gcc needs it to find cc1.
        environment = dict(os.environ, PATH=os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
        result = subprocess.run(command, input=text, capture_output=True, text=True, env=environment)
    except FileNotFoundError:
        raise LoadError(f"{filename}: the C preprocessor (gcc -E) is needed for .S files") from None
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if line.strip()), "preprocessor failed")
        first = first.replace("<stdin>", filename)
        raise LoadError(first if first.startswith(filename) else f"{filename}: {first}")
    return result.stdout


def assemble_file(path: str) -> ProgramImage:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise LoadError(f"{path}: cannot read: {error}") from None
    if path.endswith(".S"):
        return assemble_source(text, path, "att", preprocess=True)
    if path.endswith(".s"):
        return assemble_source(text, path, "att")
    if path.endswith(".asm"):
        return assemble_source(text, path, "intel")
    raise LoadError(f"{path}: not an assembly source (.s, .S, .asm)")
