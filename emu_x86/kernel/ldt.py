"""modify_ldt(2) (arch/x86/kernel/ldt.c): a per-mm Local Descriptor Table.

The table is kept as Linux keeps it (``MmStruct.ldt``: a list of 8-byte
descriptors built by fill_ldt, as many as the highest entry written + 1,
copied by fork, shared by threads). It is *not* loaded into the vCPU: the
machine's LDTR stays null, so a selector with TI=1 faults (#GP -> SIGSEGV)
where Linux would use the descriptor. Reading it back, its validation and
its errors are Linux's.

Functions: 0 reads the table (zero-filled up to bytecount, at most
LDT_ENTRIES entries), 1 writes an entry in the old mode (base 0 + limit 0
clears it; AVL forced to 0), 0x11 in the new mode, 2 reads the default LDT
(128 zero bytes on x86-64). The result is returned as an unsigned int (the
syscall's ABI is int: a negative errno arrives in RAX zero-extended, which
is what Linux's `return (unsigned int)ret` does).
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import EFAULT, EINVAL, ENOSYS, SyscallError

SYS_modify_ldt = 154
LDT_ENTRIES = 8192
LDT_ENTRY_SIZE = 8
USER_DESC_BYTES = 16
DEFAULT_LDT_BYTES = 128


def fill_ldt(base: int, limit: int, seg_32bit: int, contents: int, read_exec_only: int, limit_in_pages: int,
             seg_not_present: int, useable: int) -> bytes:
    """The descriptor for a struct user_desc (asm/desc.h fill_ldt): accessed bit
    set, S = 1, DPL 3, L never set."""
    segment_type = ((read_exec_only ^ 1) << 1) | (contents << 2) | 1
    low = (limit & 0xFFFF) | (base & 0xFFFF) << 16
    high = ((base >> 16) & 0xFF) | segment_type << 8 | 1 << 12 | 3 << 13 | (seg_not_present ^ 1) << 15 \
        | ((limit >> 16) & 0xF) << 16 | useable << 20 | seg_32bit << 22 | limit_in_pages << 23 \
        | ((base >> 24) & 0xFF) << 24
    return struct.pack("<II", low, high)


def read_ldt(task, address: int, bytecount: int) -> int:
    ldt = task.mm.ldt
    if not ldt:
        return 0
    bytecount = min(bytecount, LDT_ENTRY_SIZE * LDT_ENTRIES)
    entries = b"".join(ldt)[:bytecount]
    task.mm.copy_to_user(address, entries.ljust(bytecount, b"\0"))
    return bytecount


def read_default_ldt(task, address: int, bytecount: int) -> int:
    bytecount = min(bytecount, DEFAULT_LDT_BYTES)
    task.mm.copy_to_user(address, bytes(bytecount))
    return bytecount


def write_ldt(task, address: int, bytecount: int, oldmode: bool) -> int:
    if bytecount != USER_DESC_BYTES:
        raise SyscallError(EINVAL)
    entry_number, base, limit, bits = struct.unpack("<IIII", task.mm.copy_from_user(address, USER_DESC_BYTES))
    seg_32bit, contents, read_exec_only = bits & 1, (bits >> 1) & 3, (bits >> 3) & 1
    limit_in_pages, seg_not_present, useable, lm = (bits >> 4) & 1, (bits >> 5) & 1, (bits >> 6) & 1, (bits >> 7) & 1
    if entry_number >= LDT_ENTRIES:
        raise SyscallError(EINVAL)
    if contents == 3 and (oldmode or seg_not_present == 0):
        raise SyscallError(EINVAL)
    ldt_empty = (base == 0 and limit == 0 and contents == 0 and read_exec_only == 1 and seg_32bit == 0
                 and limit_in_pages == 0 and seg_not_present == 1 and useable == 0 and lm == 0)
    if (oldmode and not base and not limit) or ldt_empty:
        descriptor = bytes(LDT_ENTRY_SIZE)
    else:
        # 16-bit segments are allowed (CONFIG_X86_16BIT, not Xen PV).
        descriptor = fill_ldt(base, limit, seg_32bit, contents, read_exec_only, limit_in_pages, seg_not_present,
                              0 if oldmode else useable)
    ldt = list(task.mm.ldt or [])
    if len(ldt) <= entry_number:
        ldt += [bytes(LDT_ENTRY_SIZE)] * (entry_number + 1 - len(ldt))
    ldt[entry_number] = descriptor
    task.mm.ldt = ldt          # install_ldt: a new table replaces the old one
    return 0


def sys_modify_ldt(kernel, vcpu, task, func, ptr, bytecount, *_):
    func = func & 0xFFFFFFFF
    func = func - (1 << 32) if func & (1 << 31) else func
    try:
        if func == 0:
            result = read_ldt(task, ptr, bytecount)
        elif func == 1:
            result = write_ldt(task, ptr, bytecount, oldmode=True)
        elif func == 2:
            result = read_default_ldt(task, ptr, bytecount)
        elif func == 0x11:
            result = write_ldt(task, ptr, bytecount, oldmode=False)
        else:
            result = -ENOSYS
    except SyscallError as error:
        result = -error.errno
    return result & 0xFFFFFFFF


SYSCALLS = {SYS_modify_ldt: sys_modify_ldt}

__all__ = ["EFAULT", "SYSCALLS"]
