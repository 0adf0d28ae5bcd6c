/* pause(2) sleeps until a signal is delivered (kernel/signal.c sys_pause:
 * -ERESTARTNOHAND, -EINTR once a handler ran): a thread in `for (;;) pause();`
 * sleeps instead of spinning, an ignored signal does not end the pause, and a
 * handled one does. With the sleeper asleep, the main thread's work is all
 * the machine runs (STATS: few instructions).
 * CFLAGS: -pthread
 * STATS: instructions < 1000000
 * STDOUT: after an ignored signal: handled=0 interrupted=0
 * STDOUT: after SIGUSR1: handled=1 interrupted=1
 * STDOUT: after another: handled=2 interrupted=2
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int handled, interrupted;

static void on_usr1(int sig) { handled++; }

static void *sleeper(void *arg)
{
    for (;;) {
        int ret = pause();
        if (ret == -1 && errno == EINTR)
            interrupted++;
    }
    return 0;
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, SIG_IGN);
    pthread_t thread;
    pthread_create(&thread, 0, sleeper, 0);
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, 0);
    pthread_kill(thread, SIGUSR2);          /* ignored: the pause goes on */
    nanosleep(&ms, 0);
    printf("after an ignored signal: handled=%d interrupted=%d\n", handled, interrupted);
    pthread_kill(thread, SIGUSR1);
    for (int i = 0; i < 100 && !interrupted; i++)
        nanosleep(&ms, 0);
    printf("after SIGUSR1: handled=%d interrupted=%d\n", handled, interrupted);
    pthread_kill(thread, SIGUSR1);
    for (int i = 0; i < 100 && interrupted < 2; i++)
        nanosleep(&ms, 0);
    printf("after another: handled=%d interrupted=%d\n", handled, interrupted);
    return 0;
}
