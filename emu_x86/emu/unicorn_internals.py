"""Unicorn's CPUState, found and checked, for a one-page TLB flush.

The TLB model (emu_x86/emu/mmu/tlb.c) keeps Unicorn's own TLB a subset of itself: when
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
library version, dereferences only addresses it has found readable
(ReadableMemory: process_vm_readv on itself, else /proc/self/maps), and
requires every cross-check to agree: CPUState.uc and
env.uc point back at the engine, env_ptr is CPUState + 0x8a50, and two magic
values written to RAX through ``uc_reg_write`` appear at env.regs[0]. Anything
else gives ``None``, and the vCPU keeps whole-TLB flushes (slower, same
results: which entries Unicorn caches never changes the model's statistics).

Most of those page flushes were still for nothing: the model holds 2048
pages, QEMU's direct-mapped TLB 256 (plus 8 victims), so a page the model
evicts is usually long gone from QEMU's TLB. ``find_tlb_view`` locates QEMU
5.0's ``CPUTLB`` (include/exec/cpu-defs.h: ``CPUTLBCommon c; CPUTLBDesc
d[NB_MMU_MODES]; CPUTLBDescFast f[NB_MMU_MODES]``, in the
``CPUNegativeOffsetState`` just before ``env``) so the fill hook can look
(emu_x86/emu/mmu/tlb.c ``unicorn_tlb_holds``) and skip the flush of a data page QEMU
does not hold. The offsets below come from the same disassembly
(``victim_tlb_hit``, ``tlb_flush_page_by_mmuidx_async_0``,
``tlb_set_page_with_attrs``); they are trusted only after a probe on a scratch
Unicorn (once per libunicorn build, its answer kept beside the block price
store) finds known fills where the layout puts them --
the code page and the last of a run of loads sharing one table slot in the
table, exactly the CPU_VTLB_SIZE loads before it in the victim TLB, with the
right permissions and host addends, and ``tlb.c.dirty`` naming the one MMU
index used -- and each new vCPU's TLB reads as empty. Anything else leaves
the vCPU flushing every eviction, as before.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86

# (major, minor, patch) of the libunicorn whose layout the offsets describe.
VERIFIED_VERSION = (2, 1, 4)
UC_STRUCT_CPU_OFFSET = 0x1B8
CPU_STATE_ENV_PTR_OFFSET = 0x128
CPU_STATE_UC_OFFSET = 0x81A8
X86_CPU_ENV_OFFSET = 0x8A50
ENV_UC_OFFSET = 0x1B58
TLB_FLUSH_PAGE_SYMBOL = "tlb_flush_page_x86_64"
_RAX_PROBES = (0x5EED_0F_CA_FE_0F_7E57, 0x0123_4567_89AB_CDEF)

# QEMU 5.0's softmmu TLB (include/exec/cpu-defs.h), the CPUTLB at the start of
# the CPUNegativeOffsetState that X86CPU places just before its env, as
# libunicorn 2.1.4 lays it out (offsets from &env):
TLB_DIRTY_ENV_OFFSET = -0x890   # &tlb.c.dirty, uint16_t (tlb_set_page_with_attrs: "or %ax,-0x890(env)")
TLB_FAST_ENV_OFFSET = -0x40     # &tlb.f[0]: TLB_MASK_TABLE_OFS(0) (load_helper, victim_tlb_hit)
TLB_VICTIM_ENV_OFFSET = -0x840  # &tlb.d[0].vtable[0] (victim_tlb_hit, tlb_flush_page_by_mmuidx_async_0)
TLB_MMU_MODES = 3               # NB_MMU_MODES (target/i386/cpu-param.h)
TLB_FAST_STRIDE = 0x10          # sizeof(CPUTLBDescFast) {uintptr_t mask; CPUTLBEntry *table;}
TLB_DESC_STRIDE = 0x2B8         # sizeof(CPUTLBDesc) (the imul in victim_tlb_hit)
TLB_VICTIM_ENTRIES = 8          # CPU_VTLB_SIZE
TLB_ENTRY_SHIFT = 6             # CPU_TLB_ENTRY_BITS: Unicorn's CPUTLBEntry adds paddr, 64 bytes
TLB_MIN_ENTRIES, TLB_MAX_ENTRIES = 1 << 6, 1 << 22   # CPU_TLB_DYN_MIN_BITS, CPU_TLB_DYN_MAX_BITS
# CPUTLBEntry fields: target_ulong addr_read, addr_write, addr_code; hwaddr paddr; uintptr_t addend.
TLB_ENTRY_ADDR_READ, TLB_ENTRY_ADDR_WRITE, TLB_ENTRY_ADDR_CODE, TLB_ENTRY_ADDEND = 0, 8, 16, 32
_PAGE_MASK = ~0xFFF & (1 << 64) - 1

_uclib = uclib.lib


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


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


class ReadableMemory:
    """Whether this process can read [address, address + size) before the
    checks below dereference a pointer of Unicorn's private structures.

    Asked of the kernel with process_vm_readv on this process itself, which
    fails (EFAULT) instead of faulting on memory that is not readable: a
    system call per check, where parsing /proc/self/maps cost ~0.6 ms for
    each vCPU's Unicorn (40 ms at 64 vCPUs). Where that call is refused
    (ENOSYS, or EPERM under a seccomp filter), the readable mappings of
    /proc/self/maps, read once per instance, answer instead."""

    _process_vm_readv = None

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] | None = None     # the maps' fallback, once needed

    def covers(self, address: int, size: int) -> bool:
        if address <= 0 or size <= 0:
            return False
        if self._ranges is None:
            readable = self._ask_kernel(address, size)
            if readable is not None:
                return readable
            self._ranges = self._mapped_ranges()
        return any(start <= address and address + size <= end for start, end in self._ranges)

    @classmethod
    def _ask_kernel(cls, address: int, size: int) -> bool | None:
        """True or False, or None when the call itself is unavailable."""
        if cls._process_vm_readv is None:
            function = ctypes.CDLL(None, use_errno=True).process_vm_readv
            function.restype = ctypes.c_ssize_t
            function.argtypes = (ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.POINTER(_IoVec),
                                 ctypes.c_ulong, ctypes.c_ulong)
            cls._process_vm_readv = function
        buffer = ctypes.create_string_buffer(size)
        local, remote = _IoVec(ctypes.addressof(buffer), size), _IoVec(address, size)
        copied = cls._process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if copied == size:
            return True
        return None if copied < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EPERM) else False

    @staticmethod
    def _mapped_ranges() -> list[tuple[int, int]]:
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


def _read_qword(address: int) -> int:
    return struct.unpack("<Q", ctypes.string_at(address, 8))[0]


def find_cpu_state(uc, readable: ReadableMemory | None = None) -> tuple[int | None, str]:
    """(address of ``uc``'s CPUState, "") when every check passes, else
    (None, why not). ``uc`` is a ``uclib.Uc`` whose engine is initialised
    (any API call after creation, such as ``ctl_set_tlb_mode``, does it).
    ``readable``: a ReadableMemory shared by a caller that checks more of
    ``uc`` (its fallback, if needed, then reads /proc/self/maps once)."""
    version = library_version()
    if version != VERIFIED_VERSION:
        return None, f"libunicorn {version} is not the verified {VERIFIED_VERSION}"
    if not tlb_flush_page_address():
        return None, f"libunicorn does not export {TLB_FLUSH_PAGE_SYMBOL}"
    engine = uc._uch.value
    readable = ReadableMemory() if readable is None else readable
    if not readable.covers(engine + UC_STRUCT_CPU_OFFSET, 8):
        return None, "uc_struct.cpu is not in readable memory"
    cpu = _read_qword(engine + UC_STRUCT_CPU_OFFSET)
    if cpu % 8 or not readable.covers(cpu, CPU_STATE_UC_OFFSET + 8):
        return None, "uc_struct.cpu does not point at readable memory"
    if _read_qword(cpu + CPU_STATE_UC_OFFSET) != engine:
        return None, "CPUState.uc does not point back at the engine"
    env = _read_qword(cpu + CPU_STATE_ENV_PTR_OFFSET)
    if env != cpu + X86_CPU_ENV_OFFSET or not readable.covers(env, ENV_UC_OFFSET + 8):
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


# ---- QEMU's softmmu TLB ----------------------------------------------------------

_EMPTY = (1 << 64) - 1       # QEMU's empty CPUTLBEntry field (memset -1, tlb_mmu_flush_locked)


def _tlb_slots(env: int) -> tuple[list[int], list[int]]:
    """(&tlb.f[mode], &tlb.d[mode].vtable[0]) for every MMU index."""
    return ([env + TLB_FAST_ENV_OFFSET + mode * TLB_FAST_STRIDE for mode in range(TLB_MMU_MODES)],
            [env + TLB_VICTIM_ENV_OFFSET + mode * TLB_DESC_STRIDE for mode in range(TLB_MMU_MODES)])


def _tlb_readable(readable: ReadableMemory, env: int) -> bool:
    """Every part of the CPUTLB this module reads: tlb.c.dirty, each
    CPUTLBDescFast and each victim TLB."""
    fasts, victims = _tlb_slots(env)
    return (readable.covers(env + TLB_DIRTY_ENV_OFFSET, 2)
            and all(readable.covers(fast, TLB_FAST_STRIDE) for fast in fasts)
            and all(readable.covers(victim, TLB_VICTIM_ENTRIES << TLB_ENTRY_SHIFT) for victim in victims))


def _tlb_dirty(env: int) -> int:
    return struct.unpack("<H", ctypes.string_at(env + TLB_DIRTY_ENV_OFFSET, 2))[0]


def _tlb_table(readable: ReadableMemory, fast: int) -> tuple[int, int] | None:
    """(table address, entries) of one MMU index if its mask and table look like
    QEMU's: (entries - 1) << CPU_TLB_ENTRY_BITS with entries a power of two in
    QEMU's bounds, and a readable table of that many entries."""
    mask, table = _read_qword(fast), _read_qword(fast + 8)
    entries = (mask >> TLB_ENTRY_SHIFT) + 1
    if mask & ((1 << TLB_ENTRY_SHIFT) - 1) or entries & (entries - 1) \
            or not TLB_MIN_ENTRIES <= entries <= TLB_MAX_ENTRIES:
        return None
    if table % 8 or not readable.covers(table, entries << TLB_ENTRY_SHIFT):
        return None
    return table, entries


def _tlb_entry(address: int) -> dict:
    return {name: _read_qword(address + offset) for name, offset in (
        ("read", TLB_ENTRY_ADDR_READ), ("write", TLB_ENTRY_ADDR_WRITE), ("code", TLB_ENTRY_ADDR_CODE),
        ("addend", TLB_ENTRY_ADDEND))}


def _is_empty(entry: dict) -> bool:
    return entry["read"] == entry["write"] == entry["code"] == _EMPTY


def _maps(entry: dict, page: int, host_page: int, kind: str) -> bool:
    """``entry`` lets accesses of ``kind`` to ``page`` reach ``host_page``."""
    return entry[kind] & _PAGE_MASK == page and entry["addend"] + page == host_page


# The scratch Unicorn's memory stays mapped for the life of the process, so
# freeing the scratch engine later can never leave it pointing at freed memory.
_scratch_memory = None


def _probe_tlb_layout() -> str:
    """Run loads on a scratch Unicorn and find their entries where the layout
    says: "" when they are all there, else what differs. The loaded pages all
    share one slot of the direct-mapped table, one more than the victim TLB
    holds, so each load moves the previous page to the victim TLB
    (tlb_set_page_with_attrs, round robin): afterwards the last page and the
    code page must be in the table and exactly the CPU_VTLB_SIZE pages before
    the last in the victim TLB, each with the permissions the fill gave and the
    addend that reaches the host page it maps."""
    import mmap
    global _scratch_memory
    if max(TLB_ENTRY_ADDR_READ, TLB_ENTRY_ADDR_WRITE, TLB_ENTRY_ADDR_CODE, TLB_ENTRY_ADDEND) + 8 \
            > 1 << TLB_ENTRY_SHIFT:
        return "a CPUTLBEntry field lies outside the entry"
    scratch_bytes = 0x3000
    if _scratch_memory is None:
        _scratch_memory = mmap.mmap(-1, scratch_bytes)
    memory = _scratch_memory
    host = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    uc = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
    uc.ctl_set_tlb_mode(uclib.UC_TLB_VIRTUAL)
    uc.mem_map_ptr(0, scratch_bytes, uclib.UC_PROT_ALL, host)
    readable = ReadableMemory()
    cpu, why = find_cpu_state(uc, readable)
    if cpu is None:
        return why
    env = cpu + X86_CPU_ENV_OFFSET
    if not _tlb_readable(readable, env):
        return "the softmmu TLB is not in readable memory"
    fasts, victims = _tlb_slots(env)
    tables = [_tlb_table(readable, fast) for fast in fasts]
    if None in tables or len({entries for _, entries in tables}) != 1:
        return "a softmmu TLB mask or table does not look like QEMU's"
    entries = tables[0][1]
    code, frame = 0x1000, 0x2000
    pages = [frame + j * entries * 0x1000 for j in range(TLB_VICTIM_ENTRIES + 2)]
    if pages[-1] >= 1 << 31:
        return "the softmmu TLB is too large for the probe"
    # mov al, [page] for each page (absolute disp32 form)
    program = b"".join(b"\x8a\x04\x25" + struct.pack("<I", page) for page in pages)
    memory[code:code + len(program)] = program

    def fill(uc, vaddr, access, entry, data):
        # The code page maps to itself, readable and executable; any other
        # page reads ``frame``.
        entry.paddr = code if vaddr == code else frame
        entry.perms = uclib.UC_PROT_READ | (uclib.UC_PROT_EXEC if vaddr == code else 0)
        return True

    uc.hook_add(uclib.UC_HOOK_TLB_FILL, fill)
    if _tlb_dirty(env):
        return "tlb.c.dirty of a new Unicorn is not 0"
    uc.emu_start(code, code + len(program))
    used = 0
    for mode, ((table, _), victim) in enumerate(zip(tables, victims)):
        code_entry, last_entry = (_tlb_entry(table + ((page >> 12) % entries << TLB_ENTRY_SHIFT))
                                  for page in (code, pages[-1]))
        victim_entries = [_tlb_entry(victim + (k << TLB_ENTRY_SHIFT)) for k in range(TLB_VICTIM_ENTRIES)]
        if _is_empty(code_entry) and _is_empty(last_entry) and all(map(_is_empty, victim_entries)):
            continue            # an MMU index these accesses did not use
        used += 1
        if not (_maps(code_entry, code, host + code, "code") and _maps(code_entry, code, host + code, "read")
                and code_entry["write"] == _EMPTY):
            return "the code page is not in the softmmu TLB table where expected"
        if not (_maps(last_entry, pages[-1], host + frame, "read")
                and last_entry["write"] == last_entry["code"] == _EMPTY):
            return "the last load's page is not in the softmmu TLB table where expected"
        in_victim = sorted(entry["read"] & _PAGE_MASK for entry in victim_entries
                           if _maps(entry, entry["read"] & _PAGE_MASK, host + frame, "read")
                           and entry["write"] == entry["code"] == _EMPTY)
        if in_victim != pages[1:-1]:
            return "the victim TLB does not hold the pages the last loads evicted"
        if _tlb_dirty(env) != 1 << mode:
            return "tlb.c.dirty does not name the one MMU index filled"
    if used != 1:
        return f"the loads filled {used} MMU indexes, not one"
    return ""


_tlb_layout_reasons: dict[tuple, str] = {}


def tlb_layout_reason() -> str:
    """_probe_tlb_layout's answer for the layout constants of this module
    (tests change them): computed once per libunicorn build, not per process.
    The probe needs a scratch Unicorn (its set-up is ~7 ms of every start),
    and its answer depends only on the library file and the constants, so it
    is kept beside the block price store, named by both (_kept_probe_path)."""
    key = (VERIFIED_VERSION, UC_STRUCT_CPU_OFFSET, CPU_STATE_ENV_PTR_OFFSET, CPU_STATE_UC_OFFSET,
           X86_CPU_ENV_OFFSET, ENV_UC_OFFSET, TLB_FLUSH_PAGE_SYMBOL, TLB_DIRTY_ENV_OFFSET, TLB_FAST_ENV_OFFSET,
           TLB_VICTIM_ENV_OFFSET, TLB_MMU_MODES, TLB_FAST_STRIDE, TLB_DESC_STRIDE, TLB_VICTIM_ENTRIES,
           TLB_ENTRY_SHIFT, TLB_MIN_ENTRIES, TLB_MAX_ENTRIES, TLB_ENTRY_ADDR_READ, TLB_ENTRY_ADDR_WRITE,
           TLB_ENTRY_ADDR_CODE, TLB_ENTRY_ADDEND)
    if key in _tlb_layout_reasons:
        return _tlb_layout_reasons[key]
    kept = _kept_probe_path(key)
    if kept is not None:
        try:
            with open(kept, encoding="utf-8") as handle:
                _tlb_layout_reasons[key] = handle.read()
            return _tlb_layout_reasons[key]
        except (OSError, UnicodeDecodeError):
            pass
    try:
        reason = _probe_tlb_layout()
    except (uclib.UcError, OSError) as error:
        # An optimisation's probe: whatever stops it means "not verified",
        # never a failure to import the emulator; and it is not kept.
        _tlb_layout_reasons[key] = f"the softmmu TLB probe failed: {error}"
        return _tlb_layout_reasons[key]
    _tlb_layout_reasons[key] = reason
    if kept is not None:
        from emu_x86.emu import block_price_store
        if block_price_store.write_whole(kept, reason.encode("utf-8")):
            block_price_store.keep_newest(os.path.dirname(kept), KEPT_PROBE_ANSWERS)
    return reason


# Probe answers kept, newest first: one per libunicorn build, and the tests
# link scratch builds (tests/test_unicorn_relink.py), so the directory is bounded.
KEPT_PROBE_ANSWERS = 32


def _kept_probe_path(key: tuple):
    """Where tlb_layout_reason keeps the probe's answer for ``key`` and this
    libunicorn file (its real path, size and modification time), or None
    without a cache directory (EMU_BLOCK_CACHE=off) or a library file."""
    from emu_x86.emu import block_price_store
    try:
        library = os.path.realpath(_uclib._name)
        status = os.stat(library)
    except (AttributeError, TypeError, OSError):
        return None
    digest = block_price_store.blake2b(repr((key, library, status.st_size, status.st_mtime_ns)).encode(),
                                       digest_size=16)
    return block_price_store.kept_file("unicorn-probes", digest.hexdigest())


def find_tlb_view(uc, cpu: int, readable: ReadableMemory | None = None) -> tuple[dict | None, str]:
    """(QEMU's softmmu TLB of ``uc`` as the fields of emu_x86/emu/timing/hotpath.h's
    struct unicorn_tlb_view, "") or (None, why not). ``cpu`` is what
    find_cpu_state returned for ``uc``, which must not have run yet: besides
    the layout probe (once per process, on a scratch instance), every mask and
    table of ``uc`` must look like QEMU's and every entry, in the tables and the
    victim TLBs, must be QEMU's empty entry. ``readable`` as for find_cpu_state."""
    why = tlb_layout_reason()
    if why:
        return None, why
    readable = ReadableMemory() if readable is None else readable
    env = cpu + X86_CPU_ENV_OFFSET
    if not _tlb_readable(readable, env):
        return None, "the softmmu TLB is not in readable memory"
    fasts, victims = _tlb_slots(env)
    if _tlb_dirty(env):
        return None, "tlb.c.dirty of a new Unicorn is not 0"
    for fast, victim in zip(fasts, victims):
        table = _tlb_table(readable, fast)
        if table is None:
            return None, "a softmmu TLB mask or table does not look like QEMU's"
        address, entries = table
        for start, size in ((address, entries << TLB_ENTRY_SHIFT), (victim, TLB_VICTIM_ENTRIES << TLB_ENTRY_SHIFT)):
            if ctypes.string_at(start, size).count(b"\xff") != size:
                return None, "the softmmu TLB of a new Unicorn is not empty"
    return {"fast": fasts[0], "victim": victims[0], "dirty": env + TLB_DIRTY_ENV_OFFSET, "mmu_modes": TLB_MMU_MODES,
            "fast_stride": TLB_FAST_STRIDE, "desc_stride": TLB_DESC_STRIDE,
            "victim_entries": TLB_VICTIM_ENTRIES, "entry_shift": TLB_ENTRY_SHIFT}, ""
