"""Static x86-64 ELF executables (ET_EXEC and static-PIE) -> ProgramImage, via pyelftools.

Refuses, with one line each, what Linux's binfmt_elf would refuse or what this
machine cannot run: non-ELF files, 32-bit or non-x86-64 ELF, anything with a
PT_INTERP (dynamically linked), truncated files, program headers that are not
elf64_phdr-sized or over 64 KiB, segments outside the user address space.

Only the ELF header, the program headers and the file ranges of the PT_LOAD
segments are read (pyelftools reads the stream lazily), so a 2 GiB sparse file
costs what its segments hold, not its size.
"""
from __future__ import annotations

import io
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, LoadError, ProgramImage, Segment
from emu_x86.kernel.mm.mm import TASK_SIZE

ELF_MAGIC = b"\x7fELF"
ELF64_PHDR_BYTES = 56                 # sizeof(struct elf64_phdr)
ELF_MIN_ALIGN = 4096
MAX_PHDR_TABLE_BYTES = 65536          # binfmt_elf's load_elf_phdrs: at most 64 KiB of program headers


class ImageTooLarge(LoadError):
    """The segments' file bytes alone exceed the guest's memory (the CLI's exit 123)."""


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def load_elf(path: str, data: bytes, pie_load_bias: int) -> ProgramImage:
    """An image from a whole file's bytes (execve, which has read the file already)."""
    return load_elf_stream(path, io.BytesIO(data), len(data), pie_load_bias)


def load_elf_stream(path: str, stream: BinaryIO, file_bytes: int, pie_load_bias: int,
                    max_file_backed_bytes: int | None = None) -> ProgramImage:
    """An image from a seekable ``stream`` of ``file_bytes``, reading only what is mapped.
    ``max_file_backed_bytes``: refuse (ImageTooLarge) segments whose file bytes exceed it."""
    stream.seek(0)
    data = stream.read(64)
    if not is_elf(data):
        raise LoadError(f"{path}: not an ELF file or assembly source")
    if len(data) < 64:
        raise LoadError(f"{path}: truncated ELF file (no complete ELF header)")
    if data[4] == 1:
        raise LoadError(f"{path}: 32-bit ELF is not supported (x86-64 only)")
    if data[4] != 2:
        raise LoadError(f"{path}: invalid ELF class {data[4]}")
    try:
        elf = ELFFile(stream)
        machine = elf.header["e_machine"]
        elf_type = elf.header["e_type"]
    except (ELFError, Exception) as error:  # pyelftools raises several types on bad input
        raise LoadError(f"{path}: truncated or malformed ELF file ({error})") from None
    if machine != "EM_X86_64":
        raise LoadError(f"{path}: ELF for {machine}, not x86-64")
    if elf_type not in ("ET_EXEC", "ET_DYN"):
        raise LoadError(f"{path}: ELF type {elf_type} is not an executable")
    # load_elf_phdrs: e_phentsize must be an elf64_phdr and the table at most 64 KiB.
    if elf.header["e_phentsize"] != ELF64_PHDR_BYTES:
        raise LoadError(f"{path}: malformed ELF file (e_phentsize {elf.header['e_phentsize']}, not 56)")
    if elf.header["e_phnum"] * ELF64_PHDR_BYTES > MAX_PHDR_TABLE_BYTES:
        raise LoadError(f"{path}: malformed ELF file (program-header table over 64 KiB)")
    try:
        segments = list(elf.iter_segments())
    except (ELFError, Exception) as error:
        raise LoadError(f"{path}: truncated or malformed ELF file ({error})") from None
    if any(seg["p_type"] == "PT_INTERP" for seg in segments):
        raise LoadError(f"{path}: dynamically linked executable is not supported; build with -static")

    bias = pie_load_bias if elf_type == "ET_DYN" else 0
    image = ProgramImage(path=path, entry=elf.header["e_entry"] + bias, load_bias=bias)
    phoff = elf.header["e_phoff"]
    loads = [seg for seg in segments if seg["p_type"] == "PT_LOAD"]
    file_backed_bytes = sum(seg["p_filesz"] for seg in loads)
    if max_file_backed_bytes is not None and file_backed_bytes > max_file_backed_bytes:
        raise ImageTooLarge(f"{path}: its segments hold {file_backed_bytes} bytes of the file, more than "
                            "guest memory")
    for seg in loads:
        offset, filesz, memsz = seg["p_offset"], seg["p_filesz"], seg["p_memsz"]
        if offset + filesz > file_bytes:
            raise LoadError(f"{path}: truncated ELF file (segment at offset {offset:#x} runs past the end)")
        if memsz < filesz:
            raise LoadError(f"{path}: malformed ELF segment (memory size below file size)")
        start = seg["p_vaddr"] + bias
        # elf_map/total_mapping_size: every segment inside the user address space,
        # without wrapping (Linux fails the exec; nothing is mapped in the kernel half).
        if start >= TASK_SIZE or memsz > TASK_SIZE or start + memsz > TASK_SIZE:
            raise LoadError(f"{path}: ELF segment at {start:#x} (+{memsz:#x} bytes) lies outside the user "
                            "address space")
        flags = seg["p_flags"]
        prot = ((PROT_READ if flags & P_FLAGS.PF_R else 0) | (PROT_WRITE if flags & P_FLAGS.PF_W else 0)
                | (PROT_EXEC if flags & P_FLAGS.PF_X else 0))
        stream.seek(offset)
        contents = stream.read(filesz)
        if len(contents) != filesz:
            raise LoadError(f"{path}: truncated ELF file (segment at offset {offset:#x} runs past the end)")
        image.segments.append(Segment(vaddr=seg["p_vaddr"] + bias, data=contents, mem_size_bytes=memsz,
                                      prot=prot, file_offset=offset))
        # The program headers' address, as binfmt_elf computes AT_PHDR.
        if offset <= phoff < offset + filesz:
            image.phdr_vaddr = seg["p_vaddr"] + bias + (phoff - offset)
    if not image.segments:
        raise LoadError(f"{path}: ELF file has no loadable segments")
    image.phent_bytes = elf.header["e_phentsize"]
    image.phnum = elf.header["e_phnum"]
    for seg in segments:
        if seg["p_type"] == "PT_PHDR":
            image.phdr_vaddr = seg["p_vaddr"] + bias
    return image
