/* Lock-order deadlock: one thread takes mutex A then B, the other B then A.
 * When each holds its first lock, both wait forever: every guest thread
 * sleeps on a futex and emu reports the deadlock (exit 124). Under the
 * default scheduler the first thread is done before the second starts; on
 * one CPU only a preemption while it holds A lets the second one in.
 * CPUS: 1
 * STDOUT: done
 * EXPECT-RACE: 40 random pct
 */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
static volatile long shared;

static void work(void)
{
    for (volatile int i = 0; i < 50; i++)
        ;
}

static void *a_then_b(void *arg)
{
    pthread_mutex_lock(&a);
    work();
    pthread_mutex_lock(&b);
    shared++;
    pthread_mutex_unlock(&b);
    pthread_mutex_unlock(&a);
    return arg;
}

static void *b_then_a(void *arg)
{
    pthread_mutex_lock(&b);
    work();
    pthread_mutex_lock(&a);
    shared++;
    pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    return arg;
}

int main(void)
{
    pthread_t first, second;
    pthread_create(&first, NULL, a_then_b, NULL);
    pthread_create(&second, NULL, b_then_a, NULL);
    pthread_join(first, NULL);
    pthread_join(second, NULL);
    puts(shared == 2 ? "done" : "lost");
    return 0;
}
