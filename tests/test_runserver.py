"""emu server (emu_x86/emucli/runserver.py): a served `emu run` is the run a
fresh process makes -- output, exit status, statistics, stdin, signals --
and the server steps aside when it could not make that run."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from emu_x86.emucli import runserver
from emu_x86.emucli import runserver_client as client_side
from tests.guestbuild import build_c

REPO = Path(__file__).resolve().parent.parent
EMU = [sys.executable, "-m", "emu_x86.emucli"]

ECHO_PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char line[256];
    for (int i = 1; i < argc; i++) printf("arg %s\n", argv[i]);
    if (fgets(line, sizeof line, stdin)) printf("read %s", line);
    char cwd[256];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? "ok" : "none");
    fprintf(stderr, "to stderr\n");
    return 7;
}
"""
SPIN_PROGRAM = "int main(void) { for (volatile long i = 0; ; i++) ; }\n"


@pytest.fixture
def server_environment():
    """A private runtime directory (short: AF_UNIX paths end at 108 bytes) and block store."""
    runtime = tempfile.mkdtemp(prefix="emu-srv-")
    store = tempfile.mkdtemp(prefix="emu-blk-")
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": runtime, "EMU_BLOCK_CACHE": store}
    try:
        yield env
    finally:
        subprocess.run([*EMU, "server", "stop"], env=env, cwd=REPO, capture_output=True, timeout=60)
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def server_status(env) -> dict | None:
    result = subprocess.run([*EMU, "server", "status", "--json"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    return json.loads(result.stdout) if result.returncode == 0 else None


def start_server(env) -> dict:
    result = subprocess.run([*EMU, "server", "start"], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    status = server_status(env)
    assert status is not None
    return status


def test_a_served_run_equals_a_fresh_one(server_environment, tmp_path):
    env = server_environment
    program = build_c(ECHO_PROGRAM)
    work = tmp_path / "work"
    work.mkdir()

    def run(extra_env):
        stats = work / "stats.json"
        result = subprocess.run([*EMU, "run", "--stats", "stats.json", str(program), "one", "two words"],
                                input=b"hello server\n", env={**env, **extra_env}, cwd=work,
                                capture_output=True, timeout=120)
        return result.returncode, result.stdout, result.stderr, stats.read_text()

    fresh = run({})                      # before the server starts (the guest sees the environment)
    assert fresh[0] == 7 and b"read hello server" in fresh[1] and b"arg two words" in fresh[1]
    before = start_server(env)
    assert before["requests"] == 0
    served = run({})
    assert served == fresh
    after = server_status(env)
    assert after["requests"] == 1 and after["workers_cpu_seconds"] > 0


def test_signals_reach_the_worker_and_a_gone_client_ends_it(server_environment):
    env = server_environment
    program = build_c(SPIN_PROGRAM)
    start_server(env)
    client = subprocess.Popen([*EMU, "run", str(program)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while server_status(env)["running"] != 1:
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
    client.send_signal(signal.SIGINT)
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 130 and b"emu: interrupted" in stderr     # as a fresh emu on Ctrl-C
    # A client killed outright: the server kills its worker.
    client = subprocess.Popen([*EMU, "run", str(program)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    while server_status(env)["running"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client.kill()
    client.wait(timeout=30)
    while server_status(env)["running"] != 0:
        assert time.monotonic() < deadline, "the worker outlived its client"
        time.sleep(0.1)


def test_no_server_and_stop(server_environment):
    env = server_environment
    result = subprocess.run([*EMU, "server", "status"], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and result.stderr == "emu server: not running\n"
    status = start_server(env)
    result = subprocess.run([*EMU, "server", "stop"], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == f"emu server: pid {status['pid']} stopping\n"
    deadline = time.monotonic() + 30
    while os.path.exists(status["socket"]):
        assert time.monotonic() < deadline, "the socket outlived the server"
        time.sleep(0.05)


def test_without_a_server_socket_run_loads_no_client_modules(server_environment, tmp_path):
    """No socket file, no server: `emu run` goes straight to running in
    process, without importing the client (socket, json: ~6 ms of start-up)."""
    program = build_c(ECHO_PROGRAM)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "emu_x86.emucli", "run", str(program), "x"],
                            env=server_environment, cwd=REPO, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 7 and result.stdout == "arg x\ncwd ok\n", result.stderr[-2000:]
    assert "emu_x86.emucli.runserver_address" in result.stderr
    assert "emu_x86.emucli.runserver_client" not in result.stderr


def imported_modules(importtime_stderr: str) -> set[str]:
    """The module names of ``python -X importtime``'s report."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_a_served_run_loads_only_the_lean_client(server_environment):
    """A run the server serves: the client speaks through the C socket module
    alone -- no socket.py, selectors or array (~5 ms of the served run's CPU)
    -- in marshal's format, with the C signal module: no json, re, signal or
    enum (about a third of the client's CPU)."""
    start_server(server_environment)
    program = build_c(ECHO_PROGRAM)
    before = server_status(server_environment)["requests"]
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "emu_x86.emucli", "run", str(program), "x"],
                            env=server_environment, cwd=REPO, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 7 and result.stdout == "arg x\ncwd ok\n", result.stderr[-2000:]
    assert server_status(server_environment)["requests"] == before + 1      # it was served
    modules = imported_modules(result.stderr)
    assert "emu_x86.emucli.runserver_client" in modules and "_socket" in modules
    heavy = {"socket", "selectors", "array", "json", "re", "signal", "enum"}
    assert not modules & heavy, sorted(modules & heavy)


def _handle_one(server: runserver.Server, request: dict) -> dict:
    """Send ``request`` (with fds 0-2) to ``server._accept`` over a socket pair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        client_side.send_request(ours, request, [0, 1, 2])

        class Listener:
            def accept(self):
                return theirs, None
        server._accept(Listener(), selector=None)
        return next(client_side.read_replies(ours))


def test_stale_code_and_import_time_options_are_sent_back(tmp_path):
    """After an edit of the package the server answers "fallback" and stops;
    an environment that sets an import-time option otherwise is sent back too."""
    server = runserver.Server(str(tmp_path / "s.sock"), 60.0)
    request = {"run": ["run", "x"], "env": dict(os.environ), "cwd": str(tmp_path), "umask": 0o022}
    changed = dict(os.environ, EMU_XSTATE_C="0" if os.environ.get("EMU_XSTATE_C") != "0" else "1")
    reply = _handle_one(server, {**request, "env": changed})
    assert "import-time" in reply["fallback"] and not server.stopping
    server.identity = {**server.identity, "/nonexistent.py": (1, 1)}
    reply = _handle_one(server, request)
    assert "changed" in reply["fallback"] and server.stopping
    assert server.requests == 0


def test_a_client_falls_back_to_running_in_process(server_environment, tmp_path):
    """With import-time options set otherwise the client is sent back and the
    run still happens, in process."""
    env = server_environment
    program = build_c('#include <stdio.h>\nint main(void) { puts("in process"); return 0; }\n')
    start_server(env)
    result = subprocess.run([*EMU, "run", str(program)], env={**env, "EMU_XSTATE_C": "0"}, cwd=REPO,
                            capture_output=True, timeout=120)
    assert result.returncode == 0 and result.stdout == b"in process\n", result.stderr
    assert server_status(env)["requests"] == 0


def test_a_served_run_saves_its_new_decodes(server_environment):
    """A worker leaves by os._exit, which skips atexit, where a fresh process
    saves the blocks it decoded to the block price store: it saves them itself."""
    import sqlite3
    env = server_environment
    start_server(env)

    def stored_blocks() -> int:
        stores = list(Path(env["EMU_BLOCK_CACHE"]).glob("*.sqlite"))
        if not stores:
            return 0
        with sqlite3.connect(stores[0]) as reader:
            return reader.execute("SELECT count(*) FROM blocks").fetchone()[0]

    before = stored_blocks()
    program = build_c('#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n')
    result = subprocess.run([*EMU, "run", str(program)], env=env, cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode == 0 and result.stdout == b"42\n", result.stderr
    assert server_status(env)["requests"] == 1
    assert stored_blocks() > before + 100
