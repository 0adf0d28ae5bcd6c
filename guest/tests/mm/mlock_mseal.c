/* mlock family accounting against RLIMIT_MEMLOCK (mm/mlock.c), mseal
 * (mm/mseal.c) and process_mrelease's answers (mm/oom_kill.c). The limit is
 * lowered to 4 pages first, so the figures do not depend on the runner's.
 * Checked natively on the host as uid 1000 (root has CAP_IPC_LOCK).
 * STDOUT: mlock 3 of 4 pages: ok, resident 1
 * STDOUT: mlock 2 more: ENOMEM
 * STDOUT: mlock the same 3 again plus 1: ok
 * STDOUT: munlock all 8: ok, then mlock 2 more: ok
 * STDOUT: mlock2 bad flags: EINVAL, MLOCK_ONFAULT: ok, resident 0
 * STDOUT: mlock over a hole: ENOMEM
 * STDOUT: mlockall(0): EINVAL, (MCL_ONFAULT): EINVAL, (MCL_CURRENT) past the limit: ENOMEM
 * STDOUT: mlockall(MCL_FUTURE): ok, mmap of 5 pages: EAGAIN, 1 page: ok, munlockall: ok
 * STDOUT: RLIMIT_MEMLOCK 0: mlock EPERM
 * STDOUT: mseal flags: EINVAL, unaligned: EINVAL, hole: ENOMEM, empty: ok
 * STDOUT: mseal: ok; munmap EPERM, mprotect EPERM, mremap EPERM, MAP_FIXED EPERM
 * STDOUT: sealed pages still usable: 1
 * STDOUT: fork keeps the seal: EPERM
 * STDOUT: process_mrelease live: EINVAL, flags: EINVAL, not a pidfd: EBADF, exited: ESRCH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_mseal
#define SYS_mseal 462
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    return errno == EINVAL ? "EINVAL" : errno == ENOMEM ? "ENOMEM" : errno == EPERM ? "EPERM" : errno == EAGAIN ? "EAGAIN"
         : errno == EBADF ? "EBADF" : errno == ESRCH ? "ESRCH" : strerror(errno);
}

static int resident(void *p) {
    unsigned char v = 0;
    mincore(p, 4096, &v);
    return v & 1;
}

int main(void) {
    const long page = 4096;
    setvbuf(stdout, 0, _IONBF, 0);
    struct rlimit lim = {4 * page, 4 * page};
    setrlimit(RLIMIT_MEMLOCK, &lim);
    char *a = mmap(0, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long rc = mlock(a, 3 * page);
    printf("mlock 3 of 4 pages: %s, resident %d\n", err(rc), resident(a + page));
    printf("mlock 2 more: %s\n", err(mlock(a + 3 * page, 2 * page)));
    printf("mlock the same 3 again plus 1: %s\n", err(mlock(a, 4 * page)));
    printf("munlock all 8: %s", err(munlock(a, 8 * page)));
    printf(", then mlock 2 more: %s\n", err(mlock(a + 8 * page, 2 * page)));
    munlock(a + 8 * page, 2 * page);
    printf("mlock2 bad flags: %s", err(syscall(SYS_mlock2, a, page, 2)));
    rc = syscall(SYS_mlock2, a + 12 * page, page, MLOCK_ONFAULT);
    printf(", MLOCK_ONFAULT: %s, resident %d\n", err(rc), resident(a + 12 * page));
    munlock(a + 12 * page, page);
    munmap(a + 14 * page, page);
    printf("mlock over a hole: %s\n", err(mlock(a + 13 * page, 2 * page)));
    printf("mlockall(0): %s", err(mlockall(0)));
    printf(", (MCL_ONFAULT): %s", err(mlockall(MCL_ONFAULT)));
    printf(", (MCL_CURRENT) past the limit: %s\n", err(mlockall(MCL_CURRENT)));
    printf("mlockall(MCL_FUTURE): %s", err(mlockall(MCL_FUTURE)));
    void *big = mmap(0, 5 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf(", mmap of 5 pages: %s", err(big == MAP_FAILED ? -1 : 0));
    void *small = mmap(0, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf(", 1 page: %s", err(small == MAP_FAILED ? -1 : 0));
    printf(", munlockall: %s\n", err(munlockall()));
    pid_t child = fork();
    if (child == 0) {
        struct rlimit zero = {0, 0};
        setrlimit(RLIMIT_MEMLOCK, &zero);
        printf("RLIMIT_MEMLOCK 0: mlock %s\n", err(mlock(a, page)));
        _exit(0);
    }
    waitpid(child, 0, 0);

    char *s = mmap(0, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *h = mmap(0, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(h + page, page);
    printf("mseal flags: %s", err(syscall(SYS_mseal, s, page, 1)));
    printf(", unaligned: %s", err(syscall(SYS_mseal, s + 1, page, 0)));
    printf(", hole: %s", err(syscall(SYS_mseal, h, 3 * page, 0)));
    printf(", empty: %s\n", err(syscall(SYS_mseal, s, 0, 0)));
    s[page] = 'x';
    printf("mseal: %s", err(syscall(SYS_mseal, s + page, 2 * page, 0)));
    printf("; munmap %s", err(munmap(s, 2 * page)));
    printf(", mprotect %s", err(mprotect(s + 2 * page, page, PROT_READ)));
    printf(", mremap %s", err(mremap(s + page, page, 2 * page, MREMAP_MAYMOVE) == MAP_FAILED ? -1 : 0));
    printf(", MAP_FIXED %s\n", err(mmap(s, 4 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                                    == MAP_FAILED ? -1 : 0));
    s[2 * page] = 'y';
    printf("sealed pages still usable: %d\n", s[page] == 'x' && s[2 * page] == 'y');
    child = fork();
    if (child == 0) {
        printf("fork keeps the seal: %s\n", err(munmap(s + page, page)));
        _exit(0);
    }
    waitpid(child, 0, 0);

    int sync[2];
    pipe(sync);
    child = fork();
    if (child == 0) {
        char c;
        read(sync[0], &c, 1);
        _exit(0);
    }
    int pfd = syscall(SYS_pidfd_open, child, 0);
    printf("process_mrelease live: %s", err(syscall(SYS_process_mrelease, pfd, 0)));
    printf(", flags: %s", err(syscall(SYS_process_mrelease, pfd, 1)));
    printf(", not a pidfd: %s", err(syscall(SYS_process_mrelease, 1, 0)));
    write(sync[1], "x", 1);
    siginfo_t info;
    waitid(P_PID, child, &info, WEXITED | WNOWAIT);
    printf(", exited: %s\n", err(syscall(SYS_process_mrelease, pfd, 0)));
    return 0;
}
