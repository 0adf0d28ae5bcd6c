"""Regression: vCPUs waiting for smp_call_function acknowledgements (here, the
TLB-flush IPIs of vfree purges) stalled the machine.

1. A waiting vCPU bounded the others by its own clock even when the CPU it
   waited for was already past that clock: nobody could run, forever
   (fixed: Machine._resume_bound_cycles).
2. Two vCPUs purging at once each waited for the other, and a waiting vCPU
   never took interrupts: every vCPU stopped and the run ended early with
   exit 0 and no output (fixed: a waiting vCPU still receives IPIs, as Linux
   spins in csd_lock_wait with interrupts enabled)."""
import json

from tests.guestbuild import REPO, build, emu

CHURN = REPO / "guest" / "tests" / "amx" / "amx_churn.c"
FLAGS = ["-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8"]


def run(tmp_path, cmdline, *args):
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cpus", "4", "--stats", str(stats_path), "--cmdline", cmdline,
                 str(build(CHURN.read_text(), ".c", FLAGS)), *args, timeout=90)
    return result, json.loads(stats_path.read_text())


def test_waiting_cpu_behind_its_target_does_not_stall_the_machine(tmp_path):
    result, stats = run(tmp_path, "lazy_max_pages=16", "24", "4", "3", "2")
    assert result.stdout == b"churn ok: 24 threads, 16 amx, 8 plain\n", result.stderr
    assert stats["vmalloc_purges"] == 3


def test_cpus_purging_at_the_same_time_serve_each_others_ipis(tmp_path):
    result, stats = run(tmp_path, "lazy_max_pages=0", "64", "8")
    assert result.stdout == b"churn ok: 64 threads, 64 amx, 0 plain\n", result.stderr
    assert stats["vmalloc_purges"] == 64 and stats["vfree_ipis"] == 3 * 64
