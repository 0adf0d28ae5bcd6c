"""cffi builder for the C hot path (emu/timing/hotpath.c).

setup.py lists this file in ``cffi_modules`` so the extension
``emu.timing._hotpath`` is compiled when the package installs.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent

ffibuilder = FFI()
header = (HERE / "hotpath.h").read_text()
# cffi's cdef does not take preprocessor lines.
ffibuilder.cdef("\n".join(l for l in header.splitlines() if not l.startswith("#")))
ffibuilder.cdef('extern "Python" static void hotpath_block_miss(int, uint64_t, uint32_t);')
ffibuilder.set_source(
    "emu.timing._hotpath",
    '#include "hotpath.h"\n' + (HERE / "hotpath.c").read_text().replace('#include "hotpath.h"', ""),
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
