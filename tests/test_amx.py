"""AMX on the machine: tile dot products against independent numpy references,
the permission rule (SIGILL without ARCH_REQ_XCOMP_PERM), XINUSE via XGETBV(1),
and gcc's _tile_* intrinsics."""
import numpy as np
import pytest

from tests.guestbuild import REPO, build, emu

AMX_DIR = REPO / "guest" / "tests" / "amx"
FLAGS = ["-static", "-O2", "-mamx-tile", "-mamx-int8", "-mamx-bf16", "-mxsave"]
OPS = {"tdpbssd": (0, np.int8, np.int8), "tdpbsud": (1, np.int8, np.uint8),
       "tdpbusd": (2, np.uint8, np.int8), "tdpbuud": (3, np.uint8, np.uint8)}


def tile_dot_binary():
    return build((AMX_DIR / "tile_dot.c").read_text(), ".c", FLAGS)


def int_reference(c, a, b, a_type, b_type):
    """C[m][n] += sum over k, j of A[m][4k+j] * B[k][4n+j], modulo 2^32 (VNNI layout)."""
    a = a.view(a_type).astype(np.int64).reshape(16, 16, 4)      # m, k, j
    b = b.view(b_type).astype(np.int64).reshape(16, 16, 4)      # k, n, j
    out = c.view(np.int32).astype(np.int64).reshape(16, 16).copy()
    for k in range(16):
        for j in range(4):
            out += np.outer(a[:, k, j], b[k, :, j])
    return (out & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


@pytest.mark.parametrize("name", sorted(OPS))
def test_integer_dot_products_match_numpy(name):
    op, a_type, b_type = OPS[name]
    rng = np.random.default_rng(1234 + op)
    c = rng.integers(-2**31, 2**31, size=(16, 16), dtype=np.int64).astype(np.int32).view(np.uint8).reshape(-1)
    a = rng.integers(0, 256, size=1024, dtype=np.uint16).astype(np.uint8)
    b = rng.integers(0, 256, size=1024, dtype=np.uint16).astype(np.uint8)
    result = emu("run", str(tile_dot_binary()), str(op), stdin=c.tobytes() + a.tobytes() + b.tobytes())
    assert result.returncode == 0, result.stderr
    got = np.frombuffer(result.stdout, dtype=np.int32).reshape(16, 16)
    np.testing.assert_array_equal(got, int_reference(c, a, b, a_type, b_type))


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, rounding to nearest even."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def daz(x: np.float32) -> np.float32:
    return np.float32(0.0) * np.sign(x) if x != 0 and abs(x) < np.finfo(np.float32).tiny else x


def test_tdpbf16ps_matches_scalar_reference():
    rng = np.random.default_rng(99)
    c = rng.normal(size=(16, 16)).astype(np.float32)
    a = bf16_bits(rng.normal(size=(16, 32)))        # m, 2k+j
    b = bf16_bits(rng.normal(size=(16, 32)))        # k, 2n+j
    result = emu("run", str(tile_dot_binary()), "4",
                 stdin=c.tobytes() + a.tobytes() + b.tobytes())
    assert result.returncode == 0, result.stderr
    got = np.frombuffer(result.stdout, dtype=np.float32).reshape(16, 16)

    def f32(bits):
        return np.array([int(bits) << 16], dtype=np.uint32).view(np.float32)[0]
    # The SDM's Operation, one element at a time: for each k, add the two
    # products of the bf16 pair in order, each sum rounded to fp32.
    expected = np.empty((16, 16), dtype=np.float32)
    for m in range(16):
        for n in range(16):
            acc = c[m, n]
            for k in range(16):
                for j in range(2):
                    acc = daz(np.float32(acc + np.float32(f32(a[m, 2 * k + j]) * f32(b[k, 2 * n + j]))))
            expected[m, n] = acc
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_without_permission_first_tile_instruction_is_sigill():
    result = emu("run", str(tile_dot_binary()), "0", "noperm", stdin=bytes(3072))
    assert result.returncode == 132, result.stderr
    assert "SIGILL" in result.stderr_lines[0]


def test_xinuse_tracks_tile_use_and_release(tmp_path):
    binary = build((AMX_DIR / "xinuse.c").read_text(), ".c", FLAGS)
    stats = tmp_path / "s.json"
    result = emu("run", "--stats", str(stats), str(binary))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"xcr0 tiles=60000 before=0 during=60000 after=0\n"
    import json
    counters = json.loads(stats.read_text())
    assert counters["nm_faults"] == 1 and counters["xstate_allocs"] == 1


def test_amx_is_undefined_on_the_amd_profile():
    result = emu("run", "--profile", "zen4", str(tile_dot_binary()), "0", stdin=bytes(3072))
    # The permission request fails first: AMX is not supported there (-EOPNOTSUPP -> exit 3).
    assert result.returncode == 3


def lcg_bytes(count):
    """The generator in guest/tests/amx/tdpbssd.S: x = x*1103515245 + 12345 (32-bit), byte = x >> 16."""
    x, out = 1, bytearray()
    for _ in range(count):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((x >> 16) & 0xFF)
    return np.frombuffer(bytes(out), dtype=np.uint8)


def test_assembly_tdpbssd_guest_matches_numpy_and_gnu_as_build():
    from tests.guestbuild import build_asm
    source = AMX_DIR / "tdpbssd.S"
    data = lcg_bytes(2048)
    expected = int_reference(np.zeros(1024, dtype=np.uint8), data[:1024], data[1024:], np.int8, np.int8)
    assembled_by_emu = emu("run", str(source))
    assert assembled_by_emu.returncode == 0, assembled_by_emu.stderr
    np.testing.assert_array_equal(np.frombuffer(assembled_by_emu.stdout, dtype=np.int32).reshape(16, 16), expected)
    built_by_gnu = emu("run", str(build_asm(source.read_text())))
    assert built_by_gnu.stdout == assembled_by_emu.stdout
