"""Static builds of the selftest programs, cached by content hash.

Each program is compiled as its Makefile would, plus ``-static`` (``emu run``
loads static ELFs only): ``gcc -O2 -static -pthread -D_GNU_SOURCE=`` then
the Makefile's own flags, with the 6.12 uapi overlay first on the include
path (KHDR_INCLUDES).  The binary lands in ``<cache>/build`` under a name
holding the hash of the command, the compiler version and every source, so
a new kernel tree or flag rebuilds and nothing else does.
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conformance.catalog import BASE_CFLAGS, Program


@dataclass
class Built:
    program: Program
    binary: Path | None
    error: str = ""                 # the compiler's first error line when the build failed


@functools.lru_cache(maxsize=1)
def _gcc_version() -> str:
    return subprocess.run(["gcc", "--version"], check=False, capture_output=True, text=True).stdout.split("\n")[0]


def command(program: Program, selftests: Path, overlay: Path, output: Path) -> list[str]:
    sources = [str(selftests / program.source), *[str(selftests / s) for s in program.extra_sources]]
    return ["gcc", *BASE_CFLAGS, *program.cflags, "-isystem", str(overlay), *sources, *program.libs,
            "-o", str(output)]


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line:
            return line
    return lines[-1] if lines else "no diagnostic"


def build(program: Program, selftests: Path, overlay: Path, build_dir: Path) -> Built:
    source_dir = (selftests / program.source).parent
    probe = command(program, selftests, overlay, Path("OUT"))
    material = [" ".join(probe), _gcc_version()]
    for name in (program.source, *program.extra_sources):
        material.append((selftests / name).read_text(errors="replace"))
    # Headers next to the sources (rseq-x86.h, futextest.h, helpers.h ...) count too.
    for header in sorted([*source_dir.glob("*.h"), *(source_dir.parent / "include").glob("*.h")]):
        material.append(header.name + header.read_text(errors="replace"))
    key = hashlib.sha256("\0".join(material).encode()).hexdigest()[:16]
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / f"{program.suite}-{program.name}-{key}"
    if binary.is_file():
        return Built(program, binary)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    result = subprocess.run(command(program, selftests, overlay, partial), cwd=source_dir, check=False,
                            capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return Built(program, None, _first_error(result.stderr))
    partial.replace(binary)
    return Built(program, binary)
