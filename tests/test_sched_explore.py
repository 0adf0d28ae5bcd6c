"""Schedule exploration (issue 24): `emu run --sched random|pct --seed N`.

The policies' choices are functions of the seed alone; a seed that breaks a
racy program replays byte for byte (stdout, stats, trace); the default
scheduler installs nothing (no per-instruction hook, no "sched" statistics);
the guest-test directives EXPECT-RACE:/SCHEDULES: parse and explore.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emu_x86.emu.machine import Machine
from emu_x86.emu.sched_policy import PCT_STARVATION_INSTRUCTIONS, PCT_STEP_MAX_INSTRUCTIONS, PctPolicy, RandomPolicy, make_policy
from emu_x86.emucli import guesttest
from tests.guestbuild import build_c, emu

RACY_COUNTER = r"""
#include <pthread.h>
#include <stdio.h>
static volatile long counter;
static void *worker(void *arg) { for (int i = 0; i < 3000; i++) counter = counter + 1; return arg; }
int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("counter=%ld\n", counter);
    return 0;
}
"""


class FakeVcpu:
    def __init__(self, index: int):
        self.index = index


def test_random_policy_is_a_function_of_its_seed():
    def choices(seed):
        policy = RandomPolicy(seed)
        vcpus = [FakeVcpu(i) for i in range(4)]
        return [(policy.choose_vcpu(vcpus).index, policy.budget_instructions(vcpus[0])) for _ in range(200)]
    assert choices(5) == choices(5)
    assert choices(5) != choices(6)
    budgets = [budget for _, budget in choices(5)]
    assert min(budgets) >= 1 and max(budgets) <= 4096
    assert any(budget <= 8 for budget in budgets), "runs of a few instructions split read-modify-writes"


def test_pct_change_points_lower_the_running_thread_below_every_initial_priority():
    policy = PctPolicy(seed=3, depth=3, steps=10)
    assert len(policy.change_steps) == 2 and all(1 <= step <= 10 for step in policy.change_steps)
    running = {0: 100, 1: 101}
    policy.current_tid = running.get
    vcpus = [FakeVcpu(0), FakeVcpu(1)]
    first = min(policy.change_steps)
    # A step is an instruction: the budget ends the run exactly at the first change point.
    chosen = policy.choose_vcpu(vcpus[:1])
    assert policy.budget_instructions(chosen) == first
    policy.run_ended(chosen, preempted=True, retired=first)
    assert policy.changes_applied == 1 and policy.priorities[running[chosen.index]] == 2
    for _ in range(10):
        chosen = policy.choose_vcpu(vcpus)
        budget = policy.budget_instructions(chosen)
        assert 1 <= budget <= PCT_STEP_MAX_INSTRUCTIONS, "several vCPUs: runs end inside blocks too"
        policy.run_ended(chosen, preempted=True, retired=budget)
    assert policy.changes_applied == 2
    chosen = policy.choose_vcpu(vcpus[:1])
    assert policy.budget_instructions(chosen) is None, "one vCPU, no change point left: no budget"
    # Each change point dropped a thread to depth - i (2, then 1), below the initial ones (> depth).
    assert sorted(policy.priorities.values())[0] == 1
    assert policy.stats()["change_steps"] == sorted(policy.change_steps)


def test_pct_demotes_a_thread_that_spins_while_others_wait_for_its_cpu():
    policy = PctPolicy(seed=2, depth=1, steps=10)
    policy.current_tid = lambda cpu: 7
    policy.queued_count = lambda cpu: 1
    policy.priorities.update({7: 1.9, 8: 1.5})
    vcpu = FakeVcpu(0)
    budget = policy.budget_instructions(vcpu)
    assert budget == PCT_STARVATION_INSTRUCTIONS
    policy.run_ended(vcpu, preempted=True, retired=budget)
    assert policy.preempt_task(0, [8], "instruction")
    assert policy.starvation_demotions == 1 and policy.priorities[7] < policy.priorities[8]


def test_pct_preempts_only_for_a_higher_priority_waiter():
    policy = PctPolicy(seed=1, depth=2, steps=5)
    policy.current_tid = lambda cpu: 7
    policy.priorities.update({7: 2.5, 8: 2.1, 9: 2.9})
    assert not policy.preempt_task(0, [8], "syscall_exit")
    assert policy.preempt_task(0, [8, 9], "syscall_exit")
    assert policy.pick_task(0, [8, 9]) == 1


def test_make_policy_names():
    assert make_policy("default", 1) is None
    with pytest.raises(ValueError):
        make_policy("fair", 1)
    with pytest.raises(ValueError):
        make_policy("pct", 1, depth=0)


def test_default_machine_installs_no_preemption_hook():
    machine = Machine(cpus=2, memory_bytes=16 << 20)
    try:
        assert all(vcpu.preempt is None for vcpu in machine.vcpus)
    finally:
        machine.close()
    explored = Machine(cpus=2, memory_bytes=16 << 20, sched_policy=RandomPolicy(1))
    try:
        assert all(vcpu.preempt is not None for vcpu in explored.vcpus)
    finally:
        explored.close()


def test_default_scheduler_hides_the_race_and_writes_no_sched_stats(tmp_path):
    binary = build_c(RACY_COUNTER, "-pthread")
    stats = tmp_path / "stats.json"
    run = emu("run", "--cpus", "4", "--stats", str(stats), str(binary))
    assert run.returncode == 0
    assert run.stdout == b"counter=12000\n"
    assert "sched" not in json.loads(stats.read_text())


@pytest.mark.parametrize("policy", ["random", "pct"])
def test_an_exploring_policy_loses_updates_and_replays_byte_for_byte(tmp_path, policy):
    binary = build_c(RACY_COUNTER, "-pthread")
    lost_at = None
    for seed in range(1, 11):
        run = emu("run", "--cpus", "4", "--sched", policy, "--seed", str(seed), str(binary))
        assert run.returncode == 0
        if run.stdout != b"counter=12000\n":
            lost_at = seed
            break
    assert lost_at is not None, f"no seed of 1..10 lost an update under --sched {policy}"
    outputs = []
    for attempt in range(2):
        stats, trace = tmp_path / f"stats{attempt}.json", tmp_path / f"trace{attempt}.jsonl"
        run = emu("run", "--cpus", "4", "--sched", policy, "--seed", str(lost_at), "--stats", str(stats),
                  "--trace", str(trace), str(binary))
        outputs.append((run.returncode, run.stdout, stats.read_bytes(), trace.read_bytes()))
    assert outputs[0] == outputs[1]
    recorded = json.loads(outputs[0][2])["sched"]
    assert recorded["policy"] == policy and recorded["seed"] == lost_at
    assert recorded["preemptions"] > 0
    assert outputs[0][3], "the trace recorded events"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_expect_race_and_schedules_directives_make_exploration_variants(tmp_path):
    path = _write(tmp_path, "t.c", "/* CPUS: 2 4\n * STDOUT: x\n * EXPECT-RACE: 10 random pct\n"
                                   " * SCHEDULES: 5\n */\nint main(void) { return 0; }\n")
    spec = guesttest.parse_spec(path)
    assert spec.races == [(10, "random"), (10, "pct")] and spec.schedules == [(5, "random")]
    ids = [variant.id for variant in spec.variants()]
    assert ids[:2] == ["cpus=2", "cpus=4"]
    assert "race=random:10-cpus=2" in ids and "race=pct:10-cpus=4" in ids and "schedules=random:5-cpus=4" in ids
    concrete = guesttest.Variant(cpus=2, sched="pct", seed=7)
    arguments = guesttest.run_arguments(spec, concrete, Path("prog"), None)
    assert arguments[arguments.index("--sched") + 1] == "pct" and arguments[arguments.index("--seed") + 1] == "7"


@pytest.mark.parametrize("line", ["EXPECT-RACE: many", "EXPECT-RACE: 10 fair", "SCHEDULES: 0"])
def test_bad_exploration_directives_are_header_errors(tmp_path, line):
    path = _write(tmp_path, "t.c", f"/* STDOUT: x\n * {line}\n */\nint main(void) {{ return 0; }}\n")
    with pytest.raises(guesttest.HeaderError):
        guesttest.parse_spec(path)


def test_expect_race_finds_the_lost_update_and_names_the_replay(tmp_path):
    source = _write(tmp_path, "racy.c", "/* CPUS: 4\n * STDOUT: counter=12000\n * EXPECT-RACE: 10 random\n */\n"
                    + RACY_COUNTER)
    spec = guesttest.parse_spec(source)
    race = next(variant for variant in spec.variants() if variant.explore == "race")
    outcome = guesttest.run_test(spec, race, tmp_path / "build", tmp_path)
    assert outcome.passed, outcome.report()
    assert "race found under --sched random --seed" in outcome.note
    assert "--sched random --seed" in outcome.reproduce


# A task alone for a while (the hook comes off), then two threads (it goes
# back on), then alone again.
ALONE_THEN_TOGETHER = r"""
#include <pthread.h>
#include <stdio.h>
static volatile long sink[3];
static void *spin(void *arg) { long x = 0; for (long i = 0; i < 100000; i++) x += i; *(long *)arg = x; return arg; }
int main(void) {
    spin((void *)&sink[0]);
    pthread_t t;
    pthread_create(&t, NULL, spin, (void *)&sink[1]);
    spin((void *)&sink[2]);
    pthread_join(t, NULL);
    printf("%ld\n", sink[0] + sink[1] + sink[2]);
    return 0;
}
"""


def _loop_machine(policy):
    from bench.__main__ import loop_bytes
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, ProgramImage, Segment
    machine = Machine(memory_bytes=64 << 20, sched_policy=policy)
    image = ProgramImage(path="loop", entry=0x401000,
                         segments=[Segment(0x401000, loop_bytes(0x401000), 0x1000, PROT_READ | PROT_EXEC)])
    kernel = Kernel(machine, KernelConfig(argv=["loop"], envp=[]))
    kernel.start_image(image, "loop")
    return machine


def test_a_single_runnable_task_runs_as_the_default_does_and_loses_the_hook():
    default = _loop_machine(None)
    policy = RandomPolicy(4)
    explored = _loop_machine(policy)
    try:
        default.run()
        explored.run()
        vcpu = explored.vcpus[0]
        assert vcpu.instructions == default.vcpus[0].instructions
        # No policy step, budget draw or preemption point while the task is alone ...
        assert policy.steps == 0 and policy.preemptions == 0 and policy.task_preemptions == 0
        assert policy.explored_instructions == 0 and policy.single_task_runs > 0
        # ... and after SINGLE_TASK_UNHOOK_INSTRUCTIONS the per-instruction hook is gone.
        assert policy.hook_changes == 1 and not vcpu.preempt_hooked
    finally:
        default.close()
        explored.close()


@pytest.mark.parametrize("policy", ["random", "pct"])
def test_the_hook_comes_back_with_company_and_the_run_replays(tmp_path, policy):
    binary = build_c(ALONE_THEN_TOGETHER, "-pthread")
    runs = []
    for attempt in range(2):
        stats = tmp_path / f"stats{attempt}.json"
        run = emu("run", "--cpus", "2", "--sched", policy, "--seed", "3", "--stats", str(stats), str(binary))
        assert run.returncode == 0 and run.stdout == b"14999850000\n"
        runs.append(stats.read_bytes())
    assert runs[0] == runs[1]
    sched = json.loads(runs[0])["sched"]
    # Off after the first spin alone, back on for the two threads (and maybe off at the end).
    assert sched["hook_changes"] >= 2
    assert sched["explored_instructions"] > 100_000 and sched["single_task_runs"] > 0


def test_sched_seed_seeds_the_policy_alone(tmp_path):
    binary = build_c(RACY_COUNTER, "-pthread")
    outputs = {}
    for name, options in (("seed", ["--seed", "5"]), ("both", ["--seed", "5", "--sched-seed", "5"]),
                          ("other", ["--seed", "9", "--sched-seed", "5"])):
        stats = tmp_path / f"{name}.json"
        run = emu("run", "--cpus", "4", "--sched", "random", *options, "--stats", str(stats), str(binary))
        assert run.returncode == 0
        outputs[name] = json.loads(stats.read_text())
    assert outputs["seed"] == outputs["both"], "--sched-seed defaults to --seed"
    # Another AT_RANDOM/getrandom seed, the same schedule: the racy counter
    # loses the same updates.
    assert outputs["other"]["sched"] == outputs["seed"]["sched"]
    assert outputs["other"]["instructions"] == outputs["seed"]["instructions"]


def test_pct_exploration_measures_k_and_names_it_in_the_replay(tmp_path):
    source = _write(tmp_path, "racy.c", "/* CPUS: 4\n * STDOUT: counter=12000\n * EXPECT-RACE: 10 pct\n */\n"
                    + RACY_COUNTER)
    spec = guesttest.parse_spec(source)
    race = next(variant for variant in spec.variants() if variant.explore == "race")
    steps, probe = guesttest.measure_pct_steps(spec, race, tmp_path / "build", tmp_path)
    assert probe.result.stats["sched"]["depth"] == 1, "the probe runs without change points"
    assert steps == probe.result.stats["sched"]["explored_instructions"] > 12000
    outcome = guesttest.run_test(spec, race, tmp_path / "build", tmp_path)
    assert outcome.passed, outcome.report()
    assert f"--sched-steps {steps}" in outcome.note and f"--sched-steps {steps}" in outcome.reproduce
