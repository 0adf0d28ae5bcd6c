"""libunicorn linked again with -Bsymbolic (emu_x86/emu/unicorn_relink.py):
it exports what the package's library exports, uclib takes it only while
its note names the installed package's files, and a run under it is the
run under the package's library, output and statistics alike."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile

from emu_x86.emu import uclib, unicorn_relink
from tests.guestbuild import build_c, missing_prerequisite

THREADS = r'''
#include <pthread.h>
#include <stdio.h>
static long total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg) {
    for (int i = 0; i < 2000; i++) { pthread_mutex_lock(&lock); total += (long)arg; pthread_mutex_unlock(&lock); }
    return 0;
}
int main(void) {
    pthread_t threads[3];
    for (long i = 0; i < 3; i++) pthread_create(&threads[i], 0, work, (void *)(i + 1));
    for (int i = 0; i < 3; i++) pthread_join(threads[i], 0);
    printf("total %ld\n", total);
    return 0;
}
'''


@pytest.fixture(scope="module")
def relinked(tmp_path_factory):
    package = unicorn_relink.package_library()
    if package is None or shutil.which("gcc") is None:
        missing_prerequisite("needs the unicorn package's library and gcc")
    directory = tmp_path_factory.mktemp("relinked")
    return package, unicorn_relink.relink(package, str(directory))


def dynamic_symbols(path: str) -> set[str]:
    with open(path, "rb") as handle:
        section = ELFFile(handle).get_section_by_name(".dynsym")
        return {symbol.name for symbol in section.iter_symbols() if symbol["st_shndx"] != "SHN_UNDEF"}


def symbol_relocations(path: str) -> int:
    """Dynamic relocations that need a symbol lookup (all but R_X86_64_RELATIVE)."""
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        return sum(1 for section in elf.iter_sections() if section.name in (".rela.dyn",)
                   for relocation in section.iter_relocations() if relocation["r_info_type"] != 8)


def test_it_exports_what_the_package_library_exports(relinked):
    package, library = relinked
    assert dynamic_symbols(library) == dynamic_symbols(package) - {"_init", "_fini"}
    assert "tlb_flush_page_x86_64" in dynamic_symbols(library)       # unicorn_internals looks it up
    # The point of it: the references to its own symbols are bound at link time.
    assert symbol_relocations(package) > 20_000 and symbol_relocations(library) < 100


def test_uclib_takes_it_only_while_the_note_matches(relinked):
    package, library = relinked
    directory = os.path.dirname(library)
    assert uclib.relinked_library(package, directory) == library
    note = library + ".source"
    with open(note) as handle:
        original = handle.read()
    try:
        with open(note, "w") as handle:
            handle.write(original.replace(":", ";", 1))      # another build of the package
        assert uclib.relinked_library(package, directory) is None
        os.unlink(note)
        assert uclib.relinked_library(package, directory) is None
    finally:
        with open(note, "w") as handle:
            handle.write(original)
    assert uclib.relinked_library(package, directory + "-absent") is None


def test_a_run_under_it_is_the_run_under_the_package_library(relinked, tmp_path):
    """Chosen by LIBUNICORN_PATH, through directories of names of one length:
    the guest sees the emulator's environment, so the two runs' must be the
    same size."""
    package, library = relinked
    program = build_c(THREADS)
    outcomes = []
    for name, source in (("lib-a", package), ("lib-b", library)):
        directory = tmp_path / name
        directory.mkdir()
        (directory / uclib.LIBRARY_NAME).symlink_to(source)
        stats = tmp_path / f"{name}.json"
        env = {**os.environ, "LIBUNICORN_PATH": str(directory), "EMU_SERVER": "off"}
        probe = ("import os, sys\nfrom emu_x86.emu import uclib\n"
                 "sys.stderr.write('LIB ' + os.path.realpath(uclib.lib._name) + '\\n')\n"
                 "from emu_x86.emucli.main import main\nsys.exit(main(sys.argv[1:]))\n")
        result = subprocess.run([sys.executable, "-c", probe, "run", "--cpus", "2", "--stats", str(stats),
                                 str(program)], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert f"LIB {os.path.realpath(source)}\n" in result.stderr
        outcomes.append((result.stdout, json.loads(stats.read_text())))
    assert outcomes[0][0] == "total 12000\n"
    assert outcomes[0] == outcomes[1]
