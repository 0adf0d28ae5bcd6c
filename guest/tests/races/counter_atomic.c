/* The unlocked counter (counter_unlocked.c) with __atomic_fetch_add (LOCK
 * XADD): one instruction, which no preemption point splits; exact under
 * every schedule.
 * CPUS: 4
 * STDOUT: counter=8000 exact=yes
 * SCHEDULES: 10 random pct
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ITERATIONS 2000

static long counter;

static void *worker(void *arg)
{
    for (int i = 0; i < ITERATIONS; i++)
        __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    return arg;
}

int main(void)
{
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    long total = __atomic_load_n(&counter, __ATOMIC_RELAXED);
    printf("counter=%ld exact=%s\n", total, total == (long)THREADS * ITERATIONS ? "yes" : "no");
    return 0;
}
