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
    line = re.sub(r"si_([us]time)=\d+", r"si_\1=T", line)              # CPU time a host child used
    line = re.sub(r"tv_nsec=\d+", "tv_nsec=NS", line)                  # a sleep's time left
    line = re.sub(r"^(getppid\(\) +=) \d+$", r"\1 PPID", line)      # emu's first process has no real parent
    # pids in the order they first appear (the tracee is 1000 here, anything on the host)
    def pid(match):
        return match.group(1) + pids.setdefault(match.group(2), f"PID{len(pids)}")
    line = re.sub(r"(\[pid +|si_pid=|kill\(|wait4\(|^getpid\(\) += |^clone\(.*\) += )(\d+)", pid, line)
    line = re.sub(r"(<\.\.\. (?:wait4|clone|clone3|fork|vfork) resumed>.*\) += )(\d+)$", pid, line)
    line = re.sub(r"^(wait4\(.*\) += )(\d+)$", pid, line)         # a wait4 the host did not split
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
    # No "[pid N]": the process was alone when the call began (strace writes the leader then).
    assert any(re.match(r"clone3\(\{flags=CLONE_VM\|.* => \{parent_tid=\[1001\]\}, 88\) += 1001",
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


SIGNALS_PROGRAM = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static int fds[2];
static int alarms;
static void on_alarm(int signo) {
    (void)signo;
    if (++alarms == 2) write(fds[1], "x", 1);
}
int main(void) {
    pipe(fds);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    getppid();
    /* a read an SA_RESTART handler interrupts twice, the second run feeding it */
    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    char c;
    ssize_t n = read(fds[0], &c, 1);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    /* a nanosleep a handler interrupts: EINTR whatever SA_RESTART says, rem filled */
    struct itimerval once = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &once, NULL);
    struct timespec ts = {5, 0}, rem = {0, 0};
    int r = nanosleep(&ts, &rem);
    /* signals ignored by default or by SIG_IGN: strace -f still shows them */
    kill(getpid(), SIGWINCH);
    kill(getpid(), SIGUSR2);
    kill(getpid(), SIGCHLD);
    getppid();
    return n == 1 && r == -1 && rem.tv_sec == 4 && rem.tv_nsec > 900000000 ? 0 : 1;
}
"""

FORK_WAIT_PROGRAM = r"""
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    getppid();
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int status;
    waitpid(pid, &status, 0);
    getppid();
    return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1;
}
"""


def _host_and_emu_logs(binary: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    if shutil.which("strace") is None:
        missing_prerequisite("strace is not installed")
    host = subprocess.run(["strace", "-f", str(binary)], capture_output=True, timeout=60)
    if host.returncode != 0:
        missing_prerequisite(f"strace cannot trace here: {host.stderr.decode(errors='replace')[:200]}")
    log = tmp_path / "emu.log"
    ours = emu("strace", "--strace-output", str(log), str(binary))
    assert ours.returncode == 0, ours.stderr
    # strace's own notice lands inside the clone line on its stream; it is not part of the log.
    host_text = re.sub(r"strace: Process \d+ attached\n", "", host.stderr.decode())
    return host_text.splitlines(), log.read_text().splitlines()


def test_restarted_and_interrupted_calls_match_host_strace(tmp_path):
    """A read interrupted by an SA_RESTART handler shows ``? ERESTARTSYS`` and the
    signal, then runs again; an interrupted nanosleep shows ERESTART_RESTARTBLOCK
    with the time left and rt_sigreturn's EINTR; ignored signals get their lines."""
    binary = build_c(SIGNALS_PROGRAM)
    host, ours = _host_and_emu_logs(binary, tmp_path)
    expected, got = _between_markers(host), _between_markers(ours)
    assert got == expected
    restart = "read(3, ADDR, 1) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    assert got.count(restart) == 2
    index = got.index(restart)
    assert got[index + 1:index + 4] == ["--- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---",
                                        "rt_sigreturn({mask=[]}) = 0", restart]
    assert 'read(3, "x", 1) = 1' in got
    sleep = next(i for i, line in enumerate(got) if line.startswith("clock_nanosleep("))
    assert got[sleep] == ("clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=5, tv_nsec=NS}, {tv_sec=4, tv_nsec=NS})"
                          " = ? ERESTART_RESTARTBLOCK (Interrupted by signal)")
    assert got[sleep + 2] == "rt_sigreturn({mask=[]}) = -1 EINTR (Interrupted system call)"
    for name in ("SIGWINCH", "SIGUSR2", "SIGCHLD"):
        assert f"--- {name} {{si_signo={name}, si_code=SI_USER, si_pid=PID0, si_uid=UID}} ---" in got


def _per_task(lines: list[str]) -> dict[str, list[str]]:
    """Each task's own lines in order, a call split by another task's line joined
    again (strace -f interleaves tasks as the host happened to schedule them)."""
    tasks: dict[str, list[str]] = {}
    # PID0 is the child (clone's result); every other line is the parent's, with
    # or without its [pid N] leader (strace -f prints leaders only while more
    # than one task is traced, so which of the parent's lines carry one depends
    # on when the child was reaped).
    for line in lines:
        match = re.match(r"\[pid +(\w+)\] (.*)", line)
        tid, text = (match.group(1), match.group(2)) if match else ("parent", line)
        if tid != "PID0":
            tid = "parent"
        calls = tasks.setdefault(tid, [])
        resumed = re.match(r"<\.\.\. \w+ resumed>(.*)", text)
        if resumed and calls and calls[-1].endswith(" <unfinished ...>"):
            calls[-1] = calls[-1][:-len(" <unfinished ...>")] + resumed.group(1)
        else:
            calls.append(text)
    return {tid: [re.sub(r" +", " ", line) for line in calls] for tid, calls in tasks.items()}


def test_fork_and_wait_match_host_strace(tmp_path):
    """fork's clone line as strace names its arguments, the parent's wait4 resumed
    after the child's exit, and the SIGCHLD line (ignored by default) after it
    (on the host that line may come earlier: see below)."""
    binary = build_c(FORK_WAIT_PROGRAM)
    host, ours = _host_and_emu_logs(binary, tmp_path)
    expected, got = _between_markers(host), _between_markers(ours)
    # When the host's child exits before the parent reaches wait4, its SIGCHLD
    # is delivered on an earlier return to user, so the line's place among the
    # parent's calls is the host's timing: compare it apart from the sequence.
    def without_sigchld(tasks):
        return {tid: [line for line in calls if not line.startswith("--- SIGCHLD")] for tid, calls in tasks.items()}

    def sigchld_lines(lines):
        return [line for line in lines if "--- SIGCHLD" in line]

    assert without_sigchld(_per_task(got)) == without_sigchld(_per_task(expected))
    assert [line.split("--- ", 1)[1] for line in sigchld_lines(got)] == \
        [line.split("--- ", 1)[1] for line in sigchld_lines(expected)]
    assert got[1] == "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, " \
                     "child_tidptr=ADDR) = PID0"
    assert got[-3:] == ["<... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, NULL) = PID0",
                        "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=PID0, si_uid=UID, si_status=7,"
                        " si_utime=T, si_stime=T} ---", "getppid() = PPID"]
