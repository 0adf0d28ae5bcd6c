"""Value decoders for the syscall log: strace's spellings of flags, strings and structs.

Every decoder is a table or a small function over guest memory read through
``mm.copy_from_user`` (a bad pointer prints as the address, as strace does when
its own read fails). The spellings follow strace 6's default output (``-s 32``:
strings and buffers cut at 32 bytes and marked ``...``), so a log compares line
by line with ``strace -f`` of the same binary on Linux.
"""
from __future__ import annotations

import errno as host_errno
import os
import struct

STRING_LIMIT_BYTES = 32          # strace -s default
PATH_LIMIT_BYTES = 4096          # PATH_MAX: strace prints whole paths
ARRAY_LIMIT_ITEMS = 32           # strace's -s also bounds argv/env and iovec arrays
AT_FDCWD = -100


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


# ---- flag tables (uapi headers) ------------------------------------------------------

def flags(value: int, table: tuple[tuple[int, str], ...], zero: str = "0") -> str:
    """``A|B|0x40``: each known bit by name (in table order), the rest in hex."""
    if value == 0:
        return zero
    words, rest = [], value
    for bit, name in table:
        if bit and rest & bit == bit:
            words.append(name)
            rest &= ~bit
    if rest:
        words.append(f"{rest:#x}")
    return "|".join(words)


def choice(value: int, table: dict[int, str], comment: str = "") -> str:
    """One named value; an unknown one in hex with strace's ``/* X_??? */`` comment."""
    if value in table:
        return table[value]
    return f"{value:#x} /* {comment}??? */" if comment else str(value)


O_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
OPEN_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
              (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"),
              (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
              (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
              (0o20200000, "O_TMPFILE"), (0o100000, "O_LARGEFILE"))
PROT = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x01000000, "PROT_GROWSDOWN"),
        (0x02000000, "PROT_GROWSUP"))
MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
MAP_FLAGS = ((0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
             (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
             (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
             (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
             (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"))
AT_FLAGS = ((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
            (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"), (0x200, "AT_EACCESS"))
ACCESS_MODES = ((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))
CLONE_FLAGS = ((0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
               (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
               (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"),
               (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
               (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"),
               (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"),
               (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
               (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"))
SA_FLAGS = ((0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
            (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND"), (1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"),
            (4, "SA_SIGINFO"))
GRND_FLAGS = ((1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE"))
WAIT_OPTIONS = ((1, "WNOHANG"), (2, "WUNTRACED"), (8, "WCONTINUED"), (0x40000000, "__WNOTHREAD"),
                (0x80000000, "__WCLONE"), (0x40000000, "__WALL"))
SIGPROCMASK_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS",
              0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID", 0x1021: "ARCH_GET_XCOMP_SUPP",
              0x1022: "ARCH_GET_XCOMP_PERM", 0x1023: "ARCH_REQ_XCOMP_PERM",
              0x1024: "ARCH_GET_XCOMP_GUEST_PERM", 0x1025: "ARCH_REQ_XCOMP_GUEST_PERM"}
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
           5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
           10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
           14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID", 3: "CLOCK_THREAD_CPUTIME_ID",
          4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
          8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
TIMER_FLAGS = ((1, "TIMER_ABSTIME"),)
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
           8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
           13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
           17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD",
           21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ", 23: "MADV_POPULATE_WRITE"}
FUTEX_CMDS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE",
              5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI",
              9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI",
              12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
FCNTL_CMDS = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
              6: "F_SETLK", 7: "F_SETLKW", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ"}
MEMBARRIER_CMDS = {0: "MEMBARRIER_CMD_QUERY", 1: "MEMBARRIER_CMD_GLOBAL", 2: "MEMBARRIER_CMD_GLOBAL_EXPEDITED",
                   4: "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED", 8: "MEMBARRIER_CMD_PRIVATE_EXPEDITED",
                   16: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED",
                   32: "MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE",
                   64: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE",
                   128: "MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ",
                   256: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ"}

# ---- signals ---------------------------------------------------------------------------

SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
                8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
                14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
                20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
                26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}
SIGRTMIN = 32


def signal_name(signo: int) -> str:
    if signo in SIGNAL_NAMES:
        return SIGNAL_NAMES[signo]
    if signo == SIGRTMIN:
        return "SIGRTMIN"
    if SIGRTMIN < signo <= 64:
        return f"SIGRT_{signo - SIGRTMIN}"
    return str(signo)


def _set_member(signo: int) -> str:
    # Inside a set strace drops "SIG" (and spells the first real-time signal RTMIN).
    name = signal_name(signo)
    return "RTMIN" if signo == SIGRTMIN else name.removeprefix("SIG")


def sigset(mask: int) -> str:
    """``[CHLD USR1]``, or ``~[...]`` listing the absent ones when more than half are set."""
    members = [s for s in range(1, 65) if mask >> (s - 1) & 1]
    if len(members) > 32:
        absent = [s for s in range(1, 65) if not mask >> (s - 1) & 1]
        return "~[" + " ".join(_set_member(s) for s in absent) + "]"
    return "[" + " ".join(_set_member(s) for s in members) + "]"


SI_CODES_ANY = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
                -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL"}
SI_CODES = {11: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
            7: {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR", 4: "BUS_MCEERR_AR", 5: "BUS_MCEERR_AO"},
            4: {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP", 5: "ILL_PRVOPC",
                6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
            8: {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF", 5: "FPE_FLTUND",
                6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
            5: {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 3: "TRAP_BRANCH", 4: "TRAP_HWBKPT"},
            17: {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED", 5: "CLD_STOPPED",
                 6: "CLD_CONTINUED"}}
FAULT_SIGNALS = (4, 5, 7, 8, 11)


def siginfo(info) -> str:
    """``{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10}`` from a kernel SigInfo."""
    code = info.code
    if code > 0 and code != 0x80 and info.signo in SI_CODES:
        code_name = SI_CODES[info.signo].get(code, str(code))
    else:
        code_name = SI_CODES_ANY.get(code, str(code))
    fields = [f"si_signo={signal_name(info.signo)}", f"si_code={code_name}"]
    if info.signo in FAULT_SIGNALS and 0 < code < 0x80:
        fields.append("si_addr=NULL" if info.address == 0 else f"si_addr={info.address:#x}")
    elif info.signo == 17 and 0 < code < 0x80:
        status = signal_name(info.status) if code in (2, 3) else str(info.status)
        fields += [f"si_pid={info.pid}", f"si_uid={info.uid}", f"si_status={status}", "si_utime=0", "si_stime=0"]
    elif code <= 0:
        fields += [f"si_pid={info.pid}", f"si_uid={info.uid}"]
    return "{" + ", ".join(fields) + "}"


# ---- errno -----------------------------------------------------------------------------

# The kernel-internal restart codes strace names (include/linux/errno.h).
_RESTART = {512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
            513: ("ERESTARTNOINTR", "To be restarted"),
            514: ("ERESTARTNOHAND", "To be restarted if no handler"),
            516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}


def is_erestart(errno_value: int) -> bool:
    """One of the restart codes a syscall-exit stop shows (strace's is_erestart)."""
    return errno_value in _RESTART


def error_result(errno_value: int) -> str:
    """``-1 ENOENT (No such file or directory)``; the Linux x86-64 errno numbers are the host's."""
    if errno_value in _RESTART:
        name, text = _RESTART[errno_value]
        return f"? {name} ({text})"
    name = host_errno.errorcode.get(errno_value, f"E{errno_value}")
    if name == "EDEADLOCK":
        name = "EDEADLK"
    if name == "EWOULDBLOCK":
        name = "EAGAIN"
    if name == "ENOTSUP":
        name = "EOPNOTSUPP"
    return f"-1 {name} ({os.strerror(errno_value)})"


# ---- memory ----------------------------------------------------------------------------

def read(mm, address: int, size: int) -> bytes | None:
    if address == 0 or size < 0:
        return None
    try:
        return mm.copy_from_user(address, size)
    except Exception:            # EFAULT, or an address the page walk rejects: print the pointer
        return None


def read_string(mm, address: int, limit: int) -> tuple[bytes, bool] | None:
    """(bytes, truncated) of the NUL-terminated string at ``address``."""
    if address == 0:
        return None
    out = bytearray()
    while len(out) <= limit:
        chunk_size = min(64, 0x1000 - ((address + len(out)) & 0xFFF))
        chunk = read(mm, address + len(out), chunk_size)
        if chunk is None:
            return (bytes(out), False) if out else None
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
    return (bytes(out[:limit]), len(out) > limit)


_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\f"): "\\f", ord("\n"): "\\n", ord("\r"): "\\r",
            ord("\t"): "\\t", ord("\v"): "\\v"}


def quote(data: bytes, truncated: bool = False, force_hex: bool = False) -> str:
    """strace's string quoting: printable ASCII as is, C escapes, other bytes in
    the shortest octal form that the next character cannot extend."""
    parts = []
    for index, byte in enumerate(data):
        if force_hex:
            parts.append(f"\\x{byte:02x}")
        elif byte in _ESCAPES:
            parts.append(_ESCAPES[byte])
        elif 0x20 <= byte <= 0x7E:
            parts.append(chr(byte))
        else:
            following_digit = index + 1 < len(data) and 0x30 <= data[index + 1] <= 0x37
            parts.append("\\" + (f"{byte:03o}" if following_digit else f"{byte:o}"))
    return '"' + "".join(parts) + '"' + ("..." if truncated else "")


def pointer(value: int) -> str:
    return "NULL" if value == 0 else f"{value:#x}"


def string_arg(mm, address: int, limit: int = PATH_LIMIT_BYTES) -> str:
    got = read_string(mm, address, limit)
    if got is None:
        return pointer(address)
    return quote(*got)


def buffer_arg(mm, address: int, size: int, force_hex: bool = False) -> str:
    """A buffer of ``size`` bytes shown up to the -s limit."""
    shown = min(max(size, 0), STRING_LIMIT_BYTES)
    data = read(mm, address, shown) if shown else b""
    if data is None:
        return pointer(address)
    return quote(data, size > STRING_LIMIT_BYTES, force_hex)


def string_array(mm, address: int) -> str:
    """argv: ``["ls", "-l"]`` (strace cuts long arrays with ``...``)."""
    if address == 0:
        return "NULL"
    items = []
    for index in range(ARRAY_LIMIT_ITEMS + 1):
        raw = read(mm, address + 8 * index, 8)
        if raw is None:
            return pointer(address)
        item = struct.unpack("<Q", raw)[0]
        if item == 0:
            return "[" + ", ".join(items) + "]"
        if index == ARRAY_LIMIT_ITEMS:
            return "[" + ", ".join(items) + ", ...]"
        items.append(string_arg(mm, item, STRING_LIMIT_BYTES))
    return "[" + ", ".join(items) + "]"


def count_array(mm, address: int) -> int | None:
    for index in range(1 << 16):
        raw = read(mm, address + 8 * index, 8)
        if raw is None:
            return None
        if struct.unpack("<Q", raw)[0] == 0:
            return index
    return None


# ---- structs (x86-64 layouts) ----------------------------------------------------------

def timespec(mm, address: int) -> str:
    raw = read(mm, address, 16)
    if raw is None:
        return pointer(address)
    seconds, nanoseconds = struct.unpack("<qq", raw)
    return f"{{tv_sec={seconds}, tv_nsec={nanoseconds}}}"


def timeval(mm, address: int) -> str:
    raw = read(mm, address, 16)
    if raw is None:
        return pointer(address)
    seconds, microseconds = struct.unpack("<qq", raw)
    return f"{{tv_sec={seconds}, tv_usec={microseconds}}}"


def itimerval(mm, address: int) -> str:
    """struct itimerval: the reload interval, then the current value (strace's order)."""
    raw = read(mm, address, 32)
    if raw is None:
        return pointer(address)
    interval_s, interval_us, value_s, value_us = struct.unpack("<4q", raw)
    return (f"{{it_interval={{tv_sec={interval_s}, tv_usec={interval_us}}}, "
            f"it_value={{tv_sec={value_s}, tv_usec={value_us}}}}}")


ITIMERS = {0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"}


_RLIM_INFINITY = (1 << 64) - 1


def _rlim(value: int) -> str:
    if value == _RLIM_INFINITY:
        return "RLIM64_INFINITY"
    if value and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def rlimit(mm, address: int) -> str:
    raw = read(mm, address, 16)
    if raw is None:
        return pointer(address)
    current, maximum = struct.unpack("<QQ", raw)
    return f"{{rlim_cur={_rlim(current)}, rlim_max={_rlim(maximum)}}}"


S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG", 0o60000: "S_IFBLK",
          0o40000: "S_IFDIR", 0o20000: "S_IFCHR", 0o10000: "S_IFIFO"}


def stat_struct(mm, address: int) -> str:
    """struct stat (x86-64): strace's abbreviated form."""
    raw = read(mm, address, 144)
    if raw is None:
        return pointer(address)
    mode = struct.unpack_from("<I", raw, 24)[0]
    rdev = struct.unpack_from("<Q", raw, 40)[0]
    size = struct.unpack_from("<q", raw, 48)[0]
    kind = S_IFMT.get(mode & 0o170000, f"{mode & 0o170000:#o}")
    text = f"{{st_mode={kind}|{mode & 0o7777:04o}, "
    if mode & 0o170000 in (0o20000, 0o60000):
        major, minor = (rdev >> 8) & 0xFFF | (rdev >> 32) & ~0xFFF, rdev & 0xFF | (rdev >> 12) & ~0xFF
        text += f"st_rdev=makedev({major:#x}, {minor:#x}), ...}}"
    else:
        text += f"st_size={size}, ...}}"
    return text


def sigset_arg(mm, address: int, size: int = 8) -> str:
    raw = read(mm, address, 8)
    if raw is None:
        return pointer(address)
    return sigset(struct.unpack("<Q", raw)[0])


def sigaction_struct(mm, address: int) -> str:
    """struct kernel_sigaction: handler, flags, restorer, mask."""
    raw = read(mm, address, 32)
    if raw is None:
        return pointer(address)
    handler, sa_flags, restorer, mask = struct.unpack("<QQQQ", raw)
    handler_text = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, f"{handler:#x}")
    text = f"{{sa_handler={handler_text}, sa_mask={sigset(mask)}, sa_flags={flags(sa_flags, SA_FLAGS)}"
    if sa_flags & 0x04000000:
        text += f", sa_restorer={restorer:#x}"
    return text + "}"


def iovec_array(mm, address: int, count: int, lengths_limit: int | None = None) -> str:
    """``[{iov_base="hi", iov_len=2}, ...]``; ``lengths_limit`` bounds the bytes shown in total
    (readv's result)."""
    items = []
    remaining = lengths_limit
    for index in range(min(count, ARRAY_LIMIT_ITEMS)):
        raw = read(mm, address + 16 * index, 16)
        if raw is None:
            return pointer(address)
        base, length = struct.unpack("<QQ", raw)
        shown = length if remaining is None else min(length, max(remaining, 0))
        if remaining is not None:
            remaining -= shown
        items.append(f"{{iov_base={buffer_arg(mm, base, shown)}, iov_len={length}}}")
    if count > ARRAY_LIMIT_ITEMS:
        items.append("...")
    return "[" + ", ".join(items) + "]"


def int_pair(mm, address: int) -> str:
    raw = read(mm, address, 8)
    if raw is None:
        return pointer(address)
    return "[{}, {}]".format(*struct.unpack("<ii", raw))


def wait_status(mm, address: int) -> str:
    raw = read(mm, address, 4)
    if raw is None:
        return pointer(address)
    status = struct.unpack("<i", raw)[0]
    if status & 0x7F == 0:
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xFF}}}]"
    if (status & 0xFF) == 0x7F:
        return f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name((status >> 8) & 0xFF)}}}]"
    core = " && WCOREDUMP(s)" if status & 0x80 else ""
    return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(status & 0x7F)}{core}}}]"


def utsname(mm, address: int) -> str:
    raw = read(mm, address, 65 * 2)
    if raw is None:
        return pointer(address)
    sysname, nodename = (raw[i * 65:(i + 1) * 65].split(b"\0")[0] for i in range(2))
    return f"{{sysname={quote(sysname)}, nodename={quote(nodename)}, ...}}"
