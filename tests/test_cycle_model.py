"""The zen3 cycle model (issue 19): scheduled block pricing, the branch
predictor, fast strings, --cache-model and the TLB-miss proxy."""
import json

import capstone
import pytest
from keystone import KS_ARCH_X86, KS_MODE_64, Ks

from emu_x86.emu.timing import schedule
from emu_x86.emu.timing.profile import load_profile
from emu_x86.emu.timing.schedule import ONE_CYCLE
from tests.guestbuild import build_asm, build_c, emu

_DISASSEMBLER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DISASSEMBLER.detail = True


def price(source: str, profile: str = "zen3") -> tuple[float, float, int]:
    code = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source, 0x1000)[0])
    entry, repeat, flags = load_profile(profile).block_price(list(_DISASSEMBLER.disasm(code, 0x1000)))
    return entry / ONE_CYCLE, repeat / ONE_CYCLE, flags


LOOP_TAIL = "dec ecx; jnz 0x1000"


@pytest.mark.parametrize("body, cycles", [
    ("add rax, 1;" * 8, 8.0),                                   # dependent chain: latency 1 each
    ("add rax,1;add rbx,1;add rdx,1;add rsi,1;add rdi,1;add r8,1;add r9,1;add r10,1;", 2.25),  # 9 ops / 4 ALUs
    ("imul rax, rax;" * 4, 12.0),                               # imul latency 3
    ("mov rax, [rax];" * 4, 16.0),                              # L1 load-to-use 4
    ("mulsd xmm0, xmm1; addsd xmm0, xmm2;" * 4, 24.0),          # 3 + 3 per pair
    ("addsd xmm0, xmm8; addsd xmm1, xmm8; addsd xmm2, xmm8; addsd xmm3, xmm8;", 3.0),  # 4 chains, latency 3
    ("".join(f"addsd xmm{n}, xmm8;" for n in range(8)), 4.0),   # 8 chains: the 2 FP add pipes bound it
    ("add rax, [rsi + rcx*8];", 1.0),                           # the sum's chain is the add, not the load
    ("xor eax, eax; add rax, 1; add rax, 1;", 1.0),             # a zero idiom breaks the chain
])
def test_self_loop_steady_state(body, cycles):
    entry, repeat, flags = price(body + LOOP_TAIL)
    assert repeat == cycles
    assert flags == schedule.BLOCK_CONDITIONAL_BRANCH


def test_divider_is_not_pipelined():
    # Two independent divisions still queue on the one divider (occupancy 8 each).
    _, repeat, _ = price("div rbx; div r8;" + LOOP_TAIL)
    assert repeat >= 16


def test_store_forwarding_carries_a_memory_chain():
    _, repeat, _ = price("add qword ptr [rdi], 1;" + LOOP_TAIL)
    uarch = load_profile("zen3").uarch
    assert repeat == 1 + uarch.store_forward_cycles


def test_jump_redirect_bounds_only_a_self_loop():
    entry, repeat, _ = price("lea rax, [rbx + 1]; lea rdx, [rax + 2]; jmp 0x2000")
    assert repeat == 1.0 and entry < 1.0


def test_fast_strings_charge_start_up_then_bandwidth():
    uarch = load_profile("zen3").uarch
    entry, repeat, flags = price("rep movsq")
    assert repeat == 8 / uarch.string_bytes_per_cycle
    assert entry == uarch.string_startup_cycles + repeat
    assert flags == 0


def test_fast_string_stores_have_their_own_bandwidth():
    # rep stos runs at the profile's store bandwidth, rep movs at the copy one
    # (zen3: 20 and 32 bytes a cycle, measured on the host).
    uarch = load_profile("zen3").uarch
    _, stos, _ = price("rep stosq")
    _, movs, _ = price("rep movsq")
    assert stos == pytest.approx(8 / uarch.string_store_bytes_per_cycle, abs=1 / ONE_CYCLE)
    assert movs == 8 / uarch.string_bytes_per_cycle
    assert stos > movs


def test_throughput_profiles_price_as_before():
    # spr/zen4 keep the reciprocal-throughput sum: entry == repeat == whole cycles, no flags.
    profile = load_profile("spr")
    code = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm("add rax, 1;" * 8 + LOOP_TAIL, 0x1000)[0])
    instructions = list(_DISASSEMBLER.disasm(code, 0x1000))
    assert profile.block_price(instructions) == (profile.block_cycles(instructions) * ONE_CYCLE,) * 2 + (0,)
    assert profile.uarch is None and load_profile("zen3").uarch is not None


def run_stats(tmp_path, binary, *options, args=()):
    stats = tmp_path / "stats.json"
    result = emu("run", "--stats", str(stats), *options, str(binary), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(stats.read_text()), result.stdout


BRANCHES = """
.globl _start
_start:
    mov $20000, %%ecx
    mov $88172645463325252, %%r8
1:  %s
    test $1, %%r8b
    jz 2f
    add $1, %%rbx
2:  dec %%ecx
    jnz 1b
    mov $60, %%eax
    xor %%edi, %%edi
    syscall
"""
# xorshift64: the low bit is as good as random for gshare.
RANDOM_STEP = "mov %r8, %rax; shl $13, %rax; xor %rax, %r8; mov %r8, %rax; shr $7, %rax; xor %rax, %r8; " \
              "mov %r8, %rax; shl $17, %rax; xor %rax, %r8"


def test_predictor_learns_a_constant_branch_and_misses_a_random_one(tmp_path):
    constant, _ = run_stats(tmp_path, build_asm(BRANCHES % "or $1, %r8"), "--profile", "zen3")
    random, _ = run_stats(tmp_path, build_asm(BRANCHES % RANDOM_STEP), "--profile", "zen3")
    c, r = constant["per_cpu"][0], random["per_cpu"][0]
    assert c["conditional_branches"] >= 40000 and r["conditional_branches"] >= 40000
    assert c["branch_mispredicts"] < 50
    # About half of the 20,000 data-dependent branches.
    assert 8000 < r["branch_mispredicts"] < 12000
    penalty = load_profile("zen3").uarch.mispredict_penalty_cycles
    assert random["cycles"] - constant["cycles"] >= penalty * (r["branch_mispredicts"] - c["branch_mispredicts"])


def test_spr_has_no_predictor_statistics(tmp_path):
    stats, _ = run_stats(tmp_path, build_asm(BRANCHES % "or $1, %r8"))
    assert "branch_mispredicts" not in stats["per_cpu"][0]


CHASE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    long bytes = atol(argv[1]), loads = atol(argv[2]), lines = bytes / 64;
    char *base = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned long x = 88172645463325252UL;
    long *order = malloc(lines * sizeof *order);
    for (long i = 0; i < lines; i++) order[i] = i;
    for (long i = lines - 1; i > 0; i--) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        long j = x % (i + 1), t = order[i]; order[i] = order[j]; order[j] = t;
    }
    for (long i = 0; i < lines; i++)
        *(void **)(base + order[i] * 64) = base + order[(i + 1) % lines] * 64;
    void **p = (void **)base;
    for (long i = 0; i < loads; i++) p = *p;
    printf("%d\n", p != 0);
    return 0;
}
"""


def chase_cycles_per_load(tmp_path, binary, size, *options):
    """Marginal cycles per dependent load: two runs whose set-up is equal."""
    few, _ = run_stats(tmp_path, binary, "--profile", "zen3", *options, args=(str(size), "20000"))
    many, _ = run_stats(tmp_path, binary, "--profile", "zen3", *options, args=(str(size), "60000"))
    return (many["cycles"] - few["cycles"]) / 40000, many


def test_cache_model_levels(tmp_path):
    binary = build_c(CHASE_C)
    memory = load_profile("zen3").memory
    l1, stats = chase_cycles_per_load(tmp_path, binary, 16 << 10, "--cache-model")
    assert stats["per_cpu"][0]["cache"]["l1_hits"] > 60000
    assert l1 == pytest.approx(memory["l1_latency_cycles"], rel=0.1)
    l2, _ = chase_cycles_per_load(tmp_path, binary, 256 << 10, "--cache-model")
    assert l2 == pytest.approx(memory["l2_latency_cycles"], rel=0.25)
    l3, _ = chase_cycles_per_load(tmp_path, binary, 2 << 20, "--cache-model")
    assert memory["l3_latency_cycles"] * 0.8 < l3 < memory["l3_latency_cycles"] * 1.5
    # Past L3 (and the TLB's reach): DRAM latency plus, for most loads, a walk.
    dram, stats = chase_cycles_per_load(tmp_path, binary, 16 << 20, "--cache-model")
    walk = 4 * load_profile("zen3").event_costs["page_walk_level"]
    assert memory["dram_latency_cycles"] < dram < (memory["dram_latency_cycles"] + walk) * 1.1
    assert stats["per_cpu"][0]["cache"]["dram"] > 40000


def test_default_path_charges_a_dram_proxy_on_tlb_misses(tmp_path):
    binary = build_c(CHASE_C)
    small, _ = chase_cycles_per_load(tmp_path, binary, 16 << 10)
    large, stats = chase_cycles_per_load(tmp_path, binary, 64 << 20)
    assert small == pytest.approx(4, rel=0.1)
    assert "cache" not in stats["per_cpu"][0]
    # 64 MiB is 8x the TLB's reach: nearly every load walks and pays the proxy.
    assert large > load_profile("zen3").memory["tlb_miss_data_proxy_cycles"]


def test_cache_model_is_deterministic(tmp_path):
    binary = build_c(CHASE_C)
    first = emu("run", "--profile", "zen3", "--cache-model", "--stats", "-", str(binary), str(1 << 20), "30000")
    second = emu("run", "--profile", "zen3", "--cache-model", "--stats", "-", str(binary), str(1 << 20), "30000")
    assert first.returncode == 0 and first.stderr == second.stderr
    assert b'"cache"' in first.stderr


def test_cache_model_needs_a_memory_section():
    result = emu("run", "--cache-model", str(build_asm(BRANCHES % "or $1, %r8")))
    assert result.returncode == 2
    assert b"--cache-model" in result.stderr and b"zen3" in result.stderr


REP_MOVSQ = """
.globl _start
_start:
    sub $16384, %%rsp
    mov $%d, %%r12
1:  mov %%rsp, %%rdi
    lea 8192(%%rsp), %%rsi
    mov $512, %%ecx
    rep movsq
    dec %%r12
    jnz 1b
    mov $60, %%eax
    xor %%edi, %%edi
    syscall
"""


def test_rep_movs_is_priced_as_start_up_plus_bandwidth(tmp_path):
    few, _ = run_stats(tmp_path, build_asm(REP_MOVSQ % 100), "--profile", "zen3")
    many, _ = run_stats(tmp_path, build_asm(REP_MOVSQ % 300), "--profile", "zen3")
    per_copy = (many["cycles"] - few["cycles"]) / 200
    uarch = load_profile("zen3").uarch
    expected = uarch.string_startup_cycles + 4096 / uarch.string_bytes_per_cycle
    # + the loop's few instructions; far below one cycle per iteration (512).
    assert expected <= per_copy < expected + 10


EXIT_ONLY = """
.globl _start
_start:
    mov $60, %eax
    xor %edi, %edi
    syscall
"""


def test_zen3_has_invlpgb_and_the_error_names_it():
    # INVLPGB/TLBSYNC came with Zen 3 (AMD APM Vol. 3): tlb_flush=invlpgb runs
    # on zen3, and a profile without it says zen3 as well as zen4 would do.
    binary = str(build_asm(EXIT_ONLY))
    assert emu("run", "--profile", "zen3", "--cmdline", "tlb_flush=invlpgb", binary).returncode == 0
    refused = emu("run", "--profile", "spr", "--cmdline", "tlb_flush=invlpgb", binary)
    assert refused.returncode == 2
    assert b"zen3" in refused.stderr and b"zen4" in refused.stderr
