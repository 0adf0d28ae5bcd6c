"""``python -m fuzz``: run many fuzz cases in this process (or a few forked workers) and
report every broken property.

    python -m fuzz --kind code --cases 100000 --jobs 2      # the long run (make fuzz)
    python -m fuzz --kind code --seed 1 --only 4711         # reproduce one case

Exit status 0 when every case held, 1 otherwise (the failures are printed).
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter

from fuzz import INPUT_KINDS, KINDS, fuzz_root, run_case

CHUNK_CASES = 250


def run_chunk(task: tuple[str, int, int, int, bool]) -> tuple[str, int, Counter, list, tuple]:
    """Cases [start, end) of one kind: (kind, count, endings, failures, (seconds, index) of the slowest)."""
    kind, seed, start, end, verbose = task
    endings: Counter = Counter()
    failures = []
    slowest = (0.0, None)
    peak_bytes = 0
    for index in range(start, end):
        started = time.monotonic()
        outcome = run_case(kind, seed, index)
        slowest = max(slowest, (time.monotonic() - started, index), key=lambda pair: pair[0])
        peak_bytes = max(peak_bytes, outcome.peak_bytes)
        # Program-file kinds keep the status (2, 123, 124, 125, ...): which contract ended the run.
        keep_whole = outcome.ending.startswith("signal") or kind in INPUT_KINDS
        endings[outcome.ending if keep_whole else outcome.ending.split(" ")[0]] += 1
        if verbose:
            print(f"{kind} #{index}: {outcome.ending or '-'} after {outcome.cycles} cycles"
                  f"{'' if outcome.ok else ' FAILED'}", flush=True)
        if not outcome.ok:
            failures.append((index, outcome.failure))
    return kind, end - start, endings, failures, (slowest, peak_bytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="all", choices=[*KINDS, "all"])
    parser.add_argument("--cases", type=int, default=1000, help="cases per kind (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--only", type=int, help="run just this case index, verbosely")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's ending")
    options = parser.parse_args(argv)
    kinds = KINDS if options.kind == "all" else (options.kind,)
    if options.only is not None:
        options.start, options.cases, options.verbose, options.jobs = options.only, 1, True, 1
    tasks = [(kind, options.seed, start, min(start + CHUNK_CASES, options.start + options.cases), options.verbose)
             for kind in kinds for start in range(options.start, options.start + options.cases, CHUNK_CASES)]
    totals = {kind: [0, Counter(), [], (0.0, None), 0] for kind in kinds}
    started = last_report = time.monotonic()
    done = 0
    if "syscall" in kinds:
        fuzz_root(writable=False)     # the temporary base is this process's (removed at its exit)
    if set(kinds) & set(INPUT_KINDS):
        from fuzz.inputs import workdir
        workdir()                     # base binaries built once, before workers fork
    if options.jobs > 1:
        pool = multiprocessing.get_context("fork").Pool(options.jobs)
        results = pool.imap_unordered(run_chunk, tasks)
    else:
        pool, results = None, map(run_chunk, tasks)
    try:
        for kind, count, endings, failures, (slowest, peak_bytes) in results:
            total = totals[kind]
            total[0] += count
            total[1].update(endings)
            total[2].extend(failures)
            total[3] = max(total[3], slowest, key=lambda pair: pair[0])
            total[4] = max(total[4], peak_bytes)
            done += count
            for index, failure in failures:
                print(f"FAIL {kind} seed={options.seed} index={index}: {failure}", file=sys.stderr, flush=True)
            now = time.monotonic()
            if now - last_report >= 5 or done == len(kinds) * options.cases:
                last_report = now
                failed = sum(len(t[2]) for t in totals.values())
                print(f"[fuzz] {done}/{len(kinds) * options.cases} cases, {failed} failures, "
                      f"{done / max(now - started, 1e-9):.0f} cases/s", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for kind, (count, endings, failures, slowest, peak_bytes) in totals.items():
        summary = ", ".join(f"{name}: {n}" for name, n in sorted(endings.items()))
        peak = f", peak host memory {peak_bytes >> 20} MiB" if peak_bytes else ""
        print(f"{kind}: {count} cases, {len(failures)} failures, slowest #{slowest[1]} {slowest[0]:.2f} s{peak} "
              f"-- {summary}")
    failed = sum(len(t[2]) for t in totals.values())
    print(f"{failed} failing case(s) in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
