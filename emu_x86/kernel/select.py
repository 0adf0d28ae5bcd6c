"""poll, ppoll, select, pselect6 (fs/select.c).

Each call asks every file for its ready mask (``File.poll``), and if nothing
the caller waits for is ready and the timeout is not zero, sleeps on all the
files' wait queues (emu_x86/kernel/wait.py) until one of them changes, the timeout
passes, or a signal arrives (-EINTR: these calls restart only through
restart_syscall, which a handler never triggers -- ERESTARTNOHAND).
select, pselect6 and ppoll write the time left back into their timeout
(poll_select_finish); glibc's pselect and ppoll hand the kernel a copy.

poll reports POLLNVAL for an fd that is not open and always reports POLLERR
and POLLHUP; select fails -EBADF for an fd in its sets that is not open (up
to the fd table's size, at least 64) and maps the mask to its three sets as
Linux's POLLIN_SET/POLLOUT_SET/POLLEX_SET.
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import EBADF, EFAULT, EINVAL, SyscallError
from emu_x86.kernel.file import (
    POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDBAND, POLLRDNORM, POLLWRBAND, POLLWRNORM,
    nofile_limit,
)
from emu_x86.kernel.wait import wait_event

POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
SYS_poll, SYS_select, SYS_pselect6, SYS_ppoll = 7, 23, 270, 271
NSEC_PER_SEC = 1_000_000_000


def read_timeout_timespec(task, address: int) -> int | None:
    """A relative timeout in ns from a struct timespec (None: no pointer: wait forever)."""
    if not address:
        return None
    seconds, nanoseconds = struct.unpack("<qq", task.mm.copy_from_user(address, 16))
    if seconds < 0 or not 0 <= nanoseconds < NSEC_PER_SEC:
        raise SyscallError(EINVAL)
    return seconds * NSEC_PER_SEC + nanoseconds


def check_sigmask(task, address: int, size: int) -> None:
    """The temporary signal mask of ppoll/pselect6: sigsetsize must be 8 (-EINVAL)."""
    if address:
        if size != 8:
            raise SyscallError(EINVAL)
        task.mm.copy_from_user(address, 8)


# ---- poll ----------------------------------------------------------------------------------

def do_poll(kernel, vcpu, task, fds_address: int, nfds: int, timeout_ns: int | None,
            on_done=None) -> int | None:
    nfds &= 0xFFFFFFFF
    if nfds > nofile_limit(task):
        raise SyscallError(EINVAL)
    raw = bytearray(task.mm.copy_from_user(fds_address, 8 * nfds)) if nfds else bytearray()
    table = task.process.files
    entries = [struct.unpack_from("<ih", raw, 8 * index) for index in range(nfds)]

    def scan() -> int:
        ready = 0
        for index, (fd, events) in enumerate(entries):
            revents = 0
            if fd >= 0:
                file = table.files.get(fd)
                if file is None:
                    revents = POLLNVAL
                else:
                    revents = file.poll(kernel) & ((events & 0xFFFF) | POLLERR | POLLHUP)
            struct.pack_into("<h", raw, 8 * index + 6, revents - 0x10000 if revents & 0x8000 else revents)
            if revents:
                ready += 1
        return ready

    def write_back() -> None:
        if nfds:
            task.mm.copy_to_user(fds_address, bytes(raw))

    ready = scan()
    if ready or timeout_ns == 0:
        write_back()
        if on_done is not None:
            on_done(timeout_ns)
        return ready
    deadline_ns = None if timeout_ns is None else kernel.now_ns(vcpu) + timeout_ns

    def retry():
        count = scan()
        if not count:
            return None
        write_back()
        if on_done is not None and deadline_ns is not None:
            on_done(max(0, deadline_ns - kernel.now_ns(kernel.this_cpu or vcpu)))
        return count

    def on_timeout():
        scan()
        write_back()
        if on_done is not None:
            on_done(0)
        return 0
    queues = {id(file.wait): file.wait for fd, _ in entries if fd >= 0
              for file in [table.files.get(fd)] if file is not None}
    wait_event(kernel, vcpu, task, list(queues.values()), retry, timeout_ns=timeout_ns, on_timeout=on_timeout)
    return None


def sys_poll(kernel, vcpu, task, fds, nfds, timeout_ms, *_):
    timeout_ms &= 0xFFFFFFFF
    if timeout_ms & (1 << 31):
        timeout_ns = None                    # a negative timeout waits forever
    else:
        timeout_ns = timeout_ms * 1_000_000
    return do_poll(kernel, vcpu, task, fds, nfds, timeout_ns)


def _timespec_writer(task, address: int):
    """poll_select_finish for a struct timespec timeout (an EFAULT there is ignored)."""
    def write(remaining_ns: int | None) -> None:
        if address and remaining_ns is not None:
            try:
                task.mm.copy_to_user(address, struct.pack("<qq", remaining_ns // NSEC_PER_SEC,
                                                          remaining_ns % NSEC_PER_SEC))
            except SyscallError:
                pass
    return write


def sys_ppoll(kernel, vcpu, task, fds, nfds, timeout_address, sigmask, sigsetsize, *_):
    timeout_ns = read_timeout_timespec(task, timeout_address)
    check_sigmask(task, sigmask, sigsetsize)
    return do_poll(kernel, vcpu, task, fds, nfds, timeout_ns, _timespec_writer(task, timeout_address))


# ---- select --------------------------------------------------------------------------------

def do_select(kernel, vcpu, task, nfds: int, addresses: tuple[int, int, int], timeout_ns: int | None,
              on_done=None) -> int | None:
    nfds &= 0xFFFFFFFF
    if nfds & (1 << 31):
        raise SyscallError(EINVAL)
    table = task.process.files
    # fdt->max_fds: the table's size, BITS_PER_LONG at least, grown in powers of two.
    max_fds = 64
    while max_fds < max(table.files, default=0) + 1:
        max_fds *= 2
    nfds = min(nfds, max_fds)
    words = (nfds + 63) // 64
    sets = []
    for address in addresses:
        if address and words:
            sets.append(int.from_bytes(task.mm.copy_from_user(address, 8 * words), "little") & ((1 << nfds) - 1))
        else:
            sets.append(0)
    wanted = sets[0] | sets[1] | sets[2]
    fds = [fd for fd in range(nfds) if wanted >> fd & 1]
    for fd in fds:
        if fd not in table.files:
            raise SyscallError(EBADF)
    masks = (POLLIN_SET, POLLOUT_SET, POLLEX_SET)

    def scan() -> tuple[int, list[int]]:
        results = [0, 0, 0]
        count = 0
        for fd in fds:
            file = table.files.get(fd)
            if file is None:
                continue
            mask = file.poll(kernel)
            for which in range(3):
                if sets[which] >> fd & 1 and mask & masks[which]:
                    results[which] |= 1 << fd
                    count += 1
        return count, results

    def write_back(results: list[int]) -> None:
        for address, bits in zip(addresses, results):
            if address and words:
                task.mm.copy_to_user(address, bits.to_bytes(8 * words, "little"))

    count, results = scan()
    if count or timeout_ns == 0:
        write_back(results)
        if on_done is not None:
            on_done(timeout_ns)
        return count
    deadline_ns = None if timeout_ns is None else kernel.now_ns(vcpu) + timeout_ns

    def retry():
        found, bits = scan()
        if not found:
            return None
        write_back(bits)
        if on_done is not None and deadline_ns is not None:
            on_done(max(0, deadline_ns - kernel.now_ns(kernel.this_cpu or vcpu)))
        return found

    def on_timeout():
        write_back([0, 0, 0])
        if on_done is not None:
            on_done(0)
        return 0
    queues = {id(table.files[fd].wait): table.files[fd].wait for fd in fds}
    wait_event(kernel, vcpu, task, list(queues.values()), retry, timeout_ns=timeout_ns, on_timeout=on_timeout)
    return None


def sys_select(kernel, vcpu, task, nfds, readfds, writefds, exceptfds, timeval_address, *_):
    timeout_ns = None
    if timeval_address:
        seconds, microseconds = struct.unpack("<qq", task.mm.copy_from_user(timeval_address, 16))
        if seconds < 0 or microseconds < 0:
            raise SyscallError(EINVAL)
        # poll_select_set_timeout normalises tv_usec >= 1e6 into seconds.
        timeout_ns = seconds * NSEC_PER_SEC + microseconds * 1000

    def time_left(remaining_ns: int | None) -> None:
        """select writes back the time left (poll_select_finish); an EFAULT there is ignored."""
        if timeval_address and remaining_ns is not None:
            try:
                task.mm.copy_to_user(timeval_address, struct.pack(
                    "<qq", remaining_ns // NSEC_PER_SEC, remaining_ns % NSEC_PER_SEC // 1000))
            except SyscallError:
                pass
    return do_select(kernel, vcpu, task, nfds, (readfds, writefds, exceptfds), timeout_ns, time_left)


def sys_pselect6(kernel, vcpu, task, nfds, readfds, writefds, exceptfds, timespec_address, sigmask_pack, *_):
    timeout_ns = read_timeout_timespec(task, timespec_address)
    if sigmask_pack:
        try:
            sigmask, sigsetsize = struct.unpack("<QQ", task.mm.copy_from_user(sigmask_pack, 16))
        except SyscallError:
            raise SyscallError(EFAULT) from None
        check_sigmask(task, sigmask, sigsetsize)
    return do_select(kernel, vcpu, task, nfds, (readfds, writefds, exceptfds), timeout_ns,
                     _timespec_writer(task, timespec_address))


SYSCALLS = {SYS_poll: sys_poll, SYS_ppoll: sys_ppoll, SYS_select: sys_select, SYS_pselect6: sys_pselect6}

__all__ = ["SYSCALLS", "do_poll"]
