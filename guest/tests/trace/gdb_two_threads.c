/* Two threads for the gdb test: main starts `worker` on a second thread,
 * which adds its argument to `counter`; main joins it and exits with
 * counter - 39. Expected output: "counter=42", exit status 3.
 * Build: gcc -static -O1 -g -pthread */
#include <pthread.h>
#include <stdio.h>

volatile long counter = 41;

__attribute__((noinline)) void *worker(void *arg)
{
    counter += (long)arg;
    return arg;
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, worker, (void *)1);
    pthread_join(thread, NULL);
    printf("counter=%ld\n", counter);
    return (int)(counter - 39);
}
