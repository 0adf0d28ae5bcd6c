"""Where this installation's ``emu server`` listens: what ``emu run``
(launch.py) checks before it loads the client's modules (socket, json:
~6 ms of a fresh start-up), so that a run without a server pays nothing
for the possibility of one."""
from __future__ import annotations

import os
import sys
import zlib


def package_directory() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runtime_directory() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "emu-x86") if base else f"/tmp/emu-x86-{os.getuid()}"


def socket_path() -> str:
    """One server per installation and interpreter: another checkout or venv
    gets another socket, never a server running other code."""
    identity = f"{package_directory()}\0{os.path.realpath(sys.executable)}".encode()
    return os.path.join(runtime_directory(), f"server-{zlib.crc32(identity):08x}.sock")
