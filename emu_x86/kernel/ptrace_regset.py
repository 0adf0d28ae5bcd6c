"""The register side of ptrace(2) (arch/x86/kernel/ptrace.c, arch/x86/kernel/fpu/regset.c,
the uabi half of fpu/xstate.c): ``struct user_regs_struct`` and ``struct user``
over a stopped tracee's saved registers (getreg/putreg and their checks), and
the FP and XSTATE regsets converted from and to the task's compacted fpstate.
emu_x86/kernel/ptrace.py owns the requests and the stops; the tracee is always stopped
here, so its registers are in ``Task.registers`` and its xstate in its fpstate.
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import XFEATURE_MASK_SSE, XFEATURE_MASK_X87
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import EFAULT, EINVAL, EIO, SyscallError
from emu_x86.kernel.mm.mm import TASK_SIZE
from emu_x86.kernel.sigframe import SW_RESERVED_OFFSET
from emu_x86.kernel.task import Task

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel

MASK64 = (1 << 64) - 1
PTRACE_GETREGSET, PTRACE_SETREGSET = 0x4204, 0x4205

# Regsets (include/uapi/linux/elf.h).
NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE = 1, 2, 0x202

# struct user_regs_struct (arch/x86/include/asm/user_64.h), in order.
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
             "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
USER_REGS_BYTES = 8 * len(USER_REGS)          # 216
USER_I387_BYTES = 512                          # struct user_i387_struct: the FXSAVE image
# struct user: regs, u_fpvalid (+pad), i387, u_tsize/dsize/ssize, start_code, start_stack,
# signal (+ reserved int + pad), u_ar0, u_fpstate, magic, u_comm[32], u_debugreg[8].
USER_DEBUGREG_OFFSET = 848
USER_BYTES = USER_DEBUGREG_OFFSET + 8 * 8
USER_CS, USER_DS = 0x33, 0x2B
X86_EFLAGS_TF = 0x100
FLAG_MASK = 0x50DD5         # CF PF AF ZF SF TF DF OF RF AC: what a tracer may change (arch ptrace.c)

# ---- registers ----------------------------------------------------------------------

def _signed64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def getreg(task: Task, name: str) -> int:
    """getreg (arch/x86/kernel/ptrace.c) of a stopped tracee's saved registers."""
    pt = task.ptrace
    registers = task.registers
    if name == "orig_rax":
        return task.orig_rax & MASK64
    if name == "cs":
        return USER_CS
    if name == "ss":
        return USER_DS
    if name in pt.selectors:
        return pt.selectors[name]
    if name == "eflags":
        flags = registers["rflags"]
        return flags & ~X86_EFLAGS_TF if pt.forced_tf else flags
    return registers[name] & MASK64


def putreg(task: Task, name: str, value: int) -> None:
    """putreg: selectors must have RPL 3 (or be null), bases must be user
    addresses, only FLAG_MASK of RFLAGS changes (TF given by the tracer is
    the tracee's from now on)."""
    pt = task.ptrace
    value &= MASK64
    registers = task.registers
    if name in ("ds", "es", "fs", "gs"):
        if value > 0xFFFF or not (value == 0 or value & 3 == 3):
            raise SyscallError(EIO)
        pt.selectors[name] = value
    elif name in ("cs", "ss"):
        if value > 0xFFFF or value & 3 != 3:
            raise SyscallError(EIO)
    elif name in ("fs_base", "gs_base"):
        if value >= TASK_SIZE:
            raise SyscallError(EIO)
        registers[name] = value
    elif name == "eflags":
        if value & X86_EFLAGS_TF:
            pt.forced_tf = False
        elif pt.forced_tf:
            value |= X86_EFLAGS_TF
        registers["rflags"] = (registers["rflags"] & ~FLAG_MASK) | (value & FLAG_MASK)
    elif name == "orig_rax":
        task.orig_rax = _signed64(value)
    else:
        registers[name] = value


def _user_regs_bytes(task: Task) -> bytes:
    return struct.pack(f"<{len(USER_REGS)}Q", *(getreg(task, name) for name in USER_REGS))


def _set_user_regs(task: Task, raw: bytes) -> None:
    for index, name in enumerate(USER_REGS[:len(raw) // 8]):
        putreg(task, name, struct.unpack_from("<Q", raw, 8 * index)[0])


def _peek_user(task: Task, offset: int) -> int:
    if offset & 7 or offset >= USER_BYTES:
        raise SyscallError(EIO)
    if offset < USER_REGS_BYTES:
        return getreg(task, USER_REGS[offset // 8])
    if offset >= USER_DEBUGREG_OFFSET:
        return task.ptrace.debugreg[(offset - USER_DEBUGREG_OFFSET) // 8]
    return 0


def _poke_user(task: Task, offset: int, value: int) -> None:
    if offset & 7 or offset >= USER_BYTES:
        raise SyscallError(EIO)
    if offset < USER_REGS_BYTES:
        putreg(task, USER_REGS[offset // 8], value)
    elif offset >= USER_DEBUGREG_OFFSET:
        # ptrace_set_debugreg: DR4/DR5 are reserved; breakpoints must lie in user space.
        number = (offset - USER_DEBUGREG_OFFSET) // 8
        if number in (4, 5) or (number < 4 and value >= TASK_SIZE):
            raise SyscallError(EIO)
        task.ptrace.debugreg[number] = value & MASK64


# ---- extended state ------------------------------------------------------------------

def _fpstate_images(task: Task) -> list:
    """The compacted XSAVES buffers holding the task's state (the AMX one
    separately under xstate_alloc=separate)."""
    fpstate = task.fpstate
    return [fpstate] + ([fpstate.amx] if fpstate.amx is not None else [])


def _fpstate_read(kernel: "Kernel", fpstate) -> bytearray:
    from emu_x86.kernel.fpu import FPSTATE_PAGES, FPSTATE_VMALLOC
    size = fpstate.size_bytes
    if fpstate.storage == FPSTATE_VMALLOC:
        frames = fpstate.area.frames
    elif fpstate.storage == FPSTATE_PAGES:
        frames = fpstate.pages
    else:
        return bytearray(fpstate.buffer[:size])
    memory = kernel.machine.memory
    out = bytearray()
    for frame in frames:
        out += memory.read(frame, min(PAGE_SIZE, size - len(out)))
        if len(out) >= size:
            break
    return out


def _fpstate_write(kernel: "Kernel", fpstate, data: bytes) -> None:
    from emu_x86.kernel.fpu import FPSTATE_PAGES, FPSTATE_VMALLOC
    if fpstate.storage in (FPSTATE_VMALLOC, FPSTATE_PAGES):
        frames = fpstate.area.frames if fpstate.storage == FPSTATE_VMALLOC else fpstate.pages
        memory = kernel.machine.memory
        for index, frame in enumerate(frames):
            chunk = data[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]
            if not chunk:
                break
            memory.write(frame, chunk)
        return
    fpstate.buffer[:len(data)] = data


def _xstate_components(kernel: "Kernel", task: Task) -> tuple[bytes, dict[int, bytes], int]:
    """The legacy region (x87/SSE as in the buffer, or init values when the
    header says init), every extended component in use, and XSTATE_BV."""
    legacy = None
    components: dict[int, bytes] = {}
    in_use = 0
    for fpstate in _fpstate_images(task):
        image = _fpstate_read(kernel, fpstate)
        xstate_bv, xcomp_bv = struct.unpack_from("<QQ", image, xstate.HEADER_OFFSET)
        layout = xcomp_bv & ~xstate.COMPACTED_FORM
        offsets = xstate.compacted_offsets(layout)
        if legacy is None:
            legacy = bytes(image[:xstate.LEGACY_AREA_BYTES])
        for number, offset in offsets.items():
            if number >= 2 and xstate_bv >> number & 1:
                components[number] = bytes(image[offset:offset + xstate.COMPONENTS[number].size_bytes])
        in_use |= xstate_bv & layout
    return legacy, components, in_use


def _init_legacy(mxcsr_mask: int) -> bytes:
    area = bytearray(xstate.LEGACY_AREA_BYTES)
    struct.pack_into("<H", area, 0, 0x37F)
    struct.pack_into("<II", area, 24, xstate.MXCSR_INIT, mxcsr_mask)
    return bytes(area)


def copy_xstate_to_uabi(kernel: "Kernel", task: Task, size_bytes: int, legacy_only: bool) -> bytes:
    """__copy_xstate_to_uabi_buf: the standard (non-compacted) format, x87/SSE
    from init values when in their init state, the sw_reserved bytes holding
    the user feature mask (xstate_fx_sw_bytes), the header's XSTATE_BV limited
    to the task's user features -- a task whose AMX buffer was never allocated
    has no tile data to copy, so those bytes are zero -- padded with zeros."""
    legacy, components, in_use = _xstate_components(kernel, task)
    mxcsr_mask = xstate.mxcsr_mask_of(kernel.machine.vcpus[0])
    init = _init_legacy(mxcsr_mask)
    header_bv = in_use & (XFEATURE_MASK_X87 | XFEATURE_MASK_SSE if legacy_only else task.fpstate.user_xfeatures)
    out = bytearray(init)
    if header_bv & XFEATURE_MASK_X87:
        out[0:24] = legacy[0:24]
        out[32:160] = legacy[32:160]
    if header_bv & XFEATURE_MASK_SSE:
        out[24:32] = legacy[24:32]
        out[160:416] = legacy[160:416]
    if legacy_only:
        return bytes(out[:USER_I387_BYTES])
    struct.pack_into("<Q", out, SW_RESERVED_OFFSET, kernel.fpu_config.user_features)
    out += struct.pack("<QQ", header_bv, 0).ljust(xstate.HEADER_BYTES, b"\0")
    for number in sorted(components):
        if not header_bv >> number & 1:
            continue
        offset = xstate.COMPONENTS[number].standard_offset
        if len(out) < offset:
            out += bytes(offset - len(out))
        out[offset:offset + len(components[number])] = components[number]
    return bytes(out[:size_bytes]).ljust(size_bytes, b"\0")


def copy_uabi_to_xstate(kernel: "Kernel", task: Task, data: bytes, legacy_only: bool) -> None:
    """copy_uabi_to_xstate / xfpregs_set: validate the header (only the task's
    user features, XCOMP_BV and the reserved bytes zero) and MXCSR, then write
    the components into the task's compacted buffers and make its next return
    to user restore them (fpu_force_restore)."""
    mxcsr_mask = xstate.mxcsr_mask_of(kernel.machine.vcpus[0])
    if legacy_only:
        header_bv = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE
    else:
        header_bv, xcomp_bv = struct.unpack_from("<QQ", data, xstate.HEADER_OFFSET)
        reserved = data[xstate.HEADER_OFFSET + 16:xstate.HEADER_OFFSET + xstate.HEADER_BYTES]
        if header_bv & ~task.fpstate.user_xfeatures or xcomp_bv or any(reserved):
            raise SyscallError(EINVAL)
    (mxcsr,) = struct.unpack_from("<I", data, 24)
    if header_bv & (XFEATURE_MASK_X87 | XFEATURE_MASK_SSE) and mxcsr & ~mxcsr_mask:
        raise SyscallError(EINVAL)
    user_mask = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE if legacy_only else task.fpstate.user_xfeatures
    for index, fpstate in enumerate(_fpstate_images(task)):
        image = _fpstate_read(kernel, fpstate)
        xstate_bv, xcomp_bv = struct.unpack_from("<QQ", image, xstate.HEADER_OFFSET)
        layout = xcomp_bv & ~xstate.COMPACTED_FORM
        if index == 0:
            if header_bv & XFEATURE_MASK_X87:
                image[0:24] = data[0:24]
                image[32:160] = data[32:160]
            if header_bv & (XFEATURE_MASK_X87 | XFEATURE_MASK_SSE):
                image[24:32] = data[24:32]
            if header_bv & XFEATURE_MASK_SSE:
                image[160:416] = data[160:416]
        for number, offset in xstate.compacted_offsets(layout).items():
            if number >= 2 and header_bv >> number & 1:
                standard = xstate.COMPONENTS[number].standard_offset
                image[offset:offset + xstate.COMPONENTS[number].size_bytes] = \
                    data[standard:standard + xstate.COMPONENTS[number].size_bytes]
        mine = user_mask & (layout | (XFEATURE_MASK_X87 | XFEATURE_MASK_SSE if index == 0 else 0))
        xstate_bv = (xstate_bv & ~mine) | (header_bv & mine)
        struct.pack_into("<Q", image, xstate.HEADER_OFFSET, xstate_bv)
        _fpstate_write(kernel, fpstate, bytes(image))
    from emu_x86.kernel.fpu import fpu_drop
    fpu_drop(kernel, task)       # no CPU still holds the old registers


def xstate_regset_bytes(kernel: "Kernel") -> int:
    """The NT_X86_XSTATE regset's size: the standard format of every user feature (fpu_user_cfg.max_size)."""
    return xstate.standard_size(kernel.fpu_config.user_features)


def regset(kernel, task: Task, tracee: Task, request: int, note_type: int, iov_address: int) -> int:
    """ptrace_regset: the iovec's length is capped at the regset's size and written back."""
    mm = task.mm
    base, length = struct.unpack("<QQ", mm.copy_from_user(iov_address, 16))
    if note_type == NT_PRSTATUS:
        size, unit = USER_REGS_BYTES, 8
    elif note_type == NT_PRFPREG:
        size, unit = USER_I387_BYTES, 4
    elif note_type == NT_X86_XSTATE:
        size, unit = xstate_regset_bytes(kernel), 8
    else:
        raise SyscallError(EINVAL)
    if length % unit:
        raise SyscallError(EINVAL)
    length = min(length, size)
    if request == PTRACE_GETREGSET:
        if note_type == NT_PRSTATUS:
            raw = _user_regs_bytes(tracee)
        else:
            raw = copy_xstate_to_uabi(kernel, tracee, size, legacy_only=note_type == NT_PRFPREG)
        mm.copy_to_user(base, raw[:length])
    else:
        raw = mm.copy_from_user(base, length)
        if note_type == NT_PRSTATUS:
            _set_user_regs(tracee, raw)
        elif note_type == NT_PRFPREG:
            if length != USER_I387_BYTES:
                raise SyscallError(EINVAL)
            copy_uabi_to_xstate(kernel, tracee, raw, legacy_only=True)
        else:
            if length != size:
                raise SyscallError(EFAULT)   # xstateregs_set wants the whole standard buffer
            copy_uabi_to_xstate(kernel, tracee, raw, legacy_only=False)
    mm.copy_to_user(iov_address + 8, struct.pack("<Q", length))
    return 0
