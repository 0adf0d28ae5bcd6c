/* Resource limits (kernel/sys.c): getrlimit/setrlimit/prlimit64 errors in
 * Linux's order, lowering and raising (only the soft limit, up to the hard
 * one: no CAP_SYS_RESOURCE), per-process limits shared by threads, inherited
 * by fork, and prlimit64 on another process. The values printed are set by the
 * test itself, so they do not depend on the host's defaults.
 * CPUS: 1 2
 * STDOUT: getrlimit resource 16 EINVAL, bad pointer EFAULT
 * STDOUT: setrlimit soft > hard EINVAL, resource 16 EINVAL, bad pointer EFAULT
 * STDOUT: prlimit64 bad new pointer EFAULT, bad pid ESRCH, init EPERM, bad resource EINVAL, bad old pointer EFAULT
 * STDOUT: set NOFILE 100/200 0, soft up to 150 0, hard up to 300 EPERM, beyond nr_open EPERM
 * STDOUT: NOFILE now 150/200
 * STDOUT: prlimit64 swap: 0 old 150/200
 * STDOUT: thread sees NOFILE 64/128
 * STDOUT: child inherits NOFILE 64/128
 * STDOUT: prlimit64 on the child: 0 sees 32/64; sets it: 0; now 16/64
 * STDOUT: parent keeps 64/128
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    default: return strerror(errno);
    }
}

static long raw_prlimit(int pid, int resource, const struct rlimit *new, struct rlimit *old)
{
    return syscall(SYS_prlimit64, pid, resource, new, old);
}

static void *thread_sees(void *arg)
{
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    printf("thread sees NOFILE %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    return arg;
}

int main(void)
{
    struct rlimit r, old;
    printf("getrlimit resource 16 %s, bad pointer %s\n", err(syscall(SYS_getrlimit, 16, &r)),
           err(syscall(SYS_getrlimit, RLIMIT_NOFILE, (void *)8)));
    r = (struct rlimit){ 10, 5 };
    printf("setrlimit soft > hard %s, resource 16 %s, bad pointer %s\n", err(syscall(SYS_setrlimit, RLIMIT_NOFILE, &r)),
           err(syscall(SYS_setrlimit, 16, &(struct rlimit){1, 1})), err(syscall(SYS_setrlimit, RLIMIT_NOFILE, (void *)8)));
    printf("prlimit64 bad new pointer %s, bad pid %s, init %s, bad resource %s, bad old pointer %s\n",
           err(raw_prlimit(0, RLIMIT_NOFILE, (void *)8, NULL)), err(raw_prlimit(99999, RLIMIT_NOFILE, NULL, &old)),
           err(raw_prlimit(1, RLIMIT_NOFILE, NULL, &old)), err(raw_prlimit(0, 99, NULL, &old)),
           err(raw_prlimit(0, RLIMIT_NOFILE, NULL, (void *)8)));
    r = (struct rlimit){ 100, 200 };
    printf("set NOFILE 100/200 %s, ", err(syscall(SYS_setrlimit, RLIMIT_NOFILE, &r)));
    r = (struct rlimit){ 150, 200 };
    printf("soft up to 150 %s, ", err(syscall(SYS_setrlimit, RLIMIT_NOFILE, &r)));
    r = (struct rlimit){ 150, 300 };
    printf("hard up to 300 %s, ", err(syscall(SYS_setrlimit, RLIMIT_NOFILE, &r)));
    r = (struct rlimit){ 2000000, 2000000 };
    printf("beyond nr_open %s\n", err(syscall(SYS_setrlimit, RLIMIT_NOFILE, &r)));
    getrlimit(RLIMIT_NOFILE, &r);
    printf("NOFILE now %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    r = (struct rlimit){ 64, 128 };
    printf("prlimit64 swap: %s", err(raw_prlimit(0, RLIMIT_NOFILE, &r, &old)));
    printf(" old %lu/%lu\n", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);
    pthread_t t;
    pthread_create(&t, NULL, thread_sees, NULL);
    pthread_join(t, NULL);
    r = (struct rlimit){ 0, RLIM_INFINITY };
    setrlimit(RLIMIT_CORE, &r);
    fflush(stdout);
    int pipefd[2];
    pid_t child = fork();
    if (child == 0) {
        getrlimit(RLIMIT_NOFILE, &r);
        printf("child inherits NOFILE %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
        r = (struct rlimit){ 32, 64 };
        setrlimit(RLIMIT_NOFILE, &r);
        fflush(stdout);
        pause();
        _exit(0);
    }
    (void)pipefd;
    usleep(50000);
    printf("prlimit64 on the child: %s", err(raw_prlimit(child, RLIMIT_NOFILE, NULL, &old)));
    printf(" sees %lu/%lu; ", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);
    r = (struct rlimit){ 16, 64 };
    printf("sets it: %s; ", err(raw_prlimit(child, RLIMIT_NOFILE, &r, NULL)));
    raw_prlimit(child, RLIMIT_NOFILE, NULL, &old);
    printf("now %lu/%lu\n", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);
    getrlimit(RLIMIT_NOFILE, &r);
    printf("parent keeps %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    kill(child, 9);
    waitpid(child, NULL, 0);
    return 0;
}
