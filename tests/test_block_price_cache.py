"""Decoded blocks are shared by every vCPU and every Machine of a process
(emu_x86/emu/machine.py ``_decoded_blocks``, and the C block hook's price cache,
emu_x86/emu/timing/hotpath.h), keyed by the code bytes and the profile's instruction
costs. The caches change wall-clock time only: a guest run with them off
(every block disassembled afresh), cold, or warm from earlier machines --
with other profiles, and with the cache cleared at its bound -- gives the
same output and the same full statistics."""
from __future__ import annotations

import io
import marshal
import os
import sqlite3
import shutil
import time
from pathlib import Path

import pytest

from emu_x86.emu import block_price_store
from emu_x86.emu import machine as machine_module
from emu_x86.emu.machine import Machine
from emu_x86.emu.vcpu import hotpath
from emu_x86.emucli.main import collect_stats
from emu_x86.kernel.kernel import Kernel, KernelConfig
from tests.test_switch_equivalence import CASES, GUEST_ENVIRONMENT, staged_program

# Tile switches on 4 CPUs (blocks ending at emulated tile instructions), AMX
# first use from assembly (emulated instructions inside blocks), and one C
# program under both profiles (the same bytes priced by two cost tables).
RUNS = [("tiles_8x40_4cpu", "spr"), ("amx_first_use_2cpu", "spr"),
        ("native_floats", "spr"), ("floats_zen4", "zen4")]


def run(name: str, profile: str, priced_in_c: list | None = None, start_set: str | None = None,
        python_prices: list | None = None) -> dict:
    _, _, options, arguments, _ = CASES[name]
    cpus = int(options[options.index("--cpus") + 1]) if "--cpus" in options else 1
    program = str(staged_program(name))
    machine = Machine(cpus=cpus, memory_bytes=256 << 20, profile=profile)
    if start_set is not None:
        machine.use_start_set(start_set)
    stdout, stderr = io.BytesIO(), io.BytesIO()
    try:
        kernel = Kernel(machine, KernelConfig(argv=[program, *arguments],
                                              envp=[f"{k}={v}" for k, v in GUEST_ENVIRONMENT.items()],
                                              stdout=stdout, stderr=stderr))
        kernel.start(program)
        machine.run()
        if priced_in_c is not None:
            priced_in_c.append(sum(vcpu.clock.price_cache_hits for vcpu in machine.vcpus))
        if python_prices is not None:
            python_prices.append(sum(vcpu.clock.python_calls for vcpu in machine.vcpus))
        return {"stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "stats": collect_stats(machine, kernel)}
    finally:
        machine.close()


def forget_decodes(monkeypatch) -> None:
    """Empty every in-process cache of decoded blocks (Python, C, the opened stores)."""
    monkeypatch.setattr(machine_module, "_decoded_blocks", {})
    monkeypatch.setattr(block_price_store, "_stores", {})
    hotpath.hotpath_price_cache_init(machine_module.BLOCK_PRICE_CACHE_ENTRIES)


@pytest.fixture
def empty_cache(monkeypatch):
    # No on-disk store unless a test asks for one (emu_x86/emu/block_price_store.py).
    monkeypatch.setenv("EMU_BLOCK_CACHE", "off")
    monkeypatch.setattr(block_price_store, "_stores", {})
    monkeypatch.setattr(machine_module, "_decoded_blocks", {})
    monkeypatch.setattr(machine_module, "_instruction_costs", {})
    # The C side (hotpath.h price cache): emptied, profiles numbered anew; emptied
    # again afterwards, as the restored numbering may differ from the test's.
    monkeypatch.setattr(machine_module, "_price_profiles", {})
    hotpath.hotpath_price_cache_init(machine_module.BLOCK_PRICE_CACHE_ENTRIES)
    yield
    hotpath.hotpath_price_cache_init(machine_module.BLOCK_PRICE_CACHE_ENTRIES)


def test_shared_decodes_give_the_same_runs_as_fresh_ones(monkeypatch, empty_cache):
    monkeypatch.setattr(machine_module, "SHARE_BLOCK_PRICES", False)
    reference = [run(name, profile) for name, profile in RUNS]
    assert not machine_module._decoded_blocks and hotpath.hotpath_price_cache_size() == 0
    monkeypatch.setattr(machine_module, "SHARE_BLOCK_PRICES", True)
    cold = [run(name, profile) for name, profile in RUNS]
    assert cold == reference
    decoded = dict(machine_module._decoded_blocks)
    priced_in_c = []
    warm = [run(name, profile, priced_in_c) for name, profile in reversed(RUNS)]
    assert warm[::-1] == reference
    # Every block came from the caches: the second round decoded nothing new,
    # and the C block hook priced blocks without calling Python.
    assert machine_module._decoded_blocks == decoded
    assert all(priced_in_c), priced_in_c


def test_a_cache_cleared_at_its_bound_gives_the_same_runs(monkeypatch, empty_cache):
    monkeypatch.setattr(machine_module, "SHARE_BLOCK_PRICES", False)
    reference = run(*RUNS[0])
    monkeypatch.setattr(machine_module, "SHARE_BLOCK_PRICES", True)
    monkeypatch.setattr(machine_module, "BLOCK_PRICE_CACHE_ENTRIES", 16)
    assert run(*RUNS[0]) == reference
    assert len(machine_module._decoded_blocks) <= 16


def test_profiles_with_other_costs_do_not_share_decodes(empty_cache):
    run(*RUNS[2])
    run(*RUNS[3])
    keys = {key for key, _code in machine_module._decoded_blocks}
    assert len(keys) == 2
    shared_code = {code for _key, code in machine_module._decoded_blocks}
    assert len(shared_code) < len(machine_module._decoded_blocks)


def test_decodes_stored_on_disk_give_the_same_runs(tmp_path, monkeypatch, empty_cache):
    """emu_x86/emu/block_price_store.py: a run priced from the store of an earlier
    process (nothing decoded) equals a run that decoded every block."""
    reference = run(*RUNS[2])
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    forget_decodes(monkeypatch)
    assert run(*RUNS[2]) == reference
    (store,) = block_price_store._stores.values()
    store.save()                               # what atexit does at the end of `emu run`
    (path,) = tmp_path.glob("*.sqlite")
    stored = store.count()
    assert str(path) == store.path and stored > 100
    forget_decodes(monkeypatch)
    assert run(*RUNS[2]) == reference
    (warm,) = block_price_store._stores.values()
    assert warm.added == {}                    # every block came from the file
    warm.save()
    assert warm.count() == stored


def start_set_programs(store) -> list[str]:
    """The programs whose start sets ``store`` keeps (files beside its database)."""
    directory = Path(store.start_sets_directory)
    return sorted(marshal.loads(path.read_bytes())[0] for path in directory.glob("*.marshal"))


def test_a_start_set_prices_the_next_run_without_python_and_changes_nothing(tmp_path, monkeypatch, empty_cache):
    """block_price_store start sets: the first run of a program records the
    blocks it priced; the next run (a fresh process: caches empty) adopts them
    all before it starts, so the C hook prices nearly every block itself --
    and the run is the one that decoded every block."""
    reference = run(*RUNS[2])
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    forget_decodes(monkeypatch)
    first_calls, second_calls = [], []
    assert run(*RUNS[2], start_set="prog", python_prices=first_calls) == reference
    (store,) = block_price_store._stores.values()
    store.save()
    program, recorded = marshal.loads(Path(store._start_set_file("prog")).read_bytes())
    assert program == "prog" and len(recorded) > 100 and all(block_price_store.valid(decoded) for _code, decoded in recorded)
    forget_decodes(monkeypatch)
    assert run(*RUNS[2], start_set="prog", python_prices=second_calls) == reference
    assert second_calls[0] < first_calls[0] / 10, (first_calls, second_calls)
    (warm,) = block_price_store._stores.values()
    assert warm._start_set_additions == {}      # nothing new: the set is not written again
    # Another program (or the same one rebuilt) has a set of its own.
    forget_decodes(monkeypatch)
    assert run(*RUNS[2], start_set="other") == reference
    (store,) = block_price_store._stores.values()
    store.save()
    assert start_set_programs(store) == [machine_module.BOOT_START_SET, "other", "prog"]


def test_a_start_set_takes_even_one_new_block(tmp_path, monkeypatch):
    """A set that lacks a single block is written again with it: otherwise
    every later run looks that block up in SQLite (importing sqlite3)."""
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    monkeypatch.setattr(block_price_store, "_stores", {})
    store = block_price_store.store_for(("a price key",), "capstone")
    decoded = (1, (256, 256, 0), 1, None)
    for code in (b"\x90", b"\xc3"):
        store.add_to_start_set("prog", code, decoded)
    store.save()
    assert dict(store.start_set("prog")) == {b"\x90": decoded, b"\xc3": decoded}
    store.add_to_start_set("prog", b"\xcc", decoded)          # one more, in a later run
    store.save()
    assert dict(store.start_set("prog")) == {b"\x90": decoded, b"\xc3": decoded, b"\xcc": decoded}


def test_a_damaged_store_is_ignored(tmp_path, monkeypatch, empty_cache):
    reference = run(*RUNS[2])
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    forget_decodes(monkeypatch)
    run(*RUNS[2])
    (store,) = block_price_store._stores.values()
    stored = len(store.added)
    store.save()
    good = Path(store.path).read_bytes()
    # The database alone is damaged: without the start sets beside it (the
    # machines' boot blocks), every block is decoded again.
    shutil.rmtree(Path(store.start_sets_directory))
    for damage in (good[:len(good) // 2], b"\x00" * 64, b"SQLite format 3\x00" + b"\xff" * 200, "wrong shapes"):
        if damage == "wrong shapes":
            # A readable database whose every value has the wrong shape (a float price).
            Path(store.path).write_bytes(good)
            with sqlite3.connect(store.path) as writer:
                writer.execute("UPDATE blocks SET decoded = ?", (marshal.dumps((1, (1.5, 0, 0), 1, None)),))
        else:
            Path(store.path).write_bytes(damage)
        forget_decodes(monkeypatch)
        assert run(*RUNS[2]) == reference
        (reread,) = block_price_store._stores.values()
        assert len(reread.added) == stored, damage        # decoded again, the damaged values ignored
    # The next save replaces a database that could not be read.
    Path(store.path).write_bytes(b"\x00" * 64)
    forget_decodes(monkeypatch)
    run(*RUNS[2])
    (reread,) = block_price_store._stores.values()
    reread.save()
    assert reread.count() == stored


def test_another_profile_has_another_store(tmp_path, monkeypatch, empty_cache):
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    run(*RUNS[2])
    run(*RUNS[3])
    for store in block_price_store._stores.values():
        store.save()
    assert len(list(tmp_path.glob("*.sqlite"))) == 2


def test_a_new_store_prunes_stale_ones(tmp_path, monkeypatch, empty_cache):
    """Stores of other file names (older code, other profiles) not written for
    STALE_DAYS go when a new one is created; recent ones and the first format's
    marshal files are handled as stated in block_price_store's docstring."""
    stale, recent, legacy = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.marshal"
    unrelated, stale_wal = tmp_path / "notes.txt", tmp_path / "a.sqlite-wal"
    for path in (stale, stale_wal, recent, legacy, unrelated):
        path.write_bytes(b"x")
    old = time.time() - (block_price_store.STALE_DAYS + 1) * 86400
    os.utime(stale, (old, old))
    os.utime(stale_wal, (old, old))     # a store's last write is its database's or its log's
    os.utime(unrelated, (old, old))
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    run(*RUNS[2])
    (store,) = block_price_store._stores.values()
    store.save()
    names = sorted(path.name for path in tmp_path.iterdir())
    # (the store's own -wal and -shm files go when its last connection closes)
    assert names == sorted([Path(store.path).name, Path(store.path).stem + block_price_store.START_SETS_SUFFIX,
                            "b.sqlite", "notes.txt"]), names


def test_a_new_store_keeps_only_the_most_recent_others(tmp_path, monkeypatch, empty_cache):
    """Each edit of the pricing code makes a new store: a new one leaves the
    STORES_KEPT most recently written others in place and removes the rest,
    however recent."""
    monkeypatch.setattr(block_price_store, "STORES_KEPT", 2)
    now = time.time()
    for age, stem in enumerate(("s0", "s1", "s2", "s3")):
        for suffix in (".sqlite", ".sqlite-wal"):
            (tmp_path / f"{stem}{suffix}").write_bytes(b"x")
            os.utime(tmp_path / f"{stem}{suffix}", (now - 60 * (age + 1),) * 2)
        sets = tmp_path / f"{stem}{block_price_store.START_SETS_SUFFIX}"     # its start sets go with it
        sets.mkdir()
        (sets / "p.marshal").write_bytes(b"x")
        os.utime(sets, (now - 60 * (age + 1),) * 2)
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    run(*RUNS[2])
    (store,) = block_price_store._stores.values()
    store.save()
    stems = {path.name.partition(".")[0] for path in tmp_path.iterdir()}
    assert stems == {Path(store.path).stem, "s0", "s1"}, stems
    assert (tmp_path / "s1.start-sets" / "p.marshal").exists() and not (tmp_path / "s2.start-sets").exists()


def test_the_boot_set_holds_the_boot_blocks_alone(tmp_path, monkeypatch, empty_cache):
    """Machine's boot start set records the firmware stubs the vCPUs boot
    through, not the blocks of a program run without a set of its own (it
    once grew to ~2,000 blocks from tests and bench runs)."""
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    run(*RUNS[2])                                   # no start_set: a test's machine
    (store,) = block_price_store._stores.values()
    store.save()
    boot = store.start_set(machine_module.BOOT_START_SET)
    assert 1 <= len(boot) <= 4, len(boot)
    assert start_set_programs(store) == [machine_module.BOOT_START_SET]


def test_a_start_set_of_another_program_is_not_adopted(tmp_path, monkeypatch, empty_cache):
    """A start set file holds its program's identity, checked on reading (not
    only the digest that names the file); an unreadable one is no set."""
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    run(*RUNS[2], start_set="prog")
    (store,) = block_price_store._stores.values()
    store.save()
    path = Path(store._start_set_file("prog"))
    program, pairs = marshal.loads(path.read_bytes())
    assert len(store.start_set("prog")) == len(pairs) > 100
    path.write_bytes(marshal.dumps(("someone else", pairs)))
    assert store.start_set("prog") == []
    path.write_bytes(b"\x00garbage")
    assert store.start_set("prog") == []


def test_saves_keep_the_log_small_and_the_start_sets_bounded(tmp_path, monkeypatch, empty_cache):
    """A save ends with a truncating checkpoint (a reader-free moment empties
    the log), and only the START_SET_PROGRAMS sets written last are kept."""
    monkeypatch.setattr(block_price_store, "START_SET_PROGRAMS", 2)
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path))
    for program in ("a", "b", "c"):
        forget_decodes(monkeypatch)
        run(*RUNS[2], start_set=program)
        (store,) = block_price_store._stores.values()
        store.save()
        store.close()
    wal = Path(store.path).with_name(Path(store.path).name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    # Two sets are kept, the last program's among them (the machines' boot set
    # is one more set, written again by the run after the one evicting it).
    kept = start_set_programs(store)
    assert len(kept) == 2 and "c" in kept and "a" not in kept, kept


def test_keep_newest_bounds_a_kept_file_directory(tmp_path):
    """block_price_store.keep_newest: the newest ``keep`` files of the prefix
    and suffix stay; other names and another process's partial .tmp are not
    touched (profile parses and libunicorn probe answers are bounded this way)."""
    from emu_x86.emu import block_price_store
    for age, name in enumerate(["a-5.marshal", "a-4.marshal", "a-3.marshal", "a-2.marshal", "a-1.marshal",
                                "b-1.marshal", "a-0.marshal.99.tmp"]):
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, ns=(10**9 * (100 - age),) * 2)        # a-5 newest
    block_price_store.keep_newest(str(tmp_path), 3, "a-", ".marshal")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "a-0.marshal.99.tmp", "a-3.marshal", "a-4.marshal", "a-5.marshal", "b-1.marshal"]
    block_price_store.keep_newest(str(tmp_path / "absent"), 1)     # no directory: nothing to do


def test_the_c_price_cache_keeps_every_block_up_to_its_bound(empty_cache):
    """hotpath.c's price cache: open addressing, grown as it fills, so no
    block is lost to another sharing its slot (direct-mapped, 4,096 inserts
    into 4,096 slots kept ~2,600); past the bound inserts are dropped, and a
    block inserted again updates its entry."""
    hotpath.hotpath_price_cache_init(4096)
    for number in range(4096 + 100):
        code = number.to_bytes(4, "little") + b"\x90"
        hotpath.hotpath_price_cache_insert(1, code, len(code), 2, 256, 256, 0)
    assert hotpath.hotpath_price_cache_size() == 4096
    hotpath.hotpath_price_cache_insert(1, bytes(4) + b"\x90", 5, 3, 512, 512, 0)
    assert hotpath.hotpath_price_cache_size() == 4096


def test_a_crowded_price_cache_still_prices_a_runs_blocks(monkeypatch, empty_cache):
    """emu server adopts its whole store (up to BLOCK_PRICE_CACHE_ENTRIES
    blocks) into the C cache: a program's own blocks among 20,000 others
    are still found there, and the run is the run made without them."""
    reference = run(*RUNS[2])
    priced_alone, python_alone = [], []
    run(*RUNS[2], priced_in_c=priced_alone, python_prices=python_alone)
    forget_decodes(monkeypatch)
    run(*RUNS[2])                                       # its blocks into the caches again
    profile_number = max(machine_module._price_profiles.values())
    for number in range(20_000):
        code = number.to_bytes(4, "little") + b"\xc3"
        hotpath.hotpath_price_cache_insert(profile_number, code, len(code), 2, 256, 256, 0)
    priced_crowded, python_crowded = [], []
    assert run(*RUNS[2], priced_in_c=priced_crowded, python_prices=python_crowded) == reference
    assert priced_crowded == priced_alone and python_crowded == python_alone


def test_a_store_larger_than_the_caches_is_not_taken_whole(monkeypatch, empty_cache):
    """emu server's preload adopts its whole store (adopt_decodes, whole_store);
    a worker then skips its program's start set (Machine.use_start_set). A
    store with more blocks than the caches take is only partly adopted, so it
    must not count as whole: the worker's blocks left out would each cost a
    store lookup and a call into Python."""
    monkeypatch.setattr(machine_module, "_whole_store_adopted", set())
    monkeypatch.setattr(machine_module, "BLOCK_PRICE_CACHE_ENTRIES", 8)
    decode = (2, (256, 256, 0), 5, None)
    blocks = [(number.to_bytes(4, "little") + b"\x90", decode) for number in range(9)]
    assert machine_module.adopt_decodes(("fits",), blocks[:8], whole_store=True) == 8
    assert machine_module.adopt_decodes(("too large",), blocks, whole_store=True) == 8
    assert machine_module._whole_store_adopted == {("fits",)}
