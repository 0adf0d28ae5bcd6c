"""Cost of schedule exploration (issue 24): MIPS of the compute loop under
``--sched random`` and ``--sched pct`` against the default scheduler, each
in this process, best of REPEATS. Under an exploring policy every
instruction calls the C preemption hook (emu_x86/emu/timing/preempt.c) and every run
of a few to a few thousand instructions goes back to Python for the next
choice; the default never installs the hook."""
from __future__ import annotations

import time

LOOP_ITERATIONS = 1_000_000
REPEATS = 3


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


def sched_exploration_mips() -> dict[str, float]:
    return {name: loop_mips(name) for name in ("default", "random", "pct")}


if __name__ == "__main__":
    for name, mips in sched_exploration_mips().items():
        print(f"{name:8} {mips:8.1f} MIPS")
