"""Where this installation's ``emu server`` listens: what ``emu run``
(launch.py) checks before it loads the client's modules (~6 ms of a fresh
start-up), so that a run without a server pays nothing for the possibility
of one."""
from __future__ import annotations

import os
import sys
import zlib

# The client/server protocol (runserver_client.py), part of the socket's name:
# a server still running the code of before an upgrade that changed it is
# never asked anything by the new code, which starts or finds its own (the old
# one ends at its idle timeout). 2: marshal frames (1: JSON).
PROTOCOL = 2


def package_directory() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runtime_directory() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "emu-x86") if base else f"/tmp/emu-x86-{os.getuid()}"


def socket_path() -> str:
    """One server per installation, interpreter and protocol: another
    checkout or venv gets another socket, never a server running other code."""
    identity = f"{package_directory()}\0{os.path.realpath(sys.executable)}\0{PROTOCOL}".encode()
    return os.path.join(runtime_directory(), f"server-{zlib.crc32(identity):08x}.sock")
