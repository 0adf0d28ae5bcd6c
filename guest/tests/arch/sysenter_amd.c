/* SYSENTER from 64-bit code on an AMD processor is #UD (APM Vol. 3 SYSENTER:
 * invalid in long mode): SIGILL, ILL_ILLOPN, at the instruction -- what the
 * x86 selftests single_step_syscall and syscall_arg_fault see on AMD. Unicorn
 * would skip the instruction.
 * PROFILE: zen4
 * STDOUT: signal 4 code 2 at the instruction: 1, addr too: 1, trapno 6
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static sigjmp_buf jmpbuf;
extern char sysenter_insn[];

static void on_sig(int sig, siginfo_t *info, void *ctx_void)
{
    ucontext_t *ctx = ctx_void;
    printf("signal %d code %d at the instruction: %d, addr too: %d, trapno %lld\n", sig, info->si_code,
           ctx->uc_mcontext.gregs[REG_RIP] == (greg_t)sysenter_insn, info->si_addr == (void *)sysenter_insn,
           (long long)ctx->uc_mcontext.gregs[REG_TRAPNO]);
    siglongjmp(jmpbuf, 1);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, 0);
    sigaction(SIGSEGV, &sa, 0);
    if (!sigsetjmp(jmpbuf, 1)) {
        __asm__ volatile("mov $39, %%eax\nsysenter_insn: sysenter" ::: "rax", "rcx", "r11", "memory");
        printf("sysenter returned\n");
    }
    return 0;
}
