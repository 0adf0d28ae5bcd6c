"""AMX: tile configuration, tile loads/stores and the tile dot products (SDM Vol. 2, AMX chapter).

State lives in ``vcpu.xstate`` (state.py): the 64-byte TILECFG and eight
16x64-byte tiles as a numpy array. Every handler opens with ``require_amx``
(the checks the SDM's AMX exception classes share: XCR0 must enable both
tile components, else #UD; XFD[18] armed raises #NM and sets XFD_ERR[18]),
then implements the instruction's Operation section. The dot products are
one numpy helper parameterised by element type, not four copies.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa.state import (
    TILE_COUNT, TILE_MAX_ROW_BYTES, TILE_MAX_ROWS, TILECFG_BYTES, XFEATURE_MASK_XTILE,
    XFEATURE_MASK_XTILEDATA, ExtendedState,
)
from emu_x86.emu.traps import GP, NM, UD

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from emu_x86.emu.vcpu import VCpu

MAX_PALETTE = 1


def require_amx(vcpu: "VCpu") -> ExtendedState:
    """Checks common to every AMX instruction: XCR0[18:17] = 11b, else #UD;
    IA32_XFD[18] armed: #NM with XFD_ERR[18] set (SDM Vol. 1 §13.14)."""
    xstate = vcpu.xstate
    if not vcpu.cpu_model.amx or xstate.xcr0 & XFEATURE_MASK_XTILE != XFEATURE_MASK_XTILE:
        raise UD(0)
    if xstate.xfd & XFEATURE_MASK_XTILEDATA:
        xstate.xfd_err = XFEATURE_MASK_XTILEDATA
        raise NM(0)
    return xstate


def require_configured(xstate: ExtendedState) -> None:
    if not xstate.tiles_configured():
        raise UD(0)


def _mark_in_use(xstate: ExtendedState) -> None:
    xstate.tiles_in_use = True
    xstate.modified_since_restore |= XFEATURE_MASK_XTILE


def validate_tilecfg(config: bytes) -> None:
    """LDTILECFG's #GP checks for a non-zero palette (SDM: LDTILECFG, Operation)."""
    palette = config[0]
    if palette > MAX_PALETTE:
        raise GP(0)
    if any(config[2:16]):
        raise GP(0)
    for tile in range(16):
        colsb = int.from_bytes(config[16 + 2 * tile:18 + 2 * tile], "little")
        rows = config[48 + tile]
        if tile >= TILE_COUNT:
            if colsb or rows:
                raise GP(0)   # beyond palette 1's max_names
            continue
        if colsb > TILE_MAX_ROW_BYTES or rows > TILE_MAX_ROWS:
            raise GP(0)
        if (colsb == 0) != (rows == 0):
            raise GP(0)       # an unused tile has both fields zero
    if config[1] and config[1] >= max((config[48 + t] for t in range(TILE_COUNT)), default=0):
        raise GP(0)           # start_row beyond every configured tile


def ldtilecfg(vcpu: "VCpu", address: int) -> None:
    """LDTILECFG m512: palette 0 is the init state; otherwise validate, load
    TILECFG and zero all tile data."""
    xstate = require_amx(vcpu)
    config = vcpu.read_virtual(address, TILECFG_BYTES)
    if config[0] == 0:
        xstate.release_tiles()
        xstate.modified_since_restore |= XFEATURE_MASK_XTILE
        return
    validate_tilecfg(config)
    xstate.tilecfg[:] = config
    xstate.tiles[:] = 0
    _mark_in_use(xstate)


def sttilecfg(vcpu: "VCpu", address: int) -> None:
    """STTILECFG m512: 64 zero bytes when tiles are not configured."""
    xstate = require_amx(vcpu)
    data = bytes(xstate.tilecfg) if xstate.tiles_configured() else bytes(TILECFG_BYTES)
    vcpu.write_virtual(address, data)


def tilerelease(vcpu: "VCpu") -> None:
    """TILERELEASE: TILECFG and TILEDATA back to their init state (XINUSE[18:17] = 0)."""
    xstate = require_amx(vcpu)
    xstate.release_tiles()
    xstate.modified_since_restore |= XFEATURE_MASK_XTILE


def tilezero(vcpu: "VCpu", tile: int) -> None:
    xstate = require_amx(vcpu)
    require_configured(xstate)
    xstate.tiles[tile] = 0
    _mark_in_use(xstate)


def _tile_shape(xstate: ExtendedState, tile: int) -> tuple[int, int]:
    rows, colsb = xstate.tile_rows(tile), xstate.tile_row_bytes(tile)
    if rows == 0 or colsb == 0:
        raise UD(0)
    return rows, colsb


def _dword_rows_shape(xstate: ExtendedState, tile: int) -> tuple[int, int]:
    """TILELOADD/TILESTORED move rows of dwords: a tile whose colsb is not a
    multiple of 4 raises #UD (measured on a Xeon with AMX, 2026-12-02: the
    load and the store fault, TILEZERO of the same tile does not)."""
    rows, colsb = _tile_shape(xstate, tile)
    if colsb % 4:
        raise UD(0)
    return rows, colsb


def tileloadd(vcpu: "VCpu", tile: int, base_address: int, stride: int) -> None:
    """TILELOADD/TILELOADDT1 tmm, [base + stride*row]: rows from start_row on.

    A fault on row r leaves start_row = r, so the restarted instruction
    continues from that row (SDM: TILELOADD, Operation and restart semantics);
    on completion start_row = 0 and the bytes beyond rows/colsb are zero.
    """
    xstate = require_amx(vcpu)
    require_configured(xstate)
    rows, colsb = _dword_rows_shape(xstate, tile)
    start_row = xstate.tilecfg[1]
    for row in range(start_row, rows):
        xstate.tilecfg[1] = row
        data = vcpu.read_virtual((base_address + row * stride) & ((1 << 64) - 1), colsb)
        xstate.tiles[tile, row, :colsb] = memoryview(data)
        xstate.tiles[tile, row, colsb:] = 0
    xstate.tiles[tile, rows:, :] = 0
    xstate.tilecfg[1] = 0
    _mark_in_use(xstate)


def tilestored(vcpu: "VCpu", tile: int, base_address: int, stride: int) -> None:
    """TILESTORED [base + stride*row], tmm: rows from start_row on, restartable like TILELOADD."""
    xstate = require_amx(vcpu)
    require_configured(xstate)
    rows, colsb = _dword_rows_shape(xstate, tile)
    start_row = xstate.tilecfg[1]
    for row in range(start_row, rows):
        xstate.tilecfg[1] = row
        vcpu.write_virtual((base_address + row * stride) & ((1 << 64) - 1),
                           xstate.tiles[tile, row, :colsb].tobytes())
    xstate.tilecfg[1] = 0
    xstate.tiles_in_use = True


# Element views of the dot products: (dtype of src1 elements, dtype of src2
# elements, elements per 32-bit lane, accumulator dtype), as numpy dtype names
# (numpy is imported only when a dot product runs here rather than in C).
DOT_PRODUCT_KINDS = {
    "tdpbssd": ("int8", "int8", 4, "int32"),
    "tdpbsud": ("int8", "uint8", 4, "int32"),
    "tdpbusd": ("uint8", "int8", 4, "int32"),
    "tdpbuud": ("uint8", "uint8", 4, "int32"),
    "tdpbf16ps": ("bf16", "bf16", 2, "float32"),
}


def _bf16_to_fp32(raw: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 with denormals treated as zero (DAZ)."""
    import numpy as np
    bits = raw.astype(np.uint32) << 16
    exponent_zero = (bits & 0x7F800000) == 0
    bits = np.where(exponent_zero, bits & 0x80000000, bits)
    return bits.view(np.float32)


def _flush_denormals(values: np.ndarray) -> np.ndarray:
    import numpy as np
    bits = values.view(np.uint32)
    exponent_zero = (bits & 0x7F800000) == 0
    return np.where(exponent_zero, bits & 0x80000000, bits).astype(np.uint32).view(np.float32)


def tile_dot_product(vcpu: "VCpu", kind: str, dest: int, src1: int, src2: int) -> None:
    """TDPB[SU][SU]D and TDPBF16PS: dest[m][n] += sum_k src1[m][k-group] . src2[k][n-group].

    src2 is in the VNNI layout: each 32-bit element of row k holds the
    ``lanes`` consecutive K-values for column n. The shape checks are the
    SDM's #UD conditions (distinct tiles; K, M and N consistent).
    """
    import numpy as np
    xstate = require_amx(vcpu)
    require_configured(xstate)
    if len({dest, src1, src2}) != 3:
        raise UD(0)
    m_rows, dest_colsb = _tile_shape(xstate, dest)
    a_rows, a_colsb = _tile_shape(xstate, src1)
    b_rows, b_colsb = _tile_shape(xstate, src2)
    if (dest_colsb % 4 or a_colsb % 4 or a_rows != m_rows or b_colsb != dest_colsb
            or b_rows != a_colsb // 4):
        raise UD(0)
    a_type, b_type, lanes, _acc = DOT_PRODUCT_KINDS[kind]
    k_groups, n_columns = a_colsb // 4, dest_colsb // 4
    tiles = xstate.tiles
    if kind == "tdpbf16ps":
        a = _bf16_to_fp32(tiles[src1, :m_rows, :a_colsb].copy().view(np.uint16)).reshape(m_rows, k_groups, 2)
        b = _bf16_to_fp32(tiles[src2, :b_rows, :b_colsb].copy().view(np.uint16)).reshape(k_groups, n_columns, 2)
        acc = _flush_denormals(tiles[dest, :m_rows, :dest_colsb].copy().view(np.float32).reshape(m_rows, n_columns))
        # The SDM's Operation adds the two products of each 32-bit pair one
        # after the other, each sum rounded to fp32 (round to nearest even),
        # outputs flushed to zero: the same order here, vectorised over M x N.
        with np.errstate(all="ignore"):
            for k in range(k_groups):
                for j in range(2):
                    acc = _flush_denormals((acc + np.outer(a[:, k, j], b[k, :, j]).astype(np.float32))
                                           .astype(np.float32))
        result = acc.astype(np.float32).view(np.uint8).reshape(m_rows, dest_colsb)
    else:
        # a[m, 4k+j] * b[k, n, j], summed over k and j, accumulated modulo 2^32:
        # as one matrix product, A (M x 4K) @ B rearranged to (4K x N). In
        # float64 (BLAS) every partial sum is exact: |a*b| <= 2^16 and at most
        # 256 products, far below 2^53.
        a = tiles[src1, :m_rows, :a_colsb].view(a_type).astype(np.float64)
        b = (tiles[src2, :b_rows, :b_colsb].view(b_type).astype(np.float64)
             .reshape(k_groups, n_columns, lanes).transpose(0, 2, 1).reshape(k_groups * lanes, n_columns))
        products = (a @ b).astype(np.int64)
        acc = tiles[dest, :m_rows, :dest_colsb].view(np.int32).astype(np.int64)
        result = ((acc + products) & 0xFFFFFFFF).astype(np.uint32).view(np.uint8).reshape(m_rows, dest_colsb)
    # write_row_and_zero: rows and bytes beyond the destination's shape become zero.
    tiles[dest, :m_rows, :dest_colsb] = result
    tiles[dest, :m_rows, dest_colsb:] = 0
    tiles[dest, m_rows:, :] = 0
    _mark_in_use(xstate)
