"""Build emu_x86/kernel/vdso/vdso64.so from vdso64.S and vdso.lds with GNU as and ld.

    python -m emu_x86.kernel.vdso.build           # rewrite vdso64.so
    python -m emu_x86.kernel.vdso.build --check   # exit 1 if the committed image differs

The image is committed, so installing the emulator needs no binutils; this
script is how it was made, and tests/test_vdso.py rebuilds it (when as and ld
are on the machine) to check that the committed bytes match the source.
The flags make the output reproducible: no build id, a fixed soname, and the
input's timestamps never reach an ELF file.
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "vdso64.S"
LINKER_SCRIPT = HERE / "vdso.lds"
IMAGE = HERE / "vdso64.so"
LD_FLAGS = ("-shared", "-soname=linux-vdso.so.1", "--hash-style=both", "--build-id=none", "-Bsymbolic",
            "-z", "noexecstack", "-z", "max-page-size=4096", "--no-undefined")


def tools_available() -> bool:
    return shutil.which("as") is not None and shutil.which("ld") is not None


def build_image() -> bytes:
    """Assemble and link the vDSO; the linked shared object's bytes."""
    with tempfile.TemporaryDirectory() as scratch:
        objfile = pathlib.Path(scratch) / "vdso64.o"
        output = pathlib.Path(scratch) / "vdso64.so"
        subprocess.run(["as", "--64", "-o", str(objfile), str(SOURCE)], check=True)
        subprocess.run(["ld", *LD_FLAGS, "-T", str(LINKER_SCRIPT), "-o", str(output), str(objfile)], check=True)
        subprocess.run(["strip", "--strip-debug", str(output)], check=True)
        return output.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed image instead of writing")
    options = parser.parse_args(argv)
    data = build_image()
    if options.check:
        same = IMAGE.exists() and IMAGE.read_bytes() == data
        print(f"{IMAGE.name}: {'up to date' if same else 'differs from its source'}")
        return 0 if same else 1
    IMAGE.write_bytes(data)
    print(f"wrote {IMAGE} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
