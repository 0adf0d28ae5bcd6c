"""The installed Unicorn's libunicorn, linked again with -Bsymbolic.

The wheel's libunicorn.so.2 refers to its own functions and data through
~30,000 relocations against its own exported symbols (R_X86_64_64 and
GLOB_DAT), which the dynamic linker resolves by symbol lookup at every
load: 24 M host instructions, about 5% of a glibc hello's `emu run`
(callgrind). The package also ships the same objects as lib/libunicorn.a;
linked with -Bsymbolic those references bind at link time, leaving the
loader relative relocations only (1.1 M instructions), and calls inside the
library go direct instead of through its PLT. The code is the package's
own objects, with three changes (below), none of which changes what a guest
computes.

The first: Unicorn's TLB fill (qemu/softmmu/unicorn_vtlb.c,
unicorn_fill_tlb) first recovers the guest state at the host PC of the
access -- cpu_restore_state: a search of the tree of translated blocks, then
a replay of the block's instruction-start table -- only so that a
UC_HOOK_TLB_FILL hook could read RIP. The emulator's fill hook
(mmu/tlb.c, mmu_on_tlb_fill) reads no register, and that recovery cost
450-1,000 host instructions per fill (callgrind; it replays the block from
its start): a quarter of a step of the bench's 64 MiB pointer chase (1,880
host instructions, 1,430 without it). So in that object alone the call goes to a stand-in
that recovers nothing, leaving the CPU state as a TLB hit leaves it. A fill
that fails raises through cpu_loop_exit_restore, in another object, which
still recovers the state for the fault. A fill hook that reads registers
would read a stale RIP under this library; the emulator adds none.

The second: QEMU's tcg_exec_init (accel/tcg/translate-all.c,
alloc_code_gen_buffer) asks for transparent huge pages on each instance's
code buffer (madvise MADV_HUGEPAGE). Writing the prologue then faults in a
whole 2 MiB page, which the kernel zeroes, though a run translates a few
hundred KiB: one such page per vCPU, and with 64 vCPUs 128 MiB zeroed at
start-up -- half the CPU of a glibc hello on 64 vCPUs (perf, clear_page_erms
under tcg_out_opc), and its slowest and most variable part on a VM whose
host backs the memory on first touch. In the x86-64 translate-all object
that advice is dropped (any other goes to qemu_madvise unchanged), so the
buffer fills in 4 KiB pages as it is written. Guest memory keeps its huge
pages (memory.py asks for them itself).

The third: the same function creates the hash table of translated blocks
(tb_htable_init) for 32,768 of them -- 512 KiB of buckets, zeroed and
faulted in for every vCPU, about half of a Unicorn instance's
initialisation -- in QEMU's auto-resize mode, where the table doubles as
blocks are added. It starts at TB_HASH_START_ELEMENTS instead (64 KiB of
buckets; a glibc hello translates ~1,200 blocks).

``python -m emu_x86.emu.unicorn_relink`` (run by `make` after installing)
links it into emu_x86.emu.uclib.RELINKED_DIRECTORY with a note naming the
files it came from (uclib.library_identity). uclib loads it only while the
note matches the installed package, so upgrading Unicorn falls back to the
package's library until the next `make`. Without gcc, or without the
archive, nothing is linked and the package's library is used.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from emu_x86.emu import uclib

# The fill object, its function, and the call it makes to no purpose here
# (see above); the stand-in is hidden, so the library exports what the
# package's does.
FILL_OBJECT = "unicorn_vtlb.c.o"
FILL_FUNCTION = "unicorn_fill_tlb_x86_64"
FILL_STATE_RECOVERY = "cpu_restore_state_x86_64"
FILL_STAND_IN = "emu_fill_tlb_keeps_state"
FILL_STAND_IN_SOURCE = f"""
#include <stdbool.h>
#include <stdint.h>
/* cpu_restore_state's signature; false: nothing was recovered. */
__attribute__((visibility("hidden"))) bool {FILL_STAND_IN}(void *cpu, uintptr_t host_pc, bool will_exit)
{{
    (void)cpu; (void)host_pc; (void)will_exit;
    return false;
}}
"""

# The code buffer's allocation (see above): the x86-64 translate-all object,
# known by the function it defines, and its madvise wrapper.
CODE_BUFFER_OBJECT = "translate-all.c.o"
CODE_BUFFER_FUNCTION = "tcg_exec_init_x86_64"
CODE_BUFFER_MADVISE = "qemu_madvise"
CODE_BUFFER_STAND_IN = "emu_code_buffer_madvise"
CODE_BUFFER_STAND_IN_SOURCE = f"""
#include <stddef.h>
#include <sys/mman.h>
int {CODE_BUFFER_MADVISE}(void *addr, size_t len, int advice);
/* qemu_madvise, without the huge pages QEMU asks for on the code buffer. */
__attribute__((visibility("hidden"))) int {CODE_BUFFER_STAND_IN}(void *addr, size_t len, int advice)
{{
    if (advice == MADV_HUGEPAGE)
        return 0;
    return {CODE_BUFFER_MADVISE}(addr, len, advice);
}}
"""

# The TB hash table (see above), made by the same function of the same object.
TB_HASH_INIT = "qht_init"
TB_HASH_STAND_IN = "emu_tb_htable_init"
TB_HASH_START_ELEMENTS = 1 << 12
TB_HASH_STAND_IN_SOURCE = f"""
#include <stddef.h>
#define QHT_MODE_AUTO_RESIZE 0x1    /* include/qemu/qht.h */
struct qht;
void {TB_HASH_INIT}(struct qht *ht, void *cmp, size_t n_elems, unsigned int mode);
/* qht_init, starting a growing table at {TB_HASH_START_ELEMENTS} elements. */
__attribute__((visibility("hidden"))) void {TB_HASH_STAND_IN}(struct qht *ht, void *cmp, size_t n_elems,
                                                                unsigned int mode)
{{
    if ((mode & QHT_MODE_AUTO_RESIZE) && n_elems > {TB_HASH_START_ELEMENTS})
        n_elems = {TB_HASH_START_ELEMENTS};
    {TB_HASH_INIT}(ht, cmp, n_elems, mode);
}}
"""

# (object, a function it defines, the call redirected, the stand-in and its source)
PATCHES = (
    (FILL_OBJECT, FILL_FUNCTION, FILL_STATE_RECOVERY, FILL_STAND_IN, FILL_STAND_IN_SOURCE),
    (CODE_BUFFER_OBJECT, CODE_BUFFER_FUNCTION, CODE_BUFFER_MADVISE, CODE_BUFFER_STAND_IN,
     CODE_BUFFER_STAND_IN_SOURCE),
    (CODE_BUFFER_OBJECT, CODE_BUFFER_FUNCTION, TB_HASH_INIT, TB_HASH_STAND_IN, TB_HASH_STAND_IN_SOURCE),
)

# The library's entry points: the linker pulls in from the archive what they
# reach, as the package's own shared build does (its dynamic symbols match,
# tests/test_unicorn_relink.py).
ENTRY_PREFIX = "uc_"


def _entry_points(package_library: str) -> list[str]:
    from elftools.elf.elffile import ELFFile
    with open(package_library, "rb") as handle:
        symbols = ELFFile(handle).get_section_by_name(".dynsym")
        return sorted({symbol.name for symbol in symbols.iter_symbols()
                       if symbol.name.startswith(ENTRY_PREFIX) and symbol["st_shndx"] != "SHN_UNDEF"
                       and symbol["st_info"]["type"] == "STT_FUNC"})


def _archive_members(archive: str):
    """(name, bytes) of each member of a System V/GNU ``ar`` archive, in
    order; names repeat (the archive has one unicorn_vtlb.c.o per target)."""
    with open(archive, "rb") as handle:
        data = handle.read()
    if not data.startswith(b"!<arch>\n"):
        raise OSError(f"{archive}: not an ar archive")
    position, long_names = 8, b""
    while position + 60 <= len(data):
        header = data[position:position + 60]
        name, size = header[:16].decode("latin-1").rstrip(), int(header[48:58])
        body = data[position + 60:position + 60 + size]
        position += 60 + size + (size & 1)
        if name == "//":                       # the GNU table of long names
            long_names = body
            continue
        if name.startswith("/") and name[1:].isdigit():
            offset = int(name[1:])
            name = long_names[offset:long_names.index(b"/\n", offset)].decode("latin-1")
        elif name == "/":                      # the symbol index
            continue
        yield name.rstrip("/"), body


def _symbols(object_bytes: bytes) -> tuple[set[str], set[str]]:
    """(defined, undefined) symbol names of an ELF relocatable object."""
    import io

    from elftools.elf.elffile import ELFFile
    table = ELFFile(io.BytesIO(object_bytes)).get_section_by_name(".symtab")
    defined, undefined = set(), set()
    for symbol in table.iter_symbols() if table is not None else ():
        if symbol.name:
            (undefined if symbol["st_shndx"] == "SHN_UNDEF" else defined).add(symbol.name)
    return defined, undefined


def _patched_objects(archive: str, work: str) -> list[str]:
    """For each object of PATCHES in the archive (the member defining the
    patch's function): that object with each patched call it makes sent to
    its stand-in, and the stand-ins -- object files to link before the
    archive (which then contributes no copy of its own). A call the object
    does not make (another Unicorn) is left out."""
    by_object: dict = {}
    for object_name, function, call, stand_in, source in PATCHES:
        by_object.setdefault((object_name, function), []).append((call, stand_in, source))
    objects = []
    for name, body in _archive_members(archive):
        for (object_name, function), patches in list(by_object.items()):
            if name != object_name:
                continue
            defined, undefined = _symbols(body)
            if function not in defined:
                continue
            del by_object[object_name, function]
            patches = [patch for patch in patches if patch[0] in undefined]
            if not patches:
                continue
            stem = os.path.join(work, function)
            with open(stem + ".original.o", "wb") as handle:
                handle.write(body)
            subprocess.run(["objcopy", *(f"--redefine-sym={call}={stand_in}" for call, stand_in, _ in patches),
                            stem + ".original.o", stem + ".patched.o"], check=True, capture_output=True, text=True)
            objects.append(stem + ".patched.o")
            for _, stand_in, source in patches:
                with open(os.path.join(work, stand_in + ".c"), "w", encoding="utf-8") as handle:
                    handle.write(source)
                subprocess.run(["gcc", "-O2", "-fPIC", "-c", os.path.join(work, stand_in + ".c"),
                                "-o", os.path.join(work, stand_in + ".o")], check=True, capture_output=True, text=True)
                objects.append(os.path.join(work, stand_in + ".o"))
    return objects


def package_library() -> str | None:
    for directory in uclib._package_directories():
        path = os.path.join(directory, "lib", uclib.LIBRARY_NAME)
        if os.path.isfile(path):
            return path
    return None


def relink(package: str, directory: str = uclib.RELINKED_DIRECTORY) -> str:
    """Link ``package``'s archive into ``directory`` (whole or not at all) and
    write its note; the library's path. Raises OSError or
    subprocess.CalledProcessError when it cannot."""
    identity = uclib.library_identity(package)
    if not identity:
        raise OSError(f"no libunicorn.a beside {package}")
    archive = os.path.join(os.path.dirname(package), "libunicorn.a")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, uclib.LIBRARY_NAME)
    handle, partial = tempfile.mkstemp(prefix=uclib.LIBRARY_NAME + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        with tempfile.TemporaryDirectory(dir=directory) as work:
            arguments = os.path.join(work, "link.args")
            with open(arguments, "w", encoding="utf-8") as handle:
                # The ~100 entry points as -u options, through a response file.
                handle.write("\n".join(f"-Wl,-u,{name}" for name in _entry_points(package)))
            objects = _patched_objects(archive, work)
            subprocess.run(["gcc", "-shared", "-o", partial, f"@{arguments}", *objects, archive,
                            "-Wl,-Bsymbolic", f"-Wl,-soname,{uclib.LIBRARY_NAME}", "-Wl,-z,noexecstack",
                            "-lm", "-lpthread"], check=True, capture_output=True, text=True)
        # The library first, then its note: a note matching the installed
        # package is only ever read beside the library linked from it (an
        # older note does not match it, and the package's library is used).
        note = target + ".source"
        with open(note + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(identity)
        os.chmod(partial, 0o755)         # mkstemp's file is the owner's alone
        os.replace(partial, target)
        os.replace(note + ".tmp", note)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def main() -> int:
    package = package_library()
    if package is None:
        print("emu: libunicorn not relinked: the unicorn package's library was not found", file=sys.stderr)
        return 0
    started = time.monotonic()
    try:
        target = relink(package)
    except FileNotFoundError as error:
        print(f"emu: libunicorn not relinked: {error.filename or error}: not found", file=sys.stderr)
        return 0
    except subprocess.CalledProcessError as error:
        last = (error.stderr or "").strip().splitlines()[-1:] or ["gcc failed"]
        print(f"emu: libunicorn not relinked: {last[0]}", file=sys.stderr)
        return 0
    except OSError as error:
        print(f"emu: libunicorn not relinked: {error}", file=sys.stderr)
        return 0
    print(f"linked {target} with -Bsymbolic ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
