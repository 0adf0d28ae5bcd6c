"""Run ``emu`` many times without paying Python start-up and imports each time.

``python -m emu_x86.emucli.forkserver`` imports the emulator once, then for every
request (one JSON line on stdin) forks a child that behaves exactly like a
fresh ``emu ARGS...`` process: the environment is replaced by the request's,
fds 0-2 are the request's files, the working directory is the request's, and
``emucli.main.main(args)`` runs with the module state the imports left (the
server never runs a machine itself, so every child starts from pristine
globals such as the pid counter).  The reply is one JSON line: the exit status
(``signal`` instead when the child died of one) and whether it timed out.

Guest test runners (emu_x86/emucli/guesttest.py) use it; ``EMU_TEST_FRESH_PROCESS=1``
makes them start a real ``emu`` process per run instead.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time


def _child(request: dict) -> None:
    """In the forked child: become ``emu ARGS`` and never return."""
    try:
        os.chdir(request["cwd"])
        for fd, (path, flags) in enumerate(((request["stdin"], os.O_RDONLY),
                                            (request["stdout"], os.O_WRONLY | os.O_TRUNC | os.O_CREAT),
                                            (request["stderr"], os.O_WRONLY | os.O_TRUNC | os.O_CREAT))):
            handle = os.open(path, flags, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except BaseException:
        os._exit(70)
    become_emu(request["args"], request["cwd"], request["env"])


def become_emu(args: list[str], cwd: str, env: dict, umask: int | None = None) -> None:
    """In a forked child whose fds 0-2 are in place: behave as a fresh ``emu
    ARGS`` process (other fds closed, cwd, umask and environment replaced,
    new text layers over fds 0-2 so nothing buffered in the parent leaks in),
    and exit with its status; never return. emu server's workers
    (runserver.py) use it too."""
    status = 70
    try:
        from emu_x86.emucli import limits
        limits.note_fork()              # the parent's pages are not this run's (--max-host-memory)
        os.closerange(3, 1 << 16)
        os.chdir(cwd)
        if umask is not None:
            os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        sys.argv = ["emu", *args]
        from emu_x86.emucli.main import main
        status = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
    except SystemExit as leave:
        status = leave.code if isinstance(leave.code, int) else 1
    except BaseException:            # a bug in this file: say so on the child's stderr
        import traceback
        traceback.print_exc()
        status = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            # os._exit skips atexit, which is where a fresh process saves its new decodes.
            from emu_x86.emu import block_price_store
            block_price_store.save_all()
        finally:
            os._exit(status if isinstance(status, int) else 70)


def serve() -> None:
    commands = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)                # stray prints must not corrupt the replies
    os.close(null)
    # The imports are the point: every forked child starts with them done.
    import emu_x86.emu.machine  # noqa: F401
    import emu_x86.emucli.main  # noqa: F401
    import emu_x86.kernel.kernel  # noqa: F401
    import emu_x86.emuas.assembler  # noqa: F401
    for line in commands:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            commands.close()
            replies.close()
            _child(request)
        deadline = time.monotonic() + request.get("timeout", 300)
        timed_out = False
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                timed_out, wait_status = True, 0
                break
            time.sleep(0.002)
        reply = {"timed_out": timed_out}
        if not timed_out:
            if os.WIFSIGNALED(wait_status):
                reply["signal"] = os.WTERMSIG(wait_status)
            else:
                reply["status"] = os.WEXITSTATUS(wait_status)
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


class ForkServer:
    """Client side: one server process, requests one at a time (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen([sys.executable, "-m", "emu_x86.emucli.forkserver"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self._process

    def run(self, args: list[str], *, cwd: str, env: dict, stdin: str, stdout: str, stderr: str,
            timeout: float) -> dict:
        request = {"args": args, "cwd": cwd, "env": env, "stdin": stdin, "stdout": stdout, "stderr": stderr,
                   "timeout": timeout}
        with self._lock:
            process = self._start()
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
            line = process.stdout.readline()
            if not line:
                self._process = None
                raise RuntimeError("the emu fork server died")
            return json.loads(line)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=10)
        self._process = None


if __name__ == "__main__":
    serve()
