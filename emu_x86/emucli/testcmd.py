"""``emu test [PATH...]`` -- run guest test programs without writing any pytest set-up.

The same collection, build cache and checks as the pytest plugin
(emu_x86/emucli/guesttest.py), run in parallel with a progress bar, then a summary
table and, for each failure, the same report (diff + reproduce command).
Exit status: 0 when everything passed (expected failures included), 1 when a
test failed, 2 for bad input.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from emu_x86.emucli import guesttest


class TestUsageError(Exception):
    pass


@dataclass
class Result:
    path: Path
    variant_id: str
    status: str             # PASS, FAIL, XFAIL, XPASS, ERROR, SKIP
    seconds: float
    report: str = ""
    note: str = ""          # a passing exploration's finding (EXPECT-RACE: seed and replay line)

    @property
    def name(self) -> str:
        return f"{self.path}[{self.variant_id}]" if self.variant_id else str(self.path)


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                        help="guest test files or directories (default: .)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="tests run in parallel (default: number of CPUs)")
    parser.add_argument("-k", dest="keyword", default=None, metavar="TEXT",
                        help="only tests whose name contains TEXT")
    parser.add_argument("--build-dir", default=".emu-build", metavar="DIR",
                        help="cache for gcc-built guest programs (default: .emu-build)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test in the summary table")
    parser.add_argument("--schedules", type=int, default=0, metavar="N",
                        help="also run each test under seeds 1..N of --sched (a failure names the seed "
                             "and the line that replays it)")
    parser.add_argument("--sched", action="append", choices=guesttest.EXPLORING_POLICIES, metavar="POLICY",
                        help="exploring policy for --schedules: random (default) or pct; may be repeated")


def _run_one(spec: guesttest.GuestSpec, variant: guesttest.Variant, build_dir: Path, cwd: Path) -> Result:
    started = time.monotonic()
    outcome = guesttest.run_test(spec, variant, build_dir, cwd)
    seconds = time.monotonic() - started
    if outcome.skipped:
        return Result(spec.path, variant.id, "SKIP", seconds, outcome.skipped)
    if spec.xfail:
        if outcome.passed:
            return Result(spec.path, variant.id, "XPASS", seconds,
                          f"XFAIL ({spec.xfail}) but the test passed: remove the XFAIL line\n\nreproduce with:\n"
                          f"  {outcome.reproduce}")
        return Result(spec.path, variant.id, "XFAIL", seconds, spec.xfail)
    return Result(spec.path, variant.id, "PASS" if outcome.passed else "FAIL", seconds,
                  "" if outcome.passed else outcome.report(), outcome.note or "")


def collect(paths: list[str], keyword: str | None, schedules: int = 0,
            policies: list[str] | None = None) -> tuple[list, list[Result]]:
    roots = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise TestUsageError(f"no such file or directory: {text}")
        if path.is_file() and not guesttest.is_guest_test(path):
            raise TestUsageError(f"{text}: not a guest test (no EXIT/STDOUT/CHECK/STATS line in its header comment)")
        roots.append(path)
    jobs, errors = [], []
    for path in guesttest.discover(roots):
        try:
            spec = guesttest.parse_spec(path)
        except guesttest.HeaderError as error:
            errors.append(Result(path, "", "ERROR", 0.0, str(error)))
            continue
        variants = spec.variants()
        if schedules and not spec.races:
            # --schedules: every plain run again under seeds 1..N (a test
            # with EXPECT-RACE: is wrong by design and explores already).
            variants += [guesttest.Variant(v.cpus, v.cmdline, v.profile, sched=policy, explore="exact",
                                           schedules=schedules)
                         for v in variants if v.explore is None for policy in policies or ["random"]]
        for variant in variants:
            name = f"{path}[{variant.id}]"
            if keyword is None or keyword in name:
                jobs.append((spec, variant))
    return jobs, errors


def run(options) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    if options.jobs < 1:
        raise TestUsageError(f"--jobs must be at least 1, got {options.jobs}")
    if options.schedules < 0:
        raise TestUsageError(f"--schedules must be at least 0, got {options.schedules}")
    jobs, results = collect(options.paths, options.keyword, options.schedules, options.sched)
    if not jobs and not results:
        raise TestUsageError(f"no guest tests found under {' '.join(options.paths)}")
    console = Console(stderr=True)
    out = Console(highlight=False)
    cwd = Path.cwd()
    build_dir = Path(options.build_dir).resolve()
    started = time.monotonic()
    with Progress(TextColumn("[bold]emu test"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("tests", total=len(jobs), failed="")
        failed = 0
        pool = ThreadPoolExecutor(max_workers=options.jobs)
        try:
            futures = [pool.submit(_run_one, spec, variant, build_dir, cwd) for spec, variant in jobs]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                failed += result.status in ("FAIL", "XPASS", "ERROR")
                progress.update(task, advance=1, failed=f"[red]{failed} failed" if failed else "")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)   # on Ctrl-C: no new runs, the running ones end
    elapsed = time.monotonic() - started
    results.sort(key=lambda r: (str(r.path), r.variant_id))

    for result in results:
        if result.status in ("FAIL", "XPASS", "ERROR"):
            out.rule(f"[red]{result.status}[/red] {escape(result.name)}")
            out.print(result.report, markup=False, soft_wrap=True)
        elif result.status == "SKIP":
            out.print(f"[yellow]SKIP[/yellow] {escape(result.name)}: {escape(result.report)}")
        elif result.note and result.variant_id.startswith("race="):
            out.print(f"[green]FOUND[/green] {escape(result.name)}: {escape(result.note)}", soft_wrap=True)
    counts = {status: sum(r.status == status for r in results)
              for status in ("PASS", "FAIL", "XFAIL", "XPASS", "ERROR", "SKIP")}
    table = Table(title="guest tests", show_footer=False)
    if options.verbose:
        table.add_column("test")
        table.add_column("result")
        table.add_column("seconds", justify="right")
        for result in results:
            table.add_row(escape(result.name), _styled(result.status), f"{result.seconds:.2f}")
    else:
        table.add_column("directory")
        for status in counts:
            table.add_column(status.lower(), justify="right")
        table.add_column("seconds", justify="right")
        by_directory: dict[str, list[Result]] = {}
        for result in results:
            by_directory.setdefault(str(result.path.parent), []).append(result)
        for directory, group in by_directory.items():
            table.add_row(escape(directory), *[str(sum(r.status == s for r in group) or "") for s in counts],
                          f"{sum(r.seconds for r in group):.1f}")
    out.print(table)
    summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    out.print(f"{summary} in {elapsed:.1f} s")
    return 1 if counts["FAIL"] or counts["XPASS"] or counts["ERROR"] else 0


def _styled(status: str) -> str:
    color = {"PASS": "green", "FAIL": "red", "XFAIL": "yellow", "XPASS": "red", "ERROR": "red", "SKIP": "yellow"}[status]
    return f"[{color}]{status}[/{color}]"
