"""The guest corpus runs the same under the emulator as on the host.

Every program in ``guest/tests/native/*.c`` (glibc, ``gcc -static -O1``; a few
also ``-static-pie``) and ``guest/tests/asm/*.S`` (raw syscalls, no libc) is
built with the host toolchain and run natively on this x86-64 Linux host;
the same program is then run under ``emu run`` -- the ELF, and for assembly
also the source itself, which the emulator assembles -- with the same
arguments, environment and stdin.  Stdout and the exit status must be equal.
A guest killed by signal N shows up natively as returncode -N and from
``emu`` as 128+N with one stderr line naming the signal; both are compared
as 128+N.

The native side alone is checked too (determinism, and the expected output
each assembly guest carries in its header comment), so a broken guest is
told apart from a broken emulator.
"""
from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from tests.guestbuild import BUILD_DIR, INCLUDE_DIR, REPO, Run, emu, require_gcc

NATIVE_DIR = REPO / "guest" / "tests" / "native"
ASM_DIR = REPO / "guest" / "tests" / "asm"

# What every run gets, natively and under the emulator.
ARGS = ["one", "two words", ""]
ENV = {"LC_ALL": "C", "FOO": "bar"}
STDIN = b"line one\nline two\n"

# C guests also built as static-pie (relocated by glibc's own startup code).
STATIC_PIE = {"strings", "floats", "auxv", "signals"}

# Guests that need an emulator feature that does not exist yet (README,
# "Current limits"); remove the entry when the feature lands.
EMULATOR_XFAIL: dict[str, str] = {}

C_SOURCES = sorted(NATIVE_DIR.glob("*.c"))
ASM_SOURCES = sorted(ASM_DIR.glob("*.S"))
INTEL_SOURCES = sorted(ASM_DIR.glob("*.asm"))

EMU_TIMEOUT_S = 300
NATIVE_TIMEOUT_S = 60


def _include_digest() -> bytes:
    """Every header a .S guest might include takes part in the cache key."""
    digest = hashlib.sha256()
    if INCLUDE_DIR.is_dir():
        for header in sorted(INCLUDE_DIR.rglob("*")):
            if header.is_file():
                digest.update(str(header.relative_to(INCLUDE_DIR)).encode() + b"\0" + header.read_bytes())
    return digest.digest()


def build(source: Path, flags: list[str], *, prelude: bytes = b"", language: str | None = None) -> Path:
    """Compile ``source`` with ``gcc flags`` into guest/.build/, cached by content hash.

    Safe under pytest-xdist: each worker writes its own temporary file and
    renames it into place atomically, so nobody ever runs half a binary.
    """
    require_gcc()
    text = prelude + source.read_bytes()
    key_material = b"\0".join([" ".join(flags).encode(), (language or "").encode(), text, _include_digest()])
    key = hashlib.sha256(key_material).hexdigest()[:20]
    out_dir = BUILD_DIR / "native-cmp"
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"{source.stem}-{key}"
    if binary.exists():
        return binary
    partial = out_dir / f"{source.stem}-{key}.{os.getpid()}.tmp"
    if prelude:  # build from a copy carrying the prelude, next to the binary
        input_path = out_dir / f"{source.stem}-{key}.{os.getpid()}{source.suffix}.src"
        input_path.write_bytes(text)
    else:
        input_path = source
    command = ["gcc", *flags, "-I", str(INCLUDE_DIR)]
    if language:
        command += ["-x", language]
    command += [str(input_path), "-o", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if prelude:
        input_path.unlink(missing_ok=True)
    if result.returncode != 0:
        pytest.fail(f"building {source.relative_to(REPO)} failed:\n{' '.join(command)}\n{result.stderr}")
    partial.replace(binary)
    return binary


def build_c(source: Path, link: str) -> Path:
    return build(source, [link, "-O1"])


def build_asm(source: Path) -> Path:
    return build(source, ["-nostdlib", "-static"])


def build_intel(source: Path) -> Path:
    """An .asm guest is GNU-as Intel syntax without the directive: prepend it."""
    return build(source, ["-nostdlib", "-static"], prelude=b".intel_syntax noprefix\n", language="assembler")


def _no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_native(binary: Path) -> Run:
    """The host run; a signal death is reported as 128+N, like emu and the shell do."""
    proc = subprocess.run([str(binary), *ARGS], input=STDIN, capture_output=True, env=ENV,
                          timeout=NATIVE_TIMEOUT_S, preexec_fn=_no_core_dumps)
    status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return Run(status, proc.stdout, proc.stderr)


def run_emu(program: Path) -> Run:
    return emu("run", str(program), *ARGS, stdin=STDIN, env=ENV, timeout=EMU_TIMEOUT_S)


def describe(run: Run) -> str:
    return (f"status {run.returncode}\n--- stdout ---\n{run.stdout.decode(errors='replace')}"
            f"--- stderr ---\n{run.stderr.decode(errors='replace')}")


def assert_same(expected: Run, got: Run, what: str) -> None:
    """Stdout and exit status equal; a signal death also names the signal on stderr."""
    assert got.stdout == expected.stdout and got.returncode == expected.returncode, (
        f"{what}: emulator and host disagree\n== host: {describe(expected)}\n== emulator: {describe(got)}")
    if expected.returncode > 128:
        name = signal.Signals(expected.returncode - 128).name
        assert name in got.stderr.decode(errors="replace"), (
            f"{what}: killed by {name}, but emu's stderr does not say so: {got.stderr!r}")


def _params(sources: list[Path], variants=(None,)):
    params = []
    for source in sources:
        for variant in variants:
            if variant == "static-pie" and source.stem not in STATIC_PIE:
                continue
            marks = [pytest.mark.xdist_group(source.stem)]   # a program's variants share one build
            ident = source.stem if variant is None else f"{source.stem}-{variant}"
            params.append(pytest.param(source, *([variant] if variant else []), id=ident, marks=marks))
    return params


def _xfail_if_known(request, source: Path) -> None:
    reason = EMULATOR_XFAIL.get(source.stem)
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))


# ---------------------------------------------------------------------------
# The corpus itself: present, and correct on the host.

def test_corpus_is_there():
    assert len(C_SOURCES) >= 5, C_SOURCES
    assert len(ASM_SOURCES) >= 10, ASM_SOURCES
    assert INTEL_SOURCES, "no Intel-syntax guest"
    assert STATIC_PIE <= {source.stem for source in C_SOURCES}


@pytest.mark.parametrize("source, link", _params(C_SOURCES, ("static", "static-pie")))
def test_c_guest_is_deterministic_natively(source, link):
    """Two host runs print the same: no addresses (ASLR would move them), times or randomness."""
    binary = build_c(source, f"-{link}")
    first, second = run_native(binary), run_native(binary)
    assert first.stdout, describe(first)
    assert (first.stdout, first.returncode) == (second.stdout, second.returncode)


def expected_from_header(text: str, prefix: str) -> tuple[bytes, int]:
    """The "Expected stdout:" lines and the exit status a guest's header comment promises."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(r"(?i)expected stdout\b.*:$", line))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith(prefix):
            break
        body.append(line[len(prefix):] + "\n")
    killed = re.search(r"killed by SIG\w+ \(signal (\d+)\)", text)
    status = 128 + int(killed.group(1)) if killed else int(re.search(r"Expected exit status: (\d+)", text).group(1))
    return "".join(body).encode(), status


@pytest.mark.parametrize("source", _params(ASM_SOURCES + INTEL_SOURCES))
def test_asm_guest_header_matches_native_run(source):
    """Each assembly guest's header comment states its output; the host agrees."""
    text = source.read_text()
    prefix = "#   " if source.suffix == ".asm" else " *   "
    stdout, status = expected_from_header(text, prefix)
    binary = build_intel(source) if source.suffix == ".asm" else build_asm(source)
    got = run_native(binary)
    assert (got.stdout, got.returncode) == (stdout, status), describe(got)


# ---------------------------------------------------------------------------
# Emulator against host.

@pytest.mark.parametrize("source, link", _params(C_SOURCES, ("static", "static-pie")))
def test_c_guest_under_emulator(request, source, link):
    _xfail_if_known(request, source)
    binary = build_c(source, f"-{link}")
    assert_same(run_native(binary), run_emu(binary), f"{source.name} ({link})")


@pytest.mark.parametrize("source", _params(ASM_SOURCES))
def test_asm_guest_elf_under_emulator(request, source):
    _xfail_if_known(request, source)
    binary = build_asm(source)
    assert_same(run_native(binary), run_emu(binary), f"{source.name} (gcc-built ELF)")


@pytest.mark.parametrize("source", _params(ASM_SOURCES + INTEL_SOURCES))
def test_asm_guest_source_under_emulator(request, source):
    """The emulator's own assembler front end: run the source, compare with the GNU-built ELF."""
    _xfail_if_known(request, source)
    binary = build_intel(source) if source.suffix == ".asm" else build_asm(source)
    assert_same(run_native(binary), run_emu(source), f"{source.name} (source, assembled by emu)")
