/* The timeline workload: three threads spin on other CPUs (so the mm is live
 * there) while main maps, touches and unmaps a page twelve times; every
 * munmap shoots down the other CPUs' TLBs by IPI and waits for their
 * acknowledgements. Expected output: "unmapped 12 pages", exit status 0.
 * Build: gcc -static -O1 -pthread */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#define SPINNERS 3
#define ROUNDS 12

static atomic_int done, started;

static void *spin(void *arg)
{
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&done))
        ;
    return arg;
}

int main(void)
{
    pthread_t threads[SPINNERS];
    int unmapped = 0;
    for (int i = 0; i < SPINNERS; i++)
        pthread_create(&threads[i], NULL, spin, NULL);
    while (atomic_load(&started) < SPINNERS)
        ;
    for (int round = 0; round < ROUNDS; round++) {
        volatile char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        page[0] = (char)round;
        unmapped += munmap((void *)page, 4096) == 0;
    }
    atomic_store(&done, 1);
    for (int i = 0; i < SPINNERS; i++)
        pthread_join(threads[i], NULL);
    printf("unmapped %d pages\n", unmapped);
    return 0;
}
