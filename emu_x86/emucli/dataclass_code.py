"""Compiled code for the methods @dataclass writes, kept between runs of ``emu``.

@dataclass builds each class's __init__, __repr__ and __eq__ as source text
and compiles it with the builtin ``exec`` (dataclasses._create_fn). For the
36 dataclasses a glibc hello imports that compile was 35 of the 42 ms they
cost, about a fifth of the run's 0.19 s of CPU on a 2.45 GHz EPYC 7003.

What a text compiles to depends only on the text and the interpreter, so the
``emu`` command (launch.py, before anything defines a dataclass) gives the
dataclasses module an ``exec`` that looks the text up first: the functions
are the ones the builtin would have made from the same text, with the same
compiler flags (none inherited), without compiling it again. The texts and
their code are kept with marshal beside the block price store, in a file
named by the bytecode's magic number, written whole or not at all; a text
not there is compiled as before. Nothing outside the ``emu`` command (tests,
other programs importing emu_x86) is changed, and with the store disabled
(EMU_BLOCK_CACHE=off) this does nothing.
"""
from __future__ import annotations

import builtins
import importlib
import marshal
import sys
import types

MAX_TEXTS = 4096        # past it a new text is compiled every time, as without the cache

_codes: dict[str, object] = {}
_loaded_count = 0
_path = None          # the kept file (a Path), None when the store is off


def _cache_path():
    from importlib.util import MAGIC_NUMBER

    from emu_x86.emu import block_price_store
    return block_price_store.kept_file("dataclass-code", f"{MAGIC_NUMBER.hex()}.marshal")


def _exec(source, globals=None, locals=None, /):
    """The builtin exec, taking a source text's code from the cache."""
    if type(source) is str:
        code = _codes.get(source)
        if code is None:
            code = compile(source, "<string>", "exec", dont_inherit=True)
            if len(_codes) < MAX_TEXTS:
                _codes[source] = code
        source = code
    return builtins.exec(source, globals, locals)


def _import_dataclasses_without_inspect():
    """Import dataclasses with its ``inspect`` a stand-in that loads the real
    module at its first attribute use.

    dataclasses imports inspect (and with it ast, dis and tokenize: about 3%
    of a glibc hello's instructions) for one call, ``inspect.signature``,
    made only for a class without a docstring (dataclasses._process_class
    writes the signature in as one). The start-up path's dataclasses all have
    docstrings, so there inspect is never loaded. The stand-in is dataclasses'
    alone: it leaves sys.modules as soon as dataclasses is imported, so any
    other ``import inspect`` gets the real module. (importlib.util.LazyLoader
    cannot do this on 3.11: the import statement reads the module's
    ``__spec__``, which loads it.)
    """
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = types.ModuleType("inspect", "Loads the inspect module when dataclasses first uses it.")
    stand_in.__getattr__ = lambda name: getattr(importlib.import_module("inspect"), name)
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]


def install() -> None:
    """Load the kept code and hand dataclasses the caching exec."""
    global _path, _loaded_count
    _import_dataclasses_without_inspect()
    import dataclasses
    _path = _cache_path()
    if _path is None:
        return
    try:
        with open(_path, "rb") as handle:
            # One read, then loads: marshal.load on a file reads it an object
            # at a time through the file's methods (10x slower for this file).
            kept = marshal.loads(handle.read())
        if type(kept) is dict:
            _codes.update(kept)
    except (OSError, EOFError, ValueError, TypeError):
        pass        # absent or unreadable: every text is compiled, and the file rewritten
    _loaded_count = len(_codes)
    dataclasses.exec = _exec


def save() -> None:
    """Write the texts this process compiled beyond those it loaded (no-op if none)."""
    global _loaded_count
    if _path is None or len(_codes) == _loaded_count:
        return
    from emu_x86.emu import block_price_store
    try:
        data = marshal.dumps(_codes)
    except ValueError:
        return
    if block_price_store.write_whole(_path, data):
        _loaded_count = len(_codes)
