/* 8 threads increment a mutex-protected counter and an atomic counter;
 * the totals must be exact. Expected output:
 *   mutex=800000 atomic=800000 joined=8
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define THREADS 8
#define ITERATIONS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long mutex_counter;
static atomic_long atomic_counter;

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITERATIONS; i++) {
        pthread_mutex_lock(&lock);
        mutex_counter++;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&atomic_counter, 1);
    }
    return arg;
}

int main(void)
{
    pthread_t threads[THREADS];
    int joined = 0;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        joined += pthread_join(threads[i], NULL) == 0;
    printf("mutex=%ld atomic=%ld joined=%d\n", mutex_counter, (long)atomic_counter, joined);
    return 0;
}
