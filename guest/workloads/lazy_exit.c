/* lazy_exit -- short-lived threaded processes that leave idle CPUs lazily on their mm.
 *
 * Stresses: the parent forks children one after another and sleeps in
 * waitpid. Each child starts THREADS threads, which the scheduler spreads over
 * the idle CPUs; each writes PAGES pages of a mapping the child shares with
 * them and exits. Nothing else is runnable, so their CPUs go idle with the
 * child's mm still loaded (lazy TLB) while the child's main thread joins them,
 * checks what they wrote and exits. The exit_mmap flush (page tables freed)
 * reaches the lazy CPUs, and the mm's final teardown (__mmdrop) is where the
 * lazy-TLB schemes differ: refcount took an atomic on mm_count at each switch
 * into and out of lazy mode; shootdown IPIs every CPU still in mm_cpumask
 * (cleanup_lazy_tlbs in kernel/fork.c: the case it exists for); hazard scans
 * every CPU's hazard pointer.
 *
 * Usage: lazy_exit [PROCESSES [THREADS [PAGES]]]
 *   PROCESSES  children, one at a time (default 16)
 *   THREADS    threads per child (default, or 0: allowed CPUs - 1, at least 1)
 *   PAGES      4 KiB pages each thread writes (default 4)
 * Output: "lazy_exit processes=N threads=T pages=P ok", exit 0. A failed
 * fork or thread creation prints the error on stderr and exits 1; a child
 * that read back wrong values exits 3 and the parent prints "bad child ..."
 * on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE_SIZE 4096
#define MAX_THREADS 256

struct work {
    char *region;
    int index;
    int pages;
};

static void *thread_work(void *arg)
{
    struct work *work = arg;
    for (int p = 0; p < work->pages; p++)
        *(volatile long *)(work->region + ((size_t)work->index * work->pages + p) * PAGE_SIZE) =
            work->index * 1000 + p;
    return NULL;
}

static int child(int threads, int pages)
{
    size_t size = (size_t)threads * pages * PAGE_SIZE;
    char *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return 2;
    pthread_t ids[MAX_THREADS];
    struct work works[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        works[t] = (struct work){region, t, pages};
        int error = pthread_create(&ids[t], NULL, thread_work, &works[t]);
        if (error) {
            fprintf(stderr, "pthread_create: %s\n", strerror(error));
            return 1;
        }
    }
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    for (int t = 0; t < threads; t++)
        for (int p = 0; p < pages; p++)
            if (*(long *)(region + ((size_t)t * pages + p) * PAGE_SIZE) != t * 1000 + p)
                return 3;
    return 0;
}

int main(int argc, char **argv)
{
    cpu_set_t set;
    int cpus = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    int processes = argc > 1 ? atoi(argv[1]) : 16;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    int pages = argc > 3 ? atoi(argv[3]) : 4;
    if (threads == 0)
        threads = cpus > 1 ? cpus - 1 : 1;
    if (processes < 0 || threads < 1 || threads > MAX_THREADS || pages < 1) {
        fprintf(stderr, "usage: lazy_exit [PROCESSES [THREADS [PAGES]]]\n");
        return 2;
    }
    for (int i = 0; i < processes; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0)
            _exit(child(threads, pages));
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            fprintf(stderr, "waitpid: %s\n", strerror(errno));
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bad child %d: status 0x%x\n", i, status);
            return 1;
        }
    }
    printf("lazy_exit processes=%d threads=%d pages=%d ok\n", processes, threads, pages);
    return 0;
}
