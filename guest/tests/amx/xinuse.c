/* XGETBV(1) reports XTILECFG|XTILEDATA in use after a tile instruction and
 * not after TILERELEASE. Prints XINUSE & 0x60000 at three points.
 * Build: gcc -static -O2 -mamx-tile -mxsave
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

int main(void)
{
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return 3;
    unsigned long long before = _xgetbv(1) & 0x60000;
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    config.colsb[0] = 64;
    config.rows[0] = 16;
    _tile_loadconfig(&config);
    _tile_zero(0);
    unsigned long long during = _xgetbv(1) & 0x60000;
    _tile_release();
    unsigned long long after = _xgetbv(1) & 0x60000;
    printf("xcr0 tiles=%llx before=%llx during=%llx after=%llx\n", _xgetbv(0) & 0x60000, before, during, after);
    return 0;
}
