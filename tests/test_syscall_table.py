"""The lazily assembled system call table (emu_x86/kernel/syscall_table.py):
its owner index is the modules' own, a call imports only the module that
owns it, and a replaced handler survives the owner's later import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from emu_x86.kernel import syscall_table
from emu_x86.kernel.syscall_owners import OWNERS

REPO = Path(__file__).resolve().parent.parent


def test_the_owner_index_is_what_the_modules_register():
    """syscall_owners.py is written from the modules; rewrite it with
    `python -m emu_x86.kernel.syscall_table` when this fails."""
    assert OWNERS == syscall_table.assemble()


def test_a_number_claimed_by_two_modules_is_refused(tmp_path, monkeypatch):
    (tmp_path / "claims_a.py").write_text("SYSCALLS = {39: None}\n")
    (tmp_path / "claims_b.py").write_text("SYSCALLS = {39: None}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        syscall_table.assemble(("claims_a", "claims_b"))
    except ImportError as error:
        assert "syscall 39 registered by both claims_a and claims_b" in str(error)
    else:
        raise AssertionError("a number claimed twice was accepted")


def test_a_lookup_imports_only_the_owning_subsystem():
    """In a fresh interpreter: the table starts with the fixed-value calls'
    module only, and looking up eventfd2 (290) brings in its owner and not,
    say, the message queues."""
    probe = (
        "import sys\n"
        "from emu_x86.kernel import syscall_table as t\n"
        "before = 'emu_x86.kernel.eventfd' in sys.modules\n"
        "handler = t.SYSCALLS[290]\n"
        "print(before, handler.__module__, 'emu_x86.kernel.mqueue' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "emu_x86.kernel.eventfd", "False"]


def test_a_replaced_handler_survives_its_owners_import():
    table = syscall_table.SyscallTable()

    def replacement(*args):
        return 0

    table[290] = replacement
    assert table[290] is replacement
    # Another of eventfd's numbers loads the module; 290 keeps its replacement.
    assert table[284].__module__ == "emu_x86.kernel.eventfd"
    assert table[290] is replacement


def test_unknown_numbers_and_whole_table_views():
    table = syscall_table.SyscallTable()
    assert table.get(99999) is None and 99999 not in table
    assert 1 in table
    assert set(table) == set(OWNERS) and len(table) == len(OWNERS)
    assert all(callable(handler) for handler in table.values())
