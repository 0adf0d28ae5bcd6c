"""getdents64 (fs/readdir.c): directory entries of an open directory."""
from __future__ import annotations

from emu_x86.kernel.file import fdget

SYS_getdents64 = 217


def sys_getdents64(kernel, vcpu, task, fd, dirp, count, *_):
    return fdget(task, fd).getdents64(kernel, task, dirp, count & 0xFFFFFFFF)


SYSCALLS = {SYS_getdents64: sys_getdents64}
