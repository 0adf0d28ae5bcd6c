"""capstone, loaded on first use.

Importing capstone costs about 80 ms of CPU here (its package imports the
constants of every architecture it supports), a quarter of a glibc hello's
start-up; yet a run whose blocks are all in the block price store
(emu_x86/emu/block_price_store.py) decodes nothing with it. So nothing at
module level imports it: the decoding paths call ``detailed_decoder()`` or
import capstone inside the function, paying for it when they first run.
"""
from __future__ import annotations

import functools

# capstone's constants that the decoding paths test, as its capstone/__init__.py
# and x86_const.py define them (tests/test_decoder.py checks they still agree),
# so that those modules need not import capstone to name them.
CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET, CS_GRP_INT, CS_GRP_IRET, CS_GRP_BRANCH_RELATIVE = 1, 2, 3, 4, 5, 7
CS_AC_READ, CS_AC_WRITE = 1, 2
X86_OP_REG, X86_OP_MEM = 1, 3
X86_REG_RIP, X86_REG_FS, X86_REG_GS = 41, 32, 33


@functools.cache
def detailed_decoder():
    """A shared 64-bit capstone decoder in detail mode (operands, groups, registers)."""
    import capstone
    decoder = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    decoder.detail = True
    return decoder


@functools.cache
def capstone_identity() -> str:
    """What identifies the installed capstone for caches of its decodes
    (the block price store's key), found without importing it: the size and
    modification time of its Python package and shared library."""
    import importlib.util
    import os
    spec = importlib.util.find_spec("capstone")
    if spec is None or not spec.origin:
        return "capstone-missing"
    package = os.path.dirname(spec.origin)
    parts = []
    for relative in ("__init__.py", "lib/libcapstone.so", "libcapstone.so", "x86.py"):
        try:
            status = os.stat(os.path.join(package, relative))
        except OSError:
            continue
        parts.append(f"{relative}:{status.st_size}:{status.st_mtime_ns}")
    return ";".join(parts)
