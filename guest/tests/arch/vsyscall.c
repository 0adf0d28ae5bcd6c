/* The legacy vsyscall page as Linux's default vsyscall=xonly: calls to
 * 0xffffffffff600000 (gettimeofday), ...400 (time) and ...800 (getcpu) are
 * emulated by the page-fault handler, which returns to the caller
 * (arch/x86/entry/vsyscall/vsyscall_64.c emulate_vsyscall); reading the page
 * is a SIGSEGV (SEGV_MAPERR, err = PROT|USER as set_signal_archinfo reports
 * kernel addresses, trapno 14); a call to another offset is a SIGSEGV
 * (SI_KERNEL); a bad pointer argument is SIGSEGV (SEGV_MAPERR at it).
 * STDOUT: vsyscall gettimeofday: ret=0 close to gettimeofday: 1
 * STDOUT: vsyscall time: agrees with its argument: 1, close to time(): 1
 * STDOUT: vsyscall getcpu: ret=0 cpu written: 1 node=0
 * STDOUT: read of the page: SIGSEGV code=1 addr=0xffffffffff600000 err=0x5 trapno=14 rip=0x40165c
 * STDOUT: call to offset 0x100: SIGSEGV code=128 addr=0 err=0x5 trapno=14 rip=0xffffffffff600100
 * STDOUT: time with a kernel pointer: SIGSEGV code=1 addr=0xffff800000000000 err=0x6 trapno=14 rip=0xffffffffff600400
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>

#define VSYS(x) ((x) + 0xffffffffff600000UL)
typedef long (*gtod_t)(struct timeval *tv, struct timezone *tz);
typedef long (*time_func_t)(time_t *t);
typedef long (*getcpu_t)(unsigned *cpu, unsigned *node, void *cache);

static sigjmp_buf jmpbuf;
static volatile int got_code;
static volatile unsigned long got_addr, got_err, got_trapno, got_rip;

static void on_segv(int sig, siginfo_t *info, void *ctx_void)
{
    ucontext_t *ctx = ctx_void;
    got_code = info->si_code;
    got_addr = (unsigned long)info->si_addr;
    got_err = ctx->uc_mcontext.gregs[REG_ERR];
    got_trapno = ctx->uc_mcontext.gregs[REG_TRAPNO];
    got_rip = ctx->uc_mcontext.gregs[REG_RIP];
    siglongjmp(jmpbuf, 1);
}

static void report(const char *what)
{
    printf("%s: SIGSEGV code=%d addr=%#lx err=%#lx trapno=%lu rip=%#lx\n", what, got_code, got_addr, got_err,
           got_trapno, got_rip);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);

    struct timeval tv = {0, 0}, now;
    long ret = ((gtod_t)VSYS(0))(&tv, NULL);
    gettimeofday(&now, NULL);
    printf("vsyscall gettimeofday: ret=%ld close to gettimeofday: %d\n", ret, now.tv_sec - tv.tv_sec <= 1);
    time_t t = 0;
    long t2 = ((time_func_t)VSYS(0x400))(&t);
    printf("vsyscall time: agrees with its argument: %d, close to time(): %d\n", t == t2, time(NULL) - t2 <= 1);
    unsigned cpu = 99, node = 99;
    ret = ((getcpu_t)VSYS(0x800))(&cpu, &node, 0);
    printf("vsyscall getcpu: ret=%ld cpu written: %d node=%u\n", ret, cpu < 1024, node);

    if (!sigsetjmp(jmpbuf, 1)) {
        printf("read: %d (unexpected)\n", *(volatile int *)VSYS(0));
    } else {
        report("read of the page");
    }
    if (!sigsetjmp(jmpbuf, 1)) {
        ((time_func_t)VSYS(0x100))(0);
        printf("misaligned call returned (unexpected)\n");
    } else {
        report("call to offset 0x100");
    }
    if (!sigsetjmp(jmpbuf, 1)) {
        ((time_func_t)VSYS(0x400))((time_t *)0xffff800000000000UL);
        printf("bad pointer returned (unexpected)\n");
    } else {
        report("time with a kernel pointer");
    }
    return 0;
}
