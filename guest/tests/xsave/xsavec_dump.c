/* Load known x87 and SSE values, XSAVEC them (x87|SSE) and write the 576-byte
 * compacted area to stdout; the test compares the host CPU's bytes with the
 * emulator's. FOP/FIP/FDP (bytes 6..23) are the last x87 instruction's
 * address, which the emulator does not track, so the test masks them
 * (tests/test_xstate.py).
 * Build: gcc -static -O2 -mxsave -mxsavec
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint8_t area[4096] __attribute__((aligned(64)));

int main(void)
{
    static const double constants[3] = {1.5, -2.25, 1e300};
    uint8_t xmm_values[16 * 16];
    for (int i = 0; i < (int)sizeof xmm_values; i++)
        xmm_values[i] = (uint8_t)(i * 37 + 11);
    unsigned int mxcsr = 0x1F80 | 0x6000;     /* round toward zero */
    __asm__ volatile(
        "fninit\n\t"
        "fldl 0(%0)\n\t"
        "fldl 8(%0)\n\t"
        "fldl 16(%0)\n\t"
        "fldpi\n\t"
        "ldmxcsr (%1)\n\t"
        "movdqu 0(%2), %%xmm0\n\t"  "movdqu 16(%2), %%xmm1\n\t"  "movdqu 32(%2), %%xmm2\n\t"
        "movdqu 48(%2), %%xmm3\n\t" "movdqu 64(%2), %%xmm4\n\t"  "movdqu 80(%2), %%xmm5\n\t"
        "movdqu 96(%2), %%xmm6\n\t" "movdqu 112(%2), %%xmm7\n\t" "movdqu 128(%2), %%xmm8\n\t"
        "movdqu 144(%2), %%xmm9\n\t" "movdqu 160(%2), %%xmm10\n\t" "movdqu 176(%2), %%xmm11\n\t"
        "movdqu 192(%2), %%xmm12\n\t" "movdqu 208(%2), %%xmm13\n\t" "movdqu 224(%2), %%xmm14\n\t"
        "movdqu 240(%2), %%xmm15\n\t"
        "xsavec (%3)\n\t"
        :
        : "r"(constants), "r"(&mxcsr), "r"(xmm_values), "r"(area), "a"(3), "d"(0)
        : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return write(1, area, 576) == 576 ? 0 : 1;
}
