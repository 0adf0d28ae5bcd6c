/* The flush fork owes the parent: a thread of the parent keeps storing to
 * a global on another CPU while the main thread forks. fork write-protects
 * the parent's PTEs; unless every CPU running the parent drops its writable
 * translation, the thread's next stores land in the frame the child now
 * shares and the child sees its snapshot change. Expected:
 *   child snapshot stable: yes
 *   parent counter moved on: yes */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long counter;
static volatile int stop, running;

static void *writer(void *unused) {
    running = 1;
    while (!stop)
        counter++;
    return unused;
}

int main(void) {
    pthread_t thread;
    pthread_create(&thread, 0, writer, 0);
    while (!running)
        ;
    while (counter < 1000)
        ;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long first = counter;
        int changed = 0;
        for (int i = 0; i < 200000; i++)
            changed |= counter != first;
        _exit(changed ? 1 : 0);
    }
    long at_fork = counter;
    int status;
    waitpid(pid, &status, 0);
    for (long spins = 0; counter == at_fork && spins < 100000000; spins++)
        sched_yield();           /* a loaded host may not have run the writer yet */
    stop = 1;
    pthread_join(thread, 0);
    printf("child snapshot stable: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "NO");
    printf("parent counter moved on: %s\n", counter > at_fork ? "yes" : "NO");
    return 0;
}
