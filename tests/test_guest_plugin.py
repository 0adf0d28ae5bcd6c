"""The guest-test pytest plugin (emu_x86/emucli/pytest_plugin.py), ``emu test`` and the
header language they share (emu_x86/emucli/guesttest.py), tested as a user meets them:
pytest and emu run in subprocesses on guest programs written to tmp_path."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from emu_x86.emucli import guesttest
from tests.guestbuild import REPO

VENV_BIN = Path(sys.executable).parent
CORPUS = REPO / "guest" / "tests"

HELLO = r"""/* A guest test in a user project.
 * CPUS: 1 2
 * EXIT: 0
 * STDOUT: hi there
 * CHECK: hi {{th.re}}
 * STATS: syscall_counts.write == 1
 * STATS: ipis == 0
 */
#define SYS_write 1
#define SYS_exit_group 231
        .text
        .globl _start
_start:
        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     msg(%rip), %rsi
        mov     $9, %edx
        syscall
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
        .data
msg:    .ascii "hi there\n"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def wrong(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def clean_env(**extra) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", **extra}
    return env


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """The venv's plain ``pytest``, as a user project runs it: no conftest, no ini."""
    return subprocess.run([str(VENV_BIN / "pytest"), "-p", "no:cacheprovider", *args], cwd=directory,
                          capture_output=True, text=True, env=clean_env(), timeout=600)


def junit_outcomes(path: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(path).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return outcomes


# ---- a user project outside this repository -----------------------------------------

def test_user_project_runs_guest_tests_with_plain_pytest(tmp_path):
    write(tmp_path, "hello.S", HELLO)
    result = run_pytest(tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello.S::hello.S[cpus=1] PASSED" in result.stdout
    assert "hello.S::hello.S[cpus=2] PASSED" in result.stdout
    assert "2 passed" in result.stdout


def test_wrong_expectation_fails_with_diff_and_a_reproduce_command_that_reproduces(tmp_path):
    text = wrong(HELLO, "STDOUT: hi there", "STDOUT: hi thar")
    text = wrong(text, "STATS: ipis == 0", "STATS: ipis >= 1")
    write(tmp_path, "hello.S", wrong(text, "CPUS: 1 2", "CPUS: 2"))
    result = run_pytest(tmp_path)
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "-hi thar" in out and "+hi there" in out                       # the diff
    assert "STATS: ipis >= 1" in out and "failed: ipis is 0" in out
    assert "FAILED hello.S::hello.S[cpus=2]" in out
    match = re.search(r"reproduce with:\n  (cd .*emu run .*hello\.S)\n", out)
    assert match, out
    command = match.group(1)
    assert "--cpus 2" in command
    # The printed command is exact: run through a shell it prints what the test saw.
    rerun = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0
    assert rerun.stdout == "hi there\n"
    assert '"ipis": 0' in rerun.stderr                                    # --stats - for the STATS lines


def test_failures_of_exit_status_check_lines_and_stderr(tmp_path):
    text = wrong(HELLO, "EXIT: 0", "EXIT: SIGSEGV")
    text = wrong(text, "CHECK: hi {{th.re}}", "CHECK: hi\n * CHECK-NEXT: never")
    text = wrong(text, "CPUS: 1 2", "CHECK-STDERR: killed")
    write(tmp_path, "exit.S", text)
    out = run_pytest(tmp_path).stdout
    assert "exit status 0, expected SIGSEGV (139)" in out
    assert "CHECK-NEXT: never" in out and "not on the next output line (2)" in out
    assert "CHECK-STDERR: killed" in out
    assert "    1> hi there" in out                                         # the output, with the line marked


def test_bad_header_is_one_clear_failure_not_a_traceback(tmp_path):
    write(tmp_path, "bad.S", wrong(HELLO, "EXIT: 0", "EXIT: sometimes"))
    write(tmp_path, "typo.S", wrong(HELLO, "EXIT: 0", "EXITT: 0"))
    write(tmp_path, "only_typo.S", "/* EXITT: 0\n */\n.text\n")
    out = run_pytest(tmp_path).stdout
    assert re.search(r"bad\.S:3: EXIT: expected a number or a signal name like SIGSEGV, got 'sometimes'", out)
    # A misspelled directive is an error, also when it is the header's only mark.
    assert "typo.S:3: EXITT: unknown directive (did you mean EXIT:?)" in out
    assert "only_typo.S:1: EXITT: unknown directive (did you mean EXIT:?)" in out
    assert "Traceback" not in out
    assert "3 failed" in out


def test_events_directive_matches_the_event_trace_in_order(tmp_path):
    events = "EXIT: 0\n * EVENTS: context_switch prev=None next={{[0-9]+}}\n * EVENTS: syscall nr=1 name=write\n" \
             " * EVENTS: syscall_return name=write nr=1 result=9\n * EVENTS: syscall nr=231 name=exit_group"
    write(tmp_path, "events.S", wrong(HELLO, "EXIT: 0", events))
    write(tmp_path, "missing.S", wrong(HELLO, "EXIT: 0", "EXIT: 0\n * EVENTS: name=exit_group\n"
                                                         " * EVENTS: syscall nr=1 name=write"))
    out = run_pytest(tmp_path, "-v").stdout
    assert "events.S::events.S[cpus=1] PASSED" in out and "events.S::events.S[cpus=2] PASSED" in out, out
    assert "FAILED missing.S::missing.S[cpus=1]" in out
    assert "EVENTS: syscall nr=1 name=write  (line 5)" in out and "events:\n" in out, out


def test_xfail_line_expects_failure_and_reports_a_fixed_bug(tmp_path):
    write(tmp_path, "known.S", wrong(HELLO, "EXIT: 0", "EXIT: 0\n * XFAIL: issue 99\n * STDOUT: extra"))
    write(tmp_path, "fixed.S", wrong(HELLO, "EXIT: 0", "EXIT: 0\n * XFAIL: issue 98"))
    out = run_pytest(tmp_path, "-rxX").stdout
    assert "XFAIL known.S::known.S[cpus=1] - issue 99: stdout differs" in out
    assert "XFAIL (issue 98) but the test passed: remove the XFAIL line" in out
    assert "2 failed" in out and "2 xfailed" in out


def test_args_env_and_stdin_reach_the_guest_and_nothing_else(tmp_path):
    write(tmp_path, "io.c", r"""/* ARGS: one "two words"
 * ENV: GREETING=hello LC_ALL=C
 * STDIN: first line
 * STDIN: second line
 * STDOUT: argc=3 argv[2]=two words
 * STDOUT: GREETING=hello PATH=(unset) environ has 2 entries
 * STDOUT: stdin: first line
 * STDOUT: stdin: second line
 */
#include <stdio.h>
#include <stdlib.h>
extern char **environ;
int main(int argc, char **argv)
{
    int n = 0;
    while (environ[n]) n++;
    printf("argc=%d argv[2]=%s\n", argc, argv[2]);
    printf("GREETING=%s PATH=%s environ has %d entries\n", getenv("GREETING"),
           getenv("PATH") ? getenv("PATH") : "(unset)", n);
    char line[64];
    while (fgets(line, sizeof line, stdin)) printf("stdin: %s", line);
    return 0;
}
""")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout


def test_c_build_error_is_reported_with_the_compiler_message(tmp_path):
    write(tmp_path, "broken.c", "/* EXIT: 0 */\nint main(void) { return undeclared; }\n")
    out = run_pytest(tmp_path).stdout
    assert "build failed: gcc -static -O2" in out
    assert "'undeclared' undeclared" in out


def test_hung_guest_times_out_and_the_run_goes_on(tmp_path):
    write(tmp_path, "spin.S", "/* TIMEOUT: 2\n * EXIT: 0\n */\n        .globl _start\n_start: jmp _start\n")
    write(tmp_path, "hello.S", HELLO)
    result = run_pytest(tmp_path)
    assert "timed out after 2 s" in result.stdout
    assert "1 failed, 2 passed" in result.stdout


def test_c_guest_is_built_once_and_cached_by_content(tmp_path):
    source = r"""/* CFLAGS: -DGREETING=\"cached\"
 * STDOUT: cached 42
 * EXIT: 7
 */
#include <stdio.h>
int main(void) { printf("%s %d\n", GREETING, 42); return 7; }
"""
    write(tmp_path, "greet.c", source)
    first = run_pytest(tmp_path)
    assert first.returncode == 0, first.stdout
    binaries = list((tmp_path / ".emu-build").glob("greet-*"))
    assert len(binaries) == 1 and os.access(binaries[0], os.X_OK)
    stamp = binaries[0].stat().st_mtime_ns
    assert run_pytest(tmp_path).returncode == 0
    assert binaries[0].stat().st_mtime_ns == stamp                       # reused, not rebuilt
    write(tmp_path, "greet.c", source.replace("42", "43").replace("cached 42", "cached 43"))
    assert run_pytest(tmp_path).returncode == 0
    assert len(list((tmp_path / ".emu-build").glob("greet-*"))) == 2     # new content, new binary


def test_results_are_the_same_under_xdist(tmp_path):
    picked = ["isa/tdpbssd_m3k5n7.S", "isa/xsavec_rfbm2_0.S", "isa/cpuid_leafd1_eax_xsave_forms_zen4.S",
              "isa/rdpid_equals_getcpu.S", "kernel/amx_first_use.S", "kernel/munmap_then_access.S"]
    for name in picked:
        shutil.copy(CORPUS / name, tmp_path / Path(name).name)
    write(tmp_path, "broken.S", wrong(HELLO, "STDOUT: hi there", "STDOUT: nope"))
    write(tmp_path, "known.S", wrong(HELLO, "CPUS: 1 2", "XFAIL: a known bug\n * STDOUT: extra"))
    serial = run_pytest(tmp_path, "--junitxml", str(tmp_path / "serial.xml"))
    parallel = run_pytest(tmp_path, "-n", "2", "--junitxml", str(tmp_path / "parallel.xml"))
    assert serial.returncode == parallel.returncode == 1
    outcomes = junit_outcomes(tmp_path / "serial.xml")
    assert outcomes == junit_outcomes(tmp_path / "parallel.xml")
    assert len(outcomes) == 12
    assert sorted(set(outcomes.values())) == ["failure", "passed", "skipped"]   # broken.S fails, XFAIL skips


# ---- emu test -----------------------------------------------------------------------

def test_emu_test_prints_summary_and_failure_report(tmp_path):
    write(tmp_path, "hello.S", HELLO)
    write(tmp_path, "broken.S", wrong(HELLO, "STDOUT: hi there", "STDOUT: nope"))
    result = subprocess.run([str(VENV_BIN / "emu"), "test", "-j", "2", "."], capture_output=True,
                            text=True, env=clean_env(COLUMNS="200"), cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "broken.S[cpus=1]" in result.stdout
    assert "-nope" in result.stdout and "+hi there" in result.stdout
    assert "reproduce with:" in result.stdout
    assert re.search(r"│ \. +│ +2 │ +2 │", result.stdout), result.stdout   # per-directory table: 2 pass, 2 fail
    assert "2 pass, 2 fail in" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["test", "/no/such/dir"], "emu: no such file or directory: /no/such/dir"),
    (["test", "-j", "0", "."], "emu: --jobs must be at least 1, got 0"),
])
def test_emu_test_bad_input_is_one_line(tmp_path, args, message):
    write(tmp_path, "hello.S", HELLO)
    result = subprocess.run([str(VENV_BIN / "emu"), *args], capture_output=True, text=True, cwd=tmp_path,
                            env=clean_env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == message


# ---- the header language --------------------------------------------------------

@pytest.mark.parametrize("checks, output, failing_line", [
    (["CHECK: b", "CHECK-NEXT: c"], "a\nb\nc\n", None),
    (["CHECK: b", "CHECK-NEXT: c"], "a\nb\nx\nc\n", "not on the next output line (3)"),
    (["CHECK: a", "CHECK-NOT: x", "CHECK: c"], "a\nb\nc\nx\n", None),
    (["CHECK: a", "CHECK-NOT: x", "CHECK: c"], "a\nx\nc\n", "excluded pattern 'x' found on output line 2"),
    (["CHECK: c", "CHECK: a"], "a\nb\nc\n", "not found after output line 3"),
    (["CHECK: key=", "CHECK-SAME: 42"], "key=42\n", None),
    (["CHECK: a", "CHECK-EMPTY:"], "a\n\nb\n", None),
    (["CHECK: v={{[0-9]+$}}"], "v=12x\nv=7\n", None),
    (["CHECK: cpu [[C:[0-9]+]]", "CHECK: again [[C]]"], "cpu 3\nagain 4\nagain 3\n", None),
    (["CHECK: cpu [[C:[0-9]+]] [[C]]"], "cpu 3 4\n", "not found"),
    (["CHECK-NOT: error"], "fine\nerror here\n", "found on output line 2"),
])
def test_filecheck_semantics(checks, output, failing_line):
    directives = [guesttest.Directive(*line.split(":", 1)[0:1], line.split(":", 1)[1].strip(), n)
                  for n, line in enumerate(checks, 1)]
    failure = guesttest.run_checks(directives, output)
    if failing_line is None:
        assert failure is None, failure
    else:
        assert failure is not None and failing_line in failure.message


def test_stats_paths():
    stats = {"nm_faults": 2, "syscall_counts": {"1": 3, "158": 1},
             "per_cpu": [{"cycles": 5, "events": {"syscall": 2}}, {"cycles": 7, "events": {}}]}
    assert guesttest.stats_value(stats, "nm_faults") == 2
    assert guesttest.stats_value(stats, "syscall_counts.write") == 3
    assert guesttest.stats_value(stats, "syscall_counts.arch_prctl") == 1
    assert guesttest.stats_value(stats, "syscall_counts.rseq") == 0            # never called
    assert guesttest.stats_value(stats, "per_cpu.*.cycles") == 12
    assert guesttest.stats_value(stats, "per_cpu.1.events.syscall") == 0
    with pytest.raises(KeyError, match="no statistic 'nm_fault'"):
        guesttest.stats_value(stats, "nm_fault")
    with pytest.raises(KeyError, match="unknown syscall name 'frobnicate'"):
        guesttest.stats_value(stats, "syscall_counts.frobnicate")


def test_header_stops_at_code_and_ignores_prose(tmp_path):
    """One space separates a keyword from its value; the rest is the value."""
    text = "/* Prose: with a colon.\n * EXIT: 3\n * STDOUT:  indented\n * STDOUT:\n */\nmov $1, %eax\n# EXIT: 9\n"
    directives = guesttest.header_directives(text)
    assert [(d.keyword, d.value) for d in directives] == [("EXIT", "3"), ("STDOUT", " indented"), ("STDOUT", "")]
    spec = guesttest.parse_spec(write(tmp_path, "t.S", text))
    assert (spec.exit_status, spec.stdout_lines) == (3, [" indented", ""])


# ---- the corpus -------------------------------------------------------------------

def test_corpus_has_over_150_cases_and_every_file_is_a_test():
    cases = 0
    for directory in ("isa", "kernel"):
        for path in sorted((CORPUS / directory).iterdir()):
            assert guesttest.is_guest_test(path), f"{path} has no expectations in its header"
            cases += len(guesttest.parse_spec(path).variants())
    assert cases > 150


def test_generated_corpus_is_current_and_deterministic(tmp_path):
    """Rerunning the generator (fixed seed) writes exactly the committed files."""
    subprocess.run([sys.executable, str(REPO / "guest" / "tools" / "gen_isa_corpus.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.S")}
    committed = {p.name: p.read_text() for p in (CORPUS / "isa").glob("*.S")}
    assert generated.keys() == committed.keys()
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"rerun guest/tools/gen_isa_corpus.py: {stale[:5]}"


def test_variants_are_the_product_of_cpus_cmdline_and_profile(tmp_path):
    spec = guesttest.parse_spec(write(tmp_path, "v.S", "/* CPUS: 1, 4\n * CMDLINE: sched_quantum=100\n"
                                      " * CMDLINE: sched_quantum=200 other=1\n * PROFILE: spr zen4\n * EXIT: 0\n */\n"))
    ids = [variant.id for variant in spec.variants()]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert "cpus=4-profile=zen4-sched_quantum=200,other=1" in ids
    arguments = guesttest.run_arguments(spec, spec.variants()[-1], Path("v.S"), None)
    assert arguments == ["run", "--cpus", "4", "--profile", "zen4", "--cmdline", "sched_quantum=200 other=1", "v.S"]
