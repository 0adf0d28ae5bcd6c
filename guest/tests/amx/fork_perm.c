/* AMX across fork: the permission is process-wide and inherited, tile data
 * is not (a forked child starts in the default, small fpstate). Expected:
 *   child before permission: SIGILL
 *   child after permission: perm=1 tile0_sum=0 parent_tile0_sum=1024
 * Build: gcc -static -O2 -mamx-tile -mxsave */
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static struct tile_config config;
static uint8_t ones[16][64], stored[16][64];

static long tile0_sum(void) {
    memset(stored, 0xEE, sizeof stored);
    _tile_stored(0, stored, 64);
    long sum = 0;
    for (int row = 0; row < 16; row++)
        for (int column = 0; column < 64; column++)
            sum += stored[row][column];
    return sum;
}

int main(void) {
    config.palette_id = 1;
    config.colsb[0] = 64;
    config.rows[0] = 16;
    memset(ones, 1, sizeof ones);

    pid_t pid = fork();
    if (pid == 0) {
        _tile_loadconfig(&config);      /* no permission: #NM -> SIGILL */
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child before permission: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGILL ? "SIGILL" : "??");

    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return 3;
    _tile_loadconfig(&config);
    _tile_loadd(0, ones, 64);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        unsigned long long permitted = 0;
        syscall(SYS_arch_prctl, 0x1022, &permitted);
        _tile_loadconfig(&config);
        printf("child after permission: perm=%d tile0_sum=%ld", (int)(permitted >> 18 & 1), tile0_sum());
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf(" parent_tile0_sum=%ld\n", tile0_sum());
    return WEXITSTATUS(status);
}
