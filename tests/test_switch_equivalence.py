"""The fast context-switch path changes wall-clock time only: every guest that
switches tasks, saves or restores extended state, or takes signals gives the
same exit status, output and *full* statistics JSON (every counter, every
per-CPU cycle count) -- and, traced, the same trace -- as the code before the
switch path was batched (recorded in tests/golden/switch_equivalence.json).

The recorded values belong to the exact guest binaries they came from: a C
guest built by another compiler version is a different program, so a case
whose binary hash differs from the recorded one is skipped (an .S guest
assembles to the same bytes everywhere).

Re-record (only when a change is *meant* to alter simulated results):
    python -m tests.test_switch_equivalence record
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.guestbuild import REPO, build, emu, missing_prerequisite

GOLDEN = REPO / "tests" / "golden" / "switch_equivalence.json"
AMX = ["-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8", "-mxsave"]
PLAIN = ["-static", "-O1", "-pthread"]

# name: (guest source, gcc flags, emu options, guest arguments, traced)
CASES = {
    "tiles_8x40_4cpu": ("amx/threads_tiles.c", AMX + ["-DTHREADS=8", "-DROUNDS=40", "-DSPIN=0"],
                        ["--cpus", "4"], [], False),
    "tiles_default_2cpu_q100k": ("amx/threads_tiles.c", AMX, ["--cpus", "2", "--cmdline", "sched_quantum=100000"],
                                 [], False),
    "tiles_4x6_1cpu_traced": ("amx/threads_tiles.c", AMX + ["-DTHREADS=4", "-DROUNDS=6", "-DSPIN=0"],
                              ["--cpus", "1"], [], True),
    "floats_zen4": ("native/floats.c", PLAIN, ["--profile", "zen4"], [], False),
    **{f"churn_{policy}": ("amx/amx_churn.c", AMX, ["--cpus", "4", "--cmdline",
                                                    f"xstate_alloc={policy} lazy_max_pages=32"],
                           ["12", "4", "3", "3"], False)
       for policy in ("vmalloc", "vmalloc_cache", "separate", "eager", "pages_percpu")},
    "amx_context_switch_q20k": ("kernel/amx_context_switch.c", AMX,
                                ["--cpus", "1", "--cmdline", "sched_quantum=20000"], [], False),
    "xinuse": ("amx/xinuse.c", AMX, [], [], False),
    "altstack_perm": ("amx/altstack_perm.c", AMX, [], [], False),
    "fork_perm": ("amx/fork_perm.c", AMX, ["--cpus", "2"], [], False),
    "xsavec_dump": ("xsave/xsavec_dump.c", ["-static", "-O2", "-mxsave", "-mxsavec"], [], [], False),
    "amx_signal_frame": ("kernel/amx_signal_frame.S", ["-nostdlib", "-static"], [], [], True),
    "amx_first_use_2cpu": ("kernel/amx_first_use.S", ["-nostdlib", "-static"], ["--cpus", "2"], [], True),
    "signals_fixup": ("kernel/signals_handler_and_fixup.S", ["-nostdlib", "-static"], [], [], True),
    "rseq_migration": ("kernel/rseq_migration_abort.S", ["-nostdlib", "-static"], ["--cpus", "2"], [], False),
    "native_signals": ("native/signals.c", PLAIN, ["--cpus", "2"], [], False),
    "native_floats": ("native/floats.c", PLAIN, [], [], False),
    "pthread_counters": ("threads/pthread_counters.c", PLAIN, ["--cpus", "4"], [], False),
    "fork_threads": ("processes/fork_threads.c", PLAIN, ["--cpus", "2"], [], False),
    "balance": ("sched/balance.c", PLAIN, ["--cpus", "4"], ["balance", "6"], False),
}


def _binary(source: str, flags: list[str]) -> Path:
    path = REPO / "guest" / "tests" / source
    return build(path.read_text(), path.suffix, flags)


# The guest's argv[0] and environment shape its initial stack, and glibc's
# start-up walks them: each case runs from the same path with the same
# environment on every machine, wherever the checkout is and whatever PATH is.
GUEST_DIRECTORY = Path("/tmp/emu-switch-equivalence")
GUEST_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def staged_program(name: str) -> Path:
    """The case's binary, stripped (the symbol table names the build's temporary
    source file and, for .S, the include directory's path; the guest never
    reads it), at its fixed path."""
    if shutil.which("strip") is None:
        missing_prerequisite("binutils strip")
    source, flags, *_ = CASES[name]
    GUEST_DIRECTORY.mkdir(exist_ok=True)
    program = GUEST_DIRECTORY / name
    staged = GUEST_DIRECTORY / f".{name}.{os.getpid()}"
    subprocess.run(["strip", "-o", str(staged), str(_binary(source, flags))], check=True)
    staged.chmod(0o755)
    staged.replace(program)         # atomic: concurrent workers never run half a file
    return program


def run_case(name: str) -> dict:
    _, _, options, arguments, traced = CASES[name]
    program = staged_program(name)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        trace_path = Path(tmp) / "trace.jsonl"
        extra = ["--trace", str(trace_path)] if traced else []
        result = emu("run", "--stats", str(stats_path), *extra, *options, str(program), *arguments,
                     env=GUEST_ENVIRONMENT, timeout=600)
        return {
            "binary_sha256": hashlib.sha256(program.read_bytes()).hexdigest(),
            "exit": result.returncode,
            "stdout": result.stdout.decode(errors="backslashreplace"),
            "stderr": result.stderr.decode(errors="backslashreplace"),
            "stats": json.loads(stats_path.read_text()) if stats_path.exists() else None,
            "trace_sha256": hashlib.sha256(trace_path.read_bytes()).hexdigest() if traced else None,
        }


@pytest.mark.parametrize("name", sorted(CASES))
def test_switch_path_leaves_simulated_results_unchanged(name):
    recorded = json.loads(GOLDEN.read_text())[name]
    if hashlib.sha256(staged_program(name).read_bytes()).hexdigest() != recorded["binary_sha256"]:
        missing_prerequisite("this toolchain builds a different binary than the recorded one")
    assert run_case(name) == recorded


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    GOLDEN.write_text(json.dumps({name: run_case(name) for name in sorted(CASES)}, indent=1, sort_keys=True) + "\n")
