"""The client side of ``emu server`` (emu_x86/emucli/runserver.py), kept to
the interpreter's own modules so that an ``emu run`` the server serves loads
nothing else (emu_x86/emucli/launch.py).

Protocol, over the server's UNIX socket: the client sends one request
(``{"run": ARGS, "env": ..., "cwd": ..., "umask": ...}``) with its fds 0-2
attached (SCM_RIGHTS), and reads messages back: ``{"pid": N}`` once the
worker is forked (the client forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to
it, as a terminal would deliver them to a fresh ``emu``), then
``{"status": S}`` or ``{"signal": N}`` when it ends. ``{"fallback": WHY}``
instead of a pid means "run it yourself" (the server's code is stale, or the
environment asks for something its imports fixed); so does any failure
before a pid arrives. Every message is a dict of strings, numbers and lists
in marshal's format behind a 4-byte little-endian length (frame): marshal is
built into the interpreter, where json would bring re and with it enum,
functools and collections -- with the signal module's enums, about a third
of a served run's client CPU. Both ends are the same installation's Python
(the socket's name carries its identity, runserver_address.py), and only
this user can reach the socket (connect checks its directory).
"""
from __future__ import annotations

import _signal
import _socket
import marshal
import os
import struct
import sys

from emu_x86.emucli.runserver_address import socket_path

FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)
MAX_MESSAGE_BYTES = 64 << 20
CONNECT_TIMEOUT_SECONDS = 5.0


def connect(path: str | None = None) -> _socket.socket | None:
    """A connection to the server, or None when none is listening (or the
    socket's directory is not this user's alone). The C module's socket:
    the client needs nothing socket.py adds (its enums, selectors, the
    class around this one), and importing it was ~5 ms of every served run;
    close it with .close(), it is not a context manager."""
    path = path or socket_path()
    try:
        status = os.stat(os.path.dirname(path))
        if status.st_uid != os.getuid() or status.st_mode & 0o077:
            return None
        client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        client.settimeout(CONNECT_TIMEOUT_SECONDS)
        client.connect(path)
        client.settimeout(None)
    except OSError:
        client.close()
        return None
    return client


def frame(message: dict) -> bytes:
    """``message`` as it goes over the socket: length, then marshal's bytes."""
    payload = marshal.dumps(message)
    return struct.pack("<I", len(payload)) + payload


def unframe(payload: bytes) -> dict:
    """The message a frame's payload holds; ValueError if it is not a dict."""
    try:
        message = marshal.loads(payload)
    except (EOFError, TypeError) as error:
        raise ValueError(f"bad message: {error}") from None
    if type(message) is not dict:
        raise ValueError("not a dict")
    return message


def send_request(client, request: dict, fds: list[int] = ()) -> None:
    """The request, framed, with ``fds`` attached (SCM_RIGHTS: C ints)."""
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
    client.sendmsg([frame(request)], ancillary)


def read_replies(client):
    """The server's messages, one at a time; ends at EOF (a partial frame
    at EOF ends them too)."""
    pending = b""
    while True:
        if len(pending) >= 4:
            (length,) = struct.unpack_from("<I", pending)
            if length > MAX_MESSAGE_BYTES:
                raise ValueError("message too large")
            if len(pending) >= 4 + length:
                payload, pending = pending[4:4 + length], pending[4 + length:]
                yield unframe(payload)
                continue
        try:
            chunk = client.recv(65536)
        except InterruptedError:
            continue
        if not chunk:
            return
        pending += chunk


def run_through_server(argv: list[str]) -> int | None:
    """``emu ARGV`` by the server's worker: its exit status, or None when there
    is no server to take it (the caller then runs it in process)."""
    client = connect()
    if client is None:
        return None
    try:
        request = {"run": argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": _umask()}
        try:
            send_request(client, request, [0, 1, 2])
        except OSError:            # e.g. a closed fd 0-2: a fresh process copes, run there
            return None
        replies = read_replies(client)
        try:
            first = next(replies, None)
        except (OSError, ValueError):
            return None
        if first is None or "pid" not in first:
            return None
        worker = first["pid"]

        def forward(signum, _frame):
            try:
                os.kill(worker, signum)
            except ProcessLookupError:
                pass
        previous = {signum: _signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
        try:
            final = next(replies, None)
        except (OSError, ValueError):
            final = None
        finally:
            for signum, handler in previous.items():
                _signal.signal(signum, handler)
    finally:
        client.close()
    if final is None:
        sys.stderr.write("emu: the emu server ended before the run did\n")
        return 70
    if "signal" in final:
        # Die of the same signal, as the worker did, so a shell sees it so.
        signum = final["signal"]
        sys.stdout.flush()
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    return final["status"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
