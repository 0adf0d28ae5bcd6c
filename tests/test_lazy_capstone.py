"""capstone is loaded on first use (emu_x86/emu/isa/decoder.py): the
constants the decoding paths use in its place must be capstone's own, and a
run whose blocks all come from the block price store never loads it. The
project's own codec for the extension instructions (encoding.py) is loaded on
first use too: a glibc start-up's one XGETBV does not need it."""
from __future__ import annotations

import subprocess
import sys

import capstone
from capstone import x86_const

from emu_x86.emu.isa import decoder
from tests.guestbuild import build_c

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_the_spelled_out_constants_are_capstones():
    for name in ("CS_GRP_JUMP", "CS_GRP_CALL", "CS_GRP_RET", "CS_GRP_INT", "CS_GRP_IRET", "CS_GRP_BRANCH_RELATIVE",
                 "CS_AC_READ", "CS_AC_WRITE"):
        assert getattr(decoder, name) == getattr(capstone, name), name
    for name in ("X86_OP_REG", "X86_OP_MEM", "X86_REG_RIP", "X86_REG_FS", "X86_REG_GS"):
        assert getattr(decoder, name) == getattr(x86_const, name), name


def test_capstone_identity_names_the_installed_library():
    identity = decoder.capstone_identity()
    assert "__init__.py:" in identity and "libcapstone.so:" in identity


def test_a_run_priced_from_the_store_never_loads_capstone(tmp_path):
    """A first run fills the store (capstone loaded to decode); a second run of
    the same program -- imports, machine, page faults, exit -- finds every
    block there and resolves its demand faults from the page alone (CR2 is
    decoded only when read: emu_x86/emu/traps.py PF.address), so it never
    loads capstone. Without the store it does."""
    program = build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    env = {"EMU_BLOCK_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "emu_x86.emucli", "run", str(program)], cwd=REPO,
                         capture_output=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout == b"hi\n", run.stderr
    probe = ("import sys\n"
             "from emu_x86.emucli.main import main\n"
             "try:\n    main(['run', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
             "sys.stderr.write('capstone loaded: %s\\n' % ('capstone' in sys.modules))\n"
             "sys.stderr.write('codec loaded: %s\\n' % ('emu_x86.emu.isa.encoding' in sys.modules))\n")
    for store, loaded in ((str(tmp_path), False), ("off", True)):
        result = subprocess.run([sys.executable, "-c", probe, str(program)], cwd=REPO, capture_output=True,
                                text=True, env={**env, "EMU_BLOCK_CACHE": store}, timeout=120)
        assert result.stdout == "hi\n" and f"capstone loaded: {loaded}" in result.stderr, (store, result.stderr)
        if store != "off":
            assert "codec loaded: False" in result.stderr, result.stderr


def test_the_collector_is_off_for_the_imports_and_on_for_the_run(tmp_path):
    """launch.py turns the cyclic collector off while `emu run` imports and
    boots; run_command freezes that and turns it on before the guest runs."""
    program = build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    probe = ("import gc, sys\n"
             "from emu_x86.emu import machine\n"
             "seen = []\n"
             "real_run = machine.Machine.run\n"
             "def run(self):\n"
             "    seen.append((gc.isenabled(), gc.get_freeze_count() > 0))\n"
             "    return real_run(self)\n"
             "machine.Machine.run = run\n"
             "sys.argv = ['emu', 'run', sys.argv[1]]\n"
             "from emu_x86.emucli import launch\n"
             "real_main = launch._main\n"
             "def checked_main():\n"
             "    import emu_x86.emucli.main as cli\n"
             "    real_command = cli.run_command\n"
             "    def run_command(options):\n"
             "        seen.append(gc.isenabled())\n"
             "        return real_command(options)\n"
             "    cli.run_command = run_command\n"
             "    return real_main()\n"
             "status = checked_main()\n"
             "print(seen)\n"
             "sys.exit(status)\n")
    env = {"EMU_BLOCK_CACHE": str(tmp_path), "EMU_SERVER": "off", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", probe, str(program)], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n[False, (True, True)]\n"
