"""Build C guest programs with the host gcc, cached by content hash.

``build_c(path)`` compiles ``gcc -static -O2 -pthread`` (with ``guest/include``
on the include path) and returns the cached binary. The cache key is the hash
of the compiler's version line, the flags and the *preprocessed* source, so an
edit to an included header rebuilds too. Binaries live under
``$EMU_BUILD_CACHE`` (default ``${XDG_CACHE_HOME:-~/.cache}/emu-x86/build``);
each is written to a temporary name and renamed, so concurrent builds of the
same source never see half a file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from emu_x86.emucli import resources

C_FLAGS = ("-static", "-O2", "-pthread")
INCLUDE_DIR = resources.include_dir()


class BuildError(Exception):
    """A guest program could not be built (message is one line)."""


def cache_dir() -> Path:
    configured = os.environ.get("EMU_BUILD_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "emu-x86" / "build"


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("gcc not found: building C workloads needs the host gcc (with static glibc)")
    return gcc


def _first_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line:
            return line.strip()
    return lines[0].strip() if lines else "no diagnostic"


def build_c(source: Path, flags: tuple[str, ...] = C_FLAGS) -> Path:
    """Compile the C file ``source`` into a static binary; return its cached path."""
    gcc = _gcc()
    include = ["-I", str(INCLUDE_DIR)] if INCLUDE_DIR.is_dir() else []
    preprocess = subprocess.run([gcc, *flags, *include, "-E", str(source)], check=False, capture_output=True, text=True)
    if preprocess.returncode != 0:
        raise BuildError(f"cannot build {source}: {_first_error_line(preprocess.stderr)}")
    version = subprocess.run([gcc, "--version"], check=False, capture_output=True, text=True).stdout.split("\n", 1)[0]
    # Line markers name the source path; drop them so the key is the content only.
    body = "\n".join(line for line in preprocess.stdout.splitlines() if not line.startswith("# "))
    key = hashlib.sha256("\0".join([version, " ".join(flags), body]).encode()).hexdigest()[:24]
    directory = cache_dir()
    binary = directory / f"{source.stem}-{key}"
    if binary.is_file():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{source.stem}-{key}.{os.getpid()}.tmp"
    compile_run = subprocess.run([gcc, *flags, *include, str(source), "-o", str(partial)],
                                 check=False, capture_output=True, text=True)
    if compile_run.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"cannot build {source}: {_first_error_line(compile_run.stderr)}")
    partial.replace(binary)
    return binary
