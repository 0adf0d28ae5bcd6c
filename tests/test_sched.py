"""Per-CPU run queues: placement, periodic load balance, idle pulls, affinity, determinism.

The guests record the CPUs they ran on through RDTSCP (IA32_TSC_AUX), so
these tests check what the guest observed, next to the scheduler's counters.
"""
import json
import re

import pytest

from tests.guestbuild import REPO, build_c, emu

SPREAD = REPO / "guest" / "tests" / "sched" / "spread.c"
BALANCE = REPO / "guest" / "tests" / "sched" / "balance.c"
SHORT_TICK = "sched_quantum=200000"


def cpus_seen(stdout: bytes) -> dict[int, int]:
    """{thread or worker index: mask of CPUs it ran on} from the guests' output."""
    return {int(index): int(mask, 16)
            for index, mask in re.findall(rb"(?:thread|worker) (\d+) cpus=(0x[0-9a-f]+)", stdout)}


def run(tmp_path, binary, *args, cpus=4, cmdline=SHORT_TICK, name="s"):
    stats_path = tmp_path / f"{name}.json"
    result = emu("run", "--cpus", str(cpus), "--cmdline", cmdline, "--stats", str(stats_path), str(binary), *args)
    assert result.returncode == 0, result.stderr
    return result, json.loads(stats_path.read_text())


@pytest.mark.parametrize("pinned_cpu", [1, 3])
def test_cpu_bound_threads_spread_over_every_cpu_and_the_pinned_one_stays(tmp_path, pinned_cpu):
    binary = build_c(SPREAD.read_text(), "-pthread")
    result, stats = run(tmp_path, binary, str(pinned_cpu))
    assert result.stdout.endswith(f"pinned={pinned_cpu} violations=0 checksum=ok\n".encode())
    seen = cpus_seen(result.stdout)
    assert len(seen) == 8
    assert seen[0] == 1 << pinned_cpu            # RDTSCP, getcpu(2) and rseq all agreed, every sample
    union = 0
    for mask in seen.values():
        union |= mask
    assert union == 0b1111
    # Eight equal threads on four CPUs: every CPU carries a real share of the work.
    total = stats["instructions"]
    assert all(cpu["instructions"] > total // 8 for cpu in stats["per_cpu"]), stats["per_cpu"]
    assert stats["threads_created"] == 8


def test_periodic_balance_spreads_tasks_queued_on_one_cpu(tmp_path):
    binary = build_c(BALANCE.read_text(), "-pthread")
    result, stats = run(tmp_path, binary, "balance", "4")
    seen = cpus_seen(result.stdout)
    # All four were queued on CPU 0; only the tick's balance could move three of them.
    assert sorted(seen.values()) == [1, 2, 4, 8]
    assert stats["load_balance_migrations"] == 3
    assert stats["idle_pulls"] == 0
    assert all(cpu["instructions"] > 0 for cpu in stats["per_cpu"])


def test_periodic_balance_needs_the_tick_to_move_anything(tmp_path):
    """With a tick longer than the whole run, the same program stays on CPU 0."""
    binary = build_c(BALANCE.read_text(), "-pthread")
    result, stats = run(tmp_path, binary, "balance", "4", cmdline="sched_quantum=100000000")
    assert set(cpus_seen(result.stdout).values()) == {1}
    assert stats["load_balance_migrations"] == 0
    assert [cpu["instructions"] > 0 for cpu in stats["per_cpu"]] == [True, False, False, False]


def test_balance_never_moves_a_task_its_affinity_keeps_on_cpu0(tmp_path):
    binary = build_c(BALANCE.read_text(), "-pthread")
    result, stats = run(tmp_path, binary, "balance-pinned", "8")
    seen = cpus_seen(result.stdout)
    assert seen[1] == 0b0001                     # pinned, though first in line to be moved
    union = 0
    for index, mask in seen.items():
        if index != 1:
            union |= mask
    assert union == 0b1111
    assert stats["load_balance_migrations"] > 0


def test_a_cpu_going_idle_pulls_a_waiting_task(tmp_path):
    binary = build_c(BALANCE.read_text(), "-pthread")
    # Default tick (2 ms): the run ends before CPU 0's first periodic balance.
    result, stats = run(tmp_path, binary, "idle-pull", "3", cpus=2, cmdline="")
    assert result.stdout.endswith(b"union=0x3 checksum=ok\n")
    seen = cpus_seen(result.stdout)
    assert any(mask & 0b10 for mask in seen.values())   # a worker queued on CPU 0 ran on CPU 1
    assert stats["idle_pulls"] >= 1
    assert stats["load_balance_migrations"] == 0


def test_two_runs_give_identical_output_and_stats(tmp_path):
    binary = build_c(SPREAD.read_text(), "-pthread")
    first, first_stats = run(tmp_path, binary, "2", name="a")
    second, _ = run(tmp_path, binary, "2", name="b")
    assert first.stdout == second.stdout
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first_stats["preemptions"] > 0


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_sched_quantum_is_a_one_line_usage_error(value):
    result = emu("run", "--cmdline", f"sched_quantum={value}", str(REPO / "guest" / "examples" / "hello.S"))
    assert result.returncode == 2
    reason = "not an integer" if value == "abc" else "must be positive"
    assert result.stderr_lines == [f"emu: --cmdline: sched_quantum={value}: {reason}"]
