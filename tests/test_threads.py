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


def test_glibc_pthreads_counters_on_four_cpus(tmp_path):
    from tests.guestbuild import build_c
    binary = build_c((REPO / "guest" / "tests" / "threads" / "pthread_counters.c").read_text(), "-pthread")
    expected = b"mutex=800000 atomic=800000 joined=8\n"
    assert native(binary).stdout == expected
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "4", "--stats", str(stats_path), str(binary))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    stats = json.loads(stats_path.read_text())
    assert stats["threads_created"] == 8
    assert stats["context_switches"] > 0 and stats["migrations"] > 0
    assert all(cpu["instructions"] > 0 for cpu in stats["per_cpu"])


def test_rseq_percpu_counters_abort_on_preemption_and_stay_exact(tmp_path):
    from tests.guestbuild import build_c
    binary = build_c((REPO / "guest" / "tests" / "threads" / "rseq_percpu.c").read_text(), "-pthread", "-O2")
    expected = b"total=240000 threads=6\n"
    assert native(binary).stdout == expected
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "2", "--cmdline", "sched_quantum=20000", "--stats", str(stats_path), str(binary))
    assert result.stdout == expected, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["rseq_aborts"] > 0
    assert stats["preemptions"] > 0


def test_live_amx_tiles_survive_yield_and_preemption_on_two_cpus(tmp_path):
    from tests.guestbuild import build
    source = (REPO / "guest" / "tests" / "amx" / "threads_tiles.c").read_text()
    binary = build(source, ".c", ["-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8"])
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "2", "--cmdline", "sched_quantum=100000", "--stats", str(stats_path), str(binary))
    assert result.stdout == b"tiles ok: 4 of 4 threads\n", result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["nm_faults"] == 4 and stats["xstate_allocs"] == 4       # first use, once per thread
    assert stats["preemptions"] > 0 and stats["context_switches"] > 0
    assert stats["xsaves"] > 0 and stats["xrstors"] > 0


def test_restore_skipped_when_the_cpu_still_holds_the_task_registers(tmp_path):
    from tests.guestbuild import build_c
    binary = build_c((REPO / "guest" / "tests" / "threads" / "pthread_counters.c").read_text(), "-pthread")
    stats_path = tmp_path / "s.json"
    emu("run", "--cpus", "4", "--stats", str(stats_path), str(binary))
    stats = json.loads(stats_path.read_text())
    assert stats["xrstors_skipped"] > 0
    assert stats["xrstors"] + stats["xrstors_skipped"] >= stats["context_switches"]


def test_membarrier_private_expedited_ipis_the_other_cpu(tmp_path):
    from tests.guestbuild import build_c
    binary = build_c((REPO / "guest" / "tests" / "threads" / "membarrier.c").read_text(), "-pthread")
    expected = b"query ok, unregistered EPERM, registered 0, done\n"
    assert native(binary).stdout == expected
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "2", "--stats", str(stats_path), str(binary))
    assert result.stdout == expected, result.stderr
    stats = json.loads(stats_path.read_text())
    # Reschedule IPIs start the spinner and wake the joining main thread; the
    # membarrier IPI goes to the spinner's CPU: three in all.
    assert stats["ipis"] == 3
    assert stats["per_cpu"][0]["events"]["ipi_send"] == 2


def test_sched_setaffinity_moves_the_thread_and_every_cpu_number_agrees():
    from tests.guestbuild import build_c
    binary = build_c((REPO / "guest" / "tests" / "threads" / "affinity.c").read_text())
    result = emu("run", "--cpus", "4", str(binary))
    assert result.stdout == b"cpu 3 3 3, cpu 1 1 1, cpu 2 2 2, cpu 0 0 0\n", result.stderr


def test_sixty_four_cpus_run_a_threaded_program(tmp_path):
    """The largest machine: every thread runs, the result is exact, and the
    TLB-model counters of CPUs that ran user code show their walks."""
    binary = build_asm(CLONE_FUTEX)
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "64", "--stats", str(stats_path), str(binary))
    assert result.returncode == 42, result.stderr
    stats = json.loads(stats_path.read_text())
    assert len(stats["per_cpu"]) == 64
    ran = [cpu for cpu in stats["per_cpu"] if cpu["instructions"]]
    assert len(ran) >= 2
    assert all(cpu["tlb_misses"] >= 1 and cpu["page_walk_reads"] >= 4 for cpu in ran)
