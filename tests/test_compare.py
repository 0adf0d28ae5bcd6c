"""`emu compare`: a matrix of workloads x --cmdline policies x CPU counts, each cell one `emu run`.

The matrix here is tiny (small argv knobs) but real: every cell is an `emu run`
subprocess, and every value in the table, CSV and JSON must equal what a direct
`emu run --stats` of the same cell reports.
"""
import csv
import fcntl
import json
import os
import shlex
import subprocess
import sys

import pytest

from emu_x86.emucli.compare import CompareError, expand_policy_matrix, metric_value, parse_cpus
from tests.guestbuild import REPO, Run, emu, require_gcc

WORKLOADS = ["guest/workloads/munmap_threads.c 2 6 2", "guest/workloads/mapfixed_generation.c 1 12"]
POLICIES = ["", "sched_quantum=20000"]
CPUS = [1, 2]
METRICS = ["cycles", "ipis", "tlb_flushes", "context_switches", "tlb_misses", "no_such_counter"]


def compare_args(out_prefix, *extra, workloads=WORKLOADS, cpus=CPUS):
    args = ["compare", "--cpus", ",".join(map(str, cpus)), "--out", str(out_prefix)]
    for workload in workloads:
        args += ["--workload", workload]
    for policy in POLICIES:
        args += ["--policy", policy]
    for metric in METRICS:
        args += ["--metric", metric]
    return [*args, *extra]


@pytest.fixture(scope="session")
def pool_run(tmp_path_factory):
    """One local-pool run of the matrix per test session, shared by the xdist
    workers through a lock file in the session's common temporary directory."""
    require_gcc()
    shared = tmp_path_factory.getbasetemp().parent
    prefix = shared / "compare-pool" / "tlb"
    done = shared / "compare-pool.result"
    with open(shared / "compare-pool.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            prefix.parent.mkdir(exist_ok=True)
            result = emu(*compare_args(prefix, "-j", "2"), timeout=300)
            done.write_text(json.dumps({"returncode": result.returncode, "stdout": result.stdout.decode(),
                                        "stderr": result.stderr.decode()}))
    saved = json.loads(done.read_text())
    return Run(saved["returncode"], saved["stdout"].encode(), saved["stderr"].encode()), prefix


def load_json(prefix):
    return json.loads(prefix.with_name(prefix.name + ".json").read_text())


def deterministic_part(stats):
    """The statistics without per_cpu[].tlb_hits: how often Unicorn's own TLB asks
    the model for a fill varies by one now and then between identical runs (seen
    on pinned_idle and mapfixed_generation under host load; QEMU resizes its TLB
    by wall-clock time), a known emulator issue outside `emu compare`."""
    return {**stats, "per_cpu": [{key: value for key, value in cpu.items() if key != "tlb_hits"}
                                 for cpu in stats["per_cpu"]]}


def test_pool_run_succeeds_and_tabulates_every_cell_in_matrix_order(pool_run):
    result, _ = pool_run
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["workload", "policy", "cpus", "exit", *METRICS, "error"]
    rows = lines[2:]
    assert len(rows) == len(WORKLOADS) * len(POLICIES) * len(CPUS)
    expected_order = [(w.split()[0].rsplit("/", 1)[1][:-2], p or "(default)", c)
                      for w in WORKLOADS for p in POLICIES for c in CPUS]
    for row, (name, policy, cpus) in zip(rows, expected_order):
        assert row.startswith(name)
        assert f" {policy} " in row
        fields = row.split()
        assert fields[-len(METRICS) - 2] == str(cpus)          # cpus, then exit status
        assert fields[-len(METRICS) - 1] == "0"
        assert fields[-1] == "-"                               # no_such_counter: missing -> "-"


def test_json_and_csv_hold_the_same_values_and_the_policy_reached_the_kernel(pool_run):
    _, prefix = pool_run
    document = load_json(prefix)
    assert document["cpus"] == CPUS and document["policies"] == POLICIES and document["metrics"] == METRICS
    cells = document["cells"]
    with open(prefix.with_name(prefix.name + ".csv"), newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert len(csv_rows) == len(cells) == 8
    for cell, row in zip(cells, csv_rows):
        assert cell["ok"] and cell["exit_status"] == 0 and cell["error"] is None
        assert row["policy"] == cell["policy"] and int(row["cpus"]) == cell["cpus"]
        assert len(cell["stats"]["per_cpu"]) == cell["cpus"]
        assert cell["metrics"]["cycles"] == cell["stats"]["cycles"] > 0
        assert cell["metrics"]["tlb_misses"] == sum(cpu["tlb_misses"] for cpu in cell["stats"]["per_cpu"]) > 0
        assert cell["metrics"]["no_such_counter"] is None and row["no_such_counter"] == ""
        for metric in ("cycles", "ipis", "tlb_flushes", "context_switches", "tlb_misses"):
            assert int(row[metric]) == cell["metrics"][metric]
    assert [cell["stdout"] for cell in cells[:4]] == ["munmap_threads threads=2 iterations=6 pages=2 ok\n"] * 4
    assert [cell["stdout"] for cell in cells[4:]] == ["ok\n"] * 4
    # A 20000-cycle timer tick adds timer interrupts to every run: the --cmdline got through.
    for default, short_quantum in zip(cells[0:2] + cells[4:6], cells[2:4] + cells[6:8]):
        assert short_quantum["policy"] == "sched_quantum=20000" and default["policy"] == ""
        assert short_quantum["stats"]["cycles"] > default["stats"]["cycles"]


@pytest.mark.parametrize("which", [1, 6])   # (munmap, default, 2 CPUs) and (mapfixed, quantum, 1 CPU)
def test_a_cell_equals_a_direct_emu_run_of_the_same_cell(pool_run, which, tmp_path):
    _, prefix = pool_run
    cell = load_json(prefix)["cells"][which]
    stats_path = tmp_path / "direct.json"
    direct = ["run", "--cpus", str(cell["cpus"]), "--stats", str(stats_path)]
    if cell["policy"]:
        direct += ["--cmdline", cell["policy"]]
    direct += [cell["program_path"], *cell["args"]]
    assert cell["command"] == shlex.join(["env", "-i", "LC_ALL=C", "emu", *direct[:4], "STATS.json",
                                          *direct[5:]]) + " </dev/null | cat"
    result = emu(*direct, env={"LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == cell["stdout"]
    assert deterministic_part(json.loads(stats_path.read_text())) == deterministic_part(cell["stats"])


def test_png_is_a_real_png_with_one_panel_per_workload_and_metric(pool_run):
    _, prefix = pool_run
    from PIL import Image
    path = prefix.with_name(prefix.name + ".png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert width > 800 and height > 300        # 6 metric panels wide, 2 workload rows


def test_dask_cluster_gives_the_same_cells_as_the_local_pool(pool_run, tmp_path):
    from distributed import LocalCluster
    _, pool_prefix = pool_run
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        prefix = tmp_path / "dask"
        result = emu(*compare_args(prefix, "--dask", cluster.scheduler_address, workloads=WORKLOADS[1:], cpus=[2]),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    pool_cells, dask_cells = load_json(pool_prefix)["cells"][5::2], load_json(prefix)["cells"]
    assert len(dask_cells) == 2
    assert [(c["workload"], c["policy"], c["cpus"], deterministic_part(c["stats"])) for c in dask_cells] == \
           [(c["workload"], c["policy"], c["cpus"], deterministic_part(c["stats"])) for c in pool_cells]
    pool_rows = pool_run[0].stdout.decode().splitlines()[2:]
    dask_rows = result.stdout.decode().splitlines()[2:]
    assert [row.split() for row in dask_rows] == [row.split() for row in pool_rows[5::2]]   # the same rows


def test_a_failing_cell_is_shown_with_its_first_stderr_line_and_fails_the_command(tmp_path):
    result = emu("compare", "--workload", "guest/tests/asm/segv.S", "--workload", "guest/tests/asm/exit_status.S",
                 "--expect-status", "42", "--metric", "cycles", "--no-progress", "--out", str(tmp_path / "f"))
    assert result.returncode == 1
    rows = result.stdout.decode().splitlines()[2:]
    direct = emu("run", "guest/tests/asm/segv.S")
    assert direct.returncode == 139
    assert rows[0].startswith("segv ") and rows[0].endswith(f"exit 139: {direct.stderr_lines[0]}")
    assert rows[1].split()[:4] == ["exit_status", "(default)", "1", "42"] and len(rows[1].split()) == 5
    assert result.stderr_lines[-1] == "emu compare: 1 of 2 cells failed"
    cells = load_json(tmp_path / "f")["cells"]
    assert [cell["ok"] for cell in cells] == [False, True]
    assert cells[0]["exit_status"] == 139 and cells[0]["metrics"]["cycles"] > 0


def test_a_cell_past_its_timeout_is_killed_and_reported(tmp_path):
    spin = tmp_path / "spin.S"
    spin.write_text(".globl _start\n_start:\n    jmp _start\n")
    result = emu("compare", "--workload", str(spin), "--timeout", "3", "--metric", "cycles", "--no-progress")
    assert result.returncode == 1
    row = result.stdout.decode().splitlines()[2]
    assert row.split()[:5] == ["spin", "(default)", "1", "-", "-"]
    assert row.endswith("timeout: emu compare: timed out after 3.0 s")


@pytest.mark.parametrize("args, message", [
    (["--workload", "guest/workloads/no_such.c"], "emu compare: workload guest/workloads/no_such.c: no such file"),
    (["--workload", "README.md"],
     "emu compare: workload README.md: not a C source (.c), a static ELF or an assembly source"),
    (["--workload", "guest/tests/asm/fib.S", "--cpus", "1,x"],
     "emu compare: bad --cpus '1,x': 'x' is not an integer (expected a comma-separated list such as 1,2,4)"),
    (["--workload", "guest/tests/asm/fib.S", "--cpus", "0,2"], "emu compare: bad --cpus '0,2': 0 is outside 1-64"),
    (["--workload", "guest/tests/asm/fib.S", "--cpus", "65"], "emu compare: bad --cpus '65': 65 is outside 1-64"),
    (["--workload", "guest/tests/asm/fib.S", "--policy-matrix", "tlb_flush"],
     "emu compare: bad --policy-matrix 'tlb_flush': expected KEY=VALUE1,VALUE2,..."),
    (["--workload", "guest/tests/asm/fib.S", "--profile", "nosuch"], "emu compare: unknown profile 'nosuch'"),
    (["--workload", "guest/tests/asm/fib.S", "--policy", "bogus=1"],
     "emu compare: --policy 'bogus=1': unknown kernel parameter 'bogus' (known: "),
    (["--workload", "guest/tests/asm/fib.S", "--policy-matrix", "lazy_tlb=refcount,lazy"],
     "emu compare: --policy 'lazy_tlb=lazy': lazy_tlb=lazy: unknown value (one of: refcount, shootdown, hazard)"),
    (["--workload", "guest/tests/asm/fib.S", "--workload", "guest/tests/asm/fib.S"],
     "emu compare: two workloads are both named 'fib' (same file name and arguments)"),
    (["--workload", "guest/tests/asm/fib.S", "-j", "0"], "emu compare: bad -j 0: must be at least 1"),
    (["--cpus", "2"], "emu: the following arguments are required: --workload"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = emu("compare", *args)
    assert result.returncode == 2
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith(message)
    assert result.stdout == b""


def test_a_c_workload_that_does_not_compile_is_one_line_and_exit_2(tmp_path):
    require_gcc()
    source = tmp_path / "broken.c"
    source.write_text("int main(void) { return undefined_name; }\n")
    result = emu("compare", "--workload", str(source))
    assert result.returncode == 2
    assert len(result.stderr_lines) == 1
    assert result.stderr_lines[0].startswith(f"emu compare: cannot build {source}: ")
    assert "undefined_name" in result.stderr_lines[0]


def test_policy_matrix_is_the_cross_product_in_order():
    assert expand_policy_matrix(["tlb_flush=ipi,invlpgb", "lazy_tlb=refcount,shootdown,hazard"]) == [
        "tlb_flush=ipi lazy_tlb=refcount", "tlb_flush=ipi lazy_tlb=shootdown", "tlb_flush=ipi lazy_tlb=hazard",
        "tlb_flush=invlpgb lazy_tlb=refcount", "tlb_flush=invlpgb lazy_tlb=shootdown",
        "tlb_flush=invlpgb lazy_tlb=hazard"]
    with pytest.raises(CompareError):
        expand_policy_matrix(["tlb_flush=ipi,"])


def test_cpus_list_and_metric_lookup():
    assert parse_cpus("2,4,8,16") == [2, 4, 8, 16]
    assert parse_cpus("4, 2,4") == [4, 2]
    stats = {"cycles": 10, "syscall_counts": {"11": 3},
             "per_cpu": [{"tlb_misses": 4, "events": {}}, {"tlb_misses": 5, "events": {}}]}
    assert metric_value(stats, "cycles") == 10
    assert metric_value(stats, "tlb_misses") == 9 and metric_value(stats, "per_cpu.tlb_misses") == 9
    assert metric_value(stats, "syscall_counts.11") == 3
    assert metric_value(stats, "ipis") is None and metric_value(None, "cycles") is None
    # issue 21: figures per operation, syscall names
    assert metric_value(stats, "syscall_counts.munmap") == 3
    assert metric_value(stats, "cycles/syscall_counts.munmap") == round(10 / 3, 2)
    assert metric_value(stats, "cycles/syscall_counts.write") is None      # no write: no per-write figure


def test_workload_cflags_and_shipped_workloads_by_name(tmp_path):
    from emu_x86.emucli.compare import load_workload
    require_gcc()
    source = tmp_path / "needs_flag.c"
    source.write_text("#ifndef WANTED\n#error WANTED is not defined\n#endif\nint main(void) { return 0; }\n")
    with pytest.raises(CompareError, match="WANTED is not defined"):
        load_workload(str(source))
    built = load_workload(f"CFLAGS='-DWANTED -O1' {source} 7")
    assert built.args == ["7"] and built.program[:4] == b"\x7fELF"
    shipped = load_workload("munmap_threads.c 1 2")
    assert shipped.label == "munmap_threads 1 2" and shipped.program[:4] == b"\x7fELF"


def test_compare_module_does_not_import_tests():
    code = "import emu_x86.emucli.compare, sys; print(any(m == 'tests' or m.startswith('tests.') for m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO,
                            env={"PATH": os.environ.get("PATH", "")}).stdout
    assert output.strip() == "False"
