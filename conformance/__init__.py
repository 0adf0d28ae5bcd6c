"""Outside oracle: Linux's own selftests, run natively and under ``emu run``.

``python -m conformance`` (``make conformance``) fetches the selftest sources
from Debian's ``linux-source-6.12`` package into a cache outside the
repository (``sources.py``), builds the programs listed in ``catalog.py``
statically (``build.py``), runs each natively on the host (as root and as
uid 1000, the guest's uid) and under ``emu run`` (``execute.py``), and writes
``docs/conformance.md`` (``report.py``), merging the hand-written failure
reasons of ``docs/conformance-reasons.toml``.  Not part of ``make test``:
it needs the package registry and takes many minutes.
"""
