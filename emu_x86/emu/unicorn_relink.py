"""The installed Unicorn's libunicorn, linked again with -Bsymbolic.

The wheel's libunicorn.so.2 refers to its own functions and data through
~30,000 relocations against its own exported symbols (R_X86_64_64 and
GLOB_DAT), which the dynamic linker resolves by symbol lookup at every
load: 24 M host instructions, about 5% of a glibc hello's `emu run`
(callgrind). The package also ships the same objects as lib/libunicorn.a;
linked with -Bsymbolic those references bind at link time, leaving the
loader relative relocations only (1.1 M instructions), and calls inside the
library go direct instead of through its PLT. The code is the package's
own objects, so what it does is the same.

``python -m emu_x86.emu.unicorn_relink`` (run by `make` after installing)
links it into emu_x86.emu.uclib.RELINKED_DIRECTORY with a note naming the
files it came from (uclib.library_identity). uclib loads it only while the
note matches the installed package, so upgrading Unicorn falls back to the
package's library until the next `make`. Without gcc, or without the
archive, nothing is linked and the package's library is used.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from emu_x86.emu import uclib

# The library's entry points: the linker pulls in from the archive what they
# reach, as the package's own shared build does (its dynamic symbols match,
# tests/test_unicorn_relink.py).
ENTRY_PREFIX = "uc_"


def _entry_points(package_library: str) -> list[str]:
    from elftools.elf.elffile import ELFFile
    with open(package_library, "rb") as handle:
        symbols = ELFFile(handle).get_section_by_name(".dynsym")
        return sorted({symbol.name for symbol in symbols.iter_symbols()
                       if symbol.name.startswith(ENTRY_PREFIX) and symbol["st_shndx"] != "SHN_UNDEF"
                       and symbol["st_info"]["type"] == "STT_FUNC"})


def package_library() -> str | None:
    for directory in uclib._package_directories():
        path = os.path.join(directory, "lib", uclib.LIBRARY_NAME)
        if os.path.isfile(path):
            return path
    return None


def relink(package: str, directory: str = uclib.RELINKED_DIRECTORY) -> str:
    """Link ``package``'s archive into ``directory`` (whole or not at all) and
    write its note; the library's path. Raises OSError or
    subprocess.CalledProcessError when it cannot."""
    identity = uclib.library_identity(package)
    if not identity:
        raise OSError(f"no libunicorn.a beside {package}")
    archive = os.path.join(os.path.dirname(package), "libunicorn.a")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, uclib.LIBRARY_NAME)
    handle, partial = tempfile.mkstemp(prefix=uclib.LIBRARY_NAME + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".args", dir=directory) as arguments:
            # The ~100 entry points as -u options, through a response file.
            arguments.write("\n".join(f"-Wl,-u,{name}" for name in _entry_points(package)))
            arguments.flush()
            subprocess.run(["gcc", "-shared", "-o", partial, f"@{arguments.name}", archive,
                            "-Wl,-Bsymbolic", f"-Wl,-soname,{uclib.LIBRARY_NAME}", "-Wl,-z,noexecstack",
                            "-lm", "-lpthread"], check=True, capture_output=True, text=True)
        # The library first, then its note: a note matching the installed
        # package is only ever read beside the library linked from it (an
        # older note does not match it, and the package's library is used).
        note = target + ".source"
        with open(note + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(identity)
        os.chmod(partial, 0o755)         # mkstemp's file is the owner's alone
        os.replace(partial, target)
        os.replace(note + ".tmp", note)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def main() -> int:
    package = package_library()
    if package is None:
        print("emu: libunicorn not relinked: the unicorn package's library was not found", file=sys.stderr)
        return 0
    started = time.monotonic()
    try:
        target = relink(package)
    except FileNotFoundError as error:
        print(f"emu: libunicorn not relinked: {error.filename or error}: not found", file=sys.stderr)
        return 0
    except subprocess.CalledProcessError as error:
        last = (error.stderr or "").strip().splitlines()[-1:] or ["gcc failed"]
        print(f"emu: libunicorn not relinked: {last[0]}", file=sys.stderr)
        return 0
    except OSError as error:
        print(f"emu: libunicorn not relinked: {error}", file=sys.stderr)
        return 0
    print(f"linked {target} with -Bsymbolic ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
