"""The vDSO and its data page (arch/x86/entry/vdso/vma.c, lib/vdso/).

At boot the kernel puts the prebuilt image (vdso64.so, built from vdso64.S by
``python -m emu_x86.kernel.vdso.build``) into frames of its own, and a [vvar] data
page beside it; exec maps both into every new program below ``mmap_base``
(map_vdso: [vvar] VVAR_PAGES pages, then [vdso]) and passes the image's
address as AT_SYSINFO_EHDR, where glibc -- static binaries included -- finds
``__vdso_clock_gettime`` and the other LINUX_2.6 symbols (setup_vdso,
dl_vdso_vsym).

The data page is this kernel's own layout, not Linux's vdso_data:

    VVAR_CYCLES_OFFSET    u64  the running vCPU's cycle clock, stored by the
                               machine's hot path when the vDSO's clock-read
                               block (vdso_clock_ns) starts, before it runs
                               (Machine.set_cycle_clock_word)
    VVAR_TSC_HZ_OFFSET    u64  cycles per second (Kernel.tsc_hz)
    VVAR_REALTIME_OFFSET  u64  CLOCK_REALTIME - CLOCK_MONOTONIC in ns
    VVAR_TAI_OFFSET       u64  CLOCK_TAI - CLOCK_REALTIME in ns (0: no NTP has set it)

so the vDSO computes exactly what ``Kernel.now_ns`` computes and a clock read
costs what its instructions cost in the model, with no system call. Both
mappings are read-only for the process; fork shares their frames, and the
kernel holds one reference to each frame for ever.
"""
from __future__ import annotations

import os
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ
from emu_x86.kernel.mm.mm import MAP_PRIVATE

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.mm.mm import MmStruct

IMAGE_PATH = os.path.join(os.path.dirname(os.path.realpath(__file__)), "vdso64.so")   # a str: no pathlib at start-up
VVAR_PAGES = 4                    # the linker script's VVAR_PAGES: [vvar] sits this far below [vdso]
VVAR_CYCLES_OFFSET = 0
VVAR_TSC_HZ_OFFSET = 8
VVAR_REALTIME_OFFSET = 16
VVAR_TAI_OFFSET = 24
# The function whose first block loads the clock word: the machine refreshes the
# word when that block starts (VCpu.set_cycle_clock_block, set at switch_to).
CLOCK_READ_SYMBOL = "vdso_clock_ns"


class SpecialMapping:
    """vm_special_mapping: pages the kernel owns, mapped into processes (``VMA.backing``)."""

    def __init__(self, name: str, frames: list[int]) -> None:
        self.name = name
        self.frames = frames

    def get_frame(self, index: int) -> int:
        return self.frames[index]

    def vma_open(self, mm, vma) -> None:
        pass

    def vma_close(self, mm, vma) -> None:
        pass


class Vdso:
    """The image and the data page, in frames allocated once at boot."""

    def __init__(self, kernel: "Kernel") -> None:
        from emu_x86.kernel.kernel import REALTIME_EPOCH_NS
        with open(IMAGE_PATH, "rb") as handle:
            image = handle.read()
        self.image_bytes = len(image)
        frames = kernel.frames
        memory = frames.memory
        self.vvar = SpecialMapping("[vvar]", [frames.alloc() for _ in range(VVAR_PAGES)])
        image_pages = (len(image) + PAGE_SIZE - 1) // PAGE_SIZE
        self.vdso = SpecialMapping("[vdso]", [frames.alloc() for _ in range(image_pages)])
        for index, frame in enumerate(self.vdso.frames):
            memory.write(frame, image[index * PAGE_SIZE:(index + 1) * PAGE_SIZE])
        data = self.vvar.frames[0]
        memory.write(data + VVAR_TSC_HZ_OFFSET, struct.pack("<Q", kernel.tsc_hz))
        memory.write(data + VVAR_REALTIME_OFFSET, struct.pack("<Q", REALTIME_EPOCH_NS))
        memory.write(data + VVAR_TAI_OFFSET, struct.pack("<Q", 0))
        kernel.machine.set_cycle_clock_word(data + VVAR_CYCLES_OFFSET)
        self.clock_block_offset = symbol_offset(image, CLOCK_READ_SYMBOL)

    def map(self, mm: "MmStruct") -> int:
        """map_vdso: [vvar] then [vdso] at the top of the mmap area, populated; the
        vDSO's address (AT_SYSINFO_EHDR)."""
        vvar_bytes = VVAR_PAGES * PAGE_SIZE
        vdso_bytes = len(self.vdso.frames) * PAGE_SIZE
        start = mm.get_unmapped_area(vvar_bytes + vdso_bytes)
        for base, length, prot, flags, mapping in (
                (start, vvar_bytes, PROT_READ, MAP_PRIVATE, self.vvar),
                (start + vvar_bytes, vdso_bytes, PROT_READ | PROT_EXEC, MAP_PRIVATE, self.vdso)):
            mm.add_vma(base, base + length, prot, flags, mapping.name, backing=mapping)
            for page in range(base, base + length, PAGE_SIZE):
                mm.populate(page, prot)
        mm.vdso_base = start + vvar_bytes
        mm.vdso_clock_block = mm.vdso_base + self.clock_block_offset
        return mm.vdso_base


def symbol_offset(image: bytes, name: str) -> int:
    """A symbol's offset in the image (its .symtab: the build keeps it). The
    image is our own build, read with struct (elf64_shdr, elf64_sym): no ELF
    library import on every start."""
    import struct
    (shoff,) = struct.unpack_from("<Q", image, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", image, 0x3A)
    # elf64_shdr: sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, ...
    sections = [struct.unpack_from("<IIQQQQII", image, shoff + index * shentsize) for index in range(shnum)]

    def string(table: int, offset: int) -> bytes:
        start = sections[table][4] + offset
        return image[start:image.index(b"\0", start)]

    SHT_SYMTAB, SYM_BYTES = 2, 24
    wanted = name.encode()
    for section in sections:
        if section[1] != SHT_SYMTAB or string(shstrndx, section[0]) != b".symtab":
            continue
        for offset in range(section[4], section[4] + section[5], SYM_BYTES):
            st_name, _, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", image, offset)
            if st_name and string(section[6], st_name) == wanted:
                return st_value
    raise RuntimeError(f"vDSO image lacks {name}: rebuild with python -m emu_x86.kernel.vdso.build")


__all__ = ["Vdso", "SpecialMapping", "VVAR_PAGES"]
