"""Turning a program file into a ProgramImage: ELF executables and assembly sources."""
from __future__ import annotations

import os

from kernel.loader.image import LoadError, ProgramImage

ASSEMBLY_SUFFIXES = (".s", ".S", ".asm")


def load_program(path: str, pie_load_bias: int) -> ProgramImage:
    """Read ``path`` and build its image; every bad input raises LoadError (one line)."""
    if path.endswith(ASSEMBLY_SUFFIXES):
        if not os.path.isfile(path):
            raise LoadError(f"{path}: cannot read: {_reason(path)}")
        from kernel.loader.assembler import assemble_file
        return assemble_file(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {error.strerror}") from None
    from kernel.loader.elf import load_elf
    return load_elf(path, data, pie_load_bias)


def _reason(path: str) -> str:
    if not os.path.exists(path):
        return "No such file or directory"
    if os.path.isdir(path):
        return "Is a directory"
    return "not a regular file"
