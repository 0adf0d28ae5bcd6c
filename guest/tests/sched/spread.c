/* Eight CPU-bound threads on four CPUs: the scheduler spreads them and the
 * periodic balance keeps the queues even, while thread 0 pins itself to one
 * CPU with sched_setaffinity and must never be seen anywhere else. Every
 * thread samples its CPU with RDTSCP (IA32_TSC_AUX) and, less often, with
 * getcpu(2) and glibc's sched_getcpu (the rseq area).
 * Usage: spread PINNED_CPU.  Output, one line per thread, then the result:
 *   thread T cpus=0xMASK
 *   pinned=P violations=0 checksum=ok
 * Build: gcc -static -O1 -pthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#define THREADS 8
#define ROUNDS 400
#define WORK_PER_ROUND 2000

struct worker {
    pthread_t thread;
    int index;
    uint64_t cpus_seen;       /* bit per CPU observed */
    uint64_t checksum;
    int violations;           /* pinned thread only: samples off the pinned CPU */
};

static struct worker workers[THREADS];
static int pinned_cpu;

static uint64_t work(uint64_t x)
{
    for (int i = 0; i < WORK_PER_ROUND; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

static void *run(void *arg)
{
    struct worker *self = arg;
    if (self->index == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(pinned_cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            self->violations = 1000;
    }
    uint64_t x = self->index;
    for (int round = 0; round < ROUNDS; round++) {
        x = work(x);
        unsigned aux;
        __rdtscp(&aux);
        unsigned cpu = aux;
        if (round % 16 == 0) {
            unsigned by_syscall = 99;
            syscall(SYS_getcpu, &by_syscall, NULL, NULL);
            int by_rseq = sched_getcpu();
            if (by_syscall != aux || by_rseq != (int)aux)
                self->violations += 100;   /* the three sources disagree */
        }
        self->cpus_seen |= 1ULL << (cpu & 63);
        if (self->index == 0 && cpu != (unsigned)pinned_cpu)
            self->violations++;
    }
    self->checksum = x;
    return NULL;
}

int main(int argc, char **argv)
{
    pinned_cpu = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < THREADS; i++) {
        workers[i].index = i;
        pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(workers[i].thread, NULL);
        printf("thread %d cpus=%#llx\n", i, (unsigned long long)workers[i].cpus_seen);
    }
    /* Recompute one thread's result (all would double the run's work). */
    uint64_t expected = THREADS - 1;
    for (int round = 0; round < ROUNDS; round++)
        expected = work(expected);
    int ok = workers[THREADS - 1].checksum == expected;
    printf("pinned=%d violations=%d checksum=%s\n", pinned_cpu, workers[0].violations, ok ? "ok" : "BAD");
    return ok ? 0 : 1;
}
