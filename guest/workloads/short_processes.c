/* short_processes -- many short-lived processes (mm creation and teardown).
 *
 * Stresses: the parent forks children in batches; each child writes a few
 * pages of fresh anonymous memory (and, copy-on-write, a page of the
 * parent's), then _exits with a status computed from what it read back; the
 * parent waits for each and checks the status. Every child is a new mm that
 * is switched to, used, and torn down: ASID/PCID allocation and recycling,
 * lazy-TLB references to a dying mm (refcount atomics, shootdown IPIs at
 * __mmdrop, or hazard-pointer scans) and the exit_mmap flush.
 *
 * Usage: short_processes [PROCESSES [PAGES [PARALLEL]]]
 *   PROCESSES  children in all (default 64)
 *   PAGES      4 KiB pages each child writes (default 8)
 *   PARALLEL   children alive at once (default, or 0: CPUs in sched_getaffinity)
 * Output: "short_processes processes=N pages=P ok", exit 0. A failed fork
 * prints "fork: <strerror>" on stderr and exits 1; a child with a wrong
 * status prints "bad child ..." on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE_SIZE 4096

static long inherited[PAGE_SIZE / sizeof(long)];

static int child_work(int index, int pages)
{
    char *region = mmap(NULL, (size_t)pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return 255;
    inherited[0] += index;               /* copy-on-write of a parent page */
    long sum = 0;
    for (int p = 0; p < pages; p++)
        *(volatile long *)(region + (size_t)p * PAGE_SIZE) = index + p;
    for (int p = 0; p < pages; p++)
        sum += *(volatile long *)(region + (size_t)p * PAGE_SIZE);
    sum += inherited[0];
    return (int)(sum % 200);
}

static int expected_status(int index, int pages)
{
    long sum = 0;
    for (int p = 0; p < pages; p++)
        sum += index + p;
    sum += 1000 + index;
    return (int)(sum % 200);
}

int main(int argc, char **argv)
{
    cpu_set_t set;
    int cpus = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    int processes = argc > 1 ? atoi(argv[1]) : 64;
    int pages = argc > 2 ? atoi(argv[2]) : 8;
    int parallel = argc > 3 ? atoi(argv[3]) : 0;
    if (parallel == 0)
        parallel = cpus;
    if (processes < 0 || pages < 1 || parallel < 1 || parallel > 4096) {
        fprintf(stderr, "usage: short_processes [PROCESSES [PAGES [PARALLEL]]]\n");
        return 2;
    }
    inherited[0] = 1000;
    pid_t *pids = calloc((size_t)parallel, sizeof *pids);
    for (int first = 0; first < processes; first += parallel) {
        int batch = processes - first < parallel ? processes - first : parallel;
        for (int i = 0; i < batch; i++) {
            pid_t pid = fork();
            if (pid < 0) {
                fprintf(stderr, "fork: %s\n", strerror(errno));
                return 1;
            }
            if (pid == 0)
                _exit(child_work(first + i, pages));
            pids[i] = pid;
        }
        for (int i = 0; i < batch; i++) {
            int status;
            if (waitpid(pids[i], &status, 0) != pids[i]) {
                fprintf(stderr, "waitpid: %s\n", strerror(errno));
                return 1;
            }
            int want = expected_status(first + i, pages);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != want) {
                fprintf(stderr, "bad child %d: status 0x%x, expected exit %d\n", first + i, status, want);
                return 1;
            }
        }
    }
    if (inherited[0] != 1000) {
        fprintf(stderr, "bad parent page: %ld\n", inherited[0]);
        return 1;
    }
    printf("short_processes processes=%d pages=%d ok\n", processes, pages);
    return 0;
}
