/* PTRACE_GETREGSET/SETREGSET NT_X86_XSTATE around AMX first use
 * (arch/x86/kernel/fpu/regset.c xstateregs_get/set, xstate.c
 * __copy_xstate_to_uabi_buf): the regset is always the standard-format size
 * of every user feature (11008 bytes with AMX) with XCR0 in the sw_reserved
 * bytes; while the child has no AMX buffer (before and after the permission,
 * before its first tile instruction) XSTATE_BV has no tile data and those
 * bytes read as zero, and a SETREGSET naming XTILEDATA is refused (EINVAL:
 * not in the task's user features); once tiles are live the tracer reads
 * the loaded rows and can rewrite them. A short buffer is refused (EFAULT).
 * AMX is emulated here; the host has none, so this one is not compared.
 * CFLAGS: -mamx-tile
 * CMDLINE: xstate_alloc=vmalloc
 * CMDLINE: xstate_alloc=separate
 * CMDLINE: xstate_alloc=pages_percpu
 * STDOUT: stop 1: size=11008 sw_mask=0x60003 tiledata_in_header=0 tiledata_zero=1 set_tiledata=-22
 * STDOUT: stop 2: size=11008 sw_mask=0x60003 tiledata_in_header=0 tiledata_zero=1 set_tiledata=-22
 * STDOUT: stop 3: size=11008 sw_mask=0x60003 tiledata_in_header=1 tiledata_zero=0 row0=0x11 set_tiledata=0
 * STDOUT: short set=-14
 * STDOUT: child sees tmm0 row0 byte=0x5a
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define TILEDATA_OFFSET 2816
#define TILEDATA_BYTES 8192

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static uint8_t rows[16][64];
static uint8_t xsave_area[16384];

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);                                  /* stop 1: no permission */
        if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
            _exit(3);
        raise(SIGSTOP);                                  /* stop 2: permitted, no buffer yet */
        struct tile_config config;
        memset(&config, 0, sizeof config);
        config.palette_id = 1;
        config.colsb[0] = 64;
        config.rows[0] = 16;
        _tile_loadconfig(&config);
        memset(rows, 0x11, sizeof rows);
        _tile_loadd(0, rows, 64);
        raise(SIGSTOP);                                  /* stop 3: tiles live */
        _tile_stored(0, rows, 64);
        printf("child sees tmm0 row0 byte=%#x\n", rows[0][0]);
        _exit(0);
    }
    for (int stop = 1; stop <= 3; stop++) {
        int status;
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
            return 10;
        struct iovec iov = {xsave_area, sizeof xsave_area};
        memset(xsave_area, 0xAA, sizeof xsave_area);
        if (ptrace(PTRACE_GETREGSET, child, NT_X86_XSTATE, &iov) != 0)
            return 11;
        uint64_t sw_mask, xstate_bv;
        memcpy(&sw_mask, xsave_area + 464, 8);
        memcpy(&xstate_bv, xsave_area + 512, 8);
        int zero = 1;
        for (int i = 0; i < TILEDATA_BYTES; i++)
            zero &= xsave_area[TILEDATA_OFFSET + i] == 0;
        printf("stop %d: size=%zu sw_mask=%#lx tiledata_in_header=%d tiledata_zero=%d", stop, iov.iov_len,
               (unsigned long)sw_mask, (int)(xstate_bv >> 18 & 1), zero);
        if (stop == 3)
            printf(" row0=%#x", xsave_area[TILEDATA_OFFSET]);
        /* Write the state back with tile data named in the header, tmm0 filled with 0x5a. */
        uint64_t with_tiles = xstate_bv | 1ull << 18 | 1ull << 17;
        memcpy(xsave_area + 512, &with_tiles, 8);
        memset(xsave_area + TILEDATA_OFFSET, 0x5A, 1024);
        errno = 0;
        long set = ptrace(PTRACE_SETREGSET, child, NT_X86_XSTATE, &iov);
        printf(" set_tiledata=%ld\n", set ? -(long)errno : 0L);
        if (stop == 3) {
            struct iovec short_iov = {xsave_area, 1024};
            errno = 0;
            set = ptrace(PTRACE_SETREGSET, child, NT_X86_XSTATE, &short_iov);
            printf("short set=%ld\n", set ? -(long)errno : 0L);
        }
        ptrace(PTRACE_CONT, child, 0, 0);
    }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 20;
}
