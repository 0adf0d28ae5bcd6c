/* Use after free of a thread's stack: a thread publishes the address of a
 * local variable and returns; the main thread joins it and unmaps the stack
 * it gave it (pthread_attr_setstack), while a reader thread that saw the
 * pointer may not have read through it yet. If the reader is preempted
 * between seeing the pointer and the read, the read hits the unmapped stack
 * (SIGSEGV). On one CPU only a preemption at that instruction exposes it;
 * the default scheduler's 2 ms tick never lands there.
 * CPUS: 1
 * STDOUT: value=42
 * EXPECT-RACE: 50 random pct
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

#define STACK_BYTES (64 * 1024)

static int *volatile shared;
static volatile int value;

static void *publisher(void *arg)
{
    volatile int local = 42;
    shared = (int *)&local;         /* BUG: escapes the thread's lifetime */
    while (!*(volatile int *)arg)   /* until the reader has seen it */
        ;
    return NULL;
}

static void *reader(void *arg)
{
    while (shared == NULL)
        ;
    *(volatile int *)arg = 1;
    for (volatile int i = 0; i < 200; i++)  /* some work before the use */
        ;
    value = *shared;                /* may run after the stack is gone */
    return NULL;
}

int main(void)
{
    void *stack = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return 1;
    static volatile int seen;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, STACK_BYTES);
    pthread_t first, second;
    pthread_create(&second, NULL, reader, (void *)&seen);
    pthread_create(&first, &attr, publisher, (void *)&seen);
    pthread_join(first, NULL);
    munmap(stack, STACK_BYTES);     /* the publisher's stack is freed */
    pthread_join(second, NULL);
    printf("value=%d\n", value);
    return 0;
}
