/* A signal frame that cannot be written, or an rt_sigreturn frame that
 * cannot be restored, as Linux handles them (kernel/signal.c
 * signal_setup_done -> force_sigsegv; arch/x86/kernel/signal_64.c
 * rt_sigreturn badframe -> signal_fault): a SIGALRM whose frame overflows a
 * too-small alternate stack becomes a SIGSEGV delivered to its handler; a
 * SIGSEGV whose own frame fails kills the process; an xstate header with
 * reserved bits set (the x86 selftest corrupt_xstate_header) makes
 * rt_sigreturn deliver SIGSEGV to its handler, and the program goes on.
 * STDOUT: SIGALRM frame too big for the altstack: SIGSEGV handler ran, si_code=0x80
 * STDOUT: SIGSEGV frame too big for the altstack: child killed by signal 11
 * STDOUT: corrupt xstate header: 1 SIGSEGV to the handler, si_code=0x80, and back
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf jmpbuf;
static volatile int segv_code = -1;

static void set_handler(int sig, void (*handler)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | flags;
    sigaction(sig, &sa, 0);
}

static void on_segv_jump(int sig, siginfo_t *info, void *ctx)
{
    segv_code = info->si_code;
    siglongjmp(jmpbuf, 1);
}

static void on_alrm(int sig, siginfo_t *info, void *ctx)
{
    printf("SIGALRM handler ran (unexpected)\n");
}

static void on_usr1_wreck(int sig, siginfo_t *info, void *ctx_void)
{
    ucontext_t *ctx = ctx_void;
    uint64_t *header = (uint64_t *)((uint8_t *)ctx->uc_mcontext.fpregs + 512);
    header[2] = 0xfffffff;          /* reserved header bytes */
}

static volatile int segv_after_sigreturn;
static void on_segv_count(int sig, siginfo_t *info, void *ctx)
{
    segv_after_sigreturn++;
    segv_code = info->si_code;
}

int main(void)
{
    /* The alternate stack is the first page of a mapping with nothing below. */
    char *area = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(area, 4096);
    char *small = area + 4096;
    stack_t ss = { .ss_sp = small, .ss_size = 2048, .ss_flags = 0 };
    if (sigaltstack(&ss, 0))
        perror("sigaltstack");
    set_handler(SIGSEGV, on_segv_jump, 0);
    set_handler(SIGALRM, on_alrm, SA_ONSTACK);
    if (!sigsetjmp(jmpbuf, 1)) {
        raise(SIGALRM);
        printf("raise returned (unexpected)\n");
    } else {
        printf("SIGALRM frame too big for the altstack: SIGSEGV handler ran, si_code=%#x\n", segv_code);
    }
    signal(SIGALRM, SIG_DFL);

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        set_handler(SIGSEGV, on_segv_jump, SA_ONSTACK);
        raise(SIGSEGV);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("SIGSEGV frame too big for the altstack: child killed by signal %d\n",
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);

    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, 0);
    set_handler(SIGUSR1, on_usr1_wreck, 0);
    set_handler(SIGSEGV, on_segv_count, 0);
    raise(SIGUSR1);
    printf("corrupt xstate header: %d SIGSEGV to the handler, si_code=%#x, and back\n", segv_after_sigreturn,
           segv_code);
    return 0;
}
