/* Load balancing between per-CPU run queues, driven into two shapes.
 *
 * "balance": main pins itself to CPU 0, so the workers it creates inherit
 * that mask and all queue on CPU 0; it then widens their masks
 * (pthread_setaffinity_np), which moves nobody, and waits. Only the periodic
 * balance on CPU 0's tick can spread them to the idle CPUs.
 *
 * "idle-pull": a short thread is created first and lands on idle CPU 1; main
 * then pins itself to CPU 0 and queues the workers there the same way. When
 * the short thread exits, CPU 1 goes idle and must pull a worker from CPU 0.
 *
 * "balance-pinned": as "balance", but worker 1 -- first in CPU 0's queue
 * once worker 0 runs, so the first the balance would take -- keeps the CPU 0
 * mask it inherited: the balance must skip it and move the others.
 *
 * Every worker records the CPUs it ran on (RDTSCP's IA32_TSC_AUX). Output:
 *   worker W cpus=0xMASK        (one per worker)
 *   union=0xMASK checksum=ok
 * Usage: balance balance|balance-pinned|idle-pull WORKERS.  Build: gcc -static -O1 -pthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#define MAX_WORKERS 16
#define ROUNDS 300
#define WORK_PER_ROUND 2000

struct worker {
    pthread_t thread;
    uint64_t seed;
    uint64_t cpus_seen;
    uint64_t checksum;
};

static struct worker workers[MAX_WORKERS];

static uint64_t work(uint64_t x, int iterations)
{
    for (int i = 0; i < iterations; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

static void *run(void *arg)
{
    struct worker *self = arg;
    uint64_t x = self->seed;
    for (int round = 0; round < ROUNDS; round++) {
        x = work(x, WORK_PER_ROUND);
        unsigned aux;
        __rdtscp(&aux);
        self->cpus_seen |= 1ULL << (aux & 63);
    }
    self->checksum = x;
    return NULL;
}

static void *short_job(void *arg)
{
    *(uint64_t *)arg = work(7, 20000);
    return NULL;
}

static void pin_self_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        puts("sched_setaffinity failed");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        puts("usage: balance balance|balance-pinned|idle-pull WORKERS");
        return 2;
    }
    int idle_pull = strcmp(argv[1], "idle-pull") == 0;
    int count = atoi(argv[2]);
    if (count < 1 || count > MAX_WORKERS)
        return 2;
    pthread_t short_thread;
    uint64_t short_result = 0;
    if (idle_pull)
        pthread_create(&short_thread, NULL, short_job, &short_result);
    pin_self_to(0);
    for (int i = 0; i < count; i++) {
        workers[i].seed = i + 1;
        pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    }
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int cpu = 0; cpu < 64; cpu++)
        CPU_SET(cpu, &all);
    int pinned_worker = strcmp(argv[1], "balance-pinned") == 0 ? 1 : -1;
    for (int i = 0; i < count; i++)
        if (i != pinned_worker)
            pthread_setaffinity_np(workers[i].thread, sizeof all, &all);
    if (idle_pull)
        pthread_join(short_thread, NULL);
    uint64_t all_seen = 0;
    for (int i = 0; i < count; i++) {
        pthread_join(workers[i].thread, NULL);
        all_seen |= workers[i].cpus_seen;
        printf("worker %d cpus=%#llx\n", i, (unsigned long long)workers[i].cpus_seen);
    }
    int ok = workers[0].checksum == work(1, ROUNDS * WORK_PER_ROUND) &&
             (!idle_pull || short_result == work(7, 20000));
    printf("union=%#llx checksum=%s\n", (unsigned long long)all_seen, ok ? "ok" : "BAD");
    return ok ? 0 : 1;
}
