"""Regressions (issue 20): --timeout covers loading and assembling; a --stats
path that cannot be written is a usage error before the guest runs (it was
exit 70 after the whole run); a reader that closes the pipe (`emu trace ... |
head -1`) ends emu quietly, as SIGPIPE ends other command-line tools, instead
of a BrokenPipeError."""
import subprocess
import sys

from tests.guestbuild import REPO, emu

HELLO = str(REPO / "guest" / "examples" / "hello.S")


def test_unwritable_stats_path_is_a_usage_error_before_the_run(tmp_path):
    result = emu("run", "--stats", str(tmp_path / "missing" / "s.json"), HELLO)
    assert result.returncode == 2
    assert result.stdout == b""                      # the guest never ran
    assert result.stderr_lines == [f"emu: --stats {tmp_path / 'missing' / 's.json'}: No such file or directory"]


def test_stats_file_is_written_when_the_path_is_good(tmp_path):
    target = tmp_path / "s.json"
    result = emu("run", "--stats", str(target), HELLO)
    assert result.returncode == 0
    assert '"cycles"' in target.read_text()


def test_closed_pipe_ends_trace_quietly():
    emu_process = subprocess.Popen([sys.executable, "-m", "emu_x86.emucli", "trace", HELLO], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = emu_process.stdout.readline()
    emu_process.stdout.close()                       # what `| head -1` does
    stderr = emu_process.stderr.read()
    assert emu_process.wait(timeout=120) == 128 + 13
    assert first.startswith(b"{")
    assert stderr == b""


def test_timeout_covers_assembling(tmp_path):
    """--timeout is armed before the program is assembled: a .S whose #include waits
    on a FIFO forever stops at the limit with 125 and stats, and cpp does not outlive emu."""
    import os
    fifo = tmp_path / "fifo.h"
    os.mkfifo(fifo)
    source = tmp_path / "wait.S"
    source.write_text(f'#include "{fifo}"\n')
    stats = tmp_path / "wait.json"
    result = emu("run", "--timeout", "2", "--stats", str(stats), str(source), timeout=60)
    assert result.returncode == 125, result.stderr
    assert result.stderr_lines == ["emu: wall-clock timeout of 2 s reached"]
    assert '"instructions": 0' in stats.read_text()
    from tests.test_assembler_limits import fifo_has_reader
    assert not fifo_has_reader(fifo), "cc1 outlived --timeout"


def test_only_regular_files_are_executed(tmp_path):
    """A FIFO as the program used to block in open() forever and /dev/zero was read
    whole; both are refused at once with one line and exit 2, as execve's EACCES."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for program in (str(fifo), "/dev/zero"):
        result = emu("run", program, timeout=60)
        assert result.returncode == 2
        assert result.stderr_lines == [f"emu: {program}: cannot execute: not a regular file"]


def _mutated_hello(tmp_path, name, mutate):
    """A real static binary with one header field changed (as the elf fuzz kind does)."""
    import struct
    from tests.guestbuild import build_c
    data = bytearray(build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n').read_bytes())
    mutate(data, struct)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return path


def test_elf_header_checks_of_load_elf_binary(tmp_path):
    def kernel_half(data, struct):
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phnum, = struct.unpack_from("<H", data, 0x38)
        for index in range(phnum):
            if struct.unpack_from("<I", data, phoff + 56 * index)[0] == 1:        # PT_LOAD
                struct.pack_into("<Q", data, phoff + 56 * index + 16, 0xFFFFFFFF81000000)
                return

    def wrong_phentsize(data, struct):
        struct.pack_into("<H", data, 0x36, 64)

    cases = {"kernel_half": (kernel_half, "lies outside the user address space"),
             "phentsize": (wrong_phentsize, "e_phentsize 64, not 56")}
    for name, (mutate, message) in cases.items():
        program = _mutated_hello(tmp_path, name, mutate)
        result = emu("run", str(program), timeout=60)
        assert result.returncode == 2, (name, result.stderr)
        assert len(result.stderr_lines) == 1 and message in result.stderr_lines[0], name


def test_huge_bss_costs_nothing_until_touched(tmp_path):
    """A 1 TiB .bss used to be populated page by page at exec (a hang, then host
    memory); it is demand paged now, as Linux maps it, and the program runs."""
    from tests.guestbuild import build_c
    program = build_c("#include <stdio.h>\nstatic char big[1UL << 40];\n"
                      "int main(void) { big[12345] = 1; big[(1UL << 40) - 1] = 2;\n"
                      "  printf(\"%d\\n\", big[12345] + big[(1UL << 40) - 1]); return 0; }\n")
    stats = tmp_path / "s.json"
    result = emu("run", "--timeout", "60", "--stats", str(stats), str(program), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"3\n"
    import json
    assert json.loads(stats.read_text())["peak_frames_in_use"] < 1000


def test_a_program_without_execute_permission_is_refused(tmp_path):
    """execve's may_open(MAY_EXEC): EACCES; the program used to run."""
    program = _mutated_hello(tmp_path, "noexec", lambda data, struct: None)
    program.chmod(0o644)
    result = emu("run", str(program), timeout=60)
    assert result.returncode == 2
    assert result.stderr_lines == [f"emu: {program}: cannot execute: Permission denied"]


def test_the_loader_reads_headers_and_segments_only(tmp_path):
    """A 2 GiB sparse file was read whole (2.1 GB) to check its magic; now only the
    headers and the PT_LOAD ranges are read, and the program still runs."""
    program = _mutated_hello(tmp_path, "sparse", lambda data, struct: None)
    with open(program, "r+b") as handle:
        handle.truncate(2 << 30)
    # VmHWM, not ru_maxrss: the child is started by vfork from this (possibly large)
    # worker, and Linux folds the parent's peak into ru_maxrss at execve.
    probe = ("import sys\n"
             "from emu_x86.emucli.main import main\n"
             "from emu_x86.emucli.limits import peak_resident_bytes\n"
             "try:\n    main(['run', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
             "sys.stderr.write('maxrss_kib=%d\\n' % (peak_resident_bytes() >> 10))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(program)], cwd=REPO, capture_output=True,
                            timeout=300)
    assert result.stdout == b"hi\n", result.stderr
    maxrss_mib = int(result.stderr.decode().rsplit("maxrss_kib=", 1)[1]) >> 10
    assert maxrss_mib < 512


def test_file_backed_segments_larger_than_guest_memory_are_refused_unread(tmp_path):
    """A PT_LOAD whose file bytes exceed guest memory cannot be loaded (exit 123,
    as any program too large for guest memory), and nothing of it is read."""
    def huge_filesz(data, struct):
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phnum, = struct.unpack_from("<H", data, 0x38)
        for index in range(phnum):
            entry = phoff + 56 * index
            if struct.unpack_from("<I", data, entry)[0] == 1:                      # PT_LOAD
                struct.pack_into("<QQ", data, entry + 32, 256 << 20, 256 << 20)    # p_filesz, p_memsz
                return
    program = _mutated_hello(tmp_path, "bigload", huge_filesz)
    with open(program, "r+b") as handle:
        handle.truncate(300 << 20)
    result = emu("run", "--memory", "64", str(program), timeout=120)
    assert result.returncode == 123, result.stderr
    assert result.stderr_lines == [f"emu: {program}: guest memory (64 MiB) is too small to load it"]


def test_host_memory_ceiling_is_armed_before_the_load(tmp_path):
    """--max-host-memory below what the emulator itself needs ends the run at once
    with the out-of-memory status and one line, whatever phase it is in."""
    stats = tmp_path / "s.json"
    result = emu("run", "--max-host-memory", "8M", "--stats", str(stats), HELLO, timeout=120)
    assert result.returncode == 123, result.stderr
    assert result.stderr_lines == ["emu: host memory ceiling of 8 MiB reached (--max-host-memory)"]
    assert stats.exists()
