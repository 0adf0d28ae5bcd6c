"""pytest plugin (entry point ``pytest11: emu_guest``): guest test programs as tests.

Any ``.S``/``.s``/``.asm``/``.c``/``.rs``/``.go``/``.sh`` file pytest meets while collecting whose header
comment carries expectations (see ``emu_x86/emucli/guesttest.py``) becomes one test per
variant (CPUS x CMDLINE x PROFILE).  A test builds the program (gcc, cached by
content hash under ``emu_build_dir``), runs it with ``emu run`` in a
subprocess -- so a crash stays in its test and xdist workers share nothing --
and checks exit status, stdout, stderr and statistics.  A test whose toolchain
is missing is skipped with the reason (under ``CI=true`` it fails instead).  A failure shows every
unmet expectation (a diff for STDOUT, the output around the failing CHECK) and
the shell command that reproduces it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from emu_x86.emucli import guesttest


def pytest_addoption(parser):
    group = parser.getgroup("emu", "emu guest test programs")
    group.addoption("--emu-build-dir", default=None, metavar="DIR",
                    help="where gcc-built guest programs are cached (default: <rootdir>/.emu-build)")
    group.addoption("--emu-schedules", type=int, default=0, metavar="N",
                    help="also run each guest test under seeds 1..N of --emu-sched (emu test --schedules)")
    group.addoption("--emu-sched", action="append", choices=guesttest.EXPLORING_POLICIES, default=None,
                    metavar="POLICY", help="exploring policy for --emu-schedules (default random; repeatable)")
    parser.addini("emu_build_dir", "cache directory for gcc-built guest programs (relative to rootdir)",
                  default=".emu-build")


def pytest_configure(config):
    config.addinivalue_line("markers", "emu_guest: a guest test program run under emu")


def _build_dir(config) -> Path:
    chosen = config.getoption("--emu-build-dir") or config.getini("emu_build_dir")
    path = Path(chosen)
    return path if path.is_absolute() else Path(config.rootpath) / path


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix in guesttest.SUFFIXES and guesttest.is_guest_test(file_path):
        return GuestFile.from_parent(parent, path=file_path)
    return None


class GuestFile(pytest.File):
    def collect(self):
        try:
            spec = guesttest.parse_spec(self.path)
        except guesttest.HeaderError as error:
            yield GuestHeaderError.from_parent(self, name=self.path.name, message=str(error))
            return
        variants = spec.variants()
        schedules = self.config.getoption("--emu-schedules")
        if schedules and not spec.races:
            variants += [guesttest.Variant(v.cpus, v.cmdline, v.profile, sched=policy, explore="exact",
                                           schedules=schedules)
                         for v in variants if v.explore is None
                         for policy in self.config.getoption("--emu-sched") or ["random"]]
        for variant in variants:
            name = f"{self.path.name}[{variant.id}]" if variant.id else self.path.name
            item = GuestItem.from_parent(self, name=name, spec=spec, variant=variant)
            item.add_marker("emu_guest")
            yield item


class GuestTestFailure(Exception):
    pass


class GuestItem(pytest.Item):
    def __init__(self, *, spec: guesttest.GuestSpec, variant: guesttest.Variant, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.variant = variant

    def runtest(self):
        outcome = guesttest.run_test(self.spec, self.variant, _build_dir(self.config), Path(self.config.rootpath))
        if outcome.skipped:
            pytest.skip(outcome.skipped)
        if self.spec.xfail:
            if outcome.passed:
                raise GuestTestFailure(f"XFAIL ({self.spec.xfail}) but the test passed: remove the XFAIL line"
                                       f"\n\nreproduce with:\n  {outcome.reproduce}")
            pytest.xfail(f"{self.spec.xfail}: {outcome.problems[0].splitlines()[0]}")
        if not outcome.passed:
            raise GuestTestFailure(outcome.report())
        if outcome.note and self.variant.explore == "race":
            # Shown in the summary (pytest_terminal_summary), also from xdist workers.
            self.user_properties.append(("emu_race_found", outcome.note))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, GuestTestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"guest {self.name}"


class GuestHeaderError(pytest.Item):
    """A malformed header fails as one test with the one-line message."""

    def __init__(self, *, message: str, **kwargs):
        super().__init__(**kwargs)
        self.message = message

    def runtest(self):
        raise GuestTestFailure(self.message)

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, f"guest header {self.name}"


def pytest_terminal_summary(terminalreporter):
    """EXPECT-RACE: tests report which seed found their bug, so CI logs show it."""
    found = [(report.nodeid, value) for report in terminalreporter.stats.get("passed", [])
             for key, value in getattr(report, "user_properties", ()) if key == "emu_race_found"]
    if found:
        terminalreporter.section("emu schedule exploration: races found")
        for nodeid, note in found:
            terminalreporter.write_line(f"FOUND {nodeid}: {note}")
