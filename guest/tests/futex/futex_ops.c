/* futex(2) operations other than PI (kernel/futex/waitwake.c, requeue.c):
 * argument errors, FUTEX_REQUEUE / FUTEX_CMP_REQUEUE counts, FUTEX_WAKE_OP's
 * atomic op and comparisons on the second word, bitsets, private and shared
 * keys not matching each other, and timeouts on both clocks. Every line is
 * what Linux 6.x prints.
 * CPUS: 1 2
 * STDOUT: unaligned wait EINVAL, unknown op ENOSYS, WAIT|CLOCK_REALTIME ENOSYS
 * STDOUT: wrong value EAGAIN, bitset 0 EINVAL, wake on unmapped private 0, shared EFAULT
 * STDOUT: relative timeout ETIMEDOUT, absolute past ETIMEDOUT, bad timespec EINVAL
 * STDOUT: requeue: woke 1 moved 2, cmp_requeue mismatch EAGAIN, negative count EINVAL
 * STDOUT: requeue returned 3, second futex woke 2
 * STDOUT: wake_op set 5 old 3 cmp_eq(3) -> 1
 * STDOUT: wake_op add 5 old 8 cmp_ne(8) -> 0
 * STDOUT: wake_op or 5 old 8 cmp_lt(9) -> 1
 * STDOUT: wake_op andn 5 old 13 cmp_le(13) -> 1
 * STDOUT: wake_op xor 5 old 8 cmp_gt(8) -> 0
 * STDOUT: wake_op set 1<<4 old 13 cmp_ge(-1) -> 1
 * STDOUT: wake_op bad op ENOSYS word 1, bad cmp ENOSYS word 1
 * STDOUT: wake_op woke 1+1
 * STDOUT: bitset: 0x1 woke 1, 0x4 woke 0, any woke 1
 * STDOUT: private waiter vs shared wake: 0, private wake: 1
 * STDOUT: nr_wake 0 wakes 1
 */
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

static long futex(void *uaddr, int op, uint32_t val, const void *timeout, void *uaddr2, uint32_t val3)
{
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static const char *err(long r)
{
    if (r >= 0)
        return "OK";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return strerror(errno);
    }
}

struct waiter {
    uint32_t *word;
    int op;
    uint32_t bitset;
    atomic_int started;
    long result;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->started, 1);
    w->result = futex(w->word, w->op, *w->word, NULL, NULL, w->bitset);
    return NULL;
}

static uint32_t f1, f2, f3;

/* Start n waiters on word (op, bitset) and let them block. */
static void start(pthread_t *t, struct waiter *w, int n, uint32_t *word, int op, uint32_t bitset)
{
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .word = word, .op = op, .bitset = bitset };
        pthread_create(&t[i], NULL, wait_thread, &w[i]);
        while (!atomic_load(&w[i].started))
            ;
    }
    usleep(20000);
}

int main(void)
{
    uint32_t unaligned[2] = {0, 0};
    struct timespec ts;
    long r;

    r = futex((char *)unaligned + 1, FUTEX_WAIT, 0, NULL, NULL, 0);
    printf("unaligned wait %s, ", err(r));
    r = futex(&f1, 14, 0, NULL, NULL, 0);
    printf("unknown op %s, ", err(r));
    r = futex(&f1, FUTEX_WAIT | FUTEX_CLOCK_REALTIME, 0, NULL, NULL, 0);
    printf("WAIT|CLOCK_REALTIME %s\n", err(r));

    r = futex(&f1, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
    printf("wrong value %s, ", err(r));
    r = futex(&f1, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 0);
    printf("bitset 0 %s, ", err(r));
    r = futex((void *)0x1000, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("wake on unmapped private %ld, ", r);
    r = futex((void *)0x1000, FUTEX_WAKE, 1, NULL, NULL, 0);
    printf("shared %s\n", err(r));

    ts = (struct timespec){ 0, 2000000 };
    r = futex(&f1, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    printf("relative timeout %s, ", err(r));
    ts = (struct timespec){ 1, 0 };
    r = futex(&f1, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 0, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
    printf("absolute past %s, ", err(r));
    ts = (struct timespec){ 0, 1000000000 };
    r = futex(&f1, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    printf("bad timespec %s\n", err(r));

    pthread_t t[4];
    struct waiter w[4];
    start(t, w, 3, &f1, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
    r = futex(&f1, FUTEX_REQUEUE_PRIVATE, 1, (void *)2, &f2, 0);
    long woke1 = r;
    printf("requeue: woke 1 moved 2, ");
    r = futex(&f2, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)1, &f3, 99);
    printf("cmp_requeue mismatch %s, ", err(r));
    r = futex(&f2, FUTEX_CMP_REQUEUE_PRIVATE, -1, (void *)1, &f3, 0);
    printf("negative count %s\n", err(r));
    r = futex(&f2, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0);
    printf("requeue returned %ld, second futex woke %ld\n", woke1, r);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);

    static const char *cmps[] = {"cmp_eq", "cmp_ne", "cmp_lt", "cmp_le", "cmp_gt", "cmp_ge"};
    struct { const char *name; int op, oparg, cmp, cmparg; uint32_t initial; } cases[] = {
        {"set 5", FUTEX_OP_SET, 5, FUTEX_OP_CMP_EQ, 3, 3},
        {"add 5", FUTEX_OP_ADD, 5, FUTEX_OP_CMP_NE, 8, 8},
        {"or 5", FUTEX_OP_OR, 5, FUTEX_OP_CMP_LT, 9, 8},
        {"andn 5", FUTEX_OP_ANDN, 5, FUTEX_OP_CMP_LE, 13, 13},
        {"xor 5", FUTEX_OP_XOR, 5, FUTEX_OP_CMP_GT, 8, 8},
        {"set 1<<4", FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT, 4, FUTEX_OP_CMP_GE, -1, 13},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* One waiter on f2: woken only when the comparison holds. */
        f2 = cases[i].initial;
        start(t, w, 1, &f2, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
        r = futex(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2,
                  FUTEX_OP(cases[i].op, cases[i].oparg, cases[i].cmp, cases[i].cmparg));
        printf("wake_op %s old %u %s(%d) -> %ld\n", cases[i].name, cases[i].initial, cmps[cases[i].cmp],
               cases[i].cmparg, r);
        if (r == 0)
            futex(&f2, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        pthread_join(t[0], NULL);
    }
    f2 = 1;
    r = futex(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2, (7u << 28) | (FUTEX_OP_CMP_EQ << 24));
    printf("wake_op bad op %s word %u, ", err(r), f2);
    f2 = 0;
    r = futex(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2, FUTEX_OP(FUTEX_OP_SET, 1, 7, 0));
    printf("bad cmp %s word %u\n", err(r), f2);

    f1 = 0;
    f2 = 0;
    start(t, w, 1, &f1, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
    start(t + 1, w + 1, 1, &f2, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
    r = futex(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2, FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0));
    printf("wake_op woke 1+%ld\n", r - 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);

    f1 = 0;
    start(t, w, 1, &f1, FUTEX_WAIT_BITSET_PRIVATE, 0x3);
    start(t + 1, w + 1, 1, &f1, FUTEX_WAIT_BITSET_PRIVATE, 0x8);
    long a = futex(&f1, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 0x1);
    long b = futex(&f1, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 0x4);
    long c = futex(&f1, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    printf("bitset: 0x1 woke %ld, 0x4 woke %ld, any woke %ld\n", a, b, c);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);

    start(t, w, 1, &f1, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
    a = futex(&f1, FUTEX_WAKE, 1, NULL, NULL, 0);
    b = futex(&f1, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("private waiter vs shared wake: %ld, private wake: %ld\n", a, b);
    pthread_join(t[0], NULL);

    start(t, w, 2, &f1, FUTEX_WAIT_PRIVATE, FUTEX_BITSET_MATCH_ANY);
    a = futex(&f1, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0);
    printf("nr_wake 0 wakes %ld\n", a);
    futex(&f1, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    return 0;
}
