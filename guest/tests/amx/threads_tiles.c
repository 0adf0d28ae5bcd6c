/* Four threads keep live AMX tile state across sched_yield() and preemption:
 * each accumulates 20 TDPBSSDs of its own data into tmm0, yielding and
 * spinning in between, then checks tmm0 against a scalar computation.
 * Expected output: "tiles ok: 4 of 4 threads"
 * Build: gcc -static -O2 -pthread -mamx-tile -mamx-int8
 */
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef THREADS
#define THREADS 4
#endif
#ifndef SPIN
#define SPIN 20000
#endif
#ifndef ROUNDS
#define ROUNDS 20
#endif

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static int correct;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    static __thread int8_t a[16][64], b[16][64];
    static __thread int32_t c[16][16], expected[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 64; j++) {
            a[i][j] = (int8_t)(i * 7 + j * 3 + id * 11);
            b[i][j] = (int8_t)(i * 5 - j + id * 13);
        }
    memset(expected, 0, sizeof expected);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            int32_t sum = 0;
            for (int k = 0; k < 16; k++)
                for (int j = 0; j < 4; j++)
                    sum += a[m][4 * k + j] * b[k][4 * n + j];
            expected[m][n] = sum * ROUNDS;
        }
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int t = 0; t < 3; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
    _tile_zero(0);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 64);
    for (int round = 0; round < ROUNDS; round++) {
        _tile_dpbssd(0, 1, 2);
        sched_yield();
        for (volatile int spin = 0; spin < SPIN; spin++)
            ;
    }
    _tile_stored(0, c, 64);
    _tile_release();
    if (memcmp(c, expected, sizeof c) == 0) {
        pthread_mutex_lock(&lock);
        correct++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void)
{
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return 3;
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    printf("tiles ok: %d of %d threads\n", correct, THREADS);
    return 0;
}
