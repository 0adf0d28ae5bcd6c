"""Wait queues for blocking file operations (include/linux/wait.h, kernel/sched/wait.c).

A task that cannot complete a read, write, poll or epoll_wait sleeps on the
wait queues of the files involved. Linux wakes it and lets it retry the
operation itself; here the kernel runs one call at a time, so the waker
retries the sleeper's operation on its behalf (``Waiter.retry``, which copies
into the sleeper's mm through the same uaccess helpers) and wakes the task
only when that retry completes, with the result in its RAX. The outcome a
program can observe is the same: the call returns once it can complete, with
what it would have returned then.

A sleep ends in one of three ways: a wake-up whose retry completes, the
timeout (``Waiter.on_timeout`` gives the value, e.g. poll's 0), or a signal
(-EINTR, or the call runs again under SA_RESTART when ``restart_number`` is
set: -ERESTARTSYS). Each path calls ``cancel_wait`` so no queue keeps a
stale entry.
"""
from __future__ import annotations

from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import EINTR, ENOMEM, SyscallError
from emu_x86.kernel.mm.frames import OutOfMemory

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

MASK64 = (1 << 64) - 1


class WaitQueue:
    """wait_queue_head_t: the waiters of one object (a pipe, an eventfd ...), in arrival order."""
    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[Waiter] = []

    def wake_up(self, kernel: "Kernel", waker: "VCpu | None") -> None:
        """__wake_up: let every waiter retry; those that complete are woken."""
        if not self.waiters:
            return
        for waiter in list(self.waiters):
            waiter.try_complete(kernel, waker)


class Waiter:
    """One sleeping call. ``retry()`` returns the call's result, or None while it
    still cannot complete (it may raise SyscallError: the result is -errno)."""
    __slots__ = ("task", "queues", "retry", "on_timeout", "restart_number", "retrying")

    def __init__(self, task: "Task", queues: list[WaitQueue], retry: Callable[[], int | None],
                 on_timeout: Callable[[], int] | None = None, restart_number: int | None = None):
        self.task = task
        self.queues = queues
        self.retry = retry
        self.on_timeout = on_timeout
        self.restart_number = restart_number
        self.retrying = False

    def detach(self) -> None:
        for queue in self.queues:
            try:
                queue.waiters.remove(self)
            except ValueError:
                pass
        self.queues = []

    def try_complete(self, kernel: "Kernel", waker: "VCpu | None") -> bool:
        task = self.task
        if task.waiter is not self or task.state != "sleeping":
            self.detach()
            return False
        if self.retrying:
            # The retry itself woke this queue (sendfile writing into a pipe it
            # also waits on): the running retry goes on; no nested one.
            return False
        self.retrying = True
        try:
            result = self.retry()
        except SyscallError as error:
            result = -error.errno
        except OutOfMemory:          # the sleeper's buffer needed a frame: its call fails, not the waker's
            result = -ENOMEM
        finally:
            self.retrying = False
        if result is None:
            return False
        self.detach()
        task.waiter = None
        task.registers["rax"] = result & MASK64
        kernel.scheduler.wake_up(task, waker)   # enqueue drops the timed wake-up (wake_cycles)
        return True


def wait_event(kernel: "Kernel", vcpu: "VCpu", task: "Task", queues: list[WaitQueue],
               retry: Callable[[], int | None], timeout_ns: int | None = None,
               on_timeout: Callable[[], int] | None = None, restart_number: int | None = None) -> None:
    """Put the running ``task`` to sleep on ``queues`` until ``retry`` completes, the
    timeout passes (``timeout_ns`` of virtual time; None: no timeout) or a signal
    arrives. The syscall handler returns None after this (the result comes later)."""
    if signal_pending(task):
        # A signal already queued (its kick from another CPU not delivered yet):
        # Linux never goes to sleep then; the call ends as a signal would end it.
        from emu_x86.kernel.sigframe import SA_RESTART, SIG_DFL, get_action
        restart = restart_number is not None and any(
            get_action(task, info.signo).flags & SA_RESTART and get_action(task, info.signo).handler != SIG_DFL
            for info in task.pending_signals[:1])
        if restart:
            vcpu.write_register("rip", vcpu.read_register("rip") - 2)
            vcpu.write_register("rax", restart_number)
        else:
            vcpu.write_register("rax", (-EINTR) & MASK64)
        return
    waiter = Waiter(task, list(queues), retry, on_timeout, restart_number)
    for queue in waiter.queues:
        queue.waiters.append(waiter)
    task.waiter = waiter
    task.timeout_result = 0
    wake_cycles = None
    if timeout_ns is not None:
        wake_cycles = vcpu.cycles + timeout_ns * kernel.tsc_hz // 1_000_000_000
    kernel.scheduler.block_current(vcpu, wake_cycles)


def signal_pending(task: "Task") -> bool:
    """signal_pending: a queued signal the thread does not block (SIGKILL/SIGSTOP always)."""
    from emu_x86.kernel.sigframe import UNBLOCKABLE, sigbit
    return any(not task.signal_mask & sigbit(info.signo) or sigbit(info.signo) & UNBLOCKABLE
               for info in task.pending_signals)


def cancel_wait(task: "Task") -> None:
    """Take ``task`` off every wait queue it sleeps on (signal, timeout, exit)."""
    waiter = task.waiter
    if waiter is not None:
        task.waiter = None
        waiter.detach()


def timeout_value(task: "Task") -> int | None:
    """The value a timed-out wait returns, if the task sleeps in one (else None)."""
    waiter = task.waiter
    if waiter is None or waiter.on_timeout is None:
        return None
    return waiter.on_timeout()


__all__ = ["WaitQueue", "Waiter", "wait_event", "cancel_wait", "timeout_value"]
