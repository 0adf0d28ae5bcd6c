"""The machine's CPL0 entry trampoline: how a vCPU gets into 64-bit user mode.

Unicorn only changes CPL through a real privilege transition; writing CS with
reg_write does not (DESIGN.md, measured). So at power-on each vCPU runs a
two-instruction CPL0 stub here: ``iretq`` to a CPL3 page whose only
instruction is ``syscall``. The SYSCALL hook stops the vCPU at CPL3 with no
exception pending, and that CPU context is saved as the vCPU's clean user
context; every later entry to user mode restores it and writes the task's
registers (which also clears QEMU's pending-exception state, see vcpu.py).

The trampoline lives in a fixed window of kernel virtual space with its own
translation (the TLB-fill path maps it directly), at the base Linux uses for
its cpu_entry_area, so the kernel's page tables need not know about it.
"""
from __future__ import annotations

import struct

from emu_x86.emu.memory import PAGE_SIZE

FIRMWARE_VADDR = 0xFFFFFE0000000000
FIRMWARE_PAGES = 4
FIRMWARE_SIZE_BYTES = FIRMWARE_PAGES * PAGE_SIZE

GDT_OFFSET = 0 * PAGE_SIZE
ENTRY_STUB_OFFSET = 1 * PAGE_SIZE      # CPL0: iretq
USER_TRAMPOLINE_OFFSET = 2 * PAGE_SIZE  # CPL3: syscall
BOOT_STACK_OFFSET = 3 * PAGE_SIZE

# Selectors as Linux lays out its GDT (arch/x86/include/asm/segment.h):
# __KERNEL_CS 0x10, __KERNEL_DS 0x18, __USER_DS 0x2b, __USER_CS 0x33.
KERNEL_CS = 0x10
KERNEL_DS = 0x18
USER_DS = 0x2B
USER_CS = 0x33


def _descriptor(code: bool, dpl: int) -> int:
    # Flat 64-bit descriptors with the Accessed bit preset, so loading them
    # never writes the (read-only) GDT page.
    if code:
        return 0x00AF9B000000FFFF | (dpl << 45)  # L=1, P, S, type=execute/read, accessed
    return 0x00CF93000000FFFF | (dpl << 45)      # P, S, type=read/write, accessed


GDT_ENTRIES = [
    0,                       # 0x00 null
    0,                       # 0x08 (Linux: 32-bit kernel CS)
    _descriptor(True, 0),    # 0x10 kernel CS
    _descriptor(False, 0),   # 0x18 kernel DS
    0,                       # 0x20 (Linux: 32-bit user CS)
    _descriptor(False, 3),   # 0x28 user DS  (selector 0x2b with RPL 3)
    _descriptor(True, 3),    # 0x30 user CS  (selector 0x33 with RPL 3)
]
GDT_LIMIT = len(GDT_ENTRIES) * 8 - 1

IRETQ = bytes([0x48, 0xCF])
SYSCALL = bytes([0x0F, 0x05])


def firmware_image() -> bytes:
    """The bytes of the firmware window, written once at physical address 0."""
    image = bytearray(FIRMWARE_SIZE_BYTES)
    for index, descriptor in enumerate(GDT_ENTRIES):
        struct.pack_into("<Q", image, GDT_OFFSET + index * 8, descriptor)
    image[ENTRY_STUB_OFFSET:ENTRY_STUB_OFFSET + len(IRETQ)] = IRETQ
    image[USER_TRAMPOLINE_OFFSET:USER_TRAMPOLINE_OFFSET + len(SYSCALL)] = SYSCALL
    return bytes(image)


def boot_iret_frame(rflags: int) -> tuple[int, bytes]:
    """(stack pointer, bytes) of the iretq frame that lands on the user trampoline."""
    user_rip = FIRMWARE_VADDR + USER_TRAMPOLINE_OFFSET
    user_rsp = FIRMWARE_VADDR + BOOT_STACK_OFFSET + PAGE_SIZE - 64
    frame = struct.pack("<5Q", user_rip, USER_CS, rflags, user_rsp, USER_DS)
    rsp = FIRMWARE_VADDR + BOOT_STACK_OFFSET + PAGE_SIZE - len(frame)
    return rsp, frame
