/* The FPU state a new program, a signal handler and a forked child start
 * with, as Linux gives them: fpstate_init_fxstate's FCW 0x37F and MXCSR
 * 0x1F80 (all exceptions masked, no flags), an empty x87 tag word; a handler
 * runs with that init state and the interrupted state comes back after it
 * (fpu__clear_user_states, rt_sigreturn); fork copies the parent's state.
 * The division by zero uses the x87 unit: Unicorn (QEMU 5.0) never reports
 * SSE exception flags in MXCSR (no update_mxcsr_from_sse_status).
 * STDOUT: start: mxcsr=0x1f80 fcw=0x37f ftw=0xffff
 * STDOUT: x87 1/0 raises FE_DIVBYZERO: 0x4
 * STDOUT: handler: mxcsr=0x1f80 fcw=0x37f ftw=0xffff
 * STDOUT: after the handler: mxcsr=0x7f80
 * STDOUT: child: mxcsr=0x7f80
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned mxcsr(void) { unsigned m; __asm__ volatile("stmxcsr %0" : "=m"(m)); return m; }
static unsigned short fcw(void) { unsigned short c; __asm__ volatile("fnstcw %0" : "=m"(c)); return c; }
static unsigned short ftw(void)
{
    unsigned char env[28];
    __asm__ volatile("fnstenv %0; fldenv %0" : "=m"(env));
    return env[8] | env[9] << 8;
}
static volatile long double zero_l = 0.0L;
/* fetestexcept(FE_DIVBYZERO) without libm: the ZE flag of FSW or MXCSR. */
static unsigned divbyzero_raised(void)
{
    unsigned short sw;
    __asm__ volatile("fnstsw %0" : "=m"(sw));
    return (sw | mxcsr()) & 0x4;
}

static void handler(int sig)
{
    printf("handler: mxcsr=%#x fcw=%#x ftw=%#x\n", mxcsr(), fcw(), ftw());
}

int main(void)
{
    printf("start: mxcsr=%#x fcw=%#x ftw=%#x\n", mxcsr(), fcw(), ftw());
    volatile long double r = 1.0L / zero_l;
    (void)r;
    printf("x87 1/0 raises FE_DIVBYZERO: %#x\n", divbyzero_raised());
    __asm__ volatile("fnclex");
    unsigned changed = 0x1f80 | 0x6000;       /* round toward zero */
    __asm__ volatile("ldmxcsr %0" :: "m"(changed));
    signal(SIGUSR1, handler);
    raise(SIGUSR1);
    printf("after the handler: mxcsr=%#x\n", mxcsr());
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child: mxcsr=%#x\n", mxcsr());
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, 0, 0);
    return 0;
}
