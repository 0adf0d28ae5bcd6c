"""cpu_opv (the 2018 proposal, opt-in with --cmdline cpu_opv=on): ABI, errors,
migration to the requested CPU, rseq fast path + cpu_opv slow path, cost."""
import json
import re

import pytest

from emu_x86.emu.timing.profile import load_profile
from tests.guestbuild import REPO, build_c, emu

SOURCE = REPO / "guest" / "tests" / "threads" / "cpu_opv.c"
EXPECTED = b"nr_ops=10\nerrors ok\ncompare ok\nops ok\nmigrated ok\ntotal=16000 threads=4\n"


def binary():
    return build_c(SOURCE.read_text(), "-pthread", "-O2")


@pytest.mark.parametrize("cpus,cmdline", [(2, "cpu_opv=on"), (4, "cpu_opv=on"),
                                          (2, "cpu_opv=on sched_quantum=20000")])
def test_cpu_opv_abi_errors_migration_and_percpu_counters(tmp_path, cpus, cmdline):
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", str(cpus), "--cmdline", cmdline, "--stats", str(stats_path), str(binary()))
    assert result.stdout == EXPECTED, result.stdout + result.stderr
    assert result.returncode == 0
    stats = json.loads(stats_path.read_text())
    # 4 threads x 4000 increments, every 8th through cpu_opv (compare + store, 4 pointers pinned).
    assert stats["cpu_opv_calls"] >= 2000
    assert stats["cpu_opv_pages_pinned"] >= 4 * 2000
    # check_migration: a hop to every other CPU twice round, plus one onto a busy CPU.
    assert stats["cpu_opv_migrations"] == 2 * cpus + 1
    assert stats["migrations"] >= stats["cpu_opv_migrations"]
    assert stats["cpu_opv_cycles"] > 0
    assert sum(cpu["events"].get("cpu_opv_pin_page", 0) for cpu in stats["per_cpu"]) == stats["cpu_opv_pages_pinned"]


def test_cpu_opv_is_an_unknown_syscall_unless_enabled():
    result = emu("run", "--cpus", "2", str(binary()))
    assert result.returncode == 3
    assert result.stdout == b"cpu_opv: ENOSYS\n"
    assert "unimplemented syscall 335" in result.stderr.decode()


def test_cpu_opv_off_is_the_default_and_bad_values_are_usage_errors():
    assert emu("run", "--cmdline", "cpu_opv=off", str(binary())).returncode == 3
    result = emu("run", "--cmdline", "cpu_opv=maybe", str(binary()))
    assert result.returncode == 2
    assert result.stderr_lines == [
        "emu: --cmdline: cpu_opv=maybe: unknown value (one of: on, off)"]


def test_cpu_opv_cost_beside_the_rseq_fast_path(tmp_path):
    """The slow path costs the syscall, one pin per pointer and the operations;
    a migration adds an IPI round trip; rseq's fast path is a few instructions."""
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "2", "--cmdline", "cpu_opv=on", "--stats", str(stats_path), str(binary()),
                 "measure")
    assert result.returncode == 0, result.stderr
    match = re.search(rb"rseq=(\d+) cpu_opv_local=(\d+) cpu_opv_migrating=(\d+)", result.stdout)
    rseq, local, migrating = (int(value) for value in match.groups())
    profile = load_profile("spr")
    # cmpeqv_storev: compare (2 pointers) + memcpy (2 pointers), one cache line each.
    kernel_cycles = (profile.event_cycles("syscall") + 4 * profile.event_cycles("cpu_opv_pin_page")
                     + 2 * profile.event_cycles("cpu_opv_op_line"))
    assert rseq < 50
    assert kernel_cycles <= local < kernel_cycles + 200
    assert migrating > local + profile.event_cycles("ipi_latency")
    stats = json.loads(stats_path.read_text())
    assert stats["cpu_opv_calls"] == 400 and stats["cpu_opv_migrations"] == 200
    assert stats["cpu_opv_pages_pinned"] == 1600


def test_cpu_opv_runs_are_deterministic(tmp_path):
    outputs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        result = emu("run", "--cpus", "2", "--cmdline", "cpu_opv=on", "--stats", str(path), str(binary()), "measure")
        outputs.append((result.stdout, path.read_bytes()))
    assert outputs[0] == outputs[1]
