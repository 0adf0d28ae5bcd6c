"""The XSAVE family: layouts derived from the component table, byte-identical XSAVEC
against the host CPU, and XSAVE/XRSTOR behaviour seen from guests."""
import itertools

import pytest
from tests.guestbuild import missing_prerequisite

from emu_x86.emu.isa import xstate
from tests.guestbuild import REPO, build, emu, native

COMPONENT_SIZES = {0: 160, 1: 256, 10: 8, 17: 64, 18: 8192}
ALIGN64 = {18}


def sdm_compacted_offsets(mask):
    """SDM Vol. 1 §13.4.3, written out independently: location(i) = location(j) +
    size(j) for the previous enabled j >= 2 (576 for the first), rounded up to 64
    when component i is 64-byte aligned."""
    offsets, previous_end = {}, 576
    for i in sorted(COMPONENT_SIZES):
        if not mask >> i & 1:
            continue
        if i < 2:
            offsets[i] = {0: 0, 1: 160}[i]
            continue
        start = previous_end if i not in ALIGN64 else -(-previous_end // 64) * 64
        offsets[i] = start
        previous_end = start + COMPONENT_SIZES[i]
    return offsets


@pytest.mark.parametrize("mask", [sum(1 << b for b in bits)
                                  for n in range(1, 6)
                                  for bits in itertools.combinations(sorted(COMPONENT_SIZES), n)])
def test_compacted_offsets_for_every_combination(mask):
    assert xstate.compacted_offsets(mask) == sdm_compacted_offsets(mask)


def test_cpuid_leaf_0xd_matches_the_table():
    xcr0 = 0b11 | (1 << 17) | (1 << 18)
    eax, ebx, ecx, _ = xstate.cpuid_leaf_0xd(0, xcr0, 0)
    assert eax == xcr0 and ebx == 2816 + 8192 and ecx == 2816 + 8192
    assert xstate.cpuid_leaf_0xd(17, xcr0, 0) == (64, 2752, 0, 0)
    assert xstate.cpuid_leaf_0xd(18, xcr0, 0) == (8192, 2816, 0b110, 0)     # align64 + XFD
    assert xstate.cpuid_leaf_0xd(10, xcr0, 1 << 10)[2] & 1                   # supervisor
    _, compacted, supervisor_mask, _ = xstate.cpuid_leaf_0xd(1, xcr0, 1 << 10)
    assert supervisor_mask == 1 << 10
    assert compacted == xstate.compacted_size(xcr0 | (1 << 10))


def _host_cpu():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None, set()
    vendor = next((line.split(":")[1].strip() for line in text.splitlines() if line.startswith("vendor_id")), None)
    flags = next((set(line.split(":")[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return vendor, flags


def test_xsavec_is_byte_identical_to_the_host_cpu():
    vendor, flags = _host_cpu()
    if "xsavec" not in flags:
        missing_prerequisite("the host CPU has no XSAVEC")
    binary = build((REPO / "guest" / "tests" / "xsave" / "xsavec_dump.c").read_text(), ".c", ["-static", "-O2"])
    host = native(binary)
    assert host.returncode == 0 and len(host.stdout) == 576
    # The profile of the host's vendor models its MXCSR_MASK (AMD sets bit 17).
    profile = "zen4" if vendor == "AuthenticAMD" else "spr"
    emulated = emu("run", "--profile", profile, str(binary))
    assert emulated.returncode == 0, emulated.stderr
    # FOP, FIP and FDP (legacy-area bytes 6..23) hold the last x87 instruction's
    # opcode and addresses, which the emulator does not track (it stores zeros,
    # as AMD does without a pending x87 exception; Intel Xeon hosts store the
    # fldpi's address: seen on both kinds of CI machine).
    last_x87_instruction = slice(6, 24)
    assert emulated.stdout[last_x87_instruction] == bytes(18)
    host_masked, emulated_masked = bytearray(host.stdout), bytearray(emulated.stdout)
    host_masked[last_x87_instruction] = emulated_masked[last_x87_instruction] = bytes(18)
    assert emulated_masked == host_masked
