"""/proc/PID/maps, smaps and statm (fs/proc/task_mmu.c: show_map_vma, show_smap,
task_statm), generated from the mm's VMAs and page tables."""
from __future__ import annotations

import os

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK, PTE_ACCESSED, PTE_DIRTY
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE
from emu_x86.kernel.mm.mm import MAP_GROWSDOWN, MAP_SHARED

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.mm.mm import VMA, MmStruct
    from emu_x86.kernel.task import Process

MAPS_NAME_COLUMN = 73                 # seq_setwidth(25 + sizeof(void *) * 6 - 1), then one space
GUEST_DEV_MAJOR, GUEST_DEV_MINOR = 8, 1  # kernel/fs.py GUEST_DEV (0x801), the --fs tree's st_dev


def exe_identity(process: "Process") -> tuple[str, int, int, int]:
    """(path, major, minor, inode) of the program file, as the maps of its segments show it."""
    location = process.exe_location
    if location and location[0] == "host":
        path = location[1]
    elif location:
        path = "/" + "/".join(location[1]) + "/" + location[2].decode("utf-8", "surrogateescape") \
            if not location[2].startswith(b"/") else location[2].decode("utf-8", "surrogateescape")
        path = os.path.normpath(path)
    else:
        return process.exe_path, 0, 0, 0
    inode = 0
    try:
        if location[0] == "host":
            inode = os.stat(path).st_ino
    except OSError:
        pass
    return path, GUEST_DEV_MAJOR, GUEST_DEV_MINOR, inode


def vma_name(process: "Process", mm: "MmStruct", vma: "VMA") -> str:
    """get_vma_name: the file, or [heap]/[stack]/[vvar]/[vdso], or nothing (anonymous)."""
    if vma.name == "image":
        return exe_identity(process)[0]
    if vma.name.startswith("/SYSV"):
        return vma.name + " (deleted)"
    if vma.name.startswith("["):
        return vma.name
    if mm.start_brk <= vma.start and vma.end <= max(mm.brk, mm.start_brk) and mm.brk > mm.start_brk:
        return "[heap]"
    return ""


def _vma_header(process: "Process", mm: "MmStruct", vma: "VMA") -> str:
    flags = ("r" if vma.prot & PROT_READ else "-") + ("w" if vma.prot & PROT_WRITE else "-") \
        + ("x" if vma.prot & PROT_EXEC else "-") + ("s" if vma.flags & MAP_SHARED else "p")
    name = vma_name(process, mm, vma)
    if vma.name == "image":
        _, major, minor, inode = exe_identity(process)
        offset = vma.pgoff * PAGE_SIZE
    else:
        major = minor = inode = offset = 0
    line = f"{vma.start:08x}-{vma.end:08x} {flags} {offset:08x} {major:02x}:{minor:02x} {inode} "
    if name:
        line = line.ljust(MAPS_NAME_COLUMN - 1) + " " + name
    return line


def gate_vma_line() -> str:
    """The vsyscall page, listed after the mm's VMAs (get_gate_vma; vsyscall=xonly:
    execute only, emu_x86/kernel/vsyscall.py)."""
    from emu_x86.kernel.vsyscall import VSYSCALL_ADDR
    line = f"{VSYSCALL_ADDR:08x}-{VSYSCALL_ADDR + PAGE_SIZE:08x} --xp {0:08x} 00:00 0 "
    return line.ljust(MAPS_NAME_COLUMN - 1) + " [vsyscall]"


def show_maps(process: "Process") -> bytes:
    mm = process.mm
    if mm is None:
        return b""
    lines = [_vma_header(process, mm, vma) for vma in mm.vmas] + [gate_vma_line()]
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def _vm_flags(vma: "VMA") -> str:
    """show_smap_vma_flags' two-letter names, in Linux's bit order."""
    names = []
    if vma.prot & PROT_READ:
        names.append("rd")
    if vma.prot & PROT_WRITE:
        names.append("wr")
    if vma.prot & PROT_EXEC:
        names.append("ex")
    if vma.flags & MAP_SHARED and vma.prot & PROT_WRITE:
        names.append("sh")
    names += ["mr", "mw", "me"]
    if vma.flags & MAP_SHARED:
        names.append("ms")
    if vma.flags & MAP_GROWSDOWN:
        names.append("gd")
    if vma.name == "[vvar]":
        names += ["pf", "io"]
    if vma.name in ("[vvar]", "[vdso]"):
        names.append("de")
    if vma.accounted:
        names.append("ac")
    if vma.name == "[vvar]":
        names.append("dd")
    return " ".join(names) + " "


def _vma_pages(kernel: "Kernel", mm: "MmStruct", vma: "VMA") -> dict:
    counts = {"rss": 0, "shared_clean": 0, "shared_dirty": 0, "private_clean": 0, "private_dirty": 0,
              "referenced": 0, "pss_bytes": 0}
    for _, entry in mm.pagetables.entries(vma.start, vma.end):
        frame = entry & PHYS_ADDR_MASK
        if not frame:
            continue
        mapcount = kernel.frames.page_count(frame)
        dirty = bool(entry & PTE_DIRTY)
        counts["rss"] += 1
        counts["referenced"] += bool(entry & PTE_ACCESSED)
        counts[("shared_" if mapcount > 1 else "private_") + ("dirty" if dirty else "clean")] += 1
        counts["pss_bytes"] += PAGE_SIZE // mapcount
    return counts


def _kb_line(name: str, kilobytes: int) -> str:
    return f"{name + ':':<16}{kilobytes:8d} kB\n"


def show_smaps(kernel: "Kernel", process: "Process") -> bytes:
    mm = process.mm
    if mm is None:
        return b""
    out = []
    for vma in mm.vmas:
        pages = _vma_pages(kernel, mm, vma)
        anonymous = vma.name != "image" and not vma.name.startswith(("[vdso", "[vvar", "/SYSV"))
        kb = PAGE_SIZE // 1024
        out.append(_vma_header(process, mm, vma) + "\n")
        out.append(_kb_line("Size", (vma.end - vma.start) // 1024))
        out.append(_kb_line("KernelPageSize", 4) + _kb_line("MMUPageSize", 4))
        out.append(_kb_line("Rss", pages["rss"] * kb))
        out.append(_kb_line("Pss", pages["pss_bytes"] // 1024))
        out.append(_kb_line("Pss_Dirty", (pages["private_dirty"] + pages["shared_dirty"]) * kb))
        for key, name in (("shared_clean", "Shared_Clean"), ("shared_dirty", "Shared_Dirty"),
                          ("private_clean", "Private_Clean"), ("private_dirty", "Private_Dirty"),
                          ("referenced", "Referenced")):
            out.append(_kb_line(name, pages[key] * kb))
        out.append(_kb_line("Anonymous", pages["rss"] * kb if anonymous else 0))
        for name in ("KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
                     "Private_Hugetlb", "Swap", "SwapPss", "Locked"):
            out.append(_kb_line(name, 0))
        out.append("THPeligible:    0\n")
        out.append(f"ProtectionKey:  {0:8d}\n")
        out.append("VmFlags: " + _vm_flags(vma) + "\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def mm_counters(kernel: "Kernel", process: "Process") -> dict:
    """The task_mem/task_statm figures, in pages."""
    mm = process.mm
    result = {"size": 0, "rss": 0, "rss_anon": 0, "rss_file": 0, "rss_shmem": 0, "data": 0, "stack": 0,
              "exe": 0, "pte": 0}
    if mm is None:
        return result
    for vma in mm.vmas:
        pages = (vma.end - vma.start) // PAGE_SIZE
        result["size"] += pages
        resident = sum(1 for _, entry in mm.pagetables.entries(vma.start, vma.end) if entry & PHYS_ADDR_MASK)
        result["rss"] += resident
        if vma.name == "image" and not vma.prot & PROT_WRITE:
            result["rss_file"] += resident
        elif vma.flags & MAP_SHARED:
            result["rss_shmem"] += resident
        else:
            result["rss_anon"] += resident
        if vma.flags & MAP_GROWSDOWN:
            result["stack"] += pages
        elif vma.prot & PROT_EXEC and not vma.prot & PROT_WRITE and vma.name == "image":
            result["exe"] += pages
        elif vma.prot & PROT_WRITE and not vma.flags & MAP_SHARED:
            result["data"] += pages
    result["pte"] = 1 + result["rss"] // 512
    return result


def show_statm(kernel: "Kernel", process: "Process") -> bytes:
    """task_statm: size resident shared text lib data 0, in pages."""
    counters = mm_counters(kernel, process)
    shared = counters["rss_file"] + counters["rss_shmem"]
    return (f"{counters['size']} {counters['rss']} {shared} {counters['exe']} 0 "
            f"{counters['data'] + counters['stack']} 0\n").encode()


__all__ = ["show_maps", "show_smaps", "show_statm", "mm_counters"]
