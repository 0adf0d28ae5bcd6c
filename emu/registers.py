"""Batched register access: one libunicorn call for a whole register set.

Unicorn's Python binding spends ~5 us per ``reg_read``/``reg_write`` picking a
ctypes class for the register and building it; a task switch moves ~50
registers several times. ``RegisterBatch`` keeps, for one ordered set of
registers, the id array, a pointer array and one host buffer, and reads or
writes the whole set with ``uc_reg_read_batch``/``uc_reg_write_batch`` -- the
same per-register reader/writer inside libunicorn, in the same order, so the
effect is identical to the individual calls.

Value formats are the binding's: registers up to 64 bits are ints (read into a
zeroed 8-byte slot, as the binding's ``c_uint64``; written truncated to 64
bits, as ``c_uint64(value)``), XMM registers 128-bit ints, FP0-FP7
``(mantissa, sign|exponent)`` tuples.
"""
from __future__ import annotations

import ctypes
import struct
from itertools import chain
from operator import index, itemgetter

import unicorn
import unicorn.x86_const as x86
from unicorn.unicorn_py3 import unicorn as uc_module

_uclib = uc_module.uclib
MASK64 = (1 << 64) - 1

SCALAR, XMM, FPR = 0, 1, 2
_SLOT_FORMAT = {SCALAR: "Q", XMM: "QQ", FPR: "QH6x"}
_SLOT_BYTES = {SCALAR: 8, XMM: 16, FPR: 16}


def register_kind(reg_id: int) -> int:
    if x86.UC_X86_REG_XMM0 <= reg_id <= x86.UC_X86_REG_XMM31:
        return XMM
    if x86.UC_X86_REG_FP0 <= reg_id <= x86.UC_X86_REG_FP7:
        return FPR
    if reg_id == x86.UC_X86_REG_MSR or x86.UC_X86_REG_YMM0 <= reg_id <= x86.UC_X86_REG_ZMM31:
        raise ValueError(f"register {reg_id} is not supported by RegisterBatch")
    return SCALAR


def _getter(names):
    """itemgetter that always returns a tuple (itemgetter of one name returns the bare value)."""
    if not names:
        return lambda values: ()
    if len(names) == 1:
        name = names[0]
        return lambda values: (values[name],)
    return itemgetter(*names)


class RegisterBatch:
    """An ordered register set of one Unicorn instance (``uc``), named by
    ``names`` with libunicorn ids ``reg_ids``.

    libunicorn reads and writes the registers in the set's order; the host
    buffer groups their slots by kind (scalars, then XMM, then FP) so the
    values pack and unpack with one struct call and C-level loops."""

    def __init__(self, uc, names, reg_ids):
        self._uc = uc
        self.names = tuple(names)
        kinds = [register_kind(reg_id) for reg_id in reg_ids]
        self._plan = tuple(zip(self.names, kinds))
        count = len(self.names)
        self._count = count
        by_kind = {kind: tuple(name for name, k in self._plan if k == kind) for kind in (SCALAR, XMM, FPR)}
        self._scalars, self._xmms, self._fprs = by_kind[SCALAR], by_kind[XMM], by_kind[FPR]
        self._get_scalars, self._get_xmms, self._get_fprs = (
            _getter(self._scalars), _getter(self._xmms), _getter(self._fprs))
        slot_offsets, offset = {}, 0
        for kind in (SCALAR, XMM, FPR):
            for name in by_kind[kind]:
                slot_offsets[name] = offset
                offset += _SLOT_BYTES[kind]
        self._size = offset
        self._buffer = ctypes.create_string_buffer(max(self._size, 1))
        base = ctypes.addressof(self._buffer)
        self._ids = (ctypes.c_int * count)(*reg_ids)
        self._pointers = (ctypes.c_void_p * count)(*(base + slot_offsets[name] for name in self.names))
        self._struct = struct.Struct("<" + "Q" * len(self._scalars) + "QQ" * len(self._xmms)
                                     + "QH6x" * len(self._fprs))
        self._grouped = self.names == self._scalars + self._xmms + self._fprs   # dicts come out in order
        self._xmm_start = len(self._scalars)
        self._fpr_start = self._xmm_start + 2 * len(self._xmms)

    def read(self) -> dict:
        ctypes.memset(self._buffer, 0, self._size)
        status = _uclib.uc_reg_read_batch(self._uc._uch, self._ids, self._pointers, self._count)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status)
        raw = self._struct.unpack_from(self._buffer)
        if self._grouped:
            values = dict(zip(self._scalars, raw))
        else:
            values = dict.fromkeys(self.names)       # the set's order
            values.update(zip(self._scalars, raw))
        if self._xmms:
            x, f = self._xmm_start, self._fpr_start
            values.update(zip(self._xmms, [low | high << 64 for low, high in zip(raw[x:f:2], raw[x + 1:f:2])]))
        if self._fprs:
            f = self._fpr_start
            values.update(zip(self._fprs, zip(raw[f::2], raw[f + 1::2])))
        return values

    def write(self, values: dict) -> None:
        """Write ``values[name]`` for every name of the set, in the set's order."""
        flat = list(self._get_scalars(values))
        for xmm in self._get_xmms(values):
            flat += (xmm & MASK64, xmm >> 64)
        flat.extend(chain.from_iterable(self._get_fprs(values)))
        try:
            self._struct.pack_into(self._buffer, 0, *flat)
        except (struct.error, TypeError):
            # Out of range for the slot (negative, too wide) or not an int:
            # truncate like the binding's ctypes conversion, or raise as it would.
            self._struct.pack_into(self._buffer, 0, *self._truncated(values))
        status = _uclib.uc_reg_write_batch(self._uc._uch, self._ids, self._pointers, self._count)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status)

    def _truncated(self, values: dict) -> list:
        flat = [index(values[name]) & MASK64 for name in self._scalars]
        for name in self._xmms:
            value = index(values[name])
            flat += (value & MASK64, value >> 64 & MASK64)
        for name in self._fprs:
            mantissa, exponent = values[name]
            flat += (index(mantissa) & MASK64, index(exponent) & 0xFFFF)
        return flat


class RegisterFile:
    """Named register access for one Unicorn instance: single registers through
    a preallocated slot, any set of names through a cached ``RegisterBatch``."""

    def __init__(self, uc, register_ids: dict):
        self._uc = uc
        self._ids = register_ids
        self._batches: dict[tuple, RegisterBatch] = {}
        self._slot = ctypes.c_uint64()
        self._slot_address = ctypes.addressof(self._slot)
        self._scalar = {name: reg_id for name, reg_id in register_ids.items() if register_kind(reg_id) == SCALAR}

    def batch(self, names: tuple) -> RegisterBatch:
        batch = self._batches.get(names)
        if batch is None:
            batch = self._batches[names] = RegisterBatch(self._uc, names, [self._ids[name] for name in names])
        return batch

    def read(self, name: str):
        reg_id = self._scalar.get(name)
        if reg_id is None:
            return self.batch((name,)).read()[name]
        self._slot.value = 0
        status = _uclib.uc_reg_read(self._uc._uch, reg_id, self._slot_address)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status, reg_id)
        return self._slot.value

    def write(self, name: str, value) -> None:
        reg_id = self._scalar.get(name)
        if reg_id is None:
            self.batch((name,)).write({name: value})
            return
        self._slot.value = index(value) & MASK64
        status = _uclib.uc_reg_write(self._uc._uch, reg_id, self._slot_address)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status, reg_id)

    def read_many(self, names: tuple) -> dict:
        return self.batch(names).read()

    def write_many(self, values: dict) -> None:
        self.batch(tuple(values)).write(values)
