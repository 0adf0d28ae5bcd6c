/* Scheduling calls for an unprivileged user (kernel/sched/syscalls.c): the
 * priority ranges, policy and parameter errors (EINVAL before ESRCH before
 * EPERM), SCHED_FIFO/SCHED_RR refused (RLIMIT_RTPRIO is 0), SCHED_BATCH and
 * SCHED_IDLE allowed but no way back from SCHED_IDLE, SCHED_RESET_ON_FORK,
 * inheritance over fork, and sched_getaffinity's checks (size, then the
 * task, then the copy). Runs on one CPU so the affinity masks match the host's
 * when pinned the same way.
 * CPUS: 1
 * STDOUT: policy 0: max 0 min 0
 * STDOUT: policy 1: max 99 min 1
 * STDOUT: policy 2: max 99 min 1
 * STDOUT: policy 3: max 0 min 0
 * STDOUT: policy 4: max EINVAL min EINVAL
 * STDOUT: policy 5: max 0 min 0
 * STDOUT: policy 6: max 0 min 0
 * STDOUT: policy 8: max EINVAL min EINVAL
 * STDOUT: policy -1: max EINVAL min EINVAL
 * STDOUT: getscheduler(0) 0, getscheduler(-1) EINVAL, getscheduler(99999) ESRCH
 * STDOUT: getparam NULL EINVAL, getparam bad pointer EFAULT, getparam(-1) EINVAL, getparam(0) 0 prio 0
 * STDOUT: setscheduler FIFO 10 EPERM, RR 1 EPERM, FIFO 0 EINVAL, OTHER 5 EINVAL, FIFO 100 EINVAL, policy 4 EINVAL, negative policy EINVAL
 * STDOUT: DEADLINE EINVAL, NULL param EINVAL, bad param pointer EFAULT, pid 99999 ESRCH, FIFO on pid 99999 ESRCH
 * STDOUT: setparam prio 1 EINVAL, prio 0 0
 * STDOUT: BATCH 0 -> getscheduler 0; OTHER|RESET_ON_FORK 0 -> getscheduler 0x3
 * STDOUT: clearing RESET_ON_FORK EPERM; IDLE|RESET_ON_FORK 0
 * STDOUT: child policy 5 (reset on fork keeps SCHED_IDLE, clears the flag)
 * STDOUT: back to OTHER from IDLE EPERM, BATCH from IDLE EPERM
 * STDOUT: getaffinity size 4 EINVAL, size 12 EINVAL, bad pid + size 4 EINVAL, bad pid ESRCH, bad pointer EFAULT, size 16 8 or 16, mask 0x1
 * STDOUT: getaffinity of init with a bad pointer EFAULT
 * STDOUT: setaffinity empty EINVAL, bad pointer EFAULT, bad pid ESRCH, init EPERM, cpu0 0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
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

static long setsched(int pid, int policy, int prio)
{
    struct sched_param p = { .sched_priority = prio };
    return syscall(SYS_sched_setscheduler, pid, policy, &p);
}

int main(void)
{
    static const int policies[] = {SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, 4, SCHED_IDLE, 6, 8, -1};
    for (unsigned i = 0; i < sizeof policies / sizeof policies[0]; i++)
        printf("policy %d: max %s", policies[i], err(syscall(SYS_sched_get_priority_max, policies[i]))),
        printf(" min %s\n", err(syscall(SYS_sched_get_priority_min, policies[i])));

    struct sched_param p = { 0 };
    printf("getscheduler(0) %s, getscheduler(-1) %s, getscheduler(99999) %s\n",
           err(syscall(SYS_sched_getscheduler, 0)), err(syscall(SYS_sched_getscheduler, -1)),
           err(syscall(SYS_sched_getscheduler, 99999)));
    printf("getparam NULL %s, getparam bad pointer %s, getparam(-1) %s, getparam(0) %s prio %d\n",
           err(syscall(SYS_sched_getparam, 0, NULL)), err(syscall(SYS_sched_getparam, 0, (void *)8)),
           err(syscall(SYS_sched_getparam, -1, &p)), err(syscall(SYS_sched_getparam, 0, &p)), p.sched_priority);
    printf("setscheduler FIFO 10 %s, RR 1 %s, FIFO 0 %s, OTHER 5 %s, FIFO 100 %s, policy 4 %s, negative policy %s\n",
           err(setsched(0, SCHED_FIFO, 10)), err(setsched(0, SCHED_RR, 1)), err(setsched(0, SCHED_FIFO, 0)),
           err(setsched(0, SCHED_OTHER, 5)), err(setsched(0, SCHED_FIFO, 100)), err(setsched(0, 4, 0)),
           err(setsched(0, -1, 0)));
    printf("DEADLINE %s, NULL param %s, bad param pointer %s, pid 99999 %s, FIFO on pid 99999 %s\n",
           err(setsched(0, 6, 0)), err(syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL)),
           err(syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, (void *)8)), err(setsched(99999, SCHED_OTHER, 0)),
           err(setsched(99999, SCHED_FIFO, 1)));
    printf("setparam prio 1 %s, prio 0 %s\n", err(syscall(SYS_sched_setparam, 0, &(struct sched_param){1})),
           err(syscall(SYS_sched_setparam, 0, &(struct sched_param){0})));
    printf("BATCH %s -> getscheduler %s; ", err(setsched(0, SCHED_BATCH, 0)),
           err(syscall(SYS_sched_getscheduler, 0)));
    printf("OTHER|RESET_ON_FORK %s -> getscheduler %#lx\n", err(setsched(0, SCHED_OTHER | SCHED_RESET_ON_FORK, 0)),
           syscall(SYS_sched_getscheduler, 0));
    printf("clearing RESET_ON_FORK %s; ", err(setsched(0, SCHED_OTHER, 0)));
    printf("IDLE|RESET_ON_FORK %s\n", err(setsched(0, SCHED_IDLE | SCHED_RESET_ON_FORK, 0)));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child policy %s (reset on fork keeps SCHED_IDLE, clears the flag)\n",
               err(syscall(SYS_sched_getscheduler, 0)));
        return 0;
    }
    waitpid(child, NULL, 0);
    printf("back to OTHER from IDLE %s, BATCH from IDLE %s\n", err(setsched(0, SCHED_OTHER | SCHED_RESET_ON_FORK, 0)),
           err(setsched(0, SCHED_BATCH | SCHED_RESET_ON_FORK, 0)));

    unsigned long mask[2] = {0};
    printf("getaffinity size 4 %s, ", err(syscall(SYS_sched_getaffinity, 0, 4, mask)));
    printf("size 12 %s, ", err(syscall(SYS_sched_getaffinity, 0, 12, mask)));
    printf("bad pid + size 4 %s, ", err(syscall(SYS_sched_getaffinity, 99999, 4, mask)));
    printf("bad pid %s, ", err(syscall(SYS_sched_getaffinity, 99999, 8, mask)));
    printf("bad pointer %s, ", err(syscall(SYS_sched_getaffinity, 0, 8, (void *)8)));
    long size = syscall(SYS_sched_getaffinity, 0, 16, mask);
    /* min(len, cpumask_size()): 8 with nr_cpu_ids-sized masks, 16 with NR_CPUS-sized ones. */
    printf("size 16 %s, mask %#lx\n", size == 8 || size == 16 ? "8 or 16" : err(size), mask[0]);
    printf("getaffinity of init with a bad pointer %s\n", err(syscall(SYS_sched_getaffinity, 1, 8, (void *)8)));
    unsigned long zero = 0, one = 1;
    printf("setaffinity empty %s, bad pointer %s, bad pid %s, init %s, cpu0 %s\n",
           err(syscall(SYS_sched_setaffinity, 0, 8, &zero)), err(syscall(SYS_sched_setaffinity, 0, 8, (void *)8)),
           err(syscall(SYS_sched_setaffinity, 99999, 8, &one)), err(syscall(SYS_sched_setaffinity, 1, 8, &one)),
           err(syscall(SYS_sched_setaffinity, 0, 8, &one)));
    return 0;
}
