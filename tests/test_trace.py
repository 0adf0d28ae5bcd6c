"""emu trace / --trace: instruction and event records (emu_x86/emu/trace.py)."""
from __future__ import annotations

import json
import os

import pytest

from tests.guestbuild import REPO, build, build_c, emu

TRACE_GUESTS = REPO / "guest" / "tests" / "trace"
GOLDEN = REPO / "tests" / "golden" / "amx_first_use.trace.jsonl"


def amx_first_use():
    return build((TRACE_GUESTS / "amx_first_use.S").read_text(), ".S", ["-nostdlib", "-static"])


def two_threads():
    return build_c((TRACE_GUESTS / "gdb_two_threads.c").read_text(), "-g", "-pthread")


def records(run, status: int = 0) -> list[dict]:
    """The trace records on stdout (the guest's own output lines are skipped)."""
    assert run.returncode == status, run.stderr
    return [json.loads(line) for line in run.stdout.decode().splitlines() if line.startswith("{")]


def test_amx_first_use_trace_matches_golden_file():
    """The whole trace -- every instruction with its register changes, and the
    events -- is byte for byte the reviewed golden file (EMU_UPDATE_GOLDEN=1
    rewrites it after an intended change)."""
    run = emu("trace", str(amx_first_use()))
    assert run.returncode == 0, run.stderr
    if os.environ.get("EMU_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(run.stdout)
    assert run.stdout.decode() == GOLDEN.read_text()


def test_amx_trace_shows_nm_allocation_and_restarted_tileloadd():
    trace = records(emu("trace", str(amx_first_use())))
    tileloadd = [index for index, record in enumerate(trace)
                 if record["type"] == "insn" and record["asm"] == "tileloadd (%rsi,%rdx,1),%tmm0"]
    assert len(tileloadd) == 2, "the faulting TILELOADD and its restart"
    first, restart = (trace[index] for index in tileloadd)
    assert first["faulted"] == "#NM" and first["regs"] == {"xfd_err": "0x40000"}
    assert first["bytes"] == "c4e27b4b0416" and restart["bytes"] == first["bytes"]
    assert restart["rip"] == first["rip"] and "faulted" not in restart
    assert "tiles" in restart["regs"], "the restarted load changed tmm0"
    between = [record["type"] for record in trace[tileloadd[0] + 1:tileloadd[1]]]
    assert between == ["exception", "nm_handled"]
    exception, handled = trace[tileloadd[0] + 1], trace[tileloadd[0] + 2]
    assert exception["vector"] == "#NM"
    assert handled["outcome"] == "retry" and handled["xstate_alloc"] is True and handled["xfd"] == "0x0"
    assert restart["cycle"] > first["cycle"], "the #NM handling cost cycles"


def test_tracing_changes_nothing_the_guest_sees_and_is_deterministic(tmp_path):
    binary = str(two_threads())
    plain = emu("run", "--cpus", "2", "--stats", str(tmp_path / "plain.json"), binary)
    traced = emu("run", "--cpus", "2", "--stats", str(tmp_path / "traced.json"),
                 "--trace", str(tmp_path / "a.jsonl"), binary)
    again = emu("run", "--cpus", "2", "--trace", str(tmp_path / "b.jsonl"), binary)
    assert plain.returncode == traced.returncode == again.returncode == 3
    assert plain.stdout == traced.stdout == b"counter=42\n"
    plain_stats, traced_stats = (json.loads((tmp_path / name).read_text()) for name in ("plain.json", "traced.json"))
    assert plain_stats == traced_stats
    first, second = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert first == second
    trace = [json.loads(line) for line in first.decode().splitlines()]
    instructions = [record for record in trace if record["type"] == "insn"]
    stats = json.loads((tmp_path / "plain.json").read_text())
    # Every retired instruction has a record; faulted ones are marked. The
    # machine's counter also counts a faulting instruction once and an
    # emulated one (XGETBV here) twice, so it may exceed the retired count by those.
    retired = [record for record in instructions if "faulted" not in record]
    faulted = [record for record in instructions if "faulted" in record]
    emulated = [record for record in retired if record["asm"].startswith("xgetbv")]
    assert len(retired) <= stats["instructions"] <= len(retired) + len(faulted) + len(emulated)
    assert {record["cpu"] for record in instructions} == {0, 1}
    kinds = {record["type"] for record in trace}
    assert {"syscall", "syscall_return", "context_switch", "ipi_send", "interrupt", "exception"} <= kinds
    clone = next(record for record in trace if record["type"] == "syscall" and record["name"] == "clone3")
    result = next(record for record in trace if record["type"] == "syscall_return" and record["name"] == "clone3"
                  and record["task"] == clone["task"])
    assert result["result"] > 0, "clone3 returned the new thread's id"


def test_filters_cpu_events_only_and_cycle_window():
    binary = str(two_threads())
    cpu1 = records(emu("trace", "--cpus", "2", "--cpu", "1", binary), status=3)
    assert cpu1 and {record["cpu"] for record in cpu1} == {1}
    events = records(emu("trace", "--cpus", "2", "--events-only", binary), status=3)
    assert events and all(record["type"] != "insn" for record in events)
    full = records(emu("trace", str(amx_first_use())))
    window = records(emu("trace", "--from", "800", "--to", "1100", str(amx_first_use())))
    assert window == [record for record in full if 800 <= record["cycle"] < 1100]
    assert window and len(window) < len(full)


def test_address_window_starts_and_stops_instruction_records():
    binary = amx_first_use()
    full = records(emu("trace", str(binary)))
    addresses = [record["rip"] for record in full if record["type"] == "insn"]
    start, stop = addresses[3], addresses[6]
    windowed = [record for record in records(emu("trace", "--from", start, "--to", stop, str(binary)))
                if record["type"] == "insn"]
    assert [record["rip"] for record in windowed] == addresses[3:7]


def test_text_format_is_plain_when_not_a_terminal():
    run = emu("trace", "--format", "text", str(amx_first_use()))
    assert run.returncode == 0
    text = run.stdout.decode()
    assert "\x1b[" not in text
    assert "tileloadd (%rsi,%rdx,1),%tmm0" in text and "faulted #NM" in text and "== nm_handled" in text


@pytest.mark.parametrize("arguments, message", [
    (["--cpu", "4"], "--cpu"),
    (["--from", "soon"], "--from"),
    (["--format", "yaml"], "--format"),
])
def test_bad_trace_options_are_one_line_usage_errors(arguments, message):
    run = emu("trace", *arguments, str(amx_first_use()))
    assert run.returncode == 2
    assert len(run.stderr_lines) == 1 and message in run.stderr_lines[0] and "Traceback" not in run.stderr.decode()


def test_tracing_off_installs_nothing():
    """Off: no sink and no Python code hook, so the hot path is the C block hook
    alone; on: exactly one extra hook per traced vCPU."""
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.trace import Tracer
    machine = Machine(cpus=2, memory_bytes=64 << 20)
    assert machine.events is None
    hooks_off = [len(vcpu.uc._callbacks) for vcpu in machine.vcpus]
    Tracer(machine, sinks=[]).install()
    assert machine.events is not None
    assert [len(vcpu.uc._callbacks) for vcpu in machine.vcpus] == [count + 1 for count in hooks_off]


def test_text_format_is_coloured_on_a_terminal():
    import pty
    import subprocess
    import sys
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run([sys.executable, "-m", "emu_x86.emucli", "trace", "--events-only", "--format", "text",
                                  str(amx_first_use())], stdout=terminal, stderr=subprocess.PIPE, cwd=REPO,
                                 timeout=60, check=False)
        os.close(terminal)
        terminal = None
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    assert process.returncode == 0
    assert b"\x1b[1;33m== nm_handled" in output


def test_several_cpus_trace_in_cycle_order_and_help_names_the_command():
    """Issue 21: the records of all vCPUs form one stream in cycle order (each
    vCPU's quantum no longer comes out as a block), and emu trace is a listed
    subcommand with its own usage line."""
    binary = str(two_threads())
    trace = records(emu("trace", "--cpus", "2", binary), status=3)
    cycles = [record["cycle"] for record in trace]
    assert {record["cpu"] for record in trace} == {0, 1}
    assert cycles == sorted(cycles)
    text = emu("trace", "--cpus", "2", "--format", "text", "--events-only", binary)
    stamps = [int(line.split()[0]) for line in text.stdout.decode().splitlines() if " cpu" in line]
    assert stamps and stamps == sorted(stamps)
    assert "trace" in emu("--help").stdout.decode().split("positional arguments")[1]
    assert emu("trace", "--help").stdout.decode().startswith("usage: emu trace")
    assert emu("strace", "--help").stdout.decode().startswith("usage: emu strace")


def test_syscall_events_carry_only_the_calls_own_arguments():
    """A call's event shows its own arguments (madvise three, not what an earlier
    mmap left in R10/R8/R9: issue 21); undecoded calls keep all six."""
    binary = str(two_threads())
    events = records(emu("trace", "--events-only", binary), status=3)
    calls = {record["name"]: record for record in events if record["type"] == "syscall"}
    assert len(calls["madvise"]["args"]) == 3 and len(calls["mmap"]["args"]) == 6
    assert len(calls["exit_group"]["args"]) == 1
    assert len(calls["set_robust_list"]["args"]) == 2
    assert len(calls["futex"]["args"]) == 6
