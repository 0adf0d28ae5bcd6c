"""libunicorn, called directly: the part of Unicorn's C API the emulator uses.

``import unicorn`` cost 31-42 ms of every ``emu run`` on a 2.45 GHz EPYC 7003
beyond loading the shared library itself: pathlib, importlib.resources and
inspect to find the library, ctypes prototypes for the whole API and every
architecture's constants. The emulator calls a dozen functions of one
architecture, so this module loads the same library file the installed
package ships -- found with importlib.util.find_spec, which does not run the
package -- declares those functions, and keeps the binding's conventions
where the emulator's code meets them:

- ``UC_*`` (unicorn_const.py) here and ``x86.UC_X86_*`` (x86_const.py): the
  installed package's own constant files, loaded as files;
- ``UcError(errno)``, whose message is uc_strerror's;
- ``Uc``: ``_uch`` (the engine as a ctypes c_void_p); ``reg_read`` and
  ``reg_write`` of scalars, x87 registers as (mantissa, exponent), XMM/YMM/ZMM
  as ints, GDTR/IDTR/LDTR/TR as (selector, base, limit, flags) and MSRs;
  ``hook_add``/``hook_del`` with callbacks called as (uc, ..., user_data),
  where an exception stops the run and ``emu_start`` raises it
  (``_hook_exception``, which VCpu reads after C-started runs too);
  ``context_save``/``context_restore``, ``mem_map_ptr``, ``emu_start``,
  ``emu_stop`` and the ``ctl_*`` calls the emulator makes.

Where the package's files are not found (another layout), the binding is
imported and its library and constants are used: slower, the same calls.
LIBUNICORN_PATH, the binding's own override, is honoured first as it does;
then the package's library linked again with -Bsymbolic when `make` has made
it (RELINKED_DIRECTORY, emu_x86/emu/unicorn_relink.py: 5% of a hello's
start-up was the loader binding the stock library's references to itself).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys

LIBRARY_NAME = "libunicorn.so.2"
MASK64 = (1 << 64) - 1


def _package_directories() -> list[str]:
    spec = importlib.util.find_spec("unicorn")
    return list(spec.submodule_search_locations or ()) if spec is not None else []


def _load_file_module(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Where `make` puts the package's libunicorn linked again with -Bsymbolic
# (emu_x86/emu/unicorn_relink.py), with a note naming the files it was linked
# from; used only while the note matches the installed package.
RELINKED_DIRECTORY = os.path.join(sys.prefix, "lib", "emu-x86-unicorn")
# How unicorn_relink builds it, in its note: a library built another way
# (1: -Bsymbolic alone; 2: and the TLB fill's state recovery left out, where
# the archive's fill object makes that call; 3: and no huge pages asked for
# on the code buffer; 4: and a smaller first TB hash table) is not used until
# `make` links it again.
RELINK_RECIPE = 4


def library_identity(package_library: str) -> str:
    """What the relinked library stands in for: the package's shared library
    and static archive (lib/libunicorn.a beside it), by real path, size and
    modification time, and RELINK_RECIPE; "" when either file is missing."""
    parts = [f"recipe {RELINK_RECIPE}"]
    for path in (package_library, os.path.join(os.path.dirname(package_library), "libunicorn.a")):
        try:
            real = os.path.realpath(path)
            status = os.stat(real)
        except OSError:
            return ""
        parts.append(f"{real}:{status.st_size}:{status.st_mtime_ns}")
    return "\n".join(parts)


def relinked_library(package_library: str, directory: str = RELINKED_DIRECTORY) -> str | None:
    """The relinked library if its note names ``package_library`` as it is now."""
    relinked = os.path.join(directory, LIBRARY_NAME)
    try:
        with open(relinked + ".source", encoding="utf-8") as handle:
            note = handle.read()
    except OSError:
        return None
    identity = library_identity(package_library)
    return relinked if identity and note == identity and os.path.isfile(relinked) else None


def _load():
    """(library, unicorn_const module, x86_const module)."""
    directories = _package_directories()
    override = os.environ.get("LIBUNICORN_PATH")
    packaged = [os.path.join(directory, "lib", LIBRARY_NAME) for directory in directories]
    packaged = [path for path in packaged if os.path.isfile(path)]
    relinked = relinked_library(packaged[0]) if packaged and not override else None
    candidates = ([os.path.join(override, LIBRARY_NAME)] if override else []) + (
        [relinked] if relinked else []) + packaged
    library_path = next((path for path in candidates if os.path.isfile(path)), None)
    constant_files = [(os.path.join(directory, "unicorn_const.py"), os.path.join(directory, "x86_const.py"))
                      for directory in directories]
    constant_files = next((files for files in constant_files if all(map(os.path.isfile, files))), None)
    if library_path is None or constant_files is None:
        from unicorn import unicorn_const, x86_const
        from unicorn.unicorn_py3 import unicorn as binding
        return binding.uclib, unicorn_const, x86_const
    return (ctypes.CDLL(library_path),
            _load_file_module("emu_x86.emu._unicorn_const", constant_files[0]),
            _load_file_module("emu_x86.emu._unicorn_x86_const", constant_files[1]))


lib, _c, x86 = _load()
# UC_* as the binding exports them (unicorn.UC_HOOK_CODE ... -> uclib.UC_HOOK_CODE).
globals().update({name: value for name, value in vars(_c).items() if name.startswith("UC_")})

_engine, _u64, _u32, _s32, _void_p = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p
for _name, _restype, _argtypes in (
        ("uc_version", ctypes.c_uint, (ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))),
        ("uc_strerror", ctypes.c_char_p, (_s32,)),
        ("uc_open", _s32, (_u32, _u32, ctypes.POINTER(_engine))),
        ("uc_close", _s32, (_engine,)),
        ("uc_reg_read", _s32, (_engine, _s32, _void_p)),
        ("uc_reg_write", _s32, (_engine, _s32, _void_p)),
        ("uc_reg_read_batch", _s32, (_engine, ctypes.POINTER(_s32), ctypes.POINTER(_void_p), _s32)),
        ("uc_reg_write_batch", _s32, (_engine, ctypes.POINTER(_s32), ctypes.POINTER(_void_p), _s32)),
        ("uc_hook_add", _s32, (_engine, ctypes.POINTER(ctypes.c_size_t), _s32, _void_p, _void_p, _u64, _u64)),
        ("uc_hook_del", _s32, (_engine, ctypes.c_size_t)),
        ("uc_emu_start", _s32, (_engine, _u64, _u64, _u64, ctypes.c_size_t)),
        ("uc_emu_stop", _s32, (_engine,)),
        ("uc_mem_map_ptr", _s32, (_engine, _u64, _u64, _u32, _void_p)),
        ("uc_context_alloc", _s32, (_engine, ctypes.POINTER(_void_p))),
        ("uc_context_free", _s32, (_void_p,)),
        ("uc_context_save", _s32, (_engine, _void_p)),
        ("uc_context_restore", _s32, (_engine, _void_p)),
        ("uc_ctl", _s32, (_engine, _s32))):
    _function = getattr(lib, _name)
    _function.restype, _function.argtypes = _restype, _argtypes


class UcError(Exception):
    """A libunicorn error: ``errno`` is its uc_err."""

    def __init__(self, errno: int, *args):
        super().__init__(*args)
        self.errno = errno

    def __str__(self) -> str:
        return lib.uc_strerror(self.errno).decode("ascii")


def _check(status: int) -> None:
    if status != _c.UC_ERR_OK:
        raise UcError(status)


# x86 registers that are not one scalar (unicorn/x86.h's uc_x86_mmr,
# uc_x86_float80, uc_x86_msr and the vector widths).
class _Mmr(ctypes.Structure):
    _fields_ = (("selector", ctypes.c_uint16), ("base", ctypes.c_uint64), ("limit", ctypes.c_uint32),
                ("flags", ctypes.c_uint32))


class _Float80(ctypes.Structure):
    _fields_ = (("mantissa", ctypes.c_uint64), ("exponent", ctypes.c_uint16))


class _Msr(ctypes.Structure):
    _fields_ = (("rid", ctypes.c_uint32), ("value", ctypes.c_uint64))


class TlbEntry(ctypes.Structure):
    """uc_tlb_entry: what a UC_HOOK_TLB_FILL callback fills in."""
    _fields_ = (("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32))


_MMR_IDS = frozenset((x86.UC_X86_REG_IDTR, x86.UC_X86_REG_GDTR, x86.UC_X86_REG_LDTR, x86.UC_X86_REG_TR))
_VECTOR_QWORDS = ((x86.UC_X86_REG_XMM0, x86.UC_X86_REG_XMM31, 2), (x86.UC_X86_REG_YMM0, x86.UC_X86_REG_YMM31, 4),
                  (x86.UC_X86_REG_ZMM0, x86.UC_X86_REG_ZMM31, 8))


def _vector_qwords(reg_id: int) -> int:
    return next((qwords for first, last, qwords in _VECTOR_QWORDS if first <= reg_id <= last), 0)


# Hook callback signatures (unicorn.h's uc_cb_* types); the engine argument
# is replaced by the Uc, the user-data pointer by the hook's user_data.
_CALLBACK = ctypes.CFUNCTYPE
_HOOK_TYPES = {
    "intr": _CALLBACK(None, _engine, ctypes.c_uint32, _void_p),
    "code": _CALLBACK(None, _engine, ctypes.c_uint64, ctypes.c_uint32, _void_p),
    "mem": _CALLBACK(None, _engine, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64, _void_p),
    "mem_invalid": _CALLBACK(ctypes.c_bool, _engine, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
                             ctypes.c_int64, _void_p),
    "insn_invalid": _CALLBACK(ctypes.c_bool, _engine, _void_p),
    "tlb_fill": _CALLBACK(ctypes.c_bool, _engine, ctypes.c_uint64, ctypes.c_int, ctypes.POINTER(TlbEntry), _void_p),
    "insn_in": _CALLBACK(ctypes.c_uint32, _engine, ctypes.c_uint32, ctypes.c_int, _void_p),
    "insn_out": _CALLBACK(None, _engine, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32, _void_p),
    "insn_syscall": _CALLBACK(None, _engine, _void_p),
    "insn_cpuid": _CALLBACK(ctypes.c_uint32, _engine, _void_p),
}
_INSN_KINDS = {x86.UC_X86_INS_IN: "insn_in", x86.UC_X86_INS_OUT: "insn_out",
               x86.UC_X86_INS_SYSCALL: "insn_syscall", x86.UC_X86_INS_SYSENTER: "insn_syscall",
               x86.UC_X86_INS_CPUID: "insn_cpuid"}


def _hook_kind(htype: int, aux1: int) -> str:
    kinds = {_c.UC_HOOK_INTR: "intr", _c.UC_HOOK_CODE: "code", _c.UC_HOOK_BLOCK: "code",
             _c.UC_HOOK_MEM_READ: "mem", _c.UC_HOOK_MEM_WRITE: "mem", _c.UC_HOOK_MEM_FETCH: "mem",
             _c.UC_HOOK_INSN_INVALID: "insn_invalid", _c.UC_HOOK_TLB_FILL: "tlb_fill"}
    invalid = (_c.UC_HOOK_MEM_READ_UNMAPPED | _c.UC_HOOK_MEM_WRITE_UNMAPPED | _c.UC_HOOK_MEM_FETCH_UNMAPPED
               | _c.UC_HOOK_MEM_READ_PROT | _c.UC_HOOK_MEM_WRITE_PROT | _c.UC_HOOK_MEM_FETCH_PROT)
    if htype == _c.UC_HOOK_INSN:
        kind = _INSN_KINDS.get(aux1)
    elif htype & invalid and not htype & ~invalid:
        kind = "mem_invalid"
    elif htype & (_c.UC_HOOK_MEM_READ | _c.UC_HOOK_MEM_WRITE | _c.UC_HOOK_MEM_FETCH) and not htype & ~(
            _c.UC_HOOK_MEM_READ | _c.UC_HOOK_MEM_WRITE | _c.UC_HOOK_MEM_FETCH):
        kind = "mem"
    else:
        kind = kinds.get(htype)
    if kind is None:
        raise UcError(_c.UC_ERR_ARG)
    return kind


def _close(handle: int) -> None:
    if handle and lib is not None:
        lib.uc_close(handle)


class UcContext:
    """A uc_context: ``context`` is the pointer (c_void_p), freed with the object."""

    def __init__(self, engine):
        self.context = ctypes.c_void_p()
        _check(lib.uc_context_alloc(engine, ctypes.byref(self.context)))

    def __del__(self):
        context, self.context = getattr(self, "context", None), None
        if context and lib is not None:
            lib.uc_context_free(context)


class Uc:
    """One libunicorn engine (uc_open), closed when the object goes."""

    def __init__(self, arch: int, mode: int):
        self._uch = ctypes.c_void_p()
        _check(lib.uc_open(arch, mode, ctypes.byref(self._uch)))
        self._arch, self._mode = arch, mode
        self._callbacks: dict[int, object] = {}     # hook handle -> its C function pointer, kept alive
        self._hook_exception: BaseException | None = None

    def __del__(self):
        engine, self._uch = getattr(self, "_uch", None), None
        if engine:
            _close(engine)

    # ---- registers --------------------------------------------------------

    def reg_read(self, reg_id: int, aux=None):
        if reg_id in _MMR_IDS:
            value = _Mmr()
        elif x86.UC_X86_REG_FP0 <= reg_id <= x86.UC_X86_REG_FP7:
            value = _Float80()
        elif reg_id == x86.UC_X86_REG_MSR:
            value = _Msr(rid=aux)
        else:
            qwords = _vector_qwords(reg_id)
            value = (ctypes.c_uint64 * qwords)() if qwords else ctypes.c_uint64()
        status = lib.uc_reg_read(self._uch, reg_id, ctypes.byref(value))
        if status != _c.UC_ERR_OK:
            raise UcError(status, reg_id)
        if isinstance(value, _Mmr):
            return value.selector, value.base, value.limit, value.flags
        if isinstance(value, _Float80):
            return value.mantissa, value.exponent
        if isinstance(value, _Msr):
            return value.value
        if isinstance(value, ctypes.Array):
            return sum(qword << (64 * index) for index, qword in enumerate(value))
        return value.value

    def reg_write(self, reg_id: int, value) -> None:
        if reg_id in _MMR_IDS:
            raw = _Mmr(*value)
        elif x86.UC_X86_REG_FP0 <= reg_id <= x86.UC_X86_REG_FP7:
            raw = _Float80(*value)
        elif reg_id == x86.UC_X86_REG_MSR:
            raw = _Msr(*value)
        else:
            qwords = _vector_qwords(reg_id)
            raw = ((ctypes.c_uint64 * qwords)(*((value >> (64 * index)) & MASK64 for index in range(qwords)))
                   if qwords else ctypes.c_uint64(value & MASK64))
        status = lib.uc_reg_write(self._uch, reg_id, ctypes.byref(raw))
        if status != _c.UC_ERR_OK:
            raise UcError(status, reg_id)

    # ---- hooks --------------------------------------------------------------

    def hook_add(self, htype: int, callback, user_data=None, begin: int = 1, end: int = 0,
                 aux1: int = 0, aux2: int = 0) -> int:
        kind = _hook_kind(htype, aux1)
        returns_value = _HOOK_TYPES[kind]._restype_ is not None

        def call(_engine_pointer, *arguments):
            try:
                if kind == "tlb_fill":
                    vaddr, access, entry, _ = arguments
                    return callback(self, vaddr, access, entry.contents, user_data)
                return callback(self, *arguments[:-1], user_data)
            except BaseException as error:       # as the binding: the first one is raised by emu_start
                if self._hook_exception is None:
                    self._hook_exception = error
                lib.uc_emu_stop(self._uch)
                return 0 if returns_value else None

        function = _HOOK_TYPES[kind](call)
        handle = ctypes.c_size_t()
        extra = (ctypes.c_int(aux1),) if htype == _c.UC_HOOK_INSN else ()
        _check(lib.uc_hook_add(self._uch, ctypes.byref(handle), htype, ctypes.cast(function, ctypes.c_void_p),
                               None, begin, end, *extra))
        self._callbacks[handle.value] = function
        return handle.value

    def hook_del(self, handle: int) -> None:
        _check(lib.uc_hook_del(self._uch, handle))
        del self._callbacks[handle]

    # ---- running ------------------------------------------------------------

    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        self._hook_exception = None
        _check(lib.uc_emu_start(self._uch, begin, until, timeout, count))
        if self._hook_exception is not None:
            raise self._hook_exception

    def emu_stop(self) -> None:
        _check(lib.uc_emu_stop(self._uch))

    def mem_map_ptr(self, address: int, size: int, perms: int, pointer: int) -> None:
        _check(lib.uc_mem_map_ptr(self._uch, address, size, perms, pointer))

    def context_save(self) -> UcContext:
        context = UcContext(self._uch)
        _check(lib.uc_context_save(self._uch, context.context))
        return context

    def context_restore(self, context: UcContext) -> None:
        _check(lib.uc_context_restore(self._uch, context.context))

    # ---- uc_ctl -------------------------------------------------------------

    def _ctl_write(self, control: int, *arguments) -> None:
        # uc.h UC_CTL(type, nr, rw): rw in bits 30-31, the argument count in 26-29.
        _check(lib.uc_ctl(self._uch, (_c.UC_CTL_IO_WRITE << 30) | (len(arguments) << 26) | control,
                          *arguments))

    def ctl_set_tlb_mode(self, mode: int) -> None:
        self._ctl_write(_c.UC_CTL_TLB_TYPE, ctypes.c_uint(mode))

    def ctl_flush_tb(self) -> None:
        self._ctl_write(_c.UC_CTL_TB_FLUSH)

    def ctl_remove_cache(self, lbound: int, ubound: int) -> None:
        self._ctl_write(_c.UC_CTL_TB_REMOVE_CACHE, ctypes.c_uint64(lbound), ctypes.c_uint64(ubound))

    def ctl_exits_enabled(self, enable: bool) -> None:
        self._ctl_write(_c.UC_CTL_UC_USE_EXITS, ctypes.c_int(enable))

    def ctl_set_tcg_buffer_size(self, size: int) -> None:
        self._ctl_write(_c.UC_CTL_TCG_BUFFER_SIZE, ctypes.c_uint32(size))


def library_file() -> str:
    """The path of the loaded libunicorn."""
    return lib._name


__all__ = ["TlbEntry", "Uc", "UcContext", "UcError", "lib", "library_file", "x86"]
