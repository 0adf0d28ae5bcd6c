"""New processes: fork, vfork and clone without CLONE_THREAD (kernel/fork.c).

``copy_process`` builds a new thread group around one task:

- the address space: with CLONE_VM the parent's mm itself (one more
  ``mm_users``); otherwise ``dup_mmap``: a new MmStruct with its own page
  tables and the parent's VMAs, sharing the parent's frames copy-on-write;
- the calling thread's registers with RAX = 0 (and the new stack and TLS
  when given);
- the signal handlers copied (shared with CLONE_SIGHAND), the blocked mask
  and the alternate signal stack inherited, no pending signals;
- the FPU registers copied into a default-size fpstate (fpu_clone: dynamic
  features such as AMX tile data are never inherited) and the process-wide
  AMX permission inherited (fpu_inherit_perms);
- the rseq registration kept unless CLONE_VM (rseq_fork);
- the robust futex list cleared (copy_process).

CLONE_VFORK (vfork) blocks the parent until the child releases its mm
(exit; execve is not implemented), as wait_for_vfork_done.
"""
from __future__ import annotations

import struct
from dataclasses import replace
from typing import TYPE_CHECKING

from emu.isa import xstate
from emu.isa.state import XFEATURE_MASK_PASID
from emu.memory import PAGE_SIZE
from emu.mmu.pagewalk import PHYS_ADDR_MASK, PTE_WRITABLE
from kernel import fpu, signals
from kernel.errno import EINVAL, ENOMEM, EPERM, SyscallError
from kernel.mm.frames import OutOfMemory
from kernel.mm.mm import MAP_SHARED, TASK_SIZE, MmStruct
from kernel.sched_syscalls import sched_fork
from kernel.task import Process, Task, allocate_pid

if TYPE_CHECKING:  # pragma: no cover
    from emu.vcpu import VCpu
    from kernel.kernel import Kernel

# clone flags (include/uapi/linux/sched.h)
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = 0x80000, 0x100000, 0x200000
CLONE_CHILD_SETTID = 0x1000000
# New namespaces need privileges the guest does not have (EPERM, as for an
# unprivileged caller): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_FLAGS = 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
VFORK_FLAGS = CLONE_VM | CLONE_VFORK


def dup_mmap(kernel: "Kernel", parent_mm: MmStruct) -> tuple[MmStruct, tuple[int, int] | None]:
    """A new mm with the parent's VMAs whose PTEs map the parent's frames
    (dup_mmap + copy_page_range), and the range of the parent's PTEs made
    read-only, which the caller must flush from every CPU using the parent's
    mm. Private writable pages become read-only in both mms -- the first
    write copies them (kernel/mm/cow.py). Shared mappings (MAP_SHARED) stay
    writable in both: they are populated first so both sides map the same
    frames. Raises SyscallError(ENOMEM) when memory runs out, after flushing
    what it already write-protected."""
    frames = kernel.frames
    try:
        child = MmStruct(frames)
    except OutOfMemory:
        raise SyscallError(ENOMEM) from None
    kernel.vmalloc.clone_kernel_pgd_entries(child.pagetables)      # pgd_ctor: the shared kernel half
    child.tlb_flush_hook = parent_mm.tlb_flush_hook
    child.code_change_hook = parent_mm.code_change_hook
    child.start_brk, child.brk = parent_mm.start_brk, parent_mm.brk
    child.ldt = list(parent_mm.ldt) if parent_mm.ldt else None     # ldt_dup_context
    child.membarrier_state = parent_mm.membarrier_state           # dup_mm copies the mm, registrations included
    child.vdso_base, child.exec_layout = parent_mm.vdso_base, parent_mm.exec_layout
    child.vdso_clock_block = parent_mm.vdso_clock_block
    write_protected = []
    try:
        for vma in parent_mm.vmas:
            child.add_vma(vma.start, vma.end, vma.prot, vma.flags, vma.name, vma.backing, vma.pgoff)
            shared = bool(vma.flags & MAP_SHARED)
            if shared:
                for page in range(vma.start, vma.end, PAGE_SIZE):
                    parent_mm.populate(page, vma.prot)
            for vaddr, entry in parent_mm.pagetables.entries(vma.start, vma.end):
                frame = entry & PHYS_ADDR_MASK
                cow = frame and not shared and entry & PTE_WRITABLE
                if cow:
                    entry &= ~PTE_WRITABLE
                child.pagetables.set_entry(vaddr, entry)
                if frame:
                    frames.get(frame)
                if cow:
                    parent_mm.pagetables.set_entry(vaddr, entry)
                    write_protected.append(vaddr)
    except (OutOfMemory, SyscallError):
        child.destroy()
        if write_protected:
            parent_mm.flush_tlb_range(min(write_protected), max(write_protected) + PAGE_SIZE)
        raise SyscallError(ENOMEM) from None
    if not write_protected:
        return child, None
    return child, (min(write_protected), max(write_protected) + PAGE_SIZE)


def fpu_clone(kernel: "Kernel", vcpu: "VCpu", child_fpstate: fpu.FpState) -> None:
    """Fill the child's fpstate (fpu_clone): an XSAVES of the parent's live
    registers with only the non-dynamic features, so dynamic state (AMX tile
    data) is never inherited; PASID starts in its init state."""
    mask = child_fpstate.xfeatures & ~fpu.XFEATURE_MASK_USER_DYNAMIC & (vcpu.xstate.xcr0 | vcpu.xstate.xss)
    access = fpu.KernelBufferAccess(vcpu, child_fpstate)
    xstate.xsave(access, child_fpstate.kernel_address, mask, variant="xsaves")
    vcpu.charge_xsave(xstate.compacted_size(mask))
    kernel.counters["xsaves"] += 1
    header = child_fpstate.kernel_address + xstate.HEADER_OFFSET
    (xstate_bv,) = struct.unpack("<Q", access.read_virtual(header, 8))
    access.write_virtual(header, struct.pack("<Q", xstate_bv & ~XFEATURE_MASK_PASID))


def copy_process(kernel: "Kernel", vcpu: "VCpu", parent_task: Task, flags: int, stack_pointer: int,
                 parent_tid: int, child_tid: int, tls: int, exit_signal: int) -> int | None:
    """clone without CLONE_THREAD (fork, vfork, clone(SIGCHLD), clone3): start a
    new process and return its pid to the parent (kernel_clone). With
    CLONE_VFORK the parent sleeps until the child releases its mm; RAX is
    then already set, so this returns None."""
    if flags & CLONE_NAMESPACE_FLAGS:
        raise SyscallError(EPERM)
    if flags & CLONE_PIDFD or not 0 <= exit_signal <= signals.NSIG:
        raise SyscallError(EINVAL)    # no pidfds: only fds 0-2 exist
    parent = parent_task.process
    registers = vcpu.save_user_registers()
    registers["rax"] = 0
    if stack_pointer:
        registers["rsp"] = stack_pointer
    if flags & CLONE_SETTLS:
        if tls >= TASK_SIZE:
            raise SyscallError(EPERM)
        registers["fs_base"] = tls
    write_protected = None
    if flags & CLONE_VM:
        mm = parent.mm
        mm.mm_users += 1                           # mmget
    else:
        mm, write_protected = dup_mmap(kernel, parent.mm)
    pid = allocate_pid()
    # CLONE_PARENT: a sibling of the caller, sharing its parent.
    real_parent = parent.parent if flags & CLONE_PARENT else parent
    child_process = Process(
        pid=pid, mm=mm, exe_path=parent.exe_path, exe_location=parent.exe_location,
        fpu_permission=replace(parent.fpu_permission),     # fpu_inherit_perms
        sigactions=parent.sigactions if flags & CLONE_SIGHAND else dict(parent.sigactions),
        parent=real_parent, exit_signal=exit_signal,
        # files_struct: shared with CLONE_FILES, else copied (dup_fd); fs_struct copied.
        files=parent.files.share() if flags & CLONE_FILES else parent.files.copy(),
        cwd=parent.cwd, umask=parent.umask, cred=replace(parent.cred) if parent.cred is not None else None,
        comm=parent.comm,
        rlimits=dict(parent.rlimits))                       # copy_signal: signal->rlim
    # The alternate signal stack is dropped for CLONE_VM without CLONE_VFORK
    # (it would be shared); rseq is dropped with CLONE_VM (rseq_fork).
    keeps_altstack = flags & VFORK_FLAGS != CLONE_VM
    child = Task(tid=pid, process=child_process, registers=registers,
                 fpstate=fpu.new_task_fpstate(kernel.fpu_config), signal_mask=parent_task.signal_mask,
                 affinity=parent_task.affinity,
                 sigaltstack=parent_task.sigaltstack if keeps_altstack else None,
                 rseq=None if flags & CLONE_VM or parent_task.rseq is None else replace(parent_task.rseq))
    child.state = "sleeping"
    sched_fork(child, parent_task)
    child_process.tasks.append(child)
    kernel.xstate_alloc.task_created(vcpu, child)      # the allocation policy may size the buffer
    fpu_clone(kernel, vcpu, child.fpstate)
    if flags & CLONE_CHILD_SETTID:
        # Written in the child's address space (schedule_tail); a bad pointer is ignored.
        try:
            mm.copy_to_user(child_tid, struct.pack("<I", pid))
        except SyscallError:
            pass
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    if flags & CLONE_PARENT_SETTID:
        try:
            parent.mm.copy_to_user(parent_tid, struct.pack("<I", pid))
        except SyscallError:
            pass
    kernel.processes[pid] = child_process
    if real_parent is not None:
        real_parent.children.append(child_process)
    kernel.counters["forks"] += 1
    if flags & CLONE_VFORK:
        child.vfork_done = parent_task
    if parent_task.ptrace is not None:
        # ptrace_init_task: traced before it can run (a vfork child runs while its parent waits).
        from kernel.ptrace import ptrace_init_task
        ptrace_init_task(kernel, parent_task, child, flags, exit_signal)
    if write_protected is not None:
        # Writable -> read-only: no CPU may keep a writable translation of the
        # parent's pages once the child can run (dup_mmap's flush_tlb_mm).
        parent.mm.flush_tlb_range(*write_protected, on_flushed=lambda: kernel.scheduler.wake_up(child, vcpu))
    else:
        kernel.scheduler.wake_up(child, vcpu)
    if flags & CLONE_VFORK:
        # wait_for_vfork_done: the parent sleeps until exit_mm wakes it.
        vcpu.write_register("rax", pid)
        parent_task.sleep_uninterruptible = True
        kernel.scheduler.block_current(vcpu)
        return None
    return pid


def sys_fork(kernel, vcpu, task, *_):
    return copy_process(kernel, vcpu, task, 0, 0, 0, 0, 0, signals.SIGCHLD)


def sys_vfork(kernel, vcpu, task, *_):
    """vfork(2): CLONE_VM | CLONE_VFORK | SIGCHLD -- the child borrows the
    parent's address space and the parent waits until the child exits."""
    return copy_process(kernel, vcpu, task, VFORK_FLAGS, 0, 0, 0, 0, signals.SIGCHLD)
