"""Schedule exploration: seeded policies that make concurrency bugs show up.

The default machine scheduler (``Machine._run_loop``) runs the vCPU with the
smallest clock until a quantum, an interrupt or the lookahead bound ends its
run, always at a block boundary; a load/modify/store sequence on one vCPU
never overlaps one on another, and a racy guest passes every run. An
exploring policy (``emu run --sched random|pct --seed N``) takes over three
choices, each a pure function of its seed so a failing schedule replays
byte for byte:

- which vCPU runs next, among those the conservative time bounds allow to
  run (``Machine._exploration_candidates``: every vCPU's clock, IPI arrival
  and timer keep their meaning, only the order of runs inside the
  lookahead window changes);
- how many instructions it runs before the next preemption point: a C
  per-instruction hook (emu_x86/emu/timing/preempt.c) ends a run after any
  instruction, inside a block, so accesses around atomic and locked
  instructions (each one instruction, so never split) and around SYSCALL
  interleave with the other vCPUs';
- at the kernel's decision points (emu_x86/kernel/sched_explore.py), whether the
  running task is preempted (at such an instruction boundary, on return
  from a system call, inside an rseq critical section), where a woken task
  is placed, and which queued task runs next.

``random`` (rr's chaos mode in spirit): uniform vCPU choice, log-uniform
run lengths from 1 to ``RANDOM_BUDGET_MAX_INSTRUCTIONS``, task preemptions
with fixed probabilities. ``pct`` (Burckhardt et al., "A Randomized
Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010):
every guest thread gets a random priority above ``depth`` when first seen;
the highest-priority runnable thread runs; at ``depth - 1`` change points
drawn uniformly from the first ``steps`` scheduling steps the running
thread's priority drops to ``depth - i``, below every initial one. As in
the paper a step is one instruction (here: one retired while several tasks
are runnable), and the machine's time bounds still force a lower-priority
vCPU to run when the higher one is a lookahead ahead of it: PCT's order
holds within that window.

While a single task is runnable on the whole machine there is nothing to
order: the machine runs it as the default scheduler does (no policy step,
budget or preemption point; Machine._run_single_task).

Memory stays sequentially consistent: each vCPU's stores are visible to the
others as soon as its instruction retires. x86-TSO store buffering (a store
followed by a load of another address on the same CPU appearing reordered,
SDM Vol. 3A §9.2.3.4) is not modelled, so bugs that need it stay out of scope.
"""
from __future__ import annotations

import math
import random

POLICIES = ("default", "random", "pct")

RANDOM_BUDGET_MAX_INSTRUCTIONS = 4096
# While other tasks wait for a vCPU's CPU, its runs are shorter: only a task
# preemption interleaves threads that share a CPU, and one needs a
# preemption point inside the window that matters.
RANDOM_CONTENDED_BUDGET_MAX_INSTRUCTIONS = 128
_RANDOM_BUDGET_BITS = math.log2(RANDOM_BUDGET_MAX_INSTRUCTIONS)
_RANDOM_CONTENDED_BUDGET_BITS = math.log2(RANDOM_CONTENDED_BUDGET_MAX_INSTRUCTIONS)
# Chance that an instruction-budget stop also preempts the running task
# (when another task waits for that CPU, or always inside an rseq critical
# section, where a preemption means an abort on the way back).
RANDOM_TASK_PREEMPT_PROBABILITY = 0.5
RANDOM_RSEQ_PREEMPT_PROBABILITY = 0.5
# Chance that a wake-up places the task on a random allowed CPU instead of
# select_task_rq's choice (the wake-up migration decision point).
RANDOM_WAKE_MIGRATE_PROBABILITY = 0.5

PCT_DEFAULT_DEPTH = 3
# PCT's k when the program's is not known (--sched-steps): instructions run
# while several tasks are runnable. `emu test` measures it per program
# (emu_x86/emucli/guesttest.py, a first run), as the PCT paper assumes k known.
PCT_DEFAULT_STEPS = 1_000_000
# A thread that runs this many instructions in a row while others wait for
# its CPU is spinning on something a lower-priority thread must do (PCT
# assumes threads that block; a spin-wait under strict priorities never
# ends). It drops below every other thread and gives way: the fairness
# fallback CHESS's fair scheduler and Coyote's liveness checks use for the
# same reason.
PCT_STARVATION_INSTRUCTIONS = 20_000
# While several vCPUs may run, a run also ends after a log-uniform 1..this
# many instructions: the machine's time bounds switch vCPUs only between
# blocks, and a switch inside a block is what lets two vCPUs' accesses
# interleave there.
PCT_STEP_MAX_INSTRUCTIONS = 1024


class ExplorationPolicy:
    """Base of the exploring policies. Owns its random stream (seeded from
    its name and ``seed`` only: ``random.Random`` of a str hashes it with
    SHA-512, the same in every process) and the counters in ``stats``."""

    name = ""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(f"{self.name}:{seed}")
        self.steps = 0                  # runs the policy chose
        self.preemptions = 0            # runs ended by the instruction budget
        self.task_preemptions = 0       # tasks preempted at the kernel's decision points
        self.wake_migrations = 0        # wake-ups placed off select_task_rq's choice
        self.explored_instructions = 0  # retired in runs the policy budgeted (several tasks runnable)
        # The kernel's answer to "which guest thread runs on CPU n" (tid or
        # None when idle); set by the kernel that drives the machine.
        self.current_tid = lambda cpu: None
        # ... and how many tasks wait in CPU n's run queue.
        self.queued_count = lambda cpu: 0
        # ... and whether a single task is runnable on the whole machine (and
        # it is not in an rseq critical section, where a preemption is a
        # decision of its own): then the machine runs it as the default
        # scheduler does, with no step, budget or preemption point.
        self.single_task = lambda: False
        self.single_task_runs = 0       # runs made that way
        self.hook_changes = 0           # preemption hooks removed or put back (Machine._run_single_task)

    # ---- the machine's choices ----------------------------------------------

    def choose_vcpu(self, candidates: list):
        raise NotImplementedError

    def budget_instructions(self, vcpu) -> int:
        raise NotImplementedError

    def run_ended(self, vcpu, preempted: bool, retired: int = 0) -> None:
        """``vcpu``'s run ended, having retired ``retired`` instructions;
        ``preempted``: by its instruction budget."""
        if preempted:
            self.preemptions += 1
        self.explored_instructions += retired

    # ---- the kernel's decision points -----------------------------------------

    def preempt_task(self, cpu: int, queued_tids: list[int], point: str) -> bool:
        """Whether the task running on ``cpu`` gives way at decision point
        ``point`` ("instruction", "syscall_exit", "wake_up", "rseq")."""
        raise NotImplementedError

    def pick_task(self, cpu: int, queued_tids: list[int]) -> int:
        """Index into ``queued_tids`` of the task ``cpu`` runs next."""
        return 0

    def place_woken_task(self, allowed_cpus: list[int], chosen_cpu: int) -> int:
        return chosen_cpu

    def stats(self) -> dict:
        return {"policy": self.name, "seed": self.seed, "steps": self.steps,
                "preemptions": self.preemptions + self.task_preemptions,
                "instruction_preemptions": self.preemptions, "task_preemptions": self.task_preemptions,
                "wake_migrations": self.wake_migrations, "explored_instructions": self.explored_instructions,
                "single_task_runs": self.single_task_runs,
                "hook_changes": self.hook_changes}


class RandomPolicy(ExplorationPolicy):
    name = "random"

    def choose_vcpu(self, candidates: list):
        self.steps += 1
        return candidates[self.rng.randrange(len(candidates))] if len(candidates) > 1 else candidates[0]

    def budget_instructions(self, vcpu) -> int:
        # Log-uniform: runs of a few instructions (which split a
        # read-modify-write) as often as runs of thousands (which let a
        # thread get through a whole critical section).
        exponent = self.rng.random() * (_RANDOM_CONTENDED_BUDGET_BITS if self.queued_count(vcpu.index)
                                        else _RANDOM_BUDGET_BITS)
        return max(1, int(2 ** exponent))

    def preempt_task(self, cpu: int, queued_tids: list[int], point: str) -> bool:
        if point == "rseq":
            return self.rng.random() < RANDOM_RSEQ_PREEMPT_PROBABILITY
        if not queued_tids:
            return False
        return self.rng.random() < RANDOM_TASK_PREEMPT_PROBABILITY

    def pick_task(self, cpu: int, queued_tids: list[int]) -> int:
        return self.rng.randrange(len(queued_tids)) if len(queued_tids) > 1 else 0

    def place_woken_task(self, allowed_cpus: list[int], chosen_cpu: int) -> int:
        if len(allowed_cpus) > 1 and self.rng.random() < RANDOM_WAKE_MIGRATE_PROBABILITY:
            cpu = allowed_cpus[self.rng.randrange(len(allowed_cpus))]
            if cpu != chosen_cpu:
                self.wake_migrations += 1
            return cpu
        return chosen_cpu


class PctPolicy(ExplorationPolicy):
    """PCT over guest threads. ``priorities``: tid -> priority (higher runs
    first); ``change_steps``: step -> the priority the thread that runs that
    step drops to. A step is one instruction retired while several tasks are
    runnable (PCT's k counts instructions): the runs the machine makes with a
    single runnable task have nothing to order and are not counted. Runs are
    as long as the machine's time bounds allow, so a run ends exactly at the
    next change point (its instruction budget) and otherwise where the
    default one would: between change points strict priorities decide
    everything, at the kernel's decision points."""

    name = "pct"

    def __init__(self, seed: int, depth: int = PCT_DEFAULT_DEPTH, steps: int = PCT_DEFAULT_STEPS):
        super().__init__(seed)
        if depth < 1:
            raise ValueError("--sched-depth must be at least 1")
        if steps < depth:
            raise ValueError("--sched-steps must be at least --sched-depth")
        self.depth = depth
        self.step_bound = steps
        points = sorted(self.rng.sample(range(1, steps + 1), depth - 1))
        # The i-th change point (from 1) lowers the running thread to depth - i.
        self.change_steps = {step: depth - i for i, step in enumerate(points, start=1)}
        self._next_changes = points             # still to come, in order
        self.changes_applied = 0
        self.priorities: dict[int, float] = {}
        self.starvation_demotions = 0
        # cpu -> (tid, instructions it ran while others waited for that CPU)
        self._streak: dict[int, tuple[int | None, int]] = {}
        self._run: tuple[int | None, int] = (None, 0)   # (tid, queued) of the run under way
        self._several_vcpus = False                     # the last choice had several candidates

    def priority(self, tid: int | None) -> float:
        if tid is None:
            return -1.0
        priority = self.priorities.get(tid)
        if priority is None:
            # Online PCT: a new thread's priority is uniform among the
            # initial ones (all above depth, so above every changed one).
            priority = self.priorities[tid] = self.depth + self.rng.random()
        return priority

    def choose_vcpu(self, candidates: list):
        self.steps += 1
        self._several_vcpus = len(candidates) > 1
        return max(candidates, key=lambda vcpu: (self.priority(self.current_tid(vcpu.index)), -vcpu.index))

    def budget_instructions(self, vcpu) -> int | None:
        """Up to the next change point; while others wait for this CPU, up to
        where the running thread counts as starving them too; while other
        vCPUs could run, at most a log-uniform 1..PCT_STEP_MAX_INSTRUCTIONS.
        None: no budget (the run ends where the default scheduler's would)."""
        cpu = vcpu.index
        tid, queued = self.current_tid(cpu), self.queued_count(cpu)
        self._run = (tid, queued)
        budget = None
        if self._several_vcpus:
            budget = max(1, int(2 ** (self.rng.random() * math.log2(PCT_STEP_MAX_INSTRUCTIONS))))
        if self._next_changes:
            left = max(1, self._next_changes[0] - self.explored_instructions)
            budget = left if budget is None else min(budget, left)
        if queued and tid is not None:
            last, streak = self._streak.get(cpu, (None, 0))
            left = PCT_STARVATION_INSTRUCTIONS - (streak if last == tid else 0)
            budget = max(1, left) if budget is None else max(1, min(budget, left))
        return budget

    def run_ended(self, vcpu, preempted: bool, retired: int = 0) -> None:
        super().run_ended(vcpu, preempted, retired)
        tid, queued = self._run
        while self._next_changes and self._next_changes[0] <= self.explored_instructions:
            # The thread that ran the change point's instruction drops.
            step = self._next_changes.pop(0)
            if tid is not None:
                self.priorities[tid] = self.change_steps[step]
                self.changes_applied += 1
        if queued and tid is not None:
            last, streak = self._streak.get(vcpu.index, (None, 0))
            self._streak[vcpu.index] = (tid, streak + retired if last == tid else retired)
        else:
            self._streak.pop(vcpu.index, None)

    def _best_queued(self, queued_tids: list[int]) -> int:
        return max(range(len(queued_tids)), key=lambda i: (self.priority(queued_tids[i]), -i))

    def preempt_task(self, cpu: int, queued_tids: list[int], point: str) -> bool:
        if not queued_tids:
            return False
        tid = self.current_tid(cpu)
        if point == "instruction" and tid is not None:
            last, streak = self._streak.get(cpu, (None, 0))
            if last == tid and streak >= PCT_STARVATION_INSTRUCTIONS:
                # Spinning for a lower-priority thread: it gives way for good.
                self.priorities[tid] = min(self.priorities.values()) - 1
                self.starvation_demotions += 1
                self._streak.pop(cpu, None)
                return True
        best = self.priority(queued_tids[self._best_queued(queued_tids)])
        return best > self.priority(tid)

    def pick_task(self, cpu: int, queued_tids: list[int]) -> int:
        return self._best_queued(queued_tids) if len(queued_tids) > 1 else 0

    def stats(self) -> dict:
        return {**super().stats(), "depth": self.depth, "step_bound": self.step_bound,
                "change_steps": sorted(self.change_steps), "changes_applied": self.changes_applied,
                "starvation_demotions": self.starvation_demotions}


def make_policy(name: str, seed: int, depth: int = PCT_DEFAULT_DEPTH,
                steps: int = PCT_DEFAULT_STEPS) -> ExplorationPolicy | None:
    """The policy called ``name`` (None for the default scheduler)."""
    if name == "default":
        return None
    if name == "random":
        return RandomPolicy(seed)
    if name == "pct":
        return PctPolicy(seed, depth, steps)
    raise ValueError(f"unknown --sched policy {name!r} (one of {', '.join(POLICIES)})")
