"""Issue 20: the ELF loader checks what Linux's load_elf_binary checks and ends within its limits.

The programs are minimal static ELF files built here byte by byte (an ELF
header, program headers, and a few instructions at 0x401000), so that each
case isolates one property; where the host can run the file, its native exit
status is the expected one (binfmt_elf is the oracle).
"""
from __future__ import annotations

import struct
import subprocess

import pytest

from tests.guestbuild import emu

CODE_VADDR = 0x401000
CODE_OFFSET = 0x1000
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
SIGSEGV_STATUS = 128 + 11


def exit_code(status: int) -> bytes:
    return b"\xb8\x3c\x00\x00\x00" + b"\xbf" + struct.pack("<I", status) + b"\x0f\x05"   # mov $60,%eax; mov $N,%edi; syscall


def store_byte(address: int) -> bytes:
    return b"\x48\xb8" + struct.pack("<Q", address) + b"\xc6\x00\x01"                      # movabs $A,%rax; movb $1,(%rax)


def build_elf(path, code: bytes, extra_loads=(), phentsize: int = 56, extra_phnum: int = 0):
    """A static ET_EXEC: the code segment (R+X at CODE_VADDR) then ``extra_loads``, each
    (vaddr, filesz, memsz, flags) with its file bytes taken from the code page's offset."""
    loads = [(CODE_VADDR, len(code), len(code), PF_R | PF_X)] + list(extra_loads)
    phnum = len(loads) + extra_phnum
    header = (b"\x7fELF\x02\x01\x01" + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, CODE_VADDR, 64, 0, 0, 64, phentsize, phnum, 64, 0, 0))
    phdrs = b"".join(struct.pack("<IIQQQQQQ", PT_LOAD, flags, CODE_OFFSET, vaddr, vaddr, filesz, memsz, 0x1000)
                     for vaddr, filesz, memsz, flags in loads)
    phdrs += bytes(56 * extra_phnum)                     # PT_NULL entries
    image = bytearray(header + phdrs)
    file_bytes = CODE_OFFSET + max(filesz for _vaddr, filesz, _memsz, _flags in loads)
    image.extend(bytes(max(0, file_bytes - len(image))))
    image[CODE_OFFSET:CODE_OFFSET + len(code)] = code
    path.write_bytes(bytes(image))
    path.chmod(0o755)
    return path


def native_status(path) -> int:
    result = subprocess.run([str(path)], capture_output=True, timeout=60)
    return result.returncode if result.returncode >= 0 else 128 - result.returncode


def test_the_builder_makes_a_program_linux_runs(tmp_path):
    program = build_elf(tmp_path / "plain", exit_code(42))
    assert native_status(program) == 42
    assert emu("run", str(program), timeout=120).returncode == 42


def test_overlapping_segments_take_the_later_mapping(tmp_path):
    """elf_load maps each PT_LOAD with MAP_FIXED in order: the page two file-backed
    segments share has the later one's protection (it used to get the union)."""
    shared = 0x601000
    code = store_byte(0x600000) + store_byte(shared) + exit_code(0)
    loads = [(0x600000, 0x2000, 0x2000, PF_R | PF_W), (shared, 0x1000, 0x1000, PF_R)]
    program = build_elf(tmp_path / "overlap", code, loads)
    assert native_status(program) == SIGSEGV_STATUS
    result = emu("run", str(program), timeout=120)
    assert result.returncode == SIGSEGV_STATUS, result.stderr
    assert f"address {shared:#x}" in result.stderr.decode()


def test_zero_fill_pages_are_writable_whatever_the_segment_says(tmp_path):
    """The whole pages of .bss come from vm_brk_flags (read-write), so a read-only
    segment without file bytes, or the tail of one past its file bytes, is writable
    on Linux; the file-backed page itself keeps the segment's protection."""
    code = store_byte(0x700000) + store_byte(0x801000) + exit_code(9)
    loads = [(0x700000, 0, 0x1000, PF_R), (0x800000, 0x10, 0x2000, PF_R)]
    program = build_elf(tmp_path / "bss", code, loads)
    assert native_status(program) == 9
    assert emu("run", str(program), timeout=120).returncode == 9
    file_page = build_elf(tmp_path / "file-page", store_byte(0x800008) + exit_code(9), loads)
    assert native_status(file_page) == SIGSEGV_STATUS
    assert emu("run", str(file_page), timeout=120).returncode == SIGSEGV_STATUS


SEGMENTS_OUTSIDE_USER_SPACE = {
    "kernel text": (0xFFFFFFFF81000000, 0x1000),
    "direct map": (0xFFFF888000000000, 0x1000),
    "crossing 2^47": ((1 << 47) - 0x1000, 0x2000),
    "wrapping past 2^64": (0x700000, (1 << 64) - 0x1000),
    "memsz 2^64-1": (0x700000, (1 << 64) - 1),
}


@pytest.mark.parametrize("vaddr, memsz", SEGMENTS_OUTSIDE_USER_SPACE.values(), ids=SEGMENTS_OUTSIDE_USER_SPACE.keys())
def test_segments_outside_the_user_address_space_are_refused(tmp_path, vaddr, memsz):
    """Linux fails such an exec (the process dies of SIGSEGV after the point of no
    return); emu refuses the file with one line and exit 2, before mapping anything."""
    program = build_elf(tmp_path / "outside", exit_code(0), [(vaddr, 0, memsz, PF_R | PF_W)])
    assert native_status(program) == SIGSEGV_STATUS
    result = emu("run", "--timeout", "60", str(program), timeout=120)
    assert result.returncode == 2
    assert len(result.stderr_lines) == 1 and "lies outside the user address space" in result.stderr_lines[0]


def with_entry(path, entry: int, e_type: int = 2):
    """Rewrite the file's e_type (offset 16) and e_entry (offset 24)."""
    image = bytearray(path.read_bytes())
    struct.pack_into("<H", image, 16, e_type)
    struct.pack_into("<Q", image, 24, entry)
    path.write_bytes(bytes(image))
    return path


def test_an_entry_point_in_the_kernel_half_is_refused(tmp_path):
    """load_elf_binary fails the exec when BAD_ADDR(e_entry) (at or past TASK_SIZE):
    SIGSEGV natively; emu refuses the file with one line and exit 2."""
    program = with_entry(build_elf(tmp_path / "kentry", exit_code(0)), 0xFFFFFFFF81000000)
    assert native_status(program) == SIGSEGV_STATUS
    result = emu("run", "--timeout", "60", str(program), timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr_lines == [f"emu: {program}: ELF entry point 0xffffffff81000000 lies outside the user "
                                   "address space"]


def test_a_static_pie_entry_wraps_past_2_to_the_64(tmp_path):
    """ET_DYN: e_entry + load_bias is unsigned long arithmetic, so an entry of 2^64-1
    wraps to the byte below the load bias, a user address: the program starts there
    and dies of SIGSEGV, as natively (the fuzz campaign's elf case 3070 ended in an
    internal error, exit 70, packing the unwrapped sum into the auxiliary vector)."""
    program = with_entry(build_elf(tmp_path / "wrap", exit_code(0)), (1 << 64) - 1, e_type=3)
    assert native_status(program) == SIGSEGV_STATUS
    result = emu("run", "--timeout", "60", str(program), timeout=120)
    assert result.returncode == SIGSEGV_STATUS, result.stderr


def test_a_16_tib_bss_ends_at_once(tmp_path):
    """A 16 TiB p_memsz walked every page into a dict (3 GB in 20 s). Linux's heuristic
    overcommit refuses a mapping larger than RAM + swap: the exec fails (SIGSEGV natively);
    emu reports the program as too large for guest memory (123) without touching a page."""
    program = build_elf(tmp_path / "huge", exit_code(0), [(0x10000000, 0, 16 << 40, PF_R | PF_W)])
    assert native_status(program) == SIGSEGV_STATUS
    result = emu("run", "--timeout", "60", str(program), timeout=120)
    assert result.returncode == 123, result.stderr
    assert result.stderr_lines == [f"emu: {program}: guest memory (1024 MiB) is too small to load it"]


def test_sixty_4_gib_bss_segments_run_as_on_linux(tmp_path):
    """60 PT_LOADs of 4 GiB each used to hang; demand paging makes them free, so the
    program runs and exits as it does natively (with guest memory above 4 GiB so that
    the heuristic overcommit admits each mapping, as the host's 24 GiB does)."""
    loads = [(0x100000000 * (index + 1), 0, 4 << 30, PF_R | PF_W) for index in range(60)]
    code = store_byte(0x100000000 * 60 + (4 << 30) - 1) + exit_code(5)
    program = build_elf(tmp_path / "sixty", code, loads)
    assert native_status(program) == 5
    result = emu("run", "--memory", "8192", "--timeout", "60", str(program), timeout=120)
    assert result.returncode == 5, result.stderr


def test_program_header_table_checks(tmp_path):
    """load_elf_phdrs: e_phentsize must be sizeof(elf64_phdr) and the table at most
    64 KiB; Linux's execve fails with ENOEXEC (the shell reports exit 126 natively)."""
    too_many = build_elf(tmp_path / "many", exit_code(0), extra_phnum=1200)       # 1201 * 56 > 64 KiB
    result = emu("run", str(too_many), timeout=120)
    assert result.returncode == 2
    assert result.stderr_lines == [f"emu: {too_many}: malformed ELF file (program-header table over 64 KiB)"]
    with pytest.raises(OSError) as caught:
        subprocess.run([str(too_many)], capture_output=True, timeout=60)
    assert caught.value.errno == 8                                                 # ENOEXEC
    fits = build_elf(tmp_path / "fits", exit_code(3), extra_phnum=1000)           # 1001 * 56 < 64 KiB
    assert native_status(fits) == 3
    assert emu("run", str(fits), timeout=120).returncode == 3


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_never_read_as_programs(device):
    result = emu("run", "--timeout", "30", device, timeout=120)
    assert result.returncode == 2
    assert result.stderr_lines == [f"emu: {device}: cannot execute: not a regular file"]
