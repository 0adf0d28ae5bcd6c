"""``python -m fuzz``: run many fuzz cases in this process and report every broken property.

    python -m fuzz --kind all --cases 100000 --seed 1      # the long run (make fuzz)
    python -m fuzz --kind code --seed 1 --only 4711 -v     # reproduce one case

Exit status 0 when every case held, 1 otherwise (the failures are printed).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from fuzz import KINDS, run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="all", choices=[*KINDS, "all"])
    parser.add_argument("--cases", type=int, default=1000, help="cases per kind (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--only", type=int, help="run just this case index, verbosely")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's ending")
    options = parser.parse_args(argv)
    kinds = KINDS if options.kind == "all" else (options.kind,)
    indices = [options.only] if options.only is not None else range(options.start, options.start + options.cases)
    failures = []
    for kind in kinds:
        endings: Counter = Counter()
        started = time.monotonic()
        last_report = started
        slowest = (0.0, None)
        for count, index in enumerate(indices, 1):
            case_started = time.monotonic()
            outcome = run_case(kind, options.seed, index)
            slowest = max(slowest, (time.monotonic() - case_started, index), key=lambda pair: pair[0])
            endings[outcome.ending.split(" ")[0] if not outcome.ending.startswith("signal") else outcome.ending] += 1
            if options.verbose or options.only is not None:
                print(f"{kind} #{index}: {outcome.ending or '-'} after {outcome.cycles} cycles"
                      f"{'' if outcome.ok else ' FAILED'}")
            if not outcome.ok:
                failures.append(outcome)
                print(f"FAIL {kind} seed={options.seed} index={index}: {outcome.failure}", file=sys.stderr)
            now = time.monotonic()
            if now - last_report >= 5 or count == len(indices):
                last_report = now
                rate = count / max(now - started, 1e-9)
                print(f"[{kind}] {count}/{len(indices)} cases, {len(failures)} failures, {rate:.0f} cases/s",
                      file=sys.stderr, flush=True)
        summary = ", ".join(f"{name}: {n}" for name, n in sorted(endings.items()))
        print(f"{kind}: {len(indices)} cases in {time.monotonic() - started:.1f} s "
              f"(slowest #{slowest[1]}: {slowest[0]:.2f} s) -- {summary}")
    print(f"{len(failures)} failing case(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
