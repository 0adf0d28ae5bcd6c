/* Missed futex wake-up: the waiter tests a flag and then sleeps on a futex
 * word that the waker never changes, so FUTEX_WAIT's value check cannot see
 * the wake. If the waker's store and FUTEX_WAKE fall between the waiter's
 * test and its FUTEX_WAIT, the wake finds nobody and the waiter sleeps
 * forever (emu: deadlock, exit 124). The fix: wait on the word that changes
 * (FUTEX_WAIT(&ready, 0)).
 * One CPU: the waker runs inside that window only if the waiter is preempted
 * there (with more CPUs the new thread starts well after the window closes).
 * CPUS: 1
 * STDOUT: woken
 * EXPECT-RACE: 50 random pct
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int ready;
static int futex_word;
static volatile int sleeps;

static void *waker(void *arg)
{
    ready = 1;
    syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return arg;
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, waker, NULL);
    while (!ready) {                                /* test ... */
        for (volatile int i = 0; i < 50; i++)       /* bookkeeping before sleeping */
            sleeps++;
        syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);   /* ... then sleep */
    }
    pthread_join(thread, NULL);
    puts("woken");
    return 0;
}
