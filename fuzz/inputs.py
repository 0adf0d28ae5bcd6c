"""Fuzz kinds ``elf`` and ``asm``: hostile program files through the whole `emu run` path.

The other kinds build guests in memory; these two hand ``emucli.main.main``
a program file, as a user does, so the loader, the assembler (and cpp for
``.S``) and the limits armed before them are what is tested:

- ``elf``: a real static binary (glibc hello, static-PIE hello, a bare ``ld``
  program) with 1-4 mutations of its ELF header and program headers (fields
  set to boundary values: 0, all ones, 2^47, kernel-half addresses, huge
  sizes...), truncations, byte flips, sparse growth to 2 GiB, overlapping
  PT_LOADs, or a special file in its place (FIFO, device, directory, empty,
  not executable, a symlink loop).
- ``asm``: sources of random and hostile statements: instructions with
  out-of-range operands, every data directive with extreme arguments, nested
  ``.rept``/``.irp``/``.irpc``, self-recursive macros, ``.incbin``/``.include``
  of special or huge files (and of the source itself), garbage, unbalanced
  blocks; ``.S`` sources add cpp bombs and special ``#include`` targets.

Every case runs in a forked child (``emu run --memory 64 --timeout 5``); its
peak resident memory is ru_maxrss from wait4 less this process's resident
set at the fork, since a forked child starts with the parent's pages resident
(Linux sets its high-water mark from them; under pytest the parent may hold
600 MB). Properties: the child
exits (no hang past the timeout plus WALL_GRACE_SECONDS), with a contract
status (never 70, never a host signal), prints no traceback, a usage error is
one ``emu:`` line, the emulator's peak memory stays within the guest's
memory plus 512 MiB, and nothing it started outlives it (cpp and cc1 work in
the case's directory: no process may be left there).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

from fuzz import Outcome

GUEST_MEMORY_MIB = 64
TIMEOUT_SECONDS = 5
MAX_CYCLES = 5_000_000
WALL_GRACE_SECONDS = 25.0            # start-up and teardown on a loaded 2-core machine
HOST_MEMORY_LIMIT_BYTES = (GUEST_MEMORY_MIB << 20) + (512 << 20)
EXIT_INTERNAL_ERROR = 70

_WORKDIR: list[str] = []


def workdir() -> str:
    """This run's scratch directory: base binaries and special files, made once (forked
    workers share it; removed when the process that made it exits)."""
    if _WORKDIR:
        return _WORKDIR[0]
    import atexit
    import tempfile
    base = tempfile.mkdtemp(prefix="emu-fuzz-inputs-")
    atexit.register(shutil.rmtree, base, True)
    hello = os.path.join(base, "hello.c")
    with open(hello, "w") as handle:
        handle.write('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    for name, flags in (("hello-static", ["-static"]), ("hello-pie", ["-static-pie", "-fPIE"])):
        subprocess.run(["gcc", "-O1", *flags, "-o", os.path.join(base, name), hello], check=True)
    bare = os.path.join(base, "bare.s")
    with open(bare, "w") as handle:
        handle.write(".globl _start\n_start: mov $60, %eax\nmov $7, %edi\nsyscall\n.data\n.quad 1\n")
    subprocess.run(["as", "-o", bare + ".o", bare], check=True)
    subprocess.run(["ld", "-o", os.path.join(base, "bare"), bare + ".o"], check=True)
    os.mkdir(os.path.join(base, "directory"))
    os.symlink("loop", os.path.join(base, "loop"))
    with open(os.path.join(base, "big.bin"), "wb") as handle:
        handle.truncate(2 << 30)                       # sparse: costs no disk
    with open(os.path.join(base, "blob.bin"), "wb") as handle:
        handle.write(bytes(range(256)) * 4)
    _WORKDIR.append(base)
    # Import what `emu run` needs once, here: each forked case then starts as the
    # fork server's children do (emu_x86/emucli/forkserver.py), without paying the imports.
    import emu_x86.emuas.assembler  # noqa: F401
    import emu_x86.emucli.main  # noqa: F401
    import emu_x86.kernel.kernel  # noqa: F401
    import emu_x86.kernel.loader.elf  # noqa: F401
    from emu_x86.emu.machine import Machine  # noqa: F401
    return base


# ---- elf ---------------------------------------------------------------------------------------

# (offset, width) of the ELF header fields (elf64_hdr) and program-header fields (elf64_phdr).
ELF_HEADER_FIELDS = {"class": (4, 1), "data": (5, 1), "version_ident": (6, 1), "osabi": (7, 1),
                     "type": (16, 2), "machine": (18, 2), "version": (20, 4), "entry": (24, 8),
                     "phoff": (32, 8), "shoff": (40, 8), "flags": (48, 4), "ehsize": (52, 2),
                     "phentsize": (54, 2), "phnum": (56, 2), "shentsize": (58, 2), "shnum": (60, 2),
                     "shstrndx": (62, 2)}
PHDR_FIELDS = {"type": (0, 4), "flags": (4, 4), "offset": (8, 8), "vaddr": (16, 8), "paddr": (24, 8),
               "filesz": (32, 8), "memsz": (40, 8), "align": (48, 8)}
BOUNDARY_VALUES = (0, 1, 2, 0x38, 0x40, 0x1000, 0xFFFF, 1 << 31, 1 << 32, 1 << 40, (1 << 47) - 0x1000, 1 << 47,
                   1 << 63, 0xFFFFFFFF81000000, 0xFFFF888000000000, (1 << 64) - 1, (1 << 64) - 0x1000)
SPECIAL_PROGRAMS = ("fifo", "/dev/zero", "/dev/urandom", "/dev/null", "directory", "loop", "missing", "empty",
                    "noexec")


def _field_value(rng: random.Random, old: int, width: int) -> int:
    choice = rng.random()
    if choice < 0.5:
        value = rng.choice(BOUNDARY_VALUES)
    elif choice < 0.75:
        value = old + rng.choice((-1, 1)) * rng.choice((1, 8, 0x1000, 0x10000, 1 << 30))
    elif choice < 0.9:
        value = old << rng.randrange(1, 24)
    else:
        value = rng.getrandbits(8 * width)
    return value & ((1 << (8 * width)) - 1)


def _mutate_elf(rng: random.Random, data: bytearray) -> None:
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    mutation = rng.choice(("header", "phdr", "phdr", "phdr", "truncate", "flip", "overlap"))
    if mutation == "header":
        offset, width = ELF_HEADER_FIELDS[rng.choice(list(ELF_HEADER_FIELDS))]
        old = int.from_bytes(data[offset:offset + width], "little")
        data[offset:offset + width] = _field_value(rng, old, width).to_bytes(width, "little")
    elif mutation in ("phdr", "overlap") and phnum and phoff + 56 * phnum <= len(data):
        index = rng.randrange(phnum)
        entry = phoff + 56 * index
        if mutation == "overlap":
            loads = [i for i in range(phnum) if struct.unpack_from("<I", data, phoff + 56 * i)[0] == 1]
            if len(loads) >= 2:       # one PT_LOAD's range laid over another's (the later one wins)
                source, target = rng.sample(loads, 2)
                vaddr, = struct.unpack_from("<Q", data, phoff + 56 * source + 16)
                # An earlier mutation may have left vaddr near 2^64: the sum wraps, as a u64 field does.
                shifted = (vaddr + rng.choice((0, 0x800, 0x1000))) & ((1 << 64) - 1)
                struct.pack_into("<Q", data, phoff + 56 * target + 16, shifted)
            return
        offset, width = PHDR_FIELDS[rng.choice(list(PHDR_FIELDS))]
        old = int.from_bytes(data[entry + offset:entry + offset + width], "little")
        data[entry + offset:entry + offset + width] = _field_value(rng, old, width).to_bytes(width, "little")
    elif mutation == "truncate":
        del data[rng.randrange(len(data)):]
    elif mutation == "flip":
        for _ in range(rng.randrange(1, 16)):
            position = rng.randrange(min(len(data), 4096)) if rng.random() < 0.7 else rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)


def gen_elf(rng: random.Random, case_dir: str) -> str:
    base = workdir()
    if rng.random() < 0.08:
        special = rng.choice(SPECIAL_PROGRAMS)
        if special == "empty":
            path = os.path.join(case_dir, "empty")
            open(path, "wb").close()
            os.chmod(path, 0o755)
            return path
        if special == "noexec":
            path = os.path.join(case_dir, "noexec")
            shutil.copyfile(os.path.join(base, "hello-static"), path)
            os.chmod(path, 0o644)
            return path
        if special == "fifo":
            return os.path.join(case_dir, "fifo")
        return special if special.startswith("/") else os.path.join(base, special)
    data = bytearray(open(os.path.join(base, rng.choice(("hello-static", "hello-pie", "bare"))), "rb").read())
    for _ in range(rng.randrange(1, 5)):
        if len(data) < 64:
            break
        _mutate_elf(rng, data)
    sparse = rng.random() < 0.1          # grown to 2 GiB with a hole: only what is mapped may be read
    path = os.path.join(case_dir, "program")
    with open(path, "wb") as handle:
        handle.write(data)
        if sparse:
            handle.truncate(2 << 30)
    os.chmod(path, 0o755)
    return path


# ---- asm ---------------------------------------------------------------------------------------

INSTRUCTIONS = ("nop", "ret", "syscall", "push %rax", "pop %rbx", "mov $60, %eax", "xor %edi, %edi",
                "add $1, %rcx", "lea 1f(%rip), %rsi", "jmp 1f", "jne 1b", "call 2f", "cmp $0x7f, %al",
                "movq $-1, (%rsp)", "rep movsb", "ud2", "hlt", "int3", "cpuid", "rdtsc", "xgetbv", "ldtilecfg (%rax)",
                "tilezero %tmm0", "xsavec (%rsp)", "lock incl (%rax)", "div %rcx", "movabs $0x123456789abcdef0, %r8")
HOSTILE_NUMBERS = ("-1", "0", "1", "0x7fffffffffffffff", "-0x8000000000000000", "0xffffffffffffffff",
                   "1<<46", "1<<63", "1<<64", "1000000", "60000000", "0x7fffffffffff", "9" * 30, "9" * 5000,
                   "0b" + "1" * 70, "0777", "08", "'a'", "(1+", "1/0", "1%0", "-(1<<62)*4", "undefined_symbol")


def _number(rng: random.Random) -> str:
    return rng.choice(HOSTILE_NUMBERS) if rng.random() < 0.6 else str(rng.randrange(-300, 300))


def _file_operand(rng: random.Random, source_path: str) -> str:
    base = workdir()
    return rng.choice((os.path.join(os.path.dirname(source_path), "fifo"), "/dev/zero", os.path.join(base, "big.bin"),
                       os.path.join(base, "blob.bin"), os.path.join(base, "directory"), "/nonexistent",
                       os.path.join(base, "loop"), source_path))


def _statement(rng: random.Random, depth: int, source_path: str) -> list[str]:
    kind = rng.random()
    if kind < 0.25:
        line = rng.choice(INSTRUCTIONS)
        if rng.random() < 0.3:
            line = f"mov {_number(rng)}(%rip), %rax" if rng.random() < 0.5 else f"mov ${_number(rng)}, %rax"
        return [line]
    if kind < 0.5:
        directive = rng.choice((".byte", ".word", ".long", ".quad", ".octa", ".uleb128", ".sleb128", ".skip",
                                ".space", ".fill", ".align", ".p2align", ".balign", ".comm x{n},", ".lcomm y{n},",
                                ".set s{n},", ".org"))
        arguments = ", ".join(_number(rng) for _ in range(rng.randrange(1, 4)))
        return [directive.format(n=rng.randrange(5)) + " " + arguments]
    if kind < 0.6:
        return [rng.choice((".text", ".data", ".bss", ".section .rodata", '.section .x,"awx",@nobits',
                            '.section .y,"a",@progbits', ".pushsection .data", ".popsection", ".previous"))]
    if kind < 0.68:
        offsets = ", ".join(_number(rng) for _ in range(rng.randrange(0, 3)))
        directive = ".incbin" if rng.random() < 0.6 else ".include"
        return [f'{directive} "{_file_operand(rng, source_path)}"' + (f", {offsets}" if offsets and
                                                                       directive == ".incbin" else "")]
    if kind < 0.82 and depth < 4:
        body = [line for _ in range(rng.randrange(1, 4)) for line in _statement(rng, depth + 1, source_path)]
        opener = rng.choice((f".rept {_number(rng)}", ".irp v, 1, 2, 3", ".irpc c, " + "x" * rng.choice((3, 1000)),
                             f".if {_number(rng)}", ".ifdef s1"))
        closer = ".endif" if opener.startswith(".if") else ".endr"
        if rng.random() < 0.05:
            closer = ""               # unbalanced
        return [opener, *body, closer]
    if kind < 0.9 and depth < 4:
        name = f"m{rng.randrange(3)}"
        body = [line for _ in range(rng.randrange(1, 3)) for line in _statement(rng, depth + 1, source_path)]
        recursive = [f"{name} \\a-1", f"{name} \\a-1"] if rng.random() < 0.5 else []
        return [f".macro {name} a=1", ".ifne \\a", *body, *recursive, ".endif", ".endm",
                f"{name} {rng.choice(('3', '40', '1000', '-1'))}"]
    if kind < 0.95:
        return [rng.choice((".exitm", ".end", ".error \"x\"", ".endr", ".endm", ".else", ".purgem m0",
                            ".intel_syntax noprefix", ".att_syntax", ".code32", ".globl _start", "_start:",
                            "1:", "2:", "label_{}:".format(rng.randrange(3))))]
    return ["".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 40)))]


CPP_LINES = ("#define X0 x", "#include \"{fifo}\"", "#include \"/dev/zero\"", "#include \"{big}\"",
             "#include <linux_syscalls.h>", "#if 1", "#endif", "#error stop", "#define F(a) a a a a",
             "#include \"{self}\"")


def gen_asm(rng: random.Random, case_dir: str) -> str:
    suffix = rng.choice((".s", ".s", ".S", ".asm"))
    path = os.path.join(case_dir, "program" + suffix)
    lines = [".globl _start", "_start:"]
    for _ in range(rng.randrange(1, 25)):
        lines.extend(_statement(rng, 0, path))
    if rng.random() < 0.6:
        lines.extend(["1:", "2:", "mov $60, %eax", "xor %edi, %edi", "syscall"])
    if suffix == ".S" and rng.random() < 0.5:
        base = workdir()
        for _ in range(rng.randrange(1, 4)):
            line = rng.choice(CPP_LINES).format(fifo=os.path.join(case_dir, "fifo"), big=os.path.join(base, "big.bin"),
                                                self=path)
            lines.insert(rng.randrange(len(lines) + 1), line)
        if rng.random() < 0.3:      # a definition that doubles 2^n times
            lines[:0] = [f"#define X{i + 1} X{i} X{i}" for i in range(rng.choice((10, 20, 30)))] + ["#define X0 x"]
            lines.append(f"X{rng.choice((10, 20, 30))}")
    if suffix == ".asm":
        lines = [line.replace("%", "").replace("$", "") for line in lines]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


INPUT_GENERATORS = {"elf": gen_elf, "asm": gen_asm}


# ---- running a case ----------------------------------------------------------------------------

def run_program(program: str, case_dir: str) -> tuple[int | None, int | None, float, int, str]:
    """``emu run`` of ``program`` in a forked child: (exit status, signal, seconds, peak RSS bytes, stderr)."""
    stderr_path = os.path.join(case_dir, "stderr")
    args = ["run", "--memory", str(GUEST_MEMORY_MIB), "--timeout", str(TIMEOUT_SECONDS),
            "--max-cycles", str(MAX_CYCLES), program]
    from emu_x86.emucli.limits import note_fork, resident_bytes
    inherited = resident_bytes()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:                                   # the child: a fresh `emu run`, never returns
        status = EXIT_INTERNAL_ERROR
        try:
            note_fork()                            # the parent's pages are not the case's
            null = os.open(os.devnull, os.O_RDWR)
            err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, 0)
            from emu_x86.emucli.main import main
            status = main(args)
        except SystemExit as leave:
            status = leave.code if isinstance(leave.code, int) else 1
        except BaseException:                      # noqa: BLE001 -- reported as exit 70 below
            import traceback
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status if isinstance(status, int) else EXIT_INTERNAL_ERROR)
    deadline = started + TIMEOUT_SECONDS + WALL_GRACE_SECONDS
    hung = False
    while True:
        waited, wait_status, usage = os.wait4(pid, os.WNOHANG)
        if waited:
            break
        if time.monotonic() > deadline:
            hung = True
            os.kill(pid, signal.SIGKILL)
            waited, wait_status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.01)
    seconds = time.monotonic() - started
    with open(stderr_path, errors="replace") as handle:
        stderr = handle.read(64 << 10)
    peak = max(0, usage.ru_maxrss * 1024 - inherited)
    if hung:
        return None, None, seconds, peak, stderr
    if os.WIFSIGNALED(wait_status):
        return None, os.WTERMSIG(wait_status), seconds, peak, stderr
    return os.WEXITSTATUS(wait_status), None, seconds, peak, stderr


def processes_in(directory: str) -> list[int]:
    """Pids whose working directory is ``directory`` (cpp runs in the source's directory)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == directory:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def leftover_processes(directory: str, grace_seconds: float = 3.0) -> list[int]:
    """Processes still working in ``directory`` after ``grace_seconds`` (a SIGKILLed
    group's members take a moment to die once their parent is reaped)."""
    deadline = time.monotonic() + grace_seconds
    while True:
        pids = processes_in(directory)
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def check_program_run(status, host_signal, seconds, peak, stderr) -> str | None:
    if status is None and host_signal is None:
        return f"hang: no exit {seconds:.0f} s after start (timeout {TIMEOUT_SECONDS} s)"
    if host_signal is not None:
        return f"the emulator died of host signal {signal.Signals(host_signal).name}\n{stderr[-2000:]}"
    if status == EXIT_INTERNAL_ERROR:
        return f"exit 70 (internal error)\n{stderr[-2000:]}"
    if "Traceback" in stderr:
        return f"traceback on stderr\n{stderr[-2000:]}"
    if peak > HOST_MEMORY_LIMIT_BYTES:
        return f"peak host memory {peak >> 20} MiB over {HOST_MEMORY_LIMIT_BYTES >> 20} MiB"
    if status == 2:
        lines = stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("emu: "):
            return f"usage error is not one 'emu:' line: {stderr[:500]!r}"
    return None


def ending_of(status, host_signal) -> str:
    if status is None:
        return "hang" if host_signal is None else f"host-signal {host_signal}"
    return f"exit {status}"


def run_input_case(kind: str, rng: random.Random, index: int) -> Outcome:
    outcome = Outcome(kind, index)
    case_dir = os.path.join(workdir(), f"case-{os.getpid()}")
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    os.mkfifo(os.path.join(case_dir, "fifo"))    # each case's own
    try:
        program = INPUT_GENERATORS[kind](rng, case_dir)
        status, host_signal, seconds, peak, stderr = run_program(program, case_dir)
        outcome.ending = ending_of(status, host_signal)
        outcome.peak_bytes = peak
        outcome.seconds = seconds
        outcome.failure = check_program_run(status, host_signal, seconds, peak, stderr)
        leftover = leftover_processes(case_dir) if outcome.failure is None else []
        if leftover:
            outcome.failure = f"processes outlived emu in the case's directory (a leaked cpp?): {leftover}"
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    return outcome
