"""/proc/sys (fs/proc/proc_sysctl.c): the knobs guests read, each from the value
the kernel uses. Files are root's (0644), so the unprivileged guest may read
them and gets -EACCES opening one for writing, as on Linux."""
from __future__ import annotations

from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.proc import Node

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

PID_MAX_LIMIT = 4 * 1024 * 1024       # pid_max on 64-bit with more than 32 CPUs' default; Debian's value
DEFAULT_MAX_MAP_COUNT = 65530


def sysctl_table(kernel: "Kernel") -> dict[str, dict[str, Callable[[], object]]]:
    from emu_x86.kernel.file import NR_OPEN
    from emu_x86.kernel.mqueue import DFLT_MSGMAX, DFLT_MSGSIZEMAX, MSG_MAX, MSGSIZE_MAX
    from emu_x86.kernel.mm.mm import MMAP_MIN_ADDR
    from emu_x86.kernel.proc.generic import UTS_RELEASE
    frames = kernel.frames
    return {
        "vm": {
            "mmap_min_addr": lambda: MMAP_MIN_ADDR,
            "overcommit_memory": lambda: frames.overcommit_policy,
            "overcommit_ratio": lambda: frames.overcommit_ratio,
            "overcommit_kbytes": lambda: 0,
            "max_map_count": lambda: DEFAULT_MAX_MAP_COUNT,
        },
        "kernel": {
            "pid_max": lambda: PID_MAX_LIMIT,
            "threads-max": lambda: 126734,
            "ostype": lambda: "Linux",
            "osrelease": lambda: UTS_RELEASE,
            "hostname": lambda: "emu",
            "domainname": lambda: "(none)",
            # No address-space randomization here (mm/mm.py places everything at fixed addresses).
            "randomize_va_space": lambda: 0,
            "ngroups_max": lambda: 65536,
            "cap_last_cap": lambda: 40,
            "perf_event_paranoid": lambda: 2,
            "yama": None,
        },
        "fs/mqueue": {
            "msg_max": lambda: MSG_MAX,
            "msgsize_max": lambda: MSGSIZE_MAX,
            "msg_default": lambda: DFLT_MSGMAX,
            "msgsize_default": lambda: DFLT_MSGSIZEMAX,
            "queues_max": lambda: 256,
        },
        "fs": {
            "nr_open": lambda: NR_OPEN,
            "pipe-max-size": lambda: 1048576,
            "file-max": lambda: 9223372036854775807,
        },
    }


def sys_directory(kernel: "Kernel", task: "Task") -> Node:
    table = sysctl_table(kernel)

    def subdirectory(prefix: str) -> Node:
        """A directory of knobs and of deeper directories (``fs`` holds ``mqueue``)."""
        knobs = {key: value for key, value in table.get(prefix, {}).items() if value is not None}
        below = sorted({name[len(prefix) + 1:].split("/")[0] for name in table if name.startswith(prefix + "/")})

        def child(name: str) -> Node | None:
            if name in below:
                return subdirectory(f"{prefix}/{name}")
            value = knobs.get(name)
            if value is None:
                return None
            return Node("file", ("sys", prefix, name), mode=0o644, read=lambda: f"{value()}\n".encode())

        return Node("dir", ("sys", prefix), mode=0o555, child=child,
                    entries=lambda: sorted([(name, 4) for name in below] + [(knob, 8) for knob in knobs]))

    tops = sorted({name.split("/")[0] for name in table})

    def child(name: str) -> Node | None:
        return subdirectory(name) if name in tops else None

    return Node("dir", ("sys",), mode=0o555, child=child, entries=lambda: [(name, 4) for name in tops])


__all__ = ["sys_directory", "sysctl_table"]
