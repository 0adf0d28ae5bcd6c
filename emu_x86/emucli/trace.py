"""The step-debugging options of ``emu run`` and the ``emu trace``/``emu strace`` commands.

``emu strace [run options] PROGRAM [ARGS]`` is ``emu run --strace``;
``emu trace [filters] [run options] PROGRAM [ARGS]`` is ``emu run --trace -``:
the trace goes to stdout, through the same buffer as the guest's output, so
the two stay in order. Filters: ``--cpu N`` (repeatable), ``--from``/``--to``
(a ``0x`` hex number is an address window on RIP, a decimal one a cycle
window), ``--events-only``, ``--format json|text``.
"""
from __future__ import annotations

import argparse
import sys


def add_debug_options(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group("step-debugging")
    group.add_argument("--trace", metavar="FILE", help="write a JSON-lines trace of instructions and events ('-': stdout)")
    group.add_argument("--timeline", metavar="FILE", help="write a Chrome/Perfetto trace-event JSON timeline")
    group.add_argument("--gdb", metavar="PORT", type=_port, help="wait for gdb on 127.0.0.1:PORT (remote serial protocol)")
    group.add_argument("--cpu", dest="trace_cpus", action="append", type=_cpu_number, metavar="N",
                       help="trace only CPU N (repeatable)")
    group.add_argument("--from", dest="trace_from", type=_address_or_cycle, metavar="ADDR|CYCLE",
                       help="start tracing at this address (0x...) or cycle (decimal)")
    group.add_argument("--to", dest="trace_to", type=_address_or_cycle, metavar="ADDR|CYCLE",
                       help="stop tracing after this address (0x...) or at this cycle (decimal)")
    group.add_argument("--events-only", action="store_true", help="trace events only, no instructions")
    group.add_argument("--format", dest="trace_format", choices=("json", "text"), default="json",
                       help="trace format (text is coloured on a terminal)")
    group.add_argument("--strace", action="store_true",
                       help="log every system call, signal and exit to stderr as `strace -f` does")
    group.add_argument("--strace-output", metavar="FILE", help="write the --strace log to FILE instead")


def add_trace_commands(commands, run: argparse.ArgumentParser, only: str | None = None) -> None:
    """``emu trace`` (= ``emu run --trace -``) and ``emu strace`` (= ``emu run --strace``):
    subcommands of their own, listed in ``emu --help``, taking every ``emu run`` option.
    ``only``: just that one (the command being run)."""
    for name, defaults, text in (
            ("trace", {"trace": "-"}, "run a program and print its instruction/event trace on stdout"),
            ("strace", {"strace": True}, "run a program and log its system calls on stderr (like strace -f)")):
        if only is not None and name != only:
            continue
        parser = commands.add_parser(name, parents=[run], add_help=False, help=text, description=text + ".")
        # Not set_defaults(trace=...): the parent's actions are shared, and that would change `emu run` too.
        parser.set_defaults(implied_options=defaults)


RUN_COMMANDS = ("run", "trace", "strace")


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return value


def _cpu_number(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a CPU number: {text!r}")
    return value


def _address_or_cycle(text: str) -> tuple[str, int]:
    try:
        if text.lower().startswith("0x"):
            return "address", int(text, 16)
        return "cycle", int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address (0x...) or a cycle: {text!r}") from None


class _BinaryStdout:
    """Text records into the guest's stdout buffer, so they interleave in order."""

    def write(self, text: str) -> None:
        sys.stdout.buffer.write(text.encode())

    def flush(self) -> None:
        sys.stdout.buffer.flush()

    def close(self) -> None:
        self.flush()


class Debugging:
    """What ``--trace``, ``--timeline`` and ``--gdb`` attach to a machine and kernel."""

    def __init__(self, options, machine, kernel, program_path: str):
        from emu_x86.emu.trace import CycleOrderedSink, JsonLinesSink, TextSink, TraceFilter, Tracer
        for key, value in (getattr(options, "implied_options", None) or {}).items():
            if not getattr(options, key, None):
                setattr(options, key, value)        # emu trace: --trace -, emu strace: --strace
        self.machine = machine
        self.kernel = kernel
        self.tracer = None
        self.timeline = None
        # Opened before the run, so a bad path is a usage error, not a lost run.
        self.timeline_file = open(options.timeline, "w") if options.timeline else None
        self.stub = None
        sinks = []
        cpus = options.trace_cpus
        filters_given = (cpus is not None or options.trace_from is not None or options.trace_to is not None
                         or options.events_only or options.trace_format != "json")
        if filters_given and not options.trace:
            raise ValueError("--cpu, --from, --to, --events-only and --format apply to a trace: "
                             "add --trace FILE or use `emu trace`")
        if cpus is not None and any(cpu >= machine.cpu_count for cpu in cpus):
            raise ValueError(f"--cpu: this machine has CPUs 0-{machine.cpu_count - 1}")
        if options.trace:
            stream = _BinaryStdout() if options.trace == "-" else open(options.trace, "w")   # OSError: usage
            close = options.trace != "-"
            if options.trace_format == "text":
                color = options.trace == "-" and sys.stdout.isatty()
                sinks.append(TextSink(stream, color=color, close_stream=close))
            else:
                sinks.append(JsonLinesSink(stream, close_stream=close))
            if machine.cpu_count > 1:     # one stream in cycle order, not one vCPU's quantum after another
                sinks[-1] = CycleOrderedSink(sinks[-1], machine)
        task_id_of = self._task_id_of
        if sinks:
            trace_filter = TraceFilter(cpus=cpus, events_only=options.events_only)
            for bound, attribute in ((options.trace_from, "from"), (options.trace_to, "to")):
                if bound is not None:
                    kind, value = bound
                    setattr(trace_filter, f"{attribute}_{kind}", value)
            self.tracer = Tracer(machine, sinks, task_id_of, trace_filter)
        if options.timeline:
            from emu_x86.emu.timeline import Timeline
            self.timeline = Timeline(machine.profile.frequency_hz, machine.cpu_count)
            if self.tracer is not None:
                self.tracer.sinks.append(self.timeline)
            else:
                self.tracer = Tracer(machine, [self.timeline], task_id_of, instructions=False)
        if self.tracer is not None:
            self.tracer.install()
        self.strace_file = None
        if getattr(options, "strace", False) or getattr(options, "strace_output", None):
            from emu_x86.kernel.strace.tracer import Strace
            stream = sys.stderr
            if options.strace_output:
                stream = self.strace_file = open(options.strace_output, "w")   # OSError: usage
            kernel.strace = Strace(kernel, stream)
            kernel.strace.started(kernel.init_process.tasks[0], options.program)
        if options.gdb is not None:
            from emu_x86.emu.gdbstub import GdbStub
            from emu_x86.emucli.gdb_threads import KernelThreads
            self.stub = GdbStub(machine, options.gdb, exit_status=kernel.exit_status,
                                load_bias=getattr(kernel.init_process, "load_bias", 0) if kernel.init_process else 0,
                                task_id_of=task_id_of, announce=lambda text: print(text, file=sys.stderr, flush=True),
                                threads=KernelThreads(machine, kernel))

    def _task_id_of(self, cpu: int):
        task = self.kernel.current[cpu]
        return task.tid if task is not None else None

    @property
    def active(self) -> bool:
        return self.tracer is not None or self.stub is not None

    def run(self) -> None:
        if self.stub is not None:
            self.stub.serve()
        else:
            self.machine.run()

    def finish(self) -> None:
        if self.strace_file is not None:
            self.strace_file.close()
        if self.tracer is not None:
            self.tracer.close()
        if self.timeline is not None:
            with self.timeline_file:
                self.timeline.save(self.timeline_file)
