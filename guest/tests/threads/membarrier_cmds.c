/* membarrier(2), the whole command set of Linux 6.12 (kernel/sched/membarrier.c):
 * QUERY, flags checks, the EPERM of every expedited command before its
 * registration, registrations reported by GET_REGISTRATIONS (SYNC_CORE and
 * RSEQ registrations also mark PRIVATE_EXPEDITED as registered without making
 * it usable), MEMBARRIER_CMD_FLAG_CPU with PRIVATE_EXPEDITED_RSEQ only, and
 * registrations being per mm: fork copies them with the mm.
 * CPUS: 1 2
 * STDOUT: query: 1023
 * STDOUT: query with flags: EINVAL
 * STDOUT: unknown command: EINVAL
 * STDOUT: GLOBAL: 0
 * STDOUT: flags on GLOBAL: EINVAL
 * STDOUT: unregistered GLOBAL_EXPEDITED: 0
 * STDOUT: unregistered PRIVATE_EXPEDITED: EPERM
 * STDOUT: unregistered SYNC_CORE: EPERM
 * STDOUT: unregistered RSEQ: EPERM
 * STDOUT: registrations: 0
 * STDOUT: FLAG_CPU on PRIVATE_EXPEDITED: EINVAL
 * STDOUT: flags 2 on RSEQ: EINVAL
 * STDOUT: register SYNC_CORE: 0
 * STDOUT: registrations: 80
 * STDOUT: PRIVATE_EXPEDITED: EPERM
 * STDOUT: SYNC_CORE: 0
 * STDOUT: register RSEQ: 0
 * STDOUT: registrations: 336
 * STDOUT: RSEQ: 0
 * STDOUT: RSEQ on cpu 0: 0
 * STDOUT: RSEQ on cpu 100000: 0
 * STDOUT: RSEQ on cpu -1: 0
 * STDOUT: PRIVATE_EXPEDITED: EPERM
 * STDOUT: register PRIVATE_EXPEDITED: 0
 * STDOUT: register it again: 0
 * STDOUT: PRIVATE_EXPEDITED: 0
 * STDOUT: registrations: 336
 * STDOUT: register GLOBAL_EXPEDITED: 0
 * STDOUT: GLOBAL_EXPEDITED: 0
 * STDOUT: registrations: 340
 * STDOUT: child: registrations: 340
 * STDOUT: child: PRIVATE_EXPEDITED: 0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    QUERY = 0, GLOBAL = 1, GLOBAL_EXPEDITED = 2, REGISTER_GLOBAL_EXPEDITED = 4, PRIVATE_EXPEDITED = 8,
    REGISTER_PRIVATE_EXPEDITED = 16, PRIVATE_EXPEDITED_SYNC_CORE = 32, REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 64,
    PRIVATE_EXPEDITED_RSEQ = 128, REGISTER_PRIVATE_EXPEDITED_RSEQ = 256, GET_REGISTRATIONS = 512, FLAG_CPU = 1,
};

static const char *err(long r)
{
    static char buf[8][32];
    static int next;
    char *b = buf[next++ & 7];
    if (r >= 0)
        snprintf(b, 32, "%ld", r);
    else
        snprintf(b, 32, "%s", errno == EINVAL ? "EINVAL" : errno == EPERM ? "EPERM" : strerror(errno));
    return b;
}

static long mb(int cmd, unsigned flags, int cpu)
{
    return syscall(SYS_membarrier, cmd, flags, cpu);
}

static void show(const char *what, long r)
{
    printf("%s: %s\n", what, err(r));
}

static atomic_int stop;

static void *spinner(void *arg)
{
    while (!atomic_load(&stop))
        ;
    return arg;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);     /* a second user of the mm */
    show("query", mb(QUERY, 0, 0));
    show("query with flags", mb(QUERY, 1, 0));
    show("unknown command", mb(1024, 0, 0));
    show("GLOBAL", mb(GLOBAL, 0, 0));
    show("flags on GLOBAL", mb(GLOBAL, FLAG_CPU, 0));
    show("unregistered GLOBAL_EXPEDITED", mb(GLOBAL_EXPEDITED, 0, 0));
    show("unregistered PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, 0, 0));
    show("unregistered SYNC_CORE", mb(PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("unregistered RSEQ", mb(PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("registrations", mb(GET_REGISTRATIONS, 0, 0));
    show("FLAG_CPU on PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, FLAG_CPU, 0));
    show("flags 2 on RSEQ", mb(PRIVATE_EXPEDITED_RSEQ, 2, 0));
    show("register SYNC_CORE", mb(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("registrations", mb(GET_REGISTRATIONS, 0, 0));
    show("PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, 0, 0));
    show("SYNC_CORE", mb(PRIVATE_EXPEDITED_SYNC_CORE, 0, 0));
    show("register RSEQ", mb(REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("registrations", mb(GET_REGISTRATIONS, 0, 0));
    show("RSEQ", mb(PRIVATE_EXPEDITED_RSEQ, 0, 0));
    show("RSEQ on cpu 0", mb(PRIVATE_EXPEDITED_RSEQ, FLAG_CPU, 0));
    show("RSEQ on cpu 100000", mb(PRIVATE_EXPEDITED_RSEQ, FLAG_CPU, 100000));
    show("RSEQ on cpu -1", mb(PRIVATE_EXPEDITED_RSEQ, FLAG_CPU, -1));
    show("PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, 0, 0));
    show("register PRIVATE_EXPEDITED", mb(REGISTER_PRIVATE_EXPEDITED, 0, 0));
    show("register it again", mb(REGISTER_PRIVATE_EXPEDITED, 0, 0));
    show("PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, 0, 0));
    show("registrations", mb(GET_REGISTRATIONS, 0, 0));
    show("register GLOBAL_EXPEDITED", mb(REGISTER_GLOBAL_EXPEDITED, 0, 0));
    show("GLOBAL_EXPEDITED", mb(GLOBAL_EXPEDITED, 0, 0));
    show("registrations", mb(GET_REGISTRATIONS, 0, 0));
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    fflush(stdout);
    if (fork() == 0) {
        show("child: registrations", mb(GET_REGISTRATIONS, 0, 0));
        show("child: PRIVATE_EXPEDITED", mb(PRIVATE_EXPEDITED, 0, 0));
        return 0;
    }
    wait(NULL);
    return 0;
}
