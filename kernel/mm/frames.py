"""Physical frame allocator over the machine's guest physical memory.

The kernel owns which 4 KiB frames are free; the machine only holds the bytes.
Frames are handed out zeroed (like __GFP_ZERO) because every user of a fresh
frame here -- page tables, anonymous memory, .bss -- needs zeroes.

A frame mapped by several address spaces (copy-on-write after fork, shared
mappings) carries a reference count: ``get`` takes a reference (get_page),
``free`` drops one (put_page) and only the last one returns the frame.
"""
from __future__ import annotations

from emu.memory import PAGE_SIZE, PhysicalMemory


class OutOfMemory(Exception):
    pass


class FrameAllocator:
    def __init__(self, memory: PhysicalMemory, first_free_paddr: int):
        self.memory = memory
        self._next_unused = (first_free_paddr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self._free: list[int] = []
        self._extra_references: dict[int, int] = {}   # frame -> references beyond the first
        self.allocated_frames = 0
        self.peak_allocated_frames = 0

    @property
    def total_frames(self) -> int:
        return self.memory.size_bytes // PAGE_SIZE

    def alloc(self) -> int:
        if self._free:
            paddr = self._free.pop()
        elif self._next_unused + PAGE_SIZE <= self.memory.size_bytes:
            paddr = self._next_unused
            self._next_unused += PAGE_SIZE
        else:
            raise OutOfMemory()
        self.memory.zero(paddr, PAGE_SIZE)
        self.allocated_frames += 1
        self.peak_allocated_frames = max(self.peak_allocated_frames, self.allocated_frames)
        return paddr

    def get(self, paddr: int) -> None:
        """One more user of an allocated frame (get_page)."""
        self._extra_references[paddr] = self._extra_references.get(paddr, 0) + 1

    def page_count(self, paddr: int) -> int:
        return 1 + self._extra_references.get(paddr, 0)

    def free(self, paddr: int) -> None:
        """Drop one reference (put_page); the last one makes the frame free."""
        extra = self._extra_references.get(paddr)
        if extra:
            if extra == 1:
                del self._extra_references[paddr]
            else:
                self._extra_references[paddr] = extra - 1
            return
        self._free.append(paddr)
        self.allocated_frames -= 1
