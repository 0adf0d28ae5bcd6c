/* The alternate-signal-stack rules once AMX may be used (Linux: xstate.c
 * validate_sigaltstack, signal.c sigaltstack_size_valid, AT_MINSIGSTKSZ):
 *  - a MINSIGSTKSZ-sized sigaltstack is fine while AMX is not permitted;
 *  - ARCH_REQ_XCOMP_PERM fails with ENOSPC while any live thread has an
 *    alternate stack too small for the AMX signal frame;
 *  - once permitted, sigaltstack() refuses a too-small stack with ENOMEM;
 *  - an AT_MINSIGSTKSZ-sized stack is always enough: a signal delivered on it
 *    with live tiles finds them in their init state in the handler (XINUSE
 *    clear) and returns with the tiles intact;
 *  - the permission is process-wide: a thread created later sees it and uses
 *    AMX without a further request.
 * Expected output:
 *   small altstack before permission: 0
 *   permission with small altstack: ENOSPC
 *   permission with a thread's small altstack: ENOSPC
 *   permission: 0 perm 0x60003
 *   small altstack after permission: ENOMEM
 *   AT_MINSIGSTKSZ altstack: 0
 *   signal on altstack: 1, handler tiles init: 1, tiles intact: 1
 *   thread sees perm 0x60003, tiles: 1
 * Build: gcc -static -O2 -pthread -mamx-tile -mamx-int8
 */
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static const char *result(int error)
{
    static char buffer[16];
    if (error == 0)
        return "0";
    if (error == ENOSPC)
        return "ENOSPC";
    if (error == ENOMEM)
        return "ENOMEM";
    snprintf(buffer, sizeof buffer, "errno %d", error);
    return buffer;
}

static int set_altstack(size_t size)
{
    stack_t stack = {.ss_sp = malloc(size), .ss_flags = 0, .ss_size = size};
    return sigaltstack(&stack, NULL) == 0 ? 0 : errno;
}

static int request_permission(void)
{
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 0 : errno;
}

static unsigned long long permission(void)
{
    unsigned long long mask = 0;
    syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &mask);
    return mask;
}

static int tiles_round_trip(int8_t fill)
{
    int8_t in[16][64], out[16][64];
    memset(in, fill, sizeof in);
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    config.colsb[0] = 64;
    config.rows[0] = 16;
    _tile_loadconfig(&config);
    _tile_loadd(0, in, 64);
    _tile_stored(0, out, 64);
    _tile_release();
    return memcmp(in, out, sizeof in) == 0;
}

static pthread_barrier_t set_barrier, checked_barrier;
static volatile int handler_on_altstack, handler_tiles_init;
static char *altstack_base;
static size_t altstack_size;

static void *small_altstack_thread(void *arg)
{
    (void)arg;
    set_altstack(4096);
    pthread_barrier_wait(&set_barrier);
    pthread_barrier_wait(&checked_barrier);
    return NULL;
}

static void on_usr1(int signo)
{
    char here;
    (void)signo;
    handler_on_altstack = &here >= altstack_base && &here < altstack_base + altstack_size;
    handler_tiles_init = (_xgetbv(1) & 0x60000) == 0;
}

static void *amx_thread(void *arg)
{
    unsigned long long *seen = arg;
    *seen = permission();
    return (void *)(intptr_t)tiles_round_trip(7);
}

int main(void)
{
    unsigned long minsigstksz = getauxval(AT_MINSIGSTKSZ);
    printf("small altstack before permission: %s\n", result(set_altstack(4096)));
    printf("permission with small altstack: %s\n", result(request_permission()));

    set_altstack(minsigstksz);
    pthread_t thread;
    pthread_barrier_init(&set_barrier, NULL, 2);
    pthread_barrier_init(&checked_barrier, NULL, 2);
    pthread_create(&thread, NULL, small_altstack_thread, NULL);
    pthread_barrier_wait(&set_barrier);
    printf("permission with a thread's small altstack: %s\n", result(request_permission()));
    pthread_barrier_wait(&checked_barrier);
    pthread_join(thread, NULL);

    int granted = request_permission();
    printf("permission: %s perm %#llx\n", result(granted), permission());
    printf("small altstack after permission: %s\n", result(set_altstack(4096)));

    altstack_size = minsigstksz;
    altstack_base = malloc(altstack_size);
    stack_t stack = {.ss_sp = altstack_base, .ss_flags = 0, .ss_size = altstack_size};
    printf("AT_MINSIGSTKSZ altstack: %s\n", result(sigaltstack(&stack, NULL) == 0 ? 0 : errno));

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &action, NULL);
    int8_t in[16][64], out[16][64];
    memset(in, 5, sizeof in);
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    config.colsb[0] = 64;
    config.rows[0] = 16;
    _tile_loadconfig(&config);
    _tile_loadd(0, in, 64);
    raise(SIGUSR1);
    _tile_stored(0, out, 64);
    _tile_release();
    printf("signal on altstack: %d, handler tiles init: %d, tiles intact: %d\n", handler_on_altstack,
           handler_tiles_init, memcmp(in, out, sizeof in) == 0);

    unsigned long long seen = 0;
    void *tiles_ok;
    pthread_create(&thread, NULL, amx_thread, &seen);
    pthread_join(thread, &tiles_ok);
    printf("thread sees perm %#llx, tiles: %d\n", seen, (int)(intptr_t)tiles_ok);
    return 0;
}
