"""Running one case natively and under ``emu run``, and classifying the result.

kselftest's exit statuses: 0 pass, 4 skip (KSFT_SKIP), anything else fail.
Native runs happen as root and, where the host lets us switch, as uid 1000
(the uid the emulated kernel gives its guest: ``setpriv --reuid 1000 --regid
1000 --clear-groups``), each from a fresh temporary folder the user owns, in
its own session so a timeout kills every process the test forked.  Under
emu the same binary runs with ``--timeout`` (exit 125) and the vCPU count and
profile the case asks for; exit 124 is emu's deadlock/max-cycles stop, 70 an
internal emulator error, 128+N a fatal signal.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

GUEST_UID = 1000
KSFT_SKIP = 4
EMU_DEADLOCK = 124
EMU_TIMEOUT = 125
EMU_INTERNAL = 70
_UNIMPLEMENTED = re.compile(r"emu: unimplemented syscall (\d+)")
# Lines that name what went wrong, strongest first: kselftest's "not ok" and
# "Bail out!", the x86 tests' [FAIL], futex's "FAIL"/"ERROR" results, assert(3),
# emu's own one-line reports; then any line saying error/fail that is not an
# expected failure ("Failed as expected").
_FAILURE_LINES = (
    re.compile(r"^not ok|\[FAIL\]|Bail out|Assertion .* failed|\bFAIL\b|\bERROR\b|emu: (?!unimplemented)"),
    re.compile(r"(?<!as )(error|fail)(?!.*expected)", re.IGNORECASE),
)


@dataclass
class Run:
    outcome: str                    # pass, fail, skip, timeout, signal, emu-error, not-run
    status: int | None = None
    seconds: float = 0.0
    unimplemented: list[int] = field(default_factory=list)   # syscall numbers, first warning first
    first_failure: str = ""         # the first line that reports a failure
    tail: list[str] = field(default_factory=list)            # last lines of stderr (else stdout)
    log: str = ""                   # where the full output was written

    def cell(self) -> str:
        """The report's table cell."""
        if self.outcome == "not-run":
            return "—"
        if self.outcome == "timeout":
            return f"timeout ({self.seconds:.0f} s)"
        if self.outcome == "signal":
            return f"**{_signal_name(self.status)}** ({self.status})"
        if self.outcome in ("pass", "skip"):
            return f"{self.outcome} ({self.status})"
        return f"**{self.outcome}** ({self.status})"

    def to_json(self) -> dict:
        return asdict(self)


def _signal_name(status: int | None) -> str:
    if status is None:
        return "signal"
    number = status - 128 if status > 128 else -status
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@functools.lru_cache(maxsize=1)
def syscall_names() -> dict[int, str]:
    """x86-64 syscall numbers to names, from the host's <asm/unistd_64.h>."""
    names = {}
    for header in (Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), Path("/usr/include/asm/unistd_64.h")):
        if header.is_file():
            for match in re.finditer(r"#define __NR_(\w+)\s+(\d+)", header.read_text()):
                names[int(match.group(2))] = match.group(1)
            break
    return names


def describe_syscall(number: int) -> str:
    name = syscall_names().get(number)
    return f"{number} ({name})" if name else str(number)


def classify(status: int, timed_out: bool, under_emu: bool, signaled: bool) -> str:
    """``signaled``: the host saw a signal death, or emu reported the guest killed
    by one (its exit status 128+N alone could also be a plain exit(128+N), as
    futex's RET_ERROR, -2, exits 254)."""
    if timed_out or (under_emu and status == EMU_TIMEOUT):
        return "timeout"
    if status == 0:
        return "pass"
    if status == KSFT_SKIP:
        return "skip"
    if under_emu and status == EMU_INTERNAL:
        return "emu-error"
    if signaled:
        return "signal"
    return "fail"


_CACHE_PATH = re.compile(r"/\S*/linux-source-6\.12/")
_CACHED_BINARY = re.compile(r"\b[a-z0-9]+-(\w+)-[0-9a-f]{16}\b")


def shorten(line: str) -> str:
    """A line without the cache's long paths: the source tree becomes ``linux/``,
    a cached binary's name its program name."""
    return _CACHED_BINARY.sub(r"\1", _CACHE_PATH.sub("linux/", line.strip()))[:240]


def evidence(stdout: str, stderr: str) -> tuple[list[int], str, list[str]]:
    """Unimplemented syscall numbers (in order), the first failure line, the last stderr lines."""
    unimplemented = []
    for match in _UNIMPLEMENTED.finditer(stderr):
        number = int(match.group(1))
        if number not in unimplemented:
            unimplemented.append(number)
    first = ""
    lines = (stdout + "\n" + stderr).splitlines()
    for pattern in _FAILURE_LINES:
        first = next((shorten(line) for line in lines
                      if pattern.search(line) and not _UNIMPLEMENTED.search(line)), "")
        if first:
            break
    source = stderr if stderr.strip() else stdout
    tail = [shorten(line) for line in source.strip().splitlines()[-3:]]
    return unimplemented, first, tail


def _run(command: list[str], cwd: Path, timeout_s: float) -> tuple[int, bool, bool, str, str, float]:
    """(status, timed out, killed by a signal, stdout, stderr, seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)      # the test and everything it forked
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    status = proc.returncode
    signaled = status < 0
    if signaled:
        status = 128 - status                       # as a shell reports a signal death
    return status, timed_out, signaled, out.decode(errors="replace"), err.decode(errors="replace"), \
        time.monotonic() - started


_EMU_KILLED = re.compile(r"^emu: guest killed by SIG", re.MULTILINE)


def _write_log(log_path: Path, command: list[str], status, stdout: str, stderr: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(command)}\nexit status: {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")


def can_switch_uid() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def run_native(binary: Path, argv: list[str], uid: int | None, timeout_s: float, log_path: Path) -> Run:
    """The binary on the host, from a fresh folder; ``uid`` None runs as ourselves."""
    with tempfile.TemporaryDirectory(prefix="emu-conformance-") as scratch:
        folder = Path(scratch)
        copy = folder / binary.name
        shutil.copyfile(binary, copy)
        copy.chmod(0o755)
        command = [str(copy), *argv]
        if uid is not None:
            os.chown(folder, uid, uid)
            folder.chmod(0o755)
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        status, timed_out, signaled, out, err, seconds = _run(command, folder, timeout_s)
    _write_log(log_path, command, status, out, err)
    _, first, tail = evidence(out, err)
    return Run(classify(status, timed_out, False, signaled), status, seconds, [], first, tail, str(log_path))


def run_emu(emu: str, binary: Path, argv: list[str], cpus: int, profile: str | None, timeout_s: float,
            log_path: Path) -> Run:
    options = ["--cpus", str(cpus), "--timeout", str(timeout_s)]
    if profile:
        options += ["--profile", profile]
    command = [emu, "run", *options, str(binary), *argv]
    with tempfile.TemporaryDirectory(prefix="emu-conformance-") as scratch:
        # emu's own --timeout ends the run first; this is the backstop.
        status, timed_out, _, out, err, seconds = _run(command, Path(scratch), timeout_s + 60)
    _write_log(log_path, command, status, out, err)
    unimplemented, first, tail = evidence(out, err)
    signaled = bool(_EMU_KILLED.search(err))
    return Run(classify(status, timed_out, True, signaled), status, seconds, unimplemented, first, tail,
               str(log_path))
