"""Static x86-64 ELF executables (ET_EXEC and static-PIE) -> ProgramImage.

Refuses, with one line each, what Linux's binfmt_elf would refuse or what this
machine cannot run: non-ELF files, 32-bit or non-x86-64 ELF, anything with a
PT_INTERP (dynamically linked), truncated files, program headers that are not
elf64_phdr-sized or over 64 KiB, segments outside the user address space.

Only the ELF header, the program headers and the file ranges of the PT_LOAD
segments are read, so a 2 GiB sparse file costs what its segments hold, not its
size. The two fixed-size records are unpacked here with struct (elf64_hdr and
elf64_phdr of include/uapi/linux/elf.h): a general ELF library costs a tenth of
a second of imports at every start and reads nothing more that binfmt_elf uses.
"""
from __future__ import annotations

import io
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, LoadError, ProgramImage, Segment
from emu_x86.kernel.mm.mm import TASK_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"
ADDRESS_MASK = (1 << 64) - 1
ELF64_PHDR_BYTES = 56                 # sizeof(struct elf64_phdr)
ELF_MIN_ALIGN = 4096
MAX_PHDR_TABLE_BYTES = 65536          # binfmt_elf's load_elf_phdrs: at most 64 KiB of program headers

# struct elf64_hdr after e_ident[16]: e_type, e_machine, e_version, e_entry, e_phoff,
# e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
ELF64_HDR = struct.Struct("<HHIQQQIHHHHHH")
# struct elf64_phdr: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
ELF64_PHDR = struct.Struct("<IIQQQQQQ")
ELFDATA2LSB = 1
EM_X86_64 = 62
ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
EM_NAMES = {3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM",
            50: "EM_IA_64", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV", 258: "EM_LOONGARCH"}
PT_LOAD, PT_INTERP, PT_PHDR = 1, 3, 6
PF_X, PF_W, PF_R = 1, 2, 4


class _Header:
    """The elf64_hdr fields the loader reads."""

    def __init__(self, data: bytes):
        (self.e_type, self.e_machine, _, self.e_entry, self.e_phoff, _, _, _, self.e_phentsize,
         self.e_phnum, _, _, _) = ELF64_HDR.unpack_from(data, 16)


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
    if data[5] != ELFDATA2LSB:
        raise LoadError(f"{path}: big-endian ELF is not supported (x86-64 only)")
    header = _Header(data)
    if header.e_machine != EM_X86_64:
        name = EM_NAMES.get(header.e_machine, f"machine {header.e_machine}")
        raise LoadError(f"{path}: ELF for {name}, not x86-64")
    if header.e_type not in (2, 3):
        name = ET_NAMES.get(header.e_type, f"type {header.e_type:#x}")
        raise LoadError(f"{path}: ELF type {name} is not an executable")
    # load_elf_phdrs: e_phentsize must be an elf64_phdr and the table at most 64 KiB.
    if header.e_phentsize != ELF64_PHDR_BYTES:
        raise LoadError(f"{path}: malformed ELF file (e_phentsize {header.e_phentsize}, not 56)")
    if header.e_phnum * ELF64_PHDR_BYTES > MAX_PHDR_TABLE_BYTES:
        raise LoadError(f"{path}: malformed ELF file (program-header table over 64 KiB)")
    phoff = header.e_phoff
    table_bytes = header.e_phnum * ELF64_PHDR_BYTES
    if phoff + table_bytes > file_bytes:
        raise LoadError(f"{path}: truncated or malformed ELF file (program headers at {phoff:#x} run past "
                        "the end)")
    stream.seek(phoff)
    table = stream.read(table_bytes)
    if len(table) != table_bytes:
        raise LoadError(f"{path}: truncated ELF file (program headers run past the end)")
    segments = [dict(zip(("p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz",
                          "p_align"), fields))
                for fields in ELF64_PHDR.iter_unpack(table)]
    if any(seg["p_type"] == PT_INTERP for seg in segments):
        raise LoadError(f"{path}: dynamically linked executable is not supported; build with -static")

    bias = pie_load_bias if header.e_type == 3 else 0      # ET_DYN: static-PIE
    # load_elf_binary adds the bias in unsigned long arithmetic and, with no
    # interpreter, fails the exec (-EINVAL) when BAD_ADDR(entry): at or past TASK_SIZE.
    entry = (header.e_entry + bias) & ADDRESS_MASK
    if entry >= TASK_SIZE:
        raise LoadError(f"{path}: ELF entry point {entry:#x} lies outside the user address space")
    image = ProgramImage(path=path, entry=entry, load_bias=bias)
    loads = [seg for seg in segments if seg["p_type"] == PT_LOAD]
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
        prot = ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
                | (PROT_EXEC if flags & PF_X else 0))
        stream.seek(offset)
        contents = stream.read(filesz)
        if len(contents) != filesz:
            raise LoadError(f"{path}: truncated ELF file (segment at offset {offset:#x} runs past the end)")
        image.segments.append(Segment(vaddr=seg["p_vaddr"] + bias, data=contents, mem_size_bytes=memsz,
                                      prot=prot, file_offset=offset))
        # The program headers' address, as binfmt_elf computes AT_PHDR.
        if offset <= phoff < offset + filesz:
            image.phdr_vaddr = (seg["p_vaddr"] + bias + (phoff - offset)) & ADDRESS_MASK
    if not image.segments:
        raise LoadError(f"{path}: ELF file has no loadable segments")
    image.phent_bytes = header.e_phentsize
    image.phnum = header.e_phnum
    for seg in segments:
        if seg["p_type"] == PT_PHDR:     # AT_PHDR is an unsigned long: it wraps, unchecked
            image.phdr_vaddr = (seg["p_vaddr"] + bias) & ADDRESS_MASK
    return image
