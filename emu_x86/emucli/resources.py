"""Where the guest files a user needs live: the installed package or the source tree.

A wheel carries ``guest/include`` (the headers guest programs include),
``guest/examples`` and ``guest/workloads`` (what ``emu compare`` runs) inside
the ``emu_x86.emucli`` package as ``emu_x86/emucli/guest/...`` (setup.py copies them at build
time), so nothing is installed at the top of site-packages under a generic
name.  A source checkout (``pip install -e .`` or ``PYTHONPATH=.``) has no
such copy and uses the tree's own ``guest/``.  Every path a tool prints
(``-I`` flags, reproduce lines) comes from here, so it names a directory that
exists.
"""
from __future__ import annotations

import functools
from pathlib import Path

# Folders of guest/ that ship in the wheel (setup.py reads this tuple).
SHIPPED_GUEST_DIRS = ("include", "examples", "workloads")

_PACKAGED = Path(__file__).resolve().parent / "guest"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "guest"   # checkout/emu_x86/emucli/resources.py


@functools.cache
def guest_dir() -> Path:
    """The folder holding include/, examples/ and workloads/."""
    for candidate in (_PACKAGED, _SOURCE_TREE):
        if (candidate / "include").is_dir():
            return candidate
    return _SOURCE_TREE          # neither: callers' own checks report the missing file


def include_dir() -> Path:
    return guest_dir() / "include"


def workloads_dir() -> Path:
    return guest_dir() / "workloads"


def examples_dir() -> Path:
    return guest_dir() / "examples"
