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


def _ask_for_huge_pages(buffer: mmap.mmap) -> bool:
    """Ask the host to back guest RAM with transparent huge pages (2 MiB):
    whether it took the request. Hosts whose THP setting is "madvise" (the
    default of Debian and others) give anonymous memory 4 KiB pages unless
    asked, and then a guest that misses the modelled TLB also misses the
    host's on every access to its data and its page tables: the bench's
    64 MiB pointer chase took 451 ns a step on 4 KiB pages and 282 ns on huge
    ones (this Zen 3 host, min of 3). A glibc hello is unchanged (its frames
    are handed out from the bottom, a few MiB: 480 fewer host page faults,
    0.7 MiB more resident). Nothing the guest sees depends on it."""
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return False
    try:
        buffer.madvise(advice)
    except OSError:             # THP not built into the host kernel
        return False
    return True


class PhysicalMemory:
    def __init__(self, size_bytes: int):
        if size_bytes % PAGE_SIZE:
            raise ValueError("physical memory size must be a multiple of 4 KiB")
        self.size_bytes = size_bytes
        self._buffer = mmap.mmap(-1, size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.huge_pages = _ask_for_huge_pages(self._buffer)
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
