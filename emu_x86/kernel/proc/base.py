"""/proc/PID and /proc/PID/task/TID (fs/proc/base.c tgid_base_stuff/tid_base_stuff,
fs/proc/array.c proc_pid_status/do_task_stat, fs/proc/fd.c)."""
from __future__ import annotations

import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.proc import Node
from emu_x86.kernel.proc.task_mmu import mm_counters, show_maps, show_smaps, show_statm

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Process, Task

TASK_COMM_LEN = 16
PF_RANDOMIZE = 0x00400000             # task->flags as /proc/PID/stat shows a user task


# ---- small accessors (the identity and job-control fields other subsystems own) -------------

def task_cred(task: "Task"):
    from emu_x86.kernel.cred import cred_of
    return cred_of(task)


def process_pgid(kernel: "Kernel", process: "Process") -> int:
    """task_pgrp_nr: the process group (emu_x86/kernel/process_groups.py)."""
    return process.pgid


def process_sid(kernel: "Kernel", process: "Process") -> int:
    """task_session_nr: the session (the first process's is session 1, begun outside the machine)."""
    return process.sid


def process_ppid(process: "Process") -> int:
    """The parent's pid; the first process reports init's (1), as getppid does here."""
    return process.parent.pid if process.parent is not None else 1


def task_state(kernel: "Kernel", task: "Task") -> tuple[str, str]:
    """get_task_state: (letter, name)."""
    from emu_x86.kernel.task import TASK_EXITED, TASK_RUNNABLE, TASK_RUNNING, TASK_TRACED
    if task.process.exit_state == "zombie" or task.state == TASK_EXITED:
        return "Z", "zombie"
    if task.state in (TASK_RUNNING, TASK_RUNNABLE) or task in kernel.current:
        return "R", "running"
    if task.state == TASK_TRACED:
        return "t", "tracing stop"
    if getattr(task, "group_stopped", False):
        return "T", "stopped"
    return ("D", "disk sleep") if task.sleep_uninterruptible else ("S", "sleeping")


def _comm(task: "Task") -> bytes:
    from emu_x86.kernel.prctl import task_comm
    return task_comm(task)[:TASK_COMM_LEN - 1]


def _signal_sets(task: "Task") -> dict:
    from emu_x86.kernel.sigframe import SIG_DFL, SIG_IGN, get_action
    pending = 0
    for info in task.pending_signals:
        pending |= 1 << (info.signo - 1)
    ignored = caught = 0
    for signo in range(1, 65):
        handler = get_action(task, signo).handler
        if handler == SIG_IGN:
            ignored |= 1 << (signo - 1)
        elif handler != SIG_DFL:
            caught |= 1 << (signo - 1)
    return {"pending": pending, "blocked": task.signal_mask, "ignored": ignored, "caught": caught}


def _cpu_list(mask: int, count: int) -> str:
    cpus = [cpu for cpu in range(count) if mask >> cpu & 1]
    ranges, start = [], None
    for index, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if index + 1 == len(cpus) or cpus[index + 1] != cpu + 1:
            ranges.append(str(start) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(ranges)


def _live_tasks(process: "Process") -> list["Task"]:
    from emu_x86.kernel.task import TASK_EXITED
    return [task for task in process.tasks if task.state != TASK_EXITED]


def show_status(kernel: "Kernel", task: "Task") -> bytes:
    """proc_pid_status."""
    process = task.process
    cred = task_cred(task)
    letter, name = task_state(kernel, task)
    counters = mm_counters(kernel, process)
    kb = 4
    signals = _signal_sets(task)
    cpus = len(kernel.machine.vcpus)
    mask = task.affinity if task.affinity is not None else (1 << cpus) - 1
    files = process.files
    fd_size = 64
    while files is not None and files.files and max(files.files) >= fd_size:
        fd_size *= 2
    pgid, sid = process_pgid(kernel, process), process_sid(kernel, process)
    tracer = task.ptrace.tracer.tid if task.ptrace is not None and getattr(task.ptrace, "tracer", None) else 0
    lines = [
        ("Name", _comm(task).decode("utf-8", "replace")), ("Umask", f"{process.umask:04o}"),
        ("State", f"{letter} ({name})"), ("Tgid", process.pid), ("Ngid", 0), ("Pid", task.tid),
        ("PPid", process_ppid(process)), ("TracerPid", tracer),
        ("Uid", f"{cred.uid}\t{cred.euid}\t{cred.suid}\t{cred.fsuid}"),
        ("Gid", f"{cred.gid}\t{cred.egid}\t{cred.sgid}\t{cred.fsgid}"),
        ("FDSize", fd_size), ("Groups", " "), ("NStgid", process.pid), ("NSpid", task.tid), ("NSpgid", pgid),
        ("NSsid", sid), ("Kthread", 0),
    ]
    from emu_x86.kernel.mm.mlock import locked_vm_pages
    locked_pages = locked_vm_pages(process.mm) if process.mm is not None else 0
    memory = [("VmPeak", counters["size"]), ("VmSize", counters["size"]), ("VmLck", locked_pages), ("VmPin", 0),
              ("VmHWM", counters["rss"]), ("VmRSS", counters["rss"]), ("RssAnon", counters["rss_anon"]),
              ("RssFile", counters["rss_file"]), ("RssShmem", counters["rss_shmem"]), ("VmData", counters["data"]),
              ("VmStk", counters["stack"]), ("VmExe", counters["exe"]), ("VmLib", 0), ("VmPTE", counters["pte"]),
              ("VmSwap", 0)] if process.mm is not None and letter != "Z" else []
    text = "".join(f"{key}:\t{value}\n" for key, value in lines)
    text += "".join(f"{key}:\t{value * kb:8d} kB\n" for key, value in memory)
    if memory:
        text += f"HugetlbPages:\t{0:8d} kB\n"
    rest = [
        ("CoreDumping", 0), ("THP_enabled", 1), ("untag_mask", "0xffffffffffffffff"),
        ("Threads", len(_live_tasks(process))), ("SigQ", f"{len(task.pending_signals)}/63158"),
        ("SigPnd", f"{signals['pending']:016x}"), ("ShdPnd", f"{0:016x}"), ("SigBlk", f"{signals['blocked']:016x}"),
        ("SigIgn", f"{signals['ignored']:016x}"), ("SigCgt", f"{signals['caught']:016x}"),
        ("CapInh", f"{0:016x}"), ("CapPrm", f"{0:016x}"), ("CapEff", f"{0:016x}"),
        ("CapBnd", "000001ffffffffff"), ("CapAmb", f"{0:016x}"), ("NoNewPrivs", 0), ("Seccomp", 0),
        ("Seccomp_filters", 0), ("Speculation_Store_Bypass", "thread vulnerable"),
        ("SpeculationIndirectBranch", "conditional enabled"),
        ("Cpus_allowed", f"{mask:x}"), ("Cpus_allowed_list", _cpu_list(mask, cpus)),
        ("Mems_allowed", ",".join(["00000000"] * 31 + ["00000001"])), ("Mems_allowed_list", "0"),
        ("voluntary_ctxt_switches", 0), ("nonvoluntary_ctxt_switches", 0),
    ]
    text += "".join(f"{key}:\t{value}\n" for key, value in rest)
    return text.encode("utf-8", "surrogateescape")


def show_stat(kernel: "Kernel", task: "Task", whole_group: bool) -> bytes:
    """do_task_stat: the 52 fields of /proc/PID/stat (and task/TID/stat)."""
    from emu_x86.kernel.resource import RLIMIT_RSS, task_rlimit
    process = task.process
    mm = process.mm
    letter, _ = task_state(kernel, task)
    counters = mm_counters(kernel, process) if mm is not None and letter != "Z" else None
    layout = getattr(mm, "exec_layout", None) if counters is not None else None
    signals = _signal_sets(task)
    cpu = task.cpu if task.cpu is not None else (task.last_cpu or 0)
    threads = len(_live_tasks(process))
    vsize = counters["size"] * 4096 if counters else 0
    rss = counters["rss"] if counters else 0
    fields = [
        process.pid if whole_group else task.tid, f"({_comm(task).decode('utf-8', 'replace')})", letter,
        process_ppid(process), process_pgid(kernel, process), process_sid(kernel, process),
        0, -1, PF_RANDOMIZE, mm.page_faults if mm is not None else 0, 0, 0, 0,
        0, 0, 0, 0,                                  # utime stime cutime cstime
        20 + 0, 0, threads, 0, 0,                    # priority nice num_threads itrealvalue starttime
        vsize, rss, task_rlimit(process, RLIMIT_RSS),
        layout.start_code if layout else 0, layout.end_code if layout else 0,
        layout.start_stack if layout else 0, 0, 0,    # startstack kstkesp kstkeip
        signals["pending"], signals["blocked"], signals["ignored"], signals["caught"],
        0, 0, 0, process.exit_signal, cpu, task.sched_priority, task.sched_policy, 0, 0, 0,
        layout.start_data if layout else 0, layout.end_data if layout else 0, mm.start_brk if layout else 0,
        layout.arg_start if layout else 0, layout.arg_end if layout else 0,
        layout.env_start if layout else 0, layout.env_end if layout else 0,
        (process.exit_status or 0) if letter == "Z" else 0,
    ]
    return (" ".join(str(field) for field in fields) + "\n").encode("utf-8", "surrogateescape")


def _user_range(process: "Process", which: str) -> bytes:
    """cmdline/environ: the bytes exec left on the stack, read from the process's memory
    (access_remote_vm); empty for a zombie."""
    mm = process.mm
    layout = getattr(mm, "exec_layout", None) if mm is not None else None
    if layout is None or process.exit_state is not None:
        return b""
    start, end = (layout.arg_start, layout.arg_end) if which == "cmdline" else (layout.env_start, layout.env_end)
    from emu_x86.kernel.errno import SyscallError
    try:
        return mm.copy_from_user(start, end - start)
    except SyscallError:
        return b""


LIMIT_NAMES = (
    ("Max cpu time", "seconds"), ("Max file size", "bytes"), ("Max data size", "bytes"),
    ("Max stack size", "bytes"), ("Max core file size", "bytes"), ("Max resident set", "bytes"),
    ("Max processes", "processes"), ("Max open files", "files"), ("Max locked memory", "bytes"),
    ("Max address space", "bytes"), ("Max file locks", "locks"), ("Max pending signals", "signals"),
    ("Max msgqueue size", "bytes"), ("Max nice priority", ""), ("Max realtime priority", ""),
    ("Max realtime timeout", "us"),
)


def show_limits(process: "Process") -> bytes:
    """proc_pid_limits."""
    from emu_x86.kernel.resource import RLIM_INFINITY, rlimit
    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for resource, (name, unit) in enumerate(LIMIT_NAMES):
        soft, hard = rlimit(process, resource)
        soft_text = "unlimited" if soft == RLIM_INFINITY else str(soft)
        hard_text = "unlimited" if hard == RLIM_INFINITY else str(hard)
        line = f"{name:<25} {soft_text:<20} {hard_text:<20} "
        out.append(line + (f"{unit:<10}\n" if unit else "\n"))
    return "".join(out).encode()


def show_mounts(kernel: "Kernel") -> bytes:
    """The mount table every guest sees: the root, devtmpfs on /dev, procfs on /proc."""
    if kernel.fs is None:
        root = "rootfs / rootfs ro 0 0\n"
    else:
        root = f"/dev/root / ext4 {'rw' if kernel.fs.writable else 'ro'},relatime 0 0\n"
    return (root + "devtmpfs /dev devtmpfs rw,nosuid,relatime,mode=755 0 0\n"
            "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n").encode()


# ---- the directories ------------------------------------------------------------------------

def _fd_directory(kernel: "Kernel", viewer: "Task", task: "Task", key: tuple, uid: int, gid: int,
                  info: bool) -> Node:
    """fd/ (magic links to the open files) or fdinfo/ (their position and flags)."""
    def table():
        files = task.process.files
        return files.files if files is not None else {}

    def child(name: str) -> Node | None:
        if not name.isdigit() or (name.startswith("0") and name != "0"):
            return None
        fd = int(name)
        file = table().get(fd)
        if file is None:
            return None
        if info:
            return Node("file", key + ("info", fd), mode=0o444, uid=uid, gid=gid,
                        read=lambda: fdinfo_text(kernel, task, fd))
        return Node("link", key + ("fd", fd), mode=0o700, uid=uid, gid=gid,
                    target=lambda: file.describe().encode("utf-8", "surrogateescape"),
                    follow=lambda: ("file", reopen(kernel, file)))

    def entries() -> list[tuple[str, int]]:
        return [(str(fd), 8 if info else 10) for fd in sorted(table())]

    return Node("dir", key + ("fdinfo" if info else "fd",), mode=0o500, uid=uid, gid=gid, child=child,
                entries=entries)


def fdinfo_text(kernel: "Kernel", task: "Task", fd: int) -> bytes:
    """seq_show of fs/proc/fd.c: pos, flags (octal, with O_CLOEXEC from the fd table), mnt_id, ino."""
    from emu_x86.kernel.file import O_CLOEXEC
    files = task.process.files
    file = files.files.get(fd)
    if file is None:
        return b""
    flags = file.flags | (O_CLOEXEC if fd in files.cloexec else 0)
    inode = struct.unpack_from("<Q", file.stat(kernel), 8)[0]
    return f"pos:\t{getattr(file, 'offset', 0)}\nflags:\t0{flags:o}\nmnt_id:\t{15}\nino:\t{inode}\n".encode()


def reopen(kernel: "Kernel", file):
    """Opening /proc/PID/fd/N: a regular file of the --fs tree is opened again (a new
    open file description); any other file is the same description (its offset shared)."""
    from emu_x86.kernel.fs import HostFile
    from emu_x86.kernel.file import O_ACCMODE, O_APPEND
    if isinstance(file, HostFile) and file.sandbox is not None:
        path = ("/" + "/".join(file.path)).encode("utf-8", "surrogateescape")
        return kernel.fs.open((), path, file.flags & (O_ACCMODE | O_APPEND), 0)
    return file


def pid_directory(kernel: "Kernel", viewer: "Task", task: "Task", thread: bool) -> Node:
    """/proc/PID (thread False: the thread group of ``task``) or /proc/PID/task/TID."""
    from emu_x86.kernel.namei import open_exe
    from emu_x86.kernel.proc.task_mmu import exe_identity
    process = task.process
    cred = task_cred(task)
    uid, gid = cred.euid, cred.egid
    key = ("tid" if thread else "pid", task.tid if thread else process.pid)
    leader = task if thread else (_live_tasks(process) or process.tasks or [task])[0]

    def file(name: str, read, mode: int = 0o444, write=None) -> Node:
        return Node("file", key + (name,), mode=mode, uid=uid, gid=gid, read=read, write=write)

    def comm_write(data: bytes) -> int:
        if viewer.process is not process:
            from emu_x86.kernel.errno import EINVAL, SyscallError
            raise SyscallError(EINVAL)
        name = data.split(b"\n")[0][:TASK_COMM_LEN - 1].decode("utf-8", "surrogateescape")
        leader.comm = name
        if leader.tid == process.pid:
            process.comm = name
        return len(data)

    def cwd_path() -> bytes:
        return ("/" + "/".join(process.cwd)).encode("utf-8", "surrogateescape")

    table = {
        "auxv": lambda: file("auxv", lambda: getattr(getattr(process.mm, "exec_layout", None), "auxv", b""),
                             0o400),
        "cmdline": lambda: file("cmdline", lambda: _user_range(process, "cmdline")),
        "comm": lambda: file("comm", lambda: _comm(leader) + b"\n", 0o644, comm_write),
        "environ": lambda: file("environ", lambda: _user_range(process, "environ"), 0o400),
        "exe": lambda: Node("link", key + ("exe",), mode=0o777, uid=uid, gid=gid,
                            target=lambda: exe_identity(process)[0].encode("utf-8", "surrogateescape"),
                            follow=lambda: ("file", open_exe(kernel, leader))),
        "cwd": lambda: Node("link", key + ("cwd",), mode=0o777, uid=uid, gid=gid, target=cwd_path,
                            follow=lambda: ("path", cwd_path())),
        "root": lambda: Node("link", key + ("root",), mode=0o777, uid=uid, gid=gid, target=lambda: b"/",
                             follow=lambda: ("path", b"/")),
        "fd": lambda: _fd_directory(kernel, viewer, task, key, uid, gid, info=False),
        "fdinfo": lambda: _fd_directory(kernel, viewer, task, key, uid, gid, info=True),
        "limits": lambda: file("limits", lambda: show_limits(process)),
        "maps": lambda: file("maps", lambda: show_maps(process)),
        "mounts": lambda: file("mounts", lambda: show_mounts(kernel)),
        "smaps": lambda: file("smaps", lambda: show_smaps(kernel, process)),
        "stat": lambda: file("stat", lambda: show_stat(kernel, leader, whole_group=not thread)),
        "statm": lambda: file("statm", lambda: show_statm(kernel, process)),
        "status": lambda: file("status", lambda: show_status(kernel, leader)),
    }
    if not thread:
        table["task"] = lambda: _task_directory(kernel, viewer, process, key, uid, gid)

    def child(name: str) -> Node | None:
        make = table.get(name)
        return make() if make is not None else None

    def entries() -> list[tuple[str, int]]:
        return [(name, table[name]().dirent_type) for name in sorted(table)]

    return Node("dir", key, mode=0o555, uid=uid, gid=gid, child=child, entries=entries)


def _task_directory(kernel: "Kernel", viewer: "Task", process: "Process", key: tuple, uid: int, gid: int) -> Node:
    def child(name: str) -> Node | None:
        for task in _live_tasks(process):
            if str(task.tid) == name:
                return pid_directory(kernel, viewer, task, thread=True)
        return None

    def entries() -> list[tuple[str, int]]:
        return [(str(task.tid), 4) for task in sorted(_live_tasks(process), key=lambda t: t.tid)]

    return Node("dir", key + ("task",), mode=0o555, uid=uid, gid=gid, child=child, entries=entries)


__all__ = ["pid_directory", "show_status", "show_stat", "process_pgid", "process_sid", "task_cred"]
