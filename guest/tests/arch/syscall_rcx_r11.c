/* SYSCALL's register results as Linux leaves them (SDM Vol. 2B SYSCALL;
 * entry_SYSCALL_64 keeps RCX and R11 in pt_regs and the SYSRET path returns
 * with them): after a system call RCX holds the return RIP and R11 the RFLAGS
 * of the SYSCALL, and a signal delivered on that return (sysret_rip's check)
 * sees the same in its ucontext. With RFLAGS.TF set, SYSCALL itself does not
 * trap (IA32_FMASK clears TF) and the call still happens.
 * STDOUT: getpid matches: 1
 * STDOUT: rcx is the return rip: 1
 * STDOUT: r11 is rflags: 1
 * STDOUT: signal on syscall return: ret=0 rcx==rip and r11==eflags in the frame: 1
 * STDOUT: single-stepped getpid matches: 1, traps: 5
 * STDOUT:   trap at syscall end -2
 * STDOUT:   trap at syscall end +1
 * STDOUT:   trap at syscall end +2
 * STDOUT:   trap at syscall end +10
 * STDOUT:   trap at syscall end +11
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

extern char after_syscall[], after_kill[], tf_after_syscall[];
static volatile int handler_ok, traps;
static volatile long trap_offsets[16];

static void on_usr1(int sig, siginfo_t *info, void *ctx_void)
{
    ucontext_t *ctx = ctx_void;
    greg_t *g = ctx->uc_mcontext.gregs;
    handler_ok = g[REG_RIP] == (greg_t)after_kill && g[REG_RCX] == g[REG_RIP] && g[REG_R11] == g[REG_EFL];
}

static void on_trap(int sig, siginfo_t *info, void *ctx_void)
{
    ucontext_t *ctx = ctx_void;
    if (traps < 16)
        trap_offsets[traps] = ctx->uc_mcontext.gregs[REG_RIP] - (long)tf_after_syscall;
    traps++;
}

int main(void)
{
    unsigned long rcx, r11, flags;
    long pid;
    __asm__ volatile("pushfq; pop %[flags]\n\t"
                     "mov $39, %%eax\n\t"
                     "syscall\n"
                     "after_syscall:"
                     : "=a"(pid), "=c"(rcx), "=r"(r11), [flags] "=&r"(flags) :: "r11", "memory");
    __asm__ volatile("mov %%r11, %0" : "=r"(r11));
    printf("getpid matches: %d\n", pid == getpid());
    printf("rcx is the return rip: %d\n", rcx == (unsigned long)after_syscall);
    printf("r11 is rflags: %d\n", r11 == flags);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    long tid = syscall(SYS_gettid);
    long ret;
    __asm__ volatile("syscall\n"
                     "after_kill:"
                     : "=a"(ret) : "a"(SYS_tgkill), "D"(getpid()), "S"(tid), "d"(SIGUSR1) : "rcx", "r11", "memory");
    printf("signal on syscall return: ret=%ld rcx==rip and r11==eflags in the frame: %d\n", ret, handler_ok);

    sa.sa_sigaction = on_trap;
    sigaction(SIGTRAP, &sa, 0);
    __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq\n\t"
                     "mov $39, %%eax\n\t"
                     "syscall\n"
                     "tf_after_syscall: nop\n\t"
                     "pushfq; andq $~0x100, (%%rsp); popfq" : "=a"(pid) :: "rcx", "r11", "memory");
    printf("single-stepped getpid matches: %d, traps: %d\n", pid == getpid(), traps);
    for (int i = 0; i < traps && i < 16; i++)
        printf("  trap at syscall end %+ld\n", trap_offsets[i]);
    return 0;
}
