/* Check-then-act: each thread withdraws 100 from a shared balance when the
 * balance covers it, but the check and the update are separate steps with no
 * lock between them, so two threads can both pass the check on the last 100
 * and the balance goes negative. The threads start together (a spin
 * barrier); under the default scheduler the check and the update never get
 * split, an exploring one splits them.
 * CPUS: 4
 * STDOUT: balance=0 withdrawals=3
 * EXPECT-RACE: 30 random pct
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4

static volatile long balance = 300;
static volatile int withdrawals;
static volatile int arrived;

static void *worker(void *arg)
{
    __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
    while (arrived < THREADS)
        ;
    if (balance >= 100) {               /* check ... */
        balance = balance - 100;        /* ... then act, without a lock */
        __atomic_fetch_add(&withdrawals, 1, __ATOMIC_SEQ_CST);
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
    printf("balance=%ld withdrawals=%d\n", balance, withdrawals);
    return 0;
}
