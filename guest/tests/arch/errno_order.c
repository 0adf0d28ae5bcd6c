/* errno order of waitid, madvise, clock_getres, mprotect, rt_sigpending and
 * sigaltstack as Linux checks (kernel/exit.c waitid: infop is written after
 * any result; mm/madvise.c do_madvise; posix-timers clock_getres: the clock
 * first; mm/mprotect.c do_mprotect_pkey; kernel/signal.c rt_sigpending and
 * sigaltstack). The kernel is one without CONFIG_MEMORY_FAILURE, as the
 * reference host: MADV_HWPOISON is an invalid advice.
 * STDOUT: waitid P_ALL no children infop=bad           -1 EFAULT
 * STDOUT: waitid P_ALL no children infop=NULL          -1 ECHILD
 * STDOUT: waitid bad options infop=bad                 -1 EFAULT
 * STDOUT: waitid P_PID 0 infop=bad                     -1 EFAULT
 * STDOUT: waitid idtype 7 infop=bad                    -1 EFAULT
 * STDOUT: waitid P_PID child infop=bad                 -1 EFAULT
 * STDOUT: madvise bad advice                           -1 EINVAL
 * STDOUT: madvise unaligned start                      -1 EINVAL
 * STDOUT: madvise length 0                             0 ok
 * STDOUT: madvise unaligned length 0 bad advice        -1 EINVAL
 * STDOUT: madvise over a hole (ENOMEM)                 -1 ENOMEM
 * STDOUT: madvise unmapped                             -1 EINVAL
 * STDOUT: madvise MADV_HWPOISON (EPERM)                -1 EINVAL
 * STDOUT: madvise wrapping range                       -1 EINVAL
 * STDOUT: clock_getres bad clock, bad res              -1 EINVAL
 * STDOUT: clock_getres bad clock, NULL res             -1 EINVAL
 * STDOUT: clock_getres MONOTONIC, bad res              -1 EFAULT
 * STDOUT: clock_getres MONOTONIC, NULL res             0 ok
 * STDOUT: clock_getres negative clock                  -1 EINVAL
 * STDOUT: clock_getres CLOCK_THREAD_CPUTIME_ID         0 ok
 * STDOUT: mprotect unmapped range                      -1 ENOMEM
 * STDOUT: mprotect over a hole                         -1 ENOMEM
 * STDOUT: mprotect unaligned                           -1 EINVAL
 * STDOUT: mprotect bad prot                            -1 EINVAL
 * STDOUT: mprotect length 0                            0 ok
 * STDOUT: mprotect length 0 bad prot                   0 ok
 * STDOUT: mprotect GROWSDOWN unmapped                  -1 ENOMEM
 * STDOUT: mprotect GROWSDOWN mapped                    -1 EINVAL
 * STDOUT: mprotect GROWSDOWN|GROWSUP                   -1 EINVAL
 * STDOUT: mprotect PROT_SEM                            0 ok
 * STDOUT: mprotect wrapping                            -1 ENOMEM
 * STDOUT: rt_sigpending size 0, NULL                   0 ok
 * STDOUT: rt_sigpending size 9                         -1 EINVAL
 * STDOUT: rt_sigpending size 8, bad                    -1 EFAULT
 * STDOUT: rt_sigpending size 4, bad                    -1 EFAULT
 * STDOUT: sigaltstack bad flags, old=bad               -1 EINVAL
 * STDOUT: sigaltstack too small, old=bad               -1 ENOMEM
 * STDOUT: sigaltstack new=bad, old=bad                 -1 EFAULT
 * STDOUT: sigaltstack NULL, old=bad                    -1 EFAULT
 * STDOUT: sigaltstack NULL, old=kernel                 -1 EFAULT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)0x10)                 /* never mapped */
#define KERNEL_PTR ((void *)0xffff800000000000UL)

static void show(const char *what, long ret)
{
    printf("%-44s %ld %s\n", what, ret, ret < 0 ? strerrorname_np(errno) : "ok");
}
#define CALL(what, expr) do { errno = 0; show(what, (long)(expr)); } while (0)

int main(void)
{
    char *page = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);      /* a hole in the middle */

    /* waitid (kernel/exit.c): option and idtype checks, then the wait, then infop. */
    CALL("waitid P_ALL no children infop=bad", syscall(SYS_waitid, P_ALL, 0, BAD, WEXITED | WNOHANG, 0));
    CALL("waitid P_ALL no children infop=NULL", syscall(SYS_waitid, P_ALL, 0, NULL, WEXITED | WNOHANG, 0));
    CALL("waitid bad options infop=bad", syscall(SYS_waitid, P_ALL, 0, BAD, 0x1000000, 0));
    CALL("waitid P_PID 0 infop=bad", syscall(SYS_waitid, P_PID, 0, BAD, WEXITED, 0));
    CALL("waitid idtype 7 infop=bad", syscall(SYS_waitid, 7, 0, BAD, WEXITED, 0));
    pid_t child = fork();
    if (child == 0)
        _exit(3);
    CALL("waitid P_PID child infop=bad", syscall(SYS_waitid, P_PID, child, BAD, WEXITED, 0));

    /* madvise (mm/madvise.c): advice, alignment, range, then the mapping. */
    CALL("madvise bad advice", madvise(page, 4096, 12345));
    CALL("madvise unaligned start", madvise(page + 1, 4096, MADV_DONTNEED));
    CALL("madvise length 0", madvise(page, 0, MADV_NORMAL));
    CALL("madvise unaligned length 0 bad advice", madvise(page + 1, 0, 12345));
    CALL("madvise over a hole (ENOMEM)", madvise(page, 3 * 4096, MADV_NORMAL));
    CALL("madvise unmapped", madvise(BAD, 4096, MADV_NORMAL));
    CALL("madvise MADV_HWPOISON (EPERM)", madvise(page, 4096, MADV_HWPOISON));
    CALL("madvise wrapping range", madvise(page, (size_t)-4096, MADV_NORMAL));

    /* clock_getres (kernel/time/posix-timers.c): the clock first, then the pointer. */
    CALL("clock_getres bad clock, bad res", syscall(SYS_clock_getres, 12345, BAD));
    CALL("clock_getres bad clock, NULL res", syscall(SYS_clock_getres, 12345, NULL));
    CALL("clock_getres MONOTONIC, bad res", syscall(SYS_clock_getres, CLOCK_MONOTONIC, BAD));
    CALL("clock_getres MONOTONIC, NULL res", syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL));
    CALL("clock_getres negative clock", syscall(SYS_clock_getres, -1, NULL));
    CALL("clock_getres CLOCK_THREAD_CPUTIME_ID", syscall(SYS_clock_getres, CLOCK_THREAD_CPUTIME_ID, NULL));

    /* mprotect (mm/mprotect.c): alignment, then the range must be mapped. */
    CALL("mprotect unmapped range", mprotect(BAD - 0x10, 4096, PROT_READ));
    CALL("mprotect over a hole", mprotect(page, 3 * 4096, PROT_READ));
    CALL("mprotect unaligned", mprotect(page + 1, 4096, PROT_READ));
    CALL("mprotect bad prot", mprotect(page, 4096, 0x1000));
    CALL("mprotect length 0", mprotect(page, 0, PROT_READ));
    CALL("mprotect length 0 bad prot", mprotect(page, 0, 0x1000));
    CALL("mprotect GROWSDOWN unmapped", mprotect((void *)0x10000, 4096, PROT_READ | PROT_GROWSDOWN));
    CALL("mprotect GROWSDOWN mapped", mprotect(page, 4096, PROT_READ | PROT_GROWSDOWN));
    CALL("mprotect GROWSDOWN|GROWSUP", mprotect(page, 4096, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP));
    CALL("mprotect PROT_SEM", mprotect(page, 4096, PROT_READ | PROT_WRITE | 0x8));
    CALL("mprotect wrapping", mprotect(page, (size_t)-4096, PROT_READ));

    /* rt_sigpending (kernel/signal.c): size check, then a copy of sigsetsize bytes. */
    CALL("rt_sigpending size 0, NULL", syscall(SYS_rt_sigpending, NULL, 0));
    CALL("rt_sigpending size 9", syscall(SYS_rt_sigpending, NULL, 9));
    CALL("rt_sigpending size 8, bad", syscall(SYS_rt_sigpending, BAD, 8));
    CALL("rt_sigpending size 4, bad", syscall(SYS_rt_sigpending, BAD, 4));

    /* sigaltstack (kernel/signal.c): read new, check it, write old only on success. */
    stack_t bad_mode = { .ss_sp = page, .ss_size = 8192, .ss_flags = 4 };
    stack_t small = { .ss_sp = page, .ss_size = 100, .ss_flags = 0 };
    CALL("sigaltstack bad flags, old=bad", syscall(SYS_sigaltstack, &bad_mode, BAD));
    CALL("sigaltstack too small, old=bad", syscall(SYS_sigaltstack, &small, BAD));
    CALL("sigaltstack new=bad, old=bad", syscall(SYS_sigaltstack, BAD, BAD));
    CALL("sigaltstack NULL, old=bad", syscall(SYS_sigaltstack, NULL, BAD));
    CALL("sigaltstack NULL, old=kernel", syscall(SYS_sigaltstack, NULL, KERNEL_PTR));
    return 0;
}
