"""Physical frame allocator over the machine's guest physical memory.

The kernel owns which 4 KiB frames are free; the machine only holds the bytes.
Frames are handed out zeroed (like __GFP_ZERO) because every user of a fresh
frame here -- page tables, anonymous memory, .bss -- needs zeroes.

A frame mapped by several address spaces (copy-on-write after fork, shared
mappings) carries a reference count: ``get`` takes a reference (get_page),
``free`` drops one (put_page) and only the last one returns the frame.
"""
from __future__ import annotations

from emu_x86.emu.memory import PAGE_SIZE, PhysicalMemory


class OutOfMemory(Exception):
    pass


# vm.overcommit_memory policies (Documentation/mm/overcommit-accounting.rst)
OVERCOMMIT_GUESS = 0     # refuse only a single request larger than all of memory
OVERCOMMIT_ALWAYS = 1    # never refuse
OVERCOMMIT_NEVER = 2     # strict: commitments never exceed CommitLimit
DEFAULT_OVERCOMMIT_RATIO = 50


class FrameAllocator:
    def __init__(self, memory: PhysicalMemory, first_free_paddr: int):
        self.memory = memory
        self._next_unused = (first_free_paddr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self._free: list[int] = []
        self._extra_references: dict[int, int] = {}   # frame -> references beyond the first
        self.allocated_frames = 0
        self.peak_allocated_frames = 0
        # Commit accounting (mm/util.c __vm_enough_memory): pages of private writable
        # mappings promised to user space, charged at mmap/brk/mremap/mprotect time.
        self.overcommit_policy = OVERCOMMIT_GUESS
        self.overcommit_ratio = DEFAULT_OVERCOMMIT_RATIO
        self.committed_pages = 0

    @property
    def total_frames(self) -> int:
        return self.memory.size_bytes // PAGE_SIZE

    def alloc(self) -> int:
        if self._free:
            paddr = self._free.pop()
            self.memory.zero(paddr, PAGE_SIZE)
        elif self._next_unused + PAGE_SIZE <= self.memory.size_bytes:
            # Never handed out before: still the zeroes of the anonymous host
            # mapping (nothing writes a frame it was not given). Not writing
            # them keeps the host page unallocated until the guest stores to it.
            paddr = self._next_unused
            self._next_unused += PAGE_SIZE
        else:
            raise OutOfMemory()
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

    @property
    def commit_limit_pages(self) -> int:
        """CommitLimit without swap: RAM * overcommit_ratio / 100 (mm/util.c vm_commit_limit)."""
        return self.total_frames * self.overcommit_ratio // 100

    def vm_enough_memory(self, pages: int) -> bool:
        """Charge ``pages`` to the commitment if the policy allows it (__vm_enough_memory)."""
        if pages <= 0:
            self.committed_pages += pages
            return True
        if self.overcommit_policy == OVERCOMMIT_NEVER:
            if self.committed_pages + pages > self.commit_limit_pages:
                return False
        elif self.overcommit_policy == OVERCOMMIT_GUESS and pages > self.total_frames:
            return False
        self.committed_pages += pages
        return True

    def vm_unacct_memory(self, pages: int) -> None:
        self.committed_pages = max(0, self.committed_pages - pages)
