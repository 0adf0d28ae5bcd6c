"""The cycle model: exact instruction counts, cycles as the profile prices them, RDTSC sees them."""
import json
import math
import os
import struct
from pathlib import Path

import pytest

import capstone
from keystone import KS_ARCH_X86, KS_MODE_64, Ks

from emu_x86.emu.timing.profile import available_profiles, load_profile
from emu_x86.emu.timing.schedule import FRACTION_BITS
from tests.guestbuild import build_asm, emu

_DISASSEMBLER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DISASSEMBLER.detail = True

ITERATIONS = 1_000_000
LOOP = """
.globl _start
_start:
    mov $%d, %%ecx
1:  add $1, %%rax
    dec %%ecx
    jnz 1b
    mov $60, %%eax
    xor %%edi, %%edi
    syscall
""" % ITERATIONS


def block(*costs):
    """A block's cycles as a profile without a [uarch] table defines them:
    rounded sum, at least one."""
    return max(1, math.floor(sum(costs) + 0.5))


def priced(profile, source: str) -> tuple[int, int]:
    """(entry, repeat): the fixed-point prices (1/256 cycles, hotpath.h) the
    profile gives the block of these instructions (Intel syntax), as the hot
    path charges them: entry after another block, repeat right after itself."""
    code = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source, 0x1000)[0])
    entry, repeat, _ = profile.block_price(list(_DISASSEMBLER.disasm(code, 0x1000)))
    return entry, repeat


def mispredicts_fixed(profile, stats) -> int:
    """What the run's branch mispredictions cost, fixed point."""
    return stats["per_cpu"][0]["branch_mispredicts"] * (profile.uarch.mispredict_penalty_cycles << FRACTION_BITS)


def first_xrstors_cycles(profile_name):
    """The XRSTORS of the task's initial fpstate on its first return to user mode:
    x87, SSE, PASID and (where AMX exists) XTILECFG -- XTILEDATA waits for first use."""
    from emu_x86.emu.isa import xstate
    events = load_profile(profile_name).event_costs
    mask = 0b11 | (1 << 10) | ((1 << 17) if profile_name == "spr" else 0)
    return round(events["xsave_base"]) + round(events["xsave_per_byte"] * xstate.compacted_size(mask))


def run_stats(tmp_path, binary, *options):
    stats = tmp_path / "stats.json"
    result = emu("run", "--stats", str(stats), *options, str(binary))
    return result, json.loads(stats.read_text())


@pytest.mark.parametrize("profile_name", ["spr", "zen4"])
def test_known_loop_counts_and_cycles(tmp_path, profile_name):
    profile = load_profile(profile_name)
    e = profile.event_costs
    result, stats = run_stats(tmp_path, build_asm(LOOP), "--profile", profile_name)
    assert result.returncode == 0
    assert stats["instructions"] == 1 + 3 * ITERATIONS + 3
    # Unicorn's blocks: [mov ecx; add; dec; jnz] once, then [add; dec; jnz]
    # for the remaining iterations (entered once from the first, then right
    # after itself), then [mov; xor; syscall].
    if profile.uarch is None:
        c = profile.instruction_cycles
        blocks = (block(c["alu"], c["alu"], c["alu"], c["branch"])
                  + (ITERATIONS - 1) * block(c["alu"], c["alu"], c["branch"])
                  + block(c["alu"], c["alu"], c["syscall_insn"]))
    else:
        # Scheduled prices (schedule.py) in fixed point, whole cycles at the
        # end, plus the predictor's misses (a few while gshare's history
        # warms up, and the loop's exit).
        first, _ = priced(profile, "mov ecx, 1000000; add rax, 1; dec ecx; jnz 0x1000")
        loop_entry, loop_repeat = priced(profile, "add rax, 1; dec ecx; jnz 0x1000")
        exit_block, _ = priced(profile, "mov eax, 60; xor edi, edi; syscall")
        assert stats["per_cpu"][0]["branch_mispredicts"] <= 32
        # The loop is one dependent add a cycle (ALU latency 1, the fused dec/jnz beside it).
        assert loop_repeat == 1 << FRACTION_BITS
        blocks = (first + loop_entry + (ITERATIONS - 2) * loop_repeat + exit_block
                  + mispredicts_fixed(profile, stats)) >> FRACTION_BITS
    expected = (blocks
                # Boot loads init_mm's CR3, then the switch to the program's mm
                # takes a fresh ASID: two flushing CR3 writes.
                + 2 * e["cr3_write_flush"] + e["syscall"] + first_xrstors_cycles(profile_name)
                # One TLB miss: the code page, walked through all four levels.
                + 4 * e["page_walk_level"])
    assert stats["cycles"] == expected
    cpu0 = stats["per_cpu"][0]
    assert (cpu0["tlb_misses"], cpu0["page_walk_reads"], cpu0["tlb_evictions"]) == (1, 4, 0)
    assert stats["profile"] == profile_name


def test_quantum_boundaries_do_not_change_the_count():
    from emu_x86.emu.machine import Machine
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    binary = build_asm(LOOP)
    counts = set()
    for quantum in (1_000_000, 997, 13):
        machine = Machine(quantum_cycles=quantum, memory_bytes=64 << 20)
        kernel = Kernel(machine, KernelConfig(argv=[str(binary)], envp=[]))
        kernel.start(str(binary))
        machine.run()
        counts.add((machine.vcpus[0].instructions, machine.vcpus[0].cycles))
    assert counts == {(3 * ITERATIONS + 4, counts.copy().pop()[1])}


RDTSC_DELTA = """
.globl _start
_start:
    rdtsc
    mov %eax, %r12d
    mov $1000, %ecx
1:  add $1, %rax
    dec %ecx
    jnz 1b
    rdtsc
    sub %r12d, %eax
    mov %eax, delta(%rip)
    mov $1, %eax
    mov $1, %edi
    lea delta(%rip), %rsi
    mov $4, %edx
    syscall
    mov $60, %eax
    xor %edi, %edi
    syscall
.data
delta: .long 0
"""


def test_rdtsc_measures_the_model(tmp_path):
    c = load_profile("spr").instruction_cycles
    result, stats = run_stats(tmp_path, build_asm(RDTSC_DELTA))
    (delta,) = struct.unpack("<I", result.stdout)
    # Between the two TSC reads: the rest of the first block [mov; mov; add;
    # dec; jnz], 999 loop blocks, then the second rdtsc itself.
    expected = (block(c["alu"], c["alu"], c["alu"], c["alu"], c["branch"])
                + 999 * block(c["alu"], c["alu"], c["branch"])
                + round(c["rdtsc"]))
    assert delta == expected
    # rdtsc mov mov | 3000 loop instructions | rdtsc sub mov mov mov lea mov syscall mov xor syscall
    assert stats["instructions"] == 3 + 3000 + 11


def test_stats_are_byte_identical_across_runs(tmp_path):
    binary = build_asm(RDTSC_DELTA)
    outputs = []
    for name in ("a.json", "b.json"):
        path = tmp_path / name
        emu("run", "--stats", str(path), "--seed", "7", str(binary))
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]


def test_max_cycles_still_writes_stats(tmp_path):
    binary = build_asm(".globl _start\n_start:\n1: jmp 1b\n")
    stats_path = tmp_path / "s.json"
    result = emu("run", "--max-cycles", "50000", "--stats", str(stats_path), str(binary))
    assert result.returncode == 124
    assert result.stderr_lines == ["emu: cycle limit 50000 reached"]
    stats = json.loads(stats_path.read_text())
    assert 50000 <= stats["cycles"] < 50000 + 10


def test_profiles_listed_and_complete():
    result = emu("profiles")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.decode().splitlines()]
    assert names == available_profiles() and {"spr", "zen4"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.event_costs["tdpb_d"] == (16 if name == "spr" else 0)


JIT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {
    unsigned char *p = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    int total = 0;
    for (int round = 1; round <= 3; round++) {
        mprotect(p, 4096, PROT_READ|PROT_WRITE);
        memset(p, 0x90, 64);                       /* nop sled of a different length each round */
        p[0] = 0xb8; memcpy(p + 1, &round, 4);     /* mov eax, round */
        p[5 + round * 8] = 0xc3;                   /* ret */
        mprotect(p, 4096, PROT_READ|PROT_EXEC);
        total += ((int (*)(void))p)();
    }
    printf("%d\n", total);
    return 0;
}
"""


def test_rewritten_code_is_retranslated_and_repriced(tmp_path):
    from tests.guestbuild import build_c
    binary = build_c(JIT_C)
    result, stats = run_stats(tmp_path, binary)
    assert result.stdout == b"6\n"
    # Each round runs mov + (8*round) nops + ret: 1+8+1, 1+16+1, 1+24+1 = 54 instructions
    # of generated code; a stale price (the first round's block) would count 10 each time.
    baseline_binary = build_c(JIT_C.replace("total += ((int (*)(void))p)();", "total += round;"))
    _, baseline = run_stats(tmp_path, baseline_binary)
    generated = stats["instructions"] - baseline["instructions"]
    # The call/indirect-call sequence differs by a few instructions between the two builds.
    assert 54 <= generated <= 54 + 3 * 6, generated


EMULATED_IN_A_LOOP = """
.globl _start
_start:
    mov $%d, %%r12d
1:  xor %%ecx, %%ecx
    xgetbv                       # mid-block: capstone decodes it, Unicorn raises #UD
    rdpid %%rbx                  # starts the block after xgetbv: capstone cannot decode it
    dec %%r12d
    jnz 1b
    mov $60, %%eax
    xor %%edi, %%edi
    syscall
"""


@pytest.mark.parametrize("profile_name", ["spr", "zen4"])
def test_an_emulated_instruction_counts_once_wherever_it_sits_in_a_block(tmp_path, profile_name):
    """Instructions the emulator runs from Unicorn's invalid-opcode hook
    (dispatch.HANDLERS) retire once, priced by their event: a block ending at
    one does not count it again, whether or not capstone decodes it."""
    profile = load_profile(profile_name)
    counts = {}
    for rounds in (10, 20):
        result, stats = run_stats(tmp_path, build_asm(EMULATED_IN_A_LOOP % rounds), "--profile", profile_name)
        assert result.returncode == 0, result.stderr
        missed = mispredicts_fixed(profile, stats) if profile.uarch is not None else 0
        counts[rounds] = stats["instructions"], stats["cycles"], missed
    (instructions_10, cycles_10, missed_10), (instructions_20, cycles_20, missed_20) = counts[10], counts[20]
    assert instructions_20 - instructions_10 == 10 * 5      # xor, xgetbv, rdpid, dec, jnz
    other = round(profile.instruction_cycles["other"])      # charge_instruction for an event-less one
    if profile.uarch is None:
        c = profile.instruction_cycles
        per_round = block(c["alu"]) + other + other + block(c["alu"], c["branch"])
        assert cycles_20 - cycles_10 == 10 * per_round
        return
    # Per round: the block [xor; xgetbv ...] refunded to its head [xor], the
    # two emulated instructions, the block [dec; jnz] (entered after rdpid);
    # fixed point, so the ten rounds' sum may round either way by a cycle.
    head, _ = priced(profile, "xor ecx, ecx")
    tail, _ = priced(profile, "dec r12d; jnz 0x1000")
    per_10_rounds = (10 * (head + tail) + missed_20 - missed_10 >> FRACTION_BITS) + 10 * 2 * other
    assert abs(cycles_20 - cycles_10 - per_10_rounds) <= 1


def test_a_profile_parse_is_kept_per_version_of_its_file(tmp_path, monkeypatch):
    """profile._parsed_toml: the parse is cached beside the block price store
    by the file's size and modification time; an edited file is parsed again,
    the older parse stays (another checkout's copy of the file is another
    version: neither must delete the other's), and only the newest
    KEPT_PROFILE_VERSIONS are kept."""
    from emu_x86.emu.timing import profile as profile_module
    profiles = tmp_path / "profiles-src"
    profiles.mkdir()
    source = (Path(profile_module.PROFILES_DIR) / "zen5.toml").read_text()
    (profiles / "zen5.toml").write_text(source)
    monkeypatch.setattr(profile_module, "PROFILES_DIR", profiles)
    monkeypatch.setenv("EMU_BLOCK_CACHE", str(tmp_path / "cache" / "block-prices"))
    first = profile_module.load_profile("zen5")
    (cached,) = (tmp_path / "cache" / "profiles").iterdir()
    assert profile_module.load_profile("zen5") == first           # from the kept parse
    (profiles / "zen5.toml").write_text(source.replace("frequency_hz = 4_200_000_000", "frequency_hz = 4_000_000_000"))
    os.utime(profiles / "zen5.toml", ns=(1, 1))
    assert profile_module.load_profile("zen5").frequency_hz == 4_000_000_000
    kept = tmp_path / "cache" / "profiles"
    assert len(list(kept.iterdir())) == 2 and cached.exists()
    # Back to the first version (a second checkout's copy): its parse is still there.
    (profiles / "zen5.toml").write_text(source)
    first_mtime = int(cached.stem.rsplit("-", 1)[1])          # zen5-SIZE-MTIME.marshal
    os.utime(profiles / "zen5.toml", ns=(first_mtime, first_mtime))
    assert profile_module.load_profile("zen5") == first
    assert len(list(kept.iterdir())) == 2
    for version in range(2, 2 + profile_module.KEPT_PROFILE_VERSIONS):
        (profiles / "zen5.toml").write_text(source)
        os.utime(profiles / "zen5.toml", ns=(version, version))
        assert profile_module.load_profile("zen5") == first
    names = sorted(path.name for path in kept.iterdir())
    assert len(names) == profile_module.KEPT_PROFILE_VERSIONS, names
    assert cached.name not in names              # the least recently written went first
