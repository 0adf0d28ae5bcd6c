"""Instruction semantics on a fake CPU: XRSTOR/XRSTORS header #GP cases, XFD #NM,
the init/modified optimizations, TILECFG validation and TILELOADD restart after a fault."""
import struct

import numpy as np
import pytest

from emu_x86.emu.isa import amx, xstate
from emu_x86.emu.isa.cpuid import AMD_ZEN4, INTEL_SAPPHIRE_RAPIDS
from emu_x86.emu.isa.state import XFEATURE_MASK_PASID, XFEATURE_MASK_XTILE, ExtendedState
from emu_x86.emu.traps import GP, NM, PF, UD

X87_SSE = 0b11
ALL_USER = X87_SSE | XFEATURE_MASK_XTILE


class FakeCpu:
    """Guest memory as a dict of pages; ``unmapped`` pages fault like the real walker."""

    def __init__(self, model=INTEL_SAPPHIRE_RAPIDS):
        self.cpu_model = model
        self.xstate = ExtendedState(xcr0=ALL_USER)
        self.memory = bytearray(1 << 20)
        self.unmapped: set[int] = set()
        self.registers = {"fpcw": 0x37F, "fpsw": 0, "fptag": 0xFFFF, "mxcsr": 0x1F80,
                          **{f"fp{i}": (0, 0) for i in range(8)}, **{f"xmm{i}": 0 for i in range(16)}}

    def _check(self, address, size, write):
        for page in range(address >> 12, (address + size - 1 >> 12) + 1):
            if page in self.unmapped:
                raise PF(max(address, page << 12), 0b110 if write else 0b100)

    def read_virtual(self, address, size):
        self._check(address, size, False)
        return bytes(self.memory[address:address + size])

    def write_virtual(self, address, data):
        self._check(address, len(data), True)
        self.memory[address:address + len(data)] = data

    def save_user_registers(self):
        return dict(self.registers)

    def write_register(self, name, value):
        self.registers[name] = value


def header(xstate_bv, xcomp_bv=0, tail=b""):
    return struct.pack("<QQ", xstate_bv, xcomp_bv) + tail.ljust(48, b"\0")


@pytest.mark.parametrize("name,xstate_bv,xcomp_bv,tail,supervisor", [
    ("standard form with XCOMP_BV set", 0b11, 0b11, b"", False),
    ("reserved header bytes", 0b11, 0, b"\1", False),
    ("XSTATE_BV outside XCR0", 1 << 9, 0, b"", False),
    ("compacted: XSTATE_BV not in XCOMP_BV", 0b11, (1 << 63) | 0b01, b"", False),
    ("compacted: XCOMP_BV outside XCR0", 0b01, (1 << 63) | (1 << 9) | 1, b"", False),
    ("XRSTORS of the standard form", 0b01, 0, b"", True),
    ("XRSTORS: supervisor bit not in XSS", 0b01, (1 << 63) | XFEATURE_MASK_PASID | 1, b"", True),
])
def test_xrstor_header_checks_raise_gp(name, xstate_bv, xcomp_bv, tail, supervisor):
    cpu = FakeCpu()
    cpu.memory[0x1000 + 512:0x1000 + 576] = header(xstate_bv, xcomp_bv, tail)
    with pytest.raises(GP):
        xstate.xrstor(cpu, 0x1000, ALL_USER, supervisor=supervisor)


def test_misaligned_area_and_mxcsr_reserved_bits_raise_gp():
    cpu = FakeCpu()
    with pytest.raises(GP):
        xstate.xsave(cpu, 0x1008, X87_SSE, variant="xsave")
    cpu.memory[0x1000 + 24:0x1000 + 28] = struct.pack("<I", 1 << 20)
    cpu.memory[0x1000 + 512:0x1000 + 576] = header(0b10)
    with pytest.raises(GP):
        xstate.xrstor(cpu, 0x1000, X87_SSE, supervisor=False)


def test_xrstor_of_an_xfd_armed_component_raises_nm_and_sets_xfd_err():
    cpu = FakeCpu()
    cpu.xstate.xfd = 1 << 18
    cpu.memory[0x2000 + 512:0x2000 + 576] = header(X87_SSE | XFEATURE_MASK_XTILE)
    with pytest.raises(NM):
        xstate.xrstor(cpu, 0x2000, ALL_USER, supervisor=False)
    assert cpu.xstate.xfd_err == 1 << 18


def test_round_trip_and_init_optimization():
    cpu = FakeCpu()
    cpu.registers["xmm3"] = 0x1234
    cpu.registers["mxcsr"] = 0x1F80 | 0x6000
    cpu.xstate.tilecfg[:] = bytes([1, 0] + [0] * 14 + [64, 0] * 8 + [0] * 16 + [16] * 8 + [0] * 8)
    cpu.xstate.tiles[2, 5, 7] = 99
    cpu.xstate.tiles_in_use = True
    skipped = xstate.xsave(cpu, 0x4000, ALL_USER, variant="xsavec")
    xstate_bv, xcomp_bv = struct.unpack_from("<QQ", cpu.memory, 0x4000 + 512)
    # x87 is in its initial state: not written, XSTATE_BV[0] = 0 (init optimization).
    assert xstate_bv == 0b10 | XFEATURE_MASK_XTILE and skipped == 1
    assert xcomp_bv == (1 << 63) | ALL_USER
    fresh = FakeCpu()
    fresh.memory = cpu.memory
    xstate.xrstor(fresh, 0x4000, ALL_USER, supervisor=False)
    assert fresh.registers["xmm3"] == 0x1234 and fresh.registers["mxcsr"] == 0x1F80 | 0x6000
    assert fresh.xstate.tiles[2, 5, 7] == 99 and fresh.xstate.tiles_in_use


def test_xsaveopt_skips_components_unmodified_since_xrstor():
    cpu = FakeCpu()
    cpu.xstate.tilecfg[:] = bytes([1, 0] + [0] * 14 + [64, 0] * 8 + [0] * 16 + [16] * 8 + [0] * 8)
    cpu.xstate.tiles_in_use = True
    xstate.xsave(cpu, 0x6000, ALL_USER, variant="xsave")
    xstate.xrstor(cpu, 0x6000, ALL_USER, supervisor=False)
    assert xstate.xsave(cpu, 0x6000, ALL_USER, variant="xsaveopt") == 2 + 2   # tiles unmodified; x87/SSE init
    assert cpu.xstate.unmodified_components_skipped == 2
    amx.tilezero(cpu, 1)                                                        # modifies the tile components
    assert xstate.xsave(cpu, 0x6000, ALL_USER, variant="xsaveopt") == 2


def tilecfg(rows=16, colsb=64, tiles=3, **overrides):
    config = bytearray(64)
    config[0] = 1
    for t in range(tiles):
        struct.pack_into("<H", config, 16 + 2 * t, colsb)
        config[48 + t] = rows
    for offset, value in overrides.items():
        config[int(offset[1:])] = value
    return bytes(config)


@pytest.mark.parametrize("config", [
    tilecfg(rows=17), tilecfg(colsb=65), bytes([2]) + bytes(63), tilecfg(b3=1),
    tilecfg(b56=4), tilecfg(b32=64), tilecfg(rows=0),
])
def test_ldtilecfg_rejects_invalid_configurations(config):
    cpu = FakeCpu()
    cpu.memory[0x1000:0x1040] = config
    with pytest.raises(GP):
        amx.ldtilecfg(cpu, 0x1000)


def test_amx_needs_xcr0_and_the_amd_model_has_none():
    cpu = FakeCpu()
    cpu.xstate.xcr0 = X87_SSE
    with pytest.raises(UD):
        amx.tilerelease(cpu)
    with pytest.raises(UD):
        amx.tilerelease(FakeCpu(AMD_ZEN4))


def test_tileloadd_fault_mid_tile_restarts_from_start_row():
    cpu = FakeCpu()
    cpu.memory[0x1000:0x1040] = tilecfg()
    amx.ldtilecfg(cpu, 0x1000)
    stride = 0x800                                    # two rows per page
    for row in range(16):
        cpu.memory[0x10000 + row * stride:0x10000 + row * stride + 64] = bytes([row + 1]) * 64
    cpu.unmapped.add((0x10000 + 9 * stride) >> 12)    # rows 8 and 9 live on this page
    with pytest.raises(PF) as fault:
        amx.tileloadd(cpu, 0, 0x10000, stride)
    assert fault.value.address == 0x10000 + 8 * stride
    assert cpu.xstate.tilecfg[1] == 8                  # start_row records the restart point
    assert (cpu.xstate.tiles[0, :8, 0] == np.arange(1, 9)).all()
    cpu.unmapped.clear()
    cpu.memory[0x10000:0x10040] = bytes([200]) * 64    # row 0 changes: a restart must not reload it
    amx.tileloadd(cpu, 0, 0x10000, stride)
    assert cpu.xstate.tilecfg[1] == 0
    assert list(cpu.xstate.tiles[0, :, 0]) == list(range(1, 17))
