"""Sockets (net/socket.c): refused, as in a sandbox with no network.

socket and socketpair fail -EACCES (a seccomp/LSM deny policy); the calls
that act on a socket fd find none: -ENOTSOCK for an open fd, else -EBADF.
"""
from __future__ import annotations

from emu_x86.kernel.errno import EACCES, EBADF, SyscallError
from emu_x86.kernel.file import as_fd

ENOTSOCK = 88
SYS_socket, SYS_socketpair = 41, 53
# connect, accept, sendto, recvfrom, sendmsg, recvmsg, shutdown, bind, listen,
# getsockname, getpeername, setsockopt, getsockopt, accept4, recvmmsg, sendmmsg
SOCKET_FD_SYSCALLS = (42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 288, 299, 307)


def sys_socket(kernel, vcpu, task, *_):
    raise SyscallError(EACCES)


def sys_socket_fd(kernel, vcpu, task, fd, *_):
    if as_fd(fd) in task.process.files.files:
        raise SyscallError(ENOTSOCK)
    raise SyscallError(EBADF)


SYSCALLS = {SYS_socket: sys_socket, SYS_socketpair: sys_socket,
            **{number: sys_socket_fd for number in SOCKET_FD_SYSCALLS}}
