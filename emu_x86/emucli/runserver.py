"""``emu server``: a resident process that has done the imports, forking one
worker per ``emu run``.

Most of a short run's host CPU is start-up, not emulation: for a static glibc
hello about 0.02 s of interpreter, 0.07 s to load Unicorn's shared library,
0.1 s for the emulator's own ~300 modules and 0.02 s to look its ~1,000 blocks
up in the block price store, around 0.06 s of emulation. ``emu server start``
pays for the first three once (and loads the whole store into the
process-wide decode cache); then every ``emu run`` -- the ``emu`` command
finds the server by its socket (emu_x86/emucli/runserver_client.py) --
forks a worker from it that becomes a fresh ``emu run`` process: the
client's argv, environment, working directory, umask and standard fds
(passed over the socket), the server's module state (it never runs a
machine, as forkserver.py's parent), and its exit status or signal relayed
back. As Android's zygote or a build daemon, but for the emulator.

A served run is the run a fresh process makes: the decode cache is a pure
cache (tests/test_block_price_cache.py), and a request whose environment
sets what modules read at import (IMPORT_TIME_VARIABLES) differently from
the server's is sent back to run in process. Before each request the server
compares the size and modification time of every file of the package with
those it started with; after an edit it answers "fallback" and exits, so it
never runs stale code. It exits after ``--idle-timeout`` seconds without a
request (default IDLE_TIMEOUT_SECONDS).

``emu server status`` prints the host CPU the server and its workers used
(``server_cpu_seconds``, ``workers_cpu_seconds``): a run's whole cost is its
client's CPU plus the change in those (bench/peers.py measures it so).
"""
from __future__ import annotations

import gc
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time

from emu_x86.emucli import interrupts, runserver_address
from emu_x86.emucli import runserver_client as client_side
from emu_x86.emucli.forkserver import become_emu

IDLE_TIMEOUT_SECONDS = 1800.0
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_BYTES = 16 << 20
START_TIMEOUT_SECONDS = 60.0
# Read when a module is imported (emu_x86/emu/isa/xstate.py, vcpu.py, machine.py):
# a worker inherits the server's values, so a request that sets them otherwise runs in process.
IMPORT_TIME_VARIABLES = ("EMU_XSTATE_C", "EMU_AMX_FAST_PATH", "EMU_C_RUN_LOOP")
WATCHED_SUFFIXES = (".py", ".so", ".toml", ".c", ".h")


class ServerError(Exception):
    """A one-line reason why a server command could not be done."""


# ---- what the server loads once ------------------------------------------------

def preload() -> int:
    """Import what an `emu run` imports and fill the decode cache from the
    block price store of the default profile; the number of blocks loaded."""
    import locale  # noqa: F401
    import sqlite3  # noqa: F401

    import emu_x86.emu.machine  # noqa: F401
    import emu_x86.emu.timeline  # noqa: F401
    import emu_x86.emucli.main  # noqa: F401
    import emu_x86.emuas.assembler  # noqa: F401
    import emu_x86.kernel.kernel  # noqa: F401
    import emu_x86.kernel.strace  # noqa: F401
    from emu_x86.kernel.syscall_table import SYSCALLS
    SYSCALLS.load_all()         # every subsystem, which a fresh run imports at its first call
    from emu_x86.emu import block_price_store, machine
    from emu_x86.emu.isa.decoder import capstone_identity
    from emu_x86.emu.timing.profile import DEFAULT_PROFILE, load_profile
    price_key = load_profile(DEFAULT_PROFILE).price_key
    store = block_price_store.store_for(price_key, capstone_identity())
    loaded = 0
    if store is not None:
        loaded = machine.adopt_decodes(price_key, store.items(), whole_store=True)
        store.close()
    # The workers open the store afresh (and add to it) as a fresh process would.
    block_price_store._stores.clear()
    return loaded


def code_identity() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every source and library file of the package."""
    identity = {}
    for directory, subdirectories, files in os.walk(runserver_address.package_directory()):
        subdirectories[:] = [name for name in subdirectories if name != "__pycache__"]
        for name in files:
            if name.endswith(WATCHED_SUFFIXES):
                path = os.path.join(directory, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                identity[path] = (status.st_size, status.st_mtime_ns)
    return identity


# ---- the worker ----------------------------------------------------------------

def _worker(request: dict, fds: list[int], ready_fd: int) -> None:
    """In the forked child: become `emu ARGS` with the client's fds; never return."""
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        interrupts.received = False
        signal.signal(signal.SIGINT, interrupts.on_sigint)           # as launch.main has it in a fresh `emu`
        os.write(ready_fd, b"!")
        os.close(ready_fd)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
    except BaseException:
        os._exit(70)
    become_emu(request["run"], request["cwd"], request["env"], request["umask"])


# ---- the server ----------------------------------------------------------------

class Server:
    def __init__(self, path: str, idle_timeout_seconds: float):
        self.path = path
        self.idle_timeout_seconds = idle_timeout_seconds
        self.identity = code_identity()
        self.import_time_environment = {name: os.environ.get(name) for name in IMPORT_TIME_VARIABLES}
        self.workers: dict[int, socket.socket] = {}          # pid -> the client's connection
        self.requests = 0
        self.workers_cpu_seconds = 0.0
        self.started = time.time()
        self.stopping = False
        self.blocks_preloaded = 0

    def status(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"pid": os.getpid(), "socket": self.path, "requests": self.requests,
                "running": len(self.workers), "blocks_preloaded": self.blocks_preloaded,
                "server_cpu_seconds": usage.ru_utime + usage.ru_stime,
                "workers_cpu_seconds": self.workers_cpu_seconds,
                "uptime_seconds": time.time() - self.started}

    def serve(self, listener: socket.socket) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_read, selectors.EVENT_READ, "wake")
        last_activity = time.monotonic()
        while not self.stopping:
            if not self.workers and time.monotonic() - last_activity > self.idle_timeout_seconds:
                break
            for key, _ in selector.select(timeout=1.0):
                if key.data == "accept":
                    last_activity = time.monotonic()
                    self._accept(listener, selector)
                elif key.data == "wake":
                    try:
                        while os.read(wake_read, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap(selector)
                else:                            # a client went away (or wrote): its worker ends
                    self._client_gone(key.fileobj, key.data, selector)
            self._reap(selector)
        # Stopping (emu server stop, SIGTERM, stale files) takes no new runs
        # but lets the running ones finish and report to their clients.
        listener.close()
        self._reap(selector, block=True)

    def _accept(self, listener: socket.socket, selector) -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        connection.settimeout(REQUEST_TIMEOUT_SECONDS)
        fds: list[int] = []
        try:
            request, fds = _receive_request(connection)
            self._handle(connection, request, fds, selector)
        except (OSError, ValueError, KeyError, TypeError) as error:
            _reply(connection, {"fallback": f"bad request: {error}"})
            connection.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _handle(self, connection: socket.socket, request: dict, fds: list[int], selector) -> None:
        command = request.get("command")
        if command == "status":
            _reply(connection, self.status())
            connection.close()
            return
        if command == "stop":
            _reply(connection, {"stopping": os.getpid()})
            connection.close()
            self.stopping = True
            return
        if code_identity() != self.identity:
            _reply(connection, {"fallback": "the emulator's files changed since the server started"})
            connection.close()
            self.stopping = True
            return
        environment = request["env"]
        if any(environment.get(name) != value for name, value in self.import_time_environment.items()):
            _reply(connection, {"fallback": "the environment sets import-time options otherwise"})
            connection.close()
            return
        if len(fds) != 3 or not isinstance(request["run"], list):
            raise ValueError("want the command and three fds")
        self.requests += 1
        # The pid goes to the client only once the worker has its own signal
        # handlers: a signal the client forwards earlier would be lost (CPython
        # clears pending signal flags in a fork's child, _PySignal_AfterFork).
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            connection.close()
            os.close(ready_read)
            _worker(request, fds, ready_write)
        os.close(ready_write)
        try:
            os.read(ready_read, 1)               # EOF if it died first: its status follows
        finally:
            os.close(ready_read)
        self.workers[pid] = connection
        connection.settimeout(None)
        _reply(connection, {"pid": pid})
        selector.register(connection, selectors.EVENT_READ, pid)

    def _client_gone(self, connection: socket.socket, pid: int, selector) -> None:
        try:
            data = connection.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data:
            connection.recv(4096)                 # clients send nothing after the request
            return
        selector.unregister(connection)
        if pid in self.workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _reap(self, selector, block: bool = False) -> None:
        while self.workers:
            try:
                pid, wait_status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.workers_cpu_seconds += usage.ru_utime + usage.ru_stime
            connection = self.workers.pop(pid, None)
            if connection is None:
                continue
            try:
                selector.unregister(connection)
            except (KeyError, ValueError):
                pass
            if os.WIFSIGNALED(wait_status):
                _reply(connection, {"signal": os.WTERMSIG(wait_status)})
            else:
                _reply(connection, {"status": os.WEXITSTATUS(wait_status)})
            connection.close()


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    fds: list[int] = []
    header, ancillary, _flags, _ = connection.recvmsg(4, socket.CMSG_SPACE(3 * 4))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(data) // 4}i", data[:len(data) - len(data) % 4]))
    try:
        if len(header) != 4:
            raise ValueError("short header")
        (length,) = struct.unpack("<I", header)
        if length > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
        payload = b""
        while len(payload) < length:
            chunk = connection.recv(length - len(payload))
            if not chunk:
                raise ValueError("truncated request")
            payload += chunk
        request = client_side.unframe(payload)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _reply(connection: socket.socket, message: dict) -> None:
    try:
        connection.sendall(client_side.frame(message))
    except OSError:
        pass


# ---- emu server start | stop | status ------------------------------------------

def _query(command: str) -> dict | None:
    connection = client_side.connect()
    if connection is None:
        return None
    try:
        client_side.send_request(connection, {"command": command})
        return next(client_side.read_replies(connection), None)
    finally:
        connection.close()


def start(idle_timeout_seconds: float, foreground: bool) -> dict:
    existing = _query("status")
    if existing is not None:
        return existing
    path = runserver_address.socket_path()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    status = os.stat(directory)
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ServerError(f"{directory} is not private to this user (want mode 0700)")
    if foreground:
        serve_at(path, idle_timeout_seconds)
        return {}
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
        subprocess.Popen([sys.executable, "-m", "emu_x86.emucli.runserver", path, str(idle_timeout_seconds)],
                         stdin=null_in, stdout=null_out, stderr=null_out, start_new_session=True,
                         close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        reply = _query("status")
        if reply is not None:
            return reply
        time.sleep(0.05)
    raise ServerError(f"the server did not start within {START_TIMEOUT_SECONDS:g} s")


def serve_at(path: str, idle_timeout_seconds: float) -> None:
    """Bind, load, serve until stopped or idle; the socket goes with the server."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)            # no server answered on it (start checked): a leftover
    listener.bind(path + ".starting")
    listener.listen(64)
    server = Server(path, idle_timeout_seconds)
    try:
        server.blocks_preloaded = preload()
        # What the preload built is never freed: out of the collector's sight,
        # a worker's collections do not touch (and copy) the pages holding it.
        gc.freeze()
        # Published only once loaded: a client that finds the socket is served at once.
        os.rename(path + ".starting", path)
        server.serve(listener)
    finally:
        listener.close()
        for leftover in (path, path + ".starting"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def server_command(options) -> int:
    try:
        if options.action == "start":
            reply = start(options.idle_timeout, options.foreground)
            if reply:
                print(f"emu server: pid {reply['pid']} on {reply['socket']}, "
                      f"{reply['blocks_preloaded']} blocks preloaded")
            return 0
        reply = _query("stop" if options.action == "stop" else "status")
        if reply is None:
            print("emu server: not running", file=sys.stderr)
            return 1
        if options.action == "stop":
            print(f"emu server: pid {reply['stopping']} stopping")
        else:
            print(json.dumps(reply, indent=2) if options.json else
                  f"emu server: pid {reply['pid']} on {reply['socket']}: {reply['requests']} runs served, "
                  f"{reply['running']} running, CPU {reply['server_cpu_seconds']:.2f} s (server) + "
                  f"{reply['workers_cpu_seconds']:.2f} s (workers)")
        return 0
    except (ServerError, OSError) as error:
        print(f"emu server: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    serve_at(sys.argv[1], float(sys.argv[2]))
