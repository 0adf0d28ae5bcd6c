/* fork in a process with running threads: only the calling thread goes on
 * in the child, which has its own copy of memory, can start its own thread,
 * and can use malloc; the parent's threads finish untouched.
 * Expected:
 *   child: counter copy=ok own thread=21 malloc=ok
 *   child status=0
 *   parent: threads=3 total=300000 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long total;
static volatile int started;

static void *worker(void *unused) {
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&lock);
        total++;
        pthread_mutex_unlock(&lock);
    }
    return unused;
}

static void *child_thread(void *arg) {
    return (void *)((long)arg * 3);
}

int main(void) {
    pthread_t threads[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], 0, worker, 0);
    while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 3)
        ;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* Only this thread exists here. The mutex is a copy that a worker
         * may have held at the fork, so the child must not take it. */
        long snapshot = total;
        pthread_t own;
        void *result;
        pthread_create(&own, 0, child_thread, (void *)7L);
        pthread_join(own, &result);
        char *buffer = malloc(100000);
        memset(buffer, 'x', 100000);
        printf("child: counter copy=%s own thread=%ld malloc=%s\n", snapshot <= 300000 ? "ok" : "bad",
               (long)result, buffer[99999] == 'x' ? "ok" : "bad");
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child status=%d\n", WEXITSTATUS(status));
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], 0);
    printf("parent: threads=3 total=%ld\n", total);
    return 0;
}
