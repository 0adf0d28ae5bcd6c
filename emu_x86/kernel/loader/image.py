"""What a loader hands the kernel: the segments of a program and where it starts.

Both front ends produce a ``ProgramImage``: the ELF loader (``elf.py``) from a
static executable, the assembler (``assembler.py``) from a ``.s``/``.S``/``.asm``
source. The kernel's ``exec`` maps the segments into a fresh address space and
builds the initial stack from it (auxv needs the program headers' address).
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4


class LoadError(Exception):
    """Bad input program: the CLI prints ``str(err)`` on one line and exits 2."""


@dataclass
class Segment:
    """A loadable segment: bytes from the file, zero fill past them, and protections."""

    vaddr: int                 # where the first byte of ``data`` goes
    data: bytes                # file-backed bytes
    mem_size_bytes: int        # >= len(data); the rest is zero-filled (.bss)
    prot: int                  # PROT_* bits
    file_offset: int | None = None   # p_offset in the ELF file (/proc/PID/maps), None: not from a file


@dataclass
class ProgramImage:
    """A program as loaded: its path, entry point, segments and where its headers are."""

    path: str
    entry: int
    segments: list[Segment] = field(default_factory=list)
    # Program headers as mapped in guest memory (AT_PHDR/AT_PHENT/AT_PHNUM).
    # None: the kernel synthesises ELF program headers for the image.
    phdr_vaddr: int | None = None
    phent_bytes: int = 56
    phnum: int = 0
    # Static-PIE images are relocated by the kernel to ``load_bias``.
    load_bias: int = 0
    symbols: dict[str, int] = field(default_factory=dict)
