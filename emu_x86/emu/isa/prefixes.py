"""Instruction-length and legacy-prefix constants (SDM Vol. 2 §2.1), apart
from the codec (encoding.py) so that the modules every run imports -- the
vCPU, the translation-abort guard -- need not build the codec's tables:
encoding.py is loaded when an extension instruction is first decoded."""

MAX_INSTRUCTION_BYTES = 15          # SDM Vol. 2 §2.1: longer is #GP(0); not decoded here

# Legacy prefixes (SDM Vol. 2 §2.1.1) with the names objdump prints for an unused one.
SEGMENT_PREFIXES = {"es": 0x26, "cs": 0x2E, "ss": 0x36, "ds": 0x3E, "fs": 0x64, "gs": 0x65}
PREFIX_NAMES = {0x26: "es", 0x2E: "cs", 0x36: "ss", 0x3E: "ds", 0x64: "fs", 0x65: "gs",
                0x66: "data16", 0x67: "addr32", 0xF0: "lock", 0xF2: "repnz", 0xF3: "repz"}
PREFIX_OPERAND_SIZE, PREFIX_ADDRESS_SIZE, PREFIX_LOCK = 0x66, 0x67, 0xF0
