"""emu_x86/emu/isa/encoding.py against GNU as/objdump 2.40, the oracle for instructions capstone 5
and keystone 0.9 do not know.

Every instruction, every tile register in every position, and a spread of
addressing forms is assembled by GNU as (AT&T, and the same operands in
Intel syntax) in one batch per syntax: the project's encoder must emit the
same bytes, the decoder must read them back to the same operands, and the
formatters must print what objdump prints.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from typing import NamedTuple

import pytest
from tests.guestbuild import IN_CI, missing_prerequisite

from emu_x86.emu.isa.encoding import (
    GPR, GPR64, MNEMONICS, EncodingError, Mem, TileReg, decode, effective_address, encode, format_att,
    format_intel, sibmem_address,
)

HAVE_BINUTILS = all(shutil.which(tool) for tool in ("as", "objdump"))
needs_binutils = pytest.mark.skipif(not HAVE_BINUTILS and not IN_CI, reason="GNU as/objdump not installed")


def mem(base=None, index=None, scale=1, disp=0, rip=False, segment=None, address_size=64) -> Mem:
    return Mem(base, index, scale, disp, rip, segment, address_size)


# (AT&T operand, Intel operand, what decode reads back)
ADDRESSING = [
    # base only; rsp/r12 need a SIB, rbp/r13 a zero disp8
    ("(%rax)", "[rax]", mem("rax")),
    ("(%rsp)", "[rsp]", mem("rsp")),
    ("(%rbp)", "[rbp]", mem("rbp")),
    ("(%r12)", "[r12]", mem("r12")),
    ("(%r13)", "[r13]", mem("r13")),
    ("(%r15)", "[r15]", mem("r15")),
    # displacements at the disp8/disp32 boundaries
    ("0x40(%rdi)", "[rdi+0x40]", mem("rdi", disp=0x40)),
    ("-0x80(%rsi)", "[rsi-0x80]", mem("rsi", disp=-0x80)),
    ("0x80(%rsi)", "[rsi+0x80]", mem("rsi", disp=0x80)),
    ("-0x81(%rbx)", "[rbx-0x81]", mem("rbx", disp=-0x81)),
    ("0x12345678(%r9)", "[r9+0x12345678]", mem("r9", disp=0x12345678)),
    ("-0x80000000(%r14)", "[r14-0x80000000]", mem("r14", disp=-0x80000000)),
    ("0x7fffffff(%rcx)", "[rcx+0x7fffffff]", mem("rcx", disp=0x7FFFFFFF)),
    # base + index * scale
    ("(%rax,%rcx,1)", "[rax+rcx*1]", mem("rax", "rcx")),
    ("(%rdx,%rbx,2)", "[rdx+rbx*2]", mem("rdx", "rbx", 2)),
    ("(%rsi,%rdi,4)", "[rsi+rdi*4]", mem("rsi", "rdi", 4)),
    ("(%rsp,%rbp,8)", "[rsp+rbp*8]", mem("rsp", "rbp", 8)),
    ("0x10(%r8,%r15,8)", "[r8+r15*8+0x10]", mem("r8", "r15", 8, 0x10)),
    ("-8(%r12,%r12,4)", "[r12+r12*4-8]", mem("r12", "r12", 4, -8)),
    ("(%r13,%r11,2)", "[r13+r11*2]", mem("r13", "r11", 2)),
    ("0x1000(%rbp,%r9,1)", "[rbp+r9*1+0x1000]", mem("rbp", "r9", 1, 0x1000)),
    # index without base (always disp32)
    ("0x100(,%rdx,4)", "[rdx*4+0x100]", mem(None, "rdx", 4, 0x100)),
    ("(,%r11,1)", "[r11*1]", mem(None, "r11")),
    ("-0x10(,%rcx,8)", "[rcx*8-0x10]", mem(None, "rcx", 8, -0x10)),
    # absolute (SIB, no base, no index)
    ("0x1000", "[0x1000]", mem(disp=0x1000)),
    ("-8", "[-8]", mem(disp=-8)),
    # RIP-relative
    ("0x7f(%rip)", "[rip+0x7f]", mem(disp=0x7F, rip=True)),
    ("-0x200(%rip)", "[rip-0x200]", mem(disp=-0x200, rip=True)),
    ("(%rip)", "[rip]", mem(rip=True)),
    # segment overrides: FS/GS have a base; CS/DS/ES/SS are null prefixes in 64-bit mode
    ("%fs:0x28", "fs:0x28", mem(disp=0x28, segment="fs")),
    ("%fs:(%rax)", "fs:[rax]", mem("rax", segment="fs")),
    ("%gs:0x8(%rbx,%rcx,4)", "gs:[rbx+rcx*4+0x8]", mem("rbx", "rcx", 4, 8, segment="gs")),
    ("%gs:0x10(%rip)", "gs:[rip+0x10]", mem(disp=0x10, rip=True, segment="gs")),
    ("%ss:(%rax)", "ss:[rax]", mem("rax")),
    ("%ds:(%rsp)", "ds:[rsp]", mem("rsp")),
    ("%ss:(%rbp)", "ss:[rbp]", mem("rbp")),        # the default segment: GNU as drops it
    # 32-bit addressing (67 prefix)
    ("(%eax)", "[eax]", mem("eax", address_size=32)),
    ("0x10(%r8d,%r9d,2)", "[r8d+r9d*2+0x10]", mem("r8d", "r9d", 2, 0x10, address_size=32)),
    ("-4(%esp)", "[esp-4]", mem("esp", disp=-4, address_size=32)),
    ("(%r13d)", "[r13d]", mem("r13d", address_size=32)),
    ("(,%esi,2)", "[esi*2]", mem(None, "esi", 2, address_size=32)),
    ("0x80000000(%eax)", "[eax+0x80000000]", mem("eax", disp=-0x80000000, address_size=32)),
    ("0x20(%eip)", "[eip+0x20]", mem(disp=0x20, rip=True, address_size=32)),
    ("%fs:(%ebp,%eax,8)", "fs:[ebp+eax*8]", mem("ebp", "eax", 8, segment="fs", address_size=32)),
]
SIBMEM_ADDRESSING = [form for form in ADDRESSING if not form[2].rip_relative]

XSAVE_FAMILY = ["xsave", "xsave64", "xrstor", "xrstor64", "xsaveopt", "xsaveopt64", "xsavec", "xsavec64",
                "xsaves", "xsaves64", "xrstors", "xrstors64"]
DOT_PRODUCTS = ["tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps"]
SYSTEM = ["xgetbv", "xsetbv", "serialize", "invlpgb", "tlbsync", "tilerelease"]


class Case(NamedTuple):
    mnemonic: str
    att: str               # operands, AT&T order and syntax
    intel: str             # operands, Intel order and syntax
    operands: tuple        # what decode returns (Intel order)


def _cases() -> list[Case]:
    cases = [Case(name, "", "", ()) for name in SYSTEM]
    for name in ["ldtilecfg", "sttilecfg"] + XSAVE_FAMILY:
        cases += [Case(name, att, intel, (decoded,)) for att, intel, decoded in ADDRESSING]
    for name in ["tileloadd", "tileloaddt1", "tilestored"]:
        for k, (att, intel, decoded) in enumerate(SIBMEM_ADDRESSING + [SIBMEM_ADDRESSING[8]] * 8):
            tile = k % 8
            if name == "tilestored":
                cases.append(Case(name, f"%tmm{tile}, {att}", f"{intel}, tmm{tile}", (decoded, TileReg(tile))))
            else:
                cases.append(Case(name, f"{att}, %tmm{tile}", f"tmm{tile}, {intel}", (TileReg(tile), decoded)))
    for k, (att, intel, decoded) in enumerate(ADDRESSING):
        register = GPR64[k % 16]
        cases.append(Case("invpcid", f"{att}, %{register}", f"{register}, {intel}", (GPR(register), decoded)))
    cases += [Case("tilezero", f"%tmm{t}", f"tmm{t}", (TileReg(t),)) for t in range(8)]
    cases += [Case("rdpid", f"%{r}", r, (GPR(r),)) for r in GPR64]
    for name in DOT_PRODUCTS:
        for t in range(8):            # each tile in each position: dest t, src1 t+3, src2 t+5
            a, b, c = t, (t + 3) % 8, (t + 5) % 8
            cases.append(Case(name, f"%tmm{c}, %tmm{b}, %tmm{a}", f"tmm{a}, tmm{b}, tmm{c}",
                              (TileReg(a), TileReg(b), TileReg(c))))
    return cases


CASES = _cases()

# Other spellings GNU as accepts for the same instructions (bytes compared only).
ATT_SPELLINGS = [
    ("xsave", "-(8)(%rax)"), ("xsave", "0x10-8(%rax)"), ("xsave", "2*8(%rax)"), ("xsave", "077(%rax)"),
    ("xsave", "0b11(%rax)"), ("xsave", "( %rax , %rcx , 4 )"), ("xsave", "(%rax,%r12)"), ("xsave", "(,%rax)"),
    ("xsave", "%FS:(%RAX)"), ("XSAVE", "(%rax)"), ("xsave", "0xffffffff80000000"), ("xsave", "%ds:(%rax)"),
    ("xsave", "%cs:8"), ("xsave", "%es:0x10(%eip)"), ("xsave", "%ss:0x10(%rip)"), ("xsave", "0x100000000(%eax)"),
    ("xsave", "0xffffffffffffffff(%eax)"), ("xsave", "-0x100000001(%eax)"), ("xsave", "0xffffffffffffffff(%rip)"),
    ("tileloadd", "0x10(%rax,%rcx), %tmm1"), ("tileloadd", "%ss:(%rsp), %tmm0"), ("rdpid", "%RSP"),
    ("xsave", "0x10+0x20-0x8(%rax)"), ("xsave", "~0xf(%rax)"), ("xsave", "0x1f (%rax)"),
]
INTEL_SPELLINGS = [
    ("tileloadd", "tmm0, 8[rsi+rdx]"), ("tileloadd", "tmm0, [2*rdx+rsi]"), ("tileloadd", "tmm0, [rdx*2+rsi]"),
    ("tileloadd", "tmm0, [rsi+8+rdx*2]"), ("tileloadd", "tmm0, [rsi+rdx]"), ("xsave", "[rax+rsp]"),
    ("xsave", "[rcx*4+rax+8-4]"), ("invpcid", "rsi, xmmword ptr [rdi]"), ("invpcid", "rsi, OWORD PTR [rdi]"),
    ("xsave", "gs:0x10[rax]"), ("xsave", "[rax][rcx*2]"), ("xsave", "[rax+(8*2)]"), ("xsave", "[-8+rax]"),
    ("xsave", "[rax + 2*rcx + 8]"), ("xsave", "[rax+-8]"), ("xsave", "[RAX]"), ("RDPID", "R9"),
    ("xsave", "ds:0x1000"), ("xsave", "cs:0x10"), ("xsave", "[rax*1]"), ("xsave", "[eax+0xffffffff]"),
]


# ---- running GNU as / objdump (one batch per syntax) ------------------------------------------

class Assembled(NamedTuple):
    code: bytes
    att: str               # objdump -d text, whitespace-normalised
    intel: str             # objdump -d -M intel text


def _objdump(obj, *options) -> list[tuple[int, bytes, str]]:
    dump = subprocess.run(["objdump", "-d", "-w", "--insn-width=16", *options, str(obj)],
                          check=True, capture_output=True, text=True).stdout
    rows = []
    for line in dump.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and re.fullmatch(r"\s*[0-9a-f]+:", fields[0]):
            rows.append((int(fields[0].strip()[:-1], 16), bytes.fromhex(fields[1]), " ".join(fields[2].split())))
    return rows


def gnu_assemble(lines: list[str], tmp_path, intel: bool = False) -> list[Assembled]:
    source = tmp_path / ("intel.s" if intel else "att.s")
    header = ".intel_syntax noprefix\n" if intel else ""
    source.write_text(header + "".join(line + "\n" for line in lines))
    obj = source.with_suffix(".o")
    subprocess.run(["as", "--64", str(source), "-o", str(obj)], check=True, capture_output=True)
    att, intel_rows = _objdump(obj), _objdump(obj, "-M", "intel")
    assert len(att) == len(lines) == len(intel_rows), "one instruction per source line"
    return [Assembled(code, att_text, intel_text) for (_, code, att_text), (_, _, intel_text) in zip(att, intel_rows)]


def gnu_errors(lines: list[str], tmp_path, intel: bool = False) -> set[int]:
    """1-based numbers of the lines GNU as rejects."""
    source = tmp_path / "bad.s"
    header = ".intel_syntax noprefix\n" if intel else ""
    source.write_text(header + "".join(line + "\n" for line in lines))
    result = subprocess.run(["as", "--64", str(source), "-o", str(tmp_path / "bad.o")],
                            check=False, capture_output=True, text=True)
    offset = 1 if intel else 0
    return {int(number) - offset for number in re.findall(r"bad\.s:(\d+): Error", result.stderr)}


def _line(mnemonic: str, operands: str) -> str:
    return f"{mnemonic} {operands}".strip()


@pytest.fixture(scope="module")
def gnu(tmp_path_factory):
    if not HAVE_BINUTILS:
        missing_prerequisite("GNU as/objdump not installed")
    directory = tmp_path_factory.mktemp("encoding")
    att_lines = [_line(case.mnemonic, case.att) for case in CASES] + [_line(m, o) for m, o in ATT_SPELLINGS]
    intel_lines = [_line(case.mnemonic, case.intel) for case in CASES] + [_line(m, o) for m, o in INTEL_SPELLINGS]
    att = gnu_assemble(att_lines, directory)
    intel = gnu_assemble(intel_lines, directory, intel=True)
    return {"att": att[:len(CASES)], "intel": intel[:len(CASES)],
            "att_spellings": att[len(CASES):], "intel_spellings": intel[len(CASES):],
            "addresses": _addresses([item.code for item in att[:len(CASES)]])}


def _addresses(codes: list[bytes]) -> list[int]:
    addresses, address = [], 0
    for code in codes:
        addresses.append(address)
        address += len(code)
    return addresses


def _indices(mnemonic: str) -> list[int]:
    return [i for i, case in enumerate(CASES) if case.mnemonic == mnemonic]


# ---- encoder, decoder and formatter against GNU ------------------------------------------------

def test_cases_cover_every_mnemonic():
    assert {case.mnemonic for case in CASES} == MNEMONICS
    assert MNEMONICS == {"ldtilecfg", "sttilecfg", "tileloadd", "tileloaddt1", "tilestored", "tilezero",
                         "tilerelease", *DOT_PRODUCTS, "invlpgb", "tlbsync", "rdpid", "serialize",
                         *XSAVE_FAMILY, "xgetbv", "xsetbv", "invpcid"}


@needs_binutils
@pytest.mark.parametrize("mnemonic", sorted(MNEMONICS))
def test_encoder_emits_the_bytes_gnu_as_emits(gnu, mnemonic):
    for syntax in ("att", "intel"):
        ours = [(getattr(CASES[i], syntax), encode(mnemonic, getattr(CASES[i], syntax), syntax).hex())
                for i in _indices(mnemonic)]
        theirs = [(getattr(CASES[i], syntax), gnu[syntax][i].code.hex()) for i in _indices(mnemonic)]
        assert ours == theirs, syntax


@needs_binutils
@pytest.mark.parametrize("mnemonic", sorted(MNEMONICS))
def test_decoder_reads_back_gnu_encodings(gnu, mnemonic):
    for i in _indices(mnemonic):
        case, code = CASES[i], gnu["att"][i].code
        decoded = decode(code + b"\x0f\x0b\x90", gnu["addresses"][i])
        assert decoded is not None, (case.att, code.hex())
        assert (decoded.mnemonic, decoded.operands, decoded.length, decoded.raw) \
            == (mnemonic, case.operands, len(code), code), case.att


@needs_binutils
@pytest.mark.parametrize("mnemonic", sorted(MNEMONICS))
def test_formatters_print_what_objdump_prints(gnu, mnemonic):
    for i in _indices(mnemonic):
        assembled, address = gnu["att"][i], gnu["addresses"][i]
        decoded = decode(assembled.code, address)
        assert " ".join(format_att(decoded, address).split()) == assembled.att, CASES[i].att
        assert " ".join(format_intel(decoded, address).split()) == assembled.intel, CASES[i].intel


@needs_binutils
def test_other_spellings_gnu_as_accepts(gnu):
    ours = [(m, o, encode(m, o, "att").hex()) for m, o in ATT_SPELLINGS] \
        + [(m, o, encode(m, o, "intel").hex()) for m, o in INTEL_SPELLINGS]
    theirs = [(m, o, item.code.hex()) for (m, o), item in zip(ATT_SPELLINGS, gnu["att_spellings"])] \
        + [(m, o, item.code.hex()) for (m, o), item in zip(INTEL_SPELLINGS, gnu["intel_spellings"])]
    assert ours == theirs


# Encodings GNU as never emits but the machine may meet; objdump 2.40's text is the reference.
UNUSUAL_ENCODINGS = [
    "c4e27849046508000000",          # ldtilecfg 0x8(,%riz,2): SIB, no base, no index, scale 2
    "67c4e27849042508000000",        # ldtilecfg 0x8(,%eiz,1)
    "67c4e27b49c0",                  # addr32 tilezero
    "c462784900",                    # ldtilecfg with VEX.R set: /0 ignores it
    "c4e27b4b0424",                  # tileloadd (%rsp): no %riz
    "0fae2420", "0fae2460", "0fae642000", "0fae6000", "0faea000000000",   # riz, disp8 0, disp32 0
    "4c0fae20", "400fae20", "420fae20", "440fae20", "4d0fae20",           # REX bits left unused
    "420fae2420",                    # REX.X with SIB index 100b: %r12
    "410fae2500000000",              # REX.B with RIP-relative
    "410fae242500000000",            # REX.B with no base
    "450f01d0", "480f01d0", "670f01d0", "640f01d0",
    "f2f30fc7f8", "f3f30fc7f8", "f3660fc7f8", "66f30fc7f8", "f3480fc7f8", "f34c0fc7f8",
    "67670fae20", "64640fae20", "64650fae20", "2e0fae20", "3e0fae2424", "360fae20",
    "66660f388237", "66480f388237",
    "670fae2500ffffff",              # xsave -0x100(%eip): objdump's comment is not wrapped to 32 bits
    "670fae2425f8ffffff",            # xsave 0xfffffff8(,%eiz,1)
]


@pytest.fixture(scope="module")
def unusual(tmp_path_factory):
    if not HAVE_BINUTILS:
        missing_prerequisite("GNU as/objdump not installed")
    lines = [".byte " + ",".join(f"0x{b:02x}" for b in bytes.fromhex(text)) for text in UNUSUAL_ENCODINGS]
    return gnu_assemble(lines, tmp_path_factory.mktemp("unusual"))


@needs_binutils
def test_unusual_encodings_decode_and_print_like_objdump(unusual):
    ours, theirs, address = [], [], 0
    for text, assembled in zip(UNUSUAL_ENCODINGS, unusual):
        decoded = decode(bytes.fromhex(text), address)
        assert decoded is not None and decoded.length == len(assembled.code), text
        ours.append((text, " ".join(format_att(decoded, address).split()),
                     " ".join(format_intel(decoded, address).split())))
        theirs.append((text, assembled.att, assembled.intel))
        address += decoded.length
    assert ours == theirs


def test_unusual_encodings_decode_to_operands():
    assert decode(bytes.fromhex("c4e27849046508000000"), 0).operands == (mem(None, None, 2, 8),)
    assert decode(bytes.fromhex("420fae2420"), 0).operands == (mem("rax", "r12"),)
    assert decode(bytes.fromhex("3e0fae2424"), 0).operands == (mem("rsp"),)          # DS: a null prefix
    assert decode(bytes.fromhex("64650fae20"), 0).operands == (mem("rax", segment="gs"),)   # last wins
    assert decode(bytes.fromhex("480f01d0"), 0).mnemonic == "xgetbv"
    assert decode(bytes.fromhex("480fae20"), 0).mnemonic == "xsave64"
    assert decode(bytes.fromhex("2e" * 8 + "0faea000000000"), 0).length == 15         # the limit itself
    # Repeated tiles decode; the SDM's #UD for them is the handler's (after the AMX guards).
    assert decode(bytes.fromhex("c4e27b5ec0"), 0).operands == (TileReg(0), TileReg(0), TileReg(0))


NOT_EXTENSIONS = {
    "90": "nop", "0f0b": "ud2", "4801c0": "add", "0f05": "syscall", "c3": "ret",
    "0faee8": "lfence", "0faef0": "mfence", "0faef8": "sfence", "0faee0": "0F AE /4 register form",
    "0fc7f8": "rdseed", "0fc7f0": "rdrand", "480fc70f": "cmpxchg16b", "660fc7f8": "rdseed (66)",
    "660fae30": "clwb", "660fae38": "clflushopt", "f30fae20": "ptwrite",
    "f30f01e8": "setssbsy", "f20f01e8": "xsusldtrk", "0f01f8": "swapgs", "0f01f9": "rdtscp",
    "0f01d5": "xend", "f30fc730": "vmxon", "0f388237": "invpcid without 66", "f20fc7f8": "F2 0F C7 /7",
    "660f01d0": "66 before NP xgetbv (SDM: not XGETBV; objdump: data16 xgetbv)",
    "f00fae20": "lock xsave", "f0c4e27b49c0": "lock tilezero",
    "c5f877": "vzeroupper", "c4e2f84900": "ldtilecfg with VEX.W1", "c4e27f49c0": "tilezero with VEX.L1",
    "c4e23b49c0": "tilezero with VEX.vvvv != 1111b", "c4627b49c0": "tilezero %tmm8",
    # The SDM's opcode columns, where objdump 2.40 is more lenient (see the module docstring):
    "c4e27b49c1": "tilezero with ModRM.rm != 000 (SDM 11:rrr:000; objdump ignores rm)",
    "c4e2784918": "ldtilecfg with ModRM.reg != 000 (SDM !(11):000:bbb; objdump ignores reg)",
    "f30fc728": "F3 before NP xsaves (objdump: repz xsaves)", "660fc720": "66 before NP xsavec",
    "c4e27b4b00": "tileloadd without a SIB byte", "c4e27b4b0500000000": "tileloadd RIP-relative",
    "c4e27849c8": "ldtilecfg register form", "c4626b5ec1": "tdpbssd %tmm8", "c4e22b5ec1": "tdpbssd vvvv=tmm10",
    "c4c27b5ec8": "tdpbssd rm=tmm8", "48c4e2784900": "REX before VEX", "66c4e27b49c0": "66 before VEX",
    "c4e3784900": "map 0F3A", "62f17c4828c1": "EVEX", "c4e2784a00": "opcode 4A",
    "2e" * 11 + "0faea000000000": "18 bytes long (over the 15-byte limit)", "": "empty",
}


@pytest.mark.parametrize("code", list(NOT_EXTENSIONS), ids=list(NOT_EXTENSIONS.values()))
def test_other_bytes_are_not_decoded(code):
    assert decode(bytes.fromhex(code), 0x401000) is None


@needs_binutils
def test_truncated_encodings_are_not_decoded(gnu):
    for assembled in gnu["att"]:
        for length in range(len(assembled.code)):
            assert decode(assembled.code[:length], 0) is None, assembled.code[:length].hex()


def test_random_bytes_never_raise():
    rng = random.Random(20240601)
    decoded = 0
    for _ in range(20000):
        code = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 16)))
        decoded += decode(code, 0x401000) is not None
    # Bytes that start inside the table's opcode space reach every check; whatever decodes formats.
    stems = [bytes.fromhex(stem) for stem in (
        "c4", "c4e2", "c4e27b4b", "c4a27a4b", "c4c2794b", "c4627849", "c4e27b49", "c4e2535e", "c4e2425c",
        "67c4e27b4b", "0fae", "0fc7", "0f01", "f30fc7", "660f3882", "640fae", "480fc7", "650f01", "41")]
    for _ in range(20000):
        code = rng.choice(stems) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        result = decode(code, 0x401000)
        if result is not None:
            decoded += 1
            assert result.raw == code[:result.length] and result.length <= 15
            assert decode(result.raw, 0) == result
            for syntax, text in (("att", format_att(result, 0x401000)), ("intel", format_intel(result, 0x401000))):
                _assert_text_encodes_back(result, text, syntax)
    assert decoded > 1000


@needs_binutils
def test_random_decodable_bytes_print_like_objdump(tmp_path):
    """Differential check over bytes GNU as never emits: prefixes in any order and number,
    every ModRM/SIB/displacement shape, REX/VEX register extensions."""
    rng = random.Random(1)
    stems = [bytes.fromhex(stem) for stem in (
        "c4e2", "c4e27b4b", "c4a27a4b", "c4c2794b", "c4627849", "c4e27b49", "c4e2535e", "67c4e27b4b", "0fae",
        "0fc7", "0f01", "f30fc7", "660f3882", "640fae", "480fc7", "650f01", "41", "2e", "3e64", "6667", "f2f3",
        "4067", "6748")]
    found = {}
    while len(found) < 3000:
        code = rng.choice(stems) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        decoded = decode(code, 0)
        if decoded is not None and len(set(decoded.operands)) == len(decoded.operands):
            found.setdefault(decoded.raw, decoded)     # (objdump marks repeated TDPB* tiles "(bad)")
    assembled = gnu_assemble([".byte " + ",".join(map(str, raw)) for raw in found], tmp_path)
    ours, theirs, address = [], [], 0
    for (raw, decoded), gnu_text in zip(found.items(), assembled):
        ours.append((raw.hex(), " ".join(format_att(decoded, address).split()),
                     " ".join(format_intel(decoded, address).split())))
        theirs.append((gnu_text.code.hex(), gnu_text.att, gnu_text.intel))
        address += decoded.length
    assert ours == theirs


def _assert_text_encodes_back(decoded, text: str, syntax: str) -> None:
    """What the formatter prints, the encoder reads back to the same operands (unless objdump's
    text names things GNU as does not accept: unused prefixes, %riz/%eiz)."""
    mnemonic, _, operands = text.split("#")[0].strip().partition(" ")
    if mnemonic != decoded.mnemonic or "iz" in operands:
        return
    if len(set(decoded.operands)) < len(decoded.operands):     # TDPB* with a repeated tile
        with pytest.raises(EncodingError, match="distinct"):
            encode(mnemonic, operands, syntax)
        return
    again = decode(encode(mnemonic, operands, syntax), 0)
    assert (again.mnemonic, again.operands) == (decoded.mnemonic, decoded.operands), (text, decoded.raw.hex())


# ---- encoder errors: what GNU as rejects, the encoder rejects --------------------------------------

REJECTED_ATT = [
    ("tdpbssd", "%tmm0, %tmm0, %tmm1"), ("tdpbssd", "%tmm0, %tmm1, %tmm1"), ("tdpbssd", "%tmm1, %tmm2"),
    ("tileloadd", "0x10(%rip), %tmm0"), ("tileloadd", "(%rax,%rsp,1), %tmm0"), ("tilezero", "%tmm8"),
    ("tileloadd", "(%rax), %tmm0, %tmm1"), ("tilestored", "(%rax,%rcx,1), %tmm0"), ("tilerelease", "%tmm0"),
    ("ldtilecfg", "%tmm0"), ("rdpid", "%rax, %rbx"), ("rdpid", "%eax"), ("rdpid", "%r8d"), ("rdpid", "(%rax)"),
    ("xsave", "%rax"), ("xsave", "$8"), ("xsave", ""), ("invpcid", "(%rdi), %esi"), ("invpcid", "%rdi, %rsi"),
    ("xsave", "(%rax,%rcx,3)"), ("xsave", "(%eax,%rcx,1)"), ("xsave", "0x80000000(%rax)"),
    ("xsave", "-0x80000001(%rax)"), ("xsave", "0x80000000"), ("xsave", "(%rip,%rax,1)"), ("xsave", "8(%rax,)"),
    ("xsave", "(%ax)"), ("xsave", "(%rax,%riz,1)"), ("xsave", "0x10(%eip,%eax)"), ("xsave", "%tmm0"),
]
REJECTED_INTEL = [
    ("xsave", "XMMWORD PTR [rax]"), ("ldtilecfg", "ZMMWORD PTR [rax]"), ("tileloadd", "tmm0, DWORD PTR [rax+rcx]"),
    ("invpcid", "rsi, QWORD PTR [rdi]"), ("xsave", "0x1000"), ("xsave", "[rax+10h]"), ("xsave", "[fs:rax]"),
    ("tileloadd", "tmm0, [rip+8]"), ("xsave", "[rsp*1]"), ("xsave", "[rax+rcx+rdx]"), ("xsave", "[rip+rax]"),
    ("tdpbf16ps", "tmm0, tmm1, tmm1"), ("tilezero", "rax"), ("xsave", "rax"),
]


@pytest.mark.parametrize("syntax, mnemonic, operands",
                         [("att", *bad) for bad in REJECTED_ATT] + [("intel", *bad) for bad in REJECTED_INTEL])
def test_encoder_rejects_bad_operands(syntax, mnemonic, operands):
    with pytest.raises(EncodingError):
        encode(mnemonic, operands, syntax)


@needs_binutils
def test_gnu_as_rejects_the_same_operands(tmp_path):
    assert gnu_errors([_line(m, o) for m, o in REJECTED_ATT], tmp_path) == set(range(1, len(REJECTED_ATT) + 1))
    assert gnu_errors([_line(m, o) for m, o in REJECTED_INTEL], tmp_path, intel=True) \
        == set(range(1, len(REJECTED_INTEL) + 1))


def test_unknown_mnemonic_is_an_encoding_error():
    with pytest.raises(EncodingError):
        encode("add", "%rax, %rbx")


# ---- operand semantics ------------------------------------------------------------------------------

REGISTERS = {"rax": 0xFFFF_FFFF_0000_1000, "rcx": 0x10, "rsp": 0x7FFF_0000, "r12": (1 << 64) - 8,
             "r9": 0xFFFF_FFF0, "fs_base": 0x7F00_0000_0000, "gs_base": 0xFFFF_8880_0000_0000}


@pytest.mark.parametrize("operand, next_rip, expected", [
    (mem("rax", "rcx", 4, 8), 0, 0xFFFF_FFFF_0000_1048),
    (mem("rsp", disp=-0x10), 0, 0x7FFE_FFF0),
    (mem("r12", disp=0x10), 0, 0x8),                                     # wraps at 2^64
    (mem(None, "rcx", 8, 0x100), 0, 0x180),
    (mem(disp=-8), 0, (1 << 64) - 8),                                    # absolute, sign-extended
    (mem(disp=0x20, rip=True), 0x401007, 0x401027),
    (mem(disp=-0x20, rip=True, address_size=32), 0x1_0000_0010, 0xFFFF_FFF0),   # EIP wraps at 2^32
    (mem("eax", disp=4, address_size=32), 0, 0x1004),                    # EAX: low half of RAX
    (mem("r9d", "ecx", 2, 0x10, address_size=32), 0, 0x20),              # wraps at 2^32
    (mem("rcx", disp=0x28, segment="fs"), 0, 0x7F00_0000_0038),
    (mem("r9d", disp=0x20, segment="gs", address_size=32), 0, 0xFFFF_8880_0000_0010),  # wrap, then + base
    (mem(disp=-8, segment="gs"), 0, 0xFFFF_8880_0000_0000 - 8),
])
def test_effective_address(operand, next_rip, expected):
    assert effective_address(operand, REGISTERS.__getitem__, next_rip) == expected


def test_sibmem_address_is_base_plus_disp_and_stride_is_index_times_scale():
    read = REGISTERS.__getitem__
    assert sibmem_address(mem("rsp", "rcx", 4, 0x40), read, 0) == (0x7FFF_0040, 0x40)
    assert sibmem_address(mem("rsp", None, 1, 8), read, 0) == (0x7FFF_0008, 0)
    assert sibmem_address(mem("rcx", "rcx", 1, segment="fs"), read, 0) == (0x7F00_0000_0010, 0x10)
    assert sibmem_address(mem("eax", "r9d", 2, address_size=32), read, 0) == (0x1000, 0x1_FFFF_FFE0 & 0xFFFF_FFFF)
    decoded = decode(encode("tileloadd", "0x40(%rsp,%rcx,4), %tmm2"), 0)
    assert sibmem_address(decoded.operands[1], read, 0) == (0x7FFF_0040, 0x40)
