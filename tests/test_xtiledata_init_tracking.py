"""XINUSE tracks XTILECFG (17) and XTILEDATA (18) apart (SDM Vol. 1 §13.6,
the x86 amx selftest's "TILEDATA registers changed" case): an XRSTORS of an
image whose XSTATE_BV holds tile data but not the configuration leaves
XTILECFG in its init state and XTILEDATA in use with the loaded bytes, and
the XSAVES that follows writes XSTATE_BV[18] = 1 and the same bytes. The
kernel's C instructions (emu_x86/emu/isa/xstate_fast.c) and the Python ones
(emu_x86/emu/isa/xstate.py) agree on every step."""
from __future__ import annotations

import struct

import pytest

from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import (
    XFEATURE_MASK_SSE,
    XFEATURE_MASK_X87,
    XFEATURE_MASK_XTILE,
    XFEATURE_MASK_XTILECFG,
    XFEATURE_MASK_XTILEDATA,
    XFEATURE_XTILEDATA,
)
from emu_x86.emu.machine import Machine
from emu_x86.kernel import fpu
from emu_x86.kernel.kernel import Kernel, KernelConfig

FEATURES = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | XFEATURE_MASK_XTILE
TILE_BYTES = bytes((i * 7 + 3) & 0xFF for i in range(8192))


def _image(xstate_bv: int, tilecfg: bytes = bytes(64)) -> bytearray:
    """A compacted XSAVES image of FEATURES with ``xstate_bv`` and the tile bytes."""
    buffer = bytearray(xstate.compacted_size(FEATURES))
    buffer[:xstate.LEGACY_INIT_BYTES] = xstate.legacy_init_image()
    struct.pack_into("<QQ", buffer, xstate.HEADER_OFFSET, xstate_bv, FEATURES | xstate.COMPACTED_FORM)
    offsets = xstate._compacted_offsets(FEATURES)
    buffer[offsets[17]:offsets[17] + 64] = tilecfg
    buffer[offsets[XFEATURE_XTILEDATA]:offsets[XFEATURE_XTILEDATA] + 8192] = TILE_BYTES
    return buffer


def _round_trip(use_c: bool, xstate_bv: int, tilecfg: bytes = bytes(64)):
    machine = Machine(cpus=1, memory_bytes=16 << 20)
    kernel = Kernel(machine, KernelConfig(argv=["t"], envp=[]))
    vcpu = machine.vcpus[0]
    source = fpu.FpState(xfeatures=FEATURES, user_xfeatures=FEATURES, xfd=0, buffer=_image(xstate_bv, tilecfg))
    target = fpu.FpState(xfeatures=FEATURES, user_xfeatures=FEATURES, xfd=0)
    vcpu.xstate.xfd = 0
    saved = xstate.KERNEL_XSTATE_C, xstate.xsave, xstate.xrstor
    python_runs = []

    def counted(function):
        def run(*args, **kwargs):
            python_runs.append(function.__name__)
            return function(*args, **kwargs)
        return run
    xstate.KERNEL_XSTATE_C = use_c
    xstate.xsave, xstate.xrstor = counted(saved[1]), counted(saved[2])
    try:
        fpu._xrstors(kernel, vcpu, source, FEATURES)
        in_use = vcpu.xstate.tile_xinuse
        fpu._xsaves(kernel, vcpu, target, FEATURES)
    finally:
        xstate.KERNEL_XSTATE_C, xstate.xsave, xstate.xrstor = saved
    assert python_runs == ([] if use_c else ["xrstor", "xsave"])
    (saved_bv,) = struct.unpack_from("<Q", target.buffer, xstate.HEADER_OFFSET)
    offset = xstate._compacted_offsets(FEATURES)[XFEATURE_XTILEDATA]
    return in_use, saved_bv & XFEATURE_MASK_XTILE, bytes(target.buffer[offset:offset + 8192])


@pytest.mark.parametrize("use_c", [True, False], ids=["c", "python"])
def test_tile_data_alone_stays_in_use(use_c):
    in_use, saved_bv, data = _round_trip(use_c, XFEATURE_MASK_XTILEDATA)
    assert in_use == XFEATURE_MASK_XTILEDATA
    assert saved_bv == XFEATURE_MASK_XTILEDATA
    assert data == TILE_BYTES


@pytest.mark.parametrize("use_c", [True, False], ids=["c", "python"])
def test_configuration_and_data(use_c):
    config = bytes([1]) + bytes(15) + struct.pack("<16H", *([64] * 8 + [0] * 8)) + bytes([16] * 8 + [0] * 8)
    in_use, saved_bv, data = _round_trip(use_c, XFEATURE_MASK_XTILE, config)
    assert in_use == XFEATURE_MASK_XTILE and saved_bv == XFEATURE_MASK_XTILE and data == TILE_BYTES


@pytest.mark.parametrize("use_c", [True, False], ids=["c", "python"])
def test_palette_zero_configuration_is_init(use_c):
    """A loaded all-zero TILECFG is XTILECFG's init state; the data alone stays in use."""
    in_use, saved_bv, _ = _round_trip(use_c, XFEATURE_MASK_XTILE)
    assert in_use == XFEATURE_MASK_XTILEDATA and saved_bv == XFEATURE_MASK_XTILEDATA


@pytest.mark.parametrize("use_c", [True, False], ids=["c", "python"])
def test_neither_component(use_c):
    in_use, saved_bv, _ = _round_trip(use_c, 0)
    assert in_use == 0 and saved_bv == 0


def test_c_and_python_agree():
    for bv in (0, XFEATURE_MASK_XTILECFG, XFEATURE_MASK_XTILEDATA, XFEATURE_MASK_XTILE):
        assert _round_trip(True, bv) == _round_trip(False, bv)
