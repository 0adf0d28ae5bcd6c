"""Guest physical memory: one host buffer shared by every vCPU's Unicorn.

Each vCPU maps the same buffer at guest-physical 0 with ``mem_map_ptr``, so a
store on one vCPU is seen by all others, as on a cache-coherent machine. The
machine only reads and writes bytes here; which frames are free is the
kernel's business (emu_x86/kernel/mm).
"""
from __future__ import annotations

import ctypes
import mmap
import struct

PAGE_SIZE = 4096
PAGE_SHIFT = 12


class PhysicalMemory:
    def __init__(self, size_bytes: int):
        if size_bytes % PAGE_SIZE:
            raise ValueError("physical memory size must be a multiple of 4 KiB")
        self.size_bytes = size_bytes
        self._buffer = mmap.mmap(-1, size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.host_address = ctypes.addressof(ctypes.c_char.from_buffer(self._buffer))
        self.view = memoryview(self._buffer)
        # 8-byte view for page-table entries: entry at physical address pa is qwords[pa >> 3].
        self.qwords = self.view.cast("Q")

    def read(self, paddr: int, size: int) -> bytes:
        self._check(paddr, size)
        return bytes(self.view[paddr:paddr + size])

    def write(self, paddr: int, data: bytes) -> None:
        self._check(paddr, len(data))
        self.view[paddr:paddr + len(data)] = data

    def zero(self, paddr: int, size: int) -> None:
        self._check(paddr, size)
        ctypes.memset(self.host_address + paddr, 0, size)

    def read_u64(self, paddr: int) -> int:
        return struct.unpack_from("<Q", self._buffer, paddr)[0]

    def write_u64(self, paddr: int, value: int) -> None:
        struct.pack_into("<Q", self._buffer, paddr, value)

    def contains(self, paddr: int, size: int = 1) -> bool:
        return 0 <= paddr and paddr + size <= self.size_bytes

    def _check(self, paddr: int, size: int) -> None:
        if not self.contains(paddr, size):
            raise ValueError(f"physical range {paddr:#x}+{size:#x} outside guest memory")
