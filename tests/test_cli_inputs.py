"""Bad input to ``emu run`` gives exit status 2 and exactly one stderr line, never a traceback."""
import shutil
import subprocess

import pytest
from tests.guestbuild import missing_prerequisite

from tests.guestbuild import build_c, emu, require_gcc

HELLO_C = '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n'


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr_lines
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr.decode()
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == b""


def test_missing_file():
    assert_one_line_error(emu("run", "no/such/program"), "no/such/program", "No such file")


def test_directory():
    assert_one_line_error(emu("run", "guest"), "guest")


def test_not_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some text\n")
    path.chmod(0o755)                  # without an execute bit it is EACCES (test_loader_limits.py)
    assert_one_line_error(emu("run", str(path)), "not an ELF")


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    path.chmod(0o755)
    assert_one_line_error(emu("run", str(path)), "not an ELF")


def test_dynamically_linked_elf_says_build_static(tmp_path):
    require_gcc()
    source = tmp_path / "dyn.c"
    source.write_text(HELLO_C)
    binary = tmp_path / "dyn"
    subprocess.run(["gcc", str(source), "-o", str(binary)], check=True)
    assert_one_line_error(emu("run", str(binary)), "dynamically linked", "-static")


def test_32bit_elf(tmp_path):
    if shutil.which("as") is None or shutil.which("ld") is None:
        missing_prerequisite("binutils missing")
    source = tmp_path / "x.s"
    source.write_text(".globl _start\n_start:\n movl $1, %eax\n int $0x80\n")
    subprocess.run(["as", "--32", str(source), "-o", str(tmp_path / "x.o")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", str(tmp_path / "x.o"), "-o", str(tmp_path / "x")], check=True)
    assert_one_line_error(emu("run", str(tmp_path / "x")), "32-bit")


@pytest.mark.parametrize("keep_bytes", [20, 64, 200, 5000])
def test_truncated_elf(tmp_path, keep_bytes):
    binary = build_c(HELLO_C)
    path = tmp_path / "truncated"
    path.write_bytes(binary.read_bytes()[:keep_bytes])
    assert_one_line_error(emu("run", str(path)), "truncated")


def test_bad_option_value():
    assert_one_line_error(emu("run", "--cpus", "zero", "x"), "--cpus")


def test_too_many_cpus():
    binary = build_c(HELLO_C)
    assert_one_line_error(emu("run", "--cpus", "65", str(binary)), "between 1 and 64")


def test_no_program():
    assert_one_line_error(emu("run"), "program")


def test_assembly_error_names_file_and_line(tmp_path):
    source = tmp_path / "bad.S"
    source.write_text(".globl _start\n_start:\n  mov $1, %eax\n  frobnicate %rax\n")
    result = emu("run", str(source))
    assert_one_line_error(result, f"{source}:4:")
