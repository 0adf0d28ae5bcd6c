"""Architectural state the emulator owns for each vCPU because Unicorn knows none of it.

Unicorn holds the general registers, x87 and SSE. Everything XSAVE-managed
beyond that -- XCR0, IA32_XSS, IA32_XFD/XFD_ERR, the AMX tile configuration
and tile data, the supervisor PASID component, and the bookkeeping behind
the XSAVE init and modified optimizations -- lives here, one instance per
vCPU (``VCpu.xstate``), written only by the handlers in emu_x86/emu/isa/.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# XSTATE component numbers (SDM Vol. 1 §13.1).
XFEATURE_X87 = 0
XFEATURE_SSE = 1
XFEATURE_PASID = 10        # supervisor: IA32_PASID
XFEATURE_XTILECFG = 17
XFEATURE_XTILEDATA = 18

XFEATURE_MASK_X87 = 1 << XFEATURE_X87
XFEATURE_MASK_SSE = 1 << XFEATURE_SSE
XFEATURE_MASK_PASID = 1 << XFEATURE_PASID
XFEATURE_MASK_XTILECFG = 1 << XFEATURE_XTILECFG
XFEATURE_MASK_XTILEDATA = 1 << XFEATURE_XTILEDATA
XFEATURE_MASK_XTILE = XFEATURE_MASK_XTILECFG | XFEATURE_MASK_XTILEDATA

# AMX palette 1 (SDM Vol. 1 §3.?; CPUID leaf 0x1D): 8 tiles of 16 rows x 64 bytes.
TILE_COUNT = 8
TILE_MAX_ROWS = 16
TILE_MAX_ROW_BYTES = 64
TILECFG_BYTES = 64
# struct amx_xstate.tiles_in_use: XINUSE[17] and XINUSE[18] as bits 0 and 1.
TILES_IN_USE_BOTH = 3

# MSR numbers (SDM Vol. 4).
MSR_IA32_TSC = 0x10
MSR_IA32_XSS = 0xDA0
MSR_IA32_XFD = 0x1C4
MSR_IA32_XFD_ERR = 0x1C5
MSR_IA32_PASID = 0xD93
MSR_IA32_TSC_AUX = 0xC0000103
MSR_IA32_EFER = 0xC0000080
MSR_IA32_FS_BASE = 0xC0000100
MSR_IA32_GS_BASE = 0xC0000101
MSR_IA32_KERNEL_GS_BASE = 0xC0000102


class ExtendedState:
    """Per-vCPU XSAVE-managed state beyond x87/SSE. Owners: XCR0 (XSETBV and
    the kernel through the machine API), XSS/XFD/XFD_ERR/PASID (MSR writes),
    tiles (AMX instructions and XRSTOR*), the optimization fields (XRSTOR* and
    XSAVE*).

    XCR0, XFD, TILECFG, the tiles, ``tiles_in_use`` and
    ``modified_since_restore`` live in a C ``struct amx_xstate``
    (emu_x86/emu/isa/amx_fast.h), which the C fast path of the tile dot products
    reads and updates in place: the attributes below are views of it
    (``tilecfg`` a writable memoryview, ``tiles`` a numpy array over the same
    bytes; assigning either copies into the struct, so the buffer never moves).
    """

    def __init__(self, xcr0: int = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE, xss: int = 0, xfd: int = 0,
                 xfd_err: int = 0, pasid: int = 0):
        from emu_x86.emu.timing._hotpath import ffi
        self.c_state = ffi.new("struct amx_xstate *")
        self._tilecfg = memoryview(ffi.buffer(self.c_state.tilecfg)).cast("B")
        self._tile_buffer = ffi.buffer(self.c_state.tiles)
        self._tiles = None       # the numpy view, made on first use (see ``tiles``)
        self.xcr0 = xcr0
        self.xss = xss
        self.xfd = xfd
        self.xfd_err = xfd_err
        self.pasid = pasid
        # The modified optimization (SDM Vol. 1 §13.6): what the last XRSTOR(S)
        # loaded, from where, and which components were written since
        # (``modified_since_restore``, in the C struct).
        self.last_restore_linear_address: int | None = None
        self.last_restore_was_xrstors = False
        self.unmodified_components_skipped = 0   # statistics: components the modified optimization skipped

    xcr0 = property(lambda self: self.c_state.xcr0, lambda self, value: setattr(self.c_state, "xcr0", value))
    xfd = property(lambda self: self.c_state.xfd, lambda self, value: setattr(self.c_state, "xfd", value))
    # Components written since the last XRSTOR(S) (XSAVEOPT/XSAVES skip the others).
    modified_since_restore = property(
        lambda self: self.c_state.modified_since_restore,
        lambda self, value: setattr(self.c_state, "modified_since_restore", value))

    @property
    def tiles_in_use(self) -> bool:
        """Either AMX component in use (XINUSE[17] or XINUSE[18]). Setting it
        sets or clears both: every tile instruction uses both, TILERELEASE and
        an init restore of both clear both."""
        return bool(self.c_state.tiles_in_use)

    @tiles_in_use.setter
    def tiles_in_use(self, value: bool) -> None:
        self.c_state.tiles_in_use = TILES_IN_USE_BOTH if value else 0

    @property
    def tile_xinuse(self) -> int:
        """XINUSE[18:17] as an XFEATURE mask: XTILECFG and XTILEDATA are tracked
        apart (SDM Vol. 1 §13.6), so an XRSTOR of tile data alone leaves
        XTILECFG in its init state and XTILEDATA in use."""
        return (self.c_state.tiles_in_use & TILES_IN_USE_BOTH) << XFEATURE_XTILECFG

    @tile_xinuse.setter
    def tile_xinuse(self, mask: int) -> None:
        self.c_state.tiles_in_use = (mask & XFEATURE_MASK_XTILE) >> XFEATURE_XTILECFG

    @property
    def tilecfg(self) -> memoryview:
        return self._tilecfg

    @tilecfg.setter
    def tilecfg(self, value) -> None:
        self._tilecfg[:] = bytes(value)

    @property
    def tiles(self) -> np.ndarray:
        """The tile data as a (tile, row, byte) numpy view of the C struct.
        Made on first use: numpy costs a sixth of a short run's start-up, and
        a program that never runs a tile instruction in Python never needs it."""
        if self._tiles is None:
            import numpy as np
            self._tiles = np.frombuffer(self._tile_buffer, dtype=np.uint8).reshape(
                TILE_COUNT, TILE_MAX_ROWS, TILE_MAX_ROW_BYTES)
        return self._tiles

    @tiles.setter
    def tiles(self, value) -> None:
        self.tiles[...] = value

    def tile_bytes(self) -> bytes:
        """The XTILEDATA component (8 tiles x 16 rows x 64 bytes), without numpy."""
        return self._tile_buffer[:]

    def load_tile_bytes(self, data: bytes | None) -> None:
        """Set all tile data from XTILEDATA bytes, or to zero for ``None``."""
        self._tile_buffer[:] = bytes(len(self._tile_buffer)) if data is None else data

    @property
    def palette(self) -> int:
        return self.tilecfg[0]

    def tiles_configured(self) -> bool:
        return self.palette != 0

    def tile_rows(self, tile: int) -> int:
        return self.tilecfg[48 + tile]

    def tile_row_bytes(self, tile: int) -> int:
        return int.from_bytes(self.tilecfg[16 + 2 * tile:18 + 2 * tile], "little")

    def release_tiles(self) -> None:
        """TILERELEASE / init: palette 0, all tile data zero, XINUSE[18:17] clear."""
        self.tilecfg[:] = bytes(TILECFG_BYTES)
        self.load_tile_bytes(None)
        self.tiles_in_use = False
