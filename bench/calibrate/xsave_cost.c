/* XSAVEC/XRSTOR round trip on the host, for the zen3 profile's xsave_base and
 * xsave_per_byte (XSAVES/XRSTORS are CPL0; their user-mode siblings XSAVEC
 * and XRSTOR move the same compacted components). Saves and restores the
 * x87+SSE+AVX state (XCR0 bits 0-2, 832 bytes compacted) and the x87+SSE
 * state alone (576 bytes), ROUNDS times each, and prints nanoseconds per
 * save+restore pair for each, the least of REPEATS windows.
 * Usage: xsave_cost ROUNDS REPEATS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint8_t area[4096] __attribute__((aligned(64)));

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double pair_ns(uint32_t mask, long rounds, long repeats)
{
    double best = 1e30;
    for (long r = 0; r < repeats; r++) {
        uint64_t start = now_ns();
        for (long i = 0; i < rounds; i++) {
            __asm__ volatile("xsavec (%0)" :: "r"(area), "a"(mask), "d"(0) : "memory");
            __asm__ volatile("xrstor (%0)" :: "r"(area), "a"(mask), "d"(0) : "memory");
        }
        double ns = (double)(now_ns() - start) / rounds;
        if (ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1000, repeats = argc > 2 ? atol(argv[2]) : 100;
    __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n vaddps %%ymm1, %%ymm1, %%ymm1" ::: "xmm0", "xmm1");
    printf("%.2f %.2f\n", pair_ns(3, rounds, repeats), pair_ns(7, rounds, repeats));
    return 0;
}
