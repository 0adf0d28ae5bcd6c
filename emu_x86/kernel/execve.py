"""execve and execveat (fs/exec.c, fs/binfmt_script.c; binfmt_elf via emu_x86/kernel/loader).

The program is looked up in the guest's namespace (emu_x86/kernel/namei.py) and must
be a regular file with an execute bit (-EACCES otherwise). A file starting
with ``#!`` names an interpreter that is run with the script's path inserted
after its optional argument (at most four interpreter levels: -ELOOP); any
other file must be a static x86-64 ELF the loader accepts (-ENOEXEC).

Until the new image is built the call can fail and the caller goes on. Past
that point (``flush_old_exec``/``begin_new_exec``) the process becomes the new
program in place, as Linux does it:

- every other thread of the process exits (de_thread); the caller keeps its
  tid, which is the pid;
- the new mm replaces the old one, which is released (exec_mmap, mmput), and
  a vfork parent waiting for the old mm goes on (mm_release);
- close-on-exec fds are closed; the working directory and the other fds stay;
- handled signals return to SIG_DFL, ignored ones stay ignored; the signal
  mask and pending signals stay; the alternate stack, rseq registration,
  robust list and clear_child_tid are dropped;
- the FPU starts from its init state, with the XSTATE permissions
  (arch_prctl ARCH_REQ_XCOMP_PERM) reset to the defaults (fpu_flush_thread).
"""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import E2BIG, EACCES, EINVAL, ELOOP, ENOEXEC, SyscallError
from emu_x86.kernel.file import O_RDONLY, fdget
from emu_x86.kernel.namei import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, getname, open_path

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_execve, SYS_execveat = 59, 322
MAX_ARG_STRLEN = 32 * 4096            # one argument or environment string, with its NUL
MAX_ARG_BYTES = 2 * 1024 * 1024       # _STK_LIM / 4: argv + envp strings and pointers
MAX_ARG_STRINGS = 0x7FFFFFFF
BINPRM_BUF_SIZE = 256
MAX_INTERPRETER_DEPTH = 4             # binfmt_script recursion (search_binary_handler)
MAX_PROGRAM_BYTES = 1 << 30           # read at most this much of an ELF file from the host


def copy_strings(task: "Task", address: int) -> list[bytes]:
    """An argv/envp pointer array up to its NULL (a NULL array is empty); -E2BIG past the
    limits, -EFAULT for a bad pointer anywhere."""
    strings: list[bytes] = []
    if not address:
        return strings
    total = 0
    index = 0
    while True:
        (pointer,) = struct.unpack("<Q", task.mm.copy_from_user(address + 8 * index, 8))
        if not pointer:
            return strings
        value = task.mm.strncpy_from_user(pointer, MAX_ARG_STRLEN)
        if len(value) >= MAX_ARG_STRLEN:
            raise SyscallError(E2BIG)
        total += len(value) + 1 + 8
        if total > MAX_ARG_BYTES or index >= MAX_ARG_STRINGS:
            raise SyscallError(E2BIG)
        strings.append(value)
        index += 1


def _read_program(kernel: "Kernel", task: "Task", dirfd: int, path: bytes, flags: int) -> tuple[bytes, bytes]:
    """Open ``path`` as do_open_execat does and read it; returns (contents, path used)."""
    if not path and flags & AT_EMPTY_PATH:
        file = fdget(task, dirfd)
    else:
        from emu_x86.kernel.file import O_NOFOLLOW
        file = open_path(kernel, task, dirfd, path, O_RDONLY | (O_NOFOLLOW if flags & AT_SYMLINK_NOFOLLOW else 0), 0)
        file.references += 1
    try:
        if not getattr(file, "regular", False):
            raise SyscallError(EACCES)            # directories, devices, pipes: S_ISREG fails
        # The file's own struct stat (a --fs file's host inode, a tmpfs inode ...):
        # st_mode at byte 24, st_size at byte 48.
        (st_mode,) = struct.unpack_from("<I", file.stat(kernel), 24)
        (st_size,) = struct.unpack_from("<q", file.stat(kernel), 48)
        if not st_mode & 0o111:
            raise SyscallError(EACCES)            # no execute bit (may_open -> MAY_EXEC)
        if st_size > MAX_PROGRAM_BYTES:
            raise SyscallError(ENOEXEC)
        chunks = []
        offset = 0
        while offset < st_size:
            data = file.pread_bytes(kernel, min(1 << 20, st_size - offset), offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks), path
    finally:
        if not (not path and flags & AT_EMPTY_PATH):
            from emu_x86.kernel.file import fput
            fput(kernel, file)


def parse_shebang(contents: bytes) -> tuple[bytes, bytes | None]:
    """binfmt_script: the interpreter and its single optional argument from the first line
    (at most BINPRM_BUF_SIZE bytes; a line that does not end there must not be cut in the
    interpreter's name)."""
    first = contents[2:BINPRM_BUF_SIZE]
    end = first.find(b"\n")
    if end < 0:
        # Truncated: allowed only if the interpreter name ends within the buffer.
        stripped = first.lstrip(b" \t")
        if not any(ch in b" \t" for ch in stripped):
            raise SyscallError(ENOEXEC)
        line = first
    else:
        line = first[:end]
    line = line.strip(b" \t\r")
    if not line:
        raise SyscallError(ENOEXEC)
    name, _, rest = line.partition(b" ")
    if b"\t" in name:
        name, _, tail = name.partition(b"\t")
        rest = (tail + b" " + rest).strip()
    rest = rest.strip(b" \t")
    return name, rest or None


def sys_execve(kernel, vcpu, task, filename, argv, envp, *_):
    return do_execveat(kernel, vcpu, task, AT_FDCWD, filename, argv, envp, 0)


def sys_execveat(kernel, vcpu, task, dirfd, filename, argv, envp, flags, *_):
    from emu_x86.kernel.file import as_fd
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    return do_execveat(kernel, vcpu, task, as_fd(dirfd), filename, argv, envp, flags)


def do_execveat(kernel, vcpu, task, dirfd: int, filename: int, argv_address: int, envp_address: int,
                flags: int) -> int | None:
    path = getname(task, filename, allow_empty=bool(flags & AT_EMPTY_PATH))
    from emu_x86.kernel.namei import start_of
    location = ("guest", start_of(task, dirfd, path), path) if path else task.process.exe_location
    # alloc_bprm opens the file before argv and envp are counted and copied.
    contents, used_path = _read_program(kernel, task, dirfd, path, flags)
    argv = copy_strings(task, argv_address)
    envp = copy_strings(task, envp_address)
    if not argv:
        argv = [b""]                 # Linux 5.18+: an empty argv becomes { "" } (bprm_stack_limits)
    execfn = used_path if used_path else b"/dev/fd/%d" % dirfd
    for _depth in range(MAX_INTERPRETER_DEPTH + 1):
        if not contents.startswith(b"#!"):
            break
        interpreter, argument = parse_shebang(contents)
        # The script's own argv[0] is replaced by its path (binfmt_script: bprm->filename).
        argv = [interpreter] + ([argument] if argument is not None else []) + [execfn] + argv[1:]
        location = ("guest", start_of(task, AT_FDCWD, interpreter), interpreter)
        contents, used_path = _read_program(kernel, task, AT_FDCWD, interpreter, 0)
    else:
        raise SyscallError(ELOOP)
    from emu_x86.kernel.loader import LoadError
    from emu_x86.kernel.loader.elf import load_elf
    from emu_x86.kernel.mm.mm import ELF_ET_DYN_BASE
    try:
        image = load_elf(used_path.decode("utf-8", "surrogateescape"), contents, ELF_ET_DYN_BASE)
    except LoadError:
        raise SyscallError(ENOEXEC) from None
    if location and location[0] == "guest" and location[2] == b"/proc/self/exe":
        location = task.process.exe_location       # the same program again
    begin_new_exec(kernel, vcpu, task, image, used_path, execfn, argv, envp)
    task.process.exe_location = location
    return None


def begin_new_exec(kernel: "Kernel", vcpu, task: "Task", image, path: bytes, execfn: bytes,
                   argv: list[bytes], envp: list[bytes]) -> None:
    """The point of no return: the process becomes the new program (see the module doc)."""
    from emu_x86.kernel import fpu
    from emu_x86.kernel.exec import exec_image
    from emu_x86.kernel.exit import mm_release
    from emu_x86.kernel.kernel import HWCAP2, HWCAP_CPUID1_EDX, initial_user_registers
    from emu_x86.kernel.sigframe import SIG_IGN, get_action
    process = task.process
    decode = lambda value: value.decode("utf-8", "surrogateescape")   # noqa: E731
    from emu_x86.kernel.cred import cred_of
    cred = cred_of(task)
    mm, initial = exec_image(kernel.frames, image, execfn=decode(execfn), argv=[decode(a) for a in argv],
                             envp=[decode(e) for e in envp], seed=kernel.guest_random.getrandbits(63),
                             hwcap=HWCAP_CPUID1_EDX, hwcap2=HWCAP2,
                             minsigstksz=fpu.get_sigframe_size(kernel.fpu_config), vdso=kernel.vdso,
                             ids=(cred.uid, cred.gid))
    kernel.vmalloc.clone_kernel_pgd_entries(mm.pagetables)
    mm.tlb_flush_hook = kernel.flush_tlb_mm_range
    mm.code_change_hook = kernel.invalidate_code
    # de_thread: every other thread goes.
    for other in list(process.tasks):
        if other is not task and other.state != "exited":
            kernel.exit_task(other, None)
    process.tasks = [task]
    if task.tid != process.pid:
        task.tid = process.pid
    # exec_mm_release: clear_child_tid is written and woken, a vfork parent released.
    mm_release(kernel, task, vcpu)
    from emu_x86.kernel.posix_timers import exit_itimers
    exit_itimers(process)            # POSIX timers do not survive exec; itimers do
    if task.clear_child_tid:
        from emu_x86.kernel.futex import futex_wake
        try:
            task.mm.copy_to_user(task.clear_child_tid, bytes(4))
            futex_wake(kernel, vcpu, task.mm, task.clear_child_tid, 1)
        except SyscallError:
            pass
        task.clear_child_tid = 0
    old_mm = process.mm
    # The running task leaves the CPU without saving anything, then comes back
    # as the new program (switch_mm to the new mm, fresh registers and FPU).
    kernel.current[vcpu.index] = None
    task.cpu = None
    fpu.fpstate_free(kernel, vcpu, task)
    kernel.fpregs_owner[vcpu.index] = None
    process.mm = mm
    process.exe_path = decode(path)
    process.did_exec = True                      # setpgid's EACCES for an exec'ed child
    process.fpu_permission = fpu.new_process_permission(kernel.fpu_config)
    task.fpstate = fpu.new_task_fpstate(kernel.fpu_config)
    kernel.xstate_alloc.task_created(vcpu, task)
    kept = {}
    for signo in list(process.sigactions):
        if get_action(task, signo).handler == SIG_IGN:
            kept[signo] = process.sigactions[signo]
    process.sigactions = kept
    process.files.close_on_exec(kernel)
    task.sigaltstack = None
    task.rseq = None
    task.rseq_cpu_written = None
    task.robust_list_head = task.robust_list_len = 0
    task.registers = initial_user_registers(initial.rip, initial.rsp)
    kernel.counters["execs"] += 1
    kernel.switch_to(vcpu, task)
    kernel.mmput(old_mm)


SYSCALLS = {SYS_execve: sys_execve, SYS_execveat: sys_execveat}

__all__ = ["SYSCALLS", "parse_shebang", "copy_strings"]
