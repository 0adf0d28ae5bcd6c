"""The XSAVE feature set: one component table, the layouts derived from it, and the
XSAVE/XSAVEOPT/XSAVEC/XSAVES/XRSTOR/XRSTORS semantics (SDM Vol. 1 ch. 13).

``COMPONENTS`` is the single source of truth (size, standard offset, 64-byte
alignment, supervisor, XFD support); compacted offsets (§13.4.3), area sizes
and CPUID leaf 0xD are computed from it, as Linux's setup_xstate_comp_offsets
does. x87 and SSE live in Unicorn's registers and are converted to and from
the FXSAVE-format legacy region here; the rest lives in ``vcpu.xstate``.
"""
from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass

from emu_x86.emu.uclib import UcError

from emu_x86.emu.isa.state import (
    XFEATURE_MASK_PASID, XFEATURE_MASK_SSE, XFEATURE_MASK_X87, XFEATURE_MASK_XTILE, XFEATURE_MASK_XTILECFG,
    XFEATURE_MASK_XTILEDATA, XFEATURE_PASID, XFEATURE_SSE, XFEATURE_X87, XFEATURE_XTILECFG, XFEATURE_XTILEDATA,
)
from emu_x86.emu.timing._hotpath import ffi as _ffi, lib as _hotpath
from emu_x86.emu.traps import GP, NM

LEGACY_AREA_BYTES = 512
HEADER_OFFSET = 512
HEADER_BYTES = 64
COMPACTED_START = LEGACY_AREA_BYTES + HEADER_BYTES     # 576
COMPACTED_FORM = 1 << 63
# MXCSR_MASK as the modelled cores report it in the legacy region: bits 0-15
# on Intel; AMD also sets bit 17 (misaligned-SSE mode), as this host's EPYC does.
MXCSR_MASK = 0x0000FFFF
MXCSR_MASK_AMD = 0x0002FFFF
MXCSR_INIT = 0x1F80
FCW_INIT = 0x037F


@dataclass(frozen=True)
class Component:
    """One XSAVE state component: its number, size and place in the standard and compacted formats."""

    number: int
    name: str
    size_bytes: int
    standard_offset: int | None     # None: supervisor, compacted form only
    align64: bool
    supervisor: bool
    xfd_capable: bool


COMPONENTS = {
    XFEATURE_X87: Component(XFEATURE_X87, "x87", 160, 0, False, False, False),
    XFEATURE_SSE: Component(XFEATURE_SSE, "sse", 256, 160, False, False, False),
    XFEATURE_PASID: Component(XFEATURE_PASID, "pasid", 8, None, False, True, False),
    XFEATURE_XTILECFG: Component(XFEATURE_XTILECFG, "xtilecfg", 64, 2752, False, False, False),
    XFEATURE_XTILEDATA: Component(XFEATURE_XTILEDATA, "xtiledata", 8192, 2816, True, False, True),
}
SUPPORTED_USER_MASK = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | XFEATURE_MASK_XTILE
SUPPORTED_SUPERVISOR_MASK = XFEATURE_MASK_PASID


@functools.lru_cache(maxsize=256)
def _bits(mask: int) -> tuple:
    return tuple(number for number in sorted(COMPONENTS) if mask >> number & 1)


def compacted_offsets(mask: int) -> dict[int, int]:
    """SDM §13.4.3: x87/SSE keep their legacy places; the others follow 576 in
    ascending order, each 64-byte aligned when its align64 bit is set."""
    return dict(_compacted_offsets(mask))


@functools.lru_cache(maxsize=256)
def _compacted_offsets(mask: int) -> dict[int, int]:
    """``compacted_offsets``, computed once per mask (callers must not modify it)."""
    offsets = {}
    location = COMPACTED_START
    for number in _bits(mask):
        component = COMPONENTS[number]
        if number < 2:
            offsets[number] = component.standard_offset
            continue
        if component.align64:
            location = (location + 63) & ~63
        offsets[number] = location
        location += component.size_bytes
    return offsets


@functools.lru_cache(maxsize=256)
def compacted_size(mask: int) -> int:
    end = COMPACTED_START
    for number, offset in _compacted_offsets(mask).items():
        if number >= 2:
            end = max(end, offset + COMPONENTS[number].size_bytes)
    return end


def standard_size(xcr0: int) -> int:
    end = COMPACTED_START
    for number in _bits(xcr0):
        component = COMPONENTS[number]
        if number >= 2 and component.standard_offset is not None:
            end = max(end, component.standard_offset + component.size_bytes)
    return end


def cpuid_leaf_0xd(subleaf: int, xcr0: int, xss: int) -> tuple[int, int, int, int]:
    """CPUID.(EAX=0DH, ECX=subleaf) as the SDM defines each sub-leaf."""
    if subleaf == 0:
        return (SUPPORTED_USER_MASK & 0xFFFFFFFF, standard_size(xcr0), standard_size(SUPPORTED_USER_MASK),
                SUPPORTED_USER_MASK >> 32)
    if subleaf == 1:
        # XSAVEOPT, XSAVEC, XGETBV with ECX=1, XSAVES/XRSTORS+IA32_XSS, XFD.
        eax = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4)
        return eax, compacted_size(xcr0 | xss), SUPPORTED_SUPERVISOR_MASK & 0xFFFFFFFF, SUPPORTED_SUPERVISOR_MASK >> 32
    component = COMPONENTS.get(subleaf)
    if component is None or subleaf < 2:
        return 0, 0, 0, 0
    ecx = (1 if component.supervisor else 0) | (2 if component.align64 else 0) | (4 if component.xfd_capable else 0)
    return component.size_bytes, component.standard_offset or 0, ecx, 0


# ---- the legacy region (FXSAVE layout, SDM Vol. 1 Table 10-2) ---------------------------

def _full_tag(abridged: int, registers: list[tuple[int, int]]) -> int:
    """FXSAVE's abridged tag byte -> the x87 tag word (SDM Vol. 1 §10.5.1.1)."""
    if not abridged:
        return 0xFFFF                                   # every register empty
    tag = 0
    for physical in range(8):
        mantissa, exponent = registers[physical]
        if not abridged >> physical & 1:
            value = 3                                   # empty
        elif exponent & 0x7FFF == 0 and mantissa == 0:
            value = 1                                   # zero
        elif exponent & 0x7FFF in (0, 0x7FFF) or not mantissa >> 63:
            value = 2                                   # special
        else:
            value = 0                                   # valid
        tag |= value << (2 * physical)
    return tag


# The whole 512-byte legacy region as one struct: FCW, FSW, abridged FTW, a
# reserved byte, FOP/FIP/FDP (not tracked by the machine: zero), MXCSR,
# MXCSR_MASK, ST0-ST7 (80 bits in 16-byte slots), XMM0-XMM15 (low and high
# qwords), the reserved/available tail.
_LEGACY_LAYOUT = struct.Struct("<HHBB18xII" + "QH6x" * 8 + "QQ" * 16 + "96x")
assert _LEGACY_LAYOUT.size == LEGACY_AREA_BYTES
_FP_NAMES = tuple(f"fp{i}" for i in range(8))
_XMM_NAMES = tuple(f"xmm{i}" for i in range(16))
_MASK64 = (1 << 64) - 1


@functools.lru_cache(maxsize=1024)
def _abridged_tag(fptag: int) -> int:
    """The x87 tag word -> FXSAVE's abridged tag byte: bit i set unless register i is empty (11b)."""
    abridged = 0
    for physical in range(8):
        if (fptag >> (2 * physical)) & 3 != 3:
            abridged |= 1 << physical
    return abridged


def legacy_area_from_registers(registers: dict, mxcsr_mask: int = MXCSR_MASK) -> bytes:
    """The 512-byte legacy region of the vCPU's x87/SSE registers (ST(i) order)."""
    fsw = registers["fpsw"]
    top = (fsw >> 11) & 7
    values = [registers["fpcw"], fsw, _abridged_tag(registers["fptag"]), 0, registers["mxcsr"], mxcsr_mask]
    for i in range(8):
        values += registers[_FP_NAMES[(top + i) & 7]]
    for name in _XMM_NAMES:
        xmm = registers[name]
        if xmm >> 128:                     # negative or wider than 128 bits
            raise OverflowError("XMM value out of range")
        values += (xmm & _MASK64, xmm >> 64)
    return _LEGACY_LAYOUT.pack(*values)


def registers_from_legacy_area(area: bytes, components: int) -> dict:
    """Register values from a legacy region, for the x87 and/or SSE components."""
    fields = _LEGACY_LAYOUT.unpack_from(area, 0)
    values = {}
    if components & XFEATURE_MASK_X87:
        fcw, fsw, abridged = fields[0:3]
        top = (fsw >> 11) & 7
        physical_registers = [(0, 0)] * 8
        for i in range(8):
            physical_registers[(top + i) & 7] = (fields[6 + 2 * i], fields[7 + 2 * i])
        values.update(fpcw=fcw, fpsw=fsw, fptag=_full_tag(abridged, physical_registers))
        values.update(zip(_FP_NAMES, physical_registers))
    if components & XFEATURE_MASK_SSE:
        values.update(zip(_XMM_NAMES, [low | high << 64 for low, high in zip(fields[22:54:2], fields[23:54:2])]))
    return values


_INIT_X87 = {"fpcw": FCW_INIT, "fpsw": 0, "fptag": 0xFFFF, **{name: (0, 0) for name in _FP_NAMES}}
_INIT_SSE = {name: 0 for name in _XMM_NAMES}


def init_legacy_registers(components: int = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE) -> dict:
    """x87/SSE in their initial configuration (FNINIT, MXCSR 0x1F80, XMM zero)."""
    values = {}
    if components & XFEATURE_MASK_X87:
        values.update(_INIT_X87)
    if components & XFEATURE_MASK_SSE:
        values.update(_INIT_SSE)
    return values


# The part of the legacy region an init image fills in: FCW (bytes 0-1) to MXCSR (24-27).
LEGACY_INIT_BYTES = 28


def legacy_init_image() -> bytes:
    """The first LEGACY_INIT_BYTES of an FXSAVE image of the init state, as
    Linux's fpstate_init_fxstate writes into init_fpstate: FCW 0x37F, FSW 0,
    abridged tag 0 (all empty), MXCSR 0x1F80."""
    return struct.pack("<HHBxHQQI", FCW_INIT, 0, 0, 0, 0, 0, MXCSR_INIT)


def mxcsr_mask_of(cpu) -> int:
    return MXCSR_MASK_AMD if cpu.cpu_model.vendor == "AuthenticAMD" else MXCSR_MASK


def xinuse(cpu, registers: dict | None = None) -> int:
    """XINUSE: components not in their initial configuration (SDM §13.6).
    ``registers``: the vCPU's ``save_user_registers()`` when the caller has it."""
    if registers is None:
        registers = cpu.save_user_registers()
    in_use = 0
    if (registers["fpcw"] != FCW_INIT or registers["fpsw"] != 0 or registers["fptag"] != 0xFFFF):
        in_use |= XFEATURE_MASK_X87
    if registers["mxcsr"] != MXCSR_INIT or any(map(registers.__getitem__, _XMM_NAMES)):
        in_use |= XFEATURE_MASK_SSE
    in_use |= cpu.xstate.tile_xinuse
    if cpu.xstate.pasid:
        in_use |= XFEATURE_MASK_PASID
    return in_use


# ---- XSAVE* --------------------------------------------------------------------------

def _component_bytes(cpu, number: int, registers: dict, legacy: bytes) -> bytes:
    xstate = cpu.xstate
    if number == XFEATURE_X87:
        return legacy[0:160]
    if number == XFEATURE_SSE:
        return legacy[160:416]
    if number == XFEATURE_PASID:
        return struct.pack("<Q", xstate.pasid)
    if number == XFEATURE_XTILECFG:
        return bytes(xstate.tilecfg)
    if number == XFEATURE_XTILEDATA:
        return xstate.tile_bytes()
    raise GP(0)


def xsave(cpu, address: int, rfbm: int, *, variant: str) -> int:
    """XSAVE/XSAVEOPT/XSAVEC/XSAVES of the components in ``rfbm`` to ``address``.

    Returns the number of components skipped by the init or modified
    optimization. ``rfbm`` is already EDX:EAX & (XCR0 [| XSS])."""
    if address & 63:
        raise GP(0)
    xstate = cpu.xstate
    compacted = variant in ("xsavec", "xsaves")
    registers = cpu.save_user_registers()
    legacy = legacy_area_from_registers(registers, mxcsr_mask_of(cpu))
    in_use = xinuse(cpu, registers)
    # A component armed in IA32_XFD is treated as being in its initial state.
    in_use &= ~xstate.xfd
    may_skip_unmodified = (variant in ("xsaveopt", "xsaves") and xstate.last_restore_linear_address == address
                           and xstate.last_restore_was_xrstors == (variant == "xsaves"))
    header = bytearray(cpu.read_virtual(address + HEADER_OFFSET, HEADER_BYTES)) if not compacted \
        else bytearray(HEADER_BYTES)
    (xstate_bv,) = struct.unpack_from("<Q", header, 0)
    offsets = _compacted_offsets(rfbm) if compacted else None
    writes = []
    skipped = 0
    for number in _bits(rfbm):
        used = bool(in_use >> number & 1)
        if variant == "xsave" or used:
            if used and may_skip_unmodified and number >= 2 and not xstate.modified_since_restore >> number & 1:
                skipped += 1
                xstate.unmodified_components_skipped += 1
            else:
                offset = offsets[number] if compacted else COMPONENTS[number].standard_offset
                if offset is None:
                    raise GP(0)
                if variant == "xsave" and not used:
                    data = _init_bytes(number)
                else:
                    data = _component_bytes(cpu, number, registers, legacy)
                if number == XFEATURE_X87:
                    # Bytes 24-31 (MXCSR, MXCSR_MASK) belong to SSE, not x87 (SDM Vol. 1 §13.5.1):
                    # XSAVE with RFBM[1] = 0 leaves them as they were.
                    writes += [(offset, data[0:24]), (offset + 32, data[32:160])]
                else:
                    writes.append((offset, data))
        else:
            skipped += 1
        xstate_bv = (xstate_bv & ~(1 << number)) | ((1 if used else 0) << number)
    if rfbm & (XFEATURE_MASK_X87 | XFEATURE_MASK_SSE) or variant == "xsave":
        # MXCSR and MXCSR_MASK travel with SSE (and AVX) state (SDM §13.7).
        if rfbm & XFEATURE_MASK_SSE:
            writes.append((24, legacy[24:32]))
    struct.pack_into("<Q", header, 0, xstate_bv)
    if compacted:
        struct.pack_into("<Q", header, 8, rfbm | COMPACTED_FORM)
    for offset, data in writes:
        cpu.write_virtual(address + offset, data)
    cpu.write_virtual(address + HEADER_OFFSET, bytes(header))
    return skipped


def _init_bytes(number: int) -> bytes:
    if number == XFEATURE_X87:
        area = bytearray(160)
        struct.pack_into("<H", area, 0, FCW_INIT)
        return bytes(area)
    return bytes(COMPONENTS[number].size_bytes)


def _restored_legacy_registers(legacy, rfbm: int, load: int) -> dict:
    """The x87/SSE register values an XRSTOR* of ``rfbm`` writes, in the order
    it writes them: loaded from the legacy region for the components in
    ``load`` (RFBM & XSTATE_BV), initial for the rest of RFBM; MXCSR with SSE."""
    legacy_components = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE
    if rfbm & legacy_components == load & legacy_components == legacy_components:
        values = registers_from_legacy_area(legacy, legacy_components)      # x87 then SSE, as below
    else:
        values = {}
        if rfbm & XFEATURE_MASK_X87:
            values.update(registers_from_legacy_area(legacy, XFEATURE_MASK_X87) if load & XFEATURE_MASK_X87
                          else init_legacy_registers(XFEATURE_MASK_X87))
        if rfbm & XFEATURE_MASK_SSE:
            values.update(registers_from_legacy_area(legacy, XFEATURE_MASK_SSE) if load & XFEATURE_MASK_SSE
                          else init_legacy_registers(XFEATURE_MASK_SSE))
    if rfbm & XFEATURE_MASK_SSE:
        values["mxcsr"] = struct.unpack_from("<I", legacy, 24)[0]
    return values


def xrstor(cpu, address: int, rfbm: int, *, supervisor: bool) -> None:
    """XRSTOR (standard or compacted form) or XRSTORS (``supervisor``) from ``address``."""
    if address & 63:
        raise GP(0)
    xstate = cpu.xstate
    header = cpu.read_virtual(address + HEADER_OFFSET, HEADER_BYTES)
    xstate_bv, xcomp_bv = struct.unpack_from("<QQ", header, 0)
    compacted = bool(xcomp_bv & COMPACTED_FORM)
    enabled = xstate.xcr0 | (xstate.xss if supervisor else 0)
    # Header checks (SDM Vol. 1 §13.8.1, §13.12): every failure is #GP(0).
    if supervisor and not compacted:
        raise GP(0)
    if compacted:
        if xcomp_bv & ~COMPACTED_FORM & ~enabled or xstate_bv & ~xcomp_bv & ~COMPACTED_FORM:
            raise GP(0)
        if any(header[16:64]):
            raise GP(0)
    else:
        if xstate_bv & ~xstate.xcr0 or xcomp_bv or any(header[16:64]):
            raise GP(0)
    if xstate_bv & COMPACTED_FORM:
        raise GP(0)
    load = rfbm & xstate_bv
    # #NM: loading a component armed in XFD from memory (SDM §13.14).
    armed = load & xstate.xfd
    if armed:
        xstate.xfd_err = armed
        raise NM(0)
    offsets = _compacted_offsets(xcomp_bv & ~COMPACTED_FORM) if compacted else None
    legacy = bytearray(cpu.read_virtual(address, LEGACY_AREA_BYTES))
    if rfbm & XFEATURE_MASK_SSE:
        (mxcsr,) = struct.unpack_from("<I", legacy, 24)
        if mxcsr & ~mxcsr_mask_of(cpu):
            raise GP(0)
    # Read everything first so a fault leaves the state untouched.
    component_data = {}
    for number in _bits(load):
        if number < 2:
            continue
        offset = offsets[number] if compacted else COMPONENTS[number].standard_offset
        if offset is None:
            raise GP(0)
        component_data[number] = cpu.read_virtual(address + offset, COMPONENTS[number].size_bytes)
    values = _restored_legacy_registers(legacy, rfbm, load)
    write_registers = getattr(cpu, "write_registers", None)
    if write_registers is not None:
        write_registers(values)
    else:
        for name, value in values.items():
            cpu.write_register(name, value)
    if rfbm & XFEATURE_MASK_XTILECFG:
        if load & XFEATURE_MASK_XTILECFG:
            xstate.tilecfg[:] = component_data[XFEATURE_XTILECFG]
        else:
            xstate.tilecfg[:] = bytes(64)
    if rfbm & XFEATURE_MASK_XTILEDATA:
        if load & XFEATURE_MASK_XTILEDATA:
            xstate.load_tile_bytes(component_data[XFEATURE_XTILEDATA])
        else:
            xstate.load_tile_bytes(None)
    # XINUSE of each tile component in RFBM: XTILECFG in use when loaded with
    # a palette (an all-zero configuration is its init state), XTILEDATA
    # whenever it was loaded, even with XTILECFG in its init state (SDM Vol. 1
    # §13.6, §13.8; the amx selftest's XRSTOR of tile data alone).
    if rfbm & XFEATURE_MASK_XTILE:
        tile_in_use = xstate.tile_xinuse & ~rfbm
        if load & XFEATURE_MASK_XTILECFG and xstate.tilecfg[0] != 0:
            tile_in_use |= XFEATURE_MASK_XTILECFG
        tile_in_use |= load & XFEATURE_MASK_XTILEDATA
        xstate.tile_xinuse = tile_in_use
    if supervisor and rfbm & XFEATURE_MASK_PASID:
        xstate.pasid = struct.unpack("<Q", component_data[XFEATURE_PASID])[0] if load & XFEATURE_MASK_PASID else 0
    # The modified optimization remembers where this state came from.
    xstate.last_restore_linear_address = address
    xstate.last_restore_was_xrstors = supervisor
    xstate.modified_since_restore = 0


# ---- the kernel's XSAVES/XRSTORS in C (emu_x86/emu/isa/xstate_fast.c) -------------------------
#
# The context switch saves and restores fpstates with XSAVES/XRSTORS at CPL0.
# xsaves_fast/xrstors_fast run the byte moving and page walks of those two in
# C with the semantics above; they return None/False whenever xsave()/xrstor()
# must run instead (every fault, every unusual case), having changed nothing
# that run would not redo identically. ``KERNEL_XSTATE_C = False`` (or the
# environment variable EMU_XSTATE_C=0 at import) makes every call decline, so
# tests can compare the two paths.

KERNEL_XSTATE_C = os.environ.get("EMU_XSTATE_C", "1") != "0"
_LEGACY_MASK = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE

for _component in COMPONENTS.values():
    _hotpath.xstate_fast_declare_component(_component.number, _component.size_bytes, _component.align64)


def _flat(buffer):
    """(pointer, size) of a host buffer standing for the fpstate, or NULL to walk the page tables."""
    if buffer is None:
        return _ffi.NULL, 0
    return _ffi.from_buffer("uint8_t[]", buffer, require_writable=True), len(buffer)


# Scratch space of the two calls below, allocated once (they never nest): the
# legacy region, and the C functions' out-parameters.
_legacy_scratch = _ffi.new("uint8_t[]", LEGACY_AREA_BYTES)
_u64_scratch = _ffi.new("uint64_t[2]")
_u32_scratch = _ffi.new("uint32_t[2]")


def xsaves_fast(cpu, address: int, rfbm: int, buffer: bytearray | None = None) -> int | None:
    """XSAVES of ``rfbm`` to the supervisor buffer at ``address`` -- ``buffer``
    when it is host memory standing for [address, address + len(buffer)),
    else guest memory through ``cpu``'s page tables -- as xsave(variant="xsaves").
    The x87/SSE registers and their XINUSE bits come from C's own read of the
    vCPU's registers (the values save_user_registers() gives), in the same
    call. Returns the components skipped, or None when xsave() must run instead."""
    if not KERNEL_XSTATE_C:
        return None
    xstate = cpu.xstate
    flat, flat_size = _flat(buffer)
    counts = _u32_scratch
    status = _hotpath.xstate_xsaves_registers(
        cpu.clock.uc, mxcsr_mask_of(cpu), cpu.c_mmu, flat, flat_size, xstate.c_state, address, rfbm,
        xstate.last_restore_linear_address == address and xstate.last_restore_was_xrstors, xstate.pasid,
        counts, counts + 1)
    if status:
        if status >= _hotpath.XSTATE_FAST_UC_ERROR:
            raise UcError(status - _hotpath.XSTATE_FAST_UC_ERROR)
        return None
    if counts[1]:
        xstate.unmodified_components_skipped += counts[1]
    return counts[0]


def xrstors_fast(cpu, address: int, rfbm: int, buffer: bytearray | None = None) -> bool:
    """XRSTORS of ``rfbm`` from ``address`` (``buffer`` as for xsaves_fast),
    as xrstor(supervisor=True): C loads the tile components and, when RFBM
    holds x87 and SSE, writes those registers in the same call; a subset is
    written here. False when xrstor() must run instead."""
    if not KERNEL_XSTATE_C:
        return False
    xstate = cpu.xstate
    c_state = xstate.c_state
    flat, flat_size = _flat(buffer)
    legacy, results = _legacy_scratch, _u64_scratch
    # The same registers, values and order as _restored_legacy_registers + write_registers.
    status = _hotpath.xstate_xrstors_registers(
        cpu.clock.uc, cpu.c_mmu, flat, flat_size, c_state, address, rfbm, c_state.xcr0 | xstate.xss,
        mxcsr_mask_of(cpu), legacy, results, results + 1)
    if status:
        if status >= _hotpath.XSTATE_FAST_UC_ERROR:
            raise UcError(status - _hotpath.XSTATE_FAST_UC_ERROR)
        return False
    load = results[0]
    if rfbm & _LEGACY_MASK != _LEGACY_MASK:
        cpu.write_registers(_restored_legacy_registers(_ffi.buffer(legacy)[:], rfbm, load))
    if rfbm & XFEATURE_MASK_PASID:
        xstate.pasid = results[1] if load & XFEATURE_MASK_PASID else 0
    # The modified optimization remembers where this state came from (C
    # cleared modified_since_restore).
    xstate.last_restore_linear_address = address
    xstate.last_restore_was_xrstors = True
    return True
