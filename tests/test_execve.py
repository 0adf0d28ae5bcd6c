"""execve/execveat (emu_x86/kernel/execve.py) against the host: the same program run
natively and under ``emu run --fs ROOT`` must print the same.

The program is told where it lives (its own path, a ``#!`` script, a file
without an execute bit, a non-ELF executable) through its arguments: host
paths natively, guest paths under the emulator, so no output depends on
which side ran it.
"""
from __future__ import annotations

import os
import shutil

import pytest

from tests.guestbuild import build_c, emu, native

EXEC_PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
static void on_usr1(int signo) { (void)signo; }
static void *spin(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "child")) {
        struct sigaction sa;
        sigaction(SIGUSR1, NULL, &sa);
        int usr1_default = sa.sa_handler == SIG_DFL;
        sigaction(SIGUSR2, NULL, &sa);
        int usr2_ignored = sa.sa_handler == SIG_IGN;
        sigset_t mask;
        sigprocmask(SIG_BLOCK, NULL, &mask);
        char cwd[128];
        getcwd(cwd, sizeof cwd);
        printf("child: argc=%d", argc);
        for (int i = 1; i < argc; i++) {
            const char *shown = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
            printf(" [%s]", atoi(shown) > 0 ? "PID" : shown);
        }
        printf(" FOO=%s fd5=%s fd6=%s usr1_default=%d usr2_ignored=%d hup_blocked=%d pid_same=%d cwd_kept=%d\n",
               getenv("FOO"), err(fcntl(5, F_GETFD)), err(fcntl(6, F_GETFD)), usr1_default, usr2_ignored,
               sigismember(&mask, SIGHUP), getpid() == atoi(argv[2]), strcmp(cwd, "/") != 0);
        return 3;
    }
    const char *self = argv[1], *script = argv[2], *noexec = argv[3], *text = argv[4], *dir = argv[5];
    char pid[16];
    snprintf(pid, sizeof pid, "%d", getpid());
    char *args[] = {(char *)self, "child", pid, "x y", NULL};
    char *env[] = {"FOO=bar", NULL};
    dup2(1, 5);
    dup2(1, 6);
    fcntl(6, F_SETFD, FD_CLOEXEC);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    chdir(dir);
    long r = execve("/nonexistent/program", args, env);
    printf("missing: %ld %s\n", r, err(r));
    r = execve(noexec, args, env);
    printf("no execute bit: %s\n", err(r));
    r = execve(text, args, env);
    printf("not an executable format: %s\n", err(r));
    r = execve(dir, args, env);
    printf("a directory: %s\n", err(r));
    r = execve("/dev/null", args, env);
    printf("a device: %s\n", err(r));
    r = syscall(SYS_execveat, AT_FDCWD, self, args, env, 0x1234);
    printf("execveat bad flags: %s\n", err(r));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        snprintf(pid, sizeof pid, "%d", getpid());
        execve(self, args, env);
        _exit(99);
    }
    int status;
    waitpid(child, &status, 0);
    printf("fork+exec: status %d\n", WEXITSTATUS(status));
    child = vfork();
    if (child == 0) {
        snprintf(pid, sizeof pid, "%d", getpid());
        execve(script, args, env);
        _exit(98);
    }
    waitpid(child, &status, 0);
    printf("vfork+exec of a script: status %d\n", WEXITSTATUS(status));
    fflush(stdout);
    child = fork();
    if (child == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, spin, NULL);
        snprintf(pid, sizeof pid, "%d", getpid());
        execve(self, args, env);
        _exit(97);
    }
    waitpid(child, &status, 0);
    printf("exec from a threaded process: status %d\n", WEXITSTATUS(status));
    return 0;
}
"""


@pytest.fixture(scope="module")
def exec_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("execroot")
    binary = build_c(EXEC_PROBE_C, "-pthread")
    shutil.copy(binary, root / "probe")
    os.chmod(root / "probe", 0o755)
    (root / "noexec").write_bytes(binary.read_bytes())
    os.chmod(root / "noexec", 0o644)
    (root / "text").write_text("just some text\n")
    os.chmod(root / "text", 0o755)
    (root / "work").mkdir()
    return root


def _arguments(prefix: str) -> list[str]:
    return [f"{prefix}/probe", f"{prefix}/script.sh", f"{prefix}/noexec", f"{prefix}/text", f"{prefix}/work"]


def test_execve_matches_the_host(exec_tree):
    root = exec_tree
    (root / "script.sh").write_text(f"#!{root}/probe child\n")
    os.chmod(root / "script.sh", 0o755)
    host = native(root / "probe", *_arguments(str(root)))
    assert host.returncode == 0, host.stderr
    (root / "script.sh").write_text("#!/probe child\n")
    guest = emu("run", "--timeout", "120", "--fs", str(root), str(root / "probe"), *_arguments(""))
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout.decode() == host.stdout.decode()
    lines = host.stdout.decode().splitlines()
    # The run itself shows what was exercised: each failure and each successful exec.
    assert "missing: -1 ENOENT" in lines and "no execute bit: EACCES" in lines
    assert "not an executable format: ENOEXEC" in lines
    assert sum(line.startswith("child: ") for line in lines) == 3
    assert "exec from a threaded process: status 3" in lines
