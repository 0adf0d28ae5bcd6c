"""emu's GNU-as compatible assembler: a host toolchain the loader calls for ``.s``, ``.S`` and ``.asm``.

It is not part of the guest kernel: it turns a source file into the same
``ProgramImage`` the ELF loader produces (emu_x86/kernel/loader/image.py), with
GNU as's semantics (emu_x86/emuas/assembler.py has the model).
"""
from emu_x86.emuas.assembler import (EXTRA_ENCODERS, INCLUDE_DIR, TEXT_BASE, Assembly, AssemblyError, assemble,
                             assemble_file, assemble_source)

__all__ = ["EXTRA_ENCODERS", "INCLUDE_DIR", "TEXT_BASE", "Assembly", "AssemblyError", "assemble", "assemble_file",
           "assemble_source"]
