"""epoll (fs/eventpoll.c): epoll_create, epoll_create1, epoll_ctl, epoll_wait,
epoll_pwait, epoll_pwait2.

An ``EventPoll`` is the epoll instance's file; each registered (fd, file)
pair is an ``EpollItem`` hooked on the target file's wait queue, as
ep_ptable_queue_proc hooks ep_poll_callback there. A wake-up on the target
marks the item (``woken``) and wakes the instance's own queue, where
epoll_wait sleeps. Collecting events asks each item's file for its current
mask (ep_item_poll):

- level-triggered items report whenever the mask intersects their events;
- EPOLLET items report only when woken since their last report;
- EPOLLONESHOT items are disabled after one report until EPOLL_CTL_MOD.

EPOLLERR and EPOLLHUP are always reported. An item goes away with
EPOLL_CTL_DEL or when its file is finally closed (eventpoll_release), not
when one of several fds for the file is closed.
"""
from __future__ import annotations

import struct

from emu_x86.kernel.errno import EEXIST, EFAULT, EINVAL, ENOENT, EPERM, SyscallError
from emu_x86.kernel.file import (
    ANON_INODE_DEV, O_CLOEXEC, O_RDWR, POLLERR, POLLHUP, POLLIN, POLLRDNORM, File, as_fd, fdget, files_of,
    nofile_limit, stat_struct,
)
from emu_x86.kernel.select import check_sigmask, read_timeout_timespec
from emu_x86.kernel.wait import wait_event

EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = 0x1 | 0x4 | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE | 0x40 | 0x100
EP_MAX_EVENTS = 0x7FFFFFFF // 12
EVENT_BYTES = 12                      # struct epoll_event is packed on x86-64: u32 events, u64 data
SYS_epoll_create, SYS_epoll_wait, SYS_epoll_ctl, SYS_epoll_pwait = 213, 232, 233, 281
SYS_epoll_create1, SYS_epoll_pwait2 = 291, 441


class EpollItem:
    """epitem: one (fd, file) in an instance's interest list. It sits on the target's
    wait queue; ``try_complete`` is ep_poll_callback (it never completes a sleeper)."""
    __slots__ = ("epoll", "fd", "file", "events", "data", "woken", "queues")

    def __init__(self, epoll: "EventPoll", fd: int, file: File, events: int, data: int) -> None:
        self.epoll = epoll
        self.fd = fd
        self.file = file
        self.events = events
        self.data = data
        self.woken = True             # ep_insert checks readiness at once: an edge is due
        self.queues = [file.wait]
        file.wait.waiters.append(self)
        file.__dict__.setdefault("epoll_items", []).append(self)

    def try_complete(self, kernel, waker) -> bool:
        self.woken = True
        self.epoll.wait.wake_up(kernel, waker)
        return False

    def detach(self) -> None:
        for queue in self.queues:
            try:
                queue.waiters.remove(self)
            except ValueError:
                pass
        self.queues = []
        items = self.file.__dict__.get("epoll_items")
        if items and self in items:
            items.remove(self)


class EventPoll(File):
    def __init__(self) -> None:
        super().__init__(O_RDWR)
        self.items: dict[tuple[int, int], EpollItem] = {}

    def collect(self, kernel, max_events: int, consume: bool) -> list[tuple[int, int]]:
        """ep_send_events: (events, data) of up to ``max_events`` ready items, in
        registration order."""
        ready = []
        for item in list(self.items.values()):
            if len(ready) >= max_events:
                break
            wanted = item.events & ~EP_PRIVATE_BITS       # POLLERR | POLLHUP included at insert
            if not wanted or item.events & EPOLLET and not item.woken:
                continue
            mask = item.file.poll(kernel) & wanted
            if consume and item.events & EPOLLET:
                item.woken = False
            if not mask:
                continue
            ready.append((mask, item.data))
            if consume and item.events & EPOLLONESHOT:
                item.events &= EP_PRIVATE_BITS          # disabled until EPOLL_CTL_MOD
        return ready

    def poll(self, kernel):
        return POLLIN | POLLRDNORM if self.collect(kernel, 1, consume=False) else 0

    def release(self, kernel) -> None:
        for item in list(self.items.values()):
            item.detach()
        self.items.clear()

    def stat(self, kernel):
        return stat_struct(ANON_INODE_DEV, 1, 0o100600, kernel, blksize=4096)

    def describe(self) -> str:
        return "anon_inode:[eventpoll]"


def eventpoll_release(file: File) -> None:
    """The file's last reference is gone: drop it from every epoll set (eventpoll_release)."""
    for item in list(file.__dict__.get("epoll_items", ())):
        item.epoll.items.pop((item.fd, id(item.file)), None)
        item.detach()


def _create(task, flags: int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(EINVAL)
    return files_of(task).install(EventPoll(), cloexec=bool(flags & EPOLL_CLOEXEC), limit=nofile_limit(task))


def sys_epoll_create(kernel, vcpu, task, size, *_):
    size &= 0xFFFFFFFF
    if size == 0 or size & (1 << 31):
        raise SyscallError(EINVAL)
    return _create(task, 0)


def sys_epoll_create1(kernel, vcpu, task, flags, *_):
    return _create(task, flags & 0xFFFFFFFF)


def _is_epoll_loop(epoll: EventPoll, target: File, depth: int = 0) -> bool:
    if target is epoll:
        return True
    if isinstance(target, EventPoll) and depth < 5:
        return any(_is_epoll_loop(epoll, item.file, depth + 1) for item in target.items.values())
    return False


def sys_epoll_ctl(kernel, vcpu, task, epfd, op, fd, event_address, *_):
    """do_epoll_ctl, in Linux's order: the event (-EFAULT), both fds (-EBADF), a target
    without poll (-EPERM), not an epoll fd or fd == epfd (-EINVAL), the op."""
    op &= 0xFFFFFFFF
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = struct.unpack("<IQ", task.mm.copy_from_user(event_address, EVENT_BYTES))
    epoll = fdget(task, epfd)
    target_fd = as_fd(fd)
    target = fdget(task, target_fd)
    if not target.pollable:
        raise SyscallError(EPERM)         # file_can_poll: regular files, directories, mem devices
    if not isinstance(epoll, EventPoll) or target is epoll:
        raise SyscallError(EINVAL)
    if op != EPOLL_CTL_DEL and events & EPOLLEXCLUSIVE:
        if op == EPOLL_CTL_MOD or isinstance(target, EventPoll) or events & ~EPOLLEXCLUSIVE_OK_BITS:
            raise SyscallError(EINVAL)
    key = (target_fd, id(target))
    item = epoll.items.get(key)
    if op == EPOLL_CTL_ADD:
        if item is not None:
            raise SyscallError(EEXIST)
        if isinstance(target, EventPoll) and _is_epoll_loop(epoll, target):
            raise SyscallError(40)         # ELOOP
        epoll.items[key] = EpollItem(epoll, target_fd, target, events | POLLERR | POLLHUP, data)
        epoll.wait.wake_up(kernel, vcpu)
        return 0
    if item is None:
        raise SyscallError(ENOENT)
    if op == EPOLL_CTL_DEL:
        del epoll.items[key]
        item.detach()
        return 0
    if op == EPOLL_CTL_MOD:
        if item.events & EPOLLEXCLUSIVE:
            raise SyscallError(EINVAL)
        item.events = events | POLLERR | POLLHUP
        item.data = data
        item.woken = True
        epoll.wait.wake_up(kernel, vcpu)
        return 0
    raise SyscallError(EINVAL)


def do_epoll_wait(kernel, vcpu, task, epfd, events_address, max_events, timeout_ns: int | None) -> int | None:
    max_events &= 0xFFFFFFFF
    if max_events == 0 or max_events > EP_MAX_EVENTS:
        raise SyscallError(EINVAL)
    end = events_address + max_events * EVENT_BYTES
    if end > 1 << 47:
        raise SyscallError(EFAULT)
    epoll = fdget(task, epfd)
    if not isinstance(epoll, EventPoll):
        raise SyscallError(EINVAL)

    def deliver() -> int | None:
        ready = epoll.collect(kernel, max_events, consume=True)
        if not ready:
            return None
        task.mm.copy_to_user(events_address, b"".join(struct.pack("<IQ", mask, data) for mask, data in ready))
        return len(ready)

    count = deliver()
    if count is not None:
        return count
    if timeout_ns == 0:
        return 0
    wait_event(kernel, vcpu, task, [epoll.wait], deliver, timeout_ns=timeout_ns, on_timeout=lambda: 0)
    return None


def _timeout_ms(timeout) -> int | None:
    timeout &= 0xFFFFFFFF
    return None if timeout & (1 << 31) else timeout * 1_000_000


def sys_epoll_wait(kernel, vcpu, task, epfd, events, max_events, timeout, *_):
    return do_epoll_wait(kernel, vcpu, task, epfd, events, max_events, _timeout_ms(timeout))


def sys_epoll_pwait(kernel, vcpu, task, epfd, events, max_events, timeout, sigmask, sigsetsize, *_):
    check_sigmask(task, sigmask, sigsetsize)
    return do_epoll_wait(kernel, vcpu, task, epfd, events, max_events, _timeout_ms(timeout))


def sys_epoll_pwait2(kernel, vcpu, task, epfd, events, max_events, timeout_address, sigmask, sigsetsize):
    timeout_ns = read_timeout_timespec(task, timeout_address)
    check_sigmask(task, sigmask, sigsetsize)
    return do_epoll_wait(kernel, vcpu, task, epfd, events, max_events, timeout_ns)


SYSCALLS = {
    SYS_epoll_create: sys_epoll_create,
    SYS_epoll_create1: sys_epoll_create1,
    SYS_epoll_ctl: sys_epoll_ctl,
    SYS_epoll_wait: sys_epoll_wait,
    SYS_epoll_pwait: sys_epoll_pwait,
    SYS_epoll_pwait2: sys_epoll_pwait2,
}

__all__ = ["EventPoll", "eventpoll_release", "SYSCALLS"]
