"""Guest tests beyond C and assembly (emu_x86/emucli/guestbuild.py, emu_x86/emucli/toolchains.py):
Rust/Go/busybox-shell build kinds, the run's root (FS:, FS-RW:, INSTALL:),
REQUIRES:, and the missing-toolchain policy (skip; fail under CI=true)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from emu_x86.emucli import guestbuild, guesttest, toolchains

VENV_BIN = Path(sys.executable).parent


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def require(tool: str) -> Path:
    """The tool, or skip (outside CI) / fail (CI=true), as guest tests do."""
    path = toolchains.find(tool)
    if path is None:
        if toolchains.in_ci():
            pytest.fail(toolchains.missing_reason(tool))
        pytest.skip(toolchains.missing_reason(tool))
    return path


def is_static(binary: Path) -> bool:
    with binary.open("rb") as handle:
        return not any(segment["p_type"] == "PT_INTERP" for segment in ELFFile(handle).iter_segments())


# ---- the header language ----------------------------------------------------------

def test_build_kind_follows_the_suffix_and_a_build_line_must_agree(tmp_path):
    kinds = {name: guesttest.parse_spec(write(tmp_path, name, f"{leader} EXIT: 0\n")).build_kind
             for name, leader in (("a.rs", "//"), ("b.go", "//"), ("c.sh", "#"), ("d.c", "//"), ("e.S", "#"))}
    assert kinds == {"a.rs": "rustc", "b.go": "go", "c.sh": "busybox", "d.c": "gcc", "e.S": "emu"}
    assert guesttest.parse_spec(write(tmp_path, "f.rs", "// BUILD: rustc\n// EXIT: 0\n")).build_kind == "rustc"
    assert guesttest.parse_spec(write(tmp_path, "g.S", "# BUILD: gcc\n# EXIT: 0\n")).build_with_gcc
    for name, text, message in (
            ("h.rs", "// BUILD: go\n// EXIT: 0\n", "expected 'rustc' for a .rs source, got 'go'"),
            ("i.sh", "# BUILD: gcc\n# EXIT: 0\n", "a .sh test always builds with busybox"),
            ("j.c", "// BUILD: gcc\n// EXIT: 0\n", "a .c test always builds with gcc")):
        with pytest.raises(guesttest.HeaderError, match=message):
            guesttest.parse_spec(write(tmp_path, name, text))


@pytest.mark.parametrize("header, message", [
    ("FS: nowhere", "expected a folder next to the test, got 'nowhere'"),
    ("FS: data\n// FS-RW: data", "one root per test"),
    ("FS: data\n// INSTALL: tool.c /bin/tool", "INSTALL needs a writable root: use FS-RW instead of FS"),
    ("INSTALL: tool.c", "expected 'SOURCE GUEST-PATH'"),
    ("INSTALL: missing.c /bin/x", "no such file next to the test: 'missing.c'"),
    ("INSTALL: data /bin/x", "expected busybox or a .c/.rs/.go/.S source"),
    ("REQUIRES: cargo", "unknown tool 'cargo'"),
])
def test_root_directives_reject_what_cannot_work_in_one_line(tmp_path, header, message):
    (tmp_path / "data").mkdir()
    write(tmp_path, "tool.c", "int main(void) { return 0; }\n")
    with pytest.raises(guesttest.HeaderError, match=message) as error:
        guesttest.parse_spec(write(tmp_path, "t.c", f"// {header}\n// EXIT: 0\n"))
    assert "\n" not in str(error.value)


def test_required_tools_cover_the_build_installs_and_requires(tmp_path):
    write(tmp_path, "tool.go", "package main\nfunc main() {}\n")
    spec = guesttest.parse_spec(write(tmp_path, "t.c", "// FS-RW: -\n// INSTALL: tool.go /bin/tool\n"
                                      "// INSTALL: busybox /bin/busybox\n// REQUIRES: rustc\n// EXIT: 0\n"))
    assert guestbuild.required_tools(spec) == ["gcc", "go", "busybox", "rustc"]
    assert spec.fs_rw == "" and guestbuild.needs_root(spec)


def test_busybox_script_runs_as_sh_c_with_its_text_and_the_reproduce_line_cats_the_file(tmp_path):
    script = write(tmp_path, "s.sh", "# ARGS: one two\n# STDOUT: x\necho x\n")
    spec = guesttest.parse_spec(script)
    assert guesttest.guest_argv(spec) == ["sh", "-c", script.read_text(), "s.sh", "one", "two"]
    line = guesttest.reproduce_command(spec, spec.variants()[0], Path("/bb/busybox"), tmp_path)
    assert line.endswith('/bb/busybox sh -c "$(cat s.sh)" s.sh one two')


# ---- the run's root --------------------------------------------------------------------

ROOT_PROGRAM = r"""/* Reads the FS-RW copy, writes into it, and finds the INSTALLed program.
 * FS-RW: data
 * INSTALL: tool.c /bin/tool
 * STDOUT: fresh root: yes
 * STDOUT: input: from the tree
 * STDOUT: read back: written by the guest
 * STDOUT: /bin/tool starts with ELF
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void show(const char *label, const char *path, int skip)
{
	char buffer[64] = {0};
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buffer, sizeof buffer - 1);
	if (n > 0 && buffer[n - 1] == '\n')
		buffer[n - 1] = 0;
	printf("%s: %s\n", label, n < 0 ? "(unreadable)" : buffer + skip);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	printf("fresh root: %s\n", access("/out.txt", F_OK) == 0 ? "no" : "yes");
	show("input", "/in.txt", 0);
	int fd = open("/out.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
	write(fd, "written by the guest\n", 21);
	close(fd);
	show("read back", "/out.txt", 0);
	char magic[4] = {0};
	fd = open("/bin/tool", O_RDONLY);
	read(fd, magic, 4);
	printf("/bin/tool starts with %.3s\n", magic + 1);
	return 0;
}
"""


def test_fs_rw_root_is_a_fresh_copy_per_run_and_install_puts_built_programs_in_it(tmp_path):
    write(tmp_path, "data/in.txt", "from the tree\n")
    write(tmp_path, "tool.c", "int main(void) { return 7; }\n")
    spec = guesttest.parse_spec(write(tmp_path, "root.c", ROOT_PROGRAM))
    for _ in range(2):       # the second run must not see the first run's /out.txt
        outcome = guesttest.run_test(spec, spec.variants()[0], tmp_path / "build", tmp_path)
        assert outcome.passed, outcome.report()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["in.txt"]     # the tree is untouched
    assert "ROOT=$(mktemp -d) && cp -a data/. $ROOT" in outcome.reproduce
    assert '--fs-rw "$ROOT"' in outcome.reproduce


def test_fs_maps_the_folder_read_only(tmp_path):
    write(tmp_path, "data/in.txt", "hello\n")
    program = (r'/* FS: data' '\n * STDOUT: hello\n * STDOUT: write: -1\n */\n'
               '#include <fcntl.h>\n#include <stdio.h>\n#include <unistd.h>\n'
               'int main(void) { char b[6] = {0}; int fd = open("/in.txt", O_RDONLY); read(fd, b, 5);'
               ' printf("%s\\n", b); printf("write: %d\\n", open("/new.txt", O_CREAT | O_WRONLY, 0644));'
               ' return 0; }\n')
    spec = guesttest.parse_spec(write(tmp_path, "ro.c", program))
    outcome = guesttest.run_test(spec, spec.variants()[0], tmp_path / "build", tmp_path)
    assert outcome.passed, outcome.report()
    assert not (tmp_path / "data" / "new.txt").exists()


# ---- missing toolchains ---------------------------------------------------------------------

def _run_emu_test(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    write(tmp_path, "s.sh", "# STDOUT: x\necho x\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "EMU_BUSYBOX")}
    environment.update(EMU_TOOLCHAINS=str(tmp_path / "no-toolchains"), COLUMNS="200", **env)
    return subprocess.run([str(VENV_BIN / "emu"), "test", str(tmp_path / "s.sh")], cwd=tmp_path, env=environment,
                          check=False, capture_output=True, text=True, timeout=120)


def test_missing_toolchain_skips_with_the_reason(tmp_path):
    result = _run_emu_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIP" in result.stdout and "busybox not found: run `make toolchains`" in result.stdout
    assert "1 skip" in result.stdout


def test_missing_toolchain_fails_under_ci(tmp_path):
    result = _run_emu_test(tmp_path, CI="true")
    assert result.returncode == 1
    assert "CI=true: a missing toolchain fails the test, never skips" in result.stdout


def test_toolchains_check_reports_missing_tools(tmp_path):
    env = {**os.environ, "EMU_TOOLCHAINS": str(tmp_path)}
    env.pop("EMU_BUSYBOX", None)
    result = subprocess.run([sys.executable, "-m", "emu_x86.emucli.toolchains", "--check", "busybox"], env=env,
                            check=False, capture_output=True, text=True)
    assert (result.returncode, result.stderr.strip()) == (1, "toolchains: missing busybox")
    result = subprocess.run([sys.executable, "-m", "emu_x86.emucli.toolchains", "cargo"], check=False,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown tool 'cargo'" in result.stderr


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("", False), ("false", False)])
def test_ci_is_recognised_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert toolchains.in_ci() is expected


# ---- the builds ---------------------------------------------------------------------------------

def test_rust_program_builds_static_and_once(tmp_path):
    require("rustc")
    spec = guesttest.parse_spec(write(tmp_path, "hi.rs", '// STDOUT: hi 6\nfn main() { println!("hi {}", 2 * 3); }\n'))
    binary = guestbuild.build(spec, tmp_path / "build")
    assert is_static(binary)
    assert subprocess.run([str(binary)], check=False, capture_output=True, text=True).stdout == "hi 6\n"
    built_at = binary.stat().st_mtime_ns
    assert guestbuild.build(spec, tmp_path / "build") == binary and binary.stat().st_mtime_ns == built_at


def test_go_program_builds_static_without_cgo(tmp_path):
    require("go")
    source = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("go", 6*7) }\n'
    spec = guesttest.parse_spec(write(tmp_path, "hi.go", "// STDOUT: go 42\n" + source))
    binary = guestbuild.build(spec, tmp_path / "build")
    assert is_static(binary)
    assert subprocess.run([str(binary)], check=False, capture_output=True, text=True).stdout == "go 42\n"
    assert "go.mod" in guestbuild.describe_build(spec, binary)


def test_busybox_from_the_toolchain_cache_is_static(tmp_path):
    busybox = require("busybox")
    assert is_static(busybox)
    result = subprocess.run([str(busybox), "sh", "-c", "echo $((6 * 7))"], check=False, capture_output=True, text=True)
    assert result.stdout == "42\n"
