"""Every profile's [uarch] table (issue 19): it loads, it has a row for every
class Profile.classify can return, and the block prices the scheduler
computes from it are the ones the table implies by hand."""
import capstone
import pytest
from keystone import KS_ARCH_X86, KS_MODE_64, Ks

from emu_x86.emu.timing.profile import _SCHEDULED_CLASSES, INSTRUCTION_CLASSES, available_profiles, load_profile
from emu_x86.emu.timing.schedule import ONE_CYCLE

_DISASSEMBLER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DISASSEMBLER.detail = True
SCHEDULED = ("zen3", "zen4", "zen5")
# spr (the default profile) keeps the reciprocal-throughput sums for now: its
# Golden Cove table changes every default-profile result (see docs/calibration.md).
# A self-loop: the dec/jnz pair is one fused macro-op on one ALU.
LOOP_TAIL = "dec ecx; jnz 0x1000"


def instructions(source: str) -> list:
    code = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source, 0x1000)[0])
    return list(_DISASSEMBLER.disasm(code, 0x1000))


def repeat_cycles(profile, source: str) -> float:
    _, repeat, _ = profile.block_price(instructions(source + LOOP_TAIL))
    return repeat / ONE_CYCLE


def test_the_scheduled_profiles_are_the_ones_with_a_uarch_table():
    assert {name for name in available_profiles() if load_profile(name).uarch is not None} == set(SCHEDULED)


@pytest.mark.parametrize("name", SCHEDULED)
def test_table_loads_and_covers_every_class(name):
    uarch = load_profile(name).uarch
    assert uarch is not None
    # load/store are operand costs, not classes classify returns.
    assert set(_SCHEDULED_CLASSES) == set(INSTRUCTION_CLASSES) - {"load", "store"}
    assert set(_SCHEDULED_CLASSES) <= set(uarch.classes)
    for cls, row in {**uarch.classes, **uarch.mnemonics}.items():
        assert row.latency_cycles >= 0 and row.uops >= 0, cls
        assert bool(row.ports) == bool(row.uops) or cls in ("serializing", "rdtsc"), cls
    assert uarch.dispatch_width >= 4 and uarch.load_ports and uarch.store_ports
    assert uarch.mispredict_penalty_cycles > 0


# One instruction per class Profile.classify returns: its class is what
# classify says, so every row the table needs is exercised.
CLASS_SAMPLES = {
    "alu": "add rax, rbx", "nop": "nop", "branch": "jmp 0x2000", "call_ret": "ret", "multiply": "imul rax, rbx",
    "divide": "div rbx", "string_op": "movsb", "sse_simple": "pxor xmm0, xmm1", "sse_fp": "addsd xmm0, xmm1",
    "sse_divide": "divsd xmm0, xmm1", "x87": "fadd st(0), st(1)", "serializing": "cpuid", "rdtsc": "rdtsc",
    "syscall_insn": "syscall",
}


@pytest.mark.parametrize("name", SCHEDULED)
def test_classify_reaches_only_classes_the_table_has(name):
    profile = load_profile(name)
    # "other" is the table's fallback; classify itself ends at "alu".
    assert set(CLASS_SAMPLES) == set(_SCHEDULED_CLASSES) - {"other"}
    for cls, source in CLASS_SAMPLES.items():
        insn, = instructions(source)
        assert profile.classify(insn) == cls
        entry, repeat, _ = profile.block_price([insn])
        assert entry > 0 and repeat > 0


@pytest.mark.parametrize("name", SCHEDULED)
def test_prices_are_what_the_table_implies(name):
    profile = load_profile(name)
    uarch = profile.uarch
    alu, multiply = uarch.classes["alu"], uarch.classes["multiply"]
    # 8 dependent adds: the chain is 8 ALU latencies.
    assert repeat_cycles(profile, "add rax, 1;" * 8) == 8 * alu.latency_cycles
    # 8 independent adds + the fused dec/jnz: 9 ALU micro-ops over the ALU
    # ports, or over dispatch width if that is narrower.
    independent = "add rax,1;add rbx,1;add rdx,1;add rsi,1;add rdi,1;add r8,1;add r9,1;add r10,1;"
    expected = max(9 / len(alu.ports), 9 / uarch.dispatch_width)
    assert repeat_cycles(profile, independent) == pytest.approx(expected, abs=1 / ONE_CYCLE)
    # 4 dependent imuls: 4 multiply latencies (above the multiplier's port bound).
    assert repeat_cycles(profile, "imul rax, rax;" * 4) == 4 * multiply.latency_cycles
    # 4 dependent loads (a pointer chase): 4 L1 load-to-use latencies.
    assert repeat_cycles(profile, "mov rax, [rax];" * 4) == 4 * uarch.load_latency_cycles


# The same four loops, by hand from each table (cycles per iteration): the
# figures a change of a row would move.
HAND_COMPUTED = {
    #        dep add  indep add       imul  load chain
    "zen3": (8.0, 9 / 4, 12.0, 16.0),    # ALU lat 1, 4 ALUs, imul lat 3, L1 4
    "zen4": (8.0, 9 / 4, 12.0, 16.0),    # as Zen 3 (SOG Zen4: same ALUs, multiplier, L1 latency)
    "zen5": (8.0, 9 / 5, 12.0, 16.0),    # five ALU ports (measured on the Zen 5 host: 1.84), imul lat 3, L1 4
}


@pytest.mark.parametrize("name", SCHEDULED)
def test_hand_computed_prices(name):
    profile = load_profile(name)
    dependent, independent, imul, loads = HAND_COMPUTED[name]
    assert repeat_cycles(profile, "add rax, 1;" * 8) == dependent
    assert repeat_cycles(profile, "add rax,1;add rbx,1;add rdx,1;add rsi,1;add rdi,1;add r8,1;add r9,1;add r10,1;") \
        == pytest.approx(independent, abs=1 / ONE_CYCLE)
    assert repeat_cycles(profile, "imul rax, rax;" * 4) == imul
    assert repeat_cycles(profile, "mov rax, [rax];" * 4) == loads


def test_zen4_differs_from_zen3_where_the_cores_do():
    zen3, zen4 = load_profile("zen3"), load_profile("zen4")
    # Zen 4's FP divider (SOG Zen4 latency spreadsheet) vs Zen 3's (uops.info).
    assert repeat_cycles(zen4, "sqrtsd xmm0, xmm0;") == 21.0
    assert repeat_cycles(zen3, "sqrtsd xmm0, xmm0;") == 20.0
    # The integer divider moved to ALU0 (SOG Zen4 §2.10.2): same chain price.
    assert zen4.uarch.classes["divide"].ports == ("alu0",)
    assert repeat_cycles(zen4, "div rbx;" * 2) == repeat_cycles(zen3, "div rbx;" * 2) == 24.0
    # Memory renaming kept: an add [mem], 1 chain at one cycle.
    assert repeat_cycles(zen4, "add qword ptr [rdi], 1;") == 1.0


def test_zen5_prices_the_loops_measured_on_its_host():
    """The zen5 rows against the Zen 5 host's cycles per iteration
    (docs/calibration.md): wider integer and memory units, a 2-cycle FADD,
    and the cross-pipe bypass between FMUL and FADD."""
    zen5 = load_profile("zen5")
    # 6 independent imul chains: latency-bound at 3 (three multipliers; host 2.99).
    imuls = "imul rax,rax;imul rbx,rbx;imul rdx,rdx;imul rsi,rsi;imul rdi,rdi;imul r8,r8;"
    assert repeat_cycles(zen5, imuls) == 3.0
    # 6 L1 loads over four load ports (host 1.50); 4 stores over two (host 2.00).
    loads = "mov rax,[rdi];mov rbx,[rdi+8];mov rdx,[rdi+16];mov rsi,[rdi+24];mov r8,[rdi+32];mov r9,[rdi+40];"
    assert repeat_cycles(zen5, loads) == 1.5
    assert repeat_cycles(zen5, "mov [rdi],rax;mov [rdi+64],rax;mov [rdi+128],rax;mov [rdi+192],rax;") == 2.0
    # FADD 2 and FMUL 3 alone; alternating, each hand-off crosses pipes (+1): 7 a pair (host 27.8 for 4).
    assert repeat_cycles(zen5, "addsd xmm0, xmm1;" * 4) == 8.0
    assert repeat_cycles(zen5, "mulsd xmm0, xmm1;" * 4) == 12.0
    assert repeat_cycles(zen5, "mulsd xmm0, xmm1; addsd xmm0, xmm2;" * 4) == 28.0


def test_fp_bypass_is_zen5s_alone():
    # Zen 3 and Zen 4 have no cross-pipe penalty in their tables: a mulsd/addsd pair is 6.
    for name in ("zen3", "zen4"):
        assert load_profile(name).uarch.fp_bypass_cycles == 0
        assert repeat_cycles(load_profile(name), "mulsd xmm0, xmm1; addsd xmm0, xmm2;") == 6.0
