"""Reading ``--cmdline`` values the way the kernel reads boot parameters.

A bad value is the user's mistake, not the emulator's: ``BootParameterError``
carries a one-line message and ``emu run`` exits 2 with it.
"""
from __future__ import annotations


class BootParameterError(ValueError):
    pass


def memparse(name: str, text: str) -> int:
    """A size with an optional K/M/G/T suffix (lib/cmdline.c memparse)."""
    shifts = {"k": 10, "m": 20, "g": 30, "t": 40}
    body, shift = text, 0
    if text and text[-1].lower() in shifts:
        body, shift = text[:-1], shifts[text[-1].lower()]
    try:
        value = int(body, 0)
    except ValueError:
        raise BootParameterError(f"{name}={text}: not a size (a number with an optional K, M, G or T)") from None
    if value <= 0:
        raise BootParameterError(f"{name}={text}: must be positive")
    return value << shift


def positive_int(name: str, text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise BootParameterError(f"{name}={text}: not an integer") from None
    if value <= 0:
        raise BootParameterError(f"{name}={text}: must be positive")
    return value


def non_negative_int(name: str, text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise BootParameterError(f"{name}={text}: not an integer") from None
    if value < 0:
        raise BootParameterError(f"{name}={text}: must not be negative")
    return value


def boolean(name: str, text: str) -> bool:
    """kstrtobool: 1/y/yes/on and 0/n/no/off; a bare flag means true."""
    lowered = text.lower()
    if lowered in ("", "1", "y", "yes", "on", "true"):
        return True
    if lowered in ("0", "n", "no", "off", "false"):
        return False
    raise BootParameterError(f"{name}={text}: not a boolean (use 1/0, y/n, on/off)")


def choice(name: str, text: str, allowed) -> str:
    if text not in allowed:
        raise BootParameterError(f"{name}={text}: unknown value (one of: {', '.join(allowed)})")
    return text
