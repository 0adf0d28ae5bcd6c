"""Decoded block prices kept on disk between runs: the start-up of every
static glibc program executes the same ~1,000 blocks of libc, and decoding
and pricing them (capstone in detail mode, Profile.classify, the schedule)
was more than half of a hello's CPU time.

A block's decode (Machine._decode_block: retired instructions, price,
bytes covered, port I/O offset) is a pure function of its bytes, the
profile's price key and the code that decodes and prices it. The store's
file name is a BLAKE2b digest of all three's inputs: the price key's repr,
the capstone version, and the source bytes of the modules in PRICING_SOURCES.
Any edit to them, or another profile, gives another file; so a value read
back is the value a decode would give, and a run's output, statistics and
trace are the same with or without the store (tests/test_block_price_store.py).

Where: $EMU_BLOCK_CACHE (a directory; "off" or "0" disables the store), else
$XDG_CACHE_HOME/emu-x86/block-prices, else ~/.cache/emu-x86/block-prices.

One SQLite database per file name, keyed by the block's bytes, read one
block at a time: a run pays for the ~1,000 blocks it uses, not for every
block every earlier program stored (the first design loaded one marshal
file whole; after a test suite's worth of programs, 65,536 entries and
4.5 MB, that load alone was 0.54 s of a hello's 0.9 s). New decodes are
written once, at exit, in one transaction (INSERT OR IGNORE: concurrent
runs add the same values). A database that cannot be read is ignored and
replaced at the next save; a value of the wrong shape is a miss. Creating a
new database removes the stores of other file names (older code or
profiles) not written for STALE_DAYS, so edits do not pile up files.

Start sets: beside each database, a directory named after it
(STORE_STEM.start-sets) keeps per program (`emu run`'s file, by path, size
and modification time) the blocks its last run priced, as one marshal file.
A run of the same program adopts them all into the decode caches before it
starts (Machine.use_start_set): one read and one unmarshal instead of
~1,000 lookups and calls into Python (8 ms of a glibc hello's ~95), and
without SQLite: a run whose blocks are all in its set never imports sqlite3
(with datetime, ~3% of a hello's start-up). A run that prices blocks its
set lacked writes the set again at exit, with them added (at most
START_SET_BLOCKS), however few: a block missing from the set sends every
later run to SQLite for it (a hello's boot set once lacked one: sqlite3
imported at every start, 8 M host instructions, against rewriting the
set once); the START_SET_PROGRAMS sets written last are kept.

Size. Every run reads inside one long transaction, so the write-ahead log
cannot restart while other runs read, and under a test suite's parallel runs
it grew to 355 MB (and every reader paid for it in system time). A save
therefore ends with a truncating checkpoint that gives up at once when a
reader is active (a later save succeeds), and a new store keeps only the
STORES_KEPT most recently written stores besides itself (older code or
profiles), whatever their age.
"""
from __future__ import annotations

import atexit
import marshal
import os
import time

try:
    # CPython's own BLAKE2b: the same digests as hashlib's, without loading
    # OpenSSL's libcrypto (~2 ms of every start-up). The store's name hashes
    # ~140 KB of source at every start, which BLAKE2b does in a third of
    # SHA-256's time here (0.17 ms against 0.47 ms).
    from _blake2 import blake2b
except ImportError:                        # pragma: no cover
    from hashlib import blake2b

PRICING_SOURCES = ("machine.py", "timing/profile.py", "timing/schedule.py", "isa/dispatch.py", "isa/encoding.py",
                   "block_price_store.py")
MAX_STORE_BYTES = 256 << 20       # past it new blocks are decoded but not stored
STALE_DAYS = 14
BUSY_TIMEOUT_SECONDS = 5.0
FORMAT = 3                        # 3: start sets
SUFFIX = ".sqlite"
START_SET_BLOCKS = 16384          # blocks kept per program
START_SET_PROGRAMS = 256          # sets kept per store, the last written
STORES_KEPT = 8                   # other stores a new one leaves in place
START_SETS_SUFFIX = ".start-sets"  # the directory of a store's start sets: STORE_STEM + this

_stores: dict[tuple, "BlockPriceStore | None"] = {}


# Paths here are strings (os.path), not pathlib: this module is on every
# run's start-up path, and pathlib (with urllib.parse and ipaddress, which it
# imports) was 3% of a glibc hello's instructions.
def store_directory() -> str | None:
    setting = os.environ.get("EMU_BLOCK_CACHE")
    if setting is not None:
        return None if setting.lower() in ("", "0", "off") else setting
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "emu-x86", "block-prices")


def kept_file(kind: str, name: str) -> str | None:
    """Where a cache kept beside the block price store (the parsed profiles,
    the dataclass code, the softmmu TLB probe's answers) keeps ``name``: in
    its own ``kind`` directory next to the store's; None when the store is
    off (EMU_BLOCK_CACHE=off), and so is every such cache."""
    directory = store_directory()
    return None if directory is None else os.path.join(os.path.dirname(os.path.abspath(directory)), kind, name)


def write_whole(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` whole or not at all, making its directory: a
    file of this process's, then a rename, so concurrent runs never read half
    a file. False when that fails (the cache is then simply not kept)."""
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
        return True
    except OSError:
        try:
            os.unlink(partial)
        except OSError:
            pass
        return False


def keep_newest(directory: str, keep: int, prefix: str = "", suffix: str = "") -> None:
    """Remove all but the ``keep`` most recently written files of a kept-file
    directory whose names start with ``prefix`` and end with ``suffix`` (never
    another process's partial ``.tmp``). Versions of a kept file coexist this
    way -- two checkouts' profile files, several libunicorn builds -- instead
    of each write deleting the others' and the next run of the other redoing
    it; and the directory stays bounded."""
    try:
        names = [name for name in os.listdir(directory)
                 if name.startswith(prefix) and name.endswith(suffix) and not name.endswith(".tmp")]
    except OSError:
        return
    if len(names) <= keep:
        return
    dated = []
    for name in names:
        try:
            dated.append((os.stat(os.path.join(directory, name)).st_mtime_ns, name))
        except OSError:
            continue
    dated.sort(reverse=True)
    for _, name in dated[keep:]:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def valid(value) -> bool:
    """(count, (entry, repeat, flags), covered, port_io_offset or None), all ints."""
    if type(value) is not tuple or len(value) != 4:
        return False
    count, price, covered, port_io_offset = value
    # Spelled out, not all() over a generator: a start set checks ~1,000 of these.
    return (type(count) is int and type(covered) is int and (port_io_offset is None or type(port_io_offset) is int)
            and type(price) is tuple and len(price) == 3
            and type(price[0]) is int and type(price[1]) is int and type(price[2]) is int)


class BlockPriceStore:
    """code bytes -> decode of one price key, in one SQLite database."""

    def __init__(self, path: str):
        self.path = path
        self.start_sets_directory = path[:-len(SUFFIX)] + START_SETS_SUFFIX
        self.added: dict[bytes, tuple] = {}
        self._reader = None          # opened at the first lookup, read-only
        self._unreadable = False
        # program -> its start set as read, and the blocks its run priced beyond it
        self._start_sets: dict[str, list] = {}
        self._start_set_additions: dict[str, dict[bytes, tuple]] = {}

    def _connect_reader(self):
        import sqlite3
        if not os.path.exists(self.path):
            return None
        try:
            reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                                     check_same_thread=False, isolation_level=None)
            # One read transaction for the whole run, over a memory map: a lookup
            # is then a B-tree walk without system calls (8 us instead of 26 us
            # measured here for a 60,000-block store). The database is in WAL
            # mode, so this reader never blocks another run's save.
            reader.execute(f"PRAGMA mmap_size={MAX_STORE_BYTES * 2}")
            reader.execute("BEGIN")
            reader.execute("SELECT 1 FROM blocks LIMIT 1").fetchall()
        except sqlite3.Error:
            self._unreadable = True
            return None
        return reader

    def get(self, code: bytes):
        if self._unreadable:
            return None
        if self._reader is None:
            self._reader = self._connect_reader()
            if self._reader is None:
                return None
        import sqlite3
        try:
            row = self._reader.execute("SELECT decoded FROM blocks WHERE code = ?", (code,)).fetchone()
        except sqlite3.Error:
            self._unreadable = True
            return None
        if row is None:
            return None
        try:
            value = marshal.loads(row[0])
        except (EOFError, ValueError, TypeError):
            return None
        return value if valid(value) else None

    def _start_set_file(self, program: str) -> str:
        name = blake2b(program.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        return os.path.join(self.start_sets_directory, name + ".marshal")

    def start_set(self, program: str) -> list:
        """The (code, decode) pairs the last run of ``program`` priced (empty
        when there is none or it cannot be read)."""
        pairs: list = []
        try:
            with open(self._start_set_file(program), "rb") as handle:
                value = marshal.loads(handle.read())
        except (OSError, EOFError, ValueError, TypeError):
            value = None
        # (program, pairs): the program's identity is checked, not only its digest.
        if type(value) is tuple and len(value) == 2 and value[0] == program and type(value[1]) is list:
            pairs = [pair for pair in value[1] if type(pair) is tuple and len(pair) == 2
                     and type(pair[0]) is bytes and valid(pair[1])]
        self._start_sets[program] = pairs
        return pairs

    def add_to_start_set(self, program: str, code: bytes, decoded: tuple) -> None:
        """A block the run of ``program`` priced that its start set did not hold."""
        additions = self._start_set_additions.setdefault(program, {})
        if not additions and not self.added:
            atexit.register(self.save)
        additions[code] = decoded

    def items(self):
        """Every (code, decode) of the database whose value has the right shape
        (emu server loads them into the process-wide decode cache)."""
        import sqlite3
        if self._reader is None and not self._unreadable:
            self._reader = self._connect_reader()
        if self._reader is None:
            return
        try:
            rows = self._reader.execute("SELECT code, decoded FROM blocks").fetchall()
        except sqlite3.Error:
            return
        for code, blob in rows:
            try:
                value = marshal.loads(blob)
            except (EOFError, ValueError, TypeError):
                continue
            if type(code) is bytes and valid(value):
                yield code, value

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def put(self, code: bytes, decoded: tuple) -> None:
        if not self.added:
            atexit.register(self.save)
        self.added[code] = decoded

    def count(self) -> int:
        """Blocks in the database (0 when it cannot be read)."""
        import sqlite3
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as reader:
                return reader.execute("SELECT count(*) FROM blocks").fetchone()[0]
        except sqlite3.Error:
            return 0

    def save(self) -> None:
        if not self.added and not self._start_set_additions:
            return
        added, self.added = self.added, {}
        wrote_start_set = False
        for program, additions in self._start_set_additions.items():
            known = self._start_sets.get(program, [])
            pairs = known + [pair for pair in additions.items() if valid(pair[1])]
            try:
                data = marshal.dumps((program, pairs[-START_SET_BLOCKS:]))
            except ValueError:
                continue
            wrote_start_set = write_whole(self._start_set_file(program), data) or wrote_start_set
        self._start_set_additions = {}
        if wrote_start_set:
            keep_newest(self.start_sets_directory, START_SET_PROGRAMS, suffix=".marshal")
        if added:
            self._save_blocks(added)

    def _save_blocks(self, added: dict[bytes, tuple]) -> None:
        import sqlite3
        # This process's own read transaction would hold the log too (the next
        # lookup, if any, opens a new one).
        self.close()
        try:
            if os.path.exists(self.path) and os.stat(self.path).st_size > MAX_STORE_BYTES:
                return
            if self._unreadable and os.path.exists(self.path):
                os.unlink(self.path)        # damaged: start it again
            created = not os.path.exists(self.path)
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            writer = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
            try:
                if created:
                    writer.execute("PRAGMA journal_mode=WAL")      # readers and the writer do not block each other
                with writer:
                    writer.execute("CREATE TABLE IF NOT EXISTS blocks (code BLOB PRIMARY KEY, decoded BLOB NOT NULL)"
                                   " WITHOUT ROWID")
                    writer.executemany("INSERT OR IGNORE INTO blocks VALUES (?, ?)",
                                       [(code, marshal.dumps(value)) for code, value in added.items()])
                # Move the log into the database and empty it, unless a reader
                # still uses it: then give up at once (a later save succeeds).
                writer.execute("PRAGMA busy_timeout = 0")
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                writer.close()
            if created:
                prune_stale_stores(self.path)
        except (OSError, sqlite3.Error):
            pass            # a read-only, full or locked store: it is only a cache


# A store's files (STORE_STEM.KIND): the database with its log and index, and
# the directory of its start sets.
DATABASE_KINDS = ("sqlite", "sqlite-wal", "sqlite-shm")
START_SETS_KIND = START_SETS_SUFFIX[1:]


def _last_written(directory: str, stem: str) -> float:
    """When a store was last written: its database's, its log's or its start
    sets' change time (in WAL mode a commit writes only the log)."""
    latest = 0.0
    for suffix in (".sqlite", ".sqlite-wal", START_SETS_SUFFIX):
        try:
            latest = max(latest, os.stat(os.path.join(directory, f"{stem}{suffix}")).st_mtime)
        except OSError:
            pass
    return latest


def prune_stale_stores(keep: str) -> None:
    """Remove the other stores of ``keep``'s directory (with their -wal and -shm
    files and start sets) not written for STALE_DAYS or past the STORES_KEPT
    most recently written, and the marshal files of the first format."""
    directory, kept_name = os.path.split(keep)
    horizon = time.time() - STALE_DAYS * 86400
    names = os.listdir(directory)
    stems = {name.partition(".")[0] for name in names
             if name.partition(".")[2] in (*DATABASE_KINDS, START_SETS_KIND)} - {os.path.splitext(kept_name)[0]}
    newest_first = sorted(stems, key=lambda stem: _last_written(directory, stem), reverse=True)
    doomed = {stem for rank, stem in enumerate(newest_first)
              if rank >= STORES_KEPT or _last_written(directory, stem) < horizon}
    for name in names:
        stem, _, kind = name.partition(".")
        path = os.path.join(directory, name)
        try:
            if kind == "marshal" or (stem in doomed and kind in DATABASE_KINDS):
                os.unlink(path)
            elif stem in doomed and kind == START_SETS_KIND:
                import shutil
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def save_all() -> None:
    """Save every store this process opened. What atexit does at the end of a
    fresh `emu run`; a forked worker that leaves by os._exit (the guest-test
    fork server, emu server) calls it itself, or its new decodes are lost."""
    for store in list(_stores.values()):
        if store is not None:
            store.save()


def store_for(price_key: tuple, capstone_version: str) -> BlockPriceStore | None:
    """The store of one price key (None when disabled), opened once per process."""
    key = (price_key, capstone_version)
    if key in _stores:
        return _stores[key]
    directory = store_directory()
    store = None
    if directory is not None:
        digest = blake2b(repr((FORMAT, price_key, capstone_version)).encode(), digest_size=16)
        here = os.path.dirname(__file__)
        for name in PRICING_SOURCES:
            with open(os.path.join(here, name), "rb") as source:
                digest.update(source.read())
        store = BlockPriceStore(os.path.join(directory, f"{digest.hexdigest()}{SUFFIX}"))
    _stores[key] = store
    return store
