"""The default scheduler's C loop (emu_x86/emu/runqueue_scan.c sched_run) and the
APIC next-event array it reads (LocalApic._publish): the array always equals
each APIC's next_event_cycles(), and a run is the same -- output, statistics,
system calls -- with the loop on and off (Machine.c_run_loop), while most
runs of a many-vCPU program are started from C."""
from __future__ import annotations

import io
import itertools

import pytest

from emu_x86.emu import machine as machine_module
from emu_x86.emu.apic import (LVT_MASKED, MSR_IA32_TSC_DEADLINE, MSR_X2APIC_LVT_TIMER,
                              MSR_X2APIC_TIMER_DIVIDE, MSR_X2APIC_TIMER_INITIAL_COUNT, NO_EVENT,
                              TIMER_MODE_PERIODIC, TIMER_MODE_TSC_DEADLINE)
from emu_x86.emu.isa.state import MSR_IA32_TSC
from emu_x86.emu.machine import Machine
from emu_x86.emu.vcpu import VCpu
from emu_x86.emucli.main import collect_stats
from emu_x86.kernel import task as task_module
from emu_x86.kernel.kernel import Kernel, KernelConfig
from tests.guestbuild import REPO, build_c

# Spinning threads (runs end at deadlines, lookahead past the slowest vCPU),
# sleepers (TSC-deadline timers wake idle vCPUs), a mutex and a condition
# variable (futex wake-ups: reschedule IPIs) and mprotect/munmap of shared
# pages (TLB shootdowns: senders wait for acknowledgements).
PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static long turns, total;
static void *work(void *arg) {
    long id = (long)arg, s = 0;
    for (int round = 0; round < 6; round++) {
        for (volatile long i = 0; i < 20000 + 3000 * id; i++) s += i & 7;
        if (id % 3 == 0) {
            struct timespec t = {0, 20000 + 5000 * id};
            nanosleep(&t, 0);
        } else if (id % 3 == 1) {
            char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            p[0] = 1; p[4096] = 2;
            mprotect(p, 8192, PROT_READ);
            s += p[0] + p[4096];
            munmap(p, 8192);
        }
        pthread_mutex_lock(&m);
        turns++;
        total += s & 0xff;
        pthread_cond_broadcast(&c);
        pthread_mutex_unlock(&m);
    }
    return 0;
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    pthread_t t[16];
    for (long i = 0; i < n; i++) pthread_create(&t[i], 0, work, (void *)i);
    pthread_mutex_lock(&m);
    while (turns < 6L * n) pthread_cond_wait(&c, &m);
    pthread_mutex_unlock(&m);
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
    printf("%ld %ld\n", turns, total);
    return 0;
}
"""


def _published(machine: Machine) -> list[int]:
    return [machine.apic_next_event[vcpu.index] for vcpu in machine.vcpus]


def _waiting_published(machine: Machine) -> list[tuple[int, int]]:
    return [(machine.waiting_flags[vcpu.index], machine.waiting_targets[vcpu.index]) for vcpu in machine.vcpus]


def _waiting_expected(machine: Machine) -> list[tuple[int, int]]:
    return [(int(bool(vcpu.waiting_for_acks)), sum(1 << target for target in vcpu.waiting_for_acks))
            for vcpu in machine.vcpus]


def _expected(machine: Machine) -> list[int]:
    out = []
    for vcpu in machine.vcpus:
        when = vcpu.apic.next_event_cycles()
        out.append(NO_EVENT if when is None else 0 if when < 0 else min(when, NO_EVENT - 1))
    return out


class _CheckingHotpath:
    """The machine module's ``hotpath`` with sched_run checked: after each
    call the published next events equal the APICs' own."""

    def __init__(self, real, machine_of):
        self._real, self._machine_of, self.calls, self.waits = real, machine_of, 0, 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def sched_run(self, sched):
        outcome = self._real.sched_run(sched)
        machine = self._machine_of()
        assert _published(machine) == _expected(machine)
        assert _waiting_published(machine) == _waiting_expected(machine)
        self.waits += any(vcpu.waiting_for_acks for vcpu in machine.vcpus)
        self.calls += 1
        return outcome


def run(binary: str, argv: list[str], cpus: int, c_loop: bool, monkeypatch, check: bool = False,
        **machine_options) -> tuple[dict, Machine]:
    with monkeypatch.context() as patch:
        # Process ids come from one counter per Python process: each run starts it afresh.
        patch.setattr(task_module, "_pids", itertools.count(1000))
        machine = Machine(cpus=cpus, memory_bytes=256 << 20, **machine_options)
        machine.c_run_loop = c_loop
        checker = None
        if check:
            checker = _CheckingHotpath(machine_module.hotpath, lambda: machine)
            patch.setattr(machine_module, "hotpath", checker)
            steps = 0
            next_vcpu = Machine._next_vcpu

            def checked_next_vcpu(self):
                # Every Python step too, before it reads anything.
                nonlocal steps
                assert _published(self) == _expected(self)
                assert _waiting_published(self) == _waiting_expected(self)
                steps += 1
                return next_vcpu(self)
            patch.setattr(Machine, "_next_vcpu", checked_next_vcpu)
        stdout = io.BytesIO()
        try:
            kernel = Kernel(machine, KernelConfig(argv=[binary, *argv], envp=[], stdout=stdout,
                                                  stderr=io.BytesIO()))
            kernel.start(binary)
            machine.run()
            if check:
                assert steps > 0 and (checker.calls > 0) == c_loop
                # Some C loop calls returned with a vCPU waiting for
                # acknowledgements (TLB shootdowns), whose bound C computed.
                assert (checker.waits > 0) == c_loop
            result = {"stdout": stdout.getvalue(), "stats": collect_stats(machine, kernel),
                      "syscalls": dict(kernel.syscall_counts), "limit": machine.cycle_limit_reached}
            return result, machine
        finally:
            machine.close()


@pytest.fixture(scope="module")
def program() -> str:
    return str(build_c(PROGRAM, "-pthread"))


@pytest.mark.parametrize("cpus, threads", [(3, 5), (8, 8)])
def test_published_next_events_equal_the_apics(program, cpus, threads, monkeypatch):
    """Across timers, IPIs, acknowledgement waits and idle vCPUs, at every
    Python step and after every C loop call, with the loop on and off."""
    for c_loop in (True, False):
        result, _ = run(program, [str(threads)], cpus, c_loop, monkeypatch, check=True)
        assert result["stdout"].startswith(f"{6 * threads} ".encode())


@pytest.mark.parametrize("cpus, threads, options", [
    (3, 5, {}),
    (8, 8, {}),
    (4, 6, {"quantum_cycles": 20_000}),
    (4, 6, {"max_cycles": 400_000}),
])
def test_runs_are_identical_with_the_c_loop_on_and_off(program, cpus, threads, options, monkeypatch):
    on, machine = run(program, [str(threads)], cpus, True, monkeypatch, **options)
    off, machine_off = run(program, [str(threads)], cpus, False, monkeypatch, **options)
    assert on == off
    assert machine_off.c_loop_runs == 0
    assert machine.c_loop_runs > 0
    assert on["limit"] == ("max_cycles" in options)


SPIN = (REPO / "guest" / "workloads" / "spin_threads.c").read_text()


def test_many_vcpus_run_from_c(monkeypatch):
    """16 spinning threads on 16 vCPUs: the same run either way, with the
    same number of runs, and the C loop starts most of them (each bounded by
    the lookahead past the slowest vCPU)."""
    binary = str(build_c(SPIN, "-pthread"))
    python_runs = 0
    run_vcpu = VCpu.run

    def counting_run(vcpu, deadline):
        nonlocal python_runs
        python_runs += 1
        return run_vcpu(vcpu, deadline)
    monkeypatch.setattr(VCpu, "run", counting_run)
    on, machine = run(binary, ["16", "150000"], 16, True, monkeypatch)
    c_runs, python_runs_on = machine.c_loop_runs, python_runs
    python_runs = 0
    off, _ = run(binary, ["16", "150000"], 16, False, monkeypatch)
    assert on == off
    assert c_runs + python_runs_on == python_runs
    assert c_runs > 5 * python_runs_on


def test_apic_publishes_every_change():
    """Timer programming, TSC-deadline writes, a TSC write (the deadline's
    due time moves with the offset), posted IPIs and their delivery."""
    machine = Machine(cpus=2)
    try:
        vcpu = machine.vcpus[1]
        apic = vcpu.apic

        def check() -> int:
            assert _published(machine) == _expected(machine)
            return machine.apic_next_event[1]
        assert check() == NO_EVENT
        apic.write_msr(MSR_X2APIC_TIMER_DIVIDE, 0xB)                 # divide by 1
        apic.write_msr(MSR_X2APIC_LVT_TIMER, (TIMER_MODE_PERIODIC << 17) | 0xEC)
        assert check() == NO_EVENT                                  # no count yet
        apic.write_msr(MSR_X2APIC_TIMER_INITIAL_COUNT, 5000)
        assert check() == vcpu.cycles + 5000
        apic.write_msr(MSR_X2APIC_TIMER_DIVIDE, 0)                  # divide by 2
        assert check() == vcpu.cycles + 10000
        apic.post(vcpu.cycles + 700, 0xF0, 0)
        assert check() == vcpu.cycles + 700
        assert [i.vector for i in apic.take_due(vcpu.cycles + 700)] == [0xF0]
        assert check() == vcpu.cycles + 10000
        apic.take_due(vcpu.cycles + 10000)                         # the periodic timer fires and re-arms
        assert check() == vcpu.cycles + 20000
        apic.write_msr(MSR_X2APIC_LVT_TIMER, LVT_MASKED)
        assert check() == NO_EVENT
        apic.write_msr(MSR_X2APIC_LVT_TIMER, (TIMER_MODE_TSC_DEADLINE << 17) | 0xEC)
        apic.write_msr(MSR_IA32_TSC_DEADLINE, 1_000_000)
        assert check() == 1_000_000 - vcpu.msrs.tsc_offset
        vcpu.write_msr(MSR_IA32_TSC, vcpu.cycles + 250_000)         # the TSC runs 250k cycles ahead
        assert check() == 1_000_000 - 250_000
        vcpu.write_msr(MSR_IA32_TSC, vcpu.cycles + 2_000_000)       # the deadline is now in the past
        assert check() == 0
        apic.take_due(vcpu.cycles)
        assert check() == NO_EVENT                                  # TSC deadline: one shot
        assert machine.apic_next_event[0] == NO_EVENT
    finally:
        machine.close()
