"""POSIX message queues (ipc/mqueue.c): mq_open, mq_unlink, mq_timedsend,
mq_timedreceive, mq_notify, mq_getsetattr (240-245).

The queues live in the kernel's one mqueue namespace (``Kernel.mqueues``, by
name: the path glibc passes without its leading '/'); a descriptor is an fd
whose open file is an ``MqueueFile`` (mqueue is a filesystem on Linux), with
the open's access mode and O_NONBLOCK. Messages leave highest priority first,
FIFO within a priority. A full (empty) queue blocks a sender (receiver) until
room (a message) appears, the absolute CLOCK_REALTIME timeout passes
(-ETIMEDOUT) or a signal arrives (-EINTR, or restarted under SA_RESTART);
with O_NONBLOCK it is -EAGAIN. Limits are the defaults an unprivileged
process meets (/proc/sys/fs/mqueue: msg_max 10, msgsize_max 8192, the same
as the defaults of a queue opened without attributes). mq_notify registers
one process per queue (-EBUSY for a second); the notification (SIGEV_SIGNAL
with SI_MESGQ, or SIGEV_NONE) fires when a message arrives in an empty queue
that no receiver waits on, and unregisters. SIGEV_THREAD needs a netlink
socket, which this sandbox does not give (-EBADF for its descriptor). A
queue's file reads as Linux's "QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:...".
"""
from __future__ import annotations

import bisect
import itertools
import stat as st
import struct

from emu_x86 import TYPE_CHECKING
from emu_x86.kernel.errno import (
    EACCES, EAGAIN, EBADF, EBUSY, EEXIST, EINVAL, EMSGSIZE, ENAMETOOLONG, ENOENT, ETIMEDOUT, SyscallError,
)
from emu_x86.kernel.file import (
    O_ACCMODE, O_CLOEXEC, O_CREAT, O_EXCL, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, POLLIN, POLLOUT, POLLRDNORM,
    POLLWRNORM, File, fdget, files_of, nofile_limit, stat_struct,
)
from emu_x86.kernel.wait import WaitQueue, wait_event

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Task

SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify, SYS_mq_getsetattr = \
    240, 241, 242, 243, 244, 245
MQ_PRIO_MAX = 32768
DFLT_MSGMAX = MSG_MAX = 10              # fs.mqueue.msg_default / msg_max
DFLT_MSGSIZEMAX = MSGSIZE_MAX = 8192    # fs.mqueue.msgsize_default / msgsize_max
NAME_MAX = 255
MQUEUE_DEV = 0x13                      # st_dev of the mqueue filesystem
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD = 0, 1, 2
SI_MESGQ = -3
MQ_ATTR = struct.Struct("<qqqq32x")     # mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs, reserved
_inodes = itertools.count(0x4000)


class MessageQueue:
    """struct mqueue_inode_info: the messages (priority, sequence, bytes), the
    limits, the owner, the notification and the waiters."""

    def __init__(self, name: str, mode: int, uid: int, gid: int, max_messages: int, message_bytes: int) -> None:
        self.name = name
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.max_messages = max_messages
        self.message_bytes = message_bytes
        self.messages: list[tuple[int, int, bytes]] = []    # sorted by (-priority, sequence)
        self.sequence = itertools.count()
        self.inode = next(_inodes)
        self.notify: tuple | None = None    # (process, notify, signo, value)
        self.receivers = WaitQueue()
        self.senders = WaitQueue()
        self.pollers = WaitQueue()

    @property
    def total_bytes(self) -> int:
        return sum(len(data) for _, _, data in self.messages)

    def wake(self, kernel: "Kernel", vcpu) -> None:
        for queue in (self.receivers, self.senders, self.pollers):
            queue.wake_up(kernel, vcpu)


class MqueueFile(File):
    """An open message queue descriptor."""
    pollable = True

    def __init__(self, queue: MessageQueue, flags: int) -> None:
        super().__init__(flags)
        self.queue = queue
        self.wait = queue.pollers

    def poll(self, kernel):
        queue = self.queue
        mask = POLLIN | POLLRDNORM if queue.messages else 0
        if len(queue.messages) < queue.max_messages:
            mask |= POLLOUT | POLLWRNORM
        return mask

    def read_bytes(self, kernel, task, max_bytes):
        """mqueue_read_file: the queue's state as text (one read of the whole line)."""
        queue = self.queue
        notify = queue.notify
        text = (f"QSIZE:{queue.total_bytes:<10} NOTIFY:{notify[1] if notify else 0:<5} "
                f"SIGNO:{notify[2] if notify and notify[1] == SIGEV_SIGNAL else 0:<5} "
                f"NOTIFY_PID:{notify[0].pid if notify else 0:<6}\n").encode()
        offset = getattr(self, "offset", 0)
        data = text[offset:offset + max_bytes]
        self.offset = offset + len(data)
        return data

    def stat(self, kernel):
        queue = self.queue
        return stat_struct(MQUEUE_DEV, queue.inode, st.S_IFREG | queue.mode, kernel, size=queue.total_bytes,
                           uid=queue.uid, gid=queue.gid)

    def describe(self) -> str:
        return f"/{self.queue.name}"


def _queues(kernel: "Kernel") -> dict:
    return kernel.__dict__.setdefault("mqueues", {})


def _name(task: "Task", address: int) -> str:
    """getname + the mqueue lookup's checks: no '/', not empty, at most NAME_MAX."""
    from emu_x86.kernel.namei import getname
    raw = getname(task, address)
    if len(raw) > NAME_MAX:
        raise SyscallError(ENAMETOOLONG)
    if b"/" in raw:
        raise SyscallError(EACCES)
    return raw.decode("utf-8", "surrogateescape")


def _allowed(task: "Task", queue: MessageQueue, access: int) -> bool:
    from emu_x86.kernel.cred import cred_of
    cred = cred_of(task)
    bits = (queue.mode >> 6) & 7 if cred.euid == queue.uid else (
        (queue.mode >> 3) & 7 if cred.egid == queue.gid else queue.mode & 7)
    wanted = {O_RDONLY: 4, O_WRONLY: 2, O_RDWR: 6}[access]
    return bits & wanted == wanted


def sys_mq_open(kernel, vcpu, task, name_address, oflag, mode, attr_address, *_):
    oflag &= 0xFFFFFFFF
    name = _name(task, name_address)
    access = oflag & O_ACCMODE
    if access == O_ACCMODE:
        raise SyscallError(EINVAL)
    queues = _queues(kernel)
    queue = queues.get(name)
    if queue is None:
        if not oflag & O_CREAT:
            raise SyscallError(ENOENT)
        max_messages, message_bytes = DFLT_MSGMAX, DFLT_MSGSIZEMAX
        if attr_address:
            _, max_messages, message_bytes, _ = MQ_ATTR.unpack(task.mm.copy_from_user(attr_address, MQ_ATTR.size))
            # mqueue_attr_valid, with the unprivileged limits
            if max_messages <= 0 or message_bytes <= 0 or max_messages > MSG_MAX or message_bytes > MSGSIZE_MAX:
                raise SyscallError(EINVAL)
        from emu_x86.kernel.cred import cred_of
        cred = cred_of(task)
        umask = getattr(task.process, "umask", 0o022)
        queue = MessageQueue(name, mode & 0o777 & ~umask, cred.euid, cred.egid, max_messages, message_bytes)
        queues[name] = queue
    else:
        if oflag & O_CREAT and oflag & O_EXCL:
            raise SyscallError(EEXIST)
        if not _allowed(task, queue, access):
            raise SyscallError(EACCES)
    file = MqueueFile(queue, access | (oflag & O_NONBLOCK))
    return files_of(task).install(file, cloexec=bool(oflag & O_CLOEXEC), limit=nofile_limit(task))


def sys_mq_unlink(kernel, vcpu, task, name_address, *_):
    name = _name(task, name_address)
    queue = _queues(kernel).get(name)
    if queue is None:
        raise SyscallError(ENOENT)
    from emu_x86.kernel.cred import cred_of
    if cred_of(task).euid != queue.uid:
        raise SyscallError(EACCES)            # the directory is sticky-free but root's: only the owner
    del _queues(kernel)[name]                 # open descriptors keep the queue alive
    return 0


def _timeout_ns(kernel, vcpu, task, address: int) -> int | None:
    """prepare_timeout: an absolute CLOCK_REALTIME time (-EINVAL if malformed), as ns from now."""
    if not address:
        return None
    from emu_x86.kernel.posix_timers import CLOCK_REALTIME, clock_now_ns, read_timespec
    return max(0, read_timespec(task, address) - clock_now_ns(kernel, vcpu, CLOCK_REALTIME))


def _queue_file(task, fd: int, readable: bool) -> MqueueFile:
    file = fdget(task, fd)
    if not isinstance(file, MqueueFile):
        raise SyscallError(EBADF)
    if (readable and not file.readable) or (not readable and not file.writable):
        raise SyscallError(EBADF)
    return file


def _notify_if_registered(kernel, vcpu, task, queue: MessageQueue) -> None:
    """__do_notify: a message arrived in an empty queue nobody waits on."""
    if queue.notify is None or queue.receivers.waiters:
        return
    process, notify, signo, value = queue.notify
    queue.notify = None
    if notify != SIGEV_SIGNAL or process.exit_state is not None:
        return
    from emu_x86.kernel.cred import cred_of
    from emu_x86.kernel.posix_timers import send_timer_signal
    from emu_x86.kernel.sigframe import SigInfo, sigbit
    from emu_x86.kernel.task import TASK_EXITED

    class MqueueSigInfo(SigInfo):
        def pack(self) -> bytes:
            head = struct.pack("<iii4x", self.signo, 0, self.code)
            return (head + struct.pack("<iIQ", self.pid, self.uid, value)).ljust(128, b"\0")

    live = [t for t in process.tasks if t.state != TASK_EXITED]
    if live:
        target = next((t for t in live if not t.signal_mask & sigbit(signo)), live[0])
        send_timer_signal(kernel, vcpu, target, MqueueSigInfo(signo, SI_MESGQ, pid=task.pid, uid=cred_of(task).uid))


def sys_mq_timedsend(kernel, vcpu, task, fd, message_address, length, priority, timeout_address, *_):
    if priority >= MQ_PRIO_MAX:
        raise SyscallError(EINVAL)
    timeout_ns = _timeout_ns(kernel, vcpu, task, timeout_address)
    file = _queue_file(task, fd, readable=False)
    queue = file.queue
    if length > queue.message_bytes:
        raise SyscallError(EMSGSIZE)
    data = task.mm.copy_from_user(message_address, length)

    def send() -> int | None:
        if len(queue.messages) >= queue.max_messages:
            return None
        was_empty = not queue.messages
        key = (-priority, next(queue.sequence), data)
        bisect.insort(queue.messages, key)
        waker = kernel.this_cpu or vcpu       # a sleeper's retry runs on the waker's CPU
        if was_empty:
            _notify_if_registered(kernel, waker, task, queue)
        queue.wake(kernel, waker)
        return 0

    return _transfer_or_wait(kernel, vcpu, task, file, queue.senders, send, timeout_ns, SYS_mq_timedsend)


def sys_mq_timedreceive(kernel, vcpu, task, fd, buffer_address, length, priority_address, timeout_address, *_):
    timeout_ns = _timeout_ns(kernel, vcpu, task, timeout_address)
    file = _queue_file(task, fd, readable=True)
    queue = file.queue
    if length < queue.message_bytes:
        raise SyscallError(EMSGSIZE)

    def receive() -> int | None:
        if not queue.messages:
            return None
        negative_priority, _, data = queue.messages[0]
        task.mm.copy_to_user(buffer_address, data)
        if priority_address:
            task.mm.copy_to_user(priority_address, struct.pack("<I", -negative_priority))
        queue.messages.pop(0)
        queue.wake(kernel, kernel.this_cpu or vcpu)
        return len(data)

    return _transfer_or_wait(kernel, vcpu, task, file, queue.receivers, receive, timeout_ns,
                             SYS_mq_timedreceive)


def _transfer_or_wait(kernel, vcpu, task, file, wait_queue, attempt, timeout_ns: int, restart_number: int):
    """do_mq_timedsend/do_mq_timedreceive's common end: ``attempt()`` now; if it cannot
    complete, EAGAIN for O_NONBLOCK, ETIMEDOUT for an expired absolute timeout, else
    sleep on ``wait_queue`` with ``attempt`` as the waker's retry (None: blocked)."""
    result = attempt()
    if result is not None:
        return result
    if file.flags & O_NONBLOCK:
        raise SyscallError(EAGAIN)
    if timeout_ns == 0:
        raise SyscallError(ETIMEDOUT)
    wait_event(kernel, vcpu, task, [wait_queue], attempt, timeout_ns=timeout_ns,
               on_timeout=lambda: -ETIMEDOUT, restart_number=restart_number)
    return None


def sys_mq_notify(kernel, vcpu, task, fd, event_address, *_):
    notify, signo, value = None, 0, 0
    if event_address:
        value, signo, notify = struct.unpack("<Qii", task.mm.copy_from_user(event_address, 16))
        if notify not in (SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD):
            raise SyscallError(EINVAL)
        if notify == SIGEV_SIGNAL and not 0 < signo <= 64:
            raise SyscallError(EINVAL)
        if notify == SIGEV_THREAD:
            raise SyscallError(EBADF)            # the netlink socket it names cannot exist here
    file = fdget(task, fd)
    if not isinstance(file, MqueueFile):
        raise SyscallError(EBADF)
    queue = file.queue
    if notify is None:
        if queue.notify is not None and queue.notify[0] is task.process:
            queue.notify = None
        return 0
    if queue.notify is not None:
        raise SyscallError(EBUSY)
    queue.notify = (task.process, notify, signo, value)
    return 0


def sys_mq_getsetattr(kernel, vcpu, task, fd, new_address, old_address, *_):
    new_flags = None
    if new_address:
        flags, *_ = MQ_ATTR.unpack(task.mm.copy_from_user(new_address, MQ_ATTR.size))
        if flags & ~O_NONBLOCK:
            raise SyscallError(EINVAL)
        new_flags = flags
    file = fdget(task, fd)
    if not isinstance(file, MqueueFile):
        raise SyscallError(EBADF)
    queue = file.queue
    if old_address:
        task.mm.copy_to_user(old_address, MQ_ATTR.pack(file.flags & O_NONBLOCK, queue.max_messages,
                                                        queue.message_bytes, len(queue.messages)))
    if new_flags is not None:
        file.flags = (file.flags & ~O_NONBLOCK) | new_flags
    return 0


SYSCALLS = {
    SYS_mq_open: sys_mq_open,
    SYS_mq_unlink: sys_mq_unlink,
    SYS_mq_timedsend: sys_mq_timedsend,
    SYS_mq_timedreceive: sys_mq_timedreceive,
    SYS_mq_notify: sys_mq_notify,
    SYS_mq_getsetattr: sys_mq_getsetattr,
}

__all__ = ["SYSCALLS", "MessageQueue", "MqueueFile"]
