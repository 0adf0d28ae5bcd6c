"""The CPUID the guest sees: only what this machine can execute (DESIGN.md).

Unicorn's TCG runs the SSE-class ISA (SSE..SSE4.2, SSSE3, AES, PCLMULQDQ,
POPCNT, MOVBE, BMI1/2) but no AVX or AVX-512, so those bits stay clear and
glibc's ifunc selection picks SSE2/ERMS code. The emulated extensions add
their own bits: XSAVE family, XFD, AMX (Intel model) or INVLPGB (AMD model),
PCID/INVPCID, RDPID, SERIALIZE. Leaf 0xD comes from the XSTATE component
table (xstate_layout.py) so sizes and offsets have one source of truth.
"""
from __future__ import annotations

from dataclasses import dataclass

# Leaf 1 ECX (SDM Vol. 2A Table 3-10) features TCG executes.
_LEAF1_ECX_BASE = (
    (1 << 0) | (1 << 1) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 25)
)
CPUID1_ECX_PCID = 1 << 17
CPUID1_ECX_X2APIC = 1 << 21
CPUID1_ECX_TSC_DEADLINE = 1 << 24
CPUID1_ECX_XSAVE = 1 << 26
CPUID1_ECX_OSXSAVE = 1 << 27
# Leaf 1 EDX: fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2.
CPUID1_EDX = 0x078BFBFD

# Leaf 7 sub-leaf 0.
CPUID7_EBX_FSGSBASE = 1 << 0
CPUID7_EBX_BMI1 = 1 << 3
CPUID7_EBX_SMEP = 1 << 7
CPUID7_EBX_BMI2 = 1 << 8
CPUID7_EBX_ERMS = 1 << 9
CPUID7_EBX_INVPCID = 1 << 10
CPUID7_ECX_RDPID = 1 << 22
CPUID7_EDX_SERIALIZE = 1 << 14
CPUID7_EDX_AMX_BF16 = 1 << 22
CPUID7_EDX_AMX_TILE = 1 << 24
CPUID7_EDX_AMX_INT8 = 1 << 25

# Extended leaves.
CPUID80000001_ECX_LAHF = 1 << 0
CPUID80000001_EDX = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29)  # syscall nx pdpe1gb rdtscp lm
CPUID80000008_EBX_INVLPGB = 1 << 3
INVLPGB_MAX_PAGES = 8   # EDX[15:0] = max page count - 1 (AMD APM Vol. 3, INVLPGB)

# Leaf 0xD: the tile components (XTILECFG 17, XTILEDATA 18) and sub-leaf 1's XFD bit.
XFEATURE_XTILECFG = 17
XFEATURE_XTILEDATA = 18
XFEATURE_MASK_XTILE = (1 << XFEATURE_XTILECFG) | (1 << XFEATURE_XTILEDATA)
CPUID_D1_EAX_XFD = 1 << 4

# AMX palette 1 (CPUID leaves 0x1D/0x1E).
AMX_TOTAL_TILE_BYTES = 8192
AMX_BYTES_PER_TILE = 1024
AMX_BYTES_PER_ROW = 64
AMX_MAX_NAMES = 8
AMX_MAX_ROWS = 16
AMX_TMUL_MAXK = 16
AMX_TMUL_MAXN = 64


@dataclass(frozen=True)
class CpuModel:
    """The CPU a profile presents through CPUID: vendor, signature, brand and the extension bits."""

    vendor: str                 # 12 characters
    signature: int              # leaf 1 EAX: stepping/model/family
    brand: str
    amx: bool
    invlpgb: bool
    serialize: bool
    pcid: bool = True           # CPUID.1:ECX.PCID: CR4.PCIDE may be set
    invpcid: bool = True        # CPUID.(7,0):EBX.INVPCID


INTEL_SAPPHIRE_RAPIDS = CpuModel("GenuineIntel", 0x000806F8, "Emulated Sapphire Rapids-class CPU",
                                 amx=True, invlpgb=False, serialize=True)
AMD_ZEN4 = CpuModel("AuthenticAMD", 0x00A10F11, "Emulated Zen 4-class CPU",
                    amx=False, invlpgb=True, serialize=False)
# Family 19h model 01h stepping 1: EPYC 7003 (Milan), the host the zen3
# profile is calibrated on. Zen 3 has INVLPGB/TLBSYNC (AMD APM Vol. 3).
AMD_ZEN3 = CpuModel("AuthenticAMD", 0x00A00F11, "Emulated Zen 3-class CPU",
                    amx=False, invlpgb=True, serialize=False)
# Family 1Ah model 02h stepping 1: EPYC 9005 (Turin), the host the zen5
# profile is calibrated on.
AMD_ZEN5 = CpuModel("AuthenticAMD", 0x00B00F21, "Emulated Zen 5-class CPU",
                    amx=False, invlpgb=True, serialize=False)
MODELS_BY_PROFILE = {"spr": INTEL_SAPPHIRE_RAPIDS, "zen5": AMD_ZEN5, "zen4": AMD_ZEN4, "zen3": AMD_ZEN3}


def _register_words(text: str) -> list[int]:
    raw = text.encode().ljust(48, b"\0")
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]


class Cpuid:
    """Answers CPUID for one vCPU: ``query(leaf, subleaf) -> (eax, ebx, ecx, edx)``."""

    def __init__(self, model: CpuModel, cpu_index: int, cpu_count: int, xstate, xstate_leaf=None):
        self.model = model
        self.cpu_index = cpu_index
        self.cpu_count = cpu_count
        self.xstate = xstate            # the vCPU's ExtendedState: leaf 0xD depends on XCR0/XSS
        # (subleaf, xcr0, xss) -> 4 registers; provided by the XSTATE layout.
        self.xstate_leaf = xstate_leaf

    @property
    def max_basic_leaf(self) -> int:
        return 0x1E if self.model.amx else 0x0D

    def query(self, leaf: int, subleaf: int) -> tuple[int, int, int, int]:
        model = self.model
        vendor = model.vendor.encode()
        vendor_words = [int.from_bytes(vendor[i:i + 4], "little") for i in (0, 4, 8)]
        if leaf == 0:
            return self.max_basic_leaf, vendor_words[0], vendor_words[2], vendor_words[1]
        if leaf == 1:
            ebx = (8 << 8) | (min(self.cpu_count, 255) << 16) | ((self.cpu_index & 0xFF) << 24)
            ecx = (_LEAF1_ECX_BASE | CPUID1_ECX_X2APIC | CPUID1_ECX_TSC_DEADLINE
                   | CPUID1_ECX_XSAVE | CPUID1_ECX_OSXSAVE | (CPUID1_ECX_PCID if model.pcid else 0))
            return model.signature, ebx, ecx, CPUID1_EDX
        if leaf == 7:
            if subleaf != 0:
                return 0, 0, 0, 0
            ebx = (CPUID7_EBX_FSGSBASE | CPUID7_EBX_BMI1 | CPUID7_EBX_SMEP | CPUID7_EBX_BMI2
                   | CPUID7_EBX_ERMS | (CPUID7_EBX_INVPCID if model.invpcid else 0))
            edx = 0
            if model.serialize:
                edx |= CPUID7_EDX_SERIALIZE
            if model.amx:
                edx |= CPUID7_EDX_AMX_BF16 | CPUID7_EDX_AMX_TILE | CPUID7_EDX_AMX_INT8
            return 0, ebx, CPUID7_ECX_RDPID, edx
        if leaf == 0xB:
            # x2APIC topology: one thread per core, every vCPU a core.
            if subleaf == 0:
                return 0, 1, 0x100 | subleaf, self.cpu_index
            if subleaf == 1:
                return 0, self.cpu_count, 0x200 | subleaf, self.cpu_index
            return 0, 0, subleaf, self.cpu_index
        if leaf == 0xD and self.xstate_leaf is not None:
            eax, ebx, ecx, edx = self.xstate_leaf(subleaf, self.xstate.xcr0, self.xstate.xss)
            if not model.amx:
                # Without AMX there are no tile components and no XFD (an AMD EPYC
                # reports CPUID.(0xD,1).EAX = 0xF and all-zero sub-leaves 17 and 18).
                if subleaf in (XFEATURE_XTILECFG, XFEATURE_XTILEDATA):
                    return 0, 0, 0, 0
                if subleaf == 0:
                    eax &= ~XFEATURE_MASK_XTILE
                    ecx = self.xstate_leaf(0, eax | edx << 32, 0)[1]   # size of everything supported
                elif subleaf == 1:
                    eax &= ~CPUID_D1_EAX_XFD
            return eax, ebx, ecx, edx
        if leaf == 0x1D and model.amx:
            if subleaf == 0:
                return 1, 0, 0, 0          # max palette
            if subleaf == 1:
                return (AMX_TOTAL_TILE_BYTES | (AMX_BYTES_PER_TILE << 16),
                        AMX_BYTES_PER_ROW | (AMX_MAX_NAMES << 16), AMX_MAX_ROWS, 0)
            return 0, 0, 0, 0
        if leaf == 0x1E and model.amx:
            return (0, AMX_TMUL_MAXK | (AMX_TMUL_MAXN << 8), 0, 0) if subleaf == 0 else (0, 0, 0, 0)
        if leaf == 0x80000000:
            return 0x80000008, vendor_words[0], vendor_words[2], vendor_words[1]
        if leaf == 0x80000001:
            return model.signature, 0, CPUID80000001_ECX_LAHF, CPUID80000001_EDX
        if 0x80000002 <= leaf <= 0x80000004:
            words = _register_words(model.brand)
            base = (leaf - 0x80000002) * 4
            return tuple(words[base:base + 4])
        if leaf == 0x80000008:
            ebx = CPUID80000008_EBX_INVLPGB if model.invlpgb else 0
            edx = (INVLPGB_MAX_PAGES - 1) if model.invlpgb else 0
            return 46 | (48 << 8), ebx, max(0, self.cpu_count - 1), edx
        return 0, 0, 0, 0

