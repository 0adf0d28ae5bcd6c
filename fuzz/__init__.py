"""Fuzz harnesses: a guest must never crash, hang or escape the emulator.

Each case is a small guest built in memory (no files, no subprocess): a code
page at ``TEXT_VADDR`` and a read-write data area at ``DATA_VADDR`` with random
contents, run on a fresh ``Machine`` + ``Kernel`` under a cycle budget. The
properties checked for every case (``check``):

- no Python exception escapes the machine or the kernel (the CLI would turn
  one into "internal error", exit 70: that is a failure here);
- the run ends by the guest's exit, by a signal Linux sends for a CPU
  exception (SIGSEGV, SIGILL, SIGFPE, SIGTRAP, SIGBUS; SIGKILL for the OOM
  killer), by every task sleeping forever, or by the cycle budget -- and the
  machine clock does not run past the budget by more than one block;
- it ends within a wall-clock guard (a hang in the emulator is a failure).

Kinds of case (``GENERATORS``): ``code`` (random bytes and instruction soup),
``syscall`` (random numbers and arguments, bad pointers, huge lengths),
``extension`` (AMX / XSAVE family / XGETBV / INVPCID / INVLPGB with random
tile configurations, XSAVE headers and register operands). ``machine_api``
checks the CPL0 interface the kernel uses (XSETBV, WRMSR of XSS/XFD/XFD_ERR)
with random values: only #GP may come out. ``elf`` and ``asm`` (fuzz/inputs.py)
give `emu run` hostile program files: the loader, the assembler and the limits
armed before them. Every case is a pure function of
(kind, seed, index), so a failure is reproduced by ``python -m fuzz --kind K
--seed S --only I``.
"""
from __future__ import annotations

import io
import random
import signal
import struct
import threading
import traceback
from dataclasses import dataclass, field

from emu_x86.emu.isa import encoding
from emu_x86.emu.isa.state import MSR_IA32_XFD, MSR_IA32_XFD_ERR, MSR_IA32_XSS
from emu_x86.emu.machine import Machine
from emu_x86.emu.traps import GP, CpuException
from emu_x86.kernel import signals
from emu_x86.kernel.kernel import Kernel, KernelConfig
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, ProgramImage, Segment

TEXT_VADDR = 0x401000
TEXT_PAGES = 2
DATA_VADDR = 0x600000
DATA_BYTES = 4 * 4096            # followed by an unmapped page (DATA_VADDR + DATA_BYTES)
MEMORY_BYTES = 16 << 20
DEFAULT_MAX_CYCLES = 100_000
# The hot path stops at the first block boundary past the deadline; one block
# plus the trap that ends it may overshoot (a syscall, an XSAVE of 8 KiB...).
CYCLE_OVERSHOOT_ALLOWANCE = 200_000
WALL_SECONDS_PER_CASE = 20.0

# Signals a guest may die of here: the Linux signal for each CPU exception
# (arch/x86/kernel/traps.c) and SIGKILL from the OOM killer.
ARCHITECTED_SIGNALS = {signals.SIGSEGV, signals.SIGILL, signals.SIGFPE, signals.SIGTRAP, signals.SIGBUS, 9}
# A syscall fuzz case may also signal itself (kill, tgkill) with anything.
ANY_SIGNAL = set(range(1, 65))

GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
MASK64 = (1 << 64) - 1


class CaseHung(Exception):
    """The wall-clock guard of one case expired."""


@dataclass
class Guest:
    code: bytes
    data: bytes = b""
    allowed_signals: set = field(default_factory=lambda: set(ARCHITECTED_SIGNALS))
    max_cycles: int = DEFAULT_MAX_CYCLES
    memory_bytes: int = MEMORY_BYTES
    fs_root: str | None = None       # a directory mapped as the guest's root (--fs / --fs-rw)
    fs_writable: bool = False
    strict_overcommit: bool = False  # vm.overcommit_memory=2, as --max-memory sets it
    entry_offset: int = 0            # where in the code page execution starts


@dataclass
class Outcome:
    kind: str
    index: int
    ending: str = ""                 # "exit N", "signal NAME", "cycle limit", "idle"
    cycles: int = 0
    failure: str | None = None       # None: every property held
    peak_bytes: int = 0              # elf/asm kinds: the emulator's peak resident memory
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


# ---- encoding helpers ------------------------------------------------------------------------

def movabs(register: str, value: int) -> bytes:
    """``movabs $value, %register`` (REX.W [+B] B8+r imm64)."""
    number = GPR64.index(register)
    return bytes([0x48 | (number >> 3), 0xB8 + (number & 7)]) + struct.pack("<Q", value & MASK64)


SYSCALL = b"\x0f\x05"


def exit_group(status: int = 0) -> bytes:
    return movabs("rax", 231) + movabs("rdi", status) + SYSCALL


def pointer_or_value(rng: random.Random) -> int:
    """A register value that is often a usable pointer and sometimes a nasty one."""
    choice = rng.randrange(12)
    if choice < 4:
        return DATA_VADDR + rng.randrange(DATA_BYTES)
    if choice == 4:
        return DATA_VADDR + DATA_BYTES - rng.randrange(1, 64)      # straddles the unmapped page
    if choice == 5:
        return rng.choice([0, 1, MASK64, 0x7FFFFFFF, 0x80000000, 1 << 63])
    if choice == 6:
        return rng.choice([0xFFFF800000000000, 0xFFFFFFFF81000000, 0x0000800000000000, (1 << 47) - 8])
    if choice == 7:
        return TEXT_VADDR + rng.randrange(TEXT_PAGES * 4096)
    if choice == 8:
        return rng.randrange(64)
    return rng.getrandbits(64)


# ---- surviving faults -------------------------------------------------------------------------

# A SA_SIGINFO handler that resumes at the next step after the faulting one: it
# reads the interrupted RIP from the ucontext (uc_mcontext.rip at offset 168),
# finds the first step start above it in a table, writes that back and returns
# through a restorer that calls rt_sigreturn. So one case runs every step even
# when most of them fault -- each fault still goes through the kernel's
# exception -> signal -> frame -> sigreturn path. After SIGNAL_BUDGET signals
# (a counter in the last data qword) it resumes at exit_group instead, so a
# fault loop does not spend the whole cycle budget in signal delivery.
SIGNAL_COUNTER_VADDR = DATA_VADDR + DATA_BYTES - 8
SIGNAL_BUDGET = 8
# incq counter; cmpq $SIGNAL_BUDGET, counter; ja exit; mov 168(%rdx),%rax; movabs $table,%rcx
_HANDLER_HEAD = bytes.fromhex(f"48ff0425f83f600048833c25f83f6000{SIGNAL_BUDGET:02x}7723488b82a800000048b9")
# 1: mov (%rcx),%r8; add $8,%rcx; cmp %rax,%r8; jbe 1b; cmp $-1,%r8; jne 2f;
# exit: andl $~TF, 176(%rdx) (uc_mcontext.eflags: stop single-stepping); movabs $exit,%r8
_HANDLER_LOOP = bytes.fromhex("4c8b014883c1084939c076f44983f8ff751481a2b0000000fffeffff49b8")
_HANDLER_TAIL = bytes.fromhex("4c8982a8000000c3")                      # mov %r8,168(%rdx); ret
_RESTORER = bytes.fromhex("b80f0000000f05")                            # mov $15,%eax; syscall
SA_SIGINFO, SA_RESTORER, SA_NODEFER = 0x4, 0x04000000, 0x40000000
CAUGHT_SIGNALS = (signals.SIGSEGV, signals.SIGILL, signals.SIGFPE, signals.SIGBUS, signals.SIGTRAP)


def fault_skipping_program(steps: list[bytes]) -> tuple[bytes, int]:
    """Code page: handler, restorer, struct sigaction, step table, then the steps
    (after installing the handler for CAUGHT_SIGNALS) and exit_group(0). Returns
    (code, entry offset)."""
    handler_size = len(_HANDLER_HEAD) + 8 + len(_HANDLER_LOOP) + 8 + len(_HANDLER_TAIL)
    restorer_at = handler_size
    sigaction_at = restorer_at + len(_RESTORER)
    table_at = sigaction_at + 32
    entry = table_at + 8 * (len(steps) + 2)
    install = b"".join(movabs("rax", 13) + movabs("rdi", signo) + movabs("rsi", TEXT_VADDR + sigaction_at)
                       + movabs("rdx", 0) + movabs("r10", 8) + SYSCALL for signo in CAUGHT_SIGNALS)
    starts, body = [], b""
    position = entry + len(install)
    for step in steps:
        starts.append(TEXT_VADDR + position + len(body))
        body += step
    exit_at = TEXT_VADDR + position + len(body)
    handler = (_HANDLER_HEAD + struct.pack("<Q", TEXT_VADDR + table_at) + _HANDLER_LOOP
               + struct.pack("<Q", exit_at) + _HANDLER_TAIL)
    sigaction = struct.pack("<QQQQ", TEXT_VADDR, SA_SIGINFO | SA_RESTORER | SA_NODEFER,
                            TEXT_VADDR + restorer_at, 0)
    table = struct.pack(f"<{len(starts) + 2}Q", *starts, exit_at, MASK64)
    code = handler + _RESTORER + sigaction + table + install + body + exit_group(0)
    return code, entry


def surviving_guest(steps: list[bytes], data: bytes) -> Guest:
    """A Guest running ``steps`` under the fault-skipping handler (signal counter zeroed)."""
    assert struct.pack("<I", SIGNAL_COUNTER_VADDR) in _HANDLER_HEAD and SIGNAL_BUDGET == _HANDLER_HEAD[16]
    code, entry = fault_skipping_program(steps)
    return Guest(code=code, data=data[:DATA_BYTES - 8] + bytes(8), entry_offset=entry)


# ---- generators ------------------------------------------------------------------------------

def _register_prologue(rng: random.Random) -> bytes:
    """Load most general registers (not RSP) with pointer-ish values."""
    code = b""
    for register in GPR64:
        if register != "rsp" and rng.random() < 0.8:
            code += movabs(register, pointer_or_value(rng))
    return code


# Opcode fragments that reach rarely-taken paths: system instructions, the
# 0F 01 group, XSAVE family, far transfers, port I/O, x87, VEX/EVEX prefixes.
_FRAGMENTS = [
    b"\x0f\x05", b"\x0f\x34", b"\x0f\x07", b"\x0f\x35", b"\xcd\x80", b"\xcd\x03", b"\xcc", b"\xf1", b"\xce",
    b"\x0f\x0b", b"\x0f\xa2", b"\x0f\x31", b"\x0f\x01\xf9", b"\x0f\x30", b"\x0f\x32", b"\x0f\x33", b"\xf4",
    b"\xfa", b"\xfb", b"\x48\xcf", b"\xcf", b"\x0f\x01\xd0", b"\x0f\x01\xd1", b"\x0f\x01\xe8", b"\x0f\x01\xfe",
    b"\x0f\x01\xff", b"\x0f\x01\xf8", b"\x0f\x01\xca", b"\x0f\x01\xcb", b"\x0f\x09", b"\x0f\x08", b"\x0f\xaa",
    b"\xe4\x80", b"\xec", b"\xee", b"\x6c", b"\x6e", b"\xf3\xa4", b"\xf3\x48\xab", b"\xf3\xa6", b"\xeb\xfe",
    b"\x8e\xd8", b"\x8e\xe0", b"\x0f\xa1", b"\x0f\xa9", b"\x9d", b"\x9c", b"\x0f\x00\xd8", b"\x0f\x01\x38",
    b"\x0f\x20\xd8", b"\x0f\x22\xd8", b"\x0f\x21\xc0", b"\xd9\xee", b"\xdf\xe0", b"\xd9\xfa", b"\xdb\xe3",
    b"\x0f\x77", b"\x0f\x0e", b"\x48\xf7\xf1", b"\xf7\xf9", b"\x0f\xc7\xf8", b"\x0f\xc7\xf0",
]
_PREFIXES = [b"\x66", b"\xf2", b"\xf3", b"\xf0", b"\x2e", b"\x64", b"\x65", b"\x40", b"\x48", b"\x4f", b"\x67"]


def _modrm_tail(rng: random.Random) -> bytes:
    return bytes([rng.randrange(256)]) + rng.randbytes(rng.choice([0, 0, 1, 4]))


def _random_instruction(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    prefix = b"".join(rng.choice(_PREFIXES) for _ in range(rng.choice([0, 0, 0, 1, 2])))
    if kind < 3:
        return prefix + rng.choice(_FRAGMENTS)
    if kind == 3:      # two-byte and three-byte maps with a ModRM
        return prefix + b"\x0f" + bytes([rng.randrange(256)]) + _modrm_tail(rng)
    if kind == 4:
        return prefix + b"\x0f" + rng.choice([b"\x38", b"\x3a"]) + bytes([rng.randrange(256)]) + _modrm_tail(rng)
    if kind == 5:      # VEX2 / VEX3 / EVEX
        lead = rng.choice([b"\xc5", b"\xc4", b"\x62"])
        return prefix + lead + rng.randbytes({b"\xc5": 2, b"\xc4": 3, b"\x62": 4}[lead]) + _modrm_tail(rng)
    if kind == 6:      # group 0F 01 / 0F AE / 0F C7 with any ModRM (system, XSAVE family, RDRAND...)
        return prefix + rng.choice([b"\x0f\x01", b"\x0f\xae", b"\x0f\xc7", b"\x0f\x00", b"\xff", b"\xfe"]) \
            + _modrm_tail(rng)
    if kind == 7:      # x87
        return prefix + bytes([rng.randrange(0xD8, 0xE0)]) + _modrm_tail(rng)
    if kind == 8:      # an extension instruction of the project's codec with random operands
        return _random_extension_instruction(rng)
    return rng.randbytes(rng.randrange(1, 9))


def gen_code(rng: random.Random) -> Guest:
    """Random guest code: raw random bytes, or a soup of interesting instructions."""
    data = rng.randbytes(DATA_BYTES)
    if rng.random() < 0.35:
        body = rng.randbytes(TEXT_PAGES * 4096)
        if rng.random() < 0.5:
            body = _register_prologue(rng) + body
        return Guest(code=body[:TEXT_PAGES * 4096], data=data)
    steps = [_register_prologue(rng)]
    length = rng.randrange(64, 1024)
    while sum(map(len, steps)) < length:
        steps.append(_random_instruction(rng))
    if rng.random() < 0.5:        # half the soups survive their faults and run every step
        return surviving_guest(steps, data)
    return Guest(code=b"".join(steps) + exit_group(0), data=data)


# Linux x86-64 syscall numbers (syscall_64.tbl) a fuzz case should rarely
# make, because they end the case at once: exit, exit_group.
_ENDING_SYSCALLS = {60, 231}


def _syscall_number(rng: random.Random) -> int:
    from emu_x86.kernel.syscall_table import SYSCALLS
    choice = rng.random()
    if choice < 0.75:
        number = rng.choice(sorted(SYSCALLS))
        if number in _ENDING_SYSCALLS and rng.random() < 0.9:
            number = 39   # getpid
        return number
    if choice < 0.95:
        return rng.randrange(0, 470)
    return rng.getrandbits(64)


def _syscall_argument(rng: random.Random) -> int:
    choice = rng.randrange(10)
    if choice < 2:
        return rng.choice([0, 1, 2, 3, 0xFFFFFFFF, MASK64, MASK64 - 99, 0x7FFFFFFF, 1 << 31, 1 << 63,
                           0x7FFFF000, 1 << 40, 4096, 4095, 8, 16, 64, 128, 0x1000000])
    if choice < 3:
        return rng.randrange(-200, 200) & MASK64
    return pointer_or_value(rng)


def gen_syscall(rng: random.Random) -> Guest:
    """A run of system calls with random numbers and arguments, then exit_group(0)."""
    code = b""
    for _ in range(rng.randrange(4, 24)):
        code += movabs("rax", _syscall_number(rng))
        for register in ("rdi", "rsi", "rdx", "r10", "r8", "r9"):
            code += movabs(register, _syscall_argument(rng))
        code += SYSCALL
    data = bytearray(rng.randbytes(DATA_BYTES))
    # Some NUL-terminated path-like strings where pointers often land.
    for offset in range(0, DATA_BYTES, 512):
        text = rng.choice([b"/etc/passwd", b"../../etc/passwd", b"/proc/self/root/etc/passwd", b".", b"/",
                           b"/proc/self/exe", b"a" * 300, b"", b"/file.txt", b"dir/../file.txt", b"escape",
                           b"dir/inner", b"dir", b"new.txt", b"dir/new.txt", b"loop", b"fifo", b"../secret"])
        data[offset:offset + len(text) + 1] = text + b"\0"
    guest = Guest(code=code + exit_group(0), data=bytes(data), allowed_signals=ANY_SIGNAL,
                  strict_overcommit=rng.random() < 0.3)
    choice = rng.random()
    if choice < 0.4:
        guest.fs_root = fuzz_root(writable=False)
    elif choice < 0.5:
        guest.fs_root, guest.fs_writable = fuzz_root(writable=True), True
    return guest


_FUZZ_BASE: list[str] = []


def _open_up(folder: str) -> None:
    """chmod 0700 every directory below ``folder`` (each before listing it), so rmtree can go in."""
    import os
    try:
        os.chmod(folder, 0o700, follow_symlinks=False)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _open_up(entry.path)
    except OSError:
        pass


def fuzz_root(writable: bool) -> str:
    """A directory tree for the file syscalls to chew on: files, a subdirectory, symlinks in
    and out, a loop, a FIFO, and a secret next to the root. One temporary base per run (made
    by the first caller, removed at its exit; forked workers share it), one tree per process
    below it; the writable tree is made afresh for every case, so guest writes never pile up."""
    import os
    import shutil
    if not _FUZZ_BASE:
        import atexit
        import tempfile
        base = tempfile.mkdtemp(prefix="emu-fuzz-")
        atexit.register(shutil.rmtree, base, True)
        with open(os.path.join(base, "secret"), "w") as handle:
            handle.write("outside the root\n")
        _FUZZ_BASE.append(base)
    root = os.path.join(_FUZZ_BASE[0], f"{'rw' if writable else 'ro'}-{os.getpid()}")
    if writable or not os.path.isdir(root):
        _open_up(root)          # a guest may have chmod'ed directories to 000 (emu_x86/kernel/fs_attr.py)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.join(root, "dir"))
        with open(os.path.join(root, "file.txt"), "w") as handle:
            handle.write("some file contents\n" * 50)
        with open(os.path.join(root, "dir", "inner"), "w") as handle:
            handle.write("inner\n")
        os.symlink("../secret", os.path.join(root, "escape"))
        os.symlink("/file.txt", os.path.join(root, "dir", "abs"))
        os.symlink("loop", os.path.join(root, "loop"))
        os.mkfifo(os.path.join(root, "fifo"))
    return root


def _random_extension_instruction(rng: random.Random) -> bytes:
    tmm = [f"%tmm{rng.randrange(8)}" for _ in range(3)]
    base, index = rng.choice(["rdi", "rsi", "rbx", "r12", "r13"]), rng.choice(["rcx", "rbx", "r8", "r15"])
    memory = rng.choice([f"(%{base})", f"{rng.randrange(-128, 4096)}(%{base})", f"(%{base},%{index},1)",
                         f"{rng.choice([0, 64, 128])}(%{base},%{index},{rng.choice([1, 2, 4, 8])})"])
    sib = f"(%{base},%{index},1)" if rng.random() < 0.8 else memory
    forms = [
        ("ldtilecfg", memory), ("sttilecfg", memory), ("tilerelease", ""), ("tilezero", tmm[0]),
        ("tileloadd", f"{sib}, {tmm[0]}"), ("tileloaddt1", f"{sib}, {tmm[0]}"), ("tilestored", f"{tmm[0]}, {sib}"),
        *((name, ", ".join(tmm)) for name in ("tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps")),
        ("xgetbv", ""), ("xsetbv", ""), ("serialize", ""), ("invlpgb", ""), ("tlbsync", ""),
        ("rdpid", f"%{rng.choice(['rax', 'r9', 'rdx'])}"), ("invpcid", f"{memory}, %{rng.choice(['rax', 'r11'])}"),
        *((name, memory) for name in ("xsave", "xsave64", "xrstor", "xrstor64", "xsaveopt", "xsaveopt64",
                                      "xsavec", "xsavec64", "xsaves", "xsaves64", "xrstors", "xrstors64")),
    ]
    mnemonic, operands = rng.choice(forms)
    try:
        return encoding.encode(mnemonic, operands)
    except encoding.EncodingError:
        return b"\x90"


def _tile_config(rng: random.Random) -> bytes:
    """A 64-byte TILECFG: usually well formed, with one random field often wrong."""
    palette = rng.choice([1, 1, 1, 0, 2, 255])
    rows = [rng.choice([0, 1, 8, 16, 17]) for _ in range(16)]
    colsb = [rng.choice([0, 4, 64, 65, 3]) for _ in range(16)]
    if rng.random() < 0.5:               # a configuration LDTILECFG accepts (SDM Vol. 2A LDTILECFG)
        palette = 1
        rows = [rng.randrange(1, 17) for _ in range(8)] + [0] * 8
        colsb = [4 * rng.randrange(1, 17) for _ in range(8)] + [0] * 8
    config = bytearray(64)
    config[0], config[1] = palette, rng.choice([0, 0, 0, 1, 15])
    struct.pack_into("<16H", config, 16, *colsb)
    config[48:64] = bytes(rows)
    if rng.random() < 0.2:
        config[rng.randrange(64)] = rng.randrange(256)
    return bytes(config)


def _xsave_header(rng: random.Random) -> bytes:
    interesting = [0, 1, 2, 3, 1 << 9, 1 << 10, 1 << 17, 1 << 18, 3 << 17, (3 << 17) | 3, 1 << 62, MASK64]
    xstate_bv = rng.choice(interesting) | (rng.getrandbits(64) if rng.random() < 0.1 else 0)
    xcomp_bv = rng.choice([0, 0, 1 << 63, (1 << 63) | 3, (1 << 63) | (3 << 17) | 3, (1 << 63) | (1 << 10) | 3,
                           rng.getrandbits(64)])
    reserved = bytes(48) if rng.random() < 0.8 else rng.randbytes(48)
    return struct.pack("<QQ", xstate_bv, xcomp_bv) + reserved


def gen_extension(rng: random.Random) -> Guest:
    """Extension instructions over random tile configurations, XSAVE areas and registers."""
    data = bytearray(rng.randbytes(DATA_BYTES))
    for offset in range(0, DATA_BYTES, 1024):     # tile configurations every KiB
        data[offset:offset + 64] = _tile_config(rng)
    for offset in (0x1000, 0x2000):               # XSAVE areas: legacy region + header
        data[offset + 24:offset + 28] = struct.pack("<I", rng.choice([0x1F80, 0x1F80, 0xFFFF0000]))
        data[offset + 512:offset + 576] = _xsave_header(rng)
    steps = []
    if rng.random() < 0.7:   # arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
        steps.append(movabs("rax", 158) + movabs("rdi", 0x1023) + movabs("rsi", 18) + SYSCALL)
    for _ in range(rng.randrange(1, 24)):
        code = b""
        for register in ("rdi", "rsi", "r12", "r13"):
            code += movabs(register, DATA_VADDR + rng.choice([0, 0x400, 0x1000, 0x2000, 0x1040, 0x3FC0,
                                                               rng.randrange(DATA_BYTES)]))
        code += movabs("rbx", rng.choice([64, 64, 0, 1, -64 & MASK64, 4096, rng.getrandbits(64)]))
        code += movabs("rcx", rng.choice([0, 1, 2, 64, rng.getrandbits(32)]))
        mask = rng.choice([MASK64, 3, (3 << 17) | 3, 1 << 18, 0, rng.getrandbits(64)])
        code += movabs("rax", mask & 0xFFFFFFFF) + movabs("rdx", mask >> 32)
        code += _random_extension_instruction(rng)
        steps.append(code)
    if rng.random() < 0.8:        # most cases survive their faults and run every step
        return surviving_guest(steps, bytes(data))
    return Guest(code=b"".join(steps) + exit_group(0), data=bytes(data))


GENERATORS = {"code": gen_code, "syscall": gen_syscall, "extension": gen_extension}
INPUT_KINDS = ("elf", "asm")        # program files through `emu run` (fuzz/inputs.py)
KINDS = (*GENERATORS, "machine_api", *INPUT_KINDS)


# ---- running one case ------------------------------------------------------------------------

_PROFILE = []


def default_profile():
    """The default cost profile, parsed once per process (it is read-only)."""
    if not _PROFILE:
        from emu_x86.emu.timing.profile import DEFAULT_PROFILE, load_profile
        _PROFILE.append(load_profile(DEFAULT_PROFILE))
    return _PROFILE[0]


def _raise_hung(signum, frame):
    raise CaseHung(f"no result after {WALL_SECONDS_PER_CASE:.0f} s of wall-clock time")


def run_guest(guest: Guest, kind: str = "guest", index: int = 0) -> Outcome:
    """Run ``guest`` on a fresh machine and kernel; report how it ended and any broken property."""
    outcome = Outcome(kind, index)
    machine = kernel = None
    finished = threading.Event()
    previous = signal.signal(signal.SIGALRM, _raise_hung)
    signal.setitimer(signal.ITIMER_REAL, WALL_SECONDS_PER_CASE)
    try:
        machine = Machine(cpus=1, memory_bytes=guest.memory_bytes, max_cycles=guest.max_cycles,
                          profile=default_profile())
        # SIGALRM's handler runs only between bytecodes; a guest can stay in
        # translated blocks and C hooks, so the machine is kicked out of Unicorn too.
        machine.kick_after(WALL_SECONDS_PER_CASE, finished)
        # Strict overcommit with all of the (small) memory committable, so the 8 MiB stack fits.
        cmdline = {"sysctl.vm.overcommit_memory": "2", "sysctl.vm.overcommit_ratio": "100"} \
            if guest.strict_overcommit else {}
        kernel = Kernel(machine, KernelConfig(argv=["fuzz"], envp=[], stdin=io.BytesIO(), stdout=io.BytesIO(),
                                              stderr=io.BytesIO(), cmdline=cmdline, fs_root=guest.fs_root,
                                              fs_writable=guest.fs_writable))
        code = guest.code[:TEXT_PAGES * 4096]
        image = ProgramImage(path="fuzz", entry=TEXT_VADDR + guest.entry_offset, segments=[
            Segment(TEXT_VADDR, code, TEXT_PAGES * 4096, PROT_READ | PROT_EXEC),
            Segment(DATA_VADDR, guest.data[:DATA_BYTES], DATA_BYTES, PROT_READ | PROT_WRITE)])
        kernel.start_image(image, "fuzz")
        machine.run()
    except CaseHung as hung:
        outcome.failure = f"hang: {hung}\n" + traceback.format_exc(limit=-6)
    except Exception:  # noqa: BLE001 -- any host exception is the finding
        outcome.failure = "host exception:\n" + traceback.format_exc()
    finally:
        finished.set()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if machine is not None:
        outcome.cycles = machine.elapsed_cycles
        if outcome.failure is None:
            outcome.failure = check(guest, machine, kernel, outcome)
        machine.close()
    if kernel is not None and kernel.fs is not None:
        kernel.fs.close_all()
    return outcome


def check(guest: Guest, machine: Machine, kernel: Kernel, outcome: Outcome) -> str | None:
    process = kernel.init_process
    if process.exit_status is not None:
        signo = process.killed_by_signal
        if signo is not None:
            outcome.ending = f"signal {signals.signal_name(signo)}"
            if signo not in guest.allowed_signals:
                return f"killed by {signals.signal_name(signo)}, not a CPU exception's signal"
            if not kernel.fatal_message:
                return "killed by a signal without the one-line report"
        else:
            outcome.ending = f"exit {process.exit_status}"
    elif machine.cycle_limit_reached:
        outcome.ending = "cycle limit"
    elif machine.stopped:
        outcome.ending = "idle"            # every task asleep with nothing to wake it
    else:
        return "machine.run returned with the guest neither finished nor stopped"
    if outcome.cycles > guest.max_cycles + CYCLE_OVERSHOOT_ALLOWANCE:
        return f"ran {outcome.cycles} cycles, budget {guest.max_cycles}"
    return None


def run_machine_api_case(rng: random.Random, index: int) -> Outcome:
    """XSETBV and WRMSR(XSS, XFD, XFD_ERR) at CPL0 with random values: the machine either
    accepts the value or raises #GP(0) (SDM Vol. 2D XSETBV, Vol. 4 MSR table); then an
    XSAVEC/XRSTOR round trip of the resulting state must not raise anything else."""
    outcome = Outcome("machine_api", index)
    machine = Machine(cpus=1, memory_bytes=4 << 20, profile=default_profile())
    vcpu = machine.vcpus[0]
    try:
        for _ in range(8):
            value = rng.choice([rng.getrandbits(64), 1 << rng.randrange(64), 3, (3 << 17) | 3, 1 << 18, 1 << 10,
                                0, 1, 7])
            target = rng.choice(["xcr0", "xcr", "xss", "xfd", "xfd_err"])
            try:
                if target == "xcr0":
                    vcpu.xsetbv(0, value)
                elif target == "xcr":
                    vcpu.xsetbv(rng.getrandbits(32), value)
                else:
                    msr = {"xss": MSR_IA32_XSS, "xfd": MSR_IA32_XFD, "xfd_err": MSR_IA32_XFD_ERR}[target]
                    vcpu.write_msr(msr, value)
                    if vcpu.read_msr(msr) != value:
                        outcome.failure = f"WRMSR {msr:#x} accepted {value:#x} but reads back {vcpu.read_msr(msr):#x}"
                        break
            except GP:
                pass
        outcome.ending = f"xcr0={vcpu.xstate.xcr0:#x}"
    except CpuException as exc:
        outcome.failure = f"architected exception other than #GP: {exc!r}"
    except Exception:  # noqa: BLE001 -- any host exception is the finding
        outcome.failure = "host exception:\n" + traceback.format_exc()
    finally:
        machine.close()
    return outcome


def run_case(kind: str, seed: int, index: int) -> Outcome:
    rng = random.Random(f"{kind}:{seed}:{index}")
    if kind == "machine_api":
        return run_machine_api_case(rng, index)
    if kind in INPUT_KINDS:
        from fuzz.inputs import run_input_case
        return run_input_case(kind, rng, index)
    return run_guest(GENERATORS[kind](rng), kind, index)
