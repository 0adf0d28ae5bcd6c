/* Cross-CPU wakeup on the host: an upper bound for the profiles' IPI costs
 * (ipi_send + ipi_latency + ipi_receive). Two threads pinned to CPUs 0 and 1
 * take turns through one futex word: each sets the word to the other's turn,
 * FUTEX_WAKEs it and FUTEX_WAITs until its own turn comes back. The sleeping
 * side is woken by try_to_wake_up() on the other CPU, which sends it a
 * reschedule IPI (native_smp_send_reschedule) when that CPU is idle -- so a
 * handoff holds two syscalls, the IPI's delivery and the scheduler's wakeup
 * and switch, i.e. far more than the IPI alone (and, in this KVM guest, the
 * ICR write's VM exit and the host's posting of the interrupt). Prints
 * nanoseconds per handoff (half a round trip), the least of REPEATS runs.
 *
 * Usage: futex_wakeup ROUNDS REPEATS
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int turn __attribute__((aligned(64)));
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
    int me = (int)(long)arg;
    pin(me);
    for (long i = 0; i < rounds; i++) {
        while (turn != me)
            syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, !me, 0, 0, 0);
        __atomic_store_n(&turn, !me, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    }
    return 0;
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 2000;
    long repeats = argc > 2 ? atol(argv[2]) : 30;
    long best = -1;
    for (long r = 0; r < repeats; r++) {
        pthread_t a, b;
        turn = 0;
        long start = now_ns();
        pthread_create(&a, 0, player, (void *)0);
        pthread_create(&b, 0, player, (void *)1);
        pthread_join(a, 0);
        pthread_join(b, 0);
        long elapsed = now_ns() - start;
        if (best < 0 || elapsed < best)
            best = elapsed;
    }
    printf("%.1f\n", (double)best / (2.0 * rounds));
    return 0;
}
