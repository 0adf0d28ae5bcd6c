"""The ptrace(2) guests' expected output is what Linux prints. Each program in
guest/tests/ptrace carries its stdout in its header (the guest-test plugin
checks the emulator against it on 1 and 2 CPUs); here the same program runs
natively on this Linux host, which lets a process trace its children, and
must print exactly that header. (xstate_amx.c needs AMX, which the host
lacks: its header alone holds it.)"""
from __future__ import annotations

import pytest

from emu_x86.emucli.guesttest import parse_spec
from tests.guestbuild import REPO, build_c, native

PTRACE_DIR = REPO / "guest" / "tests" / "ptrace"
HOST_COMPARABLE = ("syscall_stops", "single_step", "signal_stops", "user_area", "seize_threads", "fork_events",
                   "breakpoints_and_errors", "exec_events")


@pytest.mark.parametrize("name", HOST_COMPARABLE)
def test_ptrace_guest_header_is_the_hosts_output(name):
    path = PTRACE_DIR / f"{name}.c"
    spec = parse_spec(path)
    binary = build_c(path.read_text(), "-O2", "-pthread")
    result = native(binary)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == spec.stdout_lines


def test_every_ptrace_guest_is_listed():
    assert sorted(p.stem for p in PTRACE_DIR.glob("*.c")) == sorted([*HOST_COMPARABLE, "xstate_amx"])
