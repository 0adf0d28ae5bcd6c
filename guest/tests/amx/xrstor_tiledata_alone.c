/* XINUSE tracks XTILECFG (17) and XTILEDATA (18) apart (SDM Vol. 1 §13.6):
 * an XRSTOR of tile data alone (XSTATE_BV = bit 18, XTILECFG left in its
 * init state) puts XTILEDATA in use, and the next XSAVE of it writes
 * XSTATE_BV[18] = 1 and the same bytes -- the x86 amx selftest's
 * "TILEDATA registers changed" check. TILERELEASE then inits both.
 * CFLAGS: -mamx-tile -mxsave
 * PROFILE: spr
 * STDOUT: after xrstor: XINUSE[18:17]=0x2 xsave XSTATE_BV[18]=1 bytes same=1
 * STDOUT: after tilerelease: XINUSE[18:17]=0 xsave XSTATE_BV[18]=0
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define XTILEDATA (1ULL << 18)
#define XTILEDATA_OFFSET 2816        /* CPUID.(0xD,18).EBX on Sapphire Rapids */
#define XTILEDATA_BYTES 8192
#define AREA_BYTES (XTILEDATA_OFFSET + XTILEDATA_BYTES)

static uint8_t in[AREA_BYTES] __attribute__((aligned(64)));
static uint8_t out[AREA_BYTES] __attribute__((aligned(64)));

static uint64_t xinuse(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
    return ((uint64_t)hi << 32 | lo) & (3ULL << 17);
}

int main(void)
{
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return 1;
    for (int i = 0; i < XTILEDATA_BYTES; i++)
        in[XTILEDATA_OFFSET + i] = (uint8_t)(i * 7 + 3);
    uint64_t bv = XTILEDATA;
    memcpy(in + 512, &bv, 8);
    _xrstor64(in, XTILEDATA);
    uint64_t used = xinuse();
    memset(out, 0xAA, sizeof out);
    memset(out + 512, 0, 64);
    _xsave64(out, XTILEDATA);
    memcpy(&bv, out + 512, 8);
    printf("after xrstor: XINUSE[18:17]=%#llx xsave XSTATE_BV[18]=%d bytes same=%d\n",
           (unsigned long long)(used >> 17), (int)(bv >> 18 & 1),
           !memcmp(in + XTILEDATA_OFFSET, out + XTILEDATA_OFFSET, XTILEDATA_BYTES));
    _tile_release();
    used = xinuse();
    memset(out + 512, 0, 64);
    _xsave64(out, XTILEDATA);
    memcpy(&bv, out + 512, 8);
    printf("after tilerelease: XINUSE[18:17]=%#llx xsave XSTATE_BV[18]=%d\n",
           (unsigned long long)(used >> 17), (int)(bv >> 18 & 1));
    return 0;
}
