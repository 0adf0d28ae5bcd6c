"""Unicorn's CPUState, found and checked, for a one-page TLB flush.

The TLB model (emu/mmu/tlb.c) keeps Unicorn's own TLB a subset of itself: when
it evicts an entry, that page must leave Unicorn's TLB too. The public API only
flushes everything (``UC_CTL_TLB_FLUSH``), which also empties QEMU's TB jump
cache: with one eviction per access (a loop over more pages than the model
holds) that whole flush per block was three quarters of the run time
(bench page touching: 124 ms, 28 ms with one-page flushes). libunicorn exports
QEMU's ``tlb_flush_page_x86_64(CPUState *, target_ulong)`` -- every MMU index,
main and victim TLB, and the page's jump-cache entries -- but the CPUState it
needs is only reachable through ``struct uc_struct``, which is private.

The layout below was read from libunicorn 2.1.4 (the x86-64 wheel) and its
source, include/uc_priv.h and qemu/include/hw/core/cpu.h:

- ``offsetof(struct uc_struct, cpu)`` = 0x1b8 (uc_emu_stop loads it),
- ``offsetof(CPUState, env_ptr)`` = 0x128 (tlb_flush_page_by_mmuidx_async_0),
- ``offsetof(X86CPU, env)`` = 0x8a50 (helper_invlpg: env_cpu(env) = env - 0x8a50),
- ``offsetof(CPUState, uc)`` = 0x81a8, ``offsetof(CPUX86State, uc)`` = 0x1b58,
- ``CPUX86State.regs[R_EAX]`` is its first field.

``find_cpu_state`` trusts none of it blindly. It answers only for the verified
library version, dereferences only addresses inside readable mappings of
/proc/self/maps, and requires every cross-check to agree: CPUState.uc and
env.uc point back at the engine, env_ptr is CPUState + 0x8a50, and two magic
values written to RAX through ``uc_reg_write`` appear at env.regs[0]. Anything
else gives ``None``, and the vCPU keeps whole-TLB flushes (slower, same
results: which entries Unicorn caches never changes the model's statistics).
"""
from __future__ import annotations

import ctypes
import struct

import unicorn.x86_const as x86
from unicorn.unicorn_py3 import unicorn as uc_module

# (major, minor, patch) of the libunicorn whose layout the offsets describe.
VERIFIED_VERSION = (2, 1, 4)
UC_STRUCT_CPU_OFFSET = 0x1B8
CPU_STATE_ENV_PTR_OFFSET = 0x128
CPU_STATE_UC_OFFSET = 0x81A8
X86_CPU_ENV_OFFSET = 0x8A50
ENV_UC_OFFSET = 0x1B58
TLB_FLUSH_PAGE_SYMBOL = "tlb_flush_page_x86_64"
_RAX_PROBES = (0x5EED_0F_CA_FE_0F_7E57, 0x0123_4567_89AB_CDEF)

_uclib = uc_module.uclib


def library_version() -> tuple[int, int, int]:
    """libunicorn's own version (uc_version), not the Python binding's."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    combined = _uclib.uc_version(ctypes.byref(major), ctypes.byref(minor))
    return (combined >> 24) & 0xFF, (combined >> 16) & 0xFF, (combined >> 8) & 0xFF


def tlb_flush_page_address() -> int:
    """Address of libunicorn's tlb_flush_page for x86-64, or 0 if it is not exported."""
    try:
        function = getattr(_uclib, TLB_FLUSH_PAGE_SYMBOL)
    except AttributeError:
        return 0
    return ctypes.cast(function, ctypes.c_void_p).value or 0


def readable_ranges() -> list[tuple[int, int]]:
    """[start, end) of every readable mapping of this process."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) < 2 or not fields[1].startswith("r"):
                continue
            start, end = (int(part, 16) for part in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _readable(ranges: list[tuple[int, int]], address: int, size: int) -> bool:
    return address > 0 and any(start <= address and address + size <= end for start, end in ranges)


def _read_qword(address: int) -> int:
    return struct.unpack("<Q", ctypes.string_at(address, 8))[0]


def find_cpu_state(uc) -> tuple[int | None, str]:
    """(address of ``uc``'s CPUState, "") when every check passes, else
    (None, why not). ``uc`` is a ``unicorn.Uc`` whose engine is initialised
    (any API call after creation, such as ``ctl_set_tlb_mode``, does it)."""
    version = library_version()
    if version != VERIFIED_VERSION:
        return None, f"libunicorn {version} is not the verified {VERIFIED_VERSION}"
    if not tlb_flush_page_address():
        return None, f"libunicorn does not export {TLB_FLUSH_PAGE_SYMBOL}"
    engine = uc._uch.value
    ranges = readable_ranges()
    if not _readable(ranges, engine + UC_STRUCT_CPU_OFFSET, 8):
        return None, "uc_struct.cpu is not in readable memory"
    cpu = _read_qword(engine + UC_STRUCT_CPU_OFFSET)
    if cpu % 8 or not _readable(ranges, cpu, CPU_STATE_UC_OFFSET + 8):
        return None, "uc_struct.cpu does not point at readable memory"
    if _read_qword(cpu + CPU_STATE_UC_OFFSET) != engine:
        return None, "CPUState.uc does not point back at the engine"
    env = _read_qword(cpu + CPU_STATE_ENV_PTR_OFFSET)
    if env != cpu + X86_CPU_ENV_OFFSET or not _readable(ranges, env, ENV_UC_OFFSET + 8):
        return None, "CPUState.env_ptr is not the X86CPU's env"
    if _read_qword(env + ENV_UC_OFFSET) != engine:
        return None, "CPUX86State.uc does not point back at the engine"
    saved_rax = uc.reg_read(x86.UC_X86_REG_RAX)
    try:
        for probe in _RAX_PROBES:
            uc.reg_write(x86.UC_X86_REG_RAX, probe)
            if _read_qword(env) != probe:
                return None, "RAX written through uc_reg_write is not at env.regs[0]"
    finally:
        uc.reg_write(x86.UC_X86_REG_RAX, saved_rax)
    return cpu, ""
