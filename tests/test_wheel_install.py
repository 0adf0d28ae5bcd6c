"""The package as a user installs it: build the wheel, install it (with the
``[test]`` extra) into a fresh venv, and run a user project's guest tests --
an assembly test that includes the shipped headers, a C test, a parameterised
test -- with plain ``pytest`` and with ``pytest -n 2``, nothing of this
checkout on the path. Every directory a failure report names must exist in
the install (issue 21: ``-I .../site-packages/guest/include`` did not)."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.guestbuild import REPO, missing_prerequisite

# Folders of the checkout a wheel build does not read (and would be slow to copy).
_NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "build", "results", ".build", ".emu-build", "__pycache__",
                                     "*.egg-info", ".pytest_cache", "*.abi3.so", "*.cpython-*.so", "bench.json",
                                     ".bench")   # compiled extensions only: emu_x86/kernel/vdso/vdso64.so is source

ASSEMBLY_TEST = r"""/* The shipped headers: syscall numbers and output helpers.
 * EXIT: 0
 * STDOUT: sum 42
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        lea     label(%rip), %rdi
        call    print_str
        mov     $42, %edi
        call    print_u64
        call    print_nl
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
        .data
label:  .asciz "sum "
        .text
#include "print_helpers.inc"
"""

C_TEST = r"""/* A glibc program, on 1 and 2 vCPUs.
 * CPUS: 1 2
 * ARGS: a b
 * STDOUT: argc=3 last=b
 */
#include <stdio.h>
int main(int argc, char **argv) { printf("argc=%d last=%s\n", argc, argv[argc - 1]); return 0; }
"""

PARAMETERISED_TEST = r"""/* One test per vCPU count and per policy.
 * CPUS: 1 2
 * CMDLINE: lazy_tlb=refcount
 * CMDLINE: lazy_tlb=shootdown
 * EXIT: 7
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        mov     $SYS_exit_group, %eax
        mov     $7, %edi
        syscall
"""

FAILING_C_TEST = r"""/* Fails on purpose: its report's build line must name real folders.
 * STDOUT: never printed
 */
#include <stdio.h>
int main(void) { puts("printed"); return 0; }
"""


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout and its [test] extra; its bin/.
    Built once per test session: under xdist the workers share the pytest base
    directory's parent, and the first to take the lock builds (each worker
    built its own before, 27 s or more apiece)."""
    if shutil.which("gcc") is None:
        missing_prerequisite("gcc is needed to build the wheel's C hot path and the C guest tests")
    shared = tmp_path_factory.getbasetemp().parent
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        shared = tmp_path_factory.getbasetemp()
    work = shared / "wheel-install"
    work.mkdir(exist_ok=True)
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = work / "ready"
        if not ready.exists():
            _build_and_install(work)
            ready.write_text("ok\n")
    return work / "venv" / "bin"


def _build_and_install(work: Path) -> None:
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(REPO, source, ignore=_NOT_COPIED)
    wheels = work / "dist"
    shutil.rmtree(wheels, ignore_errors=True)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("emu_x86-*.whl")
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", f"{wheel}[test]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]


def _user_env(bin_dir: Path) -> dict:
    # Nothing of this checkout: no PYTHONPATH, the venv first on PATH, a neutral cwd.
    return {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": os.environ.get("HOME", "/tmp")}


def _project(directory: Path) -> Path:
    directory.mkdir()
    (directory / "test_sum.S").write_text(ASSEMBLY_TEST)
    (directory / "test_args.c").write_text(C_TEST)
    (directory / "test_policies.S").write_text(PARAMETERISED_TEST)
    return directory


def test_the_installed_package_is_not_this_checkout(installed):
    where = subprocess.run([str(installed / "python"), "-c",
                            "import emu_x86.emucli.resources as r, emu_x86; print(emu_x86.__file__); print(r.include_dir())"],
                           capture_output=True, text=True, cwd="/", env=_user_env(installed), timeout=60)
    module, include = where.stdout.split()
    assert "site-packages" in module and not module.startswith(str(REPO))
    assert (Path(include) / "linux_syscalls.h").is_file() and "site-packages" in include
    # Nothing generic is added at the top of site-packages: the wheel's files all sit
    # under emu_x86/ (and its .dist-info), so `import kernel` or `import emu` of some
    # other project is never shadowed (issue 21).
    site = Path(module).parent.parent
    assert not (site / "guest").exists()
    (record,) = site.glob("emu_x86-*.dist-info/RECORD")
    # RECORD names the console script as ../../../bin/emu (outside site-packages).
    tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines() if line}
    assert {top for top in tops if not top.endswith(".dist-info") and top != ".."} == {"emu_x86"}, tops
    for generic in ("emu", "kernel", "emucli", "emuas"):
        assert not (site / generic).exists(), generic
    # The core install pulls no test or plotting tools except what [test] asked for.
    listed = subprocess.run([str(installed / "python"), "-m", "pip", "list"], capture_output=True, text=True,
                            timeout=120).stdout.lower()
    for absent in ("matplotlib", "dask", "distributed", "hypothesis"):
        assert absent not in listed, absent


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_user_project_guest_tests_pass_from_the_installed_package(installed, tmp_path, workers):
    project = _project(tmp_path / "project")
    args = [str(installed / "pytest"), "-v", "-p", "no:cacheprovider"] + (["-n", workers] if workers else [])
    result = subprocess.run(args, cwd=project, capture_output=True, text=True, env=_user_env(installed),
                            timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "7 passed" in result.stdout, result.stdout[-3000:]
    for name in ("test_sum.S::test_sum.S", "test_args.c::test_args.c[cpus=2]",
                 "test_policies.S::test_policies.S[cpus=2-lazy_tlb=shootdown]"):
        assert name in result.stdout, name


def test_a_failure_report_names_installed_folders_and_its_commands_reproduce(installed, tmp_path):
    project = tmp_path / "failing"
    project.mkdir()
    (project / "test_fails.c").write_text(FAILING_C_TEST)
    result = subprocess.run([str(installed / "pytest"), "-p", "no:cacheprovider"], cwd=project,
                            capture_output=True, text=True, env=_user_env(installed), timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]
    folders = re.findall(r" -I (\S+)", result.stdout)
    assert folders, result.stdout[-3000:]
    for folder in folders:
        assert Path(folder).is_dir(), f"the report names {folder}, which does not exist"
    assert any((Path(folder) / "linux_syscalls.h").is_file() for folder in folders)
    # The shipped example runs from where it was installed.
    example = subprocess.run([str(installed / "python"), "-c",
                              "import emu_x86.emucli.resources as r; print(r.examples_dir() / 'hello.S')"],
                             capture_output=True, text=True, env=_user_env(installed), timeout=60).stdout.strip()
    run = subprocess.run([str(installed / "emu"), "run", example, "x"], capture_output=True, text=True,
                         env=_user_env(installed), cwd="/", timeout=300)
    assert run.returncode == 0 and "argc = 2" in run.stdout, run.stdout + run.stderr
