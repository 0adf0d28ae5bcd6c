"""Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h)."""
EPERM = 1
ENOENT = 2
ESRCH = 3
EINTR = 4
EIO = 5
ENXIO = 6
E2BIG = 7
ENOEXEC = 8
EBADF = 9
ECHILD = 10
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
EXDEV = 18
ENODEV = 19
ENOTDIR = 20
EISDIR = 21
EINVAL = 22
EMFILE = 24
ENOTTY = 25
ETXTBSY = 26
EFBIG = 27
ENOSPC = 28
ESPIPE = 29
EROFS = 30
EPIPE = 32
ERANGE = 34
EDEADLK = 35
ENAMETOOLONG = 36
ENOSYS = 38
ENOTEMPTY = 39
ELOOP = 40
ENOMSG = 42
EIDRM = 43
ENOTSUP = EOPNOTSUPP = 95
ETIMEDOUT = 110
EMSGSIZE = 90


class SyscallError(Exception):
    """Raised inside a syscall implementation; the dispatcher returns -errno."""

    def __init__(self, errno: int):
        super().__init__(errno)
        self.errno = errno
