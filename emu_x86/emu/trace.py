"""Step-debugging records: one per retired instruction and one per machine or kernel event.

Tracing costs nothing when off: ``Machine.events`` is ``None`` and only the
rare paths (traps, IPIs, flushes, context switches, XSAVES) test it. When on,
``Tracer.install`` adds a *separate* Python ``UC_HOOK_CODE`` per vCPU; the C
block hook (emu_x86/emu/timing/hotpath.c) is untouched, so cycle and instruction
counts are the same traced or not.

An instruction's register changes are known only when the next one starts
(or the vCPU stops), so each record is written one step late; the kernel's
own writes between two runs (a syscall's result, a context switch) are not
blamed on an instruction: the baseline is taken again on every resume.

Records are plain dicts (``type``, ``cpu``, ``task``, ``cycle`` + fields)
handed to sinks: ``JsonLinesSink`` (``--trace``), ``TextSink`` (``emu trace
--format text``) and ``emu.timeline.Timeline`` (``--timeline``).
"""
from __future__ import annotations

import ctypes
import heapq
import zlib
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86
from emu_x86.emu.isa.prefixes import MAX_INSTRUCTION_BYTES
from emu_x86.emu.isa.state import TILE_COUNT as TILE_REGISTERS
from emu_x86.emu.traps import VECTOR_NAMES, CpuException

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.vcpu import VCpu

# The registers whose changes an instruction record lists (RIP always changes).
_TRACKED_REGISTERS = tuple(
    [(name, getattr(x86, f"UC_X86_REG_{name.upper()}")) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rflags", "fs_base", "gs_base", "mxcsr", "fpsw")]
    + [(f"xmm{i}", getattr(x86, f"UC_X86_REG_XMM{i}")) for i in range(16)])
_SLOT_BYTES = 16      # the widest tracked register (XMM)
_REGISTER_WIDTH_BYTES = {name: 16 if name.startswith("xmm") else 8 for name, _ in _TRACKED_REGISTERS}
_uclib = uclib.lib


class _RegisterReader:
    """All tracked registers of one Unicorn instance in one ``uc_reg_read_batch``
    call: the Python binding's per-register path costs ~20 µs each."""

    def __init__(self, uc):
        count = len(_TRACKED_REGISTERS)
        self.handle = uc._uch
        self.count = count
        self.ids = (ctypes.c_int * count)(*[reg_id for _name, reg_id in _TRACKED_REGISTERS])
        self.buffer = ctypes.create_string_buffer(count * _SLOT_BYTES)
        base = ctypes.addressof(self.buffer)
        self.pointers = (ctypes.c_void_p * count)(*[base + i * _SLOT_BYTES for i in range(count)])

    def read(self) -> bytes:
        ctypes.memset(self.buffer, 0, self.count * _SLOT_BYTES)
        status = _uclib.uc_reg_read_batch(self.handle, self.ids, self.pointers, self.count)
        if status != 0:
            raise uclib.UcError(status)
        return self.buffer.raw


# Tile registers are compared only after an instruction that can change them:
# AMX (every one is VEX3-encoded) or the XRSTOR family.
_VEX3 = 0xC4


class TraceFilter:
    """Which records reach the sinks. ``cpus``: set of CPU numbers or None;
    cycles ``[from_cycle, to_cycle)``; an address window starts a vCPU's
    instruction records when RIP reaches ``from_address`` and ends them after
    ``to_address``; ``events_only`` drops instruction records (and their hook)."""

    def __init__(self, cpus=None, from_cycle=None, to_cycle=None, from_address=None, to_address=None,
                 events_only=False):
        self.cpus = set(cpus) if cpus is not None else None
        self.from_cycle, self.to_cycle = from_cycle, to_cycle
        self.from_address, self.to_address = from_address, to_address
        self.events_only = events_only

    def wants(self, cpu: int, cycle: int) -> bool:
        if self.cpus is not None and cpu not in self.cpus:
            return False
        if self.from_cycle is not None and cycle < self.from_cycle:
            return False
        return self.to_cycle is None or cycle < self.to_cycle


class _PendingInstruction:
    __slots__ = ("cycle", "rip", "size", "task")

    def __init__(self, rip, size, cycle, task):
        self.rip, self.size, self.cycle, self.task = rip, size, cycle, task


class _VcpuTraceState:
    def __init__(self):
        self.pending: _PendingInstruction | None = None
        self.baseline: dict | None = None
        self.in_address_window = False
        self.hook = None
        self.reader: _RegisterReader | None = None


class Tracer:
    """The machine's event sink while tracing (``Machine.events``).

    ``task_id_of(cpu)`` names the task running on a CPU (the kernel knows; the
    machine does not), ``sinks`` receive every record that passes ``filter``.
    """

    def __init__(self, machine: Machine, sinks, task_id_of: Callable[[int], int | None] = lambda cpu: None,
                 trace_filter: TraceFilter | None = None, instructions: bool = True):
        self.machine = machine
        self.sinks = list(sinks)
        self.task_id_of = task_id_of
        self.filter = trace_filter or TraceFilter()
        self.instructions = instructions and not self.filter.events_only
        self._states = [_VcpuTraceState() for _ in machine.vcpus]
        import capstone         # only a traced run pays for it (emu_x86/emu/isa/decoder.py)
        self._disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._disassembler.syntax = capstone.CS_OPT_SYNTAX_ATT
        self._disassembly_cache: dict[tuple[int, int, bytes], str] = {}
        # Syscalls whose result is not known yet, by task id: written when the task next resumes.
        self._open_syscalls: dict[int | None, dict] = {}

    # ---- installation --------------------------------------------------------

    def install(self) -> None:
        self.machine.events = self
        for vcpu in self.machine.vcpus:      # tasks already placed before tracing began
            task = self.task_id_of(vcpu.index)
            if task is not None:
                self.emit(vcpu, "context_switch", prev=None, next=task)
        if not self.instructions:
            return
        for vcpu, state in zip(self.machine.vcpus, self._states):
            if self.filter.cpus is not None and vcpu.index not in self.filter.cpus:
                continue
            state.in_address_window = self.filter.from_address is None
            self._hook_instructions(vcpu)
            vcpu.unicorn_replaced_listeners.append(self._hook_instructions)

    def _hook_instructions(self, vcpu: VCpu) -> None:
        """The per-instruction hook, on the vCPU's current Unicorn instance
        (again after VCpu._replace_aborted_unicorn swaps it)."""
        state = self._states[vcpu.index]
        state.reader = _RegisterReader(vcpu.uc)
        state.hook = vcpu.uc.hook_add(uclib.UC_HOOK_CODE, self._on_instruction, vcpu)

    def close(self) -> None:
        """Write what is still pending and flush the sinks."""
        for vcpu in self.machine.vcpus:
            self.stopped(vcpu, None)
        for sink in self.sinks:
            sink.close()

    # ---- the event interface (called by the machine and the kernel) -----------

    def emit(self, vcpu: VCpu, kind: str, /, **fields) -> None:
        """One event on ``vcpu`` at its current clock."""
        self._flush_pending(vcpu, faulted=None, retired=True)
        if kind == "syscall":
            self._open_syscalls[self.task_id_of(vcpu.index)] = fields
        self._write(vcpu.index, vcpu.cycles, kind, fields)

    def resume(self, vcpu: VCpu) -> None:
        """The vCPU is about to run guest code: close a syscall left open by
        its task, and take the register baseline."""
        task = self.task_id_of(vcpu.index)
        call = self._open_syscalls.pop(task, None)
        if call is not None:
            result = vcpu.uc.reg_read(x86.UC_X86_REG_RAX)
            self._write(vcpu.index, vcpu.cycles, "syscall_return",
                        {"name": call["name"], "nr": call["nr"], "result": _signed(result)})
        state = self._states[vcpu.index]
        if state.hook is not None:
            state.baseline = self._snapshot(vcpu)
            state.pending = None

    def stopped(self, vcpu: VCpu, exception: CpuException | None) -> None:
        """Unicorn returned: the last instruction retired, faulted, or never started."""
        self._flush_pending(vcpu, faulted=exception)

    # ---- instruction records ----------------------------------------------------

    def _on_instruction(self, uc, address, size, vcpu) -> None:
        if vcpu.preempt is not None and vcpu.preempt.reached:
            return      # --sched: the preemption hook (added first) stopped the run before this instruction
        state = self._states[vcpu.index]
        if state.pending is not None:
            # The next instruction starts: the previous one retired, even at the
            # same RIP (one iteration of a REP string instruction).
            self._flush_pending(vcpu, faulted=None, retired=True)
        if not state.in_address_window:
            if address != self.filter.from_address:
                return
            state.in_address_window = True
            state.baseline = self._snapshot(vcpu)   # what ran before the window is not this one's doing
        state.pending = _PendingInstruction(address, size, vcpu.cycles, self.task_id_of(vcpu.index))
        if address == self.filter.to_address:
            state.in_address_window = False

    def _flush_pending(self, vcpu: VCpu, faulted: CpuException | None, retired: bool = False) -> None:
        state = self._states[vcpu.index]
        pending = state.pending
        if pending is None:
            return
        state.pending = None
        rip = vcpu.uc.reg_read(x86.UC_X86_REG_RIP)
        if not retired and faulted is None and rip == pending.rip and not self._is_branch_to_self(vcpu, pending):
            return    # the hook ran but the block was abandoned at a deadline: it runs again later
        code, text = self._disassemble(vcpu, pending.rip, pending.size)
        now = self._snapshot(vcpu)
        changed = _changes(state.baseline, now)
        state.baseline = now
        if not (code[:1] == bytes([_VEX3]) or text.startswith("xrstor")):
            changed.pop("tiles", None)
            changed.pop("tilecfg", None)
        record = {"rip": f"{pending.rip:#x}", "bytes": code.hex(), "asm": text,
                  "regs": {name: _format_value(value) for name, value in changed.items()}}
        if faulted is not None and rip == pending.rip:
            record["faulted"] = faulted.name
        if self.filter.wants(vcpu.index, pending.cycle):
            self._emit_record(vcpu.index, pending.task, pending.cycle, "insn", record)

    def _is_branch_to_self(self, vcpu, pending) -> bool:
        code, _ = self._disassemble(vcpu, pending.rip, pending.size)
        return code[:1] == b"\xeb" and code[1:2] == b"\xfe"    # jmp . : RIP equal, yet it ran

    def _snapshot(self, vcpu: VCpu) -> tuple:
        """(raw register bytes, xfd, xfd_err, tilecfg, tiles object): compared cheaply,
        decoded only where they differ."""
        xstate = vcpu.xstate
        return (self._states[vcpu.index].reader.read(), xstate.xfd, xstate.xfd_err, bytes(xstate.tilecfg),
                xstate.tile_bytes() if xstate.tiles_in_use else None)

    def _disassemble(self, vcpu: VCpu, rip: int, size: int) -> tuple[bytes, str]:
        """Capstone first; the project's decoder for what capstone does not
        know (AMX, INVLPGB, TLBSYNC, RDPID, ...)."""
        try:
            code = vcpu.machine.read_virtual(vcpu, rip, MAX_INSTRUCTION_BYTES)
        except CpuException:
            code = vcpu.fetch_code(rip, MAX_INSTRUCTION_BYTES)
        key = (vcpu.cr3, rip, code)
        text = self._disassembly_cache.get(key)
        if text is None:
            text, length = disassemble_one(self._disassembler, code, rip)
            self._disassembly_cache[key] = text = (text, length)
        text, length = text
        return code[:length or size], text

    # ---- writing ---------------------------------------------------------------

    def _write(self, cpu: int, cycle: int, kind: str, fields: dict) -> None:
        if self.filter.wants(cpu, cycle):
            self._emit_record(cpu, self.task_id_of(cpu), cycle, kind, fields)

    def _emit_record(self, cpu, task, cycle, kind, fields) -> None:
        record = {"type": kind, "cpu": cpu, "task": task, "cycle": cycle}
        record.update(fields)
        for sink in self.sinks:
            sink.write(record)


def _changes(before: tuple, after: tuple) -> dict:
    """The registers that differ between two snapshots, by name."""
    changed = {}
    old, new = before[0], after[0]
    if old != new:
        for index, (name, _reg_id) in enumerate(_TRACKED_REGISTERS):
            start = index * _SLOT_BYTES
            if old[start:start + _SLOT_BYTES] != new[start:start + _SLOT_BYTES]:
                changed[name] = int.from_bytes(new[start:start + _REGISTER_WIDTH_BYTES[name]], "little")
    for index, name in ((1, "xfd"), (2, "xfd_err"), (3, "tilecfg")):
        if before[index] != after[index]:
            changed[name] = after[index]
    if before[4] != after[4]:
        tile_bytes = after[4] or bytes(len(before[4]))
        size = len(tile_bytes) // TILE_REGISTERS
        changed["tiles"] = tuple(zlib.crc32(tile_bytes[i * size:(i + 1) * size]) for i in range(TILE_REGISTERS))
    return changed


def disassemble_one(disassembler, code: bytes, address: int) -> tuple[str, int]:
    """(AT&T text, length) of the instruction at the start of ``code``."""
    from emu_x86.emu.isa import encoding     # the codec: loaded when a trace first decodes
    decoded = encoding.decode(code, address)
    if decoded is not None:
        return encoding.format_att(decoded, address), decoded.length
    for insn in disassembler.disasm(code, address, 1):
        return f"{insn.mnemonic} {insn.op_str}".strip(), insn.size
    return "(bad)", 0


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _format_value(value) -> str | list:
    if isinstance(value, int):
        return f"{value:#x}"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [f"{v:#010x}" for v in value]
    return str(value)


def exception_fields(exc: CpuException) -> dict:
    """An exception event's fields: vector name, error code, and CR2 for #PF."""
    fields = {"vector": VECTOR_NAMES.get(exc.vector, str(exc.vector)), "error_code": exc.error_code}
    address = getattr(exc, "address", None)
    if address is not None:
        fields["address"] = f"{address:#x}"
    return fields


# ---- sinks ----------------------------------------------------------------------

class JsonLinesSink:
    """One JSON object per line (``--trace FILE``, ``emu trace``)."""

    def __init__(self, stream, close_stream: bool = False):
        import json         # only a traced run writes JSON: not on a plain run's start-up path
        self.stream = stream
        self.close_stream = close_stream
        self._encode = json.JSONEncoder(separators=(",", ":")).encode

    def write(self, record: dict) -> None:
        self.stream.write(self._encode(record) + "\n")

    def close(self) -> None:
        self.stream.flush()
        if self.close_stream:
            self.stream.close()


class CycleOrderedSink:
    """Hands records to ``sink`` in cycle order across vCPUs.

    The scheduler runs the vCPU with the smallest clock for a quantum, so each
    vCPU's records arrive in its own cycle order but a quantum of one vCPU's
    records arrives before the other vCPUs' records of the same cycles. A
    record is released once every vCPU that is not halted has a clock at or
    past it (nothing earlier can still come from them); ties keep arrival
    order. ``close`` releases the rest. With several vCPUs the trace on stdout
    may therefore lag behind the guest's own output by up to a quantum."""

    def __init__(self, sink, machine: Machine):
        self.sink = sink
        self.machine = machine
        self._held: list = []
        self._arrivals = 0

    def write(self, record: dict) -> None:
        heapq.heappush(self._held, (record["cycle"], self._arrivals, record))
        self._arrivals += 1
        clocks = [vcpu.cycles for vcpu in self.machine.vcpus if not vcpu.halted]
        watermark = min(clocks) if clocks else None
        while self._held and (watermark is None or self._held[0][0] <= watermark):
            self.sink.write(heapq.heappop(self._held)[2])

    def close(self) -> None:
        while self._held:
            self.sink.write(heapq.heappop(self._held)[2])
        self.sink.close()


_COLORS = {"insn": "", "asm": "\x1b[36m", "regs": "\x1b[2m", "event": "\x1b[1;33m", "fault": "\x1b[1;31m",
           "reset": "\x1b[0m"}


class TextSink:
    """The human-readable trace: one line per record, ANSI-coloured on a terminal."""

    def __init__(self, stream, color: bool = False, close_stream: bool = False):
        self.stream = stream
        self.color = color
        self.close_stream = close_stream

    def _paint(self, key: str, text: str) -> str:
        return f"{_COLORS[key]}{text}{_COLORS['reset']}" if self.color and text else text

    def write(self, record: dict) -> None:
        task = "-" if record["task"] is None else record["task"]
        head = f"{record['cycle']:>12} cpu{record['cpu']} t{task:<6}"
        if record["type"] == "insn":
            regs = " ".join(f"{name}={value if isinstance(value, str) else ','.join(value)}"
                            for name, value in record["regs"].items())
            asm = self._paint("asm", f"{record['asm']:<40}")
            line = f"{head} {record['rip']:>18}  {asm} {self._paint('regs', regs)}"
            if "faulted" in record:
                line += " " + self._paint("fault", f"faulted {record['faulted']}")
        else:
            fields = " ".join(f"{key}={_text(value)}" for key, value in record.items()
                              if key not in ("type", "cpu", "task", "cycle"))
            line = f"{head} {self._paint('event', '== ' + record['type'])} {fields}"
        self.stream.write(line.rstrip() + "\n")

    def close(self) -> None:
        self.stream.flush()
        if self.close_stream:
            self.stream.close()


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
