"""Building guest test programs and the root folder a run sees.

Build kinds, chosen by the source's suffix (``BUILD:`` may state it; for
assembly it picks between emu's own assembler and gcc):

=========  ===========================================================  =========
kind       command                                                      sources
=========  ===========================================================  =========
emu        none: ``emu run`` assembles the source itself                .S .s .asm
gcc        ``gcc -static -O2 CFLAGS`` (assembly: ``-nostdlib -static``)  .c (.S .s)
rustc      ``rustc -O -C target-feature=+crt-static --edition 2021``    .rs
go         ``CGO_ENABLED=0 go build -trimpath`` in a one-file module    .go
busybox    none: the program is ``busybox``, run as ``sh -c SCRIPT``     .sh
=========  ===========================================================  =========

Built programs are cached under the build folder by the hash of everything
that goes into them (source, included headers, flags, the compiler's
version line) and written under a private name then renamed, so parallel
workers never run half a file.  The toolchains come from
``emu_x86/emucli/toolchains.py`` (``make toolchains``); a missing one raises
``ToolchainMissing``, which the runners turn into a skip -- or, under
``CI=true``, a failure.

A run's root: ``FS: DIR`` maps DIR (next to the test) read-only; ``FS-RW:
DIR`` copies DIR into a fresh temporary folder for each run and maps that
read-write, so runs never change the tree; ``INSTALL: SOURCE PATH`` puts a
built program (or ``busybox``) at PATH inside that writable root.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from emu_x86 import TYPE_CHECKING
from emu_x86.emucli import resources, toolchains

if TYPE_CHECKING:
    from emu_x86.emucli.guesttest import GuestSpec

BASE_CFLAGS = ["-static", "-O2"]
ASM_GCC_FLAGS = ["-nostdlib", "-static"]
RUSTC_FLAGS = ["-O", "-C", "target-feature=+crt-static", "--edition", "2021"]
GO_MODULE = "module guest\n\ngo 1.19\n"
INCLUDE_DIR = resources.include_dir()
ASSEMBLY_SUFFIXES = (".S", ".s", ".asm")
# The kind a suffix builds with when BUILD: does not say (assembly: emu).
DEFAULT_KIND = {".S": "emu", ".s": "emu", ".asm": "emu", ".c": "gcc", ".rs": "rustc", ".go": "go",
                ".sh": "busybox"}
# BUILD: values each suffix accepts.
ALLOWED_KINDS = {".S": ("emu", "gcc"), ".s": ("emu", "gcc"), ".asm": ("emu",), ".c": (), ".rs": ("rustc",),
                 ".go": ("go",), ".sh": ()}
# The tool each kind needs on the host.
KIND_TOOL = {"gcc": "gcc", "rustc": "rustc", "go": "go", "busybox": "busybox"}


class BuildError(Exception):
    def __init__(self, command: list[str], output: str):
        super().__init__(output)
        self.command = command
        self.output = output


class ToolchainMissing(Exception):
    """A tool the test needs is not installed; the message says how to get it."""


def find_tool(tool: str) -> Path:
    if tool == "gcc":
        found = shutil.which("gcc")
        if found is None:
            raise ToolchainMissing("gcc is not installed")
        return Path(found)
    path = toolchains.find(tool)
    if path is None:
        raise ToolchainMissing(toolchains.missing_reason(tool))
    return path


@functools.cache
def _tool_identity(tool: str) -> str:
    if tool == "gcc":
        gcc = shutil.which("gcc")
        return "" if gcc is None else subprocess.run([gcc, "--version"], check=False, capture_output=True,
                                                     text=True).stdout.split("\n")[0]
    return toolchains.identity(tool)


def _local_includes(path: Path, text: str, seen: set | None = None) -> bytes:
    """The bytes of every ``#include "..."``/``.include`` file found next to the source
    or in guest/include, recursively, so editing a header rebuilds its users."""
    seen = seen if seen is not None else set()
    blob = b""
    for name in re.findall(r'^\s*(?:#\s*include|\.include)\s*"([^"]+)"', text, re.MULTILINE):
        for directory in (path.parent, INCLUDE_DIR):
            candidate = (directory / name).resolve()
            if candidate.is_file() and candidate not in seen:
                seen.add(candidate)
                inner = candidate.read_text(errors="replace")
                blob += name.encode() + b"\0" + inner.encode() + _local_includes(candidate, inner, seen)
                break
    return blob


def build_command(spec: GuestSpec, output: Path) -> list[str]:
    """The compiler command (for ``go``: run inside the one-file module folder)."""
    kind = spec.build_kind
    if kind == "rustc":
        return [str(toolchains.find("rustc") or "rustc"), *RUSTC_FLAGS, *spec.cflags, str(spec.path),
                "-o", str(output)]
    if kind == "go":
        return [str(toolchains.find("go") or "go"), "build", "-trimpath", *spec.cflags, "-o", str(output), "."]
    if spec.path.suffix == ".c":
        flags = [*BASE_CFLAGS, *spec.cflags]
    else:
        flags = [*ASM_GCC_FLAGS, *spec.cflags]
        if spec.path.suffix == ".asm":
            raise BuildError([], "BUILD: gcc does not apply to .asm (Intel syntax) sources")
    return ["gcc", *flags, "-I", str(spec.path.parent), "-I", str(INCLUDE_DIR), str(spec.path), "-o", str(output)]


def go_environment() -> dict[str, str]:
    """Go with no C, no network and its caches in the toolchain cache (CI's HOME
    may not be writable; GOCACHE must be)."""
    cache = toolchains.cache_dir()
    return {**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(cache / "go-build"), "GOPATH": str(cache / "gopath"),
            "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GO111MODULE": "on"}


def describe_build(spec: GuestSpec, output: Path) -> str:
    """A shell line that rebuilds the program (for reproduce commands)."""
    words = " ".join(shlex.quote(w) for w in build_command(spec, output))
    if spec.build_kind == "go":
        module = shlex.quote(GO_MODULE.replace("\n", "\\n"))
        return (f"d=$(mktemp -d) && cp {shlex.quote(str(spec.path))} $d/main.go && printf {module} > $d/go.mod"
                f" && (cd $d && CGO_ENABLED=0 GOPROXY=off {words})")
    return words


def needs_build(spec: GuestSpec) -> bool:
    return spec.build_kind in ("gcc", "rustc", "go")


def required_tools(spec: GuestSpec) -> list[str]:
    """Every tool the test needs: its own build kind, its INSTALLs', REQUIRES:."""
    tools = [KIND_TOOL[spec.build_kind]] if spec.build_kind in KIND_TOOL else []
    for source, _ in spec.installs:
        if source == "busybox":
            tools.append("busybox")
        else:
            tools.append(KIND_TOOL[DEFAULT_KIND[Path(source).suffix]])
    return list(dict.fromkeys([*tools, *spec.requires]))


def build(spec: GuestSpec, build_dir: Path) -> Path:
    """The program ``emu run`` gets: the source itself for emu's assembler, busybox
    for a ``.sh`` test, else the built static ELF from the cache."""
    kind = spec.build_kind
    if kind == "emu":
        return spec.path
    if kind == "busybox":
        return find_tool("busybox")
    tool = KIND_TOOL[kind]
    find_tool(tool)
    text = spec.path.read_text(errors="replace")
    probe = build_command(spec, Path("OUT"))
    key_material = b"\0".join([kind.encode(), " ".join(probe[1:-4] if kind == "gcc" else probe[1:]).encode(),
                               _tool_identity(tool).encode(), text.encode(),
                               _local_includes(spec.path, text) if kind == "gcc" else b""])
    key = hashlib.sha256(key_material).hexdigest()[:16]
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / f"{spec.path.stem}-{key}"
    if binary.exists():
        return binary
    handle, partial_name = tempfile.mkstemp(prefix=f"{spec.path.stem}-{key}.", suffix=".tmp", dir=build_dir)
    os.close(handle)
    partial = Path(partial_name)     # private to this process and thread
    command = build_command(spec, partial)
    if kind == "go":
        with tempfile.TemporaryDirectory(prefix="emu-go-") as module:
            shutil.copyfile(spec.path, Path(module) / "main.go")
            (Path(module) / "go.mod").write_text(GO_MODULE)
            result = subprocess.run(command, cwd=module, env=go_environment(), check=False, capture_output=True,
                                    text=True)
    else:
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(build_command(spec, binary), (result.stderr or result.stdout).strip())
    partial.replace(binary)      # atomic: parallel workers never run half a file
    return binary


def needs_root(spec: GuestSpec) -> bool:
    """A fresh writable root per run (FS-RW: or INSTALL:)."""
    return spec.fs_rw is not None or bool(spec.installs)


def prepare_root(spec: GuestSpec, build_dir: Path, root: Path) -> None:
    """Fill the run's writable ``root``: a copy of the FS-RW folder, then each INSTALL."""
    from emu_x86.emucli.guesttest import program_spec
    if spec.fs_rw:
        shutil.copytree(spec.fs_rw, root, symlinks=True, dirs_exist_ok=True)
    for source, guest_path in spec.installs:
        program = find_tool("busybox") if source == "busybox" else \
            build(program_spec(spec.path.parent / source), build_dir)
        target = root / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(program, target)
        target.chmod(0o755)


def describe_root(spec: GuestSpec, build_dir: Path, cwd: Path) -> str:
    """Shell lines that rebuild a run's root in $ROOT (for reproduce commands)."""
    from emu_x86.emucli.guesttest import _display_path, program_spec
    lines = ["ROOT=$(mktemp -d)"]
    if spec.fs_rw:
        lines.append(f"cp -a {shlex.quote(_display_path(spec.fs_rw, cwd))}/. $ROOT")
    for source, guest_path in spec.installs:
        if source == "busybox":
            origin = str(toolchains.find("busybox") or "busybox")
        else:
            try:
                origin = _display_path(build(program_spec(spec.path.parent / source), build_dir), cwd)
            except (BuildError, ToolchainMissing):
                origin = source
        target = "$ROOT/" + guest_path.lstrip("/")
        lines.append(f"mkdir -p $(dirname {target}) && cp {shlex.quote(origin)} {target}")
    return " && ".join(lines)
