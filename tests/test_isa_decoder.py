"""The extension decoder against GNU as 2.40: bytes as assembles them decode to the same
instruction and operands (capstone 5 knows none of these)."""
import random
import re
import shutil
import subprocess

import pytest
from tests.guestbuild import missing_prerequisite

from emu_x86.emu.isa.encoding import GPR, Mem, TileReg, decode

CASES = [
    # (AT&T source, mnemonic, operands in Intel order)
    ("ldtilecfg (%rax)", "ldtilecfg", (Mem("rax", None, 1, 0, False, None, 64),)),
    ("sttilecfg 0x40(%rsp)", "sttilecfg", (Mem("rsp", None, 1, 0x40, False, None, 64),)),
    ("tilerelease", "tilerelease", ()),
    *[(f"tilezero %tmm{t}", "tilezero", (TileReg(t),)) for t in range(8)],
    *[(f"tileloadd (%r12,%rax,1), %tmm{t}", "tileloadd",
       (TileReg(t), Mem("r12", "rax", 1, 0, False, None, 64))) for t in range(8)],
    ("tileloadd 0x10(%r13,%r9,4), %tmm1", "tileloadd", (TileReg(1), Mem("r13", "r9", 4, 0x10, False, None, 64))),
    ("tileloaddt1 -0x80(%rsi,%rdx,2), %tmm7", "tileloaddt1",
     (TileReg(7), Mem("rsi", "rdx", 2, -0x80, False, None, 64))),
    ("tilestored %tmm3, 0x1000(%rdi,%rcx,8)", "tilestored",
     (Mem("rdi", "rcx", 8, 0x1000, False, None, 64), TileReg(3))),
    ("tileloadd %fs:8(%rax,%rbx,1), %tmm2", "tileloadd", (TileReg(2), Mem("rax", "rbx", 1, 8, False, "fs", 64))),
    ("tileloadd (%eax,%ebx,1), %tmm0", "tileloadd", (TileReg(0), Mem("eax", "ebx", 1, 0, False, None, 32))),
    *[(f"{name} %tmm{c}, %tmm{b}, %tmm{a}", name, (TileReg(a), TileReg(b), TileReg(c)))
      for name in ("tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps")
      for a, b, c in ((0, 1, 2), (7, 6, 5), (3, 0, 4))],
    ("xgetbv", "xgetbv", ()), ("xsetbv", "xsetbv", ()), ("serialize", "serialize", ()),
    ("invlpgb", "invlpgb", ()), ("tlbsync", "tlbsync", ()),
    ("rdpid %rax", "rdpid", (GPR("rax"),)), ("rdpid %r11", "rdpid", (GPR("r11"),)),
    ("invpcid (%rdi), %rsi", "invpcid", (GPR("rsi"), Mem("rdi", None, 1, 0, False, None, 64))),
    ("xsave (%rdi)", "xsave", (Mem("rdi", None, 1, 0, False, None, 64),)),
    ("xsave64 0x40(%rdi)", "xsave64", (Mem("rdi", None, 1, 0x40, False, None, 64),)),
    ("xrstor (%rdi)", "xrstor", (Mem("rdi", None, 1, 0, False, None, 64),)),
    ("xsaveopt64 (%r8)", "xsaveopt64", (Mem("r8", None, 1, 0, False, None, 64),)),
    ("xsavec (%rsp)", "xsavec", (Mem("rsp", None, 1, 0, False, None, 64),)),
    ("xsavec64 0x12345678(%rip)", "xsavec64", (Mem(None, None, 1, 0x12345678, True, None, 64),)),
    ("xsaves64 (%r15,%r14,4)", "xsaves64", (Mem("r15", "r14", 4, 0, False, None, 64),)),
    ("xrstors 0x8(,%rcx,8)", "xrstors", (Mem(None, "rcx", 8, 8, False, None, 64),)),
    ("xrstors64 (%rbp)", "xrstors64", (Mem("rbp", None, 1, 0, False, None, 64),)),
]


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    if shutil.which("as") is None or shutil.which("objdump") is None:
        missing_prerequisite("binutils missing")
    directory = tmp_path_factory.mktemp("isa")
    source = directory / "x.s"
    source.write_text("".join(f"{text}\n" for text, _, _ in CASES))
    subprocess.run(["as", str(source), "-o", str(directory / "x.o")], check=True)
    dump = subprocess.run(["objdump", "-d", "--insn-width=16", str(directory / "x.o")], check=True, capture_output=True, text=True).stdout
    encodings = []
    for line in dump.splitlines():
        match = re.match(r"^\s+[0-9a-f]+:\s+((?:[0-9a-f]{2} )+)\s*(\S.*)?$", line)
        if match and match.group(2):
            encodings.append((bytes.fromhex(match.group(1).replace(" ", "")), match.group(2)))
    assert len(encodings) == len(CASES)
    return encodings


@pytest.mark.parametrize("index", range(len(CASES)))
def test_decodes_what_gnu_as_encodes(assembled, index):
    text, mnemonic, operands = CASES[index]
    code, objdump_text = assembled[index]
    decoded = decode(code + b"\x90" * 4, 0x1000)
    assert decoded is not None, (text, code.hex())
    assert decoded.mnemonic == mnemonic
    assert decoded.operands == operands, (text, objdump_text)
    assert decoded.length == len(code)
    assert objdump_text.split()[0] == mnemonic


@pytest.mark.parametrize("code", ["90", "0f0b", "4801c0", "c4e2784900"[:6], "0f01", "c5f877"])
def test_ordinary_or_truncated_bytes_are_not_extensions(code):
    assert decode(bytes.fromhex(code), 0) is None


def test_random_bytes_never_raise():
    rng = random.Random(7)
    for _ in range(20000):
        decode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16))), 0x401000)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_encoder_matches_gnu_as(assembled, index):
    from emu_x86.emu.isa.encoding import encode
    text, mnemonic, _operands = CASES[index]
    expected, _ = assembled[index]
    operand_text = text[len(text.split()[0]):].strip()
    assert encode(text.split()[0], operand_text, "att") == expected, text


INTEL_CASES = [
    "tileloadd tmm1, [r13 + r9*4 + 0x10]",
    "tilestored [rdi + rcx*8 + 0x1000], tmm3",
    "tdpbf16ps tmm7, tmm6, tmm5",
    "ldtilecfg [rax]",
    "xsavec64 [rsp + 0x40]",
    "xrstors [rip + 0x100]",
    "rdpid r11",
]


def test_intel_syntax_encodings_match_gnu_as(tmp_path):
    from emu_x86.emu.isa.encoding import encode
    if shutil.which("as") is None:
        missing_prerequisite("binutils missing")
    source = tmp_path / "i.s"
    source.write_text(".intel_syntax noprefix\n" + "".join(f"{line}\n" for line in INTEL_CASES))
    subprocess.run(["as", str(source), "-o", str(tmp_path / "i.o")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "i.o"), str(tmp_path / "i.bin")],
                   check=True)
    ours = b"".join(encode(line.split()[0], line[len(line.split()[0]):], "intel") for line in INTEL_CASES)
    assert ours == (tmp_path / "i.bin").read_bytes()
