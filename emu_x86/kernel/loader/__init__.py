"""Turning a program file into a ProgramImage: ELF executables and assembly sources."""
from __future__ import annotations

import os
import stat

from emu_x86.kernel.loader.image import LoadError, ProgramImage

ASSEMBLY_SUFFIXES = (".s", ".S", ".asm")


def load_program(path: str, pie_load_bias: int, memory_bytes: int | None = None) -> ProgramImage:
    """Read ``path`` and build its image; every bad input raises LoadError (one line).
    ``memory_bytes``: the guest's memory, which the file-backed bytes must fit in
    (ImageTooLarge otherwise, before they are read)."""
    if path.endswith(ASSEMBLY_SUFFIXES):
        if not os.path.isfile(path):
            raise LoadError(f"{path}: cannot read: {_reason(path)}")
        from emu_x86.emuas import assemble_file
        return assemble_file(path)
    # execve runs only regular files (do_open_execat: -EACCES otherwise). Opening
    # with O_NONBLOCK and checking the open file means a FIFO never blocks the
    # emulator and a device such as /dev/zero is never read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {error.strerror}") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise LoadError(f"{path}: cannot execute: {'Is a directory' if stat.S_ISDIR(status.st_mode) else 'not a regular file'}")
    # may_open(MAY_EXEC) via inode_permission: the caller's execute permission
    # (for root, any execute bit), as access(2) answers it.
    if not os.access(path, os.X_OK) or not status.st_mode & 0o111:
        os.close(fd)
        raise LoadError(f"{path}: cannot execute: Permission denied")
    from emu_x86.kernel.loader.elf import load_elf_stream
    with os.fdopen(fd, "rb") as handle:
        try:
            return load_elf_stream(path, handle, status.st_size, pie_load_bias, memory_bytes)
        except OSError as error:
            raise LoadError(f"{path}: cannot read: {error.strerror}") from None


def _reason(path: str) -> str:
    if not os.path.exists(path):
        return "No such file or directory"
    if os.path.isdir(path):
        return "Is a directory"
    return "not a regular file"
