"""Cost profiles: cycles per instruction class and per event, loaded from TOML.

A profile is data (``profiles/*.toml``), one per modelled core. Blocks are
priced once, when first executed, by classifying each instruction with
capstone; events (syscall, faults, TLB and IPI operations...) are charged by
the code that performs them through ``Profile.event_cycles``.
"""
from __future__ import annotations

import marshal
import math
import os
from dataclasses import dataclass

from emu_x86.emu.isa.decoder import CS_AC_READ, CS_AC_WRITE, CS_GRP_CALL, CS_GRP_JUMP, CS_GRP_RET, X86_OP_MEM, X86_OP_REG

from emu_x86.emu.timing import schedule
from emu_x86.emu.timing.schedule import ONE_CYCLE, Uarch

PROFILES_DIR = os.path.join(os.path.dirname(__file__), "profiles")   # a str: no pathlib at start-up
DEFAULT_PROFILE = "spr"
# The TLB model keeps each set's fill order as bytes (emu_x86/emu/mmu/tlb.h TLB_MAX_WAYS).
TLB_MAX_WAYS = 255

INSTRUCTION_CLASSES = (
    "alu", "nop", "load", "store", "branch", "call_ret", "multiply", "divide", "string_op",
    "sse_simple", "sse_fp", "sse_divide", "x87", "serializing", "rdtsc", "syscall_insn", "other",
)
EVENTS = (
    "syscall", "exception_entry", "page_fault", "nm_fault", "gp_fault", "page_walk_level", "tlb_hit",
    "invlpg", "cr3_write_flush", "cr3_write_noflush", "invpcid_single", "invpcid_context", "invpcid_all",
    "invlpgb_per_page", "invlpgb_base", "invlpgb_latency", "tlbsync", "ipi_send", "ipi_latency", "ipi_receive", "mm_refcount_atomic", "hazard_pointer_scan", "page_copy",
    "context_switch",
    "xsave_per_byte", "xsave_base", "xrstors_skipped", "tdpb_d", "tdpbf16ps", "tile_load_store",
    "page_alloc", "vmalloc_page", "vfree_page", "kmalloc", "memcpy_per_byte",
)
# The cpu_opv proposal (emu_x86/kernel/cpu_opv.py): pinning and mapping one user page,
# and one operation on a pinned page per 64-byte line it touches.
EVENTS += ("cpu_opv_pin_page", "cpu_opv_op_line")


class ProfileError(Exception):
    pass


_MULTIPLY = {"mul", "imul", "mulx"}
_DIVIDE = {"div", "idiv"}
_STRING = {"movsb", "movsw", "movsd", "movsq", "stosb", "stosw", "stosd", "stosq", "lodsb", "lodsw",
           "lodsd", "lodsq", "cmpsb", "cmpsw", "cmpsd", "cmpsq", "scasb", "scasw", "scasd", "scasq"}
_SERIALIZING = {"cpuid", "mfence", "lfence", "sfence", "serialize", "wbinvd", "invd", "iretq", "wrmsr"}
_SSE_DIVIDE = {"divss", "divsd", "divps", "divpd", "sqrtss", "sqrtsd", "sqrtps", "sqrtpd"}
_SSE_FP_PREFIXES = ("add", "sub", "mul", "min", "max", "cvt", "comis", "ucomis", "rcp", "rsqrt", "round",
                    "dp", "hadd", "hsub")
_SSE_FP_SUFFIXES = ("ss", "sd", "ps", "pd")


@dataclass(frozen=True)
class TlbGeometry:
    """The modelled TLB (emu_x86/emu/mmu/tlb.h): ``entries`` 4 KiB translations in
    ``entries // ways`` sets (a power of two), plus ``large_entries`` fully
    associative 2 MiB/1 GiB ones."""
    entries: int
    ways: int
    large_entries: int
    walk_line_reuse: bool = False   # walks charge only reads of lines the previous walk did not read (tlb.h)

    @property
    def sets(self) -> int:
        return self.entries // self.ways


@dataclass(frozen=True)
class Profile:
    """A cost profile as loaded from its TOML file (emu_x86/profiles/)."""

    name: str
    description: str
    frequency_hz: int
    instruction_cycles: dict
    event_costs: dict
    path: str
    tlb: TlbGeometry
    # The [uarch] table (emu_x86/emu/timing/schedule.py) when the profile prices blocks
    # by dependencies and ports; None: the sum of reciprocal throughputs.
    uarch: Uarch | None = None
    # The [memory] section (emu_x86/emu/timing/cache.c): cache geometry and latencies
    # for --cache-model, and the default path's proxy; empty when absent.
    memory: dict | None = None

    @property
    def price_key(self) -> tuple:
        """What block prices depend on: equal keys share decoded blocks."""
        return (tuple(sorted(self.instruction_cycles.items())), self.uarch.key() if self.uarch else None)

    def event_cycles(self, event: str, count: float = 1) -> int:
        return int(round(self.event_costs[event] * count))

    def classify(self, insn) -> str:
        """The cost class of one capstone instruction (detail mode)."""
        mnemonic = insn.mnemonic
        if mnemonic.startswith(("rep", "repne", "repe")) and " " in mnemonic:
            mnemonic = mnemonic.split()[-1]
        if mnemonic in _STRING:
            return "string_op"
        if mnemonic == "syscall":
            return "syscall_insn"
        if mnemonic in ("rdtsc", "rdtscp"):
            return "rdtsc"
        if mnemonic in _SERIALIZING:
            return "serializing"
        if mnemonic.startswith("nop") or mnemonic in ("endbr64", "pause"):
            return "nop"
        if mnemonic in ("call", "ret"):
            return "call_ret"
        groups = insn.groups
        if CS_GRP_JUMP in groups or CS_GRP_RET in groups or CS_GRP_CALL in groups:
            return "branch"
        if mnemonic in _MULTIPLY:
            return "multiply"
        if mnemonic in _DIVIDE:
            return "divide"
        if mnemonic in _SSE_DIVIDE:
            return "sse_divide"
        if mnemonic.startswith("f"):
            return "x87"
        if any(op.type == X86_OP_REG and insn.reg_name(op.reg).startswith("xmm") for op in insn.operands):
            if mnemonic.startswith(_SSE_FP_PREFIXES) and mnemonic.endswith(_SSE_FP_SUFFIXES):
                return "sse_fp"
            return "sse_simple"
        return "alu"

    def instruction_cost(self, insn) -> float:
        cost = self.instruction_cycles[self.classify(insn)]
        if insn.mnemonic.startswith(("lea", "nop")):
            return cost   # address arithmetic, no memory access
        for op in insn.operands:
            if op.type == X86_OP_MEM:
                if op.access & CS_AC_READ:
                    cost += self.instruction_cycles["load"]
                if op.access & CS_AC_WRITE:
                    cost += self.instruction_cycles["store"]
        return cost

    def block_price(self, instructions, cost_cache: dict | None = None) -> tuple[int, int, int]:
        """(entry, repeat, flags) of a block: hotpath.h's fixed-point prices of
        its first execution and of one right after itself, and its flags."""
        if self.uarch is not None:
            return schedule.price_block(instructions, self.uarch, self.classify)
        fixed = self.block_cycles(instructions, cost_cache) * ONE_CYCLE
        return fixed, fixed, 0

    def block_cycles(self, instructions, cost_cache: dict | None = None) -> int:
        """Cycles of a block: the rounded sum of its instructions, at least one.
        ``cost_cache`` (instruction bytes -> cost) skips the classification of
        instructions priced before: the cost depends on the bytes alone."""
        if cost_cache is None:
            costs = [self.instruction_cost(insn) for insn in instructions]
        else:
            costs = []
            for insn in instructions:
                key = bytes(insn.bytes)
                cost = cost_cache.get(key)
                if cost is None:
                    cost = cost_cache[key] = self.instruction_cost(insn)
                costs.append(cost)
        total = sum(costs)
        return max(1, int(math.floor(total + 0.5)))


def available_profiles() -> list[str]:
    return sorted(name[:-len(".toml")] for name in os.listdir(PROFILES_DIR) if name.endswith(".toml"))


# Parses kept per profile: one per version of its file, so that checkouts
# with different copies (each its own modification time) keep theirs.
KEPT_PROFILE_VERSIONS = 4


def _parsed_toml(path: str) -> dict:
    """The profile file's TOML, parsed once per version of the file: the
    parse is kept (marshal) beside the block price store, named by the
    file's size and modification time, since importing tomllib and parsing
    cost ~3 ms of every start-up. Without a cache directory, or when it
    cannot be read or written, the file is parsed."""
    from emu_x86.emu import block_price_store
    status = os.stat(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    cached = block_price_store.kept_file("profiles", f"{stem}-{status.st_size}-{status.st_mtime_ns}.marshal")
    if cached is not None:
        try:
            with open(cached, "rb") as handle:
                data = marshal.loads(handle.read())
            if type(data) is dict:
                return data
        except (OSError, EOFError, ValueError, TypeError):
            pass
    import tomllib
    try:
        with open(path, encoding="utf-8") as handle:
            data = tomllib.loads(handle.read())
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{path}: {error}") from None
    if cached is not None:
        try:
            kept = block_price_store.write_whole(cached, marshal.dumps(data))
        except ValueError:          # a value marshal cannot hold: parsed every time
            kept = False
        if kept:
            block_price_store.keep_newest(os.path.dirname(cached), KEPT_PROFILE_VERSIONS, f"{stem}-", ".marshal")
    return data


def load_profile(name: str = DEFAULT_PROFILE) -> Profile:
    path = os.path.join(PROFILES_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        raise ProfileError(f"unknown profile {name!r} (available: {', '.join(available_profiles())})")
    data = _parsed_toml(path)
    header, instructions, events = data.get("profile", {}), data.get("instructions", {}), data.get("events", {})
    tlb = _tlb_geometry(path, data.get("tlb", {}))
    uarch = _uarch(path, data["uarch"]) if "uarch" in data else None
    missing = [key for key in INSTRUCTION_CLASSES if key not in instructions] + \
              [key for key in EVENTS if key not in events]
    if missing:
        raise ProfileError(f"{path}: missing {', '.join(missing)}")
    return Profile(name=header.get("name", name), description=header.get("description", ""),
                   frequency_hz=int(header.get("frequency_hz", 2_000_000_000)),
                   instruction_cycles={k: float(instructions[k]) for k in INSTRUCTION_CLASSES},
                   event_costs={k: float(events[k]) for k in EVENTS}, path=path, tlb=tlb, uarch=uarch,
                   memory=dict(data.get("memory", {})))


# Instruction classes Profile.classify can return: each needs a [uarch.classes] row.
_SCHEDULED_CLASSES = tuple(c for c in INSTRUCTION_CLASSES if c not in ("load", "store"))


def _uarch(path: str, section: dict) -> Uarch:
    try:
        classes = {name: schedule.parse_row(row) for name, row in section["classes"].items()}
        mnemonics = {name: schedule.parse_row(row) for name, row in section.get("mnemonics", {}).items()}
        missing = [c for c in _SCHEDULED_CLASSES if c not in classes]
        if missing:
            raise ValueError(f"classes missing {', '.join(missing)}")
        return Uarch(dispatch_width=int(section["dispatch_width"]),
                     load_latency_cycles=float(section["load_latency_cycles"]),
                     vector_load_latency_cycles=float(section["vector_load_latency_cycles"]),
                     store_forward_cycles=float(section["store_forward_cycles"]),
                     load_ports=tuple(section["load_ports"].split()),
                     store_ports=tuple(section["store_ports"].split()),
                     taken_branch_cycles=float(section["taken_branch_cycles"]),
                     call_ret_cycles=float(section["call_ret_cycles"]),
                     string_startup_cycles=float(section["string_startup_cycles"]),
                     string_bytes_per_cycle=float(section["string_bytes_per_cycle"]),
                     string_store_bytes_per_cycle=float(section.get("string_store_bytes_per_cycle",
                                                                    section["string_bytes_per_cycle"])),
                     mispredict_penalty_cycles=int(section["mispredict_penalty_cycles"]),
                     classes=classes, mnemonics=mnemonics,
                     fp_bypass_cycles=float(section.get("fp_bypass_cycles", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ProfileError(f"{path}: [uarch]: {error}") from None


def _tlb_geometry(path: str, section: dict) -> TlbGeometry:
    try:
        geometry = TlbGeometry(entries=int(section["entries"]), ways=int(section["ways"]),
                               large_entries=int(section["large_entries"]),
                               walk_line_reuse=bool(section.get("walk_line_reuse", False)))
    except (KeyError, TypeError, ValueError):
        raise ProfileError(f"{path}: [tlb] needs integer entries, ways and large_entries") from None
    sets = geometry.sets
    if (geometry.ways < 1 or geometry.entries % geometry.ways or sets < 1 or sets & (sets - 1)
            or geometry.large_entries < 1):
        raise ProfileError(f"{path}: [tlb] entries / ways must be a power of two and large_entries >= 1")
    if geometry.ways > TLB_MAX_WAYS:
        raise ProfileError(f"{path}: [tlb] ways must be at most {TLB_MAX_WAYS}")
    return geometry
