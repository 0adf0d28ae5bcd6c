"""Guests run the same with the kernel's XSAVES/XRSTORS in C and forced onto
the Python instructions (EMU_XSTATE_C=0): exit status, output and the full
statistics JSON, for the tile-switching, AMX churn (every buffer policy),
first-use and signal-frame guests of tests/test_switch_equivalence.py. (The
guest sees the emulator's environment: both runs set EMU_XSTATE_C, to values
of the same length, so the guests' stacks are laid out alike.)"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests.guestbuild import emu
from tests.test_switch_equivalence import CASES, GUEST_ENVIRONMENT, staged_program

NAMES = ["tiles_8x40_4cpu", "tiles_4x6_1cpu_traced", "churn_pages_percpu", "churn_separate", "fork_perm",
         "amx_first_use_2cpu", "amx_signal_frame", "xinuse"]


def run(name: str, c_path: bool) -> dict:
    _, _, options, arguments, _ = CASES[name]
    program = staged_program(name)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        result = emu("run", "--stats", str(stats_path), *options, str(program), *arguments,
                     env={**GUEST_ENVIRONMENT, "EMU_XSTATE_C": "1" if c_path else "0"}, timeout=600)
        return {"exit": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
                "stats": json.loads(stats_path.read_text()) if stats_path.exists() else None}


@pytest.mark.parametrize("name", NAMES)
def test_c_and_python_xstate_paths_give_the_same_run(name):
    c_run = run(name, True)
    assert c_run["stats"] is not None
    assert c_run == run(name, False)
