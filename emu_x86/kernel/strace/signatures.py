"""How the syscall log prints each call: one row per system call, its arguments'
decoders in order and how its result reads (strace's per-call printers, as a table).

An argument is ``In(fn)`` (read when the call is entered: paths, buffers being
written, structs passed in) or ``Out(fn)`` (read when it returns: buffers filled,
structs returned; on failure the pointer is printed instead, as strace does).
``fn(call, value)`` gets the pending call (mm, raw args, result) and this
argument's raw register value. A call without a row prints its raw arguments in
hex (as strace does for calls it cannot decode), under its Linux name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emu_x86.kernel.strace import decode as d


@dataclass(frozen=True)
class In:
    fn: Callable


@dataclass(frozen=True)
class Out:
    fn: Callable


@dataclass(frozen=True)
class After:
    """Decoded when the call returns, whatever the result (rt_sigreturn's restored mask)."""
    fn: Callable


# ---- argument decoders ------------------------------------------------------------------

def INT(call, v):
    return str(d.signed32(v))


def LONG(call, v):
    return str(d.signed64(v))


def ULONG(call, v):
    return str(v)


def HEX(call, v):
    return f"{v:#x}" if v else "0"          # C's %#lx: no 0x before a zero


def PTR(call, v):
    return d.pointer(v)


def FD(call, v):
    return str(d.signed32(v))


def DIRFD(call, v):
    return "AT_FDCWD" if d.signed32(v) == d.AT_FDCWD else str(d.signed32(v))


def PATH(call, v):
    return d.string_arg(call.mm, v)


def MODE(call, v):
    return f"{v & 0o7777:04o}" if v else "000"


def OPEN_FLAGS(call, v):
    text = d.O_ACCMODE.get(v & 3, f"{v & 3:#x}")
    rest = d.flags(v & ~3 & 0xFFFFFFFF, d.OPEN_FLAGS, zero="")
    return text + ("|" + rest if rest else "")


def PROT(call, v):
    return d.flags(v, d.PROT, zero="PROT_NONE")


def MAP_FLAGS(call, v):
    kind = d.MAP_TYPE.get(v & 0xF, f"{v & 0xF:#x}")
    rest = d.flags(v & ~0xF, d.MAP_FLAGS, zero="")
    return kind + ("|" + rest if rest else "")


def AT_FLAGS(call, v):
    return d.flags(v, d.AT_FLAGS)


def SIGNAL(call, v):
    return d.signal_name(d.signed32(v)) if 0 < d.signed32(v) <= 64 else str(d.signed32(v))


def table(names: dict[int, str], comment: str = "") -> Callable:
    return lambda call, v: d.choice(v, names, comment)


def bits(names: tuple) -> Callable:
    return lambda call, v: d.flags(v, names)


def buffer_of_arg(index: int, force_hex: bool = False) -> Callable:
    """A buffer passed in, its length in argument ``index`` (write's buf)."""
    return lambda call, v: d.buffer_arg(call.mm, v, call.args[index], force_hex)


def buffer_of_result(force_hex: bool = False) -> Callable:
    """A buffer filled by the call, as long as its result (read's buf)."""
    return lambda call, v: d.buffer_arg(call.mm, v, call.result, force_hex)


def TIMESPEC(call, v):
    return d.timespec(call.mm, v) if v else "NULL"


def RLIMIT(call, v):
    return d.rlimit(call.mm, v) if v else "NULL"


def STAT(call, v):
    return d.stat_struct(call.mm, v)


def SIGSET(call, v):
    return d.sigset_arg(call.mm, v) if v else "NULL"


def SIGACTION(call, v):
    return d.sigaction_struct(call.mm, v) if v else "NULL"


def ARGV(call, v):
    return d.string_array(call.mm, v)


def ENVP(call, v):
    count = d.count_array(call.mm, v) if v else None
    return d.pointer(v) + (f" /* {count} vars */" if count is not None else "")


def PIPEFDS(call, v):
    return d.int_pair(call.mm, v)


def WSTATUS(call, v):
    return d.wait_status(call.mm, v) if v else "NULL"


def UTSNAME(call, v):
    return d.utsname(call.mm, v)


def iovec_of_arg(count_index: int, by_result: bool = False) -> Callable:
    return lambda call, v: d.iovec_array(call.mm, v, call.args[count_index],
                                         call.result if by_result else None)


def CLONE_FLAGS(call, v):
    exit_signal = v & 0xFF
    text = d.flags(v & ~0xFF, d.CLONE_FLAGS, zero="")
    if exit_signal:
        text = (text + "|" if text else "") + d.signal_name(exit_signal)
    return text or "0"


def ITIMERVAL(call, v):
    return d.itimerval(call.mm, v) if v else "NULL"


def remaining_time(flags_index: int | None) -> Callable:
    """nanosleep's and clock_nanosleep's rem: meaningful only when a signal
    interrupted a relative sleep (strace prints the struct then, the pointer otherwise)."""
    def decode(call, v):
        relative = flags_index is None or not call.args[flags_index] & 1      # TIMER_ABSTIME
        if v and relative and d.is_erestart(-call.result):
            return d.timespec(call.mm, v)
        return d.pointer(v)
    return decode


def CLONE_ARGS(call, v):
    """struct clone_args going in: the fields the flags make meaningful (strace's order)."""
    raw = d.read(call.mm, v, 64)
    if raw is None:
        return d.pointer(v)
    import struct
    flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = struct.unpack("<8Q", raw)
    fields = [f"flags={d.flags(flags, d.CLONE_FLAGS)}"]
    if flags & 0x1000:
        fields.append(f"pidfd={d.pointer(pidfd)}")
    if flags & (0x1000000 | 0x200000):
        fields.append(f"child_tid={d.pointer(child_tid)}")
    if flags & 0x100000:
        fields.append(f"parent_tid={d.pointer(parent_tid)}")
    fields.append(f"exit_signal={d.signal_name(exit_signal) if exit_signal else 0}")
    fields += [f"stack={d.pointer(stack)}", f"stack_size={stack_size:#x}"]
    if flags & 0x80000:
        fields.append(f"tls={d.pointer(tls)}")
    return "{" + ", ".join(fields) + "}"


def CLONE_ARGS_RESULT(call, v):
    """What clone3 wrote back: ``=> {parent_tid=[N]}`` (printed after the struct, no comma)."""
    import struct
    raw = d.read(call.mm, call.args[0], 32)
    if raw is None or not struct.unpack_from("<Q", raw, 0)[0] & 0x100000:
        return ""
    parent_tid = d.read(call.mm, struct.unpack_from("<Q", raw, 24)[0], 4)
    return "" if parent_tid is None else f"=> {{parent_tid=[{struct.unpack('<i', parent_tid)[0]}]}}"


# ---- results -----------------------------------------------------------------------------

def R_INT(call, v):
    return str(d.signed64(v))


def R_HEX(call, v):
    return f"{v:#x}"


R_NONE = None          # the call does not return (exit, exit_group): "= ?"


# ---- special printers ------------------------------------------------------------------

def futex_args(call) -> list[str]:
    """futex's arguments depend on its command (strace's futex printer)."""
    uaddr, op, val, timeout, uaddr2, val3 = call.args[:6]
    command = op & 0x7F
    name = d.FUTEX_CMDS.get(command, f"{command:#x}")
    if op & d.FUTEX_PRIVATE_FLAG:
        name += "_PRIVATE"
    if op & d.FUTEX_CLOCK_REALTIME:
        name += "|FUTEX_CLOCK_REALTIME"
    head = [d.pointer(uaddr), name, str(d.signed32(val))]
    if command in (0, 11):                   # WAIT, WAIT_REQUEUE_PI
        return head + [TIMESPEC(call, timeout)] + ([d.pointer(uaddr2)] if command == 11 else [])
    if command == 9:                         # WAIT_BITSET
        mask = "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFFFFFF == 0xFFFFFFFF else f"{val3 & 0xFFFFFFFF:#x}"
        return head + [TIMESPEC(call, timeout), mask]
    if command == 10:                        # WAKE_BITSET
        mask = "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFFFFFF == 0xFFFFFFFF else f"{val3 & 0xFFFFFFFF:#x}"
        return head + [mask]
    if command in (3, 4, 12):                # REQUEUE, CMP_REQUEUE(_PI)
        rest = [str(d.signed32(timeout)), d.pointer(uaddr2)]
        return head + rest + ([str(d.signed32(val3))] if command != 3 else [])
    if command == 5:                         # WAKE_OP
        return head + [str(d.signed32(timeout)), d.pointer(uaddr2), f"{val3 & 0xFFFFFFFF:#x}"]
    if command in (6, 8, 13):                # LOCK_PI, TRYLOCK_PI, LOCK_PI2
        return [d.pointer(uaddr), name] + ([TIMESPEC(call, timeout)] if command != 8 else [])
    if command == 7:
        return [d.pointer(uaddr), name]
    return head


def clone_args(call) -> list[str]:
    """clone(flags, stack, parent_tid, child_tid, tls) as strace's clone printer
    names it: the stack and flags, then only the pointers the flags make meaningful."""
    flags, stack, parent_tid, child_tid, tls = call.args[:5]
    words = [f"child_stack={d.pointer(stack)}", f"flags={CLONE_FLAGS(call, flags)}"]
    if flags & (0x100000 | 0x1000):                      # CLONE_PARENT_SETTID, CLONE_PIDFD
        name = "parent_tid" if flags & 0x100000 else "pidfd"
        written = d.read(call.mm, parent_tid, 4) if parent_tid else None
        value = f"[{int.from_bytes(written, 'little')}]" if written is not None else d.pointer(parent_tid)
        words.append(f"{name}={value}")
    if flags & 0x80000:                                  # CLONE_SETTLS
        words.append(f"tls={d.pointer(tls)}")
    if flags & (0x1000000 | 0x200000):                   # CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID
        words.append(f"child_tidptr={d.pointer(child_tid)}")
    return words


def clone3_args(call) -> list[str]:
    """clone3(struct, size); on success the struct is followed by what it returned."""
    written = CLONE_ARGS_RESULT(call, 0) if call.result > 0 else ""
    return [CLONE_ARGS(call, call.args[0]) + (" " + written if written else ""), str(call.args[1])]


SPECIAL: dict[str, Callable] = {"futex": futex_args, "clone": clone_args, "clone3": clone3_args}


# ---- the table ------------------------------------------------------------------------------

# name: (arguments, result). Rows follow the man-page prototypes.
SIGNATURES: dict[str, tuple[tuple, Callable | None]] = {
    "read": ((In(FD), Out(buffer_of_result()), In(ULONG)), R_INT),
    "write": ((In(FD), In(buffer_of_arg(2)), In(ULONG)), R_INT),
    "pread64": ((In(FD), Out(buffer_of_result()), In(ULONG), In(LONG)), R_INT),
    "pwrite64": ((In(FD), In(buffer_of_arg(2)), In(ULONG), In(LONG)), R_INT),
    "readv": ((In(FD), Out(iovec_of_arg(2, by_result=True)), In(INT)), R_INT),
    "writev": ((In(FD), In(iovec_of_arg(2)), In(INT)), R_INT),
    "open": ((In(PATH), In(OPEN_FLAGS), In(MODE)), R_INT),        # mode dropped without O_CREAT (SPECIAL)
    "openat": ((In(DIRFD), In(PATH), In(OPEN_FLAGS), In(MODE)), R_INT),
    "creat": ((In(PATH), In(MODE)), R_INT),
    "close": ((In(FD),), R_INT),
    "dup": ((In(FD),), R_INT),
    "dup2": ((In(FD), In(FD)), R_INT),
    "dup3": ((In(FD), In(FD), In(bits(((0o2000000, "O_CLOEXEC"),)))), R_INT),
    "pipe": ((Out(PIPEFDS),), R_INT),
    "pipe2": ((Out(PIPEFDS), In(bits(((0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK"), (0o40000, "O_DIRECT"))))),
              R_INT),
    "lseek": ((In(FD), In(LONG), In(table(d.WHENCE))), R_INT),
    "stat": ((In(PATH), Out(STAT)), R_INT),
    "lstat": ((In(PATH), Out(STAT)), R_INT),
    "fstat": ((In(FD), Out(STAT)), R_INT),
    "newfstatat": ((In(DIRFD), In(PATH), Out(STAT), In(AT_FLAGS)), R_INT),
    "access": ((In(PATH), In(lambda c, v: d.flags(v, d.ACCESS_MODES, zero="F_OK"))), R_INT),
    "faccessat": ((In(DIRFD), In(PATH), In(lambda c, v: d.flags(v, d.ACCESS_MODES, zero="F_OK"))), R_INT),
    "faccessat2": ((In(DIRFD), In(PATH), In(lambda c, v: d.flags(v, d.ACCESS_MODES, zero="F_OK")), In(AT_FLAGS)),
                   R_INT),
    "readlink": ((In(PATH), Out(buffer_of_result()), In(ULONG)), R_INT),
    "readlinkat": ((In(DIRFD), In(PATH), Out(buffer_of_result()), In(ULONG)), R_INT),
    "unlink": ((In(PATH),), R_INT),
    "unlinkat": ((In(DIRFD), In(PATH), In(AT_FLAGS)), R_INT),
    "mkdir": ((In(PATH), In(MODE)), R_INT),
    "mkdirat": ((In(DIRFD), In(PATH), In(MODE)), R_INT),
    "rmdir": ((In(PATH),), R_INT),
    "chdir": ((In(PATH),), R_INT),
    "getcwd": ((Out(lambda c, v: d.string_arg(c.mm, v)), In(ULONG)), R_INT),
    "rename": ((In(PATH), In(PATH)), R_INT),
    "fcntl": ((In(FD), In(table(d.FCNTL_CMDS)), In(HEX)), R_INT),
    "ioctl": ((In(FD), In(HEX), In(HEX)), R_INT),
    "mmap": ((In(PTR), In(ULONG), In(PROT), In(MAP_FLAGS), In(FD), In(HEX)), R_HEX),
    "mprotect": ((In(PTR), In(ULONG), In(PROT)), R_INT),
    "munmap": ((In(PTR), In(ULONG)), R_INT),
    "mremap": ((In(PTR), In(ULONG), In(ULONG), In(bits(((1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"),
                                                           (4, "MREMAP_DONTUNMAP")))), In(PTR)), R_HEX),
    "madvise": ((In(PTR), In(ULONG), In(table(d.MADVISE))), R_INT),
    "brk": ((In(PTR),), R_HEX),
    "rt_sigaction": ((In(SIGNAL), In(SIGACTION), Out(SIGACTION), In(ULONG)), R_INT),
    "rt_sigprocmask": ((In(table(d.SIGPROCMASK_HOW)), In(SIGSET), Out(SIGSET), In(ULONG)), R_INT),
    "rt_sigreturn": ((After(lambda c, v: "{mask=" + d.sigset(c.restored_mask) + "}"),), R_INT),
    "sigaltstack": ((In(PTR), Out(PTR)), R_INT),
    "kill": ((In(INT), In(SIGNAL)), R_INT),
    "tkill": ((In(INT), In(SIGNAL)), R_INT),
    "tgkill": ((In(INT), In(INT), In(SIGNAL)), R_INT),
    "getpid": ((), R_INT), "gettid": ((), R_INT), "getppid": ((), R_INT), "getuid": ((), R_INT),
    "geteuid": ((), R_INT), "getgid": ((), R_INT), "getegid": ((), R_INT), "sched_yield": ((), R_INT),
    "pause": ((), R_INT), "fork": ((), R_INT), "vfork": ((), R_INT), "setsid": ((), R_INT),
    "exit": ((In(INT),), R_NONE),
    "exit_group": ((In(INT),), R_NONE),
    "execve": ((In(PATH), In(ARGV), In(ENVP)), R_INT),
    "wait4": ((In(INT), Out(WSTATUS), In(bits(d.WAIT_OPTIONS)), In(PTR)), R_INT),
    "clone": ((In(CLONE_FLAGS), In(PTR), In(PTR), In(PTR), In(HEX)), R_INT),      # SPECIAL
    "clone3": ((), R_INT),              # SPECIAL
    "set_tid_address": ((In(PTR),), R_INT),
    "set_robust_list": ((In(PTR), In(ULONG)), R_INT),
    "rseq": ((In(PTR), In(HEX), In(INT), In(HEX)), R_INT),
    "arch_prctl": ((In(table(d.ARCH_PRCTL, "ARCH_")), In(PTR)), R_INT),
    "prlimit64": ((In(INT), In(table(d.RLIMITS, "RLIMIT_")), In(RLIMIT), Out(RLIMIT)), R_INT),
    "getrlimit": ((In(table(d.RLIMITS, "RLIMIT_")), Out(RLIMIT)), R_INT),
    "setrlimit": ((In(table(d.RLIMITS, "RLIMIT_")), In(RLIMIT)), R_INT),
    "getrandom": ((Out(buffer_of_result(force_hex=True)), In(ULONG), In(bits(d.GRND_FLAGS))), R_INT),
    "nanosleep": ((In(TIMESPEC), After(remaining_time(None))), R_INT),
    "clock_nanosleep": ((In(table(d.CLOCKS)), In(bits(d.TIMER_FLAGS)), In(TIMESPEC), After(remaining_time(1))),
                        R_INT),
    "setitimer": ((In(table(d.ITIMERS)), In(ITIMERVAL), Out(ITIMERVAL)), R_INT),
    "getitimer": ((In(table(d.ITIMERS)), Out(ITIMERVAL)), R_INT),
    "alarm": ((In(ULONG),), R_INT),
    "clock_gettime": ((In(table(d.CLOCKS)), Out(TIMESPEC)), R_INT),
    "clock_getres": ((In(table(d.CLOCKS)), Out(TIMESPEC)), R_INT),
    "uname": ((Out(UTSNAME),), R_INT),
    "sched_getaffinity": ((In(INT), In(ULONG), Out(PTR)), R_INT),
    "sched_setaffinity": ((In(INT), In(ULONG), In(PTR)), R_INT),
    "getcpu": ((Out(PTR), Out(PTR), In(PTR)), R_INT),
    "membarrier": ((In(table(d.MEMBARRIER_CMDS)), In(HEX), In(INT)), R_INT),
    "futex": ((), R_INT),              # SPECIAL
}

# How many arguments each call takes (the trace's syscall events show only those:
# a munmap's event must not show what an earlier mmap left in R10, R8, R9).
ARITY: dict[str, int] = {**{name: len(row[0]) for name, row in SIGNATURES.items()},
                         "futex": 6, "clone3": 2}
