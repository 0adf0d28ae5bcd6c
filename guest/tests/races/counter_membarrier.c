/* A membarrier-based counter: each worker adds to its own slot with plain
 * stores (no lock prefix, no fence on the fast path), and the reader makes
 * every running worker's stores visible with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) -- an IPI to each CPU running
 * the process -- before summing, as asymmetric-fence schemes (liburcu's
 * sys_membarrier flavour) do. Every snapshot must be at least the previous
 * one, and the final sum exact, under every schedule.
 * CPUS: 4
 * STDOUT: counter=8000 exact=yes monotonic=yes
 * SCHEDULES: 10 random pct
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 4
#define ITERATIONS 2000

struct slot {
    volatile long count;
    char pad[56];
};
static struct slot slots[THREADS];
static volatile int finished;

static long membarrier(int command)
{
    return syscall(SYS_membarrier, command, 0, 0);
}

static long snapshot(void)
{
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        return -1;
    long sum = 0;
    for (int i = 0; i < THREADS; i++)
        sum += slots[i].count;
    return sum;
}

static void *worker(void *arg)
{
    struct slot *mine = arg;
    for (int i = 0; i < ITERATIONS; i++) {
        mine->count = mine->count + 1;
        __asm__ volatile("" ::: "memory");   /* compiler barrier only */
    }
    __atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(void)
{
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
        puts("membarrier registration failed");
        return 1;
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, &slots[i]);
    int monotonic = 1;
    long previous = 0;
    while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < THREADS) {
        long now = snapshot();
        if (now < previous)
            monotonic = 0;
        previous = now;
        usleep(100);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    long total = snapshot();
    printf("counter=%ld exact=%s monotonic=%s\n", total, total == (long)THREADS * ITERATIONS ? "yes" : "no",
           monotonic && total >= previous ? "yes" : "no");
    return 0;
}
