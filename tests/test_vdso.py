"""The vDSO image (emu_x86/kernel/vdso/): built from its source, shaped as glibc's setup_vdso
and dl_vdso_vsym need it, and kept in step with the clock the kernel reports."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from emu_x86.kernel.vdso import IMAGE_PATH, VVAR_PAGES, build
from tests.guestbuild import IN_CI

GLIBC_LOOKUPS = ("__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_clock_getres",
                 "__vdso_getcpu")


# Skipped only outside CI, as the other binutils tests (tests/test_isa_encoding.py):
# under CI=true a missing as/ld fails here instead of passing unseen.
@pytest.mark.skipif(not build.tools_available() and not IN_CI, reason="GNU as/ld not installed")
def test_committed_image_is_what_the_source_builds():
    assert build.build_image() == Path(IMAGE_PATH).read_bytes(), "run python -m emu_x86.kernel.vdso.build"


def test_image_exports_the_symbols_glibc_looks_up_with_version_linux_2_6():
    elf = ELFFile(io.BytesIO(Path(IMAGE_PATH).read_bytes()))
    assert elf.header.e_type == "ET_DYN"
    loads = [segment for segment in elf.iter_segments() if segment.header.p_type == "PT_LOAD"]
    assert len(loads) == 1 and loads[0].header.p_vaddr == 0          # one mapping, position independent
    assert any(segment.header.p_type == "PT_DYNAMIC" for segment in elf.iter_segments())
    dynamic = elf.get_section_by_name(".dynamic")
    tags = {tag.entry.d_tag for tag in dynamic.iter_tags()}
    assert {"DT_HASH", "DT_GNU_HASH", "DT_SYMTAB", "DT_STRTAB", "DT_VERSYM", "DT_VERDEF"} <= tags
    symbols = elf.get_section_by_name(".dynsym")
    versym = elf.get_section_by_name(".gnu.version")
    verdef = elf.get_section_by_name(".gnu.version_d")
    names_by_index = {}
    for definition, auxiliaries in verdef.iter_versions():
        names_by_index[definition.entry.vd_ndx] = next(iter(auxiliaries)).name
    exported = {}
    for index, symbol in enumerate(symbols.iter_symbols()):
        if symbol.entry.st_info.type == "STT_FUNC":
            exported[symbol.name] = names_by_index[versym.get_symbol(index).entry.ndx]
    for name in GLIBC_LOOKUPS:
        assert exported.get(name) == "LINUX_2.6"
        assert exported.get(name.removeprefix("__vdso_")) == "LINUX_2.6"   # the plain aliases, as Linux's


def test_code_reads_the_data_page_the_kernel_maps_below_it():
    """vdso.lds places vvar_page VVAR_PAGES pages below the image, which is where
    Vdso.map puts [vvar]; the image itself fits the one page Vdso.map gives it."""
    elf = ELFFile(io.BytesIO(Path(IMAGE_PATH).read_bytes()))
    symbols = {symbol.name: symbol.entry.st_value for symbol in elf.get_section_by_name(".symtab").iter_symbols()}
    assert symbols["vvar_page"] == (1 << 64) - VVAR_PAGES * 4096
    assert max(segment.header.p_memsz for segment in elf.iter_segments()) <= 4096
