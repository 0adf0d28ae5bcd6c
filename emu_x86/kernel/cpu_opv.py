"""cpu_opv: the per-CPU operation vector system call Mathieu Desnoyers proposed
in 2017-2018 as the always-succeeding slow path for rseq (never merged).
Opt-in: registered only with ``--cmdline cpu_opv=on``; otherwise number 335
is -ENOSYS like any unknown system call.

``cpu_opv(struct cpu_op *ops, int count, int cpu, int flags)`` runs up to 16
operations (compare, memcpy, add, or, and, xor, shifts, barrier) on user
memory on CPU ``cpu`` as if preemption were disabled. As the proposal's
sys_cpu_opv does, it first checks the vector (cpu_opv_check), then pins
every user page the operations touch (cpu_opv_pin_pages: get_user_pages and
a kernel mapping, charged ``cpu_opv_pin_page`` per page), then moves the
caller to ``cpu`` (push_task_to_cpu: ahead of that CPU's queue, preempting
whatever runs there) and runs the vector there before the caller returns to
user mode (__do_cpu_opv). In this kernel a vector runs within one kernel
step on the target vCPU, so nothing else -- on that CPU or any other --
interleaves with it.

ABI (struct cpu_op, 32 bytes): s32 op, u32 len, then a 24-byte union:
compare/memcpy {u64 a|dst, u64 b|src, u8 expect_fault_a|dst, u8 expect_fault_b|src},
add {u64 p, s64 count, u8 expect_fault_p}, or/and/xor {u64 p, u64 mask, u8
expect_fault_p}, shifts {u64 p, u32 bits, u8 expect_fault_p}.
Returns 0 when every operation ran; i+1 when operation i (0-based) was a
compare that failed (EQ found a difference, NE found equality; the
operations after it do not run); NR_CPU_OPS with flags CPU_OP_NR_FLAG;
-EINVAL for unknown flags, cpu < 0, count outside 0..16, a bad op or length,
more than CPU_OP_VEC_DATA_LEN_MAX bytes in all, or a CPU outside the
caller's affinity; -EFAULT for an unreadable vector or a page that cannot
be pinned (-EAGAIN instead when that pointer's expect_fault byte is set).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EAGAIN, EFAULT, EINVAL, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_cpu_opv = 335                  # x86-64 number in the 2018 series (after rseq, 334)

CPU_OP_VEC_LEN_MAX = 16
CPU_OP_DATA_LEN_MAX = 4096         # bytes per operation
CPU_OP_VEC_DATA_LEN_MAX = 4096 + (CPU_OP_VEC_LEN_MAX - 1) * 8    # 4216: one page copy + 15 words
CPU_OP_NR_FLAG = 1 << 0
CPU_OP_BYTES = 32

(CPU_COMPARE_EQ_OP, CPU_COMPARE_NE_OP, CPU_MEMCPY_OP, CPU_ADD_OP, CPU_OR_OP, CPU_AND_OP, CPU_XOR_OP,
 CPU_LSHIFT_OP, CPU_RSHIFT_OP, CPU_MB_OP) = range(10)
NR_CPU_OPS = 10

_COMPARES = (CPU_COMPARE_EQ_OP, CPU_COMPARE_NE_OP)
_READ_MODIFY_WRITE = (CPU_ADD_OP, CPU_OR_OP, CPU_AND_OP, CPU_XOR_OP, CPU_LSHIFT_OP, CPU_RSHIFT_OP)
_SHIFTS = (CPU_LSHIFT_OP, CPU_RSHIFT_OP)
_WORD_LENGTHS = (1, 2, 4, 8)
CACHE_LINE_BYTES = 64
MASK64 = (1 << 64) - 1


@dataclass
class CpuOp:
    """One decoded ``struct cpu_op``. ``first``/``second`` are a and b (compare),
    dst and src (memcpy), or p and the operand (count, mask or shift bits)."""
    op: int
    length: int
    first: int
    second: int
    expect_fault_first: bool
    expect_fault_second: bool

    def user_ranges(self) -> list[tuple[int, bool, bool]]:
        """(address, write, expect_fault) of each user buffer the operation touches."""
        if self.op in _COMPARES:
            return [(self.first, False, self.expect_fault_first), (self.second, False, self.expect_fault_second)]
        if self.op == CPU_MEMCPY_OP:
            return [(self.first, True, self.expect_fault_first), (self.second, False, self.expect_fault_second)]
        if self.op in _READ_MODIFY_WRITE:
            return [(self.first, True, self.expect_fault_first)]
        return []


def decode_cpu_op(raw: bytes) -> CpuOp:
    op, length, first = struct.unpack_from("<iIQ", raw)
    if op in _SHIFTS:
        (second,) = struct.unpack_from("<I", raw, 16)
        return CpuOp(op, length, first, second, bool(raw[20]), False)
    (second,) = struct.unpack_from("<Q", raw, 16)
    return CpuOp(op, length, first, second, bool(raw[24]), bool(raw[25]))


def cpu_opv_check(ops: list[CpuOp]) -> None:
    """Operation types and lengths (the proposal's cpu_opv_check); EINVAL if wrong."""
    total_bytes = 0
    for op in ops:
        if op.op != CPU_MB_OP:
            total_bytes += op.length
        if op.op in _COMPARES or op.op == CPU_MEMCPY_OP:
            if op.length > CPU_OP_DATA_LEN_MAX:
                raise SyscallError(EINVAL)
        elif op.op in _READ_MODIFY_WRITE:
            if op.length not in _WORD_LENGTHS:
                raise SyscallError(EINVAL)
            if op.op in _SHIFTS and op.second >= op.length * 8:
                raise SyscallError(EINVAL)
        elif op.op != CPU_MB_OP:
            raise SyscallError(EINVAL)
    if total_bytes > CPU_OP_VEC_DATA_LEN_MAX:
        raise SyscallError(EINVAL)


def cpu_opv_pin_pages(kernel: "Kernel", vcpu: "VCpu", task: "Task", ops: list[CpuOp]) -> int:
    """Fault in and pin every page the vector touches, charging each; the count.
    A pointer that cannot be pinned is -EFAULT, or -EAGAIN if the caller said
    it expected that fault (expect_fault_*)."""
    pinned = 0
    for op in ops:
        for address, write, expect_fault in op.user_ranges():
            try:
                pages = task.mm.pin_user_pages(address, op.length, write)
            except SyscallError as error:
                raise SyscallError(EAGAIN if error.errno == EFAULT and expect_fault else error.errno) from None
            for _page in pages:
                vcpu.charge_event("cpu_opv_pin_page")
            pinned += len(pages)
    kernel.counters["cpu_opv_pages_pinned"] += pinned
    return pinned


def _apply(op: int, value: int, operand: int, bits: int) -> int:
    mask = (1 << bits) - 1
    if op == CPU_ADD_OP:
        return (value + operand) & mask
    if op == CPU_OR_OP:
        return value | (operand & mask)
    if op == CPU_AND_OP:
        return value & operand
    if op == CPU_XOR_OP:
        return (value ^ operand) & mask
    if op == CPU_LSHIFT_OP:
        return (value << operand) & mask
    return value >> operand                      # CPU_RSHIFT_OP


def do_cpu_opv(vcpu: "VCpu", task: "Task", ops: list[CpuOp]) -> int:
    """Run the vector on ``vcpu`` with preemption off (__do_cpu_opv): 0, i+1 for
    the failing compare i, or -EFAULT if a page went away after pinning."""
    mm = task.mm
    try:
        for index, op in enumerate(ops):
            vcpu.charge_event("cpu_opv_op_line", max(1, -(-op.length // CACHE_LINE_BYTES)))
            if op.op in _COMPARES:
                same = mm.copy_from_user(op.first, op.length) == mm.copy_from_user(op.second, op.length)
                if same != (op.op == CPU_COMPARE_EQ_OP):
                    return index + 1
            elif op.op == CPU_MEMCPY_OP:
                mm.copy_to_user(op.first, mm.copy_from_user(op.second, op.length))
            elif op.op in _READ_MODIFY_WRITE:
                value = int.from_bytes(mm.copy_from_user(op.first, op.length), "little")
                value = _apply(op.op, value, op.second & MASK64, op.length * 8)
                mm.copy_to_user(op.first, value.to_bytes(op.length, "little"))
            # CPU_MB_OP: the emulated memory is sequentially consistent already.
    except SyscallError:
        return -EFAULT
    return 0


def sys_cpu_opv(k: "Kernel", vcpu: "VCpu", task: "Task", ops_address, count, cpu, flags, *_):
    from emu_x86.kernel.syscalls import MASK64 as RAX_MASK, signed32
    flags, cpu, count = flags & 0xFFFFFFFF, signed32(cpu), signed32(count)
    if flags & ~CPU_OP_NR_FLAG:
        raise SyscallError(EINVAL)
    if flags & CPU_OP_NR_FLAG:
        return NR_CPU_OPS
    if cpu < 0 or not 0 <= count <= CPU_OP_VEC_LEN_MAX:
        raise SyscallError(EINVAL)
    raw = task.mm.copy_from_user(ops_address, count * CPU_OP_BYTES)
    ops = [decode_cpu_op(raw[i * CPU_OP_BYTES:(i + 1) * CPU_OP_BYTES]) for i in range(count)]
    cpu_opv_check(ops)
    k.counters["cpu_opv_calls"] += 1
    start_cycles = vcpu.cycles
    cpu_opv_pin_pages(k, vcpu, task, ops)
    k.counters["cpu_opv_cycles"] += vcpu.cycles - start_cycles
    # push_task_to_cpu refuses a CPU outside the caller's allowed mask.
    if cpu >= len(k.machine.vcpus) or not task.allowed_on(cpu):
        raise SyscallError(EINVAL)
    if cpu == vcpu.index:
        return _run_counted(k, vcpu, task, ops)

    def run_on_target(target: "VCpu", pushed: "Task") -> None:
        pushed.registers["rax"] = _run_counted(k, target, pushed, ops) & RAX_MASK

    task.resume_work = run_on_target
    k.counters["cpu_opv_migrations"] += 1
    k.scheduler.push_task_to_cpu(vcpu, cpu)
    return None


def _run_counted(k: "Kernel", vcpu: "VCpu", task: "Task", ops: list[CpuOp]) -> int:
    start_cycles = vcpu.cycles
    result = do_cpu_opv(vcpu, task, ops)
    k.counters["cpu_opv_cycles"] += vcpu.cycles - start_cycles
    return result


def cpu_opv_setup(kernel: "Kernel", setting: str) -> None:
    """``cpu_opv=on`` registers the system call; ``off`` (the default) leaves it unknown."""
    if setting == "on":
        kernel.optional_syscalls[SYS_cpu_opv] = sys_cpu_opv
    elif setting != "off":
        raise ValueError(f"cpu_opv={setting}: expected on or off")
