"""The Linux x86-64 system call layer: numbers, arguments and errno as Linux has them.

``SYSCALLS`` maps each number (arch/x86/entry/syscalls/syscall_64.tbl) to its
implementation. Every implementation takes (kernel, vcpu, task, six raw
argument registers) and returns the value for RAX; a ``SyscallError`` becomes
-errno. Guest pointers are only touched through the mm's uaccess helpers, so a
bad pointer is -EFAULT, never a host exception.
"""
from __future__ import annotations

import struct
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.errno import (
    EAGAIN, EEXIST, EINVAL, ENODEV, ENOMEM, EPERM, ESRCH, SyscallError,
)
from emu_x86.kernel.loader.image import PROT_EXEC, PROT_READ, PROT_WRITE
from emu_x86.kernel.mm.mm import (
    MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, MMAP_MIN_ADDR, TASK_SIZE,
    page_align_up,
)
from emu_x86.kernel import fpu
from emu_x86.kernel.mm import mlock, mseal
from emu_x86.kernel.exit import sys_wait4, sys_waitid
from emu_x86.kernel.sigframe import (
    SI_TKILL, SigAction, SigInfo, send_signal, sys_rt_sigreturn,
    sys_sigaltstack,
)

if TYPE_CHECKING:  # pragma: no cover
    pass

MASK64 = (1 << 64) - 1
ARG_REGISTERS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

# ---- numbers (arch/x86/entry/syscalls/syscall_64.tbl) -----------------------
SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat = 0, 1, 2, 3, 4, 5, 6
SYS_lseek, SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk = 8, 9, 10, 11, 12
SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_ioctl, SYS_readv, SYS_writev = 13, 14, 16, 19, 20
SYS_access, SYS_sched_yield, SYS_mremap, SYS_madvise, SYS_nanosleep = 21, 24, 25, 28, 35
SYS_getpid, SYS_exit, SYS_kill, SYS_uname, SYS_fcntl = 39, 60, 62, 63, 72
SYS_getcwd, SYS_readlink, SYS_gettimeofday, SYS_getrlimit = 79, 89, 96, 97
SYS_getuid, SYS_getgid, SYS_geteuid, SYS_getegid, SYS_getppid = 102, 104, 107, 108, 110
SYS_sigaltstack, SYS_arch_prctl, SYS_gettid, SYS_tkill, SYS_time, SYS_futex = 131, 158, 186, 200, 201, 202
SYS_sched_getaffinity, SYS_set_tid_address, SYS_clock_gettime, SYS_clock_getres = 204, 218, 228, 229
SYS_clock_nanosleep, SYS_exit_group, SYS_tgkill, SYS_openat, SYS_readlinkat = 230, 231, 234, 257, 267
SYS_newfstatat, SYS_set_robust_list, SYS_prlimit64, SYS_getrandom, SYS_rseq = 262, 273, 302, 318, 334
SYS_faccessat, SYS_faccessat2, SYS_statx, SYS_sysinfo = 269, 439, 332, 99
SYS_sched_setaffinity, SYS_getcpu = 203, 309
SYS_clone, SYS_clone3, SYS_rt_sigreturn, SYS_rt_sigpending, SYS_membarrier = 56, 435, 15, 127, 324
SYS_fork, SYS_vfork, SYS_wait4, SYS_waitid = 57, 58, 61, 247

# arch_prctl codes (arch/x86/include/uapi/asm/prctl.h)
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
RLIMIT_STACK, RLIMIT_NOFILE, RLIMIT_AS = 3, 7, 9
RLIM_INFINITY = MASK64
RSEQ_FLAG_UNREGISTER = 1
RSEQ_CPU_ID_UNINITIALIZED = MASK64 >> 32  # (u32)-1
RSEQ_MIN_LENGTH = 32
GRND_NONBLOCK, GRND_RANDOM = 1, 2
MAX_PATH_BYTES = 4096
MAX_IO_BYTES = 0x7FFFF000   # MAX_RW_COUNT


def signed(value: int) -> int:
    """A 64-bit register as a signed integer."""
    return value - (1 << 64) if value & (1 << 63) else value


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


# ---- memory --------------------------------------------------------------------

def sys_brk(k, vcpu, task, new_brk, *_):
    """brk(2): returns the new break, or the old one when the request is refused."""
    mm = task.mm
    if new_brk < mm.start_brk:
        return mm.brk
    old_end = page_align_up(mm.brk)
    new_end = page_align_up(new_brk)
    if new_end > old_end:
        if new_end > TASK_SIZE or not mm.range_is_free(old_end, new_end):
            return mm.brk
        heap = mm.find_vma(old_end - 1) if old_end > mm.start_brk else None
        try:
            if heap is not None and heap.name == "[heap]" and heap.end == old_end:
                mm.expand_vma(heap, new_end)
            else:
                mm.add_vma(old_end, new_end, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, "[heap]")
        except SyscallError:
            return mm.brk            # not enough memory: the break stays (do_brk_flags -ENOMEM)
    elif new_end < old_end:
        mm.unmap_range(new_end, old_end)
        heap = mm.find_vma(new_end - 1)
    mm.brk = new_brk
    return mm.brk


def _check_prot(prot: int) -> int:
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        raise SyscallError(EINVAL)
    # x86 cannot express write-only or exec-only: PROT_WRITE/EXEC imply read.
    return prot | PROT_READ if prot else 0


def sys_mmap(k, vcpu, task, addr, length, prot, flags, fd, offset):
    flags &= 0xFFFFFFFF
    fd = signed32(fd)
    if length == 0 or addr & (PAGE_SIZE - 1) or offset & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        raise SyscallError(EINVAL)
    if not flags & MAP_ANONYMOUS:
        from emu_x86.kernel.devices import NullDevice, ZeroDevice
        from emu_x86.kernel.file import O_ACCMODE, O_WRONLY
        file = task.process.files.get(fd)
        if not isinstance(file, (ZeroDevice, NullDevice)):
            raise SyscallError(ENODEV)   # no file here has a page cache to map (yet)
        if file.flags & O_ACCMODE == O_WRONLY:
            raise SyscallError(13)       # EACCES: mapping needs read access
        # /dev/zero maps as anonymous memory (mmap_zero / shmem_zero_setup for MAP_SHARED).
        flags |= MAP_ANONYMOUS
    length = page_align_up(length)
    if length > TASK_SIZE:
        raise SyscallError(ENOMEM)
    prot = _check_prot(prot)
    mm = task.mm
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr < MMAP_MIN_ADDR or addr + length > TASK_SIZE:
            raise SyscallError(EPERM if addr < MMAP_MIN_ADDR else ENOMEM)
        if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED and not mm.range_is_free(addr, addr + length):
            raise SyscallError(EEXIST)
        mseal.check_modify(mm, addr, addr + length)      # mmap_region over a sealed mapping
        start = addr
    else:
        start = mm.get_unmapped_area(length, addr)
    if mm.def_locked and not mlock.mlock_future_ok(task, length // PAGE_SIZE):
        raise SyscallError(EAGAIN)                        # mlockall(MCL_FUTURE) past RLIMIT_MEMLOCK
    mm.add_vma(start, start + length, prot, flags, "anon")
    return start


def sys_munmap(k, vcpu, task, addr, length, *_):
    if addr & (PAGE_SIZE - 1) or length == 0 or addr + length > TASK_SIZE:
        raise SyscallError(EINVAL)
    mseal.check_modify(task.mm, addr, addr + page_align_up(length))
    task.mm.unmap_range(addr, addr + page_align_up(length))
    return 0


PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP = 0x8, 0x01000000, 0x02000000


def sys_mprotect(k, vcpu, task, addr, length, prot, *_):
    """mprotect(2) in mm/mprotect.c do_mprotect_pkey's order: GROWSDOWN|GROWSUP,
    alignment, an empty range (0 before any prot check), wrap-around, the prot
    bits, then the range must start in a mapping and have no hole (ENOMEM).
    No mapping here grows (VM_GROWSDOWN/UP), so PROT_GROWS* on one is EINVAL."""
    prot &= 0xFFFFFFFF
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~grows
    if grows == PROT_GROWSDOWN | PROT_GROWSUP or addr & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    if length == 0:
        return 0
    end = (addr + page_align_up(length)) & MASK64
    if end <= addr:
        raise SyscallError(ENOMEM)
    prot = _check_prot(prot & ~PROT_SEM)       # arch_validate_prot: PROT_SEM is allowed
    mseal.check_modify(task.mm, addr, end)      # under the mmap lock, before the VMA walk
    first = next((vma for vma in task.mm.vmas if vma.end > addr), None)   # vma_find(start, end)
    if first is None or first.start >= end or end > TASK_SIZE:
        raise SyscallError(ENOMEM)
    if grows & PROT_GROWSDOWN:
        raise SyscallError(EINVAL)
    if first.start > addr:
        raise SyscallError(ENOMEM)
    if grows & PROT_GROWSUP:
        raise SyscallError(EINVAL)
    task.mm.mprotect(addr, end, prot)
    return 0


# madvise_behavior_valid (mm/madvise.c) for a kernel with KSM and THP and
# without CONFIG_MEMORY_FAILURE (as the reference host: MADV_HWPOISON and
# MADV_SOFT_OFFLINE are EINVAL): NORMAL..WILLNEED, DONTNEED, FREE, REMOVE,
# DONTFORK, DOFORK, MERGEABLE, UNMERGEABLE, HUGEPAGE, NOHUGEPAGE, DONTDUMP,
# DODUMP, WIPEONFORK, KEEPONFORK, COLD, PAGEOUT, POPULATE_READ/WRITE,
# DONTNEED_LOCKED, COLLAPSE.
MADV_VALID = frozenset((0, 1, 2, 3, 4, *range(8, 26)))


def sys_madvise(k, vcpu, task, addr, length, advice, *_):
    """do_madvise's order: the advice, the alignment, a length rounding up to
    zero or wrapping (EINVAL), an empty range (0), then the mappings: any
    hole in the range is ENOMEM (madvise_walk_vmas, after advising the rest)."""
    if signed32(advice) not in MADV_VALID or addr & (PAGE_SIZE - 1):
        raise SyscallError(EINVAL)
    aligned = page_align_up(length) & MASK64
    if length and not aligned:
        raise SyscallError(EINVAL)
    end = addr + aligned
    if end > MASK64:
        raise SyscallError(EINVAL)
    if end == addr:
        return 0
    if end > TASK_SIZE:
        # Past user space there is only a hole: Linux advises the mappings
        # below it first, then answers ENOMEM. Here MADV_DONTNEED cannot give
        # back the contents of a private file mapping (the ELF image), so a
        # range reaching past TASK_SIZE is refused before it changes anything.
        raise SyscallError(ENOMEM)
    mseal.check_madvise(task.mm, addr, end, advice)
    covered = 0
    for vma in task.mm.vmas:
        if vma.end > addr and vma.start < end:
            covered += min(vma.end, end) - max(vma.start, addr)
    MADV_DONTNEED = 4
    if advice == MADV_DONTNEED and length:
        # Anonymous private memory reads back as zeroes after MADV_DONTNEED.
        mm = task.mm
        end = addr + page_align_up(length)
        for vaddr, entry in list(mm.pagetables.entries(addr, end)):
            from emu_x86.emu.mmu.pagewalk import PHYS_ADDR_MASK
            mm.pagetables.clear_entry(vaddr)
            mm.frames.free(entry & PHYS_ADDR_MASK)
        mm.flush_tlb_range(addr, end)
    if covered != end - addr:
        raise SyscallError(ENOMEM)
    return 0


# ---- process and thread state -------------------------------------------------------

def sys_getpid(k, vcpu, task, *_):
    return task.pid


def sys_gettid(k, vcpu, task, *_):
    return task.tid


def sys_getppid(k, vcpu, task, *_):
    """The parent's pid; the first process and orphans report init's (1)."""
    parent = task.process.parent
    return parent.pid if parent is not None else 1


def sys_set_tid_address(k, vcpu, task, tidptr, *_):
    task.clear_child_tid = tidptr
    return task.tid


def sys_arch_prctl(k, vcpu, task, code, addr, *_):
    if code == ARCH_SET_FS:
        if addr >= TASK_SIZE:
            raise SyscallError(EPERM)
        vcpu.write_register("fs_base", addr)
        return 0
    if code == ARCH_SET_GS:
        if addr >= TASK_SIZE:
            raise SyscallError(EPERM)
        vcpu.write_register("gs_base", addr)
        return 0
    if code == ARCH_GET_FS:
        task.mm.copy_to_user(addr, struct.pack("<Q", vcpu.read_register("fs_base")))
        return 0
    if code == ARCH_GET_GS:
        task.mm.copy_to_user(addr, struct.pack("<Q", vcpu.read_register("gs_base")))
        return 0
    if code == ARCH_GET_CPUID:
        return 1
    if code in (fpu.ARCH_GET_XCOMP_SUPP, fpu.ARCH_GET_XCOMP_PERM, fpu.ARCH_REQ_XCOMP_PERM):
        return fpu.arch_prctl_xcomp(k, vcpu, task, code, addr)
    raise SyscallError(EINVAL)


def sys_uname(k, vcpu, task, buf, *_):
    fields = (b"Linux", b"emu", b"6.1.0-emu", b"#1 SMP PREEMPT_DYNAMIC", b"x86_64", b"(none)")
    task.mm.copy_to_user(buf, b"".join(f.ljust(65, b"\0") for f in fields))
    return 0


def sys_getrandom(k, vcpu, task, buf, count, flags, *_):
    """Bytes from a generator seeded by --seed, so runs are reproducible."""
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | 4):
        raise SyscallError(EINVAL)
    count = min(count, 1 << 25)
    data = k.guest_random.randbytes(count)
    task.mm.copy_to_user(buf, data)
    return count


def sys_rt_sigaction(k, vcpu, task, signo, act, oldact, sigsetsize, *_):
    """rt_sigaction(2): kernel struct sigaction {handler, flags, restorer, mask}."""
    if sigsetsize != 8 or not 1 <= signo <= 64:
        raise SyscallError(EINVAL)
    if act and signo in (9, 19):
        raise SyscallError(EINVAL)
    actions = task.process.sigactions
    new = task.mm.copy_from_user(act, 32) if act else None
    if oldact:
        task.mm.copy_to_user(oldact, actions.get(signo, bytes(32)))
    if new is not None:
        actions[signo] = new
        # Setting SIG_IGN discards what is pending (sigaction's do_sigaction).
        if SigAction.unpack(new).handler == 1:
            for thread in task.process.tasks:
                thread.pending_signals = [i for i in thread.pending_signals if i.signo != signo]
    return 0


def sys_rt_sigprocmask(k, vcpu, task, how, nset, oset, sigsetsize, *_):
    if sigsetsize != 8:
        raise SyscallError(EINVAL)
    if oset:
        task.mm.copy_to_user(oset, struct.pack("<Q", task.signal_mask))
    if nset:
        (value,) = struct.unpack("<Q", task.mm.copy_from_user(nset, 8))
        value &= ~((1 << 8) | (1 << 18))   # SIGKILL and SIGSTOP cannot be blocked
        if how == 0:
            task.signal_mask |= value
        elif how == 1:
            task.signal_mask &= ~value
        elif how == 2:
            task.signal_mask = value
        else:
            raise SyscallError(EINVAL)
    return 0


def sys_sysinfo(k, vcpu, task, info, *_):
    """struct sysinfo (include/uapi/linux/sysinfo.h) from the machine's own figures."""
    frames = k.frames
    uptime_seconds = k.now_ns(vcpu) // 1_000_000_000
    total = frames.total_frames * PAGE_SIZE
    free = (frames.total_frames - frames.allocated_frames) * PAGE_SIZE
    data = struct.pack("<q3Q6QH6xQQI", uptime_seconds, 0, 0, 0, total, free, 0, 0, 0, 0,
                       len(k.processes), 0, 0, 1)
    task.mm.copy_to_user(info, data.ljust(112, b"\0"))
    return 0


def sys_exit(k, vcpu, task, status, *_):
    """exit(2) of the calling thread; the last thread out ends the process."""
    process = task.process
    others = [t for t in process.tasks if t is not task and t.state != "exited"]
    if others:
        k.exit_task(task, vcpu)
    else:
        k.exit_group(process, status)
    return None


def sys_exit_group(k, vcpu, task, status, *_):
    k.exit_group(task.process, status)
    return None


def sys_tgkill(k, vcpu, task, tgid, tid, signo, *_):
    process = k.processes.get(signed32(tgid))
    target = None if process is None else next((t for t in process.tasks if t.tid == signed32(tid)
                                                and t.state != "exited"), None)
    if target is None:
        raise SyscallError(ESRCH)
    if signo == 0:
        return 0
    if not 1 <= signo <= 64:
        raise SyscallError(EINVAL)
    send_signal(k, vcpu, target, SigInfo(signo, SI_TKILL, pid=task.pid, uid=_uid(task)))
    return 0


def _uid(task) -> int:
    from emu_x86.kernel.cred import cred_of
    return cred_of(task).uid


def sys_tkill(k, vcpu, task, tid, signo, *_):
    return sys_tgkill(k, vcpu, task, task.pid, tid, signo)


SYSCALLS: dict[int, Callable] = {
    SYS_mmap: sys_mmap,
    SYS_mprotect: sys_mprotect,
    SYS_munmap: sys_munmap,
    SYS_brk: sys_brk,
    SYS_rt_sigaction: sys_rt_sigaction,
    SYS_rt_sigprocmask: sys_rt_sigprocmask,
    SYS_madvise: sys_madvise,
    SYS_getpid: sys_getpid,
    SYS_exit: sys_exit,
    SYS_uname: sys_uname,
    SYS_getppid: sys_getppid,
    SYS_sigaltstack: sys_sigaltstack,
    SYS_rt_sigreturn: sys_rt_sigreturn,
    SYS_arch_prctl: sys_arch_prctl,
    SYS_gettid: sys_gettid,
    SYS_tkill: sys_tkill,
    SYS_wait4: sys_wait4,
    SYS_waitid: sys_waitid,
    SYS_sysinfo: sys_sysinfo,
    SYS_set_tid_address: sys_set_tid_address,
    SYS_exit_group: sys_exit_group,
    SYS_tgkill: sys_tgkill,
    SYS_getrandom: sys_getrandom,
}
