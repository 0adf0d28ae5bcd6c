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
from operator import index

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


class RegisterBatch:
    """An ordered register set of one Unicorn instance (``uc``), named by
    ``names`` with libunicorn ids ``reg_ids``."""

    def __init__(self, uc, names, reg_ids):
        self._uc = uc
        self.names = tuple(names)
        kinds = [register_kind(reg_id) for reg_id in reg_ids]
        self._plan = tuple(zip(self.names, kinds))
        count = len(self.names)
        self._count = count
        self._size = sum(_SLOT_BYTES[kind] for kind in kinds)
        self._buffer = ctypes.create_string_buffer(self._size)
        base = ctypes.addressof(self._buffer)
        offsets, offset = [], 0
        for kind in kinds:
            offsets.append(offset)
            offset += _SLOT_BYTES[kind]
        self._ids = (ctypes.c_int * count)(*reg_ids)
        self._pointers = (ctypes.c_void_p * count)(*(base + offset for offset in offsets))
        self._struct = struct.Struct("<" + "".join(_SLOT_FORMAT[kind] for kind in kinds))
        self._all_scalar = all(kind == SCALAR for kind in kinds)

    def read(self) -> dict:
        ctypes.memset(self._buffer, 0, self._size)
        status = _uclib.uc_reg_read_batch(self._uc._uch, self._ids, self._pointers, self._count)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status)
        raw = self._struct.unpack_from(self._buffer)
        if self._all_scalar:
            return dict(zip(self.names, raw))
        values = {}
        index = 0
        for name, kind in self._plan:
            if kind == SCALAR:
                values[name] = raw[index]
                index += 1
            elif kind == XMM:
                values[name] = raw[index] | raw[index + 1] << 64
                index += 2
            else:
                values[name] = (raw[index], raw[index + 1])
                index += 2
        return values

    def write(self, values: dict) -> None:
        """Write ``values[name]`` for every name of the set, in the set's order."""
        flat = []
        append = flat.append
        for name, kind in self._plan:
            value = values[name]
            if kind == SCALAR:
                append(index(value) & MASK64)
            elif kind == XMM:
                value = index(value)
                append(value & MASK64)
                append(value >> 64 & MASK64)
            else:
                mantissa, exponent = value
                append(index(mantissa) & MASK64)
                append(index(exponent) & 0xFFFF)
        self._struct.pack_into(self._buffer, 0, *flat)
        status = _uclib.uc_reg_write_batch(self._uc._uch, self._ids, self._pointers, self._count)
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status)


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
