"""cffi builder for the C hot path (emu_x86/emu/timing/hotpath.c, emu_x86/emu/timing/preempt.c, emu_x86/emu/mmu/tlb.c, emu_x86/emu/isa/amx_fast.c,
emu_x86/emu/isa/xstate_fast.c, emu_x86/emu/registers_fast.c, emu_x86/emu/runqueue_scan.c).

setup.py lists this file in ``cffi_modules`` so the extension
``emu.timing._hotpath`` is compiled when the package installs.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent
MMU = HERE.parent / "mmu"
ISA = HERE.parent / "isa"
EMU = HERE.parent

ffibuilder = FFI()
for header in (HERE / "hotpath.h", HERE / "cache.h", HERE / "preempt.h", MMU / "tlb.h", ISA / "amx_fast.h", ISA / "xstate_fast.h",
               EMU / "registers_fast.h", EMU / "runqueue_scan.h"):
    # cffi's cdef takes "#define NAME integer" but no other preprocessor lines.
    ffibuilder.cdef("\n".join(line for line in header.read_text().splitlines()
                              if not line.startswith("#") or line.startswith("#define")))
ffibuilder.cdef('extern "Python" static void hotpath_block_miss(int, uint64_t, uint32_t);')
ffibuilder.set_source(
    "emu_x86.emu.timing._hotpath",
    '#include "hotpath.h"\n#include "cache.h"\n#include "preempt.h"\n#include "tlb.h"\n#include "amx_fast.h"\n#include "xstate_fast.h"\n'
    '#include "registers_fast.h"\n#include "runqueue_scan.h"\n' + (HERE / "hotpath.c").read_text().replace('#include "hotpath.h"', ""),
    sources=[str(HERE / "preempt.c"), str(MMU / "tlb.c"), str(HERE / "cache.c"), str(HERE / "abort_guard.c"), str(ISA / "amx_fast.c"), str(ISA / "xstate_fast.c"),
             str(EMU / "registers_fast.c"), str(EMU / "runqueue_scan.c")],
    include_dirs=[str(HERE), str(MMU), str(ISA), str(EMU)],
    # -O2 vectorises amx_fast.c's int16 dot products (pmaddwd, baseline x86-64);
    # no fused multiply-add, so TDPBF16PS rounds each product and sum as the SDM does.
    extra_compile_args=["-O2", "-ffp-contract=off"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
