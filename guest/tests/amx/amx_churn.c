/* AMX task churn: creates THREADS threads in waves of WAVE (pthread_create,
 * then pthread_join of the wave). Every thread whose number is not a multiple
 * of PLAIN_EVERY uses AMX once -- its first tile instruction takes the XFD #NM
 * and the kernel allocates its large xstate -- computes one TDPBSSD and
 * checks it against a scalar computation; the others never touch AMX.
 * Each thread exits, so its xstate is freed (vfree under xstate_alloc=vmalloc).
 *
 * With ROUNDS > 1 an AMX thread accumulates ROUNDS TDPBSSDs, calling
 * sched_yield() twice after each, so its live tile state is switched out and
 * back -- the second time unmodified since it was restored, which lets
 * XSAVES skip the tile components (the modified optimization).
 *
 * Usage: amx_churn [THREADS [WAVE [PLAIN_EVERY [ROUNDS]]]]   (defaults 32 4 0 1)
 * Expected output: "churn ok: T threads, A amx, P plain"
 * Build: gcc -static -O2 -pthread -mamx-tile -mamx-int8
 */
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static int correct_amx, correct_plain, rounds = 1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int amx_work(int id)
{
    int8_t a[16][64], b[16][64];
    int32_t c[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 64; j++) {
            a[i][j] = (int8_t)(i * 3 + j + id);
            b[i][j] = (int8_t)(i - j * 5 + id * 7);
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
    for (int round = 0; round < rounds; round++) {
        _tile_dpbssd(0, 1, 2);
        if (rounds > 1) {
            sched_yield();
            sched_yield();
        }
    }
    _tile_stored(0, c, 64);
    _tile_release();
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            int32_t sum = 0;
            for (int k = 0; k < 16; k++)
                for (int j = 0; j < 4; j++)
                    sum += a[m][4 * k + j] * b[k][4 * n + j];
            if (c[m][n] != sum * rounds)
                return 0;
        }
    return 1;
}

static int plain_work(int id)
{
    uint32_t x = (uint32_t)id;
    for (int i = 0; i < 1000; i++)
        x = x * 1103515245u + 12345u;
    return x != 0 || id == 0;
}

struct job {
    int id;
    int use_amx;
};

static void *worker(void *arg)
{
    struct job *job = arg;
    int ok = job->use_amx ? amx_work(job->id) : plain_work(job->id);
    pthread_mutex_lock(&lock);
    if (ok) {
        if (job->use_amx)
            correct_amx++;
        else
            correct_plain++;
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 32;
    int wave = argc > 2 ? atoi(argv[2]) : 4;
    int plain_every = argc > 3 ? atoi(argv[3]) : 0;
    rounds = argc > 4 ? atoi(argv[4]) : 1;
    if (threads < 1 || wave < 1 || wave > 64 || plain_every < 0 || rounds < 1)
        return 2;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return 3;
    pthread_t ids[64];
    struct job jobs[64];
    int amx = 0, plain = 0;
    for (int started = 0; started < threads; started += wave) {
        int count = threads - started < wave ? threads - started : wave;
        for (int i = 0; i < count; i++) {
            int id = started + i;
            jobs[i].id = id;
            jobs[i].use_amx = !(plain_every && id % plain_every == 0);
            if (jobs[i].use_amx)
                amx++;
            else
                plain++;
            if (pthread_create(&ids[i], NULL, worker, &jobs[i]) != 0)
                return 4;
        }
        for (int i = 0; i < count; i++)
            pthread_join(ids[i], NULL);
    }
    if (correct_amx != amx || correct_plain != plain) {
        printf("churn FAILED: %d of %d amx, %d of %d plain\n", correct_amx, amx, correct_plain, plain);
        return 1;
    }
    printf("churn ok: %d threads, %d amx, %d plain\n", threads, amx, plain);
    return 0;
}
