/* Lost update: 4 threads add to a shared counter with a plain load, add and
 * store (volatile keeps the three instructions). Unsynchronised
 * read-modify-write sequences on different CPUs overlap and updates are
 * lost, so this program is wrong; the default scheduler's long runs hide it
 * (it prints the exact total), an exploring one finds it.
 * Expected output under the default scheduler: counter=80000 exact=yes
 * CPUS: 4
 * STDOUT: counter=80000 exact=yes
 * EXPECT-RACE: 10 random pct
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ITERATIONS 20000

static volatile long counter;

static void *worker(void *arg)
{
    for (int i = 0; i < ITERATIONS; i++)
        counter = counter + 1;
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
