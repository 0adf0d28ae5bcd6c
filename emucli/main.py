"""``emu run [options] PROGRAM [ARGS...]`` -- run a static x86-64 Linux program
(``emu profiles`` lists the cost profiles; ``emu compare`` is in compare.py).

Exit status contract (DESIGN.md): the guest's exit status; 128+signo and one
stderr line when a signal killed it; 2 and one line for bad input; 124 when
--max-cycles ended the run first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from emucli.compare import CompareError

EXIT_USAGE = 2
EXIT_CYCLE_LIMIT = 124
EXIT_INTERNAL_ERROR = 70   # EX_SOFTWARE: a bug in the emulator, not in the guest


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad input
        raise UsageError(message)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emu", description="Cycle-approximate x86-64 emulator with a toy Linux kernel.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run a static x86-64 ELF or an assembly source")
    run.add_argument("--cpus", type=_positive_int, default=1, help="number of vCPUs (1-64)")
    run.add_argument("--stats", metavar="FILE", help="write statistics JSON to FILE ('-' for stderr)")
    run.add_argument("--max-cycles", type=_positive_int, metavar="N", help="stop after N cycles (exit 124)")
    run.add_argument("--seed", type=_int, default=0, help="seed for AT_RANDOM and getrandom (default 0)")
    run.add_argument("--cmdline", default="", metavar="'key=value ...'", help="kernel policy parameters")
    run.add_argument("--profile", default=None, metavar="NAME",
                     help="cost profile (see `emu profiles`; default spr)")
    run.add_argument("--memory", type=_positive_int, metavar="MIB", default=1024,
                     help="guest physical memory in MiB (default 1024)")
    commands.add_parser("profiles", help="list the cost profiles")
    from emucli import testcmd
    testcmd.add_arguments(commands.add_parser("test", help="run guest test programs (expectations in their headers)"))
    from emucli.compare import add_parser as add_compare_parser
    add_compare_parser(commands)
    run.add_argument("program", help="static ELF executable, or .s/.S/.asm source")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the guest")
    return parser


def parse_cmdline(text: str) -> dict[str, str]:
    params = {}
    for word in text.split():
        key, _, value = word.partition("=")
        params[key] = value
    return params


def guest_environment() -> list[str]:
    return [f"{key}={value}" for key, value in os.environ.items()]


def run_command(options) -> int:
    from emu.machine import Machine
    from emu.timing.profile import DEFAULT_PROFILE, ProfileError, load_profile
    from kernel.bootparams import BootParameterError
    from kernel.kernel import Kernel, KernelConfig
    from kernel.loader.image import LoadError

    argv = [options.program, *options.args]
    try:
        profile = load_profile(options.profile or DEFAULT_PROFILE)
        machine = Machine(cpus=options.cpus, memory_bytes=options.memory << 20, max_cycles=options.max_cycles,
                          profile=profile)
    except (ValueError, ProfileError) as error:
        raise UsageError(str(error)) from None
    config = KernelConfig(argv=argv, envp=guest_environment(), seed=options.seed,
                          cmdline=parse_cmdline(options.cmdline))
    try:
        kernel = Kernel(machine, config)
    except ValueError as error:          # a bad --cmdline (CmdlineError or a policy's own check)
        raise UsageError(f"--cmdline: {error}") from None
    try:
        kernel.start(options.program)
    except LoadError as error:
        print(f"emu: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        machine.run()
    finally:
        sys.stdout.flush()
    if kernel.fatal_message:
        print(kernel.fatal_message, file=sys.stderr)
    if options.stats:
        write_stats(options.stats, machine, kernel)
    if machine.cycle_limit_reached and kernel.init_process.exit_status is None:
        print(f"emu: cycle limit {options.max_cycles} reached", file=sys.stderr)
        return EXIT_CYCLE_LIMIT
    return kernel.exit_status()


def list_profiles() -> int:
    from emu.timing.profile import DEFAULT_PROFILE, available_profiles, load_profile
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
                     **vcpu.tlb_statistics(),
                     "events": dict(sorted(vcpu.event_counts.items()))}
                    for vcpu in machine.vcpus],
    }
    for name in ("context_switches", "ipis", "tlb_shootdowns", "tlb_flushes", "nm_faults",
                 "xstate_allocs", "xrstors_skipped", "vfree_ipis", "rseq_aborts", "signals",
                 "syscalls", "page_faults", "spurious_faults", "xsaves", "xrstors", "xsaves_components_skipped", "membarriers",
                 "signals_delivered", "cpu_opv_calls", "cpu_opv_pages_pinned", "cpu_opv_cycles",
                 "cpu_opv_migrations"):
        stats[name] = counters.get(name, 0)
    # The TLB policy's counters (kernel/mm/tlb.py).
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
    stats["syscall_counts"] = {str(number): count for number, count in sorted(kernel.syscall_counts.items())}
    stats["exit_status"] = kernel.exit_status()
    return stats


def write_stats(destination: str, machine, kernel) -> None:
    text = json.dumps(collect_stats(machine, kernel), indent=2, sort_keys=False) + "\n"
    if destination == "-":
        sys.stderr.write(text)
    else:
        with open(destination, "w") as handle:
            handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
        if options.command == "run":
            return run_command(options)
        if options.command == "profiles":
            return list_profiles()
        if options.command == "test":
            from emucli import testcmd
            try:
                return testcmd.run(options)
            except testcmd.TestUsageError as error:
                raise UsageError(str(error)) from None
        if options.command == "compare":
            from emucli.compare import compare_command
            return compare_command(options)
    except UsageError as error:
        print(f"emu: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CompareError as error:
        print(f"emu compare: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("emu: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an emulator bug: one line, the traceback on request
        if os.environ.get("EMU_DEBUG"):
            raise
        print(f"emu: internal error: {type(error).__name__}: {error} (set EMU_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
