"""Threads on several vCPUs: clone, futex wait/wake, CLONE_CHILD_CLEARTID, deterministic runs."""
import json

import pytest

from tests.guestbuild import REPO, build_asm, emu, native

CLONE_FUTEX = (REPO / "guest" / "tests" / "threads" / "clone_futex.S").read_text()


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_clone_and_futex_join(cpus, tmp_path):
    binary = build_asm(CLONE_FUTEX)
    assert native(binary).returncode == 42
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", str(cpus), "--stats", str(stats_path), str(binary))
    assert result.returncode == 42, result.stderr
    stats = json.loads(stats_path.read_text())
    assert len(stats["per_cpu"]) == cpus
    if cpus > 1:
        # The child ran on another CPU, woken there by a reschedule IPI.
        assert stats["per_cpu"][1]["instructions"] > 0
        assert stats["ipis"] >= 1


def test_same_run_twice_gives_identical_stats_with_four_cpus(tmp_path):
    binary = build_asm(CLONE_FUTEX)
    outputs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        emu("run", "--cpus", "4", "--stats", str(path), str(binary))
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
