"""Toolchains that guest tests build with, found or installed from Debian's packages.

Guest tests in Rust (``.rs``), Go (``.go``) and busybox shell (``.sh``) need
``rustc``, ``go`` and a static ``busybox``.  ``make toolchains`` (a
dependency of ``make test``) runs ``python -m emu_x86.emucli.toolchains``, which
installs what is missing through the package registry's ordinary client --
never a hand download -- and prints one line per tool it fetched:

- rustc: the machine's (rustup's ``~/.cargo/bin`` or Debian's); when absent,
  ``apt-get install rustc``.  ``rustc -O -C target-feature=+crt-static``
  links a static glibc binary.
- go: ``apt-get install golang-go`` (Go 1.19 on Debian 12) when absent.
- busybox: ``apt-get download busybox-static`` and ``dpkg -x`` into the
  toolchain cache (``$EMU_TOOLCHAINS``, default
  ``${XDG_CACHE_HOME:-~/.cache}/emu-x86/toolchains``): the host's own busybox,
  if any, may be dynamically linked, which ``emu run`` cannot load.

``apt-get update`` runs only when apt does not know a package yet.  A tool
that cannot be had is reported on stderr; under ``CI=true`` that is an
error (exit 1) so CI cannot skip the tests that need it, elsewhere the
tests needing it are skipped with the reason (see ``missing_reason``).
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = ("rustc", "go", "busybox")
# Debian package that provides each tool (installed with apt-get install,
# except busybox-static, unpacked into the cache with dpkg -x).
PACKAGES = {"rustc": "rustc", "go": "golang-go", "busybox": "busybox-static"}


def in_ci() -> bool:
    """CI runs with CI=true: there a missing toolchain fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def cache_dir() -> Path:
    configured = os.environ.get("EMU_TOOLCHAINS")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "emu-x86" / "toolchains"


def find(tool: str) -> Path | None:
    """The tool's executable, or None."""
    if tool == "busybox":
        override = os.environ.get("EMU_BUSYBOX")
        candidates = [Path(override)] if override else []
        candidates.append(cache_dir() / "busybox" / "bin" / "busybox")
        return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    found = shutil.which(tool)
    if found:
        return Path(found)
    fallbacks = {"rustc": [os.path.join(os.path.expanduser("~"), ".cargo", "bin", "rustc")],
                 "go": sorted(glob.glob("/usr/lib/go-*/bin/go"), reverse=True)}
    return next((Path(p) for p in fallbacks.get(tool, []) if os.access(p, os.X_OK)), None)


def missing_reason(tool: str) -> str:
    return (f"{tool} not found: run `make toolchains` (installs {PACKAGES[tool]} from Debian's packages)"
            if tool in PACKAGES else f"{tool} not found")


def identity(tool: str) -> str:
    """The tool's version line, for build-cache keys."""
    path = find(tool)
    if path is None:
        return ""
    flag = {"go": ["version"], "busybox": ["--help"]}.get(tool, ["--version"])
    result = subprocess.run([str(path), *flag], check=False, capture_output=True, text=True)
    return (result.stdout or result.stderr).split("\n")[0].strip()


class InstallError(Exception):
    pass


def _apt(arguments: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for the dpkg lock rather than fail when another apt-get runs.
    return subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", *arguments], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True)


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if not line.startswith("W:")]
    return lines[-1] if lines else f"exit status {result.returncode}"


_updated = False


def _apt_with_update(arguments: list[str], cwd: Path | None = None) -> None:
    """``apt-get ARGS``; when it fails, ``apt-get update`` once and try again."""
    global _updated
    if shutil.which("apt-get") is None:
        raise InstallError("apt-get not found")
    result = _apt(arguments, cwd)
    if result.returncode != 0 and not _updated:
        update = _apt(["update", "-q"])
        _updated = True
        if update.returncode != 0:
            raise InstallError(f"apt-get update failed: {_last_error(update)}")
        result = _apt(arguments, cwd)
    if result.returncode != 0:
        raise InstallError(f"apt-get {' '.join(arguments)} failed: {_last_error(result)}")


def install(tool: str) -> Path:
    """Install ``tool`` from its Debian package; returns its path."""
    if tool == "busybox":
        target = cache_dir() / "busybox"
        with tempfile.TemporaryDirectory(prefix="emu-busybox-") as scratch:
            _apt_with_update(["download", PACKAGES[tool]], cwd=Path(scratch))
            debs = sorted(Path(scratch).glob("busybox-static_*.deb"))
            if not debs:
                raise InstallError("apt-get download busybox-static left no .deb")
            unpacked = Path(scratch) / "root"
            result = subprocess.run(["dpkg", "-x", str(debs[-1]), str(unpacked)], check=False,
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise InstallError(f"dpkg -x {debs[-1].name} failed: {_last_error(result)}")
            (target / "bin").mkdir(parents=True, exist_ok=True)
            partial = target / "bin" / f"busybox.{os.getpid()}.tmp"
            shutil.copyfile(unpacked / "bin" / "busybox", partial)
            partial.chmod(0o755)
            partial.replace(target / "bin" / "busybox")
    else:
        _apt_with_update(["install", "-y", "-q", "--no-install-recommends", PACKAGES[tool]])
    path = find(tool)
    if path is None:
        raise InstallError(f"{PACKAGES[tool]} installed but {tool} is still not found")
    return path


def ensure(tools: tuple[str, ...] = TOOLS) -> list[str]:
    """Install every missing tool; returns the problems (empty: all present)."""
    problems = []
    for tool in tools:
        if find(tool) is not None:
            continue
        try:
            path = install(tool)
        except InstallError as error:
            problems.append(f"{tool}: {error}")
            continue
        print(f"toolchains: fetched {tool} ({PACKAGES[tool]}): {path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emu_x86.emucli.toolchains",
                                     description="Install the toolchains guest tests build with (rustc, go, busybox).")
    parser.add_argument("--check", action="store_true", help="only report what is missing; install nothing")
    parser.add_argument("tools", nargs="*", metavar="TOOL", help=f"among {', '.join(TOOLS)} (default: all)")
    options = parser.parse_args(argv)
    unknown = [tool for tool in options.tools if tool not in TOOLS]
    if unknown:
        parser.error(f"unknown tool {unknown[0]!r} (known: {', '.join(TOOLS)})")
    tools = tuple(options.tools) or TOOLS
    if options.check:
        missing = [tool for tool in tools if find(tool) is None]
        for tool in missing:
            print(f"toolchains: missing {tool}", file=sys.stderr)
        return 1 if missing else 0
    problems = ensure(tools)
    for problem in problems:
        print(f"toolchains: cannot install {problem}", file=sys.stderr)
    if problems and in_ci():
        print("toolchains: CI=true, so this is an error (tests needing these tools would be skipped)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
