"""A gdb remote-serial-protocol stub: ``emu run --gdb PORT``.

Threads: given a ``GuestThreads`` view (emucli supplies one over the kernel),
every guest task is a gdb thread (thread id = its tid), whether it is on a
vCPU or not: a task off its CPU shows, and accepts, the registers saved when
it was switched out (``info threads``, ``thread N``, ``bt`` on a task blocked
in pthread_join). Without one (the machine alone), each vCPU is a thread (id =
CPU number + 1). The machine stops as a whole (all-stop): ``continue`` runs
the deterministic scheduler (``Machine.run``) until a breakpoint, a watchpoint
or the end of the program; ``stepi`` runs only the stepped task's vCPU for one
instruction, so the others' clocks do not move. A step over a system call that
blocks runs the machine until that task returns to user mode, as a step over a
sleeping syscall does on Linux.

Breakpoints (``Z0``/``Z1``) are ``UC_HOOK_CODE`` hooks on exactly their
address. Watchpoints (``Z2`` write, ``Z3`` read, ``Z4`` access) are a code
hook on every vCPU before each instruction (Unicorn's memory hooks do not fire
in the UC_TLB_VIRTUAL mode the machine uses): it checks what the previous
instruction on that vCPU accessed (its memory operands, decoded before it ran)
and, for write watches, whether the watched bytes changed, so the stop comes
on the accessing vCPU right after the access, as an x86 debug-register trap
(SDM Vol. 3B §17.2.4: data breakpoints are traps) would. Hooks added to
Unicorn are not seen by blocks translated before, so inserting either kind
drops the translated code (every block, or the breakpoint's page). Memory goes
through the selected vCPU's page tables; writes ignore page protection (as
ptrace does) and drop translated code there. ``target.xml`` describes the
x86-64 registers including ``fs_base``/``gs_base``. ``qRcmd`` (gdb's
``monitor``) is answered by the view's ``monitor(command)``. Stopping inside
a translated block refunds the rest of the block (``VCpu._refund_unexecuted``),
so instruction counts stay exact.
"""
from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import capstone
from capstone import x86_const as cs_x86

from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import ACCESS_READ
from emu_x86.emu.traps import CpuException

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.vcpu import VCpu

SIGTRAP = 5
SIGINT = 2           # the stop signal gdb expects after its Ctrl-C (interrupt)
CTRL_C = 0x03
# How often a running machine looks for gdb's Ctrl-C byte (wall-clock seconds).
CTRL_C_POLL_SECONDS = 0.05
MAX_PACKET_BYTES = 0x4000

# (name, bits, gdb type, Unicorn register or a special reader), in target.xml order.
_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
REGISTERS: list[tuple[str, int, str, object, str]] = (
    [(name, 64, "data_ptr" if name in ("rbp", "rsp") else "int64", getattr(x86, f"UC_X86_REG_{name.upper()}"),
      "core") for name in _GPRS]
    + [("rip", 64, "code_ptr", x86.UC_X86_REG_RIP, "core"), ("eflags", 32, "i386_eflags", x86.UC_X86_REG_EFLAGS, "core")]
    + [(seg, 32, "int32", getattr(x86, f"UC_X86_REG_{seg.upper()}"), "core") for seg in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [(f"st{i}", 80, "i387_ext", ("st", i), "core") for i in range(8)]
    + [("fctrl", 32, "int", x86.UC_X86_REG_FPCW, "core"), ("fstat", 32, "int", x86.UC_X86_REG_FPSW, "core"),
       ("ftag", 32, "int", x86.UC_X86_REG_FPTAG, "core")]
    + [(name, 32, "int", None, "core") for name in ("fiseg", "fioff", "foseg", "fooff", "fop")]
    + [(f"xmm{i}", 128, "vec128", getattr(x86, f"UC_X86_REG_XMM{i}"), "sse") for i in range(16)]
    + [("mxcsr", 32, "i386_mxcsr", x86.UC_X86_REG_MXCSR, "sse")]
    + [("orig_rax", 64, "int", None, "linux")]
    + [("fs_base", 64, "int", x86.UC_X86_REG_FS_BASE, "segments"),
       ("gs_base", 64, "int", x86.UC_X86_REG_GS_BASE, "segments")])

_FEATURES = {
    "core": ("org.gnu.gdb.i386.core", """
  <flags id="i386_eflags" size="4">
    <field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/>
    <field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
    <field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/>
    <field name="OF" start="11" end="11"/><field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
    <field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/><field name="VIF" start="19" end="19"/>
    <field name="VIP" start="20" end="20"/><field name="ID" start="21" end="21"/>
  </flags>"""),
    "sse": ("org.gnu.gdb.i386.sse", """
  <vector id="v8bf16" type="bfloat16" count="8"/><vector id="v8h" type="ieee_half" count="8"/>
  <vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
    <field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/>
    <field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>
    <field name="uint128" type="uint128"/>
  </union>
  <flags id="i386_mxcsr" size="4">
    <field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/><field name="ZE" start="2" end="2"/>
    <field name="OE" start="3" end="3"/><field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
    <field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/><field name="DM" start="8" end="8"/>
    <field name="ZM" start="9" end="9"/><field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
    <field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
  </flags>"""),
    "linux": ("org.gnu.gdb.i386.linux", ""),
    "segments": ("org.gnu.gdb.i386.segments", ""),
}


def _saved_register_value(saved: dict, name: str) -> int:
    """A register of a task off its CPU, from the registers saved at switch-out."""
    if name == "eflags":
        return saved.get("rflags", 0x202)
    if name in ("cs", "ss"):
        return {"cs": 0x33, "ss": 0x2B}[name]       # __USER_CS, __USER_DS
    if name == "orig_rax":
        return (1 << 64) - 1
    value = saved.get(name, 0)
    return value if isinstance(value, int) else 0


def target_xml() -> str:
    """The x86-64 target description gdb reads with qXfer:features:read."""
    parts = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', "<target>",
             "  <architecture>i386:x86-64</architecture>", "  <osabi>GNU/Linux</osabi>"]
    for key, (feature, types) in _FEATURES.items():
        parts.append(f'  <feature name="{feature}">{types}')
        for number, (name, bits, kind, _source, group) in enumerate(REGISTERS):
            if group == key:
                parts.append(f'    <reg name="{name}" bitsize="{bits}" type="{kind}" regnum="{number}"/>')
        parts.append("  </feature>")
    parts.append("</target>")
    return "\n".join(parts) + "\n"


class GuestThreads(Protocol):
    """What the stub needs to know of the guest's tasks (implemented over the kernel)."""

    def threads(self) -> list[int]: ...                 # live tids, oldest first
    def cpu_of(self, tid: int) -> int | None: ...       # the vCPU running it, if any
    def task_on(self, cpu: int) -> int | None: ...
    def saved_registers(self, tid: int) -> dict: ...    # a task off its CPU: its saved user registers
    def describe(self, tid: int) -> str: ...            # info threads' text
    def monitor(self, command: str) -> str: ...         # qRcmd


class _Stop:
    def __init__(self, vcpu: VCpu, reason: str = "", address: int | None = None, tid: int | None = None):
        self.vcpu, self.reason, self.address, self.tid = vcpu, reason, address, tid


# Watchpoint kinds by Z packet type, and the stop-reply word gdb expects for each.
WATCH_WRITE, WATCH_READ, WATCH_ACCESS = 2, 3, 4
_WATCH_REASON = {WATCH_WRITE: "watch", WATCH_READ: "rwatch", WATCH_ACCESS: "awatch"}
_ACCESS_DECODER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_ACCESS_DECODER.detail = True
_STACK_PUSHERS = {"push", "pushfq", "call"}
_STACK_POPPERS = {"pop", "popfq", "ret", "leave"}


def memory_accesses(code: bytes, rip: int, read_register) -> list[tuple[int, int, bool, bool]]:
    """(address, size_bytes, reads, writes) of each memory operand of the instruction
    at ``rip``, from capstone's operand access flags and the live registers."""
    try:
        insn = next(_ACCESS_DECODER.disasm(code, rip, 1))
    except StopIteration:
        return []
    accesses = []
    for operand in insn.operands:
        if operand.type != cs_x86.X86_OP_MEM or insn.mnemonic.startswith(("lea", "nop")):
            continue
        mem = operand.mem
        address = mem.disp
        if mem.base == cs_x86.X86_REG_RIP:
            address += insn.address + insn.size
        elif mem.base:
            address += read_register(insn.reg_name(mem.base))
        if mem.index:
            address += read_register(insn.reg_name(mem.index)) * mem.scale
        if mem.segment == cs_x86.X86_REG_FS:
            address += read_register("fs_base")
        elif mem.segment == cs_x86.X86_REG_GS:
            address += read_register("gs_base")
        access = operand.access or capstone.CS_AC_READ
        accesses.append((address & ((1 << 64) - 1), max(operand.size, 1),
                         bool(access & capstone.CS_AC_READ), bool(access & capstone.CS_AC_WRITE)))
    mnemonic = insn.mnemonic.split()[-1]
    rsp = read_register("rsp")
    if mnemonic in _STACK_PUSHERS:
        accesses.append(((rsp - 8) & ((1 << 64) - 1), 8, False, True))
    elif mnemonic in _STACK_POPPERS:
        accesses.append((rsp, 8, True, False))
    return accesses


class GdbStub:
    """Serves one gdb connection and drives the machine for it.

    ``exit_status()`` gives the program's status once the machine stopped;
    ``task_id_of(cpu)`` names the task on a CPU (shown by ``info threads``);
    ``announce(text)`` tells the user where to connect.
    """

    def __init__(self, machine: Machine, port: int, exit_status: Callable[[], int],
                 load_bias: int = 0, task_id_of: Callable[[int], int | None] = lambda cpu: None,
                 announce: Callable[[str], None] = lambda text: None, host: str = "127.0.0.1",
                 threads: GuestThreads | None = None):
        self.machine = machine
        self.guest_threads = threads
        self.selected_tid: int | None = None      # task mode: the thread of Hg (registers)
        self.exit_status = exit_status
        self.load_bias = load_bias
        self.task_id_of = task_id_of
        self.announce = announce
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self.connection: socket.socket | None = None
        self.selected = 0            # the vCPU of Hg (registers, memory) and of a plain step
        self.breakpoints: dict[tuple[int, int], list] = {}   # (kind, address) -> per-vCPU hooks
        # (kind, address, length) -> the bytes last seen (write watches compare them)
        self.watchpoints: dict[tuple[int, int, int], bytes] = {}
        self._watch_hooks: list = []
        # Per vCPU: the accesses of the instruction about to run (checked at the next one).
        self._last_accesses: dict[int, list] = {}
        self.stop: _Stop | None = _Stop(machine.vcpus[0])
        self.ack = True
        self._buffer = b""
        self.exited = False
        self._last_ctrl_c_poll = 0.0
        self._interrupt_pending = False
        for vcpu in machine.vcpus:
            vcpu.unicorn_replaced_listeners.append(self._rehook)

    def _rehook(self, vcpu: VCpu) -> None:
        """Add this vCPU's breakpoint and watchpoint hooks again on the Unicorn
        instance that replaced an aborted one (VCpu._replace_aborted_unicorn)."""
        index = self.machine.vcpus.index(vcpu)
        for (kind, address), hooks in self.breakpoints.items():
            hooks[index] = vcpu.uc.hook_add(uclib.UC_HOOK_CODE, self._on_breakpoint, (vcpu, kind),
                                            address, address)
        if self._watch_hooks:
            self._watch_hooks[index] = vcpu.uc.hook_add(uclib.UC_HOOK_CODE, self._check_watchpoints, vcpu)
        self._last_accesses.pop(index, None)

    # ---- the connection ----------------------------------------------------------

    def serve(self) -> None:
        """Wait for gdb, answer it until it detaches, kills, or the program ends."""
        self.announce(f"emu: waiting for gdb on 127.0.0.1:{self.port}")
        self.connection, _ = self.listener.accept()
        self.listener.close()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                packet = self._read_packet()
                if packet is None:             # gdb went away: finish the program undisturbed
                    self._detach()
                    return
                reply = self._handle(packet)
                if reply is not None:
                    try:
                        self._send(reply)
                    except ConnectionError:
                        self._detach()
                        return
                if self.exited or reply == "DETACHED":
                    return
        finally:
            self.connection.close()

    def _read_packet(self) -> str | None:
        while True:
            start = self._buffer.find(b"$")
            # A Ctrl-C byte that came with or before the packet that resumes
            # the guest (gdb sends it as soon as the user presses it).
            if CTRL_C in (self._buffer if start < 0 else self._buffer[:start]):
                self._interrupt_pending = True
                self._buffer = self._buffer.replace(bytes([CTRL_C]), b"", 1)
                continue
            if start >= 0:
                end = self._buffer.find(b"#", start)
                if end >= 0 and len(self._buffer) >= end + 3:
                    data = self._buffer[start + 1:end]
                    self._buffer = self._buffer[end + 3:]
                    if self.ack:
                        self.connection.sendall(b"+")
                    return data.decode("latin-1")
            try:
                chunk = self.connection.recv(65536)
            except ConnectionError:    # gdb was killed: same as a clean close
                return None
            if not chunk:
                return None
            self._buffer += chunk.replace(b"+", b"") if b"$" not in chunk else chunk

    def _send(self, data: str) -> None:
        if data == "DETACHED":
            data = "OK"
        payload = data.encode("latin-1")
        checksum = sum(payload) & 0xFF
        self.connection.sendall(b"$" + payload + b"#" + f"{checksum:02x}".encode())

    # ---- packets -------------------------------------------------------------------

    def _handle(self, packet: str) -> str | None:
        command = packet[:1]
        if packet.startswith("qSupported"):
            return (f"PacketSize={MAX_PACKET_BYTES:x};qXfer:features:read+;swbreak+;hwbreak+;"
                    "vContSupported+;QStartNoAckMode+")
        if packet == "QStartNoAckMode":
            self._send("OK")
            self.ack = False
            return None
        if packet.startswith("qXfer:features:read:target.xml:"):
            offset, length = (int(part, 16) for part in packet.rsplit(":", 1)[1].split(","))
            document = target_xml()
            piece = document[offset:offset + length]
            return ("m" if offset + length < len(document) else "l") + piece
        if packet == "?":
            return self._stop_reply()
        if packet == "qAttached":
            return "1"
        if packet == "qC":
            return f"QC{self._current_tid():x}"
        if packet == "qfThreadInfo":
            return "m" + ",".join(f"{tid:x}" for tid in self._thread_ids())
        if packet == "qsThreadInfo":
            return "l"
        if packet.startswith("qThreadExtraInfo,"):
            tid = int(packet.split(",")[1], 16)
            return self._thread_description(tid).encode().hex()
        if packet.startswith("qRcmd,"):
            return self._monitor(bytes.fromhex(packet[6:]).decode(errors="replace"))
        if packet == "qOffsets":
            return f"Text={self.load_bias:x};Data={self.load_bias:x};Bss={self.load_bias:x}"
        if packet.startswith("qSymbol"):
            return "OK"
        if command == "H":
            thread = packet[2:]
            if thread not in ("0", "-1"):
                tid = int(thread, 16)
                if tid not in self._thread_ids():
                    return "E22"
                if packet[1] == "g" or packet[1] == "c":
                    self._select(tid)
            return "OK"
        if command == "T":
            return "OK" if int(packet[1:], 16) in self._thread_ids() else "E22"
        if command == "g":
            return "".join(self._read_register(self._vcpu(), number) for number in range(len(REGISTERS)))
        if command == "G":
            self._write_all_registers(packet[1:])
            return "OK"
        if command == "p":
            number = int(packet[1:], 16)
            return self._read_register(self._vcpu(), number) if number < len(REGISTERS) else "E45"
        if command == "P":
            number, value = packet[1:].split("=")
            return self._write_register(self._vcpu(), int(number, 16), bytes.fromhex(value))
        if command == "m":
            address, length = (int(part, 16) for part in packet[1:].split(","))
            data = self._read_memory(address, min(length, MAX_PACKET_BYTES // 2))
            return data.hex() if data else "E14"
        if command == "M":
            where, data = packet[1:].split(":")
            address, _length = (int(part, 16) for part in where.split(","))
            return "OK" if self._write_memory(address, bytes.fromhex(data)) else "E14"
        if command in ("Z", "z"):
            return self._breakpoint_packet(packet)
        if packet == "vCont?":
            return "vCont;c;C;s;S"
        if packet.startswith("vCont;"):
            return self._vcont(packet[6:])
        if command == "c":
            return self._continue()
        if command == "s":
            return self._step_thread(self._current_tid())
        if command == "D":
            self._detach()
            return "DETACHED"
        if command == "k":
            self.machine.stop()
            self.exited = True
            return None
        return ""          # unsupported: the empty reply

    def _vcpu(self) -> VCpu:
        return self.machine.vcpus[self.selected]

    # ---- threads: tasks (with a GuestThreads view) or vCPUs ---------------------------

    def _thread_ids(self) -> list[int]:
        if self.guest_threads is not None:
            return self.guest_threads.threads()
        return [vcpu.index + 1 for vcpu in self.machine.vcpus]

    def _tid_on(self, vcpu: VCpu) -> int | None:
        if self.guest_threads is not None:
            return self.guest_threads.task_on(vcpu.index)
        return vcpu.index + 1

    def _cpu_of(self, tid: int) -> int | None:
        if self.guest_threads is not None:
            return self.guest_threads.cpu_of(tid)
        return tid - 1 if 0 < tid <= len(self.machine.vcpus) else None

    def _current_tid(self) -> int:
        if self.selected_tid is not None and self.selected_tid in self._thread_ids():
            return self.selected_tid
        tid = self._tid_on(self._vcpu())
        if tid is not None:
            return tid
        threads = self._thread_ids()
        return threads[0] if threads else 1

    def _select(self, tid: int) -> None:
        self.selected_tid = tid
        cpu = self._cpu_of(tid)
        if cpu is not None:
            self.selected = cpu

    def _off_cpu_registers(self) -> dict | None:
        """The selected task's saved registers when it is not on a vCPU (task mode)."""
        if self.guest_threads is None or self.selected_tid is None:
            return None
        if self._cpu_of(self.selected_tid) is not None or self.selected_tid not in self._thread_ids():
            return None
        return self.guest_threads.saved_registers(self.selected_tid)

    def _thread_description(self, tid: int) -> str:
        if self.guest_threads is not None:
            return self.guest_threads.describe(tid)
        cpu = tid - 1
        vcpu = self.machine.vcpus[cpu]
        task = self.task_id_of(cpu)
        state = "halted" if vcpu.halted else "waiting for IPI acks" if vcpu.waiting_for_acks else "running"
        who = f"task {task}" if task is not None else "idle"
        return f"vCPU {cpu}, {who}, {state}, cycle {vcpu.cycles}"

    def _monitor(self, command: str) -> str:
        """qRcmd: the answer as console output ("O" packets), then OK."""
        if self.guest_threads is None:
            text = "monitor commands need the kernel (emu run --gdb)\n"
        else:
            try:
                text = self.guest_threads.monitor(command.strip())
            except (ValueError, KeyError, IndexError) as error:
                text = f"monitor: {error}\n"
        for start in range(0, len(text), 1024):
            self._send("O" + text[start:start + 1024].encode().hex())
        return "OK"

    # ---- registers -------------------------------------------------------------------

    def _read_register(self, vcpu: VCpu, number: int) -> str:
        name, bits, _kind, source, _group = REGISTERS[number]
        saved = self._off_cpu_registers()
        if saved is not None:
            value = _saved_register_value(saved, name)
            return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()
        if source is None:
            value = (1 << 64) - 1 if name == "orig_rax" else 0
        elif isinstance(source, tuple):           # st(i): physical register (TOP + i) mod 8
            top = (vcpu.uc.reg_read(x86.UC_X86_REG_FPSW) >> 11) & 7
            mantissa, exponent = vcpu.uc.reg_read(x86.UC_X86_REG_FP0 + ((top + source[1]) & 7))
            value = mantissa | (exponent << 64)
        else:
            value = vcpu.uc.reg_read(source)
        return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()

    def _write_register(self, vcpu: VCpu, number: int, data: bytes) -> str:
        if number >= len(REGISTERS):
            return "E45"
        name, bits, _kind, source, _group = REGISTERS[number]
        if source is None or isinstance(source, tuple) or name in ("cs", "ss", "ds", "es", "fs", "gs"):
            return "OK"     # not writable here: x87 stack, selectors, orig_rax
        saved = self._off_cpu_registers()
        if saved is not None:
            key = "rflags" if name == "eflags" else name
            if key in saved:          # the task gets it back when it is switched in
                saved[key] = int.from_bytes(data[:bits // 8], "little")
            return "OK"
        vcpu.uc.reg_write(source, int.from_bytes(data[:bits // 8], "little"))
        return "OK"

    def _write_all_registers(self, text: str) -> None:
        data = bytes.fromhex(text)
        offset = 0
        vcpu = self._vcpu()
        for number, (_name, bits, *_rest) in enumerate(REGISTERS):
            self._write_register(vcpu, number, data[offset:offset + bits // 8])
            offset += bits // 8

    # ---- memory ------------------------------------------------------------------------

    def _memory_vcpu(self) -> VCpu:
        """The selected vCPU, or one with page tables loaded if it has none."""
        vcpu = self._vcpu()
        if vcpu.cr3:
            return vcpu
        return next((other for other in self.machine.vcpus if other.cr3), vcpu)

    def _physical_pieces(self, address: int, length: int) -> list[tuple[int, int, int]] | None:
        vcpu = self._memory_vcpu()
        pieces, offset = [], 0
        while offset < length:
            here = address + offset
            chunk = min(length - offset, PAGE_SIZE - (here & (PAGE_SIZE - 1)))
            try:
                pieces.append((vcpu.translate(here, ACCESS_READ), offset, chunk))
            except CpuException:
                break
            offset += chunk
        return pieces

    def _read_memory(self, address: int, length: int) -> bytes:
        memory = self.machine.memory
        return b"".join(memory.read(paddr, chunk) for paddr, _offset, chunk in self._physical_pieces(address, length))

    def _write_memory(self, address: int, data: bytes) -> bool:
        pieces = self._physical_pieces(address, len(data))
        if sum(chunk for _paddr, _offset, chunk in pieces) != len(data):
            return False
        for paddr, offset, chunk in pieces:
            self.machine.memory.write(paddr, data[offset:offset + chunk])
        for vcpu in self.machine.vcpus:       # the bytes may be code already translated
            vcpu.invalidate_code(address & ~(PAGE_SIZE - 1), (address + len(data) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        return True

    # ---- breakpoints and watchpoints ----------------------------------------------------

    def _breakpoint_packet(self, packet: str) -> str:
        insert = packet[0] == "Z"
        kind, address, length = packet[1:].split(",")[:3]
        kind, address, length = int(kind), int(address, 16), int(length.split(";")[0], 16)
        if kind in (0, 1):
            key = (kind, address)
            if insert and key not in self.breakpoints:
                self.breakpoints[key] = [vcpu.uc.hook_add(uclib.UC_HOOK_CODE, self._on_breakpoint, (vcpu, kind),
                                                          address, address) for vcpu in self.machine.vcpus]
                # A block translated before the hook existed would run past it.
                page = address & ~(PAGE_SIZE - 1)
                for vcpu in self.machine.vcpus:
                    vcpu.invalidate_code(page, page + 2 * PAGE_SIZE)
            elif not insert and key in self.breakpoints:
                for vcpu, hook in zip(self.machine.vcpus, self.breakpoints.pop(key)):
                    vcpu.uc.hook_del(hook)
            return "OK"
        if kind in _WATCH_REASON:
            key = (kind, address, length)
            if insert and key not in self.watchpoints:
                self.watchpoints[key] = self._read_memory(address, length)
            elif not insert:
                self.watchpoints.pop(key, None)
            self._update_watch_hooks()
            return "OK"
        return ""

    def _on_breakpoint(self, uc, address, _size, data) -> None:
        vcpu, kind = data
        self.stop = _Stop(vcpu, "hwbreak" if kind == 1 else "swbreak")
        self.machine.stopped = True
        uc.emu_stop()

    def _update_watch_hooks(self) -> None:
        """One code hook per vCPU while any watchpoint is set. Adding it drops every
        translated block, so code that ran before the watch was set is seen too."""
        if self.watchpoints and not self._watch_hooks:
            self._watch_hooks = [vcpu.uc.hook_add(uclib.UC_HOOK_CODE, self._check_watchpoints, vcpu)
                                 for vcpu in self.machine.vcpus]
            self._last_accesses.clear()
            for vcpu in self.machine.vcpus:
                vcpu.invalidate_all_code()
        elif not self.watchpoints and self._watch_hooks:
            for vcpu, hook in zip(self.machine.vcpus, self._watch_hooks):
                vcpu.uc.hook_del(hook)
            self._watch_hooks = []
            self._last_accesses.clear()

    def _check_watchpoints(self, uc, address, size, vcpu) -> None:
        """Before each instruction on ``vcpu``: did the previous one touch a watched
        range? (The trap of a data breakpoint is reported after the access.)"""
        hit = None
        accessed = self._last_accesses.pop(vcpu.index, ())
        for (kind, start, length), old in self.watchpoints.items():
            if kind == WATCH_WRITE:
                new = self._read_memory(start, length)
                if new != old:
                    self.watchpoints[(kind, start, length)] = new
                    hit = hit or (kind, start)
                continue
            for where, width, reads, writes in accessed:
                if where < start + length and start < where + width and (reads or kind == WATCH_ACCESS):
                    if kind == WATCH_ACCESS:
                        self.watchpoints[(kind, start, length)] = self._read_memory(start, length)
                    hit = hit or (kind, start)
        if hit is not None:
            kind, start = hit
            self.stop = _Stop(vcpu, _WATCH_REASON[kind], start)
            self.machine.stopped = True
            uc.emu_stop()
            return
        if any(kind != WATCH_WRITE for kind, _start, _length in self.watchpoints):
            try:       # through the page tables: uc.mem_read sees no guest mapping in UC_TLB_VIRTUAL mode
                code = self.machine.read_virtual(vcpu, address, size)
            except CpuException:
                return
            self._last_accesses[vcpu.index] = memory_accesses(code, address, vcpu.read_register)

    # ---- running ------------------------------------------------------------------------

    def _vcont(self, actions: str) -> str | None:
        for action in actions.split(";"):
            verb, _, thread = action.partition(":")
            if verb[:1] in ("s", "S"):
                tid = int(thread, 16) if thread and thread != "-1" else self._current_tid()
                return self._step_thread(tid)
        return self._continue()

    def _continue(self) -> str:
        """Run the scheduler until a breakpoint, a watchpoint, gdb's Ctrl-C or the end."""
        self.stop = None
        self._last_ctrl_c_poll = 0.0
        if self._take_buffered_ctrl_c():
            self.stop = _Stop(self.machine.vcpus[self.selected], "interrupt")
            return self._stop_reply()
        self.machine.stop_requested = self._ctrl_c_received
        try:
            self.machine.run()
        finally:
            self.machine.stop_requested = None
        return self._after_run()

    def _take_buffered_ctrl_c(self) -> bool:
        """Whether a Ctrl-C already came in (and consume it): one read before
        the resume packet (``_interrupt_pending``), or one that arrived in the
        same read as the resume packet, after it -- gdb sends 0x03 as soon as
        the user presses Ctrl-C, so a press just after `continue` shares the
        packet's segment and is in the buffer, not the socket, when the run
        starts."""
        if self._interrupt_pending:
            self._interrupt_pending = False
            return True
        start = self._buffer.find(b"$")
        if CTRL_C in (self._buffer if start < 0 else self._buffer[:start]):   # not a byte of an X packet's data
            self._buffer = self._buffer.replace(bytes([CTRL_C]), b"", 1)
            return True
        return False

    def _ctrl_c_received(self) -> bool:
        """While the guest runs, gdb's interrupt arrives as one raw 0x03 byte,
        outside any packet (the remote protocol's "Interrupts"). Looked for at
        most every CTRL_C_POLL_SECONDS so a busy machine pays one clock read per
        scheduling step. The stop names the vCPU gdb last selected."""
        now = time.monotonic()
        if now - self._last_ctrl_c_poll < CTRL_C_POLL_SECONDS or self.connection is None:
            return False
        self._last_ctrl_c_poll = now
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            chunk = self.connection.recv(65536)
        except ConnectionError:
            chunk = b""
        if not chunk:
            return False          # gdb went away; the packet loop notices on its next read
        interrupted = CTRL_C in chunk      # in all-stop mode gdb sends nothing else while the guest runs
        self._buffer += chunk.replace(bytes([CTRL_C]), b"")
        if interrupted:
            self.stop = _Stop(self.machine.vcpus[self.selected], "interrupt")
        return interrupted

    def _after_run(self) -> str:
        if self.stop is not None:
            self.machine.stopped = False
            self.stop.vcpu._refund_unexecuted()
            self.selected = self.stop.vcpu.index
            self.selected_tid = self.stop.tid if self.stop.tid is not None else self._tid_on(self.stop.vcpu)
            return self._stop_reply()
        self.exited = True
        return f"W{self.exit_status() & 0xFF:02x}"

    def _step_thread(self, tid: int) -> str:
        """stepi on thread ``tid``: its vCPU runs one instruction. When that
        instruction is a system call that put the task to sleep, the machine runs
        on until the task is back in user mode (the call returned), where the step
        ends, as on Linux, where the stepped thread sleeps in the call."""
        cpu = self._cpu_of(tid)
        if cpu is None:
            if self.guest_threads is None:
                return self._step(self._vcpu())
            return self._run_until_user_mode(tid)
        reply = self._step(self.machine.vcpus[cpu])
        if self.exited or self.guest_threads is None or self._cpu_of(tid) == cpu:
            return reply
        if tid not in self._thread_ids():
            return reply          # the task exited in the step (exit): nothing to return to
        return self._run_until_user_mode(tid)

    def _run_until_user_mode(self, tid: int) -> str:
        """Run the machine until task ``tid`` is switched back in and about to run
        user code at its saved RIP; breakpoints and watchpoints still stop it first."""
        saved = self.guest_threads.saved_registers(tid)
        resume_rip = saved.get("rip") if saved else None
        if resume_rip is None:
            return self._continue()
        guest_threads = self.guest_threads

        def back_in_user_mode(uc, _address, _size, vcpu) -> None:
            if guest_threads.task_on(vcpu.index) == tid:
                self.stop = _Stop(vcpu, "", tid=tid)
                self.machine.stopped = True
                uc.emu_stop()

        hooks = []
        page = resume_rip & ~(PAGE_SIZE - 1)
        for vcpu in self.machine.vcpus:
            hooks.append(vcpu.uc.hook_add(uclib.UC_HOOK_CODE, back_in_user_mode, vcpu, resume_rip, resume_rip))
            vcpu.invalidate_code(page, page + 2 * PAGE_SIZE)
        try:
            return self._continue()
        finally:
            for vcpu, hook in zip(self.machine.vcpus, hooks):
                vcpu.uc.hook_del(hook)

    def _step(self, vcpu: VCpu) -> str:
        """One instruction on ``vcpu`` alone (interrupts due on it first)."""
        self.stop = _Stop(vcpu)
        if not vcpu.runnable:
            return self._stop_reply()
        rip = vcpu.uc.reg_read(x86.UC_X86_REG_RIP)
        instructions = vcpu.instructions
        calls = [0]

        def stop_at_second(uc, _address, _size, _data):
            calls[0] += 1
            if calls[0] > 1:
                uc.emu_stop()

        hook = vcpu.uc.hook_add(uclib.UC_HOOK_CODE, stop_at_second)
        try:
            for _attempt in range(4):     # a block abandoned at a deadline runs nothing: try again
                self.machine._deliver_interrupts(vcpu)
                if not vcpu.runnable or self.machine.stopped:
                    break
                calls[0] = 0
                next_interrupt = vcpu.apic.next_event_cycles()
                deadline = vcpu.cycles + self.machine.quantum_cycles
                if next_interrupt is not None:
                    deadline = min(deadline, max(next_interrupt, vcpu.cycles + 1))
                vcpu.run(deadline)
                vcpu._refund_unexecuted()
                if vcpu.uc.reg_read(x86.UC_X86_REG_RIP) != rip or vcpu.instructions != instructions:
                    break
        finally:
            vcpu.uc.hook_del(hook)
        if self.machine.stopped and self.stop.reason == "":
            self.exited = True
            return f"W{self.exit_status() & 0xFF:02x}"
        self.machine.stopped = False
        self.stop = _Stop(vcpu)
        self.selected = vcpu.index
        return self._stop_reply()

    def _stop_reply(self) -> str:
        stop = self.stop or _Stop(self._vcpu())
        signal = SIGINT if stop.reason == "interrupt" else SIGTRAP
        tid = stop.tid if stop.tid is not None else self._tid_on(stop.vcpu)
        if tid is None:                    # an idle vCPU (Ctrl-C): name the selected thread
            tid = self._current_tid()
        reply = f"T{signal:02x}thread:{tid:x};"
        if stop.reason in ("swbreak", "hwbreak"):
            reply += f"{stop.reason}:;"
        elif stop.reason in ("watch", "rwatch", "awatch"):
            reply += f"{stop.reason}:{stop.address:x};"
        return reply

    def _detach(self) -> None:
        """gdb left: remove every hook and let the program run to its end."""
        for key in list(self.breakpoints):
            for vcpu, hook in zip(self.machine.vcpus, self.breakpoints.pop(key)):
                vcpu.uc.hook_del(hook)
        self.watchpoints.clear()
        self._update_watch_hooks()
        self.stop = None
        self.machine.stopped = False
        self.machine.run()
        self.exited = True
