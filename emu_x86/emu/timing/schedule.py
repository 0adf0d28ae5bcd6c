"""Dependency- and port-aware block pricing (profiles with a ``[uarch]`` table).

A translated block is priced once, when first seen, as the steady state of
that block run back to back, the way llvm-mca and uiCA price a basic block:

* **resources**: each instruction's micro-ops go to the least-loaded port
  they may use (a non-pipelined unit such as the divider keeps its port busy
  for ``occupancy`` cycles); the busiest port bounds the block, and so does
  dispatch width (micro-ops per cycle);
* **loop-carried dependencies**: register ready times are carried from one
  copy of the block to the next (a store followed by a load of the same
  address expression carries through memory, at the store-forwarding
  latency); the per-copy growth of the latest ready time is the recurrence
  bound -- 8 dependent ``add``s cost 8 cycles, 8 independent ones 2 (4 ALUs);
* **front end**: a block ending in a taken-able branch costs at least the
  profile's redirect cycles (``taken_branch_cycles``; ``call``/``ret``
  ``call_ret_cycles``).

The price is the largest of these bounds, in 1/256 cycles (emu_x86/emu/timing/hotpath.h
HOTPATH_CYCLE_FRACTION_BITS). Summing steady states over the blocks of a
multi-block loop adds each block's share of a chain that runs through them,
which is what the chain costs; it overlaps nothing across blocks, which is the
model's main approximation (see docs/calibration.md).

Two things are priced apart: a block that is one ``rep movs``/``rep stos``
(QEMU runs one iteration per block execution) costs ``bytes / string_bytes_per_cycle``
(``string_store_bytes_per_cycle`` for ``rep stos``) per iteration after a one-off ``string_startup_cycles`` (ERMSB/FSRM fast
strings), and a block ending in a conditional branch is flagged so the C hook
feeds its outcome to the branch predictor (hotpath.c).
"""
from __future__ import annotations

from dataclasses import dataclass

from emu_x86.emu.isa.decoder import CS_AC_READ, CS_AC_WRITE, CS_GRP_JUMP, X86_OP_MEM, X86_OP_REG

FRACTION_BITS = 8           # emu/timing/hotpath.h HOTPATH_CYCLE_FRACTION_BITS
ONE_CYCLE = 1 << FRACTION_BITS
# Block flags for the C hook (hotpath.h HOTPATH_BLOCK_*).
BLOCK_CONDITIONAL_BRANCH = 1
# Copies of the block simulated for the recurrence bound; the growth is
# measured over the second half, after the first copies' transient.
RECURRENCE_COPIES = 8
# The smallest price of a block that ran at least one instruction (so that a
# loop of cheap blocks still reaches its deadline).
MIN_BLOCK_FIXED = ONE_CYCLE // 16

_GPR_NAMES = {
    "rax": ("eax", "ax", "al", "ah"), "rbx": ("ebx", "bx", "bl", "bh"), "rcx": ("ecx", "cx", "cl", "ch"),
    "rdx": ("edx", "dx", "dl", "dh"), "rsi": ("esi", "si", "sil"), "rdi": ("edi", "di", "dil"),
    "rbp": ("ebp", "bp", "bpl"), "rsp": ("esp", "sp", "spl"),
}
_CANONICAL: dict[str, str] = {}
for _full, _parts in _GPR_NAMES.items():
    _CANONICAL[_full] = _full
    for _part in _parts:
        _CANONICAL[_part] = _full
for _n in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _CANONICAL[f"r{_n}{_suffix}"] = f"r{_n}"
for _n in range(32):
    for _prefix in ("xmm", "ymm", "zmm"):
        _CANONICAL[f"{_prefix}{_n}"] = f"v{_n}"
_CANONICAL.update(rflags="flags", eflags="flags", flags="flags")
_PARTIAL_WRITES = {name for name, full in _CANONICAL.items()
                   if full in _GPR_NAMES and name.endswith(("l", "h", "x", "i", "p")) and len(name) == 2
                   or name in ("sil", "dil", "bpl", "spl", "si", "di", "bp", "sp")}
_PARTIAL_WRITES |= {f"r{n}{s}" for n in range(8, 16) for s in ("w", "b")}
_ZERO_IDIOMS = {"xor", "sub", "pxor", "xorps", "xorpd", "vpxor", "vxorps", "vxorpd", "psubq", "psubd", "pcmpgtd",
                "sbb"}
_MOVE_ELIMINATION = {"mov", "movaps", "movapd", "movdqa", "movups", "movdqu"}
_STACK = {"push", "pop", "call", "ret"}
_CONDITIONAL_BRANCHES = {"jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp", "jl", "jge",
                         "jle", "jg", "jrcxz", "jecxz", "loop", "loope", "loopne"}
_FAST_STRINGS = {"movsb": 1, "movsw": 2, "movsd": 4, "movsq": 8, "stosb": 1, "stosw": 2, "stosd": 4, "stosq": 8}


@dataclass(frozen=True)
class UarchRow:
    """One row of a profile's [uarch] table: an instruction's result latency,
    micro-ops, the ports they may issue to, and how long a non-pipelined unit
    stays busy (0: pipelined)."""
    latency_cycles: float
    uops: int
    ports: tuple[str, ...]
    occupancy_cycles: float = 0.0


@dataclass(frozen=True)
class Uarch:
    """A core's issue resources and latencies, as the block scheduler uses them."""

    dispatch_width: int
    load_latency_cycles: float          # integer L1 load-to-use
    vector_load_latency_cycles: float   # SSE/AVX L1 load-to-use
    store_forward_cycles: float
    load_ports: tuple[str, ...]
    store_ports: tuple[str, ...]
    taken_branch_cycles: float
    call_ret_cycles: float
    string_startup_cycles: float
    string_bytes_per_cycle: float       # rep movs
    string_store_bytes_per_cycle: float # rep stos
    mispredict_penalty_cycles: int
    classes: dict[str, UarchRow]        # instruction class (profile.INSTRUCTION_CLASSES) -> row
    mnemonics: dict[str, UarchRow]      # overrides by mnemonic
    # Extra latency when an FP/SIMD result feeds an FP operation on a disjoint
    # set of pipes (e.g. Zen 5's FMUL pipes 0/1 into its FADD pipes 2/3): the
    # forwarding network's cross-pipe bypass delay. 0 on cores without one.
    fp_bypass_cycles: float = 0.0

    def key(self) -> tuple:
        return (self.fp_bypass_cycles, self.dispatch_width, self.load_latency_cycles, self.vector_load_latency_cycles,
                self.store_forward_cycles, self.load_ports, self.store_ports, self.taken_branch_cycles,
                self.call_ret_cycles, self.string_startup_cycles, self.string_bytes_per_cycle,
                self.string_store_bytes_per_cycle, self.mispredict_penalty_cycles, tuple(sorted(self.classes.items())),
                tuple(sorted(self.mnemonics.items())))


def parse_row(value) -> UarchRow:
    """``[latency, uops, "port port ...", occupancy?]`` from the TOML table."""
    if not isinstance(value, list) or not 3 <= len(value) <= 4:
        raise ValueError(f"{value!r}: want [latency_cycles, uops, \"ports\", occupancy_cycles?]")
    ports = tuple(str(value[2]).split())
    return UarchRow(float(value[0]), int(value[1]), ports, float(value[3]) if len(value) == 4 else 0.0)


def _regs_access(insn) -> tuple[list, list]:
    """capstone's (read, written) registers, or none for an instruction its
    detail tables do not cover (it is then priced by its row alone)."""
    from capstone import CsError          # loaded already: insn is one of its decodes
    try:
        return insn.regs_access()
    except CsError:
        return [], []


def _reg_names(insn, ids) -> list[str]:
    names = []
    for reg in ids:
        name = insn.reg_name(reg)
        if name and name != "rip":
            names.append(name)
    return names


@dataclass
class _Step:
    """One instruction, reduced to what the scheduler needs."""
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    latency_cycles: float
    load: bool
    vector: bool
    store: bool
    memory_key: tuple | None        # the address expression, when its registers are loop-invariant
    address_sources: tuple[str, ...]    # registers only the load's address reads
    uops: list[tuple[tuple[str, ...], float]]   # (eligible ports, cycles the port is busy)
    stack_only: bool                # push/pop/call/ret: rsp updates are free (stack engine)
    fp_ports: tuple[str, ...] = ()  # the FP pipes its operation runs on (cross-pipe bypass), or none
    fused: bool = False             # fused into the previous instruction's macro-op


def price_block(instructions, uarch: Uarch, classify) -> tuple[int, int, int]:
    """(entry, repeat, flags) of a block of capstone instructions (detail mode):
    the price of its first execution and of an execution right after itself,
    in 1/256 cycles, and its HOTPATH_BLOCK_* flags."""
    if not instructions:
        return 0, 0, 0
    last = instructions[-1]
    flags = BLOCK_CONDITIONAL_BRANCH if uarch.mispredict_penalty_cycles and last.mnemonic in _CONDITIONAL_BRANCHES \
        else 0
    string = _fast_string(instructions, uarch)
    if string is not None:
        return string[0], string[1], flags
    written_anywhere = set()
    for insn in instructions:
        _, writes = _regs_access(insn)
        written_anywhere.update(_CANONICAL.get(n, n) for n in _reg_names(insn, writes))
    steps = [_step(insn, uarch, classify, written_anywhere) for insn in instructions]
    # Macro-op fusion: a conditional branch right after the flag-setting
    # CMP/TEST/ALU op that feeds it issues as one macro-op (SOG 19h §2.9.4).
    if len(steps) >= 2 and last.mnemonic in _CONDITIONAL_BRANCHES and "flags" in steps[-2].destinations \
            and classify(instructions[-2]) == "alu" and not steps[-2].store:
        steps[-1].uops = []
        steps[-1].fused = True
    bound = max(_port_bound(steps, uarch), _recurrence_bound(steps, uarch))
    extra = sum(uarch.classes[cls].latency_cycles for cls in map(classify, instructions)
                if cls in ("serializing", "rdtsc"))
    bound += extra
    # Front-end redirects: a call or ret costs its redirect wherever it runs;
    # a jump's redirect bounds a block that loops to itself, while a block
    # entered from elsewhere overlaps it with the back end of its neighbours
    # (measured here: a two-block loop with a 2-cycle chain runs at 2 cycles,
    # not 1 + 2).
    entry = repeat = bound
    if last.mnemonic in ("call", "ret"):
        entry = repeat = max(bound, uarch.call_ret_cycles)
    elif CS_GRP_JUMP in last.groups:
        repeat = max(bound, uarch.taken_branch_cycles)
    return (max(MIN_BLOCK_FIXED, int(entry * ONE_CYCLE + 0.5)), max(MIN_BLOCK_FIXED, int(repeat * ONE_CYCLE + 0.5)),
            flags)


def _fast_string(instructions, uarch: Uarch) -> tuple[int, int] | None:
    """A block holding a ``rep movs``/``rep stos`` runs one iteration per
    execution (QEMU): the block that is only that instruction is charged the
    fast-string start-up on entry (the first iteration of a run of them runs
    in the block before, or here when the instruction starts a block) and
    its bytes at the profile's bandwidth on each repeat."""
    insn = instructions[-1]
    parts = insn.mnemonic.split()
    if len(parts) != 2 or parts[0] != "rep" or parts[1] not in _FAST_STRINGS:
        return None
    bandwidth = uarch.string_store_bytes_per_cycle if parts[1].startswith("stos") else uarch.string_bytes_per_cycle
    per_iteration = max(1, int(_FAST_STRINGS[parts[1]] / bandwidth * ONE_CYCLE + 0.5))
    if len(instructions) == 1:
        return int(uarch.string_startup_cycles * ONE_CYCLE) + per_iteration, per_iteration
    return None


def _row(insn, uarch: Uarch, cls: str) -> UarchRow:
    mnemonic = insn.mnemonic.split()[-1]
    row = uarch.mnemonics.get(mnemonic)
    if row is None:
        row = uarch.classes[cls]
    return row


def _step(insn, uarch: Uarch, classify, written_anywhere: set) -> _Step:
    reads, writes = _regs_access(insn)
    read_names, write_names = _reg_names(insn, reads), _reg_names(insn, writes)
    mnemonic = insn.mnemonic
    cls = classify(insn)
    row = _row(insn, uarch, cls)
    memory = [op for op in insn.operands if op.type == X86_OP_MEM]
    is_lea = mnemonic.startswith("lea") or cls == "nop"
    load = any(op.access & CS_AC_READ for op in memory) and not is_lea
    store = any(op.access & CS_AC_WRITE for op in memory) and not is_lea
    if mnemonic in ("push", "call"):
        store = True
    if mnemonic in ("pop", "ret"):
        load = True
    registers = [op for op in insn.operands if op.type == X86_OP_REG]
    vector = any(insn.reg_name(op.reg).startswith(("xmm", "ymm", "zmm")) for op in registers)
    sources = {_CANONICAL.get(n, n) for n in read_names}
    destinations = {_CANONICAL.get(n, n) for n in write_names}
    # A conditional move or set reads its destination (capstone omits it).
    if mnemonic.startswith("cmov"):
        sources |= destinations - {"flags"}
    # 8/16-bit writes merge into the old value; 32-bit writes zero-extend.
    sources |= {_CANONICAL[n] for n in write_names if n in _PARTIAL_WRITES and n in _CANONICAL}
    latency = row.latency_cycles
    if load and cls in ("alu", "sse_simple") and mnemonic.startswith("mov"):
        latency = 0.0       # a plain load: the load latency is all of it
    uops: list[tuple[tuple[str, ...], float]] = []
    same_registers = len(registers) == 2 and registers[0].reg == registers[1].reg and not memory
    if mnemonic in _ZERO_IDIOMS and same_registers:
        # Zeroing idiom: no input dependency, no execution unit (renamer).
        sources, latency = set(), 0.0
    elif mnemonic in _MOVE_ELIMINATION and len(registers) == 2 and not memory and registers[0].size >= 4:
        latency = 0.0       # move elimination at rename
    elif load and not store and latency == 0.0:
        uops = []           # a plain load: only the load micro-op below
    else:
        # A non-pipelined unit is busy for the instruction's occupancy once.
        uops = ([(row.ports, row.occupancy_cycles or 1.0)] + [(row.ports, 1.0)] * (row.uops - 1)
                if row.ports and row.uops else [])
    memory_key = None
    address_sources: set = set()
    if memory and not is_lea:
        op = memory[0].mem
        base = insn.reg_name(op.base) if op.base else None
        index = insn.reg_name(op.index) if op.index else None
        base, index = _CANONICAL.get(base, base), _CANONICAL.get(index, index)
        if base not in written_anywhere and index not in written_anywhere:
            memory_key = (base, index, op.scale, op.disp, memory[0].size)
        if load:
            operand_registers = {_CANONICAL.get(insn.reg_name(r.reg), "") for r in registers
                                 if r.access & CS_AC_READ}
            address_sources = {name for name in (base, index) if name and name not in operand_registers}
    elif mnemonic in ("pop", "ret"):
        address_sources = {"rsp"}
    sources -= address_sources
    if load:
        uops.append((uarch.load_ports, 1.0))
    if store:
        uops.append((uarch.store_ports, 1.0))
    return _Step(sources=tuple(sorted(sources)), destinations=tuple(sorted(destinations)), latency_cycles=latency,
                 load=load, vector=vector, store=store, memory_key=memory_key,
                 address_sources=tuple(sorted(address_sources)), uops=uops,
                 stack_only=mnemonic in _STACK,
                 fp_ports=row.ports if row.ports and all(p.startswith("fp") for p in row.ports) else ())


def _port_bound(steps: list[_Step], uarch: Uarch) -> float:
    """The steady-state port bound: over every union U of the micro-ops' port
    groups, the work that can only go to ports in U divided by |U| (what an
    ideal spread across iterations reaches, as llvm-mca's resource pressure);
    or micro-ops over dispatch width."""
    groups: dict[tuple[str, ...], float] = {}
    total_uops = 0
    for step in steps:
        total_uops += 0 if step.fused else max(1, len(step.uops))
        for ports, busy in step.uops:
            groups[ports] = groups.get(ports, 0.0) + busy
    bound = total_uops / uarch.dispatch_width
    items = list(groups.items())
    if len(items) > 10:         # never in practice: keep it cheap anyway
        items = sorted(items, key=lambda item: -item[1] / len(item[0]))[:10]
    for mask in range(1, 1 << len(items)):
        union = set()
        for bit, (ports, _) in enumerate(items):
            if mask >> bit & 1:
                union.update(ports)
        work = sum(busy for ports, busy in groups.items() if union.issuperset(ports))
        bound = max(bound, work / len(union))
    return bound


def _recurrence_bound(steps: list[_Step], uarch: Uarch) -> float:
    """Growth per copy of the latest ready time of a register (or of a
    forwarded store), over copies of the block run back to back."""
    ready: dict[str, float] = {}
    produced_on: dict[str, tuple[str, ...]] = {}    # register -> FP pipes of its last writer
    bypass = uarch.fp_bypass_cycles
    snapshots = []
    for _copy in range(RECURRENCE_COPIES):
        for step in steps:
            sources = step.sources
            start = 0.0
            for name in sources:
                if step.stack_only and name == "rsp":
                    continue
                available = ready.get(name, 0.0)
                if bypass and step.fp_ports and name in produced_on \
                        and not set(produced_on[name]).intersection(step.fp_ports):
                    available += bypass
                start = max(start, available)
            latency = step.latency_cycles
            if step.load:
                # The loaded value is ready a load latency after its address
                # (or when a store to the same expression forwards it); the
                # operation waits for it and for its other inputs.
                load_latency = uarch.vector_load_latency_cycles if step.vector else uarch.load_latency_cycles
                address = 0.0
                for name in step.address_sources:
                    if not (step.stack_only and name == "rsp"):
                        address = max(address, ready.get(name, 0.0))
                loaded = address + load_latency
                if step.memory_key is not None:
                    loaded = max(loaded, ready.get(("mem", step.memory_key), 0.0))
                start = max(start, loaded)
            done = start + latency
            for name in step.destinations:
                if name == "flags" and step.store and not step.destinations[1:]:
                    continue
                if step.stack_only and name == "rsp":
                    ready[name] = ready.get(name, 0.0)
                    continue
                ready[name] = done
                if step.fp_ports:
                    produced_on[name] = step.fp_ports
                else:
                    produced_on.pop(name, None)
            if step.store and step.memory_key is not None:
                ready[("mem", step.memory_key)] = start + step.latency_cycles + uarch.store_forward_cycles
        snapshots.append(dict(ready))
    half = RECURRENCE_COPIES // 2
    first, final = snapshots[half - 1], snapshots[-1]
    growth = max((final[name] - first.get(name, 0.0) for name in final), default=0.0)
    return max(0.0, growth / (RECURRENCE_COPIES - half))
