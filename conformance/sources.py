"""Linux's selftest sources, from Debian's ``linux-source-6.12`` package.

The package is a 150 MB .deb holding ``usr/src/linux-source-6.12.tar.xz``.
``apt-get download`` fetches it into the cache (``$EMU_CONFORMANCE_CACHE``,
default ``~/.cache/emu-conformance``); only the selftest folders the catalog
uses, ``tools/include`` and the uapi headers are extracted, streamed out of
the .deb without writing the whole tarball.  Nothing here is ever committed:
the cache lives outside the repository.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGE = "linux-source-6.12"
TOP = "linux-source-6.12"          # the tarball's top folder
# What the catalog needs from the tree (tar wildcards below TOP/).
MEMBERS = (
    "tools/testing/selftests/rseq/*",
    "tools/testing/selftests/membarrier/*",
    "tools/testing/selftests/futex/*",
    "tools/testing/selftests/x86/*",
    "tools/testing/selftests/kselftest*",
    "tools/testing/selftests/lib.mk",
    "tools/include/*",
    "arch/x86/include/asm/desc_defs.h",     # x86/sigreturn.c includes it by relative path
)
# uapi headers newer in 6.12 than in the host's linux-libc-dev (Debian 12 ships
# 6.1): copied into an overlay that goes first on the include path, standing in
# for the `make headers_install` tree (KHDR_INCLUDES) the selftests expect.
# The 6.12 source headers of these files need no header_install rewriting
# (no __user, no kernel-only #ifdefs).
UAPI_OVERLAY = ("linux/membarrier.h", "linux/rseq.h")
MEMBERS += tuple(f"include/uapi/{header}" for header in UAPI_OVERLAY)


class SourceError(Exception):
    """Getting or unpacking the sources failed; the message is one line for the user."""


def cache_root() -> Path:
    configured = os.environ.get("EMU_CONFORMANCE_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "emu-conformance"


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, check=False, capture_output=True, text=True)


def download_deb(cache: Path, log) -> Path:
    """The cached .deb, fetched with ``apt-get download`` when missing (``apt-get
    update`` first only when apt does not know the package yet)."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{PACKAGE}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise SourceError("apt-get not found: the selftest sources come from Debian's linux-source-6.12 package")
    log(f"downloading {PACKAGE} (about 150 MB) with apt-get download")
    result = _run(["apt-get", "download", PACKAGE], cwd=debs)
    if result.returncode != 0:
        if os.geteuid() != 0:
            raise SourceError(f"apt-get download {PACKAGE} failed and `apt-get update` needs root: "
                              f"{_last_line(result.stderr)}")
        log("apt-get update (the package lists do not know the package)")
        update = _run(["apt-get", "update", "-q"])
        if update.returncode != 0:
            raise SourceError(f"apt-get update failed: {_last_line(update.stderr)}")
        result = _run(["apt-get", "download", PACKAGE], cwd=debs)
        if result.returncode != 0:
            raise SourceError(f"apt-get download {PACKAGE} failed: {_last_line(result.stderr)}")
    found = sorted(debs.glob(f"{PACKAGE}_*.deb"))
    if not found:
        raise SourceError(f"apt-get download {PACKAGE} left no .deb in {debs}")
    return found[-1]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if not line.startswith("W:")]
    return lines[-1] if lines else text.strip()


def linux_tree(log=print, status=None) -> Path:
    """The extracted tree (``.../linux-source-6.12``), unpacking it on first use.

    ``status(text)`` (optional) reports the long steps for a progress display."""
    cache = cache_root()
    deb = download_deb(cache, log)
    version = deb.name.split("_")[1]
    root = cache / "src" / version
    tree = root / TOP
    stamp = root / ".extracted"
    members = "\n".join(MEMBERS)
    if stamp.is_file() and stamp.read_text() == members:
        return tree
    if status:
        status(f"extracting selftests from {deb.name} (xz, about 30 s)")
    log(f"extracting the selftests from {deb.name}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    # dpkg-deb streams the data tarball; the inner .tar.xz is piped to a second
    # tar that keeps only MEMBERS.
    deb_tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    inner = subprocess.Popen(["tar", "-xO", f"./usr/src/{TOP}.tar.xz"], stdin=deb_tar.stdout,
                             stdout=subprocess.PIPE)
    deb_tar.stdout.close()
    unpack = subprocess.run(["tar", "-xJ", "-C", str(root), "--wildcards", *[f"{TOP}/{m}" for m in MEMBERS]],
                            stdin=inner.stdout, check=False, capture_output=True, text=True)
    inner.stdout.close()
    if inner.wait() != 0 or deb_tar.wait() != 0 or unpack.returncode != 0:
        raise SourceError(f"unpacking {deb.name} failed: {_last_line(unpack.stderr) or 'tar error'}")
    overlay = tree / "usr-include-overlay"
    for header in UAPI_OVERLAY:
        target = overlay / header
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / "include" / "uapi" / header, target)
    stamp.write_text(members)
    return tree


def selftests(tree: Path) -> Path:
    return tree / "tools" / "testing" / "selftests"


def uapi_overlay(tree: Path) -> Path:
    return tree / "usr-include-overlay"
