"""``python -m conformance [--tests PATTERN ...] [--timeout S] [--jobs N] [--report-only]``.

Steps: fetch and unpack the sources (cached), build the selected programs,
run each natively (root, uid 1000) and under emu, merge the results into
docs/conformance.json and write docs/conformance.md.  Progress goes to
stderr; the summary line to stdout.  Exit status 0 when the run completed
(failing tests are the data, not an error), 2 when the sources or the
emulator could not be had.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from conformance import build, catalog, execute, report, sources

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", "-t", action="append", default=[], metavar="PATTERN",
                        help="only cases whose suite/name contains PATTERN (repeatable; comma-separated also "
                             "works: rseq,futex_wait)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("CONFORMANCE_TIMEOUT", "120")),
                        metavar="S", help="per-run limit under emu, seconds (default 120)")
    parser.add_argument("--native-timeout", type=float, default=300, metavar="S",
                        help="per-run limit natively, seconds (default 300)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="emu runs in parallel (default: number of CPUs)")
    parser.add_argument("--emu", default=str(REPO / ".venv" / "bin" / "emu"), metavar="PATH",
                        help="the emu command (default: the project's .venv/bin/emu)")
    parser.add_argument("--no-native", action="store_true", help="keep the stored native results, run emu only")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render docs/conformance.md from docs/conformance.json and the reasons file")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("--results", default=str(DOCS / "conformance.json"), metavar="FILE")
    parser.add_argument("--reasons", default=str(DOCS / "conformance-reasons.toml"), metavar="FILE")
    parser.add_argument("--out", default=str(DOCS / "conformance.md"), metavar="FILE")
    options = parser.parse_args(argv)
    options.tests = [p for text in options.tests for p in text.replace(",", " ").split()]
    return options


def _commit() -> str:
    """The last commit that changed the emulator or its kernel (what the emu runs measured)."""
    result = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %cs", "--", "emu_x86"],
                            check=False, capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "emu_x86"],
                           check=False, capture_output=True, text=True).stdout.strip()
    return (result.stdout.strip() or "?") + (" (with uncommitted changes)" if dirty else "")


def _host() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def write_report(options, meta: dict) -> None:
    results = report.load_results(Path(options.results))
    stored_meta = results.pop("_meta", {})
    stored_meta.update(meta)
    text = report.render(results, report.load_reasons(Path(options.reasons)), stored_meta)
    Path(options.out).write_text(text)
    if meta:
        report.save_results(Path(options.results), {"_meta": stored_meta, **results})
    passed, total, _ = report.summary(results)
    print(f"conformance: {passed} of {total} emu runs pass ({100.0 * passed / max(total, 1):.1f}%); "
          f"wrote {os.path.relpath(options.out)}")


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    if options.report_only:
        write_report(options, {})
        return 0

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    log = console.log if console.is_terminal else (lambda text: print(f"conformance: {text}", file=sys.stderr))
    try:
        with console.status("fetching the selftest sources") as status:
            tree = sources.linux_tree(log=log, status=lambda text: status.update(text))
    except sources.SourceError as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2
    selftests = sources.selftests(tree)
    available = {str(p.relative_to(selftests)) for p in selftests.rglob("*.c")}
    cases = catalog.select(catalog.all_cases(available), options.tests)
    if not cases:
        print(f"conformance: no case matches {' '.join(options.tests)}", file=sys.stderr)
        return 2
    if options.list:
        for case in cases:
            print(f"{case.name} {case.label}".rstrip())
        return 0
    if not Path(options.emu).exists():
        print(f"conformance: {options.emu} not found (run `make .venv/.installed-stamp` first)", file=sys.stderr)
        return 2

    cache = sources.cache_root()
    build_dir, log_dir = cache / "build", cache / "logs"
    overlay = sources.uapi_overlay(tree)
    programs = list(dict.fromkeys(case.program for case in cases))
    host_cpus = os.cpu_count() or 1
    switch_uid = execute.can_switch_uid()
    if not switch_uid:
        log("not root (or no setpriv): native runs only as the current user")

    built: dict[catalog.Program, build.Built] = {}
    results = report.load_results(Path(options.results))
    results.pop("_meta", None)
    today = datetime.date.today().isoformat()
    columns = (TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[current]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        with ThreadPoolExecutor(max_workers=host_cpus) as pool:
            task = progress.add_task("build", total=len(programs), current="")
            futures = {pool.submit(build.build, p, selftests, overlay, build_dir): p for p in programs}
            for future in as_completed(futures):
                result = future.result()
                built[result.program] = result
                progress.update(task, advance=1, current=result.program.name)
                if result.binary is None:
                    log(f"build of {result.program.name} failed: {result.error}")

        entries: dict[str, dict] = {}
        for case in cases:
            key = f"{case.name} {case.label}".rstrip()
            entry = {"test": case.name, "args": case.label, "note": case.note, "date": today}
            if options.no_native and key in results:
                for column in ("native_root", "native_uid1000"):
                    if column in results[key]:
                        entry[column] = results[key][column]
            entry["emu"] = {}
            entries[key] = entry

        def log_path(case: catalog.Case, kind: str) -> Path:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{case.name} {case.label}")
            return log_dir / f"{safe}.{kind}.txt"

        # Native runs go one at a time (several futex and rseq tests measure
        # time), beside the emu runs, which use --jobs workers.
        native_jobs = [] if options.no_native else [
            (case, uid) for case in cases for uid in ((0, execute.GUEST_UID) if switch_uid else (None,))]
        emu_jobs = [(case, cpus) for case in cases for cpus in ((1, 4) if case.threaded else (1,))]
        native_task = progress.add_task("native", total=len(native_jobs), current="")
        emu_task = progress.add_task("emu", total=len(emu_jobs), current="")

        def native(case: catalog.Case, uid: int | None) -> execute.Run:
            binary = built[case.program].binary
            if binary is None:
                return execute.Run("build-error", first_failure=built[case.program].error)
            column = "native_uid1000" if uid == execute.GUEST_UID else "native_root"
            return execute.run_native(binary, case.argv(host_cpus), uid or None, options.native_timeout,
                                      log_path(case, column))

        def emu(case: catalog.Case, cpus: int) -> execute.Run:
            binary = built[case.program].binary
            if binary is None:
                return execute.Run("build-error", first_failure=built[case.program].error)
            return execute.run_emu(options.emu, binary, case.argv(cpus), cpus, case.profile, options.timeout,
                                   log_path(case, f"emu{cpus}"))

        failed = 0
        with ThreadPoolExecutor(max_workers=1) as native_pool, \
                ThreadPoolExecutor(max_workers=max(1, options.jobs)) as emu_pool:
            futures = {native_pool.submit(native, case, uid): ("native", case, uid) for case, uid in native_jobs}
            futures.update({emu_pool.submit(emu, case, cpus): ("emu", case, cpus) for case, cpus in emu_jobs})
            for future in as_completed(futures):
                kind, case, detail = futures[future]
                run = future.result()
                key = f"{case.name} {case.label}".rstrip()
                if kind == "native":
                    column = "native_uid1000" if detail == execute.GUEST_UID else "native_root"
                    entries[key][column] = run.to_json()
                    progress.update(native_task, advance=1, current=key[:60])
                else:
                    entries[key]["emu"][str(detail)] = run.to_json()
                    failed += run.outcome not in ("pass", "skip")
                    progress.update(emu_task, advance=1, current=f"{failed} not passing; last: {case.name}"[:60])
                if not console.is_terminal:
                    where = column if kind == "native" else f"emu {detail} vCPU"
                    log(f"{key} [{where}]: {run.outcome} ({run.status}) in {run.seconds:.0f} s")

    # Keep the stored order for known entries, the catalog order for new ones.
    order = [f"{c.name} {c.label}".rstrip() for c in catalog.all_cases(available)]
    merged = {**results, **entries}
    merged = {k: merged[k] for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))}
    report.save_results(Path(options.results), merged)
    meta = {"date": today, "commit": _commit(), "host": _host(), "timeout": f"{options.timeout:g}",
            "linux": tree.parent.name, "missing": catalog.missing_tests(available)}
    write_report(options, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
