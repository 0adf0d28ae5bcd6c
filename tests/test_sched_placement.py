"""Scheduler decisions on a real 4-CPU machine and kernel, without running guest code:
where select_task_rq puts a waking task, what the periodic balance and a CPU
going idle move, and that affinity bounds both (emu_x86/kernel/sched.py)."""
import pytest

from emu_x86.emu.machine import Machine
from emu_x86.kernel import fpu
from emu_x86.kernel.kernel import RESCHEDULE_VECTOR, Kernel, KernelConfig
from emu_x86.kernel.task import TASK_SLEEPING, Task, allocate_pid
from tests.guestbuild import REPO

HELLO = REPO / "guest" / "examples" / "hello.S"


@pytest.fixture
def kernel():
    machine = Machine(cpus=4, memory_bytes=64 << 20)
    kernel = Kernel(machine, KernelConfig(argv=["hello"], envp=[]))
    kernel.start(str(HELLO))          # the main task runs on CPU 0; CPUs 1-3 idle
    return kernel


def new_task(kernel, last_cpu=None, affinity=None) -> Task:
    process = kernel.init_process
    task = Task(tid=allocate_pid(), process=process, registers=dict(process.tasks[0].registers),
                fpstate=fpu.new_task_fpstate(kernel.fpu_config), last_cpu=last_cpu, affinity=affinity)
    task.state = TASK_SLEEPING
    process.tasks.append(task)
    return task


def queued(kernel):
    return [[task.tid for task in queue] for queue in kernel.scheduler.runqueues]


def pending_reschedule_ipis(kernel, cpu):
    return [event for event in kernel.machine.vcpus[cpu].apic.pending if event.vector == RESCHEDULE_VECTOR]


def test_wake_up_prefers_the_idle_previous_cpu_and_kicks_it(kernel):
    waker = kernel.machine.vcpus[0]
    task = new_task(kernel, last_cpu=2)
    kernel.scheduler.wake_up(task, waker)
    assert task.runqueue_cpu == 2
    assert len(pending_reschedule_ipis(kernel, 2)) == 1
    assert kernel.counters["ipis"] == 1
    # A second task for the same (still idle, already kicked) CPU would not send another IPI,
    # but it is no longer idle: the next one goes to the lowest idle CPU instead.
    other = new_task(kernel, last_cpu=2)
    kernel.scheduler.wake_up(other, waker)
    assert other.runqueue_cpu == 1


def test_without_an_idle_cpu_the_least_loaded_wins_ties_to_the_previous_cpu(kernel):
    waker = kernel.machine.vcpus[0]
    for _ in range(3):                                   # one task queued on each of CPUs 1-3
        kernel.scheduler.wake_up(new_task(kernel), waker)
    assert [len(queue) for queue in kernel.scheduler.runqueues] == [0, 1, 1, 1]
    task = new_task(kernel, last_cpu=3)
    kernel.scheduler.wake_up(task, waker)
    assert task.runqueue_cpu == 3                        # every CPU has load 1: previous CPU
    fresh = new_task(kernel)
    kernel.scheduler.wake_up(fresh, waker)
    assert fresh.runqueue_cpu == 0                       # load 1 on 0, 1 and 2: the waker's CPU


def test_placement_respects_affinity(kernel):
    task = new_task(kernel, last_cpu=1, affinity=0b1000)
    kernel.scheduler.wake_up(task, kernel.machine.vcpus[0])
    assert task.runqueue_cpu == 3


def test_periodic_balance_moves_waiting_tasks_to_idle_cpus_but_not_pinned_ones(kernel):
    scheduler = kernel.scheduler
    cpu0 = kernel.machine.vcpus[0]
    pinned = new_task(kernel, affinity=0b0001)
    free = [new_task(kernel) for _ in range(3)]
    for task in [pinned, *free]:
        task.state = "runnable"
        scheduler._enqueue_on(task, 0)                   # as if all had been queued on CPU 0
    assert [scheduler.nr_running(cpu) for cpu in range(4)] == [5, 0, 0, 0]
    scheduler.load_balance(cpu0)
    assert queued(kernel) == [[pinned.tid], [free[0].tid], [free[1].tid], [free[2].tid]]
    assert scheduler.load_balance_migrations == 3
    assert [len(pending_reschedule_ipis(kernel, cpu)) for cpu in (1, 2, 3)] == [1, 1, 1]
    scheduler.load_balance(cpu0)                         # loads 2,1,1,1: balanced, nothing moves
    assert scheduler.load_balance_migrations == 3


def test_a_cpu_going_idle_pulls_from_the_busiest_queue(kernel):
    scheduler = kernel.scheduler
    tasks = [new_task(kernel) for _ in range(3)]
    for cpu, task in zip((0, 0, 2), tasks):
        task.state = "runnable"
        scheduler._enqueue_on(task, cpu)
    pulled = scheduler.newidle_balance(kernel.machine.vcpus[3])
    assert pulled is tasks[0]                            # CPU 0 (load 3) beats CPU 2 (load 1)
    assert pulled.runqueue_cpu == 3 and scheduler.idle_pulls == 1
    assert scheduler.newidle_balance(kernel.machine.vcpus[1]) is tasks[1]     # CPU 0 still runs two
    # Left: CPU 0 runs main alone, CPU 2 has one queued task its kick will start.
    assert scheduler.newidle_balance(kernel.machine.vcpus[3]) is None
    pinned = new_task(kernel, affinity=0b0001)
    pinned.state = "runnable"
    for task in tasks:
        scheduler.dequeue(task)
    scheduler._enqueue_on(pinned, 0)
    assert scheduler.newidle_balance(kernel.machine.vcpus[1]) is None   # nothing it may run
