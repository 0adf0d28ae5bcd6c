/* The unlocked counter (counter_unlocked.c) with a pthread mutex around the
 * read-modify-write: exact under every schedule.
 * CPUS: 4
 * STDOUT: counter=8000 exact=yes
 * SCHEDULES: 10 random pct
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ITERATIONS 2000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile long counter;

static void *worker(void *arg)
{
    for (int i = 0; i < ITERATIONS; i++) {
        pthread_mutex_lock(&lock);
        counter = counter + 1;
        pthread_mutex_unlock(&lock);
    }
    return arg;
}

int main(void)
{
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    printf("counter=%ld exact=%s\n", counter, counter == (long)THREADS * ITERATIONS ? "yes" : "no");
    return 0;
}
