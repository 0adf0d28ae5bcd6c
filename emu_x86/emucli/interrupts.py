"""Ctrl-C that cannot be lost: SIGINT's handler from the first moment of an
`emu` process (launch.main) or emu server worker (runserver._worker) raises
KeyboardInterrupt as Python's default handler does, and also remembers that
it came.

KeyboardInterrupt alone can vanish: raised in code that CPython runs on
behalf of C (a ctypes or cffi callback, Unicorn's hook wrappers, which catch
every exception, or a __hash__ or __eq__ called from a C dictionary lookup
that discards errors), it never reaches the code that would end the run.
Measured before this module: SIGINT 20-120 ms into `emu run` of a spinning
guest, while the process was still setting up, was lost in 2 of 40 tries and
the guest ran on. RunLimits (limits.py) reads ``received`` at every 100 ms
check and raises again, so the run ends however the first raise fared.
"""
from __future__ import annotations

# The C module: signal.py's enums (enum, functools, collections) were a tenth
# of a served run's client CPU, and this module needs none of them.
import _signal

received = False


def on_sigint(signum, frame):
    global received
    received = True
    raise KeyboardInterrupt


def install() -> None:
    """Take SIGINT when Python's default handler has it (not when it is
    ignored: `nohup`, a background job)."""
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, on_sigint)


def caused_by_interrupt(error: BaseException | None) -> bool:
    """Whether ``error`` is a KeyboardInterrupt or was raised because of one.
    C code that calls back into Python can wrap the interrupt in an exception
    of its own: a SIGINT while a class is created (type.__new__ calling a
    dataclass field's __set_name__) arrives as RuntimeError("Error calling
    __set_name__ ...") whose __cause__ is the KeyboardInterrupt."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
