/* One AMX tile dot product on data from stdin; the result tile on stdout.
 *
 * usage: tile_dot OP [noperm]   OP: 0 tdpbssd 1 tdpbsud 2 tdpbusd 3 tdpbuud 4 tdpbf16ps
 * stdin: C (16x16 int32 or fp32), A (16x64 bytes), B (16x64 bytes, VNNI layout)
 * Asks ARCH_REQ_XCOMP_PERM first (as Linux requires) unless "noperm" is given,
 * in which case the first tile instruction gets SIGILL.
 * Build: gcc -static -O2 -mamx-tile -mamx-int8 -mamx-bf16
 */
#include <immintrin.h>
#include <stdint.h>
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

static uint8_t c[1024], a[1024], b[1024];

static int read_exactly(uint8_t *buffer, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(0, buffer + done, size - done);
        if (got <= 0)
            return -1;
        done += (size_t)got;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int op = argv[1][0] - '0';
    if (!(argc > 2 && strcmp(argv[2], "noperm") == 0) &&
        syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return 3;
    if (read_exactly(c, sizeof c) || read_exactly(a, sizeof a) || read_exactly(b, sizeof b))
        return 4;
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int t = 0; t < 3; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
    _tile_loadd(0, c, 64);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 64);
    switch (op) {
    case 0: _tile_dpbssd(0, 1, 2); break;
    case 1: _tile_dpbsud(0, 1, 2); break;
    case 2: _tile_dpbusd(0, 1, 2); break;
    case 3: _tile_dpbuud(0, 1, 2); break;
    case 4: _tile_dpbf16ps(0, 1, 2); break;
    default: return 5;
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return write(1, c, sizeof c) == (ssize_t)sizeof c ? 0 : 6;
}
