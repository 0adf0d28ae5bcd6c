/* munmap_threads -- TLB shootdowns from munmap (like will-it-scale tlb_flush2).
 *
 * Stresses: every thread repeatedly mmaps a small private region, writes every
 * page, reads it back and munmaps it. The threads share one mm and each is
 * pinned to its own CPU, so every munmap must flush the TLB of the other CPUs
 * that run (or lazily hold) the mm: IPIs or INVLPGB, tlb_gen catch-up, and
 * the mm_cpumask bookkeeping of the lazy-TLB policies.
 *
 * Usage: munmap_threads [THREADS [ITERATIONS [PAGES]]]
 *   THREADS     worker threads (default, or 0: CPUs in sched_getaffinity),
 *               thread i pinned to the (i mod CPUs)-th allowed CPU
 *   ITERATIONS  mmap/touch/munmap rounds per thread (default 200)
 *   PAGES       4 KiB pages per region (default 4)
 * Output: "munmap_threads threads=T iterations=I pages=P ok", exit 0; a page
 * that does not read back what this thread wrote prints "corrupt ..." and
 * exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE_SIZE 4096

static int nr_threads, iterations, pages;
static int allowed_cpus[CPU_SETSIZE], nr_allowed;
static pthread_barrier_t start_barrier;
static int corrupt;

static void pin_to(int slot)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(allowed_cpus[slot % nr_allowed], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    pin_to((int)id);
    pthread_barrier_wait(&start_barrier);
    for (int round = 0; round < iterations; round++) {
        char *region = mmap(NULL, (size_t)pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        long stamp = id * 1000003L + round;
        for (int p = 0; p < pages; p++)
            *(volatile long *)(region + (size_t)p * PAGE_SIZE) = stamp + p;
        for (int p = 0; p < pages; p++) {
            long seen = *(volatile long *)(region + (size_t)p * PAGE_SIZE);
            if (seen != stamp + p) {
                printf("corrupt thread=%ld round=%d page=%d read=%ld expected=%ld\n",
                       id, round, p, seen, stamp + p);
                __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
            }
        }
        if (munmap(region, (size_t)pages * PAGE_SIZE) != 0) {
            perror("munmap");
            exit(1);
        }
    }
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
    nr_threads = argc > 1 ? atoi(argv[1]) : 0;
    if (nr_threads == 0)
        nr_threads = nr_allowed;
    iterations = argc > 2 ? atoi(argv[2]) : 200;
    pages = argc > 3 ? atoi(argv[3]) : 4;
    if (nr_threads < 1 || nr_threads > 1024 || iterations < 0 || pages < 1) {
        fprintf(stderr, "usage: munmap_threads [THREADS [ITERATIONS [PAGES]]]\n");
        return 2;
    }
    pthread_t *threads = calloc((size_t)nr_threads, sizeof *threads);
    pthread_barrier_init(&start_barrier, NULL, (unsigned)nr_threads);
    for (long i = 0; i < nr_threads; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < nr_threads; i++)
        pthread_join(threads[i], NULL);
    if (corrupt)
        return 1;
    printf("munmap_threads threads=%d iterations=%d pages=%d ok\n", nr_threads, iterations, pages);
    return 0;
}
