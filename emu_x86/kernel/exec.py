"""execve's second half: map a ProgramImage into a fresh mm and build the initial stack.

The stack is laid out as Linux's binfmt_elf create_elf_tables() leaves it
(x86-64 psABI §3.4.1): from the top, an 8-byte zero, the execfn string, the
environment and argument strings, the platform string, 16 random bytes, then
(16-byte aligned) the auxiliary vector, envp, argv and argc at RSP.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE, ProgramImage, Segment
from emu_x86.kernel.mm.frames import FrameAllocator
from emu_x86.kernel.rseq import RSEQ_ALIGN, RSEQ_FEATURE_SIZE
from emu_x86.kernel.mm.mm import (
    MAP_ANONYMOUS, MAP_GROWSDOWN, MAP_PRIVATE, STACK_LIMIT_BYTES, STACK_TOP, MmStruct,
    page_align_down, page_align_up,
)

# Auxiliary vector tags (include/uapi/linux/auxvec.h, arch/x86/include/uapi/asm/auxvec.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51
AT_RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN = 27, 28
AT_SYSINFO_EHDR = 33

PLATFORM = b"x86_64"
# Where the kernel puts synthesized ELF headers for images without their own
# (assembly sources): the page below .text, where GNU ld puts them.
SYNTHETIC_HEADER_VADDR = 0x400000
GUEST_UID = GUEST_GID = 1000
# Initially populated stack: enough for the strings and tables of any sane
# argv/envp; the rest of the 8 MiB stack VMA faults in on demand.
INITIAL_STACK_PAGES = 32


@dataclass(frozen=True)
class ExecLayout:
    """What exec left where (mm_struct's start_code .. env_end and saved_auxv), read
    by /proc/PID/stat, cmdline, environ and auxv; shared by fork, replaced by exec."""
    start_code: int
    end_code: int
    start_data: int
    end_data: int
    start_stack: int
    arg_start: int
    arg_end: int
    env_start: int
    env_end: int
    auxv: bytes


@dataclass
class InitialState:
    """Where a new program starts: entry point, initial stack pointer and program break."""

    rip: int
    rsp: int
    brk: int


def synthesize_program_headers(image: ProgramImage) -> Segment:
    """ELF header + PT_PHDR + one PT_LOAD per segment, mapped read-only at 0x400000."""
    phnum = 1 + len(image.segments) + 1
    phdrs = []
    header_size = 64 + 56 * phnum
    phdrs.append(struct.pack("<IIQQQQQQ", 6, 4, 64, SYNTHETIC_HEADER_VADDR + 64,
                             SYNTHETIC_HEADER_VADDR + 64, 56 * phnum, 56 * phnum, 8))  # PT_PHDR, R
    phdrs.append(struct.pack("<IIQQQQQQ", 1, 4, 0, SYNTHETIC_HEADER_VADDR, SYNTHETIC_HEADER_VADDR,
                             header_size, header_size, PAGE_SIZE))
    for seg in image.segments:
        flags = ((4 if seg.prot & PROT_READ else 0) | (2 if seg.prot & PROT_WRITE else 0)
                 | (1 if seg.prot & PROT_EXEC else 0))
        phdrs.append(struct.pack("<IIQQQQQQ", 1, flags, 0, seg.vaddr, seg.vaddr, len(seg.data),
                                 seg.mem_size_bytes, PAGE_SIZE))
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, image.entry, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    data = ehdr + b"".join(phdrs)
    image.phdr_vaddr = SYNTHETIC_HEADER_VADDR + 64
    image.phent_bytes = 56
    image.phnum = phnum
    return Segment(vaddr=SYNTHETIC_HEADER_VADDR, data=data, mem_size_bytes=len(data), prot=PROT_READ)


def map_image(mm: MmStruct, image: ProgramImage) -> int:
    """Map every segment; return the initial program break.

    As binfmt_elf's elf_load does, in program-header order (MAP_FIXED, so a page
    two segments share takes the later segment's mapping): the pages that hold
    file bytes are mapped with the segment's protection, and the whole pages of
    zero fill after them (.bss; all of a segment without file bytes) come from
    vm_brk_flags, which maps them read-write (executable only if the segment
    is), whatever the segment's flags say. Only the file-backed pages are
    populated now; .bss is demand paged, so a huge p_memsz costs nothing until
    it is touched (and is charged to the commitment like any writable private
    mapping: -ENOMEM when it cannot be, which the caller reports as a program
    too large for guest memory)."""
    segments = list(image.segments)
    if image.phdr_vaddr is None:
        segments.insert(0, synthesize_program_headers(image))
    ranges: list[tuple[int, int, int, Segment | None]] = []     # (start, end, prot, file segment), disjoint
    for seg in segments:
        start = page_align_down(seg.vaddr)
        file_end = page_align_up(seg.vaddr + len(seg.data)) if seg.data else start
        end = max(page_align_up(seg.vaddr + seg.mem_size_bytes), file_end)
        brk_prot = PROT_READ | PROT_WRITE | (seg.prot & PROT_EXEC)
        for low, high, prot, backing in ((start, file_end, seg.prot, seg), (file_end, end, brk_prot, None)):
            if low < high:
                ranges = _map_over(ranges, low, high, prot, backing)
    for start, end, prot, backing in ranges:
        if backing is None:                 # vm_brk_flags: anonymous memory
            mm.add_vma(start, end, prot, MAP_PRIVATE | MAP_ANONYMOUS)
            continue
        # The file page behind ``start`` (vm_pgoff), as /proc/PID/maps shows it.
        pgoff = 0 if backing.file_offset is None else (backing.file_offset - (backing.vaddr - start)) // PAGE_SIZE
        mm.add_vma(start, end, prot, MAP_PRIVATE, "image", pgoff=max(0, pgoff))
    for seg in segments:
        for page in range(page_align_down(seg.vaddr), page_align_up(seg.vaddr + len(seg.data)), PAGE_SIZE):
            mm.populate(page, mm.find_vma(page).prot)
        mm.write_initial(seg.vaddr, seg.data)
    end = max(seg.vaddr + seg.mem_size_bytes for seg in segments)
    return page_align_up(end)


def _map_over(ranges: list, start: int, end: int, prot: int, backing: Segment | None) -> list:
    """``ranges`` with [start, end) mapped over them as MAP_FIXED does (the new mapping wins)."""
    kept = []
    for low, high, old_prot, old_backing in ranges:
        if high <= start or low >= end:
            kept.append((low, high, old_prot, old_backing))
            continue
        if low < start:
            kept.append((low, start, old_prot, old_backing))
        if high > end:
            kept.append((end, high, old_prot, old_backing))
    kept.append((start, end, prot, backing))
    return sorted(kept, key=lambda item: item[0])


def build_stack(mm: MmStruct, image: ProgramImage, execfn: str, argv: list[str], envp: list[str],
                seed: int, hwcap: int, hwcap2: int, minsigstksz: int, sysinfo_ehdr: int = 0,
                ids: tuple[int, int] = (GUEST_UID, GUEST_GID)) -> int:
    """Create the stack VMA, write argc/argv/envp/auxv (AT_UID/AT_GID from ``ids``,
    the process's real and effective ids); return the initial RSP."""
    stack_low = STACK_TOP - STACK_LIMIT_BYTES
    mm.add_vma(stack_low, STACK_TOP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, "[stack]")
    for page in range(STACK_TOP - INITIAL_STACK_PAGES * PAGE_SIZE, STACK_TOP, PAGE_SIZE):
        mm.populate(page, PROT_READ | PROT_WRITE)

    sp = STACK_TOP - 8                      # the terminating zero word at the very top

    def push_bytes(data: bytes) -> int:
        nonlocal sp
        sp -= len(data)
        mm.write_initial(sp, data)
        return sp

    execfn_addr = push_bytes(execfn.encode() + b"\0")
    env_end = sp
    env_addrs = [push_bytes(s.encode() + b"\0") for s in reversed(envp)][::-1]
    arg_end = env_start = sp
    arg_addrs = [push_bytes(s.encode() + b"\0") for s in reversed(argv)][::-1]
    arg_start = sp
    sp &= ~0xF
    platform_addr = push_bytes(PLATFORM + b"\0")
    random_bytes = random.Random(seed).randbytes(16)
    sp &= ~0xF
    random_addr = push_bytes(random_bytes)
    sp &= ~0xF

    # ARCH_DLINFO first: the vDSO's address when one is mapped (arch/x86/include/asm/elf.h).
    auxv = [(AT_SYSINFO_EHDR, sysinfo_ehdr)] if sysinfo_ehdr else []
    auxv += [
        (AT_HWCAP, hwcap), (AT_PAGESZ, PAGE_SIZE), (AT_CLKTCK, 100),
        (AT_PHDR, image.phdr_vaddr or 0), (AT_PHENT, image.phent_bytes), (AT_PHNUM, image.phnum),
        (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, image.entry),
        (AT_UID, ids[0]), (AT_EUID, ids[0]), (AT_GID, ids[1]), (AT_EGID, ids[1]),
        (AT_SECURE, 0), (AT_RANDOM, random_addr), (AT_HWCAP2, hwcap2),
        (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform_addr),
        # create_elf_tables: offsetof(struct rseq, end) and __alignof__(struct rseq).
        (AT_RSEQ_FEATURE_SIZE, RSEQ_FEATURE_SIZE), (AT_RSEQ_ALIGN, RSEQ_ALIGN),
        (AT_MINSIGSTKSZ, minsigstksz),
        (AT_NULL, 0),
    ]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    table = struct.pack(f"<{len(words)}Q", *words)
    sp -= len(table)
    sp &= ~0xF                               # RSP is 16-byte aligned at argc (psABI)
    mm.write_initial(sp, table)
    code = [seg for seg in image.segments if seg.prot & PROT_EXEC]
    data = [seg for seg in image.segments if seg.prot & PROT_WRITE and not seg.prot & PROT_EXEC]
    mm.exec_layout = ExecLayout(
        start_code=min((seg.vaddr for seg in code), default=0),
        end_code=max((seg.vaddr + len(seg.data) for seg in code), default=0),
        start_data=min((seg.vaddr for seg in data), default=0),
        end_data=max((seg.vaddr + len(seg.data) for seg in data), default=0),
        start_stack=sp, arg_start=arg_start, arg_end=arg_end, env_start=env_start, env_end=env_end,
        auxv=b"".join(struct.pack("<QQ", key, value) for key, value in auxv))
    return sp


def exec_image(frames: FrameAllocator, image: ProgramImage, execfn: str, argv: list[str], envp: list[str],
               seed: int, hwcap: int, hwcap2: int, minsigstksz: int, vdso=None,
               ids: tuple[int, int] = (GUEST_UID, GUEST_GID)) -> tuple[MmStruct, InitialState]:
    """load_elf_binary's mapping half: the image, the heap, the vDSO (``vdso``: the
    kernel's kernel/vdso.Vdso, None for none) and the stack with its tables."""
    mm = MmStruct(frames)
    brk = map_image(mm, image)
    mm.start_brk = mm.brk = brk
    sysinfo_ehdr = vdso.map(mm) if vdso is not None else 0
    rsp = build_stack(mm, image, execfn, argv, envp, seed, hwcap, hwcap2, minsigstksz, sysinfo_ehdr, ids)
    return mm, InitialState(rip=image.entry, rsp=rsp, brk=brk)
