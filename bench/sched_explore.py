"""Cost of schedule exploration (issue 24): MIPS under ``--sched random`` and
``--sched pct`` against the default scheduler, each measured in this process
(best of REPEATS), on two programs:

- the compute loop (one task): with a single runnable task the exploring
  policies run as the default does (Machine._run_single_task) and take the
  per-instruction preemption hook off once the spell lasts, so the loop runs
  at nearly the default's speed;
- two threads, each running a compute loop on its own vCPU: every run is
  budgeted (random: log-uniform runs of 1..4096 instructions; pct: up to its
  next change point), the hook (emu_x86/emu/timing/preempt.c) costs each instruction
  a call, and each run goes back to Python for the next choice.
"""
from __future__ import annotations

import os
import tempfile
import time

LOOP_ITERATIONS = 1_000_000
REPEATS = 3
POLICIES = ("default", "random", "pct")

TWO_THREADS_PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
static volatile long sink[2][8];
static void *worker(void *arg)
{
    long x = 0;
    for (long i = 0; i < 1000000; i++)
        x += i ^ (x >> 3);
    *(long *)arg = x;
    return arg;
}
int main(void)
{
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, worker, (void *)sink[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("%ld\n", sink[0][0] + sink[1][0]);
    return 0;
}
"""


def loop_mips(policy_name: str, seed: int = 1) -> float:
    from bench.__main__ import loop_bytes
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.sched_policy import make_policy
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, ProgramImage, Segment
    source_address = 0x401000
    best = 0.0
    for _ in range(REPEATS):
        code = loop_bytes(source_address)
        # Same bytes as the compute loop, fewer iterations (mov ecx, imm32 is the first instruction).
        code = code[:1] + LOOP_ITERATIONS.to_bytes(4, "little") + code[5:]
        image = ProgramImage(path="loop", entry=source_address,
                             segments=[Segment(source_address, code, 0x1000, PROT_READ | PROT_EXEC)])
        machine = Machine(memory_bytes=64 << 20, sched_policy=make_policy(policy_name, seed))
        kernel = Kernel(machine, KernelConfig(argv=["loop"], envp=[]))
        kernel.start_image(image, "loop")
        start = time.perf_counter()
        machine.run()
        elapsed = time.perf_counter() - start
        best = max(best, machine.vcpus[0].instructions / elapsed / 1e6)
        machine.close()
    return best


def two_thread_mips(program: str, policy_name: str, seed: int = 1) -> float:
    """MIPS of Machine.run (all vCPUs' instructions) for the two-thread program on 2 vCPUs."""
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.sched_policy import make_policy
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    best = 0.0
    for _ in range(REPEATS):
        machine = Machine(cpus=2, memory_bytes=256 << 20, sched_policy=make_policy(policy_name, seed))
        try:
            with open(os.devnull, "wb") as sink:
                kernel = Kernel(machine, KernelConfig(argv=[program], envp=[], stdout=sink))
                kernel.start(program)
                start = time.perf_counter()
                machine.run()
                elapsed = time.perf_counter() - start
            best = max(best, sum(vcpu.instructions for vcpu in machine.vcpus) / elapsed / 1e6)
        finally:
            machine.close()
    return best


def sched_exploration_mips() -> dict[str, dict[str, float]]:
    """{"loop": {policy: MIPS}, "two_threads": {policy: MIPS}} (two_threads
    only when gcc is there)."""
    import shutil
    results = {"loop": {name: loop_mips(name) for name in POLICIES}}
    if shutil.which("gcc") is not None:
        from bench.__main__ import build_c
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "two_threads.c")
            with open(source, "w") as handle:
                handle.write(TWO_THREADS_PROGRAM)
            binary = build_c(source, "-pthread")
            results["two_threads"] = {name: two_thread_mips(binary, name) for name in POLICIES}
    return results


if __name__ == "__main__":
    for program, figures in sched_exploration_mips().items():
        for name, mips in figures.items():
            print(f"{program:12} {name:8} {mips:8.1f} MIPS")
