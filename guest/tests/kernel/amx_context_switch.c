/* Live tiles across context switches: two threads on one CPU each keep an
 * accumulator in tmm0 while sched_yield() (and, with the small quantum, the
 * timer) switches between them; the kernel saves each task's XTILEDATA at
 * switch-out (XSAVES into its own fpstate) and restores it on return to
 * user.  Each thread takes its own first-use #NM (XFD is per task).
 *
 * CFLAGS: -pthread -mamx-tile -mamx-int8
 * CPUS: 1
 * CMDLINE: sched_quantum=4000000
 * CMDLINE: sched_quantum=20000
 * EXIT: 0
 * STDOUT: thread 0: tiles ok
 * STDOUT: thread 1: tiles ok
 * STATS: nm_faults == 2
 * STATS: xstate_allocs == 2
 * STATS: context_switches >= 10
 */
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ROUNDS 8

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static int ok[2];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    int8_t a[4][16], b[4][16];
    int32_t c[4][4], expected[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) {
            a[i][j] = (int8_t)(i * 7 + j * 3 + id * 41);
            b[i][j] = (int8_t)(i * 5 - j + id * 13);
        }
    for (int m = 0; m < 4; m++)
        for (int n = 0; n < 4; n++) {
            int32_t sum = 0;
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 4; j++)
                    sum += a[m][4 * k + j] * b[k][4 * n + j];
            expected[m][n] = sum * ROUNDS;
        }
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int t = 0; t < 3; t++) {
        config.colsb[t] = 16;
        config.rows[t] = 4;
    }
    _tile_loadconfig(&config);
    _tile_zero(0);
    _tile_loadd(1, a, 16);
    _tile_loadd(2, b, 16);
    for (int round = 0; round < ROUNDS; round++) {
        _tile_dpbssd(0, 1, 2);
        sched_yield();
        for (volatile int spin = 0; spin < 3000; spin++)
            ;
    }
    _tile_stored(0, c, 16);
    _tile_release();
    ok[id] = memcmp(c, expected, sizeof c) == 0;
    return NULL;
}

int main(void)
{
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return 3;
    pthread_t other;
    pthread_create(&other, NULL, worker, (void *)1);
    worker((void *)0);
    pthread_join(other, NULL);
    for (int id = 0; id < 2; id++)
        printf("thread %d: tiles %s\n", id, ok[id] ? "ok" : "CORRUPTED");
    return 0;
}
