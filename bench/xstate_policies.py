"""The cost of each ``xstate_alloc=`` policy on AMX task churn (docs/xstate-policies.md).

Runs guest/tests/amx/amx_churn.c under every policy and prints one markdown
table per workload from the emulator's statistics (machine cycles, #NM
faults, large-buffer allocations, vfree purges and their IPIs, ...).

    .venv/bin/python -m bench.xstate_policies
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POLICIES = ("vmalloc", "vmalloc_cache", "separate", "eager", "pages_percpu")
# (title, --cpus, extra --cmdline, guest arguments)
WORKLOADS = (
    ("churn: 256 AMX threads in waves of 4, 4 CPUs, Linux defaults", 4, "", ("256", "4")),
    ("churn, lazy_max_pages=32 (a purge every 9 AMX exits)", 4, "lazy_max_pages=32", ("256", "4")),
    ("churn, vmalloc=256K (a crowded vmalloc space: purges on allocation pressure)", 4, "vmalloc=256K",
     ("256", "4")),
    ("switching: 8 AMX threads x 20 rounds of TDPBSSD + 2 sched_yield, 2 CPUs", 2, "", ("8", "4", "0", "20")),
)
COLUMNS = (
    ("cycles", "cycles"), ("nm_faults", "#NM"), ("xstate_allocs", "allocs"), ("vmalloc_allocs", "vmallocs"),
    ("xstate_cache_hits", "cache hits"), ("vmalloc_purges", "purges"), ("vfree_ipis", "vfree IPIs"),
    ("vmalloc_purge_cycles", "purge cycles"), ("xstate_alloc_cycles", "alloc+free cycles"),
    ("xstate_buffer_bytes_peak", "peak bytes"), ("xsaves", "XSAVES"), ("xsave_unmodified_skipped", "unmod. skipped"),
    ("xstate_copy_bytes", "copied bytes"),
)


def build_churn(directory: Path) -> Path:
    binary = directory / "amx_churn"
    subprocess.run(["gcc", "-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8", "-I",
                    str(REPO / "guest" / "include"), str(REPO / "guest" / "tests" / "amx" / "amx_churn.c"),
                    "-o", str(binary)], check=True)
    return binary


def run(binary: Path, directory: Path, cpus: int, cmdline: str, args) -> dict:
    stats_path = directory / "stats.json"
    result = subprocess.run([sys.executable, "-m", "emu_x86.emucli", "run", "--cpus", str(cpus), "--stats", str(stats_path),
                             "--cmdline", cmdline, str(binary), *args], capture_output=True, cwd=REPO)
    if result.returncode != 0 or not result.stdout.startswith(b"churn ok"):
        raise RuntimeError(f"{cmdline}: exit {result.returncode}: {result.stderr.decode()}")
    return json.loads(stats_path.read_text())


def main() -> int:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        binary = build_churn(directory)
        for title, cpus, extra, args in WORKLOADS:
            cmdline = f"xstate_alloc=POLICY {extra}".strip()
            print(f"\n{title}: `emu run --cpus {cpus} --cmdline '{cmdline}' amx_churn {' '.join(args)}`\n")
            print("| policy | " + " | ".join(label for _, label in COLUMNS) + " |")
            print("|---|" + "---:|" * len(COLUMNS))
            for policy in POLICIES:
                stats = run(binary, directory, cpus, f"xstate_alloc={policy} {extra}".strip(), args)
                print(f"| {policy} | " + " | ".join(f"{stats[key]:,}" for key, _ in COLUMNS) + " |")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
