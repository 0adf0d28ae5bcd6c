"""``emu run --strace`` / ``emu strace`` (emu_x86/kernel/strace/): the syscall log, checked
line by line against the host's ``strace -f`` of the same static glibc binary
(addresses and pids masked), plus the decoders' own spellings."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emu_x86.kernel.strace import decode
from emu_x86.kernel.strace.names import SYSCALL_NAMES, syscall_name
from tests.guestbuild import build_c, emu, missing_prerequisite

PROGRAM = r"""
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static void on_usr1(int signo) { (void)signo; }
static void *worker(void *arg) { write(1, "thread\n", 7); return arg; }
int main(void) {
    getppid();                                   /* marks the start of the compared part */
    int fd = open("/nonexistent/file", O_RDONLY | O_CLOEXEC);
    close(-1);
    char buf[100];
    memset(buf, 'x', sizeof buf);
    buf[99] = '\n';
    write(1, buf, sizeof buf);
    write(1, "a\tb\001c\3774\n", 8);
    struct timespec ts = {0, 1000};
    nanosleep(&ts, NULL);
    void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(p, 4096, PROT_READ);
    munmap(p, 8192);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    kill(getpid(), SIGUSR1);
    getppid();                                   /* marks the end of the single-task part */
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return fd == -1 ? 3 : 0;
}
"""

_ADDRESS = re.compile(r"0x[0-9a-f]+")


def _normalise(line: str, pids: dict[str, str]) -> str:
    line = _ADDRESS.sub("ADDR", line)
    line = re.sub(r"si_uid=\d+", "si_uid=UID", line)                  # emu's guest runs as uid 1000
    line = re.sub(r"^(getppid\(\) +=) \d+$", r"\1 PPID", line)      # emu's first process has no real parent
    # pids in the order they first appear (the tracee is 1000 here, anything on the host)
    def pid(match):
        return match.group(1) + pids.setdefault(match.group(2), f"PID{len(pids)}")
    line = re.sub(r"(\[pid +|si_pid=|kill\(|^getpid\(\) += )(\d+)", pid, line)
    return re.sub(r"\) +=", ") =", line)     # pids of other widths move the result column


def _between_markers(lines: list[str]) -> list[str]:
    marks = [i for i, line in enumerate(lines) if line.startswith("getppid()")]
    assert len(marks) == 2, lines
    pids: dict[str, str] = {}
    return [_normalise(line, pids) for line in lines[marks[0]:marks[1] + 1]]


@pytest.fixture(scope="module")
def program() -> Path:
    return build_c(PROGRAM, "-pthread")


def test_log_matches_host_strace_line_by_line(program, tmp_path):
    if shutil.which("strace") is None:
        missing_prerequisite("strace is not installed")
    # strace's log on stderr (with -o FILE, -f would prefix every line with the pid).
    host = subprocess.run(["strace", "-f", str(program)], capture_output=True, timeout=60)
    if host.returncode != 3:
        missing_prerequisite(f"strace cannot trace here: {host.stderr.decode(errors='replace')[:200]}")
    ours_log = tmp_path / "emu.log"
    ours = emu("strace", "--strace-output", str(ours_log), str(program))
    assert ours.returncode == 3, ours.stderr
    expected = _between_markers(host.stderr.decode().splitlines())
    got = _between_markers(ours_log.read_text().splitlines())
    assert got == expected
    # The calls the issue names, as they read (addresses masked).
    text = "\n".join(got)
    assert 'openat(AT_FDCWD, "/nonexistent/file", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)' in text
    assert 'write(1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"..., 100) = 100' in text
    assert 'write(1, "a\\tb\\1c\\3774\\n", 8)' in text
    assert "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=PID0, si_uid=UID} ---" in text


def test_threads_exits_and_unfinished_calls(program):
    run = emu("strace", "--cpus", "2", str(program))
    assert run.returncode == 3
    lines = run.stderr.decode().splitlines()
    assert lines[0].startswith('execve("') and lines[0].endswith(" = 0")
    assert any(re.match(r"\[pid +1000\] clone3\(\{flags=CLONE_VM\|.* => \{parent_tid=\[1001\]\}, 88\) += 1001",
                        line) for line in lines), lines
    assert any(re.match(r"\[pid +1001\] exit\(0\) += \?$", line) for line in lines)
    assert any(re.match(r"\[pid +1001\] \+\+\+ exited with 0 \+\+\+$", line) for line in lines)
    assert lines[-2:] == ["exit_group(3)                           = ?", "+++ exited with 3 +++"]
    # Every call that slept and was interrupted by another task's line is resumed later.
    unfinished = [line for line in lines if line.endswith("<unfinished ...>")]
    resumed = [line for line in lines if "resumed>" in line]
    assert len(unfinished) == len(resumed)


def test_unimplemented_calls_are_named():
    assert syscall_name(294) == "inotify_init1"
    assert syscall_name(462) == "mseal"
    assert syscall_name(0x1FF) == "syscall_0x1ff"


def test_names_agree_with_the_host_header():
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if not header.exists():
        missing_prerequisite("no <asm/unistd_64.h>")
    for match in re.finditer(r"#define __NR_(\w+)\s+(\d+)", header.read_text()):
        assert SYSCALL_NAMES[int(match.group(2))] == match.group(1)


def test_decoder_spellings():
    assert decode.quote(b'say "hi"\\\n\0' + b"7") == '"say \\"hi\\"\\\\\\n\\0007"'
    assert decode.quote(b"\0x") == '"\\0x"'
    assert decode.error_result(errno.EAGAIN) == "-1 EAGAIN (Resource temporarily unavailable)"
    assert decode.error_result(512).startswith("? ERESTARTSYS")
    assert decode.sigset(0) == "[]" and decode.sigset((1 << 64) - 1) == "~[]"
    assert decode.sigset(1 << 16) == "[CHLD]"
    assert decode.flags(0x22, decode.MAP_FLAGS) == "MAP_ANONYMOUS|0x2"


def test_stats_stay_parseable_on_their_own_stream(program, tmp_path):
    """--stats /dev/fd/3: the JSON alone on fd 3, whatever the guest and --strace write to stderr."""
    script = f"exec 3>{tmp_path / 'stats.json'}; exec \"$0\" -m emu_x86.emucli run --strace --stats /dev/fd/3 {program}"
    run = subprocess.run(["bash", "-c", script, sys.executable], capture_output=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent,
                         env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})
    assert run.returncode == 3, run.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["exit_status"] == 3 and stats["syscalls"] > 10
    assert b"exit_group(3)" in run.stderr


def test_a_fault_is_logged_as_strace_logs_it():
    """A fault with no handler: the signal line with its siginfo, then the kill, as strace -f prints them."""
    binary = build_c("int main(void) { *(volatile int *)16 = 1; return 0; }\n")
    run = emu("strace", str(binary))
    assert run.returncode == 128 + 11
    lines = run.stderr.decode().splitlines()
    index = lines.index("--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---")
    assert lines[index + 1] == "+++ killed by SIGSEGV +++"
    if shutil.which("strace") is not None:
        host = subprocess.run(["strace", "-f", str(binary)], capture_output=True, timeout=60)
        assert host.stderr.decode().splitlines()[-2:] == lines[index:index + 2]
