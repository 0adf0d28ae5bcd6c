/* pinned_idle -- a mostly idle CPU that still holds the mm (lazy TLB).
 *
 * Stresses: one thread is pinned to the last allowed CPU and mostly sleeps
 * (nanosleep), waking now and then to read a page of the shared mm; while it
 * sleeps its CPU is idle with the mm still loaded -- the lazy-TLB CPU. The
 * other threads, pinned to the other CPUs, mmap/touch/munmap in a loop. Each
 * munmap decides whether the lazy CPU gets a flush IPI (refcount: skipped
 * unless page tables were freed; it catches up by tlb_gen when it wakes),
 * and at exit the lazy reference decides the mm teardown cost.
 *
 * Usage: pinned_idle [WORKERS [ITERATIONS [SLEEP_US]]]
 *   WORKERS     munmap threads (default, or 0: allowed CPUs - 1, at least 1)
 *   ITERATIONS  mmap/touch/munmap rounds per worker (default 200)
 *   SLEEP_US    the idle thread's sleep per wake-up, microseconds (default 50)
 * Output: "pinned_idle workers=W iterations=I ok", exit 0; a page that does
 * not read back what was written (or a shared page the sleeper sees change)
 * prints "corrupt ..." and exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_SIZE 4096
#define REGION_PAGES 2

static int allowed_cpus[CPU_SETSIZE], nr_allowed;
static int nr_workers, iterations, sleep_us;
static int workers_done;
static int corrupt;
static volatile long shared_page[PAGE_SIZE / sizeof(long)];

static void pin_to(int slot)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(allowed_cpus[slot % nr_allowed], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *sleeper(void *arg)
{
    (void)arg;
    pin_to(nr_allowed - 1);
    struct timespec nap = {sleep_us / 1000000, (long)(sleep_us % 1000000) * 1000};
    while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < nr_workers) {
        nanosleep(&nap, NULL);
        if (shared_page[0] != 12345) {
            printf("corrupt shared page: %ld\n", shared_page[0]);
            __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    pin_to((int)id);
    for (int round = 0; round < iterations; round++) {
        char *region = mmap(NULL, REGION_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        for (int p = 0; p < REGION_PAGES; p++)
            *(volatile long *)(region + p * PAGE_SIZE) = id + round + p;
        for (int p = 0; p < REGION_PAGES; p++)
            if (*(volatile long *)(region + p * PAGE_SIZE) != id + round + p) {
                printf("corrupt worker=%ld round=%d page=%d\n", id, round, p);
                __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
            }
        munmap(region, REGION_PAGES * PAGE_SIZE);
    }
    __atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(int argc, char **argv)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("sched_getaffinity");
        return 1;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set))
            allowed_cpus[nr_allowed++] = cpu;
    nr_workers = argc > 1 ? atoi(argv[1]) : 0;
    if (nr_workers == 0)
        nr_workers = nr_allowed > 1 ? nr_allowed - 1 : 1;
    iterations = argc > 2 ? atoi(argv[2]) : 200;
    sleep_us = argc > 3 ? atoi(argv[3]) : 50;
    if (nr_workers < 1 || nr_workers > 1024 || iterations < 0 || sleep_us < 0) {
        fprintf(stderr, "usage: pinned_idle [WORKERS [ITERATIONS [SLEEP_US]]]\n");
        return 2;
    }
    shared_page[0] = 12345;
    pthread_t idle_thread, *threads = calloc((size_t)nr_workers, sizeof *threads);
    pthread_create(&idle_thread, NULL, sleeper, NULL);
    for (long i = 0; i < nr_workers; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < nr_workers; i++)
        pthread_join(threads[i], NULL);
    pthread_join(idle_thread, NULL);
    if (corrupt)
        return 1;
    printf("pinned_idle workers=%d iterations=%d ok\n", nr_workers, iterations);
    return 0;
}
