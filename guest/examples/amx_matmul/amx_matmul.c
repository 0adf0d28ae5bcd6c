/* int8 matrix multiply on AMX tiles: C (32x32 int32) = A (32x128 int8) x B
 * (128x32 int8), blocked into 16x16 result tiles with K in steps of 64, B
 * repacked into the VNNI layout TDPBSSD expects (four consecutive k of one
 * column side by side).  The result is checked against a scalar loop; the
 * expected values below come from numpy (a @ b over the same generator).
 *
 * CFLAGS: -mamx-tile -mamx-int8
 * CPUS: 1 2
 * EXIT: 0
 * STDOUT: C[0][0..3] = 114933 32533 49854 26643
 * STDOUT: checksum 0x24afaa62
 * STDOUT: tiles match the scalar product: yes
 * STATS: nm_faults == 1
 * STATS: xstate_allocs == 1
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define M 32
#define N 32
#define K 128
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static int8_t a[M][K], b[K][N];
static int8_t b_vnni[K / 4][N * 4];     /* b_vnni[k/4][4n + k%4] = b[k][n] */
static int32_t c[M][N], reference[M][N];

static uint32_t seed = 12345;
static int8_t next_byte(void)
{
    seed = seed * 1103515245u + 12345u;
    return (int8_t)(seed >> 16);
}

int main(void)
{
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        perror("arch_prctl(ARCH_REQ_XCOMP_PERM)");
        return 1;
    }
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            a[i][k] = next_byte();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            b[k][j] = next_byte();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            b_vnni[k / 4][4 * j + k % 4] = b[k][j];

    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int t = 0; t < 3; t++) {       /* tmm0 = C block, tmm1 = A block, tmm2 = B block */
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    _tile_loadconfig(&config);          /* the first AMX instruction: #NM, then it runs */
    for (int i = 0; i < M; i += 16)
        for (int j = 0; j < N; j += 16) {
            _tile_zero(0);
            for (int k = 0; k < K; k += 64) {
                _tile_loadd(1, &a[i][k], K);
                _tile_loadd(2, &b_vnni[k / 4][4 * j], N * 4);
                _tile_dpbssd(0, 1, 2);
            }
            _tile_stored(0, &c[i][j], N * 4);
        }
    _tile_release();

    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            int32_t sum = 0;
            for (int k = 0; k < K; k++)
                sum += a[i][k] * b[k][j];
            reference[i][j] = sum;
        }
    uint32_t checksum = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            checksum = checksum * 31 + (uint32_t)c[i][j];
    printf("C[0][0..3] = %d %d %d %d\n", c[0][0], c[0][1], c[0][2], c[0][3]);
    printf("checksum 0x%08x\n", checksum);
    printf("tiles match the scalar product: %s\n", memcmp(c, reference, sizeof c) == 0 ? "yes" : "NO");
    return 0;
}
