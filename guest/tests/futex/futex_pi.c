/* PI futexes and robust futexes (kernel/futex/pi.c, requeue.c, core.c
 * exit_robust_list): the owner TID in the word, FUTEX_WAITERS once someone
 * waited, EDEADLK on a self-lock, EPERM for an unlock by a non-owner, ESRCH
 * for an owner TID that names no task, trylock, timeouts, FUTEX_WAKE refusing
 * PI waiters, CMP_REQUEUE_PI taking the lock for the top waiter, and
 * FUTEX_OWNER_DIED for robust mutexes whose owner exited (threads, and a
 * process sharing the mutex through MAP_SHARED memory). Priority inheritance
 * itself cannot be seen: no task has a priority.
 * CPUS: 1 2
 * STDOUT: lock free: 0, word is my tid: yes
 * STDOUT: lock again: EDEADLK, trylock own: EDEADLK
 * STDOUT: unlock by non-owner EPERM
 * STDOUT: owner sees waiters bit: yes
 * STDOUT: owner: unlock 0
 * STDOUT: waiter: lock 0, word = waiters + own tid yes
 * STDOUT: waiter: unlock 0, word 0
 * STDOUT: dead owner: ESRCH, waiters bit set
 * STDOUT: trylock of a held lock: EAGAIN, waiters bit set
 * STDOUT: lock_pi realtime timeout: ETIMEDOUT
 * STDOUT: lock_pi2 monotonic timeout: ETIMEDOUT
 * STDOUT: lock_pi with FUTEX_CLOCK_REALTIME: Function not implemented
 * STDOUT: main unlock 0, word 0
 * STDOUT: FUTEX_WAKE on a requeue-PI waiter: EINVAL
 * STDOUT: CMP_REQUEUE on a requeue-PI waiter: EINVAL
 * STDOUT: CMP_REQUEUE_PI nr_wake 2: EINVAL, same futex: EINVAL
 * STDOUT: requeue waiter: 0, owns pi yes
 * STDOUT: requeue_pi returned 1
 * STDOUT: plain robust mutex after owner exit: EOWNERDEAD, then 0
 * STDOUT: PI robust mutex after owner exit: EOWNERDEAD, then 0
 * STDOUT: process-shared robust mutex after owner process exit: EOWNERDEAD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long futex(void *uaddr, int op, uint32_t val, const void *timeout, void *uaddr2, uint32_t val3)
{
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static const char *err(long r)
{
    if (r >= 0)
        return "0";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EDEADLK: return "EDEADLK";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return strerror(errno);
    }
}

static uint32_t pi, plain;
static atomic_int stage;
static pid_t other_tid;

static void *locker(void *arg)
{
    (void)arg;
    other_tid = gettid();
    atomic_store(&stage, 1);
    long r = futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    uint32_t word = pi;
    printf("waiter: lock %s, word = waiters%s + own tid %s\n", err(r), word & FUTEX_WAITERS ? "" : " MISSING",
           (word & FUTEX_TID_MASK) == (uint32_t)gettid() ? "yes" : "no");
    r = futex(&pi, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("waiter: unlock %s, word %u\n", err(r), pi);
    return NULL;
}

static void *unlocker(void *arg)
{
    (void)arg;
    long r = futex(&pi, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("unlock by non-owner %s\n", err(r));
    return NULL;
}

static void *exiter(void *arg)
{
    other_tid = gettid();
    return arg;
}

/* Another thread of the process tries the lock main holds. */
static void *contender(void *arg)
{
    struct timespec ts;
    long r = futex(&pi, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("trylock of a held lock: %s, waiters bit %s\n", err(r), pi & FUTEX_WAITERS ? "set" : "clear");
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 5000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    r = futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, &ts, NULL, 0);
    printf("lock_pi realtime timeout: %s\n", err(r));
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 5000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    r = futex(&pi, FUTEX_LOCK_PI2_PRIVATE, 0, &ts, NULL, 0);
    printf("lock_pi2 monotonic timeout: %s\n", err(r));
    r = futex(&pi, FUTEX_LOCK_PI_PRIVATE | FUTEX_CLOCK_REALTIME, 0, &ts, NULL, 0);
    printf("lock_pi with FUTEX_CLOCK_REALTIME: %s\n", err(r));
    return arg;
}

static void *requeue_waiter(void *arg)
{
    (void)arg;
    atomic_store(&stage, 2);
    long r = futex(&plain, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, NULL, &pi, 0);
    printf("requeue waiter: %s, owns pi %s\n", err(r), (pi & FUTEX_TID_MASK) == (uint32_t)gettid() ? "yes" : "no");
    futex(&pi, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static pthread_mutex_t *robust;

static void *die_holding(void *arg)
{
    (void)arg;
    pthread_mutex_lock(robust);
    return NULL;
}

static void robust_case(const char *name, int protocol)
{
    pthread_mutexattr_t attr;
    static pthread_mutex_t m;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&attr, protocol);
    pthread_mutex_init(&m, &attr);
    robust = &m;
    pthread_t t;
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&m);
    printf("%s robust mutex after owner exit: %s", name, r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    pthread_mutex_consistent(&m);
    pthread_mutex_unlock(&m);
    r = pthread_mutex_lock(&m);
    printf(", then %d\n", r);
    pthread_mutex_unlock(&m);
}

int main(void)
{
    struct timespec ts;
    long r;
    pthread_t t;

    r = futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("lock free: %s, word is my tid: %s\n", err(r), pi == (uint32_t)gettid() ? "yes" : "no");
    r = futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("lock again: %s, ", err(r));
    r = futex(&pi, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("trylock own: %s\n", err(r));
    pthread_create(&t, NULL, unlocker, NULL);
    pthread_join(t, NULL);

    /* Contended: the waiter blocks, the unlock hands the lock over. */
    pthread_create(&t, NULL, locker, NULL);
    while (!atomic_load(&stage))
        ;
    usleep(30000);
    printf("owner sees waiters bit: %s\n", pi & FUTEX_WAITERS ? "yes" : "no");
    r = futex(&pi, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("owner: unlock %s\n", err(r));
    pthread_join(t, NULL);

    /* Held by someone else: trylock, timeouts, FUTEX_WAKE on it. */
    pi = other_tid;   /* the locker thread has exited: its TID names no task */
    r = futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("dead owner: %s, waiters bit %s\n", err(r), pi & FUTEX_WAITERS ? "set" : "clear");
    pthread_create(&t, NULL, exiter, NULL);
    pthread_join(t, NULL);

    pi = 0;
    futex(&pi, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    pthread_create(&t, NULL, contender, NULL);
    pthread_join(t, NULL);
    r = futex(&pi, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("main unlock %s, word %u\n", err(r), pi);

    /* CMP_REQUEUE_PI: a free PI futex is taken for the top waiter. */
    atomic_store(&stage, 0);
    plain = 0;
    pi = 0;
    pthread_create(&t, NULL, requeue_waiter, NULL);
    while (atomic_load(&stage) != 2)
        ;
    usleep(30000);
    r = futex(&plain, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("FUTEX_WAKE on a requeue-PI waiter: %s\n", err(r));
    r = futex(&plain, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)0, &pi, 0);
    printf("CMP_REQUEUE on a requeue-PI waiter: %s\n", err(r));
    r = futex(&plain, FUTEX_CMP_REQUEUE_PI_PRIVATE, 2, (void *)0, &pi, 0);
    printf("CMP_REQUEUE_PI nr_wake 2: %s, ", err(r));
    r = futex(&plain, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, (void *)0, &plain, 0);
    printf("same futex: %s\n", err(r));
    fflush(stdout);
    r = futex(&plain, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, (void *)0, &pi, 0);
    pthread_join(t, NULL);
    printf("requeue_pi returned %ld\n", r);

    robust_case("plain", PTHREAD_PRIO_NONE);
    robust_case("PI", PTHREAD_PRIO_INHERIT);

    /* A process-shared robust mutex whose owner process exits. */
    pthread_mutex_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(shared, &attr);
    pid_t child = fork();
    if (child == 0) {
        pthread_mutex_lock(shared);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    int e = pthread_mutex_lock(shared);
    printf("process-shared robust mutex after owner process exit: %s\n", e == EOWNERDEAD ? "EOWNERDEAD" : strerror(e));
    return 0;
}
