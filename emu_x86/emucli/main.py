"""``emu run [options] PROGRAM [ARGS...]`` -- run a static x86-64 Linux program
(``emu profiles`` lists the cost profiles; ``emu compare`` is in compare.py).

Exit status contract (DESIGN.md): the guest's exit status; 128+signo and one
stderr line when a signal killed it; 2 and one line for bad input; 124 when
--max-cycles ended the run first, or when every guest thread sleeps with
nothing left to wake one (a deadlock: the run could never end); 125 when
--timeout (wall clock) did; 123
when the guest ran out of memory (the OOM killer, or too little to load it);
70 for an emulator bug. Every limit still writes --stats.
"""
from __future__ import annotations

import argparse
import functools
import gc
import os
import sys

from emu_x86.emu.sched_policy import PCT_DEFAULT_STEPS
from emu_x86.emucli.trace import RUN_COMMANDS, Debugging, add_debug_options, add_trace_commands
from emu_x86.emucli import dataclass_code, interrupts
from emu_x86.emucli.limits import HOST_MEMORY_HEADROOM_BYTES, HostMemoryExceeded, RunLimits, WallClockTimeout

EXIT_USAGE = 2
EXIT_CYCLE_LIMIT = 124
EXIT_WALL_TIMEOUT = 125
EXIT_OUT_OF_MEMORY = 123
MIN_MEMORY_BYTES = 4 << 20
MAX_MEMORY_BYTES = 64 << 30       # guest RAM is one host mapping: keep it a size a host can back
SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
EXIT_INTERNAL_ERROR = 70   # EX_SOFTWARE: a bug in the emulator, not in the guest


class UsageError(Exception):
    pass


@functools.cache
def _help_width() -> int:
    """The width argparse formats help to: shutil.get_terminal_size's columns
    (COLUMNS, else the terminal on stdout, else 80) less its margin of 2.
    argparse's own formatter asks shutil at each of the ~30 add_argument
    calls (a formatter checks every option's metavar), importing it (with
    bz2 and lzma) on every start-up; the width is needed only for help."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, _help_width() if width is None else width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, as for every other bad input
        raise UsageError(message)


def program_identity(program: str) -> str | None:
    """The program file by path, size and modification time: the key of its
    start set in the block price store (Machine.use_start_set), so a rebuilt
    program starts a new one. None when it cannot be stat()ed (the loader
    then reports why)."""
    try:
        status = os.stat(program)
    except (OSError, ValueError):
        return None
    return f"{os.path.realpath(program)}\0{status.st_size}\0{status.st_mtime_ns}"


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _memory_size(text: str) -> int:
    """A byte count with an optional K/M/G suffix (KiB/MiB/GiB), like Linux's mem=."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    suffix = cleaned[-1:] if cleaned[-1:] in ("K", "M", "G") else ""
    try:
        value = int(cleaned[:len(cleaned) - len(suffix)], 0) * SIZE_SUFFIXES[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64M, 1G)") from None
    if value % 4096:
        raise argparse.ArgumentTypeError(f"not a multiple of 4 KiB: {text!r}")
    if not MIN_MEMORY_BYTES <= value <= MAX_MEMORY_BYTES:
        raise argparse.ArgumentTypeError(f"must be between 4M and 64G: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


# The subcommands whose parsers need their own (heavier) modules, never built
# for a run command (build_parser), so `emu run` does not import emu
# compare's or emu test's machinery.
HELP_OF_LAZY_COMMANDS = {"test": "run guest test programs (expectations in their headers)",
                         "compare": "run workloads x --cmdline policies x CPU counts and tabulate statistics"}
SERVER_HELP = "keep a process with the emulator loaded that `emu run` forks from (start, stop, status)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `emu` parser. When ``command`` (the first argument) is a run command
    only its own parser is built (with run's, its parent): no other is
    consulted then, and each costs argparse a gettext lookup per message and a
    help formatter per option (with `emu compare`'s and `emu test`'s imports,
    a tenth of a glibc hello's start-up once)."""
    parser = _Parser(prog="emu", description="Cycle-approximate x86-64 emulator with a toy Linux kernel.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = _add_run_parser(commands)
    if command in RUN_COMMANDS:
        if command != "run":
            add_trace_commands(commands, run, only=command)
        return parser
    commands.add_parser("profiles", help="list the cost profiles")
    server = commands.add_parser("server", help=SERVER_HELP,
                                 description="emu server start: a resident process with the emulator loaded; "
                                             "`emu run` then forks its runs from it (emu_x86/emucli/runserver.py). "
                                             "EMU_SERVER=off makes `emu run` ignore it.")
    server.add_argument("action", choices=("start", "stop", "status"))
    server.add_argument("--idle-timeout", type=_seconds, default=1800.0, metavar="SECONDS",
                        help="stop after this long without a run (default 1800)")
    server.add_argument("--foreground", action="store_true", help="serve in this process (start)")
    server.add_argument("--json", action="store_true", help="status as JSON")
    from emu_x86.emucli import testcmd
    testcmd.add_arguments(commands.add_parser("test", help=HELP_OF_LAZY_COMMANDS["test"]))
    from emu_x86.emucli.compare import add_parser as add_compare_parser
    add_compare_parser(commands)
    add_trace_commands(commands, run)     # emu trace, emu strace: emu run with --trace - / --strace
    return parser


def _add_run_parser(commands) -> argparse.ArgumentParser:
    """``emu run`` and its options (the parent of ``emu trace``/``emu strace``)."""
    run = commands.add_parser("run", help="run a static x86-64 ELF or an assembly source")
    run.add_argument("--cpus", type=_positive_int, default=1, help="number of vCPUs (1-64)")
    run.add_argument("--stats", metavar="FILE",
                     help="write statistics JSON to FILE when the run ends ('-': stderr, after the guest's "
                          "stderr and emu's messages; /dev/fd/3 keeps it on a stream of its own)")
    run.add_argument("--max-cycles", type=_positive_int, metavar="N", help="stop after N cycles (exit 124)")
    run.add_argument("--seed", type=_int, default=0, help="seed for AT_RANDOM and getrandom (default 0)")
    run.add_argument("--sched", choices=("default", "random", "pct"), default="default",
                     help="schedule exploration policy, determined by --seed (emu_x86/emu/sched_policy.py)")
    run.add_argument("--sched-depth", type=_positive_int, default=3, metavar="D",
                     help="--sched pct: bug depth D (D-1 priority change points; default 3)")
    run.add_argument("--sched-steps", type=_positive_int, default=PCT_DEFAULT_STEPS, metavar="K",
                     help="--sched pct: change points fall in the first K steps, instructions run while "
                          f"several tasks are runnable (default {PCT_DEFAULT_STEPS:,}; `emu test` measures it)")
    run.add_argument("--sched-seed", type=_int, default=None, metavar="N",
                     help="seed of the --sched policy alone (default: --seed, which also seeds AT_RANDOM "
                          "and getrandom)")
    run.add_argument("--cmdline", default="", metavar="'key=value ...'", help="kernel policy parameters")
    run.add_argument("--profile", default=None, metavar="NAME",
                     help="cost profile (see `emu profiles`; default spr)")
    run.add_argument("--cache-model", action="store_true",
                     help="charge every data access through the profile's L1/L2/L3/DRAM model "
                          "(slower; needs a profile with a [memory] section, e.g. zen3)")
    run.add_argument("--memory", type=_positive_int, metavar="MIB", default=1024,
                     help="guest physical memory in MiB (default 1024)")
    run.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                     help="guest physical memory (e.g. 64M) with strict overcommit: mmap/brk fail with "
                          "ENOMEM; a fault with no free frame is an OOM kill (exit 123)")
    run.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="wall-clock limit for the run (exit 125)")
    run.add_argument("--max-host-memory", type=_memory_size, metavar="SIZE",
                     help="ceiling on the emulator's own resident memory, loading and assembling included "
                          "(exit 123; default: guest memory + 512M)")
    files = run.add_mutually_exclusive_group()
    files.add_argument("--fs", type=_directory, metavar="DIR", help="map DIR read-only as the guest's root")
    files.add_argument("--fs-rw", type=_directory, metavar="DIR", help="map DIR read-write as the guest's root")
    run.add_argument("--uid", type=_id_number, default=1000, metavar="UID",
                     help="the guest's user id (default 1000); files keep their host owners")
    run.add_argument("--gid", type=_id_number, default=1000, metavar="GID", help="the guest's group id (default 1000)")
    add_debug_options(run)   # --trace/--timeline/--gdb and the trace filters (emucli/trace.py)
    run.add_argument("program", help="static ELF executable, or .s/.S/.asm source")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the guest")
    return run


def _id_number(text: str) -> int:
    """A uid/gid: 0 .. 2**32-2 ((uid_t)-1 means "unchanged" to the set*id calls)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"out of range (0 to 4294967294): {value}")
    return value


def parse_cmdline(text: str) -> dict[str, str]:
    params = {}
    for word in text.split():
        key, _, value = word.partition("=")
        params[key] = value
    return params


def guest_environment() -> list[str]:
    return [f"{key}={value}" for key, value in os.environ.items()]


def run_command(options) -> int:
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.sched_policy import make_policy
    from emu_x86.emu.timing.profile import DEFAULT_PROFILE, ProfileError, load_profile
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    from emu_x86.kernel.errno import SyscallError
    from emu_x86.kernel.loader.elf import ImageTooLarge
    from emu_x86.kernel.loader.image import LoadError
    from emu_x86.kernel.mm.frames import OutOfMemory

    # Every output is checked before the guest runs: a --stats path that cannot be
    # written is a usage error now, not an internal error after the whole run.
    check_stats_output(options.stats)
    argv = [options.program, *options.args]
    cmdline = parse_cmdline(options.cmdline)
    memory_bytes = options.memory << 20
    if options.max_memory is not None:
        memory_bytes = options.max_memory
        cmdline.setdefault("sysctl.vm.overcommit_memory", "2")   # OVERCOMMIT_NEVER: malloc sees ENOMEM
    try:
        profile = load_profile(options.profile or DEFAULT_PROFILE)
        sched_seed = options.seed if options.sched_seed is None else options.sched_seed
        policy = make_policy(options.sched, sched_seed, options.sched_depth, options.sched_steps)
        machine = Machine(cpus=options.cpus, memory_bytes=memory_bytes, max_cycles=options.max_cycles,
                          profile=profile, cache_model=options.cache_model, sched_policy=policy)
    except (ValueError, ProfileError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot reserve {memory_bytes >> 20} MiB of guest memory: {error.strerror}") from None
    config = KernelConfig(argv=argv, envp=guest_environment(), seed=options.seed, cmdline=cmdline,
                          fs_root=options.fs or options.fs_rw, fs_writable=options.fs_rw is not None,
                          uid=options.uid, gid=options.gid)
    try:
        kernel = Kernel(machine, config)
    except ValueError as error:
        raise UsageError(f"--cmdline: {error}") from None
    except OSError as error:           # --fs DIR exists but cannot be opened
        raise UsageError(f"{error.filename}: {error.strerror}") from None
    # --timeout is armed before the program is read or assembled, so no input,
    # however built, outlives it (DESIGN.md: every limit before the load).
    timed_out = False
    debugging = None
    host_memory_bytes = options.max_host_memory or memory_bytes + HOST_MEMORY_HEADROOM_BYTES
    with RunLimits(options.timeout, host_memory_bytes, machine=machine) as limit:
        try:
            try:
                start_set_key = program_identity(options.program)
                if start_set_key is not None:
                    machine.use_start_set(start_set_key)
                kernel.start(options.program)
            except (OutOfMemory, SyscallError, ImageTooLarge):
                print(f"emu: {options.program}: guest memory ({memory_bytes >> 20} MiB) is too small to load it",
                      file=sys.stderr)
                return EXIT_OUT_OF_MEMORY
            except LoadError as error:
                print(f"emu: {error}", file=sys.stderr)
                return EXIT_USAGE
            try:
                debugging = Debugging(options, machine, kernel, options.program)
            except (ValueError, OSError) as error:
                raise UsageError(str(error)) from None
            # What imports and boot allocated lives for the whole run: out of
            # the collector's way (its full passes walked it all, ~5% of a
            # many-vCPU run's CPU in perf), so collections see only new objects.
            gc.freeze()
            gc.enable()                 # off since launch.py, for the imports
            dataclass_code.save()       # what the imports compiled (a no-op when every text was kept)
            debugging.run()
        except WallClockTimeout:
            timed_out = True
        except (HostMemoryExceeded, MemoryError):
            limit.memory_exceeded = True
        finally:
            if debugging is not None:
                debugging.finish()
            sys.stdout.flush()
            dataclass_code.save()       # and what the run's first calls imported
    timed_out = timed_out or limit.expired
    if kernel.fatal_message and not timed_out and not limit.memory_exceeded:
        print(kernel.fatal_message, file=sys.stderr)
    if options.stats:
        write_stats(options.stats, machine, kernel)
    if timed_out:
        print(f"emu: wall-clock timeout of {options.timeout:g} s reached", file=sys.stderr)
        return EXIT_WALL_TIMEOUT
    if limit.memory_exceeded:
        print(f"emu: host memory ceiling of {host_memory_bytes >> 20} MiB reached (--max-host-memory)",
              file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    if kernel.out_of_memory:
        return EXIT_OUT_OF_MEMORY
    if machine.cycle_limit_reached and kernel.init_process.exit_status is None:
        print(f"emu: cycle limit {options.max_cycles} reached", file=sys.stderr)
        return EXIT_CYCLE_LIMIT
    if kernel.deadlocked:
        # On Linux the program would sleep forever; no cycle limit could be
        # reached either, so the run ends as if one had been.
        print(f"emu: deadlock: every guest thread is asleep and nothing can wake one "
              f"(at cycle {machine.elapsed_cycles})", file=sys.stderr)
        return EXIT_CYCLE_LIMIT
    return kernel.exit_status()


def list_profiles() -> int:
    from emu_x86.emu.timing.profile import DEFAULT_PROFILE, available_profiles, load_profile
    for name in available_profiles():
        profile = load_profile(name)
        marker = " (default)" if name == DEFAULT_PROFILE else ""
        print(f"{name:8} {profile.description}{marker}")
    return 0


def collect_stats(machine, kernel) -> dict:
    counters = kernel.counters
    stats = {
        "cycles": machine.elapsed_cycles,
        "instructions": sum(vcpu.instructions for vcpu in machine.vcpus),
        "profile": machine.profile.name,
        "per_cpu": [{"cpu": vcpu.index, "cycles": vcpu.cycles, "instructions": vcpu.instructions,
                     "ipis_sent": vcpu.event_counts.get("ipi_send", 0),
                     "ipis_received": vcpu.event_counts.get("ipi_receive", 0),
                     **vcpu.tlb_statistics(), **vcpu.cache_statistics(),
                     "events": dict(sorted(vcpu.event_counts.items()))}
                    for vcpu in machine.vcpus],
    }
    for name in ("context_switches", "ipis", "tlb_shootdowns", "tlb_flushes", "nm_faults",
                 "xstate_allocs", "xrstors_skipped", "vfree_ipis", "rseq_aborts", "signals",
                 "syscalls", "page_faults", "spurious_faults", "xsaves", "xrstors", "xsaves_components_skipped", "membarriers",
                 "signals_delivered", "cpu_opv_calls", "cpu_opv_pages_pinned", "cpu_opv_cycles",
                 "cpu_opv_migrations", "oom_kills"):
        stats[name] = counters.get(name, 0)
    # The TLB policy's counters (emu_x86/kernel/mm/tlb.py).
    for name in ("tlb_flush_ipis", "tlb_flushes_skipped", "tlb_single_page_flushes", "tlb_flush_cpumask_trims",
                 "asid_allocations", "mm_refcount_atomics", "lazy_tlb_switches_to_init_mm",
                 "lazy_tlb_shootdown_ipis", "hazard_pointer_scans", "hazard_pointer_hits", "global_asids",
                 "global_asid_transitions",
                 "invlpgb_flushes", "percpu_pgd_copies", "percpu_pgd_faults", "mm_freed"):
        stats[name] = counters.get(name, 0)
    stats["invlpgb"] = sum(vcpu.invlpgb_count for vcpu in machine.vcpus)
    stats["tlbsync"] = sum(vcpu.tlbsync_count for vcpu in machine.vcpus)
    stats.update(kernel.xstate_alloc.stats())
    stats["xsave_unmodified_skipped"] = sum(vcpu.xstate.unmodified_components_skipped for vcpu in machine.vcpus)
    stats["migrations"] = kernel.scheduler.migrations
    stats["preemptions"] = kernel.scheduler.preemptions
    stats["load_balance_migrations"] = kernel.scheduler.load_balance_migrations
    stats["idle_pulls"] = kernel.scheduler.idle_pulls
    stats["threads_created"] = counters.get("threads_created", 0)
    for name in ("forks", "process_exits", "mm_teardowns", "cow_faults", "cow_copies"):
        stats[name] = counters.get(name, 0)
    stats["frames_in_use"] = kernel.frames.allocated_frames
    stats["peak_frames_in_use"] = kernel.frames.peak_allocated_frames
    stats["syscall_counts"] = {str(number): count for number, count in sorted(kernel.syscall_counts.items())}
    stats["exit_status"] = kernel.exit_status()
    if machine.sched_policy is not None:
        # Only under --sched random|pct, so the default run's stats stay as they were.
        stats["sched"] = machine.sched_policy.stats()
    return stats


def check_stats_output(destination: str | None) -> None:
    """--stats FILE must be writable before anything runs (a usage error now, not an
    internal error after the whole run); nothing is created until the run ends."""
    if not destination or destination == "-":
        return
    path = os.path.abspath(destination)
    if os.path.isdir(path):
        raise UsageError(f"--stats {destination}: Is a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"--stats {destination}: Permission denied")
        return
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UsageError(f"--stats {destination}: No such file or directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--stats {destination}: Permission denied")


def write_stats(destination: str, machine, kernel) -> None:
    import json         # only with --stats: not on every run's start-up path
    text = json.dumps(collect_stats(machine, kernel), indent=2, sort_keys=False) + "\n"
    if destination == "-":
        sys.stderr.write(text)
    else:
        with open(destination, "w") as handle:
            handle.write(text)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments[0] if arguments else None)
    try:
        options = parser.parse_args(arguments)
        if options.command in RUN_COMMANDS:
            return run_command(options)
        if options.command == "profiles":
            return list_profiles()
        if options.command == "server":
            from emu_x86.emucli.runserver import server_command
            return server_command(options)
        if options.command == "test":
            from emu_x86.emucli import testcmd
            try:
                return testcmd.run(options)
            except testcmd.TestUsageError as error:
                raise UsageError(str(error)) from None
        if options.command == "compare":
            from emu_x86.emucli.compare import CompareError, compare_command
            try:
                return compare_command(options)
            except CompareError as error:
                print(f"emu compare: {error}", file=sys.stderr)
                return EXIT_USAGE
    except UsageError as error:
        print(f"emu: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("emu: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`emu trace ... | head -1`): end quietly, as a
        # command killed by SIGPIPE would, without a second error on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except Exception as error:  # an emulator bug: one line, the traceback on request
        if interrupts.caused_by_interrupt(error):    # Ctrl-C, wrapped by C code it interrupted
            print("emu: interrupted", file=sys.stderr)
            return 130
        if os.environ.get("EMU_DEBUG"):
            raise
        print(f"emu: internal error: {type(error).__name__}: {error} (set EMU_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
