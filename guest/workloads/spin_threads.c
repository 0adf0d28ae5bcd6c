/* spin_threads -- N threads share no data and only compute: THREADS ITERATIONS.
 *
 * Each of the N threads (at most 64) runs ITERATIONS additions into a local
 * volatile counter, then main joins them. The guest instructions are the
 * same whether one vCPU or 64 run the threads, so it measures what running
 * many vCPUs costs the host (bench/peers.py scaling_figures, bench's wall
 * per vCPU quantum) and exercises the default scheduler's C loop
 * (tests/test_sched_c_loop.py).
 */
#include <pthread.h>
#include <stdlib.h>
static void *spin(void *arg) { volatile long x = 0; for (long i = 0; i < (long)arg; i++) x += i; return 0; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]); long iterations = atol(argv[2]); pthread_t t[64];
    for (int i = 0; i < n; i++) pthread_create(&t[i], 0, spin, (void *)iterations);
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
    return 0;
}
