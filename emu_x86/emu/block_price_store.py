"""Decoded block prices kept on disk between runs: the start-up of every
static glibc program executes the same ~1,000 blocks of libc, and decoding
and pricing them (capstone in detail mode, Profile.classify, the schedule)
was more than half of a hello's CPU time.

A block's decode (Machine._decode_block: retired instructions, price,
bytes covered, port I/O offset) is a pure function of its bytes, the
profile's price key and the code that decodes and prices it. The store's
file name is a SHA-256 of all three's inputs: the price key's repr, the
capstone version, and the source bytes of the modules in PRICING_SOURCES.
Any edit to them, or another profile, gives another file; so a value read
back is the value a decode would give, and a run's output, statistics and
trace are the same with or without the store (tests/test_block_price_store.py).

Where: $EMU_BLOCK_CACHE (a directory; "off" or "0" disables the store), else
$XDG_CACHE_HOME/emu-x86/block-prices, else ~/.cache/emu-x86/block-prices.
Written once at exit when the run decoded new blocks: the file is read
again, merged, written to a temporary name and renamed, so concurrent runs
never see half a file (one run's additions may be lost to another's rename:
they are decoded again later). A file that does not load is ignored whole;
one found holding a value of the wrong shape when a value is used is ignored
from then on (values already used had the right shape).
"""
from __future__ import annotations

import atexit
import hashlib
import marshal
import os
import tempfile
from pathlib import Path

PRICING_SOURCES = ("machine.py", "timing/profile.py", "timing/schedule.py", "isa/dispatch.py", "isa/encoding.py",
                   "block_price_store.py")
MAX_ENTRIES = 1 << 16             # per file; past it new blocks are decoded but not stored
FORMAT = 1

_stores: dict[tuple, "BlockPriceStore | None"] = {}


def store_directory() -> Path | None:
    setting = os.environ.get("EMU_BLOCK_CACHE")
    if setting is not None:
        return None if setting.lower() in ("", "0", "off") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "emu-x86" / "block-prices"


def valid(value) -> bool:
    """(count, (entry, repeat, flags), covered, port_io_offset or None), all ints."""
    return (type(value) is tuple and len(value) == 4 and type(value[0]) is int and type(value[2]) is int
            and (value[3] is None or type(value[3]) is int) and type(value[1]) is tuple and len(value[1]) == 3
            and all(type(part) is int for part in value[1]))


class BlockPriceStore:
    """code bytes -> decode of one price key, loaded from and saved to one file."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[bytes, tuple] = self._read()
        self.added: dict[bytes, tuple] = {}

    def _read(self) -> dict[bytes, tuple]:
        try:
            with open(self.path, "rb") as handle:
                data = marshal.load(handle)
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        # Each value's shape is checked when it is used (get): a store holds
        # every block of every program run before, tens of thousands, and a
        # start-up uses about a thousand of them; checking them all here cost
        # more than decoding those (measured: 60 ms of a hello's 0.3 s).
        if type(data) is not dict:
            return {}
        return data

    def get(self, code: bytes):
        value = self.entries.get(code)
        if value is None:
            return None
        if type(code) is not bytes or not valid(value):
            # A damaged or foreign file: ignore it whole, as if absent.
            self.entries = {}
            return None
        return value

    def put(self, code: bytes, decoded: tuple) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            return
        if not self.added:
            atexit.register(self.save)
        self.entries[code] = self.added[code] = decoded

    def save(self) -> None:
        if not self.added:
            return
        merged = {code: value for code, value in self._read().items() if type(code) is bytes and valid(value)}
        merged.update(self.added)
        self.added = {}
        if len(merged) > MAX_ENTRIES:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    marshal.dump(merged, handle)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass            # a read-only or full disk: the store is only a cache


def store_for(price_key: tuple, capstone_version: str) -> BlockPriceStore | None:
    """The store of one price key (None when disabled), opened once per process."""
    key = (price_key, capstone_version)
    if key in _stores:
        return _stores[key]
    directory = store_directory()
    store = None
    if directory is not None:
        digest = hashlib.sha256(repr((FORMAT, price_key, capstone_version)).encode())
        here = Path(__file__).parent
        for name in PRICING_SOURCES:
            digest.update((here / name).read_bytes())
        store = BlockPriceStore(directory / f"{digest.hexdigest()[:32]}.marshal")
    _stores[key] = store
    return store
