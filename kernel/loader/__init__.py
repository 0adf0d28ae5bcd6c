"""Turning a program file into a ProgramImage: ELF executables and assembly sources."""
from __future__ import annotations

import os
import stat

from kernel.loader.image import LoadError, ProgramImage

ASSEMBLY_SUFFIXES = (".s", ".S", ".asm")


def load_program(path: str, pie_load_bias: int) -> ProgramImage:
    """Read ``path`` and build its image; every bad input raises LoadError (one line)."""
    if path.endswith(ASSEMBLY_SUFFIXES):
        if not os.path.isfile(path):
            raise LoadError(f"{path}: cannot read: {_reason(path)}")
        from emuas import assemble_file
        return assemble_file(path)
    # execve runs only regular files (do_open_execat: -EACCES otherwise). Opening
    # with O_NONBLOCK and checking the open file means a FIFO never blocks the
    # emulator and a device such as /dev/zero is never read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {error.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise LoadError(f"{path}: cannot execute: {'Is a directory' if stat.S_ISDIR(mode) else 'not a regular file'}")
    with os.fdopen(fd, "rb") as handle:
        try:
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
