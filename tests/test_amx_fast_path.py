"""The C fast path of the tile dot products (emu_x86/emu/isa/amx_fast.c) is the Python
reference (emu_x86/emu/isa/amx.py) made fast: same tiles, same XINUSE/modified flags,
same #UD cases declined, same decode, and a guest runs bit-identically --
stdout, exit status, statistics -- with it on or off (EMU_AMX_FAST_PATH=0)."""
import json
import os

import numpy as np
import pytest

from emu_x86.emu.isa import amx, encoding
from emu_x86.emu.isa.cpuid import INTEL_SAPPHIRE_RAPIDS
from emu_x86.emu.isa.state import XFEATURE_MASK_XTILE, ExtendedState
from emu_x86.emu.timing._hotpath import ffi, lib
from emu_x86.emu.traps import UD
from tests.guestbuild import REPO, build, emu

KINDS = {"tdpbuud": lib.AMX_KIND_TDPBUUD, "tdpbusd": lib.AMX_KIND_TDPBUSD, "tdpbsud": lib.AMX_KIND_TDPBSUD,
         "tdpbssd": lib.AMX_KIND_TDPBSSD, "tdpbf16ps": lib.AMX_KIND_TDPBF16PS}
AMX_DIR = REPO / "guest" / "tests" / "amx"


class FakeCpu:
    cpu_model = INTEL_SAPPHIRE_RAPIDS

    def __init__(self):
        self.xstate = ExtendedState(xcr0=0x3 | XFEATURE_MASK_XTILE)


def tilecfg(shapes: dict[int, tuple[int, int]]) -> bytes:
    """Palette 1 with tile -> (rows, colsb)."""
    config = bytearray(64)
    config[0] = 1
    for tile, (rows, colsb) in shapes.items():
        config[16 + 2 * tile:18 + 2 * tile] = colsb.to_bytes(2, "little")
        config[48 + tile] = rows
    return bytes(config)


def pair(config: bytes, tiles: np.ndarray) -> tuple[FakeCpu, FakeCpu]:
    """Two vCPU stand-ins with the same tile state (not yet in use)."""
    cpus = FakeCpu(), FakeCpu()
    for cpu in cpus:
        cpu.xstate.tilecfg[:] = config
        cpu.xstate.tiles[:] = tiles
    return cpus


def run_both(kind: str, config: bytes, tiles: np.ndarray, dest: int, src1: int, src2: int):
    """(python_cpu, c_cpu, python raised UD, c executed) after one dot product on each."""
    python_cpu, c_cpu = pair(config, tiles)
    try:
        amx.tile_dot_product(python_cpu, kind, dest, src1, src2)
        python_ud = False
    except UD:
        python_ud = True
    executed = lib.amx_tile_dot_product(c_cpu.xstate.c_state, KINDS[kind], dest, src1, src2)
    return python_cpu, c_cpu, python_ud, executed


def assert_same_state(a: FakeCpu, b: FakeCpu) -> None:
    np.testing.assert_array_equal(a.xstate.tiles, b.xstate.tiles)
    assert bytes(a.xstate.tilecfg) == bytes(b.xstate.tilecfg)
    assert a.xstate.tiles_in_use == b.xstate.tiles_in_use
    assert a.xstate.modified_since_restore == b.xstate.modified_since_restore


@pytest.mark.parametrize("kind", ["tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud"])
def test_integer_kinds_match_python_on_random_shapes_and_tiles(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    for trial in range(300):
        m, k, n = (int(x) for x in rng.integers(1, 17, size=3))
        dest, src1, src2 = (int(t) for t in rng.permutation(8)[:3])
        config = tilecfg({dest: (m, 4 * n), src1: (m, 4 * k), src2: (k, 4 * n)})
        # Garbage everywhere, including beyond each tile's rows and colsb.
        tiles = rng.integers(0, 256, size=(8, 16, 64), dtype=np.uint16).astype(np.uint8)
        python_cpu, c_cpu, python_ud, executed = run_both(kind, config, tiles, dest, src1, src2)
        assert not python_ud and executed == 1, (trial, m, k, n)
        assert_same_state(python_cpu, c_cpu)
        assert c_cpu.xstate.tiles_in_use and c_cpu.xstate.modified_since_restore == XFEATURE_MASK_XTILE


@pytest.mark.parametrize("kind", ["tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud"])
@pytest.mark.parametrize("a_byte, b_byte, c_dword", [
    (0x80, 0x80, 0x7FFFFFFF), (0x7F, 0x80, -2**31), (0xFF, 0xFF, 0x7FFFFF00), (0x80, 0x7F, 0), (0xFF, 0x80, -1)])
def test_extreme_values_wrap_modulo_2_32_like_python(kind, a_byte, b_byte, c_dword):
    tiles = np.zeros((8, 16, 64), dtype=np.uint8)
    tiles[1] = a_byte
    tiles[2] = b_byte
    tiles[0] = np.full((16, 16), c_dword & 0xFFFFFFFF, dtype=np.uint32).view(np.uint8).reshape(16, 64)
    python_cpu, c_cpu, python_ud, executed = run_both(
        kind, tilecfg({0: (16, 64), 1: (16, 64), 2: (16, 64)}), tiles, 0, 1, 2)
    assert executed == 1 and not python_ud
    assert_same_state(python_cpu, c_cpu)


SHAPE_FAULTS = {
    "same tile twice": ({0: (16, 64), 1: (16, 64)}, (0, 1, 1)),
    "dest is src1": ({0: (16, 64), 2: (16, 64)}, (0, 0, 2)),
    "src2 unconfigured": ({0: (16, 64), 1: (16, 64)}, (0, 1, 2)),
    "rows differ": ({0: (8, 64), 1: (16, 64), 2: (16, 64)}, (0, 1, 2)),
    "K differs": ({0: (16, 64), 1: (16, 32), 2: (16, 64)}, (0, 1, 2)),
    "N differs": ({0: (16, 32), 1: (16, 64), 2: (16, 64)}, (0, 1, 2)),
    "colsb not a multiple of 4": ({0: (16, 62), 1: (16, 64), 2: (16, 62)}, (0, 1, 2)),
    "palette 0": ({}, (0, 1, 2)),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(SHAPE_FAULTS))
def test_shape_faults_are_left_to_python_untouched(kind, case):
    shapes, operands = SHAPE_FAULTS[case]
    config = tilecfg(shapes) if shapes else bytes(64)
    tiles = np.random.default_rng(5).integers(0, 128, size=(8, 16, 64), dtype=np.uint8)
    python_cpu, c_cpu, python_ud, executed = run_both(kind, config, tiles, *operands)
    assert python_ud and executed == 0
    np.testing.assert_array_equal(c_cpu.xstate.tiles, tiles)
    assert not c_cpu.xstate.tiles_in_use and c_cpu.xstate.modified_since_restore == 0


def bf16_tile(rng, rows: int, scale: float) -> np.ndarray:
    """Finite bf16 patterns: normal, denormal and zero values of both signs."""
    bits = (rng.normal(scale=scale, size=(rows, 32)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    denormal = rng.random(size=bits.shape) < 0.1
    bits[denormal] = (bits[denormal] & 0x807F) | rng.integers(1, 0x7F, size=int(denormal.sum()), dtype=np.uint16)
    return bits.view(np.uint8).reshape(rows, 64)


@pytest.mark.parametrize("scale", [1.0, 1e-19, 1e19])
def test_tdpbf16ps_matches_python_bit_for_bit(scale):
    """Includes denormal inputs and accumulators (DAZ/FTZ) and, at 1e19, products that
    overflow to infinity and sums that become the default NaN."""
    rng = np.random.default_rng(int(np.log10(scale)) + 40)
    for trial in range(40):
        m, k, n = (int(x) for x in rng.integers(1, 17, size=3))
        tiles = np.zeros((8, 16, 64), dtype=np.uint8)
        tiles[4, :, :] = bf16_tile(rng, 16, scale)
        tiles[5, :, :] = bf16_tile(rng, 16, scale)
        acc = rng.normal(scale=scale, size=(16, 16)).astype(np.float32)
        acc[rng.random(size=acc.shape) < 0.1] = np.float32(1e-40)      # denormal accumulators
        tiles[6] = acc.view(np.uint8).reshape(16, 64)
        config = tilecfg({6: (m, 4 * n), 4: (m, 4 * k), 5: (k, 4 * n)})
        python_cpu, c_cpu, python_ud, executed = run_both("tdpbf16ps", config, tiles, 6, 4, 5)
        assert executed == 1 and not python_ud
        assert_same_state(python_cpu, c_cpu)


@pytest.mark.parametrize("where", ["src1", "src2", "dest"])
def test_tdpbf16ps_with_nan_or_infinity_inputs_is_left_to_python(where):
    tiles = np.zeros((8, 16, 64), dtype=np.uint8)
    tile, offset = {"src1": (1, 2), "src2": (2, 2), "dest": (0, 0)}[where]
    tiles[tile, 3, offset:offset + 4] = np.array([0x7FC00000], dtype=np.uint32).view(np.uint8)   # NaN
    _, c_cpu, _, executed = run_both("tdpbf16ps", tilecfg({0: (16, 64), 1: (16, 64), 2: (16, 64)}), tiles, 0, 1, 2)
    assert executed == 0
    np.testing.assert_array_equal(c_cpu.xstate.tiles, tiles)


def test_c_decoder_takes_only_what_the_python_decoder_reads_the_same_way():
    out = ffi.new("int[3]")
    accepted = 0
    for vex2 in range(256):
        for opcode in (0x5C, 0x5E, 0x5D):
            for modrm in list(range(0xC0, 0x100)) + [0x00, 0x04, 0x45, 0x80, 0xBF]:
                code = bytes([0xC4, 0xE2, vex2, opcode, modrm])
                kind = lib.amx_fast_decode(code, out, out + 1, out + 2)
                if kind < 0:
                    continue
                accepted += 1
                decoded = encoding.decode(code + bytes(10), 0x401000)
                assert decoded is not None and decoded.length == 5, code.hex()
                assert KINDS[decoded.mnemonic] == kind, code.hex()
                assert [operand.number for operand in decoded.operands] == list(out), code.hex()
    # tdpb*d: 4 pp x 8 vvvv x 64 ModRM; tdpbf16ps: 8 x 64.
    assert accepted == 4 * 8 * 64 + 8 * 64
    for prefixed in (b"\x66\xc4\xe2\x6b\x5e\xc1", b"\xc4\xe2\xeb\x5e\xc1", b"\xc4\xe2\x6f\x5e\xc1",
                     b"\xc4\x62\x6b\x5e\xc1", b"\xc4\xe2\x2b\x5e\xc1", b"\xc4\xe2\x6b\x5e\x01"):
        assert lib.amx_fast_decode(prefixed, out, out + 1, out + 2) == -1, prefixed.hex()


def test_gnu_as_encodings_decode_to_their_tiles():
    """Bytes from GNU as 2.40 (objdump -d): tdpbssd %tmm2,%tmm1,%tmm0 and friends."""
    out = ffi.new("int[3]")
    for code, kind, tiles in ((b"\xc4\xe2\x6b\x5e\xc1", "tdpbssd", [0, 1, 2]),
                              (b"\xc4\xe2\x6a\x5e\xc1", "tdpbsud", [0, 1, 2]),
                              (b"\xc4\xe2\x69\x5e\xc1", "tdpbusd", [0, 1, 2]),
                              (b"\xc4\xe2\x68\x5e\xc1", "tdpbuud", [0, 1, 2]),
                              (b"\xc4\xe2\x6a\x5c\xc1", "tdpbf16ps", [0, 1, 2]),
                              (b"\xc4\xe2\x43\x5e\xee", "tdpbssd", [5, 6, 7]),
                              (b"\xc4\xe2\x7b\x5e\xdf", "tdpbssd", [3, 7, 0])):
        assert lib.amx_fast_decode(code, out, out + 1, out + 2) == KINDS[kind]
        assert list(out) == tiles


# ---- whole guests, fast path on and off --------------------------------------

def looped_tdpbssd(count: int) -> str:
    source = (AMX_DIR / "tdpbssd.S").read_text()
    looped = source.replace("        tdpbssd %tmm2, %tmm1, %tmm0\n",
                            f"        mov     ${count}, %r12d\n2:      tdpbssd %tmm2, %tmm1, %tmm0\n"
                            "        dec     %r12d\n        jnz     2b\n")
    assert looped != source
    return looped


def run_on_and_off(tmp_path, *args: str, stdin: bytes = b""):
    runs = []
    for switch in ("1", "0"):
        stats_path = tmp_path / f"stats-{switch}.json"
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "EMU_AMX_FAST_PATH": switch}
        result = emu("run", "--stats", str(stats_path), *args, stdin=stdin, env=env)
        runs.append((result, json.loads(stats_path.read_text())))
    (fast, fast_stats), (slow, slow_stats) = runs
    assert fast.returncode == slow.returncode
    assert fast.stdout == slow.stdout
    assert fast.stderr == slow.stderr
    assert fast_stats == slow_stats
    return fast, fast_stats


def test_looped_tdpbssd_guest_is_identical_with_the_fast_path_on_and_off(tmp_path):
    source = tmp_path / "loop.S"
    source.write_text(looped_tdpbssd(300))
    result, stats = run_on_and_off(tmp_path, str(source))
    assert result.returncode == 0 and len(result.stdout) == 1024


TILE_DOT_FLAGS = ["-static", "-O2", "-mamx-tile", "-mamx-int8", "-mamx-bf16", "-mxsave"]


@pytest.mark.parametrize("op", range(5))
def test_tile_dot_guest_is_identical_with_the_fast_path_on_and_off(tmp_path, op):
    binary = build((AMX_DIR / "tile_dot.c").read_text(), ".c", TILE_DOT_FLAGS)
    rng = np.random.default_rng(op)
    if op == 4:
        stdin = (rng.normal(size=256).astype(np.float32).tobytes()
                 + (rng.normal(size=1024).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes())
    else:
        stdin = rng.integers(0, 256, size=3072, dtype=np.uint16).astype(np.uint8).tobytes()
    result, _ = run_on_and_off(tmp_path, str(binary), str(op), stdin=stdin)
    assert result.returncode == 0 and len(result.stdout) == 1024


def test_threads_with_live_tiles_are_identical_with_the_fast_path_on_and_off(tmp_path):
    binary = build((AMX_DIR / "threads_tiles.c").read_text(), ".c",
                   ["-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8"])
    result, stats = run_on_and_off(tmp_path, "--cpus", "2", str(binary))
    assert result.stdout == b"tiles ok: 4 of 4 threads\n"


FIRST_USE_IS_TDPBSSD = r"""
/* With permission, the first tile instruction is a TDPBSSD: XFD is armed, so it
 * raises #NM (the kernel allocates and disarms); restarted, the tiles are not
 * configured: #UD, SIGILL. */
        .text
        .globl _start
_start:
        mov     $158, %eax              /* arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) */
        mov     $0x1023, %edi
        mov     $18, %esi
        syscall
        tdpbssd %tmm2, %tmm1, %tmm0
        mov     $231, %eax
        xor     %edi, %edi
        syscall
"""


def test_nm_with_xfd_armed_then_ud_unconfigured_stay_architected(tmp_path):
    source = tmp_path / "first.S"
    source.write_text(FIRST_USE_IS_TDPBSSD)
    result, stats = run_on_and_off(tmp_path, str(source))
    assert result.returncode == 128 + 4, result.stderr      # SIGILL
    assert stats["nm_faults"] == 1 and stats["xstate_allocs"] == 1


def run_in_process(path: str, fast_path: bool):
    from emu_x86.emu.machine import Machine
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    machine = Machine(cpus=1, memory_bytes=64 << 20)
    kernel = Kernel(machine, KernelConfig(argv=[path], envp=[]))
    kernel.start(path)
    for vcpu in machine.vcpus:
        vcpu.amx_fast_path = fast_path
    machine.run()
    vcpu = machine.vcpus[0]
    return vcpu.amx_fast_path_executed, vcpu.cycles, vcpu.instructions, kernel.exit_status()


def test_the_fast_path_retires_every_iteration_and_charges_like_python(tmp_path, capfd):
    source = tmp_path / "loop.S"
    source.write_text(looped_tdpbssd(50))
    on = run_in_process(str(source), True)
    off = run_in_process(str(source), False)
    assert on[0] == 50 and off[0] == 0
    assert on[1:] == off[1:]


def test_tracing_keeps_the_python_path(tmp_path, capfd):
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.trace import Tracer
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    source = tmp_path / "loop.S"
    source.write_text(looped_tdpbssd(3))
    machine = Machine(cpus=1, memory_bytes=64 << 20)
    kernel = Kernel(machine, KernelConfig(argv=[str(source)], envp=[]))
    kernel.start(str(source))
    tracer = Tracer(machine, sinks=[])
    tracer.install()
    machine.run()
    assert machine.vcpus[0].amx_fast_path_executed == 0
    assert kernel.exit_status() == 0
