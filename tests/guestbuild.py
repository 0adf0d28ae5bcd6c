"""Helpers for tests that build guest programs with the host toolchain and run them.

Builds are cached by content hash under guest/.build/ so repeated and
parallel (xdist) runs compile each source once.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "guest" / ".build"
INCLUDE_DIR = REPO / "guest" / "include"


# CI (CI=true) has every tool these tests need: a missing one there is a
# failure, never a silent skip; on a developer machine the test is skipped.
IN_CI = os.environ.get("CI") == "true"


def missing_prerequisite(reason: str) -> None:
    """A host tool or CPU feature the test needs is absent: skip, or fail under CI."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


def require_gcc() -> None:
    if shutil.which("gcc") is None:
        missing_prerequisite("gcc is not installed")


def build(source_text: str, suffix: str, flags: list[str]) -> Path:
    """Compile ``source_text`` (``.c`` or ``.S``) with gcc ``flags``; return the cached binary."""
    require_gcc()
    key = hashlib.sha256((suffix + "\0" + " ".join(flags) + "\0" + source_text).encode()).hexdigest()[:20]
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    binary = BUILD_DIR / f"t-{key}"
    if binary.exists():
        return binary
    source = BUILD_DIR / f"t-{key}{suffix}"
    source.write_text(source_text)
    partial = BUILD_DIR / f"t-{key}.{os.getpid()}.tmp"
    subprocess.run(["gcc", *flags, "-I", str(INCLUDE_DIR), str(source), "-o", str(partial)],
                   check=True, capture_output=True)
    partial.replace(binary)   # atomic, so concurrent workers never see half a file
    return binary


def build_asm(source_text: str) -> Path:
    """An AT&T .S guest with _start and raw syscalls, linked static without libc."""
    return build(source_text, ".S", ["-nostdlib", "-static"])


def build_c(source_text: str, *extra: str) -> Path:
    return build(source_text, ".c", ["-static", "-O1", *extra])


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.decode(errors="replace").splitlines()


def emu(*args: str, stdin: bytes = b"", env: dict | None = None, timeout: float = 120) -> Run:
    """Run ``emu`` as a user would (a subprocess), returning status and output."""
    command = [sys.executable, "-m", "emu_x86.emucli", *args]
    proc = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout,
                          env=env if env is not None else {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
                          cwd=REPO)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def native(binary: Path, *args: str, stdin: bytes = b"", env: dict | None = None) -> Run:
    proc = subprocess.run([str(binary), *args], input=stdin, capture_output=True, timeout=60,
                          env=env if env is not None else {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return Run(code, proc.stdout, proc.stderr)
