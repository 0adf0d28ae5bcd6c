"""The kernel's XSAVES/XRSTORS in C (emu_x86/emu/isa/xstate_fast.c) are the Python
instructions of emu_x86/emu/isa/xstate.py, faster: on random x87/SSE/PASID/AMX
states, with components in their init state, the modified optimization on
and off, embedded and vmalloc'ed fpstates, XFD armed and unmapped buffers,
two identical machines -- one with the C path, one forced onto Python --
end with the same guest physical memory (buffers and page-table A/D bits),
the same registers and extended state, the same counters and cycles, and
the same faults."""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import XFEATURE_MASK_PASID, XFEATURE_MASK_SSE, XFEATURE_MASK_X87, XFEATURE_MASK_XTILE
from emu_x86.emu.machine import Machine
from emu_x86.emu.traps import NM, PF
from emu_x86.kernel import fpu
from emu_x86.kernel.kernel import Kernel, KernelConfig

VMALLOC_FEATURES = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | XFEATURE_MASK_PASID | XFEATURE_MASK_XTILE
ALL_ENABLED = VMALLOC_FEATURES


class Side:
    """One machine, its kernel and three fpstates: embedded, and two vmalloc'ed
    ones (the second at an address that is not page aligned inside its area
    would not be an fpstate; both start page aligned, as vzalloc gives them)."""

    def __init__(self, use_c: bool):
        self.use_c = use_c
        self.operations = self.python_runs = 0
        self.machine = Machine(cpus=1, memory_bytes=16 << 20)
        self.kernel = Kernel(self.machine, KernelConfig(argv=["t"], envp=[]))
        self.vcpu = self.machine.vcpus[0]
        self.vcpu.write_cr3(self.kernel.vmalloc.pagetables.pgd)    # a PGD that maps the vmalloc range
        self.buffers = [fpu.new_task_fpstate(self.kernel.fpu_config)]
        self.buffers[0].kernel_address = fpu.FPSTATE_VADDR_BASE    # the same on both machines
        for _ in range(2):
            area = self.kernel.vmalloc.vzalloc(self.vcpu, xstate.compacted_size(VMALLOC_FEATURES))
            fpu.init_xstate_header(self.machine.memory, area.frames, VMALLOC_FEATURES)
            self.buffers.append(fpu.FpState(xfeatures=VMALLOC_FEATURES, user_xfeatures=0, xfd=0,
                                            storage=fpu.FPSTATE_VMALLOC, area=area))

    def run(self, operation, *args):
        """``operation`` with the path this side uses; the outcome (or the fault) to compare.
        ``python_runs`` counts the instructions the Python code ran."""
        saved = xstate.KERNEL_XSTATE_C, xstate.xsave, xstate.xrstor
        xstate.KERNEL_XSTATE_C = self.use_c
        xsave, xrstor = saved[1:]

        def counted(function):
            def run_python(*args, **kwargs):
                self.python_runs += 1
                return function(*args, **kwargs)
            return run_python
        xstate.xsave, xstate.xrstor = counted(xsave), counted(xrstor)
        self.operations += 1
        try:
            return ("ok", operation(self.kernel, self.vcpu, *args))
        except (PF, NM) as fault:
            return (type(fault).__name__, vars(fault))
        finally:
            xstate.KERNEL_XSTATE_C, xstate.xsave, xstate.xrstor = saved

    def snapshot(self) -> dict:
        x = self.vcpu.xstate
        return {
            "memory": self.machine.memory.read(0, self.machine.memory.size_bytes),
            "embedded": bytes(self.buffers[0].buffer),
            "registers": self.vcpu.save_user_registers(),
            "xstate": (bytes(x.tilecfg), x.tiles.tobytes(), x.tile_xinuse, x.pasid, x.xfd, x.xfd_err,
                       x.modified_since_restore, x.last_restore_linear_address, x.last_restore_was_xrstors,
                       x.unmodified_components_skipped),
            "counters": dict(self.kernel.counters),
            "cycles": self.vcpu.cycles,
        }


def randomize(side: Side, rng: random.Random) -> None:
    """The same random architectural state on a side (each part sometimes in its init state)."""
    values = {}
    if rng.random() < 0.3:
        values.update(xstate.init_legacy_registers(XFEATURE_MASK_X87))
    else:
        values.update(fpcw=rng.choice([0x037F, 0x027F, rng.getrandbits(16) & 0x1F3F | 0x40]),
                      fpsw=rng.getrandbits(16) & 0x3800, fptag=rng.getrandbits(16))
        # Every tag class: zero, special (denormal, unnormal, infinity/NaN), valid.
        values.update({f"fp{i}": rng.choice([(0, rng.choice([0, 0x8000])), (rng.getrandbits(63), 0),
                                             (rng.getrandbits(63), rng.getrandbits(15)),
                                             (rng.getrandbits(64), rng.choice([0x7FFF, 0xFFFF])),
                                             (rng.getrandbits(64), rng.getrandbits(16))]) for i in range(8)})
    if rng.random() < 0.3:
        values.update(xstate.init_legacy_registers(XFEATURE_MASK_SSE))
        values["mxcsr"] = xstate.MXCSR_INIT
    else:
        values.update({f"xmm{i}": rng.choice([0, rng.getrandbits(128)]) for i in range(16)})
        values["mxcsr"] = rng.choice([xstate.MXCSR_INIT, rng.getrandbits(16) & 0xFFBF])
    side.vcpu.write_registers(values)
    x = side.vcpu.xstate
    if rng.random() < 0.3:
        x.release_tiles()
    else:
        config = bytearray(64)
        config[0] = 1
        for tile in range(8):
            struct.pack_into("<H", config, 16 + 2 * tile, rng.choice([4, 32, 64]))
            config[48 + tile] = rng.randint(1, 16)
        x.tilecfg = config
        x.tiles = np.frombuffer(rng.randbytes(8192), dtype=np.uint8).reshape(8, 16, 64)
        x.tiles_in_use = True
    x.pasid = rng.choice([0, 0, rng.getrandbits(20)])
    x.modified_since_restore = rng.choice([0, XFEATURE_MASK_XTILE, XFEATURE_MASK_PASID, rng.getrandbits(19)])


def _xsaves(kernel, vcpu, buffer, mask, pass_registers):
    registers = vcpu.save_user_registers() if pass_registers else None
    fpu._xsaves(kernel, vcpu, buffer, mask, registers)


def _xrstors(kernel, vcpu, buffer, mask):
    fpu._xrstors(kernel, vcpu, buffer, mask)


@pytest.mark.parametrize("seed", range(8))
def test_c_and_python_xsaves_xrstors_leave_identical_machines(seed):
    rng = random.Random(seed)
    sides = [Side(use_c=True), Side(use_c=False)]
    for step in range(60):
        choice = rng.random()
        index = rng.randrange(3)
        mask = ALL_ENABLED if index else sides[0].buffers[0].xfeatures
        mask &= rng.choice([ALL_ENABLED, ALL_ENABLED, XFEATURE_MASK_X87 | XFEATURE_MASK_SSE,
                            XFEATURE_MASK_XTILE | XFEATURE_MASK_SSE])
        if choice < 0.25:
            state_seed = rng.getrandbits(32)
            for side in sides:
                randomize(side, random.Random(state_seed))
            continue
        if choice < 0.3:
            xfd = rng.choice([0, 1 << 18])
            for side in sides:
                side.vcpu.xstate.xfd = xfd
            continue
        if choice < 0.35:
            # A tile instruction since the restore: XSAVES must write the tiles again.
            for side in sides:
                side.vcpu.xstate.modified_since_restore |= XFEATURE_MASK_XTILE
            continue
        pass_registers = rng.random() < 0.5
        outcomes = [side.run(_xsaves, side.buffers[index], mask, pass_registers) if choice < 0.7
                    else side.run(_xrstors, side.buffers[index], mask) for side in sides]
        assert outcomes[0] == outcomes[1], step
        snapshots = [side.snapshot() for side in sides]
        assert snapshots[0] == snapshots[1], step
    c_side, python_side = sides
    assert python_side.python_runs == python_side.operations
    assert c_side.python_runs < c_side.operations / 2      # C took most: only faults fall back


def test_restore_then_save_to_the_same_buffer_skips_the_unmodified_tiles_in_c():
    side = Side(use_c=True)
    randomize(side, random.Random(1))
    side.vcpu.xstate.release_tiles()
    side.vcpu.xstate.tilecfg = bytes([1]) + bytes(15) + struct.pack("<H", 64) * 8 + bytes(16) + bytes([16]) * 8 + bytes(8)
    side.vcpu.xstate.tiles = np.frombuffer(bytes(range(256)) * 32, dtype=np.uint8).reshape(8, 16, 64)
    side.vcpu.xstate.tiles_in_use = True
    buffer = side.buffers[1]
    side.run(_xsaves, buffer, ALL_ENABLED, False)
    side.run(_xrstors, buffer, ALL_ENABLED)
    before = side.kernel.counters["xsaves_components_skipped"]
    side.run(_xsaves, buffer, ALL_ENABLED, True)
    assert side.python_runs == 0                        # the C path took all three
    not_in_use = (ALL_ENABLED & ~xstate.xinuse(side.vcpu)).bit_count()     # the init optimization's
    assert side.kernel.counters["xsaves_components_skipped"] - before == 2 + not_in_use
    assert side.vcpu.xstate.unmodified_components_skipped == 2


def test_an_unmapped_buffer_faults_the_same_on_both_paths():
    outcomes = []
    for use_c in (True, False):
        side = Side(use_c=use_c)
        randomize(side, random.Random(7))
        buffer = side.buffers[2]
        saved = side.run(_xsaves, buffer, ALL_ENABLED, True)
        # Unmap the buffer's second page: XSAVES and XRSTORS of the tiles fault there.
        side.kernel.vmalloc.pagetables.clear_entry(buffer.area.start + 4096)
        side.vcpu.xstate.modified_since_restore = XFEATURE_MASK_XTILE
        outcomes.append((saved, side.run(_xsaves, buffer, ALL_ENABLED, True), side.run(_xrstors, buffer, ALL_ENABLED),
                         side.snapshot()))
    assert outcomes[0][0][0] == "ok" and outcomes[0][1][0] == outcomes[0][2][0] == "PF"
    assert outcomes[0] == outcomes[1]
