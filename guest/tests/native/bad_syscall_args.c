/*
 * bad_syscall_args.c -- the errno Linux returns for bad system call
 * arguments: bad pointers, bad fds, bad flags, unaligned addresses, huge
 * lengths. Each line is "name: result errno-name"; run natively and under
 * the emulator the lines must be identical (differential against the host
 * kernel). Only calls whose answer depends on nothing but the arguments are
 * here (no sockets, file system or timing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ESPIPE: return "ESPIPE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "other";
    }
}

#define BAD ((long)0x10)                        /* below mmap_min_addr: never mapped */
#define KERNEL ((long)0xffffffff81000000UL)     /* a kernel address */
#define NONCANON ((long)0x0000800000000000UL)
#define HUGE ((long)0x7fffffffffffffffL)

static void check(const char *name, long result) {
    int e = result == -1 ? errno : 0;
    printf("%s: %s %s\n", name, result == -1 ? "-1" : "ok", errno_name(e));
}

int main(void) {
    char buf[64];
    char longpath[5000];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    check("write bad fd", syscall(SYS_write, 99, "x", 1));
    check("write negative fd", syscall(SYS_write, -1, "x", 1));
    check("write NULL", syscall(SYS_write, 1, BAD, 10));
    check("write kernel pointer", syscall(SYS_write, 1, KERNEL, 10));
    check("write non-canonical", syscall(SYS_write, 1, NONCANON, 10));
    check("read bad fd", syscall(SYS_read, 99, buf, 1));
    check("close bad fd", syscall(SYS_close, 4242));
    check("fstat bad pointer", syscall(SYS_fstat, 1, BAD));
    check("open NULL", syscall(SYS_open, BAD, 0));
    check("open too long", syscall(SYS_open, longpath, 0));
    check("openat kernel pointer", syscall(SYS_openat, -100, KERNEL, 0));
    check("getdents64 on stdout", syscall(SYS_getdents64, 1, buf, sizeof buf));
    check("getdents64 bad fd", syscall(SYS_getdents64, 77, buf, sizeof buf));
    check("pread64 bad fd", syscall(SYS_pread64, 77, buf, 1, 0));
    check("mmap zero length", syscall(SYS_mmap, 0, 0, 3, 0x22, -1, 0));
    check("mmap unaligned fixed", syscall(SYS_mmap, 0x100001, 4096, 3, 0x32, -1, 0));
    check("mmap no type", syscall(SYS_mmap, 0, 4096, 3, 0x20, -1, 0));
    check("mmap huge", syscall(SYS_mmap, 0, HUGE, 3, 0x22, -1, 0));
    check("mmap bad fd", syscall(SYS_mmap, 0, 4096, 1, 0x2, 99, 0));
    check("munmap unaligned", syscall(SYS_munmap, 0x100001, 4096));
    check("munmap zero length", syscall(SYS_munmap, 0x100000, 0));
    check("mprotect bad prot", syscall(SYS_mprotect, 0x100000, 4096, 0x80));
    check("mprotect unaligned", syscall(SYS_mprotect, 0x100001, 4096, 1));
    check("madvise unaligned", syscall(SYS_madvise, 0x100001, 4096, 4));
    check("madvise wraps", syscall(SYS_madvise, 0x8000000000000000UL, -4096L, 4));
    check("mremap unaligned", syscall(SYS_mremap, 0x100001, 4096, 8192, 1));
    check("mremap bad flags", syscall(SYS_mremap, 0x100000, 4096, 8192, 0x80));
    check("clock_gettime bad clock", syscall(SYS_clock_gettime, 999, buf));
    check("clock_gettime NULL", syscall(SYS_clock_gettime, 1, BAD));
    check("nanosleep NULL", syscall(SYS_nanosleep, BAD, 0));
    long negative[2] = {-1, 0};
    check("nanosleep negative", syscall(SYS_nanosleep, negative, 0));
    long bad_nsec[2] = {0, 1000000000L};
    check("nanosleep nsec too big", syscall(SYS_nanosleep, bad_nsec, 0));
    check("rt_sigaction SIGKILL", syscall(SYS_rt_sigaction, SIGKILL, buf, 0, 8));
    check("rt_sigaction 65", syscall(SYS_rt_sigaction, 65, 0, 0, 8));
    check("rt_sigaction sigsetsize", syscall(SYS_rt_sigaction, SIGUSR1, 0, 0, 4));
    check("rt_sigaction bad act", syscall(SYS_rt_sigaction, SIGUSR1, BAD, 0, 8));
    check("rt_sigprocmask how", syscall(SYS_rt_sigprocmask, 7, buf, 0, 8));
    check("rt_sigprocmask bad set", syscall(SYS_rt_sigprocmask, 0, BAD, 0, 8));
    check("kill no such pid", syscall(SYS_kill, 999999, 0));
    check("kill bad signal", syscall(SYS_kill, getpid(), 99));
    check("tgkill no such tid", syscall(SYS_tgkill, getpid(), 999999, 0));
    check("getrandom bad flags", syscall(SYS_getrandom, buf, 8, 0x80));
    check("getrandom bad buffer", syscall(SYS_getrandom, BAD, 8, 0));
    check("uname NULL", syscall(SYS_uname, BAD));
    check("sched_getaffinity size 0", syscall(SYS_sched_getaffinity, 0, 0, buf));
    check("sched_getaffinity bad pid", syscall(SYS_sched_getaffinity, 999999, sizeof buf, buf));
    check("arch_prctl bad code", syscall(SYS_arch_prctl, 0x9999, 0));
    check("arch_prctl SET_FS kernel", syscall(SYS_arch_prctl, 0x1002, KERNEL));
    check("arch_prctl xcomp bad feature", syscall(SYS_arch_prctl, 0x1023, 99));
    check("readlink size 0", syscall(SYS_readlink, "/proc/self/exe", buf, 0));
    check("getcwd too small", syscall(SYS_getcwd, buf, 1));
    check("getcwd bad buffer", syscall(SYS_getcwd, BAD, 64));
    check("fcntl bad fd", syscall(SYS_fcntl, 999, 1));
    check("sigaltstack bad", syscall(SYS_sigaltstack, BAD, 0));
    check("set_robust_list bad len", syscall(SYS_set_robust_list, buf, 7));
    check("membarrier bad cmd", syscall(SYS_membarrier, 3, 0, 0));
    check("membarrier unregistered", syscall(SYS_membarrier, 8, 0, 0));
    check("prlimit64 bad resource", syscall(SYS_prlimit64, 0, 99, 0, buf));
    check("rseq bad length", syscall(SYS_rseq, buf, 4, 0, 0));
    check("clone3 bad size", syscall(SYS_clone3, buf, 8));
    check("futex bad op", syscall(SYS_futex, buf, 99, 0, 0, 0, 0));
    check("futex wait bad address", syscall(SYS_futex, BAD, 0, 0, 0, 0, 0));
    check("rt_sigpending sigsetsize", syscall(SYS_rt_sigpending, buf, 4));
    check("sysinfo NULL", syscall(SYS_sysinfo, BAD));
    check("socket", syscall(SYS_connect, 99, buf, 16));
    return 0;
}
