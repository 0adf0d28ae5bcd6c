"""emu_x86/emu/uclib.py against Unicorn's own Python binding: the same
library, the same constants, the same register shapes and hook conventions,
and a run of `emu` never imports the binding."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
import unicorn
from unicorn import x86_const

from emu_x86.emu import uclib
from tests.guestbuild import build_c

CODE = 0x1000


def test_the_same_library_and_constants():
    from unicorn.unicorn_py3 import unicorn as binding
    # The binding's library, or that library's objects linked again with
    # -Bsymbolic by `make` (emu_x86/emu/unicorn_relink.py) while its note names it.
    expected = uclib.relinked_library(binding.uclib._name) or binding.uclib._name
    assert os.path.realpath(uclib.library_file()) == os.path.realpath(expected)
    for name, value in vars(unicorn.unicorn_const).items():
        if name.startswith("UC_"):
            assert getattr(uclib, name) == value, name
    for name, value in vars(x86_const).items():
        if name.startswith("UC_X86_"):
            assert getattr(uclib.x86, name) == value, name


@pytest.mark.parametrize("register, value", [
    (x86_const.UC_X86_REG_RAX, 0x0123_4567_89AB_CDEF),
    (x86_const.UC_X86_REG_XMM3, (0xDEAD << 64) | 0xBEEF),
    (x86_const.UC_X86_REG_YMM2, (7 << 192) | (5 << 128) | (3 << 64) | 1),
    (x86_const.UC_X86_REG_GDTR, (0, 0xFFFF_8000_0000_1000, 0x7F, 0)),
    (x86_const.UC_X86_REG_FP1, (0x8000_0000_0000_0000, 0x3FFF)),
])
def test_registers_read_back_in_the_bindings_shapes(register, value):
    ours = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
    theirs = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    ours.reg_write(register, value)
    theirs.reg_write(register, value)
    assert ours.reg_read(register) == theirs.reg_read(register)


def test_an_msr_and_a_bad_register():
    ours = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
    ours.reg_write(x86_const.UC_X86_REG_MSR, (0xC000_0102, 0x1234_5000))      # IA32_KERNEL_GS_BASE
    assert ours.reg_read(x86_const.UC_X86_REG_MSR, 0xC000_0102) == 0x1234_5000
    with pytest.raises(uclib.UcError) as error:
        ours.hook_add(1 << 30, lambda *args: None)
    assert error.value.errno == uclib.UC_ERR_ARG and str(error.value) == str(unicorn.UcError(unicorn.UC_ERR_ARG))


def run_program(engine, program: bytes) -> None:
    memory = bytearray(0x2000)
    buffer = (ctypes.c_char * len(memory)).from_buffer(memory)
    engine.mem_map_ptr(0, len(memory), uclib.UC_PROT_ALL, ctypes.addressof(buffer))
    memory[CODE:CODE + len(program)] = program
    engine._keep = (memory, buffer)
    engine.emu_start(CODE, CODE + len(program))


def test_hooks_see_the_engine_and_user_data_and_context_round_trips():
    ours = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
    seen = []
    handle = ours.hook_add(uclib.UC_HOOK_CODE, lambda uc, address, size, data: seen.append(
        (uc is ours, address, size, data)), "data")
    ours.hook_add(uclib.UC_HOOK_INSN, lambda uc, data: uc.reg_write(x86_const.UC_X86_REG_RAX, 0x77) or 1,
                  None, 1, 0, x86_const.UC_X86_INS_CPUID)
    run_program(ours, b"\x48\xc7\xc0\x05\x00\x00\x00" + b"\x0f\xa2")        # mov rax, 5; cpuid
    assert seen[0] == (True, CODE, 7, "data") and ours.reg_read(x86_const.UC_X86_REG_RAX) == 0x77
    saved = ours.context_save()
    ours.reg_write(x86_const.UC_X86_REG_RAX, 1)
    ours.context_restore(saved)
    assert ours.reg_read(x86_const.UC_X86_REG_RAX) == 0x77
    ours.hook_del(handle)
    assert handle not in ours._callbacks


def test_a_callbacks_exception_stops_the_run_and_is_raised():
    ours = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)
    calls = []

    def failing(uc, address, size, data):
        calls.append(address)
        raise LookupError("from the hook")

    ours.hook_add(uclib.UC_HOOK_CODE, failing)
    with pytest.raises(LookupError, match="from the hook"):
        run_program(ours, b"\x90" * 4)
    assert calls == [CODE], "the run stopped at the first call"


def test_a_hello_run_never_imports_the_binding(tmp_path):
    program = build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    probe = ("import sys\n"
             "sys.argv = ['emu', 'run', sys.argv[1]]\n"
             "from emu_x86.emucli.launch import main\n"
             "status = main()\n"
             "print(sorted(name for name in sys.modules if name == 'unicorn' or name.startswith('unicorn.')))\n"
             "sys.exit(status)\n")
    env = {**os.environ, "EMU_SERVER": "off", "EMU_BLOCK_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", probe, str(program)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n[]\n"


def test_libunicorn_path_is_honoured_first_and_the_binding_is_the_fallback(tmp_path):
    """LIBUNICORN_PATH (the binding's own override) names the library's
    directory; without the package's files uclib falls back to the binding's
    library and constants."""
    from unicorn.unicorn_py3 import unicorn as binding
    (tmp_path / uclib.LIBRARY_NAME).symlink_to(os.path.realpath(binding.uclib._name))
    probe = "from emu_x86.emu import uclib; print(uclib.library_file(), uclib.UC_HOOK_CODE)"
    env = {**os.environ, "LIBUNICORN_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(tmp_path / uclib.LIBRARY_NAME), str(unicorn.UC_HOOK_CODE)]
    fallback = ("import importlib.util\n"
                "real = importlib.util.find_spec\n"
                "importlib.util.find_spec = lambda name, *a: None if name == 'unicorn' else real(name, *a)\n"
                "from emu_x86.emu import uclib\n"
                "import sys\n"
                "engine = uclib.Uc(uclib.UC_ARCH_X86, uclib.UC_MODE_64)\n"
                "engine.reg_write(uclib.x86.UC_X86_REG_RBX, 42)\n"
                "print(engine.reg_read(uclib.x86.UC_X86_REG_RBX), 'unicorn' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", fallback], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["42", "True"]
