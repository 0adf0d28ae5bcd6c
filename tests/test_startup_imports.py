"""What a fresh `emu run` of a glibc hello does not import.

Each module below cost a measurable share of a hello's start-up (callgrind
instruction counts in the comments, of about 470 M for the whole run) and is
needed only by a feature the hello does not use; the test keeps it off the
start-up path. A second run is the one checked: the first fills the block
price store and the kept dataclass code.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.guestbuild import build_c

NOT_ON_THE_START_PATH = {
    "inspect": "dataclasses' only use is a docstring for a class without one (dataclass_code.py; 43 M)",
    "json": "--stats, --trace and --timeline load it",
    "typing": "TYPE_CHECKING comes from emu_x86/__init__.py, Callable from collections.abc (13 M)",
    "threading": "only --timeout's kicker thread uses it (limits.py, Machine.kick_after)",
    "shutil": "argparse's formatter asked it for the terminal width at every add_argument (main._help_width)",
    "sqlite3": "a program's start set is a marshal file beside the store; SQLite is read only for new blocks",
    "datetime": "sqlite3 imports it",
    "emu_x86.emu.timeline": "only --timeline draws one",
    "emu_x86.kernel.ia32": "the 32-bit system call entries load it at their first use",
    "emu_x86.kernel.vsyscall": "only a fault no mapping resolves can be a vsyscall call",
    "pathlib": "the block price store, the profiles and the vDSO image use os.path (15 M, with urllib.parse)",
}

# Runs the `emu` command's entry point in-process, then names the watched
# modules (argv[2], comma-separated) that the run loaded.
PROBE = r"""
import sys
program, watched = sys.argv[1], sys.argv[2].split(",")
sys.argv = ["emu", "run", program]
from emu_x86.emucli import launch
status = launch.main()
sys.stderr.write("LOADED:" + ",".join(name for name in watched if name in sys.modules) + "\n")
sys.exit(status)
"""


@pytest.fixture(scope="module")
def hello():
    return build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')


def test_a_hello_run_leaves_these_modules_unloaded(hello, tmp_path):
    env = {**os.environ, "EMU_BLOCK_CACHE": str(tmp_path / "block-prices"), "EMU_SERVER": "off"}
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", PROBE, str(hello), ",".join(NOT_ON_THE_START_PATH)],
                                env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0 and result.stdout == "hi\n", result.stderr
    loaded = [name for name in result.stderr.rsplit("LOADED:", 1)[1].strip().split(",") if name]
    assert loaded == [], {name: NOT_ON_THE_START_PATH[name] for name in loaded}


def test_dataclasses_loads_inspect_when_it_needs_it():
    """A dataclass without a docstring still gets its signature as one (the
    stand-in loads inspect), and ``import inspect`` anywhere else is the real
    module."""
    probe = ("import sys\n"
             "from emu_x86.emucli import dataclass_code\n"
             "dataclass_code.install()\n"
             "assert 'inspect' not in sys.modules\n"
             "import dataclasses\n"
             "@dataclasses.dataclass\n"
             "class Documented:\n"
             "    '''Has one.'''\n"
             "    x: int\n"
             "assert 'inspect' not in sys.modules\n"
             "@dataclasses.dataclass\n"
             "class Bare:\n"
             "    x: int\n"
             "    y: str = 'a'\n"
             "import inspect\n"
             "print(Documented.__doc__, Bare.__doc__, inspect.signature(Bare), type(inspect).__name__,\n"
             "      hasattr(inspect, 'getsource'), sep=' | ')\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "Has one. | Bare(x: int, y: str = 'a') | (x: int, y: str = 'a') -> None | module | True"
