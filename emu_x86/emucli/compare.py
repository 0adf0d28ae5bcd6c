"""``emu compare`` -- run a matrix of workloads x kernel policies x CPU counts.

Every cell is one deterministic ``emu run --stats`` in its own process: a
local pool runs ``-j N`` cells at once, or ``--dask ADDRESS`` sends them to a
Dask distributed scheduler. The program each cell runs is shipped with the
cell (written to ``<tmp>/emu-compare/<hash>/<name>`` on whichever host runs
it), the guest environment is fixed (``LC_ALL=C``) and so are its fds (stdin
/dev/null, stdout and stderr pipes), so a cell's statistics
depend only on the program, its arguments and the options -- not on where or
in what order it ran. Results are ordered workload, policy, CPU count,
whatever the completion order.

Outputs: a table on stdout, and with ``--out PREFIX``: PREFIX.csv,
PREFIX.json (every cell with its full statistics and the command that
reproduces it) and PREFIX.png (one panel per workload and metric: x = CPUs,
one line per policy).
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from emu_x86.emucli import resources
from emu_x86.emucli.build import C_FLAGS, BuildError, build_c

# The totals, the lazy-TLB schemes' own counters, and figures per operation
# ("A/B": metric A divided by metric B; syscall_counts.NAME takes Linux's name).
DEFAULT_METRICS = ("cycles", "ipis", "tlb_flushes", "tlb_shootdowns", "invlpgb", "mm_refcount_atomics",
                   "lazy_tlb_shootdown_ipis", "hazard_pointer_scans", "tlb_flush_ipis",
                   "cycles/syscall_counts.munmap", "ipis/syscall_counts.munmap")
MAX_CPUS = 64
ASSEMBLY_SUFFIXES = (".s", ".S", ".asm")
CELL_ENVIRONMENT = {"LC_ALL": "C"}
# Runs emucli from this checkout even when the package is not installed; the
# path is popped from argv before `emu` parses it.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from emu_x86.emucli.main import main; sys.exit(main())"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])   # the folder holding emu_x86/


class CompareError(Exception):
    """Bad input to ``emu compare`` (reported as one line, exit 2)."""


# ---------------------------------------------------------------- the matrix

@dataclass
class Workload:
    label: str           # e.g. "munmap_threads 4 20"
    source: str          # the path the user gave
    name: str            # file name the cell runs under
    args: list[str]
    program: bytes       # the static ELF (or assembly source) to run


@dataclass
class Cell:
    index: int
    workload: int        # index into the workload list
    policy: str          # the --cmdline string, passed through unchanged
    cpus: int
    options: list[str] = field(default_factory=list)   # --profile/--seed/--max-cycles


def parse_cpus(text: str) -> list[int]:
    values = []
    for word in text.split(","):
        word = word.strip()
        try:
            value = int(word, 10)
        except ValueError:
            raise CompareError(f"bad --cpus {text!r}: {word!r} is not an integer "
                               f"(expected a comma-separated list such as 1,2,4)") from None
        if not 1 <= value <= MAX_CPUS:
            raise CompareError(f"bad --cpus {text!r}: {value} is outside 1-{MAX_CPUS}")
        if value not in values:
            values.append(value)
    return values


def expand_policy_matrix(entries: list[str]) -> list[str]:
    """``["a=1,2", "b=x,y"]`` -> ``["a=1 b=x", "a=1 b=y", "a=2 b=x", "a=2 b=y"]``."""
    axes = []
    for entry in entries:
        key, sep, values = entry.partition("=")
        key = key.strip()
        choices = [value.strip() for value in values.split(",")]
        if not sep or not key or " " in key or any(not choice or " " in choice for choice in choices):
            raise CompareError(f"bad --policy-matrix {entry!r}: expected KEY=VALUE1,VALUE2,...")
        axes.append([f"{key}={choice}" for choice in choices])
    return [" ".join(words) for words in itertools.product(*axes)] if axes else []


def check_policy(policy: str) -> None:
    """Keys and values against the kernel's parameter table, before any cell runs
    (checks that depend on the machine, such as INVLPGB needing a CPU that has
    it, are left to the cells: those fail with emu's own message)."""
    from emu_x86.emucli.main import parse_cmdline
    from emu_x86.kernel.cmdline import CmdlineError, parse_kernel_cmdline
    try:
        parse_kernel_cmdline(parse_cmdline(policy))
    except CmdlineError as error:
        raise CompareError(f"--policy {policy!r}: {error}") from None


def policies_from(options) -> list[str]:
    policies = list(options.policy or [])       # passed to --cmdline exactly as given
    policies += expand_policy_matrix(options.policy_matrix or [])
    if not policies:
        policies = [""]
    unique = []
    for policy in policies:
        if policy not in unique:
            check_policy(policy)
            unique.append(policy)
    return unique


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def load_workload(spec: str) -> Workload:
    try:
        words = shlex.split(spec)
    except ValueError as error:
        raise CompareError(f"bad --workload {spec!r}: {error}") from None
    if not words:
        raise CompareError("empty --workload")
    cflags: list[str] = []
    while words and words[0].startswith("CFLAGS="):
        # Build flags of this workload only: "CFLAGS='-mamx-tile -mamx-int8' amx.c 4".
        cflags += shlex.split(words.pop(0).partition("=")[2])
    if not words:
        raise CompareError(f"bad --workload {spec!r}: no program after CFLAGS=")
    source, args = words[0], words[1:]
    path = Path(source)
    if not path.is_file() and not path.is_absolute() and (resources.workloads_dir() / path.name).is_file() \
            and path.parent in (Path("."), Path("guest/workloads")):
        # A bare name (or the source tree's relative path) finds the installed workloads.
        path = resources.workloads_dir() / path.name
    if not path.is_file():
        raise CompareError(f"workload {source}: no such file (the shipped workloads are in "
                           f"{resources.workloads_dir()})")
    if not os.access(path, os.R_OK):
        raise CompareError(f"workload {source}: not readable")
    if path.suffix == ".c":
        try:
            binary = build_c(path, C_FLAGS + tuple(cflags))
        except BuildError as error:
            raise CompareError(str(error)) from None
        name = path.stem
        program = binary.read_bytes()
    elif path.suffix in ASSEMBLY_SUFFIXES or _is_elf(path):
        name = path.name
        program = path.read_bytes()
    else:
        raise CompareError(f"workload {source}: not a C source (.c), a static ELF or an assembly source")
    label = " ".join([path.stem, *args])
    return Workload(label=label, source=source, name=name, args=args, program=program)


# ---------------------------------------------------------------- one cell

def program_path(program: bytes, name: str) -> Path:
    """Where a cell's program lives on the host running it: a path that depends only
    on the content and name (it is the guest's argv[0], so it must not vary)."""
    digest = hashlib.sha256(program).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / "emu-compare" / digest
    path = directory / name
    if path.is_file() and path.stat().st_size == len(program):
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    partial.write_bytes(program)
    partial.chmod(0o755)
    partial.replace(path)
    return path


def emu_run_arguments(cell: dict, program: str, stats_path: str) -> list[str]:
    arguments = ["run", "--cpus", str(cell["cpus"]), "--stats", stats_path]
    if cell["policy"]:
        arguments += ["--cmdline", cell["policy"]]
    arguments += cell["options"]
    return [*arguments, program, *cell["args"]]


def run_cell(cell: dict, program: bytes) -> dict:
    """Run one cell as ``emu run`` in a subprocess; return its status, output and statistics.

    Module-level and dict-in/dict-out so Dask workers can run it."""
    path = program_path(program, cell["name"])
    with tempfile.TemporaryDirectory(prefix="emu-cell-") as scratch:
        stats_path = os.path.join(scratch, "stats.json")
        arguments = emu_run_arguments(cell, str(path), stats_path)
        command = [sys.executable, "-c", _BOOTSTRAP, PACKAGE_ROOT, *arguments]
        try:
            process = subprocess.run(command, check=False, stdin=subprocess.DEVNULL, capture_output=True,
                                     env=dict(CELL_ENVIRONMENT),
                                     cwd=str(path.parent), timeout=cell["timeout"])
            returncode, stdout, stderr = process.returncode, process.stdout, process.stderr
        except subprocess.TimeoutExpired as expired:
            returncode, stdout = None, expired.stdout or b""
            stderr = f"emu compare: timed out after {cell['timeout']} s\n".encode()
        stats = None
        if os.path.exists(stats_path):
            try:
                with open(stats_path) as handle:
                    stats = json.load(handle)
            except ValueError:
                stats = None
    # The guest sees what its fds are (glibc asks whether stdout is a terminal
    # or a character device): a cell has stdin /dev/null and pipes for output.
    reproduce = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in CELL_ENVIRONMENT.items()),
                            "emu", *emu_run_arguments(cell, str(path), "STATS.json")]) + " </dev/null | cat"
    return {"returncode": returncode, "stdout": stdout.decode(errors="replace"),
            "stderr": stderr.decode(errors="replace"), "stats": stats,
            "program_path": str(path), "command": reproduce}


# ---------------------------------------------------------------- metrics

def metric_value(stats: dict | None, name: str):
    """A top-level statistic; a dotted path (``syscall_counts.11``, ``syscall_counts.munmap``);
    a per-CPU counter (``tlb_misses`` / ``per_cpu.tlb_misses``) summed over the CPUs; or
    ``A/B``, a figure per operation (None when B is zero). None if absent."""
    if not stats:
        return None
    if "/" in name:
        numerator, _, denominator = name.partition("/")
        top, bottom = metric_value(stats, numerator), metric_value(stats, denominator)
        if top is None or not bottom:
            return None
        return round(top / bottom, 2)
    if name.startswith("syscall_counts.") and not name.split(".", 1)[1].isdigit():
        from emu_x86.kernel.strace.names import SYSCALL_NUMBERS
        number = SYSCALL_NUMBERS.get(name.split(".", 1)[1])
        return None if number is None else (stats.get("syscall_counts") or {}).get(str(number), 0)
    if name in stats and isinstance(stats[name], (int, float)) and not isinstance(stats[name], bool):
        return stats[name]
    key = name.removeprefix("per_cpu.")
    per_cpu = stats.get("per_cpu") or []
    if per_cpu and all(isinstance(cpu.get(key), (int, float)) for cpu in per_cpu):
        return sum(cpu[key] for cpu in per_cpu)
    value = stats
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def describe_failure(result: dict, expected_status: int) -> str | None:
    """None for a good cell, else 'exit N: first stderr line' (or the last stdout line)."""
    returncode = result["returncode"]
    if returncode == expected_status:
        return None
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if not lines:
        lines = [line for line in result["stdout"].splitlines() if line.strip()][-1:]
    detail = lines[0].strip() if lines else "no output"
    status = "timeout" if returncode is None else f"exit {returncode}"
    return f"{status}: {detail}"


# ---------------------------------------------------------------- executors

def _progress():
    from rich import progress
    from rich.console import Console
    return progress.Progress(progress.TextColumn("emu compare"), progress.BarColumn(),
                             progress.MofNCompleteColumn(), progress.TimeElapsedColumn(), progress.TextColumn("eta"),
                             progress.TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def run_local(cells: list[dict], programs: list[bytes], jobs: int, show_progress: bool) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor, as_completed
    results: list[dict | None] = [None] * len(cells)
    # Each cell is its own `emu run` process; the pool only bounds how many run at once.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_cell, cell, programs[cell["workload"]]): cell["index"] for cell in cells}
        with _maybe_progress(show_progress, len(cells)) as advance:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance()
    return results


def run_dask(cells: list[dict], programs: list[bytes], address: str, show_progress: bool) -> list[dict]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise CompareError("--dask needs the 'distributed' package (pip install 'emu-x86[dask]')") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise CompareError(f"cannot connect to the Dask scheduler at {address}: {error}") from None
    results: list[dict | None] = [None] * len(cells)
    try:
        shipped = [client.scatter(program, broadcast=False) for program in programs]
        futures = {client.submit(run_cell, cell, shipped[cell["workload"]], pure=False): cell["index"]
                   for cell in cells}
        with _maybe_progress(show_progress, len(cells)) as advance:
            for future in as_completed(list(futures)):
                results[futures[future]] = future.result()
                advance()
    finally:
        client.close()
    return results


class _maybe_progress:
    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        self.progress = _progress()
        self.progress.start()
        task = self.progress.add_task("cells", total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()
        return False


# ---------------------------------------------------------------- outputs

def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_table(rows: list[dict], metrics: list[str]) -> str:
    header = ["workload", "policy", "cpus", "exit", *metrics, "error"]
    body = [[row["workload"], row["policy_label"], str(row["cpus"]),
             "-" if row["exit_status"] is None else str(row["exit_status"]),
             *(_format(row["metrics"][name]) for name in metrics), row["error"] or ""] for row in rows]
    widths = [max(len(line[column]) for line in [header, *body]) for column in range(len(header))]
    numeric = set(range(2, 4 + len(metrics)))

    def line(cells):
        return "  ".join(cell.rjust(width) if column in numeric else cell.ljust(width)
                         for column, (cell, width) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, body)]) + "\n"


def write_csv(path: Path, rows: list[dict], metrics: list[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["workload", "source", "args", "policy", "cpus", "exit_status", "ok", *metrics, "error"])
        for row in rows:
            writer.writerow([row["workload"], row["source"], " ".join(row["args"]), row["policy"], row["cpus"],
                             "" if row["exit_status"] is None else row["exit_status"], int(row["ok"]),
                             *("" if row["metrics"][name] is None else row["metrics"][name] for name in metrics),
                             row["error"] or ""])


def write_png(path: Path, rows: list[dict], workloads: list[str], policies: list[str],
              cpus: list[int], metrics: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(len(workloads), len(metrics), squeeze=False,
                                figsize=(3.6 * len(metrics) + 0.5, 2.8 * len(workloads) + 0.6))
    lookup = {(row["workload"], row["policy"], row["cpus"]): row for row in rows}
    for w, workload in enumerate(workloads):
        for m, metric in enumerate(metrics):
            ax = axes[w][m]
            plotted = False
            for number, policy in enumerate(policies):
                ys = []
                for count in cpus:
                    row = lookup[(workload, policy, count)]
                    value = row["metrics"][metric] if row["ok"] else None
                    ys.append(math.nan if value is None else value)
                if not all(math.isnan(y) for y in ys):
                    plotted = True
                # Distinct markers and dashes, so policies with equal values stay visible.
                ax.plot(cpus, ys, marker="os^Dvx+"[number % 7], linestyle=("-", "--", ":", "-.")[number % 4],
                        markerfacecolor="none", markersize=max(3, 9 - 2 * number), alpha=0.85,
                        label=policy.strip() or "(default)")
            if not plotted:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_title(f"{workload}\n{metric}", fontsize=8)
            ax.set_xticks(cpus)
            ax.tick_params(labelsize=7)
            if w == len(workloads) - 1:
                ax.set_xlabel("CPUs", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(policies), 4), fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)


# ---------------------------------------------------------------- the command

def add_parser(commands) -> None:
    compare = commands.add_parser(
        "compare", help="run workloads x --cmdline policies x CPU counts and tabulate statistics",
        description="Run every workload under every policy set and CPU count (each cell one `emu run`), "
                    "in parallel, and compare the statistics.")
    compare.add_argument("--workload", action="append", required=True, metavar="'[CFLAGS=...] PATH [ARGS...]'",
                         help="a C source (built gcc -static -O2 -pthread plus its CFLAGS=, cached), static ELF "
                              "or assembly source, with guest arguments; repeatable. A bare file name finds "
                              "the workloads shipped with emu")
    compare.add_argument("--policy", action="append", metavar="'key=value ...'",
                         help="one --cmdline string, passed through unchanged; repeatable")
    compare.add_argument("--policy-matrix", action="append", metavar="KEY=V1,V2,...",
                         help="one axis of a cross product of policies, run after the --policy ones; "
                              "repeatable (no --policy and no matrix: the kernel defaults)")
    compare.add_argument("--cpus", default="1", metavar="N,N,...", help="CPU counts (default 1)")
    compare.add_argument("--metric", action="append", metavar="NAME",
                         help=f"statistic to tabulate; repeatable (default: {', '.join(DEFAULT_METRICS)}); "
                              "per-CPU counters such as tlb_misses are summed; A/B is a figure per "
                              "operation (cycles/syscall_counts.munmap)")
    compare.add_argument("--out", metavar="PREFIX", help="write PREFIX.csv, PREFIX.json and PREFIX.png")
    compare.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                         help="cells run at once locally (default: number of cores)")
    compare.add_argument("--dask", metavar="ADDRESS", help="run the cells on this Dask scheduler instead")
    compare.add_argument("--profile", default=None, metavar="NAME", help="cost profile passed to every cell")
    compare.add_argument("--seed", type=int, default=None, help="--seed passed to every cell")
    compare.add_argument("--max-cycles", type=int, default=None, metavar="N", help="--max-cycles for every cell")
    compare.add_argument("--expect-status", type=int, default=0, metavar="N",
                         help="exit status a good cell has (default 0)")
    compare.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                         help="wall-clock limit per cell (default none)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def compare_command(options) -> int:
    cpus = parse_cpus(options.cpus)
    policies = policies_from(options)
    metrics = list(dict.fromkeys(options.metric or DEFAULT_METRICS))
    jobs = options.jobs if options.jobs is not None else len(os.sched_getaffinity(0))
    if jobs < 1:
        raise CompareError(f"bad -j {jobs}: must be at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise CompareError(f"bad --timeout {options.timeout}: must be positive")
    if options.max_cycles is not None and options.max_cycles <= 0:
        raise CompareError(f"bad --max-cycles {options.max_cycles}: must be positive")
    passthrough = []
    if options.profile is not None:
        from emu_x86.emu.timing.profile import ProfileError, load_profile
        try:
            load_profile(options.profile)
        except ProfileError as error:
            raise CompareError(str(error)) from None
        passthrough += ["--profile", options.profile]
    if options.seed is not None:
        passthrough += ["--seed", str(options.seed)]
    if options.max_cycles is not None:
        passthrough += ["--max-cycles", str(options.max_cycles)]
    if options.out:
        out_dir = Path(options.out).parent
        if not out_dir.is_dir():
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CompareError(f"cannot create {out_dir}: {error.strerror}") from None
    workloads = [load_workload(spec) for spec in options.workload]
    labels = [workload.label for workload in workloads]
    for number, label in enumerate(labels):
        if label in labels[:number]:
            raise CompareError(f"two workloads are both named {label!r} (same file name and arguments)")

    cells = []
    for w, workload in enumerate(workloads):
        for policy in policies:
            for count in cpus:
                cells.append({"index": len(cells), "workload": w, "name": workload.name, "args": workload.args,
                              "policy": policy, "cpus": count, "options": passthrough,
                              "timeout": options.timeout})
    programs = [workload.program for workload in workloads]
    show_progress = not options.no_progress
    if options.dask:
        results = run_dask(cells, programs, options.dask, show_progress)
    else:
        results = run_local(cells, programs, jobs, show_progress)

    rows = []
    for cell, result in zip(cells, results):
        workload = workloads[cell["workload"]]
        error = describe_failure(result, options.expect_status)
        rows.append({"workload": workload.label, "source": workload.source, "args": workload.args,
                     "policy": cell["policy"], "policy_label": cell["policy"].strip() or "(default)",
                     "cpus": cell["cpus"], "exit_status": result["returncode"], "ok": error is None,
                     "error": error, "metrics": {name: metric_value(result["stats"], name) for name in metrics},
                     "command": result["command"], "program_path": result["program_path"], "stdout": result["stdout"],
                     "stderr": result["stderr"], "stats": result["stats"]})

    sys.stdout.write(render_table(rows, metrics))
    if options.out:
        prefix = Path(options.out)
        write_csv(prefix.with_name(prefix.name + ".csv"), rows, metrics)
        document = {"workloads": labels, "policies": policies, "cpus": cpus, "metrics": metrics,
                    "profile": options.profile, "seed": options.seed, "expect_status": options.expect_status,
                    "cells": [{key: row[key] for key in ("workload", "source", "args", "policy", "cpus",
                                                         "exit_status", "ok", "error", "metrics", "command",
                                                         "program_path", "stdout", "stderr", "stats")}
                              for row in rows]}
        with open(prefix.with_name(prefix.name + ".json"), "w") as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")
        try:
            write_png(prefix.with_name(prefix.name + ".png"), rows, labels, policies, cpus, metrics)
        except ImportError:     # the table, CSV and JSON are written; the PNG is the [compare] extra's
            print("emu compare: no PNG: matplotlib is not installed (pip install 'emu-x86[compare]')",
                  file=sys.stderr)
    failed = sum(not row["ok"] for row in rows)
    if failed:
        print(f"emu compare: {failed} of {len(rows)} cells failed", file=sys.stderr)
        return 1
    return 0
