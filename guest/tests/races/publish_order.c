/* Publication in the wrong order: the writer raises the ready flag before it
 * has computed and stored the data -- the order a compiler may pick for two
 * plain stores when no barrier (or release store) ties them, pinned here with
 * asm. x86's TSO keeps each CPU's stores in program order, so the bug is the
 * order the writer issued, and a reader that sees the flag before the data
 * store reads stale data.
 * Store-buffer reordering (a later load passing an earlier store, SDM Vol.
 * 3A §9.2.3.4: the Dekker/SB litmus test) is NOT modelled: the machine is
 * sequentially consistent, so bugs that need a store buffer are out of
 * scope (emu/sched_policy.py).
 * CPUS: 2
 * STDOUT: data=42
 * EXPECT-RACE: 30 random pct
 */
#include <pthread.h>
#include <stdio.h>

static volatile int ready;
static volatile int data;
static volatile int go;

static void *writer(void *arg)
{
    while (!go)
        ;
    /* ready = 1; data = compute(); -- in that (wrong) order */
    __asm__ volatile("movl $1, %0" : "=m"(ready) :: "memory");
    int sum = 0;
    for (volatile int i = 0; i < 20; i++)
        sum += 2;
    __asm__ volatile("movl %1, %0" : "=m"(data) : "r"(sum + 2) : "memory");
    return arg;
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, writer, NULL);
    go = 1;
    while (!ready)
        ;
    int seen = data;
    pthread_join(thread, NULL);
    printf("data=%d\n", seen);
    return 0;
}
