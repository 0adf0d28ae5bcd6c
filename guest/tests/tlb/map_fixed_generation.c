/* Shootdown correctness: reader threads on several CPUs keep reading one
 * page while a writer replaces it with mmap(MAP_FIXED) and publishes a
 * generation number. After a reader has seen generation g published, the
 * page must never show an older one: the old mapping's TLB entries on every
 * CPU were flushed before mmap returned, and the old frame was freed only
 * after that.
 *
 * To make a missing remote flush visible (the test that proves this check
 * can fail), the writer touches a fresh scratch page holding -1 right after
 * each replacement: the frame just freed by MAP_FIXED is the one the kernel
 * hands out next, so a stale translation reads -1 (or the old generation).
 *
 * Usage: map_fixed_generation [readers] [generations]
 * Prints "ok readers=R generations=G" and exits 0, or the first stale
 * observation and exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

static volatile long *shared_page;
static _Atomic long published;
static _Atomic int readers_started;
static _Atomic long stale_seen_value = 0, stale_seen_generation = 0;
static long generations;

static void *reader(void *arg)
{
    (void)arg;
    atomic_fetch_add(&readers_started, 1);
    for (;;) {
        long generation = atomic_load_explicit(&published, memory_order_acquire);
        long value = *shared_page;
        /* 0: a fresh page the writer has not written yet (legitimate). */
        if (value != 0 && value < generation) {
            long expected = 0;
            if (atomic_compare_exchange_strong(&stale_seen_generation, &expected, generation))
                atomic_store(&stale_seen_value, value);
        }
        if (generation >= generations)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    int readers = argc > 1 ? atoi(argv[1]) : 3;
    generations = argc > 2 ? atol(argv[2]) : 100;
    shared_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *scratch = mmap(NULL, (size_t)PAGE * (generations + 1), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shared_page == MAP_FAILED || scratch == MAP_FAILED)
        return 2;
    *shared_page = 1;
    atomic_store(&published, 1);
    pthread_t threads[64];
    if (readers > 64)
        readers = 64;
    for (int i = 0; i < readers; i++)
        pthread_create(&threads[i], NULL, reader, NULL);
    while (atomic_load(&readers_started) < readers)
        sched_yield();
    for (long generation = 2; generation <= generations; generation++) {
        void *page = mmap((void *)shared_page, PAGE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (page != (void *)shared_page)
            return 2;
        *(volatile long *)(scratch + (generation - 2) * PAGE) = -1;   /* reuses the freed frame */
        *shared_page = generation;
        atomic_store_explicit(&published, generation, memory_order_release);
    }
    for (int i = 0; i < readers; i++)
        pthread_join(threads[i], NULL);
    long stale_generation = atomic_load(&stale_seen_generation);
    if (stale_generation) {
        printf("stale: read %ld after generation %ld was published\n",
               atomic_load(&stale_seen_value), stale_generation);
        return 1;
    }
    printf("ok readers=%d generations=%ld\n", readers, generations);
    return 0;
}
