"""Guest test programs that carry their expectations in a header comment.

Shared by the pytest plugin (``emu_x86/emucli/pytest_plugin.py``) and ``emu test DIR``
(``emu_x86/emucli/testcmd.py``).  A guest test is a ``.S``/``.s``/``.asm``/``.c`` file,
a Rust (``.rs``) or Go (``.go``) program, or a busybox shell script (``.sh``,
run as ``busybox sh -c SCRIPT``), whose leading comment holds directives, one
per line (``KEYWORD: value``; the comment leaders ``/*``, ``*``, ``//``, ``#``
and ``;`` are skipped)::

    /* TDPBSSD of two seeded tiles.
     * CPUS: 1 2                  one test per vCPU count
     * CMDLINE: sched_quantum=50000   one test per CMDLINE line (kernel policies)
     * PROFILE: spr zen4          one test per cost profile
     * RUN: --seed 3              more `emu run` options
     * ARGS: one "two words"      guest arguments
     * ENV: LC_ALL=C             guest environment (default: empty)
     * STDIN: a line              one line of guest stdin per directive
     * CFLAGS: -mamx-tile         extra compiler flags (.c: gcc -static -O2; .rs:
     *                            rustc; .go: go build)
     * BUILD: gcc                 .S/.s: link with gcc -nostdlib -static instead
     *                            of emu's own assembler; .rs: rustc, .go: go (the
     *                            default for those suffixes; see guestbuild.py)
     * FS: data                   map the folder data/ (next to the test) read-only
     *                            as the guest's / (emu run --fs)
     * FS-RW: data                a fresh copy of data/ per run, read-write
     *                            (--fs-rw); `FS-RW: -` starts from an empty folder
     * INSTALL: prog.c /bin/prog  build prog.c (next to the test; or `busybox`)
     *                            into the run's writable root at /bin/prog
     * REQUIRES: busybox          a toolchain the test needs (rustc, go, busybox,
     *                            gcc): missing, the test is skipped -- under
     *                            CI=true it fails instead
     * EXIT: 0                    exit status (default 0) or a signal: SIGILL
     * STDOUT: line               the exact stdout, one directive per line
     * CHECK: text {{regex}}      FileCheck-style matching on stdout; also
     *                            CHECK-NEXT, CHECK-SAME, CHECK-NOT, CHECK-EMPTY
     * CHECK-STDERR: text         the same on stderr (in order)
     * STATS: nm_faults == 1      bounds on `emu run --stats` values
     * TIMEOUT: 60                seconds (default 300)
     * XFAIL: reason              a known bug: the test is expected to fail
     *                            (and reported when it starts passing)
     * EXPECT-RACE: 10 random pct a concurrency bug the default schedule hides:
     *                            the expectations above hold under the default
     *                            scheduler, and some seed among 1..10 of each
     *                            named exploring policy (`emu run --sched`;
     *                            default: random) must break them. Reported as
     *                            found with the seed and its replay command.
     * SCHEDULES: 200 random pct  the expectations hold under every seed 1..200
     *                            of each named policy (a correct concurrent program)
     *                            (pct: a first run measures the program's k,
     *                            passed to every seed as --sched-steps K)
     */

     * EVENTS: syscall {{.*}}name=write    CHECK-style patterns, in order, over the
     *                            run's event trace (`emu trace --events-only
     *                            --format text`, each line without its cycle/cpu/task
     *                            columns: "syscall nr=1 name=write args=[...]")

A file is a test when its header holds at least one of EXIT, STDOUT, CHECK*,
STATS, EVENTS.  Any other ``WORD:`` in the header is an error (a misspelled
directive would otherwise drop its expectation silently).
"""
from __future__ import annotations

import atexit
import difflib
import functools
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from emu_x86.emucli import guestbuild, toolchains
from emu_x86.emucli.guestbuild import BuildError, ToolchainMissing

SUFFIXES = (".S", ".s", ".asm", ".c", ".rs", ".go", ".sh")
DEFAULT_TIMEOUT_S = 300

# A directive: optional comment leader, an upper-case keyword, a colon.
_DIRECTIVE = re.compile(r"^\s*(?:/\*+|\*+|//+|#+|;+)?\s*([A-Z][A-Z0-9-]*):(?:\s|$)(.*)$")
_CHECK_KINDS = ("CHECK", "CHECK-NEXT", "CHECK-SAME", "CHECK-NOT", "CHECK-EMPTY")
KEYWORDS = {"CPUS", "CMDLINE", "PROFILE", "RUN", "ARGS", "ENV", "STDIN", "CFLAGS", "BUILD", "EXIT",
            "STDOUT", "CHECK-STDERR", "STATS", "TIMEOUT", "EVENTS", "XFAIL", "FS", "FS-RW", "INSTALL", "REQUIRES",
            "EXPECT-RACE", "SCHEDULES", *_CHECK_KINDS}
# The exploring policies of `emu run --sched` (emu_x86/emu/sched_policy.py) that
# EXPECT-RACE:/SCHEDULES: and `emu test --schedules` may name.
EXPLORING_POLICIES = ("random", "pct")
# The smallest k measure_pct_steps gives: at least emu run's default depth
# (3) of steps for its change points to be drawn from.
PCT_MIN_STEPS = 3
_MARKS_A_TEST = {"EXIT", "STDOUT", "STATS", "CHECK-STDERR", "EVENTS", *_CHECK_KINDS}
_STATS_EXPR = re.compile(r"^([A-Za-z_][\w.*]*)\s*(==|!=|<=|>=|<|>)\s*(-?(?:0x[0-9a-fA-F_]+|[0-9_]+))$")
_OPERATORS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
              "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class HeaderError(Exception):
    """A malformed header directive; the message is one line naming file:line."""


@dataclass
class Directive:
    keyword: str
    value: str
    line: int          # 1-based line in the source file


@dataclass
class Variant:
    """One concrete run of a guest test: the parameters chosen for it."""
    cpus: int | None = None
    cmdline: str | None = None
    profile: str | None = None
    # Schedule exploration: ``sched`` with ``seed`` is one concrete schedule
    # (`emu run --sched S --seed N`); ``explore`` ("race": EXPECT-RACE:,
    # "exact": SCHEDULES: or `emu test --schedules`) with ``schedules`` runs
    # seeds 1..schedules of ``sched`` (run_exploration).
    sched: str | None = None
    seed: int | None = None
    explore: str | None = None
    schedules: int = 0
    # --sched pct's k and d (`emu run --sched-steps/--sched-depth`); None:
    # emu run's defaults. run_exploration measures k for each program.
    sched_steps: int | None = None
    sched_depth: int | None = None

    @property
    def id(self) -> str:
        parts = []
        if self.explore is not None:
            parts.append(f"{'race' if self.explore == 'race' else 'schedules'}={self.sched}:{self.schedules}")
        elif self.sched is not None:
            parts.append(f"sched={self.sched}:{self.seed}")
        if self.cpus is not None:
            parts.append(f"cpus={self.cpus}")
        if self.profile is not None:
            parts.append(f"profile={self.profile}")
        if self.cmdline is not None:
            parts.append(self.cmdline.replace(" ", ",") or "cmdline=")
        return "-".join(parts)


@dataclass
class GuestSpec:
    path: Path
    run_options: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    cflags: list[str] = field(default_factory=list)
    build_kind: str = "emu"         # emu, gcc, rustc, go, busybox (guestbuild.py)
    fs: Path | None = None          # FS: mapped read-only
    fs_rw: Path | str | None = None  # FS-RW: copied per run ("" for an empty root)
    installs: list[tuple[str, str]] = field(default_factory=list)    # INSTALL: (source, guest path)
    requires: list[str] = field(default_factory=list)
    exit_status: int = 0
    exit_label: str = "0"
    stdout_lines: list[str] | None = None
    checks: list[Directive] = field(default_factory=list)
    stderr_checks: list[Directive] = field(default_factory=list)
    stats: list[Directive] = field(default_factory=list)
    events: list[Directive] = field(default_factory=list)     # EVENTS: patterns over the event trace
    timeout_s: float = DEFAULT_TIMEOUT_S
    xfail: str | None = None        # a known bug: failing is expected, passing is reported
    cpus: list[int] = field(default_factory=list)
    cmdlines: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    # EXPECT-RACE: / SCHEDULES: as (schedules, policy) pairs.
    races: list[tuple[int, str]] = field(default_factory=list)
    schedules: list[tuple[int, str]] = field(default_factory=list)

    @property
    def build_with_gcc(self) -> bool:
        return self.build_kind == "gcc" and self.path.suffix in guestbuild.ASSEMBLY_SUFFIXES

    def variants(self) -> list[Variant]:
        """The plain runs, then one exploration per EXPECT-RACE:/SCHEDULES: policy for each."""
        plain = [Variant(c, m, p) for c, m, p in itertools.product(self.cpus or [None], self.cmdlines or [None],
                                                                  self.profiles or [None])]
        explorations = [Variant(v.cpus, v.cmdline, v.profile, sched=policy, explore=kind, schedules=count)
                        for v in plain
                        for kind, pairs in (("race", self.races), ("exact", self.schedules))
                        for count, policy in pairs]
        return plain + explorations


# ---- parsing ---------------------------------------------------------------

def header_directives(text: str, include_unknown: bool = False) -> list[Directive]:
    """The directives of the leading comment block (stops at the first code line);
    with ``include_unknown``, also ``WORD:`` lines whose keyword is not one of KEYWORDS."""
    directives = []
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not in_block and not stripped:
            continue
        opens_block = stripped.startswith("/*")
        is_comment = in_block or opens_block or stripped.startswith(("//", "#", ";"))
        if not is_comment:
            break
        if stripped.startswith("#") and re.match(r"#\s*(include|define|if|ifdef|ifndef|endif|else|undef)\b",
                                                 stripped):
            break          # the C preprocessor's lines end the header in .S/.c files
        if opens_block and "*/" not in stripped[2:]:
            in_block = True
        elif in_block and "*/" in stripped:
            in_block = False
        body = line.split("*/")[0] if "*/" in line else line
        match = _DIRECTIVE.match(body)
        if match and (match.group(1) in KEYWORDS or include_unknown):
            value = match.group(2)
            directives.append(Directive(match.group(1), value.rstrip(), number))
    return directives


def _near_keyword(word: str) -> str | None:
    """The directive ``word`` is probably a misspelling of (EXITT -> EXIT), if any."""
    close = difflib.get_close_matches(word, sorted(KEYWORDS), n=1, cutoff=0.75)
    return close[0] if close else None


def is_guest_test(path: Path) -> bool:
    if path.suffix not in SUFFIXES or not path.is_file():
        return False
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    # A header whose only mark is misspelled (EXITT: 0) is still a test, so the
    # misspelling is reported instead of the file being silently skipped.
    return any(d.keyword in _MARKS_A_TEST or _near_keyword(d.keyword) in _MARKS_A_TEST
               for d in header_directives(text, include_unknown=True))


def _signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def parse_spec(path: Path) -> GuestSpec:
    """Read ``path``'s header; raises HeaderError (one line, file:line) on a bad directive."""
    text = path.read_text(errors="replace")
    spec = GuestSpec(path=path, build_kind=guestbuild.DEFAULT_KIND[path.suffix])
    build_directive = None
    stdin_lines = []
    stdout_variables: dict[str, str] = {}     # FileCheck variables defined so far (names only)
    stderr_variables: dict[str, str] = {}

    def fail(directive: Directive, message: str) -> HeaderError:
        return HeaderError(f"{path}:{directive.line}: {directive.keyword}: {message}")

    for d in header_directives(text, include_unknown=True):
        value = d.value.strip()
        kw = d.keyword
        if kw not in KEYWORDS:
            # A test's header is all directives: an unknown one is a typo that
            # would otherwise drop an expectation without a word.
            near = _near_keyword(kw)
            raise fail(d, "unknown directive" + (f" (did you mean {near}:?)" if near else
                                                 f" (known: {', '.join(sorted(KEYWORDS))})"))
        try:
            if kw == "CPUS":
                spec.cpus += [int(word) for word in value.replace(",", " ").split()]
                if not spec.cpus or any(not 1 <= c <= 64 for c in spec.cpus):
                    raise fail(d, f"expected vCPU counts 1-64, got {value!r}")
            elif kw == "CMDLINE":
                spec.cmdlines.append(value)
            elif kw == "PROFILE":
                spec.profiles += value.replace(",", " ").split()
            elif kw == "RUN":
                spec.run_options += shlex.split(value)
            elif kw == "ARGS":
                spec.args += shlex.split(value)
            elif kw == "ENV":
                for word in shlex.split(value):
                    key, eq, val = word.partition("=")
                    if not eq or not key:
                        raise fail(d, f"expected KEY=VALUE, got {word!r}")
                    spec.env[key] = val
            elif kw == "STDIN":
                stdin_lines.append(d.value)
            elif kw == "CFLAGS":
                spec.cflags += shlex.split(value)
            elif kw == "BUILD":
                allowed = guestbuild.ALLOWED_KINDS[path.suffix]
                if not allowed:
                    raise fail(d, f"a {path.suffix} test always builds with {spec.build_kind}; drop the line")
                if value not in allowed:
                    raise fail(d, f"expected {' or '.join(repr(k) for k in allowed)} for a {path.suffix} source, "
                                  f"got {value!r}")
                spec.build_kind, build_directive = value, d
            elif kw in ("FS", "FS-RW"):
                if kw == "FS-RW" and value in ("", "-"):
                    spec.fs_rw = ""
                    continue
                folder = (path.parent / value).resolve()
                if not value or not folder.is_dir():
                    raise fail(d, f"expected a folder next to the test, got {value!r}")
                if spec.fs is not None or spec.fs_rw is not None:
                    raise fail(d, "one root per test: FS and FS-RW given together or twice")
                if kw == "FS":
                    spec.fs = folder
                else:
                    spec.fs_rw = folder
            elif kw == "INSTALL":
                words = shlex.split(value)
                if len(words) != 2:
                    raise fail(d, f"expected 'SOURCE GUEST-PATH' (e.g. hello.c /bin/hello), got {value!r}")
                source, guest_path = words
                if source != "busybox":
                    if Path(source).suffix not in (".c", ".rs", ".go", ".S", ".s"):
                        raise fail(d, f"expected busybox or a .c/.rs/.go/.S source, got {source!r}")
                    if not (path.parent / source).is_file():
                        raise fail(d, f"no such file next to the test: {source!r}")
                spec.installs.append((source, guest_path))
            elif kw == "REQUIRES":
                for tool in value.replace(",", " ").split():
                    if tool not in guestbuild.KIND_TOOL.values():
                        raise fail(d, f"unknown tool {tool!r} (known: {', '.join(guestbuild.KIND_TOOL.values())})")
                    spec.requires.append(tool)
            elif kw == "EXIT":
                if re.fullmatch(r"\d+", value):
                    spec.exit_status, spec.exit_label = int(value), value
                elif _signal_number(value.upper()) is not None:
                    spec.exit_status, spec.exit_label = 128 + _signal_number(value.upper()), value.upper()
                else:
                    raise fail(d, f"expected a number or a signal name like SIGSEGV, got {value!r}")
            elif kw == "STDOUT":
                if spec.stdout_lines is None:
                    spec.stdout_lines = []
                spec.stdout_lines.append(d.value)
            elif kw in _CHECK_KINDS:
                if kw != "CHECK-EMPTY" and not value:
                    raise fail(d, "empty pattern")
                _, defined = _compile_pattern(value, stdout_variables)     # reject bad patterns now
                stdout_variables.update(dict.fromkeys(defined, ""))
                spec.checks.append(Directive(kw, value, d.line))
            elif kw == "CHECK-STDERR":
                _, defined = _compile_pattern(value, stderr_variables)
                stderr_variables.update(dict.fromkeys(defined, ""))
                spec.stderr_checks.append(Directive(kw, value, d.line))
            elif kw == "STATS":
                if not _STATS_EXPR.match(value):
                    raise fail(d, f"expected 'NAME OP NUMBER' (OP one of == != < <= > >=), got {value!r}")
                spec.stats.append(Directive(kw, value, d.line))
            elif kw == "XFAIL":
                if not value:
                    raise fail(d, "give the reason (a known bug, an issue number)")
                spec.xfail = value
            elif kw in ("EXPECT-RACE", "SCHEDULES"):
                words = value.replace(",", " ").split()
                if not words or not words[0].isdigit() or int(words[0]) < 1:
                    raise fail(d, f"expected a number of schedules and policies (e.g. '10 random pct'), got {value!r}")
                unknown = [w for w in words[1:] if w not in EXPLORING_POLICIES]
                if unknown:
                    raise fail(d, f"unknown policy {unknown[0]!r} (one of {', '.join(EXPLORING_POLICIES)})")
                pairs = [(int(words[0]), policy) for policy in (words[1:] or ["random"])]
                (spec.races if kw == "EXPECT-RACE" else spec.schedules).extend(pairs)
            elif kw == "TIMEOUT":
                spec.timeout_s = float(value)
            elif kw == "EVENTS":
                if not value:
                    raise fail(d, "empty pattern")
                _compile_pattern(value, {})
                spec.events.append(Directive("CHECK", value, d.line))
        except ValueError as error:
            raise fail(d, str(error)) from None
        except re.error as error:
            raise fail(d, f"bad regular expression: {error}") from None
    if stdin_lines:
        spec.stdin = ("\n".join(stdin_lines) + "\n").encode()
    if spec.cpus and "--cpus" in spec.run_options:
        raise HeaderError(f"{path}: CPUS and RUN: --cpus both given")
    if spec.installs and spec.fs is not None:
        raise HeaderError(f"{path}: INSTALL needs a writable root: use FS-RW instead of FS")
    if build_directive is not None and spec.build_kind == "gcc" and path.suffix == ".asm":
        raise HeaderError(f"{path}:{build_directive.line}: BUILD: gcc does not apply to .asm (Intel syntax)")
    return spec


def program_spec(path: Path) -> GuestSpec:
    """A source built for INSTALL: (no expectations, the suffix's build kind; assembly with gcc)."""
    kind = guestbuild.DEFAULT_KIND[path.suffix]
    return GuestSpec(path=path, build_kind="gcc" if kind == "emu" else kind)


# ---- FileCheck-style matching ----------------------------------------------

def _compile_pattern(pattern: str, variables: dict[str, str]) -> tuple[re.Pattern, list[str]]:
    """Literal text with ``{{regex}}``, ``[[NAME:regex]]`` (define) and ``[[NAME]]`` (use)."""
    out, defined, pos = [], [], 0
    token = re.compile(r"\{\{(.*?)\}\}|\[\[([A-Za-z_]\w*)(?::(.*?))?\]\]")
    for match in token.finditer(pattern):
        out.append(re.escape(pattern[pos:match.start()]))
        if match.group(1) is not None:
            out.append(f"(?:{match.group(1)})")
        elif match.group(3) is not None:
            defined.append(match.group(2))
            out.append(f"(?P<{match.group(2)}>{match.group(3)})")
        else:
            name = match.group(2)
            if name in defined:
                out.append(f"(?P={name})")        # defined earlier in this same pattern
            elif name in variables:
                out.append(re.escape(variables[name]))
            else:
                raise re.error(f"variable [[{name}]] used before it is defined")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out)), defined


@dataclass
class CheckFailure:
    directive: Directive
    message: str
    near_line: int       # 0-based output line where the search started


def run_checks(checks: list[Directive], output: str) -> CheckFailure | None:
    """FileCheck semantics (subset): CHECK finds the next line with the pattern at or
    after the previous match, CHECK-NEXT the line right after it, CHECK-SAME the rest
    of the matched line, CHECK-EMPTY an empty next line, CHECK-NOT nothing between
    the previous and the next positive match (or the end)."""
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    variables: dict[str, str] = {}
    line_no, col = -1, 0          # last match: line index and column after it
    pending_not: list[Directive] = []

    def check_nots(end_line: int, end_col: int | None) -> CheckFailure | None:
        """No pending CHECK-NOT pattern between the last match and (end_line, end_col)."""
        for d in pending_not:
            regex, _ = _compile_pattern(d.value, variables)
            for i in range(max(line_no, 0), min(end_line + 1, len(lines))):
                text = lines[i]
                stop = end_col if (i == end_line and end_col is not None) else len(text)
                begin = col if i == line_no else 0
                if regex.search(text[:stop], begin):
                    return CheckFailure(d, f"excluded pattern {d.value!r} found on output line {i + 1}", i)
        return None

    for d in checks:
        if d.keyword == "CHECK-NOT":
            pending_not.append(d)
            continue
        if d.keyword == "CHECK-EMPTY":
            target = line_no + 1
            if target >= len(lines) or lines[target] != "":
                return CheckFailure(d, f"expected an empty line as output line {target + 1}", target)
            failure = check_nots(target, 0)
            if failure:
                return failure
            pending_not, line_no, col = [], target, 0
            continue
        regex, defined = _compile_pattern(d.value, variables)
        found = None
        if d.keyword == "CHECK":
            for i in range(max(line_no, 0), len(lines)):
                start = col if i == line_no else 0
                match = regex.search(lines[i], start)
                if match:
                    found = (i, match)
                    break
            if not found:
                where = f"after output line {line_no + 1}" if line_no >= 0 else "in the output"
                return CheckFailure(d, f"pattern {d.value!r} not found {where}", max(line_no, 0))
        elif d.keyword == "CHECK-NEXT":
            target = line_no + 1
            match = regex.search(lines[target]) if target < len(lines) else None
            if not match:
                return CheckFailure(d, f"pattern {d.value!r} not on the next output line ({target + 1})",
                                    min(target, len(lines) - 1))
            found = (target, match)
        elif d.keyword == "CHECK-SAME":
            match = regex.search(lines[line_no], col) if 0 <= line_no < len(lines) else None
            if not match:
                return CheckFailure(d, f"pattern {d.value!r} not on the same output line ({line_no + 1})",
                                    max(line_no, 0))
            found = (line_no, match)
        i, match = found
        failure = check_nots(i, match.start())
        if failure:
            return failure
        for name in defined:
            variables[name] = match.group(name)
        pending_not, line_no, col = [], i, match.end()
    return check_nots(len(lines) - 1, None)


# ---- statistics ------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def syscall_numbers() -> dict[str, int]:
    """Syscall names from the kernel's own table (``sys_write`` -> ``write``)."""
    from emu_x86.kernel.syscall_table import SYSCALLS
    return {handler.__name__.removeprefix("sys_"): number for number, handler in SYSCALLS.items()}


def stats_value(stats: dict, name: str) -> int:
    """``nm_faults``, ``syscall_counts.write`` (or ``.1``), ``per_cpu.0.events.syscall``,
    ``per_cpu.*.cycles`` (summed over CPUs). Raises KeyError naming what is missing."""
    parts = name.split(".")
    nodes = [stats]
    walked = []
    for part in parts:
        next_nodes = []
        for node in nodes:
            if isinstance(node, list):
                if part == "*":
                    next_nodes += node
                elif part.isdigit() and int(part) < len(node):
                    next_nodes.append(node[int(part)])
                else:
                    raise KeyError(f"{'.'.join(walked) or 'stats'} has no element {part!r}")
            elif isinstance(node, dict):
                if walked == ["syscall_counts"]:
                    number = part if part.isdigit() else syscall_numbers().get(part)
                    if number is None:
                        raise KeyError(f"unknown syscall name {part!r}")
                    next_nodes.append(node.get(str(number), 0))
                elif walked and walked[-1] == "events":
                    next_nodes.append(node.get(part, 0))   # an event never charged counts 0
                elif part in node:
                    next_nodes.append(node[part])
                else:
                    known = ", ".join(sorted(k for k in node if not isinstance(node[k], (dict, list))))
                    raise KeyError(f"no statistic {'.'.join(walked + [part])!r} (known: {known})")
            else:
                raise KeyError(f"{'.'.join(walked)} is a number, not a table")
        nodes = next_nodes
        walked.append(part)
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in nodes):
        raise KeyError(f"{name!r} is not a number")
    return sum(nodes)


def check_stats(directives: list[Directive], stats: dict) -> list[str]:
    problems = []
    for d in directives:
        name, op, number = _STATS_EXPR.match(d.value).groups()
        try:
            actual = stats_value(stats, name)
        except KeyError as error:
            problems.append(f"STATS: {d.value}  (line {d.line}): {error.args[0]}")
            continue
        if not _OPERATORS[op](actual, int(number.replace("_", ""), 0)):
            problems.append(f"STATS: {d.value}  (line {d.line}) failed: {name} is {actual}")
    return problems


# ---- building and running ----------------------------------------------------

def emu_executable() -> str:
    """The ``emu`` next to this Python (the venv's), else the one on PATH."""
    sibling = Path(sys.executable).with_name("emu")
    if sibling.exists():
        return str(sibling)
    return shutil.which("emu") or "emu"


def guest_argv(spec: GuestSpec) -> list[str]:
    """The guest's arguments: ARGS:, after ``sh -c SCRIPT NAME`` for a busybox script."""
    if spec.build_kind == "busybox":
        return ["sh", "-c", spec.path.read_text(errors="replace"), spec.path.name, *spec.args]
    return list(spec.args)


def run_arguments(spec: GuestSpec, variant: Variant, program: Path, stats_path: str | None,
                  root: Path | str | None = None) -> list[str]:
    """``emu run`` arguments; ``root`` is the run's writable root (FS-RW:/INSTALL:)."""
    options = ["--stats", stats_path] if stats_path else []
    if spec.fs is not None:
        options += ["--fs", str(spec.fs)]
    elif root is not None:
        options += ["--fs-rw", str(root)]
    if variant.cpus is not None:
        options += ["--cpus", str(variant.cpus)]
    if variant.profile is not None:
        options += ["--profile", variant.profile]
    if variant.cmdline is not None:
        options += ["--cmdline", variant.cmdline]
    if variant.sched is not None and variant.seed is not None:
        options += ["--sched", variant.sched, "--seed", str(variant.seed)]
        if variant.sched_depth is not None:
            options += ["--sched-depth", str(variant.sched_depth)]
        if variant.sched_steps is not None:
            options += ["--sched-steps", str(variant.sched_steps)]
    return ["run", *options, *spec.run_options, str(program), *guest_argv(spec)]


def _display_path(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def reproduce_command(spec: GuestSpec, variant: Variant, program: Path, cwd: Path,
                      build_dir: Path | None = None) -> str:
    """A shell line that re-runs exactly this test (same environment, options, stdin)."""
    root = "$ROOT" if guestbuild.needs_root(spec) else None
    args = run_arguments(spec, variant, Path(_display_path(program, cwd)), "-" if spec.stats else None, root)
    if spec.fs is not None:
        args[args.index("--fs") + 1] = _display_path(spec.fs, cwd)
    words = ["env", "-i", *[f"{k}={v}" for k, v in spec.env.items()], emu_executable(), *args]
    quoted = [shlex.quote(w) for w in words]
    if root is not None:
        quoted[quoted.index("'$ROOT'")] = '"$ROOT"'
    if spec.build_kind == "busybox":       # the script itself, not its text inline
        script = spec.path.read_text(errors="replace")
        quoted[quoted.index(shlex.quote(script))] = f'"$(cat {shlex.quote(_display_path(spec.path, cwd))})"'
    line = " ".join(quoted)
    if root is not None and build_dir is not None:
        line = f"{guestbuild.describe_root(spec, build_dir, cwd)} && {line}"
    if spec.stdin:
        line = f"printf %s {shlex.quote(spec.stdin.decode(errors='replace'))} | {line}"
    return f"cd {shlex.quote(str(cwd))} && {line}"


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    stats: dict | None
    timed_out: bool = False
    events: str = ""


_fork_servers = threading.local()
_all_fork_servers: list = []


def _fork_server():
    """This thread's fork server (emu_x86/emucli/forkserver.py), started on first use."""
    server = getattr(_fork_servers, "server", None)
    if server is None:
        from emu_x86.emucli.forkserver import ForkServer
        server = _fork_servers.server = ForkServer()
        _all_fork_servers.append(server)
    return server


@atexit.register
def close_fork_servers() -> None:
    for server in _all_fork_servers:
        server.close()


def run_guest(spec: GuestSpec, variant: Variant, program: Path, cwd: Path, root: Path | None = None) -> RunResult:
    """``emu run`` in a fresh process image: forked from a server that has the imports
    done (the same ``main`` a new process runs), or with EMU_TEST_FRESH_PROCESS=1
    a new ``python -m emu_x86.emucli``.  Either way the guest sees exactly ENV:."""
    with tempfile.TemporaryDirectory(prefix="emu-guest-") as scratch:
        stats_path = os.path.join(scratch, "stats.json")
        args = run_arguments(spec, variant, Path(_display_path(program, cwd)), stats_path, root)
        events_path = os.path.join(scratch, "events.txt")
        if spec.events:
            args[1:1] = ["--trace", events_path, "--events-only", "--format", "text"]
        timed_out = False
        if os.environ.get("EMU_TEST_FRESH_PROCESS"):
            try:
                proc = subprocess.run([sys.executable, "-m", "emu_x86.emucli", *args], input=spec.stdin, check=False,
                                      capture_output=True, cwd=cwd, env=dict(spec.env), timeout=spec.timeout_s)
                returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
            except subprocess.TimeoutExpired as expired:
                returncode, stdout, stderr, timed_out = -1, expired.stdout or b"", expired.stderr or b"", True
        else:
            paths = {name: os.path.join(scratch, name) for name in ("stdin", "stdout", "stderr")}
            with open(paths["stdin"], "wb") as handle:
                handle.write(spec.stdin)
            reply = _fork_server().run(args, cwd=str(cwd), env=dict(spec.env), timeout=spec.timeout_s, **paths)
            timed_out = reply["timed_out"]
            returncode = -reply["signal"] if "signal" in reply else reply.get("status", -1)
            with open(paths["stdout"], "rb") as out, open(paths["stderr"], "rb") as err:
                stdout, stderr = out.read(), err.read()
        stats = None
        if os.path.exists(stats_path) and not timed_out:
            with open(stats_path) as handle:
                stats = json.load(handle)
        events = ""
        if spec.events and os.path.exists(events_path):
            with open(events_path, errors="replace") as handle:
                # "   1224 cpu0 t1000   == syscall nr=1 ..." -> "syscall nr=1 ..."
                events = "".join(line.split("== ", 1)[1] if "== " in line else line for line in handle)
        return RunResult(returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"), stats,
                         timed_out=timed_out, events=events)


def describe_status(status: int) -> str:
    if status < 0:
        return f"emu itself killed by {signal.Signals(-status).name}"
    if status > 128:
        try:
            return f"{status} ({signal.Signals(status - 128).name})"
        except ValueError:
            pass
    return str(status)


def _numbered(text: str, around: int | None = None, limit: int = 40) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return "    (no output)"
    start = 0
    if around is not None and len(lines) > limit:
        start = max(0, min(around - limit // 2, len(lines) - limit))
    shown = lines[start:start + limit]
    out = [f"{start + i + 1:5}{'>' if around == start + i else ' '} {line}" for i, line in enumerate(shown)]
    if start > 0:
        out.insert(0, f"      ... {start} lines above")
    if start + limit < len(lines):
        out.append(f"      ... {len(lines) - start - limit} more lines")
    return "\n".join(out)


def check_result(spec: GuestSpec, result: RunResult) -> list[str]:
    """Each unmet expectation as a readable paragraph (empty list: the test passed)."""
    problems = []
    if result.timed_out:
        return [f"timed out after {spec.timeout_s:g} s"]
    if result.returncode != spec.exit_status:
        problems.append(f"exit status {describe_status(result.returncode)}, expected {spec.exit_label}"
                        f" ({spec.exit_status})" + (f"\nstderr:\n{_numbered(result.stderr)}" if result.stderr else ""))
    if spec.stdout_lines is not None:
        expected = "".join(line + "\n" for line in spec.stdout_lines)
        if result.stdout != expected:
            diff = difflib.unified_diff(expected.splitlines(keepends=True), result.stdout.splitlines(keepends=True),
                                        "expected stdout (STDOUT: lines)", "actual stdout", n=2)
            text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of output\n"
                           for line in diff)
            problems.append("stdout differs:\n" + text.rstrip("\n"))
    if spec.checks:
        failure = run_checks(spec.checks, result.stdout)
        if failure:
            problems.append(f"{failure.directive.keyword}: {failure.directive.value}  (line {failure.directive.line}):"
                            f" {failure.message}\nstdout:\n{_numbered(result.stdout, failure.near_line)}")
    if spec.stderr_checks:
        plain = [Directive("CHECK", d.value, d.line) for d in spec.stderr_checks]
        failure = run_checks(plain, result.stderr)
        if failure:
            problems.append(f"CHECK-STDERR: {failure.directive.value}  (line {failure.directive.line}):"
                            f" {failure.message}\nstderr:\n{_numbered(result.stderr, failure.near_line)}")
    if spec.events:
        failure = run_checks(spec.events, result.events)
        if failure:
            problems.append(f"EVENTS: {failure.directive.value}  (line {failure.directive.line}):"
                            f" {failure.message}\nevents:\n{_numbered(result.events, failure.near_line)}")
    if spec.stats:
        if result.stats is None:
            problems.append("no statistics were written (emu failed before the run ended)"
                            + (f"\nstderr:\n{_numbered(result.stderr)}" if result.stderr else ""))
        else:
            problems += check_stats(spec.stats, result.stats)
    return problems


@dataclass
class Outcome:
    spec: GuestSpec
    variant: Variant
    problems: list[str]
    reproduce: str
    result: RunResult | None = None
    skipped: str | None = None      # why the test could not run (a missing toolchain)
    note: str | None = None         # what a passing exploration found (EXPECT-RACE:)

    @property
    def passed(self) -> bool:
        return not self.problems

    def report(self) -> str:
        body = "\n\n".join(self.problems)
        return f"{body}\n\nreproduce with:\n  {self.reproduce}"


def run_test(spec: GuestSpec, variant: Variant, build_dir: Path, cwd: Path) -> Outcome:
    """Build (cached), run under emu and check: the one path both front ends use.

    A missing toolchain skips the test with the reason, except under CI=true,
    where it fails: CI must never pass by skipping."""
    if variant.explore is not None:
        return run_exploration(spec, variant, build_dir, cwd)
    try:
        for tool in guestbuild.required_tools(spec):
            guestbuild.find_tool(tool)
        program = guestbuild.build(spec, build_dir)
        with tempfile.TemporaryDirectory(prefix="emu-root-") as scratch:
            root = None
            if guestbuild.needs_root(spec):
                root = Path(scratch)
                root.chmod(0o755)
                guestbuild.prepare_root(spec, build_dir, root)
            result = run_guest(spec, variant, program, cwd, root)
    except guestbuild.ToolchainMissing as missing:
        if toolchains.in_ci():
            return Outcome(spec, variant, [f"{missing} (CI=true: a missing toolchain fails the test, never skips)"],
                           "make toolchains")
        return Outcome(spec, variant, [], "make toolchains", skipped=str(missing))
    except BuildError as error:
        return Outcome(spec, variant, [f"build failed: {' '.join(error.command)}\n{error.output}"],
                       " ".join(shlex.quote(w) for w in error.command))
    reproduce = reproduce_command(spec, variant, program, cwd, build_dir)
    if guestbuild.needs_build(spec):
        reproduce = guestbuild.describe_build(spec, program) + f"\n  {reproduce}"
    return Outcome(spec, variant, check_result(spec, result), reproduce, result)


# Outcomes of a schedule that say the emulator, not the guest, went wrong:
# never counted as the race an EXPECT-RACE: test looks for.
_EMULATOR_FAILURE_STATUS = 70


def _emulator_failed(outcome: Outcome) -> bool:
    result = outcome.result
    return result is None or result.timed_out or result.returncode in (_EMULATOR_FAILURE_STATUS, -1) \
        or result.returncode < 0


def measure_pct_steps(spec: GuestSpec, variant: Variant, build_dir: Path, cwd: Path) -> tuple[int | None, Outcome]:
    """PCT's k for this program (the paper assumes it known): the
    instructions one run retires while several tasks are runnable (the
    ``explored_instructions`` statistic), measured by a run under ``--sched
    pct --seed 0 --sched-depth 1`` (priorities only, no change point), so that
    the change points of seeds 1..N fall inside the program's concurrent part
    rather than in a default k it may never reach. None (emu run's default)
    when the run reports no statistics."""
    probe = run_test(spec, Variant(variant.cpus, variant.cmdline, variant.profile, sched="pct", seed=0,
                                   sched_depth=1), build_dir, cwd)
    stats = probe.result.stats if probe.result is not None else None
    explored = (stats or {}).get("sched", {}).get("explored_instructions")
    if not explored:
        return None, probe
    return max(int(explored), PCT_MIN_STEPS), probe


def run_exploration(spec: GuestSpec, variant: Variant, build_dir: Path, cwd: Path) -> Outcome:
    """Run ``variant``'s seeds 1..schedules under its policy, stopping at the
    first that decides. "race" (EXPECT-RACE:): passes at the first seed whose
    run breaks an expectation, with a note naming the seed and its replay
    line; fails when none of them does. "exact" (SCHEDULES:, `emu test
    --schedules`): fails at the first seed that breaks one, naming it."""
    last = None
    steps = None
    if variant.sched == "pct":
        steps, probe = measure_pct_steps(spec, variant, build_dir, cwd)
        if probe.skipped or (probe.result is None and probe.problems):
            return Outcome(spec, variant, probe.problems, probe.reproduce, skipped=probe.skipped)
    for seed in range(1, variant.schedules + 1):
        concrete = Variant(variant.cpus, variant.cmdline, variant.profile, sched=variant.sched, seed=seed,
                           sched_steps=steps)
        outcome = run_test(spec, concrete, build_dir, cwd)
        if outcome.skipped or (outcome.result is None and outcome.problems):
            return Outcome(spec, variant, outcome.problems, outcome.reproduce, skipped=outcome.skipped)
        where = (f"--sched {variant.sched} --seed {seed}{'' if steps is None else f' --sched-steps {steps}'} "
                 f"(schedule {seed} of {variant.schedules})")
        replay = (f"{outcome.reproduce}\n  (add --trace FILE, --timeline FILE or --gdb PORT to that line: "
                  "the same schedule replays exactly)")
        if outcome.problems and (variant.explore == "exact" or _emulator_failed(outcome)):
            return Outcome(spec, variant, [f"failed under {where}:"] + outcome.problems, replay, outcome.result)
        if outcome.problems:
            first = outcome.problems[0].splitlines()[0]
            return Outcome(spec, variant, [], replay, outcome.result,
                           note=f"race found under {where}: {first}\n  replay: {outcome.reproduce}")
        last = outcome
    if variant.explore == "race":
        return Outcome(spec, variant, [f"EXPECT-RACE: no schedule among seeds 1..{variant.schedules} of "
                                       f"--sched {variant.sched} broke an expectation (the race was not found)"],
                       last.reproduce if last else "", last.result if last else None)
    return Outcome(spec, variant, [], last.reproduce if last else "", last.result if last else None,
                   note=f"{variant.schedules} schedules of --sched {variant.sched} passed")


def discover(paths: list[Path]) -> list[Path]:
    """Guest tests under ``paths`` (files or directories), sorted, skipping hidden directories."""
    found = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            found += [Path(directory) / f for f in sorted(files) if is_guest_test(Path(directory) / f)]
    return found


__all__ = [
    "BuildError",
    "GuestSpec",
    "HeaderError",
    "Outcome",
    "ToolchainMissing",
    "Variant",
    "discover",
    "header_directives",
    "is_guest_test",
    "parse_spec",
    "run_checks",
    "run_test",
    "stats_value",
]
