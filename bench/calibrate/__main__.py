"""`make calibrate`: the cycle model against this host.

Builds bench/calibrate/kernels.c (gcc -O2 -static), then for each benchmark
runs it natively and under ``emu run --profile P --cache-model`` (P: the
profile nearest the host, ``host_profile``: zen5 on a family 1Ah AMD, zen3 on
family 19h models 00h-0Fh, zen4 on later family 19h models) and
prints cycles per iteration both ways, the error, and the geometric-mean
error factor (a benchmark's factor is max(emu/native, native/emu)); draws
the working-set sweep (cycles per dependent load against working-set size,
native beside emu with and without --cache-model) as a PNG; writes
everything to a JSON file.

Native cycles come from a calibrated clock, no PMU: each benchmark prints
the nanoseconds of N and 2N iterations (least of REPEATS runs: the host is
shared, the least is the run nobody preempted); the difference is N
iterations; of five such measurements a core-bound row keeps the least, the others the median (native_cycles). The host's core
clock is measured right before each of them by ``dep_add``, a chain of dependent ``add``s at one cycle each (so dep_add
itself is the clock reference, not a check, and is left out of the
geometric mean). Under emu the guest's clock_gettime counts the vCPU's
cycles at the profile's frequency, so the same arithmetic gives emulated
cycles exactly.

Usage: python -m bench.calibrate [--profile P] [--out results/calibration]
       [--only NAME,...] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SOURCE = HERE / "kernels.c"
KIB, MIB = 1 << 10, 1 << 20
# Error bounds the issue sets (docs/calibration.md).
CORE_BOUND_LIMIT = 0.25
PLATEAU_LIMIT = 0.30
GEOMEAN_LIMIT = 1.3


@dataclass(frozen=True)
class Benchmark:
    name: str               # row label
    kernel: str             # kernels.c entry
    native_n: int           # iterations natively (N; 2N also runs)
    emu_n: int              # iterations under emu
    per: str                # what one iteration is
    kind: str               # "core", "memory", "kernel" (syscall), "reference"
    working_set: int = 0
    native_repeats: int = 100


def suite() -> list[Benchmark]:
    core = [
        Benchmark("dep_add (clock reference)", "dep_add", 20000, 20000, "8 dependent add", "reference"),
        Benchmark("indep_add", "indep_add", 20000, 20000, "8 independent add", "core"),
        Benchmark("dep_imul", "dep_imul", 20000, 20000, "4 dependent imul", "core"),
        Benchmark("indep_imul", "indep_imul", 20000, 20000, "6 independent imul", "core"),
        Benchmark("div64", "div64", 10000, 10000, "2 dependent div r64", "core"),
        Benchmark("lea_mix", "lea_mix", 20000, 20000, "6 independent ALU ops", "core"),
        Benchmark("mulsd_addsd", "mulsd_addsd", 10000, 10000, "4 x mulsd+addsd chain", "core"),
        Benchmark("addsd_throughput", "addsd_throughput", 20000, 20000, "8 independent addsd", "core"),
        Benchmark("divsd_chain", "divsd_chain", 5000, 5000, "4 dependent divsd", "core"),
        Benchmark("sqrtsd_chain", "sqrtsd_chain", 5000, 5000, "4 dependent sqrtsd", "core"),
        Benchmark("load_throughput", "load_throughput", 20000, 20000, "6 L1 loads", "core"),
        Benchmark("store_throughput", "store_throughput", 20000, 20000, "4 stores", "core"),
        Benchmark("memory_increment", "memory_increment", 20000, 20000, "add [mem], 1 chain", "core"),
        Benchmark("alu_load_store_mix", "alu_load_store_mix", 20000, 20000, "load+alu+store+imul mix", "core"),
        Benchmark("calls", "calls", 10000, 10000, "4 call/ret", "core"),
        Benchmark("branch_taken", "branch_taken", 20000, 20000, "1 always-taken branch", "core"),
        Benchmark("branch_period4", "branch_period4", 20000, 20000, "1 branch, period-4 pattern", "core"),
        Benchmark("branch_random", "branch_random", 20000, 20000, "1 random branch", "core"),
        Benchmark("rep_movsq_4k", "rep_movsq_4k", 2000, 2000, "4 KiB rep movsq", "core"),
        Benchmark("rep_stosb_4k", "rep_stosb_4k", 2000, 2000, "4 KiB rep stosb", "core"),
        Benchmark("rep_movsb_64k", "rep_movsb_64k", 200, 100, "64 KiB rep movsb", "core"),
        Benchmark("syscall_getppid", "syscall_getppid", 2000, 2000, "getppid()", "kernel", native_repeats=30),
        Benchmark("sequential_sum_64m", "sequential_sum", 2000, 20000, "64-byte line summed", "memory",
                  working_set=64 * MIB, native_repeats=200),
    ]
    sweep = []
    for size in (4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 1 * MIB, 2 * MIB, 4 * MIB, 8 * MIB, 16 * MIB, 64 * MIB,
                 256 * MIB):
        label = f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"
        # Natively short windows, many of them: on a shared host a long window
        # is always preempted, and the other tenants' work evicts its lines.
        sweep.append(Benchmark(f"chase {label}", "chase", 256, 2000 if size >= 16 * MIB else 5000,
                               "4 dependent loads", "memory", working_set=size, native_repeats=300))
    return core + sweep


def build(out_dir: Path) -> Path:
    binary = out_dir / "kernels"
    if not binary.exists() or binary.stat().st_mtime < SOURCE.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def native_prefix() -> list[str]:
    """Pin native runs to CPU 0, and run them SCHED_FIFO when allowed (root):
    the host's other processes then cannot preempt a measuring window, and
    the clock reference and the benchmark share one core. What is left is
    the other tenants' work on the physical core (SMT) and in the L3."""
    prefix = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    if prefix and os.geteuid() == 0 and shutil.which("chrt"):
        prefix += ["chrt", "-f", "10"]
    return prefix


def run_native(binary: Path, bench: Benchmark, repeats: int | None = None) -> tuple[int, int]:
    out = subprocess.run([*native_prefix(), str(binary), bench.kernel, str(bench.native_n), str(bench.working_set),
                          str(repeats or bench.native_repeats)], capture_output=True, text=True, check=True)
    first, second = out.stdout.split()
    return int(first), int(second)


def host_hz(binary: Path) -> float:
    """The core clock: dep_add's 8 dependent adds per iteration at 1 cycle each."""
    reference = suite()[0]
    ns_n, ns_2n = run_native(binary, reference, 200)
    return 8 * reference.native_n / ((ns_2n - ns_n) * 1e-9)


# Five: on this shared host a sibling tenant's burst can slow a throughput-bound
# loop by a third for seconds at a time (load_throughput measured 2.0-2.9
# cycles across minutes on 2026-12-07); see native_cycles.
NATIVE_SAMPLES = 5


def native_cycles(binary: Path, bench: Benchmark) -> tuple[float, float]:
    """NATIVE_SAMPLES measurements, each with the clock measured right before
    it (a shared host's frequency and load drift within seconds). A core-bound
    loop keeps the least of them: its time only ever grows with the other
    tenants' use of the physical core (the SMT sibling this VM does not see)
    -- measured here, load_throughput and memory_increment moved together
    from 2.0 and 1.0 cycles to 2.6 and 1.9 from one minute to the next while
    dep_add, the latency-bound clock reference, did not -- so the least
    sample is the core's own figure. Other rows keep the median."""
    samples = []
    for _ in range(NATIVE_SAMPLES):
        hz = host_hz(binary)
        ns_n, ns_2n = run_native(binary, bench)
        samples.append(((ns_2n - ns_n) * 1e-9 * hz / bench.native_n, hz))
    samples.sort()
    return samples[0] if bench.kind == "core" else samples[NATIVE_SAMPLES // 2]


def emu_cycles(binary: Path, bench: Benchmark, profile: str, frequency_hz: int, cache_model: bool) -> float:
    command = [sys.executable, "-m", "emu_x86.emucli.main", "run", "--profile", profile]
    if cache_model:
        command.append("--cache-model")
    command += [str(binary), bench.kernel, str(bench.emu_n), str(bench.working_set), "1"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{bench.name}: emu exited {out.returncode}: {out.stderr.strip()}")
    ns_n, ns_2n = map(int, out.stdout.split())
    return (ns_2n - ns_n) * 1e-9 * frequency_hz / bench.emu_n


def factor(emu: float, native: float) -> float:
    return max(emu / native, native / emu)


def host_profile() -> str:
    """The profile nearest this host's processor, by /proc/cpuinfo's vendor,
    family and model (AMD's family 19h is Zen 3 at models 00h-0Fh and 20h-5Fh,
    Zen 4 at 10h-1Fh and 60h-7Fh; family 1Ah is Zen 5); spr otherwise."""
    fields = _cpuinfo_fields()
    if fields.get("vendor_id") != "AuthenticAMD":
        return "spr"
    try:
        family, model = int(fields.get("cpu family", "0")), int(fields.get("model", "0"))
    except ValueError:
        return "spr"
    if family == 0x1A:
        return "zen5"
    if family == 0x19:
        return "zen4" if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F else "zen3"
    return "spr"


def draw_sweep(rows: list[dict], path: Path, profile: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sweep = [row for row in rows if row["kernel"] == "chase"]
    if not sweep:
        return False
    sizes = [row["working_set"] / KIB for row in sweep]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sizes, [row["native"] / 4 for row in sweep], "o-", label="native (host)")
    ax.plot(sizes, [row["emu"] / 4 for row in sweep], "s-", label=f"emu {profile} --cache-model")
    if all("emu_default" in row for row in sweep):
        # A marginal figure can come out at or below zero where the TLB's FIFO
        # replacement makes the shorter run the dearer one (on its reach): no point.
        ax.plot(sizes, [row["emu_default"] / 4 if row["emu_default"] > 0 else float("nan") for row in sweep], "^--",
                label=f"emu {profile} (default: TLB-miss proxy)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("working set (KiB)")
    ax.set_ylabel("cycles per dependent load")
    ax.set_title("Pointer chase: latency per load against working set")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def markdown_tables(rows: list[dict], geomean: float) -> str:
    """The result tables as docs/calibration.md shows them."""
    lines = ["| benchmark | per iteration | native cycles | emu cycles | error |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['per']} | {row['native']:.2f} | {row['emu']:.2f} | {row['error']:+.1%} |")
    lines += ["", f"Geometric-mean error factor: **{geomean:.3f}**", ""]
    sweep = [row for row in rows if row["kernel"] == "chase"]
    if sweep:
        lines += ["| working set | native cycles/load | emu `--cache-model` | error | emu default path |",
                  "|---|---:|---:|---:|---:|"]
        for row in sweep:
            default = f"{row['emu_default'] / 4:.1f}" if "emu_default" in row else "-"
            lines.append(f"| {row['name'].removeprefix('chase ')} | {row['native'] / 4:.1f} | {row['emu'] / 4:.1f} "
                         f"| {row['error']:+.1%} | {default} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate")
    parser.add_argument("--profile", default=None, help="cost profile (default: the one nearest this host)")
    parser.add_argument("--out", default="results/calibration")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--no-default-sweep", action="store_true",
                        help="skip the sweep under the default path (no --cache-model)")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from emu_x86.emu.timing.profile import load_profile
    profile = load_profile(options.profile or host_profile())
    out_dir = ROOT / options.out
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = build(out_dir)
    benches = suite()
    if options.only:
        wanted = set(options.only.split(","))
        benches = [b for b in benches if b.name in wanted or b.kernel in wanted]
    host = os.uname().nodename
    print(f"host {host}: {cpu_name()}; profile {profile.name} at {profile.frequency_hz / 1e9:.2f} GHz; "
          f"emu with --cache-model")
    load_at_start = os.getloadavg()
    print(f"load average at start: {load_at_start[0]:.2f} {load_at_start[1]:.2f} {load_at_start[2]:.2f}")
    print(f"{'benchmark':28} {'per iteration':28} {'native':>9} {'emu':>9} {'error':>8}  host GHz")
    rows = []
    started = time.time()
    for bench in benches:
        native, hz = native_cycles(binary, bench)
        emu = emu_cycles(binary, bench, profile.name, profile.frequency_hz, cache_model=True)
        row = {"name": bench.name, "kernel": bench.kernel, "per": bench.per, "kind": bench.kind,
               "working_set": bench.working_set, "native": native, "emu": emu, "host_hz": hz,
               "error": emu / native - 1}
        if bench.kernel == "chase" and not options.no_default_sweep:
            row["emu_default"] = emu_cycles(binary, bench, profile.name, profile.frequency_hz, cache_model=False)
        rows.append(row)
        print(f"{bench.name:28} {bench.per:28} {native:9.2f} {emu:9.2f} {row['error']:+8.1%}  {hz / 1e9:.2f}",
              flush=True)
    counted = [row for row in rows if row["kind"] != "reference"]
    geomean = math.exp(sum(math.log(factor(r["emu"], r["native"])) for r in counted) / max(1, len(counted)))
    core_worst = max((abs(r["error"]) for r in counted if r["kind"] == "core"), default=0.0)
    print(f"geometric-mean error factor: {geomean:.3f} over {len(counted)} benchmarks (target <= {GEOMEAN_LIMIT})")
    print(f"worst core-bound error: {core_worst:.1%} (target <= {CORE_BOUND_LIMIT:.0%})")
    png = out_dir / "working_set_sweep.png"
    drawn = draw_sweep(rows, png, profile.name)
    if drawn:
        print(f"working-set sweep: {png}")
    (out_dir / "calibration.json").write_text(json.dumps(
        {"host": host, "cpu": cpu_name(), "profile": profile.name, "rows": rows, "geomean_error_factor": geomean,
         "worst_core_bound_error": core_worst, "seconds": time.time() - started,
         "load_average_start": load_at_start, "load_average_end": os.getloadavg()}, indent=2) + "\n")
    (out_dir / "tables.md").write_text(markdown_tables(rows, geomean))
    print(f"table: {out_dir / 'calibration.json'}, {out_dir / 'tables.md'} ({time.time() - started:.0f} s)")
    return 0


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in info.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_name() -> str:
    fields = _cpuinfo_fields()
    if not fields:
        return "unknown CPU"
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')})")


if __name__ == "__main__":
    sys.exit(main())
