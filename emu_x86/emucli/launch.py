"""The ``emu`` command's entry point: hand ``emu run`` to a running ``emu
server`` when there is one (emu_x86/emucli/runserver.py), else run in this
process (emu_x86/emucli/main.py).

This module is the whole of what an ``emu run`` served by the server loads:
the interpreter's own modules and a socket (and only when the server's
socket file exists: runserver_address.py). Everything else -- argparse, the
machine, the kernel, Unicorn -- is already imported in the server, whose
forked worker runs the command. ``EMU_SERVER=off`` (or ``0``) skips the server.
"""
from __future__ import annotations

import os
import sys

from emu_x86.emucli import interrupts, runserver_address


def main() -> int:
    try:
        return _main()
    except (KeyboardInterrupt, Exception) as error:
        # Ctrl-C before main.py's own handling is in place, itself or wrapped
        # by C code it interrupted (a class being created while main.py's
        # imports run: interrupts.caused_by_interrupt).
        if not interrupts.caused_by_interrupt(error):
            raise
        sys.stderr.write("emu: interrupted\n")
        return 130


def _main() -> int:
    interrupts.install()
    argv = sys.argv[1:]
    if argv[:1] == ["run"] and os.environ.get("EMU_SERVER", "").lower() not in ("0", "off", "no") \
            and os.path.exists(runserver_address.socket_path()):
        from emu_x86.emucli import runserver_client
        status = runserver_client.run_through_server(argv)
        if status is not None:
            return status
    # Before main.py's imports define the run's dataclasses (dataclass_code.py).
    from emu_x86.emucli import dataclass_code
    dataclass_code.install()
    if argv[:1] == ["run"]:
        # No cyclic collections while the run's modules load: they allocate
        # nothing the collector would free, and its passes over them were 2%
        # of a glibc hello's instructions. run_command freezes what the
        # imports and the boot made and turns the collector back on.
        import gc
        gc.disable()
    from emu_x86.emucli.main import main as run_in_process
    return run_in_process()


if __name__ == "__main__":
    sys.exit(main())
