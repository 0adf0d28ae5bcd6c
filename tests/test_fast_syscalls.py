"""Fixed-value system calls answered in the SYSCALL hook (emu_x86/emu/timing/hotpath.c
fast_syscall, Kernel.arm_fast_syscalls, Machine._arm_fast_syscalls): the same
output and statistics as when every call stops the run, and most calls of a
single-threaded loop never reach Python."""
from __future__ import annotations

import io
import itertools

from emu_x86.emu.machine import Machine
from emu_x86.emucli.main import collect_stats
from emu_x86.kernel import task as task_module
from emu_x86.kernel.kernel import Kernel, KernelConfig
from emu_x86.kernel import kernel as kernel_module
from tests.guestbuild import build_c

# Threads calling the three ids among work and a mutex, so runs end on
# deadlines, futex calls and other vCPUs' clocks as well; the sum checks the
# values, the mutex the interleaving.
PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long total;
static void *work(void *arg) {
    long s = 0;
    for (int i = 0; i < 3000; i++) {
        s += syscall(SYS_gettid) - getpid() + syscall(SYS_getppid);
        if (i % 7 == 0) { pthread_mutex_lock(&m); total += i; pthread_mutex_unlock(&m); }
        for (volatile int j = 0; j < (i % 13); j++) ;
    }
    return (void *)s;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? 3 : 0;
    pthread_t t[3];
    long s = (long)work(0), r;
    for (int i = 0; i < n; i++) pthread_create(&t[i], 0, work, 0);
    for (int i = 0; i < n; i++) { pthread_join(t[i], (void **)&r); s += r; }
    printf("%ld %ld %d %d\n", total, s, getpid(), getppid());
    return 0;
}
"""


def run(binary: str, cpus: int, threads: bool, fast: bool, monkeypatch) -> tuple[dict, int]:
    monkeypatch.setattr(kernel_module, "FAST_SYSCALLS_ENABLED", True)
    with monkeypatch.context() as patch:
        # Process ids come from one counter per Python process: each run starts it afresh.
        patch.setattr(task_module, "_pids", itertools.count(1000))
        if not fast:
            patch.setattr(Kernel, "arm_fast_syscalls", lambda self, vcpu: False)
        machine = Machine(cpus=cpus, memory_bytes=256 << 20)
        stdout = io.BytesIO()
        argv = [binary, "threads"] if threads else [binary]
        try:
            kernel = Kernel(machine, KernelConfig(argv=argv, envp=[], stdout=stdout, stderr=io.BytesIO()))
            kernel.start(binary)
            runs = 0
            run_vcpu = type(machine.vcpus[0]).run

            def counting_run(vcpu, deadline):
                nonlocal runs
                runs += 1
                return run_vcpu(vcpu, deadline)
            patch.setattr(type(machine.vcpus[0]), "run", counting_run)
            machine.run()
            # Runs the machine's C loop started count too (Machine.c_loop_runs).
            return {"stdout": stdout.getvalue(), "stats": collect_stats(machine, kernel),
                    "syscalls": dict(kernel.syscall_counts)}, runs + machine.c_loop_runs
        finally:
            machine.close()


def test_single_thread_loop_is_identical_and_stays_in_c(monkeypatch):
    binary = str(build_c(PROGRAM))
    fast, fast_runs = run(binary, 1, False, True, monkeypatch)
    slow, slow_runs = run(binary, 1, False, False, monkeypatch)
    assert fast == slow
    assert fast["syscalls"][186] == 3000 and fast["syscalls"][39] == 3001 and fast["syscalls"][110] == 3001
    # Every call stops the slow runs; the fast path leaves only the other calls.
    assert slow_runs > 9000
    assert fast_runs < slow_runs - 8000


def test_threads_on_one_and_several_cpus_are_identical(monkeypatch):
    binary = str(build_c(PROGRAM, "-pthread"))
    for cpus in (1, 3):
        fast, fast_runs = run(binary, cpus, True, True, monkeypatch)
        slow, slow_runs = run(binary, cpus, True, False, monkeypatch)
        assert fast == slow, cpus
        assert fast_runs < slow_runs, cpus
        assert b" 1 0\n" not in fast["stdout"]
