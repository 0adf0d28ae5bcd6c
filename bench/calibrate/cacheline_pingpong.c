/* Cross-core cache-line transfer on the host (the zen3 profile's
 * mm_refcount_atomic, hazard_pointer_scan): two threads pinned to CPUs 0 and
 * 1 take turns incrementing one shared counter with LOCK XADD, each waiting
 * until the other's increment is visible. Every increment therefore finds
 * the line last written by the other core: one round trip is two transfers
 * plus two atomics. Prints nanoseconds per handoff (half a round trip), the
 * least of REPEATS runs; bench/calibrate/__main__.py turns it into cycles
 * with the clock it measured.
 *
 * Usage: cacheline_pingpong ROUNDS REPEATS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile long counter __attribute__((aligned(64)));
static long rounds;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *player(void *arg)
{
    long parity = (long)arg;
    pin((int)parity);
    for (long i = 0; i < rounds; i++) {
        while ((counter & 1) != parity)
            ;
        __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 100000;
    long repeats = argc > 2 ? atol(argv[2]) : 5;
    double best = 1e30;
    for (long r = 0; r < repeats; r++) {
        counter = 0;
        pthread_t a, b;
        uint64_t start = now_ns();
        pthread_create(&a, 0, player, (void *)0);
        pthread_create(&b, 0, player, (void *)1);
        pthread_join(a, 0);
        pthread_join(b, 0);
        double per_handoff = (double)(now_ns() - start) / (2.0 * rounds);
        if (per_handoff < best)
            best = per_handoff;
    }
    printf("%.2f\n", best);
    return 0;
}
