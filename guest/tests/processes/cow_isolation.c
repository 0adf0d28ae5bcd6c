/* Copy-on-write: after fork each side sees its own private memory (heap,
 * globals, stack, pages written by the kernel on its behalf, pages made
 * writable by mprotect later), while a MAP_SHARED mapping stays shared.
 * Expected:
 *   child: private ok, kernel write ok, mprotect ok, shared counter 1
 *   parent: private ok, shared counter 3, child status 0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES 256
static char globals[PAGES * 4096];

int main(void) {
    char *heap = malloc(PAGES * 4096);
    memset(heap, 'p', PAGES * 4096);
    memset(globals, 'g', sizeof globals);
    char *readonly = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(readonly, "original");
    mprotect(readonly, 4096, PROT_READ);
    volatile int *shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct timespec when = {0, 0};
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        for (int page = 0; page < PAGES; page += 2) {
            heap[page * 4096 + 7] = 'c';
            globals[page * 4096 + 9] = 'c';
        }
        int private_ok = 1;
        for (int page = 0; page < PAGES; page++) {
            char expect = page % 2 ? 'p' : 'c';
            private_ok &= heap[page * 4096 + 7] == expect && heap[page * 4096 + 8] == 'p';
            private_ok &= globals[page * 4096 + 9] == (page % 2 ? 'g' : 'c');
        }
        clock_gettime(CLOCK_MONOTONIC, &when);     /* the kernel writes a COW page */
        mprotect(readonly, 4096, PROT_READ | PROT_WRITE);
        strcpy(readonly, "child's");
        __atomic_add_fetch(shared, 1, __ATOMIC_SEQ_CST);
        printf("child: private %s, kernel write %s, mprotect %s, shared counter %d\n", private_ok ? "ok" : "BAD",
               when.tv_sec || when.tv_nsec ? "ok" : "BAD", strcmp(readonly, "child's") == 0 ? "ok" : "BAD",
               *shared);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    __atomic_add_fetch(shared, 2, __ATOMIC_SEQ_CST);
    int private_ok = when.tv_sec == 0 && when.tv_nsec == 0 && strcmp(readonly, "original") == 0;
    for (int page = 0; page < PAGES; page++)
        private_ok &= heap[page * 4096 + 7] == 'p' && globals[page * 4096 + 9] == 'g';
    printf("parent: private %s, shared counter %d, child status %d\n", private_ok ? "ok" : "BAD", *shared,
           WEXITSTATUS(status));
    return 0;
}
