"""Credentials (kernel/cred.c and the set*id calls of kernel/sys.c).

Every guest runs as an unprivileged user (uid and gid GUEST_UID/GUEST_GID,
no supplementary groups, no capabilities). The set*id calls follow Linux's
rules for such a process: each id may only be set to one of the current
real, effective or saved ids (-EPERM otherwise), and setgroups needs
CAP_SETGID (-EPERM). The ids live on the process (threads share them, as
glibc's setxid broadcast makes them on Linux) and are inherited by fork.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu_x86.kernel.errno import EINVAL, EPERM, SyscallError

SYS_getuid, SYS_getgid, SYS_setuid, SYS_setgid, SYS_geteuid, SYS_getegid = 102, 104, 105, 106, 107, 108
SYS_setreuid, SYS_setregid, SYS_getgroups, SYS_setgroups = 113, 114, 115, 116
SYS_setresuid, SYS_getresuid, SYS_setresgid, SYS_getresgid = 117, 118, 119, 120
SYS_setfsuid, SYS_setfsgid = 122, 123
NGROUPS_MAX = 65536
UNCHANGED = 0xFFFFFFFF                 # (uid_t)-1: leave this id as it is


@dataclass
class Cred:
    """uid/gid quadruples (real, effective, saved, filesystem)."""
    uid: int
    euid: int
    suid: int
    fsuid: int
    gid: int
    egid: int
    sgid: int
    fsgid: int

    @classmethod
    def user(cls, uid: int, gid: int) -> "Cred":
        return cls(uid, uid, uid, uid, gid, gid, gid, gid)


def cred_of(task) -> Cred:
    process = task.process
    cred = getattr(process, "cred", None)
    if cred is None:
        from emu_x86.kernel.exec import GUEST_GID, GUEST_UID
        cred = process.cred = Cred.user(GUEST_UID, GUEST_GID)
    return cred


def _allowed(value: int, *current: int) -> bool:
    return value == UNCHANGED or value in current


def sys_getuid(kernel, vcpu, task, *_):
    return cred_of(task).uid


def sys_geteuid(kernel, vcpu, task, *_):
    return cred_of(task).euid


def sys_getgid(kernel, vcpu, task, *_):
    return cred_of(task).gid


def sys_getegid(kernel, vcpu, task, *_):
    return cred_of(task).egid


def sys_setuid(kernel, vcpu, task, uid, *_):
    """__sys_setuid without CAP_SETUID: only the effective (and fs) id changes, to ruid or suid."""
    cred = cred_of(task)
    uid &= 0xFFFFFFFF
    if uid == UNCHANGED:
        raise SyscallError(EINVAL)
    if uid not in (cred.uid, cred.suid):
        raise SyscallError(EPERM)
    cred.euid = cred.fsuid = uid
    return 0


def sys_setgid(kernel, vcpu, task, gid, *_):
    cred = cred_of(task)
    gid &= 0xFFFFFFFF
    if gid == UNCHANGED:
        raise SyscallError(EINVAL)
    if gid not in (cred.gid, cred.sgid):
        raise SyscallError(EPERM)
    cred.egid = cred.fsgid = gid
    return 0


def sys_setreuid(kernel, vcpu, task, ruid, euid, *_):
    cred = cred_of(task)
    ruid &= 0xFFFFFFFF
    euid &= 0xFFFFFFFF
    if not _allowed(ruid, cred.uid, cred.euid) or not _allowed(euid, cred.uid, cred.euid, cred.suid):
        raise SyscallError(EPERM)
    if ruid != UNCHANGED or (euid != UNCHANGED and euid != cred.uid):
        cred.suid = euid if euid != UNCHANGED else cred.euid
    if ruid != UNCHANGED:
        cred.uid = ruid
    if euid != UNCHANGED:
        cred.euid = cred.fsuid = euid
    return 0


def sys_setregid(kernel, vcpu, task, rgid, egid, *_):
    cred = cred_of(task)
    rgid &= 0xFFFFFFFF
    egid &= 0xFFFFFFFF
    if not _allowed(rgid, cred.gid, cred.egid) or not _allowed(egid, cred.gid, cred.egid, cred.sgid):
        raise SyscallError(EPERM)
    if rgid != UNCHANGED or (egid != UNCHANGED and egid != cred.gid):
        cred.sgid = egid if egid != UNCHANGED else cred.egid
    if rgid != UNCHANGED:
        cred.gid = rgid
    if egid != UNCHANGED:
        cred.egid = cred.fsgid = egid
    return 0


def sys_setresuid(kernel, vcpu, task, ruid, euid, suid, *_):
    cred = cred_of(task)
    ids = [value & 0xFFFFFFFF for value in (ruid, euid, suid)]
    if not all(_allowed(value, cred.uid, cred.euid, cred.suid) for value in ids):
        raise SyscallError(EPERM)
    if ids[0] != UNCHANGED:
        cred.uid = ids[0]
    if ids[1] != UNCHANGED:
        cred.euid = cred.fsuid = ids[1]
    if ids[2] != UNCHANGED:
        cred.suid = ids[2]
    return 0


def sys_setresgid(kernel, vcpu, task, rgid, egid, sgid, *_):
    cred = cred_of(task)
    ids = [value & 0xFFFFFFFF for value in (rgid, egid, sgid)]
    if not all(_allowed(value, cred.gid, cred.egid, cred.sgid) for value in ids):
        raise SyscallError(EPERM)
    if ids[0] != UNCHANGED:
        cred.gid = ids[0]
    if ids[1] != UNCHANGED:
        cred.egid = cred.fsgid = ids[1]
    if ids[2] != UNCHANGED:
        cred.sgid = ids[2]
    return 0


def sys_getresuid(kernel, vcpu, task, ruid, euid, suid, *_):
    cred = cred_of(task)
    for address, value in ((ruid, cred.uid), (euid, cred.euid), (suid, cred.suid)):
        task.mm.copy_to_user(address, struct.pack("<I", value))
    return 0


def sys_getresgid(kernel, vcpu, task, rgid, egid, sgid, *_):
    cred = cred_of(task)
    for address, value in ((rgid, cred.gid), (egid, cred.egid), (sgid, cred.sgid)):
        task.mm.copy_to_user(address, struct.pack("<I", value))
    return 0


def sys_getgroups(kernel, vcpu, task, size, *_):
    """No supplementary groups: 0, whatever the buffer (-EINVAL for a negative size)."""
    if size & 0xFFFFFFFF & (1 << 31):
        raise SyscallError(EINVAL)
    return 0


def sys_setgroups(kernel, vcpu, task, size, *_):
    if size & 0xFFFFFFFF > NGROUPS_MAX:
        raise SyscallError(EINVAL)
    raise SyscallError(EPERM)


def sys_setfsuid(kernel, vcpu, task, uid, *_):
    """setfsuid returns the old fsuid whether or not the change was allowed."""
    cred = cred_of(task)
    old = cred.fsuid
    uid &= 0xFFFFFFFF
    if uid in (cred.uid, cred.euid, cred.suid, cred.fsuid):
        cred.fsuid = uid
    return old


def sys_setfsgid(kernel, vcpu, task, gid, *_):
    cred = cred_of(task)
    old = cred.fsgid
    gid &= 0xFFFFFFFF
    if gid in (cred.gid, cred.egid, cred.sgid, cred.fsgid):
        cred.fsgid = gid
    return old


SYSCALLS = {
    SYS_getuid: sys_getuid, SYS_geteuid: sys_geteuid, SYS_getgid: sys_getgid, SYS_getegid: sys_getegid,
    SYS_setuid: sys_setuid, SYS_setgid: sys_setgid, SYS_setreuid: sys_setreuid, SYS_setregid: sys_setregid,
    SYS_setresuid: sys_setresuid, SYS_setresgid: sys_setresgid, SYS_getresuid: sys_getresuid,
    SYS_getresgid: sys_getresgid, SYS_getgroups: sys_getgroups, SYS_setgroups: sys_setgroups,
    SYS_setfsuid: sys_setfsuid, SYS_setfsgid: sys_setfsgid,
}
