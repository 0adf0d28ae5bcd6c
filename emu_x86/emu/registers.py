"""Batched register access: one libunicorn call for a whole register set.

Unicorn's Python binding spends ~5 us per ``reg_read``/``reg_write`` picking a
ctypes class for the register and building it; a task switch moves ~50
registers several times. ``RegisterBatch`` keeps, for one ordered set of
registers, the id array, a pointer array and one host buffer, and reads or
writes the whole set with ``uc_reg_read_batch``/``uc_reg_write_batch`` -- the
same per-register reader/writer inside libunicorn, in the same order, so the
effect is identical to the individual calls. The calls go through
emu_x86/emu/registers_fast.c (cffi), not ctypes, whose argument conversion cost more
than the access.

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

from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86
from emu_x86.emu.timing._hotpath import ffi, lib

_uclib = uclib.lib
MASK64 = (1 << 64) - 1
lib.regs_set_access(*(ctypes.cast(function, ctypes.c_void_p).value for function in (
    _uclib.uc_reg_read, _uclib.uc_reg_write, _uclib.uc_reg_read_batch, _uclib.uc_reg_write_batch,
    _uclib.uc_context_restore)))


def uc_handle(uc):
    """The ``uc_engine *`` of a binding ``Uc`` as a cffi pointer."""
    return ffi.cast("void *", uc._uch.value)


def context_handle(context):
    """The ``uc_context *`` of a binding ``UcContext`` as a cffi pointer (valid
    while ``context`` lives)."""
    return ffi.cast("void *", ctypes.cast(context.context, ctypes.c_void_p).value)

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


class RegisterSnapshot(dict):
    """A register set read in one call (``RegisterBatch.snapshot``) for a task
    switch: the leading scalar registers the kernel reads and edits while the
    task is off its CPU (GPRs, RIP, RFLAGS, FS/GS base -- Linux's pt_regs and
    thread.fsbase/gsbase) as items, and ``raw``, the batch buffer's bytes of the
    whole set as read -- x87/SSE included, which nothing edits between a
    switch-out and the next switch-in (they travel in the fpstate), so they
    never become Python objects. ``RegisterBatch.restore_snapshot`` writes the
    items over ``raw`` and the set back."""
    __slots__ = ("raw",)


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
        self._uch = uc_handle(uc)
        self._c_buffer = ffi.new("uint8_t[]", max(self._size, 1))
        self._buffer = ffi.buffer(self._c_buffer)
        self._ids = ffi.new("int[]", list(reg_ids) or [0])
        self._pointers = ffi.new("void *[]", [self._c_buffer + slot_offsets[name] for name in self.names] or 1)
        self._struct = struct.Struct("<" + "Q" * len(self._scalars) + "QQ" * len(self._xmms)
                                     + "QH6x" * len(self._fprs))
        self._grouped = self.names == self._scalars + self._xmms + self._fprs   # dicts come out in order
        self._xmm_start = len(self._scalars)
        self._fpr_start = self._xmm_start + 2 * len(self._xmms)
        self._snapshot_plans: dict[int, tuple] = {}

    def _read_into_buffer(self) -> None:
        """The set's registers into the slot buffer, in one C call."""
        status = lib.regs_read(self._uch, self._ids, self._pointers, self._count, self._c_buffer, self._size)
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status)

    def read(self) -> dict:
        self._read_into_buffer()
        return self._values_from(self._struct.unpack_from(self._buffer))

    def _values_from(self, raw: tuple) -> dict:
        """The set's values, in its order, from the unpacked slots ``raw``."""
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

    def read_values(self) -> tuple:
        """The set's values in its order, for a set of scalars only (the syscall arguments)."""
        assert not self._xmms and not self._fprs
        self._read_into_buffer()
        return self._struct.unpack_from(self._buffer)

    def snapshot(self, items: int) -> RegisterSnapshot:
        """Read the set; its first ``items`` registers (scalars) as the snapshot's items."""
        self._read_into_buffer()
        plan = self._snapshot_plans.get(items) or self._snapshot_plan(items)
        snapshot = RegisterSnapshot(zip(plan[0], plan[1].unpack_from(self._buffer)))
        snapshot.raw = self._buffer[:]
        return snapshot

    def restore_snapshot(self, snapshot: RegisterSnapshot, restore_context, count: int | None = None) -> None:
        """uc_context_restore ``restore_context`` (a ``context_handle``), then write the set's first
        ``count`` registers (all by default) from ``snapshot``: its items over
        its raw bytes, in the set's order -- what ``write`` of the whole
        snapshot read back as a dict would write, in one C call."""
        items = len(snapshot)
        names, items_struct, getter = self._snapshot_plans.get(items) or self._snapshot_plan(items)
        buffer = self._buffer
        if count is None or count > items:
            buffer[:] = snapshot.raw        # the items' slots come first: only they are written otherwise
        try:
            items_struct.pack_into(buffer, 0, *getter(snapshot))
        except (struct.error, TypeError):
            items_struct.pack_into(buffer, 0, *(index(snapshot[name]) & MASK64 for name in names))
        status = lib.regs_restore_and_write(self._uch, restore_context, self._ids, self._pointers,
                                            self._count if count is None else count)
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status)

    def values_of(self, snapshot: RegisterSnapshot) -> dict:
        """The whole set as ``read`` returns it, from ``snapshot`` (its raw
        bytes, with its items over them)."""
        values = self._values_from(self._struct.unpack_from(snapshot.raw))
        values.update(snapshot)
        return values

    def _snapshot_plan(self, items: int) -> tuple:
        """(names, struct, getter) of the set's first ``items`` registers, which must be scalars."""
        plan = self._snapshot_plans.get(items)
        if plan is None:
            names = self.names[:items]
            if names != self._scalars[:items]:
                raise ValueError("a snapshot's items must be the set's leading scalar registers")
            plan = self._snapshot_plans[items] = (names, struct.Struct("<" + "Q" * items), _getter(names))
        return plan

    def write(self, values: dict, restore_context=None) -> None:
        """Write ``values[name]`` for every name of the set, in the set's order;
        with ``restore_context`` (a ``context_handle``), uc_context_restore it
        first, in the same C call."""
        self._pack(values)
        if restore_context is None:
            status = lib.regs_write(self._uch, self._ids, self._pointers, self._count)
        else:
            status = lib.regs_restore_and_write(self._uch, restore_context, self._ids, self._pointers, self._count)
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status)

    def _pack(self, values: dict) -> None:
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
        self._uch = uc_handle(uc)
        self._ids = register_ids
        self._batches: dict[tuple, RegisterBatch] = {}
        self._slot = ffi.new("uint64_t *")
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
        status = lib.regs_read_scalar(self._uch, reg_id, self._slot)
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status, reg_id)
        return self._slot[0]

    def write(self, name: str, value) -> None:
        reg_id = self._scalar.get(name)
        if reg_id is None:
            self.batch((name,)).write({name: value})
            return
        status = lib.regs_write_scalar(self._uch, reg_id, index(value) & MASK64)
        if status != uclib.UC_ERR_OK:
            raise uclib.UcError(status, reg_id)

    def read_many(self, names: tuple) -> dict:
        return self.batch(names).read()

    def write_many(self, values: dict) -> None:
        self.batch(tuple(values)).write(values)
