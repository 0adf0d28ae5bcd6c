"""Resource limits: --max-memory (ENOMEM to the guest, OOM kill on a fault), --timeout
(wall clock), --max-cycles. Each ends the run with its own exit status and one stderr
line, and --stats is still written (README, exit status table)."""
import json
import re

import pytest

from tests.guestbuild import build_asm, build_c, emu

EXIT_OUT_OF_MEMORY, EXIT_CYCLE_LIMIT, EXIT_WALL_TIMEOUT = 123, 124, 125

MALLOC_UNTIL_NULL_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    size_t total = 0, chunk = 1 << 20;
    void *p;
    while ((p = malloc(chunk)) != NULL) { memset(p, 1, chunk); total += chunk; }
    printf("big: malloc returned NULL after %zu MiB\n", total >> 20);
    size_t smalls = 0;
    while ((p = malloc(3000)) != NULL) { memset(p, 2, 3000); smalls++; }
    printf("small: malloc returned NULL after %zu allocations\n", smalls);
    return 0;
}
"""

TOUCH_TOO_MUCH_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    size_t size = 48u << 20;
    char *p = malloc(size);
    printf("malloc: %s\n", p ? "ok" : "NULL");
    fflush(stdout);
    for (size_t i = 0; p && i < size; i += 4096) p[i] = 1;
    puts("survived");
    return 0;
}
"""

SPIN = ".globl _start\n_start:\n1: jmp 1b\n"


def test_malloc_until_failure_gets_null_and_exits_cleanly(tmp_path):
    binary = build_c(MALLOC_UNTIL_NULL_C)
    stats_path = tmp_path / "stats.json"
    result = emu("run", "--max-memory", "64M", "--stats", str(stats_path), str(binary))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    lines = result.stdout.decode().splitlines()
    big = int(re.fullmatch(r"big: malloc returned NULL after (\d+) MiB", lines[0]).group(1))
    # Strict overcommit: CommitLimit is half of the 64 MiB, less the 8 MiB stack and the program.
    assert 8 <= big < 32, lines
    assert re.fullmatch(r"small: malloc returned NULL after \d+ allocations", lines[1])
    stats = json.loads(stats_path.read_text())
    assert stats["exit_status"] == 0 and stats["oom_kills"] == 0
    # Same run, same numbers (the limit is deterministic).
    again = emu("run", "--max-memory", "64M", "--stats", str(tmp_path / "again.json"), str(binary))
    assert again.stdout == result.stdout
    assert json.loads((tmp_path / "again.json").read_text()) == stats


def test_commit_ratio_is_a_kernel_parameter():
    binary = build_c(MALLOC_UNTIL_NULL_C)
    half = emu("run", "--max-memory", "64M", str(binary))
    most = emu("run", "--max-memory", "64M", "--cmdline", "sysctl.vm.overcommit_ratio=90", str(binary))
    mib = [int(re.search(rb"after (\d+) MiB", run.stdout).group(1)) for run in (half, most)]
    assert mib[1] - mib[0] >= 20, mib     # 40% more of 64 MiB may be committed


def test_a_fault_with_no_free_frame_is_an_oom_kill(tmp_path):
    binary = build_c(TOUCH_TOO_MUCH_C)
    stats_path = tmp_path / "stats.json"
    # overcommit_memory=1 (always): the 48 MiB malloc succeeds; touching it runs out of frames.
    result = emu("run", "--max-memory", "32M", "--cmdline", "sysctl.vm.overcommit_memory=1",
                 "--stats", str(stats_path), str(binary))
    assert result.returncode == EXIT_OUT_OF_MEMORY, result.stderr
    assert result.stdout == b"malloc: ok\n"
    (line,) = result.stderr_lines
    assert "SIGKILL" in line and "out of guest memory (32 MiB)" in line
    stats = json.loads(stats_path.read_text())
    assert stats["oom_kills"] == 1


def test_strict_overcommit_refuses_the_same_malloc():
    binary = build_c(TOUCH_TOO_MUCH_C)
    result = emu("run", "--max-memory", "32M", str(binary))
    assert (result.returncode, result.stdout) == (0, b"malloc: NULL\nsurvived\n")


def test_wall_clock_timeout_ends_the_run_and_writes_stats(tmp_path):
    binary = build_asm(SPIN)
    stats_path = tmp_path / "stats.json"
    result = emu("run", "--timeout", "0.5", "--stats", str(stats_path), str(binary))
    assert result.returncode == EXIT_WALL_TIMEOUT
    assert result.stderr_lines == ["emu: wall-clock timeout of 0.5 s reached"]
    assert json.loads(stats_path.read_text())["instructions"] > 0


def test_the_limits_have_distinct_exit_statuses():
    assert len({EXIT_OUT_OF_MEMORY, EXIT_CYCLE_LIMIT, EXIT_WALL_TIMEOUT, 2, 70}) == 5
    spin = build_asm(SPIN)
    assert emu("run", "--max-cycles", "100000", str(spin)).returncode == EXIT_CYCLE_LIMIT


FUTEX_WAIT_FOREVER = r"""
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
int word;
int main(void) { syscall(SYS_futex, &word, FUTEX_WAIT, 0, 0, 0, 0); return 3; }
"""


def test_a_deadlocked_guest_is_reported_not_a_clean_exit(tmp_path):
    """The only thread waits on a futex nobody will wake: Linux would sleep
    forever; the run ends with the cycle-limit status and says why."""
    stats_path = tmp_path / "stats.json"
    result = emu("run", "--stats", str(stats_path), str(build_c(FUTEX_WAIT_FOREVER)))
    assert result.returncode == EXIT_CYCLE_LIMIT
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith(
        "emu: deadlock: every guest thread is asleep and nothing can wake one"), result.stderr_lines
    assert json.loads(stats_path.read_text())["syscall_counts"]["202"] == 1     # futex, never woken


def test_memory_too_small_to_load_the_program():
    binary = build_c(MALLOC_UNTIL_NULL_C)
    result = emu("run", "--max-memory", "4M", str(binary))
    assert result.returncode == EXIT_OUT_OF_MEMORY
    (line,) = result.stderr_lines
    assert "too small to load" in line


@pytest.mark.parametrize("option, value, message", [
    ("--max-memory", "3M", "between 4M and 64G"),
    ("--max-memory", "1T", "not a size"),
    ("--max-memory", "12345", "multiple of 4 KiB"),
    ("--max-memory", "lots", "not a size"),
    ("--timeout", "-1", "must be positive"),
    ("--timeout", "soon", "not a number"),
])
def test_bad_limit_values_are_one_line_errors(option, value, message):
    result = emu("run", option, value, "x")
    assert result.returncode == 2
    (line,) = result.stderr_lines
    assert option in line and message in line


def test_bad_sysctl_value_is_a_usage_error():
    binary = build_asm(SPIN)
    result = emu("run", "--cmdline", "sysctl.vm.overcommit_memory=7", str(binary))
    assert result.returncode == 2
    (line,) = result.stderr_lines
    assert "sysctl.vm.overcommit_memory=7" in line


def test_timeout_reaches_a_guest_that_never_leaves_unicorn(monkeypatch, capsys):
    """--timeout must end a run even when guest code never returns to Python
    (simulated: every block priced at zero cycles, so no deadline is ever
    reached); the limiter kicks the machine out of Unicorn from a thread."""
    from emu_x86.emu.machine import Machine
    from emu_x86.emucli.main import main
    binary = build_asm(".globl _start\n_start:\n1:  .byte 0x48, 0x64, 0x0f, 0x1c, 0xeb\n    jns 1b\n")
    monkeypatch.setattr(Machine, "price_block", lambda self, vcpu, address, size: (0, 0, 0, 0))
    assert main(["run", "--timeout", "0.5", str(binary)]) == EXIT_WALL_TIMEOUT
    assert "wall-clock timeout of 0.5 s reached" in capsys.readouterr().err
