"""New tasks and processes: fork, vfork, clone, clone3 and unshare (kernel/fork.c).

``copy_process`` builds a new thread group around one task:

- the address space: with CLONE_VM the parent's mm itself (one more
  ``mm_users``); otherwise ``dup_mmap``: a new MmStruct with its own page
  tables and the parent's VMAs (seals kept, locks dropped), sharing the
  parent's frames copy-on-write;
- the calling thread's registers with RAX = 0 (and the new stack and TLS
  when given);
- the signal handlers copied (shared with CLONE_SIGHAND; reset to SIG_DFL,
  ignored ones kept, with CLONE_CLEAR_SIGHAND), the blocked mask and the
  alternate signal stack inherited, no pending signals;
- the process group and session inherited;
- the FPU registers copied into a default-size fpstate (fpu_clone: dynamic
  features such as AMX tile data are never inherited) and the process-wide
  AMX permission inherited (fpu_inherit_perms);
- the rseq registration kept unless CLONE_VM (rseq_fork);
- the robust futex list cleared (copy_process);
- with CLONE_PIDFD a pidfd for the child in the parent (emu_x86/kernel/pidfd.py).

``do_clone`` is kernel_clone: CLONE_THREAD makes a thread of the caller's
process, anything else goes to copy_process. The flag checks are
copy_process's (``check_clone_flags``), clone3's arguments are checked as
copy_clone_args_from_user and clone3_args_valid do. CLONE_VFORK (vfork)
blocks the parent until the child releases its mm (exit or execve), as
wait_for_vfork_done.
"""
from __future__ import annotations

import struct
from dataclasses import replace

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import XFEATURE_MASK_PASID
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK, PTE_WRITABLE
from emu_x86.kernel import fpu, signals
from emu_x86.kernel.errno import E2BIG, EBADF, EINVAL, ENOMEM, EPERM, SyscallError
from emu_x86.kernel.mm.frames import OutOfMemory
from emu_x86.kernel.mm.mm import MAP_SHARED, TASK_SIZE, MmStruct
from emu_x86.kernel.sched_syscalls import sched_fork
from emu_x86.kernel.task import TASK_SLEEPING, Process, Task, allocate_pid

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel

# clone flags (include/uapi/linux/sched.h)
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = \
    0x20000, 0x40000, 0x80000, 0x100000, 0x200000
CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID, CLONE_NEWCGROUP = 0x400000, 0x800000, 0x1000000, 0x02000000
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_IO = \
    0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x80000000
CLONE_NEWTIME = 0x80                          # shares the CSIGNAL byte: clone3 and unshare only
CSIGNAL = 0xFF
CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP = 1 << 32, 1 << 33      # clone3 only
CLONE_LEGACY_FLAGS = 0xFFFFFFFF
# Namespaces other than the user namespace need CAP_SYS_ADMIN (copy_namespaces:
# EPERM for this unprivileged guest).
CLONE_NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
                         | CLONE_NEWTIME)
VFORK_FLAGS = CLONE_VM | CLONE_VFORK
# struct clone_args sizes (include/uapi/linux/sched.h): VER0 up to tls, VER1 adds
# set_tid/set_tid_size, VER2 cgroup.
CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER2 = 64, 88
MAX_PID_NS_LEVEL = 32
INT_MAX = (1 << 31) - 1


def dup_mmap(kernel: "Kernel", parent_mm: MmStruct) -> tuple[MmStruct, tuple[int, int] | None]:
    """A new mm with the parent's VMAs whose PTEs map the parent's frames
    (dup_mmap + copy_page_range), and the range of the parent's PTEs made
    read-only, which the caller must flush from every CPU using the parent's
    mm. Private writable pages become read-only in both mms -- the first
    write copies them (emu_x86/kernel/mm/cow.py). Shared mappings (MAP_SHARED) stay
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
            child.add_vma(vma.start, vma.end, vma.prot, vma.flags, vma.name, vma.backing, vma.pgoff) \
                .sealed = vma.sealed            # vm_flags copied: VM_SEALED stays, VM_LOCKED does not
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


def check_clone_flags(flags: int) -> None:
    """copy_process's flag checks, in its order. User namespaces are treated as
    on a kernel built without CONFIG_USER_NS (create_user_ns: EINVAL), the
    other namespaces as for a caller without CAP_SYS_ADMIN (EPERM)."""
    if flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS:
        raise SyscallError(EINVAL)
    if flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS:
        raise SyscallError(EINVAL)
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        raise SyscallError(EINVAL)
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SyscallError(EINVAL)
    if flags & CLONE_THREAD and flags & (CLONE_NEWUSER | CLONE_NEWPID):
        raise SyscallError(EINVAL)
    if flags & CLONE_PIDFD and flags & CLONE_DETACHED:
        raise SyscallError(EINVAL)
    if flags & CLONE_NEWUSER:
        raise SyscallError(EINVAL)          # copy_creds -> create_user_ns without CONFIG_USER_NS
    if flags & CLONE_NAMESPACE_FLAGS:
        raise SyscallError(EPERM)           # copy_namespaces: !ns_capable(CAP_SYS_ADMIN)


def clear_sighand(sigactions: dict) -> dict:
    """flush_signal_handlers(p, 0) for CLONE_CLEAR_SIGHAND: every handler back
    to SIG_DFL, an ignored signal stays ignored; flags, restorer and mask cleared."""
    cleared = {}
    for signo, raw in sigactions.items():
        (handler,) = struct.unpack_from("<Q", raw)
        if handler == signals_sig_ign():
            cleared[signo] = struct.pack("<Q", handler).ljust(len(raw), b"\0")
    return cleared


def signals_sig_ign() -> int:
    from emu_x86.kernel.sigframe import SIG_IGN
    return SIG_IGN


def install_pidfd(kernel: "Kernel", parent_task: Task, child: Task, flags: int, pidfd_address: int) -> int:
    """clone's pidfd (copy_process: pidfd_prepare + put_user); the caller probed the slot."""
    from emu_x86.kernel.pidfd import pidfd_create
    thread = child if flags & CLONE_THREAD else None
    fd = pidfd_create(kernel, parent_task, child.process, thread, 0)
    parent_task.mm.copy_to_user(pidfd_address, struct.pack("<i", fd))
    return fd


def copy_process(kernel: "Kernel", vcpu: "VCpu", parent_task: Task, flags: int, stack_pointer: int,
                 parent_tid: int, child_tid: int, tls: int, exit_signal: int, pidfd_address: int = 0) -> int | None:
    """clone without CLONE_THREAD (fork, vfork, clone(SIGCHLD), clone3): start a
    new process and return its pid to the parent (kernel_clone). With
    CLONE_VFORK the parent sleeps until the child releases its mm; RAX is
    then already set, so this returns None."""
    check_clone_flags(flags)
    if not 0 <= exit_signal <= signals.NSIG:
        raise SyscallError(EINVAL)
    if flags & CLONE_PIDFD:
        # put_user(pidfd, args->pidfd) faulting fails the clone before the
        # child exists: probe the slot first, so nothing needs undoing.
        parent_task.mm.copy_to_user(pidfd_address, bytes(4))
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
        sigactions=(parent.sigactions if flags & CLONE_SIGHAND
                    else clear_sighand(parent.sigactions) if flags & CLONE_CLEAR_SIGHAND
                    else dict(parent.sigactions)),
        parent=real_parent, exit_signal=exit_signal,
        # files_struct: shared with CLONE_FILES, else copied (dup_fd); fs_struct copied.
        files=parent.files.share() if flags & CLONE_FILES else parent.files.copy(),
        cwd=parent.cwd, umask=parent.umask, cred=replace(parent.cred) if parent.cred is not None else None,
        comm=parent.comm, pgid=parent.pgid, sid=parent.sid,   # copy_process: attach_pid(PGID, SID)
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
    if flags & CLONE_PIDFD:
        install_pidfd(kernel, parent_task, child, flags, pidfd_address)
    kernel.processes[pid] = child_process
    if real_parent is not None:
        real_parent.children.append(child_process)
    kernel.counters["forks"] += 1
    if flags & CLONE_VFORK:
        child.vfork_done = parent_task
    if parent_task.ptrace is not None:
        # ptrace_init_task: traced before it can run (a vfork child runs while its parent waits).
        from emu_x86.kernel.ptrace import ptrace_init_task
        ptrace_init_task(kernel, parent_task, child, flags, exit_signal)
    if write_protected is not None:
        # Writable -> read-only: no CPU may keep a writable translation of the
        # parent's pages once the child can run (dup_mmap's flush_tlb_mm).
        # Until then the parent's write faults wait (kernel.handle_exception).
        parent_mm = parent.mm
        parent_mm.fork_flush_waiters = []

        def flushed() -> None:
            waiters, parent_mm.fork_flush_waiters = parent_mm.fork_flush_waiters, None
            kernel.scheduler.wake_up(child, vcpu)
            for waiter in waiters:
                waiter.sleep_uninterruptible = False
                if waiter.state == TASK_SLEEPING:      # not killed meanwhile (exit_group)
                    kernel.scheduler.wake_up(waiter, vcpu)

        parent_mm.flush_tlb_range(*write_protected, on_flushed=flushed)
    else:
        kernel.scheduler.wake_up(child, vcpu)
    if flags & CLONE_VFORK:
        # wait_for_vfork_done: the parent sleeps until exit_mm wakes it.
        vcpu.write_register("rax", pid)
        parent_task.sleep_uninterruptible = True
        kernel.scheduler.block_current(vcpu)
        return None
    return pid


def do_clone(kernel, vcpu, task, flags, stack_pointer, parent_tid, child_tid, tls, exit_signal=0,
             pidfd_address=0):
    """kernel_clone: a thread (CLONE_THREAD) or a new process (copy_process)."""
    # Legacy clone returns the pidfd through parent_tid: both at once cannot work.
    if flags & CLONE_PIDFD and flags & CLONE_PARENT_SETTID and pidfd_address == parent_tid:
        raise SyscallError(EINVAL)
    if not flags & CLONE_THREAD:
        return copy_process(kernel, vcpu, task, flags, stack_pointer, parent_tid, child_tid, tls, exit_signal,
                            pidfd_address)
    check_clone_flags(flags)
    if flags & CLONE_PIDFD:
        task.mm.copy_to_user(pidfd_address, bytes(4))
    registers = vcpu.save_user_registers()
    registers["rax"] = 0
    if stack_pointer:
        registers["rsp"] = stack_pointer
    if flags & CLONE_SETTLS:
        if tls >= TASK_SIZE:
            raise SyscallError(EPERM)
        registers["fs_base"] = tls
    child = Task(tid=allocate_pid(), process=task.process, registers=registers,
                 fpstate=fpu.new_task_fpstate(kernel.fpu_config), signal_mask=task.signal_mask,
                 affinity=task.affinity)       # dup_task_struct copies cpus_mask
    child.state = "sleeping"
    sched_fork(child, task)
    if flags & CLONE_PARENT_SETTID:
        task.mm.copy_to_user(parent_tid, struct.pack("<I", child.tid))
    if flags & CLONE_CHILD_SETTID:
        task.mm.copy_to_user(child_tid, struct.pack("<I", child.tid))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    task.process.tasks.append(child)
    task.mm.mm_users += 1          # mmget: the thread shares the mm
    kernel.xstate_alloc.task_created(vcpu, child)
    if flags & CLONE_PIDFD:
        install_pidfd(kernel, task, child, flags, pidfd_address)
    kernel.counters["threads_created"] += 1
    kernel.scheduler.wake_up(child, vcpu)
    return child.tid


def sys_clone(kernel, vcpu, task, flags, stack, parent_tid, child_tid, tls, *_):
    """clone(2), x86-64 argument order: only the low 32 bits of flags count
    (lower_32_bits), their low byte is the exit signal, and CLONE_PIDFD
    returns the pidfd through ``parent_tid``."""
    flags &= CLONE_LEGACY_FLAGS
    return do_clone(kernel, vcpu, task, flags & ~CSIGNAL, stack, parent_tid, child_tid, tls,
                    exit_signal=flags & CSIGNAL, pidfd_address=parent_tid)


def copy_clone_args_from_user(task: Task, address: int, size: int) -> tuple:
    """copy_clone_args_from_user: the size rules (E2BIG above a page or with
    non-zero bytes past the known struct, EINVAL below VER0), then the
    field checks, in kernel/fork.c's order."""
    if size > PAGE_SIZE:
        raise SyscallError(E2BIG)
    if size < CLONE_ARGS_SIZE_VER0:
        raise SyscallError(EINVAL)
    raw = task.mm.copy_from_user(address, size)
    if any(raw[CLONE_ARGS_SIZE_VER2:]):
        raise SyscallError(E2BIG)             # copy_struct_from_user: an unknown extension in use
    raw = raw[:CLONE_ARGS_SIZE_VER2].ljust(CLONE_ARGS_SIZE_VER2, b"\0")
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
     cgroup) = struct.unpack("<11Q", raw)
    if set_tid_size > MAX_PID_NS_LEVEL or (not set_tid and set_tid_size) or (set_tid and not set_tid_size):
        raise SyscallError(EINVAL)
    if exit_signal & ~CSIGNAL or exit_signal > signals.NSIG:
        raise SyscallError(EINVAL)
    if flags & CLONE_INTO_CGROUP and (cgroup > INT_MAX or size < CLONE_ARGS_SIZE_VER2):
        raise SyscallError(EINVAL)
    if set_tid:
        task.mm.copy_from_user(set_tid, 4 * set_tid_size)
    return flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid_size


def clone3_args_valid(flags: int, exit_signal: int, stack: int, stack_size: int) -> bool:
    """clone3_args_valid + clone3_stack_valid."""
    if flags & ~(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP):
        return False
    if flags & (CLONE_DETACHED | (CSIGNAL & ~CLONE_NEWTIME)):
        return False                          # bits clone3 keeps for reuse
    if flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND:
        return False
    if flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal:
        return False
    if stack == 0:
        return stack_size == 0
    return stack_size != 0 and stack + stack_size <= TASK_SIZE      # access_ok


def sys_clone3(kernel, vcpu, task, args_address, size, *_):
    """clone3(struct clone_args *, size)."""
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
     set_tid_size) = copy_clone_args_from_user(task, args_address, size)
    if not clone3_args_valid(flags, exit_signal, stack, stack_size):
        raise SyscallError(EINVAL)
    if set_tid_size:
        raise SyscallError(EPERM)             # choosing the pid needs CAP_CHECKPOINT_RESTORE
    if flags & CLONE_INTO_CGROUP:
        raise SyscallError(EBADF)             # no cgroup2 fd can exist here (cgroup_css_set_fork: fdget)
    return do_clone(kernel, vcpu, task, flags, stack + stack_size if stack else 0, parent_tid, child_tid, tls,
                    exit_signal=exit_signal, pidfd_address=pidfd)


# ---- unshare ----------------------------------------------------------------------------

CLONE_UNSHARE_FLAGS = (CLONE_THREAD | CLONE_FS | CLONE_NEWNS | CLONE_SIGHAND | CLONE_VM | CLONE_FILES
                       | CLONE_SYSVSEM | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUSER
                       | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWTIME)


def sys_unshare(kernel, vcpu, task, flags, *_):
    """unshare(2) (ksys_unshare, check_unshare_flags): CLONE_FILES gives the
    process its own copy of a shared fd table, CLONE_FS/SYSVSEM have nothing
    shared to split; THREAD/SIGHAND/VM only succeed for a single-threaded
    process; namespaces fail as clone's (EINVAL for a user namespace, EPERM
    for the others)."""
    flags &= 0xFFFFFFFF
    if flags & CLONE_NEWUSER:
        flags |= CLONE_THREAD | CLONE_FS
    if flags & CLONE_VM:
        flags |= CLONE_SIGHAND
    if flags & CLONE_SIGHAND:
        flags |= CLONE_THREAD
    if flags & CLONE_NEWNS:
        flags |= CLONE_FS
    if flags & ~CLONE_UNSHARE_FLAGS:
        raise SyscallError(EINVAL)
    process = task.process
    live_threads = [t for t in process.tasks if t.state != "exited"]
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM):
        if len(live_threads) > 1:
            raise SyscallError(EINVAL)
        if flags & CLONE_VM and process.mm.mm_users > 1:
            raise SyscallError(EINVAL)
    if flags & CLONE_NEWUSER:
        raise SyscallError(EINVAL)            # unshare_userns without CONFIG_USER_NS
    if flags & CLONE_NAMESPACE_FLAGS:
        raise SyscallError(EPERM)
    if flags & CLONE_FILES and process.files.references > 1:
        shared = process.files
        process.files = shared.copy()
        shared.references -= 1
    return 0


def sys_fork(kernel, vcpu, task, *_):
    return copy_process(kernel, vcpu, task, 0, 0, 0, 0, 0, signals.SIGCHLD)


def sys_vfork(kernel, vcpu, task, *_):
    """vfork(2): CLONE_VM | CLONE_VFORK | SIGCHLD -- the child borrows the
    parent's address space and the parent waits until the child exits."""
    return copy_process(kernel, vcpu, task, VFORK_FLAGS, 0, 0, 0, 0, signals.SIGCHLD)


SYS_clone, SYS_fork, SYS_vfork, SYS_unshare, SYS_clone3 = 56, 57, 58, 272, 435

SYSCALLS = {
    SYS_clone: sys_clone,
    SYS_fork: sys_fork,
    SYS_vfork: sys_vfork,
    SYS_unshare: sys_unshare,
    SYS_clone3: sys_clone3,
}
