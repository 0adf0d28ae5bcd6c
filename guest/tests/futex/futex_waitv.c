/* futex_waitv(2) (kernel/futex/syscalls.c, waitwake.c futex_wait_multiple):
 * argument checks in Linux's order, -EAGAIN when a word differs, a timeout on
 * either clock, and the index of the futex that was woken.
 * CPUS: 1 2
 * STDOUT: flags EINVAL, none EINVAL, 129 EINVAL, NULL EINVAL
 * STDOUT: bad clock EINVAL, bad timeout pointer EFAULT, reserved EINVAL, u8 EINVAL, unknown flag EINVAL, wide value EINVAL
 * STDOUT: unaligned EINVAL, value differs EAGAIN, monotonic timeout ETIMEDOUT, realtime timeout ETIMEDOUT
 * STDOUT: woken: returned 1
 * STDOUT: private wake of the shared entry woke 0, shared wake woke 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

static uint32_t words[3];
static struct futex_waitv waitv[3];
static atomic_int started;

static long waitv_call(struct futex_waitv *w, unsigned n, unsigned flags, struct timespec *ts, int clockid)
{
    return syscall(SYS_futex_waitv, w, n, flags, ts, clockid);
}

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return strerror(errno);
    }
}

static void *waiter(void *arg)
{
    (void)arg;
    atomic_store(&started, 1);
    long r = waitv_call(waitv, 3, 0, NULL, 0);
    printf("woken: returned %s\n", err(r));
    return NULL;
}

int main(void)
{
    struct timespec ts;
    for (int i = 0; i < 3; i++)
        waitv[i] = (struct futex_waitv){ .val = 0, .uaddr = (uintptr_t)&words[i],
                                         .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG };
    printf("flags %s, ", err(waitv_call(waitv, 3, 1, NULL, 0)));
    printf("none %s, ", err(waitv_call(waitv, 0, 0, NULL, 0)));
    printf("129 %s, ", err(waitv_call(waitv, 129, 0, NULL, 0)));
    printf("NULL %s\n", err(waitv_call(NULL, 1, 0, NULL, 0)));
    ts = (struct timespec){ 0, 0 };
    printf("bad clock %s, ", err(waitv_call(waitv, 3, 0, &ts, CLOCK_BOOTTIME)));
    printf("bad timeout pointer %s, ", err(waitv_call(waitv, 3, 0, (void *)8, CLOCK_MONOTONIC)));
    waitv[1].__reserved = 1;
    printf("reserved %s, ", err(waitv_call(waitv, 3, 0, NULL, 0)));
    waitv[1].__reserved = 0;
    waitv[1].flags = 0;   /* FUTEX2_SIZE_U8 */
    printf("u8 %s, ", err(waitv_call(waitv, 3, 0, NULL, 0)));
    waitv[1].flags = FUTEX_32 | 0x40;
    printf("unknown flag %s, ", err(waitv_call(waitv, 3, 0, NULL, 0)));
    waitv[1].flags = FUTEX_32;
    waitv[1].val = 1ull << 32;
    printf("wide value %s\n", err(waitv_call(waitv, 3, 0, NULL, 0)));
    waitv[1].val = 0;
    waitv[2].uaddr = 1;
    printf("unaligned %s, ", err(waitv_call(waitv, 3, 0, NULL, 0)));
    waitv[2].uaddr = (uintptr_t)&words[2];
    words[2] = 5;
    printf("value differs %s, ", err(waitv_call(waitv, 3, 0, NULL, 0)));
    words[2] = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 3000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    printf("monotonic timeout %s, ", err(waitv_call(waitv, 3, 0, &ts, CLOCK_MONOTONIC)));
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 3000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    printf("realtime timeout %s\n", err(waitv_call(waitv, 3, 0, &ts, CLOCK_REALTIME)));
    fflush(stdout);

    /* words[1] is a shared (no FUTEX_PRIVATE_FLAG) entry: a shared wake finds it. */
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    while (!atomic_load(&started))
        ;
    usleep(30000);
    long woke_private = syscall(SYS_futex, &words[1], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    long woke = syscall(SYS_futex, &words[1], FUTEX_WAKE, 1, NULL, NULL, 0);
    pthread_join(t, NULL);
    printf("private wake of the shared entry woke %ld, shared wake woke %ld\n", woke_private, woke);
    return 0;
}
