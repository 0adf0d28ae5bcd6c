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

# Page faults in the middle of blocks, reads and writes, each reported with
# the faulting RIP: the relinked TLB fill skips recovering the CPU state,
# and a fill that faults must still recover it (cpu_loop_exit_restore).
FAULTS = r'''
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#define PAGES 48
static char *pages;
static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    long offset = (char *)info->si_addr - pages;
    printf("fault page %ld offset %ld rip %llx\n", offset / 4096, offset % 4096,
           (unsigned long long)uc->uc_mcontext.gregs[REG_RIP]);
    mprotect(pages + offset / 4096 * 4096, 4096, PROT_READ | PROT_WRITE);
    (void)sig;
}
int main(void) {
    pages = mmap(0, PAGES * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, 0);
    volatile char *p = pages;
    long sum = 0;
    for (long i = 0; i < PAGES; i++) {
        p[i * 4096 + (i * 64) % 4096] = (char)(i + 1);      /* a write fault on each page */
        sum += p[((i * 7) % PAGES) * 4096 + (i * 64) % 4096]; /* a read, of a page not yet touched or not */
    }
    printf("sum %ld\n", sum);
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


@pytest.mark.parametrize("function, call, stand_in",
                         [(function, call, stand_in) for _, function, call, stand_in, _ in unicorn_relink.PATCHES],
                         ids=["tlb-fill-keeps-state", "code-buffer-without-huge-pages", "smaller-first-tb-table"])
def test_its_changes_are_the_three_it_documents(relinked, function, call, stand_in):
    """The changes to the package's code (unicorn_relink's docstring): the TLB
    fill calls the hidden stand-in where the package's recovers the CPU state,
    and tcg_exec_init calls the madvise stand-in (no MADV_HUGEPAGE) where the
    package's calls qemu_madvise, and the qht_init stand-in (a smaller first
    table) where the package's calls qht_init."""
    package, library = relinked

    def calls(path: str) -> str:
        listing = subprocess.run(["objdump", "-d", f"--disassemble={function}", path],
                                 capture_output=True, text=True, check=True).stdout
        return "\n".join(line for line in listing.splitlines() if "call" in line)
    assert call in calls(package)
    relinked_calls = calls(library)
    assert stand_in in relinked_calls
    assert f"<{call}" not in relinked_calls


@pytest.mark.parametrize("source, cpus, expected", [
    (THREADS, 2, "total 12000\n"),
    (FAULTS, 1, None),           # None: what the program prints natively
], ids=["threads", "faults"])
def test_a_run_under_it_is_the_run_under_the_package_library(relinked, tmp_path, source, cpus, expected):
    """Chosen by LIBUNICORN_PATH, through directories of names of one length:
    the guest sees the emulator's environment, so the two runs' must be the
    same size."""
    package, library = relinked
    program = build_c(source)
    if expected is None:
        expected = subprocess.run([str(program)], capture_output=True, text=True, timeout=60, check=True).stdout
        # Each page faults once, at its first access: by the write, or by
        # a read that runs ahead of it (two RIPs).
        assert expected.count("fault page") == 48, expected
        assert len({line.split(" rip ")[1] for line in expected.splitlines() if " rip " in line}) == 2, expected
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
        result = subprocess.run([sys.executable, "-c", probe, "run", "--cpus", str(cpus), "--stats", str(stats),
                                 str(program)], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert f"LIB {os.path.realpath(source)}\n" in result.stderr
        outcomes.append((result.stdout, json.loads(stats.read_text())))
    assert outcomes[0][0] == expected
    assert outcomes[0] == outcomes[1]
