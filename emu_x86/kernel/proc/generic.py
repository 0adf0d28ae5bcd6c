"""/proc's top level: the pid directories, self, and the system-wide files
(fs/proc/root.c, cpuinfo.c + arch/x86/kernel/cpu/proc.c, meminfo.c, stat.c,
uptime.c, loadavg.c, version.c)."""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.proc import Node

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

USER_HZ = 100                         # clock_t units of /proc/stat and /proc/PID/stat
UTS_RELEASE = "6.1.0-emu"                  # what uname(2) reports (kernel/syscalls.py)
LINUX_VERSION = (f"Linux version {UTS_RELEASE} (emu@emu) (gcc (Debian 12.2.0-14) 12.2.0, "
                 "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC\n")


def find_task(kernel: "Kernel", tid: int) -> "Task | None":
    """A live (or zombie, until reaped) thread by its id."""
    for process in kernel.processes.values():
        if process.exit_state == "dead":
            continue
        for task in process.tasks:
            if task.tid == tid:
                return task
    return None


def _file(key: str, read, mode: int = 0o444) -> Node:
    return Node("file", ("top", key), mode=mode, read=read)


def proc_root(kernel: "Kernel", task: "Task") -> Node:
    from emu_x86.kernel.proc.base import pid_directory
    from emu_x86.kernel.proc.sysctl import sys_directory

    files = {
        "cpuinfo": lambda: _file("cpuinfo", lambda: cpuinfo(kernel)),
        "meminfo": lambda: _file("meminfo", lambda: meminfo(kernel)),
        "stat": lambda: _file("stat", lambda: proc_stat_text(kernel)),
        "uptime": lambda: _file("uptime", lambda: uptime(kernel)),
        "loadavg": lambda: _file("loadavg", lambda: loadavg(kernel)),
        "version": lambda: _file("version", lambda: LINUX_VERSION.encode()),
        "filesystems": lambda: _file("filesystems", lambda: b"nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n"
                                                           b"nodev\tdevtmpfs\n\text4\n"),
        "self": lambda: Node("link", ("top", "self"), mode=0o777,
                             target=lambda: str(task.pid).encode(),
                             follow=lambda: ("proc", ("proc", str(task.pid)))),
        "thread-self": lambda: Node("link", ("top", "thread-self"), mode=0o777,
                                    target=lambda: f"{task.pid}/task/{task.tid}".encode(),
                                    follow=lambda: ("proc", ("proc", str(task.pid), "task", str(task.tid)))),
        "mounts": lambda: Node("link", ("top", "mounts"), mode=0o777, target=lambda: b"self/mounts",
                               follow=lambda: ("proc", ("proc", str(task.pid), "mounts"))),
        "sys": lambda: sys_directory(kernel, task),
    }

    def child(name: str) -> Node | None:
        if name in files:
            return files[name]()
        if name.isdigit() and not name.startswith("0"):
            target = find_task(kernel, int(name))
            if target is not None:
                return pid_directory(kernel, task, target, thread=False)
        return None

    def entries() -> list[tuple[str, int]]:
        listed = [(name, files[name]().dirent_type) for name in files]
        pids = sorted(pid for pid, process in kernel.processes.items() if process.exit_state != "dead")
        return listed + [(str(pid), 4) for pid in pids]

    return Node("dir", ("root",), mode=0o555, child=child, entries=entries)


# ---- /proc/cpuinfo -----------------------------------------------------------------------

# Feature names in Linux's order (arch/x86/include/asm/cpufeatures.h: word * 32 + bit),
# as (leaf, subleaf, register, bit, name); only leaves this machine's CPUID answers.
CPU_FLAGS = (
    [(1, 0, "edx", bit, name) for bit, name in enumerate(
        "fpu vme de pse tsc msr pae mce cx8 apic - sep mtrr pge mca cmov pat pse36 pn clflush - dts acpi mmx "
        "fxsr sse sse2 ss ht tm ia64 pbe".split()) if name != "-"]
    + [(0x80000001, 0, "edx", 11, "syscall"), (0x80000001, 0, "edx", 19, "mp"), (0x80000001, 0, "edx", 20, "nx"),
       (0x80000001, 0, "edx", 22, "mmxext"), (0x80000001, 0, "edx", 25, "fxsr_opt"),
       (0x80000001, 0, "edx", 26, "pdpe1gb"), (0x80000001, 0, "edx", 27, "rdtscp"),
       (0x80000001, 0, "edx", 29, "lm")]
    + [(1, 0, "ecx", bit, name) for bit, name in enumerate(
        "pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cid sdbg fma cx16 xtpr pdcm - pcid dca "
        "sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave - avx f16c rdrand hypervisor".split())
       if name != "-"]
    + [(0x80000001, 0, "ecx", bit, name) for bit, name in enumerate(
        "lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs xop skinit "
        "wdt - lwp fma4 tce - nodeid_msr - tbm topoext".split()) if name != "-"]
    + [(7, 0, "ebx", bit, name) for bit, name in enumerate(
        "fsgsbase tsc_adjust sgx bmi1 hle avx2 fdp_excptn_only smep bmi2 erms invpcid rtm pqm - mpx rdt_a "
        "avx512f avx512dq rdseed adx smap avx512ifma - clflushopt clwb intel_pt avx512pf avx512er avx512cd "
        "sha_ni avx512bw avx512vl".split()) if name != "-"]
    + [(0xD, 1, "eax", 0, "xsaveopt"), (0xD, 1, "eax", 1, "xsavec"), (0xD, 1, "eax", 2, "xgetbv1"),
       (0xD, 1, "eax", 3, "xsaves"), (0xD, 1, "eax", 4, "xfd")]
    + [(0x80000008, 0, "ebx", 3, "invlpgb")]
    + [(7, 0, "ecx", 22, "rdpid")]
    + [(7, 0, "edx", 14, "serialize"), (7, 0, "edx", 22, "amx_bf16"), (7, 0, "edx", 24, "amx_tile"),
       (7, 0, "edx", 25, "amx_int8")]
)
_REGISTERS = ("eax", "ebx", "ecx", "edx")


def cpu_flags(vcpu) -> list[str]:
    names = []
    for leaf, subleaf, register, bit, name in CPU_FLAGS:
        value = vcpu.cpuid.query(leaf, subleaf)[_REGISTERS.index(register)]
        if value >> bit & 1:
            names.append(name)
    return names


def cpuinfo(kernel: "Kernel") -> bytes:
    """show_cpuinfo, one block per vCPU, from the CPUID the guest sees."""
    out = []
    hz = kernel.tsc_hz
    for vcpu in kernel.machine.vcpus:
        eax = vcpu.cpuid.query(1, 0)[0]
        family = (eax >> 8) & 0xF
        model = (eax >> 4) & 0xF
        if family == 0xF:
            family += (eax >> 20) & 0xFF
        if family >= 6:
            model += ((eax >> 16) & 0xF) << 4
        vendor = vcpu.cpu_model.vendor
        mhz = f"{hz // 1_000_000}.{hz // 1000 % 1000:03d}"
        bogomips = f"{hz * 2 // 1_000_000}.{hz * 2 // 10_000 % 100:02d}"
        lines = [
            ("processor", str(vcpu.index)), ("vendor_id", vendor), ("cpu family", str(family)),
            ("model", str(model)), ("model name", vcpu.cpu_model.brand), ("stepping", str(eax & 0xF)),
            ("cpu MHz", mhz), ("physical id", "0"), ("siblings", str(len(kernel.machine.vcpus))),
            ("core id", str(vcpu.index)), ("cpu cores", str(len(kernel.machine.vcpus))),
            ("apicid", str(vcpu.index)), ("initial apicid", str(vcpu.index)), ("fpu", "yes"),
            ("fpu_exception", "yes"), ("cpuid level", str(vcpu.cpuid.query(0, 0)[0])), ("wp", "yes"),
            ("flags", " ".join(cpu_flags(vcpu))), ("bugs", ""), ("bogomips", bogomips),
            ("clflush size", "64"), ("cache_alignment", "64"),
            ("address sizes", "48 bits physical, 48 bits virtual"), ("power management", ""),
        ]
        for name, value in lines:
            if name == "power management":
                out.append("power management:")      # seq_puts, then one " name" per feature
                continue
            # show_cpuinfo's "name\t\t: value" columns: a second tab for names under 8 characters.
            out.append(f"{name}{chr(9) if len(name) < 8 else ''}\t: {value}".rstrip(" "))
        out.append("")
    return ("\n".join(out) + "\n").encode()


# ---- /proc/meminfo, /proc/stat, uptime, loadavg ---------------------------------------------

def _kb(pages: int) -> int:
    return pages * (PAGE_SIZE // 1024)


def meminfo(kernel: "Kernel") -> bytes:
    """meminfo_proc_show: 'Name:' padded to 16 columns, the value in kB right-aligned in 8."""
    frames = kernel.frames
    total = frames.total_frames
    free = total - frames.allocated_frames
    commit_limit = frames.commit_limit_pages
    rows = [
        ("MemTotal", _kb(total)), ("MemFree", _kb(free)), ("MemAvailable", _kb(free)), ("Buffers", 0),
        ("Cached", 0), ("SwapCached", 0), ("Active", 0), ("Inactive", 0), ("Active(anon)", 0),
        ("Inactive(anon)", 0), ("Active(file)", 0), ("Inactive(file)", 0), ("Unevictable", 0), ("Mlocked", 0),
        ("SwapTotal", 0), ("SwapFree", 0), ("Dirty", 0), ("Writeback", 0),
        ("AnonPages", _kb(frames.allocated_frames)), ("Mapped", 0), ("Shmem", 0), ("KReclaimable", 0),
        ("Slab", 0), ("SReclaimable", 0), ("SUnreclaim", 0), ("KernelStack", 0), ("PageTables", 0),
        ("SecPageTables", 0), ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
        ("CommitLimit", _kb(commit_limit)), ("Committed_AS", _kb(frames.committed_pages)),
        ("VmallocTotal", 34359738367), ("VmallocUsed", 0), ("VmallocChunk", 0), ("Percpu", 0),
        ("HardwareCorrupted", 0), ("AnonHugePages", 0), ("ShmemHugePages", 0), ("ShmemPmdMapped", 0),
        ("FileHugePages", 0), ("FilePmdMapped", 0), ("HugePages_Total", None), ("HugePages_Free", None),
        ("HugePages_Rsvd", None), ("HugePages_Surp", None), ("Hugepagesize", 2048), ("Hugetlb", 0),
        ("DirectMap4k", _kb(total)),
    ]
    out = []
    for name, value in rows:
        label = f"{name}:".ljust(16)
        if value is None:                      # hugetlb_report_meminfo: counts, not kB
            out.append(f"{name}:".ljust(16) + f"{0:8d}")
        else:
            out.append(label + f"{value:8d} kB")
    return ("\n".join(out) + "\n").encode()


def _ticks(kernel: "Kernel", cycles: int) -> int:
    return cycles * USER_HZ // kernel.tsc_hz


def proc_stat_text(kernel: "Kernel") -> bytes:
    """show_stat: per-CPU time in USER_HZ ticks. Each vCPU's clock is its user time
    (the kernel's own work is charged to the same clock), idle is 0."""
    per_cpu = [(_ticks(kernel, vcpu.cycles), 0, 0, 0) for vcpu in kernel.machine.vcpus]
    def line(name, user, system, idle):
        return f"{name} {user} 0 {system} {idle} 0 0 0 0 0 0"
    total_user = sum(row[0] for row in per_cpu)
    out = [line("cpu ", total_user, 0, 0)]
    out += [line(f"cpu{index}", row[0], 0, 0) for index, row in enumerate(per_cpu)]
    out += ["intr 0", f"ctxt {kernel.counters.get('context_switches', 0)}", "btime 1767225600",
            f"processes {len(kernel.processes)}",
            f"procs_running {sum(1 for task in kernel.current if task is not None)}", "procs_blocked 0",
            "softirq 0 0 0 0 0 0 0 0 0 0 0"]
    return ("\n".join(out) + "\n").encode()


def uptime(kernel: "Kernel") -> bytes:
    now_ns = max(kernel.now_ns(vcpu) for vcpu in kernel.machine.vcpus)
    centis = now_ns // 10_000_000
    return f"{centis // 100}.{centis % 100:02d} 0.00\n".encode()


def loadavg(kernel: "Kernel") -> bytes:
    running = sum(1 for task in kernel.current if task is not None)
    threads = sum(len(process.tasks) for process in kernel.processes.values())
    last = max(kernel.processes, default=0)      # the most recently created pid
    return f"0.00 0.00 0.00 {running}/{threads} {last}\n".encode()


__all__ = ["proc_root", "cpuinfo", "meminfo", "find_task", "USER_HZ"]
