/* For the gdb watchpoint test (tests/test_gdbstub.py): a writer thread bumps
 * `counter` twelve times, calling checkpoint() after each store, while a
 * spinner thread competes for the vCPUs and main sleeps in pthread_join.
 * Expected output: "counter=12", exit status 0.
 * Build: gcc -static -O1 -g -pthread */
#include <pthread.h>
#include <stdio.h>

volatile long counter;
volatile int stop_spinning;

__attribute__((noinline)) void checkpoint(long i)
{
    __asm__ volatile("" : : "r"(i) : "memory");
}

static void *writer(void *arg)
{
    for (long i = 0; i < 12; i++) {
        counter = counter + 1;
        checkpoint(i);
    }
    return arg;
}

static void *spinner(void *arg)
{
    long spins = 0;
    while (!stop_spinning)
        spins++;
    return (void *)spins;
}

int main(void)
{
    pthread_t writer_thread, spinner_thread;
    pthread_create(&spinner_thread, NULL, spinner, NULL);
    pthread_create(&writer_thread, NULL, writer, NULL);
    pthread_join(writer_thread, NULL);
    stop_spinning = 1;
    pthread_join(spinner_thread, NULL);
    printf("counter=%ld\n", counter);
    return 0;
}
